//! What a key holds.

/// The key type stored in the map. A boxed slice: 16 bytes plus the bytes.
pub type Key = Box<[u8]>;

use super::types::{HashValue, ListValue, SetValue, ZSetValue};

/// A value of one of Redis's types. Collections are boxed so that the enum
/// stays as small as a string's `Vec`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (also holds integers and bitmaps, as in Redis).
    Str(Vec<u8>),
    List(Box<ListValue>),
    Hash(Box<HashValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Approximate heap bytes this value holds (for memory accounting).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.capacity(),
            Value::List(l) => l.heap_size(),
            Value::Hash(h) => h.heap_size(),
            Value::Set(s) => s.heap_size(),
            Value::ZSet(z) => z.heap_size(),
        }
    }

    /// The encoding name Redis would report for the same data
    /// (OBJECT ENCODING).
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => {
                if s.len() <= 20 && crate::commands::parse::strict_i64(s).is_some() {
                    "int"
                } else if s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
        }
    }
}

/// One key's entry: its value and its absolute expiry time.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub value: Value,
    /// Unix time in milliseconds at which the key expires; `None` if never.
    pub expires_at: Option<u64>,
}

impl Entry {
    pub fn new(value: Value) -> Self {
        Entry {
            value,
            expires_at: None,
        }
    }

    /// As in Redis, a key is still there at its expiry millisecond and gone
    /// after it.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expires_at, Some(at) if at < now_ms)
    }
}
