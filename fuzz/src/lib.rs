//! What each fuzz target checks, one module per parser.
//!
//! Every module has a `run(data)` that feeds the bytes to smsflow's public API and panics when an
//! invariant breaks, so a crash is either a panic inside smsflow or a broken promise of its API.
//! The targets in `fuzz_targets/` call these functions, and so does
//! `engine/tests/fuzz_regressions.rs` over the seed corpora and the kept crashes, which keeps
//! every crash found fixed in an ordinary `cargo test`.

pub mod contacts_csv;
pub mod flow_check;
pub mod keywords;
mod message;
pub mod phone;
pub mod segment_query;
pub mod sms_segments;
pub mod telnyx;
pub mod template;
pub mod twilio;
pub mod webhook_signing;

/// A target's check: panics when smsflow breaks an invariant on `data`.
pub type Check = fn(&[u8]);

/// Every target by its name (the name of its file in `fuzz_targets/` and of its folders in
/// `corpus/` and `regressions/`).
pub const TARGETS: &[(&str, Check)] = &[
    ("contacts_csv", contacts_csv::run),
    ("flow_check", flow_check::run),
    ("keywords", keywords::run),
    ("phone", phone::run),
    ("segment_query", segment_query::run),
    ("sms_segments", sms_segments::run),
    ("telnyx", telnyx::run),
    ("template", template::run),
    ("twilio", twilio::run),
    ("webhook_signing", webhook_signing::run),
];
