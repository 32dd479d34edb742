//! Transcripts: every entry of every run of a conversation, in order.
//!
//! Key: `<conversation key> 0x00 <seq u64 BE>`, so one conversation's entries are one prefix
//! scan, in the order they were written (the conversation's `transcript_len` hands out seqs).

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::conversations::ConversationKey;
use super::keys::{Reader, push_u64};
use super::table::{Cursor, Key, Swept, Table};
use super::{Batch, Result, Store, TableId};

/// Entry `seq` of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryKey {
    conversation: ConversationKey,
    seq: u64,
}

impl Key for EntryKey {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&prefix(&self.conversation));
        push_u64(out, self.seq);
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let (conversation, seq) = Reader::new(bytes).rest_then_u64()?;
        let conversation = conversation.strip_suffix(&[0])?;
        Some(Self {
            conversation: ConversationKey::read(conversation)?,
            seq,
        })
    }
}

/// The layout every entry of `conversation` starts with.
fn prefix(conversation: &ConversationKey) -> Vec<u8> {
    let mut out = Vec::new();
    conversation.write(&mut out);
    out.push(0);
    out
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its sequence number in the conversation.
    pub seq: u64,
    /// When.
    pub at_ms: i64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What a transcript entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A text from the contact.
    Inbound {
        /// The provider's message id.
        message_id: String,
        /// The text.
        text: String,
    },
    /// A text to the contact, queued in the outbox.
    Outbound {
        /// The outbox id.
        message_id: String,
        /// The text.
        text: String,
        /// The step that sent it.
        step: String,
        /// Segments billed.
        segments: usize,
    },
    /// A flow run began.
    Started {
        /// The flow.
        flow: String,
        /// Its version.
        version: String,
        /// `api`, `keyword`, `catch_all`.
        trigger: String,
    },
    /// The run entered a step.
    Step {
        /// The step.
        step: String,
    },
    /// A classifier's answer.
    Classified {
        /// The intent.
        intent: String,
        /// Its confidence.
        confidence: f32,
    },
    /// A split assigned a variant.
    Variant {
        /// The split step.
        step: String,
        /// The variant.
        variant: String,
    },
    /// A wait timed out.
    TimedOut {
        /// The wait step.
        step: String,
    },
    /// A step failed.
    Error {
        /// The step.
        step: String,
        /// What went wrong.
        message: String,
    },
    /// The conversation went to people.
    Handoff {
        /// The queue.
        queue: String,
        /// Why.
        reason: String,
    },
    /// The run ended.
    Ended {
        /// Its outcome.
        outcome: Option<String>,
    },
}

json_value!(Entry);

/// The transcript table.
#[derive(Debug, Clone)]
pub struct Transcript {
    table: Table<EntryKey, Entry>,
}

impl Transcript {
    pub(super) fn new(store: &Store) -> Self {
        Self {
            table: store.table(TableId::Transcript),
        }
    }

    /// Every entry of `conversation`, oldest first.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or an entry does not decode.
    pub fn of(&self, conversation: &ConversationKey) -> Result<Vec<Entry>> {
        self.table
            .scan_prefix(&prefix(conversation))
            .map(|row| row.map(|(_, entry)| entry))
            .collect()
    }

    /// Up to `limit` entries of `conversation` before entry `before` (all of them when
    /// `None`), the newest of them, oldest first: a page of a long transcript.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or an entry does not decode.
    pub fn page(
        &self,
        conversation: &ConversationKey,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let start = prefix(conversation);
        let mut end = start.clone();
        match before {
            Some(seq) => push_u64(&mut end, seq),
            // Past every seq: the prefix with its separator bumped.
            None => {
                if let Some(last) = end.last_mut() {
                    *last += 1;
                }
            }
        }
        let mut page: Vec<Entry> = self
            .table
            .range(&start, Some(&end))
            .rev()
            .take(limit)
            .map(|row| row.map(|(_, entry)| entry))
            .collect::<Result<_>>()?;
        page.reverse();
        Ok(page)
    }

    /// One step of expiring the entries written before `before_ms`: each indexed entry past
    /// it, then the entries after it in its conversation that are past it too (the rest of
    /// its turn, written without index entries by [`Transcript::put_turn_in`]).
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
        let mut heads = Vec::new();
        let mut swept =
            self.table
                .expire_indexed_in(batch, from, limit, before_ms, |key, entry| {
                    let expired = entry.at_ms < before_ms;
                    if expired {
                        heads.push(key.clone());
                    }
                    Ok(expired)
                })?;
        for head in heads {
            let mut start = Vec::new();
            EntryKey {
                seq: head.seq.saturating_add(1),
                ..head.clone()
            }
            .write(&mut start);
            // Past the conversation's entries: its prefix ends in 0x00, every entry follows it.
            let mut end = prefix(&head.conversation);
            end.pop();
            end.push(1);
            for row in self.table.range(&start, Some(&end)) {
                let (key, entry) = row?;
                swept.scanned += 1;
                if entry.at_ms >= before_ms {
                    break;
                }
                self.table.remove_in(batch, &key);
                swept.removed += 1;
            }
        }
        Ok(swept)
    }

    /// Adds a turn's `entries` of `conversation` to `batch`, in the expiry index by the first
    /// alone: its expiry takes the others along ([`Transcript::expire_in`]), and one index
    /// entry per turn rather than per entry keeps the index small.
    ///
    /// # Errors
    ///
    /// When an entry cannot be encoded.
    pub fn put_turn_in(
        &self,
        batch: &mut Batch,
        conversation: &ConversationKey,
        entries: &[Entry],
    ) -> Result<()> {
        for (index, entry) in entries.iter().enumerate() {
            let key = EntryKey {
                conversation: conversation.clone(),
                seq: entry.seq,
            };
            if index == 0 {
                self.table
                    .put_expiring_in(batch, &key, entry, entry.at_ms)?;
            } else {
                self.table.put_in(batch, &key, entry)?;
            }
        }
        Ok(())
    }

    /// Adds removing every entry of `conversation` to `batch` (an erasure).
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub fn remove_all_in(&self, batch: &mut Batch, conversation: &ConversationKey) -> Result<()> {
        for row in self.table.scan_prefix(&prefix(conversation)) {
            let (key, _) = row?;
            self.table.remove_in(batch, &key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            at_ms: 5,
            event: Event::Step {
                step: format!("s{seq}"),
            },
        }
    }

    #[test]
    fn a_page_is_the_newest_entries_before_a_seq_oldest_first() {
        let store = Store::temporary().unwrap();
        let transcript = Transcript::new(&store);
        let ours = ConversationKey::new("+15550001000", "+12125550100");
        let other = ConversationKey::new("+15550001000", "+12125550101");
        let mut batch = Batch::new();
        for seq in 1..=10 {
            transcript
                .put_turn_in(&mut batch, &ours, &[entry(seq)])
                .unwrap();
            transcript
                .put_turn_in(&mut batch, &other, &[entry(seq)])
                .unwrap();
        }
        store.apply(batch).unwrap();
        let seqs = |page: Vec<Entry>| page.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(transcript.page(&ours, None, 3).unwrap()), [8, 9, 10]);
        assert_eq!(seqs(transcript.page(&ours, Some(8), 3).unwrap()), [5, 6, 7]);
        assert_eq!(seqs(transcript.page(&ours, Some(3), 5).unwrap()), [1, 2]);
        assert_eq!(transcript.page(&ours, None, 100).unwrap().len(), 10);
    }

    #[test]
    fn entries_come_back_in_seq_order_per_conversation() {
        let store = Store::temporary().unwrap();
        let table = Transcript::new(&store);
        let ana = ConversationKey::new("+15550001000", "+12125550100");
        // A contact whose number extends Ana's must not show up in her transcript.
        let longer = ConversationKey::new("+15550001000", "+121255501001");
        let mut batch = Batch::new();
        for seq in [2, 0, 256, 1] {
            table.put_turn_in(&mut batch, &ana, &[entry(seq)]).unwrap();
        }
        table.put_turn_in(&mut batch, &longer, &[entry(0)]).unwrap();
        store.apply(batch).unwrap();
        let seqs: Vec<u64> = table.of(&ana).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 256]);
        assert_eq!(table.of(&longer).unwrap(), [entry(0)]);
    }
}
