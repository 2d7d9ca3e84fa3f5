//! Active expiry: reclaiming keys whose TTL passed even if nobody reads them.
//!
//! Each shard keeps its volatile keys ordered by expiry time, so a cycle only
//! visits keys that are actually due. Work is bounded per lock hold so that
//! no client waits long behind it.

use super::Store;

/// Keys reclaimed per shard per lock hold: at well under a microsecond each,
/// a lock is never held for more than a few tens of microseconds.
pub const EXPIRE_BATCH: usize = 64;

impl Store {
    /// One pass over every shard, reclaiming up to `EXPIRE_BATCH` due keys per
    /// database part. Returns the number reclaimed; if it is high, more are
    /// probably due and the caller should run another pass soon.
    pub fn expire_cycle(&self) -> usize {
        let now = self.now_ms();
        let mut reclaimed = 0;
        for index in 0..self.shard_count() {
            let mut locks = self.lock_shard(index);
            let Ok(shard) = locks.shard(index) else {
                continue;
            };
            for db in 0..shard.databases() {
                reclaimed += shard.db(db).expire_due(now, EXPIRE_BATCH);
            }
        }
        reclaimed
    }
}
