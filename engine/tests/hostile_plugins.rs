//! Hostile and broken plugins, written in WAT so these tests need no wasm toolchain. Each must
//! fail with a typed error naming the plugin and the limit, within its budget, while the same
//! host keeps serving a well-behaved plugin.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smsflow::clock::SystemClock;
use smsflow::plugin::{
    CallError, Capability, Context, CpuMeter, Grant, LimitsOverride, LoadError, Manifest,
    PluginHost, PluginsConfig, World,
};
use smsflow::store::Store;
use support::{classifier_module, component};

mod support;

/// A classifier body that never returns.
const ENDLESS_LOOP: &str = "(loop $forever (br $forever)) (unreachable)";

struct Harness {
    host: PluginHost,
    dir: tempfile::TempDir,
    _store: Store,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(PluginsConfig::default())
    }

    /// A host for `config`, with its own plugin folder and cache.
    fn with_config(config: PluginsConfig) -> Self {
        let store = Store::temporary().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = PluginsConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..config
        };
        let host =
            PluginHost::new(&config, store.tables().plugin_kv, Arc::new(SystemClock)).unwrap();
        Self {
            host,
            dir,
            _store: store,
        }
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
    let error = harness
        .load(
            "sneaky",
            World::Classifier,
            vec![],
            &bytes,
            Grant::default(),
        )
        .await
        .unwrap_err();
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
        .load(
            "stranger",
            World::Classifier,
            vec![],
            &bytes,
            Grant::default(),
        )
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
    let grant = Grant {
        capabilities: vec![Capability::Kv],
        ..Grant::default()
    };
    harness
        .load(
            "nosy",
            World::Classifier,
            vec![Capability::Kv],
            &bytes,
            grant,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_corrupt_file_is_refused() {
    let mut harness = Harness::new();
    let mut bytes = component("classifier", &classifier_module("(i32.const 200)"));
    let middle = bytes.len() / 2;
    bytes.truncate(middle);
    let error = harness
        .load(
            "broken",
            World::Classifier,
            vec![],
            &bytes,
            Grant::default(),
        )
        .await
        .unwrap_err();
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
