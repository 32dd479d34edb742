//! Failed agent sign-ins counted per client address: after [`MAX_FAILURES`] wrong secrets in
//! [`WINDOW_MS`], that address is refused (429 with `Retry-After`) until the window ends,
//! before any argon2 check runs. A guessing client learns nothing more and costs no CPU;
//! agents behind the same address are held back only by the guesser's own failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// Wrong secrets one address may send per window.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const WINDOW_MS: i64 = 15 * 60_000;
/// Addresses remembered at most: past this, those whose window has ended are forgotten, and if
/// none has, the oldest window goes (a flood of addresses cannot grow the map without bound).
const MAX_ADDRESSES: usize = 100_000;

/// The failures of each client address in its current window.
#[derive(Debug, Default)]
pub struct SignInLimit {
    /// Address → (failures, when the window began).
    failures: Mutex<HashMap<IpAddr, (u32, i64)>>,
}

impl SignInLimit {
    /// `None` when `address` may try now, or the milliseconds until it may.
    pub fn wait_ms(&self, address: IpAddr, now_ms: i64) -> Option<i64> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let &(count, since) = failures.get(&address)?;
        let ends = since + WINDOW_MS;
        (count >= MAX_FAILURES && ends > now_ms).then_some(ends - now_ms)
    }

    /// Counts a wrong secret from `address`.
    pub fn failed(&self, address: IpAddr, now_ms: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_ADDRESSES && !failures.contains_key(&address) {
            failures.retain(|_, (_, since)| *since + WINDOW_MS > now_ms);
            if failures.len() >= MAX_ADDRESSES
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(address, _)| *address)
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(address).or_insert((0, now_ms));
        if entry.1 + WINDOW_MS <= now_ms {
            *entry = (0, now_ms);
        }
        entry.0 += 1;
    }

    /// A right secret from `address`: its count starts again.
    pub fn succeeded(&self, address: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn an_address_is_held_back_after_its_failures_until_the_window_ends() {
        let limit = SignInLimit::default();
        for i in 0..MAX_FAILURES {
            assert_eq!(limit.wait_ms(A, 1_000), None, "try {i}");
            limit.failed(A, 1_000);
        }
        assert_eq!(limit.wait_ms(A, 1_000), Some(WINDOW_MS));
        assert_eq!(limit.wait_ms(A, 1_000 + WINDOW_MS - 1), Some(1));
        assert_eq!(limit.wait_ms(B, 1_000), None, "another address is free");
        assert_eq!(limit.wait_ms(A, 1_000 + WINDOW_MS), None);
        limit.failed(A, 1_000 + WINDOW_MS);
        assert_eq!(limit.wait_ms(A, 1_000 + WINDOW_MS), None, "a new window");
    }

    #[test]
    fn a_right_secret_clears_the_count() {
        let limit = SignInLimit::default();
        for _ in 0..MAX_FAILURES - 1 {
            limit.failed(A, 0);
        }
        limit.succeeded(A);
        limit.failed(A, 0);
        assert_eq!(limit.wait_ms(A, 0), None);
    }
}
