//! What went to each number recently (for frequency caps and the loop guard), and when each
//! program first texted each number (for the first text's content rules).
//!
//! - [`SendLog`]: `<contact> 0x00 <time key> <seq u64 BE>` → the text: one number's last 24
//!   hours are one short range scan, oldest first. Entries that left the longest window are
//!   pruned as new ones are written.
//! - [`ProgramContacts`]: `<contact> 0x00 <program>` → when the program first texted it.

use serde::{Deserialize, Serialize};

use super::codec::{TimeMs, json_value};
use super::keys::{ContactTimeKey, Pair, contact_from, push_str};
use super::table::Table;
use super::{Batch, Result, Store, TableId};

/// One text in the send log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentText {
    /// When the provider took it.
    pub at_ms: i64,
    /// Its program.
    pub program: Option<String>,
    /// Its subject (the flow that sent it).
    pub subject: Option<String>,
    /// Whether it was marketing.
    pub marketing: bool,
    /// SHA-256 of the body, for the loop guard.
    pub body_sha256: String,
}

json_value!(SentText);

/// The send log.
#[derive(Debug, Clone)]
pub struct SendLog {
    table: Table<ContactTimeKey, SentText>,
}

impl SendLog {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::SendLog),
        }
    }

    /// The texts `contact` got since `since_ms`, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn since(&self, contact: &str, since_ms: i64) -> Result<Vec<SentText>> {
        let mut end = Vec::new();
        push_str(&mut end, contact);
        end.push(0xff);
        self.table
            .range(&contact_from(contact, since_ms), Some(end.as_slice()))
            .map(|row| row.map(|(_, text)| text))
            .collect()
    }

    /// Adds recording that `text` (outbox `seq`) went to `contact`, and removing the
    /// contact's entries older than `keep_from_ms`, to `batch`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or the entry encoded.
    pub fn record_in(
        &self,
        batch: &mut Batch,
        contact: &str,
        seq: u64,
        text: &SentText,
        keep_from_ms: i64,
    ) -> Result<()> {
        let key = ContactTimeKey {
            contact: contact.to_owned(),
            at_ms: text.at_ms,
            seq,
        };
        self.table.put_in(batch, &key, text)?;
        let mut start = Vec::new();
        push_str(&mut start, contact);
        let keep_from = contact_from(contact, keep_from_ms);
        for row in self.table.range(&start, Some(keep_from.as_slice())) {
            let (stale, _) = row?;
            self.table.remove_in(batch, &stale);
        }
        Ok(())
    }
}

/// When each program first texted each number.
#[derive(Debug, Clone)]
pub struct ProgramContacts {
    table: Table<Pair, TimeMs>,
}

impl ProgramContacts {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::ProgramContacts),
        }
    }

    /// Whether `program` ever texted `contact`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn contains(&self, contact: &str, program: &str) -> Result<bool> {
        self.table
            .contains(&Pair(contact.to_owned(), program.to_owned()))
    }

    /// Adds recording that `program` texted `contact` at `at_ms` to `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice (the value is 8 bytes).
    pub fn put_in(
        &self,
        batch: &mut Batch,
        contact: &str,
        program: &str,
        at_ms: i64,
    ) -> Result<()> {
        self.table.put_in(
            batch,
            &Pair(contact.to_owned(), program.to_owned()),
            &TimeMs(at_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(at_ms: i64) -> SentText {
        SentText {
            at_ms,
            program: None,
            subject: None,
            marketing: false,
            body_sha256: String::new(),
        }
    }

    #[test]
    fn one_numbers_texts_come_in_time_order_and_old_ones_are_pruned() {
        let store = Store::temporary().unwrap();
        let log = SendLog::new(&store);
        let mut batch = Batch::new();
        for (seq, at) in [(1, 50), (2, -10), (3, 20)] {
            log.record_in(&mut batch, "+1", seq, &text(at), i64::MIN)
                .unwrap();
        }
        // A number that extends the first must not share its entries.
        log.record_in(&mut batch, "+12", 4, &text(30), i64::MIN)
            .unwrap();
        store.apply(batch).unwrap();
        let times: Vec<i64> = log
            .since("+1", i64::MIN)
            .unwrap()
            .iter()
            .map(|t| t.at_ms)
            .collect();
        assert_eq!(times, [-10, 20, 50]);
        assert_eq!(log.since("+1", 20).unwrap().len(), 2);

        let mut batch = Batch::new();
        log.record_in(&mut batch, "+1", 5, &text(60), 25).unwrap();
        store.apply(batch).unwrap();
        let times: Vec<i64> = log
            .since("+1", i64::MIN)
            .unwrap()
            .iter()
            .map(|t| t.at_ms)
            .collect();
        assert_eq!(times, [50, 60]);
        assert_eq!(log.since("+12", i64::MIN).unwrap().len(), 1);
    }
}
