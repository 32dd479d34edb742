//! The consent ledger: an append-only, hash-chained record of every consent change, so each
//! opt-in and opt-out can be proven later.
//!
//! Records live in the store's consent table ([`crate::store::consent`]) under `<seq u64 BE>`.
//! Sequence numbers start at 1 and have no gaps. Each record carries the hash of the one before it (`prev_hash`) and its own `hash`,
//! so altering, removing or reordering any record breaks the chain, which [`Ledger::verify`]
//! reports by sequence number.
//!
//! # The hash
//!
//! `hash = hex(sha256(prev_hash ‖ canonical))`, lowercase hex, where `prev_hash` is the previous
//! record's `hash` as its 64 ASCII hex characters (64 `0`s for the record with seq 1, see
//! [`GENESIS_HASH`]) and `canonical` is the UTF-8 of a canonical JSON object holding every
//! other field of the record (everything except `prev_hash` and `hash`):
//!
//! - keys are the serde field names (`at_ms`, `class`, `disclosure`, `disclosure_sha256`,
//!   `event`, `frequency`, `number`, `program`, `raw_text`, `seq`, `source`), sorted by their
//!   bytes, in every object including the nested `source` object (`kind` plus the variant's
//!   fields);
//! - fields whose value is absent (`None`) are left out, so an optional field added later does
//!   not change the hashes of existing records;
//! - enum values are their serde names (`"marketing"`, `"opt_out"`, `"web_form"`, …);
//!   integers are written in decimal;
//! - no whitespace between tokens; strings are written as they are, except `"` → `\"`,
//!   `\` → `\\`, the control characters U+0008, U+0009, U+000A, U+000C and U+000D → `\b`, `\t`,
//!   `\n`, `\f`, `\r`, and the other control characters below U+0020 → `\u00xx` (lowercase hex).
//!   No other character is escaped.
//!
//! This is what Python's `json.dumps(obj, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)` produces for the same object, so an auditor can recompute the chain
//! from an export (see [`Ledger::export_json`]) without this code.
//!
//! `disclosure_sha256` is `hex(sha256(disclosure))` over the disclosure text's UTF-8, computed
//! on append; [`Ledger::verify`] checks it too.
//!
//! # What the chain cannot show
//!
//! Removing records from the end of the ledger leaves a shorter chain that still verifies.
//! Anchor the ledger by keeping [`Ledger::head`] somewhere else (a log line, a signed daily
//! digest) and comparing it later.

use std::sync::MutexGuard;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::store::consent::ChainState;
pub use crate::store::consent::{
    ALL_PROGRAMS, ConsentClass, ConsentEvent, ConsentLedger, ConsentRecord, ConsentSource,
};
use crate::store::{Batch, StoreError};

/// The `prev_hash` of the first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl ConsentSource {
    /// The canonical JSON members (see the module documentation), unsorted.
    fn canonical_members(&self) -> Vec<(&'static str, Canon<'_>)> {
        let mut members = vec![("kind", Canon::Str(self.kind()))];
        match self {
            Self::Keyword {
                keyword,
                message_id,
            } => {
                members.push(("keyword", Canon::Str(keyword)));
                members.push(("message_id", Canon::Str(message_id)));
            }
            Self::Api { actor } => {
                if let Some(actor) = actor {
                    members.push(("actor", Canon::Str(actor)));
                }
            }
            Self::WebForm {
                url,
                ip,
                user_agent,
            } => {
                members.push(("url", Canon::Str(url)));
                members.push(("ip", Canon::Str(ip)));
                members.push(("user_agent", Canon::Str(user_agent)));
            }
            Self::Import { batch } => members.push(("batch", Canon::Str(batch))),
            Self::Provider { provider, detail } => {
                members.push(("provider", Canon::Str(provider)));
                members.push(("detail", Canon::Str(detail)));
            }
        }
        members
    }
}

impl ConsentRecord {
    /// The canonical JSON of every field except `prev_hash` and `hash`: the bytes hashed after
    /// `prev_hash` (the exact form is in the module documentation).
    pub fn canonical_json(&self) -> String {
        let mut members = vec![
            ("seq", Canon::UInt(self.seq)),
            ("number", Canon::Str(&self.number)),
            ("program", Canon::Str(&self.program)),
            ("class", Canon::Str(self.class.as_str())),
            ("event", Canon::Str(self.event.as_str())),
            ("source", Canon::Obj(self.source.canonical_members())),
            ("at_ms", Canon::Int(self.at_ms)),
        ];
        let optional = [
            ("disclosure", &self.disclosure),
            ("disclosure_sha256", &self.disclosure_sha256),
            ("frequency", &self.frequency),
            ("raw_text", &self.raw_text),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                members.push((name, Canon::Str(value)));
            }
        }
        let mut out = String::new();
        Canon::Obj(members).write(&mut out);
        out
    }

    /// The hash this record should carry given its `prev_hash` and other fields:
    /// `hex(sha256(prev_hash ‖ canonical_json))`.
    pub fn compute_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(self.canonical_json().as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// A value in the canonical JSON form.
enum Canon<'a> {
    Str(&'a str),
    Int(i64),
    UInt(u64),
    /// Members in any order; written sorted by key.
    Obj(Vec<(&'static str, Canon<'a>)>),
}

impl Canon<'_> {
    fn write(self, out: &mut String) {
        match self {
            Self::Str(text) => write_json_string(text, out),
            Self::Int(n) => out.push_str(&n.to_string()),
            Self::UInt(n) => out.push_str(&n.to_string()),
            Self::Obj(mut members) => {
                members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                out.push('{');
                for (index, (key, value)) in members.into_iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    write_json_string(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes `text` as a JSON string with the minimal escaping of the module documentation.
fn write_json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Lowercase hex SHA-256 of `text`'s UTF-8.
fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A consent change to record; [`Ledger::append`] adds the sequence number and the hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewConsent {
    /// The contact's number (E.164 by convention; the ledger matches it exactly).
    pub number: String,
    /// The messaging program, or [`ALL_PROGRAMS`] for an opt-out from every program.
    pub program: String,
    /// Which kind of messages the change is about.
    pub class: ConsentClass,
    /// What happened.
    pub event: ConsentEvent,
    /// Where it came from.
    pub source: ConsentSource,
    /// The disclosure (terms) text the contact was shown, if any.
    pub disclosure: Option<String>,
    /// The message frequency promised.
    pub frequency: Option<String>,
    /// The inbound text, for keyword events.
    pub raw_text: Option<String>,
    /// When the change happened, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// A contact's consent for one program and class, as the ledger shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentState {
    /// No opt-in or opt-out applies.
    Unknown,
    /// The latest applicable change is an opt-in.
    OptedIn {
        /// When that opt-in happened (its `at_ms`).
        since_ms: i64,
    },
    /// The latest applicable change is an opt-out.
    OptedOut {
        /// When that opt-out happened (its `at_ms`).
        since_ms: i64,
    },
}

/// Why [`Ledger::verify`] rejected the ledger. Each names the sequence number where the chain
/// broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The tree could not be read.
    #[error("cannot read the consent ledger: {0}")]
    Storage(#[from] StoreError),
    /// A key is not an 8-byte sequence number.
    #[error("consent ledger key {key} (hex) is not an 8-byte sequence number")]
    MalformedKey {
        /// The key, in hex.
        key: String,
    },
    /// The keys skip or repeat a sequence number: records are missing or out of place.
    #[error("consent ledger expected seq {expected} but found seq {found}: records are missing")]
    OutOfSequence {
        /// The sequence number that should have come next.
        expected: u64,
        /// The key found instead.
        found: u64,
    },
    /// A record does not decode.
    #[error("consent record seq {seq} does not decode: {reason}")]
    Undecodable {
        /// The record's key.
        seq: u64,
        /// The decoder's message.
        reason: String,
    },
    /// A record's `seq` field differs from its key.
    #[error("consent record under key {key} says it is seq {seq}")]
    KeyMismatch {
        /// The key the record is stored under.
        key: u64,
        /// The `seq` inside the record.
        seq: u64,
    },
    /// A record's `disclosure_sha256` is not the hash of its `disclosure`.
    #[error("consent record seq {seq}: disclosure_sha256 does not match the disclosure text")]
    DisclosureMismatch {
        /// The record.
        seq: u64,
    },
    /// A record's content no longer produces its stored hash: it was altered.
    #[error(
        "consent record seq {seq} was altered: its hash is {stored} but its content hashes to {computed}"
    )]
    HashMismatch {
        /// The record.
        seq: u64,
        /// The `hash` stored in the record.
        stored: String,
        /// The hash its content and `prev_hash` produce.
        computed: String,
    },
    /// A record's `prev_hash` is not the previous record's hash: the previous record was
    /// altered and re-hashed, or this one was moved.
    #[error(
        "consent record seq {seq} does not link to the record before it: prev_hash is {prev_hash}, the previous hash is {expected}"
    )]
    BrokenLink {
        /// The record.
        seq: u64,
        /// Its `prev_hash`.
        prev_hash: String,
        /// The previous record's hash ([`GENESIS_HASH`] for seq 1).
        expected: String,
    },
}

/// The consent ledger: appends chain each record onto the last, reads go through a per-number
/// index. Clones share the store's chain state (see [`ChainState`]).
#[derive(Clone, Debug)]
pub struct Ledger {
    table: ConsentLedger,
}

impl Ledger {
    /// The ledger over the store's consent table.
    pub fn new(table: ConsentLedger) -> Self {
        Self { table }
    }

    /// Records `new` on its own, now (not flushed: call [`crate::store::Store::flush`] before
    /// acknowledging the change). Use [`Ledger::appending`] to record in a caller's batch.
    ///
    /// # Errors
    ///
    /// As [`Appending::append`], or when sled fails to write.
    pub fn append(&self, new: NewConsent) -> anyhow::Result<ConsentRecord> {
        let mut appending = self.appending();
        let mut batch = Batch::new();
        let record = appending.append(&mut batch, new)?;
        self.table.apply_chained(batch)?;
        appending.committed();
        Ok(record)
    }

    /// Starts appending records to batches. Holds the chain's lock until the returned value is
    /// dropped, so apply the batch before dropping it and call [`Appending::committed`] once it
    /// is applied. Hold it only across synchronous work.
    pub fn appending(&self) -> Appending<'_> {
        Appending {
            ledger: self,
            chain: self.table.lock_chain(),
            appended: false,
            committed: false,
        }
    }

    /// The last record's seq and hash, or `None` for an empty ledger. Keep it outside the
    /// database (a log, a signed digest): the chain alone cannot show that records were
    /// removed from its end.
    ///
    /// # Errors
    ///
    /// When the last record cannot be read or decoded.
    pub fn head(&self) -> anyhow::Result<Option<(u64, String)>> {
        let (seq, hash) = read_head(&self.table)?;
        Ok((seq > 0).then_some((seq, hash)))
    }

    /// Every record for `number` (exact match), oldest first. The first call scans the whole
    /// ledger to index it by number; later calls read only the number's records.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a record does not decode.
    pub fn records_for(&self, number: &str) -> anyhow::Result<Vec<ConsentRecord>> {
        let seqs = {
            let mut chain = self.table.lock_chain();
            self.table
                .seqs_of(&mut chain, number)
                .context("cannot read the consent ledger's index")?
        };
        self.read_records(&seqs)
    }

    fn read_records(&self, seqs: &[u64]) -> anyhow::Result<Vec<ConsentRecord>> {
        seqs.iter()
            .map(|&seq| {
                self.table
                    .get(seq)?
                    .with_context(|| format!("consent record {seq} is missing"))
            })
            .collect()
    }

    /// Every record, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a record does not decode.
    pub fn all(&self) -> anyhow::Result<Vec<ConsentRecord>> {
        self.table
            .walk()
            .map(|(_, record)| record.map_err(anyhow::Error::from))
            .collect()
    }

    /// Walks the whole chain and checks that keys run 1, 2, 3, … without gaps, every record
    /// decodes and carries its key as `seq`, every `disclosure_sha256` matches its disclosure,
    /// every hash recomputes, and every `prev_hash` is the previous record's hash. Returns the
    /// number of records. Appends running meanwhile are either included or not.
    ///
    /// # Errors
    ///
    /// The first break found, naming its seq (see [`LedgerError`]).
    pub fn verify(&self) -> Result<usize, LedgerError> {
        let mut expected_seq: u64 = 1;
        let mut prev_hash = GENESIS_HASH.to_owned();
        let mut count = 0;
        for (key, record) in self.table.walk() {
            let seq = key.ok_or_else(|| match &record {
                Err(StoreError::Corrupt { reason, .. }) => LedgerError::MalformedKey {
                    key: reason.clone(),
                },
                _ => LedgerError::MalformedKey {
                    key: "(unreadable)".to_owned(),
                },
            })?;
            if seq != expected_seq {
                return Err(LedgerError::OutOfSequence {
                    expected: expected_seq,
                    found: seq,
                });
            }
            let record = record.map_err(|error| match error {
                StoreError::Corrupt { reason, .. } => LedgerError::Undecodable { seq, reason },
                other => LedgerError::Storage(other),
            })?;
            check_record(seq, &record, &prev_hash)?;
            prev_hash = record.hash;
            expected_seq = seq.saturating_add(1);
            count += 1;
        }
        Ok(count)
    }

    /// The consent of `number` for `program` and `class`: the latest of its opt-outs for
    /// `program` or for every program (`*`), of either class, and its opt-ins for exactly
    /// `program` and `class`. An opt-in covers only its own program and class; an opt-out
    /// covers both classes, and with program `*` every program. Help and confirmation records
    /// change nothing.
    ///
    /// "Latest" is by `at_ms`, then by seq for changes in the same millisecond: a back-dated
    /// record (an import of consent collected earlier) does not override a newer change that
    /// was recorded before it. Reads only the number's records.
    ///
    /// # Errors
    ///
    /// When the tree cannot be read or a record does not decode.
    pub fn state(
        &self,
        number: &str,
        program: &str,
        class: ConsentClass,
    ) -> anyhow::Result<ConsentState> {
        Ok(state_of(&self.records_for(number)?, program, class))
    }

    /// The records for `number`, oldest first, as a pretty-printed JSON array of
    /// [`ConsentRecord`]s: everything needed to recompute their hashes.
    ///
    /// # Errors
    ///
    /// When the tree cannot be read or a record does not decode.
    pub fn export_json(&self, number: &str) -> anyhow::Result<String> {
        let records = self.records_for(number)?;
        serde_json::to_string_pretty(&records).context("cannot export the consent records")
    }

    /// The records for `number`, oldest first, as CSV (RFC 4180: CRLF line ends; fields with a
    /// comma, a quote, CR or LF are quoted, quotes doubled). Columns: [`CSV_HEADER`]; `source`
    /// is the source as JSON, `at_utc` the RFC 3339 time of `at_ms` (empty before 1970), absent
    /// values are empty. Values are exported as they are: a spreadsheet may treat a field
    /// starting with `=`, `+`, `-` or `@` as a formula, so import it as text.
    ///
    /// # Errors
    ///
    /// When the tree cannot be read or a record does not decode.
    pub fn export_csv(&self, number: &str) -> anyhow::Result<String> {
        let records = self.records_for(number)?;
        let mut out = String::new();
        write_csv_row(&mut out, CSV_HEADER.iter().map(|name| (*name).to_owned()));
        for record in records {
            let source = serde_json::to_string(&record.source)
                .with_context(|| format!("cannot export consent record {}", record.seq))?;
            let at_utc = u64::try_from(record.at_ms)
                .ok()
                .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
                .map(|at| humantime::format_rfc3339_millis(at).to_string())
                .unwrap_or_default();
            write_csv_row(
                &mut out,
                [
                    record.seq.to_string(),
                    record.number,
                    record.program,
                    record.class.as_str().to_owned(),
                    record.event.as_str().to_owned(),
                    record.source.kind().to_owned(),
                    source,
                    record.disclosure.unwrap_or_default(),
                    record.disclosure_sha256.unwrap_or_default(),
                    record.frequency.unwrap_or_default(),
                    record.raw_text.unwrap_or_default(),
                    record.at_ms.to_string(),
                    at_utc,
                    record.prev_hash,
                    record.hash,
                ],
            );
        }
        Ok(out)
    }
}

/// Appends to a caller's batches, holding the chain's lock (see [`Ledger::appending`]).
pub struct Appending<'l> {
    ledger: &'l Ledger,
    chain: MutexGuard<'l, ChainState>,
    /// Whether a record was appended to the caller's batch.
    appended: bool,
    committed: bool,
}

impl std::fmt::Debug for Appending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appending")
            .field("appended", &self.appended)
            .finish_non_exhaustive()
    }
}

impl Appending<'_> {
    /// Adds `new` to `batch` as the next record: seq is the last seq + 1 (1 for the first),
    /// `prev_hash` the last record's hash, and `disclosure_sha256` and `hash` are computed.
    ///
    /// # Errors
    ///
    /// When `number` or `program` is empty, or when the last record cannot be read or decoded
    /// (nothing is appended to a chain whose end is unreadable).
    pub fn append(&mut self, batch: &mut Batch, new: NewConsent) -> anyhow::Result<ConsentRecord> {
        anyhow::ensure!(
            !new.number.trim().is_empty(),
            "a consent record needs a number"
        );
        anyhow::ensure!(
            !new.program.trim().is_empty(),
            "a consent record needs a program (`*` for all programs)"
        );
        let (last_seq, prev_hash) = match &self.chain.head {
            Some(head) => head.clone(),
            None => read_head(&self.ledger.table)?,
        };
        let seq = last_seq
            .checked_add(1)
            .context("the consent ledger's sequence numbers are exhausted")?;
        let mut record = ConsentRecord {
            seq,
            disclosure_sha256: new.disclosure.as_deref().map(sha256_hex),
            number: new.number,
            program: new.program,
            class: new.class,
            event: new.event,
            source: new.source,
            disclosure: new.disclosure,
            frequency: new.frequency,
            raw_text: new.raw_text,
            at_ms: new.at_ms,
            prev_hash,
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        self.ledger.table.put_in(batch, &record)?;
        self.chain.head = Some((seq, record.hash.clone()));
        self.appended = true;
        Ok(record)
    }

    /// The records for `number` already in the ledger (not those appended here), oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a record does not decode.
    pub fn records_for(&mut self, number: &str) -> anyhow::Result<Vec<ConsentRecord>> {
        let seqs = self
            .ledger
            .table
            .seqs_of(&mut self.chain, number)
            .context("cannot read the consent ledger's index")?;
        self.ledger.read_records(&seqs)
    }

    /// [`Ledger::state`], as the ledger stands before this append.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a record does not decode.
    pub fn state(
        &mut self,
        number: &str,
        program: &str,
        class: ConsentClass,
    ) -> anyhow::Result<ConsentState> {
        Ok(state_of(&self.records_for(number)?, program, class))
    }

    /// Call once the batch holding the appended records is applied.
    pub fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for Appending<'_> {
    fn drop(&mut self) {
        if !self.committed && self.appended {
            // The batch was not applied: forget the head it advanced, so the next append
            // chains onto what is really on disk.
            self.chain.head = None;
        }
    }
}

/// The last record's seq and hash, or `(0, GENESIS_HASH)` when the ledger is empty.
fn read_head(table: &ConsentLedger) -> anyhow::Result<(u64, String)> {
    let Some(record) = table
        .last()
        .context("cannot read the end of the consent ledger")?
    else {
        return Ok((0, GENESIS_HASH.to_owned()));
    };
    Ok((record.seq, record.hash))
}

/// A record's own checks in [`Ledger::verify`]: its seq, disclosure hash, hash and link.
fn check_record(seq: u64, record: &ConsentRecord, prev_hash: &str) -> Result<(), LedgerError> {
    if record.seq != seq {
        return Err(LedgerError::KeyMismatch {
            key: seq,
            seq: record.seq,
        });
    }
    if record.disclosure_sha256 != record.disclosure.as_deref().map(sha256_hex) {
        return Err(LedgerError::DisclosureMismatch { seq });
    }
    let computed = record.compute_hash();
    if computed != record.hash {
        return Err(LedgerError::HashMismatch {
            seq,
            stored: record.hash.clone(),
            computed,
        });
    }
    if record.prev_hash != prev_hash {
        return Err(LedgerError::BrokenLink {
            seq,
            prev_hash: record.prev_hash.clone(),
            expected: prev_hash.to_owned(),
        });
    }
    Ok(())
}

/// The consent `records` (one number's, oldest first) give for `program` and `class`: see
/// [`Ledger::state`].
fn state_of(records: &[ConsentRecord], program: &str, class: ConsentClass) -> ConsentState {
    let mut latest: Option<(i64, u64, ConsentEvent)> = None;
    for record in records {
        let applies = match record.event {
            ConsentEvent::OptOut => record.program == program || record.program == ALL_PROGRAMS,
            ConsentEvent::OptIn => record.program == program && record.class == class,
            ConsentEvent::Help | ConsentEvent::ConfirmationSent => false,
        };
        let newer = latest.is_none_or(|(at_ms, seq, _)| (record.at_ms, record.seq) > (at_ms, seq));
        if applies && newer {
            latest = Some((record.at_ms, record.seq, record.event));
        }
    }
    match latest {
        None => ConsentState::Unknown,
        Some((since_ms, _, ConsentEvent::OptOut)) => ConsentState::OptedOut { since_ms },
        Some((since_ms, _, _)) => ConsentState::OptedIn { since_ms },
    }
}

/// The columns of [`Ledger::export_csv`].
pub const CSV_HEADER: [&str; 15] = [
    "seq",
    "number",
    "program",
    "class",
    "event",
    "source_kind",
    "source",
    "disclosure",
    "disclosure_sha256",
    "frequency",
    "raw_text",
    "at_ms",
    "at_utc",
    "prev_hash",
    "hash",
];

/// Appends one CSV row, fields quoted where RFC 4180 requires it, ended by CRLF.
fn write_csv_row(out: &mut String, fields: impl IntoIterator<Item = String>) {
    for (index, field) in fields.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&field);
        }
    }
    out.push_str("\r\n");
}

/// The sequence number of an 8-byte big-endian key.
#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsentRecord {
        let mut record = ConsentRecord {
            seq: 1,
            number: "+15551234567".to_owned(),
            program: "deals".to_owned(),
            class: ConsentClass::Marketing,
            event: ConsentEvent::OptIn,
            source: ConsentSource::WebForm {
                url: "https://example.com/join".to_owned(),
                ip: "203.0.113.7".to_owned(),
                user_agent: "Mozilla/5.0".to_owned(),
            },
            disclosure: Some("Reply STOP to end. \"Msg & data rates\"\tmay apply.".to_owned()),
            disclosure_sha256: None,
            frequency: Some("up to 4 msgs/month".to_owned()),
            raw_text: Some("ja, bitte \u{1} ✓\n".to_owned()),
            at_ms: 1_700_000_000_000,
            prev_hash: GENESIS_HASH.to_owned(),
            hash: String::new(),
        };
        record.disclosure_sha256 = record.disclosure.as_deref().map(sha256_hex);
        record.hash = record.compute_hash();
        record
    }

    /// Pins the canonical form: changing it would make every existing ledger fail to verify.
    #[test]
    fn canonical_form_is_stable() {
        let record = record();
        assert_eq!(
            record.canonical_json(),
            concat!(
                r#"{"at_ms":1700000000000,"class":"marketing","#,
                r#""disclosure":"Reply STOP to end. \"Msg & data rates\"\tmay apply.","#,
                r#""disclosure_sha256":"DISCLOSURE","#,
                r#""event":"opt_in","frequency":"up to 4 msgs/month","number":"+15551234567","#,
                r#""program":"deals","raw_text":"ja, bitte \u0001 ✓\n","seq":1,"#,
                r#""source":{"ip":"203.0.113.7","kind":"web_form","#,
                r#""url":"https://example.com/join","user_agent":"Mozilla/5.0"}}"#
            )
            .replace(
                "DISCLOSURE",
                "26e31054337681d3cd6fd50fc111086aa91beba5b846a248281732a855bb9b1b"
            )
        );
        // Cross-checked with Python: sha256(("0" * 64 + json.dumps(obj, sort_keys=True,
        // separators=(",", ":"), ensure_ascii=False)).encode()).
        assert_eq!(
            record.hash,
            "0f0aa003ae361c6bd4d6748b956a296f7021e0cabe5a678d510ec9327a149851"
        );
    }

    #[test]
    fn absent_fields_are_left_out() {
        let mut record = record();
        record.disclosure = None;
        record.disclosure_sha256 = None;
        record.frequency = None;
        record.raw_text = None;
        record.source = ConsentSource::Api { actor: None };
        assert_eq!(
            record.canonical_json(),
            r#"{"at_ms":1700000000000,"class":"marketing","event":"opt_in","number":"+15551234567","program":"deals","seq":1,"source":{"kind":"api"}}"#
        );
    }

    #[test]
    fn hash_covers_prev_hash() {
        let mut record = record();
        let original = record.hash.clone();
        record.prev_hash = "1".repeat(64);
        assert_ne!(record.compute_hash(), original);
    }

    #[test]
    fn names_match_serde() {
        for class in [ConsentClass::Transactional, ConsentClass::Marketing] {
            assert_eq!(
                serde_json::to_value(class).unwrap(),
                serde_json::json!(class.as_str())
            );
        }
        for event in [
            ConsentEvent::OptIn,
            ConsentEvent::OptOut,
            ConsentEvent::Help,
            ConsentEvent::ConfirmationSent,
        ] {
            assert_eq!(
                serde_json::to_value(event).unwrap(),
                serde_json::json!(event.as_str())
            );
        }
        let sources = [
            ConsentSource::Keyword {
                keyword: "STOP".to_owned(),
                message_id: "SM1".to_owned(),
            },
            ConsentSource::Api {
                actor: Some("ops".to_owned()),
            },
            ConsentSource::WebForm {
                url: "u".to_owned(),
                ip: "i".to_owned(),
                user_agent: "a".to_owned(),
            },
            ConsentSource::Import {
                batch: "b".to_owned(),
            },
            ConsentSource::Provider {
                provider: "twilio".to_owned(),
                detail: "21610".to_owned(),
            },
        ];
        for source in sources {
            let value = serde_json::to_value(&source).unwrap();
            assert_eq!(value["kind"], serde_json::json!(source.kind()));
            // The canonical members are exactly the serde fields.
            let mut canonical: Vec<&str> = source
                .canonical_members()
                .iter()
                .map(|(key, _)| *key)
                .collect();
            let mut serde_keys: Vec<&str> = value
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            canonical.sort_unstable();
            serde_keys.sort_unstable();
            assert_eq!(canonical, serde_keys);
        }
    }

    #[test]
    fn csv_quoting() {
        let mut out = String::new();
        write_csv_row(
            &mut out,
            ["plain", "a,b", "say \"hi\"", "two\nlines", "cr\r", ""].map(str::to_owned),
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\r\",\r\n"
        );
    }
}
