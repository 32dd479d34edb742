//! The handoff desk on a real sled store with the real keyword-intents plugin, on a manual
//! clock: the bot is silent while people have a conversation (no plugin, no flow text) but the
//! host still answers STOP; claims are atomic; balanced queues drain oldest first under caps
//! with ties to the agent idle longest; service-level clocks start at the handoff and a breach
//! raises `conversation.sla_breached` and re-routes; a resolved conversation reopens with its
//! agent; release resumes the flow at a step.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use smsflow::agents::NewAgent;
use smsflow::clock::Clock as _;
use smsflow::clock::{ManualClock, SharedClock};
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::events::EventKind;
use smsflow::flow::compile::compile;
use smsflow::flow::conversation::{CaseState, ConversationKey, Event, HandoffCase};
use smsflow::handoff::{CaseError, DeskAction, DeskCommand, DeskError, QueueConfig};
use smsflow::plugin::{Grant, Manifest, PluginCalls, PluginHost};
use smsflow::sms::InboundText;
use smsflow::store::Store;
use smsflow::store::agents::{Presence, Role};
use smsflow::testing::{self, CountingCalls, RecordingProvider};

const OURS: &str = "+15550001000";
/// Monday 2026-01-05 10:00 in New York: inside quiet-hours limits for 212 numbers.
const MONDAY_10AM_NY: i64 = 1_767_625_200_000;
const MINUTE: i64 = 60_000;

/// Texting HELPDESK asks a question, classifies the answer with the plugin, and hands off to
/// `billing` on a cue word or an unrecognised intent.
const FLOW: &str = r#"
id = "helpdesk"
program = "care"
kind = "transactional"
start = "ask"

[triggers]
keywords = ["HELPDESK"]

[escalation]
queue = "billing"
cue_words = ["refund"]

[steps.ask]
type = "send"
text = "What can we help with?"
next = "wait_answer"

[steps.wait_answer]
type = "wait"
timeout = "1h"
on_reply = "understand"
on_timeout = "bye"

[steps.understand]
type = "classify"
plugin = "keyword-intents"
routes = { confirm = "bye", cancel = "survey" }
default = "human"

[steps.human]
type = "handoff"
queue = "billing"
reason = "needs a person"
text = "A person will text you shortly."

[steps.survey]
type = "send"
text = "How did we do? Reply 1-5."
next = "bye"

[steps.bye]
type = "end"
text = "Thanks, goodbye."
"#;

/// Texting SUPPORT hands off to `support` at once.
const SUPPORT: &str = r#"
id = "support"
program = "care"
kind = "transactional"
start = "human"

[triggers]
keywords = ["SUPPORT"]

[steps.human]
type = "handoff"
queue = "support"
reason = "asked for support"
"#;

struct Desk {
    engine: Engine,
    clock: Arc<ManualClock>,
    recorder: Arc<RecordingProvider>,
    calls: Arc<CountingCalls>,
    seq: std::sync::atomic::AtomicU64,
}

async fn desk(db: &Path, queues: Vec<QueueConfig>) -> Desk {
    let store = Store::open(db).unwrap();
    let clock = Arc::new(ManualClock::new(MONDAY_10AM_NY));
    let shared: SharedClock = clock.clone();
    let mut config = testing::config();
    config.queues = queues;
    config
        .canned
        .insert("thanks".into(), "Thanks {{first_name}}, sorted.".into());
    config.webhooks = vec![
        toml::from_str(
            "url = \"http://127.0.0.1:9/hooks\"\nsecret = \"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\"",
        )
        .unwrap(),
    ];
    let mut host =
        PluginHost::new(&config.plugins, store.tables().plugin_kv, shared.clone()).unwrap();
    let path = config.plugins.dir.join("keyword-intents.wasm");
    let manifest = Manifest::from_file(&Manifest::path_for(&path)).unwrap();
    host.load(&path, manifest, &Grant::default()).await.unwrap();
    let host = Arc::new(host);
    let calls = Arc::new(CountingCalls::new(Arc::clone(&host) as Arc<dyn PluginCalls>));
    let recorder = Arc::new(RecordingProvider::default());
    let engine = EngineBuilder::from_config(&config)
        .store(store)
        .clock(shared)
        .provider(recorder.clone())
        .plugins(host)
        .plugin_calls(calls.clone())
        .flows(vec![
            compile(Path::new("helpdesk.toml"), FLOW).unwrap(),
            compile(Path::new("support.toml"), SUPPORT).unwrap(),
        ])
        .build()
        .await
        .unwrap();
    Desk {
        engine,
        clock,
        recorder,
        calls,
        seq: Default::default(),
    }
}

impl Desk {
    /// A text from `contact` the way a provider's webhook brings it: screened, in the inbox,
    /// then processed.
    async fn text(&self, contact: &str, text: &str) {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let inbound = InboundText {
            provider: "twilio",
            message_id: format!("SM{n:032}"),
            from: contact.into(),
            to: OURS.into(),
            body: text.into(),
            num_media: 0,
        };
        self.engine.ingest().accept(inbound).await.unwrap();
        self.engine.process_inbox().await.unwrap();
    }

    /// A conversation handed off by the cue word.
    async fn handed_off(&self, contact: &str) {
        self.text(contact, "HELPDESK").await;
        self.text(contact, "I want a refund").await;
        assert_eq!(self.case(contact).state, CaseState::Waiting);
    }

    fn case(&self, contact: &str) -> HandoffCase {
        self.engine.desk().case(&key(contact)).unwrap().unwrap()
    }

    async fn act(
        &self,
        contact: &str,
        agent: &str,
        action: DeskAction,
    ) -> Result<HandoffCase, DeskError> {
        let command = DeskCommand {
            agent: Some(agent.into()),
            action,
        };
        Ok(self.engine.desk().act(&key(contact), command).await?.case)
    }

    fn agent(&self, name: &str, presence: Presence) {
        self.agent_of(name, &["billing"], presence);
    }

    fn agent_of(&self, name: &str, queues: &[&str], presence: Presence) {
        let agents = self.engine.agents();
        agents
            .add(NewAgent {
                name: name.into(),
                queues: queues.iter().map(|queue| (*queue).to_owned()).collect(),
                role: Role::Agent,
            })
            .unwrap();
        agents.set_presence(name, presence).unwrap();
    }

    fn outbound(&self, contact: &str) -> Vec<(String, String)> {
        self.engine
            .runtime()
            .transcript(OURS, contact)
            .unwrap()
            .into_iter()
            .filter_map(|entry| match entry.event {
                Event::Outbound { step, text, .. } => Some((step, text)),
                _ => None,
            })
            .collect()
    }

    fn pending_events(&self, kind: EventKind) -> Vec<serde_json::Value> {
        self.engine
            .events()
            .unwrap()
            .pending()
            .unwrap()
            .into_iter()
            .filter(|delivery| delivery.kind == kind.as_str())
            .map(|delivery| {
                serde_json::from_str::<serde_json::Value>(&delivery.body).unwrap()["data"].clone()
            })
            .collect()
    }
}

fn key(contact: &str) -> ConversationKey {
    ConversationKey::new(OURS, contact)
}

fn reply(text: &str) -> DeskAction {
    DeskAction::Reply {
        text: text.into(),
        version: None,
        confirm: false,
    }
}

fn balanced(cap: usize) -> QueueConfig {
    QueueConfig {
        name: "billing".into(),
        assignment: smsflow::handoff::config::Assignment::Balanced,
        max_per_agent: cap,
        ..QueueConfig::default()
    }
}

#[tokio::test]
async fn during_a_handoff_no_plugin_runs_and_no_flow_text_is_queued_but_stop_still_opts_out() {
    let dir = tempfile::tempdir().unwrap();
    let desk = desk(&dir.path().join("db"), vec![]).await;
    let contact = "+12125550100";
    desk.text(contact, "HELPDESK").await;
    desk.text(contact, "something odd happened").await;
    assert_eq!(
        desk.calls.count(),
        1,
        "the classifier ran before the handoff"
    );
    let case = desk.case(contact);
    assert_eq!(
        (case.queue.as_str(), case.reason.as_str()),
        ("billing", "needs a person")
    );
    assert_eq!(case.context.flow.as_deref(), Some("helpdesk"));
    assert_eq!(case.context.step.as_deref(), Some("human"));
    assert!(
        case.context.intent.is_some(),
        "the classifier's intent is kept for the agent"
    );
    let texts_before = desk.outbound(contact).len();

    // Texts during the handoff: a cue word, a keyword, a question asked twice, a confirm.
    for text in [
        "refund now",
        "HELPDESK",
        "where is it?",
        "where is it?",
        "yes",
    ] {
        desk.text(contact, text).await;
    }
    assert_eq!(
        desk.calls.count(),
        1,
        "no plugin was called during the handoff"
    );
    assert_eq!(
        desk.outbound(contact).len(),
        texts_before,
        "no flow text was queued"
    );
    let case = desk.case(contact);
    assert_eq!(
        case.last_inbound.as_ref().unwrap().text,
        "yes",
        "the agent sees every text"
    );
    assert_eq!(case.state, CaseState::Waiting);

    // STOP is still the host's: opted out, confirmed once, and the agent's next reply blocked.
    testing::deliver_all(desk.engine.outbox()).await.unwrap();
    desk.text(contact, "STOP").await;
    let outbound = desk.outbound(contact);
    assert_eq!(outbound.len(), texts_before + 1);
    assert!(
        outbound.last().unwrap().0.starts_with("compliance:"),
        "{outbound:?}"
    );
    assert_eq!(desk.calls.count(), 1);
    desk.act(contact, "ana", DeskAction::Claim).await.unwrap();
    desk.act(contact, "ana", reply("Hi, Ana here about your refund."))
        .await
        .unwrap();
    testing::deliver_all(desk.engine.outbox()).await.unwrap();
    let bodies = desk.recorder.bodies_to(contact);
    assert!(
        !bodies.iter().any(|body| body.contains("Ana here")),
        "{bodies:?}"
    );
    let transcript = desk.engine.runtime().transcript(OURS, contact).unwrap();
    let Some(Event::Outbound { message_id, .. }) = transcript.last().map(|entry| &entry.event)
    else {
        panic!("the reply is in the transcript");
    };
    let message = desk.engine.outbox().message(message_id).unwrap().unwrap();
    let gate = message
        .gate
        .clone()
        .unwrap_or_else(|| panic!("no decision: {message:?}"));
    assert_eq!(gate.decision, "blocked", "{gate:?}");
}

#[tokio::test]
async fn two_agents_claiming_at_once_one_wins_and_the_other_is_told_who() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Arc::new(desk(&dir.path().join("db"), vec![]).await);
    let contact = "+12125550101";
    desk.handed_off(contact).await;
    let (a, b) = tokio::join!(
        desk.act(contact, "ana", DeskAction::Claim),
        desk.act(contact, "bob", DeskAction::Claim)
    );
    let (winner, loser) = match (a, b) {
        (Ok(_), Err(error)) => ("ana", error),
        (Err(error), Ok(_)) => ("bob", error),
        other => panic!("exactly one claim wins: {other:?}"),
    };
    assert!(
        matches!(&loser, DeskError::Case(CaseError::HeldBy { holder }) if holder == winner),
        "{loser:?}"
    );
    assert_eq!(desk.case(contact).assignee.as_deref(), Some(winner));
    // The loser cannot reply or resolve either; nothing was queued for them.
    let other = if winner == "ana" { "bob" } else { "ana" };
    let before = desk.outbound(contact).len();
    assert!(desk.act(contact, other, reply("me too")).await.is_err());
    assert!(desk.act(contact, other, DeskAction::Resolve).await.is_err());
    assert_eq!(desk.outbound(contact).len(), before);
}

#[tokio::test]
async fn balanced_assignment_fills_the_least_loaded_under_the_cap_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let desk = desk(&dir.path().join("db"), vec![balanced(2)]).await;
    desk.agent("ana", Presence::Available);
    desk.agent("bob", Presence::Available);
    desk.agent("cy", Presence::Busy);
    // Five conversations hand off a minute apart, before anyone's clock runs.
    let contacts: Vec<String> = (0..5).map(|i| format!("+1212555020{i}")).collect();
    desk.agent("dee", Presence::Offline);
    for contact in &contacts {
        desk.handed_off(contact).await;
        desk.clock.advance(MINUTE);
    }
    // Only the balanced pass assigns (handoffs themselves do not wait for it).
    let assigned = desk.engine.desk().tick().await.unwrap();
    assert_eq!(assigned, 4, "two agents, a cap of two each");
    let holder = |contact: &str| desk.case(contact).assignee;
    // Ties go to the agent idle longest, then alternate as loads grow: oldest four assigned.
    let holders: Vec<Option<String>> = contacts.iter().map(|c| holder(c)).collect();
    assert_eq!(
        holders
            .iter()
            .filter(|h| h.as_deref() == Some("ana"))
            .count(),
        2
    );
    assert_eq!(
        holders
            .iter()
            .filter(|h| h.as_deref() == Some("bob"))
            .count(),
        2
    );
    assert_eq!(
        holders[4], None,
        "the newest waits: both agents are at their cap"
    );
    assert_eq!(
        holders[0].as_deref(),
        Some("ana"),
        "ana and bob tie at nothing: by name"
    );
    assert_eq!(
        holders[1].as_deref(),
        Some("bob"),
        "then bob, the one idle longer"
    );

    // bob resolves one: capacity frees up and the queue drains to him at once.
    let bobs = contacts
        .iter()
        .position(|c| holder(c).as_deref() == Some("bob"))
        .unwrap();
    desk.act(&contacts[bobs], "bob", DeskAction::Resolve)
        .await
        .unwrap();
    assert_eq!(desk.engine.desk().tick().await.unwrap(), 1);
    assert_eq!(holder(&contacts[4]).as_deref(), Some("bob"));

    // A busy or offline agent gets nothing; a newly available one takes the next waiting.
    desk.handed_off("+12125550299").await;
    assert_eq!(desk.engine.desk().tick().await.unwrap(), 0);
    desk.engine
        .agents()
        .set_presence("cy", Presence::Available)
        .unwrap();
    assert_eq!(desk.engine.desk().tick().await.unwrap(), 1);
    assert_eq!(holder("+12125550299").as_deref(), Some("cy"));
}

#[tokio::test]
async fn an_agent_of_two_balanced_queues_gets_no_more_than_the_cap_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut support = balanced(1);
    support.name = "support".into();
    let desk = desk(&dir.path().join("db"), vec![balanced(1), support]).await;
    desk.agent_of("ana", &["billing", "support"], Presence::Available);
    desk.handed_off("+12125550500").await;
    desk.text("+12125550501", "SUPPORT").await;
    assert_eq!(desk.engine.desk().tick().await.unwrap(), 1);
    let held = ["+12125550500", "+12125550501"]
        .iter()
        .filter(|contact| desk.case(contact).assignee.is_some())
        .count();
    assert_eq!(
        held, 1,
        "the second queue's plan saw the first queue's assignment"
    );
}

#[tokio::test]
async fn a_disabled_agents_conversations_go_back_to_the_queue_for_someone_else() {
    let dir = tempfile::tempdir().unwrap();
    let desk = desk(&dir.path().join("db"), vec![balanced(5)]).await;
    desk.agent("ana", Presence::Available);
    let contact = "+12125550600";
    desk.handed_off(contact).await;
    desk.engine.desk().tick().await.unwrap();
    assert_eq!(desk.case(contact).assignee.as_deref(), Some("ana"));
    desk.engine.agents().disable("ana").unwrap();
    desk.agent("bob", Presence::Available);
    assert_eq!(
        desk.engine.desk().tick().await.unwrap(),
        2,
        "taken back, then given to bob"
    );
    let case = desk.case(contact);
    assert_eq!(
        (case.state, case.assignee.as_deref()),
        (CaseState::Assigned, Some("bob"))
    );
}

#[tokio::test]
async fn service_level_clocks_start_at_the_handoff_and_a_breach_is_reported_once_and_re_routed() {
    let dir = tempfile::tempdir().unwrap();
    let queue = QueueConfig {
        name: "billing".into(),
        first_response: Some("5m".into()),
        next_response: Some("10m".into()),
        breach_route: Some("billing-priority".into()),
        no_answer_after: Some("3m".into()),
        no_answer_reply: Some("Thanks for waiting: a person will answer soon.".into()),
        ..QueueConfig::default()
    };
    let priority = QueueConfig {
        name: "billing-priority".into(),
        next_response: Some("10m".into()),
        ..QueueConfig::default()
    };
    let desk = desk(&dir.path().join("db"), vec![queue, priority]).await;
    let contact = "+12125550300";
    // The bot talks for 20 minutes before the handoff: none of it counts.
    desk.text(contact, "HELPDESK").await;
    desk.clock.advance(20 * MINUTE);
    desk.text(contact, "I want a refund").await;
    let handed_off_at = desk.clock.now_ms();
    assert_eq!(desk.case(contact).handed_off_at_ms, handed_off_at);
    desk.engine.desk().tick().await.unwrap();
    assert!(
        desk.pending_events(EventKind::ConversationSlaBreached)
            .is_empty()
    );

    // 3 minutes: the no-answer auto-reply, through the gate, once.
    desk.clock.advance(3 * MINUTE);
    desk.engine.desk().tick().await.unwrap();
    desk.engine.desk().tick().await.unwrap();
    let auto: Vec<_> = desk
        .outbound(contact)
        .into_iter()
        .filter(|(step, _)| step == "handoff:no_answer")
        .collect();
    assert_eq!(auto.len(), 1, "{auto:?}");

    // 5 minutes after the handoff: the first response is late, reported once, and re-routed.
    desk.clock.advance(2 * MINUTE);
    desk.engine.desk().tick().await.unwrap();
    desk.engine.desk().tick().await.unwrap();
    let breaches = desk.pending_events(EventKind::ConversationSlaBreached);
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    assert_eq!(breaches[0]["sla"], "first_response");
    assert_eq!(breaches[0]["queue"], "billing");
    assert_eq!(breaches[0]["moved_to"], "billing-priority");
    let case = desk.case(contact);
    assert_eq!(case.queue, "billing-priority");
    assert_eq!(
        case.waiting_since_ms, handed_off_at,
        "it keeps its place by age"
    );

    // A reply stops the first clock; the contact's next text starts the next-response clock.
    desk.act(contact, "ana", reply("Sorry for the wait, looking now."))
        .await
        .unwrap();
    desk.clock.advance(MINUTE);
    desk.text(contact, "ok?").await;
    desk.clock.advance(9 * MINUTE);
    desk.engine.desk().tick().await.unwrap();
    assert_eq!(
        desk.pending_events(EventKind::ConversationSlaBreached)
            .len(),
        1,
        "not yet"
    );
    desk.clock.advance(MINUTE);
    desk.engine.desk().tick().await.unwrap();
    let breaches = desk.pending_events(EventKind::ConversationSlaBreached);
    assert_eq!(breaches.len(), 2);
    assert_eq!(breaches[1]["sla"], "next_response");
    assert_eq!(breaches[1]["assignee"], "ana");
}

#[tokio::test]
async fn a_text_after_resolution_reopens_with_the_same_agent_and_release_resumes_the_flow() {
    let dir = tempfile::tempdir().unwrap();
    let desk = desk(&dir.path().join("db"), vec![]).await;
    desk.agent("ana", Presence::Available);
    let contact = "+12125550400";
    desk.handed_off(contact).await;
    desk.act(contact, "ana", DeskAction::Claim).await.unwrap();
    desk.act(
        contact,
        "ana",
        DeskAction::Note {
            text: "refund issued".into(),
        },
    )
    .await
    .unwrap();
    desk.act(contact, "ana", DeskAction::Resolve).await.unwrap();
    assert_eq!(desk.case(contact).state, CaseState::Resolved);

    desk.clock.advance(60 * MINUTE);
    let calls = desk.calls.count();
    desk.text(contact, "one more thing").await;
    assert_eq!(
        desk.calls.count(),
        calls,
        "the reopened conversation goes to people, not the bot"
    );
    let case = desk.case(contact);
    assert_eq!(
        (case.state, case.preferred.as_deref()),
        (CaseState::Waiting, Some("ana"))
    );
    assert_eq!(case.notes.len(), 1, "the notes stay with the conversation");
    desk.engine.desk().tick().await.unwrap();
    assert_eq!(
        desk.case(contact).assignee.as_deref(),
        Some("ana"),
        "back to ana (manual queue)"
    );

    // An unknown step is refused and changes nothing; a known one runs the flow from there.
    let refused = desk
        .act(
            contact,
            "ana",
            DeskAction::Release {
                step: Some("nope".into()),
            },
        )
        .await;
    assert!(
        matches!(refused, Err(DeskError::Case(CaseError::UnknownStep { .. }))),
        "{refused:?}"
    );
    assert_eq!(desk.case(contact).state, CaseState::Assigned);
    desk.act(
        contact,
        "ana",
        DeskAction::Release {
            step: Some("survey".into()),
        },
    )
    .await
    .unwrap();
    let texts: Vec<String> = desk
        .outbound(contact)
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    assert!(
        texts.ends_with(&[
            "How did we do? Reply 1-5.".into(),
            "Thanks, goodbye.".into()
        ]),
        "{texts:?}"
    );
    let case = desk.case(contact);
    assert!(case.released && case.state == CaseState::Resolved);
    // Released to the bot: a later text does not reopen it.
    desk.text(contact, "5").await;
    assert_eq!(desk.case(contact).state, CaseState::Resolved);
}
