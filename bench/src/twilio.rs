//! The requests the load generator posts: inbound texts signed as Twilio signs its webhooks, and
//! the operator API's flow starts.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use smsflow::ingress::twilio::signature;

use crate::contacts::Block;
use crate::loadgen::Requests;

/// Where webhooks go and what signs them.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The URL the engine believes Twilio calls (`[server] public_url` + path): it is signed.
    pub signed_url: String,
    /// The path posted to.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// The account's auth token, which keys the signature.
    pub auth_token: String,
    /// `AccountSid`.
    pub account_sid: String,
    /// `To`: our number.
    pub to: String,
}

/// Inbound texts, one per number of `contacts`, all saying `body`.
#[derive(Debug, Clone)]
pub struct InboundTexts {
    /// The endpoint.
    pub webhook: Webhook,
    /// The senders: text `i` comes from `contacts.number(i)`.
    pub contacts: Block,
    /// The text.
    pub body: String,
    /// Makes `MessageSid` unique across phases (alphanumeric).
    pub tag: String,
}

/// The form fields Twilio posts for an inbound SMS.
pub fn inbound_params(
    sid: &str,
    account_sid: &str,
    from: &str,
    to: &str,
    body: &str,
) -> Vec<(String, String)> {
    [
        ("MessageSid", sid),
        ("AccountSid", account_sid),
        ("From", from),
        ("To", to),
        ("Body", body),
        ("NumMedia", "0"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// `application/x-www-form-urlencoded`, as Twilio sends it.
pub fn encode_form(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// A POST of `params` to `webhook`, signed with `X-Twilio-Signature`.
///
/// # Errors
///
/// When a header value is not valid HTTP (a host or path with control characters).
pub fn signed_post(
    webhook: &Webhook,
    params: &[(String, String)],
) -> anyhow::Result<Request<Full<Bytes>>> {
    let signature = signature(&webhook.signed_url, params, &webhook.auth_token);
    Ok(Request::post(webhook.path.as_str())
        .header(HOST, webhook.host.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Full::new(Bytes::from(encode_form(params))))?)
}

impl Requests for InboundTexts {
    fn request(&self, index: u64) -> anyhow::Result<Request<Full<Bytes>>> {
        let sid = format!("SM{}{index:016x}", self.tag);
        let from = self.contacts.number(index);
        let webhook = &self.webhook;
        let params = inbound_params(&sid, &webhook.account_sid, &from, &webhook.to, &self.body);
        signed_post(webhook, &params)
    }

    fn count(&self) -> u64 {
        self.contacts.len()
    }
}

/// `POST /v1/flows/{flow}/start` for every number of `contacts`.
#[derive(Debug, Clone)]
pub struct FlowStarts {
    /// `/v1/flows/{flow}/start`.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// `[server] api_token`.
    pub api_token: String,
    /// The contacts: start `i` texts `contacts.number(i)`.
    pub contacts: Block,
    /// The flow's fields.
    pub fields: serde_json::Value,
}

impl Requests for FlowStarts {
    fn request(&self, index: u64) -> anyhow::Result<Request<Full<Bytes>>> {
        let body = serde_json::json!({ "to": self.contacts.number(index), "fields": self.fields });
        Ok(Request::post(self.path.as_str())
            .header(HOST, self.host.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {}", self.api_token))
            .body(Full::new(Bytes::from(body.to_string())))?)
    }

    fn count(&self) -> u64 {
        self.contacts.len()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;
    use crate::contacts::Contacts;

    /// Twilio's documented example: <https://www.twilio.com/docs/usage/security>.
    #[test]
    fn the_signature_matches_twilios_test_vector() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        assert_eq!(
            signature(
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params,
                "12345"
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    fn texts() -> InboundTexts {
        InboundTexts {
            webhook: Webhook {
                signed_url: "https://sms.example.com/webhooks/twilio".to_owned(),
                path: "/webhooks/twilio".to_owned(),
                host: "127.0.0.1:1".to_owned(),
                auth_token: "token".to_owned(),
                account_sid: "ACx".to_owned(),
                to: "+15550001000".to_owned(),
            },
            contacts: Contacts::default().block(10).unwrap(),
            body: "Yes please!".to_owned(),
            tag: "a1".to_owned(),
        }
    }

    #[tokio::test]
    async fn each_text_is_signed_over_its_own_form_and_has_its_own_sid_and_sender() {
        let texts = texts();
        let request = texts.request(3).unwrap();
        let signed = request.headers()["x-twilio-signature"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let params = smsflow::ingress::twilio::parse_form(&body).unwrap();
        let field = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .unwrap()
                .1
                .clone()
        };
        assert_eq!(field("MessageSid"), "SMa10000000000000003");
        assert_eq!(field("From"), "+12122000003");
        assert_eq!(field("Body"), "Yes please!");
        assert_eq!(field("NumMedia"), "0");
        smsflow::ingress::twilio::verify(
            &texts.webhook.signed_url,
            &params,
            "token",
            Some(&signed),
        )
        .unwrap();
        assert_eq!(texts.count(), 10);
    }
}
