//! The outbox: every outbound text is queued in the same batch as the state change that
//! produced it, and a worker ([`Outbox`]) hands queued texts to the provider: in order, paced
//! per sender number, retried with backoff when the provider is busy or down, and recorded with
//! the provider's id and the delivery reports that follow.
//!
//! # One send path
//!
//! Every text reaches a provider through [`clear`], which asks the compliance gate
//! ([`crate::compliance::gate::Gate`]) first. Two things make that the only way:
//!
//! - The provider handle is a private field of [`Outbox`]; no accessor hands it out, and the
//!   engine builds it only to move it into [`Outbox::new`].
//! - [`Provider::send`] takes a [`Cleared`] text, not an [`OutboundMessage`]. `Cleared` has
//!   private fields and no public constructor, so outside this module no code (no flow, no
//!   plugin host, no API handler, no test) can make one; inside it, only [`clear`] does, and
//!   only with a [`Decision::Send`] from the gate in hand. Calling a provider without the gate
//!   does not compile.
//!
//! Plugins never hold a provider or an outbox: a draft comes back to the runtime as text, and
//! the runtime queues it to the conversation's own contact.
//!
//! # No text twice
//!
//! A text is marked `sending` durably before the provider call, and its result is durable
//! before the next text to the same number leaves. After a crash in the middle of a call, the
//! text is looked up at the provider ([`Provider::find_sent`]: Twilio's message list, filtered
//! by recipient, sender and time) before it is sent again.

mod console;
mod rate;
pub mod telnyx;
pub mod twilio;
mod worker;

use std::time::Duration;

use futures_util::future::BoxFuture;

pub use self::console::ConsoleProvider;
pub use self::worker::{Outbox, OutboxSettings};
use crate::compliance::gate::{Candidate, Decision, Gate, GateRecord};
pub use crate::store::outbox::{DeliveryStatus, OutboundMessage};

impl OutboundMessage {
    /// What the gate needs to know about the text.
    pub(crate) fn candidate(&self) -> Candidate<'_> {
        Candidate {
            to: &self.to,
            body: &self.body,
            program: self.program.as_deref(),
            class: self.class,
            origin: self.origin,
            subject: self.flow.as_deref(),
            brand: self.brand.as_deref(),
            locale: self.locale.as_deref(),
            address_state: self.address_state.as_deref(),
            queued_at_ms: self.queued_at_ms,
            valid_until_ms: self.valid_until_ms,
        }
    }
}

/// A text the gate cleared, the only thing a [`Provider`] accepts. Its fields are private and
/// only [`clear`] makes one: see the module documentation.
#[derive(Debug)]
pub struct Cleared {
    message: OutboundMessage,
}

impl std::ops::Deref for Cleared {
    type Target = OutboundMessage;

    fn deref(&self) -> &OutboundMessage {
        &self.message
    }
}

/// The id of outbox entry `seq`, as transcripts and the API show it.
pub fn message_id(seq: u64) -> String {
    format!("out-{seq:016x}")
}

/// The outbox seq of a [`message_id`].
pub fn seq_of(message_id: &str) -> Option<u64> {
    u64::from_str_radix(message_id.strip_prefix("out-")?, 16).ok()
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
        .timeout(PROVIDER_TIMEOUT)
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

/// What a provider knows of a text whose send was interrupted (by a crash in the middle of the
/// call).
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The provider has it: it was sent.
    Sent(Receipt),
    /// The provider has no such text: send it.
    NotSent,
    /// The provider cannot tell: sending again may send it twice.
    Unknown,
}

/// An SMS provider's sending side.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// The provider's name, as webhooks and the store know it (`twilio`).
    fn name(&self) -> &'static str;

    /// Hands one text to the provider.
    ///
    /// # Errors
    ///
    /// A [`SendError`] saying whether to retry.
    fn send<'a>(&'a self, message: &'a Cleared) -> BoxFuture<'a, Result<Receipt, SendError>>;

    /// Whether the provider took `message`, whose send began at `since_ms` and was
    /// interrupted. Providers that cannot look texts up answer [`Lookup::Unknown`].
    ///
    /// # Errors
    ///
    /// When the provider cannot be asked now: ask again later.
    fn find_sent<'a>(
        &'a self,
        message: &'a OutboundMessage,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Lookup, SendError>> {
        let _ = (message, since_ms);
        Box::pin(async { Ok(Lookup::Unknown) })
    }
}

/// What the gate said of a text, with the text: [`Clearance::Send`] holds the only kind of
/// value a provider accepts.
#[derive(Debug)]
pub enum Clearance {
    /// Hand it to the provider (the content rules' wording is in its body).
    Send(Cleared),
    /// Not before `until_ms`.
    Defer(OutboundMessage, i64),
    /// Never.
    Block(OutboundMessage, String),
}

/// The one send path's gate: asks the gate about `message`, records the decision on it, and
/// when the gate says send, returns it [`Cleared`] with the wording the content rules added.
///
/// # Errors
///
/// When the gate cannot read the store: the text must not be sent.
pub fn clear(gate: &Gate, mut message: OutboundMessage, now_ms: i64) -> anyhow::Result<Clearance> {
    let decision = gate.decide(&message.candidate(), now_ms)?;
    let record = GateRecord::of(&decision, now_ms);
    message.gate = Some(record.clone());
    message.gate_log.push(record);
    Ok(match decision {
        Decision::Send { body, .. } => {
            message.body = body;
            Clearance::Send(Cleared { message })
        }
        Decision::Defer { until_ms, .. } => Clearance::Defer(message, until_ms),
        Decision::Block { reason } => Clearance::Block(message, reason),
    })
}

impl Cleared {
    /// The text back, once the provider has answered.
    fn into_message(self) -> OutboundMessage {
        self.message
    }
}

/// The HTTP timeout of provider calls.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);
