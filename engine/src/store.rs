//! The sled database and its trees.
//!
//! Every tree the engine uses is opened here, so the set of trees (and their names on disk) is
//! in one place. sled 0.34 is the stable line; its 1.0 alphas change format between releases.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;

/// Tree holding plugin key-value data; keys are `<plugin name> 0x00 <key>`.
const PLUGIN_KV_TREE: &str = "plugin_kv";

/// The trees of the flow runtime and the outbox; see [`Trees`] for their keys.
const RUNTIME_TREES: [&str; 18] = [
    "conversations",
    "transcript",
    "timers",
    "outbox",
    "handoffs",
    "processed_events",
    "flow_versions",
    "outbox_due",
    "outbox_provider_ids",
    "suppressions",
    "inbox",
    "inbox_seen",
    "dead_letters",
    "events",
    "event_dead_letters",
    "consent_ledger",
    "send_log",
    "program_contacts",
];

/// The trees conversations live in. Writes that belong to one event go in one transaction
/// over them, so a crash leaves either all of an event's effects or none.
#[derive(Clone, Debug)]
pub struct Trees {
    /// `<our number> 0x00 <contact>` → [`crate::flow::conversation::Conversation`].
    pub conversations: sled::Tree,
    /// `<conversation key> 0x00 <seq u64 BE>` → [`crate::flow::conversation::Entry`].
    pub transcript: sled::Tree,
    /// `<due ms, sign-flipped i64 BE> <conversation key>` → [`crate::flow::conversation::Timer`].
    pub timers: sled::Tree,
    /// `<id u64 BE>` → [`crate::outbound::OutboundMessage`].
    pub outbox: sled::Tree,
    /// `<queue> 0x00 <conversation key>` → [`crate::flow::conversation::HandoffRecord`].
    pub handoffs: sled::Tree,
    /// `<event id>` → when it was processed: a replayed event is recognised and skipped.
    pub processed: sled::Tree,
    /// `<flow id> 0x00 <version>` → the flow file's text, so pinned versions survive restarts.
    pub flow_versions: sled::Tree,
    /// `<due ms, sign-flipped i64 BE> <outbox id u64 BE>` → nothing: the texts to send, by when.
    pub outbox_due: sled::Tree,
    /// `<provider> 0x00 <provider's message id>` → outbox id: for delivery reports.
    pub outbox_provider_ids: sled::Tree,
    /// `<number>` → why texts to it are refused (a provider's opt-out report).
    pub suppressions: sled::Tree,
    /// `<seq u64 BE>` → [`crate::inbox::InboxEvent`]: acknowledged, not yet processed.
    pub inbox: sled::Tree,
    /// `<provider> 0x00 <provider's message id>` → inbox seq: dedup of webhooks.
    pub inbox_seen: sled::Tree,
    /// `<seq u64 BE>` → [`crate::inbox::InboxEvent`] that failed every attempt.
    pub dead_letters: sled::Tree,
    /// `<seq u64 BE>` → an outbound event webhook delivery waiting to go out (see [`crate::events`]).
    pub events: sled::Tree,
    /// `<seq u64 BE>` → an event delivery that failed its whole retry schedule.
    pub event_dead_letters: sled::Tree,
    /// `<seq u64 BE>` → a consent record, hash-chained to the one before (see
    /// [`crate::compliance::ledger`]).
    pub consent_ledger: sled::Tree,
    /// `<contact> 0x00 <time key> <seq u64 BE>` → [`crate::compliance::caps::SentText`]: what
    /// went to each number recently, for frequency caps and the loop guard.
    pub send_log: sled::Tree,
    /// `<contact> 0x00 <program>` → the time key of the program's first text to the contact.
    pub program_contacts: sled::Tree,
}

/// The engine's database.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    group_commit: Arc<GroupCommit>,
    /// False for a temporary store: it is deleted when dropped, so an fsync buys nothing.
    durable: bool,
}

/// Flushes shared between concurrent writers: each flush covers every write made before it
/// started, so writers that wait together pay for one fsync (group commit) instead of one each.
#[derive(Debug, Default)]
struct GroupCommit {
    /// Tickets handed out: a writer takes one after its write.
    requested: AtomicU64,
    /// Every ticket up to this one is on disk.
    flushed: AtomicU64,
    /// Held by the writer whose flush is running.
    leader: tokio::sync::Mutex<()>,
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
        Ok(Self::from_db(db, true))
    }

    /// A database that lives in a temporary directory and is removed when dropped: for
    /// one-off commands such as `smsflow plugin call`, and tests. [`Store::flush`] does not
    /// sync it to disk.
    ///
    /// # Errors
    ///
    /// When sled cannot create the temporary database.
    pub fn temporary() -> anyhow::Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .context("cannot create a temporary store")?;
        Ok(Self::from_db(db, false))
    }

    fn from_db(db: sled::Db, durable: bool) -> Self {
        Self {
            db,
            group_commit: Arc::default(),
            durable,
        }
    }

    /// The runtime's trees.
    ///
    /// # Errors
    ///
    /// When sled cannot open one of them.
    pub fn trees(&self) -> anyhow::Result<Trees> {
        let [
            conversations,
            transcript,
            timers,
            outbox,
            handoffs,
            processed,
            flow_versions,
            outbox_due,
            outbox_provider_ids,
            suppressions,
            inbox,
            inbox_seen,
            dead_letters,
            events,
            event_dead_letters,
            consent_ledger,
            send_log,
            program_contacts,
        ] = RUNTIME_TREES.map(|name| {
            self.db
                .open_tree(name)
                .with_context(|| format!("cannot open the `{name}` tree"))
        });
        Ok(Trees {
            conversations: conversations?,
            transcript: transcript?,
            timers: timers?,
            outbox: outbox?,
            handoffs: handoffs?,
            processed: processed?,
            flow_versions: flow_versions?,
            outbox_due: outbox_due?,
            outbox_provider_ids: outbox_provider_ids?,
            suppressions: suppressions?,
            inbox: inbox?,
            inbox_seen: inbox_seen?,
            dead_letters: dead_letters?,
            events: events?,
            event_dead_letters: event_dead_letters?,
            consent_ledger: consent_ledger?,
            send_log: send_log?,
            program_contacts: program_contacts?,
        })
    }

    /// A new id, unique in this database for its lifetime (across restarts).
    ///
    /// # Errors
    ///
    /// When sled cannot persist the id counter.
    pub fn generate_id(&self) -> anyhow::Result<u64> {
        self.db.generate_id().context("cannot generate an id")
    }

    /// Returns once everything written before the call is on disk (an fsync): call before
    /// acknowledging anything durable. Concurrent callers share flushes.
    ///
    /// # Errors
    ///
    /// When the disk write fails.
    pub async fn flush(&self) -> anyhow::Result<()> {
        if !self.durable {
            return Ok(());
        }
        let commit = &self.group_commit;
        let ticket = commit.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _leader = commit.leader.lock().await;
        if commit.flushed.load(Ordering::SeqCst) >= ticket {
            // A flush that started after our write finished while we waited.
            return Ok(());
        }
        let covered = commit.requested.load(Ordering::SeqCst);
        self.db
            .flush_async()
            .await
            .context("cannot flush the store to disk")?;
        commit.flushed.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    /// Erases every tree of a temporary store, so a simulation can reuse it instead of
    /// creating a new database per run.
    ///
    /// # Errors
    ///
    /// When the store is not temporary (this never erases a real database), or sled fails.
    pub fn erase_temporary(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.durable, "only a temporary store can be erased");
        for name in RUNTIME_TREES.iter().copied().chain([PLUGIN_KV_TREE]) {
            self.db
                .open_tree(name)
                .and_then(|tree| tree.clear())
                .with_context(|| format!("cannot erase tree `{name}`"))?;
        }
        Ok(())
    }

    /// Writes everything to disk now, blocking: for one-off commands outside the server.
    ///
    /// # Errors
    ///
    /// When the disk write fails.
    pub fn flush_sync(&self) -> anyhow::Result<()> {
        self.db.flush().context("cannot flush the store to disk")?;
        Ok(())
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

/// Versioned value encoding: one version byte, then JSON. A value written by a newer engine
/// is refused instead of misread.
pub mod codec {
    use anyhow::Context as _;
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    /// The version byte of values this engine writes.
    const VERSION: u8 = 1;

    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// When `value` cannot be serialised (a map with non-string keys).
    pub fn encode<T: Serialize>(value: &T) -> anyhow::Result<Vec<u8>> {
        let mut bytes = vec![VERSION];
        serde_json::to_writer(&mut bytes, value).context("cannot encode a stored value")?;
        Ok(bytes)
    }

    /// Decodes a value written by [`encode`].
    ///
    /// # Errors
    ///
    /// When the version byte is unknown or the value does not parse.
    pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<T> {
        match bytes.split_first() {
            Some((&VERSION, json)) => {
                serde_json::from_slice(json).context("cannot decode a stored value")
            }
            Some((version, _)) => anyhow::bail!("stored value has unknown codec version {version}"),
            None => anyhow::bail!("stored value is empty"),
        }
    }

    /// A big-endian key for a time in milliseconds that sorts in time order, negatives first.
    pub fn time_key(ms: i64) -> [u8; 8] {
        (ms.cast_unsigned() ^ (1 << 63)).to_be_bytes()
    }

    /// The time at the start of a key that begins with a [`time_key`].
    pub fn time_prefix(key: &[u8]) -> Option<i64> {
        Some(time_from_key(key.get(..8)?.try_into().ok()?))
    }

    /// The time of a key written by [`time_key`].
    pub fn time_from_key(key: [u8; 8]) -> i64 {
        (u64::from_be_bytes(key) ^ (1 << 63)).cast_signed()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn time_keys_sort_in_time_order() {
            let times = [i64::MIN, -5, 0, 7, 1_700_000_000_000, i64::MAX];
            let keys: Vec<[u8; 8]> = times.iter().map(|&t| time_key(t)).collect();
            assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
            assert!(times.iter().all(|&t| time_from_key(time_key(t)) == t));
        }

        #[test]
        fn refuses_unknown_versions() {
            let bytes = encode(&vec![1, 2]).unwrap();
            assert_eq!(decode::<Vec<i32>>(&bytes).unwrap(), vec![1, 2]);
            let mut newer = bytes.clone();
            newer[0] = 9;
            assert!(
                decode::<Vec<i32>>(&newer)
                    .unwrap_err()
                    .to_string()
                    .contains("version 9")
            );
            assert!(decode::<Vec<i32>>(&[]).is_err());
        }
    }
}
