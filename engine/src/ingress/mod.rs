//! Provider webhooks: verification and parsing of inbound texts and delivery statuses, and the
//! one pipeline that accepts them.
//!
//! Each provider's file turns a raw request (headers, body bytes, the URL it was sent to) into
//! an [`InboundText`] or a [`StatusUpdate`] (neutral types, in [`crate::sms`]), refusing
//! anything unverified or malformed; nothing in them touches the store. [`accept`] is the
//! pipeline that limits, dedups, screens and stores what they accept.

pub mod accept;
pub mod telnyx;
pub mod twilio;

pub use crate::sms::{DeliveryState, InboundText, StatusUpdate};

/// Where Twilio posts inbound texts.
pub const TWILIO_INBOUND_PATH: &str = "/webhooks/twilio";
/// Where Twilio posts delivery reports.
pub const TWILIO_STATUS_PATH: &str = "/webhooks/twilio/status";
/// Where Telnyx posts its webhooks.
pub const TELNYX_PATH: &str = "/webhooks/telnyx";
