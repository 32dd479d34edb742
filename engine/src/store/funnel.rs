//! Measurement: the funnel's events, each contact's touches, conversions and tracked links.
//!
//! - [`FunnelEvents`] (0x1e): key the event's time then a store-wide seq; value a
//!   [`FunnelEvent`]. A report over a range is one range scan.
//! - [`Touches`] (0x1f): key the contact's number, the time, the seq; value the delivered or
//!   clicked [`FunnelEvent`]. Attribution reads a contact's last touches in a window.
//! - [`Conversions`] (0x20): key the client's idempotency key; value the [`Conversion`] and
//!   the answer it got, so a retry gets the same answer.
//! - [`Links`] (0x21): key the short code; value the [`Link`]: the target a flow wrote, and
//!   the text it was sent in.
//! - [`FunnelDaily`] (0x22): key the UTC day, flow, campaign, variant and kind; value a
//!   [`DailyCount`]. What a day's raw events rolled up to once they passed their retention, so
//!   reports over old ranges stay fast and exact in their counts.
//!
//! Funnel events are written in the batch of the state change they describe (a turn, a
//! send, a status callback), so a crash never leaves one without the other.

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::conversations::Conversation;
use super::keys::{ContactTimeKey, Reader, contact_from, push_str, push_time, push_u64};
use super::outbox::OutboundMessage;
use super::table::{Key, Table};
use super::{Batch, Result, Store, TableId};

/// What happened, as the funnel counts it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum FunnelKind {
    /// A text was queued in the outbox.
    #[default]
    Queued,
    /// The provider took a text.
    Sent,
    /// The provider reported a text delivered.
    Delivered,
    /// A text could not be sent, or the provider reported it undelivered.
    Failed,
    /// The gate blocked a text (consent, caps, an expiry).
    Blocked,
    /// The contact texted into a run (a keyword the host answers is not a reply).
    Replied,
    /// A classifier named the reply's intent.
    Classified,
    /// The conversation went to a person.
    HandedOff,
    /// A person first answered a handed-off conversation.
    FirstResponse,
    /// A person resolved it.
    Resolved,
    /// The contact opened a tracked link.
    Clicked,
    /// A conversion: a flow's conversion step, or one reported to `POST /v1/conversions`.
    Converted,
    /// The contact opted out.
    OptedOut,
}

impl FunnelKind {
    /// Every kind, in funnel order.
    pub const ALL: [FunnelKind; 13] = [
        Self::Queued,
        Self::Sent,
        Self::Delivered,
        Self::Failed,
        Self::Blocked,
        Self::Replied,
        Self::Classified,
        Self::HandedOff,
        Self::FirstResponse,
        Self::Resolved,
        Self::Clicked,
        Self::Converted,
        Self::OptedOut,
    ];

    /// The kind named `name` ([`FunnelKind::as_str`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
            Self::Replied => "replied",
            Self::Classified => "classified",
            Self::HandedOff => "handed_off",
            Self::FirstResponse => "first_response",
            Self::Resolved => "resolved",
            Self::Clicked => "clicked",
            Self::Converted => "converted",
            Self::OptedOut => "opted_out",
        }
    }
}

/// One funnel event, with everything a report slices by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FunnelEvent {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// What.
    pub kind: FunnelKind,
    /// Our number.
    pub our_number: String,
    /// The contact's number.
    pub contact: String,
    /// The flow of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// Its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_version: Option<String>,
    /// The step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The campaign (or the flow's campaign source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// The A/B variant a split gave the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The messaging program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// The outbox id of the text it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The intent, the outcome, the reason, the link's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A conversion's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Its currency (ISO 4217).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

json_value!(FunnelEvent);

impl FunnelEvent {
    /// An event about the text `message`.
    pub fn of_message(kind: FunnelKind, message: &OutboundMessage, at_ms: i64) -> Self {
        Self {
            at_ms,
            kind,
            our_number: message.from.clone(),
            contact: message.to.clone(),
            flow: message.flow.clone(),
            flow_version: message.flow_version.clone(),
            step: message.step.clone(),
            campaign: message.campaign.clone(),
            variant: message.variant.clone(),
            program: message.program.clone(),
            message: Some(message.id.clone()),
            ..Self::default()
        }
    }

    /// An event of `conversation`'s current run, at `step`.
    pub fn of_conversation(
        kind: FunnelKind,
        conversation: &Conversation,
        step: Option<&str>,
        at_ms: i64,
    ) -> Self {
        Self {
            at_ms,
            kind,
            our_number: conversation.our_number.clone(),
            contact: conversation.contact.clone(),
            flow: conversation.flow.as_ref().map(|flow| flow.id.clone()),
            flow_version: conversation.flow.as_ref().map(|flow| flow.version.clone()),
            step: step.map(str::to_owned),
            campaign: conversation.campaign.clone(),
            variant: conversation.fields.get("variant").cloned(),
            program: conversation.program.clone(),
            ..Self::default()
        }
    }

    /// With `detail`.
    #[must_use]
    pub fn with_detail(mut self, detail: Option<String>) -> Self {
        self.detail = detail;
        self
    }
}

/// An event's key: the time, then a seq that makes it unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventKey {
    at_ms: i64,
    seq: u64,
}

impl Key for EventKey {
    fn write(&self, out: &mut Vec<u8>) {
        push_time(out, self.at_ms);
        push_u64(out, self.seq);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let at_ms = reader.time()?;
        let seq = reader.u64()?;
        reader.end(Self { at_ms, seq })
    }
}

/// The funnel's events, in time order.
#[derive(Debug, Clone)]
pub struct FunnelEvents {
    store: Store,
    table: Table<EventKey, FunnelEvent>,
    touches: Table<ContactTimeKey, FunnelEvent>,
}

impl FunnelEvents {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            store: store.clone(),
            table: store.table(TableId::FunnelEvents),
            touches: store.table(TableId::Touches),
        }
    }

    /// Adds `event` to `batch`; a delivery or a click is also a touch of its contact.
    ///
    /// # Errors
    ///
    /// When no id can be made or the event cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, event: &FunnelEvent) -> Result<()> {
        let seq = self.store.generate_id()?;
        let key = EventKey {
            at_ms: event.at_ms,
            seq,
        };
        self.table.put_in(batch, &key, event)?;
        if matches!(event.kind, FunnelKind::Delivered | FunnelKind::Clicked) {
            let touch = ContactTimeKey {
                contact: event.contact.clone(),
                at_ms: event.at_ms,
                seq,
            };
            self.touches.put_in(batch, &touch, event)?;
        }
        Ok(())
    }

    /// Every event from `since_ms` (inclusive) to `until_ms` (exclusive), in time order: a
    /// stream.
    pub fn between(
        &self,
        since_ms: i64,
        until_ms: i64,
    ) -> impl Iterator<Item = Result<FunnelEvent>> + '_ {
        let mut start = Vec::new();
        push_time(&mut start, since_ms);
        let mut end = Vec::new();
        push_time(&mut end, until_ms);
        self.table
            .range(&start, Some(&end))
            .map(|row| row.map(|(_, event)| event))
    }

    /// `contact`'s touches (deliveries, clicks) from `since_ms` to `until_ms` (both
    /// inclusive), newest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn touches(&self, contact: &str, since_ms: i64, until_ms: i64) -> Result<Vec<FunnelEvent>> {
        let start = contact_from(contact, since_ms);
        let end = contact_from(contact, until_ms.saturating_add(1));
        self.touches
            .range(&start, Some(&end))
            .rev()
            .map(|row| row.map(|(_, event)| event))
            .collect()
    }
}

impl FunnelEvents {
    /// Every event from `since_ms` to `until_ms` with its key, in time order: a stream, for
    /// the compactor.
    pub fn keyed_between(
        &self,
        since_ms: i64,
        until_ms: i64,
    ) -> impl Iterator<Item = Result<(EventKey, FunnelEvent)>> + '_ {
        let mut start = Vec::new();
        push_time(&mut start, since_ms);
        let mut end = Vec::new();
        push_time(&mut end, until_ms);
        self.table.range(&start, Some(&end))
    }

    /// The time of the oldest event.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn oldest_ms(&self) -> Result<Option<i64>> {
        Ok(self.table.first()?.map(|(key, _)| key.at_ms))
    }

    /// Adds removing `event` (under `key`) and its touch to `batch`.
    pub fn remove_in(&self, batch: &mut Batch, key: EventKey, event: &FunnelEvent) {
        self.table.remove_in(batch, &key);
        if matches!(event.kind, FunnelKind::Delivered | FunnelKind::Clicked) {
            let touch = ContactTimeKey {
                contact: event.contact.clone(),
                at_ms: key.at_ms,
                seq: key.seq,
            };
            self.touches.remove_in(batch, &touch);
        }
    }
}

/// What a conversion was attributed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// The outbox id of the text.
    pub message: Option<String>,
    /// Its flow.
    pub flow: Option<String>,
    /// Its campaign.
    pub campaign: Option<String>,
    /// Its variant.
    pub variant: Option<String>,
    /// `click` or `delivery`.
    pub by: String,
    /// The window it was found in (`5d`, `24h`).
    pub window: String,
}

/// A conversion reported to the API, with the answer it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    /// Its id (`cnv-` and 16 hex digits).
    pub id: String,
    /// The contact's number.
    pub contact: String,
    /// The value.
    pub value: f64,
    /// The currency.
    pub currency: String,
    /// When it happened.
    pub occurred_at_ms: i64,
    /// What it was attributed to, if anything.
    pub attributed_to: Option<Attribution>,
}

json_value!(Conversion);

/// Conversions by idempotency key.
#[derive(Debug, Clone)]
pub struct Conversions {
    table: Table<String, Conversion>,
}

impl Conversions {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Conversions),
        }
    }

    /// The conversion recorded with `key`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, key: &str) -> Result<Option<Conversion>> {
        self.table.get(&key.to_owned())
    }

    /// Adds recording `conversion` under `key` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, key: &str, conversion: &Conversion) -> Result<()> {
        self.table.put_in(batch, &key.to_owned(), conversion)
    }
}

/// A tracked link: where its code goes, and the text it was sent in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The target a flow or template wrote (never one a request supplies: no open redirect).
    pub target: String,
    /// Our number.
    pub our_number: String,
    /// The contact it was sent to.
    pub contact: String,
    /// The outbox id of the text.
    pub message: String,
    /// The flow, step, campaign and variant of the text.
    pub flow: Option<String>,
    /// The step.
    pub step: Option<String>,
    /// The campaign.
    pub campaign: Option<String>,
    /// The variant.
    pub variant: Option<String>,
    /// The program.
    pub program: Option<String>,
}

json_value!(Link);

/// Tracked links by code.
#[derive(Debug, Clone)]
pub struct Links {
    table: Table<String, Link>,
}

impl Links {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Links),
        }
    }

    /// The link with `code`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, code: &str) -> Result<Option<Link>> {
        self.table.get(&code.to_owned())
    }

    /// Adds `link` under `code` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, code: &str, link: &Link) -> Result<()> {
        self.table.put_in(batch, &code.to_owned(), link)
    }
}

/// A day's roll-up key: the UTC day (days since the epoch), then what a report slices by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DailyKey {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    /// The flow (empty for none).
    pub flow: String,
    /// The campaign (empty for none).
    pub campaign: String,
    /// The variant (empty for none).
    pub variant: String,
    /// The kind's name ([`FunnelKind::as_str`]); [`ROLLED`] marks a day rolled up.
    pub kind: String,
}

/// The kind of the row that says a day's raw events were rolled up (and may be deleted).
pub const ROLLED: &str = "_rolled";

impl Key for DailyKey {
    fn write(&self, out: &mut Vec<u8>) {
        push_u64(out, self.day.cast_unsigned());
        for part in [&self.flow, &self.campaign, &self.variant, &self.kind] {
            push_str(out, part);
        }
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let day = reader.u64()?.cast_signed();
        let (flow, campaign, variant, kind) =
            (reader.str()?, reader.str()?, reader.str()?, reader.str()?);
        reader.end(Self {
            day,
            flow,
            campaign,
            variant,
            kind,
        })
    }
}

/// One slice of one day, rolled up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DailyCount {
    /// Events.
    pub events: u64,
    /// Distinct contacts among them (that day).
    pub contacts: u64,
    /// Conversions' value, per currency.
    #[serde(default)]
    pub value: std::collections::BTreeMap<String, f64>,
}

json_value!(DailyCount);

/// The days rolled up.
#[derive(Debug, Clone)]
pub struct FunnelDaily {
    table: Table<DailyKey, DailyCount>,
}

impl FunnelDaily {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::FunnelDaily),
        }
    }

    /// Adds `count` under `key` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, key: &DailyKey, count: &DailyCount) -> Result<()> {
        self.table.put_in(batch, key, count)
    }

    /// Every row of days `from..to` (days since the epoch), in order.
    pub fn days(
        &self,
        from: i64,
        to: i64,
    ) -> impl Iterator<Item = Result<(DailyKey, DailyCount)>> + '_ {
        let start = from.max(0).cast_unsigned().to_be_bytes();
        let end = to.max(0).cast_unsigned().to_be_bytes();
        self.table.range(&start, Some(&end))
    }

    /// Whether day `day` was rolled up.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn rolled(&self, day: i64) -> Result<bool> {
        Ok(self.table.get(&rolled(day))?.is_some())
    }
}

/// The key that marks day `day` rolled up.
pub fn rolled(day: i64) -> DailyKey {
    DailyKey {
        day,
        flow: String::new(),
        campaign: String::new(),
        variant: String::new(),
        kind: ROLLED.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: FunnelKind, contact: &str, at_ms: i64) -> FunnelEvent {
        FunnelEvent {
            at_ms,
            kind,
            contact: contact.to_owned(),
            ..FunnelEvent::default()
        }
    }

    #[test]
    fn events_come_in_time_order_and_touches_per_contact_newest_first() {
        let store = Store::temporary().unwrap();
        let events = store.tables().funnel;
        let mut batch = Batch::new();
        for (kind, contact, at) in [
            (FunnelKind::Delivered, "+1212", 300),
            (FunnelKind::Sent, "+1212", 100),
            (FunnelKind::Clicked, "+1212", 500),
            (FunnelKind::Delivered, "+12125", 400),
        ] {
            events
                .put_in(&mut batch, &event(kind, contact, at))
                .unwrap();
        }
        store.apply(batch).unwrap();
        let times: Vec<i64> = events.between(0, 450).map(|e| e.unwrap().at_ms).collect();
        assert_eq!(times, [100, 300, 400]);
        let touches: Vec<i64> = events
            .touches("+1212", 0, 500)
            .unwrap()
            .iter()
            .map(|e| e.at_ms)
            .collect();
        assert_eq!(
            touches,
            [500, 300],
            "the sent text is not a touch; +12125 not ours"
        );
        assert_eq!(events.touches("+1212", 301, 499).unwrap(), []);
    }
}
