//! Chaos: signed texts, API starts, a campaign and agent replies across many contacts while the
//! real `smsflow serve` is SIGKILLed at random points, several times, on the same store. Then
//! everything is checked against the load generator's own record and the provider's list:
//! every acknowledged input processed once, no text sent twice, nothing sent after a STOP was
//! acknowledged, conversations readable and consistent, the consent ledger verifying, the
//! campaign finished.
//!
//! `just test` runs a small version (3 kills); `just chaos` runs `CHAOS_KILLS=12
//! CHAOS_SCALE=4` and writes the report to `target/chaos-report.json`. `CHAOS_SEED` replays
//! a run's kill times.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use common::fake_provider::{
    API_TOKEN, AUTH_TOKEN, PUBLIC_URL, Setup, encode, inbound_params, twilio_provider,
};
use serde_json::{Value, json};

const PING: &str = r#"
id = "ping"
program = "care"
kind = "transactional"
brand = "Acme Clinic"
start = "pong"
[triggers]
keywords = ["PING"]
[steps.pong]
type = "end"
text = "Acme Clinic: got {{reply}}. Reply STOP to opt out."
"#;

const NOTICE: &str = r#"
id = "notice"
program = "care"
kind = "transactional"
brand = "Acme Clinic"
start = "hello"
[triggers]
api = true
fields = ["name"]
[steps.hello]
type = "send"
text = "Acme Clinic: hi {{name}}, your visit is tomorrow. Reply STOP to opt out."
next = "wait"
[steps.wait]
type = "wait"
timeout = "1d"
on_reply = "done"
on_timeout = "done"
[steps.done]
type = "end"
"#;

const REMIND: &str = r#"
id = "remind"
program = "care"
kind = "transactional"
brand = "Acme Clinic"
start = "remind"
[triggers]
api = true
[steps.remind]
type = "end"
text = "Acme Clinic: a reminder for {{contact}}. Reply STOP to opt out."
"#;

/// How much load, and how many kills.
#[derive(Debug, Clone, Copy)]
struct Plan {
    kills: usize,
    /// Contacts that text PING (each `pings` times, then some STOP).
    pingers: usize,
    pings: usize,
    /// Contacts the API starts the notice flow for.
    starts: usize,
    /// Contacts of the campaign.
    audience: usize,
    seed: u64,
}

impl Plan {
    /// The load is spread over about the time the kills take (their mean gap is 1.4 s), so
    /// every kill lands in the middle of it.
    fn span(&self) -> Duration {
        Duration::from_millis(1_400 * self.kills.max(1) as u64)
    }

    fn from_env() -> Self {
        let number = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        };
        let scale = usize::try_from(number("CHAOS_SCALE", 1)).unwrap();
        let seed = number(
            "CHAOS_SEED",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        Self {
            kills: usize::try_from(number("CHAOS_KILLS", 3)).unwrap(),
            pingers: 40 * scale,
            pings: 3,
            starts: 30 * scale,
            audience: 60 * scale,
            seed,
        }
    }
}

/// SplitMix64: a seeded sequence of kill times, so a run can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

/// What the load generator did: each input and whether the server acknowledged it.
#[derive(Debug, Default)]
struct Record {
    /// PING texts by contact: their bodies, each acknowledged (after retries) or not.
    pings: BTreeMap<String, Vec<String>>,
    /// STOP acknowledged, by contact, and when.
    stops: BTreeMap<String, jiff::Timestamp>,
    /// API starts by contact: the name (the text carries it) and whether it is known applied.
    starts: BTreeMap<String, (String, bool)>,
    /// Agent replies by contact: the text and whether it was acknowledged.
    replies: BTreeMap<String, (String, bool)>,
    /// Requests that failed (a kill) and were retried.
    retries: u64,
}

fn pinger(i: usize) -> String {
    format!("+1212556{i:04}")
}

fn started(i: usize) -> String {
    format!("+1646556{i:04}")
}

fn listed(i: usize) -> String {
    format!("+1718556{i:04}")
}

/// The server behind a lock, so the killer can replace it while the load goes on.
type Slot = Arc<Mutex<Option<Server>>>;

async fn start_server(setup: &Setup) -> Server {
    let (config, port) = (setup.config(), setup.port);
    tokio::task::spawn_blocking(move || {
        Server::start_with_env(&config, port, &[("SMSFLOW_CLOCK", "")])
    })
    .await
    .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// An operator call; `None` when the request did not get an answer (the server was down).
async fn call(setup: &Setup, method: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
    let response = client()
        .request(method.parse().unwrap(), setup.url(path))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let value = match response.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => Value::Null,
    };
    Some((status, value))
}

/// A signed inbound text; its status, or `None` without an answer.
async fn post_text(setup: &Setup, params: &[(String, String)]) -> Option<u16> {
    let url = format!("{PUBLIC_URL}/webhooks/twilio");
    let response = client()
        .post(setup.url("/webhooks/twilio"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "x-twilio-signature",
            smsflow::ingress::twilio::signature(&url, params, AUTH_TOKEN),
        )
        .body(encode(params))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

/// A signed text, posted until acknowledged, as Twilio retries; how many tries failed.
async fn text_until_acknowledged(setup: &Setup, sid: &str, from: &str, body: &str) -> u64 {
    let params = inbound_params(sid, from, body);
    let mut failed = 0;
    loop {
        match post_text(setup, &params).await {
            Some(200) => return failed,
            Some(status) if status < 500 => panic!("{sid} refused with {status}"),
            _ => {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn load_pings(setup: Arc<Setup>, plan: Plan, record: Arc<Mutex<Record>>) {
    let contacts = (0..plan.pingers).map(|i| {
        let (setup, record) = (Arc::clone(&setup), Arc::clone(&record));
        async move {
            let from = pinger(i);
            let gap = plan.span() * 16 / (plan.pingers * (plan.pings + 1)).max(1) as u32;
            for k in 0..plan.pings {
                tokio::time::sleep(gap).await;
                let body = format!("PING {i}-{k}");
                let failed =
                    text_until_acknowledged(&setup, &format!("SMp{i}x{k}"), &from, &body).await;
                let mut record = record.lock().unwrap();
                record.retries += failed;
                record.pings.entry(from.clone()).or_default().push(body);
            }
            // An agent's reply, once: a retry could send it twice, so an unanswered one is
            // left unknown (sent at most once) rather than retried.
            let text = format!("Ana here for {i}");
            let body = json!({"agent": "ana", "text": text});
            let answer = call(
                &setup,
                "POST",
                &format!("/v1/conversations/{from}/reply"),
                &body,
            )
            .await;
            let acknowledged = answer.is_some_and(|(status, _)| status == 202);
            record
                .lock()
                .unwrap()
                .replies
                .insert(from.clone(), (text, acknowledged));
            if i % 5 == 0 {
                let failed =
                    text_until_acknowledged(&setup, &format!("SMs{i}"), &from, "STOP").await;
                let mut record = record.lock().unwrap();
                record.retries += failed;
                record.stops.insert(from.clone(), jiff::Timestamp::now());
            }
        }
    });
    run_at_most(contacts, 16).await;
}

async fn load_starts(setup: Arc<Setup>, plan: Plan, record: Arc<Mutex<Record>>) {
    let starts = (0..plan.starts).map(|i| {
        let (setup, record) = (Arc::clone(&setup), Arc::clone(&record));
        async move {
            tokio::time::sleep(plan.span() * 8 / plan.starts.max(1) as u32).await;
            let to = started(i);
            let name = format!("S{i}");
            let body = json!({"to": to, "fields": {"name": name}});
            // 201: started. 409 after a lost answer: the first try started it.
            loop {
                match call(&setup, "POST", "/v1/flows/notice/start", &body).await {
                    Some((201 | 409, _)) => break,
                    Some((status, answer)) if status < 500 => panic!("{status} {answer}"),
                    _ => {
                        record.lock().unwrap().retries += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            record.lock().unwrap().starts.insert(to, (name, true));
        }
    });
    run_at_most(starts, 8).await;
}

async fn create_campaign(setup: &Setup, plan: Plan) -> String {
    let contacts: Vec<String> = (0..plan.audience).map(listed).collect();
    let body = json!({
        "key": "chaos", "flow": "remind", "contacts": contacts, "messages_per_second": 20,
    });
    loop {
        match call(setup, "POST", "/v1/campaigns", &body).await {
            Some((200 | 201, answer)) => return answer["id"].as_str().unwrap().to_owned(),
            Some((status, answer)) if status < 500 => panic!("{status} {answer}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn run_at_most(tasks: impl Iterator<Item = impl Future<Output = ()>>, at_once: usize) {
    use futures_util::StreamExt as _;
    futures_util::stream::iter(tasks)
        .buffer_unordered(at_once)
        .collect::<Vec<()>>()
        .await;
}

/// Kills the server `plan.kills` times at random points and starts it again on its store.
async fn kill_repeatedly(setup: Arc<Setup>, plan: Plan, slot: Slot) -> Vec<Duration> {
    let mut random = Random(plan.seed);
    let mut downtimes = Vec::new();
    for _ in 0..plan.kills {
        tokio::time::sleep(random.millis(300, 2_500)).await;
        let server = slot.lock().unwrap().take().unwrap();
        let down = Instant::now();
        server.kill();
        // Down a while, as under a supervisor: texts and calls meanwhile fail and are retried.
        tokio::time::sleep(random.millis(0, 600)).await;
        let server = start_server(&setup).await;
        downtimes.push(down.elapsed());
        *slot.lock().unwrap() = Some(server);
    }
    downtimes
}

async fn setup() -> Setup {
    let setup = Setup::with_fake(
        &[],
        &[
            ("ping.toml", PING),
            ("notice.toml", NOTICE),
            ("remind.toml", REMIND),
        ],
    )
    .await;
    let rest = format!(
        r#"{}
[programs.care]
brand = "Acme Clinic"
help = "Acme Clinic reminders. Call (212) 555-0100. Reply STOP to opt out."
# The run is on the real clock, at whatever hour CI runs: quiet hours are tested elsewhere.
quiet_hours_exempt = true
"#,
        common::plugins_section("http://127.0.0.1:9")
    );
    setup.write_config(&twilio_provider(), 4, &rest);
    setup
}

/// How often each text body went to each number.
fn sent_counts(setup: &Setup) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for sent in setup.fake.sent() {
        *counts.entry((sent.to, sent.body)).or_insert(0) += 1;
    }
    counts
}

/// Texts to `to` whose body contains `needle`.
fn count(counts: &BTreeMap<(String, String), usize>, to: &str, needle: &str) -> usize {
    counts
        .iter()
        .filter(|((number, body), _)| number == to && body.contains(needle))
        .map(|(_, n)| *n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_inputs_survive_random_sigkills_once_each() {
    let plan = Plan::from_env();
    println!("chaos plan: {plan:?}");
    let setup = Arc::new(setup().await);
    let slot: Slot = Arc::new(Mutex::new(Some(start_server(&setup).await)));
    let record = Arc::new(Mutex::new(Record::default()));
    let campaign = create_campaign(&setup, plan).await;

    let killer = tokio::spawn(kill_repeatedly(Arc::clone(&setup), plan, Arc::clone(&slot)));
    let pings = tokio::spawn(load_pings(Arc::clone(&setup), plan, Arc::clone(&record)));
    let starts = tokio::spawn(load_starts(Arc::clone(&setup), plan, Arc::clone(&record)));
    pings.await.unwrap();
    starts.await.unwrap();
    let downtimes = killer.await.unwrap();

    let record = Arc::try_unwrap(record).unwrap().into_inner().unwrap();
    let expected = expected_texts(&record, plan);
    // Settled, or a minute passed: the checks below then name what is missing.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let counts = sent_counts(&setup);
        if expected
            .iter()
            .all(|(to, needle)| count(&counts, to, needle) >= 1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, progress) = call(
        &setup,
        "GET",
        &format!("/v1/campaigns/{campaign}"),
        &json!({}),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{progress:#}");
    // Late texts would show up now: give them a moment before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = check(&setup, &record, plan).await;
    assert_eq!(progress["state"], "done", "{progress:#}");
    assert_eq!(progress["started"], plan.audience, "{progress:#}");

    let report = json!({
        "kills": plan.kills,
        "seed": plan.seed,
        "restart_seconds": downtimes.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        "retried_requests": record.retries,
        "campaign": progress,
        "checks": report,
    });
    println!("chaos report: {report:#}");
    if let Ok(path) = std::env::var("CHAOS_REPORT") {
        std::fs::write(path, format!("{report:#}\n")).unwrap();
    }
}

/// (number, a part of the text that must reach it exactly once).
fn expected_texts(record: &Record, plan: Plan) -> Vec<(String, String)> {
    let mut expected = Vec::new();
    for (from, bodies) in &record.pings {
        if record.stops.contains_key(from) {
            continue;
        }
        expected.extend(
            bodies
                .iter()
                .map(|body| (from.clone(), format!("got {body}."))),
        );
        if let Some((text, true)) = record.replies.get(from) {
            expected.push((from.clone(), text.clone()));
        }
    }
    for (to, (name, _)) in &record.starts {
        expected.push((to.clone(), format!("hi {name},")));
    }
    for i in 0..plan.audience {
        expected.push((listed(i), format!("a reminder for {}.", listed(i))));
    }
    expected
}

/// The checks, and their counts for the report.
async fn check(setup: &Setup, record: &Record, plan: Plan) -> Value {
    let counts = sent_counts(setup);
    let expected = expected_texts(record, plan);
    let lost: Vec<&(String, String)> = expected
        .iter()
        .filter(|(to, needle)| count(&counts, to, needle) == 0)
        .collect();
    let doubled: Vec<(&(String, String), &usize)> =
        counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged and never answered: {lost:?}",
        lost.len()
    );
    assert!(doubled.is_empty(), "sent twice: {doubled:?}");

    // Unacknowledged agent replies: at most once (checked above); a STOP's contact got
    // nothing after its acknowledgement (a text already past the gate may land just after).
    for (from, stopped_at) in &record.stops {
        let late: Vec<_> = setup
            .fake
            .sent_to(from)
            .into_iter()
            .filter(|sent| sent.at > *stopped_at + jiff::SignedDuration::from_secs(1))
            .filter(|sent| !sent.body.contains("opted out") && !sent.body.contains("unsubscribed"))
            .collect();
        assert!(late.is_empty(), "texted {from} after its STOP: {late:?}");
    }

    // Every conversation reads, in a known state, its transcript in order.
    for from in record.pings.keys().chain(record.starts.keys()) {
        let (status, state) = call(
            setup,
            "GET",
            &format!("/v1/conversations/{from}"),
            &json!({}),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{from}: {state:#}");
        let seqs: Vec<u64> = state["transcript"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["seq"].as_u64().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|pair| pair[0] < pair[1]),
            "{from}: {seqs:?}"
        );
        let known = ["idle", "waiting", "ended", "handed_off"];
        let status = state["conversation"]["status"]["state"].as_str().unwrap();
        assert!(known.contains(&status), "{from}: {status}");
    }
    let (status, verified) = call(setup, "GET", "/v1/consent/verify", &json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200, "the consent ledger verifies: {verified:#}");
    let (_, queues) = call(setup, "GET", "/v1/status", &json!({})).await.unwrap();
    assert_eq!(queues["inbox"]["pending"], 0, "{queues:#}");
    assert_eq!(queues["inbox"]["dead_letters"], 0, "{queues:#}");

    let acknowledged = record.pings.values().map(Vec::len).sum::<usize>()
        + record.stops.len()
        + record.starts.len()
        + record.replies.values().filter(|(_, ack)| *ack).count()
        + 1;
    json!({
        "inputs_acknowledged": acknowledged,
        "texts_expected": expected.len(),
        "texts_sent": setup.fake.sent().len(),
        "duplicates": doubled.len(),
        "lost": lost.len(),
        "agent_replies_unacknowledged": record.replies.values().filter(|(_, ack)| !*ack).count(),
        "stops": record.stops.len(),
    })
}
