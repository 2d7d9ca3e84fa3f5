//! Eviction: keeping the keyspace under `maxmemory`, with Redis's policies.
//!
//! Before a command that may add data runs (one flagged `denyoom`),
//! [`Store::make_room`] compares [`crate::memory::used_memory`] with
//! `maxmemory` and, if it is over, evicts keys one at a time: it picks a
//! random shard, samples `maxmemory-samples` keys in each of its databases
//! (an O(1) pick each from the shard's dense entry vector) and evicts the
//! best victim under the policy — largest idle time (LRU), smallest LFU
//! counter (LFU), soonest expiry (TTL: exact, from the shard's expiry
//! index) or any (random). An expired key sampled on the way is always
//! taken first. One shard lock is held at a time, for one eviction;
//! entries are freed after the lock is released. The work per command is
//! bounded by time ([`EVICTION_TIME_LIMIT`], Redis's default of 500 µs): a
//! command that could not get under the limit in that time still runs and
//! the next ones continue — unless used memory is past [`hard_ceiling`]
//! (1/64 over the limit), where a command evicts until it is back under it
//! (for up to [`CEILING_TIME_LIMIT`], 10 ms; the server's connections do
//! that in slices, [`Store::evict_past_ceiling`]), so that writes faster
//! than eviction cannot push memory further. Only when there is nothing
//! left the policy may evict (noeviction, or no volatile key for a
//! volatile-* policy) does the check fail, and commands flagged `denyoom`
//! are refused with Redis's OOM error; that outcome is remembered for
//! [`EXHAUSTED_RECHECK`] (10 ms), so that while it lasts commands do not
//! each lock every shard looking for a victim.
//!
//! Reads never evict (Redis makes every command evict): the server's
//! background thread does, in slices of [`EVICTION_SLICE`], for as long
//! as memory is over the limit ([`Store::evict_in_background`], Redis's
//! eviction time proc). So a `maxmemory` lowered far below the used memory
//! is reached without a write, and a reader never waits for a mass
//! eviction: with a million keys and `maxmemory` halved, a GET evicting
//! for its 10 ms past the ceiling made other clients' GETs wait up to
//! 20–47 ms (examples/background_stalls.rs).
//!
//! Keys whose write-behind change PostgreSQL has not confirmed yet (the
//! PENDING bit, see `store::changes`) are never evicted: their value would
//! only move to the change tracker's side map, freeing nothing, and the
//! cache would empty itself while staying full. Eviction takes clean keys
//! only; when the keys it meets are all unflushed, [`Store::make_room`]
//! says so ([`Room::FullOfUnflushed`]), and the command layer refuses
//! writes to written-behind keys with write-behind's backpressure error
//! (other writes get the OOM error, reads go on).

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::keymap;
use super::value::{Entry, Key, LFU_INIT_VAL};
use super::Store;

/// The longest a command spends evicting before it runs anyway.
pub const EVICTION_TIME_LIMIT: Duration = Duration::from_micros(500);

/// The longest a command spends evicting past [`hard_ceiling`]: enough to
/// evict thousands of keys, so that no stream of writes outruns it, but
/// bounded, so that memory held by something eviction cannot free (a huge
/// client buffer) does not make one command evict the whole keyspace.
pub const CEILING_TIME_LIMIT: Duration = Duration::from_millis(10);

/// The longest one call of [`Store::evict_in_background`] or
/// [`Store::evict_past_ceiling`] evicts: short, so that the background
/// thread's other duties (active expiry), or the other connections of a
/// runtime thread, go on between slices.
pub const EVICTION_SLICE: Duration = Duration::from_millis(1);

/// Past this much used memory, a command evicts until it is back under it,
/// for up to [`CEILING_TIME_LIMIT`]: when writes come faster than
/// [`EVICTION_TIME_LIMIT`] per command can evict, memory would otherwise
/// keep growing past `maxmemory`. 1/64 over the limit (1.6 MiB per 100 MiB).
pub fn hard_ceiling(maxmemory: u64) -> u64 {
    maxmemory.saturating_add(maxmemory / 64)
}

/// Redis's `maxmemory-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    /// Larder's own: S3-FIFO per shard (see `store::s3fifo`).
    AllKeysS3Fifo,
}

impl Policy {
    /// Every policy, in the order Redis lists them in its error message.
    /// Then Larder's own.
    pub const ALL: [Policy; 9] = [
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
        Policy::AllKeysLru,
        Policy::AllKeysLfu,
        Policy::AllKeysRandom,
        Policy::NoEviction,
        Policy::AllKeysS3Fifo,
    ];

    /// The redis.conf name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllKeysLru => "allkeys-lru",
            Policy::AllKeysLfu => "allkeys-lfu",
            Policy::AllKeysRandom => "allkeys-random",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
            Policy::AllKeysS3Fifo => "allkeys-s3fifo",
        }
    }

    /// Parses a name, case-insensitively as Redis does.
    pub fn parse(name: &str) -> Option<Policy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Only keys with a TTL may be evicted.
    pub fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    /// An LFU policy: OBJECT FREQ works, OBJECT IDLETIME does not.
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }
}

/// The memory settings eviction follows (`maxmemory` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Bytes; 0: no limit.
    pub maxmemory: u64,
    pub policy: Policy,
    /// Keys sampled per eviction, per database (`maxmemory-samples`).
    pub samples: u32,
    /// `lfu-log-factor`: how many hits it takes to raise the counter.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time`: minutes per decrement of an idle key's counter.
    pub lfu_decay_time: u32,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
        }
    }
}

/// Why a sampled candidate was not evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stale {
    /// It is gone, or no longer evictable under the policy.
    Gone,
    /// It got an unflushed write-behind change since it was sampled.
    Unflushed,
}

/// Candidates kept between evictions (Redis's `EVPOOL_SIZE`).
pub const POOL_SIZE: usize = 16;

/// A key that may be evicted, and how good a victim it is.
#[derive(Debug)]
pub(super) struct Candidate {
    score: u64,
    shard: usize,
    db: usize,
    key: Key,
    /// The key's hash, compared before the key: every sample is checked
    /// against every candidate in the pool, whose keys often have the same
    /// length and so would each cost a memcmp.
    hash: u64,
}

/// The best candidates seen so far, for the policy they were scored under.
#[derive(Debug, Default)]
pub(super) struct EvictionPool {
    policy: Policy,
    best: Vec<Candidate>,
    /// Set when a search found nothing `policy` may evict: until then,
    /// [`Store::make_room`] reports that outcome without searching again.
    /// Without it, every command (reads too) run while over the limit with
    /// nothing evictable would lock every shard in turn.
    exhausted: Option<(Policy, Instant, Room)>,
}

/// How long "nothing left to evict" is believed before searching again (a
/// key that gets a TTL meanwhile becomes evictable after at most this).
pub const EXHAUSTED_RECHECK: Duration = Duration::from_millis(10);

/// What [`Store::make_room`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Under the limit (or no limit), or eviction is under way.
    Ok,
    /// Over the limit and nothing left that the policy may evict: refuse
    /// commands that would use more memory.
    OutOfMemory,
    /// Over the limit, and every key the policy could evict holds a
    /// write-behind change PostgreSQL has not confirmed (evicting it would
    /// free nothing): refuse writes to written-behind keys with the
    /// backpressure error, other commands that would use more memory with
    /// the OOM error.
    FullOfUnflushed,
}

/// What one eviction attempt achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eviction {
    Evicted,
    /// Nothing evicted: the only candidates met were unflushed keys.
    OnlyUnflushed,
    /// Nothing the policy may evict.
    Nothing,
}

/// The score of a key eviction must leave alone: an unflushed write-behind
/// change (see the module docs). Every other key scores above it.
const UNEVICTABLE: u64 = 0;

// The LFU parameters are read on every key access, where there is no handle
// on the configuration: they are process-wide, set from the limits each
// time a server checks memory (several servers in one process share them).
static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// Sets the process-wide LFU parameters (see [`MemoryLimits`]).
pub fn set_lfu_params(log_factor: u32, decay_time: u32) {
    if LFU_LOG_FACTOR.load(Ordering::Relaxed) != log_factor {
        LFU_LOG_FACTOR.store(log_factor, Ordering::Relaxed);
    }
    if LFU_DECAY_TIME.load(Ordering::Relaxed) != decay_time {
        LFU_DECAY_TIME.store(decay_time, Ordering::Relaxed);
    }
}

pub(super) fn lfu_decay_time() -> u32 {
    LFU_DECAY_TIME.load(Ordering::Relaxed)
}

/// Redis's `LFULogIncr`: the higher the counter, the less likely a hit
/// raises it.
pub(super) fn lfu_log_incr(counter: u8) -> u8 {
    if counter == 255 {
        return 255;
    }
    let r = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
    // r < 1 / odds, without the division (every read of a key comes here).
    let odds = base * LFU_LOG_FACTOR.load(Ordering::Relaxed) as f64 + 1.0;
    if r * odds < 1.0 {
        counter + 1
    } else {
        counter
    }
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A fast per-thread pseudo-random number (xorshift64*), no allocation.
pub(super) fn random_u64() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        if x == 0 {
            // Seed from the thread's stack address and the time.
            let local = 0u8;
            x = (&local as *const u8 as u64)
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
                | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// How good a victim `entry` is under `policy`: higher is evicted first;
/// [`UNEVICTABLE`] for a key with an unflushed write-behind change (even
/// an expired one: its last value still has to reach PostgreSQL, so
/// removing it frees nothing).
pub(super) fn score(policy: Policy, entry: &Entry, now_ms: u64) -> u64 {
    if entry.is_pending() {
        return UNEVICTABLE;
    }
    if entry.is_expired(now_ms) {
        return u64::MAX;
    }
    let score = match policy {
        Policy::AllKeysLru | Policy::VolatileLru => entry.idle_secs(now_ms),
        Policy::AllKeysLfu | Policy::VolatileLfu => 255 - entry.frequency(now_ms) as u64,
        Policy::VolatileTtl => {
            (u64::MAX - 2).saturating_sub(entry.expires_at().unwrap_or(u64::MAX - 2))
        }
        Policy::AllKeysRandom
        | Policy::VolatileRandom
        | Policy::NoEviction
        | Policy::AllKeysS3Fifo => 0,
    };
    // Above UNEVICTABLE, below an expired key's u64::MAX.
    score.saturating_add(1).min(u64::MAX - 1)
}

/// Whether `key` of `db` holds an unflushed write-behind change (whether
/// or not its TTL passed: `peek` at time 0 sees every entry).
fn holds_unflushed(db: &super::Db, key: &[u8]) -> bool {
    db.peek(key, 0).is_some_and(Entry::is_pending)
}

impl Store {
    /// Gets the used memory back under `limits.maxmemory` if it is over, by
    /// evicting keys under `limits.policy` for at most
    /// [`EVICTION_TIME_LIMIT`] (see the module docs). Call it before a
    /// command that may use memory, without holding shard locks.
    pub fn make_room(&self, limits: &MemoryLimits) -> Room {
        self.make_room_with(limits, crate::memory::used_memory)
    }

    /// [`Store::make_room`] with `used` as the measure of used memory.
    fn make_room_with(&self, limits: &MemoryLimits, used: impl Fn() -> u64) -> Room {
        let ceiling = hard_ceiling(limits.maxmemory);
        self.evict_while_over(limits, limits.maxmemory, used, |now_used| {
            if now_used <= ceiling {
                EVICTION_TIME_LIMIT
            } else {
                CEILING_TIME_LIMIT
            }
        })
    }

    /// Applies what every command must see at once, evicting or not: the
    /// LFU parameters and whether S3-FIFO tracks keys.
    pub fn apply_memory_settings(&self, limits: &MemoryLimits) {
        set_lfu_params(limits.lfu_log_factor, limits.lfu_decay_time);
        self.track_s3fifo(limits.policy == Policy::AllKeysS3Fifo);
    }

    /// Eviction off the clients' path, as Redis's eviction time proc: the
    /// server's background thread calls it every cycle. While used memory
    /// is over `limits.maxmemory` it evicts for up to
    /// [`EVICTION_SLICE`] and returns true if memory is still over and
    /// there is more to evict (call again soon). Write commands still
    /// evict what they need first ([`Store::make_room`]); reads never
    /// evict, so no reader waits for a mass eviction (a `maxmemory`
    /// lowered far below the used memory).
    pub fn evict_in_background(&self, limits: &MemoryLimits) -> bool {
        self.evict_in_background_with(limits, crate::memory::used_memory)
    }

    fn evict_in_background_with(&self, limits: &MemoryLimits, used: impl Fn() -> u64) -> bool {
        self.evict_slice(limits, limits.maxmemory, used)
    }

    /// Whether memory is past [`hard_ceiling`], where a write command
    /// would evict for up to [`CEILING_TIME_LIMIT`] before it runs; the
    /// server's connections call [`Store::evict_past_ceiling`] first,
    /// letting the other connections of their thread run between slices.
    pub fn past_ceiling(&self, limits: &MemoryLimits) -> bool {
        limits.maxmemory > 0
            && limits.policy != Policy::NoEviction
            && crate::memory::used_memory() > hard_ceiling(limits.maxmemory)
    }

    /// Evicts for up to [`EVICTION_SLICE`] while memory is past
    /// [`hard_ceiling`]; true if it still is and there is more to evict.
    pub fn evict_past_ceiling(&self, limits: &MemoryLimits) -> bool {
        self.evict_slice(
            limits,
            hard_ceiling(limits.maxmemory),
            crate::memory::used_memory,
        )
    }

    /// Evicts for up to [`EVICTION_SLICE`] while `used()` is over `target`;
    /// true if it still is and there is more to evict.
    fn evict_slice(&self, limits: &MemoryLimits, target: u64, used: impl Fn() -> u64) -> bool {
        self.evict_while_over(limits, target, &used, |_| EVICTION_SLICE) == Room::Ok
            && limits.maxmemory > 0
            && used() > target
    }

    /// Evicts under `limits.policy` while `used()` is over `target` (and
    /// `limits.maxmemory` is set), for at most `time_limit(used)` (checked
    /// every 16 evictions).
    fn evict_while_over(
        &self,
        limits: &MemoryLimits,
        target: u64,
        used: impl Fn() -> u64,
        time_limit: impl Fn(u64) -> Duration,
    ) -> Room {
        self.apply_memory_settings(limits);
        if limits.maxmemory == 0 || used() <= target {
            return Room::Ok;
        }
        // As Redis 7.0 (isSafeToPerformEvictions): while clients are
        // paused the dataset stays as it is, and the command goes on as if
        // there were room (writes are held by the pause anyway).
        if self.expiry_paused(self.now_ms()) {
            return Room::Ok;
        }
        if limits.policy == Policy::NoEviction {
            return Room::OutOfMemory;
        }
        let started = Instant::now();
        let _cycle = EvictionCycle {
            store: self,
            started,
        };
        // Without waiting: if another command holds the pool, it is
        // evicting, so there was something to evict.
        if let Some(pool) = self.inner.eviction_pool.try_lock() {
            if let Some((policy, until, room)) = pool.exhausted {
                if policy == limits.policy && started < until {
                    return room;
                }
            }
        }
        let mut evicted = 0u64;
        loop {
            let room = match self.evict_one_or_why(limits) {
                Eviction::Evicted => Room::Ok,
                Eviction::OnlyUnflushed => Room::FullOfUnflushed,
                Eviction::Nothing => Room::OutOfMemory,
            };
            if room != Room::Ok {
                self.inner.eviction_pool.lock().exhausted =
                    Some((limits.policy, Instant::now() + EXHAUSTED_RECHECK, room));
                return room;
            }
            evicted += 1;
            let now_used = used();
            if now_used <= target {
                return Room::Ok;
            }
            if evicted.is_multiple_of(16) && started.elapsed() >= time_limit(now_used) {
                return Room::Ok;
            }
        }
    }

    /// Evicts one key. Random policies take a random key of the first shard
    /// (from a random start) that has one the policy may evict. The others
    /// work as Redis's eviction pool: `maxmemory-samples` keys of a random
    /// shard (per database) join a pool of the [`POOL_SIZE`] best candidates
    /// seen so far, and the best of the pool is evicted if it is still
    /// there. Keys with unflushed write-behind changes are never taken (see
    /// the module docs). False if no shard has a key the policy may evict.
    pub fn evict_one(&self, limits: &MemoryLimits) -> bool {
        self.evict_one_or_why(limits) == Eviction::Evicted
    }

    fn evict_one_or_why(&self, limits: &MemoryLimits) -> Eviction {
        let now = self.now_ms();
        let shards = self.shard_count();
        let policy = limits.policy;
        if policy == Policy::AllKeysS3Fifo {
            self.track_s3fifo(true);
            return self.evict_s3fifo(now);
        }
        let samples = limits.samples as usize;
        let random = matches!(policy, Policy::AllKeysRandom | Policy::VolatileRandom);
        let start = (random_u64() as usize) & (shards - 1);
        let mut met_unflushed = false;
        for step in 0..shards {
            let index = (start + step) & (shards - 1);
            let mut sampled: Vec<Candidate> = Vec::new();
            {
                let mut locks = self.lock_shard(index);
                let Ok(shard) = locks.shard(index) else {
                    continue;
                };
                for db in 0..shard.databases() {
                    // Random policies sample as many as the others, so
                    // that a clean key is found among unflushed ones.
                    shard
                        .db_ref(db)
                        .eviction_samples(policy, samples, now, &mut |score, key| {
                            if score == UNEVICTABLE {
                                met_unflushed = true;
                                return;
                            }
                            sampled.push(Candidate {
                                score,
                                shard: index,
                                db,
                                key: Key::from(key),
                                hash: keymap::key_hash(key),
                            })
                        });
                }
            }
            if random {
                // Expired keys first, as with the other policies.
                if let Some(expired) = sampled.iter().position(|c| c.score == u64::MAX) {
                    sampled.swap(0, expired);
                    sampled.truncate(1);
                }
                while !sampled.is_empty() {
                    let i = (random_u64() as usize) % sampled.len();
                    let candidate = sampled.swap_remove(i);
                    match self.evict_candidate(&candidate, policy, now) {
                        Ok(_) => return Eviction::Evicted,
                        Err(Stale::Unflushed) => met_unflushed = true,
                        Err(Stale::Gone) => {}
                    }
                }
                continue;
            }
            let mut pool = self.inner.eviction_pool.lock();
            if pool.policy != policy {
                pool.policy = policy;
                pool.best.clear();
            }
            for candidate in sampled {
                if let Some(same) = pool.best.iter_mut().find(|c| {
                    c.hash == candidate.hash && c.db == candidate.db && c.key == candidate.key
                }) {
                    same.score = candidate.score;
                } else {
                    pool.best.push(candidate);
                }
            }
            pool.best
                .sort_unstable_by_key(|c| std::cmp::Reverse(c.score));
            pool.best.truncate(POOL_SIZE);
            // Best first; stale entries (keys gone, or unflushed, since)
            // are dropped.
            while !pool.best.is_empty() {
                let candidate = pool.best.remove(0);
                match self.evict_candidate(&candidate, policy, now) {
                    Ok(entry) => {
                        // Freed after the pool's lock too: freeing a big
                        // value may return pages to the OS, and every
                        // evicting command waits for this lock.
                        drop(pool);
                        drop(entry);
                        return Eviction::Evicted;
                    }
                    Err(Stale::Unflushed) => met_unflushed = true,
                    Err(Stale::Gone) => {}
                }
            }
        }
        if met_unflushed {
            Eviction::OnlyUnflushed
        } else {
            Eviction::Nothing
        }
    }

    /// Makes every shard keep S3-FIFO queues, or stop keeping them, when
    /// the policy changed to or from `allkeys-s3fifo`. Turning them on
    /// queues the keys already there (O(keys), once per change).
    pub fn track_s3fifo(&self, on: bool) {
        if self.inner.s3fifo.load(Ordering::Relaxed) == on {
            return;
        }
        // Under the eviction pool's lock, so that two commands racing to
        // switch agree on the outcome.
        let _switch = self.inner.eviction_pool.lock();
        if self.inner.s3fifo.load(Ordering::Relaxed) == on {
            return;
        }
        for index in 0..self.shard_count() {
            let mut locks = self.lock_shard(index);
            if let Ok(shard) = locks.shard(index) {
                for db in 0..shard.databases() {
                    shard.db(db).track_s3fifo(on);
                }
            }
        }
        self.inner.s3fifo.store(on, Ordering::Relaxed);
    }

    /// S3-FIFO eviction: of two random shards, the one with more keys
    /// evicts its next victim (from its database with the most keys). Two
    /// choices keep shards balanced, where one random shard would let their
    /// sizes drift apart. Unflushed write-behind keys are passed over (see
    /// `store::s3fifo`).
    fn evict_s3fifo(&self, now: u64) -> Eviction {
        let shards = self.shard_count();
        let keys_in = |index: usize| -> (usize, usize) {
            let mut locks = self.lock_shard(index);
            let Ok(shard) = locks.shard(index) else {
                return (0, 0);
            };
            let mut total = 0;
            let mut biggest = (0, 0);
            for db in 0..shard.databases() {
                let len = shard.db_ref(db).len();
                total += len;
                if len > biggest.1 {
                    biggest = (db, len);
                }
            }
            (total, biggest.0)
        };
        let a = (random_u64() as usize) & (shards - 1);
        let b = (random_u64() as usize) & (shards - 1);
        let (len_a, db_a) = keys_in(a);
        let (len_b, db_b) = keys_in(b);
        let preferred = if len_b > len_a {
            [(b, db_b), (a, db_a)]
        } else {
            [(a, db_a), (b, db_b)]
        };
        // Both empty (or emptied since): any shard with a key. (An iterator,
        // not a list: this runs for every write past maxmemory.)
        let order = preferred
            .into_iter()
            .chain((0..shards).map(|i| ((a + i) & (shards - 1), usize::MAX)));
        // Keys were there but none could go: they are all unflushed.
        let mut met_keys = false;
        for (index, db) in order {
            let removed = {
                let mut locks = self.lock_shard(index);
                let Ok(shard) = locks.shard(index) else {
                    continue;
                };
                let databases: SmallVec<[usize; 4]> = if db == usize::MAX {
                    (0..shard.databases())
                        .filter(|&d| !shard.db_ref(d).is_empty())
                        .collect()
                } else {
                    smallvec::smallvec![db]
                };
                let mut removed = None;
                for db in databases {
                    met_keys |= !shard.db_ref(db).is_empty();
                    removed = shard.db(db).evict_s3fifo(now);
                    if removed.is_some() {
                        break;
                    }
                }
                removed
            };
            if let Some(entry) = removed {
                if entry.is_expired(now) {
                    self.inner
                        .expired_by_eviction
                        .fetch_add(1, Ordering::Relaxed);
                } else {
                    self.count_eviction(Policy::AllKeysS3Fifo);
                }
                // Freed here, after the shard lock was released.
                drop(entry);
                return Eviction::Evicted;
            }
        }
        if met_keys {
            Eviction::OnlyUnflushed
        } else {
            Eviction::Nothing
        }
    }

    /// Evicts `candidate` if it is still there (and evictable under
    /// `policy`, and not unflushed since it was sampled) and returns its
    /// entry, for the caller to free once it holds no lock.
    fn evict_candidate(
        &self,
        candidate: &Candidate,
        policy: Policy,
        now: u64,
    ) -> Result<Entry, Stale> {
        let removed = {
            let mut locks = self.lock_shard(candidate.shard);
            let Ok(shard) = locks.shard(candidate.shard) else {
                return Err(Stale::Gone);
            };
            let db = shard.db(candidate.db);
            if holds_unflushed(db, &candidate.key) {
                return Err(Stale::Unflushed);
            }
            db.evict(&candidate.key, policy.volatile_only())
        };
        let entry = removed.ok_or(Stale::Gone)?;
        if entry.is_expired(now) {
            self.inner
                .expired_by_eviction
                .fetch_add(1, Ordering::Relaxed);
        } else {
            self.count_eviction(policy);
        }
        Ok(entry)
    }

    fn count_eviction(&self, policy: Policy) {
        self.inner.evicted_keys.fetch_add(1, Ordering::Relaxed);
        if let Some(at) = Policy::ALL.iter().position(|&p| p == policy) {
            self.inner.evicted_by_policy[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Keys evicted since the start, by the policy that chose them (every
    /// policy of [`Policy::ALL`], in that order).
    pub fn evicted_keys_by_policy(&self) -> Vec<(Policy, u64)> {
        Policy::ALL
            .iter()
            .zip(&self.inner.evicted_by_policy)
            .map(|(&policy, count)| (policy, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// Keys evicted for `maxmemory` since the start (INFO's `evicted_keys`).
    pub fn evicted_keys(&self) -> u64 {
        self.inner.evicted_keys.load(Ordering::Relaxed)
    }

    /// Expired keys that eviction reclaimed on its way (they count as
    /// expired, not evicted, in INFO).
    pub fn expired_by_eviction(&self) -> u64 {
        self.inner.expired_by_eviction.load(Ordering::Relaxed)
    }

    /// CONFIG RESETSTAT's part for eviction counters.
    pub fn reset_eviction_stats(&self) {
        self.inner.evicted_keys.store(0, Ordering::Relaxed);
        for count in &self.inner.evicted_by_policy {
            count.store(0, Ordering::Relaxed);
        }
        self.inner.expired_by_eviction.store(0, Ordering::Relaxed);
    }
}

/// Reports an eviction cycle to the latency monitor (`eviction-cycle`)
/// however it ends, and publishes the memory it freed to the other threads.
struct EvictionCycle<'s> {
    store: &'s Store,
    started: Instant,
}

impl Drop for EvictionCycle<'_> {
    fn drop(&mut self) {
        crate::memory::publish_thread_delta();
        let monitor = self.store.latency();
        if monitor.is_on() {
            monitor
                .add_sample_if_needed("eviction-cycle", self.started.elapsed().as_millis() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Clock, StoreOptions, Value};

    fn store_at(ms: u64) -> (Store, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let (clock, handle) = Clock::manual(ms);
        let store = Store::with_options(StoreOptions {
            databases: 2,
            shards: 4,
            clock,
        });
        (store, handle)
    }

    fn limits(policy: Policy) -> MemoryLimits {
        MemoryLimits {
            maxmemory: 1,
            policy,
            samples: 5,
            ..MemoryLimits::default()
        }
    }

    #[test]
    fn policy_names_round_trip() {
        for policy in Policy::ALL {
            assert_eq!(Policy::parse(policy.name()), Some(policy));
            assert_eq!(
                Policy::parse(&policy.name().to_ascii_uppercase()),
                Some(policy)
            );
        }
        assert_eq!(Policy::parse("lru"), None);
    }

    #[test]
    fn volatile_policies_never_evict_persistent_keys() {
        for policy in [
            Policy::VolatileLru,
            Policy::VolatileLfu,
            Policy::VolatileRandom,
            Policy::VolatileTtl,
        ] {
            let (store, _) = store_at(1_000_000);
            for i in 0..50 {
                store.set(0, format!("p{i}").as_bytes(), b"v").unwrap();
            }
            for i in 0..5 {
                store
                    .set_with_ttl(
                        1,
                        format!("t{i}").as_bytes(),
                        b"v",
                        Duration::from_secs(100),
                    )
                    .unwrap();
            }
            for _ in 0..5 {
                assert!(store.evict_one(&limits(policy)), "{policy:?}");
            }
            assert!(!store.evict_one(&limits(policy)), "{policy:?}");
            assert_eq!(store.dbsize(0).unwrap(), 50, "{policy:?}");
            assert_eq!(store.dbsize(1).unwrap(), 0, "{policy:?}");
            assert_eq!(store.evicted_keys(), 5);
        }
    }

    #[test]
    fn evictions_are_counted_by_the_policy_that_chose_them() {
        let (store, _) = store_at(1_000_000);
        for i in 0..10 {
            store.set(0, format!("k{i}").as_bytes(), b"v").unwrap();
        }
        for _ in 0..3 {
            assert!(store.evict_one(&limits(Policy::AllKeysLru)));
        }
        for _ in 0..2 {
            assert!(store.evict_one(&limits(Policy::AllKeysRandom)));
        }
        let count = |policy| {
            store
                .evicted_keys_by_policy()
                .into_iter()
                .find(|(p, _)| *p == policy)
                .unwrap()
                .1
        };
        assert_eq!(count(Policy::AllKeysLru), 3);
        assert_eq!(count(Policy::AllKeysRandom), 2);
        assert_eq!(count(Policy::VolatileLru), 0);
        assert_eq!(store.evicted_keys(), 5);
        store.reset_eviction_stats();
        assert_eq!(count(Policy::AllKeysLru), 0);
    }

    #[test]
    fn background_eviction_goes_on_in_slices_until_under_the_limit() {
        let (store, _) = store_at(1_000_000);
        for i in 0..2000 {
            store.set(0, format!("k{i}").as_bytes(), b"v").unwrap();
        }
        let used = || store.dbsize(0).unwrap() as u64 * 1000;
        let mut limits = limits(Policy::AllKeysLru);
        limits.maxmemory = 500_000;
        let mut calls = 0;
        while store.evict_in_background_with(&limits, used) {
            calls += 1;
            assert!(calls < 10_000, "never got under the limit");
        }
        assert_eq!(store.dbsize(0).unwrap(), 500);
        assert_eq!(store.evicted_keys(), 1500);
        // Under the limit, and with nothing the policy may take: no work.
        assert!(!store.evict_in_background_with(&limits, used));
        limits.maxmemory = 1000;
        limits.policy = Policy::VolatileLru;
        assert!(!store.evict_in_background_with(&limits, used));
        assert_eq!(store.dbsize(0).unwrap(), 500);
    }

    #[test]
    fn past_the_hard_ceiling_the_time_limit_does_not_apply() {
        let (store, _) = store_at(1_000_000);
        for i in 0..200 {
            store.set(0, format!("k{i}").as_bytes(), b"v").unwrap();
        }
        // 1000 bytes a key, and measuring is slow: the time limit passes
        // after a few dozen evictions.
        let used = || {
            let started = Instant::now();
            while started.elapsed() < Duration::from_micros(20) {}
            store.dbsize(0).unwrap() as u64 * 1000
        };
        let limits = MemoryLimits {
            maxmemory: 100_000,
            ..limits(Policy::AllKeysRandom)
        };
        assert_eq!(store.make_room_with(&limits, used), Room::Ok);
        let left = store.dbsize(0).unwrap() as u64;
        assert!(left * 1000 <= hard_ceiling(100_000), "{left} keys left");
        // Under the ceiling but over the limit: the time limit applies.
        for i in 0..5 {
            store.set(0, format!("n{i}").as_bytes(), b"v").unwrap();
        }
        let before = store.dbsize(0).unwrap();
        let slow = || {
            std::thread::sleep(Duration::from_micros(100));
            101_000
        };
        assert_eq!(store.make_room_with(&limits, slow), Room::Ok);
        assert_eq!(store.dbsize(0).unwrap(), before - 16);
    }

    #[test]
    fn memory_eviction_cannot_free_does_not_empty_the_keyspace_at_once() {
        let (store, _) = store_at(1_000_000);
        for i in 0..20_000 {
            store.set(0, format!("k{i}").as_bytes(), b"v").unwrap();
        }
        // Far over the limit whatever is evicted (a huge client buffer).
        let stuck = || u64::MAX / 2;
        let limits = MemoryLimits {
            maxmemory: 1000,
            ..limits(Policy::AllKeysLru)
        };
        let started = Instant::now();
        assert_eq!(store.make_room_with(&limits, stuck), Room::Ok);
        assert!(started.elapsed() < CEILING_TIME_LIMIT * 20);
        assert!(store.dbsize(0).unwrap() > 0);
    }

    #[test]
    fn nothing_to_evict_is_remembered_briefly() {
        let (store, _) = store_at(1_000_000);
        for i in 0..20 {
            store.set(0, format!("p{i}").as_bytes(), b"v").unwrap();
        }
        let limits = limits(Policy::VolatileLru);
        let over = || u64::MAX;
        assert_eq!(store.make_room_with(&limits, over), Room::OutOfMemory);
        store
            .set_with_ttl(0, b"t", b"v", Duration::from_secs(100))
            .unwrap();
        // Believed exhausted for a moment: no search, the key stays.
        assert_eq!(store.make_room_with(&limits, over), Room::OutOfMemory);
        assert!(store.exists(0, b"t").unwrap());
        // Another policy searches at once.
        assert_eq!(
            store.make_room_with(
                &MemoryLimits {
                    policy: Policy::VolatileTtl,
                    ..limits
                },
                over
            ),
            Room::OutOfMemory
        );
        assert!(!store.exists(0, b"t").unwrap());
        store
            .set_with_ttl(0, b"t", b"v", Duration::from_secs(100))
            .unwrap();
        std::thread::sleep(EXHAUSTED_RECHECK * 2);
        assert_eq!(store.make_room_with(&limits, over), Room::OutOfMemory);
        assert!(!store.exists(0, b"t").unwrap());
        assert_eq!(store.dbsize(0).unwrap(), 20);
    }

    #[test]
    fn volatile_ttl_takes_the_soonest_expiry_first() {
        let (store, _) = store_at(1_000_000);
        for i in 0..40u64 {
            store
                .set_with_ttl(
                    0,
                    format!("k{i}").as_bytes(),
                    b"v",
                    Duration::from_secs(10 + i),
                )
                .unwrap();
        }
        for _ in 0..10 {
            assert!(store.evict_one(&limits(Policy::VolatileTtl)));
        }
        // Each eviction takes the soonest-expiring key of a random shard:
        // the evicted ones are among the soonest overall.
        let evicted: Vec<u64> = (0..40u64)
            .filter(|i| !store.exists(0, format!("k{i}").as_bytes()).unwrap())
            .collect();
        assert_eq!(evicted.len(), 10);
        let mean = evicted.iter().sum::<u64>() as f64 / 10.0;
        assert!(mean < 15.0, "{evicted:?}");
    }

    #[test]
    fn expired_keys_go_before_live_ones() {
        let (store, clock) = store_at(1_000_000);
        for i in 0..20 {
            store.set(0, format!("p{i}").as_bytes(), b"v").unwrap();
        }
        store
            .set_with_ttl(0, b"gone", b"v", Duration::from_millis(10))
            .unwrap();
        clock.store(1_000_100, Ordering::Relaxed);
        assert!(store.evict_one(&limits(Policy::VolatileLru)));
        assert_eq!(store.expired_by_eviction(), 1);
        assert_eq!(store.evicted_keys(), 0);
        assert!(!store.evict_one(&limits(Policy::VolatileLru)));
    }

    #[test]
    fn lru_prefers_idle_keys() {
        let (store, clock) = store_at(1_000_000);
        for i in 0..200 {
            store.set(0, format!("k{i}").as_bytes(), b"v").unwrap();
        }
        clock.store(1_010_000, Ordering::Relaxed);
        for i in 0..100 {
            store.get(0, format!("k{i}").as_bytes()).unwrap();
        }
        for _ in 0..60 {
            assert!(store.evict_one(&limits(Policy::AllKeysLru)));
        }
        let hot_left = (0..100)
            .filter(|i| store.exists(0, format!("k{i}").as_bytes()).unwrap())
            .count();
        assert!(hot_left >= 85, "{hot_left}");
    }

    #[test]
    fn lfu_prefers_rarely_read_keys() {
        let (store, _) = store_at(1_000_000);
        for i in 0..200 {
            store.set(0, format!("k{i}").as_bytes(), b"v").unwrap();
        }
        for _ in 0..50 {
            for i in 0..100 {
                store.get(0, format!("k{i}").as_bytes()).unwrap();
            }
        }
        for _ in 0..60 {
            assert!(store.evict_one(&limits(Policy::AllKeysLfu)));
        }
        let hot_left = (0..100)
            .filter(|i| store.exists(0, format!("k{i}").as_bytes()).unwrap())
            .count();
        assert!(hot_left >= 85, "{hot_left}");
    }

    #[test]
    fn s3fifo_evicts_unread_keys_and_switches_at_run_time() {
        let (store, _) = store_at(1_000_000);
        // Keys present before the switch are queued when it happens.
        for i in 0..100 {
            store.set(0, format!("old{i}").as_bytes(), b"v").unwrap();
        }
        store.track_s3fifo(true);
        for i in 0..100 {
            store.get(0, format!("old{i}").as_bytes()).unwrap();
        }
        for i in 0..200 {
            store.set(0, format!("new{i}").as_bytes(), b"v").unwrap();
        }
        for _ in 0..150 {
            assert!(store.evict_one(&limits(Policy::AllKeysS3Fifo)));
        }
        let old_left = (0..100)
            .filter(|i| store.exists(0, format!("old{i}").as_bytes()).unwrap())
            .count();
        assert!(old_left >= 95, "{old_left}");
        assert_eq!(store.evicted_keys(), 150);
        while store.evict_one(&limits(Policy::AllKeysS3Fifo)) {}
        assert_eq!(store.dbsize(0).unwrap(), 0);
        // And back: the queues are dropped, other policies work.
        store.track_s3fifo(false);
        store.set(0, b"k", b"v").unwrap();
        assert!(store.evict_one(&limits(Policy::AllKeysLru)));
    }

    /// Follows every key but those starting with `c` (clean keys).
    struct FollowsAllButC(std::sync::atomic::AtomicU64);

    impl crate::store::ChangeObserver for FollowsAllButC {
        fn observes(&self, _db: usize, key: &[u8]) -> bool {
            key.first() != Some(&b'c')
        }
        fn next_version(&self) -> u64 {
            self.0.fetch_add(1, Ordering::SeqCst) + 1
        }
        fn pending_added(&self) {}
        fn pending_dropped(&self, _count: usize) {}
        fn flushed(&self, _db: usize, _version: u64) {}
    }

    #[test]
    fn unflushed_keys_are_never_evicted_and_reported_when_only_they_are_left() {
        for policy in [
            Policy::AllKeysLru,
            Policy::AllKeysLfu,
            Policy::AllKeysRandom,
            Policy::AllKeysS3Fifo,
            Policy::VolatileLru,
            Policy::VolatileTtl,
        ] {
            let (store, _) = store_at(1_000_000);
            store.observe_changes(std::sync::Arc::new(FollowsAllButC(Default::default())));
            let ttl = Duration::from_secs(100);
            for i in 0..40 {
                store
                    .set_with_ttl(0, format!("p{i}").as_bytes(), b"v", ttl)
                    .unwrap();
            }
            for i in 0..5 {
                store
                    .set_with_ttl(1, format!("c{i}").as_bytes(), b"v", ttl)
                    .unwrap();
            }
            let limits = limits(policy);
            for _ in 0..5 {
                assert!(store.evict_one(&limits), "{policy:?}");
            }
            assert_eq!(store.dbsize(1).unwrap(), 0, "{policy:?}");
            assert!(!store.evict_one(&limits), "{policy:?}");
            assert_eq!(store.dbsize(0).unwrap(), 40, "{policy:?}");
            assert_eq!(
                store.make_room_with(&limits, || u64::MAX),
                Room::FullOfUnflushed,
                "{policy:?}"
            );
            // Once flushed (drained), the keys are clean and evictable.
            for shard in 0..store.shard_count() {
                store.drain_changes(shard, 0, 1000, |_, _, _| {});
            }
            assert!(store.evict_one(&limits), "{policy:?}");
            assert_eq!(store.dbsize(0).unwrap(), 39, "{policy:?}");
        }
        // Nothing at all to evict is still out of memory.
        let (store, _) = store_at(1_000_000);
        store.observe_changes(std::sync::Arc::new(FollowsAllButC(Default::default())));
        assert_eq!(
            store.make_room_with(&limits(Policy::AllKeysLru), || u64::MAX),
            Room::OutOfMemory
        );
    }

    #[test]
    fn overwrite_keeps_the_lfu_counter() {
        let (store, _) = store_at(1_000_000);
        store.set(0, b"k", b"v").unwrap();
        for _ in 0..2000 {
            store.get(0, b"k").unwrap();
        }
        store.set(0, b"k", b"w").unwrap();
        let mut locks = store.lock_keys([&b"k"[..]]);
        let entry = locks.db(0, b"k").unwrap().peek(b"k", store.now_ms());
        assert!(entry.is_some_and(|e| e.frequency(store.now_ms()) > LFU_INIT_VAL + 3));
        assert_eq!(
            entry.map(|e| e.value().to_owned()),
            Some(Value::Str(b"w".to_vec()))
        );
    }
}
