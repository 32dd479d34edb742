//! The provider failing in each of the ways providers fail, on a simulated clock: down for an
//! hour, throttling with `Retry-After`, cutting its answer short after taking the text, and
//! refusing until the texts run out of attempts. The engine is the real one with the real
//! Twilio client, over HTTP on loopback to a local server that speaks Twilio's Messages API;
//! only time is simulated, so an hour passes in a second.
//!
//! What must hold: nothing acknowledged is lost, no text is sent twice, retries are bounded and
//! back off, a throttled sender waits as long as it was told, and texts that did run out of
//! attempts are listed and can be queued again, through the gate again.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use smsflow::clock::Clock as _;
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::outbound::twilio::TwilioProvider;
use smsflow::sms::InboundText;
use smsflow::store::Store;
use smsflow::testing::{self, ManualClock};
use tower::ServiceExt as _;

/// Tuesday 3 March 2026, 10:00 in New York.
const T0: i64 = 1_772_550_000_000;
const MINUTE: i64 = 60_000;
const OURS: &str = "+15550001000";
const TOKEN: &str = "operator-token";

/// How the fake Twilio answers a send.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Up,
    /// 500 to every send.
    Down,
    /// 429 with `Retry-After: <s>` until the simulated time `until_ms`.
    Throttling {
        retry_after_s: u32,
        until_ms: i64,
    },
    /// Takes the next text, then breaks off its answer after the headers.
    CutShort,
}

/// A send request: when (on the simulated clock), to whom, and whether it was taken.
#[derive(Debug, Clone)]
struct Request_ {
    at_ms: i64,
    to: String,
    taken: bool,
}

struct FakeTwilio {
    clock: Arc<ManualClock>,
    mode: Mutex<Mode>,
    requests: Mutex<Vec<Request_>>,
    /// Texts taken: (sid, to, body, when).
    taken: Mutex<Vec<(String, String, String, i64)>>,
}

impl FakeTwilio {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> Vec<Request_> {
        self.requests.lock().unwrap().clone()
    }

    fn taken_to(&self, to: &str) -> usize {
        let taken = self.taken.lock().unwrap();
        taken
            .iter()
            .filter(|(_, number, _, _)| number == to)
            .count()
    }

    fn take(&self, to: &str, body: &str) -> String {
        let mut taken = self.taken.lock().unwrap();
        let sid = format!("SM{:032}", taken.len() + 1);
        let now = self.clock.now_ms();
        taken.push((sid.clone(), to.to_owned(), body.to_owned(), now));
        sid
    }
}

async fn send(State(fake): State<Arc<FakeTwilio>>, body: String) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let (to, text) = (form["To"].clone(), form["Body"].clone());
    let now = fake.clock.now_ms();
    let mode = *fake.mode.lock().unwrap();
    let mut request = Request_ {
        at_ms: now,
        to: to.clone(),
        taken: false,
    };
    let answer = match mode {
        Mode::Down => (StatusCode::INTERNAL_SERVER_ERROR, "{}").into_response(),
        Mode::Throttling {
            retry_after_s,
            until_ms,
        } if now < until_ms => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_s.to_string())],
            r#"{"code": 20429, "message": "Too Many Requests"}"#,
        )
            .into_response(),
        Mode::CutShort => {
            request.taken = true;
            fake.take(&to, &text);
            fake.set(Mode::Up);
            let broken = futures_util::stream::once(async {
                Err::<axum::body::Bytes, _>(std::io::Error::other("connection reset"))
            });
            (StatusCode::CREATED, Body::from_stream(broken)).into_response()
        }
        Mode::Up | Mode::Throttling { .. } => {
            request.taken = true;
            let sid = fake.take(&to, &text);
            (
                StatusCode::CREATED,
                format!(r#"{{"sid": "{sid}", "status": "queued"}}"#),
            )
                .into_response()
        }
    };
    fake.requests.lock().unwrap().push(request);
    answer
}

/// Twilio's message list, filtered by `To` (the outbox's lookup of an interrupted send).
async fn list(
    State(fake): State<Arc<FakeTwilio>>,
    axum::extract::Query(query): axum::extract::Query<BTreeMap<String, String>>,
) -> Response {
    let taken = fake.taken.lock().unwrap();
    let messages: Vec<Value> = taken
        .iter()
        .filter(|(_, to, _, _)| Some(to) == query.get("To"))
        .map(|(sid, to, body, at_ms)| {
            let created = jiff::Timestamp::from_millisecond(*at_ms).unwrap();
            let created =
                jiff::fmt::rfc2822::to_string(&created.to_zoned(jiff::tz::TimeZone::UTC)).unwrap();
            json!({"sid": sid, "to": to, "body": body, "date_created": created})
        })
        .collect();
    axum::Json(json!({ "messages": messages })).into_response()
}

async fn fake_twilio(clock: Arc<ManualClock>) -> (Arc<FakeTwilio>, String) {
    let fake = Arc::new(FakeTwilio {
        clock,
        mode: Mutex::new(Mode::Up),
        requests: Mutex::default(),
        taken: Mutex::default(),
    });
    let router = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            axum::routing::post(send).get(list),
        )
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (fake, url)
}

struct Harness {
    engine: Engine,
    app: axum::Router,
    clock: Arc<ManualClock>,
    fake: Arc<FakeTwilio>,
    _dir: tempfile::TempDir,
}

async fn harness(max_attempts: u32) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (fake, url) = fake_twilio(Arc::clone(&clock)).await;
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("ping.toml"), testing::PING_FLOW).unwrap();
    let mut config = testing::config();
    config.flows.dir = flows;
    config.provider.from = OURS.to_owned();
    config.provider.max_attempts = max_attempts;
    config.server.api_token = Some(TOKEN.to_owned());
    let provider = TwilioProvider::new(&url, "AC1", "twilio-token", None).unwrap();
    let engine = EngineBuilder::from_config(&config)
        .store(Store::open(&dir.path().join("db")).unwrap())
        .clock(Arc::clone(&clock) as _)
        .provider(Arc::new(provider))
        .build()
        .await
        .unwrap();
    let state = smsflow::server::AppState::new(&engine, &config).unwrap();
    let app = smsflow::server::router(Arc::new(state));
    Harness {
        engine,
        app,
        clock,
        fake,
        _dir: dir,
    }
}

fn phone(i: usize) -> String {
    format!("+1212555{i:04}")
}

impl Harness {
    /// `n` contacts text PING (acknowledged, processed): `n` replies are queued.
    async fn pings(&self, n: usize) {
        for i in 0..n {
            self.text(i, "PING").await;
        }
    }

    async fn text(&self, i: usize, body: &str) {
        let now = self.clock.now_ms();
        let inbound = InboundText {
            provider: "twilio",
            message_id: format!("SM{i:04}{now}"),
            from: phone(i),
            to: OURS.to_owned(),
            body: body.to_owned(),
            num_media: 0,
        };
        self.engine.ingest().accept(inbound).await.unwrap();
        self.engine.process_inbox().await.unwrap();
    }

    /// Outbox passes on the simulated clock until `until_ms`, jumping to each next due time.
    async fn run_until(&self, until_ms: i64) {
        let due = &self.engine.store().tables().outbox_due;
        loop {
            self.engine.outbox().deliver_due().await.unwrap();
            let next = due.next_due().unwrap().unwrap_or(i64::MAX);
            let now = self.clock.now_ms();
            if next.max(now + 1) > until_ms {
                self.clock.set(until_ms.max(now));
                return;
            }
            self.clock.set(next.max(now + 1));
        }
    }

    async fn api(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(if body.is_null() {
                Body::empty()
            } else {
                Body::from(body.to_string())
            })
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The state of the first text to contact `i`.
    async fn reply_state(&self, i: usize) -> String {
        let (_, conversation) = self
            .api(
                "GET",
                &format!("/v1/conversations/{}", phone(i)),
                Value::Null,
            )
            .await;
        conversation["messages"][0]["status"]["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_hour_long_outage_loses_no_text_and_the_retries_back_off() {
    let harness = harness(24).await;
    harness.fake.set(Mode::Down);
    harness.pings(20).await;
    harness.run_until(T0 + 60 * MINUTE).await;
    let during = harness.fake.requests();
    for i in 0..20 {
        let times: Vec<i64> = during
            .iter()
            .filter(|request| request.to == phone(i))
            .map(|request| request.at_ms)
            .collect();
        // 1 s, 2 s, ... doubling to 5 minutes: 8 attempts in the first 4¼ minutes, then one
        // every 5 minutes.
        assert!((18..=20).contains(&times.len()), "{i}: {times:?}");
        let gaps: Vec<i64> = times.windows(2).map(|pair| pair[1] - pair[0]).collect();
        assert!(gaps[0] >= 1_000, "{gaps:?}");
        assert!(gaps.windows(2).all(|pair| pair[1] >= pair[0]), "{gaps:?}");
        assert!(gaps.iter().all(|gap| *gap <= 5 * MINUTE), "{gaps:?}");
        assert_eq!(harness.reply_state(i).await, "queued");
    }
    assert!(during.iter().all(|request| !request.taken));

    harness.fake.set(Mode::Up);
    harness.run_until(T0 + 70 * MINUTE).await;
    for i in 0..20 {
        assert_eq!(harness.fake.taken_to(&phone(i)), 1, "{i}: exactly once");
        assert_eq!(harness.reply_state(i).await, "sent");
    }
    let (_, failed) = harness.api("GET", "/v1/outbox/failed", Value::Null).await;
    assert_eq!(failed["failed"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_holds_the_whole_sender_back_for_as_long_as_it_says() {
    let harness = harness(24).await;
    harness.fake.set(Mode::Throttling {
        retry_after_s: 120,
        until_ms: T0 + 90_000,
    });
    harness.pings(5).await;
    harness.engine.outbox().deliver_due().await.unwrap();
    let first = harness.fake.requests().len();
    assert!((1..=5).contains(&first), "{first}");
    // A sixth contact's reply, queued during the pause, waits with the others.
    harness.clock.advance(30_000);
    harness.text(5, "PING").await;
    harness.run_until(T0 + 119_000).await;
    assert_eq!(
        harness.fake.requests().len(),
        first,
        "no request inside the 120 s the provider asked for"
    );
    harness.run_until(T0 + 125_000).await;
    let requests = harness.fake.requests();
    let after: Vec<&Request_> = requests[first..].iter().collect();
    assert!(
        after
            .iter()
            .all(|request| request.at_ms >= T0 + 120_000 && request.taken)
    );
    for i in 0..6 {
        assert_eq!(harness.fake.taken_to(&phone(i)), 1, "{i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_cut_short_after_the_provider_took_the_text_is_looked_up_not_resent() {
    let harness = harness(24).await;
    harness.fake.set(Mode::CutShort);
    harness.pings(1).await;
    harness.engine.outbox().deliver_due().await.unwrap();
    assert_eq!(harness.fake.taken_to(&phone(0)), 1);
    assert_eq!(harness.reply_state(0).await, "sending");
    harness.run_until(T0 + 10 * MINUTE).await;
    assert_eq!(harness.fake.taken_to(&phone(0)), 1, "sent once, not twice");
    assert_eq!(harness.fake.requests().len(), 1, "found in the list");
    assert_eq!(harness.reply_state(0).await, "sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn texts_out_of_attempts_are_listed_and_replayed_through_the_gate() {
    let harness = harness(3).await;
    harness.fake.set(Mode::Down);
    harness.pings(4).await;
    harness.run_until(T0 + 10 * MINUTE).await;
    assert_eq!(harness.fake.requests().len(), 4 * 3, "three attempts each");
    let (status, page) = harness
        .api("GET", "/v1/outbox/failed?limit=3", Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let first: Vec<&str> = page["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|text| text["id"].as_str().unwrap())
        .collect();
    assert_eq!(first.len(), 3);
    let next = page["page"]["next_after"].as_str().unwrap();
    let (_, rest) = harness
        .api(
            "GET",
            &format!("/v1/outbox/failed?after={next}"),
            Value::Null,
        )
        .await;
    assert_eq!(rest["failed"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["page"]["next_after"], Value::Null);
    let reason = rest["failed"][0]["status"]["reason"].as_str().unwrap();
    assert!(reason.contains("HTTP 500"), "{reason}");
    let mut ids: Vec<String> = first.iter().map(|id| (*id).to_owned()).collect();
    ids.push(rest["failed"][0]["id"].as_str().unwrap().to_owned());

    // Contact 3 says STOP meanwhile: its replayed text must not go.
    harness.fake.set(Mode::Up);
    harness.text(3, "STOP").await;
    let (status, answer) = harness
        .api(
            "POST",
            "/v1/outbox/replay",
            json!({"ids": [ids[0], ids[1], ids[2], ids[3], "out-00000000000fffff"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["replayed"].as_array().unwrap().len(), 4, "{answer}");
    assert_eq!(
        answer["skipped"],
        json!([{"id": "out-00000000000fffff", "reason": "unknown"}])
    );
    harness.run_until(T0 + 20 * MINUTE).await;
    for i in 0..3 {
        assert_eq!(harness.fake.taken_to(&phone(i)), 1, "{i}");
        assert_eq!(harness.reply_state(i).await, "sent");
    }
    let to_stopped: Vec<String> = harness
        .fake
        .taken
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, to, _, _)| *to == phone(3))
        .map(|(_, _, body, _)| body.clone())
        .collect();
    assert!(
        to_stopped.iter().all(|body| !body.contains("pong")),
        "the replayed text went to a STOP: {to_stopped:?}"
    );
    let (_, again) = harness
        .api("POST", "/v1/outbox/replay", json!({"ids": [ids[0]]}))
        .await;
    assert_eq!(again["skipped"][0]["reason"], "not failed", "{again}");
    let (status, refused) = harness
        .api("POST", "/v1/outbox/replay", json!({"ids": ["SM123"]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("out-"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_request_is_checked_before_anything_moves() {
    let harness = harness(24).await;
    let (status, answer) = harness.api("POST", "/v1/dlq/replay", Value::Null).await;
    assert_eq!((status, &answer["replayed"]), (StatusCode::OK, &json!(0)));
    for (path, body) in [
        ("/v1/dlq/replay", json!({"seq": "x"})),
        ("/v1/outbox/replay", json!({"ids": []})),
        ("/v1/outbox/replay", json!({"id": "out-0000000000000001"})),
    ] {
        let (status, answer) = harness.api("POST", path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let (status, _) = harness
        .api("GET", "/v1/outbox/failed?limit=0", Value::Null)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // No [[webhooks]] here: their dead letters are not a thing to list or replay.
    for (method, path) in [("GET", "/v1/events/dead"), ("POST", "/v1/events/replay")] {
        let (status, answer) = harness.api(method, path, Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("[[webhooks]]"));
    }
}
