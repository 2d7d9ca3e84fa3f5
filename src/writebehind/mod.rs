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
//! PostgreSQL catches up.

pub mod breaker;
pub mod encode;
pub mod filter;
pub mod flusher;
pub mod journal;
pub mod loader;
pub mod mapping;
pub mod sink;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam::utils::CachePadded;
use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

use crate::commands::{resolve, CommandSpec, Session};
use crate::config::Config;
use crate::store::changes::Change;
use crate::store::{ChangeObserver, Store};

pub use filter::KeyFilter;
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
    /// Every change with a version up to this one is in PostgreSQL.
    acked: Mutex<u64>,
    acked_changed: Condvar,
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
            loader: loader::Loader::new(sink.clone()),
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
            acked: Mutex::new(start),
            acked_changed: Condvar::new(),
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

    /// The refusal of a command that would add to a full backlog: a write
    /// command naming a written-behind key (or, for EXEC, queuing one).
    /// Also while the journal cannot be written (a full disk): the
    /// MISCONF error, before the write is applied.
    pub fn refusal(&self, session: &Session, spec: &CommandSpec, argv: &[&[u8]]) -> Option<String> {
        let pending = self.pending_keys();
        let journal_error = self.journal.write_error();
        if pending < self.max_pending as u64 && journal_error.is_none() {
            return None;
        }
        let db = session.db;
        let blocked = if spec.name == "exec" {
            session.multi.as_ref().is_some_and(|multi| {
                multi.queued.iter().any(|command| {
                    let argv: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
                    !argv.is_empty()
                        && resolve(&argv)
                            .is_ok_and(|spec| self.writes_followed_key(db, spec, &argv))
                })
            })
        } else {
            self.writes_followed_key(db, spec, argv)
        };
        blocked.then(|| {
            if let Some(error) = journal_error {
                return error;
            }
            let why = if self.up.load(Ordering::Acquire) {
                "PostgreSQL is not keeping up"
            } else {
                "PostgreSQL is unreachable"
            };
            let mut message =
                format!("WRITEBEHIND backlog full: {why} ({pending} changes pending)");
            if let Some(left) = self.breaker.open_for(Instant::now()) {
                message.push_str(&format!(
                    ", circuit open: next try in {} ms",
                    left.as_millis()
                ));
            }
            message
        })
    }

    fn writes_followed_key(&self, db: usize, spec: &CommandSpec, argv: &[&[u8]]) -> bool {
        spec.has(crate::commands::flags::WRITE)
            && spec
                .key_positions(argv)
                .iter()
                .any(|&i| self.observes(db, argv[i]))
    }

    /// Waits (blocking the calling thread) until every change made before
    /// the call is in PostgreSQL, or `timeout` passes, or shutdown ends
    /// the flusher. Returns whether everything arrived.
    pub fn wait_flushed(&self, timeout: Option<Duration>) -> bool {
        let target = self.hot.version.load(Ordering::SeqCst);
        let deadline = timeout.map(|t| Instant::now() + t);
        self.wake.notify_one();
        let mut acked = self.acked.lock();
        while *acked < target {
            if self.stopping.load(Ordering::Acquire) && self.stop_deadline.lock().is_none() {
                // The flusher has given up (shutdown past its deadline).
                return false;
            }
            let slice = Duration::from_millis(100);
            let wait = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    slice.min(deadline - now)
                }
                None => slice,
            };
            self.acked_changed.wait_for(&mut acked, wait);
        }
        true
    }

    fn set_acked(&self, version: u64) {
        let mut acked = self.acked.lock();
        if version > *acked {
            *acked = version;
        }
        self.acked_changed.notify_all();
        drop(acked);
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
