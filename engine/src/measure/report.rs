//! The report: the funnel over a time range (for a flow, a campaign, or everything), the rates
//! with their definitions, reply and response times, the variants with the A/B verdict, and
//! the lift against a campaign's holdout. Computed from the funnel events in one pass over the
//! range, so it is exact for whatever range is asked.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::verdict::{self, Difference, VariantCounts, Verdict, VerdictSettings};
use super::{MeasureError, Measurement};
use crate::store::campaigns::{TargetState, campaign_seq};
use crate::store::funnel::{DailyCount, DailyKey, FunnelEvent, FunnelKind};

/// What a report covers.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    /// Only this flow's events.
    pub flow: Option<String>,
    /// Only this campaign's (its id, or its key).
    pub campaign: Option<String>,
    /// From (inclusive), ms.
    pub since_ms: i64,
    /// To (exclusive), ms.
    pub until_ms: i64,
    /// The variants' weights as the split has them (for the sample-ratio check); even
    /// when empty.
    pub weights: Vec<(String, f64)>,
    /// Judge the variants with the always-valid confidence sequence (safe to look daily).
    pub sequential: bool,
}

/// The report, as `smsflow report --format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The range, RFC 3339.
    pub since: String,
    /// Its end.
    pub until: String,
    /// The flow it is limited to.
    pub flow: Option<String>,
    /// The campaign it is limited to (its id).
    pub campaign: Option<String>,
    /// Counts.
    pub funnel: Funnel,
    /// Rates, each defined in [`DEFINITIONS`].
    pub rates: BTreeMap<&'static str, Option<f64>>,
    /// Reply and response times, in seconds.
    pub timing: BTreeMap<&'static str, Timing>,
    /// Per A/B variant.
    pub variants: Vec<VariantRow>,
    /// The A/B verdict on conversion (`not_enough_data` with fewer than two variants).
    pub verdict: Verdict,
    /// The campaign's lift over its holdout.
    pub holdout: Option<Holdout>,
    /// Per UTC day.
    pub daily: Vec<DailyRow>,
    /// The attribution windows beside every attributed number.
    pub windows: BTreeMap<&'static str, String>,
    /// What every number means: numerator over denominator.
    pub definitions: BTreeMap<&'static str, &'static str>,
    /// Days before this one were read from their daily roll-ups (their raw events are past
    /// `[measurement] keep_events`): counts are exact, contacts are counted once per day (a
    /// contact active on two days counts twice), and no response times come from them.
    pub rolled_up_before: Option<String>,
}

/// The funnel's counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Funnel {
    /// Texts queued.
    pub queued: u64,
    /// Texts the provider took.
    pub sent: u64,
    /// Texts delivered.
    pub delivered: u64,
    /// Texts failed (not sent, or undelivered).
    pub failed: u64,
    /// Texts the gate blocked.
    pub blocked: u64,
    /// Contacts with at least one delivered text.
    pub reached: u64,
    /// Contacts who replied (keywords the host answers do not count).
    pub replied: u64,
    /// Contacts who opened a tracked link.
    pub clicked: u64,
    /// Conversions.
    pub conversions: u64,
    /// Contacts who converted.
    pub converted: u64,
    /// The conversions' value, per currency.
    pub revenue: BTreeMap<String, f64>,
    /// Contacts who opted out.
    pub opted_out: u64,
    /// Conversations handed to a person.
    pub handed_off: u64,
    /// Handed-off conversations a person answered.
    pub first_responses: u64,
    /// Handed-off conversations a person resolved.
    pub resolved: u64,
}

/// A median and a 90th percentile.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    /// How many were measured.
    pub count: u64,
    /// The median, seconds.
    pub median_s: Option<f64>,
    /// The 90th percentile, seconds.
    pub p90_s: Option<f64>,
}

/// One variant's numbers (contacts).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VariantRow {
    /// Its name (`holdout` for the control group that got nothing).
    pub name: String,
    /// Contacts assigned (a text queued for them in this variant; the holdout's size).
    pub assigned: u64,
    /// Contacts reached.
    pub delivered: u64,
    /// Contacts who replied.
    pub replied: u64,
    /// Contacts who clicked.
    pub clicked: u64,
    /// Contacts who converted.
    pub converted: u64,
    /// Contacts who opted out.
    pub opted_out: u64,
    /// The value of their conversions (all currencies added: see `funnel.revenue`).
    pub revenue: f64,
}

/// A campaign's treated contacts against its holdout.
#[derive(Debug, Clone, Serialize)]
pub struct Holdout {
    /// Contacts held out.
    pub held_out: u64,
    /// Of them, how many converted anyway (any conversion in the range).
    pub held_out_converted: u64,
    /// Contacts the campaign started.
    pub treated: u64,
    /// Of them, how many converted (any conversion in the range, attributed or not).
    pub treated_converted: u64,
    /// Treated rate minus held-out rate, with its interval and p-value.
    pub lift: Difference,
}

/// One UTC day.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DailyRow {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Texts sent.
    pub sent: u64,
    /// Texts delivered.
    pub delivered: u64,
    /// Contacts reached that day.
    pub reached: u64,
    /// Contacts who replied that day.
    pub replied: u64,
    /// Contacts who clicked that day.
    pub clicked: u64,
    /// Contacts who converted that day.
    pub converted: u64,
    /// Contacts who opted out that day.
    pub opted_out: u64,
}

/// Every number's definition.
pub const DEFINITIONS: [(&str, &str); 14] = [
    ("delivery_rate", "texts delivered / texts sent"),
    (
        "reply_rate",
        "contacts who replied (not counting STOP, HELP and other keywords the host answers) / contacts reached (a text delivered)",
    ),
    ("opt_out_rate", "contacts who opted out / contacts reached"),
    (
        "click_rate",
        "contacts who opened a tracked link / contacts reached",
    ),
    (
        "conversion_rate",
        "contacts with a conversion attributed to these texts (or reaching a flow's conversion step) / contacts reached",
    ),
    (
        "revenue_per_delivered",
        "conversions' value / texts delivered",
    ),
    (
        "revenue_per_conversation",
        "conversions' value / contacts reached",
    ),
    (
        "handoff_rate",
        "conversations handed to a person / contacts who replied",
    ),
    (
        "resolution_rate",
        "handed-off conversations resolved / handed off",
    ),
    (
        "time_to_our_reply",
        "from a contact's text to our next text to them (seconds; median and p90)",
    ),
    (
        "time_to_their_reply",
        "from our first text to a contact to their first reply after it (seconds)",
    ),
    (
        "first_agent_response",
        "from the handoff (not the bot's first text) to a person's first answer (seconds)",
    ),
    (
        "attribution",
        "last touch: the text the contact last clicked within the click window, else the one last delivered within the delivery window",
    ),
    (
        "verdict",
        "Beta-Binomial probability to be best names a winner (>= 90%, >= 500 reached per variant), guarded by the difference's interval excluding 0; an SRM (chi-squared p < 0.001 against the weights) names none",
    ),
];

/// How far back a report looks when not told.
const DEFAULT_SPAN_MS: i64 = 30 * 86_400_000;

/// A report's start: RFC 3339, or a span back from `now_ms` (`7d`); 30 days back when absent.
///
/// # Errors
///
/// A message saying what to write.
pub fn parse_since(text: Option<&str>, now_ms: i64) -> Result<i64, String> {
    let Some(text) = text else {
        return Ok(now_ms - DEFAULT_SPAN_MS);
    };
    if let Some(at) = crate::contacts::fields::parse_datetime(text) {
        return Ok(at);
    }
    humantime::parse_duration(text)
        .map(|span| now_ms - i64::try_from(span.as_millis()).unwrap_or(i64::MAX / 2))
        .map_err(|_| format!("`{text}` is not a time or a span; write 2026-03-01 or 7d"))
}

impl Measurement {
    /// The report for `filter`.
    ///
    /// # Errors
    ///
    /// [`MeasureError::Unknown`] for an unknown campaign, or a store failure.
    pub fn report(&self, filter: &ReportFilter) -> Result<Report, MeasureError> {
        let campaign = filter
            .campaign
            .as_deref()
            .map(|campaign| self.campaign_id(campaign))
            .transpose()?;
        let mut tally = Tally::default();
        for event in self.tables.funnel.between(filter.since_ms, filter.until_ms) {
            let event = event?;
            let wanted = filter
                .flow
                .as_ref()
                .is_none_or(|flow| event.flow.as_ref() == Some(flow))
                && campaign
                    .as_ref()
                    .is_none_or(|id| event.campaign.as_ref() == Some(id));
            tally.add(&event, wanted);
        }
        let days = (
            filter.since_ms.div_euclid(DAY_MS),
            filter.until_ms.div_euclid(DAY_MS) + 1,
        );
        for row in self.tables.funnel_daily.days(days.0, days.1) {
            let (key, count) = row?;
            let wanted = filter.flow.as_ref().is_none_or(|flow| key.flow == *flow)
                && campaign.as_ref().is_none_or(|id| key.campaign == *id);
            if wanted {
                tally.add_rolled(&key, &count);
            }
        }
        let holdout = match &campaign {
            Some(id) => self.holdout(id, &tally)?,
            None => None,
        };
        Ok(tally.finish(filter, campaign, holdout, &self.config))
    }

    /// The id of campaign `campaign` (given by id or key).
    fn campaign_id(&self, campaign: &str) -> Result<String, MeasureError> {
        let seq = match campaign_seq(campaign) {
            Some(seq) => Some(seq),
            None => self.tables.campaign_keys.get(campaign)?,
        };
        match seq
            .map(|seq| self.tables.campaigns.get(seq))
            .transpose()?
            .flatten()
        {
            Some(found) => Ok(found.id),
            None => Err(MeasureError::Unknown(format!(
                "campaign: no campaign has the id or key `{campaign}`"
            ))),
        }
    }

    /// Campaign `id`'s treated contacts against its holdout, by who converted in the range.
    fn holdout(&self, id: &str, tally: &Tally) -> Result<Option<Holdout>, MeasureError> {
        let Some(seq) = campaign_seq(id) else {
            return Ok(None);
        };
        let (mut held, mut treated) = (BTreeSet::new(), BTreeSet::new());
        for row in self.tables.campaign_targets.of(seq) {
            let (_, target) = row?;
            match target.state {
                TargetState::Holdout => held.insert(target.phone),
                TargetState::Started { .. } => treated.insert(target.phone),
                _ => false,
            };
        }
        if held.is_empty() {
            return Ok(None);
        }
        let converted = |group: &BTreeSet<String>| {
            group
                .iter()
                .filter(|phone| tally.any_converted.contains(*phone))
                .count() as u64
        };
        let (held_out, held_out_converted) = (held.len() as u64, converted(&held));
        let (treated_n, treated_converted) = (treated.len() as u64, converted(&treated));
        Ok(Some(Holdout {
            held_out,
            held_out_converted,
            treated: treated_n,
            treated_converted,
            lift: verdict::two_proportion(
                (held_out_converted, held_out),
                (treated_converted, treated_n),
                0.95,
            ),
        }))
    }
}

/// A day in ms.
const DAY_MS: i64 = 86_400_000;

/// Contacts by what happened to them, in one group (the whole report, a variant, a day).
#[derive(Debug, Default)]
struct Group {
    assigned: BTreeSet<String>,
    reached: BTreeSet<String>,
    replied: BTreeSet<String>,
    clicked: BTreeSet<String>,
    converted: BTreeSet<String>,
    opted_out: BTreeSet<String>,
    revenue: f64,
    /// Contacts from rolled-up days, by kind (once per day each).
    rolled: BTreeMap<FunnelKind, u64>,
}

impl Group {
    fn add(&mut self, event: &FunnelEvent) {
        let contact = event.contact.clone();
        match event.kind {
            FunnelKind::Queued => self.assigned.insert(contact),
            FunnelKind::Delivered => self.reached.insert(contact),
            FunnelKind::Replied => self.replied.insert(contact),
            FunnelKind::Clicked => self.clicked.insert(contact),
            FunnelKind::Converted => {
                self.revenue += event.value.unwrap_or(0.0);
                self.converted.insert(contact)
            }
            FunnelKind::OptedOut => self.opted_out.insert(contact),
            _ => false,
        };
    }

    /// How many contacts `kind` happened to: those seen in raw events, and those of the
    /// rolled-up days.
    fn distinct(&self, kind: FunnelKind) -> u64 {
        let seen = match kind {
            FunnelKind::Queued => &self.assigned,
            FunnelKind::Delivered => &self.reached,
            FunnelKind::Replied => &self.replied,
            FunnelKind::Clicked => &self.clicked,
            FunnelKind::Converted => &self.converted,
            FunnelKind::OptedOut => &self.opted_out,
            _ => return self.rolled.get(&kind).copied().unwrap_or(0),
        };
        seen.len() as u64 + self.rolled.get(&kind).copied().unwrap_or(0)
    }

    /// A rolled-up day's slice.
    fn add_rolled(&mut self, kind: FunnelKind, count: &DailyCount) {
        *self.rolled.entry(kind).or_default() += count.contacts;
        if kind == FunnelKind::Converted {
            self.revenue += count.value.values().sum::<f64>();
        }
    }

    fn row(&self, name: &str) -> VariantRow {
        VariantRow {
            name: name.to_owned(),
            assigned: self.distinct(FunnelKind::Queued),
            delivered: self.distinct(FunnelKind::Delivered),
            replied: self.distinct(FunnelKind::Replied),
            clicked: self.distinct(FunnelKind::Clicked),
            converted: self.distinct(FunnelKind::Converted),
            opted_out: self.distinct(FunnelKind::OptedOut),
            revenue: self.revenue,
        }
    }
}

/// Everything one pass over the events gathers.
#[derive(Debug, Default)]
struct Tally {
    funnel: Funnel,
    all: Group,
    variants: BTreeMap<String, Group>,
    days: BTreeMap<i64, (Group, u64, u64)>,
    /// Every contact with a conversion in the range, whatever it is attributed to (for the
    /// holdout's comparison).
    any_converted: BTreeSet<String>,
    times: Times,
    /// The latest rolled-up day read, if any.
    rolled_until: Option<i64>,
}

impl Tally {
    fn add(&mut self, event: &FunnelEvent, wanted: bool) {
        if event.kind == FunnelKind::Converted {
            self.any_converted.insert(event.contact.clone());
        }
        if !wanted {
            return;
        }
        self.count(event);
        self.all.add(event);
        if let Some(variant) = &event.variant {
            self.variants.entry(variant.clone()).or_default().add(event);
        }
        let day = self
            .days
            .entry(event.at_ms.div_euclid(86_400_000))
            .or_default();
        day.0.add(event);
        match event.kind {
            FunnelKind::Sent => day.1 += 1,
            FunnelKind::Delivered => day.2 += 1,
            _ => {}
        }
        self.times.add(event);
    }

    /// A rolled-up day's slice, as its raw events would have counted.
    fn add_rolled(&mut self, key: &DailyKey, count: &DailyCount) {
        let Some(kind) = FunnelKind::from_name(&key.kind) else {
            return;
        };
        self.rolled_until = Some(self.rolled_until.unwrap_or(key.day).max(key.day + 1));
        self.count_n(kind, count.events);
        for (currency, value) in &count.value {
            *self.funnel.revenue.entry(currency.clone()).or_default() += value;
        }
        self.all.add_rolled(kind, count);
        if !key.variant.is_empty() {
            self.variants
                .entry(key.variant.clone())
                .or_default()
                .add_rolled(kind, count);
        }
        let day = self.days.entry(key.day).or_default();
        day.0.add_rolled(kind, count);
        match kind {
            FunnelKind::Sent => day.1 += count.events,
            FunnelKind::Delivered => day.2 += count.events,
            _ => {}
        }
    }

    fn count(&mut self, event: &FunnelEvent) {
        self.count_n(event.kind, 1);
        if event.kind == FunnelKind::Converted {
            let currency = event.currency.clone().unwrap_or_else(|| "-".to_owned());
            *self.funnel.revenue.entry(currency).or_default() += event.value.unwrap_or(0.0);
        }
    }

    /// `n` events of `kind` in the funnel's counts.
    fn count_n(&mut self, kind: FunnelKind, n: u64) {
        let funnel = &mut self.funnel;
        let field = match kind {
            FunnelKind::Queued => &mut funnel.queued,
            FunnelKind::Sent => &mut funnel.sent,
            FunnelKind::Delivered => &mut funnel.delivered,
            FunnelKind::Failed => &mut funnel.failed,
            FunnelKind::Blocked => &mut funnel.blocked,
            FunnelKind::HandedOff => &mut funnel.handed_off,
            FunnelKind::FirstResponse => &mut funnel.first_responses,
            FunnelKind::Resolved => &mut funnel.resolved,
            FunnelKind::Converted => &mut funnel.conversions,
            _ => return,
        };
        *field += n;
    }

    fn finish(
        mut self,
        filter: &ReportFilter,
        campaign: Option<String>,
        holdout: Option<Holdout>,
        config: &crate::config::MeasurementConfig,
    ) -> Report {
        let funnel = &mut self.funnel;
        funnel.reached = self.all.distinct(FunnelKind::Delivered);
        funnel.replied = self.all.distinct(FunnelKind::Replied);
        funnel.clicked = self.all.distinct(FunnelKind::Clicked);
        funnel.converted = self.all.distinct(FunnelKind::Converted);
        funnel.opted_out = self.all.distinct(FunnelKind::OptedOut);
        let rates = rates(funnel, self.all.revenue);
        let mut variants: Vec<VariantRow> = self
            .variants
            .iter()
            .map(|(name, group)| group.row(name))
            .collect();
        let verdict = judge(&variants, filter);
        if let Some(holdout) = &holdout {
            variants.push(VariantRow {
                name: "holdout".to_owned(),
                assigned: holdout.held_out,
                converted: holdout.held_out_converted,
                ..VariantRow::default()
            });
        }
        Report {
            since: crate::compliance::gate::rfc3339(filter.since_ms),
            until: crate::compliance::gate::rfc3339(filter.until_ms),
            flow: filter.flow.clone(),
            campaign,
            funnel: self.funnel,
            rates,
            timing: self.times.finish(),
            variants,
            verdict,
            holdout,
            daily: daily(&self.days),
            windows: BTreeMap::from([
                (
                    "click",
                    humantime::format_duration(config.click_window).to_string(),
                ),
                (
                    "delivery",
                    humantime::format_duration(config.delivery_window).to_string(),
                ),
            ]),
            definitions: DEFINITIONS.into_iter().collect(),
            rolled_up_before: self
                .rolled_until
                .map(|day| crate::compliance::gate::rfc3339(day * DAY_MS)),
        }
    }
}

/// `numerator / denominator`, or nothing when nothing was counted.
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ratio(numerator: f64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator / denominator as f64)
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn rates(funnel: &Funnel, revenue: f64) -> BTreeMap<&'static str, Option<f64>> {
    let count = |n: u64| n as f64;
    BTreeMap::from([
        ("delivery_rate", ratio(count(funnel.delivered), funnel.sent)),
        ("reply_rate", ratio(count(funnel.replied), funnel.reached)),
        (
            "opt_out_rate",
            ratio(count(funnel.opted_out), funnel.reached),
        ),
        ("click_rate", ratio(count(funnel.clicked), funnel.reached)),
        (
            "conversion_rate",
            ratio(count(funnel.converted), funnel.reached),
        ),
        ("revenue_per_delivered", ratio(revenue, funnel.delivered)),
        ("revenue_per_conversation", ratio(revenue, funnel.reached)),
        (
            "handoff_rate",
            ratio(count(funnel.handed_off), funnel.replied),
        ),
        (
            "resolution_rate",
            ratio(count(funnel.resolved), funnel.handed_off),
        ),
    ])
}

/// The verdict on the variants' conversion per contact reached.
fn judge(variants: &[VariantRow], filter: &ReportFilter) -> Verdict {
    let counts: Vec<VariantCounts> = variants
        .iter()
        .map(|row| VariantCounts {
            name: row.name.clone(),
            trials: row.delivered,
            successes: row.converted,
        })
        .collect();
    let weights: Vec<f64> = variants
        .iter()
        .map(|row| {
            filter
                .weights
                .iter()
                .find(|(name, _)| *name == row.name)
                .map_or(
                    if filter.weights.is_empty() { 1.0 } else { 0.0 },
                    |(_, w)| *w,
                )
        })
        .collect();
    let settings = VerdictSettings {
        sequential: filter.sequential,
        ..VerdictSettings::default()
    };
    verdict::verdict(&counts, &weights, &settings)
}

fn daily(days: &BTreeMap<i64, (Group, u64, u64)>) -> Vec<DailyRow> {
    days.iter()
        .map(|(day, (group, sent, delivered))| DailyRow {
            day: crate::compliance::gate::rfc3339(day * 86_400_000)[..10].to_owned(),
            sent: *sent,
            delivered: *delivered,
            reached: group.distinct(FunnelKind::Delivered),
            replied: group.distinct(FunnelKind::Replied),
            clicked: group.distinct(FunnelKind::Clicked),
            converted: group.distinct(FunnelKind::Converted),
            opted_out: group.distinct(FunnelKind::OptedOut),
        })
        .collect()
}

/// Reply and response times, gathered in time order.
#[derive(Debug, Default)]
struct Times {
    /// A contact's text we have not answered yet: when it came.
    unanswered: HashMap<String, i64>,
    /// Our first text to a contact they have not answered yet.
    awaiting: HashMap<String, i64>,
    /// Contacts who have replied to us (only their first reply counts).
    answered: BTreeSet<String>,
    /// A handoff no person has answered yet.
    handed: HashMap<String, i64>,
    ours: Vec<i64>,
    theirs: Vec<i64>,
    agents: Vec<i64>,
}

impl Times {
    fn add(&mut self, event: &FunnelEvent) {
        let contact = &event.contact;
        match event.kind {
            FunnelKind::Replied => {
                self.unanswered
                    .entry(contact.clone())
                    .or_insert(event.at_ms);
                if let Some(sent) = self.awaiting.remove(contact) {
                    self.theirs.push(event.at_ms - sent);
                    self.answered.insert(contact.clone());
                }
            }
            FunnelKind::Queued => {
                if let Some(came) = self.unanswered.remove(contact) {
                    self.ours.push(event.at_ms - came);
                }
            }
            FunnelKind::Sent if !self.answered.contains(contact) => {
                self.awaiting.entry(contact.clone()).or_insert(event.at_ms);
            }
            FunnelKind::HandedOff => {
                self.handed.insert(contact.clone(), event.at_ms);
            }
            FunnelKind::FirstResponse => {
                if let Some(at) = self.handed.remove(contact) {
                    self.agents.push(event.at_ms - at);
                }
            }
            _ => {}
        }
    }

    fn finish(self) -> BTreeMap<&'static str, Timing> {
        BTreeMap::from([
            ("time_to_our_reply", timing(self.ours)),
            ("time_to_their_reply", timing(self.theirs)),
            ("first_agent_response", timing(self.agents)),
        ])
    }
}

/// The median and p90 of `ms`, in seconds (nearest rank).
#[allow(clippy::cast_precision_loss)] // durations far below 2^52 ms
fn timing(mut ms: Vec<i64>) -> Timing {
    ms.sort_unstable();
    let rank = |q: f64| -> Option<f64> {
        if ms.is_empty() {
            return None;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let index = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
        Some(ms[index] as f64 / 1000.0)
    };
    Timing {
        count: ms.len() as u64,
        median_s: rank(0.5),
        p90_s: rank(0.9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_median_and_p90_by_nearest_rank() {
        let t = timing((1..=10).map(|s| s * 1000).collect());
        assert_eq!((t.count, t.median_s, t.p90_s), (10, Some(5.0), Some(9.0)));
        assert_eq!(timing(Vec::new()).median_s, None);
    }
}
