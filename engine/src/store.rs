//! The sled database and its trees.
//!
//! Every tree the engine uses is opened here, so the set of trees (and their names on disk) is
//! in one place. sled 0.34 is the stable line; its 1.0 alphas change format between releases.

use std::path::Path;

use anyhow::Context as _;

/// Tree holding plugin key-value data; keys are `<plugin name> 0x00 <key>`.
const PLUGIN_KV_TREE: &str = "plugin_kv";

/// The engine's database.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
}

impl Store {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    ///
    /// When sled cannot open the path (permissions, another process holding its lock, corruption).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let db = sled::open(path)
            .with_context(|| format!("cannot open the store at {}", path.display()))?;
        Ok(Self { db })
    }

    /// A database that lives in a temporary directory and is removed when dropped: for
    /// one-off commands such as `smsflow plugin call`, and tests.
    ///
    /// # Errors
    ///
    /// When sled cannot create the temporary database.
    pub fn temporary() -> anyhow::Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .context("cannot create a temporary store")?;
        Ok(Self { db })
    }

    /// The tree holding every plugin's key-value data.
    ///
    /// # Errors
    ///
    /// When sled cannot open the tree.
    pub fn plugin_kv(&self) -> anyhow::Result<sled::Tree> {
        self.db
            .open_tree(PLUGIN_KV_TREE)
            .context("cannot open the plugin key-value tree")
    }
}
