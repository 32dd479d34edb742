//! The composition root: what the engine is made of, built once from a [`Config`], for
//! `smsflow serve`, `smsflow test`, the CLI, the tests and the benchmarks alike.
//!
//! [`EngineBuilder::from_config`] takes the operator's config; overrides (a clock, a provider,
//! a store, plugins, flows) replace a part without rewiring the rest, so a scenario runs under
//! the same `[compliance]` and `[programs]` as the server. [`Engine::spawn_workers`] starts the
//! inbox, timer, outbox and event workers (and the flow-folder watcher); [`Engine::drain`] lets
//! their work in progress finish.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::agents::Agents;
use crate::campaigns::Campaigns;
use crate::clock::SharedClock;
use crate::compliance::Screener;
use crate::compliance::gate::Gate;
use crate::config::{Config, ProviderKind};
use crate::contacts::Contacts;
use crate::events::Events;
use crate::flow::Flow;
use crate::flow::check::CheckLimits;
use crate::flow::registry::Registry;
use crate::flow::runtime::{Inbound, Notifiers, Runtime, RuntimeParts};
use crate::handoff::{Desk, DeskConfig, DeskParts, Signals};
use crate::inbox::{Inbox, InboxEvent, InboxHandler, InboxSettings};
use crate::ingress::accept::{Ingest, IngestParts};
use crate::ingress::{TELNYX_PATH, TWILIO_STATUS_PATH};
use crate::locks::ConversationLocks;
use crate::measure::Measurement;
use crate::outbound::telnyx::TelnyxProvider;
use crate::outbound::twilio::TwilioProvider;
use crate::outbound::{ConsoleProvider, Outbox, OutboxSettings, Provider};
use crate::plugin::{PluginCalls, PluginHost, World};
use crate::store::Store;
use tracing::Instrument as _;

/// Builds an [`Engine`] from a config, with parts replaced where a caller needs to.
pub struct EngineBuilder<'c> {
    config: &'c Config,
    clock: Option<SharedClock>,
    provider: Option<Arc<dyn Provider>>,
    store: Option<Store>,
    plugins: Option<Arc<PluginHost>>,
    calls: Option<Arc<dyn PluginCalls>>,
    flows: Option<Vec<Flow>>,
    events_retry_ms: Option<Vec<i64>>,
}

impl<'c> EngineBuilder<'c> {
    /// Everything from `config`: its store, plugins, flows, provider, policy; the clock from
    /// `SMSFLOW_CLOCK` or the system's.
    pub fn from_config(config: &'c Config) -> Self {
        Self {
            config,
            clock: None,
            provider: None,
            store: None,
            plugins: None,
            calls: None,
            flows: None,
            events_retry_ms: None,
        }
    }

    /// Runs on `clock` instead.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sends through `provider` instead of `[provider]`'s.
    #[must_use]
    pub fn provider(mut self, provider: Arc<dyn Provider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Keeps its state in `store` instead of `[store] path`.
    #[must_use]
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Calls these plugins instead of loading `[plugins] dir`.
    #[must_use]
    pub fn plugins(mut self, plugins: Arc<PluginHost>) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// Makes the plugin calls of flows and screening through `calls` (which usually wraps the
    /// host: for tests that watch what is called); the host still loads and lists plugins.
    #[must_use]
    pub fn plugin_calls(mut self, calls: Arc<dyn PluginCalls>) -> Self {
        self.calls = Some(calls);
        self
    }

    /// Serves these flows instead of loading `[flows] dir` (and does not watch it).
    #[must_use]
    pub fn flows(mut self, flows: Vec<Flow>) -> Self {
        self.flows = Some(flows);
        self
    }

    /// Retries event webhooks on this schedule (milliseconds before each attempt): for tests.
    #[must_use]
    pub fn event_retry_schedule(mut self, schedule_ms: Vec<i64>) -> Self {
        self.events_retry_ms = Some(schedule_ms);
        self
    }

    /// Builds the engine.
    ///
    /// # Errors
    ///
    /// When the store cannot be opened, a plugin or flow does not load, the provider's
    /// settings are incomplete, the revocation classifier is not a loaded classifier, or the
    /// quiet-hours pack is invalid.
    pub async fn build(self) -> anyhow::Result<Engine> {
        let config = self.config;
        let store = match self.store {
            Some(store) => store,
            None => Store::open(&config.store.path)?,
        };
        let clock = match self.clock {
            Some(clock) => clock,
            None => crate::clock::from_env()?,
        };
        let tables = store.tables();
        let plugins = match self.plugins {
            Some(plugins) => plugins,
            None => {
                let mut host =
                    PluginHost::new(&config.plugins, tables.plugin_kv.clone(), clock.clone())?;
                host.load_dir(&config.plugins).await?;
                Arc::new(host)
            }
        };
        check_revocation_classifier(config, &plugins)?;
        let provider = match self.provider {
            Some(provider) => provider,
            None => provider_from_config(config)?,
        };
        let events = match config.webhooks.is_empty() {
            true => None,
            false => {
                let mut events = Events::new(&store, config.webhooks.clone(), clock.clone())?;
                if let Some(schedule) = self.events_retry_ms {
                    events = events.with_retry_schedule(schedule);
                }
                Some(Arc::new(events))
            }
        };
        let gate = Gate::from_config(&config.compliance, &config.programs, &tables)?
            .with_authoritative_zones(config.contacts.time_zone_authoritative);
        let compliance = Arc::clone(gate.compliance());
        let outbox_wake = Arc::new(Notify::new());
        let mut outbox = Outbox::new(
            &store,
            provider,
            gate,
            clock.clone(),
            OutboxSettings {
                max_attempts: config.provider.max_attempts,
                messages_per_second: config.provider.messages_per_second,
                ..OutboxSettings::default()
            },
            Arc::clone(&outbox_wake),
        );
        if let Some(events) = &events {
            outbox = outbox.with_events(Arc::clone(events));
        }
        let outbox = Arc::new(outbox);
        // The flows are held to the limits of the gate their texts will pass, so the server
        // refuses at load (and reload) what the gate would refuse at send time.
        let limits = CheckLimits::new(
            &config.compliance,
            &config.programs,
            "the server's `[compliance] max_segments`",
        );
        let registry = Arc::new(Registry::new(tables.flow_versions.clone(), limits));
        let watch = match self.flows {
            Some(flows) => {
                registry.install(flows)?;
                false
            }
            None => {
                load_flows(&registry, &config.flows.dir, &plugins)?;
                config.flows.reload_interval_ms > 0
            }
        };
        let desk_config = DeskConfig::new(&config.queues, &config.handoff, &config.canned)
            .map_err(|error| anyhow::anyhow!("smsflow.toml: {error}"))?;
        let signals = Arc::new(Signals::default());
        let locks = Arc::new(ConversationLocks::default());
        let calls: Arc<dyn PluginCalls> = self
            .calls
            .unwrap_or_else(|| Arc::clone(&plugins) as Arc<dyn PluginCalls>);
        let runtime = Arc::new(Runtime::new(RuntimeParts {
            store: store.clone(),
            registry,
            plugins: Arc::clone(&calls),
            compliance: Arc::clone(&compliance),
            clock: clock.clone(),
            locks: Arc::clone(&locks),
            notifiers: Notifiers {
                outbox: outbox_wake,
                events: events.clone(),
                desk: Arc::clone(&signals),
            },
            reopen_within_ms: desk_config.reopen_within_ms,
            links_base: config.links.base(&config.server.listen),
        }));
        let inbox = Arc::new(Inbox::new(
            &store,
            clock.clone(),
            InboxSettings {
                max_attempts: config.inbox.max_attempts,
                lanes: config.inbox.workers,
                ..InboxSettings::default()
            },
        ));
        let ingest = Arc::new(Ingest::new(IngestParts {
            store: store.clone(),
            inbox: Arc::clone(&inbox),
            screener: Arc::new(Screener::new(compliance, Some(calls))),
            facts: Arc::clone(&runtime) as Arc<dyn crate::compliance::FactsSource>,
            locks,
            outbox: Arc::clone(&outbox),
            events: events.clone(),
            clock: clock.clone(),
        }));
        let agents = Arc::new(Agents::new(&store, clock.clone()));
        let contacts = Arc::new(Contacts::new(
            &store,
            crate::compliance::ledger::Ledger::new(tables.consent.clone()),
            clock.clone(),
            config.contacts.clone(),
        )?);
        let our_number = crate::phone::parse_e164(&config.provider.from)
            .unwrap_or_else(|_| config.provider.from.clone());
        let campaigns = Arc::new(Campaigns::new(
            &store,
            Arc::clone(&contacts),
            Arc::clone(&runtime),
            Arc::clone(&outbox),
            clock.clone(),
            our_number.clone(),
        ));
        let windows = config
            .programs
            .iter()
            .map(|(id, program)| {
                let windows = crate::measure::Windows {
                    click: program.click_window,
                    delivery: program.delivery_window,
                };
                (id.clone(), windows)
            })
            .collect();
        let measurement = Measurement::new(
            &store,
            clock.clone(),
            config.measurement.clone(),
            our_number,
        )
        .with_windows(windows);
        let desk = Arc::new(Desk::new(DeskParts {
            store: store.clone(),
            turns: Arc::clone(&runtime) as Arc<dyn crate::handoff::CaseTurns>,
            agents: Arc::clone(&agents),
            config: desk_config,
            signals,
            clock: clock.clone(),
        }));
        let compactor = Arc::new(crate::retention::Compactor::new(
            &store,
            config.retention.clone(),
            clock.clone(),
        ));
        Ok(Engine {
            agents,
            campaigns,
            measurement,
            compactor,
            contacts,
            desk,
            store,
            clock,
            plugins,
            runtime,
            inbox,
            outbox,
            events,
            ingest,
            flows_dir: watch.then(|| config.flows.dir.clone()),
            reload_interval: Duration::from_millis(config.flows.reload_interval_ms),
        })
    }
}

/// A built engine: its parts, and the workers that move texts through them.
pub struct Engine {
    agents: Arc<Agents>,
    campaigns: Arc<Campaigns>,
    measurement: Arc<Measurement>,
    compactor: Arc<crate::retention::Compactor>,
    contacts: Arc<Contacts>,
    desk: Arc<Desk>,
    store: Store,
    clock: SharedClock,
    plugins: Arc<PluginHost>,
    runtime: Arc<Runtime>,
    inbox: Arc<Inbox>,
    outbox: Arc<Outbox>,
    events: Option<Arc<Events>>,
    ingest: Arc<Ingest>,
    /// The flow folder to watch, when the flows came from one and reloading is on.
    flows_dir: Option<PathBuf>,
    reload_interval: Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// The engine's running workers.
#[derive(Debug)]
pub struct Workers(Vec<JoinHandle<()>>);

impl Workers {
    /// Stops them (after [`Engine::drain`], nothing they were doing is lost).
    pub fn abort(self) {
        for worker in self.0 {
            worker.abort();
        }
    }
}

impl Engine {
    /// Starts the inbox, timer, outbox, desk and event workers, and the flow-folder watcher.
    pub fn spawn_workers(&self) -> Workers {
        let handler: Arc<dyn InboxHandler> = Arc::new(Processing(Arc::clone(&self.runtime)));
        let mut workers = vec![
            tokio::spawn(Arc::clone(&self.inbox).run(handler)),
            tokio::spawn(Arc::clone(&self.runtime).run_timers()),
            tokio::spawn(Arc::clone(&self.outbox).run()),
            tokio::spawn(Arc::clone(&self.desk).run()),
            tokio::spawn(Arc::clone(&self.campaigns).run()),
            tokio::spawn(Arc::clone(&self.measurement).run()),
            tokio::spawn(Arc::clone(&self.compactor).run()),
        ];
        if let Some(events) = &self.events {
            workers.push(tokio::spawn(Arc::clone(events).run()));
        }
        if let Some(dir) = self.flows_dir.clone() {
            let registry = Arc::clone(self.runtime.registry());
            let plugins = Arc::clone(&self.plugins);
            let interval = self.reload_interval;
            workers.push(tokio::spawn(async move {
                registry.watch(&dir, plugins, interval).await;
            }));
        }
        Workers(workers)
    }

    /// Processes every inbound text waiting in the inbox now, in order, without the workers:
    /// for `smsflow test` and tests that step the engine themselves. Returns how many.
    ///
    /// # Errors
    ///
    /// When one fails (it stays in the inbox).
    pub async fn process_inbox(&self) -> anyhow::Result<usize> {
        let pending = self.inbox.pending()?;
        let handler = Processing(Arc::clone(&self.runtime));
        for event in &pending {
            handler.handle(event).await?;
        }
        Ok(pending.len())
    }

    /// Lets the work in progress finish (up to `grace` each): the texts being processed, the
    /// sends being made. What was not started stays in the store for the next start.
    pub async fn drain(&self, grace: Duration) {
        let unfinished = self.inbox.drain(grace).await;
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "stopping with inbound texts still being processed; they will be redone at the next start"
            );
        }
        if !self.outbox.drain(grace).await {
            tracing::warn!("stopping while texts were being handed to the provider");
        }
    }

    /// The agents who answer handed-off conversations.
    pub fn agents(&self) -> &Arc<Agents> {
        &self.agents
    }

    /// The contacts.
    pub fn contacts(&self) -> &Arc<Contacts> {
        &self.contacts
    }

    /// The campaigns.
    pub fn campaigns(&self) -> &Arc<Campaigns> {
        &self.campaigns
    }

    /// The funnel's reader: reports, conversions, clicks.
    pub fn measurement(&self) -> &Arc<Measurement> {
        &self.measurement
    }

    /// The retention compactor (it runs on its own; tests and tools call it directly).
    pub fn compactor(&self) -> &Arc<crate::retention::Compactor> {
        &self.compactor
    }

    /// The handoff desk: queues, assignment, service levels.
    pub fn desk(&self) -> &Arc<Desk> {
        &self.desk
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The plugins.
    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.plugins
    }

    /// The flow runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The inbox.
    pub fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The event webhooks, when any endpoint is configured.
    pub fn events(&self) -> Option<&Arc<Events>> {
        self.events.as_ref()
    }

    /// The accept pipeline.
    pub fn ingest(&self) -> &Arc<Ingest> {
        &self.ingest
    }
}

/// The inbox's handler: an inbound text is a turn of its conversation.
struct Processing(Arc<Runtime>);

impl InboxHandler for Processing {
    fn handle<'a>(&'a self, event: &'a InboxEvent) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let inbound = Inbound {
                id: event.event_id(),
                from: event.from.clone(),
                to: event.to.clone(),
                text: event.body.clone(),
                screening: event.screening.clone(),
                inbox_seq: Some(event.seq),
            };
            let span = tracing::info_span!("sms.turn", message_id = %event.message_id, contact = %event.from);
            crate::telemetry::follow(&span, event.trace.as_deref());
            self.0.inbound(inbound).instrument(span).await?;
            Ok(())
        })
    }
}

/// A page of the conversation of (our number, contact) as the API shows it: the conversation,
/// up to `limit` transcript entries before `before` (newest last), their outbound texts as the
/// outbox keeps them, and where the next older page starts. `None` when there is none. Served
/// by `GET /v1/conversations/{phone}` on one node, and by the partition's owner in a cluster.
///
/// # Errors
///
/// When the store cannot be read.
pub fn conversation_page(
    runtime: &Runtime,
    outbox: &Outbox,
    (our_number, contact): (&str, &str),
    before: Option<u64>,
    limit: usize,
) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(conversation) = runtime.conversation(our_number, contact)? else {
        return Ok(None);
    };
    let transcript = runtime.transcript_page(our_number, contact, before, limit + 1)?;
    // One entry more than asked tells whether an older page exists.
    let older = transcript.len() > limit;
    let transcript = &transcript[usize::from(older)..];
    let messages = outbound_texts(outbox, transcript)?;
    let next_before = older
        .then(|| transcript.first().map(|entry| entry.seq))
        .flatten();
    Ok(Some(serde_json::json!({
        "conversation": conversation,
        "transcript": transcript,
        "messages": messages,
        "page": { "limit": limit, "next_before": next_before },
    })))
}

/// Each outbound text of `transcript` as the outbox keeps it: its gate decisions and delivery.
///
/// # Errors
///
/// When the store cannot be read.
pub fn outbound_texts(
    outbox: &Outbox,
    transcript: &[crate::flow::conversation::Entry],
) -> anyhow::Result<Vec<crate::outbound::OutboundMessage>> {
    transcript
        .iter()
        .filter_map(|entry| match &entry.event {
            crate::flow::conversation::Event::Outbound { message_id, .. } => Some(message_id),
            _ => None,
        })
        .filter_map(|id| outbox.message(id).transpose())
        .collect()
}

/// Loads and installs the flows at `dir`.
fn load_flows(
    registry: &Registry,
    dir: &std::path::Path,
    plugins: &PluginHost,
) -> anyhow::Result<()> {
    let count = registry.reload(dir, plugins).map_err(|errors| {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the flows do not load:\n{}", errors.join("\n"))
    })?;
    tracing::info!(count, dir = %dir.display(), "flows loaded");
    Ok(())
}

/// `[compliance] revocation_classifier` must name a loaded classifier.
fn check_revocation_classifier(config: &Config, plugins: &PluginHost) -> anyhow::Result<()> {
    if let Some(name) = &config.compliance.revocation_classifier {
        let world = plugins.get(name).map(|plugin| plugin.manifest.world);
        anyhow::ensure!(
            world == Some(World::Classifier),
            "[compliance] revocation_classifier = \"{name}\" must name a loaded classifier plugin"
        );
    }
    Ok(())
}

/// The provider `[provider]` describes.
///
/// # Errors
///
/// When its settings are incomplete (Twilio without account_sid or auth_token, Telnyx without
/// api_key) or its HTTP client cannot be built.
pub fn provider_from_config(config: &Config) -> anyhow::Result<Arc<dyn Provider>> {
    let settings = &config.provider;
    let public_url = config
        .server
        .public_url
        .as_deref()
        .map(|url| url.trim_end_matches('/'));
    Ok(match settings.kind {
        ProviderKind::Console => Arc::new(ConsoleProvider),
        ProviderKind::Twilio => {
            let account_sid = settings
                .account_sid
                .as_deref()
                .context("[provider] kind = \"twilio\" needs account_sid")?;
            let auth_token = settings
                .auth_token
                .as_deref()
                .context("[provider] kind = \"twilio\" needs auth_token")?;
            Arc::new(TwilioProvider::new(
                settings
                    .api_base
                    .as_deref()
                    .unwrap_or(crate::outbound::twilio::DEFAULT_API_BASE),
                account_sid,
                auth_token,
                public_url.map(|url| format!("{url}{TWILIO_STATUS_PATH}")),
            )?)
        }
        ProviderKind::Telnyx => {
            let api_key = settings
                .api_key
                .as_deref()
                .context("[provider] kind = \"telnyx\" needs api_key")?;
            Arc::new(TelnyxProvider::new(
                settings
                    .api_base
                    .as_deref()
                    .unwrap_or(crate::outbound::telnyx::DEFAULT_API_BASE),
                api_key,
                public_url.map(|url| format!("{url}{TELNYX_PATH}")),
            )?)
        }
    })
}
