//! A plugin call against the same logic compiled natively.
//!
//! `wasm`: a fresh store, instantiation from the `InstancePre` (pooling allocator) and one
//! `classify` call of the keyword-intents component, as every engine call does.
//! `native`: `keyword_intents::classify` linked into this binary.
//! Needs the components built (`just plugins`; `just bench` does it).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use smsflow::clock::SystemClock;
use smsflow::plugin::{Context, PluginHost, PluginsConfig};
use smsflow::store::Store;

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
            PluginHost::new(&config, store.plugin_kv().unwrap(), Arc::new(SystemClock)).unwrap();
        host.load_dir(&config).await.unwrap();
        host
    });
    let context = Context::default();

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
