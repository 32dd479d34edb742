//! Compliance in the host: inbound keywords (STOP, HELP, START) and the consent ledger. The
//! send-path gate (quiet hours, caps, content rules) builds on these.

pub mod keywords;
pub mod ledger;
