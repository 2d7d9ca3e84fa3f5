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

/// A followed change, as [`ChangeObserver::changed`] receives it: the
/// resulting state of the key, not the command that made it.
#[derive(Debug)]
pub enum Change<'a> {
    /// `key` now holds `entry`.
    Written {
        db: usize,
        key: &'a [u8],
        version: u64,
        entry: &'a Entry,
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
        let dropped = self.queue.len();
        self.queue = VecDeque::new();
        self.removed = HashMap::default();
        if dropped > 0 {
            self.observer.pending_dropped(dropped);
        }
        let version = self.observer.next_version();
        self.observer.flushed(db, version);
        self.observer.changed(&Change::Cleared { db, version });
    }

    /// Whether a change of `key`, which `entry` holds in memory (also if
    /// its TTL passed), waits to be handed out.
    pub(crate) fn is_pending(&self, key: &[u8], entry: Option<&Entry>) -> bool {
        entry.is_some_and(Entry::is_pending) || self.removed.contains_key(key)
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
        let state = match self.removed.remove(&key) {
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
