//! Neutral SMS types that ingress, the inbox, the outbox and the store share: an inbound
//! text, a delivery report and its states, and segment counting. This module depends on no
//! other engine module, so every one may depend on it.

pub mod segments;

/// An inbound text, verified and validated (both numbers E.164).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundText {
    /// The provider's name: `twilio`, `telnyx`.
    pub provider: &'static str,
    /// The provider's id for the message: the dedup key with `provider`.
    pub message_id: String,
    /// The contact, E.164.
    pub from: String,
    /// Our number, E.164.
    pub to: String,
    /// The text.
    pub body: String,
    /// Attached media count.
    pub num_media: u32,
}

/// A provider's report on an outbound text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The provider's id for the outbound message.
    pub message_id: String,
    /// The new status.
    pub status: DeliveryState,
    /// The provider's error code, when it gave one.
    pub error_code: Option<String>,
}

/// Where an outbound text is, as providers report it, in the order states can follow each other.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Accepted, waiting to go out.
    Queued,
    /// Being sent to the carrier.
    Sending,
    /// Handed to the carrier.
    Sent,
    /// The carrier could not deliver it.
    Undelivered,
    /// Failed before reaching the carrier.
    Failed,
    /// Delivered to the handset.
    Delivered,
    /// Read by the recipient (where the channel reports it).
    Read,
}
