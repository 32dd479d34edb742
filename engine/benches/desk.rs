//! What the handoff desk's views cost as queues grow: a scan of every case (what the queue
//! list, the conversation list and each tick of the desk's clock start with), against decoding
//! the same rows from memory (the scan's floor: the codec), and one tick that has nothing to do
//! (no snooze due, no target missed, no agent free). Cases carry a note and a few history lines,
//! as a worked case does.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use smsflow::engine::EngineBuilder;
use smsflow::flow::conversation::{ConversationKey, HandoffCase};
use smsflow::store::handoffs::Note;
use smsflow::store::{Batch, Store};
use smsflow::testing::{self, ManualClock, RecordingProvider};

const SIZES: [usize; 2] = [1_000, 10_000];

fn case(n: usize) -> HandoffCase {
    let key = ConversationKey::new("+15550001000", &format!("+1212{n:07}"));
    let mut case = HandoffCase::waiting(&key, "billing", "cue word `refund`", 1_000);
    case.context
        .fields
        .insert("first_name".into(), "Ana".into());
    case.notes.push(Note {
        agent: "ana".into(),
        text: "Called the bank, refund on its way.".into(),
        at_ms: 2_000,
    });
    case
}

fn desk(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut group = criterion.benchmark_group("desk");
    group.sample_size(20);
    for size in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let handoffs = store.tables().handoffs;
        let cases: Vec<HandoffCase> = (0..size).map(case).collect();
        let mut batch = Batch::new();
        for case in &cases {
            handoffs.put_in(&mut batch, case).unwrap();
        }
        store.apply(batch).unwrap();
        let encoded: Vec<Vec<u8>> = cases
            .iter()
            .map(|case| smsflow::store::codec::encode(case).unwrap())
            .collect();
        let config = testing::config();
        let engine = runtime.block_on(
            EngineBuilder::from_config(&config)
                .store(store)
                .clock(Arc::new(ManualClock::new(1_500)))
                .provider(Arc::new(RecordingProvider::default()))
                .flows(Vec::new())
                .build(),
        );
        let engine = engine.unwrap();
        group.bench_with_input(
            BenchmarkId::new("decode only", size),
            &encoded,
            |bench, rows| {
                bench.iter(|| {
                    rows.iter()
                        .map(|row| smsflow::store::codec::decode::<HandoffCase>(row).unwrap())
                        .collect::<Vec<_>>()
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("scan every case", size),
            &engine,
            |bench, engine| {
                bench.iter(|| engine.desk().cases().unwrap().len());
            },
        );
        group.bench_with_input(
            BenchmarkId::new("an idle tick", size),
            &engine,
            |bench, engine| {
                bench.iter(|| runtime.block_on(engine.desk().tick()).unwrap());
            },
        );
    }
    group.finish();
}

criterion_group!(benches, desk);
criterion_main!(benches);
