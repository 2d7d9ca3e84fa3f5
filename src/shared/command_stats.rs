//! Per-command statistics (INFO commandstats and latencystats, LATENCY
//! HISTOGRAM), error statistics (INFO errorstats) and the slow log, as
//! Redis 7 keeps them.
//!
//! Commands are known here by a slot number (the command layer gives each
//! command and subcommand one) and named only when rendered. Counting is
//! per thread: each thread bumps the slots of its own stripe (see
//! [`StripedCounter`](super::StripedCounter)), allocated on first use, so
//! that clients running the same command on several cores do not pass
//! cache lines back and forth; INFO sums the stripes.
//!
//! Latencies go to a histogram with the layout of the HdrHistogram Redis
//! uses (1 ns to 1 s, two significant digits): the same buckets, so the
//! same percentiles and LATENCY HISTOGRAM buckets, but with atomic
//! counters (one thread records while INFO reads, with no lock) and its
//! 24 sub-ranges of 128 counters allocated when first hit, since a command
//! only ever lands in a few of them (the whole table, 24 KiB, per command
//! and thread would be a lot of memory for a cache).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

use super::{bump, this_threads_stripe, STRIPES};

/// Slots for commands and subcommands (more than Redis 7 has).
pub const MAX_COMMANDS: usize = 512;

/// Distinct error codes kept before errorstats gives up (Redis's
/// `ERROR_STATS_NUMBER`).
pub const MAX_ERROR_CODES: usize = 128;

// ---------------------------------------------------------------- histogram

/// The HdrHistogram layout of Redis's latency histograms: lowest value 1
/// (ns), highest 1e9, 2 significant digits.
const SUB_BUCKET_HALF_COUNT_MAGNITUDE: u32 = 7;
const SUB_BUCKET_HALF_COUNT: usize = 1 << SUB_BUCKET_HALF_COUNT_MAGNITUDE;
const SUB_BUCKET_MASK: u64 = (2 * SUB_BUCKET_HALF_COUNT as u64) - 1;
/// Values above are recorded as this (Redis's `LATENCY_HISTOGRAM_MAX_VALUE`).
const HISTOGRAM_MAX_NS: u64 = 1_000_000_000;
/// Buckets needed to reach 1e9 with 256 sub-buckets: 23, plus one.
const SEGMENTS: usize = 24;
const COUNTS_LEN: usize = SEGMENTS * SUB_BUCKET_HALF_COUNT;

fn bucket_index(value: u64) -> u32 {
    let pow2_ceiling = 64 - (value | SUB_BUCKET_MASK).leading_zeros();
    pow2_ceiling - (SUB_BUCKET_HALF_COUNT_MAGNITUDE + 1)
}

/// hdr_histogram's `counts_index_for`.
fn counts_index(value: u64) -> usize {
    let bucket = bucket_index(value);
    let sub_bucket = (value >> bucket) as usize;
    ((bucket as usize + 1) << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + sub_bucket - SUB_BUCKET_HALF_COUNT
}

/// hdr_histogram's `hdr_value_at_index`.
fn value_at_index(index: usize) -> u64 {
    let mut bucket = (index >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) as i64 - 1;
    let mut sub_bucket = (index & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT;
    if bucket < 0 {
        sub_bucket -= SUB_BUCKET_HALF_COUNT;
        bucket = 0;
    }
    (sub_bucket as u64) << bucket
}

/// hdr_histogram's `highest_equivalent_value`.
fn highest_equivalent(value: u64) -> u64 {
    let bucket = bucket_index(value);
    let sub_bucket = value >> bucket;
    let lowest = sub_bucket << bucket;
    let adjusted = if sub_bucket >= 2 * SUB_BUCKET_HALF_COUNT as u64 {
        bucket + 1
    } else {
        bucket
    };
    lowest + (1u64 << adjusted) - 1
}

/// hdr_histogram's `lowest_equivalent_value`.
fn lowest_equivalent(value: u64) -> u64 {
    let bucket = bucket_index(value);
    (value >> bucket) << bucket
}

type Segment = [AtomicU64; SUB_BUCKET_HALF_COUNT];

/// Latencies in nanoseconds, counted per HdrHistogram bucket.
#[derive(Default)]
struct AtomicHistogram {
    segments: [OnceLock<Box<Segment>>; SEGMENTS],
}

impl AtomicHistogram {
    #[inline]
    fn record(&self, nanos: u64, exclusive: bool) {
        let index = counts_index(nanos.clamp(1, HISTOGRAM_MAX_NS));
        let segment = self.segments[index >> SUB_BUCKET_HALF_COUNT_MAGNITUDE]
            .get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
        bump(&segment[index & (SUB_BUCKET_HALF_COUNT - 1)], 1, exclusive);
    }

    fn zero(&self) {
        for segment in self.segments.iter().filter_map(OnceLock::get) {
            for count in segment.iter() {
                count.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Adds this histogram's counts into `counts`; whether it had any.
    fn add_into(&self, counts: &mut [u64]) -> bool {
        let mut any = false;
        for (number, segment) in self.segments.iter().enumerate() {
            if let Some(segment) = segment.get() {
                any = true;
                let base = number * SUB_BUCKET_HALF_COUNT;
                for (offset, count) in segment.iter().enumerate() {
                    counts[base + offset] += count.load(Ordering::Relaxed);
                }
            }
        }
        any
    }
}

/// A command's histogram, summed over the stripes (for reports).
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    pub fn total(&self) -> u64 {
        self.total
    }

    /// hdr_histogram's `hdr_value_at_percentile`, in nanoseconds.
    pub fn value_at_percentile(&self, percentile: f64) -> u64 {
        let requested = percentile.min(100.0);
        let wanted = (((requested / 100.0) * self.total as f64) + 0.5) as u64;
        let wanted = wanted.max(1);
        let mut seen = 0;
        let mut value = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                value = value_at_index(index);
                break;
            }
        }
        if percentile == 0.0 {
            lowest_equivalent(value)
        } else {
            highest_equivalent(value)
        }
    }

    /// LATENCY HISTOGRAM's buckets: (µs, cumulative count) at each power
    /// of two from 1024 ns, where the count grew, as Redis's
    /// `fillCommandCDF` walks its histogram (`hdr_iter_log_init(1024, 2)`).
    pub fn cumulative_log_buckets(&self) -> Vec<(u64, u64)> {
        let mut buckets = Vec::new();
        if self.total == 0 {
            return buckets;
        }
        let mut level: u64 = 1024;
        let mut cumulative = 0u64;
        let mut previous = 0u64;
        let mut index = 0usize;
        loop {
            let level_index = counts_index(level.min(HISTOGRAM_MAX_NS * 2));
            while index <= level_index && index < COUNTS_LEN {
                cumulative += self.counts[index];
                index += 1;
            }
            if cumulative > previous {
                buckets.push((highest_equivalent(level) / 1000, cumulative));
            }
            previous = cumulative;
            if cumulative >= self.total || index >= COUNTS_LEN {
                break;
            }
            level *= 2;
        }
        buckets
    }
}

// ---------------------------------------------------------------- counters

/// One command's figures on one stripe.
#[derive(Default)]
struct Slot {
    calls: AtomicU64,
    nanos: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    histogram: AtomicHistogram,
}

impl Slot {
    fn zero(&self) {
        for counter in [&self.calls, &self.nanos, &self.rejected, &self.failed] {
            counter.store(0, Ordering::Relaxed);
        }
        self.histogram.zero();
    }
}

/// One stripe: a slot per command, allocated when the command first runs
/// on a thread of this stripe.
struct Stripe {
    slots: Box<[OnceLock<Box<Slot>>]>,
    /// The reset its counts come after (see [`CommandStats::reset`]).
    epoch: AtomicU64,
}

impl Stripe {
    fn new(epoch: u64) -> Self {
        Stripe {
            slots: (0..MAX_COMMANDS).map(|_| OnceLock::new()).collect(),
            epoch: AtomicU64::new(epoch),
        }
    }

    fn zero(&self) {
        for slot in self.slots.iter().filter_map(OnceLock::get) {
            slot.zero();
        }
    }
}

/// A command's figures, summed over the stripes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandFigures {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
}

/// What happened to one command run, for [`CommandStats::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Counted as a call (not for the runs of a blocked command after its
    /// first).
    pub call: bool,
    pub nanos: u64,
    pub failed: bool,
    /// Into the latency histogram (`latency-tracking`, and the command did
    /// not block).
    pub histogram: bool,
}

/// INFO commandstats, latencystats, errorstats and the figures behind them.
///
/// A thread with a stripe to itself counts with plain loads and stores
/// (see `StripedCounter`), so a reset must not write its stripe: it bumps
/// `epoch` instead, reports skip the stripes of an older epoch, and each
/// such thread zeroes its own stripe when it next counts. The stripe the
/// other threads share is zeroed in place.
pub struct CommandStats {
    stripes: [OnceLock<Stripe>; STRIPES],
    epoch: AtomicU64,
    errors: Mutex<ErrorTable>,
}

impl std::fmt::Debug for CommandStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandStats").finish_non_exhaustive()
    }
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            stripes: std::array::from_fn(|_| OnceLock::new()),
            epoch: AtomicU64::new(0),
            errors: Mutex::new(ErrorTable::default()),
        }
    }
}

impl CommandStats {
    /// The calling thread's slot for `command`, and whether no other
    /// thread writes it.
    #[inline]
    fn slot(&self, command: usize) -> (&Slot, bool) {
        let me = this_threads_stripe();
        let stripe = self.stripes[me.index].get_or_init(|| Stripe::new(self.current_epoch()));
        if me.exclusive {
            let epoch = self.epoch.load(Ordering::Relaxed);
            if stripe.epoch.load(Ordering::Relaxed) != epoch {
                // Reset since this thread last counted.
                stripe.zero();
                stripe.epoch.store(epoch, Ordering::Release);
            }
        }
        let slot = stripe.slots[command.min(MAX_COMMANDS - 1)].get_or_init(Default::default);
        (slot, me.exclusive)
    }

    fn current_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The stripes whose counts are since the last reset.
    fn live_stripes(&self) -> impl Iterator<Item = &Stripe> {
        let epoch = self.current_epoch();
        self.stripes
            .iter()
            .enumerate()
            .filter_map(move |(index, stripe)| {
                let stripe = stripe.get()?;
                let shared = index == STRIPES - 1;
                (shared || stripe.epoch.load(Ordering::Acquire) == epoch).then_some(stripe)
            })
    }

    /// A command ran (Redis's `call()` bookkeeping).
    #[inline]
    pub fn record(&self, command: usize, run: Run) {
        let (slot, exclusive) = self.slot(command);
        if run.call {
            bump(&slot.calls, 1, exclusive);
        }
        bump(&slot.nanos, run.nanos, exclusive);
        if run.failed {
            bump(&slot.failed, 1, exclusive);
        }
        if run.histogram {
            slot.histogram.record(run.nanos, exclusive);
        }
    }

    /// A command was refused before it ran (Redis's `rejectCommand`).
    pub fn record_rejected(&self, command: usize) {
        let (slot, exclusive) = self.slot(command);
        bump(&slot.rejected, 1, exclusive);
    }

    /// A command failed without running again (a blocked command
    /// unblocked with an error).
    pub fn record_failed(&self, command: usize) {
        let (slot, exclusive) = self.slot(command);
        bump(&slot.failed, 1, exclusive);
    }

    /// Counts an error reply (`line` without the `-` and the CRLF) by its
    /// code, as Redis's `afterErrorReply`.
    pub fn record_error(&self, line: &[u8]) {
        self.errors.lock().record(error_code(line));
    }

    /// A command's figures, summed.
    pub fn figures(&self, command: usize) -> CommandFigures {
        let mut figures = CommandFigures::default();
        let mut nanos = 0u64;
        for stripe in self.live_stripes() {
            if let Some(slot) = stripe.slots[command].get() {
                figures.calls += slot.calls.load(Ordering::Relaxed);
                nanos += slot.nanos.load(Ordering::Relaxed);
                figures.rejected_calls += slot.rejected.load(Ordering::Relaxed);
                figures.failed_calls += slot.failed.load(Ordering::Relaxed);
            }
        }
        figures.usec = nanos / 1000;
        figures
    }

    /// A command's latency histogram, if it recorded any since the last
    /// reset.
    pub fn histogram(&self, command: usize) -> Option<Histogram> {
        let mut counts = vec![0u64; COUNTS_LEN];
        let mut any = false;
        for stripe in self.live_stripes() {
            if let Some(slot) = stripe.slots[command].get() {
                any |= slot.histogram.add_into(&mut counts);
            }
        }
        let total: u64 = counts.iter().sum();
        (any && total > 0).then_some(Histogram { counts, total })
    }

    /// CONFIG RESETSTAT: every command figure, histogram and error count.
    pub fn reset(&self) {
        // The stripes of single threads are zeroed by their threads (or
        // skipped by reports until then); the shared one here.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(shared) = self.stripes[STRIPES - 1].get() {
            shared.zero();
        }
        // A histogram with no counts is left out of reports, as Redis
        // leaves out the ones it frees.
        *self.errors.lock() = ErrorTable::default();
    }

    /// The body of INFO commandstats: `names[slot]` names each slot
    /// (`config|get`), in the order wanted.
    pub fn render_commandstats<'n>(
        &self,
        names: impl IntoIterator<Item = (usize, &'n str)>,
    ) -> String {
        let mut text = String::new();
        for (slot, name) in names {
            let figures = self.figures(slot);
            if figures.calls == 0 && figures.rejected_calls == 0 && figures.failed_calls == 0 {
                continue;
            }
            let per_call = if figures.calls == 0 {
                0.0
            } else {
                figures.usec as f64 / figures.calls as f64
            };
            text.push_str(&format!(
                "cmdstat_{}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                safe_info_name(name.as_bytes()),
                figures.calls,
                figures.usec,
                figures.rejected_calls,
                figures.failed_calls
            ));
        }
        text
    }

    /// The body of INFO latencystats, with the percentiles of
    /// `latency-tracking-info-percentiles`.
    pub fn render_latencystats<'n>(
        &self,
        names: impl IntoIterator<Item = (usize, &'n str)>,
        percentiles: &[f64],
    ) -> String {
        let mut text = String::new();
        for (slot, name) in names {
            let Some(histogram) = self.histogram(slot) else {
                continue;
            };
            text.push_str(&format!(
                "latency_percentiles_usec_{}:",
                safe_info_name(name.as_bytes())
            ));
            let values: Vec<String> = percentiles
                .iter()
                .map(|&p| {
                    format!(
                        "p{}={:.3}",
                        crate::latency::percentile_name(p),
                        histogram.value_at_percentile(p) as f64 / 1000.0
                    )
                })
                .collect();
            text.push_str(&values.join(","));
            text.push_str("\r\n");
        }
        text
    }

    /// The body of INFO errorstats.
    pub fn render_errorstats(&self) -> String {
        let errors = self.errors.lock();
        if errors.disabled {
            return "errorstat_ERRORSTATS_DISABLED:count=1\r\n".to_string();
        }
        errors
            .counts
            .iter()
            .map(|(code, count)| format!("errorstat_{}:count={count}\r\n", safe_info_name(code)))
            .collect()
    }
}

/// Redis's `getSafeInfoString`: the characters INFO cannot carry in a
/// field name (`#`, `:`, CR, LF) as underscores.
pub fn safe_info_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .map(|c| {
            if matches!(c, '#' | ':' | '\r' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The code Redis counts an error reply under: its first word when a space
/// ends it within the first 32 bytes of the reply (the `-` included), ERR
/// otherwise.
pub fn error_code(line: &[u8]) -> &[u8] {
    let line = line.strip_prefix(b"-").unwrap_or(line);
    match line.iter().take(31).position(|&b| b == b' ') {
        Some(end) if end > 0 => &line[..end],
        _ => b"ERR",
    }
}

/// Error counts by code, in code order (Redis keeps them in a radix tree).
#[derive(Debug, Default)]
struct ErrorTable {
    counts: BTreeMap<Vec<u8>, u64>,
    /// More than [`MAX_ERROR_CODES`] codes were seen: as Redis 7.2, the
    /// table is dropped and only `ERRORSTATS_DISABLED` shows until CONFIG
    /// RESETSTAT (total_error_replies goes on counting).
    disabled: bool,
}

impl ErrorTable {
    fn record(&mut self, code: &[u8]) {
        if self.disabled {
            return;
        }
        if let Some(count) = self.counts.get_mut(code) {
            *count += 1;
            return;
        }
        if self.counts.len() >= MAX_ERROR_CODES {
            let codes: Vec<String> = self
                .counts
                .keys()
                .map(|code| String::from_utf8_lossy(code).into_owned())
                .collect();
            tracing::warn!(
                "Errorstats stopped adding new errors because the number of different errors reached {MAX_ERROR_CODES}; will not add new errors until CONFIG RESETSTAT. Current errors code list: {}",
                codes.join(", ")
            );
            self.counts.clear();
            self.disabled = true;
            return;
        }
        self.counts.insert(code.to_vec(), 1);
    }
}

// ---------------------------------------------------------------- slow log

/// Arguments kept per slow log entry (Redis's `SLOWLOG_ENTRY_MAX_ARGC`).
pub const SLOWLOG_MAX_ARGC: usize = 32;
/// Bytes kept per argument (`SLOWLOG_ENTRY_MAX_STRING`).
pub const SLOWLOG_MAX_STRING: usize = 128;

/// One slow log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowLogEntry {
    pub id: u64,
    /// Unix seconds.
    pub time: i64,
    pub duration_us: u64,
    pub argv: Vec<Vec<u8>>,
    pub client_addr: String,
    pub client_name: String,
}

/// The slow log: newest first, at most `slowlog-max-len` entries.
#[derive(Debug, Default)]
pub struct SlowLog {
    entries: Mutex<VecDeque<SlowLogEntry>>,
    next_id: AtomicU64,
}

/// Redis's `slowlogCreateEntry` trimming: at most 32 arguments, the last
/// of them saying how many more there were; arguments longer than 128
/// bytes cut, saying by how many bytes.
pub fn slowlog_argv(argv: &[&[u8]]) -> Vec<Vec<u8>> {
    let kept = argv.len().min(SLOWLOG_MAX_ARGC);
    (0..kept)
        .map(|j| {
            if kept != argv.len() && j == kept - 1 {
                format!("... ({} more arguments)", argv.len() - kept + 1).into_bytes()
            } else if argv[j].len() > SLOWLOG_MAX_STRING {
                let mut arg = argv[j][..SLOWLOG_MAX_STRING].to_vec();
                arg.extend_from_slice(
                    format!("... ({} more bytes)", argv[j].len() - SLOWLOG_MAX_STRING).as_bytes(),
                );
                arg
            } else {
                argv[j].to_vec()
            }
        })
        .collect()
}

impl SlowLog {
    /// Adds an entry, dropping the oldest past `max_len`.
    pub fn push(
        &self,
        argv: &[&[u8]],
        duration_us: u64,
        client_addr: String,
        client_name: String,
        max_len: usize,
    ) {
        let entry = SlowLogEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: crate::latency::unix_seconds(),
            duration_us,
            argv: slowlog_argv(argv),
            client_addr,
            client_name,
        };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    /// The newest `count` entries (all for `None`).
    pub fn newest(&self, count: Option<usize>) -> Vec<SlowLogEntry> {
        let entries = self.entries.lock();
        let count = count.unwrap_or(entries.len());
        entries.iter().take(count).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }

    /// CONFIG SET slowlog-max-len: a shorter log drops its oldest entries.
    pub fn trim(&self, max_len: usize) {
        self.entries.lock().truncate(max_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_layout_matches_hdr() {
        // 12000 ns lands in [11968, 12031] with two significant digits.
        assert_eq!(highest_equivalent(12_000), 12_031);
        assert_eq!(lowest_equivalent(12_000), 11_968);
        assert_eq!(value_at_index(counts_index(12_000)), 11_968);
        assert_eq!(highest_equivalent(1024), 1031);
        assert_eq!(counts_index(1), 1);
        assert_eq!(counts_index(255), 255);
        assert!(counts_index(HISTOGRAM_MAX_NS) < COUNTS_LEN);
        for value in [
            1u64,
            200,
            256,
            1000,
            4096,
            99_999,
            123_456_789,
            HISTOGRAM_MAX_NS,
        ] {
            let index = counts_index(value);
            assert!(value_at_index(index) <= value);
            assert!(highest_equivalent(value) >= value);
        }
    }

    #[test]
    fn percentiles_and_log_buckets() {
        let stats = CommandStats::default();
        for nanos in [3000u64, 3000, 5000, 7000, 40_000] {
            stats.record(
                7,
                Run {
                    call: true,
                    nanos,
                    failed: false,
                    histogram: true,
                },
            );
        }
        let histogram = stats.histogram(7).expect("recorded");
        assert_eq!(histogram.total(), 5);
        assert_eq!(
            histogram.value_at_percentile(50.0),
            highest_equivalent(5000)
        );
        assert_eq!(
            histogram.value_at_percentile(100.0),
            highest_equivalent(40_000)
        );
        assert_eq!(
            histogram.cumulative_log_buckets(),
            vec![(4, 2), (8, 4), (66, 5)]
        );
        let figures = stats.figures(7);
        assert_eq!(figures.calls, 5);
        assert_eq!(figures.usec, 58);
        stats.reset();
        assert!(stats.histogram(7).is_none());
        assert_eq!(stats.figures(7), CommandFigures::default());
    }

    #[test]
    fn commandstats_lines_as_redis_prints_them() {
        let stats = CommandStats::default();
        stats.record(
            1,
            Run {
                call: true,
                nanos: 12_345,
                failed: true,
                histogram: false,
            },
        );
        stats.record(
            1,
            Run {
                call: true,
                nanos: 1_000,
                failed: false,
                histogram: false,
            },
        );
        stats.record_rejected(2);
        let text = stats.render_commandstats([(0, "get"), (1, "config|get"), (2, "set")]);
        assert_eq!(
            text,
            "cmdstat_config|get:calls=2,usec=13,usec_per_call=6.50,rejected_calls=0,failed_calls=1\r\n\
             cmdstat_set:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0\r\n"
        );
    }

    #[test]
    fn error_codes_as_redis_takes_them() {
        assert_eq!(error_code(b"ERR syntax error"), b"ERR");
        assert_eq!(error_code(b"WRONGTYPE Operation"), b"WRONGTYPE");
        assert_eq!(error_code(b"-NOSCRIPT No matching"), b"NOSCRIPT");
        assert_eq!(error_code(b"NOSPACE"), b"ERR");
        assert_eq!(error_code(&[b'X'; 40]), b"ERR");
        let long = [vec![b'Y'; 30], b" x".to_vec()].concat();
        assert_eq!(error_code(&long), &[b'Y'; 30][..]);
        let too_long = [vec![b'Y'; 31], b" x".to_vec()].concat();
        assert_eq!(error_code(&too_long), b"ERR");
    }

    #[test]
    fn errorstats_stop_at_128_codes() {
        let stats = CommandStats::default();
        stats.record_error(b"A:B c");
        assert_eq!(stats.render_errorstats(), "errorstat_A_B:count=1\r\n");
        for n in 0..MAX_ERROR_CODES {
            stats.record_error(format!("E{n} x").as_bytes());
        }
        assert_eq!(
            stats.render_errorstats(),
            "errorstat_ERRORSTATS_DISABLED:count=1\r\n"
        );
        stats.reset();
        stats.record_error(b"ERR x");
        assert_eq!(stats.render_errorstats(), "errorstat_ERR:count=1\r\n");
    }

    #[test]
    fn slowlog_trims_as_redis() {
        let long = vec![b'a'; 200];
        let many: Vec<&[u8]> = std::iter::repeat_n(b"x".as_slice(), 40).collect();
        assert_eq!(
            slowlog_argv(&[b"set", &long]),
            vec![
                b"set".to_vec(),
                [vec![b'a'; 128], b"... (72 more bytes)".to_vec()].concat()
            ]
        );
        let trimmed = slowlog_argv(&many);
        assert_eq!(trimmed.len(), 32);
        assert_eq!(trimmed[31], b"... (9 more arguments)".to_vec());
        let log = SlowLog::default();
        for n in 0..5u64 {
            log.push(&[b"get"], n, "addr".into(), String::new(), 3);
        }
        let ids: Vec<u64> = log.newest(None).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![4, 3, 2]);
        assert_eq!(log.newest(Some(1)).len(), 1);
    }
}
