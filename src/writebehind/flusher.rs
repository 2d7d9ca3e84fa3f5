//! The flusher: a task that wakes every `write-behind-delay` (or when
//! `write-behind-batch-size` keys are pending, or on `WRITEBEHIND FLUSH`),
//! drains every database part's pending keys under its shard lock, and
//! writes them in batches, up to `write-behind-pool-size` batches in flight
//! on as many connections.
//!
//! Per-key order: a key is in at most one batch of the batches in flight at
//! once (a key drained again while an earlier batch holding it is in flight
//! waits for that batch), every batch of a pass lands before the pass's
//! database flushes are applied, and versions guard every row besides. A
//! failed batch is kept and retried with exponential backoff and jitter
//! (capped at 5 s) until PostgreSQL takes it; meanwhile new changes keep
//! coalescing in the store.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinSet;

use super::encode::encode;
use super::sink::{Conn, Row, RowChange};
use super::{unix_ms, WriteBehind};
use crate::server::Shared;
use crate::store::{Entry, Key, Pending, PendingState, Value};

const BACKOFF_BASE_MS: u64 = 50;
const BACKOFF_CAP_MS: u64 = 5_000;

type Slot = Arc<AsyncMutex<Option<Conn>>>;

/// Runs until shutdown: see the module docs.
pub async fn run(shared: Arc<Shared>, wb: Arc<WriteBehind>) {
    let mut flusher = Flusher {
        slots: (0..wb.pool_size)
            .map(|_| Arc::new(AsyncMutex::new(None)))
            .collect(),
        shared,
        wb,
        prepared: false,
    };
    loop {
        let (delay, batch_size) = {
            let config = flusher.shared.config.read();
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
        let complete = flusher.pass(batch_size).await;
        if stopping {
            let left = flusher.wb.pending_keys();
            if complete && left == 0 {
                tracing::info!("write-behind: backlog flushed to PostgreSQL");
            } else {
                tracing::error!(
                    pending = left,
                    "write-behind: shutdown timeout passed, changes not in PostgreSQL are lost"
                );
            }
            *flusher.wb.stop_deadline.lock() = None;
            flusher.wb.acked_changed.notify_all();
            return;
        }
    }
}

struct Flusher {
    shared: Arc<Shared>,
    wb: Arc<WriteBehind>,
    slots: Vec<Slot>,
    /// The table exists and the version offset is known.
    prepared: bool,
}

/// Batches sent together, and the keys they hold.
#[derive(Default)]
struct Wave {
    batches: Vec<Vec<Row>>,
    keys: HashSet<(i32, Vec<u8>)>,
}

impl Flusher {
    /// One pass over every database part. Returns false if it gave up
    /// (shutdown deadline) with changes not written.
    async fn pass(&mut self, batch_size: usize) -> bool {
        let start_version = self.wb.hot.version.load(Ordering::SeqCst);
        let start_ms = unix_ms();
        if !self.prepared {
            let sink = self.wb.sink.clone();
            let Some(max) = retry(&self.wb, || {
                let sink = sink.clone();
                async move { sink.prepare_table().await.map_err(|e| describe(&e)) }
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
        let offset = self.wb.version_offset.load(Ordering::Acquire);
        let store = self.shared.store.clone();
        let mut complete = true;
        let mut wave = Wave::default();
        let mut current: Vec<Row> = Vec::new();
        for shard in 0..store.shard_count() {
            for db in 0..store.databases() {
                loop {
                    let want = batch_size - current.len();
                    let mut rows = Vec::new();
                    let mut vanished = 0;
                    let taken = store.drain_changes(shard, db, want, |key, pending, entry| {
                        match to_row(db, key, pending, entry, offset) {
                            Some(row) => rows.push(row),
                            None => vanished += 1,
                        }
                    });
                    if vanished > 0 {
                        self.wb.confirmed(vanished);
                    }
                    if rows
                        .iter()
                        .any(|row| wave.keys.contains(&(row.db, row.key.clone())))
                    {
                        if !current.is_empty() {
                            wave.batches.push(std::mem::take(&mut current));
                        }
                        complete &= self.send(std::mem::take(&mut wave)).await;
                    }
                    for row in rows {
                        wave.keys.insert((row.db, row.key.clone()));
                        current.push(row);
                    }
                    if current.len() >= batch_size {
                        wave.batches.push(std::mem::take(&mut current));
                        if wave.batches.len() >= self.slots.len() {
                            complete &= self.send(std::mem::take(&mut wave)).await;
                        }
                    }
                    if taken < want {
                        break;
                    }
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
            let done = retry(&self.wb, || {
                let slot = slot.clone();
                let sink = sink.clone();
                let flushes = flushes.clone();
                async move {
                    let mut conn = checkout(&slot, &sink).await?;
                    let result = match conn.as_mut() {
                        Some(conn) => conn.flush_dbs(&flushes).await.map_err(|e| describe(&e)),
                        None => Err("no connection".to_string()),
                    };
                    if result.is_err() {
                        *conn = None;
                    }
                    result
                }
            })
            .await;
            match done {
                Some(deleted) => {
                    self.wb.rows_deleted.fetch_add(deleted, Ordering::Relaxed);
                }
                None => complete = false,
            }
        }
        if complete {
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

async fn send_batch(wb: Arc<WriteBehind>, slot: Slot, batch: Vec<Row>) -> bool {
    let batch = Arc::new(batch);
    let sink = wb.sink.clone();
    let outcome = retry(&wb, || {
        let slot = slot.clone();
        let sink = sink.clone();
        let batch = batch.clone();
        async move {
            let mut conn = checkout(&slot, &sink).await?;
            let result = match conn.as_mut() {
                Some(conn) => conn.write(&batch).await.map_err(|e| describe(&e)),
                None => Err("no connection".to_string()),
            };
            if result.is_err() {
                // Whatever went wrong, start the next try on a fresh
                // connection (the transaction was rolled back).
                *conn = None;
            }
            result
        }
    })
    .await;
    match outcome {
        Some((written, deleted)) => {
            wb.rows_written.fetch_add(written, Ordering::Relaxed);
            wb.rows_deleted.fetch_add(deleted, Ordering::Relaxed);
            wb.batches.fetch_add(1, Ordering::Relaxed);
            wb.confirmed(batch.len());
            true
        }
        None => false,
    }
}

/// The slot's connection, opened if it has none.
async fn checkout<'a>(
    slot: &'a Slot,
    sink: &super::Sink,
) -> Result<tokio::sync::MutexGuard<'a, Option<Conn>>, String> {
    let mut guard = slot.lock().await;
    if guard.as_ref().is_some_and(Conn::is_closed) {
        *guard = None;
    }
    if guard.is_none() {
        *guard = Some(sink.connect().await.map_err(|e| describe(&e))?);
    }
    Ok(guard)
}

/// Runs `op` until it succeeds, backing off exponentially with jitter
/// between tries; `None` if shutdown's deadline passed first.
async fn retry<T, F, Fut>(wb: &WriteBehind, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut attempt: u32 = 0;
    loop {
        match op().await {
            Ok(value) => {
                if !wb.up.swap(true, Ordering::AcqRel) {
                    tracing::info!("write-behind: PostgreSQL is reachable again");
                }
                return Some(value);
            }
            Err(error) => {
                if wb.up.load(Ordering::Acquire) {
                    tracing::warn!(%error, "write-behind: PostgreSQL failed, retrying");
                }
                wb.record_error(&error);
                if wb.past_stop_deadline() {
                    return None;
                }
                let ceiling = BACKOFF_BASE_MS
                    .saturating_mul(1u64 << attempt.min(16))
                    .min(BACKOFF_CAP_MS);
                let mut pause = rand::thread_rng().gen_range(ceiling / 2..=ceiling);
                if let Some(deadline) = *wb.stop_deadline.lock() {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    pause = pause.min(left.as_millis() as u64);
                }
                tokio::time::sleep(Duration::from_millis(pause)).await;
                attempt = attempt.saturating_add(1);
                wb.retries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

fn to_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn timestamp(ms: Option<u64>) -> Option<SystemTime> {
    ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
}

/// The row a drained change becomes; `None` if there is nothing to write
/// (a pending write whose key is no longer there).
fn to_row(
    db: usize,
    key: &Key,
    pending: Pending,
    entry: Option<&Entry>,
    offset: u64,
) -> Option<Row> {
    let now = unix_ms();
    let upsert = |value: &Value, expires_at: Option<u64>| {
        let (type_name, value) = encode(value, now);
        RowChange::Upsert {
            type_name,
            value,
            expires_at: timestamp(expires_at),
        }
    };
    let change = match pending.state {
        PendingState::Write => {
            let entry = entry?;
            upsert(&entry.value, entry.expires_at)
        }
        PendingState::Gone { value, expires_at } => upsert(&value, expires_at),
        PendingState::Delete => RowChange::Delete,
    };
    Some(Row {
        db: i32::try_from(db).unwrap_or(i32::MAX),
        key: key.to_vec(),
        version: to_i64(pending.version.saturating_add(offset)),
        change,
    })
}
