//! The consent ledger on sled on disk: the hash chain, tamper detection, reopening, consent
//! state, exports and concurrent appends.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::thread;

use sha2::{Digest as _, Sha256};

use smsflow::compliance::ledger::{
    ALL_PROGRAMS, ConsentClass, ConsentEvent, ConsentRecord, ConsentSource, ConsentState,
    GENESIS_HASH, Ledger, LedgerError, NewConsent,
};
use smsflow::store::Store;
use smsflow::store::consent::ConsentLedger;

const ALICE: &str = "+12120001111";
const BOB: &str = "+12120002222";

fn open(dir: &Path) -> (Store, Ledger) {
    let store = Store::open(&dir.join("db")).unwrap();
    let ledger = Ledger::new(store.tables().consent);
    (store, ledger)
}

fn keyword(number: &str, program: &str, event: ConsentEvent, text: &str, at_ms: i64) -> NewConsent {
    NewConsent {
        number: number.to_owned(),
        program: program.to_owned(),
        class: ConsentClass::Marketing,
        event,
        source: ConsentSource::Keyword {
            keyword: text.trim().to_uppercase(),
            message_id: format!("SM{at_ms}"),
        },
        disclosure: None,
        frequency: None,
        raw_text: Some(text.to_owned()),
        at_ms,
    }
}

fn web_opt_in(number: &str, program: &str, class: ConsentClass, at_ms: i64) -> NewConsent {
    NewConsent {
        number: number.to_owned(),
        program: program.to_owned(),
        class,
        event: ConsentEvent::OptIn,
        source: ConsentSource::WebForm {
            url: "https://example.com/join".to_owned(),
            ip: "203.0.113.7".to_owned(),
            user_agent: "Mozilla/5.0".to_owned(),
        },
        disclosure: Some("Deals from Example. Up to 4 msgs/mo. Reply STOP to end.".to_owned()),
        frequency: Some("up to 4 msgs/month".to_owned()),
        raw_text: None,
        at_ms,
    }
}

/// Five records: Alice opts in, Bob opts in, Alice asks for help, Bob stops, Alice stops.
fn append_five(ledger: &Ledger) -> Vec<ConsentRecord> {
    [
        web_opt_in(ALICE, "deals", ConsentClass::Marketing, 1_000),
        web_opt_in(BOB, "deals", ConsentClass::Marketing, 2_000),
        keyword(ALICE, "deals", ConsentEvent::Help, "help", 3_000),
        keyword(BOB, "deals", ConsentEvent::OptOut, "STOP", 4_000),
        keyword(ALICE, "deals", ConsentEvent::OptOut, "stop please", 5_000),
    ]
    .into_iter()
    .map(|new| ledger.append(new).unwrap())
    .collect()
}

fn stored(tree: &ConsentLedger, seq: u64) -> ConsentRecord {
    tree.get(seq).unwrap().unwrap()
}

/// Writes `record` under its own seq as it is, bypassing the chain.
fn store_raw(tree: &ConsentLedger, record: &ConsentRecord) {
    tree.overwrite_for_tests(record.seq, record).unwrap();
}

#[test]
fn appends_form_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ledger) = open(dir.path());
    assert_eq!(ledger.verify().unwrap(), 0);
    assert_eq!(ledger.head().unwrap(), None);

    let records = append_five(&ledger);
    assert_eq!(ledger.verify().unwrap(), 5);
    let seqs: Vec<u64> = records.iter().map(|record| record.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(records[0].prev_hash, GENESIS_HASH);
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for record in &records {
        assert_eq!(record.hash, record.compute_hash());
        assert_eq!(record.hash.len(), 64);
    }
    // The disclosure's hash is computed on append.
    let disclosure = records[0].disclosure.as_deref().unwrap();
    assert_eq!(
        records[0].disclosure_sha256,
        Some(hex::encode(Sha256::digest(disclosure.as_bytes())))
    );
    assert_eq!(records[2].disclosure_sha256, None);
    assert_eq!(ledger.head().unwrap(), Some((5, records[4].hash.clone())));

    assert_eq!(ledger.all().unwrap(), records);
    let alice = ledger.records_for(ALICE).unwrap();
    assert_eq!(
        alice.iter().map(|record| record.seq).collect::<Vec<_>>(),
        [1, 3, 5]
    );
    assert!(alice.iter().all(|record| record.number == ALICE));
    assert_eq!(
        ledger
            .records_for(BOB)
            .unwrap()
            .iter()
            .map(|record| record.seq)
            .collect::<Vec<_>>(),
        [2, 4]
    );
    assert!(ledger.records_for("+12129999999").unwrap().is_empty());

    // Stored exactly as returned.
    let tree = open_tree(&store);
    assert_eq!(stored(&tree, 3), records[2]);
}

fn open_tree(store: &Store) -> ConsentLedger {
    store.tables().consent
}

#[test]
fn refuses_records_without_number_or_program() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, ledger) = open(dir.path());
    let mut new = web_opt_in(ALICE, "deals", ConsentClass::Marketing, 1);
    new.number = " ".to_owned();
    assert!(ledger.append(new).is_err());
    let mut new = web_opt_in(ALICE, "deals", ConsentClass::Marketing, 1);
    new.program = String::new();
    assert!(ledger.append(new).is_err());
    assert_eq!(ledger.verify().unwrap(), 0);
}

#[test]
fn altered_record_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ledger) = open(dir.path());
    append_five(&ledger);
    let tree = open_tree(&store);

    // Change what the contact texted, keep the stored hash.
    let mut record = stored(&tree, 3);
    record.raw_text = Some("START".to_owned());
    store_raw(&tree, &record);
    let error = ledger.verify().unwrap_err();
    assert!(
        matches!(error, LedgerError::HashMismatch { seq: 3, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("seq 3"), "{error}");

    // Move the record to another number instead.
    let mut record = stored(&tree, 3);
    record.raw_text = Some("help".to_owned());
    store_raw(&tree, &record);
    assert_eq!(ledger.verify().unwrap(), 5);
    record.number = BOB.to_owned();
    store_raw(&tree, &record);
    assert!(matches!(
        ledger.verify().unwrap_err(),
        LedgerError::HashMismatch { seq: 3, .. }
    ));

    // Re-hash the altered record: it now checks out, but the next record no longer links.
    record.hash = record.compute_hash();
    store_raw(&tree, &record);
    let error = ledger.verify().unwrap_err();
    assert!(
        matches!(error, LedgerError::BrokenLink { seq: 4, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("seq 4"), "{error}");
}

#[test]
fn altered_disclosure_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ledger) = open(dir.path());
    append_five(&ledger);
    let tree = open_tree(&store);
    let mut record = stored(&tree, 2);
    record.disclosure = Some("Unlimited msgs.".to_owned());
    record.hash = record.compute_hash();
    store_raw(&tree, &record);
    assert!(matches!(
        ledger.verify().unwrap_err(),
        LedgerError::DisclosureMismatch { seq: 2 }
    ));
}

#[test]
fn removed_or_misplaced_records_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ledger) = open(dir.path());
    append_five(&ledger);
    let tree = open_tree(&store);

    // A record stored under another key.
    let third = stored(&tree, 3);
    tree.overwrite_for_tests(3, &stored(&tree, 2)).unwrap();
    assert!(matches!(
        ledger.verify().unwrap_err(),
        LedgerError::KeyMismatch { key: 3, seq: 2 }
    ));
    store_raw(&tree, &third);
    assert_eq!(ledger.verify().unwrap(), 5);

    // A record that does not decode.
    tree.overwrite_raw_for_tests(3, b"\x01{not json").unwrap();
    assert!(matches!(
        ledger.verify().unwrap_err(),
        LedgerError::Undecodable { seq: 3, .. }
    ));
    store_raw(&tree, &third);

    // A record removed from the middle.
    tree.remove_for_tests(3).unwrap();
    let error = ledger.verify().unwrap_err();
    assert!(
        matches!(
            error,
            LedgerError::OutOfSequence {
                expected: 3,
                found: 4
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("seq 3"), "{error}");

    // Removing the first record is a gap too.
    store_raw(&tree, &third);
    tree.remove_for_tests(1).unwrap();
    assert!(matches!(
        ledger.verify().unwrap_err(),
        LedgerError::OutOfSequence {
            expected: 1,
            found: 2
        }
    ));
}

#[test]
fn chain_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let fifth = {
        let (store, ledger) = open(dir.path());
        let records = append_five(&ledger);
        store.flush_sync().unwrap();
        records[4].clone()
    };
    let (store, ledger) = open(dir.path());
    assert_eq!(ledger.verify().unwrap(), 5);
    let sixth = ledger
        .append(keyword(BOB, "deals", ConsentEvent::OptIn, "START", 6_000))
        .unwrap();
    assert_eq!(sixth.seq, 6);
    assert_eq!(sixth.prev_hash, fifth.hash);
    store.flush_sync().unwrap();
    assert_eq!(ledger.verify().unwrap(), 6);
    drop((store, ledger));

    let (_store, ledger) = open(dir.path());
    assert_eq!(ledger.verify().unwrap(), 6);
    assert_eq!(ledger.all().unwrap()[5], sixth);
}

#[test]
fn consent_state() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, ledger) = open(dir.path());
    let marketing = |program| {
        ledger
            .state(ALICE, program, ConsentClass::Marketing)
            .unwrap()
    };
    assert_eq!(marketing("deals"), ConsentState::Unknown);

    ledger
        .append(web_opt_in(ALICE, "deals", ConsentClass::Marketing, 1_000))
        .unwrap();
    assert_eq!(
        marketing("deals"),
        ConsentState::OptedIn { since_ms: 1_000 }
    );
    // An opt-in is for its program only.
    assert_eq!(marketing("alerts"), ConsentState::Unknown);
    // Help and confirmations change nothing.
    ledger
        .append(keyword(ALICE, "deals", ConsentEvent::Help, "HELP", 1_500))
        .unwrap();
    ledger
        .append(keyword(
            ALICE,
            "deals",
            ConsentEvent::ConfirmationSent,
            "",
            1_600,
        ))
        .unwrap();
    assert_eq!(
        marketing("deals"),
        ConsentState::OptedIn { since_ms: 1_000 }
    );

    // STOP for the program.
    ledger
        .append(keyword(ALICE, "deals", ConsentEvent::OptOut, "STOP", 2_000))
        .unwrap();
    assert_eq!(
        marketing("deals"),
        ConsentState::OptedOut { since_ms: 2_000 }
    );
    // Any opt-out covers both classes.
    assert_eq!(
        ledger
            .state(ALICE, "deals", ConsentClass::Transactional)
            .unwrap(),
        ConsentState::OptedOut { since_ms: 2_000 }
    );
    // Bob is unaffected.
    assert_eq!(
        ledger.state(BOB, "deals", ConsentClass::Marketing).unwrap(),
        ConsentState::Unknown
    );

    // START afterwards.
    ledger
        .append(keyword(ALICE, "deals", ConsentEvent::OptIn, "START", 3_000))
        .unwrap();
    assert_eq!(
        marketing("deals"),
        ConsentState::OptedIn { since_ms: 3_000 }
    );

    // A back-dated import recorded after a STOP does not override it.
    ledger
        .append(keyword(ALICE, "deals", ConsentEvent::OptOut, "STOP", 4_000))
        .unwrap();
    let mut import = web_opt_in(ALICE, "deals", ConsentClass::Marketing, 500);
    import.source = ConsentSource::Import {
        batch: "crm-2023".to_owned(),
    };
    ledger.append(import).unwrap();
    assert_eq!(
        marketing("deals"),
        ConsentState::OptedOut { since_ms: 4_000 }
    );
    ledger
        .append(keyword(ALICE, "deals", ConsentEvent::OptIn, "START", 5_000))
        .unwrap();

    // STOPALL covers every program, including ones the contact never joined.
    ledger
        .append(web_opt_in(ALICE, "alerts", ConsentClass::Marketing, 5_500))
        .unwrap();
    assert_eq!(
        marketing("alerts"),
        ConsentState::OptedIn { since_ms: 5_500 }
    );
    ledger
        .append(keyword(
            ALICE,
            ALL_PROGRAMS,
            ConsentEvent::OptOut,
            "STOPALL",
            6_000,
        ))
        .unwrap();
    assert_eq!(
        marketing("alerts"),
        ConsentState::OptedOut { since_ms: 6_000 }
    );
    assert_eq!(
        marketing("deals"),
        ConsentState::OptedOut { since_ms: 6_000 }
    );
    assert_eq!(
        marketing("never-joined"),
        ConsentState::OptedOut { since_ms: 6_000 }
    );

    // Opting into transactional texts gives no marketing consent.
    ledger
        .append(web_opt_in(
            ALICE,
            "alerts",
            ConsentClass::Transactional,
            7_000,
        ))
        .unwrap();
    assert_eq!(
        ledger
            .state(ALICE, "alerts", ConsentClass::Transactional)
            .unwrap(),
        ConsentState::OptedIn { since_ms: 7_000 }
    );
    assert_eq!(
        marketing("alerts"),
        ConsentState::OptedOut { since_ms: 6_000 }
    );
    ledger
        .append(web_opt_in(
            BOB,
            "alerts",
            ConsentClass::Transactional,
            7_000,
        ))
        .unwrap();
    assert_eq!(
        ledger
            .state(BOB, "alerts", ConsentClass::Marketing)
            .unwrap(),
        ConsentState::Unknown
    );

    // Changes in the same millisecond: the one recorded last wins.
    ledger
        .append(web_opt_in(ALICE, "alerts", ConsentClass::Marketing, 8_000))
        .unwrap();
    ledger
        .append(keyword(
            ALICE,
            "alerts",
            ConsentEvent::OptOut,
            "STOP",
            8_000,
        ))
        .unwrap();
    assert_eq!(
        marketing("alerts"),
        ConsentState::OptedOut { since_ms: 8_000 }
    );

    assert_eq!(ledger.verify().unwrap(), 14);
}

/// Parses RFC 4180 CSV (CRLF records, quoted fields) strictly.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
        } else {
            match c {
                '"' => {
                    assert!(field.is_empty(), "quote inside an unquoted field");
                    quoted = true;
                }
                ',' => row.push(std::mem::take(&mut field)),
                '\r' => {
                    assert_eq!(chars.next(), Some('\n'), "bare CR");
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                '\n' => panic!("bare LF outside quotes"),
                c => field.push(c),
            }
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "unterminated last row"
    );
    rows
}

#[test]
fn exports() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, ledger) = open(dir.path());
    let tricky = "STOP, I said \"STOP\"\r\nnow";
    append_five(&ledger);
    let mut new = keyword(ALICE, "deals", ConsentEvent::OptOut, tricky, 6_000);
    new.source = ConsentSource::Api { actor: None };
    ledger.append(new).unwrap();
    let alice = ledger.records_for(ALICE).unwrap();

    let json = ledger.export_json(ALICE).unwrap();
    let parsed: Vec<ConsentRecord> = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, alice);
    assert!(
        parsed
            .iter()
            .all(|record| record.hash == record.compute_hash())
    );
    assert!(json.contains("\n  {"), "pretty-printed");
    assert!(json.contains(r#""kind": "web_form""#), "{json}");
    assert_eq!(ledger.export_json("+12129999999").unwrap(), "[]");

    let csv = ledger.export_csv(ALICE).unwrap();
    assert!(csv.starts_with(
        "seq,number,program,class,event,source_kind,source,disclosure,disclosure_sha256,\
         frequency,raw_text,at_ms,at_utc,prev_hash,hash\r\n"
    ));
    assert!(
        csv.contains(r#","STOP, I said ""STOP"""#),
        "quotes doubled inside a quoted field: {csv}"
    );
    assert!(csv.contains("\"STOP, I said \"\"STOP\"\"\r\nnow\","));
    let rows = parse_csv(&csv);
    assert_eq!(rows.len(), 1 + alice.len());
    assert!(rows.iter().all(|row| row.len() == rows[0].len()));
    let column = |name: &str| rows[0].iter().position(|header| header == name).unwrap();
    for (row, record) in rows[1..].iter().zip(&alice) {
        assert_eq!(row[column("seq")], record.seq.to_string());
        assert_eq!(row[column("number")], record.number);
        assert_eq!(
            row[column("raw_text")],
            record.raw_text.clone().unwrap_or_default()
        );
        assert_eq!(row[column("hash")], record.hash);
        assert_eq!(
            row[column("event")],
            serde_json::to_value(record.event).unwrap()
        );
        assert_eq!(
            serde_json::from_str::<ConsentSource>(&row[column("source")]).unwrap(),
            record.source
        );
    }
    let last = rows.last().unwrap();
    assert_eq!(last[column("raw_text")], tricky);
    assert_eq!(last[column("source_kind")], "api");
    assert_eq!(last[column("at_utc")], "1970-01-01T00:00:06.000Z");
    assert_eq!(rows[1][column("frequency")], "up to 4 msgs/month");
    assert_eq!(rows[1][column("disclosure_sha256")].len(), 64);
    assert_eq!(
        ledger.export_csv("+12129999999").unwrap().lines().count(),
        1,
        "header only"
    );
}

#[test]
fn concurrent_appends_form_one_chain() {
    const THREADS: u64 = 8;
    const EACH: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let (store, ledger) = open(dir.path());
    // Two independent ledgers over the same tree as well as clones: the chain must not fork
    // even when the in-process lock is not shared.
    let other = Ledger::new(open_tree(&store));
    thread::scope(|scope| {
        for thread in 0..THREADS {
            let ledger = if thread % 2 == 0 {
                ledger.clone()
            } else {
                other.clone()
            };
            scope.spawn(move || {
                for i in 0..EACH {
                    let number = format!("+1212000{thread:04}");
                    let at_ms = i64::try_from(thread * 1_000 + i).unwrap();
                    ledger
                        .append(keyword(
                            &number,
                            "deals",
                            ConsentEvent::OptIn,
                            "START",
                            at_ms,
                        ))
                        .unwrap();
                }
            });
        }
    });
    let total = THREADS * EACH;
    assert_eq!(ledger.verify().unwrap(), usize::try_from(total).unwrap());
    let all = ledger.all().unwrap();
    assert_eq!(
        all.iter().map(|record| record.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    for thread in 0..THREADS {
        let records = ledger.records_for(&format!("+1212000{thread:04}")).unwrap();
        let times: Vec<i64> = records.iter().map(|record| record.at_ms).collect();
        let expected: Vec<i64> = (0..EACH)
            .map(|i| i64::try_from(thread * 1_000 + i).unwrap())
            .collect();
        assert_eq!(times, expected, "each writer's records in its order");
    }
}
