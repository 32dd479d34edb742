//! `smsflow plugin build [DIR]`: cargo builds the crate to a wasm32 core module, then the module
//! becomes a component here, in-process, with `wit-component` (what `wasm-tools component new`
//! does), so a plugin developer needs no wasm-tools.
//!
//! The toolchain routes are those of `scripts/build-plugins.sh` (docs/wasm-toolchain.md): rustup's
//! `wasm32-unknown-unknown` target when it is installed, else Debian's rustc with the standard
//! library's sources (`-Zbuild-std`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use serde::Deserialize;

use crate::plugin::{Manifest, call_input_example};

/// The target plugins are built for: no WASI, the host gives them only their world's imports.
const TARGET: &str = "wasm32-unknown-unknown";

/// Where Debian's `rust-web-src` puts the standard library's sources.
const DEBIAN_STD_SOURCES: &str = "/usr/lib/rustlib/src/rust/library";

/// `smsflow plugin build`'s arguments.
#[derive(Debug, clap::Args)]
pub(in crate::cli) struct BuildArgs {
    /// The plugin's crate: its Cargo.toml and `<name>.plugin.toml` (or `plugin.toml`).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write `<name>.wasm` and `<name>.plugin.toml` (default DIR/target/plugins).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Why `plugin build` made no component.
#[derive(Debug, thiserror::Error)]
enum BuildError {
    /// DIR is not a crate.
    #[error(
        "{} has no Cargo.toml with a [package] name: run `smsflow plugin build` on a plugin's \
         crate (`smsflow plugin new NAME --world ...` writes one)",
        .0.display()
    )]
    NotACrate(PathBuf),
    /// The crate has no plugin manifest.
    #[error(
        "{dir} has no `{package}.plugin.toml` (nor `plugin.toml`): a plugin's crate carries its \
         manifest (name, version, world, capabilities); `smsflow plugin new` writes one",
        dir = dir.display()
    )]
    NoManifest {
        /// The crate.
        dir: PathBuf,
        /// Its package name.
        package: String,
    },
    /// Neither toolchain route is available.
    #[error(
        "no Rust toolchain here builds {TARGET}: run `rustup target add {TARGET}`, or on Debian \
         `apt-get install rustc-web cargo-web rust-web-src lld` (docs/wasm-toolchain.md)"
    )]
    NoToolchain,
    /// cargo could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The cargo binary.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// cargo failed; its messages are above.
    #[error("cargo could not build {}: its errors are above", .0.display())]
    Cargo(PathBuf),
    /// cargo built no wasm module for the crate.
    #[error(
        "cargo built no .wasm for {}: is `crate-type = [\"cdylib\"]` in its [lib]?",
        .0.display()
    )]
    NoModule(PathBuf),
    /// The core module is not one a component can be made of.
    #[error(
        "{} is not a plugin module ({message}): does src/lib.rs call the SDK's register macro \
         (`smsflow_plugin_sdk::register_classifier!` or its connector or reply-generator twin)?",
        core.display()
    )]
    Componentize {
        /// The core module.
        core: PathBuf,
        /// What wit-component said.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How this machine builds for [`TARGET`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toolchain {
    /// `rustup target add wasm32-unknown-unknown` was run.
    Rustup,
    /// Debian's `rustc-web`, `cargo-web`, `rust-web-src` and `lld`.
    Debian,
}

impl Toolchain {
    /// The route `scripts/build-plugins.sh` would take here.
    fn detect() -> Result<Self, BuildError> {
        if rustup_has_target() {
            return Ok(Self::Rustup);
        }
        let debian = Path::new("/usr/bin/cargo").is_file()
            && Path::new("/usr/bin/rustc").is_file()
            && Path::new(DEBIAN_STD_SOURCES).is_dir()
            && on_path("wasm-ld");
        if debian {
            Ok(Self::Debian)
        } else {
            Err(BuildError::NoToolchain)
        }
    }

    /// `cargo build --release` for [`TARGET`] in `dir`, with JSON messages on stdout.
    fn cargo(self, dir: &Path) -> Command {
        let program = match self {
            Self::Rustup => "cargo",
            Self::Debian => "/usr/bin/cargo",
        };
        let mut command = Command::new(program);
        command
            .current_dir(dir)
            .args(["build", "--release", "--target", TARGET])
            .arg("--message-format=json-render-diagnostics");
        if self == Self::Debian {
            // Debian's rustc is stable: RUSTC_BOOTSTRAP lets it build std for the target.
            command
                .arg("-Zbuild-std=std,panic_abort")
                .env("RUSTC", "/usr/bin/rustc")
                .env("RUSTDOC", "/usr/bin/rustdoc")
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", "wasm-ld");
        }
        command
    }
}

/// Whether rustup lists the wasm target as installed (false without rustup).
fn rustup_has_target() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .any(|line| line.trim() == TARGET)
        })
}

/// Whether `program` is in a folder of `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|folder| folder.join(program).is_file())
    })
}

/// The crate's package name, from its Cargo.toml.
fn package_name(dir: &Path) -> Result<String, BuildError> {
    let not_a_crate = || BuildError::NotACrate(dir.to_owned());
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).map_err(|_| not_a_crate())?;
    let cargo: toml::Table = toml::from_str(&text).map_err(|_| not_a_crate())?;
    cargo
        .get("package")
        .and_then(|package| package.get("name"))
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(not_a_crate)
}

/// The crate's manifest: `<package>.plugin.toml`, or `plugin.toml` as the example plugins have.
fn manifest_path(dir: &Path, package: &str) -> Result<PathBuf, BuildError> {
    [format!("{package}.plugin.toml"), "plugin.toml".to_owned()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| BuildError::NoManifest {
            dir: dir.to_owned(),
            package: package.to_owned(),
        })
}

/// One line of cargo's `--message-format=json` output; only artifacts matter here.
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    manifest_path: Option<PathBuf>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

/// The `.wasm` cargo reports having built for the crate whose manifest is `cargo_toml`, from
/// its JSON messages. Read from cargo rather than guessed, so a `CARGO_TARGET_DIR` or a
/// `.cargo/config.toml` elsewhere is followed.
fn built_module(messages: &str, cargo_toml: &Path) -> Option<PathBuf> {
    let same_file =
        |path: &Path| std::fs::canonicalize(path).ok() == std::fs::canonicalize(cargo_toml).ok();
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<CargoMessage>(line).ok())
        .filter(|message| message.reason == "compiler-artifact")
        .filter(|message| message.manifest_path.as_deref().is_some_and(same_file))
        .flat_map(|message| message.filenames)
        .rfind(|file| {
            file.extension()
                .is_some_and(|extension| extension == "wasm")
        })
}

/// Runs cargo in `dir` and returns the core module it built.
fn build_core_module(toolchain: Toolchain, dir: &Path) -> Result<PathBuf, BuildError> {
    let mut command = toolchain.cargo(dir);
    let program = command.get_program().to_string_lossy().into_owned();
    // stdout carries the JSON messages; cargo's progress and rendered errors go to stderr.
    let output = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| BuildError::Spawn { program, source })?;
    if !output.status.success() {
        return Err(BuildError::Cargo(dir.to_owned()));
    }
    let messages = String::from_utf8_lossy(&output.stdout);
    built_module(&messages, &dir.join("Cargo.toml"))
        .ok_or_else(|| BuildError::NoModule(dir.to_owned()))
}

/// The component made of the core module at `core`, validated.
fn componentize(core: &Path) -> Result<Vec<u8>, BuildError> {
    let bytes = std::fs::read(core).map_err(|source| BuildError::Io {
        path: core.to_owned(),
        source,
    })?;
    let componentize_error = |error: anyhow::Error| BuildError::Componentize {
        core: core.to_owned(),
        message: format!("{error:#}"),
    };
    wit_component::ComponentEncoder::default()
        .module(&bytes)
        .map_err(componentize_error)?
        .validate(true)
        .encode()
        .map_err(componentize_error)
}

/// Writes `bytes` to `path`, making its folder.
fn write(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let io_error = |source| BuildError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    std::fs::write(path, bytes).map_err(io_error)
}

/// Runs `smsflow plugin build`.
pub(super) fn run(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    // Absolute, so the paths printed at the end can be pasted from any folder.
    let dir =
        &std::fs::canonicalize(&args.dir).map_err(|_| BuildError::NotACrate(args.dir.clone()))?;
    let package = package_name(dir)?;
    let manifest_file = manifest_path(dir, &package)?;
    // Checked before the build: a broken manifest is found in a second, not after cargo.
    let manifest = Manifest::from_file(&manifest_file)?;
    let toolchain = Toolchain::detect()?;
    let core = build_core_module(toolchain, dir)?;
    let component = componentize(&core)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| dir.join("target/plugins"));
    let wasm = out.join(format!("{}.wasm", manifest.name));
    write(&wasm, &component)?;
    let manifest_text = std::fs::read(&manifest_file).map_err(|source| BuildError::Io {
        path: manifest_file.clone(),
        source,
    })?;
    write(
        &out.join(format!("{}.plugin.toml", manifest.name)),
        &manifest_text,
    )?;
    println!("{} ({} bytes)", wasm.display(), component.len());
    println!(
        "try it: smsflow plugin call {} --input '{}'",
        wasm.display(),
        call_input_example(manifest.world)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_module_is_the_wasm_artifact_of_the_crate_itself() {
        let dir = tempfile::tempdir().unwrap();
        let cargo_toml = dir.path().join("Cargo.toml");
        std::fs::write(&cargo_toml, "").unwrap();
        let messages = [
            json!({"reason": "compiler-artifact", "manifest_path": "/elsewhere/sdk/Cargo.toml",
                   "filenames": ["/t/libsdk.rlib"]})
            .to_string(),
            json!({"reason": "build-script-executed"}).to_string(),
            "not json: a line a build script printed".to_owned(),
            json!({"reason": "compiler-artifact", "manifest_path": cargo_toml,
                   "filenames": ["/t/greeter.wasm", "/t/libgreeter.rlib"]})
            .to_string(),
            json!({"reason": "build-finished", "success": true}).to_string(),
        ]
        .join("\n");
        assert_eq!(
            built_module(&messages, &cargo_toml),
            Some(PathBuf::from("/t/greeter.wasm"))
        );
        assert_eq!(built_module("", &cargo_toml), None);
    }

    #[test]
    fn a_crate_without_a_manifest_is_told_which_file_to_add() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            package_name(dir.path())
                .unwrap_err()
                .to_string()
                .contains("plugin new")
        );
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"greeter\"\n",
        )
        .unwrap();
        assert_eq!(package_name(dir.path()).unwrap(), "greeter");
        let message = manifest_path(dir.path(), "greeter")
            .unwrap_err()
            .to_string();
        assert!(message.contains("`greeter.plugin.toml`"), "{message}");
        std::fs::write(dir.path().join("plugin.toml"), "").unwrap();
        assert_eq!(
            manifest_path(dir.path(), "greeter").unwrap(),
            dir.path().join("plugin.toml")
        );
        std::fs::write(dir.path().join("greeter.plugin.toml"), "").unwrap();
        assert_eq!(
            manifest_path(dir.path(), "greeter").unwrap(),
            dir.path().join("greeter.plugin.toml")
        );
    }

    #[test]
    fn a_file_that_is_not_a_plugin_module_is_refused_saying_what_to_register() {
        let dir = tempfile::tempdir().unwrap();
        let core = dir.path().join("greeter.wasm");
        std::fs::write(&core, b"not wasm").unwrap();
        let message = componentize(&core).unwrap_err().to_string();
        assert!(message.contains("register_classifier!"), "{message}");
    }
}
