//! A node in cluster mode: `smsflow serve` with `[cluster]`.
//!
//! Every tick (a fifth of the lease lifetime) the node refreshes its membership key, renews
//! the leases it holds (stopping at once any it lost), and compares what it holds with what
//! rendezvous hashing over the live nodes gives it: it hands over partitions that now belong to
//! another node (final snapshot, lease deleted) and takes free ones that belong to it. Sender
//! numbers are leased the same way. On SIGTERM it leaves: membership key deleted, every
//! partition handed over.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::bus::Bus;
use super::ingress::ClusterIngress;
use super::lease::Lease;
use super::owner::{Control, OwnerParts, Progress};
use super::partition::{partition_key, rendezvous, sender_key};
use super::send::{SenderParts, note, run_sender};
use super::{ClusterConfig, ClusterError};
use crate::config::Config;
use crate::engine::{Engine, provider_from_config};

/// What a node says of itself in `smsflow_nodes`, every tick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Its HTTP address.
    pub listen: String,
    /// When it started (ms since the epoch).
    pub started_ms: i64,
    /// The partitions it owns.
    pub partitions: BTreeMap<u32, PartitionReport>,
    /// The sender numbers whose texts it sends.
    pub senders: Vec<String>,
}

/// An owned partition, as reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReport {
    /// The lease's epoch.
    pub epoch: u64,
    /// The last applied input's sequence.
    pub applied: u64,
    /// Inputs not yet applied, as the stream last said.
    pub lag: u64,
}

/// The node's latest report, shared with `GET /v1/cluster`.
pub type SharedReport = Arc<Mutex<NodeReport>>;

struct Held {
    lease: Lease,
    control: watch::Sender<Control>,
    task: JoinHandle<anyhow::Result<()>>,
    progress: Arc<Progress>,
}

struct HeldSender {
    lease: Lease,
    task: JoinHandle<Result<(), ClusterError>>,
}

struct Node {
    cluster: ClusterConfig,
    bus: Bus,
    owners: Arc<OwnerParts>,
    sending: SenderParts,
    held: BTreeMap<u32, Held>,
    senders: BTreeMap<String, HeldSender>,
    /// Hand-overs in progress.
    handing: Vec<JoinHandle<()>>,
    report: SharedReport,
}

/// A running node: its loop, and what the HTTP side uses.
pub struct RunningNode {
    /// Where texts and starts go.
    pub ingress: Arc<ClusterIngress>,
    /// The node's latest report.
    pub report: SharedReport,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode").finish_non_exhaustive()
    }
}

impl RunningNode {
    /// Leaves the cluster: every partition handed over, every lease given up.
    ///
    /// # Errors
    ///
    /// When the node's loop had panicked.
    pub async fn leave(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("the cluster loop")
    }
}

/// Joins the cluster `[cluster]` describes. `front` is the node's own engine: its plugins and
/// clock are shared with the partitions' engines.
///
/// # Errors
///
/// When `[cluster]` is wrong, NATS cannot be reached or set up, or the provider's settings
/// are incomplete.
pub async fn start(config: &Config, front: &Engine) -> anyhow::Result<RunningNode> {
    let cluster = config
        .cluster
        .clone()
        .context("cluster mode needs [cluster]")?;
    cluster.check().map_err(ClusterError::Config)?;
    let bus = connect(&cluster).await?;
    let provider = provider_from_config(config)?;
    let our_number = crate::phone::parse_e164(&config.provider.from)
        .map_err(|error| anyhow::anyhow!("[provider] from: {error}"))?;
    let report: SharedReport = Arc::new(Mutex::new(NodeReport {
        listen: config.server.listen.clone(),
        started_ms: crate::clock::Clock::now_ms(&crate::clock::SystemClock),
        ..NodeReport::default()
    }));
    let dir = cluster.partitions_dir.clone().unwrap_or_else(|| {
        let mut dir = config.store.path.clone().into_os_string();
        dir.push("-partitions");
        dir.into()
    });
    let node = Node {
        owners: Arc::new(OwnerParts {
            config: config.clone(),
            bus: bus.clone(),
            plugins: Arc::clone(front.plugins()),
            dir,
            senders: vec![our_number.clone()],
            provider_name: provider.name(),
            clock: front.clock().clone(),
        }),
        sending: SenderParts {
            bus: bus.clone(),
            provider,
            messages_per_second: config.provider.messages_per_second,
        },
        cluster: cluster.clone(),
        bus: bus.clone(),
        held: BTreeMap::new(),
        senders: BTreeMap::new(),
        handing: Vec::new(),
        report: Arc::clone(&report),
    };
    let (stop, stopped) = watch::channel(false);
    Ok(RunningNode {
        ingress: Arc::new(ClusterIngress::new(bus, cluster.partitions)),
        report,
        stop,
        task: tokio::spawn(node.run(stopped, our_number)),
    })
}

/// How long a starting node waits for JetStream (a cluster that is still electing its leader).
const CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// Connects, retrying while the servers start; a wrong partition count is refused at once.
async fn connect(cluster: &ClusterConfig) -> Result<Bus, ClusterError> {
    let deadline = tokio::time::Instant::now() + CONNECT_PATIENCE;
    loop {
        match Bus::connect(cluster).await {
            Ok(bus) => return Ok(bus),
            Err(error @ (ClusterError::PartitionsChanged { .. } | ClusterError::Config(_))) => {
                return Err(error);
            }
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!("JetStream not ready, retrying: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

impl Node {
    async fn run(mut self, mut stop: watch::Receiver<bool>, sender: String) {
        let mut tick = tokio::time::interval(self.cluster.tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.step(&sender).await,
                _ = stop.changed() => break,
            }
        }
        self.leave().await;
    }

    /// One tick: membership, renewals, then the assignment.
    async fn step(&mut self, sender: &str) {
        self.heartbeat().await;
        self.renew().await;
        let mut live = match self.bus.live_nodes().await {
            Ok(live) => live,
            Err(error) => {
                tracing::warn!("cannot list the cluster's nodes: {error}");
                return;
            }
        };
        if !live.contains(&self.cluster.node_id) {
            live.push(self.cluster.node_id.clone());
            live.sort();
        }
        let me = self.cluster.node_id.clone();
        let mine = |key: &str| rendezvous(&live, key) == Some(me.as_str());
        let mut leaving = Vec::new();
        for partition in 0..self.cluster.partitions {
            let wanted = mine(&partition_key(partition));
            let held = self.held.contains_key(&partition);
            if held && !wanted {
                leaving.extend(self.held.remove(&partition));
            } else if !held && wanted {
                self.acquire(partition).await;
            }
        }
        // Hand-overs run beside the loop, which keeps renewing the other leases meanwhile.
        for held in leaving {
            let handing = tokio::spawn(hand_over(self.bus.clone(), held, self.cluster.tick()));
            self.handing.push(handing);
        }
        self.handing.retain(|handing| !handing.is_finished());
        let wanted = mine(&sender_key(sender));
        match (self.senders.contains_key(sender), wanted) {
            (true, false) => {
                if let Some(held) = self.senders.remove(sender) {
                    held.task.abort();
                    held.lease.release(&self.bus.leases).await;
                }
            }
            (false, true) => self.acquire_sender(sender).await,
            _ => {}
        }
    }

    async fn heartbeat(&self) {
        let report = {
            let mut report = self.report.lock().unwrap_or_else(PoisonError::into_inner);
            report.partitions = self
                .held
                .iter()
                .map(|(partition, held)| {
                    let progress = PartitionReport {
                        epoch: held.lease.epoch(),
                        applied: held
                            .progress
                            .applied
                            .load(std::sync::atomic::Ordering::SeqCst),
                        lag: held.progress.lag.load(std::sync::atomic::Ordering::SeqCst),
                    };
                    (*partition, progress)
                })
                .collect();
            report.senders = self.senders.keys().cloned().collect();
            report.clone()
        };
        let value = serde_json::to_vec(&report).unwrap_or_default();
        if let Err(error) = self
            .bus
            .nodes
            .put(&self.cluster.node_id, Bytes::from(value))
            .await
        {
            tracing::warn!("cannot refresh this node's membership: {error}");
        }
    }

    /// Renews every lease; a lost one stops its work at once. A partition whose task ended
    /// (an error) is given up, to be taken again.
    async fn renew(&mut self) {
        let mut lost = Vec::new();
        for (partition, held) in &mut self.held {
            if held.task.is_finished() || !held.lease.renew(&self.bus.leases).await {
                lost.push(*partition);
            }
        }
        for partition in lost {
            let Some(held) = self.held.remove(&partition) else {
                continue;
            };
            held.task.abort();
            // A task that met its own lapsed fence (a pause past the lease, noticed on waking
            // by the work before this tick) ended with an error, but its lease is what was lost.
            let lapsed = !held.lease.fence().valid();
            match held.task.await {
                Ok(Err(error)) if !lapsed => {
                    tracing::error!(partition, "the partition stopped: {error:#}");
                    held.lease.release(&self.bus.leases).await;
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        partition,
                        epoch = held.lease.epoch(),
                        "partition lease lost: stopped"
                    );
                    note("lease_lost");
                }
            }
        }
        let mut lost_senders = Vec::new();
        for (number, held) in &mut self.senders {
            if held.task.is_finished() || !held.lease.renew(&self.bus.leases).await {
                lost_senders.push(number.clone());
            }
        }
        for number in lost_senders {
            if let Some(held) = self.senders.remove(&number) {
                held.task.abort();
                tracing::warn!(sender = %number, "sender lease lost or its loop ended: stopped");
            }
        }
    }

    async fn acquire(&mut self, partition: u32) {
        let ttl = self.cluster.lease_ttl();
        let Some(lease) = Lease::acquire(
            &self.bus.leases,
            &partition_key(partition),
            &self.cluster.node_id,
            ttl,
        )
        .await
        else {
            return;
        };
        note("lease_taken");
        let (control, controlled) = watch::channel(Control::Run);
        let progress = Arc::new(Progress::default());
        let task = tokio::spawn(super::owner::run(
            Arc::clone(&self.owners),
            (partition, lease.epoch(), lease.fence()),
            Arc::clone(&progress),
            controlled,
        ));
        self.held.insert(
            partition,
            Held {
                lease,
                control,
                task,
                progress,
            },
        );
    }

    async fn acquire_sender(&mut self, number: &str) {
        let ttl = self.cluster.lease_ttl();
        let Some(lease) = Lease::acquire(
            &self.bus.leases,
            &sender_key(number),
            &self.cluster.node_id,
            ttl,
        )
        .await
        else {
            return;
        };
        let task = tokio::spawn(run_sender(
            self.sending.clone(),
            number.to_owned(),
            lease.fence(),
        ));
        self.senders
            .insert(number.to_owned(), HeldSender { lease, task });
    }

    /// Leaves the cluster: the membership key goes first, so no node assigns us anything
    /// more, then every partition is handed over.
    async fn leave(mut self) {
        if let Err(error) = self.bus.nodes.delete(&self.cluster.node_id).await {
            tracing::warn!("cannot delete this node's membership key, it will lapse: {error}");
        }
        let held = std::mem::take(&mut self.held).into_values();
        let tick = self.cluster.tick();
        futures_util::future::join_all(held.map(|held| hand_over(self.bus.clone(), held, tick)))
            .await;
        futures_util::future::join_all(std::mem::take(&mut self.handing)).await;
        for held in std::mem::take(&mut self.senders).into_values() {
            held.task.abort();
            held.lease.release(&self.bus.leases).await;
        }
        tracing::info!("left the cluster: every partition handed over");
    }
}

/// How long a partition may take to finish and snapshot when handed over.
const HAND_OVER_GRACE: Duration = Duration::from_secs(15);

/// Tells a partition to finish and snapshot, then deletes its lease so the next owner takes it
/// at once. A partition that cannot finish in time keeps its lease until it lapses.
async fn hand_over(bus: Bus, held: Held, tick: Duration) {
    let Held {
        mut lease,
        control,
        mut task,
        ..
    } = held;
    let _ = control.send(Control::Release);
    let partition = lease.key().to_owned();
    let deadline = tokio::time::Instant::now() + HAND_OVER_GRACE;
    // The lease is renewed while the partition finishes: its final snapshot is written only
    // while the lease holds.
    let finished = loop {
        tokio::select! {
            finished = &mut task => break Some(finished),
            () = tokio::time::sleep(tick) => {
                if tokio::time::Instant::now() > deadline || !lease.renew(&bus.leases).await {
                    task.abort();
                    break None;
                }
            }
        }
    };
    match finished {
        Some(Ok(Ok(()))) => {
            lease.release(&bus.leases).await;
            note("handed_over");
            tracing::info!(%partition, "partition handed over");
        }
        Some(Ok(Err(error))) => {
            tracing::error!(%partition, "the hand-over failed, the lease will lapse: {error:#}");
            lease.fence().revoke();
        }
        Some(Err(_)) | None => {
            tracing::error!(%partition, "the hand-over did not finish, the lease will lapse");
            lease.fence().revoke();
        }
    }
}
