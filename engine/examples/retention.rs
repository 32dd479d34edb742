//! `just retention`: the store's size and the process's memory after many texts from many
//! contacts, with retention on and off, through the real engine on a simulated clock.
//!
//! Each simulated day `texts / days` contacts text PING and get one reply (a turn, a transcript,
//! an outbox row, a funnel event, dedup keys); with retention on, the compactor runs once a
//! day with windows short enough for the run to reach them (dedup 7 days, texts, transcripts
//! and funnel events 30). Prints one JSON line per run.
//!
//! `cargo run --release -p smsflow --features test-support --example retention -- [TEXTS
//! CONTACTS DAYS]` (defaults 1,000,000, 100,000 and 100).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use smsflow::clock::Clock as _;
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::outbound::{Cleared, Provider, Receipt, SendError};
use smsflow::retention::RetentionConfig;
use smsflow::sms::InboundText;
use smsflow::store::Store;
use smsflow::testing::{self, ManualClock};

/// Tuesday 3 March 2026, 10:00 in New York.
const T0: i64 = 1_772_550_000_000;
const DAY: i64 = 86_400_000;
const OURS: &str = "+15550001000";
/// Texts accepted at once: the store's group commit makes one flush of them.
const AT_ONCE: usize = 500;

/// A provider that only counts: a recording one would hold every text in memory and measure
/// itself.
#[derive(Debug, Default)]
struct Counting(std::sync::atomic::AtomicU64);

impl Provider for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }

    fn send<'a>(
        &'a self,
        _message: &'a Cleared,
    ) -> futures_util::future::BoxFuture<'a, Result<Receipt, SendError>> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            Ok(Receipt {
                provider_id: format!("c-{n}"),
            })
        })
    }
}

struct Run {
    texts: usize,
    contacts: usize,
    days: usize,
    retention: bool,
}

fn config(dir: &std::path::Path, retention: bool) -> smsflow::config::Config {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("ping.toml"), testing::PING_FLOW).unwrap();
    let mut config = testing::config();
    config.flows.dir = flows;
    config.provider.from = OURS.to_owned();
    // No frequency cap stops a contact's reply: this measures growth, not caps.
    config.compliance.caps.per_program = 1_000;
    config.compliance.caps.per_number = 1_000;
    let month = Duration::from_secs(30 * 86_400);
    config.retention = RetentionConfig {
        enabled: retention,
        outbox: month,
        transcripts: month,
        ..RetentionConfig::default()
    };
    if retention {
        config.measurement.keep_events = month;
    }
    config
}

async fn day(engine: &Engine, run: &Run, day: usize, next: &mut usize) {
    let per_day = run.texts / run.days;
    let mut left = per_day;
    while left > 0 {
        let chunk = left.min(AT_ONCE);
        let accepts = (0..chunk).map(|_| {
            let n = *next;
            *next += 1;
            let contact = n % run.contacts;
            let inbound = InboundText {
                provider: "twilio",
                message_id: format!("SM{day:03}{n:09}"),
                from: format!("+1212{:07}", 5_000_000 + contact),
                to: OURS.to_owned(),
                body: "PING".to_owned(),
                num_media: 0,
            };
            engine.ingest().accept(inbound)
        });
        for accepted in futures_util::future::join_all(accepts).await {
            accepted.unwrap();
        }
        engine.process_inbox().await.unwrap();
        testing::deliver_all(engine.outbox()).await.unwrap();
        left -= chunk;
    }
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn measure(run: Run) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let provider = Arc::new(Counting::default());
    let config = config(dir.path(), run.retention);
    let store = Store::open(&dir.path().join("db")).unwrap();
    let engine = EngineBuilder::from_config(&config)
        .store(store.clone())
        .clock(Arc::clone(&clock) as _)
        .provider(Arc::clone(&provider) as _)
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    let mut next = 0;
    let mut compaction_seconds = 0.0;
    for d in 0..run.days {
        day(&engine, &run, d, &mut next).await;
        clock.advance(DAY);
        if run.retention {
            let compacting = Instant::now();
            engine.compactor().compact().await.unwrap();
            engine.measurement().compact(clock.now_ms()).await.unwrap();
            compaction_seconds += compacting.elapsed().as_secs_f64();
        }
        if d % 10 == 9 {
            eprintln!(
                "day {}: {} texts, store {} MiB, RSS {} MiB",
                d + 1,
                next,
                store.size_on_disk().unwrap() >> 20,
                rss_kib("VmRSS:") >> 10
            );
        }
    }
    store.flush().await.unwrap();
    serde_json::json!({
        "retention": run.retention,
        "texts": next,
        "replies": provider.0.load(std::sync::atomic::Ordering::Relaxed),
        "contacts": run.contacts,
        "days": run.days,
        "seconds": started.elapsed().as_secs_f64(),
        "compaction_seconds": compaction_seconds,
        "store_bytes": store.size_on_disk().unwrap(),
        "rss_bytes": rss_kib("VmRSS:") << 10,
        "peak_rss_bytes": rss_kib("VmHWM:") << 10,
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| {
            arg.replace('_', "")
                .parse()
                .expect("TEXTS CONTACTS DAYS as numbers")
        })
        .collect();
    let texts = args.first().copied().unwrap_or(1_000_000);
    let contacts = args.get(1).copied().unwrap_or(100_000);
    let days = args.get(2).copied().unwrap_or(100);
    let retention = std::env::var("RETENTION").map_or(true, |value| value != "off");
    let run = Run {
        texts,
        contacts,
        days,
        retention,
    };
    println!("{}", measure(run).await);
}
