//! Change capture for write-behind: which keys changed since they were last
//! handed out, coalesced per key under the shard lock.
//!
//! The store knows nothing of PostgreSQL. When a [`ChangeObserver`] is
//! installed ([`crate::Store::observe_changes`]), every database part keeps
//! a queue of its pending keys, each key once: a key written 10,000 times
//! between two drains is one queued key holding the version of its first
//! change since the last drain (enough to order its rows: see
//! [`Pending::version`]). Without an observer, recording a change costs one
//! branch.
//!
//! Whether a key is queued is kept where it costs nothing to look up: a
//! live key carries a PENDING bit in its entry's header, so writing an
//! already pending key touches no other memory. A pending key that left
//! memory (deleted, expired, evicted) has its state in a small side map
//! instead. The invariant: a key is queued exactly once while its entry has
//! the bit or it is in the side map, and never both.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::types::StreamId;
use super::value::{Entry, Key, Value};

/// Told about committed changes by the store; decides which keys are
/// followed and hands out versions.
pub trait ChangeObserver: Send + Sync + 'static {
    /// Whether changes to `key` of database `db` are followed.
    fn observes(&self, db: usize, key: &[u8]) -> bool;
    /// A fresh version, greater than every one handed out before.
    fn next_version(&self) -> u64;
    /// A key that was not pending became pending.
    fn pending_added(&self);
    /// `count` pending keys were dropped without being handed out (their
    /// database was flushed).
    fn pending_dropped(&self, count: usize);
    /// Database `db` was emptied (FLUSHDB, FLUSHALL, SWAPDB) by the change
    /// `version`: everything recorded for it before that version is gone.
    fn flushed(&self, db: usize, version: u64);
    /// Whether [`ChangeObserver::changed`] wants every change (else a
    /// change of an already pending key costs no version). The default: no.
    fn wants_changes(&self) -> bool {
        false
    }
    /// Every followed change as it is recorded, under the lock of the
    /// shard it happened in (the write-behind journal keeps them), if
    /// [`ChangeObserver::wants_changes`]. Called after the change got its
    /// version; must be quick and must not lock the store. The default
    /// does nothing.
    fn changed(&self, change: &Change<'_>) {
        let _ = change;
    }
    /// Whether a key whose TTL passed counts as deleted (its stored copy
    /// goes too) rather than merely gone from memory. The default: no.
    fn deletes_expired(&self) -> bool {
        false
    }
}

/// What an in-place change touched, when a command can say it cheaply:
/// the write-behind journal then records that part of the key's state
/// instead of the whole value (see [`Change::Written`]). Naming items is
/// enough where their state can be read back from the entry (set members,
/// hash fields, zset members: present with their value or score, or gone);
/// list pushes and pops are operations.
#[derive(Debug, Clone, Copy)]
pub enum Effect<'a> {
    /// `elements` pushed one by one at the head (`left`) or the tail.
    ListPush {
        left: bool,
        elements: &'a [&'a [u8]],
    },
    /// `head` elements removed from the head and `tail` from the tail.
    ListTrim { head: usize, tail: usize },
    /// These members were added or removed.
    SetMembers(Items<'a>),
    /// These fields were set or removed (or their TTLs changed).
    HashFields(Items<'a>),
    /// These members were added, removed or re-scored.
    ZSetMembers(Items<'a>),
    /// XADD appended an entry of these fields and values, under the
    /// stream's last ID.
    StreamAdd { fields_and_values: &'a [&'a [u8]] },
    /// Only this consumer group of the stream changed: see [`GroupChange`]
    /// for what the journal records of it.
    StreamGroup {
        group: &'a [u8],
        change: GroupChange<'a>,
    },
    /// Only the key's expiry changed.
    Expiry,
}

/// What a consumer group command changed in its group.
#[derive(Debug, Clone, Copy)]
pub enum GroupChange<'a> {
    /// Anything (the group created, destroyed, a consumer deleted): the
    /// journal records the group's whole state, or its absence.
    Whole,
    /// The group's last delivered ID and entries-read, the times of
    /// `consumer` (created if new) and the pending entries `ids`
    /// (delivered, acknowledged, claimed, delivered again, or dropped
    /// because their entry was deleted), and nothing else: the journal
    /// records those, so that a change costs in proportion to what it
    /// touched, not to the size of the group's pending entries list.
    Pending {
        consumer: Option<&'a [u8]>,
        ids: &'a [StreamId],
    },
}

/// Every `stride`-th item of `items` (so that a command's `field value
/// field value...` or `score member...` arguments are named without a
/// copy).
#[derive(Debug, Clone, Copy)]
pub struct Items<'a> {
    pub items: &'a [&'a [u8]],
    pub stride: usize,
}

impl<'a> Items<'a> {
    /// Every item of `items`.
    pub fn all(items: &'a [&'a [u8]]) -> Self {
        Items { items, stride: 1 }
    }

    /// Every `stride`-th item, from the first.
    pub fn every(items: &'a [&'a [u8]], stride: usize) -> Self {
        Items {
            items,
            stride: stride.max(1),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.items.iter().step_by(self.stride).copied()
    }

    pub fn len(&self) -> usize {
        self.items.len().div_ceil(self.stride)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A followed change, as [`ChangeObserver::changed`] receives it: the
/// resulting state of the key, not the command that made it.
#[derive(Debug)]
pub enum Change<'a> {
    /// `key` now holds `entry`. `effect`, when set, says what changed in it
    /// (only for a key that was already pending: its full state was
    /// reported when it became pending).
    Written {
        db: usize,
        key: &'a [u8],
        version: u64,
        entry: &'a Entry,
        effect: Option<Effect<'a>>,
    },
    /// `key` was deleted by a command.
    Deleted {
        db: usize,
        key: &'a [u8],
        version: u64,
    },
    /// This shard's part of database `db` was emptied.
    Cleared { db: usize, version: u64 },
}

/// What must happen to a pending key's stored copy.
#[derive(Debug, Clone, PartialEq)]
pub enum PendingState {
    /// Write the key's current state (read when it is drained).
    Write,
    /// The key was deleted by a command.
    Delete,
    /// The key expired or was evicted before its change was handed out:
    /// its last state, kept so that it still reaches the sink.
    Gone {
        value: Value,
        expires_at: Option<u64>,
    },
}

/// One pending key, as it is drained.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The version of the key's first change since it was last drained:
    /// greater than that of every row written for the key before, and than
    /// every database flush before the change.
    pub version: u64,
    pub state: PendingState,
}

/// The pending keys of one database part, and the observer they report to.
pub(crate) struct ChangeTracker {
    observer: Arc<dyn ChangeObserver>,
    /// Every pending key once, oldest first, with its [`Pending::version`].
    queue: VecDeque<(Key, u64)>,
    /// The state of pending keys no longer in memory.
    removed: HashMap<Key, PendingState, RandomState>,
}

impl std::fmt::Debug for ChangeTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeTracker")
            .field("pending", &self.queue.len())
            .field("removed", &self.removed.len())
            .finish()
    }
}

impl ChangeTracker {
    pub(crate) fn new(observer: Arc<dyn ChangeObserver>) -> Self {
        ChangeTracker {
            observer,
            queue: VecDeque::new(),
            removed: HashMap::default(),
        }
    }

    /// A version for a change that `changed` must see, or that starts a
    /// queued key; 0 (never used) otherwise.
    fn version_for(&self, starts_pending: bool) -> u64 {
        if starts_pending || self.observer.wants_changes() {
            self.observer.next_version()
        } else {
            0
        }
    }

    fn enqueue(&mut self, key: &[u8], version: u64) {
        self.queue.push_back((Key::from(key), version));
        self.observer.pending_added();
    }

    /// `key` was changed by a command and now holds `entry` (a write
    /// whose key is not there leaves nothing to store).
    pub(crate) fn written(&mut self, db: usize, key: &[u8], entry: Option<&Entry>) {
        self.written_with(db, key, entry, None);
    }

    /// [`ChangeTracker::written`], with what the change did when the
    /// command could say it.
    pub(crate) fn written_with(
        &mut self,
        db: usize,
        key: &[u8],
        entry: Option<&Entry>,
        effect: Option<Effect<'_>>,
    ) {
        let Some(entry) = entry else {
            return;
        };
        let starts = !entry.is_pending();
        // The hot path: an already pending key (it was followed when it
        // became pending) costs this one bit test.
        if !starts && !self.observer.wants_changes() {
            return;
        }
        if starts && !self.observer.observes(db, key) {
            return;
        }
        let version = self.version_for(starts);
        if self.observer.wants_changes() {
            self.observer.changed(&Change::Written {
                db,
                key,
                version,
                entry,
                // The first change since the key was last handed out
                // reports the whole state.
                effect: if starts { None } else { effect },
            });
        }
        if !starts {
            return;
        }
        entry.set_pending(true);
        // Queued already if it left memory while pending and came back.
        if self.removed.is_empty() || self.removed.remove(key).is_none() {
            self.enqueue(key, version);
        }
    }

    /// `key`, which held `entry` and is gone from memory, was deleted by a
    /// command.
    pub(crate) fn deleted(&mut self, db: usize, key: &[u8], entry: &Entry) {
        let queued = entry.is_pending();
        if !queued && !self.observer.observes(db, key) {
            return;
        }
        let version = self.version_for(!queued);
        if self.observer.wants_changes() {
            self.observer.changed(&Change::Deleted { db, key, version });
        }
        self.removed.insert(Key::from(key), PendingState::Delete);
        if !queued {
            self.enqueue(key, version);
        }
    }

    /// `key` gets `state` as a pending change without a command having
    /// made it (journal replay: a delete, or a value whose TTL passed while
    /// Larder was down); `entry` is what memory holds for it, if anything.
    pub(crate) fn restored(
        &mut self,
        db: usize,
        key: &[u8],
        state: PendingState,
        entry: Option<&Entry>,
    ) {
        if !self.observer.observes(db, key) {
            return;
        }
        let queued = entry.is_some_and(Entry::is_pending) || self.removed.contains_key(key);
        let version = self.version_for(!queued);
        if state == PendingState::Delete && self.observer.wants_changes() {
            self.observer.changed(&Change::Deleted { db, key, version });
        }
        if let Some(entry) = entry {
            entry.set_pending(false);
        }
        self.removed.insert(Key::from(key), state);
        if !queued {
            self.enqueue(key, version);
        }
    }

    /// `key` expired or was evicted, holding `entry`: if it is pending, its
    /// last state is kept for the sink. Otherwise nothing happens (expiry
    /// and eviction do not change the stored copy).
    pub(crate) fn gone(&mut self, key: &[u8], entry: &Entry) {
        if entry.is_pending() {
            self.removed.insert(
                Key::from(key),
                PendingState::Gone {
                    value: entry.value().to_owned(),
                    expires_at: entry.expires_at(),
                },
            );
        }
    }

    /// `key`'s TTL passed while it held `entry`: a deletion if the observer
    /// deletes expired keys, else as [`ChangeTracker::gone`].
    pub(crate) fn expired(&mut self, db: usize, key: &[u8], entry: &Entry) {
        if self.observer.deletes_expired() {
            self.deleted(db, key, entry);
        } else {
            self.gone(key, entry);
        }
    }

    /// The part was emptied (its entries are dropped or replaced by the
    /// caller): what was pending is superseded by the flush.
    pub(crate) fn cleared(&mut self, db: usize) {
        self.drop_queue();
        self.announce_cleared(db);
    }

    /// Forgets the pending changes of this part (its contents were
    /// replaced), without telling write-behind the database was emptied.
    pub(crate) fn drop_queue(&mut self) {
        let dropped = self.queue.len();
        self.queue = VecDeque::new();
        self.removed = HashMap::default();
        if dropped > 0 {
            self.observer.pending_dropped(dropped);
        }
    }

    /// Tells write-behind that database `db` was emptied: every row older
    /// than now goes.
    pub(crate) fn announce_cleared(&mut self, db: usize) {
        let version = self.observer.next_version();
        self.observer.flushed(db, version);
        self.observer.changed(&Change::Cleared { db, version });
    }

    /// Whether a change of `key`, which `entry` holds in memory (also if
    /// its TTL passed), waits to be handed out.
    pub(crate) fn is_pending(&self, key: &[u8], entry: Option<&Entry>) -> bool {
        entry.is_some_and(Entry::is_pending) || self.removed.contains_key(key)
    }

    /// Every pending key, oldest first, with what memory holds for it
    /// (`entry` looks it up) or, if it left memory, its state. Nothing is
    /// taken out (the journal's rewrite).
    pub(crate) fn for_each<'e>(
        &self,
        entry: impl Fn(&[u8]) -> Option<&'e Entry>,
        mut f: impl FnMut(&[u8], Option<&'e Entry>, Option<&PendingState>),
    ) {
        for (key, _) in &self.queue {
            match self.removed.get(&**key) {
                Some(state) => f(key, None, Some(state)),
                None => f(key, entry(key), None),
            }
        }
    }

    /// Takes the oldest pending key out, with its state: `entry` looks up
    /// what memory holds for a key. A key in memory is written as it is
    /// now, and stops being pending.
    pub(crate) fn pop<'e>(
        &mut self,
        entry: impl FnOnce(&[u8]) -> Option<&'e Entry>,
    ) -> Option<(Key, Pending, Option<&'e Entry>)> {
        let (key, version) = self.queue.pop_front()?;
        let entry = entry(&key);
        let removed = if self.removed.is_empty() {
            None
        } else {
            self.removed.remove(&key)
        };
        let state = match removed {
            Some(state) => state,
            None => {
                if let Some(entry) = entry {
                    entry.set_pending(false);
                }
                PendingState::Write
            }
        };
        Some((key, Pending { version, state }, entry))
    }
}

#[cfg(test)]
mod tests {
    //! The tracker against a model: random writes, deletions, expiries,
    //! evictions, in-place changes, database flushes and swaps, with drains
    //! in between, must leave the drained rows equal to what a system of
    //! record should hold, each key drained once per drain round, versions
    //! growing per key, and the pending count exact.

    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::store::{Clock, Store, StoreOptions, ValueRef};

    #[derive(Default)]
    struct Counter {
        version: AtomicU64,
        pending: AtomicI64,
        flushes: Mutex<Vec<(usize, u64)>>,
    }

    impl ChangeObserver for Counter {
        fn observes(&self, _db: usize, key: &[u8]) -> bool {
            // One key in eight is not followed.
            key.first() != Some(&b'x')
        }
        fn next_version(&self) -> u64 {
            self.version.fetch_add(1, Ordering::SeqCst) + 1
        }
        fn pending_added(&self) {
            self.pending.fetch_add(1, Ordering::SeqCst);
        }
        fn pending_dropped(&self, count: usize) {
            self.pending.fetch_sub(count as i64, Ordering::SeqCst);
        }
        fn flushed(&self, db: usize, version: u64) {
            self.flushes.lock().unwrap().push((db, version));
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(usize, u8, u8),
        SetWithTtl(usize, u8, u8, u64),
        Del(usize, u8),
        Append(usize, u8),
        Expire(usize, u8, u64),
        Persist(usize, u8),
        Evict(usize, u8),
        ReclaimExpired,
        Advance(u64),
        FlushDb(usize),
        SwapDbs,
        Drain(usize, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let db = 0..2usize;
        let key = 0..8u8;
        prop_oneof![
            6 => (db.clone(), key.clone(), any::<u8>()).prop_map(|(d, k, v)| Op::Set(d, k, v)),
            2 => (db.clone(), key.clone(), any::<u8>(), 1..50u64)
                .prop_map(|(d, k, v, t)| Op::SetWithTtl(d, k, v, t)),
            3 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Del(d, k)),
            2 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Append(d, k)),
            1 => (db.clone(), key.clone(), 1..50u64).prop_map(|(d, k, t)| Op::Expire(d, k, t)),
            1 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Persist(d, k)),
            2 => (db.clone(), key.clone()).prop_map(|(d, k)| Op::Evict(d, k)),
            1 => Just(Op::ReclaimExpired),
            2 => (1..30u64).prop_map(Op::Advance),
            1 => db.clone().prop_map(Op::FlushDb),
            1 => Just(Op::SwapDbs),
            3 => (db, 1..4usize).prop_map(|(d, n)| Op::Drain(d, n)),
        ]
    }

    fn key_name(k: u8) -> Vec<u8> {
        // Key 7 is not followed (see `Counter::observes`).
        if k == 7 {
            b"x7".to_vec()
        } else {
            vec![b'k', b'0' + k]
        }
    }

    /// A key in memory as the model sees it: value and expiry (kept until
    /// reclaimed, like the store).
    type Memory = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

    struct Model {
        memory: [Memory; 2],
        /// What the system of record must hold once everything is drained.
        record: [BTreeMap<Vec<u8>, Vec<u8>>; 2],
        /// What the drained rows built.
        sink: [BTreeMap<Vec<u8>, Vec<u8>>; 2],
        /// Last version drained per key, and the flushes' versions per db.
        versions: HashMap<(usize, Vec<u8>), u64>,
        /// Keys drained and not changed since: draining one again would
        /// mean it was queued twice.
        clean: HashSet<(usize, Vec<u8>)>,
    }

    fn live(entry: &(Vec<u8>, Option<u64>), now: u64) -> bool {
        entry.1.is_none_or(|at| at >= now)
    }

    /// Drains like the flusher does, which confirms what it takes.
    fn drain(store: &Store, counter: &Counter, model: &mut Model, db: usize, max: usize) -> usize {
        let mut rows = Vec::new();
        let taken = store.drain_changes(0, db, max, |key, pending, entry| {
            let value = entry.map(|e| match e.value() {
                ValueRef::Str(s) => s.to_vec(),
                other => panic!("{other:?}"),
            });
            rows.push((key.into_vec(), pending, value));
        });
        assert_eq!(taken, rows.len());
        counter.pending.fetch_sub(taken as i64, Ordering::SeqCst);
        for (key, pending, value) in rows {
            assert!(
                model.clean.insert((db, key.clone())),
                "{key:?} drained again with no change in between"
            );
            let last = model.versions.insert((db, key.clone()), pending.version);
            assert!(
                last.is_none_or(|v| v < pending.version),
                "version went back"
            );
            match pending.state {
                PendingState::Write => {
                    if let Some(value) = value {
                        model.sink[db].insert(key, value);
                    }
                }
                PendingState::Delete => {
                    model.sink[db].remove(&key);
                }
                PendingState::Gone { value, .. } => {
                    let Value::Str(value) = value else {
                        panic!("not a string")
                    };
                    model.sink[db].insert(key, value);
                }
            }
        }
        taken
    }

    fn run(ops: Vec<Op>) {
        let (clock, time) = Clock::manual(1_000_000);
        let store = Store::with_options(StoreOptions {
            databases: 2,
            shards: 1,
            clock,
        });
        let counter = Arc::new(Counter::default());
        store.observe_changes(counter.clone());
        let mut model = Model {
            memory: Default::default(),
            record: Default::default(),
            sink: Default::default(),
            versions: HashMap::new(),
            clean: HashSet::new(),
        };
        let followed = |key: &[u8]| key.first() != Some(&b'x');
        for op in ops {
            let now = time.load(Ordering::SeqCst);
            match &op {
                Op::Set(db, k, _)
                | Op::SetWithTtl(db, k, ..)
                | Op::Del(db, k)
                | Op::Append(db, k)
                | Op::Expire(db, k, _)
                | Op::Persist(db, k) => {
                    model.clean.remove(&(*db, key_name(*k)));
                }
                _ => {}
            }
            match op {
                Op::Set(db, k, v) | Op::SetWithTtl(db, k, v, _) => {
                    let key = key_name(k);
                    let value = vec![v];
                    let ttl = match op {
                        Op::SetWithTtl(.., t) => Some(t),
                        _ => None,
                    };
                    match ttl {
                        Some(t) => store
                            .set_with_ttl(db, &key, &value, Duration::from_millis(t))
                            .unwrap(),
                        None => store.set(db, &key, &value).unwrap(),
                    }
                    model.memory[db].insert(key.clone(), (value.clone(), ttl.map(|t| now + t)));
                    model.record[db].insert(key, value);
                }
                Op::Del(db, k) => {
                    let key = key_name(k);
                    let removed = store.del(db, &key).unwrap();
                    let was_live = model.memory[db].get(&key).is_some_and(|e| live(e, now));
                    assert_eq!(removed, was_live);
                    model.memory[db].remove(&key);
                    if was_live {
                        model.record[db].remove(&key);
                    }
                }
                Op::Append(db, k) => {
                    let key = key_name(k);
                    let mut locks = store.lock_keys([key.as_slice()]);
                    let part = locks.db(db, &key).unwrap();
                    let changed = match part.value_mut(&key, now) {
                        Some(Value::Str(s)) => {
                            s.push(b'+');
                            true
                        }
                        Some(other) => panic!("{other:?}"),
                        None => false,
                    };
                    if changed {
                        part.touch(&key);
                        let entry = model.memory[db].get_mut(&key).unwrap();
                        entry.0.push(b'+');
                        model.record[db].insert(key, entry.0.clone());
                    } else if model.memory[db].get(&key).is_some_and(|e| !live(e, now)) {
                        model.memory[db].remove(&key);
                    }
                }
                Op::Expire(db, k, t) => {
                    let key = key_name(k);
                    store.expire(db, &key, Duration::from_millis(t)).unwrap();
                    // A key whose TTL passed is reclaimed on the way.
                    model.memory[db].retain(|k, e| *k != key || live(e, now));
                    if let Some(entry) = model.memory[db].get_mut(&key) {
                        entry.1 = Some(now + t);
                    }
                }
                Op::Persist(db, k) => {
                    let key = key_name(k);
                    store.persist(db, &key).unwrap();
                    // A key whose TTL passed is left alone (not reclaimed).
                    if let Some(entry) = model.memory[db].get_mut(&key) {
                        if live(entry, now) {
                            entry.1 = None;
                        }
                    }
                }
                Op::Evict(db, k) => {
                    let key = key_name(k);
                    let mut locks = store.lock_keys([key.as_slice()]);
                    let evicted = locks.db(db, &key).unwrap().evict(&key, false);
                    assert_eq!(evicted.is_some(), model.memory[db].remove(&key).is_some());
                }
                Op::ReclaimExpired => {
                    let mut locks = store.lock_all();
                    for (_, shard) in locks.shards_mut() {
                        for db in 0..2 {
                            shard.db(db).expire_due(now, 1000);
                        }
                    }
                    for memory in &mut model.memory {
                        memory.retain(|_, e| live(e, now));
                    }
                }
                Op::Advance(ms) => {
                    time.fetch_add(ms, Ordering::SeqCst);
                }
                Op::FlushDb(db) => {
                    store.flush_db(db).unwrap();
                    model.memory[db].clear();
                    model.record[db].clear();
                    model.sink[db].clear();
                    model.clean.retain(|(d, _)| *d != db);
                }
                Op::SwapDbs => {
                    let mut locks = store.lock_all();
                    for (_, shard) in locks.shards_mut() {
                        shard.swap_dbs(0, 1, true);
                    }
                    model.memory.swap(0, 1);
                    model.clean.clear();
                    // Both databases are flushed, then every key held now
                    // is written (also one whose TTL passed but that was
                    // not reclaimed yet).
                    for db in 0..2 {
                        model.sink[db].clear();
                        model.record[db] = model.memory[db]
                            .iter()
                            .filter(|(key, _)| followed(key))
                            .map(|(key, (value, _))| (key.clone(), value.clone()))
                            .collect();
                    }
                }
                Op::Drain(db, max) => {
                    drain(&store, &counter, &mut model, db, max);
                }
            }
            // The pending count never goes below zero.
            assert!(counter.pending.load(Ordering::SeqCst) >= 0);
        }
        for db in 0..2 {
            while drain(&store, &counter, &mut model, db, 100) > 0 {}
            let record: BTreeMap<_, _> = model.record[db]
                .iter()
                .filter(|(key, _)| followed(key))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(model.sink[db], record, "database {db}");
        }
        assert_eq!(counter.pending.load(Ordering::SeqCst), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn drained_rows_match_a_system_of_record(ops in prop::collection::vec(op(), 1..120)) {
            run(ops);
        }
    }
}
