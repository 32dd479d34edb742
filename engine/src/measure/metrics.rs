//! `GET /metrics`: the engine's health in the Prometheus (OpenMetrics) text format, with
//! prometheus-client. Every series starts with `smsflow_`; counters end in `_total`.
//!
//! Two kinds of series: the **instruments** the hot paths update as they go
//! ([`crate::metrics`]), and **readings** taken from the store when scraped: inbox and outbox
//! depth, dead letters, campaign progress.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::{Labels, instruments, labels};

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
    /// The metrics of an engine's inbox, outbox and campaigns.
    pub fn new(
        inbox: Arc<crate::inbox::Inbox>,
        outbox: Arc<crate::outbound::Outbox>,
        campaigns: Arc<crate::campaigns::Campaigns>,
    ) -> Self {
        Self {
            inbox,
            outbox,
            campaigns,
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
            "retention_removed_rows",
            "Rows the retention compactor removed, by table",
            ours.retention_removed,
        );
        registry.register(
            "cluster_events",
            "Cluster mode's events by kind (applied, replayed, sent, fenced, already_sent, ...)",
            ours.cluster,
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
