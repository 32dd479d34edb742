//! No configured secret reaches the log. The real binary runs at its most verbose
//! (`SMSFLOW_LOG=trace`, every crate) through a full run: signed webhooks in, texts out through
//! Twilio's API (basic auth), a plugin call carrying a host-held credential, event webhooks
//! signed with their secret, the operator API with its token, an agent signing in with a
//! secret and working with the session cookie, and wrong credentials of each kind. Then the
//! whole log is searched for every secret and the forms it travels in.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::Server;
use common::fake_provider::{
    ACCOUNT, API_TOKEN, AUTH_TOKEN, Setup, api, api_with_token, base64_encode, post_inbound,
    twilio_provider, wait_until,
};
use serde_json::json;

const WEBHOOK_SECRET: &str = "whsec_c2VjcmV0LWtleS1vZi1hdC1sZWFzdC0yNC1ieXRlcw==";
const SHOP_TOKEN: &str = "shop-token-7d1e9a4c5b3f";

#[tokio::test(flavor = "multi_thread")]
async fn no_configured_secret_reaches_the_logs_of_a_full_run() {
    let setup = Setup::with_fake(&["order-status.toml", "billing-issue.toml"], &[]).await;
    let rest = format!(
        r#"
[[webhooks]]
url = "{fake}/events"
secret = "{WEBHOOK_SECRET}"

[programs.order-updates]
quiet_hours_exempt = true

[programs.account-service]
quiet_hours_exempt = true
{plugins}
[[plugins.grants.order-status.credentials]]
origin = "{fake}"
env = "SHOP_API_TOKEN"
scheme = "Bearer"
"#,
        fake = setup.fake_url,
        plugins = common::plugins_section(&setup.fake_url),
    );
    setup.write_config(&twilio_provider(), 2, &rest);
    let log = setup.dir.path().join("serve.log");
    let env = [
        ("SMSFLOW_LOG", "trace"),
        ("SHOP_API_TOKEN", SHOP_TOKEN),
        ("SMSFLOW_CLOCK", ""),
    ];
    let server = Server::start_logged(&setup.config(), setup.port, &env, &log);

    // Texts in and out, a plugin call with the credential, event webhooks.
    assert_eq!(
        post_inbound(&setup, "SM1", "+12125550100", "ORDER").await.0,
        200
    );
    assert_eq!(
        post_inbound(&setup, "SM2", "+12125550100", "A1234").await.0,
        200
    );
    assert_eq!(
        post_inbound(&setup, "SM3", "+12125550101", "BILLING")
            .await
            .0,
        200
    );
    wait_until("the order's answer", || {
        setup
            .fake
            .order_requests
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
            && setup.fake.sent_to("+12125550100").len() >= 2
    })
    .await;
    wait_until("event webhooks", || {
        !setup.fake.events.lock().unwrap().is_empty()
    })
    .await;

    // An agent, signed in by secret, working with the cookie; wrong credentials of each kind.
    let body = json!({"name": "ana", "queues": ["billing"]}).to_string();
    let (status, added) = api_with_token(&setup, "POST", "/v1/agents", Some(body)).await;
    assert_eq!(status, 201, "{added}");
    let agent_secret = added["secret"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let signed_in = client
        .post(setup.url("/v1/agent/session"))
        .header("content-type", "application/json")
        .body(json!({ "secret": agent_secret }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let session = cookie.split(';').next().unwrap().to_owned();
    let session_token = session.split_once('=').unwrap().1.to_owned();
    let queues = client
        .get(setup.url("/v1/agent/queues"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(queues.status(), 200);
    let wrong = client
        .post(setup.url("/v1/agent/session"))
        .header("content-type", "application/json")
        .body(json!({ "secret": format!("{agent_secret}x") }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong_token = format!("{API_TOKEN}x");
    let (status, _) = api(&setup, "GET", "/v1/status", None, Some(&wrong_token)).await;
    assert_eq!(status, 401);
    assert!(server.terminate(), "a clean exit");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().count() > 200,
        "trace logging is on: {} lines",
        text.lines().count()
    );
    // What is not secret is there: the search looks at a log that saw the run.
    for seen in ["+12125550100", "order-status", "/v1/agent/session"] {
        assert!(text.contains(seen), "the log never mentions {seen}");
    }
    let basic = base64_encode(format!("{ACCOUNT}:{AUTH_TOKEN}").as_bytes());
    let webhook_key = WEBHOOK_SECRET.strip_prefix("whsec_").unwrap();
    for (what, secret) in [
        ("the operator token", API_TOKEN),
        ("Twilio's auth token", AUTH_TOKEN),
        ("Twilio's basic auth", basic.as_str()),
        ("the event webhook secret", webhook_key),
        ("the plugin credential", SHOP_TOKEN),
        ("the agent's secret", agent_secret.as_str()),
        ("the session token", session_token.as_str()),
    ] {
        if let Some(at) = text.find(secret) {
            let line = text[..at].lines().count();
            panic!("{what} is in the log at line {line}");
        }
    }
}
