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

/// Routes anyone may call, each with why. Everything else in the router must refuse a caller
/// with no credentials.
const PUBLIC: [(&str, &str); 15] = [
    ("/healthz", "the load balancer's probe"),
    (
        "/metrics",
        "Prometheus scrapes it; `metrics_need_token` puts it behind the token",
    ),
    (
        "/l/{code}",
        "a tracked link in a text, opened by its recipient",
    ),
    (
        "/v1/agent/session",
        "sign-in itself (rate-limited per address)",
    ),
    (
        "/inbox",
        "the page shell: its data comes from the agent API",
    ),
    ("/inbox/app.js", "the page's script"),
    ("/inbox/app.css", "the page's styles"),
    ("/reports", "the page shell: its data comes from the API"),
    ("/reports/app.js", "the page's script"),
    ("/reports/app.css", "the page's styles"),
    (
        "/simulator",
        "404 unless `[server] simulator` is on (a demo)",
    ),
    (
        "/simulator/app.js",
        "the simulator's script (404 unless on)",
    ),
    (
        "/simulator/app.css",
        "the simulator's styles (404 unless on)",
    ),
    ("/simulator/send", "the simulator's phone (404 unless on)"),
    (
        "/simulator/thread",
        "the simulator's thread (404 unless on)",
    ),
];

/// The providers' webhooks: open to the internet, refused (403) unless signed.
const SIGNED: [&str; 3] = [
    "/webhooks/twilio",
    "/webhooks/twilio/status",
    "/webhooks/telnyx",
];

/// Every path the router registers, read from its source: a route added there is walked here
/// without anyone remembering to list it.
fn registered_paths() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("src/server/router.rs")).unwrap();
    let ingress = std::fs::read_to_string(root.join("src/ingress/mod.rs")).unwrap();
    let constant = |name: &str| -> String {
        let needle = format!("const {name}: &str = \"");
        let text = [&source, &ingress]
            .into_iter()
            .find(|text| text.contains(&needle))
            .unwrap_or_else(|| panic!("no const {name} in router.rs or ingress/mod.rs"));
        let start = text.find(&needle).unwrap() + needle.len();
        text[start..start + text[start..].find('"').unwrap()].to_owned()
    };
    let mut paths = Vec::new();
    for piece in source.split(".route(").skip(1) {
        let argument = piece.trim_start();
        let path = if let Some(literal) = argument.strip_prefix('"') {
            literal[..literal.find('"').unwrap()].to_owned()
        } else if let Some(format) = argument.strip_prefix("&format!(\"") {
            let template = &format[..format.find('"').unwrap()];
            let (name, rest) = template.strip_prefix('{').unwrap().split_once('}').unwrap();
            format!(
                "{}{}",
                constant(name),
                rest.replace("{{", "{").replace("}}", "}")
            )
        } else {
            let name: String = argument
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            constant(&name)
        };
        paths.push(path);
    }
    assert!(
        paths.len() > 60,
        "the parse found too few routes: {paths:?}"
    );
    paths
}

/// `path` with each `{param}` filled in with something of its shape.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(match &rest[start + 1..end] {
            "phone" => "+12125550100",
            "flow_id" => "hello",
            other => other,
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn every_route_in_the_router_is_behind_its_auth_layer_unless_listed_public() {
    let (app, _engine) = app(Some(TOKEN)).await;
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    for path in registered_paths() {
        let public = PUBLIC.iter().any(|(open, _)| *open == path);
        let signed = SIGNED.contains(&path.as_str());
        let uri = concrete(&path);
        let mut routed = 0;
        let mut open = 0;
        for method in methods {
            for token in [None, Some("wrong")] {
                let request = api(method, &uri, token, "{}");
                let (status, body) = send(&app, request).await;
                if status == StatusCode::METHOD_NOT_ALLOWED {
                    continue;
                }
                routed += 1;
                if public {
                    // Sign-in shares its path with sign-out, which needs the session.
                    open += usize::from(status != StatusCode::UNAUTHORIZED);
                } else if signed {
                    // Unsigned is forbidden; a provider without its key configured is off.
                    assert!(
                        [StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&status),
                        "{method} {path}: {status} {body}"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::UNAUTHORIZED,
                        "{method} {path} with {token:?} must need credentials: {body}"
                    );
                }
            }
        }
        assert!(routed > 0, "{path}: no method reached it");
        assert!(
            !public || open > 0,
            "{path} is listed public but asks for credentials"
        );
    }
    // Every listed public route still exists: the list does not keep dead entries.
    let paths = registered_paths();
    for (open, why) in PUBLIC {
        assert!(
            paths.iter().any(|path| path == open),
            "{open} ({why}) is gone"
        );
    }
}

#[tokio::test]
async fn every_page_and_asset_carries_the_strict_policy() {
    let (app, _engine) = app(Some(TOKEN)).await;
    let mut pages = 0;
    for path in registered_paths() {
        let request = api("GET", &concrete(&path), None, "");
        let response = app.clone().oneshot(request).await.unwrap();
        let headers = response.headers();
        let kind = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !["text/html", "text/javascript", "text/css"]
            .iter()
            .any(|page| kind.starts_with(page))
        {
            continue;
        }
        pages += 1;
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert_eq!(
            policy,
            smsflow::server::pages::CONTENT_SECURITY_POLICY,
            "{path}"
        );
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
    }
    // The inbox's and the reports' page, script and styles (the simulator is off here).
    assert_eq!(pages, 6);
}
