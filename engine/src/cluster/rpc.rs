//! Reads of a contact in cluster mode. A contact's state lives in its partition, so any node
//! forwards a read to the partition's owner over `smsflow.rpc.<p>` (NATS request and reply)
//! rather than keeping a replicated view: an agent or an auditor sees the thread and the
//! consent records as the owner has them, never a lagging copy. Only an owner whose lease
//! still holds answers.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::Engine;

/// How long a read waits for the owner: past a failover's usual length, short of a client's
/// patience.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The subject partition `p`'s owner answers reads on.
pub fn subject(p: u32) -> String {
    format!("smsflow.rpc.{p}")
}

/// A read of one contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "read", rename_all = "snake_case")]
pub enum Read {
    /// A page of the conversation (`GET /v1/conversations/{phone}`).
    Conversation {
        /// Our number.
        our_number: String,
        /// The contact.
        contact: String,
        /// Entries before this sequence.
        before: Option<u64>,
        /// At most this many.
        limit: usize,
    },
    /// The contact's consent records (`GET /v1/consent/{phone}`).
    Consent {
        /// The contact.
        contact: String,
        /// `json` or `csv`.
        csv: bool,
    },
}

impl Read {
    /// The contact it reads.
    pub fn contact(&self) -> &str {
        match self {
            Self::Conversation { contact, .. } | Self::Consent { contact, .. } => contact,
        }
    }
}

/// The owner's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// The conversation page, as the API shows it.
    Page {
        /// The page.
        page: Value,
    },
    /// The consent records, exported.
    Export {
        /// The export's text (JSON or CSV).
        text: String,
    },
    /// Nothing of the kind.
    NotFound {
        /// What was not found.
        what: String,
    },
    /// The owner's store failed.
    Failed {
        /// How.
        error: String,
    },
}

/// What the owner answers `read` with, from its engine.
pub fn answer(engine: &Engine, read: &Read) -> Answer {
    let failed = |error: anyhow::Error| Answer::Failed {
        error: format!("{error:#}"),
    };
    match read {
        Read::Conversation {
            our_number,
            contact,
            before,
            limit,
        } => {
            match crate::engine::conversation_page(
                engine.runtime(),
                engine.outbox(),
                (our_number, contact),
                *before,
                *limit,
            ) {
                Ok(Some(page)) => Answer::Page { page },
                Ok(None) => Answer::NotFound {
                    what: format!("no conversation with {contact}"),
                },
                Err(error) => failed(error),
            }
        }
        Read::Consent { contact, csv } => {
            let ledger = engine.runtime().compliance().ledger();
            let text = match csv {
                true => ledger.export_csv(contact),
                false => ledger.export_json(contact),
            };
            text.map_or_else(failed, |text| Answer::Export { text })
        }
    }
}

/// The answer as the reply's bytes.
pub fn encode(answer: &Answer) -> Bytes {
    Bytes::from(serde_json::to_vec(answer).unwrap_or_default())
}
