//! The shard map: a hashbrown `RawTable` of thin [`Entry`] pointers, 9 bytes
//! per bucket (the pointer and a control byte), hashing each key read
//! through its pointer. The raw table (rather than `HashMap`) gives bucket
//! indexes, so a random key is an O(1) pick (eviction sampling, RANDOMKEY).

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::raw::RawTable;

use super::entry::Entry;

/// One database part's keys.
#[derive(Default)]
pub struct EntryMap {
    table: RawTable<Entry>,
    hasher: RandomState,
}

impl std::fmt::Debug for EntryMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryMap")
            .field("len", &self.len())
            .field("buckets", &self.table.buckets())
            .finish()
    }
}

impl EntryMap {
    /// The hash this map files `key` under (also what S3-FIFO queues hold).
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Buckets allocated (the table's memory is 9 bytes per bucket).
    #[cfg(test)]
    pub fn buckets(&self) -> usize {
        self.table.buckets()
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.table.get(self.hash(key), |e| e.key() == key)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let hash = self.hash(key);
        self.table.get_mut(hash, |e| e.key() == key)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// The entry whose key has `hash`, if any (S3-FIFO's queue slots).
    pub fn get_by_hash(&self, hash: u64) -> Option<&Entry> {
        self.table
            .get(hash, |e| self.hasher.hash_one(e.key()) == hash)
    }

    /// Adds an entry whose key is not in the map yet; returns its hash.
    pub fn insert_new(&mut self, entry: Entry) -> u64 {
        let hash = self.hash(entry.key());
        let hasher = &self.hasher;
        self.table.insert(hash, entry, |e| hasher.hash_one(e.key()));
        hash
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = self.hash(key);
        let removed = self.table.remove_entry(hash, |e| e.key() == key);
        if removed.is_some() {
            self.shrink_if_sparse();
        }
        removed
    }

    /// Gives memory back when most buckets are empty (after mass expiry or
    /// deletion); also keeps random picks short.
    fn shrink_if_sparse(&mut self) {
        let buckets = self.table.buckets();
        if buckets > 64 && self.table.len() * 8 < buckets {
            let hasher = &self.hasher;
            self.table
                .shrink_to(self.table.len(), |e| hasher.hash_one(e.key()));
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        // SAFETY: the iterator borrows `self`, so the table outlives it and
        // is not changed while it runs; each bucket it yields is full.
        unsafe { self.table.iter() }.map(|bucket| unsafe { bucket.as_ref() })
    }

    /// A random entry: the first full bucket from bucket `nth` (reduced
    /// modulo the bucket count) on, wrapping. `None` if the map is empty.
    /// Not perfectly uniform (a key after a run of empty buckets is picked
    /// more often), as Redis's `dictGetRandomKey` is not; the table is kept
    /// at least 1/8 full, so the walk is short.
    pub fn pick(&self, nth: u64) -> Option<&Entry> {
        if self.table.is_empty() {
            return None;
        }
        let buckets = self.table.buckets();
        let start = (nth % buckets as u64) as usize;
        for step in 0..buckets {
            let index = (start + step) & (buckets - 1);
            // SAFETY: index < buckets (a power of two); a full bucket holds
            // an initialized entry borrowed for as long as `self` is.
            unsafe {
                if self.table.is_bucket_full(index) {
                    return Some(self.table.bucket(index).as_ref());
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_of(n: usize) -> EntryMap {
        let mut map = EntryMap::default();
        for i in 0..n {
            map.insert_new(Entry::new_str(format!("k{i}").as_bytes(), b"v", None, 0));
        }
        map
    }

    #[test]
    fn insert_get_remove() {
        let mut map = map_of(1000);
        assert_eq!(map.len(), 1000);
        assert_eq!(map.get(b"k7").map(|e| e.key()), Some(&b"k7"[..]));
        assert!(map.get(b"nope").is_none());
        let hash = map.hash(b"k9");
        assert_eq!(map.get_by_hash(hash).map(|e| e.key()), Some(&b"k9"[..]));
        for i in 0..990 {
            assert!(map.remove(format!("k{i}").as_bytes()).is_some());
        }
        assert_eq!(map.len(), 10);
        assert!(map.buckets() <= 64, "shrunk: {}", map.buckets());
        assert_eq!(map.iter().count(), 10);
        assert!(map.get(b"k995").is_some());
    }

    #[test]
    fn pick_finds_every_key_eventually() {
        let map = map_of(50);
        let mut seen = std::collections::HashSet::new();
        for nth in 0..map.buckets() as u64 {
            seen.insert(map.pick(nth).map(|e| e.key().to_vec()));
        }
        assert_eq!(seen.len(), 50);
        assert!(EntryMap::default().pick(3).is_none());
    }
}
