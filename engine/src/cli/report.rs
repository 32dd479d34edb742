//! `smsflow report`: the funnel, the rates and the A/B verdict, as a table, JSON or CSV, and
//! as an SVG chart; through the running server's API, or from the store when it is stopped.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;

use super::records::Api;
use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use crate::measure::Measurement;
use crate::measure::chart::{ChartInput, DailyRates, FunnelStage, VariantBar};
use crate::measure::report::{ReportFilter, parse_since};
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
        "csv" => print!("{}", csv(&report)),
        "table" => print!("{}", table(&report)),
        other => anyhow::bail!("--format `{other}`: write table, json or csv"),
    }
    if let Some(path) = &args.svg {
        let chart = crate::measure::chart::svg(&chart_input(&report, &args))?;
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

fn number(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::Number(n) => match n.as_u64() {
            Some(n) => n.to_string(),
            None => format!("{:.4}", n.as_f64().unwrap_or_default()),
        },
        other => other.to_string(),
    }
}

/// The report for a terminal.
fn table(report: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "report {} to {}",
        report["since"].as_str().unwrap_or("?"),
        report["until"].as_str().unwrap_or("?")
    );
    let _ = writeln!(out, "\nfunnel");
    for (name, value) in report["funnel"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "  {name:<18} {}", number(value));
    }
    let _ = writeln!(out, "\nrates");
    for (name, value) in report["rates"].as_object().into_iter().flatten() {
        let shown = value
            .as_f64()
            .map_or("-".to_owned(), |rate| format!("{:.1}%", rate * 100.0));
        let _ = writeln!(
            out,
            "  {name:<26} {shown:>8}   {}",
            report["definitions"][name].as_str().unwrap_or("")
        );
    }
    let windows = &report["windows"];
    let _ = writeln!(
        out,
        "\nattribution: last click within {}, else last delivery within {}",
        windows["click"].as_str().unwrap_or("?"),
        windows["delivery"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "\nvariants           assigned  reached  replied  clicked converted  revenue"
    );
    for row in report["variants"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<16} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
            row["name"].as_str().unwrap_or(""),
            number(&row["assigned"]),
            number(&row["delivered"]),
            number(&row["replied"]),
            number(&row["clicked"]),
            number(&row["converted"]),
            number(&row["revenue"]),
        );
    }
    if let Some(reason) = report["verdict"]["reason"].as_str() {
        let _ = writeln!(
            out,
            "\nverdict: {} ({reason})",
            report["verdict"]["status"].as_str().unwrap_or("?")
        );
    }
    out
}

/// The report as CSV rows: `section,name,metric,value`.
fn csv(report: &Value) -> String {
    let mut out = String::from("section,name,metric,value\n");
    for section in ["funnel", "rates"] {
        for (name, value) in report[section].as_object().into_iter().flatten() {
            if value.is_object() {
                continue;
            }
            let _ = writeln!(out, "{section},{name},,{}", number(value));
        }
    }
    for row in report["variants"].as_array().into_iter().flatten() {
        for (metric, value) in row.as_object().into_iter().flatten() {
            if metric != "name" {
                let name = row["name"].as_str().unwrap_or("").replace(',', " ");
                let _ = writeln!(out, "variant,{name},{metric},{}", number(value));
            }
        }
    }
    out
}

/// The chart's input from the report.
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn chart_input(report: &Value, args: &ReportArgs) -> ChartInput {
    let funnel = &report["funnel"];
    let stage = |name: &str, key: &str| FunnelStage {
        name: name.to_owned(),
        count: funnel[key].as_u64().unwrap_or(0),
    };
    let rate = |n: &Value, d: &Value| match (n.as_f64(), d.as_f64()) {
        (Some(n), Some(d)) if d > 0.0 => (n / d).clamp(0.0, 1.0),
        _ => 0.0,
    };
    // Days that reached nobody have no rates (a conversion days later is in the totals).
    let daily = report["daily"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|day| day["reached"].as_u64().unwrap_or(0) > 0)
        .map(|day| DailyRates {
            day: day["day"].as_str().unwrap_or("").to_owned(),
            delivery_rate: rate(&day["delivered"], &day["sent"]),
            reply_rate: rate(&day["replied"], &day["reached"]),
            click_rate: rate(&day["clicked"], &day["reached"]),
            conversion_rate: rate(&day["converted"], &day["reached"]),
            opt_out_rate: rate(&day["opted_out"], &day["reached"]),
        });
    let variants = report["verdict"]["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| VariantBar {
            name: v["name"].as_str().unwrap_or("").to_owned(),
            rate: v["rate"].as_f64().unwrap_or(0.0),
            low: v["interval"]["low"].as_f64().unwrap_or(0.0),
            high: v["interval"]["high"].as_f64().unwrap_or(0.0),
        });
    let mut variants: Vec<VariantBar> = variants.collect();
    let holdout = &report["holdout"];
    if let (Some(converted), Some(held)) = (
        holdout["held_out_converted"].as_u64(),
        holdout["held_out"].as_u64(),
    ) {
        let interval = crate::measure::verdict::wilson(converted, held, 0.95);
        variants.push(VariantBar {
            name: "holdout".to_owned(),
            rate: if held > 0 {
                converted as f64 / held as f64
            } else {
                0.0
            },
            low: interval.low,
            high: interval.high,
        });
    }
    let mut title = String::from("smsflow report");
    // As the reader named them (a campaign's key reads better than its id).
    for (key, value) in [("flow", &args.flow), ("campaign", &args.campaign)] {
        if let Some(value) = value {
            let _ = write!(title, " · {key} {value}");
        }
    }
    let _ = write!(
        title,
        " · since {}",
        report["since"]
            .as_str()
            .unwrap_or("?")
            .get(..10)
            .unwrap_or("?")
    );
    ChartInput {
        title,
        funnel: vec![
            stage("sent", "sent"),
            stage("delivered", "delivered"),
            stage("reached", "reached"),
            stage("replied", "replied"),
            stage("clicked", "clicked"),
            stage("converted", "converted"),
            stage("opted out", "opted_out"),
        ],
        daily: daily.collect(),
        variants,
    }
}
