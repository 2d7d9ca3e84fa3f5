//! Point-in-time snapshots of the keyspace without fork (BGSAVE).
//!
//! A snapshot starts under every shard lock: each shard is marked *pending*
//! with a [`SnapshotCapture`]. From then on, whoever takes a pending
//! shard's lock first to change it — a client's write, active expiry,
//! eviction, or the snapshot's own walker — hands the shard to the capture
//! before doing anything else with it, and clears the mark. Read-only
//! commands lock with `Store::lock_keys_reading` and leave the shard
//! pending. Each shard is therefore
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, ValueRef};
    use parking_lot::Mutex;
    use std::sync::Arc;

    /// (shard, its string keys and values in database 0).
    type Captured = (usize, Vec<(Vec<u8>, Vec<u8>)>);

    /// Records the string keys of database 0 of every shard it captures.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<Captured>>,
    }

    impl SnapshotCapture for Recorder {
        fn capture(&self, index: usize, shard: &Shard) {
            let mut keys = Vec::new();
            if let Some(db) = shard.existing_db(0) {
                for (key, entry) in db.iter(0) {
                    if let ValueRef::Str(value) = entry.value() {
                        keys.push((key.to_vec(), value.to_vec()));
                    }
                }
            }
            keys.sort();
            self.seen.lock().push((index, keys));
        }
    }

    impl Recorder {
        fn value_in_capture(&self, shard: usize, key: &[u8]) -> Option<Vec<u8>> {
            let seen = self.seen.lock();
            let (_, keys) = seen.iter().find(|(index, _)| *index == shard)?;
            keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn each_shard_is_captured_once_as_it_was_when_the_snapshot_started() {
        let store = Store::new();
        store.set(0, b"k", b"old").unwrap();
        // Two keys in two different shards, for the multi-shard lock path.
        let a = b"key0".to_vec();
        let b = (1..)
            .map(|i| format!("key{i}").into_bytes())
            .find(|key| store.shard_index(key) != store.shard_index(&a))
            .unwrap();
        store.set(0, &a, b"a-old").unwrap();
        store.set(0, &b, b"b-old").unwrap();

        let recorder = Arc::new(Recorder::default());
        let counted = store.begin_snapshot(recorder.clone(), |all| {
            all.shards_mut()
                .map(|(_, s)| s.db_ref(0).len())
                .sum::<usize>()
        });
        assert_eq!(counted, 3);
        assert!(
            recorder.seen.lock().is_empty(),
            "nothing captured at the start"
        );
        // A write locks k's shard: the shard is captured before it changes.
        store.set(0, b"k", b"new").unwrap();
        let shard = store.shard_index(b"k");
        assert_eq!(
            recorder.value_in_capture(shard, b"k"),
            Some(b"old".to_vec())
        );
        let captured = recorder.seen.lock().len();
        store.set(0, b"k", b"newer").unwrap();
        assert_eq!(recorder.seen.lock().len(), captured, "captured once");
        // Several shards locked at once (MSET, EXEC).
        {
            let mut locks = store.lock_keys([a.as_slice(), b.as_slice()]);
            let now = store.now_ms();
            locks.db(0, &a).unwrap().insert_str(&a, b"a-new", None, now);
            locks.db(0, &b).unwrap().insert_str(&b, b"b-new", None, now);
        }
        assert_eq!(
            recorder.value_in_capture(store.shard_index(&a), &a),
            Some(b"a-old".to_vec())
        );
        assert_eq!(
            recorder.value_in_capture(store.shard_index(&b), &b),
            Some(b"b-old".to_vec())
        );
        assert!(store.snapshot_pending());
        // The walker takes the rest.
        for index in 0..store.shard_count() {
            store.capture_shard(index);
        }
        assert!(!store.snapshot_pending());
        let mut shards: Vec<usize> = recorder.seen.lock().iter().map(|(i, _)| *i).collect();
        shards.sort_unstable();
        assert_eq!(shards, (0..store.shard_count()).collect::<Vec<_>>());
        // After the snapshot, nothing is captured any more.
        store.set(0, b"k", b"later").unwrap();
        assert_eq!(recorder.seen.lock().len(), store.shard_count());
    }

    #[test]
    fn a_read_for_figures_does_not_capture() {
        let store = Store::new();
        store.set(0, b"k", b"v").unwrap();
        let recorder = Arc::new(Recorder::default());
        store.begin_snapshot(recorder.clone(), |_| ());
        let shard = store.shard_index(b"k");
        assert_eq!(store.read_shard(shard, |s| s.db_ref(0).len()), Some(1));
        assert!(recorder.seen.lock().is_empty());
        // A read-only command's locks leave the shard to the walker.
        drop(store.lock_keys_reading([&b"k"[..], &b"other"[..]]));
        drop(store.lock_shard_reading(shard));
        assert!(recorder.seen.lock().is_empty());
        assert_eq!(store.get(0, b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(recorder.seen.lock().len(), 1);
    }
}
