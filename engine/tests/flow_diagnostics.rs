//! Snapshot tests of `smsflow check` on broken flows: each file in `tests/ui/flows/` holds one
//! mistake a flow author makes, and `<file>.out` beside it what `check` must say about it (the
//! model is Spin's `crates/manifest/tests/ui/`). A `<file>.config.toml` beside it is passed
//! as the operator's `--config`. `SMSFLOW_BLESS=1 cargo test --test
//! flow_diagnostics` rewrites the `.out` files after a deliberate change; review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn ui_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/flows")
}

/// What `check` prints for `file`, run from its folder so paths print as written there.
fn check(file: &Path) -> String {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
    let mut command = Command::new(env!("CARGO_BIN_EXE_smsflow"));
    command
        .arg("check")
        .arg(file.file_name().unwrap())
        .arg("--plugins")
        .arg(&plugins)
        .current_dir(file.parent().unwrap());
    let config = file.with_extension("config.toml");
    if config.exists() {
        command.arg("--config").arg(config.file_name().unwrap());
    }
    let output = command.output().unwrap();
    let mut text = String::from_utf8(output.stdout).unwrap();
    text.push_str(&String::from_utf8(output.stderr).unwrap());
    text.push_str(&format!("exit: {}\n", output.status.code().unwrap_or(-1)));
    text
}

#[test]
fn each_broken_flow_gets_its_expected_diagnostics() {
    let bless = std::env::var_os("SMSFLOW_BLESS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(ui_folder())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.to_string_lossy();
            name.ends_with(".toml") && !name.ends_with(".config.toml")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the ui folder lost its cases: {files:?}");
    let mut mismatched = Vec::new();
    for file in &files {
        let actual = check(file);
        let expected_path = file.with_extension("out");
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            mismatched.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                file.display()
            ));
        }
    }
    assert!(
        mismatched.is_empty(),
        "check's output changed (SMSFLOW_BLESS=1 rewrites the .out files):\n{}",
        mismatched.join("\n")
    );
}
