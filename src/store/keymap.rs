//! The shard map: an open-addressing table of thin [`Entry`] pointers with
//! one control byte each (9 bytes a slot), hashing each key read through
//! its pointer. Slots come in groups of 8 whose control bytes are probed as
//! one word (as hashbrown does with SIMD), groups in linear order from the
//! key's home group. Unlike hashbrown, the number of groups is not a power
//! of two: the table grows by a quarter when 7/8 full, so it stays 70-87%
//! full (10-13 bytes a key) instead of 44-87% (10-20 bytes a key). Slot
//! indexes give O(1) random picks (eviction sampling, RANDOMKEY). No unsafe
//! code: a slot is an `Option<Entry>`, 8 bytes.
//!
//! Resizing is incremental, as Redis's dict rehashing is: the old table
//! stays beside the new one, and each insertion or removal moves a few of
//! its entries over, so no single command pays for rehashing a whole part
//! (a million keys in one part took 20 ms in one go). Lookups probe the new
//! table, then the old one while it has entries.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use foldhash::fast::FixedState;

use super::entry::Entry;

const GROUP: usize = 8;
const EMPTY: u8 = 0x00;
const DELETED: u8 = 0x01;
/// Full slots have the high bit set and 7 bits of the hash below it.
const FULL: u8 = 0x80;

/// Entries of the old table moved per insertion or removal while resizing.
/// A growth by a quarter starts with the old table 7/8 full and leaves room
/// for 0.22 old tables' worth of slots of insertions before the new one is
/// 7/8 full; moving 64 entries (about 73 slots) each time is done in a
/// sixteenth of them, so lookups of absent keys probe two tables only a
/// short while. A step costs a few microseconds.
const MIGRATE_ENTRIES: usize = 64;
/// Slots of the old table looked at per step at most: a shrink's old table
/// is mostly empty.
const MIGRATE_SLOTS: usize = 512;
/// How many slots ahead a step prefetches the entries it will hash.
const PREFETCH_AHEAD: usize = 8;

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// One open-addressing table: control bytes and slots.
#[derive(Default)]
struct Table {
    ctrl: Box<[u8]>,
    slots: Box<[Option<Entry>]>,
    /// Full slots.
    len: usize,
    /// Tombstones.
    deleted: usize,
}

/// The hash of `key` every key table files it under, and what the store
/// picks the key's shard from (see [`shard_bits`]), so that a key is hashed
/// once for both. The seed is random, drawn once a process, so that keys
/// cannot be crafted to pile up in one group.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    static HASHER: OnceLock<FixedState> = OnceLock::new();
    HASHER
        .get_or_init(|| {
            FixedState::with_seed(std::collections::hash_map::RandomState::new().hash_one(0u64))
        })
        .hash_one(key)
}

/// The bits of a key's hash the store may take its shard from: those
/// above the 7 of the control byte's tag. A table's home group comes from
/// the top bits (see `Table::home`), which the shard bits must not reach,
/// or keys of one shard would only use some of its table's groups.
#[inline]
pub fn shard_bits(hash: u64) -> u64 {
    hash >> 7
}

fn tag_of(hash: u64) -> u8 {
    FULL | (hash as u8 & 0x7f)
}

/// Bytes of `word` equal to zero, as high bits (the lowest one exact, the
/// ones above it possibly not: callers verify).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS
}

impl Table {
    fn with_groups(groups: usize) -> Table {
        Table {
            ctrl: vec![EMPTY; groups * GROUP].into_boxed_slice(),
            slots: std::iter::repeat_with(|| None)
                .take(groups * GROUP)
                .collect(),
            len: 0,
            deleted: 0,
        }
    }

    fn groups(&self) -> usize {
        self.ctrl.len() / GROUP
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.groups() as u128) >> 64) as usize
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
        if self.len == 0 {
            return None;
        }
        let pattern = u64::from(tag_of(hash)) * LOW_BITS;
        let mut group = self.home(hash);
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

    #[inline]
    fn prefetch_home(&self, hash: u64) {
        if self.len > 0 {
            let start = self.home(hash) * GROUP;
            super::prefetch(self.ctrl[start..].as_ptr());
            super::prefetch(self.slots[start..].as_ptr());
        }
    }

    /// The first entry of the home group whose control byte matches `hash`
    /// (most likely the key's, not compared).
    #[inline]
    fn first_candidate(&self, hash: u64) -> Option<&Entry> {
        if self.len == 0 {
            return None;
        }
        let group = self.home(hash);
        let pattern = u64::from(tag_of(hash)) * LOW_BITS;
        let matches = zero_bytes(self.ctrl_word(group) ^ pattern);
        if matches == 0 {
            return None;
        }
        self.slots[group * GROUP + (matches.trailing_zeros() / 8) as usize].as_ref()
    }

    /// Puts `entry` in the first free slot from its home group on (there
    /// is one: the table is kept at most 7/8 full).
    fn place(&mut self, hash: u64, entry: Entry) {
        let groups = self.groups();
        let mut group = self.home(hash);
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
                self.len += 1;
                return;
            }
            group = if group + 1 == groups { 0 } else { group + 1 };
        }
    }

    /// Empties slot `index`.
    fn take(&mut self, index: usize) -> Option<Entry> {
        let entry = self.slots[index].take()?;
        // A group that still has an empty slot ends every probe sequence
        // through it, so the slot may be empty again; otherwise a probe
        // for a key placed further on must not stop here.
        if zero_bytes(self.ctrl_word(index / GROUP)) != 0 {
            self.ctrl[index] = EMPTY;
        } else {
            self.ctrl[index] = DELETED;
            self.deleted += 1;
        }
        self.len -= 1;
        Some(entry)
    }

    /// Whether one more key fits while `keys` (some perhaps still in an
    /// old table) are to live here.
    fn has_room_for(&self, keys: usize) -> bool {
        (keys + self.deleted + 1) * 8 <= self.slots.len() * 7
    }
}

/// One database part's keys.
#[derive(Default)]
pub struct EntryMap {
    /// Where keys are added.
    table: Table,
    /// While resizing, the table before: its entries move to `table` a few
    /// at a time, from slot `cursor` on. Empty (no allocation) otherwise.
    old: Table,
    cursor: usize,
    /// Counts the ends of resizes: slot positions (the old table's slots,
    /// then the new table's) hold from one to the next, entries only
    /// moving from the old table to the new one in between (a snapshot's
    /// walk by position starts over when this changes).
    generation: u64,
}

impl std::fmt::Debug for EntryMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryMap")
            .field("len", &self.len())
            .field("slots", &self.table.slots.len())
            .field("old_slots", &self.old.slots.len())
            .finish()
    }
}

impl EntryMap {
    /// The hash this map files `key` under (also what S3-FIFO queues hold).
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        key_hash(key)
    }

    pub fn len(&self) -> usize {
        self.table.len + self.old.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    pub fn buckets(&self) -> usize {
        self.table.slots.len()
    }

    fn resizing(&self) -> bool {
        !self.old.slots.is_empty()
    }

    /// The position (see [`EntryMap::slot`]) of an entry with `hash` for
    /// which `eq` holds.
    #[inline]
    fn find(&self, hash: u64, mut eq: impl FnMut(&Entry) -> bool) -> Option<usize> {
        if let Some(index) = self.table.find(hash, &mut eq) {
            return Some(self.old.slots.len() + index);
        }
        self.old.find(hash, eq)
    }

    fn slot_mut(&mut self, position: usize) -> Option<&mut Entry> {
        match position.checked_sub(self.old.slots.len()) {
            Some(index) => self.table.slots[index].as_mut(),
            None => self.old.slots[position].as_mut(),
        }
    }

    /// Starts loading what a lookup of `hash` reads first: the home
    /// group's control bytes and slots. A hint to the CPU; reads nothing.
    #[inline]
    pub fn prefetch_home(&self, hash: u64) {
        self.table.prefetch_home(hash);
        self.old.prefetch_home(hash);
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

    #[inline]
    fn first_candidate(&self, hash: u64) -> Option<&Entry> {
        self.table
            .first_candidate(hash)
            .or_else(|| self.old.first_candidate(hash))
    }

    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.get_hashed(key, self.hash(key))
    }

    /// [`EntryMap::get`] for a key whose [`key_hash`] the caller has.
    #[inline]
    pub fn get_hashed(&self, key: &[u8], hash: u64) -> Option<&Entry> {
        self.slot(self.find(hash, |e| e.key() == key)?)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let position = self.find(self.hash(key), |e| e.key() == key)?;
        self.slot_mut(position)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// The entry whose key has `hash`, if any (S3-FIFO's queue slots).
    pub fn get_by_hash(&self, hash: u64) -> Option<&Entry> {
        self.slot(self.find(hash, |e| key_hash(e.key()) == hash)?)
    }

    /// Adds an entry whose key is not in the map yet; returns its hash.
    pub fn insert_new(&mut self, entry: Entry) -> u64 {
        let hash = self.hash(entry.key());
        if self.resizing() {
            self.migrate_step();
        }
        if !self.table.has_room_for(self.len()) {
            self.grow();
        }
        self.table.place(hash, entry);
        hash
    }

    /// Starts moving to a table a quarter larger, or as large if
    /// tombstones rather than keys filled this one.
    fn grow(&mut self) {
        // A resize still under way (only if keys came faster than the
        // steps moved them) is finished first, in one go.
        self.finish_resize();
        if self.table.has_room_for(self.len()) {
            return;
        }
        let groups = self.table.groups();
        let wanted = if self.table.deleted > self.table.len / 2 {
            groups.max(1)
        } else {
            (groups + groups / 4).max(groups + 1)
        };
        self.start_resize(wanted);
    }

    fn start_resize(&mut self, groups: usize) {
        let before = std::mem::replace(&mut self.table, Table::with_groups(groups));
        if before.len == 0 {
            // Nothing to move; positions changed all the same.
            self.generation += 1;
        } else {
            self.old = before;
            self.cursor = 0;
        }
    }

    /// Moves up to [`MIGRATE_ENTRIES`] entries from the old table to the
    /// new one (looking at [`MIGRATE_SLOTS`] slots at most), then starts
    /// loading the keys the next step will hash.
    fn migrate_step(&mut self) {
        let end = (self.cursor + MIGRATE_SLOTS).min(self.old.slots.len());
        let mut moved = 0;
        while self.cursor < end && moved < MIGRATE_ENTRIES {
            if let Some(Some(ahead)) = self.old.slots.get(self.cursor + PREFETCH_AHEAD) {
                ahead.prefetch();
            }
            if let Some(entry) = self.old.take(self.cursor) {
                let hash = self.hash(entry.key());
                self.table.place(hash, entry);
                moved += 1;
            }
            self.cursor += 1;
        }
        if self.old.len == 0 {
            self.old = Table::default();
            self.cursor = 0;
            self.generation += 1;
            return;
        }
        let ahead = (self.cursor + PREFETCH_AHEAD).min(self.old.slots.len());
        for entry in self.old.slots[self.cursor..ahead].iter().flatten() {
            entry.prefetch();
        }
    }

    /// Moves up to `entries` entries of a resize under way (a step at a
    /// time), for the server's cron when inserts and removals are too few
    /// to finish it (Redis's `activerehashing`): lookups then probe one
    /// table again. Returns how many it moved.
    pub fn rehash(&mut self, entries: usize) -> usize {
        let mut moved = 0;
        while self.resizing() && moved < entries {
            let before = self.old.len;
            self.migrate_step();
            moved += before - self.old.len;
        }
        moved
    }

    fn finish_resize(&mut self) {
        while self.resizing() {
            self.migrate_step();
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let position = self.find(self.hash(key), |e| e.key() == key)?;
        let entry = match position.checked_sub(self.old.slots.len()) {
            Some(index) => self.table.take(index),
            None => self.old.take(position),
        };
        if self.resizing() {
            self.migrate_step();
        } else {
            self.shrink_if_sparse();
        }
        entry
    }

    /// Gives memory back when most slots are empty (after mass expiry or
    /// deletion); also keeps random picks short.
    fn shrink_if_sparse(&mut self) {
        let slots = self.table.slots.len();
        if slots > 64 && self.table.len * 8 < slots {
            // 4/3 of the keys: room to grow before the next resize.
            let groups = (self.table.len * 4 / 3).div_ceil(GROUP).max(1);
            self.start_resize(groups);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.old
            .slots
            .iter()
            .chain(self.table.slots.iter())
            .flatten()
    }

    /// How many slot positions there are (for [`EntryMap::slot`]).
    pub fn slot_count(&self) -> usize {
        self.old.slots.len() + self.table.slots.len()
    }

    /// The entry at `position`, if that slot is full: the old table's
    /// slots come first while resizing, then the new table's.
    pub fn slot(&self, position: usize) -> Option<&Entry> {
        match position.checked_sub(self.old.slots.len()) {
            Some(index) => self.table.slots.get(index)?.as_ref(),
            None => self.old.slots[position].as_ref(),
        }
    }

    /// Changes whenever a resize ends, which moves positions.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A random entry: the first full slot from position `nth` (reduced
    /// modulo the positions still in use: not the old table's emptied
    /// prefix) on, wrapping. `None` if the map is empty. Not perfectly
    /// uniform (a key after a run of free slots is picked more often), as
    /// Redis's `dictGetRandomKey` is not; the table is kept at least 1/8
    /// full, so the walk is short.
    pub fn pick(&self, nth: u64) -> Option<&Entry> {
        if self.is_empty() {
            return None;
        }
        let unmoved = self.unmoved_slots();
        let in_use = || unmoved.iter().chain(self.table.slots.iter());
        let start = self.pick_start(nth);
        in_use()
            .skip(start)
            .chain(in_use().take(start))
            .flatten()
            .next()
    }

    /// Starts loading the slot [`EntryMap::pick`] starts its walk from for
    /// `nth`, so that several picks' cache misses overlap instead of
    /// following one another (eviction samples five at a time).
    #[inline]
    pub fn prefetch_pick(&self, nth: u64) {
        if self.is_empty() {
            return;
        }
        let unmoved = self.unmoved_slots();
        let start = self.pick_start(nth);
        let slot = match unmoved.get(start) {
            Some(slot) => slot,
            None => &self.table.slots[start - unmoved.len()],
        };
        super::prefetch(slot);
    }

    /// The old table's slots not yet moved to the new one (none but while
    /// resizing).
    fn unmoved_slots(&self) -> &[Option<Entry>] {
        &self.old.slots[self.cursor.min(self.old.slots.len())..]
    }

    /// Where [`EntryMap::pick`] starts for `nth`: a position among the
    /// unmoved old slots followed by the new table's.
    fn pick_start(&self, nth: u64) -> usize {
        (nth % (self.unmoved_slots().len() + self.table.slots.len()) as u64) as usize
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

    /// A map of at least 5,000 keys `k0`, `k1`... with a resize under
    /// way, and how many keys it has.
    fn map_mid_resize() -> (EntryMap, usize) {
        let mut map = EntryMap::default();
        let mut n = 0;
        while !map.resizing() || n < 5_000 {
            map.insert_new(Entry::new_str(format!("k{n}").as_bytes(), b"v", None, 0));
            n += 1;
        }
        (map, n)
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
        // Every position a pick may start from, in both tables mid-resize.
        empty.prefetch_pick(7);
        let (map, n) = map_mid_resize();
        let slots = (map.unmoved_slots().len() + map.table.slots.len()) as u64;
        for nth in (0..slots).chain([u64::MAX, u64::MAX - 1]) {
            let before = map.pick(nth).map(|e| e.key().to_vec());
            map.prefetch_pick(nth);
            assert_eq!(map.pick(nth).map(|e| e.key().to_vec()), before);
        }
        assert_eq!(map.len(), n);
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

    /// Growing moves at most [`MIGRATE_ENTRIES`] entries per insertion,
    /// every key stays findable throughout, and each resize ends before the
    /// new table needs to grow again (no resize is finished in one go).
    #[test]
    fn growth_moves_a_few_entries_per_insertion() {
        let n = if cfg!(miri) { 500 } else { 50_000 };
        let mut map = EntryMap::default();
        let mut resizes = 0;
        let mut resize_size = 0;
        for i in 0..n {
            let old_before = map.old.len;
            let was_resizing = map.resizing();
            map.insert_new(Entry::new_str(format!("k{i}").as_bytes(), b"v", None, 0));
            if was_resizing {
                assert!(old_before - map.old.len <= MIGRATE_ENTRIES);
                // The table the resize started with is the one keys go to
                // until it ends.
                assert_eq!(map.table.slots.len(), resize_size, "insertion {i}");
            }
            if map.resizing() && !was_resizing {
                resizes += 1;
                resize_size = map.table.slots.len();
                assert!(map.old.len > 0);
            }
            if map.resizing() && i % 7 == 0 {
                check_invariants(&map);
                for j in (0..=i).step_by(97) {
                    assert!(map.contains_key(format!("k{j}").as_bytes()), "k{j}");
                }
            }
        }
        assert!(resizes >= 10, "{resizes} resizes");
        assert_eq!(map.len(), n);
    }

    /// With no insertion or removal, the cron's rehashing finishes a
    /// resize, a bounded number of entries at a time.
    #[test]
    fn rehashing_finishes_a_resize_without_writes() {
        let (mut map, n) = map_mid_resize();
        let generation = map.generation();
        let mut calls = 0;
        loop {
            let moved = map.rehash(100);
            assert!(moved <= 100 + MIGRATE_ENTRIES, "{moved}");
            if moved == 0 {
                break;
            }
            calls += 1;
            check_invariants(&map);
        }
        assert!(calls > 1, "{calls} calls");
        assert!(!map.resizing());
        assert_eq!(map.generation(), generation + 1);
        assert_eq!(map.rehash(100), 0);
        for i in 0..n {
            assert!(map.contains_key(format!("k{i}").as_bytes()));
        }
    }

    /// Removing most keys shrinks the table, a few entries per removal.
    #[test]
    fn shrinking_moves_a_few_entries_per_removal() {
        let n = if cfg!(miri) { 500 } else { 20_000 };
        let mut map = map_of(n);
        map.finish_resize();
        let full_size = map.buckets();
        let mut shrinks = 0;
        for i in 0..n - 10 {
            let was_resizing = map.resizing();
            let old_before = map.old.len;
            assert!(map.remove(format!("k{i}").as_bytes()).is_some());
            if was_resizing {
                assert!(old_before - map.old.len <= MIGRATE_ENTRIES + 1);
            } else if map.resizing() {
                shrinks += 1;
                assert!(map.buckets() < full_size);
            }
            if i % 101 == 0 {
                check_invariants(&map);
            }
        }
        assert!(shrinks >= 2, "{shrinks} shrinks");
        check_invariants(&map);
        for i in n - 10..n {
            assert!(map.contains_key(format!("k{i}").as_bytes()));
        }
    }

    /// A walk by position (as a snapshot makes, starting over when the
    /// generation changes) sees every key that lives through it, while
    /// keys are added and removed and a resize ends under it.
    #[test]
    fn a_walk_by_position_sees_every_key_through_a_resize() {
        let (mut map, n) = map_mid_resize();
        let mut seen = std::collections::HashSet::new();
        let mut removed = std::collections::HashSet::new();
        let (mut cursor, mut generation) = (0, map.generation());
        let mut restarts = 0;
        let mut added = 0;
        for _step in 0..100_000 {
            if map.generation() != generation {
                generation = map.generation();
                cursor = 0;
                restarts += 1;
            }
            let end = (cursor + 128).min(map.slot_count());
            for position in cursor..end {
                if let Some(entry) = map.slot(position) {
                    seen.insert(entry.key().to_vec());
                }
            }
            cursor = end;
            if cursor == map.slot_count() {
                break;
            }
            for _ in 0..4 {
                map.insert_new(Entry::new_str(
                    format!("new{added}").as_bytes(),
                    b"v",
                    None,
                    0,
                ));
                added += 1;
            }
            let victim = format!("k{}", (added * 7919) % n);
            if map.remove(victim.as_bytes()).is_some() {
                removed.insert(victim.into_bytes());
            }
        }
        assert_eq!(cursor, map.slot_count(), "the walk ended");
        assert!(restarts >= 1, "a resize ended during the walk");
        for i in 0..n {
            let key = format!("k{i}").into_bytes();
            assert!(seen.contains(&key) || removed.contains(&key), "k{i} missed");
        }
    }

    // ---- Property tests: the map against std's HashMap ----

    use proptest::prelude::*;
    use std::collections::HashMap;

    /// The tables' own invariants: control bytes agree with the slots and
    /// their hashes, the counters with the control bytes, the new table
    /// has room for every key (at least one free slot, so `place` ends),
    /// no group that still has an empty slot holds a tombstone, every
    /// entry is found by a probe at its position, and the old table's
    /// slots before the cursor have been moved.
    fn check_invariants(map: &EntryMap) {
        for (offset, table) in [(0, &map.old), (map.old.slots.len(), &map.table)] {
            assert_eq!(table.ctrl.len(), table.slots.len());
            assert_eq!(table.ctrl.len() % GROUP, 0);
            let mut full = 0;
            let mut deleted = 0;
            for (i, slot) in table.slots.iter().enumerate() {
                match (table.ctrl[i], slot) {
                    (EMPTY, None) => {}
                    (DELETED, None) => deleted += 1,
                    (tag, Some(entry)) => {
                        full += 1;
                        assert_eq!(tag, tag_of(map.hash(entry.key())), "slot {i}");
                        assert_eq!(
                            map.find(map.hash(entry.key()), |e| e.key() == entry.key()),
                            Some(offset + i)
                        );
                        assert_eq!(map.slot(offset + i).map(Entry::key), Some(entry.key()));
                    }
                    (tag, None) => panic!("slot {i}: control byte {tag:#x} over an empty slot"),
                }
            }
            assert_eq!(full, table.len);
            assert_eq!(deleted, table.deleted);
            for group in 0..table.groups() {
                let bytes = &table.ctrl[group * GROUP..(group + 1) * GROUP];
                if bytes.contains(&EMPTY) {
                    // A tombstone is only left in a group without an empty
                    // slot, and a group never regains one until a resize.
                    assert!(!bytes.contains(&DELETED), "group {group}: {bytes:?}");
                }
            }
        }
        assert!(
            (map.len() + map.table.deleted) * 8 <= map.table.slots.len() * 7
                || map.table.slots.is_empty()
        );
        if map.resizing() {
            assert!(map.old.len > 0, "an old table is dropped once emptied");
            assert!(map.old.slots[..map.cursor].iter().all(Option::is_none));
        } else {
            assert_eq!(map.old.len + map.old.deleted, 0);
        }
        assert_eq!(map.iter().count(), map.len());
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
                // Every position, the old table's too while a shrink
                // (an old table larger than the new one) is under way.
                let positions = map.old.slots.len() + map.table.slots.len();
                for nth in 0..positions as u64 * 2 {
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
            assert!(map.table.deleted <= map.buckets());
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
