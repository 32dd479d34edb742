//! One async lock per conversation: two events of one conversation (a turn, a screening at
//! ingress) never interleave, while different conversations run in parallel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use crate::store::conversations::ConversationKey;

/// Locks are dropped from the map once it holds this many and they are free, so the map stays
/// small however many contacts the engine has seen.
const PRUNE_AT: usize = 4096;

/// The locks.
#[derive(Debug, Default)]
pub struct ConversationLocks {
    locks: Mutex<HashMap<ConversationKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held conversation: the lock is released when this is dropped.
pub type Held = OwnedMutexGuard<()>;

impl ConversationLocks {
    /// Waits for the conversation at `key` to be free and holds it.
    pub async fn lock(&self, key: &ConversationKey) -> Held {
        self.entry(key).lock_owned().await
    }

    /// [`ConversationLocks::lock`], giving up after `budget`.
    pub async fn lock_within(&self, key: &ConversationKey, budget: Duration) -> Option<Held> {
        tokio::time::timeout(budget, self.lock(key)).await.ok()
    }

    fn entry(&self, key: &ConversationKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if locks.len() > PRUNE_AT {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        match locks.get(key) {
            Some(lock) => Arc::clone(lock),
            None => Arc::clone(locks.entry(key.clone()).or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_conversation_waits_while_another_goes_ahead() {
        let locks = ConversationLocks::default();
        let ana = ConversationKey::new("+15550001000", "+12125550100");
        let bob = ConversationKey::new("+15550001000", "+12125550101");
        let held = locks.lock(&ana).await;
        assert!(
            locks
                .lock_within(&ana, Duration::from_millis(20))
                .await
                .is_none()
        );
        assert!(
            locks
                .lock_within(&bob, Duration::from_millis(20))
                .await
                .is_some()
        );
        drop(held);
        assert!(
            locks
                .lock_within(&ana, Duration::from_millis(20))
                .await
                .is_some()
        );
    }
}
