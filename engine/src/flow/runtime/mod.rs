//! The durable flow runtime.
//!
//! Each event (an API start, an inbound text, a person's change to a handed-off conversation, a
//! timer) is one *turn* of one
//! conversation: the conversation is locked, its pinned flow runs until it waits, hands off or
//! ends, and everything the turn produced ([`effects::TurnEffects`]: state, transcript
//! entries, queued texts, timers, the conversation's case, consent records, events, the event's
//! "processed" mark) is written in one store batch. A crash before the batch leaves no trace
//! of the turn, so replaying the event redoes it once; a crash after it finds the event marked
//! processed. Timers are rows removed in the batch of the turn they cause, so each fires once,
//! also across restarts.
//!
//! The pieces: [`turn`] holds a turn's working state and the operations steps use; [`steps`]
//! has one handler per step kind, which touch only the turn; [`inbound`] routes an inbound
//! text; [`lifecycle`] starts runs and fires timers; [`desk`] applies people's changes to
//! handed-off conversations; [`commit`] turns the effects into the batch.
//!
//! Durability: a turn is applied, not flushed. Callers that acknowledge it (the API's start and
//! the desk's changes) flush before answering; the outbox flushes before it hands a queued text to
//! the provider, so no text leaves before the turn that queued it is on disk.

mod commit;
mod desk;
pub mod effects;
mod inbound;
mod lifecycle;
mod steps;
mod turn;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use self::turn::Turn;
use super::conversation::{Conversation, ConversationKey, Entry, Event, TimerKey, TimerRecord};
use super::registry::Registry;
use crate::compliance::ledger::ConsentClass;
use crate::compliance::{Compliance, ConversationFacts, FactsSource, Screening};
use crate::events::Events;
use crate::handoff::{CaseError, DeskCommand, Signals};
use crate::locks::ConversationLocks;
use crate::plugin::PluginCalls;
use crate::store::handoffs::HandoffCase;
use crate::store::{Store, StoreError, Tables};

pub use crate::flow::MAX_STEPS_PER_TURN;
pub use turn::LINK_CODE_LEN;

/// The outcome of a run ended because the gate blocked the text it waited on.
pub const UNSENT_OUTCOME: &str = "blocked";

/// The queue a conversation goes to when a failing step has no route and the flow names no
/// escalation queue.
pub const DEFAULT_QUEUE: &str = "default";

/// An inbound text, already verified, screened and stored by ingress.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// `<provider>:<message id>`: a replay with the same id changes nothing.
    pub id: String,
    /// The contact's number, E.164.
    pub from: String,
    /// Our number, E.164.
    pub to: String,
    /// The text.
    pub text: String,
    /// What ingress decided it means for consent.
    pub screening: Screening,
    /// Its inbox row, removed in the turn's batch.
    pub inbox_seq: Option<u64>,
}

/// What a start does when the contact is already in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnActive {
    /// Refuse the start ([`RuntimeError::ConversationActive`], 409 in the API).
    #[default]
    Fail,
    /// Do nothing and say so ([`Outcome::skipped`]).
    Skip,
    /// End the waiting run (outcome `interrupted`) and start the new one. A conversation with
    /// a person is never interrupted: the start is refused as with `fail`.
    Interrupt,
}

/// A request to start a flow for a contact.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    /// The flow.
    pub flow: String,
    /// Our number.
    pub from: String,
    /// The contact.
    pub to: String,
    /// Fields for the run.
    pub fields: BTreeMap<String, String>,
    /// The contact's locale, when known.
    pub locale: Option<String>,
    /// What to do when the contact is already in a run.
    pub on_active: OnActive,
    /// The campaign that starts it, carried by its conversation and texts.
    pub campaign: Option<String>,
    /// An id that makes the start happen once: a second start with it changes nothing and
    /// answers a duplicate [`Outcome`] (campaigns resume after a crash with it).
    pub event_id: Option<String>,
    /// How long the run's texts stay worth sending (ms): the gate expires a text it would
    /// defer past that. Unset, `[compliance] deferred_expiry` holds.
    pub valid_for_ms: Option<i64>,
}

impl StartRequest {
    /// The start is to someone else than us, with fields and a locale of their shapes.
    fn check(&self) -> Result<(), RuntimeError> {
        if self.to == self.from {
            return Err(RuntimeError::OwnNumber(self.to.clone()));
        }
        crate::input::fields(&self.fields)?;
        if let Some(locale) = &self.locale {
            crate::input::locale("locale", locale)?;
        }
        Ok(())
    }
}

/// What a turn did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The conversation after the turn.
    pub conversation: Conversation,
    /// The transcript entries the turn wrote.
    pub entries: Vec<Entry>,
    /// The conversation's case after the turn, if it was ever handed off.
    pub case: Option<HandoffCase>,
    /// The event had been processed before: nothing changed.
    pub duplicate: bool,
    /// A start with [`OnActive::Skip`] found the contact in a run: nothing changed.
    pub skipped: bool,
}

impl Outcome {
    /// The texts the turn sent.
    pub fn sent_texts(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|entry| match &entry.event {
                Event::Outbound { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The outbox ids of the texts the turn queued.
    pub fn queued_ids(&self) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|entry| match &entry.event {
                Event::Outbound { message_id, .. } => Some(message_id.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Why a request was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No flow with that id is in service.
    #[error("no flow `{0}` is loaded")]
    UnknownFlow(String),
    /// The flow has no API trigger.
    #[error("flow `{0}` cannot be started by the API: its file does not set `triggers.api = true`")]
    NotApiStartable(String),
    /// The start lacks fields the flow needs.
    #[error("flow `{flow}` needs {} to start", fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "))]
    MissingFields {
        /// The flow.
        flow: String,
        /// The missing fields.
        fields: Vec<String>,
    },
    /// The contact is already in a run.
    #[error("{contact} already has an active conversation on flow `{flow}`")]
    ConversationActive {
        /// The contact.
        contact: String,
        /// The flow of the active run.
        flow: String,
    },
    /// A start or reply addressed to our own sending number: it would text ourselves.
    #[error("{0} is our own sending number: smsflow does not text itself")]
    OwnNumber(String),
    /// A value of the request breaks its field's rule.
    #[error(transparent)]
    Invalid(#[from] crate::input::InputError),
    /// The operator replied where there is no conversation.
    #[error("no conversation with {0}")]
    NoConversation(String),
    /// A change to a handed-off conversation was refused.
    #[error(transparent)]
    Case(#[from] CaseError),
    /// The store failed: retry later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that cannot happen did (a pinned flow lost its step): a bug, not the caller's.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for RuntimeError {
    /// A store failure stays one, whatever context was added to it; anything else is internal.
    fn from(error: anyhow::Error) -> Self {
        match error.downcast::<StoreError>() {
            Ok(store) => Self::Store(store),
            Err(other) => Self::Internal(other),
        }
    }
}

/// What starts a turn.
enum TurnEvent {
    Start(StartRequest),
    Inbound(Inbound),
    OperatorReply { sender: String, text: String },
    Desk(DeskCommand),
    Timer { key: TimerKey, record: TimerRecord },
    Unsent(lifecycle::Unsent),
}

/// Where the runtime reports what turns did: the outbox's wake-up and the event webhooks.
#[derive(Debug, Clone, Default)]
pub struct Notifiers {
    /// Woken when a turn queues a text.
    pub outbox: Arc<Notify>,
    /// Event webhooks, when any are configured.
    pub events: Option<Arc<Events>>,
    /// The agents' pages, and the desk's assignment.
    pub desk: Arc<Signals>,
}

/// Runs conversations.
pub struct Runtime {
    store: Store,
    tables: Tables,
    registry: Arc<Registry>,
    plugins: Arc<dyn PluginCalls>,
    compliance: Arc<Compliance>,
    clock: crate::clock::SharedClock,
    locks: Arc<ConversationLocks>,
    notifiers: Notifiers,
    reopen_within_ms: i64,
    links_base: String,
    timers_changed: Notify,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// What a runtime is built from.
pub struct RuntimeParts {
    /// The store.
    pub store: Store,
    /// The flows in service.
    pub registry: Arc<Registry>,
    /// The plugins flows call.
    pub plugins: Arc<dyn PluginCalls>,
    /// The policy and ledger (brands, compliance replies, keyword opt-ins).
    pub compliance: Arc<Compliance>,
    /// The engine's clock.
    pub clock: crate::clock::SharedClock,
    /// The conversation locks, shared with ingress screening.
    pub locks: Arc<ConversationLocks>,
    /// Whom to tell about queued texts and events.
    pub notifiers: Notifiers,
    /// How soon after resolution a contact's text reopens a handed-off conversation.
    pub reopen_within_ms: i64,
    /// Where tracked links point, up to the code (`https://go.example.com/l/`).
    pub links_base: String,
}

impl Runtime {
    /// A runtime from its parts.
    pub fn new(parts: RuntimeParts) -> Self {
        Self {
            tables: parts.store.tables(),
            store: parts.store,
            registry: parts.registry,
            plugins: parts.plugins,
            compliance: parts.compliance,
            clock: parts.clock,
            locks: parts.locks,
            notifiers: parts.notifiers,
            reopen_within_ms: parts.reopen_within_ms,
            links_base: parts.links_base,
            timers_changed: Notify::new(),
        }
    }

    /// The flows in service.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The policy and the ledger.
    pub fn compliance(&self) -> &Arc<Compliance> {
        &self.compliance
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues the operator API's text to `contact` in its conversation, durably, recorded as
    /// sent by `sender` (step `operator:<sender>`). It goes through the same gate as every
    /// text. Agents answering handed-off conversations use [`Runtime::desk`] instead, which
    /// checks who holds the conversation and runs its service-level clocks.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NoConversation`] when there is none, or a store failure.
    pub async fn agent_reply(
        &self,
        our_number: &str,
        contact: &str,
        sender: &str,
        text: &str,
    ) -> Result<Outcome, RuntimeError> {
        if contact == our_number {
            return Err(RuntimeError::OwnNumber(contact.to_owned()));
        }
        crate::input::text("text", text, crate::ingress::accept::MAX_BODY_CHARS)?;
        let event = TurnEvent::OperatorReply {
            sender: sender.to_owned(),
            text: text.to_owned(),
        };
        let outcome = self.turn(our_number, contact, event).await?;
        self.store.flush().await?;
        Ok(outcome)
    }

    /// Applies a person's (or the desk's) change to a handed-off conversation in its turn,
    /// durably: a reply is queued through the same gate as every text.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::Case`] when the change is refused (nothing was written), or a store
    /// failure.
    pub async fn desk(
        &self,
        our_number: &str,
        contact: &str,
        command: DeskCommand,
    ) -> Result<Outcome, RuntimeError> {
        let outcome = self
            .turn(our_number, contact, TurnEvent::Desk(command))
            .await?;
        self.store.flush().await?;
        Ok(outcome)
    }

    /// Starts `request.flow` for `request.to`, durably.
    ///
    /// # Errors
    ///
    /// A [`RuntimeError`]: unknown flow, no API trigger, missing fields, a run already active,
    /// or a store failure.
    pub async fn start(&self, request: StartRequest) -> Result<Outcome, RuntimeError> {
        let outcome = self.start_applied(request).await?;
        self.store.flush().await?;
        Ok(outcome)
    }

    /// [`Runtime::start`] applied but not flushed: for callers that start many and flush once
    /// (a campaign's pass). Nothing it queued leaves before a flush (the outbox flushes before
    /// every send), so a crash loses only starts that had no effect yet.
    ///
    /// # Errors
    ///
    /// As [`Runtime::start`].
    pub async fn start_applied(&self, request: StartRequest) -> Result<Outcome, RuntimeError> {
        request.check()?;
        let (ours, contact) = (request.from.clone(), request.to.clone());
        self.turn(&ours, &contact, TurnEvent::Start(request)).await
    }

    /// Ends run `run` of the conversation with `contact` when it still waits for a reply after
    /// the gate blocked its text `message_id`: nobody can answer a text never sent.
    /// The run ends with the outcome [`UNSENT_OUTCOME`] and a transcript entry saying why.
    /// A conversation that moved on (a later run, a handoff, an end) is left as it is.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn end_unsent(
        &self,
        our_number: &str,
        contact: &str,
        run: u64,
        message_id: &str,
        reason: &str,
    ) -> Result<Outcome, RuntimeError> {
        let unsent = lifecycle::Unsent {
            run,
            message_id: message_id.to_owned(),
            reason: reason.to_owned(),
        };
        let outcome = self
            .turn(our_number, contact, TurnEvent::Unsent(unsent))
            .await?;
        self.store.flush().await?;
        Ok(outcome)
    }

    /// Handles an inbound text. Not flushed (see the module documentation): its inbox row is
    /// removed in the same batch, so a crash before the next flush replays it.
    ///
    /// # Errors
    ///
    /// Only a store failure or a broken invariant; a replay of a processed id returns a
    /// duplicate [`Outcome`].
    pub async fn inbound(&self, inbound: Inbound) -> Result<Outcome, RuntimeError> {
        let (ours, contact) = (inbound.to.clone(), inbound.from.clone());
        self.turn(&ours, &contact, TurnEvent::Inbound(inbound))
            .await
    }

    /// Fires every timer due now; returns how many fired (stale ones included).
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn fire_due_timers(&self) -> Result<usize, StoreError> {
        let due = self.tables.timers.due(self.clock.now_ms())?;
        let count = due.len();
        for (key, record) in due {
            let (ours, contact) = (record.our_number.clone(), record.contact.clone());
            match self
                .turn(&ours, &contact, TurnEvent::Timer { key, record })
                .await
            {
                Ok(_) => {}
                Err(RuntimeError::Store(error)) => return Err(error),
                Err(error) => tracing::error!("timer turn refused: {error}"),
            }
        }
        Ok(count)
    }

    /// When the next timer is due.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn next_timer_due(&self) -> Result<Option<i64>, StoreError> {
        self.tables.timers.next_due()
    }

    /// Fires timers as they come due, until the task is dropped.
    pub async fn run_timers(self: Arc<Self>) {
        let mut failures = 0;
        loop {
            if let Err(error) = self.fire_due_timers().await {
                let pause = crate::clock::pause_after_failure("timers", &error, &mut failures);
                tokio::time::sleep(pause).await;
                continue;
            }
            failures = 0;
            let wait = match self.next_timer_due() {
                Ok(Some(due)) => {
                    let ms = due.saturating_sub(self.clock.now_ms()).clamp(0, 1000);
                    Duration::from_millis(ms.cast_unsigned())
                }
                _ => Duration::from_secs(1),
            };
            let _ = tokio::time::timeout(wait, self.timers_changed.notified()).await;
        }
    }

    /// The conversation between `our_number` and `contact`.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn conversation(
        &self,
        our_number: &str,
        contact: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        self.tables
            .conversations
            .get(&ConversationKey::new(our_number, contact))
    }

    /// The whole transcript of a conversation, oldest first.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn transcript(&self, our_number: &str, contact: &str) -> Result<Vec<Entry>, StoreError> {
        self.tables
            .transcript
            .of(&ConversationKey::new(our_number, contact))
    }

    /// Up to `limit` of the newest transcript entries before entry `before`, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn transcript_page(
        &self,
        our_number: &str,
        contact: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.tables
            .transcript
            .page(&ConversationKey::new(our_number, contact), before, limit)
    }

    /// One turn, timed for `/metrics` by what began it.
    async fn turn(
        &self,
        our_number: &str,
        contact: &str,
        event: TurnEvent,
    ) -> Result<Outcome, RuntimeError> {
        let kind = match &event {
            TurnEvent::Start(_) => "start",
            TurnEvent::Inbound(_) => "inbound",
            TurnEvent::OperatorReply { .. } => "operator_reply",
            TurnEvent::Desk(_) => "desk",
            TurnEvent::Timer { .. } => "timer",
            TurnEvent::Unsent(_) => "unsent",
        };
        let began = std::time::Instant::now();
        let outcome = self.run_turn(our_number, contact, event).await;
        let metrics = crate::metrics::instruments();
        crate::metrics::observe(&metrics.turns, &[("kind", kind)], began.elapsed());
        outcome
    }

    async fn run_turn(
        &self,
        our_number: &str,
        contact: &str,
        event: TurnEvent,
    ) -> Result<Outcome, RuntimeError> {
        let key = ConversationKey::new(our_number, contact);
        let _held = self.locks.lock(&key).await;
        let now = self.clock.now_ms();
        let stored = self.tables.conversations.get(&key)?;
        let case = self.tables.handoffs.get(&key)?;
        if matches!(event, TurnEvent::Desk(_)) && (stored.is_none() || case.is_none()) {
            return Err(CaseError::NotHandedOff(contact.to_owned()).into());
        }
        if stored.is_none() && matches!(event, TurnEvent::OperatorReply { .. }) {
            return Err(RuntimeError::NoConversation(contact.to_owned()));
        }
        let conversation = stored.unwrap_or_else(|| Conversation::new(our_number, contact, now));
        if self.replayed(&event)? {
            return Ok(Outcome {
                conversation,
                entries: Vec::new(),
                case,
                duplicate: true,
                skipped: false,
            });
        }
        let mut turn = Turn::new(&*self.plugins, &self.store, conversation, now);
        turn.case = case;
        turn.links_base = &self.links_base;
        if !self.apply(&mut turn, event).await? {
            return Ok(Outcome {
                conversation: turn.conversation,
                entries: Vec::new(),
                case: turn.case,
                duplicate: false,
                skipped: true,
            });
        }
        Ok(commit::commit(self, turn)?)
    }

    /// What `event` does to the conversation, in `turn`; `false` for a start that skipped.
    async fn apply(&self, turn: &mut Turn<'_>, event: TurnEvent) -> Result<bool, RuntimeError> {
        match event {
            TurnEvent::Start(request) => {
                turn.effects.processed.clone_from(&request.event_id);
                return lifecycle::start(self, turn, request).await;
            }
            TurnEvent::Inbound(inbound) => {
                turn.effects.processed = Some(inbound.id.clone());
                turn.effects.inbox_seq = inbound.inbox_seq;
                inbound::handle(self, turn, &inbound).await?;
            }
            TurnEvent::Timer { key, record } => {
                turn.cause = Some(format!("timer:{}", key.to_hex()));
                turn.effects.timer_ops.push(effects::TimerOp::Remove(key));
                lifecycle::timer(self, turn, record.timer).await?;
            }
            TurnEvent::OperatorReply { sender, text } => {
                let step = format!("operator:{sender}");
                turn.queue(crate::compliance::gate::Origin::Agent, &step, text);
            }
            TurnEvent::Desk(command) => desk::apply(self, turn, command).await?,
            TurnEvent::Unsent(unsent) => lifecycle::unsent(turn, &unsent),
        }
        Ok(true)
    }

    /// Whether `event` was already dealt with: a processed inbound id, a timer no longer set.
    fn replayed(&self, event: &TurnEvent) -> Result<bool, StoreError> {
        Ok(match event {
            TurnEvent::Inbound(inbound) => self.tables.processed.contains(&inbound.id)?,
            TurnEvent::Start(StartRequest {
                event_id: Some(id), ..
            }) => self.tables.processed.contains(id)?,
            TurnEvent::Timer { key, .. } => !self.tables.timers.contains(key)?,
            TurnEvent::Start(_)
            | TurnEvent::OperatorReply { .. }
            | TurnEvent::Desk(_)
            | TurnEvent::Unsent(_) => false,
        })
    }
}

impl FactsSource for Runtime {
    fn facts(&self, key: &ConversationKey) -> anyhow::Result<ConversationFacts> {
        Ok(self
            .tables
            .conversations
            .get(key)?
            .map(|conversation| ConversationFacts {
                program: conversation.program,
                class: Some(if conversation.marketing {
                    ConsentClass::Marketing
                } else {
                    ConsentClass::Transactional
                }),
                revocation_asked_at_ms: conversation.revocation_asked_at_ms,
            })
            .unwrap_or_default())
    }
}
