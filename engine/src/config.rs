//! `smsflow.toml`: the operator's configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::compliance::duration_serde;
use crate::listener::ConnectionLimits;
use crate::plugin::PluginsConfig;

/// The whole configuration file. Unknown keys are errors, so a typo is never silently ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The database.
    #[serde(default)]
    pub store: StoreConfig,
    /// Plugins, their grants and limits.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// The HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// The flows in service.
    #[serde(default)]
    pub flows: FlowsConfig,
    /// The SMS provider.
    #[serde(default)]
    pub provider: ProviderConfig,
    /// The inbound queue.
    #[serde(default)]
    pub inbox: InboxConfig,
    /// Endpoints of the operator's systems that receive event webhooks.
    #[serde(default)]
    pub webhooks: Vec<crate::events::WebhookEndpoint>,
    /// The compliance gate's policy: opt-out scope, quiet hours, caps, content rules.
    #[serde(default)]
    pub compliance: crate::compliance::ComplianceConfig,
    /// Messaging programs by id (the `program` of flows): brand, help text, exemptions.
    #[serde(default)]
    pub programs: std::collections::BTreeMap<String, crate::compliance::ProgramConfig>,
    /// The human queues flows hand off to: assignment, service levels, business hours.
    #[serde(default)]
    pub queues: Vec<crate::handoff::QueueConfig>,
    /// Handoff settings shared by every queue.
    #[serde(default)]
    pub handoff: crate::handoff::HandoffConfig,
    /// Agents' canned replies by shortcode: templates filled from the contact's fields.
    #[serde(default)]
    pub canned: std::collections::BTreeMap<String, String>,
    /// Contacts: the default country of national numbers, field types, time zones.
    #[serde(default)]
    pub contacts: crate::contacts::ContactsConfig,
    /// Tracked links: the address their short links are served from.
    #[serde(default)]
    pub links: LinksConfig,
    /// Measurement: attribution windows and how long funnel events are kept.
    #[serde(default)]
    pub measurement: MeasurementConfig,
    /// How long each table's rows are kept ([`crate::retention`]).
    #[serde(default)]
    pub retention: crate::retention::RetentionConfig,
    /// Cluster mode on NATS JetStream; absent, `smsflow serve` runs as one node.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
}

/// The `[links]` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinksConfig {
    /// The address short links start with (`https://go.example.com`): a domain of the
    /// operator's, since its reputation is part of deliverability. Unset, the server's own
    /// address (`http://<[server] listen>`), which only works where the phones can reach it.
    #[serde(default)]
    pub base_url: Option<String>,
}

impl LinksConfig {
    /// What a short link is, up to its code: `<base_url>/l/`.
    pub fn base(&self, listen: &str) -> String {
        let base = match &self.base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{listen}"),
        };
        format!("{base}/l/")
    }
}

/// The `[measurement]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementConfig {
    /// A conversion is attributed to a text the contact clicked this recently.
    #[serde(
        default = "default_click_window",
        with = "crate::compliance::duration_serde"
    )]
    pub click_window: std::time::Duration,
    /// Else to a text delivered this recently.
    #[serde(
        default = "default_delivery_window",
        with = "crate::compliance::duration_serde"
    )]
    pub delivery_window: std::time::Duration,
    /// Raw funnel events are kept this long, then rolled up per day and deleted.
    #[serde(
        default = "default_keep_events",
        with = "crate::compliance::duration_serde"
    )]
    pub keep_events: std::time::Duration,
}

fn default_keep_events() -> std::time::Duration {
    // A year and a month: a report can compare a month with the same one a year before.
    std::time::Duration::from_secs(400 * 86_400)
}

impl Default for MeasurementConfig {
    fn default() -> Self {
        Self {
            click_window: default_click_window(),
            delivery_window: default_delivery_window(),
            keep_events: default_keep_events(),
        }
    }
}

fn default_click_window() -> std::time::Duration {
    std::time::Duration::from_secs(5 * 86_400)
}

fn default_delivery_window() -> std::time::Duration {
    std::time::Duration::from_secs(86_400)
}

/// The `[inbox]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InboxConfig {
    /// Processing attempts before an inbound text goes to the dead letters.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Parallel workers (one conversation always uses the same one).
    #[serde(default = "default_lanes")]
    pub workers: usize,
}

impl Default for InboxConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            workers: default_lanes(),
        }
    }
}

fn default_max_attempts() -> u32 {
    8
}

fn default_send_attempts() -> u32 {
    24
}

fn default_lanes() -> usize {
    8
}

/// The `[server]` section; a key left out takes [`ServerConfig::default`]'s value.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The URL providers call us at (their signatures cover it).
    #[serde(default)]
    pub public_url: Option<String>,
    /// The bearer token of the operator API (`/v1/...`); without one the API refuses every
    /// request.
    #[serde(default)]
    pub api_token: Option<String>,
    /// How long a client has to send a request's head (from accept, for the first).
    #[serde(with = "duration_serde")]
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    #[serde(with = "duration_serde")]
    pub idle_timeout: Duration,
    /// How long a request's body may take to arrive after its head (then 408).
    #[serde(with = "duration_serde")]
    pub body_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// The largest request head in bytes (then 431).
    pub max_header_bytes: usize,
    /// Serve the phone simulator at `/simulator` (for demos and trying flows; off in
    /// production: anyone who can reach it can text the engine as any number).
    pub simulator: bool,
    /// `GET /metrics` only with the operator token. Off by default, as Prometheus endpoints
    /// usually are: keep the port on an internal network, or turn this on and give Prometheus
    /// the token (`authorization: bearer`).
    pub metrics_need_token: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        // One place says what the connection limits default to, and why.
        let limits = ConnectionLimits::default();
        Self {
            listen: default_listen(),
            public_url: None,
            api_token: None,
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            body_read_timeout: limits.body_read_timeout,
            max_connections: limits.max_connections,
            max_header_bytes: limits.max_header_bytes,
            simulator: false,
            metrics_need_token: false,
        }
    }
}

impl ServerConfig {
    /// The limits every connection is served under, with `shutdown_grace` after shutdown.
    pub fn connection_limits(&self, shutdown_grace: Duration) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_read_timeout: self.body_read_timeout,
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            shutdown_grace,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

/// The `[flows]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsConfig {
    /// The folder of flow files.
    #[serde(default = "default_flows_dir")]
    pub dir: PathBuf,
    /// How often the folder is checked for changed flows, in milliseconds (0: never).
    #[serde(default = "default_reload_ms")]
    pub reload_interval_ms: u64,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self {
            dir: default_flows_dir(),
            reload_interval_ms: default_reload_ms(),
        }
    }
}

fn default_flows_dir() -> PathBuf {
    PathBuf::from("flows")
}

fn default_reload_ms() -> u64 {
    2000
}

/// The `[provider]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `console`: texts are printed and recorded as sent.
    #[serde(default)]
    pub kind: ProviderKind,
    /// Our number, E.164.
    #[serde(default = "default_from")]
    pub from: String,
    /// Twilio: the account.
    #[serde(default)]
    pub account_sid: Option<String>,
    /// Twilio: the auth token, which signs Twilio's webhooks and authenticates our API calls.
    /// Setting it enables `POST /webhooks/twilio` whatever the provider kind (the console
    /// provider uses it for `smsflow send-test`).
    #[serde(default)]
    pub auth_token: Option<String>,
    /// The provider's API base URL (default: Twilio's or Telnyx's).
    #[serde(default)]
    pub api_base: Option<String>,
    /// Telnyx: the API key, sent as a bearer token.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Telnyx: the webhook public key (base64), which enables `POST /webhooks/telnyx`.
    #[serde(default)]
    pub telnyx_public_key: Option<String>,
    /// Texts per second per sender number (a US long code takes 1; toll-free 3; short codes 100).
    #[serde(default = "default_messages_per_second")]
    pub messages_per_second: f64,
    /// Attempts at handing a text to the provider before it is marked failed. The waits
    /// between them double from 1 s to 5 minutes, so the default 24 span about 85 minutes:
    /// an hour's outage at the provider loses no text.
    #[serde(default = "default_send_attempts")]
    pub max_attempts: u32,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            kind: ProviderKind::default(),
            from: default_from(),
            account_sid: None,
            auth_token: None,
            api_base: None,
            api_key: None,
            telnyx_public_key: None,
            messages_per_second: default_messages_per_second(),
            max_attempts: default_send_attempts(),
        }
    }
}

fn default_messages_per_second() -> f64 {
    1.0
}

fn default_from() -> String {
    "+15550001000".to_owned()
}

/// Which provider sends texts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Print texts; no account needed.
    #[default]
    Console,
    /// Twilio's Messages API.
    Twilio,
    /// Telnyx's Messaging API.
    Telnyx,
}

/// The `[store]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The sled database's folder.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: default_store_path(),
        }
    }
}

fn default_store_path() -> PathBuf {
    PathBuf::from("data/smsflow.db")
}

impl Config {
    /// Reads `path`. Relative paths inside it are taken from the file's folder.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is not valid; the message names the file, line and
    /// column.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.store.path = base.join(&config.store.path);
        config.plugins.dir = base.join(&config.plugins.dir);
        config.flows.dir = base.join(&config.flows.dir);
        config.plugins.cache_dir = config.plugins.cache_dir.map(|dir| base.join(dir));
        config.compliance.quiet_hours_pack = config
            .compliance
            .quiet_hours_pack
            .map(|pack| base.join(pack));
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_writes_out_the_default_connection_limits() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../smsflow.toml");
        let config = Config::from_file(&demo).unwrap();
        let grace = std::time::Duration::from_secs(10);
        assert_eq!(
            config.server.connection_limits(grace),
            ConnectionLimits {
                shutdown_grace: grace,
                ..ConnectionLimits::default()
            }
        );
    }

    #[test]
    fn connection_limits_read_humantime_durations() {
        let config: Config = toml::from_str(
            "[server]\nheader_read_timeout = \"500ms\"\nidle_timeout = \"2m\"\nmax_connections = 64\n",
        )
        .unwrap();
        assert_eq!(
            config.server.header_read_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(config.server.idle_timeout, Duration::from_secs(120));
        assert_eq!(config.server.max_connections, 64);
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert!(toml::from_str::<Config>("[server]\nidle_timeout = 75\n").is_err());
    }
}

/// `[cluster]`: turns cluster mode on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS servers, any of which the node may connect to.
    pub nats: Vec<String>,
    /// This node's name, unique in the cluster (letters, digits, `-` and `_`).
    pub node_id: String,
    /// How many partitions contacts are spread over: fixed when the cluster is created.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Copies JetStream keeps of every stream and bucket (3 for a 3-server cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How long a lease lasts unrenewed: a dead owner's partitions move after this.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// A partition is snapshotted after this many inputs...
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// ...or this long after its last snapshot, when it applied anything since.
    #[serde(default = "default_snapshot_interval_ms")]
    pub snapshot_interval_ms: u64,
    /// Where the node keeps the working copies of the partitions it owns (default: the
    /// store's path with `-partitions` appended). They are rebuilt from snapshots.
    #[serde(default)]
    pub partitions_dir: Option<std::path::PathBuf>,
}

fn default_partitions() -> u32 {
    64
}

fn default_replicas() -> usize {
    3
}

fn default_lease_ttl_ms() -> u64 {
    10_000
}

fn default_snapshot_every() -> u64 {
    1_000
}

fn default_snapshot_interval_ms() -> u64 {
    60_000
}

impl ClusterConfig {
    /// The lease lifetime.
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_ttl_ms)
    }

    /// How often leases are renewed and membership refreshed: a fifth of the lease, so four
    /// renewals can fail before it lapses.
    pub fn tick(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.lease_ttl_ms / 5).max(50))
    }

    /// Refuses settings the cluster cannot run with.
    ///
    /// # Errors
    ///
    /// Which setting is wrong and how to fix it.
    pub fn check(&self) -> Result<(), String> {
        let fail = |message: String| Err(message);
        if self.nats.is_empty() {
            return fail(
                "`nats` lists no server: add at least one, e.g. [\"nats://127.0.0.1:4222\"]".into(),
            );
        }
        let valid_id = !self.node_id.is_empty()
            && self.node_id.len() <= 64
            && self
                .node_id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !valid_id {
            return fail(format!(
                "`node_id = {:?}` must be 1-64 letters, digits, `-` or `_`",
                self.node_id
            ));
        }
        if !(1..=4096).contains(&self.partitions) {
            return fail(format!(
                "`partitions = {}` must be 1 to 4096",
                self.partitions
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return fail(format!("`replicas = {}` must be 1 to 5", self.replicas));
        }
        if self.lease_ttl_ms < 500 {
            return fail(format!(
                "`lease_ttl_ms = {}` must be at least 500",
                self.lease_ttl_ms
            ));
        }
        Ok(())
    }
}
