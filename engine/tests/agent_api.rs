//! The agent API and the pages in process (the router `smsflow serve` serves, driven with
//! `oneshot`), over a real engine on a temporary store: who may call it (an agent's own secret or
//! session cookie, never the operator's token, never a cross-site post), what a conversation
//! shows, and each bad input the issue lists answered with its status and nothing changed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use smsflow::agents::NewAgent;
use smsflow::config::Config;
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::flow::compile::compile;
use smsflow::ingress::twilio;
use smsflow::server::{AppState, router};
use smsflow::store::Store;
use smsflow::store::agents::Role;
use smsflow::testing::{self, ManualClock, RecordingProvider};
use tower::ServiceExt as _;

const OPERATOR: &str = "operator-token";
const PUBLIC_URL: &str = "http://127.0.0.1:8080";
const AUTH_TOKEN: &str = "twilio-token";
const OURS: &str = "+15550001000";
/// Tuesday 2026-01-06 15:00 UTC, 10:00 in New York.
const DAYTIME: i64 = 1_767_711_600_000;
/// 22:00 in New York the same day: quiet hours for a 212 number.
const NIGHT: i64 = DAYTIME + 12 * 3_600_000;

const FLOW: &str = r#"
id = "billing"
program = "care"
kind = "transactional"
start = "human"
[triggers]
keywords = ["BILLING"]
[steps.human]
type = "handoff"
queue = "billing"
reason = "billing question"
text = "A person will text you shortly."
"#;

struct App {
    router: axum::Router,
    engine: Engine,
    clock: Arc<ManualClock>,
    ana: String,
    bob: String,
    boss: String,
    sid: std::sync::atomic::AtomicU64,
}

async fn app(simulator: bool) -> App {
    let mut config: Config = testing::config();
    config.server.api_token = Some(OPERATOR.to_owned());
    config.server.public_url = Some(PUBLIC_URL.to_owned());
    config.server.simulator = simulator;
    config.provider.auth_token = Some(AUTH_TOKEN.to_owned());
    config.provider.from = OURS.to_owned();
    config
        .canned
        .insert("thanks".into(), "Thanks, it is sorted.".into());
    config
        .canned
        .insert("hi".into(), "Hi {{first_name}}, Ana here.".into());
    let clock = Arc::new(ManualClock::new(DAYTIME));
    let flow = compile(std::path::Path::new("billing.toml"), FLOW).unwrap();
    let engine = EngineBuilder::from_config(&config)
        .store(Store::temporary().unwrap())
        .clock(clock.clone())
        .provider(Arc::new(RecordingProvider::default()))
        .flows(vec![flow])
        .build()
        .await
        .unwrap();
    let add = |name: &str, role: Role| {
        engine
            .agents()
            .add(NewAgent {
                name: name.into(),
                queues: vec!["billing".into()],
                role,
            })
            .unwrap()
            .secret
    };
    let (ana, bob, boss) = (
        add("ana", Role::Agent),
        add("bob", Role::Agent),
        add("boss", Role::Supervisor),
    );
    let state = Arc::new(AppState::new(&engine, &config).unwrap());
    App {
        router: router(state),
        engine,
        clock,
        ana,
        bob,
        boss,
        sid: Default::default(),
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

impl App {
    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    async fn call(&self, method: &str, path: &str, secret: &str, body: Option<Value>) -> Answer {
        let builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .header(header::CONTENT_TYPE, "application/json");
        let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
        self.send(builder.body(body).unwrap()).await
    }

    /// A signed Twilio webhook from `from`, then the inbox processed.
    async fn text(&self, from: &str, body: &str) {
        let n = self.sid.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let params: Vec<(String, String)> = [
            ("MessageSid", format!("SM{n:032}")),
            ("AccountSid", "ACtest".to_owned()),
            ("From", from.to_owned()),
            ("To", OURS.to_owned()),
            ("Body", body.to_owned()),
            ("NumMedia", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let url = format!("{PUBLIC_URL}/webhooks/twilio");
        let signature = twilio::signature(&url, &params, AUTH_TOKEN);
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let request = Request::builder()
            .method("POST")
            .uri("/webhooks/twilio")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(Body::from(form))
            .unwrap();
        assert_eq!(self.send(request).await.status, StatusCode::OK);
        self.engine.process_inbox().await.unwrap();
    }

    async fn sign_in(&self, secret: &str) -> String {
        let request = Request::builder()
            .method("POST")
            .uri("/v1/agent/session")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({ "secret": secret }).to_string()))
            .unwrap();
        let answer = self.send(request).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let cookie = answer.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        cookie.split(';').next().unwrap().to_owned()
    }

    async fn with_cookie(
        &self,
        method: &str,
        path: &str,
        cookie: &str,
        origin: Option<&str>,
    ) -> Answer {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::COOKIE, cookie);
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        self.send(builder.body(Body::empty()).unwrap()).await
    }
}

fn path(phone: &str, action: &str) -> String {
    let phone = phone.replace('+', "%2B");
    if action.is_empty() {
        format!("/v1/agent/conversations/{phone}")
    } else {
        format!("/v1/agent/conversations/{phone}/{action}")
    }
}

#[tokio::test]
async fn only_an_agents_own_secret_or_session_is_an_agent() {
    let app = app(false).await;
    app.text("+12125550100", "BILLING").await;
    let queues = "/v1/agent/queues";
    assert_eq!(
        app.call("GET", queues, &app.ana, None).await.status,
        StatusCode::OK
    );
    let mut wrong = app.ana.clone();
    wrong.push('x');
    for secret in [OPERATOR, wrong.as_str(), "ana", ""] {
        let answer = app.call("GET", queues, secret, None).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{secret}: {}",
            answer.text
        );
    }
    let none = app
        .send(Request::get(queues).body(Body::empty()).unwrap())
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);

    // The page's session: a cookie, refused once signed out or the agent is disabled.
    let cookie = app.sign_in(&app.bob).await;
    let me = app.with_cookie("GET", "/v1/agent/me", &cookie, None).await;
    assert_eq!(
        (me.status, me.body["name"].as_str()),
        (StatusCode::OK, Some("bob"))
    );
    assert_eq!(
        me.body["presence"], "available",
        "signing in makes an agent available"
    );
    // A cross-site POST that carries the cookie anyway is refused and changes nothing.
    let claim = path("+12125550100", "claim");
    let forged = app
        .with_cookie("POST", &claim, &cookie, Some("http://evil.example"))
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);
    let stale = app
        .with_cookie(
            "POST",
            &claim,
            "smsflow_session=stale",
            Some("http://127.0.0.1:8080"),
        )
        .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    let case = app
        .call("GET", &path("+12125550100", ""), &app.ana, None)
        .await;
    assert_eq!(case.body["state"], "waiting", "nothing was claimed");
    let same_site = app
        .with_cookie("POST", &claim, &cookie, Some("http://127.0.0.1:8080"))
        .await;
    assert_eq!(
        (same_site.status, same_site.body["assignee"].as_str()),
        (StatusCode::OK, Some("bob"))
    );
    app.engine.agents().disable("bob").unwrap();
    let disabled = app.with_cookie("GET", "/v1/agent/me", &cookie, None).await;
    assert_eq!(disabled.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.call("GET", queues, &app.bob, None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_agent_sees_the_queue_the_reason_and_the_whole_thread() {
    let app = app(false).await;
    let contact = "+12125550101";
    app.text(contact, "BILLING I was charged twice").await;
    app.clock.advance(60_000);
    app.text(contact, "<script>alert(1)</script> hello?").await;
    let queues = app.call("GET", "/v1/agent/queues", &app.ana, None).await;
    assert_eq!(queues.body["queues"][0]["name"], "billing");
    assert_eq!(queues.body["queues"][0]["waiting"], 1);
    assert_eq!(
        queues.body["queues"][0]["oldest_waiting_since"],
        "2026-01-06T15:00:00Z"
    );
    let list = app
        .call(
            "GET",
            "/v1/agent/conversations?queue=billing&state=waiting",
            &app.ana,
            None,
        )
        .await;
    let first = &list.body["conversations"][0];
    assert_eq!(first["contact"], contact);
    assert_eq!(first["reason"], "billing question");
    assert_eq!(
        (first["state"].as_str(), first["late"].as_bool()),
        (Some("waiting"), Some(false))
    );
    let detail = app.call("GET", &path(contact, ""), &app.ana, None).await;
    let kinds: Vec<&str> = detail.body["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["type"].as_str().unwrap())
        .collect();
    assert!(kinds.starts_with(&["inbound", "started"]), "{kinds:?}");
    assert!(
        kinds.contains(&"handoff") && kinds.ends_with(&["inbound"]),
        "{kinds:?}"
    );
    assert_eq!(detail.body["context"]["flow"], "billing");
    assert_eq!(
        detail.body["messages"][0]["body"],
        "A person will text you shortly."
    );
    assert_eq!(
        detail.body["last_inbound"]["text"],
        "<script>alert(1)</script> hello?"
    );
    // The state and assignee filters.
    let mine = app
        .call("GET", "/v1/agent/conversations?assignee=me", &app.ana, None)
        .await;
    assert_eq!(mine.body["conversations"].as_array().unwrap().len(), 0);
    let bad = app
        .call(
            "GET",
            "/v1/agent/conversations?state=open-ish",
            &app.ana,
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_reply_or_claim_on_another_agents_conversation_is_refused_naming_the_holder() {
    let app = app(false).await;
    let contact = "+12125550102";
    app.text(contact, "BILLING").await;
    assert_eq!(
        app.call("POST", &path(contact, "claim"), &app.ana, None)
            .await
            .status,
        StatusCode::OK
    );
    for action in ["claim", "resolve", "reply", "snooze"] {
        let body = match action {
            "reply" => Some(json!({ "text": "Bob here" })),
            "snooze" => Some(json!({ "until": "1h" })),
            _ => None,
        };
        let answer = app
            .call("POST", &path(contact, action), &app.bob, body)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{action}: {}",
            answer.text
        );
        assert_eq!(answer.body["holder"], "ana", "{action}");
    }
    let detail = app.call("GET", &path(contact, ""), &app.ana, None).await;
    assert_eq!(
        detail.body["messages"].as_array().unwrap().len(),
        1,
        "bob's reply was not queued"
    );
    // Only a supervisor reassigns.
    let assign = app
        .call(
            "POST",
            &path(contact, "assign"),
            &app.bob,
            Some(json!({ "agent": "bob" })),
        )
        .await;
    assert_eq!(assign.status, StatusCode::FORBIDDEN);
    let assign = app
        .call(
            "POST",
            &path(contact, "assign"),
            &app.boss,
            Some(json!({ "agent": "bob" })),
        )
        .await;
    assert_eq!(
        (assign.status, assign.body["assignee"].as_str()),
        (StatusCode::OK, Some("bob"))
    );
    // Resolve of a conversation that was never handed off: 404.
    let unknown = app
        .call("POST", &path("+12125550199", "resolve"), &app.ana, None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    let malformed = app
        .call("POST", &path("12", "resolve"), &app.ana, None)
        .await;
    assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_reply_shows_the_gates_decision_blocked_after_stop_deferred_at_night() {
    let app = app(false).await;
    let (stopped, night) = ("+12125550103", "+12125550104");
    for contact in [stopped, night] {
        app.text(contact, "BILLING").await;
    }
    app.text(stopped, "STOP").await;
    let detail = app.call("GET", &path(stopped, ""), &app.ana, None).await;
    assert_eq!(
        detail.body["state"], "waiting",
        "STOP leaves the conversation with people"
    );
    let blocked = app
        .call(
            "POST",
            &path(stopped, "reply"),
            &app.ana,
            Some(json!({ "text": "Are you sure?" })),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::ACCEPTED, "{}", blocked.text);
    assert_eq!(
        blocked.body["gate"]["decision"], "blocked",
        "{}",
        blocked.text
    );
    assert!(
        blocked.body["gate"]["reason"]
            .as_str()
            .unwrap()
            .contains("opted out"),
        "{}",
        blocked.text
    );

    app.clock.set(NIGHT);
    let deferred = app
        .call(
            "POST",
            &path(night, "reply"),
            &app.ana,
            Some(json!({ "text": "Looking into it." })),
        )
        .await;
    assert_eq!(
        deferred.body["gate"]["decision"], "deferred",
        "{}",
        deferred.text
    );
    let until = deferred.body["gate"]["until"].as_str().unwrap();
    assert!(
        until.starts_with("2026-01-07T"),
        "deferred to the morning: {until}"
    );
}

#[tokio::test]
async fn canned_replies_are_filled_or_name_the_missing_field_and_stale_drafts_need_a_confirm() {
    let app = app(false).await;
    let contact = "+12125550105";
    app.text(contact, "BILLING").await;
    let canned = app.call("GET", "/v1/agent/canned", &app.ana, None).await;
    assert_eq!(canned.body["canned"].as_array().unwrap().len(), 2);
    let filled = app
        .call("GET", &path(contact, "canned/thanks"), &app.ana, None)
        .await;
    assert_eq!(filled.body["text"], "Thanks, it is sorted.");
    let missing = app
        .call("GET", &path(contact, "canned/hi"), &app.ana, None)
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        missing.body["error"]
            .as_str()
            .unwrap()
            .contains("first_name"),
        "{}",
        missing.text
    );
    let sent = app
        .call(
            "POST",
            &path(contact, "reply"),
            &app.ana,
            Some(json!({ "text": "/hi" })),
        )
        .await;
    assert_eq!(
        sent.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "never sent with a blank"
    );

    // A draft against an older thread: refused with the new length, then sent when confirmed.
    let version = app
        .call("GET", &path(contact, ""), &app.ana, None)
        .await
        .body["version"]
        .as_u64()
        .unwrap();
    app.text(contact, "actually it was three times").await;
    let stale = json!({ "text": "/thanks", "version": version });
    let refused = app
        .call(
            "POST",
            &path(contact, "reply"),
            &app.ana,
            Some(stale.clone()),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["changed"], true);
    let confirmed = json!({ "text": "/thanks", "version": version, "confirm": true });
    let sent = app
        .call("POST", &path(contact, "reply"), &app.ana, Some(confirmed))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
    let detail = app.call("GET", &path(contact, ""), &app.ana, None).await;
    let last = detail.body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["body"], "Thanks, it is sorted.");
    let note = app
        .call(
            "POST",
            &path(contact, "note"),
            &app.ana,
            Some(json!({ "text": "refund #4411" })),
        )
        .await;
    assert_eq!(note.status, StatusCode::OK);
    let detail = app.call("GET", &path(contact, ""), &app.ana, None).await;
    assert_eq!(detail.body["notes"][0]["text"], "refund #4411");
    assert_eq!(
        detail.body["messages"].as_array().unwrap().len(),
        2,
        "a note is never sent"
    );
    let segments = app
        .call(
            "POST",
            "/v1/agent/segments",
            &app.ana,
            Some(json!({ "text": "Olá 😀" })),
        )
        .await;
    assert_eq!(
        (
            segments.body["encoding"].as_str(),
            segments.body["segments"].as_u64()
        ),
        (Some("UCS-2"), Some(1))
    );
}

#[tokio::test]
async fn the_inbox_page_has_a_strict_policy_and_the_simulator_is_off_unless_asked_for() {
    let off = app(false).await;
    let page = off
        .send(Request::get("/inbox").body(Body::empty()).unwrap())
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let policy = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe"),
        "{policy}"
    );
    for path in [
        "/simulator",
        "/simulator/app.js",
        "/simulator/thread?phone=%2B12125550100",
    ] {
        let answer = off
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
    let on = app(true).await;
    assert_eq!(
        on.send(Request::get("/simulator").body(Body::empty()).unwrap())
            .await
            .status,
        StatusCode::OK
    );
    let send = Request::post("/simulator/send")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({ "from": "+12125550106", "text": "BILLING help" }).to_string(),
        ))
        .unwrap();
    assert_eq!(on.send(send).await.status, StatusCode::ACCEPTED);
    // A cross-site form's text/plain post is refused and queues nothing.
    let forged = Request::post("/simulator/send")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(
            json!({ "from": "+12125550107", "text": "STOP" }).to_string(),
        ))
        .unwrap();
    assert_eq!(on.send(forged).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        on.engine.process_inbox().await.unwrap(),
        1,
        "only the JSON text"
    );
    let thread = on
        .send(
            Request::get("/simulator/thread?phone=%2B12125550106")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let messages = thread.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["direction"], "in");
    assert_eq!(messages[1]["text"], "A person will text you shortly.");
}
