//! Cluster mode on NATS JetStream: conversations partitioned by contact, one fenced owner per
//! partition, failover from snapshots with nothing lost or sent twice. `docs/cluster.md` is
//! the design and the reasons; this module is its code.
//!
//! - [`partition`]: which partition a contact is in, which node should own it.
//! - [`bus`]: the streams, key-value buckets and object store the cluster keeps in JetStream.
//! - [`ingress`]: any node's webhooks and starts, published to the contact's partition.
//! - [`lease`]: a partition's (or a sender's) lease, its epoch and its local deadline.
//! - [`owner`]: a partition's owner: restore, apply in stream order, snapshot, hand over.
//! - [`rpc`]: reads of a contact, answered by its partition's owner.
//! - [`send`]: the owner's texts to the send stream, and the one sender per number.
//! - [`node`]: the node's loop: heartbeat, assignment, leases; and `serve` in cluster mode.
//! - [`status`]: `smsflow cluster status`.

pub mod bus;
pub mod ingress;
pub mod lease;
pub mod node;
pub mod owner;
pub mod partition;
pub mod rpc;
pub mod send;
pub mod status;

pub use crate::config::ClusterConfig;

/// Why the cluster could not do something.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `[cluster]` is wrong.
    #[error("[cluster] {0}")]
    Config(String),
    /// No server of `[cluster] nats` answered.
    #[error(
        "cannot connect to NATS at {servers}: {source}; start nats-server with -js, or fix [cluster] nats"
    )]
    Connect {
        /// The servers tried.
        servers: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// JetStream refused to set up or use one of the cluster's objects.
    #[error("JetStream {what}: {message}")]
    JetStream {
        /// The object and the operation.
        what: String,
        /// The server's or the client's words.
        message: String,
    },
    /// The cluster was created with another partition count.
    #[error(
        "[cluster] partitions = {configured}, but this cluster was created with {found}: \
         partitions are fixed at creation; set partitions = {found}"
    )]
    PartitionsChanged {
        /// In this node's config.
        configured: u32,
        /// In the cluster.
        found: u32,
    },
}

impl ClusterError {
    /// A JetStream error on `what`.
    pub(crate) fn js(what: impl Into<String>, error: impl std::fmt::Display) -> Self {
        Self::JetStream {
            what: what.into(),
            message: error.to_string(),
        }
    }
}
