//! Business hours: a weekly schedule in a queue's time zone, and service-level deadlines that
//! count only the time it is open ("answer within 30 minutes of business time").

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};

use crate::compliance::quiet_hours::parse_hhmm;

/// When a queue is staffed: for each weekday, open windows in seconds of the local day.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    zone: TimeZone,
    /// Index 0 is Monday.
    days: [Vec<(u32, u32)>; 7],
}

/// Days a schedule scans ahead for the next open minute before giving up: a schedule with
/// open windows always finds one within a week.
const MAX_DAYS: usize = 8;

impl BusinessHours {
    /// Parses `"mon-fri 09:00-17:00"`-style lines in `zone` (an IANA name).
    ///
    /// # Errors
    ///
    /// A message naming the line and how to write it.
    pub fn parse(zone: &str, lines: &[String]) -> Result<Self, String> {
        let zone = TimeZone::get(zone).map_err(|_| {
            format!("time zone `{zone}` is not an IANA name: write e.g. `America/New_York`")
        })?;
        let mut days: [Vec<(u32, u32)>; 7] = Default::default();
        for line in lines {
            let (which, window) = parse_line(line).ok_or_else(|| {
                format!("hours `{line}`: write `mon-fri 09:00-17:00` (days mon..sun, a range or a comma list, then HH:MM-HH:MM)")
            })?;
            for day in which {
                days[day].push(window);
            }
        }
        if days.iter().all(Vec::is_empty) {
            return Err("hours: a schedule needs at least one open window".to_owned());
        }
        for windows in &mut days {
            windows.sort_unstable();
            // Overlapping lines for one day are one window: open time is not counted twice.
            windows.dedup_by(|later, earlier| {
                if later.0 <= earlier.1 {
                    earlier.1 = earlier.1.max(later.1);
                    true
                } else {
                    false
                }
            });
        }
        Ok(Self { zone, days })
    }

    /// Whether the queue is open at `at_ms`.
    pub fn is_open(&self, at_ms: i64) -> bool {
        let Some((date, second)) = self.local(at_ms) else {
            return true;
        };
        self.windows(date)
            .iter()
            .any(|&(start, end)| start <= second && second < end)
    }

    /// When the queue next opens at or after `at_ms` (`at_ms` itself when open).
    pub fn next_open(&self, at_ms: i64) -> i64 {
        self.deadline(at_ms, 0)
    }

    /// The instant by which `business_ms` of open time have passed since `start_ms`. Open
    /// time is real time inside the windows (a window across a daylight-saving change is an
    /// hour shorter or longer, as the people working it see it).
    pub fn deadline(&self, start_ms: i64, business_ms: i64) -> i64 {
        let Some((mut date, second)) = self.local(start_ms) else {
            return start_ms + business_ms;
        };
        let mut left = business_ms;
        // Whole weeks of open time first, so a long target on a sparse schedule stays cheap.
        let week_ms = self.week_ms();
        let weeks = (left / week_ms).saturating_sub(1);
        if weeks > 0
            && let Ok(later) = date.checked_add((weeks * 7).days())
        {
            date = later;
            left -= weeks * week_ms;
        }
        let mut cursor = if weeks > 0 {
            None
        } else {
            Some((second, start_ms))
        };
        for _ in 0..MAX_DAYS * 2 {
            for &(open, close) in self.windows(date) {
                let (Some(opens), Some(closes)) =
                    (self.instant(date, open), self.instant(date, close))
                else {
                    continue;
                };
                let from = match cursor {
                    Some((second, _)) if second >= close => continue,
                    Some((second, at_ms)) if second > open => at_ms,
                    _ => opens,
                };
                if left <= closes - from {
                    return from + left;
                }
                left -= closes - from;
            }
            let Ok(next) = date.checked_add(1.day()) else {
                break;
            };
            (date, cursor) = (next, None);
        }
        start_ms + business_ms
    }

    /// Open time in a week, counted on the wall clock.
    fn week_ms(&self) -> i64 {
        let seconds: u32 = self
            .days
            .iter()
            .flatten()
            .map(|(open, close)| close - open)
            .sum();
        i64::from(seconds.max(1)) * 1000
    }

    fn windows(&self, date: Date) -> &[(u32, u32)] {
        &self.days[usize::from(date.weekday().to_monday_zero_offset().unsigned_abs())]
    }

    /// `at_ms` as the local date and second of the day.
    fn local(&self, at_ms: i64) -> Option<(Date, u32)> {
        let zoned = Timestamp::from_millisecond(at_ms)
            .ok()?
            .to_zoned(self.zone.clone());
        let time = zoned.time();
        let second = u32::try_from(
            i32::from(time.hour()) * 3600
                + i32::from(time.minute()) * 60
                + i32::from(time.second()),
        )
        .ok()?;
        Some((zoned.date(), second))
    }

    /// The instant the wall clock of local `date` shows `second` (24:00 is the next day's
    /// midnight; a time skipped by a daylight-saving change is the instant after the gap).
    fn instant(&self, date: Date, second: u32) -> Option<i64> {
        let (date, second) = match second {
            86_400 => (date.checked_add(1.day()).ok()?, 0),
            _ => (date, second),
        };
        let hour = i8::try_from(second / 3600).ok()?;
        let minute = i8::try_from(second / 60 % 60).ok()?;
        let second = i8::try_from(second % 60).ok()?;
        let zoned = date
            .at(hour, minute, second, 0)
            .to_zoned(self.zone.clone())
            .ok()?;
        Some(zoned.timestamp().as_millisecond())
    }
}

/// `mon-fri 09:00-17:00` to day indexes and a window of seconds.
fn parse_line(line: &str) -> Option<(Vec<usize>, (u32, u32))> {
    let (days, window) = line.trim().split_once(' ')?;
    let (start, end) = window.trim().split_once('-')?;
    let window = (parse_hhmm(start, false)?, parse_hhmm(end, true)?);
    if window.1 <= window.0 {
        return None;
    }
    let mut which = Vec::new();
    for part in days.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day(from)?, day(to)?);
                if to < from {
                    return None;
                }
                which.extend(from..=to);
            }
            None => which.push(day(part)?),
        }
    }
    Some((which, window))
}

fn day(name: &str) -> Option<usize> {
    let day = match name.trim().to_ascii_lowercase().as_str() {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    };
    Some(usize::from(day.to_monday_zero_offset().unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn ms(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn weekdays() -> BusinessHours {
        BusinessHours::parse("America/New_York", &["mon-fri 09:00-17:00".to_owned()]).unwrap()
    }

    #[test]
    fn open_inside_the_window_in_the_queues_zone() {
        let hours = weekdays();
        // 2026-12-02 is a Wednesday; 14:00 UTC is 09:00 in New York.
        assert!(hours.is_open(ms("2026-12-02T14:00:00Z")));
        assert!(!hours.is_open(ms("2026-12-02T13:59:00Z")));
        assert!(!hours.is_open(ms("2026-12-05T15:00:00Z")), "a Saturday");
    }

    #[test]
    fn a_deadline_counts_only_open_time() {
        let hours = weekdays();
        // Handed off at 16:50 New York on a Wednesday: 30 business minutes end 09:20 Thursday.
        let start = ms("2026-12-02T21:50:00Z");
        assert_eq!(
            hours.deadline(start, 30 * MINUTE),
            ms("2026-12-03T14:20:00Z")
        );
        // Friday 16:50 runs over the weekend to Monday 09:20.
        let friday = ms("2026-12-04T21:50:00Z");
        assert_eq!(
            hours.deadline(friday, 30 * MINUTE),
            ms("2026-12-07T14:20:00Z")
        );
        // Inside the window it is plain addition.
        let open = ms("2026-12-02T15:00:00Z");
        assert_eq!(hours.deadline(open, 30 * MINUTE), open + 30 * MINUTE);
    }

    #[test]
    fn a_deadline_on_a_daylight_saving_day_counts_real_time() {
        let always =
            BusinessHours::parse("America/New_York", &["mon-sun 00:00-24:00".to_owned()]).unwrap();
        // 2026-03-08, 10:00 EDT (14:00Z): clocks went forward at 02:00 that morning.
        let start = ms("2026-03-08T14:00:00Z");
        assert_eq!(
            always.deadline(start, 30 * MINUTE),
            ms("2026-03-08T14:30:00Z")
        );
        // Across the night of 2026-11-01 (back at 02:00): still plain addition.
        let evening = ms("2026-11-01T03:00:00Z");
        assert_eq!(
            always.deadline(evening, 5 * 60 * MINUTE),
            ms("2026-11-01T08:00:00Z")
        );
        // A 09:00-17:00 window on the spring-forward Monday after: the window is 8 real hours.
        let hours = weekdays();
        let monday = ms("2026-03-09T13:00:00Z"); // 09:00 EDT
        assert_eq!(
            hours.deadline(monday, 8 * 60 * MINUTE),
            ms("2026-03-09T21:00:00Z")
        );
    }

    #[test]
    fn long_targets_on_sparse_schedules_land_in_the_right_week() {
        let saturdays = BusinessHours::parse("UTC", &["sat 10:00-12:00".to_owned()]).unwrap();
        // Ten hours of Saturday mornings from a Wednesday: five Saturdays, the last one full.
        let wednesday = ms("2026-12-02T12:00:00Z");
        assert_eq!(
            saturdays.deadline(wednesday, 10 * 60 * MINUTE),
            ms("2027-01-02T12:00:00Z")
        );
        // Overlapping lines are one window.
        let doubled = BusinessHours::parse(
            "UTC",
            &["sat 10:00-12:00".to_owned(), "sat 11:00-12:00".to_owned()],
        )
        .unwrap();
        assert_eq!(
            doubled.deadline(wednesday, 3 * 60 * MINUTE),
            ms("2026-12-12T11:00:00Z")
        );
    }

    #[test]
    fn next_open_is_the_next_windows_start() {
        let hours = weekdays();
        assert_eq!(
            hours.next_open(ms("2026-12-05T15:00:00Z")),
            ms("2026-12-07T14:00:00Z")
        );
    }

    #[test]
    fn bad_lines_say_how_to_write_them() {
        for line in [
            "weekdays 9-5",
            "mon-fri 17:00-09:00",
            "fri-mon 09:00-17:00",
            "mon",
        ] {
            let error = BusinessHours::parse("UTC", &[line.to_owned()]).unwrap_err();
            assert!(error.contains("mon-fri 09:00-17:00"), "{line}: {error}");
        }
        assert!(
            BusinessHours::parse("Mars/Olympus", &[])
                .unwrap_err()
                .contains("IANA")
        );
    }
}
