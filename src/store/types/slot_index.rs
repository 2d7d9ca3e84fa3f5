//! A hash index over a vector the collection owns: it maps a key (a sorted
//! set's member, a hash's field) to the slot of the vector that holds it,
//! storing only the 4-byte slot number (and hashbrown's control byte), and
//! reading keys from the vector when it compares or rehashes.
//!
//! It never rehashes everything at once, as Redis's dict does not: when the
//! table is full, a table twice as large takes the new entries, and every
//! insertion moves the entries of the next [`MIGRATE_SLOTS_PER_INSERT`]
//! slots of the vector over, until the old table is empty. Growing a
//! million-entry collection therefore costs no single command a rehash of a
//! million keys (185 ms on our VM for a sorted set).

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// Slots of the vector walked per insertion while the index grows. The
/// collections keep at most four slots per entry (a sorted set compacts its
/// arena below that; a hash has no holes), so the move ends after at most
/// len/16 insertions, well before the new table (twice the old) fills.
const MIGRATE_SLOTS_PER_INSERT: usize = 64;

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

    /// Adds the key now stored at `slot` (not in the index yet).
    pub fn insert(&mut self, slots: &(impl Slots + ?Sized), slot: u32) {
        if self.old.is_empty() && self.table.len() == self.table.capacity() {
            let larger = HashTable::with_capacity((self.table.len() + 1) * 2);
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
        let end = (self.cursor + MIGRATE_SLOTS_PER_INSERT).min(slots.slot_count());
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
