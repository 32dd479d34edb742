//! The one accept pipeline every provider's webhook goes through, after its handler verified
//! and parsed it: limits → dedup → screen → store → events → the acknowledgement.
//!
//! Ordering, as stated and tested:
//! - The revocation classifier (when configured) runs first, on a short budget of its own
//!   (`[compliance] revocation_classifier_timeout`): it needs no conversation state.
//! - The conversation's lock is then held while its facts are read, the text screened, and the
//!   text, its dedup key, its consent records and its events applied in one batch. A turn of
//!   the same conversation therefore either committed before (and a STOP's scope is its
//!   program) or runs after (and its texts meet the opt-out at the gate). Two deliveries of one
//!   text contend for the same lock (they have the same numbers), so exactly one is stored.
//! - A conversation held longer than [`LOCK_BUDGET`] (a turn waiting on a slow connector) is
//!   screened as if it had no program, under a lock of the pipeline's own: a STOP then opts out
//!   of every program. The scope only ever widens; the webhook is never held for the turn.
//! - The batch is flushed before this returns: only then may the provider hear 2xx.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::compliance::{ConversationFacts, FactsSource, ScreenedText, Screener, Screening};
use crate::events::{EngineEvent, Events, OptOutSource, RunContext};
use crate::inbox::{Accepted, Inbox, InboxEvent};
use crate::locks::ConversationLocks;
use crate::outbound::Outbox;
use crate::sms::{InboundText, StatusUpdate};
use crate::store::conversations::{Conversation, ConversationKey, Status};
use crate::store::funnel::{FunnelEvent, FunnelKind};
use crate::store::{Batch, Store};

/// How long the pipeline waits for a conversation busy with a turn.
pub const LOCK_BUDGET: Duration = Duration::from_secs(2);

/// The longest text accepted, in characters: Twilio's own limit for an inbound message
/// (10 segments), for every provider.
pub const MAX_BODY_CHARS: usize = 1600;

/// The longest provider message id accepted, in bytes (Twilio's are 34, Telnyx's 36).
pub const MAX_MESSAGE_ID_BYTES: usize = 64;

/// Why a webhook was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The text breaks a limit: the provider must not retry it as it is.
    #[error("{0}")]
    Refused(String),
    /// The store failed: nothing was acknowledged, the provider should retry.
    #[error("the store failed: {0:#}")]
    Store(#[from] anyhow::Error),
}

/// What the pipeline is built from.
pub struct IngestParts {
    /// The store.
    pub store: Store,
    /// Where accepted texts wait for processing.
    pub inbox: Arc<Inbox>,
    /// Screening.
    pub screener: Arc<Screener>,
    /// The conversations' facts, for screening.
    pub facts: Arc<dyn FactsSource>,
    /// The conversations' locks, shared with the runtime.
    pub locks: Arc<ConversationLocks>,
    /// Delivery reports land here.
    pub outbox: Arc<Outbox>,
    /// Event webhooks, when any are configured.
    pub events: Option<Arc<Events>>,
    /// The engine's clock.
    pub clock: SharedClock,
}

/// The pipeline.
pub struct Ingest {
    parts: IngestParts,
    /// Held instead of a conversation's lock when that one is busy past [`LOCK_BUDGET`].
    busy: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

impl Ingest {
    /// The pipeline over `parts`.
    pub fn new(parts: IngestParts) -> Self {
        Self {
            parts,
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Accepts an inbound text (see the module documentation). A duplicate changes nothing.
    ///
    /// # Errors
    ///
    /// [`AcceptError::Refused`] for a text over a limit; [`AcceptError::Store`] when it could
    /// not be stored: nothing was acknowledged.
    pub async fn accept(&self, text: InboundText) -> Result<Accepted, AcceptError> {
        check_limits(&text)?;
        let parts = &self.parts;
        if parts.inbox.seen(&text)? {
            return Ok(Accepted::Duplicate);
        }
        let says_stop = parts.screener.classifier_says_stop(&text.body).await;
        let key = ConversationKey::new(&text.to, &text.from);
        let held = parts.locks.lock_within(&key, LOCK_BUDGET).await;
        let busy = match held {
            Some(_) => None,
            None => {
                tracing::warn!(contact = %text.from, "the conversation is busy: screening it as if it had no program");
                Some(self.busy.lock().await)
            }
        };
        if parts.inbox.seen(&text)? {
            return Ok(Accepted::Duplicate);
        }
        let facts = match held {
            Some(_) => parts.facts.facts(&key)?,
            None => ConversationFacts::default(),
        };
        let event = self.store_screened(text, &facts, says_stop)?;
        drop((held, busy));
        parts.store.flush().await.map_err(anyhow::Error::from)?;
        let seq = event.seq;
        parts.inbox.enqueue(event);
        Ok(Accepted::Stored(seq))
    }

    /// Screens `text` and applies it with its dedup key, consent records and events, in one
    /// batch. Synchronous: the ledger's lock is held only here.
    fn store_screened(
        &self,
        text: InboundText,
        facts: &ConversationFacts,
        says_stop: bool,
    ) -> anyhow::Result<InboxEvent> {
        let parts = &self.parts;
        let id = format!("{}:{}", text.provider, text.message_id);
        let mut batch = Batch::new();
        let mut ledger = parts.screener.compliance().ledger().appending();
        let screened = ScreenedText {
            message_id: &id,
            from: &text.from,
            text: &text.body,
        };
        let now = parts.clock.now_ms();
        let screening =
            parts
                .screener
                .screen(&mut ledger, &mut batch, screened, facts, says_stop, now)?;
        let tables = parts.store.tables();
        let key = ConversationKey::new(&text.to, &text.from);
        let conversation = tables
            .conversations
            .get(&key)?
            .unwrap_or_else(|| Conversation::new(&text.to, &text.from, now));
        let consent = consent_after(&mut ledger, &conversation, &screening)?;
        let received = Received {
            text: &text,
            screening: &screening,
            conversation: &conversation,
            consent,
            now,
        };
        let events = self.prepare_events(&mut batch, &received)?;
        if matches!(screening, Screening::OptedOut { .. }) {
            let event =
                FunnelEvent::of_conversation(FunnelKind::OptedOut, &conversation, None, now)
                    .with_detail(Some(text.body.clone()));
            tables.funnel.put_in(&mut batch, &event)?;
        }
        let event = parts.inbox.stage(&mut batch, text, screening)?;
        parts.store.apply(batch)?;
        ledger.committed();
        if events > 0
            && let Some(sink) = &parts.events
        {
            sink.notify();
        }
        Ok(event)
    }

    /// `message.received`, and `contact.opted_out` for an opt-out, into `batch`.
    fn prepare_events(&self, batch: &mut Batch, received: &Received<'_>) -> anyhow::Result<usize> {
        let Some(events) = &self.parts.events else {
            return Ok(0);
        };
        let (text, screening, conversation) =
            (received.text, received.screening, received.conversation);
        let step = match &conversation.status {
            Status::Waiting { step, .. } => Some(step.as_str()),
            _ => None,
        };
        let mut rows = events.prepare_in(
            batch,
            &EngineEvent::MessageReceived {
                provider: text.provider.to_owned(),
                message_id: text.message_id.clone(),
                from: text.from.clone(),
                to: text.to.clone(),
                body: text.body.clone(),
                received_at: crate::compliance::gate::rfc3339(received.now),
                locale: conversation.locale.clone(),
                consent: received.consent,
                conversation_state: state_name(&conversation.status),
                run: RunContext::of(conversation, step),
            },
        )?;
        if let Screening::OptedOut { program, .. } = screening {
            rows += events.prepare_in(
                batch,
                &EngineEvent::ContactOptedOut {
                    phone: text.from.clone(),
                    program: program.clone(),
                    source: OptOutSource::Keyword,
                    detail: text.body.clone(),
                },
            )?;
        }
        Ok(rows)
    }

    /// Records a delivery report and reports it (`message.status`), durably.
    ///
    /// # Errors
    ///
    /// When the store fails: the provider should retry.
    pub async fn status(&self, provider: &str, update: &StatusUpdate) -> Result<(), AcceptError> {
        let parts = &self.parts;
        let mut batch = Batch::new();
        let known = parts
            .outbox
            .record_status_in(&mut batch, provider, update)?;
        let mut rows = 0;
        if let Some(message) = known
            && let Some(events) = &parts.events
        {
            rows = events.prepare_in(
                &mut batch,
                &EngineEvent::MessageStatus {
                    provider: provider.to_owned(),
                    provider_message_id: update.message_id.clone(),
                    status: update.status,
                    error_code: update.error_code.clone(),
                    run: RunContext::of_message(&message),
                },
            )?;
        }
        parts.store.apply(batch).map_err(anyhow::Error::from)?;
        parts.store.flush().await.map_err(anyhow::Error::from)?;
        if rows > 0
            && let Some(events) = &parts.events
        {
            events.notify();
        }
        Ok(())
    }
}

/// What `message.received` says of a text.
struct Received<'a> {
    text: &'a InboundText,
    screening: &'a Screening,
    conversation: &'a Conversation,
    consent: &'static str,
    now: i64,
}

/// The contact's consent for the conversation's program once this text's own keyword (if it
/// was one) is counted.
fn consent_after(
    ledger: &mut crate::compliance::ledger::Appending<'_>,
    conversation: &Conversation,
    screening: &Screening,
) -> anyhow::Result<&'static str> {
    Ok(match screening {
        Screening::OptedOut { .. } => "opted_out",
        Screening::OptedIn { .. } => "opted_in",
        _ => match &conversation.program {
            Some(program) => {
                let class = if conversation.marketing {
                    crate::compliance::ledger::ConsentClass::Marketing
                } else {
                    crate::compliance::ledger::ConsentClass::Transactional
                };
                let state = ledger.state(&conversation.contact, program, class)?;
                crate::contacts::state_name(state)
            }
            None => "unknown",
        },
    })
}

/// A conversation's state, as events name it.
fn state_name(status: &Status) -> &'static str {
    match status {
        Status::Idle => "idle",
        Status::Waiting { .. } => "waiting",
        Status::HandedOff { .. } => "handed_off",
        Status::Ended { .. } => "ended",
    }
}

/// The limits every provider's texts keep, whatever the provider's own parser allowed.
pub(crate) fn check_limits(text: &InboundText) -> Result<(), AcceptError> {
    let id = &text.message_id;
    if id.is_empty() || id.len() > MAX_MESSAGE_ID_BYTES {
        return Err(AcceptError::Refused(format!(
            "the message id is {} bytes: it must be 1 to {MAX_MESSAGE_ID_BYTES}",
            id.len()
        )));
    }
    if !id.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(AcceptError::Refused(
            "the message id has a control character, a space or a non-ASCII byte: provider ids are printable ASCII".to_owned(),
        ));
    }
    let chars = text.body.chars().count();
    if chars > MAX_BODY_CHARS {
        return Err(AcceptError::Refused(format!(
            "the text is {chars} characters, over the {MAX_BODY_CHARS}-character limit of an SMS"
        )));
    }
    if text.from == text.to {
        // A loop through the provider (our own text delivered back to us) would answer itself.
        return Err(AcceptError::Refused(format!(
            "the text is from {}, our own number: smsflow does not answer itself",
            text.from
        )));
    }
    if text.body.contains('\0') {
        return Err(AcceptError::Refused(
            "the text contains a NUL character, which no SMS can carry".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(message_id: &str, body: &str) -> InboundText {
        InboundText {
            provider: "telnyx",
            message_id: message_id.to_owned(),
            from: "+12125550100".to_owned(),
            to: "+15550001000".to_owned(),
            body: body.to_owned(),
            num_media: 0,
        }
    }

    #[test]
    fn every_provider_keeps_the_same_limits() {
        assert!(check_limits(&text("SM1", "hello")).is_ok());
        assert!(check_limits(&text("SM1", &"a".repeat(MAX_BODY_CHARS))).is_ok());
        for bad in [
            text("SM1", &"a".repeat(MAX_BODY_CHARS + 1)),
            text("SM1", "nul\0here"),
            text("", "hi"),
            text(&"x".repeat(MAX_MESSAGE_ID_BYTES + 1), "hi"),
            text("SM\u{0}1", "hi"),
            text("SM 1", "hi"),
        ] {
            assert!(
                matches!(check_limits(&bad), Err(AcceptError::Refused(_))),
                "{bad:?}"
            );
        }
    }
}
