//! A report (as JSON, the shape `GET /v1/report` answers) rendered for people: a table for a
//! terminal, CSV rows, and the chart's input. The command line and `/reports` share them.

use std::fmt::Write as _;

use serde_json::Value;

use super::chart::{ChartInput, DailyRates, FunnelStage, VariantBar};

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
pub fn table(report: &Value) -> String {
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
pub fn csv(report: &Value) -> String {
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

/// The chart's input from the report; `named` are the filters as the reader gave them (a
/// campaign's key reads better than its id).
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
pub fn chart_input(report: &Value, named: &[(&str, Option<&str>)]) -> ChartInput {
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
    for (key, value) in named {
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
