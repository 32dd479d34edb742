//! The outbox: every outbound text is queued here, in the same transaction as the state change
//! that produced it, and a worker hands queued texts to the provider.
//!
//! The provider handle is a private field of [`Outbox`], and the only code that calls it is
//! [`Outbox::deliver_pending`]: nothing else in the engine can reach a provider.

mod console;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use self::console::ConsoleProvider;
use crate::store::codec;

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
    /// Where it is.
    pub status: DeliveryStatus,
    /// The provider's id for it, once sent.
    pub provider_id: Option<String>,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// Where an outbound text is.
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

/// What a provider says when it accepts a text.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The provider's id for the text.
    pub provider_id: String,
}

/// A boxed future, so providers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An SMS provider's sending side.
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Hands one text to the provider.
    ///
    /// # Errors
    ///
    /// When the provider refuses it or cannot be reached.
    fn send<'a>(&'a self, message: &'a OutboundMessage) -> BoxFuture<'a, anyhow::Result<Receipt>>;
}

/// The outbox and its worker.
#[derive(Debug)]
pub struct Outbox {
    tree: sled::Tree,
    provider: Arc<dyn Provider>,
    wake: Notify,
}

/// Attempts before a text is marked failed.
const MAX_ATTEMPTS: u32 = 5;

impl Outbox {
    /// An outbox over `tree` delivering through `provider`.
    pub fn new(tree: sled::Tree, provider: Arc<dyn Provider>) -> Self {
        Self {
            tree,
            provider,
            wake: Notify::new(),
        }
    }

    /// Tells the worker there is something to deliver.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Delivers every queued text once; returns how many were sent.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or written.
    pub async fn deliver_pending(&self) -> anyhow::Result<usize> {
        let mut sent = 0;
        for entry in self.tree.iter() {
            let (key, value) = entry.context("cannot read the outbox")?;
            let mut message: OutboundMessage = codec::decode(&value)?;
            if message.status != DeliveryStatus::Queued {
                continue;
            }
            message.attempts += 1;
            match self.provider.send(&message).await {
                Ok(receipt) => {
                    message.status = DeliveryStatus::Sent;
                    message.provider_id = Some(receipt.provider_id);
                    sent += 1;
                }
                Err(error) if message.attempts >= MAX_ATTEMPTS => {
                    tracing::error!(id = %message.id, "giving up on a text: {error:#}");
                    message.status = DeliveryStatus::Failed {
                        reason: format!("{error:#}"),
                    };
                }
                Err(error) => {
                    tracing::warn!(id = %message.id, attempt = message.attempts, "send failed: {error:#}");
                }
            }
            self.tree
                .insert(key, codec::encode(&message)?)
                .context("cannot update the outbox")?;
        }
        if sent > 0 {
            self.tree
                .flush_async()
                .await
                .context("cannot flush the outbox")?;
        }
        Ok(sent)
    }

    /// Runs the delivery worker until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(error) = self.deliver_pending().await {
                tracing::error!("outbox: {error:#}");
            }
            // A retry waits at most a second; new texts wake the worker at once.
            let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
        }
    }

    /// The text with id `message_id`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn message(&self, message_id: &str) -> anyhow::Result<Option<OutboundMessage>> {
        let Some(seq) = seq_of(message_id) else {
            return Ok(None);
        };
        self.tree
            .get(outbox_key(seq))
            .context("cannot read the outbox")?
            .map(|value| codec::decode(&value))
            .transpose()
    }
}
