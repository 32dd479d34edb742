//! Outbound event webhooks to the operator's systems, signed per the Standard Webhooks spec.

pub mod signing;

use serde::{Deserialize, Serialize};

/// One `[[webhooks]]` entry of `smsflow.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// Where events are posted.
    pub url: String,
    /// The signing secret, `whsec_<base64>`.
    pub secret: String,
    /// The event types sent there (`message.received`, `conversation.handoff`,
    /// `contact.opted_out`, `message.status`, `conversion`); all when empty.
    #[serde(default)]
    pub events: Vec<String>,
}
