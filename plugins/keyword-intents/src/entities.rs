//! Entities pulled out of the normalised tokens: a time of day (`time`) and a weekday (`day`).
//!
//! Times: `3pm`, `3:30pm`, `3 pm`, `3:30 p.m.` (hour 1-12 with am/pm, the value is written
//! compactly: `3:30pm`); `15:00` (24-hour, hour 0-23); `at 3` and Spanish `a las 5` (hour 0-23,
//! the value is the number as written, plus am/pm when it follows). Days: English and Spanish weekday
//! names and the English abbreviations `mon tue tues wed thu thur thurs fri`; the value is the full
//! name in the text's language (`thursday`, `jueves`). Each value is reported once, in text order.

/// The full weekday name `token` spells, if it spells one.
///
/// A `match`, which compiles to a switch on the length and a comparison or two, where a table
/// would be scanned: most tokens are not weekdays.
fn day(token: &str) -> Option<&'static str> {
    Some(match token {
        "monday" | "mon" => "monday",
        "tuesday" | "tue" | "tues" => "tuesday",
        "wednesday" | "wed" => "wednesday",
        "thursday" | "thu" | "thur" | "thurs" => "thursday",
        "friday" | "fri" => "friday",
        "saturday" => "saturday",
        "sunday" => "sunday",
        "lunes" => "lunes",
        "martes" => "martes",
        "miercoles" => "miercoles",
        "jueves" => "jueves",
        "viernes" => "viernes",
        "sabado" => "sabado",
        "domingo" => "domingo",
        _ => return None,
    })
}

/// The `time` and `day` entities in `tokens`, in text order, each value once.
pub fn extract<T: AsRef<str>>(tokens: &[T]) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut push = |name: &'static str, value: String| {
        if !out.iter().any(|(n, v)| *n == name && *v == value) {
            out.push((name, value));
        }
    };
    for (i, token) in tokens.iter().enumerate() {
        if let Some(day) = day(token.as_ref()) {
            push("day", day.to_owned());
        } else if let Some(time) = time_at(tokens, i) {
            push("time", time);
        }
    }
    out
}

/// The time that starts at `tokens[i]`, if one does.
fn time_at<T: AsRef<str>>(tokens: &[T], i: usize) -> Option<String> {
    let word = |i: usize| tokens.get(i).map(AsRef::as_ref);
    let token = word(i)?;
    // Every time starts with its hour: most tokens are out after one comparison.
    if !token.as_bytes().first()?.is_ascii_digit() {
        return None;
    }
    // `3pm`, `3:30am`.
    for suffix in ["am", "pm"] {
        if let Some(clock) = token.strip_suffix(suffix)
            && let Some((hour, _)) = parse_clock(clock)
            && (1..=12).contains(&hour)
        {
            return Some(token.to_owned());
        }
    }
    let (hour, minutes) = parse_clock(token)?;
    // `3 pm`, `3:30 p.m.` (normalised to `3:30 p m`).
    let meridiem = match (word(i + 1), word(i + 2)) {
        (Some(m @ ("am" | "pm")), _) => Some(m),
        (Some("a"), Some("m")) => Some("am"),
        (Some("p"), Some("m")) => Some("pm"),
        _ => None,
    };
    if let Some(meridiem) = meridiem {
        return (1..=12)
            .contains(&hour)
            .then(|| format!("{token}{meridiem}"));
    }
    // `15:00`.
    if minutes.is_some() {
        return (hour < 24).then(|| token.to_owned());
    }
    // `at 3`, `a las 5`, `las 5`.
    let previous = i.checked_sub(1).and_then(word);
    (matches!(previous, Some("at" | "las")) && hour < 24).then(|| token.to_owned())
}

/// `h`, `hh`, `h:mm` or `hh:mm`, as the hour and the minutes if given.
fn parse_clock(text: &str) -> Option<(u8, Option<u8>)> {
    let (hour, minutes) = match text.split_once(':') {
        Some((hour, minutes)) => (hour, Some(minutes)),
        None => (text, None),
    };
    let hour = digits(hour, 1..=2)?;
    let minutes = match minutes {
        Some(minutes) => Some(digits(minutes, 2..=2).filter(|m| *m < 60)?),
        None => None,
    };
    Some((hour, minutes))
}

fn digits(text: &str, len: std::ops::RangeInclusive<usize>) -> Option<u8> {
    if !len.contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::extract;
    use crate::normalize::tokens;

    fn entities(text: &str) -> Vec<(&'static str, String)> {
        extract(&tokens(text))
    }

    fn pairs(list: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        list.iter()
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect()
    }

    #[test]
    fn times() {
        assert_eq!(entities("at 3pm"), pairs(&[("time", "3pm")]));
        assert_eq!(entities("3:30 PM works"), pairs(&[("time", "3:30pm")]));
        assert_eq!(entities("3:30 p.m."), pairs(&[("time", "3:30pm")]));
        assert_eq!(entities("11 am"), pairs(&[("time", "11am")]));
        assert_eq!(entities("15:00"), pairs(&[("time", "15:00")]));
        assert_eq!(entities("a las 5"), pairs(&[("time", "5")]));
        assert_eq!(
            entities("at 4 or 4pm"),
            pairs(&[("time", "4"), ("time", "4pm")])
        );
    }

    #[test]
    fn not_times() {
        assert!(entities("I have 3 kids").is_empty());
        assert!(entities("13pm 25:00 3:75 order 12345").is_empty());
        assert!(entities("$9.99").is_empty());
    }

    #[test]
    fn days() {
        assert_eq!(entities("Thursday?"), pairs(&[("day", "thursday")]));
        assert_eq!(
            entities("thurs or fri"),
            pairs(&[("day", "thursday"), ("day", "friday")])
        );
        assert_eq!(entities("el miércoles"), pairs(&[("day", "miercoles")]));
        assert_eq!(entities("SÁBADO"), pairs(&[("day", "sabado")]));
    }

    #[test]
    fn day_and_time_once_each() {
        assert_eq!(
            entities("Monday 10am, yes Monday 10am"),
            pairs(&[("day", "monday"), ("time", "10am")])
        );
    }
}
