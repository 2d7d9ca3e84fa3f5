//! Sorted sets.

use std::collections::HashMap;

/// A sorted set: members with scores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZSetValue {
    scores: HashMap<Vec<u8>, f64>,
}

impl ZSetValue {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn heap_size(&self) -> usize {
        self.scores.keys().map(|m| m.capacity() + 48).sum()
    }

    pub fn encoding(&self) -> &'static str {
        if self.scores.len() <= 128 && self.scores.keys().all(|m| m.len() <= 64) {
            "listpack"
        } else {
            "skiplist"
        }
    }
}
