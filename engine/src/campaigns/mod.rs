//! Campaigns: a flow started for every contact of a segment, at a pace, with exclusions, a
//! holdout, and a record per contact so a restart resumes where it stopped.
//!
//! # Walking the segment
//!
//! A worker ([`Campaigns::run`]) walks each running campaign's contacts in creation order from
//! its cursor, evaluating the segment on each (a stream: the store is never loaded whole).
//! For each contact in the segment it writes a [`Target`] saying what it did, with the
//! cursor, in one batch:
//!
//! - **holdout**: a sticky random share (a hash of the campaign and the contact) gets nothing;
//! - **excluded** with a reason: `opted_out` (the ledger or a suppression), `no_consent` (a
//!   marketing flow without an opt-in), `missing_field` (the flow needs a field the contact
//!   lacks), `recently_started`, `not_seen`, `active_run` (start mode `skip`), `with_agent`;
//! - **queued** (start mode `queue`): started when the contact's run ends;
//! - **starting**, then **started** with the texts queued.
//!
//! # No contact twice, none skipped
//!
//! A start carries the id `campaign:<campaign>:<contact>`: the runtime records it in the
//! turn's batch and a second start with it changes nothing. The target is written `starting`
//! before the start and `started` after; a crash between the two finds it `starting` on
//! resume and starts it again, which the id makes a no-op, and reads the texts the first start
//! queued from the transcript.
//!
//! The audience is every contact (filtered by the segment), or the contacts a campaign was
//! given as a list ([`crate::store::campaigns::CampaignAudience`]), walked the same way.
//!
//! # Pace and schedule
//!
//! Starts are paced per campaign (`messages_per_second`, or a round's spread of its audience
//! over a span), within an optional daily cap; every text still goes through the outbox
//! (paced per sender number) and the gate (consent, quiet hours in the contact's zone, caps),
//! at the moment it is sent. A text the gate defers past its validity (the campaign's
//! `valid_for`, else the operator's) expires there. A repeating broadcast runs in rounds
//! ([`schedule`]): each walks the audience afresh, and each start's id names its round.

pub mod event;
mod pace;
mod progress;
pub mod schedule;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::clock::SharedClock;
use crate::contacts::Contacts;
use crate::flow::runtime::Runtime;
use crate::outbound::Outbox;
pub use crate::store::campaigns::{
    Campaign, CampaignState, Pacing, Period, Repeat, StartMode, Target, TargetState,
};
use crate::store::campaigns::{campaign_id, campaign_seq};
use crate::store::{Batch, Store, StoreError, Tables};

/// Why a campaign request was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The request is not acceptable (an unknown flow, a bad segment, a rate out of range).
    #[error("{0}")]
    Invalid(String),
    /// The segment query does not compile.
    #[error(transparent)]
    Segment(#[from] crate::contacts::select::SegmentError),
    /// A listed number could not be made a contact.
    #[error(transparent)]
    Contact(#[from] crate::contacts::ContactError),
    /// No campaign has that id.
    #[error("no campaign `{0}`")]
    NotFound(String),
    /// The change does not apply in the campaign's state.
    #[error("campaign `{id}` is {state}: it cannot be {change}")]
    Conflict {
        /// The campaign.
        id: String,
        /// Its state.
        state: &'static str,
        /// The change asked for.
        change: &'static str,
    },
    /// The store failed: retry.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading what the campaign did failed (the outbox, the ledger): retry.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

/// `POST /v1/campaigns`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The client's idempotency key: the same key again answers the same campaign.
    #[serde(default)]
    pub key: Option<String>,
    /// The flow to start (it must take API starts).
    pub flow: String,
    /// The segment query, or `@name` for a saved segment. With `contacts`, a filter on them.
    #[serde(default)]
    pub segment: Option<String>,
    /// The audience as a list of numbers (E.164 or the default country's national form):
    /// each becomes a contact when it is not one yet. `smsflow campaigns create --csv` sends
    /// a CSV's numbers here after importing the file.
    #[serde(default)]
    pub contacts: Option<Vec<String>>,
    /// Fields every start gets.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// `skip` (the default), `interrupt` or `queue`.
    #[serde(default)]
    pub start_mode: StartMode,
    /// The share held out, 0 to 100.
    #[serde(default)]
    pub holdout_percent: f64,
    /// Starts per second (default 10).
    #[serde(default)]
    pub messages_per_second: Option<f64>,
    /// When to begin (RFC 3339); now when absent.
    #[serde(default)]
    pub start_at: Option<String>,
    /// Run again daily or weekly at the same local time
    /// (`{"every": "daily", "time_zone": "America/New_York"}`).
    #[serde(default)]
    pub repeat: Option<Repeat>,
    /// Starts per local day at most; the rest wait for the next day.
    #[serde(default)]
    pub daily_cap: Option<u64>,
    /// Spread each round's starts evenly over this long (`4h`).
    #[serde(default)]
    pub spread_over: Option<String>,
    /// How long its texts stay worth sending (`6h`): a text the gate defers (quiet hours,
    /// caps) past that expires instead. Default: `[compliance] deferred_expiry`.
    #[serde(default)]
    pub valid_for: Option<String>,
    /// Leave out contacts whose last run started within this long (`7d`).
    #[serde(default)]
    pub exclude_started_within: Option<String>,
    /// Leave out contacts who have not texted for this long, or ever (`90d`).
    #[serde(default)]
    pub exclude_not_seen_for: Option<String>,
    /// A campaign of events: each contact's start comes relative to one of its datetime fields
    /// (`{"field": "appointment_at", "offset": "-1d", "deliver_at": "09:00"}`).
    #[serde(default)]
    pub event: Option<event::EventSpec>,
}

/// The campaigns and the worker that runs them.
pub struct Campaigns {
    store: Store,
    tables: Tables,
    contacts: Arc<Contacts>,
    runtime: Arc<Runtime>,
    outbox: Arc<Outbox>,
    clock: SharedClock,
    our_number: String,
    /// What the worker keeps in memory per campaign (rebuilt after a restart).
    memory: std::sync::Mutex<BTreeMap<u64, worker::Memory>>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Campaigns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Campaigns").finish_non_exhaustive()
    }
}

/// What [`Campaigns::create`] answers: the campaign, and whether it is new.
pub type Created = (Campaign, bool);

impl Campaigns {
    /// The campaigns of `store`, started through `runtime` from `our_number`.
    pub fn new(
        store: &Store,
        contacts: Arc<Contacts>,
        runtime: Arc<Runtime>,
        outbox: Arc<Outbox>,
        clock: SharedClock,
        our_number: String,
    ) -> Self {
        Self {
            store: store.clone(),
            tables: store.tables(),
            contacts,
            runtime,
            outbox,
            clock,
            our_number,
            memory: std::sync::Mutex::new(BTreeMap::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Creates a campaign, or answers the one created before with the same key. A listed
    /// audience's numbers become contacts first (a merge for those that are already).
    ///
    /// # Errors
    ///
    /// [`CampaignError::Invalid`] or [`CampaignError::Segment`] for a bad request (nothing
    /// written), or a store failure.
    pub async fn create(&self, new: NewCampaign) -> Result<Created, CampaignError> {
        if let Some(key) = &new.key
            && let Some(seq) = self.tables.campaign_keys.get(key)?
            && let Some(campaign) = self.tables.campaigns.get(seq)?
        {
            return Ok((campaign, false));
        }
        let listed = self.checked_list(new.contacts.as_deref())?;
        let campaign = self.checked(new)?;
        let seq = self.store.generate_id()?;
        let campaign = Campaign {
            id: campaign_id(seq),
            ..campaign
        };
        let mut batch = Batch::new();
        for phone in listed {
            let contact_seq = self.contacts.ensure(&phone)?;
            self.tables
                .campaign_audience
                .put_in(&mut batch, seq, contact_seq)?;
        }
        self.tables.campaigns.put_in(&mut batch, seq, &campaign)?;
        if let Some(key) = &campaign.key {
            self.tables.campaign_keys.put_in(&mut batch, key, seq)?;
        }
        self.store.commit(batch).await?;
        self.wake.notify_one();
        Ok((campaign, true))
    }

    /// A listed audience's numbers, normalised; every bad one is reported (by its place in
    /// the list) before anything is written.
    fn checked_list(&self, list: Option<&[String]>) -> Result<Vec<String>, CampaignError> {
        let Some(list) = list else {
            return Ok(Vec::new());
        };
        if list.is_empty() || list.len() > MAX_LISTED {
            return Err(CampaignError::Invalid(format!(
                "contacts: list 1 to {MAX_LISTED} numbers; for more, import them with a tag \
                 and name the tag in `segment`"
            )));
        }
        let mut phones = Vec::with_capacity(list.len());
        let mut bad = Vec::new();
        for (index, raw) in list.iter().enumerate() {
            match self.contacts.phone(raw) {
                Ok(phone) => phones.push(phone),
                Err(error) => bad.push(format!("contacts[{index}]: {error}")),
            }
        }
        if !bad.is_empty() {
            let more = bad.len().saturating_sub(10);
            bad.truncate(10);
            let tail = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            return Err(CampaignError::Invalid(format!("{}{tail}", bad.join("; "))));
        }
        phones.sort_unstable();
        phones.dedup();
        Ok(phones)
    }

    /// `new` checked against the flows and the contacts' fields.
    fn checked(&self, new: NewCampaign) -> Result<Campaign, CampaignError> {
        self.checked_flow(&new.flow)?;
        let segment = match &new.segment {
            Some(segment) => Some(self.segment_text(segment)?),
            None if new.contacts.is_some() => None,
            None => {
                return Err(CampaignError::Invalid(
                    "segment: name the audience: a segment query, `@saved`, or a `contacts` list"
                        .to_owned(),
                ));
            }
        };
        if let Some(segment) = &segment {
            self.contacts.query(segment)?;
        }
        let invalid = |message: &str| Err(CampaignError::Invalid(message.to_owned()));
        if !(0.0..=100.0).contains(&new.holdout_percent) {
            return invalid("holdout_percent: write a share from 0 to 100");
        }
        let rate = new.messages_per_second.unwrap_or(10.0);
        if !(rate > 0.0 && rate <= 10_000.0) {
            return invalid("messages_per_second: write a rate above 0, at most 10000");
        }
        if let Some(key) = &new.key
            && (key.is_empty() || key.len() > 200 || key.contains('\0'))
        {
            return invalid("key: write 1 to 200 characters, no NUL");
        }
        let now = self.clock.now_ms();
        let start_at_ms = match &new.start_at {
            Some(at) => crate::contacts::fields::parse_datetime(at).ok_or_else(|| {
                CampaignError::Invalid(format!(
                    "start_at: `{at}` is not a time; write 2026-03-03T15:00:00Z"
                ))
            })?,
            None => now,
        };
        let event = self.checked_event(new.event)?;
        let pacing = checked_pacing(new.daily_cap, new.spread_over.as_deref())?;
        check_schedule(new.repeat.as_ref(), event.is_some(), &pacing)?;
        Ok(Campaign {
            id: String::new(),
            key: new.key,
            flow: new.flow,
            listed: new.contacts.is_some(),
            segment,
            fields: new.fields,
            start_mode: new.start_mode,
            holdout_percent: new.holdout_percent,
            messages_per_second: rate,
            pacing,
            start_at_ms,
            repeat: new.repeat,
            round: 0,
            valid_for_ms: span_ms(new.valid_for.as_deref(), "valid_for")?,
            exclude_started_within_ms: duration_ms(
                new.exclude_started_within.as_deref(),
                "exclude_started_within",
            )?,
            exclude_not_seen_for_ms: duration_ms(
                new.exclude_not_seen_for.as_deref(),
                "exclude_not_seen_for",
            )?,
            event,
            state: if start_at_ms > now {
                CampaignState::Scheduled
            } else {
                CampaignState::Running
            },
            cursor: None,
            walked: false,
            created_at_ms: now,
        })
    }

    /// The flow is loaded and takes API starts.
    fn checked_flow(&self, id: &str) -> Result<(), CampaignError> {
        let flows = self.runtime.registry().current();
        let Some(flow) = flows.by_id.get(id) else {
            let ids: Vec<&str> = flows.by_id.keys().map(String::as_str).collect();
            return Err(CampaignError::Invalid(format!(
                "flow: no flow `{id}` is loaded{}",
                crate::flow::suggest::did_you_mean(id, ids.iter().copied())
            )));
        };
        if !flow.triggers.api {
            return Err(CampaignError::Invalid(format!(
                "flow: `{id}` cannot be started by a campaign: its file does not set `triggers.api = true`"
            )));
        }
        Ok(())
    }

    /// An event checked: a well-formed offset and time of day, on a datetime field.
    fn checked_event(
        &self,
        event: Option<event::EventSpec>,
    ) -> Result<Option<event::EventSpec>, CampaignError> {
        let Some(event) = event else {
            return Ok(None);
        };
        event.check().map_err(CampaignError::Invalid)?;
        match self.contacts.field_types()?.get(&event.field) {
            Some(crate::store::contacts::FieldType::Datetime) => Ok(Some(event)),
            _ => Err(CampaignError::Invalid(format!(
                "event.field: `{}` is not a datetime field; declare it in [contacts.fields] ({} = \"datetime\")",
                event.field, event.field
            ))),
        }
    }

    /// A segment's query: `@name` reads a saved one.
    fn segment_text(&self, segment: &str) -> Result<String, CampaignError> {
        match segment.strip_prefix('@') {
            Some(name) => self.tables.segments.get(name)?.ok_or_else(|| {
                CampaignError::Invalid(format!("segment: no segment is saved as `{name}`"))
            }),
            None => Ok(segment.to_owned()),
        }
    }

    /// The campaign with `id`.
    ///
    /// # Errors
    ///
    /// [`CampaignError::NotFound`], or a store failure.
    pub fn get(&self, id: &str) -> Result<(u64, Campaign), CampaignError> {
        let seq = campaign_seq(id).ok_or_else(|| CampaignError::NotFound(id.to_owned()))?;
        let campaign = self
            .tables
            .campaigns
            .get(seq)?
            .ok_or_else(|| CampaignError::NotFound(id.to_owned()))?;
        Ok((seq, campaign))
    }

    /// Every campaign, oldest first.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn list(&self) -> Result<Vec<Campaign>, CampaignError> {
        Ok(self
            .tables
            .campaigns
            .all()?
            .into_iter()
            .map(|(_, campaign)| campaign)
            .collect())
    }

    /// Pauses, resumes or cancels campaign `id`.
    ///
    /// # Errors
    ///
    /// [`CampaignError::Conflict`] when the change does not apply (a finished campaign), or a
    /// store failure.
    pub async fn change(&self, id: &str, change: Change) -> Result<Campaign, CampaignError> {
        let (seq, mut campaign) = self.get(id)?;
        let now = self.clock.now_ms();
        let next = match (change, campaign.state) {
            (_, CampaignState::Cancelled | CampaignState::Done) => None,
            (Change::Pause, CampaignState::Running | CampaignState::Scheduled) => {
                Some(CampaignState::Paused)
            }
            (Change::Resume, CampaignState::Paused) => Some(if campaign.start_at_ms > now {
                CampaignState::Scheduled
            } else {
                CampaignState::Running
            }),
            (Change::Cancel, _) => Some(CampaignState::Cancelled),
            _ => None,
        };
        let Some(next) = next else {
            return Err(CampaignError::Conflict {
                id: id.to_owned(),
                state: campaign.state.name(),
                change: change.done(),
            });
        };
        campaign.state = next;
        let mut batch = Batch::new();
        self.tables.campaigns.put_in(&mut batch, seq, &campaign)?;
        self.store.commit(batch).await?;
        self.wake.notify_one();
        Ok(campaign)
    }

    /// What campaign `id` did with each contact so far, in contact order.
    ///
    /// # Errors
    ///
    /// An unknown id, or a store failure.
    pub fn targets(&self, id: &str) -> Result<Vec<Target>, CampaignError> {
        let (seq, _) = self.get(id)?;
        Ok(self
            .tables
            .campaign_targets
            .of(seq)
            .map(|row| row.map(|(_, target)| target))
            .collect::<Result<_, _>>()?)
    }
}

/// A change to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Stop for now.
    Pause,
    /// Go on.
    Resume,
    /// Stop for good.
    Cancel,
}

impl Change {
    fn done(self) -> &'static str {
        match self {
            Self::Pause => "paused",
            Self::Resume => "resumed",
            Self::Cancel => "cancelled",
        }
    }
}

/// Numbers a `contacts` list may hold: a larger audience is a tag and a segment.
const MAX_LISTED: usize = 100_000;

/// A daily cap and a spread, checked.
fn checked_pacing(
    daily_cap: Option<u64>,
    spread_over: Option<&str>,
) -> Result<Pacing, CampaignError> {
    if daily_cap == Some(0) {
        return Err(CampaignError::Invalid(
            "daily_cap: write at least 1 (or leave it out for no cap)".to_owned(),
        ));
    }
    Ok(Pacing {
        daily_cap,
        spread_over_ms: span_ms(spread_over, "spread_over")?,
        round_rate: None,
    })
}

/// A repeat and a spread make sense for a broadcast, not a campaign of events (whose starts
/// come when each contact's date says).
fn check_schedule(
    repeat: Option<&Repeat>,
    events: bool,
    pacing: &Pacing,
) -> Result<(), CampaignError> {
    let invalid = |message: &str| Err(CampaignError::Invalid(message.to_owned()));
    if events && repeat.is_some() {
        return invalid(
            "repeat: a campaign of events repeats by itself, as dates come; drop `repeat`",
        );
    }
    if events && pacing.spread_over_ms.is_some() {
        return invalid(
            "spread_over: a campaign of events starts each contact at its own time; drop `spread_over`",
        );
    }
    if let Some(repeat) = repeat {
        repeat.check().map_err(CampaignError::Invalid)?;
    }
    Ok(())
}

/// A span from a minute to 30 days (`6h`) in ms.
fn span_ms(text: Option<&str>, field: &str) -> Result<Option<i64>, CampaignError> {
    const RANGE: std::ops::RangeInclusive<i64> = 60_000..=30 * 86_400_000;
    let ms = duration_ms(text, field)?;
    if ms.is_some_and(|ms| !RANGE.contains(&ms)) {
        return Err(CampaignError::Invalid(format!(
            "{field}: write a span from 1m to 30d"
        )));
    }
    Ok(ms)
}

/// `text` (`7d`) in ms.
fn duration_ms(text: Option<&str>, field: &str) -> Result<Option<i64>, CampaignError> {
    text.map(|text| {
        humantime::parse_duration(text)
            .map(|duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
            .map_err(|_| {
                CampaignError::Invalid(format!(
                    "{field}: `{text}` is not a duration; write 7d or 12h"
                ))
            })
    })
    .transpose()
}
