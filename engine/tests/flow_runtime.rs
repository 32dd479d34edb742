//! The flow runtime on a real sled store on disk, with the real keyword-intents plugin (built by
//! `just plugins`) and a trapping plugin: late replies, racing replies, replayed events, a
//! restart between a reply and its send, and a plugin failure taking `on_error`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;
use std::sync::Arc;

use smsflow::clock::{ManualClock, SharedClock};
use smsflow::engine::EngineBuilder;
use smsflow::flow::compile::compile;
use smsflow::flow::conversation::Status;
use smsflow::flow::runtime::{Inbound, Runtime, StartRequest};
use smsflow::plugin::{Grant, Manifest, PluginHost, World};
use smsflow::store::Store;
use smsflow::testing::{self, RecordingProvider};

const OURS: &str = "+15550001000";
const CONTACT: &str = "+12125550100";
const HOUR_MS: i64 = 3_600_000;

const FLOW: &str = r#"
id = "confirm"
program = "test"
kind = "transactional"
start = "greet"

[triggers]
api = true

[steps.greet]
type = "send"
text = "Reply YES to confirm."
next = "wait_reply"

[steps.wait_reply]
type = "wait"
timeout = "1h"
on_reply = "understand"
on_timeout = "expired"

[steps.understand]
type = "classify"
plugin = "keyword-intents"
routes = { confirm = "thanks" }
default = "thanks"
on_error = "failed"

[steps.thanks]
type = "end"
text = "Thanks!"
outcome = "confirmed"

[steps.failed]
type = "handoff"
queue = "desk"
reason = "classifier failed"

[steps.expired]
type = "end"
text = "This request has expired."
"#;

struct Engine {
    engine: smsflow::engine::Engine,
    runtime: Arc<Runtime>,
    clock: Arc<ManualClock>,
    recorder: Arc<RecordingProvider>,
}

async fn engine(db: &Path, flow_source: &str, classifier: Option<&Path>) -> Engine {
    let store = Store::open(db).unwrap();
    let clock = Arc::new(ManualClock::new(1_767_625_200_000));
    let shared: SharedClock = clock.clone();
    let config = testing::config();
    let mut host =
        PluginHost::new(&config.plugins, store.tables().plugin_kv, shared.clone()).unwrap();
    match classifier {
        None => {
            let path = config.plugins.dir.join("keyword-intents.wasm");
            let manifest = Manifest::from_file(&Manifest::path_for(&path)).unwrap();
            host.load(&path, manifest, &Grant::default()).await.unwrap();
        }
        Some(path) => {
            let manifest = Manifest {
                name: "keyword-intents".into(),
                version: "0.1.0".into(),
                world: World::Classifier,
                description: String::new(),
                capabilities: vec![],
            };
            host.load(path, manifest, &Grant::default()).await.unwrap();
        }
    }
    let recorder = Arc::new(RecordingProvider::default());
    let flow = compile(Path::new("confirm.toml"), flow_source).unwrap();
    let engine = EngineBuilder::from_config(&config)
        .store(store)
        .clock(shared)
        .provider(recorder.clone())
        .plugins(Arc::new(host))
        .flows(vec![flow])
        .build()
        .await
        .unwrap();
    Engine {
        runtime: Arc::clone(engine.runtime()),
        engine,
        clock,
        recorder,
    }
}

fn start() -> StartRequest {
    StartRequest {
        flow: "confirm".into(),
        from: OURS.into(),
        to: CONTACT.into(),
        fields: Default::default(),
        locale: None,
        ..StartRequest::default()
    }
}

fn reply(id: &str, text: &str) -> Inbound {
    Inbound {
        id: id.into(),
        from: CONTACT.into(),
        to: OURS.into(),
        text: text.into(),
        screening: Default::default(),
        inbox_seq: None,
    }
}

fn sent(engine: &Engine) -> Vec<String> {
    engine
        .runtime
        .transcript(OURS, CONTACT)
        .unwrap()
        .into_iter()
        .filter_map(|entry| match entry.event {
            smsflow::flow::conversation::Event::Outbound { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_reply_after_the_timeout_does_not_resume_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("db"), FLOW, None).await;
    engine.runtime.start(start()).await.unwrap();
    engine.clock.advance(HOUR_MS - 1);
    assert_eq!(engine.runtime.fire_due_timers().await.unwrap(), 0);
    engine.clock.advance(1);
    assert_eq!(engine.runtime.fire_due_timers().await.unwrap(), 1);
    let late = engine.runtime.inbound(reply("SM1", "Yes")).await.unwrap();
    assert!(late.sent_texts().is_empty());
    assert_eq!(
        sent(&engine),
        ["Reply YES to confirm.", "This request has expired."]
    );
    let transcript = engine.runtime.transcript(OURS, CONTACT).unwrap();
    assert!(
        transcript.iter().any(|entry| matches!(
            &entry.event,
            smsflow::flow::conversation::Event::Inbound { text, .. } if text == "Yes"
        )),
        "the late reply is kept in the transcript"
    );
    // Firing again finds nothing: the timer fired once.
    engine.clock.advance(10 * HOUR_MS);
    assert_eq!(engine.runtime.fire_due_timers().await.unwrap(), 0);
}

#[tokio::test]
async fn two_replies_racing_for_one_conversation_resume_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("db"), FLOW, None).await;
    engine.runtime.start(start()).await.unwrap();
    let (first, second) = tokio::join!(
        engine.runtime.inbound(reply("SM1", "Yes")),
        engine.runtime.inbound(reply("SM2", "Yes please")),
    );
    let replies = first.unwrap().sent_texts().len() + second.unwrap().sent_texts().len();
    assert_eq!(replies, 1);
    assert_eq!(sent(&engine), ["Reply YES to confirm.", "Thanks!"]);
    // And the wait's timer was cancelled with the reply.
    engine.clock.advance(2 * HOUR_MS);
    engine.runtime.fire_due_timers().await.unwrap();
    assert_eq!(sent(&engine).len(), 2);
}

#[tokio::test]
async fn a_replayed_inbound_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("db"), FLOW, None).await;
    engine.runtime.start(start()).await.unwrap();
    let first = engine.runtime.inbound(reply("SM1", "Yes")).await.unwrap();
    let again = engine.runtime.inbound(reply("SM1", "Yes")).await.unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert!(again.entries.is_empty());
    assert_eq!(sent(&engine), ["Reply YES to confirm.", "Thanks!"]);
}

#[tokio::test]
async fn a_restart_between_the_reply_and_the_send_sends_each_text_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let engine = engine(&db, FLOW, None).await;
        engine.runtime.start(start()).await.unwrap();
        engine.runtime.inbound(reply("SM1", "Yes")).await.unwrap();
        // The engine stops here: both texts are queued, none handed to the provider.
        assert!(engine.recorder.sent().is_empty());
        engine.engine.store().flush().await.unwrap();
    }
    let engine = engine(&db, FLOW, None).await;
    let outbox = engine.engine.outbox();
    assert_eq!(testing::deliver_all(outbox).await.unwrap(), 2);
    assert_eq!(testing::deliver_all(outbox).await.unwrap(), 0);
    // The gate adds the opt-out wording to the program's first text.
    assert_eq!(
        engine.recorder.bodies_to(CONTACT),
        ["Reply YES to confirm. Reply STOP to opt out.", "Thanks!"]
    );
    // The conversation state survived too, and a replay of the reply is recognised.
    let replay = engine.runtime.inbound(reply("SM1", "Yes")).await.unwrap();
    assert!(replay.duplicate);
    let conversation = engine.runtime.conversation(OURS, CONTACT).unwrap().unwrap();
    assert!(matches!(conversation.status, Status::Ended { .. }));
}

#[tokio::test]
async fn a_trapping_classifier_takes_the_on_error_route() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("trap.wasm");
    let bytes = support::component("classifier", &support::classifier_module("(unreachable)"));
    std::fs::write(&wasm, bytes).unwrap();
    let engine = engine(&dir.path().join("db"), FLOW, Some(&wasm)).await;
    engine.runtime.start(start()).await.unwrap();
    let outcome = engine.runtime.inbound(reply("SM1", "Yes")).await.unwrap();
    assert!(outcome.sent_texts().is_empty());
    match &outcome.conversation.status {
        Status::HandedOff { queue, reason, .. } => {
            assert_eq!(queue, "desk");
            assert_eq!(reason, "classifier failed");
        }
        other => panic!("expected a handoff, got {other:?}"),
    }
    let error_logged = outcome.entries.iter().any(|entry| {
        matches!(&entry.event, smsflow::flow::conversation::Event::Error { step, message }
            if step == "understand" && message.contains("keyword-intents"))
    });
    assert!(error_logged, "{:#?}", outcome.entries);
}

#[tokio::test]
async fn a_missing_field_is_an_error_routed_like_any_other_never_a_blank() {
    let source = FLOW
        .replace("Reply YES to confirm.", "Hi {{first_name}}, reply YES.")
        .replace("[triggers]\napi = true", "[triggers]\napi = true\n\n[escalation]\nqueue = \"desk\"")
        .replace(
            "[steps.thanks]",
            "[steps.set_name]\ntype = \"set\"\nfields = { first_name = \"{{reply}}\" }\nnext = \"thanks\"\n\n[steps.thanks]",
        );
    // first_name is defined by a set step that runs later, so the greeting cannot be rendered.
    let source = source.replace(
        "routes = { confirm = \"thanks\" }",
        "routes = { confirm = \"set_name\" }",
    );
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("db"), &source, None).await;
    let outcome = engine.runtime.start(start()).await.unwrap();
    assert!(
        outcome.sent_texts().is_empty(),
        "nothing with a blank goes out"
    );
    match &outcome.conversation.status {
        Status::HandedOff { queue, reason, .. } => {
            assert_eq!(queue, "desk");
            assert!(reason.contains("`first_name`"), "{reason}");
        }
        other => panic!("expected a handoff, got {other:?}"),
    }
}

#[tokio::test]
async fn a_run_carries_its_campaign_source_and_its_texts_validity() {
    let source = FLOW
        .replace(
            "start = \"greet\"",
            "start = \"greet\"\ncampaign = \"winback\"",
        )
        .replace("Reply YES to confirm.", "From {{campaign}}: reply YES.");
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("db"), &source, None).await;
    let outbox = engine.engine.outbox();
    let message = |outcome: &smsflow::flow::runtime::Outcome| {
        let id = outcome.queued_ids()[0].to_owned();
        outbox.message(&id).unwrap().unwrap()
    };

    // No campaign started it: the flow's own source.
    let outcome = engine.runtime.start(start()).await.unwrap();
    assert_eq!(outcome.sent_texts(), ["From winback: reply YES."]);
    let first = message(&outcome);
    assert_eq!(first.campaign.as_deref(), Some("winback"));
    assert_eq!(first.valid_until_ms, None);

    // A campaign's start: its id on the texts, its name in the template, its validity.
    let mut request = start();
    request.on_active = smsflow::flow::runtime::OnActive::Interrupt;
    request.campaign = Some("cmp-0000000000000007".to_owned());
    request
        .fields
        .insert("campaign".to_owned(), "spring".to_owned());
    request.valid_for_ms = Some(2 * HOUR_MS);
    let outcome = engine.runtime.start(request).await.unwrap();
    assert_eq!(outcome.sent_texts(), ["From spring: reply YES."]);
    let second = message(&outcome);
    assert_eq!(second.campaign.as_deref(), Some("cmp-0000000000000007"));
    assert_eq!(
        second.valid_until_ms,
        Some(second.queued_at_ms + 2 * HOUR_MS)
    );

    // The next run from no campaign does not inherit the last one's.
    let mut request = start();
    request.on_active = smsflow::flow::runtime::OnActive::Interrupt;
    engine.clock.advance(60_000);
    let outcome = engine.runtime.start(request).await.unwrap();
    let third = message(&outcome);
    assert_eq!(third.campaign.as_deref(), Some("winback"));
    assert_eq!(third.valid_until_ms, None);
    assert_eq!(outcome.sent_texts(), ["From winback: reply YES."]);
}
