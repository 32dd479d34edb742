//! Hostile and broken plugins, written in WAT so these tests need no wasm toolchain. Each must
//! fail with a typed error naming the plugin and the limit, within its budget, while the same
//! host keeps serving a well-behaved plugin.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smsflow::clock::SystemClock;
use smsflow::plugin::{
    CallError, Capability, Context, CpuMeter, Grant, KvUsage, LimitsOverride, LoadError, Manifest,
    PluginFailure, PluginHost, PluginsConfig, World,
};
use smsflow::store::Store;
use support::{classifier_module, component};

mod support;

/// A classifier body that never returns.
const ENDLESS_LOOP: &str = "(loop $forever (br $forever)) (unreachable)";

struct Harness {
    host: PluginHost,
    dir: tempfile::TempDir,
    store: Store,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(PluginsConfig::default())
    }

    /// A host for `config`, with its own plugin folder and cache.
    fn with_config(config: PluginsConfig) -> Self {
        Self::on_store(Store::temporary().unwrap(), config)
    }

    /// A host for `config` on `store`, as after a restart of the engine.
    fn on_store(store: Store, config: PluginsConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = PluginsConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..config
        };
        let host =
            PluginHost::new(&config, store.tables().plugin_kv, Arc::new(SystemClock)).unwrap();
        Self { host, dir, store }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    async fn load(
        &mut self,
        name: &str,
        world: World,
        capabilities: Vec<Capability>,
        bytes: &[u8],
        grant: Grant,
    ) -> Result<(), LoadError> {
        let path = self.write(name, bytes);
        let manifest = Manifest {
            name: name.into(),
            version: "0.1.0".into(),
            world,
            description: String::new(),
            capabilities,
        };
        self.host.load(&path, manifest, &grant).await.map(drop)
    }

    async fn load_classifier(&mut self, name: &str, classify_body: &str, limits: LimitsOverride) {
        let bytes = component("classifier", &classifier_module(classify_body));
        let grant = Grant {
            limits,
            ..Grant::default()
        };
        self.load(name, World::Classifier, vec![], &bytes, grant)
            .await
            .unwrap();
    }

    async fn classify(&self, plugin: &str) -> Result<String, CallError> {
        self.host
            .classify(plugin, "yes", &Context::default())
            .await
            .map(|intent| intent.name)
    }

    /// The CPU meter `plugin` was loaded with.
    fn meter(&self, plugin: &str) -> CpuMeter {
        self.host.get(plugin).unwrap().grant.limits.cpu
    }

    /// The well-behaved plugin still answers: the host survived whatever came before.
    async fn assert_still_serving(&self) {
        assert_eq!(self.classify("good").await.unwrap(), "confirm");
    }
}

async fn harness_with_good_plugin() -> Harness {
    let mut harness = Harness::new();
    harness
        .load_classifier("good", "(i32.const 200)", LimitsOverride::default())
        .await;
    harness
}

#[tokio::test]
async fn a_well_behaved_wat_classifier_answers() {
    let harness = harness_with_good_plugin().await;
    harness.assert_still_serving().await;
    let plugin = harness.host.get("good").unwrap();
    assert_eq!(plugin.imports, ["smsflow:plugin/types@0.1.0"]);
    assert_eq!(plugin.exports, ["intents", "classify"]);
}

/// Loads the endless loop as `name` with `limits`, checks the CPU meter it got, and calls it
/// once: the call's error and how long it took.
async fn spin(
    harness: &mut Harness,
    name: &str,
    limits: LimitsOverride,
    meter: CpuMeter,
) -> (CallError, Duration) {
    harness.load_classifier(name, ENDLESS_LOOP, limits).await;
    assert_eq!(harness.meter(name), meter);
    let started = Instant::now();
    let error = harness.classify(name).await.unwrap_err();
    (error, started.elapsed())
}

#[tokio::test]
async fn an_endless_loop_runs_out_of_cpu_budget() {
    let mut harness = harness_with_good_plugin().await;
    let limits = LimitsOverride {
        cpu_fuel: Some(20_000_000),
        ..LimitsOverride::default()
    };
    let (error, elapsed) = spin(&mut harness, "spinner", limits, CpuMeter::Fuel).await;
    assert!(
        matches!(
            error,
            CallError::CpuBudgetExceeded {
                fuel: 20_000_000,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("spinner") && error.to_string().contains("20000000"));
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn an_endless_loop_with_fuel_to_spare_hits_the_wall_clock_timeout() {
    let mut harness = harness_with_good_plugin().await;
    let limits = LimitsOverride {
        cpu_fuel: Some(u64::MAX / 2),
        timeout_ms: Some(150),
        ..LimitsOverride::default()
    };
    let (error, elapsed) = spin(&mut harness, "sleeper", limits, CpuMeter::Fuel).await;
    assert!(
        matches!(
            error,
            CallError::Timeout {
                timeout_ms: 150,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("sleeper") && error.to_string().contains("150 ms"));
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_000), "{elapsed:?}");
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn an_endless_loop_with_the_epoch_meter_runs_out_of_cpu_time() {
    let mut harness = harness_with_good_plugin().await;
    let limits = LimitsOverride {
        cpu_ms: Some(50),
        ..LimitsOverride::default()
    };
    let (error, elapsed) = spin(&mut harness, "ticker", limits, CpuMeter::Epoch).await;
    assert!(
        matches!(error, CallError::CpuTimeExceeded { cpu_ms: 50, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("ticker") && error.to_string().contains("50 ms"));
    // 25 ticks of 2 ms counted while it ran, then the 26th stops it.
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn the_epoch_meter_is_the_default_and_the_timeout_still_covers_it() {
    let mut harness = harness_with_good_plugin().await;
    let limits = LimitsOverride {
        timeout_ms: Some(150),
        ..LimitsOverride::default()
    };
    let (error, elapsed) = spin(&mut harness, "default-spinner", limits, CpuMeter::Epoch).await;
    // The default CPU budget (1000 ms) is longer than this timeout, so the timeout ends it.
    assert!(
        matches!(
            error,
            CallError::Timeout {
                timeout_ms: 150,
                ..
            }
        ),
        "{error}"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn an_operator_default_of_cpu_fuel_alone_still_means_fuel() {
    // `[plugins.limits]` as written before the epoch meter existed: the budget names its meter.
    let config: PluginsConfig = toml::from_str("[limits]\ncpu_fuel = 20000000").unwrap();
    let mut harness = Harness::with_config(config);
    harness
        .load_classifier("old-config", ENDLESS_LOOP, LimitsOverride::default())
        .await;
    assert_eq!(harness.meter("old-config"), CpuMeter::Fuel);
    let error = harness.classify("old-config").await.unwrap_err();
    assert!(
        matches!(
            error,
            CallError::CpuBudgetExceeded {
                fuel: 20_000_000,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_budget_for_the_other_cpu_meter_is_refused_at_load() {
    let mut harness = Harness::new();
    let bytes = component("classifier", &classifier_module("(i32.const 200)"));
    let grant: Grant = toml::from_str("limits = { cpu = \"epoch\", cpu_fuel = 1000 }").unwrap();
    let error = harness
        .load("confused", World::Classifier, vec![], &bytes, grant)
        .await
        .unwrap_err();
    assert!(matches!(error, LoadError::Grant { .. }), "{error}");
    assert!(
        error.to_string().contains("confused") && error.to_string().contains("cpu_ms"),
        "{error}"
    );
    assert!(harness.host.get("confused").is_none());
}

#[tokio::test]
async fn unbounded_memory_growth_stops_at_the_memory_limit() {
    let mut harness = harness_with_good_plugin().await;
    let limits = LimitsOverride {
        memory_bytes: Some(4 << 20),
        ..LimitsOverride::default()
    };
    harness
        .load_classifier(
            "hog",
            "(loop $grow (drop (memory.grow (i32.const 16))) (br $grow)) (unreachable)",
            limits,
        )
        .await;
    let error = harness.classify("hog").await.unwrap_err();
    match &error {
        CallError::MemoryLimitExceeded { desired, limit, .. } => {
            assert_eq!(*limit, 4 << 20);
            assert!(*desired > *limit);
        }
        other => panic!("expected a memory limit error, got {other}"),
    }
    assert!(error.to_string().contains("hog") && error.to_string().contains("4194304"));
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn a_trap_is_a_typed_error() {
    let mut harness = harness_with_good_plugin().await;
    harness
        .load_classifier("crasher", "(unreachable)", LimitsOverride::default())
        .await;
    let error = harness.classify("crasher").await.unwrap_err();
    assert!(matches!(error, CallError::Trap { .. }), "{error}");
    assert!(error.to_string().contains("crasher"), "{error}");
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn an_oversized_result_is_refused() {
    let mut harness = harness_with_good_plugin().await;
    // Grows memory to 2 MiB and returns an intent whose name is the 1 MiB at 64 KiB.
    let body = r#"
        (drop (memory.grow (i32.const 31)))
        (i32.store8 (i32.const 1024) (i32.const 0))
        (i32.store (i32.const 1028) (i32.const 65536))
        (i32.store (i32.const 1032) (i32.const 1048576))
        (f32.store (i32.const 1036) (f32.const 1))
        (i32.store (i32.const 1040) (i32.const 0))
        (i32.store (i32.const 1044) (i32.const 0))
        (i32.const 1024)"#;
    harness
        .load_classifier("talker", body, LimitsOverride::default())
        .await;
    let error = harness.classify("talker").await.unwrap_err();
    assert!(
        matches!(
            error,
            CallError::OutputTooLarge {
                actual: 1_048_576,
                limit: 65_536,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("talker"));
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn an_oversized_input_is_refused_before_the_call() {
    let harness = harness_with_good_plugin().await;
    let text = "y".repeat(70_000);
    let error = harness
        .host
        .classify("good", &text, &Context::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, CallError::InputTooLarge { limit: 65_536, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_component_importing_wasi_is_refused_at_load_naming_the_import() {
    let mut harness = harness_with_good_plugin().await;
    let wat = r#"(component
        (import "wasi:cli/environment@0.2.0" (instance
            (export "get-arguments" (func (result (list string)))))))"#;
    let bytes = wat::parse_str(wat).unwrap();
    let error = harness.load_ungranted("sneaky", &bytes).await.unwrap_err();
    assert!(
        matches!(&error, LoadError::ForbiddenImport { import, .. } if import == "wasi:cli/environment@0.2.0"),
        "{error}"
    );
    assert!(error.to_string().contains("sneaky") && error.to_string().contains("WASI"));
    assert!(harness.host.get("sneaky").is_none());
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn a_component_importing_an_unknown_interface_is_refused() {
    let mut harness = Harness::new();
    let bytes = wat::parse_str(r#"(component (import "acme:net/sockets" (instance)))"#).unwrap();
    let error = harness
        .load_ungranted("stranger", &bytes)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, LoadError::ForbiddenImport { import, .. } if import == "acme:net/sockets"),
        "{error}"
    );
}

#[tokio::test]
async fn an_import_outside_the_manifest_or_grant_is_refused() {
    let mut harness = Harness::new();
    // A classifier that reads its kv store without asking for `kv` in its manifest.
    let core = classifier_module("(i32.const 200)").replacen(
        "(memory",
        r#"(import "smsflow:plugin/kv@0.1.0" "get" (func (param i32 i32 i32)))
           (memory"#,
        1,
    );
    let bytes = component("classifier", &core);
    let error = harness
        .load("nosy", World::Classifier, vec![], &bytes, Grant::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, LoadError::ForbiddenImport { import, reason, .. }
            if import == "smsflow:plugin/kv@0.1.0" && reason.contains("manifest")),
        "{error}"
    );
    // Asked for in the manifest but not granted by the operator.
    let error = harness
        .load(
            "nosy",
            World::Classifier,
            vec![Capability::Kv],
            &bytes,
            Grant::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LoadError::NotGranted {
                capability: Capability::Kv,
                ..
            }
        ),
        "{error}"
    );
    // Asked for and granted: it loads.
    harness
        .load_with_kv("nosy", &bytes, LimitsOverride::default())
        .await;
}

#[tokio::test]
async fn a_corrupt_file_is_refused() {
    let mut harness = Harness::new();
    let mut bytes = component("classifier", &classifier_module("(i32.const 200)"));
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    let error = harness.load_ungranted("broken", &bytes).await.unwrap_err();
    assert!(matches!(error, LoadError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains("broken"));
    let error = harness
        .load(
            "noise",
            World::Classifier,
            vec![],
            b"MZ\x90\x00 not wasm at all",
            Grant::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, LoadError::Invalid { .. }), "{error}");
}

#[tokio::test]
async fn a_core_module_is_refused_with_a_hint() {
    let mut harness = Harness::new();
    let bytes = wat::parse_str(classifier_module("(i32.const 200)")).unwrap();
    let error = harness
        .load("core", World::Classifier, vec![], &bytes, Grant::default())
        .await
        .unwrap_err();
    assert!(matches!(error, LoadError::CoreModule { .. }), "{error}");
    assert!(error.to_string().contains("wasm-tools component new"));
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let mut harness = Harness::new();
    let bytes = component("classifier", &classifier_module("(i32.const 200)"));
    let error = harness
        .load(
            "misfiled",
            World::ReplyGenerator,
            vec![],
            &bytes,
            Grant::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LoadError::WorldMismatch {
                world: World::ReplyGenerator,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn many_concurrent_calls_share_the_pool() {
    let harness = harness_with_good_plugin().await;
    let host = &harness.host;
    let context = Context::default();
    let calls = (0..200).map(|_| host.classify("good", "yes", &context));
    let results = futures_util::future::join_all(calls).await;
    assert!(
        results
            .iter()
            .all(|result| result.as_ref().is_ok_and(|intent| intent.name == "confirm"))
    );
}

#[tokio::test]
async fn compiled_components_are_cached_and_a_corrupt_cache_entry_is_recompiled() {
    let mut harness = harness_with_good_plugin().await;
    let cache = harness.dir.path().join("cache");
    let entries: Vec<PathBuf> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0]
            .extension()
            .is_some_and(|extension| extension == "cwasm")
    );
    std::fs::write(&entries[0], b"garbage").unwrap();
    // The same bytes under another name hit the (now corrupt) entry, recompile and serve.
    harness
        .load_classifier("again", "(i32.const 200)", LimitsOverride::default())
        .await;
    assert_eq!(harness.classify("again").await.unwrap(), "confirm");
    assert!(std::fs::metadata(&entries[0]).unwrap().len() > 1000);
}

/// A classifier core module whose `classify` runs `body`, importing `imports` (WAT import
/// fields) besides what [`classifier_module`] has.
fn classifier_importing(imports: &str, body: &str) -> String {
    classifier_module(body).replacen("(memory", &format!("{imports}\n(memory"), 1)
}

/// Loads a classifier whose `classify` returns the result area `result_wat` builds at 1024 (the
/// layout of `result<intent, plugin-error>`), and calls it: its error.
async fn returning(harness: &mut Harness, name: &str, result_wat: &str) -> CallError {
    let body = format!("{result_wat}\n(i32.const 1024)");
    harness
        .load_classifier(name, &body, LimitsOverride::default())
        .await;
    harness.classify(name).await.unwrap_err()
}

/// WAT writing `ok(intent { name: (ptr, len), confidence: 1.0, entities: (ptr, len) })` at
/// 1024.
fn intent_at_1024(name: (u32, u32), entities: (u32, u32)) -> String {
    format!(
        "(i32.store8 (i32.const 1024) (i32.const 0))
         (i32.store (i32.const 1028) (i32.const {}))
         (i32.store (i32.const 1032) (i32.const {}))
         (f32.store (i32.const 1036) (f32.const 1))
         (i32.store (i32.const 1040) (i32.const {}))
         (i32.store (i32.const 1044) (i32.const {}))",
        name.0, name.1, entities.0, entities.1
    )
}

fn assert_trap(error: &CallError, plugin: &str, says: &str) {
    assert!(
        matches!(error, CallError::Trap { plugin: named, message } if named == plugin && message.contains(says)),
        "{plugin}: expected a trap saying `{says}`, got {error}"
    );
}

/// Each `(plugin, result WAT, what the trap says)` loaded and called: a trap saying so, and the
/// host serving after them all.
async fn assert_results_trap(harness: &mut Harness, cases: &[(&str, String, &str)]) {
    for (name, result_wat, says) in cases {
        let error = returning(harness, name, result_wat).await;
        assert_trap(&error, name, says);
    }
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn a_result_pointing_outside_linear_memory_is_a_trap() {
    let mut harness = harness_with_good_plugin().await;
    // The return area itself, then a name, then a list, past the end of the 64 KiB memory.
    let cases = [
        (
            "far-area",
            "(drop (i32.const 0))\n(return (i32.const 0x7ffffff0))".to_owned(),
            "out of bounds",
        ),
        (
            "far-name",
            intent_at_1024((0xffff_0000, 16), (0, 0)),
            "string pointer/length out of bounds",
        ),
        (
            "long-name",
            intent_at_1024((100, 0x7fff_ffff), (0, 0)),
            "out of bounds",
        ),
        (
            "far-list",
            intent_at_1024((100, 7), (0x00ff_0000, 4)),
            "out of bounds",
        ),
    ];
    assert_results_trap(&mut harness, &cases).await;
}

#[tokio::test]
async fn a_list_length_that_overflows_or_a_misaligned_list_is_a_trap() {
    let mut harness = harness_with_good_plugin().await;
    let cases = [
        // 0x7fffffff fields of 16 bytes: the size overflows 32 bits.
        (
            "overflow",
            intent_at_1024((100, 7), (0, 0x7fff_ffff)),
            "out of bounds",
        ),
        ("misaligned", intent_at_1024((100, 7), (1, 1)), "align"),
    ];
    assert_results_trap(&mut harness, &cases).await;
}

#[tokio::test]
async fn invalid_utf8_or_an_out_of_range_discriminant_in_a_result_is_a_trap() {
    let mut harness = harness_with_good_plugin().await;
    let invalid_utf8 = format!(
        "(i32.store (i32.const 3000) (i32.const 0xfdfeff41))\n{}",
        intent_at_1024((3000, 4), (0, 0))
    );
    let cases = [
        ("mojibake", invalid_utf8, "utf-8"),
        // result<..> has cases 0 and 1; plugin-error has five.
        (
            "bad-result",
            "(i32.store8 (i32.const 1024) (i32.const 7))".to_owned(),
            "discriminant",
        ),
        (
            "bad-variant",
            "(i32.store8 (i32.const 1024) (i32.const 1))
        (i32.store8 (i32.const 1028) (i32.const 9))"
                .to_owned(),
            "discriminant",
        ),
    ];
    assert_results_trap(&mut harness, &cases).await;
}

#[tokio::test]
async fn a_bad_pointer_or_enum_passed_to_a_host_import_is_a_trap() {
    let mut harness = harness_with_good_plugin().await;
    let log = r#"(import "smsflow:plugin/log@0.1.0" "log" (func $log (param i32 i32 i32)))"#;
    let cases = [
        (
            "log-far",
            "(call $log (i32.const 2) (i32.const 0xffffff00) (i32.const 100))",
            "out of bounds",
        ),
        (
            "log-level",
            "(call $log (i32.const 9) (i32.const 100) (i32.const 7))",
            "discriminant",
        ),
        (
            "log-utf8",
            "(i32.store (i32.const 3000) (i32.const 0xfdfeff41))
            (call $log (i32.const 2) (i32.const 3000) (i32.const 4))",
            "utf-8",
        ),
    ];
    for (name, call, says) in cases {
        let bytes = component(
            "classifier",
            &classifier_importing(log, &format!("{call}\n(i32.const 200)")),
        );
        harness
            .load(name, World::Classifier, vec![], &bytes, Grant::default())
            .await
            .unwrap();
        let error = harness.classify(name).await.unwrap_err();
        assert_trap(&error, name, says);
    }
    // A return pointer the host cannot write its answer to.
    let kv = r#"(import "smsflow:plugin/kv@0.1.0" "get" (func $get (param i32 i32 i32)))"#;
    let body = "(call $get (i32.const 100) (i32.const 7) (i32.const 0x7ffffff0))\n(i32.const 200)";
    let bytes = component("classifier", &classifier_importing(kv, body));
    harness
        .load_with_kv("kv-far", &bytes, LimitsOverride::default())
        .await;
    let error = harness.classify("kv-far").await.unwrap_err();
    assert_trap(&error, "kv-far", "out of bounds");
    harness.assert_still_serving().await;
}

#[tokio::test]
async fn garbage_from_intents_at_load_refuses_the_plugin() {
    let mut harness = harness_with_good_plugin().await;
    // `intents()` returns a list of 0x10000000 strings at 0.
    let core = classifier_module("(i32.const 200)").replacen(
        r#"(func (export "intents") (result i32) (i32.const 64))"#,
        r#"(func (export "intents") (result i32)
             (i32.store (i32.const 68) (i32.const 0x10000000)) (i32.const 64))"#,
        1,
    );
    let bytes = component("classifier", &core);
    let error = harness
        .load("liar", World::Classifier, vec![], &bytes, Grant::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, LoadError::WorldMismatch { message, .. } if message.contains("intents()")),
        "{error}"
    );
    assert!(harness.host.get("liar").is_none());
    harness.assert_still_serving().await;
}

/// WAT for an intent at 1024 whose `count` entities all name the same `len` bytes at 65536,
/// after growing the memory to `pages` pages.
fn repeated_entities(pages: u32, len: u32, count: u32) -> String {
    let intent = intent_at_1024((100, 7), (0x0020_0000, count));
    format!(
        "(local $i i32)
         (drop (memory.grow (i32.const {grow})))
         (loop $fill
           (i32.store (i32.add (i32.const 0x200000) (i32.shl (local.get $i) (i32.const 4))) (i32.const 65536))
           (i32.store (i32.add (i32.const 0x200004) (i32.shl (local.get $i) (i32.const 4))) (i32.const {len}))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br_if $fill (i32.lt_u (local.get $i) (i32.const {count}))))
         {intent}",
        grow = pages - 1
    )
}

#[tokio::test]
async fn a_result_whose_entities_all_point_at_the_same_megabyte_is_refused_before_it_is_copied() {
    let mut harness = harness_with_good_plugin().await;
    // 4096 names of 1 MiB each, all the same memory: 4 GiB in the host if it were copied.
    let body = format!("{}\n(i32.const 1024)", repeated_entities(48, 1 << 20, 4096));
    harness
        .load_classifier("amplifier", &body, LimitsOverride::default())
        .await;
    let started = Instant::now();
    let error = harness.classify("amplifier").await.unwrap_err();
    assert!(
        matches!(&error, CallError::TransferTooLarge { plugin, limit } if plugin == "amplifier" && *limit == 3 << 20),
        "{error}"
    );
    assert!(error.to_string().contains("max_output_bytes"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A million empty fields are no bytes of output, but 48 MB of host values.
    let body = format!(
        "(drop (memory.grow (i32.const 300)))\n{}\n(i32.const 1024)",
        intent_at_1024((100, 7), (0x10000, 1_000_000))
    );
    harness
        .load_classifier("empty-fields", &body, LimitsOverride::default())
        .await;
    let error = harness.classify("empty-fields").await.unwrap_err();
    assert!(
        matches!(error, CallError::TransferTooLarge { .. }),
        "{error}"
    );
    harness.assert_still_serving().await;
}

/// A classify body that stores `value_len`-byte values under new keys until `kv.set` refuses,
/// then returns the refusal as its own error (it has the same layout in both results).
fn kv_filler(value_len: u32) -> String {
    let key: String = (0..8)
        .map(|nibble| {
            format!(
                "(i32.store8 (i32.const {}) (i32.add (i32.const 97)
                   (i32.and (i32.shr_u (local.get $i) (i32.const {})) (i32.const 15))))\n",
                2000 + nibble,
                4 * nibble
            )
        })
        .collect();
    let body = format!(
        "(local $i i32)
         (loop $write
           {key}
           (call $set (i32.const 2000) (i32.const 8) (i32.const 3000) (i32.const {value_len}) (i32.const 1024))
           (local.set $i (i32.add (local.get $i) (i32.const 1)))
           (br_if $write (i32.eqz (i32.load8_u (i32.const 1024)))))
         (i32.const 1024)"
    );
    let set = r#"(import "smsflow:plugin/kv@0.1.0" "set" (func $set (param i32 i32 i32 i32 i32)))"#;
    classifier_importing(set, &body)
}

impl Harness {
    /// Loads [`kv_filler`] as `name`, granted `kv` with `limits`.
    async fn load_kv_filler(&mut self, name: &str, value_len: u32, limits: LimitsOverride) {
        let bytes = component("classifier", &kv_filler(value_len));
        self.load_with_kv(name, &bytes, limits).await;
    }

    /// Loads the classifier `bytes` as `name`, asking for nothing and granted nothing.
    async fn load_ungranted(&mut self, name: &str, bytes: &[u8]) -> Result<(), LoadError> {
        self.load(name, World::Classifier, vec![], bytes, Grant::default())
            .await
    }

    /// Loads the classifier `bytes` as `name`, asking for and granted `kv` with `limits`.
    async fn load_with_kv(&mut self, name: &str, bytes: &[u8], limits: LimitsOverride) {
        let grant = Grant {
            capabilities: vec![Capability::Kv],
            limits,
            ..Grant::default()
        };
        self.load(name, World::Classifier, vec![Capability::Kv], bytes, grant)
            .await
            .unwrap();
    }

    /// The `denied` message `plugin`'s call ended with.
    async fn denial(&self, plugin: &str) -> String {
        match self.classify(plugin).await {
            Err(CallError::Plugin {
                failure: PluginFailure::Denied(message),
                ..
            }) => message,
            other => panic!("{plugin}: expected a denial, got {other:?}"),
        }
    }

    fn kv_usage(&self, plugin: &str) -> KvUsage {
        self.host.get(plugin).unwrap().kv_usage()
    }
}

#[tokio::test]
async fn a_plugin_filling_its_key_value_store_is_stopped_at_its_quota() {
    let mut harness = harness_with_good_plugin().await;
    let keys = LimitsOverride {
        kv_max_keys: Some(100),
        ..LimitsOverride::default()
    };
    harness.load_kv_filler("hoarder", 16, keys.clone()).await;
    let message = harness.denial("hoarder").await;
    assert!(
        message.contains("kv_max_keys") && message.contains("[plugins.grants.hoarder.limits]"),
        "{message}"
    );
    assert_eq!(
        harness.kv_usage("hoarder"),
        KvUsage {
            keys: 100,
            bytes: 100 * 24
        }
    );
    // Its next call finds the quota as full as the last one left it.
    harness.denial("hoarder").await;
    assert_eq!(harness.kv_usage("hoarder").keys, 100);

    let bytes = LimitsOverride {
        kv_max_bytes: Some(10_000),
        ..LimitsOverride::default()
    };
    harness.load_kv_filler("miser", 1000, bytes).await;
    let message = harness.denial("miser").await;
    assert!(message.contains("kv_max_bytes"), "{message}");
    assert_eq!(
        harness.kv_usage("miser"),
        KvUsage {
            keys: 9,
            bytes: 9 * 1008
        }
    );
    harness.assert_still_serving().await;

    // After a restart the usage is read back, not counted from zero.
    let mut restarted = Harness::on_store(harness.store.clone(), PluginsConfig::default());
    restarted.load_kv_filler("hoarder", 16, keys).await;
    assert_eq!(restarted.kv_usage("hoarder").keys, 100);
    restarted.denial("hoarder").await;
    assert_eq!(restarted.kv_usage("hoarder").keys, 100);
}

#[test]
fn the_default_key_value_quota_is_ten_thousand_keys_and_sixteen_mebibytes() {
    let limits = PluginsConfig::default().limits;
    assert_eq!(
        (limits.kv_max_keys, limits.kv_max_bytes),
        (10_000, 16 << 20)
    );
    let config: PluginsConfig =
        toml::from_str("[limits]\nkv_max_keys = 5\nkv_max_bytes = 64").unwrap();
    assert_eq!(
        (config.limits.kv_max_keys, config.limits.kv_max_bytes),
        (5, 64)
    );
}

#[tokio::test]
async fn a_component_importing_a_way_to_send_texts_or_another_worlds_interface_is_refused() {
    let mut harness = harness_with_good_plugin().await;
    let cases = [
        (
            "smsflow:plugin/sms@0.1.0",
            "not an interface of smsflow:plugin@0.1.0",
        ),
        (
            "smsflow:plugin/outbound@0.1.0",
            "not an interface of smsflow:plugin@0.1.0",
        ),
        (
            "smsflow:plugin/http@0.2.0",
            "not an interface of smsflow:plugin@0.1.0",
        ),
        (
            "smsflow:plugin/http@0.1.0",
            "not part of the classifier world",
        ),
    ];
    for (import, reason) in cases {
        let wat = format!(
            r#"(component
                (import "{import}" (instance
                    (export "send" (func (param "to" string) (param "body" string))))))"#
        );
        let bytes = wat::parse_str(&wat).unwrap();
        let error = harness.load_ungranted("texter", &bytes).await.unwrap_err();
        assert!(
            matches!(&error, LoadError::ForbiddenImport { import: named, reason: why, .. }
                if named == import && why.contains(reason)),
            "{import}: {error}"
        );
        assert!(harness.host.get("texter").is_none());
    }
    harness.assert_still_serving().await;
}
