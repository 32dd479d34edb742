//! A partition's owner: it restores the partition's latest snapshot, applies the partition's
//! inputs in stream order from the snapshot's checkpoint, snapshots now and then, and hands
//! the partition over on request.
//!
//! The partition's state is a store of its own (a working copy under `partitions_dir`) with an
//! engine of its own over it, whose provider is the send stream. An input is applied by the
//! same code as on one node: an inbound text goes through the accept pipeline (dedup key,
//! screening, consent records, inbox, in one batch), a start through the runtime. The
//! checkpoint is the last applied input's stream sequence; a snapshot carries it, and an input
//! applied twice (after a restore from a snapshot older than the crash) is a duplicate at the
//! accept pipeline or the runtime's processed marks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;
use tokio::time::Instant;

use super::bus::Bus;
use super::ingress::Input;
use super::lease::Fence;
use super::partition::{partition_filter, partition_key};
use super::rpc;
use super::send::{StreamProvider, note, publish_fences};
use crate::compliance::ledger::Ledger;
use crate::config::Config;
use crate::engine::{Engine, EngineBuilder, Workers};
use crate::inbox::Accepted;
use crate::ingress::accept::AcceptError;
use crate::plugin::PluginHost;
use crate::store::{Pairs, Store, StoreSettings};

/// What the node tells a partition's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep applying.
    Run,
    /// Hand over: finish, snapshot, stop.
    Release,
}

/// What every partition of a node shares.
#[derive(Debug)]
pub struct OwnerParts {
    /// The config the engines are built from.
    pub config: Config,
    /// The cluster.
    pub bus: Bus,
    /// The plugins, loaded once per node.
    pub plugins: Arc<PluginHost>,
    /// Where working copies live.
    pub dir: PathBuf,
    /// The sender numbers, fenced by a new owner.
    pub senders: Vec<String>,
    /// The real provider's name (texts record it).
    pub provider_name: &'static str,
    /// The node's clock, shared by its partitions.
    pub clock: crate::clock::SharedClock,
}

/// A running partition's progress, read by the node's heartbeat and status.
#[derive(Debug, Default)]
pub struct Progress {
    /// The last applied input's stream sequence.
    pub applied: Arc<AtomicU64>,
    /// Inputs behind it, as the stream last said.
    pub lag: AtomicU64,
}

/// How long in-flight work may take when the partition pauses for a snapshot or stops.
const GRACE: Duration = Duration::from_secs(5);

/// The snapshot format's first bytes.
const MAGIC: &[u8; 8] = b"SMSFSNP1";

/// Owns partition `partition` at `epoch` while `fence` holds, until told to release.
///
/// # Errors
///
/// When the snapshot cannot be read or written, the engine cannot be built, or the input
/// stream cannot be read: the node gives the lease up.
pub async fn run(
    parts: Arc<OwnerParts>,
    (partition, epoch, fence): (u32, u64, Fence),
    progress: Arc<Progress>,
    control: watch::Receiver<Control>,
) -> anyhow::Result<()> {
    let dir = parts.dir.join(partition_key(partition));
    let (store, checkpoint) = restore(&parts.bus, partition, &dir).await?;
    progress.applied.store(checkpoint, Ordering::SeqCst);
    publish_fences(&parts.bus, &parts.senders, partition, epoch).await?;
    let mut owner = Owner {
        parts: Arc::clone(&parts),
        partition,
        epoch,
        fence: fence.clone(),
        store,
        running: None,
        progress,
        since_snapshot: 0,
        last_snapshot: Instant::now(),
    };
    owner.start().await?;
    tracing::info!(partition, epoch, checkpoint, "partition owned");
    let inputs = parts
        .bus
        .inputs
        .create_consumer(pull::OrderedConfig {
            filter_subject: partition_filter(partition),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: checkpoint + 1,
            },
            ..pull::OrderedConfig::default()
        })
        .await
        .context("the partition's input consumer")?
        .messages()
        .await
        .context("the partition's inputs")?;
    let reads = parts
        .bus
        .js
        .client()
        .subscribe(rpc::subject(partition))
        .await
        .context("the partition's read subject")?;
    owner.serve(inputs, reads, control).await
}

/// The partition's inputs from its checkpoint on.
type Inputs = async_nats::jetstream::consumer::pull::Ordered;

struct Running {
    engine: Engine,
    workers: Workers,
}

struct Owner {
    parts: Arc<OwnerParts>,
    partition: u32,
    epoch: u64,
    fence: Fence,
    store: Store,
    running: Option<Running>,
    progress: Arc<Progress>,
    since_snapshot: u64,
    last_snapshot: Instant,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Aborted (the lease was lost) or returned: the partition's workers stop with it.
        if let Some(running) = self.running.take() {
            running.workers.abort();
        }
    }
}

impl Owner {
    /// Applies inputs in stream order, answers reads, snapshots when due, until told to hand
    /// over or the lease is lost.
    async fn serve(
        mut self,
        mut inputs: Inputs,
        mut reads: async_nats::Subscriber,
        mut control: watch::Receiver<Control>,
    ) -> anyhow::Result<()> {
        let snapshot_every = self
            .parts
            .config
            .cluster
            .as_ref()
            .map_or(u64::MAX, |c| c.snapshot_every);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                changed = control.changed() => {
                    if changed.is_err() || *control.borrow() == Control::Release {
                        return self.hand_over().await;
                    }
                }
                next = inputs.next() => {
                    let message = next.context("the input stream ended")?.context("reading an input")?;
                    if !self.fence.valid() {
                        // A late input of an owner that lost its lease (paused past it): the
                        // new owner applies it.
                        note("stale_input");
                        return Ok(());
                    }
                    self.apply(&message).await;
                    if self.since_snapshot >= snapshot_every {
                        self.snapshot().await?;
                    }
                }
                Some(request) = reads.next() => self.answer(request).await,
                _ = tick.tick() => {
                    if self.snapshot_due() {
                        self.snapshot().await?;
                    }
                }
            }
        }
    }

    /// Answers a read, while the lease holds (a stale owner stays silent).
    async fn answer(&self, request: async_nats::Message) {
        let (Some(reply), true) = (request.reply, self.fence.valid()) else {
            return;
        };
        let answer = self.read(&request.payload);
        if let Err(error) = self
            .parts
            .bus
            .js
            .client()
            .publish(reply, rpc::encode(&answer))
            .await
        {
            tracing::warn!(
                partition = self.partition,
                "a read's answer was not sent: {error}"
            );
        }
    }

    /// Builds the partition's engine over its store and starts its workers.
    async fn start(&mut self) -> anyhow::Result<()> {
        let provider = StreamProvider::new(
            self.parts.bus.clone(),
            (self.partition, self.epoch, self.fence.clone()),
            Arc::clone(&self.progress.applied),
            Ledger::new(self.store.tables().consent.clone()),
            self.parts.provider_name,
        );
        let engine = EngineBuilder::from_config(&self.parts.config)
            .store(self.store.clone())
            .plugins(Arc::clone(&self.parts.plugins))
            .clock(self.parts.clock.clone())
            .provider(Arc::new(provider))
            .build()
            .await
            .with_context(|| format!("the engine of partition {}", self.partition))?;
        let workers = engine.spawn_workers();
        self.running = Some(Running { engine, workers });
        Ok(())
    }

    /// Lets the work in progress finish and stops the workers.
    async fn pause(&mut self) {
        if let Some(running) = self.running.take() {
            running.engine.drain(GRACE).await;
            running.workers.abort();
        }
    }

    /// Applies one input; a failure of the store is retried while the lease holds.
    async fn apply(&mut self, message: &async_nats::jetstream::Message) {
        let Ok(info) = message.info() else {
            tracing::error!(
                partition = self.partition,
                "an input without stream metadata, skipped"
            );
            return;
        };
        let (seq, lag) = (info.stream_sequence, info.pending);
        match serde_json::from_slice::<Input>(&message.payload) {
            Ok(input) => {
                let mut wait = Duration::from_millis(50);
                while let Err(error) = self.apply_input(&input).await {
                    if !self.fence.valid() {
                        return;
                    }
                    tracing::warn!(
                        partition = self.partition,
                        seq,
                        "input not applied, retrying: {error:#}"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
            Err(error) => tracing::error!(
                partition = self.partition,
                seq,
                "an input that does not decode, skipped: {error}"
            ),
        }
        self.progress.applied.store(seq, Ordering::SeqCst);
        self.progress.lag.store(lag, Ordering::SeqCst);
        self.since_snapshot += 1;
    }

    /// Applies `input` to the partition's engine. `Err` only for what a retry can mend.
    async fn apply_input(&self, input: &Input) -> anyhow::Result<()> {
        let Some(running) = &self.running else {
            anyhow::bail!("the partition's engine is not running");
        };
        let engine = &running.engine;
        if let Some(text) = input.inbound_text() {
            match engine.ingest().accept(text).await {
                Ok(Accepted::Stored(_)) => note("applied"),
                Ok(Accepted::Duplicate) => note("replayed"),
                Err(AcceptError::Refused(reason)) => {
                    tracing::warn!(
                        partition = self.partition,
                        "an input refused by the accept pipeline: {reason}"
                    );
                }
                Err(AcceptError::Store(error)) => return Err(error),
            }
        } else if let Input::Consent { body, at_ms, .. } = input {
            match append_consent(engine, body, *at_ms) {
                Ok(true) => note("applied"),
                Ok(false) => note("replayed"),
                Err(error) => tracing::warn!(
                    partition = self.partition,
                    "a consent record was not appended: {error:#}"
                ),
            }
        } else if let Some(request) = input.start_request() {
            match engine.runtime().start(request).await {
                Ok(outcome) if outcome.duplicate => note("replayed"),
                Ok(_) => note("applied"),
                Err(error) => {
                    tracing::info!(partition = self.partition, "a start did not run: {error}")
                }
            }
        }
        Ok(())
    }

    /// Answers a read of one of the partition's contacts.
    fn read(&self, payload: &[u8]) -> rpc::Answer {
        let failed = |error: String| rpc::Answer::Failed { error };
        let Some(running) = &self.running else {
            return failed("the partition's engine is not running".into());
        };
        match serde_json::from_slice::<rpc::Read>(payload) {
            Ok(read) => rpc::answer(&running.engine, &read),
            Err(error) => failed(format!("a read that does not decode: {error}")),
        }
    }

    fn snapshot_due(&self) -> bool {
        let interval = self
            .parts
            .config
            .cluster
            .as_ref()
            .map_or(u64::MAX, |cluster| cluster.snapshot_interval_ms);
        self.since_snapshot > 0 && self.last_snapshot.elapsed() >= Duration::from_millis(interval)
    }

    /// Pauses the engine, writes the snapshot, starts the engine again.
    async fn snapshot(&mut self) -> anyhow::Result<()> {
        self.pause().await;
        let written = self.write_snapshot().await;
        self.start().await?;
        written
    }

    async fn write_snapshot(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let checkpoint = self.progress.applied.load(Ordering::SeqCst);
        self.store.flush().await?;
        let (pairs, id_floor) = self.store.export()?;
        // A lapsed owner's snapshot would overwrite the next owner's.
        if !self.fence.valid() {
            note("stale_refused");
            anyhow::bail!("the lease was lost: the snapshot is not written");
        }
        let bytes = encode(checkpoint, id_floor, &pairs);
        let mut reader = bytes.as_slice();
        self.parts
            .bus
            .snapshots
            .put(partition_key(self.partition).as_str(), &mut reader)
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "writing the snapshot of partition {}: {error}",
                    self.partition
                )
            })?;
        self.since_snapshot = 0;
        self.last_snapshot = Instant::now();
        note("snapshot");
        tracing::info!(
            partition = self.partition,
            checkpoint,
            bytes = bytes.len(),
            ms = started.elapsed().as_millis() as u64,
            "partition snapshot written"
        );
        Ok(())
    }

    /// The graceful end: the work in progress finishes, a final snapshot is written.
    async fn hand_over(mut self) -> anyhow::Result<()> {
        self.pause().await;
        self.write_snapshot().await
    }
}

/// Appends an API consent record, unless the ledger has it already (a replay after a restore):
/// `false` then.
fn append_consent(engine: &Engine, body: &str, at_ms: i64) -> anyhow::Result<bool> {
    let request: crate::compliance::evidence::ConsentRequest = serde_json::from_str(body)?;
    let runtime = engine.runtime();
    let flows = runtime.registry().current();
    let compliance = runtime.compliance();
    let known = |program: &str| {
        compliance.program(program).is_some()
            || flows.by_id.values().any(|flow| flow.program == program)
    };
    let new = request.validate(known, at_ms)?;
    let ledger = compliance.ledger();
    let recorded = ledger.records_for(&new.number)?.iter().any(|record| {
        (
            record.at_ms,
            &record.program,
            record.class,
            &record.event,
            &record.source,
        ) == (new.at_ms, &new.program, new.class, &new.event, &new.source)
    });
    if !recorded {
        ledger.append(new)?;
    }
    Ok(!recorded)
}

/// The partition's store from its latest snapshot (or empty), and the snapshot's checkpoint.
async fn restore(bus: &Bus, partition: u32, dir: &Path) -> anyhow::Result<(Store, u64)> {
    if dir.exists() {
        // A working copy from an earlier ownership: the snapshot is the truth.
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.parent().unwrap_or(dir))
        .with_context(|| format!("creating {}", dir.display()))?;
    let settings = StoreSettings {
        cache_bytes: 16 * 1024 * 1024,
    };
    let mut bytes = Vec::new();
    match bus.snapshots.get(partition_key(partition).as_str()).await {
        Ok(mut object) => {
            object
                .read_to_end(&mut bytes)
                .await
                .with_context(|| format!("reading the snapshot of partition {partition}"))?;
        }
        Err(error)
            if error.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound =>
        {
            return Ok((Store::open_with(dir, settings)?, 0));
        }
        Err(error) => anyhow::bail!("reading the snapshot of partition {partition}: {error}"),
    }
    let (checkpoint, id_floor, pairs) = decode(&bytes)
        .with_context(|| format!("the snapshot of partition {partition} is damaged"))?;
    let store = Store::restore(dir, settings, pairs, id_floor)?;
    Ok((store, checkpoint))
}

/// `MAGIC`, the checkpoint, the id floor, then each key and value length-prefixed.
fn encode(checkpoint: u64, id_floor: u64, pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size: usize = pairs
        .iter()
        .map(|(key, value)| key.len() + value.len() + 8)
        .sum();
    let mut bytes = Vec::with_capacity(size + 24);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&checkpoint.to_be_bytes());
    bytes.extend_from_slice(&id_floor.to_be_bytes());
    for (key, value) in pairs {
        for part in [key, value] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(part);
        }
    }
    bytes
}

fn decode(bytes: &[u8]) -> anyhow::Result<(u64, u64, Pairs)> {
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .context("it is not an smsflow snapshot")?;
    let (checkpoint, rest) = take_u64(rest)?;
    let (id_floor, mut rest) = take_u64(rest)?;
    let mut pairs = Vec::new();
    while !rest.is_empty() {
        let (key, after) = take_part(rest)?;
        let (value, after) = take_part(after)?;
        pairs.push((key.to_vec(), value.to_vec()));
        rest = after;
    }
    Ok((checkpoint, id_floor, pairs))
}

fn take_u64(bytes: &[u8]) -> anyhow::Result<(u64, &[u8])> {
    let (head, rest) = bytes.split_at_checked(8).context("it ends early")?;
    Ok((u64::from_be_bytes(head.try_into()?), rest))
}

fn take_part(bytes: &[u8]) -> anyhow::Result<(&[u8], &[u8])> {
    let (head, rest) = bytes.split_at_checked(4).context("it ends early")?;
    let len = usize::try_from(u32::from_be_bytes(head.try_into()?))?;
    rest.split_at_checked(len).context("it ends early")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_damage_is_refused() {
        let pairs = vec![
            (b"k1".to_vec(), b"v1".to_vec()),
            (b"\x07key".to_vec(), Vec::new()),
        ];
        let bytes = encode(42, 7, &pairs);
        assert_eq!(decode(&bytes).unwrap(), (42, 7, pairs));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(b"not a snapshot").is_err());
    }
}
