//! Sets.

use std::collections::HashSet;

/// A set of byte strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetValue {
    members: HashSet<Vec<u8>>,
}

impl SetValue {
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn heap_size(&self) -> usize {
        self.members.iter().map(|m| m.capacity() + 32).sum()
    }

    pub fn encoding(&self) -> &'static str {
        "hashtable"
    }
}
