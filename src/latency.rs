//! The latency monitor, as Redis's `latency.c`: events (`command`,
//! `expire-cycle`, `write-behind-flush`...) that took at least
//! `latency-monitor-threshold` milliseconds leave a sample, one per event
//! and second (the worst), in a history of the last 160.
//!
//! It sits on the bottom floor so that the store (active expiry, eviction)
//! and write-behind (flushes, fsyncs) can report to it; `LATENCY` reads it.
//! So does [`run_behind_clients`], which keeps those background threads
//! from adding latency to the clients' requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const HISTORY_LEN: usize = 160;

/// One sample: when (Unix seconds; 0: empty slot) and how long (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub time: i64,
    pub latency_ms: u64,
}

/// An event's history: a ring of [`HISTORY_LEN`] samples and the worst
/// latency ever seen.
#[derive(Debug, Clone)]
pub struct TimeSeries {
    /// Where the next sample goes.
    next: usize,
    pub max_ms: u64,
    samples: [Sample; HISTORY_LEN],
}

impl TimeSeries {
    fn new() -> Self {
        TimeSeries {
            next: 0,
            max_ms: 0,
            samples: [Sample::default(); HISTORY_LEN],
        }
    }

    /// The samples, oldest first, empty slots skipped.
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        (0..HISTORY_LEN)
            .map(move |j| self.samples[(self.next + j) % HISTORY_LEN])
            .filter(|sample| sample.time != 0)
    }

    /// The most recent sample.
    pub fn latest(&self) -> Sample {
        self.samples[(self.next + HISTORY_LEN - 1) % HISTORY_LEN]
    }

    fn add(&mut self, latency_ms: u64, now: i64) {
        self.max_ms = self.max_ms.max(latency_ms);
        // One sample per second: the worst of that second.
        let previous = &mut self.samples[(self.next + HISTORY_LEN - 1) % HISTORY_LEN];
        if previous.time == now {
            previous.latency_ms = previous.latency_ms.max(latency_ms);
            return;
        }
        self.samples[self.next] = Sample {
            time: now,
            latency_ms,
        };
        self.next = (self.next + 1) % HISTORY_LEN;
    }
}

/// The events and their histories, and the threshold (0: off).
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    threshold_ms: AtomicU64,
    events: Mutex<BTreeMap<String, TimeSeries>>,
}

/// The Unix time in seconds.
pub fn unix_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl LatencyMonitor {
    /// `latency-monitor-threshold`, in ms (0: the monitor is off).
    pub fn set_threshold_ms(&self, threshold_ms: u64) {
        self.threshold_ms.store(threshold_ms, Ordering::Relaxed);
    }

    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    /// Whether the monitor is on: callers time their work only then.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.threshold_ms() > 0
    }

    /// Starts timing an event: `None` (no clock read) while the monitor
    /// is off. Hand the result to [`LatencyMonitor::finish`].
    #[inline]
    pub fn start(&self) -> Option<Instant> {
        self.is_on().then(Instant::now)
    }

    /// Records `event` if the work begun at `started` took at least the
    /// threshold.
    pub fn finish(&self, event: &str, started: Option<Instant>) {
        if let Some(started) = started {
            self.add_sample_if_needed(event, started.elapsed().as_millis() as u64);
        }
    }

    /// Redis's `latencyAddSampleIfNeeded`: a sample when the monitor is on
    /// and `latency_ms` reaches the threshold.
    #[inline]
    pub fn add_sample_if_needed(&self, event: &str, latency_ms: u64) {
        let threshold = self.threshold_ms();
        if threshold > 0 && latency_ms >= threshold {
            self.add_sample(event, latency_ms, unix_seconds());
        }
    }

    /// Records a sample of `event` at `now` (Unix seconds).
    pub fn add_sample(&self, event: &str, latency_ms: u64, now: i64) {
        let mut events = self.events.lock();
        match events.get_mut(event) {
            Some(series) => series.add(latency_ms, now),
            None => {
                let mut series = TimeSeries::new();
                series.add(latency_ms, now);
                events.insert(event.to_string(), series);
            }
        }
    }

    /// Every event with its history, by name.
    pub fn snapshot(&self) -> Vec<(String, TimeSeries)> {
        self.events
            .lock()
            .iter()
            .map(|(name, series)| (name.clone(), series.clone()))
            .collect()
    }

    /// One event's history (names compare case-insensitively, as Redis's
    /// event dictionary does).
    pub fn event(&self, name: &[u8]) -> Option<(String, TimeSeries)> {
        self.events
            .lock()
            .iter()
            .find(|(event, _)| event.as_bytes().eq_ignore_ascii_case(name))
            .map(|(event, series)| (event.clone(), series.clone()))
    }

    /// Forgets the events named (all of them for `None`); returns how many
    /// were forgotten.
    pub fn reset(&self, names: Option<&[&[u8]]>) -> usize {
        let mut events = self.events.lock();
        let before = events.len();
        match names {
            None => events.clear(),
            Some(names) => events.retain(|event, _| {
                !names
                    .iter()
                    .any(|name| event.as_bytes().eq_ignore_ascii_case(name))
            }),
        }
        before - events.len()
    }

    /// Whether any event was recorded.
    pub fn is_empty(&self) -> bool {
        self.events.lock().is_empty()
    }
}

/// A latency-tracking percentile as Redis names it: `%f` with the
/// trailing zeros (and point) trimmed: 50, 99.9.
pub fn percentile_name(percentile: f64) -> String {
    let text = format!("{percentile:.6}");
    let text = text.trim_end_matches('0');
    text.trim_end_matches('.').to_string()
}

/// Redis's `latencyStats` for LATENCY DOCTOR: over the samples kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Analysis {
    pub samples: u64,
    pub avg: u64,
    pub min: u64,
    pub max: u64,
    /// Mean absolute deviation from the average.
    pub mad: u64,
    /// Seconds since the oldest sample (at least 1).
    pub period: i64,
}

/// Redis's `analyzeLatencyForEvent`.
pub fn analyze(series: &TimeSeries, now: i64) -> Analysis {
    let mut analysis = Analysis::default();
    let mut sum = 0u64;
    let mut oldest = 0i64;
    for sample in series.samples() {
        analysis.samples += 1;
        if analysis.samples == 1 {
            analysis.min = sample.latency_ms;
            analysis.max = sample.latency_ms;
        } else {
            analysis.min = analysis.min.min(sample.latency_ms);
            analysis.max = analysis.max.max(sample.latency_ms);
        }
        sum += sample.latency_ms;
        if oldest == 0 || sample.time < oldest {
            oldest = sample.time;
        }
    }
    if analysis.samples == 0 {
        return analysis;
    }
    analysis.avg = sum / analysis.samples;
    analysis.period = (now - oldest).max(0);
    if analysis.period == 0 {
        analysis.period = 1;
    }
    let deviation: u64 = series
        .samples()
        .map(|sample| (analysis.avg as i64 - sample.latency_ms as i64).unsigned_abs())
        .sum();
    analysis.mad = deviation / analysis.samples;
    analysis
}

/// Columns of LATENCY GRAPH.
const GRAPH_COLUMNS: usize = 80;
/// Rows of LATENCY GRAPH's sparkline.
const GRAPH_ROWS: usize = 4;

/// LATENCY GRAPH: the header line and the sparkline of Redis's
/// `latencyCommandGenSparkeline` (drawn as its sparkline.c draws, filled,
/// with "how long ago" labels under the columns).
pub fn graph(event: &str, series: &TimeSeries, now: i64) -> String {
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for sample in series.samples() {
        let elapsed = now - sample.time;
        labels.push(if elapsed < 60 {
            format!("{elapsed}s")
        } else if elapsed < 3600 {
            format!("{}m", elapsed / 60)
        } else if elapsed < 86400 {
            format!("{}h", elapsed / 3600)
        } else {
            format!("{}d", elapsed / 86400)
        });
        values.push(sample.latency_ms);
    }
    let low = values.iter().copied().min().unwrap_or(0);
    let high = values.iter().copied().max().unwrap_or(0);
    let mut text = format!(
        "{event} - high {high} ms, low {low} ms (all time high {} ms)\n",
        series.max_ms
    );
    text.push_str(&"-".repeat(GRAPH_COLUMNS));
    text.push('\n');
    let mut start = 0;
    while start < values.len() {
        let end = (start + GRAPH_COLUMNS).min(values.len());
        if start != 0 {
            text.push('\n');
        }
        render_range(&mut text, &values, &labels, low, high, start, end);
        start = end;
    }
    text
}

/// sparkline.c's `sparklineRenderRange` with SPARKLINE_FILL.
fn render_range(
    text: &mut String,
    values: &[u64],
    labels: &[String],
    low: u64,
    high: u64,
    start: usize,
    end: usize,
) {
    const FILL: [char; 3] = ['_', 'o', '#'];
    const LABEL_MARGIN_TOP: usize = 1;
    let steps = (FILL.len() * GRAPH_ROWS) as i64;
    let range = if high == low {
        1.0
    } else {
        (high - low) as f64
    };
    let mut row = 0;
    loop {
        let mut more = false;
        let mut chars = vec![' '; end - start];
        for (column, j) in (start..end).enumerate() {
            let relative = (values[j] - low) as f64;
            let step = (((relative * steps as f64) as i64) as f64 / range) as i64;
            let step = step.clamp(0, steps - 1);
            if row < GRAPH_ROWS {
                more = true;
                let index = step - ((GRAPH_ROWS - row - 1) * FILL.len()) as i64;
                if (0..FILL.len() as i64).contains(&index) {
                    chars[column] = FILL[index as usize];
                } else if index >= FILL.len() as i64 {
                    chars[column] = '|';
                }
            } else {
                if row - GRAPH_ROWS < LABEL_MARGIN_TOP {
                    more = true;
                    break;
                }
                let label = labels[j].as_bytes();
                let at = row - GRAPH_ROWS - LABEL_MARGIN_TOP;
                if at < label.len() {
                    more = true;
                    chars[column] = label[at] as char;
                }
            }
        }
        if !more {
            break;
        }
        row += 1;
        text.extend(chars);
        text.push('\n');
    }
}

/// The nice value of the background threads that share cores with the
/// threads serving clients (active expiry and eviction, the write-behind
/// flusher): 10, against the default 0.
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's OS priority to [`BACKGROUND_NICE`], so that
/// on a shared core the scheduler runs a worker woken by a client's request
/// ahead of this thread's background work, which then gets what the
/// clients leave (and, at nice 10, still about a tenth of a busy core).
/// Linux keeps the nice value per thread; elsewhere this does nothing.
pub fn run_behind_clients() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; 0 is this thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_names_trim_zeros() {
        assert_eq!(percentile_name(50.0), "50");
        assert_eq!(percentile_name(99.9), "99.9");
        assert_eq!(percentile_name(0.0), "0");
    }

    #[test]
    fn one_sample_per_second_keeps_the_worst() {
        let monitor = LatencyMonitor::default();
        monitor.add_sample("command", 5, 100);
        monitor.add_sample("command", 3, 100);
        monitor.add_sample("command", 9, 100);
        monitor.add_sample("command", 2, 101);
        let (_, series) = monitor.event(b"COMMAND").expect("recorded");
        let samples: Vec<_> = series.samples().map(|s| (s.time, s.latency_ms)).collect();
        assert_eq!(samples, vec![(100, 9), (101, 2)]);
        assert_eq!(series.max_ms, 9);
        assert_eq!(series.latest().latency_ms, 2);
    }

    #[test]
    fn history_keeps_the_last_160() {
        let monitor = LatencyMonitor::default();
        for second in 1..=200 {
            monitor.add_sample("e", second as u64, second);
        }
        let (_, series) = monitor.event(b"e").expect("recorded");
        let times: Vec<i64> = series.samples().map(|s| s.time).collect();
        assert_eq!(times.len(), HISTORY_LEN);
        assert_eq!(times[0], 41);
        assert_eq!(*times.last().expect("some"), 200);
    }

    #[test]
    fn the_threshold_filters_and_zero_is_off() {
        let monitor = LatencyMonitor::default();
        monitor.add_sample_if_needed("e", 100);
        assert!(monitor.is_empty());
        monitor.set_threshold_ms(10);
        monitor.add_sample_if_needed("e", 9);
        assert!(monitor.is_empty());
        monitor.add_sample_if_needed("e", 10);
        assert!(!monitor.is_empty());
        assert_eq!(monitor.reset(Some(&[b"E".as_slice(), b"x"])), 1);
        assert!(monitor.is_empty());
    }

    #[test]
    fn analysis_as_redis_computes_it() {
        let mut series = TimeSeries::new();
        series.add(10, 100);
        series.add(20, 101);
        series.add(30, 102);
        let analysis = analyze(&series, 110);
        assert_eq!(analysis.samples, 3);
        assert_eq!(analysis.avg, 20);
        assert_eq!(analysis.mad, 6);
        assert_eq!(analysis.period, 10);
    }

    #[test]
    fn graph_draws_a_filled_sparkline_with_labels() {
        let mut series = TimeSeries::new();
        series.add(10, 100);
        series.add(40, 101);
        let text = graph("command", &series, 105);
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(
            lines[0],
            "command - high 40 ms, low 10 ms (all time high 40 ms)"
        );
        assert_eq!(lines[1], "-".repeat(80));
        // Four sparkline rows, a blank margin, then the labels downwards.
        assert_eq!(lines[2], " #");
        assert_eq!(lines[3], " |");
        assert_eq!(lines[4], " |");
        assert_eq!(lines[5], "_|");
        assert_eq!(lines[6], "  ");
        assert_eq!(lines[7], "54");
        assert_eq!(lines[8], "ss");
    }
}
