//! Redis's `instantaneous_*` figures: a rate sampled about every 100 ms,
//! averaged over the last 16 samples (Redis's trackInstantaneousMetric).

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What is sampled.
#[derive(Debug, Clone, Copy)]
pub enum Metric {
    Commands = 0,
    NetInput = 1,
    NetOutput = 2,
}

const METRICS: usize = 3;
const SAMPLES: usize = 16;
const PERIOD: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub struct InstantaneousMetrics {
    inner: Mutex<Samples>,
}

#[derive(Debug, Default)]
struct Samples {
    last_at: Option<Instant>,
    last_totals: [u64; METRICS],
    /// Per metric, rates per second, a ring of `SAMPLES`.
    rates: [[f64; SAMPLES]; METRICS],
    next: usize,
}

impl InstantaneousMetrics {
    /// Records the running totals (in `Metric` order) if a period passed
    /// since the last sample; the first call only sets the baseline.
    pub fn sample(&self, now: Instant, totals: [u64; METRICS]) {
        let mut samples = self.inner.lock();
        let Some(last_at) = samples.last_at else {
            samples.last_at = Some(now);
            samples.last_totals = totals;
            return;
        };
        let elapsed = now.saturating_duration_since(last_at);
        if elapsed < PERIOD {
            return;
        }
        let seconds = elapsed.as_secs_f64();
        let slot = samples.next;
        for (metric, total) in totals.iter().enumerate() {
            let delta = total.saturating_sub(samples.last_totals[metric]);
            samples.rates[metric][slot] = delta as f64 / seconds;
        }
        samples.next = (slot + 1) % SAMPLES;
        samples.last_at = Some(now);
        samples.last_totals = totals;
    }

    /// The metric's mean rate per second over the last samples.
    pub fn rate(&self, metric: Metric) -> f64 {
        let samples = self.inner.lock();
        samples.rates[metric as usize].iter().sum::<f64>() / SAMPLES as f64
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        *self.inner.lock() = Samples::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_average_the_last_samples() {
        let metrics = InstantaneousMetrics::default();
        let start = Instant::now();
        metrics.sample(start, [0, 0, 0]);
        // Too soon: ignored.
        metrics.sample(start + Duration::from_millis(50), [1000, 0, 0]);
        assert_eq!(metrics.rate(Metric::Commands), 0.0);
        // 1,000 commands in 100 ms: 10,000/s, one sample of 16.
        metrics.sample(start + PERIOD, [1000, 2048, 0]);
        assert_eq!(metrics.rate(Metric::Commands), 10_000.0 / 16.0);
        assert_eq!(metrics.rate(Metric::NetInput), 20_480.0 / 16.0);
        for i in 2..=20u32 {
            metrics.sample(start + PERIOD * i, [1000 * u64::from(i), 0, 0]);
        }
        assert!((metrics.rate(Metric::Commands) - 10_000.0).abs() < 1e-6);
        metrics.reset();
        assert_eq!(metrics.rate(Metric::Commands), 0.0);
    }
}
