//! Per-sender pacing: a token bucket for each of our numbers.

use std::collections::HashMap;

/// Token buckets keyed by sender number, refilled at `per_second`, holding at most one
/// second's worth (so a quiet number can burst, but not beyond what carriers accept).
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    buckets: HashMap<String, (f64, i64)>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` texts per second per sender.
    pub fn new(per_second: f64) -> Self {
        Self {
            per_second: per_second.max(0.001),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `sender` at `now_ms`: `None` when one was available, or how many
    /// milliseconds until one is.
    pub fn take(&mut self, sender: &str, now_ms: i64) -> Option<i64> {
        let capacity = self.per_second.max(1.0);
        let (tokens, last_ms) = self
            .buckets
            .entry(sender.to_owned())
            .or_insert((capacity, now_ms));
        #[allow(clippy::cast_precision_loss)]
        let elapsed_s = (now_ms - *last_ms).max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed_s * self.per_second).min(capacity);
        *last_ms = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            None
        } else {
            #[allow(clippy::cast_possible_truncation)]
            let wait = ((1.0 - *tokens) / self.per_second * 1000.0).ceil() as i64;
            Some(wait.max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_each_sender_on_its_own() {
        let mut limiter = RateLimiter::new(2.0);
        assert_eq!(limiter.take("+1", 0), None);
        assert_eq!(limiter.take("+1", 0), None);
        assert_eq!(limiter.take("+1", 0), Some(500));
        assert_eq!(
            limiter.take("+2", 0),
            None,
            "another sender has its own bucket"
        );
        assert_eq!(limiter.take("+1", 500), None);
        assert_eq!(limiter.take("+1", 500), Some(500));
    }
}
