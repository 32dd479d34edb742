//! Outbound event webhooks against a local HTTP receiver: signed Standard Webhooks requests,
//! subscriptions, retries with a stable `webhook-id`, dead letters and replay, redirects not
//! followed, and queued events surviving a reopen of the store.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use smsflow::clock::{Clock as _, ManualClock, SharedClock, SystemClock};
use smsflow::events::signing::WebhookSecret;
use smsflow::events::{Event, Events, WebhookEndpoint};
use smsflow::store::Store;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` header"))
            .to_str()
            .unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Checks the Standard Webhooks signature as an operator's endpoint would.
    fn verify(&self, now_secs: i64) {
        WebhookSecret::parse(SECRET)
            .unwrap()
            .verify(
                self.header("webhook-id"),
                self.header("webhook-timestamp"),
                self.header("webhook-signature"),
                &self.body,
                now_secs,
            )
            .unwrap();
    }
}

/// A receiver that records every request and answers `fail_status` to the first `fail_first`.
struct Receiver {
    base: String,
    fail_first: AtomicU32,
    fail_status: StatusCode,
    requests: Mutex<Vec<Received>>,
}

impl Receiver {
    async fn start(fail_first: u32) -> Arc<Self> {
        Self::start_with(fail_first, StatusCode::INTERNAL_SERVER_ERROR).await
    }

    async fn start_with(fail_first: u32, fail_status: StatusCode) -> Arc<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Arc::new(Self {
            base: format!("http://{}", listener.local_addr().unwrap()),
            fail_first: AtomicU32::new(fail_first),
            fail_status,
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&receiver));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }
}

async fn record(
    State(receiver): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut requests = receiver.requests.lock().unwrap();
    let failing =
        u32::try_from(requests.len()).unwrap() < receiver.fail_first.load(Ordering::SeqCst);
    requests.push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    });
    if failing {
        (
            receiver.fail_status,
            [(header::LOCATION, "/elsewhere")],
            "receiver says no",
        )
            .into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

fn endpoint(url: String, events: &[&str]) -> WebhookEndpoint {
    WebhookEndpoint {
        url,
        secret: SECRET.to_owned(),
        events: events.iter().map(|&kind| kind.parse().unwrap()).collect(),
    }
}

fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn now_secs() -> i64 {
    SystemClock.now_ms() / 1000
}

async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn body_is_type_timestamp_data() {
    let event = Event {
        kind: smsflow::events::EventKind::Conversion,
        data: json!({"contact": "+12125550100", "value": 3}),
        at_ms: 1_700_000_000_123,
    };
    assert_eq!(
        event.to_body().unwrap(),
        r#"{"type":"conversion","timestamp":"2023-11-14T22:13:20.123Z","data":{"contact":"+12125550100","value":3}}"#
    );
    let far = Event {
        at_ms: i64::MAX,
        ..event
    };
    assert!(far.to_body().unwrap().contains("9999-12-31T23:59:59.999Z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_is_posted_once_and_signed() {
    let receiver = Receiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let events = Arc::new(
        Events::new(
            &store,
            vec![endpoint(receiver.url("/hooks"), &[])],
            system_clock(),
        )
        .unwrap(),
    );
    let data =
        json!({"contact": "+12125550100", "queue": "support", "reason": "asked for a human"});
    events
        .emit("conversation.handoff".parse().unwrap(), data.clone())
        .unwrap();
    store.flush().await.unwrap();
    let queued = events.pending().unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].msg_id, format!("msg_{}", queued[0].seq));
    assert_eq!(queued[0].kind, "conversation.handoff");

    let worker = tokio::spawn(Arc::clone(&events).run());
    wait_until("the delivery", || {
        !receiver.requests().is_empty() && events.pending().unwrap().is_empty()
    })
    .await;
    // Nothing else arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.abort();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/hooks");
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("webhook-id"), queued[0].msg_id);
    request.verify(now_secs());
    assert_eq!(request.body, queued[0].body.as_bytes());
    let body = request.json();
    assert_eq!(body["type"], "conversation.handoff");
    assert_eq!(body["data"], data);
    let at = humantime::parse_rfc3339(body["timestamp"].as_str().unwrap()).unwrap();
    let age = SystemTime::now().duration_since(at).unwrap();
    assert!(age < Duration::from_secs(60), "timestamp {age:?} old");
    assert!(events.pending().unwrap().is_empty());
    assert!(events.dead_letters().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_get_only_the_kinds_they_subscribe_to() {
    let receiver = Receiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let events = Events::new(
        &store,
        vec![
            endpoint(receiver.url("/opt-outs"), &["contact.opted_out"]),
            endpoint(receiver.url("/everything"), &[]),
        ],
        system_clock(),
    )
    .unwrap();

    events
        .emit(
            "message.received".parse().unwrap(),
            json!({"from": "+12125550100", "body": "hi"}),
        )
        .unwrap();
    let queued = events.pending().unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].url, receiver.url("/everything"));
    assert_eq!(events.deliver_due().await.unwrap(), 1);
    let paths: Vec<String> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/everything"]);

    events
        .emit(
            "contact.opted_out".parse().unwrap(),
            json!({"contact": "+12125550100"}),
        )
        .unwrap();
    assert_eq!(events.pending().unwrap().len(), 2);
    assert_eq!(events.deliver_due().await.unwrap(), 2);
    let requests = receiver.requests();
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/everything", "/everything", "/opt-outs"]);
    let opt_outs: Vec<&Received> = requests.iter().skip(1).collect();
    assert!(
        opt_outs
            .iter()
            .all(|r| r.json()["type"] == "contact.opted_out"),
        "{opt_outs:?}"
    );
    assert_ne!(
        opt_outs[0].header("webhook-id"),
        opt_outs[1].header("webhook-id"),
        "each endpoint's delivery has its own id"
    );
    assert!(events.pending().unwrap().is_empty());

    // An event nobody subscribes to writes nothing.
    let picky = Events::new(
        &store,
        vec![endpoint(receiver.url("/opt-outs"), &["contact.opted_out"])],
        system_clock(),
    )
    .unwrap();
    picky
        .emit("message.status".parse().unwrap(), json!({}))
        .unwrap();
    assert!(picky.pending().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_keep_the_webhook_id() {
    let receiver = Receiver::start(2).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let events = Arc::new(
        Events::new(
            &store,
            vec![endpoint(receiver.url("/hooks"), &[])],
            system_clock(),
        )
        .unwrap()
        .with_retry_schedule(vec![0, 50, 50, 50]),
    );
    let worker = tokio::spawn(Arc::clone(&events).run());
    events
        .emit(
            "message.received".parse().unwrap(),
            json!({"from": "+12125550100"}),
        )
        .unwrap();
    wait_until("three attempts", || {
        receiver.requests().len() >= 3 && events.pending().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.abort();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "two failures, then delivered once");
    let id = requests[0].header("webhook-id");
    for request in &requests {
        assert_eq!(request.header("webhook-id"), id);
        assert_eq!(request.body, requests[0].body);
        request.verify(now_secs());
    }
    for pair in requests.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(45), "retried after {gap:?}");
    }
    assert!(events.dead_letters().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_schedule_dead_letters_then_replay() {
    let receiver = Receiver::start(u32::MAX).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let start_ms = 1_800_000_000_000;
    let clock = Arc::new(ManualClock::new(start_ms));
    let events = Events::new(
        &store,
        vec![endpoint(receiver.url("/hooks"), &[])],
        Arc::clone(&clock) as SharedClock,
    )
    .unwrap()
    .with_retry_schedule(vec![0, 1_000, 2_000]);
    events
        .emit(
            "conversion".parse().unwrap(),
            json!({"contact": "+12125550100"}),
        )
        .unwrap();

    assert_eq!(events.deliver_due().await.unwrap(), 0);
    let pending = events.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(pending[0].next_attempt_ms, start_ms + 1_000);
    assert_eq!(pending[0].last_attempt_ms, Some(start_ms));
    let error = pending[0].last_error.as_deref().unwrap();
    assert!(
        error.contains("500") && error.contains("receiver says no"),
        "{error}"
    );

    // Not due yet: nothing is posted.
    clock.advance(999);
    assert_eq!(events.deliver_due().await.unwrap(), 0);
    assert_eq!(receiver.requests().len(), 1);

    clock.advance(1);
    assert_eq!(events.deliver_due().await.unwrap(), 0);
    assert_eq!(receiver.requests().len(), 2);
    assert_eq!(events.pending().unwrap()[0].attempts, 2);

    clock.advance(2_000);
    assert_eq!(events.deliver_due().await.unwrap(), 0);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    assert!(events.pending().unwrap().is_empty());
    let dead = events.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].msg_id, pending[0].msg_id);
    assert!(dead[0].last_error.as_deref().unwrap().contains("500"));
    // Every attempt carried the clock's time and a valid signature.
    let mut expected_secs = [start_ms, start_ms + 1_000, start_ms + 3_000].map(|ms| ms / 1000);
    for (request, secs) in requests.iter().zip(&mut expected_secs) {
        assert_eq!(request.header("webhook-timestamp"), secs.to_string());
        assert_eq!(request.header("webhook-id"), dead[0].msg_id);
        request.verify(*secs);
    }

    // A dead letter is not tried again.
    clock.advance(60_000);
    assert_eq!(events.deliver_due().await.unwrap(), 0);
    assert_eq!(receiver.requests().len(), 3);

    // Replayed once the receiver is fixed, it goes through with its original id.
    receiver.fail_first.store(0, Ordering::SeqCst);
    assert_eq!(events.replay(Some(dead[0].seq + 1)).unwrap(), 0);
    assert_eq!(events.replay(None).unwrap(), 1);
    assert!(events.dead_letters().unwrap().is_empty());
    assert_eq!(events.pending().unwrap()[0].attempts, 0);
    assert_eq!(events.deliver_due().await.unwrap(), 1);
    let last = receiver.requests().pop().unwrap();
    assert_eq!(last.header("webhook-id"), dead[0].msg_id);
    assert!(events.pending().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_failures_not_followed() {
    let receiver = Receiver::start_with(1, StatusCode::TEMPORARY_REDIRECT).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let events = Events::new(
        &store,
        vec![endpoint(receiver.url("/hooks"), &[])],
        system_clock(),
    )
    .unwrap()
    .with_retry_schedule(vec![0, 0]);
    events
        .emit(
            "message.status".parse().unwrap(),
            json!({"status": "delivered"}),
        )
        .unwrap();
    assert_eq!(events.deliver_due().await.unwrap(), 0);
    let paths: Vec<String> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hooks"], "the redirect was not followed");
    let error = events.pending().unwrap()[0].last_error.clone().unwrap();
    assert!(error.contains("307"), "{error}");
    assert_eq!(events.deliver_due().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_records_the_network_error() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hooks", listener.local_addr().unwrap())
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let events = Events::new(&store, vec![endpoint(closed, &[])], system_clock())
        .unwrap()
        .with_retry_schedule(vec![0]);
    events
        .emit("message.received".parse().unwrap(), json!({}))
        .unwrap();
    assert_eq!(events.deliver_due().await.unwrap(), 0);
    assert!(events.pending().unwrap().is_empty());
    let dead = events.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1);
    assert!(!dead[0].last_error.as_deref().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_survive_a_reopen() {
    let receiver = Receiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let endpoints = vec![endpoint(receiver.url("/hooks"), &[])];
    let msg_id = {
        let store = Store::open(&path).unwrap();
        let events = Events::new(&store, endpoints.clone(), system_clock()).unwrap();
        events
            .emit(
                "contact.opted_out".parse().unwrap(),
                json!({"contact": "+12125550100"}),
            )
            .unwrap();
        store.flush().await.unwrap();
        events.pending().unwrap()[0].msg_id.clone()
    };
    assert!(receiver.requests().is_empty());

    let store = Store::open(&path).unwrap();
    let events = Events::new(&store, endpoints, system_clock()).unwrap();
    let pending = events.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].msg_id, msg_id);
    assert_eq!(events.deliver_due().await.unwrap(), 1);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("webhook-id"), msg_id);
    requests[0].verify(now_secs());
    assert_eq!(requests[0].json()["type"], "contact.opted_out");
    assert!(events.pending().unwrap().is_empty());
}

#[test]
fn bad_endpoints_are_refused_by_url() {
    let store = Store::temporary().unwrap();
    let bad_secret = WebhookEndpoint {
        url: "https://crm.example.com/hooks".to_owned(),
        secret: "not-a-secret".to_owned(),
        events: Vec::new(),
    };
    let error = Events::new(&store, vec![bad_secret], system_clock()).unwrap_err();
    let shown = format!("{error:#}");
    assert!(shown.contains("https://crm.example.com/hooks"), "{shown}");
    assert!(shown.contains("whsec_"), "{shown}");

    let bad_url = endpoint("ftp://crm.example.com/hooks".to_owned(), &[]);
    let error = Events::new(&store, vec![bad_url], system_clock()).unwrap_err();
    assert!(format!("{error:#}").contains("ftp://crm.example.com/hooks"));

    let events = Events::new(
        &store,
        vec![endpoint("https://crm.example.com/hooks".to_owned(), &[])],
        system_clock(),
    )
    .unwrap();
    let shown = format!("{events:?}");
    assert!(shown.contains("crm.example.com"), "{shown}");
    assert!(!shown.contains("C2FVsBQIhrscChlQIMV"), "{shown}");
}
