//! Flows on a simulated clock: the real runtime and plugins in an engine built like the
//! server's ([`crate::engine`]), with no phone and a clock that moves only when told.
//!
//! `smsflow test` (scenario files) and `smsflow chat` (a person at a terminal) both drive a
//! flow through a [`Simulation`]: a start, a text from the contact, or time passing, each
//! answered with the [`Turn`] it caused. One path means a chat shows what a scenario tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::clock::{Clock as _, ManualClock, SharedClock};
use crate::config::Config;
use crate::engine::{Engine, EngineBuilder};
use crate::flow::Flow;
use crate::flow::check::{self, CheckLimits};
use crate::flow::conversation::{Conversation, Entry, Event};
use crate::flow::diagnostic::Diagnostic;
use crate::flow::runtime::{RuntimeError, StartRequest};
use crate::outbound::{Cleared, Provider, Receipt, SendError};
use crate::plugin::{Grant, Manifest, PluginHost};
use crate::sms::InboundText;
use crate::store::Store;
use crate::store::outbox::GateRecord;

/// Our number in simulations.
pub const OUR_NUMBER: &str = "+15550001000";
/// How far ahead a text counts as held by the sender's pace (a text per second on a long
/// code), not deferred: [`Simulation`] lets the clock run to it.
const PACED_MS: i64 = 60_000;

/// The contact when none is named.
pub const DEFAULT_CONTACT: &str = "+15555550100";

/// What the simulations of one session share: the operator's config, the plugins, the flows
/// and the simulated clock (the plugins read it too).
pub struct Simulator<'c> {
    config: &'c Config,
    host: Arc<PluginHost>,
    clock: Arc<ManualClock>,
    flows: Vec<Flow>,
}

impl<'c> Simulator<'c> {
    /// The plugins in `config.plugins.dir`, each granted what `grant_for` says, and no flows
    /// yet ([`Simulator::load_flows`] adds them: they are checked against these plugins).
    ///
    /// # Errors
    ///
    /// When the plugins folder cannot be read or a plugin does not load.
    pub async fn new(
        config: &'c Config,
        grant_for: impl Fn(&Manifest) -> Grant,
    ) -> anyhow::Result<Self> {
        let clock = Arc::new(ManualClock::new(0));
        let shared_clock: SharedClock = clock.clone();
        // The host's own key-value store outlives each simulation's: as in the server, plugin
        // state is the plugin's, not the conversation's.
        let kv_store = Store::temporary()?;
        let mut host = PluginHost::new(&config.plugins, kv_store.tables().plugin_kv, shared_clock)?;
        host.load_dir_with(&config.plugins.dir, grant_for).await?;
        Ok(Self {
            config,
            host: Arc::new(host),
            clock,
            flows: Vec::new(),
        })
    }

    /// Loads and checks the flows at `path` (a file or a folder) against the plugins and
    /// `limits`; keeps those that load and returns the problems of the others.
    pub fn load_flows(&mut self, path: &Path, limits: &CheckLimits) -> Vec<Diagnostic> {
        let loaded = check::load(path, Some(&self.host), limits);
        self.flows = loaded.flows;
        loaded.errors
    }

    /// The flows loaded.
    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }

    /// A fresh simulation of `flow` with `contact`: a temporary store, the clock set to
    /// `start_ms`, every loaded flow in service, the operator's policy at the gate. Its
    /// workers never run: the simulation's actions drive it.
    ///
    /// # Errors
    ///
    /// When the engine cannot be built (the store, the config's policy).
    pub async fn simulation(
        &self,
        flow: &str,
        contact: &str,
        locale: Option<&str>,
        start_ms: i64,
    ) -> anyhow::Result<Simulation> {
        self.clock.set(start_ms);
        let engine = EngineBuilder::from_config(self.config)
            .store(Store::temporary()?)
            .clock(self.clock.clone())
            .provider(Arc::new(Unsent))
            .plugins(Arc::clone(&self.host))
            .flows(self.flows.clone())
            .build()
            .await?;
        Ok(Simulation {
            engine,
            clock: Arc::clone(&self.clock),
            flow: flow.to_owned(),
            contact: contact.to_owned(),
            locale: locale.map(str::to_owned),
            inbound_count: 0,
            held: Vec::new(),
        })
    }
}

/// The provider of simulations: takes every text the gate clears and sends nothing.
#[derive(Debug)]
struct Unsent;

impl Provider for Unsent {
    fn name(&self) -> &'static str {
        "simulation"
    }

    fn send<'a>(
        &'a self,
        message: &'a Cleared,
    ) -> futures_util::future::BoxFuture<'a, Result<Receipt, SendError>> {
        Box::pin(async move {
            Ok(Receipt {
                provider_id: message.id.clone(),
            })
        })
    }
}

/// Why a start did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The flow's rules refused it (a missing field, an active run): the simulation goes on.
    #[error("{0}")]
    Refused(RuntimeError),
    /// The simulation itself failed (its store).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// What one action caused.
#[derive(Debug, Default)]
pub struct Turn {
    /// The transcript entries written, in order.
    pub entries: Vec<Entry>,
    /// The texts the flow (or the host, for STOP and HELP) queued, with the gate's decision.
    pub texts: Vec<Text>,
    /// Texts the gate had deferred in an earlier turn and decided on in this one.
    pub released: Vec<Text>,
}

/// A text to the contact and what the gate made of it.
#[derive(Debug, Clone)]
pub struct Text {
    /// The outbox id.
    pub message_id: String,
    /// The step that queued it.
    pub step: String,
    /// The text as the flow wrote it (the transcript's).
    pub text: String,
    /// The text as it went to the provider, once sent: the opt-out wording the gate appends
    /// included. Before that, the text as queued.
    pub body: String,
    /// The gate's latest decision; `None` while it has not decided.
    pub gate: Option<GateRecord>,
}

impl Text {
    /// `sent`, `deferred`, `blocked`, or `queued` while the gate has not decided.
    pub fn decision(&self) -> &str {
        self.gate
            .as_ref()
            .map_or("queued", |gate| gate.decision.as_str())
    }
}

/// One conversation between a flow and a contact, on the simulated clock.
pub struct Simulation {
    engine: Engine,
    clock: Arc<ManualClock>,
    flow: String,
    contact: String,
    locale: Option<String>,
    inbound_count: u64,
    /// Texts the gate deferred: a later turn reports its final decision on each.
    held: Vec<Text>,
}

impl Simulation {
    /// Starts the flow through the API's path, with `fields`.
    ///
    /// # Errors
    ///
    /// [`StartError::Refused`] when the runtime refuses the start (nothing is queued then);
    /// [`StartError::Failed`] when the store fails.
    pub async fn start(&mut self, fields: &BTreeMap<String, String>) -> Result<Turn, StartError> {
        let before = self.transcript_len()?;
        let request = StartRequest {
            flow: self.flow.clone(),
            from: OUR_NUMBER.to_owned(),
            to: self.contact.clone(),
            fields: fields.clone(),
            locale: self.locale.clone(),
            ..StartRequest::default()
        };
        match self.engine.runtime().start(request).await {
            Ok(_) => {}
            Err(RuntimeError::Store(error)) => return Err(anyhow::Error::from(error).into()),
            Err(error) => return Err(StartError::Refused(error)),
        }
        self.deliver().await?;
        Ok(self.turn_since(before)?)
    }

    /// A text from the contact, through the server's accept pipeline (STOP and HELP are
    /// answered there), then processed.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn inbound(&mut self, text: &str) -> anyhow::Result<Turn> {
        let before = self.transcript_len()?;
        self.inbound_count += 1;
        let inbound = InboundText {
            provider: "simulation",
            // Unique in this simulation, so the inbox does not take it for a retried delivery.
            message_id: format!("sim-{}", self.inbound_count),
            from: self.contact.clone(),
            to: OUR_NUMBER.to_owned(),
            body: text.to_owned(),
            num_media: 0,
        };
        self.engine.ingest().accept(inbound).await?;
        self.engine.process_inbox().await?;
        self.deliver().await?;
        self.turn_since(before)
    }

    /// Moves the clock forward by `by`, stopping at each timer and each deferred text due on
    /// the way, as the server's workers would: a reminder sent on the way sets its own
    /// timeout from the moment it was sent, not from the end of the wait.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn advance(&mut self, by: Duration) -> anyhow::Result<Turn> {
        let before = self.transcript_len()?;
        let by_ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let target = self.clock.now_ms().saturating_add(by_ms);
        loop {
            let now = self.clock.now_ms();
            match self.next_due()?.filter(|&due| due > now && due <= target) {
                Some(due) => self.clock.set(due),
                None if now < target => self.clock.set(target),
                None => break,
            }
            self.engine.runtime().fire_due_timers().await?;
            self.deliver().await?;
        }
        self.turn_since(before)
    }

    /// The conversation, once it has begun.
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub fn conversation(&self) -> anyhow::Result<Option<Conversation>> {
        Ok(self
            .engine
            .runtime()
            .conversation(OUR_NUMBER, &self.contact)?)
    }

    /// The simulated time, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The contact.
    pub fn contact(&self) -> &str {
        &self.contact
    }

    /// The earliest of the next timer and the next queued text.
    fn next_due(&self) -> anyhow::Result<Option<i64>> {
        let timer = self.engine.runtime().next_timer_due()?;
        let text = self.engine.store().tables().outbox_due.next_due()?;
        Ok(timer.into_iter().chain(text).min())
    }

    /// Texts due now through the gate, as the server's outbox would; a text the sender's pace
    /// holds for a moment goes a moment later (the clock moves to it), as it would in the
    /// server, rather than staying queued until the next action.
    async fn deliver(&self) -> anyhow::Result<()> {
        loop {
            while self.engine.outbox().deliver_due().await? > 0 {}
            let now = self.clock.now_ms();
            match self.engine.store().tables().outbox_due.next_due()? {
                Some(due) if due > now && due <= now + PACED_MS => self.clock.set(due),
                _ => return Ok(()),
            }
        }
    }

    fn transcript_len(&self) -> anyhow::Result<usize> {
        Ok(self.transcript()?.len())
    }

    fn transcript(&self) -> anyhow::Result<Vec<Entry>> {
        Ok(self
            .engine
            .runtime()
            .transcript(OUR_NUMBER, &self.contact)?)
    }

    /// The turn made of the entries after `before`, and the held texts decided since.
    fn turn_since(&mut self, before: usize) -> anyhow::Result<Turn> {
        let entries = self.transcript()?.split_off(before);
        let texts = entries
            .iter()
            .filter_map(|entry| match &entry.event {
                Event::Outbound {
                    message_id,
                    text,
                    step,
                    ..
                } => Some(Text {
                    message_id: message_id.clone(),
                    step: step.clone(),
                    text: text.clone(),
                    body: text.clone(),
                    gate: None,
                }),
                _ => None,
            })
            .map(|text| self.refresh(text))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let released = self.release_held()?;
        self.held.extend(
            texts
                .iter()
                .filter(|text| text.decision() == "deferred")
                .cloned(),
        );
        Ok(Turn {
            entries,
            texts,
            released,
        })
    }

    /// The held texts the gate no longer defers; the rest stay held.
    fn release_held(&mut self) -> anyhow::Result<Vec<Text>> {
        let mut released = Vec::new();
        for text in std::mem::take(&mut self.held) {
            let text = self.refresh(text)?;
            if text.decision() == "deferred" {
                self.held.push(text);
            } else {
                released.push(text);
            }
        }
        Ok(released)
    }

    /// `text` with the outbox's latest body and gate decision.
    fn refresh(&self, mut text: Text) -> anyhow::Result<Text> {
        let message = self
            .engine
            .outbox()
            .message(&text.message_id)?
            .with_context(|| {
                format!(
                    "text {} is in the transcript but not in the outbox",
                    text.message_id
                )
            })?;
        text.body = message.body;
        text.gate = message.gate;
        Ok(text)
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (`2026-03-02T15:00:00Z`).
///
/// # Errors
///
/// When `text` is not one, or is before 1970.
pub fn parse_instant(text: &str) -> anyhow::Result<i64> {
    let instant = humantime::parse_rfc3339_weak(text).with_context(|| {
        format!("`{text}` is not an RFC 3339 time; write it like 2026-03-02T15:00:00Z")
    })?;
    let since_epoch = instant
        .duration_since(std::time::UNIX_EPOCH)
        .context("times before 1970 are not supported")?;
    Ok(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}
