//! Scenario tests for flows (`flows/<flow>.test.toml`), run by `smsflow test` against the real
//! runtime and the real plugins, on a simulated clock, with no phone.
//!
//! Each scenario runs on a fresh store, in an engine built like the server's
//! ([`crate::engine`]) from the operator's config (`smsflow test --config`): its `[compliance]`
//! and `[programs]` apply, and inbound texts go through the same accept pipeline. A file may
//! declare HTTP routes (`[[mock_http]]`) that a local server answers, for connector plugins
//! whose real API is not at hand, and plugin grants (`[grants.<plugin>]`) where `{{mock_url}}`
//! stands for that server's address.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use serde::Deserialize;

use crate::clock::{ManualClock, SharedClock};
use crate::config::Config;
use crate::engine::{Engine, EngineBuilder};
use crate::flow::check::CheckLimits;
use crate::flow::conversation::{Entry, Event, Status};
use crate::flow::runtime::{Outcome, RuntimeError, StartRequest};
use crate::flow::{Flow, check};
use crate::outbound::{Cleared, Provider, Receipt, SendError};
use crate::plugin::{Grant, PluginHost};
use crate::sms::InboundText;
use crate::store::Store;

/// Our number in scenarios.
pub const SCENARIO_OUR_NUMBER: &str = "+15550001000";
/// The contact of a scenario that names none.
pub const SCENARIO_CONTACT: &str = "+15555550100";
/// When the simulated clock starts unless the file says otherwise: a Monday, 10:00 in New York.
const DEFAULT_START: &str = "2026-01-05T15:00:00Z";
/// Stands for the mock server's base URL in grants.
const MOCK_URL: &str = "{{mock_url}}";

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// The flow under test.
    pub flow: String,
    /// When the simulated clock starts (RFC 3339).
    #[serde(default)]
    pub start_at: Option<String>,
    /// Routes the mock HTTP server answers.
    #[serde(default)]
    pub mock_http: Vec<MockRoute>,
    /// Plugin grants for the test, by plugin name.
    #[serde(default)]
    pub grants: BTreeMap<String, Grant>,
    /// The scenarios.
    pub scenarios: Vec<Scenario>,
}

/// One route of the mock HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockRoute {
    /// `GET`, `POST`, ...
    #[serde(default = "default_method")]
    pub method: String,
    /// The path, such as `/orders/A100`.
    pub path: String,
    /// The status code.
    #[serde(default = "default_status")]
    pub status: u16,
    /// The body, sent as `application/json`.
    #[serde(default)]
    pub body: String,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_status() -> u16 {
    200
}

/// One scenario: a contact and what happens, step by step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// The contact's number.
    #[serde(default)]
    pub contact: Option<String>,
    /// The contact's locale.
    #[serde(default)]
    pub locale: Option<String>,
    /// The steps.
    pub steps: Vec<ScenarioStep>,
}

/// One step: an action (exactly one of `start`, `inbound`, `advance`) and what must follow.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioStep {
    /// Start the flow through the API with these fields.
    pub start: Option<BTreeMap<String, String>>,
    /// A text from the contact.
    pub inbound: Option<String>,
    /// Move the clock forward (`"24h"`); due timers fire.
    pub advance: Option<String>,
    /// The exact texts sent, in order.
    pub expect_replies: Option<Vec<String>>,
    /// Substrings that must each appear in a text sent.
    pub expect_replies_contain: Option<Vec<String>>,
    /// The steps entered, in order.
    pub expect_route: Option<Vec<String>>,
    /// Field values after the step.
    pub expect_fields: Option<BTreeMap<String, String>>,
    /// `idle`, `waiting`, `handed_off`, `ended`.
    pub expect_status: Option<String>,
    /// The outcome of an ended run.
    pub expect_outcome: Option<String>,
    /// The queue of a handoff.
    pub expect_handoff: Option<String>,
    /// Part of the error a `start` must be refused with.
    pub expect_error: Option<String>,
    /// The compliance gate's decision on each text queued in the step, in order (`sent`,
    /// `deferred`, `blocked`): the operator's `[compliance]` and `[programs]` decide
    /// (`smsflow test --config`).
    pub expect_gate: Option<Vec<String>>,
}

/// What happened to one scenario.
#[derive(Debug)]
pub struct ScenarioReport {
    /// Its name.
    pub name: String,
    /// Steps run.
    pub steps: usize,
    /// Why it failed; empty when it passed.
    pub failures: Vec<String>,
}

/// What happened to one file.
#[derive(Debug)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// A problem that stopped the whole file (it does not parse, its flows do not load).
    pub error: Option<String>,
    /// Each scenario's result.
    pub scenarios: Vec<ScenarioReport>,
    /// How many scenarios the file holds that `error` stopped from running (0 when the file
    /// did not parse far enough to count them).
    pub unrun: usize,
}

impl FileReport {
    /// Whether everything in the file passed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.scenarios.iter().all(|s| s.failures.is_empty())
    }
}

/// The scenario files at `path`: the file itself or every `*.test.toml` in the folder.
///
/// # Errors
///
/// When the folder cannot be read.
pub fn scenario_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|file| {
            file.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(".test.toml"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Runs one scenario file under the operator's `config`; the flows are those in the file's
/// folder, checked against `limits`.
pub async fn run_file(path: &Path, config: &Config, limits: &CheckLimits) -> FileReport {
    let mut report = FileReport {
        path: path.to_owned(),
        error: None,
        scenarios: Vec::new(),
        unrun: 0,
    };
    match run_file_inner(path, config, limits, &mut report).await {
        Ok(()) => {}
        Err(error) => report.error = Some(format!("{error:#}")),
    }
    report
}

async fn run_file_inner(
    path: &Path,
    config: &Config,
    limits: &CheckLimits,
    report: &mut FileReport,
) -> anyhow::Result<()> {
    let plugins_config = &config.plugins;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: ScenarioFile = toml::from_str(&text).map_err(|error| {
        let at = error.span().map_or(0, |span| span.start);
        let location = crate::flow::diagnostic::SourceMap::new(path, &text).locate(at);
        anyhow!(
            "{}:{}:{}: {}",
            path.display(),
            location.line,
            location.column,
            error.message()
        )
    })?;
    // Until every scenario can run, a problem below stops all of them.
    report.unrun = file.scenarios.len();
    let start_ms = parse_instant(file.start_at.as_deref().unwrap_or(DEFAULT_START))?;
    let mock_url = match file.mock_http.is_empty() {
        true => None,
        false => Some(serve_mock(file.mock_http.clone()).await?),
    };
    let clock = Arc::new(ManualClock::new(start_ms));
    let shared_clock: SharedClock = clock.clone();
    let kv_store = Store::temporary()?;
    let mut host = PluginHost::new(
        plugins_config,
        kv_store.tables().plugin_kv,
        shared_clock.clone(),
    )?;
    let grants = resolve_grants(&file.grants, mock_url.as_deref());
    host.load_dir_with(&plugins_config.dir, |manifest| {
        grants
            .get(&manifest.name)
            .cloned()
            .unwrap_or_else(|| plugins_config.tool_grant(manifest))
    })
    .await?;
    let host = Arc::new(host);
    let folder = path.parent().unwrap_or(Path::new("."));
    let loaded = check::load(folder, Some(&host), limits);
    if !loaded.errors.is_empty() {
        let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("the flows do not load:\n{}", errors.join("\n"));
    }
    if !loaded.flows.iter().any(|flow| flow.id == file.flow) {
        anyhow::bail!(
            "{}: flow `{}` is not in {}",
            path.display(),
            file.flow,
            folder.display()
        );
    }
    report.unrun = 0;
    for scenario in &file.scenarios {
        clock.set(start_ms);
        let setup = Setup {
            config,
            flows: &loaded.flows,
            host: &host,
            clock: &clock,
            shared_clock: &shared_clock,
        };
        let failures = run_scenario(&file.flow, scenario, &setup).await;
        report.scenarios.push(ScenarioReport {
            name: scenario.name.clone(),
            steps: scenario.steps.len(),
            failures,
        });
    }
    Ok(())
}

/// The provider of scenarios: takes every text the gate clears and sends nothing.
#[derive(Debug)]
struct Unsent;

impl Provider for Unsent {
    fn name(&self) -> &'static str {
        "scenario"
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

/// What every scenario of a file runs with.
struct Setup<'a> {
    config: &'a Config,
    flows: &'a [Flow],
    host: &'a Arc<PluginHost>,
    clock: &'a Arc<ManualClock>,
    shared_clock: &'a SharedClock,
}

impl Setup<'_> {
    /// A fresh engine for one scenario: a temporary store, the simulated clock, the file's
    /// plugins and flows, the operator's policy. Its workers never run: steps drive it.
    async fn engine(&self) -> anyhow::Result<Engine> {
        EngineBuilder::from_config(self.config)
            .store(Store::temporary()?)
            .clock(self.shared_clock.clone())
            .provider(Arc::new(Unsent))
            .plugins(Arc::clone(self.host))
            .flows(self.flows.to_vec())
            .build()
            .await
    }
}

async fn run_scenario(flow: &str, scenario: &Scenario, setup: &Setup<'_>) -> Vec<String> {
    let engine = match setup.engine().await {
        Ok(engine) => engine,
        Err(error) => return vec![format!("cannot set up: {error:#}")],
    };
    let contact = scenario.contact.as_deref().unwrap_or(SCENARIO_CONTACT);
    let mut failures = Vec::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        let label = step_label(index, step);
        let run = StepRun {
            engine: &engine,
            flow,
            scenario,
            contact,
            index,
        };
        match run.run(step, setup.clock).await {
            Ok(problems) => failures.extend(
                problems
                    .into_iter()
                    .map(|problem| format!("{label}: {problem}")),
            ),
            Err(error) => failures.push(format!("{label}: {error:#}")),
        }
        if !failures.is_empty() {
            // Later steps depend on this one; their failures would only repeat it.
            break;
        }
    }
    failures
}

fn step_label(index: usize, step: &ScenarioStep) -> String {
    let action = match (&step.start, &step.inbound, &step.advance) {
        (Some(_), _, _) => "start".to_owned(),
        (_, Some(text), _) => format!("inbound {text:?}"),
        (_, _, Some(duration)) => format!("advance {duration}"),
        _ => "no action".to_owned(),
    };
    format!("step {} ({action})", index + 1)
}

/// One step of one scenario.
struct StepRun<'a> {
    engine: &'a Engine,
    flow: &'a str,
    scenario: &'a Scenario,
    contact: &'a str,
    index: usize,
}

impl StepRun<'_> {
    /// Runs the step's action, then checks its expectations.
    async fn run(&self, step: &ScenarioStep, clock: &ManualClock) -> anyhow::Result<Vec<String>> {
        let actions = [
            step.start.is_some(),
            step.inbound.is_some(),
            step.advance.is_some(),
        ];
        if actions.iter().filter(|&&action| action).count() != 1 {
            anyhow::bail!("a step needs exactly one of `start`, `inbound`, `advance`");
        }
        let runtime = self.engine.runtime();
        let before = runtime.transcript(SCENARIO_OUR_NUMBER, self.contact)?.len();
        if let Some(fields) = &step.start {
            if let Some(refusal) = self.start(fields, step.expect_error.as_deref()).await? {
                return Ok(refusal);
            }
        } else if let Some(text) = &step.inbound {
            self.inbound(text).await?;
        } else if let Some(duration) = &step.advance {
            let duration = humantime::parse_duration(duration)
                .with_context(|| format!("`{duration}` is not a duration"))?;
            clock.advance(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX));
            runtime.fire_due_timers().await?;
        }
        // Through the gate, as the server's outbox would, so `expect_gate` sees its decisions.
        while self.engine.outbox().deliver_due().await? > 0 {}
        check_step(self.engine, self.contact, before, step)
    }

    /// An API start; `Some` holds the step's verdict when the start was refused (or should
    /// have been).
    async fn start(
        &self,
        fields: &BTreeMap<String, String>,
        expect_error: Option<&str>,
    ) -> anyhow::Result<Option<Vec<String>>> {
        let request = StartRequest {
            flow: self.flow.to_owned(),
            from: SCENARIO_OUR_NUMBER.to_owned(),
            to: self.contact.to_owned(),
            fields: fields.clone(),
            locale: self.scenario.locale.clone(),
        };
        Ok(
            match (self.engine.runtime().start(request).await, expect_error) {
                (Ok(_), Some(expected)) => Some(vec![format!(
                    "the start was accepted; expected it refused with \"{expected}\""
                )]),
                (Err(RuntimeError::Store(error)), _) => return Err(error.into()),
                (Err(error), Some(expected)) => {
                    let message = error.to_string();
                    Some(if message.contains(expected) {
                        Vec::new()
                    } else {
                        vec![format!(
                            "the start was refused with \"{message}\"; expected \"{expected}\""
                        )]
                    })
                }
                (Err(error), None) => Some(vec![format!("the start was refused: {error}")]),
                (Ok(Outcome { .. }), None) => None,
            },
        )
    }

    /// A text from the contact, through the server's accept pipeline, then processed.
    async fn inbound(&self, text: &str) -> anyhow::Result<()> {
        let inbound = InboundText {
            provider: "scenario",
            message_id: format!("step-{}", self.index),
            from: self.contact.to_owned(),
            to: SCENARIO_OUR_NUMBER.to_owned(),
            body: text.to_owned(),
            num_media: 0,
        };
        self.engine.ingest().accept(inbound).await?;
        self.engine.process_inbox().await?;
        Ok(())
    }
}

/// The expectations of `step`, checked against what happened since entry `before`.
fn check_step(
    engine: &Engine,
    contact: &str,
    before: usize,
    step: &ScenarioStep,
) -> anyhow::Result<Vec<String>> {
    let runtime = engine.runtime();
    let transcript = runtime.transcript(SCENARIO_OUR_NUMBER, contact)?;
    let new_entries = transcript.get(before..).unwrap_or_default();
    let conversation = runtime.conversation(SCENARIO_OUR_NUMBER, contact)?;
    let status = conversation.as_ref().map(|c| &c.status);
    let mut problems = Vec::new();
    check_texts(step, new_entries, &mut problems);
    check_status(step, status, &mut problems);
    if let Some(expected) = &step.expect_fields {
        let fields = conversation.as_ref().map(|c| &c.fields);
        for (name, value) in expected {
            let actual = fields.and_then(|fields| fields.get(name));
            if actual != Some(value) {
                problems.push(format!(
                    "field `{name}` is {}, expected \"{value}\"",
                    actual.map_or_else(|| "not set".to_owned(), |v| format!("\"{v}\""))
                ));
            }
        }
    }
    if let Some(expected) = &step.expect_gate {
        let decisions = gate_decisions(engine, new_entries)?;
        if decisions != *expected {
            problems.push(format!(
                "the gate decided {decisions:?}, expected {expected:?}"
            ));
        }
    }
    Ok(problems)
}

/// `expect_replies`, `expect_replies_contain` and `expect_route`.
fn check_texts(step: &ScenarioStep, new_entries: &[Entry], problems: &mut Vec<String>) {
    let replies: Vec<&str> = new_entries
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::Outbound { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let route: Vec<&str> = new_entries
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::Step { step } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    if let Some(expected) = &step.expect_replies
        && replies != expected.iter().map(String::as_str).collect::<Vec<_>>()
    {
        problems.push(format!("the replies differ\n{}", diff(expected, &replies)));
    }
    for wanted in step.expect_replies_contain.iter().flatten() {
        if !replies.iter().any(|reply| reply.contains(wanted.as_str())) {
            problems.push(format!(
                "no reply contains \"{wanted}\"; the replies were:\n{}",
                quoted_lines(&replies)
            ));
        }
    }
    if let Some(expected) = &step.expect_route
        && route != expected.iter().map(String::as_str).collect::<Vec<_>>()
    {
        problems.push(format!(
            "the route differs: expected {}, got {}",
            expected.join(" -> "),
            route.join(" -> ")
        ));
    }
}

/// `expect_status`, `expect_outcome` and `expect_handoff`.
fn check_status(step: &ScenarioStep, status: Option<&Status>, problems: &mut Vec<String>) {
    if let Some(expected) = &step.expect_status {
        let actual = match status {
            None | Some(Status::Idle) => "idle",
            Some(Status::Waiting { .. }) => "waiting",
            Some(Status::HandedOff { .. }) => "handed_off",
            Some(Status::Ended { .. }) => "ended",
        };
        if actual != expected {
            problems.push(format!("the status is `{actual}`, expected `{expected}`"));
        }
    }
    if let Some(expected) = &step.expect_outcome {
        match status {
            Some(Status::Ended { outcome, .. }) if outcome.as_ref() == Some(expected) => {}
            other => problems.push(format!(
                "expected the run to end with outcome `{expected}`; it is {}",
                describe(other)
            )),
        }
    }
    if let Some(expected) = &step.expect_handoff {
        match status {
            Some(Status::HandedOff { queue, .. }) if queue == expected => {}
            other => problems.push(format!(
                "expected a handoff to `{expected}`; it is {}",
                describe(other)
            )),
        }
    }
}

/// The gate's latest decision on each text queued in `new_entries` (`queued` when it has not
/// decided yet).
fn gate_decisions(engine: &Engine, new_entries: &[Entry]) -> anyhow::Result<Vec<String>> {
    new_entries
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::Outbound { message_id, .. } => Some(message_id),
            _ => None,
        })
        .map(|id| {
            let message = engine.outbox().message(id)?;
            Ok(message
                .and_then(|message| message.gate)
                .map_or_else(|| "queued".to_owned(), |gate| gate.decision))
        })
        .collect()
}

fn describe(status: Option<&Status>) -> String {
    match status {
        None | Some(Status::Idle) => "idle".to_owned(),
        Some(Status::Waiting { step, .. }) => format!("waiting at `{step}`"),
        Some(Status::HandedOff { queue, reason, .. }) => {
            format!("handed off to `{queue}` ({reason})")
        }
        Some(Status::Ended { outcome, .. }) => match outcome {
            Some(outcome) => format!("ended with outcome `{outcome}`"),
            None => "ended with no outcome".to_owned(),
        },
    }
}

fn quoted_lines(lines: &[&str]) -> String {
    if lines.is_empty() {
        return "    (none)".to_owned();
    }
    lines
        .iter()
        .map(|line| format!("    {line:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A line diff of expected and actual texts: `-` expected only, `+` sent only.
fn diff(expected: &[String], actual: &[&str]) -> String {
    let expected = expected.join("\n") + "\n";
    let actual = actual.join("\n") + "\n";
    let mut out = String::new();
    for change in similar::TextDiff::from_lines(&expected, &actual).iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "-",
            similar::ChangeTag::Insert => "+",
            similar::ChangeTag::Equal => " ",
        };
        let _ = write!(out, "    {sign} {}", change.value());
    }
    out.trim_end().to_owned()
}

fn parse_instant(text: &str) -> anyhow::Result<i64> {
    let instant = humantime::parse_rfc3339_weak(text)
        .with_context(|| format!("`{text}` is not an RFC 3339 time"))?;
    let since_epoch = instant
        .duration_since(std::time::UNIX_EPOCH)
        .context("times before 1970 are not supported")?;
    Ok(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
}

/// The grants with `{{mock_url}}` replaced by the mock server's address.
fn resolve_grants(
    grants: &BTreeMap<String, Grant>,
    mock_url: Option<&str>,
) -> BTreeMap<String, Grant> {
    let Some(url) = mock_url else {
        return grants.clone();
    };
    let replace = |text: &str| text.replace(MOCK_URL, url);
    grants
        .iter()
        .map(|(name, grant)| {
            let mut grant = grant.clone();
            grant.http = grant.http.iter().map(|origin| replace(origin)).collect();
            for credential in &mut grant.credentials {
                credential.origin = replace(&credential.origin);
            }
            for (_, value) in grant.config.iter_mut() {
                if let toml::Value::String(text) = value {
                    *text = replace(text.as_str());
                }
            }
            (name.clone(), grant)
        })
        .collect()
}

/// Starts the mock HTTP server on a free loopback port; it lives as long as the process.
async fn serve_mock(routes: Vec<MockRoute>) -> anyhow::Result<String> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot start the mock HTTP server")?;
    let address = listener.local_addr()?;
    let routes = Arc::new(routes);
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let routes = Arc::clone(&routes);
        async move {
            let found = routes.iter().find(|route| {
                route.method.eq_ignore_ascii_case(request.method().as_str())
                    && route.path == request.uri().path()
            });
            match found {
                Some(route) => (
                    StatusCode::from_u16(route.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    [(header::CONTENT_TYPE, "application/json")],
                    route.body.clone(),
                )
                    .into_response(),
                None => (StatusCode::NOT_FOUND, "no mock route").into_response(),
            }
        }
    });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!("mock HTTP server: {error}");
        }
    });
    Ok(format!("http://{address}"))
}

/// Prints the reports the way `smsflow test` shows them; returns whether all passed.
pub fn print_reports(reports: &[FileReport]) -> bool {
    let mut passed = 0;
    let mut failed = 0;
    let mut unrun = 0;
    for report in reports {
        println!("{}", report.path.display());
        if let Some(error) = &report.error {
            // A file that did not parse far enough to count its scenarios counts as one.
            let count = report.unrun.max(1);
            unrun += count;
            println!("  ERROR {error}");
            println!(
                "  ({count} scenario{} not run)",
                if count == 1 { "" } else { "s" }
            );
            continue;
        }
        for scenario in &report.scenarios {
            if scenario.failures.is_empty() {
                passed += 1;
                println!("  ok    {} ({} steps)", scenario.name, scenario.steps);
            } else {
                failed += 1;
                println!("  FAIL  {}", scenario.name);
                for failure in &scenario.failures {
                    for line in failure.lines() {
                        println!("        {line}");
                    }
                }
            }
        }
    }
    let total = passed + failed + unrun;
    println!(
        "{total} scenario{}: {passed} passed, {failed} failed, {unrun} could not run",
        if total == 1 { "" } else { "s" }
    );
    failed == 0 && unrun == 0
}
