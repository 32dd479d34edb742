//! The operator's API and tools against the real binary: the start API answers each text with
//! the gate's decision, and the read-only record commands work while the server runs.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_provider::{Setup, post_inbound, start_flow, twilio_provider, wait_until};
use common::{NOTICE, PROGRAMS, Server, cli};
use serde_json::{Value, json};

const PROMO: &str = r#"
id = "promo"
program = "offers"
kind = "marketing"
brand = "Acme Clinic"
start = "offer"
[triggers]
api = true
[steps.offer]
type = "send"
text = "Acme Clinic: 20% off whitening this week. Reply YES for the code, STOP to opt out."
next = "wait"
[steps.wait]
type = "wait"
timeout = "1d"
on_reply = "done"
on_timeout = "done"
[steps.done]
type = "end"
"#;

async fn serve() -> (Setup, Server) {
    let setup = Setup::with_fake(&[], &[("notice.toml", NOTICE), ("promo.toml", PROMO)]).await;
    // The real plugins folder (no flow here calls one; the server needs a folder to load).
    let rest = format!(
        "{}{PROGRAMS}",
        common::plugins_section("http://127.0.0.1:9")
    );
    setup.write_config(&twilio_provider(), 2, &rest);
    let server = Server::start(&setup.config(), setup.port);
    (setup, server)
}

/// The one text a start answered with, after checking there is exactly one.
fn only_text(started: &Value) -> &Value {
    let texts = started["texts"].as_array().expect("a `texts` list");
    assert_eq!(texts.len(), 1, "{started:#}");
    &texts[0]
}

#[tokio::test(flavor = "multi_thread")]
async fn the_start_api_answers_each_text_with_the_gates_decision() {
    let (setup, _server) = serve().await;

    // Noon in New York (the server's clock starts at common::DAYTIME, 17:00 UTC): sent.
    let (status, started) =
        start_flow(&setup, "notice", "+12125550100", json!({"name": "Ana"})).await;
    assert_eq!(status, 201, "{started:#}");
    let text = only_text(&started);
    println!("sent: {text}");
    assert_eq!(text["decision"], "sent", "{started:#}");
    assert!(text["text"].as_str().unwrap().contains("hi Ana"), "{text}");
    assert!(
        text.get("reason").is_none() || text["reason"].is_string(),
        "{text}"
    );
    assert_eq!(started["conversation"]["status"]["state"], "waiting");
    wait_until("the text reaches the provider", || {
        setup.fake.sent_to("+12125550100").len() == 1
    })
    .await;

    // 7:00 in Honolulu: quiet hours (08:00-21:00 local) defer it to 08:00 HST, 18:00 UTC.
    let (status, started) =
        start_flow(&setup, "notice", "+18085550100", json!({"name": "Keoni"})).await;
    assert_eq!(status, 201, "{started:#}");
    let text = only_text(&started);
    println!("deferred: {text}");
    assert_eq!(text["decision"], "deferred", "{started:#}");
    assert_eq!(text["until"], "2026-03-03T18:00:00Z", "{started:#}");
    assert!(text["reason"].is_string(), "{text}");
    assert_eq!(started["conversation"]["status"]["state"], "waiting");
    assert!(setup.fake.sent_to("+18085550100").is_empty());

    // Marketing to a number that never opted in: blocked, with the reason, and the run is
    // over: nobody can answer a text that was never sent.
    let (status, started) = start_flow(&setup, "promo", "+12125550101", json!({})).await;
    assert_eq!(status, 201, "{started:#}");
    let text = only_text(&started);
    println!("blocked: {text}");
    assert_eq!(text["decision"], "blocked", "{started:#}");
    let reason = text["reason"].as_str().unwrap();
    assert!(
        reason.contains("opt-in") || reason.contains("consent"),
        "{reason}"
    );
    assert_eq!(
        started["conversation"]["status"]["state"], "ended",
        "{started:#}"
    );
    assert_eq!(started["conversation"]["status"]["outcome"], "blocked");
    assert!(setup.fake.sent_to("+12125550101").is_empty());

    // Ended, the contact can be started again (no 409 for a run that waits on nothing).
    let (status, again) = start_flow(&setup, "promo", "+12125550101", json!({})).await;
    assert_eq!(status, 201, "{again:#}");
    assert_eq!(only_text(&again)["decision"], "blocked");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_record_commands_read_through_the_running_server() {
    let (setup, server) = serve().await;
    let config = setup.config();
    let (status, _) = post_inbound(&setup, "SMstop1", "+12125550102", "STOP").await;
    assert_eq!(status, 200);

    let running = |args: &[&str]| {
        let output = cli(&config, args);
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            output.status.success(),
            "smsflow {args:?}: {stdout}{stderr}"
        );
        stdout
    };
    // The STOP's record, then the confirmation's once the provider took it: read after both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while serde_json::from_str::<Value>(&running(&["consent", "export", "+12125550102"]))
        .unwrap()
        .as_array()
        .unwrap()
        .len()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the confirmation was never recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let verified = running(&["consent", "verify"]);
    println!("{verified}");
    assert!(
        verified.starts_with("the consent ledger is intact: "),
        "{verified}"
    );
    let exported = running(&["consent", "export", "+12125550102"]);
    let records: Value = serde_json::from_str(&exported).unwrap();
    let records = records.as_array().unwrap();
    assert!(!records.is_empty(), "{exported}");
    assert!(
        records
            .iter()
            .all(|record| record["number"] == "+12125550102"),
        "{exported}"
    );
    let csv = running(&["consent", "export", "+12125550102", "--format", "csv"]);
    assert_eq!(csv.lines().count(), records.len() + 1, "{csv}");
    assert_eq!(running(&["inbox"]), "");
    assert_eq!(running(&["dlq", "list"]), "");

    // With the server stopped, the store itself says the same.
    assert!(server.terminate());
    assert_eq!(running(&["consent", "verify"]), verified);
    assert_eq!(running(&["consent", "export", "+12125550102"]), exported);
    assert_eq!(
        running(&["consent", "export", "+12125550102", "--format", "csv"]),
        csv
    );
}
