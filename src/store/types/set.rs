//! Sets: an insertion-ordered hash set of byte strings.
//!
//! Members live in an `IndexedVec` (a vector with an index of positions that
//! grows incrementally, so that no one SADD rehashes a million members),
//! which gives O(1) membership, insertion and (swap-)removal, plus O(1)
//! access by position: random picks for SPOP and SRANDMEMBER are uniform
//! without sampling tricks, and SSCAN can walk positions (see
//! [`SetValue::scan`]).
//!
//! The encoding name is the one Redis 7.0 would report for the same history
//! of operations: "intset" while every member is an integer (`string2ll`
//! form) and there are at most [`MAX_INTSET_ENTRIES`] members, "hashtable"
//! otherwise. As in Redis a set converted to "hashtable" never converts back
//! when members are removed (Redis 7.0 has no "listpack" sets; those came in
//! 7.2).

use rand::Rng;

use super::slot_index::{IndexedVec, Keyed, PrefetchStep};
use super::thin_bytes::ThinBytes;

/// Redis's `set-max-intset-entries` default.
pub const MAX_INTSET_ENTRIES: usize = 512;

/// A set of byte strings.
///
/// ```
/// use larder::store::types::SetValue;
///
/// let mut set = SetValue::new();
/// assert!(set.insert(b"1"));
/// assert!(!set.insert(b"1"));
/// assert_eq!(set.encoding(), "intset");
/// set.insert(b"apple");
/// assert_eq!(set.encoding(), "hashtable");
/// set.remove(b"apple");
/// assert_eq!(set.encoding(), "hashtable"); // never converts back, as in Redis
/// assert_eq!(set.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SetValue {
    members: IndexedVec<ThinBytes>,
    /// Sum of the members' lengths (for `heap_size` without a walk).
    member_bytes: usize,
    /// Redis would have converted this set to a hash table (a non-integer
    /// member, or more than 512 members, was added at some point).
    hashtable: bool,
}

/// Equal when they hold the same members, in any order, and the same
/// encoding.
impl PartialEq for SetValue {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.hashtable == other.hashtable
            && self.iter().all(|m| other.contains(m))
    }
}

/// Whether Redis would store `member` in an intset (`string2ll` accepts it).
fn is_integer_member(member: &[u8]) -> bool {
    member.len() <= 20 && crate::numbers::strict_i64(member).is_some()
}

/// A member is found by its bytes; the prefetch loads its allocation.
impl Keyed for ThinBytes {
    fn key(&self) -> &[u8] {
        self
    }

    fn key_address(&self) -> *const u8 {
        self.address()
    }
}

impl SetValue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The hash a lookup of `member` uses, for [`SetValue::prefetch_member`].
    pub fn member_hash(&self, member: &[u8]) -> u64 {
        self.members.key_hash(member)
    }

    /// One step of a batched lookup of the member hashed as `hash` (see
    /// `Store::prefetch`).
    pub fn prefetch_member(&self, hash: u64, step: PrefetchStep) {
        self.members.prefetch(hash, step);
    }

    pub fn heap_size(&self) -> usize {
        // Each boxed member also pays its allocation's rounding, roughly.
        self.member_bytes + self.members.heap_size() + self.members.len() * 8
    }

    /// The encoding Redis 7.0 would report (OBJECT ENCODING).
    pub fn encoding(&self) -> &'static str {
        if self.hashtable {
            "hashtable"
        } else {
            "intset"
        }
    }

    /// Adds `member`; true if it was not there.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        if self.members.contains(member) {
            return false;
        }
        self.members.push_new(ThinBytes::new(member));
        self.member_bytes += member.len();
        if !self.hashtable
            && (self.members.len() > MAX_INTSET_ENTRIES || !is_integer_member(member))
        {
            self.hashtable = true;
        }
        true
    }

    /// Removes `member`; true if it was there. The last member takes its
    /// position (see [`SetValue::scan`] for why that is safe for cursors).
    pub fn remove(&mut self, member: &[u8]) -> bool {
        if self.members.swap_remove(member).is_some() {
            self.member_bytes -= member.len();
            true
        } else {
            false
        }
    }

    /// Sum of the members' lengths.
    pub fn member_bytes(&self) -> usize {
        self.member_bytes
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.members.contains(member)
    }

    /// Members in storage order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.members.as_slice().iter().map(|m| &**m)
    }

    /// The member at storage position `index`.
    pub fn get_index(&self, index: usize) -> Option<&[u8]> {
        self.members.get_index(index).map(|m| &**m)
    }

    /// A uniformly random member.
    pub fn random_member(&self, rng: &mut impl Rng) -> Option<&[u8]> {
        if self.members.is_empty() {
            return None;
        }
        self.get_index(rng.gen_range(0..self.members.len()))
    }

    /// Up to `count` distinct members chosen uniformly at random (all of them
    /// when `count >= len`). Memory is O(min(count, len)).
    pub fn random_distinct(&self, count: usize, rng: &mut impl Rng) -> Vec<&[u8]> {
        let len = self.members.len();
        if count >= len {
            return self.iter().collect();
        }
        rand::seq::index::sample(rng, len, count)
            .into_iter()
            .filter_map(|i| self.get_index(i))
            .collect()
    }

    /// Removes and returns up to `count` distinct members chosen uniformly at
    /// random.
    pub fn pop_random(&mut self, count: usize, rng: &mut impl Rng) -> Vec<ThinBytes> {
        let len = self.members.len();
        if count >= len {
            self.member_bytes = 0;
            return self.members.take_all();
        }
        let mut indexes = rand::seq::index::sample(rng, len, count).into_vec();
        // Highest first: a swap-removal only moves the current last member,
        // which is never one still to be removed (those sit lower).
        indexes.sort_unstable_by(|a, b| b.cmp(a));
        let mut popped = Vec::with_capacity(count);
        for index in indexes {
            if let Some(member) = self.members.swap_remove_index(index) {
                self.member_bytes -= member.len();
                popped.push(member);
            }
        }
        // Redis 7.0 pops a large share of a set (what stays is at most a
        // fifth of what goes) by building a new set of the remaining
        // members, which gets a fresh encoding.
        if (len - count).saturating_mul(5) <= count {
            self.refresh_encoding();
        }
        popped
    }

    /// Keeps only the members for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let mut removed_bytes = 0;
        self.members.retain(|m| {
            let kept = keep(m);
            if !kept {
                removed_bytes += m.len();
            }
            kept
        });
        self.member_bytes -= removed_bytes;
    }

    /// Marks the set as converted to a hash table, as Redis does when a
    /// command's intermediate result held a non-integer or too many members.
    pub fn mark_hashtable(&mut self) {
        self.hashtable = true;
    }

    /// Gives the set the encoding a set built from scratch with the same
    /// members would have (Redis builds some results that way).
    pub fn refresh_encoding(&mut self) {
        self.hashtable =
            self.members.len() > MAX_INTSET_ENTRIES || !self.iter().all(is_integer_member);
    }

    /// One SSCAN step: `cursor` 0 starts an iteration, the returned cursor
    /// is 0 when it is complete. Visits at most `count` members.
    ///
    /// Positions are visited from the highest down: a cursor `c > 0` means
    /// "positions `0..c` are still to visit". Removal moves only the last
    /// member into the freed position, and insertion appends at the end, so
    /// a member still to visit only ever moves to a lower position and is
    /// never skipped. That is Redis's guarantee: a member present from the
    /// start to the end of a full iteration is returned at least once; one
    /// added or removed meanwhile may or may not be; a member may be
    /// returned twice if removals moved it (the caller must tolerate
    /// duplicates, as with Redis).
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<&[u8]>) {
        let len = self.members.len();
        let end = if cursor == 0 {
            len
        } else {
            usize::try_from(cursor).unwrap_or(usize::MAX).min(len)
        };
        let start = end.saturating_sub(count.max(1));
        let found = (start..end)
            .rev()
            .filter_map(|i| self.get_index(i))
            .collect();
        (start as u64, found)
    }
}

impl<'a> FromIterator<&'a [u8]> for SetValue {
    /// A fresh set (encoded as Redis would encode one built by adding these
    /// members to an empty set).
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut set = SetValue::new();
        for member in iter {
            set.insert(member);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_follows_redis_7_0() {
        let mut set = SetValue::new();
        assert_eq!(set.encoding(), "intset");
        for i in 0..MAX_INTSET_ENTRIES {
            set.insert(i.to_string().as_bytes());
        }
        assert_eq!(set.encoding(), "intset");
        set.insert(b"512");
        assert_eq!(set.encoding(), "hashtable");
        set.remove(b"512");
        assert_eq!(set.encoding(), "hashtable", "never converts back");

        let mut set: SetValue = [&b"1"[..], b"-2", b"9223372036854775807"]
            .into_iter()
            .collect();
        assert_eq!(set.encoding(), "intset");
        set.insert(b"01");
        assert_eq!(set.encoding(), "hashtable");
        let set: SetValue = [&b"9223372036854775808"[..]].into_iter().collect();
        assert_eq!(set.encoding(), "hashtable");
    }

    #[test]
    fn pop_and_sample() {
        let mut rng = rand::thread_rng();
        let mut set: SetValue = (0..100)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        let sample = set.random_distinct(10, &mut rng);
        let distinct: std::collections::HashSet<_> = sample.iter().collect();
        assert_eq!(distinct.len(), 10);
        let popped = set.pop_random(30, &mut rng);
        assert_eq!(popped.len(), 30);
        assert_eq!(set.len(), 70);
        for member in &popped {
            assert!(!set.contains(member));
        }
        assert_eq!(set.member_bytes, set.iter().map(<[u8]>::len).sum::<usize>());
        let rest = set.pop_random(1000, &mut rng);
        assert_eq!(rest.len(), 70);
        assert!(set.is_empty());
        assert_eq!(set.member_bytes, 0);
    }

    #[test]
    fn scan_survives_removals_and_insertions() {
        let mut set: SetValue = (0..1000)
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .iter()
            .map(|s| s.as_bytes())
            .collect();
        let stable: Vec<Vec<u8>> = (0..1000)
            .filter(|i| i % 3 != 0)
            .map(|i| format!("m{i}").into_bytes())
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            let (next, found) = set.scan(cursor, 7);
            seen.extend(found.into_iter().map(<[u8]>::to_vec));
            // Remove members that are not part of the stable subset, and
            // add new ones, between calls.
            for i in (round * 3..1000).step_by(3).take(5) {
                set.remove(format!("m{i}").as_bytes());
            }
            set.insert(format!("new{round}").as_bytes());
            round += 1;
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for member in &stable {
            assert!(seen.contains(member), "missed {:?}", member);
        }
    }
}
