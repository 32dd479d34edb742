//! The outbox: every outbound text, the queue of those due, and the index of provider ids.
//!
//! - [`Outbox`]: `<seq u64 BE>` → the text. Seqs come from [`Store::generate_id`], so the key
//!   order is queue order.
//! - [`OutboxDue`]: `<due time key> <seq u64 BE>` → nothing: a range scan up to now yields the
//!   texts to hand to the provider, by due time, then queue order.
//! - [`ProviderIds`]: `<provider> 0x00 <provider's message id>` → seq: delivery reports name
//!   the provider's id.

use serde::{Deserialize, Serialize};

use super::codec::{json_value, time_key};
use super::consent::ConsentClass;
use super::keys::{Pair, Reader, Seq, push_time, push_u64};
use super::table::{Cursor, Key, Swept, Table};
use super::{Batch, Result, Store, TableId};
use crate::sms::DeliveryState;

/// A text in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The outbox id (also the transcript's message id).
    pub id: String,
    /// Our number, the sender.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The text.
    pub body: String,
    /// The flow that sent it.
    pub flow: Option<String>,
    /// The step that sent it.
    pub step: Option<String>,
    /// When it was queued.
    pub queued_at_ms: i64,
    /// Where it is on our side.
    pub status: DeliveryStatus,
    /// The provider's id for it, once sent.
    pub provider_id: Option<String>,
    /// The provider that took it: with `provider_id`, its key in [`ProviderIds`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// What the provider last reported about it.
    #[serde(default)]
    pub delivery: Option<DeliveryState>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When it was handed to the provider.
    #[serde(default)]
    pub sent_at_ms: Option<i64>,
    /// Its messaging program.
    #[serde(default)]
    pub program: Option<String>,
    /// Marketing or transactional.
    #[serde(default = "transactional")]
    pub class: ConsentClass,
    /// Who asked for it.
    #[serde(default)]
    pub origin: Origin,
    /// The brand it speaks for.
    #[serde(default)]
    pub brand: Option<String>,
    /// The locale it is written in: the gate adds its opt-out wording in that language.
    #[serde(default)]
    pub locale: Option<String>,
    /// The contact's US state from their address, when known.
    #[serde(default)]
    pub address_state: Option<String>,
    /// The campaign whose run queued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// The A/B variant of the run that queued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The version of its flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_version: Option<String>,
    /// The span of the turn that queued it (W3C `traceparent`), so its send joins the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// When it stops being worth sending: the gate expires it rather than defer it past
    /// this. Unset, queued time plus `[compliance] deferred_expiry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until_ms: Option<i64>,
    /// What made it, the same on every node that replays it: the input's id and the text's
    /// place among that input's texts (`twilio:SM123/0`). A cluster sends each cause once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The gate's latest decision.
    #[serde(default)]
    pub gate: Option<GateRecord>,
    /// Every gate decision, oldest first: the audit trail.
    #[serde(default)]
    pub gate_log: Vec<GateRecord>,
}

fn transactional() -> ConsentClass {
    ConsentClass::Transactional
}

impl OutboundMessage {
    /// A text to queue: the runtime fills in where it came from.
    pub fn new(id: String, from: String, to: String, body: String, queued_at_ms: i64) -> Self {
        Self {
            id,
            from,
            to,
            body,
            flow: None,
            step: None,
            queued_at_ms,
            status: DeliveryStatus::Queued,
            provider_id: None,
            provider: None,
            delivery: None,
            attempts: 0,
            sent_at_ms: None,
            program: None,
            class: ConsentClass::Transactional,
            origin: Origin::Flow,
            brand: None,
            locale: None,
            address_state: None,
            campaign: None,
            valid_until_ms: None,
            variant: None,
            flow_version: None,
            trace: None,
            cause: None,
            gate: None,
            gate_log: Vec::new(),
        }
    }
}

/// Where an outbound text is on our side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DeliveryStatus {
    /// Waiting for the worker.
    Queued,
    /// Being handed to the provider since `since_ms`; found so after a restart, the text is
    /// looked up at the provider before it is sent again.
    Sending {
        /// When the call began.
        since_ms: i64,
    },
    /// Accepted by the provider.
    Sent,
    /// Given up on.
    Failed {
        /// Why.
        reason: String,
    },
    /// Stopped by the compliance gate; `gate` says why.
    Blocked {
        /// Why.
        reason: String,
    },
}

/// Who asked for a text: the gate's exemptions depend on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A flow's `send` step.
    #[default]
    Flow,
    /// A reply-generator plugin's draft.
    Draft,
    /// A person in the agent inbox.
    Agent,
    /// The one confirmation of an opt-out.
    OptOutConfirmation,
    /// The confirmation of an opt-in (START).
    OptInConfirmation,
    /// The answer to HELP.
    Help,
    /// The question asked once about a possible revocation.
    RevocationQuestion,
}

impl Origin {
    /// The origin's name, as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flow => "flow",
            Self::Draft => "draft",
            Self::Agent => "agent",
            Self::OptOutConfirmation => "opt_out_confirmation",
            Self::OptInConfirmation => "opt_in_confirmation",
            Self::Help => "help",
            Self::RevocationQuestion => "revocation_question",
        }
    }

    /// Whether the text answers the contact's own compliance keyword.
    pub fn is_compliance_reply(self) -> bool {
        matches!(
            self,
            Self::OptOutConfirmation
                | Self::OptInConfirmation
                | Self::Help
                | Self::RevocationQuestion
        )
    }
}

/// A gate decision as the audit trail and the conversation API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    /// `sent`, `deferred` or `blocked`.
    pub decision: String,
    /// Why (absent for a plain send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a deferral, when the text may go (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// When the gate decided (RFC 3339, UTC).
    pub at: String,
}

json_value!(OutboundMessage);

/// The outbox table.
#[derive(Debug, Clone)]
pub struct Outbox {
    table: Table<Seq, OutboundMessage>,
}

impl Outbox {
    /// One step of expiring the texts that reached their end (sent, failed, blocked) before
    /// `before_ms`, with their entries in `provider_ids`; how many of those went too. A text
    /// still queued or being sent is never removed.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn expire_in(
        &self,
        batch: &mut Batch,
        from: &Cursor,
        limit: usize,
        before_ms: i64,
        provider_ids: &ProviderIds,
    ) -> Result<(Swept, u64)> {
        let mut ids = Vec::new();
        let swept = self
            .table
            .expire_indexed_in(batch, from, limit, before_ms, |_, message| {
                let settled = matches!(
                    message.status,
                    DeliveryStatus::Sent
                        | DeliveryStatus::Failed { .. }
                        | DeliveryStatus::Blocked { .. }
                );
                let expired =
                    settled && message.sent_at_ms.unwrap_or(message.queued_at_ms) < before_ms;
                if expired
                    && let (Some(provider), Some(id)) = (&message.provider, &message.provider_id)
                {
                    ids.push(Pair(provider.clone(), id.clone()));
                }
                Ok(expired)
            })?;
        for key in &ids {
            provider_ids.table.remove_in(batch, key);
        }
        Ok((swept, ids.len() as u64))
    }

    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Outbox),
        }
    }

    /// The text with `seq`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or the row does not decode.
    pub fn get(&self, seq: u64) -> Result<Option<OutboundMessage>> {
        self.table.get(&Seq(seq))
    }

    /// Adds writing text `seq` again (its new state) to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, seq: u64, message: &OutboundMessage) -> Result<()> {
        self.table.put_in(batch, &Seq(seq), message)
    }

    /// Adds queueing the new text `message` as `seq` to `batch`, with its place in the expiry
    /// index at its queue time (later writes of the same text, [`Outbox::put_in`], keep it).
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn queue_in(&self, batch: &mut Batch, seq: u64, message: &OutboundMessage) -> Result<()> {
        self.table
            .put_expiring_in(batch, &Seq(seq), message, message.queued_at_ms)
    }

    /// Up to `limit` failed texts (the outbound dead letters) after `after` in queue order, and
    /// the seq to page on from when there may be more. A scan of the table: an operator's
    /// query, not something traffic waits for.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn failed_after(&self, after: Option<u64>, limit: usize) -> Result<FailedPage> {
        let mut start = Vec::new();
        Seq(after.map_or(0, |seq| seq.saturating_add(1))).write(&mut start);
        let mut failed = Vec::new();
        for row in self.table.range(&start, None) {
            let (seq, message) = row?;
            if matches!(message.status, DeliveryStatus::Failed { .. }) {
                if failed.len() == limit {
                    let next = failed.last().map(|(seq, _): &(u64, _)| *seq);
                    return Ok((failed, next));
                }
                failed.push((seq.0, message));
            }
        }
        Ok((failed, None))
    }

    /// Every text, in queue order.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn all(&self) -> Result<Vec<(u64, OutboundMessage)>> {
        self.table
            .all()
            .map(|row| row.map(|(seq, message)| (seq.0, message)))
            .collect()
    }
}

/// A page of failed texts with their seqs, and the seq the next page starts after.
pub type FailedPage = (Vec<(u64, OutboundMessage)>, Option<u64>);

/// A due text: when, and which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    /// When it may be handed to the provider.
    pub due_ms: i64,
    /// Its outbox seq.
    pub seq: u64,
}

impl Key for Due {
    fn write(&self, out: &mut Vec<u8>) {
        push_time(out, self.due_ms);
        push_u64(out, self.seq);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let due = Self {
            due_ms: reader.time()?,
            seq: reader.u64()?,
        };
        reader.end(due)
    }
}

/// The queue of due texts.
#[derive(Debug, Clone)]
pub struct OutboxDue {
    table: Table<Due, ()>,
}

impl OutboxDue {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::OutboxDue),
        }
    }

    /// The first `limit` texts due at or before `now_ms`, by due time, then seq.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Due>> {
        let end = time_key(now_ms.saturating_add(1));
        self.table
            .range(&[], Some(end.as_slice()))
            .take(limit)
            .map(|row| row.map(|(due, ())| due))
            .collect()
    }

    /// When the next text is due.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn next_due(&self) -> Result<Option<i64>> {
        Ok(self.table.first()?.map(|(due, ())| due.due_ms))
    }

    /// Adds queueing `due` to `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice (the value is empty).
    pub fn put_in(&self, batch: &mut Batch, due: Due) -> Result<()> {
        self.table.put_in(batch, &due, &())
    }

    /// Adds taking `due` off the queue to `batch`.
    pub fn remove_in(&self, batch: &mut Batch, due: Due) {
        self.table.remove_in(batch, &due);
    }

    /// How many texts are queued (a scan of the queue: for the status API and tools).
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn count(&self) -> Result<usize> {
        let mut count = 0;
        for row in self.table.all() {
            row?;
            count += 1;
        }
        Ok(count)
    }
}

/// The provider-id index.
#[derive(Debug, Clone)]
pub struct ProviderIds {
    table: Table<Pair, u64>,
}

impl ProviderIds {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::ProviderIds),
        }
    }

    /// The outbox seq of the text `provider` calls `provider_id`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, provider: &str, provider_id: &str) -> Result<Option<u64>> {
        self.table
            .get(&Pair(provider.to_owned(), provider_id.to_owned()))
    }

    /// Adds indexing `provider_id` to `batch`. It goes when its text expires
    /// ([`Outbox::expire_in`]): a late report about it then finds nothing, as for a text we
    /// never sent.
    ///
    /// # Errors
    ///
    /// Never in practice (the value is 8 bytes).
    pub fn put_in(
        &self,
        batch: &mut Batch,
        provider: &str,
        provider_id: &str,
        seq: u64,
    ) -> Result<()> {
        self.table.put_in(
            batch,
            &Pair(provider.to_owned(), provider_id.to_owned()),
            &seq,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_texts_come_by_time_then_seq() {
        let store = Store::temporary().unwrap();
        let due = OutboxDue::new(&store);
        let mut batch = Batch::new();
        for (due_ms, seq) in [(20, 1), (10, 9), (10, 3), (30, 2)] {
            due.put_in(&mut batch, Due { due_ms, seq }).unwrap();
        }
        store.apply(batch).unwrap();
        let order: Vec<(i64, u64)> = due
            .due(20, 10)
            .unwrap()
            .iter()
            .map(|d| (d.due_ms, d.seq))
            .collect();
        assert_eq!(order, [(10, 3), (10, 9), (20, 1)]);
        assert_eq!(due.due(20, 1).unwrap().len(), 1);
        assert_eq!(due.next_due().unwrap(), Some(10));
        assert_eq!(due.count().unwrap(), 4);
    }

    #[test]
    fn a_text_and_its_provider_id_round_trip() {
        let store = Store::temporary().unwrap();
        let tables = store.tables();
        let message = OutboundMessage::new(
            "out-1".into(),
            "+15550001000".into(),
            "+12125550100".into(),
            "Hi".into(),
            5,
        );
        let mut batch = Batch::new();
        tables.outbox.put_in(&mut batch, 1, &message).unwrap();
        tables
            .provider_ids
            .put_in(&mut batch, "twilio", "SM1", 1)
            .unwrap();
        store.apply(batch).unwrap();
        assert_eq!(tables.outbox.get(1).unwrap(), Some(message));
        assert_eq!(tables.provider_ids.get("twilio", "SM1").unwrap(), Some(1));
        assert_eq!(tables.provider_ids.get("telnyx", "SM1").unwrap(), None);
    }
}
