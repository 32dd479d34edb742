//! Conversation timers (wait timeouts, resolution deadlines), ordered by when they are due.
//!
//! Key: `<due time key> <conversation key> <n u64 BE>` ([`TimerKey`]): a range scan up to now
//! yields every due timer, oldest first; `n` (the conversation's `timers_set`) keeps two
//! timers of one conversation due in the same millisecond apart. A timer is removed in the
//! batch of the turn it causes, so it fires once, also across restarts.

use serde::{Deserialize, Serialize};

use super::codec::{json_value, time_key};
use super::conversations::ConversationKey;
use super::keys::{Reader, push_time, push_u64};
use super::table::{Key, Table};
use super::{Batch, Result, Store, TableId};

/// Where a timer is in the table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerKey {
    /// When it is due.
    pub due_ms: i64,
    /// Whose it is.
    pub conversation: ConversationKey,
    /// Its number in the conversation.
    pub n: u64,
}

impl TimerKey {
    /// The key as the conversation stores it (hex of its layout).
    pub fn to_hex(&self) -> String {
        let mut out = Vec::new();
        self.write(&mut out);
        hex::encode(out)
    }

    /// The key of [`TimerKey::to_hex`].
    pub fn from_hex(text: &str) -> Option<Self> {
        Self::read(&hex::decode(text).ok()?)
    }
}

impl Key for TimerKey {
    fn write(&self, out: &mut Vec<u8>) {
        push_time(out, self.due_ms);
        self.conversation.write(out);
        push_u64(out, self.n);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let due_ms = reader.time()?;
        let (conversation, n) = reader.rest_then_u64()?;
        Some(Self {
            due_ms,
            conversation: ConversationKey::read(conversation)?,
            n,
        })
    }
}

/// What a timer does when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Timer {
    /// The wait at `step` of run `run` times out.
    WaitTimeout {
        /// The run.
        run: u64,
        /// The wait step.
        step: String,
    },
    /// Run `run` has not resolved in time: escalate.
    ResolveDeadline {
        /// The run.
        run: u64,
    },
}

/// A timer row: which conversation and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimerRecord {
    /// Our number.
    pub our_number: String,
    /// The contact.
    pub contact: String,
    /// What to do.
    pub timer: Timer,
}

json_value!(TimerRecord);

/// The timers table.
#[derive(Debug, Clone)]
pub struct Timers {
    table: Table<TimerKey, TimerRecord>,
}

impl Timers {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Timers),
        }
    }

    /// Every timer due at or before `now_ms`, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn due(&self, now_ms: i64) -> Result<Vec<(TimerKey, TimerRecord)>> {
        let end = time_key(now_ms.saturating_add(1));
        self.table.range(&[], Some(end.as_slice())).collect()
    }

    /// When the next timer is due.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn next_due(&self) -> Result<Option<i64>> {
        Ok(self.table.first()?.map(|(key, _)| key.due_ms))
    }

    /// Whether the timer at `key` is still set.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn contains(&self, key: &TimerKey) -> Result<bool> {
        self.table.contains(key)
    }

    /// Adds setting a timer to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, key: &TimerKey, record: &TimerRecord) -> Result<()> {
        self.table.put_in(batch, key, record)
    }

    /// Adds removing a timer to `batch`.
    pub fn remove_in(&self, batch: &mut Batch, key: &TimerKey) {
        self.table.remove_in(batch, key);
    }

    /// How many timers are set (a full scan: for benchmarks and tools).
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn count(&self) -> Result<usize> {
        let mut count = 0;
        for row in self.table.all() {
            row?;
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(due_ms: i64, contact: &str, n: u64) -> TimerKey {
        TimerKey {
            due_ms,
            conversation: ConversationKey::new("+15550001000", contact),
            n,
        }
    }

    fn record(contact: &str) -> TimerRecord {
        TimerRecord {
            our_number: "+15550001000".into(),
            contact: contact.into(),
            timer: Timer::ResolveDeadline { run: 1 },
        }
    }

    #[test]
    fn due_timers_come_in_time_order_and_only_when_due() {
        let store = Store::temporary().unwrap();
        let timers = Timers::new(&store);
        let mut batch = Batch::new();
        for (due, contact, n) in [
            (30, "+12125550102", 0),
            (-5, "+12125550101", 7),
            (10, "+12125550100", 1),
        ] {
            timers
                .put_in(&mut batch, &key(due, contact, n), &record(contact))
                .unwrap();
        }
        store.apply(batch).unwrap();
        assert_eq!(timers.next_due().unwrap(), Some(-5));
        let due: Vec<i64> = timers
            .due(10)
            .unwrap()
            .iter()
            .map(|(k, _)| k.due_ms)
            .collect();
        assert_eq!(due, [-5, 10]);
        let mut batch = Batch::new();
        timers.remove_in(&mut batch, &key(-5, "+12125550101", 7));
        store.apply(batch).unwrap();
        assert!(!timers.contains(&key(-5, "+12125550101", 7)).unwrap());
        assert_eq!(timers.next_due().unwrap(), Some(10));
    }

    #[test]
    fn a_key_survives_its_hex_form() {
        let original = key(1_700_000_000_000, "+12125550100", 3);
        assert_eq!(TimerKey::from_hex(&original.to_hex()), Some(original));
        assert_eq!(TimerKey::from_hex("zz"), None);
    }
}
