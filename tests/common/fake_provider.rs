//! A loopback server that plays the SMS provider (Twilio's Messages API, and Telnyx's), the order
//! API the order-status plugin calls and the operator's event-webhook receiver; a test
//! directory whose `smsflow.toml` points `smsflow serve` at it; and the requests the tests make
//! to the server: signed Twilio webhooks and `/v1` calls with the API token.
//!
//! Each test file adds its own constructors and `serve` to [`Setup`] in an `impl Setup` block.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use smsflow::ingress::twilio;

use super::{free_port, repository};

pub const PUBLIC_URL: &str = "https://sms.example.com";
pub const AUTH_TOKEN: &str = "twilio-auth-token";
pub const ACCOUNT: &str = "ACtest";
pub const OURS: &str = "+15550001000";
pub const API_TOKEN: &str = "api-token";
pub const TELNYX_API_KEY: &str = "KEYtest";

/// A flow that looks order A100 up when a contact texts TRACK and replies with its status.
pub const TRACK_FLOW: &str = r#"
id = "track"
program = "orders"
kind = "transactional"
start = "lookup"

[triggers]
keywords = ["TRACK"]

[steps.lookup]
type = "connector"
plugin = "order-status"
operation = "lookup"
entity = "order"
key = "A100"
outputs = ["order_status_text"]
next = "answer"

[steps.answer]
type = "end"
text = "Your order {{order_status_text}}."
"#;

/// A text the fake provider was asked to send.
#[derive(Debug, Clone)]
pub struct Sent {
    pub to: String,
    pub from: String,
    pub body: String,
    pub status_callback: Option<String>,
    /// When the fake took it.
    pub at: jiff::Timestamp,
}

/// The provider, the order API and the event-webhook receiver, on one loopback server.
pub struct Fake {
    /// Every Twilio send request, accepted or not.
    pub attempts: Mutex<Vec<Sent>>,
    /// The texts it accepted.
    pub sent: Mutex<Vec<Sent>>,
    /// Answer this many Twilio sends with a 500 first.
    pub fail_next: AtomicU32,
    /// Numbers Twilio answers with error 21610 (the recipient replied STOP to the carrier).
    pub opted_out: Mutex<Vec<String>>,
    /// The order API holds its answers while this is set (a minute at most).
    pub stall_orders: AtomicBool,
    /// Requests the order API received.
    pub order_requests: AtomicU32,
    /// Event webhooks received: (webhook-id, webhook-timestamp, webhook-signature, body).
    pub events: Mutex<Vec<(String, String, String, String)>>,
    /// Requests for Twilio's message list (the outbox looking up interrupted sends).
    pub list_requests: AtomicU32,
    /// Once this many texts are accepted, later ones are recorded as sent but their answer is
    /// held while `hold_answers` is set: a crash of the server then leaves texts that Twilio has
    /// and the server does not know it sent.
    pub hold_answers_after: std::sync::atomic::AtomicUsize,
    /// See `hold_answers_after`.
    pub hold_answers: AtomicBool,
}

impl Default for Fake {
    fn default() -> Self {
        Self {
            attempts: Mutex::default(),
            sent: Mutex::default(),
            fail_next: AtomicU32::default(),
            opted_out: Mutex::default(),
            stall_orders: AtomicBool::default(),
            order_requests: AtomicU32::default(),
            events: Mutex::default(),
            list_requests: AtomicU32::default(),
            hold_answers_after: std::sync::atomic::AtomicUsize::new(usize::MAX),
            hold_answers: AtomicBool::default(),
        }
    }
}

impl Fake {
    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    pub fn sent_to(&self, to: &str) -> Vec<Sent> {
        self.sent()
            .into_iter()
            .filter(|sent| sent.to == to)
            .collect()
    }

    pub fn attempts_to(&self, to: &str) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|sent| sent.to == to)
            .count()
    }
}

async fn twilio_messages(
    State(fake): State<Arc<Fake>>,
    UrlPath(account): UrlPath<String>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let expected_auth = format!(
        "Basic {}",
        base64_encode(format!("{ACCOUNT}:{AUTH_TOKEN}").as_bytes())
    );
    if account != ACCOUNT
        || headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(expected_auth.as_str())
    {
        return (StatusCode::UNAUTHORIZED, r#"{"code": 20003}"#).into_response();
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let text = Sent {
        to: form["To"].clone(),
        from: form["From"].clone(),
        body: form["Body"].clone(),
        status_callback: form.get("StatusCallback").cloned(),
        at: jiff::Timestamp::now(),
    };
    fake.attempts.lock().unwrap().push(text.clone());
    if fake
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "{}").into_response();
    }
    if fake.opted_out.lock().unwrap().contains(&text.to) {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"code": 21610, "message": "Attempt to send to unsubscribed recipient"}"#,
        )
            .into_response();
    }
    let count = {
        let mut sent = fake.sent.lock().unwrap();
        sent.push(text);
        sent.len()
    };
    if count > fake.hold_answers_after.load(Ordering::SeqCst) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while fake.hold_answers.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let sid = format!("SM{count:032}");
    (
        StatusCode::CREATED,
        format!(r#"{{"sid": "{sid}", "status": "queued"}}"#),
    )
        .into_response()
}

/// Twilio's message list, filtered by `To` and `From` as the outbox's reconciliation asks.
async fn twilio_list(
    State(fake): State<Arc<Fake>>,
    UrlPath(account): UrlPath<String>,
    axum::extract::Query(query): axum::extract::Query<BTreeMap<String, String>>,
) -> axum::response::Response {
    if account != ACCOUNT {
        return (StatusCode::UNAUTHORIZED, r#"{"code": 20003}"#).into_response();
    }
    fake.list_requests.fetch_add(1, Ordering::SeqCst);
    let messages: Vec<Value> = fake
        .sent()
        .iter()
        .enumerate()
        .filter(|(_, sent)| {
            Some(&sent.to) == query.get("To") && Some(&sent.from) == query.get("From")
        })
        .map(|(index, sent)| {
            let created = sent.at.to_zoned(jiff::tz::TimeZone::UTC);
            json!({
                "sid": format!("SM{:032}", index + 1),
                "to": sent.to,
                "from": sent.from,
                "body": sent.body,
                "date_created": jiff::fmt::rfc2822::to_string(&created).unwrap(),
            })
        })
        .collect();
    (StatusCode::OK, json!({ "messages": messages }).to_string()).into_response()
}

async fn telnyx_messages(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TELNYX_API_KEY}"))
    {
        return (StatusCode::UNAUTHORIZED, "{}").into_response();
    }
    let request: Value = serde_json::from_str(&body).unwrap();
    let mut sent = fake.sent.lock().unwrap();
    sent.push(Sent {
        to: request["to"].as_str().unwrap().to_owned(),
        from: request["from"].as_str().unwrap().to_owned(),
        body: request["text"].as_str().unwrap().to_owned(),
        status_callback: request["webhook_url"].as_str().map(str::to_owned),
        at: jiff::Timestamp::now(),
    });
    let id = format!("40317{:08}", sent.len());
    (StatusCode::OK, format!(r#"{{"data": {{"id": "{id}"}}}}"#)).into_response()
}

/// The order API the order-status plugin calls: answers once `stall_orders` is cleared.
async fn order(
    State(fake): State<Arc<Fake>>,
    UrlPath(id): UrlPath<String>,
) -> axum::response::Response {
    fake.order_requests.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.stall_orders.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (
        StatusCode::OK,
        format!(r#"{{"id": "{id}", "status": "shipped", "eta": "Friday"}}"#),
    )
        .into_response()
}

async fn event(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    fake.events.lock().unwrap().push((
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        body,
    ));
    StatusCode::NO_CONTENT
}

pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Serves `fake` on a loopback port; returns its base URL.
async fn start_fake(fake: Arc<Fake>) -> String {
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            axum::routing::post(twilio_messages).get(twilio_list),
        )
        .route("/orders/{id}", axum::routing::get(order))
        .route("/events", axum::routing::post(event))
        .route("/v2/messages", axum::routing::post(telnyx_messages))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// `[provider]` lines for Twilio with the credentials the fake expects.
pub fn twilio_provider() -> String {
    format!(
        r#"kind = "twilio"
account_sid = "{ACCOUNT}"
auth_token = "{AUTH_TOKEN}""#
    )
}

/// A test directory for `smsflow serve`, its port and the fake provider it sends through.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub fake: Arc<Fake>,
    /// The fake's base URL.
    pub fake_url: String,
}

impl Setup {
    /// Starts a fake provider and makes a directory whose `flows/` holds the example flows named
    /// in `examples` and the `custom` ones (file name, TOML). Its configuration is for
    /// [`Setup::write_config`] to write.
    pub async fn with_fake(examples: &[&str], custom: &[(&str, &str)]) -> Self {
        let fake = Arc::new(Fake::default());
        let fake_url = start_fake(Arc::clone(&fake)).await;
        let dir = tempfile::tempdir().unwrap();
        let flows = dir.path().join("flows");
        std::fs::create_dir(&flows).unwrap();
        for flow in examples {
            std::fs::copy(repository().join("flows").join(flow), flows.join(flow)).unwrap();
        }
        for (name, text) in custom {
            std::fs::write(flows.join(name), text).unwrap();
        }
        Self {
            dir,
            port: free_port(),
            fake,
            fake_url,
        }
    }

    /// Writes `smsflow.toml`: the server on [`Setup::port`] at [`PUBLIC_URL`] with
    /// [`API_TOKEN`], the store and the flows in the directory, `provider` (its kind and
    /// credentials) sending from [`OURS`] through the fake, `workers` inbox lanes, then `rest`.
    pub fn write_config(&self, provider: &str, workers: usize, rest: &str) {
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{PUBLIC_URL}"
api_token = "{API_TOKEN}"

[store]
path = "data/smsflow.db"

[flows]
dir = "flows"

[provider]
{provider}
from = "{OURS}"
api_base = "{fake_url}"
messages_per_second = 1000

[inbox]
workers = {workers}
{rest}"#,
            port = self.port,
            fake_url = self.fake_url,
        );
        std::fs::write(self.config(), config).unwrap();
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("smsflow.toml")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The form fields of an inbound Twilio text from `from` to [`OURS`].
pub fn inbound_params(sid: &str, from: &str, body: &str) -> Vec<(String, String)> {
    [
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT),
        ("From", from),
        ("To", OURS),
        ("Body", body),
        ("NumMedia", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn encode(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// Posts `body` to `path` with a signature computed for `signed_url` (none when `None`).
pub async fn post_signed(
    setup: &Setup,
    path: &str,
    params: &[(String, String)],
    body: Vec<u8>,
    signed_url: Option<&str>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(setup.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(url) = signed_url {
        request = request.header(
            "x-twilio-signature",
            twilio::signature(url, params, AUTH_TOKEN),
        );
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Posts an inbound text as Twilio would, signed; the status code and the answer.
pub async fn post_inbound(setup: &Setup, sid: &str, from: &str, text: &str) -> (u16, String) {
    let params = inbound_params(sid, from, text);
    let url = format!("{PUBLIC_URL}/webhooks/twilio");
    post_signed(
        setup,
        "/webhooks/twilio",
        &params,
        encode(&params).into_bytes(),
        Some(&url),
    )
    .await
}

/// Posts a Twilio status callback for `sid` (`delivered`, `undelivered`, ...), signed; the status
/// code and the answer.
pub async fn post_status(setup: &Setup, sid: &str, status: &str) -> (u16, String) {
    let params: Vec<(String, String)> = [("MessageSid", sid), ("MessageStatus", status)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let url = format!("{PUBLIC_URL}/webhooks/twilio/status");
    post_signed(
        setup,
        "/webhooks/twilio/status",
        &params,
        encode(&params).into_bytes(),
        Some(&url),
    )
    .await
}

pub async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `/v1` call with `token` (none when `None`); the status and the JSON answer.
pub async fn api(
    setup: &Setup,
    method: &str,
    path: &str,
    body: Option<String>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method.parse().unwrap(), setup.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

/// [`api`] with the API token.
pub async fn api_with_token(
    setup: &Setup,
    method: &str,
    path: &str,
    body: Option<String>,
) -> (u16, Value) {
    api(setup, method, path, body, Some(API_TOKEN)).await
}

/// `GET /v1/conversations/{phone}`.
pub async fn conversation(setup: &Setup, phone: &str) -> (u16, Value) {
    let path = format!("/v1/conversations/{phone}");
    api_with_token(setup, "GET", &path, None).await
}

/// `POST /v1/flows/{flow}/start` for `to` with `fields`.
pub async fn start_flow(setup: &Setup, flow: &str, to: &str, fields: Value) -> (u16, Value) {
    let path = format!("/v1/flows/{flow}/start");
    let body = json!({ "to": to, "fields": fields });
    api_with_token(setup, "POST", &path, Some(body.to_string())).await
}
