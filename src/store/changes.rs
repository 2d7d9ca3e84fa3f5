//! Change capture for write-behind: which keys changed since they were last
//! handed out, coalesced per key under the shard lock.
//!
//! The store knows nothing of PostgreSQL. When a [`ChangeObserver`] is
//! installed ([`crate::Store::observe_changes`]), every database part keeps a
//! small map of its pending keys: a key written 10,000 times between two
//! drains is one entry holding the version of its last change. Without an
//! observer, recording a change costs one branch.

use std::sync::Arc;

use foldhash::fast::RandomState;
use indexmap::IndexMap;

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
    /// Every followed change as it is recorded, under the lock of the
    /// shard it happened in (the write-behind journal keeps them). Called
    /// after the change got its version; must be quick and must not lock
    /// the store. The default does nothing.
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

/// One pending key.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The version of the key's last change.
    pub version: u64,
    pub state: PendingState,
}

/// The pending keys of one database part, and the observer they report to.
pub(crate) struct ChangeTracker {
    observer: Arc<dyn ChangeObserver>,
    pending: IndexMap<Key, Pending, RandomState>,
}

impl std::fmt::Debug for ChangeTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeTracker")
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl ChangeTracker {
    pub(crate) fn new(observer: Arc<dyn ChangeObserver>) -> Self {
        ChangeTracker {
            observer,
            pending: IndexMap::default(),
        }
    }

    fn record(&mut self, db: usize, key: &[u8], state: PendingState, entry: Option<&Entry>) {
        if !self.observer.observes(db, key) {
            return;
        }
        let version = self.observer.next_version();
        match (&state, entry) {
            (PendingState::Write, Some(entry)) => self.observer.changed(&Change::Written {
                db,
                key,
                version,
                entry,
            }),
            (PendingState::Delete, _) => {
                self.observer.changed(&Change::Deleted { db, key, version })
            }
            // A write whose key is not there has nothing to keep (the
            // flusher skips it too); a restored state is already kept.
            _ => {}
        }
        match self.pending.get_mut(key) {
            Some(pending) => {
                pending.version = version;
                pending.state = state;
            }
            None => {
                self.pending
                    .insert(Key::from(key), Pending { version, state });
                self.observer.pending_added();
            }
        }
    }

    /// `key` was changed by a command and now holds `entry`.
    pub(crate) fn written(&mut self, db: usize, key: &[u8], entry: Option<&Entry>) {
        self.record(db, key, PendingState::Write, entry);
    }

    /// `key` was deleted by a command.
    pub(crate) fn deleted(&mut self, db: usize, key: &[u8]) {
        self.record(db, key, PendingState::Delete, None);
    }

    /// `key` gets `state` as a pending change without a command having
    /// made it (journal replay: a delete, or a value whose TTL passed while
    /// Larder was down).
    pub(crate) fn restored(&mut self, db: usize, key: &[u8], state: PendingState) {
        self.record(db, key, state, None);
    }

    /// `key` expired or was evicted, holding `entry`: if a write of it is
    /// pending, its last state is kept for the sink. Otherwise nothing
    /// happens (expiry and eviction do not change the stored copy).
    pub(crate) fn gone(&mut self, key: &[u8], entry: &Entry) {
        if let Some(pending) = self.pending.get_mut(key) {
            if pending.state == PendingState::Write {
                pending.state = PendingState::Gone {
                    value: entry.value().to_owned(),
                    expires_at: entry.expires_at(),
                };
            }
        }
    }

    /// `key`'s TTL passed while it held `entry`: a deletion if the observer
    /// deletes expired keys, else as [`ChangeTracker::gone`].
    pub(crate) fn expired(&mut self, db: usize, key: &[u8], entry: &Entry) {
        if self.observer.deletes_expired() {
            self.record(db, key, PendingState::Delete, None);
        } else {
            self.gone(key, entry);
        }
    }

    /// The part was emptied: what was pending is superseded by the flush.
    pub(crate) fn cleared(&mut self, db: usize) {
        let dropped = self.pending.len();
        self.pending = IndexMap::default();
        if dropped > 0 {
            self.observer.pending_dropped(dropped);
        }
        let version = self.observer.next_version();
        self.observer.flushed(db, version);
        self.observer.changed(&Change::Cleared { db, version });
    }

    /// Whether a change of `key` waits to be handed out.
    pub(crate) fn is_pending(&self, key: &[u8]) -> bool {
        self.pending.contains_key(key)
    }

    /// Takes one pending key out (the most recently added first).
    pub(crate) fn pop(&mut self) -> Option<(Key, Pending)> {
        self.pending.pop()
    }
}
