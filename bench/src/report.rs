//! The results: the JSON written to `bench/results/<date>.json`, and the table `just bench`
//! keeps in `BENCHMARKS.md` between its markers.

use serde::Serialize;

use crate::ceiling::Ceiling;
use crate::cluster::{Cluster, Configuration};
use crate::latency::Summary;
use crate::machine::Machine;
use crate::plan::Plan;
use crate::plugin::Plugin;
use crate::scenarios::Scenario;
use crate::state::State;

/// Where the table starts in `BENCHMARKS.md`.
pub const START_MARKER: &str = "<!-- just-bench:start -->";
/// Where it ends.
pub const END_MARKER: &str = "<!-- just-bench:end -->";

/// A part of the run: its results, or the error that stopped it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Section<T> {
    /// It ran.
    Done(T),
    /// It failed.
    Failed {
        /// Why.
        error: String,
    },
    /// It was left out.
    Skipped {
        /// Why.
        skipped: String,
    },
}

impl<T> From<anyhow::Result<T>> for Section<T> {
    fn from(result: anyhow::Result<T>) -> Self {
        match result {
            Ok(done) => Self::Done(done),
            Err(error) => Self::Failed {
                error: format!("{error:#}"),
            },
        }
    }
}

impl<T> Section<T> {
    /// The results, when it ran.
    pub fn done(&self) -> Option<&T> {
        match self {
            Self::Done(done) => Some(done),
            Self::Failed { .. } | Self::Skipped { .. } => None,
        }
    }

    /// Whether it failed (not merely skipped).
    pub fn failed(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }
}

/// The three end-to-end scenarios.
#[derive(Debug, Clone, Serialize)]
pub struct EndToEnd {
    /// (a) HELP.
    pub help: Section<Scenario>,
    /// (b) "Yes please!" to appointment-confirmation.
    pub confirm: Section<Scenario>,
    /// (c) texts no flow matches.
    pub unmatched: Section<Scenario>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// The machine and commit.
    pub machine: Machine,
    /// The sizes.
    pub plan: Plan,
    /// The whole run's wall time.
    pub wall_seconds: f64,
    /// Bare HTTP.
    pub ceiling: Ceiling,
    /// The real engine.
    pub end_to_end: EndToEnd,
    /// The plugin call, criterion.
    pub plugin: Section<Plugin>,
    /// Seeded stores.
    pub state: Section<State>,
    /// A campaign to many contacts.
    pub broadcast: Section<crate::broadcast::Broadcast>,
    /// HELP on one node against cluster mode (1 and 3 nodes on NATS JetStream).
    pub cluster: Section<Cluster>,
    /// The headline figures, derived from the above.
    pub ratios: Ratios,
}

/// The headline figures of the table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    /// (a) sustained texts/s ÷ ceiling requests/s.
    pub help_vs_ceiling: Option<f64>,
    /// (b) sustained texts/s ÷ ceiling requests/s.
    pub confirm_vs_ceiling: Option<f64>,
    /// (c) sustained texts/s ÷ ceiling requests/s.
    pub unmatched_vs_ceiling: Option<f64>,
    /// (a) ingest-to-provider p99 at 50% of its sustained rate, ms.
    pub help_p99_ms_at_half_load: Option<f64>,
    /// (b) the same.
    pub confirm_p99_ms_at_half_load: Option<f64>,
    /// keyword-intents "Yes please!": the sandboxed call ÷ the native one.
    pub keyword_intents_vs_native: Option<f64>,
    /// Resident bytes per idle conversation.
    pub rss_bytes_per_idle_conversation: Option<f64>,
    /// Restart on the large seeded store, seconds.
    pub restart_seconds: Option<f64>,
    /// (a) store bytes per inbound text.
    pub help_bytes_per_text: Option<f64>,
    /// (b) the same.
    pub confirm_bytes_per_text: Option<f64>,
    /// (c) the same.
    pub unmatched_bytes_per_text: Option<f64>,
}

impl Ratios {
    /// Derives the headline figures.
    pub fn of(
        ceiling: &Ceiling,
        end_to_end: &EndToEnd,
        plugin: &Section<Plugin>,
        state: &Section<State>,
    ) -> Self {
        let vs_ceiling = |scenario: &Section<Scenario>| {
            let rate = scenario.done()?.sustained.texts_per_second;
            (ceiling.requests_per_second > 0.0).then(|| rate / ceiling.requests_per_second)
        };
        let measured = match state.done() {
            Some(State::Measured(measured)) => Some(measured),
            _ => None,
        };
        Self {
            help_vs_ceiling: vs_ceiling(&end_to_end.help),
            confirm_vs_ceiling: vs_ceiling(&end_to_end.confirm),
            unmatched_vs_ceiling: vs_ceiling(&end_to_end.unmatched),
            help_p99_ms_at_half_load: half_load_p99(&end_to_end.help),
            confirm_p99_ms_at_half_load: half_load_p99(&end_to_end.confirm),
            keyword_intents_vs_native: yes_please(plugin).map(|ratio| ratio.ratio),
            rss_bytes_per_idle_conversation: measured.map(|m| m.rss_bytes_per_idle_conversation),
            restart_seconds: measured.map(|m| m.restart_seconds),
            help_bytes_per_text: end_to_end.help.done().map(|s| s.bytes_per_text),
            confirm_bytes_per_text: end_to_end.confirm.done().map(|s| s.bytes_per_text),
            unmatched_bytes_per_text: end_to_end.unmatched.done().map(|s| s.bytes_per_text),
        }
    }
}

/// Ingest-to-provider at `load` of the sustained rate.
fn at_load(scenario: &Section<Scenario>, load: f64) -> Option<&Summary> {
    let phases = &scenario.done()?.latency;
    let phase = phases
        .iter()
        .find(|phase| (phase.load - load).abs() < 1e-9)?;
    phase.ingest_to_provider.as_ref()
}

fn half_load_p99(scenario: &Section<Scenario>) -> Option<f64> {
    at_load(scenario, 0.5).map(|summary| summary.p99_ms)
}

fn yes_please(plugin: &Section<Plugin>) -> Option<&crate::plugin::Ratio> {
    let ratios = &plugin.done()?.keyword_intents_vs_native;
    ratios.iter().find(|ratio| ratio.text == "Yes please!")
}

/// `value` rounded, with thousands separated by commas.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0.0 && digits != "0" {
        grouped.insert(0, '-');
    }
    grouped
}

/// Three significant digits at most, for milliseconds and ratios.
pub fn short(value: f64) -> String {
    match value.abs() {
        v if v >= 100.0 => format!("{value:.0}"),
        v if v >= 10.0 => format!("{value:.1}"),
        _ => format!("{value:.2}"),
    }
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(
        || "—".to_owned(),
        |ratio| format!("{}% of the ceiling", short(ratio * 100.0)),
    )
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", short(bytes as f64 / (1024.0 * 1024.0)))
}

/// The table, with the line that says where and when it was measured.
pub fn table(results: &Results) -> String {
    let mut rows = vec![
        "| | measured | ratio |".to_owned(),
        "| --- | ---: | ---: |".to_owned(),
        format!(
            "| ceiling: bare hyper answering the signed webhook, {} connections | {} requests/s | 1 |",
            results.plan.connections,
            thousands(results.ceiling.requests_per_second)
        ),
    ];
    let e2e = &results.end_to_end;
    let scenarios = [
        (
            "(a) HELP, answered with the help text",
            &e2e.help,
            results.ratios.help_vs_ceiling,
        ),
        (
            "(b) \"Yes please!\" classified by keyword-intents, answered",
            &e2e.confirm,
            results.ratios.confirm_vs_ceiling,
        ),
        (
            "(c) texts no flow matches, stored and processed",
            &e2e.unmatched,
            results.ratios.unmatched_vs_ceiling,
        ),
    ];
    for (what, scenario, ratio) in scenarios {
        let measured = scenario.done().map_or_else(
            || failed(scenario),
            |s| format!("{} texts/s", thousands(s.sustained.texts_per_second)),
        );
        rows.push(format!(
            "| {what}, backlog ≤ {} | {measured} | {} |",
            thousands(results.plan.backlog as f64),
            percent(ratio)
        ));
    }
    for (name, scenario) in [("(a)", &e2e.help), ("(b)", &e2e.confirm)] {
        rows.extend(latency_rows(name, scenario));
    }
    rows.push(exactly_once_row(e2e));
    rows.push(plugin_row(&results.plugin));
    rows.push(resource_row("peak RSS of `smsflow serve`", e2e, |s| {
        mib(s.peak_rss_bytes)
    }));
    rows.push(resource_row("store on disk per inbound text", e2e, |s| {
        format!("{} B", thousands(s.bytes_per_text))
    }));
    rows.extend(state_rows(&results.state, &results.plan));
    rows.extend(broadcast_rows(&results.broadcast));
    format!(
        "{}\n\n{}\n\n{}",
        heading(results),
        rows.join("\n"),
        cluster_table(&results.cluster, &results.plan)
    )
}

/// The cluster part's own table: one row per configuration.
pub fn cluster_table(cluster: &Section<Cluster>, plan: &Plan) -> String {
    let Some(cluster) = cluster.done() else {
        return format!("| cluster mode | {} |\n| --- | --- |\n", failed(cluster));
    };
    let rate = cluster.latency_rate.map_or_else(
        || "—".to_owned(),
        |rate| format!("{} texts/s", thousands(rate)),
    );
    let mut rows = vec![
        format!(
            "| cluster mode, HELP (backlog ≤ {}; latency at {rate}, {}% of the slowest) | sustained | ingest to provider p50 / p99 | CPU per text: smsflow / nats-server | cores busy: smsflow / nats-server | peak RSS: smsflow / nats-server | exactly once |",
            thousands(plan.backlog as f64),
            short(cluster.load * 100.0)
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |".to_owned(),
    ];
    let single = cluster
        .configuration("single")
        .and_then(|c| c.sustained.done())
        .map(|run| run.sustained.texts_per_second);
    for configuration in &cluster.configurations {
        rows.push(configuration_row(configuration, single));
    }
    rows.join("\n") + "\n"
}

fn configuration_row(c: &Configuration, single: Option<f64>) -> String {
    let Some(run) = c.sustained.done() else {
        return format!("| {} | {} | | | | | |", c.description, failed(&c.sustained));
    };
    let rate = run.sustained.texts_per_second;
    let versus = match single {
        Some(single) if single > 0.0 && c.name != "single" => {
            format!(" ({}×)", short(rate / single))
        }
        _ => String::new(),
    };
    let latency = match c.latency.done() {
        Some(l) => l.latency.ingest_to_provider.as_ref().map_or_else(
            || "—".to_owned(),
            |s| format!("{} / {} ms", short(s.p50_ms), short(s.p99_ms)),
        ),
        None => failed(&c.latency),
    };
    let nats = c.nats_servers > 0;
    let or_dash = |value: String| if nats { value } else { "—".to_owned() };
    let cost = &run.cost;
    let verdict = if c.exactly_once { "yes" } else { "**no**" };
    format!(
        "| {} | {} texts/s{versus} | {latency} | {} / {} ms | {} / {} | {} / {} | {verdict}: {} texts, {} missing, {} duplicates, {} unexpected |",
        c.description,
        thousands(rate),
        short(cost.smsflow.ms_per_text),
        or_dash(short(cost.nats.ms_per_text)),
        short(cost.smsflow.cores),
        or_dash(short(cost.nats.cores)),
        mib(run.memory.smsflow_total_bytes),
        or_dash(mib(run.memory.nats_total_bytes)),
        thousands((run.sustained.texts + c.latency.done().map_or(0, |l| l.latency.texts)) as f64),
        c.check.missing,
        c.check.duplicates,
        c.check.unexpected
    )
}

fn heading(results: &Results) -> String {
    let machine = &results.machine;
    let commit = machine
        .git_commit
        .as_deref()
        .map_or("unknown", |c| &c[..c.len().min(10)]);
    let dirty = if machine.git_dirty == Some(true) {
        " with uncommitted changes"
    } else {
        ""
    };
    let (run, suffix) = if results.plan.quick {
        ("`just bench-quick`", "-quick")
    } else {
        ("`just bench`", "")
    };
    let load = machine.load_average.map_or_else(String::new, |load| {
        format!(", load average {load:.1} at the start")
    });
    format!(
        "{run} of {} on {} cores ({}{load}), commit {commit}{dirty}; every number is in \
         `bench/results/{}{suffix}.json`.",
        results.date,
        machine.cores,
        machine.cpu.as_deref().unwrap_or("unknown CPU"),
        results.date
    )
}

fn failed<T>(section: &Section<T>) -> String {
    let (verdict, why) = match section {
        Section::Failed { error } => ("failed", error),
        Section::Skipped { skipped } => ("skipped", skipped),
        Section::Done(_) => return String::new(),
    };
    let first = why.lines().next().unwrap_or_default();
    format!("{verdict}: {}", first.replace('|', "\\|"))
}

fn latency_rows(name: &str, scenario: &Section<Scenario>) -> Vec<String> {
    let Some(scenario) = scenario.done() else {
        return Vec::new();
    };
    scenario
        .latency
        .iter()
        .filter_map(|phase| {
            let summary = phase.ingest_to_provider.as_ref()?;
            Some(format!(
                "| {name} ingest to provider at {}% load ({} texts/s), p50 / p99 / p999 | {} / {} / {} ms | |",
                short(phase.load * 100.0),
                thousands(phase.rate),
                short(summary.p50_ms),
                short(summary.p99_ms),
                short(summary.p999_ms)
            ))
        })
        .collect()
}

fn exactly_once_row(e2e: &EndToEnd) -> String {
    let parts: Vec<String> = [
        ("(a)", &e2e.help),
        ("(b)", &e2e.confirm),
        ("(c)", &e2e.unmatched),
    ]
    .iter()
    .filter_map(|(name, scenario)| {
        let s = scenario.done()?;
        Some(format!(
            "{name} {} texts: {} missing, {} duplicates, {} unexpected",
            thousands(s.texts as f64),
            s.check.missing,
            s.check.duplicates,
            s.check.unexpected
        ))
    })
    .collect();
    let all = [&e2e.help, &e2e.confirm, &e2e.unmatched]
        .iter()
        .all(|scenario| scenario.done().is_some_and(|s| s.exactly_once));
    let verdict = if all { "yes" } else { "**no**" };
    format!(
        "| every acknowledged text answered exactly once | {verdict}: {} | |",
        parts.join("; ")
    )
}

fn plugin_row(plugin: &Section<Plugin>) -> String {
    let what = "keyword-intents \"Yes please!\": sandboxed call vs native";
    match (plugin, yes_please(plugin)) {
        (_, Some(ratio)) => format!(
            "| {what} | {} µs vs {} µs | {}× |",
            short(ratio.wasm_ns / 1000.0),
            short(ratio.native_ns / 1000.0),
            short(ratio.ratio)
        ),
        (Section::Failed { .. } | Section::Skipped { .. }, None) => {
            format!("| {what} | {} | |", failed(plugin))
        }
        (Section::Done(_), None) => format!("| {what} | not in criterion's output | |"),
    }
}

fn resource_row(what: &str, e2e: &EndToEnd, value: impl Fn(&Scenario) -> String) -> String {
    let values: Vec<String> = [&e2e.help, &e2e.confirm, &e2e.unmatched]
        .iter()
        .map(|scenario| scenario.done().map_or_else(|| "—".to_owned(), &value))
        .collect();
    format!("| {what}, (a) / (b) / (c) | {} | |", values.join(" / "))
}

fn broadcast_rows(broadcast: &Section<crate::broadcast::Broadcast>) -> Vec<String> {
    let Some(b) = broadcast.done() else {
        return vec![format!("| broadcast | {} | |", failed(broadcast))];
    };
    let n = thousands(b.contacts as f64);
    vec![
        format!(
            "| broadcast: CSV import of {n} contacts through the API | {} rows/s ({} s) | |",
            thousands(b.import_rows_per_second),
            short(b.import_seconds)
        ),
        format!(
            "| broadcast: one campaign to {n} contacts, pacing off: every contact started | {} starts/s ({} s) | |",
            thousands(b.starts_per_second),
            short(b.enqueue_seconds)
        ),
        format!(
            "| broadcast: its texts reaching the provider ({} of {n}) | {} texts/s | |",
            thousands(b.sent as f64),
            thousands(b.sends_per_second)
        ),
        format!(
            "| broadcast: peak RSS of `smsflow serve` | {} | |",
            mib(b.peak_rss_bytes)
        ),
    ]
}

fn state_rows(state: &Section<State>, plan: &Plan) -> Vec<String> {
    let idle = format!(
        "RSS per idle conversation ({} and {} idle conversations)",
        thousands(plan.state.small as f64),
        thousands(plan.state.large as f64)
    );
    let restart = format!(
        "restart with {} conversations and {} due timers: to /healthz, to the first timer",
        thousands(plan.state.large as f64),
        thousands(plan.state.timers as f64)
    );
    let (idle_value, restart_value) = match state {
        Section::Done(State::Measured(m)) => (
            format!(
                "{} B ({} B on disk)",
                thousands(m.rss_bytes_per_idle_conversation),
                thousands(m.store_bytes_per_idle_conversation)
            ),
            format!(
                "{} s, {}",
                short(m.restart_seconds),
                m.resume_seconds
                    .map_or_else(|| "not measured".to_owned(), |s| format!("{} s", short(s)))
            ),
        ),
        Section::Done(State::Skipped { skipped }) => {
            (format!("skipped: {skipped}"), format!("skipped: {skipped}"))
        }
        Section::Failed { .. } | Section::Skipped { .. } => (failed(state), failed(state)),
    };
    vec![
        format!("| {idle} | {idle_value} | |"),
        format!("| {restart} | {restart_value} | |"),
    ]
}

/// `document` with `table` between the markers.
///
/// # Errors
///
/// When the markers are missing or out of order.
pub fn splice(document: &str, table: &str) -> anyhow::Result<String> {
    let start = document.find(START_MARKER);
    let end = document.find(END_MARKER);
    let (Some(start), Some(end)) = (start, end) else {
        anyhow::bail!(
            "BENCHMARKS.md has no `{START_MARKER}` … `{END_MARKER}` pair: put the two markers, \
             each on its own line, where the table goes"
        );
    };
    anyhow::ensure!(
        start < end,
        "BENCHMARKS.md has `{END_MARKER}` before `{START_MARKER}`: swap them"
    );
    let before = &document[..start + START_MARKER.len()];
    let after = &document[end..];
    Ok(format!("{before}\n{table}{after}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(81_234.6), "81,235");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(-12_345.0), "-12,345");
        assert_eq!(short(0.01234), "0.01");
        assert_eq!(short(3.456), "3.46");
        assert_eq!(short(36.04), "36.0");
        assert_eq!(short(123.4), "123");
    }

    #[test]
    fn the_table_replaces_what_was_between_the_markers_and_nothing_else() {
        let document = format!("# B\n\nintro\n{START_MARKER}\nold table\n{END_MARKER}\n\nrest\n");
        let spliced = splice(&document, "new table\n").unwrap();
        assert_eq!(
            spliced,
            format!("# B\n\nintro\n{START_MARKER}\nnew table\n{END_MARKER}\n\nrest\n")
        );
        // Idempotent: splicing again gives the same document.
        assert_eq!(splice(&spliced, "new table\n").unwrap(), spliced);
    }

    #[test]
    fn missing_markers_are_an_error_that_says_where_they_go() {
        let error = splice("# B\n", "t").unwrap_err().to_string();
        assert!(
            error.contains(START_MARKER) && error.contains("where the table goes"),
            "{error}"
        );
        let swapped = format!("{END_MARKER}\n{START_MARKER}\n");
        assert!(
            splice(&swapped, "t")
                .unwrap_err()
                .to_string()
                .contains("swap")
        );
    }

    #[test]
    fn a_failed_section_keeps_its_error() {
        let section: Section<u32> = Err(anyhow::anyhow!("it broke | badly\nmore")).into();
        assert!(section.done().is_none());
        assert_eq!(failed(&section), "failed: it broke \\| badly");
        let json = serde_json::to_value(&section).unwrap();
        assert_eq!(json["error"], "it broke | badly\nmore");
    }
}
