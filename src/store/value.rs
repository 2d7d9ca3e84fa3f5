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

/// Redis's LFU data for one key, in one 32-bit atomic: the time of the last
/// decrement in minutes (16 bits, wrapping, as Redis's `ldt`) and an 8-bit
/// logarithmic access counter. Kept for every key whatever the policy (it
/// fits in what would otherwise be padding in [`Entry`]), so switching to an
/// LFU policy at run time finds real counters.
#[derive(Debug)]
pub struct LfuCounter(AtomicU32);

impl LfuCounter {
    fn fresh(now_ms: u64) -> Self {
        LfuCounter(AtomicU32::new(pack_lfu(lfu_minutes(now_ms), LFU_INIT_VAL)))
    }

    /// The counter, decayed for the time since its last decrement (Redis's
    /// `LFUDecrAndReturn`); what OBJECT FREQ reports.
    pub fn frequency(&self, now_ms: u64) -> u8 {
        let packed = self.0.load(Ordering::Relaxed);
        decayed(packed, now_ms)
    }

    /// Redis's `updateLFU`: decay, then a logarithmic increment. A relaxed
    /// load and, only if something changed, a relaxed store: a hot key does
    /// not write its cache line on every read.
    fn touch(&self, now_ms: u64) {
        let packed = self.0.load(Ordering::Relaxed);
        let counter = super::evict::lfu_log_incr(decayed(packed, now_ms));
        let fifo = (fifo_bits(packed) + 1).min(FIFO_FREQ_MAX);
        let updated = pack_lfu(lfu_minutes(now_ms), counter) | (fifo << FIFO_SHIFT);
        if updated != packed {
            self.0.store(updated, Ordering::Relaxed);
        }
    }

    /// The S3-FIFO frequency (0..=3): reads since the key was inserted or
    /// last passed the head of an S3-FIFO queue.
    pub fn fifo_freq(&self) -> u8 {
        fifo_bits(self.0.load(Ordering::Relaxed)) as u8
    }

    /// Sets the S3-FIFO frequency (under the shard lock, by eviction). A
    /// concurrent read may lose its increment: the counter is a hint.
    pub fn set_fifo_freq(&self, freq: u8) {
        let packed = self.0.load(Ordering::Relaxed);
        let updated = (packed & !(FIFO_FREQ_MAX << FIFO_SHIFT))
            | ((freq as u32).min(FIFO_FREQ_MAX) << FIFO_SHIFT);
        self.0.store(updated, Ordering::Relaxed);
    }

    fn copy(&self) -> Self {
        LfuCounter(AtomicU32::new(self.0.load(Ordering::Relaxed)))
    }
}

/// A new key's LFU counter, as Redis's `LFU_INIT_VAL`: new keys are not
/// evicted before they had a chance to be read.
pub const LFU_INIT_VAL: u8 = 5;

/// The S3-FIFO counter sits in bits 24..26 of the LFU word, above Redis's
/// 16-bit minute and 8-bit counter.
const FIFO_SHIFT: u32 = 24;
const FIFO_FREQ_MAX: u32 = 3;

fn fifo_bits(packed: u32) -> u32 {
    (packed >> FIFO_SHIFT) & FIFO_FREQ_MAX
}

fn lfu_minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0xffff) as u32
}

fn pack_lfu(minutes: u32, counter: u8) -> u32 {
    (minutes << 8) | counter as u32
}

fn decayed(packed: u32, now_ms: u64) -> u8 {
    let ldt = (packed >> 8) & 0xffff;
    let counter = (packed & 0xff) as u8;
    let now = lfu_minutes(now_ms);
    // Redis's LFUTimeElapsed, wrapping at 16 bits.
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    let decay = super::evict::lfu_decay_time();
    let periods = elapsed.checked_div(decay).unwrap_or(0);
    counter.saturating_sub(periods.min(255) as u8)
}

/// One key's entry: its value, its absolute expiry time, and when and how
/// often it was accessed (for eviction). 48 bytes: the access time and the
/// LFU counter share what would otherwise be padding.
#[derive(Debug)]
pub struct Entry {
    pub value: Value,
    /// Unix time in milliseconds at which the key expires; `None` if never.
    pub expires_at: Option<u64>,
    pub last_access: AccessTime,
    pub lfu: LfuCounter,
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Entry {
            value: self.value.clone(),
            expires_at: self.expires_at,
            last_access: AccessTime(AtomicU32::new(self.last_access.0.load(Ordering::Relaxed))),
            lfu: self.lfu.copy(),
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
            lfu: LfuCounter::fresh(now_ms),
        }
    }

    /// As in Redis, a key is still there at its expiry millisecond and gone
    /// after it.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expires_at, Some(at) if at < now_ms)
    }

    /// Records a read or write: the LRU time and the LFU counter.
    pub fn mark_access(&self, now_ms: u64) {
        self.last_access.mark(now_ms);
        self.lfu.touch(now_ms);
    }

    /// Takes over the access history of the entry it replaces (an
    /// overwritten key keeps its LFU counter, as in Redis's `dbSetValue`).
    pub fn inherit_access(&mut self, previous: &Entry) {
        self.lfu = previous.lfu.copy();
    }

    /// Seconds since the last read or write (OBJECT IDLETIME).
    pub fn idle_secs(&self, now_ms: u64) -> u64 {
        self.last_access.idle_secs(now_ms)
    }

    /// The decayed LFU counter (OBJECT FREQ).
    pub fn frequency(&self, now_ms: u64) -> u8 {
        self.lfu.frequency(now_ms)
    }

    /// Approximate bytes this entry costs in the keyspace, key included.
    pub fn footprint(&self, key_len: usize) -> usize {
        std::mem::size_of::<Entry>() + 24 + key_len + self.value.heap_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_stays_48_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 48);
    }

    #[test]
    fn lfu_counter_starts_at_init_and_decays() {
        let minute = 60_000;
        let entry = Entry::new(Value::Str(b"v".to_vec()), None, 10 * minute);
        assert_eq!(entry.frequency(10 * minute), LFU_INIT_VAL);
        // lfu-decay-time defaults to 1 minute: one step per minute idle.
        assert_eq!(entry.frequency(12 * minute), LFU_INIT_VAL - 2);
        assert_eq!(entry.frequency(1000 * minute), 0);
        for _ in 0..1000 {
            entry.mark_access(10 * minute);
        }
        let hot = entry.frequency(10 * minute);
        assert!(hot > LFU_INIT_VAL + 3 && hot < 40, "{hot}");
    }

    #[test]
    fn fifo_frequency_saturates_beside_the_lfu_counter() {
        let minute = 60_000;
        let entry = Entry::new(Value::Str(b"v".to_vec()), None, 10 * minute);
        assert_eq!(entry.lfu.fifo_freq(), 0);
        entry.mark_access(10 * minute);
        assert_eq!(entry.lfu.fifo_freq(), 1);
        for _ in 0..10 {
            entry.mark_access(11 * minute);
        }
        assert_eq!(entry.lfu.fifo_freq(), 3);
        entry.lfu.set_fifo_freq(2);
        assert_eq!(entry.lfu.fifo_freq(), 2);
        // The LFU counter and its decay time are unaffected.
        assert_eq!(entry.frequency(11 * minute), entry.frequency(11 * minute));
        assert!(entry.frequency(11 * minute) >= LFU_INIT_VAL);
        assert_eq!(entry.frequency(10_000 * minute), 0);
    }
}
