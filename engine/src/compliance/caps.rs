//! Frequency caps and the loop guard, over a log of what went to each number.
//!
//! The log is the store's [`SendLog`] table: one number's last 24 hours are one short range
//! scan, pruned as new entries are written. [`check`] is pure: it decides from what the log
//! returned.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use crate::store::send_log::{SendLog, SentText};

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

/// Checks one more text against the caps, given what went to the number in the last
/// [`WINDOW_MS`] (`recent`, oldest first, from [`SendLog::since`]). `states` are the US states
/// the number is in (by area code, by address); the strictest same-subject limit among them
/// applies.
pub fn check(
    config: &CapsConfig,
    recent: &[SentText],
    candidate: &SentText,
    states: &[&str],
) -> CapCheck {
    let now = candidate.at_ms;
    let loop_window_ms = i64::try_from(config.loop_window.as_millis()).unwrap_or(i64::MAX);
    let identical = recent
        .iter()
        .filter(|sent| sent.at_ms > now - loop_window_ms)
        .filter(|sent| sent.body_sha256 == candidate.body_sha256)
        .count();
    if identical >= config.loop_max_identical as usize {
        return CapCheck::Loop {
            reason: format!(
                "loop guard: the same text went to this number {identical} times in the last {}",
                humantime::format_duration(config.loop_window)
            ),
        };
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
            format!(
                "frequency cap: {limit} marketing texts on `{subject}` in 24 h to a {state} number"
            ),
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
    match until {
        Some((until_ms, reason)) => CapCheck::FullUntil { until_ms, reason },
        None => CapCheck::Under,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600 * 1000;

    /// [`check`] with what [`SendLog::since`] would return from `log` at the candidate's time.
    fn check_at(
        config: &CapsConfig,
        log: &[SentText],
        candidate: &SentText,
        states: &[&str],
    ) -> CapCheck {
        let recent: Vec<SentText> = log
            .iter()
            .filter(|sent| sent.at_ms > candidate.at_ms - WINDOW_MS)
            .cloned()
            .collect();
        check(config, &recent, candidate, states)
    }

    #[test]
    fn the_program_cap_frees_when_its_oldest_text_leaves_the_window() {
        let config = CapsConfig {
            per_program: 2,
            ..CapsConfig::default()
        };
        let log: Vec<SentText> = [(1, 0), (2, HOUR)]
            .iter()
            .map(|(seq, at)| {
                SentText::new(*at, Some("p"), Some("f"), false, &format!("text {seq}"))
            })
            .collect();
        let third = SentText::new(2 * HOUR, Some("p"), Some("f"), false, "text 3");
        assert_eq!(
            check_at(&config, &log, &third, &[]),
            CapCheck::FullUntil {
                until_ms: WINDOW_MS,
                reason: "frequency cap: 2 texts per number from program `p` in 24 h".to_owned()
            }
        );
        let other_program = SentText::new(2 * HOUR, Some("q"), Some("f"), false, "text 3");
        assert_eq!(
            check_at(&config, &log, &other_program, &[]),
            CapCheck::Under
        );
        let later = SentText::new(WINDOW_MS, Some("p"), Some("f"), false, "text 3");
        assert_eq!(check_at(&config, &log, &later, &[]), CapCheck::Under);
    }

    #[test]
    fn florida_allows_three_marketing_texts_on_one_subject() {
        let config = CapsConfig::default();
        let log: Vec<SentText> = (1..=3)
            .map(|seq| SentText::new(seq, Some("p"), Some("promo"), true, &format!("offer {seq}")))
            .collect();
        let fourth = SentText::new(10, Some("p"), Some("promo"), true, "offer 4");
        assert!(matches!(
            check_at(&config, &log, &fourth, &["FL"]),
            CapCheck::FullUntil { until_ms, .. } if until_ms == 1 + WINDOW_MS
        ));
        assert_eq!(check_at(&config, &log, &fourth, &["NY"]), CapCheck::Under);
        let other_subject = SentText::new(10, Some("p"), Some("renewal"), true, "offer 4");
        assert_eq!(
            check_at(&config, &log, &other_subject, &["FL"]),
            CapCheck::Under
        );
    }

    #[test]
    fn the_loop_guard_stops_the_same_text_repeating() {
        let config = CapsConfig::default();
        let log: Vec<SentText> = (1..=2)
            .map(|seq| SentText::new(seq * 1000, Some("p"), None, false, "Reply YES or NO"))
            .collect();
        let again = SentText::new(5000, Some("p"), None, false, "Reply YES or NO");
        assert!(matches!(
            check_at(&config, &log, &again, &[]),
            CapCheck::Loop { .. }
        ));
        let much_later = SentText::new(HOUR, Some("p"), None, false, "Reply YES or NO");
        assert_eq!(check_at(&config, &log, &much_later, &[]), CapCheck::Under);
    }
}
