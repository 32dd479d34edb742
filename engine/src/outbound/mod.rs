//! The outbox: every outbound text is queued here, in the same transaction as the state change
//! that produced it, and a worker hands queued texts to the provider: in order, rate-limited per
//! sender number, retried with backoff when the provider is busy or down, and recorded with the
//! provider's id and the delivery reports that follow.
//!
//! # One send path
//!
//! Every text reaches a provider through [`send`], which asks the compliance gate
//! ([`crate::compliance::gate::Gate`]) first. Two things make that the only way:
//!
//! - The provider handle is a private field of [`Outbox`]; no accessor hands it out, and the
//!   engine builds it only to move it into [`Outbox::new`].
//! - [`Provider::send`] takes a [`Cleared`] text, not an [`OutboundMessage`]. `Cleared` has
//!   private fields and no public constructor, so outside this module no code (no flow, no
//!   plugin host, no API handler, no test) can make one; inside it, only [`send`] does, and
//!   only with a [`Decision::Send`] from the gate in hand. Calling a provider without the gate
//!   does not compile.
//!
//! Plugins never hold a provider or an outbox: a draft comes back to the runtime as text, and
//! the runtime queues it to the conversation's own contact.

mod console;
mod rate;
pub mod telnyx;
pub mod twilio;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use tokio::sync::Notify;

pub use self::console::ConsoleProvider;
use self::rate::RateLimiter;
use crate::clock::SharedClock;
use crate::compliance::gate::{Candidate, Decision, Gate, GateRecord, Origin};
use crate::compliance::ledger::ConsentClass;
use crate::events::Events;
use crate::ingress::{DeliveryState, StatusUpdate};
use crate::store::{Trees, codec};

/// A text in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The outbox id (also the transcript's message id).
    pub id: String,
    /// Our number, the sender.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The text.
    pub body: String,
    /// The flow that sent it.
    pub flow: Option<String>,
    /// The step that sent it.
    pub step: Option<String>,
    /// When it was queued.
    pub queued_at_ms: i64,
    /// Where it is on our side.
    pub status: DeliveryStatus,
    /// The provider's id for it, once sent.
    pub provider_id: Option<String>,
    /// What the provider last reported about it.
    #[serde(default)]
    pub delivery: Option<DeliveryState>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When it was handed to the provider.
    #[serde(default)]
    pub sent_at_ms: Option<i64>,
    /// Its messaging program.
    #[serde(default)]
    pub program: Option<String>,
    /// Marketing or transactional.
    #[serde(default = "transactional")]
    pub class: ConsentClass,
    /// Who asked for it.
    #[serde(default)]
    pub origin: Origin,
    /// The brand it speaks for.
    #[serde(default)]
    pub brand: Option<String>,
    /// The contact's US state from their address, when known.
    #[serde(default)]
    pub address_state: Option<String>,
    /// The gate's latest decision.
    #[serde(default)]
    pub gate: Option<GateRecord>,
    /// Every gate decision, oldest first: the audit trail.
    #[serde(default)]
    pub gate_log: Vec<GateRecord>,
}

fn transactional() -> ConsentClass {
    ConsentClass::Transactional
}

impl OutboundMessage {
    /// A text to queue: the runtime fills in where it came from.
    pub fn new(id: String, from: String, to: String, body: String, queued_at_ms: i64) -> Self {
        Self {
            id,
            from,
            to,
            body,
            flow: None,
            step: None,
            queued_at_ms,
            status: DeliveryStatus::Queued,
            provider_id: None,
            delivery: None,
            attempts: 0,
            sent_at_ms: None,
            program: None,
            class: ConsentClass::Transactional,
            origin: Origin::Flow,
            brand: None,
            address_state: None,
            gate: None,
            gate_log: Vec::new(),
        }
    }

    fn candidate(&self) -> Candidate<'_> {
        Candidate {
            to: &self.to,
            body: &self.body,
            program: self.program.as_deref(),
            class: self.class,
            origin: self.origin,
            subject: self.flow.as_deref(),
            brand: self.brand.as_deref(),
            address_state: self.address_state.as_deref(),
            queued_at_ms: self.queued_at_ms,
        }
    }
}

/// A text the gate cleared, the only thing a [`Provider`] accepts. Its fields are private and
/// only [`send`] makes one: see the module documentation.
#[derive(Debug)]
pub struct Cleared<'a> {
    message: &'a OutboundMessage,
}

impl std::ops::Deref for Cleared<'_> {
    type Target = OutboundMessage;

    fn deref(&self) -> &OutboundMessage {
        self.message
    }
}

/// Where an outbound text is on our side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DeliveryStatus {
    /// Waiting for the worker.
    Queued,
    /// Accepted by the provider.
    Sent,
    /// Given up on.
    Failed {
        /// Why.
        reason: String,
    },
    /// Stopped by the compliance gate; `gate` says why.
    Blocked {
        /// Why.
        reason: String,
    },
}

/// The key of outbox entry `seq`.
pub fn outbox_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The id of outbox entry `seq`, as transcripts and the API show it.
pub fn message_id(seq: u64) -> String {
    format!("out-{seq:016x}")
}

fn seq_of(message_id: &str) -> Option<u64> {
    u64::from_str_radix(message_id.strip_prefix("out-")?, 16).ok()
}

fn due_key(due_ms: i64, seq: u64) -> Vec<u8> {
    let mut key = codec::time_key(due_ms).to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Queues an encoded message inside a transaction over the `outbox` and `outbox_due` trees, due
/// at once.
///
/// # Errors
///
/// When the transaction must abort or retry (sled decides).
pub fn queue_in_transaction(
    outbox: &TransactionalTree,
    due: &TransactionalTree,
    seq: u64,
    encoded: &[u8],
    now_ms: i64,
) -> Result<(), ConflictableTransactionError<()>> {
    outbox.insert(outbox_key(seq).as_slice(), encoded)?;
    due.insert(due_key(now_ms, seq), &[] as &[u8])?;
    Ok(())
}

/// What a provider says when it accepts a text.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The provider's id for the text.
    pub provider_id: String,
}

/// Why a provider did not take a text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Busy or down (HTTP 429, 5xx, a network error): try again later.
    #[error("the provider is unavailable, will retry: {0}")]
    Retryable(String),
    /// The recipient has opted out with the carrier (Twilio error 21610).
    #[error("the recipient has opted out with the provider: {0}")]
    OptedOut(String),
    /// Refused for good (an invalid number, a bad credential).
    #[error("the provider refused the text: {0}")]
    Rejected(String),
}

/// The HTTP client providers send with: a 15 s timeout and our user agent.
fn provider_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("smsflow/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Sends a provider API request and reads the whole answer; a provider that cannot be reached
/// is worth retrying.
async fn exchange(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, Vec<u8>), SendError> {
    let response = request
        .send()
        .await
        .map_err(|error| SendError::Retryable(error.to_string()))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| SendError::Retryable(error.to_string()))?;
    Ok((status, body.to_vec()))
}

/// What a provider's refusal means: an opt-out when its error code is `opted_out_code`, a retry
/// on 429 and 5xx, a rejection otherwise. The error names the status, the code and the
/// provider's own words.
fn refusal(
    status: reqwest::StatusCode,
    code: Option<&str>,
    detail: Option<&str>,
    opted_out_code: &str,
) -> SendError {
    let text = format!(
        "HTTP {status}{}{}",
        code.map(|code| format!(", error {code}"))
            .unwrap_or_default(),
        detail
            .map(|detail| format!(": {detail}"))
            .unwrap_or_default()
    );
    if code == Some(opted_out_code) {
        SendError::OptedOut(text)
    } else if status.as_u16() == 429 || status.is_server_error() {
        SendError::Retryable(text)
    } else {
        SendError::Rejected(text)
    }
}

/// A boxed future, so providers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An SMS provider's sending side.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The provider's name, as webhooks and the store know it (`twilio`).
    fn name(&self) -> &'static str;

    /// Hands one text to the provider.
    ///
    /// # Errors
    ///
    /// A [`SendError`] saying whether to retry.
    fn send<'a>(&'a self, message: &'a Cleared<'a>) -> BoxFuture<'a, Result<Receipt, SendError>>;
}

/// How the outbox retries and paces.
#[derive(Debug, Clone, Copy)]
pub struct OutboxSettings {
    /// Attempts before a text is marked failed.
    pub max_attempts: u32,
    /// Texts per second per sender number.
    pub messages_per_second: f64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            messages_per_second: 10.0,
        }
    }
}

/// The outbox and its worker.
#[derive(Debug)]
pub struct Outbox {
    trees: Trees,
    provider: Arc<dyn Provider>,
    gate: Gate,
    clock: SharedClock,
    settings: OutboxSettings,
    limiter: Mutex<RateLimiter>,
    wake: Notify,
    events: Option<Arc<Events>>,
    /// Held while a pass hands texts to the provider, so shutdown can wait for it.
    pass: tokio::sync::Mutex<()>,
    stopping: AtomicBool,
}

/// The first retry waits this long; each further one twice as long, up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i64 = 1_000;
const MAX_BACKOFF_MS: i64 = 5 * 60_000;

impl Outbox {
    /// An outbox over `trees` delivering through `provider`, every text past `gate`.
    pub fn new(
        trees: Trees,
        provider: Arc<dyn Provider>,
        gate: Gate,
        clock: SharedClock,
        settings: OutboxSettings,
    ) -> Self {
        Self {
            trees,
            provider,
            gate,
            clock,
            settings,
            limiter: Mutex::new(RateLimiter::new(settings.messages_per_second)),
            wake: Notify::new(),
            events: None,
            pass: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Stops sending and waits (up to `grace`) for the text being handed to the provider, so
    /// that its result is recorded; returns whether the worker stopped in time.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.stopping.store(true, Ordering::SeqCst);
        tokio::time::timeout(grace, self.pass.lock()).await.is_ok()
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

    fn load(&self, seq: u64) -> anyhow::Result<Option<OutboundMessage>> {
        self.trees
            .outbox
            .get(outbox_key(seq))
            .context("cannot read the outbox")?
            .map(|value| codec::decode(&value))
            .transpose()
    }

    fn save(&self, seq: u64, message: &OutboundMessage) -> anyhow::Result<()> {
        self.trees
            .outbox
            .insert(outbox_key(seq), codec::encode(message)?)
            .context("cannot update the outbox")?;
        Ok(())
    }

    /// Takes every text that is due through [`send`] (the gate, then the provider), in order,
    /// as the rate limit allows; returns how many the provider accepted. A text the limit
    /// holds back is due again when its sender has capacity; one the gate defers, when the gate
    /// said.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or written.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let _pass = self.pass.lock().await;
        let now = self.clock.now_ms();
        let end = codec::time_key(now.saturating_add(1));
        let due: Vec<sled::IVec> = self
            .trees
            .outbox_due
            .range(..end.as_slice())
            .keys()
            .collect::<Result<_, _>>()
            .context("cannot read the outbox queue")?;
        let mut sent = 0;
        for key in due {
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let Some(seq) = key
                .get(8..16)
                .and_then(|bytes| bytes.try_into().ok())
                .map(u64::from_be_bytes)
            else {
                continue;
            };
            let Some(mut message) = self.load(seq)? else {
                self.trees.outbox_due.remove(&key)?;
                continue;
            };
            let wait_ms = self
                .limiter
                .lock()
                .map_err(|_| anyhow::anyhow!("rate limiter lock poisoned"))?
                .take(&message.from, self.clock.now_ms());
            if let Some(wait_ms) = wait_ms {
                self.reschedule(&key, seq, self.clock.now_ms() + wait_ms)?;
                continue;
            }
            let outcome = send(
                &self.gate,
                self.provider.as_ref(),
                &mut message,
                self.clock.now_ms(),
            )
            .await?;
            match outcome {
                SendOutcome::Accepted(receipt) => {
                    message.status = DeliveryStatus::Sent;
                    message.sent_at_ms = Some(self.clock.now_ms());
                    self.trees
                        .outbox_provider_ids
                        .insert(
                            provider_id_key(self.provider.name(), &receipt.provider_id),
                            &outbox_key(seq),
                        )
                        .context("cannot index a provider id")?;
                    message.provider_id = Some(receipt.provider_id);
                    self.gate.record_sent(
                        seq,
                        &message.candidate(),
                        &message.id,
                        self.clock.now_ms(),
                    )?;
                    self.trees.outbox_due.remove(&key)?;
                    sent += 1;
                }
                SendOutcome::Deferred { until_ms } => {
                    self.reschedule(&key, seq, until_ms)?;
                }
                SendOutcome::Blocked { reason } => {
                    tracing::info!(id = %message.id, "text blocked by the compliance gate: {reason}");
                    message.status = DeliveryStatus::Blocked { reason };
                    self.trees.outbox_due.remove(&key)?;
                }
                SendOutcome::Refused(SendError::Retryable(reason))
                    if message.attempts < self.settings.max_attempts =>
                {
                    let backoff = crate::clock::backoff_ms(
                        FIRST_BACKOFF_MS,
                        message.attempts,
                        MAX_BACKOFF_MS,
                    );
                    tracing::warn!(id = %message.id, attempt = message.attempts, "send failed, retrying in {backoff} ms: {reason}");
                    self.reschedule(&key, seq, self.clock.now_ms() + backoff)?;
                }
                SendOutcome::Refused(error) => {
                    tracing::error!(id = %message.id, "text not sent: {error}");
                    if let SendError::OptedOut(reason) = &error {
                        self.record_carrier_opt_out(&message.to, reason)?;
                    }
                    message.status = DeliveryStatus::Failed {
                        reason: error.to_string(),
                    };
                    self.trees.outbox_due.remove(&key)?;
                }
            }
            self.save(seq, &message)?;
        }
        Ok(sent)
    }

    fn reschedule(&self, key: &[u8], seq: u64, due_ms: i64) -> anyhow::Result<()> {
        self.trees.outbox_due.remove(key)?;
        self.trees
            .outbox_due
            .insert(due_key(due_ms, seq), &[] as &[u8])
            .context("cannot reschedule a text")?;
        Ok(())
    }

    /// When the next text is due.
    fn next_due(&self) -> anyhow::Result<Option<i64>> {
        let first = self
            .trees
            .outbox_due
            .first()
            .context("cannot read the outbox queue")?;
        Ok(first.and_then(|(key, _)| codec::time_prefix(&key)))
    }

    /// Records a provider's report that `number` opted out with the carrier: the gate stops
    /// every text to it, the ledger records the opt-out, and the operator hears of it.
    fn record_carrier_opt_out(&self, number: &str, reason: &str) -> anyhow::Result<()> {
        self.gate.record_carrier_opt_out(
            number,
            self.provider.name(),
            reason,
            self.clock.now_ms(),
        )?;
        if let Some(events) = &self.events {
            events.emit(
                "contact.opted_out",
                serde_json::json!({ "phone": number, "source": "provider", "reason": reason }),
            )?;
        }
        Ok(())
    }

    /// Applies a provider's delivery report. States only move forward: a late `sent` after
    /// `delivered` changes nothing. Returns whether the report was for a known text.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or written.
    pub fn record_status(&self, provider: &str, update: &StatusUpdate) -> anyhow::Result<bool> {
        let Some(seq) = self
            .trees
            .outbox_provider_ids
            .get(provider_id_key(provider, &update.message_id))
            .context("cannot read provider ids")?
            .and_then(|bytes| bytes.as_ref().try_into().ok().map(u64::from_be_bytes))
        else {
            return Ok(false);
        };
        let Some(mut message) = self.load(seq)? else {
            return Ok(false);
        };
        if message
            .delivery
            .is_none_or(|current| update.status > current)
        {
            message.delivery = Some(update.status);
            self.save(seq, &message)?;
        }
        Ok(true)
    }

    /// Runs the delivery worker until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(error) = self.deliver_due().await {
                tracing::error!("outbox: {error:#}");
            }
            let wait = match self.next_due() {
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

    /// The text with id `message_id`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn message(&self, message_id: &str) -> anyhow::Result<Option<OutboundMessage>> {
        match seq_of(message_id) {
            Some(seq) => self.load(seq),
            None => Ok(None),
        }
    }
}

/// What [`send`] did with a text.
enum SendOutcome {
    /// The provider took it.
    Accepted(Receipt),
    /// The gate holds it until `until_ms`.
    Deferred { until_ms: i64 },
    /// The gate stopped it for good.
    Blocked { reason: String },
    /// The gate cleared it and the provider refused it.
    Refused(SendError),
}

/// The one send path: asks the gate about `message`, records the decision on it, and hands it
/// to `provider` only when the gate says send (with the content rules' wording added).
async fn send(
    gate: &Gate,
    provider: &dyn Provider,
    message: &mut OutboundMessage,
    now_ms: i64,
) -> anyhow::Result<SendOutcome> {
    let decision = gate.decide(&message.candidate(), now_ms)?;
    let record = GateRecord::of(&decision, now_ms);
    message.gate = Some(record.clone());
    message.gate_log.push(record);
    match decision {
        Decision::Send { body, .. } => {
            message.body = body;
            message.attempts += 1;
            let cleared = Cleared { message };
            Ok(match provider.send(&cleared).await {
                Ok(receipt) => SendOutcome::Accepted(receipt),
                Err(error) => SendOutcome::Refused(error),
            })
        }
        Decision::Defer { until_ms, .. } => Ok(SendOutcome::Deferred { until_ms }),
        Decision::Block { reason } => Ok(SendOutcome::Blocked { reason }),
    }
}

fn provider_id_key(provider: &str, provider_id: &str) -> Vec<u8> {
    format!("{provider}\0{provider_id}").into_bytes()
}
