//! `smsflow serve` killed (SIGKILL) inside a wait: after a restart the wait's timer fires once,
//! and a conversation keeps the flow version it started on when the file changes.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, free_port};

const TOKEN: &str = "test-token";
const CONTACT: &str = "+12125550142";

/// A flow that greets, waits `timeout` for a reply and sends one reminder when none comes.
fn reminder_flow(greeting: &str, timeout: &str) -> String {
    format!(
        r#"
id = "reminder"
program = "test"
kind = "transactional"
start = "greet"

[triggers]
api = true
fields = ["first_name"]

[steps.greet]
type = "send"
text = "{greeting} {{{{first_name}}}}, reply YES to confirm."
next = "wait_reply"

[steps.wait_reply]
type = "wait"
timeout = "{timeout}"
on_reply = "thanks"
on_timeout = "remind"

[steps.remind]
type = "send"
text = "Reminder: reply YES to confirm."
next = "wait_again"

[steps.wait_again]
type = "wait"
timeout = "1h"
on_reply = "thanks"
on_timeout = "thanks"

[steps.thanks]
type = "end"
text = "Thanks!"
"#
    )
}

/// Minimal blocking HTTP for the test, on a current-thread runtime.
mod reqwest {
    pub fn request(method: &str, url: &str, body: Option<&str>) -> Result<(u16, String), ()> {
        request_as(super::TOKEN, method, url, body)
    }

    pub fn request_as(
        token: &str,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), ()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|_| ())?;
        runtime.block_on(async {
            let client = ::reqwest::Client::new();
            let mut request = client
                .request(method.parse().map_err(|_| ())?, url)
                .bearer_auth(token);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_owned());
            }
            let response = request.send().await.map_err(|_| ())?;
            let status = response.status().as_u16();
            Ok((status, response.text().await.map_err(|_| ())?))
        })
    }
}

fn conversation(server: &Server) -> serde_json::Value {
    let (status, body) = reqwest::request(
        "GET",
        &format!("{}/v1/conversations/{CONTACT}", server.base),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn sent_texts(conversation: &serde_json::Value) -> Vec<String> {
    conversation["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["type"] == "outbound")
        .map(|entry| entry["text"].as_str().unwrap().to_owned())
        .collect()
}

fn setup(timeout: &str) -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    std::fs::write(
        dir.path().join("flows/reminder.toml"),
        reminder_flow("Hi", timeout),
    )
    .unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("smsflow.toml"),
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
api_token = "{TOKEN}"

[store]
path = "data/smsflow.db"

[flows]
dir = "flows"
reload_interval_ms = 100

{plugins}
"#,
            plugins = common::plugins_section("http://127.0.0.1:9"),
        ),
    )
    .unwrap();
    (dir, port)
}

fn start_reminder(server: &Server) {
    start_for(server, CONTACT, "Ana");
}

fn wait_for(
    server: &Server,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = conversation(server);
        if ready(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {state:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_wait_survives_sigkill_and_its_timer_fires_once() {
    let (dir, port) = setup("2s");
    let server = Server::start(&dir.path().join("smsflow.toml"), port);
    start_reminder(&server);
    let state = conversation(&server);
    assert_eq!(state["conversation"]["status"]["state"], "waiting");
    assert_eq!(sent_texts(&state), ["Hi Ana, reply YES to confirm."]);
    server.kill();

    // Down past the deadline: the timer fires once the engine is back.
    std::thread::sleep(Duration::from_millis(2500));
    let server = Server::start(&dir.path().join("smsflow.toml"), port);
    let state = wait_for(&server, "the reminder", |state| {
        sent_texts(state).len() == 2
    });
    assert_eq!(
        sent_texts(&state),
        [
            "Hi Ana, reply YES to confirm.",
            "Reminder: reply YES to confirm."
        ]
    );
    assert_eq!(state["conversation"]["status"]["step"], "wait_again");
    // The outbox delivered each text once.
    let state = wait_for(&server, "delivery", |state| {
        state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|message| message["status"]["state"] == "sent")
    });
    assert_eq!(state["messages"].as_array().unwrap().len(), 2);
    server.kill();

    // Another crash and restart: the fired timer stays fired.
    let server = Server::start(&dir.path().join("smsflow.toml"), port);
    std::thread::sleep(Duration::from_millis(500));
    let state = conversation(&server);
    assert_eq!(sent_texts(&state).len(), 2, "{state:#}");
    assert_eq!(state["messages"].as_array().unwrap().len(), 2);
}

fn start_for(server: &Server, phone: &str, name: &str) -> serde_json::Value {
    let (status, body) = reqwest::request(
        "POST",
        &format!("{}/v1/flows/reminder/start", server.base),
        Some(&format!(
            r#"{{"to": "{phone}", "fields": {{"first_name": "{name}"}}}}"#
        )),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn flows_reload_without_a_restart_and_conversations_keep_their_version() {
    let (dir, port) = setup("3s");
    let flow_file = dir.path().join("flows/reminder.toml");
    let server = Server::start(&dir.path().join("smsflow.toml"), port);
    start_reminder(&server);
    let version = conversation(&server)["conversation"]["flow"]["version"].clone();

    // A broken edit is refused: the running version stays in service.
    std::fs::write(
        &flow_file,
        reminder_flow("Hello", "3s").replace("on_timeout = \"remind\"", "on_timeout = \"nowhere\""),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let started = start_for(&server, "+12125550198", "Cy");
    assert_first_text_sent(&started, "Hi Cy, reply YES to confirm.");

    // A good edit is picked up without a restart, for new conversations only.
    let edited = reminder_flow("Hello", "3s").replace("Reminder:", "Edited reminder:");
    std::fs::write(&flow_file, edited).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let started = start_for(&server, "+12125550199", "Bo");
    assert_first_text_sent(&started, "Hello Bo, reply YES to confirm.");
    assert_ne!(started["conversation"]["flow"]["version"], version);

    // After a crash, the first conversation finishes on its own version's texts.
    server.kill();
    let server = Server::start(&dir.path().join("smsflow.toml"), port);
    let state = wait_for(&server, "the reminder", |state| {
        sent_texts(state).len() == 2
    });
    assert_eq!(sent_texts(&state)[1], "Reminder: reply YES to confirm.");
    assert_eq!(state["conversation"]["flow"]["version"], version);
}

#[test]
fn bad_api_requests_are_refused_and_change_nothing() {
    let (dir, port) = setup("1h");
    let server = Server::start(&dir.path().join("smsflow.toml"), port);
    let url = format!("{}/v1/flows/reminder/start", server.base);
    let cases = [
        (
            format!("{}/v1/flows/nope/start", server.base),
            r#"{"to": "+12125550142", "fields": {"first_name": "A"}}"#,
            404,
            "no flow `nope`",
        ),
        (
            url.clone(),
            r#"{"to": "tel:+12125550142", "fields": {"first_name": "A"}}"#,
            422,
            "E.164",
        ),
        (
            url.clone(),
            r#"{"to": "+999999999999999999", "fields": {"first_name": "A"}}"#,
            422,
            "E.164",
        ),
        (
            url.clone(),
            r#"{"to": "+12125550142", "fields": {}}"#,
            422,
            "`first_name`",
        ),
        (
            url.clone(),
            r#"{"to": "+12125550142", "#,
            400,
            "not a start request",
        ),
    ];
    let (status, text) = reqwest::request_as(
        "wrong-token",
        "POST",
        &url,
        Some(r#"{"to": "+12125550142", "fields": {"first_name": "A"}}"#),
    )
    .unwrap();
    assert_eq!(status, 401, "{text}");
    for (url, body, status, message) in cases {
        let (got, text) = reqwest::request("POST", &url, Some(body)).unwrap();
        assert_eq!(got, status, "{body}: {text}");
        assert!(text.contains(message), "{body}: {text}");
    }
    let (status, _) = reqwest::request(
        "GET",
        &format!("{}/v1/conversations/{CONTACT}", server.base),
        None,
    )
    .unwrap();
    assert_eq!(
        status, 404,
        "a refused start must not create a conversation"
    );
    start_reminder(&server);
    let (status, text) = reqwest::request(
        "POST",
        &url,
        Some(r#"{"to": "+12125550142", "fields": {"first_name": "A"}}"#),
    )
    .unwrap();
    assert_eq!(status, 409, "{text}");
    assert_eq!(sent_texts(&conversation(&server)).len(), 1);
}

/// `smsflow agents` with `args`, on the server's config.
fn agents_command(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("agents")
        .args(args)
        .arg("--config")
        .arg(dir.join("smsflow.toml"))
        .output()
        .unwrap()
}

#[test]
fn agents_are_added_listed_and_disabled_through_a_running_server_and_survive_it() {
    let (dir, port) = setup("1d");
    let server = Server::start(&dir.path().join("smsflow.toml"), port);
    let added = agents_command(dir.path(), &["add", "ana", "--queues", "billing"]);
    let out = String::from_utf8_lossy(&added.stdout).into_owned();
    assert!(
        added.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(out.contains("added ana (agent; queues billing)"), "{out}");
    let secret = out.lines().last().unwrap().to_owned();
    assert!(secret.starts_with("ana."), "{out}");
    let taken = agents_command(dir.path(), &["add", "ana", "--queues", "billing"]);
    assert!(!taken.status.success());
    let error = String::from_utf8_lossy(&taken.stderr).into_owned();
    assert!(
        error.contains("409") && error.contains("already an agent"),
        "{error}"
    );
    let disabled = agents_command(dir.path(), &["disable", "ana"]);
    assert!(disabled.status.success());
    server.kill();
    // Stopped, the command reads the store itself: the agent is there, disabled.
    let list = agents_command(dir.path(), &["list"]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "ana (agent; queues billing; disabled)\n"
    );
}

/// The start's first text was cleared by the gate, or is waiting its turn at the sender's
/// pace (three starts within a second), and begins with `opening`.
fn assert_first_text_sent(started: &serde_json::Value, opening: &str) {
    let first = &started["texts"][0];
    assert!(
        first["decision"] == "sent" || first["decision"] == "queued",
        "{started:#}"
    );
    let text = first["text"].as_str().unwrap_or_default();
    assert!(text.starts_with(opening), "{started:#}");
}
