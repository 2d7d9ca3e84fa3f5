//! The sharded, lock-striped keyspace.
//!
//! Keys are spread over a power-of-two number of shards by hash; each shard is
//! behind its own mutex and holds, for every logical database, the keys that
//! hash to it (so MOVE and COPY between databases stay inside one shard).
//! Commands lock the shards of the keys they touch, in ascending shard order
//! (see [`LockSet`]), so multi-key commands and transactions cannot deadlock.

pub mod changes;
mod clock;
mod entry;
pub mod evict;
mod expire;
pub use expire::ExpiryPause;
mod keymap;
pub mod lazyfree;
pub mod ops;
mod s3fifo;
mod shard;
mod shard_lock;
pub mod signals;
pub mod snapshot;
pub mod types;
mod value;

use std::sync::Arc;
use std::time::Duration;

use crossbeam::utils::CachePadded;
use parking_lot::Mutex;
pub use shard_lock::ShardReadGuard;
use shard_lock::{ShardGuard, ShardLocks};
use smallvec::SmallVec;

pub use changes::{ChangeObserver, Pending, PendingState};
pub use clock::Clock;
pub use evict::{MemoryLimits, Policy, Room};
pub use lazyfree::LazyFreeStats;
pub use ops::{parse_float_value, parse_int_value};
pub use shard::{Db, ExpiredCounts, RemovedContents, Shard};
pub use signals::{KeyListener, KeySignal, KeySignals};
pub use snapshot::SnapshotCapture;
pub use value::{Entry, Key, LfuCounter, Value, ValueRef};

use crate::error::{Error, Result};

/// Default number of shards: many more than cores, so that two clients rarely
/// want the same lock.
pub const DEFAULT_SHARDS: usize = 256;

/// How a [`Store`] is built.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Number of logical databases (`databases`, default 16).
    pub databases: usize,
    /// Number of shards; rounded up to a power of two.
    pub shards: usize,
    /// Where "now" comes from (expiry decisions).
    pub clock: Clock,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            databases: 16,
            shards: DEFAULT_SHARDS,
            clock: Clock::System,
        }
    }
}

/// The remaining time to live of a key, as TTL/PTTL report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist.
    Missing,
    /// The key exists and has no expiry.
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

struct StoreInner {
    /// Each shard behind its own lock, on cache lines of its own so that
    /// cores working on different shards do not contend through false
    /// sharing (see `shard_lock`).
    shards: ShardLocks<Shard>,
    shard_mask: usize,
    databases: usize,
    clock: Clock,
    evicted_keys: std::sync::atomic::AtomicU64,
    /// `evicted_keys` by the policy that chose them (positions of
    /// [`Policy::ALL`]): a policy changed at run time keeps its count.
    evicted_by_policy: [std::sync::atomic::AtomicU64; Policy::ALL.len()],
    expired_by_eviction: std::sync::atomic::AtomicU64,
    /// Shard-lock acquisitions that found the lock held and had to wait
    /// (bumped only then: an uncontended lock costs nothing more).
    shard_lock_waits: CachePadded<std::sync::atomic::AtomicU64>,
    eviction_pool: Mutex<evict::EvictionPool>,
    /// Whether the shards keep S3-FIFO queues (the policy is, or was last
    /// seen as, `allkeys-s3fifo`).
    s3fifo: Arc<std::sync::atomic::AtomicBool>,
    /// What this store handed to the background free thread.
    lazyfree: Arc<LazyFreeStats>,
    /// Where active expiry and eviction report slow cycles (LATENCY).
    latency: Arc<crate::latency::LatencyMonitor>,
    /// Whether active expiry runs (`DEBUG SET-ACTIVE-EXPIRE`); off, keys
    /// past their TTL go only when accessed.
    active_expire: std::sync::atomic::AtomicBool,
    /// CLIENT PAUSE holds expiry and eviction (see `expire.rs`).
    expiry_pause: expire::ExpiryPause,
}

/// An in-memory keyspace, usable in-process without any socket. Cloning is
/// cheap and shares the same data.
///
/// ```
/// use larder::Store;
/// use std::time::Duration;
///
/// let store = Store::new();
/// store.set(0, b"greeting", b"hello").unwrap();
/// assert_eq!(store.get(0, b"greeting").unwrap(), Some(b"hello".to_vec()));
/// assert_eq!(store.incr_by(0, b"visits", 5).unwrap(), 5);
/// assert!(store.expire(0, b"greeting", Duration::from_secs(60)).unwrap());
/// assert!(store.del(0, b"greeting").unwrap());
/// assert_eq!(store.get(0, b"greeting").unwrap(), None);
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("databases", &self.inner.databases)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// A store with 16 databases and the default shard count.
    pub fn new() -> Self {
        Self::with_options(StoreOptions::default())
    }

    pub fn with_options(options: StoreOptions) -> Self {
        let shard_count = options.shards.max(1).next_power_of_two();
        let databases = options.databases.max(1);
        let s3fifo: Arc<std::sync::atomic::AtomicBool> = Default::default();
        let expiry_pause = expire::ExpiryPause::default();
        Store {
            inner: Arc::new(StoreInner {
                shards: ShardLocks::new(
                    (0..shard_count)
                        .map(|_| Shard::new(databases, s3fifo.clone(), expiry_pause.clone())),
                ),
                shard_mask: shard_count - 1,
                databases,
                clock: options.clock,
                evicted_keys: Default::default(),
                evicted_by_policy: Default::default(),
                expired_by_eviction: Default::default(),
                shard_lock_waits: Default::default(),
                eviction_pool: Default::default(),
                s3fifo,
                lazyfree: Default::default(),
                latency: Default::default(),
                active_expire: std::sync::atomic::AtomicBool::new(true),
                expiry_pause,
            }),
        }
    }

    /// Turns active expiry on or off (`DEBUG SET-ACTIVE-EXPIRE`).
    pub fn set_active_expire(&self, on: bool) {
        self.inner
            .active_expire
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn active_expire(&self) -> bool {
        self.inner
            .active_expire
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Number of logical databases.
    pub fn databases(&self) -> usize {
        self.inner.databases
    }

    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// The store's notion of now, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The latency monitor this store's expiry and eviction report to.
    pub fn latency(&self) -> &Arc<crate::latency::LatencyMonitor> {
        &self.inner.latency
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The shard `key` lives in.
    pub fn shard_index(&self, key: &[u8]) -> usize {
        self.shard_of_hash(keymap::key_hash(key))
    }

    /// The shard of a key with this [`keymap::key_hash`]: the key tables
    /// hash with the same function, so a lookup hashes its key once.
    fn shard_of_hash(&self, hash: u64) -> usize {
        keymap::shard_bits(hash) as usize & self.inner.shard_mask
    }

    /// Starts loading, for every key, what looking it up in database `db`
    /// will read: its table group, then its entry, then the rest of a long
    /// entry. A pipeline's lookups then wait for memory together instead of
    /// one after another, as with Valkey's batched key prefetching; on a
    /// keyspace larger than the CPU caches these misses are most of a GET's
    /// time. Nothing changes: each shard is read with `try_read` (one
    /// another thread is writing is skipped), once for all three steps, and
    /// each step reads only what the previous one brought in.
    ///
    /// `members` are (key, member) pairs to look up inside the keys'
    /// values (HGET's field, SISMEMBER's member, ZSCORE's member): for a
    /// large hash, set or sorted set, the steps go on into the value's own
    /// index ([`types::PrefetchStep`]).
    pub fn prefetch(&self, db: usize, keys: &[&[u8]], members: &[(&[u8], &[u8])]) {
        let mut held: SmallVec<[(usize, ShardReadGuard<'_, Shard>); 32]> = SmallVec::new();
        // (position in `held`, hash) of each key whose part exists.
        let mut targets: SmallVec<[(usize, u64); 32]> = SmallVec::new();
        // Every group first, then (once they have had time to arrive) every
        // entry, whose address is in the group; then the rest of the long
        // entries, whose headers give their length.
        for key in keys {
            let hash = keymap::key_hash(key);
            let shard = self.shard_of_hash(hash);
            let position = match held.iter().position(|(index, _)| *index == shard) {
                Some(position) => position,
                None => match self.inner.shards.get(shard).try_read() {
                    Some(guard) => {
                        held.push((shard, guard));
                        held.len() - 1
                    }
                    None => continue,
                },
            };
            if let Some(part) = held[position].1.existing_db(db) {
                part.prefetch_home(hash);
                targets.push((position, hash));
            }
        }
        for &(position, hash) in &targets {
            if let Some(part) = held[position].1.existing_db(db) {
                part.prefetch_entry(hash);
            }
        }
        for &(position, hash) in &targets {
            if let Some(part) = held[position].1.existing_db(db) {
                part.prefetch_entry_rest(hash);
            }
        }
        if members.is_empty() {
            return;
        }
        // The values are read now (their entries were started first, and
        // the keys of a pipeline on one big collection repeat, cached).
        let mut lookups: SmallVec<[(ValueRef<'_>, u64); 16]> = SmallVec::new();
        for &(key, member) in members {
            let shard = self.shard_index(key);
            let Some((_, guard)) = held.iter().find(|(index, _)| *index == shard) else {
                continue;
            };
            let Some(entry) = guard
                .existing_db(db)
                .and_then(|part| part.entry_to_prefetch(key))
            else {
                continue;
            };
            let value = entry.value();
            if let Some(hash) = value.member_hash(member) {
                value.prefetch_member(hash, types::PrefetchStep::Group);
                lookups.push((value, hash));
            }
        }
        for step in [types::PrefetchStep::Element, types::PrefetchStep::Key] {
            for &(value, hash) in &lookups {
                value.prefetch_member(hash, step);
            }
        }
    }

    /// The shard of `key`, to read (see [`Store::read_shard_guard`]).
    #[inline]
    pub fn read_key(&self, key: &[u8]) -> ShardReadGuard<'_, Shard> {
        self.read_shard_guard(self.shard_index(key))
    }

    /// The shards of `keys`, to read (see [`Store::read_shard_guard`]),
    /// taken as [`Store::lock_shards`] takes locks (see [`take_in_order`]),
    /// so a reader never holds a shard while it waits, and a writer that
    /// waits for readers waits for a lookup.
    pub fn read_keys<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> ReadSet<'_> {
        let mut indexes: SmallVec<[usize; 8]> =
            keys.into_iter().map(|k| self.shard_index(k)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let guards = take_in_order(
            &indexes,
            |index| self.inner.shards.get(index).try_read(),
            |index| self.inner.shards.get(index).read(),
        );
        ReadSet {
            store: self,
            guards,
        }
    }

    /// Locks the shards of `keys` in ascending order.
    pub fn lock_keys<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> LockSet<'_> {
        let indexes: SmallVec<[usize; 4]> = keys.into_iter().map(|k| self.shard_index(k)).collect();
        self.lock_shards(indexes)
    }

    /// Locks the given shards (any order, duplicates allowed), in ascending
    /// order and without waiting for one while holding others (see
    /// [`take_in_order`]).
    pub fn lock_shards(&self, indexes: SmallVec<[usize; 4]>) -> LockSet<'_> {
        if let [index] = indexes[..] {
            // Most commands name one key: no ordering to do.
            return self.lock_shard(index);
        }
        let mut indexes = indexes;
        indexes.sort_unstable();
        indexes.dedup();
        let guards = take_in_order(
            &indexes,
            |index| self.inner.shards.get(index).try_lock(),
            |index| {
                self.count_shard_lock_wait();
                self.inner.shards.get(index).lock()
            },
        );
        LockSet {
            store: self,
            guards,
        }
    }

    /// Locks one shard.
    pub fn lock_shard(&self, index: usize) -> LockSet<'_> {
        let mut guards = SmallVec::new();
        guards.push((index, self.lock_shard_counted(index)));
        LockSet {
            store: self,
            guards,
        }
    }

    /// Shard `index`'s lock, counting a wait in `shard_lock_waits` when
    /// another thread holds it (`try_lock` first: the same cost as `lock`
    /// when the lock is free).
    #[inline]
    fn lock_shard_counted(&self, index: usize) -> ShardGuard<'_, Shard> {
        let shard = self.inner.shards.get(index);
        shard.try_lock().unwrap_or_else(|| {
            self.count_shard_lock_wait();
            shard.lock()
        })
    }

    /// Runs `f` on shard `index` under its lock, read-only: for
    /// whole-keyspace figures such as INFO's.
    pub fn read_shard<R>(&self, index: usize, f: impl FnOnce(&Shard) -> R) -> Option<R> {
        if index >= self.inner.shards.len() {
            return None;
        }
        Some(f(&self.read_shard_guard(index)))
    }

    /// Shard `index` to read, shared with other readers: a lookup that
    /// changes nothing but access statistics (which are atomics) reads
    /// under this, so reads of the same shards from several cores do not
    /// pass a lock's cache line between them (see `shard_lock`).
    #[inline]
    pub fn read_shard_guard(&self, index: usize) -> ShardReadGuard<'_, Shard> {
        self.inner.shards.get(index).read()
    }

    #[cold]
    fn count_shard_lock_wait(&self) {
        self.inner
            .shard_lock_waits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Shard-lock acquisitions that had to wait for another thread since
    /// the start (INFO's `shard_lock_waits`).
    pub fn shard_lock_waits(&self) -> u64 {
        self.inner
            .shard_lock_waits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Locks every shard (transactions that touch the whole keyspace), as
    /// [`Store::lock_shards`] does.
    pub fn lock_all(&self) -> LockSet<'_> {
        self.lock_shards((0..self.inner.shards.len()).collect())
    }

    fn check_db(&self, db: usize) -> Result<()> {
        if db < self.inner.databases {
            Ok(())
        } else {
            Err(Error::db_index_out_of_range())
        }
    }

    /// Runs `f` on the part of database `db` that holds `key`.
    pub(crate) fn with_db<R>(
        &self,
        db: usize,
        key: &[u8],
        f: impl FnOnce(&mut Db, u64) -> R,
    ) -> Result<R> {
        self.check_db(db)?;
        let now = self.now_ms();
        let mut shard = self.lock_shard_counted(self.shard_index(key));
        Ok(f(shard.db(db), now))
    }

    /// The string value of `key`; `WRONGTYPE` if it holds another type.
    pub fn get(&self, db: usize, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(db, key, <[u8]>::to_vec)
    }

    /// Copies the string value of `key` into `buf` (cleared first) and
    /// returns whether the key exists; `WRONGTYPE` as [`Store::get`]. With
    /// one buffer reused across calls, a hit costs no allocation and free,
    /// an eighth of [`Store::get`]'s time in the criterion bench.
    ///
    /// ```
    /// let store = larder::Store::new();
    /// store.set(0, b"k", b"hello").unwrap();
    /// let mut buf = Vec::new();
    /// assert!(store.get_into(0, b"k", &mut buf).unwrap());
    /// assert_eq!(buf, b"hello");
    /// assert!(!store.get_into(0, b"missing", &mut buf).unwrap());
    /// assert!(buf.is_empty());
    /// ```
    pub fn get_into(&self, db: usize, key: &[u8], buf: &mut Vec<u8>) -> Result<bool> {
        buf.clear();
        let found = self.get_with(db, key, |value| buf.extend_from_slice(value))?;
        Ok(found.is_some())
    }

    /// Runs `read` on the string value of `key` where it is stored, without
    /// copying it, and returns what `read` returns; `WRONGTYPE` if the key
    /// holds another type. `read` runs under the key's shard lock: keep it
    /// short, and do not call the store from it (that would deadlock).
    ///
    /// ```
    /// let store = larder::Store::new();
    /// store.set(0, b"k", b"hello").unwrap();
    /// assert_eq!(store.get_with(0, b"k", |v| v.len()).unwrap(), Some(5));
    /// ```
    pub fn get_with<R>(
        &self,
        db: usize,
        key: &[u8],
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        self.check_db(db)?;
        let hash = keymap::key_hash(key);
        let shard = self.read_shard_guard(self.shard_of_hash(hash));
        match shard
            .db_ref(db)
            .get_reading_clock(key, hash, &self.inner.clock)
        {
            None => Ok(None),
            Some(entry) => match entry.value() {
                ValueRef::Str(s) => Ok(Some(read(s))),
                _ => Err(Error::wrong_type()),
            },
        }
    }

    /// Sets `key` to a string, removing any TTL (like SET).
    pub fn set(&self, db: usize, key: &[u8], value: &[u8]) -> Result<()> {
        self.with_db(db, key, |d, now| {
            d.insert_str(key, value, None, now);
        })
    }

    /// Sets `key` to a string that expires after `ttl` (like SET ... PX).
    pub fn set_with_ttl(&self, db: usize, key: &[u8], value: &[u8], ttl: Duration) -> Result<()> {
        self.with_db(db, key, |d, now| {
            let at = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
            d.insert_str(key, value, Some(at), now);
        })
    }

    /// Deletes `key`; true if it existed.
    pub fn del(&self, db: usize, key: &[u8]) -> Result<bool> {
        self.with_db(db, key, |d, now| d.remove(key, now).is_some())
    }

    pub fn exists(&self, db: usize, key: &[u8]) -> Result<bool> {
        self.with_db(db, key, |d, now| d.contains(key, now))
    }

    /// Gives `key` a TTL; false if it does not exist.
    pub fn expire(&self, db: usize, key: &[u8], ttl: Duration) -> Result<bool> {
        self.with_db(db, key, |d, now| {
            let at = now.saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
            d.set_expiry(key, Some(at), now)
        })
    }

    /// Removes the TTL of `key`; true if it had one.
    pub fn persist(&self, db: usize, key: &[u8]) -> Result<bool> {
        self.with_db(db, key, |d, now| {
            let had_ttl = d.get(key, now).is_some_and(|e| e.expires_at().is_some());
            had_ttl && d.set_expiry(key, None, now)
        })
    }

    pub fn ttl(&self, db: usize, key: &[u8]) -> Result<Ttl> {
        self.with_db(db, key, |d, now| {
            match d.get(key, now).map(Entry::expires_at) {
                None => Ttl::Missing,
                Some(None) => Ttl::Persistent,
                Some(Some(at)) => Ttl::Expires(Duration::from_millis(at.saturating_sub(now))),
            }
        })
    }

    /// Adds `delta` to the integer stored at `key` (missing counts as 0).
    pub fn incr_by(&self, db: usize, key: &[u8], delta: i64) -> Result<i64> {
        self.with_db(db, key, |d, now| ops::incr_by(d, key, delta, now))?
    }

    /// Number of keys in database `db`.
    pub fn dbsize(&self, db: usize) -> Result<usize> {
        self.check_db(db)?;
        Ok((0..self.shard_count())
            .map(|index| self.read_shard_guard(index).db_ref(db).len())
            .sum())
    }

    /// Removes every key of database `db`, atomically for other clients
    /// (as FLUSHDB SYNC: the keys are detached under every shard lock and
    /// freed after the locks are released).
    pub fn flush_db(&self, db: usize) -> Result<()> {
        self.check_db(db)?;
        let removed = self.lock_all().clear_db(db);
        self.free_removed(removed, false);
        Ok(())
    }

    /// Removes every key of every database, atomically for other clients
    /// (as FLUSHALL SYNC).
    pub fn flush_all(&self) {
        let removed = self.lock_all().clear_all_dbs();
        self.free_removed(removed, false);
    }

    /// Frees what [`LockSet::clear_db`] or [`LockSet::clear_all_dbs`]
    /// detached; call it after releasing the locks. `background`: on the
    /// lazyfree thread (FLUSHALL ASYNC), counted in
    /// [`Store::lazyfree_stats`]; otherwise here, before returning.
    pub fn free_removed(&self, removed: Vec<RemovedContents>, background: bool) {
        let keys: usize = removed.iter().map(RemovedContents::keys).sum();
        if keys == 0 {
            return;
        }
        if background {
            lazyfree::free_in_background(Box::new(removed), keys as u64, &self.inner.lazyfree);
        } else {
            lazyfree::free_now(removed, keys);
        }
    }

    /// Frees a value a command removed (DEL, UNLINK); call it after
    /// releasing the locks. `background` (UNLINK, or DEL under
    /// `lazyfree-lazy-user-del`): a value of more than
    /// [`lazyfree::LAZYFREE_THRESHOLD`] elements is freed on the lazyfree
    /// thread; otherwise here, before returning.
    pub fn free_value(&self, value: Value, background: bool) {
        if background {
            lazyfree::free_value_async(value, &self.inner.lazyfree);
        } else {
            let effort = lazyfree::free_effort(value.view());
            lazyfree::free_now(value, effort);
        }
    }

    /// INFO's `lazyfree_pending_objects` and `lazyfreed_objects`.
    pub fn lazyfree_stats(&self) -> &LazyFreeStats {
        &self.inner.lazyfree
    }

    /// Starts reporting committed changes to `observer` (write-behind):
    /// from now on every database part keeps its pending keys, coalesced,
    /// until [`Store::drain_changes`] takes them. Changes made before are
    /// not reported.
    pub fn observe_changes(&self, observer: Arc<dyn ChangeObserver>) {
        let mut all = self.lock_all();
        for (_, shard) in all.shards_mut() {
            shard.observe_changes(observer.clone());
        }
    }

    /// Signals what happens to keys (see [`signals`]) to `signals`'
    /// listener, from now on.
    pub fn listen(&self, signals: KeySignals) {
        let mut all = self.lock_all();
        for (_, shard) in all.shards_mut() {
            shard.listen(signals.clone());
        }
    }

    /// Takes up to `max` pending changes of database `db` in shard `shard`
    /// out, under that shard's lock, handing each to `f` with the key's
    /// current entry. Returns how many were taken.
    pub fn drain_changes(
        &self,
        shard: usize,
        db: usize,
        max: usize,
        f: impl FnMut(Key, Pending, Option<&Entry>),
    ) -> usize {
        if db >= self.inner.databases || shard >= self.inner.shards.len() {
            return 0;
        }
        // A part never created has nothing pending: do not create it.
        match self.inner.shards.get(shard).lock().existing_db_mut(db) {
            Some(part) => part.drain_changes(max, f),
            None => 0,
        }
    }
}

/// Where shard `index` is among `guards` (ascending by shard), or an
/// error if it was not taken: a command reached a shard it did not lock.
fn held_position<G>(guards: &[(usize, G)], index: usize) -> Result<usize> {
    guards
        .binary_search_by_key(&index, |(i, _)| *i)
        .map_err(|_| Error::err("internal error: shard accessed without its lock"))
}

/// Takes the shards `indexes` (ascending, no duplicates) with `try_take`,
/// never waiting for one while holding others: if one is not to be had,
/// what was taken is released, that shard is waited for alone (`take`) and
/// released, and taking starts over. Neither readers nor writers then wait
/// while holding a shard, so a script may wait for one out of order (see
/// [`LockSet::extend`]) without deadlock.
fn take_in_order<A, G>(
    indexes: &[usize],
    try_take: impl Fn(usize) -> Option<G>,
    take: impl Fn(usize) -> G,
) -> SmallVec<A>
where
    A: smallvec::Array<Item = (usize, G)>,
{
    'start_over: loop {
        let mut taken: SmallVec<A> = SmallVec::with_capacity(indexes.len());
        for &index in indexes {
            match try_take(index) {
                Some(guard) => taken.push((index, guard)),
                None if taken.is_empty() => taken.push((index, take(index))),
                None => {
                    drop(taken);
                    drop(take(index));
                    continue 'start_over;
                }
            }
        }
        return taken;
    }
}

/// Asks the CPU to start loading the cache line at `address` (a hint: no
/// read happens, an invalid address is harmless).
#[inline]
pub(crate) fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// A set of shard locks taken in ascending order, and access to the shards
/// they guard. Dropping it releases them.
pub struct LockSet<'s> {
    store: &'s Store,
    guards: SmallVec<[(usize, ShardGuard<'s, Shard>); 4]>,
}

impl<'s> LockSet<'s> {
    /// The shard holding `key`, if this set locked it.
    pub fn shard_for(&mut self, key: &[u8]) -> Result<&mut Shard> {
        let index = self.store.shard_index(key);
        self.shard(index)
    }

    /// Shard number `index`, if this set locked it.
    pub fn shard(&mut self, index: usize) -> Result<&mut Shard> {
        let position = held_position(&self.guards, index)?;
        Ok(&mut self.guards[position].1)
    }

    /// The part of database `db` that holds `key`.
    pub fn db(&mut self, db: usize, key: &[u8]) -> Result<&mut Db> {
        if db >= self.store.databases() {
            return Err(Error::db_index_out_of_range());
        }
        Ok(self.shard_for(key)?.db(db))
    }

    /// The shard holding `key`, to read, if this set locked it.
    pub fn shard_ref(&self, key: &[u8]) -> Result<&Shard> {
        let position = held_position(&self.guards, self.store.shard_index(key))?;
        Ok(&self.guards[position].1)
    }

    /// The part of database `db` that holds `key`, to read (several at
    /// once); `None` if that part was never created (it holds no key).
    pub fn db_ref(&self, db: usize, key: &[u8]) -> Result<Option<&Db>> {
        if db >= self.store.databases() {
            return Err(Error::db_index_out_of_range());
        }
        Ok(self.shard_ref(key)?.existing_db(db))
    }

    /// Whether this set holds the lock of `key`'s shard.
    pub fn covers(&self, key: &[u8]) -> bool {
        self.covers_shard(self.store.shard_index(key))
    }

    pub fn covers_shard(&self, index: usize) -> bool {
        self.guards
            .binary_search_by_key(&index, |(i, _)| *i)
            .is_ok()
    }

    /// The shard index of `key` (to ask [`LockSet::covers_shard`] or
    /// [`LockSet::extend`]).
    pub fn shard_index(&self, key: &[u8]) -> usize {
        self.store.shard_index(key)
    }

    /// How many shards the store has.
    pub fn shard_count(&self) -> usize {
        self.store.shard_count()
    }

    /// The indexes of the shards this set holds, ascending.
    pub fn shard_indexes(&self) -> Vec<usize> {
        self.guards.iter().map(|(index, _)| *index).collect()
    }

    /// Adds shard `index` to the set, out of ascending order (a script
    /// touching a key it did not declare). A shard above every one held is
    /// waited for; one below, for at most `patience`: its holder never
    /// waits for another shard while holding it ([`Store::lock_shards`]
    /// backs off), so it is only finishing a command, and the limit guards
    /// against code that would break that rule. Returns whether the set now
    /// holds it.
    pub fn extend(&mut self, index: usize, patience: std::time::Duration) -> bool {
        let position = match self.guards.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(_) => return true,
            Err(position) => position,
        };
        let shard = self.store.inner.shards.get(index);
        let guard = if position == self.guards.len() {
            Some(self.store.lock_shard_counted(index))
        } else {
            shard.try_lock_until(std::time::Instant::now() + patience)
        };
        match guard {
            Some(guard) => {
                self.guards.insert(position, (index, guard));
                true
            }
            None => false,
        }
    }

    /// Empties database `db` in every locked shard (FLUSHDB, under all the
    /// locks). The removed contents are returned so that the caller frees
    /// them after releasing the locks.
    #[must_use = "drop the removed contents outside the locks"]
    pub fn clear_db(&mut self, db: usize) -> Vec<RemovedContents> {
        self.shards_mut()
            .filter_map(|(_, shard)| shard.clear_db(db))
            .collect()
    }

    /// Empties every database of every locked shard (FLUSHALL); as
    /// [`LockSet::clear_db`].
    #[must_use = "drop the removed contents outside the locks"]
    pub fn clear_all_dbs(&mut self) -> Vec<RemovedContents> {
        self.shards_mut()
            .flat_map(|(_, shard)| shard.clear_all())
            .collect()
    }

    /// Every locked shard, in ascending order.
    pub fn shards_mut(&mut self) -> impl Iterator<Item = (usize, &mut Shard)> + use<'_, 's> {
        self.guards.iter_mut().map(|(i, g)| (*i, &mut **g))
    }

    pub fn store(&self) -> &'s Store {
        self.store
    }
}

/// Shards read together (MGET), taken by [`Store::read_keys`]. Dropping
/// it releases them.
pub struct ReadSet<'s> {
    store: &'s Store,
    guards: SmallVec<[(usize, ShardReadGuard<'s, Shard>); 8]>,
}

impl<'s> ReadSet<'s> {
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// The shard holding `key`, if this set holds it.
    pub fn shard_ref(&self, key: &[u8]) -> Result<&Shard> {
        let position = held_position(&self.guards, self.store.shard_index(key))?;
        Ok(&self.guards[position].1)
    }
}

#[cfg(test)]
mod shard_lock_wait_tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn only_an_acquisition_that_waits_is_counted() {
        let store = Store::new();
        drop(store.lock_keys([&b"k"[..]]));
        store.set(0, b"k", b"v").unwrap();
        assert_eq!(store.shard_lock_waits(), 0);
        let held = store.lock_keys([&b"k"[..]]);
        let waiter = {
            let store = store.clone();
            std::thread::spawn(move || drop(store.lock_keys([&b"k"[..]])))
        };
        // The wait is counted before it starts.
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.shard_lock_waits() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(store.shard_lock_waits(), 1);
        drop(held);
        waiter.join().unwrap();
        assert_eq!(store.get(0, b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(store.shard_lock_waits(), 1);
    }
}
