//! The engine at rest with many conversations: memory and disk per idle conversation, and the
//! time to restart and resume on a large store.
//!
//! The stores are filled by the hidden `smsflow bench-seed --config FILE --conversations N
//! --timers M`, which writes idle conversations and M timers due at once (each hands its
//! conversation off). When it prints a JSON line with `"due_contact": "+1..."`, resuming is
//! measured as the time until that conversation shows `handed_off`. Without the subcommand the
//! part is skipped.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::engine::{DAYTIME, Engine, Paths, Setup};
use crate::plan::StatePlan;
use crate::process::disk_bytes;

/// How long the engine may take to fire the first due timer.
const RESUME_TIMEOUT: Duration = Duration::from_secs(300);
/// The engine settles this long before its memory is read.
const SETTLE: Duration = Duration::from_secs(1);

/// The state part's results, or why it was skipped.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum State {
    /// Not measured.
    Skipped {
        /// Why.
        skipped: String,
    },
    /// Measured.
    Measured(Measured),
}

/// What the seeded stores showed.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// The small store, then the large one.
    pub stores: Vec<Seeded>,
    /// Resident memory per idle conversation: the difference between the stores.
    pub rss_bytes_per_idle_conversation: f64,
    /// Disk per idle conversation, the same way.
    pub store_bytes_per_idle_conversation: f64,
    /// The large store: from spawning `smsflow serve` to `/healthz` answering.
    pub restart_seconds: f64,
    /// The large store: from spawning to the first due timer's handoff.
    pub resume_seconds: Option<f64>,
}

/// One seeded store.
#[derive(Debug, Clone, Serialize)]
pub struct Seeded {
    /// Idle conversations.
    pub conversations: u64,
    /// Timers due at once.
    pub timers: u64,
    /// How long `bench-seed` took.
    pub seed_seconds: f64,
    /// From spawning `smsflow serve` to `/healthz` answering.
    pub restart_seconds: f64,
    /// From spawning to the first due timer's handoff, when the seeder named its contact.
    pub resume_seconds: Option<f64>,
    /// Resident memory a second after it was up (and resumed).
    pub rss_bytes: u64,
    /// Peak resident memory by then.
    pub peak_rss_bytes: u64,
    /// The store on disk.
    pub store_bytes: u64,
}

/// Measures the small and the large store, or says why not.
///
/// # Errors
///
/// When the seeder exists but fails, or the engine does not come up on its store.
pub async fn run(paths: &Paths, plan: StatePlan, fake_url: &str) -> anyhow::Result<State> {
    if !seeder_available(paths) {
        return Ok(State::Skipped {
            skipped: "smsflow bench-seed is not available".to_owned(),
        });
    }
    let small = measure(paths, fake_url, plan.small, 0).await?;
    let large = measure(paths, fake_url, plan.large, plan.timers).await?;
    let more = large
        .conversations
        .saturating_sub(small.conversations)
        .max(1) as f64;
    Ok(State::Measured(Measured {
        rss_bytes_per_idle_conversation: large.rss_bytes.saturating_sub(small.rss_bytes) as f64
            / more,
        store_bytes_per_idle_conversation: large.store_bytes.saturating_sub(small.store_bytes)
            as f64
            / more,
        restart_seconds: large.restart_seconds,
        resume_seconds: large.resume_seconds,
        stores: vec![small, large],
    }))
}

fn seeder_available(paths: &Paths) -> bool {
    Command::new(paths.binary())
        .args(["bench-seed", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

async fn measure(
    paths: &Paths,
    fake_url: &str,
    conversations: u64,
    timers: u64,
) -> anyhow::Result<Seeded> {
    let setup = Setup::new(paths, fake_url)?;
    let seeding = Instant::now();
    let due_contact = seed(paths, &setup, conversations, timers)?;
    let seed_seconds = seeding.elapsed().as_secs_f64();
    let engine = Engine::start(paths, &setup).await?;
    let resume_seconds = match &due_contact {
        Some(contact) => Some(wait_handed_off(&engine, contact).await?.as_secs_f64()),
        None => None,
    };
    tokio::time::sleep(SETTLE).await;
    let rss_bytes = engine.server.rss_bytes()?;
    let peak_rss_bytes = engine.server.peak_rss_bytes()?;
    let restart_seconds = engine.ready_in.as_secs_f64();
    engine.server.stop()?;
    Ok(Seeded {
        conversations,
        timers,
        seed_seconds,
        restart_seconds,
        resume_seconds,
        rss_bytes,
        peak_rss_bytes,
        store_bytes: disk_bytes(&setup.store())?,
    })
}

/// Runs the seeder; the contact whose timer is due, when it names one.
fn seed(
    paths: &Paths,
    setup: &Setup,
    conversations: u64,
    timers: u64,
) -> anyhow::Result<Option<String>> {
    let output = Command::new(paths.binary())
        .arg("bench-seed")
        .arg("--config")
        .arg(setup.config())
        .args(["--conversations", &conversations.to_string()])
        .args(["--timers", &timers.to_string()])
        // The engine's clock: timers seeded "due now" by another clock might not be due yet.
        .env("SMSFLOW_CLOCK", DAYTIME)
        .output()
        .context("cannot run smsflow bench-seed")?;
    anyhow::ensure!(
        output.status.success(),
        "smsflow bench-seed failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(due_contact(&String::from_utf8_lossy(&output.stdout)))
}

/// The `due_contact` of the last JSON line of the seeder's output that has one.
pub fn due_contact(stdout: &str) -> Option<String> {
    stdout.lines().rev().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
        Some(value.get("due_contact")?.as_str()?.to_owned())
    })
}

/// Waits until `contact`'s conversation is handed off; how long after the spawn that was.
async fn wait_handed_off(engine: &Engine, contact: &str) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + RESUME_TIMEOUT;
    loop {
        let conversation = engine.api.conversation(contact).await?;
        let state = conversation
            .as_ref()
            .and_then(|answer| answer.pointer("/conversation/status/state"))
            .and_then(|state| state.as_str());
        if state == Some("handed_off") {
            return Ok(engine.server.spawned.elapsed());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{contact}'s due timer did not hand it off within {RESUME_TIMEOUT:?} (state {state:?})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_due_contact_is_read_from_the_seeders_last_json_line() {
        let stdout = "seeding...\n{\"conversations\": 10}\n{\"due_contact\": \"+12125550100\"}\n";
        assert_eq!(due_contact(stdout).as_deref(), Some("+12125550100"));
        assert_eq!(due_contact("done\n{\"conversations\": 10}\n"), None);
    }
}
