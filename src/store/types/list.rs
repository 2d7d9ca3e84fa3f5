//! Lists: a double-ended queue of byte strings, with the index arithmetic
//! of Redis's list commands (negative indexes count from the tail, ranges
//! are clamped as `LRANGE`/`LTRIM` clamp them).

use std::collections::VecDeque;

/// One list element.
pub type Element = Box<[u8]>;

/// A list of byte strings.
///
/// ```
/// use larder::store::types::ListValue;
///
/// let mut list: ListValue = [&b"b"[..], b"c"].into_iter().collect();
/// list.push(true, b"a"); // LPUSH
/// assert_eq!(list.get(0), Some(&b"a"[..]));
/// assert_eq!(list.get(-1), Some(&b"c"[..])); // negative: from the tail
/// assert_eq!(list.range_bounds(-100, 100), Some((0, 2))); // LRANGE clamps
/// assert_eq!(list.positions(b"c", -1, None, 0), [2]); // LPOS RANK -1
/// assert_eq!(list.pop_many(false, 2).len(), 2); // RPOP key 2
/// assert_eq!(list.encoding(), "quicklist"); // as Redis 7.0 reports lists
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListValue {
    items: VecDeque<Element>,
}

impl ListValue {
    pub fn new() -> Self {
        ListValue::default()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn heap_size(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<Element>()
            + self.items.iter().map(|item| item.len()).sum::<usize>()
    }

    /// Redis 7.0 always reports lists as `quicklist` (the `listpack`
    /// encoding for small lists arrived in Redis 7.2; 7.0 keeps listpacks
    /// only as the nodes inside a quicklist).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(|item| &**item)
    }

    /// Adds `value` at the head (`left`) or at the tail.
    pub fn push(&mut self, left: bool, value: &[u8]) {
        if left {
            self.items.push_front(Element::from(value));
        } else {
            self.items.push_back(Element::from(value));
        }
    }

    /// Removes the head (`left`) or the tail element.
    pub fn pop(&mut self, left: bool) -> Option<Element> {
        let popped = if left {
            self.items.pop_front()
        } else {
            self.items.pop_back()
        };
        self.release_spare_capacity();
        popped
    }

    /// Pops up to `count` elements from the head (`left`) or the tail, in
    /// popping order.
    pub fn pop_many(&mut self, left: bool, count: usize) -> Vec<Element> {
        let count = count.min(self.items.len());
        let popped = if left {
            self.items.drain(..count).collect()
        } else {
            let start = self.items.len() - count;
            self.items.drain(start..).rev().collect()
        };
        self.release_spare_capacity();
        popped
    }

    /// The position of a Redis index (negative: from the tail), if inside
    /// the list.
    fn position(&self, index: i64) -> Option<usize> {
        let len = self.items.len() as i64;
        let index = if index < 0 {
            len.checked_add(index)?
        } else {
            index
        };
        (0..len).contains(&index).then_some(index as usize)
    }

    pub fn get(&self, index: i64) -> Option<&[u8]> {
        self.position(index).map(|i| &*self.items[i])
    }

    /// Replaces the element at `index`; false if out of range.
    pub fn set(&mut self, index: i64, value: &[u8]) -> bool {
        match self.position(index) {
            Some(i) => {
                self.items[i] = Element::from(value);
                true
            }
            None => false,
        }
    }

    /// The positions `start..=end` (Redis indexes, clamped as LRANGE does)
    /// designate, or `None` if that range is empty.
    pub fn range_bounds(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let len = self.items.len() as i64;
        let mut start = if start < 0 {
            len.saturating_add(start)
        } else {
            start
        };
        let mut end = if end < 0 {
            len.saturating_add(end)
        } else {
            end
        };
        if start < 0 {
            start = 0;
        }
        if start > end || start >= len {
            return None;
        }
        if end >= len {
            end = len - 1;
        }
        Some((start as usize, end as usize))
    }

    /// The elements of `start..=end` (inclusive positions from
    /// [`ListValue::range_bounds`]).
    pub fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &[u8]> {
        self.items.range(start..=end).map(|item| &**item)
    }

    /// Keeps only the elements of the range LTRIM designates.
    pub fn trim(&mut self, start: i64, end: i64) {
        match self.range_bounds(start, end) {
            None => self.items.clear(),
            Some((start, end)) => {
                self.items.truncate(end + 1);
                self.items.drain(..start);
            }
        }
        self.release_spare_capacity();
    }

    /// Inserts `value` before or after the first `pivot` (from the head).
    /// Returns false if there is no such pivot.
    pub fn insert(&mut self, pivot: &[u8], value: &[u8], after: bool) -> bool {
        match self.items.iter().position(|item| **item == *pivot) {
            Some(at) => {
                self.items.insert(at + after as usize, Element::from(value));
                true
            }
            None => false,
        }
    }

    /// LREM: removes up to |count| occurrences of `value` (from the head if
    /// count > 0, from the tail if < 0, all of them if 0). Returns how many.
    pub fn remove(&mut self, count: i64, value: &[u8]) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let mut removed = 0;
        if count >= 0 {
            self.items.retain(|item| {
                if removed < limit && **item == *value {
                    removed += 1;
                    false
                } else {
                    true
                }
            });
        } else {
            // From the tail: find the positions first, then drop them.
            let mut doomed: Vec<usize> = Vec::new();
            for (i, item) in self.items.iter().enumerate().rev() {
                if doomed.len() == limit {
                    break;
                }
                if **item == *value {
                    doomed.push(i);
                }
            }
            removed = doomed.len();
            if removed > 0 {
                let mut position = 0;
                // `doomed` is descending: the next position to drop is last.
                self.items.retain(|_| {
                    let drop = doomed.last() == Some(&position);
                    if drop {
                        doomed.pop();
                    }
                    position += 1;
                    !drop
                });
            }
        }
        if removed > 0 {
            self.release_spare_capacity();
        }
        removed
    }

    /// LPOS: the indexes of the matches of `element`, as Redis 7.0 computes
    /// them (including its wrapping arithmetic for a RANK of i64::MIN):
    /// `rank` counts matches from the head (> 0) or the tail (< 0) and is
    /// never 0; `count` is `None` without COUNT, `Some(0)` for "all";
    /// `maxlen` 0 means no limit on the elements compared.
    pub fn positions(
        &self,
        element: &[u8],
        rank: i64,
        count: Option<i64>,
        maxlen: i64,
    ) -> Vec<i64> {
        let from_tail = rank < 0;
        let rank = if from_tail { rank.wrapping_neg() } else { rank };
        let len = self.items.len() as i64;
        let mut found = Vec::new();
        let mut matches: i64 = 0;
        let elements: Box<dyn Iterator<Item = &Element>> = if from_tail {
            Box::new(self.items.iter().rev())
        } else {
            Box::new(self.items.iter())
        };
        for (index, item) in (0i64..).zip(elements) {
            if maxlen != 0 && index >= maxlen {
                break;
            }
            if **item != *element {
                continue;
            }
            matches += 1;
            if matches < rank {
                continue;
            }
            found.push(if from_tail { len - index - 1 } else { index });
            match count {
                None => break,
                Some(count) => {
                    if count != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= count {
                        break;
                    }
                }
            }
        }
        found
    }

    /// Gives memory back after a list shrank a lot.
    fn release_spare_capacity(&mut self) {
        if self.items.capacity() > 64 && self.items.len() < self.items.capacity() / 4 {
            self.items.shrink_to(self.items.len() * 2);
        }
    }
}

impl<'a> FromIterator<&'a [u8]> for ListValue {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        ListValue {
            items: iter.into_iter().map(Element::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> ListValue {
        items.iter().map(|s| s.as_bytes()).collect()
    }

    fn contents(list: &ListValue) -> Vec<String> {
        list.iter()
            .map(|i| String::from_utf8_lossy(i).into_owned())
            .collect()
    }

    #[test]
    fn indexes_and_ranges() {
        let l = list(&["a", "b", "c"]);
        assert_eq!(l.get(0), Some(&b"a"[..]));
        assert_eq!(l.get(-1), Some(&b"c"[..]));
        assert_eq!(l.get(3), None);
        assert_eq!(l.get(-4), None);
        assert_eq!(l.get(i64::MIN), None);
        assert_eq!(l.range_bounds(0, -1), Some((0, 2)));
        assert_eq!(l.range_bounds(-100, 100), Some((0, 2)));
        assert_eq!(l.range_bounds(2, 1), None);
        assert_eq!(l.range_bounds(i64::MIN, i64::MAX), Some((0, 2)));
        assert_eq!(l.range_bounds(i64::MAX, i64::MIN), None);
    }

    #[test]
    fn remove_from_either_end() {
        let mut l = list(&["a", "x", "b", "x", "c", "x"]);
        assert_eq!(l.remove(-2, b"x"), 2);
        assert_eq!(contents(&l), ["a", "x", "b", "c"]);
        assert_eq!(l.remove(1, b"x"), 1);
        assert_eq!(contents(&l), ["a", "b", "c"]);
        assert_eq!(l.remove(0, b"b"), 1);
        assert_eq!(l.remove(i64::MIN, b"a"), 1);
        assert_eq!(contents(&l), ["c"]);
    }

    #[test]
    fn trim_and_pop_many() {
        let mut l = list(&["a", "b", "c", "d"]);
        l.trim(1, -2);
        assert_eq!(contents(&l), ["b", "c"]);
        let mut l = list(&["a", "b", "c", "d"]);
        let popped = l.pop_many(false, 3);
        assert_eq!(
            popped,
            vec![Element::from(&b"d"[..]), b"c"[..].into(), b"b"[..].into()]
        );
        assert_eq!(contents(&l), ["a"]);
    }

    #[test]
    fn positions_follow_redis() {
        let l = list(&["a", "b", "c", "a", "b", "c", "a"]);
        assert_eq!(l.positions(b"a", 1, None, 0), [0]);
        assert_eq!(l.positions(b"a", -1, None, 0), [6]);
        assert_eq!(l.positions(b"a", 2, Some(0), 0), [3, 6]);
        assert_eq!(l.positions(b"a", -2, Some(1), 0), [3]);
        assert_eq!(l.positions(b"a", 1, Some(0), 4), [0, 3]);
        assert_eq!(l.positions(b"a", i64::MIN, None, 0), [6]);
        assert_eq!(l.positions(b"a", i64::MIN, Some(1), 0), [6, 3, 0]);
        assert!(l.positions(b"z", 1, None, 0).is_empty());
    }
}
