//! A turn's working state, and the operations steps use on it: record a transcript entry,
//! queue a text, set or clear a timer, hand off, end, fail over to an error route.

use std::collections::BTreeMap;

use super::DEFAULT_QUEUE;
use super::effects::{TimerOp, TurnEffects};
use crate::compliance::gate::Origin;
use crate::compliance::ledger::ConsentClass;
use crate::compliance::texts::FALLBACK_LOCALE;
use crate::flow::conversation::{Conversation, Event, Status, Timer, TimerKey, TimerRecord};
use crate::flow::template::{RenderError, Template};
use crate::flow::{Flow, LocalizedTemplate, Step};
use crate::outbound::message_id;
use crate::plugin::{Context, PluginCalls};
use crate::sms::segments::segments;
use crate::store::funnel::Link;
use crate::store::handoffs::{HandoffCase, HandoffContext};
use crate::store::outbox::OutboundMessage;

/// Where a turn gets outbox seqs: the store, or a counter in tests.
pub(super) trait Ids: Send + Sync {
    /// A new id, unique for the store's lifetime.
    fn next_id(&self) -> anyhow::Result<u64>;
}

impl Ids for crate::store::Store {
    fn next_id(&self) -> anyhow::Result<u64> {
        Ok(self.generate_id()?)
    }
}

/// One turn's working state, committed at the end.
pub(super) struct Turn<'r> {
    pub(super) plugins: &'r dyn PluginCalls,
    ids: &'r dyn Ids,
    pub(super) conversation: Conversation,
    pub(super) now: i64,
    pub(super) effects: TurnEffects,
    /// Whether the run reached a wait, a handoff or an end (else it ends when the steps run out).
    pub(super) settled: bool,
    /// The conversation's case, if it was ever handed off; written when
    /// `effects.case_changed`.
    pub(super) case: Option<HandoffCase>,
    /// The step the run is at (a handoff records where the bot stopped).
    pub(super) at_step: Option<String>,
    /// Where tracked links point (`https://go.example.com/l/`).
    pub(super) links_base: &'r str,
    /// Tracked links of the text being rendered, as (code, target): recorded with the text
    /// once it is queued.
    pending_links: Vec<(String, String)>,
    /// What began the turn when it is not an input marked processed (a timer): with the
    /// processed input's id, the cause its texts carry.
    pub(super) cause: Option<String>,
}

impl<'r> Turn<'r> {
    pub(super) fn new(
        plugins: &'r dyn PluginCalls,
        ids: &'r dyn Ids,
        conversation: Conversation,
        now: i64,
    ) -> Self {
        Self {
            plugins,
            ids,
            conversation,
            now,
            effects: TurnEffects::default(),
            settled: false,
            case: None,
            at_step: None,
            links_base: "",
            pending_links: Vec::new(),
            cause: None,
        }
    }

    /// The case, changed by `change`, to be written with the turn and announced to the agents'
    /// pages as `signal` (`handoff`, `message`, `case`) by `agent`.
    pub(super) fn change_case<T>(
        &mut self,
        signal: &'static str,
        agent: Option<&str>,
        change: impl FnOnce(&mut HandoffCase) -> T,
    ) -> Option<T> {
        let case = self.case.as_mut()?;
        let result = change(case);
        self.effects.case_changed = true;
        self.effects.signal = Some((signal, agent.map(str::to_owned)));
        Some(result)
    }

    /// Appends a transcript entry.
    pub(super) fn record(&mut self, event: Event) {
        let seq = self.conversation.transcript_len;
        self.conversation.transcript_len += 1;
        self.effects.entries.push(crate::flow::conversation::Entry {
            seq,
            at_ms: self.now,
            event,
        });
    }

    /// A field's value, or the empty string.
    pub(super) fn field(&self, name: &str) -> String {
        self.conversation
            .fields
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// The conversation as plugins see it.
    pub(super) fn plugin_context(&self) -> Context {
        Context {
            contact: self.conversation.contact.clone(),
            locale: self
                .conversation
                .locale
                .clone()
                .or_else(|| self.conversation.fields.get("locale").cloned())
                .unwrap_or_else(|| FALLBACK_LOCALE.to_owned()),
            fields: self.conversation.fields.clone(),
            last_intents: self.conversation.last_intents.clone(),
        }
    }

    /// The contact's locale, else `flow`'s: what a plugin's draft is taken to be written in.
    pub(super) fn locale<'a>(&'a self, flow: &'a Flow) -> &'a str {
        self.conversation.locale.as_deref().unwrap_or(&flow.locale)
    }

    /// `text` in the contact's locale (the flow's when unknown), rendered from the
    /// conversation's fields, with the locale of the variant used.
    pub(super) fn render_text(
        &mut self,
        text: &LocalizedTemplate,
    ) -> Result<(String, String), RenderError> {
        let wanted = self
            .conversation
            .locale
            .as_deref()
            .unwrap_or(&text.default_locale);
        let Some((locale, template)) = text.variant(wanted) else {
            return Err(RenderError::MissingFields { fields: Vec::new() });
        };
        // The code depends only on the turn, so a replayed turn makes the same links.
        let seed = format!(
            "{}|{}|{}|{}",
            self.conversation.contact,
            self.conversation.run,
            self.now,
            self.effects.entries.len()
        );
        let (base, pending) = (self.links_base, &mut self.pending_links);
        pending.clear();
        let body = template.render_with(&self.conversation.fields, &mut |target| {
            let code = link_code(&seed, pending.len(), target);
            pending.push((code.clone(), target.to_owned()));
            format!("{base}{code}")
        })?;
        Ok((locale.to_owned(), body))
    }

    /// Every template of `templates`, rendered from the conversation's fields.
    pub(super) fn render_all(
        &self,
        templates: &BTreeMap<String, Template>,
    ) -> Result<BTreeMap<String, String>, RenderError> {
        templates
            .iter()
            .map(|(name, template)| Ok((name.clone(), template.render(&self.conversation.fields)?)))
            .collect()
    }

    /// Queues a text in `locale` a flow step asked for (`origin`: the flow itself, or a
    /// plugin's draft).
    pub(super) fn send_as(
        &mut self,
        origin: Origin,
        flow: &Flow,
        step: &Step,
        (locale, body): (String, String),
    ) {
        if let Some(message) = self.queue(origin, &step.name, body) {
            message.flow = Some(flow.id.clone());
            message.locale = Some(locale);
        }
    }

    /// Queues a text to the conversation's contact, recorded in the transcript; the program,
    /// class and brand are the conversation's. Returns the queued text, or `None` when no id
    /// could be allocated (the error is in the transcript).
    pub(super) fn queue(
        &mut self,
        origin: Origin,
        step: &str,
        body: String,
    ) -> Option<&mut OutboundMessage> {
        let seq = match self.ids.next_id() {
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
        message.campaign.clone_from(&conversation.campaign);
        message.variant = conversation.fields.get("variant").cloned();
        message.flow_version = conversation.flow.as_ref().map(|flow| flow.version.clone());
        message.trace = crate::telemetry::traceparent();
        message.valid_until_ms = conversation
            .text_valid_for_ms
            .map(|valid_for| self.now.saturating_add(valid_for));
        let began = self.effects.processed.as_ref().or(self.cause.as_ref());
        message.cause = began.map(|input| {
            let place = self.effects.outgoing.len();
            format!("{input}/{place}")
        });
        self.record_links(&message);
        self.effects.outgoing.push((seq, message));
        self.effects.outgoing.last_mut().map(|(_, message)| message)
    }

    /// The tracked links rendered into `message`, recorded with it.
    fn record_links(&mut self, message: &OutboundMessage) {
        for (code, target) in std::mem::take(&mut self.pending_links) {
            let link = Link {
                target,
                our_number: message.from.clone(),
                contact: message.to.clone(),
                message: message.id.clone(),
                flow: self.conversation.flow.as_ref().map(|flow| flow.id.clone()),
                step: message.step.clone(),
                campaign: message.campaign.clone(),
                variant: message.variant.clone(),
                program: message.program.clone(),
            };
            self.effects.links.push((code, link));
        }
    }

    /// A step failed: its `on_error`, else the flow's, else a handoff.
    pub(super) fn fail(
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

    /// Hands the conversation to people in `queue`; the bot stays silent from here. The case
    /// records where and why the bot stopped, and what it knew, so the agent need not ask.
    pub(super) fn hand_off(&mut self, queue: &str, reason: &str) {
        self.clear_wait();
        self.clear_deadline();
        self.conversation.status = Status::HandedOff {
            queue: queue.to_owned(),
            reason: reason.to_owned(),
            at_ms: self.now,
        };
        let context = self.handoff_context();
        let now = self.now;
        let mut case = match self.case.take() {
            Some(mut case) => {
                case.hand_off_again(queue, reason, now);
                case
            }
            None => HandoffCase::waiting(&self.conversation.key(), queue, reason, now),
        };
        case.context = context;
        self.case = Some(case);
        self.effects.case_changed = true;
        self.effects.signal = Some(("handoff", None));
        self.record(Event::Handoff {
            queue: queue.to_owned(),
            reason: reason.to_owned(),
        });
        self.settled = true;
    }

    /// A resolved conversation goes back to people, in its case's queue (the case itself was
    /// reopened by the caller): waits cleared, and a handoff entry (with its webhook) saying
    /// `why`.
    pub(super) fn back_to_people(&mut self, why: &str) {
        let Some(case) = &self.case else {
            return;
        };
        let (queue, reason) = (case.queue.clone(), case.reason.clone());
        self.clear_wait();
        self.clear_deadline();
        self.conversation.status = Status::HandedOff {
            queue: queue.clone(),
            reason: reason.clone(),
            at_ms: self.now,
        };
        self.record(Event::Handoff {
            queue,
            reason: format!("{why}: {reason}"),
        });
        self.settled = true;
    }

    /// What the bot knew when it stopped.
    fn handoff_context(&self) -> HandoffContext {
        let conversation = &self.conversation;
        let confidence = self
            .effects
            .entries
            .iter()
            .rev()
            .find_map(|entry| match &entry.event {
                Event::Classified { confidence, .. } => Some(*confidence),
                _ => None,
            });
        HandoffContext {
            flow: conversation.flow.as_ref().map(|flow| flow.id.clone()),
            step: self.at_step.clone(),
            campaign: conversation.fields.get("campaign").cloned(),
            intent: conversation.last_intents.first().cloned(),
            confidence,
            fields: conversation
                .fields
                .iter()
                .filter(|(name, _)| name.as_str() != "reply")
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        }
    }

    /// Ends the run with `outcome`.
    pub(super) fn end(&mut self, outcome: Option<String>) {
        self.clear_wait();
        self.clear_deadline();
        self.conversation.status = Status::Ended {
            outcome: outcome.clone(),
            at_ms: self.now,
        };
        self.record(Event::Ended { outcome });
        self.settled = true;
    }

    /// Ends the waiting run so another can start in this turn (a start with
    /// `on_active = "interrupt"`): its timers go, the transcript says it was interrupted.
    pub(super) fn interrupt(&mut self) {
        self.clear_wait();
        self.clear_deadline();
        self.record(Event::Ended {
            outcome: Some(INTERRUPTED_OUTCOME.to_owned()),
        });
    }

    /// Schedules `timer` at `due_ms`; returns its key, hex-encoded for the conversation.
    pub(super) fn add_timer(&mut self, due_ms: i64, timer: Timer) -> String {
        let key = TimerKey {
            due_ms,
            conversation: self.conversation.key(),
            n: self.conversation.timers_set,
        };
        self.conversation.timers_set += 1;
        let record = TimerRecord {
            our_number: self.conversation.our_number.clone(),
            contact: self.conversation.contact.clone(),
            timer,
        };
        let hex_key = key.to_hex();
        self.effects.timer_ops.push(TimerOp::Add(key, record));
        hex_key
    }

    fn remove_timer(&mut self, hex_key: Option<String>) {
        if let Some(key) = hex_key.as_deref().and_then(TimerKey::from_hex) {
            self.effects.timer_ops.push(TimerOp::Remove(key));
        }
    }

    /// Drops the current wait's timeout, if one is set.
    pub(super) fn clear_wait(&mut self) {
        let timer = self.conversation.wait_timer.take();
        self.remove_timer(timer);
    }

    /// Drops the current run's resolution deadline, if it has one.
    pub(super) fn clear_deadline(&mut self) {
        let timer = self.conversation.deadline_timer.take();
        self.remove_timer(timer);
    }
}

/// The outcome of a run another start interrupted.
pub const INTERRUPTED_OUTCOME: &str = "interrupted";

/// The queue a flow's escalations and unrouted failures go to.
pub(super) fn escalation_queue(flow: &Flow) -> String {
    flow.escalation
        .as_ref()
        .map_or_else(|| DEFAULT_QUEUE.to_owned(), |rules| rules.queue.clone())
}

/// A tracked link's code: 10 characters of base 62 from a hash of the turn (`seed`), the
/// link's place in the text and its target, so a replay makes the same code and codes are
/// not guessable from one another.
fn link_code(seed: &str, index: usize, target: &str) -> String {
    use sha2::{Digest as _, Sha256};
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = Sha256::digest(format!("{seed}|{index}|{target}").as_bytes());
    let mut n = u128::from_be_bytes(digest[..16].try_into().unwrap_or([0; 16]));
    (0..LINK_CODE_LEN)
        .map(|_| {
            let digit = usize::try_from(n % 62).unwrap_or(0);
            n /= 62;
            char::from(ALPHABET[digit])
        })
        .collect()
}

/// How long a tracked link's code is.
pub const LINK_CODE_LEN: usize = 10;

#[cfg(test)]
pub(super) mod testing {
    //! A turn without a store or wasm: plugins answered by closures, ids from a counter.

    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    use futures_util::future::BoxFuture;

    use super::{Ids, Turn};
    use crate::flow::conversation::Conversation;
    use crate::plugin::{CallError, ConnectorCall, Context, Draft, Intent, PluginCalls};

    /// Ids 1, 2, 3, …
    #[derive(Default)]
    pub struct Counter(pub AtomicU64);

    impl Ids for Counter {
        fn next_id(&self) -> anyhow::Result<u64> {
            Ok(self.0.fetch_add(1, Ordering::SeqCst) + 1)
        }
    }

    /// Plugins whose answers the test gives; `Err` holds a trap's message.
    #[derive(Default)]
    pub struct Stub {
        /// The classifier's answer.
        pub intent: Option<Result<Intent, String>>,
        /// The reply generator's answer.
        pub draft: Option<Result<Draft, String>>,
        /// The connector's answer.
        pub fields: Option<Result<BTreeMap<String, String>, String>>,
    }

    /// The answer the test gave, or a trap when it gave none.
    fn answer<T: Clone>(given: &Option<Result<T, String>>, plugin: &str) -> Result<T, CallError> {
        match given {
            Some(Ok(value)) => Ok(value.clone()),
            Some(Err(message)) => Err(CallError::Trap {
                plugin: plugin.to_owned(),
                message: message.clone(),
            }),
            None => Err(CallError::NotLoaded {
                plugin: plugin.to_owned(),
            }),
        }
    }

    impl PluginCalls for Stub {
        fn classify<'a>(
            &'a self,
            plugin: &'a str,
            _text: &'a str,
            _context: &'a Context,
        ) -> BoxFuture<'a, Result<Intent, CallError>> {
            let answer = answer(&self.intent, plugin);
            Box::pin(async move { answer })
        }

        fn draft_reply<'a>(
            &'a self,
            plugin: &'a str,
            _text: &'a str,
            _context: &'a Context,
        ) -> BoxFuture<'a, Result<Draft, CallError>> {
            let answer = answer(&self.draft, plugin);
            Box::pin(async move { answer })
        }

        fn connect<'a>(
            &'a self,
            plugin: &'a str,
            _call: &'a ConnectorCall,
        ) -> BoxFuture<'a, Result<BTreeMap<String, String>, CallError>> {
            let answer = answer(&self.fields, plugin);
            Box::pin(async move { answer })
        }
    }

    /// A turn of a fresh conversation at time 1000, with `fields`.
    pub fn turn<'a>(plugins: &'a Stub, ids: &'a Counter, fields: &[(&str, &str)]) -> Turn<'a> {
        let mut conversation = Conversation::new("+15550001000", "+12125550100", 1000);
        conversation.program = Some("care".to_owned());
        for (name, value) in fields {
            conversation
                .fields
                .insert((*name).to_owned(), (*value).to_owned());
        }
        Turn::new(plugins, ids, conversation, 1000)
    }

    /// The flow of `toml`, compiled; the whole-flow checks (fields nothing defines, steps
    /// nothing reaches) are not the point of a step's test, so their findings are ignored.
    pub fn flow(toml: &str) -> crate::flow::Flow {
        match crate::flow::compile::compile_with_problems(std::path::Path::new("test.toml"), toml) {
            Ok((flow, _)) => flow,
            Err(errors) => panic!("{errors:?}"),
        }
    }
}

#[cfg(test)]
mod cause_tests {
    use super::testing::{Counter, Stub, turn};
    use crate::compliance::gate::Origin;

    /// A replayed input queues texts with the same causes, whatever ids the store hands out:
    /// what a cluster's sender sends once.
    #[test]
    fn texts_carry_their_input_and_place_as_cause() {
        let (plugins, ids) = (Stub::default(), Counter::default());
        let mut first = turn(&plugins, &ids, &[]);
        first.effects.processed = Some("twilio:SM1".to_owned());
        first.queue(Origin::Flow, "a", "one".into());
        first.queue(Origin::Flow, "b", "two".into());
        let causes: Vec<_> = first
            .effects
            .outgoing
            .iter()
            .map(|(_, m)| m.cause.clone())
            .collect();
        assert_eq!(
            causes,
            [
                Some("twilio:SM1/0".to_owned()),
                Some("twilio:SM1/1".to_owned())
            ]
        );

        let later = Counter::default();
        later.0.store(500, std::sync::atomic::Ordering::SeqCst);
        let mut replay = turn(&plugins, &later, &[]);
        replay.effects.processed = Some("twilio:SM1".to_owned());
        replay.queue(Origin::Flow, "a", "one".into());
        let (seq, message) = &replay.effects.outgoing[0];
        assert_eq!(*seq, 501);
        assert_eq!(message.cause.as_deref(), Some("twilio:SM1/0"));

        let mut timer = turn(&plugins, &ids, &[]);
        timer.cause = Some("timer:00ff".to_owned());
        timer.queue(Origin::Flow, "nudge", "three".into());
        assert_eq!(
            timer.effects.outgoing[0].1.cause.as_deref(),
            Some("timer:00ff/0")
        );
    }
}
