//! The human side of a handoff: queues of handed-off conversations ("cases"), who holds each,
//! service-level clocks, balanced assignment, canned replies, and who is looking at what.
//!
//! A case lives in the store next to its conversation ([`crate::store::handoffs`]) and changes
//! only in the conversation's turn ([`Desk::act`] runs one through the runtime), so a claim is
//! atomic under the conversation's lock, and a reply and the case change it makes are one write.
//! While a case is open the runtime runs no flow step, plugin or escalation rule for the
//! conversation; the host still answers STOP, HELP and START.
//!
//! [`Desk::tick`] is the desk's clock: it takes cases back from disabled agents, wakes snoozed
//! cases, reports missed targets (and
//! re-routes them), sends the queues' auto-replies and drains balanced queues oldest first. The
//! server runs it every second and whenever a case starts waiting; tests call it on a manual
//! clock.

pub mod assignment;
pub mod canned;
pub mod case;
pub mod config;
pub mod hours;
pub mod signals;
pub mod sla;
pub mod view;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use self::case::{AutoReplyKind, CaseError, DeskAction, DeskCommand};
pub use self::config::{DeskConfig, HandoffConfig, QueueConfig};
pub use self::signals::{DeskEvent, Signals};

use futures_util::future::BoxFuture;

use crate::agents::Agents;
use crate::clock::SharedClock;
use crate::store::agents::{AgentRecord, Role};
use crate::store::conversations::ConversationKey;
use crate::store::handoffs::{CaseState, HandoffCase, Handoffs};
use crate::store::{Store, StoreError};

/// How long a "viewing" or "typing" mark lasts without a refresh.
pub const VIEWING_MS: i64 = 15_000;

/// A change made: the case after it, and the ids of the texts it queued.
#[derive(Debug, Clone)]
pub struct Acted {
    /// The case.
    pub case: HandoffCase,
    /// Outbox ids of the texts queued (a reply, an auto-reply).
    pub queued: Vec<String>,
}

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// Refused: nothing changed.
    #[error(transparent)]
    Case(#[from] CaseError),
    /// The store failed: retry.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that cannot happen did.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

/// What the desk needs of the runtime: to make a change as a turn of the conversation, under its
/// lock, with whatever the change sends or resumes, durably. The runtime implements it; the desk
/// does not know flows.
pub trait CaseTurns: Send + Sync {
    /// Applies `command` to the conversation `key` in its turn.
    fn act<'a>(
        &'a self,
        key: &'a ConversationKey,
        command: DeskCommand,
    ) -> BoxFuture<'a, Result<Acted, DeskError>>;
}

/// What the desk is built from.
pub struct DeskParts {
    /// The store (its handoffs table is read here; turns write it).
    pub store: Store,
    /// The runtime, whose turns change cases.
    pub turns: Arc<dyn CaseTurns>,
    /// The agents.
    pub agents: Arc<Agents>,
    /// The queues' policies and the canned replies.
    pub config: DeskConfig,
    /// The fan-out to the agents' pages (the runtime publishes to the same one).
    pub signals: Arc<Signals>,
    /// The engine's clock.
    pub clock: SharedClock,
}

/// Someone looking at a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// Who.
    pub agent: String,
    /// Whether they are typing.
    pub typing: bool,
}

/// Whether `agent` sees a conversation in `queue` held by `assignee`: a supervisor sees every
/// one; an agent those of their queues and those they hold (a supervisor's assignment, a breach
/// that moved it, a reopening). The one rule for lists, reads, changes and the event stream.
pub fn sees(agent: &AgentRecord, queue: &str, assignee: Option<&str>) -> bool {
    agent.role == Role::Supervisor
        || agent.queues.iter().any(|own| own == queue)
        || assignee == Some(agent.name.as_str())
}

/// The agents looking at one conversation: agent → (typing, when last seen).
type Looking = HashMap<String, (bool, i64)>;

/// The handoff desk.
pub struct Desk {
    handoffs: Handoffs,
    turns: Arc<dyn CaseTurns>,
    agents: Arc<Agents>,
    config: DeskConfig,
    signals: Arc<Signals>,
    clock: SharedClock,
    /// contact → who is looking at that conversation.
    viewers: Mutex<HashMap<String, Looking>>,
}

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").finish_non_exhaustive()
    }
}

impl Desk {
    /// The desk over `parts`.
    pub fn new(parts: DeskParts) -> Self {
        Self {
            handoffs: parts.store.tables().handoffs,
            turns: parts.turns,
            agents: parts.agents,
            config: parts.config,
            signals: parts.signals,
            clock: parts.clock,
            viewers: Mutex::new(HashMap::new()),
        }
    }

    /// The queues' policies and canned replies.
    pub fn config(&self) -> &DeskConfig {
        &self.config
    }

    /// The agents.
    pub fn agents(&self) -> &Arc<Agents> {
        &self.agents
    }

    /// The fan-out the agents' event streams subscribe to.
    pub fn signals(&self) -> &Arc<Signals> {
        &self.signals
    }

    /// The engine's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Every case.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn cases(&self) -> Result<Vec<HandoffCase>, StoreError> {
        self.handoffs.all()
    }

    /// The case of one conversation.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn case(&self, key: &ConversationKey) -> Result<Option<HandoffCase>, StoreError> {
        self.handoffs.get(key)
    }

    /// The queues `agent` sees: their own, or every known one for a supervisor.
    pub fn queues_of(&self, agent: &AgentRecord, cases: &[HandoffCase]) -> BTreeSet<String> {
        match agent.role {
            Role::Supervisor => cases
                .iter()
                .map(|case| case.queue.clone())
                .chain(self.config.queues.keys().cloned())
                .chain(agent.queues.iter().cloned())
                .collect(),
            Role::Agent => agent.queues.iter().cloned().collect(),
        }
    }

    /// Applies `command` in the conversation's turn, durably (the commit wakes the clock when
    /// a case starts waiting or is resolved).
    ///
    /// # Errors
    ///
    /// [`DeskError::Case`] when refused (nothing changed), or a store failure.
    pub async fn act(
        &self,
        key: &ConversationKey,
        command: DeskCommand,
    ) -> Result<Acted, DeskError> {
        self.turns.act(key, command).await
    }

    /// Marks `agent` as viewing (or typing in) the conversation with `contact`, and tells the
    /// other agents' pages.
    pub fn viewing(&self, agent: &str, case: &HandoffCase, typing: bool) {
        let now = self.clock.now_ms();
        self.viewers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(case.contact.clone())
            .or_default()
            .insert(agent.to_owned(), (typing, now));
        self.signals.publish(DeskEvent {
            kind: "viewing",
            contact: case.contact.clone(),
            queue: case.queue.clone(),
            state: case.state.as_str(),
            assignee: case.assignee.clone(),
            agent: Some(agent.to_owned()),
            reason: None,
            typing: Some(typing),
        });
    }

    /// Who else has looked at the conversation with `contact` in the last [`VIEWING_MS`].
    pub fn viewers(&self, contact: &str, except: &str) -> Vec<Viewer> {
        let now = self.clock.now_ms();
        let mut viewers = self.viewers.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(of_contact) = viewers.get_mut(contact) else {
            return Vec::new();
        };
        of_contact.retain(|_, (_, at)| now - *at < VIEWING_MS);
        if of_contact.is_empty() {
            viewers.remove(contact);
            return Vec::new();
        }
        let mut list: Vec<Viewer> = of_contact
            .iter()
            .filter(|(agent, _)| agent.as_str() != except)
            .map(|(agent, (typing, _))| Viewer {
                agent: agent.clone(),
                typing: *typing,
            })
            .collect();
        list.sort_by(|a, b| a.agent.cmp(&b.agent));
        list
    }

    /// One pass of the desk's clock: wake snoozed cases, report missed targets, send
    /// auto-replies, then assign waiting cases of balanced queues (and reopened ones to their
    /// agent), oldest first. Returns how many changes it made.
    ///
    /// # Errors
    ///
    /// When the store fails; a change someone else's action made moot is skipped.
    pub async fn tick(&self) -> Result<usize, DeskError> {
        let now = self.clock.now_ms();
        // One scan per tick (it is most of a tick's cost: BENCHMARKS.md); each change made is
        // put back into it, so later queues' plans see the loads earlier ones created.
        let mut cases = self.cases()?;
        let agents = self.agents.list().map_err(|error| match error {
            crate::agents::AgentError::Store(error) => DeskError::Store(error),
            other => DeskError::Internal(other.into()),
        })?;
        let disabled: BTreeSet<&str> = agents
            .iter()
            .filter(|agent| agent.disabled)
            .map(|agent| agent.name.as_str())
            .collect();
        let mut changes = 0;
        for (key, action) in self.due_actions(&cases, &disabled, now) {
            changes += self.engine_act(&mut cases, &key, action).await?;
        }
        let queues: BTreeSet<String> = cases
            .iter()
            .filter(|case| case.state == CaseState::Waiting)
            .map(|case| case.queue.clone())
            .collect();
        for queue in queues {
            let policy = self.config.policy(&queue);
            for (key, agent) in assignment::plan(&policy, &agents, &cases, now) {
                let action = DeskAction::Assign { to: agent };
                changes += self.engine_act(&mut cases, &key, action).await?;
            }
        }
        Ok(changes)
    }

    /// What the clock owes each open case now: back to the queue from a disabled holder, a
    /// wake-up, a breach report, an auto-reply.
    fn due_actions(
        &self,
        cases: &[HandoffCase],
        disabled: &BTreeSet<&str>,
        now: i64,
    ) -> Vec<(ConversationKey, DeskAction)> {
        let mut due = Vec::new();
        for case in cases.iter().filter(|case| case.state.is_open()) {
            let key = case.key();
            let policy = self.config.policy(&case.queue);
            if case
                .assignee
                .as_deref()
                .is_some_and(|holder| disabled.contains(holder))
            {
                due.push((key.clone(), DeskAction::Requeue));
            }
            if case.snoozed_until_ms.is_some_and(|until| until <= now) {
                due.push((key.clone(), DeskAction::Wake));
            }
            let kinds = sla::new_breaches(case, &policy, now);
            if !kinds.is_empty() {
                let route = policy.breach_route.clone();
                due.push((key.clone(), DeskAction::Breach { kinds, route }));
            }
            if case.first_response_at_ms.is_some() {
                continue;
            }
            if let (Some(hours), Some(text)) = (&policy.hours, &policy.after_hours_reply)
                && !case.after_hours_replied
                && !hours.is_open(case.handed_off_at_ms)
            {
                let text = text.clone();
                due.push((
                    key.clone(),
                    DeskAction::AutoReply {
                        kind: AutoReplyKind::AfterHours,
                        text,
                    },
                ));
            }
            if let Some((after_ms, text)) = &policy.no_answer
                && !case.no_answer_replied
                && now - case.handed_off_at_ms >= *after_ms
            {
                let text = text.clone();
                due.push((
                    key,
                    DeskAction::AutoReply {
                        kind: AutoReplyKind::NoAnswer,
                        text,
                    },
                ));
            }
        }
        due
    }

    /// An engine change: 1 when made (the case after it replaces its row in `cases`), 0 when
    /// moot.
    async fn engine_act(
        &self,
        cases: &mut [HandoffCase],
        key: &ConversationKey,
        action: DeskAction,
    ) -> Result<usize, DeskError> {
        let command = DeskCommand {
            agent: None,
            action,
        };
        match self.act(key, command).await {
            Ok(acted) => {
                if let Some(slot) = cases.iter_mut().find(|case| case.key() == *key) {
                    *slot = acted.case;
                }
                Ok(1)
            }
            Err(DeskError::Case(CaseError::Stale)) => Ok(0),
            Err(DeskError::Store(error)) => Err(DeskError::Store(error)),
            Err(error) => {
                tracing::warn!(contact = %key.contact, "desk: {error}");
                Ok(0)
            }
        }
    }

    /// Runs [`Desk::tick`] every second and whenever a case starts waiting or capacity frees,
    /// until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(error) = self.tick().await {
                tracing::error!("desk: {error:#}");
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.signals.changed.notified()).await;
        }
    }

    /// Wakes the clock: an agent became available, so a queue may drain.
    pub fn capacity_changed(&self) {
        self.signals.changed.notify_one();
    }
}
