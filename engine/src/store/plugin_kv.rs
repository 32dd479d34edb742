//! Plugins' key-value data: each plugin sees only its own keys.
//!
//! Key: `<plugin> 0x00 <key>`. Value: the plugin's bytes.

use super::keys::Pair;
use super::table::Table;
use super::{Result, Store, TableId};

/// The plugin key-value table.
#[derive(Debug, Clone)]
pub struct PluginKv {
    table: Table<Pair, Vec<u8>>,
}

impl PluginKv {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::PluginKv),
        }
    }

    fn key(plugin: &str, key: &str) -> Pair {
        Pair(plugin.to_owned(), key.to_owned())
    }

    /// `plugin`'s value at `key`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.table.get(&Self::key(plugin, key))
    }

    /// Sets `plugin`'s value at `key`.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn insert(&self, plugin: &str, key: &str, value: &[u8]) -> Result<()> {
        self.table.insert(&Self::key(plugin, key), &value.to_vec())
    }

    /// Removes `plugin`'s value at `key`.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn remove(&self, plugin: &str, key: &str) -> Result<()> {
        self.table.remove(&Self::key(plugin, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_do_not_see_each_others_keys() {
        let store = Store::temporary().unwrap();
        let kv = PluginKv::new(&store);
        kv.insert("a", "k", b"1").unwrap();
        kv.insert("ab", "k", b"2").unwrap();
        assert_eq!(kv.get("a", "k").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.get("ab", "k").unwrap().as_deref(), Some(&b"2"[..]));
        kv.remove("a", "k").unwrap();
        assert_eq!(kv.get("a", "k").unwrap(), None);
        assert_eq!(kv.get("ab", "k").unwrap().as_deref(), Some(&b"2"[..]));
    }
}
