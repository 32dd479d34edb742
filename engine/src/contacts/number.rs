//! Normalising a phone number, as people type it into a spreadsheet, to E.164.
//!
//! A number written with a `+` (or an international prefix such as `00` or `011`) is read
//! as international; any other number is read in the default country's national format,
//! with or without its trunk prefix. The result is always `+` then 8 to 15 digits, the
//! first not a zero.

use std::ops::RangeInclusive;

/// A country's dialling rules: its calling code and its national trunk prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct Country {
    /// The ISO 3166-1 alpha-2 code, upper case (`US`).
    pub iso2: &'static str,
    /// The calling code, without the `+` (`1`).
    pub calling_code: &'static str,
    /// The prefix dialled before a national number inside the country (`0` in GB), if any.
    pub trunk_prefix: Option<&'static str>,
    /// The length of the significant national number: without trunk prefix or calling code.
    pub national_digits: RangeInclusive<usize>,
    /// The prefix dialled from this country to reach another (`011` in North America).
    pub international_prefix: &'static str,
    /// How a national number is written there, shown in error messages.
    pub hint: &'static str,
    /// A (fictional or well-known) number in E.164, shown in error messages.
    pub example: &'static str,
}

/// The countries known to [`country`].
static COUNTRIES: [Country; 10] = [
    nanp("US", "+12125550143"),
    nanp("CA", "+16135550143"),
    Country {
        iso2: "GB",
        calling_code: "44",
        trunk_prefix: Some("0"),
        national_digits: 9..=10,
        international_prefix: "00",
        hint: " (such as 07700 900123)",
        example: "+447700900123",
    },
    Country {
        iso2: "MX",
        calling_code: "52",
        trunk_prefix: None,
        national_digits: 10..=10,
        international_prefix: "00",
        hint: " (such as 55 1234 5678)",
        example: "+525512345678",
    },
    Country {
        iso2: "ES",
        calling_code: "34",
        trunk_prefix: None,
        national_digits: 9..=9,
        international_prefix: "00",
        hint: " (such as 612 34 56 78)",
        example: "+34612345678",
    },
    Country {
        iso2: "FR",
        calling_code: "33",
        trunk_prefix: Some("0"),
        national_digits: 9..=9,
        international_prefix: "00",
        hint: " (such as 06 12 34 56 78)",
        example: "+33612345678",
    },
    Country {
        iso2: "DE",
        calling_code: "49",
        trunk_prefix: Some("0"),
        national_digits: 6..=11,
        international_prefix: "00",
        hint: " (such as 030 1234567)",
        example: "+49301234567",
    },
    Country {
        iso2: "BR",
        calling_code: "55",
        trunk_prefix: Some("0"),
        national_digits: 10..=11,
        international_prefix: "00",
        hint: " (area code first, such as 11 98765 4321)",
        example: "+5511987654321",
    },
    Country {
        iso2: "AU",
        calling_code: "61",
        trunk_prefix: Some("0"),
        national_digits: 9..=9,
        // Australia dials out with 0011; `00` alone is still accepted as a fallback.
        international_prefix: "0011",
        hint: " (such as 0412 345 678)",
        example: "+61412345678",
    },
    Country {
        iso2: "IN",
        calling_code: "91",
        trunk_prefix: Some("0"),
        national_digits: 10..=10,
        international_prefix: "00",
        hint: " (such as 98765 43210)",
        example: "+919876543210",
    },
];

/// A member of the North American Numbering Plan: the US and Canada share its rules.
/// The ISO codes of the countries [`country`] knows.
pub fn country_codes() -> Vec<&'static str> {
    COUNTRIES.iter().map(|country| country.iso2).collect()
}

const fn nanp(iso2: &'static str, example: &'static str) -> Country {
    Country {
        iso2,
        calling_code: "1",
        trunk_prefix: Some("1"),
        national_digits: 10..=10,
        international_prefix: "011",
        hint: " (area code first)",
        example,
    }
}

/// The dialling rules of the country with this ISO 3166-1 alpha-2 code, in any case.
pub fn country(iso2: &str) -> Option<&'static Country> {
    COUNTRIES
        .iter()
        .find(|country| country.iso2.eq_ignore_ascii_case(iso2.trim()))
}

/// The known country whose calling code starts these digits (calling codes are prefix-free).
fn by_calling_code(digits: &str) -> Option<&'static Country> {
    COUNTRIES
        .iter()
        .find(|country| digits.starts_with(country.calling_code))
}

/// Why a phone number could not be normalised; each message says how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// The cell holds nothing.
    #[error("the phone number is empty; write it in E.164 such as {example}")]
    Empty {
        /// An E.164 number of the default country.
        example: &'static str,
    },
    /// Only separators, no digits.
    #[error("`{raw}` has no digits; write the number in E.164 such as {example}")]
    NoDigits {
        /// The number as written.
        raw: String,
        /// An E.164 number of the default country.
        example: &'static str,
    },
    /// A letter, as in a vanity number (`1-800-FLOWERS`) or a name in the wrong column.
    #[error(
        "`{raw}` contains the letter `{letter}`; a phone number is digits, which spaces, `-`, `.` \
         and `( )` may separate, such as {example}"
    )]
    Letters {
        /// The number as written.
        raw: String,
        /// The first letter found.
        letter: char,
        /// An E.164 number of the default country.
        example: &'static str,
    },
    /// An extension (`x123`, `ext. 123`, `#123`, `;ext=123`), which a text message cannot reach.
    #[error(
        "`{raw}` has an extension, and a text message can only reach the line itself; write the \
         number without the extension, such as {example}"
    )]
    Extension {
        /// The number as written.
        raw: String,
        /// An E.164 number of the default country.
        example: &'static str,
    },
    /// A spreadsheet turned the number into `2.12556E+9`, losing digits.
    #[error(
        "`{raw}` is a number in scientific notation, so a spreadsheet has already lost its last \
         digits; format the column as text, type the number again and export again, such as \
         {example}"
    )]
    ScientificNotation {
        /// The number as written.
        raw: String,
        /// An E.164 number of the default country.
        example: &'static str,
    },
    /// A symbol that has no place in a phone number.
    #[error(
        "`{raw}` contains `{found}`, which does not belong in a phone number; use only digits, \
         spaces, `-`, `.`, `( )` and a leading `+`, such as {example}"
    )]
    InvalidCharacter {
        /// The number as written.
        raw: String,
        /// The first such character.
        found: char,
        /// An E.164 number of the default country.
        example: &'static str,
    },
    /// A line break inside the cell: two numbers, or a quote left open earlier in the file.
    #[error(
        "`{raw}` spans more than one line; write one number per cell (a quote `\"` left open \
         earlier in the row or file can also cause this)"
    )]
    LineBreak {
        /// The number as written.
        raw: String,
    },
    /// A `+` after the first digit.
    #[error(
        "`{raw}` has a `+` after a digit; `+` may only come first, before the country code, such \
         as {example}"
    )]
    MisplacedPlus {
        /// The number as written.
        raw: String,
        /// An E.164 number of the default country.
        example: &'static str,
    },
    /// Too few digits for a national number of the country.
    #[error("{0}")]
    TooFewDigits(Box<DigitCount>),
    /// Too many digits for a national number of the country.
    #[error("{0}")]
    TooManyDigits(Box<DigitCount>),
    /// An international number of a country not in the table, outside E.164's 8 to 15 digits.
    #[error(
        "`{raw}` has {digits} digits after the `+`; an international number has 8 to 15, country \
         code first, such as {example}"
    )]
    InternationalLength {
        /// The number as written.
        raw: String,
        /// How many digits follow the `+` or international prefix.
        digits: usize,
        /// An E.164 number of the default country.
        example: &'static str,
    },
    /// `+0…`: no calling code starts with 0.
    #[error(
        "`{raw}` puts a 0 first in the country code, and no country code starts with 0; write the \
         country code right after the `+` or `00` (such as {example}), or leave both out for a \
         {country} number"
    )]
    LeadingZeroCountryCode {
        /// The number as written.
        raw: String,
        /// The default country's ISO code.
        country: &'static str,
        /// An E.164 number of the default country.
        example: &'static str,
    },
    /// A national number that starts with 0 after the calling code of a country where none do.
    #[error(
        "`{raw}`: a {country} number does not start with 0 after its country code +{code}; leave \
         that 0 out, such as {example}"
    )]
    LeadingZeroNational {
        /// The number as written.
        raw: String,
        /// The country's ISO code.
        country: &'static str,
        /// The country's calling code.
        code: &'static str,
        /// An E.164 number of the country.
        example: &'static str,
    },
    /// A North American area code starting with 0 or 1.
    #[error(
        "`{raw}`: the area code `{area}` starts with 0 or 1, and North American area codes start \
         with 2 to 9; check the number, or if it is from another country write it in E.164 with \
         its country code, such as +447700900123"
    )]
    AreaCode {
        /// The number as written.
        raw: String,
        /// The three digits read as the area code.
        area: String,
    },
    /// A North American exchange (the three digits after the area code) starting with 0 or 1.
    #[error(
        "`{raw}`: the exchange `{exchange}` (the three digits after the area code) starts with 0 \
         or 1, and North American exchanges start with 2 to 9; check the number, such as \
         +12125550143"
    )]
    Exchange {
        /// The number as written.
        raw: String,
        /// The three digits read as the exchange.
        exchange: String,
    },
}

/// A national number of the wrong length: what was counted, and what the country expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigitCount {
    /// The number as written.
    pub raw: String,
    /// How many digits were counted.
    pub digits: usize,
    /// What came before the digits counted and was left out of the count: the trunk prefix
    /// (`the leading 0`) or the calling code (`+44`).
    pub after: Option<String>,
    /// The country's ISO code.
    pub country: &'static str,
    /// How many digits the country's numbers have, without trunk prefix.
    pub expected: RangeInclusive<usize>,
    /// How such a number is written there.
    pub hint: &'static str,
    /// An E.164 number of the country.
    pub example: &'static str,
}

impl std::fmt::Display for DigitCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            raw,
            digits,
            country,
            hint,
            example,
            ..
        } = self;
        write!(f, "`{raw}` has {digits} digits")?;
        if let Some(after) = &self.after {
            write!(f, " after {after}")?;
        }
        write!(f, "; a {country} number has {}", self.expected.start())?;
        if self.expected.start() != self.expected.end() {
            write!(f, " to {}", self.expected.end())?;
        }
        write!(f, "{hint}, or write it in E.164 such as {example}")
    }
}

/// Normalises a phone number to E.164 (`+12125550143`), reading a number without a `+` or
/// international prefix as a national number of `default_country`.
pub fn normalize(raw: &str, default_country: &Country) -> Result<String, NumberError> {
    let example = default_country.example;
    let cell = raw.trim_matches(is_blank);
    if cell.is_empty() {
        return Err(NumberError::Empty { example });
    }
    let dialled = scan(strip_tel(cell), raw, example)?;
    if dialled.plus {
        return international(&dialled.digits, raw, default_country);
    }
    match strip_international_prefix(&dialled.digits, default_country) {
        Some(rest) => international(rest, raw, default_country),
        None => national(&dialled.digits, raw, default_country),
    }
}

/// The digits of a number as written, and whether a `+` came before them.
struct Dialled {
    plus: bool,
    digits: String,
}

/// Drops an RFC 3966 `tel:` scheme, which phone systems put in exports.
fn strip_tel(cell: &str) -> &str {
    match cell.get(..4) {
        Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => cell[4..].trim_matches(is_blank),
        _ => cell,
    }
}

/// What surrounds a number in a cell without being part of it, line breaks included.
fn is_blank(c: char) -> bool {
    c.is_whitespace() || is_ignorable(c)
}

/// Spaces of every kind (non-breaking ones come from web pages and spreadsheets) and the
/// invisible marks that copying from a web page or a phone's contacts leaves in.
fn is_ignorable(c: char) -> bool {
    (c.is_whitespace() && c != '\n' && c != '\r')
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}')
}

/// Separators people put between groups of digits, including typographic dashes.
fn is_separator(c: char) -> bool {
    is_ignorable(c) || matches!(c, '-' | '.' | '/' | '\u{2010}'..='\u{2015}' | '\u{2212}')
}

/// Reads the digits and the leading `+`, refusing what is not part of a number.
fn scan(body: &str, raw: &str, example: &'static str) -> Result<Dialled, NumberError> {
    let mut dialled = Dialled {
        plus: false,
        digits: String::with_capacity(body.len()),
    };
    let mut group_start = None;
    for (at, c) in body.char_indices() {
        match c {
            '0'..='9' => dialled.digits.push(c),
            '+' if dialled.digits.is_empty() && !dialled.plus => dialled.plus = true,
            '+' => {
                return Err(NumberError::MisplacedPlus {
                    raw: raw.to_owned(),
                    example,
                });
            }
            '(' => group_start = Some(dialled.digits.len()),
            ')' => drop_optional_trunk(&mut dialled.digits, group_start.take()),
            c if is_separator(c) => {}
            _ => return Err(refusal(body, at, c, &dialled, raw, example)),
        }
    }
    if dialled.digits.is_empty() {
        return Err(NumberError::NoDigits {
            raw: raw.to_owned(),
            example,
        });
    }
    Ok(dialled)
}

/// `+44 (0)7700 900123`: a `(0)` marks the trunk prefix, dialled only inside the country.
fn drop_optional_trunk(digits: &mut String, group_start: Option<usize>) {
    if let Some(start) = group_start
        && digits.get(start..) == Some("0")
    {
        digits.truncate(start);
    }
}

/// The error for a character that [`scan`] does not take, at byte `at` of `body`.
fn refusal(
    body: &str,
    at: usize,
    c: char,
    dialled: &Dialled,
    raw: &str,
    example: &'static str,
) -> NumberError {
    let raw = raw.to_owned();
    if c == '\n' || c == '\r' {
        NumberError::LineBreak { raw }
    } else if !dialled.digits.is_empty() && is_extension(&body[at..]) {
        NumberError::Extension { raw, example }
    } else if is_scientific(body) {
        NumberError::ScientificNotation { raw, example }
    } else if c.is_alphabetic() {
        NumberError::Letters {
            raw,
            letter: c,
            example,
        }
    } else {
        NumberError::InvalidCharacter {
            raw,
            found: c,
            example,
        }
    }
}

/// Whether the text after the number is an extension: a mark (`x`, `ext.`, `#`, `;ext=`, or
/// the `,` pause of a dial string) then digits only, so that `1-800-XEROX` still reads as
/// letters.
fn is_extension(rest: &str) -> bool {
    let rest = rest.to_ascii_lowercase();
    let marks = [";ext=", "extension", "ext.", "ext", "x", "#", ","];
    let Some(digits) = marks.iter().find_map(|mark| rest.strip_prefix(mark)) else {
        return false;
    };
    let digits = digits.trim_start_matches(|c: char| is_separator(c) || matches!(c, ':' | ','));
    !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || is_separator(c))
}

/// Whether the cell is a spreadsheet's scientific notation, such as `2.12556E+9`.
fn is_scientific(body: &str) -> bool {
    let Some((mantissa, exponent)) = body.split_once(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => all_digits(whole) && all_digits(fraction),
        None => all_digits(mantissa),
    };
    mantissa_ok && all_digits(exponent)
}

/// The digits after the international prefix, if they start with one: the default country's
/// own (`011` in North America), or `00`, which most of the world dials and which starts no
/// national number of the known countries.
fn strip_international_prefix<'a>(digits: &'a str, default_country: &Country) -> Option<&'a str> {
    [default_country.international_prefix, "00"]
        .iter()
        .find_map(|prefix| digits.strip_prefix(prefix))
}

/// A number given with its calling code: `digits` start with the calling code.
fn international(
    digits: &str,
    raw: &str,
    default_country: &Country,
) -> Result<String, NumberError> {
    if digits.starts_with('0') {
        return Err(NumberError::LeadingZeroCountryCode {
            raw: raw.to_owned(),
            country: default_country.iso2,
            example: default_country.example,
        });
    }
    let Some(country) = by_calling_code(digits) else {
        return unknown_country(digits, raw, default_country);
    };
    let national = &digits[country.calling_code.len()..];
    // `+44 07700 900123`: the trunk prefix written after the calling code, where it does not
    // belong; a known country's numbers never start with it there, so it is safe to drop.
    let national = match country.trunk_prefix.and_then(|t| national.strip_prefix(t)) {
        Some(rest) if country.national_digits.contains(&rest.len()) => rest,
        _ => national,
    };
    if !country.national_digits.contains(&national.len()) {
        let after = format!("+{}", country.calling_code);
        return Err(wrong_length(raw, national.len(), Some(after), country));
    }
    check_national(national, raw, country)?;
    e164(country.calling_code, national, raw, default_country)
}

/// An international number of a country not in the table: only E.164's own rules apply.
fn unknown_country(
    digits: &str,
    raw: &str,
    default_country: &Country,
) -> Result<String, NumberError> {
    if !(8..=15).contains(&digits.len()) {
        return Err(NumberError::InternationalLength {
            raw: raw.to_owned(),
            digits: digits.len(),
            example: default_country.example,
        });
    }
    e164("", digits, raw, default_country)
}

/// A number without its calling code, read as the default country's.
fn national(digits: &str, raw: &str, country: &Country) -> Result<String, NumberError> {
    let fits = |n: &str| country.national_digits.contains(&n.len());
    let trunk_stripped = country.trunk_prefix.and_then(|t| digits.strip_prefix(t));
    let national = match trunk_stripped {
        Some(rest) if fits(rest) => rest,
        // The trunk prefix starts no significant number, so the length is what is wrong.
        Some(rest) => {
            let after = country
                .trunk_prefix
                .map(|trunk| format!("the leading {trunk}"));
            return Err(wrong_length(raw, rest.len(), after, country));
        }
        // Without the trunk prefix, as a spreadsheet leaves `07700 900123` once it has
        // stored it as a number.
        None if fits(digits) => digits,
        // The calling code without its `+`, as a spreadsheet leaves `+44 7700 900123`.
        None => match digits.strip_prefix(country.calling_code) {
            Some(rest) if fits(rest) => rest,
            _ => return Err(wrong_length(raw, digits.len(), None, country)),
        },
    };
    check_national(national, raw, country)?;
    e164(country.calling_code, national, raw, country)
}

/// A too-short or too-long national number of `country`, with `digits` counted after what
/// `after` names, if anything.
fn wrong_length(raw: &str, digits: usize, after: Option<String>, country: &Country) -> NumberError {
    let count = Box::new(DigitCount {
        raw: raw.to_owned(),
        digits,
        after,
        country: country.iso2,
        expected: country.national_digits.clone(),
        hint: country.hint,
        example: country.example,
    });
    if digits < *country.national_digits.start() {
        NumberError::TooFewDigits(count)
    } else {
        NumberError::TooManyDigits(count)
    }
}

/// The country's rules on the significant national number, beyond its length.
fn check_national(national: &str, raw: &str, country: &Country) -> Result<(), NumberError> {
    if country.calling_code == "1" {
        // Covers a leading 0 too, with a message about area codes.
        return check_nanp(national, raw);
    }
    if national.starts_with('0') {
        return Err(NumberError::LeadingZeroNational {
            raw: raw.to_owned(),
            country: country.iso2,
            code: country.calling_code,
            example: country.example,
        });
    }
    Ok(())
}

/// North American area codes and exchanges start with 2 to 9 (0 and 1 reach operators and
/// the trunk), so a number breaking that rule is mistyped.
fn check_nanp(national: &str, raw: &str) -> Result<(), NumberError> {
    let starts_low = |group: &str| group.starts_with(['0', '1']);
    let (area, rest) = national.split_at(3.min(national.len()));
    if starts_low(area) {
        return Err(NumberError::AreaCode {
            raw: raw.to_owned(),
            area: area.to_owned(),
        });
    }
    let exchange = &rest[..3.min(rest.len())];
    if starts_low(exchange) {
        return Err(NumberError::Exchange {
            raw: raw.to_owned(),
            exchange: exchange.to_owned(),
        });
    }
    Ok(())
}

/// Joins calling code and national number, checking E.164's invariant once more so that no
/// rule above can let a malformed number through.
fn e164(
    calling_code: &str,
    national: &str,
    raw: &str,
    default_country: &Country,
) -> Result<String, NumberError> {
    let number = format!("+{calling_code}{national}");
    let digits = number.len() - 1;
    if (8..=15).contains(&digits) && !number[1..].starts_with('0') {
        Ok(number)
    } else {
        Err(NumberError::InternationalLength {
            raw: raw.to_owned(),
            digits,
            example: default_country.example,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> &'static Country {
        country("US").unwrap()
    }

    fn gb() -> &'static Country {
        country("gb").unwrap()
    }

    fn is_e164(number: &str) -> bool {
        let Some(digits) = number.strip_prefix('+') else {
            return false;
        };
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    }

    #[test]
    fn the_six_us_national_forms_give_the_same_number() {
        for raw in [
            "(212) 555-0143",
            "212-555-0143",
            "212.555.0143",
            "2125550143",
            "1 212 555 0143",
            "1-212-555-0143",
        ] {
            assert_eq!(normalize(raw, us()).unwrap(), "+12125550143", "{raw}");
        }
    }

    #[test]
    fn international_forms_are_accepted() {
        for raw in [
            "+1 (212) 555-0143",
            "+12125550143",
            "0012125550143",
            "011 1 212 555 0143",
            "tel:+12125550143",
            "TEL:+1-212-555-0143",
            "  +1 212 555 0143\t",
            "+1\u{a0}212\u{a0}555\u{a0}0143",
            "\u{a0}(212)\u{202f}555\u{2013}0143\u{a0}",
            "+1 1 212 555 0143",
        ] {
            assert_eq!(normalize(raw, us()).unwrap(), "+12125550143", "{raw:?}");
        }
    }

    #[test]
    fn gb_national_and_international_forms() {
        for raw in [
            "07700 900123",
            "+44 (0)7700 900123",
            "+44 7700 900123",
            "+44 07700 900123",
            "0044 7700 900123",
            "7700 900123",
            "447700900123",
        ] {
            assert_eq!(normalize(raw, gb()).unwrap(), "+447700900123", "{raw}");
        }
    }

    #[test]
    fn a_number_of_another_country_is_kept_whatever_the_default() {
        assert_eq!(normalize("+44 7700 900123", us()).unwrap(), "+447700900123");
        assert_eq!(normalize("+81 3-1234-5678", us()).unwrap(), "+81312345678");
    }

    #[test]
    fn other_countries_national_forms() {
        let cases = [
            ("MX", "55 1234 5678", "+525512345678"),
            ("ES", "612 34 56 78", "+34612345678"),
            ("FR", "06 12 34 56 78", "+33612345678"),
            ("DE", "030 1234567", "+49301234567"),
            ("BR", "(11) 98765-4321", "+5511987654321"),
            ("AU", "0412 345 678", "+61412345678"),
            ("AU", "0011 44 7700 900123", "+447700900123"),
            ("IN", "098765 43210", "+919876543210"),
            ("CA", "613-555-0143", "+16135550143"),
        ];
        for (iso, raw, expected) in cases {
            let country = country(iso).unwrap();
            assert_eq!(normalize(raw, country).unwrap(), expected, "{iso} {raw}");
        }
    }

    #[test]
    fn every_country_example_is_valid_e164_of_itself() {
        for country in &COUNTRIES {
            assert_eq!(
                normalize(country.example, country).unwrap(),
                country.example
            );
            assert!(is_e164(country.example), "{}", country.example);
        }
    }

    #[test]
    fn country_lookup_ignores_case_and_refuses_unknown() {
        assert_eq!(country("us").unwrap().calling_code, "1");
        assert_eq!(country("De").unwrap().calling_code, "49");
        assert!(country("ZZ").is_none());
        assert!(country("").is_none());
    }

    #[test]
    fn too_few_digits_says_how_to_write_it() {
        let error = normalize("555-0143", us()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`555-0143` has 7 digits; a US number has 10 (area code first), or write it in \
             E.164 such as +12125550143"
        );
    }

    #[test]
    fn too_many_digits_is_refused() {
        let error = normalize("212 555 01430", us()).unwrap_err();
        assert!(
            matches!(&error, NumberError::TooManyDigits(count) if count.digits == 11),
            "{error}"
        );
        let error = normalize("07700 9001", gb()).unwrap_err();
        assert!(
            error.to_string().contains("8 digits after the leading 0"),
            "{error}"
        );
        let error = normalize("+1 212 555 01", us()).unwrap_err();
        assert!(matches!(error, NumberError::TooFewDigits(_)), "{error}");
        let error = normalize("+44 7700 9001", us()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`+44 7700 9001` has 8 digits after +44; a GB number has 9 to 10 (such as 07700 \
             900123), or write it in E.164 such as +447700900123"
        );
        let error = normalize("+999 1234 5678 9012 3", us()).unwrap_err();
        assert!(
            matches!(error, NumberError::InternationalLength { digits: 16, .. }),
            "{error}"
        );
        let error = normalize("+999 1234", us()).unwrap_err();
        assert!(
            matches!(error, NumberError::InternationalLength { .. }),
            "{error}"
        );
    }

    #[test]
    fn letters_are_refused() {
        let error = normalize("1-800-FLOWERS", us()).unwrap_err();
        assert!(
            matches!(error, NumberError::Letters { letter: 'F', .. }),
            "{error}"
        );
        let error = normalize("John", us()).unwrap_err();
        assert!(matches!(error, NumberError::Letters { .. }), "{error}");
        let error = normalize("1-800-XEROX", us()).unwrap_err();
        assert!(
            matches!(error, NumberError::Letters { letter: 'X', .. }),
            "{error}"
        );
        let error = normalize("sms:+12125550143", us()).unwrap_err();
        assert!(matches!(error, NumberError::Letters { .. }), "{error}");
    }

    #[test]
    fn extensions_are_refused() {
        for raw in [
            "212-555-0143 x123",
            "212-555-0143x123",
            "212-555-0143 ext. 123",
            "212 555 0143 EXT 9",
            "tel:+12125550143;ext=123",
            "212-555-0143 #12",
            "212-555-0143,,45",
        ] {
            let error = normalize(raw, us()).unwrap_err();
            assert!(
                matches!(error, NumberError::Extension { .. }),
                "{raw}: {error}"
            );
            assert!(
                error.to_string().contains("without the extension"),
                "{error}"
            );
        }
    }

    #[test]
    fn empty_and_digitless_cells_are_refused() {
        for raw in ["", "   ", "\u{a0}", "tel:"] {
            let error = normalize(raw, us()).unwrap_err();
            assert!(
                matches!(
                    error,
                    NumberError::Empty { .. } | NumberError::NoDigits { .. }
                ),
                "{raw:?}: {error}"
            );
        }
        assert!(matches!(
            normalize("( ) -", us()),
            Err(NumberError::NoDigits { .. })
        ));
        assert!(matches!(
            normalize("+", us()),
            Err(NumberError::NoDigits { .. })
        ));
    }

    #[test]
    fn a_leading_zero_country_code_is_refused() {
        for raw in ["+044 7700 900123", "+0 212 555 0143", "000 44 7700 900123"] {
            let error = normalize(raw, us()).unwrap_err();
            assert!(
                matches!(error, NumberError::LeadingZeroCountryCode { .. }),
                "{raw}: {error}"
            );
        }
    }

    #[test]
    fn nanp_area_codes_and_exchanges_starting_with_0_or_1_are_refused() {
        for raw in ["(012) 555-0143", "+1 112 555 0143"] {
            let error = normalize(raw, us()).unwrap_err();
            assert!(
                matches!(error, NumberError::AreaCode { .. }),
                "{raw}: {error}"
            );
        }
        for raw in ["212-055-0143", "+1 212 155 0143"] {
            let error = normalize(raw, us()).unwrap_err();
            assert!(
                matches!(error, NumberError::Exchange { .. }),
                "{raw}: {error}"
            );
        }
    }

    #[test]
    fn misplaced_plus_line_breaks_and_symbols_are_refused() {
        assert!(matches!(
            normalize("1+212 555 0143", us()),
            Err(NumberError::MisplacedPlus { .. })
        ));
        assert!(matches!(
            normalize("212\n555 0143", us()),
            Err(NumberError::LineBreak { .. })
        ));
        assert!(matches!(
            normalize("212*555*0143", us()),
            Err(NumberError::InvalidCharacter { found: '*', .. })
        ));
        assert!(matches!(
            normalize("2.12556E+9", us()),
            Err(NumberError::ScientificNotation { .. })
        ));
    }

    #[test]
    fn results_are_always_e164() {
        let inputs = [
            "2125550143",
            "+447700900123",
            "+81312345678",
            "0012125550143",
        ];
        for raw in inputs {
            assert!(is_e164(&normalize(raw, us()).unwrap()), "{raw}");
        }
    }
}
