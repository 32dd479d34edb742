//! A plugin call against the same logic compiled natively.
//!
//! `wasm`: a fresh store, instantiation from the `InstancePre` (pooling allocator) and one
//! `classify` call of the keyword-intents component, as every engine call does.
//! `native`: `keyword_intents::classify` linked into this binary.
//! `minimal component`: the same for a WAT component that does no work, the host's floor.
//! Needs the components built (`just plugins`; `just bench` does it).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use smsflow::clock::SystemClock;
use smsflow::plugin::{Context, Grant, Manifest, PluginHost, PluginsConfig, World};
use smsflow::store::Store;

#[path = "../tests/support/mod.rs"]
mod support;

const TEXTS: [&str; 4] = [
    "Yes please!",
    "can we do thursday at 3pm instead",
    "I want a refund, this is a scam",
    "the weather is nice today",
];

fn plugin_call(criterion: &mut Criterion) {
    let repository = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = PluginsConfig {
        dir: repository.join("target/plugins"),
        cache_dir: Some(repository.join("target/plugin-cache")),
        ..PluginsConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Store::temporary().unwrap();
    let host = runtime.block_on(async {
        let mut host =
            PluginHost::new(&config, store.tables().plugin_kv, Arc::new(SystemClock)).unwrap();
        let component = config.dir.join("keyword-intents.wasm");
        let manifest = Manifest::from_file(&Manifest::path_for(&component)).unwrap();
        host.load(&component, manifest, &Grant::default())
            .await
            .unwrap();
        let minimal =
            std::env::temp_dir().join(format!("smsflow-bench-{}.wasm", std::process::id()));
        let bytes =
            support::component("classifier", &support::classifier_module("(i32.const 200)"));
        std::fs::write(&minimal, bytes).unwrap();
        let manifest = Manifest {
            name: "minimal".into(),
            version: "0.1.0".into(),
            world: World::Classifier,
            description: String::new(),
            capabilities: Vec::new(),
        };
        host.load(&minimal, manifest, &Grant::default())
            .await
            .unwrap();
        std::fs::remove_file(&minimal).unwrap();
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
}

criterion_group!(benches, plugin_call);
criterion_main!(benches);
