//! Compliance end to end, over the real `smsflow serve` with `kind = "twilio"` against a local
//! server that plays Twilio's Messages API: STOP and its kin take effect before the webhook's
//! 2xx, HELP and START, possible revocations, the consent API, quiet hours by the recipient's
//! time zone, agent replies through the gate, and Twilio's error 21610.
//!
//! Every outbound text is checked where the operator would check it: what the fake provider
//! was asked to send, `GET /v1/conversations/{phone}` (the gate's decisions) and
//! `smsflow consent export` (the ledger, read while the server is stopped).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::Server;
use common::fake_provider::{
    self, API_TOKEN, Setup, TRACK_FLOW, api, api_with_token, conversation, start_flow,
    twilio_provider, wait_until,
};
use serde_json::{Value, json};

/// The HELP answer configured for the appointment flow's program.
const CLINIC_HELP: &str = "Bright Smile Dental: appointment reminders. Call 212-555-0199 for help. Msg&data rates may apply. Reply STOP to opt out.";

/// A transactional flow without plugins, for the quiet-hours test: the server starts fast, so
/// its clock is still before the window opens when the test starts the flow.
const NOTICE_FLOW: &str = r#"
id = "notice"
program = "notices"
kind = "transactional"
brand = "Northwind Outfitters"
start = "tell"

[triggers]
api = true
fields = ["first_name"]

[steps.tell]
type = "end"
text = "Northwind Outfitters: Hi {{first_name}}, your order is ready for pickup."
"#;

/// The compliance tests' setup: the clinic's HELP text, and the server's clock at daytime.
impl Setup {
    /// The example flows (appointment-confirmation, re-engagement, billing-issue) with the
    /// example plugins.
    async fn new() -> Self {
        Self::with_workers(4).await
    }

    /// [`Setup::new`] with `workers` inbox lanes, and the TRACK flow: with the order API
    /// stalled, it keeps its inbox lane busy.
    async fn with_workers(workers: usize) -> Self {
        Self::with_flows(
            &[
                "appointment-confirmation.toml",
                "re-engagement.toml",
                "billing-issue.toml",
            ],
            &[("track.toml", TRACK_FLOW)],
            workers,
        )
        .await
    }

    /// The example flows named in `examples`, plus `custom` (file name, TOML); the example
    /// plugins only when an example flow is used.
    async fn with_flows(examples: &[&str], custom: &[(&str, &str)], workers: usize) -> Self {
        let setup = Self::with_fake(examples, custom).await;
        let plugins = if examples.is_empty() {
            std::fs::create_dir(setup.dir.path().join("no-plugins")).unwrap();
            "[plugins]\ndir = \"no-plugins\"\n".to_owned()
        } else {
            // A stalled order lookup holds its lane until the test releases it.
            format!(
                "{}\n[plugins.limits]\ntimeout_ms = 30000\n",
                common::plugins_section(&setup.fake_url)
            )
        };
        let rest = format!(
            r#"
[programs.clinic-reminders]
help = "{CLINIC_HELP}"

{plugins}
"#
        );
        setup.write_config(&twilio_provider(), workers, &rest);
        setup
    }

    fn serve(&self) -> Server {
        Server::start(&self.config(), self.port)
    }
}

/// Stops the server (SIGTERM) so the CLI can open the store.
async fn stop(server: Server) {
    let clean = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(clean, "the server did not exit cleanly");
}

/// Posts an inbound text as Twilio would, signed, and checks that it was acknowledged.
async fn post_inbound(setup: &Setup, sid: &str, from: &str, text: &str) {
    let (status, text) = fake_provider::post_inbound(setup, sid, from, text).await;
    assert_eq!(status, 200, "inbound {text:?} from {from}: {text}");
}

/// Starts `flow` for `to` with `fields` and checks that it was started.
async fn start_flow_ok(setup: &Setup, flow: &str, to: &str, fields: Value) {
    let (status, body) = start_flow(setup, flow, to, fields).await;
    assert_eq!(status, 201, "{body}");
}

/// Starts appointment-confirmation for `to` and waits until its reminder reached the provider.
async fn start_appointment(setup: &Setup, to: &str) {
    let before = setup.fake.sent_to(to).len();
    let fields = json!({"first_name": "Ana", "date": "March 4", "time": "10:00 AM"});
    start_flow_ok(setup, "appointment-confirmation", to, fields).await;
    wait_until(&format!("the reminder to {to}"), || {
        setup.fake.sent_to(to).len() > before
    })
    .await;
}

/// Starts appointment-confirmation for `to` a second time, on `(date, time)`, and waits (for
/// `what`) until both reminders are there and every message is decided; returns the second
/// reminder.
async fn start_second_appointment(
    setup: &Setup,
    to: &str,
    (date, time): (&str, &str),
    what: &str,
) -> Value {
    let fields = json!({"first_name": "Ana", "date": date, "time": time});
    start_flow_ok(setup, "appointment-confirmation", to, fields).await;
    let state = wait_for(setup, to, what, |state| {
        messages(state)
            .iter()
            .filter(|message| message["step"] == "remind")
            .count()
            == 2
            && messages(state).iter().all(decided)
    })
    .await;
    messages(&state)
        .into_iter()
        .rfind(|message| message["step"] == "remind")
        .unwrap()
}

/// Starts re-engagement for `to` and waits until the gate has decided on its offer; returns the
/// offer.
async fn start_offer(setup: &Setup, to: &str, first_name: &str) -> Value {
    let fields = json!({ "first_name": first_name });
    start_flow_ok(setup, "re-engagement", to, fields).await;
    let state = wait_for(setup, to, "the offer's decision", first_decided).await;
    messages(&state).remove(0)
}

async fn agent_reply(setup: &Setup, phone: &str, text: &str) -> (u16, Value) {
    let path = format!("/v1/conversations/{phone}/reply");
    let body = json!({ "agent": "ana", "text": text });
    api_with_token(setup, "POST", &path, Some(body.to_string())).await
}

async fn post_consent(setup: &Setup, body: &Value) -> (u16, Value) {
    api_with_token(setup, "POST", "/v1/consent", Some(body.to_string())).await
}

/// Polls the conversation with `phone` until `ready` says yes; returns it.
async fn wait_for(setup: &Setup, phone: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, state) = conversation(setup, phone).await;
        if status == 200 && ready(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({phone}): {state:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn messages(state: &Value) -> Vec<Value> {
    state["messages"].as_array().cloned().unwrap_or_default()
}

/// The text of `message`.
fn text_of(message: &Value) -> &str {
    message["body"].as_str().unwrap()
}

fn message_by_id(state: &Value, id: &str) -> Option<Value> {
    messages(state)
        .into_iter()
        .find(|message| message["id"] == id)
}

fn with_origin(state: &Value, origin: &str) -> Vec<Value> {
    messages(state)
        .into_iter()
        .filter(|message| message["origin"] == origin)
        .collect()
}

/// Whether the gate has made its final decision on `message` (sent or blocked).
fn decided(message: &Value) -> bool {
    let state = &message["status"]["state"];
    state == "sent" || state == "blocked" || state == "failed"
}

/// Whether the conversation's first message is decided.
fn first_decided(state: &Value) -> bool {
    messages(state).first().is_some_and(decided)
}

/// Whether the conversation's first message from `origin` was sent.
fn first_sent(state: &Value, origin: &str) -> bool {
    with_origin(state, origin)
        .first()
        .is_some_and(|message| message["status"]["state"] == "sent")
}

/// The transcript entries after the last inbound `text`, or `None` when it has not arrived.
fn after_inbound(state: &Value, text: &str) -> Option<Vec<Value>> {
    let transcript = state["transcript"].as_array()?;
    let position = transcript
        .iter()
        .rposition(|entry| entry["type"] == "inbound" && entry["text"] == text)?;
    Some(transcript[position + 1..].to_vec())
}

/// Whether any flow step ran in `entries`: a flow saw the text.
fn flow_ran(entries: &[Value]) -> bool {
    entries.iter().any(|entry| {
        ["step", "classified", "started", "variant"].contains(&entry["type"].as_str().unwrap_or(""))
    })
}

/// Waits until the message `id` of `phone` is decided and returns it.
async fn wait_decided(setup: &Setup, phone: &str, id: &str) -> Value {
    let state = wait_for(setup, phone, &format!("a decision on {id}"), |state| {
        message_by_id(state, id).is_some_and(|message| decided(&message))
    })
    .await;
    message_by_id(&state, id).unwrap()
}

fn assert_blocked(message: &Value, reason_has: &str) {
    assert_eq!(message["status"]["state"], "blocked", "{message:#}");
    assert_eq!(message["gate"]["decision"], "blocked", "{message:#}");
    let reason = message["gate"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(reason_has),
        "the reason should mention {reason_has:?}: {message:#}"
    );
    assert_eq!(
        message["status"]["reason"], message["gate"]["reason"],
        "{message:#}"
    );
}

/// `smsflow consent export NUMBER --format json` (the server must be stopped).
fn consent_export(config: &Path, number: &str) -> Vec<Value> {
    let output = common::cli(config, &["consent", "export", number, "--format", "json"]);
    assert!(
        output.status.success(),
        "consent export {number}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "consent export {number} is not a JSON array ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `smsflow consent verify` (the server must be stopped): the chain is intact.
fn assert_ledger_intact(config: &Path) {
    let output = common::cli(config, &["consent", "verify"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("intact"),
        "consent verify: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn events<'a>(records: &'a [Value], event: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|record| record["event"] == event)
        .collect()
}

/// STOP is in the ledger before Twilio hears 2xx: an agent reply sent the instant after the
/// acknowledgement is blocked, even while the inbox has not yet processed the STOP. One
/// confirmation, none for a repeated STOP, and the evidence (raw text, message id) in the
/// export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_takes_effect_before_the_acknowledgement_and_is_confirmed_once() {
    // One inbox lane, kept busy by a TRACK whose order lookup hangs: the STOP waits behind it,
    // so whatever stops the agent's text below was done at ingress, before the 2xx.
    let setup = Setup::with_workers(1).await;
    let server = setup.serve();
    let contact = "+12125550101";
    let blocker = "+12125550109";
    start_appointment(&setup, contact).await;
    setup.fake.stall_orders.store(true, Ordering::SeqCst);
    post_inbound(&setup, "SMtrack", blocker, "TRACK").await;
    wait_until("the stalled order lookup", || {
        setup.fake.order_requests.load(Ordering::SeqCst) == 1
    })
    .await;

    post_inbound(&setup, "SMstop1", contact, " Stop. ").await;
    // Right after the 2xx: nothing may reach the contact any more, whatever asks.
    let (status, body) = agent_reply(&setup, contact, "Are you sure? We would miss you.").await;
    assert_eq!(status, 202, "{body}");
    let agent_id = body["queued"][0].as_str().unwrap().to_owned();
    let agent = wait_decided(&setup, contact, &agent_id).await;
    assert_eq!(agent["origin"], "agent", "{agent:#}");
    assert_blocked(&agent, "opted out");
    let (_, state) = conversation(&setup, contact).await;
    assert!(
        after_inbound(&state, " Stop. ").is_none(),
        "the inbox was to be still busy with TRACK: {state:#}"
    );
    assert_eq!(setup.fake.sent_to(contact).len(), 1, "no confirmation yet");
    setup.fake.stall_orders.store(false, Ordering::SeqCst);
    wait_until("the order answer", || {
        !setup.fake.sent_to(blocker).is_empty()
    })
    .await;

    // One confirmation, and the run ended.
    let state = wait_for(&setup, contact, "the confirmation and the end", |state| {
        first_sent(state, "opt_out_confirmation")
            && state["conversation"]["status"]["state"] == "ended"
    })
    .await;
    let confirmation = &with_origin(&state, "opt_out_confirmation")[0];
    assert_eq!(confirmation["gate"]["decision"], "sent", "{confirmation:#}");
    let body = confirmation["body"].as_str().unwrap();
    assert!(body.contains("You are unsubscribed"), "{body}");
    assert!(
        body.starts_with("Bright Smile Dental"),
        "the flow's brand: {body}"
    );
    // No flow saw the STOP.
    let after = after_inbound(&state, " Stop. ").unwrap();
    assert!(!flow_ran(&after), "a flow saw the STOP: {after:#?}");

    // Starting the flow again: its text is blocked at the gate and never reaches Twilio.
    let again = start_second_appointment(
        &setup,
        contact,
        ("March 5", "9:00 AM"),
        "the second reminder's decision",
    )
    .await;
    assert_blocked(&again, "opted out");

    // A second STOP: recorded, but no second confirmation.
    post_inbound(&setup, "SMstop2", contact, "STOP").await;
    let state = wait_for(&setup, contact, "the second STOP", |state| {
        after_inbound(state, "STOP").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, state_later) = conversation(&setup, contact).await;
    assert_eq!(
        with_origin(&state_later, "opt_out_confirmation").len(),
        1,
        "{state:#}"
    );
    let sent = setup.fake.sent_to(contact);
    assert_eq!(sent.len(), 2, "the reminder and one confirmation: {sent:?}");
    assert!(sent[1].body.contains("You are unsubscribed"), "{sent:?}");
    assert_eq!(setup.fake.attempts_to(contact), 2);

    stop(server).await;
    let records = consent_export(&setup.config(), contact);
    let opt_outs = events(&records, "opt_out");
    assert_eq!(opt_outs.len(), 2, "{records:#?}");
    let first = opt_outs[0];
    assert_eq!(first["raw_text"], " Stop. ", "{first:#}");
    assert_eq!(first["program"], "clinic-reminders", "{first:#}");
    assert_eq!(first["number"], contact);
    assert_eq!(first["source"]["kind"], "keyword", "{first:#}");
    assert_eq!(first["source"]["keyword"], "STOP", "{first:#}");
    let message_id = first["source"]["message_id"].as_str().unwrap();
    assert!(message_id.contains("SMstop1"), "{first:#}");
    assert_eq!(
        events(&records, "confirmation_sent").len(),
        1,
        "{records:#?}"
    );
    assert_ledger_intact(&setup.config());
}

/// The STOP spellings people really send, each from its own contact in one server; UNSTOP,
/// an empty text and an emoji are not opt-outs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_stop_opts_out_and_look_alikes_do_not() {
    let setup = Setup::new().await;
    let server = setup.serve();
    // (text, contact, canonical keyword, program)
    let opt_outs = [
        ("sToP!!!", "+12125550121", "STOP", "clinic-reminders"),
        ("STOP 🛑", "+12125550122", "STOP", "clinic-reminders"),
        ("ＳＴＯＰ", "+12125550123", "STOP", "clinic-reminders"),
        ("stop all", "+12125550124", "STOP ALL", "*"),
        ("alto", "+12125550125", "ALTO", "clinic-reminders"),
        ("no mas", "+12125550126", "NO MAS", "clinic-reminders"),
    ];
    let not_opt_outs = [
        ("UNSTOP", "+12125550127"),
        ("", "+12125550128"),
        ("🙂", "+12125550129"),
    ];
    for (_, contact, _, _) in &opt_outs {
        start_appointment(&setup, contact).await;
    }
    for (_, contact) in &not_opt_outs {
        start_appointment(&setup, contact).await;
    }
    for (n, (text, contact, _, _)) in opt_outs.iter().enumerate() {
        post_inbound(&setup, &format!("SMvariant{n}"), contact, text).await;
    }
    for (n, (text, contact)) in not_opt_outs.iter().enumerate() {
        post_inbound(&setup, &format!("SMother{n}"), contact, text).await;
    }

    for (text, contact, keyword, _) in &opt_outs {
        wait_until(&format!("the confirmation of {text:?}"), || {
            setup.fake.sent_to(contact).len() == 2
        })
        .await;
        let sent = setup.fake.sent_to(contact);
        // A Spanish keyword is confirmed in Spanish.
        let confirmation = match *keyword {
            "ALTO" | "NO MAS" => "Has cancelado tu suscripción",
            _ => "You are unsubscribed",
        };
        assert!(sent[1].body.contains(confirmation), "{text:?}: {sent:?}");
        let state = wait_for(&setup, contact, "the end of the run", |state| {
            state["conversation"]["status"]["state"] == "ended"
        })
        .await;
        let after = after_inbound(&state, text).unwrap();
        assert!(!flow_ran(&after), "a flow saw {text:?}: {after:#?}");
    }
    for (text, contact) in &not_opt_outs {
        // The flow sees the text (the classifier runs on it) and no confirmation goes out.
        let state = wait_for(
            &setup,
            contact,
            &format!("the flow's turn on {text:?}"),
            |state| after_inbound(state, text).is_some_and(|after| flow_ran(&after)),
        )
        .await;
        assert!(
            with_origin(&state, "opt_out_confirmation").is_empty(),
            "{text:?}: {state:#}"
        );
        assert_ne!(
            state["conversation"]["status"]["state"], "ended",
            "{text:?} ended the run as an opt-out would: {state:#}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (text, contact) in &not_opt_outs {
        let sent = setup.fake.sent_to(contact);
        assert!(
            sent.iter().all(|sent| !sent.body.contains("unsubscribed")),
            "{text:?}: {sent:?}"
        );
    }

    stop(server).await;
    for (text, contact, keyword, program) in &opt_outs {
        let records = consent_export(&setup.config(), contact);
        let opt_outs = events(&records, "opt_out");
        assert_eq!(opt_outs.len(), 1, "{text:?}: {records:#?}");
        assert_eq!(opt_outs[0]["raw_text"], *text, "{records:#?}");
        assert_eq!(
            opt_outs[0]["source"]["keyword"], *keyword,
            "{text:?}: {records:#?}"
        );
        assert_eq!(opt_outs[0]["program"], *program, "{text:?}: {records:#?}");
    }
    for (text, contact) in &not_opt_outs {
        let records = consent_export(&setup.config(), contact);
        assert!(
            records.is_empty(),
            "{text:?} changed the ledger: {records:#?}"
        );
    }
    assert_ledger_intact(&setup.config());
}

/// HELP is answered with the program's help text, opted out or not; START opts back in and
/// texts flow again; anything else from an opted-out number changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_is_always_answered_and_only_start_opts_back_in() {
    let setup = Setup::new().await;
    let server = setup.serve();
    let contact = "+12125550131";
    start_appointment(&setup, contact).await;

    post_inbound(&setup, "SMhelp1", contact, "HELP").await;
    wait_until("the first help text", || {
        setup.fake.sent_to(contact).len() == 2
    })
    .await;
    assert_eq!(setup.fake.sent_to(contact)[1].body, CLINIC_HELP);

    post_inbound(&setup, "SMstop", contact, "STOP").await;
    wait_until("the confirmation", || {
        setup.fake.sent_to(contact).len() == 3
    })
    .await;
    assert!(
        setup.fake.sent_to(contact)[2]
            .body
            .contains("You are unsubscribed")
    );

    post_inbound(&setup, "SMhelp2", contact, "help").await;
    wait_until("the help text while opted out", || {
        setup.fake.sent_to(contact).len() == 4
    })
    .await;
    assert_eq!(setup.fake.sent_to(contact)[3].body, CLINIC_HELP);
    let state = wait_for(&setup, contact, "both help texts", |state| {
        with_origin(state, "help").len() == 2
            && with_origin(state, "help")
                .iter()
                .all(|m| m["status"]["state"] == "sent")
    })
    .await;
    let after = after_inbound(&state, "help").unwrap();
    assert!(!flow_ran(&after), "a flow saw HELP: {after:#?}");

    // "hello" is not an opt-in: an agent's text is still blocked.
    post_inbound(&setup, "SMhello", contact, "hello").await;
    wait_for(&setup, contact, "hello", |state| {
        after_inbound(state, "hello").is_some()
    })
    .await;
    let (status, body) = agent_reply(&setup, contact, "Hi! Did you mean to resubscribe?").await;
    assert_eq!(status, 202, "{body}");
    let id = body["queued"][0].as_str().unwrap().to_owned();
    assert_blocked(&wait_decided(&setup, contact, &id).await, "opted out");

    // START opts back in: a confirmation, then the flow's texts go again.
    post_inbound(&setup, "SMstart", contact, "START").await;
    let state = wait_for(&setup, contact, "the opt-in confirmation", |state| {
        first_sent(state, "opt_in_confirmation")
    })
    .await;
    let confirmation = &with_origin(&state, "opt_in_confirmation")[0];
    assert!(
        text_of(confirmation).contains("resubscribed"),
        "{confirmation:#}"
    );
    let reminder =
        start_second_appointment(&setup, contact, ("March 6", "11:00 AM"), "the new reminder")
            .await;
    assert_eq!(reminder["gate"]["decision"], "sent", "{reminder:#}");
    let sent = setup.fake.sent_to(contact);
    assert!(sent.last().unwrap().body.contains("March 6"), "{sent:?}");
    // reminder, help, confirmation, help, opt-in confirmation, reminder: not the agent's text.
    assert_eq!(sent.len(), 6, "{sent:?}");

    stop(server).await;
    let records = consent_export(&setup.config(), contact);
    let kinds: Vec<&str> = records
        .iter()
        .map(|record| record["event"].as_str().unwrap())
        .filter(|event| *event != "confirmation_sent")
        .collect();
    assert_eq!(kinds, ["help", "opt_out", "help", "opt_in"], "{records:#?}");
    let opt_in = events(&records, "opt_in")[0];
    assert_eq!(opt_in["raw_text"], "START", "{opt_in:#}");
    assert_eq!(opt_in["program"], "clinic-reminders", "{opt_in:#}");
    assert!(
        records.iter().all(|record| record["raw_text"] != "hello"),
        "{records:#?}"
    );
    assert_ledger_intact(&setup.config());
}

/// "Stop signs at the intersection?" leads with STOP but may be about traffic. The engine's
/// decision (`uncertain_revocation = "ask"`, the default): neither ignore it (a missed
/// revocation is a TCPA violation) nor opt the contact out on a guess, but ask once whether
/// they want to stop, and keep the text from the flows (a flow must never act on what may be a
/// revocation). The ledger records nothing until the contact answers; a second such text
/// within a day is taken as the answer and opts out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_possible_revocation_gets_one_question_and_no_flow_text() {
    let setup = Setup::new().await;
    let server = setup.serve();
    let asked = "+12125550141";
    let asked_twice = "+12125550142";
    let text = "Stop signs at the intersection?";
    for contact in [asked, asked_twice] {
        start_appointment(&setup, contact).await;
        post_inbound(&setup, &format!("SMsigns{}", &contact[9..]), contact, text).await;
    }
    for contact in [asked, asked_twice] {
        let state = wait_for(&setup, contact, "the question", |state| {
            first_sent(state, "revocation_question")
        })
        .await;
        let question = &with_origin(&state, "revocation_question")[0];
        assert!(
            text_of(question).contains("Reply STOP to opt out."),
            "{question:#}"
        );
        let after = after_inbound(&state, text).unwrap();
        assert!(!flow_ran(&after), "a flow saw the text: {after:#?}");
        assert_eq!(
            state["conversation"]["status"]["state"], "waiting",
            "the run goes on: {state:#}"
        );
        assert!(with_origin(&state, "opt_out_confirmation").is_empty());
    }

    // The second possible revocation within a day opts out.
    let again = text;
    post_inbound(&setup, "SMsignsagain", asked_twice, again).await;
    let state = wait_for(&setup, asked_twice, "the confirmation", |state| {
        first_sent(state, "opt_out_confirmation")
    })
    .await;
    assert_eq!(
        with_origin(&state, "revocation_question").len(),
        1,
        "{state:#}"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = setup.fake.sent_to(asked);
    assert_eq!(
        sent.len(),
        2,
        "the reminder and the question only: {sent:?}"
    );

    stop(server).await;
    let records = consent_export(&setup.config(), asked);
    assert!(
        events(&records, "opt_out").is_empty(),
        "one possible revocation is not an opt-out: {records:#?}"
    );
    let records = consent_export(&setup.config(), asked_twice);
    let opt_outs = events(&records, "opt_out");
    assert_eq!(opt_outs.len(), 1, "{records:#?}");
    assert_eq!(opt_outs[0]["raw_text"], again, "{records:#?}");
}

/// `POST /v1/consent`: evidence complete or refused with the missing field named; marketing
/// goes only with a marketing opt-in for its program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketing_needs_a_recorded_marketing_opt_in() {
    let setup = Setup::new().await;
    let server = setup.serve();
    let consented = "+12125550151";
    let complete = json!({
        "phone": consented,
        "program": "promotions",
        "class": "marketing",
        "source": "checkout-page",
        "disclosure": "By checking this box you agree to receive marketing texts from Northwind Outfitters. Up to 4 msgs/month. Msg&data rates may apply. Reply STOP to opt out.",
        "frequency": "up to 4 msgs/month",
    });

    // Refusals first: none of them records anything.
    let (status, body) = api(
        &setup,
        "POST",
        "/v1/consent",
        Some(complete.to_string()),
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = api(
        &setup,
        "POST",
        "/v1/consent",
        Some("phone=+12125550151".to_owned()),
        Some(API_TOKEN),
    )
    .await;
    assert_eq!(status, 400, "not JSON: {body}");
    let mut unknown_key = complete.clone();
    unknown_key["consented"] = json!(true);
    let (status, body) = post_consent(&setup, &unknown_key).await;
    assert_eq!(status, 400, "an unknown key: {body}");
    for field in ["phone", "program", "class", "source", "disclosure"] {
        for empty in [None, Some(""), Some("   ")] {
            let mut incomplete = complete.clone();
            match empty {
                None => {
                    incomplete.as_object_mut().unwrap().remove(field);
                }
                Some(value) => incomplete[field] = json!(value),
            }
            let (status, body) = post_consent(&setup, &incomplete).await;
            assert_eq!(status, 422, "{field} = {empty:?}: {body}");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("needs") && error.contains(field),
                "{field} = {empty:?}: {body}"
            );
        }
    }
    let mut without_two = complete.clone();
    without_two.as_object_mut().unwrap().remove("phone");
    without_two.as_object_mut().unwrap().remove("disclosure");
    let (status, body) = post_consent(&setup, &without_two).await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("phone") && error.contains("disclosure"),
        "{body}"
    );
    for (field, value, what) in [
        ("phone", "212-555-0151", "a bad phone"),
        ("class", "promotional", "a bad class"),
        ("program", "no-such-program", "an unknown program"),
    ] {
        let mut bad = complete.clone();
        bad[field] = json!(value);
        let (status, body) = post_consent(&setup, &bad).await;
        assert_eq!(status, 422, "{what}: {body}");
    }
    let mut half_form = complete.clone();
    half_form["url"] = json!("https://northwind.example/join");
    let (status, body) = post_consent(&setup, &half_form).await;
    assert_eq!(
        status, 422,
        "web form evidence without ip and user_agent: {body}"
    );

    // Without a marketing opt-in (a transactional one does not count), marketing is blocked.
    let transactional_only = "+12125550152";
    let mut transactional = complete.clone();
    transactional["phone"] = json!(transactional_only);
    transactional["class"] = json!("transactional");
    let (status, body) = post_consent(&setup, &transactional).await;
    assert_eq!(status, 201, "{body}");
    for contact in ["+12125550153", transactional_only] {
        let offer = start_offer(&setup, contact, "Ben").await;
        assert_blocked(&offer, "marketing without marketing consent");
        assert_eq!(setup.fake.attempts_to(contact), 0);
    }

    // With one, the offer goes.
    let (status, body) = post_consent(&setup, &complete).await;
    assert_eq!(status, 201, "{body}");
    let recorded = body["recorded"].clone();
    assert!(recorded["seq"].as_u64().is_some(), "{body}");
    assert_eq!(recorded["hash"].as_str().unwrap().len(), 64, "{body}");
    assert_eq!(recorded["event"], "opt_in", "{body}");
    let mut form = complete.clone();
    form["phone"] = json!("+12125550154");
    form["url"] = json!("https://northwind.example/join");
    form["ip"] = json!("203.0.113.7");
    form["user_agent"] = json!("Mozilla/5.0");
    let (status, body) = post_consent(&setup, &form).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["recorded"]["source"]["kind"], "web_form", "{body}");

    let offer = &start_offer(&setup, consented, "Cleo").await;
    assert_eq!(offer["gate"]["decision"], "sent", "{offer:#}");
    assert_eq!(offer["status"]["state"], "sent", "{offer:#}");
    let sent = setup.fake.sent_to(consented);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].body.contains("Hi Cleo"), "{sent:?}");

    stop(server).await;
    let records = consent_export(&setup.config(), consented);
    assert_eq!(
        records.len(),
        1,
        "the refusals recorded nothing: {records:#?}"
    );
    let record = &records[0];
    assert_eq!(record["seq"], recorded["seq"]);
    assert_eq!(record["hash"], recorded["hash"]);
    assert_eq!(record["event"], "opt_in");
    assert_eq!(record["class"], "marketing");
    assert_eq!(record["program"], "promotions");
    assert_eq!(record["disclosure"], complete["disclosure"]);
    assert_eq!(record["frequency"], "up to 4 msgs/month");
    assert_eq!(record["source"]["kind"], "api", "{record:#}");
    assert_eq!(record["source"]["actor"], "checkout-page", "{record:#}");
    assert!(consent_export(&setup.config(), "+12125550153").is_empty());
    assert_ledger_intact(&setup.config());
}

/// Quiet hours over the real binary and its clock: at 07:59:45 in New York a text waits for
/// 08:00 and then goes; a number with no known time zone is blocked; HELP is answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_defer_to_the_recipients_morning_and_unknown_zones_are_blocked() {
    let setup = Setup::with_flows(&[], &[("notice.toml", NOTICE_FLOW)], 4).await;
    // 07:59:45 EST on a Tuesday; 08:00 EST is 13:00 UTC (daylight saving starts on March 8).
    // Fifteen seconds leave room for the server to start on a busy machine.
    let _server = Server::start_with_env(
        &setup.config(),
        setup.port,
        &[("SMSFLOW_CLOCK", "2026-03-03T12:59:45Z")],
    );
    let opens = "2026-03-03T13:00:00Z";
    let new_york = "+12125550161";
    let unknown = "+15555550162";
    let asks_help = "+12125550163";
    for contact in [new_york, unknown] {
        start_flow_ok(&setup, "notice", contact, json!({"first_name": "Dee"})).await;
    }
    post_inbound(&setup, "SMnighthelp", asks_help, "HELP").await;

    let state = wait_for(&setup, new_york, "the deferral", |state| {
        messages(state)
            .first()
            .is_some_and(|m| !m["gate"].is_null())
    })
    .await;
    let notice = &messages(&state)[0];
    assert_eq!(
        notice["gate_log"][0]["decision"], "deferred",
        "the server's clock must still be before 08:00 New York time: {notice:#}"
    );
    assert_eq!(notice["gate_log"][0]["until"], opens, "{notice:#}");
    assert!(
        notice["gate_log"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("quiet hours"),
        "{notice:#}"
    );
    assert!(setup.fake.sent_to(new_york).is_empty());

    // A compliance reply answers the contact's own text: at any hour.
    let state = wait_for(&setup, asks_help, "the help text", |state| {
        first_sent(state, "help")
    })
    .await;
    let help = &with_origin(&state, "help")[0];
    assert_eq!(help["gate_log"].as_array().unwrap().len(), 1, "{help:#}");
    assert!(
        help["gate"]["at"].as_str().unwrap() < opens,
        "answered before 08:00: {help:#}"
    );

    // At 08:00 the deferred text goes, within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while setup.fake.sent_to(new_york).is_empty() {
        assert!(Instant::now() < deadline, "the deferred text never went");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = wait_for(&setup, new_york, "the send", first_decided).await;
    let notice = &messages(&state)[0];
    let decisions: Vec<&str> = notice["gate_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions.first(), Some(&"deferred"), "{notice:#}");
    assert_eq!(decisions.last(), Some(&"sent"), "{notice:#}");
    assert!(
        decisions[..decisions.len() - 1]
            .iter()
            .all(|d| *d == "deferred"),
        "{notice:#}"
    );
    assert!(
        notice["gate"]["at"].as_str().unwrap() >= opens,
        "sent no earlier than 08:00: {notice:#}"
    );
    assert_eq!(notice["status"]["state"], "sent");

    // +1 555 is no area code: no time zone is known for the number, and the gate fails closed.
    let (_, state) = conversation(&setup, unknown).await;
    let text = &messages(&state)[0];
    assert_eq!(
        text["gate_log"][0]["decision"], "blocked",
        "a number with no known time zone must be blocked, not deferred: {text:#}"
    );
    assert_blocked(text, "time zone");
    assert_eq!(setup.fake.attempts_to(unknown), 0);
}

/// An agent's reply passes the same gate: blocked for an opted-out contact, sent to an active
/// one; no conversation, no reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_replies_pass_the_gate() {
    let setup = Setup::new().await;
    let _server = setup.serve();
    let active = "+12125550171";
    let opted_out = "+12125550172";
    start_appointment(&setup, active).await;
    start_appointment(&setup, opted_out).await;
    post_inbound(&setup, "SMagentstop", opted_out, "STOP").await;
    wait_until("the confirmation", || {
        setup.fake.sent_to(opted_out).len() == 2
    })
    .await;

    let text = "Hi, this is Ana from the front desk. Can we move you to 11:00?";
    let (status, body) = agent_reply(&setup, active, text).await;
    assert_eq!(status, 202, "{body}");
    let id = body["queued"][0].as_str().unwrap().to_owned();
    let message = wait_decided(&setup, active, &id).await;
    assert_eq!(message["origin"], "agent", "{message:#}");
    assert_eq!(message["gate"]["decision"], "sent", "{message:#}");
    assert_eq!(message["status"]["state"], "sent", "{message:#}");
    let sent = setup.fake.sent_to(active);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[1].body, text,
        "not the program's first text: sent as written"
    );

    let (status, body) = agent_reply(&setup, opted_out, text).await;
    assert_eq!(status, 202, "{body}");
    let id = body["queued"][0].as_str().unwrap().to_owned();
    let message = wait_decided(&setup, opted_out, &id).await;
    assert_eq!(message["origin"], "agent", "{message:#}");
    assert_blocked(&message, "opted out");

    let (status, body) = agent_reply(&setup, "+12125550179", text).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api(
        &setup,
        "POST",
        &format!("/v1/conversations/{active}/reply"),
        Some(json!({"agent": "ana", "text": text}).to_string()),
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(setup.fake.sent_to(opted_out).len(), 2);
    assert_eq!(setup.fake.attempts_to(opted_out), 2);
    assert_eq!(setup.fake.sent_to(active).len(), 2);
}

/// Twilio's 21610 (the recipient replied STOP to the carrier) is an opt-out: recorded in the
/// ledger with the provider as its source, and later texts are blocked before Twilio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_21610_records_an_opt_out_and_blocks_later_texts() {
    let setup = Setup::new().await;
    let contact = "+12125550181";
    setup
        .fake
        .opted_out
        .lock()
        .unwrap()
        .push(contact.to_owned());
    let server = setup.serve();

    start_flow_ok(
        &setup,
        "appointment-confirmation",
        contact,
        json!({"first_name": "Eve", "date": "March 4", "time": "3:00 PM"}),
    )
    .await;
    let state = wait_for(&setup, contact, "the failed reminder", first_decided).await;
    let reminder = &messages(&state)[0];
    assert_eq!(reminder["status"]["state"], "failed", "{reminder:#}");
    let reason = reminder["status"]["reason"].as_str().unwrap();
    assert!(reason.contains("21610"), "{reminder:#}");
    assert_eq!(setup.fake.attempts_to(contact), 1, "no retry after 21610");

    let (status, body) = agent_reply(&setup, contact, "Hi Eve, are you still coming?").await;
    assert_eq!(status, 202, "{body}");
    let id = body["queued"][0].as_str().unwrap().to_owned();
    let message = wait_decided(&setup, contact, &id).await;
    assert_blocked(&message, "21610");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        setup.fake.attempts_to(contact),
        1,
        "the later text never reached Twilio"
    );
    assert!(setup.fake.sent_to(contact).is_empty());

    stop(server).await;
    let records = consent_export(&setup.config(), contact);
    let opt_outs = events(&records, "opt_out");
    assert_eq!(opt_outs.len(), 1, "{records:#?}");
    let record = opt_outs[0];
    assert_eq!(record["program"], "*", "{record:#}");
    assert_eq!(record["source"]["kind"], "provider", "{record:#}");
    assert_eq!(record["source"]["provider"], "twilio", "{record:#}");
    let detail = record["source"]["detail"].as_str().unwrap();
    assert!(detail.contains("21610"), "{record:#}");
    assert_ledger_intact(&setup.config());
}

/// The `count`th text the provider was asked to send `to`, once there is one.
async fn nth_sent(setup: &Setup, to: &str, count: usize) -> String {
    let what = format!("{count} texts to {to}");
    wait_until(&what, || setup.fake.sent_to(to).len() >= count).await;
    setup.fake.sent_to(to)[count - 1].body.clone()
}

/// A Spanish flow, for the host texts in the contact's language.
const AVISO_FLOW: &str = r#"
id = "aviso"
program = "avisos"
kind = "transactional"
brand = "Northwind Outfitters"
locale = "es"
start = "tell"

[triggers]
api = true
fields = ["first_name"]

[steps.tell]
type = "end"
text = "Northwind Outfitters: Hola {{first_name}}, tu pedido está listo para recoger."
"#;

/// The host answers in the contact's language: the opt-out wording added to a Spanish first
/// text is Spanish, BAJA is confirmed in Spanish, HELP from a contact of a Spanish flow and
/// AYUDA from a stranger get the Spanish HELP, and a stranger's HELP names the default brand,
/// never our number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_texts_speak_the_contacts_language() {
    let setup = Setup::with_fake(&[], &[("aviso.toml", AVISO_FLOW)]).await;
    std::fs::create_dir(setup.dir.path().join("no-plugins")).unwrap();
    let rest = r#"
[compliance]
brand = "Northwind Outfitters"
contact = "(212) 555-0100"

[programs.avisos]

[plugins]
dir = "no-plugins"
"#;
    setup.write_config(&twilio_provider(), 2, rest);
    let server = setup.serve();
    let (ana, stranger, english) = ("+12125550171", "+12125550172", "+12125550173");
    let sent = |to, count| nth_sent(&setup, to, count);

    start_flow_ok(&setup, "aviso", ana, json!({"first_name": "Ana"})).await;
    assert_eq!(
        sent(ana, 1).await,
        "Northwind Outfitters: Hola Ana, tu pedido está listo para recoger. Responde STOP para cancelar."
    );
    post_inbound(&setup, "SMhelpes", ana, "HELP").await;
    let help = sent(ana, 2).await;
    assert!(
        help.starts_with("Northwind Outfitters: Para obtener ayuda"),
        "{help}"
    );
    assert!(help.contains("(212) 555-0100"), "{help}");
    post_inbound(&setup, "SMbaja", ana, "BAJA").await;
    let confirmation = sent(ana, 3).await;
    assert!(
        confirmation.starts_with("Northwind Outfitters: Has cancelado tu suscripción"),
        "{confirmation}"
    );

    post_inbound(&setup, "SMayuda", stranger, "AYUDA").await;
    let help = sent(stranger, 1).await;
    assert!(
        help.starts_with("Northwind Outfitters: Para obtener ayuda"),
        "{help}"
    );
    post_inbound(&setup, "SMhelpen", english, "HELP").await;
    let help = sent(english, 1).await;
    assert!(
        help.starts_with("Northwind Outfitters: For help, contact (212) 555-0100"),
        "{help}"
    );
    assert!(!help.contains(fake_provider::OURS), "{help}");
    stop(server).await;
}
