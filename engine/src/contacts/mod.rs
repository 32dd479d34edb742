//! Contacts: the people flows text, with typed fields, tags, a locale and a time zone.
//!
//! One record per contact, keyed by an internal id ([`crate::store::contacts`]) with an index
//! by phone number. What is *not* in the record is read where it lives, so it cannot drift:
//! consent from the ledger, and when the contact last texted or was texted from the activity the
//! runtime records in each turn.
//!
//! Deleting a contact (an erasure request) removes the record, its index entry, the fields and
//! transcript of its conversation, and adds a suppression so no text reaches the number again;
//! the consent ledger keeps its evidence, because the law asks a sender to prove consent (and
//! the opt-out) for years after.

pub mod csv;
pub mod fields;
pub mod import;
pub mod number;
pub mod select;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::SharedClock;
use crate::compliance::ledger::{ConsentClass, ConsentState, Ledger};
pub use crate::store::contacts::{Contact, FieldType, FieldValue};
use crate::store::contacts::{Direction, contact_id};
use crate::store::conversations::ConversationKey;
use crate::store::{Batch, Store, StoreError, Tables};

/// The `[contacts]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContactsConfig {
    /// The country of numbers written without a country code (ISO 3166 code).
    #[serde(default = "default_country")]
    pub default_country: String,
    /// Field types; a field not listed takes the type of its first value (a JSON number makes
    /// a number field, anything else text).
    #[serde(default)]
    pub fields: BTreeMap<String, FieldType>,
    /// Whether a contact's own `time_zone` replaces the zones of its number for quiet hours.
    /// By default both must be inside the window (the stricter wins).
    #[serde(default)]
    pub time_zone_authoritative: bool,
}

impl Default for ContactsConfig {
    fn default() -> Self {
        Self {
            default_country: default_country(),
            fields: BTreeMap::new(),
            time_zone_authoritative: false,
        }
    }
}

fn default_country() -> String {
    "US".to_owned()
}

/// Why a contact request was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    /// A value is not what the field takes.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`phone`, `fields.age`, `tags`).
        field: String,
        /// What is wrong and what to write.
        message: String,
    },
    /// No contact has that number.
    #[error("no contact has the number {0}")]
    NotFound(String),
    /// The store failed: retry later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the consent ledger failed.
    #[error("cannot read the consent ledger: {0:#}")]
    Ledger(anyhow::Error),
}

impl From<crate::input::InputError> for ContactError {
    fn from(error: crate::input::InputError) -> Self {
        Self::Invalid {
            field: error.field,
            message: error.message,
        }
    }
}

/// A contact to create, or to merge into the one with its number.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// The number, E.164 or national (the default country's).
    pub phone: String,
    /// Fields to set (merged into existing ones; `null` removes one).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// Tags to add.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The contact's locale.
    #[serde(default)]
    pub locale: Option<String>,
    /// The contact's IANA time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// A change to a contact.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    /// Fields to set (merged; `null` removes one).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
    /// The whole set of tags, replacing the old one.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Tags to add.
    #[serde(default)]
    pub add_tags: Vec<String>,
    /// Tags to remove.
    #[serde(default)]
    pub remove_tags: Vec<String>,
    /// The locale (`""` clears it).
    #[serde(default)]
    pub locale: Option<String>,
    /// The time zone (`""` clears it).
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// The contacts, over the store.
pub struct Contacts {
    store: Store,
    tables: Tables,
    ledger: Ledger,
    clock: SharedClock,
    config: ContactsConfig,
    country: &'static number::Country,
    /// Writers read, change and write a record: one at a time, so two never lose each other's
    /// change (contact writes are few next to texts).
    writer: Mutex<()>,
}

impl std::fmt::Debug for Contacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contacts").finish_non_exhaustive()
    }
}

impl Contacts {
    /// The contacts of `store`.
    ///
    /// # Errors
    ///
    /// When `config.default_country` is not a country smsflow knows.
    pub fn new(
        store: &Store,
        ledger: Ledger,
        clock: SharedClock,
        config: ContactsConfig,
    ) -> anyhow::Result<Self> {
        let country = number::country(&config.default_country).ok_or_else(|| {
            anyhow::anyhow!(
                "[contacts] default_country = \"{}\" is not one smsflow knows; it knows {}",
                config.default_country,
                number::country_codes().join(", ")
            )
        })?;
        Ok(Self {
            store: store.clone(),
            tables: store.tables(),
            ledger,
            clock,
            config,
            country,
            writer: Mutex::new(()),
        })
    }

    /// `raw` as E.164, a national number read in the default country.
    ///
    /// # Errors
    ///
    /// [`ContactError::Invalid`] for `phone`.
    pub fn phone(&self, raw: &str) -> Result<String, ContactError> {
        number::normalize(raw, self.country).map_err(|error| ContactError::Invalid {
            field: "phone".to_owned(),
            message: error.to_string(),
        })
    }

    /// Every field's type: the declared ones, then those first seen in values.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn field_types(&self) -> Result<BTreeMap<String, FieldType>, StoreError> {
        let mut types = self.tables.contact_field_types.all()?;
        types.extend(self.config.fields.clone());
        Ok(types)
    }

    /// Creates the contact, or merges `input` into the one with its number: fields merge,
    /// tags add up, a locale or time zone given replaces the old. Returns the contact and
    /// whether it is new.
    ///
    /// # Errors
    ///
    /// [`ContactError::Invalid`] for a bad value (nothing written), or a store failure.
    pub fn upsert(&self, input: &ContactInput) -> Result<(Contact, bool), ContactError> {
        let _writer = self.lock();
        let mut batch = Batch::new();
        let (contact, created) = self.upsert_in(&mut batch, input)?;
        self.store.apply(batch)?;
        Ok((self.with_activity(contact)?, created))
    }

    /// The writers' lock: held from reading a record until its batch is applied.
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`Contacts::upsert`] into `batch`, for callers that write more with it (an import's
    /// consent records). The caller holds [`Contacts::lock`] until the batch is applied.
    fn upsert_in(
        &self,
        batch: &mut Batch,
        input: &ContactInput,
    ) -> Result<(Contact, bool), ContactError> {
        let phone = self.phone(&input.phone)?;
        let patch = ContactPatch {
            fields: input.fields.clone(),
            add_tags: input.tags.clone(),
            locale: input.locale.clone(),
            time_zone: input.time_zone.clone(),
            ..ContactPatch::default()
        };
        let (seq, existing) = match self.tables.contact_addresses.get(&phone)? {
            Some(seq) => (seq, self.tables.contacts.get(seq)?),
            None => (self.store.generate_id()?, None),
        };
        let created = existing.is_none();
        let contact = existing.unwrap_or_else(|| Contact {
            id: contact_id(seq),
            phone: phone.clone(),
            fields: BTreeMap::new(),
            tags: BTreeSet::new(),
            locale: None,
            time_zone: None,
            created_at_ms: self.clock.now_ms(),
            last_inbound_ms: None,
            last_outbound_ms: None,
        });
        let contact = self.patched(batch, contact, &patch)?;
        self.tables.contacts.put_in(batch, seq, &contact)?;
        if created {
            self.tables.contact_addresses.put_in(batch, &phone, seq)?;
        }
        Ok((contact, created))
    }

    /// The key of the contact with `phone` (normalised), made a bare contact when it is
    /// not one yet.
    ///
    /// # Errors
    ///
    /// [`ContactError::Invalid`] for the number, or a store failure.
    pub fn ensure(&self, phone: &str) -> Result<u64, ContactError> {
        let phone = self.phone(phone)?;
        if let Some((seq, _)) = self.find(&phone)? {
            return Ok(seq);
        }
        let (contact, _) = self.upsert(&ContactInput {
            phone,
            ..ContactInput::default()
        })?;
        crate::store::contacts::contact_seq(&contact.id).ok_or_else(|| ContactError::Invalid {
            field: "phone".to_owned(),
            message: format!("contact id `{}` is malformed", contact.id),
        })
    }

    /// Changes the contact with `phone`.
    ///
    /// # Errors
    ///
    /// [`ContactError::NotFound`], [`ContactError::Invalid`] (nothing written), or a store
    /// failure.
    pub fn patch(&self, phone: &str, patch: &ContactPatch) -> Result<Contact, ContactError> {
        let phone = self.phone(phone)?;
        let _writer = self.lock();
        let (seq, contact) = self
            .find(&phone)?
            .ok_or_else(|| ContactError::NotFound(phone.clone()))?;
        let mut batch = Batch::new();
        let contact = self.patched(&mut batch, contact, patch)?;
        self.tables.contacts.put_in(&mut batch, seq, &contact)?;
        self.store.apply(batch)?;
        Ok(self.with_activity(contact)?)
    }

    /// `contact` with `patch` applied; new field types go into `batch`.
    fn patched(
        &self,
        batch: &mut Batch,
        mut contact: Contact,
        patch: &ContactPatch,
    ) -> Result<Contact, ContactError> {
        let (values, new_types) = fields::typed_fields(&patch.fields, &self.field_types()?)?;
        for (name, value) in values {
            match value {
                Some(value) => contact.fields.insert(name, value),
                None => contact.fields.remove(&name),
            };
        }
        if contact.fields.len() > fields::MAX_FIELDS {
            return Err(ContactError::Invalid {
                field: "fields".to_owned(),
                message: format!("a contact holds at most {} fields", fields::MAX_FIELDS),
            });
        }
        for (name, kind) in new_types {
            self.tables.contact_field_types.put_in(batch, &name, kind)?;
        }
        if let Some(tags) = &patch.tags {
            contact.tags = tags
                .iter()
                .map(|tag| fields::tag(tag))
                .collect::<Result<_, _>>()?;
        }
        for tag in &patch.add_tags {
            contact.tags.insert(fields::tag(tag)?);
        }
        for tag in &patch.remove_tags {
            contact.tags.remove(&fields::tag(tag)?);
        }
        if contact.tags.len() > fields::MAX_TAGS {
            return Err(ContactError::Invalid {
                field: "tags".to_owned(),
                message: format!("a contact holds at most {} tags", fields::MAX_TAGS),
            });
        }
        if let Some(locale) = &patch.locale {
            contact.locale = optional(locale, fields::locale)?;
        }
        if let Some(zone) = &patch.time_zone {
            contact.time_zone = optional(zone, fields::time_zone)?;
        }
        Ok(contact)
    }

    /// The contact with `phone` (E.164), with its activity.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get(&self, phone: &str) -> Result<Option<Contact>, StoreError> {
        self.find(phone)?
            .map(|(_, contact)| self.with_activity(contact))
            .transpose()
    }

    /// The contact with key `seq`, with its activity.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn get_by_seq(&self, seq: u64) -> Result<Option<Contact>, StoreError> {
        self.tables
            .contacts
            .get(seq)?
            .map(|contact| self.with_activity(contact))
            .transpose()
    }

    fn find(&self, phone: &str) -> Result<Option<(u64, Contact)>, StoreError> {
        let Some(seq) = self.tables.contact_addresses.get(phone)? else {
            return Ok(None);
        };
        Ok(self.tables.contacts.get(seq)?.map(|contact| (seq, contact)))
    }

    /// `contact` with when it last texted and was texted.
    fn with_activity(&self, mut contact: Contact) -> Result<Contact, StoreError> {
        let activity = &self.tables.contact_activity;
        contact.last_inbound_ms = activity.last(&contact.phone, Direction::Inbound)?;
        contact.last_outbound_ms = activity.last(&contact.phone, Direction::Outbound)?;
        Ok(contact)
    }

    /// Every contact after key `after`, in creation order, with its activity: a stream.
    pub fn stream(
        &self,
        after: Option<u64>,
    ) -> impl Iterator<Item = Result<(u64, Contact), StoreError>> + '_ {
        self.tables.contacts.after(after).map(move |row| {
            let (seq, contact) = row?;
            Ok((seq, self.with_activity(contact)?))
        })
    }

    /// Erases the contact with `phone`: see the module documentation for what stays.
    ///
    /// # Errors
    ///
    /// [`ContactError::NotFound`], or a store failure.
    pub async fn delete(&self, phone: &str, our_number: &str) -> Result<(), ContactError> {
        let phone = self.phone(phone)?;
        let mut batch = Batch::new();
        {
            let _writer = self.lock();
            let (seq, _) = self
                .find(&phone)?
                .ok_or_else(|| ContactError::NotFound(phone.clone()))?;
            self.tables.contacts.remove_in(&mut batch, seq);
            self.tables.contact_addresses.remove_in(&mut batch, &phone);
            let key = ConversationKey::new(our_number, &phone);
            if let Some(mut conversation) = self.tables.conversations.get(&key)? {
                conversation.fields.clear();
                self.tables
                    .conversations
                    .put_in(&mut batch, &conversation)?;
            }
            self.tables.transcript.remove_all_in(&mut batch, &key)?;
            self.tables.suppressions.put_in(
                &mut batch,
                &phone,
                "the contact was erased at their request (DELETE /v1/contacts)",
            )?;
            self.store.apply(batch)?;
        }
        self.store.flush().await?;
        Ok(())
    }

    /// The contact as the API shows it: its record, fields as JSON values, times as RFC 3339,
    /// and its consent per program as the ledger holds it now.
    ///
    /// # Errors
    ///
    /// When the ledger cannot be read.
    pub fn view(&self, contact: &Contact) -> Result<Value, ContactError> {
        let fields: serde_json::Map<String, Value> = contact
            .fields
            .iter()
            .map(|(name, value)| (name.clone(), fields::shown(value)))
            .collect();
        let time = |ms: Option<i64>| ms.map(crate::compliance::gate::rfc3339);
        Ok(json!({
            "id": contact.id,
            "phone": contact.phone,
            "fields": fields,
            "tags": contact.tags,
            "locale": contact.locale,
            "time_zone": contact.time_zone,
            "created_at": crate::compliance::gate::rfc3339(contact.created_at_ms),
            "last_inbound_at": time(contact.last_inbound_ms),
            "last_outbound_at": time(contact.last_outbound_ms),
            "consent": self.consent(&contact.phone)?,
        }))
    }

    /// `{"<program>": {"marketing": "opted_in", "transactional": "unknown"}}` for every program
    /// the ledger has a record of for `phone`.
    fn consent(&self, phone: &str) -> Result<Value, ContactError> {
        let records = self
            .ledger
            .records_for(phone)
            .map_err(ContactError::Ledger)?;
        let programs: BTreeSet<&str> = records
            .iter()
            .map(|record| record.program.as_str())
            .collect();
        let mut out = serde_json::Map::new();
        for program in programs {
            let mut classes = serde_json::Map::new();
            for (name, class) in [
                ("marketing", ConsentClass::Marketing),
                ("transactional", ConsentClass::Transactional),
            ] {
                let state = self
                    .ledger
                    .state(phone, program, class)
                    .map_err(ContactError::Ledger)?;
                classes.insert(name.to_owned(), json!(state_name(state)));
            }
            out.insert(program.to_owned(), Value::Object(classes));
        }
        Ok(Value::Object(out))
    }

    /// Saves `query` as the segment `name`.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn save_segment(&self, name: &str, query: &str) -> Result<(), StoreError> {
        self.tables.segments.put(name, query)
    }

    /// The saved segments, by name.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn segments(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.tables.segments.all()
    }

    /// The ledger contacts' consent is read from.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The contact's fields as a flow's start takes them (text).
    pub fn flow_fields(contact: &Contact) -> BTreeMap<String, String> {
        contact
            .fields
            .iter()
            .map(|(name, value)| (name.clone(), fields::as_text(value)))
            .collect()
    }

    /// Writes everything to disk now, blocking: for the command line's offline import.
    ///
    /// # Errors
    ///
    /// When the disk write fails.
    pub fn flush_sync(&self) -> Result<(), StoreError> {
        self.store.flush_sync()
    }

    /// When the clock says it is.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// The name of a consent state in the API.
pub fn state_name(state: ConsentState) -> &'static str {
    match state {
        ConsentState::Unknown => "unknown",
        ConsentState::OptedIn { .. } => "opted_in",
        ConsentState::OptedOut { .. } => "opted_out",
    }
}

/// `None` for `""`, else `check(text)`.
fn optional(
    text: &str,
    check: fn(&str) -> Result<String, ContactError>,
) -> Result<Option<String>, ContactError> {
    if text.is_empty() {
        Ok(None)
    } else {
        check(text).map(Some)
    }
}
