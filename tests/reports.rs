//! `/reports` in headless Chromium (`tests/browser/reports.mjs`): the real binary with a
//! two-variant campaign's traffic (texts, delivery reports, clicks, conversions through the
//! API), a supervisor and an agent added with `smsflow agents add`; writes
//! `target/screenshots/reports.png`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;

use common::fake_provider::{
    API_TOKEN, Setup, api_with_token, conversation, post_status, twilio_provider, wait_until,
};
use common::{PROGRAMS, Server, cli, repository};
use serde_json::{Value, json};

const FLOW: &str = r#"
id = "offer"
program = "offers"
kind = "marketing"
brand = "Acme Clinic"
start = "pick"
[triggers]
api = true
[steps.pick]
type = "split"
variants = [
  { name = "A", weight = 50, next = "a" },
  { name = "B", weight = 50, next = "b" },
]
[steps.a]
type = "send"
text = 'Acme Clinic: whitening 20% off {{link "https://clinic.example/a"}} Reply STOP to opt out.'
[steps.b]
type = "send"
text = 'Acme Clinic: a free checkup {{link "https://clinic.example/b"}} Reply STOP to opt out.'
"#;

const PEOPLE: usize = 120;

fn add_agent(config: &Path, name: &str, supervisor: bool) -> String {
    let mut args = vec!["agents", "add", name, "--queues", "default"];
    if supervisor {
        args.push("--supervisor");
    }
    let out = cli(config, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

async fn delivered(setup: &Setup, sid: &str) {
    let (code, text) = post_status(setup, sid, "delivered").await;
    assert_eq!(code, 204, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_supervisor_reads_the_report_in_the_browser() {
    let setup = Setup::with_fake(&[], &[("offer.toml", FLOW)]).await;
    let rest = format!(
        "{}{PROGRAMS}",
        common::plugins_section("http://127.0.0.1:9")
    );
    setup.write_config(&twilio_provider(), 2, &rest);
    let supervisor = add_agent(&setup.config(), "sam", true);
    let agent = add_agent(&setup.config(), "ann", false);
    let _server = Server::start(&setup.config(), setup.port);

    // Consenting contacts, and a campaign to them.
    let mut csv = String::from("phone,consent_source,consent_program,consent_disclosure\n");
    for i in 0..PEOPLE {
        csv.push_str(&format!(
            "+1212555{:04},web form,offers,Offers by text. Reply STOP to opt out.\n",
            3000 + i
        ));
    }
    let response = reqwest::Client::new()
        .post(setup.url("/v1/contacts/import"))
        .bearer_auth(API_TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = json!({"key": "spring", "flow": "offer", "segment": "has_consent(offers)", "messages_per_second": 200});
    let (status, created) =
        api_with_token(&setup, "POST", "/v1/campaigns", Some(body.to_string())).await;
    assert_eq!(status, 201, "{created}");
    wait_until("the campaign's texts", || setup.fake.sent().len() >= PEOPLE).await;

    // Deliveries, clicks and conversions: B clicks and buys more often.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for i in 0..PEOPLE {
        let phone = format!("+1212555{:04}", 3000 + i);
        // The provider has the text; its id is recorded a moment after its answer.
        let mut sid = None;
        for _ in 0..200 {
            let (_, state) = conversation(&setup, &phone).await;
            sid = state["messages"][0]["provider_id"]
                .as_str()
                .map(str::to_owned);
            if sid.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        delivered(&setup, &sid.expect("the provider's id")).await;
        let body = setup.fake.sent_to(&phone)[0].body.clone();
        let variant_b = body.contains("checkup");
        if i % if variant_b { 2 } else { 4 } == 0 {
            let code = body.split("/l/").nth(1).unwrap().split(' ').next().unwrap();
            let response = client
                .get(setup.url(&format!("/l/{code}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 302);
            let order = json!({"phone": phone, "value": 30, "currency": "USD", "idempotency_key": format!("o{i}")});
            let (status, answer): (u16, Value) =
                api_with_token(&setup, "POST", "/v1/conversions", Some(order.to_string())).await;
            assert_eq!(status, 201, "{answer}");
        }
    }

    let browser = repository().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: run scripts/browser-deps.sh (just test does)"
    );
    let screenshots = repository().join("target/screenshots");
    let run = Command::new("node")
        .arg("reports.mjs")
        .current_dir(&browser)
        .env("BASE_URL", setup.url(""))
        .env("SUPERVISOR_SECRET", &supervisor)
        .env("AGENT_SECRET", &agent)
        .env("API_TOKEN", API_TOKEN)
        .env("SCREENSHOTS", &screenshots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{stdout}");
    let bytes = std::fs::metadata(screenshots.join("reports.png"))
        .unwrap()
        .len();
    assert!(bytes > 20_000, "reports.png is {bytes} bytes");
}
