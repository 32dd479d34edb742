//! The compliance gate's cost per text: what `outbound` pays before every provider call.
//!
//! Each sample is one `Gate::decide` on a store holding a small ledger and send log: consent
//! state from the ledger, the content rules, the send log's caps, and quiet hours in every zone
//! of the number. `open`: a New York number in its window (the common case). `two zones`: an
//! Idaho 208 number (Boise and Pacific). `closed`: a Florida number at night, so the next
//! opening is searched. `opted out`: stopped by the first rule.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use smsflow::compliance::gate::{Candidate, Gate, Origin};
use smsflow::compliance::ledger::{ConsentClass, ConsentEvent, ConsentSource, NewConsent};
use smsflow::store::{Batch, Store};

const NOON_NEW_YORK: i64 = 1_772_557_200_000; // 2026-03-03T17:00:00Z
const MIDNIGHT_NEW_YORK: i64 = 1_772_600_400_000; // 2026-03-04T05:00:00Z

fn candidate(to: &str) -> Candidate<'_> {
    Candidate {
        to,
        body: "Bright Smile: your visit is tomorrow at 10:00. Reply YES to confirm, STOP to opt out.",
        program: Some("clinic"),
        class: ConsentClass::Transactional,
        origin: Origin::Flow,
        subject: Some("visit"),
        brand: Some("Bright Smile"),
        locale: None,
        address_state: None,
        queued_at_ms: NOON_NEW_YORK,
        valid_until_ms: None,
    }
}

fn gate(criterion: &mut Criterion) {
    let store = Store::temporary().unwrap();
    let gate = Gate::with_defaults(&store.tables()).unwrap();
    let ledger = gate.compliance().ledger();
    // A ledger of 1000 other numbers, and one opt-out.
    for n in 0..1000 {
        ledger
            .append(NewConsent {
                number: format!("+1212555{n:04}"),
                program: "clinic".into(),
                class: ConsentClass::Transactional,
                event: ConsentEvent::OptIn,
                source: ConsentSource::Api { actor: None },
                disclosure: Some("terms".into()),
                frequency: None,
                raw_text: None,
                at_ms: NOON_NEW_YORK - 1000,
            })
            .unwrap();
    }
    ledger
        .append(NewConsent {
            number: "+12125559999".into(),
            program: "clinic".into(),
            class: ConsentClass::Transactional,
            event: ConsentEvent::OptOut,
            source: ConsentSource::Keyword {
                keyword: "STOP".into(),
                message_id: "SM1".into(),
            },
            disclosure: None,
            frequency: None,
            raw_text: Some("STOP".into()),
            at_ms: NOON_NEW_YORK - 1000,
        })
        .unwrap();
    for (seq, to) in ["+12125550100", "+12085550103", "+13055550101"]
        .iter()
        .enumerate()
    {
        let mut batch = Batch::new();
        let mut appending = ledger.appending();
        gate.record_sent_in(
            &mut batch,
            &mut appending,
            seq as u64,
            &candidate(to),
            "out-1",
            NOON_NEW_YORK - 60_000,
        )
        .unwrap();
        store.apply(batch).unwrap();
        appending.committed();
    }
    let mut group = criterion.benchmark_group("gate decide");
    for (name, to, now) in [
        ("open", "+12125550100", NOON_NEW_YORK),
        ("two zones", "+12085550103", NOON_NEW_YORK),
        ("closed", "+13055550101", MIDNIGHT_NEW_YORK),
        ("opted out", "+12125559999", NOON_NEW_YORK),
    ] {
        group.bench_function(name, |bench| {
            bench.iter(|| gate.decide(&candidate(to), now).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, gate);
criterion_main!(benches);
