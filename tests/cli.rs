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
