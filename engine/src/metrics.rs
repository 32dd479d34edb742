//! The instruments the hot paths update as they go, for `GET /metrics`
//! ([`crate::measure::metrics`] adds the readings taken when scraped): HTTP and turn latency,
//! gate decisions, plugin calls, provider errors, event-stream clients. One set per process,
//! since a process runs one engine. This module depends on nothing of the engine's, so every
//! part may use it.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Labels as name-value pairs.
pub type Labels = Vec<(String, String)>;

/// Latency buckets, 1 ms to about 16 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The series the hot paths update.
#[derive(Debug, Clone)]
pub struct Instruments {
    /// HTTP request latency by route and status (the providers' webhooks among them).
    pub http: Family<Labels, Histogram, fn() -> Histogram>,
    /// One turn's latency (a reply, a start, a timer), by what began it.
    pub turns: Family<Labels, Histogram, fn() -> Histogram>,
    /// Gate decisions by decision and reason.
    pub gate: Family<Labels, Counter>,
    /// Plugin call latency by plugin.
    pub plugin_calls: Family<Labels, Histogram, fn() -> Histogram>,
    /// Plugin call errors by plugin and kind.
    pub plugin_errors: Family<Labels, Counter>,
    /// Provider refusals by provider and kind.
    pub provider_errors: Family<Labels, Counter>,
    /// Rows the retention compactor removed, by table.
    pub retention_removed: Family<Labels, Counter>,
    /// Cluster mode's events by kind: inputs applied and replayed, texts sent, fenced and
    /// skipped as already sent, snapshots, leases taken and lost.
    pub cluster: Family<Labels, Counter>,
    /// Agents' event streams open now.
    pub sse_clients: Gauge<i64, std::sync::atomic::AtomicI64>,
}

/// The process's instruments.
pub fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| Instruments {
        http: Family::new_with_constructor(latency),
        turns: Family::new_with_constructor(latency),
        gate: Family::default(),
        plugin_calls: Family::new_with_constructor(latency),
        plugin_errors: Family::default(),
        provider_errors: Family::default(),
        retention_removed: Family::default(),
        cluster: Family::default(),
        sse_clients: Gauge::default(),
    })
}

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// Records `elapsed` in `histogram`'s series for `pairs`.
pub fn observe(
    histogram: &Family<Labels, Histogram, fn() -> Histogram>,
    pairs: &[(&str, &str)],
    elapsed: Duration,
) {
    histogram
        .get_or_create(&labels(pairs))
        .observe(elapsed.as_secs_f64());
}

/// Counts one in `counter`'s series for `pairs`.
pub fn count(counter: &Family<Labels, Counter>, pairs: &[(&str, &str)]) {
    counter.get_or_create(&labels(pairs)).inc();
}

/// A gate reason's kind: its words before the first `:` (`quiet hours`, `the recipient is
/// suppressed`), so the series stay few whatever the details.
pub fn reason_kind(reason: &str) -> String {
    let head = reason
        .split([':', ';', '('])
        .next()
        .unwrap_or_default()
        .trim();
    head.chars().take(48).collect()
}

/// An open event stream, counted while it lives.
#[derive(Debug)]
pub struct StreamClient(());

impl StreamClient {
    /// Counts a new stream.
    pub fn open() -> Self {
        instruments().sse_clients.inc();
        Self(())
    }
}

impl Drop for StreamClient {
    fn drop(&mut self) {
        instruments().sse_clients.dec();
    }
}
