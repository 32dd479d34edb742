//! Outbound event webhooks to the operator's systems, signed per the Standard Webhooks spec.

pub mod signing;
