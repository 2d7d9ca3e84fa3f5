//! Time as the store sees it: the system clock, or a manual one for tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Source of "now" in Unix milliseconds.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's real-time clock.
    #[default]
    System,
    /// A clock that only moves when told to (property tests, simulations).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock starting at `start_ms`, and the handle that moves it.
    pub fn manual(start_ms: u64) -> (Clock, Arc<AtomicU64>) {
        let handle = Arc::new(AtomicU64::new(start_ms));
        (Clock::Manual(handle.clone()), handle)
    }

    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            Clock::Manual(ms) => ms.load(Ordering::Relaxed),
        }
    }

    /// Now, to within the kernel's timer tick (a few milliseconds behind
    /// at most): for access times, which are kept in whole seconds. Several
    /// times cheaper than [`Clock::now_ms`] on Linux, where it reads the
    /// time the kernel last stored instead of the CPU's counter; never use
    /// it to decide whether something expired.
    pub fn coarse_now_ms(&self) -> u64 {
        match self {
            Clock::System => coarse_system_ms().unwrap_or_else(|| self.now_ms()),
            Clock::Manual(ms) => ms.load(Ordering::Relaxed),
        }
    }

    pub fn now_us(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            Clock::Manual(ms) => ms.load(Ordering::Relaxed) * 1000,
        }
    }
}

#[cfg(target_os = "linux")]
fn coarse_system_ms() -> Option<u64> {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid timespec for the call to fill in.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut time) } == 0;
    let secs = u64::try_from(time.tv_sec).ok()?;
    let nanos = u64::try_from(time.tv_nsec).ok()?;
    ok.then(|| secs * 1000 + nanos / 1_000_000)
}

#[cfg(not(target_os = "linux"))]
fn coarse_system_ms() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_is_close_behind_the_precise_one() {
        let clock = Clock::System;
        let before = clock.now_ms();
        let coarse = clock.coarse_now_ms();
        let after = clock.now_ms();
        // A kernel tick is at most 10 ms (HZ=100); access times are kept
        // in seconds, so anything well within one is close enough (a busy
        // VM may delay a tick).
        assert!(coarse + 500 >= before, "coarse {coarse} vs {before}");
        assert!(coarse <= after, "coarse {coarse} vs {after}");
    }

    #[test]
    fn a_manual_clock_is_its_own_coarse_clock() {
        let (clock, handle) = Clock::manual(5_000);
        assert_eq!(clock.coarse_now_ms(), 5_000);
        handle.store(7_000, Ordering::Relaxed);
        assert_eq!(clock.coarse_now_ms(), 7_000);
    }
}
