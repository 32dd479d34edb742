//! Sending in cluster mode.
//!
//! - The partition's owner decides at its gate, as on one node, then [`StreamProvider`] hands
//!   the cleared text to the send stream under its sender number, stamped with the partition,
//!   the owner's epoch and the last input the owner had applied.
//! - One node holds each sender number's lease and runs [`run_sender`]: one durable consumer,
//!   one pacer per number across the cluster. Before the provider call it drops a text
//!   - from a stale owner: a new owner publishes a **fence** `(partition, epoch)` on every
//!     sender subject before its first text, so a text behind the fence with an older epoch
//!     was published by an owner that had lost the partition;
//!   - cleared before a STOP that ingress acknowledged (see [`super::ingress`]);
//!   - already sent: a `create` of the text's cause in `smsflow_sent` comes first, and only
//!     one create of a key succeeds, so a cause replayed by a new owner is sent once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage as Publish;
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use sha2::Digest as _;

use super::ClusterError;
use super::bus::Bus;
use super::lease::Fence;
use super::partition::{send_subject, token};
use crate::compliance::ledger::{ConsentState, Ledger};
use crate::metrics::{count, instruments};
use crate::outbound::{Cleared, Lookup, OutboundMessage, Provider, Receipt, SendError};
use crate::store::consent::ALL_PROGRAMS;

const KIND: &str = "Smsflow-Kind";
const PARTITION: &str = "Smsflow-Partition";
const EPOCH: &str = "Smsflow-Epoch";
const APPLIED: &str = "Smsflow-Applied";

/// Counts a cluster event.
pub(crate) fn note(event: &str) {
    count(&instruments().cluster, &[("event", event)]);
}

/// The partition owner's provider: the send stream.
#[derive(Debug)]
pub struct StreamProvider {
    bus: Bus,
    partition: u32,
    epoch: u64,
    fence: Fence,
    applied: Arc<AtomicU64>,
    ledger: Ledger,
    name: &'static str,
}

impl StreamProvider {
    /// For partition `partition` held at `epoch`, `applied` its last applied input; `ledger`
    /// is the partition's consent ledger and `name` the real provider's.
    pub fn new(
        bus: Bus,
        (partition, epoch, fence): (u32, u64, Fence),
        applied: Arc<AtomicU64>,
        ledger: Ledger,
        name: &'static str,
    ) -> Self {
        Self {
            bus,
            partition,
            epoch,
            fence,
            applied,
            ledger,
            name,
        }
    }

    /// The consent check again, after reading `applied`: a STOP applied between the gate's
    /// decision and now is in the ledger, one applied later is behind `applied` and the
    /// sender's opt-out fence catches it.
    fn still_consented(&self, message: &OutboundMessage) -> Result<(), SendError> {
        if message.origin.is_compliance_reply() {
            return Ok(());
        }
        let program = message.program.as_deref().unwrap_or(ALL_PROGRAMS);
        let state = self
            .ledger
            .state(&message.to, program, message.class)
            .map_err(|error| SendError::Retryable(format!("the consent ledger: {error:#}")))?;
        match state {
            ConsentState::OptedOut { .. } => Err(SendError::Rejected(
                "the recipient opted out while the text was being sent".into(),
            )),
            _ => Ok(()),
        }
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<Receipt, SendError> {
        if !self.fence.valid() {
            note("stale_refused");
            return Err(SendError::Retryable(
                "this node no longer owns the partition".into(),
            ));
        }
        let applied = self.applied.load(Ordering::SeqCst);
        self.still_consented(message)?;
        let payload = serde_json::to_vec(message)
            .map_err(|error| SendError::Rejected(format!("cannot encode the text: {error}")))?;
        let cause = message.cause.as_deref().unwrap_or(&message.id);
        let mut headers = HeaderMap::new();
        headers.insert(KIND, "text");
        headers.insert(PARTITION, self.partition.to_string().as_str());
        headers.insert(EPOCH, self.epoch.to_string().as_str());
        headers.insert(APPLIED, applied.to_string().as_str());
        let publish = Publish::build()
            .payload(Bytes::from(payload))
            .headers(headers)
            .message_id(format!("{cause}@{}", self.epoch));
        let unavailable = |error: &dyn std::fmt::Display| {
            SendError::Retryable(format!("the send stream: {error}"))
        };
        let ack = self
            .bus
            .js
            .send_publish(send_subject(&message.from), publish)
            .await
            .map_err(|error| unavailable(&error))?
            .await
            .map_err(|error| unavailable(&error))?;
        Ok(Receipt {
            provider_id: format!("stream-{}", ack.sequence),
        })
    }
}

impl Provider for StreamProvider {
    fn name(&self) -> &'static str {
        self.name
    }

    fn send<'a>(&'a self, message: &'a Cleared) -> BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(self.publish(message))
    }
}

/// Publishes the fence of `partition` at `epoch` on every sender's subject: texts of older
/// epochs behind it are dropped.
///
/// # Errors
///
/// When the stream does not acknowledge a fence: the owner must not start.
pub async fn publish_fences(
    bus: &Bus,
    senders: &[String],
    partition: u32,
    epoch: u64,
) -> Result<(), ClusterError> {
    for sender in senders {
        let mut headers = HeaderMap::new();
        headers.insert(KIND, "fence");
        headers.insert(PARTITION, partition.to_string().as_str());
        headers.insert(EPOCH, epoch.to_string().as_str());
        let publish = Publish::build()
            .headers(headers)
            .message_id(format!("fence-{partition}-{epoch}"));
        bus.js
            .send_publish(send_subject(sender), publish)
            .await
            .map_err(|error| ClusterError::js("publishing a fence", error))?
            .await
            .map_err(|error| ClusterError::js("publishing a fence", error))?;
    }
    Ok(())
}

/// What a sender needs.
#[derive(Debug, Clone)]
pub struct SenderParts {
    /// The cluster.
    pub bus: Bus,
    /// The real provider.
    pub provider: Arc<dyn Provider>,
    /// Texts per second from one number.
    pub messages_per_second: f64,
}

/// Sends `number`'s texts while `fence` holds.
///
/// # Errors
///
/// When its consumer cannot be made or read: the node gives the lease up and tries again.
pub async fn run_sender(
    parts: SenderParts,
    number: String,
    fence: Fence,
) -> Result<(), ClusterError> {
    let name = format!("send-{}", token(&number));
    // A new holder starts a new consumer. The previous holder's consumer may still have a text
    // delivered to a pull request of a node that died or was paused, which the server would
    // hold back for the whole ack wait; the stream keeps every unacknowledged text (a work
    // queue deletes only on ack), and a text a previous holder was sending is marked, so it is
    // looked up rather than sent twice.
    if let Err(error) = parts.bus.sends.delete_consumer(&name).await {
        tracing::debug!(consumer = %name, "no previous consumer to replace: {error}");
    }
    let consumer = parts
        .bus
        .sends
        .create_consumer(pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: send_subject(&number),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1,
            ..pull::Config::default()
        })
        .await
        .map_err(|error| ClusterError::js(format!("consumer {name}"), error))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|error| ClusterError::js(format!("consumer {name}"), error))?;
    let mut sender = Sender {
        fences: load_fences(&parts.bus.fences, &number).await?,
        parts,
        number,
        fence: fence.clone(),
        next_slot: tokio::time::Instant::now(),
    };
    while let Some(message) = messages.next().await {
        if !fence.valid() {
            return Ok(());
        }
        let message =
            message.map_err(|error| ClusterError::js(format!("consumer {name}"), error))?;
        if let Err(error) = sender.handle(&message).await {
            tracing::warn!(sender = %sender.number, "send stream: {error}");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }
    Ok(())
}

/// The fences this sender met so far, from the bucket.
async fn load_fences(bucket: &kv::Store, number: &str) -> Result<HashMap<u32, u64>, ClusterError> {
    use futures_util::TryStreamExt as _;
    let prefix = format!("{}.", token(number));
    let keys: Vec<String> = bucket
        .keys()
        .await
        .map_err(|error| ClusterError::js("reading fences", error))?
        .try_collect()
        .await
        .map_err(|error| ClusterError::js("reading fences", error))?;
    let mut fences = HashMap::new();
    for key in keys.iter().filter(|key| key.starts_with(&prefix)) {
        let partition = key[prefix.len()..].parse::<u32>().ok();
        let epoch = bucket
            .get(key)
            .await
            .map_err(|error| ClusterError::js("reading fences", error))?
            .and_then(|bytes| std::str::from_utf8(&bytes).ok()?.parse::<u64>().ok());
        if let (Some(partition), Some(epoch)) = (partition, epoch) {
            fences.insert(partition, epoch);
        }
    }
    Ok(fences)
}

/// A cause's mark while its text is with the provider, and once the provider took it.
const SENDING: &[u8] = b"sending";
const SENT: &[u8] = b"sent";

/// What to do with a text whose cause was marked before.
enum Resume {
    /// Nothing: it was sent (or may have been).
    Done,
    /// Send it: the provider does not have it.
    Send,
    /// Ask again later.
    Retry,
}

/// Has the stream redeliver `message` shortly.
async fn nak(message: &Message) -> Result<(), ClusterError> {
    message
        .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
        .await
        .map_err(|error| ClusterError::js("deferring a send", error))
}

struct Sender {
    parts: SenderParts,
    number: String,
    /// The sender lease's: checked again right before the provider call.
    fence: Fence,
    fences: HashMap<u32, u64>,
    next_slot: tokio::time::Instant,
}

/// A header as a number.
fn header_u64(message: &Message, name: &str) -> Option<u64> {
    message.headers.as_ref()?.get(name)?.as_str().parse().ok()
}

impl Sender {
    async fn handle(&mut self, message: &Message) -> Result<(), ClusterError> {
        let kind = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(KIND))
            .map(|value| value.as_str().to_owned());
        let partition = header_u64(message, PARTITION).and_then(|p| u32::try_from(p).ok());
        let (Some(partition), Some(epoch)) = (partition, header_u64(message, EPOCH)) else {
            tracing::error!("send stream: a message without partition or epoch, dropped");
            return self.ack(message).await;
        };
        if kind.as_deref() == Some("fence") {
            return self.fence(message, partition, epoch).await;
        }
        if epoch < self.fences.get(&partition).copied().unwrap_or(0) {
            tracing::info!(
                partition,
                epoch,
                "a stale owner's text dropped at the fence"
            );
            note("fenced_text");
            return self.ack(message).await;
        }
        let text: OutboundMessage = match serde_json::from_slice(&message.payload) {
            Ok(text) => text,
            Err(error) => {
                tracing::error!("send stream: a text that does not decode, dropped: {error}");
                return self.ack(message).await;
            }
        };
        if self
            .stopped_since(&text, header_u64(message, APPLIED).unwrap_or(0))
            .await?
        {
            tracing::info!(to = %text.to, "a text cleared before the contact's STOP was applied, dropped");
            note("optout_fenced");
            return self.ack(message).await;
        }
        self.send(message, text).await
    }

    async fn fence(
        &mut self,
        message: &Message,
        partition: u32,
        epoch: u64,
    ) -> Result<(), ClusterError> {
        let held = self.fences.entry(partition).or_insert(0);
        *held = (*held).max(epoch);
        let key = format!("{}.{partition}", token(&self.number));
        self.parts
            .bus
            .fences
            .put(key, Bytes::from(held.to_string()))
            .await
            .map_err(|error| ClusterError::js("recording a fence", error))?;
        self.ack(message).await
    }

    /// Whether ingress acknowledged a STOP from the text's recipient after the last input the
    /// owner had applied when it cleared the text.
    async fn stopped_since(
        &self,
        text: &OutboundMessage,
        applied: u64,
    ) -> Result<bool, ClusterError> {
        if text.origin.is_compliance_reply() {
            return Ok(false);
        }
        let stop = self
            .parts
            .bus
            .optouts
            .get(token(&text.to))
            .await
            .map_err(|error| ClusterError::js("reading the opt-out fence", error))?
            .and_then(|bytes| std::str::from_utf8(&bytes).ok()?.parse::<u64>().ok());
        Ok(stop.is_some_and(|stop| stop > applied))
    }

    async fn send(&mut self, message: &Message, text: OutboundMessage) -> Result<(), ClusterError> {
        let cause = text.cause.clone().unwrap_or_else(|| text.id.clone());
        let key = hex::encode(sha2::Sha256::digest(cause.as_bytes()));
        let marks = self.parts.bus.sent.clone();
        match marks.create(&key, Bytes::from_static(SENDING)).await {
            Ok(_) => {}
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.resume(&key, &text).await? {
                    Resume::Done => return self.ack(message).await,
                    Resume::Retry => return nak(message).await,
                    Resume::Send => {}
                }
            }
            Err(error) => return Err(ClusterError::js("marking a text sent", error)),
        }
        self.pace().await;
        if !self.fence.valid() {
            // Paused past the sender's lease (between the mark and here): the next holder
            // finds the mark and asks the provider; this node must not send now.
            note("stale_refused");
            return Ok(());
        }
        let sent = self.parts.provider.send(&Cleared::relayed(text)).await;
        match sent {
            Ok(_) => {
                note("sent");
                self.mark_sent(&key).await;
                self.ack(message).await
            }
            Err(SendError::Retryable(reason) | SendError::Throttled { reason, .. }) => {
                // The provider did not take it: unmark, and have the stream redeliver it.
                tracing::warn!(sender = %self.number, "provider unavailable, the text waits: {reason}");
                let _ = marks.purge(&key).await;
                nak(message).await
            }
            Err(error) => {
                // Refused for good, or interrupted after the provider may have taken it: the
                // mark stays, and a redelivery looks the text up first.
                tracing::error!(sender = %self.number, "the text was not sent: {error}");
                note("send_failed");
                self.ack(message).await
            }
        }
    }

    /// A text whose cause is marked already: sent, or a sender stopped between its mark and
    /// the provider's answer (a crash, a lost lease), when the provider is asked.
    async fn resume(&self, key: &str, text: &OutboundMessage) -> Result<Resume, ClusterError> {
        let mark = self
            .parts
            .bus
            .sent
            .get(key)
            .await
            .map_err(|error| ClusterError::js("reading a sent mark", error))?;
        if mark.as_deref() != Some(SENDING) {
            note("already_sent");
            return Ok(Resume::Done);
        }
        match self.parts.provider.find_sent(text, text.queued_at_ms).await {
            Ok(Lookup::Sent(_)) => {
                note("already_sent");
                self.mark_sent(key).await;
                Ok(Resume::Done)
            }
            Ok(Lookup::NotSent) => Ok(Resume::Send),
            Ok(Lookup::Unknown) => {
                // The provider cannot tell: sending again could send it twice.
                tracing::warn!(to = %text.to, "a send was interrupted and the provider cannot say whether it took it: not sent again");
                note("send_unknown");
                Ok(Resume::Done)
            }
            Err(error) => {
                tracing::warn!(to = %text.to, "cannot look an interrupted send up, retrying: {error}");
                Ok(Resume::Retry)
            }
        }
    }

    async fn mark_sent(&self, key: &str) {
        if let Err(error) = self.parts.bus.sent.put(key, Bytes::from_static(SENT)).await {
            // The mark stays "sending": a redelivery looks the text up at the provider.
            tracing::warn!("cannot mark a text sent: {error}");
        }
    }

    /// Waits for the number's next slot.
    async fn pace(&mut self) {
        let rate = self.parts.messages_per_second;
        if rate <= 0.0 {
            return;
        }
        let now = tokio::time::Instant::now();
        let slot = self.next_slot.max(now);
        self.next_slot = slot + Duration::from_secs_f64(1.0 / rate);
        tokio::time::sleep_until(slot).await;
    }

    async fn ack(&self, message: &Message) -> Result<(), ClusterError> {
        message
            .ack()
            .await
            .map_err(|error| ClusterError::js("acknowledging a send", error))
    }
}
