//! `smsflow chat` driven through its stdin, as a person (or a script) would: the real binary,
//! the example flows and the example plugins (`just plugins` builds them).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use common::repository;

/// Monday 2 March 2026, 10:00 in New York.
const MORNING: &str = "2026-03-02T15:00:00Z";
/// A New York number: quiet hours are in its zone.
const NEW_YORK: &str = "+12125550143";

/// `smsflow chat ARGS` with `input` on stdin.
fn chat(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .arg("chat")
        .args(args)
        .current_dir(repository())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn a_patient_confirms_through_the_chat() {
    let output = chat(
        &[
            "appointment-confirmation",
            "--as",
            NEW_YORK,
            "--at",
            MORNING,
        ],
        "/start first_name=Ana date=\"March 3\" time=\"10:00 AM\"\nYes please!\n/status\n",
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    // The banner says what this is and how to start the flow.
    assert!(
        out.starts_with("Chat with flow `appointment-confirmation` as +12125550143"),
        "{out}"
    );
    assert!(
        out.contains("/start first_name=... date=... time=..."),
        "{out}"
    );
    // The first text as it would reach the phone: the gate adds the opt-out wording.
    assert!(
        out.contains(
            "bot> Hi Ana, Bright Smile Dental here: you're booked for March 3 at 10:00 AM. \
             Reply YES to confirm, or let us know if you need to reschedule."
        ),
        "{out}"
    );
    assert!(out.contains("Reply STOP to opt out"), "{out}");
    assert!(out.contains("··· waiting at `await_answer`"), "{out}");
    assert!(out.contains("··· classified: confirm"), "{out}");
    assert!(
        out.contains("bot> Thanks, Ana! You're confirmed for March 3 at 10:00 AM. See you then!"),
        "{out}"
    );
    assert!(out.contains("--- the run ended: confirmed"), "{out}");
    // `/status` shows the fields the run set.
    assert!(out.contains("··· intent = confirm"), "{out}");
    // Not a terminal: no prompts.
    assert!(!out.contains("you> "), "{out}");
}

#[test]
fn waiting_fires_the_reminder_and_the_timeout() {
    let output = chat(
        &[
            "flows/appointment-confirmation.toml",
            "--as",
            NEW_YORK,
            "--at",
            MORNING,
        ],
        "/start first_name=Ben date=\"March 3\" time=\"2:30 PM\"\n/wait 1d\n/wait 1d\n",
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    let reminder = out
        .find("bot> Hi Ben, just checking")
        .unwrap_or_else(|| panic!("no reminder:\n{out}"));
    let first_wait = out.find("··· 1day later: 2026-03-03T15:00:00Z").unwrap();
    assert!(first_wait < reminder, "{out}");
    assert!(out.contains("··· `await_answer` timed out"), "{out}");
    assert!(
        out.contains("··· 1day later: 2026-03-04T15:00:00Z"),
        "{out}"
    );
}

#[test]
fn the_gate_holds_a_text_at_night_and_stop_is_answered_by_the_host() {
    // 23:00 in New York: quiet hours hold the first text until the morning.
    let output = chat(
        &[
            "appointment-confirmation",
            "--as",
            NEW_YORK,
            "--at",
            "2026-03-03T04:00:00Z",
        ],
        "/start first_name=Ana date=\"March 3\" time=\"10:00 AM\"\n/wait 10h\nSTOP\n",
    );
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(out.contains("(held by the gate until 2026-03-03T"), "{out}");
    assert!(out.contains("bot> (held earlier) Hi Ana"), "{out}");
    assert!(out.to_lowercase().contains("unsubscribed"), "{out}");
}

#[test]
fn bad_lines_are_refused_and_the_chat_goes_on() {
    let output = chat(
        &["appointment-confirmation", "--at", MORNING],
        "/wiat 2h\n/start first_name=Ana\n/start Ana\nhello\n",
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains("error: unknown command `/wiat`: did you mean `wait`?"),
        "{out}"
    );
    assert!(out.contains("error: the start was refused"), "{out}");
    assert!(out.contains("`Ana` is not a field"), "{out}");
    // The text after the errors is still taken: no flow takes it, so no run begins.
    assert!(out.ends_with("··· no run yet\n"), "{out}");
}

#[test]
fn an_unknown_flow_or_number_is_refused_before_the_chat() {
    let output = chat(&["appointment-confirmaton"], "");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("did you mean `appointment-confirmation`"),
        "{err}"
    );
    let output = chat(&["appointment-confirmation", "--as", "555-0100"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--as `555-0100` is not a phone number"));
    let output = chat(&["appointment-confirmation", "--at", "tomorrow"], "");
    assert!(stderr(&output).contains("RFC 3339"), "{}", stderr(&output));
}
