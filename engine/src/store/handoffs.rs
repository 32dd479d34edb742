//! Conversations handed to people, by queue.
//!
//! Key: `<queue> 0x00 <conversation key>`: one queue's conversations are one prefix scan.

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::conversations::ConversationKey;
use super::keys::{Reader, push_str};
use super::table::{Key, Table};
use super::{Batch, Result, Store, TableId};

/// A conversation in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HandoffKey {
    queue: String,
    conversation: ConversationKey,
}

impl Key for HandoffKey {
    fn write(&self, out: &mut Vec<u8>) {
        push_str(out, &self.queue);
        self.conversation.write(out);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        let queue = reader.str()?;
        let rest = reader.rest_str()?;
        Some(Self {
            queue,
            conversation: ConversationKey::read(rest.as_bytes())?,
        })
    }
}

/// A conversation waiting in a human queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffRecord {
    /// Our number.
    pub our_number: String,
    /// The contact.
    pub contact: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub at_ms: i64,
}

json_value!(HandoffRecord);

/// The handoffs table.
#[derive(Debug, Clone)]
pub struct Handoffs {
    table: Table<HandoffKey, HandoffRecord>,
}

impl Handoffs {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Handoffs),
        }
    }

    /// Adds putting a conversation in `queue` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, queue: &str, record: &HandoffRecord) -> Result<()> {
        let key = HandoffKey {
            queue: queue.to_owned(),
            conversation: ConversationKey::new(&record.our_number, &record.contact),
        };
        self.table.put_in(batch, &key, record)
    }

    /// The conversations in `queue`, by conversation key.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn in_queue(&self, queue: &str) -> Result<Vec<HandoffRecord>> {
        let mut prefix = Vec::new();
        push_str(&mut prefix, queue);
        self.table
            .scan_prefix(&prefix)
            .map(|row| row.map(|(_, record)| record))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_lists_only_its_own_conversations() {
        let store = Store::temporary().unwrap();
        let handoffs = Handoffs::new(&store);
        let record = |contact: &str| HandoffRecord {
            our_number: "+15550001000".into(),
            contact: contact.into(),
            reason: "why".into(),
            at_ms: 1,
        };
        let mut batch = Batch::new();
        handoffs
            .put_in(&mut batch, "billing", &record("+12125550101"))
            .unwrap();
        handoffs
            .put_in(&mut batch, "billing-us", &record("+12125550102"))
            .unwrap();
        handoffs
            .put_in(&mut batch, "billing", &record("+12125550100"))
            .unwrap();
        store.apply(batch).unwrap();
        let contacts: Vec<String> = handoffs
            .in_queue("billing")
            .unwrap()
            .into_iter()
            .map(|r| r.contact)
            .collect();
        assert_eq!(contacts, ["+12125550100", "+12125550101"]);
    }
}
