//! `just demo` can be repeated: `scripts/demo.sh --run` (the demo's steps without pauses) run
//! twice in a row, each time on a fresh store, sends the same texts both times, and its order
//! lookup is answered by the fake order API rather than handed off.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;

use common::{DAYTIME, free_port, repository};

/// One run of the demo's steps; everything it printed.
fn run_demo(dir: &std::path::Path) -> String {
    let output = Command::new(repository().join("scripts/demo.sh"))
        .arg("--run")
        .current_dir(repository())
        .env("SMSFLOW", env!("CARGO_BIN_EXE_smsflow"))
        .env("DEMO_DIR", dir)
        .env("DEMO_PORT", free_port().to_string())
        .env("DEMO_ORDER_PORT", free_port().to_string())
        .env("DEMO_HOOK_PORT", free_port().to_string())
        // Inside every quiet-hours window of the demo's New York numbers.
        .env("SMSFLOW_CLOCK", DAYTIME)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the demo failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// The texts the console provider printed, in order.
fn texts(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|line| line.starts_with("[console] "))
        .collect()
}

#[test]
fn the_demo_sends_the_same_texts_when_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_demo(dir.path());
    let second = run_demo(dir.path());
    let (first_texts, second_texts) = (texts(&first), texts(&second));
    assert_eq!(first_texts, second_texts);

    let all = first_texts.join("\n");
    // BILLING reaches a person both times (a kept store would find it still handed off).
    assert!(
        first.contains("[webhook] conversation.handoff"),
        "no handoff event reached the webhook receiver"
    );
    // ORDER asks for the number, and A100 is answered from the fake order API.
    assert!(all.contains("reply with your order number"), "{all}");
    assert!(all.contains("Order A100 has shipped"), "{all}");
    assert!(!all.contains("can't check orders"), "{all}");
    assert!(
        first.contains("[order api] GET /api/orders/A100 -> 200"),
        "{first}"
    );
    // The appointment starts both times (no 409), and the marketing text is blocked.
    assert!(all.contains("Ana"), "{all}");
    for output in [&first, &second] {
        assert!(
            !output.contains("already has an active conversation"),
            "{output}"
        );
        assert!(output.contains("\"decision\": \"blocked\""), "{output}");
        assert!(output.contains("\"outcome\": \"blocked\""), "{output}");
    }
    assert!(
        !all.contains("+12125550103"),
        "the blocked text was sent: {all}"
    );
}
