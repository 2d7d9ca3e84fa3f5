//! Sorted sets: a member -> slot map plus an order-statistic B+tree over
//! (score, member), where Redis has a dict and a skiplist (`zset`).
//!
//! Each element has a slot: its member and its score sit in parallel
//! vectors at that index, and the member -> slot map holds slot numbers
//! only and grows incrementally (see `slot_index`), so that no one ZADD
//! pays for rehashing a million members. ZSCORE is the map and one load.
//!
//! The order is a B+tree in two arenas (links are `u32` indexes, no
//! `unsafe`). A leaf holds up to [`LEAF_CAP`] (score, slot) pairs in order
//! and links to its neighbours, so a range is read leaf by leaf. An inner
//! node holds, for each child, the child's first element (its key) and how
//! many elements lie under it, so a rank, the element at a rank and the
//! ends of a score or lexicographic range are all one descent: O(log n),
//! and a range of m elements O(log n + m). Nodes are a few cache lines
//! each: on a million members a descent misses the cache about five times,
//! where a skiplist's misses about 25 (one a step, each depending on the
//! last), which is what a ZADD or ZRANK on a large set waits for.
//!
//! Ordering is Redis's: by score, ties by member bytes (memcmp order).
//! NaN is never stored. Members are [`ThinBytes`]: an 8-byte pointer, the
//! length in the allocation (an `Arc<[u8]>`, shared with the results built
//! from the set, cost 24 bytes more a member: a 16-byte pointer and the
//! counters; ZUNIONSTORE and friends copy members, as Redis does).
//!
//! Encoding: Redis keeps small sorted sets in a listpack (at most 128 members
//! of at most 64 bytes) and converts to a skiplist for good, never back,
//! except when a ZUNIONSTORE-style result is small. We always use the
//! tree but track the name Redis would report, and mirror the one
//! observable listpack effect: a listpack stores -0 as the integer 0.
//!
//! ```
//! use larder::store::types::ZSetValue;
//!
//! let mut z = ZSetValue::new();
//! z.insert(b"b", 2.0);
//! z.insert(b"a", 1.0);
//! assert_eq!(z.rank(b"b"), Some((1, 2.0)));
//! assert_eq!(z.score_range_ranks(1.0, false, 1.5, false), Some((0, 0)));
//! ```

use std::fmt;

use super::seg_vec::SegVec;
use super::slot_index::{PrefetchStep, SlotIndex, Slots};
use super::thin_bytes::{self, ThinBytes};

/// A member's bytes.
pub type Member = ThinBytes;

/// Redis's `zset-max-listpack-entries` default.
pub const LISTPACK_MAX_ENTRIES: usize = 128;
/// Redis's `zset-max-listpack-value` default.
pub const LISTPACK_MAX_VALUE: usize = 64;

/// Elements a leaf holds: with its header, six cache lines.
const LEAF_CAP: usize = 30;
/// Children an inner node holds: five cache lines.
const INNER_CAP: usize = 15;
/// A node left with fewer entries than this after a removal is merged into
/// a neighbour when both fit in one node.
const LEAF_MIN: usize = LEAF_CAP / 4;
const INNER_MIN: usize = INNER_CAP / 4;
/// Inner levels a descent can pass. A node is only split when full and
/// small nodes are merged, so nodes average several children and a tree of
/// 2^32 elements stays far below this.
const MAX_HEIGHT: usize = 32;
/// "No node" in the leaves' neighbour links.
const NONE: u32 = u32::MAX;

/// A leaf: its elements in order, as (score, slot) pairs.
#[derive(Clone)]
#[repr(C, align(64))]
struct Leaf {
    len: u32,
    prev: u32,
    next: u32,
    scores: [f64; LEAF_CAP],
    slots: [u32; LEAF_CAP],
}

impl Leaf {
    fn empty() -> Self {
        Leaf {
            len: 0,
            prev: NONE,
            next: NONE,
            scores: [0.0; LEAF_CAP],
            slots: [0; LEAF_CAP],
        }
    }

    fn len(&self) -> usize {
        self.len as usize
    }

    fn insert(&mut self, at: usize, score: f64, slot: u32) {
        let len = self.len();
        self.scores.copy_within(at..len, at + 1);
        self.slots.copy_within(at..len, at + 1);
        self.scores[at] = score;
        self.slots[at] = slot;
        self.len += 1;
    }

    fn remove(&mut self, at: usize, count: usize) {
        let len = self.len();
        self.scores.copy_within(at + count..len, at);
        self.slots.copy_within(at + count..len, at);
        self.len -= count as u32;
    }

    /// Moves the elements from `from` on to the end of `to` (which has room).
    fn move_tail(&mut self, from: usize, to: &mut Leaf) {
        let (len, at) = (self.len(), to.len());
        let moved = len - from;
        to.scores[at..at + moved].copy_from_slice(&self.scores[from..len]);
        to.slots[at..at + moved].copy_from_slice(&self.slots[from..len]);
        to.len += moved as u32;
        self.len = from as u32;
    }
}

/// An inner node: for each child, its first element's score and slot (the
/// key a descent compares), the child, and the elements under it.
#[derive(Clone)]
#[repr(C, align(64))]
struct Inner {
    len: u32,
    key_scores: [f64; INNER_CAP],
    key_slots: [u32; INNER_CAP],
    children: [u32; INNER_CAP],
    counts: [u32; INNER_CAP],
}

/// One child of an inner node, as it is inserted.
#[derive(Clone, Copy)]
struct Entry {
    score: f64,
    slot: u32,
    child: u32,
    count: u32,
}

impl Inner {
    fn empty() -> Self {
        Inner {
            len: 0,
            key_scores: [0.0; INNER_CAP],
            key_slots: [0; INNER_CAP],
            children: [0; INNER_CAP],
            counts: [0; INNER_CAP],
        }
    }

    fn len(&self) -> usize {
        self.len as usize
    }

    fn total(&self) -> usize {
        self.counts[..self.len()].iter().map(|&c| c as usize).sum()
    }

    fn insert(&mut self, at: usize, e: Entry) {
        let len = self.len();
        self.key_scores.copy_within(at..len, at + 1);
        self.key_slots.copy_within(at..len, at + 1);
        self.children.copy_within(at..len, at + 1);
        self.counts.copy_within(at..len, at + 1);
        self.key_scores[at] = e.score;
        self.key_slots[at] = e.slot;
        self.children[at] = e.child;
        self.counts[at] = e.count;
        self.len += 1;
    }

    fn remove(&mut self, at: usize) {
        let len = self.len();
        self.key_scores.copy_within(at + 1..len, at);
        self.key_slots.copy_within(at + 1..len, at);
        self.children.copy_within(at + 1..len, at);
        self.counts.copy_within(at + 1..len, at);
        self.len -= 1;
    }

    /// Moves the children from `from` on to the end of `to` (which has room).
    fn move_tail(&mut self, from: usize, to: &mut Inner) {
        let (len, at) = (self.len(), to.len());
        let moved = len - from;
        to.key_scores[at..at + moved].copy_from_slice(&self.key_scores[from..len]);
        to.key_slots[at..at + moved].copy_from_slice(&self.key_slots[from..len]);
        to.children[at..at + moved].copy_from_slice(&self.children[from..len]);
        to.counts[at..at + moved].copy_from_slice(&self.counts[from..len]);
        to.len += moved as u32;
        self.len = from as u32;
    }
}

/// Where a descent ended: the inner nodes it passed with the child it took
/// in each (root first), the leaf, the position in the leaf, and how many
/// elements of the whole set precede that position.
struct Descent {
    path: [(u32, usize); MAX_HEIGHT],
    depth: usize,
    leaf: u32,
    pos: usize,
    rank: usize,
}

/// Starts loading every cache line of `node`, which a descent is about to
/// search: the lines then arrive together rather than one per comparison.
#[inline]
fn prefetch_node<T>(node: &T) {
    let start = (node as *const T).cast::<u8>();
    for offset in (0..std::mem::size_of::<T>()).step_by(64) {
        crate::store::prefetch(start.wrapping_add(offset));
    }
}

/// A node of `arena` set to `empty`: a freed one, else a new one.
fn alloc_node<T>(arena: &mut SegVec<T>, free: &mut Vec<u32>, empty: T) -> u32 {
    match free.pop() {
        Some(id) => {
            arena[id as usize] = empty;
            id
        }
        None => {
            arena.push(empty);
            (arena.len() - 1) as u32
        }
    }
}

/// How many of `0..len` satisfy `holds`, which holds for a prefix of them.
#[inline]
fn prefix_len(len: usize, holds: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let middle = (low + high) / 2;
        if holds(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// The arena's members, as the index reads them.
impl Slots for SegVec<Option<Member>> {
    fn key(&self, slot: u32) -> Option<&[u8]> {
        self[slot as usize].as_deref()
    }

    fn slot_count(&self) -> usize {
        self.len()
    }
}

/// What [`ZSetValue::add`] did; the score is the member's score afterwards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AddOutcome {
    Added(f64),
    Updated(f64),
    /// The member was there with this very score (still "processed").
    Unchanged(f64),
    /// NX/XX/GT/LT prevented the operation.
    Skipped,
}

impl AddOutcome {
    pub fn added(&self) -> bool {
        matches!(self, AddOutcome::Added(_))
    }

    pub fn updated(&self) -> bool {
        matches!(self, AddOutcome::Updated(_))
    }

    /// The member's score afterwards, unless the conditions skipped it.
    pub fn score(&self) -> Option<f64> {
        match *self {
            AddOutcome::Added(s) | AddOutcome::Updated(s) | AddOutcome::Unchanged(s) => Some(s),
            AddOutcome::Skipped => None,
        }
    }
}

/// The resulting score would be NaN (e.g. `+inf` incremented by `-inf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreIsNan;

/// A sorted set.
#[derive(Clone)]
pub struct ZSetValue {
    index: SlotIndex,
    /// Each slot's member: `None` for free slots. In segments, as are the
    /// other arenas: a `Vec` of two million elements doubled by copying
    /// tens of MiB in one ZADD (see `seg_vec`).
    members: SegVec<Option<Member>>,
    /// Each slot's score (ZSCORE reads it without the tree).
    scores: SegVec<f64>,
    free: Vec<u32>,
    leaves: SegVec<Leaf>,
    free_leaves: Vec<u32>,
    inners: SegVec<Inner>,
    free_inners: Vec<u32>,
    root: u32,
    /// Inner levels above the leaves (0: the root is a leaf).
    height: usize,
    first_leaf: u32,
    last_leaf: u32,
    length: usize,
    /// Whether Redis would have converted this set to a skiplist.
    skiplist_encoded: bool,
    /// Heap bytes of the live members, kept up to date so that `heap_size`
    /// is O(1).
    payload_bytes: usize,
}

impl Default for ZSetValue {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for ZSetValue {
    fn eq(&self, other: &Self) -> bool {
        self.length == other.length
            && self
                .iter()
                .zip(other.iter())
                .all(|((m1, s1), (m2, s2))| m1 == m2 && s1 == s2)
    }
}

impl fmt::Debug for ZSetValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s)),
            )
            .finish()
    }
}

impl ZSetValue {
    /// [`ZSetValue::add`] flag: only add new members.
    pub const NX: u8 = 1;
    /// Only update existing members.
    pub const XX: u8 = 2;
    /// Only update when the new score is greater.
    pub const GT: u8 = 4;
    /// Only update when the new score is less.
    pub const LT: u8 = 8;
    /// Increment the score instead of setting it.
    pub const INCR: u8 = 16;

    pub fn new() -> Self {
        ZSetValue {
            index: SlotIndex::default(),
            members: SegVec::default(),
            scores: SegVec::default(),
            free: Vec::new(),
            // The root: one empty leaf.
            leaves: [Leaf::empty()].into_iter().collect(),
            free_leaves: Vec::new(),
            inners: SegVec::default(),
            free_inners: Vec::new(),
            root: 0,
            height: 0,
            first_leaf: 0,
            last_leaf: 0,
            length: 0,
            skiplist_encoded: false,
            payload_bytes: 0,
        }
    }

    /// An empty set that Redis would create with the skiplist encoding
    /// directly (ZRANGESTORE of more than 128 elements).
    pub fn with_expected_len(len: usize) -> Self {
        let mut z = Self::new();
        z.skiplist_encoded = len > LISTPACK_MAX_ENTRIES;
        z
    }

    pub fn len(&self) -> usize {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The hash a lookup of `member` uses, for [`ZSetValue::prefetch_member`].
    pub fn member_hash(&self, member: &[u8]) -> u64 {
        self.index.hash_of(member)
    }

    /// One step of a batched lookup of the member hashed as `hash` (see
    /// `Store::prefetch`): the index group, then the member's slot and
    /// score, then the member's bytes.
    pub fn prefetch_member(&self, hash: u64, step: PrefetchStep) {
        match step {
            PrefetchStep::Group => self.index.prefetch_group(hash),
            PrefetchStep::Element => self.index.candidates(hash, |slot| {
                let slot = slot as usize;
                if let (Some(member), Some(score)) = (self.members.get(slot), self.scores.get(slot))
                {
                    crate::store::prefetch(member);
                    crate::store::prefetch(score);
                }
            }),
            PrefetchStep::Key => self.index.candidates(hash, |slot| {
                if let Some(Some(member)) = self.members.get(slot as usize) {
                    crate::store::prefetch(member.address());
                }
            }),
        }
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        let slots = self.members.capacity() * std::mem::size_of::<Option<Member>>()
            + self.scores.capacity() * std::mem::size_of::<f64>()
            + self.free.capacity() * 4;
        let tree = self.leaves.capacity() * std::mem::size_of::<Leaf>()
            + self.inners.capacity() * std::mem::size_of::<Inner>()
            + (self.free_leaves.capacity() + self.free_inners.capacity()) * 4;
        slots + tree + self.payload_bytes + self.index.heap_size()
    }

    /// The encoding name Redis would report (OBJECT ENCODING).
    pub fn encoding(&self) -> &'static str {
        if self.skiplist_encoded {
            "skiplist"
        } else {
            "listpack"
        }
    }

    /// Whether Redis would hold this set in a listpack.
    pub fn is_listpack(&self) -> bool {
        !self.skiplist_encoded
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.slot_of(member).map(|slot| self.scores[slot as usize])
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.slot_of(member).is_some()
    }

    fn slot_of(&self, member: &[u8]) -> Option<u32> {
        self.index.get(&self.members, member)
    }

    // ----- slots ---------------------------------------------------------

    fn member(&self, slot: u32) -> &[u8] {
        self.members[slot as usize].as_deref().unwrap_or(&[])
    }

    /// Heap bytes a member holds besides its slot (with its length).
    fn payload(member: &[u8]) -> usize {
        thin_bytes::encode_len(member.len()).1 + member.len()
    }

    fn alloc_slot(&mut self, member: Member, score: f64) -> u32 {
        self.payload_bytes += Self::payload(&member);
        match self.free.pop() {
            Some(slot) => {
                self.members[slot as usize] = Some(member);
                self.scores[slot as usize] = score;
                slot
            }
            None => {
                self.members.push(Some(member));
                self.scores.push(score);
                (self.members.len() - 1) as u32
            }
        }
    }

    fn release_slot(&mut self, slot: u32) -> Option<Member> {
        let member = self.members[slot as usize].take();
        if let Some(m) = &member {
            self.payload_bytes = self.payload_bytes.saturating_sub(Self::payload(m));
        }
        self.free.push(slot);
        member
    }

    /// Compacts the slots once they are mostly free (after the set shrank to
    /// a quarter of its peak): amortized O(1) per removal. ZSCAN cursors
    /// are slot numbers, so a scan running across a compaction may miss
    /// elements; compactions are rare.
    fn maybe_shrink(&mut self) {
        if self.members.len() > 64 && self.length * 4 < self.members.len() {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        let order: Vec<(u32, f64)> = self.iter_slots(self.first_leaf, 0, false).collect();
        let mut items: Vec<(Member, f64)> = Vec::with_capacity(order.len());
        for (slot, score) in order {
            if let Some(member) = self.members[slot as usize].take() {
                items.push((member, score));
            }
        }
        let encoded = self.skiplist_encoded;
        *self = ZSetValue::new();
        self.skiplist_encoded = encoded;
        self.index = SlotIndex::with_capacity(items.len());
        // In order: each insertion appends to the last leaf, which then
        // splits full (see `split_leaf`).
        for (member, score) in items {
            self.insert_new(member, score);
        }
    }

    /// Inserts a member known to be absent, in the tree and the map.
    fn insert_new(&mut self, member: Member, score: f64) -> u32 {
        let slot = self.alloc_slot(member, score);
        self.tree_insert(slot, score);
        self.index.insert(&self.members, slot);
        slot
    }

    // ----- the tree ------------------------------------------------------

    /// Whether the element (`s`, `slot`) orders strictly before (score, member).
    fn before(&self, s: f64, slot: u32, score: f64, member: &[u8]) -> bool {
        s < score || (s == score && self.member(slot) < member)
    }

    /// Whether the element (`s`, `slot`) orders before or at (score, member).
    fn at_or_before(&self, s: f64, slot: u32, score: f64, member: &[u8]) -> bool {
        s < score || (s == score && self.member(slot) <= member)
    }

    fn prefetch_child(&self, child: u32, leaf: bool) {
        if leaf {
            if let Some(node) = self.leaves.get(child as usize) {
                prefetch_node(node);
            }
        } else if let Some(node) = self.inners.get(child as usize) {
            prefetch_node(node);
        }
    }

    /// Descends to the first element for which `holds(score, slot)` is
    /// false (`holds` must hold for a prefix of the order); the descent's
    /// rank is how many elements it holds for.
    fn descend(&self, holds: impl Fn(f64, u32) -> bool) -> Descent {
        let mut d = Descent {
            path: [(0, 0); MAX_HEIGHT],
            depth: self.height,
            leaf: self.root,
            pos: 0,
            rank: 0,
        };
        let mut node = self.root;
        for depth in 0..self.height {
            let inner = &self.inners[node as usize];
            // The last child whose first element `holds` for (or the first).
            let child = prefix_len(inner.len().saturating_sub(1), |i| {
                holds(inner.key_scores[i + 1], inner.key_slots[i + 1])
            });
            d.rank += inner.counts[..child]
                .iter()
                .map(|&c| c as usize)
                .sum::<usize>();
            d.path[depth] = (node, child);
            node = inner.children[child];
            self.prefetch_child(node, depth + 1 == self.height);
        }
        let leaf = &self.leaves[node as usize];
        d.leaf = node;
        d.pos = prefix_len(leaf.len(), |i| holds(leaf.scores[i], leaf.slots[i]));
        d.rank += d.pos;
        d
    }

    /// Descends to the element at 0-based rank `rank` (< the length).
    fn descend_rank(&self, rank: usize) -> Descent {
        let mut d = Descent {
            path: [(0, 0); MAX_HEIGHT],
            depth: self.height,
            leaf: self.root,
            pos: 0,
            rank,
        };
        let mut left = rank;
        let mut node = self.root;
        for depth in 0..self.height {
            let inner = &self.inners[node as usize];
            let mut child = 0;
            while child + 1 < inner.len() && left >= inner.counts[child] as usize {
                left -= inner.counts[child] as usize;
                child += 1;
            }
            d.path[depth] = (node, child);
            node = inner.children[child];
            self.prefetch_child(node, depth + 1 == self.height);
        }
        d.leaf = node;
        d.pos = left;
        d
    }

    /// Descends to the element in `slot`, which is in the set.
    fn find(&self, slot: u32) -> Descent {
        let (score, member) = (self.scores[slot as usize], self.member(slot));
        let mut d = self.descend(|s, x| self.at_or_before(s, x, score, member));
        // The descent stopped just after it.
        debug_assert!(d.pos > 0 && self.leaves[d.leaf as usize].slots[d.pos - 1] == slot);
        d.pos = d.pos.saturating_sub(1);
        d.rank = d.rank.saturating_sub(1);
        d
    }

    /// The first element of node `id` (a leaf when `leaf`), as a key.
    fn first_key(&self, id: u32, leaf: bool) -> (f64, u32) {
        if leaf {
            let leaf = &self.leaves[id as usize];
            (leaf.scores[0], leaf.slots[0])
        } else {
            let inner = &self.inners[id as usize];
            (inner.key_scores[0], inner.key_slots[0])
        }
    }

    /// Node `id` as its parent's entry for it: its first key and its count.
    fn entry_of(&self, id: u32, leaf: bool) -> Entry {
        let (score, slot) = self.first_key(id, leaf);
        Entry {
            score,
            slot,
            child: id,
            count: self.node_total(id, leaf) as u32,
        }
    }

    /// Entries of node `id` (elements of a leaf, children of an inner node).
    fn node_len(&self, id: u32, leaf: bool) -> usize {
        if leaf {
            self.leaves[id as usize].len()
        } else {
            self.inners[id as usize].len()
        }
    }

    /// Elements under node `id`.
    fn node_total(&self, id: u32, leaf: bool) -> usize {
        if leaf {
            self.leaves[id as usize].len()
        } else {
            self.inners[id as usize].total()
        }
    }

    fn alloc_leaf(&mut self) -> u32 {
        alloc_node(&mut self.leaves, &mut self.free_leaves, Leaf::empty())
    }

    fn alloc_inner(&mut self) -> u32 {
        alloc_node(&mut self.inners, &mut self.free_inners, Inner::empty())
    }

    /// Takes leaf `id` out of the leaves' order and frees it.
    fn drop_leaf(&mut self, id: u32) {
        let (prev, next) = {
            let leaf = &self.leaves[id as usize];
            (leaf.prev, leaf.next)
        };
        match prev {
            NONE => self.first_leaf = next,
            prev => self.leaves[prev as usize].next = next,
        }
        match next {
            NONE => self.last_leaf = prev,
            next => self.leaves[next as usize].prev = prev,
        }
        self.free_leaves.push(id);
    }

    fn drop_node(&mut self, id: u32, leaf: bool) {
        if leaf {
            self.drop_leaf(id);
        } else {
            self.free_inners.push(id);
        }
    }

    /// Splits the full leaf `id`, about to take an element at `at`: a new
    /// leaf after it takes its upper half; or, when the element goes at the
    /// very end of the last leaf (scores that only grow, and rebuilding),
    /// only that element, and at the very start of the first leaf every
    /// other one, so that leaves filled in order stay full.
    /// Returns the new leaf and where the element goes: (leaf, position).
    fn split_leaf(&mut self, id: u32, at: usize) -> (u32, (u32, usize)) {
        let leaf = &self.leaves[id as usize];
        let keep = if at == LEAF_CAP && leaf.next == NONE {
            LEAF_CAP
        } else if at == 0 && leaf.prev == NONE {
            0
        } else {
            LEAF_CAP / 2
        };
        let new = self.alloc_leaf();
        let mut right = std::mem::replace(&mut self.leaves[new as usize], Leaf::empty());
        let left = &mut self.leaves[id as usize];
        left.move_tail(keep, &mut right);
        right.prev = id;
        right.next = left.next;
        left.next = new;
        match right.next {
            NONE => self.last_leaf = new,
            next => self.leaves[next as usize].prev = new,
        }
        self.leaves[new as usize] = right;
        let target = if at <= keep && keep < LEAF_CAP {
            (id, at)
        } else {
            (new, at - keep)
        };
        (new, target)
    }

    /// Inserts `entry` at `at` in inner node `id`, splitting it if full (as
    /// `split_leaf` does; `rightmost` says whether it is the last node of
    /// its level). Returns the new node of a split.
    fn inner_insert(&mut self, id: u32, at: usize, entry: Entry, rightmost: bool) -> Option<u32> {
        if self.inners[id as usize].len() < INNER_CAP {
            self.inners[id as usize].insert(at, entry);
            return None;
        }
        let keep = if at == INNER_CAP && rightmost {
            INNER_CAP
        } else {
            INNER_CAP / 2
        };
        let new = self.alloc_inner();
        let mut right = std::mem::replace(&mut self.inners[new as usize], Inner::empty());
        self.inners[id as usize].move_tail(keep, &mut right);
        if at <= keep && keep < INNER_CAP {
            self.inners[id as usize].insert(at, entry);
        } else {
            right.insert(at - keep, entry);
        }
        self.inners[new as usize] = right;
        Some(new)
    }

    /// Brings the inner nodes on `d`'s path up to date after its leaf
    /// changed, bottom up: each child's count and key; a split child's new
    /// sibling placed after it (splitting the parent in turn when full); an
    /// emptied child dropped, and a small one merged into a neighbour when
    /// the two fit in one node. Then the root: a new one above a split
    /// root, and an inner root with one child replaced by that child.
    fn repair(&mut self, d: &Descent, mut split: Option<u32>) {
        let mut child = d.leaf;
        for depth in (0..d.depth).rev() {
            let (parent, at) = d.path[depth];
            let leaf = depth + 1 == d.depth;
            let entries = self.node_len(child, leaf);
            if entries == 0 {
                // Only a removal empties a node; it has no split sibling.
                self.inners[parent as usize].remove(at);
                self.drop_node(child, leaf);
                child = parent;
                continue;
            }
            let refreshed = self.entry_of(child, leaf);
            {
                let inner = &mut self.inners[parent as usize];
                inner.key_scores[at] = refreshed.score;
                inner.key_slots[at] = refreshed.slot;
                inner.counts[at] = refreshed.count;
            }
            if let Some(new) = split {
                let entry = self.entry_of(new, leaf);
                let rightmost = (0..depth).all(|up| {
                    let (node, taken) = d.path[up];
                    taken + 1 == self.inners[node as usize].len()
                });
                split = self.inner_insert(parent, at + 1, entry, rightmost);
            } else if entries < if leaf { LEAF_MIN } else { INNER_MIN } {
                self.merge_small(parent, at, leaf);
            }
            child = parent;
        }
        if let Some(new) = split {
            // The root split: a new root above the two halves.
            let old = self.root;
            let leaf = self.height == 0;
            let root = self.alloc_inner();
            for (at, id) in [old, new].into_iter().enumerate() {
                let entry = self.entry_of(id, leaf);
                self.inners[root as usize].insert(at, entry);
            }
            self.root = root;
            self.height += 1;
        }
        while self.height > 0 && self.inners[self.root as usize].len() <= 1 {
            let old = self.root;
            // A root keeps two children or more: a repair drops at most one
            // child a level, and one with a single child is replaced here.
            debug_assert!(self.inners[old as usize].len() == 1);
            self.root = self.inners[old as usize].children[0];
            self.height -= 1;
            self.free_inners.push(old);
        }
    }

    /// Merges child `at` of `parent` with a neighbour when the two fit in
    /// one node (the right one into the left one).
    fn merge_small(&mut self, parent: u32, at: usize, leaf: bool) {
        let siblings = self.inners[parent as usize].len();
        let left_at = if at > 0 {
            at - 1
        } else if siblings > 1 {
            at
        } else {
            return;
        };
        let (left, right) = {
            let inner = &self.inners[parent as usize];
            (inner.children[left_at], inner.children[left_at + 1])
        };
        let cap = if leaf { LEAF_CAP } else { INNER_CAP };
        if self.node_len(left, leaf) + self.node_len(right, leaf) > cap {
            return;
        }
        if leaf {
            let mut from = std::mem::replace(&mut self.leaves[right as usize], Leaf::empty());
            from.move_tail(0, &mut self.leaves[left as usize]);
            self.leaves[right as usize] = from;
            self.drop_leaf(right);
        } else {
            let mut from = std::mem::replace(&mut self.inners[right as usize], Inner::empty());
            from.move_tail(0, &mut self.inners[left as usize]);
            self.free_inners.push(right);
        }
        let inner = &mut self.inners[parent as usize];
        inner.counts[left_at] += inner.counts[left_at + 1];
        inner.remove(left_at + 1);
    }

    /// Links (score, slot) into the tree.
    fn tree_insert(&mut self, slot: u32, score: f64) {
        let d = {
            let member = self.member(slot);
            self.descend(|s, x| self.before(s, x, score, member))
        };
        let split = if self.leaves[d.leaf as usize].len() < LEAF_CAP {
            self.leaves[d.leaf as usize].insert(d.pos, score, slot);
            None
        } else {
            let (new, (leaf, at)) = self.split_leaf(d.leaf, d.pos);
            self.leaves[leaf as usize].insert(at, score, slot);
            Some(new)
        };
        self.length += 1;
        self.repair(&d, split);
    }

    /// Unlinks `count` elements from the tree, from where `d` stands (all
    /// in its leaf). Their slots stay allocated.
    fn tree_remove(&mut self, d: &Descent, count: usize) {
        self.leaves[d.leaf as usize].remove(d.pos, count);
        self.length -= count;
        self.repair(d, None);
    }

    /// Elements as (slot, score) from position `pos` of `leaf` on.
    fn iter_slots(&self, leaf: u32, pos: usize, reverse: bool) -> SlotIter<'_> {
        let at = if leaf == NONE || pos >= self.leaves[leaf as usize].len() {
            NONE
        } else {
            leaf
        };
        SlotIter {
            set: self,
            leaf: at,
            pos,
            reverse,
        }
    }

    // ----- public operations ---------------------------------------------

    /// Whether adding `member` as a new element would make Redis convert
    /// the listpack to a skiplist, and the score as the encoding stores it.
    fn prepare_new(&mut self, member: &[u8], score: f64) -> f64 {
        if !self.skiplist_encoded
            && (self.length + 1 > LISTPACK_MAX_ENTRIES || member.len() > LISTPACK_MAX_VALUE)
        {
            self.skiplist_encoded = true;
        }
        self.stored_score(score)
    }

    /// A listpack stores integral scores as integers: -0 reads back as 0.
    fn stored_score(&self, score: f64) -> f64 {
        if !self.skiplist_encoded && score == 0.0 {
            0.0
        } else {
            score
        }
    }

    /// ZADD/ZINCRBY on one member, with Redis's `zsetAdd` rules.
    pub fn add(&mut self, member: &[u8], score: f64, flags: u8) -> Result<AddOutcome, ScoreIsNan> {
        let has = |flag: u8| flags & flag != 0;
        if score.is_nan() {
            return Err(ScoreIsNan);
        }
        match self.slot_of(member) {
            Some(slot) => {
                if has(Self::NX) {
                    return Ok(AddOutcome::Skipped);
                }
                let current = self.scores[slot as usize];
                let mut score = score;
                if has(Self::INCR) {
                    score += current;
                    if score.is_nan() {
                        return Err(ScoreIsNan);
                    }
                }
                if (has(Self::LT) && score >= current) || (has(Self::GT) && score <= current) {
                    return Ok(AddOutcome::Skipped);
                }
                if score == current {
                    return Ok(AddOutcome::Unchanged(score));
                }
                // The reply shows the computed score; a listpack stores -0 as 0.
                self.update_score(slot, self.stored_score(score));
                Ok(AddOutcome::Updated(score))
            }
            None if has(Self::XX) => Ok(AddOutcome::Skipped),
            None => {
                let stored = self.prepare_new(member, score);
                self.insert_new(Member::from(member), stored);
                Ok(AddOutcome::Added(score))
            }
        }
    }

    /// zslUpdateScore: gives the element in `slot` its new score, within
    /// its leaf when the new place is between two of the leaf's other
    /// elements (a score that moves a little: one descent), else by taking
    /// it out and inserting it again.
    fn update_score(&mut self, slot: u32, score: f64) {
        let d = self.find(slot);
        let within_leaf = {
            let leaf = &self.leaves[d.leaf as usize];
            let member = self.member(slot);
            // How many of the leaf's other elements order before the new key.
            let before = prefix_len(leaf.len() - 1, |j| {
                let i = j + usize::from(j >= d.pos);
                self.before(leaf.scores[i], leaf.slots[i], score, member)
            });
            (before > 0 && before + 1 < leaf.len()).then_some(before)
        };
        self.scores[slot as usize] = score;
        match within_leaf {
            Some(at) => {
                let leaf = &mut self.leaves[d.leaf as usize];
                leaf.remove(d.pos, 1);
                leaf.insert(at, score, slot);
                if d.pos == 0 {
                    // It was the leaf's first element: the keys above change.
                    self.repair(&d, None);
                }
            }
            None => {
                self.tree_remove(&d, 1);
                self.tree_insert(slot, score);
            }
        }
    }

    /// Adds or replaces `member` with `score` (no conditions). NaN is
    /// ignored. Returns true if the member is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        matches!(self.add(member, score, 0), Ok(AddOutcome::Added(_)))
    }

    /// Adds a member known to be absent, without the listpack bookkeeping
    /// (building ZUNIONSTORE-style results; finish them with
    /// [`ZSetValue::finish_store`]).
    pub fn push_new(&mut self, member: Member, score: f64) {
        if score.is_nan() || self.contains(&member) {
            return;
        }
        self.skiplist_encoded = true;
        self.insert_new(member, score);
    }

    /// zsetConvertToListpackIfNeeded for a freshly built result: small
    /// results are listpacks (whose -0 scores read back as 0).
    pub fn finish_store(&mut self) {
        let longest = self
            .members
            .iter()
            .flatten()
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        if self.length <= LISTPACK_MAX_ENTRIES && longest <= LISTPACK_MAX_VALUE {
            self.skiplist_encoded = false;
            // -0 and 0 are equal to every comparison: the order stands.
            for score in self.scores.iter_mut() {
                if *score == 0.0 {
                    *score = 0.0;
                }
            }
            for leaf in self.leaves.iter_mut() {
                for score in leaf.scores.iter_mut() {
                    if *score == 0.0 {
                        *score = 0.0;
                    }
                }
            }
        } else {
            self.skiplist_encoded = true;
        }
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        let Some(slot) = self.slot_of(member) else {
            return false;
        };
        let d = self.find(slot);
        self.tree_remove(&d, 1);
        self.index.remove(&self.members, slot);
        self.release_slot(slot);
        self.maybe_shrink();
        true
    }

    /// The 0-based rank of `member` (ascending order) and its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let slot = self.slot_of(member)?;
        Some((self.find(slot).rank, self.scores[slot as usize]))
    }

    /// The element at 0-based rank `rank` (ascending order).
    pub fn at_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        if rank >= self.length {
            return None;
        }
        let d = self.descend_rank(rank);
        let leaf = &self.leaves[d.leaf as usize];
        Some((self.member(leaf.slots[d.pos]), leaf.scores[d.pos]))
    }

    /// How many leading elements `holds(score, slot)` is true for (it must
    /// hold for a prefix of the order): O(log n).
    fn count_prefix(&self, holds: impl Fn(f64, u32) -> bool) -> usize {
        self.descend(holds).rank
    }

    /// 0-based inclusive ranks (first, last) of the elements after those
    /// for which `before` holds and up to the last for which `through`
    /// holds, or None if that is empty. Both predicates take (score,
    /// member) and must hold for a prefix of the order (score ranges
    /// always; lexicographic ranges when all scores are equal, as Redis
    /// assumes). O(log n).
    pub fn rank_span(
        &self,
        before: impl Fn(f64, &[u8]) -> bool,
        through: impl Fn(f64, &[u8]) -> bool,
    ) -> Option<(usize, usize)> {
        let skipped = self.count_prefix(|s, slot| before(s, self.member(slot)));
        let last = self.count_prefix(|s, slot| through(s, self.member(slot)));
        (last > skipped).then(|| (skipped, last - 1))
    }

    /// 0-based inclusive ranks of the elements with scores between `min`
    /// and `max` (each bound inclusive or exclusive). O(log n), and no
    /// member is read.
    pub fn score_range_ranks(
        &self,
        min: f64,
        min_exclusive: bool,
        max: f64,
        max_exclusive: bool,
    ) -> Option<(usize, usize)> {
        let skipped = self.count_prefix(|s, _| if min_exclusive { s <= min } else { s < min });
        let last = self.count_prefix(|s, _| if max_exclusive { s < max } else { s <= max });
        (last > skipped).then(|| (skipped, last - 1))
    }

    /// Elements from 0-based rank `rank` on, ascending (or descending when
    /// `reverse`, still starting at that ascending rank). O(log n) to start.
    pub fn iter_from(&self, rank: usize, reverse: bool) -> Iter<'_> {
        let (slots, remaining) = if rank >= self.length {
            (self.iter_slots(NONE, 0, reverse), 0)
        } else if rank == 0 && !reverse {
            (self.iter_slots(self.first_leaf, 0, false), self.length)
        } else {
            let d = self.descend_rank(rank);
            let remaining = if reverse {
                rank + 1
            } else {
                self.length - rank
            };
            (self.iter_slots(d.leaf, d.pos, reverse), remaining)
        };
        Iter { slots, remaining }
    }

    /// All elements in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0, false)
    }

    /// All elements in descending order.
    pub fn iter_rev(&self) -> Iter<'_> {
        let last = self.last_leaf;
        let pos = self.leaves[last as usize].len().saturating_sub(1);
        Iter {
            slots: self.iter_slots(last, pos, true),
            remaining: self.length,
        }
    }

    /// Removes the elements of 0-based ranks `first..=last` (clamped);
    /// returns how many. O(log n) a leaf's worth of elements.
    pub fn remove_rank_range(&mut self, first: usize, last: usize) -> usize {
        let last = last.min(self.length.saturating_sub(1));
        if self.length == 0 || first > last {
            return 0;
        }
        let mut left = last - first + 1;
        while left > 0 {
            let d = self.descend_rank(first);
            let count = left.min(self.leaves[d.leaf as usize].len() - d.pos);
            for at in d.pos..d.pos + count {
                let slot = self.leaves[d.leaf as usize].slots[at];
                self.index.remove(&self.members, slot);
                self.release_slot(slot);
            }
            self.tree_remove(&d, count);
            left -= count;
        }
        self.maybe_shrink();
        last - first + 1
    }

    /// Removes and returns the lowest (or, with `max`, highest) element.
    /// Used by ZPOPMIN/ZPOPMAX/ZMPOP and their blocking forms.
    pub fn pop(&mut self, max: bool) -> Option<(Member, f64)> {
        if self.length == 0 {
            return None;
        }
        let d = self.descend_rank(if max { self.length - 1 } else { 0 });
        let (slot, score) = {
            let leaf = &self.leaves[d.leaf as usize];
            (leaf.slots[d.pos], leaf.scores[d.pos])
        };
        self.tree_remove(&d, 1);
        self.index.remove(&self.members, slot);
        let member = self.release_slot(slot)?;
        self.maybe_shrink();
        Some((member, score))
    }

    /// ZSCAN over the element slots: visits slots from `cursor` calling `f`
    /// until `count` elements were seen (or `count * 10` slots visited);
    /// returns the next cursor, 0 when done. A listpack-sized set is
    /// returned whole, in order, as Redis does.
    ///
    /// A slot keeps its element for the element's lifetime, so an element
    /// present during the whole iteration is returned (Redis's guarantee),
    /// unless the set shrank to under a quarter of its slots meanwhile
    /// (then the slots are compacted).
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(&'a [u8], f64)) -> u64 {
        if !self.skiplist_encoded {
            for (m, s) in self.iter() {
                f(m, s);
            }
            return 0;
        }
        let mut slot = usize::try_from(cursor).unwrap_or(usize::MAX);
        let count = count.max(1);
        let mut budget = count.saturating_mul(10);
        let mut seen = 0;
        while slot < self.members.len() && seen < count && budget > 0 {
            if let Some(m) = &self.members[slot] {
                f(m, self.scores[slot]);
                seen += 1;
            }
            slot += 1;
            budget -= 1;
        }
        if slot >= self.members.len() {
            0
        } else {
            slot as u64
        }
    }

    /// Checks the tree's invariants (tests): every inner node's keys and
    /// counts, equal depth, the leaves' links, the order, each slot's score
    /// and index entry, and rank and select for every element.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut leaves = Vec::new();
        let total = self.check_node(self.root, self.height, &mut leaves)?;
        if total != self.length {
            return Err(format!("tree holds {total}, length {}", self.length));
        }
        let mut linked = Vec::new();
        let (mut at, mut prev) = (self.first_leaf, NONE);
        while at != NONE {
            if self.leaves[at as usize].prev != prev {
                return Err(format!("bad prev link at leaf {at}"));
            }
            linked.push(at);
            prev = at;
            at = self.leaves[at as usize].next;
        }
        if linked != leaves || self.last_leaf != prev {
            return Err("leaf links differ from the tree's order".into());
        }
        let mut previous: Option<(f64, u32)> = None;
        for (rank, (slot, score)) in self.iter_slots(self.first_leaf, 0, false).enumerate() {
            let member = self.member(slot);
            if let Some((s, x)) = previous {
                if !self.before(s, x, score, member) {
                    return Err(format!("out of order at rank {rank}"));
                }
            }
            previous = Some((score, slot));
            if self.scores[slot as usize].to_bits() != score.to_bits() {
                return Err(format!("slot {slot}'s score differs from its leaf's"));
            }
            if self.slot_of(member) != Some(slot) {
                return Err("index mismatch".into());
            }
            if self.rank(member) != Some((rank, score)) {
                return Err(format!("rank mismatch at {rank}"));
            }
            if self.at_rank(rank).map(|(m, _)| m) != Some(member) {
                return Err(format!("select mismatch at {rank}"));
            }
        }
        let live = self.members.iter().flatten().count();
        if live != self.length || self.index.len() != self.length {
            return Err("slots or index differ from the length".into());
        }
        let payload: usize = self
            .members
            .iter()
            .flatten()
            .map(|m| Self::payload(m))
            .sum();
        if payload != self.payload_bytes {
            return Err(format!("payload {} != {}", self.payload_bytes, payload));
        }
        Ok(())
    }

    /// Checks the subtree of `id` (`height` inner levels above its leaves),
    /// appending its leaves to `leaves`; returns its element count.
    fn check_node(&self, id: u32, height: usize, leaves: &mut Vec<u32>) -> Result<usize, String> {
        if height == 0 {
            let leaf = &self.leaves[id as usize];
            if leaf.len() == 0 && id != self.root {
                return Err(format!("empty leaf {id}"));
            }
            leaves.push(id);
            return Ok(leaf.len());
        }
        let inner = &self.inners[id as usize];
        if inner.len() == 0 || (id == self.root && inner.len() < 2) {
            return Err(format!("inner node {id} has {} children", inner.len()));
        }
        let mut total = 0;
        for at in 0..inner.len() {
            let child = inner.children[at];
            let count = self.check_node(child, height - 1, leaves)?;
            if count != inner.counts[at] as usize {
                return Err(format!("count of child {at} of {id}: {count}"));
            }
            let (score, slot) = self.first_key(child, height == 1);
            if inner.key_scores[at] != score || inner.key_slots[at] != slot {
                return Err(format!("key of child {at} of {id} is stale"));
            }
            total += count;
        }
        Ok(total)
    }
}

/// Elements as (slot, score), leaf by leaf.
struct SlotIter<'a> {
    set: &'a ZSetValue,
    /// NONE when done.
    leaf: u32,
    pos: usize,
    reverse: bool,
}

impl Iterator for SlotIter<'_> {
    type Item = (u32, f64);

    fn next(&mut self) -> Option<(u32, f64)> {
        if self.leaf == NONE {
            return None;
        }
        let leaf = &self.set.leaves[self.leaf as usize];
        let item = (leaf.slots[self.pos], leaf.scores[self.pos]);
        if self.reverse {
            if self.pos == 0 {
                self.leaf = leaf.prev;
                if self.leaf != NONE {
                    self.pos = self.set.leaves[self.leaf as usize].len() - 1;
                }
            } else {
                self.pos -= 1;
            }
        } else if self.pos + 1 < leaf.len() {
            self.pos += 1;
        } else {
            self.leaf = leaf.next;
            self.pos = 0;
        }
        Some(item)
    }
}

/// Iterator over (member, score) pairs from a starting rank.
pub struct Iter<'a> {
    slots: SlotIter<'a>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        let (slot, score) = self.slots.next()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some((self.slots.set.member(slot), score))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use std::collections::{BTreeSet, HashMap};

    #[derive(PartialEq, Clone, Debug)]
    struct Key(f64, Vec<u8>);
    impl Eq for Key {}
    impl PartialOrd for Key {
        fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Key {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0
                .partial_cmp(&o.0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| self.1.cmp(&o.1))
        }
    }

    #[test]
    fn random_operations_match_a_btree_model() {
        let mut rng = rand::thread_rng();
        for round in 0..20 {
            let mut z = ZSetValue::new();
            let mut model: BTreeSet<Key> = BTreeSet::new();
            let mut scores: HashMap<Vec<u8>, f64> = HashMap::new();
            let universe = if round % 2 == 0 { 30 } else { 400 };
            for step in 0..3000 {
                let member = format!("m{}", rng.gen_range(0..universe)).into_bytes();
                let score = rng.gen_range(0..20) as f64 / 2.0;
                match rng.gen_range(0..10) {
                    0..=4 => {
                        z.insert(&member, score);
                        if let Some(old) = scores.insert(member.clone(), score) {
                            model.remove(&Key(old, member.clone()));
                        }
                        model.insert(Key(score, member));
                    }
                    5..=6 => {
                        let removed = z.remove(&member);
                        let old = scores.remove(&member);
                        assert_eq!(removed, old.is_some());
                        if let Some(old) = old {
                            model.remove(&Key(old, member));
                        }
                    }
                    7 => {
                        let n = model.len();
                        let (a, b) = (rng.gen_range(0..n + 2), rng.gen_range(0..n + 2));
                        let removed = z.remove_rank_range(a, b);
                        let victims: Vec<Key> = model
                            .iter()
                            .skip(a)
                            .take((b + 1).saturating_sub(a))
                            .cloned()
                            .collect();
                        assert_eq!(removed, victims.len());
                        for k in victims {
                            scores.remove(&k.1);
                            model.remove(&k);
                        }
                    }
                    8 => {
                        let max = rng.gen_bool(0.5);
                        let expected = if max {
                            model.iter().next_back()
                        } else {
                            model.iter().next()
                        }
                        .cloned();
                        let got = z.pop(max);
                        assert_eq!(got.map(|(m, s)| Key(s, m.to_vec())), expected);
                        if let Some(k) = expected {
                            scores.remove(&k.1);
                            model.remove(&k);
                        }
                    }
                    _ => {
                        let (lo, hi) = (
                            rng.gen_range(0..20) as f64 / 2.0,
                            rng.gen_range(0..20) as f64 / 2.0,
                        );
                        let (lo_ex, hi_ex) = (rng.gen_bool(0.5), rng.gen_bool(0.5));
                        let expected: Vec<usize> = model
                            .iter()
                            .enumerate()
                            .filter(|(_, k)| {
                                (if lo_ex { k.0 > lo } else { k.0 >= lo })
                                    && (if hi_ex { k.0 < hi } else { k.0 <= hi })
                            })
                            .map(|(i, _)| i)
                            .collect();
                        let got = z.score_range_ranks(lo, lo_ex, hi, hi_ex);
                        assert_eq!(
                            got,
                            expected.first().map(|&a| (a, *expected.last().unwrap()))
                        );
                    }
                }
                assert_eq!(z.len(), model.len());
                if step % 100 == 0 {
                    z.check_invariants().unwrap();
                }
            }
            z.check_invariants().unwrap();
            let ours: Vec<Key> = z.iter().map(|(m, s)| Key(s, m.to_vec())).collect();
            let theirs: Vec<Key> = model.iter().cloned().collect();
            assert_eq!(ours, theirs);
            let rev: Vec<Key> = z.iter_rev().map(|(m, s)| Key(s, m.to_vec())).collect();
            assert_eq!(rev, theirs.iter().rev().cloned().collect::<Vec<_>>());
            for (i, k) in theirs.iter().enumerate() {
                assert_eq!(z.rank(&k.1), Some((i, k.0)));
                assert_eq!(
                    z.at_rank(i).map(|(m, s)| Key(s, m.to_vec())),
                    Some(k.clone())
                );
                let from: Vec<Key> = z
                    .iter_from(i, false)
                    .take(3)
                    .map(|(m, s)| Key(s, m.to_vec()))
                    .collect();
                assert_eq!(
                    from,
                    theirs[i..].iter().take(3).cloned().collect::<Vec<_>>()
                );
                let back: Vec<Key> = z
                    .iter_from(i, true)
                    .take(3)
                    .map(|(m, s)| Key(s, m.to_vec()))
                    .collect();
                assert_eq!(
                    back,
                    theirs[..=i]
                        .iter()
                        .rev()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn add_flags_follow_redis() {
        let mut z = ZSetValue::new();
        assert_eq!(z.add(b"a", 1.0, 0), Ok(AddOutcome::Added(1.0)));
        assert_eq!(z.add(b"a", 1.0, 0), Ok(AddOutcome::Unchanged(1.0)));
        assert_eq!(z.add(b"a", 0.5, ZSetValue::GT), Ok(AddOutcome::Skipped));
        assert_eq!(
            z.add(b"a", 2.0, ZSetValue::GT),
            Ok(AddOutcome::Updated(2.0))
        );
        assert_eq!(
            z.add(b"a", 0.5, ZSetValue::INCR),
            Ok(AddOutcome::Updated(2.5))
        );
        z.insert(b"i", f64::INFINITY);
        assert_eq!(
            z.add(b"i", f64::NEG_INFINITY, ZSetValue::INCR),
            Err(ScoreIsNan)
        );
        assert_eq!(z.add(b"new", 1.0, ZSetValue::XX), Ok(AddOutcome::Skipped));
        assert_eq!(z.len(), 2);
    }

    #[test]
    fn encoding_names_and_negative_zero() {
        let mut z = ZSetValue::new();
        z.insert(b"a", -0.0);
        assert!(z.score(b"a").unwrap().is_sign_positive());
        assert_eq!(z.encoding(), "listpack");
        z.insert(&[b'x'; 65], 1.0);
        assert_eq!(z.encoding(), "skiplist");
        z.insert(b"b", -0.0);
        assert!(z.score(b"b").unwrap().is_sign_negative());
        z.remove(&[b'x'; 65]);
        assert_eq!(z.encoding(), "skiplist");
        let mut small = ZSetValue::new();
        for i in 0..129 {
            small.insert(format!("{i}").as_bytes(), i as f64);
        }
        assert_eq!(small.encoding(), "skiplist");
    }

    #[test]
    fn arena_compacts_after_heavy_removal() {
        let mut z = ZSetValue::new();
        for i in 0..1000 {
            z.insert(format!("m{i}").as_bytes(), (i % 13) as f64);
        }
        let heap_before = z.heap_size();
        for i in 0..900 {
            assert!(z.remove(format!("m{i}").as_bytes()));
        }
        z.check_invariants().unwrap();
        assert!(z.members.len() <= 400, "kept {} slots", z.members.len());
        assert!(z.heap_size() < heap_before);
        assert_eq!(z.encoding(), "skiplist", "compaction keeps the encoding");
        assert_eq!(z.rank(b"m999").map(|(_, s)| s), Some((999 % 13) as f64));
    }

    #[test]
    fn the_index_grows_incrementally_and_finds_every_member_meanwhile() {
        let mut z = ZSetValue::new();
        let mut model: HashMap<String, f64> = HashMap::new();
        let mut rng = rand::thread_rng();
        let mut saw_growth = 0;
        for i in 0..30_000 {
            let member = format!("m{i}");
            let score = rng.gen_range(0..1000) as f64;
            assert!(z.insert(member.as_bytes(), score));
            model.insert(member, score);
            // Meanwhile: move, remove and look up older members.
            let other = format!("m{}", rng.gen_range(0..=i));
            match rng.gen_range(0..4) {
                0 => {
                    let removed = z.remove(other.as_bytes());
                    assert_eq!(removed, model.remove(&other).is_some());
                }
                1 if model.contains_key(&other) => {
                    let score = rng.gen_range(0..1000) as f64;
                    assert!(!z.insert(other.as_bytes(), score));
                    model.insert(other, score);
                }
                _ => assert_eq!(z.score(other.as_bytes()), model.get(&other).copied()),
            }
            if z.index.is_growing() {
                saw_growth += 1;
                if saw_growth % 97 == 0 {
                    for (member, &score) in &model {
                        assert_eq!(z.score(member.as_bytes()), Some(score), "{member}");
                    }
                }
            }
        }
        assert!(
            saw_growth > 100,
            "the index grew over {saw_growth} insertions only"
        );
        assert_eq!(z.len(), model.len());
        z.check_invariants().unwrap();
    }

    #[test]
    fn tree_nodes_are_reused_as_members_move() {
        let mut z = ZSetValue::new();
        for i in 0..2000 {
            z.insert(format!("m{i}").as_bytes(), i as f64);
        }
        let (leaves, inners) = (z.leaves.len(), z.inners.len());
        // Every move takes an element out of one leaf and into another,
        // splitting and merging leaves as it goes.
        for round in 1..=20 {
            for i in 0..2000 {
                z.insert(
                    format!("m{i}").as_bytes(),
                    ((i * 7 + round * 131) % 2000) as f64,
                );
            }
        }
        z.check_invariants().unwrap();
        let in_use = z.leaves.len() - z.free_leaves.len();
        assert!(
            z.leaves.len() < 2 * leaves + 8 && in_use * LEAF_CAP < 3 * 2000,
            "leaves: {leaves} after filling, {} after moving ({in_use} in use)",
            z.leaves.len()
        );
        assert!(z.inners.len() < 2 * inners + 8);
    }

    #[test]
    fn small_score_changes_move_members_within_their_leaves() {
        let mut rng = rand::thread_rng();
        let mut z = ZSetValue::new();
        let mut model: HashMap<Vec<u8>, f64> = HashMap::new();
        for i in 0..5_000 {
            let member = format!("m{i}").into_bytes();
            z.insert(&member, i as f64);
            model.insert(member, i as f64);
        }
        // ZINCRBY-style nudges, some onto a neighbour's score (a tie, then
        // ordered by member), some across a leaf's edge.
        for step in 0..50_000 {
            let member = format!("m{}", rng.gen_range(0..5_000)).into_bytes();
            let delta = rng.gen_range(-40..=40) as f64 / 2.0;
            let got = z.add(&member, delta, ZSetValue::INCR).unwrap().score();
            let expected = model.get_mut(&member).unwrap();
            *expected += delta;
            assert_eq!(got, Some(*expected));
            if step % 5_000 == 0 {
                z.check_invariants().unwrap();
            }
        }
        z.check_invariants().unwrap();
        let mut sorted: Vec<(f64, Vec<u8>)> = model.into_iter().map(|(m, s)| (s, m)).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let ours: Vec<(f64, Vec<u8>)> = z.iter().map(|(m, s)| (s, m.to_vec())).collect();
        assert_eq!(ours, sorted);
    }

    #[test]
    fn scores_in_order_fill_whole_leaves() {
        for descending in [false, true] {
            let mut z = ZSetValue::new();
            for i in 0..30_000 {
                let score = if descending { -i } else { i };
                z.insert(format!("m{i}").as_bytes(), score as f64);
            }
            z.check_invariants().unwrap();
            let leaves = z.leaves.len() - z.free_leaves.len();
            assert!(
                leaves <= 30_000 / LEAF_CAP + 2,
                "{leaves} leaves for 30,000 in order (descending: {descending})"
            );
            assert!(z.height >= 2);
        }
    }

    #[test]
    fn a_large_set_keeps_its_shape_through_growth_and_removal() {
        let mut rng = rand::thread_rng();
        let mut z = ZSetValue::new();
        let mut model: BTreeSet<Key> = BTreeSet::new();
        for i in 0..60_000 {
            let score = rng.gen_range(0..5_000) as f64;
            z.insert(format!("m{i}").as_bytes(), score);
            model.insert(Key(score, format!("m{i}").into_bytes()));
        }
        assert!(z.height >= 3, "height {}", z.height);
        z.check_invariants().unwrap();
        // Take away ranges, single members and both ends until it is empty.
        while !model.is_empty() {
            let n = model.len();
            match rng.gen_range(0..4) {
                0 => {
                    let first = rng.gen_range(0..n);
                    let last = (first + rng.gen_range(0..200)).min(n - 1);
                    assert_eq!(z.remove_rank_range(first, last), last - first + 1);
                    let gone: Vec<Key> = model
                        .iter()
                        .skip(first)
                        .take(last - first + 1)
                        .cloned()
                        .collect();
                    for k in gone {
                        model.remove(&k);
                    }
                }
                1 => {
                    let k = model.iter().nth(rng.gen_range(0..n)).cloned().unwrap();
                    assert!(z.remove(&k.1));
                    model.remove(&k);
                }
                _ => {
                    let max = rng.gen_bool(0.5);
                    let k = if max {
                        model.pop_last()
                    } else {
                        model.pop_first()
                    };
                    assert_eq!(z.pop(max).map(|(m, s)| Key(s, m.to_vec())), k);
                }
            }
            assert_eq!(z.len(), model.len());
            if rng.gen_range(0..200) == 0 {
                z.check_invariants().unwrap();
                let sample = rng.gen_range(0..model.len().max(1));
                if let Some(k) = model.iter().nth(sample) {
                    assert_eq!(z.rank(&k.1), Some((sample, k.0)));
                }
            }
        }
        z.check_invariants().unwrap();
        assert_eq!((z.height, z.len(), z.iter().count()), (0, 0, 0));
        assert!(z.insert(b"again", 1.0));
        z.check_invariants().unwrap();
    }

    #[test]
    fn scan_visits_every_element_once() {
        let mut z = ZSetValue::new();
        for i in 0..1000 {
            z.insert(format!("m{i}").as_bytes(), (i % 7) as f64);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = z.scan(cursor, 10, |m, _| assert!(seen.insert(m.to_vec())));
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn lex_ranges() {
        let mut z = ZSetValue::new();
        for m in ["a", "b", "c", "d", "e"] {
            z.insert(m.as_bytes(), 0.0);
        }
        // [b (d
        let span = z.rank_span(|_, m| m < &b"b"[..], |_, m| m < &b"d"[..]);
        assert_eq!(span, Some((1, 2)));
        assert_eq!(z.rank_span(|_, _| false, |_, _| true), Some((0, 4)));
        assert_eq!(z.rank_span(|_, _| true, |_, _| false), None);
        assert_eq!(z.remove_rank_range(1, 2), 2);
        z.check_invariants().unwrap();
    }
}
