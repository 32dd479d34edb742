//! The flow author's commands: `check` (every problem at its file:line:column, warnings, and
//! each text's segments as sent) and `test` (scenario files on a simulated clock).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::flow;
use crate::flow::check::CheckLimits;
use crate::plugin::{PluginHost, PluginsConfig};
use crate::store::Store;

/// The operator's config at `path` (the defaults without one) with `plugins` as its plugins
/// folder when given, and the limits flows are checked against, saying where they come from.
pub(super) fn tool_config(
    path: Option<&Path>,
    plugins: Option<PathBuf>,
) -> anyhow::Result<(Config, CheckLimits)> {
    let (mut config, limits) = match path {
        Some(path) => {
            let config = Config::from_file(path)?;
            let limits = CheckLimits::from_config(&config, path);
            (config, limits)
        }
        None => (Config::default(), CheckLimits::default()),
    };
    if let Some(dir) = plugins {
        config.plugins.dir = dir;
    }
    Ok((config, limits))
}

/// The plugins in `config.dir`, each granted what the operator's config grants it or, for the
/// flow tools, what its manifest asks for (no HTTP origins, no settings).
pub(super) async fn tool_plugin_host(config: &PluginsConfig) -> anyhow::Result<PluginHost> {
    let store = Store::temporary()?;
    let mut host = PluginHost::new(config, store.tables().plugin_kv, Arc::new(SystemClock))?;
    host.load_dir_with(&config.dir, |manifest| config.tool_grant(manifest))
        .await?;
    Ok(host)
}

/// `smsflow check`: exits 1 on any problem; warnings alone do not fail it.
pub(super) async fn check(
    path: &Path,
    config: Option<&Path>,
    plugins: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config_path = config;
    let (config, limits) = tool_config(config_path, plugins)?;
    let host = tool_plugin_host(&config.plugins).await?;
    let mut loaded = flow::check::load(path, Some(&host), &limits);
    match config_path {
        Some(path) => {
            let (errors, warnings) = flow::check::check_programs(&loaded.flows, &config, path);
            loaded.errors.extend(errors);
            for warning in warnings {
                print_warning(&warning);
            }
            if let Some(warning) = missing_default_brand(&config) {
                println!("{}: warning: {warning}", path.display());
            }
        }
        None => eprintln!(
            "note: no --config: flows' programs are not checked against `[programs.<id>]`"
        ),
    }
    for error in &loaded.errors {
        println!("{error}");
    }
    for flow in &loaded.flows {
        for warning in &flow.warnings {
            print_warning(warning);
        }
    }
    if !loaded.errors.is_empty() {
        println!("{}", plural(loaded.errors.len(), "problem") + " found");
        return Ok(ExitCode::FAILURE);
    }
    for flow in &loaded.flows {
        println!(
            "{}: ok: flow `{}` ({}, {} steps)",
            flow.path.display(),
            flow.id,
            match flow.kind {
                flow::FlowKind::Transactional => "transactional",
                flow::FlowKind::Marketing => "marketing",
            },
            flow.steps.len()
        );
        for line in flow::check::segment_report(flow, &limits) {
            println!("  {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `smsflow test`: exits 1 when a scenario fails or could not run.
pub(super) async fn test(
    path: &Path,
    config: Option<&Path>,
    plugins: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (config, limits) = tool_config(config, plugins)?;
    let files = crate::scenario::scenario_files(path)?;
    if files.is_empty() {
        anyhow::bail!("no scenario files (*.test.toml) at {}", path.display());
    }
    let mut reports = Vec::new();
    for file in files {
        reports.push(crate::scenario::run_file(&file, &config, &limits).await);
    }
    Ok(if crate::scenario::print_reports(&reports) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints `warning` as `path:line:column: warning: message`.
fn print_warning(warning: &flow::Diagnostic) {
    println!(
        "{}:{}:{}: warning: {}",
        warning.path.display(),
        warning.at.line,
        warning.at.column,
        warning.message
    );
}

/// Why `[compliance] brand` should be set, when it is not.
pub(super) fn missing_default_brand(config: &Config) -> Option<&'static str> {
    config.compliance.brand.is_none().then_some(
        "`[compliance] brand` is not set: a HELP from a number no flow has texted is answered \
         with no brand; set it to the name your contacts know you by",
    )
}

/// `1 problem`, `2 problems`.
fn plural(count: usize, noun: &str) -> String {
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
}
