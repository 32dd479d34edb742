//! The durable inbox: an inbound text is stored and flushed before its webhook is acknowledged,
//! then processed by workers, retried with exponential backoff when processing fails, and moved
//! to the dead letters after its last attempt.
//!
//! A text is recognised by (provider, provider's message id): the id is claimed in the same
//! transaction that stores the text, so of two concurrent deliveries of one text exactly one is
//! stored. Processing is exactly-once in effect: the flow runtime marks the event processed in the
//! transaction of its turn, so a text whose turn committed but whose inbox row survived a crash is
//! recognised and dropped when replayed.

use std::collections::HashSet;
use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};
use sled::Transactional as _;
use sled::transaction::ConflictableTransactionError;
use tokio::sync::{Notify, mpsc};

use crate::clock::SharedClock;
use crate::compliance::Screening;
use crate::ingress::InboundText;
use crate::outbound::BoxFuture;
use crate::store::{Store, Trees, codec};

/// An acknowledged inbound text and its processing attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEvent {
    /// Arrival order.
    pub seq: u64,
    /// The provider.
    pub provider: String,
    /// The provider's message id.
    pub message_id: String,
    /// The contact.
    pub from: String,
    /// Our number.
    pub to: String,
    /// The text.
    pub body: String,
    /// Attached media count.
    pub num_media: u32,
    /// When it was acknowledged.
    pub received_at_ms: i64,
    /// Processing attempts so far.
    pub attempts: u32,
    /// When the next attempt may run.
    pub next_attempt_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// What ingress decided the text means for consent.
    #[serde(default)]
    pub screening: Screening,
}

impl InboxEvent {
    /// The id the flow runtime records the event under: `<provider>:<message id>`.
    pub fn event_id(&self) -> String {
        format!("{}:{}", self.provider, self.message_id)
    }
}

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
    /// Processes one event.
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
    trees: Trees,
    clock: SharedClock,
    settings: InboxSettings,
    wake: Notify,
    in_flight: Mutex<HashSet<u64>>,
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
    ///
    /// # Errors
    ///
    /// When the store's trees cannot be opened.
    pub fn new(store: &Store, clock: SharedClock, settings: InboxSettings) -> anyhow::Result<Self> {
        Ok(Self {
            store: store.clone(),
            trees: store.trees()?,
            clock,
            settings,
            wake: Notify::new(),
            in_flight: Mutex::new(HashSet::new()),
            stopping: AtomicBool::new(false),
        })
    }

    /// Stores `text` durably (flushed to disk) unless its id was seen before. Only after this
    /// returns may the webhook be acknowledged.
    ///
    /// # Errors
    ///
    /// When the store cannot be written or flushed: the webhook must then fail, so the
    /// provider retries.
    pub async fn accept(&self, text: InboundText) -> anyhow::Result<Accepted> {
        self.accept_screened(text, Screening::Pass).await
    }

    /// Whether a text with this provider id was already accepted.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn seen(&self, text: &InboundText) -> anyhow::Result<bool> {
        self.trees
            .inbox_seen
            .contains_key(seen_key(text))
            .context("cannot read the inbox")
    }

    /// [`Inbox::accept`] for a text compliance screened first: the screening travels with it.
    ///
    /// # Errors
    ///
    /// As [`Inbox::accept`].
    pub async fn accept_screened(
        &self,
        text: InboundText,
        screening: Screening,
    ) -> anyhow::Result<Accepted> {
        let seen_key = seen_key(&text);
        if self.trees.inbox_seen.contains_key(&seen_key)? {
            return Ok(Accepted::Duplicate);
        }
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
        };
        let encoded = codec::encode(&event)?;
        let stored = (&self.trees.inbox_seen, &self.trees.inbox).transaction(|(seen, inbox)| {
            if seen.get(&seen_key)?.is_some() {
                return Err(ConflictableTransactionError::Abort(()));
            }
            seen.insert(seen_key.as_slice(), &seq.to_be_bytes())?;
            inbox.insert(&seq.to_be_bytes(), encoded.as_slice())?;
            Ok(())
        });
        match stored {
            Ok(()) => {}
            Err(sled::transaction::TransactionError::Abort(())) => return Ok(Accepted::Duplicate),
            Err(sled::transaction::TransactionError::Storage(error)) => {
                return Err(error).context("cannot store an inbound text");
            }
        }
        self.store.flush().await?;
        self.wake.notify_one();
        Ok(Accepted::Stored(seq))
    }

    /// Events acknowledged and not yet processed, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn pending(&self) -> anyhow::Result<Vec<InboxEvent>> {
        read_all(&self.trees.inbox)
    }

    /// Events that failed every attempt, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn dead_letters(&self) -> anyhow::Result<Vec<InboxEvent>> {
        read_all(&self.trees.dead_letters)
    }

    /// Moves dead letters (all, or the one with `seq`) back into the inbox with fresh attempts;
    /// returns how many moved.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn replay(&self, seq: Option<u64>) -> anyhow::Result<usize> {
        let now = self.clock.now_ms();
        let mut moved = 0;
        for mut event in self.dead_letters()? {
            if seq.is_some_and(|wanted| wanted != event.seq) {
                continue;
            }
            event.attempts = 0;
            event.next_attempt_ms = now;
            let encoded = codec::encode(&event)?;
            let key = event.seq.to_be_bytes();
            (&self.trees.dead_letters, &self.trees.inbox)
                .transaction(|(dead, inbox)| {
                    dead.remove(&key)?;
                    inbox.insert(&key, encoded.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(|error| anyhow!("cannot replay a dead letter: {error:?}"))?;
            moved += 1;
        }
        self.store.flush_sync()?;
        Ok(moved)
    }

    /// Processes events until the task is dropped: events whose attempt is due are dealt to
    /// `lanes` workers by conversation, so one conversation's texts are handled in order while
    /// different conversations run in parallel.
    pub async fn run(self: Arc<Self>, handler: Arc<dyn InboxHandler>) {
        let lanes: Vec<mpsc::UnboundedSender<InboxEvent>> = (0..self.settings.lanes.max(1))
            .map(|_| {
                let (sender, mut receiver) = mpsc::unbounded_channel::<InboxEvent>();
                let inbox = Arc::clone(&self);
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    while let Some(event) = receiver.recv().await {
                        inbox.process(&*handler, event).await;
                    }
                });
                sender
            })
            .collect();
        loop {
            let next_due = match self.dispatch(&lanes) {
                Ok(next_due) => next_due,
                Err(error) => {
                    tracing::error!("inbox: {error:#}");
                    None
                }
            };
            let wait_ms = next_due
                .map_or(1000, |due| due.saturating_sub(self.clock.now_ms()))
                .clamp(0, 1000);
            let _ = tokio::time::timeout(
                Duration::from_millis(wait_ms.cast_unsigned()),
                self.wake.notified(),
            )
            .await;
        }
    }

    /// Deals due events to the lanes; returns when the next waiting event is due.
    fn dispatch(&self, lanes: &[mpsc::UnboundedSender<InboxEvent>]) -> anyhow::Result<Option<i64>> {
        if self.stopping.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let mut next_due: Option<i64> = None;
        for event in self.pending()? {
            if event.next_attempt_ms > now {
                next_due = Some(
                    next_due.map_or(event.next_attempt_ms, |due| due.min(event.next_attempt_ms)),
                );
                continue;
            }
            if !self.lock_in_flight()?.insert(event.seq) {
                continue;
            }
            // The listing may predate a lane finishing this event: read it again now that it is
            // claimed, so a retried event is not dealt twice.
            let fresh = self
                .trees
                .inbox
                .get(event.seq.to_be_bytes())?
                .map(|value| codec::decode::<InboxEvent>(&value))
                .transpose()?;
            let Some(event) = fresh.filter(|event| event.next_attempt_ms <= now) else {
                self.lock_in_flight()?.remove(&event.seq);
                continue;
            };
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            (&event.to, &event.from).hash(&mut hasher);
            let lane = usize::try_from(hasher.finish() % lanes.len() as u64).unwrap_or(0);
            if let Some(sender) = lanes.get(lane) {
                let seq = event.seq;
                if sender.send(event).is_err() {
                    self.lock_in_flight()?.remove(&seq);
                }
            }
        }
        Ok(next_due)
    }

    /// Stops dealing events and waits (up to `grace`) for the ones being processed to finish;
    /// returns how many were still running when it gave up. Events not started stay in the
    /// inbox for the next start.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let running = self.lock_in_flight().map_or(0, |in_flight| in_flight.len());
            if running == 0 || tokio::time::Instant::now() >= deadline {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn lock_in_flight(&self) -> anyhow::Result<std::sync::MutexGuard<'_, HashSet<u64>>> {
        self.in_flight
            .lock()
            .map_err(|_| anyhow!("inbox in-flight lock poisoned"))
    }

    async fn process(&self, handler: &dyn InboxHandler, mut event: InboxEvent) {
        let seq = event.seq;
        let key = seq.to_be_bytes();
        let result = handler.handle(&event).await;
        let outcome = match result {
            // The turn is committed: if this removal is lost in a crash, the replay is
            // recognised as processed and removed then.
            Ok(()) => self
                .trees
                .inbox
                .remove(key)
                .map(drop)
                .map_err(anyhow::Error::from),
            Err(error) => {
                event.attempts += 1;
                event.last_error = Some(format!("{error:#}"));
                if event.attempts >= self.settings.max_attempts {
                    tracing::error!(
                        seq,
                        attempts = event.attempts,
                        "inbound text dead-lettered: {error:#}"
                    );
                    self.dead_letter(&event)
                } else {
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
                    event.next_attempt_ms = self.clock.now_ms().saturating_add(backoff);
                    codec::encode(&event).and_then(|encoded| {
                        self.trees.inbox.insert(key, encoded)?;
                        Ok(())
                    })
                }
            }
        };
        if let Err(error) = outcome {
            tracing::error!(seq, "inbox bookkeeping failed: {error:#}");
        }
        if let Ok(mut in_flight) = self.lock_in_flight() {
            in_flight.remove(&seq);
        }
        self.wake.notify_one();
    }

    fn dead_letter(&self, event: &InboxEvent) -> anyhow::Result<()> {
        let encoded = codec::encode(event)?;
        let key = event.seq.to_be_bytes();
        (&self.trees.inbox, &self.trees.dead_letters)
            .transaction(|(inbox, dead)| {
                inbox.remove(&key)?;
                dead.insert(&key, encoded.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|error| anyhow!("cannot dead-letter an inbound text: {error:?}"))
    }
}

fn read_all(tree: &sled::Tree) -> anyhow::Result<Vec<InboxEvent>> {
    tree.iter()
        .values()
        .map(|value| codec::decode(&value.context("cannot read the inbox")?))
        .collect()
}

fn seen_key(text: &InboundText) -> Vec<u8> {
    format!("{}\0{}", text.provider, text.message_id).into_bytes()
}

impl InboxHandler for crate::flow::runtime::Runtime {
    fn handle<'a>(&'a self, event: &'a InboxEvent) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let inbound = crate::flow::runtime::Inbound {
                id: event.event_id(),
                from: event.from.clone(),
                to: event.to.clone(),
                text: event.body.clone(),
                screening: event.screening.clone(),
            };
            self.inbound(inbound)
                .await
                .map(drop)
                .map_err(anyhow::Error::from)
        })
    }
}
