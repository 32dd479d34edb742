//! How big each part of the run is: the full run (minutes) and `--quick` (seconds).

use std::time::Duration;

use serde::Serialize;

/// The sizes of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Whether this is a `--quick` run.
    pub quick: bool,
    /// Load generator connections.
    pub connections: usize,
    /// The ceiling's time bound.
    #[serde(with = "seconds")]
    pub ceiling_time: Duration,
    /// The ceiling's request bound.
    pub ceiling_requests: u64,
    /// At most this many texts acknowledged and not yet answered in a sustained phase.
    pub backlog: u64,
    /// A sustained phase's time bound.
    #[serde(with = "seconds")]
    pub sustained_time: Duration,
    /// A sustained phase's text bound, (a) and (c).
    pub sustained_texts: u64,
    /// (b): contacts whose flow is started, then who all answer, in the sustained phase.
    pub confirm_contacts: u64,
    /// Each open-loop latency phase's length.
    #[serde(with = "seconds")]
    pub latency_time: Duration,
    /// The latency phases' rates, as fractions of the sustained rate.
    pub loads: Vec<f64>,
    /// How long the engine may take to answer a phase's backlog once the phase stops posting.
    #[serde(with = "seconds")]
    pub drain_timeout: Duration,
    /// Extra arguments for the criterion plugin-call bench.
    pub criterion_args: Vec<String>,
    /// Seeded stores: idle conversations in the small and large one, due timers in the large.
    pub state: StatePlan,
    /// Contacts imported and sent one campaign, pacing off.
    pub broadcast_contacts: u64,
    /// Single node against cluster mode.
    pub cluster: ClusterPlan,
}

/// The sizes of the cluster part (its phases' lengths are `sustained_time` and
/// `latency_time`, its backlog `backlog`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ClusterPlan {
    /// A sustained phase's text bound.
    pub sustained_texts: u64,
    /// The latency phase's rate, as a fraction of the slowest configuration's sustained rate.
    pub load: f64,
    /// `[cluster] partitions`.
    pub partitions: u32,
    /// `[cluster] lease_ttl_ms`.
    pub lease_ttl_ms: u64,
    /// How long a configuration may take from its first process to every partition owned.
    #[serde(with = "seconds")]
    pub ready_timeout: Duration,
}

/// The sizes of the seeded-store part.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StatePlan {
    /// Idle conversations in the small store.
    pub small: u64,
    /// Idle conversations in the large store (which is also restarted).
    pub large: u64,
    /// Timers in the large store, due at once.
    pub timers: u64,
}

impl Plan {
    /// The full run: under 15 minutes on 2 cores.
    pub fn full() -> Self {
        Self {
            quick: false,
            connections: 32,
            ceiling_time: Duration::from_secs(10),
            ceiling_requests: 5_000_000,
            backlog: 2_000,
            sustained_time: Duration::from_secs(15),
            sustained_texts: 1_000_000,
            confirm_contacts: 10_000,
            latency_time: Duration::from_secs(10),
            loads: vec![0.5, 0.9],
            drain_timeout: Duration::from_secs(120),
            criterion_args: Vec::new(),
            state: StatePlan {
                small: 100_000,
                large: 1_000_000,
                timers: 100_000,
            },
            broadcast_contacts: 100_000,
            cluster: ClusterPlan {
                // Far above what 15 s can use; small enough that every part's numbers fit in
                // the 212 area code.
                sustained_texts: 150_000,
                load: 0.5,
                partitions: 64,
                lease_ttl_ms: 10_000,
                ready_timeout: Duration::from_secs(180),
            },
        }
    }

    /// Every part, a few seconds each: for tests and CI, not for numbers.
    pub fn quick() -> Self {
        let args = [
            "--warm-up-time",
            "0.3",
            "--measurement-time",
            "1",
            "--sample-size",
            "10",
        ];
        Self {
            quick: true,
            ceiling_time: Duration::from_secs(2),
            ceiling_requests: 1_000_000,
            backlog: 500,
            sustained_time: Duration::from_secs(3),
            sustained_texts: 100_000,
            confirm_contacts: 500,
            latency_time: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(60),
            criterion_args: args.iter().map(ToString::to_string).collect(),
            state: StatePlan {
                small: 1_000,
                large: 10_000,
                timers: 1_000,
            },
            broadcast_contacts: 2_000,
            cluster: ClusterPlan {
                sustained_texts: 20_000,
                ..Self::full().cluster
            },
            ..Self::full()
        }
    }
}

/// Durations as seconds in the JSON.
mod seconds {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }
}
