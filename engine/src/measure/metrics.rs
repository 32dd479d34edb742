//! `GET /metrics`: the engine's health in the Prometheus (OpenMetrics) text format, with
//! prometheus-client. Every series starts with `smsflow_`; counters end in `_total`.
//!
//! Two kinds of series:
//! - **instruments** the hot paths update as they go ([`instruments`]: one set per process,
//!   since a process runs one engine): HTTP and turn latency, gate decisions, plugin calls,
//!   provider errors, event-stream clients;
//! - **readings** taken from the store when scraped: inbox and outbox depth, dead letters,
//!   campaign progress.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::engine::Engine;

/// Labels as name-value pairs.
type Labels = Vec<(String, String)>;

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

/// `/metrics`: the instruments, and readings taken from the engine when scraped.
pub struct Metrics {
    inbox: Arc<crate::inbox::Inbox>,
    outbox: Arc<crate::outbound::Outbox>,
    campaigns: Arc<crate::campaigns::Campaigns>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of `engine`.
    pub fn new(engine: &Engine) -> Self {
        Self {
            inbox: Arc::clone(engine.inbox()),
            outbox: Arc::clone(engine.outbox()),
            campaigns: Arc::clone(engine.campaigns()),
        }
    }

    /// Everything, in the OpenMetrics text format.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn render(&self) -> anyhow::Result<String> {
        let mut registry = Registry::with_prefix("smsflow");
        let ours = instruments().clone();
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and status",
            ours.http,
        );
        registry.register(
            "turn_duration_seconds",
            "One turn's latency (a reply, a start, a timer)",
            ours.turns,
        );
        registry.register(
            "gate_decisions",
            "Compliance gate decisions by decision and reason",
            ours.gate,
        );
        registry.register(
            "plugin_call_duration_seconds",
            "Plugin call latency by plugin",
            ours.plugin_calls,
        );
        registry.register(
            "plugin_errors",
            "Plugin call errors by plugin and kind",
            ours.plugin_errors,
        );
        registry.register(
            "provider_errors",
            "Texts the provider refused, by provider and kind",
            ours.provider_errors,
        );
        registry.register(
            "sse_clients",
            "Agents' event streams open now",
            ours.sse_clients,
        );
        self.readings(&mut registry)?;
        let mut text = String::new();
        encode(&mut text, &registry)?;
        Ok(text)
    }

    /// The store's readings, taken now.
    fn readings(&self, registry: &mut Registry) -> anyhow::Result<()> {
        let gauge = |value: usize| {
            let gauge: Gauge<i64, std::sync::atomic::AtomicI64> = Gauge::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            gauge
        };
        registry.register(
            "inbox_depth",
            "Inbound texts waiting to be processed",
            gauge(self.inbox.pending_len()?),
        );
        registry.register(
            "outbox_depth",
            "Texts waiting to be sent (due or deferred)",
            gauge(self.outbox.due_len()?),
        );
        registry.register(
            "dead_letters",
            "Inbound texts that failed every attempt",
            gauge(self.inbox.dead_letters()?.len()),
        );
        let progress: Family<Labels, Gauge<u64, AtomicU64>> = Family::default();
        for campaign in self.campaigns.list()? {
            let counts = self.campaigns.progress(&campaign.id)?;
            for stage in [
                "targeted", "started", "sent", "deferred", "blocked", "failed",
            ] {
                let value = counts[stage].as_u64().unwrap_or(0);
                let series = labels(&[("campaign", &campaign.id), ("stage", stage)]);
                progress.get_or_create(&series).set(value);
            }
        }
        registry.register(
            "campaign_contacts",
            "Each campaign's contacts by stage",
            progress,
        );
        Ok(())
    }
}
