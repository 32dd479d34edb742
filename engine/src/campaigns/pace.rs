//! A campaign's pace: at most its rate of starts in each second of the clock (a rate below
//! one spaces starts evenly), so no second ever holds more starts than the rate, however the
//! seconds are counted from the sent texts' times.

use std::time::Duration;

/// Starts allowed, second by second.
#[derive(Debug, Clone)]
pub struct Pace {
    per_second: f64,
    /// The second being counted (its first ms).
    second_ms: i64,
    /// Starts taken in it.
    used: usize,
    /// For a rate below one: when the next start may go.
    next_ms: i64,
}

impl Pace {
    /// A pace of `per_second` starts.
    pub fn new(per_second: f64) -> Self {
        Self {
            per_second,
            second_ms: i64::MIN,
            used: 0,
            next_ms: i64::MIN,
        }
    }

    /// Whether a start may go at `now_ms`; if so it is counted.
    pub fn take(&mut self, now_ms: i64) -> bool {
        if self.per_second < 1.0 {
            if now_ms < self.next_ms {
                return false;
            }
            #[allow(clippy::cast_possible_truncation)]
            let gap = (1000.0 / self.per_second).ceil() as i64;
            self.next_ms = now_ms + gap;
            return true;
        }
        let second = now_ms - now_ms.rem_euclid(1000);
        if second != self.second_ms {
            self.second_ms = second;
            self.used = 0;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cap = self.per_second.floor() as usize;
        if self.used >= cap {
            return false;
        }
        self.used += 1;
        true
    }

    /// How long after `now_ms` the next start may go.
    pub fn next_in(&self, now_ms: i64) -> Duration {
        let at = if self.per_second < 1.0 {
            self.next_ms
        } else {
            self.second_ms.saturating_add(1000)
        };
        Duration::from_millis(u64::try_from(at.saturating_sub(now_ms).clamp(1, 1000)).unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_rate_in_a_second() {
        let mut pace = Pace::new(5.0);
        let taken = (0..20).filter(|_| pace.take(900)).count();
        assert_eq!(taken, 5);
        // The next second starts afresh, and only then.
        assert!(!pace.take(999));
        assert!(pace.take(1000));
        assert_eq!(pace.next_in(1000), Duration::from_millis(1000));
        // Before any start, no waiting (and no overflow).
        assert_eq!(
            Pace::new(5.0).next_in(1_772_544_600_000),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn a_slow_pace_spaces_its_starts() {
        let mut pace = Pace::new(0.5);
        assert!(pace.take(0));
        assert!(!pace.take(1999));
        assert!(pace.take(2000));
        assert_eq!(pace.next_in(2500), Duration::from_millis(1000));
    }
}
