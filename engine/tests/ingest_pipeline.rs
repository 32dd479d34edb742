//! The accept pipeline's ordering with turns: a STOP is screened under its conversation's lock,
//! so a turn of that conversation either committed before (the STOP's scope is its program) or
//! waits for it; and a conversation held past the lock budget is screened as if it had no
//! program, so the opt-out widens to every program instead of the webhook waiting.
//!
//! The turn is held by a connector whose API stalls until the test lets it answer (the real
//! order-status plugin against a local server).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use smsflow::compliance::ledger::{ALL_PROGRAMS, ConsentEvent};
use smsflow::engine::{Engine, EngineBuilder};
use smsflow::flow::compile::compile;
use smsflow::flow::runtime::StartRequest;
use smsflow::inbox::Accepted;
use smsflow::ingress::accept::LOCK_BUDGET;
use smsflow::sms::InboundText;
use smsflow::store::Store;
use smsflow::testing::{self, RecordingProvider};

const OURS: &str = "+15550001000";
const CONTACT: &str = "+12125550100";

const VISIT: &str = r#"
id = "visit"
program = "clinic"
kind = "transactional"
start = "ask"
[triggers]
api = true
[steps.ask]
type = "send"
text = "Reply YES to confirm."
next = "wait"
[steps.wait]
type = "wait"
timeout = "1d"
on_reply = "done"
on_timeout = "done"
[steps.done]
type = "end"
"#;

const LOOKUP: &str = r#"
id = "lookup"
program = "orders"
kind = "transactional"
start = "lookup"
[triggers]
api = true
[steps.lookup]
type = "connector"
plugin = "order-status"
operation = "lookup"
entity = "order"
key = "A100"
outputs = ["order_status_text"]
next = "answer"
on_error = "answer"
[steps.answer]
type = "end"
text = "Your order is on its way."
"#;

/// An order API that holds its answer while `stalled` is set.
async fn order_api(stalled: Arc<AtomicBool>) -> SocketAddr {
    let app = axum::Router::new().route(
        "/orders/{id}",
        axum::routing::get(move || {
            let stalled = Arc::clone(&stalled);
            async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                while stalled.load(Ordering::SeqCst) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                r#"{"id": "A100", "status": "shipped"}"#
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

async fn engine(api: SocketAddr) -> Engine {
    let mut config = testing::config();
    let grant = format!(
        "capabilities = [\"config\", \"http\"]\nhttp = [\"http://{api}\"]\nconfig = {{ base_url = \"http://{api}\" }}\nlimits = {{ timeout_ms = 30000 }}\n"
    );
    config
        .plugins
        .grants
        .insert("order-status".to_owned(), toml::from_str(&grant).unwrap());
    config.provider.from = OURS.to_owned();
    let flows = [("visit.toml", VISIT), ("lookup.toml", LOOKUP)]
        .iter()
        .map(|(file, source)| compile(std::path::Path::new(file), source).unwrap())
        .collect();
    EngineBuilder::from_config(&config)
        .store(Store::temporary().unwrap())
        .provider(Arc::new(RecordingProvider::default()))
        .flows(flows)
        .build()
        .await
        .unwrap()
}

fn start(flow: &str) -> StartRequest {
    StartRequest {
        flow: flow.to_owned(),
        from: OURS.to_owned(),
        to: CONTACT.to_owned(),
        fields: Default::default(),
        locale: None,
        ..StartRequest::default()
    }
}

fn stop(id: &str) -> InboundText {
    InboundText {
        provider: "twilio",
        message_id: id.to_owned(),
        from: CONTACT.to_owned(),
        to: OURS.to_owned(),
        body: "STOP".to_owned(),
        num_media: 0,
    }
}

/// The programs the contact opted out of, in ledger order.
fn opted_out_of(engine: &Engine) -> Vec<String> {
    engine
        .runtime()
        .compliance()
        .ledger()
        .records_for(CONTACT)
        .unwrap()
        .into_iter()
        .filter(|record| record.event == ConsentEvent::OptOut)
        .map(|record| record.program)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_for_the_turn_in_progress_and_takes_its_program() {
    let stalled = Arc::new(AtomicBool::new(true));
    let engine = Arc::new(engine(order_api(Arc::clone(&stalled)).await).await);
    // The contact's last run was in the clinic program; a lookup run (orders) starts and
    // holds the conversation while its connector waits.
    let runtime = Arc::clone(engine.runtime());
    runtime.start(start("visit")).await.unwrap();
    let reply = smsflow::flow::runtime::Inbound {
        id: "twilio:SMyes".to_owned(),
        from: CONTACT.to_owned(),
        to: OURS.to_owned(),
        text: "yes".to_owned(),
        screening: Default::default(),
        inbox_seq: None,
    };
    runtime.inbound(reply).await.unwrap();
    let conversation = runtime.conversation(OURS, CONTACT).unwrap().unwrap();
    assert_eq!(conversation.program.as_deref(), Some("clinic"));
    assert!(!conversation.is_active());
    let lookup = tokio::spawn({
        let runtime = Arc::clone(&runtime);
        async move { runtime.start(start("lookup")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let accept = tokio::spawn({
        let engine = Arc::clone(&engine);
        async move { engine.ingest().accept(stop("SMstop")).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !accept.is_finished(),
        "the STOP must wait for the turn holding its conversation"
    );
    stalled.store(false, Ordering::SeqCst);
    lookup.await.unwrap().unwrap();
    assert!(matches!(accept.await.unwrap(), Accepted::Stored(_)));
    // Read without the lock, the STOP would have been scoped to the clinic program.
    assert_eq!(opted_out_of(&engine), ["orders"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_busy_past_the_budget_is_opted_out_of_every_program() {
    let stalled = Arc::new(AtomicBool::new(true));
    let engine = Arc::new(engine(order_api(Arc::clone(&stalled)).await).await);
    let runtime = Arc::clone(engine.runtime());
    let lookup = tokio::spawn(async move { runtime.start(start("lookup")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let began = Instant::now();
    let accepted = engine.ingest().accept(stop("SMstop")).await.unwrap();
    let waited = began.elapsed();
    assert!(matches!(accepted, Accepted::Stored(_)));
    assert!(
        !lookup.is_finished(),
        "the webhook did not wait for the turn"
    );
    assert!(waited >= LOCK_BUDGET, "{waited:?}");
    assert_eq!(opted_out_of(&engine), [ALL_PROGRAMS]);
    stalled.store(false, Ordering::SeqCst);
    lookup.await.unwrap().unwrap();
    // A retry of the same webhook is still a duplicate.
    let again = engine.ingest().accept(stop("SMstop")).await.unwrap();
    assert_eq!(again, Accepted::Duplicate);
}
