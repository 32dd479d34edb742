//! Per-sender pacing: a token bucket for each of our numbers.

use std::collections::HashMap;

/// Token buckets keyed by sender number, refilled at `per_second`, holding at most one
/// second's worth (so a quiet number can burst, but not beyond what carriers accept); and the
/// pauses a provider asked for (`Retry-After`), until which a sender takes no token at all.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    buckets: HashMap<String, (f64, i64)>,
    paused_until: HashMap<String, i64>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` texts per second per sender.
    pub fn new(per_second: f64) -> Self {
        Self {
            per_second: per_second.max(0.001),
            buckets: HashMap::new(),
            paused_until: HashMap::new(),
        }
    }

    /// Holds `sender` back until `until_ms` (a later pause wins over an earlier one).
    pub fn pause(&mut self, sender: &str, until_ms: i64) {
        let until = self
            .paused_until
            .entry(sender.to_owned())
            .or_insert(until_ms);
        *until = (*until).max(until_ms);
    }

    /// Takes a token for `sender` at `now_ms`: `None` when one was available, or how many
    /// milliseconds until one is.
    pub fn take(&mut self, sender: &str, now_ms: i64) -> Option<i64> {
        if let Some(&until_ms) = self.paused_until.get(sender) {
            if until_ms > now_ms {
                return Some(until_ms - now_ms);
            }
            self.paused_until.remove(sender);
        }
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

    #[test]
    fn a_paused_sender_waits_out_its_pause_and_others_do_not() {
        let mut limiter = RateLimiter::new(2.0);
        limiter.pause("+1", 30_000);
        limiter.pause("+1", 10_000);
        assert_eq!(limiter.take("+1", 0), Some(30_000), "the later pause holds");
        assert_eq!(limiter.take("+2", 0), None);
        assert_eq!(limiter.take("+1", 29_999), Some(1));
        assert_eq!(limiter.take("+1", 30_000), None);
    }
}
