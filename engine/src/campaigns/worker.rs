//! The worker that runs campaigns: each pass walks every running campaign's segment from its
//! cursor, decides what to do with each contact, starts the ones the pace allows, and looks
//! again at the ones held back. See the module documentation of [`super`].

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use super::pace::Pace;
use super::{Campaign, CampaignState, Campaigns, StartMode, Target, TargetState, event, schedule};
use crate::compliance::ledger::{ConsentClass, ConsentState};
use crate::contacts::Contacts;
use crate::flow::conversation::{ConversationKey, Event, Status};
use crate::flow::runtime::{OnActive, RuntimeError, StartRequest};
use crate::flow::{Flow, FlowKind};
use crate::store::Batch;
use crate::store::contacts::Contact;

/// Contacts one pass of the walk looks at, at most, per campaign: bounds how long a pass
/// holds the worker when most contacts are outside the segment.
const WALK_PER_PASS: usize = 2000;

/// How often a campaign of events walks its segment again (for new contacts and changed
/// datetimes).
const REWALK_MS: i64 = 60_000;

/// How often queued targets are looked at again.
const QUEUE_RECHECK_MS: i64 = 30_000;

impl Campaigns {
    /// Runs the campaigns until the task is dropped: each pass moves every running campaign
    /// as far as its pace allows.
    pub async fn run(self: Arc<Self>) {
        loop {
            let wait = match self.pass().await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::error!("campaigns: {error:#}");
                    Duration::from_secs(1)
                }
            };
            let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        }
    }

    /// One pass over every campaign; how long until the next is worth making.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn pass(&self) -> anyhow::Result<Duration> {
        let mut wait = Duration::from_secs(1);
        for (seq, campaign) in self.tables.campaigns.all()? {
            if let Some(next) = self.advance(seq, campaign).await? {
                wait = wait.min(next);
            }
        }
        Ok(wait)
    }

    /// Moves one campaign on; `Some(wait)` when it has more to do soon.
    async fn advance(&self, seq: u64, mut campaign: Campaign) -> anyhow::Result<Option<Duration>> {
        let now = self.clock.now_ms();
        match campaign.state {
            CampaignState::Scheduled if campaign.start_at_ms <= now => {
                campaign.state = CampaignState::Running;
                self.save(seq, &campaign).await?;
            }
            CampaignState::Running => {}
            _ => return Ok(None),
        }
        if campaign.pacing.spread_over_ms.is_some() && campaign.pacing.round_rate.is_none() {
            self.spread(seq, &mut campaign)?;
            self.save(seq, &campaign).await?;
        }
        let flow = self
            .runtime
            .registry()
            .current()
            .by_id
            .get(&campaign.flow)
            .cloned();
        let Some(flow) = flow else {
            tracing::warn!(campaign = %campaign.id, "the flow `{}` is no longer loaded: the campaign waits", campaign.flow);
            return Ok(Some(Duration::from_secs(5)));
        };
        let query = campaign
            .segment
            .as_deref()
            .map(|segment| self.contacts.query(segment))
            .transpose()?;
        if self.with_memory(seq, &campaign, |memory| {
            !std::mem::replace(&mut memory.resumed, true)
        }) {
            // Once per process: a crash may have left starts half done.
            self.finish_starting(seq, &campaign).await?;
        }
        let walked = self
            .walk(seq, &mut campaign, &flow, query.as_ref(), now)
            .await?;
        let revisit_at = self.with_memory(seq, &campaign, |memory| memory.revisit_at);
        let held = if revisit_at <= now {
            self.revisit(seq, &campaign, (&flow, query.as_ref()), now)
                .await?
        } else {
            revisit_at != i64::MAX
        };
        self.end_walk(seq, &mut campaign, held, now);
        self.save(seq, &campaign).await?;
        if campaign.state != CampaignState::Running {
            return Ok(None);
        }
        // A walk cut short by its bound has more to do at once; else the pace says when.
        Ok(Some(if walked == WALK_PER_PASS {
            Duration::ZERO
        } else {
            self.next_in(seq, &campaign, now)
        }))
    }

    /// After a walk that reached the last contact: a campaign of events walks again soon
    /// (contacts join, dates change); a repeating broadcast schedules its next round; any
    /// other is done once nothing is held back.
    fn end_walk(&self, seq: u64, campaign: &mut Campaign, held: bool, now: i64) {
        if !campaign.walked {
            return;
        }
        if campaign.event.is_some() {
            let rewalk = self.with_memory(seq, campaign, |memory| {
                let due = memory.rewalk_at <= now;
                if due {
                    memory.rewalk_at = now + REWALK_MS;
                }
                due
            });
            if rewalk {
                campaign.cursor = None;
                campaign.walked = false;
            }
            return;
        }
        if held || campaign.state != CampaignState::Running {
            return;
        }
        match &campaign.repeat {
            Some(repeat) => {
                campaign.start_at_ms = repeat.next_after(campaign.start_at_ms, now);
                campaign.round += 1;
                // The next round's spread is worked out from its own audience.
                campaign.pacing.round_rate = None;
                campaign.cursor = None;
                campaign.walked = false;
                campaign.state = CampaignState::Scheduled;
                tracing::info!(campaign = %campaign.id, round = campaign.round, "campaign round done; the next at {}", crate::compliance::gate::rfc3339(campaign.start_at_ms));
            }
            None => {
                campaign.state = CampaignState::Done;
                tracing::info!(campaign = %campaign.id, "campaign done");
            }
        }
    }

    /// A spread round begins: its rate is worked out from the audience's size, and the
    /// pace starts afresh at it.
    fn spread(&self, seq: u64, campaign: &mut Campaign) -> anyhow::Result<()> {
        let Some(spread_ms) = campaign.pacing.spread_over_ms else {
            return Ok(());
        };
        let audience = self.audience_size(seq, campaign)?;
        let rate = schedule::spread_rate(audience, spread_ms, campaign.messages_per_second);
        campaign.pacing.round_rate = Some(rate);
        self.with_memory(seq, campaign, |memory| memory.pace = Pace::new(rate));
        Ok(())
    }

    /// How many contacts a round of campaign `seq` goes through (in its segment, or listed
    /// and in its filter).
    fn audience_size(&self, seq: u64, campaign: &Campaign) -> anyhow::Result<u64> {
        let query = campaign
            .segment
            .as_deref()
            .map(|segment| self.contacts.query(segment))
            .transpose()?;
        let mut count = 0;
        for row in self.audience(seq, campaign, None) {
            let (_, contact) = row?;
            if query
                .as_ref()
                .is_none_or(|query| self.contacts.matches(query, &contact))
            {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Campaign `seq`'s contacts after `after`, in contact order: its list, or every contact.
    fn audience<'a>(
        &'a self,
        seq: u64,
        campaign: &Campaign,
        after: Option<u64>,
    ) -> Box<dyn Iterator<Item = Result<(u64, Contact), crate::store::StoreError>> + Send + 'a>
    {
        if !campaign.listed {
            return Box::new(self.contacts.stream(after));
        }
        Box::new(
            self.tables
                .campaign_audience
                .after(seq, after)
                .filter_map(|row| match row {
                    // A listed contact erased since is passed over.
                    Ok(contact_seq) => self
                        .contacts
                        .get_by_seq(contact_seq)
                        .transpose()
                        .map(|contact| contact.map(|contact| (contact_seq, contact))),
                    Err(error) => Some(Err(error)),
                }),
        )
    }

    /// Walks campaign `seq`'s contacts from its cursor: each one in the segment is dealt with
    /// until the pace is spent for this second or the pass's bound is reached. How many it
    /// looked at.
    async fn walk(
        &self,
        seq: u64,
        campaign: &mut Campaign,
        flow: &Flow,
        query: Option<&crate::segments::Query>,
        now: i64,
    ) -> anyhow::Result<usize> {
        let mut walked = 0;
        let mut rows = self.audience(seq, campaign, campaign.cursor);
        while walked < WALK_PER_PASS {
            let Some(row) = rows.next() else {
                campaign.walked = true;
                break;
            };
            let (contact_seq, contact) = row?;
            walked += 1;
            let before = self.tables.campaign_targets.get(seq, contact_seq)?;
            if !self.in_audience(query, &contact)
                || before.as_ref().is_some_and(|target| {
                    target.round == campaign.round && !event::moved(campaign, target, &contact, now)
                })
            {
                campaign.cursor = Some(contact_seq);
                continue;
            }
            let (state, event_ms) = self.decide(campaign, flow, &contact, None)?;
            if state == TargetState::Starting && !self.take(seq, campaign, now)? {
                // The pace is spent for this second: this contact is the next pass's first.
                break;
            }
            campaign.cursor = Some(contact_seq);
            self.deal(seq, campaign, contact_seq, &contact, (state, event_ms))
                .await?;
        }
        Ok(walked)
    }

    /// Whether `contact` passes the campaign's segment (every listed contact does when it
    /// has none).
    fn in_audience(&self, query: Option<&crate::segments::Query>, contact: &Contact) -> bool {
        query.is_none_or(|query| self.contacts.matches(query, contact))
    }

    async fn save(&self, seq: u64, campaign: &Campaign) -> anyhow::Result<()> {
        let mut batch = Batch::new();
        self.tables.campaigns.put_in(&mut batch, seq, campaign)?;
        self.store.commit(batch).await?;
        Ok(())
    }

    /// Runs `f` on campaign `seq`'s memory (made on first use).
    fn with_memory<T>(&self, seq: u64, campaign: &Campaign, f: impl FnOnce(&mut Memory) -> T) -> T {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(memory.entry(seq).or_insert_with(|| Memory {
            pace: Pace::new(campaign.start_rate()),
            revisit_at: i64::MIN,
            rewalk_at: i64::MIN,
            resumed: false,
            day: None,
        }))
    }

    /// Whether campaign `seq`'s pace and daily cap let a start go at `now`; counted when
    /// they do.
    fn take(&self, seq: u64, campaign: &Campaign, now: i64) -> anyhow::Result<bool> {
        if let Some(cap) = campaign.pacing.daily_cap {
            let day = self.with_memory(seq, campaign, |memory| memory.day);
            let day = match day {
                Some(day) if now < day.end => day,
                _ => self.count_day(seq, campaign, now)?,
            };
            let under = day.used < cap;
            self.with_memory(seq, campaign, |memory| memory.day = Some(day));
            if !under {
                return Ok(false);
            }
        }
        let taken = self.with_memory(seq, campaign, |memory| {
            let taken = memory.pace.take(now);
            if taken && let Some(day) = &mut memory.day {
                day.used += 1;
            }
            taken
        });
        Ok(taken)
    }

    /// The local day holding `now` and the starts campaign `seq` made in it (counted from
    /// its targets, so a restart keeps the cap).
    fn count_day(&self, seq: u64, campaign: &Campaign, now: i64) -> anyhow::Result<Day> {
        let zone = campaign
            .repeat
            .as_ref()
            .map(|repeat| repeat.time_zone.as_str());
        let (start, end) = schedule::day_of(zone, now);
        let mut used = 0;
        for row in self.tables.campaign_targets.of(seq) {
            let (_, target) = row?;
            let started = matches!(
                target.state,
                TargetState::Started { .. } | TargetState::Starting
            );
            if started && target.at_ms >= start && target.at_ms < end {
                used += 1;
            }
        }
        Ok(Day { end, used })
    }

    /// How long after `now` campaign `seq` may start another contact: the pace's next
    /// slot, or the next day when the day's cap is spent.
    fn next_in(&self, seq: u64, campaign: &Campaign, now: i64) -> Duration {
        self.with_memory(seq, campaign, |memory| {
            match (memory.day, campaign.pacing.daily_cap) {
                (Some(day), Some(cap)) if day.used >= cap => Duration::from_millis(
                    u64::try_from(day.end - now).unwrap_or(0).clamp(1, 60_000),
                ),
                _ => memory.pace.next_in(now),
            }
        })
    }

    /// Records what the campaign does with one contact, and starts it when that is a start.
    async fn deal(
        &self,
        seq: u64,
        campaign: &Campaign,
        contact_seq: u64,
        contact: &Contact,
        (state, event_ms): (TargetState, Option<i64>),
    ) -> anyhow::Result<()> {
        let starting = state == TargetState::Starting;
        let look_again = match state {
            TargetState::Waiting { until_ms } => Some(until_ms),
            TargetState::Queued => Some(self.clock.now_ms() + QUEUE_RECHECK_MS),
            _ => None,
        };
        if let Some(at) = look_again {
            self.with_memory(seq, campaign, |memory| {
                memory.revisit_at = memory.revisit_at.min(at);
            });
        }
        self.write_target(seq, Some(campaign), (contact_seq, contact), state, event_ms)?;
        if starting {
            self.start(seq, campaign, contact_seq, contact, event_ms)
                .await?;
        }
        Ok(())
    }

    /// What the campaign does with `contact`, and for a campaign of events the event time it
    /// is for: hold out, exclude, wait for the event, queue, or start. `due` is the event time
    /// a held target was waiting for.
    fn decide(
        &self,
        campaign: &Campaign,
        flow: &Flow,
        contact: &Contact,
        due: Option<i64>,
    ) -> anyhow::Result<(TargetState, Option<i64>)> {
        if in_holdout(campaign, contact) {
            return Ok((TargetState::Holdout, None));
        }
        let event_ms = match &campaign.event {
            Some(spec) => match event::timing(spec, contact, due, self.clock.now_ms()) {
                event::Timing::Due(at) => Some(at),
                event::Timing::Later(at) => {
                    return Ok((TargetState::Waiting { until_ms: at }, Some(at)));
                }
                event::Timing::Not(reason, detail) => {
                    return Ok((excluded(reason, detail), None));
                }
            },
            None => None,
        };
        Ok((self.decide_now(campaign, flow, contact)?, event_ms))
    }

    /// What the campaign does with `contact` now: exclude, queue, wait for quiet hours, or
    /// start.
    fn decide_now(
        &self,
        campaign: &Campaign,
        flow: &Flow,
        contact: &Contact,
    ) -> anyhow::Result<TargetState> {
        if let Some((reason, detail)) = self.exclusion(campaign, flow, contact)? {
            return Ok(excluded(reason, detail));
        }
        let key = ConversationKey::new(&self.our_number, &contact.phone);
        let conversation = self.tables.conversations.get(&key)?;
        Ok(match conversation.map(|conversation| conversation.status) {
            Some(Status::HandedOff { queue, .. }) => TargetState::Excluded {
                reason: "with_agent".to_owned(),
                detail: format!("a person has the conversation (queue `{queue}`)"),
            },
            Some(Status::Waiting { step, .. }) => match campaign.start_mode {
                StartMode::Skip => TargetState::Excluded {
                    reason: "active_run".to_owned(),
                    detail: format!("in a run, waiting at `{step}`"),
                },
                StartMode::Queue => TargetState::Queued,
                StartMode::Interrupt => self.window(flow, contact)?,
            },
            _ => self.window(flow, contact)?,
        })
    }

    /// `Starting`, or `Waiting` while the contact's quiet hours hold texts back.
    fn window(&self, flow: &Flow, contact: &Contact) -> anyhow::Result<TargetState> {
        let now = self.clock.now_ms();
        Ok(
            match self
                .outbox
                .quiet_until(&contact.phone, &flow.program, now)?
            {
                Some(until_ms) => TargetState::Waiting { until_ms },
                None => TargetState::Starting,
            },
        )
    }

    /// Why `contact` is left out, when it is.
    fn exclusion(
        &self,
        campaign: &Campaign,
        flow: &Flow,
        contact: &Contact,
    ) -> anyhow::Result<Option<(&'static str, String)>> {
        if let Some(why) = self.tables.suppressions.get(&contact.phone)? {
            return Ok(Some(("opted_out", why)));
        }
        let ledger = self.contacts.ledger();
        let class = match flow.kind {
            FlowKind::Marketing => ConsentClass::Marketing,
            FlowKind::Transactional => ConsentClass::Transactional,
        };
        match ledger.state(&contact.phone, &flow.program, class)? {
            ConsentState::OptedOut { .. } => {
                return Ok(Some((
                    "opted_out",
                    format!("opted out of {}", flow.program),
                )));
            }
            ConsentState::Unknown if flow.kind == FlowKind::Marketing => {
                return Ok(Some((
                    "no_consent",
                    format!("no marketing consent for {}", flow.program),
                )));
            }
            _ => {}
        }
        let fields = start_fields(campaign, contact);
        if let Some(missing) = flow.triggers.fields.iter().find(|field| {
            fields
                .get(*field)
                .is_none_or(|value| value.trim().is_empty())
        }) {
            return Ok(Some((
                "missing_field",
                format!("the flow needs `{missing}`"),
            )));
        }
        let now = self.clock.now_ms();
        if let Some(within) = campaign.exclude_started_within_ms {
            let key = ConversationKey::new(&self.our_number, &contact.phone);
            if let Some(conversation) = self.tables.conversations.get(&key)?
                && conversation.run > 0
                && now - conversation.run_started_at_ms < within
            {
                return Ok(Some((
                    "recently_started",
                    "a run started within the exclusion window".to_owned(),
                )));
            }
        }
        if let Some(for_ms) = campaign.exclude_not_seen_for_ms
            && contact
                .last_inbound_ms
                .is_none_or(|last| now - last > for_ms)
        {
            return Ok(Some((
                "not_seen",
                "no text from the contact within the window".to_owned(),
            )));
        }
        Ok(None)
    }

    /// Records what campaign `seq` did with a contact, with the campaign (its cursor) when
    /// given. Applied, not flushed: a start flushes it with its turn, and a crash before that
    /// leaves the contact undone, to be dealt with again on resume.
    fn write_target(
        &self,
        seq: u64,
        campaign: Option<&Campaign>,
        (contact_seq, contact): (u64, &Contact),
        state: TargetState,
        event_ms: Option<i64>,
    ) -> anyhow::Result<()> {
        let round = match campaign {
            Some(campaign) => campaign.round,
            None => self
                .tables
                .campaign_targets
                .get(seq, contact_seq)?
                .map_or(0, |target| target.round),
        };
        let target = Target {
            phone: contact.phone.clone(),
            state,
            at_ms: self.clock.now_ms(),
            event_ms,
            round,
        };
        let mut batch = Batch::new();
        self.tables
            .campaign_targets
            .put_in(&mut batch, seq, contact_seq, &target)?;
        if let Some(campaign) = campaign {
            self.tables.campaigns.put_in(&mut batch, seq, campaign)?;
        }
        self.store.apply(batch)?;
        Ok(())
    }

    /// Starts the campaign's flow for `contact` and records what it queued.
    async fn start(
        &self,
        seq: u64,
        campaign: &Campaign,
        contact_seq: u64,
        contact: &Contact,
        event_ms: Option<i64>,
    ) -> anyhow::Result<()> {
        let on_active = match campaign.start_mode {
            StartMode::Interrupt => OnActive::Interrupt,
            StartMode::Skip | StartMode::Queue => OnActive::Skip,
        };
        let request = StartRequest {
            flow: campaign.flow.clone(),
            from: self.our_number.clone(),
            to: contact.phone.clone(),
            fields: start_fields(campaign, contact),
            locale: contact.locale.clone(),
            on_active,
            campaign: Some(campaign.id.clone()),
            // One start per contact (per event time, for a campaign of events; per round,
            // for a repeating one).
            event_id: Some(match (event_ms, campaign.round) {
                (Some(at), _) => format!("campaign:{}:{contact_seq}:{at}", campaign.id),
                (None, 0) => format!("campaign:{}:{contact_seq}", campaign.id),
                (None, round) => format!("campaign:{}:{contact_seq}:r{round}", campaign.id),
            }),
            valid_for_ms: campaign.valid_for_ms,
        };
        // Not flushed here: the pass flushes once when it saves the campaign.
        let state = match self.runtime.start_applied(request).await {
            Ok(outcome) if outcome.skipped => TargetState::Excluded {
                reason: "active_run".to_owned(),
                detail: "a run began before the start".to_owned(),
            },
            Ok(outcome) if outcome.duplicate => TargetState::Started {
                message_ids: self.queued_by_campaign(campaign, &contact.phone)?,
            },
            Ok(outcome) => TargetState::Started {
                message_ids: outcome
                    .queued_ids()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            },
            Err(RuntimeError::Store(error)) => return Err(error.into()),
            Err(refused) => TargetState::Excluded {
                reason: "refused".to_owned(),
                detail: refused.to_string(),
            },
        };
        self.write_target(seq, None, (contact_seq, contact), state, event_ms)
    }

    /// The texts queued in the contact's run that `campaign` started (read back from the
    /// transcript after a crash hid the start's answer).
    fn queued_by_campaign(&self, campaign: &Campaign, phone: &str) -> anyhow::Result<Vec<String>> {
        let transcript = self.runtime.transcript(&self.our_number, phone)?;
        let started = transcript.iter().rposition(
            |entry| matches!(&entry.event, Event::Started { flow, .. } if *flow == campaign.flow),
        );
        Ok(transcript
            .iter()
            .skip(started.unwrap_or(transcript.len()))
            .filter_map(|entry| match &entry.event {
                Event::Outbound { message_id, .. } => Some(message_id.clone()),
                _ => None,
            })
            .collect())
    }

    /// Targets a crash left `starting`: started again (a no-op when the first start went in).
    async fn finish_starting(&self, seq: u64, campaign: &Campaign) -> anyhow::Result<()> {
        let starting: Vec<(u64, Option<i64>)> = self
            .tables
            .campaign_targets
            .of(seq)
            .filter_map(|row| match row {
                Ok((contact, target)) if target.state == TargetState::Starting => {
                    Some(Ok((contact, target.event_ms)))
                }
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            })
            .collect::<Result<_, _>>()?;
        for (contact_seq, event_ms) in starting {
            if let Some(contact) = self.contacts.get_by_seq(contact_seq)? {
                self.start(seq, campaign, contact_seq, &contact, event_ms)
                    .await?;
            }
        }
        Ok(())
    }

    /// Looks again at the targets held back (queued behind a run, waiting for quiet hours to
    /// end) whose time has come; whether any are still held.
    async fn revisit(
        &self,
        seq: u64,
        campaign: &Campaign,
        (flow, query): (&Flow, Option<&crate::segments::Query>),
        now: i64,
    ) -> anyhow::Result<bool> {
        let due: Vec<(u64, Option<i64>)> = self
            .tables
            .campaign_targets
            .of(seq)
            .filter_map(|row| match row {
                Ok((contact, target)) => match target.state {
                    TargetState::Queued if now - target.at_ms >= QUEUE_RECHECK_MS => {
                        Some(Ok((contact, target.event_ms)))
                    }
                    TargetState::Waiting { until_ms } if until_ms <= now => {
                        Some(Ok((contact, target.event_ms)))
                    }
                    _ => None,
                },
                Err(error) => Some(Err(error)),
            })
            .collect::<Result<_, _>>()?;
        for (contact_seq, due) in due {
            let Some(contact) = self.contacts.get_by_seq(contact_seq)? else {
                continue;
            };
            let decided = if self.in_audience(query, &contact) {
                self.decide(campaign, flow, &contact, due)?
            } else {
                let reason = excluded("left_segment", "no longer in the segment".to_owned());
                (reason, due)
            };
            if decided.0 == TargetState::Starting && !self.take(seq, campaign, now)? {
                break;
            }
            self.deal(seq, campaign, contact_seq, &contact, decided)
                .await?;
        }
        // When a held target is next worth looking at: the walk writes new ones meanwhile,
        // so the next pass after the walk's writes looks again at the latest.
        let mut next = i64::MAX;
        for row in self.tables.campaign_targets.of(seq) {
            let (_, target) = row?;
            match target.state {
                TargetState::Queued => next = next.min(target.at_ms + QUEUE_RECHECK_MS),
                TargetState::Waiting { until_ms } => next = next.min(until_ms),
                _ => {}
            }
        }
        let next = next.max(now + 1);
        self.with_memory(seq, campaign, |memory| memory.revisit_at = next);
        Ok(next != i64::MAX)
    }
}

/// What the worker keeps in memory for one campaign.
#[derive(Debug)]
pub(super) struct Memory {
    pace: Pace,
    /// When held targets are next worth a look.
    revisit_at: i64,
    /// When a campaign of events walks its segment again.
    rewalk_at: i64,
    /// Starts a crash left half done were finished (once per process).
    resumed: bool,
    /// For a daily cap: the day being counted.
    day: Option<Day>,
}

/// A daily cap's day: when it ends, and the starts made in it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Day {
    end: i64,
    used: u64,
}

/// An exclusion for `reason`.
fn excluded(reason: &str, detail: String) -> TargetState {
    TargetState::Excluded {
        reason: reason.to_owned(),
        detail,
    }
}

/// The fields a start gets: the contact's, then the campaign's (which win), and `campaign`.
fn start_fields(campaign: &Campaign, contact: &Contact) -> BTreeMap<String, String> {
    let mut fields = Contacts::flow_fields(contact);
    fields.extend(campaign.fields.clone());
    fields.insert(
        "campaign".to_owned(),
        campaign.key.clone().unwrap_or_else(|| campaign.id.clone()),
    );
    fields
}

/// Whether `contact` is in `campaign`'s control group: sticky (the same answer every time for
/// the same campaign and contact), and as random as a hash.
fn in_holdout(campaign: &Campaign, contact: &Contact) -> bool {
    if campaign.holdout_percent <= 0.0 {
        return false;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    campaign.id.hash(&mut hasher);
    contact.id.hash(&mut hasher);
    #[allow(clippy::cast_precision_loss)]
    let draw = (hasher.finish() % 10_000) as f64 / 100.0;
    draw < campaign.holdout_percent
}
