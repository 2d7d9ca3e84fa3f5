//! The write-behind journal: an append-only local log of the changes
//! PostgreSQL has not confirmed yet, replayed at start-up.
//!
//! What is logged, with the change's version, is a key's whole STATE (its
//! value, type, absolute expiry and hash field TTLs; or its deletion; or
//! the flush of a database) when the change made the key pending, and
//! while it stays pending only the change's EFFECT where the command said
//! it ([`Effect`]: list elements pushed, counts popped from either end,
//! the set members, hash fields or zset members touched with their state
//! now, an XADD's entry, a consumer group's counters, consumer and the
//! pending entries a group command named, an expiry change), so that a
//! change costs in proportion to what it changed. Replay applies a key's last whole state, then the effects after
//! it in order. An effect whose whole state is no longer in the files is
//! dropped: its file was deleted because PostgreSQL confirmed it, and the
//! key was handed to PostgreSQL after the effect (it was still pending at
//! the effect), so PostgreSQL has the effect too. A record is
//! made under the shard lock of its change ([`ChangeObserver::changed`]),
//! appended to an in-memory buffer there, and written to the file by the
//! journal's writer thread; the records of one key are therefore in the file
//! in the order of its changes, and a database flush (made under every shard
//! lock) sits between the changes before and after it.
//!
//! Acknowledgement: a connection that executed write commands writes its
//! replies only once their records are in the file (`everysec`, `no`:
//! written to the OS, so a SIGKILL of Larder loses none) or on the disk
//! (`always`: fsynced by the writer; one fsync covers every record written
//! by then, from all connections: group commit). Under `everysec` and
//! `no` the connection writes the buffered records itself when no one else
//! is writing ([`Journal::write_through`], as Redis writes its AOF before
//! replying), which spares a round trip through the writer thread.
//!
//! Files: `larder-journal.<sequence>` in `dir`, each starting with an
//! 8-byte magic, then records `[body length u64 LE][CRC-32 of body u32 LE]
//! [body]`. A running server appends to its own newest file; when every
//! record of it is confirmed by PostgreSQL it is cut back to its header,
//! and past 64 MB it is closed and a new one started; closed files are
//! deleted once PostgreSQL confirmed all their records. Past
//! `write-behind-journal-max-size` the journal is rewritten from memory
//! (see [`Journal::rewrite`]).
//!
//! A write or fsync that fails (a full disk) makes [`Journal::write_error`]
//! refuse write commands up front, fails the replies waiting for unwritten
//! records, and is retried until one succeeds.
//!
//! Start-up: every file is read in sequence order (a torn or corrupt
//! record ends its file: logged, the rest of that file is ignored), the
//! last whole record of each key and the effects after it win, a flush
//! drops the records of its database before it; the survivors are loaded into the store and made pending
//! again, with versions of this run (so PostgreSQL, whose rows are older,
//! takes them). The files read are kept until PostgreSQL confirmed what
//! was loaded from them.
//!
//! [`ChangeObserver::changed`]: crate::store::ChangeObserver::changed

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a long journal replay logs its progress.
const REPLAY_PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::encode::{decode, decode_group, decode_items, encode_group, encode_into, item};
use super::unix_ms;
use crate::store::changes::{Change, Effect, GroupChange};
use crate::store::types::{AddId, ConsumerGroup, PendingEntry, StreamId};
use crate::store::{PendingState, Store, Value, ValueRef};

/// A rewrite lets at most this much of its records wait for the writer.
const REWRITE_BUFFERED_MAX: usize = 8 * 1024 * 1024;

pub use crate::config::writebehind::JournalFsync;

const MAGIC: &[u8; 8] = b"LARDERJ1";
const HEADER: u64 = MAGIC.len() as u64;
const PREFIX: &str = "larder-journal.";
/// Past this size the current file is closed and a new one started, so
/// that confirmed files can be deleted while PostgreSQL keeps up.
const ROLL_BYTES: u64 = 64 * 1024 * 1024;
/// `write-behind-journal-max-size`'s default.
pub const DEFAULT_MAX_SIZE: u64 = 256 * 1024 * 1024;
/// The name a rewrite writes to before it takes the place of a segment
/// (not a segment's name: start-up ignores it).
const REWRITE_NAME: &str = "larder-journal.rewrite";
/// Record header: body length (u64) and CRC-32 (u32).
const RECORD_HEADER: usize = 12;

const KIND_VALUE: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_FLUSH: u8 = 3;
/// What a change did to an already pending key (see [`Effect`]).
const KIND_EFFECT: u8 = 4;

const OP_LIST_PUSH: u8 = 1;
const OP_LIST_TRIM: u8 = 2;
const OP_SET: u8 = 3;
const OP_HASH: u8 = 4;
const OP_ZSET: u8 = 5;
const OP_EXPIRY: u8 = 6;
const OP_STREAM_ADD: u8 = 7;
/// A stream's consumer group: its name, then a flag (0: destroyed; 1: its
/// whole state follows, as the table's encoding of a group, one item).
const OP_STREAM_GROUP: u8 = 8;
/// Part of a stream's consumer group ([`GroupChange::Pending`]): its name,
/// last delivered ID (ms, seq), entries-read (flag, count), a consumer
/// (flag; its name, seen time, active time as flag and time), then the
/// number of pending entries named, each as its ID (ms, seq) and a flag
/// (0: not pending; 1: owner, delivery time, delivery count follow).
const OP_STREAM_GROUP_PENDING: u8 = 9;

/// Type codes of full records: 0 to 4 are the table's types in its
/// encoding (a hash without field TTLs, as files of earlier versions
/// hold); 5 is a hash as `field value ttl` triples (the TTL 8 bytes
/// little-endian, or empty).
const TYPE_SET: u8 = 2;
const TYPE_HASH_WITH_TTLS: u8 = 5;
const TYPE_STREAM: u8 = 6;

thread_local! {
    /// The journal position the last record appended by this thread ends
    /// at (0: none since the last [`take_appended`]).
    static APPENDED: Cell<u64> = const { Cell::new(0) };
}

/// The OS's text of `error` without Rust's " (os error N)", as strerror
/// says it (Redis's MISCONF message quotes it).
fn strerror(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rsplit_once(" (os error ") {
        Some((text, _)) => text.to_string(),
        None => text,
    }
}

/// The position the records this thread appended since the last call end
/// at (0 if none): what a connection's replies must wait for.
pub fn take_appended() -> u64 {
    APPENDED.with(|cell| cell.replace(0))
}

/// Replaces, in `output`, each reply at `spans` (in order, not
/// overlapping) by the error line `message`: the replies of commands whose
/// records could not be written must not acknowledge them.
pub fn replace_replies(
    output: &mut bytes::BytesMut,
    spans: &[std::ops::Range<usize>],
    message: &str,
) {
    if spans.is_empty() {
        return;
    }
    let mut replaced = bytes::BytesMut::with_capacity(output.len());
    let mut at = 0;
    for span in spans {
        let (start, end) = (span.start.max(at), span.end.min(output.len()));
        if start > end {
            continue;
        }
        replaced.extend_from_slice(&output[at..start]);
        replaced.extend_from_slice(b"-");
        replaced.extend_from_slice(message.replace(['\r', '\n'], " ").as_bytes());
        replaced.extend_from_slice(b"\r\n");
        at = end;
    }
    replaced.extend_from_slice(&output[at..]);
    *output = replaced;
}

/// Records not yet taken by the writer.
#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    /// The position after the last byte appended (bytes appended since
    /// start-up).
    end: u64,
    /// The greatest version among the records in `data`.
    max_version: u64,
    /// The greatest version of every record appended so far.
    latest_version: u64,
}

/// What connections waiting for their records watch.
#[derive(Debug, Default, Clone, Copy)]
struct Durable {
    /// Records up to this position may be acknowledged.
    position: u64,
    /// Writing to the journal fails: whoever waits for records beyond
    /// `position` gets an error instead of waiting for the disk.
    failing: bool,
}

/// A file no longer written to, deleted once its records are confirmed.
struct Closed {
    path: PathBuf,
    max_version: u64,
    bytes: u64,
}

/// The journal of one server (see the module docs).
pub struct Journal {
    dir: PathBuf,
    fsync: JournalFsync,
    /// `write-behind-journal yes`: new changes are journaled.
    enabled: bool,
    /// Changes are taken (false until replay is done).
    accepting: AtomicBool,
    buffer: Mutex<Buffer>,
    wake: Condvar,
    /// The open file (while the writer runs).
    appender: Mutex<Option<Appender>>,
    /// The last write (or, under `always`, fsync) failed: records wait to
    /// be written again, and write commands on written-behind keys are
    /// refused until one succeeds ([`Journal::write_error`]).
    write_failed: AtomicBool,
    /// The last background fsync (`everysec`) failed: writes are refused
    /// until one succeeds, as Redis does when its AOF fsync fails.
    fsync_failed: AtomicBool,
    /// Why, as the MISCONF error says it (`No space left on device`).
    write_error: Mutex<String>,
    /// How far records may be acknowledged, and whether writing them fails.
    durable: watch::Sender<Durable>,
    /// PostgreSQL has every change up to this version.
    acked: AtomicU64,
    /// Bytes in journal files.
    bytes: AtomicU64,
    files: AtomicU64,
    closed: Mutex<Vec<Closed>>,
    stop: AtomicBool,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    last_error: Mutex<String>,
    errors: AtomicU64,
    /// `everysec`: the position the fsync thread last synced up to, and
    /// whether it is syncing now.
    synced_in_background: AtomicU64,
    background_sync_busy: AtomicBool,
    /// `write-behind-journal-max-size`: past it (and past twice the size
    /// the last rewrite left), the journal is rewritten.
    max_size: u64,
    /// The store the rewrite reads pending keys from (set at start).
    store: Mutex<Option<Store>>,
    rewriting: AtomicBool,
    /// The journal's size after the last rewrite.
    rewritten_bytes: AtomicU64,
    rewrites: AtomicU64,
    /// After a failed rewrite, the next waits until then.
    rewrite_not_before: Mutex<Option<Instant>>,
}

impl Journal {
    /// Starts timing an fsync for the latency monitor of the store this
    /// journal serves (`None`, no clock read, while the monitor is off).
    fn fsync_probe(&self) -> Option<(Arc<crate::latency::LatencyMonitor>, Instant)> {
        let monitor = self.store.lock().as_ref()?.latency().clone();
        let started = monitor.start()?;
        Some((monitor, started))
    }

    /// Reports a timed fsync as the `journal-fsync` latency event.
    fn report_fsync(&self, probe: Option<(Arc<crate::latency::LatencyMonitor>, Instant)>) {
        if let Some((monitor, started)) = probe {
            monitor.finish("journal-fsync", Some(started));
        }
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("fsync", &self.fsync)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Journal {
    /// A journal in `dir`; nothing is read or written before
    /// [`Journal::start`].
    pub fn new(dir: &str, fsync: JournalFsync, enabled: bool) -> Journal {
        Journal {
            dir: PathBuf::from(dir),
            fsync,
            enabled,
            accepting: AtomicBool::new(false),
            buffer: Mutex::new(Buffer::default()),
            wake: Condvar::new(),
            appender: Mutex::new(None),
            write_failed: AtomicBool::new(false),
            fsync_failed: AtomicBool::new(false),
            write_error: Mutex::new(String::new()),
            durable: watch::channel(Durable::default()).0,
            acked: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
            closed: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            writer: Mutex::new(None),
            last_error: Mutex::new(String::new()),
            errors: AtomicU64::new(0),
            synced_in_background: AtomicU64::new(0),
            background_sync_busy: AtomicBool::new(false),
            max_size: DEFAULT_MAX_SIZE,
            store: Mutex::new(None),
            rewriting: AtomicBool::new(false),
            rewritten_bytes: AtomicU64::new(0),
            rewrites: AtomicU64::new(0),
            rewrite_not_before: Mutex::new(None),
        }
    }

    /// Sets `write-behind-journal-max-size` (0: no rewrite).
    pub fn with_max_size(mut self, bytes: u64) -> Journal {
        self.max_size = bytes;
        self
    }

    /// Whether new changes are journaled (and replies wait for them).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Appends the record of `change` (called under the change's shard
    /// lock; see [`crate::store::ChangeObserver::changed`]).
    pub fn append(&self, change: &Change<'_>) {
        if !self.accepting.load(Ordering::Acquire) {
            return;
        }
        thread_local! {
            /// The record being built: reused, so an append allocates nothing.
            static RECORD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        RECORD.with_borrow_mut(|record| {
            record.clear();
            record.resize(RECORD_HEADER, 0);
            let version = encode_change(record, change);
            let end = self.push_record(record, version);
            APPENDED.with(|cell| cell.set(end));
            // A huge value's record is not kept around.
            if record.capacity() > 1024 * 1024 {
                *record = Vec::new();
            }
        });
    }

    /// Seals `record` (its header: length and CRC) and appends it to the
    /// buffer; returns the position it ends at.
    fn push_record(&self, record: &mut [u8], version: u64) -> u64 {
        seal(record);
        let (end, was_empty) = {
            let mut buffer = self.buffer.lock();
            let was_empty = buffer.data.is_empty();
            buffer.data.extend_from_slice(record);
            buffer.end += record.len() as u64;
            buffer.max_version = buffer.max_version.max(version);
            buffer.latest_version = buffer.latest_version.max(version);
            (buffer.end, was_empty)
        };
        // The writer takes the whole buffer and looks again before it
        // waits: only a first record needs to wake it.
        if was_empty {
            self.wake.notify_one();
        }
        end
    }

    /// Under `everysec` and `no`, writes what is buffered to the file from
    /// the calling thread (as Redis writes its AOF before it replies), if
    /// no one else is writing; true if the records up to `position` are
    /// now written to the OS and may be acknowledged. Under `always`, or
    /// when it could not write, false: wait with [`Journal::wait_durable`].
    pub fn write_through(&self, position: u64) -> bool {
        if self.fsync == JournalFsync::Always {
            return false;
        }
        if self.durable.borrow().position >= position {
            return true;
        }
        let Some(mut guard) = self.appender.try_lock() else {
            return false;
        };
        let Some(appender) = guard.as_mut() else {
            return false;
        };
        appender.take_buffer(self);
        if !appender.write_pending(self) {
            return false;
        }
        let written = appender.written;
        drop(guard);
        self.publish_durable(written);
        written >= position
    }

    /// Records up to `position` may be acknowledged.
    fn publish_durable(&self, position: u64) {
        self.durable.send_if_modified(|value| {
            let advanced = position > value.position;
            if advanced {
                value.position = position;
            }
            advanced
        });
    }

    /// Waits (asynchronously) until the records up to `position` may be
    /// acknowledged: written to the OS, or fsynced under `always`. `Err`
    /// (the MISCONF error line) if writing them fails: the caller must not
    /// acknowledge them. They stay buffered and are written once the disk
    /// takes them again, so the outcome of those commands is unknown, as
    /// after a timeout.
    pub async fn wait_durable(&self, position: u64) -> Result<(), String> {
        let mut receiver = self.durable.subscribe();
        let outcome = receiver
            .wait_for(|durable| durable.position >= position || durable.failing)
            .await
            .map(|durable| *durable);
        match outcome {
            Ok(durable) if durable.position < position => Err(self.misconf()),
            // The sender lives as long as the journal: `Err` cannot happen.
            _ => Ok(()),
        }
    }

    /// The error write commands on written-behind keys are refused with
    /// while the journal cannot be written (as Redis refuses writes when
    /// its AOF cannot be written); `None` while it can.
    pub fn write_error(&self) -> Option<String> {
        if !self.write_failed.load(Ordering::Acquire) && !self.fsync_failed.load(Ordering::Acquire)
        {
            return None;
        }
        Some(self.misconf())
    }

    fn misconf(&self) -> String {
        format!(
            "MISCONF Errors writing to the write-behind journal: {}",
            self.write_error.lock()
        )
    }

    /// A write (or an fsync under `always`) failed: refuse new writes and
    /// fail those waiting, until one succeeds.
    fn writes_failing(&self, what: &str, error: &io::Error) {
        self.record_error(what, error);
        *self.write_error.lock() = strerror(error);
        self.write_failed.store(true, Ordering::Release);
        self.durable.send_if_modified(|value| {
            let changed = !value.failing;
            value.failing = true;
            changed
        });
    }

    /// A background fsync failed: new writes are refused (MISCONF) until
    /// one succeeds; the replies already given stand (under `everysec`
    /// they never waited for the fsync).
    fn fsync_failing(&self, error: &io::Error) {
        self.record_error("fsync", error);
        *self.write_error.lock() = strerror(error);
        self.fsync_failed.store(true, Ordering::Release);
    }

    fn fsync_recovered(&self) {
        if self.fsync_failed.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                "write-behind journal: fsync succeeds again; write commands are accepted"
            );
        }
    }

    /// A write succeeded after failures: writes are taken again.
    fn writes_recovered(&self) {
        if !self.write_failed.swap(false, Ordering::AcqRel) {
            return;
        }
        self.durable.send_modify(|value| value.failing = false);
        tracing::warn!("write-behind journal: writing succeeds again; write commands are accepted");
    }

    /// PostgreSQL has every change up to `version`: files holding only
    /// such changes can go.
    pub fn acked(&self, version: u64) {
        self.acked.fetch_max(version, Ordering::AcqRel);
        if self.writer.lock().is_some() {
            self.wake.notify_one();
        } else {
            self.delete_confirmed();
        }
    }

    /// INFO's journal fields.
    pub fn status(&self) -> Vec<(&'static str, String)> {
        vec![
            ("journal_enabled", u8::from(self.enabled).to_string()),
            ("journal_fsync", self.fsync.name().to_string()),
            (
                "journal_bytes",
                self.bytes.load(Ordering::Relaxed).to_string(),
            ),
            (
                "journal_files",
                self.files.load(Ordering::Relaxed).to_string(),
            ),
            (
                "journal_buffered_bytes",
                self.buffer.lock().data.len().to_string(),
            ),
            (
                "journal_rewrites",
                self.rewrites.load(Ordering::Relaxed).to_string(),
            ),
            (
                "journal_rewrite_in_progress",
                u8::from(self.rewriting.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "journal_errors",
                self.errors.load(Ordering::Relaxed).to_string(),
            ),
            (
                "journal_last_error",
                self.last_error.lock().replace(['\r', '\n'], " "),
            ),
        ]
    }

    fn record_error(&self, what: &str, error: &io::Error) {
        let message = format!("{what}: {error}");
        if self.errors.fetch_add(1, Ordering::Relaxed) == 0 || *self.last_error.lock() != message {
            tracing::error!(error = %message, "write-behind journal");
        }
        *self.last_error.lock() = message;
    }

    /// Replays the files in `dir` into `store` (see the module docs) and,
    /// if the journal is on, starts journaling to a new file. `version`
    /// reads write-behind's version counter. Called once, before clients
    /// are accepted.
    pub fn start(self: &Arc<Self>, store: &Store, version: impl Fn() -> u64) -> io::Result<()> {
        let existing = segments(&self.dir)?;
        if existing.is_empty() && !self.enabled {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)?;
        // A rewrite cut short by a crash: the files it was to replace are
        // all there.
        let _ = fs::remove_file(self.dir.join(REWRITE_NAME));
        let mut next_sequence = 1;
        if !existing.is_empty() {
            if !self.enabled {
                tracing::warn!(
                    dir = %self.dir.display(),
                    "write-behind-journal is off, but journal files are there: replaying them"
                );
            }
            let last = existing.last().map_or(0, |(sequence, _)| *sequence);
            next_sequence = next_segment(last)?;
            self.replay(store, &existing)?;
            let max_version = version();
            let mut closed = self.closed.lock();
            for (_, path) in existing {
                let bytes = fs::metadata(&path).map_or(0, |m| m.len());
                if bytes <= HEADER {
                    // Nothing in it: no need to wait for PostgreSQL.
                    let _ = fs::remove_file(&path);
                    continue;
                }
                self.bytes.fetch_add(bytes, Ordering::Relaxed);
                self.files.fetch_add(1, Ordering::Relaxed);
                closed.push(Closed {
                    path,
                    max_version,
                    bytes,
                });
            }
        }
        if self.enabled {
            *self.store.lock() = Some(store.clone());
            let writer = Writer::open(self.clone(), next_sequence)?;
            self.accepting.store(true, Ordering::Release);
            let handle = std::thread::Builder::new()
                .name("larder-journal".into())
                .spawn(move || writer.run())?;
            *self.writer.lock() = Some(handle);
            tracing::info!(
                dir = %self.dir.display(),
                fsync = self.fsync.name(),
                "write-behind journal on"
            );
        }
        Ok(())
    }

    /// Writes what is buffered, fsyncs (unless `no`) and stops the writer.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_one();
        let handle = self.writer.lock().take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        self.delete_confirmed();
    }

    fn replay(&self, store: &Store, files: &[(u64, PathBuf)]) -> io::Result<()> {
        let started = Instant::now();
        let mut replay = Replay::default();
        let mut total_bytes = 0u64;
        let mut reported = started;
        for (read, (_, path)) in files.iter().enumerate() {
            // Reading many large files takes a while: say how far it got.
            if reported.elapsed() >= REPLAY_PROGRESS_INTERVAL {
                reported = Instant::now();
                tracing::info!(
                    files_read = read,
                    files = files.len(),
                    bytes = total_bytes,
                    records = replay.records,
                    "write-behind journal: reading"
                );
            }
            let data = fs::read(path)?;
            total_bytes += data.len() as u64;
            if let Err(why) = read_records(&data, |record| replay.add(record)) {
                tracing::warn!(
                    file = %path.display(),
                    %why,
                    "write-behind journal: torn or corrupt record, the rest of this file is ignored"
                );
            }
        }
        tracing::info!(
            files = files.len(),
            bytes = total_bytes,
            records = replay.records,
            "write-behind journal: replaying"
        );
        let databases = store.databases();
        let (flushes, survivors, mut skipped) = replay.finish();
        for &(db, _) in &flushes {
            if (db as usize) < databases {
                let _ = store.flush_db(db as usize);
            }
        }
        let now = store.now_ms();
        let (mut loaded, mut expired, mut deleted) = (0u64, 0u64, 0u64);
        let keys = survivors.len();
        for (done, survivor) in survivors.into_iter().enumerate() {
            // The clock is read every 4096 keys only.
            if done % 4096 == 4095 && reported.elapsed() >= REPLAY_PROGRESS_INTERVAL {
                reported = Instant::now();
                tracing::info!(
                    keys_done = done + 1,
                    keys,
                    seconds = started.elapsed().as_secs(),
                    "write-behind journal: replay in progress"
                );
            }
            let db = survivor.db as usize;
            let key = survivor.key;
            if db >= databases {
                skipped += 1;
                continue;
            }
            let mut locks = store.lock_keys([key.as_slice()]);
            let Ok(part) = locks.db(db, &key) else {
                skipped += 1;
                continue;
            };
            match survivor.state {
                KeyState::Value { value, expires_at } => {
                    let due = expires_at.is_some_and(|at| at < now);
                    if due || is_empty_collection(&value) {
                        // PostgreSQL still gets it (expiry does not delete
                        // rows); memory does not.
                        part.restore_pending(&key, PendingState::Gone { value, expires_at });
                        expired += 1;
                    } else {
                        part.insert(&key, value, expires_at, now);
                        loaded += 1;
                    }
                }
                KeyState::Deleted => {
                    part.restore_pending(&key, PendingState::Delete);
                    deleted += 1;
                }
            }
        }
        tracing::info!(
            loaded,
            expired,
            deleted,
            flushed_dbs = flushes.len(),
            skipped,
            ms = started.elapsed().as_millis() as u64,
            "write-behind journal: replayed; these changes go to PostgreSQL again"
        );
        Ok(())
    }

    /// Starts a rewrite on a thread of its own if the files hold more than
    /// `write-behind-journal-max-size` and twice what the last rewrite
    /// left (as Redis's auto-aof-rewrite-percentage 100).
    fn rewrite_if_due(self: &Arc<Self>) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        if self.max_size == 0
            || bytes <= self.max_size
            || bytes
                < self
                    .rewritten_bytes
                    .load(Ordering::Relaxed)
                    .saturating_mul(2)
            || self.rewriting.load(Ordering::Acquire)
            || self
                .rewrite_not_before
                .lock()
                .is_some_and(|at| Instant::now() < at)
        {
            return;
        }
        if self.rewriting.swap(true, Ordering::AcqRel) {
            return;
        }
        let journal = self.clone();
        let spawned = std::thread::Builder::new()
            .name("larder-journal-rewrite".into())
            .spawn(move || {
                let started = Instant::now();
                match journal.rewrite() {
                    Ok(written) => {
                        let after = journal.bytes.load(Ordering::Relaxed);
                        // What the rewrite wrote, not what writers appended
                        // meanwhile, is the base of the next one.
                        journal.rewritten_bytes.store(written, Ordering::Relaxed);
                        journal.rewrites.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            before = bytes,
                            written,
                            after,
                            ms = started.elapsed().as_millis() as u64,
                            "write-behind journal rewritten"
                        );
                    }
                    Err(error) => {
                        journal.record_error("rewrite", &error);
                        *journal.rewrite_not_before.lock() =
                            Some(Instant::now() + Duration::from_secs(10));
                    }
                }
                journal.rewriting.store(false, Ordering::Release);
            });
        if let Err(error) = spawned {
            self.record_error("start a rewrite", &error);
            self.rewriting.store(false, Ordering::Release);
        }
    }

    /// Blocks the rewrite thread until the records up to `end` are written
    /// (on the disk unless `no`).
    fn wait_rewritten(&self, end: u64) -> io::Result<()> {
        loop {
            let durable = *self.durable.borrow();
            if durable.position >= end {
                return Ok(());
            }
            if durable.failing || self.stop.load(Ordering::Acquire) {
                return Err(io::Error::other(
                    "the rewritten records could not be written",
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Rewrites the journal from memory, as Redis rewrites its AOF, so
    /// that it holds each unconfirmed key once:
    ///
    /// 1. The current file is closed: every record before the rewrite is
    ///    in a closed file, every later one in the new current file.
    /// 2. One shard at a time, under its lock, every pending key's full
    ///    state (or deletion) is appended like any change: ordered after
    ///    that key's earlier records and before its later ones.
    /// 3. Once those are written, the closed files are read and what they
    ///    hold for keys that step 2 did not write (keys handed to
    ///    PostgreSQL and not confirmed yet) and unconfirmed flushes are
    ///    written, collapsed to one record per key, into a file that takes
    ///    the place of the newest closed file; the older ones are deleted.
    ///
    /// A crash at any point leaves files whose replay gives the same state.
    /// Returns the bytes the rewrite wrote.
    fn rewrite(&self) -> io::Result<u64> {
        let store = self
            .store
            .lock()
            .clone()
            .ok_or_else(|| io::Error::other("the journal is not started"))?;
        {
            let mut guard = self.appender.lock();
            let appender = guard
                .as_mut()
                .ok_or_else(|| io::Error::other("the journal is stopped"))?;
            appender.roll(self)?;
        }
        let old: Vec<PathBuf> = self.closed.lock().iter().map(|c| c.path.clone()).collect();
        // 2: the pending keys' state, appended in the stream.
        let mut rewritten: std::collections::HashSet<(u32, Vec<u8>)> = Default::default();
        let mut record = Vec::new();
        let mut end = 0;
        let mut written = 0u64;
        for index in 0..store.shard_count() {
            if self.stop.load(Ordering::Acquire) {
                return Err(io::Error::other("shutdown"));
            }
            let mut locks = store.lock_shard(index);
            // Every change of this shard so far was appended with a
            // version up to this one; the state written covers them all.
            let version = self.buffer.lock().latest_version;
            for (_, shard) in locks.shards_mut() {
                for db in 0..shard.databases() {
                    shard.db(db).pending_changes(|key, entry, state| {
                        record.clear();
                        record.resize(RECORD_HEADER, 0);
                        let change_db = db;
                        match (entry, state) {
                            (Some(entry), _) => {
                                encode_change(
                                    &mut record,
                                    &Change::Written {
                                        db: change_db,
                                        key,
                                        version,
                                        entry,
                                        effect: None,
                                    },
                                );
                            }
                            (None, Some(PendingState::Delete)) => {
                                encode_change(
                                    &mut record,
                                    &Change::Deleted {
                                        db: change_db,
                                        key,
                                        version,
                                    },
                                );
                            }
                            (None, Some(PendingState::Gone { value, expires_at })) => {
                                encode_value(
                                    &mut record,
                                    change_db,
                                    key,
                                    version,
                                    *expires_at,
                                    value.into(),
                                );
                            }
                            // Queued with nothing to write (the state is
                            // read when drained): nothing to keep.
                            _ => return,
                        }
                        end = self.push_record(&mut record, version);
                        written += record.len() as u64;
                        rewritten.insert((db_code(db), key.to_vec()));
                    });
                }
            }
            drop(locks);
            // The rewrite waits for the writer rather than queue a second
            // copy of every unflushed value in memory (it starts when
            // PostgreSQL is away, so memory is full of them).
            if self.buffer.lock().data.len() > REWRITE_BUFFERED_MAX {
                self.wait_rewritten(end)?;
            }
        }
        // Written (and on the disk unless `no`) before anything goes.
        self.wait_rewritten(end)?;
        if self.fsync != JournalFsync::No {
            let current = self.appender.lock().as_ref().map(|a| a.path.clone());
            if let Some(current) = current {
                File::open(&current)?.sync_data()?;
            }
        }
        // 3: what the closed files hold that step 2 did not cover.
        let acked = self.acked.load(Ordering::Acquire);
        let mut replay = Replay::default();
        for path in &old {
            match fs::read(path) {
                // A torn record ends the file, as at start-up.
                Ok(data) => {
                    let _ = read_records(&data, |record| replay.add(record));
                }
                // Deleted meanwhile: PostgreSQL confirmed it.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        // Keys written in step 2 are not decoded at all.
        replay.latest.retain(|key, _| !rewritten.contains(key));
        let (flushes, survivors, _) = replay.finish();
        let mut out = MAGIC.to_vec();
        let mut max_version = 0;
        for (db, version) in flushes {
            if version > acked {
                record.clear();
                record.resize(RECORD_HEADER, 0);
                head(&mut record, KIND_FLUSH, version, db as usize);
                seal(&mut record);
                out.extend_from_slice(&record);
                max_version = max_version.max(version);
            }
        }
        for survivor in survivors {
            if survivor.version <= acked {
                continue;
            }
            record.clear();
            record.resize(RECORD_HEADER, 0);
            let db = survivor.db as usize;
            match &survivor.state {
                KeyState::Value { value, expires_at } => encode_value(
                    &mut record,
                    db,
                    &survivor.key,
                    survivor.version,
                    *expires_at,
                    value.into(),
                ),
                KeyState::Deleted => {
                    head(&mut record, KIND_DELETE, survivor.version, db);
                    put_bytes(&mut record, &survivor.key);
                }
            }
            seal(&mut record);
            out.extend_from_slice(&record);
            max_version = max_version.max(survivor.version);
        }
        let temporary = self.dir.join(REWRITE_NAME);
        {
            let mut file = File::create(&temporary)?;
            file.write_all(&out)?;
            if self.fsync != JournalFsync::No {
                file.sync_data()?;
            }
        }
        // The closed files still there (the writer deletes confirmed ones
        // meanwhile, oldest first) give way to the rewritten one.
        let mut closed = self.closed.lock();
        let Some(target) = old
            .iter()
            .rev()
            .find(|path| closed.iter().any(|c| &c.path == *path))
            .cloned()
        else {
            // All confirmed meanwhile: nothing to keep.
            drop(closed);
            let _ = fs::remove_file(&temporary);
            return Ok(written);
        };
        if out.len() as u64 == HEADER {
            // Nothing left to carry over: the target goes with the others.
            let _ = fs::remove_file(&temporary);
        } else {
            fs::rename(&temporary, &target)?;
        }
        // The superseded files leave the list now, and the disk once the
        // lock is released (the writer takes it for every pass): a crash in
        // between leaves them to be read at start-up before the rewritten
        // file, which supersedes them.
        let mut kept = Vec::new();
        let mut superseded = Vec::new();
        for file in closed.drain(..) {
            if file.path == target && out.len() as u64 > HEADER {
                let bytes = out.len() as u64;
                self.bytes.fetch_add(bytes, Ordering::Relaxed);
                self.bytes.fetch_sub(file.bytes, Ordering::Relaxed);
                kept.push(Closed {
                    path: file.path,
                    max_version: file.max_version.max(max_version),
                    bytes,
                });
            } else if old.contains(&file.path) {
                superseded.push(file);
            } else {
                kept.push(file);
            }
        }
        *closed = kept;
        drop(closed);
        if self.fsync != JournalFsync::No {
            File::open(&self.dir)?.sync_all()?;
        }
        for file in superseded {
            match fs::remove_file(&file.path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                // Read at the next start-up, before the rewritten file:
                // what it holds is superseded.
                Err(error) => {
                    self.record_error("delete a rewritten journal file", &error);
                    continue;
                }
            }
            self.bytes.fetch_sub(file.bytes, Ordering::Relaxed);
            self.files.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(written + out.len() as u64)
    }

    /// Deletes closed files whose records PostgreSQL all confirmed (oldest
    /// first).
    fn delete_confirmed(&self) {
        let acked = self.acked.load(Ordering::Acquire);
        let mut closed = self.closed.lock();
        while closed.first().is_some_and(|file| file.max_version <= acked) {
            let file = closed.remove(0);
            match fs::remove_file(&file.path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    self.record_error("delete a confirmed journal file", &error);
                    closed.insert(0, file);
                    return;
                }
            }
            self.bytes.fetch_sub(file.bytes, Ordering::Relaxed);
            self.files.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Appends the body of `change`'s record to `record` (which holds the
/// record header's room); returns the change's version.
fn encode_change(record: &mut Vec<u8>, change: &Change<'_>) -> u64 {
    match *change {
        Change::Written {
            db,
            key,
            version,
            entry,
            effect,
        } => {
            if let Some(effect) = effect {
                let start = record.len();
                head(record, KIND_EFFECT, version, db);
                put_bytes(record, key);
                put_expiry(record, entry.expires_at());
                if encode_effect(record, effect, entry.value()) {
                    return version;
                }
                // Not an effect this value can take: the whole state.
                record.truncate(start);
            }
            encode_value(record, db, key, version, entry.expires_at(), entry.value());
            version
        }
        Change::Deleted { db, key, version } => {
            head(record, KIND_DELETE, version, db);
            put_bytes(record, key);
            version
        }
        Change::Cleared { db, version } => {
            head(record, KIND_FLUSH, version, db);
            version
        }
    }
}

/// A full record of `value` (a key that left memory, or a rewritten one).
fn encode_value(
    record: &mut Vec<u8>,
    db: usize,
    key: &[u8],
    version: u64,
    expires_at: Option<u64>,
    value: ValueRef<'_>,
) {
    head(record, KIND_VALUE, version, db);
    put_bytes(record, key);
    let type_at = record.len();
    record.push(0);
    put_expiry(record, expires_at);
    record[type_at] = encode_state(record, value);
}

/// Fills in the header (length and CRC) of a record built after
/// `RECORD_HEADER` bytes of room.
fn seal(record: &mut [u8]) {
    let body_len = (record.len() - RECORD_HEADER) as u64;
    let crc = crc32fast::hash(&record[RECORD_HEADER..]);
    record[..8].copy_from_slice(&body_len.to_le_bytes());
    record[8..12].copy_from_slice(&crc.to_le_bytes());
}

fn db_code(db: usize) -> u32 {
    u32::try_from(db).unwrap_or(u32::MAX)
}

fn put_bytes(record: &mut Vec<u8>, bytes: &[u8]) {
    record.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    record.extend_from_slice(bytes);
}

fn put_expiry(record: &mut Vec<u8>, expires_at: Option<u64>) {
    match expires_at {
        Some(at) => {
            record.push(1);
            record.extend_from_slice(&at.to_le_bytes());
        }
        None => record.push(0),
    }
}

/// A value's whole state, as the table's encoding except that nothing is
/// sorted (a sort of a big set under the shard lock costs more than the
/// write) and a hash keeps its field TTLs; returns its type code.
fn encode_state(record: &mut Vec<u8>, value: ValueRef<'_>) -> u8 {
    match value {
        ValueRef::Set(set) => {
            for member in set.iter() {
                item(record, member);
            }
            TYPE_SET
        }
        ValueRef::Hash(hash) => {
            let now = unix_ms();
            for (field, value) in hash.iter_live(now) {
                item(record, field);
                item(record, value);
                match hash.field_expiry(field, now).flatten() {
                    Some(at) => item(record, &at.to_le_bytes()),
                    None => item(record, &[]),
                }
            }
            TYPE_HASH_WITH_TTLS
        }
        value => type_code(encode_into(value, 0, record)),
    }
}

/// The body of an effect record after its key and expiry: what `effect`
/// did to `value`, read back from it where the effect names items. False
/// if `value` is not of the effect's type.
fn encode_effect(record: &mut Vec<u8>, effect: Effect<'_>, value: ValueRef<'_>) -> bool {
    match (effect, value) {
        (Effect::ListPush { left, elements }, ValueRef::List(_)) => {
            record.push(OP_LIST_PUSH);
            record.push(u8::from(left));
            record.extend_from_slice(&(elements.len() as u64).to_le_bytes());
            for element in elements {
                put_bytes(record, element);
            }
        }
        (Effect::ListTrim { head, tail }, ValueRef::List(_)) => {
            record.push(OP_LIST_TRIM);
            record.extend_from_slice(&(head as u64).to_le_bytes());
            record.extend_from_slice(&(tail as u64).to_le_bytes());
        }
        (Effect::SetMembers(members), ValueRef::Set(set)) => {
            record.push(OP_SET);
            record.extend_from_slice(&(members.len() as u64).to_le_bytes());
            for member in members.iter() {
                put_bytes(record, member);
                record.push(u8::from(set.contains(member)));
            }
        }
        (Effect::HashFields(fields), ValueRef::Hash(hash)) => {
            let now = unix_ms();
            record.push(OP_HASH);
            record.extend_from_slice(&(fields.len() as u64).to_le_bytes());
            for field in fields.iter() {
                put_bytes(record, field);
                match (hash.get(field, now), hash.field_expiry(field, now)) {
                    (Some(value), Some(expiry)) => {
                        record.push(1);
                        put_bytes(record, value);
                        put_expiry(record, expiry);
                    }
                    _ => record.push(0),
                }
            }
        }
        (Effect::ZSetMembers(members), ValueRef::ZSet(zset)) => {
            record.push(OP_ZSET);
            record.extend_from_slice(&(members.len() as u64).to_le_bytes());
            for member in members.iter() {
                put_bytes(record, member);
                match zset.score(member) {
                    Some(score) => {
                        record.push(1);
                        record.extend_from_slice(&score.to_bits().to_le_bytes());
                    }
                    None => record.push(0),
                }
            }
        }
        (Effect::StreamAdd { fields_and_values }, ValueRef::Stream(stream)) => {
            record.push(OP_STREAM_ADD);
            let id = stream.last_id();
            record.extend_from_slice(&id.ms.to_le_bytes());
            record.extend_from_slice(&id.seq.to_le_bytes());
            record.extend_from_slice(&(fields_and_values.len() as u64).to_le_bytes());
            for item in fields_and_values {
                put_bytes(record, item);
            }
        }
        (
            Effect::StreamGroup {
                group,
                change: GroupChange::Pending { consumer, ids },
            },
            ValueRef::Stream(stream),
        ) => {
            let Some(state) = stream.group(group) else {
                return false;
            };
            record.push(OP_STREAM_GROUP_PENDING);
            put_bytes(record, group);
            put_id(record, state.last_delivered);
            put_option(record, state.entries_read);
            match consumer.and_then(|name| Some((name, state.consumers.get(name)?))) {
                Some((name, consumer)) => {
                    record.push(1);
                    put_bytes(record, name);
                    record.extend_from_slice(&consumer.seen_time.to_le_bytes());
                    put_option(record, consumer.active_time);
                }
                None => record.push(0),
            }
            record.extend_from_slice(&(ids.len() as u64).to_le_bytes());
            for id in ids {
                put_id(record, *id);
                match state.pel.get(id) {
                    Some(entry) => {
                        record.push(1);
                        put_bytes(record, &entry.consumer);
                        record.extend_from_slice(&entry.delivery_time.to_le_bytes());
                        record.extend_from_slice(&entry.delivery_count.to_le_bytes());
                    }
                    None => record.push(0),
                }
            }
        }
        (
            Effect::StreamGroup {
                group,
                change: GroupChange::Whole,
            },
            ValueRef::Stream(stream),
        ) => {
            record.push(OP_STREAM_GROUP);
            put_bytes(record, group);
            match stream.group(group) {
                Some(state) => {
                    record.push(1);
                    let mut body = Vec::new();
                    encode_group(&mut body, group, state);
                    put_bytes(record, &body);
                }
                None => record.push(0),
            }
        }
        (Effect::Expiry, _) => record.push(OP_EXPIRY),
        _ => return false,
    }
    true
}

fn put_id(record: &mut Vec<u8>, id: StreamId) {
    record.extend_from_slice(&id.ms.to_le_bytes());
    record.extend_from_slice(&id.seq.to_le_bytes());
}

/// An optional number, as an expiry is written.
fn put_option(record: &mut Vec<u8>, value: Option<u64>) {
    put_expiry(record, value);
}

fn head(record: &mut Vec<u8>, kind: u8, version: u64, db: usize) {
    record.push(kind);
    record.extend_from_slice(&version.to_le_bytes());
    record.extend_from_slice(&db_code(db).to_le_bytes());
}

fn type_code(type_name: &str) -> u8 {
    match type_name {
        "string" => 0,
        "list" => 1,
        "set" => 2,
        "hash" => 3,
        "zset" => 4,
        // 5 is TYPE_HASH_WITH_TTLS.
        "stream" => TYPE_STREAM,
        _ => u8::MAX,
    }
}

fn type_name(code: u8) -> Option<&'static str> {
    if code == TYPE_STREAM {
        return Some("stream");
    }
    ["string", "list", "set", "hash", "zset"]
        .get(code as usize)
        .copied()
}

fn is_empty_collection(value: &Value) -> bool {
    match value {
        Value::Str(_) => false,
        Value::List(list) => list.iter().next().is_none(),
        Value::Set(set) => set.iter().next().is_none(),
        Value::Hash(hash) => hash.is_empty(),
        Value::ZSet(zset) => zset.iter().next().is_none(),
        // An empty stream is a key of its own, as in Redis.
        Value::Stream(_) => false,
    }
}

/// The journal files in `dir`, by sequence number.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(sequence) = name
            .to_str()
            .and_then(|name| name.strip_prefix(PREFIX))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        // Follows symbolic links: a link to a journal file is one.
        if !fs::metadata(entry.path()).is_ok_and(|meta| meta.is_file()) {
            tracing::warn!(
                path = %entry.path().display(),
                "write-behind journal: named like a journal file but not a file; skipped"
            );
            continue;
        }
        found.push((sequence, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// The sequence number after `sequence`; an error once they are used up
/// (only files named by hand get there: a server starts one file per start
/// and per 64 MB).
fn next_segment(sequence: u64) -> io::Result<u64> {
    sequence.checked_add(1).ok_or_else(|| {
        io::Error::other(format!(
            "journal file sequence numbers are used up ({PREFIX}{sequence} exists): \
             let PostgreSQL take the changes, or rename the files to lower numbers"
        ))
    })
}

fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{sequence:010}"))
}

/// One record read back.
#[derive(Debug, Clone, PartialEq)]
enum Record {
    Value {
        db: u32,
        key: Vec<u8>,
        version: u64,
        type_code: u8,
        expires_at: Option<u64>,
        value: Vec<u8>,
    },
    Delete {
        db: u32,
        key: Vec<u8>,
        version: u64,
    },
    Flush {
        db: u32,
        version: u64,
    },
    /// What a change did to a key whose full record came before.
    Effect {
        db: u32,
        key: Vec<u8>,
        version: u64,
        expires_at: Option<u64>,
        op: EffectOp,
    },
}

/// A hash field's value and TTL.
type FieldState = (Vec<u8>, Option<u64>);

/// What a [`GroupChange::Pending`] record holds.
#[derive(Debug, Clone, PartialEq)]
struct GroupPart {
    name: Vec<u8>,
    last_delivered: StreamId,
    entries_read: Option<u64>,
    /// A consumer's name, seen time and active time.
    consumer: Option<(Vec<u8>, u64, Option<u64>)>,
    /// Pending entries by ID: owner, delivery time and count, or none.
    ids: Vec<(StreamId, Option<NackState>)>,
}

/// A pending entry's owner, delivery time and delivery count.
type NackState = (Vec<u8>, u64, u64);

impl GroupPart {
    /// Applies the part to its group; false if the group is missing or an
    /// entry's owner is not one of its consumers.
    fn apply(&self, stream: &mut crate::store::types::StreamValue) -> bool {
        let Some(group) = stream.group_mut(&self.name) else {
            return false;
        };
        group.last_delivered = self.last_delivered;
        group.entries_read = self.entries_read;
        if let Some((name, seen, active)) = &self.consumer {
            group.consumer_or_create(name, *seen);
            if let Some(consumer) = group.consumers.get_mut(name.as_slice()) {
                consumer.seen_time = *seen;
                consumer.active_time = *active;
            }
        }
        self.ids.iter().all(|(id, entry)| {
            let entry = entry.as_ref().map(|(owner, time, count)| PendingEntry {
                consumer: std::sync::Arc::from(owner.as_slice()),
                delivery_time: *time,
                delivery_count: *count,
            });
            group.set_pending(*id, entry)
        })
    }
}

/// An effect record's operation, read back (see [`Effect`]).
#[derive(Debug, Clone, PartialEq)]
enum EffectOp {
    ListPush {
        left: bool,
        elements: Vec<Vec<u8>>,
    },
    ListTrim {
        head: u64,
        tail: u64,
    },
    /// Members, present or not.
    Set(Vec<(Vec<u8>, bool)>),
    /// Fields with their value and TTL, or gone.
    Hash(Vec<(Vec<u8>, Option<FieldState>)>),
    /// Members with their score, or gone.
    ZSet(Vec<(Vec<u8>, Option<f64>)>),
    /// An XADD: the entry's ID, fields and values.
    StreamAdd(StreamId, Vec<Vec<u8>>),
    /// A consumer group's name and whole state, or its destruction.
    StreamGroup(Vec<u8>, Option<Box<ConsumerGroup>>),
    /// Part of a consumer group (see [`OP_STREAM_GROUP_PENDING`]).
    StreamGroupPending(Box<GroupPart>),
    Expiry,
}

impl EffectOp {
    /// Applies the operation to `value`; false if it cannot take it (not
    /// its type, a NaN score).
    fn apply(&self, value: &mut Value) -> bool {
        match (self, value) {
            (EffectOp::ListPush { left, elements }, Value::List(list)) => {
                for element in elements {
                    list.push(*left, element);
                }
            }
            (EffectOp::ListTrim { head, tail }, Value::List(list)) => {
                let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
                list.pop_many(true, count(*head));
                list.pop_many(false, count(*tail));
            }
            (EffectOp::Set(members), Value::Set(set)) => {
                for (member, present) in members {
                    if *present {
                        set.insert(member);
                    } else {
                        set.remove(member);
                    }
                }
            }
            (EffectOp::Hash(fields), Value::Hash(hash)) => {
                for (field, state) in fields {
                    match state {
                        Some((value, ttl)) => {
                            hash.set(field, value);
                            if let Some(at) = ttl {
                                hash.set_field_expiry(field, *at);
                                hash.mark_field_expiry_used();
                            }
                        }
                        None => {
                            hash.remove(field);
                        }
                    }
                }
            }
            (EffectOp::ZSet(members), Value::ZSet(zset)) => {
                for (member, score) in members {
                    match score {
                        Some(score) if score.is_nan() => return false,
                        Some(score) => {
                            zset.insert(member, *score);
                        }
                        None => {
                            zset.remove(member);
                        }
                    }
                }
            }
            (EffectOp::StreamAdd(id, fields_and_values), Value::Stream(stream)) => {
                let refs: Vec<&[u8]> = fields_and_values.iter().map(Vec::as_slice).collect();
                if refs.is_empty() || !refs.len().is_multiple_of(2) {
                    return false;
                }
                if stream.add(AddId::Exact(*id), &refs, 0).is_err() {
                    return false;
                }
            }
            (EffectOp::StreamGroupPending(part), Value::Stream(stream)) => {
                if !part.apply(stream) {
                    return false;
                }
            }
            (EffectOp::StreamGroup(name, group), Value::Stream(stream)) => {
                stream.destroy_group(name);
                if let Some(group) = group {
                    stream.create_group(name, (**group).clone());
                }
            }
            (EffectOp::Expiry, _) => {}
            _ => return false,
        }
        true
    }
}

/// A key's records since its last full one: the full record (or deletion)
/// and the effects after it.
enum Chain {
    Value {
        type_code: u8,
        expires_at: Option<u64>,
        value: Vec<u8>,
        effects: Vec<(Option<u64>, EffectOp)>,
    },
    Deleted,
}

/// A key's state at the end of the files read.
#[derive(Debug)]
enum KeyState {
    Value {
        value: Value,
        expires_at: Option<u64>,
    },
    Deleted,
}

/// A key [`Replay::finish`] keeps.
#[derive(Debug)]
struct Survivor {
    db: u32,
    key: Vec<u8>,
    /// The greatest version among the key's records.
    version: u64,
    state: KeyState,
}

/// What journal files say, key by key: the last full record of each key
/// and the effects after it; a flush drops what came before it in its
/// database.
#[derive(Default)]
struct Replay {
    /// Per key: the position of its last record, its greatest version, and
    /// its chain.
    latest: HashMap<(u32, Vec<u8>), (u64, u64, Chain)>,
    /// Per database: the position and version of its last flush.
    last_flush: HashMap<u32, (u64, u64)>,
    records: u64,
    /// Effects with no full record before them: their change reached
    /// PostgreSQL (the files of its full record were deleted once it was
    /// confirmed), so they are dropped.
    orphans: u64,
}

impl Replay {
    fn add(&mut self, record: Record) {
        self.records += 1;
        let order = self.records;
        match record {
            Record::Flush { db, version } => {
                self.last_flush.insert(db, (order, version));
            }
            Record::Value {
                db,
                key,
                version,
                type_code,
                expires_at,
                value,
            } => {
                let chain = Chain::Value {
                    type_code,
                    expires_at,
                    value,
                    effects: Vec::new(),
                };
                self.latest.insert((db, key), (order, version, chain));
            }
            Record::Delete { db, key, version } => {
                self.latest
                    .insert((db, key), (order, version, Chain::Deleted));
            }
            Record::Effect {
                db,
                key,
                version,
                expires_at,
                op,
            } => match self.latest.get_mut(&(db, key)) {
                Some((last, greatest, Chain::Value { effects, .. })) => {
                    *last = order;
                    *greatest = (*greatest).max(version);
                    effects.push((expires_at, op));
                }
                _ => self.orphans += 1,
            },
        }
    }

    /// The databases flushed (with the version of their last flush), the
    /// surviving keys in the order of their last records, and how many
    /// keys were dropped because their records do not make a value.
    fn finish(self) -> (Vec<(u32, u64)>, Vec<Survivor>, u64) {
        let last_flush = self.last_flush;
        let mut skipped = 0;
        let mut survivors: Vec<(u64, Survivor)> = Vec::new();
        for ((db, key), (order, version, chain)) in self.latest {
            if last_flush
                .get(&db)
                .is_some_and(|&(flushed, _)| order < flushed)
            {
                continue;
            }
            let state = match chain {
                Chain::Deleted => KeyState::Deleted,
                Chain::Value {
                    type_code,
                    mut expires_at,
                    value,
                    effects,
                } => {
                    let Some(mut value) = decode_state(type_code, &value) else {
                        skipped += 1;
                        continue;
                    };
                    let mut ok = true;
                    for (expiry, op) in &effects {
                        ok &= op.apply(&mut value);
                        expires_at = *expiry;
                    }
                    if !ok {
                        skipped += 1;
                        continue;
                    }
                    KeyState::Value { value, expires_at }
                }
            };
            survivors.push((
                order,
                Survivor {
                    db,
                    key,
                    version,
                    state,
                },
            ));
        }
        survivors.sort_unstable_by_key(|(order, _)| *order);
        let mut flushes: Vec<(u32, u64)> = last_flush
            .into_iter()
            .map(|(db, (_, version))| (db, version))
            .collect();
        flushes.sort_unstable();
        if self.orphans > 0 {
            tracing::debug!(
                orphans = self.orphans,
                "write-behind journal: effects whose full record PostgreSQL confirmed"
            );
        }
        (
            flushes,
            survivors.into_iter().map(|(_, s)| s).collect(),
            skipped,
        )
    }
}

/// The value of a full record.
fn decode_state(type_code: u8, bytes: &[u8]) -> Option<Value> {
    if type_code != TYPE_HASH_WITH_TTLS {
        return type_name(type_code).and_then(|name| decode(name, bytes));
    }
    let items = decode_items(bytes)?;
    if items.len() % 3 != 0 {
        return None;
    }
    let mut hash = crate::store::types::HashValue::new();
    for triple in items.chunks_exact(3) {
        hash.set(&triple[0], &triple[1]);
        match triple[2].len() {
            0 => {}
            8 => {
                let mut at = [0u8; 8];
                at.copy_from_slice(&triple[2]);
                hash.set_field_expiry(&triple[0], u64::from_le_bytes(at));
                hash.mark_field_expiry_used();
            }
            _ => return None,
        }
    }
    Some(Value::Hash(Box::new(hash)))
}

/// What [`check_file`] found in a journal file.
#[derive(Debug, PartialEq)]
pub struct FileCheck {
    /// Whole, well-formed records read (up to the first bad one).
    pub records: u64,
    /// Where they end.
    pub valid_bytes: usize,
    /// The keys they leave (loaded, gone or deleted) and the databases
    /// they flush.
    pub keys: usize,
    pub flushes: usize,
    /// Each surviving key's state, as debug text (to compare two reads).
    pub states: Vec<String>,
    /// Why reading stopped before the end (a torn or corrupt record).
    pub error: Option<String>,
}

/// A journal file's header (the magic).
pub const FILE_HEADER: &[u8] = MAGIC;

/// `body` framed as a record: its length and CRC, then itself (for
/// fuzzing and tools).
pub fn frame_record(body: &[u8]) -> Vec<u8> {
    let mut record = vec![0u8; RECORD_HEADER];
    record.extend_from_slice(body);
    seal(&mut record);
    record
}

/// Reads a journal file's bytes as start-up does (records, then each
/// key's last full record with the effects after it), without a store.
/// For fuzzing and tools.
pub fn check_file(data: &[u8]) -> FileCheck {
    let mut replay = Replay::default();
    let (valid_bytes, outcome) = read_records_upto(data, |record| replay.add(record));
    let records = replay.records;
    let (flushes, survivors, _) = replay.finish();
    FileCheck {
        records,
        valid_bytes,
        keys: survivors.len(),
        flushes: flushes.len(),
        states: survivors.iter().map(|s| format!("{s:?}")).collect(),
        error: outcome.err(),
    }
}

/// Hands every well-formed record of a file to `f`, in order; `Err` says
/// why reading stopped before the end (a torn or corrupt record).
fn read_records(data: &[u8], f: impl FnMut(Record)) -> Result<(), String> {
    read_records_upto(data, f).1
}

/// [`read_records`], also saying where the whole records read end (the
/// magic's end if none; 0 if not a journal file).
fn read_records_upto(data: &[u8], mut f: impl FnMut(Record)) -> (usize, Result<(), String>) {
    if data.len() < MAGIC.len() {
        return if data.is_empty() || MAGIC.starts_with(data) {
            (0, Ok(()))
        } else {
            (0, Err("not a journal file".into()))
        };
    }
    if &data[..MAGIC.len()] != MAGIC {
        return (0, Err("not a journal file".into()));
    }
    let mut at = MAGIC.len();
    while at < data.len() {
        let rest = &data[at..];
        if rest.len() < RECORD_HEADER {
            return (at, Err(format!("torn record header at byte {at}")));
        }
        let mut length = [0u8; 8];
        length.copy_from_slice(&rest[..8]);
        let length = u64::from_le_bytes(length);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&rest[8..12]);
        let crc = u32::from_le_bytes(crc);
        let available = (rest.len() - RECORD_HEADER) as u64;
        if length > available {
            return (
                at,
                Err(format!(
                    "torn record at byte {at} ({length} bytes, {available} there)"
                )),
            );
        }
        let body = &rest[RECORD_HEADER..RECORD_HEADER + length as usize];
        if crc32fast::hash(body) != crc {
            return (at, Err(format!("checksum mismatch at byte {at}")));
        }
        let Some(record) = parse_body(body) else {
            return (at, Err(format!("malformed record at byte {at}")));
        };
        f(record);
        at += RECORD_HEADER + length as usize;
    }
    (at, Ok(()))
}

fn parse_body(body: &[u8]) -> Option<Record> {
    let mut reader = Reader(body);
    let kind = reader.u8()?;
    let version = reader.u64()?;
    let db = reader.u32()?;
    let record = match kind {
        KIND_VALUE => {
            let key = reader.bytes()?;
            let type_code = reader.u8()?;
            let expires_at = reader.expiry()?;
            Record::Value {
                db,
                key,
                version,
                type_code,
                expires_at,
                value: reader.0.to_vec(),
            }
        }
        KIND_DELETE => {
            let key = reader.bytes()?;
            reader.0.is_empty().then_some(())?;
            Record::Delete { db, key, version }
        }
        KIND_FLUSH => {
            reader.0.is_empty().then_some(())?;
            Record::Flush { db, version }
        }
        KIND_EFFECT => {
            let key = reader.bytes()?;
            let expires_at = reader.expiry()?;
            let op = match reader.u8()? {
                OP_LIST_PUSH => {
                    let left = reader.flag()?;
                    let count = reader.u64()?;
                    let mut elements = Vec::new();
                    for _ in 0..count {
                        elements.push(reader.bytes()?);
                    }
                    EffectOp::ListPush { left, elements }
                }
                OP_LIST_TRIM => EffectOp::ListTrim {
                    head: reader.u64()?,
                    tail: reader.u64()?,
                },
                OP_SET => {
                    let count = reader.u64()?;
                    let mut members = Vec::new();
                    for _ in 0..count {
                        members.push((reader.bytes()?, reader.flag()?));
                    }
                    EffectOp::Set(members)
                }
                OP_HASH => {
                    let count = reader.u64()?;
                    let mut fields = Vec::new();
                    for _ in 0..count {
                        let field = reader.bytes()?;
                        let state = if reader.flag()? {
                            Some((reader.bytes()?, reader.expiry()?))
                        } else {
                            None
                        };
                        fields.push((field, state));
                    }
                    EffectOp::Hash(fields)
                }
                OP_ZSET => {
                    let count = reader.u64()?;
                    let mut members = Vec::new();
                    for _ in 0..count {
                        let member = reader.bytes()?;
                        let score = if reader.flag()? {
                            let score = f64::from_bits(reader.u64()?);
                            (!score.is_nan()).then_some(score)?;
                            Some(score)
                        } else {
                            None
                        };
                        members.push((member, score));
                    }
                    EffectOp::ZSet(members)
                }
                OP_STREAM_ADD => {
                    let id = StreamId::new(reader.u64()?, reader.u64()?);
                    let count = reader.u64()?;
                    let mut items = Vec::new();
                    for _ in 0..count {
                        items.push(reader.bytes()?);
                    }
                    EffectOp::StreamAdd(id, items)
                }
                OP_STREAM_GROUP => {
                    let name = reader.bytes()?;
                    let group = if reader.flag()? {
                        let items = decode_items(&reader.bytes()?)?;
                        let (stored_name, group, rest) = decode_group(&items)?;
                        (stored_name == name && rest.is_empty()).then_some(())?;
                        Some(Box::new(group))
                    } else {
                        None
                    };
                    EffectOp::StreamGroup(name, group)
                }
                OP_STREAM_GROUP_PENDING => {
                    let name = reader.bytes()?;
                    let last_delivered = StreamId::new(reader.u64()?, reader.u64()?);
                    let entries_read = reader.option()?;
                    let consumer = if reader.flag()? {
                        Some((reader.bytes()?, reader.u64()?, reader.option()?))
                    } else {
                        None
                    };
                    let count = reader.u64()?;
                    let mut ids = Vec::new();
                    for _ in 0..count {
                        let id = StreamId::new(reader.u64()?, reader.u64()?);
                        let entry = if reader.flag()? {
                            Some((reader.bytes()?, reader.u64()?, reader.u64()?))
                        } else {
                            None
                        };
                        ids.push((id, entry));
                    }
                    EffectOp::StreamGroupPending(Box::new(GroupPart {
                        name,
                        last_delivered,
                        entries_read,
                        consumer,
                        ids,
                    }))
                }
                OP_EXPIRY => EffectOp::Expiry,
                _ => return None,
            };
            reader.0.is_empty().then_some(())?;
            Record::Effect {
                db,
                key,
                version,
                expires_at,
                op,
            }
        }
        _ => return None,
    };
    Some(record)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(self.take(4)?);
        Some(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Option<u64> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(bytes))
    }

    /// A 0 or 1 byte.
    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// What [`put_option`] wrote.
    fn option(&mut self) -> Option<Option<u64>> {
        self.expiry()
    }

    /// `Some(None)` for no expiry, `Some(Some(at))`; `None` if malformed.
    fn expiry(&mut self) -> Option<Option<u64>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.u64()?)),
            _ => None,
        }
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let length = usize::try_from(self.u64()?).ok()?;
        self.take(length).map(<[u8]>::to_vec)
    }
}

/// The file being appended to and how far writing got: shared by the
/// writer thread and by connections writing their own records through
/// ([`Journal::write_through`]).
struct Appender {
    file: File,
    /// The current file's name and sequence number.
    path: PathBuf,
    sequence: u64,
    /// Size of the current file.
    bytes: u64,
    /// Greatest version in the current file.
    max_version: u64,
    /// Taken from the buffer, not written yet (a write failed).
    pending: Vec<u8>,
    pending_end: u64,
    pending_max: u64,
    /// The stream position written to the OS.
    written: u64,
    /// A failed write could not be cut back: the file ends in a torn
    /// record, after which replay reads nothing, so the next write goes to
    /// a new file.
    torn: bool,
}

impl Appender {
    /// Closes the current file (fsynced, unless `no`) and goes on in a new
    /// one: confirmed files can then be deleted, and a rewrite knows which
    /// records came before it.
    fn roll(&mut self, journal: &Journal) -> io::Result<()> {
        if journal.fsync != JournalFsync::No {
            self.file.sync_data()?;
        }
        let sequence = next_segment(self.sequence)?;
        let path = segment_path(&journal.dir, sequence);
        let file = create_segment(&journal.dir, &path, journal.fsync)?;
        journal.closed.lock().push(Closed {
            path: std::mem::replace(&mut self.path, path),
            max_version: self.max_version,
            bytes: self.bytes,
        });
        self.file = file;
        self.sequence = sequence;
        self.bytes = HEADER;
        self.max_version = 0;
        journal.bytes.fetch_add(HEADER, Ordering::Relaxed);
        journal.files.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Moves what is buffered behind what is pending (lock order: the
    /// appender, then the buffer).
    fn take_buffer(&mut self, journal: &Journal) {
        let mut buffer = journal.buffer.lock();
        if buffer.data.is_empty() {
            return;
        }
        if self.pending.is_empty() {
            std::mem::swap(&mut buffer.data, &mut self.pending);
        } else {
            self.pending.append(&mut buffer.data);
        }
        self.pending_end = buffer.end;
        self.pending_max = self.pending_max.max(buffer.max_version);
        buffer.max_version = 0;
    }

    /// Writes the pending records; false if the write failed (the file is
    /// cut back to its last whole record, to be tried again).
    fn write_pending(&mut self, journal: &Journal) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        if self.torn {
            if let Err(error) = self.roll(journal) {
                journal.writes_failing("start a file after a torn write", &error);
                return false;
            }
            self.torn = false;
        }
        match self.file.write_all(&self.pending) {
            Ok(()) => {
                let length = self.pending.len() as u64;
                self.bytes += length;
                journal.bytes.fetch_add(length, Ordering::Relaxed);
                self.written = self.pending_end;
                self.max_version = self.max_version.max(self.pending_max);
                self.pending_max = 0;
                self.pending.clear();
                if self.pending.capacity() > 4 * 1024 * 1024 {
                    self.pending = Vec::new();
                }
                if journal.fsync != JournalFsync::Always {
                    journal.writes_recovered();
                }
                true
            }
            Err(error) => {
                journal.writes_failing("write", &error);
                // A partial write would leave a torn record in the middle
                // of the file, and replay stops at the first one.
                if let Err(error) = self.file.set_len(self.bytes) {
                    journal.record_error("cut back a failed write", &error);
                    self.torn = true;
                }
                false
            }
        }
    }
}

/// The writer thread's state: which file, and when it was last synced.
struct Writer {
    journal: Arc<Journal>,
    /// `Appender::written` as of the last pass.
    written: u64,
    synced: u64,
    last_sync: Instant,
    /// `everysec`: fsyncs run on a thread of their own (as Redis's), so
    /// that writes, and the replies waiting for them, do not wait for one.
    syncer: Option<std::sync::mpsc::Sender<(File, u64)>>,
}

impl Writer {
    /// Opens file `sequence` and installs its appender in `journal`.
    fn open(journal: Arc<Journal>, sequence: u64) -> io::Result<Writer> {
        let path = segment_path(&journal.dir, sequence);
        let file = create_segment(&journal.dir, &path, journal.fsync)?;
        journal.bytes.fetch_add(HEADER, Ordering::Relaxed);
        journal.files.fetch_add(1, Ordering::Relaxed);
        let syncer = if journal.fsync == JournalFsync::EverySec {
            let (sender, receiver) = std::sync::mpsc::channel::<(File, u64)>();
            let background = journal.clone();
            std::thread::Builder::new()
                .name("larder-journal-fsync".into())
                .spawn(move || {
                    // Ends when the writer (the sender) is gone.
                    for (file, position) in receiver {
                        let probe = background.fsync_probe();
                        let synced = file.sync_data();
                        background.report_fsync(probe);
                        match synced {
                            Ok(()) => {
                                background
                                    .synced_in_background
                                    .fetch_max(position, Ordering::AcqRel);
                                background.fsync_recovered();
                            }
                            Err(error) => background.fsync_failing(&error),
                        }
                        background
                            .background_sync_busy
                            .store(false, Ordering::Release);
                    }
                })?;
            Some(sender)
        } else {
            None
        };
        *journal.appender.lock() = Some(Appender {
            file,
            path,
            sequence,
            bytes: HEADER,
            max_version: 0,
            pending: Vec::new(),
            pending_end: 0,
            pending_max: 0,
            written: 0,
            torn: false,
        });
        Ok(Writer {
            journal,
            written: 0,
            synced: 0,
            last_sync: Instant::now(),
            syncer,
        })
    }

    fn run(mut self) {
        let journal = self.journal.clone();
        loop {
            {
                let mut buffer = journal.buffer.lock();
                if buffer.data.is_empty()
                    && !journal.write_failed.load(Ordering::Acquire)
                    && !journal.stop.load(Ordering::Acquire)
                {
                    let timeout = self.timeout();
                    journal.wake.wait_for(&mut buffer, timeout);
                }
            }
            let stopping = journal.stop.load(Ordering::Acquire);
            let mut guard = journal.appender.lock();
            let Some(appender) = guard.as_mut() else {
                break;
            };
            appender.take_buffer(&journal);
            if !appender.write_pending(&journal) {
                drop(guard);
                if stopping {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            self.written = appender.written;
            self.sync_if_due(appender, stopping);
            if journal.fsync == JournalFsync::Always {
                if self.synced < appender.written {
                    // The fsync failed: nothing may be acknowledged until
                    // one succeeds.
                    drop(guard);
                    if stopping {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                journal.writes_recovered();
            }
            let durable = match journal.fsync {
                JournalFsync::Always => self.synced,
                _ => appender.written,
            };
            journal.publish_durable(durable);
            self.truncate_or_roll(appender);
            let drained = appender.pending.is_empty() && journal.buffer.lock().data.is_empty();
            drop(guard);
            journal.delete_confirmed();
            if !stopping {
                journal.rewrite_if_due();
            }
            if stopping && drained {
                break;
            }
        }
        // The file is closed; nobody may wait for a writer that is gone
        // (shutdown): records it could not write are refused, the rest
        // acknowledged.
        let unwritten = journal.appender.lock().take().map_or(0, |appender| {
            appender.pending.len() + journal.buffer.lock().data.len()
        });
        if unwritten > 0 {
            tracing::error!(
                bytes = unwritten,
                error = %journal.last_error.lock(),
                "write-behind journal: stopped with records it could not write; \
                 the changes in them that PostgreSQL did not take are lost"
            );
            journal.durable.send_modify(|value| value.failing = true);
        } else {
            journal.durable.send_replace(Durable {
                position: u64::MAX,
                failing: false,
            });
        }
    }

    fn timeout(&self) -> Duration {
        let unsynced = self.written > self.synced;
        match self.journal.fsync {
            JournalFsync::Always if unsynced => Duration::from_millis(100),
            JournalFsync::EverySec if unsynced => Duration::from_secs(1)
                .saturating_sub(self.last_sync.elapsed())
                .max(Duration::from_millis(1)),
            _ => Duration::from_secs(1),
        }
    }

    fn sync_if_due(&mut self, appender: &Appender, stopping: bool) {
        self.synced = self
            .synced
            .max(self.journal.synced_in_background.load(Ordering::Acquire));
        if appender.written <= self.synced {
            return;
        }
        let due = match self.journal.fsync {
            JournalFsync::Always => true,
            JournalFsync::EverySec => {
                stopping || self.last_sync.elapsed() >= Duration::from_secs(1)
            }
            JournalFsync::No => false,
        };
        if !due {
            return;
        }
        if let (Some(syncer), false) = (&self.syncer, stopping) {
            if !self
                .journal
                .background_sync_busy
                .swap(true, Ordering::AcqRel)
            {
                let sent = match appender.file.try_clone() {
                    Ok(file) => syncer.send((file, appender.written)).is_ok(),
                    Err(error) => {
                        self.journal.record_error("fsync", &error);
                        false
                    }
                };
                if !sent {
                    self.journal
                        .background_sync_busy
                        .store(false, Ordering::Release);
                }
            }
            self.last_sync = Instant::now();
            return;
        }
        let probe = self.journal.fsync_probe();
        let synced = appender.file.sync_data();
        self.journal.report_fsync(probe);
        match synced {
            Ok(()) => self.synced = appender.written,
            Err(error) if self.journal.fsync == JournalFsync::Always => {
                self.journal.writes_failing("fsync", &error)
            }
            Err(error) => self.journal.record_error("fsync", &error),
        }
        self.last_sync = Instant::now();
    }

    /// Cuts the current file back to its header once PostgreSQL confirmed
    /// every record in it, or starts a new file once it is big.
    fn truncate_or_roll(&mut self, appender: &mut Appender) {
        if !appender.pending.is_empty() || appender.bytes <= HEADER {
            return;
        }
        let acked = self.journal.acked.load(Ordering::Acquire);
        if appender.max_version <= acked {
            // The file is opened for appending: the next record goes right
            // after the header.
            match appender.file.set_len(HEADER) {
                Ok(()) => {
                    self.journal
                        .bytes
                        .fetch_sub(appender.bytes - HEADER, Ordering::Relaxed);
                    appender.bytes = HEADER;
                    appender.max_version = 0;
                }
                Err(error) => self.journal.record_error("truncate", &error),
            }
        } else if appender.bytes >= ROLL_BYTES {
            if let Err(error) = appender.roll(&self.journal) {
                self.journal
                    .record_error("start a new journal file", &error);
            }
        }
    }
}

/// Creates a journal file with its header, durably unless `no`.
fn create_segment(dir: &Path, path: &Path, fsync: JournalFsync) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)?;
    file.write_all(MAGIC)?;
    if fsync != JournalFsync::No {
        file.sync_all()?;
        // The file's directory entry too.
        File::open(dir)?.sync_all()?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Entry;

    proptest::proptest! {
        /// Whatever a journal file holds (a crash, a disk error, another
        /// program), reading it never panics: it stops at the first bad
        /// record.
        #[test]
        fn arbitrary_files_are_read_without_panicking(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let mut data = MAGIC.to_vec();
            data.extend_from_slice(&tail);
            let _ = read_records(&data, |_| {});
            let _ = read_records(&tail, |_| {});
            let _ = parse_body(&tail);
        }
    }

    fn journal() -> Journal {
        let journal = Journal::new(".", JournalFsync::No, true);
        journal.accepting.store(true, Ordering::Release);
        journal
    }

    #[test]
    fn records_read_back_and_torn_tails_stop_reading() {
        let journal = journal();
        let entry = Entry::new(b"k", Value::Str(b"v".to_vec()), Some(1234), 0);
        journal.append(&Change::Written {
            db: 3,
            key: b"k",
            version: 7,
            entry: &entry,
            effect: None,
        });
        journal.append(&Change::Deleted {
            db: 0,
            key: b"",
            version: 8,
        });
        journal.append(&Change::Cleared { db: 2, version: 9 });
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&journal.buffer.lock().data);
        assert_eq!(take_appended(), file.len() as u64 - HEADER);
        let mut records = Vec::new();
        assert_eq!(read_records(&file, |r| records.push(r)), Ok(()));
        assert_eq!(
            records,
            vec![
                Record::Value {
                    db: 3,
                    key: b"k".to_vec(),
                    version: 7,
                    type_code: 0,
                    expires_at: Some(1234),
                    value: b"v".to_vec(),
                },
                Record::Delete {
                    db: 0,
                    key: Vec::new(),
                    version: 8
                },
                Record::Flush { db: 2, version: 9 },
            ]
        );
        // Every cut inside the last record: the records before it survive.
        let whole = file.len();
        for cut in (whole - 25 + 1)..whole {
            let mut count = 0;
            assert!(read_records(&file[..cut], |_| count += 1).is_err());
            assert_eq!(count, 2, "cut at {cut}");
        }
        // A flipped bit is caught by the checksum.
        let mut corrupt = file.clone();
        corrupt[whole - 1] ^= 1;
        let mut count = 0;
        assert!(read_records(&corrupt, |_| count += 1).is_err());
        assert_eq!(count, 2);
        assert!(read_records(b"NOTAJOURNAL", |_| {}).is_err());
        assert_eq!(read_records(b"", |_| {}), Ok(()));
    }

    /// The store reporting to a journal, as write-behind does with the
    /// journal on.
    struct Journaling {
        journal: Journal,
        version: AtomicU64,
    }

    impl crate::store::ChangeObserver for Journaling {
        fn observes(&self, _db: usize, _key: &[u8]) -> bool {
            true
        }
        fn next_version(&self) -> u64 {
            self.version.fetch_add(1, Ordering::SeqCst) + 1
        }
        fn pending_added(&self) {}
        fn pending_dropped(&self, _count: usize) {}
        fn flushed(&self, _db: usize, _version: u64) {}
        fn wants_changes(&self) -> bool {
            true
        }
        fn changed(&self, change: &Change<'_>) {
            self.journal.append(change);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, bool, Vec<u8>),
        Pop(u8, bool, usize),
        Trim(u8, usize, usize),
        SetAdd(u8, Vec<u8>),
        SetRemove(u8, Vec<u8>),
        HashSet(u8, Vec<(u8, u8)>),
        HashDelete(u8, Vec<u8>),
        FieldTtl(u8, u8),
        ZAdd(u8, Vec<(u8, i8)>),
        ZRemove(u8, Vec<u8>),
        XAdd(u8, Vec<(u8, u8)>),
        /// A consumer group change of stream `.0`: on group `.1`, action
        /// `.2` (create, deliver, ack, claim, create a consumer, destroy,
        /// deliver with NOACK, delete a consumer) for consumer `.3`.
        XGroup(u8, u8, u8, u8),
        Expire(u8, Option<u64>),
        Delete(u8),
        /// PostgreSQL takes every pending key: the next change of each
        /// writes its whole state again.
        Drain,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::collection::vec;
        use proptest::prelude::*;
        let key = 0..2u8;
        let items = || vec(0..6u8, 1..4);
        prop_oneof![
            4 => (key.clone(), any::<bool>(), items()).prop_map(|(k, l, e)| Op::Push(k, l, e)),
            2 => (key.clone(), any::<bool>(), 0..3usize).prop_map(|(k, l, n)| Op::Pop(k, l, n)),
            1 => (key.clone(), 0..2usize, 0..2usize).prop_map(|(k, h, t)| Op::Trim(k, h, t)),
            3 => (key.clone(), items()).prop_map(|(k, m)| Op::SetAdd(k, m)),
            2 => (key.clone(), items()).prop_map(|(k, m)| Op::SetRemove(k, m)),
            3 => (key.clone(), vec((0..6u8, any::<u8>()), 1..3)).prop_map(|(k, f)| Op::HashSet(k, f)),
            2 => (key.clone(), items()).prop_map(|(k, f)| Op::HashDelete(k, f)),
            1 => (key.clone(), 0..6u8).prop_map(|(k, f)| Op::FieldTtl(k, f)),
            3 => (key.clone(), vec((0..6u8, any::<i8>()), 1..3)).prop_map(|(k, m)| Op::ZAdd(k, m)),
            2 => (key.clone(), items()).prop_map(|(k, m)| Op::ZRemove(k, m)),
            3 => (key.clone(), vec((0..6u8, any::<u8>()), 1..3)).prop_map(|(k, f)| Op::XAdd(k, f)),
            6 => (key.clone(), 0..2u8, 0..8u8, 0..3u8).prop_map(|(k, g, a, c)| Op::XGroup(k, g, a, c)),
            1 => (0..8u8, proptest::option::of(1u64 << 50..1u64 << 51))
                .prop_map(|(k, at)| Op::Expire(k, at)),
            1 => (0..8u8).prop_map(Op::Delete),
            1 => Just(Op::Drain),
        ]
    }

    fn name(kind: &str, key: u8) -> Vec<u8> {
        format!("{kind}{key}").into_bytes()
    }

    fn item(n: u8) -> Vec<u8> {
        vec![b'i', b'0' + n]
    }

    /// Applies `op` as the commands do: in place, then `touch_with` the
    /// effect (or `insert` for a key that is not there).
    fn apply(store: &Store, op: &Op) {
        use crate::store::changes::{Effect, Items};
        use crate::store::types::{HashValue, ListValue, SetValue, ZSetValue};
        let now = store.now_ms();
        let key = match op {
            Op::Push(k, ..) | Op::Pop(k, ..) | Op::Trim(k, ..) => name("l", *k),
            Op::SetAdd(k, _) | Op::SetRemove(k, _) => name("s", *k),
            Op::HashSet(k, _) | Op::HashDelete(k, _) | Op::FieldTtl(k, _) => name("h", *k),
            Op::ZAdd(k, _) | Op::ZRemove(k, _) => name("z", *k),
            Op::XAdd(k, _) | Op::XGroup(k, ..) => name("x", *k),
            Op::Expire(k, _) | Op::Delete(k) => name(["l", "s", "h", "z"][*k as usize % 4], *k / 4),
            Op::Drain => {
                for shard in 0..store.shard_count() {
                    while store.drain_changes(shard, 0, 100, |_, _, _| {}) > 0 {}
                }
                return;
            }
        };
        let mut locks = store.lock_keys([key.as_slice()]);
        let db = locks.db(0, &key).unwrap();
        let owned = |items: &[u8]| items.iter().map(|&i| item(i)).collect::<Vec<_>>();
        match op {
            Op::Push(_, left, elements) => {
                let elements = owned(elements);
                let refs: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
                match db.value_mut(&key, now) {
                    Some(Value::List(list)) => {
                        for e in &refs {
                            list.push(*left, e);
                        }
                        db.touch_with(
                            &key,
                            Effect::ListPush {
                                left: *left,
                                elements: &refs,
                            },
                        );
                    }
                    _ => {
                        let mut list = ListValue::new();
                        for e in &refs {
                            list.push(*left, e);
                        }
                        db.insert(&key, Value::List(Box::new(list)), None, now);
                    }
                }
            }
            Op::Pop(_, left, count) => {
                if let Some(Value::List(list)) = db.value_mut(&key, now) {
                    let popped = list.pop_many(*left, *count).len();
                    if list.is_empty() {
                        db.remove(&key, now);
                    } else if popped > 0 {
                        let (head, tail) = if *left { (popped, 0) } else { (0, popped) };
                        db.touch_with(&key, Effect::ListTrim { head, tail });
                    }
                }
            }
            Op::Trim(_, head, tail) => {
                if let Some(Value::List(list)) = db.value_mut(&key, now) {
                    let head = list.pop_many(true, *head).len();
                    let tail = list.pop_many(false, *tail).len();
                    if list.is_empty() {
                        db.remove(&key, now);
                    } else if head + tail > 0 {
                        db.touch_with(&key, Effect::ListTrim { head, tail });
                    }
                }
            }
            Op::SetAdd(_, members) | Op::SetRemove(_, members) => {
                let adding = matches!(op, Op::SetAdd(..));
                let members = owned(members);
                let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
                match db.value_mut(&key, now) {
                    Some(Value::Set(set)) => {
                        for m in &refs {
                            if adding {
                                set.insert(m);
                            } else {
                                set.remove(m);
                            }
                        }
                        if set.is_empty() {
                            db.remove(&key, now);
                        } else {
                            db.touch_with(&key, Effect::SetMembers(Items::all(&refs)));
                        }
                    }
                    _ if adding => {
                        let set: SetValue = refs.iter().copied().collect();
                        db.insert(&key, Value::Set(Box::new(set)), None, now);
                    }
                    _ => {}
                }
            }
            Op::HashSet(_, pairs) => {
                let flat: Vec<Vec<u8>> = pairs
                    .iter()
                    .flat_map(|&(f, v)| [item(f), vec![v]])
                    .collect();
                let refs: Vec<&[u8]> = flat.iter().map(Vec::as_slice).collect();
                match db.value_mut(&key, now) {
                    Some(Value::Hash(hash)) => {
                        for pair in refs.chunks_exact(2) {
                            hash.set(pair[0], pair[1]);
                        }
                        db.touch_with(&key, Effect::HashFields(Items::every(&refs, 2)));
                    }
                    _ => {
                        let mut hash = HashValue::new();
                        for pair in refs.chunks_exact(2) {
                            hash.set(pair[0], pair[1]);
                        }
                        db.insert(&key, Value::Hash(Box::new(hash)), None, now);
                    }
                }
            }
            Op::HashDelete(_, fields) => {
                let fields = owned(fields);
                let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
                if let Some(Value::Hash(hash)) = db.value_mut(&key, now) {
                    for f in &refs {
                        hash.remove(f);
                    }
                    if hash.is_empty() {
                        db.remove(&key, now);
                    } else {
                        db.touch_with(&key, Effect::HashFields(Items::all(&refs)));
                    }
                }
            }
            Op::FieldTtl(_, field) => {
                let field = item(*field);
                if let Some(Value::Hash(hash)) = db.value_mut(&key, now) {
                    if hash.set_field_expiry(&field, 1 << 52) {
                        hash.mark_field_expiry_used();
                        let fields = [field.as_slice()];
                        db.touch_with(&key, Effect::HashFields(Items::all(&fields)));
                    }
                }
            }
            Op::ZAdd(_, members) => {
                let flat: Vec<Vec<u8>> = members.iter().map(|&(m, _)| item(m)).collect();
                let refs: Vec<&[u8]> = flat.iter().map(Vec::as_slice).collect();
                match db.value_mut(&key, now) {
                    Some(Value::ZSet(zset)) => {
                        for (m, &(_, score)) in refs.iter().zip(members) {
                            zset.insert(m, f64::from(score) / 4.0);
                        }
                        db.touch_with(&key, Effect::ZSetMembers(Items::all(&refs)));
                    }
                    _ => {
                        let mut zset = ZSetValue::new();
                        for (m, &(_, score)) in refs.iter().zip(members) {
                            zset.insert(m, f64::from(score) / 4.0);
                        }
                        db.insert(&key, Value::ZSet(Box::new(zset)), None, now);
                    }
                }
            }
            Op::ZRemove(_, members) => {
                let members = owned(members);
                let refs: Vec<&[u8]> = members.iter().map(Vec::as_slice).collect();
                if let Some(Value::ZSet(zset)) = db.value_mut(&key, now) {
                    for m in &refs {
                        zset.remove(m);
                    }
                    if zset.is_empty() {
                        db.remove(&key, now);
                    } else {
                        db.touch_with(&key, Effect::ZSetMembers(Items::all(&refs)));
                    }
                }
            }
            Op::XAdd(_, pairs) => {
                let items: Vec<Vec<u8>> = pairs
                    .iter()
                    .flat_map(|&(f, v)| [item(f), vec![v]])
                    .collect();
                let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
                match db.value_mut(&key, now) {
                    Some(Value::Stream(stream)) => {
                        stream.add(AddId::Auto, &refs, now).unwrap();
                        db.touch_with(
                            &key,
                            Effect::StreamAdd {
                                fields_and_values: &refs,
                            },
                        );
                    }
                    _ => {
                        let mut stream = crate::store::types::StreamValue::new();
                        stream.add(AddId::Auto, &refs, now).unwrap();
                        db.insert(&key, Value::Stream(Box::new(stream)), None, now);
                    }
                }
            }
            Op::XGroup(_, group, action, consumer) => {
                use crate::store::changes::GroupChange;
                use crate::store::types::ConsumerGroup;
                let group = [b'g', b'0' + group];
                let consumer = [b'c', b'0' + consumer];
                let Some(Value::Stream(stream)) = db.value_mut(&key, now) else {
                    return;
                };
                // What changed: nothing, the whole group, or the consumer
                // and these pending entries.
                let mut touched = Vec::new();
                let change: Option<Option<&[u8]>> = match action {
                    0 => stream
                        .create_group(
                            &group,
                            ConsumerGroup::new(crate::store::types::StreamId::MIN, None),
                        )
                        .then_some(None),
                    5 => stream.destroy_group(&group).then_some(None),
                    1 | 6 => {
                        let noack = *action == 6;
                        stream
                            .read_group(&group, &consumer, 2, noack, now, |e| touched.push(e.id))
                            .map(|_| Some(&consumer[..]))
                            .inspect(|_| {
                                if noack {
                                    touched.clear();
                                }
                            })
                    }
                    action => match stream.group_mut(&group) {
                        Some(g) => {
                            let first = g.pel.keys().next().copied();
                            match (action, first) {
                                (2, Some(id)) => {
                                    g.ack(id);
                                    touched.push(id);
                                    Some(None)
                                }
                                (3, Some(id)) => {
                                    let (owner, _) = g.consumer_or_create(&consumer, now);
                                    g.claim(id, &owner, now, None, true);
                                    g.mark_active(&consumer, now);
                                    touched.push(id);
                                    Some(Some(&consumer[..]))
                                }
                                (4, _) => g
                                    .create_consumer(&consumer, now)
                                    .then_some(Some(&consumer[..])),
                                (7, _) => g.delete_consumer(&consumer).map(|_| None),
                                _ => None,
                            }
                        }
                        None => None,
                    },
                };
                let whole = matches!(action, 0 | 5 | 7);
                if let Some(named) = change {
                    let change = if whole {
                        GroupChange::Whole
                    } else {
                        GroupChange::Pending {
                            consumer: named,
                            ids: &touched,
                        }
                    };
                    db.touch_unsignalled(
                        &key,
                        Some(Effect::StreamGroup {
                            group: &group,
                            change,
                        }),
                    );
                }
            }
            Op::Expire(_, at) => {
                db.set_expiry(&key, *at, now);
            }
            Op::Delete(_) => {
                db.remove(&key, now);
            }
            Op::Drain => {}
        }
    }

    /// A value's state for comparison: its table encoding (sorted), its
    /// expiry, and its hash field TTLs.
    type State = (Vec<u8>, Option<u64>, Vec<u64>);

    fn state_of(value: ValueRef<'_>, expires_at: Option<u64>) -> State {
        let ttls = match value {
            ValueRef::Hash(hash) => hash
                .iter_live(0)
                .filter_map(|(field, _)| hash.field_expiry(field, 0).flatten())
                .collect(),
            _ => Vec::new(),
        };
        (
            crate::writebehind::encode::encode(value, 0).1,
            expires_at,
            ttls,
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Random in-place changes of lists, sets, hashes and zsets, with
        /// drains in between (so keys start pending again with a whole
        /// record): replaying the journal gives exactly what memory holds.
        #[test]
        fn replayed_effects_give_what_memory_holds(ops in proptest::collection::vec(op(), 1..80)) {
            let observer = Arc::new(Journaling { journal: journal(), version: AtomicU64::new(0) });
            let store = Store::new();
            store.observe_changes(observer.clone());
            for op in &ops {
                apply(&store, op);
            }
            let mut file = MAGIC.to_vec();
            file.extend_from_slice(&observer.journal.buffer.lock().data);
            let mut replay = Replay::default();
            proptest::prop_assert_eq!(read_records(&file, |r| replay.add(r)), Ok(()));
            let (_, survivors, skipped) = replay.finish();
            proptest::prop_assert_eq!(skipped, 0);
            let replayed: HashMap<Vec<u8>, Option<State>> = survivors
                .iter()
                .map(|s| {
                    let state = match &s.state {
                        KeyState::Value { value, expires_at } => Some(state_of(value.into(), *expires_at)),
                        KeyState::Deleted => None,
                    };
                    (s.key.clone(), state)
                })
                .collect();
            let now = store.now_ms();
            for kind in ["l", "s", "h", "z", "x"] {
                for k in 0..2 {
                    let key = name(kind, k);
                    let mut locks = store.lock_keys([key.as_slice()]);
                    let db = locks.db(0, &key).unwrap();
                    let memory = db.get(&key, now).map(|e| state_of(e.value(), e.expires_at()));
                    let journaled = replayed.get(&key).cloned().flatten();
                    proptest::prop_assert_eq!(&memory, &journaled, "{:?}", String::from_utf8_lossy(&key));
                }
            }
        }
    }

    #[test]
    fn nothing_is_taken_before_start() {
        let journal = Journal::new(".", JournalFsync::No, true);
        journal.append(&Change::Cleared { db: 0, version: 1 });
        assert!(journal.buffer.lock().data.is_empty());
    }
}
