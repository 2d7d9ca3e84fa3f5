//! What the store tells the messaging engine about keys (client-side
//! caching invalidations, keyspace notifications for expiry and
//! eviction): changes that happen inside the store, under a shard lock,
//! including those no command asked for (active expiry, eviction,
//! read-through loads).
//!
//! Each signal costs one atomic load while nobody wants it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Something that happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KeySignal {
    /// Written or deleted by a command, or loaded from outside.
    Modified = 1 << 0,
    /// Created (a key that was not there).
    Added = 1 << 1,
    /// Removed because its TTL passed.
    Expired = 1 << 2,
    /// Removed to make room (eviction).
    Evicted = 1 << 3,
    /// Some of its hash fields' TTLs passed and they were removed.
    FieldsExpired = 1 << 4,
    /// Removed because its last hash fields' TTLs passed (Redis 7.4
    /// announces a `del`).
    Emptied = 1 << 5,
}

/// Receives [`KeySignal`]s. Called under the key's shard lock: it must not
/// wait, and never take a shard lock.
pub trait KeyListener: Send + Sync + 'static {
    fn key_signal(&self, db: usize, key: &[u8], signal: KeySignal);
}

/// A listener and the signals it wants now (a mask of [`KeySignal`]s it
/// updates as its needs change).
#[derive(Clone)]
pub struct KeySignals {
    wanted: Arc<AtomicU8>,
    listener: Arc<dyn KeyListener>,
}

impl std::fmt::Debug for KeySignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySignals")
            .field("wanted", &self.wanted.load(Ordering::Relaxed))
            .finish()
    }
}

impl KeySignals {
    pub fn new(listener: Arc<dyn KeyListener>, wanted: Arc<AtomicU8>) -> Self {
        KeySignals { wanted, listener }
    }

    /// Whether the listener wants `signal` now.
    #[inline]
    pub fn wants(&self, signal: KeySignal) -> bool {
        self.wanted.load(Ordering::Relaxed) & signal as u8 != 0
    }

    /// Hands `signal` to the listener if it wants it.
    #[inline]
    pub fn send(&self, db: usize, key: &[u8], signal: KeySignal) {
        if self.wanted.load(Ordering::Relaxed) & signal as u8 != 0 {
            self.listener.key_signal(db, key, signal);
        }
    }
}
