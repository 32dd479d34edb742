//! Compiled plugins cached on disk, keyed by the component's content hash and by the engine's
//! compatibility hash, so a restart (or a test run) loads native code instead of compiling.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components, or none (compile every time).
#[derive(Debug, Clone)]
pub(super) struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The component for `bytes`, from the cache when it has it, else compiled (and stored).
    /// A cache entry that fails to load, or a cache that cannot be written, only costs a
    /// compilation: it is logged, never fatal.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let Some(dir) = &self.dir else {
            return Component::new(engine, bytes);
        };
        let path = dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(Sha256::digest(bytes)),
            self.engine_key
        ));
        if path.exists() {
            // SAFETY: deserialising trusts the file to be code this engine produced. Only this
            // engine writes the cache directory (atomically, below); whoever can write it could
            // equally replace the plugins themselves.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "ignoring unusable cache entry");
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        if let Err(error) = write_atomically(dir, &path, &compiled) {
            tracing::warn!(dir = %dir.display(), %error, "cannot write the plugin cache");
        }
        // SAFETY: `compiled` was produced by this engine a moment ago.
        unsafe { Component::deserialize(engine, &compiled) }
    }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}
