//! Segments over the contact store: a query compiled against the fields' types, evaluated
//! over the contacts one at a time (a stream, never the whole store in memory), with consent
//! asked of the ledger.

use serde_json::Value;

use super::{ContactError, Contacts};
use crate::compliance::ledger::{ConsentClass, ConsentState};
use crate::segments::{Facts, Query, QueryError, Schema};
use crate::store::contacts::Contact;

/// How many matching contacts a preview shows.
pub const SAMPLE: usize = 10;

/// What a segment preview found.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Contacts that match.
    pub count: u64,
    /// The first few, as the API shows them.
    pub sample: Vec<Value>,
}

/// Why a segment cannot be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The query does not parse or type-check.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The store failed.
    #[error(transparent)]
    Contact(#[from] ContactError),
}

impl From<crate::store::StoreError> for SegmentError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Contact(ContactError::Store(error))
    }
}

/// The ledger's answers to a query's consent questions. A ledger that cannot be read answers
/// on the safe side: opted out, no consent.
struct LedgerFacts<'c> {
    contacts: &'c Contacts,
}

impl LedgerFacts<'_> {
    fn state(&self, contact: &Contact, program: &str, class: ConsentClass) -> Option<ConsentState> {
        match self.contacts.ledger.state(&contact.phone, program, class) {
            Ok(state) => Some(state),
            Err(error) => {
                tracing::error!("segments: cannot read the consent ledger: {error:#}");
                None
            }
        }
    }
}

impl Facts for LedgerFacts<'_> {
    fn opted_out(&self, contact: &Contact, program: Option<&str>) -> bool {
        let suppressed = self
            .contacts
            .tables
            .suppressions
            .contains(&contact.phone)
            .unwrap_or(true);
        let program = program.unwrap_or(crate::compliance::ledger::ALL_PROGRAMS);
        suppressed
            || !matches!(
                self.state(contact, program, ConsentClass::Marketing),
                Some(ConsentState::Unknown | ConsentState::OptedIn { .. })
            )
    }

    fn has_consent(&self, contact: &Contact, program: &str) -> bool {
        matches!(
            self.state(contact, program, ConsentClass::Marketing),
            Some(ConsentState::OptedIn { .. })
        )
    }
}

impl Contacts {
    /// `text` compiled against the fields' types.
    ///
    /// # Errors
    ///
    /// [`SegmentError::Query`] with its column.
    pub fn query(&self, text: &str) -> Result<Query, SegmentError> {
        let schema: Schema = self.field_types()?.into_iter().collect();
        Ok(Query::parse(text, &schema)?)
    }

    /// Whether `contact` is in `query`'s segment now.
    pub fn matches(&self, query: &Query, contact: &Contact) -> bool {
        query.matches(contact, &LedgerFacts { contacts: self }, self.now_ms())
    }

    /// How many contacts `text` selects, and the first [`SAMPLE`].
    ///
    /// # Errors
    ///
    /// A query that does not compile, or a store failure.
    pub fn preview(&self, text: &str) -> Result<Preview, SegmentError> {
        let query = self.query(text)?;
        let facts = LedgerFacts { contacts: self };
        let now = self.now_ms();
        let mut preview = Preview {
            count: 0,
            sample: Vec::new(),
        };
        for row in self.stream(None) {
            let (_, contact) = row?;
            if query.matches(&contact, &facts, now) {
                preview.count += 1;
                if preview.sample.len() < SAMPLE {
                    preview.sample.push(self.view(&contact)?);
                }
            }
        }
        Ok(preview)
    }

    /// The contacts `query` selects after key `after`, at most `limit`, and the key to go on
    /// from when there may be more.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn list(
        &self,
        query: Option<&Query>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<Contact>, Option<u64>), SegmentError> {
        let facts = LedgerFacts { contacts: self };
        let now = self.now_ms();
        let mut page = Vec::new();
        for row in self.stream(after) {
            let (seq, contact) = row?;
            if query.is_none_or(|query| query.matches(&contact, &facts, now)) {
                page.push(contact);
                if page.len() == limit {
                    return Ok((page, Some(seq)));
                }
            }
        }
        Ok((page, None))
    }
}
