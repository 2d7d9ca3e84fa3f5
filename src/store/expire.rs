//! Active expiry: reclaiming keys whose TTL passed even if nobody reads them,
//! and hash fields whose TTL passed (Redis 7.4 hash field expiration).
//!
//! Each shard keeps its volatile keys ordered by expiry time, and its hashes
//! with field TTLs ordered by their earliest field expiry, so a cycle only
//! visits what is actually due. Work is bounded per lock hold so that no
//! client waits long behind it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::shard::ExpiredCounts;
use super::Store;

/// While CLIENT PAUSE (WRITE or ALL) is in force the dataset stays as it
/// is, as in Redis 7.0: active expiry and eviction delete nothing, and a
/// read of a key past its TTL answers as if it were gone without reclaiming
/// or announcing it (DBSIZE still counts it). Holds the store-clock time
/// the pause ends at (0: none); shared by the store and every part, so a
/// check is one load.
#[derive(Debug, Clone, Default)]
pub struct ExpiryPause(Arc<AtomicU64>);

impl ExpiryPause {
    /// Whether keys must stay at `now_ms`.
    #[inline]
    pub fn paused(&self, now_ms: u64) -> bool {
        now_ms < self.0.load(Ordering::Relaxed)
    }
}

/// Keys (and, separately, hash fields) reclaimed per shard per lock hold: at
/// well under a microsecond each, a lock is never held for more than a few
/// tens of microseconds.
pub const EXPIRE_BATCH: usize = 64;

/// Keys moved per database part per [`Store::rehash_cycle`]: a few tens of
/// microseconds under the shard lock, as an expiry batch.
pub const REHASH_BATCH: usize = 1024;

impl Store {
    /// Keeps every key, expired or not, until `until_ms` (store clock) or
    /// [`Store::resume_expiry`]: CLIENT PAUSE. A pause already in force is
    /// only extended.
    pub fn pause_expiry(&self, until_ms: u64) {
        self.inner
            .expiry_pause
            .0
            .fetch_max(until_ms, Ordering::Relaxed);
    }

    /// CLIENT UNPAUSE: expiry and eviction go on.
    pub fn resume_expiry(&self) {
        self.inner.expiry_pause.0.store(0, Ordering::Relaxed);
    }

    /// Whether CLIENT PAUSE holds expiry and eviction at `now_ms`.
    #[inline]
    pub fn expiry_paused(&self, now_ms: u64) -> bool {
        self.inner.expiry_pause.paused(now_ms)
    }

    /// One pass over every shard, reclaiming up to `EXPIRE_BATCH` due keys and
    /// `EXPIRE_BATCH` due hash fields per database part. Returns the number
    /// reclaimed, keys and fields together; if it is high, more are probably
    /// due and the caller should run another pass soon.
    pub fn expire_cycle(&self) -> usize {
        let counts = self.expire_cycle_counts();
        counts.keys + counts.fields
    }

    /// [`Store::expire_cycle`], with keys and hash fields counted apart (for
    /// INFO's `expired_keys` and `expired_subkeys`).
    pub fn expire_cycle_counts(&self) -> ExpiredCounts {
        let mut total = ExpiredCounts::default();
        let now = self.now_ms();
        if !self.active_expire() || self.expiry_paused(now) {
            return total;
        }
        let probe = self.latency().start();
        // From the last shard to the first: commands that walk every shard
        // (DBSIZE, INFO keyspace, KEYS) go the other way, so they cross
        // this pass once. Going the same way, one that caught up with it
        // waited behind it at every shard, one batch each: DBSIZE polled
        // during a mass expiry took up to 17 ms, and the clients queued
        // on its worker waited with it (`examples/expiry_drain.rs`).
        for index in (0..self.shard_count()).rev() {
            let mut locks = self.lock_shard(index);
            let Ok(shard) = locks.shard(index) else {
                continue;
            };
            for db in shard.existing_dbs_mut() {
                let counts = db.expire_due_counts(now, EXPIRE_BATCH);
                total.keys += counts.keys;
                total.fields += counts.fields;
            }
        }
        self.latency().finish("expire-cycle", probe);
        total
    }

    /// Redis's `activerehashing`: moves up to `REHASH_BATCH` keys of each
    /// database part whose key table is resizing. Insertions and removals
    /// move keys too; this finishes a resize that they left under way (a
    /// part that is only read), so that lookups probe one table again.
    /// Returns how many keys moved.
    pub fn rehash_cycle(&self) -> usize {
        let mut moved = 0;
        // Last to first, as `expire_cycle` and for the same reason.
        for index in (0..self.shard_count()).rev() {
            let mut locks = self.lock_shard(index);
            let Ok(shard) = locks.shard(index) else {
                continue;
            };
            for db in shard.existing_dbs_mut() {
                moved += db.rehash(REHASH_BATCH);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    /// A store whose keys stopped coming while its key table was resizing:
    /// the rehash cycles finish the resize, and every key stays readable.
    #[test]
    fn rehash_cycles_finish_a_resize_that_writes_left() {
        let mut finished_one = false;
        for keys in (2_000..8_000).step_by(97) {
            let store = Store::with_options(StoreOptions {
                shards: 1,
                ..StoreOptions::default()
            });
            for i in 0..keys {
                store.set(0, format!("k{i}").as_bytes(), b"v").unwrap();
            }
            let mut cycles = 0;
            while store.rehash_cycle() > 0 {
                cycles += 1;
                assert!(cycles < 100, "a resize ends");
            }
            assert_eq!(store.rehash_cycle(), 0);
            if cycles > 0 {
                finished_one = true;
                for i in 0..keys {
                    assert!(store.exists(0, format!("k{i}").as_bytes()).unwrap(), "k{i}");
                }
                assert_eq!(store.dbsize(0).unwrap(), keys);
            }
        }
        assert!(finished_one, "some store was left resizing");
    }
}
