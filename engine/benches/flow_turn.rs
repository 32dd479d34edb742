//! Flow runtime turns on sled on disk, with the real keyword-intents component.
//!
//! `start`: an API start that renders and queues a text and sets a wait (one transaction, one
//! flush). `reply`: an inbound reply that is classified in the sandbox and ends the run.
//! `concurrent starts`: 1,000 conversations started at once on a multi-threaded runtime, the
//! way a campaign starts them. Needs the components built (`just bench` does it).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smsflow::clock::{SharedClock, SystemClock};
use smsflow::engine::EngineBuilder;
use smsflow::flow::compile::compile;
use smsflow::flow::runtime::{Inbound, Runtime, StartRequest};
use smsflow::outbound::ConsoleProvider;
use smsflow::plugin::{Grant, Manifest, PluginHost};
use smsflow::store::Store;
use smsflow::testing;

const OURS: &str = "+15550001000";
const CONCURRENT: u64 = 1000;

const FLOW: &str = r#"
id = "confirm"
program = "bench"
kind = "transactional"
start = "greet"

[triggers]
api = true
fields = ["first_name"]

[steps.greet]
type = "send"
text = "Hi {{first_name}}, reply YES to confirm your visit tomorrow."
next = "wait_reply"

[steps.wait_reply]
type = "wait"
timeout = "24h"
on_reply = "understand"
on_timeout = "done"

[steps.understand]
type = "classify"
plugin = "keyword-intents"
routes = { confirm = "done" }
default = "done"

[steps.done]
type = "end"
text = "Thanks, see you then!"
"#;

fn runtime_on_disk(dir: &Path, tokio: &tokio::runtime::Runtime) -> Arc<Runtime> {
    let config = testing::config();
    let store = Store::open(&dir.join("db")).unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    tokio.block_on(async {
        let mut host =
            PluginHost::new(&config.plugins, store.tables().plugin_kv, clock.clone()).unwrap();
        let component = config.plugins.dir.join("keyword-intents.wasm");
        let manifest = Manifest::from_file(&Manifest::path_for(&component)).unwrap();
        host.load(&component, manifest, &Grant::default())
            .await
            .unwrap();
        let flow = compile(Path::new("confirm.toml"), FLOW).unwrap();
        let engine = EngineBuilder::from_config(&config)
            .store(store)
            .clock(clock)
            .provider(Arc::new(ConsoleProvider))
            .plugins(Arc::new(host))
            .flows(vec![flow])
            .build()
            .await
            .unwrap();
        Arc::clone(engine.runtime())
    })
}

fn contact(n: u64) -> String {
    format!("+1212{n:07}")
}

fn start(n: u64) -> StartRequest {
    StartRequest {
        flow: "confirm".into(),
        from: OURS.into(),
        to: contact(n),
        fields: [("first_name".to_owned(), "Ana".to_owned())].into(),
        locale: None,
        ..StartRequest::default()
    }
}

fn flow_turns(criterion: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime_on_disk(dir.path(), &tokio);
    let next_contact = AtomicU64::new(0);

    let mut group = criterion.benchmark_group("flow turn");
    group.bench_function("start (render, queue, wait, flush)", |bench| {
        bench.iter_custom(|iterations| {
            tokio.block_on(async {
                let begin = Instant::now();
                for _ in 0..iterations {
                    let n = next_contact.fetch_add(1, Ordering::Relaxed);
                    runtime.start(start(n)).await.unwrap();
                }
                begin.elapsed()
            })
        });
    });
    group.bench_function("reply (classify in the sandbox, end, flush)", |bench| {
        bench.iter_custom(|iterations| {
            tokio.block_on(async {
                let first = next_contact.fetch_add(iterations, Ordering::Relaxed);
                for n in first..first + iterations {
                    runtime.start(start(n)).await.unwrap();
                }
                let begin = Instant::now();
                for n in first..first + iterations {
                    let reply = Inbound {
                        id: format!("SM{n}"),
                        from: contact(n),
                        to: OURS.into(),
                        text: "Yes please!".into(),
                        screening: Default::default(),
                        inbox_seq: None,
                    };
                    runtime.inbound(reply).await.unwrap();
                }
                begin.elapsed()
            })
        });
    });
    group.finish();

    let mut group = criterion.benchmark_group("flow turns at once");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(CONCURRENT));
    group.bench_function("1000 concurrent starts", |bench| {
        bench.iter_custom(|iterations| {
            tokio.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let first = next_contact.fetch_add(CONCURRENT, Ordering::Relaxed);
                    let begin = Instant::now();
                    let starts = (first..first + CONCURRENT).map(|n| {
                        let runtime = Arc::clone(&runtime);
                        tokio::spawn(async move { runtime.start(start(n)).await.map(drop) })
                    });
                    for result in futures_util::future::join_all(starts).await {
                        result.unwrap().unwrap();
                    }
                    total += begin.elapsed();
                }
                total
            })
        });
    });
    group.finish();
}

criterion_group!(benches, flow_turns);
criterion_main!(benches);
