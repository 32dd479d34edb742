//! `smsflow.toml`: the operator's configuration.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::plugin::PluginsConfig;

/// The whole configuration file. Unknown keys are errors, so a typo is never silently ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The database.
    #[serde(default)]
    pub store: StoreConfig,
    /// Plugins, their grants and limits.
    #[serde(default)]
    pub plugins: PluginsConfig,
}

/// The `[store]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The sled database's folder.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: default_store_path(),
        }
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("data/smsflow.db")
}

impl Config {
    /// Reads `path`. Relative paths inside it are taken from the file's folder.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is not valid; the message names the file, line and
    /// column.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.store.path = base.join(&config.store.path);
        config.plugins.dir = base.join(&config.plugins.dir);
        config.plugins.cache_dir = config.plugins.cache_dir.map(|dir| base.join(dir));
        Ok(config)
    }
}
