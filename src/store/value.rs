//! What a key holds.

/// The key type stored in the map. A boxed slice: 16 bytes plus the bytes.
pub type Key = Box<[u8]>;

use std::sync::atomic::{AtomicU32, Ordering};

use super::types::{HashValue, ListValue, PrefetchStep, SetValue, StreamValue, ZSetValue};

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
    Stream(Box<StreamValue>),
}

impl Value {
    /// The value, borrowed (what [`Entry::value`] gives).
    pub fn view(&self) -> ValueRef<'_> {
        match self {
            Value::Str(s) => ValueRef::Str(s),
            Value::List(l) => ValueRef::List(l),
            Value::Hash(h) => ValueRef::Hash(h),
            Value::Set(s) => ValueRef::Set(s),
            Value::ZSet(z) => ValueRef::ZSet(z),
            Value::Stream(s) => ValueRef::Stream(s),
        }
    }

    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
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
            Value::Stream(s) => s.heap_size(),
        }
    }

    /// The encoding name Redis would report for the same data
    /// (OBJECT ENCODING).
    pub fn encoding(&self) -> &'static str {
        self.view().encoding()
    }
}

/// A borrowed value: what a key holds, as read from its entry (a string
/// may be stored inline in the entry, so there is no `&Value` to lend).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Str(&'a [u8]),
    List(&'a ListValue),
    Hash(&'a HashValue),
    Set(&'a SetValue),
    ZSet(&'a ZSetValue),
    Stream(&'a StreamValue),
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(value: &'a Value) -> Self {
        value.view()
    }
}

impl<'a> ValueRef<'a> {
    /// The name `TYPE` reports.
    pub fn type_name(self) -> &'static str {
        match self {
            ValueRef::Str(_) => "string",
            ValueRef::List(_) => "list",
            ValueRef::Hash(_) => "hash",
            ValueRef::Set(_) => "set",
            ValueRef::ZSet(_) => "zset",
            ValueRef::Stream(_) => "stream",
        }
    }

    /// For a hash, set or sorted set large enough to miss the CPU caches:
    /// the hash a lookup of `member` (a field, for a hash) uses, to start
    /// that lookup in steps with [`ValueRef::prefetch_member`].
    pub fn member_hash(self, member: &[u8]) -> Option<u64> {
        // Smaller ones sit in a few cache lines, warm from the last use.
        const WORTH_IT: usize = 128;
        match self {
            ValueRef::Hash(h) if h.len() > WORTH_IT => Some(h.field_hash(member)),
            ValueRef::Set(s) if s.len() > WORTH_IT => Some(s.member_hash(member)),
            ValueRef::ZSet(z) if z.len() > WORTH_IT => Some(z.member_hash(member)),
            _ => None,
        }
    }

    /// One step of a batched lookup of the member hashed as `hash` (see
    /// `Store::prefetch`). A hint to the CPU; nothing changes.
    pub fn prefetch_member(self, hash: u64, step: PrefetchStep) {
        match self {
            ValueRef::Hash(h) => h.prefetch_field(hash, step),
            ValueRef::Set(s) => s.prefetch_member(hash, step),
            ValueRef::ZSet(z) => z.prefetch_member(hash, step),
            _ => {}
        }
    }

    /// Approximate heap bytes the value holds outside its entry.
    pub fn heap_size(self) -> usize {
        match self {
            ValueRef::Str(s) => s.len(),
            ValueRef::List(l) => l.heap_size(),
            ValueRef::Hash(h) => h.heap_size(),
            ValueRef::Set(s) => s.heap_size(),
            ValueRef::ZSet(z) => z.heap_size(),
            ValueRef::Stream(s) => s.heap_size(),
        }
    }

    /// The encoding name Redis would report (OBJECT ENCODING).
    pub fn encoding(self) -> &'static str {
        match self {
            ValueRef::Str(s) => {
                if s.len() <= 20 && crate::numbers::strict_i64(s).is_some() {
                    "int"
                } else if s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            ValueRef::List(l) => l.encoding(),
            ValueRef::Hash(h) => h.encoding(),
            ValueRef::Set(s) => s.encoding(),
            ValueRef::ZSet(z) => z.encoding(),
            ValueRef::Stream(_) => "stream",
        }
    }

    /// An owned copy.
    pub fn to_owned(self) -> Value {
        match self {
            ValueRef::Str(s) => Value::Str(s.to_vec()),
            ValueRef::List(l) => Value::List(Box::new(l.clone())),
            ValueRef::Hash(h) => Value::Hash(Box::new(h.clone())),
            ValueRef::Set(s) => Value::Set(Box::new(s.clone())),
            ValueRef::ZSet(z) => Value::ZSet(Box::new(z.clone())),
            ValueRef::Stream(s) => Value::Stream(Box::new(s.clone())),
        }
    }

    /// The string, if it is one.
    pub fn as_str(self) -> Option<&'a [u8]> {
        match self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// When a key was last read or written, in Unix seconds (24 bits, wrapping
/// every 194 days as Redis's LRU clock). Updated with a relaxed atomic
/// store, so a read marks it without needing exclusive access to the entry.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct AccessTime(AtomicU32);

/// The access time takes the low 24 bits of its word, as Redis's LRU
/// clock (seconds, wrapping every 194 days); the entry keeps immutable
/// layout bits in the top 8 (see `store::entry`).
pub(super) const ACCESS_TIME_MASK: u32 = (1 << 24) - 1;

impl AccessTime {
    /// The time bits for an access at `now_ms`.
    pub(super) fn word_at(now_ms: u64) -> u32 {
        (now_ms / 1000) as u32 & ACCESS_TIME_MASK
    }

    /// The whole word, layout bits included.
    pub(super) fn word(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Replaces the whole word (the entry's own bit updates).
    pub(super) fn store_word(&self, word: u32) {
        self.0.store(word, Ordering::Relaxed);
    }

    pub(super) fn mark(&self, now_ms: u64) {
        let now = AccessTime::word_at(now_ms);
        let word = self.0.load(Ordering::Relaxed);
        // Only write when the second changed: a hot key read by many cores
        // does not bounce its cache line on every read. The other bits
        // change only under the exclusive shard lock, which keeps readers
        // (this) out, so a plain store keeps them.
        if word & ACCESS_TIME_MASK != now {
            self.0
                .store((word & !ACCESS_TIME_MASK) | now, Ordering::Relaxed);
        }
    }

    pub(super) fn set_idle_secs(&self, idle_secs: u64, now_ms: u64) {
        let back = (idle_secs & ACCESS_TIME_MASK as u64) as u32;
        let then = AccessTime::word_at(now_ms).wrapping_sub(back) & ACCESS_TIME_MASK;
        let word = self.0.load(Ordering::Relaxed);
        self.0
            .store((word & !ACCESS_TIME_MASK) | then, Ordering::Relaxed);
    }

    pub(super) fn idle_secs(&self, now_ms: u64) -> u64 {
        let then = self.0.load(Ordering::Relaxed) & ACCESS_TIME_MASK;
        (AccessTime::word_at(now_ms).wrapping_sub(then) & ACCESS_TIME_MASK) as u64
    }
}

/// Redis's LFU data for one key, in one 32-bit atomic: the time of the last
/// decrement in minutes (16 bits, wrapping, as Redis's `ldt`) and an 8-bit
/// logarithmic access counter. Kept for every key whatever the policy (it
/// shares the entry's header word with layout bits), so switching to an
/// LFU policy at run time finds real counters.
#[derive(Debug)]
#[repr(transparent)]
pub struct LfuCounter(AtomicU32);

impl LfuCounter {
    /// A new key's word.
    pub(super) fn fresh_word(now_ms: u64) -> u32 {
        pack_lfu(lfu_minutes(now_ms), LFU_INIT_VAL)
    }

    /// The whole word, layout bits included.
    pub(super) fn word(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Takes over `bits` (the LFU part of another entry's word).
    pub(super) fn set_bits(&self, bits: u32) {
        let word = self.0.load(Ordering::Relaxed);
        self.0
            .store((word & !LFU_MASK) | (bits & LFU_MASK), Ordering::Relaxed);
    }

    /// Sets the counter, decremented last now; the S3-FIFO and layout
    /// bits are kept.
    pub(super) fn set_counter(&self, counter: u8, now_ms: u64) {
        const MINUTES_AND_COUNTER: u32 = (1 << 24) - 1;
        let word = self.0.load(Ordering::Relaxed);
        let updated = (word & !MINUTES_AND_COUNTER) | pack_lfu(lfu_minutes(now_ms), counter);
        self.0.store(updated, Ordering::Relaxed);
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
    pub(super) fn touch(&self, now_ms: u64) {
        let packed = self.0.load(Ordering::Relaxed);
        let counter = super::evict::lfu_log_incr(decayed(packed, now_ms));
        let fifo = (fifo_bits(packed) + 1).min(FIFO_FREQ_MAX);
        // The bits above LFU_MASK belong to the entry's layout: kept.
        let updated =
            (packed & !LFU_MASK) | pack_lfu(lfu_minutes(now_ms), counter) | (fifo << FIFO_SHIFT);
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
}

/// A new key's LFU counter, as Redis's `LFU_INIT_VAL`: new keys are not
/// evicted before they had a chance to be read.
pub const LFU_INIT_VAL: u8 = 5;

/// The S3-FIFO counter sits in bits 24..26 of the LFU word, above Redis's
/// 16-bit minute and 8-bit counter.
const FIFO_SHIFT: u32 = 24;
const FIFO_FREQ_MAX: u32 = 3;

/// The LFU data takes the low 26 bits of its word; the entry keeps an
/// immutable layout field in the top 6 (see `store::entry`).
pub(super) const LFU_MASK: u32 = (1 << 26) - 1;

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
    if elapsed == 0 {
        // The common case for a key read often: no division (tens of
        // cycles on every read).
        return counter;
    }
    let decay = super::evict::lfu_decay_time();
    let periods = elapsed.checked_div(decay).unwrap_or(0);
    counter.saturating_sub(periods.min(255) as u8)
}

pub use super::entry::Entry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfu_counter_starts_at_init_and_decays() {
        let minute = 60_000;
        let entry = Entry::new(b"k", Value::Str(b"v".to_vec()), None, 10 * minute);
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
        let entry = Entry::new(b"k", Value::Str(b"v".to_vec()), None, 10 * minute);
        assert_eq!(entry.lfu().fifo_freq(), 0);
        entry.mark_access(10 * minute);
        assert_eq!(entry.lfu().fifo_freq(), 1);
        for _ in 0..10 {
            entry.mark_access(11 * minute);
        }
        assert_eq!(entry.lfu().fifo_freq(), 3);
        entry.lfu().set_fifo_freq(2);
        assert_eq!(entry.lfu().fifo_freq(), 2);
        // The LFU counter and its decay time are unaffected.
        assert_eq!(entry.frequency(11 * minute), entry.frequency(11 * minute));
        assert!(entry.frequency(11 * minute) >= LFU_INIT_VAL);
        assert_eq!(entry.frequency(10_000 * minute), 0);
    }
}
