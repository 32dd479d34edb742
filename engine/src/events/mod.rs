//! Outbound event webhooks to the operator's systems, signed per the Standard Webhooks spec.

pub mod signing;

use serde::{Deserialize, Serialize};

/// One `[[webhooks]]` entry of `smsflow.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// Where events are posted.
    pub url: String,
    /// The signing secret, `whsec_<base64>`.
    pub secret: String,
    /// The event types sent there (`message.received`, `conversation.handoff`,
    /// `contact.opted_out`, `message.status`, `conversion`); all when empty.
    #[serde(default)]
    pub events: Vec<String>,
}

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use sled::Transactional as _;
use sled::transaction::{
    ConflictableTransactionError, TransactionalTree, UnabortableTransactionError,
};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinSet;

use self::signing::{RETRY_SCHEDULE_SECS, WebhookSecret};
use crate::clock::SharedClock;
use crate::store::{Store, Trees, codec};

/// How long one delivery attempt may take, connection to last byte of the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries posted at once by one [`Events::deliver_due`] pass, so one slow endpoint does not
/// hold up the others.
const MAX_IN_FLIGHT: usize = 16;

/// How much of a failed answer's body is kept in [`EventDelivery::last_error`].
const ERROR_BODY_LIMIT: usize = 256;

/// The last millisecond of year 9999, the latest time RFC 3339 can write.
const LAST_RFC3339_MS: i64 = 253_402_300_799_999;

/// The longest the worker sleeps before looking for due deliveries again.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// One event, as the operator's systems receive it: the JSON body
/// `{"type": "message.received", "timestamp": "<RFC 3339>", "data": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event type (`message.received`, `conversation.handoff`, `contact.opted_out`,
    /// `message.status`, `conversion`).
    pub kind: String,
    /// The event's payload, the body's `data`.
    pub data: serde_json::Value,
    /// When it happened, in milliseconds since the Unix epoch (the body's `timestamp`).
    pub at_ms: i64,
}

/// The wire form of an [`Event`].
#[derive(Serialize)]
struct EventBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: &'a serde_json::Value,
}

impl Event {
    /// The JSON body posted to endpoints.
    ///
    /// # Errors
    ///
    /// When `data` cannot be serialised (it always can: it is a JSON value).
    pub fn to_body(&self) -> anyhow::Result<String> {
        // RFC 3339 (and humantime) stop at the end of year 9999.
        let at_ms = self.at_ms.clamp(0, LAST_RFC3339_MS);
        let at = UNIX_EPOCH + Duration::from_millis(at_ms.cast_unsigned());
        serde_json::to_string(&EventBody {
            kind: &self.kind,
            timestamp: humantime::format_rfc3339_millis(at).to_string(),
            data: &self.data,
        })
        .with_context(|| format!("cannot serialise a `{}` event", self.kind))
    }
}

/// One event on its way to one endpoint: a row of the `events` tree (or of
/// `event_dead_letters` once its retry schedule is spent), keyed by `seq` (u64 big-endian).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDelivery {
    /// The row's key: emission order.
    pub seq: u64,
    /// The endpoint's URL.
    pub url: String,
    /// The event type, for listings (the body holds it too).
    pub kind: String,
    /// The Standard Webhooks `webhook-id`, `msg_<seq>`: the same on every attempt, so the
    /// receiver can drop duplicates.
    pub msg_id: String,
    /// The exact JSON body that is signed and posted, serialised once at emission.
    pub body: String,
    /// When the event was queued.
    pub created_at_ms: i64,
    /// Attempts that failed so far.
    pub attempts: u32,
    /// When the next attempt may run.
    pub next_attempt_ms: i64,
    /// When the last attempt ran.
    #[serde(default)]
    pub last_attempt_ms: Option<i64>,
    /// Why the last attempt failed (`HTTP 500: <start of the answer>`, a network error).
    pub last_error: Option<String>,
}

/// Deliveries built by [`Events::prepare`], not yet written: for queueing an event in the
/// same sled transaction as the state change it reports.
#[derive(Debug, Clone, Default)]
pub struct PreparedEvent {
    rows: Vec<([u8; 8], Vec<u8>)>,
}

impl PreparedEvent {
    /// Whether no endpoint is subscribed to the event (nothing to write).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// How many deliveries (one per subscribed endpoint) it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Writes the deliveries inside a transaction over the `events` tree
    /// ([`Trees::events`]). Call [`Events::notify`] once the transaction commits.
    ///
    /// # Errors
    ///
    /// When the transaction must retry or the storage fails (sled decides).
    pub fn insert_in(&self, events: &TransactionalTree) -> Result<(), UnabortableTransactionError> {
        for (key, value) in &self.rows {
            events.insert(key.as_slice(), value.as_slice())?;
        }
        Ok(())
    }
}

/// A configured endpoint, its secret parsed.
#[derive(Debug)]
struct Endpoint {
    url: String,
    events: Vec<String>,
    secret: WebhookSecret,
}

impl Endpoint {
    fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|wanted| wanted == kind)
    }
}

/// What one attempt came to.
type Outcome = Result<(), String>;

/// Outbound event webhooks: events are queued durably in the `events` tree, one row per
/// subscribed endpoint, and a worker posts them, signed per Standard Webhooks, retrying on the
/// spec's schedule and moving what never got through to `event_dead_letters`.
///
/// Delivery is at least once: a receiver recognises a repeat by its `webhook-id`.
pub struct Events {
    store: Store,
    trees: Trees,
    endpoints: Vec<Endpoint>,
    clock: SharedClock,
    client: reqwest::Client,
    /// Delay before each attempt, in milliseconds; its length is the number of attempts.
    schedule_ms: Vec<i64>,
    wake: Notify,
    /// Held by the running [`Events::deliver_due`] pass, so no row is posted twice at once.
    delivering: Mutex<()>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("endpoints", &self.endpoints)
            .field("schedule_ms", &self.schedule_ms)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// Event delivery from `store` to `endpoints`.
    ///
    /// # Errors
    ///
    /// When an endpoint's URL is not an http(s) URL or its secret is not a `whsec_` secret (the
    /// error names the URL), or when the store's trees or the HTTP client cannot be set up.
    pub fn new(
        store: &Store,
        endpoints: Vec<WebhookEndpoint>,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let endpoints = endpoints
            .into_iter()
            .map(|endpoint| {
                let url = url::Url::parse(&endpoint.url)
                    .with_context(|| format!("the webhook URL `{}` is not a URL", endpoint.url))?;
                anyhow::ensure!(
                    matches!(url.scheme(), "http" | "https"),
                    "the webhook URL `{}` is not an http or https URL",
                    endpoint.url
                );
                let secret = WebhookSecret::parse(&endpoint.secret).with_context(|| {
                    format!("the secret of the webhook `{}` is refused", endpoint.url)
                })?;
                Ok(Endpoint {
                    url: endpoint.url,
                    events: endpoint.events,
                    secret,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("smsflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client for event webhooks")?;
        Ok(Self {
            store: store.clone(),
            trees: store.trees()?,
            endpoints,
            clock,
            client,
            schedule_ms: RETRY_SCHEDULE_SECS
                .iter()
                .map(|&secs| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX))
                .collect(),
            wake: Notify::new(),
            delivering: Mutex::new(()),
        })
    }

    /// Replaces the retry schedule: the delay, in milliseconds, before each attempt (the first
    /// entry, normally 0, is the first attempt's). A delivery is dead-lettered after
    /// `schedule_ms.len()` failed attempts; an empty schedule means a single attempt.
    /// Negative delays count as 0. For tests.
    #[must_use]
    pub fn with_retry_schedule(mut self, schedule_ms: Vec<i64>) -> Self {
        self.schedule_ms = if schedule_ms.is_empty() {
            vec![0]
        } else {
            schedule_ms.into_iter().map(|ms| ms.max(0)).collect()
        };
        self
    }

    /// Tells the worker there is something to deliver.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Builds the deliveries of `event`, one per endpoint subscribed to its type, without
    /// writing them: write them with [`PreparedEvent::insert_in`] inside a transaction, then
    /// call [`Events::notify`]. [`Events::emit`] is the non-transactional shortcut.
    ///
    /// # Errors
    ///
    /// When the body cannot be serialised or an id cannot be generated.
    pub fn prepare(&self, event: &Event) -> anyhow::Result<PreparedEvent> {
        let mut subscribed = self
            .endpoints
            .iter()
            .filter(|endpoint| endpoint.wants(&event.kind))
            .peekable();
        if subscribed.peek().is_none() {
            return Ok(PreparedEvent::default());
        }
        let body = event.to_body()?;
        let now = self.clock.now_ms();
        let mut rows = Vec::new();
        for endpoint in subscribed {
            let seq = self.store.generate_id()?;
            let delivery = EventDelivery {
                seq,
                url: endpoint.url.clone(),
                kind: event.kind.clone(),
                msg_id: format!("msg_{seq}"),
                body: body.clone(),
                created_at_ms: now,
                attempts: 0,
                next_attempt_ms: now,
                last_attempt_ms: None,
                last_error: None,
            };
            rows.push((seq.to_be_bytes(), codec::encode(&delivery)?));
        }
        Ok(PreparedEvent { rows })
    }

    /// Queues a `kind` event with `data`, happening now, for every endpoint subscribed to
    /// `kind` (an endpoint with an empty `events` list takes every kind), and wakes the
    /// worker. The rows are written atomically but not flushed: the caller flushes
    /// ([`Store::flush`]) with its own writes. The worker flushes before posting, so an event
    /// never reaches an endpoint before it (and what was written before it) is on disk.
    ///
    /// # Errors
    ///
    /// When the body cannot be serialised or the store cannot be written.
    pub fn emit(&self, kind: &str, data: serde_json::Value) -> anyhow::Result<()> {
        let event = Event {
            kind: kind.to_owned(),
            data,
            at_ms: self.clock.now_ms(),
        };
        let prepared = self.prepare(&event)?;
        if prepared.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in &prepared.rows {
            batch.insert(key.as_slice(), value.as_slice());
        }
        self.trees
            .events
            .apply_batch(batch)
            .with_context(|| format!("cannot queue a `{kind}` event"))?;
        self.notify();
        Ok(())
    }

    /// Posts every delivery that is due, up to 16 at a time, each with
    /// `content-type: application/json` and the Standard Webhooks headers (`webhook-id` the
    /// row's `msg_id`, `webhook-timestamp` now, `webhook-signature`). A 2xx answer removes the
    /// row; anything else (another status, a timeout, a refused connection) counts a failed
    /// attempt and schedules the next from the retry schedule, or, when the schedule is
    /// spent, moves the row to the dead letters. Returns how many deliveries succeeded.
    ///
    /// Passes do not overlap: a call waits for the running one.
    ///
    /// # Errors
    ///
    /// When the store cannot be read, written or flushed.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let _pass = self.delivering.lock().await;
        let now = self.clock.now_ms();
        let mut due = self
            .pending()?
            .into_iter()
            .filter(|delivery| delivery.next_attempt_ms <= now)
            .peekable();
        if due.peek().is_none() {
            return Ok(0);
        }
        // Nothing is posted before its row, and whatever was written before it, is durable.
        self.store.flush().await?;

        let secrets: HashMap<&str, &WebhookSecret> = self
            .endpoints
            .iter()
            .map(|endpoint| (endpoint.url.as_str(), &endpoint.secret))
            .collect();
        let mut in_flight: JoinSet<(EventDelivery, Outcome)> = JoinSet::new();
        let mut delivered = 0;
        loop {
            while in_flight.len() < MAX_IN_FLIGHT {
                let Some(delivery) = due.next() else { break };
                let Some(secret) = secrets.get(delivery.url.as_str()) else {
                    self.dead_letter(delivery, "no [[webhooks]] endpoint has this URL any more")?;
                    continue;
                };
                let timestamp = self.clock.now_ms().div_euclid(1000);
                let headers = secret.headers(&delivery.msg_id, timestamp, delivery.body.as_bytes());
                let client = self.client.clone();
                in_flight.spawn(async move {
                    let outcome = post(&client, &delivery, headers).await;
                    (delivery, outcome)
                });
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            match joined {
                Ok((delivery, outcome)) => {
                    if self.settle(delivery, outcome)? {
                        delivered += 1;
                    }
                }
                // The row is unchanged: it is posted again on a later pass.
                Err(error) => tracing::error!("an event delivery task failed: {error}"),
            }
        }
        Ok(delivered)
    }

    /// Records an attempt's outcome; returns whether it was delivered.
    fn settle(&self, mut delivery: EventDelivery, outcome: Outcome) -> anyhow::Result<bool> {
        let key = delivery.seq.to_be_bytes();
        let now = self.clock.now_ms();
        delivery.last_attempt_ms = Some(now);
        let reason = match outcome {
            Ok(()) => {
                self.trees
                    .events
                    .remove(key)
                    .context("cannot remove a delivered event")?;
                tracing::debug!(msg_id = %delivery.msg_id, url = %delivery.url, "event delivered");
                return Ok(true);
            }
            Err(reason) => reason,
        };
        delivery.attempts = delivery.attempts.saturating_add(1);
        let next_delay = usize::try_from(delivery.attempts)
            .ok()
            .and_then(|attempts| self.schedule_ms.get(attempts))
            .copied();
        let Some(delay) = next_delay else {
            tracing::error!(
                msg_id = %delivery.msg_id,
                url = %delivery.url,
                attempts = delivery.attempts,
                "event dead-lettered: {reason}"
            );
            self.dead_letter(delivery, &reason)?;
            return Ok(false);
        };
        tracing::warn!(
            msg_id = %delivery.msg_id,
            url = %delivery.url,
            attempt = delivery.attempts,
            "event delivery failed, retrying in {delay} ms: {reason}"
        );
        delivery.last_error = Some(reason);
        delivery.next_attempt_ms = now.saturating_add(delay);
        self.trees
            .events
            .insert(key, codec::encode(&delivery)?)
            .context("cannot reschedule an event delivery")?;
        Ok(false)
    }

    /// Moves a delivery from the queue to the dead letters.
    fn dead_letter(&self, mut delivery: EventDelivery, reason: &str) -> anyhow::Result<()> {
        delivery.last_error = Some(reason.to_owned());
        let encoded = codec::encode(&delivery)?;
        let key = delivery.seq.to_be_bytes();
        (&self.trees.events, &self.trees.event_dead_letters)
            .transaction(|(events, dead)| {
                events.remove(&key)?;
                dead.insert(&key, encoded.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|error| anyhow!("cannot dead-letter an event delivery: {error:?}"))
    }

    /// When the next queued delivery is due.
    fn next_due(&self) -> anyhow::Result<Option<i64>> {
        Ok(self
            .pending()?
            .iter()
            .map(|delivery| delivery.next_attempt_ms)
            .min())
    }

    /// Delivers events until the task is dropped: a pass of [`Events::deliver_due`], then a
    /// sleep until the next delivery is due (at most a second) or [`Events::emit`] wakes it.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(error) = self.deliver_due().await {
                tracing::error!("events: {error:#}");
            }
            let wait = match self.next_due() {
                Ok(Some(due)) => Duration::from_millis(
                    due.saturating_sub(self.clock.now_ms())
                        .clamp(0, 1000)
                        .cast_unsigned(),
                ),
                Ok(None) => MAX_IDLE,
                Err(error) => {
                    tracing::error!("events: {error:#}");
                    MAX_IDLE
                }
            };
            let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        }
    }

    /// Deliveries queued and not yet through, in emission order.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn pending(&self) -> anyhow::Result<Vec<EventDelivery>> {
        read_all(&self.trees.events)
    }

    /// Deliveries that failed their whole retry schedule, in emission order.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn dead_letters(&self) -> anyhow::Result<Vec<EventDelivery>> {
        read_all(&self.trees.event_dead_letters)
    }

    /// Moves dead letters (all, or the one with `seq`) back into the queue, due now with fresh
    /// attempts, and wakes the worker; returns how many moved. Not flushed.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or written.
    pub fn replay(&self, seq: Option<u64>) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        let mut moved = 0;
        for mut delivery in self.dead_letters()? {
            if seq.is_some_and(|wanted| wanted != delivery.seq) {
                continue;
            }
            delivery.attempts = 0;
            delivery.next_attempt_ms = now;
            let encoded = codec::encode(&delivery)?;
            let key = delivery.seq.to_be_bytes();
            (&self.trees.event_dead_letters, &self.trees.events)
                .transaction(|(dead, events)| {
                    dead.remove(&key)?;
                    events.insert(&key, encoded.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(|error| anyhow!("cannot replay an event dead letter: {error:?}"))?;
            moved += 1;
        }
        if moved > 0 {
            self.notify();
        }
        Ok(moved)
    }
}

/// One attempt: posts `delivery` with `headers`; `Err` holds why it did not count as delivered.
async fn post(
    client: &reqwest::Client,
    delivery: &EventDelivery,
    headers: [(&'static str, String); 3],
) -> Outcome {
    let mut request = client
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(delivery.body.clone());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut response = request
        .send()
        .await
        .map_err(|error| format!("{:#}", anyhow::Error::from(error)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    // Keep the start of the answer: it usually says what the receiver disliked.
    let mut answer = Vec::new();
    while answer.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    answer.truncate(ERROR_BODY_LIMIT);
    let answer = String::from_utf8_lossy(&answer);
    let answer = answer.trim();
    Err(if answer.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {answer}")
    })
}

fn read_all(tree: &sled::Tree) -> anyhow::Result<Vec<EventDelivery>> {
    tree.iter()
        .values()
        .map(|value| codec::decode(&value.context("cannot read event deliveries")?))
        .collect()
}
