//! `smsflow chat`: talk to a flow as its contact would, at a terminal, on a simulated clock.
//!
//! Each line typed is a text from the contact; lines that begin with `/` are commands
//! (`/start`, `/wait`, `/status`, `/help`, `/quit`). The flow runs in a [`Simulation`], the
//! same engine `smsflow test` drives, so what a chat shows is what a scenario can assert: the
//! texts as the gate left them (deferred, blocked, with the opt-out wording), handoffs and the
//! route through the steps.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use std::io::{BufRead as _, Write as _};

use crate::compliance::gate::rfc3339;
use crate::flow::Flow;
use crate::flow::conversation::{Conversation, Event, Status};
use crate::flow::suggest::did_you_mean;
use crate::simulation::{Simulation, Simulator, StartError, Text, Turn, parse_instant};

/// What `smsflow chat` was asked to do.
#[derive(Debug, clap::Args)]
pub(super) struct ChatArgs {
    /// The flow: its id (looked up in --flows) or its file (the flows beside it load too).
    flow: String,
    /// The folder of flows an id is looked up in.
    #[arg(long, value_name = "DIR", default_value = "flows")]
    flows: PathBuf,
    /// The contact's number, E.164.
    #[arg(long = "as", value_name = "NUMBER", default_value = crate::simulation::DEFAULT_CONTACT)]
    contact: String,
    /// The contact's locale (which template variant they get), e.g. `es`.
    #[arg(long)]
    locale: Option<String>,
    /// Run under this smsflow.toml: its plugins, grants and compliance policy.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The folder of plugin components; beats the config's `[plugins] dir`.
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// When the simulated clock starts (RFC 3339, e.g. 2026-03-02T15:00:00Z); now when absent.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// One line typed at the chat.
#[derive(Debug, PartialEq)]
enum Line {
    /// Nothing to do (a blank line).
    Blank,
    /// A text from the contact.
    Text(String),
    /// `/start k=v ...`: start the flow as the API would.
    Start(BTreeMap<String, String>),
    /// `/wait 2h`: let time pass.
    Wait(Duration),
    /// `/status`.
    Status,
    /// `/help`.
    Help,
    /// `/quit`, `/exit`.
    Quit,
}

/// The commands, for `/help` and "did you mean".
const COMMANDS: [(&str, &str); 5] = [
    (
        "/start k=v ...",
        "start the flow as the API would, with these fields (quote values with spaces: date=\"March 3\")",
    ),
    (
        "/wait 2h",
        "let time pass (30m, 1d 2h): timers fire and held texts go out on the way",
    ),
    (
        "/status",
        "where the conversation is, its fields and the simulated time",
    ),
    ("/help", "this list"),
    ("/quit", "leave (so does end of input)"),
];

/// `smsflow chat`: exits 1 when a line was refused (a bad command, a refused start), so a
/// piped script notices.
pub(super) async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let contact = crate::phone::parse_e164(&args.contact)
        .with_context(|| format!("--as `{}` is not a phone number", args.contact))?;
    let start_ms = match &args.at {
        Some(at) => parse_instant(at).context("--at")?,
        None => now_ms(),
    };
    let (config, limits) = super::flows::tool_config(args.config.as_deref(), args.plugins)?;
    let mut simulator =
        Simulator::new(&config, |manifest| config.plugins.tool_grant(manifest)).await?;
    let (folder, wanted) = locate(&args.flow, &args.flows)?;
    let errors = simulator.load_flows(&folder, &limits);
    if !errors.is_empty() {
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "the flows in {} do not load (`smsflow check {}` shows the same):\n{}",
            folder.display(),
            folder.display(),
            errors.join("\n")
        );
    }
    let flow = pick(simulator.flows(), &wanted, &folder)?.clone();
    let mut simulation = simulator
        .simulation(&flow.id, &contact, args.locale.as_deref(), start_ms)
        .await?;
    let interactive = std::io::stdin().is_terminal();
    print!("{}", banner(&flow, &simulation));
    let mut chat = Chat {
        simulation: &mut simulation,
        last_status: None,
        refused: 0,
    };
    chat.repl(interactive).await?;
    Ok(if chat.refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The wall clock, in milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Which flow the user means.
#[derive(Debug, PartialEq)]
enum Wanted {
    /// The flow with this id.
    Id(String),
    /// The flow written in this file.
    File(PathBuf),
}

/// The folder to load and the flow wanted in it: a file loads the folder it is in (a flow
/// may hand over to the flows beside it); an id is looked up in `flows`.
fn locate(flow: &str, flows: &Path) -> anyhow::Result<(PathBuf, Wanted)> {
    let path = Path::new(flow);
    if path.is_file() {
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        return Ok((folder, Wanted::File(path.to_path_buf())));
    }
    if flow.ends_with(".toml") {
        anyhow::bail!("there is no flow file {flow}");
    }
    if !flows.is_dir() {
        anyhow::bail!(
            "no folder of flows at {}: name the flow's file, or the folder with --flows DIR",
            flows.display()
        );
    }
    Ok((flows.to_path_buf(), Wanted::Id(flow.to_owned())))
}

/// The loaded flow `wanted` names.
fn pick<'f>(flows: &'f [Flow], wanted: &Wanted, folder: &Path) -> anyhow::Result<&'f Flow> {
    let found = match wanted {
        Wanted::Id(id) => flows.iter().find(|flow| flow.id == *id),
        Wanted::File(file) => flows.iter().find(|flow| same_file(&flow.path, file)),
    };
    found.ok_or_else(|| {
        let ids: Vec<&str> = flows.iter().map(|flow| flow.id.as_str()).collect();
        match wanted {
            Wanted::Id(id) => anyhow::anyhow!(
                "no flow `{id}` in {}{}; the flows there: {}",
                folder.display(),
                did_you_mean(id, ids.iter().copied()),
                ids.join(", ")
            ),
            Wanted::File(file) => {
                anyhow::anyhow!("{} is not a flow (it has no `start`)", file.display())
            }
        }
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What the chat prints first: what this is and how to go on.
fn banner(flow: &Flow, simulation: &Simulation) -> String {
    let mut out = format!(
        "Chat with flow `{}` as {} (simulated clock at {}; nothing is sent to a phone).\n",
        flow.id,
        simulation.contact(),
        rfc3339(simulation.now_ms())
    );
    if !flow.description.is_empty() {
        out.push_str(&format!("  {}\n", flow.description));
    }
    if flow.triggers.api {
        let example: Vec<String> = flow
            .triggers
            .fields
            .iter()
            .map(|field| format!("{field}=..."))
            .collect();
        out.push_str(&format!(
            "  The API starts it: /start {}\n",
            example.join(" ")
        ));
    }
    if !flow.triggers.keywords.is_empty() {
        out.push_str(&format!(
            "  A text starts it: {}\n",
            flow.triggers
                .keywords
                .iter()
                .map(|keyword| keyword.to_uppercase())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if flow.triggers.catch_all {
        out.push_str("  Any text starts it (it catches texts no other flow takes).\n");
    }
    out.push_str("  Type a text as the contact; /help lists the commands.\n");
    out
}

/// A chat in progress.
struct Chat<'s> {
    simulation: &'s mut Simulation,
    /// The last state line printed, so an unchanged state is not repeated.
    last_status: Option<String>,
    /// Lines refused so far.
    refused: usize,
}

impl Chat<'_> {
    /// Reads lines until `/quit` or the end of input.
    async fn repl(&mut self, interactive: bool) -> anyhow::Result<()> {
        let mut lines = stdin_lines();
        let mut stdout = std::io::stdout();
        loop {
            if interactive {
                stdout.write_all(b"you> ")?;
                stdout.flush()?;
            }
            let Some(line) = lines.recv().await else {
                break;
            };
            let line = line.context("cannot read stdin")?;
            let output = match parse_line(&line) {
                Ok(Line::Quit) => break,
                Ok(line) => self.act(line).await?,
                Err(error) => {
                    self.refused += 1;
                    format!("error: {error}\n")
                }
            };
            stdout.write_all(output.as_bytes())?;
            stdout.flush()?;
        }
        Ok(())
    }

    /// Does what `line` says; returns what to print.
    async fn act(&mut self, line: Line) -> anyhow::Result<String> {
        let turn = match line {
            Line::Blank | Line::Quit => return Ok(String::new()),
            Line::Help => return Ok(help()),
            Line::Status => {
                let conversation = self.simulation.conversation()?;
                return Ok(status_report(
                    conversation.as_ref(),
                    self.simulation.now_ms(),
                ));
            }
            Line::Text(text) => self.simulation.inbound(&text).await?,
            Line::Wait(by) => {
                let turn = self.simulation.advance(by).await?;
                let mut out = format!(
                    "··· {} later: {}\n",
                    humantime::format_duration(by),
                    rfc3339(self.simulation.now_ms())
                );
                out.push_str(&self.after(&turn)?);
                return Ok(out);
            }
            Line::Start(fields) => match self.simulation.start(&fields).await {
                Ok(turn) => turn,
                Err(StartError::Refused(error)) => {
                    self.refused += 1;
                    return Ok(format!("error: the start was refused: {error}\n"));
                }
                Err(StartError::Failed(error)) => return Err(error),
            },
        };
        self.after(&turn)
    }

    /// The turn's lines, then the conversation's state when it changed.
    fn after(&mut self, turn: &Turn) -> anyhow::Result<String> {
        let mut out = render_turn(turn);
        let conversation = self.simulation.conversation()?;
        let status = state_line(conversation.as_ref(), self.simulation.now_ms());
        if self.last_status.as_ref() != Some(&status) {
            out.push_str(&status);
            self.last_status = Some(status);
        }
        if out.is_empty() {
            out.push_str("··· (no answer)\n");
        }
        Ok(out)
    }
}

/// The lines of stdin, read on a thread of their own (a blocking read must not hold one of
/// the runtime's workers); the channel closes at the end of input.
fn stdin_lines() -> tokio::sync::mpsc::Receiver<std::io::Result<String>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if sender.blocking_send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Reads one typed line.
fn parse_line(line: &str) -> Result<Line, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Line::Blank);
    }
    // `//` sends a text that begins with a slash.
    if let Some(text) = line.strip_prefix("//") {
        return Ok(Line::Text(format!("/{text}")));
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Line::Text(line.to_owned()));
    };
    let (name, rest) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    let rest = rest.trim();
    match name {
        "start" => parse_fields(rest).map(Line::Start),
        "wait" => parse_wait(rest).map(Line::Wait),
        "status" => Ok(Line::Status),
        "help" | "?" => Ok(Line::Help),
        "quit" | "exit" => Ok(Line::Quit),
        _ => Err(format!(
            "unknown command `/{name}`{} (/help lists them; to text a slash, type //)",
            did_you_mean(name, ["start", "wait", "status", "help", "quit"])
        )),
    }
}

/// `first_name=Ana date="March 3"`.
fn parse_fields(rest: &str) -> Result<BTreeMap<String, String>, String> {
    let words = shlex::split(rest).ok_or("an unclosed quote in the fields")?;
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
            _ => Err(format!(
                "`{word}` is not a field: write name=value, e.g. /start first_name=Ana"
            )),
        })
        .collect()
}

/// `2h`, `1d 2h`, `30m`.
fn parse_wait(rest: &str) -> Result<Duration, String> {
    if rest.is_empty() {
        return Err("/wait needs a duration, e.g. /wait 2h or /wait 1d 30m".to_owned());
    }
    humantime::parse_duration(rest)
        .map_err(|error| format!("`{rest}` is not a duration ({error}): write 30m, 2h or 1d 2h"))
}

fn help() -> String {
    let mut out = String::from("Any other line is a text from the contact.\n");
    for (usage, what) in COMMANDS {
        out.push_str(&format!("  {usage:<16} {what}\n"));
    }
    out
}

/// What a turn did, a line each: the bot's texts with the gate's decision, the route, the
/// classifier's answer, handoffs, errors and the end of the run.
fn render_turn(turn: &Turn) -> String {
    let mut out = String::new();
    for text in &turn.released {
        out.push_str(&text_lines(text, "(held earlier) "));
    }
    // What woke the run comes before where it went.
    for entry in &turn.entries {
        if let Event::TimedOut { step } = &entry.event {
            out.push_str(&format!("··· `{step}` timed out\n"));
        }
    }
    let route: Vec<&str> = turn
        .entries
        .iter()
        .filter_map(|entry| match &entry.event {
            Event::Step { step } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    if !route.is_empty() {
        out.push_str(&format!("··· route: {}\n", route.join(" → ")));
    }
    let mut texts = turn.texts.iter();
    for entry in &turn.entries {
        match &entry.event {
            Event::Outbound { .. } => {
                if let Some(text) = texts.next() {
                    out.push_str(&text_lines(text, ""));
                }
            }
            Event::Classified { intent, confidence } => {
                out.push_str(&format!("··· classified: {intent} ({confidence:.2})\n"));
            }
            Event::Error { step, message } => {
                out.push_str(&format!("!!! step `{step}` failed: {message}\n"));
            }
            Event::Handoff { queue, reason } => out.push_str(&format!(
                "--- handed off to `{queue}` ({reason}): a person answers now; the bot stays silent\n"
            )),
            Event::Ended { outcome } => out.push_str(&format!(
                "--- the run ended{}\n",
                outcome
                    .as_ref()
                    .map(|outcome| format!(": {outcome}"))
                    .unwrap_or_default()
            )),
            Event::Inbound { .. }
            | Event::Started { .. }
            | Event::Step { .. }
            | Event::TimedOut { .. } => {}
            Event::Variant { step, variant } => {
                out.push_str(&format!("··· `{step}` chose variant {variant}\n"));
            }
        }
    }
    out
}

/// `bot> ...` and, unless it went, why and until when the gate holds it.
fn text_lines(text: &Text, prefix: &str) -> String {
    let mut out = format!("bot> {prefix}{}\n", text.body);
    let gate = text.gate.as_ref();
    let reason = gate.and_then(|gate| gate.reason.as_deref()).unwrap_or("");
    match text.decision() {
        "sent" => {}
        "deferred" => out.push_str(&format!(
            "     (held by the gate until {}: {reason}; /wait to let it go)\n",
            gate.and_then(|gate| gate.until.as_deref())
                .unwrap_or("later")
        )),
        "blocked" => out.push_str(&format!(
            "     (blocked by the gate: {reason}; the contact never sees it)\n"
        )),
        other => out.push_str(&format!("     ({other})\n")),
    }
    out
}

/// One line on where the conversation is.
fn state_line(conversation: Option<&Conversation>, now_ms: i64) -> String {
    let state = match conversation.map(|conversation| &conversation.status) {
        None | Some(Status::Idle) => "no run yet".to_owned(),
        Some(Status::Waiting { step, until_ms }) => format!(
            "waiting at `{step}` for a reply; it times out in {} (/wait to get there)",
            humantime::format_duration(Duration::from_secs(
                u64::try_from((until_ms - now_ms).max(0) / 1000).unwrap_or(0)
            ))
        ),
        Some(Status::HandedOff { queue, .. }) => format!("with a person (queue `{queue}`)"),
        Some(Status::Ended { outcome, .. }) => format!(
            "ended{}; a new /start or a trigger text begins another run",
            outcome
                .as_ref()
                .map(|outcome| format!(" ({outcome})"))
                .unwrap_or_default()
        ),
    };
    format!("··· {state}\n")
}

/// `/status`: the state, the fields and the clock.
fn status_report(conversation: Option<&Conversation>, now_ms: i64) -> String {
    let mut out = format!("··· simulated time: {}\n", rfc3339(now_ms));
    out.push_str(&state_line(conversation, now_ms));
    if let Some(conversation) = conversation {
        if let Some(flow) = &conversation.flow {
            out.push_str(&format!(
                "··· flow: {} (version {})\n",
                flow.id, flow.version
            ));
        }
        for (name, value) in &conversation.fields {
            out.push_str(&format!("··· {name} = {value}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::conversation::Entry;
    use crate::store::outbox::GateRecord;

    #[test]
    fn lines_are_texts_unless_they_are_commands() {
        assert_eq!(parse_line("YES"), Ok(Line::Text("YES".to_owned())));
        assert_eq!(parse_line("   "), Ok(Line::Blank));
        assert_eq!(parse_line("//start"), Ok(Line::Text("/start".to_owned())));
        assert_eq!(parse_line("/quit"), Ok(Line::Quit));
        assert_eq!(parse_line("/status"), Ok(Line::Status));
        assert_eq!(
            parse_line("/wait 1d 2h"),
            Ok(Line::Wait(Duration::from_secs(26 * 3600)))
        );
        let Ok(Line::Start(fields)) = parse_line(r#"/start first_name=Ana date="March 3""#) else {
            panic!("not a start");
        };
        assert_eq!(fields["first_name"], "Ana");
        assert_eq!(fields["date"], "March 3");
    }

    #[test]
    fn bad_commands_say_how_to_mend_them() {
        let error = parse_line("/wiat 2h").unwrap_err();
        assert!(error.contains("did you mean `wait`"), "{error}");
        assert!(parse_line("/wait").unwrap_err().contains("/wait 2h"));
        assert!(
            parse_line("/wait soon")
                .unwrap_err()
                .contains("not a duration")
        );
        let error = parse_line("/start Ana").unwrap_err();
        assert!(error.contains("name=value"), "{error}");
        assert!(parse_line("/start a=\"b").unwrap_err().contains("quote"));
    }

    fn text(decision: &str, reason: Option<&str>, until: Option<&str>) -> Text {
        Text {
            message_id: "m1".to_owned(),
            step: "remind".to_owned(),
            text: "Hi".to_owned(),
            body: "Hi. Reply STOP to opt out.".to_owned(),
            gate: Some(GateRecord {
                decision: decision.to_owned(),
                reason: reason.map(str::to_owned),
                until: until.map(str::to_owned),
                at: "2026-01-05T15:00:00Z".to_owned(),
            }),
        }
    }

    fn entry(event: Event) -> Entry {
        Entry {
            seq: 0,
            at_ms: 0,
            event,
        }
    }

    #[test]
    fn a_turn_shows_route_texts_and_the_gate() {
        let turn = Turn {
            entries: vec![
                entry(Event::Step {
                    step: "remind".to_owned(),
                }),
                entry(Event::Outbound {
                    message_id: "m1".to_owned(),
                    text: "Hi".to_owned(),
                    step: "remind".to_owned(),
                    segments: 1,
                }),
                entry(Event::Handoff {
                    queue: "front-desk".to_owned(),
                    reason: "cue word".to_owned(),
                }),
            ],
            texts: vec![text(
                "deferred",
                Some("quiet hours"),
                Some("2026-01-06T13:00:00Z"),
            )],
            released: vec![],
        };
        let out = render_turn(&turn);
        assert_eq!(
            out,
            "··· route: remind\n\
             bot> Hi. Reply STOP to opt out.\n     (held by the gate until 2026-01-06T13:00:00Z: quiet hours; /wait to let it go)\n\
             --- handed off to `front-desk` (cue word): a person answers now; the bot stays silent\n"
        );
        let blocked = text_lines(&text("blocked", Some("no consent"), None), "");
        assert!(
            blocked.contains("blocked by the gate: no consent"),
            "{blocked}"
        );
        assert_eq!(
            text_lines(&text("sent", None, None), ""),
            "bot> Hi. Reply STOP to opt out.\n"
        );
    }

    #[test]
    fn ids_and_files_find_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "").unwrap();
        let (folder, wanted) = locate(file.to_str().unwrap(), Path::new("nowhere")).unwrap();
        assert_eq!(folder, dir.path());
        assert_eq!(wanted, Wanted::File(file));
        let (folder, wanted) = locate("greet", dir.path()).unwrap();
        assert_eq!(
            (folder.as_path(), wanted),
            (dir.path(), Wanted::Id("greet".to_owned()))
        );
        assert!(
            locate("missing.toml", dir.path())
                .unwrap_err()
                .to_string()
                .contains("no flow file")
        );
        assert!(
            locate("greet", Path::new("/nowhere"))
                .unwrap_err()
                .to_string()
                .contains("--flows")
        );
    }
}
