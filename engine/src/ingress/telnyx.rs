//! Telnyx (API v2) messaging webhooks: ed25519 signature checks and event parsing.
//!
//! Telnyx signs `"{timestamp}|{raw body}"` with its ed25519 key and sends the signature (base64)
//! in `telnyx-signature-ed25519` and the unix timestamp in `telnyx-timestamp`. [`verify`] checks
//! both, refusing replays older (or newer) than [`TOLERANCE_SECS`]; [`parse`] then turns the body
//! into a [`TelnyxEvent`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Deserialize;

use super::{DeliveryState, InboundText, StatusUpdate};
use crate::phone::{PhoneError, parse_e164};

/// The header holding the base64 ed25519 signature.
pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";

/// The header holding the unix timestamp (seconds) the webhook was signed at.
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";

/// How far (in seconds, either way) a webhook's timestamp may be from now before it is refused.
pub const TOLERANCE_SECS: i64 = 300;

/// The provider name put in [`InboundText::provider`].
pub const PROVIDER: &str = "telnyx";

/// Why a Telnyx webhook was refused.
#[derive(Debug, thiserror::Error)]
pub enum TelnyxError {
    /// The request had no `telnyx-signature-ed25519` header.
    #[error("the request has no `telnyx-signature-ed25519` header")]
    MissingSignature,
    /// The request had no `telnyx-timestamp` header.
    #[error("the request has no `telnyx-timestamp` header")]
    MissingTimestamp,
    /// The `telnyx-timestamp` header is not a whole number of seconds.
    #[error("the `telnyx-timestamp` header `{0}` is not a unix timestamp in whole seconds")]
    BadTimestamp(String),
    /// The timestamp is too far from now: a replayed (or badly clocked) webhook.
    #[error(
        "the webhook was signed at {timestamp}, more than {TOLERANCE_SECS} s from now ({now}): \
         refusing a possible replay"
    )]
    StaleTimestamp {
        /// The timestamp the webhook carried.
        timestamp: i64,
        /// Our clock when it was checked.
        now: i64,
    },
    /// The configured public key is not base64 of a valid 32-byte ed25519 public key.
    #[error(
        "the configured Telnyx public key is not base64 of a 32-byte ed25519 public key \
         (copy it from the Telnyx portal): {0}"
    )]
    BadPublicKey(String),
    /// The signature header is not base64 of a 64-byte ed25519 signature.
    #[error(
        "the `telnyx-signature-ed25519` header is not base64 of a 64-byte ed25519 signature: {0}"
    )]
    BadSignatureEncoding(String),
    /// The signature does not match the timestamp and body under the configured key.
    #[error(
        "the webhook signature does not match its body and timestamp under the configured public key"
    )]
    BadSignature,
    /// The body is not UTF-8.
    #[error("the webhook body is not UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    /// The body is not JSON of the expected shape.
    #[error("the webhook body is not a Telnyx JSON event: {0}")]
    BadJson(#[from] serde_json::Error),
    /// A field the event needs is absent (or empty).
    #[error("the webhook has no `{0}`")]
    MissingField(&'static str),
    /// A phone number field is not E.164.
    #[error("the webhook's `{field}` is refused: {source}")]
    BadNumber {
        /// The field holding the number, such as `data.payload.from.phone_number`.
        field: &'static str,
        /// Why the number was refused.
        source: PhoneError,
    },
    /// An inbound text addressed to a number that is not ours.
    #[error("the inbound text is addressed to {to}, not to our number {ours}")]
    NotOurNumber {
        /// The number the text was sent to.
        to: String,
        /// Our configured number.
        ours: String,
    },
    /// A delivery status this engine does not know.
    #[error("the webhook's `data.payload.to[0].status` `{0}` is not a known Telnyx message status")]
    UnknownStatus(String),
}

/// What a Telnyx messaging webhook reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelnyxEvent {
    /// `message.received`: a text to our number.
    Inbound(InboundText),
    /// `message.sent` or `message.finalized`: news of an outbound text.
    Status(StatusUpdate),
    /// Any other event type (named here), to be acknowledged and ignored.
    Other(String),
}

/// Checks a webhook's signature and timestamp.
///
/// `public_key_b64` is the base64 ed25519 public key shown in the Telnyx portal; `timestamp` and
/// `signature_b64` are the `telnyx-timestamp` and `telnyx-signature-ed25519` headers (if sent);
/// `body` is the raw request body; `now_unix` is the current time in unix seconds.
///
/// # Errors
///
/// - [`TelnyxError::MissingTimestamp`] / [`TelnyxError::MissingSignature`] when a header is absent;
/// - [`TelnyxError::BadTimestamp`] when the timestamp is not an integer;
/// - [`TelnyxError::StaleTimestamp`] when it is more than [`TOLERANCE_SECS`] from `now_unix`;
/// - [`TelnyxError::BadPublicKey`] / [`TelnyxError::BadSignatureEncoding`] when the key or the
///   signature is not valid base64 of the right length;
/// - [`TelnyxError::BadSignature`] when the signature does not verify (strictly).
pub fn verify(
    public_key_b64: &str,
    timestamp: Option<&str>,
    signature_b64: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), TelnyxError> {
    let timestamp = timestamp.ok_or(TelnyxError::MissingTimestamp)?;
    let signature_b64 = signature_b64.ok_or(TelnyxError::MissingSignature)?;
    let signed_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| TelnyxError::BadTimestamp(timestamp.to_owned()))?;
    let fresh = now_unix
        .checked_sub(signed_at)
        .is_some_and(|age| age.unsigned_abs() <= TOLERANCE_SECS.unsigned_abs());
    if !fresh {
        return Err(TelnyxError::StaleTimestamp {
            timestamp: signed_at,
            now: now_unix,
        });
    }

    let key = verifying_key(public_key_b64)?;
    let signature_bytes = BASE64
        .decode(signature_b64.trim())
        .map_err(|e| TelnyxError::BadSignatureEncoding(e.to_string()))?;
    let signature = Signature::from_slice(&signature_bytes).map_err(|_| {
        TelnyxError::BadSignatureEncoding(format!("{} bytes instead of 64", signature_bytes.len()))
    })?;
    key.verify_strict(&signed_payload(signed_at, body), &signature)
        .map_err(|_| TelnyxError::BadSignature)
}

/// Signs `body` as Telnyx would at `timestamp`, returning the base64 signature for the
/// `telnyx-signature-ed25519` header (for tests and `send-test`).
#[must_use]
pub fn sign(secret: &SigningKey, timestamp: i64, body: &[u8]) -> String {
    BASE64.encode(secret.sign(&signed_payload(timestamp, body)).to_bytes())
}

/// Turns a (verified) webhook body into a [`TelnyxEvent`].
///
/// `our_number` is the E.164 number inbound texts must be addressed to.
///
/// # Errors
///
/// - [`TelnyxError::NotUtf8`] / [`TelnyxError::BadJson`] when the body is not a JSON event;
/// - [`TelnyxError::MissingField`] when the event type, message id, sender, recipient or
///   status the event needs is absent;
/// - [`TelnyxError::BadNumber`] when `from` or `to` is not E.164;
/// - [`TelnyxError::NotOurNumber`] when an inbound text is addressed to another number;
/// - [`TelnyxError::UnknownStatus`] when a status event carries a status not known here.
pub fn parse(body: &[u8], our_number: &str) -> Result<TelnyxEvent, TelnyxError> {
    let text = std::str::from_utf8(body)?;
    let webhook: Webhook = serde_json::from_str(text)?;
    let data = webhook.data;
    let event_type = data
        .event_type
        .filter(|t| !t.is_empty())
        .ok_or(TelnyxError::MissingField("data.event_type"))?;
    match event_type.as_str() {
        "message.received" => {
            let payload = data
                .payload
                .ok_or(TelnyxError::MissingField("data.payload"))?;
            inbound(payload, our_number).map(TelnyxEvent::Inbound)
        }
        "message.sent" | "message.finalized" => {
            let payload = data
                .payload
                .ok_or(TelnyxError::MissingField("data.payload"))?;
            status(payload).map(TelnyxEvent::Status)
        }
        _ => Ok(TelnyxEvent::Other(event_type)),
    }
}

fn inbound(payload: Payload, our_number: &str) -> Result<InboundText, TelnyxError> {
    let message_id = non_empty(payload.id).ok_or(TelnyxError::MissingField("data.payload.id"))?;
    let from = payload
        .from
        .and_then(|from| non_empty(from.phone_number))
        .ok_or(TelnyxError::MissingField("data.payload.from.phone_number"))?;
    let from = parse_e164(&from).map_err(|source| TelnyxError::BadNumber {
        field: "data.payload.from.phone_number",
        source,
    })?;
    let to = payload
        .to
        .unwrap_or_default()
        .into_iter()
        .next()
        .and_then(|to| non_empty(to.phone_number))
        .ok_or(TelnyxError::MissingField("data.payload.to[0].phone_number"))?;
    let to = parse_e164(&to).map_err(|source| TelnyxError::BadNumber {
        field: "data.payload.to[0].phone_number",
        source,
    })?;
    if to != our_number {
        return Err(TelnyxError::NotOurNumber {
            to,
            ours: our_number.to_owned(),
        });
    }
    let num_media = payload
        .media
        .map_or(0, |media| u32::try_from(media.len()).unwrap_or(u32::MAX));
    Ok(InboundText {
        provider: PROVIDER,
        message_id,
        from,
        to,
        body: payload.text.unwrap_or_default(),
        num_media,
    })
}

fn status(payload: Payload) -> Result<StatusUpdate, TelnyxError> {
    let message_id = non_empty(payload.id).ok_or(TelnyxError::MissingField("data.payload.id"))?;
    let raw = payload
        .to
        .unwrap_or_default()
        .into_iter()
        .next()
        .and_then(|to| non_empty(to.status))
        .ok_or(TelnyxError::MissingField("data.payload.to[0].status"))?;
    let status = match raw.as_str() {
        "queued" => DeliveryState::Queued,
        "sending" => DeliveryState::Sending,
        // Telnyx could not get a delivery receipt from the carrier: it went out, that is all we know.
        "sent" | "delivery_unconfirmed" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "sending_failed" | "delivery_failed" => DeliveryState::Failed,
        _ => return Err(TelnyxError::UnknownStatus(raw)),
    };
    let error_code = payload
        .errors
        .unwrap_or_default()
        .into_iter()
        .next()
        .and_then(|error| error.code)
        .and_then(|code| match code {
            serde_json::Value::String(code) => Some(code),
            serde_json::Value::Number(code) => Some(code.to_string()),
            _ => None,
        })
        .filter(|code| !code.is_empty());
    Ok(StatusUpdate {
        message_id,
        status,
        error_code,
    })
}

fn verifying_key(public_key_b64: &str) -> Result<VerifyingKey, TelnyxError> {
    let bytes = BASE64
        .decode(public_key_b64.trim())
        .map_err(|e| TelnyxError::BadPublicKey(e.to_string()))?;
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| TelnyxError::BadPublicKey(format!("{} bytes instead of 32", bytes.len())))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| TelnyxError::BadPublicKey("not a valid ed25519 point".to_owned()))
}

/// `"{timestamp}|{body}"`, the bytes Telnyx signs.
fn signed_payload(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut payload = format!("{timestamp}|").into_bytes();
    payload.extend_from_slice(body);
    payload
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

#[derive(Deserialize)]
struct Webhook {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    event_type: Option<String>,
    payload: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    id: Option<String>,
    from: Option<Party>,
    to: Option<Vec<Party>>,
    text: Option<String>,
    media: Option<Vec<serde::de::IgnoredAny>>,
    errors: Option<Vec<ProviderError>>,
}

#[derive(Deserialize)]
struct Party {
    phone_number: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct ProviderError {
    code: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "+14155550100";
    const NOW: i64 = 1_700_000_000;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn public_b64(key: &SigningKey) -> String {
        BASE64.encode(key.verifying_key().to_bytes())
    }

    fn received(from: &str, to: &str) -> Vec<u8> {
        serde_json::json!({
            "data": {
                "event_type": "message.received",
                "id": "evt-1",
                "occurred_at": "2024-01-01T00:00:00Z",
                "record_type": "event",
                "payload": {
                    "id": "msg-123",
                    "direction": "inbound",
                    "from": {"phone_number": from, "carrier": "T-Mobile"},
                    "to": [{"phone_number": to, "status": "webhook_delivered"}],
                    "text": "YES please",
                    "media": [{"url": "https://example.com/a.jpg", "content_type": "image/jpeg"}, {"url": "https://example.com/b.jpg"}]
                }
            },
            "meta": {"attempt": 1}
        })
        .to_string()
        .into_bytes()
    }

    fn finalized(status: &str, errors: serde_json::Value) -> Vec<u8> {
        serde_json::json!({
            "data": {
                "event_type": "message.finalized",
                "payload": {
                    "id": "out-9",
                    "to": [{"phone_number": "+14155550111", "status": status}],
                    "errors": errors
                }
            }
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn valid_signature_accepted() {
        let key = key();
        let body = received("+14155550111", OURS);
        let sig = sign(&key, NOW, &body);
        verify(
            &public_b64(&key),
            Some(&NOW.to_string()),
            Some(&sig),
            &body,
            NOW,
        )
        .unwrap();
    }

    #[test]
    fn tampered_body_refused() {
        let key = key();
        let body = received("+14155550111", OURS);
        let sig = sign(&key, NOW, &body);
        let tampered = received("+14155550112", OURS);
        let err = verify(
            &public_b64(&key),
            Some(&NOW.to_string()),
            Some(&sig),
            &tampered,
            NOW,
        )
        .unwrap_err();
        assert!(matches!(err, TelnyxError::BadSignature), "{err}");
    }

    #[test]
    fn signature_from_another_key_refused() {
        let body = received("+14155550111", OURS);
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let sig = sign(&other, NOW, &body);
        let err = verify(
            &public_b64(&key()),
            Some(&NOW.to_string()),
            Some(&sig),
            &body,
            NOW,
        )
        .unwrap_err();
        assert!(matches!(err, TelnyxError::BadSignature), "{err}");
    }

    #[test]
    fn signature_over_another_timestamp_refused() {
        let key = key();
        let body = received("+14155550111", OURS);
        let sig = sign(&key, NOW - 1, &body);
        let err = verify(
            &public_b64(&key),
            Some(&NOW.to_string()),
            Some(&sig),
            &body,
            NOW,
        )
        .unwrap_err();
        assert!(matches!(err, TelnyxError::BadSignature), "{err}");
    }

    #[test]
    fn timestamp_tolerance() {
        let key = key();
        let public = public_b64(&key);
        let body = received("+14155550111", OURS);
        for (age, ok) in [
            (301, false),
            (299, true),
            (300, true),
            (-299, true),
            (-301, false),
        ] {
            let ts = NOW - age;
            let sig = sign(&key, ts, &body);
            let result = verify(&public, Some(&ts.to_string()), Some(&sig), &body, NOW);
            if ok {
                result.unwrap();
            } else {
                assert!(
                    matches!(result, Err(TelnyxError::StaleTimestamp { .. })),
                    "{age}: {result:?}"
                );
            }
        }
        let sig = sign(&key, i64::MIN, &body);
        let result = verify(
            &public,
            Some(&i64::MIN.to_string()),
            Some(&sig),
            &body,
            i64::MAX,
        );
        assert!(
            matches!(result, Err(TelnyxError::StaleTimestamp { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn missing_or_malformed_headers_refused() {
        let key = key();
        let public = public_b64(&key);
        let body = received("+14155550111", OURS);
        let sig = sign(&key, NOW, &body);
        let ts = NOW.to_string();
        assert!(matches!(
            verify(&public, None, Some(&sig), &body, NOW),
            Err(TelnyxError::MissingTimestamp)
        ));
        assert!(matches!(
            verify(&public, Some(&ts), None, &body, NOW),
            Err(TelnyxError::MissingSignature)
        ));
        assert!(matches!(
            verify(&public, Some("soon"), Some(&sig), &body, NOW),
            Err(TelnyxError::BadTimestamp(_))
        ));
        assert!(matches!(
            verify(&public, Some(&ts), Some("not base64!"), &body, NOW),
            Err(TelnyxError::BadSignatureEncoding(_))
        ));
        assert!(matches!(
            verify(
                &public,
                Some(&ts),
                Some(&BASE64.encode([1u8; 32])),
                &body,
                NOW
            ),
            Err(TelnyxError::BadSignatureEncoding(_))
        ));
        assert!(matches!(
            verify("not a key", Some(&ts), Some(&sig), &body, NOW),
            Err(TelnyxError::BadPublicKey(_))
        ));
        assert!(matches!(
            verify(&BASE64.encode([1u8; 31]), Some(&ts), Some(&sig), &body, NOW),
            Err(TelnyxError::BadPublicKey(_))
        ));
    }

    #[test]
    fn parses_received_message() {
        let event = parse(&received("+14155550111", OURS), OURS).unwrap();
        assert_eq!(
            event,
            TelnyxEvent::Inbound(InboundText {
                provider: "telnyx",
                message_id: "msg-123".to_owned(),
                from: "+14155550111".to_owned(),
                to: OURS.to_owned(),
                body: "YES please".to_owned(),
                num_media: 2,
            })
        );
    }

    #[test]
    fn received_message_without_text_or_media() {
        let body = serde_json::json!({"data": {"event_type": "message.received", "payload": {
            "id": "m", "from": {"phone_number": "+14155550111"}, "to": [{"phone_number": OURS}], "text": null
        }}});
        let TelnyxEvent::Inbound(text) = parse(body.to_string().as_bytes(), OURS).unwrap() else {
            panic!("not inbound");
        };
        assert_eq!(text.body, "");
        assert_eq!(text.num_media, 0);
    }

    #[test]
    fn to_another_number_refused() {
        let err = parse(&received("+14155550111", "+14155550199"), OURS).unwrap_err();
        assert!(
            matches!(err, TelnyxError::NotOurNumber { ref to, .. } if to == "+14155550199"),
            "{err}"
        );
    }

    #[test]
    fn bad_from_refused() {
        let err = parse(&received("tel:+14155550111", OURS), OURS).unwrap_err();
        assert!(
            matches!(
                err,
                TelnyxError::BadNumber {
                    field: "data.payload.from.phone_number",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("from"), "{err}");
        let err = parse(&received("+14155550111", "0100"), OURS).unwrap_err();
        assert!(
            matches!(
                err,
                TelnyxError::BadNumber {
                    field: "data.payload.to[0].phone_number",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn status_mapping() {
        for (raw, state) in [
            ("queued", DeliveryState::Queued),
            ("sending", DeliveryState::Sending),
            ("sent", DeliveryState::Sent),
            ("delivered", DeliveryState::Delivered),
            ("sending_failed", DeliveryState::Failed),
            ("delivery_failed", DeliveryState::Failed),
            ("delivery_unconfirmed", DeliveryState::Sent),
        ] {
            let event = parse(&finalized(raw, serde_json::json!([])), OURS).unwrap();
            assert_eq!(
                event,
                TelnyxEvent::Status(StatusUpdate {
                    message_id: "out-9".to_owned(),
                    status: state,
                    error_code: None
                }),
                "{raw}"
            );
        }
        let event = parse(
            &finalized(
                "delivery_failed",
                serde_json::json!([{"code": "40300", "title": "Blocked"}]),
            ),
            OURS,
        )
        .unwrap();
        let TelnyxEvent::Status(update) = event else {
            panic!("not a status")
        };
        assert_eq!(update.error_code.as_deref(), Some("40300"));
        let event = parse(
            &finalized("sending_failed", serde_json::json!([{"code": 40008}])),
            OURS,
        )
        .unwrap();
        let TelnyxEvent::Status(update) = event else {
            panic!("not a status")
        };
        assert_eq!(update.error_code.as_deref(), Some("40008"));

        let sent = serde_json::json!({"data": {"event_type": "message.sent", "payload": {
            "id": "out-9", "to": [{"phone_number": "+14155550111", "status": "sent"}]
        }}});
        let TelnyxEvent::Status(update) = parse(sent.to_string().as_bytes(), OURS).unwrap() else {
            panic!("not a status")
        };
        assert_eq!(update.status, DeliveryState::Sent);

        let err = parse(&finalized("teleported", serde_json::json!(null)), OURS).unwrap_err();
        assert!(
            matches!(err, TelnyxError::UnknownStatus(ref s) if s == "teleported"),
            "{err}"
        );
    }

    #[test]
    fn other_events_and_bad_bodies() {
        let body = br#"{"data": {"event_type": "number_order.complete", "payload": {"x": 1}}}"#;
        assert_eq!(
            parse(body, OURS).unwrap(),
            TelnyxEvent::Other("number_order.complete".to_owned())
        );
        assert!(matches!(
            parse(b"{\"data\": \xff}", OURS),
            Err(TelnyxError::NotUtf8(_))
        ));
        assert!(matches!(
            parse(b"not json", OURS),
            Err(TelnyxError::BadJson(_))
        ));
        assert!(matches!(
            parse(br#"{"data": {}}"#, OURS),
            Err(TelnyxError::MissingField("data.event_type"))
        ));
    }
}
