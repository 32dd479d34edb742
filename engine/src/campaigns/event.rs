//! Campaign events: a start relative to a contact's datetime field ("1 day before
//! `appointment_at`, at 09:00 in the contact's time zone", "3 days after `quote_sent_at`").
//!
//! The offset is calendar arithmetic in the contact's zone (a day is a day across a DST
//! change, an hour an hour); `deliver_at` then sets the local time of day on the date it
//! lands on. The zone is the contact's own, else the first of its number's, else UTC.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

pub use crate::store::campaigns::EventSpec;
use crate::store::campaigns::{Campaign, Target, TargetState};
use crate::store::contacts::{Contact, FieldValue};

impl EventSpec {
    /// Checks the offset and the time of day; a message saying what to write when they are
    /// not right.
    ///
    /// # Errors
    ///
    /// The first part that does not parse.
    pub fn check(&self) -> Result<(), String> {
        self.span()?;
        self.time_of_day()?;
        Ok(())
    }

    fn span(&self) -> Result<Span, String> {
        self.offset.trim().parse::<Span>().map_err(|_| {
            format!(
                "event.offset: `{}` is not an offset; write -1d (a day before), -2h or 3d",
                self.offset
            )
        })
    }

    fn time_of_day(&self) -> Result<Option<Time>, String> {
        self.deliver_at
            .as_deref()
            .map(|text| {
                text.parse::<Time>().map_err(|_| {
                    format!("event.deliver_at: `{text}` is not a time of day; write 09:00")
                })
            })
            .transpose()
    }

    /// When the event fires for `contact`, or why it cannot: the field is missing or not a
    /// datetime.
    ///
    /// # Errors
    ///
    /// A word for the exclusion (`no_datetime`) and its detail.
    pub fn fire_at(&self, contact: &Contact) -> Result<i64, (&'static str, String)> {
        let at_ms = match contact.fields.get(&self.field) {
            Some(FieldValue::Datetime { datetime_ms }) => *datetime_ms,
            Some(FieldValue::Text(text)) => crate::contacts::fields::parse_datetime(text)
                .ok_or_else(|| {
                    (
                        "no_datetime",
                        format!("fields.{} holds `{text}`, not a datetime", self.field),
                    )
                })?,
            Some(_) => {
                return Err((
                    "no_datetime",
                    format!("fields.{} is not a datetime", self.field),
                ));
            }
            None => {
                return Err(("no_datetime", format!("no fields.{}", self.field)));
            }
        };
        let invalid = |error: String| ("no_datetime", error);
        let zone = zone_of(contact);
        let at = Timestamp::from_millisecond(at_ms)
            .map_err(|error| invalid(error.to_string()))?
            .to_zoned(zone);
        let shifted = at
            .checked_add(self.span().map_err(invalid)?)
            .map_err(|error| invalid(error.to_string()))?;
        let fired = match self.time_of_day().map_err(invalid)? {
            Some(time) => at_local_time(&shifted, time).map_err(invalid)?,
            None => shifted,
        };
        Ok(fired.timestamp().as_millisecond())
    }
}

/// Where a contact stands with a campaign event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timing {
    /// The event time it waited for has come: start now.
    Due(i64),
    /// It comes at this time.
    Later(i64),
    /// Not at all, and why (`no_datetime`, `past_due`).
    Not(&'static str, String),
}

/// Where `contact` stands with `spec` at `now`. `due` is the event time a held target was
/// waiting for: when the datetime still gives it, the event is due; when the datetime moved,
/// the event moves with it. An event time already past when first seen is skipped
/// (`past_due`), never fired late.
pub fn timing(spec: &EventSpec, contact: &Contact, due: Option<i64>, now: i64) -> Timing {
    match spec.fire_at(contact) {
        Err((reason, detail)) => Timing::Not(reason, detail),
        Ok(at) if Some(at) == due && at <= now => Timing::Due(at),
        Ok(at) if at > now => Timing::Later(at),
        Ok(at) => Timing::Not(
            "past_due",
            format!(
                "the event time {} had passed",
                crate::compliance::gate::rfc3339(at)
            ),
        ),
    }
}

/// Whether a contact the campaign dealt with before has a new event to wait for: its
/// datetime moved to a future event time other than the one its target is for.
pub fn moved(campaign: &Campaign, target: &Target, contact: &Contact, now: i64) -> bool {
    let Some(spec) = &campaign.event else {
        return false;
    };
    if target.state == TargetState::Holdout {
        return false;
    }
    match spec.fire_at(contact) {
        Ok(at) => at > now && target.event_ms != Some(at),
        Err(_) => false,
    }
}

/// `zoned`'s date at local `time` (a time a spring-forward skips goes to the jump's end).
fn at_local_time(zoned: &Zoned, time: Time) -> Result<Zoned, String> {
    zoned
        .date()
        .to_datetime(time)
        .to_zoned(zoned.time_zone().clone())
        .map_err(|error| error.to_string())
}

/// The contact's zone: its own, else its number's first, else UTC.
fn zone_of(contact: &Contact) -> TimeZone {
    contact
        .time_zone
        .as_deref()
        .and_then(|name| TimeZone::get(name).ok())
        .or_else(|| {
            crate::compliance::quiet_hours::zones_for(&contact.phone)
                .into_iter()
                .next()
        })
        .unwrap_or(TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn contact(at: &str, zone: Option<&str>) -> Contact {
        Contact {
            id: "c-0000000000000001".to_owned(),
            phone: "+12125550143".to_owned(),
            fields: BTreeMap::from([(
                "appointment_at".to_owned(),
                FieldValue::Datetime {
                    datetime_ms: crate::contacts::fields::parse_datetime(at).unwrap(),
                },
            )]),
            tags: BTreeSet::new(),
            locale: None,
            time_zone: zone.map(str::to_owned),
            created_at_ms: 0,
            last_inbound_ms: None,
            last_outbound_ms: None,
        }
    }

    fn day_before_at_nine() -> EventSpec {
        EventSpec {
            field: "appointment_at".to_owned(),
            offset: "-1d".to_owned(),
            deliver_at: Some("09:00".to_owned()),
        }
    }

    fn utc(ms: i64) -> String {
        crate::compliance::gate::rfc3339(ms)
    }

    #[test]
    fn nine_in_the_morning_the_day_before_across_the_spring_change() {
        let spec = day_before_at_nine();
        // New York springs forward on Sunday 8 March 2026: 09:00 is 14:00Z on Saturday the
        // 7th (EST) and 13:00Z on Sunday the 8th (EDT).
        let saturday = spec
            .fire_at(&contact("2026-03-08T15:00:00Z", None))
            .unwrap();
        let sunday = spec
            .fire_at(&contact("2026-03-09T14:00:00Z", None))
            .unwrap();
        assert_eq!(utc(saturday), "2026-03-07T14:00:00Z");
        assert_eq!(utc(sunday), "2026-03-08T13:00:00Z");
        // An appointment just after midnight still gets the calendar day before.
        let early = spec
            .fire_at(&contact("2026-03-09T04:30:00Z", None))
            .unwrap();
        assert_eq!(utc(early), "2026-03-08T13:00:00Z");
    }

    #[test]
    fn the_contacts_own_zone_and_plain_offsets() {
        let spec = day_before_at_nine();
        let la = spec
            .fire_at(&contact(
                "2026-03-10T17:00:00Z",
                Some("America/Los_Angeles"),
            ))
            .unwrap();
        assert_eq!(utc(la), "2026-03-09T16:00:00Z");
        let later = EventSpec {
            field: "appointment_at".to_owned(),
            offset: "3d".to_owned(),
            deliver_at: None,
        };
        let at = later
            .fire_at(&contact("2026-03-02T15:00:00Z", None))
            .unwrap();
        assert_eq!(utc(at), "2026-03-05T15:00:00Z");
    }

    #[test]
    fn garbage_and_missing_fields_are_reasons_not_times() {
        let spec = day_before_at_nine();
        let mut garbage = contact("2026-03-02T15:00:00Z", None);
        garbage.fields.insert(
            "appointment_at".to_owned(),
            FieldValue::Text("next tuesday".to_owned()),
        );
        let (reason, detail) = spec.fire_at(&garbage).unwrap_err();
        assert_eq!(reason, "no_datetime");
        assert!(detail.contains("next tuesday"), "{detail}");
        garbage.fields.clear();
        assert_eq!(spec.fire_at(&garbage).unwrap_err().0, "no_datetime");
        let bad = EventSpec {
            offset: "a day before".to_owned(),
            ..day_before_at_nine()
        };
        assert!(bad.check().unwrap_err().contains("write -1d"));
        let bad = EventSpec {
            deliver_at: Some("9am".to_owned()),
            ..day_before_at_nine()
        };
        assert!(bad.check().unwrap_err().contains("write 09:00"));
    }
}
