//! A plugin call against the same logic compiled natively.
//!
//! `wasm`: a fresh store, instantiation from the `InstancePre` (pooling allocator) and one
//! `classify` call of the keyword-intents component, as every engine call does.
//! `native`: `keyword_intents::classify` linked into this binary.
//! `minimal component`: the same for a WAT component that does no work, the host's floor.
//! `cpu meter`: the WAT component, keyword-intents and faq-replies loaded a second time with
//! `cpu = "fuel"` (the default is `epoch`), so the two meters are compared in one run.
//! `example plugins`: faq-replies with a two-entry FAQ, and the connectors order-status and
//! crm-notes against local servers playing their APIs (so their HTTP round trip is included).
//! Needs the components built (`just plugins`; `just bench` does it).
//!
//! Times are the benchmark thread's CPU time ([`ThreadCpuTime`]), not wall time: the project's
//! machines are 2 cores shared with other engineers' builds, where wall time swung 2x between
//! runs of the same code. Everything here runs on that one thread (a current-thread runtime,
//! the local HTTP servers included), so on an idle machine the two agree.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::{get, post};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use smsflow::clock::SystemClock;
use smsflow::plugin::{
    ConnectorCall, Context, CpuMeter, Grant, LimitsOverride, Manifest, PluginHost, PluginsConfig,
    World,
};
use smsflow::store::Store;

#[path = "../tests/support/mod.rs"]
mod support;

const TEXTS: [&str; 4] = [
    "Yes please!",
    "can we do thursday at 3pm instead",
    "I want a refund, this is a scam",
    "the weather is nice today",
];

/// The text faq-replies drafts a reply to.
const FAQ_TEXT: &str = "what are your hours on friday?";

/// `grant`, metering the plugin with fuel instead of the default.
fn fuel(grant: Grant) -> Grant {
    Grant {
        limits: LimitsOverride {
            cpu: Some(CpuMeter::Fuel),
            ..grant.limits
        },
        ..grant
    }
}

/// Loads `path` under `name` (its manifest otherwise as written beside it) with `grant`.
async fn load_as(host: &mut PluginHost, path: &Path, name: &str, grant: Grant) {
    let mut manifest = Manifest::from_file(&Manifest::path_for(path)).unwrap();
    manifest.name = name.into();
    host.load(path, manifest, &grant).await.unwrap();
}

/// Loads the minimal WAT classifier under `name`.
async fn load_minimal(host: &mut PluginHost, name: &str, grant: Grant) {
    let path = std::env::temp_dir().join(format!("smsflow-bench-{}.wasm", std::process::id()));
    let bytes = support::component("classifier", &support::classifier_module("(i32.const 200)"));
    std::fs::write(&path, bytes).unwrap();
    let manifest = Manifest {
        name: name.into(),
        version: "0.1.0".into(),
        world: World::Classifier,
        description: String::new(),
        capabilities: Vec::new(),
    };
    host.load(&path, manifest, &grant).await.unwrap();
    std::fs::remove_file(&path).unwrap();
}

/// Local servers playing the order API and HubSpot's contact search.
async fn serve_apis() -> SocketAddr {
    let router = axum::Router::new()
        .route(
            "/api/orders/{id}",
            get(|| async {
                Json(json!({"id": "A100", "status": "shipped", "eta": "2026-12-01", "carrier": "UPS"}))
            }),
        )
        .route(
            "/crm/v3/objects/contacts/search",
            post(|| async {
                Json(json!({"total": 1, "results": [{"id": "501", "properties": {"firstname": "Ana", "lastname": "Diaz", "email": null, "phone": "+12121230001"}}]}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

fn config(repository: &Path, api: SocketAddr) -> PluginsConfig {
    let mut config: PluginsConfig = toml::from_str(&format!(
        r#"
        [grants.faq-replies]
        capabilities = ["config"]
        [grants.faq-replies.config]
        faq = [
          {{ question = "What are your opening hours?", keywords = ["hours", "open"], answer = "We are open 9am-5pm, Monday to Friday." }},
          {{ question = "Where are you?", keywords = ["address", "where"], answer = "12 Main St." }},
        ]
        [grants.order-status]
        capabilities = ["config", "http"]
        http = ["http://{api}"]
        config = {{ base_url = "http://{api}/api" }}
        [grants.crm-notes]
        capabilities = ["config", "http"]
        http = ["http://{api}"]
        config = {{ base_url = "http://{api}" }}
        "#
    ))
    .unwrap();
    config.dir = repository.join("target/plugins");
    config.cache_dir = Some(repository.join("target/plugin-cache"));
    config
}

/// A criterion measurement: the CPU time (user and system) of the benchmark's thread.
struct ThreadCpuTime;

fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the `timespec` it is given, which lives here.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, started: Duration) -> Duration {
        thread_cpu_time().saturating_sub(started)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Shows nanoseconds in the unit that suits them.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical {
            t if t < 1e3 => (1.0, "ns"),
            t if t < 1e6 => (1e-3, "µs"),
            t if t < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|value| *value *= factor);
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, _: &mut [f64]) -> &'static str {
        "ns"
    }
    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn plugin_call(criterion: &mut Criterion<ThreadCpuTime>) {
    let repository = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Store::temporary().unwrap();
    let host = runtime.block_on(async {
        let config = config(&repository, serve_apis().await);
        let mut host =
            PluginHost::new(&config, store.tables().plugin_kv, Arc::new(SystemClock)).unwrap();
        host.load_dir(&config).await.unwrap();
        for plugin in ["keyword-intents", "faq-replies"] {
            let path = config.dir.join(format!("{plugin}.wasm"));
            let grant =
                fuel(config.tool_grant(&Manifest::from_file(&Manifest::path_for(&path)).unwrap()));
            load_as(&mut host, &path, &format!("{plugin}-fuel"), grant).await;
        }
        load_minimal(&mut host, "minimal", Grant::default()).await;
        load_minimal(&mut host, "minimal-fuel", fuel(Grant::default())).await;
        host
    });
    let context = Context::default();

    // The host's floor: a component that does no work (WAT, one static answer).
    criterion.bench_function("minimal component instantiate+call", |bencher| {
        bencher
            .to_async(&runtime)
            .iter(|| async { host.classify("minimal", "yes", &context).await.unwrap() });
    });

    let mut group = criterion.benchmark_group("keyword-intents");
    for text in TEXTS {
        let native = keyword_intents::classify(text);
        let wasm = runtime
            .block_on(host.classify("keyword-intents", text, &context))
            .unwrap();
        assert_eq!(native.intent, wasm.name, "{text}");

        group.bench_function(format!("wasm instantiate+call/{text}"), |bencher| {
            bencher.to_async(&runtime).iter(|| async {
                host.classify("keyword-intents", std::hint::black_box(text), &context)
                    .await
                    .unwrap()
            });
        });
        group.bench_function(format!("native/{text}"), |bencher| {
            bencher.iter(|| keyword_intents::classify(std::hint::black_box(text)));
        });
    }
    group.finish();

    let mut group = criterion.benchmark_group("cpu meter");
    for (plugin, text) in [
        ("minimal", "yes"),
        ("minimal-fuel", "yes"),
        ("keyword-intents", TEXTS[0]),
        ("keyword-intents-fuel", TEXTS[0]),
        ("keyword-intents", TEXTS[1]),
        ("keyword-intents-fuel", TEXTS[1]),
    ] {
        group.bench_function(format!("{plugin}/{text}"), |bencher| {
            bencher.to_async(&runtime).iter(|| async {
                host.classify(plugin, std::hint::black_box(text), &context)
                    .await
                    .unwrap()
            });
        });
    }
    for plugin in ["faq-replies", "faq-replies-fuel"] {
        group.bench_function(format!("{plugin}/{FAQ_TEXT}"), |bencher| {
            bencher
                .to_async(&runtime)
                .iter(|| async { host.draft_reply(plugin, FAQ_TEXT, &context).await.unwrap() });
        });
    }
    group.finish();

    let mut group = criterion.benchmark_group("example plugins");
    group.bench_function(format!("faq-replies/{FAQ_TEXT}"), |bencher| {
        bencher.to_async(&runtime).iter(|| async {
            host.draft_reply("faq-replies", FAQ_TEXT, &context)
                .await
                .unwrap()
        });
    });
    for (plugin, entity, key) in [
        ("order-status", "order", "A100"),
        ("crm-notes", "contact", "+12121230001"),
    ] {
        let call = ConnectorCall::Lookup {
            entity: entity.into(),
            key: key.into(),
            context: Context::default(),
        };
        let fields = runtime.block_on(host.connect(plugin, &call)).unwrap();
        assert!(fields.values().any(|value| value == "true"), "{fields:?}");
        group.bench_function(
            format!("{plugin}/lookup {key} over local HTTP"),
            |bencher| {
                bencher
                    .to_async(&runtime)
                    .iter(|| async { host.connect(plugin, &call).await.unwrap() });
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = plugin_call
}
criterion_main!(benches);
