//! Handed-off conversations ("cases"): one row per conversation that ever went to people, with
//! its queue, state, assignee, service-level clocks, notes and who did what.
//!
//! Key: the [`ConversationKey`], so a turn of the conversation reads and rewrites its case
//! under the conversation's lock, in the turn's batch. Queue views are a scan of the table
//! (a case is a few hundred bytes; see BENCHMARKS.md for what a scan costs).
//!
//! Layout 2 keyed handoffs by `<queue> 0x00 <conversation>` with a smaller value; opening such a
//! store rewrites its rows as waiting cases ([`migrate_from_queue_keys`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::conversations::ConversationKey;
use super::keys::Reader;
use super::table::{Key, Table};
use super::{Batch, Result, Store, TableId};

/// Where a case is. `Resolved` covers both endings: resolved by an agent, or released to the bot
/// ([`HandoffCase::released`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// In its queue, nobody has it.
    Waiting,
    /// An agent has it.
    Assigned,
    /// Set aside until a time (or the contact's next text).
    Snoozed,
    /// Done.
    Resolved,
}

impl CaseState {
    /// The state's name, as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Assigned => "assigned",
            Self::Snoozed => "snoozed",
            Self::Resolved => "resolved",
        }
    }

    /// Whether the case is still someone's work.
    pub fn is_open(self) -> bool {
        !matches!(self, Self::Resolved)
    }
}

/// A service-level target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    /// The first reply from a person after the handoff.
    FirstResponse,
    /// A person's reply to the contact's text, after the first.
    NextResponse,
    /// Resolution.
    Resolution,
}

impl SlaKind {
    /// Every target.
    pub const ALL: [SlaKind; 3] = [Self::FirstResponse, Self::NextResponse, Self::Resolution];

    /// The target's name, as the API and the event webhook show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstResponse => "first_response",
            Self::NextResponse => "next_response",
            Self::Resolution => "resolution",
        }
    }
}

/// Why and from where the bot handed the conversation over: what the agent needs so they never
/// have to ask "how can I help you?".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HandoffContext {
    /// The flow the conversation left.
    pub flow: Option<String>,
    /// The step it left (the handoff step, or the wait an escalation rule fired in).
    pub step: Option<String>,
    /// The campaign that started the run, when one did (the run's `campaign` field).
    pub campaign: Option<String>,
    /// The last intent a classifier found.
    pub intent: Option<String>,
    /// Its confidence.
    pub confidence: Option<f32>,
    /// The contact's fields at the handoff.
    pub fields: BTreeMap<String, String>,
}

/// A text, with when it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    /// The text.
    pub text: String,
    /// When.
    pub at_ms: i64,
}

/// A private note on a case: never sent to the contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Who wrote it.
    pub agent: String,
    /// What.
    pub text: String,
    /// When.
    pub at_ms: i64,
}

/// One change to a case, and who made it (`None`: the engine, e.g. balanced assignment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseAction {
    /// The agent, or none for the engine.
    pub agent: Option<String>,
    /// What happened (`claimed`, `assigned to bob`, `replied`, `resolved`, ...).
    pub action: String,
    /// When.
    pub at_ms: i64,
}

/// A conversation handed to people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffCase {
    /// Our number.
    pub our_number: String,
    /// The contact.
    pub contact: String,
    /// The queue it is in.
    pub queue: String,
    /// Why it was handed off: the escalation rule, intent or step that fired.
    pub reason: String,
    /// Where it is.
    pub state: CaseState,
    /// Where the bot stopped, and what it knew.
    pub context: HandoffContext,
    /// Who has it.
    pub assignee: Option<String>,
    /// Who had it last time: a reopened case goes back to them when they are available.
    pub preferred: Option<String>,
    /// When it was handed off (or reopened): every service-level clock starts here.
    pub handed_off_at_ms: i64,
    /// Since when it has waited in its queue: queues drain oldest first by this.
    pub waiting_since_ms: i64,
    /// When its assignee got it.
    pub assigned_at_ms: Option<i64>,
    /// When a person first answered.
    pub first_response_at_ms: Option<i64>,
    /// Since when the contact has waited for an answer to a text sent after the first response.
    pub awaiting_since_ms: Option<i64>,
    /// The contact's latest text.
    pub last_inbound: Option<Stamped>,
    /// Until when it is snoozed.
    pub snoozed_until_ms: Option<i64>,
    /// When it was resolved or released.
    pub resolved_at_ms: Option<i64>,
    /// Whether it ended by going back to the bot (a released case is not reopened).
    pub released: bool,
    /// Targets already reported as breached since the handoff.
    pub breached: Vec<SlaKind>,
    /// Whether the "nobody has answered yet" auto-reply went.
    pub no_answer_replied: bool,
    /// Whether the "outside business hours" auto-reply went.
    pub after_hours_replied: bool,
    /// Private notes, oldest first.
    pub notes: Vec<Note>,
    /// Who did what, oldest first.
    pub history: Vec<CaseAction>,
}

json_value!(HandoffCase);

impl HandoffCase {
    /// A case waiting in `queue` from `at_ms`.
    pub fn waiting(key: &ConversationKey, queue: &str, reason: &str, at_ms: i64) -> Self {
        Self {
            our_number: key.ours.clone(),
            contact: key.contact.clone(),
            queue: queue.to_owned(),
            reason: reason.to_owned(),
            state: CaseState::Waiting,
            context: HandoffContext::default(),
            assignee: None,
            preferred: None,
            handed_off_at_ms: at_ms,
            waiting_since_ms: at_ms,
            assigned_at_ms: None,
            first_response_at_ms: None,
            awaiting_since_ms: None,
            last_inbound: None,
            snoozed_until_ms: None,
            resolved_at_ms: None,
            released: false,
            breached: Vec::new(),
            no_answer_replied: false,
            after_hours_replied: false,
            notes: Vec::new(),
            history: vec![CaseAction {
                agent: None,
                action: format!("handed off to {queue}: {reason}"),
                at_ms,
            }],
        }
    }

    /// Its conversation's key.
    pub fn key(&self) -> ConversationKey {
        ConversationKey::new(&self.our_number, &self.contact)
    }
}

/// The handoffs table.
#[derive(Debug, Clone)]
pub struct Handoffs {
    table: Table<ConversationKey, HandoffCase>,
}

impl Handoffs {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Handoffs),
        }
    }

    /// The case of a conversation, if it was ever handed off.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, key: &ConversationKey) -> Result<Option<HandoffCase>> {
        self.table.get(key)
    }

    /// Adds writing `case` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, case: &HandoffCase) -> Result<()> {
        self.table.put_in(batch, &case.key(), case)
    }

    /// Every case, by conversation key.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn all(&self) -> Result<Vec<HandoffCase>> {
        self.table
            .all()
            .map(|row| row.map(|(_, case)| case))
            .collect()
    }
}

/// A layout-2 row's key: `<queue> 0x00 <our number> 0x00 <contact>`.
struct QueueKeyed {
    queue: String,
    conversation: ConversationKey,
}

impl Key for QueueKeyed {
    fn write(&self, out: &mut Vec<u8>) {
        super::keys::push_str(out, &self.queue);
        self.conversation.write(out);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let queue = reader.str()?;
        let rest = reader.rest_str()?;
        Some(Self {
            queue,
            conversation: ConversationKey::read(rest.as_bytes())?,
        })
    }
}

/// A layout-2 row's value.
#[derive(Deserialize)]
struct QueuedHandoff {
    reason: String,
    at_ms: i64,
}

impl super::table::Value for QueuedHandoff {
    fn encode(&self) -> std::result::Result<Vec<u8>, String> {
        Err("layout-2 handoffs are only read".to_owned())
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        super::codec::decode(bytes)
    }
}

/// Rewrites layout-2 handoff rows (keyed by queue, never removed) as cases keyed by
/// conversation, in one batch: a crash leaves either the old rows or the new ones. Only a
/// conversation still handed off (to that queue) waits; an older row is a case long over,
/// kept as released history.
///
/// # Errors
///
/// When the store cannot be read or written.
pub(super) fn migrate_from_queue_keys(store: &Store) -> Result<usize> {
    let old: Table<QueueKeyed, QueuedHandoff> = store.table(TableId::Handoffs);
    let cases = Handoffs::new(store);
    let conversations = store.tables().conversations;
    let mut batch = Batch::new();
    let mut migrated: std::collections::HashMap<ConversationKey, HandoffCase> =
        std::collections::HashMap::new();
    for row in old.raw_rows() {
        let (key, value) = row?;
        let value = value?;
        old.remove_in(&mut batch, &key);
        let mut case =
            HandoffCase::waiting(&key.conversation, &key.queue, &value.reason, value.at_ms);
        let waiting = matches!(
            conversations.get(&key.conversation)?.map(|conversation| conversation.status),
            Some(super::conversations::Status::HandedOff { queue, .. }) if queue == key.queue
        );
        if !waiting {
            case.state = CaseState::Resolved;
            case.released = true;
            case.resolved_at_ms = Some(value.at_ms);
        }
        // The conversation's current handoff wins over its older rows, whatever their order.
        let current = migrated
            .get(&key.conversation)
            .is_some_and(|kept| kept.state.is_open());
        if !current {
            migrated.insert(key.conversation, case);
        }
    }
    let moved = migrated
        .values()
        .filter(|case| case.state.is_open())
        .count();
    for case in migrated.values() {
        cases.put_in(&mut batch, case)?;
    }
    store.apply(batch)?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_round_trips_under_its_conversation() {
        let store = Store::temporary().unwrap();
        let handoffs = Handoffs::new(&store);
        let key = ConversationKey::new("+15550001000", "+12125550100");
        let mut case = HandoffCase::waiting(&key, "billing", "cue word `refund`", 7);
        case.notes.push(Note {
            agent: "ana".into(),
            text: "called the bank".into(),
            at_ms: 9,
        });
        let mut batch = Batch::new();
        handoffs.put_in(&mut batch, &case).unwrap();
        store.apply(batch).unwrap();
        assert_eq!(handoffs.get(&key).unwrap(), Some(case));
        assert_eq!(handoffs.all().unwrap().len(), 1);
    }

    #[test]
    fn layout_2_rows_become_cases_and_only_a_current_handoff_waits() {
        use super::super::conversations::{Conversation, Status};
        let store = Store::temporary().unwrap();
        let old: Table<QueueKeyed, Vec<u8>> = store.table(TableId::Handoffs);
        let (waiting, over) = ("+12125550100", "+12125550101");
        let row = |queue: &str, contact: &str, at_ms: i64| {
            let key = QueueKeyed {
                queue: queue.into(),
                conversation: ConversationKey::new("+15550001000", contact),
            };
            let value = super::super::codec::encode(&serde_json::json!({
                "our_number": "+15550001000", "contact": contact,
                "reason": format!("{queue} question"), "at_ms": at_ms
            }))
            .unwrap();
            old.insert(&key, &value).unwrap();
        };
        // `waiting` went to support long ago and is now with billing; `over` ended.
        row("billing", waiting, 42);
        row("support", waiting, 7);
        row("billing", over, 9);
        let mut conversation = Conversation::new("+15550001000", waiting, 1);
        conversation.status = Status::HandedOff {
            queue: "billing".into(),
            reason: "billing question".into(),
            at_ms: 42,
        };
        let mut batch = Batch::new();
        store
            .tables()
            .conversations
            .put_in(&mut batch, &conversation)
            .unwrap();
        store.apply(batch).unwrap();
        assert_eq!(migrate_from_queue_keys(&store).unwrap(), 1);
        let handoffs = Handoffs::new(&store);
        let case = handoffs.get(&conversation.key()).unwrap().unwrap();
        assert_eq!(
            (case.queue.as_str(), case.reason.as_str(), case.state),
            ("billing", "billing question", CaseState::Waiting)
        );
        assert_eq!(case.waiting_since_ms, 42);
        let ended = handoffs
            .get(&ConversationKey::new("+15550001000", over))
            .unwrap()
            .unwrap();
        assert_eq!((ended.state, ended.released), (CaseState::Resolved, true));
        assert_eq!(handoffs.all().unwrap().len(), 2, "the old rows are gone");
    }
}
