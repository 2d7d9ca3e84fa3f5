//! RDB snapshots: SAVE, BGSAVE, save points, and loading `dir/dbfilename`
//! at start, in the file format of Redis 7.0 (the value encodings are
//! `crate::rdb`'s; this module writes and reads the file around them).
//!
//! # A consistent point in time without fork
//!
//! Redis forks and lets the kernel's copy-on-write keep the child's view
//! of memory frozen. Larder copies on write one key at a time instead
//! (see `store::snapshot`):
//!
//! 1. Under every shard lock at once (a few microseconds: no key is
//!    copied), the snapshot reads each database's key counts and the
//!    change counter, and every non-empty database part starts keeping
//!    the set of keys the snapshot has written.
//! 2. A background thread walks each part's table, a few hundred slots
//!    per hold of the shard lock, serializing to RDB every key it has not
//!    written yet.
//! 3. Whatever is about to change or remove a key of a part not fully
//!    walked — a client's write, active expiry, eviction — first
//!    serializes that key, if it was not written yet, and marks it
//!    written; a key created since the start is marked too, so it is left
//!    out. FLUSHDB, FLUSHALL and SWAPDB first serialize what the walker
//!    has not reached of the parts they replace. Every key is thus written
//!    once, as it was at step 1: the file is the keyspace at that
//!    instant. Reads write nothing (a read may reclaim a key past its TTL,
//!    which the snapshot leaves out anyway).
//! 4. Records go in batches of about 64 KiB (`SELECTDB` and the records)
//!    over an unbounded channel to the thread that writes the file, in
//!    the order they were made (Redis's loader, like ours, takes
//!    `SELECTDB` again at any point). Records a client made wait in memory
//!    until the writer reaches them: the memory cost of a snapshot is the
//!    serialized size of the keys changed before the walker got to them,
//!    plus a copy of their names (INFO `current_cow_peak` reports the
//!    largest amount of records queued at once), against Redis's
//!    copy-on-write pages. The cost to a client is serializing the one key
//!    it changes, the first time; the walker holds a lock for one step.
//!
//! SAVE runs the same walk on the calling connection and replies when the
//! file is renamed into place: other clients keep being served (Redis
//! blocks every client during SAVE).
//!
//! The file: `REDIS0010` (`REDIS0012` if some hash has field TTLs when the
//! snapshot starts), the AUX fields of Redis 7.0 (`redis-ver`,
//! `redis-bits`, `ctime`, `used-mem`, `aof-base`), the function libraries
//! (`FUNCTION2`), `SELECTDB` + `RESIZEDB` for every non-empty database, the
//! chunks (per key: `EXPIRETIME_MS` if it has a TTL, `IDLE` under an LRU
//! policy or `FREQ` under an LFU policy, as Redis, then type, key and
//! value), `EOF` and the CRC64 of all that (zero with `rdbchecksum no`).
//! It is written to `temp-<pid>.rdb` in `dir`, fsynced, and renamed over
//! `dbfilename`.

mod load;
mod save;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

pub use load::{load_file, LoadError, LoadEvent, LoadStats};
pub use save::{write_snapshot, SaveStats};

use crate::store::Store;

/// What write commands get after a failed background save, with save
/// points and `stop-writes-on-bgsave-error yes` (Redis's
/// `shared.bgsaveerr`).
pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// RDB opcodes (rdb.h).
pub mod opcodes {
    pub const SLOT_INFO: u8 = 244;
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// Which access information goes with each key, as Redis chooses it from
/// `maxmemory-policy`: `IDLE` seconds under an LRU policy, the `FREQ`
/// counter under an LFU policy, nothing otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessInfo {
    None,
    Lru,
    Lfu,
}

/// How a snapshot is written.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// `dir`.
    pub dir: PathBuf,
    /// `dbfilename`.
    pub dbfilename: String,
    /// `rdbcompression`: LZF for strings longer than 20 bytes.
    pub compress: bool,
    /// `rdbchecksum`: a CRC64 at the end (0 otherwise).
    pub checksum: bool,
    pub access: AccessInfo,
    /// The code of every function library (`FUNCTION2` records).
    pub functions: Vec<Vec<u8>>,
    /// `used-mem` AUX field.
    pub used_mem: u64,
}

impl SaveOptions {
    /// `dir/dbfilename`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.dbfilename)
    }
}

/// Why a SAVE or BGSAVE did not start or did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveError {
    /// A snapshot is being written already.
    InProgress,
    /// The file could not be written (what went wrong, for the log).
    Failed(String),
}

/// The persistence state of one server: what INFO persistence and
/// LASTSAVE report, and the snapshot running, if any.
#[derive(Debug)]
pub struct Persistence {
    state: Mutex<State>,
    /// A snapshot is being written (one at a time).
    running: AtomicBool,
    /// The running snapshot should stop (FLUSHALL, SHUTDOWN).
    cancel: Mutex<Arc<AtomicBool>>,
    /// Bytes of records waiting for the file writer now, and the most
    /// there were during the last or current snapshot.
    pub(crate) queued: Arc<Queued>,
    /// Loading the dataset at start (the RDB file, write-behind's warm
    /// start and journal): commands not flagged `loading` get -LOADING.
    loading: AtomicBool,
    /// How far the load of the RDB file is (INFO's `loading_*` fields).
    load_progress: LoadProgress,
    /// The last background save failed (a copy of the state's flag, read
    /// on every command for `stop-writes-on-bgsave-error`).
    bgsave_failed: AtomicBool,
    /// SHUTDOWN did what it does with the RDB file: the server's stop
    /// must not save again (a stop by signal saves as Redis does).
    shutdown_handled: AtomicBool,
}

/// The RDB file being loaded, for INFO (Redis's `loading_*` fields).
#[derive(Debug, Default)]
struct LoadProgress {
    /// Unix seconds when loading started.
    started: AtomicU64,
    total_bytes: AtomicU64,
    loaded_bytes: AtomicU64,
    /// The file's `used-mem` AUX field.
    rdb_used_mem: AtomicU64,
}

/// INFO persistence's figures while loading.
#[derive(Debug, Clone)]
pub struct LoadingInfo {
    pub start_time: u64,
    pub total_bytes: u64,
    pub rdb_used_mem: u64,
    pub loaded_bytes: u64,
    pub loaded_perc: f64,
    pub eta_seconds: u64,
}

/// Records waiting for the file writer.
#[derive(Debug, Default)]
pub struct Queued {
    pub now: AtomicU64,
    pub peak: AtomicU64,
}

impl Queued {
    fn add(&self, bytes: u64) {
        let now = self.now.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn sub(&self, bytes: u64) {
        self.now.fetch_sub(bytes, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct State {
    /// Unix seconds of the last successful save (LASTSAVE); the start
    /// time until then.
    lastsave: u64,
    /// Whether the last background save succeeded.
    last_bgsave_ok: bool,
    /// Seconds the last background save took (-1: none yet).
    last_bgsave_time_sec: i64,
    /// When the running background save started.
    bgsave_started: Option<Instant>,
    /// Background saves started since the start (INFO rdb_saves, which
    /// Redis 7.0 counts in rdbSaveBackground).
    saves: u64,
    /// The store's change count when the last successful save started.
    changes_at_last_save: u64,
    /// Unix seconds of the last BGSAVE attempt (save points retry a
    /// failed one after 5 s, as Redis).
    last_bgsave_try: u64,
    /// BGSAVE SCHEDULE (or BGSAVE in EXEC) waits for the cron.
    scheduled: bool,
    last_load_keys_loaded: u64,
    last_load_keys_expired: u64,
    /// Keys of the running snapshot written so far, and its total.
    keys_processed: Arc<AtomicU64>,
    keys_total: u64,
}

/// INFO persistence's figures.
#[derive(Debug, Clone)]
pub struct PersistenceInfo {
    pub loading: Option<LoadingInfo>,
    pub bgsave_in_progress: bool,
    pub lastsave: u64,
    pub last_bgsave_ok: bool,
    pub last_bgsave_time_sec: i64,
    pub current_bgsave_time_sec: i64,
    pub saves: u64,
    pub changes_at_last_save: u64,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
    pub cow_peak: u64,
    pub cow_now: u64,
    pub keys_processed: u64,
    pub keys_total: u64,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The sum of every database's change counter (Redis's `dirty`, which
/// only grows here: a save records where it stood).
pub fn store_changes(store: &Store) -> u64 {
    (0..store.shard_count())
        .filter_map(|index| {
            store.read_shard(index, |shard| {
                (0..shard.databases())
                    .map(|db| shard.db_ref(db).changes())
                    .sum::<u64>()
            })
        })
        .sum()
}

impl Persistence {
    /// `started`: the server's start time (Unix seconds), LASTSAVE until
    /// the first save.
    pub fn new(started: u64) -> Self {
        Persistence {
            state: Mutex::new(State {
                lastsave: started,
                last_bgsave_ok: true,
                last_bgsave_time_sec: -1,
                bgsave_started: None,
                saves: 0,
                changes_at_last_save: 0,
                last_bgsave_try: 0,
                scheduled: false,
                last_load_keys_loaded: 0,
                last_load_keys_expired: 0,
                keys_processed: Arc::default(),
                keys_total: 0,
            }),
            running: AtomicBool::new(false),
            cancel: Mutex::new(Arc::default()),
            queued: Arc::default(),
            loading: AtomicBool::new(false),
            load_progress: LoadProgress::default(),
            bgsave_failed: AtomicBool::new(false),
            shutdown_handled: AtomicBool::new(false),
        }
    }

    pub fn mark_shutdown_handled(&self) {
        self.shutdown_handled.store(true, Ordering::Release);
    }

    pub fn shutdown_handled(&self) -> bool {
        self.shutdown_handled.load(Ordering::Acquire)
    }

    /// Whether the last background save failed (and no save succeeded
    /// since).
    #[inline]
    pub fn bgsave_failed(&self) -> bool {
        self.bgsave_failed.load(Ordering::Relaxed)
    }

    /// Whether the dataset is still being loaded at start.
    #[inline]
    pub fn is_loading(&self) -> bool {
        self.loading.load(Ordering::Acquire)
    }

    /// Starts or ends the loading phase (see [`Persistence::is_loading`]).
    pub fn set_loading(&self, loading: bool) {
        if loading {
            self.reset_load_progress();
        }
        self.loading.store(loading, Ordering::Release);
    }

    /// Starts a loading phase unless one runs; false if one does.
    pub fn begin_loading(&self) -> bool {
        let begun = self
            .loading
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if begun {
            self.reset_load_progress();
        }
        begun
    }

    fn reset_load_progress(&self) {
        let progress = &self.load_progress;
        progress.started.store(unix_now(), Ordering::Relaxed);
        progress.total_bytes.store(0, Ordering::Relaxed);
        progress.loaded_bytes.store(0, Ordering::Relaxed);
        progress.rdb_used_mem.store(0, Ordering::Relaxed);
    }

    /// Redis's figures: the share of the file read, and the seconds left
    /// at the pace so far (1 in the first second).
    fn loading_info(&self) -> LoadingInfo {
        let progress = &self.load_progress;
        let start_time = progress.started.load(Ordering::Relaxed);
        let total_bytes = progress.total_bytes.load(Ordering::Relaxed);
        let loaded_bytes = progress.loaded_bytes.load(Ordering::Relaxed);
        let rdb_used_mem = progress.rdb_used_mem.load(Ordering::Relaxed);
        let (loaded_perc, remaining) = if total_bytes > 0 {
            (
                loaded_bytes as f64 * 100.0 / total_bytes as f64,
                total_bytes.saturating_sub(loaded_bytes),
            )
        } else {
            (0.0, 1)
        };
        let elapsed = unix_now().saturating_sub(start_time);
        let eta_seconds = if elapsed == 0 {
            1
        } else {
            elapsed.saturating_mul(remaining) / (loaded_bytes + 1)
        };
        LoadingInfo {
            start_time,
            total_bytes,
            rdb_used_mem,
            loaded_bytes,
            loaded_perc,
            eta_seconds,
        }
    }

    /// LASTSAVE.
    pub fn lastsave(&self) -> u64 {
        self.state.lock().lastsave
    }

    pub fn is_saving(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Whether a background save runs (not SAVE).
    pub fn bgsave_in_progress(&self) -> bool {
        self.state.lock().bgsave_started.is_some()
    }

    pub fn info(&self) -> PersistenceInfo {
        let state = self.state.lock();
        PersistenceInfo {
            loading: self.is_loading().then(|| self.loading_info()),
            bgsave_in_progress: state.bgsave_started.is_some(),
            lastsave: state.lastsave,
            last_bgsave_ok: state.last_bgsave_ok,
            last_bgsave_time_sec: state.last_bgsave_time_sec,
            current_bgsave_time_sec: state
                .bgsave_started
                .map_or(-1, |at| at.elapsed().as_secs() as i64),
            saves: state.saves,
            changes_at_last_save: state.changes_at_last_save,
            last_load_keys_loaded: state.last_load_keys_loaded,
            last_load_keys_expired: state.last_load_keys_expired,
            cow_peak: self.queued.peak.load(Ordering::Relaxed),
            cow_now: self.queued.now.load(Ordering::Relaxed),
            keys_processed: if self.is_saving() {
                state.keys_processed.load(Ordering::Relaxed)
            } else {
                0
            },
            keys_total: if self.is_saving() {
                state.keys_total
            } else {
                0
            },
        }
    }

    fn claim(&self) -> Result<Arc<AtomicBool>, SaveError> {
        if self
            .running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(SaveError::InProgress);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        *self.cancel.lock() = cancel.clone();
        self.queued.peak.store(0, Ordering::Relaxed);
        let mut state = self.state.lock();
        state.keys_processed = Arc::default();
        state.keys_total = 0;
        Ok(cancel)
    }

    /// SAVE: writes the snapshot now, on the calling thread (other
    /// clients keep being served).
    pub fn save(&self, store: &Store, options: &SaveOptions) -> Result<SaveStats, SaveError> {
        let cancel = self.claim()?;
        let result = self.write(store, options, &cancel);
        self.running.store(false, Ordering::Release);
        result
    }

    fn write(
        &self,
        store: &Store,
        options: &SaveOptions,
        cancel: &Arc<AtomicBool>,
    ) -> Result<SaveStats, SaveError> {
        let keys_processed = self.state.lock().keys_processed.clone();
        let result = write_snapshot(
            store,
            options,
            cancel,
            &self.queued,
            &keys_processed,
            |total| self.state.lock().keys_total = total,
        );
        match &result {
            Ok(stats) => {
                let mut state = self.state.lock();
                state.lastsave = unix_now();
                // As Redis's rdbSave: any successful save clears a
                // background save's error.
                state.last_bgsave_ok = true;
                self.bgsave_failed.store(false, Ordering::Relaxed);
                state.changes_at_last_save = stats.changes_at_start;
                tracing::info!(
                    "DB saved on disk: {} keys, {} bytes in {} ms; {} keys written by the threads about to change them (clients' writes, active expiry, eviction), the longest in {:.3} ms; at most {} bytes of records waiting for the writer",
                    stats.keys,
                    stats.bytes,
                    stats.elapsed.as_millis(),
                    stats.keys_written_by_changes,
                    stats.longest_key_write.as_secs_f64() * 1000.0,
                    self.queued.peak.load(Ordering::Relaxed)
                );
            }
            Err(error) => tracing::warn!("Error saving DB on disk: {error:?}"),
        }
        result.map_err(SaveError::Failed)
    }

    /// BGSAVE: starts writing the snapshot on a thread of its own.
    /// `Err(InProgress)` if a snapshot is being written.
    pub fn bgsave(self: &Arc<Self>, store: &Store, options: SaveOptions) -> Result<(), SaveError> {
        let cancel = self.claim()?;
        {
            let mut state = self.state.lock();
            state.bgsave_started = Some(Instant::now());
            state.last_bgsave_try = unix_now();
            state.saves += 1;
            state.scheduled = false;
        }
        let this = self.clone();
        let store = store.clone();
        let spawned = std::thread::Builder::new()
            .name("larder-bgsave".into())
            .spawn(move || {
                let started = Instant::now();
                let result = this.write(&store, &options, &cancel);
                let mut state = this.state.lock();
                state.bgsave_started = None;
                state.last_bgsave_time_sec = started.elapsed().as_secs() as i64;
                match result {
                    Ok(_) => {
                        state.last_bgsave_ok = true;
                        tracing::info!("Background saving terminated with success");
                    }
                    Err(_) if cancel.load(Ordering::Relaxed) => {
                        // Stopped on purpose (FLUSHALL, SHUTDOWN): as
                        // Redis after killing its child, not an error.
                        tracing::warn!("Background saving stopped");
                    }
                    Err(_) => {
                        state.last_bgsave_ok = false;
                        this.bgsave_failed.store(true, Ordering::Relaxed);
                        tracing::warn!("Background saving error");
                    }
                }
                drop(state);
                this.running.store(false, Ordering::Release);
            });
        match spawned {
            Ok(_) => {
                tracing::info!("Background saving started");
                Ok(())
            }
            Err(error) => {
                let mut state = self.state.lock();
                state.bgsave_started = None;
                state.last_bgsave_ok = false;
                self.bgsave_failed.store(true, Ordering::Relaxed);
                self.running.store(false, Ordering::Release);
                Err(SaveError::Failed(format!(
                    "Can't save in background: {error}"
                )))
            }
        }
    }

    /// BGSAVE SCHEDULE, or BGSAVE inside EXEC: the cron starts it.
    pub fn schedule_bgsave(&self) {
        self.state.lock().scheduled = true;
    }

    /// Stops the running snapshot, if any, and with `wait` waits until it
    /// has (its temp file removed): FLUSHALL and SHUTDOWN, as Redis kills
    /// its child. Never wait while holding shard locks: the snapshot's
    /// walker needs them to finish.
    pub fn abort(&self, wait: bool) {
        if !self.is_saving() {
            return;
        }
        tracing::warn!("There is a child saving an .rdb. Killing it!");
        self.cancel.lock().store(true, Ordering::Release);
        while wait && self.is_saving() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// What the periodic task (Redis's serverCron) does: starts a
    /// background save when one was scheduled, or when a save point is
    /// reached (`changes` changes within `seconds`; a failed save is
    /// retried after 5 seconds only). Returns whether it started one.
    pub fn cron(
        self: &Arc<Self>,
        store: &Store,
        save_points: &[(u64, u64)],
        options: impl FnOnce() -> SaveOptions,
    ) -> bool {
        // A dataset being loaded (DEBUG RELOAD) is not one to save.
        if self.is_saving() || self.is_loading() {
            return false;
        }
        let now = unix_now();
        let reason = {
            let state = self.state.lock();
            if state.scheduled {
                Some("scheduled".to_string())
            } else if save_points.is_empty() {
                None
            } else {
                let dirty = store_changes(store).saturating_sub(state.changes_at_last_save);
                save_points
                    .iter()
                    .find(|&&(seconds, changes)| {
                        dirty >= changes
                            && now.saturating_sub(state.lastsave) > seconds
                            && (now.saturating_sub(state.last_bgsave_try) > 5
                                || state.last_bgsave_ok)
                    })
                    .map(|(seconds, changes)| {
                        format!("{changes} changes in {seconds} seconds. Saving...")
                    })
            }
        };
        let Some(reason) = reason else {
            return false;
        };
        tracing::info!("{reason}");
        self.bgsave(store, options()).is_ok()
    }

    /// Loads `path` into `store` (at start or for DEBUG RELOAD, while
    /// clients get -LOADING); with `merge`, keys already there are
    /// replaced. `functions` receives each function library's code;
    /// `after_key` runs after each key is stored (`key-load-delay`) and
    /// stops the load by returning false (a shutdown).
    pub fn load(
        &self,
        store: &Store,
        path: &Path,
        merge: bool,
        functions: &mut dyn FnMut(&[u8]) -> Result<(), String>,
        after_key: &mut dyn FnMut() -> bool,
    ) -> Result<LoadStats, LoadError> {
        let progress = &self.load_progress;
        let total = std::fs::metadata(path).map_or(0, |meta| meta.len());
        progress.total_bytes.store(total, Ordering::Relaxed);
        let mut events = |event: LoadEvent| match event {
            LoadEvent::UsedMem(bytes) => {
                progress.rdb_used_mem.store(bytes, Ordering::Relaxed);
                true
            }
            LoadEvent::Key { position } => {
                progress.loaded_bytes.store(position, Ordering::Relaxed);
                after_key()
            }
        };
        let result = load_file(store, path, store.now_ms(), merge, functions, &mut events);
        if result.is_ok() {
            progress.loaded_bytes.store(total, Ordering::Relaxed);
        }
        if let Ok(stats) = &result {
            let mut state = self.state.lock();
            state.last_load_keys_loaded = stats.keys_loaded;
            state.last_load_keys_expired = stats.keys_expired;
            // As Redis: what was loaded is not a change to save.
            state.changes_at_last_save = store_changes(store);
        }
        result
    }
}
