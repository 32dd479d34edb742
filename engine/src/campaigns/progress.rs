//! A campaign's progress, counted from its target rows and the outbox rows of the texts each
//! start queued (computed when read, so it never drifts from what happened).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{CampaignError, Campaigns, Target, TargetState};
use crate::outbound::{DeliveryStatus, Outbox};

impl Campaigns {
    /// The campaign's progress: `{"state", "targeted", "excluded": {"<reason>": n},
    /// "holdout", "queued", "started", "sent", "deferred", "blocked", "failed"}`. Texts count
    /// by the outbox's latest word on the texts each start queued.
    ///
    /// # Errors
    ///
    /// A store failure, or an unknown id.
    pub fn progress(&self, id: &str) -> Result<Value, CampaignError> {
        let (seq, campaign) = self.get(id)?;
        let mut counts = Counts::default();
        for row in self.tables.campaign_targets.of(seq) {
            let (_, target) = row?;
            counts.add(&target, &self.outbox)?;
        }
        Ok(json!({
            "id": campaign.id,
            "key": campaign.key,
            "flow": campaign.flow,
            "segment": campaign.segment,
            "audience": if campaign.listed { "list" } else { "segment" },
            "state": campaign.state.name(),
            "start_at": crate::compliance::gate::rfc3339(campaign.start_at_ms),
            "repeat": campaign.repeat,
            "round": campaign.round,
            "messages_per_second": campaign.start_rate(),
            "daily_cap": campaign.pacing.daily_cap,
            "targeted": counts.targeted,
            "excluded": counts.excluded,
            "holdout": counts.holdout,
            "queued": counts.queued,
            "started": counts.started,
            "sent": counts.sent,
            "deferred": counts.deferred,
            "blocked": counts.blocked,
            "failed": counts.failed,
        }))
    }
}

/// A campaign's counts, gathered target by target.
#[derive(Debug, Default)]
struct Counts {
    targeted: u64,
    excluded: BTreeMap<String, u64>,
    holdout: u64,
    queued: u64,
    started: u64,
    sent: u64,
    deferred: u64,
    blocked: u64,
    failed: u64,
}

impl Counts {
    fn add(&mut self, target: &Target, outbox: &Outbox) -> anyhow::Result<()> {
        self.targeted += 1;
        match &target.state {
            TargetState::Excluded { reason, .. } => {
                *self.excluded.entry(reason.clone()).or_default() += 1;
            }
            TargetState::Holdout => self.holdout += 1,
            TargetState::Queued | TargetState::Starting => self.queued += 1,
            TargetState::Waiting { .. } => self.deferred += 1,
            TargetState::Started { message_ids } => {
                self.started += 1;
                for id in message_ids {
                    if let Some(message) = outbox.message(id)? {
                        self.add_text(&message);
                    }
                }
            }
        }
        Ok(())
    }

    fn add_text(&mut self, message: &crate::outbound::OutboundMessage) {
        let deferred = message
            .gate
            .as_ref()
            .is_some_and(|gate| gate.decision == "deferred");
        match &message.status {
            DeliveryStatus::Sent => self.sent += 1,
            DeliveryStatus::Blocked { .. } => self.blocked += 1,
            DeliveryStatus::Failed { .. } => self.failed += 1,
            DeliveryStatus::Queued | DeliveryStatus::Sending { .. } if deferred => {
                self.deferred += 1
            }
            DeliveryStatus::Queued | DeliveryStatus::Sending { .. } => {}
        }
    }
}
