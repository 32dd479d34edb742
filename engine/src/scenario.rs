//! Scenario tests for flows (`flows/<flow>.test.toml`), run by `smsflow test` against the real
//! runtime and the real plugins, on a simulated clock, with no phone.
//!
//! Each scenario runs in a fresh [`Simulation`]: a new store, in an engine built like the
//! server's ([`crate::engine`]) from the operator's config (`smsflow test --config`): its `[compliance]`
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

use crate::config::Config;
use crate::flow::check::CheckLimits;
use crate::flow::conversation::{Conversation, Entry, Event, Status};
use crate::plugin::Grant;
use crate::simulation::{
    DEFAULT_CONTACT, Simulation, Simulator, StartError, Text, Turn, parse_instant,
};

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
    let grants = resolve_grants(&file.grants, mock_url.as_deref());
    let mut simulator = Simulator::new(config, |manifest| {
        grants
            .get(&manifest.name)
            .cloned()
            .unwrap_or_else(|| config.plugins.tool_grant(manifest))
    })
    .await?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let errors = simulator.load_flows(folder, limits);
    if !errors.is_empty() {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("the flows do not load:\n{}", errors.join("\n"));
    }
    if !simulator.flows().iter().any(|flow| flow.id == file.flow) {
        anyhow::bail!(
            "{}: flow `{}` is not in {}",
            path.display(),
            file.flow,
            folder.display()
        );
    }
    report.unrun = 0;
    for scenario in &file.scenarios {
        let failures = match simulation_for(&simulator, &file.flow, scenario, start_ms).await {
            Ok(mut simulation) => run_scenario(&mut simulation, scenario).await,
            Err(error) => vec![format!("cannot set up: {error:#}")],
        };
        report.scenarios.push(ScenarioReport {
            name: scenario.name.clone(),
            steps: scenario.steps.len(),
            failures,
        });
    }
    Ok(())
}

/// A fresh simulation for one scenario, its clock at the file's start.
async fn simulation_for(
    simulator: &Simulator<'_>,
    flow: &str,
    scenario: &Scenario,
    start_ms: i64,
) -> anyhow::Result<Simulation> {
    let contact = scenario.contact.as_deref().unwrap_or(DEFAULT_CONTACT);
    simulator
        .simulation(flow, contact, scenario.locale.as_deref(), start_ms)
        .await
}

async fn run_scenario(simulation: &mut Simulation, scenario: &Scenario) -> Vec<String> {
    let mut failures = Vec::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        let label = step_label(index, step);
        match run_step(simulation, step).await {
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

/// Runs the step's action, then checks its expectations.
async fn run_step(simulation: &mut Simulation, step: &ScenarioStep) -> anyhow::Result<Vec<String>> {
    let turn = match (&step.start, &step.inbound, &step.advance) {
        (Some(fields), None, None) => match start(simulation, fields, step).await? {
            Ok(turn) => turn,
            Err(verdict) => return Ok(verdict),
        },
        (None, Some(text), None) => simulation.inbound(text).await?,
        (None, None, Some(duration)) => {
            let duration = humantime::parse_duration(duration)
                .with_context(|| format!("`{duration}` is not a duration"))?;
            simulation.advance(duration).await?
        }
        _ => anyhow::bail!("a step needs exactly one of `start`, `inbound`, `advance`"),
    };
    let conversation = simulation.conversation()?;
    Ok(check_step(&turn, conversation.as_ref(), step))
}

/// A start; `Err` holds the step's verdict when the start was refused (or should have been).
async fn start(
    simulation: &mut Simulation,
    fields: &BTreeMap<String, String>,
    step: &ScenarioStep,
) -> anyhow::Result<Result<Turn, Vec<String>>> {
    Ok(
        match (simulation.start(fields).await, step.expect_error.as_deref()) {
            (Ok(_), Some(expected)) => Err(vec![format!(
                "the start was accepted; expected it refused with \"{expected}\""
            )]),
            (Ok(turn), None) => Ok(turn),
            (Err(StartError::Failed(error)), _) => return Err(error),
            (Err(StartError::Refused(error)), Some(expected)) => {
                let message = error.to_string();
                Err(if message.contains(expected) {
                    Vec::new()
                } else {
                    vec![format!(
                        "the start was refused with \"{message}\"; expected \"{expected}\""
                    )]
                })
            }
            (Err(StartError::Refused(error)), None) => {
                Err(vec![format!("the start was refused: {error}")])
            }
        },
    )
}

/// The expectations of `step`, checked against its turn and the conversation after it.
fn check_step(
    turn: &Turn,
    conversation: Option<&Conversation>,
    step: &ScenarioStep,
) -> Vec<String> {
    let status = conversation.map(|c| &c.status);
    let mut problems = Vec::new();
    check_texts(step, &turn.entries, &mut problems);
    check_status(step, status, &mut problems);
    if let Some(expected) = &step.expect_fields {
        let fields = conversation.map(|c| &c.fields);
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
        // The gate's latest decision on each text the step queued.
        let decisions: Vec<&str> = turn.texts.iter().map(Text::decision).collect();
        if decisions != *expected {
            problems.push(format!(
                "the gate decided {decisions:?}, expected {expected:?}"
            ));
        }
    }
    problems
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
