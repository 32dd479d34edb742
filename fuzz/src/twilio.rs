//! Twilio webhooks: the form parser, the reading of inbound texts and status callbacks, the URL
//! forms a signature may cover, and `X-Twilio-Signature` checks.
//!
//! Input: optional `url`, `auth-token` and `x-twilio-signature` headers, then the form body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use smsflow::ingress::twilio::{self, MAX_BODY_CHARS, MAX_SID_LEN, TwilioError};
use smsflow::phone::parse_e164;

use super::message::Message;

/// The number the webhook serves.
const OUR_NUMBER: &str = "+14155550100";
/// The URL when the input names none.
const DEFAULT_URL: &str = "https://sms.example.com/webhooks/twilio";
/// The auth token when the input names none.
const DEFAULT_TOKEN: &str = "12345678901234567890123456789012";

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let message = Message::parse(data);
    let url = message.header("url").unwrap_or(DEFAULT_URL);
    check_url_variants(url);
    let Ok(params) = twilio::parse_form(message.body) else {
        return;
    };
    let reencoded = encode_form(&params);
    assert_eq!(
        twilio::parse_form(reencoded.as_bytes()).as_ref(),
        Ok(&params),
        "re-encoding the parsed form changes it"
    );
    check_fields(&params);
    let token = message.header("auth-token").unwrap_or(DEFAULT_TOKEN);
    check_signatures(url, &params, token, message.header("x-twilio-signature"));
}

/// The forms of a URL a signature may cover are that URL, as the `url` crate reads it.
fn check_url_variants(url: &str) {
    let variants = twilio::url_variants(url);
    assert_eq!(variants.first().map(String::as_str), Some(url));
    assert!(variants.len() <= 2, "more than two URL forms: {variants:?}");
    if let Some(other) = variants.get(1) {
        assert_ne!(other, url);
        assert_eq!(
            url::Url::parse(other).ok(),
            url::Url::parse(url).ok(),
            "the other port form is another URL"
        );
    }
}

/// What the readers return holds what they promise.
fn check_fields(params: &[(String, String)]) {
    if let Ok(text) = twilio::inbound_text(params, OUR_NUMBER) {
        assert_sid(&text.message_id);
        assert!(parse_e164(&text.from).is_ok(), "from {:?}", text.from);
        assert_eq!(text.to, OUR_NUMBER);
        assert!(text.body.chars().count() <= MAX_BODY_CHARS);
    }
    if let Ok(update) = twilio::status_update(params) {
        assert_sid(&update.message_id);
        assert!(update.error_code.is_none_or(|code| !code.is_empty()));
    }
}

fn assert_sid(sid: &str) {
    assert!(!sid.is_empty() && sid.len() <= MAX_SID_LEN, "sid {sid:?}");
    assert!(
        sid.bytes().all(|b| b.is_ascii_alphanumeric()),
        "sid {sid:?}"
    );
}

/// Our own signatures verify, under every URL form; another token's do not; a header from the
/// input only passes when it is one of ours.
fn check_signatures(url: &str, params: &[(String, String)], token: &str, given: Option<&str>) {
    assert_eq!(
        twilio::verify(url, params, token, None),
        Err(TwilioError::MissingSignature)
    );
    let variants = twilio::url_variants(url);
    let ours: Vec<String> = variants
        .iter()
        .map(|variant| twilio::signature(variant, params, token))
        .collect();
    for signature in &ours {
        assert_eq!(twilio::verify(url, params, token, Some(signature)), Ok(()));
    }
    let other_token = format!("{token}x");
    assert!(twilio::verify(url, params, &other_token, Some(&ours[0])).is_err());
    if let Some(given) = given
        && twilio::verify(url, params, token, Some(given)).is_ok()
    {
        let decoded = STANDARD.decode(given).ok();
        let accepted = ours
            .iter()
            .any(|ours| STANDARD.decode(ours).ok() == decoded);
        assert!(accepted, "accepted a signature that is not ours: {given:?}");
    }
}

/// `params` as a form body, every byte outside the unreserved set percent-encoded.
fn encode_form(params: &[(String, String)]) -> String {
    let mut out = String::new();
    for (index, (key, value)) in params.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        encode_component(&mut out, key);
        out.push('=');
        encode_component(&mut out, value);
    }
    out
}

fn encode_component(out: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
}
