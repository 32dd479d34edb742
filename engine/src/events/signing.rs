//! Standard Webhooks (<https://www.standardwebhooks.com/>) signing for outbound event webhooks.
//!
//! Each request carries `webhook-id`, `webhook-timestamp` and `webhook-signature`; the signature
//! is `v1,` and the base64 HMAC-SHA256, under the operator's `whsec_` secret, of
//! `"{id}.{timestamp}.{body}"`. [`WebhookSecret::verify`] is the receiving side (for tests and for
//! operators checking their endpoint).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// How far (in seconds, either way) a webhook's timestamp may be from now before it is refused.
pub const TOLERANCE_SECS: i64 = 300;

/// The spec's suggested delays, in seconds, before each delivery attempt: immediately, 5 s,
/// 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const RETRY_SCHEDULE_SECS: [u64; 8] = [0, 5, 300, 1800, 7200, 18_000, 36_000, 36_000];

/// Why a secret was refused or a webhook failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The secret does not start with `whsec_`.
    #[error(
        "the webhook secret does not start with `whsec_` (write it as whsec_ and its base64 key)"
    )]
    MissingPrefix,
    /// The part after `whsec_` is not base64.
    #[error("the webhook secret after `whsec_` is not base64: {0}")]
    BadSecretEncoding(String),
    /// The secret decodes to no bytes.
    #[error("the webhook secret after `whsec_` is empty")]
    EmptySecret,
    /// The `webhook-timestamp` is not a whole number of seconds.
    #[error("the `webhook-timestamp` `{0}` is not a unix timestamp in whole seconds")]
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
    /// The `webhook-signature` header holds no `v1,` signature.
    #[error("the `webhook-signature` header holds no `v1,<base64>` signature")]
    NoV1Signature,
    /// None of the `v1` signatures matches the id, timestamp and body under this secret.
    #[error(
        "no `webhook-signature` entry matches the webhook's id, timestamp and body under this secret"
    )]
    BadSignature,
}

/// A Standard Webhooks signing secret (`whsec_<base64>`).
///
/// Its [`Debug`](std::fmt::Debug) output never shows the key.
#[derive(Clone)]
pub struct WebhookSecret {
    /// HMAC-SHA256 already keyed with the secret; cloned for each signature.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(whsec_<redacted>)")
    }
}

impl WebhookSecret {
    /// Reads a `whsec_<base64>` secret.
    ///
    /// # Errors
    ///
    /// [`SigningError::MissingPrefix`] without the `whsec_` prefix,
    /// [`SigningError::BadSecretEncoding`] when the rest is not base64, and
    /// [`SigningError::EmptySecret`] when it decodes to nothing.
    pub fn parse(secret: &str) -> Result<Self, SigningError> {
        let encoded = secret
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SigningError::MissingPrefix)?;
        let key = BASE64
            .decode(encoded)
            .map_err(|e| SigningError::BadSecretEncoding(e.to_string()))?;
        if key.is_empty() {
            return Err(SigningError::EmptySecret);
        }
        // HMAC takes keys of any length; this cannot fail, but is handled rather than unwrapped.
        let mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&key)
            .map_err(|e| SigningError::BadSecretEncoding(e.to_string()))?;
        Ok(Self { mac })
    }

    /// The `webhook-signature` value for a message: `v1,<base64 HMAC-SHA256>` of
    /// `"{msg_id}.{timestamp}.{body}"`.
    #[must_use]
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.keyed(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", BASE64.encode(tag))
    }

    /// The three headers for a message: `webhook-id`, `webhook-timestamp` and `webhook-signature`.
    #[must_use]
    pub fn headers(
        &self,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> [(&'static str, String); 3] {
        [
            ("webhook-id", msg_id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", self.sign(msg_id, timestamp, body)),
        ]
    }

    /// Checks a received webhook: `timestamp` and `signatures_header` are the raw
    /// `webhook-timestamp` and `webhook-signature` headers, `now` the current unix time.
    ///
    /// The signature header may hold several space-separated `v1,<base64>` entries (during a
    /// secret rotation); any one matching passes. Entries of other versions are skipped.
    /// Comparison is constant-time.
    ///
    /// # Errors
    ///
    /// [`SigningError::BadTimestamp`] when the timestamp is not an integer,
    /// [`SigningError::StaleTimestamp`] when it is more than [`TOLERANCE_SECS`] from `now`,
    /// [`SigningError::NoV1Signature`] when the header holds no `v1` entry, and
    /// [`SigningError::BadSignature`] when no `v1` entry matches.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures_header: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), SigningError> {
        let signed_at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| SigningError::BadTimestamp(timestamp.to_owned()))?;
        let fresh = now
            .checked_sub(signed_at)
            .is_some_and(|age| age.unsigned_abs() <= TOLERANCE_SECS.unsigned_abs());
        if !fresh {
            return Err(SigningError::StaleTimestamp {
                timestamp: signed_at,
                now,
            });
        }

        let mut any_v1 = false;
        for entry in signatures_header.split_ascii_whitespace() {
            let Some(("v1", encoded)) = entry.split_once(',') else {
                continue;
            };
            any_v1 = true;
            let Ok(candidate) = BASE64.decode(encoded) else {
                continue;
            };
            if self
                .keyed(msg_id, signed_at, body)
                .verify_slice(&candidate)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(if any_v1 {
            SigningError::BadSignature
        } else {
            SigningError::NoV1Signature
        })
    }

    /// The MAC fed with `"{msg_id}.{timestamp}.{body}"`, ready to finalize or verify.
    fn keyed(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const EXPECTED: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn secret() -> WebhookSecret {
        WebhookSecret::parse(SECRET).unwrap()
    }

    #[test]
    fn spec_test_vector() {
        assert_eq!(secret().sign(ID, TS, BODY), EXPECTED);
        secret()
            .verify(ID, &TS.to_string(), EXPECTED, BODY, TS)
            .unwrap();
    }

    #[test]
    fn headers_carry_id_timestamp_signature() {
        let headers = secret().headers(ID, TS, BODY);
        assert_eq!(
            headers,
            [
                ("webhook-id", ID.to_owned()),
                ("webhook-timestamp", "1649367553".to_owned()),
                ("webhook-signature", EXPECTED.to_owned()),
            ]
        );
    }

    #[test]
    fn secret_parsing() {
        assert_eq!(
            WebhookSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap_err(),
            SigningError::MissingPrefix
        );
        assert!(matches!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SigningError::BadSecretEncoding(_))
        ));
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            SigningError::EmptySecret
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", secret());
        assert!(!shown.contains("C2FVsBQIhrscChlQIMV"), "{shown}");
        assert!(!shown.contains("0b6155b0"), "{shown}");
    }

    #[test]
    fn verify_with_multiple_signatures() {
        let other = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let theirs = other.sign(ID, TS, BODY);
        let header = format!("v1a,ignoredAsymmetric= {theirs} v1,notbase64! {EXPECTED}");
        secret()
            .verify(ID, &TS.to_string(), &header, BODY, TS + 10)
            .unwrap();
        let header = format!("{EXPECTED}  {theirs}");
        secret()
            .verify(ID, &TS.to_string(), &header, BODY, TS)
            .unwrap();
        other
            .verify(ID, &TS.to_string(), &header, BODY, TS)
            .unwrap();
        assert_eq!(
            secret()
                .verify(ID, &TS.to_string(), &theirs, BODY, TS)
                .unwrap_err(),
            SigningError::BadSignature
        );
        assert_eq!(
            secret()
                .verify(ID, &TS.to_string(), "v1a,abc v2,def", BODY, TS)
                .unwrap_err(),
            SigningError::NoV1Signature
        );
        assert_eq!(
            secret()
                .verify(ID, &TS.to_string(), "", BODY, TS)
                .unwrap_err(),
            SigningError::NoV1Signature
        );
    }

    #[test]
    fn stale_timestamp_refused() {
        let ts = TS.to_string();
        secret().verify(ID, &ts, EXPECTED, BODY, TS + 300).unwrap();
        secret().verify(ID, &ts, EXPECTED, BODY, TS - 300).unwrap();
        for now in [TS + 301, TS - 301] {
            assert_eq!(
                secret().verify(ID, &ts, EXPECTED, BODY, now).unwrap_err(),
                SigningError::StaleTimestamp { timestamp: TS, now }
            );
        }
        assert_eq!(
            secret()
                .verify(ID, "yesterday", EXPECTED, BODY, TS)
                .unwrap_err(),
            SigningError::BadTimestamp("yesterday".to_owned())
        );
    }

    #[test]
    fn wrong_secret_or_tampering_refused() {
        let wrong = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let ts = TS.to_string();
        assert_eq!(
            wrong.verify(ID, &ts, EXPECTED, BODY, TS).unwrap_err(),
            SigningError::BadSignature
        );
        assert_eq!(
            secret()
                .verify("msg_other", &ts, EXPECTED, BODY, TS)
                .unwrap_err(),
            SigningError::BadSignature
        );
        assert_eq!(
            secret()
                .verify(ID, &ts, EXPECTED, b"{\"email\":\"evil@example.com\"}", TS)
                .unwrap_err(),
            SigningError::BadSignature
        );
    }

    #[test]
    fn retry_schedule_matches_spec() {
        assert_eq!(
            RETRY_SCHEDULE_SECS,
            [
                0,
                5,
                5 * 60,
                30 * 60,
                2 * 3600,
                5 * 3600,
                10 * 3600,
                10 * 3600
            ]
        );
    }
}
