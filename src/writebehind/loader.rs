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
//!
//! A key whose change the flusher has taken and PostgreSQL not yet
//! confirmed is no longer pending, so it may be evicted; its row is then
//! older than what was acknowledged. Read-through never loads that row: it
//! loads the change in flight instead (a deletion loads nothing), even
//! while PostgreSQL is down; for a mapped key it waits, within the
//! command's budget, until the change lands, and loads nothing if the
//! budget runs out first (see [`super::flusher::InFlight`]).
//!
//! Read-through never holds a command up for long: a command's lookups run
//! concurrently and share one budget (`write-behind-read-timeout`), after
//! which the keys not loaded count as missing; and while PostgreSQL is known
//! to be unavailable (the flusher's circuit is open, or the loader's own
//! circuit opened after consecutive lookup failures) lookups are skipped at
//! once (INFO's `read_through_skipped`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{pin_mut, TryStreamExt};
use parking_lot::Mutex;
use tokio::sync::{Mutex as AsyncMutex, OnceCell};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::breaker::{Breaker, Permit};
use super::encode::decode;
use super::flusher::InFlightState;
use super::mapping::{self, quote_ident, Mapping};
use super::sink::{quote_table, Sink};
use super::WriteBehind;
use crate::store::types::HashValue;
use crate::store::{Store, Value};

/// Warm start stops once used memory reaches this share of maxmemory,
/// leaving room for the clients that come next.
const WARM_START_MEMORY_SHARE: f64 = 0.9;

/// Rows between two progress lines in the log.
const PROGRESS_EVERY: u64 = 100_000;

/// ... or at least this often while rows keep coming.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// One lookup in flight: every command missing the key awaits the same cell.
type Lookup = Arc<OnceCell<()>>;

/// A connection for lookups, with its prepared statements: the default
/// table's, and one per mapping (an error if its table cannot be read).
struct ReadConn {
    client: tokio_postgres::Client,
    /// `None` while the default table does not exist.
    lookup: Option<Statement>,
    mapped: Vec<Result<MappedReader, String>>,
}

/// How a mapped table's rows become values: the columns read (catalog
/// names; for a mapping with `column=`, that one column) and the statement
/// reading one row by its key column.
struct MappedReader {
    columns: Vec<String>,
    lookup: Statement,
}

/// The columns of a mapped table a loaded value is made of, and the text
/// of the SELECT list (each cast to text, so values read back as they would
/// be written).
async fn mapped_columns(
    client: &tokio_postgres::Client,
    map: &Mapping,
) -> Result<(Vec<String>, String), String> {
    let table = quote_table(&map.table);
    let rows = client
        .query(mapping::COLUMNS, &[&table])
        .await
        .map_err(pg)?;
    let all: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    if !all.contains(&map.key_column) {
        return Err(format!(
            "write-behind-map {map}: no column \"{}\" in {}",
            map.key_column, map.table
        ));
    }
    let columns: Vec<String> = match &map.string_column {
        Some(column) if all.contains(column) => vec![column.clone()],
        Some(column) => {
            return Err(format!(
                "write-behind-map {map}: no column \"{column}\" in {}",
                map.table
            ))
        }
        None => all.into_iter().filter(|c| *c != map.key_column).collect(),
    };
    let select = columns
        .iter()
        .map(|c| format!("t.{}::text", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((columns, select))
}

async fn mapped_reader(
    client: &tokio_postgres::Client,
    map: &Mapping,
) -> Result<MappedReader, String> {
    let (columns, select) = mapped_columns(client, map).await?;
    if columns.is_empty() {
        return Err(format!("write-behind-map {map}: no column to load"));
    }
    let table = quote_table(&map.table);
    let key = quote_ident(&map.key_column);
    // The key's text goes through the column's own input cast (as writes
    // do), so the comparison can use the key column's index.
    let lookup = client
        .prepare(&format!(
            "SELECT {select} FROM {table} AS t WHERE t.{key} = \
             (jsonb_populate_record(NULL::{table}, jsonb_build_object($1::text, $2::text))).{key}"
        ))
        .await
        .map_err(pg)?;
    Ok(MappedReader { columns, lookup })
}

/// The value a mapped row loads as: the hash of its non-NULL columns, or
/// with `column=`, the string in that column. `None` if that is empty.
fn mapped_value(map: &Mapping, columns: &[String], row: &Row, first: usize) -> Option<Value> {
    if map.string_column.is_some() {
        let text: Option<String> = row.get(first);
        return text.map(|text| Value::Str(text.into_bytes()));
    }
    let mut hash = HashValue::new();
    for (i, column) in columns.iter().enumerate() {
        if let Some(text) = row.get::<_, Option<String>>(first + i) {
            hash.set(column.as_bytes(), text.as_bytes());
        }
    }
    (!hash.is_empty()).then(|| Value::Hash(Box::new(hash)))
}

/// Runs `futures` concurrently until every one is done; their outputs, in
/// order. (futures-util's `join_all` needs its `alloc` feature, which the
/// crate does not enable.)
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// What read-through does for a missing key, given the flusher's changes
/// in flight.
enum Local {
    /// Loaded from the change in flight, or nothing to load.
    Done,
    /// In flight, but only PostgreSQL can make it a value: wait for it.
    Wait,
    /// Not in flight: look it up, with this removals token.
    Query(u64),
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
    pub(super) last_error: Mutex<String>,
    /// Missing keys not looked up because a circuit was open.
    pub(super) skipped: AtomicU64,
    /// How long one command waits for all its lookups
    /// (`write-behind-read-timeout`).
    read_timeout: Duration,
    /// Opens after consecutive failed lookups (errors, or lookups a
    /// command's budget cut short), with the flusher's thresholds.
    breaker: Breaker,
}

/// A lookup's turn through the loader's circuit: a failure unless marked
/// done, so that one cut short (its command's budget ran out, or the
/// client went away) is counted too, and a half-open circuit's probe is
/// never left hanging.
struct Attempt<'a> {
    breaker: &'a Breaker,
    done: bool,
}

impl Attempt<'_> {
    fn succeeded(mut self) {
        self.done = true;
        self.breaker.success();
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.failure(Instant::now());
        }
    }
}

impl Loader {
    pub(super) fn new(sink: Sink, read_timeout: Duration, breaker: Breaker) -> Loader {
        Loader {
            sink,
            conn: AsyncMutex::new(None),
            inflight: Mutex::new(HashMap::new()),
            queries: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            skipped: AtomicU64::new(0),
            read_timeout,
            breaker,
        }
    }

    /// The loader's circuit state, as INFO shows it.
    pub(super) fn circuit(&self) -> &'static str {
        self.breaker.state_name()
    }

    fn failed(&self, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = error.to_string();
        tracing::warn!(
            error = %super::repr(error.as_bytes()),
            "write-behind read-through failed"
        );
    }

    async fn connection(&self) -> Result<Arc<ReadConn>, String> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(conn.clone());
        }
        let client = self.sink.connect_plain().await.map_err(pg)?;
        // The flusher creates the default table at its first connection,
        // which may come after this one: until then no key has a row there.
        let lookup = if table_exists(&client, self.sink.table()).await? {
            let statement = format!(
                "SELECT type, value, expires_at FROM {} WHERE db = $1 AND key = $2",
                self.sink.table()
            );
            Some(client.prepare(&statement).await.map_err(pg)?)
        } else {
            None
        };
        let mut mapped = Vec::new();
        for map in self.sink.maps() {
            mapped.push(mapped_reader(&client, map).await);
        }
        // Kept for the next lookups only if nothing was missing; otherwise
        // the next lookup prepares again.
        let complete = lookup.is_some() && mapped.iter().all(Result::is_ok);
        let conn = Arc::new(ReadConn {
            client,
            lookup,
            mapped,
        });
        if complete {
            *slot = Some(conn.clone());
        }
        Ok(conn)
    }
}

/// A PostgreSQL error as the log and INFO show it (SQLSTATE and message).
fn pg(error: tokio_postgres::Error) -> String {
    super::sink::Failure::from(error).message
}

/// A stored value as memory may hold it: Redis has no empty collections.
fn decode_stored(type_name: &str, bytes: &[u8]) -> Option<crate::store::Value> {
    if type_name != "string" && bytes.is_empty() {
        return None;
    }
    decode(type_name, bytes)
}

fn to_unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .max(1)
}

impl WriteBehind {
    /// Read-through: loads those of `keys` (written-behind keys of
    /// database `db` a command is about to name; the command layer finds
    /// them) that memory lacks, all at once, for at most
    /// `write-behind-read-timeout` in all (see the module docs).
    pub async fn load_missing(&self, store: &Store, db: usize, keys: Vec<Vec<u8>>) {
        let missing: Vec<Vec<u8>> = keys
            .into_iter()
            .filter(|key| {
                !store
                    .with_db(db, key, |part, now| part.contains(key, now))
                    .unwrap_or(true)
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        if self.breaker.open_for(Instant::now()).is_some() {
            // PostgreSQL is left alone, but a change still in flight is
            // served from the flusher's copy.
            let skipped = missing
                .iter()
                .filter(|key| !matches!(self.load_in_flight(store, db, key), Some(Local::Done)))
                .count();
            self.loader
                .skipped
                .fetch_add(skipped as u64, Ordering::Relaxed);
            return;
        }
        let deadline = tokio::time::Instant::now() + self.loader.read_timeout;
        let finished = join_all(
            missing
                .into_iter()
                .map(|key| self.load_key(store, db, key, deadline))
                .collect(),
        )
        .await;
        if finished.contains(&false) {
            self.loader
                .failed("lookup timed out (write-behind-read-timeout)");
        }
    }

    /// Loads one missing key, sharing the query with every concurrent
    /// caller for the same key, until `deadline`. False if the deadline
    /// passed first.
    async fn load_key(
        &self,
        store: &Store,
        db: usize,
        key: Vec<u8>,
        deadline: tokio::time::Instant,
    ) -> bool {
        let slot = (db, key);
        let cell = self
            .loader
            .inflight
            .lock()
            .entry(slot.clone())
            .or_default()
            .clone();
        // If this command's budget runs out while it runs the shared
        // query, the query is dropped and another waiter runs its own.
        let lookup = cell.get_or_init(|| self.look_up(store, db, &slot.1));
        let finished = tokio::time::timeout_at(deadline, lookup).await.is_ok();
        let mut inflight = self.loader.inflight.lock();
        if inflight
            .get(&slot)
            .is_some_and(|current| Arc::ptr_eq(current, &cell))
        {
            inflight.remove(&slot);
        }
        finished
    }

    /// Loads `key` from the change the flusher has in flight for it, if
    /// any (its row in PostgreSQL is older). `None` if the database does
    /// not exist.
    fn load_in_flight(&self, store: &Store, db: usize, key: &[u8]) -> Option<Local> {
        // Under the shard lock: the flusher records a key in flight under
        // it as it drains the key, so a key that is absent, not pending
        // and not in flight here has its latest state in PostgreSQL (the
        // removals token read with it refuses the later insert if the key
        // changed or left meanwhile). A change in flight is stored at once,
        // under the same lock, so no eviction elsewhere in the part can
        // make it refused.
        store
            .with_db(db, key, |part, now| {
                let removals = part.removals();
                let (type_name, bytes, expires_at) = match self.in_flight.get(db, key) {
                    None => return Local::Query(removals),
                    Some(InFlightState::Deleted) => return Local::Done,
                    Some(InFlightState::Unservable) => return Local::Wait,
                    Some(InFlightState::Value {
                        type_name,
                        bytes,
                        expires_at,
                    }) => (type_name, bytes, expires_at),
                };
                // None: an empty collection, which memory cannot hold.
                if let Some(value) = decode_stored(type_name, &bytes) {
                    let expires_at = expires_at.map(to_unix_ms);
                    if part.insert_loaded(key, value, expires_at, removals, now) {
                        self.loader.loaded.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Local::Done
            })
            .ok()
    }

    async fn look_up(&self, store: &Store, db: usize, key: &[u8]) {
        // A change in flight is newer than the key's row: it is loaded
        // instead, or, if it cannot be made back into a value, the lookup
        // waits for it to land (within the command's budget).
        let removals = loop {
            let landed = self.in_flight.landed_signal();
            tokio::pin!(landed);
            landed.as_mut().enable();
            match self.load_in_flight(store, db, key) {
                None | Some(Local::Done) => return,
                Some(Local::Wait) => landed.await,
                Some(Local::Query(removals)) => break removals,
            }
        };
        if self.loader.breaker.permit(Instant::now()) != Permit::Go {
            self.loader.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let attempt = Attempt {
            breaker: &self.loader.breaker,
            done: false,
        };
        self.loader.queries.fetch_add(1, Ordering::Relaxed);
        let maps = self.loader.sink.maps();
        let mapped = maps
            .iter()
            .enumerate()
            .find_map(|(i, map)| Some((i, map, map.capture(db, key)?)));
        // The row, and for a mapped key the columns it holds.
        let found = async {
            let conn = self.loader.connection().await?;
            let result = match mapped {
                Some((i, map, captured)) => {
                    let reader = conn.mapped[i].as_ref().map_err(Clone::clone)?;
                    let captured = std::str::from_utf8(captured).map_err(|e| e.to_string())?;
                    conn.client
                        .query_opt(&reader.lookup, &[&map.key_column, &captured])
                        .await
                        .map(|row| row.map(|row| (row, reader.columns.clone())))
                }
                None => {
                    let Some(lookup) = &conn.lookup else {
                        return Ok(None);
                    };
                    let db_number = i32::try_from(db).map_err(|e| e.to_string())?;
                    conn.client
                        .query_opt(lookup, &[&db_number, &key])
                        .await
                        .map(|row| row.map(|row| (row, Vec::new())))
                }
            };
            if result.is_err() {
                *self.loader.conn.lock().await = None;
            }
            result.map_err(pg)
        }
        .await;
        let (row, columns) = match found {
            Ok(found) => {
                attempt.succeeded();
                match found {
                    Some(found) => found,
                    None => return,
                }
            }
            Err(error) => {
                drop(attempt);
                self.loader.failed(&error);
                return;
            }
        };
        let (value, expires_at) = match mapped {
            Some((_, map, _)) => match mapped_value(map, &columns, &row, 0) {
                Some(value) => (value, None),
                None => return,
            },
            None => {
                let type_name: String = row.get(0);
                let bytes: Vec<u8> = row.get(1);
                let expires_at: Option<SystemTime> = row.get(2);
                let Some(value) = decode_stored(&type_name, &bytes) else {
                    self.loader.failed(&format!("undecodable {type_name} row"));
                    return;
                };
                (value, expires_at.map(to_unix_ms))
            }
        };
        let stored = store.with_db(db, key, |part, now| {
            part.insert_loaded(key, value, expires_at, removals, now)
        });
        if matches!(stored, Ok(true)) {
            self.loader.loaded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Warm start: streams into memory the default table's unexpired rows
    /// of the server's databases (most recently written first), then each
    /// mapped table's rows, until done or until used memory reaches 90% of
    /// maxmemory. Progress goes to the log. Returns the keys loaded.
    pub async fn warm_start(&self, store: &Store, maxmemory: u64) -> Result<u64, String> {
        let started = Instant::now();
        let client = self.loader.sink.connect_plain().await.map_err(pg)?;
        let mut progress = WarmStart {
            store,
            maxmemory,
            loaded: 0,
            seen: 0,
            full: false,
            started,
            reported: started,
        };
        let table = self.loader.sink.table().to_string();
        if !table_exists(&client, &table).await? {
            tracing::info!(
                table,
                "write-behind warm start: no table yet, nothing to load"
            );
        } else {
            let databases = i32::try_from(store.databases()).unwrap_or(i32::MAX);
            let statement = format!(
                "SELECT db, key, type, value, expires_at FROM {table} \
                 WHERE db >= 0 AND db < $1 AND (expires_at IS NULL OR expires_at > now()) \
                 ORDER BY updated_at DESC"
            );
            tracing::info!(table, "write-behind warm start: loading");
            let rows = client
                .query_raw(&statement, [&databases as &(dyn ToSql + Sync)])
                .await
                .map_err(pg)?;
            progress
                .load(rows, |row| {
                    let db: i32 = row.get(0);
                    let type_name: String = row.get(2);
                    let bytes: Vec<u8> = row.get(3);
                    let expires_at: Option<SystemTime> = row.get(4);
                    let value = decode_stored(&type_name, &bytes)?;
                    Some((db as usize, row.get(1), value, expires_at.map(to_unix_ms)))
                })
                .await?;
        }
        for map in self.loader.sink.maps() {
            if progress.full || map.db >= store.databases() {
                break;
            }
            let (columns, select) = match mapped_columns(&client, map).await {
                Ok(found) if !found.0.is_empty() => found,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, "write-behind warm start: mapped table skipped");
                    continue;
                }
            };
            let table = quote_table(&map.table);
            let key = quote_ident(&map.key_column);
            tracing::info!(table, "write-behind warm start: loading mapped rows");
            let rows = client
                .query_raw(
                    &format!("SELECT t.{key}::text, {select} FROM {table} AS t"),
                    std::iter::empty::<&(dyn ToSql + Sync)>(),
                )
                .await
                .map_err(pg)?;
            progress
                .load(rows, |row| {
                    let captured: Option<String> = row.get(0);
                    let mut key = map.prefix.clone();
                    key.extend_from_slice(captured?.as_bytes());
                    key.extend_from_slice(&map.suffix);
                    let value = mapped_value(map, &columns, row, 1)?;
                    Some((map.db, key, value, None))
                })
                .await?;
        }
        tracing::info!(
            loaded = progress.loaded,
            rows = progress.seen,
            seconds = started.elapsed().as_secs_f64(),
            "write-behind warm start: done"
        );
        self.loader
            .loaded
            .fetch_add(progress.loaded, Ordering::Relaxed);
        Ok(progress.loaded)
    }
}

async fn table_exists(client: &tokio_postgres::Client, table: &str) -> Result<bool, String> {
    let exists: bool = client
        .query_one(mapping::TABLE_EXISTS, &[&table])
        .await
        .map_err(pg)?
        .get(0);
    Ok(exists)
}

/// A warm start under way: what it loaded, and whether memory is full.
struct WarmStart<'a> {
    store: &'a Store,
    maxmemory: u64,
    loaded: u64,
    seen: u64,
    full: bool,
    started: Instant,
    /// When progress was last logged.
    reported: Instant,
}

impl WarmStart<'_> {
    /// Stores each row's key (db, key, value, expiry) until the rows end or
    /// memory is full.
    async fn load(
        &mut self,
        rows: tokio_postgres::RowStream,
        to_key: impl Fn(&Row) -> Option<(usize, Vec<u8>, Value, Option<u64>)>,
    ) -> Result<(), String> {
        pin_mut!(rows);
        while let Some(row) = rows.try_next().await.map_err(pg)? {
            self.seen += 1;
            if self.maxmemory > 0
                && crate::memory::used_memory() as f64
                    >= self.maxmemory as f64 * WARM_START_MEMORY_SHARE
            {
                tracing::warn!(
                    loaded = self.loaded,
                    "write-behind warm start: stopped at 90% of maxmemory; the rest stays in PostgreSQL"
                );
                self.full = true;
                return Ok(());
            }
            let Some((db, key, value, expires_at)) = to_key(&row) else {
                tracing::warn!("write-behind warm start: a row that makes no value was skipped");
                continue;
            };
            let stored = self.store.with_db(db, &key, |part, now| {
                let removals = part.removals();
                part.insert_loaded(&key, value, expires_at, removals, now)
            });
            if matches!(stored, Ok(true)) {
                self.loaded += 1;
            }
            // The clock is read every 1024 rows only.
            if self.seen.is_multiple_of(PROGRESS_EVERY)
                || (self.seen.is_multiple_of(1024) && self.reported.elapsed() >= PROGRESS_INTERVAL)
            {
                self.reported = Instant::now();
                tracing::info!(
                    loaded = self.loaded,
                    rows = self.seen,
                    seconds = self.started.elapsed().as_secs(),
                    "write-behind warm start: in progress"
                );
            }
        }
        Ok(())
    }
}
