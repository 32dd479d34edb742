//! Each plugin's share of the key-value store: its keys, and a quota on how many keys and bytes
//! it may hold, checked before every write so a plugin cannot fill the engine's disk.
//!
//! Counting by scanning the plugin's keys would cost a scan per write. The host keeps each
//! plugin's usage in memory instead and stores it beside the data, under the name
//! [`USAGE_NAMESPACE`], which no plugin can have (plugin names are letters, digits and dashes),
//! so a restart goes on from the right count. Data a plugin wrote before the quota existed is
//! counted once it is rewritten or deleted.

use std::sync::{Arc, Mutex, PoisonError};

use crate::store::plugin_kv::PluginKv;

/// The namespace of the usage records in the plugin key-value table: the record of plugin `p`
/// is at (`USAGE_NAMESPACE`, `p`), 16 bytes: keys, then bytes, little-endian `u64`s.
const USAGE_NAMESPACE: &str = "smsflow:kv-usage";

/// How much of the store a plugin holds: its keys, and their keys' and values' bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvUsage {
    /// Keys stored.
    pub keys: u64,
    /// Bytes of keys and values stored.
    pub bytes: u64,
}

impl KvUsage {
    fn encode(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.keys.to_le_bytes());
        bytes[8..].copy_from_slice(&self.bytes.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let keys = bytes.get(..8)?.try_into().ok()?;
        let stored = bytes.get(8..16)?.try_into().ok()?;
        Some(Self {
            keys: u64::from_le_bytes(keys),
            bytes: u64::from_le_bytes(stored),
        })
    }

    /// The usage after `key` changes from `old` to `new` (`None`: absent).
    fn after(self, key: &str, old: Option<usize>, new: Option<usize>) -> Self {
        let size = |value: Option<usize>| value.map_or(0, |len| (key.len() + len) as u64);
        Self {
            keys: (self.keys + u64::from(new.is_some())).saturating_sub(u64::from(old.is_some())),
            bytes: (self.bytes + size(new)).saturating_sub(size(old)),
        }
    }
}

/// The most a plugin may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    /// Keys.
    pub max_keys: u64,
    /// Bytes of keys and values.
    pub max_bytes: u64,
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum KvWriteError {
    /// The write would take the plugin over its quota.
    #[error(
        "the key-value quota of plugin `{plugin}` is full: {} keys and {} bytes in use, of {} \
         keys (`kv_max_keys`) and {} bytes (`kv_max_bytes`); delete keys it no longer needs, or \
         raise the limits in [plugins.grants.{plugin}.limits]",
        .usage.keys, .usage.bytes, .quota.max_keys, .quota.max_bytes
    )]
    QuotaFull {
        /// The plugin's name.
        plugin: Arc<str>,
        /// What the plugin holds.
        usage: KvUsage,
        /// Its quota.
        quota: KvQuota,
    },
    /// The store failed.
    #[error("kv write failed: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// One plugin's keys in the store, with its usage.
#[derive(Debug)]
pub(super) struct KvShare {
    plugin: Arc<str>,
    kv: PluginKv,
    /// Held across the read of the old value and the writes, so concurrent calls of one plugin
    /// count every write once.
    usage: Mutex<KvUsage>,
}

impl KvShare {
    /// `plugin`'s share, with the usage stored for it.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn open(kv: PluginKv, plugin: Arc<str>) -> crate::store::Result<Self> {
        let usage = kv
            .get(USAGE_NAMESPACE, &plugin)?
            .and_then(|bytes| KvUsage::decode(&bytes))
            .unwrap_or_default();
        Ok(Self {
            plugin,
            kv,
            usage: Mutex::new(usage),
        })
    }

    /// What the plugin holds now.
    pub fn usage(&self) -> KvUsage {
        *self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value at `key`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, key: &str) -> crate::store::Result<Option<Vec<u8>>> {
        self.kv.get(&self.plugin, key)
    }

    /// Sets `key` to `value`, unless that takes the plugin over `quota`. A write that does not
    /// grow the plugin's usage is allowed even over a quota the operator has since lowered.
    ///
    /// # Errors
    ///
    /// [`KvWriteError::QuotaFull`], or the store failing.
    pub fn set(&self, key: &str, value: &[u8], quota: KvQuota) -> Result<(), KvWriteError> {
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.kv.get(&self.plugin, key)?.map(|old| old.len());
        let after = usage.after(key, old, Some(value.len()));
        let grows = after.keys > usage.keys || after.bytes > usage.bytes;
        if grows && (after.keys > quota.max_keys || after.bytes > quota.max_bytes) {
            return Err(KvWriteError::QuotaFull {
                plugin: Arc::clone(&self.plugin),
                usage: *usage,
                quota,
            });
        }
        self.kv.insert(&self.plugin, key, value)?;
        Ok(self.record(&mut usage, after)?)
    }

    /// Removes `key`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn delete(&self, key: &str) -> crate::store::Result<()> {
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(old) = self.kv.get(&self.plugin, key)? else {
            return Ok(());
        };
        self.kv.remove(&self.plugin, key)?;
        let after = usage.after(key, Some(old.len()), None);
        self.record(&mut usage, after)
    }

    fn record(&self, usage: &mut KvUsage, after: KvUsage) -> crate::store::Result<()> {
        *usage = after;
        self.kv
            .insert(USAGE_NAMESPACE, &self.plugin, &after.encode())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const QUOTA: KvQuota = KvQuota {
        max_keys: 2,
        max_bytes: 100,
    };

    fn share(store: &crate::store::Store) -> KvShare {
        KvShare::open(store.tables().plugin_kv, Arc::from("counter")).unwrap()
    }

    #[test]
    fn writes_overwrites_and_deletes_are_counted_and_survive_a_reopen() {
        let store = crate::store::Store::temporary().unwrap();
        let kv = share(&store);
        kv.set("a", b"12345", QUOTA).unwrap();
        kv.set("a", b"123", QUOTA).unwrap();
        kv.set("bb", b"", QUOTA).unwrap();
        assert_eq!(kv.usage(), KvUsage { keys: 2, bytes: 6 });
        kv.delete("a").unwrap();
        kv.delete("never-written").unwrap();
        assert_eq!(kv.usage(), KvUsage { keys: 1, bytes: 2 });
        assert_eq!(share(&store).usage(), KvUsage { keys: 1, bytes: 2 });
    }

    #[test]
    fn a_write_over_the_quota_is_refused_and_a_shrinking_one_is_not() {
        let store = crate::store::Store::temporary().unwrap();
        let kv = share(&store);
        kv.set("a", &[0; 50], QUOTA).unwrap();
        kv.set("b", &[0; 10], QUOTA).unwrap();
        let error = kv.set("c", b"", QUOTA).unwrap_err();
        assert!(matches!(error, KvWriteError::QuotaFull { .. }), "{error}");
        assert!(error.to_string().contains("kv_max_keys"), "{error}");
        let error = kv.set("b", &[0; 60], QUOTA).unwrap_err();
        assert!(error.to_string().contains("kv_max_bytes"), "{error}");
        let lowered = KvQuota {
            max_keys: 1,
            max_bytes: 10,
        };
        kv.set("a", &[0; 5], lowered).unwrap();
        assert_eq!(kv.get("a").unwrap(), Some(vec![0; 5]));
        assert_eq!(kv.get("c").unwrap(), None);
    }
}
