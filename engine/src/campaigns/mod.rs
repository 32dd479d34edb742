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
//! # Pace
//!
//! Starts are paced per campaign (`messages_per_second`); every text still goes through the
//! outbox (paced per sender number) and the gate (consent, quiet hours in the contact's zone,
//! caps), at the moment it is sent. A text the gate defers past its validity expires there.

pub mod event;
mod pace;
mod progress;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::clock::SharedClock;
use crate::contacts::Contacts;
use crate::flow::runtime::Runtime;
use crate::outbound::Outbox;
pub use crate::store::campaigns::{Campaign, CampaignState, StartMode, Target, TargetState};
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The client's idempotency key: the same key again answers the same campaign.
    #[serde(default)]
    pub key: Option<String>,
    /// The flow to start (it must take API starts).
    pub flow: String,
    /// The segment query, or `@name` for a saved segment.
    pub segment: String,
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

    /// Creates a campaign, or answers the one created before with the same key.
    ///
    /// # Errors
    ///
    /// [`CampaignError::Invalid`] or [`CampaignError::Segment`] for a bad request, or a store
    /// failure.
    pub async fn create(&self, new: NewCampaign) -> Result<Created, CampaignError> {
        if let Some(key) = &new.key
            && let Some(seq) = self.tables.campaign_keys.get(key)?
            && let Some(campaign) = self.tables.campaigns.get(seq)?
        {
            return Ok((campaign, false));
        }
        let campaign = self.checked(new)?;
        let seq = self.store.generate_id()?;
        let campaign = Campaign {
            id: campaign_id(seq),
            ..campaign
        };
        let mut batch = Batch::new();
        self.tables.campaigns.put_in(&mut batch, seq, &campaign)?;
        if let Some(key) = &campaign.key {
            self.tables.campaign_keys.put_in(&mut batch, key, seq)?;
        }
        self.store.commit(batch).await?;
        self.wake.notify_one();
        Ok((campaign, true))
    }

    /// `new` checked against the flows and the contacts' fields.
    fn checked(&self, new: NewCampaign) -> Result<Campaign, CampaignError> {
        let invalid = |message: String| Err(CampaignError::Invalid(message));
        let flows = self.runtime.registry().current();
        let Some(flow) = flows.by_id.get(&new.flow) else {
            let ids: Vec<&str> = flows.by_id.keys().map(String::as_str).collect();
            return invalid(format!(
                "flow: no flow `{}` is loaded{}",
                new.flow,
                crate::flow::suggest::did_you_mean(&new.flow, ids.iter().copied())
            ));
        };
        if !flow.triggers.api {
            return invalid(format!(
                "flow: `{}` cannot be started by a campaign: its file does not set `triggers.api = true`",
                flow.id
            ));
        }
        let segment = self.segment_text(&new.segment)?;
        self.contacts.query(&segment)?;
        if !(0.0..=100.0).contains(&new.holdout_percent) {
            return invalid("holdout_percent: write a share from 0 to 100".to_owned());
        }
        let rate = new.messages_per_second.unwrap_or(10.0);
        if !(rate > 0.0 && rate <= 10_000.0) {
            return invalid("messages_per_second: write a rate above 0, at most 10000".to_owned());
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
        if let Some(key) = &new.key
            && (key.is_empty() || key.len() > 200 || key.contains('\0'))
        {
            return invalid("key: write 1 to 200 characters, no NUL".to_owned());
        }
        Ok(Campaign {
            id: String::new(),
            key: new.key,
            flow: new.flow,
            segment,
            fields: new.fields,
            start_mode: new.start_mode,
            holdout_percent: new.holdout_percent,
            messages_per_second: rate,
            start_at_ms,
            exclude_started_within_ms: duration_ms(
                new.exclude_started_within.as_deref(),
                "exclude_started_within",
            )?,
            exclude_not_seen_for_ms: duration_ms(
                new.exclude_not_seen_for.as_deref(),
                "exclude_not_seen_for",
            )?,
            event: self.checked_event(new.event)?,
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
