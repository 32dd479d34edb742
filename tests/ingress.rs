//! The real `smsflow serve` with `kind = "twilio"` against a local server that plays Twilio's
//! Messages API (and an order API for the order-status plugin): signed webhooks in, replies out,
//! exactly once, through duplicates, bad input, provider failures and a SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::Server;
use common::fake_provider::{
    OURS, PUBLIC_URL, Setup, TELNYX_API_KEY, TRACK_FLOW, base64_encode, conversation, encode,
    inbound_params, post_inbound, post_signed, post_status, twilio_provider, wait_until,
};
use smsflow::ingress::twilio;

const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// The Telnyx signing key of the tests; its public half goes in the config.
fn telnyx_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

/// The ingress tests' setup: two example flows and TRACK, the operator's event webhook, and
/// the server on the real clock.
impl Setup {
    async fn new() -> Self {
        Self::with_provider(false).await
    }

    async fn with_provider(telnyx: bool) -> Self {
        let setup = Self::with_fake(
            &["billing-issue.toml", "appointment-confirmation.toml"],
            &[("track.toml", TRACK_FLOW)],
        )
        .await;
        let provider = if telnyx {
            format!(
                r#"kind = "telnyx"
api_key = "{TELNYX_API_KEY}"
telnyx_public_key = "{}""#,
                base64_encode(telnyx_key().verifying_key().as_bytes())
            )
        } else {
            twilio_provider()
        };
        let rest = format!(
            r#"
[[webhooks]]
url = "{fake_url}/events"
secret = "{WEBHOOK_SECRET}"
events = ["message.received", "conversation.handoff", "message.status"]

# These tests are about ingress and delivery, not the hour: the server runs on the real clock
# (Telnyx and event signatures carry real timestamps) and its programs are exempt from quiet
# hours. tests/compliance.rs tests quiet hours.
[programs.orders]
quiet_hours_exempt = true

[programs.account-service]
quiet_hours_exempt = true

[programs.clinic-reminders]
quiet_hours_exempt = true
{plugins}
"#,
            fake_url = setup.fake_url,
            plugins = common::plugins_section(&setup.fake_url),
        );
        setup.write_config(&provider, 4, &rest);
        setup
    }

    /// The server on the real clock: Telnyx and event signatures carry real timestamps.
    fn serve(&self) -> Server {
        Server::start_with_env(&self.config(), self.port, &[("SMSFLOW_CLOCK", "")])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_inbound_text_gets_exactly_one_reply_through_twilio() {
    let setup = Setup::new().await;
    let _server = setup.serve();
    let contact = "+12125550111";
    let (status, body) =
        post_inbound(&setup, "SM0001", contact, "BILLING I was charged twice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, twilio::EMPTY_TWIML);
    wait_until("the reply", || !setup.fake.sent_to(contact).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = setup.fake.sent_to(contact);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].from, OURS);
    assert!(sent[0].body.contains("billing"), "{}", sent[0].body);
    assert_eq!(
        sent[0].status_callback.as_deref(),
        Some("https://sms.example.com/webhooks/twilio/status")
    );

    // Delivery reports: states only move forward.
    let (_, state) = conversation(&setup, contact).await;
    let sid = state["messages"][0]["provider_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for status in ["delivered", "sent"] {
        let (code, text) = post_status(&setup, &sid, status).await;
        assert_eq!(code, 204, "{text}");
    }
    let (_, state) = conversation(&setup, contact).await;
    assert_eq!(state["messages"][0]["delivery"], "delivered", "{state:#}");
    assert_eq!(state["messages"][0]["status"]["state"], "sent");
    assert_eq!(state["conversation"]["status"]["state"], "handed_off");

    // The operator's systems heard about it, signed per Standard Webhooks.
    wait_until("the event webhooks", || {
        setup.fake.events.lock().unwrap().len() >= 4
    })
    .await;
    let secret = smsflow::events::signing::WebhookSecret::parse(WEBHOOK_SECRET).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .cast_signed();
    let mut kinds = Vec::new();
    for (id, timestamp, signature, body) in setup.fake.events.lock().unwrap().iter() {
        secret
            .verify(id, timestamp, signature, body.as_bytes(), now)
            .unwrap();
        let event: serde_json::Value = serde_json::from_str(body).unwrap();
        let data = &event["data"];
        if event["type"] == "conversation.handoff" {
            assert_eq!(data["contact"], contact);
            assert_eq!(data["queue"], "billing");
            assert_eq!(data["conversation"], contact, "{data}");
            assert!(data["flow"].is_string(), "{data}");
            assert!(data["step"].is_string(), "the step it left: {data}");
        }
        if event["type"] == "message.received" {
            // What the playbook asks of it: sender, time, body, consent, locale, state.
            assert_eq!(data["from"], contact);
            assert!(
                data["received_at"].as_str().unwrap().ends_with('Z'),
                "{data}"
            );
            assert_eq!(data["conversation_state"], "idle", "{data}");
            assert!(data["consent"].is_string(), "{data}");
            assert!(
                data.get("campaign").is_some() && data.get("locale").is_some(),
                "{data}"
            );
        }
        if event["type"] == "message.status" {
            assert_eq!(data["conversation"], contact, "the text's run: {data}");
        }
        kinds.push(event["type"].as_str().unwrap().to_owned());
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "conversation.handoff",
            "message.received",
            "message.status",
            "message.status"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_message_sid_at_once_is_stored_and_answered_once() {
    let setup = Setup::new().await;
    let _server = setup.serve();
    let contact = "+12125550112";
    let posts = (0..10).map(|_| post_inbound(&setup, "SMdup", contact, "BILLING help"));
    for (status, body) in futures_util::future::join_all(posts).await {
        assert_eq!(status, 200, "{body}");
    }
    wait_until("the reply", || !setup.fake.sent_to(contact).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(setup.fake.sent_to(contact).len(), 1);
    let (_, state) = conversation(&setup, contact).await;
    let inbound = state["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["type"] == "inbound")
        .count();
    assert_eq!(inbound, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_are_refused_change_nothing_and_the_server_keeps_serving() {
    let setup = Setup::new().await;
    let _server = setup.serve();
    let url = format!("{PUBLIC_URL}/webhooks/twilio");
    let good = inbound_params("SMbad1", "+12125550113", "BILLING");
    let good_body = encode(&good).into_bytes();
    let path = "/webhooks/twilio";

    let (status, text) = post_signed(&setup, path, &good, good_body.clone(), None).await;
    assert_eq!(
        (
            status,
            text.contains("X-Twilio-Signature") || text.contains("signature")
        ),
        (403, true),
        "{text}"
    );
    let forged = reqwest::Client::new()
        .post(setup.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", "bm90IGEgcmVhbCBzaWduYXR1cmU=")
        .body(good_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let other_url = "https://evil.example.com/webhooks/twilio";
    let (status, text) = post_signed(&setup, path, &good, good_body.clone(), Some(other_url)).await;
    assert_eq!(status, 403, "a signature for another URL: {text}");
    let tampered = encode(&inbound_params("SMbad1", "+12125550113", "BILLING now")).into_bytes();
    let (status, _) = post_signed(&setup, path, &good, tampered, Some(&url)).await;
    assert_eq!(status, 403, "a body changed after signing");

    // A 10 MB body is refused on its Content-Length, before any of it is read.
    assert_eq!(raw_post_status(setup.port, path, 10 * 1024 * 1024), 413);

    for (body, what) in [
        (b"MessageSid=SMx&Body=\xff\xfe".to_vec(), "invalid UTF-8"),
        (
            b"MessageSid=SMx&Body=%FF".to_vec(),
            "an escape that is not UTF-8",
        ),
        (b"MessageSid=SMx&Body=100%G1".to_vec(), "a broken %-escape"),
    ] {
        let (status, text) = post_signed(&setup, path, &good, body, Some(&url)).await;
        assert_eq!(status, 400, "{what}: {text}");
    }
    for (from, to) in [
        ("+999999999999999999", OURS),
        ("tel:+12125550113", OURS),
        ("+1555CALLNOW", OURS),
        ("+12125550113", "+12120009999"),
    ] {
        let mut params = inbound_params("SMbad2", from, "BILLING");
        params[3].1 = to.to_owned();
        let (status, text) = post_signed(
            &setup,
            path,
            &params,
            encode(&params).into_bytes(),
            Some(&url),
        )
        .await;
        assert_eq!(status, 400, "From {from} To {to}: {text}");
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(setup.fake.sent().is_empty(), "nothing was sent");
    for phone in ["+12125550113", "+12120009999"] {
        assert_eq!(
            conversation(&setup, phone).await.0,
            404,
            "nothing was stored for {phone}"
        );
    }
    // Still serving: a good text now goes through.
    let (status, _) = post_inbound(&setup, "SMgood", "+12125550113", "BILLING").await;
    assert_eq!(status, 200);
    wait_until("the reply", || setup.fake.sent().len() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_texts_survive_a_sigkill_before_processing_and_are_answered_once() {
    let setup = Setup::new().await;
    setup.fake.stall_orders.store(true, Ordering::SeqCst);
    let server = setup.serve();
    let contacts: Vec<String> = (0..20).map(|n| format!("+1212666{n:04}")).collect();
    let posts = contacts.iter().enumerate().map(|(n, contact)| {
        post_inbound(
            &setup,
            Box::leak(format!("SMkill{n}").into_boxed_str()),
            contact,
            "TRACK",
        )
    });
    for (status, body) in futures_util::future::join_all(posts).await {
        assert_eq!(status, 200, "{body}");
    }
    // Every text is acknowledged; the order API hangs, so none has been answered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(setup.fake.sent().is_empty());
    server.kill();

    let pending = inbox_listing(&setup.config());
    assert_eq!(
        pending.len(),
        20,
        "every acknowledged text is still in the inbox"
    );

    setup.fake.stall_orders.store(false, Ordering::SeqCst);
    let _server = setup.serve();
    wait_until("20 replies", || setup.fake.sent().len() >= 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for contact in &contacts {
        let sent = setup.fake.sent_to(contact);
        assert_eq!(sent.len(), 1, "{contact}: {sent:?}");
        // The program's first text to the contact: the gate adds the opt-out wording.
        assert_eq!(
            sent[0].body,
            "Your order has shipped. Reply STOP to opt out."
        );
    }
    assert_eq!(setup.fake.sent().len(), 20);
}

/// Sends only the head of a POST announcing `length` bytes and reads the status code.
fn raw_post_status(port: u16, path: &str, length: usize) -> u16 {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_text_being_processed_before_exiting() {
    let setup = Setup::new().await;
    setup.fake.stall_orders.store(true, Ordering::SeqCst);
    let server = setup.serve();
    let (status, _) = post_inbound(&setup, "SMterm", "+12125550130", "TRACK").await;
    assert_eq!(status, 200);
    // The lookup is in flight (the order API hangs) when the stop comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exited_cleanly = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(exited_cleanly);
    // The turn ran to its end (the plugin's timeout, then the flow's handoff) before the exit:
    // nothing is left to redo.
    assert!(inbox_listing(&setup.config()).is_empty());
}

fn inbox_listing(config: &Path) -> Vec<serde_json::Value> {
    let output = common::cli(config, &["inbox"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_are_retried_and_error_21610_suppresses_the_number() {
    let setup = Setup::new().await;
    setup.fake.fail_next.store(2, Ordering::SeqCst);
    setup
        .fake
        .opted_out
        .lock()
        .unwrap()
        .push("+12125550115".to_owned());
    let _server = setup.serve();

    // Two 500s, then accepted: one text arrives.
    let (status, _) = post_inbound(&setup, "SMretry", "+12125550114", "BILLING").await;
    assert_eq!(status, 200);
    wait_until("the retried reply", || {
        !setup.fake.sent_to("+12125550114").is_empty()
    })
    .await;
    let (_, state) = conversation(&setup, "+12125550114").await;
    assert_eq!(state["messages"][0]["attempts"], 3, "{state:#}");
    assert_eq!(setup.fake.fail_next.load(Ordering::SeqCst), 0);

    // 21610: the text fails and the number is suppressed.
    let (status, _) = post_inbound(&setup, "SMstop", "+12125550115", "BILLING").await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, state) = conversation(&setup, "+12125550115").await;
        if state["messages"][0]["status"]["state"] == "failed" {
            let reason = state["messages"][0]["status"]["reason"].as_str().unwrap();
            assert!(reason.contains("21610"), "{reason}");
            break;
        }
        assert!(Instant::now() < deadline, "{state:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(setup.fake.sent_to("+12125550115").is_empty());
}

fn telnyx_inbound(id: &str, from: &str, text: &str) -> String {
    serde_json::json!({
        "data": {
            "event_type": "message.received",
            "id": format!("evt-{id}"),
            "payload": {
                "id": id,
                "from": {"phone_number": from},
                "to": [{"phone_number": OURS}],
                "text": text,
                "media": [],
            }
        }
    })
    .to_string()
}

async fn post_telnyx(setup: &Setup, body: &str, signed_at: i64, signature_of: &str) -> u16 {
    let signature =
        smsflow::ingress::telnyx::sign(&telnyx_key(), signed_at, signature_of.as_bytes());
    reqwest::Client::new()
        .post(setup.url("/webhooks/telnyx"))
        .header("content-type", "application/json")
        .header("telnyx-timestamp", signed_at.to_string())
        .header("telnyx-signature-ed25519", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_through_the_same_provider_trait_and_replays_are_refused() {
    let setup = Setup::with_provider(true).await;
    let _server = setup.serve();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .cast_signed();
    let contact = "+12125550120";

    let stale = telnyx_inbound("msg-old", contact, "BILLING");
    assert_eq!(
        post_telnyx(&setup, &stale, now - 301, &stale).await,
        403,
        "a replayed timestamp"
    );
    let forged = telnyx_inbound("msg-forged", contact, "BILLING");
    let other = telnyx_inbound("msg-forged", contact, "BILLING please");
    assert_eq!(
        post_telnyx(&setup, &forged, now, &other).await,
        403,
        "a body changed after signing"
    );

    let body = telnyx_inbound("msg-1", contact, "BILLING");
    assert_eq!(post_telnyx(&setup, &body, now, &body).await, 204);
    assert_eq!(
        post_telnyx(&setup, &body, now, &body).await,
        204,
        "a duplicate is acknowledged"
    );
    wait_until("the reply", || !setup.fake.sent_to(contact).is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = setup.fake.sent_to(contact);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].from, OURS);
    assert_eq!(
        sent[0].status_callback.as_deref(),
        Some("https://sms.example.com/webhooks/telnyx")
    );
}

/// The limits are the accept pipeline's, so Telnyx meets the same ones as Twilio: a text past
/// 1,600 characters and an id that is not a provider's id shape are refused, nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_texts_meet_the_same_limits_as_twilio_ones() {
    let setup = Setup::with_provider(true).await;
    let _server = setup.serve();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .cast_signed();
    let contact = "+12125550121";
    let long = telnyx_inbound("msg-long", contact, &"a".repeat(60_000));
    let odd_id = format!("msg\u{0}{}", "x".repeat(30_000));
    let nul_id = telnyx_inbound(&odd_id, contact, "HELP");
    let from_us = telnyx_inbound("msg-self", OURS, "HELP");
    for body in [long, nul_id, from_us] {
        assert_eq!(post_telnyx(&setup, &body, now, &body).await, 400);
    }
    let (status, _) = conversation(&setup, contact).await;
    assert_eq!(status, 404, "nothing was stored");
    let body = telnyx_inbound("msg-ok", contact, &"a".repeat(1_600));
    assert_eq!(post_telnyx(&setup, &body, now, &body).await, 204);
}

/// The outbox killed in the middle of its provider calls: each text is marked `sending` on disk
/// before its call and recorded before the next text to that number, and after the restart the
/// interrupted ones are looked up in Twilio's message list instead of being sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_while_texts_are_being_sent_sends_none_of_them_twice() {
    let setup = Setup::new().await;
    // Twilio takes the first 60 texts at once; it records the next ones but holds its answers,
    // so the server is killed with texts Twilio has and the server does not know it sent.
    setup.fake.hold_answers_after.store(60, Ordering::SeqCst);
    setup.fake.hold_answers.store(true, Ordering::SeqCst);
    let server = setup.serve();
    let contacts: Vec<String> = (0..300).map(|n| format!("+1212777{n:04}")).collect();
    for chunk in contacts.chunks(50) {
        let posts = chunk.iter().map(|contact| {
            let sid: &'static str = Box::leak(format!("SMhelp{}", &contact[1..]).into_boxed_str());
            post_inbound(&setup, sid, contact, "HELP")
        });
        for (status, body) in futures_util::future::join_all(posts).await {
            assert_eq!(status, 200, "{body}");
        }
    }
    wait_until("answers held at Twilio", || setup.fake.sent().len() >= 100).await;
    server.kill();
    setup.fake.hold_answers.store(false, Ordering::SeqCst);

    let _server = setup.serve();
    wait_until("an answer to every HELP", || {
        let sent = setup.fake.sent();
        contacts
            .iter()
            .all(|contact| sent.iter().any(|text| &text.to == contact))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = setup.fake.sent();
    let doubled: Vec<&String> = contacts
        .iter()
        .filter(|contact| sent.iter().filter(|text| &text.to == *contact).count() > 1)
        .collect();
    assert!(
        doubled.is_empty(),
        "{} numbers got two texts: {doubled:?}",
        doubled.len()
    );
    assert_eq!(sent.len(), 300);
    assert!(
        setup.fake.list_requests.load(Ordering::SeqCst) > 0,
        "the interrupted sends were looked up"
    );
}
