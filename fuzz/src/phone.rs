//! Phone numbers: the strict E.164 check of webhooks and APIs, and the lenient normaliser of
//! numbers as people type them (CSV imports, the contacts API).
//!
//! Input: a number as typed.

use smsflow::contacts::number::{self, Country};
use smsflow::phone::{PhoneError, parse_e164};

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_e164(text) {
        Ok(parsed) => {
            assert_eq!(parsed, text);
            assert_eq!(parse_e164(&parsed).as_deref(), Ok(text));
        }
        Err(PhoneError::NotE164(echoed)) => assert_eq!(echoed, text),
    }
    let countries: Vec<&'static Country> = number::country_codes()
        .into_iter()
        .filter_map(number::country)
        .collect();
    for country in &countries {
        let Ok(normalized) = number::normalize(text, country) else {
            continue;
        };
        assert!(
            parse_e164(&normalized).is_ok(),
            "{text:?} in {} gave {normalized:?}",
            country.iso2
        );
        // E.164 reads the same in every country.
        for other in &countries {
            assert_eq!(
                number::normalize(&normalized, other).as_deref(),
                Ok(normalized.as_str())
            );
        }
    }
}
