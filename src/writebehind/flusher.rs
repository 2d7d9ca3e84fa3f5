//! The flusher: a task, on a thread of its own ([`spawn`]), that wakes
//! every `write-behind-delay` (or when `write-behind-batch-size` keys are
//! pending, or on `WRITEBEHIND FLUSH`),
//! drains every database part's pending keys under its shard lock, and
//! writes them in batches, up to `write-behind-pool-size` batches in flight
//! on as many connections.
//!
//! Per-key order: a key is in at most one batch of the batches in flight at
//! once (a key drained again while an earlier batch holding it is in flight
//! waits for that batch), every batch of a pass lands before the pass's
//! database flushes are applied, and versions guard every row of the
//! default table besides (mapped tables rely on this order alone, see
//! [`super::mapping`]).
//!
//! Failures come in two kinds. PostgreSQL refusing a row's data (SQLSTATE
//! class 21, 22 or 23, or 54000: a value the column type rejects, a
//! constraint violation, a row too large) cannot be cured by retrying: the
//! batch is split in halves, each written on its own, recursively, until
//! each refused row is alone; those poison rows go to the dead-letter table
//! with their error (counted in `dead_letters`, logged) and their keys are
//! confirmed, everything else is written. Any other failure (PostgreSQL
//! down, a timeout, a misconfigured table) keeps the batch and retries it
//! with exponential backoff and jitter (capped at 5 s) behind the circuit
//! breaker ([`super::breaker`]); meanwhile new changes keep coalescing in
//! the store.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{Mutex as AsyncMutex, Notify};
use tokio::task::JoinSet;

use super::breaker::Permit;
use super::encode::{decode_items, encode};
use super::mapping::{Mapping, TableInfo};
use super::sink::{Conn, Failure, Row, RowChange};
use super::{unix_ms, WriteBehind};
use crate::config::SharedConfig;
use crate::store::{Entry, Key, Pending, PendingState, Store, ValueRef};

const BACKOFF_BASE_MS: u64 = 50;
const BACKOFF_CAP_MS: u64 = 5_000;

/// A batch is cut once its rows reach this many bytes, whatever
/// `write-behind-batch-size` says: a connection keeps buffers as large as
/// the largest message it sent (tokio-postgres's encode buffer, the
/// socket's write buffer), and that memory counts against `maxmemory`
/// like the data. A batch past it (one huge row) closes its connection
/// once written, to free them.
pub const BATCH_BYTES: usize = 1 << 20;

/// Keys drained from a database part at a time.
const DRAIN_STEP: usize = 64;

type Slot = Arc<AsyncMutex<Option<Conn>>>;

/// What read-through may load for a key whose change the flusher took and
/// PostgreSQL has not confirmed yet: the key may be evicted meanwhile (it
/// is no longer pending), and its row in PostgreSQL is older than what
/// was acknowledged.
#[derive(Clone)]
pub(super) enum InFlightState {
    /// The default table's row being written: the value as memory held it.
    Value {
        type_name: &'static str,
        bytes: Arc<Vec<u8>>,
        expires_at: Option<SystemTime>,
    },
    /// The key was deleted: nothing to load.
    Deleted,
    /// A mapped table's row (or a row going to the dead-letter table):
    /// not made back into a value here; read-through waits for PostgreSQL.
    Unservable,
}

/// (db, key) -> (version, state).
type InFlightKeys = HashMap<(i32, Vec<u8>), (i64, InFlightState), foldhash::fast::FixedState>;

/// The changes in flight, recorded while `write-behind-read-through` is on
/// when a pass starts (with it off, nothing is copied). Keys are added
/// under their shard's lock as they are drained, so that no eviction can
/// come between a key leaving the pending queue and being found here.
#[derive(Default)]
pub(super) struct InFlight {
    /// (db, key) -> the version of the row being written, and its state.
    /// A key is in at most one batch in flight, but may be drained again
    /// (newer) before that batch lands: the newer entry replaces it, and
    /// the older batch's confirmation leaves it alone.
    keys: Mutex<InFlightKeys>,
    /// Signalled whenever entries are removed.
    landed: Notify,
}

impl InFlight {
    fn taken(&self, row: &Row) {
        let state = match &row.change {
            RowChange::Upsert {
                type_name,
                value,
                expires_at,
            } => InFlightState::Value {
                type_name,
                bytes: Arc::new(value.clone()),
                expires_at: *expires_at,
            },
            RowChange::Delete | RowChange::MapDelete { .. } => InFlightState::Deleted,
            RowChange::MapUpsert { .. } | RowChange::Rejected { .. } => InFlightState::Unservable,
        };
        self.keys
            .lock()
            .insert((row.db, row.key.clone()), (row.version, state));
    }

    /// `rows` are in PostgreSQL (or in the dead-letter table).
    fn landed<'r>(&self, rows: impl IntoIterator<Item = &'r Row>) {
        let mut removed = false;
        {
            let mut keys = self.keys.lock();
            if keys.is_empty() {
                return;
            }
            for row in rows {
                let slot = (row.db, row.key.clone());
                if keys
                    .get(&slot)
                    .is_some_and(|(version, _)| *version == row.version)
                {
                    keys.remove(&slot);
                    removed = true;
                }
            }
        }
        if removed {
            self.landed.notify_waiters();
        }
    }

    /// The in-flight state of `key` of database `db`, if any.
    pub(super) fn get(&self, db: usize, key: &[u8]) -> Option<InFlightState> {
        let keys = self.keys.lock();
        if keys.is_empty() {
            return None;
        }
        let db = i32::try_from(db).ok()?;
        keys.get(&(db, key.to_vec()))
            .map(|(_, state)| state.clone())
    }

    /// Resolves once some entries were removed (create it before looking).
    pub(super) fn landed_signal(&self) -> tokio::sync::futures::Notified<'_> {
        self.landed.notified()
    }
}

/// The flusher's thread: [`FlusherThread::finish_by`] waits for it, and
/// dropping it cancels the flusher (changes not written stay pending, and
/// in the journal if it is on).
pub struct FlusherThread {
    finished: tokio::sync::oneshot::Receiver<()>,
    _cancel: tokio::sync::oneshot::Sender<()>,
}

impl FlusherThread {
    /// Waits for the flusher to end (it ends once shutdown began and its
    /// last pass is done) until `deadline`; false if it did not.
    pub async fn finish_by(&mut self, deadline: Instant) -> bool {
        tokio::time::timeout_at(deadline.into(), &mut self.finished)
            .await
            .is_ok()
    }
}

/// Starts [`run`] on a thread of its own, with its PostgreSQL connections,
/// at a lower OS priority than the threads that serve clients. Encoding
/// rows and driving the connections is CPU work of its own: on the
/// runtime's workers it held the connections queued behind it; on this
/// thread, a worker woken by a client's request runs before it.
pub fn spawn(
    store: Store,
    config: SharedConfig,
    wb: Arc<WriteBehind>,
) -> std::io::Result<FlusherThread> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let (finish, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("larder-flush".into())
        .spawn(move || {
            crate::latency::run_behind_clients();
            runtime.block_on(async {
                tokio::select! {
                    _ = run(store, config, wb) => {}
                    _ = cancelled => {}
                }
            });
            // The runtime goes first: the connections' tasks end with it.
            drop(runtime);
            let _ = finish.send(());
        })?;
    Ok(FlusherThread {
        finished,
        _cancel: cancel,
    })
}

/// Runs until shutdown: see the module docs.
async fn run(store: Store, config: SharedConfig, wb: Arc<WriteBehind>) {
    let mut flusher = Flusher {
        slots: (0..wb.pool_size)
            .map(|_| Arc::new(AsyncMutex::new(None)))
            .collect(),
        store,
        config,
        wb,
        prepared: false,
        gave_up: false,
        record_in_flight: false,
    };
    // Connect at once: a misconfigured mapping is reported at start-up, not
    // at the first flush.
    flusher.prepare().await;
    loop {
        let (delay, batch_size) = {
            let config = flusher.config.read();
            flusher.record_in_flight = config.write_behind_read_through;
            (
                config.write_behind_delay,
                config.write_behind_batch_size.max(1),
            )
        };
        flusher.wb.batch_size.store(batch_size, Ordering::Relaxed);
        let stopping = flusher.wb.stopping.load(Ordering::Acquire);
        if !stopping && flusher.wb.pending_keys() < batch_size as u64 {
            tokio::select! {
                _ = flusher.wb.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
            }
        }
        // A pass, PostgreSQL's round trips included, is the
        // `write-behind-flush` latency event.
        let probe = flusher.store.latency().start();
        let complete = flusher.pass(batch_size).await;
        flusher.store.latency().finish("write-behind-flush", probe);
        if stopping {
            let left = flusher.wb.pending_keys();
            if complete && left == 0 {
                tracing::info!("write-behind: backlog flushed to PostgreSQL");
            } else if flusher.wb.journal.enabled() {
                tracing::warn!(
                    pending = left,
                    "write-behind: shutdown timeout passed; the changes not in PostgreSQL \
                     stay in the journal and go to PostgreSQL after the next start"
                );
            } else {
                tracing::error!(
                    pending = left,
                    "write-behind: shutdown timeout passed; the changes not in PostgreSQL \
                     are lost (write-behind-journal is off)"
                );
            }
            *flusher.wb.stop_deadline.lock() = None;
            return;
        }
    }
}

struct Flusher {
    store: Store,
    /// Read again before every pass: the delay and batch size may change.
    config: SharedConfig,
    wb: Arc<WriteBehind>,
    slots: Vec<Slot>,
    /// The table exists and the version offset is known.
    prepared: bool,
    /// A pass gave up on changes it had taken (shutdown past its deadline):
    /// no later pass may confirm their versions, or the journal would drop
    /// them.
    gave_up: bool,
    /// Read-through is on: the changes taken are recorded in
    /// [`WriteBehind::in_flight`] until they land.
    record_in_flight: bool,
}

/// Batches sent together, and the keys they hold (as hashes of database
/// and key: a collision only sends a wave early).
#[derive(Default)]
struct Wave {
    batches: Vec<Vec<Row>>,
    keys: HashSet<u64, foldhash::fast::FixedState>,
}

impl Wave {
    fn key_hash(row: &Row) -> u64 {
        foldhash::fast::FixedState::default().hash_one((row.db, &row.key))
    }
}

impl Flusher {
    /// Creates the tables that are missing, reads the mapped tables from
    /// the catalog and learns the version offset, once. False if shutdown
    /// gave up first.
    async fn prepare(&mut self) -> bool {
        if !self.prepared {
            let sink = self.wb.sink.clone();
            let Ok(max) = retry(&self.wb, false, || {
                let sink = sink.clone();
                async move { sink.prepare().await }
            })
            .await
            else {
                return false;
            };
            let start = self.wb.hot.version.load(Ordering::SeqCst);
            let offset = (max.max(0) as u64).saturating_sub(start);
            self.wb.version_offset.store(offset, Ordering::Release);
            self.prepared = true;
        }
        true
    }

    /// One pass over every database part. Returns false if it gave up
    /// (shutdown deadline) with changes not written.
    async fn pass(&mut self, batch_size: usize) -> bool {
        let start_version = self.wb.hot.version.load(Ordering::SeqCst);
        let start_ms = unix_ms();
        if !self.prepare().await {
            return false;
        }
        let offset = self.wb.version_offset.load(Ordering::Acquire);
        let catalog = self.wb.sink.catalog();
        let targets = Targets {
            wb: &self.wb,
            maps: self.wb.sink.maps(),
            catalog: &catalog,
        };
        let store = self.store.clone();
        let mut complete = true;
        let in_flight = self.record_in_flight.then_some(&self.wb.in_flight);
        let mut wave = Wave::default();
        let mut current: Vec<Row> = Vec::new();
        let mut current_bytes = 0usize;
        for shard in 0..store.shard_count() {
            for db in 0..store.databases() {
                loop {
                    // A few keys at a time, so that big values cut the
                    // batch near BATCH_BYTES.
                    let want = (batch_size - current.len()).min(DRAIN_STEP);
                    let mut rows = Vec::new();
                    let mut vanished = 0;
                    let now = unix_ms();
                    let taken = store.drain_changes(shard, db, want, |key, pending, entry| {
                        match to_row(db, key, pending, entry, offset, now, &targets) {
                            Some(row) => {
                                if let Some(in_flight) = in_flight {
                                    in_flight.taken(&row);
                                }
                                rows.push(row)
                            }
                            None => vanished += 1,
                        }
                    });
                    if vanished > 0 {
                        self.wb.confirmed(vanished);
                    }
                    if rows
                        .iter()
                        .any(|row| wave.keys.contains(&Wave::key_hash(row)))
                    {
                        if !current.is_empty() {
                            wave.batches.push(std::mem::take(&mut current));
                        }
                        complete &= self.send(std::mem::take(&mut wave)).await;
                    }
                    for row in rows {
                        wave.keys.insert(Wave::key_hash(&row));
                        current_bytes += row.size();
                        current.push(row);
                    }
                    if current.len() >= batch_size || current_bytes >= BATCH_BYTES {
                        wave.batches.push(std::mem::take(&mut current));
                        current_bytes = 0;
                        if wave.batches.len() >= self.slots.len() {
                            complete &= self.send(std::mem::take(&mut wave)).await;
                        }
                    }
                    if taken < want {
                        break;
                    }
                    // Between steps, the PostgreSQL connections' tasks on
                    // this thread run: the batches sent go out while the
                    // next wave is drained.
                    tokio::task::yield_now().await;
                }
            }
        }
        if !current.is_empty() {
            wave.batches.push(current);
        }
        complete &= self.send(wave).await;
        // Database flushes recorded up to now: applied after every batch of
        // the pass landed (rows written after a flush carry greater
        // versions, so they survive it).
        let flushes: Vec<(i32, i64)> = self
            .wb
            .flushes
            .lock()
            .drain()
            .map(|(db, version)| (db as i32, to_i64(version.saturating_add(offset))))
            .collect();
        if !flushes.is_empty() {
            let slot = self.slots[0].clone();
            let sink = self.wb.sink.clone();
            let flushes = Arc::new(flushes);
            let done = retry(&self.wb, false, || {
                let slot = slot.clone();
                let sink = sink.clone();
                let flushes = flushes.clone();
                async move {
                    let mut conn = checkout(&slot, &sink).await?;
                    let result = match conn.as_mut() {
                        Some(conn) => conn.flush_dbs(&flushes).await.map_err(Failure::from),
                        None => Err(Failure::other("no connection")),
                    };
                    if result.is_err() {
                        *conn = None;
                    }
                    result
                }
            })
            .await;
            match done {
                Ok(deleted) => {
                    self.wb.rows_deleted.fetch_add(deleted, Ordering::Relaxed);
                }
                Err(_) => complete = false,
            }
        }
        self.gave_up |= !complete;
        if complete && !self.gave_up {
            self.wb.set_acked(start_version);
            let next = if self.wb.pending_keys() > 0 {
                start_ms
            } else {
                0
            };
            self.wb.oldest_since_ms.store(next, Ordering::Release);
        }
        complete
    }

    /// Sends the batches of `wave` at once, one per connection, and waits
    /// until every one landed (or shutdown gave up on it).
    async fn send(&self, wave: Wave) -> bool {
        let mut tasks = JoinSet::new();
        for (batch, slot) in wave.batches.into_iter().zip(self.slots.iter()) {
            if batch.is_empty() {
                continue;
            }
            let wb = self.wb.clone();
            let slot = slot.clone();
            tasks.spawn(send_batch(wb, slot, batch));
        }
        let mut ok = true;
        while let Some(result) = tasks.join_next().await {
            ok &= result.unwrap_or(false);
        }
        ok
    }
}

/// Writes one batch; a data error splits it until the poison rows are
/// alone, and those go to the dead-letter table. Returns false only if
/// shutdown gave up on it.
async fn send_batch(wb: Arc<WriteBehind>, slot: Slot, batch: Vec<Row>) -> bool {
    let sink = wb.sink.clone();
    let oversized = batch.iter().map(Row::size).sum::<usize>() > BATCH_BYTES;
    let mut dead: Vec<(Row, Failure)> = Vec::new();
    let mut rows = Vec::with_capacity(batch.len());
    for row in batch {
        match &row.change {
            RowChange::Rejected { reason, .. } => {
                let failure = Failure {
                    message: reason.clone(),
                    sqlstate: None,
                    data: true,
                };
                dead.push((row, failure));
            }
            _ => rows.push(row),
        }
    }
    let mut work = Vec::new();
    if !rows.is_empty() {
        work.push(rows);
    }
    while let Some(part) = work.pop() {
        let part = Arc::new(part);
        let outcome = retry(&wb, true, || {
            let slot = slot.clone();
            let sink = sink.clone();
            let part = part.clone();
            async move {
                let mut conn = checkout(&slot, &sink).await?;
                let result = match conn.as_mut() {
                    Some(conn) => conn.write(&part).await,
                    None => Err(Failure::other("no connection")),
                };
                if result.as_ref().is_err_and(|failure| !failure.data) {
                    // Start the next try on a fresh connection (the
                    // transaction was rolled back). After a data error the
                    // connection is fine.
                    *conn = None;
                }
                result
            }
        })
        .await;
        match outcome {
            Ok((written, deleted)) => {
                wb.rows_written.fetch_add(written, Ordering::Relaxed);
                wb.rows_deleted.fetch_add(deleted, Ordering::Relaxed);
                wb.in_flight.landed(part.iter());
                wb.confirmed(part.len());
            }
            // Its keys stay recorded in flight: until the process ends,
            // reads still see the acknowledged values (the journal keeps
            // them for the next start).
            Err(Stop::GaveUp) => return false,
            Err(Stop::Data(failure)) => {
                let mut part = Arc::try_unwrap(part).unwrap_or_else(|shared| (*shared).clone());
                if part.len() == 1 {
                    if let Some(row) = part.pop() {
                        dead.push((row, failure));
                    }
                } else {
                    let second = part.split_off(part.len() / 2);
                    work.push(second);
                    work.push(part);
                }
            }
        }
    }
    if !dead.is_empty() {
        let dead = Arc::new(dead);
        let outcome = retry(&wb, false, || {
            let slot = slot.clone();
            let sink = sink.clone();
            let dead = dead.clone();
            async move {
                let mut conn = checkout(&slot, &sink).await?;
                let result = match conn.as_mut() {
                    Some(conn) => conn.dead_letter(&dead).await,
                    None => Err(Failure::other("no connection")),
                };
                if result.is_err() {
                    *conn = None;
                }
                result
            }
        })
        .await;
        if outcome.is_err() {
            return false;
        }
        for (row, failure) in dead.iter() {
            tracing::warn!(
                db = row.db,
                key = %super::repr(&row.key),
                error = %super::repr(failure.message.as_bytes()),
                "write-behind: poison row written to the dead-letter table"
            );
        }
        wb.dead_letters
            .fetch_add(dead.len() as u64, Ordering::Relaxed);
        wb.in_flight.landed(dead.iter().map(|(row, _)| row));
        wb.confirmed(dead.len());
    }
    if oversized {
        // Frees the connection's buffers, grown to this batch's size.
        *slot.lock().await = None;
    }
    wb.batches.fetch_add(1, Ordering::Relaxed);
    true
}

/// The slot's connection, opened if it has none.
async fn checkout<'a>(
    slot: &'a Slot,
    sink: &super::Sink,
) -> Result<tokio::sync::MutexGuard<'a, Option<Conn>>, Failure> {
    let mut guard = slot.lock().await;
    if guard.as_ref().is_some_and(Conn::is_closed) {
        *guard = None;
    }
    if guard.is_none() {
        *guard = Some(sink.open().await?);
    }
    Ok(guard)
}

/// Why [`retry`] stopped without a result.
enum Stop {
    /// PostgreSQL refused the data (only when the caller asked to stop on
    /// data errors).
    Data(Failure),
    /// Shutdown's deadline passed.
    GaveUp,
}

/// Runs `op` until it succeeds, backing off exponentially with jitter
/// between tries and waiting while the circuit is open; stops on a data
/// error if `data_stops` (otherwise those are retried too), and when
/// shutdown's deadline passes.
async fn retry<T, F, Fut>(wb: &WriteBehind, data_stops: bool, mut op: F) -> Result<T, Stop>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut attempt: u32 = 0;
    loop {
        // The circuit: at shutdown, every try counts, so it is ignored.
        while !wb.stopping.load(Ordering::Acquire) {
            match wb.breaker.permit(Instant::now()) {
                Permit::Go => break,
                // Short naps, to notice shutdown (ignoring the circuit).
                Permit::Wait(pause) => {
                    tokio::time::sleep(pause.min(Duration::from_millis(100))).await;
                }
            }
        }
        match op().await {
            Ok(value) => {
                reachable(wb);
                return Ok(value);
            }
            Err(failure) if failure.data && data_stops => {
                reachable(wb);
                return Err(Stop::Data(failure));
            }
            Err(failure) => {
                if wb.up.load(Ordering::Acquire) {
                    tracing::warn!(
                        error = %super::repr(failure.message.as_bytes()),
                        "write-behind: PostgreSQL failed, retrying"
                    );
                }
                wb.record_error(&failure.message);
                let opened = wb.breaker.failure(Instant::now());
                if opened {
                    tracing::warn!(
                        error = %super::repr(failure.message.as_bytes()),
                        "write-behind: circuit open, PostgreSQL is left alone for the cool-down"
                    );
                }
                if wb.past_stop_deadline() {
                    return Err(Stop::GaveUp);
                }
                if !opened || wb.stopping.load(Ordering::Acquire) {
                    let ceiling = BACKOFF_BASE_MS
                        .saturating_mul(1u64 << attempt.min(16))
                        .min(BACKOFF_CAP_MS);
                    let mut pause = rand::thread_rng().gen_range(ceiling / 2..=ceiling);
                    if let Some(deadline) = *wb.stop_deadline.lock() {
                        let left = deadline.saturating_duration_since(Instant::now());
                        pause = pause.min(left.as_millis() as u64);
                    }
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                attempt = attempt.saturating_add(1);
                wb.retries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// PostgreSQL answered: the circuit closes and the state is up.
fn reachable(wb: &WriteBehind) {
    if wb.breaker.success() {
        tracing::info!("write-behind: circuit closed");
    }
    if !wb.up.swap(true, Ordering::AcqRel) {
        tracing::info!("write-behind: PostgreSQL is reachable again");
    }
}

fn to_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn timestamp(ms: Option<u64>) -> Option<SystemTime> {
    ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

/// What to_row needs to route mapped keys.
struct Targets<'a> {
    wb: &'a WriteBehind,
    maps: &'a [Mapping],
    catalog: &'a [TableInfo],
}

impl Targets<'_> {
    /// The first mapping that applies to the key, with its catalog entry
    /// and the key's captured part.
    fn find<'k>(&self, db: usize, key: &'k [u8]) -> Option<(usize, &TableInfo, &'k [u8])> {
        self.maps.iter().enumerate().find_map(|(i, map)| {
            let captured = map.capture(db, key)?;
            Some((i, self.catalog.get(i)?, captured))
        })
    }

    /// A hash field of a mapped key with no column: counted, shown, and
    /// logged once per field name.
    fn unmapped(&self, map: usize, field: &[u8]) {
        let wb = self.wb;
        wb.unmapped_fields.fetch_add(1, Ordering::Relaxed);
        let table = self.maps.get(map).map_or("?", |m| m.table.as_str());
        let field_text = String::from_utf8_lossy(field);
        *wb.last_unmapped.lock() = format!("{table}.{field_text}");
        let mut logged = wb.logged_unmapped.lock();
        if logged.len() < 1_000 && logged.insert((map, field.to_vec())) {
            tracing::warn!(
                table,
                field = %super::repr(field),
                "write-behind: hash field has no column in the mapped table, not written"
            );
        }
    }
}

/// The change of a mapped key (see [`super::mapping`] for the rules).
fn mapped_change(
    targets: &Targets,
    map: usize,
    info: &TableInfo,
    captured: &[u8],
    value: ValueRef<'_>,
    now: u64,
) -> RowChange {
    let (type_name, bytes) = encode(value, now);
    let reject = |reason: String| RowChange::Rejected {
        map,
        type_name,
        value: bytes.clone(),
        reason,
    };
    let Ok(id) = std::str::from_utf8(captured) else {
        return reject(format!(
            "the key's {} part is not valid UTF-8",
            info.key_column
        ));
    };
    let mut doc = serde_json::Map::new();
    doc.insert(info.key_column.clone(), id.into());
    let string = match type_name {
        "string" => {
            let Some(column) = &info.string_column else {
                return reject("a string value, and the mapping has no column=".into());
            };
            let Ok(text) = std::str::from_utf8(&bytes) else {
                return reject("the value is not valid UTF-8".into());
            };
            doc.insert(column.clone(), text.into());
            true
        }
        "hash" => {
            let Some(items) = decode_items(&bytes) else {
                return reject("the hash could not be read".into());
            };
            for pair in items.chunks(2) {
                let [field, value] = pair else { continue };
                match std::str::from_utf8(field) {
                    Ok(name) if name == info.key_column => {
                        if value.as_slice() != captured {
                            targets.unmapped(map, field);
                        }
                    }
                    Ok(name) if info.columns.iter().any(|c| c == name) => {
                        let Ok(text) = std::str::from_utf8(value) else {
                            return reject(format!("the value of field {name} is not valid UTF-8"));
                        };
                        doc.insert(name.to_string(), text.into());
                    }
                    _ => targets.unmapped(map, field),
                }
            }
            false
        }
        other => return reject(format!("a {other} can't be mapped to a row")),
    };
    RowChange::MapUpsert {
        map,
        doc: serde_json::Value::Object(doc).to_string(),
        string,
    }
}

/// The row a drained change becomes; `None` if there is nothing to write
/// (a pending write whose key is no longer there).
fn to_row(
    db: usize,
    key: Key,
    pending: Pending,
    entry: Option<&Entry>,
    offset: u64,
    now: u64,
    targets: &Targets,
) -> Option<Row> {
    let mapped = targets.find(db, &key);
    let upsert = |value: ValueRef<'_>, expires_at: Option<u64>| match mapped {
        Some((map, info, captured)) => mapped_change(targets, map, info, captured, value, now),
        None => {
            let (type_name, value) = encode(value, now);
            RowChange::Upsert {
                type_name,
                value,
                expires_at: timestamp(expires_at),
            }
        }
    };
    let change = match pending.state {
        PendingState::Write => {
            let entry = entry?;
            upsert(entry.value(), entry.expires_at())
        }
        PendingState::Gone { value, expires_at } => upsert(value.view(), expires_at),
        PendingState::Delete => match mapped {
            Some((map, info, captured)) => {
                // A key part that is not UTF-8 never made a row.
                let id = std::str::from_utf8(captured).ok()?;
                let mut doc = serde_json::Map::new();
                doc.insert(info.key_column.clone(), id.into());
                RowChange::MapDelete {
                    map,
                    doc: serde_json::Value::Object(doc).to_string(),
                }
            }
            None => RowChange::Delete,
        },
    };
    Some(Row {
        db: i32::try_from(db).unwrap_or(i32::MAX),
        key: key.into_vec(),
        version: to_i64(pending.version.saturating_add(offset)),
        change,
    })
}
