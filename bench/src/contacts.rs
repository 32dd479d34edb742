//! Contact numbers: a fresh block for every phase of the run.
//!
//! The engine caps texts per number (20 in 24 hours, the same text twice in 10 minutes), so a
//! number used twice across phases could be held back by a cap instead of measured. All numbers
//! are in New York's 212 area code: the quiet-hours gate knows its zone (an unknown zone, such as
//! the 555 area code, fails closed), and `SMSFLOW_CLOCK` puts the engine at noon there.

use std::sync::atomic::{AtomicU64, Ordering};

/// The first subscriber number handed out: exchanges 200-999 are all valid in the plan.
const FIRST: u64 = 2_000_000;
/// One past the last seven-digit subscriber number.
const END: u64 = 10_000_000;

/// Hands out blocks of numbers no earlier block used.
#[derive(Debug)]
pub struct Contacts {
    next: AtomicU64,
}

impl Default for Contacts {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(FIRST),
        }
    }
}

/// `count` consecutive numbers: [`Block::number`] gives the `index`th.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    first: u64,
    count: u64,
}

impl Contacts {
    /// A block of `count` numbers nobody used in this run.
    ///
    /// # Errors
    ///
    /// When the 212 area code has run out (8 million numbers): make the run smaller.
    pub fn block(&self, count: u64) -> anyhow::Result<Block> {
        let first = self.next.fetch_add(count, Ordering::Relaxed);
        anyhow::ensure!(
            first + count <= END,
            "the run needs more than {} distinct contact numbers: shorten the phases",
            END - FIRST
        );
        Ok(Block { first, count })
    }
}

impl Block {
    /// The `index`th number of the block, E.164.
    pub fn number(&self, index: u64) -> String {
        format!("+1212{:07}", self.first + index)
    }

    /// How many numbers it holds.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_never_share_a_number() {
        let contacts = Contacts::default();
        let a = contacts.block(3).unwrap();
        let b = contacts.block(2).unwrap();
        assert_eq!(a.number(0), "+12122000000");
        assert_eq!(a.number(2), "+12122000002");
        assert_eq!(b.number(0), "+12122000003");
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn running_out_of_numbers_says_how_to_fix_it() {
        let contacts = Contacts::default();
        let error = contacts.block(END).unwrap_err().to_string();
        assert!(error.contains("shorten"), "{error}");
    }
}
