//! A broadcast launch: N contacts imported as CSV through the API, one campaign to all of
//! them with pacing off, against the fake provider. Measures the import's rate, the time from
//! the campaign's creation until every contact is started (texts enqueued), the sustained rate
//! at which the texts reach the provider, and the server's peak memory.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::contacts::Contacts;
use crate::engine::{API_TOKEN, Engine, Paths, Setup};
use crate::fake_twilio::FakeTwilio;

/// How long the broadcast may take end to end.
const TIMEOUT: Duration = Duration::from_secs(900);
/// How often the campaign's progress is read (each read walks its targets).
const POLL: Duration = Duration::from_millis(500);

/// What the broadcast showed.
#[derive(Debug, Clone, Serialize)]
pub struct Broadcast {
    /// Contacts imported and texted.
    pub contacts: u64,
    /// The CSV import through `POST /v1/contacts/import`.
    pub import_seconds: f64,
    /// Rows per second of the import.
    pub import_rows_per_second: f64,
    /// From `POST /v1/campaigns` until every contact was started (its text queued).
    pub enqueue_seconds: f64,
    /// Starts per second over that time.
    pub starts_per_second: f64,
    /// Texts per second reaching the provider, first arrival to last.
    pub sends_per_second: f64,
    /// Texts the provider took (one per contact when nothing is lost or doubled).
    pub sent: u64,
    /// The server's peak resident memory.
    pub peak_rss_bytes: u64,
}

/// Runs the broadcast with `count` contacts.
///
/// # Errors
///
/// When the engine does not start, a call fails, or the broadcast does not finish in time.
pub async fn run(
    paths: &Paths,
    numbers: &Contacts,
    count: u64,
    fake: &FakeTwilio,
    fake_url: &str,
) -> anyhow::Result<Broadcast> {
    let setup = Setup::new(paths, fake_url)?;
    let engine = Engine::start(paths, &setup).await?;
    let block = numbers.block(count)?;
    let mut csv = String::from("phone,first_name,date,time,tags\n");
    for index in 0..count {
        csv.push_str(&format!(
            "{},P{index},March 4,10:00 AM,broadcast\n",
            block.number(index)
        ));
    }
    let client = reqwest::Client::new();
    let base = &engine.api.base;
    let imported = Instant::now();
    let summary = answer(
        client
            .post(format!("{base}/v1/contacts/import"))
            .header("content-type", "text/csv")
            .body(csv),
    )
    .await?;
    let import_seconds = imported.elapsed().as_secs_f64();
    anyhow::ensure!(
        summary["created"] == count,
        "the import created {} of {count}: {summary}",
        summary["created"]
    );
    let sent_before = fake.total();
    let launched = Instant::now();
    let campaign = json!({
        "flow": "appointment-confirmation",
        "segment": "tag = \"broadcast\"",
        "messages_per_second": 10000,
    });
    let created = answer(
        client
            .post(format!("{base}/v1/campaigns"))
            .header("content-type", "application/json")
            .body(campaign.to_string()),
    )
    .await?;
    let id = created["id"].as_str().context("no campaign id")?.to_owned();
    let enqueued = wait_started(&client, base, &id, count).await?;
    let enqueue_seconds = enqueued.duration_since(launched).as_secs_f64();
    let deadline = Instant::now() + TIMEOUT;
    while fake.total() - sent_before < count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} of {count} texts reached the provider",
            fake.total() - sent_before
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let arrivals = fake.arrivals((0..count).map(|index| block.number(index)));
    let times: Vec<Instant> = arrivals.values().flatten().copied().collect();
    let first = times.iter().min().copied().unwrap_or(launched);
    let last = times.iter().max().copied().unwrap_or(launched);
    let peak_rss_bytes = engine.server.peak_rss_bytes()?;
    engine.server.stop()?;
    #[allow(clippy::cast_precision_loss)]
    let per_second = |n: u64, seconds: f64| n as f64 / seconds.max(1e-9);
    Ok(Broadcast {
        contacts: count,
        import_seconds,
        import_rows_per_second: per_second(count, import_seconds),
        enqueue_seconds,
        starts_per_second: per_second(count, enqueue_seconds),
        sends_per_second: per_second(count, last.duration_since(first).as_secs_f64()),
        sent: times.len() as u64,
        peak_rss_bytes,
    })
}

/// Polls the campaign until it has started `count` contacts; when it saw that.
async fn wait_started(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    count: u64,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let progress = answer(client.get(format!("{base}/v1/campaigns/{id}"))).await?;
        if progress["started"] == count {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the campaign started {} of {count}: {progress}",
            progress["started"]
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The JSON the API answers `request` with, under the operator token.
async fn answer(request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = request.bearer_auth(API_TOKEN).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "the API answered {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(serde_json::from_slice(&body)?)
}
