//! `smsflow agents add|list|disable`: the people who answer handed-off conversations.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::agents::{Agents, NewAgent};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::store::Store;
use crate::store::agents::{AgentRecord, Role};

/// What `smsflow agents` does.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Add an agent; the sign-in secret, shown once, is the last line of the output.
    Add {
        /// The agent's name: letters, digits, `-`, `_`.
        name: String,
        /// The queues the agent serves, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        queues: Vec<String>,
        /// A supervisor can also assign conversations to others.
        #[arg(long)]
        supervisor: bool,
    },
    /// Every agent, one line each.
    List,
    /// Refuse an agent's secret and sessions from now on.
    Disable {
        /// The agent's name.
        name: String,
    },
}

/// Runs `command` on the store `config` names or, while `smsflow serve` holds it, through the
/// server's operator API.
///
/// # Errors
///
/// When neither the store nor the server can be reached, or the change is refused.
pub async fn run(command: AgentsCommand, config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(config_path)?;
    let lines = match Store::open(&config.store.path) {
        Ok(store) => offline(command, &store)?,
        Err(offline_error) => online(command, &config).await.with_context(|| {
            format!("cannot open the store ({offline_error}), nor reach the running server")
        })?,
    };
    for line in lines {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The role `--supervisor` asks for.
fn role(supervisor: bool) -> Role {
    if supervisor {
        Role::Supervisor
    } else {
        Role::Agent
    }
}

/// The lines an added agent is announced with; its secret last.
fn added_lines(agent: &str, secret: String) -> Vec<String> {
    vec![
        format!("added {agent}"),
        "its sign-in secret, shown only now (smsflow keeps its hash):".to_owned(),
        secret,
    ]
}

/// `command` on the store itself, with the server stopped.
fn offline(command: AgentsCommand, store: &Store) -> anyhow::Result<Vec<String>> {
    let agents = Agents::new(store, Arc::new(SystemClock));
    let lines = match command {
        AgentsCommand::Add {
            name,
            queues,
            supervisor,
        } => {
            let role = role(supervisor);
            let added = agents.add(NewAgent { name, queues, role })?;
            added_lines(&describe(&added.agent), added.secret)
        }
        AgentsCommand::List => agents.list()?.iter().map(describe).collect(),
        AgentsCommand::Disable { name } => {
            let agent = agents.disable(&name)?;
            vec![format!("disabled {}", describe(&agent))]
        }
    };
    Ok(lines)
}

/// `command` through the running server's operator API (`[server] api_token`).
async fn online(command: AgentsCommand, config: &Config) -> anyhow::Result<Vec<String>> {
    let token = config
        .server
        .api_token
        .as_deref()
        .context("the server's operator API needs [server] api_token in the config")?;
    let base = format!("http://{}/v1/agents", config.server.listen);
    let client = reqwest::Client::new();
    let request = match &command {
        AgentsCommand::Add {
            name,
            queues,
            supervisor,
        } => client
            .post(&base)
            .header("content-type", "application/json")
            .body(json!({ "name": name, "queues": queues, "supervisor": supervisor }).to_string()),
        AgentsCommand::List => client.get(&base),
        AgentsCommand::Disable { name } => client.post(format!("{base}/{name}/disable")),
    };
    let response = request.bearer_auth(token).send().await?;
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
    if !status.is_success() {
        let error = body["error"].as_str().unwrap_or("no error message");
        anyhow::bail!("the server refused ({status}): {error}");
    }
    let lines = match command {
        AgentsCommand::Add { .. } => {
            let agent: AgentRecordView = serde_json::from_value(body.clone())?;
            let secret = body["secret"].as_str().unwrap_or_default().to_owned();
            added_lines(&agent.describe(), secret)
        }
        AgentsCommand::List => {
            let agents: Vec<AgentRecordView> = serde_json::from_value(body["agents"].clone())?;
            agents.iter().map(AgentRecordView::describe).collect()
        }
        AgentsCommand::Disable { .. } => {
            let agent: AgentRecordView = serde_json::from_value(body)?;
            vec![format!("disabled {}", agent.describe())]
        }
    };
    Ok(lines)
}

/// An agent as the API shows it.
#[derive(Debug, serde::Deserialize)]
struct AgentRecordView {
    name: String,
    queues: Vec<String>,
    role: Role,
    disabled: bool,
}

impl AgentRecordView {
    fn describe(&self) -> String {
        line(&self.name, self.role, &self.queues, self.disabled)
    }
}

/// `ana (agent; queues billing, support)`, with `disabled` when it is.
fn describe(agent: &AgentRecord) -> String {
    line(&agent.name, agent.role, &agent.queues, agent.disabled)
}

fn line(name: &str, role: Role, queues: &[String], disabled: bool) -> String {
    let role = match role {
        Role::Agent => "agent",
        Role::Supervisor => "supervisor",
    };
    let disabled = if disabled { "; disabled" } else { "" };
    format!("{name} ({role}; queues {}{disabled})", queues.join(", "))
}
