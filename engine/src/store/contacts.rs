//! Contacts: one record per person, keyed by an internal id, with an index by address and the
//! types of their fields.
//!
//! - [`ContactsTable`] (0x15): key the contact's id as a big-endian u64 (ids come from
//!   [`Store::generate_id`], so key order is creation order); value a [`Contact`].
//! - [`ContactAddresses`] (0x16): key the phone number (E.164); value the contact's id. The id,
//!   not the number, is what a later email or chat channel will share.
//! - [`ContactFieldTypes`] (0x17): key a field's name; value its [`FieldType`], fixed by the
//!   operator's config or by the first value written.
//! - [`SavedSegments`] (0x18): key a segment's name; value its query text.
//! - [`ContactActivity`] (0x19): key the phone number, 0x00, `inbound` or `outbound`; value
//!   the time (ms). Kept apart from the contact so the runtime records activity in its turn's
//!   batch without reading (or racing) the contact record, also for numbers that are no
//!   contact yet.
//!
//! The consent state is not here: it is read from the ledger, so it can never drift.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::keys::Seq;
use super::table::Table;
use super::{Batch, Result, Store, TableId};

/// The type of a contact field, declared by the operator or taken from its first value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Any text.
    Text,
    /// A number.
    Number,
    /// An instant (written as RFC 3339, kept as milliseconds since the epoch).
    Datetime,
    /// A region code, such as a US state (`FL`): compared as a code, and the gate reads a
    /// `state` field as the contact's address for quiet hours.
    State,
}

impl FieldType {
    /// Its name, as configs and errors write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number => "number",
            Self::Datetime => "datetime",
            Self::State => "state",
        }
    }
}

/// A typed field value. Datetimes are milliseconds since the epoch (UTC); a state is an
/// upper-case region code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// A number.
    Number(f64),
    /// Text.
    Text(String),
    /// An instant.
    Datetime {
        /// Milliseconds since the epoch.
        datetime_ms: i64,
    },
    /// A region code.
    State {
        /// The code, upper case.
        state: String,
    },
}

/// One contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The internal id (`c-` and 16 hex digits).
    pub id: String,
    /// The phone number, E.164.
    pub phone: String,
    /// Typed fields.
    pub fields: BTreeMap<String, FieldValue>,
    /// Tags, lower case.
    pub tags: BTreeSet<String>,
    /// The contact's locale (`es`, `en-US`), when known.
    pub locale: Option<String>,
    /// The contact's IANA time zone, when the operator set one.
    pub time_zone: Option<String>,
    /// When the contact was created, ms since the epoch.
    pub created_at_ms: i64,
    /// When the contact last texted us.
    pub last_inbound_ms: Option<i64>,
    /// When we last queued a text to the contact.
    pub last_outbound_ms: Option<i64>,
}

json_value!(Contact);

/// The id shown for key `seq`.
pub fn contact_id(seq: u64) -> String {
    format!("c-{seq:016x}")
}

/// The key of a [`contact_id`].
pub fn contact_seq(id: &str) -> Option<u64> {
    let hex = id.strip_prefix("c-")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

/// The contacts table.
#[derive(Debug, Clone)]
pub struct ContactsTable {
    table: Table<Seq, Contact>,
}

impl ContactsTable {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Contacts),
        }
    }

    /// The contact with key `seq`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, seq: u64) -> Result<Option<Contact>> {
        self.table.get(&Seq(seq))
    }

    /// Adds writing `contact` under `seq` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, seq: u64, contact: &Contact) -> Result<()> {
        self.table.put_in(batch, &Seq(seq), contact)
    }

    /// Adds removing contact `seq` to `batch`.
    pub fn remove_in(&self, batch: &mut Batch, seq: u64) {
        self.table.remove_in(batch, &Seq(seq));
    }

    /// The contacts with keys after `after` (all when `None`), in key order: a stream, never
    /// the whole table in memory.
    pub fn after(&self, after: Option<u64>) -> impl Iterator<Item = Result<(u64, Contact)>> + '_ {
        // The first key after `seq` is `seq + 1`: keys are exactly eight bytes.
        let start = after.map_or(0, |seq| seq.saturating_add(1));
        let skip_all = after == Some(u64::MAX);
        self.table
            .range(&start.to_be_bytes(), None)
            .filter(move |_| !skip_all)
            .map(|row| row.map(|(Seq(seq), contact)| (seq, contact)))
    }
}

/// The index of contacts by phone number.
#[derive(Debug, Clone)]
pub struct ContactAddresses {
    table: Table<String, u64>,
}

impl ContactAddresses {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::ContactAddresses),
        }
    }

    /// The key of the contact with `phone`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, phone: &str) -> Result<Option<u64>> {
        self.table.get(&phone.to_owned())
    }

    /// Adds indexing `phone` to contact `seq` to `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn put_in(&self, batch: &mut Batch, phone: &str, seq: u64) -> Result<()> {
        self.table.put_in(batch, &phone.to_owned(), &seq)
    }

    /// Adds removing `phone` from the index to `batch`.
    pub fn remove_in(&self, batch: &mut Batch, phone: &str) {
        self.table.remove_in(batch, &phone.to_owned());
    }
}

/// The type of each contact field.
#[derive(Debug, Clone)]
pub struct ContactFieldTypes {
    table: Table<String, String>,
}

impl ContactFieldTypes {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::ContactFieldTypes),
        }
    }

    /// Every field and its type.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a type is not one this smsflow knows.
    pub fn all(&self) -> Result<BTreeMap<String, FieldType>> {
        self.table
            .all()
            .map(|row| {
                let (name, kind) = row?;
                let kind = serde_json::from_value(serde_json::Value::String(kind.clone()))
                    .map_err(|_| super::StoreError::Corrupt {
                        table: TableId::ContactFieldTypes.name(),
                        reason: format!("field `{name}` has the unknown type `{kind}`"),
                    })?;
                Ok((name, kind))
            })
            .collect()
    }

    /// Adds recording `name`'s type to `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn put_in(&self, batch: &mut Batch, name: &str, kind: FieldType) -> Result<()> {
        self.table
            .put_in(batch, &name.to_owned(), &kind.name().to_owned())
    }
}

/// Segments saved by name.
#[derive(Debug, Clone)]
pub struct SavedSegments {
    table: Table<String, String>,
}

impl SavedSegments {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Segments),
        }
    }

    /// The query saved as `name`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, name: &str) -> Result<Option<String>> {
        self.table.get(&name.to_owned())
    }

    /// Saves `query` as `name`, replacing any earlier one.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub fn put(&self, name: &str, query: &str) -> Result<()> {
        self.table.insert(&name.to_owned(), &query.to_owned())
    }

    /// Every saved segment, by name.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn all(&self) -> Result<Vec<(String, String)>> {
        self.table.all().collect()
    }
}

/// Which way a text went, for [`ContactActivity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the contact.
    Inbound,
    /// To the contact.
    Outbound,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// When each number last texted us and we last texted it.
#[derive(Debug, Clone)]
pub struct ContactActivity {
    table: Table<super::keys::Pair, u64>,
}

impl ContactActivity {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::ContactActivity),
        }
    }

    fn key(phone: &str, direction: Direction) -> super::keys::Pair {
        super::keys::Pair(phone.to_owned(), direction.name().to_owned())
    }

    /// When `phone` last had a text going `direction`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn last(&self, phone: &str, direction: Direction) -> Result<Option<i64>> {
        Ok(self
            .table
            .get(&Self::key(phone, direction))?
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)))
    }

    /// Adds recording a text going `direction` at `at_ms` to `batch`.
    ///
    /// # Errors
    ///
    /// Never in practice.
    pub fn put_in(
        &self,
        batch: &mut Batch,
        phone: &str,
        direction: Direction,
        at_ms: i64,
    ) -> Result<()> {
        let ms = u64::try_from(at_ms).unwrap_or(0);
        self.table.put_in(batch, &Self::key(phone, direction), &ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(seq: u64, phone: &str) -> Contact {
        Contact {
            id: contact_id(seq),
            phone: phone.to_owned(),
            fields: BTreeMap::from([
                ("age".to_owned(), FieldValue::Number(41.0)),
                (
                    "appointment_at".to_owned(),
                    FieldValue::Datetime { datetime_ms: 7 },
                ),
                (
                    "state".to_owned(),
                    FieldValue::State {
                        state: "FL".to_owned(),
                    },
                ),
                ("city".to_owned(), FieldValue::Text("Tampa".to_owned())),
            ]),
            tags: BTreeSet::from(["vip".to_owned()]),
            locale: Some("es".to_owned()),
            time_zone: None,
            created_at_ms: 1,
            last_inbound_ms: None,
            last_outbound_ms: Some(3),
        }
    }

    #[test]
    fn contacts_round_trip_in_creation_order_with_their_index() {
        let store = Store::temporary().unwrap();
        let tables = store.tables();
        let mut batch = Batch::new();
        for (seq, phone) in [
            (300, "+12125550103"),
            (2, "+12125550102"),
            (1, "+12125550101"),
        ] {
            tables
                .contacts
                .put_in(&mut batch, seq, &contact(seq, phone))
                .unwrap();
            tables
                .contact_addresses
                .put_in(&mut batch, phone, seq)
                .unwrap();
        }
        store.apply(batch).unwrap();
        assert_eq!(
            tables.contacts.get(2).unwrap(),
            Some(contact(2, "+12125550102"))
        );
        assert_eq!(
            tables.contact_addresses.get("+12125550103").unwrap(),
            Some(300)
        );
        let order: Vec<u64> = tables
            .contacts
            .after(None)
            .map(|row| row.unwrap().0)
            .collect();
        assert_eq!(order, [1, 2, 300]);
        let rest: Vec<u64> = tables
            .contacts
            .after(Some(2))
            .map(|row| row.unwrap().0)
            .collect();
        assert_eq!(rest, [300]);
    }

    #[test]
    fn ids_read_back_and_others_are_refused() {
        assert_eq!(contact_id(255), "c-00000000000000ff");
        assert_eq!(contact_seq("c-00000000000000ff"), Some(255));
        for bad in ["c-ff", "00000000000000ff", "c-zz000000000000ff", ""] {
            assert_eq!(contact_seq(bad), None, "{bad}");
        }
    }

    #[test]
    fn field_types_round_trip() {
        let store = Store::temporary().unwrap();
        let types = store.tables().contact_field_types;
        let mut batch = Batch::new();
        types.put_in(&mut batch, "age", FieldType::Number).unwrap();
        types
            .put_in(&mut batch, "appointment_at", FieldType::Datetime)
            .unwrap();
        store.apply(batch).unwrap();
        assert_eq!(
            types.all().unwrap(),
            BTreeMap::from([
                ("age".to_owned(), FieldType::Number),
                ("appointment_at".to_owned(), FieldType::Datetime)
            ])
        );
    }
}
