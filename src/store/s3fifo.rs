//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
//! SOSP 2023), one instance per database part of a shard, for the
//! `allkeys-s3fifo` policy.
//!
//! Three FIFO queues of 64-bit key hashes (the hash the shard's map already
//! uses for the key, so a queue slot costs 8 bytes and finds its entry with
//! one hash probe):
//!
//! - **small** (~10% of the keys): every new key enters here. At its head, a
//!   key read since it was inserted moves to main; one never read (a
//!   one-hit wonder, or one step of a scan) is evicted and its hash
//!   remembered in the ghost.
//! - **main**: at its head, a key read since it last passed gets its counter
//!   decremented and goes back to the tail; one not read is evicted.
//! - **ghost**: hashes of keys recently evicted from small. A key inserted
//!   again while its hash is there was evicted too early: it goes straight
//!   to main.
//!
//! Each entry's 2-bit frequency counter (saturating at 3) lives in spare bits
//! of its LFU atomic (see `value::LfuCounter`): a GET hit bumps it with a
//! relaxed load and store, no lock upgrade, no allocation, no queue move.
//! Queues are only changed on insertion and eviction, both of which hold the
//! shard lock anyway. Deleted or expired keys are not searched for in the
//! queues: their slots are skipped when they reach the head, and the queues
//! are compacted when stale slots outnumber live keys.

use std::collections::VecDeque;

pub(super) use super::keymap::EntryMap;

/// A small-queue key is promoted to main if read at least this often.
const PROMOTE_FREQ: u8 = 1;

/// The small queue's share of the keys, in percent (the paper's 10%).
const SMALL_PERCENT: usize = 10;

/// How many unflushed write-behind keys in a row one victim search passes
/// over before it reports none: bounds the work under the shard lock when
/// memory is full of data PostgreSQL has not confirmed.
const UNFLUSHED_SCAN_LIMIT: usize = 1024;

/// The three queues of one database part.
#[derive(Debug, Default)]
pub struct S3Fifo {
    small: VecDeque<u64>,
    main: VecDeque<u64>,
    ghost: Ghost,
}

/// Appends to a queue, growing it by a quarter rather than doubling it: the
/// queues cost 8 bytes per key plus that slack, and memory spent on them is
/// memory not spent on keys.
fn push(queue: &mut VecDeque<u64>, hash: u64) {
    if queue.len() == queue.capacity() {
        queue.reserve_exact(queue.len() / 4 + 8);
    }
    queue.push_back(hash);
}

/// The hash the map uses for `key`.
#[cfg(test)]
pub(super) fn key_hash(map: &EntryMap, key: &[u8]) -> u64 {
    map.hash(key)
}

fn find(map: &EntryMap, hash: u64) -> Option<&super::value::Entry> {
    map.get_by_hash(hash)
}

impl S3Fifo {
    /// Queues for a map that already holds keys: they all go to main (they
    /// have been in the cache already), in the map's order.
    pub(super) fn tracking(map: &EntryMap) -> Self {
        S3Fifo {
            main: map.iter().map(|e| map.hash(e.key())).collect(),
            ..S3Fifo::default()
        }
    }

    /// Records a new key (not an overwrite of a live one).
    pub(super) fn inserted(&mut self, hash: u64, map: &EntryMap) {
        if self.ghost.take(hash) {
            push(&mut self.main, hash);
        } else {
            push(&mut self.small, hash);
        }
        if self.small.len() + self.main.len() > 2 * map.len() + 64 {
            self.compact(map);
        }
    }

    /// Drops the slots of keys that are gone.
    fn compact(&mut self, map: &EntryMap) {
        self.small.retain(|&h| find(map, h).is_some());
        self.main.retain(|&h| find(map, h).is_some());
        self.small.shrink_to(self.small.len() * 2);
        self.main.shrink_to(self.main.len() * 2);
    }

    /// Forgets everything (FLUSHDB).
    pub(super) fn clear(&mut self) {
        *self = S3Fifo::default();
    }

    /// Picks the next victim, moving keys between queues on the way as the
    /// algorithm does; returns its key's hash (the caller removes it right
    /// away). An expired key met on the way is returned at once.
    /// `None` if the map is empty, or if the keys met are all unflushed
    /// write-behind changes (PENDING): evicting one would free nothing (its
    /// value moves to the change tracker's side map), so they are passed
    /// over, going back to the tail of their queue, and after
    /// [`UNFLUSHED_SCAN_LIMIT`] of them in a row (or every queued key) the
    /// search gives up.
    pub(super) fn victim(&mut self, map: &EntryMap, now_ms: u64) -> Option<u64> {
        if map.is_empty() {
            return None;
        }
        let mut unflushed_passed = 0usize;
        let unflushed_limit = (self.small.len() + self.main.len()).min(UNFLUSHED_SCAN_LIMIT);
        // Small is filled by every key until the first eviction, then
        // holds ~10%: give back the room it no longer needs.
        for queue in [&mut self.small, &mut self.main] {
            if queue.capacity() > 2 * queue.len() + 64 {
                queue.shrink_to(queue.len() + queue.len() / 4 + 8);
            }
        }
        // Every live key has a slot, so this ends; the bound is a guard
        // against a bug turning into a stall under the shard lock.
        let mut budget = 8 * (self.small.len() + self.main.len()) + 64;
        while budget > 0 {
            budget -= 1;
            let queued = self.small.len() + self.main.len();
            let from_small = !self.small.is_empty()
                && (self.small.len() * 100 >= queued * SMALL_PERCENT || self.main.is_empty());
            if from_small {
                let hash = self.small.pop_front()?;
                let Some(entry) = find(map, hash) else {
                    continue;
                };
                if entry.is_pending() {
                    push(&mut self.small, hash);
                    unflushed_passed += 1;
                    if unflushed_passed >= unflushed_limit {
                        return None;
                    }
                    continue;
                }
                if entry.is_expired(now_ms) {
                    return Some(hash);
                }
                if entry.lfu().fifo_freq() >= PROMOTE_FREQ {
                    push(&mut self.main, hash);
                    continue;
                }
                self.ghost.insert(hash, map.len());
                return Some(hash);
            }
            let Some(hash) = self.main.pop_front() else {
                break;
            };
            let Some(entry) = find(map, hash) else {
                continue;
            };
            if entry.is_pending() {
                self.main.push_back(hash);
                unflushed_passed += 1;
                if unflushed_passed >= unflushed_limit {
                    return None;
                }
                continue;
            }
            if entry.is_expired(now_ms) {
                return Some(hash);
            }
            let freq = entry.lfu().fifo_freq();
            if freq > 0 {
                entry.lfu().set_fifo_freq(freq - 1);
                self.main.push_back(hash);
                continue;
            }
            return Some(hash);
        }
        // Queues lost track of the keys (should not happen): rebuild them.
        *self = S3Fifo::tracking(map);
        self.main
            .pop_front()
            .filter(|&h| find(map, h).is_some_and(|e| !e.is_pending()))
    }

    #[cfg(test)]
    fn lens(&self) -> (usize, usize, usize) {
        (self.small.len(), self.main.len(), self.ghost.len())
    }
}

/// Hashes of keys evicted from the small queue, about as many as main holds
/// (the paper's ghost size): a table of 4-slot buckets, each bucket a little FIFO (newest
/// first), so that with buckets picked by hash the whole behaves as a FIFO
/// of the table's size, at 8 bytes per remembered key and with no per-entry
/// allocation. 0 marks an empty slot (a hash of 0 is stored as 1).
#[derive(Debug, Default)]
struct Ghost {
    slots: Vec<u64>,
}

const GHOST_WAYS: usize = 4;

impl Ghost {
    fn bucket(&self, hash: u64) -> usize {
        let buckets = (self.slots.len() / GHOST_WAYS) as u64;
        // High bits, scaled to the bucket count (multiply-shift): the map's
        // table uses the low ones.
        (((hash >> 32) * buckets) >> 32) as usize * GHOST_WAYS
    }

    /// Remembers `hash`, sizing the table for 90% of `keys` keys (grown by
    /// a quarter at a time).
    fn insert(&mut self, hash: u64, keys: usize) {
        let hash = hash.max(1);
        let want = (keys * 9 / 10).max(GHOST_WAYS);
        if self.slots.len() < want {
            let grown = (self.slots.len() + self.slots.len() / 4).max(want);
            self.resize(grown.div_ceil(GHOST_WAYS) * GHOST_WAYS);
        }
        let start = self.bucket(hash);
        let bucket = &mut self.slots[start..start + GHOST_WAYS];
        bucket.copy_within(0..GHOST_WAYS - 1, 1);
        bucket[0] = hash;
    }

    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0; slots]);
        // Oldest first, so each bucket ends newest first.
        for way in (0..GHOST_WAYS).rev() {
            for bucket in old.chunks_exact(GHOST_WAYS) {
                if bucket[way] != 0 {
                    let start = self.bucket(bucket[way]);
                    let b = &mut self.slots[start..start + GHOST_WAYS];
                    b.copy_within(0..GHOST_WAYS - 1, 1);
                    b[0] = bucket[way];
                }
            }
        }
    }

    /// Whether `hash` is remembered; forgets it if so.
    fn take(&mut self, hash: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let hash = hash.max(1);
        let start = self.bucket(hash);
        let bucket = &mut self.slots[start..start + GHOST_WAYS];
        match bucket.iter().position(|&h| h == hash) {
            Some(i) => {
                bucket.copy_within(i + 1.., i);
                bucket[GHOST_WAYS - 1] = 0;
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().filter(|&&h| h != 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Entry;

    struct Cache {
        map: EntryMap,
        fifo: S3Fifo,
    }

    impl Cache {
        fn new() -> Self {
            Cache {
                map: EntryMap::default(),
                fifo: S3Fifo::default(),
            }
        }

        fn insert(&mut self, key: &str) {
            let hash = self
                .map
                .insert_new(Entry::new_str(key.as_bytes(), b"v", None, 0));
            self.fifo.inserted(hash, &self.map);
        }

        fn read(&self, key: &str) -> bool {
            match self.map.get(key.as_bytes()) {
                Some(entry) => {
                    entry.mark_access(0);
                    true
                }
                None => false,
            }
        }

        fn evict(&mut self) -> Option<String> {
            let hash = self.fifo.victim(&self.map, 0)?;
            let key = self.map.get_by_hash(hash)?.key().to_vec();
            self.map.remove(&key)?;
            Some(String::from_utf8_lossy(&key).into_owned())
        }

        /// Cache-aside access with room for `capacity` keys.
        fn access(&mut self, key: &str, capacity: usize) -> bool {
            if self.read(key) {
                return true;
            }
            self.insert(key);
            while self.map.len() > capacity {
                self.evict();
            }
            false
        }
    }

    #[test]
    fn one_hit_wonders_go_first() {
        let mut cache = Cache::new();
        for i in 0..10 {
            cache.insert(&format!("hot{i}"));
        }
        for i in 0..10 {
            assert!(cache.read(&format!("hot{i}")));
        }
        for i in 0..10 {
            cache.insert(&format!("once{i}"));
        }
        // Until small is down to 10% of the keys, it gives the victims.
        let evicted: Vec<String> = (0..8).filter_map(|_| cache.evict()).collect();
        assert_eq!(evicted.len(), 8);
        assert!(evicted.iter().all(|k| k.starts_with("once")), "{evicted:?}");
        assert_eq!(cache.fifo.lens().1, 10, "the read keys moved to main");
    }

    #[test]
    fn frequently_read_keys_survive_a_scan() {
        let mut cache = Cache::new();
        let capacity = 100;
        for round in 0..20 {
            for i in 0..50 {
                cache.access(&format!("hot{i}"), capacity);
            }
            let _ = round;
        }
        for i in 0..10_000 {
            cache.access(&format!("scan{i}"), capacity);
        }
        let kept = (0..50)
            .filter(|i| cache.map.contains_key(format!("hot{i}").as_bytes()))
            .count();
        assert_eq!(kept, 50);
        assert_eq!(cache.map.len(), capacity);
    }

    #[test]
    fn ghost_hits_go_to_main() {
        let mut cache = Cache::new();
        cache.insert("k");
        for i in 0..20 {
            cache.insert(&format!("x{i}"));
        }
        assert_eq!(cache.evict().as_deref(), Some("k"));
        assert_eq!(cache.fifo.ghost.len(), 1);
        let (small, main, _) = cache.fifo.lens();
        cache.insert("k");
        assert_eq!(cache.fifo.lens(), (small, main + 1, 0));
        // In main, unread, it is the next victim only once small is small.
        assert!(cache.fifo.main.contains(&key_hash(&cache.map, b"k")));
    }

    #[test]
    fn deleted_keys_are_skipped_and_compacted() {
        let mut cache = Cache::new();
        for i in 0..1000 {
            cache.insert(&format!("k{i}"));
            cache.map.remove(format!("k{i}").as_bytes());
        }
        assert!(cache.fifo.lens().0 < 200);
        assert_eq!(cache.evict(), None);
        cache.insert("a");
        cache.insert("b");
        assert_eq!(cache.evict().as_deref(), Some("a"));
    }

    #[test]
    fn unflushed_keys_are_passed_over_and_never_chosen() {
        let mut cache = Cache::new();
        for i in 0..10 {
            cache.insert(&format!("pending{i}"));
            if let Some(entry) = cache.map.get(format!("pending{i}").as_bytes()) {
                entry.set_pending(true);
            }
        }
        cache.insert("clean");
        assert_eq!(cache.evict().as_deref(), Some("clean"));
        // Only unflushed keys left: no victim, and they all stay.
        assert_eq!(cache.evict(), None);
        assert_eq!(cache.map.len(), 10);
        // Flushed, a key is a victim again.
        if let Some(entry) = cache.map.get(b"pending3") {
            entry.set_pending(false);
        }
        assert_eq!(cache.evict().as_deref(), Some("pending3"));
    }

    #[test]
    fn keeps_a_zipf_head_better_than_fifo() {
        // A scan-heavy mix: hot keys re-read, cold keys seen once.
        let mut cache = Cache::new();
        let mut hits = 0;
        let mut state = 0x1234_5678u64;
        for n in 0..50_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = if state.is_multiple_of(2) {
                format!("hot{}", state % 64)
            } else {
                format!("cold{n}")
            };
            if cache.access(&key, 100) {
                hits += 1;
            }
        }
        // Nearly every hot access hits after warm-up.
        assert!(hits > 24_000, "{hits}");
    }
}
