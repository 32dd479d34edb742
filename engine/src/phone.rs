//! Phone numbers: only E.164 (`+` and 8 to 15 digits, no leading zero) goes in or out.

/// Why a number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Not `+` followed by 8 to 15 digits with no leading zero.
    #[error("`{0}` is not an E.164 number: write it as + and 8 to 15 digits, such as +14155550100")]
    NotE164(String),
}

/// Checks that `number` is E.164 and returns it.
///
/// # Errors
///
/// [`PhoneError::NotE164`] for anything else (spaces, `tel:` URIs, letters, too long).
pub fn parse_e164(number: &str) -> Result<String, PhoneError> {
    let digits = number
        .strip_prefix('+')
        .filter(|digits| (8..=15).contains(&digits.len()))
        .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
        .filter(|digits| !digits.starts_with('0'));
    match digits {
        Some(_) => Ok(number.to_owned()),
        None => Err(PhoneError::NotE164(number.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_only() {
        assert!(parse_e164("+14155550100").is_ok());
        assert!(parse_e164("+447700900123").is_ok());
        for bad in [
            "+999999999999999999",
            "tel:+14155550100",
            "+1415abc0100",
            "14155550100",
            "+0123456789",
            "+1234",
            "",
        ] {
            assert!(parse_e164(bad).is_err(), "{bad}");
        }
    }
}
