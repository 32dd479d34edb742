//! The disk fills under `smsflow serve`. A file size limit put on the running process
//! (`prlimit --fsize`, with SIGXFSZ ignored) makes its store's writes fail as they would on a
//! full disk, without a mount. Texts keep arriving, as a provider retries them; each is either
//! acknowledged (200) or refused with 503 before any acknowledgement, never an error after one
//! or a dropped connection. Once there is room again and the server restarts, every
//! acknowledged text is answered exactly once, and the refused ones are accepted when retried.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;

use common::Server;
use common::fake_provider::{Setup, post_inbound, twilio_provider, wait_until};

const ECHO: &str = r#"
id = "echo"
program = "care"
kind = "transactional"
brand = "Acme Clinic"
start = "echo"
[triggers]
keywords = ["ECHO"]
[steps.echo]
type = "end"
text = "Acme Clinic: got {{reply}}. Reply STOP to opt out."
"#;

/// `prlimit --pid <pid> --fsize=<limit>`.
fn limit_file_size(pid: u32, limit: &str) {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={limit}")])
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_with_503_before_the_acknowledgement_and_loses_nothing() {
    let setup = Setup::with_fake(&[], &[("echo.toml", ECHO)]).await;
    setup.write_config(
        &twilio_provider(),
        2,
        &common::plugins_section("http://127.0.0.1:9"),
    );
    let server = Server::start_ignoring_file_size_signal(&setup.config(), setup.port);
    // A few texts with room to spare.
    for i in 0..5 {
        let (status, _) = post_inbound(&setup, &format!("SMok{i}"), &phone(i), &text(i)).await;
        assert_eq!(status, 200);
    }
    // No file may grow much past the largest now: a few hundred more texts fit, then the
    // writes sled needs fail as on a full disk.
    let data = setup.dir.path().join("data");
    let limit = largest_file(&data) + 512 * 1024;
    limit_file_size(server.pid(), &limit.to_string());
    let mut acknowledged = (0..5).collect::<Vec<usize>>();
    let mut refused = Vec::new();
    for i in 5..2_000 {
        let (status, body) = post_inbound(&setup, &format!("SMok{i}"), &phone(i), &text(i)).await;
        match status {
            200 => acknowledged.push(i),
            503 => refused.push(i),
            other => panic!("text {i}: {other} {body}"),
        }
        if refused.len() >= 20 {
            break;
        }
    }
    assert!(
        refused.len() >= 20,
        "the limit never bit: the largest file under data/ is {} bytes",
        largest_file(&data)
    );
    assert!(common::healthy(setup.port), "the server still answers");
    server.kill();

    // Room again: a restart answers every acknowledged text once, and accepts the retries.
    let _server = Server::start(&setup.config(), setup.port);
    for &i in &refused {
        let (status, _) = post_inbound(&setup, &format!("SMok{i}"), &phone(i), &text(i)).await;
        assert_eq!(status, 200, "the retry of text {i}");
    }
    let answered: Vec<usize> = acknowledged.iter().chain(&refused).copied().collect();
    wait_until("every text answered", || {
        answered
            .iter()
            .all(|&i| !setup.fake.sent_to(&phone(i)).is_empty())
    })
    .await;
    for &i in &answered {
        let sent = setup.fake.sent_to(&phone(i));
        assert_eq!(sent.len(), 1, "text {i}: {sent:?}");
        assert!(sent[0].body.contains(&text(i)), "{:?}", sent[0].body);
    }
    println!(
        "acknowledged {} before the disk filled, refused {} with 503",
        acknowledged.len(),
        refused.len()
    );
}

fn phone(i: usize) -> String {
    format!("+1212555{i:04}")
}

/// A long text (its echo still within the six segments the gate allows), so the store fills
/// in few of them.
fn text(i: usize) -> String {
    format!("ECHO {i} {}", "x".repeat(700))
}

fn largest_file(dir: &std::path::Path) -> u64 {
    let mut largest = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        largest = largest.max(if meta.is_dir() {
            largest_file(&entry.path())
        } else {
            meta.len()
        });
    }
    largest
}
