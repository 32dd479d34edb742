//! Cluster mode against one node, with the same scenario and load generator: HELP from distinct
//! New York numbers, each answered with the help text, on
//! 1. `single`: today's `smsflow serve` on its embedded store, no `[cluster]`;
//! 2. `cluster-1`: one `nats-server`, `replicas = 1`, one smsflow node;
//! 3. `cluster-3`: three `nats-server`s in one JetStream cluster, `replicas = 3`, three smsflow
//!    nodes, webhook `i` posted to node `i mod 3`.
//!
//! Each configuration is started twice on fresh stores, and measured once every partition is
//! owned where rendezvous hashing puts it and the sender's lease is held. First a *sustained*
//! closed loop with the backlog bounded, as in [`crate::scenarios`], with the CPU time of every
//! smsflow and `nats-server` process (and of the harness) read from /proc before it and after
//! the processes went quiet again; then an open loop for latency at one rate for all three, a
//! fraction of the slowest sustained rate. Every acknowledged text must be answered exactly once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use smsflow::cluster::node::NodeReport;
use smsflow::cluster::partition::{partition_key, rendezvous, sender_key};

use crate::contacts::Block;
use crate::engine::{Engine, Setup};
use crate::latency::{Expect, summary};
use crate::loadgen::{self, Live, Pace, Report, per_second};
use crate::nats::Nats;
use crate::process::{MachineCpu, cpu_seconds, disk_bytes, own_cpu_seconds, peak_rss_bytes};
use crate::report::Section;
use crate::scenarios::{Bench, Check, Latency, SETTLE, Sustained};
use crate::twilio::InboundTexts;

/// The text every configuration is sent.
const BODY: &str = "HELP";
/// Each text is answered once, and nothing came before it.
const HELP_ANSWERED: Expect = Expect::Reply { earlier: 0 };
/// How long the processes' idle CPU use is measured before the sustained phase.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// After the last reply, CPU use is read this often until it falls back to idle.
const QUIET_WINDOW: Duration = Duration::from_millis(500);
/// Quiet: at most this many cores above the idle use.
const QUIET_CORES: f64 = 0.05;
/// The longest the trailing work of a phase is waited for.
const QUIET_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the nodes' reports are read while waiting for ownership.
const OWNERSHIP_POLL: Duration = Duration::from_millis(100);

/// The three configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One `smsflow serve`, embedded store, no `[cluster]`.
    Single,
    /// One nats-server (R1), one node.
    OneNode,
    /// Three nats-servers in one JetStream cluster (R3), three nodes.
    ThreeNodes,
}

impl Mode {
    /// All three, in order.
    pub const ALL: [Self; 3] = [Self::Single, Self::OneNode, Self::ThreeNodes];

    /// Its key in the results.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::OneNode => "cluster-1",
            Self::ThreeNodes => "cluster-3",
        }
    }

    /// What it runs, for the table.
    pub fn description(self) -> &'static str {
        match self {
            Self::Single => "single node, embedded store (no [cluster])",
            Self::OneNode => "1-node cluster: 1 nats-server, replicas = 1",
            Self::ThreeNodes => {
                "3-node cluster: 3 nats-servers, replicas = 3, webhooks round-robin"
            }
        }
    }

    fn nats_servers(self) -> usize {
        match self {
            Self::Single => 0,
            Self::OneNode => 1,
            Self::ThreeNodes => 3,
        }
    }

    fn nodes(self) -> usize {
        match self {
            Self::Single | Self::OneNode => 1,
            Self::ThreeNodes => 3,
        }
    }

    fn replicas(self) -> Option<usize> {
        match self {
            Self::Single => None,
            Self::OneNode => Some(1),
            Self::ThreeNodes => Some(3),
        }
    }

    /// Its number, for the message ids (which must be alphanumeric).
    fn tag(self) -> u32 {
        match self {
            Self::Single => 1,
            Self::OneNode => 2,
            Self::ThreeNodes => 3,
        }
    }
}

/// The cluster part's results.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    /// What is sent.
    pub scenario: String,
    /// The text.
    pub body: String,
    /// `[cluster] partitions`.
    pub partitions: u32,
    /// `[cluster] lease_ttl_ms`.
    pub lease_ttl_ms: u64,
    /// The latency phases' rate as a fraction of the slowest sustained rate.
    pub load: f64,
    /// The latency phases' rate, texts/s (none when no configuration sustained any).
    pub latency_rate: Option<f64>,
    /// Single node, 1-node cluster, 3-node cluster.
    pub configurations: Vec<Configuration>,
    /// Every configuration ran both phases and answered every text exactly once.
    pub exactly_once: bool,
}

impl Cluster {
    /// Whether a phase of a configuration failed.
    pub fn failed(&self) -> bool {
        self.configurations
            .iter()
            .any(|c| c.sustained.failed() || c.latency.failed())
    }

    /// The configuration called `name`.
    pub fn configuration(&self, name: &str) -> Option<&Configuration> {
        self.configurations.iter().find(|c| c.name == name)
    }
}

/// One configuration's results.
#[derive(Debug, Clone, Serialize)]
pub struct Configuration {
    /// `single`, `cluster-1` or `cluster-3`.
    pub name: String,
    /// What it runs.
    pub description: String,
    /// `nats-server` processes.
    pub nats_servers: usize,
    /// `smsflow serve` processes.
    pub smsflow_nodes: usize,
    /// `[cluster] replicas`.
    pub replicas: Option<usize>,
    /// The closed loop, with the CPU and memory it took.
    pub sustained: Section<SustainedRun>,
    /// The open loop at [`Cluster::latency_rate`], on a fresh start.
    pub latency: Section<LatencyRun>,
    /// Both phases.
    pub check: Check,
    /// Both phases ran and `check` found nothing wrong.
    pub exactly_once: bool,
}

/// The sustained phase of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct SustainedRun {
    /// How it started.
    pub start: Started,
    /// CPU use of the processes doing nothing, just before the phase.
    pub idle: Idle,
    /// The closed loop.
    pub sustained: Sustained,
    /// What the texts cost in CPU.
    pub cost: Cost,
    /// Peak resident memory of each process.
    pub memory: Memory,
    /// Bytes on disk after the phase.
    pub disk: Disk,
    /// `smsflow_cluster_events_total` summed over the nodes, by event.
    pub cluster_events: BTreeMap<String, u64>,
    /// Nodes that did not stop cleanly on SIGTERM.
    pub stop_errors: Vec<String>,
}

/// The latency phase of one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    /// How it started.
    pub start: Started,
    /// The open loop.
    pub latency: Latency,
    /// Nodes that did not stop cleanly on SIGTERM.
    pub stop_errors: Vec<String>,
}

/// A configuration coming up.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    /// From starting the first process until every node answered `/healthz` and (cluster)
    /// every partition and the sender were held where rendezvous hashing puts them.
    pub ready_seconds: f64,
    /// Partitions each node owns (cluster).
    pub partitions_per_node: Vec<usize>,
    /// The node sending for our number (cluster).
    pub sender_node: Option<String>,
}

/// CPU use with no load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Idle {
    /// Cores the smsflow processes used together.
    pub smsflow_cores: f64,
    /// Cores the nats-server processes used together.
    pub nats_cores: f64,
}

/// CPU time of a group of processes over the sustained phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Cpu {
    /// From the first POST until the processes were quiet again.
    pub cpu_seconds: f64,
    /// `cpu_seconds` per text answered, in milliseconds.
    pub ms_per_text: f64,
    /// `cpu_seconds` over the window: cores kept busy.
    pub cores: f64,
    /// Counted only to the last reply, per text answered, in milliseconds.
    pub ms_per_text_to_last_reply: f64,
}

/// What the sustained phase cost.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Cost {
    /// The window: from the first POST until the processes were quiet again.
    pub seconds: f64,
    /// Of it, after the last reply: the work the texts left behind (receipts, snapshots,
    /// the outbox's last results).
    pub after_last_reply_seconds: f64,
    /// Texts answered.
    pub texts: u64,
    /// Every `smsflow serve`.
    pub smsflow: Cpu,
    /// Every `nats-server` (zero for the single node).
    pub nats: Cpu,
    /// The harness: the load generator signing and posting, the fake provider.
    pub harness: Cpu,
    /// The whole machine (anything else running on it included), cores busy.
    pub machine_busy_cores: f64,
    /// The whole machine, cores idle while a disk request was outstanding (fsync waits show
    /// here).
    pub machine_iowait_cores: f64,
}

/// Peak resident memory (`VmHWM`).
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// Of each smsflow node.
    pub smsflow_peak_rss_bytes: Vec<u64>,
    /// Of each nats-server.
    pub nats_peak_rss_bytes: Vec<u64>,
    /// The smsflow nodes together.
    pub smsflow_total_bytes: u64,
    /// The nats-servers together.
    pub nats_total_bytes: u64,
}

/// Bytes on disk after the sustained phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Disk {
    /// The smsflow nodes' stores (front store and partitions' working copies).
    pub smsflow_bytes: u64,
    /// The nats-servers' JetStream stores (every replica).
    pub nats_bytes: u64,
    /// `smsflow_bytes` per text acknowledged.
    pub smsflow_bytes_per_text: f64,
    /// `nats_bytes` per text acknowledged.
    pub nats_bytes_per_text: f64,
}

/// Runs the three configurations.
pub async fn run(bench: &Bench<'_>) -> Cluster {
    let plan = bench.plan.cluster;
    let mut sustained = Vec::new();
    for mode in Mode::ALL {
        eprintln!("  {}: sustained", mode.name());
        let result = sustained_run(bench, mode).await;
        match &result {
            Ok(run) => eprintln!(
                "    {:.0} texts/s; CPU per text: smsflow {:.2} ms, nats-server {:.2} ms",
                run.sustained.texts_per_second,
                run.cost.smsflow.ms_per_text,
                run.cost.nats.ms_per_text
            ),
            Err(error) => eprintln!("    failed: {error:#}"),
        }
        sustained.push(result);
    }
    let slowest = sustained
        .iter()
        .filter_map(|run| run.as_ref().ok())
        .map(|run| run.sustained.texts_per_second)
        .reduce(f64::min);
    let latency_rate = slowest
        .map(|rate| rate * plan.load)
        .filter(|rate| *rate > 0.0);
    let mut configurations = Vec::new();
    for (mode, sustained) in Mode::ALL.into_iter().zip(sustained) {
        let latency = match (&sustained, latency_rate) {
            (Ok(_), Some(rate)) => {
                eprintln!("  {}: latency at {rate:.0} texts/s", mode.name());
                let result = latency_run(bench, mode, rate).await;
                match &result {
                    Ok(run) => {
                        if let Some(s) = &run.latency.ingest_to_provider {
                            eprintln!("    p50 {:.2} ms, p99 {:.2} ms", s.p50_ms, s.p99_ms);
                        }
                    }
                    Err(error) => eprintln!("    failed: {error:#}"),
                }
                result.into()
            }
            (Ok(_), None) => Section::Failed {
                error: "no configuration sustained any texts: no rate to measure latency at"
                    .to_owned(),
            },
            (Err(_), _) => Section::Skipped {
                skipped: "its sustained phase failed".to_owned(),
            },
        };
        configurations.push(Configuration::of(mode, sustained.into(), latency));
    }
    Cluster {
        scenario: "HELP from distinct numbers, each answered with the help text".to_owned(),
        body: BODY.to_owned(),
        partitions: plan.partitions,
        lease_ttl_ms: plan.lease_ttl_ms,
        load: plan.load,
        latency_rate,
        exactly_once: configurations.iter().all(|c| c.exactly_once),
        configurations,
    }
}

impl Configuration {
    fn of(mode: Mode, sustained: Section<SustainedRun>, latency: Section<LatencyRun>) -> Self {
        let mut check = Check::default();
        if let Some(run) = sustained.done() {
            check.add(run.sustained.check);
        }
        if let Some(run) = latency.done() {
            check.add(run.latency.check);
        }
        let ran = sustained.done().is_some() && latency.done().is_some();
        Self {
            name: mode.name().to_owned(),
            description: mode.description().to_owned(),
            nats_servers: mode.nats_servers(),
            smsflow_nodes: mode.nodes(),
            replicas: mode.replicas(),
            sustained,
            latency,
            check,
            exactly_once: ran && check.exactly_once(),
        }
    }
}

/// Starts `mode` fresh, measures the closed loop, stops it.
async fn sustained_run(bench: &Bench<'_>, mode: Mode) -> anyhow::Result<SustainedRun> {
    let mut deployment = Deployment::start(bench, mode).await?;
    let measured = measure_sustained(bench, &deployment).await;
    let stop_errors = deployment.stop();
    let (sustained, cost, idle, memory, cluster_events, start) = measured?;
    let disk = deployment.disk(sustained.texts)?;
    Ok(SustainedRun {
        start,
        idle,
        sustained,
        cost,
        memory,
        disk,
        cluster_events,
        stop_errors,
    })
}

type Measured = (
    Sustained,
    Cost,
    Idle,
    Memory,
    BTreeMap<String, u64>,
    Started,
);

async fn measure_sustained(bench: &Bench<'_>, deployment: &Deployment) -> anyhow::Result<Measured> {
    let plan = bench.plan;
    let before_idle = deployment.sample()?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let before = deployment.sample()?;
    let idle = before.since(&before_idle).idle();
    let block = bench.contacts.block(plan.cluster.sustained_texts)?;
    let pace = Pace::Closed {
        max_time: plan.sustained_time,
        backlog: Some(plan.backlog),
    };
    let tag = format!("k{}s", deployment.mode.tag());
    let report = drive(bench, deployment, block, pace, tag).await?;
    let at_last_reply = deployment.sample()?;
    let after = deployment.wait_quiet(&at_last_reply, idle).await?;
    let joined = bench.join(&report, block, HELP_ANSWERED)?;
    let handled = joined.answered;
    let last_reply = joined.last_answer.unwrap_or(at_last_reply.at);
    let elapsed = last_reply.saturating_duration_since(report.started);
    let sustained = Sustained {
        texts_per_second: per_second(handled, elapsed),
        texts: report.acked(),
        handled,
        refused: report.refused(),
        failed: report.failed(),
        seconds: elapsed.as_secs_f64(),
        backlog_limit: plan.backlog,
        max_inbox_pending: None,
        ack: summary(&report.ack),
        ingest_to_provider: Some(summary(&joined.latency)),
        check: Check::of(&joined),
    };
    let cost = Cost::of(&before, &at_last_reply, &after, handled);
    let memory = deployment.memory()?;
    let cluster_events = deployment.cluster_events().await?;
    Ok((
        sustained,
        cost,
        idle,
        memory,
        cluster_events,
        deployment.started.clone(),
    ))
}

/// Starts `mode` fresh, measures the open loop at `rate`, stops it.
async fn latency_run(bench: &Bench<'_>, mode: Mode, rate: f64) -> anyhow::Result<LatencyRun> {
    let count = (rate * bench.plan.latency_time.as_secs_f64()).ceil() as u64;
    let block = bench.contacts.block(count)?;
    let mut deployment = Deployment::start(bench, mode).await?;
    let tag = format!("k{}l", mode.tag());
    let measured = drive(bench, &deployment, block, Pace::Open { rate }, tag).await;
    let stop_errors = deployment.stop();
    let report = measured?;
    tokio::time::sleep(SETTLE).await;
    let joined = bench.join(&report, block, HELP_ANSWERED)?;
    Ok(LatencyRun {
        start: deployment.started.clone(),
        latency: Latency {
            load: bench.plan.cluster.load,
            rate,
            texts: report.acked(),
            refused: report.refused(),
            failed: report.failed(),
            ingest_to_provider: Some(summary(&joined.latency)),
            ack: summary(&report.ack),
            max_schedule_lag_ms: report.max_lateness.as_secs_f64() * 1000.0,
            max_inbox_pending: None,
            check: Check::of(&joined),
        },
        stop_errors,
    })
}

/// Posts HELP from every number of `block` round-robin over the deployment's nodes, and waits
/// until the provider has as many texts as were acknowledged (or the drain timeout passed).
async fn drive(
    bench: &Bench<'_>,
    deployment: &Deployment,
    block: Block,
    pace: Pace,
    tag: String,
) -> anyhow::Result<Report> {
    let texts = InboundTexts {
        webhook: deployment.nodes[0].webhook(),
        contacts: block,
        body: BODY.to_owned(),
        tag,
    };
    let live = Arc::new(Live::default());
    let baseline = bench.fake.total();
    bench.fake.watch(Some((Arc::clone(&live), baseline)));
    let posted = loadgen::run_spread(
        &deployment.targets(),
        bench.plan.connections,
        Arc::new(texts),
        pace,
        live,
    )
    .await;
    bench.fake.watch(None);
    let report = posted.map_err(|error| error.context(deployment.log_tails()))?;
    bench
        .fake
        .wait_for(baseline + report.acked(), bench.plan.drain_timeout)
        .await;
    Ok(report)
}

/// CPU time of every process of a deployment at one instant.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    smsflow: f64,
    nats: f64,
    harness: f64,
    machine: MachineCpu,
}

/// The difference between two samples.
#[derive(Debug, Clone, Copy)]
struct Span {
    seconds: f64,
    smsflow: f64,
    nats: f64,
    harness: f64,
    machine: MachineCpu,
}

impl Sample {
    fn since(&self, earlier: &Self) -> Span {
        Span {
            seconds: self.at.duration_since(earlier.at).as_secs_f64(),
            smsflow: self.smsflow - earlier.smsflow,
            nats: self.nats - earlier.nats,
            harness: self.harness - earlier.harness,
            machine: self.machine.since(&earlier.machine),
        }
    }
}

impl Span {
    fn idle(&self) -> Idle {
        Idle {
            smsflow_cores: self.smsflow / self.seconds.max(1e-9),
            nats_cores: self.nats / self.seconds.max(1e-9),
        }
    }
}

impl Cost {
    fn of(before: &Sample, at_last_reply: &Sample, after: &Sample, texts: u64) -> Self {
        let all = after.since(before);
        let to_reply = at_last_reply.since(before);
        let per_text = |seconds: f64| seconds * 1000.0 / texts.max(1) as f64;
        let cpu = |whole: f64, to_last_reply: f64| Cpu {
            cpu_seconds: whole,
            ms_per_text: per_text(whole),
            cores: whole / all.seconds.max(1e-9),
            ms_per_text_to_last_reply: per_text(to_last_reply),
        };
        Self {
            seconds: all.seconds,
            after_last_reply_seconds: after.at.duration_since(at_last_reply.at).as_secs_f64(),
            texts,
            smsflow: cpu(all.smsflow, to_reply.smsflow),
            nats: cpu(all.nats, to_reply.nats),
            harness: cpu(all.harness, to_reply.harness),
            machine_busy_cores: all.machine.busy / all.seconds.max(1e-9),
            machine_iowait_cores: all.machine.iowait / all.seconds.max(1e-9),
        }
    }
}

/// A configuration's processes, running.
struct Deployment {
    // Dropped in this order: the nodes (killed if still running), their folders, NATS.
    nodes: Vec<Engine>,
    setups: Vec<Setup>,
    nats: Option<Nats>,
    mode: Mode,
    node_ids: Vec<String>,
    started: Started,
}

impl Deployment {
    /// Starts NATS (cluster), then the nodes one after another, and waits until they are
    /// ready to measure.
    async fn start(bench: &Bench<'_>, mode: Mode) -> anyhow::Result<Self> {
        let spawned = Instant::now();
        let nats = match mode.nats_servers() {
            0 => None,
            servers => Some(Nats::start(servers).await?),
        };
        let mut deployment = Self {
            nodes: Vec::new(),
            setups: Vec::new(),
            nats,
            mode,
            node_ids: (1..=mode.nodes()).map(|n| format!("n{n}")).collect(),
            started: Started {
                ready_seconds: 0.0,
                partitions_per_node: Vec::new(),
                sender_node: None,
            },
        };
        for id in deployment.node_ids.clone() {
            let setup = Setup::new(bench.paths, &bench.fake_url)?;
            if let Some(nats) = &deployment.nats {
                setup.append(&cluster_section(nats, &id, mode, bench))?;
            }
            let engine = Engine::start(bench.paths, &setup)
                .await
                .with_context(|| format!("{}: node {id} did not start", mode.name()))?;
            deployment.nodes.push(engine);
            deployment.setups.push(setup);
        }
        if deployment.nats.is_some() {
            let (per_node, sender) = deployment
                .wait_for_owners(
                    bench.plan.cluster.partitions,
                    bench.plan.cluster.ready_timeout,
                )
                .await?;
            deployment.started.partitions_per_node = per_node;
            deployment.started.sender_node = Some(sender);
        }
        deployment.started.ready_seconds = spawned.elapsed().as_secs_f64();
        Ok(deployment)
    }

    /// Where the webhooks go: node `i mod n` for text `i`.
    fn targets(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|node| node.server.addr).collect()
    }

    fn smsflow_pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|node| node.server.pid()).collect()
    }

    fn nats_pids(&self) -> Vec<u32> {
        self.nats.as_ref().map(Nats::pids).unwrap_or_default()
    }

    /// Waits until every partition is owned by the node rendezvous hashing gives it (and by no
    /// other), and the sender lease is held likewise; partitions per node and the sender.
    async fn wait_for_owners(
        &self,
        partitions: u32,
        timeout: Duration,
    ) -> anyhow::Result<(Vec<usize>, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut reports = Vec::new();
            for node in &self.nodes {
                reports.push(node.api.cluster().await.ok().flatten());
            }
            if let Some(settled) = settled(&self.node_ids, &reports, partitions) {
                return Ok(settled);
            }
            if Instant::now() >= deadline {
                let owned: Vec<String> = self
                    .node_ids
                    .iter()
                    .zip(&reports)
                    .map(|(id, report)| match report {
                        Some(report) => format!(
                            "{id} owns {} and sends for {:?}",
                            report.partitions.len(),
                            report.senders
                        ),
                        None => format!("{id} does not answer GET /v1/cluster"),
                    })
                    .collect();
                anyhow::bail!(
                    "{}: after {timeout:?} the partitions are not where rendezvous hashing puts \
                     them ({}):{}",
                    self.mode.name(),
                    owned.join("; "),
                    self.log_tails()
                );
            }
            tokio::time::sleep(OWNERSHIP_POLL).await;
        }
    }

    /// Every process's CPU time now.
    fn sample(&self) -> anyhow::Result<Sample> {
        let sum = |pids: &[u32]| -> anyhow::Result<f64> {
            pids.iter().map(|pid| cpu_seconds(*pid)).sum()
        };
        Ok(Sample {
            at: Instant::now(),
            smsflow: sum(&self.smsflow_pids())?,
            nats: sum(&self.nats_pids())?,
            harness: own_cpu_seconds()?,
            machine: MachineCpu::read()?,
        })
    }

    /// Waits until the smsflow and nats-server processes use no more than their idle CPU (plus
    /// [`QUIET_CORES`]) over a [`QUIET_WINDOW`]; returns the sample from the start of that
    /// quiet window.
    async fn wait_quiet(&self, from: &Sample, idle: Idle) -> anyhow::Result<Sample> {
        let limit = idle.smsflow_cores + idle.nats_cores + QUIET_CORES;
        let mut last = *from;
        loop {
            tokio::time::sleep(QUIET_WINDOW).await;
            let now = self.sample()?;
            let span = now.since(&last);
            let quiet = (span.smsflow + span.nats) / span.seconds.max(1e-9) <= limit;
            if quiet || now.at.duration_since(from.at) >= QUIET_TIMEOUT {
                return Ok(if quiet { last } else { now });
            }
            last = now;
        }
    }

    fn memory(&self) -> anyhow::Result<Memory> {
        let peaks = |pids: &[u32]| -> anyhow::Result<Vec<u64>> {
            pids.iter().map(|pid| peak_rss_bytes(*pid)).collect()
        };
        let smsflow = peaks(&self.smsflow_pids())?;
        let nats = peaks(&self.nats_pids())?;
        Ok(Memory {
            smsflow_total_bytes: smsflow.iter().sum(),
            nats_total_bytes: nats.iter().sum(),
            smsflow_peak_rss_bytes: smsflow,
            nats_peak_rss_bytes: nats,
        })
    }

    /// `smsflow_cluster_events_total`, summed over the nodes.
    async fn cluster_events(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut events = BTreeMap::new();
        if self.nats.is_none() {
            return Ok(events);
        }
        for node in &self.nodes {
            let text = match node.api.metrics().await {
                Ok(text) => text.unwrap_or_default(),
                Err(error) => anyhow::bail!("{error:#}{}", self.log_tails()),
            };
            for (event, count) in cluster_events(&text) {
                *events.entry(event).or_insert(0) += count;
            }
        }
        Ok(events)
    }

    /// Bytes on disk: the nodes' folders without their logs, the nats-servers' stores.
    fn disk(&self, texts: u64) -> anyhow::Result<Disk> {
        let mut smsflow = 0;
        for setup in &self.setups {
            for entry in std::fs::read_dir(setup.dir.path())? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    smsflow += disk_bytes(&entry.path())?;
                }
            }
        }
        let nats = match &self.nats {
            Some(nats) => (0..self.mode.nats_servers())
                .map(|n| disk_bytes(&nats.store(n)))
                .sum::<anyhow::Result<u64>>()?,
            None => 0,
        };
        let per_text = |bytes: u64| bytes as f64 / texts.max(1) as f64;
        Ok(Disk {
            smsflow_bytes: smsflow,
            nats_bytes: nats,
            smsflow_bytes_per_text: per_text(smsflow),
            nats_bytes_per_text: per_text(nats),
        })
    }

    /// SIGTERM to every node at once (a node leaving hands its partitions over), and waits for
    /// them; what did not stop cleanly. NATS keeps running until the deployment is dropped.
    fn stop(&mut self) -> Vec<String> {
        let nodes: Vec<Engine> = self.nodes.drain(..).collect();
        let ids = self.node_ids.clone();
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                let stops: Vec<_> = nodes
                    .into_iter()
                    .map(|node| scope.spawn(move || node.server.stop()))
                    .collect();
                ids.iter()
                    .zip(stops)
                    .filter_map(|(id, stop)| match stop.join() {
                        Ok(Ok(())) => None,
                        Ok(Err(error)) => Some(format!("{id}: {error:#}")),
                        Err(_) => Some(format!("{id}: stopping it panicked")),
                    })
                    .collect()
            })
        })
    }

    /// The end of every node's and nats-server's log, for an error message.
    fn log_tails(&self) -> String {
        let mut tails: Vec<String> = self.nodes.iter().map(|n| n.server.log_tail()).collect();
        if let Some(nats) = &self.nats {
            tails.extend((0..self.mode.nats_servers()).map(|n| nats.log_tail(n)));
        }
        tails.concat()
    }
}

/// The `[cluster]` section of node `id`.
fn cluster_section(nats: &Nats, id: &str, mode: Mode, bench: &Bench<'_>) -> String {
    let plan = bench.plan.cluster;
    format!(
        "[cluster]\nnats = {}\nnode_id = \"{id}\"\npartitions = {}\nreplicas = {}\nlease_ttl_ms = {}\n",
        nats.toml_list(),
        plan.partitions,
        mode.replicas().unwrap_or(1),
        plan.lease_ttl_ms
    )
}

/// Whether the nodes' reports (`None`: the node did not answer) show every partition of
/// `0..partitions` owned by its rendezvous winner among `ids` and by no other node, and exactly
/// one node sending, the winner of its sender keys: then partitions per node and the sender.
pub fn settled(
    ids: &[String],
    reports: &[Option<NodeReport>],
    partitions: u32,
) -> Option<(Vec<usize>, String)> {
    let reports: Vec<&NodeReport> = reports.iter().map(Option::as_ref).collect::<Option<_>>()?;
    for p in 0..partitions {
        let owner = rendezvous(ids, &partition_key(p))?;
        for (id, report) in ids.iter().zip(&reports) {
            if report.partitions.contains_key(&p) != (id == owner) {
                return None;
            }
        }
    }
    if reports
        .iter()
        .any(|report| report.partitions.keys().any(|p| *p >= partitions))
    {
        return None;
    }
    let sending: Vec<(&String, &&NodeReport)> = ids
        .iter()
        .zip(&reports)
        .filter(|(_, report)| !report.senders.is_empty())
        .collect();
    let [(sender, report)] = sending.as_slice() else {
        return None;
    };
    let right = report
        .senders
        .iter()
        .all(|number| rendezvous(ids, &sender_key(number)) == Some(sender.as_str()));
    right.then(|| {
        (
            reports
                .iter()
                .map(|report| report.partitions.len())
                .collect(),
            (*sender).clone(),
        )
    })
}

/// `smsflow_cluster_events_total{event="…"}` series of a Prometheus text, by event.
pub fn cluster_events(metrics: &str) -> BTreeMap<String, u64> {
    let prefix = "smsflow_cluster_events_total{event=\"";
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(prefix)?;
            let (event, value) = rest.split_once("\"}")?;
            let value: f64 = value.trim().parse().ok()?;
            Some((event.to_owned(), value as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use smsflow::cluster::node::PartitionReport;

    use super::*;

    fn ids() -> Vec<String> {
        ["n1", "n2", "n3"].map(str::to_owned).to_vec()
    }

    /// The reports of nodes that own what rendezvous gives them; the sender on its winner.
    fn reports_as_assigned(partitions: u32, number: &str) -> Vec<Option<NodeReport>> {
        let ids = ids();
        ids.iter()
            .map(|id| {
                let mut report = NodeReport::default();
                for p in 0..partitions {
                    if rendezvous(&ids, &partition_key(p)) == Some(id.as_str()) {
                        report.partitions.insert(p, PartitionReport::default());
                    }
                }
                if rendezvous(&ids, &sender_key(number)) == Some(id.as_str()) {
                    report.senders.push(number.to_owned());
                }
                Some(report)
            })
            .collect()
    }

    #[test]
    fn ownership_is_settled_only_where_rendezvous_puts_it() {
        let number = "+15550001000";
        let reports = reports_as_assigned(64, number);
        let (per_node, sender) = settled(&ids(), &reports, 64).unwrap();
        assert_eq!(per_node.iter().sum::<usize>(), 64);
        assert_eq!(
            rendezvous(&ids(), &sender_key(number)),
            Some(sender.as_str())
        );

        // A node that does not answer.
        let mut silent = reports.clone();
        silent[1] = None;
        assert!(settled(&ids(), &silent, 64).is_none());
        // A partition held twice (the old owner has not handed it over yet).
        let mut twice = reports.clone();
        for report in twice.iter_mut().flatten() {
            report.partitions.insert(0, PartitionReport::default());
        }
        assert!(settled(&ids(), &twice, 64).is_none());
        // A partition nobody holds.
        let mut missing = reports.clone();
        for report in missing.iter_mut().flatten() {
            report.partitions.remove(&5);
        }
        assert!(settled(&ids(), &missing, 64).is_none());
        // No sender yet.
        let mut unsent = reports;
        for report in unsent.iter_mut().flatten() {
            report.senders.clear();
        }
        assert!(settled(&ids(), &unsent, 64).is_none());
    }

    #[test]
    fn cluster_events_are_read_from_the_metrics_text() {
        let text = "# TYPE smsflow_cluster_events_total counter\n\
                    smsflow_cluster_events_total{event=\"sent\"} 1200\n\
                    smsflow_cluster_events_total{event=\"applied\"} 2400\n\
                    smsflow_texts_total{kind=\"inbound\"} 5\n";
        let events = cluster_events(text);
        assert_eq!(events.len(), 2);
        assert_eq!(events["sent"], 1200);
        assert_eq!(events["applied"], 2400);
    }

    #[test]
    fn the_cost_is_divided_by_the_texts_answered() {
        let t0 = Instant::now();
        let sample = |ms: u64, smsflow: f64, nats: f64| Sample {
            at: t0 + Duration::from_millis(ms),
            smsflow,
            nats,
            harness: 0.0,
            machine: MachineCpu::default(),
        };
        let cost = Cost::of(
            &sample(0, 10.0, 1.0),
            &sample(2000, 12.0, 2.0),
            &sample(4000, 13.0, 2.5),
            1000,
        );
        assert!((cost.smsflow.ms_per_text - 3.0).abs() < 1e-9);
        assert!((cost.smsflow.ms_per_text_to_last_reply - 2.0).abs() < 1e-9);
        assert!((cost.nats.ms_per_text - 1.5).abs() < 1e-9);
        assert!((cost.smsflow.cores - 0.75).abs() < 1e-9);
        assert!((cost.after_last_reply_seconds - 2.0).abs() < 1e-9);
    }
}
