//! The keyword normaliser and classifier the compliance screener runs on every inbound text.
//!
//! Input: the text of an inbound message.

use smsflow::compliance::keywords::{self, KeywordAction};

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let normalized = keywords::normalize(text);
    assert!(
        !normalized.starts_with(' ') && !normalized.ends_with(' ') && !normalized.contains("  "),
        "spaces left at an end or doubled: {normalized:?}"
    );
    assert_eq!(
        keywords::normalize(&normalized),
        normalized,
        "normalising twice changes the text"
    );
    let subscribed = keywords::classify(text, false);
    let opted_out = keywords::classify(text, true);
    // Only an opt-in keyword depends on whether the contact is opted out.
    if subscribed != opted_out {
        assert_eq!(subscribed, KeywordAction::None, "{text:?}");
        assert!(matches!(opted_out, KeywordAction::OptIn { .. }), "{text:?}");
    }
    let _ = keywords::language(text);
}
