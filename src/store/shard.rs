//! One shard of the keyspace: for every logical database, the keys whose hash
//! falls in this shard, their expiry index and their WATCH versions.
//!
//! A shard is only ever used behind its lock (see `store::LockSet`); nothing
//! here blocks or awaits.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use foldhash::fast::RandomState;
use smallvec::SmallVec;

use super::changes::{ChangeObserver, ChangeTracker, Effect, Pending, PendingState};
use super::clock::Clock;
use super::evict::{self, Policy};
use super::expire::ExpiryPause;
use super::keymap::EntryMap;
use super::s3fifo::S3Fifo;
use super::signals::{KeySignal, KeySignals};
use super::snapshot::{PartSnapshot, SnapshotCapture};
use super::value::{Entry, Key, Value, ValueRef};
use crate::error::{Error, Result};

/// The part of one logical database that lives in one shard.
#[derive(Debug, Default)]
pub struct Db {
    /// A table of thin pointers to one allocation per key (see
    /// `store::entry` and `store::keymap`): about 64 + 9..18 bytes per small
    /// key, with O(1) random picks for eviction.
    entries: EntryMap,
    /// (expiry time, key) for every key with a TTL, earliest first: active
    /// expiry pops from the front instead of sampling.
    expires: BTreeSet<(u64, Key)>,
    /// The sum of the expiry times in `expires` (INFO's avg_ttl).
    expiry_sum: u128,
    /// Changes and removals of keys so far (see [`Db::changes`]).
    dirty: u64,
    /// Hashes with field TTLs, filed under their earliest field expiry, so
    /// that active expiry reclaims due fields without scanning. A filed time
    /// is never later than the hash's real earliest expiry (it may be earlier
    /// after a field was removed: popping it then just refiles the hash).
    field_expires: BTreeSet<(u64, Key)>,
    /// The time each hash is filed under in `field_expires`.
    field_expires_of: HashMap<Key, u64, RandomState>,
    /// Keys some client WATCHes, with the version their last change got.
    watched: HashMap<Key, WatchSlot, RandomState>,
    version_clock: u64,
    /// This part's database number.
    index: usize,
    /// Pending changes for write-behind; `None` (one branch per change)
    /// unless a change observer is installed.
    changes: Option<Box<ChangeTracker>>,
    /// S3-FIFO queues, kept only while `allkeys-s3fifo` is the policy.
    fifo: Option<Box<S3Fifo>>,
    /// Where changes are signalled (tracking, notifications), if a
    /// listener is installed.
    signals: Option<KeySignals>,
    /// Keys a read found past their TTL and announced as expired (as
    /// Redis does when it reclaims a key on access), not reclaimed yet:
    /// their reclaiming is not announced again. Only filled while the
    /// listener wants expiries. (A read holds the shard lock but not `&mut`.)
    announced_expired: parking_lot::Mutex<HashSet<Key, RandomState>>,
    /// Counts every removal of a key (deletion, expiry, eviction, flush,
    /// swap): a copy loaded from elsewhere is only stored if nothing was
    /// removed since it was asked for (see [`Db::insert_loaded`]).
    removals: u64,
    /// The store's CLIENT PAUSE state: while it holds, reads leave expired
    /// keys alone (not reclaimed, not announced). `None` in a part not
    /// created by a shard (tests, the empty part).
    expiry_pause: Option<ExpiryPause>,
    /// A running snapshot that has not walked this part to the end (see
    /// `store::snapshot`): every change first lets it write the key.
    snapshot: Option<Box<PartSnapshot>>,
}

/// Why a key left the map, for change observers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// Deleted by a command.
    Deleted,
    /// Its TTL passed.
    Expired,
    /// Its last hash fields' TTLs passed.
    FieldsExpired,
    /// Evicted.
    Gone,
}

#[derive(Debug)]
struct WatchSlot {
    version: u64,
    watchers: u32,
}

impl Db {
    /// Number of keys, including expired ones not yet reclaimed (as Redis's
    /// DBSIZE counts them).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of keys with a TTL.
    pub fn volatile_len(&self) -> usize {
        self.expires.len()
    }

    /// The mean time to live of the keys with a TTL, in ms (0 if none).
    pub fn average_ttl_ms(&self, now_ms: u64) -> u64 {
        let count = self.expires.len() as u128;
        if count == 0 {
            return 0;
        }
        u64::try_from(self.expiry_sum / count)
            .unwrap_or(u64::MAX)
            .saturating_sub(now_ms)
    }

    fn index_expiry(&mut self, key: &[u8], at: u64) {
        if self.expires.insert((at, Key::from(key))) {
            self.expiry_sum += u128::from(at);
        }
    }

    fn unindex_expiry(&mut self, key: &[u8], at: u64) {
        if self.expires.remove(&(at, Key::from(key))) {
            self.expiry_sum -= u128::from(at);
        }
    }

    /// Number of keys some client WATCHes.
    pub fn watched_len(&self) -> usize {
        self.watched.len()
    }

    /// Keys changed since the server started (Redis's `dirty`, INFO's
    /// rdb_changes_since_last_save: Larder never saves).
    pub fn changes(&self) -> u64 {
        self.dirty
    }

    /// Number of hashes with field TTLs (Redis 7.4's `subexpiry`).
    pub fn field_volatile_len(&self) -> usize {
        self.field_expires_of.len()
    }

    /// Reclaims `key` if its TTL has passed. Returns true if it is (still) live.
    fn expire_if_due(&mut self, key: &[u8], now_ms: u64) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(entry) if !entry.is_expired(now_ms) => true,
            Some(_) => {
                self.remove_entry(key, Removal::Expired);
                false
            }
        }
    }

    /// The live entry of `key`. One hash lookup and no write: an expired
    /// key reads as missing and is reclaimed by the next write to it or by
    /// active expiry (GET hits stay read-only).
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let entry = self.peek(key, now_ms)?;
        entry.mark_access(now_ms);
        Some(entry)
    }

    /// Like [`Db::get`], reading the clock only as finely as the key
    /// needs: the precise time to check a TTL, the coarse one (for the
    /// access time, kept in seconds) when there is none. For callers with
    /// no time already read for a batch of commands (the library's
    /// `Store::get`).
    /// `hash` is the key's [`super::keymap::key_hash`].
    pub fn get_reading_clock(&self, key: &[u8], hash: u64, clock: &Clock) -> Option<&Entry> {
        let entry = self.entries.get_hashed(key, hash)?;
        let now_ms = if entry.expires_at().is_some() {
            let now_ms = clock.now_ms();
            if entry.is_expired(now_ms) {
                self.announce_expired(key, now_ms);
                return None;
            }
            now_ms
        } else {
            clock.coarse_now_ms()
        };
        entry.mark_access(now_ms);
        Some(entry)
    }

    /// Starts loading the table group of the key hashed as `hash` (its
    /// [`super::keymap::key_hash`]), for [`Db::prefetch_entry`] next. See
    /// `Store::prefetch`.
    pub fn prefetch_home(&self, hash: u64) {
        self.entries.prefetch_home(hash);
    }

    /// Starts loading the entry a lookup of the key hashed as `hash` will
    /// compare.
    pub fn prefetch_entry(&self, hash: u64) {
        self.entries.prefetch_entry(hash);
    }

    /// Once the entry's first line is cached: starts loading the rest.
    pub fn prefetch_entry_rest(&self, hash: u64) {
        self.entries.prefetch_entry_rest(hash);
    }

    /// The entry of `key`, expired or not, with no other effect: what a
    /// prefetch reads its value from.
    pub fn entry_to_prefetch(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Like [`Db::get`], without counting as an access (OBJECT, TTL-like
    /// introspection).
    pub fn peek(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let entry = self.entries.get(key)?;
        if entry.is_expired(now_ms) {
            self.announce_expired(key, now_ms);
            return None;
        }
        Some(entry)
    }

    /// The live value of `key` for in-place modification. Call
    /// [`Db::touch`] after changing it, so WATCH and change observers see it.
    pub fn value_mut(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Value> {
        self.before_change(key);
        if self.expire_if_due(key, now_ms) {
            self.entries.get_mut(key).map(|entry| {
                entry.mark_access(now_ms);
                entry.value_mut()
            })
        } else {
            None
        }
    }

    /// Whether `key` is live; not an access (EXISTS, like Redis, does not
    /// touch the key).
    pub fn contains(&self, key: &[u8], now_ms: u64) -> bool {
        self.peek(key, now_ms).is_some()
    }

    /// Stores `value` under `key` with the given expiry, replacing whatever
    /// was there; returns the previous live entry.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: Value,
        expires_at: Option<u64>,
        now_ms: u64,
    ) -> Option<Entry> {
        let field_expiry = match &value {
            Value::Hash(hash) => hash.next_field_expiry(),
            _ => None,
        };
        let previous = self.insert_entry(key, Entry::new(key, value, expires_at, now_ms), now_ms);
        self.file_field_expiry(key, field_expiry);
        previous
    }

    /// [`Db::insert`] of a string kept out of line: a raw string, as
    /// OBJECT ENCODING reports it (see [`Entry::encoding`]).
    pub fn insert_raw_str(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        expires_at: Option<u64>,
        now_ms: u64,
    ) -> Option<Entry> {
        let previous = self.insert_entry(
            key,
            Entry::new_raw_str(key, value, expires_at, now_ms),
            now_ms,
        );
        self.file_field_expiry(key, None);
        previous
    }

    /// [`Db::insert`] of the value of `entry`, taken from another key or
    /// database (RENAME, MOVE, COPY), in the same form: a raw string stays
    /// raw, as Redis moves (or, for COPY, duplicates) the object itself.
    pub fn insert_from(
        &mut self,
        key: &[u8],
        entry: Entry,
        expires_at: Option<u64>,
        now_ms: u64,
    ) -> Option<Entry> {
        let raw = entry.is_raw_string();
        match entry.into_value() {
            Value::Str(bytes) if raw => self.insert_raw_str(key, bytes, expires_at, now_ms),
            value => self.insert(key, value, expires_at, now_ms),
        }
    }

    /// [`Db::insert`] of a string, stored inline in the key's entry (no
    /// intermediate `Vec`); a live string of the same length is rewritten
    /// in place.
    pub fn insert_str(&mut self, key: &[u8], value: &[u8], expires_at: Option<u64>, now_ms: u64) {
        self.before_change(key);
        let Some(entry) = self.entries.get_mut(key) else {
            // A new key: one lookup was enough.
            self.insert_absent(key, Entry::new_str(key, value, expires_at, now_ms));
            self.file_field_expiry(key, None);
            self.changed(key);
            return;
        };
        // A live string rewritten with a value of the same length: in
        // place, no allocation.
        let old_expiry = entry.expires_at();
        if !entry.is_expired(now_ms) && entry.overwrite_str(value, expires_at, now_ms) {
            if let Some(changes) = self.changes.as_deref_mut() {
                changes.written(self.index, key, Some(entry));
            }
            if old_expiry != expires_at {
                self.reindex_expiry(key, old_expiry, expires_at);
            }
            self.changed(key);
            return;
        }
        self.insert_entry(key, Entry::new_str(key, value, expires_at, now_ms), now_ms);
        self.file_field_expiry(key, None);
    }

    /// Read-modify-write of a string in one lookup (INCR and friends):
    /// `next` gets the live value of `key` (`None` if there is none),
    /// writes the new value into the buffer it is given and returns what
    /// the caller wants back; the new value is stored inline, keeping the
    /// key's TTL and access history, and the key is touched. WRONGTYPE if
    /// `key` holds another type; nothing changes if `next` fails.
    pub fn update_str<R>(
        &mut self,
        key: &[u8],
        now_ms: u64,
        next: impl FnOnce(Option<&[u8]>, &mut SmallVec<[u8; 32]>) -> Result<R>,
    ) -> Result<R> {
        self.before_change(key);
        let mut text = SmallVec::new();
        let Some(entry) = self.entries.get_mut(key) else {
            let result = next(None, &mut text)?;
            self.insert_absent(key, Entry::new_str(key, &text, None, now_ms));
            self.file_field_expiry(key, None);
            self.changed(key);
            return Ok(result);
        };
        if entry.is_expired(now_ms) {
            // Rare: the lookup is repeated on the way that reclaims it.
            self.remove_entry(key, Removal::Expired);
            return self.update_str(key, now_ms, next);
        }
        let ValueRef::Str(current) = entry.value() else {
            return Err(Error::wrong_type());
        };
        let result = next(Some(current), &mut text)?;
        entry.mark_access(now_ms);
        let expires_at = entry.expires_at();
        // In place when the length is the same (a counter's usually is).
        if !entry.overwrite_str(&text, expires_at, now_ms) {
            let mut fresh = Entry::new_str(key, &text, expires_at, now_ms);
            fresh.inherit_access(entry);
            *entry = fresh;
        }
        if let Some(changes) = self.changes.as_deref_mut() {
            changes.written(self.index, key, Some(entry));
        }
        self.changed(key);
        Ok(result)
    }

    fn insert_entry(&mut self, key: &[u8], mut fresh: Entry, now_ms: u64) -> Option<Entry> {
        self.before_change(key);
        let expires_at = fresh.expires_at();
        let live = self.expire_if_due(key, now_ms);
        let previous = if live {
            let entry = self.entries.get_mut(key)?;
            let old_expiry = entry.expires_at();
            fresh.inherit_access(entry);
            if let Some(changes) = self.changes.as_deref_mut() {
                changes.written(self.index, key, Some(&fresh));
            }
            let old = std::mem::replace(entry, fresh);
            if old_expiry != expires_at {
                self.reindex_expiry(key, old_expiry, expires_at);
            }
            Some(old)
        } else {
            self.insert_absent(key, fresh);
            None
        };
        // What `touch` does; the change was recorded on `fresh` above,
        // saving a lookup.
        self.changed(key);
        previous
    }

    /// Adds `fresh`, the entry of `key`, which is not in the table.
    fn insert_absent(&mut self, key: &[u8], fresh: Entry) {
        if let Some(changes) = self.changes.as_deref_mut() {
            changes.written(self.index, key, Some(&fresh));
        }
        if let Some(signals) = &self.signals {
            signals.send(self.index, key, KeySignal::Added);
        }
        let expires_at = fresh.expires_at();
        let hash = self.entries.insert_new(fresh);
        if let Some(at) = expires_at {
            self.index_expiry(key, at);
        }
        if let Some(fifo) = &mut self.fifo {
            fifo.inserted(hash, &self.entries);
        }
    }

    /// How many removals this part has seen (a token for
    /// [`Db::insert_loaded`]).
    pub fn removals(&self) -> u64 {
        self.removals
    }

    /// Stores a copy of `key` loaded from outside (write-behind's warm start
    /// and read-through) without recording it as a change: only if the key
    /// is absent, no change of it is pending, and nothing was removed from
    /// this part since `removals` was read before the copy was asked for
    /// (else the copy may predate a deletion, expiry or flush). Returns
    /// whether it was stored.
    pub fn insert_loaded(
        &mut self,
        key: &[u8],
        value: Value,
        expires_at: Option<u64>,
        removals: u64,
        now_ms: u64,
    ) -> bool {
        if self.removals != removals
            || self.peek(key, now_ms).is_some()
            || expires_at.is_some_and(|at| at <= now_ms)
            || self
                .changes
                .as_deref()
                .is_some_and(|changes| changes.is_pending(key, self.entries.get(key)))
        {
            return false;
        }
        // Not a change to write behind, nor a new key to announce; but
        // clients caching the key must forget what they had.
        let changes = self.changes.take();
        let signals = self.signals.take();
        self.insert(key, value, expires_at, now_ms);
        self.changes = changes;
        self.signals = signals;
        self.signal(key, KeySignal::Modified);
        true
    }

    /// Removes `key`; returns its entry if it was live.
    pub fn remove(&mut self, key: &[u8], now_ms: u64) -> Option<Entry> {
        if self.expire_if_due(key, now_ms) {
            self.remove_entry(key, Removal::Deleted)
        } else {
            None
        }
    }

    fn remove_entry(&mut self, key: &[u8], removal: Removal) -> Option<Entry> {
        self.before_change(key);
        let entry = self.entries.remove(key)?;
        self.removals += 1;
        self.dirty += 1;
        if let Some(at) = entry.expires_at() {
            self.unindex_expiry(key, at);
        }
        self.file_field_expiry(key, None);
        self.bump_watch(key);
        let announced = self.forget_announced(key);
        let signal = match removal {
            Removal::Deleted => Some(KeySignal::Modified),
            Removal::Expired => (!announced).then_some(KeySignal::Expired),
            Removal::FieldsExpired => Some(KeySignal::Emptied),
            Removal::Gone => Some(KeySignal::Evicted),
        };
        if let Some(signal) = signal {
            self.signal(key, signal);
        }
        if let Some(changes) = self.changes.as_deref_mut() {
            match removal {
                Removal::Deleted => changes.deleted(self.index, key, &entry),
                Removal::Expired | Removal::FieldsExpired => {
                    changes.expired(self.index, key, &entry)
                }
                Removal::Gone => changes.gone(key, &entry),
            }
        }
        Some(entry)
    }

    /// Files the hash at `key` under its current earliest field expiry for
    /// active reclamation, or unfiles it if none of its fields has a TTL.
    /// Call after changing field TTLs in place (HEXPIRE, HPERSIST, HSET...).
    pub fn index_field_expiry(&mut self, key: &[u8]) {
        let next = match self.entries.get(key).map(Entry::value) {
            Some(ValueRef::Hash(hash)) => hash.next_field_expiry(),
            _ => None,
        };
        self.file_field_expiry(key, next);
    }

    fn file_field_expiry(&mut self, key: &[u8], at: Option<u64>) {
        if at.is_none() && self.field_expires_of.is_empty() {
            return;
        }
        let filed = self.field_expires_of.get(key).copied();
        if filed == at {
            return;
        }
        if let Some(old) = filed {
            self.field_expires.remove(&(old, Key::from(key)));
            self.field_expires_of.remove(key);
        }
        if let Some(at) = at {
            self.field_expires.insert((at, Key::from(key)));
            self.field_expires_of.insert(Key::from(key), at);
        }
    }

    /// Sets or clears the expiry of a live key. Returns false if there is none.
    pub fn set_expiry(&mut self, key: &[u8], expires_at: Option<u64>, now_ms: u64) -> bool {
        self.before_change(key);
        if !self.expire_if_due(key, now_ms) {
            return false;
        }
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        let old = entry.expires_at();
        entry.set_expires_at(expires_at);
        if old != expires_at {
            self.reindex_expiry(key, old, expires_at);
        }
        self.touch_with(key, Effect::Expiry);
        true
    }

    fn reindex_expiry(&mut self, key: &[u8], old: Option<u64>, new: Option<u64>) {
        if let Some(at) = old {
            self.unindex_expiry(key, at);
        }
        if let Some(at) = new {
            self.index_expiry(key, at);
        }
    }

    /// Live keys and entries, in no particular order.
    pub fn iter(&self, now_ms: u64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.entries
            .iter()
            .filter(move |e| !e.is_expired(now_ms))
            .map(|e| (e.key(), e))
    }

    /// A key picked at random among the live ones (`nth` is any number; it is
    /// reduced modulo the size).
    pub fn key_at(&mut self, nth: usize, now_ms: u64) -> Option<Key> {
        for _ in 0..8 {
            if self.entries.is_empty() {
                return None;
            }
            let entry = self.entries.pick(nth as u64)?;
            let key = Key::from(entry.key());
            if !entry.is_expired(now_ms) {
                return Some(key);
            }
            if self.keeps_expired(now_ms) {
                continue;
            }
            self.remove_entry(&key, Removal::Expired);
        }
        self.iter(now_ms).next().map(|(k, _)| Key::from(k))
    }

    /// Offers eviction candidates under `policy` to `offer` as
    /// `(score, key)` — the higher the score, the better the victim (an
    /// expired key scores highest): up to `samples` keys picked at random
    /// (volatile policies: among keys with a TTL). `volatile-ttl` needs no
    /// sampling: the expiry index gives this part's soonest-expiring keys.
    /// Offers nothing if no key here may be evicted under `policy`.
    pub fn eviction_samples(
        &self,
        policy: Policy,
        samples: usize,
        now_ms: u64,
        offer: &mut impl FnMut(u64, &[u8]),
    ) {
        if self.entries.is_empty() || (policy.volatile_only() && self.expires.is_empty()) {
            return;
        }
        let samples = samples.max(1);
        if policy == Policy::VolatileTtl {
            for (_, key) in self.expires.iter().take(samples) {
                if let Some(entry) = self.entries.get(key) {
                    offer(evict::score(policy, entry, now_ms), key);
                }
            }
            return;
        }
        let mut found = 0;
        // Volatile keys may be rare among all keys: look a few times further
        // before falling back to the expiry index.
        let attempts = if policy.volatile_only() {
            samples * 4
        } else {
            samples
        };
        // The picks are random slots of a big table, and their entries
        // random allocations: two cache misses each. Taken a few at a time,
        // every slot is requested, then every entry, then all are read, so
        // that the misses overlap instead of following one another.
        const PICKS_AT_ONCE: usize = 8;
        let mut attempted = 0;
        while attempted < attempts {
            let mut picks = [0u64; PICKS_AT_ONCE];
            let picks = &mut picks[..(attempts - attempted).min(PICKS_AT_ONCE)];
            attempted += picks.len();
            for nth in picks.iter_mut() {
                *nth = evict::random_u64();
                self.entries.prefetch_pick(*nth);
            }
            for &nth in picks.iter() {
                if let Some(entry) = self.entries.pick(nth) {
                    entry.prefetch();
                }
            }
            for &nth in picks.iter() {
                let Some(entry) = self.entries.pick(nth) else {
                    continue;
                };
                if policy.volatile_only() && entry.expires_at().is_none() {
                    continue;
                }
                offer(evict::score(policy, entry, now_ms), entry.key());
                found += 1;
                if found >= samples {
                    return;
                }
            }
        }
        if found == 0 && policy.volatile_only() {
            for (_, key) in self.expires.iter().take(samples) {
                if let Some(entry) = self.entries.get(key) {
                    offer(evict::score(policy, entry, now_ms), key);
                }
            }
        }
    }

    /// Removes `key` for eviction, if it is there (and, if `volatile_only`,
    /// has a TTL); WATCHers see a change. The entry is returned so that the
    /// caller frees it after releasing the lock.
    pub fn evict(&mut self, key: &[u8], volatile_only: bool) -> Option<Entry> {
        let entry = self.entries.get(key)?;
        if volatile_only && entry.expires_at().is_none() {
            return None;
        }
        self.remove_entry(key, Removal::Gone)
    }

    /// Starts (building queues from the keys present) or stops keeping
    /// S3-FIFO queues.
    pub fn track_s3fifo(&mut self, on: bool) {
        match (on, self.fifo.is_some()) {
            (true, false) => self.fifo = Some(Box::new(S3Fifo::tracking(&self.entries))),
            (false, true) => self.fifo = None,
            _ => {}
        }
    }

    /// Removes the next S3-FIFO victim (see `store::s3fifo`); `None` if
    /// there is no key or no queues. The entry is returned so that the
    /// caller frees it after releasing the lock.
    pub fn evict_s3fifo(&mut self, now_ms: u64) -> Option<Entry> {
        let hash = self.fifo.as_mut()?.victim(&self.entries, now_ms)?;
        let key = Key::from(self.entries.get_by_hash(hash)?.key());
        self.remove_entry(&key, Removal::Gone)
    }

    /// Removes every key. WATCHers of keys that existed see a change. The
    /// removed contents are returned so that the caller can free them after
    /// releasing the shard lock.
    #[must_use = "drop the removed contents outside the lock"]
    pub fn clear(&mut self) -> RemovedContents {
        self.finish_snapshot_now();
        self.announced_expired.get_mut().clear();
        if !self.watched.is_empty() {
            let existing: Vec<Key> = self
                .watched
                .keys()
                .filter(|k| self.entries.contains_key(k))
                .cloned()
                .collect();
            for key in existing {
                self.bump_watch(&key);
            }
        }
        if let Some(changes) = self.changes.as_deref_mut() {
            changes.cleared(self.index);
        }
        if let Some(fifo) = &mut self.fifo {
            fifo.clear();
        }
        self.removals += 1;
        RemovedContents {
            keys: self.entries.len(),
            _entries: std::mem::take(&mut self.entries),
            _expires: {
                self.expiry_sum = 0;
                std::mem::take(&mut self.expires)
            },
            _field_expires: std::mem::take(&mut self.field_expires),
            _field_expires_of: std::mem::take(&mut self.field_expires_of),
        }
    }

    /// Exchanges the contents (not the WATCH state) of two databases, as
    /// SWAPDB does; WATCHers of keys existing in either see a change.
    /// `announce`: tell write-behind that both databases were replaced
    /// (once per SWAPDB, by its first shard: a later announcement would
    /// also drop the rows the earlier shards just wrote back).
    pub fn swap_contents(a: &mut Db, b: &mut Db, announce: bool) {
        a.finish_snapshot_now();
        b.finish_snapshot_now();
        std::mem::swap(&mut a.entries, &mut b.entries);
        std::mem::swap(&mut a.expires, &mut b.expires);
        std::mem::swap(&mut a.expiry_sum, &mut b.expiry_sum);
        std::mem::swap(&mut a.field_expires, &mut b.field_expires);
        std::mem::swap(&mut a.announced_expired, &mut b.announced_expired);
        std::mem::swap(&mut a.field_expires_of, &mut b.field_expires_of);
        std::mem::swap(&mut a.fifo, &mut b.fifo);
        for db in [&mut *a, &mut *b] {
            db.removals += 1;
            let watched: Vec<Key> = db.watched.keys().cloned().collect();
            for key in watched {
                db.bump_watch(&key);
            }
            // For write-behind the database was replaced: flush it, then
            // write every key it holds now.
            if let Some(changes) = db.changes.as_deref_mut() {
                changes.drop_queue();
                if announce {
                    changes.announce_cleared(db.index);
                }
                for entry in db.entries.iter() {
                    // The bit came from the other database's queue.
                    entry.set_pending(false);
                    changes.written(db.index, entry.key(), Some(entry));
                }
            }
        }
    }

    /// Before `key` changes or goes: a running snapshot that has not
    /// written it yet writes it now (see `store::snapshot`).
    #[inline]
    fn before_change(&mut self, key: &[u8]) {
        if let Some(snapshot) = self.snapshot.as_deref_mut() {
            snapshot.capture_key(self.index, key, self.entries.get(key));
        }
    }

    /// Joins a snapshot starting now, if this part has keys.
    pub(super) fn begin_snapshot(&mut self, capture: &Arc<dyn SnapshotCapture>) {
        if !self.entries.is_empty() {
            self.snapshot = Some(PartSnapshot::new(capture.clone(), &self.entries));
        }
    }

    /// One step of the running snapshot's walk over this part (at most
    /// `slots` table slots); true once the walk is over (or none runs).
    pub(super) fn walk_snapshot(&mut self, slots: usize) -> bool {
        let Some(snapshot) = self.snapshot.as_deref_mut() else {
            return true;
        };
        let finished = snapshot.walk(self.index, &self.entries, slots);
        if finished {
            self.snapshot = None;
        }
        finished
    }

    /// Before the whole part is replaced: the running snapshot writes
    /// all it has not written yet, now.
    fn finish_snapshot_now(&mut self) {
        self.walk_snapshot(usize::MAX);
    }

    pub(super) fn snapshot_pending(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Moves up to `entries` keys of a key table resize under way (see
    /// `EntryMap::rehash`); returns how many.
    pub fn rehash(&mut self, entries: usize) -> usize {
        self.entries.rehash(entries)
    }

    /// Reclaims at most `limit` keys whose TTL passed and at most `limit`
    /// hash fields whose TTL passed; returns how many of both (see
    /// [`Db::expire_due_counts`] for them apart).
    pub fn expire_due(&mut self, now_ms: u64, limit: usize) -> usize {
        let counts = self.expire_due_counts(now_ms, limit);
        counts.keys + counts.fields
    }

    /// [`Db::expire_due`], with keys and hash fields counted apart.
    pub fn expire_due_counts(&mut self, now_ms: u64, limit: usize) -> ExpiredCounts {
        let keys = self.expire_due_keys(now_ms, limit);
        let fields = self.expire_due_fields(now_ms, limit);
        ExpiredCounts { keys, fields }
    }

    fn expire_due_keys(&mut self, now_ms: u64, limit: usize) -> usize {
        let mut reclaimed = 0;
        while reclaimed < limit {
            let Some((at, _)) = self.expires.first() else {
                break;
            };
            if *at >= now_ms {
                break;
            }
            let Some((at, key)) = self.expires.pop_first() else {
                break;
            };
            self.expiry_sum -= u128::from(at);
            self.before_change(&key);
            if let Some(entry) = self.entries.remove(&key) {
                // A removal like any other: a copy being loaded from
                // elsewhere may predate it (see `insert_loaded`).
                self.removals += 1;
                self.file_field_expiry(&key, None);
                self.bump_watch(&key);
                if !self.forget_announced(&key) {
                    self.signal(&key, KeySignal::Expired);
                }
                if let Some(changes) = self.changes.as_deref_mut() {
                    changes.expired(self.index, &key, &entry);
                }
            }
            reclaimed += 1;
        }
        reclaimed
    }

    /// Reclaims due hash fields, earliest hash first, at most `limit` fields
    /// and `limit` hashes looked at. A hash left empty is removed, as Redis
    /// does; a changed one is touched for WATCH.
    fn expire_due_fields(&mut self, now_ms: u64, limit: usize) -> usize {
        let mut reclaimed = 0;
        let mut visited = 0;
        while reclaimed < limit && visited < limit {
            let Some((at, _)) = self.field_expires.first() else {
                break;
            };
            if *at >= now_ms {
                break;
            }
            let Some((_, key)) = self.field_expires.pop_first() else {
                break;
            };
            visited += 1;
            self.field_expires_of.remove(&key);
            self.before_change(&key);
            let (removed, empty, next) = {
                let Some(entry) = self.entries.get_mut(&key) else {
                    continue;
                };
                if entry.is_expired(now_ms) {
                    // The whole key is due: key expiry reclaims it.
                    continue;
                }
                let Value::Hash(hash) = entry.value_mut() else {
                    continue;
                };
                let removed = hash.reclaim_expired(now_ms, limit - reclaimed);
                (removed, hash.is_empty(), hash.next_field_expiry())
            };
            reclaimed += removed;
            if removed > 0 {
                self.signal(&key, KeySignal::FieldsExpired);
            }
            if empty {
                self.remove_entry(&key, Removal::FieldsExpired);
                continue;
            }
            if removed > 0 {
                self.bump_watch(&key);
                if let Some(changes) = self.changes.as_deref_mut() {
                    changes.written(self.index, &key, self.entries.get(&key));
                }
            }
            self.file_field_expiry(&key, next);
        }
        reclaimed
    }

    /// Starts recording changes for `observer` (write-behind).
    pub(crate) fn observe_changes(&mut self, observer: Arc<dyn ChangeObserver>) {
        self.changes = Some(Box::new(ChangeTracker::new(observer)));
    }

    /// Takes up to `max` pending changes out, handing each to `f` with the
    /// key's entry as it is now (also if its TTL passed and it was not
    /// reclaimed yet: write-behind stores a key's last value). Returns how
    /// many were taken.
    pub fn drain_changes(
        &mut self,
        max: usize,
        mut f: impl FnMut(Key, Pending, Option<&Entry>),
    ) -> usize {
        let Some(changes) = self.changes.as_deref_mut() else {
            return 0;
        };
        let mut taken = 0;
        while taken < max {
            let Some((key, pending, entry)) = changes.pop(|key| self.entries.get(key)) else {
                break;
            };
            f(key, pending, entry);
            taken += 1;
        }
        taken
    }

    /// Every pending change, oldest first, as its key, its entry if it is
    /// in memory, or its state if it left memory; nothing is taken out
    /// (the write-behind journal's rewrite).
    pub fn pending_changes(&self, f: impl FnMut(&[u8], Option<&Entry>, Option<&PendingState>)) {
        if let Some(changes) = self.changes.as_deref() {
            changes.for_each(|key| self.entries.get(key), f);
        }
    }

    /// Records that `key` changed: WATCHers of it will abort their EXEC,
    /// and write-behind (if on) will store its new state.
    pub fn touch(&mut self, key: &[u8]) {
        self.changed(key);
        if let Some(changes) = self.changes.as_deref_mut() {
            changes.written(self.index, key, self.entries.get(key));
        }
    }

    /// [`Db::touch`], saying what the change did (so that the write-behind
    /// journal records that rather than the whole value).
    pub fn touch_with(&mut self, key: &[u8], effect: Effect<'_>) {
        self.changed(key);
        if let Some(changes) = self.changes.as_deref_mut() {
            changes.written_with(self.index, key, self.entries.get(key), Some(effect));
        }
    }

    /// Records a change Redis makes without `signalModifiedKey` (the
    /// state of a stream's consumer groups: XREADGROUP, XACK, XCLAIM,
    /// XAUTOCLAIM, XGROUP): counted as a change (INFO's
    /// `rdb_changes_since_last_save`) and stored by write-behind, saying
    /// what it did when `effect` is set; WATCH, client tracking and the
    /// signal listener do not see it, as in Redis.
    pub fn touch_unsignalled(&mut self, key: &[u8], effect: Option<Effect<'_>>) {
        self.dirty += 1;
        if let Some(changes) = self.changes.as_deref_mut() {
            changes.written_with(self.index, key, self.entries.get(key), effect);
        }
    }

    /// Makes `state` a pending change of `key` for write-behind without
    /// touching the map (journal replay of a delete, or of a value whose
    /// TTL passed while the server was down). Nothing happens without a
    /// change observer.
    pub fn restore_pending(&mut self, key: &[u8], state: PendingState) {
        if let Some(changes) = self.changes.as_deref_mut() {
            changes.restored(self.index, key, state, self.entries.get(key));
        }
    }

    /// A command changed `key`: WATCHers and the signal listener see it.
    fn changed(&mut self, key: &[u8]) {
        self.dirty += 1;
        self.bump_watch(key);
        self.signal(key, KeySignal::Modified);
    }

    /// A read found `key` past its TTL: listeners hear of its expiry now
    /// (clients caching it forget it, `expired` is notified), once, as
    /// when Redis reclaims a key on access; its reclaiming later is not
    /// announced again.
    #[cold]
    fn announce_expired(&self, key: &[u8], now_ms: u64) {
        let Some(signals) = &self.signals else {
            return;
        };
        // Paused: the key is not reclaimed now, so nothing is announced;
        // its reclaiming after the pause is.
        if signals.wants(KeySignal::Expired)
            && !self.keeps_expired(now_ms)
            && self.announced_expired.lock().insert(Key::from(key))
        {
            signals.send(self.index, key, KeySignal::Expired);
        }
    }

    /// Whether CLIENT PAUSE keeps keys past their TTL at `now_ms`.
    fn keeps_expired(&self, now_ms: u64) -> bool {
        self.expiry_pause
            .as_ref()
            .is_some_and(|pause| pause.paused(now_ms))
    }

    /// Whether `key`'s expiry was announced by a read (and forgets it).
    fn forget_announced(&mut self, key: &[u8]) -> bool {
        let announced = self.announced_expired.get_mut();
        !announced.is_empty() && announced.remove(key)
    }

    #[inline]
    fn signal(&self, key: &[u8], signal: KeySignal) {
        if let Some(signals) = &self.signals {
            signals.send(self.index, key, signal);
        }
    }

    /// Starts signalling changes to `signals`' listener.
    pub(crate) fn listen(&mut self, signals: KeySignals) {
        self.signals = Some(signals);
    }

    fn bump_watch(&mut self, key: &[u8]) {
        if self.watched.is_empty() {
            return;
        }
        if let Some(slot) = self.watched.get_mut(key) {
            self.version_clock += 1;
            slot.version = self.version_clock;
        }
    }

    /// Starts watching `key`; returns the version to compare at EXEC.
    pub fn watch(&mut self, key: &[u8]) -> u64 {
        self.version_clock += 1;
        let fresh = self.version_clock;
        let slot = self.watched.entry(Key::from(key)).or_insert(WatchSlot {
            version: fresh,
            watchers: 0,
        });
        slot.watchers += 1;
        slot.version
    }

    /// Stops one watcher of `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some(slot) = self.watched.get_mut(key) {
            slot.watchers -= 1;
            if slot.watchers == 0 {
                self.watched.remove(key);
            }
        }
    }

    /// The current version of a watched key.
    pub fn watch_version(&self, key: &[u8]) -> Option<u64> {
        self.watched.get(key).map(|slot| slot.version)
    }
}

/// What one [`Db::expire_due_counts`] call reclaimed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiredCounts {
    /// Keys whose TTL passed.
    pub keys: usize,
    /// Hash fields whose TTL passed (Redis's `expired_subkeys`).
    pub fields: usize,
}

/// Keys removed by [`Db::clear`], freed when dropped.
pub struct RemovedContents {
    keys: usize,
    _entries: EntryMap,
    _expires: BTreeSet<(u64, Key)>,
    _field_expires: BTreeSet<(u64, Key)>,
    _field_expires_of: HashMap<Key, u64, RandomState>,
}

impl RemovedContents {
    /// How many keys were removed.
    pub fn keys(&self) -> usize {
        self.keys
    }
}

/// A shard: one [`Db`] part per logical database, each created the first
/// time it is used mutably (a `databases 10000` server would otherwise pay
/// for 10000 empty parts in each of its shards at start: 571 MB).
pub struct Shard {
    /// The parts created so far, by database number.
    dbs: Vec<Option<Box<Db>>>,
    /// What a part not created yet reads as.
    empty: Db,
    /// The write-behind observer every new part reports to.
    observer: Option<Arc<dyn ChangeObserver>>,
    /// The signal listener every new part reports to.
    signals: Option<KeySignals>,
    /// Whether new parts keep S3-FIFO queues (the store's flag).
    s3fifo: Arc<AtomicBool>,
    /// The store's CLIENT PAUSE state, handed to every new part.
    expiry_pause: ExpiryPause,
    /// The number of databases configured.
    configured: usize,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("dbs", &self.dbs)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl Shard {
    /// A shard for `databases` databases, with no part yet; `s3fifo` is
    /// the store's flag saying whether parts keep S3-FIFO queues, and
    /// `expiry_pause` its CLIENT PAUSE state.
    pub fn new(databases: usize, s3fifo: Arc<AtomicBool>, expiry_pause: ExpiryPause) -> Self {
        Shard {
            dbs: Vec::new(),
            empty: Db::default(),
            observer: None,
            signals: None,
            s3fifo,
            expiry_pause,
            configured: databases,
        }
    }

    /// Empties database `index` here (FLUSHDB); `None` if it has no part.
    /// Under write-behind the part is made if needed, so that the observer
    /// hears of the flush from every shard, as before parts were lazy.
    pub fn clear_db(&mut self, index: usize) -> Option<RemovedContents> {
        if self.observer.is_some() {
            return Some(self.db(index).clear());
        }
        self.existing_db_mut(index).map(Db::clear)
    }

    /// Empties every database here (FLUSHALL); as [`Shard::clear_db`].
    pub fn clear_all(&mut self) -> Vec<RemovedContents> {
        if self.observer.is_some() {
            return (0..self.configured)
                .map(|index| self.db(index).clear())
                .collect();
        }
        self.existing_dbs_mut().map(Db::clear).collect()
    }

    /// This shard's part of database `index`, created if needed (callers
    /// check the range).
    pub fn db(&mut self, index: usize) -> &mut Db {
        if index >= self.dbs.len() {
            self.dbs.resize_with(index + 1, || None);
        }
        let (observer, signals, s3fifo) = (&self.observer, &self.signals, &self.s3fifo);
        let expiry_pause = &self.expiry_pause;
        self.dbs[index].get_or_insert_with(|| {
            let mut db = Box::new(Db {
                index,
                expiry_pause: Some(expiry_pause.clone()),
                ..Db::default()
            });
            if let Some(observer) = observer {
                db.observe_changes(observer.clone());
            }
            if let Some(signals) = signals {
                db.listen(signals.clone());
            }
            if s3fifo.load(Ordering::Relaxed) {
                db.track_s3fifo(true);
            }
            db
        })
    }

    /// This shard's part of database `index`; an empty one if it was never
    /// created.
    pub fn db_ref(&self, index: usize) -> &Db {
        self.dbs
            .get(index)
            .and_then(Option::as_deref)
            .unwrap_or(&self.empty)
    }

    /// One more than the highest database number with a part here: the
    /// parts beyond are empty (and not created).
    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    /// This shard's part of database `index`, if it was created.
    pub fn existing_db(&self, index: usize) -> Option<&Db> {
        self.dbs.get(index).and_then(Option::as_deref)
    }

    /// This shard's part of database `index`, if it was created.
    pub fn existing_db_mut(&mut self, index: usize) -> Option<&mut Db> {
        self.dbs.get_mut(index).and_then(Option::as_deref_mut)
    }

    /// The parts created so far.
    pub fn existing_dbs_mut(&mut self) -> impl Iterator<Item = &mut Db> {
        self.dbs.iter_mut().filter_map(|db| db.as_deref_mut())
    }

    /// Reports every change, in every part present and future, to
    /// `observer` (write-behind).
    pub(crate) fn observe_changes(&mut self, observer: Arc<dyn ChangeObserver>) {
        for db in self.existing_dbs_mut() {
            db.observe_changes(observer.clone());
        }
        self.observer = Some(observer);
    }

    /// Signals changes of every part, present and future, to `signals`.
    pub(crate) fn listen(&mut self, signals: KeySignals) {
        for db in self.existing_dbs_mut() {
            db.listen(signals.clone());
        }
        self.signals = Some(signals);
    }

    /// Two distinct databases at once (MOVE, COPY ... DB).
    pub fn two_dbs(&mut self, a: usize, b: usize) -> (&mut Db, &mut Db) {
        assert_ne!(a, b, "two_dbs needs two different databases");
        self.db(a);
        self.db(b);
        let (low, high) = (a.min(b), a.max(b));
        let (left, right) = self.dbs.split_at_mut(high);
        let (Some(low_db), Some(high_db)) = (left[low].as_deref_mut(), right[0].as_deref_mut())
        else {
            unreachable!("both parts were just created");
        };
        if a < b {
            (low_db, high_db)
        } else {
            (high_db, low_db)
        }
    }

    pub fn swap_dbs(&mut self, a: usize, b: usize, announce: bool) {
        let exists = |index: usize| self.dbs.get(index).is_some_and(Option::is_some);
        // Two parts never created hold no key and no WATCH: nothing to do
        // (but write-behind hears of every swap, as a flush of both).
        if a == b || (!exists(a) && !exists(b) && self.observer.is_none()) {
            return;
        }
        let (x, y) = self.two_dbs(a, b);
        Db::swap_contents(x, y, announce);
    }
}
