//! A hash index over a vector the collection owns: it maps a key (a sorted
//! set's member, a hash's field, a set's member) to the slot of the vector
//! that holds it,
//! storing only the 4-byte slot number (and hashbrown's control byte), and
//! reading keys from the vector when it compares or rehashes.
//!
//! It never rehashes everything at once, as Redis's dict does not: when the
//! table is full, a table twice as large takes the new entries, and every
//! insertion moves the entries of the next few slots of the vector over
//! ([`MIN_MIGRATE_SLOTS_PER_INSERT`] or more), until the old table is empty. Growing a
//! million-entry collection therefore costs no single command a rehash of a
//! million keys (185 ms on our VM for a sorted set).

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// Slots of the vector walked per insertion while the index grows, at
/// least. Few, because each moved entry is a cache miss or two: at 64, a
/// ZADD into a sorted set of a million cost twice as much for the 16,000
/// insertions of the move, and a server taking 100,000 of them a second
/// fell 200 ms behind. More when the vector has many free slots (see
/// [`SlotIndex::insert`]).
const MIN_MIGRATE_SLOTS_PER_INSERT: usize = 4;

/// The vector an index points into.
pub trait Slots {
    /// The key stored at `slot`, or None for a free slot.
    fn key(&self, slot: u32) -> Option<&[u8]>;
    /// How many slots there are (free or not).
    fn slot_count(&self) -> usize;
}

#[derive(Clone, Default)]
pub struct SlotIndex {
    hasher: RandomState,
    table: HashTable<u32>,
    /// The table being emptied into `table` (empty when not growing).
    old: HashTable<u32>,
    /// The next slot whose entry moves from `old`.
    cursor: usize,
    /// Slots walked per insertion during this move.
    migrate_per_insert: usize,
}

impl SlotIndex {
    pub fn with_capacity(capacity: usize) -> Self {
        SlotIndex {
            table: HashTable::with_capacity(capacity),
            ..Self::default()
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.table.len() + self.old.len()
    }

    /// Whether a move to a larger table is under way.
    #[cfg(test)]
    pub fn is_growing(&self) -> bool {
        !self.old.is_empty()
    }

    pub fn heap_size(&self) -> usize {
        (self.table.capacity() + self.old.capacity()) * (std::mem::size_of::<u32>() + 1)
    }

    /// The slot holding `key`.
    pub fn get(&self, slots: &(impl Slots + ?Sized), key: &[u8]) -> Option<u32> {
        let hash = self.hash(key);
        let holds = |&slot: &u32| slots.key(slot) == Some(key);
        self.table
            .find(hash, holds)
            .or_else(|| self.old.find(hash, holds))
            .copied()
    }

    /// The hash a lookup of `key` uses, for the steps of a batched lookup
    /// ([`IndexedVec::prefetch`]).
    pub fn hash_of(&self, key: &[u8]) -> u64 {
        self.hash(key)
    }

    /// Starts loading what a lookup of `hash` reads first: the control
    /// bytes of its home group and the slot numbers beside them. A hint
    /// to the CPU: it reads only the table's first group.
    pub fn prefetch_group(&self, hash: u64) {
        for table in [&self.table, &self.old] {
            // A probe starts at the control byte `hash & (buckets - 1)`.
            let Some(control) = table
                .iter_buckets()
                .next()
                .and_then(|i| control_bytes(table, i))
            else {
                continue;
            };
            let home = hash as usize & (table.num_buckets() - 1);
            crate::store::prefetch(control.wrapping_add(home));
            let slots = control.cast::<u32>().wrapping_sub(home + 1);
            crate::store::prefetch(slots);
            crate::store::prefetch(slots.wrapping_sub(15));
        }
    }

    /// Calls `f` with each slot a lookup of `hash` compares (those whose
    /// control byte matches), once their group is cached
    /// ([`SlotIndex::prefetch_group`]).
    pub fn candidates(&self, hash: u64, mut f: impl FnMut(u32)) {
        for table in [&self.table, &self.old] {
            table.iter_hash(hash).for_each(|&slot| f(slot));
        }
    }

    /// Adds the key now stored at `slot` (not in the index yet).
    pub fn insert(&mut self, slots: &(impl Slots + ?Sized), slot: u32) {
        if self.old.is_empty() && self.table.len() == self.table.capacity() {
            let len = self.table.len();
            let larger = HashTable::with_capacity((len + 1) * 2);
            // The walk must end before the new table fills: it takes the
            // `len` entries moved over and about as many insertions, each of
            // which may add a slot to walk.
            let insertions = larger.capacity().saturating_sub(len).max(1);
            self.migrate_per_insert =
                (slots.slot_count().div_ceil(insertions) + 1).max(MIN_MIGRATE_SLOTS_PER_INSERT);
            self.old = std::mem::replace(&mut self.table, larger);
            self.cursor = 0;
        }
        if !self.old.is_empty() {
            self.migrate(slots);
        }
        let hash = self.hash(slots.key(slot).unwrap_or_default());
        self.insert_hashed(slots, hash, slot);
    }

    fn insert_hashed(&mut self, slots: &(impl Slots + ?Sized), hash: u64, slot: u32) {
        let hasher = &self.hasher;
        self.table.insert_unique(hash, slot, |&s| {
            hasher.hash_one(slots.key(s).unwrap_or_default())
        });
    }

    /// Moves the entries of the next slots from `old` to `table`.
    fn migrate(&mut self, slots: &(impl Slots + ?Sized)) {
        let end = (self.cursor + self.migrate_per_insert).min(slots.slot_count());
        for slot in self.cursor..end {
            let slot = slot as u32;
            let Some(key) = slots.key(slot) else {
                continue;
            };
            let hash = self.hash(key);
            if let Ok(entry) = self.old.find_entry(hash, |&s| s == slot) {
                entry.remove();
                self.insert_hashed(slots, hash, slot);
            }
        }
        self.cursor = end;
        if self.cursor >= slots.slot_count() {
            // Every stored key was visited: nothing is left behind.
            debug_assert!(self.old.is_empty());
            self.old = HashTable::new();
        }
    }

    /// Removes the entry of the key stored at `slot` (still stored).
    pub fn remove(&mut self, slots: &(impl Slots + ?Sized), slot: u32) {
        let hash = self.hash(slots.key(slot).unwrap_or_default());
        let at_slot = |&s: &u32| s == slot;
        if let Ok(entry) = self.table.find_entry(hash, at_slot) {
            entry.remove();
        } else if let Ok(entry) = self.old.find_entry(hash, at_slot) {
            entry.remove();
        }
    }

    /// Points the entry of the key now stored at `to` there instead of at
    /// `from` (the collection moved it). It lands in the new table when
    /// growing, so that the walk, which may have passed `to` already, does
    /// not leave it behind.
    pub fn moved(&mut self, slots: &(impl Slots + ?Sized), from: u32, to: u32) {
        let hash = self.hash(slots.key(to).unwrap_or_default());
        let at_from = |&s: &u32| s == from;
        if let Some(slot) = self.table.find_mut(hash, at_from) {
            *slot = to;
        } else if let Ok(entry) = self.old.find_entry(hash, at_from) {
            entry.remove();
            self.insert_hashed(slots, hash, to);
        }
    }

    /// Forgets every entry, keeping the table's capacity.
    pub fn clear(&mut self) {
        self.table.clear();
        self.old = HashTable::new();
        self.cursor = 0;
    }
}

/// Where `table`'s control bytes start, found from its full bucket number
/// `index`: hashbrown keeps bucket `i` just below them, at
/// `ctrl - (i + 1) * size_of::<u32>()`. If that layout ever changed, the
/// prefetch hints computed from it would miss and cost nothing else (and
/// the test `every_full_bucket_gives_the_same_control_bytes` would fail).
fn control_bytes(table: &HashTable<u32>, index: usize) -> Option<*const u8> {
    let bucket = table.get_bucket(index)?;
    Some((bucket as *const u32).wrapping_add(index + 1).cast::<u8>())
}

/// An element with a key: what an [`IndexedVec`] finds it by.
pub trait Keyed {
    fn key(&self) -> &[u8];

    /// Where the key's bytes are (or start), without reading them: what a
    /// batched lookup prefetches.
    fn key_address(&self) -> *const u8 {
        self.key().as_ptr()
    }
}

/// The steps of a batched lookup of one key in a collection, each started
/// for every request of a pipeline before the next (see `Store::prefetch`):
/// each reads only what the step before it loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefetchStep {
    /// The index group the key hashes to.
    Group,
    /// The elements of the candidates found there.
    Element,
    /// The keys those elements point to.
    Key,
}

impl Keyed for Box<[u8]> {
    fn key(&self) -> &[u8] {
        self
    }
}

impl<T: Keyed> Slots for [T] {
    fn key(&self, slot: u32) -> Option<&[u8]> {
        self.get(slot as usize).map(Keyed::key)
    }

    fn slot_count(&self) -> usize {
        self.len()
    }
}

/// Elements with distinct keys in a vector, in insertion order (until a
/// swap-removal), with a [`SlotIndex`] of their positions: O(1) lookup by
/// key, O(1) access by position (random picks, cursors), O(1) removal that
/// moves the last element into the hole. What hashes and sets are stored in.
#[derive(Clone)]
pub struct IndexedVec<T> {
    entries: Vec<T>,
    index: SlotIndex,
}

impl<T: std::fmt::Debug> std::fmt::Debug for IndexedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.entries).finish()
    }
}

impl<T> Default for IndexedVec<T> {
    fn default() -> Self {
        IndexedVec {
            entries: Vec::new(),
            index: SlotIndex::default(),
        }
    }
}

impl<T: Keyed> IndexedVec<T> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The elements in order.
    pub fn as_slice(&self) -> &[T] {
        &self.entries
    }

    /// The hash a lookup of `key` uses (see [`IndexedVec::prefetch`]).
    pub fn key_hash(&self, key: &[u8]) -> u64 {
        self.index.hash_of(key)
    }

    /// Starts one step of a lookup of the key hashed as `hash`: the index
    /// group, then the element, then the key's allocation. A hint to the
    /// CPU; nothing changes.
    pub fn prefetch(&self, hash: u64, step: PrefetchStep) {
        match step {
            PrefetchStep::Group => self.index.prefetch_group(hash),
            PrefetchStep::Element => self.index.candidates(hash, |slot| {
                if let Some(element) = self.entries.get(slot as usize) {
                    crate::store::prefetch(element);
                }
            }),
            PrefetchStep::Key => self.index.candidates(hash, |slot| {
                if let Some(element) = self.entries.get(slot as usize) {
                    crate::store::prefetch(element.key_address());
                }
            }),
        }
    }

    pub fn position(&self, key: &[u8]) -> Option<usize> {
        self.index.get(&self.entries[..], key).map(|at| at as usize)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.position(key).is_some()
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        Some(&self.entries[self.position(key)?])
    }

    /// The element of `key`, to change in ways that keep its key.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        let at = self.position(key)?;
        Some(&mut self.entries[at])
    }

    pub fn get_index(&self, index: usize) -> Option<&T> {
        self.entries.get(index)
    }

    /// Appends an element whose key is not stored yet.
    pub fn push_new(&mut self, entry: T) {
        self.entries.push(entry);
        let at = (self.entries.len() - 1) as u32;
        self.index.insert(&self.entries[..], at);
    }

    /// Removes the element at `index`, moving the last one into its place.
    pub fn swap_remove_index(&mut self, index: usize) -> Option<T> {
        if index >= self.entries.len() {
            return None;
        }
        self.index.remove(&self.entries[..], index as u32);
        let last = (self.entries.len() - 1) as u32;
        let removed = self.entries.swap_remove(index);
        if index as u32 != last {
            self.index.moved(&self.entries[..], last, index as u32);
        }
        Some(removed)
    }

    /// Removes the element of `key`, moving the last one into its place.
    pub fn swap_remove(&mut self, key: &[u8]) -> Option<T> {
        self.swap_remove_index(self.position(key)?)
    }

    /// Removes the element of `key`, shifting the later ones down: O(n)
    /// (it reindexes them), for small collections that keep their order.
    pub fn shift_remove(&mut self, key: &[u8]) -> Option<T> {
        let removed = self.entries.remove(self.position(key)?);
        self.reindex();
        Some(removed)
    }

    /// Keeps the elements for which `keep` is true, in order.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.entries.retain(keep);
        self.reindex();
    }

    /// Removes and returns every element.
    pub fn take_all(&mut self) -> Vec<T> {
        self.index.clear();
        std::mem::take(&mut self.entries)
    }

    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    fn reindex(&mut self) {
        self.index.clear();
        for at in 0..self.entries.len() as u32 {
            self.index.insert(&self.entries[..], at);
        }
    }

    /// Heap bytes of the vector and the index (not of what elements own).
    pub fn heap_size(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<T>() + self.index.heap_size()
    }

    #[cfg(test)]
    pub fn index(&self) -> &SlotIndex {
        &self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use std::collections::HashSet;

    fn key(i: usize) -> Box<[u8]> {
        format!("k{i}").into_bytes().into_boxed_slice()
    }

    /// Every element is found at its position, and the index holds nothing else.
    fn check(v: &IndexedVec<Box<[u8]>>, model: &HashSet<Box<[u8]>>) {
        assert_eq!(v.len(), model.len());
        assert_eq!(v.index().len(), model.len());
        for (at, element) in v.as_slice().iter().enumerate() {
            assert_eq!(v.position(element), Some(at));
            assert!(model.contains(element));
        }
    }

    /// A vector with fifteen free slots for every key (far more than a
    /// sorted set's arena keeps before it compacts).
    struct Holey(Vec<Option<Box<[u8]>>>);

    impl Slots for Holey {
        fn key(&self, slot: u32) -> Option<&[u8]> {
            self.0.get(slot as usize).and_then(|k| k.as_deref())
        }

        fn slot_count(&self) -> usize {
            self.0.len()
        }
    }

    /// A move to a larger table ends before that table fills, even over a
    /// vector of mostly free slots: the table is never grown by hashbrown
    /// itself, which would rehash every entry in one insertion.
    #[test]
    fn a_move_ends_before_the_new_table_fills() {
        let mut slots = Holey(Vec::new());
        let mut index = SlotIndex::default();
        let mut moves = 0;
        let mut capacity_when_moving = None;
        for i in 0..200_000 {
            slots.0.extend(std::iter::repeat_n(None, 15));
            slots.0.push(Some(key(i)));
            index.insert(&slots, slots.0.len() as u32 - 1);
            match (index.is_growing(), capacity_when_moving) {
                (true, None) => capacity_when_moving = Some(index.table.capacity()),
                (true, Some(capacity)) => assert_eq!(index.table.capacity(), capacity),
                (false, Some(_)) => {
                    moves += 1;
                    capacity_when_moving = None;
                }
                (false, None) => {}
            }
        }
        assert!(moves >= 5, "{moves} moves");
        assert_eq!(index.len(), 200_000);
        assert_eq!(index.get(&slots, &key(123_456)), Some(123_456 * 16 + 15));
    }

    #[test]
    fn every_full_bucket_gives_the_same_control_bytes() {
        let mut v: IndexedVec<Box<[u8]>> = IndexedVec::default();
        for i in 0..3000 {
            v.push_new(key(i));
        }
        for table in [&v.index.table, &v.index.old] {
            let mut buckets = table.iter_buckets();
            let Some(first) = buckets.next() else {
                continue;
            };
            let control = control_bytes(table, first);
            assert!(control.is_some());
            for index in buckets {
                assert_eq!(control_bytes(table, index), control);
            }
        }
    }

    /// The prefetch steps run on every state of the index (empty, growing,
    /// keys present and absent), and the candidates they load include the
    /// slot a lookup then finds.
    #[test]
    fn the_prefetch_steps_visit_the_slot_a_lookup_finds() {
        let mut v: IndexedVec<Box<[u8]>> = IndexedVec::default();
        let steps = [
            PrefetchStep::Group,
            PrefetchStep::Element,
            PrefetchStep::Key,
        ];
        let mut probed_while_growing = 0;
        for i in 0..5000 {
            for probe in [i, i / 2, i + 1] {
                let k = key(probe);
                let hash = v.key_hash(&k);
                for step in steps {
                    v.prefetch(hash, step);
                }
                let mut candidates = Vec::new();
                v.index.candidates(hash, |slot| candidates.push(slot));
                match v.position(&k) {
                    Some(at) => assert!(candidates.contains(&(at as u32)), "{probe}"),
                    None => assert!(candidates
                        .iter()
                        .all(|&slot| v.as_slice()[slot as usize] != k)),
                }
                probed_while_growing += usize::from(v.index().is_growing());
            }
            v.push_new(key(i));
        }
        assert!(probed_while_growing > 100, "{probed_while_growing}");
    }

    #[test]
    fn random_operations_through_growth_match_a_model() {
        let mut rng = rand::thread_rng();
        let mut v: IndexedVec<Box<[u8]>> = IndexedVec::default();
        let mut model = HashSet::new();
        let mut next = 0;
        let mut checks_while_growing = 0;
        for step in 0..40_000 {
            match rng.gen_range(0..10) {
                0..=5 => {
                    v.push_new(key(next));
                    model.insert(key(next));
                    next += 1;
                }
                6 if !v.is_empty() => {
                    let removed = v.swap_remove_index(rng.gen_range(0..v.len())).unwrap();
                    assert!(model.remove(&removed));
                }
                7 => {
                    let k = key(rng.gen_range(0..next.max(1)));
                    assert_eq!(v.swap_remove(&k).is_some(), model.remove(&k));
                }
                8 if v.len() < 300 => {
                    // Small collections keep their order.
                    let k = key(rng.gen_range(0..next.max(1)));
                    let before: Vec<_> =
                        v.as_slice().iter().filter(|e| **e != k).cloned().collect();
                    assert_eq!(v.shift_remove(&k).is_some(), model.remove(&k));
                    assert_eq!(v.as_slice(), &before[..]);
                }
                _ => {
                    let k = key(rng.gen_range(0..next.max(1)));
                    assert_eq!(v.contains(&k), model.contains(&k));
                }
            }
            if v.index().is_growing() && step % 50 == 0 {
                check(&v, &model);
                checks_while_growing += 1;
            }
        }
        assert!(
            checks_while_growing > 10,
            "{checks_while_growing} checks while growing"
        );
        check(&v, &model);
        v.retain(|e| e.len() % 2 == 0);
        model.retain(|e| e.len() % 2 == 0);
        check(&v, &model);
        let all = v.take_all();
        assert_eq!(all.len(), model.len());
        assert!(v.is_empty() && v.index().len() == 0);
    }
}
