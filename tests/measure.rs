//! Measurement against the real binary over HTTP: a tracked link in a text, its redirect and
//! click; a delivery report, then a conversion attributed to it; the conversion API's refusals;
//! `/metrics` parsed as Prometheus text; `smsflow report --format json` while the server runs.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_provider::{
    Setup, api, api_with_token, conversation, post_inbound, post_status, start_flow,
    twilio_provider, wait_until,
};
use common::{PROGRAMS, Server, cli};
use serde_json::{Value, json};

const FLOW: &str = r#"
id = "notice"
program = "care"
kind = "transactional"
brand = "Acme Clinic"
start = "hello"
[triggers]
api = true
[steps.hello]
type = "send"
text = 'Acme Clinic: your results are ready {{link "https://clinic.example/results"}} Reply STOP to opt out.'
next = "wait"
[steps.wait]
type = "wait"
timeout = "1d"
on_reply = "done"
on_timeout = "done"
[steps.done]
type = "end"
outcome = "confirmed"
conversion = true
"#;

const CONTACT: &str = "+12125550190";

async fn serve() -> (Setup, Server) {
    let setup = Setup::with_fake(&[], &[("notice.toml", FLOW)]).await;
    let rest = format!(
        "{}{PROGRAMS}\n[links]\nbase_url = \"https://go.acme.example\"\n",
        common::plugins_section("http://127.0.0.1:9")
    );
    setup.write_config(&twilio_provider(), 2, &rest);
    let server = Server::start(&setup.config(), setup.port);
    (setup, server)
}

async fn convert(setup: &Setup, body: Value) -> (u16, Value) {
    api_with_token(setup, "POST", "/v1/conversions", Some(body.to_string())).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_a_delivery_and_a_conversion_are_measured_and_reported() {
    let (setup, _server) = serve().await;
    let (status, started) = start_flow(&setup, "notice", CONTACT, json!({})).await;
    assert_eq!(status, 201, "{started}");
    wait_until("the text", || !setup.fake.sent_to(CONTACT).is_empty()).await;
    let body = setup.fake.sent_to(CONTACT)[0].body.clone();
    let code = body
        .split("https://go.acme.example/l/")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no short link in {body}"))
        .to_owned();

    // The link redirects to what the flow wrote, and only that; others are 404.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(setup.url(&format!("/l/{code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 302);
    assert_eq!(
        response.headers()["location"],
        "https://clinic.example/results"
    );
    for bad in ["AAAAAAAAAA", "x", "%2e%2e%2fetc"] {
        let response = client
            .get(setup.url(&format!("/l/{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404, "{bad}");
        let error: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert!(
            error["error"].as_str().unwrap().contains("no such link"),
            "{error}"
        );
    }

    // The provider reports it delivered.
    let (_, state) = conversation(&setup, CONTACT).await;
    let sid = state["messages"][0]["provider_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code_status, text) = post_status(&setup, &sid, "delivered").await;
    assert_eq!(code_status, 204, "{text}");

    // A conversion: by the click, the window shown; the same key again answers the same.
    let order =
        json!({"phone": CONTACT, "value": 42.5, "currency": "usd", "idempotency_key": "order-1"});
    let (status, first) = convert(&setup, order.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["attributed_to"]["by"], "click", "{first}");
    assert_eq!(first["attributed_to"]["flow"], "notice");
    assert_eq!(first["attributed_to"]["window"], "5days");
    let (status, again) = convert(&setup, order).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]), "{again}");
    for (body, says) in [
        (
            json!({"phone": "+12125550999", "value": 1, "currency": "USD", "idempotency_key": "k1"}),
            "no contact",
        ),
        (
            json!({"phone": CONTACT, "value": -3, "currency": "USD", "idempotency_key": "k2"}),
            "value",
        ),
        (
            json!({"phone": CONTACT, "value": "lots", "currency": "USD", "idempotency_key": "k3"}),
            "value",
        ),
        (
            json!({"phone": CONTACT, "value": 3, "currency": "ZZZ", "idempotency_key": "k4"}),
            "ISO 4217",
        ),
        (
            json!({"phone": CONTACT, "value": 3, "currency": "USD", "idempotency_key": "k5", "occurred_at": "soon"}),
            "occurred_at",
        ),
    ] {
        let (status, refused) = convert(&setup, body.clone()).await;
        assert!(status == 422 || status == 400, "{status} {refused}");
        assert!(refused.to_string().contains(says), "{body}: {refused}");
    }
    // Unauthenticated, nothing.
    let (status, _) = api(&setup, "POST", "/v1/conversions", Some("{}".into()), None).await;
    assert_eq!(status, 401);

    // A reply ends the run at a conversion step.
    let (status, _) = post_inbound(&setup, "SMreply0001", CONTACT, "thanks").await;
    assert_eq!(status, 200);
    wait_until("the reply's turn", || true).await;

    // The report while the server runs, through its API.
    let config = setup.config();
    let mut report = Value::Null;
    for _ in 0..100 {
        // The server runs on the tests' simulated March day.
        let args = [
            "report",
            "--format",
            "json",
            "--flow",
            "notice",
            "--since",
            "2026-03-01",
            "--until",
            "2026-03-05",
        ];
        let output = cli(&config, &args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        report = serde_json::from_slice(&output.stdout).unwrap();
        if report["funnel"]["conversions"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let funnel = &report["funnel"];
    assert_eq!(funnel["sent"], 1, "{report:#}");
    assert_eq!(funnel["delivered"], 1, "{report:#}");
    assert_eq!(funnel["clicked"], 1, "{report:#}");
    assert_eq!(funnel["replied"], 1, "{report:#}");
    assert_eq!(
        funnel["conversions"], 2,
        "the order and the flow's step: {report:#}"
    );
    assert_eq!(funnel["revenue"]["USD"], 42.5, "{report:#}");
    assert_eq!(report["rates"]["delivery_rate"], 1.0);
    assert!(
        report["definitions"]["reply_rate"]
            .as_str()
            .unwrap()
            .contains("/")
    );
    assert!(report["variants"].as_array().unwrap().is_empty());
    assert_eq!(
        report["verdict"]["status"], "not_enough_data",
        "one flow, no split"
    );

    // /metrics: Prometheus text, open by default (as Prometheus endpoints are), every
    // series ours, the named ones there.
    let response = reqwest::Client::new()
        .get(setup.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let names: std::collections::BTreeSet<&str> = scrape
        .samples
        .iter()
        .map(|sample| sample.metric.as_str())
        .collect();
    assert!(
        names.iter().all(|name| name.starts_with("smsflow_")),
        "{names:?}"
    );
    for name in [
        "smsflow_inbox_depth",
        "smsflow_outbox_depth",
        "smsflow_dead_letters",
        "smsflow_gate_decisions_total",
        "smsflow_sse_clients",
        "smsflow_http_request_duration_seconds_count",
        "smsflow_turn_duration_seconds_count",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    let webhook = scrape.samples.iter().any(|sample| {
        sample.metric == "smsflow_http_request_duration_seconds_count"
            && sample.labels.get("route") == Some("/webhooks/twilio/status")
    });
    assert!(webhook, "the status webhook's latency is measured:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_be_kept_to_the_operator_token() {
    let setup = Setup::with_fake(&[], &[("notice.toml", FLOW)]).await;
    setup.write_config(
        &twilio_provider(),
        2,
        &common::plugins_section("http://127.0.0.1:9"),
    );
    let config = std::fs::read_to_string(setup.config()).unwrap();
    let config = config.replacen("[server]\n", "[server]\nmetrics_need_token = true\n", 1);
    std::fs::write(setup.config(), config).unwrap();
    let _server = Server::start(&setup.config(), setup.port);
    let (status, _) = api(&setup, "GET", "/metrics", None, None).await;
    assert_eq!(status, 401);
    let response = reqwest::Client::new()
        .get(setup.url("/metrics"))
        .bearer_auth(common::fake_provider::API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}
