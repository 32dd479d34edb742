//! `bench`: the whole `just bench` run. The ceiling, the three end-to-end scenarios, the
//! plugin call, the seeded stores, the broadcast and one node against cluster mode, on this
//! machine, in one run; then `bench/results/<date>.json` and the table in `BENCHMARKS.md`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use smsflow_bench::ceiling::{self, Drive};
use smsflow_bench::contacts::Contacts;
use smsflow_bench::engine::{ACCOUNT_SID, AUTH_TOKEN, Paths};
use smsflow_bench::fake_twilio::FakeTwilio;
use smsflow_bench::plan::Plan;
use smsflow_bench::report::{self, EndToEnd, Ratios, Results, Section};
use smsflow_bench::scenarios::{Bench, Kind};
use smsflow_bench::{machine, plugin, state};

/// Measures smsflow against the machine's own HTTP ceiling. Build first: `just bench` does.
#[derive(Debug, Parser)]
struct Args {
    /// Every part, seconds instead of minutes: checks the harness, not the engine. Does not
    /// touch BENCHMARKS.md.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON (default: bench/results/<date>.json, or <date>-quick.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The repository (default: the one this was built from).
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Load generator connections.
    #[arg(long)]
    connections: Option<usize>,
    /// Leave a part out (repeatable); the JSON says it was skipped. The ceiling always runs.
    /// A run with a part left out does not touch BENCHMARKS.md (its table would lose the
    /// part's rows): the table is printed, the JSON written.
    #[arg(long, value_enum)]
    skip: Vec<Part>,
}

/// The parts `--skip` can leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// The three end-to-end scenarios.
    EndToEnd,
    /// The criterion plugin-call bench (its first build compiles the engine's dev-dependencies).
    Plugin,
    /// The seeded stores.
    State,
    /// The campaign to many contacts.
    Broadcast,
    /// HELP on one node against a 1-node and a 3-node cluster on NATS JetStream (needs
    /// nats-server: `just nats-deps`).
    Cluster,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let repo = args
        .repo
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    let repo = repo
        .canonicalize()
        .with_context(|| format!("the repository {} is not there", repo.display()))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo.join("target"), PathBuf::from);
    let paths = Paths { repo, target };
    paths.check()?;
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(connections) = args.connections {
        plan.connections = connections;
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let results = runtime.block_on(run(&paths, plan, &args.skip))?;
    write(&paths, &args, &results)
}

async fn run(paths: &Paths, plan: Plan, skip: &[Part]) -> anyhow::Result<Results> {
    let started = Instant::now();
    // Before anything runs: the commit and work tree measured, not what they became meanwhile.
    let machine = machine::describe(&paths.repo);
    let contacts = Contacts::default();
    eprintln!(
        "ceiling: {} connections, {:?}",
        plan.connections, plan.ceiling_time
    );
    let drive = Drive {
        connections: plan.connections,
        time: plan.ceiling_time,
        requests: plan.ceiling_requests,
    };
    let ceiling = ceiling::measure(paths, &contacts, drive)
        .await
        .context("the ceiling")?;
    eprintln!("  {:.0} requests/s", ceiling.requests_per_second);
    let (fake, fake_url) = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await?;
    let bench = Bench {
        paths,
        plan: &plan,
        contacts: &contacts,
        fake: std::sync::Arc::clone(&fake),
        fake_url: fake_url.clone(),
    };
    let end_to_end = if skip.contains(&Part::EndToEnd) {
        EndToEnd {
            help: skipped("end-to-end"),
            confirm: skipped("end-to-end"),
            unmatched: skipped("end-to-end"),
        }
    } else {
        EndToEnd {
            help: scenario(&bench, Kind::Help).await,
            confirm: scenario(&bench, Kind::Confirm).await,
            unmatched: scenario(&bench, Kind::Unmatched).await,
        }
    };
    let plugin = if skip.contains(&Part::Plugin) {
        skipped("plugin")
    } else {
        eprintln!("plugin: cargo bench -p smsflow --bench plugin_call");
        plugin::run(paths, &plan).into()
    };
    let state = if skip.contains(&Part::State) {
        skipped("state")
    } else {
        eprintln!("state: seeded stores");
        state::run(paths, plan.state, &fake_url).await.into()
    };
    let broadcast = if skip.contains(&Part::Broadcast) {
        skipped("broadcast")
    } else {
        eprintln!("broadcast: {} contacts", plan.broadcast_contacts);
        smsflow_bench::broadcast::run(paths, &contacts, plan.broadcast_contacts, &fake, &fake_url)
            .await
            .into()
    };
    let cluster = if skip.contains(&Part::Cluster) {
        skipped("cluster")
    } else {
        eprintln!("cluster: single node against 1 and 3 nodes on NATS JetStream");
        Section::Done(smsflow_bench::cluster::run(&bench).await)
    };
    let ratios = Ratios::of(&ceiling, &end_to_end, &plugin, &state);
    Ok(Results {
        date: machine::today(),
        machine,
        plan,
        wall_seconds: started.elapsed().as_secs_f64(),
        ceiling,
        end_to_end,
        plugin,
        state,
        broadcast,
        cluster,
        ratios,
    })
}

fn skipped<T>(part: &str) -> Section<T> {
    Section::Skipped {
        skipped: format!("left out with --skip {part}"),
    }
}

async fn scenario(bench: &Bench<'_>, kind: Kind) -> Section<smsflow_bench::scenarios::Scenario> {
    eprintln!("end to end: {}", kind.name());
    let result = bench.scenario(kind).await;
    match &result {
        Ok(scenario) => eprintln!(
            "  {:.0} texts/s sustained, {} texts, exactly once: {}",
            scenario.sustained.texts_per_second, scenario.texts, scenario.exactly_once
        ),
        Err(error) => eprintln!("  failed: {error:#}"),
    }
    result.into()
}

/// Writes the JSON and, for a full run, the table in BENCHMARKS.md; prints the table.
fn write(paths: &Paths, args: &Args, results: &Results) -> anyhow::Result<()> {
    let suffix = if results.plan.quick { "-quick" } else { "" };
    let out = args.out.clone().unwrap_or_else(|| {
        paths
            .repo
            .join("bench/results")
            .join(format!("{}{suffix}.json", results.date))
    });
    if let Some(folder) = out.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(&out, json + "\n").with_context(|| format!("cannot write {}", out.display()))?;
    let table = report::table(results);
    println!("{table}");
    println!("results: {}", out.display());
    if !results.plan.quick && !args.skip.is_empty() {
        println!(
            "BENCHMARKS.md left alone: parts were left out with --skip, and its table would lose \
             their rows"
        );
    } else if !results.plan.quick {
        let markdown = paths.repo.join("BENCHMARKS.md");
        let document = std::fs::read_to_string(&markdown)
            .with_context(|| format!("cannot read {}", markdown.display()))?;
        std::fs::write(&markdown, report::splice(&document, &table)?)?;
        println!("table updated in {}", markdown.display());
    }
    anyhow::ensure!(
        failures(results) == 0,
        "{} part(s) of the run failed: their errors are in {}",
        failures(results),
        out.display()
    );
    Ok(())
}

fn failures(results: &Results) -> usize {
    let e2e = &results.end_to_end;
    [
        e2e.help.failed(),
        e2e.confirm.failed(),
        e2e.unmatched.failed(),
        results.plugin.failed(),
        results.broadcast.failed(),
        results.state.failed(),
        results.cluster.failed() || results.cluster.done().is_some_and(|c| c.failed()),
    ]
    .iter()
    .filter(|failed| **failed)
    .count()
}
