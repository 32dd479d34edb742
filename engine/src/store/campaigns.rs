//! Campaigns: a flow sent to a segment, paced, resumable after a crash.
//!
//! - [`CampaignsTable`] (0x1a): key the campaign's seq (big-endian u64); value a [`Campaign`].
//! - [`CampaignKeys`] (0x1b): key the client's idempotency key; value the campaign's seq.
//! - [`CampaignTargets`] (0x1c): key the campaign's seq then the contact's seq (both
//!   big-endian u64), so one campaign's targets are one prefix scan in contact order; value a
//!   [`Target`]: what the campaign did with that contact.
//! - [`CampaignAudience`] (0x1d): key the campaign's seq then the contact's seq; no value. The
//!   contacts a campaign was given as a list (or a CSV), walked instead of every contact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::keys::{Reader, Seq, push_u64};
use super::table::{Key, Table};
use super::{Batch, Result, Store, TableId};

/// What a campaign does with a contact already in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartMode {
    /// Leave the contact out (excluded as `active_run`).
    #[default]
    Skip,
    /// End the waiting run and start the campaign's (never a conversation with a person).
    Interrupt,
    /// Start the campaign's once the run ends.
    Queue,
}

/// Where a campaign is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Waiting for its start time.
    Scheduled,
    /// Starting contacts.
    Running,
    /// Stopped by the operator; resumes where it stopped.
    Paused,
    /// Stopped for good by the operator.
    Cancelled,
    /// Every contact of the segment was dealt with.
    Done,
}

impl CampaignState {
    /// Its name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Done => "done",
        }
    }
}

/// When a campaign event starts the flow for a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// The contact's datetime field it is relative to.
    pub field: String,
    /// Before (`-1d`, `-24h`) or after (`3d`) the field's time: days are calendar days in the
    /// contact's zone.
    #[serde(default = "zero")]
    pub offset: String,
    /// The local time of day to deliver at (`09:00`), on the date the offset lands on.
    #[serde(default)]
    pub deliver_at: Option<String>,
}

fn zero() -> String {
    "0s".to_owned()
}

/// How often a broadcast runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// The same local time every day.
    Daily,
    /// The same local time and weekday every week.
    Weekly,
}

/// A broadcast that runs again: each round walks its audience afresh and starts each contact
/// once more (a contact still in the last round's run is handled by the start mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeat {
    /// Daily or weekly.
    pub every: Period,
    /// The zone whose wall clock the rounds keep (an IANA name), so a 09:00 round stays at
    /// 09:00 across a DST change. It also says where a daily cap's days begin.
    #[serde(default = "utc")]
    pub time_zone: String,
}

fn utc() -> String {
    "UTC".to_owned()
}

/// Limits on how fast a campaign starts contacts, beyond its rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pacing {
    /// Starts per calendar day at most (days in the repeat's zone, else UTC); the rest wait
    /// for the next day.
    #[serde(default)]
    pub daily_cap: Option<u64>,
    /// Spread each round's starts evenly over this long (ms): the rate becomes the audience
    /// over the span, when that is below `messages_per_second`.
    #[serde(default)]
    pub spread_over_ms: Option<i64>,
    /// The rate the current round's spread worked out to (starts per second).
    #[serde(default)]
    pub round_rate: Option<f64>,
}

/// A campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    /// Its id (`cmp-` and 16 hex digits).
    pub id: String,
    /// The client's idempotency key, when it gave one.
    pub key: Option<String>,
    /// The flow it starts.
    pub flow: String,
    /// The segment query its contacts are chosen by (for a listed audience: a filter on the
    /// list, when given).
    #[serde(default)]
    pub segment: Option<String>,
    /// Its audience is the contacts it was given ([`CampaignAudience`]), not every contact.
    #[serde(default)]
    pub listed: bool,
    /// Fields every start gets (beating the contact's own of the same name).
    pub fields: BTreeMap<String, String>,
    /// What to do with a contact already in a run.
    pub start_mode: StartMode,
    /// The share of the segment held out (gets nothing), 0 to 100.
    pub holdout_percent: f64,
    /// Starts per second at most.
    pub messages_per_second: f64,
    /// A daily cap and a spread.
    #[serde(default)]
    pub pacing: Pacing,
    /// When it begins (the next round's start, for a repeating one), ms since the epoch.
    pub start_at_ms: i64,
    /// Runs again daily or weekly.
    #[serde(default)]
    pub repeat: Option<Repeat>,
    /// The round it is in (0 for the first).
    #[serde(default)]
    pub round: u32,
    /// How long its texts stay worth sending (ms): a text the gate defers past that expires.
    /// Unset, the operator's `[compliance] deferred_expiry` holds.
    #[serde(default)]
    pub valid_for_ms: Option<i64>,
    /// Leave out contacts whose last run started this recently (ms).
    #[serde(default)]
    pub exclude_started_within_ms: Option<i64>,
    /// Leave out contacts who have not texted for this long, or never (ms).
    #[serde(default)]
    pub exclude_not_seen_for_ms: Option<i64>,
    /// For a campaign of events: when each contact's start comes, relative to a datetime
    /// field. A broadcast has none.
    #[serde(default)]
    pub event: Option<EventSpec>,
    /// Where it is.
    pub state: CampaignState,
    /// The last contact (seq) the walk over the segment dealt with.
    pub cursor: Option<u64>,
    /// The walk reached the last contact.
    pub walked: bool,
    /// When it was created.
    pub created_at_ms: i64,
}

json_value!(Campaign);

impl Campaign {
    /// Starts per second now: the current round's spread, else the campaign's rate.
    pub fn start_rate(&self) -> f64 {
        self.pacing.round_rate.unwrap_or(self.messages_per_second)
    }
}

/// What a campaign did with one contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TargetState {
    /// Left out, and why (`opted_out`, `no_consent`, `missing_field`, `active_run`, ...).
    Excluded {
        /// The reason, a word for counting.
        reason: String,
        /// The detail (which field, which run).
        detail: String,
    },
    /// In the control group: gets nothing, so lift can be measured.
    Holdout,
    /// In a run; started when it ends.
    Queued,
    /// Inside the contact's quiet hours: started when they end, at the campaign's pace (so a
    /// long blast never piles its texts up for the morning).
    Waiting {
        /// When the contact's window opens.
        until_ms: i64,
    },
    /// About to be started (written before the start, so a crash finishes it once).
    Starting,
    /// Started; these texts were queued.
    Started {
        /// The outbox ids of the texts the start queued.
        message_ids: Vec<String>,
    },
}

/// One contact of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The contact's number.
    pub phone: String,
    /// What happened.
    #[serde(flatten)]
    pub state: TargetState,
    /// For a campaign of events: the event time this target is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_ms: Option<i64>,
    /// For a repeating broadcast: the round this is from.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: u32,
    /// When.
    pub at_ms: i64,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(round: &u32) -> bool {
    *round == 0
}

json_value!(Target);

/// The id shown for campaign `seq`.
pub fn campaign_id(seq: u64) -> String {
    format!("cmp-{seq:016x}")
}

/// The seq of a [`campaign_id`].
pub fn campaign_seq(id: &str) -> Option<u64> {
    let hex = id.strip_prefix("cmp-")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// The campaigns table.
#[derive(Debug, Clone)]
pub struct CampaignsTable {
    table: Table<Seq, Campaign>,
}

impl CampaignsTable {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Campaigns),
        }
    }

    /// Campaign `seq`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, seq: u64) -> Result<Option<Campaign>> {
        self.table.get(&Seq(seq))
    }

    /// Adds writing `campaign` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, seq: u64, campaign: &Campaign) -> Result<()> {
        self.table.put_in(batch, &Seq(seq), campaign)
    }

    /// Every campaign, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn all(&self) -> Result<Vec<(u64, Campaign)>> {
        self.table
            .all()
            .map(|row| row.map(|(Seq(seq), campaign)| (seq, campaign)))
            .collect()
    }
}

/// Campaigns by the client's idempotency key.
#[derive(Debug, Clone)]
pub struct CampaignKeys {
    table: Table<String, u64>,
}

impl CampaignKeys {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::CampaignKeys),
        }
    }

    /// The campaign created with `key`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, key: &str) -> Result<Option<u64>> {
        self.table.get(&key.to_owned())
    }

    /// Adds recording `key` for campaign `seq` to `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn put_in(&self, batch: &mut Batch, key: &str, seq: u64) -> Result<()> {
        self.table.put_in(batch, &key.to_owned(), &seq)
    }
}

/// A target's key: the campaign, then the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TargetKey {
    campaign: u64,
    contact: u64,
}

impl Key for TargetKey {
    fn write(&self, out: &mut Vec<u8>) {
        push_u64(out, self.campaign);
        push_u64(out, self.contact);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let campaign = reader.u64()?;
        let contact = reader.u64()?;
        reader.end(Self { campaign, contact })
    }
}

/// What each campaign did with each of its contacts.
#[derive(Debug, Clone)]
pub struct CampaignTargets {
    table: Table<TargetKey, Target>,
}

impl CampaignTargets {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::CampaignTargets),
        }
    }

    /// What campaign `campaign` did with contact `contact`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, campaign: u64, contact: u64) -> Result<Option<Target>> {
        self.table.get(&TargetKey { campaign, contact })
    }

    /// Adds writing `target` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(
        &self,
        batch: &mut Batch,
        campaign: u64,
        contact: u64,
        target: &Target,
    ) -> Result<()> {
        self.table
            .put_in(batch, &TargetKey { campaign, contact }, target)
    }

    /// Every target of `campaign`, in contact order, as `(contact seq, target)`: a stream.
    pub fn of(&self, campaign: u64) -> impl Iterator<Item = Result<(u64, Target)>> + '_ {
        self.table
            .scan_prefix(&campaign.to_be_bytes())
            .map(|row| row.map(|(key, target)| (key.contact, target)))
    }
}

/// The contacts each listed campaign was given.
#[derive(Debug, Clone)]
pub struct CampaignAudience {
    table: Table<TargetKey, ()>,
}

impl CampaignAudience {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::CampaignAudience),
        }
    }

    /// Adds contact `contact` to campaign `campaign`'s audience, in `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn put_in(&self, batch: &mut Batch, campaign: u64, contact: u64) -> Result<()> {
        self.table
            .put_in(batch, &TargetKey { campaign, contact }, &())
    }

    /// Campaign `campaign`'s contacts (seqs) after `after`, in contact order: a stream.
    pub fn after(
        &self,
        campaign: u64,
        after: Option<u64>,
    ) -> impl Iterator<Item = Result<u64>> + '_ {
        let mut start = Vec::with_capacity(16);
        TargetKey {
            campaign,
            contact: after.map_or(0, |after| after.saturating_add(1)),
        }
        .write(&mut start);
        // Up to the next campaign's first key.
        let end = campaign.checked_add(1).map(u64::to_be_bytes);
        self.table
            .range(&start, end.as_ref().map(<[u8; 8]>::as_slice))
            .map(|row| row.map(|(key, ())| key.contact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(phone: &str, state: TargetState) -> Target {
        Target {
            phone: phone.to_owned(),
            state,
            at_ms: 5,
            event_ms: None,
            round: 0,
        }
    }

    #[test]
    fn targets_of_one_campaign_come_in_contact_order_and_only_theirs() {
        let store = Store::temporary().unwrap();
        let targets = store.tables().campaign_targets;
        let mut batch = Batch::new();
        for (campaign, contact) in [(2, 9), (1, 300), (1, 2), (3, 1)] {
            targets
                .put_in(
                    &mut batch,
                    campaign,
                    contact,
                    &target("+1", TargetState::Holdout),
                )
                .unwrap();
        }
        store.apply(batch).unwrap();
        let of_one: Vec<u64> = targets.of(1).map(|row| row.unwrap().0).collect();
        assert_eq!(of_one, [2, 300]);
        assert_eq!(
            targets.get(2, 9).unwrap(),
            Some(target("+1", TargetState::Holdout))
        );
    }

    #[test]
    fn a_target_round_trips_with_its_state() {
        let started = target(
            "+12125550100",
            TargetState::Started {
                message_ids: vec!["out-1".to_owned()],
            },
        );
        let json = serde_json::to_value(&started).unwrap();
        assert_eq!(json["state"], "started");
        assert_eq!(serde_json::from_value::<Target>(json).unwrap(), started);
        assert_eq!(campaign_seq(&campaign_id(42)), Some(42));
        assert_eq!(campaign_seq("cmp-2a"), None);
    }
}
