//! Retention: what the store keeps, how long, and the compactor that deletes the rest in
//! bounded batches while traffic goes on.
//!
//! | kept                          | how long                         | why                        |
//! |-------------------------------|----------------------------------|----------------------------|
//! | the consent ledger            | always                           | the evidence of every opt-in and opt-out (TCPA claims run 4 years; a STOP never expires), a hash chain that deleting would break |
//! | suppressions, contacts        | until erased                     | who may be texted          |
//! | conversations, timers, cases  | while they exist (one per contact) | the state itself         |
//! | dedup keys, processed marks   | `dedup_keys` (7 days)            | providers retry a webhook within hours; a week covers a replay from their console |
//! | settled outbound texts        | `outbox` (400 days)              | delivery and the gate's audit trail for a yearly review |
//! | transcripts                   | `transcripts` (400 days)         | the operator's policy      |
//! | dead letters                  | `dead_letters` (30 days)         | a month to replay them     |
//! | funnel events                 | `[measurement] keep_events`      | rolled up per day first ([`crate::measure::retention`]) |
//! | the send log                  | the longest frequency cap window | caps ([`crate::compliance`]) |
//!
//! Each of those tables writes its rows' times to the store's expiry index (in time order per
//! table, in the same batch as the row): a pass reads the index from its oldest entry and stops
//! at the first inside the window, so it reads what it deletes (and the few old rows that are
//! still waiting), not whole tables.
//!
//! Deleting is safe at any point: each batch stands alone, a crash leaves rows the next pass
//! deletes, and nothing that can still change (a text being sent, a pending inbox row) is
//! ever picked.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::store::{Batch, Cursor, Store, StoreError, Swept, Tables};

/// The `[retention]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Whether the compactor runs (off keeps everything, as before retention existed).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Provider message ids and processed marks.
    #[serde(
        default = "default_dedup_keys",
        with = "crate::compliance::duration_serde"
    )]
    pub dedup_keys: Duration,
    /// Sent, failed and blocked texts, with their gate decisions.
    #[serde(default = "default_year", with = "crate::compliance::duration_serde")]
    pub outbox: Duration,
    /// Transcript entries.
    #[serde(default = "default_year", with = "crate::compliance::duration_serde")]
    pub transcripts: Duration,
    /// Dead letters of the inbox and of the event webhooks.
    #[serde(
        default = "default_dead_letters",
        with = "crate::compliance::duration_serde"
    )]
    pub dead_letters: Duration,
    /// How often the compactor runs.
    #[serde(default = "default_every", with = "crate::compliance::duration_serde")]
    pub every: Duration,
    /// Rows read per batch: each batch is one short write, so traffic never waits long.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
}

fn yes() -> bool {
    true
}

fn default_dedup_keys() -> Duration {
    Duration::from_secs(7 * 86_400)
}

fn default_year() -> Duration {
    // A year and a month: a yearly review can see the same month a year before.
    Duration::from_secs(400 * 86_400)
}

fn default_dead_letters() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_every() -> Duration {
    Duration::from_secs(3_600)
}

fn default_batch_rows() -> usize {
    1_000
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dedup_keys: default_dedup_keys(),
            outbox: default_year(),
            transcripts: default_year(),
            dead_letters: default_dead_letters(),
            every: default_every(),
            batch_rows: default_batch_rows(),
        }
    }
}

/// What one compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Compacted {
    /// Rows removed, by table.
    pub removed: BTreeMap<&'static str, u64>,
    /// Rows read.
    pub scanned: u64,
    /// Batches written.
    pub batches: u64,
    /// The store's size on disk before and after, in bytes.
    pub bytes_before: u64,
    /// After.
    pub bytes_after: u64,
}

impl Compacted {
    /// Rows removed from every table.
    pub fn total(&self) -> u64 {
        self.removed.values().sum()
    }
}

/// The compactor.
pub struct Compactor {
    store: Store,
    tables: Tables,
    config: RetentionConfig,
    clock: SharedClock,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One table's sweep: where it goes on, and one bounded step of it.
type Step<'a> = Box<dyn FnMut(&mut Batch, &Cursor, usize) -> Result<Swept, StoreError> + Send + 'a>;

impl Compactor {
    /// The compactor of `store` under `config`.
    pub fn new(store: &Store, config: RetentionConfig, clock: SharedClock) -> Self {
        Self {
            tables: store.tables(),
            store: store.clone(),
            config,
            clock,
        }
    }

    /// The compactor's settings.
    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    /// One pass over every table with a retention, deleting what is past it.
    ///
    /// # Errors
    ///
    /// A store failure: the next pass goes on (each batch stood alone).
    pub async fn compact(&self) -> Result<Compacted, StoreError> {
        let now = self.clock.now_ms();
        let before = |kept: Duration| {
            now.saturating_sub(i64::try_from(kept.as_millis()).unwrap_or(i64::MAX))
        };
        let (dedup, outbox, transcripts, dead) = (
            before(self.config.dedup_keys),
            before(self.config.outbox),
            before(self.config.transcripts),
            before(self.config.dead_letters),
        );
        let t = &self.tables;
        // Rows that go along with others (an inbound text's processed mark with its dedup key,
        // a text's provider id with the text), counted here for the report.
        let alongside = [AtomicU64::new(0), AtomicU64::new(0)];
        let alongside = &alongside;
        let sweeps: Vec<(&'static str, Step<'_>)> = vec![
            (
                "inbox_seen",
                Box::new(move |b, c, n| {
                    let (swept, marks) = t.inbox_seen.expire_in(b, c, n, dedup, &t.processed)?;
                    alongside[0].fetch_add(marks, Ordering::Relaxed);
                    Ok(swept)
                }),
            ),
            (
                "processed_events",
                Box::new(move |b, c, n| t.processed.expire_in(b, c, n, dedup)),
            ),
            (
                "outbox",
                Box::new(move |b, c, n| {
                    let (swept, ids) = t.outbox.expire_in(b, c, n, outbox, &t.provider_ids)?;
                    alongside[1].fetch_add(ids, Ordering::Relaxed);
                    Ok(swept)
                }),
            ),
            (
                "transcript",
                Box::new(move |b, c, n| t.transcript.expire_in(b, c, n, transcripts)),
            ),
            (
                "dead_letters",
                Box::new(move |b, c, n| t.inbox.expire_dead_in(b, c, n, dead)),
            ),
            (
                "event_dead_letters",
                Box::new(move |b, c, n| t.events.expire_dead_in(b, c, n, dead)),
            ),
        ];
        let mut done = Compacted {
            bytes_before: self.store.size_on_disk()?,
            ..Compacted::default()
        };
        for (table, step) in sweeps {
            self.sweep(table, step, &mut done).await?;
        }
        for (table, removed) in ["processed_events", "outbox_provider_ids"]
            .into_iter()
            .zip(alongside)
        {
            count_removed(table, removed.load(Ordering::Relaxed), &mut done);
        }
        done.bytes_after = self.store.size_on_disk()?;
        Ok(done)
    }

    /// Runs `step` from the table's start to its end, a batch at a time, yielding between
    /// batches so the engine's own writes go first.
    async fn sweep(
        &self,
        table: &'static str,
        mut step: Step<'_>,
        done: &mut Compacted,
    ) -> Result<(), StoreError> {
        let mut cursor = Cursor::Start;
        let mut removed = 0;
        while !cursor.is_done() {
            let mut batch = Batch::new();
            let swept = step(&mut batch, &cursor, self.config.batch_rows.max(1))?;
            if !batch.is_empty() {
                self.store.apply(batch)?;
                done.batches += 1;
            }
            done.scanned += swept.scanned;
            removed += swept.removed;
            cursor = swept.next;
            tokio::task::yield_now().await;
        }
        count_removed(table, removed, done);
        Ok(())
    }

    /// Compacts every [`RetentionConfig::every`] until the engine stops.
    pub async fn run(self: std::sync::Arc<Self>) {
        if !self.config.enabled {
            return;
        }
        loop {
            let started = Instant::now();
            match self.compact().await {
                Ok(done) if done.total() > 0 => tracing::info!(
                    removed = done.total(),
                    batches = done.batches,
                    seconds = started.elapsed().as_secs_f64(),
                    bytes_before = done.bytes_before,
                    bytes_after = done.bytes_after,
                    "retention: rows past their time removed"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!("retention: {error}; the next pass goes on"),
            }
            tokio::time::sleep(self.config.every).await;
        }
    }
}

/// Records `removed` rows of `table` in the pass's report and the metric.
fn count_removed(table: &'static str, removed: u64, done: &mut Compacted) {
    if removed > 0 {
        crate::metrics::instruments()
            .retention_removed
            .get_or_create(&crate::metrics::labels(&[("table", table)]))
            .inc_by(removed);
    }
    *done.removed.entry(table).or_default() += removed;
}
