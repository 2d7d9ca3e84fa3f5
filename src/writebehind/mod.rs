//! Write-behind to PostgreSQL: a write is acknowledged once applied in
//! memory; the changed keys wait, coalesced, in the store's change trackers
//! (see [`crate::store::changes`]) until the flusher ([`flusher`]) writes
//! their latest state to PostgreSQL in batches.
//!
//! Ordering: every change gets a version from one counter; a row is only
//! ever replaced or deleted by a change with a greater version, so retried
//! or concurrent batches can never move a row backwards. Versions start at
//! the wall clock in microseconds and, at the first connection, above the
//! greatest version the table already holds (a restarted Larder never
//! writes below what an earlier run wrote).
//!
//! Mapped keys (`write-behind-map`, see [`mapping`]) go to rows of
//! existing tables instead of the default table. A batch PostgreSQL refuses
//! because of a row's data is split until the poison rows are isolated; they
//! go to the dead-letter table and everything else is written (see
//! [`flusher`]). Unavailability is retried with backoff behind a circuit
//! breaker ([`breaker`]).
//!
//! Backpressure: past `write-behind-max-pending` pending keys, write
//! commands on written-behind keys are refused (reads go on) until
//! PostgreSQL catches up; so are those that would use more memory when
//! used memory is past `maxmemory` and the only keys left to evict hold
//! unflushed changes (eviction never takes those: it would free nothing).

pub mod breaker;
pub mod encode;
pub mod flusher;
pub mod journal;
pub mod loader;
pub mod mapping;
pub mod pg_tls;
pub mod sink;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::utils::CachePadded;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::Config;
use crate::store::changes::Change;
use crate::store::{ChangeObserver, Store};

pub use crate::config::writebehind::KeyFilter;
pub use journal::{Journal, JournalFsync};
pub use sink::Sink;

/// The write-behind state of one server: the observer the store reports
/// changes to, the counters INFO shows, and what the flusher and
/// `WRITEBEHIND FLUSH` synchronise on.
pub struct WriteBehind {
    sink: Sink,
    /// Warm start and read-through.
    loader: loader::Loader,
    warm_start: bool,
    /// `write-behind-expiry-deletes`: a key whose TTL passes deletes its row.
    expiry_deletes: bool,
    filter: KeyFilter,
    max_pending: usize,
    pool_size: usize,
    shutdown_timeout: Duration,
    /// The last version handed out, and the number of pending keys: written
    /// by every change, so kept on a cache line of their own (the settings
    /// around them are read by every write command).
    hot: CachePadded<HotCounters>,
    /// Added to every version sent, so this run's rows sort above the
    /// table's existing ones (set once, at the first connection).
    version_offset: AtomicU64,
    /// When the oldest pending change was made (Unix ms; 0: none pending).
    oldest_since_ms: AtomicU64,
    /// `write-behind-batch-size` as the flusher last read it: that many
    /// pending keys wake it before its delay.
    batch_size: AtomicUsize,
    /// Databases flushed, with the version of their latest flush.
    flushes: Mutex<HashMap<usize, u64>>,
    wake: Notify,
    /// Every change with a version up to this one is in PostgreSQL; a
    /// watch, so that waiting for it (`WRITEBEHIND FLUSH`) costs no thread.
    acked_watch: tokio::sync::watch::Sender<u64>,
    /// The changes the flusher took and PostgreSQL has not confirmed:
    /// what read-through loads for them (see [`flusher::InFlight`]).
    in_flight: flusher::InFlight,
    stopping: AtomicBool,
    stop_deadline: Mutex<Option<Instant>>,
    up: AtomicBool,
    rows_written: AtomicU64,
    rows_deleted: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<String>,
    /// The local journal of unconfirmed changes (also present when it is
    /// off, to replay files an earlier run left).
    journal: Arc<Journal>,
    /// Stops hammering an unavailable PostgreSQL.
    breaker: breaker::Breaker,
    /// Rows written to the dead-letter table.
    dead_letters: AtomicU64,
    /// Hash fields of mapped keys that have no column (each time a key is
    /// sent).
    unmapped_fields: AtomicU64,
    /// `table.field` of the last one, and the names already logged
    /// (bounded).
    last_unmapped: Mutex<String>,
    logged_unmapped: Mutex<std::collections::HashSet<(usize, Vec<u8>)>>,
}

struct HotCounters {
    /// The last version handed out.
    version: AtomicU64,
    /// Keys changed and not yet confirmed by PostgreSQL.
    pending: AtomicI64,
}

impl std::fmt::Debug for WriteBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehind")
            .field("pending", &self.pending_keys())
            .finish()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `bytes` as Redis's `sdscatrepr` shows them, for log lines: in double
/// quotes, with `\\`, `"`, `\n`, `\r`, `\t`, `\a` and `\b` escaped and
/// every other byte outside printable ASCII as `\xhh`. Keys, hash field
/// names and PostgreSQL's messages (which quote values) come from clients:
/// raw, they could forge log lines or carry terminal escapes.
///
/// ```
/// use larder::writebehind::repr;
/// assert_eq!(repr(b"a\"b\n\x1b[2J"), r#""a\"b\n\x1b[2J""#);
/// ```
pub fn repr(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b' '..=b'~' => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push('"');
    out
}

impl WriteBehind {
    /// The write-behind `config` asks for; `None` if `write-behind-url` is
    /// empty.
    pub fn from_config(config: &Config) -> Result<Option<WriteBehind>, String> {
        if config.write_behind_url.is_empty() {
            return Ok(None);
        }
        let sink = Sink::with_mappings(
            &config.write_behind_url,
            &config.write_behind_table,
            &config.write_behind_dead_letter_table,
            config.write_behind_map.clone(),
        )?;
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        Ok(Some(WriteBehind {
            loader: loader::Loader::new(
                sink.clone(),
                Duration::from_millis(config.write_behind_read_timeout),
                breaker::Breaker::new(
                    config.write_behind_circuit_failures,
                    Duration::from_millis(config.write_behind_circuit_cooldown),
                ),
            ),
            warm_start: config.write_behind_warm_start,
            expiry_deletes: config.write_behind_expiry_deletes,
            sink,
            filter: KeyFilter::parse(&config.write_behind_match, &config.write_behind_match_db)?,
            max_pending: config.write_behind_max_pending,
            pool_size: config.write_behind_pool_size.max(1),
            shutdown_timeout: Duration::from_millis(config.write_behind_shutdown_timeout),
            hot: CachePadded::new(HotCounters {
                version: AtomicU64::new(start),
                pending: AtomicI64::new(0),
            }),
            version_offset: AtomicU64::new(0),
            oldest_since_ms: AtomicU64::new(0),
            batch_size: AtomicUsize::new(config.write_behind_batch_size.max(1)),
            flushes: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            acked_watch: tokio::sync::watch::Sender::new(start),
            in_flight: flusher::InFlight::default(),
            stopping: AtomicBool::new(false),
            stop_deadline: Mutex::new(None),
            up: AtomicBool::new(true),
            rows_written: AtomicU64::new(0),
            rows_deleted: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            journal: Arc::new(
                Journal::new(
                    &config.dir,
                    config.write_behind_fsync,
                    config.write_behind_journal,
                )
                .with_max_size(config.write_behind_journal_max_size),
            ),
            breaker: breaker::Breaker::new(
                config.write_behind_circuit_failures,
                Duration::from_millis(config.write_behind_circuit_cooldown),
            ),
            dead_letters: AtomicU64::new(0),
            unmapped_fields: AtomicU64::new(0),
            last_unmapped: Mutex::new(String::new()),
            logged_unmapped: Mutex::new(std::collections::HashSet::new()),
        }))
    }

    /// Keys changed and not yet confirmed by PostgreSQL.
    pub fn pending_keys(&self) -> u64 {
        self.hot.pending.load(Ordering::Acquire).max(0) as u64
    }

    fn confirmed(&self, count: usize) {
        self.hot.pending.fetch_sub(count as i64, Ordering::AcqRel);
    }

    /// The MISCONF error while the journal cannot be written (a full
    /// disk, a failed fsync); the command layer refuses every write
    /// command with it.
    pub fn disk_error(&self) -> Option<String> {
        self.journal.write_error()
    }

    /// The refusal of a write to a written-behind key while the backlog
    /// is full (past `write-behind-max-pending`); `None` while there is
    /// room. Which commands it applies to is the command layer's business.
    pub fn backlog_refusal(&self) -> Option<String> {
        let pending = self.pending_keys();
        if pending < self.max_pending as u64 {
            return None;
        }
        Some(self.refusal(pending, ""))
    }

    /// The refusal of a write to a written-behind key when memory is over
    /// `maxmemory` and eviction could only free keys whose changes are not
    /// in PostgreSQL yet (the store's `Room::FullOfUnflushed`).
    pub fn memory_full_refusal(&self) -> String {
        self.refusal(self.pending_keys(), ", memory full of unflushed data")
    }

    fn refusal(&self, pending: u64, detail: &str) -> String {
        let why = if self.up.load(Ordering::Acquire) {
            "PostgreSQL is not keeping up"
        } else {
            "PostgreSQL is unreachable"
        };
        let mut message =
            format!("WRITEBEHIND backlog full: {why} ({pending} changes pending{detail})");
        if let Some(left) = self.breaker.open_for(Instant::now()) {
            message.push_str(&format!(
                ", circuit open: next try in {} ms",
                left.as_millis()
            ));
        }
        message
    }

    /// The version every change made so far is at or below, and a nudge
    /// to the flusher to send them now: what [`WriteBehind::flushed`]
    /// waits for.
    pub fn flush_target(&self) -> u64 {
        let target = self.hot.version.load(Ordering::SeqCst);
        self.wake.notify_one();
        target
    }

    /// Whether every change up to `target` is in PostgreSQL.
    pub fn is_flushed(&self, target: u64) -> bool {
        *self.acked_watch.borrow() >= target
    }

    /// Resolves once every change up to `target` is in PostgreSQL (true),
    /// without holding a thread: callers race it against their own
    /// deadline, kill and shutdown signals.
    pub async fn flushed(&self, target: u64) -> bool {
        let mut acked = self.acked_watch.subscribe();
        let reached = acked.wait_for(|&acked| acked >= target).await.is_ok();
        reached
    }

    /// The reply to a flush that did not complete.
    pub fn flush_incomplete_message(&self) -> String {
        format!(
            "WRITEBEHIND flush did not complete: {} changes are not in PostgreSQL yet",
            self.pending_keys()
        )
    }

    fn set_acked(&self, version: u64) {
        self.acked_watch.send_if_modified(|acked| {
            let newer = version > *acked;
            if newer {
                *acked = version;
            }
            newer
        });
        self.journal.acked(version);
    }

    /// Replays the journal files left in `dir` into `store` and starts the
    /// journal if `write-behind-journal` is on (see [`journal`]). Call once,
    /// before clients are accepted.
    pub fn start_journal(&self, store: &Store) -> std::io::Result<()> {
        self.journal
            .start(store, || self.hot.version.load(Ordering::SeqCst))
    }

    /// The journal replies must wait for, if it is on.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.enabled().then_some(&self.journal)
    }

    /// Writes out and stops the journal (shutdown, after the last flush).
    pub fn stop_journal(&self) {
        self.journal.stop();
    }

    /// Starts the shutdown flush: the flusher makes one last pass and stops,
    /// giving up on PostgreSQL after `write-behind-shutdown-timeout`.
    pub fn begin_shutdown(&self) {
        *self.stop_deadline.lock() = Some(Instant::now() + self.shutdown_timeout);
        self.stopping.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether `write-behind-warm-start` asks for a warm start.
    pub fn warm_start_enabled(&self) -> bool {
        self.warm_start
    }

    /// How long shutdown waits at most.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    fn past_stop_deadline(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
            && self
                .stop_deadline
                .lock()
                .is_some_and(|deadline| Instant::now() >= deadline)
    }

    fn record_error(&self, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.up.store(false, Ordering::Release);
        *self.last_error.lock() = error.to_string();
    }

    /// The fields of INFO's `writebehind` section and WRITEBEHIND STATUS.
    pub fn status(&self) -> Vec<(&'static str, String)> {
        let oldest = self.oldest_since_ms.load(Ordering::Acquire);
        let pending = self.pending_keys();
        let age = if oldest == 0 || pending == 0 {
            0
        } else {
            unix_ms().saturating_sub(oldest)
        };
        let up = self.up.load(Ordering::Acquire);
        vec![
            ("writebehind_enabled", "1".into()),
            ("state", if up { "up" } else { "retrying" }.into()),
            ("pending_keys", pending.to_string()),
            ("oldest_pending_age_ms", age.to_string()),
            (
                "rows_written",
                self.rows_written.load(Ordering::Relaxed).to_string(),
            ),
            (
                "rows_deleted",
                self.rows_deleted.load(Ordering::Relaxed).to_string(),
            ),
            ("batches", self.batches.load(Ordering::Relaxed).to_string()),
            ("retries", self.retries.load(Ordering::Relaxed).to_string()),
            (
                "failures",
                self.failures.load(Ordering::Relaxed).to_string(),
            ),
            (
                "read_through_queries",
                self.loader.queries.load(Ordering::Relaxed).to_string(),
            ),
            (
                "keys_loaded",
                self.loader.loaded.load(Ordering::Relaxed).to_string(),
            ),
            (
                "load_failures",
                self.loader.failures.load(Ordering::Relaxed).to_string(),
            ),
            (
                "read_through_skipped",
                self.loader.skipped.load(Ordering::Relaxed).to_string(),
            ),
            ("read_through_circuit", self.loader.circuit().into()),
            (
                "last_load_error",
                self.loader.last_error.lock().replace(['\r', '\n'], " "),
            ),
            (
                "last_error",
                self.last_error.lock().replace(['\r', '\n'], " "),
            ),
            ("circuit", self.breaker.state_name().into()),
            (
                "dead_letters",
                self.dead_letters.load(Ordering::Relaxed).to_string(),
            ),
            (
                "unmapped_fields",
                self.unmapped_fields.load(Ordering::Relaxed).to_string(),
            ),
            (
                "last_unmapped_field",
                self.last_unmapped.lock().replace(['\r', '\n'], " "),
            ),
        ]
        .into_iter()
        .chain(self.journal.status())
        .collect()
    }
}

impl ChangeObserver for WriteBehind {
    fn observes(&self, db: usize, key: &[u8]) -> bool {
        self.filter.matches(db, key)
            || self
                .sink
                .maps()
                .iter()
                .any(|map| map.capture(db, key).is_some())
    }

    fn deletes_expired(&self) -> bool {
        self.expiry_deletes
    }

    fn next_version(&self) -> u64 {
        self.hot.version.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn pending_added(&self) {
        let before = self.hot.pending.fetch_add(1, Ordering::AcqRel);
        if before <= 0 {
            let _ = self.oldest_since_ms.compare_exchange(
                0,
                unix_ms(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        if before + 1 == self.batch_size.load(Ordering::Relaxed) as i64 {
            self.wake.notify_one();
        }
    }

    fn pending_dropped(&self, count: usize) {
        self.confirmed(count);
    }

    fn flushed(&self, db: usize, version: u64) {
        let mut flushes = self.flushes.lock();
        let latest = flushes.entry(db).or_insert(version);
        *latest = (*latest).max(version);
    }

    fn wants_changes(&self) -> bool {
        self.journal.enabled()
    }

    fn changed(&self, change: &Change<'_>) {
        self.journal.append(change);
    }
}

#[cfg(test)]
mod tests {
    use super::repr;

    #[test]
    fn repr_quotes_as_redis_sdscatrepr_does() {
        assert_eq!(repr(b""), "\"\"");
        assert_eq!(repr(b"plain field"), "\"plain field\"");
        assert_eq!(
            repr(b"a\\b\"c\nd\re\tf\x07g\x08h"),
            r#""a\\b\"c\nd\re\tf\ag\bh""#
        );
        assert_eq!(repr(b"\x00\x1b[31m\x7f\xff"), r#""\x00\x1b[31m\x7f\xff""#);
        assert_eq!(repr("é".as_bytes()), r#""\xc3\xa9""#);
        // Whatever the bytes, one line of printable ASCII, and the quotes
        // inside are escaped.
        let every_byte: Vec<u8> = (0..=255u8).collect();
        let shown = repr(&every_byte);
        assert!(shown.bytes().all(|b| (b' '..=b'~').contains(&b)), "{shown}");
        let inner = &shown[1..shown.len() - 1];
        assert!(!inner.replace("\\\\", "").replace("\\\"", "").contains('"'));
    }
}
