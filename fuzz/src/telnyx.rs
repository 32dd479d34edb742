//! Telnyx webhooks: the JSON event parser and the ed25519 signature check.
//!
//! Input: optional `telnyx-timestamp`, `telnyx-signature-ed25519` and `public-key` headers,
//! then the JSON body. Signatures are checked at [`NOW`] against the key of [`SECRET`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use smsflow::ingress::telnyx::{
    self, SIGNATURE_HEADER, TIMESTAMP_HEADER, TOLERANCE_SECS, TelnyxError, TelnyxEvent,
};
use smsflow::phone::parse_e164;

use super::message::Message;

/// The number inbound texts must be addressed to.
const OUR_NUMBER: &str = "+14155550100";
/// The clock signatures are checked at (the seeds' timestamps are near it).
pub const NOW: i64 = 1_767_225_600;
/// The seed of the signing key (the engine's tests use the same one).
pub const SECRET: [u8; 32] = [7; 32];

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let message = Message::parse(data);
    check_event(message.body);
    let key = SigningKey::from_bytes(&SECRET);
    let public = STANDARD.encode(key.verifying_key().as_bytes());
    check_round_trip(&key, &public, message.body);
    let timestamp = message.header(TIMESTAMP_HEADER);
    let signature = message.header(SIGNATURE_HEADER);
    if telnyx::verify(&public, timestamp, signature, message.body, NOW).is_ok() {
        let signed_at = timestamp.and_then(|t| t.trim().parse().ok());
        let ours = signed_at.map(|at| telnyx::sign(&key, at, message.body));
        let decoded = signature.and_then(|s| STANDARD.decode(s.trim()).ok());
        assert_eq!(
            decoded,
            ours.and_then(|ours| STANDARD.decode(ours).ok()),
            "accepted a signature that is not ours"
        );
    }
    if let Some(other_key) = message.header("public-key") {
        // Any key text: refused or checked, never a panic.
        let _ = telnyx::verify(other_key, timestamp, signature, message.body, NOW);
    }
}

/// Whatever parses holds what the parser promises.
fn check_event(body: &[u8]) {
    match telnyx::parse(body, OUR_NUMBER) {
        Ok(TelnyxEvent::Inbound(text)) => {
            assert!(!text.message_id.is_empty());
            assert!(parse_e164(&text.from).is_ok(), "from {:?}", text.from);
            assert_eq!(text.to, OUR_NUMBER);
        }
        Ok(TelnyxEvent::Status(update)) => {
            assert!(!update.message_id.is_empty());
            assert!(update.error_code.is_none_or(|code| !code.is_empty()));
        }
        Ok(TelnyxEvent::Other(kind)) => assert!(!kind.is_empty()),
        Err(_) => {}
    }
}

/// Our own signature verifies now, not on another body, and not once it is stale.
fn check_round_trip(key: &SigningKey, public: &str, body: &[u8]) {
    let now = NOW.to_string();
    let signature = telnyx::sign(key, NOW, body);
    assert!(telnyx::verify(public, Some(&now), Some(&signature), body, NOW).is_ok());
    let mut other_body = body.to_vec();
    other_body.push(b' ');
    assert!(matches!(
        telnyx::verify(public, Some(&now), Some(&signature), &other_body, NOW),
        Err(TelnyxError::BadSignature)
    ));
    let late = NOW + TOLERANCE_SECS + 1;
    assert!(matches!(
        telnyx::verify(public, Some(&now), Some(&signature), body, late),
        Err(TelnyxError::StaleTimestamp { .. })
    ));
}
