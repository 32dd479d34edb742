//! The end-to-end scenarios: the real `smsflow serve` on a fresh store, driven with signed
//! webhooks, its replies caught by the fake Twilio.
//!
//! Each scenario has a *sustained* phase, a closed loop whose backlog (texts acknowledged and
//! not yet answered) is bounded, so its rate is texts the engine handled per second rather than
//! texts its inbox swallowed; then open-loop phases at fractions of that rate, for latency.
//! Every phase uses fresh contact numbers, so no frequency cap or loop guard binds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::contacts::{Block, Contacts};
use crate::engine::{API_TOKEN, Api, Engine, Paths, Setup};
use crate::fake_twilio::FakeTwilio;
use crate::latency::{Expect, Joined, Summary, join, summary};
use crate::loadgen::{self, Live, Pace, Report, Requests, per_second};
use crate::plan::Plan;
use crate::process::disk_bytes;
use crate::twilio::{FlowStarts, InboundTexts};

/// After a phase's last expected reply, how long to keep listening for duplicates.
pub const SETTLE: Duration = Duration::from_millis(300);
/// How often the inbox is looked at through `GET /v1/status`.
const STATUS_EVERY: Duration = Duration::from_millis(20);
/// The outbound flow of scenario (b).
const CONFIRM_FLOW: &str = "appointment-confirmation";

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// (a) HELP from distinct numbers: the host answers each with the help text.
    Help,
    /// (b) "Yes please!" to a started appointment-confirmation flow: classified by the
    /// keyword-intents plugin, then answered.
    Confirm,
    /// (c) Texts no flow matches: stored, processed, never answered.
    Unmatched,
}

impl Kind {
    /// All three, in order.
    pub const ALL: [Self; 3] = [Self::Help, Self::Confirm, Self::Unmatched];

    /// Its key in the results.
    pub fn name(self) -> &'static str {
        match self {
            Self::Help => "help",
            Self::Confirm => "confirm",
            Self::Unmatched => "unmatched",
        }
    }

    fn letter(self) -> char {
        match self {
            Self::Help => 'a',
            Self::Confirm => 'b',
            Self::Unmatched => 'c',
        }
    }

    fn body(self) -> &'static str {
        match self {
            Self::Help => "HELP",
            Self::Confirm => "Yes please!",
            Self::Unmatched => "the weather is nice today",
        }
    }

    fn expect(self) -> Expect {
        match self {
            Self::Help => Expect::Reply { earlier: 0 },
            Self::Confirm => Expect::Reply { earlier: 1 },
            Self::Unmatched => Expect::Silence,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::Help => "HELP from distinct numbers, each answered with the help text",
            Self::Confirm => {
                "\"Yes please!\" to a started appointment-confirmation flow: classified by keyword-intents, then answered"
            }
            Self::Unmatched => "texts no flow matches: stored and processed, no reply",
        }
    }
}

/// Texts the provider should or should not have received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Acknowledged texts never answered.
    pub missing: u64,
    /// Answers beyond the first to one text.
    pub duplicates: u64,
    /// Texts the provider received that nothing asked for.
    pub unexpected: u64,
}

impl Check {
    /// What `joined` found wrong.
    pub fn of(joined: &Joined) -> Self {
        Self {
            missing: joined.missing,
            duplicates: joined.duplicates,
            unexpected: joined.unexpected,
        }
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: Self) {
        self.missing += other.missing;
        self.duplicates += other.duplicates;
        self.unexpected += other.unexpected;
    }

    /// Every acknowledged text answered exactly once, nothing else sent.
    pub fn exactly_once(&self) -> bool {
        *self == Self::default()
    }
}

/// The flow starts that precede (b)'s replies.
#[derive(Debug, Clone, Serialize)]
pub struct Starts {
    /// Contacts started.
    pub contacts: u64,
    /// Starts acknowledged per second.
    pub per_second: f64,
    /// Non-2xx answers.
    pub refused: u64,
    /// Requests without an answer.
    pub failed: u64,
    /// From the first start to the last opening text at the provider.
    pub all_openings_seconds: f64,
    /// Each started contact got exactly one opening text.
    pub check: Check,
}

/// The closed loop with the backlog bounded.
#[derive(Debug, Clone, Serialize)]
pub struct Sustained {
    /// Texts handled per second: answered at the provider ((a), (b)), or processed out of the
    /// inbox ((c)), from the first POST to the last answer.
    pub texts_per_second: f64,
    /// Texts acknowledged.
    pub texts: u64,
    /// Of them, answered ((a), (b)) or processed ((c)).
    pub handled: u64,
    /// Non-2xx answers.
    pub refused: u64,
    /// Requests without an answer.
    pub failed: u64,
    /// From the first POST to the last text handled.
    pub seconds: f64,
    /// The bound on texts acknowledged and not yet handled.
    pub backlog_limit: u64,
    /// The most `GET /v1/status` saw pending in the inbox.
    pub max_inbox_pending: Option<u64>,
    /// Acknowledgement latency.
    pub ack: Summary,
    /// Ingest-to-provider latency at saturation ((a), (b)).
    pub ingest_to_provider: Option<Summary>,
    /// Exactly once.
    pub check: Check,
}

/// An open loop at a fraction of the sustained rate.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// The fraction of the sustained rate.
    pub load: f64,
    /// Texts per second posted.
    pub rate: f64,
    /// Texts acknowledged.
    pub texts: u64,
    /// Non-2xx answers.
    pub refused: u64,
    /// Requests without an answer.
    pub failed: u64,
    /// From the start of a webhook's POST to its reply's arrival at the provider ((a), (b)).
    pub ingest_to_provider: Option<Summary>,
    /// Acknowledgement latency.
    pub ack: Summary,
    /// The most a POST started after its due time (the load generator falling behind).
    pub max_schedule_lag_ms: f64,
    /// The most `GET /v1/status` saw pending in the inbox.
    pub max_inbox_pending: Option<u64>,
    /// Exactly once.
    pub check: Check,
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// What it sends.
    pub description: String,
    /// The text.
    pub body: String,
    /// (b): the flow starts before each phase.
    pub starts: Vec<Starts>,
    /// The sustained rate.
    pub sustained: Sustained,
    /// Latency at fractions of it.
    pub latency: Vec<Latency>,
    /// Inbound texts acknowledged, all phases.
    pub texts: u64,
    /// All phases (and starts): every acknowledged text answered exactly once.
    pub check: Check,
    /// Whether `check` found nothing wrong.
    pub exactly_once: bool,
    /// Peak resident memory of `smsflow serve` (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// The store's size on disk after the scenario.
    pub store_bytes: u64,
    /// `store_bytes / texts`.
    pub bytes_per_text: f64,
    /// Dead letters in the inbox at the end.
    pub dead_letters: Option<u64>,
}

/// What the scenarios share.
#[derive(Debug)]
pub struct Bench<'a> {
    /// The build.
    pub paths: &'a Paths,
    /// The sizes.
    pub plan: &'a Plan,
    /// Fresh numbers.
    pub contacts: &'a Contacts,
    /// The provider.
    pub fake: Arc<FakeTwilio>,
    /// Its base URL.
    pub fake_url: String,
}

/// One phase: what was posted, and what reached the provider.
struct Phase {
    report: Report,
    joined: Joined,
    /// When the last text was handled ((c): the inbox was seen empty).
    drained: Instant,
    max_pending: Option<u64>,
}

impl Bench<'_> {
    /// Runs scenario `kind` on a fresh store.
    ///
    /// # Errors
    ///
    /// When the engine does not start, stops, or (c) has no `GET /v1/status`.
    pub async fn scenario(&self, kind: Kind) -> anyhow::Result<Scenario> {
        let setup = Setup::new(self.paths, &self.fake_url)?;
        let engine = Engine::start(self.paths, &setup).await?;
        let status = engine.api.status().await?.is_some();
        anyhow::ensure!(
            status || kind != Kind::Unmatched,
            "scenario (c) watches the inbox through GET /v1/status, which this smsflow does not \
             serve: build a version that has it"
        );
        let mut starts = Vec::new();
        let sustained = self.sustained(&engine, kind, status, &mut starts).await?;
        let mut latency = Vec::new();
        for (phase, &load) in (1..).zip(&self.plan.loads) {
            let rate = load * sustained.texts_per_second;
            let phase = self
                .latency(&engine, kind, (phase, load, rate), status, &mut starts)
                .await
                .with_context(|| format!("the latency phase at {load} of the sustained rate"))?;
            latency.push(phase);
        }
        let peak_rss_bytes = engine.server.peak_rss_bytes()?;
        let dead_letters = engine.api.status().await?.map(|s| s.inbox.dead_letters);
        engine.server.stop()?;
        let store_bytes = disk_bytes(&setup.store())?;
        let texts = sustained.texts + latency.iter().map(|phase| phase.texts).sum::<u64>();
        let mut check = sustained.check;
        for part in latency
            .iter()
            .map(|l| l.check)
            .chain(starts.iter().map(|s| s.check))
        {
            check.add(part);
        }
        Ok(Scenario {
            description: kind.description().to_owned(),
            body: kind.body().to_owned(),
            starts,
            sustained,
            latency,
            texts,
            check,
            exactly_once: check.exactly_once(),
            peak_rss_bytes,
            store_bytes,
            bytes_per_text: store_bytes as f64 / texts.max(1) as f64,
            dead_letters,
        })
    }

    async fn sustained(
        &self,
        engine: &Engine,
        kind: Kind,
        status: bool,
        starts: &mut Vec<Starts>,
    ) -> anyhow::Result<Sustained> {
        let plan = self.plan;
        let (block, max_time) = if kind == Kind::Confirm {
            let block = self.contacts.block(plan.confirm_contacts)?;
            starts.push(self.start_flows(engine, block).await?);
            // Bounded by its contacts; the time bound only guards against a stalled engine.
            (block, plan.sustained_time.max(Duration::from_secs(60)))
        } else {
            (
                self.contacts.block(plan.sustained_texts)?,
                plan.sustained_time,
            )
        };
        let pace = Pace::Closed {
            max_time,
            backlog: Some(plan.backlog),
        };
        let phase = self
            .post_texts(engine, kind, block, pace, 0, status)
            .await?;
        let (handled, end) = match kind.expect() {
            Expect::Silence => (phase.report.acked(), phase.drained),
            Expect::Reply { .. } => (
                phase.joined.answered,
                phase.joined.last_answer.unwrap_or(phase.drained),
            ),
        };
        let elapsed = end.saturating_duration_since(phase.report.started);
        Ok(Sustained {
            texts_per_second: per_second(handled, elapsed),
            texts: phase.report.acked(),
            handled,
            refused: phase.report.refused(),
            failed: phase.report.failed(),
            seconds: elapsed.as_secs_f64(),
            backlog_limit: plan.backlog,
            max_inbox_pending: phase.max_pending,
            ack: summary(&phase.report.ack),
            ingest_to_provider: replies(kind, &phase.joined),
            check: Check::of(&phase.joined),
        })
    }

    async fn latency(
        &self,
        engine: &Engine,
        kind: Kind,
        (phase, load, rate): (u32, f64, f64),
        status: bool,
        starts: &mut Vec<Starts>,
    ) -> anyhow::Result<Latency> {
        let count = (rate * self.plan.latency_time.as_secs_f64()).ceil() as u64;
        anyhow::ensure!(
            count > 0,
            "the sustained rate is 0 texts/s: there is no rate to measure latency at"
        );
        let block = self.contacts.block(count)?;
        if kind == Kind::Confirm {
            starts.push(self.start_flows(engine, block).await?);
        }
        let phase = self
            .post_texts(engine, kind, block, Pace::Open { rate }, phase, status)
            .await?;
        Ok(Latency {
            load,
            rate,
            texts: phase.report.acked(),
            refused: phase.report.refused(),
            failed: phase.report.failed(),
            ingest_to_provider: replies(kind, &phase.joined),
            ack: summary(&phase.report.ack),
            max_schedule_lag_ms: phase.report.max_lateness.as_secs_f64() * 1000.0,
            max_inbox_pending: phase.max_pending,
            check: Check::of(&phase.joined),
        })
    }

    /// Posts `kind`'s text from every number of `block`, waits until the engine handled them,
    /// and joins what was posted with what reached the provider.
    async fn post_texts(
        &self,
        engine: &Engine,
        kind: Kind,
        block: Block,
        pace: Pace,
        phase: u32,
        status: bool,
    ) -> anyhow::Result<Phase> {
        let texts = InboundTexts {
            webhook: engine.webhook(),
            contacts: block,
            body: kind.body().to_owned(),
            tag: format!("{}{phase}", kind.letter()),
        };
        let live = Arc::new(Live::default());
        let baseline = self.fake.total();
        let silent = kind.expect() == Expect::Silence;
        if !silent {
            self.fake.watch(Some((Arc::clone(&live), baseline)));
        }
        let watcher = status.then(|| Watcher::start(engine.api.clone(), Arc::clone(&live), silent));
        let posted = self
            .post(engine, Arc::new(texts), pace, Arc::clone(&live))
            .await;
        self.fake.watch(None);
        let report = posted?;
        let drained = if silent {
            drain_inbox(&engine.api, self.plan.drain_timeout).await?
        } else {
            self.fake
                .wait_for(baseline + report.acked(), self.plan.drain_timeout)
                .await;
            Instant::now()
        };
        let max_pending = watcher.map(Watcher::stop);
        tokio::time::sleep(SETTLE).await;
        let joined = self.join(&report, block, kind.expect())?;
        Ok(Phase {
            report,
            joined,
            drained,
            max_pending,
        })
    }

    async fn post(
        &self,
        engine: &Engine,
        requests: Arc<dyn Requests>,
        pace: Pace,
        live: Arc<Live>,
    ) -> anyhow::Result<Report> {
        let connections = self.plan.connections;
        loadgen::run(engine.server.addr, connections, requests, pace, live)
            .await
            .map_err(|error| error.context(engine.server.log_tail()))
    }

    /// What was posted, joined with what reached the provider.
    pub fn join(&self, report: &Report, block: Block, expect: Expect) -> anyhow::Result<Joined> {
        let numbers = report.posted.iter().map(|text| block.number(text.index));
        let arrivals = self.fake.arrivals(numbers);
        join(
            &report.posted,
            |index| block.number(index),
            &arrivals,
            expect,
        )
    }

    /// Starts the appointment-confirmation flow for every number of `block` and waits for
    /// their opening texts.
    async fn start_flows(&self, engine: &Engine, block: Block) -> anyhow::Result<Starts> {
        let requests = FlowStarts {
            path: format!("/v1/flows/{CONFIRM_FLOW}/start"),
            host: engine.server.addr.to_string(),
            api_token: API_TOKEN.to_owned(),
            contacts: block,
            fields: serde_json::json!({"first_name": "Ana", "date": "March 3", "time": "10:00"}),
        };
        let baseline = self.fake.total();
        let pace = Pace::Closed {
            max_time: Duration::from_secs(600),
            backlog: None,
        };
        let report = self
            .post(engine, Arc::new(requests), pace, Arc::default())
            .await?;
        anyhow::ensure!(
            report.acked() > 0,
            "every POST /v1/flows/{CONFIRM_FLOW}/start was refused ({} non-2xx, {} failed)",
            report.refused(),
            report.failed()
        );
        let timeout = self.plan.drain_timeout;
        self.fake.wait_for(baseline + report.acked(), timeout).await;
        let all_openings = report.started.elapsed();
        tokio::time::sleep(SETTLE).await;
        let joined = self.join(&report, block, Expect::Reply { earlier: 0 })?;
        Ok(Starts {
            contacts: block.len(),
            per_second: report.ack_rate(),
            refused: report.refused(),
            failed: report.failed(),
            all_openings_seconds: all_openings.as_secs_f64(),
            check: Check::of(&joined),
        })
    }
}

/// Ingest-to-provider latency, for the scenarios that reply.
fn replies(kind: Kind, joined: &Joined) -> Option<Summary> {
    (kind.expect() != Expect::Silence).then(|| summary(&joined.latency))
}

/// Waits until the inbox is empty; returns when it was seen so.
async fn drain_inbox(api: &Api, timeout: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = api.status().await?.context("GET /v1/status went away")?;
        if status.inbox.pending == 0 {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the inbox still holds {} texts {timeout:?} after the load stopped",
            status.inbox.pending
        );
        tokio::time::sleep(STATUS_EVERY).await;
    }
}

/// Watches the inbox through `GET /v1/status`: notes its largest backlog and, for texts that
/// get no reply, tells the load generator how many were processed.
struct Watcher {
    task: tokio::task::JoinHandle<()>,
    max_pending: Arc<AtomicU64>,
}

impl Watcher {
    fn start(api: Api, live: Arc<Live>, feed: bool) -> Self {
        let max_pending = Arc::new(AtomicU64::new(0));
        let max = Arc::clone(&max_pending);
        let task = tokio::spawn(async move {
            loop {
                // Read before asking: every text acknowledged by then is either pending or done.
                let acked = live.acked();
                if let Ok(Some(status)) = api.status().await {
                    max.fetch_max(status.inbox.pending, Ordering::AcqRel);
                    if feed {
                        live.answered(acked.saturating_sub(status.inbox.pending));
                    }
                }
                tokio::time::sleep(STATUS_EVERY).await;
            }
        });
        Self { task, max_pending }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.max_pending.load(Ordering::Acquire)
    }
}
