//! The `smsflow` binary as a plugin developer uses it: `plugin inspect` and `plugin call` on the
//! example components (`just plugins` builds them).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn smsflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .current_dir(repository())
        .output()
        .unwrap()
}

fn json_stdout(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn plugin_call_prints_the_confirm_intent() {
    let output = smsflow(&[
        "plugin",
        "call",
        "target/plugins/keyword-intents.wasm",
        "--input",
        r#"{"text":"Yes please!"}"#,
    ]);
    let result = json_stdout(&output);
    assert_eq!(result["name"], "confirm");
    assert!(result["confidence"].as_f64().unwrap() >= 0.9);
}

#[test]
fn plugin_call_passes_settings_to_a_reply_generator() {
    let output = smsflow(&[
        "plugin",
        "call",
        "target/plugins/faq-replies.wasm",
        "--set",
        r#"faq=[{"question":"When are you open?","keywords":["open","hours"],"answer":"9 to 5."}]"#,
        "--input",
        r#"{"text":"are you open today?"}"#,
    ]);
    let result = json_stdout(&output);
    assert_eq!(result["text"], "9 to 5.");
}

#[test]
fn plugin_inspect_shows_world_imports_and_exports() {
    let report = json_stdout(&smsflow(&[
        "plugin",
        "inspect",
        "target/plugins/order-status.wasm",
    ]));
    assert_eq!(report["name"], "order-status");
    assert_eq!(report["world"], "connector");
    let imports: Vec<&str> = report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|import| import.as_str().unwrap())
        .collect();
    assert!(
        imports.contains(&"smsflow:plugin/http@0.1.0"),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .all(|import| import.starts_with("smsflow:plugin/")),
        "{imports:?}"
    );
    assert_eq!(report["exports"], serde_json::json!(["lookup", "write"]));
    assert!(report["size_bytes"].as_u64().unwrap() > 1000);
}

#[test]
fn plugin_call_with_input_of_the_wrong_shape_says_what_it_expects() {
    let output = smsflow(&[
        "plugin",
        "call",
        "target/plugins/order-status.wasm",
        "--input",
        r#"{"text":"where is my order"}"#,
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("order-status") && stderr.contains("operation"),
        "{stderr}"
    );
}

#[test]
fn plugin_call_on_a_missing_file_fails_clearly() {
    let output = smsflow(&[
        "plugin",
        "call",
        "target/plugins/nope.wasm",
        "--input",
        "{}",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nope") || stderr.contains("plugin.toml"),
        "{stderr}"
    );
}

/// The example flows, copied into a temporary folder where one file is then broken.
fn flows_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repository().join("flows")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn check_passes_on_the_example_flows_and_reports_segments() {
    let output = smsflow(&["check", "flows/"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    for flow in [
        "appointment-confirmation",
        "lead-qualification",
        "order-status",
        "billing-issue",
        "re-engagement",
    ] {
        assert!(out.contains(&format!("ok: flow `{flow}`")), "{out}");
    }
    assert!(out.contains("1 segment, GSM-7"), "{out}");
}

#[test]
fn check_points_at_the_line_of_each_mistake_in_a_broken_copy() {
    let file = "appointment-confirmation.toml";
    // (what to replace, with what, the line:column and message expected)
    let cases = [
        ("start = \"remind\"", "start = \"remind", "10:", "invalid"),
        (
            "type = \"classify\"\nplugin",
            "type = \"classify\"\nplugins",
            "50:1",
            "unknown key `plugins`: did you mean `plugin`?",
        ),
        (
            "default = \"unclear\"",
            "default = \"unclaer\"",
            "53:11",
            "`unclaer`, which does not exist",
        ),
        (
            "Hi {{first_name}}",
            "Hi {{frist_name}}",
            "",
            "field `frist_name`, which nothing defines",
        ),
        (
            "plugin = \"keyword-intents\"\nmin_confidence = 0.7\nroutes = { confirm = \"confirmed\", cancel",
            "plugin = \"no-such-plugin\"\nmin_confidence = 0.7\nroutes = { confirm = \"confirmed\", cancel",
            "48:1",
            "plugin `no-such-plugin`, which is not loaded",
        ),
        (
            "cancel = \"cancelled\", reschedule = \"to_reschedule\", help",
            "cancel = \"cancelled\", maybe = \"to_desk\", reschedule = \"to_reschedule\", help",
            "48:1",
            "intent `maybe`, which `keyword-intents` never returns",
        ),
    ];
    for (from, to, at, message) in cases {
        let dir = flows_copy();
        let path = dir.path().join(file);
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(source.contains(from), "the example changed: {from}");
        std::fs::write(&path, source.replacen(from, to, 1)).unwrap();
        let output = smsflow(&["check", dir.path().to_str().unwrap()]);
        let out = stdout(&output);
        assert_eq!(output.status.code(), Some(1), "{to}: {out}");
        let line = out
            .lines()
            .find(|line| line.contains(message))
            .unwrap_or_else(|| panic!("{to}: no `{message}` in:\n{out}"));
        assert!(
            line.starts_with(&format!("{}:{at}", path.display())),
            "{to}: expected {file}:{at}, got {line}"
        );
    }
}

#[test]
fn test_runs_every_example_scenario_with_the_real_plugins() {
    let output = smsflow(&["test", "flows/"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    for file in [
        "appointment-confirmation",
        "lead-qualification",
        "order-status",
        "billing-issue",
        "re-engagement",
    ] {
        assert!(out.contains(&format!("{file}.test.toml")), "{out}");
    }
}

#[test]
fn test_counts_the_scenarios_broken_flows_stop_as_not_run() {
    let dir = flows_copy();
    let flow = dir.path().join("appointment-confirmation.toml");
    let source = std::fs::read_to_string(&flow).unwrap();
    std::fs::write(&flow, source.replacen("next = ", "nxet = ", 1)).unwrap();
    let file = dir.path().join("appointment-confirmation.test.toml");
    let scenarios = std::fs::read_to_string(&file)
        .unwrap()
        .matches("[[scenarios]]")
        .count();
    assert!(scenarios > 1);
    let output = smsflow(&["test", file.to_str().unwrap()]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("the flows do not load"), "{out}");
    assert!(
        out.contains(&format!("({scenarios} scenarios not run)")),
        "{out}"
    );
    assert!(out.contains(&format!("{scenarios} could not run")), "{out}");
}

#[test]
fn test_shows_a_readable_diff_when_a_scenario_fails() {
    let dir = flows_copy();
    let path = dir.path().join("appointment-confirmation.test.toml");
    let source = std::fs::read_to_string(&path).unwrap();
    let (before, after) = source.split_once("expect_replies = [\"").unwrap();
    std::fs::write(&path, format!("{before}expect_replies = [\"WRONG {after}")).unwrap();
    let output = smsflow(&["test", path.to_str().unwrap()]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(out.contains("the replies differ"), "{out}");
    assert!(out.contains("- WRONG "), "{out}");
    assert!(out.contains("+ "), "{out}");
}

/// The 1-based line of the first line of `source` that starts with `prefix`.
fn line_of(source: &str, prefix: &str) -> usize {
    source
        .lines()
        .position(|line| line.starts_with(prefix))
        .unwrap()
        + 1
}

#[test]
fn check_finds_loops_unreachable_steps_and_marketing_texts_without_opt_out() {
    let dir = flows_copy();
    let appointment = dir.path().join("appointment-confirmation.toml");
    let mut source = std::fs::read_to_string(&appointment).unwrap();
    source.push_str(
        "\n[steps.loop_a]\ntype = \"set\"\nfields = { a = \"1\" }\nnext = \"loop_b\"\n\n[steps.loop_b]\ntype = \"set\"\nfields = { b = \"2\" }\nnext = \"loop_a\"\n",
    );
    std::fs::write(&appointment, &source).unwrap();
    let marketing = dir.path().join("re-engagement.toml");
    let offer =
        std::fs::read_to_string(&marketing)
            .unwrap()
            .replacen(" Reply STOP to opt out.", "", 1);
    std::fs::write(&marketing, &offer).unwrap();

    let output = smsflow(&["check", dir.path().to_str().unwrap()]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let expect = |path: &std::path::Path, line: usize, message: &str| {
        let prefix = format!("{}:{line}:1: ", path.display());
        assert!(
            out.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(message)),
            "no `{prefix}...{message}` in:\n{out}"
        );
    };
    let loop_a = line_of(&source, "[steps.loop_a]");
    let loop_b = line_of(&source, "[steps.loop_b]");
    expect(&appointment, loop_a, "step `loop_a` is unreachable");
    expect(&appointment, loop_b, "step `loop_b` is unreachable");
    expect(
        &appointment,
        loop_a,
        "loop_a -> loop_b -> loop_a form a loop with no `wait` step",
    );
    expect(
        &marketing,
        line_of(&offer, "[steps.offer_discount]"),
        "does not say how to opt out",
    );
}

/// Runs `check` on `dir` with `args` after it, and the line of its output that starts with
/// `path:at`.
fn check_line(dir: &std::path::Path, args: &[&str], path: &std::path::Path, at: &str) -> String {
    let mut command = vec!["check", dir.to_str().unwrap()];
    command.extend(args);
    let output = smsflow(&command);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let prefix = format!("{}:{at}: ", path.display());
    out.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}...` in:\n{out}"))
        .to_owned()
}

#[test]
fn check_refuses_a_text_over_the_segment_limit_and_says_where_the_limit_comes_from() {
    let dir = flows_copy();
    let path = dir.path().join("order-status.toml");
    let from = "text = \"Order {{order_id}} {{order_status_text}}. Estimated delivery: {{order_eta}}. Text ORDER any time to check again.\"";
    // "Order : " and the rest are 66 parts of 153 septets; the field only adds to it.
    let to = format!(
        "text = \"Order {{{{order_id}}}}: {}\"",
        "a".repeat(66 * 153 - 8)
    );
    let source = std::fs::read_to_string(&path).unwrap();
    assert!(source.contains(from), "the example changed: {from}");
    std::fs::write(&path, source.replacen(from, &to, 1)).unwrap();
    let at = format!("{}:8", line_of(&source, from));
    let message = |limit: u32, from: &str| {
        format!(
            "step `status_with_eta` (en): this text takes at least 66 segments, more than the \
             limit of {limit} ({from}): the compliance gate would refuse to send it; shorten it, \
             split it over several `send` steps or raise the limit"
        )
    };

    let line = check_line(dir.path(), &[], &path, &at);
    assert_eq!(
        line,
        message(
            6,
            "the default `[compliance] max_segments`: pass --config to check against yours"
        )
    );
    let line = check_line(dir.path(), &["--config", "smsflow.toml"], &path, &at);
    assert_eq!(
        line,
        message(6, "`[compliance] max_segments` in smsflow.toml")
    );

    // The operator's limit decides: at 65 it is still refused, at 66 it passes.
    // Outside the flows folder, where every `*.toml` is a flow.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("operator.toml");
    let plugins = repository().join("target/plugins");
    let write_config = |max: u32| {
        let text = format!(
            "[plugins]\ndir = {:?}\n\n[compliance]\nmax_segments = {max}\n",
            plugins.display().to_string()
        );
        std::fs::write(&config, text).unwrap();
    };
    write_config(65);
    let line = check_line(
        dir.path(),
        &["--config", config.to_str().unwrap()],
        &path,
        &at,
    );
    assert_eq!(
        line,
        message(
            65,
            &format!("`[compliance] max_segments` in {}", config.display())
        )
    );
    write_config(66);
    let output = smsflow(&[
        "check",
        dir.path().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stdout(&output));
}

#[test]
fn check_refuses_a_turn_longer_than_the_runtime_runs_at_the_step_that_crosses_it() {
    let dir = flows_copy();
    let path = dir.path().join("billing-issue.toml");
    let mut source = std::fs::read_to_string(&path).unwrap().replacen(
        "start = \"to_billing\"",
        "start = \"step_000\"",
        1,
    );
    // 101 steps before the handoff: the handoff would be the 102nd step of the first turn.
    for step in 0..=100 {
        let next = if step == 100 {
            "to_billing".to_owned()
        } else {
            format!("step_{:03}", step + 1)
        };
        source.push_str(&format!(
            "\n[steps.step_{step:03}]\ntype = \"set\"\nfields = {{ n = \"{step}\" }}\nnext = \"{next}\"\n"
        ));
    }
    std::fs::write(&path, &source).unwrap();
    let at = format!("{}:1", line_of(&source, "[steps.step_100]"));
    let line = check_line(dir.path(), &[], &path, &at);
    assert_eq!(
        line,
        "step `step_100` would be step 101 of one turn without a `wait`: the runtime hands the \
         conversation off after MAX_STEPS_PER_TURN = 100 steps in one turn (this turn starts at \
         `step_000`, the flow's `start`, and its longest path runs 102 steps); add a `wait` \
         before this step or shorten the path"
    );
}

#[test]
fn consent_verify_fails_on_a_ledger_with_one_record_altered_on_disk() {
    use smsflow::compliance::ledger::{
        ConsentClass, ConsentEvent, ConsentRecord, ConsentSource, Ledger, NewConsent,
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("smsflow.toml");
    std::fs::write(&config, "[store]\npath = \"db\"\n").unwrap();
    {
        let store = smsflow::store::Store::open(&dir.path().join("db")).unwrap();
        let ledger = Ledger::new(store.tables().consent);
        for (n, (event, text)) in [
            (ConsentEvent::OptIn, "START"),
            (ConsentEvent::OptOut, "STOP, please"),
            (ConsentEvent::OptIn, "UNSTOP"),
        ]
        .into_iter()
        .enumerate()
        {
            ledger
                .append(NewConsent {
                    number: "+12125550100".into(),
                    program: "promotions".into(),
                    class: ConsentClass::Marketing,
                    event,
                    source: ConsentSource::Keyword {
                        keyword: text.into(),
                        message_id: format!("SM{n}"),
                    },
                    disclosure: None,
                    frequency: None,
                    raw_text: Some(text.into()),
                    at_ms: 1_767_625_200_000 + i64::try_from(n).unwrap(),
                })
                .unwrap();
        }
        store.flush_sync().unwrap();
    }
    let config = config.to_str().unwrap();
    let output = smsflow(&["consent", "verify", "--config", config]);
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(stdout(&output).contains("3 records"));
    let csv = smsflow(&[
        "consent",
        "export",
        "+12125550100",
        "--format",
        "csv",
        "--config",
        config,
    ]);
    assert!(csv.status.success());
    assert_eq!(stdout(&csv).lines().count(), 4, "{}", stdout(&csv));
    assert!(
        stdout(&csv).contains("\"STOP, please\""),
        "{}",
        stdout(&csv)
    );

    // Someone edits record 2 on disk so the opt-out reads as something else.
    {
        let store = smsflow::store::Store::open(&dir.path().join("db")).unwrap();
        let ledger = store.tables().consent;
        let mut record: ConsentRecord = ledger.get(2).unwrap().unwrap();
        record.raw_text = Some("hello".into());
        ledger.overwrite_for_tests(2, &record).unwrap();
        store.flush_sync().unwrap();
    }
    let output = smsflow(&["consent", "verify", "--config", config]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("BROKEN"), "{}", stdout(&output));
    assert!(stdout(&output).contains('2'), "{}", stdout(&output));
}

#[test]
fn a_scenario_that_needs_a_quiet_hours_exemption_passes_only_under_the_config_that_grants_it() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::write(
        flows.join("alert.toml"),
        r#"
id = "alert"
program = "alerts"
kind = "transactional"
brand = "Northwind Bank"
start = "alert"

[triggers]
api = true

[steps.alert]
type = "end"
text = "Northwind Bank: a card payment of $900 was declined. Reply STOP to opt out."
"#,
    )
    .unwrap();
    // 02:00 in New York: no text goes out unless the program is exempt from quiet hours.
    std::fs::write(
        flows.join("alert.test.toml"),
        r#"
flow = "alert"
start_at = "2026-03-04T07:00:00Z"

[[scenarios]]
name = "a fraud alert at night"
contact = "+12125550123"
steps = [{ start = {}, expect_gate = ["sent"] }]
"#,
    )
    .unwrap();
    let flows = flows.to_str().unwrap();
    let without = smsflow(&["test", flows]);
    assert_eq!(without.status.code(), Some(1), "{}", stdout(&without));
    assert!(
        stdout(&without).contains("deferred"),
        "{}",
        stdout(&without)
    );

    let config = dir.path().join("smsflow.toml");
    std::fs::write(
        &config,
        format!(
            "[plugins]\ndir = \"{}\"\n\n[programs.alerts]\n# Fraud alerts are the account holder's own security.\nquiet_hours_exempt = true\n",
            repository().join("target/plugins").display()
        ),
    )
    .unwrap();
    let with = smsflow(&["test", flows, "--config", config.to_str().unwrap()]);
    assert!(with.status.success(), "{}", stdout(&with));
    assert!(
        stdout(&with).contains("1 scenario: 1 passed"),
        "{}",
        stdout(&with)
    );
}

#[test]
fn agents_add_prints_a_secret_once_stores_its_hash_and_disable_refuses_it() {
    use smsflow::agents::{Agents, AuthError};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("smsflow.toml");
    std::fs::write(&config, "[store]\npath = \"db\"\n").unwrap();
    let config = config.to_str().unwrap();
    let output = smsflow(&[
        "agents",
        "add",
        "ana",
        "--queues",
        "billing,support",
        "--config",
        config,
    ]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    let secret = out.lines().last().unwrap().to_owned();
    assert!(secret.starts_with("ana."), "{out}");
    assert!(
        out.contains("ana (agent; queues billing, support)"),
        "{out}"
    );

    let again = smsflow(&[
        "agents", "add", "ana", "--queues", "billing", "--config", config,
    ]);
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("already an agent called `ana`"), "{error}");
    let boss = smsflow(&[
        "agents",
        "add",
        "bo",
        "--queues",
        "billing",
        "--supervisor",
        "--config",
        config,
    ]);
    assert!(boss.status.success(), "{}", stdout(&boss));
    let list = stdout(&smsflow(&["agents", "list", "--config", config]));
    assert_eq!(
        list,
        "ana (agent; queues billing, support)\nbo (supervisor; queues billing)\n"
    );

    let check = |expect_ok: bool| {
        let store = smsflow::store::Store::open(&dir.path().join("db")).unwrap();
        let raw = format!("{:?}", store.tables().agents.all().unwrap());
        assert!(!raw.contains(&secret), "the secret itself is stored");
        let agents = Agents::new(&store, std::sync::Arc::new(smsflow::clock::SystemClock));
        let signed_in = agents.authenticate(&secret);
        if expect_ok {
            assert_eq!(signed_in.unwrap().name, "ana");
        } else {
            assert_eq!(signed_in, Err(AuthError::Disabled("ana".into())));
        }
    };
    check(true);
    let disabled = smsflow(&["agents", "disable", "ana", "--config", config]);
    assert!(
        stdout(&disabled).contains("disabled ana"),
        "{}",
        stdout(&disabled)
    );
    check(false);
    let unknown = smsflow(&["agents", "disable", "zed", "--config", config]);
    assert!(!unknown.status.success());
}
