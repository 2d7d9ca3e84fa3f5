//! What a key holds.

/// The key type stored in the map. A boxed slice: 16 bytes plus the bytes.
pub type Key = Box<[u8]>;

/// A value of one of Redis's types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (also holds integers and bitmaps, as in Redis).
    Str(Vec<u8>),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
        }
    }

    /// Approximate heap bytes this value holds (for memory accounting).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.capacity(),
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
