//! Measurement: the funnel from queued to converted, tracked links, conversions and their
//! attribution, reports with an A/B verdict, and the engine's Prometheus metrics.
//!
//! Funnel events are written by the parts whose state changes they describe (a turn, the
//! outbox, a status callback, the STOP screening), in the same batch: see
//! [`crate::store::funnel`]. This module reads them.

mod attribution;
pub mod chart;
pub mod metrics;
pub mod render;
pub mod report;
pub mod retention;
pub mod verdict;

use std::sync::Arc;

use serde::Deserialize;

use crate::clock::SharedClock;
use crate::config::MeasurementConfig;
use crate::store::funnel::{Conversion, FunnelEvent, FunnelKind, Link};
use crate::store::{Batch, Store, StoreError, Tables};

/// Why a measurement request was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The request is not acceptable; the message says which field and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// No contact or conversation has that number.
    #[error("{0}")]
    Unknown(String),
    /// The store failed: retry.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `POST /v1/conversions`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConversion {
    /// The contact's number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Or the conversation (its contact's number).
    #[serde(default)]
    pub conversation: Option<String>,
    /// What it was worth, a number 0 or more (read as JSON, so a string is refused with a
    /// message naming this field).
    pub value: serde_json::Value,
    /// Its currency (ISO 4217, `USD`).
    pub currency: String,
    /// The client's key: the same key again answers the first conversion.
    pub idempotency_key: String,
    /// When it happened (RFC 3339); now when absent.
    #[serde(default)]
    pub occurred_at: Option<String>,
}

/// The funnel's reader and the conversions and clicks that add to it.
#[derive(Clone)]
pub struct Measurement {
    store: Store,
    tables: Tables,
    clock: SharedClock,
    config: MeasurementConfig,
    /// Programs' own attribution windows (click, delivery), over the config's.
    windows: std::collections::BTreeMap<String, Windows>,
    our_number: String,
}

/// A program's attribution windows, where it sets them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Windows {
    /// The click window.
    pub click: Option<std::time::Duration>,
    /// The delivery window.
    pub delivery: Option<std::time::Duration>,
}

impl std::fmt::Debug for Measurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Measurement").finish_non_exhaustive()
    }
}

impl Measurement {
    /// Measurement over `store`, for conversations of `our_number`.
    pub fn new(
        store: &Store,
        clock: SharedClock,
        config: MeasurementConfig,
        our_number: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            store: store.clone(),
            tables: store.tables(),
            clock,
            config,
            windows: std::collections::BTreeMap::new(),
            our_number,
        })
    }

    /// With the programs' own windows (`[programs.<id>] click_window`, `delivery_window`).
    #[must_use]
    pub fn with_windows(
        self: Arc<Self>,
        windows: std::collections::BTreeMap<String, Windows>,
    ) -> Arc<Self> {
        let mut this = Arc::unwrap_or_clone(self);
        this.windows = windows;
        Arc::new(this)
    }

    /// A click on tracked link `code`: recorded with the text it was in, and its target to
    /// redirect to. `None` for a code no text ever carried (or a malformed one).
    ///
    /// # Errors
    ///
    /// When the store fails.
    pub async fn click(&self, code: &str) -> Result<Option<String>, StoreError> {
        let well_formed = code.len() == crate::flow::runtime::LINK_CODE_LEN
            && code.bytes().all(|byte| byte.is_ascii_alphanumeric());
        if !well_formed {
            return Ok(None);
        }
        let Some(link) = self.tables.links.get(code)? else {
            return Ok(None);
        };
        let mut batch = Batch::new();
        self.tables
            .funnel
            .put_in(&mut batch, &clicked(&link, self.clock.now_ms()))?;
        self.store.commit(batch).await?;
        Ok(Some(link.target))
    }
}

/// The funnel event of a click on `link`.
fn clicked(link: &Link, at_ms: i64) -> FunnelEvent {
    FunnelEvent {
        at_ms,
        kind: FunnelKind::Clicked,
        our_number: link.our_number.clone(),
        contact: link.contact.clone(),
        flow: link.flow.clone(),
        step: link.step.clone(),
        campaign: link.campaign.clone(),
        variant: link.variant.clone(),
        program: link.program.clone(),
        message: Some(link.message.clone()),
        detail: Some(link.target.clone()),
        ..FunnelEvent::default()
    }
}

/// What [`Measurement::convert`] answers: the conversion, and whether it is new.
pub type Converted = (Conversion, bool);
