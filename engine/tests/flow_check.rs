//! The flow checker on real files: big flows are checked in linear time on a small stack (the
//! server reloads flows on a 2 MiB worker thread), turns longer than the runtime runs are
//! refused where the limit is crossed, and texts the compliance gate would refuse as too long
//! are refused at their position, by `check` and by the server's reload alike.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use smsflow::clock::{SharedClock, SystemClock};
use smsflow::compliance::{ComplianceConfig, ProgramConfig};
use smsflow::config::Config;
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::flow::MAX_STEPS_PER_TURN;
use smsflow::flow::check::{self, CheckLimits, Loaded};
use smsflow::outbound::ConsoleProvider;
use smsflow::plugin::{PluginHost, PluginsConfig};
use smsflow::store::Store;

/// Smaller than any thread the engine runs flows checks on: a walk that recursed once per step
/// would overflow it within a few thousand steps.
const SMALL_STACK: usize = 256 * 1024;

fn on_small_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(work)
        .unwrap()
        .join()
        .unwrap()
}

const HEADER: &str = "id = \"chain\"\nprogram = \"test\"\nkind = \"transactional\"\n";

/// A flow of `count` steps `s00000 -> s00001 -> ...`: `set` steps, every `wait_every`-th a
/// `wait`, the last an `end` (or, with `loop_back`, a `set` going back to the first).
fn chain(count: usize, wait_every: Option<usize>, loop_back: bool) -> String {
    let mut source = format!("{HEADER}start = \"s00000\"\n");
    for step in 0..count {
        let next = if step + 1 == count { 0 } else { step + 1 };
        let is_last = step + 1 == count;
        write!(source, "\n[steps.s{step:05}]\n").unwrap();
        if is_last && !loop_back {
            source.push_str("type = \"end\"\n");
        } else if wait_every.is_some_and(|every| step % every == every - 1) {
            write!(
                source,
                "type = \"wait\"\ntimeout = \"1h\"\non_reply = \"s{next:05}\"\non_timeout = \"s{next:05}\"\n"
            )
            .unwrap();
        } else {
            write!(
                source,
                "type = \"set\"\nfields = {{ n = \"{step}\" }}\nnext = \"s{next:05}\"\n"
            )
            .unwrap();
        }
    }
    source
}

/// `source` written to `chain.toml` in a fresh folder.
fn flow_dir(source: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.toml");
    std::fs::write(&path, source).unwrap();
    (dir, path)
}

/// Checks the folder of `source` on a small stack, printing how long it took.
fn check_on_small_stack(label: &str, source: String, limits: CheckLimits) -> (Loaded, String) {
    let (dir, path) = flow_dir(&source);
    let (loaded, took) = on_small_stack(move || {
        let started = Instant::now();
        let loaded = check::load(&path, None, &limits);
        (loaded, started.elapsed())
    });
    println!("{label}: checked in {:.3} s", took.as_secs_f64());
    drop(dir);
    (loaded, source)
}

/// The 1-based line of `needle` in `source`.
fn line_of(source: &str, needle: &str) -> usize {
    source
        .lines()
        .position(|line| line.contains(needle))
        .unwrap()
        + 1
}

fn messages(loaded: &Loaded) -> Vec<String> {
    loaded.errors.iter().map(ToString::to_string).collect()
}

#[test]
fn a_20000_step_chain_without_a_wait_is_refused_where_the_turn_crosses_the_limit() {
    let (loaded, source) = check_on_small_stack(
        "20,000 steps, no wait",
        chain(20_000, None, false),
        CheckLimits::default(),
    );
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    let error = &loaded.errors[0];
    assert_eq!(error.at.line, line_of(&source, "[steps.s00100]"));
    assert_eq!(error.at.column, 1);
    assert_eq!(
        error.message,
        "step `s00100` would be step 101 of one turn without a `wait`: the runtime hands the \
         conversation off after MAX_STEPS_PER_TURN = 100 steps in one turn (this turn starts at \
         `s00000`, the flow's `start`, and its longest path runs 20000 steps); add a `wait` \
         before this step or shorten the path"
    );
}

#[test]
fn a_50000_step_chain_that_waits_every_50_steps_passes() {
    let (loaded, _) = check_on_small_stack(
        "50,000 steps, a wait every 50",
        chain(50_000, Some(50), false),
        CheckLimits::default(),
    );
    assert!(loaded.errors.is_empty(), "{:#?}", messages(&loaded));
    assert_eq!(loaded.flows.len(), 1);
    assert_eq!(loaded.flows[0].steps.len(), 50_000);
}

#[test]
fn a_50000_step_chain_without_a_wait_gets_one_error() {
    let (loaded, source) = check_on_small_stack(
        "50,000 steps, no wait",
        chain(50_000, None, false),
        CheckLimits::default(),
    );
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    assert_eq!(loaded.errors[0].at.line, line_of(&source, "[steps.s00100]"));
    assert!(
        loaded.errors[0]
            .message
            .contains("its longest path runs 50000 steps")
    );
}

#[test]
fn a_20000_step_loop_without_a_wait_is_one_error_on_one_line() {
    let (loaded, source) = check_on_small_stack(
        "20,000-step loop",
        chain(20_000, None, true),
        CheckLimits::default(),
    );
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    let error = &loaded.errors[0];
    assert_eq!(error.at.line, line_of(&source, "[steps.s00000]"));
    assert_eq!(
        error.message,
        "steps s00000 -> s00001 -> s00002 -> s00003 -> s00004 -> s00005 -> s00006 -> s00007 \
         -> ... -> s19999 -> s00000 (20000 steps) form a loop with no `wait` step: it would \
         repeat forever"
    );
}

#[test]
fn a_ladder_of_branches_with_exponentially_many_paths_is_checked_in_linear_time() {
    // Each branch goes to the next step or the one after: 2^n paths, one longest.
    let count = 10_000;
    let mut source = format!("{HEADER}start = \"b00000\"\n");
    for step in 0..count {
        let (one, two) = ((step + 1).min(count), (step + 2).min(count));
        write!(
            source,
            "\n[steps.b{step:05}]\ntype = \"branch\"\ncases = [{{ contains = [\"x\"], next = \"b{one:05}\" }}]\ndefault = \"b{two:05}\"\n"
        )
        .unwrap();
    }
    write!(source, "\n[steps.b{count:05}]\ntype = \"end\"\n").unwrap();
    let (loaded, source) =
        check_on_small_stack("10,000-branch ladder", source, CheckLimits::default());
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    assert_eq!(loaded.errors[0].at.line, line_of(&source, "[steps.b00100]"));
    assert!(loaded.errors[0].message.contains("runs 10001 steps"));
}

#[test]
fn a_turn_of_exactly_the_limit_passes_and_one_step_more_does_not() {
    let exactly = chain(MAX_STEPS_PER_TURN, None, false);
    let (loaded, _) = check_on_small_stack("100", exactly, CheckLimits::default());
    assert!(loaded.errors.is_empty(), "{:#?}", messages(&loaded));
    let over = chain(MAX_STEPS_PER_TURN + 1, None, false);
    let (loaded, source) = check_on_small_stack("101", over, CheckLimits::default());
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    assert_eq!(loaded.errors[0].at.line, line_of(&source, "[steps.s00100]"));
}

#[test]
fn each_turn_is_counted_from_where_it_starts_after_a_wait() {
    // Three turns of 100 steps each (the wait ends a turn and counts in it).
    let (loaded, _) = check_on_small_stack(
        "3 x 100",
        chain(300, Some(100), false),
        CheckLimits::default(),
    );
    assert!(loaded.errors.is_empty(), "{:#?}", messages(&loaded));
    // One more step, and no wait at the end, makes the last turn (which starts where `s00199`
    // goes) 101 steps.
    let wait = "[steps.s00299]\ntype = \"wait\"\ntimeout = \"1h\"\non_reply = \"s00300\"\non_timeout = \"s00300\"\n";
    let set = "[steps.s00299]\ntype = \"set\"\nfields = { n = \"299\" }\nnext = \"s00300\"\n";
    let longer = chain(301, Some(100), false);
    assert!(longer.contains(wait));
    let longer = longer.replacen(wait, set, 1);
    let (loaded, source) = check_on_small_stack("100 + 100 + 101", longer, CheckLimits::default());
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    let error = &loaded.errors[0];
    assert_eq!(error.at.line, line_of(&source, "[steps.s00300]"));
    assert!(
        error.message.contains(
            "this turn starts at `s00200`, where `s00199` goes on a reply, and its longest path \
             runs 101 steps"
        ),
        "{}",
        error.message
    );
}

/// A flow whose first text is short and whose second, after a wait, is `text`.
fn flow_with_second_text(text: &str) -> String {
    format!(
        "{HEADER}brand = \"Acme\"\nstart = \"hello\"\n\n[steps.hello]\ntype = \"send\"\ntext = \"Acme: hi. Reply STOP to opt out.\"\nnext = \"wait\"\n\n\
         [steps.wait]\ntype = \"wait\"\ntimeout = \"1h\"\non_reply = \"long\"\non_timeout = \"long\"\n\n\
         [steps.long]\ntype = \"send\"\ntext = \"{text}\"\n"
    )
}

#[test]
fn a_66_segment_text_is_refused_at_its_position_with_the_count_and_the_limit() {
    // 66 parts of 153 septets; the field adds to it, it never makes it shorter.
    let text = format!("Hi {{{{first_name}}}}, {}", "a".repeat(66 * 153 - 5));
    let source = flow_with_second_text(&text) + "\n[triggers]\nfields = [\"first_name\"]\n";
    let (loaded, source) = check_on_small_stack("66 segments", source, CheckLimits::default());
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    let error = &loaded.errors[0];
    let line = line_of(&source, "text = \"Hi {{first_name}}");
    assert_eq!((error.at.line, error.at.column), (line, 8));
    assert_eq!(
        error.message,
        "step `long` (en): this text takes at least 66 segments, more than the limit of 6 (the \
         default `[compliance] max_segments`: pass --config to check against yours): the \
         compliance gate would refuse to send it; shorten it, split it over several `send` \
         steps or raise the limit"
    );
}

fn limits(max_segments: u32, programs: &[(&str, &str)]) -> CheckLimits {
    let compliance = ComplianceConfig {
        max_segments,
        ..ComplianceConfig::default()
    };
    let programs: BTreeMap<String, ProgramConfig> = programs
        .iter()
        .map(|(id, brand)| {
            let program = ProgramConfig {
                brand: Some((*brand).to_owned()),
                ..ProgramConfig::default()
            };
            ((*id).to_owned(), program)
        })
        .collect();
    CheckLimits::new(
        &compliance,
        &programs,
        "`[compliance] max_segments` in test.toml",
    )
}

#[test]
fn the_limit_comes_from_the_operators_config() {
    let text = "a".repeat(66 * 153);
    let source = flow_with_second_text(&text);
    let (loaded, _) = check_on_small_stack("66 of 66", source.clone(), limits(66, &[]));
    assert!(loaded.errors.is_empty(), "{:#?}", messages(&loaded));
    let (loaded, _) = check_on_small_stack("66 of 65", source, limits(65, &[]));
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    assert!(
        loaded.errors[0]
            .message
            .contains("more than the limit of 65 (`[compliance] max_segments` in test.toml)"),
        "{}",
        loaded.errors[0].message
    );
}

#[test]
fn a_first_text_counts_the_brand_and_opt_out_wording_the_gate_adds() {
    // Exactly 6 segments as written; the gate's additions make it 7 when it is a first text.
    let text = "a".repeat(6 * 153);
    let second = flow_with_second_text(&text);
    let (loaded, _) = check_on_small_stack("6, not first", second, CheckLimits::default());
    assert!(loaded.errors.is_empty(), "{:#?}", messages(&loaded));

    let first = format!(
        "{HEADER}brand = \"Acme\"\nstart = \"long\"\n\n[steps.long]\ntype = \"send\"\ntext = \"{text}\"\n"
    );
    let (loaded, _) = check_on_small_stack("6, first", first.clone(), CheckLimits::default());
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    assert!(
        loaded.errors[0].message.contains(
            "takes at least 7 segments once the gate adds the brand and the opt-out wording to \
             it as a program's first text (the brand is \"Acme\"), more than the limit of 6"
        ),
        "{}",
        loaded.errors[0].message
    );
    // The program's configured brand is the one the gate adds.
    let (loaded, _) =
        check_on_small_stack("program brand", first, limits(6, &[("test", "Acme Corp")]));
    assert!(
        loaded.errors[0]
            .message
            .contains("(the brand is \"Acme Corp\")"),
        "{}",
        loaded.errors[0].message
    );
    // A first text that already names the brand and says STOP gets nothing added.
    let worded = format!(
        "{HEADER}brand = \"Acme\"\nstart = \"long\"\n\n[steps.long]\ntype = \"send\"\ntext = \"{{{{brand}}}}: Reply STOP to opt out. {}\"\n",
        "a".repeat(6 * 153 - 30)
    );
    let (loaded, _) = check_on_small_stack("worded", worded, CheckLimits::default());
    assert!(loaded.errors.is_empty(), "{:#?}", messages(&loaded));
}

#[test]
fn each_locale_of_a_text_is_counted() {
    let source = format!(
        "{HEADER}start = \"long\"\n\n[steps.long]\ntype = \"end\"\ntext.en = \"Bye. Reply STOP to opt out.\"\ntext.es = \"{}\"\n",
        "á".repeat(7 * 67)
    );
    let (loaded, source) = check_on_small_stack("locales", source, CheckLimits::default());
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    let error = &loaded.errors[0];
    assert_eq!(error.at.line, line_of(&source, "text.en"));
    assert!(
        error
            .message
            .starts_with("step `long` (es): this text takes at least 8 segments"),
        "{}",
        error.message
    );
}

/// An engine whose gate sends at most `max_segments` per text, as `smsflow serve` builds it.
fn engine_with_gate(max_segments: u32) -> (Engine, tempfile::TempDir) {
    let db = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.compliance.max_segments = max_segments;
    config.store.path = db.path().join("db");
    let clock: SharedClock = Arc::new(SystemClock);
    let store = Store::open(&config.store.path).unwrap();
    let host = PluginHost::new(
        &PluginsConfig::default(),
        store.tables().plugin_kv,
        clock.clone(),
    )
    .unwrap();
    let build = EngineBuilder::from_config(&config)
        .store(store)
        .clock(clock)
        .provider(Arc::new(ConsoleProvider))
        .plugins(Arc::new(host))
        .flows(Vec::new())
        .build();
    let engine = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(build)
        .unwrap();
    (engine, db)
}

#[test]
fn the_server_refuses_on_reload_what_its_gate_would_refuse_to_send() {
    let (engine, _db) = engine_with_gate(2);
    let runtime = engine.runtime();
    let three = flow_with_second_text(&"a".repeat(2 * 153 + 1));
    let (dir, path) = flow_dir(&flow_with_second_text("short"));
    let plugins = Arc::clone(engine.plugins());
    assert_eq!(runtime.registry().reload(dir.path(), &plugins).unwrap(), 1);
    let version = runtime.registry().current().by_id["chain"].version.clone();

    std::fs::write(&path, &three).unwrap();
    let errors = runtime.registry().reload(dir.path(), &plugins).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].at.line, line_of(&three, "text = \"aaa"));
    assert!(
        errors[0].message.contains(
            "takes at least 3 segments, more than the limit of 2 (the server's `[compliance] \
             max_segments`)"
        ),
        "{}",
        errors[0].message
    );
    // The flows in service stay as they were.
    assert_eq!(runtime.registry().current().by_id["chain"].version, version);

    // And a chain that would overflow a recursive check is refused, not a crash.
    std::fs::write(&path, chain(20_000, None, false)).unwrap();
    let registry = Arc::clone(runtime.registry());
    let errors = on_small_stack(move || {
        let errors = registry.reload(dir.path(), &plugins).unwrap_err();
        drop(dir);
        errors
    });
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("MAX_STEPS_PER_TURN"));
}

#[test]
fn big_flows_are_located_like_small_ones() {
    // Lines are found through an index now: it must agree with counting from the file's start,
    // also after multi-byte characters.
    let source = chain(300, None, false).replacen(
        "start = \"s00000\"\n",
        "start = \"s00000\" # é ü 👍\n# ¿qué?\n",
        1,
    );
    let (loaded, source) = check_on_small_stack("located", source, CheckLimits::default());
    assert_eq!(loaded.errors.len(), 1, "{:#?}", messages(&loaded));
    let error = &loaded.errors[0];
    assert_eq!(error.at.line, line_of(&source, "[steps.s00100]"));
    assert_eq!(error.at.column, 1);
    assert!(error.path.ends_with("chain.toml"));
}
