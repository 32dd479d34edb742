//! The consent ledger (filled in below).
