//! Twilio webhooks: form parsing, `X-Twilio-Signature` checks, inbound texts and status callbacks.
//!
//! Twilio posts `application/x-www-form-urlencoded` bodies and signs each request with
//! HMAC-SHA1 over the webhook URL followed by every POST parameter's name and value, sorted by
//! name. The server calls [`parse_form`] on the body, [`verify`] with the URL the request was
//! sent to and the `X-Twilio-Signature` header, then [`inbound_text`] or [`status_update`], and
//! answers inbound texts with [`EMPTY_TWIML`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::{DeliveryState, InboundText, StatusUpdate};
use crate::phone::{PhoneError, parse_e164};

/// The TwiML reply that acknowledges a webhook without sending anything back.
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

/// The longest inbound `Body` accepted, in characters (Twilio's own limit).
pub const MAX_BODY_CHARS: usize = 1600;

/// The longest `MessageSid` accepted, in characters.
pub const MAX_SID_LEN: usize = 64;

type HmacSha1 = Hmac<Sha1>;

/// Why a Twilio webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwilioError {
    /// The raw form body holds bytes that are not UTF-8.
    #[error(
        "the form body is not UTF-8 (invalid byte at offset {offset}): send UTF-8 text, \
         percent-encoding anything outside ASCII"
    )]
    FormNotUtf8 {
        /// Byte offset of the first invalid byte in the body.
        offset: usize,
    },
    /// A `%` in the form body is not followed by two hex digits.
    #[error(
        "the form body has a broken percent-escape `{found}` at byte {offset}: `%` must be \
         followed by two hex digits, and a literal `%` must be written as %25"
    )]
    BadEscape {
        /// Byte offset of the `%` in the body.
        offset: usize,
        /// The text found from the `%` on (at most three characters).
        found: String,
    },
    /// Percent-escapes decode to bytes that are not UTF-8.
    #[error(
        "the form body's escaped text at byte {offset} does not decode to UTF-8: \
         percent-encode the UTF-8 bytes of the text"
    )]
    DecodedNotUtf8 {
        /// Byte offset in the body where the invalid decoded sequence starts.
        offset: usize,
    },
    /// The request carries no `X-Twilio-Signature` header.
    #[error(
        "the request has no X-Twilio-Signature header: only webhooks signed by Twilio are accepted"
    )]
    MissingSignature,
    /// The `X-Twilio-Signature` header matches no form of the URL with these parameters.
    #[error(
        "the X-Twilio-Signature header does not match this request: check that the auth token is \
         the account's current one and that the webhook URL configured in Twilio is exactly the \
         URL this server is reached at (scheme, host, port, path and query)"
    )]
    BadSignature,
    /// A required parameter is absent.
    #[error(
        "the `{0}` parameter is missing: Twilio always sends it, so this is not a Twilio webhook"
    )]
    MissingField(&'static str),
    /// A parameter that must appear once appears more than once.
    #[error("the `{0}` parameter appears more than once: send it once")]
    DuplicateField(&'static str),
    /// The message id is empty.
    #[error("`{field}` is empty: it must be Twilio's id for the message")]
    EmptyMessageSid {
        /// The parameter that held it (`MessageSid` or `SmsSid`).
        field: &'static str,
    },
    /// The message id is longer than [`MAX_SID_LEN`].
    #[error("`{field}` has {len} characters, more than the {MAX_SID_LEN} allowed")]
    MessageSidTooLong {
        /// The parameter that held it (`MessageSid` or `SmsSid`).
        field: &'static str,
        /// Its length in characters.
        len: usize,
    },
    /// The message id holds something other than ASCII letters and digits.
    #[error("`{field}` may only hold ASCII letters and digits, such as SM0123456789abcdef")]
    MessageSidNotAlphanumeric {
        /// The parameter that held it (`MessageSid` or `SmsSid`).
        field: &'static str,
    },
    /// `From` or `To` is not an E.164 number.
    #[error("the `{field}` parameter is refused: {reason}")]
    BadNumber {
        /// The parameter (`From` or `To`).
        field: &'static str,
        /// Why the number was refused.
        reason: PhoneError,
    },
    /// The text was sent to a number this webhook does not serve.
    #[error(
        "the text was sent to {to}, but this webhook serves {ours}: point {to}'s messaging \
         webhook at the server configured for it"
    )]
    NotOurNumber {
        /// The `To` number of the request.
        to: String,
        /// The number this webhook serves.
        ours: String,
    },
    /// `Body` is longer than [`MAX_BODY_CHARS`].
    #[error("`Body` has {chars} characters, more than the {MAX_BODY_CHARS} allowed")]
    BodyTooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// `NumMedia` is not a count.
    #[error("`NumMedia` is {0:?}, not a count: send a whole number such as 0 or 2")]
    BadNumMedia(String),
    /// The status is not one Twilio documents for outbound messages.
    #[error(
        "message status {0:?} is unknown: expected one of accepted, scheduled, queued, sending, \
         sent, delivered, undelivered, failed, canceled, read"
    )]
    UnknownStatus(String),
}

/// Parses a strict `application/x-www-form-urlencoded` body into its pairs, in order.
///
/// `+` decodes to a space and `%XX` to the byte `XX`. Empty pairs (`a=1&&b=2`) are skipped, a key
/// without `=` gets the value `""`, and repeated keys are all kept.
///
/// # Errors
///
/// - [`TwilioError::FormNotUtf8`] when the body itself is not UTF-8;
/// - [`TwilioError::BadEscape`] when a `%` is not followed by two hex digits;
/// - [`TwilioError::DecodedNotUtf8`] when a decoded key or value is not UTF-8.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, TwilioError> {
    let text = std::str::from_utf8(body).map_err(|err| TwilioError::FormNotUtf8 {
        offset: err.valid_up_to(),
    })?;
    let mut pairs = Vec::new();
    let mut piece_start = 0;
    for piece in text.split('&') {
        let start = piece_start;
        piece_start += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        let (key, value, value_start) = match piece.split_once('=') {
            Some((key, value)) => (key, value, start + key.len() + 1),
            None => (piece, "", start + piece.len()),
        };
        pairs.push((decode(key, start)?, decode(value, value_start)?));
    }
    Ok(pairs)
}

/// Decodes one form component that starts at byte `base` of the body.
fn decode(text: &str, base: usize) -> Result<String, TwilioError> {
    if !text.contains(['+', '%']) {
        return Ok(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    // For each decoded byte, where it came from in the body, to point errors at the escape.
    let mut origin = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        origin.push(base + i);
        match byte {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let high = bytes.get(i + 1).copied().and_then(hex_value);
                let low = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(high), Some(low)) = (high, low) else {
                    let found = text.get(i..).unwrap_or_default().chars().take(3).collect();
                    return Err(TwilioError::BadEscape {
                        offset: base + i,
                        found,
                    });
                };
                out.push(high << 4 | low);
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|err| TwilioError::DecodedNotUtf8 {
        offset: origin
            .get(err.utf8_error().valid_up_to())
            .copied()
            .unwrap_or(base),
    })
}

/// The value of one ASCII hex digit.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Computes the `X-Twilio-Signature` Twilio sends for a POST to `url` with `params`.
///
/// The signed text is `url` followed by each parameter's name and value, sorted by name and then
/// by value; the signature is base64 (standard, padded) of its HMAC-SHA1 under `auth_token`.
pub fn signature(url: &str, params: &[(String, String)], auth_token: &str) -> String {
    STANDARD.encode(signed_mac(url, params, auth_token).finalize().into_bytes())
}

/// The HMAC over the signed text, not yet finalised.
fn signed_mac(url: &str, params: &[(String, String)], auth_token: &str) -> HmacSha1 {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_unstable();
    let mut mac = keyed_mac(auth_token);
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// HMAC-SHA1 keyed with `auth_token`, built without a fallible constructor.
///
/// HMAC hashes a key longer than the hash's block and zero-pads a shorter one to the block size;
/// doing that here gives a block-sized key, which [`Mac::new`] takes infallibly, and the same MAC
/// as `new_from_slice` with the raw token.
fn keyed_mac(auth_token: &str) -> HmacSha1 {
    let token = auth_token.as_bytes();
    let mut key = hmac::digest::Key::<HmacSha1>::default();
    if token.len() > key.len() {
        let hashed = <Sha1 as sha1::Digest>::digest(token);
        key[..hashed.len()].copy_from_slice(&hashed);
    } else {
        key[..token.len()].copy_from_slice(token);
    }
    <HmacSha1 as Mac>::new(&key)
}

/// The forms of `url` Twilio may have signed: as given, then with the default port added (`:443`
/// for https, `:80` for http) when it has none, or removed when it has it.
///
/// Only the port is touched: the rest of the text, path and query included, is kept exactly as
/// given. URLs that do not parse, are not http(s), carry another port, or hold spaces or control
/// characters come back alone.
pub fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    variants.extend(other_port_form(url));
    variants
}

/// `url` with the default port added or removed, when that applies.
fn other_port_form(url: &str) -> Option<String> {
    // The url crate drops spaces, tabs and newlines that we would keep: refuse to guess.
    if url.contains(|c: char| c <= ' ' || c == '\u{7f}') {
        return None;
    }
    let parsed = url::Url::parse(url).ok()?;
    let scheme = parsed.scheme();
    let default_port: u16 = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let written_scheme = url.get(..scheme.len())?;
    if !written_scheme.eq_ignore_ascii_case(scheme)
        || url.get(scheme.len()..scheme.len() + 3)? != "://"
    {
        return None;
    }
    let authority_start = scheme.len() + 3;
    let rest = url.get(authority_start..)?;
    let authority_len = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    let authority_end = authority_start + authority_len;
    let authority = rest.get(..authority_len)?;
    // `https:///host` has no authority where we look for one, though the url crate finds the
    // host past the extra slash: refuse to guess (found by the `twilio` fuzz target).
    if authority.is_empty() {
        return None;
    }
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = authority.get(host_start..)?;
    let colon = if host_port.starts_with('[') {
        let close = host_port.find(']')?;
        host_port
            .get(close + 1..)?
            .starts_with(':')
            .then_some(close + 1)
    } else {
        host_port.rfind(':')
    };
    match colon {
        None if parsed.port().is_none() => Some(format!(
            "{}:{default_port}{}",
            url.get(..authority_end)?,
            url.get(authority_end..)?
        )),
        Some(colon) => {
            let port = host_port.get(colon + 1..)?;
            let is_default = !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().ok() == Some(default_port)
                && parsed.port().is_none();
            let colon_at = authority_start + host_start + colon;
            is_default.then(|| format!("{}{}", &url[..colon_at], &url[authority_end..]))
        }
        None => None,
    }
}

/// Checks `given` (the `X-Twilio-Signature` header) against the request's URL and parameters.
///
/// The signature is compared in constant time against each of [`url_variants`] of `url`.
///
/// # Errors
///
/// [`TwilioError::MissingSignature`] when there is no header, [`TwilioError::BadSignature`] when
/// it is not base64 or matches no variant of the URL.
pub fn verify(
    url: &str,
    params: &[(String, String)],
    auth_token: &str,
    given: Option<&str>,
) -> Result<(), TwilioError> {
    let given = given.ok_or(TwilioError::MissingSignature)?;
    let given = STANDARD
        .decode(given)
        .map_err(|_| TwilioError::BadSignature)?;
    let matches = url_variants(url).iter().any(|variant| {
        signed_mac(variant, params, auth_token)
            .verify_slice(&given)
            .is_ok()
    });
    if matches {
        Ok(())
    } else {
        Err(TwilioError::BadSignature)
    }
}

/// Reads an inbound text from a verified webhook's parameters.
///
/// `MessageSid`, `From` and `To` are required; `Body` defaults to `""` and `NumMedia` to 0.
///
/// # Errors
///
/// - [`TwilioError::MissingField`] or [`TwilioError::DuplicateField`] for a required field absent
///   or any read field repeated;
/// - [`TwilioError::EmptyMessageSid`], [`TwilioError::MessageSidTooLong`] or
///   [`TwilioError::MessageSidNotAlphanumeric`] for a bad `MessageSid`;
/// - [`TwilioError::BadNumber`] when `From` or `To` is not E.164;
/// - [`TwilioError::NotOurNumber`] when `To` is not `our_number`;
/// - [`TwilioError::BodyTooLong`] past [`MAX_BODY_CHARS`];
/// - [`TwilioError::BadNumMedia`] when `NumMedia` is not a count.
pub fn inbound_text(
    params: &[(String, String)],
    our_number: &str,
) -> Result<InboundText, TwilioError> {
    let message_id = message_sid("MessageSid", required(params, "MessageSid")?)?;
    let from = number(params, "From")?;
    let to = number(params, "To")?;
    if to != our_number {
        return Err(TwilioError::NotOurNumber {
            to,
            ours: our_number.to_owned(),
        });
    }
    let body = field(params, "Body")?.unwrap_or_default();
    let chars = body.chars().count();
    if chars > MAX_BODY_CHARS {
        return Err(TwilioError::BodyTooLong { chars });
    }
    let num_media = match field(params, "NumMedia")? {
        None => 0,
        Some(count) => {
            parse_count(count).ok_or_else(|| TwilioError::BadNumMedia(count.to_owned()))?
        }
    };
    Ok(InboundText {
        provider: "twilio",
        message_id,
        from,
        to,
        body: body.to_owned(),
        num_media,
    })
}

/// Reads a delivery status from a verified status callback's parameters.
///
/// The id is `MessageSid` (or `SmsSid` when absent), the status `MessageStatus` (or `SmsStatus`);
/// `ErrorCode` is kept when present and not empty.
///
/// # Errors
///
/// - [`TwilioError::MissingField`] or [`TwilioError::DuplicateField`] for the id or status absent,
///   or any read field repeated;
/// - [`TwilioError::EmptyMessageSid`], [`TwilioError::MessageSidTooLong`] or
///   [`TwilioError::MessageSidNotAlphanumeric`] for a bad id;
/// - [`TwilioError::UnknownStatus`] for a status Twilio does not document.
pub fn status_update(params: &[(String, String)]) -> Result<StatusUpdate, TwilioError> {
    let (sid_field, sid) = first_of(params, "MessageSid", "SmsSid")?;
    let message_id = message_sid(sid_field, sid)?;
    let (_, status) = first_of(params, "MessageStatus", "SmsStatus")?;
    let status =
        delivery_state(status).ok_or_else(|| TwilioError::UnknownStatus(status.to_owned()))?;
    let error_code = field(params, "ErrorCode")?
        .filter(|code| !code.is_empty())
        .map(str::to_owned);
    Ok(StatusUpdate {
        message_id,
        status,
        error_code,
    })
}

/// Twilio's message status names.
fn delivery_state(status: &str) -> Option<DeliveryState> {
    Some(match status {
        "accepted" | "queued" | "scheduled" => DeliveryState::Queued,
        "sending" => DeliveryState::Sending,
        "sent" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "undelivered" => DeliveryState::Undelivered,
        "failed" | "canceled" => DeliveryState::Failed,
        "read" => DeliveryState::Read,
        _ => return None,
    })
}

/// The value of `name`, if present once; a repeat is refused rather than guessed at.
fn field<'a>(
    params: &'a [(String, String)],
    name: &'static str,
) -> Result<Option<&'a str>, TwilioError> {
    let mut found = None;
    for (key, value) in params {
        if key == name {
            if found.is_some() {
                return Err(TwilioError::DuplicateField(name));
            }
            found = Some(value.as_str());
        }
    }
    Ok(found)
}

/// The value of `name`, which must be present once.
fn required<'a>(
    params: &'a [(String, String)],
    name: &'static str,
) -> Result<&'a str, TwilioError> {
    field(params, name)?.ok_or(TwilioError::MissingField(name))
}

/// The value of `name`, or else of its legacy name `fallback`, with the field it came from.
fn first_of<'a>(
    params: &'a [(String, String)],
    name: &'static str,
    fallback: &'static str,
) -> Result<(&'static str, &'a str), TwilioError> {
    if let Some(value) = field(params, name)? {
        return Ok((name, value));
    }
    field(params, fallback)?
        .map(|value| (fallback, value))
        .ok_or(TwilioError::MissingField(name))
}

/// Checks a message id: non-empty, ASCII letters and digits, at most [`MAX_SID_LEN`].
fn message_sid(field: &'static str, sid: &str) -> Result<String, TwilioError> {
    if sid.is_empty() {
        return Err(TwilioError::EmptyMessageSid { field });
    }
    if !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TwilioError::MessageSidNotAlphanumeric { field });
    }
    if sid.len() > MAX_SID_LEN {
        return Err(TwilioError::MessageSidTooLong {
            field,
            len: sid.len(),
        });
    }
    Ok(sid.to_owned())
}

/// The required E.164 number in `name`.
fn number(params: &[(String, String)], name: &'static str) -> Result<String, TwilioError> {
    parse_e164(required(params, name)?).map_err(|reason| TwilioError::BadNumber {
        field: name,
        reason,
    })
}

/// A count written as plain ASCII digits (no sign, no spaces) that fits a `u32`.
fn parse_count(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const DOC_TOKEN: &str = "12345";

    fn doc_params() -> Vec<(String, String)> {
        pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ])
    }

    const OURS: &str = "+14155550100";

    fn inbound(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut params = pairs(&[
            ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
            ("From", "+447700900123"),
            ("To", OURS),
            ("Body", "Hello there"),
            ("NumMedia", "0"),
        ]);
        for (key, value) in extra {
            params.retain(|(k, _)| k != key);
            params.push(((*key).to_owned(), (*value).to_owned()));
        }
        params
    }

    fn without(mut params: Vec<(String, String)>, key: &str) -> Vec<(String, String)> {
        params.retain(|(k, _)| k != key);
        params
    }

    // ---- parse_form ----

    #[test]
    fn form_decodes_plus_and_escapes() {
        let got = parse_form(b"Body=Hi+there%21+%C3%A9%e2%82%ac&From=%2B14155550100").unwrap();
        assert_eq!(
            got,
            pairs(&[("Body", "Hi there! é€"), ("From", "+14155550100")])
        );
    }

    #[test]
    fn form_keeps_order_and_duplicates_and_skips_empty_pairs() {
        let got = parse_form(b"b=2&&a=1&b=3&&flag&c=x=y&=v&").unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("b", "2"),
                ("a", "1"),
                ("b", "3"),
                ("flag", ""),
                ("c", "x=y"),
                ("", "v")
            ])
        );
        assert!(parse_form(b"").unwrap().is_empty());
        assert!(parse_form(b"&&&").unwrap().is_empty());
        assert_eq!(parse_form(b"a=").unwrap(), pairs(&[("a", "")]));
    }

    #[test]
    fn form_refuses_broken_escapes_naming_the_offset() {
        assert_eq!(
            parse_form(b"a=1&Body=%G1").unwrap_err(),
            TwilioError::BadEscape {
                offset: 9,
                found: "%G1".to_owned()
            }
        );
        assert_eq!(
            parse_form(b"Body=%4").unwrap_err(),
            TwilioError::BadEscape {
                offset: 5,
                found: "%4".to_owned()
            }
        );
        assert_eq!(
            parse_form(b"Body=abc%").unwrap_err(),
            TwilioError::BadEscape {
                offset: 8,
                found: "%".to_owned()
            }
        );
        assert_eq!(
            parse_form(b"B%zzody=1").unwrap_err(),
            TwilioError::BadEscape {
                offset: 1,
                found: "%zz".to_owned()
            }
        );
        let message = parse_form(b"Body=%G1").unwrap_err().to_string();
        assert!(
            message.contains("%G1") && message.contains("byte 5") && message.contains("%25"),
            "{message}"
        );
    }

    #[test]
    fn form_refuses_escapes_that_are_not_utf8() {
        assert_eq!(
            parse_form(b"Body=%FF").unwrap_err(),
            TwilioError::DecodedNotUtf8 { offset: 5 }
        );
        // A truncated two-byte sequence in a key.
        assert_eq!(
            parse_form(b"x=1&ab%C3=1").unwrap_err(),
            TwilioError::DecodedNotUtf8 { offset: 6 }
        );
        // Valid escapes first: the offset points at the bad one.
        assert_eq!(
            parse_form(b"Body=%C3%A9+%80").unwrap_err(),
            TwilioError::DecodedNotUtf8 { offset: 12 }
        );
    }

    #[test]
    fn form_refuses_raw_bytes_that_are_not_utf8() {
        assert_eq!(
            parse_form(b"Body=ab\xFFc").unwrap_err(),
            TwilioError::FormNotUtf8 { offset: 7 }
        );
        assert_eq!(
            parse_form(b"\xC3").unwrap_err(),
            TwilioError::FormNotUtf8 { offset: 0 }
        );
        // Raw UTF-8 text is fine.
        assert_eq!(
            parse_form("Body=é".as_bytes()).unwrap(),
            pairs(&[("Body", "é")])
        );
    }

    // ---- signature ----

    #[test]
    fn signature_matches_twilio_test_vector() {
        assert_eq!(
            signature(DOC_URL, &doc_params(), DOC_TOKEN),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn signature_sorts_params_by_name_then_value() {
        let mut shuffled = doc_params();
        shuffled.reverse();
        assert_eq!(
            signature(DOC_URL, &shuffled, DOC_TOKEN),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );

        let a = pairs(&[("M", "b"), ("M", "a"), ("A", "z")]);
        let b = pairs(&[("A", "z"), ("M", "a"), ("M", "b")]);
        assert_eq!(
            signature(DOC_URL, &a, DOC_TOKEN),
            signature(DOC_URL, &b, DOC_TOKEN)
        );

        // The signed text is url + "A" + "z" + "M" + "a" + "M" + "b".
        let mut mac = HmacSha1::new_from_slice(DOC_TOKEN.as_bytes()).unwrap();
        mac.update(format!("{DOC_URL}AzMaMb").as_bytes());
        assert_eq!(
            signature(DOC_URL, &a, DOC_TOKEN),
            STANDARD.encode(mac.finalize().into_bytes())
        );
    }

    #[test]
    fn keyed_mac_matches_hmac_for_any_token_length() {
        for len in [0, 1, 5, 32, 63, 64, 65, 200] {
            let token = "k".repeat(len);
            let mut ours = keyed_mac(&token);
            let mut theirs = HmacSha1::new_from_slice(token.as_bytes()).unwrap();
            ours.update(b"text");
            theirs.update(b"text");
            assert_eq!(
                ours.finalize().into_bytes(),
                theirs.finalize().into_bytes(),
                "len {len}"
            );
        }
    }

    // ---- url_variants ----

    #[test]
    fn url_variants_add_or_remove_the_default_port() {
        assert_eq!(
            url_variants(DOC_URL),
            vec![
                DOC_URL.to_owned(),
                "https://mycompany.com:443/myapp.php?foo=1&bar=2".to_owned()
            ]
        );
        assert_eq!(
            url_variants("https://mycompany.com:443/myapp.php?foo=1&bar=2"),
            vec![
                "https://mycompany.com:443/myapp.php?foo=1&bar=2".to_owned(),
                DOC_URL.to_owned()
            ]
        );
        assert_eq!(
            url_variants("http://example.com/sms"),
            vec![
                "http://example.com/sms".to_owned(),
                "http://example.com:80/sms".to_owned()
            ]
        );
        assert_eq!(
            url_variants("http://example.com:80?x=1"),
            vec![
                "http://example.com:80?x=1".to_owned(),
                "http://example.com?x=1".to_owned()
            ]
        );
        assert_eq!(
            url_variants("https://example.com"),
            vec![
                "https://example.com".to_owned(),
                "https://example.com:443".to_owned()
            ]
        );
    }

    #[test]
    fn url_variants_keep_the_rest_of_the_text_exactly() {
        let url = "https://user:pw@Example.COM/a/../b/%7e?q=%7E%2f&x=a:b@c&y=http://z:443/#frag";
        assert_eq!(
            url_variants(url),
            vec![
                url.to_owned(),
                "https://user:pw@Example.COM:443/a/../b/%7e?q=%7E%2f&x=a:b@c&y=http://z:443/#frag"
                    .to_owned()
            ]
        );
        assert_eq!(
            url_variants("https://[::1]:443/sms"),
            vec![
                "https://[::1]:443/sms".to_owned(),
                "https://[::1]/sms".to_owned()
            ]
        );
        assert_eq!(
            url_variants("https://[::1]/sms"),
            vec![
                "https://[::1]/sms".to_owned(),
                "https://[::1]:443/sms".to_owned()
            ]
        );
    }

    #[test]
    fn url_variants_leave_other_urls_alone() {
        for url in [
            "https://example.com:8443/sms",
            "http://example.com:443/sms",
            "https://example.com:80/sms",
            "ftp://example.com/sms",
            "not a url",
            "https://example.com/sms?q=a b",
            "https:///example.com/sms",
            "/sms",
            "",
        ] {
            assert_eq!(url_variants(url), vec![url.to_owned()], "{url}");
        }
    }

    // ---- verify ----

    #[test]
    fn verify_accepts_twilios_signature() {
        let sig = signature(DOC_URL, &doc_params(), DOC_TOKEN);
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        verify(DOC_URL, &doc_params(), DOC_TOKEN, Some(&sig)).unwrap();
    }

    #[test]
    fn verify_accepts_either_port_form() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        // Signed with the port added, received without it.
        let sig = signature(with_port, &doc_params(), DOC_TOKEN);
        verify(DOC_URL, &doc_params(), DOC_TOKEN, Some(&sig)).unwrap();
        // Signed without the port, received with it.
        let sig = signature(DOC_URL, &doc_params(), DOC_TOKEN);
        verify(with_port, &doc_params(), DOC_TOKEN, Some(&sig)).unwrap();
    }

    #[test]
    fn verify_refuses_missing_forged_and_misdirected_signatures() {
        let params = doc_params();
        assert_eq!(
            verify(DOC_URL, &params, DOC_TOKEN, None),
            Err(TwilioError::MissingSignature)
        );
        for forged in [
            "",
            "garbage!",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ",
            "1/KCTR6DLpKmkAf8muzZqo1nDgQ=",
        ] {
            assert_eq!(
                verify(DOC_URL, &params, DOC_TOKEN, Some(forged)),
                Err(TwilioError::BadSignature),
                "{forged}"
            );
        }
        // Valid for another URL.
        let other = signature(
            "https://mycompany.com/other.php?foo=1&bar=2",
            &params,
            DOC_TOKEN,
        );
        assert_eq!(
            verify(DOC_URL, &params, DOC_TOKEN, Some(&other)),
            Err(TwilioError::BadSignature)
        );
        // Valid for another port.
        let other = signature(
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &params,
            DOC_TOKEN,
        );
        assert_eq!(
            verify(DOC_URL, &params, DOC_TOKEN, Some(&other)),
            Err(TwilioError::BadSignature)
        );
        // Another token.
        let other = signature(DOC_URL, &params, "54321");
        assert_eq!(
            verify(DOC_URL, &params, DOC_TOKEN, Some(&other)),
            Err(TwilioError::BadSignature)
        );
        // Tampered, added or dropped parameters.
        let sig = signature(DOC_URL, &params, DOC_TOKEN);
        let mut tampered = params.clone();
        tampered[2].1 = "9999".to_owned();
        assert_eq!(
            verify(DOC_URL, &tampered, DOC_TOKEN, Some(&sig)),
            Err(TwilioError::BadSignature)
        );
        let mut added = params.clone();
        added.push(("Body".to_owned(), "x".to_owned()));
        assert_eq!(
            verify(DOC_URL, &added, DOC_TOKEN, Some(&sig)),
            Err(TwilioError::BadSignature)
        );
        assert_eq!(
            verify(DOC_URL, &params[1..], DOC_TOKEN, Some(&sig)),
            Err(TwilioError::BadSignature)
        );
    }

    #[test]
    fn verify_works_on_a_parsed_body() {
        let params =
            parse_form(b"Body=Hi+%F0%9F%91%8B&From=%2B447700900123&To=%2B14155550100").unwrap();
        let url = "https://sms.example.com/twilio/inbound";
        let sig = signature(url, &params, "tok");
        verify(url, &params, "tok", Some(&sig)).unwrap();
    }

    // ---- inbound_text ----

    #[test]
    fn inbound_text_reads_a_message() {
        let text = inbound_text(&inbound(&[("NumMedia", "2")]), OURS).unwrap();
        assert_eq!(
            text,
            InboundText {
                provider: "twilio",
                message_id: "SM0123456789abcdef0123456789abcdef".to_owned(),
                from: "+447700900123".to_owned(),
                to: OURS.to_owned(),
                body: "Hello there".to_owned(),
                num_media: 2,
            }
        );
    }

    #[test]
    fn inbound_text_defaults_body_and_media() {
        let params = without(without(inbound(&[]), "Body"), "NumMedia");
        let text = inbound_text(&params, OURS).unwrap();
        assert_eq!(text.body, "");
        assert_eq!(text.num_media, 0);
    }

    #[test]
    fn inbound_text_checks_message_sid() {
        assert_eq!(
            inbound_text(&without(inbound(&[]), "MessageSid"), OURS),
            Err(TwilioError::MissingField("MessageSid"))
        );
        assert_eq!(
            inbound_text(&inbound(&[("MessageSid", "")]), OURS),
            Err(TwilioError::EmptyMessageSid {
                field: "MessageSid"
            })
        );
        let long = "S".repeat(65);
        assert_eq!(
            inbound_text(&inbound(&[("MessageSid", &long)]), OURS),
            Err(TwilioError::MessageSidTooLong {
                field: "MessageSid",
                len: 65
            })
        );
        assert!(inbound_text(&inbound(&[("MessageSid", &"S".repeat(64))]), OURS).is_ok());
        for bad in ["SM 1", "SM-1", "SMé1", "SM1\n", "../x"] {
            assert_eq!(
                inbound_text(&inbound(&[("MessageSid", bad)]), OURS),
                Err(TwilioError::MessageSidNotAlphanumeric {
                    field: "MessageSid"
                }),
                "{bad:?}"
            );
        }
        let mut twice = inbound(&[]);
        twice.push(("MessageSid".to_owned(), "SM2".to_owned()));
        assert_eq!(
            inbound_text(&twice, OURS),
            Err(TwilioError::DuplicateField("MessageSid"))
        );
    }

    #[test]
    fn inbound_text_refuses_numbers_that_are_not_e164() {
        for bad in [
            "+999999999999999999",
            "tel:+14155550100",
            "+1415abc0100",
            "14155550100",
            "whatsapp:+14155550100",
            "",
        ] {
            let err = inbound_text(&inbound(&[("From", bad)]), OURS).unwrap_err();
            assert!(
                matches!(err, TwilioError::BadNumber { field: "From", .. }),
                "{bad}: {err:?}"
            );
            let message = err.to_string();
            assert!(
                message.contains("`From`") && message.contains("E.164"),
                "{message}"
            );

            let err = inbound_text(&inbound(&[("To", bad)]), bad).unwrap_err();
            assert!(
                matches!(err, TwilioError::BadNumber { field: "To", .. }),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(
            inbound_text(&without(inbound(&[]), "From"), OURS),
            Err(TwilioError::MissingField("From"))
        );
        assert_eq!(
            inbound_text(&without(inbound(&[]), "To"), OURS),
            Err(TwilioError::MissingField("To"))
        );
    }

    #[test]
    fn inbound_text_refuses_another_number() {
        let err = inbound_text(&inbound(&[("To", "+14155550199")]), OURS).unwrap_err();
        assert_eq!(
            err,
            TwilioError::NotOurNumber {
                to: "+14155550199".to_owned(),
                ours: OURS.to_owned()
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("+14155550199") && message.contains(OURS),
            "{message}"
        );
    }

    #[test]
    fn inbound_text_limits_body_in_characters() {
        let full = "é".repeat(MAX_BODY_CHARS);
        assert_eq!(
            inbound_text(&inbound(&[("Body", &full)]), OURS)
                .unwrap()
                .body,
            full
        );
        let long = "a".repeat(MAX_BODY_CHARS + 1);
        assert_eq!(
            inbound_text(&inbound(&[("Body", &long)]), OURS),
            Err(TwilioError::BodyTooLong {
                chars: MAX_BODY_CHARS + 1
            })
        );
    }

    #[test]
    fn inbound_text_refuses_bad_media_counts() {
        for bad in ["", "abc", "-1", "+1", " 1", "1.0", "99999999999"] {
            assert_eq!(
                inbound_text(&inbound(&[("NumMedia", bad)]), OURS),
                Err(TwilioError::BadNumMedia(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    // ---- status_update ----

    #[test]
    fn status_update_maps_every_status() {
        for (name, state) in [
            ("accepted", DeliveryState::Queued),
            ("queued", DeliveryState::Queued),
            ("scheduled", DeliveryState::Queued),
            ("sending", DeliveryState::Sending),
            ("sent", DeliveryState::Sent),
            ("delivered", DeliveryState::Delivered),
            ("undelivered", DeliveryState::Undelivered),
            ("failed", DeliveryState::Failed),
            ("canceled", DeliveryState::Failed),
            ("read", DeliveryState::Read),
        ] {
            let params = pairs(&[("MessageSid", "SM1"), ("MessageStatus", name)]);
            assert_eq!(
                status_update(&params).unwrap(),
                StatusUpdate {
                    message_id: "SM1".to_owned(),
                    status: state,
                    error_code: None
                },
                "{name}"
            );
        }
    }

    #[test]
    fn status_update_falls_back_to_sms_fields_and_keeps_error_code() {
        let params = pairs(&[
            ("SmsSid", "SM2"),
            ("SmsStatus", "undelivered"),
            ("ErrorCode", "30003"),
        ]);
        assert_eq!(
            status_update(&params).unwrap(),
            StatusUpdate {
                message_id: "SM2".to_owned(),
                status: DeliveryState::Undelivered,
                error_code: Some("30003".to_owned()),
            }
        );
        // MessageSid wins over SmsSid; an empty ErrorCode is no code.
        let params = pairs(&[
            ("SmsSid", "SMold"),
            ("MessageSid", "SMnew"),
            ("MessageStatus", "sent"),
            ("ErrorCode", ""),
        ]);
        let update = status_update(&params).unwrap();
        assert_eq!(update.message_id, "SMnew");
        assert_eq!(update.error_code, None);
        assert_eq!(
            status_update(&pairs(&[("SmsSid", "SM 2"), ("SmsStatus", "sent")])),
            Err(TwilioError::MessageSidNotAlphanumeric { field: "SmsSid" })
        );
    }

    #[test]
    fn status_update_refuses_unknown_or_missing_parts() {
        assert_eq!(
            status_update(&pairs(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "exploded")
            ])),
            Err(TwilioError::UnknownStatus("exploded".to_owned()))
        );
        assert_eq!(
            status_update(&pairs(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "Delivered")
            ])),
            Err(TwilioError::UnknownStatus("Delivered".to_owned()))
        );
        assert_eq!(
            status_update(&pairs(&[("MessageSid", "SM1")])),
            Err(TwilioError::MissingField("MessageStatus"))
        );
        assert_eq!(
            status_update(&pairs(&[("MessageStatus", "sent")])),
            Err(TwilioError::MissingField("MessageSid"))
        );
        assert_eq!(
            status_update(&pairs(&[("MessageSid", ""), ("MessageStatus", "sent")])),
            Err(TwilioError::EmptyMessageSid {
                field: "MessageSid"
            })
        );
    }

    #[test]
    fn empty_twiml_is_an_empty_response() {
        assert_eq!(
            EMPTY_TWIML,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"
        );
    }
}
