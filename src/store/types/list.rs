//! Lists.

use std::collections::VecDeque;

/// A list of byte strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListValue {
    items: VecDeque<Vec<u8>>,
}

impl ListValue {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn heap_size(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<Vec<u8>>()
            + self.items.iter().map(Vec::capacity).sum::<usize>()
    }

    /// Redis 7.0 reports small lists as listpack, larger ones as quicklist.
    pub fn encoding(&self) -> &'static str {
        if self.items.len() <= 128 && self.items.iter().all(|i| i.len() <= 64) {
            "listpack"
        } else {
            "quicklist"
        }
    }
}
