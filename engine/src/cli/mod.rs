//! The `smsflow` command line.

mod agents;
mod campaigns;
mod chat;
mod contacts;
mod flows;
mod plugin;
mod records;
mod report;
mod seed;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::store::Store;

/// smsflow: two-way SMS workflows with sandboxed plugins and compliance in the host.
#[derive(Debug, Parser)]
#[command(name = "smsflow", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// The nodes, who owns each partition at which epoch, how far each has applied.
    Status {
        /// As JSON (each node's report).
        #[arg(long)]
        json: bool,
    },
}

/// `smsflow cluster status`.
async fn cluster_status(config: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(config)?;
    let cluster = config
        .cluster
        .context("`smsflow cluster status` needs a [cluster] section in the config")?;
    let status = crate::cluster::status::ClusterStatus::read(&cluster).await?;
    match json {
        true => println!("{}", serde_json::to_string_pretty(&status.nodes)?),
        false => print!("{}", status.render()),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine: the operator API, flows, timers and the outbox.
    Serve {
        /// The configuration file.
        #[arg(long, default_value = "smsflow.toml")]
        config: PathBuf,
    },
    /// Write, build, inspect and try plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Cluster mode: `status` shows the nodes, partitions, owners, epochs and lag.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
        /// The configuration file with `[cluster]`.
        #[arg(long, default_value = "smsflow.toml", global = true)]
        config: PathBuf,
    },
    /// Inbound texts that failed every processing attempt. `list` works with the server
    /// stopped (from the store) or running (through its operator API); `replay` needs it stopped.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
        /// The configuration file naming the store.
        #[arg(long, default_value = "smsflow.toml", global = true)]
        config: PathBuf,
    },
    /// Inbound texts acknowledged and not yet processed: from the store with the server
    /// stopped, through its operator API while it runs (read-only either way).
    Inbox {
        /// The configuration file naming the store.
        #[arg(long, default_value = "smsflow.toml")]
        config: PathBuf,
    },
    /// The agents who answer handed-off conversations (with the server stopped, or through its
    /// operator API while it runs).
    Agents {
        #[command(subcommand)]
        command: agents::AgentsCommand,
        /// The configuration file naming the store.
        #[arg(long, default_value = "smsflow.toml", global = true)]
        config: PathBuf,
    },
    /// Contacts: import a CSV, export them (with the server stopped, or through its operator
    /// API while it runs).
    Contacts {
        #[command(subcommand)]
        command: contacts::ContactsCommand,
        /// The configuration file naming the store.
        #[arg(long, default_value = "smsflow.toml", global = true)]
        config: PathBuf,
    },
    /// The funnel, the rates and the A/B verdict (table, JSON or CSV; --svg draws them).
    Report(Box<report::ReportArgs>),
    /// Campaigns: a flow sent to a segment, paced (through the running server).
    Campaigns {
        #[command(subcommand)]
        command: campaigns::CampaignsCommand,
        /// The configuration file naming the server.
        #[arg(long, default_value = "smsflow.toml", global = true)]
        config: PathBuf,
    },
    /// Segments of contacts: try a query.
    Segments {
        #[command(subcommand)]
        command: contacts::SegmentsCommand,
        /// The configuration file naming the store.
        #[arg(long, default_value = "smsflow.toml", global = true)]
        config: PathBuf,
    },
    /// The consent ledger, read-only: from the store with the server stopped, through its
    /// operator API while it runs.
    Consent {
        #[command(subcommand)]
        command: ConsentCommand,
        /// The configuration file naming the store.
        #[arg(long, default_value = "smsflow.toml", global = true)]
        config: PathBuf,
    },
    /// Sign and post an inbound text to a running server, as Twilio would.
    SendTest {
        /// The contact's number.
        #[arg(long, default_value = "+15555550100")]
        from: String,
        /// The text.
        text: String,
        /// The configuration file (server address, public URL, auth token, our number).
        #[arg(long, default_value = "smsflow.toml")]
        config: PathBuf,
    },
    /// Fill a store with idle conversations and pending timers, for the benchmarks (run it with
    /// the server stopped).
    #[command(hide = true)]
    BenchSeed {
        /// The configuration file naming the store and the flows.
        #[arg(long, default_value = "smsflow.toml")]
        config: PathBuf,
        /// Conversations waiting for a reply.
        #[arg(long)]
        conversations: u64,
        /// How many of them have their wait's timeout set.
        #[arg(long, default_value_t = 0)]
        timers: u64,
        /// How many of those timers are due at once (the rest in a day).
        #[arg(long, default_value_t = 100)]
        due_now: u64,
        /// The flow they wait in.
        #[arg(long, default_value = "appointment-confirmation")]
        flow: String,
    },
    /// Check flow files against each other and the plugins; report each problem at its
    /// file:line:column, and each template's SMS segment count. Exits 1 on any problem.
    Check {
        /// A flow file, or a folder of them.
        path: PathBuf,
        /// Take the plugins folder and grants from this smsflow.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The folder of plugin components (`<name>.wasm` and `<name>.plugin.toml`); beats
        /// the config's `[plugins] dir` (default `target/plugins`).
        #[arg(long, value_name = "DIR")]
        plugins: Option<PathBuf>,
    },
    /// Talk to a flow as its contact, on a simulated clock: each line typed is a text from
    /// the contact; `/start k=v`, `/wait 2h`, `/status`, `/help`, `/quit` are commands. Nothing
    /// reaches a phone. Exits 1 when a line was refused.
    Chat(chat::ChatArgs),
    /// Run flow scenario files (`*.test.toml`) against the real runtime and plugins, on a
    /// simulated clock. Exits 1 when a scenario fails.
    Test {
        /// A scenario file, or a folder of flows and their scenario files.
        path: PathBuf,
        /// Run under this smsflow.toml: its plugins and grants, and its `[compliance]` and
        /// `[programs]` policy (quiet-hours exemptions, opt-out scope, texts).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The folder of plugin components; beats the config's `[plugins] dir`.
        #[arg(long, value_name = "DIR")]
        plugins: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConsentCommand {
    /// Check the ledger's hash chain; exits 1 naming the first broken record.
    Verify,
    /// Print every consent record of a number.
    Export {
        /// The number, E.164.
        number: String,
        /// `json` or `csv`.
        #[arg(long, default_value = "json")]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Print each dead letter as a line of JSON.
    List,
    /// Move dead letters back into the inbox, to be processed at the next start.
    Replay {
        /// Only this one (its `seq`); all when absent.
        seq: Option<u64>,
    },
}

impl Cli {
    /// Runs the command.
    ///
    /// # Errors
    ///
    /// Whatever the command failed with; `main` prints it.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Plugin(command) => plugin::run(command).await,
            Command::Serve { config } => {
                crate::server::serve(Config::from_file(&config)?).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Dlq {
                command: DlqCommand::List,
                config,
            } => records::run(records::Record::DeadLetters, &config).await,
            Command::Dlq {
                command: DlqCommand::Replay { seq },
                config,
            } => dlq_replay(seq, &config),
            Command::Inbox { config } => records::run(records::Record::Inbox, &config).await,
            Command::Consent { command, config } => {
                records::run(consent_record(command), &config).await
            }
            Command::Agents { command, config } => agents::run(command, &config).await,
            Command::Contacts { command, config } => contacts::run(command, &config).await,
            Command::Segments { command, config } => contacts::segments(command, &config).await,
            Command::Campaigns { command, config } => campaigns::run(command, &config).await,
            Command::Report(args) => report::run(*args).await,
            Command::SendTest { from, text, config } => send_test(&from, &text, &config).await,
            Command::Check {
                path,
                config,
                plugins,
            } => flows::check(&path, config.as_deref(), plugins).await,
            Command::BenchSeed {
                config,
                conversations,
                timers,
                due_now,
                flow,
            } => {
                let config = seed::config(&config)?;
                let clock = crate::clock::from_env()?;
                let written = seed::seed(
                    &config,
                    &seed::Seed {
                        conversations,
                        timers,
                        due_now: due_now.min(timers),
                        flow,
                        now_ms: clock.now_ms(),
                    },
                )?;
                // The benchmark reads this line: a conversation whose deadline is due at once.
                let due = (due_now.min(timers) > 0).then(|| seed::contact(0));
                println!(
                    "{}",
                    serde_json::json!({ "seeded": written, "due_contact": due })
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Test {
                path,
                config,
                plugins,
            } => flows::test(&path, config.as_deref(), plugins).await,
            Command::Chat(args) => chat::run(args).await,
            Command::Cluster {
                command: ClusterCommand::Status { json },
                config,
            } => cluster_status(&config, json).await,
        }
    }
}

/// The store `config` names, opened while the server is stopped.
fn offline_store(config: &Path) -> anyhow::Result<Store> {
    let config = Config::from_file(config)?;
    Store::open(&config.store.path)
        .context("is `smsflow serve` running? stop it first: it holds the store")
}

/// What `smsflow consent ...` reads.
fn consent_record(command: ConsentCommand) -> records::Record {
    match command {
        ConsentCommand::Verify => records::Record::ConsentVerify,
        ConsentCommand::Export { number, format } => records::Record::ConsentExport {
            number,
            csv: matches!(format, ExportFormat::Csv),
        },
    }
}

/// The inbox of the store `config` names, opened while the server is stopped.
fn offline_inbox(config: &Path) -> anyhow::Result<crate::inbox::Inbox> {
    let store = offline_store(config)?;
    Ok(crate::inbox::Inbox::new(
        &store,
        Arc::new(SystemClock),
        crate::inbox::InboxSettings::default(),
    ))
}

/// `smsflow dlq replay`: a write, so only with the server stopped.
fn dlq_replay(seq: Option<u64>, config: &Path) -> anyhow::Result<ExitCode> {
    let moved = offline_inbox(config)?.replay(seq)?;
    println!("{moved} moved back to the inbox");
    Ok(if seq.is_some() && moved == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn send_test(from: &str, text: &str, config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(config_path)?;
    let auth_token = config
        .provider
        .auth_token
        .as_deref()
        .context("send-test signs like Twilio: set [provider] auth_token")?;
    let public_url = config
        .server
        .public_url
        .as_deref()
        .context("send-test signs for [server] public_url: set it")?
        .trim_end_matches('/');
    let store_free_id = format!(
        "SMtest{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos())
    );
    let params: Vec<(String, String)> = [
        ("MessageSid", store_free_id.as_str()),
        ("AccountSid", "ACtest"),
        ("From", from),
        ("To", config.provider.from.as_str()),
        ("Body", text),
        ("NumMedia", "0"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    let path = crate::ingress::TWILIO_INBOUND_PATH;
    let signature =
        crate::ingress::twilio::signature(&format!("{public_url}{path}"), &params, auth_token);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let response = reqwest::Client::new()
        .post(format!("http://{}{path}", config.server.listen))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await
        .with_context(|| format!("is smsflow serving on {}?", config.server.listen))?;
    let status = response.status();
    println!("{status} {}", response.text().await.unwrap_or_default());
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
