//! Retention through the real engine on a simulated clock: eight days of texts, then one
//! compaction in small batches. What is past its time is gone (dedup keys, processed marks,
//! settled texts and their provider ids, transcript entries); what is within it is kept and
//! still does its job; a late report about a removed text changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use smsflow::clock::Clock as _;
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::inbox::Accepted;
use smsflow::retention::RetentionConfig;
use smsflow::sms::{DeliveryState, InboundText, StatusUpdate};
use smsflow::store::Store;
use smsflow::testing::{self, ManualClock, RecordingProvider};

/// Tuesday 3 March 2026, 10:00 in New York.
const T0: i64 = 1_772_550_000_000;
const DAY: i64 = 86_400_000;
const OURS: &str = "+15550001000";
const PEOPLE: usize = 30;
const DAYS: i64 = 8;

fn phone(i: usize) -> String {
    format!("+1212555{i:04}")
}

fn sid(day: i64, i: usize) -> String {
    format!("SM{day:02}{i:04}")
}

async fn engine(
    dir: &std::path::Path,
    clock: Arc<ManualClock>,
) -> (Engine, Arc<RecordingProvider>) {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("ping.toml"), testing::PING_FLOW).unwrap();
    let mut config = testing::config();
    config.flows.dir = flows;
    config.provider.from = OURS.to_owned();
    config.retention = RetentionConfig {
        dedup_keys: Duration::from_secs(2 * 86_400),
        outbox: Duration::from_secs(3 * 86_400),
        transcripts: Duration::from_secs(3 * 86_400),
        // Small batches: the sweep must go on across many of them.
        batch_rows: 7,
        ..RetentionConfig::default()
    };
    let provider = Arc::new(RecordingProvider::default());
    let engine = EngineBuilder::from_config(&config)
        .store(Store::open(&dir.join("db")).unwrap())
        .clock(clock)
        .provider(Arc::clone(&provider) as _)
        .build()
        .await
        .unwrap();
    (engine, provider)
}

async fn text(engine: &Engine, day: i64, i: usize) -> Accepted {
    let inbound = InboundText {
        provider: "twilio",
        message_id: sid(day, i),
        from: phone(i),
        to: OURS.to_owned(),
        body: "PING".to_owned(),
        num_media: 0,
    };
    engine.ingest().accept(inbound).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compaction_removes_what_is_past_its_time_and_keeps_the_rest_working() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let (engine, provider) = engine(dir.path(), Arc::clone(&clock)).await;
    // Each day's reply ids, by day.
    let mut replies: Vec<Vec<String>> = Vec::new();
    for day in 0..DAYS {
        for i in 0..PEOPLE {
            assert!(matches!(text(&engine, day, i).await, Accepted::Stored(_)));
        }
        engine.process_inbox().await.unwrap();
        let before = provider.sent().len();
        testing::deliver_all(engine.outbox()).await.unwrap();
        let sent = provider.sent();
        assert_eq!(sent.len() - before, PEOPLE, "one reply each on day {day}");
        replies.push(sent[before..].iter().map(|text| text.id.clone()).collect());
        clock.advance(DAY);
    }
    let tables = engine.store().tables();
    let now = clock.now_ms();
    let transcript_rows = |i: usize| engine.runtime().transcript(OURS, &phone(i)).unwrap();
    assert!(transcript_rows(0).len() >= 2 * DAYS as usize);

    let done = engine.compactor().compact().await.unwrap();
    println!("{done:?}");
    assert!(done.batches > 10, "many small batches: {done:?}");
    // The sweeps read the expiry index, oldest first, and stop at the first row inside its
    // window: they read what they remove, not the tables. Processed marks and provider ids go
    // with their dedup keys and texts, unread; a turn's transcript entries go with its first,
    // and reading on past them reads one row more per turn at most.
    let alongside = done.removed["processed_events"] + done.removed["outbox_provider_ids"];
    let swept = done.total() - alongside;
    assert!(done.scanned >= swept, "{done:?}");
    assert!(
        done.scanned - swept <= (PEOPLE as u64) * (DAYS as u64),
        "{done:?}"
    );
    assert_eq!(done.removed["processed_events"], done.removed["inbox_seen"]);

    for day in 0..DAYS {
        let age = now - (T0 + day * DAY);
        let id = sid(day, 3);
        let seen = tables.inbox_seen.contains("twilio", &id).unwrap();
        let processed = tables.processed.contains(&format!("twilio:{id}")).unwrap();
        assert_eq!(seen, age <= 2 * DAY, "day {day}'s dedup key");
        assert_eq!(processed, age <= 2 * DAY, "day {day}'s processed mark");
        let kept = engine
            .outbox()
            .message(&replies[day as usize][3])
            .unwrap()
            .is_some();
        assert_eq!(kept, age <= 3 * DAY, "day {day}'s reply");
    }
    let horizon = now - 3 * DAY;
    let entries = transcript_rows(3);
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|entry| entry.at_ms >= horizon),
        "{entries:?}"
    );
    let expected = done.removed["inbox_seen"];
    assert_eq!(expected, (DAYS as u64 - 2) * PEOPLE as u64, "{done:?}");
    assert_eq!(done.removed["outbox"], done.removed["outbox_provider_ids"]);

    // A retry of a text still within the window is still a duplicate; nothing is sent.
    let sent = provider.sent().len();
    assert!(matches!(
        text(&engine, DAYS - 1, 5).await,
        Accepted::Duplicate
    ));
    // A late report about a removed text finds nothing and changes nothing.
    let removed_provider_id = format!("rec-{}", 4);
    let update = StatusUpdate {
        message_id: removed_provider_id,
        status: DeliveryState::Delivered,
        error_code: None,
    };
    engine.ingest().status("twilio", &update).await.unwrap();
    engine.process_inbox().await.unwrap();
    testing::deliver_all(engine.outbox()).await.unwrap();
    assert_eq!(provider.sent().len(), sent);

    // A second pass finds nothing more.
    let again = engine.compactor().compact().await.unwrap();
    assert_eq!(again.total(), 0, "{again:?}");
    assert_eq!(again.scanned, 0, "{again:?}");
}
