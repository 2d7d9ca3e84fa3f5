//! A vector kept in segments, so that it never grows by copying itself.
//!
//! A `Vec` doubles by moving everything it holds: a sorted set of two
//! million members moved its 64 MiB node arena in one ZADD, and that one
//! command took 30-40 ms while every other client waited. Here the first
//! segment grows by doubling from one element, up to [`SEGMENT`] elements
//! (so a small collection costs what a `Vec` would, or less), and every later segment is
//! allocated at that size once. Index `i` is element `i % SEGMENT` of
//! segment `i / SEGMENT`: two loads instead of one, the first of a table
//! small enough to stay cached.

use std::ops::{Index, IndexMut};

/// Elements per segment (a power of two, for the index arithmetic).
const SEGMENT_BITS: u32 = 13;
const SEGMENT: usize = 1 << SEGMENT_BITS;

#[derive(Clone, Debug)]
pub struct SegVec<T> {
    /// All full but the last; only the first grows by reallocating.
    segments: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for SegVec<T> {
    fn default() -> Self {
        SegVec {
            segments: Vec::new(),
            len: 0,
        }
    }
}

impl<T> SegVec<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Elements allocated for, over every segment.
    pub fn capacity(&self) -> usize {
        self.segments.iter().map(Vec::capacity).sum()
    }

    pub fn push(&mut self, value: T) {
        match self.segments.last_mut() {
            Some(last) if last.len() < SEGMENT => {
                // Doubling from one: a `Vec` of large elements starts at
                // four, and a small sorted set holds one or two.
                if last.len() == last.capacity() {
                    last.reserve_exact(last.len());
                }
                last.push(value)
            }
            _ => {
                let mut segment = if self.segments.is_empty() {
                    Vec::with_capacity(1)
                } else {
                    Vec::with_capacity(SEGMENT)
                };
                segment.push(value);
                self.segments.push(segment);
            }
        }
        self.len += 1;
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.segments
            .get(i >> SEGMENT_BITS)
            .and_then(|segment| segment.get(i & (SEGMENT - 1)))
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.segments.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.segments.iter_mut().flatten()
    }
}

impl<T> FromIterator<T> for SegVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut seg = SegVec::default();
        for value in iter {
            seg.push(value);
        }
        seg
    }
}

impl<T> Index<usize> for SegVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.segments[i >> SEGMENT_BITS][i & (SEGMENT - 1)]
    }
}

impl<T> IndexMut<usize> for SegVec<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.segments[i >> SEGMENT_BITS][i & (SEGMENT - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_across_segments_as_a_vec_does() {
        let mut seg = SegVec::default();
        let mut vec = Vec::new();
        for i in 0..3 * SEGMENT + 5 {
            seg.push(i as u64);
            vec.push(i as u64);
        }
        assert_eq!(seg.len(), vec.len());
        for i in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 4] {
            assert_eq!(seg[i], vec[i]);
            assert_eq!(seg.get(i), Some(&vec[i]));
        }
        assert_eq!(seg.get(3 * SEGMENT + 5), None);
        seg[SEGMENT] = 7;
        seg[2 * SEGMENT] += 1;
        vec[SEGMENT] = 7;
        vec[2 * SEGMENT] += 1;
        assert!(seg.iter().eq(vec.iter()));
        for x in seg.iter_mut() {
            *x *= 2;
        }
        assert!(seg
            .iter()
            .eq(vec.iter().map(|x| x * 2).collect::<Vec<_>>().iter()));
        // Only the first segment ever grew by reallocating.
        assert!(seg.segments[1..].iter().all(|s| s.capacity() == SEGMENT));
        assert!(seg.capacity() >= seg.len() && seg.capacity() < seg.len() + 2 * SEGMENT);
    }

    #[test]
    fn a_small_one_allocates_as_a_vec_does() {
        let mut seg = SegVec::default();
        assert!(seg.len() == 0 && seg.capacity() == 0);
        for i in 0..10u8 {
            seg.push(i);
        }
        assert!(seg.capacity() < 64);
        let mut large = SegVec::default();
        large.push([0u64; 48]);
        assert_eq!(large.capacity(), 1, "one large element, one allocated");
        large.push([1u64; 48]);
        large.push([2u64; 48]);
        assert_eq!((large.len(), large.capacity()), (3, 4));
    }
}
