//! Hashes.

use std::collections::HashMap;

/// A hash of fields to values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HashValue {
    fields: HashMap<Vec<u8>, Vec<u8>>,
}

impl HashValue {
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn heap_size(&self) -> usize {
        self.fields
            .iter()
            .map(|(f, v)| f.capacity() + v.capacity() + 48)
            .sum()
    }

    pub fn encoding(&self) -> &'static str {
        if self.fields.len() <= 128
            && self
                .fields
                .iter()
                .all(|(f, v)| f.len() <= 64 && v.len() <= 64)
        {
            "listpack"
        } else {
            "hashtable"
        }
    }
}
