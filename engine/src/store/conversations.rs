//! Conversations: one row per (our number, contact), rewritten by every turn.
//!
//! Key: `<our number> 0x00 <contact>` ([`ConversationKey`]). Ordered by our number, then
//! contact; nothing relies on the order but the transcript's and timers' layouts, which embed
//! this key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::keys::{Reader, push_str};
use super::table::{Key, Table};
use super::{Batch, Result, Store, TableId};

/// Which conversation: our number and the contact's, both E.164.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConversationKey {
    /// Our number.
    pub ours: String,
    /// The contact's number.
    pub contact: String,
}

impl ConversationKey {
    /// The conversation between `ours` and `contact`.
    pub fn new(ours: &str, contact: &str) -> Self {
        Self {
            ours: ours.to_owned(),
            contact: contact.to_owned(),
        }
    }
}

impl Key for ConversationKey {
    fn write(&self, out: &mut Vec<u8>) {
        push_str(out, &self.ours);
        out.extend_from_slice(self.contact.as_bytes());
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let ours = reader.str()?;
        Some(Self {
            ours,
            contact: reader.rest_str()?,
        })
    }
}

/// The state of one (our number, contact) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Our number, E.164.
    pub our_number: String,
    /// The contact's number, E.164.
    pub contact: String,
    /// The contact's locale (`en`, `es-MX`), when known: a start request or the operator set
    /// it. Unknown, texts are in the flow's locale.
    #[serde(default)]
    pub locale: Option<String>,
    /// Conversation fields, kept across runs.
    pub fields: BTreeMap<String, String>,
    /// The flow of the current (or last) run, pinned to its version.
    pub flow: Option<FlowRef>,
    /// Where the conversation is.
    pub status: Status,
    /// Counts flow runs: timers carry it, so a timer from an earlier run does nothing.
    pub run: u64,
    /// When the current run started.
    pub run_started_at_ms: i64,
    /// When anything last happened.
    pub updated_at_ms: i64,
    /// Intents of earlier inbound texts, most recent first (at most [`MAX_INTENTS`]).
    pub last_intents: Vec<String>,
    /// How often each question (normalised) was asked in this run.
    pub questions: BTreeMap<String, u32>,
    /// Transcript entries written so far; the next entry gets this sequence number.
    pub transcript_len: u64,
    /// Timers set so far: each timer's key ends with its number, so no two collide.
    #[serde(default)]
    pub timers_set: u64,
    /// The key (hex) of the current wait's timeout.
    #[serde(default)]
    pub wait_timer: Option<String>,
    /// The key (hex) of the current run's resolution deadline.
    #[serde(default)]
    pub deadline_timer: Option<String>,
    /// The messaging program of the latest run: what a STOP from the contact opts out of.
    #[serde(default)]
    pub program: Option<String>,
    /// Whether the latest run's flow is marketing.
    #[serde(default)]
    pub marketing: bool,
    /// The brand of the latest run's flow.
    #[serde(default)]
    pub brand: Option<String>,
    /// When the contact was last asked whether a text meant "stop".
    #[serde(default)]
    pub revocation_asked_at_ms: Option<i64>,
    /// The campaign that started the current run, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// How long the current run's texts stay worth sending (ms), when its start said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_valid_for_ms: Option<i64>,
}

/// How many past intents a conversation keeps for plugins' context.
pub const MAX_INTENTS: usize = 10;

impl Conversation {
    /// A conversation that has never had a run.
    pub fn new(our_number: &str, contact: &str, now_ms: i64) -> Self {
        Self {
            our_number: our_number.to_owned(),
            contact: contact.to_owned(),
            locale: None,
            fields: BTreeMap::new(),
            flow: None,
            status: Status::Idle,
            run: 0,
            run_started_at_ms: now_ms,
            updated_at_ms: now_ms,
            last_intents: Vec::new(),
            questions: BTreeMap::new(),
            transcript_len: 0,
            timers_set: 0,
            wait_timer: None,
            deadline_timer: None,
            program: None,
            marketing: false,
            brand: None,
            revocation_asked_at_ms: None,
            campaign: None,
            text_valid_for_ms: None,
        }
    }

    /// Its key.
    pub fn key(&self) -> ConversationKey {
        ConversationKey::new(&self.our_number, &self.contact)
    }

    /// Whether a flow run is under way (waiting for the contact, or with a person).
    pub fn is_active(&self) -> bool {
        matches!(
            self.status,
            Status::Waiting { .. } | Status::HandedOff { .. }
        )
    }
}

/// A flow id and the version a run is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRef {
    /// The flow's id.
    pub id: String,
    /// Its version (a hash of the file).
    pub version: String,
}

/// Where a conversation is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// No run yet.
    Idle,
    /// Waiting for a reply at `step` until `until_ms`.
    Waiting {
        /// The wait step.
        step: String,
        /// When the timeout fires.
        until_ms: i64,
    },
    /// With a person; the bot stays silent.
    HandedOff {
        /// The queue.
        queue: String,
        /// Why.
        reason: String,
        /// Since when.
        at_ms: i64,
    },
    /// The run ended.
    Ended {
        /// The outcome, for the funnel.
        outcome: Option<String>,
        /// When.
        at_ms: i64,
    },
}

json_value!(Conversation);

/// The conversations table.
#[derive(Debug, Clone)]
pub struct Conversations {
    table: Table<ConversationKey, Conversation>,
}

impl Conversations {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Conversations),
        }
    }

    /// The conversation at `key`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or the row does not decode.
    pub fn get(&self, key: &ConversationKey) -> Result<Option<Conversation>> {
        self.table.get(key)
    }

    /// Adds writing `conversation` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, conversation: &Conversation) -> Result<()> {
        self.table.put_in(batch, &conversation.key(), conversation)
    }

    /// How many conversations there are (a full scan: for benchmarks and tools).
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

    #[test]
    fn a_conversation_round_trips_under_its_key() {
        let store = Store::temporary().unwrap();
        let table = Conversations::new(&store);
        let mut conversation = Conversation::new("+15550001000", "+12125550100", 7);
        conversation.fields.insert("name".into(), "Ana".into());
        let mut batch = Batch::new();
        table.put_in(&mut batch, &conversation).unwrap();
        store.apply(batch).unwrap();
        assert_eq!(table.get(&conversation.key()).unwrap(), Some(conversation));
        assert_eq!(
            table
                .get(&ConversationKey::new("+15550001000", "+12125550101"))
                .unwrap(),
            None
        );
        assert_eq!(table.count().unwrap(), 1);
    }

    #[test]
    fn keys_read_back_and_sort_by_our_number_then_contact() {
        let keys = [
            ConversationKey::new("+1555", "+1212"),
            ConversationKey::new("+1555", "+1213"),
            ConversationKey::new("+15550", "+1000"),
        ];
        let bytes: Vec<Vec<u8>> = keys
            .iter()
            .map(|key| {
                let mut out = Vec::new();
                key.write(&mut out);
                out
            })
            .collect();
        assert!(bytes.windows(2).all(|pair| pair[0] < pair[1]));
        for (key, written) in keys.iter().zip(&bytes) {
            assert_eq!(ConversationKey::read(written).as_ref(), Some(key));
        }
    }
}
