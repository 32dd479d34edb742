//! What the agent API shows of cases and queues: times as RFC 3339, states by name, lateness
//! computed on the engine's clock.

use std::collections::BTreeSet;

use serde::Serialize;

use super::config::{DeskConfig, QueuePolicy};
use super::sla;
use crate::compliance::gate::rfc3339;
use crate::store::handoffs::{CaseState, HandoffCase, SlaKind};

/// A case in a list.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The contact.
    pub contact: String,
    /// The queue.
    pub queue: String,
    /// `waiting`, `assigned`, `snoozed`, `resolved`.
    pub state: &'static str,
    /// Why it was handed off.
    pub reason: String,
    /// Who holds it.
    pub assignee: Option<String>,
    /// Since when it has waited in its queue.
    pub waiting_since: String,
    /// Whether a target is missed and still unmet.
    pub late: bool,
    /// When the handoff (or reopening) was.
    pub handed_off_at: String,
    /// Until when it is snoozed.
    pub snoozed_until: Option<String>,
    /// Whether it went back to the bot.
    pub released: bool,
    /// The contact's latest text.
    pub last_inbound: Option<LastText>,
    /// Its service-level clocks.
    pub sla: SlaView,
}

/// A text and when it came.
#[derive(Debug, Clone, Serialize)]
pub struct LastText {
    /// The text.
    pub text: String,
    /// When.
    pub at: String,
}

/// When each running target is due, and which were missed.
#[derive(Debug, Clone, Serialize)]
pub struct SlaView {
    /// The first reply's deadline, while none was sent.
    pub first_response_due: Option<String>,
    /// The deadline for answering the contact's latest text.
    pub next_response_due: Option<String>,
    /// The resolution deadline.
    pub resolution_due: Option<String>,
    /// Targets missed since the handoff.
    pub breached: Vec<&'static str>,
}

/// `case` as a list shows it at `now_ms`.
pub fn summary(case: &HandoffCase, policy: &QueuePolicy, now_ms: i64) -> Summary {
    let due = sla::due(case, policy);
    let due_of = |kind: SlaKind| due.get(&kind).map(|&ms| rfc3339(ms));
    Summary {
        contact: case.contact.clone(),
        queue: case.queue.clone(),
        state: case.state.as_str(),
        reason: case.reason.clone(),
        assignee: case.assignee.clone(),
        waiting_since: rfc3339(case.waiting_since_ms),
        late: sla::overdue(&due, now_ms),
        handed_off_at: rfc3339(case.handed_off_at_ms),
        snoozed_until: case.snoozed_until_ms.map(rfc3339),
        released: case.released,
        last_inbound: case.last_inbound.as_ref().map(|text| LastText {
            text: text.text.clone(),
            at: rfc3339(text.at_ms),
        }),
        sla: SlaView {
            first_response_due: due_of(SlaKind::FirstResponse),
            next_response_due: due_of(SlaKind::NextResponse),
            resolution_due: due_of(SlaKind::Resolution),
            breached: case.breached.iter().map(|kind| kind.as_str()).collect(),
        },
    }
}

/// A queue's counts.
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    /// The queue.
    pub name: String,
    /// Conversations nobody has.
    pub waiting: usize,
    /// Conversations someone has.
    pub assigned: usize,
    /// Snoozed ones.
    pub snoozed: usize,
    /// Open ones past a target.
    pub late: usize,
    /// Since when the oldest waiting one has waited.
    pub oldest_waiting_since: Option<String>,
    /// `manual` or `balanced`.
    pub assignment: &'static str,
}

/// The counts of each of `queues`.
pub fn queues(
    config: &DeskConfig,
    queues: &BTreeSet<String>,
    cases: &[HandoffCase],
    now_ms: i64,
) -> Vec<QueueView> {
    queues
        .iter()
        .map(|name| {
            let policy = config.policy(name);
            let mine: Vec<&HandoffCase> = cases.iter().filter(|case| &case.queue == name).collect();
            let count = |state: CaseState| mine.iter().filter(|case| case.state == state).count();
            QueueView {
                name: name.clone(),
                waiting: count(CaseState::Waiting),
                assigned: count(CaseState::Assigned),
                snoozed: count(CaseState::Snoozed),
                late: mine
                    .iter()
                    .filter(|case| sla::is_late(case, &policy, now_ms))
                    .count(),
                oldest_waiting_since: mine
                    .iter()
                    .filter(|case| case.state == CaseState::Waiting)
                    .map(|case| case.waiting_since_ms)
                    .min()
                    .map(rfc3339),
                assignment: policy.assignment.as_str(),
            }
        })
        .collect()
}
