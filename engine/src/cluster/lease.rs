//! A lease on a partition or a sender: taken by a key-value create, renewed by compare-and-set
//! on the revision the holder last wrote, lapsed by the bucket's age limit when not renewed.
//!
//! The creating revision is the lease's **epoch**: it only grows, so texts stamped with it tell
//! a sender which owner of a partition is current. The holder also keeps a local **deadline**:
//! the lease lifetime less a margin, from the start of the last renewal that succeeded. Every
//! effect checks it first, so a node that was paused (SIGSTOP, a long GC-like stall) stops on
//! waking before it learns from the server that the lease is gone.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use tokio::time::Instant;

/// A lease this node holds.
#[derive(Debug)]
pub struct Lease {
    key: String,
    holder: String,
    epoch: u64,
    revision: u64,
    ttl: Duration,
    fence: Fence,
}

/// Whether the holder may still act: shared with the tasks doing the lease's work.
#[derive(Debug, Clone)]
pub struct Fence {
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl Fence {
    fn until(deadline: Instant) -> Self {
        Self {
            deadline: Arc::new(Mutex::new(Some(deadline))),
        }
    }

    /// Whether the lease is still ours by the local clock.
    pub fn valid(&self) -> bool {
        let deadline = *self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        deadline.is_some_and(|deadline| Instant::now() < deadline)
    }

    fn extend(&self, deadline: Instant) {
        let mut held = self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_some() {
            *held = Some(deadline);
        }
    }

    /// Ends it now: nothing checks valid again.
    pub fn revoke(&self) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The margin kept below the lease lifetime: the holder stops this long before the server
/// could let another node take over.
fn margin(ttl: Duration) -> Duration {
    ttl / 5
}

impl Lease {
    /// Takes `key` for `holder`, if nobody holds it.
    pub async fn acquire(
        bucket: &kv::Store,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Option<Self> {
        let started = Instant::now();
        let epoch = bucket
            .create(key, Bytes::from(holder.to_owned()))
            .await
            .ok()?;
        Some(Self {
            key: key.to_owned(),
            holder: holder.to_owned(),
            epoch,
            revision: epoch,
            ttl,
            fence: Fence::until(started + ttl - margin(ttl)),
        })
    }

    /// Renews it. `false` when it is lost (another revision is there, or the local deadline
    /// passed first): the fence is revoked and the holder must stop.
    pub async fn renew(&mut self, bucket: &kv::Store) -> bool {
        if !self.fence.valid() {
            self.fence.revoke();
            return false;
        }
        let started = Instant::now();
        let updated = bucket
            .update(&self.key, Bytes::from(self.holder.clone()), self.revision)
            .await;
        match updated {
            Ok(revision) if self.fence.valid() => {
                self.revision = revision;
                self.fence.extend(started + self.ttl - margin(self.ttl));
                true
            }
            // A timeout or a lost connection: keep acting until the local deadline, renewing
            // again next tick; anything else means another revision is there.
            Err(error)
                if self.fence.valid()
                    && !matches!(error.kind(), kv::UpdateErrorKind::WrongLastRevision) =>
            {
                tracing::warn!(key = %self.key, "lease renewal failed, retrying: {error}");
                true
            }
            // An answer after the local deadline is not trusted: the node may have been paused
            // between sending the renewal and reading its answer.
            Ok(_) | Err(_) => {
                self.fence.revoke();
                false
            }
        }
    }

    /// Gives it up at once (a graceful hand-over): the next holder need not wait for it to
    /// lapse. Only our own revision is deleted.
    pub async fn release(self, bucket: &kv::Store) {
        self.fence.revoke();
        let deleted = bucket
            .delete_expect_revision(&self.key, Some(self.revision))
            .await;
        if let Err(error) = deleted {
            tracing::warn!(key = %self.key, "lease not released, it will lapse: {error}");
        }
    }

    /// The epoch: the creating revision.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The fence its work checks.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }
}
