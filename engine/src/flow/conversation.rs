//! A conversation's stored state, its transcript entries and its timers.
//!
//! There is one conversation per (our number, contact number): every flow run with that contact
//! appends to the same transcript, so an agent taking over sees the whole history.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The state of one (our number, contact) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Our number, E.164.
    pub our_number: String,
    /// The contact's number, E.164.
    pub contact: String,
    /// The contact's locale (`en`, `es`).
    pub locale: String,
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
}

/// How many past intents a conversation keeps for plugins' context.
pub const MAX_INTENTS: usize = 10;

impl Conversation {
    /// A conversation that has never had a run.
    pub fn new(our_number: &str, contact: &str, now_ms: i64) -> Self {
        Self {
            our_number: our_number.to_owned(),
            contact: contact.to_owned(),
            locale: "en".to_owned(),
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
        }
    }

    /// Whether a flow run is under way (waiting for the contact, or with a person).
    pub fn is_active(&self) -> bool {
        matches!(
            self.status,
            Status::Waiting { .. } | Status::HandedOff { .. }
        )
    }
}

/// The key of a conversation: `<our number> 0x00 <contact>`.
pub fn conversation_key(our_number: &str, contact: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(our_number.len() + contact.len() + 1);
    key.extend_from_slice(our_number.as_bytes());
    key.push(0);
    key.extend_from_slice(contact.as_bytes());
    key
}

/// The key of transcript entry `seq` of the conversation `conversation`.
pub fn transcript_key(conversation: &[u8], seq: u64) -> Vec<u8> {
    let mut key = transcript_prefix(conversation);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The prefix every transcript entry of `conversation` starts with.
pub fn transcript_prefix(conversation: &[u8]) -> Vec<u8> {
    let mut key = conversation.to_vec();
    key.push(0);
    key
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

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its sequence number in the conversation.
    pub seq: u64,
    /// When.
    pub at_ms: i64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What a transcript entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A text from the contact.
    Inbound {
        /// The provider's message id.
        message_id: String,
        /// The text.
        text: String,
    },
    /// A text to the contact, queued in the outbox.
    Outbound {
        /// The outbox id.
        message_id: String,
        /// The text.
        text: String,
        /// The step that sent it.
        step: String,
        /// Segments billed.
        segments: usize,
    },
    /// A flow run began.
    Started {
        /// The flow.
        flow: String,
        /// Its version.
        version: String,
        /// `api`, `keyword`, `catch_all`.
        trigger: String,
    },
    /// The run entered a step.
    Step {
        /// The step.
        step: String,
    },
    /// A classifier's answer.
    Classified {
        /// The intent.
        intent: String,
        /// Its confidence.
        confidence: f32,
    },
    /// A split assigned a variant.
    Variant {
        /// The split step.
        step: String,
        /// The variant.
        variant: String,
    },
    /// A wait timed out.
    TimedOut {
        /// The wait step.
        step: String,
    },
    /// A step failed.
    Error {
        /// The step.
        step: String,
        /// What went wrong.
        message: String,
    },
    /// The conversation went to people.
    Handoff {
        /// The queue.
        queue: String,
        /// Why.
        reason: String,
    },
    /// The run ended.
    Ended {
        /// Its outcome.
        outcome: Option<String>,
    },
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

/// A conversation waiting in a human queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffRecord {
    /// Our number.
    pub our_number: String,
    /// The contact.
    pub contact: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub at_ms: i64,
}
