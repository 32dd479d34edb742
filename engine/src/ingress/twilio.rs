//! Twilio webhooks (filled in below).
