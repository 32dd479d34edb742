//! Cluster mode end to end: real `nats-server` processes in a JetStream cluster, real
//! `smsflow serve` nodes on loopback, signed Twilio webhooks from a load generator that records
//! what each node acknowledged, and the fake provider's record of what was sent.
//!
//! - A SIGKILL of the node owning the most partitions mid-load: every acknowledged text is
//!   answered exactly once, nothing reaches a contact after their STOP (sent to one node while a
//!   flow start for them goes through another), quiet hours hold, and the partitions move
//!   within the lease lifetime plus 5 s.
//! - A SIGSTOP past the lease: the paused owner is fenced, its late effects dropped.
//! - A node joining and then leaving gracefully: nothing is replayed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::fake_provider::{
    API_TOKEN, AUTH_TOKEN, PUBLIC_URL, Setup, encode, inbound_params, twilio_provider,
};
use common::nats::NatsCluster;
use common::{Server, free_port};
use serde_json::{Value, json};
use smsflow::ingress::twilio;

const PING_FLOW: &str = r#"
id = "ping"
program = "care"
kind = "transactional"
brand = "Acme Clinic"
start = "pong"
[triggers]
keywords = ["PING"]
[steps.pong]
type = "end"
text = "Acme Clinic: pong. Reply STOP to opt out."
"#;

/// Started through the API: the "campaign send" a STOP must stop.
const NOTICE_FLOW: &str = r#"
id = "notice"
program = "notices"
kind = "transactional"
brand = "Northwind Outfitters"
start = "tell"
[triggers]
api = true
[steps.tell]
type = "end"
text = "Northwind Outfitters: your order is ready for pickup."
"#;

/// Marketing: sent only to contacts with a marketing opt-in on record.
const DEALS_FLOW: &str = r#"
id = "deals"
program = "deals"
kind = "marketing"
brand = "Northwind Outfitters"
start = "offer"
[triggers]
api = true
[steps.offer]
type = "end"
text = "Northwind Outfitters: 20% off this week. Reply STOP to opt out."
"#;

/// The lease lifetime the tests run with.
const LEASE_TTL_MS: u64 = 3000;
const PARTITIONS: u32 = 24;

/// A New York contact (noon at the servers' clock: texts go at once).
fn new_york(n: usize) -> String {
    format!("+1212555{n:04}")
}

/// A Honolulu contact (07:00 at the servers' clock: inside quiet hours until 08:00).
fn honolulu(n: usize) -> String {
    format!("+1808555{n:04}")
}

struct Node {
    name: String,
    port: u16,
    server: Option<Server>,
}

impl Node {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.server.as_ref().unwrap().pid()
    }
}

/// The shared test directory: flows, the fake provider, and one config per node.
struct Cluster {
    setup: Setup,
    nats: NatsCluster,
    nodes: Vec<Node>,
    client: reqwest::Client,
}

impl Cluster {
    async fn new(servers: usize) -> Self {
        let setup = Setup::with_fake(
            &[],
            &[
                ("ping.toml", PING_FLOW),
                ("notice.toml", NOTICE_FLOW),
                ("deals.toml", DEALS_FLOW),
            ],
        )
        .await;
        std::fs::create_dir(setup.dir.path().join("plugins")).unwrap();
        setup.write_config(&twilio_provider(), 4, "[plugins]\ndir = \"plugins\"\n");
        Self {
            setup,
            nats: NatsCluster::start(servers),
            nodes: Vec::new(),
            client: reqwest::Client::new(),
        }
    }

    /// Adds node `name` and starts it.
    fn add_node(&mut self, name: &str) -> usize {
        let port = free_port();
        let base = std::fs::read_to_string(self.setup.config()).unwrap();
        let config = base
            .replace(
                &format!("listen = \"127.0.0.1:{}\"", self.setup.port),
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace("data/smsflow.db", &format!("data/{name}.db"))
            + &format!(
                r#"
[cluster]
nats = {nats}
node_id = "{name}"
partitions = {PARTITIONS}
replicas = {replicas}
lease_ttl_ms = {LEASE_TTL_MS}
snapshot_every = 200
snapshot_interval_ms = 2000
"#,
                nats = self.nats.toml_list(),
                replicas = self.nats.urls.len().min(3),
            );
        let path = self.setup.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = match std::env::var("SMSFLOW_TEST_LOGS") {
            Ok(dir) => PathBuf::from(dir).join(format!("{}-{name}.log", self.setup.port)),
            Err(_) => self.setup.dir.path().join(format!("{name}.log")),
        };
        let server = Server::start_logged(&path, port, &[], &log);
        self.nodes.push(Node {
            name: name.to_owned(),
            port,
            server: Some(server),
        });
        self.nodes.len() - 1
    }

    /// Posts a signed inbound text to node `node`; whether it was acknowledged.
    async fn post(&self, node: usize, sid: &str, from: &str, text: &str) -> bool {
        let params = inbound_params(sid, from, text);
        let url = format!("{PUBLIC_URL}/webhooks/twilio");
        let sent = self
            .client
            .post(format!("{}/webhooks/twilio", self.nodes[node].base()))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "x-twilio-signature",
                twilio::signature(&url, &params, AUTH_TOKEN),
            )
            .timeout(Duration::from_secs(10))
            .body(encode(&params))
            .send()
            .await;
        matches!(sent, Ok(response) if response.status().is_success())
    }

    /// Posts until one of `nodes` acknowledges it, as a provider retries (same message id).
    async fn deliver(
        &self,
        nodes: &[usize],
        turn: usize,
        sid: &str,
        from: &str,
        text: &str,
    ) -> usize {
        for attempt in 0..200 {
            let node = nodes[(turn + attempt) % nodes.len()];
            if self.post(node, sid, from, text).await {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no node acknowledged {sid}");
    }

    /// Starts the notice flow for `to` through node `node`.
    async fn start_notice(&self, node: usize, to: &str) -> u16 {
        self.start(node, "notice", to).await
    }

    /// Starts `flow` for `to` through node `node`.
    async fn start(&self, node: usize, flow: &str, to: &str) -> u16 {
        self.client
            .post(format!("{}/v1/flows/{flow}/start", self.nodes[node].base()))
            .bearer_auth(API_TOKEN)
            .header("idempotency-key", format!("{flow}-{to}"))
            .header("content-type", "application/json")
            .body(json!({ "to": to }).to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Node `node`'s report: its partitions.
    async fn partitions_of(&self, node: usize) -> Option<BTreeMap<u32, Value>> {
        let response = self
            .client
            .get(format!("{}/v1/cluster", self.nodes[node].base()))
            .bearer_auth(API_TOKEN)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let report: Value = serde_json::from_str(&response.text().await.ok()?).ok()?;
        let partitions = report["partitions"].as_object()?;
        Some(
            partitions
                .iter()
                .map(|(p, value)| (p.parse().unwrap(), value.clone()))
                .collect(),
        )
    }

    /// Waits until `nodes` together own every partition, each once; returns how long it took.
    async fn wait_for_full_ownership(&self, nodes: &[usize], within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let mut owned = Vec::new();
            for node in nodes {
                owned.extend(
                    self.partitions_of(*node)
                        .await
                        .unwrap_or_default()
                        .into_keys(),
                );
            }
            let distinct: BTreeSet<u32> = owned.iter().copied().collect();
            if owned.len() == PARTITIONS as usize && distinct.len() == PARTITIONS as usize {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "after {within:?} the nodes own {} partitions ({} distinct) of {PARTITIONS}",
                owned.len(),
                distinct.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST path` with `body` on node `node` as the operator: the status.
    async fn post_json(&self, node: usize, path: &str, body: &Value) -> u16 {
        self.client
            .post(format!("{}{path}", self.nodes[node].base()))
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// `GET path` on node `node` as the operator: the JSON answer, which must be 200.
    async fn read(&self, node: usize, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.nodes[node].base()))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "GET {path} on node {node}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap()
    }

    /// Waits until `nodes` own every partition and `node`, among them, owns some.
    async fn wait_until_sharing(&self, nodes: &[usize], node: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .partitions_of(node)
            .await
            .unwrap_or_default()
            .is_empty()
        {
            assert!(
                Instant::now() < deadline,
                "{} took no partition\n{}",
                self.nodes[node].name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_for_full_ownership(nodes, Duration::from_secs(30))
            .await;
    }

    /// A cluster event counter of node `node` (0 when it has none yet).
    async fn counter(&self, node: usize, event: &str) -> u64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.nodes[node].base()))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series = format!("smsflow_cluster_events_total{{event=\"{event}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&series))
            .map_or(0, |value| value.trim().parse().unwrap())
    }

    /// Waits until the fake has sent `count` texts in all, then a little longer for extras.
    async fn wait_for_sent(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.setup.fake.sent().len() < count {
            if Instant::now() > deadline {
                // The assertions that follow say which contacts lack what.
                eprintln!(
                    "only {} of {count} texts were sent",
                    self.setup.fake.sent().len()
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Duplicates would come after the expected texts: give them time to show.
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    /// The texts each contact received, by body.
    fn received(&self) -> BTreeMap<String, Vec<String>> {
        let mut by_contact: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for sent in self.setup.fake.sent() {
            by_contact.entry(sent.to).or_default().push(sent.body);
        }
        by_contact
    }

    /// The node owning the most partitions.
    async fn busiest(&self, among: &[usize]) -> usize {
        let mut best = (0, among[0]);
        for node in among {
            let owned = self.partitions_of(*node).await.unwrap_or_default().len();
            if owned > best.0 {
                best = (owned, *node);
            }
        }
        best.1
    }

    /// Every node's log, for a failure message.
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| {
                let log = std::fs::read_to_string(
                    self.setup.dir.path().join(format!("{}.log", node.name)),
                )
                .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                format!(
                    "--- {} ---\n{}",
                    node.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn is_pong(body: &str) -> bool {
    body.contains("pong")
}

/// Exactly one pong per acknowledged PING contact.
fn assert_each_answered_once(received: &BTreeMap<String, Vec<String>>, contacts: &[String]) {
    let wrong: Vec<(&String, usize)> = contacts
        .iter()
        .map(|contact| {
            let pongs = received.get(contact).map_or(0, |bodies| {
                bodies.iter().filter(|body| is_pong(body)).count()
            });
            (contact, pongs)
        })
        .filter(|(_, pongs)| *pongs != 1)
        .collect();
    if let (false, Ok(dir)) = (wrong.is_empty(), std::env::var("SMSFLOW_TEST_LOGS")) {
        eprintln!("logs kept in {dir}");
    }
    assert!(
        wrong.is_empty(),
        "{} contacts did not get exactly one pong: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_owner_loses_nothing_and_doubles_nothing() {
    let mut cluster = Cluster::new(3).await;
    for name in ["n1", "n2", "n3"] {
        cluster.add_node(name);
    }
    cluster
        .wait_for_full_ownership(&[0, 1, 2], Duration::from_secs(30))
        .await;

    // 2,000 contacts: 1,700 in New York text PING, 200 in New York text STOP and then get a
    // flow started for them through another node, 100 in Honolulu text PING at 07:00.
    let pinging: Vec<String> = (0..1700).map(new_york).collect();
    let stopping: Vec<String> = (5000..5200).map(new_york).collect();
    let quiet: Vec<String> = (0..100).map(honolulu).collect();
    let mut live = vec![0, 1, 2];
    let mut killed = None;
    let mut failover = Duration::ZERO;
    for n in 0..1000 {
        if n == 500 {
            let victim = cluster.busiest(&live).await;
            let owned = cluster.partitions_of(victim).await.unwrap().len();
            cluster.nodes[victim].server.take().unwrap().kill();
            live.retain(|node| *node != victim);
            killed = Some((victim, owned, Instant::now()));
        }
        let contact = &pinging[n];
        cluster
            .deliver(&live, n, &format!("SMping{n}"), contact, "PING")
            .await;
        if n < 700 {
            let contact = &pinging[1000 + n];
            cluster
                .deliver(
                    &live,
                    n + 1,
                    &format!("SMping{}", 1000 + n),
                    contact,
                    "PING",
                )
                .await;
        }
        if n < 200 {
            let contact = &stopping[n];
            let stopped_at = cluster
                .deliver(&live, n, &format!("SMstop{n}"), contact, "STOP")
                .await;
            let other =
                live[(live.iter().position(|node| *node == stopped_at).unwrap() + 1) % live.len()];
            let status = cluster.start_notice(other, contact).await;
            assert_eq!(status, 202, "the start through node {other}");
        }
        if n < 100 {
            cluster
                .deliver(&live, n, &format!("SMquiet{n}"), &quiet[n], "PING")
                .await;
        }
        if let Some((_, _, at)) = killed
            && failover.is_zero()
            && n % 20 == 0
        {
            let all: BTreeSet<u32> = {
                let mut owned = BTreeSet::new();
                for node in &live {
                    owned.extend(
                        cluster
                            .partitions_of(*node)
                            .await
                            .unwrap_or_default()
                            .into_keys(),
                    );
                }
                owned
            };
            if all.len() == PARTITIONS as usize {
                failover = at.elapsed();
            }
        }
    }
    let (victim, owned, at) = killed.unwrap();
    if failover.is_zero() {
        cluster
            .wait_for_full_ownership(&live, Duration::from_secs(30))
            .await;
        failover = at.elapsed();
    }
    eprintln!(
        "killed {} owning {owned} of {PARTITIONS} partitions; its partitions were owned again after {failover:?}",
        cluster.nodes[victim].name
    );
    assert!(
        failover <= Duration::from_millis(LEASE_TTL_MS) + Duration::from_secs(5),
        "failover took {failover:?}\n{}",
        cluster.logs()
    );

    // 1,700 pongs and 200 STOP confirmations.
    cluster.wait_for_sent(1900).await;
    let received = cluster.received();
    assert_each_answered_once(&received, &pinging);
    for contact in &stopping {
        let bodies = received.get(contact).cloned().unwrap_or_default();
        assert_eq!(
            bodies.len(),
            1,
            "{contact} must get only the STOP confirmation: {bodies:?}"
        );
        assert!(
            bodies[0].contains("unsubscribed") && !bodies[0].contains("pickup"),
            "{contact} was texted after STOP: {bodies:?}"
        );
    }
    for contact in &quiet {
        assert!(
            !received.contains_key(contact),
            "{contact} was texted in quiet hours: {:?}",
            received.get(contact)
        );
    }
    assert_eq!(
        received.values().map(Vec::len).sum::<usize>(),
        1900,
        "no other text was sent"
    );
    for node in &live {
        assert_eq!(cluster.counter(*node, "send_failed").await, 0);
    }

    // Reads go to the contact's partition owner from any node, also for partitions that moved.
    for (n, contact) in pinging.iter().take(40).enumerate() {
        let node = live[n % live.len()];
        let page = cluster
            .read(node, &format!("/v1/conversations/{contact}"))
            .await;
        let texts: Vec<&str> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect();
        assert!(
            texts.len() == 1 && is_pong(texts[0]),
            "{contact} through node {node}: {page:#}"
        );
    }
    for contact in stopping.iter().take(20) {
        let records = cluster
            .read(live[0], &format!("/v1/consent/{contact}"))
            .await;
        assert!(
            records.to_string().contains("opt_out"),
            "{contact}: {records:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_is_fenced_and_its_late_effects_dropped() {
    let mut cluster = Cluster::new(3).await;
    for name in ["n1", "n2", "n3"] {
        cluster.add_node(name);
    }
    let all = [0, 1, 2];
    cluster
        .wait_for_full_ownership(&all, Duration::from_secs(30))
        .await;
    let victim = cluster.busiest(&all).await;
    let others: Vec<usize> = all.into_iter().filter(|node| *node != victim).collect();
    let held = cluster.partitions_of(victim).await.unwrap();

    // The victim is busy with a burst when it is paused, past its lease.
    let contacts: Vec<String> = (0..600).map(new_york).collect();
    for (n, contact) in contacts.iter().enumerate() {
        if n == 300 {
            signal(cluster.nodes[victim].pid(), "STOP");
        }
        cluster
            .deliver(&others, n, &format!("SMburst{n}"), contact, "PING")
            .await;
    }
    let paused = cluster
        .wait_for_full_ownership(
            &others,
            Duration::from_millis(LEASE_TTL_MS) + Duration::from_secs(5),
        )
        .await;
    let moved = cluster
        .partitions_of(others[0])
        .await
        .unwrap()
        .into_iter()
        .chain(cluster.partitions_of(others[1]).await.unwrap());
    for (p, report) in moved {
        if let Some(old) = held.get(&p) {
            assert!(
                report["epoch"].as_u64() > old["epoch"].as_u64(),
                "partition {p} moved without a newer epoch"
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(cluster.nodes[victim].pid(), "CONT");

    cluster.wait_for_sent(600).await;
    let received = cluster.received();
    assert_each_answered_once(&received, &contacts);
    assert_eq!(received.values().map(Vec::len).sum::<usize>(), 600);
    // The resumed node stopped at once: it lost its leases, and what it still tried to send
    // was refused by its own fence or dropped at the sender's.
    // The resumed node notices at its next tick, which may come after the last text arrived.
    let noticed = Instant::now() + Duration::from_secs(10);
    let mut lost = cluster.counter(victim, "lease_lost").await;
    while lost == 0 && Instant::now() < noticed {
        tokio::time::sleep(Duration::from_millis(100)).await;
        lost = cluster.counter(victim, "lease_lost").await;
    }
    assert!(
        lost >= 1,
        "the paused node lost no lease\n{}",
        cluster.logs()
    );
    let mut dropped = cluster.counter(victim, "stale_refused").await
        + cluster.counter(victim, "stale_input").await;
    for node in all {
        dropped += cluster.counter(node, "fenced_text").await;
    }
    eprintln!(
        "paused for {paused:?} past its lease; it lost {lost} leases; {dropped} late effects dropped"
    );
    assert!(
        dropped >= 1,
        "the paused node had nothing in flight to fence\n{}",
        cluster.logs()
    );

    // It rejoins: its stale copies are discarded, the partitions it takes back come from the
    // snapshots of the owners it had lost them to.
    cluster.wait_until_sharing(&all, victim).await;
    let more: Vec<String> = (600..800).map(new_york).collect();
    for (n, contact) in more.iter().enumerate() {
        cluster
            .deliver(&all, n, &format!("SMafter{n}"), contact, "PING")
            .await;
    }
    cluster.wait_for_sent(800).await;
    let received = cluster.received();
    assert_each_answered_once(&received, &more);
    assert_eq!(received.values().map(Vec::len).sum::<usize>(), 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_joining_and_leaving_gracefully_replays_nothing() {
    let mut cluster = Cluster::new(3).await;
    cluster.add_node("n1");
    cluster.add_node("n2");
    cluster
        .wait_for_full_ownership(&[0, 1], Duration::from_secs(30))
        .await;
    let contacts: Vec<String> = (0..900).map(new_york).collect();
    let mut sent = 0;
    let mut send = async |cluster: &Cluster, nodes: &[usize], count: usize| {
        for (n, contact) in contacts.iter().enumerate().skip(sent).take(count) {
            cluster
                .deliver(nodes, n, &format!("SMreb{n}"), contact, "PING")
                .await;
        }
        sent += count;
        cluster.wait_for_sent(sent).await;
    };
    send(&cluster, &[0, 1], 300).await;

    let joined = cluster.add_node("n3");
    cluster.wait_until_sharing(&[0, 1, 2], joined).await;
    send(&cluster, &[0, 1, 2], 300).await;
    let applied_by_leaver = cluster.counter(joined, "applied").await;
    assert!(applied_by_leaver > 0, "the new node applied nothing");

    assert!(
        cluster.nodes[joined].server.take().unwrap().terminate(),
        "n3 did not stop cleanly"
    );
    cluster
        .wait_for_full_ownership(&[0, 1], Duration::from_secs(10))
        .await;
    send(&cluster, &[0, 1], 300).await;

    // A marketing opt-in recorded through one node reaches the contact's owner: a start
    // through another is sent to those who opted in, and blocked for the others.
    for n in 0..20 {
        let contact = new_york(7000 + n);
        if n < 10 {
            let opt_in = json!({
                "phone": contact,
                "program": "deals",
                "class": "marketing",
                "source": "checkout-page",
                "disclosure": "By checking this box you agree to receive marketing texts from Northwind Outfitters. Reply STOP to opt out.",
            });
            let status = cluster.post_json(0, "/v1/consent", &opt_in).await;
            assert_eq!(status, 202, "the opt-in of {contact}");
        }
        assert_eq!(cluster.start(1, "deals", &contact).await, 202);
    }
    cluster.wait_for_sent(910).await;
    let received = cluster.received();
    for n in 0..20 {
        let contact = new_york(7000 + n);
        let offers = received.get(&contact).map_or(0, Vec::len);
        assert_eq!(
            offers,
            usize::from(n < 10),
            "{contact}: {:?}",
            received.get(&contact)
        );
    }
    assert_each_answered_once(&received, &contacts);
    let mut applied = applied_by_leaver;
    let mut replayed = 0;
    for node in [0, 1] {
        applied += cluster.counter(node, "applied").await;
        replayed += cluster.counter(node, "replayed").await;
    }
    assert_eq!(
        replayed, 0,
        "inputs were applied twice after a graceful hand-over"
    );
    assert_eq!(
        applied,
        900 + 10 + 20,
        "every input applied once: texts, opt-ins, starts"
    );
    // `smsflow cluster status` sees the two nodes left, owning every partition between them.
    let status = common::cli(
        &cluster.setup.dir.path().join("n1.toml"),
        &["cluster", "status"],
    );
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        table.starts_with(&format!(
            "2 nodes, {PARTITIONS} of {PARTITIONS} partitions owned"
        )),
        "{table}"
    );
    assert!(!table.contains("(none)"), "{table}");
    let handed = cluster.counter(0, "handed_over").await + cluster.counter(1, "handed_over").await;
    assert!(handed > 0, "n1 and n2 handed nothing over to n3");
}
