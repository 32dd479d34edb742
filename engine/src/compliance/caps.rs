//! Frequency caps and the loop guard, over a log of what went to each number.
//!
//! The log lives in [`crate::store::Trees::send_log`] under `<contact> 0x00 <time key> <seq>`,
//! so one number's last 24 hours are one short range scan. Entries older than the longest
//! window are pruned as new ones are written.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::store::codec;

/// The rolling window every cap counts over.
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The `[compliance.caps]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapsConfig {
    /// Texts one program may send one number in a rolling 24 hours.
    #[serde(default = "default_per_program")]
    pub per_program: u32,
    /// Texts all programs together may send one number in a rolling 24 hours.
    #[serde(default = "default_per_number")]
    pub per_number: u32,
    /// Marketing texts on the same subject (one flow) to a number in a state listed here, per
    /// rolling 24 hours: Florida (Fla. Stat. 501.616(6)(b)) and Maryland (Md. Com. Law
    /// 14-4503) allow 3.
    #[serde(default = "default_same_subject")]
    pub same_subject_by_state: BTreeMap<String, u32>,
    /// The loop guard: at most this many identical texts to one number within
    /// `loop_window`; more is a flow or plugin stuck in a loop.
    #[serde(default = "default_loop_max")]
    pub loop_max_identical: u32,
    /// The loop guard's window.
    #[serde(default = "default_loop_window", with = "super::duration_serde")]
    pub loop_window: Duration,
}

impl Default for CapsConfig {
    fn default() -> Self {
        Self {
            per_program: default_per_program(),
            per_number: default_per_number(),
            same_subject_by_state: default_same_subject(),
            loop_max_identical: default_loop_max(),
            loop_window: default_loop_window(),
        }
    }
}

fn default_per_program() -> u32 {
    10
}

fn default_per_number() -> u32 {
    20
}

fn default_same_subject() -> BTreeMap<String, u32> {
    BTreeMap::from([("FL".to_owned(), 3), ("MD".to_owned(), 3)])
}

fn default_loop_max() -> u32 {
    2
}

fn default_loop_window() -> Duration {
    Duration::from_secs(10 * 60)
}

/// One text in the send log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentText {
    /// When the provider took it.
    pub at_ms: i64,
    /// Its program.
    pub program: Option<String>,
    /// Its subject (the flow that sent it).
    pub subject: Option<String>,
    /// Whether it was marketing.
    pub marketing: bool,
    /// SHA-256 of the body, for the loop guard.
    pub body_sha256: String,
}

impl SentText {
    /// The log entry for `body`.
    pub fn new(
        at_ms: i64,
        program: Option<&str>,
        subject: Option<&str>,
        marketing: bool,
        body: &str,
    ) -> Self {
        Self {
            at_ms,
            program: program.map(str::to_owned),
            subject: subject.map(str::to_owned),
            marketing,
            body_sha256: hex::encode(Sha256::digest(body.as_bytes())),
        }
    }
}

/// What the caps say about one more text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapCheck {
    /// Under every cap.
    Under,
    /// A cap is full until `until_ms`, when its oldest text leaves the window.
    FullUntil {
        /// When a slot frees.
        until_ms: i64,
        /// Which cap.
        reason: String,
    },
    /// The loop guard: the same text went to the number too often just now.
    Loop {
        /// What the guard saw.
        reason: String,
    },
}

/// The send log over its tree.
#[derive(Debug, Clone)]
pub struct SendLog {
    tree: sled::Tree,
}

fn prefix(number: &str) -> Vec<u8> {
    let mut key = number.as_bytes().to_vec();
    key.push(0);
    key
}

impl SendLog {
    /// The log over `tree` (normally [`crate::store::Trees::send_log`]).
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    /// Records that `text` went to `number`, and prunes the number's entries that left the
    /// window.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn record(&self, number: &str, seq: u64, text: &SentText) -> anyhow::Result<()> {
        let mut key = prefix(number);
        key.extend_from_slice(&codec::time_key(text.at_ms));
        key.extend_from_slice(&seq.to_be_bytes());
        self.tree
            .insert(key, codec::encode(text)?)
            .context("cannot write the send log")?;
        let mut stale_end = prefix(number);
        stale_end.extend_from_slice(&codec::time_key(text.at_ms - WINDOW_MS));
        for stale in self.tree.range(prefix(number)..stale_end).keys() {
            self.tree
                .remove(stale.context("cannot read the send log")?)
                .context("cannot prune the send log")?;
        }
        Ok(())
    }

    /// The texts `number` got since `since_ms`, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn since(&self, number: &str, since_ms: i64) -> anyhow::Result<Vec<SentText>> {
        let mut start = prefix(number);
        start.extend_from_slice(&codec::time_key(since_ms));
        let mut end = prefix(number);
        end.push(0xff);
        self.tree
            .range(start..end)
            .values()
            .map(|value| codec::decode(&value.context("cannot read the send log")?))
            .collect()
    }

    /// Checks one more text against the caps. `states` are the US states the number is in
    /// (by area code, by address); the strictest same-subject limit among them applies.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn check(
        &self,
        config: &CapsConfig,
        number: &str,
        candidate: &SentText,
        states: &[&str],
    ) -> anyhow::Result<CapCheck> {
        let now = candidate.at_ms;
        let recent = self.since(number, now - WINDOW_MS + 1)?;
        let loop_window_ms = i64::try_from(config.loop_window.as_millis()).unwrap_or(i64::MAX);
        let identical = recent
            .iter()
            .filter(|sent| sent.at_ms > now - loop_window_ms)
            .filter(|sent| sent.body_sha256 == candidate.body_sha256)
            .count();
        if identical >= config.loop_max_identical as usize {
            return Ok(CapCheck::Loop {
                reason: format!(
                    "loop guard: the same text went to this number {identical} times in the last {}",
                    humantime::format_duration(config.loop_window)
                ),
            });
        }
        let mut caps: Vec<(u32, Vec<&SentText>, String)> = vec![(
            config.per_number,
            recent.iter().collect(),
            format!(
                "frequency cap: {} texts per number in 24 h",
                config.per_number
            ),
        )];
        if let Some(program) = &candidate.program {
            caps.push((
                config.per_program,
                recent
                    .iter()
                    .filter(|sent| sent.program.as_ref() == Some(program))
                    .collect(),
                format!(
                    "frequency cap: {} texts per number from program `{program}` in 24 h",
                    config.per_program
                ),
            ));
        }
        let strictest = states
            .iter()
            .filter_map(|state| Some((*config.same_subject_by_state.get(*state)?, *state)))
            .min();
        if let (true, Some(subject), Some((limit, state))) =
            (candidate.marketing, &candidate.subject, strictest)
        {
            caps.push((
                limit,
                recent
                    .iter()
                    .filter(|sent| sent.marketing && sent.subject.as_ref() == Some(subject))
                    .collect(),
                format!("frequency cap: {limit} marketing texts on `{subject}` in 24 h to a {state} number"),
            ));
        }
        let mut until: Option<(i64, String)> = None;
        for (limit, counted, reason) in caps {
            if counted.len() >= limit as usize {
                // The slot frees when enough of the oldest leave the window.
                let excess = counted.len() + 1 - limit as usize;
                let frees_at = counted
                    .get(excess.saturating_sub(1))
                    .map_or(now, |sent| sent.at_ms + WINDOW_MS);
                if until.as_ref().is_none_or(|(at, _)| frees_at > *at) {
                    until = Some((frees_at, reason));
                }
            }
        }
        Ok(match until {
            Some((until_ms, reason)) => CapCheck::FullUntil { until_ms, reason },
            None => CapCheck::Under,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600 * 1000;

    fn log() -> SendLog {
        let db = sled::Config::new().temporary(true).open().unwrap();
        SendLog::new(db.open_tree("send_log").unwrap())
    }

    #[test]
    fn the_program_cap_frees_when_its_oldest_text_leaves_the_window() {
        let log = log();
        let config = CapsConfig {
            per_program: 2,
            ..CapsConfig::default()
        };
        for (seq, at) in [(1, 0), (2, HOUR)] {
            let text = SentText::new(at, Some("p"), Some("f"), false, &format!("text {seq}"));
            log.record("+14155550100", seq, &text).unwrap();
        }
        let third = SentText::new(2 * HOUR, Some("p"), Some("f"), false, "text 3");
        assert_eq!(
            log.check(&config, "+14155550100", &third, &[]).unwrap(),
            CapCheck::FullUntil {
                until_ms: WINDOW_MS,
                reason: "frequency cap: 2 texts per number from program `p` in 24 h".to_owned()
            }
        );
        let other_program = SentText::new(2 * HOUR, Some("q"), Some("f"), false, "text 3");
        assert_eq!(
            log.check(&config, "+14155550100", &other_program, &[])
                .unwrap(),
            CapCheck::Under
        );
        let later = SentText::new(WINDOW_MS, Some("p"), Some("f"), false, "text 3");
        assert_eq!(
            log.check(&config, "+14155550100", &later, &[]).unwrap(),
            CapCheck::Under
        );
    }

    #[test]
    fn florida_allows_three_marketing_texts_on_one_subject() {
        let log = log();
        let config = CapsConfig::default();
        for seq in 1..=3 {
            let text = SentText::new(seq, Some("p"), Some("promo"), true, &format!("offer {seq}"));
            log.record("+13055550100", seq.cast_unsigned(), &text)
                .unwrap();
        }
        let fourth = SentText::new(10, Some("p"), Some("promo"), true, "offer 4");
        assert!(matches!(
            log.check(&config, "+13055550100", &fourth, &["FL"]).unwrap(),
            CapCheck::FullUntil { until_ms, .. } if until_ms == 1 + WINDOW_MS
        ));
        assert_eq!(
            log.check(&config, "+13055550100", &fourth, &["NY"])
                .unwrap(),
            CapCheck::Under
        );
        let other_subject = SentText::new(10, Some("p"), Some("renewal"), true, "offer 4");
        assert_eq!(
            log.check(&config, "+13055550100", &other_subject, &["FL"])
                .unwrap(),
            CapCheck::Under
        );
    }

    #[test]
    fn the_loop_guard_stops_the_same_text_repeating() {
        let log = log();
        let config = CapsConfig::default();
        for seq in 1..=2 {
            let text = SentText::new(seq * 1000, Some("p"), None, false, "Reply YES or NO");
            log.record("+14155550100", seq.cast_unsigned(), &text)
                .unwrap();
        }
        let again = SentText::new(5000, Some("p"), None, false, "Reply YES or NO");
        assert!(matches!(
            log.check(&config, "+14155550100", &again, &[]).unwrap(),
            CapCheck::Loop { .. }
        ));
        let much_later = SentText::new(HOUR, Some("p"), None, false, "Reply YES or NO");
        assert_eq!(
            log.check(&config, "+14155550100", &much_later, &[])
                .unwrap(),
            CapCheck::Under
        );
    }

    #[test]
    fn old_entries_are_pruned() {
        let log = log();
        log.record("+1", 1, &SentText::new(0, None, None, false, "a"))
            .unwrap();
        log.record(
            "+1",
            2,
            &SentText::new(WINDOW_MS + 1, None, None, false, "b"),
        )
        .unwrap();
        assert_eq!(log.since("+1", i64::MIN).unwrap().len(), 1);
    }
}
