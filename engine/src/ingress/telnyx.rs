//! Telnyx webhooks (filled in below).
