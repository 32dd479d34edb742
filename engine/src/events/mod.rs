//! Outbound event webhooks to the operator's systems, signed per the Standard Webhooks spec.
//!
//! An event is queued as one row per subscribed endpoint, in the same batch as the state
//! change it reports ([`Events::prepare_in`]), so it is reported exactly when that change is
//! committed. A worker posts the rows, retrying on the spec's schedule and moving what never
//! got through to the dead letters. Delivery is at least once: a receiver recognises a repeat
//! by its `webhook-id`.

mod kinds;
pub mod signing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinSet;

pub use self::kinds::{
    EngineEvent, EventKind, OptOutSource, RunContext, UnknownEventKind, WebhookEndpoint,
};
use self::signing::{RETRY_SCHEDULE_SECS, WebhookSecret};
use crate::clock::SharedClock;
pub use crate::store::events::EventDelivery;
use crate::store::events::EventQueue;
use crate::store::{Batch, Store};

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
    /// The event type.
    pub kind: EventKind,
    /// The event's payload, the body's `data`.
    pub data: serde_json::Value,
    /// When it happened, in milliseconds since the Unix epoch (the body's `timestamp`).
    pub at_ms: i64,
}

/// The wire form of an [`Event`].
#[derive(Serialize)]
struct EventBody<'a> {
    #[serde(rename = "type")]
    kind: EventKind,
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
            kind: self.kind,
            timestamp: humantime::format_rfc3339_millis(at).to_string(),
            data: &self.data,
        })
        .with_context(|| format!("cannot serialise a `{}` event", self.kind))
    }
}

/// A configured endpoint, its secret parsed.
#[derive(Debug)]
struct Endpoint {
    url: String,
    events: Vec<EventKind>,
    secret: WebhookSecret,
}

impl Endpoint {
    fn wants(&self, kind: EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }
}

/// What one attempt came to.
type Outcome = Result<(), String>;

/// Outbound event webhooks: the queue and its worker (see the module documentation).
pub struct Events {
    store: Store,
    queue: EventQueue,
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
    /// error names the URL), or when the HTTP client cannot be set up.
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
            queue: store.tables().events,
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

    /// Whether any endpoint takes events of `kind`: callers skip building a payload nobody
    /// reads.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.endpoints.iter().any(|endpoint| endpoint.wants(kind))
    }

    /// Adds `event`'s deliveries (one per endpoint subscribed to its type), happening now, to
    /// `batch`; returns how many. Call [`Events::notify`] once the batch is applied.
    ///
    /// # Errors
    ///
    /// When an id cannot be generated or a row encoded.
    pub fn prepare_in(&self, batch: &mut Batch, event: &EngineEvent) -> anyhow::Result<usize> {
        if !self.wants(event.kind()) {
            return Ok(0);
        }
        self.prepare_raw_in(batch, event.kind(), event.data())
    }

    /// [`Events::prepare_in`] for a payload given as JSON.
    ///
    /// # Errors
    ///
    /// As [`Events::prepare_in`].
    pub fn prepare_raw_in(
        &self,
        batch: &mut Batch,
        kind: EventKind,
        data: serde_json::Value,
    ) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        let event = Event {
            kind,
            data,
            at_ms: now,
        };
        let mut rows = 0;
        let mut body = None;
        for endpoint in self
            .endpoints
            .iter()
            .filter(|endpoint| endpoint.wants(kind))
        {
            let body = match &body {
                Some(body) => body,
                None => body.insert(event.to_body()?),
            };
            let seq = self.store.generate_id()?;
            let delivery = EventDelivery {
                seq,
                url: endpoint.url.clone(),
                kind: kind.as_str().to_owned(),
                msg_id: format!("msg_{seq}"),
                body: body.clone(),
                created_at_ms: now,
                attempts: 0,
                next_attempt_ms: now,
                last_attempt_ms: None,
                last_error: None,
            };
            self.queue.put_in(batch, &delivery)?;
            rows += 1;
        }
        Ok(rows)
    }

    /// Queues a `kind` event with `data`, happening now, on its own, and wakes the worker.
    /// Not flushed: the caller flushes ([`Store::flush`]) with its own writes. The worker
    /// flushes before posting, so an event never reaches an endpoint before it (and what was
    /// written before it) is on disk.
    ///
    /// # Errors
    ///
    /// When the body cannot be serialised or the store cannot be written.
    pub fn emit(&self, kind: EventKind, data: serde_json::Value) -> anyhow::Result<()> {
        let mut batch = Batch::new();
        if self.prepare_raw_in(&mut batch, kind, data)? > 0 {
            self.store
                .apply(batch)
                .with_context(|| format!("cannot queue a `{kind}` event"))?;
            self.notify();
        }
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
        let now = self.clock.now_ms();
        delivery.last_attempt_ms = Some(now);
        let mut batch = Batch::new();
        let reason = match outcome {
            Ok(()) => {
                self.queue.remove_in(&mut batch, delivery.seq);
                self.store
                    .apply(batch)
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
        self.queue.put_in(&mut batch, &delivery)?;
        self.store
            .apply(batch)
            .context("cannot reschedule an event delivery")?;
        Ok(false)
    }

    /// Moves a delivery from the queue to the dead letters.
    fn dead_letter(&self, mut delivery: EventDelivery, reason: &str) -> anyhow::Result<()> {
        delivery.last_error = Some(reason.to_owned());
        let mut batch = Batch::new();
        self.queue.bury_in(&mut batch, &delivery)?;
        self.store
            .apply(batch)
            .context("cannot dead-letter an event delivery")?;
        Ok(())
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
        let mut failures = 0;
        loop {
            if let Err(error) = self.deliver_due().await {
                let pause = crate::clock::pause_after_failure("events", &error, &mut failures);
                tokio::time::sleep(pause).await;
                continue;
            }
            failures = 0;
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
        Ok(self.queue.pending()?)
    }

    /// Deliveries that failed their whole retry schedule, in emission order.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn dead_letters(&self) -> anyhow::Result<Vec<EventDelivery>> {
        Ok(self.queue.dead_letters()?)
    }

    /// Moves dead letters (all, or the one with `seq`) back into the queue, due now with fresh
    /// attempts, and wakes the worker; returns how many moved. Not flushed.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or written.
    pub fn replay(&self, seq: Option<u64>) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        let mut batch = Batch::new();
        let mut moved = 0;
        for mut delivery in self.dead_letters()? {
            if seq.is_some_and(|wanted| wanted != delivery.seq) {
                continue;
            }
            delivery.attempts = 0;
            delivery.next_attempt_ms = now;
            self.queue.revive_in(&mut batch, &delivery)?;
            moved += 1;
        }
        self.store
            .apply(batch)
            .context("cannot replay event dead letters")?;
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
