//! Loading from PostgreSQL into memory: the warm start (the write-behind
//! table's rows, at start-up) and read-through (a written-behind key a
//! command names, missing from memory, is looked up first).
//!
//! A loaded copy is never recorded as a change (it came from PostgreSQL),
//! and never replaces what memory holds: it is stored only if the key is
//! still absent, has no change waiting to be written, and nothing was removed
//! from its database part while the copy was being read (it might predate a
//! deletion, a flush, an expiry or an eviction; see
//! [`crate::store::Db::insert_loaded`]). Concurrent misses of one key share
//! one query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{pin_mut, TryStreamExt};
use parking_lot::Mutex;
use tokio::sync::{Mutex as AsyncMutex, OnceCell};
use tokio_postgres::Statement;

use super::encode::decode;
use super::sink::Sink;
use super::WriteBehind;
use crate::commands::{resolve, Session};
use crate::server::Shared;
use crate::store::ChangeObserver;

/// How long a command waits for its read-through lookup before it goes on
/// as if PostgreSQL had no row.
const READ_TIMEOUT: Duration = Duration::from_millis(1000);

/// Warm start stops once used memory reaches this share of maxmemory,
/// leaving room for the clients that come next.
const WARM_START_MEMORY_SHARE: f64 = 0.9;

/// Rows between two progress lines in the log.
const PROGRESS_EVERY: u64 = 100_000;

/// One lookup in flight: every command missing the key awaits the same cell.
type Lookup = Arc<OnceCell<()>>;

/// A connection for lookups, with its prepared statement.
struct ReadConn {
    client: tokio_postgres::Client,
    lookup: Statement,
}

/// The loading side of write-behind.
pub struct Loader {
    sink: Sink,
    conn: AsyncMutex<Option<Arc<ReadConn>>>,
    /// Keys being looked up, shared by every command that misses them.
    inflight: Mutex<HashMap<(usize, Vec<u8>), Lookup>>,
    pub(super) queries: AtomicU64,
    pub(super) loaded: AtomicU64,
    pub(super) failures: AtomicU64,
}

impl Loader {
    pub(super) fn new(sink: Sink) -> Loader {
        Loader {
            sink,
            conn: AsyncMutex::new(None),
            inflight: Mutex::new(HashMap::new()),
            queries: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    async fn connection(&self) -> Result<Arc<ReadConn>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(conn.clone());
        }
        let client = self.sink.connect_plain().await.map_err(|e| e.to_string())?;
        let lookup = client
            .prepare(&format!(
                "SELECT type, value, expires_at FROM {} WHERE db = $1 AND key = $2",
                self.sink.table()
            ))
            .await
            .map_err(|e| e.to_string())?;
        let conn = Arc::new(ReadConn { client, lookup });
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

fn to_unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .max(1)
}

impl WriteBehind {
    /// Read-through: before `argv` runs, loads the written-behind keys it
    /// names (for EXEC: that its queued commands name) that memory lacks.
    /// Does nothing unless `write-behind-read-through` is on.
    pub async fn load_missing(&self, shared: &Shared, session: &mut Session, argv: &[&[u8]]) {
        if !session.hot(shared).read_through {
            return;
        }
        let db = session.db;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut add_keys = |argv: &[&[u8]]| {
            if let Ok(spec) = resolve(argv) {
                for position in spec.key_positions(argv) {
                    let key = argv[position];
                    if self.observes(db, key) && !keys.iter().any(|k| k == key) {
                        keys.push(key.to_vec());
                    }
                }
            }
        };
        match resolve(argv) {
            Ok(spec) if spec.name == "exec" => {
                if let Some(multi) = &session.multi {
                    for command in &multi.queued {
                        let argv: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
                        add_keys(&argv);
                    }
                }
            }
            Ok(_) if session.multi.is_some() => return,
            Ok(_) => add_keys(argv),
            Err(_) => return,
        }
        for key in keys {
            self.load_key(shared, db, key).await;
        }
    }

    /// Loads one key unless memory has it, sharing the query with every
    /// concurrent caller for the same key.
    async fn load_key(&self, shared: &Shared, db: usize, key: Vec<u8>) {
        let store = &shared.store;
        let present = store
            .with_db(db, &key, |part, now| part.contains(&key, now))
            .unwrap_or(true);
        if present {
            return;
        }
        let slot = (db, key);
        let cell = self
            .loader
            .inflight
            .lock()
            .entry(slot.clone())
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            let lookup = self.look_up(shared, db, &slot.1);
            if tokio::time::timeout(READ_TIMEOUT, lookup).await.is_err() {
                self.loader.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("write-behind read-through: lookup timed out");
            }
        })
        .await;
        let mut inflight = self.loader.inflight.lock();
        if inflight
            .get(&slot)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            inflight.remove(&slot);
        }
    }

    async fn look_up(&self, shared: &Shared, db: usize, key: &[u8]) {
        let store = &shared.store;
        // Taken before the query: see the module docs.
        let Ok(removals) = store.with_db(db, key, |part, _| part.removals()) else {
            return;
        };
        self.loader.queries.fetch_add(1, Ordering::Relaxed);
        let row = async {
            let conn = self.loader.connection().await?;
            let db_number = i32::try_from(db).map_err(|e| e.to_string())?;
            let result = conn
                .client
                .query_opt(&conn.lookup, &[&db_number, &key])
                .await;
            if result.is_err() {
                *self.loader.conn.lock().await = None;
            }
            result.map_err(|e| e.to_string())
        }
        .await;
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(error) => {
                self.loader.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "write-behind read-through: lookup failed");
                return;
            }
        };
        let type_name: String = row.get(0);
        let bytes: Vec<u8> = row.get(1);
        let expires_at: Option<SystemTime> = row.get(2);
        let Some(value) = decode(&type_name, &bytes) else {
            self.loader.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(type_name, "write-behind read-through: undecodable row");
            return;
        };
        let expires_at = expires_at.map(to_unix_ms);
        let stored = store.with_db(db, key, |part, now| {
            part.insert_loaded(key, value, expires_at, removals, now)
        });
        if matches!(stored, Ok(true)) {
            self.loader.loaded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Warm start: streams the table's unexpired rows of the server's
    /// databases into memory, most recently written first, until done or
    /// until used memory reaches 90% of maxmemory. Progress goes to the log.
    pub async fn warm_start(&self, shared: &Shared) -> Result<u64, String> {
        let started = Instant::now();
        let store = &shared.store;
        let maxmemory = shared.config.read().maxmemory;
        let client = self
            .loader
            .sink
            .connect_plain()
            .await
            .map_err(|e| e.to_string())?;
        let table = self.loader.sink.table();
        let exists: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if exists.is_none() {
            tracing::info!(
                table,
                "write-behind warm start: no table yet, nothing to load"
            );
            return Ok(0);
        }
        let databases = i32::try_from(store.databases()).unwrap_or(i32::MAX);
        let statement = format!(
            "SELECT db, key, type, value, expires_at FROM {table} \
             WHERE db >= 0 AND db < $1 AND (expires_at IS NULL OR expires_at > now()) \
             ORDER BY updated_at DESC"
        );
        tracing::info!(table, "write-behind warm start: loading");
        let rows = client
            .query_raw(
                &statement,
                [&databases as &(dyn tokio_postgres::types::ToSql + Sync)],
            )
            .await
            .map_err(|e| e.to_string())?;
        pin_mut!(rows);
        let mut loaded = 0u64;
        let mut seen = 0u64;
        while let Some(row) = rows.try_next().await.map_err(|e| e.to_string())? {
            seen += 1;
            if maxmemory > 0
                && crate::memory::used_memory() as f64 >= maxmemory as f64 * WARM_START_MEMORY_SHARE
            {
                tracing::warn!(
                    loaded,
                    "write-behind warm start: stopped at 90% of maxmemory; the rest stays in PostgreSQL"
                );
                break;
            }
            let db: i32 = row.get(0);
            let key: Vec<u8> = row.get(1);
            let type_name: String = row.get(2);
            let bytes: Vec<u8> = row.get(3);
            let expires_at: Option<SystemTime> = row.get(4);
            let Some(value) = decode(&type_name, &bytes) else {
                tracing::warn!(
                    db,
                    type_name,
                    "write-behind warm start: undecodable row skipped"
                );
                continue;
            };
            let db = db as usize;
            let stored = store.with_db(db, &key, |part, now| {
                let removals = part.removals();
                part.insert_loaded(&key, value, expires_at.map(to_unix_ms), removals, now)
            });
            if matches!(stored, Ok(true)) {
                loaded += 1;
            }
            if seen.is_multiple_of(PROGRESS_EVERY) {
                tracing::info!(loaded, "write-behind warm start: in progress");
            }
        }
        tracing::info!(
            loaded,
            seconds = started.elapsed().as_secs_f64(),
            "write-behind warm start: done"
        );
        self.loader.loaded.fetch_add(loaded, Ordering::Relaxed);
        Ok(loaded)
    }
}
