//! The plugin call: `cargo bench -p smsflow --bench plugin_call` (criterion), read back from
//! `target/criterion/*/new/estimates.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::engine::Paths;
use crate::plan::Plan;

/// A criterion benchmark's estimates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// Its full id (`group/function/value`).
    pub id: String,
    /// Mean time per iteration, nanoseconds.
    pub mean_ns: f64,
    /// Median time per iteration, nanoseconds.
    pub median_ns: f64,
}

/// A wasm call against the same classifier compiled natively.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratio {
    /// The text classified.
    pub text: String,
    /// Mean of the sandboxed call (fresh instance + classify).
    pub wasm_ns: f64,
    /// Mean of the native call.
    pub native_ns: f64,
    /// `wasm_ns / native_ns`.
    pub ratio: f64,
}

/// The plugin-call results.
#[derive(Debug, Clone, Serialize)]
pub struct Plugin {
    /// Every benchmark of the run.
    pub benchmarks: Vec<Estimate>,
    /// keyword-intents, wasm against native, per text.
    pub keyword_intents_vs_native: Vec<Ratio>,
}

#[derive(Deserialize)]
struct Estimates {
    mean: PointEstimate,
    median: PointEstimate,
}

#[derive(Deserialize)]
struct PointEstimate {
    point_estimate: f64,
}

#[derive(Deserialize)]
struct BenchmarkId {
    full_id: String,
}

/// Runs the plugin_call bench and reads what it measured.
///
/// # Errors
///
/// When cargo fails (its output is in the log named) or criterion wrote no estimates.
pub fn run(paths: &Paths, plan: &Plan) -> anyhow::Result<Plugin> {
    let since = SystemTime::now();
    let log_path = paths.target.join("bench-plugin_call.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    // `cargo run` says which cargo it is; otherwise the one on PATH.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "bench",
            "-p",
            "smsflow",
            "--bench",
            "plugin_call",
            "--",
            "--noplot",
        ])
        .args(&plan.criterion_args)
        .current_dir(&paths.repo)
        .env("CARGO_TARGET_DIR", &paths.target)
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("cannot run cargo")?;
    anyhow::ensure!(
        status.success(),
        "`cargo bench -p smsflow --bench plugin_call` failed ({status}): see {}",
        log_path.display()
    );
    let criterion = paths.target.join("criterion");
    let benchmarks = read_estimates(&criterion, since)?;
    anyhow::ensure!(
        !benchmarks.is_empty(),
        "criterion wrote no estimates under {} during the run: see {}",
        criterion.display(),
        log_path.display()
    );
    Ok(Plugin {
        keyword_intents_vs_native: ratios(&benchmarks),
        benchmarks,
    })
}

/// The estimates under `criterion` written since `since`, by id.
///
/// # Errors
///
/// When a file cannot be read or is not criterion's.
pub fn read_estimates(criterion: &Path, since: SystemTime) -> anyhow::Result<Vec<Estimate>> {
    let mut found = Vec::new();
    estimate_files(criterion, &mut found)?;
    let mut estimates = Vec::new();
    for file in found {
        if file.metadata()?.modified()? < since {
            continue;
        }
        let estimate: Estimates = read_json(&file)?;
        let id: BenchmarkId = read_json(&file.with_file_name("benchmark.json"))?;
        estimates.push(Estimate {
            id: id.full_id,
            mean_ns: estimate.mean.point_estimate,
            median_ns: estimate.median.point_estimate,
        });
    }
    estimates.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(estimates)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not criterion's", path.display()))
}

/// Every `*/new/estimates.json` under `dir`.
fn estimate_files(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            let estimates = path.join("estimates.json");
            if path.ends_with("new") && estimates.is_file() {
                found.push(estimates);
            } else {
                estimate_files(&path, found)?;
            }
        }
    }
    Ok(())
}

/// Pairs each `.../wasm instantiate+call/<text>` with its `.../native/<text>`.
pub fn ratios(estimates: &[Estimate]) -> Vec<Ratio> {
    const WASM: &str = "keyword-intents/wasm instantiate+call/";
    estimates
        .iter()
        .filter_map(|wasm| {
            let text = wasm.id.strip_prefix(WASM)?;
            let native_id = format!("keyword-intents/native/{text}");
            let native = estimates.iter().find(|native| native.id == native_id)?;
            Some(Ratio {
                text: text.to_owned(),
                wasm_ns: wasm.mean_ns,
                native_ns: native.mean_ns,
                ratio: wasm.mean_ns / native.mean_ns,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, id: &str, mean: f64) {
        let new = dir.join(id.replace('/', "_")).join("new");
        std::fs::create_dir_all(&new).unwrap();
        let estimates = serde_json::json!({
            "mean": {"point_estimate": mean, "standard_error": 1.0},
            "median": {"point_estimate": mean - 1.0, "standard_error": 1.0},
        });
        std::fs::write(new.join("estimates.json"), estimates.to_string()).unwrap();
        let id = serde_json::json!({"group_id": "g", "full_id": id});
        std::fs::write(new.join("benchmark.json"), id.to_string()).unwrap();
    }

    #[test]
    fn criterion_output_is_read_and_wasm_is_paired_with_native() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "keyword-intents/wasm instantiate+call/Yes please!",
            72_000.0,
        );
        write(dir.path(), "keyword-intents/native/Yes please!", 2_000.0);
        write(dir.path(), "minimal component instantiate+call", 8_600.0);
        let estimates = read_estimates(dir.path(), SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(estimates.len(), 3);
        assert_eq!(estimates[0].id, "keyword-intents/native/Yes please!");
        assert_eq!(estimates[0].median_ns, 1_999.0);
        let ratios = ratios(&estimates);
        assert_eq!(ratios.len(), 1);
        assert_eq!(ratios[0].text, "Yes please!");
        assert_eq!(ratios[0].ratio, 36.0);
    }

    #[test]
    fn estimates_older_than_the_run_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "old", 1.0);
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        assert!(read_estimates(dir.path(), later).unwrap().is_empty());
    }
}
