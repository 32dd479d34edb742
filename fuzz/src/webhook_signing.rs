//! The Standard Webhooks signer and verifier of event webhooks.
//!
//! Input: optional `secret`, `webhook-id`, `webhook-timestamp` and `webhook-signature` headers,
//! then the body. Signatures are checked at [`NOW`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use smsflow::events::signing::{SigningError, TOLERANCE_SECS, WebhookSecret};

use super::message::Message;

/// The clock signatures are checked at (the seeds' timestamps are near it).
pub const NOW: i64 = 1_767_225_600;
/// The secret when the input names none (or one that is refused).
pub const DEFAULT_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let message = Message::parse(data);
    let given = message.header("secret").map(WebhookSecret::parse);
    let Some(Ok(secret)) = given.or_else(|| Some(WebhookSecret::parse(DEFAULT_SECRET))) else {
        return;
    };
    let id = message.header("webhook-id").unwrap_or("msg_2LJ7bXl9Yq");
    check_round_trip(&secret, id, message.body);
    let (Some(timestamp), Some(signatures)) = (
        message.header("webhook-timestamp"),
        message.header("webhook-signature"),
    ) else {
        return;
    };
    if secret
        .verify(id, timestamp, signatures, message.body, NOW)
        .is_ok()
    {
        let signed_at = timestamp.trim().parse().unwrap_or(i64::MIN);
        let ours = secret.sign(id, signed_at, message.body);
        let ours = ours
            .strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok());
        let accepted = signatures
            .split_ascii_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .any(|b64| STANDARD.decode(b64).ok() == ours);
        assert!(accepted, "accepted a signature that is not ours");
    }
}

/// Our own signature verifies, beside entries of other versions and wrong ones, but not for
/// another message id, and not once it is stale.
fn check_round_trip(secret: &WebhookSecret, id: &str, body: &[u8]) {
    let now = NOW.to_string();
    let [(_, header_id), (_, header_time), (_, signature)] = secret.headers(id, NOW, body);
    assert_eq!(
        (header_id.as_str(), header_time.as_str()),
        (id, now.as_str())
    );
    assert_eq!(signature, secret.sign(id, NOW, body));
    assert_eq!(secret.verify(id, &now, &signature, body, NOW), Ok(()));
    let rotated = format!("v2,abc v1,AAAA {signature}");
    assert_eq!(secret.verify(id, &now, &rotated, body, NOW), Ok(()));
    let other_id = format!("{id}x");
    assert_eq!(
        secret.verify(&other_id, &now, &signature, body, NOW),
        Err(SigningError::BadSignature)
    );
    let late = NOW + TOLERANCE_SECS + 1;
    assert!(matches!(
        secret.verify(id, &now, &signature, body, late),
        Err(SigningError::StaleTimestamp { .. })
    ));
}
