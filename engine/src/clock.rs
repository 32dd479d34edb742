//! The engine's clock.
//!
//! Everything that asks "what time is it" (plugins, waits, quiet hours) asks a [`Clock`], so tests
//! can start the engine at a chosen instant and move time forward without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The machine's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
            })
    }
}

/// A clock that stands still until moved: for tests and simulations.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        Self {
            now_ms: AtomicI64::new(now_ms),
        }
    }

    /// Moves the clock forward by `delta_ms`.
    pub fn advance(&self, delta_ms: i64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }

    /// Sets the clock to `now_ms`.
    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock shifted by a fixed offset: it starts at a chosen instant and runs at the
/// normal rate from there.
#[derive(Debug, Clone, Copy)]
pub struct ShiftedClock {
    offset_ms: i64,
}

impl ShiftedClock {
    /// A clock that shows `start_ms` now.
    pub fn starting_at(start_ms: i64) -> Self {
        Self {
            offset_ms: start_ms - SystemClock.now_ms(),
        }
    }
}

impl Clock for ShiftedClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms
    }
}

/// The environment variable that starts the engine's clock at another instant (RFC 3339).
pub const CLOCK_ENV: &str = "SMSFLOW_CLOCK";

/// The engine's clock: the wall clock, or, when `SMSFLOW_CLOCK` is set (for tests), a clock
/// starting at that instant, with a loud warning.
///
/// # Errors
///
/// When `SMSFLOW_CLOCK` is set but is not an RFC 3339 time.
pub fn from_env() -> anyhow::Result<SharedClock> {
    let Ok(start) = std::env::var(CLOCK_ENV) else {
        return Ok(Arc::new(SystemClock));
    };
    let instant = humantime::parse_rfc3339_weak(&start).map_err(|error| {
        anyhow::anyhow!("{CLOCK_ENV}=`{start}` is not an RFC 3339 time: {error}")
    })?;
    let start_ms = instant.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    });
    tracing::warn!(
        "{CLOCK_ENV} is set: the engine's clock starts at {start}, not the real time. Never set it in production."
    );
    eprintln!("WARNING: {CLOCK_ENV}={start}: the engine's clock is not the real time (tests only)");
    Ok(Arc::new(ShiftedClock::starting_at(start_ms)))
}

/// Logs a worker pass's failure and says how long to wait before the next: 1 s after the
/// first failure in a row, doubling to 30 s. A store that cannot write (a full disk) fails
/// every pass the same way, and a loop going again at once would spin on it and flood the log.
pub fn pause_after_failure(
    worker: &str,
    error: &dyn std::fmt::Display,
    failures: &mut u32,
) -> std::time::Duration {
    *failures += 1;
    let pause = backoff_ms(1_000, *failures, 30_000);
    tracing::error!("{worker}: {error:#}; the next pass in {pause} ms");
    std::time::Duration::from_millis(pause.cast_unsigned())
}

/// The delay before retry number `attempt` (from 1): `first_ms`, doubling with each attempt,
/// never more than `max_ms`.
pub fn backoff_ms(first_ms: i64, attempt: u32, max_ms: i64) -> i64 {
    first_ms
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(max_ms)
}
