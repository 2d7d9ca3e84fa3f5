//! Active expiry: reclaiming keys whose TTL passed even if nobody reads them,
//! and hash fields whose TTL passed (Redis 7.4 hash field expiration).
//!
//! Each shard keeps its volatile keys ordered by expiry time, and its hashes
//! with field TTLs ordered by their earliest field expiry, so a cycle only
//! visits what is actually due. Work is bounded per lock hold so that no
//! client waits long behind it.

use super::shard::ExpiredCounts;
use super::Store;

/// Keys (and, separately, hash fields) reclaimed per shard per lock hold: at
/// well under a microsecond each, a lock is never held for more than a few
/// tens of microseconds.
pub const EXPIRE_BATCH: usize = 64;

impl Store {
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
        if !self.active_expire() {
            return total;
        }
        let probe = self.latency().start();
        let now = self.now_ms();
        for index in 0..self.shard_count() {
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
}
