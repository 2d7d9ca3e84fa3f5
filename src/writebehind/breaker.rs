//! The circuit breaker in front of PostgreSQL: after
//! `write-behind-circuit-failures` consecutive failures (connection refused,
//! timeouts, anything but a per-row data error) it opens, and nobody tries
//! PostgreSQL for `write-behind-circuit-cooldown` ms. Then one attempt, the
//! half-open probe, goes through while the others wait: its success closes
//! the circuit, its failure opens it for another cool-down. Between the
//! failures of a closed circuit the flusher backs off exponentially with
//! jitter as before. Time is passed in, so the state machine is tested with
//! a fake clock.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long a waiting attempt sleeps before asking again while the probe
/// of a half-open circuit is out.
const PROBE_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// What an attempt may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Try PostgreSQL.
    Go,
    /// Do not; ask again after this long.
    Wait(Duration),
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures (at least 1) for
    /// `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// May an attempt go now? An open circuit whose cool-down has passed
    /// lets exactly one attempt through (the probe) and turns half-open.
    pub fn permit(&self, now: Instant) -> Permit {
        let mut state = self.state.lock();
        match *state {
            State::Closed { .. } => Permit::Go,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen;
                Permit::Go
            }
            State::Open { until } => Permit::Wait(until - now),
            State::HalfOpen => Permit::Wait(PROBE_POLL),
        }
    }

    /// PostgreSQL answered: the circuit closes. Returns whether it was not
    /// closed before.
    pub fn success(&self) -> bool {
        let mut state = self.state.lock();
        let was_closed = matches!(*state, State::Closed { .. });
        *state = State::Closed { failures: 0 };
        !was_closed
    }

    /// An attempt failed. Returns whether this opened the circuit.
    pub fn failure(&self, now: Instant) -> bool {
        let mut state = self.state.lock();
        match *state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    *state = State::Open {
                        until: now + self.cooldown,
                    };
                    true
                } else {
                    *state = State::Closed { failures };
                    false
                }
            }
            State::HalfOpen => {
                *state = State::Open {
                    until: now + self.cooldown,
                };
                true
            }
            // A failure of an attempt that started before the circuit
            // opened: the cool-down already runs.
            State::Open { .. } => false,
        }
    }

    /// `closed`, `open` or `half-open`, as INFO shows it.
    pub fn state_name(&self) -> &'static str {
        match *self.state.lock() {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen => "half-open",
        }
    }

    /// How long until an open circuit lets its probe through.
    pub fn open_for(&self, now: Instant) -> Option<Duration> {
        match *self.state.lock() {
            State::Open { until } => Some(until.saturating_duration_since(now)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_k_failures_probes_once_and_recovers() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let breaker = Breaker::new(3, ms(1000));
        assert_eq!(breaker.state_name(), "closed");
        assert!(!breaker.failure(t0));
        assert!(!breaker.failure(t0));
        // A success in between resets the count.
        assert!(!breaker.success());
        assert!(!breaker.failure(t0));
        assert!(!breaker.failure(t0));
        assert_eq!(breaker.permit(t0), Permit::Go);
        assert!(breaker.failure(t0));
        assert_eq!(breaker.state_name(), "open");
        assert_eq!(breaker.permit(t0 + ms(400)), Permit::Wait(ms(600)));
        assert_eq!(breaker.open_for(t0 + ms(400)), Some(ms(600)));
        // A late failure of an attempt started before does not extend it.
        assert!(!breaker.failure(t0 + ms(500)));
        // Cool-down over: one probe, the others wait.
        assert_eq!(breaker.permit(t0 + ms(1000)), Permit::Go);
        assert_eq!(breaker.state_name(), "half-open");
        assert_eq!(breaker.permit(t0 + ms(1001)), Permit::Wait(PROBE_POLL));
        // The probe fails: open again for a full cool-down.
        assert!(breaker.failure(t0 + ms(1100)));
        assert_eq!(breaker.permit(t0 + ms(2000)), Permit::Wait(ms(100)));
        assert_eq!(breaker.permit(t0 + ms(2100)), Permit::Go);
        // The probe succeeds: closed, everyone goes.
        assert!(breaker.success());
        assert_eq!(breaker.state_name(), "closed");
        assert_eq!(breaker.permit(t0 + ms(2101)), Permit::Go);
        assert!(!breaker.failure(t0 + ms(2200)));
        assert_eq!(breaker.state_name(), "closed");
    }
}
