//! The durable inbox: an inbound text is stored and flushed before its webhook is acknowledged,
//! then processed by workers, retried with exponential backoff when processing fails, and moved
//! to the dead letters after its last attempt.
//!
//! A text is recognised by (provider, provider's message id): the id is recorded in the same
//! batch that stores the text, by a writer that holds off other deliveries of the same text
//! (the ingest pipeline holds the conversation's lock; [`Inbox::accept`] a lock of its own), so
//! of two concurrent deliveries exactly one is stored. Processing is exactly-once in effect:
//! the flow runtime removes the text's row and marks the event processed in the batch of its
//! turn, so a text whose turn committed is never processed again.
//!
//! Dispatch is in memory: a stored text is handed to the dispatcher at once, and the store is
//! read only at start (texts acknowledged before a restart) — never once per text, so the cost
//! of a text does not grow with the backlog (`BENCHMARKS.md`). Retries wait in the
//! dispatcher's own schedule.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use crate::clock::SharedClock;
use crate::compliance::Screening;
use crate::sms::InboundText;
pub use crate::store::inbox::InboxEvent;
use crate::store::inbox::{Inbox as InboxTable, InboxSeen};
use crate::store::{Batch, Store};

/// What [`Inbox::accept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Stored, with this sequence number.
    Stored(u64),
    /// Already received: nothing changed.
    Duplicate,
}

/// What processes inbox events: the flow runtime, or a test's stand-in.
pub trait InboxHandler: Send + Sync {
    /// Processes one event. A handler that removes the event's row in its own batch (as the
    /// runtime does) saves the inbox a write.
    ///
    /// # Errors
    ///
    /// Any failure: the event is retried later.
    fn handle<'a>(&'a self, event: &'a InboxEvent) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// How the inbox retries.
#[derive(Debug, Clone, Copy)]
pub struct InboxSettings {
    /// Attempts before an event goes to the dead letters.
    pub max_attempts: u32,
    /// The first retry's delay; each further one doubles, up to 5 minutes.
    pub first_backoff_ms: i64,
    /// Workers: events of one conversation always go to the same one, in order.
    pub lanes: usize,
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            first_backoff_ms: 1_000,
            lanes: 8,
        }
    }
}

const MAX_BACKOFF_MS: i64 = 5 * 60_000;

/// The inbox.
pub struct Inbox {
    store: Store,
    table: InboxTable,
    seen: InboxSeen,
    clock: SharedClock,
    settings: InboxSettings,
    /// Stored (or retried) texts on their way to the running dispatcher; `None` until
    /// [`Inbox::run`] starts (a text stored before waits in the store, where it finds it).
    sender: Mutex<Option<mpsc::UnboundedSender<InboxEvent>>>,
    /// Serialises [`Inbox::accept`]'s check-then-store.
    accepting: Mutex<()>,
    /// Texts dealt to a lane and not finished.
    in_flight: AtomicUsize,
    stopping: AtomicBool,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// The inbox of `store`.
    pub fn new(store: &Store, clock: SharedClock, settings: InboxSettings) -> Self {
        let tables = store.tables();
        Self {
            store: store.clone(),
            table: tables.inbox,
            seen: tables.inbox_seen,
            clock,
            settings,
            sender: Mutex::new(None),
            accepting: Mutex::new(()),
            in_flight: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        }
    }

    /// Whether a text with this provider id was already accepted.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn seen(&self, text: &InboundText) -> anyhow::Result<bool> {
        Ok(self.seen.contains(text.provider, &text.message_id)?)
    }

    /// Adds `text` (with what screening decided) to `batch`: its row and its dedup key. The
    /// caller must hold off other deliveries of the same text until the batch is applied,
    /// then flush, then [`Inbox::enqueue`] the returned event.
    ///
    /// # Errors
    ///
    /// When an id cannot be generated or the row encoded.
    pub fn stage(
        &self,
        batch: &mut Batch,
        text: InboundText,
        screening: Screening,
    ) -> anyhow::Result<InboxEvent> {
        let seq = self.store.generate_id()?;
        let now = self.clock.now_ms();
        let event = InboxEvent {
            seq,
            provider: text.provider.to_owned(),
            message_id: text.message_id,
            from: text.from,
            to: text.to,
            body: text.body,
            num_media: text.num_media,
            received_at_ms: now,
            attempts: 0,
            next_attempt_ms: now,
            last_error: None,
            screening,
            trace: crate::telemetry::traceparent(),
        };
        self.table.put_in(batch, &event)?;
        self.seen
            .put_in(batch, &event.provider, &event.message_id, now)?;
        Ok(event)
    }

    /// Hands a stored (and flushed) text to the workers. Without running workers it waits
    /// in the store, where they find it when they start.
    pub fn enqueue(&self, event: InboxEvent) {
        if let Some(sender) = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            // A send fails only once the dispatcher is gone (shutdown): the text stays in the
            // store for the next start.
            let _ = sender.send(event);
        }
    }

    /// Stores `text` durably (flushed to disk) unless its id was seen before, and hands it to
    /// the workers. Only after this returns may the webhook be acknowledged. The server goes
    /// through [`crate::ingress::accept`], which screens the text too; this is for tools and
    /// tests.
    ///
    /// # Errors
    ///
    /// When the store cannot be written or flushed: the webhook must then fail, so the
    /// provider retries.
    pub async fn accept(&self, text: InboundText) -> anyhow::Result<Accepted> {
        let event = {
            let _accepting = self
                .accepting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if self.seen(&text)? {
                return Ok(Accepted::Duplicate);
            }
            let mut batch = Batch::new();
            let event = self.stage(&mut batch, text, Screening::Pass)?;
            self.store
                .apply(batch)
                .context("cannot store an inbound text")?;
            event
        };
        self.store.flush().await?;
        let seq = event.seq;
        self.enqueue(event);
        Ok(Accepted::Stored(seq))
    }

    /// Events acknowledged and not yet processed, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn pending(&self) -> anyhow::Result<Vec<InboxEvent>> {
        Ok(self.table.pending()?)
    }

    /// How many events are acknowledged and not yet processed.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn pending_len(&self) -> anyhow::Result<usize> {
        Ok(self.table.pending_len()?)
    }

    /// Events that failed every attempt, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn dead_letters(&self) -> anyhow::Result<Vec<InboxEvent>> {
        Ok(self.table.dead_letters()?)
    }

    /// Moves dead letters (all, or the one with `seq`) back into the inbox with fresh attempts;
    /// returns how many moved. Running workers take them at once (`POST /v1/dlq/replay`);
    /// otherwise they are processed when the workers next start (`smsflow dlq replay`).
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn replay(&self, seq: Option<u64>) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        let mut batch = Batch::new();
        let mut revived = Vec::new();
        for mut event in self.dead_letters()? {
            if seq.is_some_and(|wanted| wanted != event.seq) {
                continue;
            }
            event.attempts = 0;
            event.next_attempt_ms = now;
            self.table.revive_in(&mut batch, &event)?;
            revived.push(event);
        }
        self.store
            .apply(batch)
            .context("cannot replay dead letters")?;
        self.store.flush_sync()?;
        let moved = revived.len();
        for event in revived {
            self.enqueue(event);
        }
        Ok(moved)
    }

    /// Processes events until the task is dropped: first those stored before the start, then
    /// each as it is stored. They are dealt to `lanes` workers by conversation, so one
    /// conversation's texts are handled in order while different conversations run in
    /// parallel; a failed one waits for its retry in the dispatcher's schedule.
    pub async fn run(self: Arc<Self>, handler: Arc<dyn InboxHandler>) {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        *self.sender.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        let lanes = self.spawn_lanes(&handler);
        let mut retries = Retries::default();
        // Texts stored from now on come through the channel; those stored before are read
        // from the store (a text stored meanwhile may come both ways: `Retries` keeps one).
        match self.table.pending() {
            Ok(stored) => stored.into_iter().for_each(|event| retries.recover(event)),
            Err(error) => {
                tracing::error!("inbox: cannot read the texts stored before the start: {error:#}");
            }
        }
        loop {
            for event in retries.due(self.clock.now_ms()) {
                self.deal(&lanes, event);
            }
            let wait_ms = retries
                .next_due()
                .map_or(1000, |due| due.saturating_sub(self.clock.now_ms()))
                .clamp(0, 1000);
            let wait = Duration::from_millis(wait_ms.cast_unsigned());
            if let Ok(Some(event)) = tokio::time::timeout(wait, receiver.recv()).await {
                retries.push(event);
            }
        }
    }

    fn spawn_lanes(
        self: &Arc<Self>,
        handler: &Arc<dyn InboxHandler>,
    ) -> Vec<mpsc::UnboundedSender<InboxEvent>> {
        (0..self.settings.lanes.max(1))
            .map(|_| {
                let (sender, mut receiver) = mpsc::unbounded_channel::<InboxEvent>();
                let inbox = Arc::clone(self);
                let handler = Arc::clone(handler);
                tokio::spawn(async move {
                    while let Some(event) = receiver.recv().await {
                        inbox.process(&*handler, event).await;
                    }
                });
                sender
            })
            .collect()
    }

    /// Hands `event` to its conversation's lane, unless the inbox is stopping (the text stays
    /// stored for the next start).
    fn deal(&self, lanes: &[mpsc::UnboundedSender<InboxEvent>], event: InboxEvent) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (&event.to, &event.from).hash(&mut hasher);
        let lane = usize::try_from(hasher.finish() % lanes.len() as u64).unwrap_or(0);
        if let Some(sender) = lanes.get(lane) {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            if sender.send(event).is_err() {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Stops dealing events and waits (up to `grace`) for the ones being processed to finish;
    /// returns how many were still running when it gave up. Events not started stay in the
    /// inbox for the next start.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let running = self.in_flight.load(Ordering::SeqCst);
            if running == 0 || tokio::time::Instant::now() >= deadline {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn process(&self, handler: &dyn InboxHandler, event: InboxEvent) {
        let seq = event.seq;
        let outcome = match handler.handle(&event).await {
            Ok(()) => self.finish(seq),
            Err(error) => self.retry_or_bury(event, &error),
        };
        if let Err(error) = outcome {
            tracing::error!(seq, "inbox bookkeeping failed: {error:#}");
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Removes a processed text's row, unless its handler already did in its own batch.
    fn finish(&self, seq: u64) -> anyhow::Result<()> {
        if self.table.contains(seq)? {
            let mut batch = Batch::new();
            self.table.remove_in(&mut batch, seq);
            self.store.apply(batch)?;
        }
        Ok(())
    }

    /// Schedules a failed text's next attempt, or moves it to the dead letters after its last.
    fn retry_or_bury(&self, mut event: InboxEvent, error: &anyhow::Error) -> anyhow::Result<()> {
        let seq = event.seq;
        event.attempts += 1;
        event.last_error = Some(format!("{error:#}"));
        let mut batch = Batch::new();
        if event.attempts >= self.settings.max_attempts {
            tracing::error!(
                seq,
                attempts = event.attempts,
                "inbound text dead-lettered: {error:#}"
            );
            self.table.bury_in(&mut batch, &event)?;
            return Ok(self.store.apply(batch)?);
        }
        let backoff = crate::clock::backoff_ms(
            self.settings.first_backoff_ms,
            event.attempts,
            MAX_BACKOFF_MS,
        );
        tracing::warn!(
            seq,
            attempt = event.attempts,
            "inbound text failed, retrying in {backoff} ms: {error:#}"
        );
        // The clock counts whole milliseconds: one more makes the wait at least `backoff`
        // however far into the current millisecond the failure came.
        event.next_attempt_ms = self.clock.now_ms().saturating_add(backoff + 1);
        self.table.put_in(&mut batch, &event)?;
        self.store.apply(batch)?;
        self.enqueue(event);
        Ok(())
    }
}

/// Texts waiting for their (next) attempt, soonest first.
#[derive(Default)]
struct Retries {
    heap: BinaryHeap<Reverse<(i64, u64)>>,
    events: std::collections::HashMap<u64, InboxEvent>,
    /// Texts read from the store at the start, at the attempt they were read at: the same
    /// text arriving through the channel at that attempt is the same delivery.
    recovered: std::collections::HashMap<u64, u32>,
}

impl Retries {
    /// A text read from the store at the start.
    fn recover(&mut self, event: InboxEvent) {
        self.recovered.insert(event.seq, event.attempts);
        self.schedule(event);
    }

    /// A text from the channel: new, or back for a retry.
    fn push(&mut self, event: InboxEvent) {
        if self
            .recovered
            .remove(&event.seq)
            .is_some_and(|attempts| attempts == event.attempts)
        {
            // The same delivery the store read found.
            return;
        }
        self.schedule(event);
    }

    fn schedule(&mut self, event: InboxEvent) {
        self.heap.push(Reverse((event.next_attempt_ms, event.seq)));
        self.events.insert(event.seq, event);
    }

    /// The texts due at `now_ms`, oldest attempt first.
    fn due(&mut self, now_ms: i64) -> Vec<InboxEvent> {
        let mut due = Vec::new();
        while let Some(Reverse((at, seq))) = self.heap.peek().copied() {
            if at > now_ms {
                break;
            }
            self.heap.pop();
            due.extend(self.events.remove(&seq));
        }
        due
    }

    fn next_due(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }
}
