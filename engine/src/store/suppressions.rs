//! Numbers the provider reports as opted out with the carrier (Twilio 21610): no text goes to
//! them whatever the ledger says.
//!
//! Key: the number. Value: the provider's words.

use super::table::Table;
use super::{Batch, Result, Store, TableId};

/// The suppressions table.
#[derive(Debug, Clone)]
pub struct Suppressions {
    table: Table<String, String>,
}

impl Suppressions {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Suppressions),
        }
    }

    /// Whether `number` is suppressed.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn contains(&self, number: &str) -> Result<bool> {
        self.table.contains(&number.to_owned())
    }

    /// Why `number` is suppressed, when it is.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, number: &str) -> Result<Option<String>> {
        self.table.get(&number.to_owned())
    }

    /// Adds suppressing `number` to `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice (the value is text).
    pub fn put_in(&self, batch: &mut Batch, number: &str, reason: &str) -> Result<()> {
        self.table
            .put_in(batch, &number.to_owned(), &reason.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suppressed_number_is_found_and_only_that_number() {
        let store = Store::temporary().unwrap();
        let suppressions = Suppressions::new(&store);
        let mut batch = Batch::new();
        suppressions
            .put_in(&mut batch, "+12125550100", "21610")
            .unwrap();
        store.apply(batch).unwrap();
        assert!(suppressions.contains("+12125550100").unwrap());
        assert!(!suppressions.contains("+1212555010").unwrap());
        assert!(!suppressions.contains("+121255501000").unwrap());
    }
}
