//! Event webhook deliveries: one row per (event, subscribed endpoint), pending until the
//! endpoint takes it, then removed; dead letters once its retry schedule is spent.
//!
//! Key: `<seq u64 BE>` (from [`Store::generate_id`]: emission order) in the pending table and
//! in the dead letters' own table.

use serde::{Deserialize, Serialize};

use super::codec::json_value;
use super::keys::Seq;
use super::table::{Cursor, Swept, Table};
use super::{Batch, Result, Store, TableId};

/// One event on its way to one endpoint: a row of the `events` tree (or of
/// `event_dead_letters` once its retry schedule is spent), keyed by `seq` (u64 big-endian).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDelivery {
    /// The row's key: emission order.
    pub seq: u64,
    /// The endpoint's URL.
    pub url: String,
    /// The event type, for listings (the body holds it too).
    pub kind: String,
    /// The Standard Webhooks `webhook-id`, `msg_<seq>`: the same on every attempt, so the
    /// receiver can drop duplicates.
    pub msg_id: String,
    /// The exact JSON body that is signed and posted, serialised once at emission.
    pub body: String,
    /// When the event was queued.
    pub created_at_ms: i64,
    /// Attempts that failed so far.
    pub attempts: u32,
    /// When the next attempt may run.
    pub next_attempt_ms: i64,
    /// When the last attempt ran.
    #[serde(default)]
    pub last_attempt_ms: Option<i64>,
    /// Why the last attempt failed (`HTTP 500: <start of the answer>`, a network error).
    pub last_error: Option<String>,
}

json_value!(EventDelivery);

/// Pending event deliveries and dead letters.
#[derive(Debug, Clone)]
pub struct EventQueue {
    pending: Table<Seq, EventDelivery>,
    dead: Table<Seq, EventDelivery>,
}

impl EventQueue {
    /// One step of expiring the dead letters emitted before `before_ms`.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn expire_dead_in(
        &self,
        batch: &mut Batch,
        from: &Cursor,
        limit: usize,
        before_ms: i64,
    ) -> Result<Swept> {
        self.dead.sweep_in(batch, from, limit, |_, delivery| {
            delivery.created_at_ms < before_ms
        })
    }

    pub(super) fn new(store: &Store) -> Self {
        Self {
            pending: store.table(TableId::Events),
            dead: store.table(TableId::EventsDead),
        }
    }

    /// Every pending delivery, in emission order.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn pending(&self) -> Result<Vec<EventDelivery>> {
        self.pending
            .all()
            .map(|row| row.map(|(_, delivery)| delivery))
            .collect()
    }

    /// Adds queueing (or rescheduling) `delivery` to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn put_in(&self, batch: &mut Batch, delivery: &EventDelivery) -> Result<()> {
        self.pending.put_in(batch, &Seq(delivery.seq), delivery)
    }

    /// Adds removing a delivered row to `batch`.
    pub fn remove_in(&self, batch: &mut Batch, seq: u64) {
        self.pending.remove_in(batch, &Seq(seq));
    }

    /// Every dead letter, in emission order.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or a row does not decode.
    pub fn dead_letters(&self) -> Result<Vec<EventDelivery>> {
        self.dead
            .all()
            .map(|row| row.map(|(_, delivery)| delivery))
            .collect()
    }

    /// Adds moving `delivery` to the dead letters to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn bury_in(&self, batch: &mut Batch, delivery: &EventDelivery) -> Result<()> {
        self.pending.remove_in(batch, &Seq(delivery.seq));
        self.dead.put_in(batch, &Seq(delivery.seq), delivery)
    }

    /// Adds moving `delivery` from the dead letters back to the queue to `batch`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded.
    pub fn revive_in(&self, batch: &mut Batch, delivery: &EventDelivery) -> Result<()> {
        self.dead.remove_in(batch, &Seq(delivery.seq));
        self.pending.put_in(batch, &Seq(delivery.seq), delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(seq: u64) -> EventDelivery {
        EventDelivery {
            seq,
            url: "http://hooks".into(),
            kind: "conversion".into(),
            msg_id: format!("msg_{seq}"),
            body: "{}".into(),
            created_at_ms: 1,
            attempts: 0,
            next_attempt_ms: 1,
            last_attempt_ms: None,
            last_error: None,
        }
    }

    #[test]
    fn deliveries_come_in_emission_order_and_move_to_the_dead_letters_and_back() {
        let store = Store::temporary().unwrap();
        let queue = EventQueue::new(&store);
        let mut batch = Batch::new();
        for seq in [300, 2, 17] {
            queue.put_in(&mut batch, &delivery(seq)).unwrap();
        }
        store.apply(batch).unwrap();
        let seqs: Vec<u64> = queue.pending().unwrap().iter().map(|d| d.seq).collect();
        assert_eq!(seqs, [2, 17, 300]);
        let mut batch = Batch::new();
        queue.bury_in(&mut batch, &delivery(17)).unwrap();
        queue.remove_in(&mut batch, 2);
        store.apply(batch).unwrap();
        assert_eq!(queue.pending().unwrap(), [delivery(300)]);
        assert_eq!(queue.dead_letters().unwrap(), [delivery(17)]);
        let mut batch = Batch::new();
        queue.revive_in(&mut batch, &delivery(17)).unwrap();
        store.apply(batch).unwrap();
        assert!(queue.dead_letters().unwrap().is_empty());
        assert_eq!(queue.pending().unwrap().len(), 2);
    }
}
