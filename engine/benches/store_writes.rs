//! What a turn's writes cost, three ways: one `store::Batch` on the one tree (what the engine
//! does), the same writes as separate inserts (not atomic), and a sled transaction over one tree
//! per table (the layout before the store API). Each sample writes a conversation row of about
//! 1 KB, three transcript entries, an outbox row, its due key, a timer and the processed mark,
//! on a database on disk, not flushed (the flush, an fsync, is shared between writers and
//! measured apart, last).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use sled::Transactional as _;
use smsflow::flow::conversation::{Conversation, Entry, Event};
use smsflow::outbound::OutboundMessage;
use smsflow::store::outbox::Due;
use smsflow::store::{Batch, Store};

/// The rows of one turn: (key, value) per table, encoded as the store encodes them.
struct Turn {
    conversation: Conversation,
    entries: Vec<Entry>,
    message: OutboundMessage,
}

fn turn(n: u64) -> Turn {
    let contact = format!("+1212{:07}", n % 10_000_000);
    let mut conversation = Conversation::new("+15550001000", &contact, 1);
    for (name, value) in [
        ("first_name", "Ana"),
        ("date", "March 3"),
        ("time", "10:00"),
    ] {
        conversation.fields.insert(name.into(), value.into());
    }
    conversation
        .fields
        .insert("reply".into(), "Yes please!".repeat(8));
    let entries = (0..3)
        .map(|seq| Entry {
            seq,
            at_ms: 1,
            event: Event::Step {
                step: format!("step-{seq}"),
            },
        })
        .collect();
    let message = OutboundMessage::new(
        format!("out-{n:016x}"),
        "+15550001000".into(),
        contact,
        "Thanks, see you then! Reply STOP to opt out.".into(),
        1,
    );
    Turn {
        conversation,
        entries,
        message,
    }
}

fn encoded(turn: &Turn, n: u64) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let key = format!(
        "{}\0{}",
        turn.conversation.our_number, turn.conversation.contact
    );
    let mut rows = vec![(
        "conversations",
        key.clone().into_bytes(),
        smsflow::store::codec::encode(&turn.conversation).unwrap(),
    )];
    for entry in &turn.entries {
        let mut entry_key = key.clone().into_bytes();
        entry_key.push(0);
        entry_key.extend_from_slice(&entry.seq.to_be_bytes());
        rows.push((
            "transcript",
            entry_key,
            smsflow::store::codec::encode(entry).unwrap(),
        ));
    }
    rows.push((
        "outbox",
        n.to_be_bytes().to_vec(),
        smsflow::store::codec::encode(&turn.message).unwrap(),
    ));
    rows.push(("outbox_due", [1u8; 16].to_vec(), Vec::new()));
    rows.push(("timers", [2u8; 24].to_vec(), vec![1; 120]));
    rows.push((
        "processed",
        format!("twilio:SM{n}").into_bytes(),
        vec![0; 8],
    ));
    rows
}

fn store_writes(criterion: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let tables = store.tables();
    let next = AtomicU64::new(0);
    let mut group = criterion.benchmark_group("a turn's writes");
    group.bench_function("one batch, one tree", |bench| {
        bench.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let turn = turn(n);
            let mut batch = Batch::new();
            tables
                .conversations
                .put_in(&mut batch, &turn.conversation)
                .unwrap();
            let key = turn.conversation.key();
            tables
                .transcript
                .put_turn_in(&mut batch, &key, &turn.entries)
                .unwrap();
            tables
                .outbox
                .queue_in(&mut batch, n, &turn.message)
                .unwrap();
            tables
                .outbox_due
                .put_in(&mut batch, Due { due_ms: 1, seq: n })
                .unwrap();
            tables
                .processed
                .put_in(&mut batch, &format!("twilio:SM{n}"), 1)
                .unwrap();
            store.apply(batch).unwrap();
        });
    });

    let legacy = sled::open(dir.path().join("legacy")).unwrap();
    let names = [
        "conversations",
        "transcript",
        "outbox",
        "outbox_due",
        "timers",
        "processed",
    ];
    let trees: Vec<sled::Tree> = names
        .iter()
        .map(|name| legacy.open_tree(name).unwrap())
        .collect();
    let tree_of = |name: &str| names.iter().position(|n| *n == name).unwrap();
    group.bench_function("separate inserts, a tree per table", |bench| {
        bench.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            for (table, key, value) in encoded(&turn(n), n) {
                trees[tree_of(table)].insert(key, value).unwrap();
            }
        });
    });
    group.bench_function("a transaction over a tree per table", |bench| {
        bench.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let rows = encoded(&turn(n), n);
            trees
                .as_slice()
                .transaction(|trees| {
                    for (table, key, value) in &rows {
                        trees[tree_of(table)].insert(key.as_slice(), value.as_slice())?;
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .unwrap();
        });
    });
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    group.bench_function("a flush (fsync) after one batch", |bench| {
        bench.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let mut batch = Batch::new();
            tables
                .processed
                .put_in(&mut batch, &format!("twilio:flush{n}"), 1)
                .unwrap();
            store.apply(batch).unwrap();
            tokio.block_on(store.flush()).unwrap();
        });
    });
    group.finish();
}

criterion_group!(benches, store_writes);
criterion_main!(benches);
