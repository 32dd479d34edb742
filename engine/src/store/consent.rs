//! The consent ledger's records: append-only, hash-chained (the chain and its checks are
//! [`crate::compliance::ledger`]'s).
//!
//! Key: `<seq u64 BE>`, from 1 without gaps: the key order is the chain's order.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::keys::{NumberSeq, Seq};
use super::table::Table;
use super::{Batch, Result, Store, TableId};

/// The program of an opt-out that covers every program (STOPALL).
pub const ALL_PROGRAMS: &str = "*";

/// What kind of messages a consent is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentClass {
    /// Messages the contact's own actions trigger (codes, receipts, replies).
    Transactional,
    /// Promotional messages, which need express written consent.
    Marketing,
}

impl ConsentClass {
    /// The serde name: `transactional` or `marketing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transactional => "transactional",
            Self::Marketing => "marketing",
        }
    }
}

/// What happened to a contact's consent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentEvent {
    /// The contact gave consent (START, a web form, an API call, an import).
    OptIn,
    /// The contact withdrew consent (STOP, STOPALL, a provider's opt-out report).
    OptOut,
    /// The contact asked for help; recorded, changes nothing.
    Help,
    /// The engine sent the opt-in confirmation text; recorded, changes nothing.
    ConfirmationSent,
}

impl ConsentEvent {
    /// The serde name: `opt_in`, `opt_out`, `help` or `confirmation_sent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptIn => "opt_in",
            Self::OptOut => "opt_out",
            Self::Help => "help",
            Self::ConfirmationSent => "confirmation_sent",
        }
    }
}

/// Where a consent change came from: the evidence for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConsentSource {
    /// An inbound text with a compliance keyword.
    Keyword {
        /// The keyword as recognised (`STOP`, `START`, `HELP`, …).
        keyword: String,
        /// The provider's id of the inbound message.
        message_id: String,
    },
    /// A call to the operator API.
    Api {
        /// Who made the call, when known.
        actor: Option<String>,
    },
    /// A web form the contact submitted.
    WebForm {
        /// The form's page.
        url: String,
        /// The submitter's IP address.
        ip: String,
        /// The submitter's browser.
        user_agent: String,
    },
    /// A bulk import of consent collected elsewhere.
    Import {
        /// The import batch, to find its source file.
        batch: String,
    },
    /// A report from the SMS provider (e.g. Twilio error 21610: the recipient replied STOP).
    Provider {
        /// The provider's name.
        provider: String,
        /// What the provider reported.
        detail: String,
    },
}

impl ConsentSource {
    /// The serde tag: `keyword`, `api`, `web_form`, `import` or `provider`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Keyword { .. } => "keyword",
            Self::Api { .. } => "api",
            Self::WebForm { .. } => "web_form",
            Self::Import { .. } => "import",
            Self::Provider { .. } => "provider",
        }
    }
}

/// One entry of the ledger, as stored and exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Position in the ledger: 1, 2, 3, … without gaps; also the record's key.
    pub seq: u64,
    /// The contact's number, as the caller gave it (E.164 by convention).
    pub number: String,
    /// The messaging program; [`ALL_PROGRAMS`] (`*`) for an opt-out from every program.
    pub program: String,
    /// Which kind of messages the change is about.
    pub class: ConsentClass,
    /// What happened.
    pub event: ConsentEvent,
    /// Where it came from.
    pub source: ConsentSource,
    /// The disclosure (terms) text the contact was shown, if any.
    pub disclosure: Option<String>,
    /// Lowercase hex SHA-256 of `disclosure`'s UTF-8, computed on append.
    pub disclosure_sha256: Option<String>,
    /// The message frequency promised ("up to 4 msgs/month").
    pub frequency: Option<String>,
    /// The inbound text, for keyword events.
    pub raw_text: Option<String>,
    /// When the change happened, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The previous record's `hash`; [`GENESIS_HASH`] for the first.
    pub prev_hash: String,
    /// Lowercase hex SHA-256 over `prev_hash` and the canonical JSON of the other fields (see
    /// the module documentation).
    pub hash: String,
}

json_value!(ConsentRecord);

/// What every appender of one store shares, behind one lock: the chain's end. Held from
/// choosing a record's seq until its batch is applied, so the chain never forks; read on first
/// use.
#[derive(Debug, Default)]
pub struct ChainState {
    /// The last record's seq and hash, once read.
    pub head: Option<(u64, String)>,
    /// Whether the by-number index was found complete (or rebuilt) since the store opened.
    pub indexed: bool,
}

/// The consent ledger table, and each number's record seqs beside it (written in the same
/// batch as the record): the gate asks for a number's consent on every text and must not scan
/// the whole ledger to answer, nor hold an index of every number ever seen in memory.
#[derive(Debug, Clone)]
pub struct ConsentLedger {
    table: Table<Seq, ConsentRecord>,
    by_number: Table<NumberSeq, ()>,
    chain: Arc<Mutex<ChainState>>,
}

impl ConsentLedger {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Consent),
            by_number: store.table(TableId::ConsentByNumber),
            chain: Arc::clone(&store.consent_chain),
        }
    }

    /// The chain's shared state, locked. A holder that panicked leaves it consistent: its
    /// batch was either applied or not, and the head is re-read after a failed append.
    pub fn lock_chain(&self) -> MutexGuard<'_, ChainState> {
        self.chain.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record with `seq`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or the record does not decode.
    pub fn get(&self, seq: u64) -> Result<Option<ConsentRecord>> {
        self.table.get(&Seq(seq))
    }

    /// The last record.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or the record does not decode.
    pub fn last(&self) -> Result<Option<ConsentRecord>> {
        Ok(self.table.last()?.map(|(_, record)| record))
    }

    /// Every record in seq order, with the seq of its key (which [`ConsentRecord::seq`] must
    /// repeat). A record that does not decode is an `Err` naming its table; the walk goes on.
    pub fn walk(&self) -> impl Iterator<Item = (Option<u64>, Result<ConsentRecord>)> + '_ {
        self.table.raw_rows().map(|row| match row {
            Ok((key, Ok(record))) => (Some(key.0), Ok(record)),
            Ok((key, Err(error))) => (Some(key.0), Err(error)),
            Err(error) => (None, Err(error)),
        })
    }

    /// Adds `record` under its seq to `batch`. Only the ledger calls this, holding its append
    /// lock, so the chain never forks.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, record: &ConsentRecord) -> Result<()> {
        self.table.put_in(batch, &Seq(record.seq), record)?;
        self.by_number
            .put_in(batch, &NumberSeq(record.number.clone(), record.seq), &())
    }

    /// The seqs of `number`'s records, oldest first. `chain` is the held chain lock: the
    /// first call after the store opens checks that the index holds the last record, and
    /// rebuilds it from the ledger when it does not (a store written before the index).
    ///
    /// # Errors
    ///
    /// When the store cannot be read or written.
    pub fn seqs_of(&self, chain: &mut ChainState, number: &str) -> Result<Vec<u64>> {
        if !chain.indexed {
            self.complete_index()?;
            chain.indexed = true;
        }
        let mut prefix = Vec::new();
        super::keys::push_str(&mut prefix, number);
        self.by_number
            .scan_prefix(&prefix)
            .map(|row| row.map(|(NumberSeq(_, seq), ())| seq))
            .collect()
    }

    /// Rebuilds the by-number index unless it holds the last record.
    fn complete_index(&self) -> Result<()> {
        let Some(last) = self.last()? else {
            return Ok(());
        };
        if self
            .by_number
            .contains(&NumberSeq(last.number.clone(), last.seq))?
        {
            return Ok(());
        }
        tracing::info!("indexing the consent ledger by number (a store from before the index)");
        let mut batch = Batch::new();
        // A record that does not decode stops the rebuild: an index without it could miss a
        // STOP, and the gate must fail closed (`smsflow consent verify` says which one).
        for row in self.table.all() {
            let (_, record) = row?;
            self.by_number
                .put_in(&mut batch, &NumberSeq(record.number, record.seq), &())?;
        }
        self.by_number.apply(batch)
    }

    /// Applies a batch of records chained by [`crate::compliance::ledger::Ledger`] on their own
    /// (an append outside any other batch).
    ///
    /// # Errors
    ///
    /// When sled cannot write.
    pub fn apply_chained(&self, batch: Batch) -> Result<()> {
        self.table.apply(batch)
    }

    /// Overwrites the record under `seq` as given, chained or not: for tests that tamper with
    /// the ledger to prove tampering is found.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    #[doc(hidden)]
    pub fn overwrite_for_tests(&self, seq: u64, record: &ConsentRecord) -> Result<()> {
        self.table.insert(&Seq(seq), record)
    }

    /// Overwrites the record under `seq` with raw bytes: for tests that damage the ledger.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    #[doc(hidden)]
    pub fn overwrite_raw_for_tests(&self, seq: u64, bytes: &[u8]) -> Result<()> {
        self.table.insert_raw(&Seq(seq), bytes)
    }

    /// Removes the record under `seq`: for tests that tamper with the ledger.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    #[doc(hidden)]
    pub fn remove_for_tests(&self, seq: u64) -> Result<()> {
        self.table.remove(&Seq(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64) -> ConsentRecord {
        ConsentRecord {
            seq,
            number: "+12125550100".into(),
            program: "deals".into(),
            class: ConsentClass::Marketing,
            event: ConsentEvent::OptIn,
            source: ConsentSource::Api { actor: None },
            disclosure: None,
            disclosure_sha256: None,
            frequency: None,
            raw_text: None,
            at_ms: 1,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn records_walk_in_seq_order_past_256_and_the_last_is_the_highest() {
        let store = Store::temporary().unwrap();
        let ledger = ConsentLedger::new(&store);
        let mut batch = Batch::new();
        for seq in [1, 256, 2, 257, 3] {
            ledger.put_in(&mut batch, &record(seq)).unwrap();
        }
        ledger.apply_chained(batch).unwrap();
        let seqs: Vec<Option<u64>> = ledger.walk().map(|(seq, _)| seq).collect();
        assert_eq!(seqs, [Some(1), Some(2), Some(3), Some(256), Some(257)]);
        assert_eq!(ledger.last().unwrap().map(|r| r.seq), Some(257));
        assert_eq!(ledger.get(256).unwrap(), Some(record(256)));
        ledger.overwrite_raw_for_tests(2, b"\x01not json").unwrap();
        let damaged: Vec<bool> = ledger.walk().map(|(_, record)| record.is_err()).collect();
        assert_eq!(damaged, [false, true, false, false, false]);
    }

    #[test]
    fn each_numbers_seqs_come_from_the_index_and_a_store_without_one_is_indexed() {
        let store = Store::temporary().unwrap();
        let ledger = ConsentLedger::new(&store);
        let other = |seq| ConsentRecord {
            number: "+12125550199".into(),
            ..record(seq)
        };
        let mut batch = Batch::new();
        for record in [record(1), other(2), record(3), other(4), record(300)] {
            ledger.put_in(&mut batch, &record).unwrap();
        }
        ledger.apply_chained(batch).unwrap();
        let mut chain = ChainState::default();
        assert_eq!(
            ledger.seqs_of(&mut chain, "+12125550100").unwrap(),
            [1, 3, 300]
        );
        assert_eq!(ledger.seqs_of(&mut chain, "+12125550199").unwrap(), [2, 4]);
        assert!(
            ledger
                .seqs_of(&mut chain, "+1212555010")
                .unwrap()
                .is_empty()
        );

        // Records written before the index existed: the first lookup rebuilds it.
        let legacy = Store::temporary().unwrap();
        let ledger = ConsentLedger::new(&legacy);
        for record in [record(1), other(2), record(3)] {
            ledger.overwrite_for_tests(record.seq, &record).unwrap();
        }
        let mut chain = ChainState::default();
        assert_eq!(ledger.seqs_of(&mut chain, "+12125550100").unwrap(), [1, 3]);
        assert!(chain.indexed);
    }
}
