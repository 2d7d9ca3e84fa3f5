//! Point-in-time snapshots of the keyspace without fork (BGSAVE).
//!
//! A snapshot starts under every shard lock: each shard is marked *pending*
//! with a [`SnapshotCapture`]. From then on, whoever takes a pending
//! shard's lock first — a client's command, active expiry, eviction, or the
//! snapshot's own walker — hands the shard to the capture before doing
//! anything else with it, and clears the mark. Each shard is therefore
//! captured exactly once, exactly as it was when the snapshot started: a
//! consistent point in time, shard by shard copy-on-first-touch.
//!
//! The store knows nothing of what a capture does with a shard (the
//! persistence engine serializes it to RDB); when no snapshot runs, the
//! lock path pays one predictable branch on a field of the shard it just
//! locked.

use super::Shard;

/// What a snapshot does with each shard, once, under that shard's lock.
/// It must not take any shard lock itself, nor wait on anything that might
/// (it runs inside whatever lock set touched the shard first).
pub trait SnapshotCapture: Send + Sync {
    /// Shard `index` as it was when the snapshot started.
    fn capture(&self, index: usize, shard: &Shard);
}
