//! Inbound compliance keywords (filled in below).
