//! Sorted sets: a member -> node map plus a skiplist with spans over
//! (score, member), as Redis's `zset` (dict + zskiplist).
//!
//! The skiplist lives in an arena (`Vec<Node>`, links are `u32` indexes, no
//! `unsafe`); slot 0 is the header. A node is 32 bytes, two to a cache line:
//! its score and its links on levels 0 and 1, which is all a descent reads
//! on the bottom levels (a ZADD on a large set is bound by those cache
//! misses). Links from level 2 up (a quarter of the nodes have any) sit in
//! one shared pool, small enough to stay in cache; members are in a
//! parallel vector that only ties and replies read. The member -> node map
//! holds slot numbers only and grows incrementally (see `slot_index`), so
//! that no one ZADD pays for rehashing a million members. Every link carries its span (how many
//! level-0 steps it jumps), so rank lookups, "element at rank r" and the
//! first/last element of a score or lexicographic range are all O(log n),
//! and a range of m elements is O(log n + m).
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
//! skiplist but track the name Redis would report, and mirror the one
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

const MAX_LEVEL: usize = 32;
/// The header's slot. No link ever points to the header, so 0 also means
/// "no node" in `next`/`prev` links.
const HEAD: u32 = 0;
const NONE: u32 = 0;
/// Levels whose links are kept in the node itself.
const INLINE_LEVELS: usize = 2;

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    next: u32,
    /// Level-0 steps this link jumps. Only meaningful when `next != NONE`.
    span: u32,
}

/// What a descent reads of a node; aligned so that it never straddles two
/// cache lines.
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(32))]
struct Node {
    score: f64,
    prev: u32,
    /// Where the node's links from level [`INLINE_LEVELS`] up start in
    /// `ZSetValue::upper` (meaningless for lower nodes).
    upper: u32,
    low: [Link; INLINE_LEVELS],
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
    /// In segments, as are `members` and `levels`: a `Vec` of two million
    /// nodes doubled by copying 64 MiB in one ZADD (see `seg_vec`).
    nodes: SegVec<Node>,
    /// Each slot's member: `None` for the header and for free slots.
    members: SegVec<Option<Member>>,
    /// Each slot's level (number of links).
    levels: SegVec<u8>,
    /// The links of levels from [`INLINE_LEVELS`] up, a block per node.
    upper: Vec<Link>,
    /// Free blocks of `upper`, by length.
    upper_free: Vec<Vec<u32>>,
    free: Vec<u32>,
    length: usize,
    level: usize,
    tail: u32,
    /// Whether Redis would have converted this set to a skiplist.
    skiplist_encoded: bool,
    /// Heap bytes of the live nodes' members, kept up to date so that
    /// `heap_size` is O(1).
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

fn random_level() -> usize {
    // Each extra level with probability 1/4 (Redis's ZSKIPLIST_P): two zero
    // bits of a random word per level.
    let bits: u64 = rand::random();
    (1 + bits.trailing_zeros() as usize / 2).min(MAX_LEVEL)
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
            // The header: every level, its upper links at the pool's start.
            nodes: [Node::default()].into_iter().collect(),
            members: [None].into_iter().collect(),
            levels: [MAX_LEVEL as u8].into_iter().collect(),
            upper: vec![Link::default(); MAX_LEVEL - INLINE_LEVELS],
            upper_free: Vec::new(),
            free: Vec::new(),
            length: 0,
            level: 1,
            tail: NONE,
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
    /// node (its score), then the member's bytes.
    pub fn prefetch_member(&self, hash: u64, step: PrefetchStep) {
        match step {
            PrefetchStep::Group => self.index.prefetch_group(hash),
            PrefetchStep::Element => self.index.candidates(hash, |slot| {
                let slot = slot as usize;
                if let (Some(member), Some(node)) = (self.members.get(slot), self.nodes.get(slot)) {
                    crate::store::prefetch(member);
                    crate::store::prefetch(node);
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
        let slots = self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.members.capacity() * std::mem::size_of::<Option<Member>>()
            + self.levels.capacity();
        let upper = self.upper.capacity() * std::mem::size_of::<Link>()
            + self
                .upper_free
                .iter()
                .map(|f| f.capacity() * 4)
                .sum::<usize>();
        slots + upper + self.payload_bytes + self.index.heap_size() + self.free.capacity() * 4
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
        self.slot_of(member).map(|i| self.score_of(i))
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.slot_of(member).is_some()
    }

    fn slot_of(&self, member: &[u8]) -> Option<u32> {
        self.index.get(&self.members, member)
    }

    // ----- skiplist internals --------------------------------------------

    fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    fn score_of(&self, i: u32) -> f64 {
        self.nodes[i as usize].score
    }

    fn member(&self, i: u32) -> &[u8] {
        self.members[i as usize].as_deref().unwrap_or(&[])
    }

    fn link(&self, i: u32, level: usize) -> Link {
        let node = &self.nodes[i as usize];
        match node.low.get(level) {
            Some(&link) => link,
            None => self.upper[node.upper as usize + level - INLINE_LEVELS],
        }
    }

    fn link_mut(&mut self, i: u32, level: usize) -> &mut Link {
        let node = &mut self.nodes[i as usize];
        if level < INLINE_LEVELS {
            &mut node.low[level]
        } else {
            &mut self.upper[node.upper as usize + level - INLINE_LEVELS]
        }
    }

    /// Whether node `i` orders strictly before (score, member).
    fn before(&self, i: u32, score: f64, member: &[u8]) -> bool {
        let s = self.score_of(i);
        s < score || (s == score && self.member(i) < member)
    }

    /// Starts loading the node a descent standing at `x` on `level` reads
    /// next if it drops a level: while the comparison on `level` waits for
    /// its node, the miss on the level below is already under way (a
    /// descent is a chain of cache misses, one a step).
    #[inline]
    fn prefetch_below(&self, x: u32, level: usize) {
        if level > 0 {
            let below = self.link(x, level - 1).next;
            if let Some(node) = self.nodes.get(below as usize) {
                crate::store::prefetch(node);
            }
        }
    }

    /// Heap bytes a member holds besides its slot (with its length).
    fn payload(member: &[u8]) -> usize {
        thin_bytes::encode_len(member.len()).1 + member.len()
    }

    /// A block of `len` links in `upper`, reusing a freed one of that length.
    fn alloc_upper(&mut self, len: usize) -> u32 {
        if let Some(at) = self.upper_free.get_mut(len).and_then(Vec::pop) {
            self.upper[at as usize..at as usize + len].fill(Link::default());
            return at;
        }
        let at = self.upper.len() as u32;
        self.upper.resize(self.upper.len() + len, Link::default());
        at
    }

    fn alloc(&mut self, member: Member, score: f64, level: usize) -> u32 {
        self.payload_bytes += Self::payload(&member);
        let upper = match level.checked_sub(INLINE_LEVELS) {
            Some(len) if len > 0 => self.alloc_upper(len),
            _ => 0,
        };
        let node = Node {
            score,
            prev: NONE,
            upper,
            low: [Link::default(); INLINE_LEVELS],
        };
        match self.free.pop() {
            Some(slot) => {
                let i = slot as usize;
                self.nodes[i] = node;
                self.members[i] = Some(member);
                self.levels[i] = level as u8;
                slot
            }
            None => {
                self.nodes.push(node);
                self.members.push(Some(member));
                self.levels.push(level as u8);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, i: u32) -> Option<Member> {
        let slot = i as usize;
        let member = self.members[slot].take();
        if let Some(m) = &member {
            self.payload_bytes = self.payload_bytes.saturating_sub(Self::payload(m));
        }
        let upper_len = (self.levels[slot] as usize).saturating_sub(INLINE_LEVELS);
        if upper_len > 0 {
            if self.upper_free.len() <= upper_len {
                self.upper_free.resize_with(upper_len + 1, Vec::new);
            }
            self.upper_free[upper_len].push(self.nodes[slot].upper);
        }
        self.nodes[slot] = Node::default();
        self.levels[slot] = 0;
        self.free.push(i);
        member
    }

    /// Compacts the arena once it is mostly free slots (after the set shrank
    /// to a quarter of its peak): amortized O(1) per removal. ZSCAN cursors
    /// are slot numbers, so a scan running across a compaction may miss
    /// elements; compactions are rare.
    fn maybe_shrink(&mut self) {
        if self.nodes.len() > 64 && self.length * 4 < self.nodes.len() {
            self.rebuild();
        }
    }

    fn rebuild(&mut self) {
        let mut items: Vec<(Member, f64)> = Vec::with_capacity(self.length);
        let mut at = self.link(HEAD, 0).next;
        while at != NONE {
            if let Some(member) = self.members[at as usize].take() {
                items.push((member, self.score_of(at)));
            }
            at = self.link(at, 0).next;
        }
        let encoded = self.skiplist_encoded;
        *self = ZSetValue::new();
        self.skiplist_encoded = encoded;
        self.index = SlotIndex::with_capacity(items.len());
        // Insert from the largest: each insertion then stops at the head.
        for (member, score) in items.into_iter().rev() {
            self.sl_insert_new(member, score);
        }
    }

    /// Inserts a member known to be absent, in the skiplist and the map.
    fn sl_insert_new(&mut self, member: Member, score: f64) -> u32 {
        let idx = self.sl_insert(member, score);
        self.index.insert(&self.members, idx);
        idx
    }

    /// zslInsert: links a new node for (score, member); returns its slot.
    fn sl_insert(&mut self, member: Member, score: f64) -> u32 {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.link(x, i);
                self.prefetch_below(x, i);
                if l.next != NONE && self.before(l.next, score, &member) {
                    rank[i] += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let level = random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = HEAD;
                self.link_mut(HEAD, i).span = self.length as u32;
            }
            self.level = level;
        }
        let x = self.alloc(member, score, level);
        for i in 0..level {
            let u = update[i];
            let ul = self.link(u, i);
            let jumped = (rank[0] - rank[i]) as u32;
            *self.link_mut(x, i) = Link {
                next: ul.next,
                span: ul.span.wrapping_sub(jumped),
            };
            *self.link_mut(u, i) = Link {
                next: x,
                span: jumped + 1,
            };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(level) {
            let l = self.link_mut(u, i);
            l.span = l.span.wrapping_add(1);
        }
        self.nodes[x as usize].prev = if update[0] == HEAD { NONE } else { update[0] };
        let next = self.link(x, 0).next;
        if next != NONE {
            self.nodes[next as usize].prev = x;
        } else {
            self.tail = x;
        }
        self.length += 1;
        x
    }

    /// The update path to (score, member): for each level, the last node
    /// ordered before it.
    fn update_path(&self, score: f64, member: &[u8]) -> [u32; MAX_LEVEL] {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                self.prefetch_below(x, i);
                if l.next != NONE && self.before(l.next, score, member) {
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        update
    }

    /// zslDeleteNode: unlinks node `x` (does not free it).
    fn sl_unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let ul = self.link(u, i);
            if ul.next == x {
                let xl = self.link(x, i);
                *self.link_mut(u, i) = Link {
                    next: xl.next,
                    span: ul.span.wrapping_add(xl.span).wrapping_sub(1),
                };
            } else {
                self.link_mut(u, i).span = ul.span.wrapping_sub(1);
            }
        }
        let next = self.link(x, 0).next;
        let prev = self.node(x).prev;
        if next != NONE {
            self.nodes[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        while self.level > 1 && self.link(HEAD, self.level - 1).next == NONE {
            self.level -= 1;
        }
        self.length -= 1;
    }

    /// Removes the node of `member` (known to be at slot `idx`).
    fn remove_node(&mut self, idx: u32) -> Option<Member> {
        let update = self.update_path(self.score_of(idx), self.members[idx as usize].as_deref()?);
        self.sl_unlink(idx, &update);
        self.index.remove(&self.members, idx);
        self.release(idx)
    }

    /// Counts the leading elements for which `pred` holds (`pred` must hold
    /// for a prefix of the order): O(log n).
    fn count_prefix(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut x = HEAD;
        let mut rank = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                self.prefetch_below(x, i);
                if l.next != NONE && pred(self.score_of(l.next), self.member(l.next)) {
                    rank += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
        }
        rank
    }

    /// zslGetElementByRank with a 1-based rank.
    fn at_rank1(&self, rank: usize) -> u32 {
        let mut x = HEAD;
        let mut traversed = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                self.prefetch_below(x, i);
                if l.next != NONE && traversed + l.span as usize <= rank {
                    traversed += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            if traversed == rank {
                return x;
            }
        }
        NONE
    }

    /// The 1-based rank of (score, member), which must be present.
    fn rank1_of(&self, score: f64, member: &[u8]) -> usize {
        let mut x = HEAD;
        let mut rank = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                self.prefetch_below(x, i);
                if l.next != NONE && {
                    let s = self.score_of(l.next);
                    s < score || (s == score && self.member(l.next) <= member)
                } {
                    rank += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            if x != HEAD && self.score_of(x) == score && self.member(x) == member {
                return rank;
            }
        }
        0
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
            Some(idx) => {
                if has(Self::NX) {
                    return Ok(AddOutcome::Skipped);
                }
                let current = self.score_of(idx);
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
                self.update_score(idx, self.stored_score(score));
                Ok(AddOutcome::Updated(score))
            }
            None if has(Self::XX) => Ok(AddOutcome::Skipped),
            None => {
                let stored = self.prepare_new(member, score);
                self.sl_insert_new(Member::from(member), stored);
                Ok(AddOutcome::Added(score))
            }
        }
    }

    /// zslUpdateScore: moves node `idx` to its new place (or updates it in
    /// place when its neighbours allow).
    fn update_score(&mut self, idx: u32, score: f64) {
        let (prev, next) = (self.node(idx).prev, self.link(idx, 0).next);
        if (prev == NONE || self.score_of(prev) < score)
            && (next == NONE || self.score_of(next) > score)
        {
            self.nodes[idx as usize].score = score;
            return;
        }
        let Some(member) = self.members[idx as usize].as_deref() else {
            return;
        };
        let update = self.update_path(self.score_of(idx), member);
        self.sl_unlink(idx, &update);
        let Some(member) = self.release(idx) else {
            return;
        };
        // The free list is last in, first out: the node gets its slot back,
        // where the index already points.
        let new_idx = self.sl_insert(member, score);
        debug_assert_eq!(new_idx, idx);
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
        self.sl_insert_new(member, score);
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
            for (node, member) in self.nodes.iter_mut().zip(self.members.iter()).skip(1) {
                if member.is_some() && node.score == 0.0 {
                    node.score = 0.0;
                }
            }
        } else {
            self.skiplist_encoded = true;
        }
    }

    /// Removes `member`; true if it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        let Some(idx) = self.slot_of(member) else {
            return false;
        };
        self.remove_node(idx);
        self.maybe_shrink();
        true
    }

    /// The 0-based rank of `member` (ascending order) and its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let idx = self.slot_of(member)?;
        let score = self.score_of(idx);
        let rank1 = self.rank1_of(score, member);
        (rank1 > 0).then(|| (rank1 - 1, score))
    }

    /// The element at 0-based rank `rank` (ascending order).
    pub fn at_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        let x = self.at_rank1(rank.checked_add(1)?);
        (x != NONE).then(|| (self.member(x), self.score_of(x)))
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
        let skipped = self.count_prefix(&before);
        let last = self.count_prefix(&through);
        (last > skipped).then(|| (skipped, last - 1))
    }

    /// 0-based inclusive ranks of the elements with scores between `min`
    /// and `max` (each bound inclusive or exclusive). O(log n).
    pub fn score_range_ranks(
        &self,
        min: f64,
        min_exclusive: bool,
        max: f64,
        max_exclusive: bool,
    ) -> Option<(usize, usize)> {
        self.rank_span(
            |s, _| if min_exclusive { s <= min } else { s < min },
            |s, _| if max_exclusive { s < max } else { s <= max },
        )
    }

    /// Elements from 0-based rank `rank` on, ascending (or descending when
    /// `reverse`, still starting at that ascending rank). O(log n) to start.
    pub fn iter_from(&self, rank: usize, reverse: bool) -> Iter<'_> {
        let at = if rank == 0 && !reverse {
            self.link(HEAD, 0).next
        } else if rank + 1 == self.length && reverse {
            self.tail
        } else {
            rank.checked_add(1).map_or(NONE, |r| self.at_rank1(r))
        };
        let remaining = if at == NONE {
            0
        } else if reverse {
            rank + 1
        } else {
            self.length - rank
        };
        Iter {
            set: self,
            at,
            reverse,
            remaining,
        }
    }

    /// All elements in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0, false)
    }

    /// All elements in descending order.
    pub fn iter_rev(&self) -> Iter<'_> {
        Iter {
            set: self,
            at: self.tail,
            reverse: true,
            remaining: self.length,
        }
    }

    /// Removes the elements of 0-based ranks `first..=last` (clamped);
    /// returns how many. O(log n + m).
    pub fn remove_rank_range(&mut self, first: usize, last: usize) -> usize {
        let last = last.min(self.length.saturating_sub(1));
        if self.length == 0 || first > last {
            return 0;
        }
        // zslDeleteRangeByRank with 1-based ranks.
        let (start, end) = (first + 1, last + 1);
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        let mut traversed = 0usize;
        for i in (0..self.level).rev() {
            loop {
                let l = self.link(x, i);
                self.prefetch_below(x, i);
                if l.next != NONE && traversed + (l.span as usize) < start {
                    traversed += l.span as usize;
                    x = l.next;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        traversed += 1;
        x = self.link(x, 0).next;
        let mut removed = 0;
        while x != NONE && traversed <= end {
            let next = self.link(x, 0).next;
            self.sl_unlink(x, &update);
            self.index.remove(&self.members, x);
            self.release(x);
            removed += 1;
            traversed += 1;
            x = next;
        }
        self.maybe_shrink();
        removed
    }

    /// Removes and returns the lowest (or, with `max`, highest) element.
    /// Used by ZPOPMIN/ZPOPMAX/ZMPOP and, later, their blocking forms.
    pub fn pop(&mut self, max: bool) -> Option<(Member, f64)> {
        let x = if max {
            self.tail
        } else {
            self.link(HEAD, 0).next
        };
        if x == NONE {
            return None;
        }
        let score = self.score_of(x);
        // The first or last node: its update path is the header (min) or
        // found by one descent (max).
        let member = self.remove_node(x)?;
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
    /// (then the arena is compacted).
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(&'a [u8], f64)) -> u64 {
        if !self.skiplist_encoded {
            for (m, s) in self.iter() {
                f(m, s);
            }
            return 0;
        }
        let mut slot = usize::try_from(cursor).unwrap_or(usize::MAX).max(1);
        let count = count.max(1);
        let mut budget = count.saturating_mul(10);
        let mut seen = 0;
        while slot < self.nodes.len() && seen < count && budget > 0 {
            if let Some(m) = &self.members[slot] {
                f(m, self.nodes[slot].score);
                seen += 1;
            }
            slot += 1;
            budget -= 1;
        }
        if slot >= self.nodes.len() {
            0
        } else {
            slot as u64
        }
    }

    /// Checks the skiplist's invariants (tests).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut count = 0;
        let mut x = self.link(HEAD, 0).next;
        let mut prev = NONE;
        while x != NONE {
            if self.node(x).prev != prev {
                return Err(format!("bad prev at slot {x}"));
            }
            if prev != NONE && !self.before(prev, self.score_of(x), self.member(x)) {
                return Err("out of order".into());
            }
            if self.slot_of(self.member(x)) != Some(x) {
                return Err("index mismatch".into());
            }
            count += 1;
            if self.rank1_of(self.score_of(x), self.member(x)) != count {
                return Err(format!("rank mismatch at {count}"));
            }
            if self.at_rank1(count) != x {
                return Err(format!("select mismatch at {count}"));
            }
            prev = x;
            x = self.link(x, 0).next;
        }
        if count != self.length || self.index.len() != self.length || self.tail != prev {
            return Err("length/tail mismatch".into());
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
}

/// Iterator over (member, score) pairs from a starting rank.
pub struct Iter<'a> {
    set: &'a ZSetValue,
    at: u32,
    reverse: bool,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at == NONE {
            return None;
        }
        let at = self.at;
        self.at = if self.reverse {
            self.set.node(at).prev
        } else {
            self.set.link(at, 0).next
        };
        self.remaining = self.remaining.saturating_sub(1);
        Some((self.set.member(at), self.set.score_of(at)))
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
        assert!(z.nodes.len() <= 401, "arena kept {} slots", z.nodes.len());
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
    fn upper_link_blocks_are_reused_as_members_move() {
        let mut z = ZSetValue::new();
        for i in 0..2000 {
            z.insert(format!("m{i}").as_bytes(), i as f64);
        }
        let pool = z.upper.len();
        // Every move frees a node's block and draws a new random level.
        for round in 1..=20 {
            for i in 0..2000 {
                z.insert(
                    format!("m{i}").as_bytes(),
                    ((i * 7 + round * 131) % 2000) as f64,
                );
            }
        }
        z.check_invariants().unwrap();
        assert!(
            z.upper.len() < 2 * pool + 64,
            "upper pool grew from {pool} to {} links",
            z.upper.len()
        );
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
