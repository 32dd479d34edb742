//! Standard Webhooks signing (filled in below).
