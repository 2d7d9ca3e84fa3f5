//! The shard map: an open-addressing table of thin [`Entry`] pointers with
//! one control byte each (9 bytes a slot), hashing each key read through
//! its pointer. Slots come in groups of 8 whose control bytes are probed as
//! one word (as hashbrown does with SIMD), groups in linear order from the
//! key's home group. Unlike hashbrown, the number of groups is not a power
//! of two: the table grows by a quarter when 7/8 full, so it stays 70-87%
//! full (10-13 bytes a key) instead of 44-87% (10-20 bytes a key). Slot
//! indexes give O(1) random picks (eviction sampling, RANDOMKEY). No unsafe
//! code: a slot is an `Option<Entry>`, 8 bytes.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use super::entry::Entry;

const GROUP: usize = 8;
const EMPTY: u8 = 0x00;
const DELETED: u8 = 0x01;
/// Full slots have the high bit set and 7 bits of the hash below it.
const FULL: u8 = 0x80;

/// How many slots ahead a rebuild prefetches.
const REBUILD_PREFETCH_DISTANCE: usize = 8;

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// One database part's keys.
#[derive(Default)]
pub struct EntryMap {
    ctrl: Box<[u8]>,
    slots: Box<[Option<Entry>]>,
    len: usize,
    deleted: usize,
    hasher: RandomState,
    /// Counts rebuilds: slot positions hold from one rebuild to the next
    /// (a snapshot's walk by position starts over when this changes).
    generation: u64,
}

impl std::fmt::Debug for EntryMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryMap")
            .field("len", &self.len)
            .field("slots", &self.slots.len())
            .finish()
    }
}

fn tag_of(hash: u64) -> u8 {
    FULL | (hash as u8 & 0x7f)
}

/// Bytes of `word` equal to zero, as high bits (the lowest one exact, the
/// ones above it possibly not: callers verify).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS
}

impl EntryMap {
    /// The hash this map files `key` under (also what S3-FIFO queues hold).
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn groups(&self) -> usize {
        self.ctrl.len() / GROUP
    }

    #[cfg(test)]
    pub fn buckets(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn home(hash: u64, groups: usize) -> usize {
        ((u128::from(hash) * groups as u128) >> 64) as usize
    }

    #[inline]
    fn ctrl_word(&self, group: usize) -> u64 {
        let start = group * GROUP;
        let mut bytes = [0u8; GROUP];
        bytes.copy_from_slice(&self.ctrl[start..start + GROUP]);
        u64::from_le_bytes(bytes)
    }

    /// The slot holding an entry with `hash` for which `eq` holds.
    #[inline]
    fn find(&self, hash: u64, mut eq: impl FnMut(&Entry) -> bool) -> Option<usize> {
        let groups = self.groups();
        if groups == 0 {
            return None;
        }
        let pattern = u64::from(tag_of(hash)) * LOW_BITS;
        let mut group = Self::home(hash, groups);
        // The home group's slots are most likely read next: start loading
        // them now, so that their cache miss overlaps the control bytes'
        // instead of following it.
        super::prefetch(self.slots[group * GROUP..].as_ptr());
        for _ in 0..groups {
            let word = self.ctrl_word(group);
            let mut matches = zero_bytes(word ^ pattern);
            while matches != 0 {
                let index = group * GROUP + (matches.trailing_zeros() / 8) as usize;
                if let Some(entry) = &self.slots[index] {
                    if eq(entry) {
                        return Some(index);
                    }
                }
                matches &= matches - 1;
            }
            if zero_bytes(word) != 0 {
                return None;
            }
            group = if group + 1 == groups { 0 } else { group + 1 };
        }
        None
    }

    /// Starts loading what a lookup of `hash` reads first: the home
    /// group's control bytes and slots. A hint to the CPU; reads nothing.
    #[inline]
    pub fn prefetch_home(&self, hash: u64) {
        let groups = self.groups();
        if groups > 0 {
            let start = Self::home(hash, groups) * GROUP;
            super::prefetch(self.ctrl[start..].as_ptr());
            super::prefetch(self.slots[start..].as_ptr());
        }
    }

    /// Once the home group is cached (see [`EntryMap::prefetch_home`]):
    /// starts loading the entry there whose control byte matches `hash`,
    /// the key a lookup will compare.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        if let Some(entry) = self.first_candidate(hash) {
            entry.prefetch();
        }
    }

    /// Once that entry's first line is cached: starts loading the rest of
    /// it (a long value).
    #[inline]
    pub fn prefetch_entry_rest(&self, hash: u64) {
        if let Some(entry) = self.first_candidate(hash) {
            entry.prefetch_rest();
        }
    }

    /// The first entry of the home group whose control byte matches `hash`
    /// (most likely the key's, not compared).
    #[inline]
    fn first_candidate(&self, hash: u64) -> Option<&Entry> {
        let groups = self.groups();
        if groups == 0 {
            return None;
        }
        let group = Self::home(hash, groups);
        let pattern = u64::from(tag_of(hash)) * LOW_BITS;
        let matches = zero_bytes(self.ctrl_word(group) ^ pattern);
        if matches == 0 {
            return None;
        }
        self.slots[group * GROUP + (matches.trailing_zeros() / 8) as usize].as_ref()
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        let index = self.find(self.hash(key), |e| e.key() == key)?;
        self.slots[index].as_ref()
    }

    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let index = self.find(self.hash(key), |e| e.key() == key)?;
        self.slots[index].as_mut()
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// The entry whose key has `hash`, if any (S3-FIFO's queue slots).
    pub fn get_by_hash(&self, hash: u64) -> Option<&Entry> {
        let index = self.find(hash, |e| self.hasher.hash_one(e.key()) == hash)?;
        self.slots[index].as_ref()
    }

    /// Adds an entry whose key is not in the map yet; returns its hash.
    pub fn insert_new(&mut self, entry: Entry) -> u64 {
        let hash = self.hash(entry.key());
        if (self.len + self.deleted + 1) * 8 > self.slots.len() * 7 {
            self.grow();
        }
        self.place(hash, entry);
        self.len += 1;
        hash
    }

    /// Puts `entry` in the first free slot from its home group on (there
    /// is one: the table is at most 7/8 full).
    fn place(&mut self, hash: u64, entry: Entry) {
        let groups = self.groups();
        let mut group = Self::home(hash, groups);
        loop {
            // EMPTY and DELETED have the high bit clear.
            let free = !self.ctrl_word(group) & HIGH_BITS;
            if free != 0 {
                let index = group * GROUP + (free.trailing_zeros() / 8) as usize;
                if self.ctrl[index] == DELETED {
                    self.deleted -= 1;
                }
                self.ctrl[index] = tag_of(hash);
                self.slots[index] = Some(entry);
                return;
            }
            group = if group + 1 == groups { 0 } else { group + 1 };
        }
    }

    /// Rebuilds the table: a quarter larger, or as large if tombstones
    /// rather than keys filled it.
    fn grow(&mut self) {
        let groups = self.groups();
        let wanted = if self.deleted > self.len / 2 {
            groups.max(1)
        } else {
            (groups + groups / 4).max(groups + 1)
        };
        self.rebuild(wanted);
    }

    fn rebuild(&mut self, groups: usize) {
        self.generation += 1;
        let old = std::mem::replace(
            &mut self.slots,
            std::iter::repeat_with(|| None)
                .take(groups * GROUP)
                .collect(),
        );
        self.ctrl = vec![EMPTY; groups * GROUP].into_boxed_slice();
        self.deleted = 0;
        // Hashing reads every key, each a cache miss on a big table: the
        // entries a few places ahead are prefetched so that the misses
        // overlap (a rebuild is a pause for this shard's clients).
        let mut old = old.into_vec();
        for slot in old.iter().take(REBUILD_PREFETCH_DISTANCE).flatten() {
            slot.prefetch();
        }
        for index in 0..old.len() {
            if let Some(Some(ahead)) = old.get(index + REBUILD_PREFETCH_DISTANCE) {
                ahead.prefetch();
            }
            if let Some(entry) = old[index].take() {
                let hash = self.hash(entry.key());
                self.place(hash, entry);
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let index = self.find(self.hash(key), |e| e.key() == key)?;
        let entry = self.slots[index].take();
        // A group that still has an empty slot ends every probe sequence
        // through it, so the slot may be empty again; otherwise a probe
        // for a key placed further on must not stop here.
        let group = index / GROUP;
        if zero_bytes(self.ctrl_word(group)) != 0 {
            self.ctrl[index] = EMPTY;
        } else {
            self.ctrl[index] = DELETED;
            self.deleted += 1;
        }
        self.len -= 1;
        self.shrink_if_sparse();
        entry
    }

    /// Gives memory back when most slots are empty (after mass expiry or
    /// deletion); also keeps random picks short.
    fn shrink_if_sparse(&mut self) {
        let slots = self.slots.len();
        if slots > 64 && self.len * 8 < slots {
            // 4/3 of the keys: room to grow before the next rebuild.
            let groups = (self.len * 4 / 3).div_ceil(GROUP).max(1);
            self.rebuild(groups);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.slots.iter().flatten()
    }

    /// How many slots the table has (positions for [`EntryMap::slot`]).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The entry at slot `index`, if that slot is full.
    pub fn slot(&self, index: usize) -> Option<&Entry> {
        self.slots.get(index)?.as_ref()
    }

    /// Changes whenever the table is rebuilt, which moves entries to other
    /// slots.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A random entry: the first full slot from slot `nth` (reduced modulo
    /// the slot count) on, wrapping. `None` if the map is empty. Not
    /// perfectly uniform (a key after a run of free slots is picked more
    /// often), as Redis's `dictGetRandomKey` is not; the table is kept at
    /// least 1/8 full, so the walk is short.
    pub fn pick(&self, nth: u64) -> Option<&Entry> {
        if self.len == 0 {
            return None;
        }
        let slots = self.slots.len();
        let start = (nth % slots as u64) as usize;
        self.slots[start..]
            .iter()
            .chain(self.slots[..start].iter())
            .flatten()
            .next()
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
    fn prefetching_reads_and_changes_nothing() {
        let empty = EntryMap::default();
        let hash = empty.hash(b"anything");
        empty.prefetch_home(hash);
        empty.prefetch_entry(hash);
        let map = map_of(1000);
        for i in 0..2000 {
            let key = format!("key:{i}");
            let hash = map.hash(key.as_bytes());
            map.prefetch_home(hash);
            map.prefetch_entry(hash);
        }
        assert_eq!(map.len(), 1000);
        assert!(map.get(b"k999").is_some());
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
            assert!(map.get(format!("k{i}").as_bytes()).is_none());
        }
        assert_eq!(map.len(), 10);
        assert!(map.buckets() <= 64, "shrunk: {}", map.buckets());
        assert_eq!(map.iter().count(), 10);
        for i in 990..1000 {
            assert!(map.get(format!("k{i}").as_bytes()).is_some());
        }
    }

    #[test]
    fn stays_dense() {
        let mut map = EntryMap::default();
        for i in 0..100_000 {
            map.insert_new(Entry::new_str(format!("k{i}").as_bytes(), b"v", None, 0));
            if i > 1000 {
                let load = map.len() as f64 / map.buckets() as f64;
                assert!(load > 0.65 && load <= 0.875, "{i}: {load}");
            }
        }
    }

    #[test]
    fn churn_with_tombstones_matches_a_model() {
        let mut map = EntryMap::default();
        let mut model = std::collections::HashSet::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = format!("k{}", state % 3000);
            if state.is_multiple_of(3) {
                assert_eq!(map.remove(key.as_bytes()).is_some(), model.remove(&key));
            } else if !model.contains(&key) {
                map.insert_new(Entry::new_str(key.as_bytes(), b"v", None, 0));
                model.insert(key);
            } else {
                assert!(map.get(key.as_bytes()).is_some());
            }
            assert_eq!(map.len(), model.len());
        }
        for key in &model {
            assert!(map.get(key.as_bytes()).is_some(), "{key}");
        }
        assert_eq!(map.iter().count(), model.len());
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

    // ---- Property tests: the map against std's HashMap ----

    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The table's own invariants: control bytes agree with the slots and
    /// their hashes, the counters with the control bytes, the load stays
    /// under 7/8 (at least one free slot, so `place` ends), no group that
    /// still has an empty slot holds a tombstone, and every entry is found
    /// by a probe from its home group.
    fn check_invariants(map: &EntryMap) {
        assert_eq!(map.ctrl.len(), map.slots.len());
        assert_eq!(map.ctrl.len() % GROUP, 0);
        let mut full = 0;
        let mut deleted = 0;
        for (i, slot) in map.slots.iter().enumerate() {
            match (map.ctrl[i], slot) {
                (EMPTY, None) => {}
                (DELETED, None) => deleted += 1,
                (tag, Some(entry)) => {
                    full += 1;
                    assert_eq!(tag, tag_of(map.hash(entry.key())), "slot {i}");
                    assert_eq!(
                        map.find(map.hash(entry.key()), |e| e.key() == entry.key()),
                        Some(i)
                    );
                }
                (tag, None) => panic!("slot {i}: control byte {tag:#x} over an empty slot"),
            }
        }
        assert_eq!(full, map.len);
        assert_eq!(deleted, map.deleted);
        assert!((map.len + map.deleted) * 8 <= map.slots.len() * 7 || map.slots.is_empty());
        for group in 0..map.groups() {
            let bytes = &map.ctrl[group * GROUP..(group + 1) * GROUP];
            if bytes.contains(&EMPTY) {
                // A tombstone is only left in a group without an empty
                // slot, and a group never regains one until a rebuild.
                assert!(!bytes.contains(&DELETED), "group {group}: {bytes:?}");
            }
        }
    }

    #[derive(Debug, Clone)]
    enum MapOp {
        /// Insert, or replace in place (`Db::insert_entry`'s way) if present.
        Put(Vec<u8>, u8),
        Remove(Vec<u8>),
        Get(Vec<u8>),
        GetByHash(Vec<u8>),
        Pick(u64),
        Clear,
        /// Insert `n` fresh keys and remove them again: tombstones
        /// without net growth.
        Churn(u16, u8),
    }

    /// Keys from a tiny alphabet (many share a home group and a tag once
    /// the table is small), with the occasional long key (63+ bytes: a
    /// varint length in the entry).
    fn map_key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'c']), 0..5),
            1 => (0u8..4, 60usize..70).prop_map(|(c, n)| vec![b'a' + c; n]),
        ]
    }

    fn map_op() -> impl Strategy<Value = MapOp> {
        prop_oneof![
            8 => (map_key(), any::<u8>()).prop_map(|(k, v)| MapOp::Put(k, v)),
            5 => map_key().prop_map(MapOp::Remove),
            3 => map_key().prop_map(MapOp::Get),
            1 => map_key().prop_map(MapOp::GetByHash),
            2 => any::<u64>().prop_map(MapOp::Pick),
            1 => Just(MapOp::Clear),
            1 => (1u16..300, any::<u8>()).prop_map(|(n, s)| MapOp::Churn(n, s)),
        ]
    }

    fn value_of(entry: &Entry) -> u8 {
        match entry.value() {
            crate::store::ValueRef::Str(s) => s[0],
            _ => panic!("not a string"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            ..ProptestConfig::default()
        })]

        #[test]
        fn map_matches_a_hashmap(ops in prop::collection::vec(map_op(), 0..200)) {
            let mut map = EntryMap::default();
            let mut model: HashMap<Vec<u8>, u8> = HashMap::new();
            for op in ops {
                match op {
                    MapOp::Put(key, v) => {
                        let fresh = Entry::new_str(&key, &[v], None, 0);
                        match map.get_mut(&key) {
                            Some(entry) => {
                                prop_assert!(model.contains_key(&key));
                                let old = std::mem::replace(entry, fresh);
                                prop_assert_eq!(old.key(), &key[..]);
                            }
                            None => {
                                prop_assert!(!model.contains_key(&key));
                                let hash = map.insert_new(fresh);
                                prop_assert_eq!(hash, map.hash(&key));
                            }
                        }
                        model.insert(key, v);
                    }
                    MapOp::Remove(key) => {
                        let removed = map.remove(&key);
                        prop_assert_eq!(removed.as_ref().map(value_of), model.remove(&key));
                        if let Some(entry) = removed {
                            prop_assert_eq!(entry.key(), &key[..]);
                        }
                    }
                    MapOp::Get(key) => {
                        prop_assert_eq!(map.get(&key).map(value_of), model.get(&key).copied());
                        prop_assert_eq!(map.contains_key(&key), model.contains_key(&key));
                    }
                    MapOp::GetByHash(key) => {
                        let hash = map.hash(&key);
                        prop_assert_eq!(
                            map.get_by_hash(hash).map(|e| e.key().to_vec()),
                            model.contains_key(&key).then(|| key.clone())
                        );
                    }
                    MapOp::Pick(nth) => match map.pick(nth) {
                        None => prop_assert!(model.is_empty()),
                        Some(entry) => {
                            prop_assert_eq!(model.get(entry.key()).copied(), Some(value_of(entry)));
                        }
                    },
                    MapOp::Clear => {
                        drop(std::mem::take(&mut map));
                        model.clear();
                    }
                    MapOp::Churn(n, salt) => {
                        let keys: Vec<Vec<u8>> =
                            (0..n).map(|i| format!("churn:{salt}:{i}").into_bytes()).collect();
                        for key in &keys {
                            map.insert_new(Entry::new_str(key, b"c", None, 0));
                        }
                        check_invariants(&map);
                        for key in &keys {
                            prop_assert!(map.remove(key).is_some());
                        }
                    }
                }
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.is_empty(), model.is_empty());
                check_invariants(&map);
            }
            let mut seen: HashMap<Vec<u8>, u8> = HashMap::new();
            for entry in map.iter() {
                prop_assert!(seen.insert(entry.key().to_vec(), value_of(entry)).is_none());
            }
            prop_assert_eq!(&seen, &model);
            for (key, v) in &model {
                prop_assert_eq!(map.get(key).map(value_of), Some(*v));
            }
            // Every slot index gives a live entry, and every entry is the
            // pick of some index.
            if !model.is_empty() {
                let mut picked = std::collections::HashSet::new();
                for nth in 0..map.buckets() as u64 * 2 {
                    let entry = map.pick(nth).expect("non-empty map");
                    prop_assert!(model.contains_key(entry.key()));
                    picked.insert(entry.key().to_vec());
                }
                prop_assert_eq!(picked.len(), model.len());
            }
        }
    }

    /// Many insert/remove cycles at a constant size: tombstones are
    /// recycled or rebuilt away, the table does not keep growing, lookups
    /// of absent keys end, and random picks skip tombstones.
    #[test]
    fn tombstone_churn_at_constant_size() {
        let rounds: usize = if cfg!(miri) { 300 } else { 200_000 };
        let mut map = EntryMap::default();
        let live = 200;
        for i in 0..live {
            map.insert_new(Entry::new_str(format!("live{i}").as_bytes(), b"v", None, 0));
        }
        let mut max_buckets = 0;
        for round in 0..rounds {
            let key = format!("tmp{round}");
            map.insert_new(Entry::new_str(key.as_bytes(), b"t", None, 0));
            assert!(map.remove(key.as_bytes()).is_some());
            assert!(map.get(b"absent").is_none());
            max_buckets = max_buckets.max(map.buckets());
            assert!(map.deleted <= map.buckets());
            if round % 1000 == 0 {
                check_invariants(&map);
                assert_eq!(map.iter().count(), live);
            }
        }
        check_invariants(&map);
        // 201 keys at most 7/8 full and at least... never more than twice
        // the slots the live keys need.
        assert!(
            max_buckets <= 2 * (live + 1) * 8 / 7 + GROUP,
            "{max_buckets}"
        );
        for nth in 0..map.buckets() as u64 {
            let entry = map.pick(nth).expect("live keys");
            assert!(entry.key().starts_with(b"live"));
        }
    }

    /// Removing everything then picking; growing back after a shrink.
    #[test]
    fn empty_after_removal_and_regrowth() {
        let n = if cfg!(miri) { 100 } else { 5_000 };
        let mut map = map_of(n);
        for i in 0..n {
            assert!(map.remove(format!("k{i}").as_bytes()).is_some());
            if i % 97 == 0 {
                check_invariants(&map);
            }
        }
        assert!(map.is_empty());
        assert!(map.pick(0).is_none() && map.pick(u64::MAX).is_none());
        assert!(map.iter().next().is_none());
        assert!(map.buckets() <= 64);
        check_invariants(&map);
        for i in 0..n {
            map.insert_new(Entry::new_str(format!("k{i}").as_bytes(), b"v", None, 0));
        }
        check_invariants(&map);
        assert_eq!(map.iter().count(), n);
    }
}
