//! The HTTP layer in process: the router the server serves, driven with `oneshot` requests
//! (no socket, no binary), over a real engine on a temporary store. The end-to-end tests in
//! the repository's `tests/` drive the binary; these pin down the layer itself: the bearer
//! layer on every `/v1` route, one status per failure, JSON error bodies.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use smsflow::config::Config;
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::flow::compile::compile;
use smsflow::ingress::twilio;
use smsflow::server::{AppState, router};
use smsflow::store::Store;
use smsflow::testing::{self, ManualClock, RecordingProvider};
use tower::ServiceExt as _;

const TOKEN: &str = "secret-token";
const PUBLIC_URL: &str = "https://sms.example.com";
const AUTH_TOKEN: &str = "twilio-token";
const OURS: &str = "+15550001000";

const FLOW: &str = r#"
id = "hello"
program = "care"
kind = "transactional"
start = "hello"
[triggers]
api = true
keywords = ["HELLO"]
fields = ["name"]
[steps.hello]
type = "send"
text = "Hi {{name}}, reply with anything."
next = "wait"
[steps.wait]
type = "wait"
timeout = "1h"
on_reply = "bye"
on_timeout = "bye"
[steps.bye]
type = "end"
text = "Bye."
"#;

fn config(token: Option<&str>) -> Config {
    let mut config = testing::config();
    config.server.api_token = token.map(str::to_owned);
    config.server.public_url = Some(PUBLIC_URL.to_owned());
    config.provider.auth_token = Some(AUTH_TOKEN.to_owned());
    config.provider.from = OURS.to_owned();
    config
}

async fn app(token: Option<&str>) -> (axum::Router, Engine) {
    let config = config(token);
    let flow = compile(std::path::Path::new("hello.toml"), FLOW).unwrap();
    let engine = EngineBuilder::from_config(&config)
        .store(Store::temporary().unwrap())
        .clock(Arc::new(ManualClock::new(1_772_557_200_000)))
        .provider(Arc::new(RecordingProvider::default()))
        .flows(vec![flow])
        .build()
        .await
        .unwrap();
    let state = Arc::new(AppState::new(&engine, &config).unwrap());
    (router(state), engine)
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

fn api(method: &str, path: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

fn twilio_inbound(sid: &str, from: &str, body: &str, signature: Option<String>) -> Request<Body> {
    let params: Vec<(String, String)> = [
        ("MessageSid", sid),
        ("AccountSid", "ACtest"),
        ("From", from),
        ("To", OURS),
        ("Body", body),
        ("NumMedia", "0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let signature = signature.unwrap_or_else(|| {
        twilio::signature(
            &format!("{PUBLIC_URL}/webhooks/twilio"),
            &params,
            AUTH_TOKEN,
        )
    });
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    Request::builder()
        .method("POST")
        .uri("/webhooks/twilio")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(form))
        .unwrap()
}

#[tokio::test]
async fn every_v1_route_is_behind_the_bearer_token() {
    let (app, _engine) = app(Some(TOKEN)).await;
    let routes = [
        (
            "POST",
            "/v1/flows/hello/start",
            r#"{"to": "+12125550100", "fields": {"name": "Ana"}}"#,
        ),
        ("GET", "/v1/conversations/+12125550100", ""),
        (
            "POST",
            "/v1/conversations/+12125550100/reply",
            r#"{"agent": "ana", "text": "hi"}"#,
        ),
        ("POST", "/v1/consent", "{}"),
        ("GET", "/v1/status", ""),
        ("GET", "/v1/agents", ""),
        (
            "POST",
            "/v1/agents",
            r#"{"name": "ana", "queues": ["billing"]}"#,
        ),
        ("POST", "/v1/agents/ana/disable", ""),
    ];
    for (method, path, body) in routes {
        for token in [None, Some("wrong"), Some("secret-token-but-longer")] {
            let (status, answer) = send(&app, api(method, path, token, body)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            assert_eq!(answer["error"], "missing or wrong bearer token");
        }
    }
    let (status, answer) = send(&app, api("GET", "/v1/status", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["inbox"]["pending"], 0);
    assert_eq!(answer["outbox"]["due"], 0);
}

#[tokio::test]
async fn without_a_token_the_api_is_off_and_says_how_to_turn_it_on() {
    let (app, _engine) = app(None).await;
    let (status, answer) = send(&app, api("GET", "/v1/status", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("[server] api_token"),
        "{answer}"
    );
    let (status, _) = send(&app, api("GET", "/healthz", None, "")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn each_failure_has_its_status_and_a_json_error() {
    let (app, _engine) = app(Some(TOKEN)).await;
    let start = |flow: &str, body: &str| {
        api(
            "POST",
            &format!("/v1/flows/{flow}/start"),
            Some(TOKEN),
            body,
        )
    };
    let cases = [
        (start("hello", "not json"), StatusCode::BAD_REQUEST),
        (
            start("hello", r#"{"to": "+12125550100", "extra": 1}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            start("hello", r#"{"to": "555-0100"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            start("nope", r#"{"to": "+12125550100"}"#),
            StatusCode::NOT_FOUND,
        ),
        (
            start("hello", r#"{"to": "+12125550100"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            api("GET", "/v1/conversations/+12125559999", Some(TOKEN), ""),
            StatusCode::NOT_FOUND,
        ),
        (
            api(
                "POST",
                "/v1/consent",
                Some(TOKEN),
                r#"{"phone": "+12125550100"}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (request, expected) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (status, answer) = send(&app, request).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(answer["error"].is_string(), "{what}: {answer}");
    }
    let body = r#"{"to": "+12125550100", "fields": {"name": "Ana"}}"#;
    let (status, answer) = send(&app, start("hello", body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let first = &answer["texts"][0];
    assert!(
        first["text"]
            .as_str()
            .is_some_and(|text| text.starts_with("Hi Ana, reply with anything.")),
        "{answer}"
    );
    assert!(first["decision"].is_string(), "{answer}");
    let (status, answer) = send(&app, start("hello", body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let oversized = Request::builder()
        .method("POST")
        .uri("/v1/consent")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_LENGTH, "1000000")
        .body(Body::empty())
        .unwrap();
    let (status, answer) = send(&app, oversized).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        answer["error"].as_str().unwrap().contains("limit"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_signed_webhook_is_stored_and_a_forged_one_changes_nothing() {
    let (app, engine) = app(Some(TOKEN)).await;
    let forged = twilio_inbound("SM1", "+12125550100", "HELLO", Some("forged".into()));
    let (status, _) = send(&app, forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(engine.inbox().pending_len().unwrap(), 0);

    let (status, body) = send(&app, twilio_inbound("SM2", "+12125550100", "HELP", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, twilio::EMPTY_TWIML);
    // A provider's retry is acknowledged and stored once.
    let (status, _) = send(&app, twilio_inbound("SM2", "+12125550100", "HELP", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(engine.inbox().pending_len().unwrap(), 1);

    let nul = twilio_inbound("SM3", "+12125550100", "a\0b", None);
    let (status, body) = send(&app, nul).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(engine.inbox().pending_len().unwrap(), 1);

    assert_eq!(engine.process_inbox().await.unwrap(), 1);
    let replies = engine
        .runtime()
        .transcript(OURS, "+12125550100")
        .unwrap()
        .into_iter()
        .filter(|entry| {
            matches!(
                entry.event,
                smsflow::flow::conversation::Event::Outbound { .. }
            )
        })
        .count();
    assert_eq!(replies, 1, "HELP is answered once");
    assert_eq!(engine.inbox().pending_len().unwrap(), 0);
    let _ = json!({});
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_adds_lists_and_disables_agents_and_never_sees_a_hash() {
    let (app, engine) = app(Some(TOKEN)).await;
    let add = r#"{"name": "ana", "queues": ["support", "billing"], "supervisor": true}"#;
    let (status, added) = send(&app, api("POST", "/v1/agents", Some(TOKEN), add)).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["role"], "supervisor");
    assert_eq!(added["queues"], serde_json::json!(["billing", "support"]));
    let secret = added["secret"].as_str().unwrap().to_owned();
    assert_eq!(engine.agents().authenticate(&secret).unwrap().name, "ana");
    let (status, again) = send(&app, api("POST", "/v1/agents", Some(TOKEN), add)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let bad = r#"{"name": "a b", "queues": ["billing"]}"#;
    let (status, _) = send(&app, api("POST", "/v1/agents", Some(TOKEN), bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown_key = r#"{"name": "bo", "queues": ["billing"], "admin": true}"#;
    let (status, _) = send(&app, api("POST", "/v1/agents", Some(TOKEN), unknown_key)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, list) = send(&app, api("GET", "/v1/agents", Some(TOKEN), "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("argon2"), "{list}");
    let disable = api("POST", "/v1/agents/ana/disable", Some(TOKEN), "");
    let (status, disabled) = send(&app, disable).await;
    assert_eq!(
        (status, &disabled["disabled"]),
        (StatusCode::OK, &Value::Bool(true))
    );
    assert!(engine.agents().authenticate(&secret).is_err());
    let missing = api("POST", "/v1/agents/zed/disable", Some(TOKEN), "");
    let (status, _) = send(&app, missing).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
