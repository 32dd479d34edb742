//! `smsflow campaigns create|list|show|pause|resume|cancel`: through the running server's
//! operator API (`[server] api_token`), since the server is what runs campaigns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use super::records::Api;
use crate::config::Config;
use crate::contacts::csv::{ContactRows, ImportOptions};

/// `smsflow campaigns ...`.
#[derive(Debug, Subcommand)]
pub(super) enum CampaignsCommand {
    /// Send a flow to a segment, a CSV or a list: prints the campaign's id (the same again for
    /// the same key).
    Create(Box<CreateArgs>),
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

/// `smsflow campaigns create`'s arguments.
#[derive(Debug, clap::Args)]
pub(super) struct CreateArgs {
    /// The flow (it must take API starts).
    #[arg(long)]
    flow: String,
    /// The segment query, or @name for a saved one (with --csv or --contact, a filter).
    #[arg(long, required_unless_present_any = ["csv", "contacts"])]
    segment: Option<String>,
    /// A CSV of contacts (as `contacts import` reads): imported, then its numbers are the
    /// audience.
    #[arg(long, value_name = "FILE.csv", conflicts_with = "contacts")]
    csv: Option<PathBuf>,
    /// A number in the audience (repeatable).
    #[arg(long = "contact", value_name = "PHONE")]
    contacts: Vec<String>,
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
    /// Run again `daily` or `weekly` at the same local time.
    #[arg(long, value_name = "daily|weekly")]
    repeat: Option<String>,
    /// The zone whose clock the rounds keep (and where a daily cap's days begin).
    #[arg(long, default_value = "UTC", requires = "repeat")]
    time_zone: String,
    /// Starts per local day at most.
    #[arg(long)]
    daily_cap: Option<u64>,
    /// Spread each round over this long (`4h`).
    #[arg(long)]
    spread_over: Option<String>,
    /// How long the texts stay worth sending (`6h`): one deferred past that expires.
    #[arg(long)]
    valid_for: Option<String>,
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
        CampaignsCommand::Create(args) => return create(&api, config, *args).await,
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

/// Creates the campaign `command` describes; a CSV is imported first.
async fn create(api: &Api, config: &Path, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let CreateArgs {
        flow,
        segment,
        csv,
        contacts,
        key,
        fields,
        start_mode,
        holdout_percent,
        messages_per_second,
        start_at,
        repeat,
        time_zone,
        daily_cap,
        spread_over,
        valid_for,
    } = args;
    let listed = match &csv {
        Some(file) => Some(csv_audience(api, config, file).await?),
        None if !contacts.is_empty() => Some(contacts),
        None => None,
    };
    let body = json!({
        "key": key,
        "flow": flow,
        "segment": segment,
        "contacts": listed,
        "fields": parse_fields(&fields)?,
        "start_mode": start_mode,
        "holdout_percent": holdout_percent,
        "messages_per_second": messages_per_second,
        "start_at": start_at,
        "repeat": repeat.map(|every| json!({"every": every, "time_zone": time_zone})),
        "daily_cap": daily_cap,
        "spread_over": spread_over,
        "valid_for": valid_for,
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
    Ok(ExitCode::SUCCESS)
}

/// Imports `file` through the server (fields, tags and consent columns as `contacts import`
/// reads them), then reads its numbers back: the rows the import took are the audience.
async fn csv_audience(api: &Api, config: &Path, file: &Path) -> anyhow::Result<Vec<String>> {
    let summary = super::contacts::import_through(api, file).await?;
    let refused: std::collections::BTreeSet<u64> =
        summary.refused.iter().map(|row| row.line).collect();
    for row in &summary.refused {
        eprintln!(
            "line {}: {} (left out of the campaign)",
            row.line, row.error
        );
    }
    let country = Config::from_file(config)?.contacts.default_country;
    let country = crate::contacts::number::country(&country)
        .with_context(|| format!("[contacts] default_country = \"{country}\" is unknown"))?;
    let opened =
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let rows = ContactRows::new(opened, ImportOptions::new(country))?;
    Ok(rows
        .filter_map(Result::ok)
        .filter(|row| !refused.contains(&row.line))
        .map(|row| row.phone)
        .collect())
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
