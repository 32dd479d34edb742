//! The store: every table the engine keeps, its key layout, codec and order, and the batches
//! that write several tables at once. Nothing outside this module sees sled.
//!
//! # Layout
//!
//! One sled tree, `smsflow`, holds every table. A key is one byte naming its table (the
//! [`TableId`]) followed by the table's own layout, documented on each table type; a value is
//! the table's codec ([`codec`]). One tree rather than one per table because sled applies a
//! [`Batch`] to one tree atomically and cheaply, while atomic writes across trees need its
//! multi-tree transactions (several times the work, measured in `BENCHMARKS.md`).
//!
//! | id | table | key | value |
//! | --- | --- | --- | --- |
//! | 0x01 | [`conversations::Conversations`] | our number, contact | a conversation |
//! | 0x02 | [`transcript::Transcript`] | conversation, seq | a transcript entry |
//! | 0x03 | [`timers::Timers`] | due time, conversation, n | a timer |
//! | 0x04 | [`handoffs::Handoffs`] | conversation | a handed-off conversation's case |
//! | 0x05 | [`processed::Processed`] | event id | when it was processed |
//! | 0x06 | [`flow_versions::FlowVersions`] | flow id, version | the flow file's text |
//! | 0x07 | [`outbox::Outbox`] | seq | an outbound text |
//! | 0x08 | [`outbox::OutboxDue`] | due time, seq | (nothing) |
//! | 0x09 | [`outbox::ProviderIds`] | provider, provider's id | outbox seq |
//! | 0x0a | [`suppressions::Suppressions`] | number | why |
//! | 0x0b | [`inbox::Inbox`] (pending) | seq | an inbound text |
//! | 0x0c | [`inbox::InboxSeen`] | provider, provider's id | inbox seq |
//! | 0x0d | [`inbox::Inbox`] (dead letters) | seq | an inbound text |
//! | 0x0e | [`events::EventQueue`] (pending) | seq | an event delivery |
//! | 0x0f | [`events::EventQueue`] (dead letters) | seq | an event delivery |
//! | 0x10 | [`consent::ConsentLedger`] | seq | a consent record |
//! | 0x11 | [`send_log::SendLog`] | contact, time, seq | a sent text |
//! | 0x12 | [`send_log::ProgramContacts`] | contact, program | first text's time |
//! | 0x13 | [`plugin_kv::PluginKv`] | plugin, key | bytes |
//! | 0x14 | [`agents::AgentsTable`] | agent name | JSON |
//! | 0x15 | [`contacts::ContactsTable`] | contact id | a contact |
//! | 0x16 | [`contacts::ContactAddresses`] | phone number | contact id |
//! | 0x17 | [`contacts::ContactFieldTypes`] | field name | its type |
//! | 0x18 | [`contacts::SavedSegments`] | segment name | its query |
//! | 0x19 | [`contacts::ContactActivity`] | number, direction | last time |
//! | 0x1a | [`campaigns::CampaignsTable`] | campaign seq | a campaign |
//! | 0x1b | [`campaigns::CampaignKeys`] | client key | campaign seq |
//! | 0x1c | [`campaigns::CampaignTargets`] | campaign seq, contact seq | what it did |
//! | 0x1d | [`campaigns::CampaignAudience`] | campaign seq, contact seq | (none) |
//! | 0x1e | [`funnel::FunnelEvents`] | time, seq | a funnel event |
//! | 0x1f | the touches of [`funnel::FunnelEvents`] | number, time, seq | a delivery or click |
//! | 0x20 | [`funnel::Conversions`] | idempotency key | a conversion and its answer |
//! | 0x21 | [`funnel::Links`] | short code | a tracked link |
//! | 0x22 | [`funnel::FunnelDaily`] | day, flow, campaign, variant, kind | a day's counts |
//! | 0x23 | the expiry index (`put_expiring_in`) | table, time, the row's key | (none) |
//! | 0x24 | [`consent::ConsentLedger`]'s index | number, seq | (none) |
//! | 0x7f | format marker | `format` | the layout version |
//!
//! Strings in keys end at a 0x00 byte, which is why identifiers that reach a key (numbers,
//! provider ids, queue and flow names) are refused at the edges when they contain one. Numbers
//! in keys are big-endian so keys sort in numeric order; times are [`codec::time_key`], which
//! sorts in time order, negatives first.
//!
//! # Writes and durability
//!
//! A single-key write is atomic. Writes that belong together (a turn's state, transcript,
//! texts, timers and events; an inbound text with its dedup key and consent record; a send's
//! bookkeeping) go in one [`Batch`], applied atomically by [`Store::apply`]. Nothing is durable
//! until [`Store::flush`], which concurrent writers share (group commit): acknowledge only after
//! it. sled's log is ordered, so a flush makes everything applied before it durable and never
//! something applied after without what came before.

pub mod agents;
pub mod campaigns;
pub mod codec;
pub mod consent;
pub mod contacts;
pub mod conversations;
pub mod events;
pub mod flow_versions;
pub mod funnel;
pub mod handoffs;
pub mod inbox;
mod keys;
mod migrate;
pub mod outbox;
pub mod plugin_kv;
pub mod processed;
pub mod send_log;
pub mod suppressions;
mod table;
pub mod timers;
pub mod transcript;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use self::table::{Cursor, Swept, TableId};
use self::table::{Key, Table, Value};

/// The name of the one sled tree every table lives in.
const TREE: &str = "smsflow";

/// The layout version [`Store::open`] writes and reads: 3 keys handoffs by conversation (2
/// keyed them by queue; 1 was one sled tree per table), older layouts migrated on open.
const FORMAT: u32 = 3;

/// The key of the format marker.
const FORMAT_KEY: &[u8] = b"\x7fformat";

/// Every key and value of a database, in key order: a snapshot's contents.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Where a store restored from a snapshot keeps the floor of its ids: sled's id counter
/// starts again at 0 in a new database, and [`Store::generate_id`] adds this.
const ID_BASE_KEY: &[u8] = b"\x7fid_base";

/// How much of the database sled caches in memory. sled's default is 1 GiB, which a server
/// with a million idle conversations would fill with pages it never reads again; the working
/// set of active conversations is far smaller.
const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Why the store failed. Every variant says what to check.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not read or write.
    #[error(
        "the store could not read or write table `{table}`: {source}; check the disk (space, permissions)"
    )]
    Io {
        /// The table.
        table: &'static str,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// A stored value does not decode.
    #[error(
        "a stored value in table `{table}` does not decode: {reason}; the store is damaged or was written by a newer smsflow"
    )]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// A value could not be encoded (a map with non-string keys: a bug).
    #[error("a value for table `{table}` cannot be encoded: {reason}")]
    Encode {
        /// The table.
        table: &'static str,
        /// What the encoder said.
        reason: String,
    },
    /// The store could not be opened.
    #[error(
        "cannot open the store at {path}: {source}; is another smsflow using it? (`smsflow serve` holds it while running)"
    )]
    Open {
        /// Its folder.
        path: String,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// The disk write of a flush failed.
    #[error("cannot flush the store to disk: {0}; check the disk (space, permissions)")]
    Flush(#[source] sled::Error),
    /// The flush's thread ended without an answer: it panicked, or the runtime is stopping.
    #[error("the store's flush did not finish ({0}); unless smsflow is stopping, this is a bug")]
    FlushStopped(String),
    /// The store was written by a newer smsflow.
    #[error(
        "the store at {path} has layout version {found}; this smsflow reads version {FORMAT}: use the smsflow that wrote it"
    )]
    NewerFormat {
        /// Its folder.
        path: String,
        /// The version found.
        found: u32,
    },
}

/// Results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The engine's database.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    group_commit: Arc<GroupCommit>,
    /// The consent ledger's chain state, shared by every handle on this store.
    consent_chain: Arc<std::sync::Mutex<consent::ChainState>>,
    /// Added to sled's ids (see [`ID_BASE_KEY`]).
    id_base: u64,
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

/// Settings for [`Store::open_with`].
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    /// How much of the database sled keeps in memory.
    pub cache_bytes: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

impl Store {
    /// Opens (or creates) the database at `path`, migrating a store of the previous layout.
    ///
    /// # Errors
    ///
    /// When sled cannot open the path (permissions, another process holding its lock,
    /// corruption), or the store was written by a newer smsflow.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, StoreSettings::default())
    }

    /// [`Store::open`] with settings.
    ///
    /// # Errors
    ///
    /// As [`Store::open`].
    pub fn open_with(path: &Path, settings: StoreSettings) -> Result<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(settings.cache_bytes)
            .open()
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        let store = Self::from_db(db, true)?;
        store.check_format(path)?;
        Ok(store)
    }

    /// A database that lives in a temporary directory and is removed when dropped: for
    /// one-off commands such as `smsflow plugin call`, and tests. [`Store::flush`] does not
    /// sync it to disk.
    ///
    /// # Errors
    ///
    /// When sled cannot create the temporary database.
    pub fn temporary() -> Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|source| StoreError::Open {
                path: "(temporary)".to_owned(),
                source,
            })?;
        Self::from_db(db, false)
    }

    fn from_db(db: sled::Db, durable: bool) -> Result<Self> {
        let tree = db.open_tree(TREE).map_err(|source| StoreError::Io {
            table: TREE,
            source,
        })?;
        let id_base = tree
            .get(ID_BASE_KEY)
            .map_err(|source| StoreError::Io {
                table: "ids",
                source,
            })?
            .and_then(|bytes| Some(u64::from_be_bytes(bytes.as_ref().try_into().ok()?)))
            .unwrap_or(0);
        Ok(Self {
            db,
            tree,
            group_commit: Arc::default(),
            consent_chain: Arc::default(),
            id_base,
            durable,
        })
    }

    /// Refuses a newer layout, migrates an older one, marks a new store.
    fn check_format(&self, path: &Path) -> Result<()> {
        let io = |source| StoreError::Io {
            table: "format",
            source,
        };
        let found = self
            .tree
            .get(FORMAT_KEY)
            .map_err(io)?
            .and_then(|bytes| Some(u32::from_be_bytes(bytes.as_ref().try_into().ok()?)));
        match found {
            Some(FORMAT) => Ok(()),
            Some(found) if found > FORMAT => Err(StoreError::NewerFormat {
                path: path.display().to_string(),
                found,
            }),
            _ => {
                migrate::from_tree_per_table(&self.db, &self.tree)?;
                let moved = handoffs::migrate_from_queue_keys(self)?;
                if moved > 0 {
                    tracing::info!(
                        moved,
                        "handoffs migrated to layout 3 (keyed by conversation)"
                    );
                }
                self.tree
                    .insert(FORMAT_KEY, &FORMAT.to_be_bytes())
                    .map_err(io)?;
                self.flush_sync()
            }
        }
    }

    /// The table `id` with key type `K` and value type `V`.
    fn table<K: Key, V: Value>(&self, id: TableId) -> Table<K, V> {
        Table::new(self.tree.clone(), id)
    }

    /// A new id, unique in this database for its lifetime (across restarts).
    ///
    /// # Errors
    ///
    /// When sled cannot persist the id counter.
    pub fn generate_id(&self) -> Result<u64> {
        let id = self.db.generate_id().map_err(|source| StoreError::Io {
            table: "ids",
            source,
        })?;
        Ok(id.saturating_add(self.id_base))
    }

    /// Every key and value of the database, and an id above every id it has handed out: what
    /// a cluster snapshot of a partition holds. Consistent only while nothing writes (the
    /// partition's owner pauses its workers around it).
    ///
    /// # Errors
    ///
    /// When sled cannot read.
    pub fn export(&self) -> Result<(Pairs, u64)> {
        let io = |source| StoreError::Io {
            table: TREE,
            source,
        };
        let pairs = self
            .tree
            .iter()
            .filter(|pair| !matches!(pair, Ok((key, _)) if key.as_ref() == ID_BASE_KEY))
            .map(|pair| pair.map(|(key, value)| (key.to_vec(), value.to_vec())))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(io)?;
        Ok((pairs, self.generate_id()?.saturating_add(1)))
    }

    /// A new database at `path` (which must not hold one) with `pairs` from [`Store::export`],
    /// whose ids start above `id_floor`.
    ///
    /// # Errors
    ///
    /// When the path holds a database already, or sled cannot write.
    pub fn restore(
        path: &Path,
        settings: StoreSettings,
        pairs: Pairs,
        id_floor: u64,
    ) -> Result<Self> {
        let io = |source| StoreError::Io {
            table: TREE,
            source,
        };
        let mut fresh = Self::open_with(path, settings)?;
        let mut batch = sled::Batch::default();
        for (key, value) in pairs {
            batch.insert(key, value);
        }
        batch.insert(ID_BASE_KEY, &id_floor.to_be_bytes());
        fresh.tree.apply_batch(batch).map_err(io)?;
        fresh.flush_sync()?;
        fresh.id_base = id_floor;
        Ok(fresh)
    }

    /// Applies `batch` atomically: after a crash, either all of it is there or none.
    /// Not durable until [`Store::flush`].
    ///
    /// # Errors
    ///
    /// When sled cannot write.
    pub fn apply(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let table = batch.first_table.map_or("batch", TableId::name);
        batch
            .apply_to(&self.tree)
            .map_err(|source| StoreError::Io { table, source })
    }

    /// [`Store::apply`], then [`Store::flush`].
    ///
    /// # Errors
    ///
    /// When sled cannot write or flush.
    pub async fn commit(&self, batch: Batch) -> Result<()> {
        self.apply(batch)?;
        self.flush().await
    }

    /// Returns once everything written before the call is on disk (an fsync): call before
    /// acknowledging anything durable. Concurrent callers share flushes.
    ///
    /// # Errors
    ///
    /// When the disk write fails.
    pub async fn flush(&self) -> Result<()> {
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
        // sled's `flush_async` runs the flush on sled's own small thread pool, where the log
        // write it waits for is queued too: with many stores in one process (a cluster node
        // opens one per partition) every pool thread can sit in a flush and none is left to
        // write (spacejam/sled#1241, seen here as a node hung under load). The blocking flush
        // on tokio's blocking pool leaves sled's pool free for the writes.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|error| StoreError::FlushStopped(error.to_string()))?
            .map_err(StoreError::Flush)?;
        commit.flushed.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    /// Writes everything to disk now, blocking: for one-off commands outside the server.
    ///
    /// # Errors
    ///
    /// When the disk write fails.
    pub fn flush_sync(&self) -> Result<()> {
        if self.durable {
            self.db.flush().map_err(StoreError::Flush)?;
        }
        Ok(())
    }

    /// Erases every table of a temporary store, so a simulation can reuse it instead of
    /// creating a new database per run.
    ///
    /// # Errors
    ///
    /// When the store is not temporary (this never erases a real database), or sled fails.
    pub fn erase_temporary(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.durable, "only a temporary store can be erased");
        self.tree.clear().map_err(|source| StoreError::Io {
            table: TREE,
            source,
        })?;
        *self
            .consent_chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = consent::ChainState::default();
        Ok(())
    }

    /// Bytes the database takes on disk.
    ///
    /// # Errors
    ///
    /// When sled cannot measure it.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.db.size_on_disk().map_err(|source| StoreError::Io {
            table: TREE,
            source,
        })
    }
}

/// Writes to several tables, applied at once by [`Store::apply`]: all or nothing.
///
/// Tables add to it with their `put_in`/`remove_in` methods. Later writes to a key replace
/// earlier ones in the same batch.
#[derive(Default)]
pub struct Batch {
    /// The writes, once there are two or more.
    writes: sled::Batch,
    /// The only write, while there is one.
    first: Option<Write>,
    len: usize,
    first_table: Option<TableId>,
}

/// One write of a [`Batch`].
enum Write {
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("writes", &self.len).finish()
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many writes were added.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Writes the batch to `tree`, atomically.
    fn apply_to(self, tree: &sled::Tree) -> sled::Result<()> {
        // One write is atomic by itself. sled applies a batch under a lock that every read and
        // write of the database waits for, so a batch of one is written without it.
        match self.first {
            Some(Write::Insert(key, value)) => tree.insert(key, value).map(drop),
            Some(Write::Remove(key)) => tree.remove(key).map(drop),
            None => tree.apply_batch(self.writes),
        }
    }

    fn insert(&mut self, table: TableId, key: Vec<u8>, value: Vec<u8>) {
        self.add(table, Write::Insert(key, value));
    }

    fn remove(&mut self, table: TableId, key: Vec<u8>) {
        self.add(table, Write::Remove(key));
    }

    fn add(&mut self, table: TableId, write: Write) {
        self.len += 1;
        self.first_table.get_or_insert(table);
        if self.len == 1 {
            self.first = Some(write);
            return;
        }
        for write in self.first.take().into_iter().chain([write]) {
            match write {
                Write::Insert(key, value) => self.writes.insert(key, value),
                Write::Remove(key) => self.writes.remove(key),
            }
        }
    }
}

/// Every table, as handles that share the store. Components take the ones they use.
#[derive(Debug, Clone)]
pub struct Tables {
    /// Conversations by (our number, contact).
    pub conversations: conversations::Conversations,
    /// Transcript entries.
    pub transcript: transcript::Transcript,
    /// Conversation timers by due time.
    pub timers: timers::Timers,
    /// Conversations handed to people: their cases.
    pub handoffs: handoffs::Handoffs,
    /// Events already processed.
    pub processed: processed::Processed,
    /// Every flow version conversations may be pinned to.
    pub flow_versions: flow_versions::FlowVersions,
    /// Outbound texts.
    pub outbox: outbox::Outbox,
    /// Outbound texts by when they are due.
    pub outbox_due: outbox::OutboxDue,
    /// Provider ids of sent texts.
    pub provider_ids: outbox::ProviderIds,
    /// Numbers the provider reports as opted out.
    pub suppressions: suppressions::Suppressions,
    /// Inbound texts acknowledged and not yet processed, and the dead letters.
    pub inbox: inbox::Inbox,
    /// Provider message ids already accepted.
    pub inbox_seen: inbox::InboxSeen,
    /// Event webhook deliveries, pending and dead.
    pub events: events::EventQueue,
    /// The consent ledger.
    pub consent: consent::ConsentLedger,
    /// What went to each number recently.
    pub send_log: send_log::SendLog,
    /// When each program first texted each number.
    pub program_contacts: send_log::ProgramContacts,
    /// Plugins' key-value data.
    pub plugin_kv: plugin_kv::PluginKv,
    /// The people who answer handed-off conversations.
    pub agents: agents::AgentsTable,
    /// Contacts by id.
    pub contacts: contacts::ContactsTable,
    /// Contacts by phone number.
    pub contact_addresses: contacts::ContactAddresses,
    /// The type of each contact field.
    pub contact_field_types: contacts::ContactFieldTypes,
    /// Segments saved by name.
    pub segments: contacts::SavedSegments,
    /// When each number last texted and was texted.
    pub contact_activity: contacts::ContactActivity,
    /// Campaigns.
    pub campaigns: campaigns::CampaignsTable,
    /// Campaigns by the client's key.
    pub campaign_keys: campaigns::CampaignKeys,
    /// What each campaign did with each contact.
    pub campaign_targets: campaigns::CampaignTargets,
    /// The contacts each listed campaign was given.
    pub campaign_audience: campaigns::CampaignAudience,
    /// The funnel's events and the contacts' touches.
    pub funnel: funnel::FunnelEvents,
    /// Conversions reported to the API.
    pub conversions: funnel::Conversions,
    /// Tracked links.
    pub links: funnel::Links,
    /// Funnel events rolled up per day, past their retention.
    pub funnel_daily: funnel::FunnelDaily,
}

impl Store {
    /// Handles on every table.
    pub fn tables(&self) -> Tables {
        Tables {
            conversations: conversations::Conversations::new(self),
            transcript: transcript::Transcript::new(self),
            timers: timers::Timers::new(self),
            handoffs: handoffs::Handoffs::new(self),
            processed: processed::Processed::new(self),
            flow_versions: flow_versions::FlowVersions::new(self),
            outbox: outbox::Outbox::new(self),
            outbox_due: outbox::OutboxDue::new(self),
            provider_ids: outbox::ProviderIds::new(self),
            suppressions: suppressions::Suppressions::new(self),
            inbox: inbox::Inbox::new(self),
            inbox_seen: inbox::InboxSeen::new(self),
            events: events::EventQueue::new(self),
            consent: consent::ConsentLedger::new(self),
            send_log: send_log::SendLog::new(self),
            program_contacts: send_log::ProgramContacts::new(self),
            plugin_kv: plugin_kv::PluginKv::new(self),
            agents: agents::AgentsTable::new(self),
            contacts: contacts::ContactsTable::new(self),
            contact_addresses: contacts::ContactAddresses::new(self),
            contact_field_types: contacts::ContactFieldTypes::new(self),
            segments: contacts::SavedSegments::new(self),
            contact_activity: contacts::ContactActivity::new(self),
            campaigns: campaigns::CampaignsTable::new(self),
            campaign_keys: campaigns::CampaignKeys::new(self),
            campaign_targets: campaigns::CampaignTargets::new(self),
            campaign_audience: campaigns::CampaignAudience::new(self),
            funnel: funnel::FunnelEvents::new(self),
            conversions: funnel::Conversions::new(self),
            links: funnel::Links::new(self),
            funnel_daily: funnel::FunnelDaily::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of strings by string, for the batch tests.
    fn table(store: &Store) -> table::Table<String, String> {
        store.table(TableId::Suppressions)
    }

    fn put(batch: &mut Batch, table: &table::Table<String, String>, key: &str, value: &str) {
        table
            .put_in(batch, &key.to_owned(), &value.to_owned())
            .unwrap();
    }

    fn read(table: &table::Table<String, String>, key: &str) -> Option<String> {
        table.get(&key.to_owned()).unwrap()
    }

    #[test]
    fn a_batch_of_one_two_or_three_writes_applies_each_of_them_in_order() {
        let store = Store::temporary().unwrap();
        let table = table(&store);
        // One insert, written without sled's batch.
        let mut batch = Batch::new();
        put(&mut batch, &table, "a", "1");
        assert_eq!(batch.len(), 1);
        store.apply(batch).unwrap();
        assert_eq!(read(&table, "a").as_deref(), Some("1"));
        // One removal.
        let mut batch = Batch::new();
        table.remove_in(&mut batch, &"a".to_owned());
        store.apply(batch).unwrap();
        assert_eq!(read(&table, "a"), None);
        // Two writes to one key: the later wins, the first is not lost on the way to a batch.
        let mut batch = Batch::new();
        put(&mut batch, &table, "b", "1");
        put(&mut batch, &table, "b", "2");
        store.apply(batch).unwrap();
        assert_eq!(read(&table, "b").as_deref(), Some("2"));
        // Three writes: an insert, a removal of an earlier key, another insert.
        let mut batch = Batch::new();
        put(&mut batch, &table, "c", "3");
        table.remove_in(&mut batch, &"b".to_owned());
        put(&mut batch, &table, "d", "4");
        assert_eq!(batch.len(), 3);
        store.apply(batch).unwrap();
        assert_eq!(read(&table, "b"), None);
        assert_eq!(read(&table, "c").as_deref(), Some("3"));
        assert_eq!(read(&table, "d").as_deref(), Some("4"));
        // A table applies a batch of one the same way.
        let mut batch = Batch::new();
        put(&mut batch, &table, "e", "5");
        table.apply(batch).unwrap();
        assert_eq!(read(&table, "e").as_deref(), Some("5"));
    }
}

/// Many stores in one process, as on a cluster node (one per partition).
#[cfg(test)]
mod many_stores {
    use super::*;

    /// Writers on 64 durable stores at once, each committing multi-write batches (sled takes
    /// its process-wide lock for those) and flushing. With sled's `flush_async` this hung
    /// within a second or two on two cores: every thread of sled's pool sat in a flush waiting
    /// for a log write queued behind them.
    #[test]
    fn commits_on_many_stores_at_once_all_finish() {
        let dir = tempfile::tempdir().unwrap();
        let stores: Vec<Store> = (0..64)
            .map(|n| Store::open(&dir.path().join(format!("p{n}"))).unwrap())
            .collect();
        // The writers run on a runtime of their own: a hang blocks its worker threads inside
        // sled, where no timer of that runtime could fire; this thread waits for them instead.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(commit_on_all(stores));
            let _ = done.send(());
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("64 stores x 4 writers x 40 commits finish within a minute");
    }

    async fn commit_on_all(stores: Vec<Store>) {
        let mut writers = tokio::task::JoinSet::new();
        for (n, store) in stores.into_iter().enumerate() {
            for writer in 0..4 {
                let store = store.clone();
                writers.spawn(async move {
                    let table: table::Table<String, String> = store.table(TableId::Suppressions);
                    for i in 0..40 {
                        let mut batch = Batch::new();
                        for key in ["a", "b"] {
                            let key = format!("{n}-{writer}-{i}-{key}");
                            table.put_in(&mut batch, &key, &key).unwrap();
                        }
                        store.commit(batch).await.unwrap();
                    }
                });
            }
        }
        while writers.join_next().await.transpose().unwrap().is_some() {}
    }
}
