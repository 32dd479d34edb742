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
//! by recipient, sender and time) before it is sent again; so is a text whose call broke after
//! the request may have reached the provider (a timeout, a dropped connection, an answer cut
//! short: [`SendError::Interrupted`]).

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
    /// Busy, and it said for how long (a 429 or 503 with `Retry-After`): the sender waits
    /// that long before its next text.
    #[error("the provider asked for a pause of {} s: {reason}", retry_after.as_secs())]
    Throttled {
        /// The status and the provider's words.
        reason: String,
        /// How long the provider asked us to wait.
        retry_after: Duration,
    },
    /// The call broke after the request may have reached the provider (a timeout, a dropped
    /// connection, an answer cut short): the text is looked up at the provider before it is
    /// sent again, as after a crash.
    #[error("the provider call was interrupted, will look the text up: {0}")]
    Interrupted(String),
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

/// A provider's answer to an API request.
struct Answer {
    status: reqwest::StatusCode,
    /// Its `Retry-After`, in seconds or as an HTTP date.
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// Sends a provider API request and reads the whole answer. A provider that cannot be reached
/// is worth retrying; one reached but not heard from in full may have taken the text.
async fn exchange(request: reqwest::RequestBuilder) -> Result<Answer, SendError> {
    let response = request.send().await.map_err(|error| {
        if error.is_connect() {
            SendError::Retryable(error.to_string())
        } else {
            SendError::Interrupted(error.to_string())
        }
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| retry_after(value, jiff::Timestamp::now()));
    let body = response
        .bytes()
        .await
        .map_err(|error| SendError::Interrupted(error.to_string()))?;
    Ok(Answer {
        status,
        retry_after,
        body: body.to_vec(),
    })
}

/// A `Retry-After` value (RFC 9110 §10.2.3: delay seconds or an HTTP date) as a wait from
/// `now`; `None` when it is neither.
fn retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) is an RFC 2822 date.
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(Duration::try_from(at.duration_since(now)).unwrap_or_default())
}

/// What a provider's refusal means: an opt-out when its error code is `opted_out_code`, a
/// pause when a 429 or 503 says how long, a retry on other 429s and 5xx, a rejection
/// otherwise. The error names the status, the code and the provider's own words.
fn refusal(
    answer: &Answer,
    code: Option<&str>,
    detail: Option<&str>,
    opted_out_code: &str,
) -> SendError {
    let status = answer.status;
    let text = format!(
        "HTTP {status}{}{}",
        code.map(|code| format!(", error {code}"))
            .unwrap_or_default(),
        detail
            .map(|detail| format!(": {detail}"))
            .unwrap_or_default()
    );
    let busy = matches!(status.as_u16(), 429 | 503);
    if code == Some(opted_out_code) {
        SendError::OptedOut(text)
    } else if let Some(retry_after) = answer.retry_after.filter(|_| busy) {
        SendError::Throttled {
            reason: text,
            retry_after,
        }
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
    /// A text a cluster partition's owner cleared at its gate, carried to the sender of its
    /// number through the send stream ([`crate::cluster::send`]). Only that sender makes one.
    pub(crate) fn relayed(message: OutboundMessage) -> Self {
        Self { message }
    }

    /// The text back, once the provider has answered.
    fn into_message(self) -> OutboundMessage {
        self.message
    }
}

/// The HTTP timeout of provider calls.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<&str>) -> Answer {
        let now = jiff::Timestamp::from_second(784_111_777).unwrap();
        Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.and_then(|value| super::retry_after(value, now)),
            body: Vec::new(),
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = jiff::Timestamp::from_second(784_111_777).unwrap();
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        // RFC 9110's example date is `now` + 0; one a minute later waits a minute.
        let later = "Sun, 06 Nov 1994 08:50:37 GMT";
        assert_eq!(retry_after(later, now), Some(Duration::from_secs(60)));
        let past = "Sun, 06 Nov 1994 08:00:00 GMT";
        assert_eq!(retry_after(past, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

    #[test]
    fn a_busy_answer_with_retry_after_pauses_and_others_keep_their_meaning() {
        let throttled = refusal(&answer(429, Some("30")), None, None, "21610");
        assert!(
            matches!(&throttled, SendError::Throttled { retry_after, .. } if retry_after.as_secs() == 30),
            "{throttled:?}"
        );
        let unavailable = refusal(&answer(503, Some("5")), None, None, "21610");
        assert!(matches!(unavailable, SendError::Throttled { .. }));
        // A 500 with Retry-After, or a 429 without one, backs off on our own schedule.
        let broken = refusal(&answer(500, Some("5")), None, None, "21610");
        assert!(matches!(broken, SendError::Retryable(_)), "{broken:?}");
        let busy = refusal(&answer(429, None), None, None, "21610");
        assert!(matches!(busy, SendError::Retryable(_)));
        let opted_out = refusal(&answer(400, Some("5")), Some("21610"), None, "21610");
        assert!(matches!(opted_out, SendError::OptedOut(_)));
        let rejected = refusal(&answer(400, None), Some("21211"), Some("bad To"), "21610");
        assert!(
            matches!(&rejected, SendError::Rejected(text) if text == "HTTP 400 Bad Request, error 21211: bad To"),
            "{rejected:?}"
        );
    }
}
