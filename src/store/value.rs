//! What a key holds.

/// The key type stored in the map. A boxed slice: 16 bytes plus the bytes.
pub type Key = Box<[u8]>;

use std::sync::atomic::{AtomicU32, Ordering};

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

/// When a key was last read or written, in Unix seconds (wrapping at 2^32,
/// in 2106). Updated with a relaxed atomic store, so a read marks it
/// without needing exclusive access to the entry.
#[derive(Debug, Default)]
pub struct AccessTime(AtomicU32);

impl AccessTime {
    fn at(now_ms: u64) -> Self {
        AccessTime(AtomicU32::new((now_ms / 1000) as u32))
    }

    fn mark(&self, now_ms: u64) {
        let now = (now_ms / 1000) as u32;
        // Only write when the second changed: a hot key read by many cores
        // does not bounce its cache line on every read.
        if self.0.load(Ordering::Relaxed) != now {
            self.0.store(now, Ordering::Relaxed);
        }
    }

    fn idle_secs(&self, now_ms: u64) -> u64 {
        ((now_ms / 1000) as u32).wrapping_sub(self.0.load(Ordering::Relaxed)) as u64
    }
}

/// One key's entry: its value, its absolute expiry time, and when it was
/// last accessed.
#[derive(Debug)]
pub struct Entry {
    pub value: Value,
    /// Unix time in milliseconds at which the key expires; `None` if never.
    pub expires_at: Option<u64>,
    pub last_access: AccessTime,
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Entry {
            value: self.value.clone(),
            expires_at: self.expires_at,
            last_access: AccessTime(AtomicU32::new(self.last_access.0.load(Ordering::Relaxed))),
        }
    }
}

/// Entries are equal when their data is: access times are bookkeeping.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value && self.expires_at == other.expires_at
    }
}

impl Entry {
    /// A new entry, accessed now.
    pub fn new(value: Value, expires_at: Option<u64>, now_ms: u64) -> Self {
        Entry {
            value,
            expires_at,
            last_access: AccessTime::at(now_ms),
        }
    }

    /// As in Redis, a key is still there at its expiry millisecond and gone
    /// after it.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expires_at, Some(at) if at < now_ms)
    }

    /// Records a read or write.
    pub fn mark_access(&self, now_ms: u64) {
        self.last_access.mark(now_ms);
    }

    /// Seconds since the last read or write (OBJECT IDLETIME).
    pub fn idle_secs(&self, now_ms: u64) -> u64 {
        self.last_access.idle_secs(now_ms)
    }
}
