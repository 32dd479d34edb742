//! Events already processed (inbound texts by `<provider>:<message id>`): a replayed event is
//! recognised and changes nothing.
//!
//! Key: the event id's bytes. Value: when it was processed ([`TimeMs`]).

use super::codec::TimeMs;
use super::table::{Cursor, Swept, Table};
use super::{Batch, Result, Store, TableId};

/// The processed-events table.
#[derive(Debug, Clone)]
pub struct Processed {
    table: Table<String, TimeMs>,
}

impl Processed {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Processed),
        }
    }

    /// Whether `event_id` was processed.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn contains(&self, event_id: &str) -> Result<bool> {
        self.table.contains(&event_id.to_owned())
    }

    /// One step of expiring the marks made before `before_ms` (see
    /// [`crate::retention`]): removals added to `batch`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn expire_in(
        &self,
        batch: &mut Batch,
        from: &Cursor,
        limit: usize,
        before_ms: i64,
    ) -> Result<Swept> {
        self.table
            .expire_indexed_in(batch, from, limit, before_ms, |_, at| Ok(at.0 < before_ms))
    }

    /// Adds marking the inbound text `event_id` (`<provider>:<id>`) processed to `batch`,
    /// without an expiry entry of its own: it goes with the text's dedup key
    /// ([`super::inbox::InboxSeen::expire_in`]), which has one.
    ///
    /// # Errors
    ///
    /// Never in practice (the value is 8 bytes).
    pub fn put_inbound_in(&self, batch: &mut Batch, event_id: &str, at_ms: i64) -> Result<()> {
        self.table
            .put_in(batch, &event_id.to_owned(), &TimeMs(at_ms))
    }

    /// Adds removing the mark of `event_id` to `batch`.
    pub(super) fn remove_in(&self, batch: &mut Batch, event_id: &str) {
        self.table.remove_in(batch, &event_id.to_owned());
    }

    /// Adds marking `event_id` processed at `at_ms` to `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice (the value is 8 bytes).
    pub fn put_in(&self, batch: &mut Batch, event_id: &str, at_ms: i64) -> Result<()> {
        self.table
            .put_expiring_in(batch, &event_id.to_owned(), &TimeMs(at_ms), at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_processed_once_marked() {
        let store = Store::temporary().unwrap();
        let processed = Processed::new(&store);
        assert!(!processed.contains("twilio:SM1").unwrap());
        let mut batch = Batch::new();
        processed.put_in(&mut batch, "twilio:SM1", 5).unwrap();
        store.apply(batch).unwrap();
        assert!(processed.contains("twilio:SM1").unwrap());
        assert!(!processed.contains("twilio:SM").unwrap());
    }
}
