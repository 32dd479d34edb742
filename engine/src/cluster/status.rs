//! `smsflow cluster status`: the nodes, who owns which partition at which epoch, how far each
//! partition has applied its inputs, and who sends for each number, read from JetStream.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::bus::Bus;
use super::node::NodeReport;
use super::{ClusterConfig, ClusterError};

/// The cluster as its nodes last reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// Live nodes and their reports.
    pub nodes: BTreeMap<String, NodeReport>,
    /// The partition count.
    pub partitions: u32,
    /// Inputs in the input stream, and its last sequence.
    pub inputs: (u64, u64),
    /// Texts waiting in the send stream.
    pub sends_waiting: u64,
}

impl ClusterStatus {
    /// Reads it.
    ///
    /// # Errors
    ///
    /// When NATS cannot be reached or read.
    pub async fn read(config: &ClusterConfig) -> Result<Self, ClusterError> {
        let bus = Bus::connect(config).await?;
        let mut nodes = BTreeMap::new();
        for node in bus.live_nodes().await? {
            let report = bus
                .nodes
                .get(&node)
                .await
                .map_err(|error| ClusterError::js("reading a node's report", error))?
                .and_then(|bytes| serde_json::from_slice::<NodeReport>(&bytes).ok())
                .unwrap_or_default();
            nodes.insert(node, report);
        }
        let inputs = bus
            .inputs
            .get_info()
            .await
            .map_err(|error| ClusterError::js("reading the input stream", error))?;
        let sends = bus
            .sends
            .get_info()
            .await
            .map_err(|error| ClusterError::js("reading the send stream", error))?;
        Ok(Self {
            nodes,
            partitions: config.partitions,
            inputs: (inputs.state.messages, inputs.state.last_sequence),
            sends_waiting: sends.state.messages,
        })
    }

    /// As a table for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let owned: usize = self.nodes.values().map(|node| node.partitions.len()).sum();
        let _ = writeln!(
            out,
            "{} nodes, {owned} of {} partitions owned; input stream: {} inputs, last seq {}; {} texts waiting to send",
            self.nodes.len(),
            self.partitions,
            self.inputs.0,
            self.inputs.1,
            self.sends_waiting
        );
        let _ = writeln!(
            out,
            "\n{:<16} {:<22} {:>10} {:>7}  senders",
            "node", "listen", "partitions", "lag"
        );
        for (name, node) in &self.nodes {
            let lag: u64 = node
                .partitions
                .values()
                .map(|partition| partition.lag)
                .sum();
            let _ = writeln!(
                out,
                "{name:<16} {:<22} {:>10} {lag:>7}  {}",
                node.listen,
                node.partitions.len(),
                node.senders.join(" ")
            );
        }
        let _ = writeln!(
            out,
            "\n{:>9} {:<16} {:>8} {:>10} {:>7}",
            "partition", "owner", "epoch", "applied", "lag"
        );
        let mut rows: Vec<(u32, &str, super::node::PartitionReport)> = self
            .nodes
            .iter()
            .flat_map(|(name, node)| {
                node.partitions
                    .iter()
                    .map(move |(p, report)| (*p, name.as_str(), *report))
            })
            .collect();
        rows.sort_by_key(|row| row.0);
        for p in 0..self.partitions {
            match rows.iter().find(|row| row.0 == p) {
                Some((_, owner, report)) => {
                    let _ = writeln!(
                        out,
                        "{p:>9} {owner:<16} {:>8} {:>10} {:>7}",
                        report.epoch, report.applied, report.lag
                    );
                }
                None => {
                    let _ = writeln!(out, "{p:>9} {:<16}", "(none)");
                }
            }
        }
        out
    }
}
