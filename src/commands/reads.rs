//! Key lookups by read commands, as Redis's `lookupKeyRead` counts them:
//! every lookup is a hit or a miss in INFO `keyspace_hits` /
//! `keyspace_misses`, and a miss is announced as a `keymiss` event. Write
//! commands' lookups (Redis's `lookupKeyWrite`) are not counted.

use crate::error::Result;
use crate::pubsub::events;
use crate::shared::Shared;

/// A read command found `key`.
#[inline]
pub fn hit(shared: &Shared) {
    shared.stats.keyspace_hits.add(1);
}

/// A read command missed `key` in database `db`. Handlers call it under
/// the key's shard lock, so that the events of one key come in the order
/// of its changes.
pub fn miss(shared: &Shared, db: usize, key: &[u8]) {
    shared.stats.keyspace_misses.add(1);
    shared.pubsub.notify(events::KEY_MISS, "keymiss", key, db);
}

/// A lookup counted but not announced (Redis's LOOKUP_NONOTIFY: OBJECT).
pub fn looked_up_quietly(shared: &Shared, found: bool) {
    if found {
        hit(shared);
    } else {
        shared.stats.keyspace_misses.add(1);
    }
}

/// [`hit`] or [`miss`].
#[inline]
pub fn looked_up(shared: &Shared, db: usize, key: &[u8], found: bool) {
    if found {
        hit(shared);
    } else {
        miss(shared, db, key);
    }
}

/// Counts a read command's typed lookup of `key` and hands its result on:
/// found, missed, or found with the wrong type, which Redis's
/// lookupKeyRead counts as a hit before the type check fails.
pub fn counted<T>(
    shared: &Shared,
    db: usize,
    key: &[u8],
    lookup: Result<Option<T>>,
) -> Result<Option<T>> {
    match &lookup {
        Ok(found) => looked_up(shared, db, key, found.is_some()),
        Err(error) if error.is_wrong_type() => hit(shared),
        Err(_) => {}
    }
    lookup
}
