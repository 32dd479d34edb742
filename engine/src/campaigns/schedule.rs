//! A broadcast's schedule beyond its first start: rounds that repeat daily or weekly at the
//! same local time, a cap on starts per local day, and a spread of each round over a span.
//!
//! Rounds keep the wall clock of their zone: a 09:00 round in New York stays at 09:00 when
//! the clocks change, so it is 24 or 23 or 25 hours after the one before.

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan as _};

use crate::store::campaigns::{Period, Repeat};

impl Repeat {
    /// Checks the zone; a message saying what to write when it is not one.
    ///
    /// # Errors
    ///
    /// An unknown zone name.
    pub fn check(&self) -> Result<(), String> {
        TimeZone::get(&self.time_zone).map(drop).map_err(|_| {
            format!(
                "repeat.time_zone: `{}` is not an IANA time zone; write America/New_York or UTC",
                self.time_zone
            )
        })
    }

    fn zone(&self) -> TimeZone {
        TimeZone::get(&self.time_zone).unwrap_or(TimeZone::UTC)
    }

    fn step(&self) -> Span {
        match self.every {
            Period::Daily => 1.day(),
            Period::Weekly => 1.week(),
        }
    }

    /// The first round after `now_ms`: `start_at_ms`'s local time, a whole number of days or
    /// weeks later.
    pub fn next_after(&self, start_at_ms: i64, now_ms: i64) -> i64 {
        let Ok(start) = Timestamp::from_millisecond(start_at_ms) else {
            return now_ms;
        };
        let first = start.to_zoned(self.zone());
        let step = self.step();
        // Skip whole weeks or days at once, then step: a campaign paused for a year must not
        // walk every day since.
        let days_behind = (now_ms - start_at_ms).max(0) / 86_400_000;
        let step_days = match self.every {
            Period::Daily => 1,
            Period::Weekly => 7,
        };
        let mut n = (days_behind / step_days).saturating_sub(1);
        loop {
            let span = step.checked_mul(n).unwrap_or(step);
            match first.checked_add(span) {
                Ok(at) if at.timestamp().as_millisecond() > now_ms => {
                    return at.timestamp().as_millisecond();
                }
                Ok(_) => n += 1,
                Err(_) => return i64::MAX,
            }
        }
    }
}

/// The local day holding `now_ms` in `zone` (an IANA name; UTC when unknown), as
/// `[start, end)` in ms: a daily cap's day.
pub fn day_of(zone: Option<&str>, now_ms: i64) -> (i64, i64) {
    const DAY_MS: i64 = 86_400_000;
    let utc_day = now_ms - now_ms.rem_euclid(DAY_MS);
    let zone = zone
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or(TimeZone::UTC);
    let local = |now: Timestamp| -> Option<(i64, i64)> {
        let today = now.to_zoned(zone.clone()).date();
        let start = today.to_zoned(zone.clone()).ok()?;
        let end = today.tomorrow().ok()?.to_zoned(zone.clone()).ok()?;
        Some((
            start.timestamp().as_millisecond(),
            end.timestamp().as_millisecond(),
        ))
    };
    Timestamp::from_millisecond(now_ms)
        .ok()
        .and_then(local)
        .unwrap_or((utc_day, utc_day + DAY_MS))
}

/// The rate that spreads `audience` starts evenly over `spread_ms`, never above `ceiling`
/// (the campaign's `messages_per_second`), and never below one start an hour. A rate above
/// one is rounded up to whole starts a second (the pace counts whole seconds), so the round
/// ends a little inside its span, never after it.
pub fn spread_rate(audience: u64, spread_ms: i64, ceiling: f64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // counts and spans far below 2^52
    let rate = audience as f64 / (spread_ms.max(1) as f64 / 1000.0);
    let rate = if rate >= 1.0 { rate.ceil() } else { rate };
    rate.clamp(1.0 / 3600.0, ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        crate::contacts::fields::parse_datetime(text).unwrap()
    }

    fn repeat(every: Period, zone: &str) -> Repeat {
        Repeat {
            every,
            time_zone: zone.to_owned(),
        }
    }

    #[test]
    fn a_daily_round_keeps_its_local_time_across_a_dst_change() {
        // 09:00 in New York on Saturday 7 March 2026 (EST, 14:00Z); the clocks go forward on
        // the Sunday, so Sunday's round is 13:00Z.
        let daily = repeat(Period::Daily, "America/New_York");
        let start = ms("2026-03-07T14:00:00Z");
        assert_eq!(daily.next_after(start, start), ms("2026-03-08T13:00:00Z"));
        assert_eq!(
            daily.next_after(start, ms("2026-03-08T13:00:00Z")),
            ms("2026-03-09T13:00:00Z")
        );
        // A year paused: the next round, not every day since (EST again: 2027's change
        // comes on the 14th).
        assert_eq!(
            daily.next_after(start, ms("2027-03-07T15:00:00Z")),
            ms("2027-03-08T14:00:00Z")
        );
    }

    #[test]
    fn a_weekly_round_comes_on_the_same_weekday() {
        let weekly = repeat(Period::Weekly, "UTC");
        let start = ms("2026-03-02T10:00:00Z");
        assert_eq!(
            weekly.next_after(start, ms("2026-03-02T10:00:00Z")),
            ms("2026-03-09T10:00:00Z")
        );
        assert_eq!(
            weekly.next_after(start, ms("2026-03-20T00:00:00Z")),
            ms("2026-03-23T10:00:00Z")
        );
        assert!(repeat(Period::Daily, "Mars/Olympus").check().is_err());
    }

    #[test]
    fn a_day_is_the_local_day() {
        // 03:00Z on the 4th is still the 3rd in Los Angeles (PST, UTC-8).
        let (start, end) = day_of(Some("America/Los_Angeles"), ms("2026-03-04T03:00:00Z"));
        assert_eq!(start, ms("2026-03-03T08:00:00Z"));
        assert_eq!(end, ms("2026-03-04T08:00:00Z"));
        // The spring-forward day is 23 hours long.
        let (start, end) = day_of(Some("America/New_York"), ms("2026-03-08T12:00:00Z"));
        assert_eq!(end - start, 23 * 3_600_000);
        assert_eq!(day_of(None, 90_000_000), (86_400_000, 172_800_000));
    }

    #[test]
    fn a_spread_paces_the_audience_over_the_span() {
        assert!((spread_rate(36_000, 3_600_000, 100.0) - 10.0).abs() < 1e-9);
        assert!((spread_rate(9_000, 3_600_000, 100.0) - 3.0).abs() < 1e-9);
        assert!((spread_rate(1_800, 3_600_000, 100.0) - 0.5).abs() < 1e-9);
        assert!((spread_rate(36_000, 3_600_000, 4.0) - 4.0).abs() < 1e-9);
        assert!((spread_rate(0, 3_600_000, 4.0) - 1.0 / 3600.0).abs() < 1e-12);
    }
}
