//! The outbox worker: passes that hand the due texts to the provider, many at once, each
//! recipient at most once per pass.
//!
//! A pass: read the due texts; ask the gate about each, marking the ones it clears `sending`;
//! apply and flush those marks (which also puts the turns that queued the texts on disk: they
//! are applied, not flushed); call the provider for all of them concurrently; write every
//! result in one batch; flush.
//! Because a recipient gets at most one text per pass and a pass ends with its results on
//! disk, the record of a send is durable before the next send to that number leaves.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::Instrument as _;

use super::rate::RateLimiter;
use super::{Clearance, Cleared, DeliveryStatus, Lookup, OutboundMessage, Provider, Receipt};
use super::{SendError, clear, seq_of};
use crate::clock::SharedClock;
use crate::compliance::gate::{Gate, GateRecord};
use crate::compliance::ledger::Appending;
use crate::events::{EngineEvent, Events, OptOutSource};
use crate::metrics;
use crate::sms::DeliveryState;
use crate::sms::StatusUpdate;
use crate::store::funnel::{FunnelEvent, FunnelEvents, FunnelKind};
use crate::store::outbox::{Due, FailedPage, OutboxDue, ProviderIds};
use crate::store::{Batch, Store};

/// How the outbox retries and paces.
#[derive(Debug, Clone, Copy)]
pub struct OutboxSettings {
    /// Attempts before a text is marked failed.
    pub max_attempts: u32,
    /// Texts per second per sender number.
    pub messages_per_second: f64,
    /// Provider calls one pass makes at once.
    pub max_in_flight: usize,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            max_attempts: 24,
            messages_per_second: 10.0,
            max_in_flight: 256,
        }
    }
}

/// The first retry waits this long; each further one twice as long, up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i64 = 1_000;
const MAX_BACKOFF_MS: i64 = 5 * 60_000;
/// The longest pause a provider's `Retry-After` can put on a sender.
const MAX_PAUSE_MS: i64 = 60 * 60_000;

/// The outbox and its worker.
#[derive(Debug)]
pub struct Outbox {
    store: Store,
    texts: crate::store::outbox::Outbox,
    due: OutboxDue,
    provider_ids: ProviderIds,
    funnel: FunnelEvents,
    provider: Arc<dyn Provider>,
    gate: Gate,
    clock: SharedClock,
    settings: OutboxSettings,
    limiter: Mutex<RateLimiter>,
    wake: Arc<Notify>,
    events: Option<Arc<Events>>,
    /// Held while a pass hands texts to the provider, so shutdown can wait for it.
    pass: tokio::sync::Mutex<()>,
    stopping: AtomicBool,
}

/// A text the gate cleared in this pass, on its way to the provider.
struct Claim {
    due: Due,
    cleared: Cleared,
}

/// What the provider did with a claim.
enum Sent {
    /// It took the text (now, or before a crash, as the lookup found).
    Accepted(Receipt),
    /// It refused it.
    Refused(SendError),
}

impl Outbox {
    /// An outbox over `store` delivering through `provider`, every text past `gate`; `wake`
    /// is the notifier turns call when they queue a text.
    pub fn new(
        store: &Store,
        provider: Arc<dyn Provider>,
        gate: Gate,
        clock: SharedClock,
        settings: OutboxSettings,
        wake: Arc<Notify>,
    ) -> Self {
        let tables = store.tables();
        Self {
            store: store.clone(),
            texts: tables.outbox,
            due: tables.outbox_due,
            provider_ids: tables.provider_ids,
            funnel: tables.funnel,
            provider,
            gate,
            clock,
            settings,
            limiter: Mutex::new(RateLimiter::new(settings.messages_per_second)),
            wake,
            events: None,
            pass: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Reports opt-outs learnt from the provider to the operator's event webhooks.
    #[must_use]
    pub fn with_events(mut self, events: Arc<Events>) -> Self {
        self.events = Some(events);
        self
    }

    /// The compliance gate every text passes.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Tells the worker there is something to deliver.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Stops sending and waits (up to `grace`) for the pass handing texts to the provider, so
    /// that their results are recorded; returns whether the worker stopped in time.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        tokio::time::timeout(grace, self.pass.lock()).await.is_ok()
    }

    /// One pass (see the module documentation): every due text through [`clear`] and, if
    /// cleared, to the provider, as the rate limit allows; returns how many the provider took.
    /// A text the limit holds back is due again when its sender has capacity; one the gate
    /// defers, when the gate said; a recipient's second due text, in the next pass.
    ///
    /// # Errors
    ///
    /// When the store cannot be read, written or flushed.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let _pass = self.pass.lock().await;
        // A few more than one pass sends: some belong to recipients already in the pass.
        let due = self
            .due
            .due(self.clock.now_ms(), self.settings.max_in_flight * 4)?;
        if due.is_empty() {
            return Ok(0);
        }
        let claims = self.claim(due).await?;
        if claims.is_empty() {
            return Ok(0);
        }
        let results = futures_util::future::join_all(claims.into_iter().map(|claim| async move {
            let span = tracing::info_span!("sms.send", message_id = %claim.cleared.id, to = %claim.cleared.to);
            crate::telemetry::follow(&span, claim.cleared.trace.as_deref());
            let sent = match self.provider.send(&claim.cleared).instrument(span).await {
                Ok(receipt) => Sent::Accepted(receipt),
                Err(error) => Sent::Refused(error),
            };
            (claim, sent)
        }))
        .await;
        let accepted = self.record_results(results)?;
        // The record of each send is durable before the next text to that number leaves.
        self.store.flush().await?;
        Ok(accepted)
    }

    /// Up to `limit` failed texts after outbox seq `after`, and where the next page starts.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn failed(&self, after: Option<u64>, limit: usize) -> anyhow::Result<FailedPage> {
        Ok(self.texts.failed_after(after, limit)?)
    }

    /// Queues failed texts again, each from its first attempt: they pass the gate again
    /// when due, so a replayed text to someone who has since said STOP is blocked, and one
    /// past its `valid_until` expires. Returns, per seq asked for, whether it was queued or
    /// why not (`unknown`, `not failed`).
    ///
    /// # Errors
    ///
    /// When the store cannot be read or written.
    pub async fn replay(&self, seqs: &[u64]) -> anyhow::Result<Vec<(u64, Result<(), String>)>> {
        let mut batch = Batch::new();
        let mut outcomes = Vec::with_capacity(seqs.len());
        let now = self.clock.now_ms();
        for &seq in seqs {
            let outcome = match self.texts.get(seq)? {
                None => Err("unknown".to_owned()),
                Some(mut message) if matches!(message.status, DeliveryStatus::Failed { .. }) => {
                    tracing::info!(id = %message.id, "a failed text is queued again by the operator");
                    message.status = DeliveryStatus::Queued;
                    message.attempts = 0;
                    self.texts.put_in(&mut batch, seq, &message)?;
                    self.due.put_in(&mut batch, Due { due_ms: now, seq })?;
                    Ok(())
                }
                Some(_) => Err("not failed".to_owned()),
            };
            outcomes.push((seq, outcome));
        }
        self.store.apply(batch)?;
        self.store.flush().await?;
        self.notify();
        Ok(outcomes)
    }

    /// Asks the gate about each due text (one per recipient), writes its decision, marks the
    /// cleared ones `sending` durably, and returns them. A text left `sending` by a crash is
    /// looked up at the provider first.
    async fn claim(&self, due: Vec<Due>) -> anyhow::Result<Vec<Claim>> {
        let mut batch = Batch::new();
        let mut recipients = HashSet::new();
        let mut claims = Vec::new();
        let mut recovered = Vec::new();
        for due in due {
            if self.stopping.load(Ordering::SeqCst) || claims.len() >= self.settings.max_in_flight {
                break;
            }
            let Some(message) = self.texts.get(due.seq)? else {
                self.due.remove_in(&mut batch, due);
                continue;
            };
            if !recipients.insert(message.to.clone()) {
                continue;
            }
            if let DeliveryStatus::Sending { since_ms } = message.status {
                match self.provider.find_sent(&message, since_ms).await {
                    Ok(Lookup::Sent(receipt)) => {
                        recovered.push((due, message, receipt));
                        continue;
                    }
                    Ok(Lookup::NotSent) => {}
                    Ok(Lookup::Unknown) => tracing::warn!(
                        id = %message.id,
                        "a send was interrupted and {} cannot look texts up: sending it again (it may arrive twice)",
                        self.provider.name()
                    ),
                    Err(error) => {
                        tracing::warn!(id = %message.id, "cannot look up an interrupted send, trying later: {error}");
                        self.reschedule(&mut batch, due, self.clock.now_ms() + FIRST_BACKOFF_MS)?;
                        continue;
                    }
                }
            }
            if let Some(wait_ms) = self.pace(&message.from) {
                self.reschedule(&mut batch, due, self.clock.now_ms() + wait_ms)?;
                continue;
            }
            claims.extend(self.decide(&mut batch, due, message)?);
        }
        if !recovered.is_empty() {
            let mut ledger = self.gate.compliance().ledger().appending();
            for (due, message, receipt) in recovered {
                self.record_accepted(&mut batch, &mut ledger, due, message, receipt)?;
            }
            self.store.apply(batch)?;
            ledger.committed();
        } else {
            self.store.apply(batch)?;
        }
        if !claims.is_empty() {
            // A crash during the calls finds these `sending` and looks them up before
            // sending again. The same flush puts the turns that queued the texts on disk
            // (they are applied, not flushed): no text leaves before the turn that queued it
            // is durable.
            self.store.flush().await?;
        }
        Ok(claims)
    }

    /// A token for `sender`'s pace, or how long until one is free.
    fn pace(&self, sender: &str) -> Option<i64> {
        self.limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(sender, self.clock.now_ms())
    }

    /// The gate's decision on one text, written to `batch`; a cleared text comes back marked
    /// `sending`.
    fn decide(
        &self,
        batch: &mut Batch,
        due: Due,
        message: OutboundMessage,
    ) -> anyhow::Result<Option<Claim>> {
        let now = self.clock.now_ms();
        let clearance = clear(&self.gate, message, now)?;
        let (decision, reason) = match &clearance {
            Clearance::Send(_) => ("sent", String::new()),
            Clearance::Defer(message, _) => ("deferred", gate_reason(message)),
            Clearance::Block(_, reason) => ("blocked", metrics::reason_kind(reason)),
        };
        metrics::count(
            &metrics::instruments().gate,
            &[("decision", decision), ("reason", &reason)],
        );
        match clearance {
            Clearance::Send(mut cleared) => {
                cleared.message.attempts += 1;
                cleared.message.status = DeliveryStatus::Sending { since_ms: now };
                self.texts.put_in(batch, due.seq, &cleared)?;
                Ok(Some(Claim { due, cleared }))
            }
            Clearance::Defer(mut message, until_ms) => {
                message.status = DeliveryStatus::Queued;
                self.texts.put_in(batch, due.seq, &message)?;
                self.reschedule(batch, due, until_ms)?;
                Ok(None)
            }
            Clearance::Block(mut message, reason) => {
                tracing::info!(id = %message.id, "text blocked by the compliance gate: {reason}");
                let event = FunnelEvent::of_message(FunnelKind::Blocked, &message, now)
                    .with_detail(Some(reason.clone()));
                self.funnel.put_in(batch, &event)?;
                message.status = DeliveryStatus::Blocked { reason };
                self.texts.put_in(batch, due.seq, &message)?;
                self.due.remove_in(batch, due);
                Ok(None)
            }
        }
    }

    /// Writes every provider answer of a pass in one batch; returns how many were taken.
    fn record_results(&self, results: Vec<(Claim, Sent)>) -> anyhow::Result<usize> {
        let mut batch = Batch::new();
        let mut ledger = self.gate.compliance().ledger().appending();
        let mut accepted = 0;
        let mut events = 0;
        for (claim, sent) in results {
            let due = claim.due;
            let message = claim.cleared.into_message();
            match sent {
                Sent::Accepted(receipt) => {
                    self.record_accepted(&mut batch, &mut ledger, due, message, receipt)?;
                    accepted += 1;
                }
                Sent::Refused(error) => {
                    events += self.record_refusal(&mut batch, &mut ledger, due, message, error)?;
                }
            }
        }
        self.store.apply(batch)?;
        ledger.committed();
        if events > 0
            && let Some(events) = &self.events
        {
            events.notify();
        }
        Ok(accepted)
    }

    /// The bookkeeping of a text the provider took: its state and provider id, the gate's
    /// send log (caps, first contact, an opt-out confirmation's ledger record), off the queue.
    fn record_accepted(
        &self,
        batch: &mut Batch,
        ledger: &mut Appending<'_>,
        due: Due,
        mut message: OutboundMessage,
        receipt: Receipt,
    ) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        message.status = DeliveryStatus::Sent;
        message.sent_at_ms = Some(now);
        self.provider_ids
            .put_in(batch, self.provider.name(), &receipt.provider_id, due.seq)?;
        message.provider_id = Some(receipt.provider_id);
        message.provider = Some(self.provider.name().to_owned());
        self.gate.record_sent_in(
            batch,
            ledger,
            due.seq,
            &message.candidate(),
            &message.id,
            now,
        )?;
        self.funnel.put_in(
            batch,
            &FunnelEvent::of_message(FunnelKind::Sent, &message, now),
        )?;
        self.texts.put_in(batch, due.seq, &message)?;
        self.due.remove_in(batch, due);
        Ok(())
    }

    /// How long until a refused text is tried again, if its refusal is temporary: our backoff,
    /// or the pause the provider asked for, which then holds back the whole sender (capped at
    /// [`MAX_PAUSE_MS`], so a wrong header cannot park a number for days).
    fn retry_in(&self, message: &OutboundMessage, error: &SendError) -> Option<i64> {
        match error {
            SendError::Retryable(_) | SendError::Interrupted(_) => Some(crate::clock::backoff_ms(
                FIRST_BACKOFF_MS,
                message.attempts,
                MAX_BACKOFF_MS,
            )),
            SendError::Throttled { retry_after, .. } => {
                let wait_ms = i64::try_from(retry_after.as_millis())
                    .unwrap_or(MAX_PAUSE_MS)
                    .clamp(FIRST_BACKOFF_MS, MAX_PAUSE_MS);
                self.limiter
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pause(&message.from, self.clock.now_ms() + wait_ms);
                Some(wait_ms)
            }
            SendError::OptedOut(_) | SendError::Rejected(_) => None,
        }
    }

    /// A refused text: retried with backoff while attempts remain and the refusal is
    /// temporary, else failed (an opt-out with the carrier suppresses the number). Returns how
    /// many event rows it queued.
    fn record_refusal(
        &self,
        batch: &mut Batch,
        ledger: &mut Appending<'_>,
        due: Due,
        mut message: OutboundMessage,
        error: SendError,
    ) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        if let Some(wait_ms) = self.retry_in(&message, &error)
            && message.attempts < self.settings.max_attempts
        {
            tracing::warn!(id = %message.id, attempt = message.attempts, "send failed, retrying in {wait_ms} ms: {error}");
            // An interrupted call stays `sending`, so the next attempt looks the text up first.
            if !matches!(error, SendError::Interrupted(_)) {
                message.status = DeliveryStatus::Queued;
            }
            self.texts.put_in(batch, due.seq, &message)?;
            self.reschedule(batch, due, now + wait_ms)?;
            return Ok(0);
        }
        tracing::error!(id = %message.id, "text not sent: {error}");
        let kind = match &error {
            SendError::Retryable(_) => "retryable",
            SendError::Throttled { .. } => "throttled",
            SendError::Interrupted(_) => "interrupted",
            SendError::OptedOut(_) => "opted_out",
            SendError::Rejected(_) => "rejected",
        };
        metrics::count(
            &metrics::instruments().provider_errors,
            &[("provider", self.provider.name()), ("kind", kind)],
        );
        let mut events = 0;
        if let SendError::OptedOut(reason) = &error {
            self.gate.record_carrier_opt_out_in(
                batch,
                ledger,
                &message.to,
                self.provider.name(),
                reason,
                now,
            )?;
            if let Some(sink) = &self.events {
                let event = EngineEvent::ContactOptedOut {
                    phone: message.to.clone(),
                    program: crate::compliance::ledger::ALL_PROGRAMS.to_owned(),
                    source: OptOutSource::Provider,
                    detail: reason.clone(),
                };
                events += sink.prepare_in(batch, &event)?;
            }
        }
        let event = FunnelEvent::of_message(FunnelKind::Failed, &message, now)
            .with_detail(Some(error.to_string()));
        self.funnel.put_in(batch, &event)?;
        if matches!(error, SendError::OptedOut(_)) {
            let event = FunnelEvent::of_message(FunnelKind::OptedOut, &message, now)
                .with_detail(Some("the carrier's opt-out".to_owned()));
            self.funnel.put_in(batch, &event)?;
        }
        message.status = DeliveryStatus::Failed {
            reason: error.to_string(),
        };
        self.texts.put_in(batch, due.seq, &message)?;
        self.due.remove_in(batch, due);
        Ok(events)
    }

    fn reschedule(&self, batch: &mut Batch, due: Due, due_ms: i64) -> anyhow::Result<()> {
        self.due.remove_in(batch, due);
        self.due.put_in(
            batch,
            Due {
                due_ms,
                seq: due.seq,
            },
        )?;
        Ok(())
    }

    /// Applies a provider's delivery report to `batch`. States only move forward: a late
    /// `sent` after `delivered` changes nothing. Returns the text it was for, when known.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or the text encoded.
    pub fn record_status_in(
        &self,
        batch: &mut Batch,
        provider: &str,
        update: &StatusUpdate,
    ) -> anyhow::Result<Option<OutboundMessage>> {
        let Some(seq) = self.provider_ids.get(provider, &update.message_id)? else {
            return Ok(None);
        };
        let Some(mut message) = self.texts.get(seq)? else {
            return Ok(None);
        };
        let before = message.delivery;
        if before.is_none_or(|current| update.status > current) {
            message.delivery = Some(update.status);
            self.texts.put_in(batch, seq, &message)?;
            self.record_delivery_in(batch, &message, before, update)?;
        }
        Ok(Some(message))
    }

    /// The funnel's word on a delivery report that moved a text on: delivered (once, even if
    /// `read` follows), or failed.
    fn record_delivery_in(
        &self,
        batch: &mut Batch,
        message: &OutboundMessage,
        before: Option<DeliveryState>,
        update: &StatusUpdate,
    ) -> anyhow::Result<()> {
        let reached = |state: Option<DeliveryState>| {
            state.is_some_and(|state| state >= DeliveryState::Delivered)
        };
        let kind = match update.status {
            DeliveryState::Delivered | DeliveryState::Read if !reached(before) => {
                FunnelKind::Delivered
            }
            DeliveryState::Undelivered | DeliveryState::Failed => FunnelKind::Failed,
            _ => return Ok(()),
        };
        let event = FunnelEvent::of_message(kind, message, self.clock.now_ms())
            .with_detail(update.error_code.clone());
        self.funnel.put_in(batch, &event)?;
        Ok(())
    }

    /// Runs the delivery worker until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut failures = 0;
        loop {
            let sent = match self.deliver_due().await {
                Ok(sent) => {
                    failures = 0;
                    sent
                }
                Err(error) => {
                    let pause = crate::clock::pause_after_failure("outbox", &error, &mut failures);
                    tokio::time::sleep(pause).await;
                    continue;
                }
            };
            if sent > 0 {
                // A recipient's next text waited for this pass: go again at once.
                continue;
            }
            let wait = match self.due.next_due() {
                Ok(Some(due)) => Duration::from_millis(
                    due.saturating_sub(self.clock.now_ms())
                        .clamp(0, 1000)
                        .cast_unsigned(),
                ),
                _ => Duration::from_secs(1),
            };
            let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        }
    }

    /// Runs delivery passes until the gate has decided each of `message_ids` (texts just
    /// queued by a turn that was flushed), and returns them as they are then. A pass takes one
    /// text per recipient, so a turn's n texts to one contact need n passes; a text the sender's
    /// pace holds back is returned undecided (`gate` empty) rather than waited for.
    ///
    /// This is the worker's own pass ([`Outbox::deliver_due`], under the same lock), run
    /// early so a caller can say what happened: the one send path, not a second one.
    ///
    /// # Errors
    ///
    /// When the store cannot be read, written or flushed.
    pub async fn settle(&self, message_ids: &[&str]) -> anyhow::Result<Vec<OutboundMessage>> {
        for _ in 0..=message_ids.len() {
            let messages = self.messages(message_ids)?;
            if messages.iter().all(|message| message.gate.is_some()) {
                return Ok(messages);
            }
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            self.deliver_due().await?;
        }
        self.messages(message_ids)
    }

    fn messages(&self, message_ids: &[&str]) -> anyhow::Result<Vec<OutboundMessage>> {
        let mut messages = Vec::with_capacity(message_ids.len());
        for id in message_ids {
            messages.extend(self.message(id)?);
        }
        Ok(messages)
    }

    /// When quiet hours let a text of `program` reach `to`, if they hold it back now: see
    /// [`crate::compliance::gate::Gate::quiet_until`].
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn quiet_until(&self, to: &str, program: &str, now_ms: i64) -> anyhow::Result<Option<i64>> {
        self.gate.quiet_until(to, program, now_ms)
    }

    /// The text with id `message_id`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn message(&self, message_id: &str) -> anyhow::Result<Option<OutboundMessage>> {
        match seq_of(message_id) {
            Some(seq) => Ok(self.texts.get(seq)?),
            None => Ok(None),
        }
    }

    /// The gate's decision on the text `message_id`: the one it made, or, for a text not yet
    /// taken from the queue, the one it would make now (not recorded: the send makes its own).
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn decision(&self, message_id: &str) -> anyhow::Result<Option<GateRecord>> {
        let Some(message) = self.message(message_id)? else {
            return Ok(None);
        };
        if let Some(made) = message.gate {
            return Ok(Some(made));
        }
        let now = self.clock.now_ms();
        let decision = self.gate.decide(&message.candidate(), now)?;
        Ok(Some(GateRecord::of(&decision, now)))
    }

    /// How many texts wait in the queue.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn due_len(&self) -> anyhow::Result<usize> {
        Ok(self.due.count()?)
    }
}

/// The kind of reason the gate gave for deferring `message` (its latest record).
fn gate_reason(message: &OutboundMessage) -> String {
    message
        .gate
        .as_ref()
        .and_then(|gate| gate.reason.as_deref())
        .map(metrics::reason_kind)
        .unwrap_or_default()
}
