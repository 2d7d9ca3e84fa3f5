//! Lists: a double-ended queue of byte strings, with the index arithmetic
//! of Redis's list commands (negative indexes count from the tail, ranges
//! are clamped as `LRANGE`/`LTRIM` clamp them).
//!
//! A long list is kept in chunks of at most [`CHUNK`] elements, as Redis's
//! quicklist keeps nodes of a few KiB, so that it never grows or shrinks by
//! copying all of itself: one deque of four million elements doubled by
//! moving 64 MiB, which stalled every client for tens of milliseconds
//! (an LPUSH pipeline at a fixed load: p99 31 ms against Redis's 5.5 ms).
//! A short list is one chunk and allocates nothing more.

use std::collections::VecDeque;

/// One list element.
pub type Element = Box<[u8]>;

/// Elements per chunk at most: 16 KiB of element pointers. The unit tests
/// use small chunks, so that short lists span many.
#[cfg(not(test))]
const CHUNK: usize = 1024;
#[cfg(test)]
const CHUNK: usize = 8;

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
#[derive(Debug, Clone, Default)]
pub struct ListValue {
    /// The first chunk: the whole of a list of up to [`CHUNK`] elements.
    /// Never empty unless the list is.
    head: VecDeque<Element>,
    /// The chunks after it, none empty; unallocated for a short list.
    rest: VecDeque<VecDeque<Element>>,
    len: usize,
}

impl ListValue {
    pub fn new() -> Self {
        ListValue::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn heap_size(&self) -> usize {
        let slot = std::mem::size_of::<Element>();
        self.head.capacity() * slot
            + self.rest.capacity() * std::mem::size_of::<VecDeque<Element>>()
            + self.rest.iter().map(|c| c.capacity() * slot).sum::<usize>()
            + self.iter().map(|item| item.len()).sum::<usize>()
    }

    /// Redis 7.0 always reports lists as `quicklist` (the `listpack`
    /// encoding for small lists arrived in Redis 7.2; 7.0 keeps listpacks
    /// only as the nodes inside a quicklist).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            list: self,
            front: (0, 0),
            back: (self.chunk_count().saturating_sub(1), self.last_chunk_len()),
            remaining: self.len,
        }
    }

    fn chunk_count(&self) -> usize {
        if self.len == 0 {
            0
        } else {
            1 + self.rest.len()
        }
    }

    fn chunk(&self, i: usize) -> &VecDeque<Element> {
        if i == 0 {
            &self.head
        } else {
            &self.rest[i - 1]
        }
    }

    fn chunk_mut(&mut self, i: usize) -> &mut VecDeque<Element> {
        if i == 0 {
            &mut self.head
        } else {
            &mut self.rest[i - 1]
        }
    }

    fn last_chunk_len(&self) -> usize {
        self.rest.back().unwrap_or(&self.head).len()
    }

    /// The chunk and the offset in it of position `at` (< len), counted
    /// from the nearer end.
    fn locate(&self, at: usize) -> (usize, usize) {
        if at < self.len / 2 {
            let mut offset = at;
            for i in 0..self.chunk_count() {
                let len = self.chunk(i).len();
                if offset < len {
                    return (i, offset);
                }
                offset -= len;
            }
        } else {
            let mut from_end = self.len - at;
            for i in (0..self.chunk_count()).rev() {
                let len = self.chunk(i).len();
                if from_end <= len {
                    return (i, len - from_end);
                }
                from_end -= len;
            }
        }
        unreachable!("position {at} of a list of {}", self.len)
    }

    /// Adds `value` at the head (`left`) or at the tail.
    pub fn push(&mut self, left: bool, value: &[u8]) {
        let value = Element::from(value);
        if left {
            if self.head.len() == CHUNK {
                // Full-sized at once: a list this long is likely to grow on,
                // and a chunk grown from empty would be copied eight times.
                let full = std::mem::replace(&mut self.head, VecDeque::with_capacity(CHUNK));
                self.rest.push_front(full);
            }
            self.head.push_front(value);
        } else {
            let last = self.rest.back_mut().unwrap_or(&mut self.head);
            if last.len() == CHUNK {
                self.rest.push_back(VecDeque::with_capacity(CHUNK));
            }
            self.rest
                .back_mut()
                .unwrap_or(&mut self.head)
                .push_back(value);
        }
        self.len += 1;
    }

    /// Removes the head (`left`) or the tail element.
    pub fn pop(&mut self, left: bool) -> Option<Element> {
        let popped = self.pop_one(left)?;
        self.release_spare_capacity();
        Some(popped)
    }

    fn pop_one(&mut self, left: bool) -> Option<Element> {
        let popped = if left {
            let popped = self.head.pop_front()?;
            if self.head.is_empty() {
                self.head = self.rest.pop_front().unwrap_or_default();
            }
            popped
        } else if let Some(last) = self.rest.back_mut() {
            let popped = last.pop_back()?;
            if last.is_empty() {
                self.rest.pop_back();
            }
            popped
        } else {
            self.head.pop_back()?
        };
        self.len -= 1;
        Some(popped)
    }

    /// Pops up to `count` elements from the head (`left`) or the tail, in
    /// popping order.
    pub fn pop_many(&mut self, left: bool, count: usize) -> Vec<Element> {
        let count = count.min(self.len);
        let popped = (0..count).filter_map(|_| self.pop_one(left)).collect();
        self.release_spare_capacity();
        popped
    }

    /// The position of a Redis index (negative: from the tail), if inside
    /// the list.
    fn position(&self, index: i64) -> Option<usize> {
        let len = self.len as i64;
        let index = if index < 0 {
            len.checked_add(index)?
        } else {
            index
        };
        (0..len).contains(&index).then_some(index as usize)
    }

    pub fn get(&self, index: i64) -> Option<&[u8]> {
        let (chunk, offset) = self.locate(self.position(index)?);
        Some(&self.chunk(chunk)[offset])
    }

    /// Replaces the element at `index`; false if out of range.
    pub fn set(&mut self, index: i64, value: &[u8]) -> bool {
        match self.position(index) {
            Some(at) => {
                let (chunk, offset) = self.locate(at);
                self.chunk_mut(chunk)[offset] = Element::from(value);
                true
            }
            None => false,
        }
    }

    /// The positions `start..=end` (Redis indexes, clamped as LRANGE does)
    /// designate, or `None` if that range is empty.
    pub fn range_bounds(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let len = self.len as i64;
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
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        let (chunk, offset) = self.locate(start);
        let (last, last_offset) = self.locate(end);
        Iter {
            list: self,
            front: (chunk, offset),
            back: (last, last_offset + 1),
            remaining: end + 1 - start,
        }
    }

    /// Keeps only the elements of the range LTRIM designates.
    pub fn trim(&mut self, start: i64, end: i64) {
        match self.range_bounds(start, end) {
            None => *self = ListValue::new(),
            Some((start, end)) => {
                self.truncate(end + 1);
                self.drop_front(start);
            }
        }
        self.release_spare_capacity();
    }

    /// Drops elements from the tail until `len` are left, whole chunks at a
    /// time where it can.
    fn truncate(&mut self, len: usize) {
        while self.len > len {
            let excess = self.len - len;
            match self.rest.back_mut() {
                Some(last) if last.len() <= excess => {
                    self.len -= last.len();
                    self.rest.pop_back();
                }
                Some(last) => {
                    last.truncate(last.len() - excess);
                    self.len = len;
                }
                None => {
                    self.head.truncate(len);
                    self.len = len;
                }
            }
        }
    }

    /// Drops the first `count` elements, whole chunks at a time where it
    /// can.
    fn drop_front(&mut self, mut count: usize) {
        while count > 0 {
            if self.head.len() <= count {
                count -= self.head.len();
                self.len -= self.head.len();
                self.head = self.rest.pop_front().unwrap_or_default();
            } else {
                self.head.drain(..count);
                self.len -= count;
                count = 0;
            }
        }
    }

    /// Inserts `value` before or after the first `pivot` (from the head).
    /// Returns false if there is no such pivot.
    pub fn insert(&mut self, pivot: &[u8], value: &[u8], after: bool) -> bool {
        let Some(at) = self.iter().position(|item| item == pivot) else {
            return false;
        };
        let (chunk, mut offset) = self.locate(at);
        offset += after as usize;
        let target = self.chunk_mut(chunk);
        target.insert(offset, Element::from(value));
        if target.len() > CHUNK {
            // Split a full chunk in two, as a quicklist splits a node.
            let second_half = target.split_off(CHUNK / 2);
            self.rest.insert(chunk, second_half);
        }
        self.len += 1;
        true
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
            self.retain(|_, item| {
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
            for (i, item) in self.iter().enumerate().rev() {
                if doomed.len() == limit {
                    break;
                }
                if item == value {
                    doomed.push(i);
                }
            }
            removed = doomed.len();
            if removed > 0 {
                // `doomed` is descending: the next position to drop is last.
                self.retain(|position, _| {
                    let drop = doomed.last() == Some(&position);
                    if drop {
                        doomed.pop();
                    }
                    !drop
                });
            }
        }
        if removed > 0 {
            self.release_spare_capacity();
        }
        removed
    }

    /// Keeps the elements for which `keep(position, element)` holds, called
    /// from the head on, then drops the chunks left empty.
    fn retain(&mut self, mut keep: impl FnMut(usize, &Element) -> bool) {
        let mut position = 0;
        let mut left = 0;
        for chunk in std::iter::once(&mut self.head).chain(self.rest.iter_mut()) {
            chunk.retain(|item| {
                position += 1;
                keep(position - 1, item)
            });
            left += chunk.len();
        }
        self.len = left;
        self.rest.retain(|chunk| !chunk.is_empty());
        if self.head.is_empty() {
            self.head = self.rest.pop_front().unwrap_or_default();
        }
        for chunk in self.rest.iter_mut() {
            release_spare_capacity(chunk);
        }
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
        let len = self.len as i64;
        let mut found = Vec::new();
        let mut matches: i64 = 0;
        let elements: Box<dyn Iterator<Item = &[u8]>> = if from_tail {
            Box::new(self.iter().rev())
        } else {
            Box::new(self.iter())
        };
        for (index, item) in (0i64..).zip(elements) {
            if maxlen != 0 && index >= maxlen {
                break;
            }
            if item != element {
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

    /// Gives memory back after a list shrank a lot: the end chunks, and
    /// the deque of chunks.
    fn release_spare_capacity(&mut self) {
        release_spare_capacity(&mut self.head);
        if let Some(last) = self.rest.back_mut() {
            release_spare_capacity(last);
        }
        release_spare_capacity(&mut self.rest);
    }
}

fn release_spare_capacity<T>(deque: &mut VecDeque<T>) {
    if deque.capacity() > 64 && deque.len() < deque.capacity() / 4 {
        deque.shrink_to(deque.len() * 2);
    }
}

impl PartialEq for ListValue {
    /// The same elements in the same order, however they are chunked.
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<'a> FromIterator<&'a [u8]> for ListValue {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(iter: I) -> Self {
        let mut list = ListValue::new();
        for item in iter {
            list.push(false, item);
        }
        list
    }
}

/// The elements of a list or of a range of it, from either end.
pub struct Iter<'a> {
    list: &'a ListValue,
    /// The chunk and offset of the next element from the front.
    front: (usize, usize),
    /// The chunk and the offset just past the next element from the back.
    back: (usize, usize),
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        let (mut chunk, mut offset) = self.front;
        while offset == self.list.chunk(chunk).len() {
            chunk += 1;
            offset = 0;
        }
        self.front = (chunk, offset + 1);
        self.remaining -= 1;
        Some(&self.list.chunk(chunk)[offset])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (mut chunk, mut end) = self.back;
        while end == 0 {
            chunk -= 1;
            end = self.list.chunk(chunk).len();
        }
        self.back = (chunk, end - 1);
        self.remaining -= 1;
        Some(&self.list.chunk(chunk)[end - 1])
    }
}

impl ExactSizeIterator for Iter<'_> {}

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

    /// Random operations on a list long enough to span several chunks,
    /// checked against a plain deque after each: the chunking must never
    /// show.
    #[test]
    fn chunked_list_behaves_as_one_deque() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut random = move |below: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % below as u64) as usize
        };
        let mut list = ListValue::new();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut most_chunks = 0;
        for step in 0..60_000 {
            let value = format!("v{}", random(50)).into_bytes();
            let len = model.len() as i64;
            let index = random(2 * model.len() + 3) as i64 - len - 1;
            match random(100) {
                // Mostly pushes at first, so that it grows past a few chunks.
                0..=39 => {
                    list.push(true, &value);
                    model.push_front(value);
                }
                40..=69 if step < 30_000 || random(2) == 0 => {
                    list.push(false, &value);
                    model.push_back(value);
                }
                40..=79 => {
                    let left = random(2) == 0;
                    let popped = list.pop(left).map(|e| e.to_vec());
                    let expected = if left {
                        model.pop_front()
                    } else {
                        model.pop_back()
                    };
                    assert_eq!(popped, expected);
                }
                80..=82 => {
                    let most = if random(50) == 0 { 1500 } else { 20 };
                    let count = random(most);
                    let left = random(2) == 0;
                    let popped: Vec<Vec<u8>> = list
                        .pop_many(left, count)
                        .iter()
                        .map(|e| e.to_vec())
                        .collect();
                    let expected: Vec<Vec<u8>> = (0..count)
                        .map_while(|_| {
                            if left {
                                model.pop_front()
                            } else {
                                model.pop_back()
                            }
                        })
                        .collect();
                    assert_eq!(popped, expected);
                }
                83..=87 => {
                    let position = if index < 0 { len + index } else { index };
                    let expected = (0..len)
                        .contains(&position)
                        .then(|| &model[position as usize][..]);
                    assert_eq!(list.get(index), expected);
                    if list.set(index, &value) {
                        model[position as usize] = value;
                    }
                }
                88..=91 => {
                    let end = random(2 * model.len() + 3) as i64 - len - 1;
                    if let Some((from, to)) = list.range_bounds(index, end) {
                        let got: Vec<&[u8]> = list.range(from, to).collect();
                        let expected: Vec<&[u8]> =
                            model.range(from..=to).map(Vec::as_slice).collect();
                        assert_eq!(got, expected);
                        assert!(list.range(from, to).rev().eq(expected.into_iter().rev()));
                    }
                }
                92..=95 => {
                    let pivot = format!("v{}", random(50)).into_bytes();
                    let after = random(2) == 0;
                    let inserted = list.insert(&pivot, &value, after);
                    match model.iter().position(|item| *item == pivot) {
                        Some(at) => {
                            assert!(inserted);
                            model.insert(at + after as usize, value);
                        }
                        None => assert!(!inserted),
                    }
                }
                96..=98 => {
                    let count = random(7) as i64 - 3;
                    let removed = list.remove(count, &value);
                    let limit = if count == 0 {
                        usize::MAX
                    } else {
                        count.unsigned_abs() as usize
                    };
                    let mut doomed: Vec<usize> = model
                        .iter()
                        .enumerate()
                        .filter(|(_, item)| **item == value)
                        .map(|(i, _)| i)
                        .collect();
                    if count < 0 {
                        doomed.reverse();
                    }
                    doomed.truncate(limit);
                    doomed.sort_unstable();
                    assert_eq!(removed, doomed.len());
                    for at in doomed.into_iter().rev() {
                        model.remove(at);
                    }
                }
                _ => {
                    if random(100) == 0 {
                        let end = random(2 * model.len() + 3) as i64 - len - 1;
                        let bounds = list.range_bounds(index, end);
                        list.trim(index, end);
                        model = match bounds {
                            Some((from, to)) => model.range(from..=to).cloned().collect(),
                            None => VecDeque::new(),
                        };
                    }
                }
            }
            assert_eq!(list.len(), model.len());
            most_chunks = most_chunks.max(list.chunk_count());
            if step % 97 == 0 {
                assert!(list.iter().eq(model.iter().map(Vec::as_slice)));
                assert!(list.iter().rev().eq(model.iter().rev().map(Vec::as_slice)));
                assert!(list
                    .rest
                    .iter()
                    .all(|chunk| !chunk.is_empty() && chunk.len() <= CHUNK));
                assert!(list.head.len() <= CHUNK && (list.head.is_empty() == list.is_empty()));
            }
        }
        assert!(list.iter().eq(model.iter().map(Vec::as_slice)));
        assert!(
            most_chunks >= 50,
            "the list spanned {most_chunks} chunks at most"
        );
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
