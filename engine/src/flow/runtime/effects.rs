//! What a turn produced, written by the steps and committed in one batch by [`super::commit`].
//! Tests run a step and assert on these values: nothing here touches the store.

use crate::compliance::ledger::NewConsent;
use crate::flow::conversation::{Entry, TimerKey, TimerRecord};
use crate::store::handoffs::SlaKind;
use crate::store::outbox::OutboundMessage;

/// A change to the timers, applied in order at commit (a timer set and cleared in one turn is
/// not left behind).
#[derive(Debug, Clone, PartialEq)]
pub enum TimerOp {
    /// Set a timer.
    Add(TimerKey, TimerRecord),
    /// Clear one.
    Remove(TimerKey),
}

/// A missed service-level target, for the `conversation.sla_breached` webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// The target.
    pub sla: SlaKind,
    /// The queue the conversation was in.
    pub queue: String,
    /// The queue the breach moved it to, if its queue routes breaches.
    pub moved_to: Option<String>,
}

/// Everything a turn writes besides the conversation row.
#[derive(Debug, Default)]
pub struct TurnEffects {
    /// Funnel events the turn's steps name (a conversion step, a person's first answer, a
    /// resolution), with their detail; the rest are read from its entries and texts.
    pub funnel: Vec<(crate::store::funnel::FunnelKind, Option<String>)>,
    /// Tracked links in the turn's texts, by code.
    pub links: Vec<(String, crate::store::funnel::Link)>,
    /// Transcript entries, in order.
    pub entries: Vec<Entry>,
    /// Texts to queue, with their outbox seqs.
    pub outgoing: Vec<(u64, OutboundMessage)>,
    /// Timer changes, in order.
    pub timer_ops: Vec<TimerOp>,
    /// Whether the conversation's case changed (the turn's `case` is written).
    pub case_changed: bool,
    /// What the agents' pages are told after the commit, and who acted.
    pub signal: Option<(&'static str, Option<String>)>,
    /// Service-level targets the turn reports as missed.
    pub breaches: Vec<Breach>,
    /// Consent records (a keyword opt-in).
    pub consents: Vec<NewConsent>,
    /// The inbound event's id, marked processed.
    pub processed: Option<String>,
    /// The inbound text's inbox row, removed.
    pub inbox_seq: Option<u64>,
}

impl TurnEffects {
    /// Whether the turn sets any timer.
    pub fn adds_timers(&self) -> bool {
        self.timer_ops
            .iter()
            .any(|op| matches!(op, TimerOp::Add(..)))
    }
}
