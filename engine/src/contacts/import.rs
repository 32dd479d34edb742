//! Importing contacts from CSV: each row becomes a contact (merged into the one with its number
//! when there is one) and, when the row or the import carries consent evidence, an opt-in in
//! the ledger, with the import as its source. A row is written whole or not at all: a bad row
//! is refused with its line and the reason, and the import goes on.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::csv::{ContactRows, ImportError, ImportOptions, Row, RowError};
use super::{ContactError, ContactInput, Contacts};
use crate::compliance::ledger::{ConsentClass, ConsentEvent, ConsentSource, NewConsent};
use crate::store::Batch;

/// The most refused rows an import lists; the count goes on past it.
pub const MAX_REFUSED_LISTED: usize = 1000;

/// What an import records besides the rows themselves.
#[derive(Debug, Clone, Default)]
pub struct ImportSettings {
    /// The import's name in the ledger's evidence (the file's name, or the API call's id).
    pub batch: String,
    /// Record every row as opted in, from this source (when the rows carry no consent columns).
    pub consent_source: Option<String>,
    /// The disclosure the contacts agreed to, for rows without a `consent_disclosure` column.
    pub disclosure: Option<String>,
    /// The program consent is for, for rows without a `consent_program` column.
    pub program: Option<String>,
    /// Marketing or transactional consent (marketing unless told).
    pub class: Option<ConsentClass>,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportSummary {
    /// Contacts created.
    pub created: u64,
    /// Contacts that existed and were merged into.
    pub updated: u64,
    /// Opt-ins recorded in the ledger.
    pub consents: u64,
    /// The refused rows (the first [`MAX_REFUSED_LISTED`]).
    pub refused: Vec<RowError>,
    /// How many rows were refused in all.
    pub refused_total: u64,
    /// The import stopped before the end of the input (an unclosed quote, a read error): the
    /// last refused row says where.
    pub truncated: bool,
}

impl ImportSummary {
    fn refuse(&mut self, error: RowError) {
        self.refused_total += 1;
        if self.refused.len() < MAX_REFUSED_LISTED {
            self.refused.push(error);
        }
    }
}

/// Why an import could not begin (the header is wrong) or went wrong as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// The file as a whole is not a contacts CSV.
    #[error(transparent)]
    File(#[from] ImportError),
    /// The store failed: rows before this one are in, this one and the rest are not.
    #[error(
        "the store failed after {done} rows: {source}; the rows before are imported, run it again for the rest (rows merge)"
    )]
    Store {
        /// Rows imported before.
        done: u64,
        /// The failure.
        #[source]
        source: ContactError,
    },
}

impl Contacts {
    /// Imports the CSV `input`; `progress` is called after each row with the bytes read so far
    /// unknown (the row's line), for a progress bar.
    ///
    /// # Errors
    ///
    /// [`ImportFailure::File`] when the header is wrong (nothing written), or
    /// [`ImportFailure::Store`] when the store fails midway.
    pub fn import(
        &self,
        input: impl Read,
        settings: &ImportSettings,
        mut progress: impl FnMut(u64),
    ) -> Result<ImportSummary, ImportFailure> {
        let rows = ContactRows::new(input, ImportOptions::new(self.country))?;
        let mut summary = ImportSummary::default();
        for row in rows {
            let row = match row {
                Ok(row) => row,
                Err(error) => {
                    summary.truncated |= error.error.contains("was not read");
                    summary.refuse(error);
                    continue;
                }
            };
            let line = row.line;
            match self.import_row(&row, settings) {
                Ok((created, consented)) => {
                    if created {
                        summary.created += 1;
                    } else {
                        summary.updated += 1;
                    }
                    summary.consents += u64::from(consented);
                }
                Err(ContactError::Store(source)) => {
                    return Err(ImportFailure::Store {
                        done: summary.created + summary.updated,
                        source: ContactError::Store(source),
                    });
                }
                Err(error) => summary.refuse(RowError {
                    line,
                    error: error.to_string(),
                }),
            }
            progress(line);
        }
        Ok(summary)
    }

    /// One row in one batch: the contact and its opt-in. Whether the contact is new, and
    /// whether consent was recorded.
    fn import_row(
        &self,
        row: &Row,
        settings: &ImportSettings,
    ) -> Result<(bool, bool), ContactError> {
        let input = ContactInput {
            phone: row.phone.clone(),
            fields: row
                .fields
                .iter()
                .map(|(name, value)| (name.clone(), Value::String(value.clone())))
                .collect::<BTreeMap<_, _>>(),
            tags: row.tags.clone(),
            locale: row.locale.clone(),
            time_zone: row.time_zone.clone(),
        };
        let consent = self.row_consent(row, settings)?;
        let _writer = self.lock();
        let mut batch = Batch::new();
        let (contact, created) = self.upsert_in(&mut batch, &input)?;
        let Some(mut consent) = consent else {
            self.store.apply(batch)?;
            return Ok((created, false));
        };
        consent.number.clone_from(&contact.phone);
        let mut ledger = self.ledger.appending();
        ledger
            .append(&mut batch, consent)
            .map_err(ContactError::Ledger)?;
        self.store.apply(batch)?;
        ledger.committed();
        Ok((created, true))
    }

    /// The opt-in a row records: from its consent columns, else from the import's settings;
    /// none when neither gives a source.
    fn row_consent(
        &self,
        row: &Row,
        settings: &ImportSettings,
    ) -> Result<Option<NewConsent>, ContactError> {
        let columns = row.consent.as_ref();
        let source = columns
            .and_then(|consent| consent.source.clone())
            .or_else(|| settings.consent_source.clone());
        let Some(source) = source else {
            return Ok(None);
        };
        let invalid = |field: &str, message: &str| ContactError::Invalid {
            field: field.to_owned(),
            message: message.to_owned(),
        };
        let program = columns
            .and_then(|consent| consent.program.clone())
            .or_else(|| settings.program.clone())
            .ok_or_else(|| {
                invalid(
                    "consent_program",
                    "consent needs its program: add a consent_program column, or name it for the whole import (--program)",
                )
            })?;
        let disclosure = columns
            .and_then(|consent| consent.disclosure.clone())
            .or_else(|| settings.disclosure.clone())
            .ok_or_else(|| {
                invalid(
                    "consent_disclosure",
                    "consent needs the disclosure the contact agreed to: add a consent_disclosure column, or give it for the whole import (--disclosure)",
                )
            })?;
        let at_ms = match columns.and_then(|consent| consent.at.as_deref()) {
            Some(at) => super::fields::parse_datetime(at).ok_or_else(|| {
                invalid(
                    "consent_at",
                    &format!("`{at}` is not a time: write 2025-11-03T14:00:00Z"),
                )
            })?,
            None => self.now_ms(),
        };
        Ok(Some(NewConsent {
            number: String::new(),
            program,
            class: settings.class.unwrap_or(ConsentClass::Marketing),
            event: ConsentEvent::OptIn,
            source: ConsentSource::Import {
                batch: format!("{} ({source})", settings.batch),
            },
            disclosure: Some(disclosure),
            frequency: None,
            raw_text: None,
            at_ms,
        }))
    }
}
