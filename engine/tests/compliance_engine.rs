//! The compliance invariants as a property: random sequences of inbound texts, API starts,
//! consent records, plugin drafts, agent replies and clock jumps go through the real engine
//! (runtime, real wasm plugins, sled, the outbox and its gate), and after every step the texts
//! the provider received are checked against an oracle written here, independently of the
//! gate:
//!
//! - nothing to a number opted out of the text's program (except the one confirmation within 5
//!   minutes of the opt-out);
//! - nothing outside 08:00-21:00 (20:00 in Florida; Texas 09:00-21:00, Sundays from 12:00) in
//!   any of the number's time zones, and nothing at all to a number with no known zone, unless
//!   it answers the contact's own keyword;
//! - no more than the caps allow in any rolling 24 hours, and no text repeated more than twice
//!   in 10 minutes;
//! - no marketing without a marketing opt-in for its program;
//! - every certain opt-out text the test sends is in the ledger.
//!
//! `PROPTEST_CASES` sets the number of cases (default 2000 here); the long run in
//! BENCHMARKS.md uses `PROPTEST_CASES=1000000` with `--release`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use futures_util::future::BoxFuture;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use smsflow::clock::{ManualClock, SharedClock};
use smsflow::compliance::ComplianceConfig;
use smsflow::compliance::gate::Origin;
use smsflow::compliance::ledger::{
    ALL_PROGRAMS, ConsentClass, ConsentEvent, ConsentRecord, ConsentSource, Ledger, NewConsent,
};
use smsflow::engine::EngineBuilder;
use smsflow::flow::compile::compile;
use smsflow::flow::runtime::{Runtime, StartRequest};
use smsflow::outbound::{Cleared, OutboundMessage, Provider, Receipt, SendError};
use smsflow::plugin::{Grant, Manifest, PluginHost, PluginsConfig, World};
use smsflow::sms::InboundText;
use smsflow::store::Store;
use smsflow::testing;

mod support;

const OURS: &str = "+12125550000";
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The contacts: one per kind of time zone answer.
const CONTACTS: [&str; 6] = [
    "+12125550100", // New York
    "+13055550101", // Miami, Florida: 08:00-20:00
    "+15125550102", // Austin, Texas: 09:00-21:00, Sundays 12:00-21:00
    "+12085550103", // Idaho: Boise (Mountain) or Pacific
    "+14155550104", // San Francisco
    "+15555550105", // no known zone: fails closed
];

/// Inbound texts, and whether each is a certain opt-out.
const TEXTS: [(&str, bool); 18] = [
    ("STOP", true),
    (" Stop. ", true),
    ("sToP!!!", true),
    ("stop all", true),
    ("ＳＴＯＰ", true),
    ("no mas", true),
    ("please stop texting me", true),
    ("HELP", false),
    ("START", false),
    ("UNSTOP", false),
    ("YES", false),
    ("yes please", false),
    ("JOIN", false),
    ("what are your hours?", false),
    ("Stop signs at the intersection?", false),
    ("", false),
    ("🙂", false),
    ("hello", false),
];

const VISIT: &str = r#"
id = "visit"
program = "clinic"
kind = "transactional"
brand = "Bright Smile"
start = "greet"

[triggers]
api = true

[steps.greet]
type = "send"
text = "Bright Smile: your visit is tomorrow. Reply YES to confirm. Reply STOP to opt out."
next = "wait_reply"

[steps.wait_reply]
type = "wait"
timeout = "3h"
on_reply = "understand"
on_timeout = "remind"

[steps.understand]
type = "classify"
plugin = "keyword-intents"
routes = { confirm = "thanks" }
default = "answer"
on_error = "desk"

[steps.answer]
type = "reply"
plugin = "faq-replies"
next = "wait_reply"
on_low_confidence = "desk"
on_error = "desk"

[steps.remind]
type = "send"
text = "Reminder: your visit is tomorrow."
next = "done"

[steps.thanks]
type = "end"
text = "Thanks, see you then!"
outcome = "confirmed"

[steps.desk]
type = "handoff"
queue = "front-desk"
reason = "needs a person"

[steps.done]
type = "end"
outcome = "no_response"
"#;

const PROMO: &str = r#"
id = "promo"
program = "deals"
kind = "marketing"
brand = "Northwind"
start = "offer"

[triggers]
api = true

[steps.offer]
type = "send"
text = "Northwind: 20% off everything today. Reply STOP to opt out."
next = "done"

[steps.done]
type = "end"
outcome = "offered"
"#;

const CLUB: &str = r#"
id = "club"
program = "club"
kind = "marketing"
brand = "Greenleaf"
start = "welcome"

[triggers]
keywords = ["JOIN"]

[steps.welcome]
type = "send"
text = "Greenleaf: welcome to the club! Up to 4 msgs/month. Reply STOP to opt out."
next = "done"

[steps.done]
type = "end"
outcome = "joined"
"#;

/// One thing that happens to the engine.
#[derive(Debug, Clone)]
enum Action {
    Inbound { contact: usize, text: usize },
    Start { contact: usize, promo: bool },
    Consent { contact: usize, program: usize },
    AgentReply { contact: usize, text: usize },
    Advance { minutes: i64 },
}

fn action() -> impl Strategy<Value = Action> {
    let contact = 0..CONTACTS.len();
    prop_oneof![
        5 => (contact.clone(), 0..TEXTS.len())
            .prop_map(|(contact, text)| Action::Inbound { contact, text }),
        3 => (contact.clone(), any::<bool>())
            .prop_map(|(contact, promo)| Action::Start { contact, promo }),
        1 => (contact.clone(), 0..3usize)
            .prop_map(|(contact, program)| Action::Consent { contact, program }),
        2 => (contact, 0..2usize).prop_map(|(contact, text)| Action::AgentReply { contact, text }),
        3 => prop_oneof![1i64..10, 10i64..120, 120i64..900, 900i64..2000]
            .prop_map(|minutes| Action::Advance { minutes }),
    ]
}

/// Starting instants: ordinary days and both 2026 US daylight-saving changes.
fn start_instant() -> impl Strategy<Value = i64> {
    let day = |rfc3339: &str| rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond();
    let starts = [
        day("2026-03-03T00:00:00Z"), // a Tuesday
        day("2026-03-07T00:00:00Z"), // the Saturday before spring forward
        day("2026-10-31T00:00:00Z"), // the Saturday before fall back
        day("2026-06-06T00:00:00Z"), // a Saturday in summer
    ];
    (0..starts.len(), 0..(2 * DAY / MINUTE))
        .prop_map(move |(start, minute)| starts[start] + minute * MINUTE)
}

/// A text the provider took.
#[derive(Debug, Clone)]
struct Delivered {
    to: String,
    body: String,
    at_ms: i64,
    program: Option<String>,
    class: ConsentClass,
    origin: Origin,
    flow: Option<String>,
    /// The ledger's last seq when the provider took the text: what had happened by then.
    ledger_seq: u64,
}

/// A provider that records what it was asked to send.
#[derive(Debug)]
struct Recorder {
    clock: Arc<ManualClock>,
    ledger: std::sync::OnceLock<Ledger>,
    sent: Mutex<Vec<Delivered>>,
}

impl Provider for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn send<'a>(&'a self, message: &'a Cleared) -> BoxFuture<'a, Result<Receipt, SendError>> {
        self.sent.lock().unwrap().push(Delivered {
            to: message.to.clone(),
            body: message.body.clone(),
            at_ms: smsflow::clock::Clock::now_ms(self.clock.as_ref()),
            program: message.program.clone(),
            class: message.class,
            origin: message.origin,
            flow: message.flow.clone(),
            ledger_seq: self
                .ledger
                .get()
                .and_then(|ledger| ledger.head().unwrap())
                .map_or(0, |(seq, _)| seq),
        });
        Box::pin(async move {
            Ok(Receipt {
                provider_id: format!("rec-{}", message.id),
            })
        })
    }
}

/// What every engine shares: the plugins, compiled once, and the flows.
struct Shared {
    plugins: Arc<PluginHost>,
    flows: Vec<smsflow::flow::Flow>,
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

static SHARED: LazyLock<Shared> = LazyLock::new(|| {
    // Its own thread and runtime: the first user may be inside a tokio test.
    std::thread::spawn(|| {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The plugins' own clock interface is not what this test is about.
        let plugin_clock: SharedClock = Arc::new(ManualClock::new(0));
        let config = PluginsConfig {
            dir: repository().join("target/plugins"),
            cache_dir: Some(repository().join("target/plugin-cache")),
            ..PluginsConfig::default()
        };
        let kv = Store::temporary().unwrap();
        let plugins = tokio.block_on(async {
            let mut host = PluginHost::new(&config, kv.tables().plugin_kv, plugin_clock).unwrap();
            for name in ["keyword-intents", "faq-replies"] {
                let path = config.dir.join(format!("{name}.wasm"));
                let manifest = Manifest::from_file(&Manifest::path_for(&path)).unwrap();
                let mut grant = Grant {
                    capabilities: manifest.capabilities.clone(),
                    ..Grant::default()
                };
                if name == "faq-replies" {
                    grant.config = toml::from_str(
                        r#"
                        [[faq]]
                        question = "What are your hours?"
                        keywords = ["hours", "open"]
                        answer = "We're open 9am-5pm Mon-Fri. Or text +13125550199 instead!"
                        "#,
                    )
                    .unwrap();
                }
                host.load(&path, manifest, &grant).await.unwrap();
            }
            // Two revocation classifiers written in WAT: one hears "stop" in every text, one
            // traps on every call.
            let dir = tempfile::tempdir().unwrap().keep();
            let always_stop = support::classifier_module("(i32.const 200)").replace(
                r#"(data (i32.const 100) "confirm")"#,
                r#"(data (i32.const 100) "opt_out")"#,
            );
            for (name, module) in [
                ("always-stop", always_stop),
                ("trapping", support::classifier_module("(unreachable)")),
            ] {
                let path = dir.join(format!("{name}.wasm"));
                std::fs::write(&path, support::component("classifier", &module)).unwrap();
                let manifest = Manifest {
                    name: name.into(),
                    version: "0.1.0".into(),
                    world: World::Classifier,
                    description: String::new(),
                    capabilities: vec![],
                };
                host.load(&path, manifest, &Grant::default()).await.unwrap();
            }
            host
        });
        let flows = [
            ("visit.toml", VISIT),
            ("promo.toml", PROMO),
            ("club.toml", CLUB),
        ]
        .into_iter()
        .map(|(file, source)| compile(Path::new(file), source).unwrap())
        .collect();
        Shared {
            plugins: Arc::new(plugins),
            flows,
        }
    })
    .join()
    .unwrap()
});

/// One engine on a fresh store, with its own clock.
struct Engine {
    store: Store,
    engine: smsflow::engine::Engine,
    runtime: Arc<Runtime>,
    recorder: Arc<Recorder>,
    clock: Arc<ManualClock>,
}

/// How many gate decisions of each kind (`sent`, `deferred`, `blocked`) an engine's texts got.
fn gate_decisions(engine: &Engine, totals: &mut BTreeMap<String, usize>) {
    for message in messages(engine) {
        for record in message.gate_log {
            *totals.entry(record.decision).or_default() += 1;
        }
    }
}

/// Every text in the outbox, in queue order.
fn messages(engine: &Engine) -> Vec<OutboundMessage> {
    engine
        .store
        .tables()
        .outbox
        .all()
        .unwrap()
        .into_iter()
        .map(|(_, message)| message)
        .collect()
}

async fn engine(start_ms: i64) -> Engine {
    engine_on(Store::temporary().unwrap(), start_ms).await
}

/// An engine on `store`, which must be empty.
async fn engine_on(store: Store, start_ms: i64) -> Engine {
    engine_with(store, start_ms, &ComplianceConfig::default()).await
}

/// An engine on `store` (empty) with the compliance policy `compliance`.
async fn engine_with(store: Store, start_ms: i64, compliance: &ComplianceConfig) -> Engine {
    let shared = &*SHARED;
    let clock = Arc::new(ManualClock::new(start_ms));
    let recorder = Arc::new(Recorder {
        clock: Arc::clone(&clock),
        ledger: std::sync::OnceLock::new(),
        sent: Mutex::new(Vec::new()),
    });
    let mut config = testing::config();
    config.compliance = compliance.clone();
    config.provider.max_attempts = 3;
    let shared_clock: SharedClock = clock.clone();
    let engine = EngineBuilder::from_config(&config)
        .store(store.clone())
        .clock(shared_clock)
        .provider(recorder.clone())
        .plugins(Arc::clone(&shared.plugins))
        .flows(shared.flows.clone())
        .build()
        .await
        .unwrap();
    let runtime = Arc::clone(engine.runtime());
    recorder
        .ledger
        .set(runtime.compliance().ledger().clone())
        .unwrap();
    Engine {
        store,
        engine,
        runtime,
        recorder,
        clock,
    }
}

impl Engine {
    /// An inbound text through the server's accept pipeline, then processed.
    async fn receive(&self, provider: &'static str, message_id: &str, from: &str, text: &str) {
        let inbound = InboundText {
            provider,
            message_id: message_id.to_owned(),
            from: from.to_owned(),
            to: OURS.to_owned(),
            body: text.to_owned(),
            num_media: 0,
        };
        self.engine.ingest().accept(inbound).await.unwrap();
        self.engine.process_inbox().await.unwrap();
    }
}

const PROGRAMS: [&str; 3] = ["clinic", "deals", "club"];

async fn apply(engine: &Engine, step: usize, action: &Action) {
    let runtime = &engine.runtime;
    let clock = engine.clock.as_ref();
    let now = smsflow::clock::Clock::now_ms(clock);
    match action {
        Action::Inbound { contact, text } => {
            let from = CONTACTS[*contact];
            let (text, _) = TEXTS[*text];
            engine
                .receive("recorder", &format!("SM{step}"), from, text)
                .await;
        }
        Action::Start { contact, promo } => {
            // Refusals (a run already active) are part of the game.
            let _ = runtime
                .start(StartRequest {
                    flow: if *promo { "promo" } else { "visit" }.to_owned(),
                    from: OURS.to_owned(),
                    to: CONTACTS[*contact].to_owned(),
                    fields: BTreeMap::new(),
                    locale: None,
                    ..StartRequest::default()
                })
                .await;
        }
        Action::Consent { contact, program } => {
            runtime
                .compliance()
                .ledger()
                .append(NewConsent {
                    number: CONTACTS[*contact].to_owned(),
                    program: PROGRAMS[*program].to_owned(),
                    class: ConsentClass::Marketing,
                    event: ConsentEvent::OptIn,
                    source: ConsentSource::Api {
                        actor: Some("web form".to_owned()),
                    },
                    disclosure: Some("I agree to receive marketing texts.".to_owned()),
                    frequency: None,
                    raw_text: None,
                    at_ms: now,
                })
                .unwrap();
        }
        Action::AgentReply { contact, text } => {
            let text = [
                "Hi, this is Ana from the front desk.",
                "Following up on your visit.",
            ][*text];
            let _ = runtime
                .agent_reply(OURS, CONTACTS[*contact], "ana", text)
                .await;
        }
        Action::Advance { minutes } => clock.advance(minutes * MINUTE),
    }
    runtime.fire_due_timers().await.unwrap();
    testing::deliver_all(engine.engine.outbox()).await.unwrap();
}

/// When a consent change happened: (time, ledger seq).
type Change = (i64, u64);

/// The oracle's consent when the ledger ended at `ledger_seq`: the latest opt-out (of the
/// program or of all) and the latest opt-in of the program and class, each as (time, seq).
fn consent_at(
    records: &[ConsentRecord],
    number: &str,
    program: Option<&str>,
    class: ConsentClass,
    ledger_seq: u64,
) -> (Option<Change>, Option<Change>) {
    let program = program.unwrap_or(ALL_PROGRAMS);
    let relevant = records
        .iter()
        .filter(|record| record.number == number && record.seq <= ledger_seq);
    let mut opted_out = None;
    let mut opted_in = None;
    for record in relevant {
        let when = Some((record.at_ms, record.seq));
        match record.event {
            ConsentEvent::OptOut if record.program == program || record.program == ALL_PROGRAMS => {
                opted_out = opted_out.max(when);
            }
            ConsentEvent::OptIn if record.program == program && record.class == class => {
                opted_in = opted_in.max(when);
            }
            _ => {}
        }
    }
    (opted_out, opted_in)
}

/// The allowed local window for `number` on a local weekday (Monday = 1), in minutes of the
/// day, by the test's own table.
fn window(number: &str, weekday: i8) -> (i32, i32) {
    match &number[..5] {
        "+1305" => (8 * 60, 20 * 60),
        "+1512" if weekday == 7 => (12 * 60, 21 * 60),
        "+1512" => (9 * 60, 21 * 60),
        _ => (8 * 60, 21 * 60),
    }
}

fn zones(number: &str) -> Vec<jiff::tz::TimeZone> {
    let Ok(parsed) = number.parse::<namba::PhoneNumber>() else {
        return Vec::new();
    };
    namba::TimeZones::for_number(&parsed)
        .map(|zones| {
            zones
                .iter()
                .filter_map(|name| jiff::tz::TimeZone::get(name).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks the texts sent since the first `checked` (the earlier ones passed before: what they
/// are checked against never changes).
fn check_invariants(
    engine: &Engine,
    certain_opt_outs: &[(String, i64)],
    checked: usize,
) -> Result<(), String> {
    let sent = engine.recorder.sent.lock().unwrap().clone();
    let records = engine.runtime.compliance().ledger().all().unwrap();
    for (number, at_ms) in certain_opt_outs {
        let recorded = records.iter().any(|record| {
            record.number == *number
                && record.event == ConsentEvent::OptOut
                && record.at_ms == *at_ms
        });
        if !recorded {
            return Err(format!(
                "the opt-out from {number} at {at_ms} is not in the ledger"
            ));
        }
    }
    for (index, text) in sent.iter().enumerate().skip(checked) {
        if !CONTACTS.contains(&text.to.as_str()) {
            return Err(format!("text to a number nobody texted: {text:?}"));
        }
        let (opted_out, opted_in) = consent_at(
            &records,
            &text.to,
            text.program.as_deref(),
            text.class,
            text.ledger_seq,
        );
        let opted_out_now = opted_out.is_some_and(|out| opted_in.is_none_or(|inn| out > inn));
        match text.origin {
            Origin::OptOutConfirmation => {
                let Some((out, _)) = opted_out else {
                    return Err(format!("a confirmation with no opt-out: {text:?}"));
                };
                if text.at_ms - out > 5 * MINUTE {
                    return Err(format!("a late confirmation: {text:?}"));
                }
                let confirmed_before = sent[..index].iter().any(|other| {
                    other.to == text.to
                        && other.origin == Origin::OptOutConfirmation
                        && other.at_ms >= out
                });
                if confirmed_before {
                    return Err(format!("a second confirmation of one opt-out: {text:?}"));
                }
            }
            Origin::Help => {}
            _ if opted_out_now => {
                return Err(format!("a text to an opted-out number: {text:?}"));
            }
            _ => {}
        }
        if text.class == ConsentClass::Marketing && (opted_in.is_none() || opted_out_now) {
            return Err(format!("marketing without consent: {text:?}"));
        }
        if !text.origin.is_compliance_reply() {
            let zones = zones(&text.to);
            if zones.is_empty() {
                return Err(format!("a text to a number with no known zone: {text:?}"));
            }
            let instant = jiff::Timestamp::from_millisecond(text.at_ms).unwrap();
            for zone in zones {
                let local = instant.to_zoned(zone.clone());
                let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
                let (open, close) = window(&text.to, local.weekday().to_monday_one_offset());
                if minute < open || minute >= close {
                    return Err(format!(
                        "a text at {local} in {}, outside {open}..{close}: {text:?}",
                        zone.iana_name().unwrap_or("?")
                    ));
                }
            }
            let day_before = sent[..=index]
                .iter()
                .filter(|other| other.to == text.to && other.at_ms > text.at_ms - DAY)
                .filter(|other| !other.origin.is_compliance_reply());
            let to_number: Vec<&Delivered> = day_before.collect();
            if to_number.len() > 20 {
                return Err(format!("over the per-number cap: {text:?}"));
            }
            let same_program = to_number
                .iter()
                .filter(|other| other.program == text.program)
                .count();
            if same_program > 10 {
                return Err(format!("over the per-program cap: {text:?}"));
            }
            if text.to.starts_with("+1305") && text.class == ConsentClass::Marketing {
                let same_subject = to_number
                    .iter()
                    .filter(|other| {
                        other.class == ConsentClass::Marketing && other.flow == text.flow
                    })
                    .count();
                if same_subject > 3 {
                    return Err(format!("over Florida's same-subject cap: {text:?}"));
                }
            }
        }
        // Each opt-out gets its own confirmation, so only other texts count for the loop guard.
        let identical = sent[..=index]
            .iter()
            .filter(|other| other.origin != Origin::OptOutConfirmation)
            .filter(|other| {
                other.to == text.to
                    && other.body == text.body
                    && other.at_ms > text.at_ms - 10 * MINUTE
            })
            .count();
        if identical > 2 && text.origin != Origin::OptOutConfirmation {
            return Err(format!("the loop guard let a text repeat: {text:?}"));
        }
    }
    Ok(())
}

fn run_case(
    tokio: &tokio::runtime::Runtime,
    store: &Store,
    start_ms: i64,
    actions: &[Action],
    totals: &mut BTreeMap<String, usize>,
) -> Result<(), TestCaseError> {
    // One database per thread, erased between cases: creating one per case costs more than
    // the case.
    store.erase_temporary().unwrap();
    let mut certain_opt_outs = Vec::new();
    tokio.block_on(async {
        let engine = engine_on(store.clone(), start_ms).await;
        for (step, action) in actions.iter().enumerate() {
            if let Action::Inbound { contact, text } = action
                && TEXTS[*text].1
            {
                certain_opt_outs.push((
                    CONTACTS[*contact].to_owned(),
                    smsflow::clock::Clock::now_ms(engine.clock.as_ref()),
                ));
            }
            let checked = engine.recorder.sent.lock().unwrap().len();
            apply(&engine, step, action).await;
            check_invariants(&engine, &certain_opt_outs, checked).map_err(|problem| {
                TestCaseError::fail(format!("after step {step} ({action:?}): {problem}"))
            })?;
        }
        gate_decisions(&engine, totals);
        Ok(())
    })
}

#[test]
fn no_sequence_of_events_breaks_the_compliance_invariants() {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(2000);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let threads = u32::try_from(threads).unwrap_or(1).min(cases.max(1));
    let _ = &*SHARED;
    // Each thread runs its share of the cases with its own runner (and random seed).
    let totals: Vec<BTreeMap<String, usize>> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..threads)
            .map(|thread| {
                let share = cases / threads + u32::from(thread < cases % threads);
                scope.spawn(move || run_cases(share))
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    let mut decisions = BTreeMap::new();
    for total in totals {
        for (decision, count) in total {
            *decisions.entry(decision).or_insert(0) += count;
        }
    }
    println!("{cases} cases on {threads} threads; gate decisions: {decisions:?}");
    // The property must have had something to check: texts sent, held back and stopped.
    for decision in ["sent", "deferred", "blocked"] {
        let count = decisions.get(decision).copied().unwrap_or(0);
        assert!(
            count > cases as usize / 10,
            "only {count} `{decision}` decisions in {cases} cases"
        );
    }
}

/// Runs `cases` cases and returns their gate decisions by kind; panics with the shrunk
/// failing sequence if one breaks an invariant.
fn run_cases(cases: u32) -> BTreeMap<String, usize> {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Store::temporary().unwrap();
    let totals = Mutex::new(BTreeMap::new());
    let result = runner.run(
        &(start_instant(), proptest::collection::vec(action(), 1..24)),
        |(start_ms, actions)| {
            run_case(
                &tokio,
                &store,
                start_ms,
                &actions,
                &mut totals.lock().unwrap(),
            )
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    totals.into_inner().unwrap()
}

// Targeted cases: the edges the property reaches only by chance.

fn at(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

impl Engine {
    async fn start(&self, contact: &str, flow: &str) {
        self.runtime
            .start(StartRequest {
                flow: flow.to_owned(),
                from: OURS.to_owned(),
                to: contact.to_owned(),
                fields: BTreeMap::new(),
                locale: None,
                ..StartRequest::default()
            })
            .await
            .unwrap();
        self.deliver().await;
    }

    async fn text(&self, contact: &str, id: &str, text: &str) {
        let message_id = id.strip_prefix("recorder:").unwrap_or(id);
        self.receive("recorder", message_id, contact, text).await;
        self.deliver().await;
    }

    async fn deliver(&self) {
        self.runtime.fire_due_timers().await.unwrap();
        testing::deliver_all(self.engine.outbox()).await.unwrap();
    }

    async fn advance_to(&self, rfc3339: &str) {
        self.clock.set(at(rfc3339));
        self.deliver().await;
    }

    fn sent_to(&self, contact: &str) -> Vec<Delivered> {
        let sent = self.recorder.sent.lock().unwrap();
        sent.iter()
            .filter(|text| text.to == contact)
            .cloned()
            .collect()
    }

    fn last_message(&self) -> OutboundMessage {
        messages(self).pop().unwrap()
    }
}

fn consent(engine: &Engine, contact: &str, program: &str) {
    engine
        .runtime
        .compliance()
        .ledger()
        .append(NewConsent {
            number: contact.to_owned(),
            program: program.to_owned(),
            class: ConsentClass::Marketing,
            event: ConsentEvent::OptIn,
            source: ConsentSource::Api { actor: None },
            disclosure: Some("Yes, text me offers.".to_owned()),
            frequency: None,
            raw_text: None,
            at_ms: smsflow::clock::Clock::now_ms(engine.clock.as_ref()),
        })
        .unwrap();
}

#[tokio::test]
async fn a_number_in_two_zones_waits_for_the_later_morning() {
    // 208 is Boise (Mountain) and parts of Idaho on Pacific time: 08:30 in Boise is 07:30 in
    // the Pacific part, so the text waits for 08:00 Pacific.
    let engine = engine(at("2026-03-03T15:30:00Z")).await;
    engine.start("+12085550103", "visit").await;
    let message = engine.last_message();
    let gate = message.gate.unwrap();
    assert_eq!(gate.decision, "deferred", "{gate:?}");
    assert_eq!(gate.until.as_deref(), Some("2026-03-03T16:00:00Z"));
    assert!(engine.sent_to("+12085550103").is_empty());
    engine.advance_to("2026-03-03T15:59:59Z").await;
    assert!(engine.sent_to("+12085550103").is_empty());
    engine.advance_to("2026-03-03T16:00:00Z").await;
    assert_eq!(engine.sent_to("+12085550103").len(), 1);
    let decisions: Vec<String> = engine
        .last_message()
        .gate_log
        .into_iter()
        .map(|record| record.decision)
        .collect();
    assert_eq!(decisions, ["deferred", "sent"]);
}

#[tokio::test]
async fn a_text_valid_for_less_than_the_night_expires_instead_of_waiting() {
    // 06:00 in New York: the window opens at 08:00, two hours on.
    let engine = engine(at("2026-03-03T11:00:00Z")).await;
    let start = |to: &str, valid_for_ms| StartRequest {
        flow: "visit".to_owned(),
        from: OURS.to_owned(),
        to: to.to_owned(),
        valid_for_ms,
        ..StartRequest::default()
    };
    // Valid for an hour: waiting two would send it stale, so it is blocked, saying when it
    // expired.
    engine
        .runtime
        .start(start("+12125550100", Some(3_600_000)))
        .await
        .unwrap();
    engine.deliver().await;
    let message = engine.last_message();
    assert_eq!(message.valid_until_ms, Some(at("2026-03-03T12:00:00Z")));
    let gate = message.gate.unwrap();
    assert_eq!(gate.decision, "blocked", "{gate:?}");
    assert!(
        gate.reason
            .as_deref()
            .unwrap()
            .contains("2026-03-03T12:00:00Z"),
        "{gate:?}"
    );
    // Valid for three hours (or by the operator's default): it waits for 08:00.
    engine
        .runtime
        .start(start("+12125550101", Some(3 * 3_600_000)))
        .await
        .unwrap();
    engine.deliver().await;
    let gate = engine.last_message().gate.unwrap();
    assert_eq!(gate.decision, "deferred", "{gate:?}");
    assert_eq!(gate.until.as_deref(), Some("2026-03-03T13:00:00Z"));
}

#[tokio::test]
async fn a_number_with_no_known_zone_fails_closed() {
    let engine = engine(at("2026-03-03T17:00:00Z")).await;
    engine.start("+15555550105", "visit").await;
    let message = engine.last_message();
    let gate = message.gate.unwrap();
    assert_eq!(gate.decision, "blocked");
    assert!(gate.reason.unwrap().contains("time zone is unknown"));
    assert!(engine.sent_to("+15555550105").is_empty());
}

#[tokio::test]
async fn the_window_opens_at_eight_local_on_both_daylight_saving_days() {
    // Spring forward (2026-03-08): 08:00 EDT is 12:00 UTC, not 13:00.
    let engine = engine(at("2026-03-08T11:59:00Z")).await;
    engine.start("+12125550100", "visit").await;
    assert_eq!(
        engine.last_message().gate.unwrap().until.as_deref(),
        Some("2026-03-08T12:00:00Z")
    );
    engine.advance_to("2026-03-08T12:00:00Z").await;
    assert_eq!(engine.sent_to("+12125550100").len(), 1);

    // Fall back (2026-11-01): 08:00 EST is 13:00 UTC; at 12:30 UTC it is 07:30 local.
    let engine = engine_at_fall_back().await;
    assert_eq!(
        engine.last_message().gate.unwrap().until.as_deref(),
        Some("2026-11-01T13:00:00Z")
    );
}

async fn engine_at_fall_back() -> Engine {
    let engine = engine(at("2026-11-01T12:30:00Z")).await;
    engine.start("+12125550100", "visit").await;
    engine
}

#[tokio::test]
async fn texas_sundays_start_at_noon() {
    // 2026-03-01 is a Sunday; 11:59 in Austin (CST) is 17:59 UTC.
    let engine = engine(at("2026-03-01T17:59:00Z")).await;
    engine.start("+15125550102", "visit").await;
    assert_eq!(
        engine.last_message().gate.unwrap().until.as_deref(),
        Some("2026-03-01T18:00:00Z")
    );
    // The same minute on a Monday is past 09:00: sent at once.
    let monday = engine_at_noon_monday().await;
    assert_eq!(monday.sent_to("+15125550102").len(), 1);
}

async fn engine_at_noon_monday() -> Engine {
    let engine = engine(at("2026-03-02T17:59:00Z")).await;
    engine.start("+15125550102", "visit").await;
    engine
}

#[tokio::test]
async fn stop_variants_opt_out_once_and_only_once_confirmed() {
    let engine = engine(at("2026-03-03T17:00:00Z")).await;
    let contact = "+12125550100";
    engine.start(contact, "visit").await;
    engine.text(contact, "recorder:SM1", "ＳＴＯＰ 🛑").await;
    engine.text(contact, "recorder:SM2", "sToP!!!").await;
    let sent = engine.sent_to(contact);
    let confirmations: Vec<&Delivered> = sent
        .iter()
        .filter(|text| text.origin == Origin::OptOutConfirmation)
        .collect();
    assert_eq!(confirmations.len(), 1, "{sent:?}");
    assert!(confirmations[0].body.contains("unsubscribed"));
    // The run ended: no reminder later, and nothing a flow starts gets through.
    engine.advance_to("2026-03-03T21:00:00Z").await;
    engine.start(contact, "visit").await;
    assert_eq!(engine.sent_to(contact).len(), sent.len());
    let gate = engine.last_message().gate.unwrap();
    assert_eq!(gate.decision, "blocked");
    assert!(
        gate.reason.as_deref().unwrap().contains("opted out"),
        "{gate:?}"
    );
}

#[tokio::test]
async fn a_plugin_draft_goes_only_to_the_contact_and_through_the_gate() {
    let engine = engine(at("2026-03-03T17:00:00Z")).await;
    let contact = "+12125550100";
    engine.start(contact, "visit").await;
    // faq-replies drafts an answer naming another number: the draft has no recipient of its
    // own (the WIT `draft` record is text, confidence and a next step), so it goes to the
    // conversation's contact.
    engine
        .text(contact, "recorder:SM1", "what are your hours?")
        .await;
    let sent = engine.recorder.sent.lock().unwrap().clone();
    let draft = sent.last().unwrap();
    assert_eq!(draft.origin, Origin::Draft);
    assert_eq!(draft.to, contact);
    assert!(draft.body.contains("+13125550199"));
    assert!(sent.iter().all(|text| text.to == contact));
    // Opted out, the next draft is stopped at the gate.
    engine.text(contact, "recorder:SM2", "STOP").await;
    engine.start(contact, "visit").await;
    engine
        .text(contact, "recorder:SM3", "what are your hours?")
        .await;
    let blocked = messages(&engine)
        .into_iter()
        .rfind(|message| message.origin == Origin::Draft)
        .unwrap();
    assert_eq!(blocked.gate.unwrap().decision, "blocked");
}

#[tokio::test]
async fn an_agent_reply_to_an_opted_out_number_is_blocked() {
    let engine = engine(at("2026-03-03T17:00:00Z")).await;
    let contact = "+12125550100";
    engine.start(contact, "visit").await;
    engine
        .runtime
        .agent_reply(OURS, contact, "ana", "Hi, Ana here.")
        .await
        .unwrap();
    engine.deliver().await;
    assert_eq!(engine.last_message().gate.unwrap().decision, "sent");
    engine.text(contact, "recorder:SM1", "STOP").await;
    let before = engine.sent_to(contact).len();
    engine
        .runtime
        .agent_reply(OURS, contact, "ana", "Are you sure?")
        .await
        .unwrap();
    engine.deliver().await;
    assert_eq!(engine.sent_to(contact).len(), before);
    let message = engine.last_message();
    assert_eq!(message.origin, Origin::Agent);
    assert_eq!(message.gate.unwrap().decision, "blocked");
}

#[tokio::test]
async fn content_rules_name_the_brand_first_and_cap_the_length() {
    let engine = engine(at("2026-03-03T17:00:00Z")).await;
    let contact = "+12125550100";
    engine.start(contact, "visit").await;
    // The first text already names the brand and STOP: unchanged.
    assert!(
        engine.sent_to(contact)[0]
            .body
            .starts_with("Bright Smile: your visit")
    );
    let long = "Your visit details follow. ".repeat(40);
    engine
        .runtime
        .agent_reply(OURS, contact, "ana", &long)
        .await
        .unwrap();
    engine.deliver().await;
    let gate = engine.last_message().gate.unwrap();
    assert_eq!(gate.decision, "blocked");
    assert!(gate.reason.unwrap().contains("segments"));
}

#[tokio::test]
async fn marketing_needs_consent_and_florida_allows_three_on_one_subject() {
    let engine = engine(at("2026-03-03T15:00:00Z")).await;
    let contact = "+13055550101";
    engine.start(contact, "promo").await;
    let gate = engine.last_message().gate.unwrap();
    assert_eq!(gate.decision, "blocked");
    assert!(
        gate.reason
            .unwrap()
            .contains("marketing without marketing consent")
    );
    consent(&engine, contact, "deals");
    for _ in 0..3 {
        engine.clock.advance(11 * MINUTE);
        engine.start(contact, "promo").await;
    }
    assert_eq!(engine.sent_to(contact).len(), 3);
    engine.clock.advance(11 * MINUTE);
    engine.start(contact, "promo").await;
    let gate = engine.last_message().gate.unwrap();
    assert_eq!(gate.decision, "deferred", "{gate:?}");
    assert!(gate.reason.unwrap().contains("FL"));
}

#[tokio::test]
async fn the_loop_guard_stops_a_text_repeated_in_minutes() {
    let engine = engine(at("2026-03-03T17:00:00Z")).await;
    let contact = "+12125550100";
    engine.start(contact, "visit").await;
    for _ in 0..3 {
        engine
            .runtime
            .agent_reply(OURS, contact, "ana", "Please call us.")
            .await
            .unwrap();
        engine.deliver().await;
    }
    let gate = engine.last_message().gate.unwrap();
    assert_eq!(gate.decision, "blocked");
    assert!(gate.reason.unwrap().contains("loop guard"));
}

#[tokio::test]
async fn a_revocation_classifier_can_only_make_the_host_more_careful() {
    let config = |plugin: &str| ComplianceConfig {
        revocation_classifier: Some(plugin.to_owned()),
        ..ComplianceConfig::default()
    };
    let now = at("2026-03-03T17:00:00Z");
    let engine = engine_with(Store::temporary().unwrap(), now, &config("always-stop")).await;
    // The rules were unsure; with the plugin agreeing it is an opt-out.
    engine.start("+12125550100", "visit").await;
    engine
        .text(
            "+12125550100",
            "recorder:SM1",
            "Stop signs at the intersection?",
        )
        .await;
    let origins: Vec<Origin> = engine
        .sent_to("+12125550100")
        .iter()
        .map(|text| text.origin)
        .collect();
    assert_eq!(origins, [Origin::Flow, Origin::OptOutConfirmation]);
    // The rules saw nothing; with the plugin, it is worth one question.
    engine.start("+14155550104", "visit").await;
    engine.text("+14155550104", "recorder:SM2", "hello").await;
    assert_eq!(
        engine.sent_to("+14155550104").last().unwrap().origin,
        Origin::RevocationQuestion
    );

    // A plugin that traps changes nothing: the text goes to the flow, STOP still works.
    let engine = engine_with(Store::temporary().unwrap(), now, &config("trapping")).await;
    engine.start("+12125550100", "visit").await;
    engine.text("+12125550100", "recorder:SM1", "YES").await;
    assert_eq!(
        engine.sent_to("+12125550100").last().unwrap().body,
        "Thanks, see you then!"
    );
    engine.start("+14155550104", "visit").await;
    engine.text("+14155550104", "recorder:SM2", "STOP").await;
    assert_eq!(
        engine.sent_to("+14155550104").last().unwrap().origin,
        Origin::OptOutConfirmation
    );
}
