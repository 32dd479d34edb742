//! The inbox: inbound texts acknowledged and not yet processed, the ones that failed every
//! attempt, and the provider message ids already accepted.
//!
//! - [`Inbox`]: pending texts under `<seq u64 BE>` (seqs from [`Store::generate_id`], so key
//!   order is arrival order), and dead letters in a table of their own under the same seq.
//! - [`InboxSeen`]: `<provider> 0x00 <provider's message id>` → seq: a provider's retry of a
//!   text already accepted is recognised and acknowledged without storing it again.

use serde::{Deserialize, Serialize};

use super::codec::TimeMs;
use super::codec::json_value;
use super::consent::ALL_PROGRAMS;
use super::keys::{Pair, Seq};
use super::table::{Cursor, Swept, Table};
use super::{Batch, Result, Store, TableId};

/// An acknowledged inbound text and its processing attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEvent {
    /// Arrival order.
    pub seq: u64,
    /// The provider.
    pub provider: String,
    /// The provider's message id.
    pub message_id: String,
    /// The contact.
    pub from: String,
    /// Our number.
    pub to: String,
    /// The text.
    pub body: String,
    /// Attached media count.
    pub num_media: u32,
    /// When it was acknowledged.
    pub received_at_ms: i64,
    /// Processing attempts so far.
    pub attempts: u32,
    /// When the next attempt may run.
    pub next_attempt_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// What ingress decided the text means for consent.
    #[serde(default)]
    pub screening: Screening,
    /// The webhook's span (W3C `traceparent`), so the turn joins its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

impl InboxEvent {
    /// The id the flow runtime records the event under: `<provider>:<message id>`.
    pub fn event_id(&self) -> String {
        format!("{}:{}", self.provider, self.message_id)
    }
}

/// What ingress decided about an inbound text, carried with it through the inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Screening {
    /// Nothing to do with consent: the flows handle it.
    #[default]
    Pass,
    /// The contact opted out of `program` ([`ALL_PROGRAMS`] for all); `confirm` is false when
    /// they already were, so a repeated STOP gets no second confirmation.
    OptedOut {
        /// The program, or `*`.
        program: String,
        /// The keyword or phrase that did it.
        keyword: String,
        /// Whether to send the one confirmation.
        confirm: bool,
    },
    /// HELP: answer with the program's help text.
    Help {
        /// The conversation's program, when there is one.
        program: Option<String>,
    },
    /// An opted-out contact opted back in to `program`.
    OptedIn {
        /// The program.
        program: String,
    },
    /// The text may be a revocation: ask once.
    AskRevocation {
        /// The conversation's program, when there is one.
        program: Option<String>,
    },
}

impl Screening {
    /// The program the answer speaks for: the one opted out of or into, or the
    /// conversation's; `None` for all programs or none.
    pub fn program(&self) -> Option<&str> {
        match self {
            Self::OptedOut { program, .. } | Self::OptedIn { program } => {
                Some(program.as_str()).filter(|program| *program != ALL_PROGRAMS)
            }
            Self::Help { program } | Self::AskRevocation { program } => program.as_deref(),
            Self::Pass => None,
        }
    }
}

json_value!(InboxEvent);

/// Pending inbound texts and dead letters.
#[derive(Debug, Clone)]
pub struct Inbox {
    pending: Table<Seq, InboxEvent>,
    dead: Table<Seq, InboxEvent>,
}

impl Inbox {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            pending: store.table(TableId::Inbox),
            dead: store.table(TableId::InboxDead),
        }
    }

    /// Every pending text, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn pending(&self) -> Result<Vec<InboxEvent>> {
        self.pending
            .all()
            .map(|row| row.map(|(_, event)| event))
            .collect()
    }

    /// How many texts are pending.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn pending_len(&self) -> Result<usize> {
        let mut count = 0;
        for row in self.pending.all() {
            row?;
            count += 1;
        }
        Ok(count)
    }

    /// The pending text with `seq`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or the row does not decode.
    pub fn get(&self, seq: u64) -> Result<Option<InboxEvent>> {
        self.pending.get(&Seq(seq))
    }

    /// Whether the text with `seq` is still pending.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn contains(&self, seq: u64) -> Result<bool> {
        self.pending.contains(&Seq(seq))
    }

    /// Adds storing (or updating) a pending text to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, event: &InboxEvent) -> Result<()> {
        self.pending.put_in(batch, &Seq(event.seq), event)
    }

    /// Adds removing a processed text to `batch`.
    pub fn remove_in(&self, batch: &mut Batch, seq: u64) {
        self.pending.remove_in(batch, &Seq(seq));
    }

    /// One step of expiring the dead letters received before `before_ms`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn expire_dead_in(
        &self,
        batch: &mut Batch,
        from: &Cursor,
        limit: usize,
        before_ms: i64,
    ) -> Result<Swept> {
        self.dead.sweep_in(batch, from, limit, |_, event| {
            event.received_at_ms < before_ms
        })
    }

    /// Every dead letter, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn dead_letters(&self) -> Result<Vec<InboxEvent>> {
        self.dead
            .all()
            .map(|row| row.map(|(_, event)| event))
            .collect()
    }

    /// Adds moving `event` from the pending texts to the dead letters to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn bury_in(&self, batch: &mut Batch, event: &InboxEvent) -> Result<()> {
        self.pending.remove_in(batch, &Seq(event.seq));
        self.dead.put_in(batch, &Seq(event.seq), event)
    }

    /// Adds moving `event` from the dead letters back to the pending texts to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn revive_in(&self, batch: &mut Batch, event: &InboxEvent) -> Result<()> {
        self.dead.remove_in(batch, &Seq(event.seq));
        self.pending.put_in(batch, &Seq(event.seq), event)
    }
}

/// Provider message ids already accepted.
#[derive(Debug, Clone)]
pub struct InboxSeen {
    /// When each was accepted. Rows written before retention existed hold the inbox seq
    /// instead, which reads as long ago: they go at the first compaction, and the processed
    /// marks still refuse a replay of any of them within the window.
    table: Table<Pair, TimeMs>,
}

impl InboxSeen {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::InboxSeen),
        }
    }

    /// Whether `provider`'s `message_id` was accepted.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn contains(&self, provider: &str, message_id: &str) -> Result<bool> {
        self.table
            .contains(&Pair(provider.to_owned(), message_id.to_owned()))
    }

    /// One step of expiring the ids accepted before `before_ms` (see [`crate::retention`]),
    /// with the texts' marks in `processed` (`<provider>:<id>`), which have no index entries
    /// of their own ([`super::processed::Processed::put_inbound_in`]); how many marks went.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn expire_in(
        &self,
        batch: &mut Batch,
        from: &Cursor,
        limit: usize,
        before_ms: i64,
        processed: &super::processed::Processed,
    ) -> Result<(Swept, u64)> {
        let mut marks = Vec::new();
        let swept = self.table.expire_indexed_in(
            batch,
            from,
            limit,
            before_ms,
            |Pair(provider, id), at| {
                let expired = at.0 < before_ms;
                if expired {
                    marks.push(format!("{provider}:{id}"));
                }
                Ok(expired)
            },
        )?;
        for mark in &marks {
            processed.remove_in(batch, mark);
        }
        Ok((swept, marks.len() as u64))
    }

    /// Adds recording `provider`'s `message_id` as accepted at `at_ms` to `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice (the value is 8 bytes).
    pub fn put_in(
        &self,
        batch: &mut Batch,
        provider: &str,
        message_id: &str,
        at_ms: i64,
    ) -> Result<()> {
        self.table.put_expiring_in(
            batch,
            &Pair(provider.to_owned(), message_id.to_owned()),
            &TimeMs(at_ms),
            at_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> InboxEvent {
        InboxEvent {
            trace: None,
            seq,
            provider: "twilio".into(),
            message_id: format!("SM{seq}"),
            from: "+12125550100".into(),
            to: "+15550001000".into(),
            body: "hi".into(),
            num_media: 0,
            received_at_ms: 1,
            attempts: 0,
            next_attempt_ms: 1,
            last_error: None,
            screening: Screening::Pass,
        }
    }

    #[test]
    fn texts_move_between_pending_and_dead_letters_atomically() {
        let store = Store::temporary().unwrap();
        let tables = store.tables();
        let mut batch = Batch::new();
        for seq in [3, 1, 2] {
            tables.inbox.put_in(&mut batch, &event(seq)).unwrap();
        }
        tables
            .inbox_seen
            .put_in(&mut batch, "twilio", "SM1", 1)
            .unwrap();
        store.apply(batch).unwrap();
        let seqs: Vec<u64> = tables
            .inbox
            .pending()
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert!(tables.inbox_seen.contains("twilio", "SM1").unwrap());
        assert!(!tables.inbox_seen.contains("telnyx", "SM1").unwrap());

        let mut batch = Batch::new();
        tables.inbox.bury_in(&mut batch, &event(2)).unwrap();
        store.apply(batch).unwrap();
        assert_eq!(tables.inbox.pending_len().unwrap(), 2);
        assert_eq!(tables.inbox.dead_letters().unwrap(), [event(2)]);

        let mut batch = Batch::new();
        tables.inbox.revive_in(&mut batch, &event(2)).unwrap();
        store.apply(batch).unwrap();
        assert!(tables.inbox.dead_letters().unwrap().is_empty());
        assert_eq!(tables.inbox.get(2).unwrap(), Some(event(2)));
    }
}
