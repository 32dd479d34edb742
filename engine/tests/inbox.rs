//! The durable inbox on sled on disk: concurrent duplicates stored once, failures retried with
//! backoff, dead letters after the last attempt, replay, and events surviving a reopen.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use smsflow::clock::{SharedClock, SystemClock};
use smsflow::inbox::{Accepted, Inbox, InboxEvent, InboxHandler, InboxSettings};
use smsflow::ingress::InboundText;
use smsflow::store::Store;

fn text(id: &str, from: &str) -> InboundText {
    InboundText {
        provider: "twilio",
        message_id: id.to_owned(),
        from: from.to_owned(),
        to: "+15550001000".to_owned(),
        body: "hello".to_owned(),
        num_media: 0,
    }
}

/// Fails the first `failures` attempts of every event, and records what it handled.
#[derive(Default)]
struct Flaky {
    failures: u32,
    attempts: AtomicU32,
    handled: Mutex<Vec<(String, Instant)>>,
}

impl InboxHandler for Flaky {
    fn handle<'a>(&'a self, event: &'a InboxEvent) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
            self.handled
                .lock()
                .unwrap()
                .push((event.event_id(), Instant::now()));
            if attempt < self.failures {
                anyhow::bail!("attempt {attempt} fails");
            }
            Ok(())
        })
    }
}

fn settings(max_attempts: u32) -> InboxSettings {
    InboxSettings {
        max_attempts,
        first_backoff_ms: 50,
        lanes: 2,
    }
}

fn inbox(store: &Store, max_attempts: u32) -> Arc<Inbox> {
    let clock: SharedClock = Arc::new(SystemClock);
    Arc::new(Inbox::new(store, clock, settings(max_attempts)))
}

async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let inbox = inbox(&store, 3);
    let accepts = (0..50).map(|_| {
        let inbox = Arc::clone(&inbox);
        tokio::spawn(async move { inbox.accept(text("SM1", "+12125550100")).await.unwrap() })
    });
    let results: Vec<Accepted> = futures_util::future::join_all(accepts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let stored = results
        .iter()
        .filter(|result| matches!(result, Accepted::Stored(_)))
        .count();
    assert_eq!(stored, 1, "{results:?}");
    assert_eq!(inbox.pending().unwrap().len(), 1);
    // The same id from another provider is another text.
    let mut other = text("SM1", "+12125550100");
    other.provider = "telnyx";
    assert!(matches!(
        inbox.accept(other).await.unwrap(),
        Accepted::Stored(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_growing_backoff_then_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let inbox = inbox(&store, 5);
    let handler = Arc::new(Flaky {
        failures: 2,
        ..Flaky::default()
    });
    inbox.accept(text("SM1", "+12125550100")).await.unwrap();
    let worker = tokio::spawn(Arc::clone(&inbox).run(handler.clone()));
    wait_until("processing", || inbox.pending().unwrap().is_empty()).await;
    worker.abort();
    let handled = handler.handled.lock().unwrap().clone();
    assert_eq!(handled.len(), 3);
    let first_gap = handled[1].1 - handled[0].1;
    let second_gap = handled[2].1 - handled[1].1;
    assert!(first_gap >= Duration::from_millis(50), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(100), "{second_gap:?}");
    assert!(inbox.dead_letters().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_failing_every_attempt_is_dead_lettered_and_can_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let inbox = inbox(&store, 3);
    let always_failing = Arc::new(Flaky {
        failures: u32::MAX,
        ..Flaky::default()
    });
    inbox.accept(text("SM1", "+12125550100")).await.unwrap();
    let worker = tokio::spawn(Arc::clone(&inbox).run(always_failing.clone()));
    wait_until("the dead letter", || {
        inbox.dead_letters().unwrap().len() == 1
    })
    .await;
    worker.abort();
    let dead = inbox.dead_letters().unwrap();
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.as_deref().unwrap().contains("fails"));
    assert!(inbox.pending().unwrap().is_empty());
    assert_eq!(always_failing.attempts.load(Ordering::SeqCst), 3);

    assert_eq!(
        inbox.replay(Some(dead[0].seq + 1)).unwrap(),
        0,
        "no such letter"
    );
    assert_eq!(inbox.replay(None).unwrap(), 1);
    assert!(inbox.dead_letters().unwrap().is_empty());
    let healthy = Arc::new(Flaky::default());
    let worker = tokio::spawn(Arc::clone(&inbox).run(healthy.clone()));
    wait_until("the replay", || inbox.pending().unwrap().is_empty()).await;
    worker.abort();
    assert_eq!(healthy.handled.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_while_the_workers_run_is_processed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let inbox = inbox(&store, 3);
    // Fails its first three attempts: the letter is dead, then the handler recovers.
    let recovering = Arc::new(Flaky {
        failures: 3,
        ..Flaky::default()
    });
    let worker = tokio::spawn(Arc::clone(&inbox).run(recovering.clone()));
    inbox.accept(text("SM1", "+12125550100")).await.unwrap();
    wait_until("the dead letter", || {
        inbox.dead_letters().unwrap().len() == 1
    })
    .await;
    assert_eq!(recovering.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(inbox.replay(None).unwrap(), 1);
    wait_until("the replayed letter", || {
        recovering.attempts.load(Ordering::SeqCst) == 4 && inbox.pending().unwrap().is_empty()
    })
    .await;
    worker.abort();
    assert!(inbox.pending().unwrap().is_empty());
    assert!(inbox.dead_letters().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = Store::open(&path).unwrap();
        let inbox = inbox(&store, 3);
        for n in 0..5 {
            inbox
                .accept(text(&format!("SM{n}"), "+12125550100"))
                .await
                .unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    let inbox = inbox(&store, 3);
    let pending = inbox.pending().unwrap();
    assert_eq!(pending.len(), 5);
    let ids: Vec<String> = pending.iter().map(InboxEvent::event_id).collect();
    assert_eq!(
        ids,
        (0..5).map(|n| format!("twilio:SM{n}")).collect::<Vec<_>>()
    );
    assert_eq!(
        inbox.accept(text("SM3", "+12125550100")).await.unwrap(),
        Accepted::Duplicate,
        "dedup survives the reopen"
    );
}
