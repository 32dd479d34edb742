//! `smsflow report`: the funnel, the rates and the A/B verdict, as a table, JSON or CSV, and
//! as an SVG chart; through the running server's API, or from the store when it is stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;

use super::records::Api;
use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use crate::measure::report::{ReportFilter, parse_since};
use crate::measure::{Measurement, render};
use crate::store::Store;

/// `smsflow report`'s arguments.
#[derive(Debug, clap::Args)]
pub(super) struct ReportArgs {
    /// Only this flow.
    #[arg(long)]
    flow: Option<String>,
    /// Only this campaign (its id or key).
    #[arg(long)]
    campaign: Option<String>,
    /// From (RFC 3339, or a span back from now like 7d); 30 days back by default.
    #[arg(long)]
    since: Option<String>,
    /// To (RFC 3339, or a span back from now); now by default.
    #[arg(long)]
    until: Option<String>,
    /// `table`, `json` or `csv`.
    #[arg(long, default_value = "table")]
    format: String,
    /// Also draw the funnel, the daily rates and the variants to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    svg: Option<PathBuf>,
    /// Judge the variants with always-valid intervals (safe to look every day).
    #[arg(long)]
    sequential: bool,
    /// The configuration file.
    #[arg(long, default_value = "smsflow.toml")]
    config: PathBuf,
}

/// Runs `smsflow report`.
///
/// # Errors
///
/// A bad argument, an unknown campaign, or neither the server nor the store is reachable.
pub(super) async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let report = fetch(&args).await?;
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&report)?),
        "csv" => print!("{}", render::csv(&report)),
        "table" => print!("{}", render::table(&report)),
        other => anyhow::bail!("--format `{other}`: write table, json or csv"),
    }
    if let Some(path) = &args.svg {
        let named = [
            ("flow", args.flow.as_deref()),
            ("campaign", args.campaign.as_deref()),
        ];
        let chart = crate::measure::chart::svg(&render::chart_input(&report, &named))?;
        std::fs::write(path, chart).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as JSON: from the store when it can be opened (the server is stopped), else
/// from the server's API.
async fn fetch(args: &ReportArgs) -> anyhow::Result<Value> {
    let config = Config::from_file(&args.config)?;
    let now = SystemClock.now_ms();
    let since = parse_since(args.since.as_deref(), now).map_err(anyhow::Error::msg)?;
    let until = match &args.until {
        Some(until) => parse_since(Some(until), now).map_err(anyhow::Error::msg)?,
        None => now + 1,
    };
    match Store::open(&config.store.path) {
        Ok(store) => {
            let measurement = Measurement::new(
                &store,
                Arc::new(SystemClock),
                config.measurement.clone(),
                crate::phone::parse_e164(&config.provider.from).unwrap_or_default(),
            );
            let filter = ReportFilter {
                flow: args.flow.clone(),
                campaign: args.campaign.clone(),
                since_ms: since,
                until_ms: until,
                weights: weights(&config, args.flow.as_deref()),
                sequential: args.sequential,
            };
            Ok(serde_json::to_value(measurement.report(&filter)?)?)
        }
        Err(offline) => {
            let api = Api::new(&config).with_context(|| {
                format!("cannot open the store ({offline}), nor ask the running server")
            })?;
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("since", &crate::compliance::gate::rfc3339(since));
            query.append_pair("until", &crate::compliance::gate::rfc3339(until));
            for (key, value) in [("flow", &args.flow), ("campaign", &args.campaign)] {
                if let Some(value) = value {
                    query.append_pair(key, value);
                }
            }
            if args.sequential {
                query.append_pair("sequential", "true");
            }
            let answer = api.get(&format!("/v1/report?{}", query.finish())).await?;
            Ok(serde_json::from_str(&answer)?)
        }
    }
}

/// The weights of `flow`'s split, read from the flow folder.
fn weights(config: &Config, flow: Option<&str>) -> Vec<(String, f64)> {
    let Some(flow) = flow else {
        return Vec::new();
    };
    let limits = crate::flow::check::CheckLimits::default();
    crate::flow::check::load(&config.flows.dir, None, &limits)
        .flows
        .iter()
        .find(|loaded| loaded.id == flow)
        .map(crate::flow::Flow::split_weights)
        .unwrap_or_default()
}
