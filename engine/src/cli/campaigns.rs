//! `smsflow campaigns create|list|show|pause|resume|cancel`: through the running server's
//! operator API (`[server] api_token`), since the server is what runs campaigns.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use super::records::Api;
use crate::config::Config;

/// `smsflow campaigns ...`.
#[derive(Debug, Subcommand)]
pub(super) enum CampaignsCommand {
    /// Send a flow to a segment: prints the campaign's id (the same again for the same key).
    Create {
        /// The flow (it must take API starts).
        #[arg(long)]
        flow: String,
        /// The segment query, or @name for a saved one.
        #[arg(long)]
        segment: String,
        /// An idempotency key: creating again with it answers the same campaign.
        #[arg(long)]
        key: Option<String>,
        /// A field every start gets: name=value (repeatable).
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
        /// `skip`, `interrupt` or `queue`: what to do with a contact already in a run.
        #[arg(long, default_value = "skip")]
        start_mode: String,
        /// The share held out as a control group, 0 to 100.
        #[arg(long, default_value_t = 0.0)]
        holdout_percent: f64,
        /// Starts per second.
        #[arg(long)]
        messages_per_second: Option<f64>,
        /// When to begin (RFC 3339); now when absent.
        #[arg(long)]
        start_at: Option<String>,
    },
    /// Every campaign and its counts, a line of JSON each.
    List,
    /// One campaign's state and counts.
    Show {
        /// Its id.
        id: String,
    },
    /// Stop a campaign for now.
    Pause {
        /// Its id.
        id: String,
    },
    /// Go on with a paused campaign.
    Resume {
        /// Its id.
        id: String,
    },
    /// Stop a campaign for good.
    Cancel {
        /// Its id.
        id: String,
    },
}

/// Runs `smsflow campaigns ...`.
///
/// # Errors
///
/// When the server cannot be reached or refuses.
pub(super) async fn run(command: CampaignsCommand, config: &Path) -> anyhow::Result<ExitCode> {
    let api = Api::new(&Config::from_file(config)?)
        .context("campaigns run in the server: start `smsflow serve`")?;
    let answer = match command {
        CampaignsCommand::Create {
            flow,
            segment,
            key,
            fields,
            start_mode,
            holdout_percent,
            messages_per_second,
            start_at,
        } => {
            let body = json!({
                "key": key,
                "flow": flow,
                "segment": segment,
                "fields": parse_fields(&fields)?,
                "start_mode": start_mode,
                "holdout_percent": holdout_percent,
                "messages_per_second": messages_per_second,
                "start_at": start_at,
            });
            let answer = api
                .post(
                    "/v1/campaigns",
                    "application/json",
                    serde_json::to_vec(&body)?,
                )
                .await?;
            let answer: Value = serde_json::from_str(&answer)?;
            println!("{}", answer["id"].as_str().unwrap_or_default());
            return Ok(ExitCode::SUCCESS);
        }
        CampaignsCommand::List => {
            let answer: Value = serde_json::from_str(&api.get("/v1/campaigns").await?)?;
            for campaign in answer["campaigns"].as_array().into_iter().flatten() {
                println!("{campaign}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        CampaignsCommand::Show { id } => api.get(&format!("/v1/campaigns/{id}")).await?,
        CampaignsCommand::Pause { id } => change(&api, &id, "pause").await?,
        CampaignsCommand::Resume { id } => change(&api, &id, "resume").await?,
        CampaignsCommand::Cancel { id } => change(&api, &id, "cancel").await?,
    };
    let answer: Value = serde_json::from_str(&answer)?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(ExitCode::SUCCESS)
}

async fn change(api: &Api, id: &str, change: &str) -> anyhow::Result<String> {
    api.post(
        &format!("/v1/campaigns/{id}/{change}"),
        "application/json",
        "{}",
    )
    .await
}

/// `name=value` pairs.
fn parse_fields(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .with_context(|| format!("--field `{pair}`: write name=value"))
        })
        .collect()
}
