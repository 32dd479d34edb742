//! `smsflow bench-seed`: fills a store with idle conversations and pending timers, the state a
//! large deployment restarts on, for the benchmarks (`just bench`). Run it with the server
//! stopped. The timers are resolution deadlines: one that fires hands its conversation off,
//! which the benchmark watches for through the API to time the resume after a restart.

use std::path::Path;

use anyhow::Context as _;

use crate::config::Config;
use crate::flow::conversation::{Conversation, FlowRef, Status, Timer, TimerKey, TimerRecord};
use crate::flow::{Action, check};
use crate::store::{Batch, Store};

/// Rows written per batch.
const PER_BATCH: u64 = 10_000;

/// What to seed.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Conversations waiting for a reply.
    pub conversations: u64,
    /// How many of them have their wait's timeout set.
    pub timers: u64,
    /// How many of those timers are due at once (the rest in a day).
    pub due_now: u64,
    /// The flow they wait in, and its wait step.
    pub flow: String,
    /// The clock's now, in milliseconds.
    pub now_ms: i64,
}

/// The number of the `n`th seeded contact.
pub fn contact(n: u64) -> String {
    if n < 10_000_000 {
        format!("+1212{n:07}")
    } else {
        format!("+1646{:07}", n - 10_000_000)
    }
}

/// Seeds `config`'s store; returns the number of conversations written.
///
/// # Errors
///
/// When the flows do not load, the flow has no wait step, or the store cannot be written.
pub fn seed(config: &Config, seed: &Seed) -> anyhow::Result<u64> {
    let limits = check::CheckLimits::new(
        &config.compliance,
        &config.programs,
        "the config's `[compliance] max_segments`",
    );
    let loaded = check::load(&config.flows.dir, None, &limits);
    let flow = loaded
        .flows
        .iter()
        .find(|flow| flow.id == seed.flow)
        .with_context(|| format!("no flow `{}` in {}", seed.flow, config.flows.dir.display()))?;
    let wait = flow
        .steps
        .values()
        .find(|step| matches!(step.action, Action::Wait { .. }))
        .with_context(|| format!("flow `{}` has no wait step", flow.id))?;
    let store = Store::open(&config.store.path)
        .context("is `smsflow serve` running? stop it first: it holds the store")?;
    let tables = store.tables();
    tables
        .flow_versions
        .insert(&flow.id, &flow.version, &flow.source)?;
    let ours = crate::phone::parse_e164(&config.provider.from)?;
    let pinned = FlowRef {
        id: flow.id.clone(),
        version: flow.version.clone(),
    };
    let mut batch = Batch::new();
    for n in 0..seed.conversations {
        let contact = contact(n);
        let mut conversation = Conversation::new(&ours, &contact, seed.now_ms);
        conversation.flow = Some(pinned.clone());
        conversation.program = Some(flow.program.clone());
        conversation.run = 1;
        for (name, value) in [
            ("first_name", "Ana"),
            ("date", "March 3"),
            ("time", "10:00"),
        ] {
            conversation
                .fields
                .insert(name.to_owned(), value.to_owned());
        }
        let until_ms = if n < seed.due_now {
            seed.now_ms - 1
        } else {
            seed.now_ms + 24 * 3_600_000
        };
        conversation.status = Status::Waiting {
            step: wait.name.clone(),
            until_ms,
        };
        if n < seed.timers {
            let key = TimerKey {
                due_ms: until_ms,
                conversation: conversation.key(),
                n: 0,
            };
            conversation.timers_set = 1;
            conversation.deadline_timer = Some(key.to_hex());
            let record = TimerRecord {
                our_number: ours.clone(),
                contact: contact.clone(),
                timer: Timer::ResolveDeadline { run: 1 },
            };
            tables.timers.put_in(&mut batch, &key, &record)?;
        }
        tables.conversations.put_in(&mut batch, &conversation)?;
        if (n + 1) % PER_BATCH == 0 {
            store.apply(std::mem::take(&mut batch))?;
        }
    }
    store.apply(batch)?;
    store.flush_sync()?;
    Ok(seed.conversations)
}

/// The config at `path`, for the seed command.
///
/// # Errors
///
/// When it cannot be read.
pub fn config(path: &Path) -> anyhow::Result<Config> {
    Config::from_file(path)
}
