//! The segment query language operators pick campaign audiences with.
//!
//! Input: a query, checked against a schema with one field of each type and evaluated on
//! contacts from empty to extreme.

use std::collections::{BTreeMap, BTreeSet};

use smsflow::contacts::{Contact, FieldType, FieldValue};
use smsflow::segments::{Facts, Query, Schema};

/// 2026-03-15T00:00:00Z, the "now" queries are evaluated at.
const NOW: i64 = 1_773_532_800_000;
/// One day in milliseconds.
const DAY: i64 = 86_400_000;
/// About the earliest and latest instants a datetime field can hold (jiff's range).
const EARLIEST: i64 = -377_705_023_201_000;
const LATEST: i64 = 253_402_207_200_999;

/// A ledger that says the same of every contact and program.
struct Ledger {
    opted_out: bool,
}

impl Facts for Ledger {
    fn opted_out(&self, _: &Contact, _: Option<&str>) -> bool {
        self.opted_out
    }
    fn has_consent(&self, _: &Contact, _: &str) -> bool {
        !self.opted_out
    }
}

/// Checks one input; panics when an invariant breaks.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = schema();
    let query = match Query::parse(text, &schema) {
        Ok(query) => query,
        Err(error) => {
            let columns = text.chars().count() + 1;
            assert!((1..=columns).contains(&error.column), "{error:?}");
            return;
        }
    };
    assert_eq!(query.text(), text);
    // Wrapping a query in `not ( )` negates it, wherever it is evaluated (unless the wrapping
    // crosses the length or depth limit).
    let negated = Query::parse(&format!("not ({text})"), &schema).ok();
    for contact in contacts() {
        for ledger in [Ledger { opted_out: false }, Ledger { opted_out: true }] {
            let matched = query.matches(&contact, &ledger, NOW);
            if let Some(negated) = &negated {
                assert_eq!(
                    negated.matches(&contact, &ledger, NOW),
                    !matched,
                    "{contact:?}"
                );
            }
        }
    }
}

/// A field of each type.
fn schema() -> Schema {
    [
        ("city", FieldType::Text),
        ("age", FieldType::Number),
        ("state", FieldType::State),
        ("renewal", FieldType::Datetime),
    ]
    .into_iter()
    .map(|(name, kind)| (name.to_owned(), kind))
    .collect()
}

/// A contact with nothing optional set, one with everything set, and one at the edges of every
/// type.
fn contacts() -> [Contact; 3] {
    let bare = Contact {
        id: "c-0000000000000001".into(),
        phone: "+14155550100".into(),
        fields: BTreeMap::new(),
        tags: BTreeSet::new(),
        locale: None,
        time_zone: None,
        created_at_ms: NOW - 100 * DAY,
        last_inbound_ms: None,
        last_outbound_ms: None,
    };
    let full = Contact {
        tags: ["vip", "beta"].into_iter().map(String::from).collect(),
        locale: Some("en-US".into()),
        time_zone: Some("America/New_York".into()),
        last_inbound_ms: Some(NOW - 10 * DAY),
        last_outbound_ms: Some(NOW - 95 * DAY),
        fields: fields("Tampa", 42.0, "FL", NOW + 5 * DAY),
        ..bare.clone()
    };
    let edges = Contact {
        tags: ["ÉCOLE", "ß", ""].into_iter().map(String::from).collect(),
        locale: Some(String::new()),
        time_zone: Some("Etc/GMT+12".into()),
        created_at_ms: EARLIEST,
        last_inbound_ms: Some(LATEST),
        last_outbound_ms: Some(EARLIEST),
        fields: fields("İstanbul ǅ", -f64::MAX, "ZZZ", EARLIEST),
        ..bare.clone()
    };
    [bare, full, edges]
}

fn fields(city: &str, age: f64, state: &str, renewal: i64) -> BTreeMap<String, FieldValue> {
    [
        ("city", FieldValue::Text(city.into())),
        ("age", FieldValue::Number(age)),
        (
            "state",
            FieldValue::State {
                state: state.into(),
            },
        ),
        (
            "renewal",
            FieldValue::Datetime {
                datetime_ms: renewal,
            },
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}
