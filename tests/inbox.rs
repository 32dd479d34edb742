//! The agent inbox end to end: the real binary, the example BILLING flow, a local fake Twilio,
//! agents added with `smsflow agents add`, and the page driven in headless Chromium by
//! `tests/browser/inbox.mjs` (playwright-core against Debian's chromium; `scripts/browser-deps.sh`
//! installs both, and `just test` runs it first). Also: 200 agents on the event stream at once.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::fake_provider::{API_TOKEN, Setup, api_with_token, twilio_provider, wait_until};
use common::{Server, cli, plugins_section, repository};
use serde_json::json;

const CONTACT: &str = "+12125550142";
const CANNED_TEXT: &str = "Thanks for your patience. A refund is on its way.";

/// A server directory with the BILLING example flow, the simulator on, a manual billing queue
/// and the `thanks` canned reply.
async fn setup() -> Setup {
    let setup = Setup::with_fake(&["billing-issue.toml"], &[]).await;
    let rest = format!(
        r#"
[[queues]]
name = "billing"
first_response = "15m"

[canned]
thanks = "{CANNED_TEXT}"
{plugins}"#,
        plugins = plugins_section(&setup.fake_url),
    );
    setup.write_config(&twilio_provider(), 2, &rest);
    // The simulator is a `[server]` key: into the table the helper wrote.
    let config = std::fs::read_to_string(setup.config()).unwrap();
    let config = config.replacen("[server]\n", "[server]\nsimulator = true\n", 1);
    std::fs::write(setup.config(), config).unwrap();
    setup
}

/// `smsflow agents add` with the server stopped; the secret is the last line of its output.
fn add_agent(config: &Path, name: &str) -> String {
    let out = cli(config, &["agents", "add", name, "--queues", "billing"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().last().unwrap().to_owned()
}

fn screenshots() -> PathBuf {
    repository().join("target/screenshots")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_signs_in_sees_the_escalation_live_claims_replies_canned_and_resolves() {
    let setup = setup().await;
    let ana = add_agent(&setup.config(), "ana");
    let bob = add_agent(&setup.config(), "bob");
    let _server = Server::start(&setup.config(), setup.port);
    let browser = repository().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: run scripts/browser-deps.sh (just test does)"
    );
    std::fs::create_dir_all(screenshots()).unwrap();
    let run = Command::new("node")
        .arg("inbox.mjs")
        .current_dir(&browser)
        .env("BASE_URL", setup.url(""))
        .env("AGENT_ANA_SECRET", &ana)
        .env("AGENT_BOB_SECRET", &bob)
        .env("CONTACT", CONTACT)
        .env("CANNED", "thanks")
        .env("CANNED_TEXT", CANNED_TEXT)
        .env("SCREENSHOTS", screenshots())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Each step with what it measured (the hostile thread's opening time among them).
    println!("{stdout}");
    // The canned reply the agent sent in the page reached the provider.
    wait_until("the agent's reply at the provider", || {
        setup
            .fake
            .sent_to(CONTACT)
            .iter()
            .any(|sent| sent.body == CANNED_TEXT)
    })
    .await;
    for shot in ["inbox.png", "simulator.png"] {
        let bytes = std::fs::metadata(screenshots().join(shot)).unwrap().len();
        assert!(bytes > 10_000, "{shot} is {bytes} bytes");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_agents_on_the_event_stream_all_hear_a_new_handoff() {
    const AGENTS: usize = 200;
    let setup = setup().await;
    let _server = Server::start(&setup.config(), setup.port);
    // Added through the running server (the operator API), as `smsflow agents add` does.
    let mut secrets = Vec::new();
    for n in 0..AGENTS {
        let body = json!({ "name": format!("agent{n}"), "queues": ["billing"] }).to_string();
        let (status, added) = api_with_token(&setup, "POST", "/v1/agents", Some(body)).await;
        assert_eq!(status, 201, "{added}");
        secrets.push(added["secret"].as_str().unwrap().to_owned());
    }
    let client = reqwest::Client::new();
    let mut streams = Vec::new();
    for secret in &secrets {
        let response = client
            .get(setup.url("/v1/agent/events"))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    // A handoff, through the simulator (the same ingest as a provider's webhook).
    let body = json!({ "from": CONTACT, "text": "BILLING my card was charged twice" }).to_string();
    let sent = client
        .post(setup.url("/simulator/send"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let heard =
        futures_util::future::join_all(streams.into_iter().map(|mut response| async move {
            let mut seen = String::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !seen.contains("event: handoff") {
                let chunk = tokio::time::timeout_at(deadline, response.chunk()).await;
                match chunk {
                    Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                    _ => return false,
                }
            }
            seen.contains(CONTACT)
        }))
        .await;
    assert_eq!(heard.iter().filter(|heard| **heard).count(), AGENTS);
    // The operator's token is not an agent's.
    let refused = client
        .get(setup.url("/v1/agent/events"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}
