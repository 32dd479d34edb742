//! The durable flow runtime.
//!
//! Each event (an API start, an inbound text, a timer) is one *turn* of one conversation: the
//! conversation is locked, its pinned flow is run until it waits, hands off or ends (calling
//! plugins on the way), and then everything the turn produced (state, transcript entries,
//! queued texts, timers, the handoff, the event's "processed" mark) is written in one sled
//! transaction and flushed. A crash before the commit leaves no trace of the turn, so replaying
//! the event redoes it once; a crash after it finds the event marked processed. Timers are rows
//! in the `timers` tree removed in the transaction of the turn they cause, so each fires once,
//! also across restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use sha2::{Digest as _, Sha256};
use sled::Transactional as _;
use tokio::sync::{Notify, OwnedMutexGuard};

use super::FlowKind;
use super::conversation::{
    Conversation, Entry, Event, FlowRef, HandoffRecord, MAX_INTENTS, Status, Timer,
    conversation_key, transcript_key, transcript_prefix,
};
use super::registry::Registry;
use super::template::{RenderError, segments};
use super::{Action, Case, Condition, ConnectorAction, Flow, LocalizedTemplate, Step, words};
use crate::clock::SharedClock;
use crate::compliance::gate::Origin;
use crate::compliance::ledger::{
    ConsentClass, ConsentEvent, ConsentSource, ConsentState, NewConsent,
};
use crate::compliance::{Compliance, InboundFacts, Screening};
use crate::events::Events;
use crate::outbound::{OutboundMessage, Outbox, message_id, queue_in_transaction};
use crate::plugin::{ConnectorCall, Context, PluginHost};
use crate::store::{Store, Trees, codec};

/// Steps one turn may run before the runtime decides the flow is stuck (the validator refuses
/// loops without a wait, so only a chain of error routes can get here).
const MAX_STEPS_PER_TURN: usize = 100;

/// The queue a conversation goes to when a failing step has no route and the flow names no
/// escalation queue.
pub const DEFAULT_QUEUE: &str = "default";

/// An inbound text, already verified and validated by ingress.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The provider's message id: a replay with the same id changes nothing.
    pub id: String,
    /// The contact's number, E.164.
    pub from: String,
    /// Our number, E.164.
    pub to: String,
    /// The text.
    pub text: String,
    /// What ingress decided it means for consent.
    pub screening: Screening,
}

/// A request to start a flow for a contact.
#[derive(Debug, Clone)]
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
}

/// What a turn did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The conversation after the turn.
    pub conversation: Conversation,
    /// The transcript entries the turn wrote.
    pub entries: Vec<Entry>,
    /// The event had been processed before: nothing changed.
    pub duplicate: bool,
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
    /// An agent replied where there is no conversation.
    #[error("no conversation with {0}")]
    NoConversation(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

enum TurnEvent {
    Start(StartRequest),
    Inbound(Inbound),
    AgentReply { agent: String, text: String },
    Timer { key: Vec<u8>, timer: Timer },
}

/// A timer row's value: which conversation and what to do.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TimerRecord {
    our_number: String,
    contact: String,
    timer: Timer,
}

/// Runs conversations.
#[derive(Debug)]
pub struct Runtime {
    store: Store,
    trees: Trees,
    registry: Arc<Registry>,
    plugins: Arc<PluginHost>,
    clock: SharedClock,
    outbox: Arc<Outbox>,
    locks: ConversationLocks,
    timers_changed: Notify,
    events: Option<Arc<Events>>,
}

impl Runtime {
    /// A runtime over `store`, with no flows installed yet (see [`Runtime::registry`]).
    ///
    /// # Errors
    ///
    /// When the store's trees cannot be opened.
    pub fn new(
        store: &Store,
        plugins: Arc<PluginHost>,
        clock: SharedClock,
        outbox: Arc<Outbox>,
    ) -> anyhow::Result<Self> {
        let trees = store.trees()?;
        Ok(Self {
            store: store.clone(),
            registry: Arc::new(Registry::new(trees.flow_versions.clone())),
            trees,
            plugins,
            clock,
            outbox,
            locks: ConversationLocks::default(),
            timers_changed: Notify::new(),
            events: None,
        })
    }

    /// Reports handoffs and conversions to the operator's event webhooks.
    #[must_use]
    pub fn with_events(mut self, events: Arc<Events>) -> Self {
        self.events = Some(events);
        self
    }

    /// The flows in service.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The plugins flows call.
    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.plugins
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The outbox turns queue texts in.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Compliance: the ledger and the policy (shared with the outbox's gate).
    pub fn compliance(&self) -> &Arc<Compliance> {
        self.outbox.gate().compliance()
    }

    /// Screens an inbound text before it is acknowledged: opt-outs and opt-ins are in the
    /// ledger when this returns (flush before the 2xx). See [`Compliance::screen`].
    ///
    /// # Errors
    ///
    /// When the store cannot be read or the ledger written.
    pub async fn screen_inbound(
        &self,
        message_id: &str,
        from: &str,
        to: &str,
        text: &str,
    ) -> anyhow::Result<Screening> {
        let classifier_says_stop = self.classifier_says_stop(text).await;
        let conversation = self.load(&conversation_key(to, from))?;
        let conversation = conversation.as_ref();
        self.compliance().screen(&InboundFacts {
            message_id,
            from,
            text,
            program: conversation.and_then(|c| c.program.as_deref()),
            class: if conversation.is_some_and(|c| c.marketing) {
                ConsentClass::Marketing
            } else {
                ConsentClass::Transactional
            },
            revocation_asked_at_ms: conversation.and_then(|c| c.revocation_asked_at_ms),
            classifier_says_stop,
            now_ms: self.clock.now_ms(),
        })
    }

    /// Whether the configured revocation classifier hears "stop texting me" in `text`. A
    /// failing plugin is logged and heard as no: the built-in rules still apply.
    async fn classifier_says_stop(&self, text: &str) -> bool {
        let config = self.compliance().config();
        let Some(plugin) = &config.revocation_classifier else {
            return false;
        };
        match self
            .plugins
            .classify(plugin, text, &Context::default())
            .await
        {
            Ok(intent) => {
                config.revocation_intents.contains(&intent.name)
                    && intent.confidence >= config.revocation_min_confidence
            }
            Err(error) => {
                tracing::warn!("revocation classifier `{plugin}` failed: {error}");
                false
            }
        }
    }

    /// Queues an agent's reply to `contact` in its conversation. It goes through the same gate
    /// as every text: an opted-out contact does not get it.
    ///
    /// # Errors
    ///
    /// [`RuntimeError::NoConversation`] when there is none, or a store failure.
    pub async fn agent_reply(
        &self,
        our_number: &str,
        contact: &str,
        agent: &str,
        text: &str,
    ) -> Result<Outcome, RuntimeError> {
        let event = TurnEvent::AgentReply {
            agent: agent.to_owned(),
            text: text.to_owned(),
        };
        self.turn(our_number, contact, event).await
    }

    /// Starts `request.flow` for `request.to`.
    ///
    /// # Errors
    ///
    /// A [`RuntimeError`]: unknown flow, no API trigger, missing fields, a run already active,
    /// or a store failure.
    pub async fn start(&self, request: StartRequest) -> Result<Outcome, RuntimeError> {
        let (from, to) = (request.from.clone(), request.to.clone());
        self.turn(&from, &to, TurnEvent::Start(request)).await
    }

    /// Handles an inbound text.
    ///
    /// # Errors
    ///
    /// Only a store failure; a replay of a processed id returns a duplicate [`Outcome`].
    pub async fn inbound(&self, inbound: Inbound) -> Result<Outcome, RuntimeError> {
        let (to, from) = (inbound.to.clone(), inbound.from.clone());
        self.turn(&to, &from, TurnEvent::Inbound(inbound)).await
    }

    /// Fires every timer due now; returns how many fired (stale ones included).
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn fire_due_timers(&self) -> anyhow::Result<usize> {
        let end = codec::time_key(self.clock.now_ms().saturating_add(1));
        let due: Vec<(sled::IVec, sled::IVec)> = self
            .trees
            .timers
            .range(..end.as_slice())
            .collect::<Result<_, _>>()
            .context("cannot read the timers")?;
        for (key, value) in &due {
            let record: TimerRecord = codec::decode(value)?;
            let event = TurnEvent::Timer {
                key: key.to_vec(),
                timer: record.timer,
            };
            match self.turn(&record.our_number, &record.contact, event).await {
                Ok(_) => {}
                Err(RuntimeError::Store(error)) => return Err(error),
                Err(error) => tracing::error!("timer turn refused: {error}"),
            }
        }
        Ok(due.len())
    }

    /// When the next timer is due.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn next_timer_due(&self) -> anyhow::Result<Option<i64>> {
        let first = self
            .trees
            .timers
            .first()
            .context("cannot read the timers")?;
        Ok(first.and_then(|(key, _)| codec::time_prefix(&key)))
    }

    /// Fires timers as they come due, until the task is dropped.
    pub async fn run_timers(self: Arc<Self>) {
        loop {
            if let Err(error) = self.fire_due_timers().await {
                tracing::error!("timers: {error:#}");
            }
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
    ) -> anyhow::Result<Option<Conversation>> {
        self.load(&conversation_key(our_number, contact))
    }

    /// The whole transcript of a conversation, oldest first.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn transcript(&self, our_number: &str, contact: &str) -> anyhow::Result<Vec<Entry>> {
        let prefix = transcript_prefix(&conversation_key(our_number, contact));
        self.trees
            .transcript
            .scan_prefix(prefix)
            .map(|entry| {
                let (_, value) = entry.context("cannot read the transcript")?;
                codec::decode(&value)
            })
            .collect()
    }

    fn load(&self, key: &[u8]) -> anyhow::Result<Option<Conversation>> {
        self.trees
            .conversations
            .get(key)
            .context("cannot read a conversation")?
            .map(|bytes| codec::decode(&bytes))
            .transpose()
    }

    async fn turn(
        &self,
        our_number: &str,
        contact: &str,
        event: TurnEvent,
    ) -> Result<Outcome, RuntimeError> {
        let key = conversation_key(our_number, contact);
        let _guard = self.locks.lock(&key).await;
        let now = self.clock.now_ms();
        let stored = self.load(&key)?;
        let replayed = match &event {
            TurnEvent::Inbound(inbound) => self
                .trees
                .processed
                .contains_key(inbound.id.as_bytes())
                .context("cannot read processed events")?,
            TurnEvent::Timer { key, .. } => !self
                .trees
                .timers
                .contains_key(key)
                .context("cannot read the timers")?,
            TurnEvent::Start(_) | TurnEvent::AgentReply { .. } => false,
        };
        if stored.is_none() && matches!(event, TurnEvent::AgentReply { .. }) {
            return Err(RuntimeError::NoConversation(contact.to_owned()));
        }
        let conversation = stored.unwrap_or_else(|| Conversation::new(our_number, contact, now));
        if replayed {
            return Ok(Outcome {
                conversation,
                entries: Vec::new(),
                duplicate: true,
            });
        }
        let mut turn = Turn::new(self, key, conversation, now);
        let processed_id = match event {
            TurnEvent::Start(request) => {
                turn.start(request).await?;
                None
            }
            TurnEvent::Inbound(inbound) => {
                turn.inbound(&inbound).await?;
                Some(inbound.id)
            }
            TurnEvent::Timer { key, timer } => {
                turn.timer_ops.push(TimerOp::Remove(key));
                turn.timer(timer).await?;
                None
            }
            TurnEvent::AgentReply { agent, text } => {
                let step = format!("agent:{agent}");
                turn.queue(Origin::Agent, &step, text);
                None
            }
        };
        let outcome = turn.commit(processed_id).await?;
        Ok(outcome)
    }
}

/// One turn's working state, committed at the end.
struct Turn<'r> {
    runtime: &'r Runtime,
    key: Vec<u8>,
    conversation: Conversation,
    now: i64,
    entries: Vec<Entry>,
    outgoing: Vec<(u64, OutboundMessage)>,
    timer_ops: Vec<TimerOp>,
    handoff: Option<(Vec<u8>, HandoffRecord)>,
    settled: bool,
}

impl<'r> Turn<'r> {
    fn new(runtime: &'r Runtime, key: Vec<u8>, conversation: Conversation, now: i64) -> Self {
        Self {
            runtime,
            key,
            conversation,
            now,
            entries: Vec::new(),
            outgoing: Vec::new(),
            timer_ops: Vec::new(),
            handoff: None,
            settled: false,
        }
    }

    fn record(&mut self, event: Event) {
        let seq = self.conversation.transcript_len;
        self.conversation.transcript_len += 1;
        self.entries.push(Entry {
            seq,
            at_ms: self.now,
            event,
        });
    }

    fn pinned_flow(&self) -> anyhow::Result<Option<Arc<Flow>>> {
        self.conversation
            .flow
            .as_ref()
            .map(|flow| self.runtime.registry.pinned(flow))
            .transpose()
    }

    async fn start(&mut self, request: StartRequest) -> Result<(), RuntimeError> {
        let set = self.runtime.registry.current();
        let flow = set
            .by_id
            .get(&request.flow)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownFlow(request.flow.clone()))?;
        if !flow.triggers.api {
            return Err(RuntimeError::NotApiStartable(flow.id.clone()));
        }
        let missing: Vec<String> = flow
            .triggers
            .fields
            .iter()
            .filter(|field| {
                request
                    .fields
                    .get(*field)
                    .is_none_or(|value| value.trim().is_empty())
            })
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(RuntimeError::MissingFields {
                flow: flow.id.clone(),
                fields: missing,
            });
        }
        if self.conversation.is_active() {
            return Err(RuntimeError::ConversationActive {
                contact: self.conversation.contact.clone(),
                flow: self
                    .conversation
                    .flow
                    .as_ref()
                    .map(|flow| flow.id.clone())
                    .unwrap_or_default(),
            });
        }
        if let Some(locale) = request.locale {
            self.conversation.locale = locale;
        }
        self.begin_run(&flow, "api", request.fields)?;
        self.run_from(&flow, &flow.start).await
    }

    async fn inbound(&mut self, inbound: &Inbound) -> Result<(), RuntimeError> {
        self.record(Event::Inbound {
            message_id: inbound.id.clone(),
            text: inbound.text.clone(),
        });
        if inbound.screening != Screening::Pass {
            self.answer_screening(&inbound.screening);
            return Ok(());
        }
        self.conversation
            .fields
            .insert("reply".to_owned(), inbound.text.clone());
        match self.conversation.status.clone() {
            Status::Waiting { step, .. } => {
                let flow = self
                    .pinned_flow()?
                    .context("a waiting conversation has no flow")?;
                self.clear_wait();
                if let Some(reason) = self.escalation_reason(&flow, &inbound.text) {
                    let queue = escalation_queue(&flow);
                    self.hand_off(&queue, &reason);
                    return Ok(());
                }
                let Some(Step {
                    action: Action::Wait { on_reply, .. },
                    ..
                }) = flow.steps.get(&step)
                else {
                    return Err(anyhow!("wait step `{step}` is missing from its flow").into());
                };
                let on_reply = on_reply.clone();
                self.run_from(&flow, &on_reply).await
            }
            // A person has the conversation: the bot only records the text.
            Status::HandedOff { .. } => Ok(()),
            Status::Idle | Status::Ended { .. } => {
                let set = self.runtime.registry.current();
                let first_word = words::words(&inbound.text).into_iter().next();
                let (flow, trigger) = match first_word
                    .and_then(|word| set.keywords.get(&word))
                    .and_then(|id| set.by_id.get(id))
                {
                    Some(flow) => (Arc::clone(flow), "keyword"),
                    None => match set.catch_all.as_ref().and_then(|id| set.by_id.get(id)) {
                        Some(flow) => (Arc::clone(flow), "catch_all"),
                        None => return Ok(()),
                    },
                };
                self.begin_run(&flow, trigger, BTreeMap::new())?;
                if trigger == "keyword" && flow.kind == FlowKind::Marketing {
                    self.record_keyword_opt_in(&flow, inbound)?;
                }
                self.run_from(&flow, &flow.start).await
            }
        }
    }

    /// Texting a marketing flow's advertised keyword is the contact's request for that
    /// program's texts: a keyword opt-in, in the ledger. It never undoes an opt-out: only
    /// START does that.
    fn record_keyword_opt_in(&self, flow: &Flow, inbound: &Inbound) -> anyhow::Result<()> {
        let ledger = self.runtime.compliance().ledger();
        let contact = &self.conversation.contact;
        if let ConsentState::OptedOut { .. } =
            ledger.state(contact, &flow.program, ConsentClass::Marketing)?
        {
            return Ok(());
        }
        ledger.append(NewConsent {
            number: contact.clone(),
            program: flow.program.clone(),
            class: ConsentClass::Marketing,
            event: ConsentEvent::OptIn,
            source: ConsentSource::Keyword {
                keyword: words::words(&inbound.text)
                    .into_iter()
                    .next()
                    .unwrap_or_default()
                    .to_uppercase(),
                message_id: inbound.id.clone(),
            },
            disclosure: None,
            frequency: self
                .runtime
                .compliance()
                .program(&flow.program)
                .and_then(|program| program.frequency.clone()),
            raw_text: Some(inbound.text.clone()),
            at_ms: self.now,
        })?;
        Ok(())
    }

    /// Answers a compliance keyword; no flow or plugin sees the text. An opt-out ends the run
    /// (a handed-off conversation stays with its agent, whose replies the gate now blocks).
    fn answer_screening(&mut self, screening: &Screening) {
        let origin = match screening {
            Screening::Pass => return,
            Screening::OptedOut { .. } => {
                if !matches!(self.conversation.status, Status::HandedOff { .. }) {
                    self.end(Some("opted_out".to_owned()));
                }
                Origin::OptOutConfirmation
            }
            Screening::Help { .. } => Origin::Help,
            Screening::OptedIn { .. } => Origin::OptInConfirmation,
            Screening::AskRevocation { .. } => {
                self.conversation.revocation_asked_at_ms = Some(self.now);
                Origin::RevocationQuestion
            }
        };
        let compliance = Arc::clone(self.runtime.compliance());
        // Without a brand, the number the contact texted is the best name we have.
        let brand = compliance
            .brand(screening.program(), self.conversation.brand.as_deref())
            .unwrap_or_else(|| self.conversation.our_number.clone());
        if let Some(text) = compliance.reply_text(screening, &brand) {
            let step = format!("compliance:{}", origin.as_str());
            self.queue(origin, &step, text);
        }
    }

    async fn timer(&mut self, timer: Timer) -> Result<(), RuntimeError> {
        let Status::Waiting { step, .. } = self.conversation.status.clone() else {
            return Ok(());
        };
        let flow = self
            .pinned_flow()?
            .context("a waiting conversation has no flow")?;
        match timer {
            Timer::WaitTimeout { run, step: timed }
                if run == self.conversation.run && timed == step =>
            {
                let Some(Step {
                    action: Action::Wait { on_timeout, .. },
                    ..
                }) = flow.steps.get(&step)
                else {
                    return Err(anyhow!("wait step `{step}` is missing from its flow").into());
                };
                let on_timeout = on_timeout.clone();
                self.record(Event::TimedOut { step });
                self.run_from(&flow, &on_timeout).await
            }
            Timer::ResolveDeadline { run } if run == self.conversation.run => {
                self.clear_wait();
                let within = flow
                    .escalation
                    .as_ref()
                    .and_then(|rules| rules.resolve_within_ms)
                    .map(|ms| {
                        humantime::format_duration(Duration::from_millis(ms.cast_unsigned()))
                            .to_string()
                    })
                    .unwrap_or_default();
                self.hand_off(
                    &escalation_queue(&flow),
                    &format!("not resolved within {within}"),
                );
                Ok(())
            }
            // A timer of an earlier run or step: the conversation has moved on.
            _ => Ok(()),
        }
    }

    fn begin_run(
        &mut self,
        flow: &Flow,
        trigger: &str,
        fields: BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        self.clear_deadline();
        let conversation = &mut self.conversation;
        conversation.run += 1;
        conversation.run_started_at_ms = self.now;
        conversation.questions.clear();
        conversation.flow = Some(FlowRef {
            id: flow.id.clone(),
            version: flow.version.clone(),
        });
        conversation.program = Some(flow.program.clone());
        conversation.marketing = flow.kind == FlowKind::Marketing;
        conversation.brand.clone_from(&flow.brand);
        conversation.fields.extend(fields);
        let builtins = [
            ("contact", conversation.contact.clone()),
            ("our_number", conversation.our_number.clone()),
            ("locale", conversation.locale.clone()),
            ("brand", flow.brand.clone().unwrap_or_default()),
        ];
        for (name, value) in builtins {
            conversation.fields.insert(name.to_owned(), value);
        }
        let run = conversation.run;
        self.record(Event::Started {
            flow: flow.id.clone(),
            version: flow.version.clone(),
            trigger: trigger.to_owned(),
        });
        if let Some(within) = flow
            .escalation
            .as_ref()
            .and_then(|rules| rules.resolve_within_ms)
        {
            let due = self.now.saturating_add(within);
            self.conversation.deadline_timer =
                Some(self.add_timer(due, Timer::ResolveDeadline { run }));
        }
        Ok(())
    }

    async fn run_from(&mut self, flow: &Flow, first: &str) -> Result<(), RuntimeError> {
        self.settled = false;
        let mut next = Some(first.to_owned());
        let mut steps = 0;
        while let Some(name) = next.take() {
            steps += 1;
            if steps > MAX_STEPS_PER_TURN {
                let reason = format!("the flow ran {MAX_STEPS_PER_TURN} steps without waiting");
                self.hand_off(&escalation_queue(flow), &reason);
                break;
            }
            let Some(step) = flow.steps.get(&name) else {
                self.hand_off(
                    &escalation_queue(flow),
                    &format!("step `{name}` does not exist"),
                );
                break;
            };
            self.record(Event::Step { step: name.clone() });
            next = self.execute(flow, step).await;
        }
        if !self.settled {
            self.end(None);
        }
        Ok(())
    }

    async fn execute(&mut self, flow: &Flow, step: &Step) -> Option<String> {
        match &step.action {
            Action::Send {
                text,
                next,
                on_error,
            } => match self.render_text(text) {
                Ok(body) => {
                    self.send(flow, step, body);
                    next.clone()
                }
                Err(error) => self.fail(flow, step, on_error.as_deref(), &error.to_string()),
            },
            Action::Wait { timeout_ms, .. } => {
                let until_ms = self.now.saturating_add(*timeout_ms);
                self.conversation.status = Status::Waiting {
                    step: step.name.clone(),
                    until_ms,
                };
                let run = self.conversation.run;
                let timer = Timer::WaitTimeout {
                    run,
                    step: step.name.clone(),
                };
                self.conversation.wait_timer = Some(self.add_timer(until_ms, timer));
                self.settled = true;
                None
            }
            Action::Classify {
                plugin,
                routes,
                default,
                min_confidence,
                on_error,
            } => {
                let text = self.field("reply");
                let context = self.plugin_context();
                match self.runtime.plugins.classify(plugin, &text, &context).await {
                    Ok(intent) => {
                        let fields = &mut self.conversation.fields;
                        fields.insert("intent".to_owned(), intent.name.clone());
                        fields.insert(
                            "intent_confidence".to_owned(),
                            format!("{:.2}", intent.confidence),
                        );
                        for (name, value) in &intent.entities {
                            fields.insert(
                                format!("{}{name}", super::compile::ENTITY_FIELD_PREFIX),
                                value.clone(),
                            );
                        }
                        self.conversation
                            .last_intents
                            .insert(0, intent.name.clone());
                        self.conversation.last_intents.truncate(MAX_INTENTS);
                        self.record(Event::Classified {
                            intent: intent.name.clone(),
                            confidence: intent.confidence,
                        });
                        let routed = routes
                            .get(&intent.name)
                            .filter(|_| intent.confidence >= *min_confidence);
                        Some(routed.unwrap_or(default).clone())
                    }
                    Err(error) => self.fail(flow, step, on_error.as_deref(), &error.to_string()),
                }
            }
            Action::Branch { cases, default } => {
                let chosen = cases
                    .iter()
                    .find(|case| self.matches(case))
                    .map_or(default, |case| &case.next);
                Some(chosen.clone())
            }
            Action::Connector {
                plugin,
                entity,
                call,
                outputs,
                next,
                on_error,
            } => {
                let context = self.plugin_context();
                let values = &self.conversation.fields;
                let call = match call {
                    ConnectorAction::Lookup { key } => {
                        key.render(values).map(|key| ConnectorCall::Lookup {
                            entity: entity.clone(),
                            key,
                            context,
                        })
                    }
                    ConnectorAction::Write { fields } => {
                        render_all(fields, values).map(|fields| ConnectorCall::Write {
                            entity: entity.clone(),
                            fields,
                            context,
                        })
                    }
                };
                let call = match call {
                    Ok(call) => call,
                    Err(error) => {
                        return self.fail(flow, step, on_error.as_deref(), &error.to_string());
                    }
                };
                match self.runtime.plugins.connect(plugin, &call).await {
                    Ok(result) => {
                        // Declared outputs the call did not return must not keep the values
                        // of an earlier call.
                        for output in outputs {
                            self.conversation.fields.remove(output);
                        }
                        self.conversation.fields.extend(result);
                        Some(next.clone())
                    }
                    Err(error) => self.fail(flow, step, on_error.as_deref(), &error.to_string()),
                }
            }
            Action::Reply {
                plugin,
                min_confidence,
                next,
                on_low_confidence,
                on_error,
            } => {
                let text = self.field("reply");
                let context = self.plugin_context();
                match self
                    .runtime
                    .plugins
                    .draft_reply(plugin, &text, &context)
                    .await
                {
                    Ok(draft) => {
                        let unsure = draft.confidence < *min_confidence
                            || draft.next_step.as_deref() == Some("handoff")
                            || draft.text.trim().is_empty();
                        if unsure {
                            if let Some(target) = on_low_confidence {
                                return Some(target.clone());
                            }
                            let reason = format!(
                                "`{plugin}` was unsure of its reply (confidence {:.2})",
                                draft.confidence
                            );
                            self.hand_off(&escalation_queue(flow), &reason);
                            return None;
                        }
                        self.send_as(Origin::Draft, flow, step, draft.text);
                        Some(next.clone())
                    }
                    Err(error) => self.fail(flow, step, on_error.as_deref(), &error.to_string()),
                }
            }
            Action::Handoff {
                queue,
                reason,
                text,
            } => {
                if let Some(text) = text {
                    match self.render_text(text) {
                        Ok(body) => self.send(flow, step, body),
                        Err(error) => self.record(Event::Error {
                            step: step.name.clone(),
                            message: error.to_string(),
                        }),
                    }
                }
                self.hand_off(queue, reason);
                None
            }
            Action::Set { fields, next } => match render_all(fields, &self.conversation.fields) {
                Ok(values) => {
                    self.conversation.fields.extend(values);
                    Some(next.clone())
                }
                Err(error) => self.fail(flow, step, None, &error.to_string()),
            },
            Action::Split { variants } => {
                let chosen =
                    choose_variant(&self.conversation.contact, &flow.id, &step.name, variants)?;
                self.conversation
                    .fields
                    .insert("variant".to_owned(), chosen.name.clone());
                self.record(Event::Variant {
                    step: step.name.clone(),
                    variant: chosen.name.clone(),
                });
                Some(chosen.next.clone())
            }
            Action::End { text, outcome } => {
                if let Some(text) = text {
                    match self.render_text(text) {
                        Ok(body) => self.send(flow, step, body),
                        Err(error) => self.record(Event::Error {
                            step: step.name.clone(),
                            message: error.to_string(),
                        }),
                    }
                }
                self.end(outcome.clone());
                None
            }
        }
    }

    fn field(&self, name: &str) -> String {
        self.conversation
            .fields
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    fn plugin_context(&self) -> Context {
        Context {
            contact: self.conversation.contact.clone(),
            locale: self.conversation.locale.clone(),
            fields: self.conversation.fields.clone(),
            last_intents: self.conversation.last_intents.clone(),
        }
    }

    fn render_text(&self, text: &LocalizedTemplate) -> Result<String, RenderError> {
        let Some(template) = text.for_locale(&self.conversation.locale) else {
            return Err(RenderError::MissingFields { fields: Vec::new() });
        };
        template.render(&self.conversation.fields)
    }

    fn matches(&self, case: &Case) -> bool {
        let value = self.field(case.field.as_deref().unwrap_or("reply"));
        match &case.condition {
            Condition::OneOf(options) => options.contains(&words::keyword(&value)),
            Condition::Contains(phrases) => {
                let value_words = words::words(&value);
                phrases
                    .iter()
                    .any(|phrase| words::contains_phrase(&value_words, phrase))
            }
            Condition::AtLeast(minimum) => {
                first_number(&value).is_some_and(|number| number >= *minimum)
            }
            Condition::Present(present) => value.trim().is_empty() != *present,
        }
    }

    /// Queues a flow's text in the outbox, recorded in the transcript.
    fn send(&mut self, flow: &Flow, step: &Step, body: String) {
        self.send_as(Origin::Flow, flow, step, body);
    }

    /// Queues a text `origin` asked for in a flow step.
    fn send_as(&mut self, origin: Origin, flow: &Flow, step: &Step, body: String) {
        if let Some(message) = self.queue(origin, &step.name, body) {
            message.flow = Some(flow.id.clone());
        }
    }

    /// Queues a text to the conversation's contact, recorded in the transcript; the program,
    /// class and brand are the conversation's. Returns the queued text, or `None` when no id
    /// could be allocated (the error is in the transcript).
    fn queue(&mut self, origin: Origin, step: &str, body: String) -> Option<&mut OutboundMessage> {
        let seq = match self.runtime.store.generate_id() {
            Ok(seq) => seq,
            Err(error) => {
                self.record(Event::Error {
                    step: step.to_owned(),
                    message: format!("{error:#}"),
                });
                return None;
            }
        };
        let id = message_id(seq);
        self.record(Event::Outbound {
            message_id: id.clone(),
            text: body.clone(),
            step: step.to_owned(),
            segments: segments(&body).segments,
        });
        let conversation = &self.conversation;
        let mut message = OutboundMessage::new(
            id,
            conversation.our_number.clone(),
            conversation.contact.clone(),
            body,
            self.now,
        );
        message.step = Some(step.to_owned());
        message.origin = origin;
        message.program.clone_from(&conversation.program);
        message.class = if conversation.marketing && !origin.is_compliance_reply() {
            ConsentClass::Marketing
        } else {
            ConsentClass::Transactional
        };
        message.brand.clone_from(&conversation.brand);
        message.address_state = conversation.fields.get("state").cloned();
        self.outgoing.push((seq, message));
        self.outgoing.last_mut().map(|(_, message)| message)
    }

    /// A step failed: its `on_error`, else the flow's, else a handoff.
    fn fail(
        &mut self,
        flow: &Flow,
        step: &Step,
        on_error: Option<&str>,
        message: &str,
    ) -> Option<String> {
        self.record(Event::Error {
            step: step.name.clone(),
            message: message.to_owned(),
        });
        match on_error.or(flow.on_error.as_deref()) {
            Some(target) if target != step.name => Some(target.to_owned()),
            _ => {
                let reason = format!("step `{}` failed: {message}", step.name);
                self.hand_off(&escalation_queue(flow), &reason);
                None
            }
        }
    }

    fn hand_off(&mut self, queue: &str, reason: &str) {
        self.clear_wait();
        self.clear_deadline();
        self.conversation.status = Status::HandedOff {
            queue: queue.to_owned(),
            reason: reason.to_owned(),
            at_ms: self.now,
        };
        let mut key = queue.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(&self.key);
        self.handoff = Some((
            key,
            HandoffRecord {
                our_number: self.conversation.our_number.clone(),
                contact: self.conversation.contact.clone(),
                reason: reason.to_owned(),
                at_ms: self.now,
            },
        ));
        self.record(Event::Handoff {
            queue: queue.to_owned(),
            reason: reason.to_owned(),
        });
        self.settled = true;
    }

    fn end(&mut self, outcome: Option<String>) {
        self.clear_wait();
        self.clear_deadline();
        self.conversation.status = Status::Ended {
            outcome: outcome.clone(),
            at_ms: self.now,
        };
        self.record(Event::Ended { outcome });
        self.settled = true;
    }

    fn escalation_reason(&mut self, flow: &Flow, text: &str) -> Option<String> {
        let rules = flow.escalation.as_ref()?;
        let text_words = words::words(text);
        if let Some(cue) = rules
            .cue_words
            .iter()
            .find(|cue| words::contains_phrase(&text_words, cue))
        {
            return Some(format!("cue word `{}`", cue.join(" ")));
        }
        for topic in &rules.topics {
            if let Some(phrase) = topic
                .phrases()
                .iter()
                .find(|phrase| words::contains_phrase(&text_words, &words::words(phrase)))
            {
                return Some(format!("{} topic (`{phrase}`)", topic.name()));
            }
        }
        if rules.repeated_question > 0 && text.contains('?') && !text_words.is_empty() {
            let asked = self
                .conversation
                .questions
                .entry(text_words.join(" "))
                .or_default();
            *asked += 1;
            if *asked >= rules.repeated_question {
                return Some(format!("asked the same question {asked} times"));
            }
        }
        None
    }

    /// Schedules `timer` at `due_ms`; returns its key, hex-encoded for the conversation.
    fn add_timer(&mut self, due_ms: i64, timer: Timer) -> String {
        let mut key = codec::time_key(due_ms).to_vec();
        key.extend_from_slice(&self.key);
        key.extend_from_slice(&self.conversation.timers_set.to_be_bytes());
        self.conversation.timers_set += 1;
        let record = TimerRecord {
            our_number: self.conversation.our_number.clone(),
            contact: self.conversation.contact.clone(),
            timer,
        };
        let hex_key = hex::encode(&key);
        self.timer_ops.push(TimerOp::Add(key, record));
        hex_key
    }

    fn remove_timer(&mut self, hex_key: Option<String>) {
        if let Some(key) = hex_key.and_then(|key| hex::decode(key).ok()) {
            self.timer_ops.push(TimerOp::Remove(key));
        }
    }

    /// Drops the current wait's timeout, if one is set.
    fn clear_wait(&mut self) {
        let timer = self.conversation.wait_timer.take();
        self.remove_timer(timer);
    }

    /// Drops the current run's resolution deadline, if it has one.
    fn clear_deadline(&mut self) {
        let timer = self.conversation.deadline_timer.take();
        self.remove_timer(timer);
    }

    async fn commit(mut self, processed_id: Option<String>) -> anyhow::Result<Outcome> {
        self.conversation.updated_at_ms = self.now;
        let trees = &self.runtime.trees;
        let conversation = codec::encode(&self.conversation)?;
        let entries = self
            .entries
            .iter()
            .map(|entry| Ok((transcript_key(&self.key, entry.seq), codec::encode(entry)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let outgoing = self
            .outgoing
            .iter()
            .map(|(seq, message)| Ok((*seq, codec::encode(message)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // In order: a timer set and cleared in the same turn is not left behind.
        let timer_ops = self
            .timer_ops
            .iter()
            .map(|op| match op {
                TimerOp::Add(key, record) => Ok((key.clone(), Some(codec::encode(record)?))),
                TimerOp::Remove(key) => Ok((key.clone(), None)),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let timers_added = timer_ops.iter().any(|(_, value)| value.is_some());
        let handoff = self
            .handoff
            .as_ref()
            .map(|(key, record)| Ok::<_, anyhow::Error>((key.clone(), codec::encode(record)?)))
            .transpose()?;
        let processed_at = codec::time_key(self.now);
        (
            &trees.conversations,
            &trees.transcript,
            &trees.timers,
            &trees.outbox,
            &trees.outbox_due,
            &trees.handoffs,
            &trees.processed,
        )
            .transaction(
                |(conversations, transcript, timers, outbox, outbox_due, handoffs, processed)| {
                    conversations.insert(self.key.as_slice(), conversation.as_slice())?;
                    for (key, value) in &entries {
                        transcript.insert(key.as_slice(), value.as_slice())?;
                    }
                    for (key, value) in &timer_ops {
                        match value {
                            Some(value) => timers.insert(key.as_slice(), value.as_slice())?,
                            None => timers.remove(key.as_slice())?,
                        };
                    }
                    for (seq, value) in &outgoing {
                        queue_in_transaction(outbox, outbox_due, *seq, value, self.now)?;
                    }
                    if let Some((key, value)) = &handoff {
                        handoffs.insert(key.as_slice(), value.as_slice())?;
                    }
                    if let Some(id) = &processed_id {
                        processed.insert(id.as_bytes(), processed_at.as_slice())?;
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                },
            )
            .map_err(|error| anyhow!("cannot commit a conversation turn: {error:?}"))?;
        self.emit_events();
        self.runtime.store.flush().await?;
        if !self.outgoing.is_empty() {
            self.runtime.outbox.notify();
        }
        if timers_added {
            self.runtime.timers_changed.notify_one();
        }
        Ok(Outcome {
            conversation: self.conversation,
            entries: self.entries,
            duplicate: false,
        })
    }
}

impl Turn<'_> {
    /// Queues the turn's event webhooks; the flush that follows makes them durable with it.
    fn emit_events(&self) {
        let Some(events) = &self.runtime.events else {
            return;
        };
        let conversation = &self.conversation;
        let flow = conversation.flow.as_ref().map(|flow| flow.id.as_str());
        for entry in &self.entries {
            let (kind, data) = match &entry.event {
                Event::Handoff { queue, reason } => (
                    "conversation.handoff",
                    serde_json::json!({
                        "our_number": conversation.our_number,
                        "contact": conversation.contact,
                        "flow": flow,
                        "queue": queue,
                        "reason": reason,
                    }),
                ),
                Event::Ended {
                    outcome: Some(outcome),
                } => (
                    "conversion",
                    serde_json::json!({
                        "our_number": conversation.our_number,
                        "contact": conversation.contact,
                        "flow": flow,
                        "outcome": outcome,
                        "variant": conversation.fields.get("variant"),
                    }),
                ),
                _ => continue,
            };
            if let Err(error) = events.emit(kind, data) {
                tracing::error!("event `{kind}` not queued: {error:#}");
            }
        }
    }
}

/// The first number in `text`, as people write amounts: `$8,000` is 8000, `30k` is 30000,
/// `1.5m` is 1500000, and in `30000-40000` it is 30000.
fn first_number(text: &str) -> Option<f64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .unwrap_or(rest.len());
    let digits: String = rest[..end]
        .trim_end_matches(['.', ','])
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let number: f64 = digits.parse().ok()?;
    let mut suffix = rest[end..].chars();
    let multiplier = match (suffix.next(), suffix.next()) {
        (Some('k' | 'K'), next) if !next.is_some_and(char::is_alphabetic) => 1e3,
        (Some('m' | 'M'), next) if !next.is_some_and(char::is_alphabetic) => 1e6,
        _ => 1.0,
    };
    Some(number * multiplier)
}

/// A change to the `timers` tree, applied in order at commit.
enum TimerOp {
    Add(Vec<u8>, TimerRecord),
    Remove(Vec<u8>),
}

fn escalation_queue(flow: &Flow) -> String {
    flow.escalation
        .as_ref()
        .map_or_else(|| DEFAULT_QUEUE.to_owned(), |rules| rules.queue.clone())
}

fn render_all(
    templates: &BTreeMap<String, super::template::Template>,
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, RenderError> {
    templates
        .iter()
        .map(|(name, template)| Ok((name.clone(), template.render(values)?)))
        .collect()
}

/// The variant a contact gets: a hash of (contact, flow, step), so the same contact always
/// gets the same variant of a split, and contacts spread by weight.
fn choose_variant<'v>(
    contact: &str,
    flow: &str,
    step: &str,
    variants: &'v [super::Variant],
) -> Option<&'v super::Variant> {
    let total: u64 = variants
        .iter()
        .map(|variant| u64::from(variant.weight))
        .sum();
    if total == 0 {
        return variants.first();
    }
    let digest = Sha256::digest(format!("{contact}\0{flow}\0{step}").as_bytes());
    let mut bucket = u64::from_be_bytes(digest[..8].try_into().ok()?) % total;
    for variant in variants {
        let weight = u64::from(variant.weight);
        if bucket < weight {
            return Some(variant);
        }
        bucket -= weight;
    }
    variants.last()
}

/// One async lock per conversation, so two events for one conversation never interleave,
/// while different conversations run in parallel.
#[derive(Debug, Default)]
struct ConversationLocks {
    locks: std::sync::Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
}

impl ConversationLocks {
    async fn lock(&self, key: &[u8]) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if locks.len() > 4096 {
                locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            }
            Arc::clone(locks.entry(key.to_vec()).or_default())
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Variant;

    fn variant(name: &str, weight: u32) -> Variant {
        Variant {
            name: name.to_owned(),
            weight,
            next: name.to_owned(),
        }
    }

    #[test]
    fn reads_the_first_amount_in_a_text() {
        assert_eq!(first_number("$8,000 by June 1"), Some(8000.0));
        assert_eq!(first_number("30000-40000"), Some(30000.0));
        assert_eq!(first_number("about 30k"), Some(30000.0));
        assert_eq!(first_number("1.5M"), Some(1_500_000.0));
        assert_eq!(first_number("5 months"), Some(5.0));
        assert_eq!(first_number("25000."), Some(25000.0));
        assert_eq!(first_number("no idea"), None);
    }

    #[test]
    fn splits_are_sticky_and_follow_weights() {
        let variants = [variant("a", 1), variant("b", 3)];
        let mut counts = BTreeMap::new();
        for n in 0..4000 {
            let contact = format!("+1555{n:07}");
            let first = choose_variant(&contact, "offer", "split", &variants).unwrap();
            let again = choose_variant(&contact, "offer", "split", &variants).unwrap();
            assert_eq!(first.name, again.name);
            *counts.entry(first.name.clone()).or_insert(0) += 1;
        }
        let b_share = f64::from(counts["b"]) / 4000.0;
        assert!((0.72..0.78).contains(&b_share), "b got {b_share}");
    }
}
