//! The machine and the commit a run was made on.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

/// Where the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores available to the run.
    pub cores: usize,
    /// The CPU's `model name` in /proc/cpuinfo.
    pub cpu: Option<String>,
    /// `MemTotal` in /proc/meminfo.
    pub memory_bytes: Option<u64>,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// `git rev-parse HEAD` of the repository.
    pub git_commit: Option<String>,
    /// Whether the work tree had changes not committed.
    pub git_dirty: Option<bool>,
    /// The 1-minute load average when the run started (/proc/loadavg): above the core count,
    /// other work shared the machine and every number is lower than the machine allows.
    pub load_average: Option<f64>,
}

/// Describes this machine and `repo`'s commit.
pub fn describe(repo: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        cpu: cpu_model(&cpuinfo),
        memory_bytes: crate::process::parse_status_kib(&meminfo, "MemTotal").map(|kib| kib * 1024),
        kernel: run(Command::new("uname").arg("-r")),
        git_commit: git(repo, &["rev-parse", "HEAD"]),
        git_dirty: git(repo, &["status", "--porcelain"]).map(|changes| !changes.is_empty()),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse().ok()),
    }
}

fn git(repo: &Path, args: &[&str]) -> Option<String> {
    run(Command::new("git").arg("-C").arg(repo).args(args))
}

/// The first `model name` of a /proc/cpuinfo text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// A command's trimmed stdout, when it succeeds.
fn run(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_model_is_the_first_model_name() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model(""), None);
    }

    #[test]
    fn today_is_a_date() {
        let today = today();
        assert_eq!(today.len(), 10, "{today}");
        assert_eq!(today.as_bytes()[4], b'-');
    }
}
