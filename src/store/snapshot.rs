//! Point-in-time snapshots of the keyspace without fork (BGSAVE), by
//! copy-on-write of single keys.
//!
//! A snapshot starts under every shard lock: each non-empty database part
//! gets a [`PartSnapshot`]. From then on:
//!
//! - A background walker visits each part's table slot by slot, a few
//!   hundred slots per hold of the shard lock, and writes each key it has
//!   not written yet ([`Store::capture_shard`]).
//! - Whatever is about to change or remove a key of a part still being
//!   walked — a client's write, active expiry, eviction — first writes that
//!   key's record, if the snapshot has not written it yet, and marks it
//!   written (`Db::before_change` calls [`PartSnapshot::capture_key`]). A
//!   key created after the start is marked too, so the walker skips it.
//!   FLUSHDB, FLUSHALL and SWAPDB, which replace a whole part, first write
//!   what the walker has not reached of it.
//!
//! Every key is thus written exactly once, as it was when the snapshot
//! started: a consistent point in time. A client's write pays for one
//! key's record at most; the walker holds a lock for one step. The memory
//! cost is the set of keys written so far in the parts being walked (a
//! copy of each key name, dropped when its part is done) and the records
//! waiting for the file writer.
//!
//! The store knows nothing of what a capture does with a key (the
//! persistence engine serializes it to RDB); when no snapshot runs, a
//! change pays one predictable branch on a field of the part it changes.

use std::collections::HashSet;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::keymap::EntryMap;
use super::value::{Entry, Key};
use super::Store;

/// Table slots the walker visits per hold of a shard lock: a few hundred
/// microseconds of serialization for small keys.
const WALK_STEP: usize = 512;

/// Records are handed over in batches of about this many bytes.
const HAND_OVER_BYTES: usize = 64 * 1024;

/// What a snapshot does with each key, once. Called under the key's shard
/// lock: it must not take any shard lock itself, nor wait on anything that
/// might.
pub trait SnapshotCapture: Send + Sync {
    /// Appends the record of `key`, whose `entry` is as it was when the
    /// snapshot started, to `out`; returns whether it wrote one (a key
    /// already past its TTL at the snapshot's instant is left out).
    fn record(&self, out: &mut Vec<u8>, key: &[u8], entry: &Entry) -> bool;

    /// Records of database `db` that `record` appended (`keys` of them).
    fn deliver(&self, db: usize, records: Vec<u8>, keys: u64);

    /// The snapshot was given up: what is left of it is dropped unwritten.
    fn cancelled(&self) -> bool;
}

/// A running snapshot's state in one database part, until the walker is
/// done with it.
pub(super) struct PartSnapshot {
    capture: Arc<dyn SnapshotCapture>,
    /// Keys the snapshot has written, and keys created since it started:
    /// neither the walker nor a later change writes them again.
    done: HashSet<Key, RandomState>,
    /// Records written, not delivered yet, and how many.
    records: Vec<u8>,
    keys: u64,
    /// The walker's next slot, valid while the table's generation is
    /// `generation` (a rebuild moves keys: the walk starts over, skipping
    /// what is done).
    cursor: usize,
    generation: u64,
}

impl std::fmt::Debug for PartSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartSnapshot")
            .field("done", &self.done.len())
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl PartSnapshot {
    pub(super) fn new(capture: Arc<dyn SnapshotCapture>, entries: &EntryMap) -> Box<Self> {
        Box::new(PartSnapshot {
            capture,
            done: HashSet::default(),
            records: Vec::new(),
            keys: 0,
            cursor: 0,
            generation: entries.generation(),
        })
    }

    /// `key` (its entry, if it exists) is about to change: writes it first
    /// if the snapshot has not.
    #[cold]
    #[inline(never)]
    pub(super) fn capture_key(&mut self, db: usize, key: &[u8], entry: Option<&Entry>) {
        if self.done.contains(key) {
            return;
        }
        if let Some(entry) = entry {
            self.write(db, key, entry);
        }
        self.done.insert(Key::from(key));
    }

    fn write(&mut self, db: usize, key: &[u8], entry: &Entry) {
        if self.capture.record(&mut self.records, key, entry) {
            self.keys += 1;
            if self.records.len() >= HAND_OVER_BYTES {
                self.hand_over(db);
            }
        }
    }

    fn hand_over(&mut self, db: usize) {
        if self.keys > 0 {
            let records = std::mem::take(&mut self.records);
            self.capture
                .deliver(db, records, std::mem::take(&mut self.keys));
        }
    }

    /// Writes the keys of up to `slots` more table slots that are not done;
    /// returns true (and delivers what is left) when the walk reached the
    /// end of the table.
    pub(super) fn walk(&mut self, db: usize, entries: &EntryMap, slots: usize) -> bool {
        if self.capture.cancelled() {
            return true;
        }
        if entries.generation() != self.generation {
            self.generation = entries.generation();
            self.cursor = 0;
        }
        let end = self.cursor.saturating_add(slots).min(entries.slot_count());
        for index in self.cursor..end {
            if let Some(entry) = entries.slot(index) {
                let key = entry.key();
                if !self.done.contains(key) {
                    self.write(db, key, entry);
                    self.done.insert(Key::from(key));
                }
            }
        }
        self.cursor = end;
        let finished = end == entries.slot_count();
        if finished {
            self.hand_over(db);
        }
        finished
    }
}

impl Store {
    /// Starts a point-in-time snapshot (see the module notes): under every
    /// shard lock, runs `under_locks` (to read what must be read at the
    /// same instant, such as the key counts), then gives every non-empty
    /// database part a [`PartSnapshot`] for `capture`. Returns what
    /// `under_locks` returned. The caller then walks every shard with
    /// [`Store::capture_shard`].
    pub fn begin_snapshot<R>(
        &self,
        capture: Arc<dyn SnapshotCapture>,
        under_locks: impl FnOnce(&mut super::LockSet<'_>) -> R,
    ) -> R {
        let mut all = self.lock_all();
        let result = under_locks(&mut all);
        for (_, shard) in all.shards_mut() {
            for part in shard.existing_dbs_mut() {
                part.begin_snapshot(&capture);
            }
        }
        result
    }

    /// Writes every key of shard `index` the running snapshot has not
    /// written yet, releasing the lock every [`WALK_STEP`] slots.
    pub fn capture_shard(&self, index: usize) {
        if index >= self.shard_count() {
            return;
        }
        for db in 0..self.databases() {
            loop {
                let mut shard = self.lock_shard_counted(index);
                let Some(part) = shard.existing_db_mut(db) else {
                    break;
                };
                if part.walk_snapshot(WALK_STEP) {
                    break;
                }
            }
        }
    }

    /// Whether some part still waits to be walked by a snapshot.
    pub fn snapshot_pending(&self) -> bool {
        (0..self.shard_count()).any(|index| {
            let shard = self.lock_shard_counted(index);
            let pending = (0..shard.databases()).any(|db| {
                shard
                    .existing_db(db)
                    .is_some_and(|part| part.snapshot_pending())
            });
            pending
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, ValueRef};
    use parking_lot::Mutex;
    use std::sync::Arc;

    /// Records each string key written, with its value then, and who wrote
    /// it (the test's walker thread calls `capture_shard`; the writes
    /// capture on the same thread, so "by the walker" is told by a flag).
    /// (key, value, written by the walker).
    type Written = (Vec<u8>, Vec<u8>, bool);

    #[derive(Default)]
    struct Recorder {
        walking: std::sync::atomic::AtomicBool,
        written: Mutex<Vec<Written>>,
        delivered: Mutex<Vec<(usize, u64)>>,
    }

    impl SnapshotCapture for Recorder {
        fn record(&self, out: &mut Vec<u8>, key: &[u8], entry: &Entry) -> bool {
            let ValueRef::Str(value) = entry.value() else {
                return false;
            };
            out.extend_from_slice(key);
            let walking = self.walking.load(std::sync::atomic::Ordering::Relaxed);
            self.written
                .lock()
                .push((key.to_vec(), value.to_vec(), walking));
            true
        }

        fn deliver(&self, db: usize, _records: Vec<u8>, keys: u64) {
            self.delivered.lock().push((db, keys));
        }

        fn cancelled(&self) -> bool {
            false
        }
    }

    impl Recorder {
        fn writes_of(&self, key: &[u8]) -> Vec<(Vec<u8>, bool)> {
            let written = self.written.lock();
            written
                .iter()
                .filter(|(k, _, _)| k == key)
                .map(|(_, v, walker)| (v.clone(), *walker))
                .collect()
        }

        fn walk_all(&self, store: &Store) {
            self.walking
                .store(true, std::sync::atomic::Ordering::Relaxed);
            for index in 0..store.shard_count() {
                store.capture_shard(index);
            }
            self.walking
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn each_key_is_written_once_as_it_was_when_the_snapshot_started() {
        let store = Store::new();
        for i in 0..2000 {
            store.set(0, format!("key{i}").as_bytes(), b"old").unwrap();
        }
        // Two keys in two different shards, for the multi-shard lock path.
        let a = b"key0".to_vec();
        let b = (1..)
            .map(|i| format!("key{i}").into_bytes())
            .find(|key| store.shard_index(key) != store.shard_index(&a))
            .unwrap();

        let recorder = Arc::new(Recorder::default());
        let counted = store.begin_snapshot(recorder.clone(), |all| {
            all.shards_mut()
                .map(|(_, s)| s.db_ref(0).len())
                .sum::<usize>()
        });
        assert_eq!(counted, 2000);
        assert!(
            recorder.written.lock().is_empty(),
            "nothing written at the start"
        );
        assert!(store.snapshot_pending());

        // A write first writes the key as it was, once.
        store.set(0, b"key7", b"new").unwrap();
        assert_eq!(recorder.writes_of(b"key7"), vec![(b"old".to_vec(), false)]);
        store.set(0, b"key7", b"newer").unwrap();
        assert_eq!(recorder.writes_of(b"key7").len(), 1, "written once");
        // Several shards locked at once (MSET, EXEC).
        {
            let mut locks = store.lock_keys([a.as_slice(), b.as_slice()]);
            let now = store.now_ms();
            locks.db(0, &a).unwrap().insert_str(&a, b"a-new", None, now);
            locks.db(0, &b).unwrap().insert_str(&b, b"b-new", None, now);
        }
        assert_eq!(recorder.writes_of(&a), vec![(b"old".to_vec(), false)]);
        assert_eq!(recorder.writes_of(&b), vec![(b"old".to_vec(), false)]);
        // A deleted key is kept as it was; a new key is not in the snapshot.
        store.del(0, b"key9").unwrap();
        store.set(0, b"fresh", b"x").unwrap();
        assert!(recorder.writes_of(b"fresh").is_empty());
        // Growing a part rebuilds its table: the walk starts over and
        // still writes nothing twice.
        for i in 0..5000 {
            store.set(0, format!("later{i}").as_bytes(), b"x").unwrap();
        }

        recorder.walk_all(&store);
        assert!(!store.snapshot_pending());
        let written = recorder.written.lock().clone();
        assert_eq!(written.len(), 2000, "every key of the start, once");
        let mut keys: Vec<&[u8]> = written.iter().map(|(k, _, _)| k.as_slice()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 2000);
        assert!(written.iter().all(|(_, v, _)| v == b"old"));
        assert_eq!(recorder.writes_of(b"key9"), vec![(b"old".to_vec(), false)]);
        let delivered: u64 = recorder.delivered.lock().iter().map(|(_, keys)| keys).sum();
        assert_eq!(delivered, 2000, "every record delivered");

        // After the snapshot, nothing is written any more.
        store.set(0, b"key1", b"later").unwrap();
        assert_eq!(recorder.written.lock().len(), 2000);
    }

    #[test]
    fn reads_do_not_write_and_flushes_write_the_rest_first() {
        let store = Store::new();
        store.set(0, b"k", b"v").unwrap();
        store.set(1, b"other", b"w").unwrap();
        let recorder = Arc::new(Recorder::default());
        store.begin_snapshot(recorder.clone(), |_| ());
        assert_eq!(store.get(0, b"k").unwrap().as_deref(), Some(&b"v"[..]));
        let shard = store.shard_index(b"k");
        assert_eq!(store.read_shard(shard, |s| s.db_ref(0).len()), Some(1));
        assert!(recorder.written.lock().is_empty());
        // FLUSHALL replaces whole parts: what they held is written first.
        drop(store.lock_all().clear_all_dbs());
        assert_eq!(recorder.writes_of(b"k"), vec![(b"v".to_vec(), false)]);
        assert_eq!(recorder.writes_of(b"other"), vec![(b"w".to_vec(), false)]);
        assert!(!store.snapshot_pending());
    }
}
