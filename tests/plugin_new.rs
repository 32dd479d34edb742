//! A plugin developer's first hour: `smsflow plugin new` in a folder outside this repository
//! writes a crate whose own test passes, `smsflow plugin build` makes it a component, and
//! `smsflow plugin call` runs it in the real sandbox. The mistakes on the way are answered in
//! plain words.
//!
//! The new crates build into `target/plugin-new` under this repository's target folder, so a
//! warm run reuses the SDK (and, on the Debian route, the standard library built for wasm).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use common::repository;

/// Where every crate `plugin new` writes here is built.
fn shared_target() -> PathBuf {
    repository().join("target/plugin-new")
}

/// `smsflow <args>` in `dir`, with the shared target folder for any cargo it runs.
fn smsflow(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts the command succeeded, showing what it said when it did not.
#[track_caller]
fn succeeded(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed\nstdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

/// A temporary folder that is not inside this repository (the SDK must build from anywhere).
fn outside_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repository = repository().canonicalize().unwrap();
    assert!(
        !dir.path().canonicalize().unwrap().starts_with(&repository),
        "{} is inside the repository",
        dir.path().display()
    );
    dir
}

/// Runs `what`, printing how long it took.
fn timed<T>(what: &str, run: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = run();
    println!("{what}: {:.1} s", started.elapsed().as_secs_f64());
    result
}

/// `plugin new NAME --world WORLD` in `parent`, then the crate's own `cargo test`, then
/// `plugin build`; returns the component's path.
fn new_tested_and_built(parent: &Path, name: &str, world: &str) -> PathBuf {
    let output = timed(&format!("plugin new {name}"), || {
        smsflow(parent, &["plugin", "new", name, "--world", world])
    });
    succeeded("plugin new", &output);
    let crate_dir = parent.join(name);
    for file in ["Cargo.toml", &format!("{name}.plugin.toml"), "src/lib.rs"] {
        assert!(crate_dir.join(file).is_file(), "no {file}");
    }
    let output = timed(&format!("cargo test in {name}"), || {
        Command::new("cargo")
            .args(["test", "--quiet"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", shared_target())
            .output()
            .unwrap()
    });
    succeeded("the new crate's cargo test", &output);
    let output = timed(&format!("plugin build {name}"), || {
        smsflow(&crate_dir, &["plugin", "build"])
    });
    succeeded("plugin build", &output);
    let wasm = crate_dir.join(format!("target/plugins/{name}.wasm"));
    let printed = stdout(&output);
    let absolute = wasm.canonicalize().unwrap();
    assert!(
        printed.contains(&format!("{} (", absolute.display())) && printed.contains(" bytes)"),
        "{printed}"
    );
    assert!(wasm.with_file_name(format!("{name}.plugin.toml")).is_file());
    wasm
}

/// `plugin call FILE --input INPUT` as JSON.
fn call(dir: &Path, wasm: &Path, input: &str) -> serde_json::Value {
    let output = smsflow(
        dir,
        &["plugin", "call", wasm.to_str().unwrap(), "--input", input],
    );
    succeeded("plugin call", &output);
    serde_json::from_str(&stdout(&output)).unwrap()
}

#[test]
fn a_new_classifier_built_outside_the_repository_runs_under_plugin_call() {
    let parent = outside_folder();
    let wasm = new_tested_and_built(parent.path(), "greeter", "classifier");
    let greeting = call(parent.path(), &wasm, r#"{"text":"Hello there!"}"#);
    assert_eq!(greeting["name"], "greeting");
    assert!(
        greeting["confidence"].as_f64().unwrap() > 0.85,
        "{greeting}"
    );
    let other = call(parent.path(), &wasm, r#"{"text":"where is my order"}"#);
    assert_eq!(other["name"], "unknown");
}

#[test]
fn a_new_connector_and_reply_generator_build_and_run_too() {
    let parent = outside_folder();
    let connector = new_tested_and_built(parent.path(), "order-book", "connector");
    let found = call(
        parent.path(),
        &connector,
        r#"{"operation":"lookup","entity":"order","key":"A100"}"#,
    );
    assert_eq!(found["order_status"], "shipped");
    let replies = new_tested_and_built(parent.path(), "opening-hours", "reply-generator");
    let draft = call(
        parent.path(),
        &replies,
        r#"{"text":"what are your hours?","context":{"locale":"es"}}"#,
    );
    assert!(
        draft["text"].as_str().unwrap().starts_with("Abrimos"),
        "{draft}"
    );
}

#[test]
fn a_name_that_cannot_be_a_crate_is_refused_with_one_that_can() {
    let parent = outside_folder();
    let output = smsflow(
        parent.path(),
        &["plugin", "new", "My_Plugin", "--world", "classifier"],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("`My_Plugin` cannot be a plugin name")
            && message.contains("(try `my-plugin`)"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}

#[test]
fn a_folder_with_files_in_it_is_left_alone() {
    let parent = outside_folder();
    std::fs::create_dir(parent.path().join("greeter")).unwrap();
    std::fs::write(parent.path().join("greeter/notes.txt"), "mine").unwrap();
    let output = smsflow(
        parent.path(),
        &["plugin", "new", "greeter", "--world", "classifier"],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("already exists and is not empty") && message.contains("--dir PARENT"),
        "{message}"
    );
    let left: Vec<_> = std::fs::read_dir(parent.path().join("greeter"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1);
}

/// An example component (`just plugins` builds them), copied into `dir` as `name.wasm`, with
/// its manifest beside it when `with_manifest`.
fn example_component(dir: &Path, example: &str, with_manifest: bool) -> PathBuf {
    let built = repository().join("target/plugins");
    let wasm = dir.join(format!("{example}.wasm"));
    std::fs::copy(built.join(format!("{example}.wasm")), &wasm)
        .expect("no example plugins: run `just plugins` first");
    if with_manifest {
        let manifest = format!("{example}.plugin.toml");
        std::fs::copy(built.join(&manifest), dir.join(&manifest)).unwrap();
    }
    wasm
}

#[test]
fn input_of_the_wrong_shape_is_answered_with_the_shape_and_an_example() {
    let dir = outside_folder();
    let classifier = example_component(dir.path(), "keyword-intents", true);
    let connector = example_component(dir.path(), "order-status", true);
    for (wasm, input, expected) in [
        (
            &classifier,
            r#"{"txt":"hi"}"#,
            r#"a classifier takes {"text": "...", "context": {...}} (context is optional), for example --input '{"text": "where is my order"}'"#,
        ),
        (
            &classifier,
            "where is my order",
            r#"--input is not JSON (expected value at line 1 column 1); a classifier takes {"text": "...", "context": {...}} (context is optional), for example --input '{"text": "where is my order"}'; in a shell, put the JSON in single quotes"#,
        ),
        (
            &connector,
            r#"{"text":"where is my order"}"#,
            r#"for example --input '{"operation": "lookup", "entity": "order", "key": "A100"}'"#,
        ),
    ] {
        let output = smsflow(
            dir.path(),
            &["plugin", "call", wasm.to_str().unwrap(), "--input", input],
        );
        assert!(!output.status.success(), "{input}");
        let message = stderr(&output);
        assert!(message.contains(expected), "{input}: {message}");
        assert!(!message.contains("untagged enum"), "{input}: {message}");
    }
}

#[test]
fn a_component_without_its_manifest_names_the_file_to_put_beside_it() {
    let dir = outside_folder();
    let wasm = example_component(dir.path(), "keyword-intents", false);
    let greeter = wasm.with_file_name("greeter.wasm");
    std::fs::rename(&wasm, &greeter).unwrap();
    let output = smsflow(
        dir.path(),
        &[
            "plugin",
            "call",
            greeter.to_str().unwrap(),
            "--input",
            r#"{"text":"hi"}"#,
        ],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("greeter.plugin.toml: not found")
            && message.contains("smsflow plugin build"),
        "{message}"
    );
}

#[test]
fn plugin_build_outside_a_crate_says_what_to_run() {
    let dir = outside_folder();
    let output = smsflow(dir.path(), &["plugin", "build"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("smsflow plugin new NAME"),
        "{}",
        stderr(&output)
    );
}
