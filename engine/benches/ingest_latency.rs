//! Ingest-to-provider latency of the real `smsflow serve` binary.
//!
//! A local server plays Twilio's Messages API and notes when each reply arrives. The bench posts
//! signed inbound webhooks ("Yes please!") from distinct contacts at a steady rate; a catch-all
//! flow classifies each with the keyword-intents component and answers. Latency is from the
//! moment the webhook is sent to the moment the reply reaches the fake Twilio: verification,
//! the durable inbox (flushed), the flow turn (flushed), the outbox and the provider call.
//! Prints p50, p90, p99 and max, and the webhook acknowledgement times.
//! Needs the components built (`just bench` does it).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use smsflow::ingress::twilio;

const TEXTS: usize = 1000;
const PER_SECOND: u64 = 200;
const PUBLIC_URL: &str = "https://sms.example.com";
const AUTH_TOKEN: &str = "bench-token";
const OURS: &str = "+15550001000";

const FLOW: &str = r#"
id = "answer"
program = "bench"
kind = "transactional"
start = "understand"

[triggers]
catch_all = true

[steps.understand]
type = "classify"
plugin = "keyword-intents"
routes = { confirm = "confirmed" }
default = "other"

[steps.confirmed]
type = "end"
text = "Thanks, you're confirmed!"

[steps.other]
type = "end"
text = "Thanks, someone will get back to you."
"#;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: n={} p50={:.2?} p90={:.2?} p99={:.2?} max={:.2?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let arrivals: Arrivals = Arc::default();
    let recorded = Arc::clone(&arrivals);
    let app = axum::Router::new().route(
        "/2010-04-01/Accounts/{account}/Messages.json",
        axum::routing::post(move |body: String| {
            let recorded = Arc::clone(&recorded);
            async move {
                let to = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(key, _)| key == "To")
                    .map(|(_, value)| value.into_owned())
                    .unwrap_or_default();
                let mut arrivals = recorded.lock().unwrap();
                arrivals.entry(to).or_insert_with(Instant::now);
                let sid = format!("SM{:032}", arrivals.len());
                (StatusCode::CREATED, format!(r#"{{"sid": "{sid}"}}"#))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let repository = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows/answer.toml"), FLOW).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{PUBLIC_URL}"

[store]
path = "data/smsflow.db"

[flows]
dir = "flows"

[provider]
kind = "twilio"
from = "{OURS}"
account_sid = "ACbench"
auth_token = "{AUTH_TOKEN}"
api_base = "{fake}"
messages_per_second = 100000

[plugins]
dir = "{plugins}"
cache_dir = "{cache}"

[plugins.grants.crm-notes]
capabilities = ["config", "http"]

[plugins.grants.order-status]
capabilities = ["config", "http"]

[plugins.grants.faq-replies]
capabilities = ["config"]
"#,
        plugins = repository.join("target/plugins").display(),
        cache = repository.join("target/plugin-cache").display(),
    );
    std::fs::write(dir.path().join("smsflow.toml"), config).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["serve", "--config"])
        .arg(dir.path().join("smsflow.toml"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "smsflow did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let url = format!("{PUBLIC_URL}/webhooks/twilio");
    let mut sends = Vec::with_capacity(TEXTS);
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / PER_SECOND));
    for n in 0..TEXTS {
        ticker.tick().await;
        let contact = format!("+1212{n:07}");
        let params: Vec<(String, String)> = [
            ("MessageSid", format!("SM{n:032}")),
            ("From", contact.clone()),
            ("To", OURS.to_owned()),
            ("Body", "Yes please!".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
        let signature = twilio::signature(&url, &params, AUTH_TOKEN);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let request = client
            .post(format!("{base}/webhooks/twilio"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(body);
        let started = Instant::now();
        sends.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            (contact, started, started.elapsed())
        }));
    }
    let mut started_at = HashMap::new();
    let mut acks = Vec::new();
    for send in sends {
        let (contact, started, ack) = send.await.unwrap();
        started_at.insert(contact, started);
        acks.push(ack);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals.lock().unwrap().len() < TEXTS {
        assert!(Instant::now() < deadline, "not every text was answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let latencies: Vec<Duration> = arrivals
        .lock()
        .unwrap()
        .iter()
        .map(|(contact, arrived)| arrived.duration_since(started_at[contact]))
        .collect();
    let _ = server.kill();
    let _ = server.wait();
    println!("{TEXTS} inbound texts at {PER_SECOND}/s, each answered through the fake Twilio API:");
    report("webhook acknowledged (stored and flushed)", acks);
    report("ingest to provider", latencies);
}
