//! Percentiles, and joining what the load generator posted with what reached the provider.

use std::collections::HashMap;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::loadgen::{Outcome, Posted, micros};

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 significant digits.
///
/// # Errors
///
/// Never with these bounds; hdrhistogram's constructor is fallible in general.
pub fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// The percentiles of `histogram` (microseconds), in milliseconds.
pub fn summary(histogram: &Histogram<u64>) -> Summary {
    let ms = |micros: u64| micros as f64 / 1000.0;
    Summary {
        count: histogram.len(),
        p50_ms: ms(histogram.value_at_quantile(0.50)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        p999_ms: ms(histogram.value_at_quantile(0.999)),
        max_ms: ms(histogram.max()),
    }
}

/// What the provider should have received for each text of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One reply per acknowledged text, after `earlier` texts the number already had (the
    /// opening text of an outbound flow).
    Reply {
        /// Texts each number received before this phase.
        earlier: usize,
    },
    /// Nothing at all.
    Silence,
}

/// Posted texts joined with the provider's arrivals.
#[derive(Debug)]
pub struct Joined {
    /// Ingest-to-provider latency (microseconds): from the start of the webhook's POST to the
    /// arrival of the reply at the provider.
    pub latency: Histogram<u64>,
    /// Acknowledged texts answered (at least once).
    pub answered: u64,
    /// Acknowledged texts with no reply.
    pub missing: u64,
    /// Replies beyond the first for one text.
    pub duplicates: u64,
    /// Texts the provider received that nothing asked for: a reply to a text that was not
    /// acknowledged, or any text where silence was expected.
    pub unexpected: u64,
    /// When the last reply arrived.
    pub last_answer: Option<Instant>,
}

/// Joins `posted` (text `i` from `number(i)`) with `arrivals` (each number's texts at the
/// provider, in arrival order).
///
/// # Errors
///
/// Never with [`new_histogram`]'s bounds.
pub fn join(
    posted: &[Posted],
    number: impl Fn(u64) -> String,
    arrivals: &HashMap<String, Vec<Instant>>,
    expect: Expect,
) -> anyhow::Result<Joined> {
    let mut joined = Joined {
        latency: new_histogram()?,
        answered: 0,
        missing: 0,
        duplicates: 0,
        unexpected: 0,
        last_answer: None,
    };
    for text in posted {
        let times = arrivals
            .get(&number(text.index))
            .map_or(&[][..], Vec::as_slice);
        let earlier = match expect {
            Expect::Reply { earlier } if text.outcome == Outcome::Acked => earlier,
            Expect::Reply { earlier } => {
                joined.unexpected += times.len().saturating_sub(earlier) as u64;
                continue;
            }
            Expect::Silence => {
                joined.unexpected += times.len() as u64;
                continue;
            }
        };
        let Some(&reply) = times.get(earlier) else {
            joined.missing += 1;
            continue;
        };
        joined.answered += 1;
        joined.duplicates += (times.len() - earlier - 1) as u64;
        joined
            .latency
            .saturating_record(micros(reply.saturating_duration_since(text.started)));
        joined.last_answer = joined.last_answer.max(Some(reply));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn percentiles_are_read_in_milliseconds() {
        let mut histogram = new_histogram().unwrap();
        for micros in 1..=10_000 {
            histogram.record(micros).unwrap();
        }
        let summary = summary(&histogram);
        assert_eq!(summary.count, 10_000);
        // Three significant digits: each value is within 0.1% of the exact one.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001;
        assert!(close(summary.p50_ms, 5.0), "{summary:?}");
        assert!(close(summary.p99_ms, 9.9), "{summary:?}");
        assert!(close(summary.p999_ms, 9.99), "{summary:?}");
        assert!(close(summary.max_ms, 10.0), "{summary:?}");
    }

    fn posted(index: u64, started: Instant, outcome: Outcome) -> Posted {
        Posted {
            index,
            started,
            outcome,
        }
    }

    #[test]
    fn a_reply_is_matched_to_its_text_after_the_numbers_earlier_texts() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let texts = [
            posted(0, at(10), Outcome::Acked), // opening at 0, reply at 13
            posted(1, at(10), Outcome::Acked), // opening only: missing
            posted(2, at(20), Outcome::Acked), // two replies: a duplicate
            posted(3, at(20), Outcome::Refused(503)), // not acknowledged, answered anyway
        ];
        let arrivals: HashMap<String, Vec<Instant>> = [
            ("n0", vec![at(0), at(13)]),
            ("n1", vec![at(1)]),
            ("n2", vec![at(2), at(25), at(26)]),
            ("n3", vec![at(3), at(30)]),
        ]
        .into_iter()
        .map(|(number, times)| (number.to_owned(), times))
        .collect();
        let joined = join(
            &texts,
            |i| format!("n{i}"),
            &arrivals,
            Expect::Reply { earlier: 1 },
        )
        .unwrap();
        assert_eq!(joined.answered, 2);
        assert_eq!(joined.missing, 1);
        assert_eq!(joined.duplicates, 1);
        assert_eq!(joined.unexpected, 1);
        assert_eq!(joined.last_answer, Some(at(25)));
        // 3 ms and 5 ms: the first reply counts, not the duplicate.
        assert_eq!(joined.latency.len(), 2);
        assert_eq!(joined.latency.min(), 3000);
        assert!(joined.latency.equivalent(joined.latency.max(), 5000));
    }

    #[test]
    fn where_silence_is_expected_every_arrival_is_unexpected() {
        let t0 = Instant::now();
        let texts = [posted(0, t0, Outcome::Acked), posted(1, t0, Outcome::Acked)];
        let arrivals: HashMap<String, Vec<Instant>> =
            [("n1".to_owned(), vec![t0])].into_iter().collect();
        let joined = join(&texts, |i| format!("n{i}"), &arrivals, Expect::Silence).unwrap();
        assert_eq!(
            (joined.answered, joined.missing, joined.unexpected),
            (0, 0, 1)
        );
        assert_eq!(joined.latency.len(), 0);
    }
}
