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

    /// The instant by which `business_ms` of open time have passed since `start_ms`.
    pub fn deadline(&self, start_ms: i64, business_ms: i64) -> i64 {
        let Some((mut date, mut second)) = self.local(start_ms) else {
            return start_ms + business_ms;
        };
        let mut left = business_ms;
        for _ in 0..MAX_DAYS * 2 + usize::try_from(business_ms / 86_400_000).unwrap_or(0) * 2 {
            for &(start, end) in self.windows(date) {
                let from = start.max(second);
                if from >= end {
                    continue;
                }
                let available = i64::from(end - from) * 1000;
                if left <= available {
                    return self
                        .instant(date, from)
                        .map_or(start_ms + business_ms, |ms| ms + left);
                }
                left -= available;
            }
            let Ok(next) = date.checked_add(1.day()) else {
                break;
            };
            (date, second) = (next, 0);
        }
        start_ms + business_ms
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

    /// The instant of `second` of local `date` (the later one in a repeated hour).
    fn instant(&self, date: Date, second: u32) -> Option<i64> {
        let midnight = date.to_zoned(self.zone.clone()).ok()?;
        let at = midnight.checked_add(i64::from(second).seconds()).ok()?;
        Some(at.timestamp().as_millisecond())
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
