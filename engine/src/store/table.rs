//! A typed table over a key prefix of the store's tree: the one place keys get their table byte
//! and values their codec.

use std::marker::PhantomData;
use std::ops::Bound;

use super::codec::time_key;
use super::{Batch, Result, StoreError};

/// A table: the first byte of each of its keys. The numbers are part of the on-disk format:
/// never reuse or renumber one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TableId {
    /// [`super::conversations::Conversations`].
    Conversations = 0x01,
    /// [`super::transcript::Transcript`].
    Transcript = 0x02,
    /// [`super::timers::Timers`].
    Timers = 0x03,
    /// [`super::handoffs::Handoffs`].
    Handoffs = 0x04,
    /// [`super::processed::Processed`].
    Processed = 0x05,
    /// [`super::flow_versions::FlowVersions`].
    FlowVersions = 0x06,
    /// [`super::outbox::Outbox`].
    Outbox = 0x07,
    /// [`super::outbox::OutboxDue`].
    OutboxDue = 0x08,
    /// [`super::outbox::ProviderIds`].
    ProviderIds = 0x09,
    /// [`super::suppressions::Suppressions`].
    Suppressions = 0x0a,
    /// [`super::inbox::Inbox`], pending texts.
    Inbox = 0x0b,
    /// [`super::inbox::InboxSeen`].
    InboxSeen = 0x0c,
    /// [`super::inbox::Inbox`], dead letters.
    InboxDead = 0x0d,
    /// [`super::events::EventQueue`], pending deliveries.
    Events = 0x0e,
    /// [`super::events::EventQueue`], dead letters.
    EventsDead = 0x0f,
    /// [`super::consent::ConsentLedger`].
    Consent = 0x10,
    /// [`super::send_log::SendLog`].
    SendLog = 0x11,
    /// [`super::send_log::ProgramContacts`].
    ProgramContacts = 0x12,
    /// [`super::plugin_kv::PluginKv`].
    PluginKv = 0x13,
    /// [`super::agents::AgentsTable`].
    Agents = 0x14,
    /// [`super::contacts::ContactsTable`].
    Contacts = 0x15,
    /// [`super::contacts::ContactAddresses`].
    ContactAddresses = 0x16,
    /// [`super::contacts::ContactFieldTypes`].
    ContactFieldTypes = 0x17,
    /// [`super::contacts::SavedSegments`].
    Segments = 0x18,
    /// [`super::contacts::ContactActivity`].
    ContactActivity = 0x19,
    /// [`super::campaigns::CampaignsTable`].
    Campaigns = 0x1a,
    /// [`super::campaigns::CampaignKeys`].
    CampaignKeys = 0x1b,
    /// [`super::campaigns::CampaignTargets`].
    CampaignTargets = 0x1c,
    /// [`super::campaigns::CampaignAudience`].
    CampaignAudience = 0x1d,
    /// [`super::funnel::FunnelEvents`].
    FunnelEvents = 0x1e,
    /// The touches of [`super::funnel::FunnelEvents`].
    Touches = 0x1f,
    /// [`super::funnel::Conversions`].
    Conversions = 0x20,
    /// [`super::funnel::Links`].
    Links = 0x21,
    /// [`super::funnel::FunnelDaily`].
    FunnelDaily = 0x22,
    /// When rows of the tables with a retention window were written, in time order per
    /// table (see [`Table::put_expiring_in`]).
    Expiry = 0x23,
    /// The record seqs of each number in [`super::consent::ConsentLedger`].
    ConsentByNumber = 0x24,
}

impl TableId {
    /// The table's name, as errors and the migration name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Conversations => "conversations",
            Self::Transcript => "transcript",
            Self::Timers => "timers",
            Self::Handoffs => "handoffs",
            Self::Processed => "processed_events",
            Self::FlowVersions => "flow_versions",
            Self::Outbox => "outbox",
            Self::OutboxDue => "outbox_due",
            Self::ProviderIds => "outbox_provider_ids",
            Self::Suppressions => "suppressions",
            Self::Inbox => "inbox",
            Self::InboxSeen => "inbox_seen",
            Self::InboxDead => "dead_letters",
            Self::Events => "events",
            Self::EventsDead => "event_dead_letters",
            Self::Consent => "consent_ledger",
            Self::SendLog => "send_log",
            Self::ProgramContacts => "program_contacts",
            Self::PluginKv => "plugin_kv",
            Self::Agents => "agents",
            Self::Contacts => "contacts",
            Self::ContactAddresses => "contact_addresses",
            Self::ContactFieldTypes => "contact_field_types",
            Self::Segments => "segments",
            Self::ContactActivity => "contact_activity",
            Self::Campaigns => "campaigns",
            Self::CampaignKeys => "campaign_keys",
            Self::CampaignTargets => "campaign_targets",
            Self::CampaignAudience => "campaign_audience",
            Self::FunnelEvents => "funnel_events",
            Self::Touches => "touches",
            Self::Conversions => "conversions",
            Self::Links => "links",
            Self::FunnelDaily => "funnel_daily",
            Self::Expiry => "expiry",
            Self::ConsentByNumber => "consent_by_number",
        }
    }

    /// Every table.
    pub const ALL: [TableId; 36] = [
        Self::Conversations,
        Self::Transcript,
        Self::Timers,
        Self::Handoffs,
        Self::Processed,
        Self::FlowVersions,
        Self::Outbox,
        Self::OutboxDue,
        Self::ProviderIds,
        Self::Suppressions,
        Self::Inbox,
        Self::InboxSeen,
        Self::InboxDead,
        Self::Events,
        Self::EventsDead,
        Self::Consent,
        Self::SendLog,
        Self::ProgramContacts,
        Self::PluginKv,
        Self::Agents,
        Self::Contacts,
        Self::ContactAddresses,
        Self::ContactFieldTypes,
        Self::Segments,
        Self::ContactActivity,
        Self::Campaigns,
        Self::CampaignKeys,
        Self::CampaignTargets,
        Self::CampaignAudience,
        Self::FunnelEvents,
        Self::Touches,
        Self::Conversions,
        Self::Links,
        Self::FunnelDaily,
        Self::Expiry,
        Self::ConsentByNumber,
    ];

    fn byte(self) -> u8 {
        self as u8
    }
}

/// A key layout: how a key is written after its table byte, and read back.
pub(super) trait Key: Sized {
    /// Appends the key's bytes.
    fn write(&self, out: &mut Vec<u8>);
    /// The key written by [`Key::write`], or `None` when `bytes` is not one.
    fn read(bytes: &[u8]) -> Option<Self>;
}

/// A value codec.
pub(super) trait Value: Sized {
    /// The stored bytes.
    fn encode(&self) -> std::result::Result<Vec<u8>, String>;
    /// The value of stored bytes.
    fn decode(bytes: &[u8]) -> std::result::Result<Self, String>;
}

/// Where a sweep of a table goes on: after the layout of the last row it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cursor {
    /// The table's first row.
    #[default]
    Start,
    /// After this key layout.
    After(Vec<u8>),
    /// Past the last row: the sweep is over.
    Done,
}

impl Cursor {
    /// Whether the sweep is over.
    pub fn is_done(&self) -> bool {
        *self == Self::Done
    }
}

/// What one step of a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Where the next step goes on.
    pub next: Cursor,
    /// Rows read.
    pub scanned: u64,
    /// Rows whose removal was added to the batch.
    pub removed: u64,
}

impl Swept {
    /// Nothing read, and nothing more to read.
    fn default_done() -> Self {
        Self {
            next: Cursor::Done,
            ..Self::default()
        }
    }
}

/// A table of `K` to `V` in the store's tree.
pub(super) struct Table<K, V> {
    tree: sled::Tree,
    id: TableId,
    marker: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
            id: self.id,
            marker: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Table").field(&self.id.name()).finish()
    }
}

impl<K: Key, V: Value> Table<K, V> {
    pub(super) fn new(tree: sled::Tree, id: TableId) -> Self {
        Self {
            tree,
            id,
            marker: PhantomData,
        }
    }

    fn io(&self) -> impl Fn(sled::Error) -> StoreError {
        let table = self.id.name();
        move |source| StoreError::Io { table, source }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            table: self.id.name(),
            reason: reason.into(),
        }
    }

    /// The full key of `key`: the table byte, then its layout.
    fn full_key(&self, key: &K) -> Vec<u8> {
        let mut bytes = vec![self.id.byte()];
        key.write(&mut bytes);
        bytes
    }

    /// The full key of a layout prefix.
    fn full_prefix(&self, prefix: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(prefix.len() + 1);
        bytes.push(self.id.byte());
        bytes.extend_from_slice(prefix);
        bytes
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V> {
        V::decode(bytes).map_err(|reason| self.corrupt(reason))
    }

    fn encode_value(&self, value: &V) -> Result<Vec<u8>> {
        value.encode().map_err(|reason| StoreError::Encode {
            table: self.id.name(),
            reason,
        })
    }

    fn decode_row(&self, key: &[u8], value: &[u8]) -> Result<(K, V)> {
        let layout = key.get(1..).unwrap_or_default();
        let key = K::read(layout)
            .ok_or_else(|| self.corrupt(format!("malformed key {}", hex::encode(layout))))?;
        Ok((key, self.decode_value(value)?))
    }

    /// The value at `key`.
    pub(super) fn get(&self, key: &K) -> Result<Option<V>> {
        self.tree
            .get(self.full_key(key))
            .map_err(self.io())?
            .map(|bytes| self.decode_value(&bytes))
            .transpose()
    }

    /// Whether `key` has a value.
    pub(super) fn contains(&self, key: &K) -> Result<bool> {
        self.tree
            .contains_key(self.full_key(key))
            .map_err(self.io())
    }

    /// Writes `value` at `key` now, on its own (atomic, not durable until a flush).
    pub(super) fn insert(&self, key: &K, value: &V) -> Result<()> {
        let value = self.encode_value(value)?;
        self.tree
            .insert(self.full_key(key), value)
            .map_err(self.io())?;
        Ok(())
    }

    /// Writes `value` at `key` now unless `key` has a value; whether it was written.
    pub(super) fn insert_new(&self, key: &K, value: &V) -> Result<bool> {
        let value = self.encode_value(value)?;
        let swapped = self
            .tree
            .compare_and_swap(self.full_key(key), None::<&[u8]>, Some(value))
            .map_err(self.io())?;
        Ok(swapped.is_ok())
    }

    /// Removes `key` now, on its own.
    pub(super) fn remove(&self, key: &K) -> Result<()> {
        self.tree.remove(self.full_key(key)).map_err(self.io())?;
        Ok(())
    }

    /// Adds writing `value` at `key` to `batch`.
    pub(super) fn put_in(&self, batch: &mut Batch, key: &K, value: &V) -> Result<()> {
        let value = self.encode_value(value)?;
        batch.insert(self.id, self.full_key(key), value);
        Ok(())
    }

    /// Adds removing `key` to `batch`.
    pub(super) fn remove_in(&self, batch: &mut Batch, key: &K) {
        batch.remove(self.id, self.full_key(key));
    }

    /// [`Table::put_in`], and the row's place in the expiry index at `at_ms` (when it was
    /// written, or what its retention counts from): [`Table::expire_indexed_in`] then reads
    /// only the rows past a window, not the whole table. Writing the same row again at the
    /// same time writes the same index entry.
    pub(super) fn put_expiring_in(
        &self,
        batch: &mut Batch,
        key: &K,
        value: &V,
        at_ms: i64,
    ) -> Result<()> {
        self.put_in(batch, key, value)?;
        let mut index = self.expiry_prefix();
        index.extend_from_slice(&time_key(at_ms));
        key.write(&mut index);
        batch.insert(TableId::Expiry, index, Vec::new());
        Ok(())
    }

    /// The expiry index's keys of this table start so: its own byte, then this table's.
    fn expiry_prefix(&self) -> Vec<u8> {
        vec![TableId::Expiry.byte(), self.id.byte()]
    }

    /// One step of an indexed expiry: up to `limit` of this table's index entries older than
    /// `before_ms`, from `from` on, oldest first. A row `expired` picks goes with its entry; an
    /// entry whose row is gone (erased, or written again at another time) goes alone; a row
    /// not yet expired (a text still queued) stays for a later pass. The sweep is over at the
    /// first entry at or after `before_ms`, so its cost follows what expires, not the table.
    pub(super) fn expire_indexed_in(
        &self,
        batch: &mut Batch,
        from: &Cursor,
        limit: usize,
        before_ms: i64,
        mut expired: impl FnMut(&K, &V) -> Result<bool>,
    ) -> Result<Swept> {
        let prefix = self.expiry_prefix();
        let start = match from {
            Cursor::Start => Bound::Included(prefix.clone()),
            Cursor::After(layout) => Bound::Excluded(layout.clone()),
            Cursor::Done => return Ok(Swept::default_done()),
        };
        let mut end = prefix.clone();
        end.extend_from_slice(&time_key(before_ms));
        let mut swept = Swept::default_done();
        let mut last = None;
        for entry in self.tree.range((start, Bound::Excluded(end))).take(limit) {
            let (index, _) = entry.map_err(self.io())?;
            swept.scanned += 1;
            let layout = index.get(prefix.len() + 8..).unwrap_or_default();
            let key = K::read(layout).ok_or_else(|| {
                self.corrupt(format!("malformed expiry entry {}", hex::encode(&index)))
            })?;
            let gone = match self.get(&key)? {
                None => true,
                Some(value) if expired(&key, &value)? => {
                    self.remove_in(batch, &key);
                    swept.removed += 1;
                    true
                }
                Some(_) => false,
            };
            if gone {
                batch.remove(TableId::Expiry, index.to_vec());
            }
            last = Some(index);
        }
        if let Some(index) = last
            && swept.scanned == limit as u64
        {
            swept.next = Cursor::After(index.to_vec());
        }
        Ok(swept)
    }

    /// Applies `batch` to the store's tree (every table shares it): see [`super::Store::apply`].
    pub(super) fn apply(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        batch.apply_to(&self.tree).map_err(self.io())
    }

    /// Rows whose layout starts with `prefix`, in key order.
    pub(super) fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(K, V)>> + use<'_, K, V> {
        self.tree
            .scan_prefix(self.full_prefix(prefix))
            .map(move |row| {
                let (key, value) = row.map_err(self.io())?;
                self.decode_row(&key, &value)
            })
    }

    /// Rows whose layout is in `[start, end)`, in key order (`end` `None`: to the table's end).
    pub(super) fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> impl DoubleEndedIterator<Item = Result<(K, V)>> + use<'_, K, V> {
        let start = Bound::Included(self.full_prefix(start));
        let end = match end {
            Some(end) => Bound::Excluded(self.full_prefix(end)),
            None => Bound::Excluded(vec![self.id.byte() + 1]),
        };
        self.tree.range((start, end)).map(move |row| {
            let (key, value) = row.map_err(self.io())?;
            self.decode_row(&key, &value)
        })
    }

    /// Up to `limit` rows from `from` on, in key order, and where the next call goes on.
    pub(super) fn rows_from(&self, from: &Cursor, limit: usize) -> Result<(Vec<(K, V)>, Cursor)> {
        let start = match from {
            Cursor::Start => Bound::Included(self.full_prefix(&[])),
            Cursor::After(layout) => Bound::Excluded(self.full_prefix(layout)),
            Cursor::Done => return Ok((Vec::new(), Cursor::Done)),
        };
        let end = Bound::Excluded(vec![self.id.byte() + 1]);
        let mut rows = Vec::new();
        let mut last = None;
        for row in self.tree.range((start, end)).take(limit) {
            let (key, value) = row.map_err(self.io())?;
            rows.push(self.decode_row(&key, &value)?);
            last = Some(key);
        }
        let next = match last {
            Some(key) if rows.len() == limit => {
                Cursor::After(key.get(1..).unwrap_or_default().to_vec())
            }
            _ => Cursor::Done,
        };
        Ok((rows, next))
    }

    /// One step of a sweep: reads up to `limit` rows from `from` on and adds removing those
    /// `expired` picks to `batch`. Bounded, so a sweep never holds the store for long.
    pub(super) fn sweep_in(
        &self,
        batch: &mut Batch,
        from: &Cursor,
        limit: usize,
        mut expired: impl FnMut(&K, &V) -> bool,
    ) -> Result<Swept> {
        let (rows, next) = self.rows_from(from, limit)?;
        let mut swept = Swept {
            next,
            scanned: rows.len() as u64,
            removed: 0,
        };
        for (key, _) in rows.iter().filter(|(key, value)| expired(key, value)) {
            self.remove_in(batch, key);
            swept.removed += 1;
        }
        Ok(swept)
    }

    /// Every row, in key order.
    pub(super) fn all(&self) -> impl DoubleEndedIterator<Item = Result<(K, V)>> + '_ {
        self.range(&[], None)
    }

    /// The first row.
    pub(super) fn first(&self) -> Result<Option<(K, V)>> {
        self.all().next().transpose()
    }

    /// The last row.
    pub(super) fn last(&self) -> Result<Option<(K, V)>> {
        self.all().next_back().transpose()
    }

    /// Every row in key order, each value decoded on its own: a value that does not decode is
    /// an `Err` in its place, so a walk can report where the damage is and go on.
    pub(super) fn raw_rows(&self) -> impl Iterator<Item = Result<(K, Result<V>)>> + '_ {
        let start = vec![self.id.byte()];
        let end = vec![self.id.byte() + 1];
        self.tree.range(start..end).map(move |row| {
            let (key, value) = row.map_err(self.io())?;
            let layout = key.get(1..).unwrap_or_default();
            let key = K::read(layout)
                .ok_or_else(|| self.corrupt(format!("malformed key {}", hex::encode(layout))))?;
            Ok((key, self.decode_value(&value)))
        })
    }

    /// Writes `bytes` at `key` as they are, bypassing the codec: for tests that damage a row.
    pub(super) fn insert_raw(&self, key: &K, bytes: &[u8]) -> Result<()> {
        self.tree
            .insert(self.full_key(key), bytes)
            .map_err(self.io())?;
        Ok(())
    }
}
