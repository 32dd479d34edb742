//! Retention: funnel events older than `[measurement] keep_events` are rolled up per day
//! ([`crate::store::funnel::FunnelDaily`]) and deleted, so the store stops growing with
//! history and reports over old ranges read a few rows per day.
//!
//! A day is rolled up in one batch with a marker row, then its raw events are deleted in
//! bounded batches: a crash between the two finds the marker and only deletes, so nothing is
//! counted twice or lost.

use std::collections::{BTreeMap, HashSet};

use super::Measurement;
use crate::store::funnel::{DailyCount, DailyKey, FunnelKind, rolled};
use crate::store::{Batch, StoreError};

/// A day in ms.
const DAY_MS: i64 = 86_400_000;

/// Events one delete batch removes at most: traffic never waits long on the store.
const DELETE_BATCH: usize = 5_000;

/// What a compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Days rolled up.
    pub days: u64,
    /// Raw events deleted.
    pub events: u64,
}

impl Measurement {
    /// Rolls up and deletes the funnel events of every UTC day that ended before
    /// `now_ms - keep_events`.
    ///
    /// # Errors
    ///
    /// A store failure (the next run goes on where this one stopped).
    pub async fn compact(&self, now_ms: i64) -> Result<Compacted, StoreError> {
        let keep = i64::try_from(self.config.keep_events.as_millis()).unwrap_or(i64::MAX);
        let horizon = now_ms.saturating_sub(keep).div_euclid(DAY_MS);
        let mut done = Compacted::default();
        while let Some(oldest) = self.tables.funnel.oldest_ms()? {
            let day = oldest.div_euclid(DAY_MS);
            if day >= horizon {
                break;
            }
            if !self.tables.funnel_daily.rolled(day)? {
                self.roll_up(day).await?;
                done.days += 1;
            }
            done.events += self.delete_day(day).await?;
        }
        Ok(done)
    }

    /// Writes day `day`'s counts and its marker, in one batch.
    async fn roll_up(&self, day: i64) -> Result<(), StoreError> {
        let mut counts: BTreeMap<DailyKey, (DailyCount, HashSet<String>)> = BTreeMap::new();
        for row in self
            .tables
            .funnel
            .keyed_between(day * DAY_MS, (day + 1) * DAY_MS)
        {
            let (_, event) = row?;
            let key = DailyKey {
                day,
                flow: event.flow.clone().unwrap_or_default(),
                campaign: event.campaign.clone().unwrap_or_default(),
                variant: event.variant.clone().unwrap_or_default(),
                kind: event.kind.as_str().to_owned(),
            };
            let (count, contacts) = counts.entry(key).or_default();
            count.events += 1;
            contacts.insert(event.contact.clone());
            if event.kind == FunnelKind::Converted
                && let (Some(value), Some(currency)) = (event.value, &event.currency)
            {
                *count.value.entry(currency.clone()).or_default() += value;
            }
        }
        let mut batch = Batch::new();
        for (key, (mut count, contacts)) in counts {
            count.contacts = contacts.len() as u64;
            self.tables.funnel_daily.put_in(&mut batch, &key, &count)?;
        }
        self.tables
            .funnel_daily
            .put_in(&mut batch, &rolled(day), &DailyCount::default())?;
        self.store.commit(batch).await
    }

    /// Deletes day `day`'s raw events, [`DELETE_BATCH`] at a time; how many.
    async fn delete_day(&self, day: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        loop {
            let rows: Vec<_> = self
                .tables
                .funnel
                .keyed_between(day * DAY_MS, (day + 1) * DAY_MS)
                .take(DELETE_BATCH)
                .collect::<Result<_, _>>()?;
            if rows.is_empty() {
                return Ok(deleted);
            }
            let mut batch = Batch::new();
            for (key, event) in &rows {
                self.tables.funnel.remove_in(&mut batch, *key, event);
            }
            self.store.commit(batch).await?;
            deleted += rows.len() as u64;
        }
    }

    /// Compacts once an hour until the task is dropped.
    pub async fn run(self: std::sync::Arc<Self>) {
        loop {
            match self.compact(self.clock.now_ms()).await {
                Ok(done) if done.events > 0 => tracing::info!(
                    days = done.days,
                    events = done.events,
                    "funnel events past their retention rolled up"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!("funnel retention: {error}; trying again in an hour"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    }
}
