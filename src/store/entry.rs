//! One key's entry as one heap allocation, owned through a thin pointer.
//!
//! The shard map stores only this 8-byte pointer per key. The allocation
//! holds, in order:
//!
//! ```text
//! 0..4    access word (AtomicU32): bits 0..24 last access (Unix seconds,
//!         see value::AccessTime), 24..26 flags (BOXED, HAS_EXPIRY),
//!         26 PENDING (write-behind, see store::changes), 27..32 key
//!         length code
//! 4..8    LFU word (AtomicU32): bits 0..26 LFU and S3-FIFO counters (see
//!         value::LfuCounter), 26..32 value length code
//! [8 B]   expiry, Unix ms, little-endian, unaligned   only with HAS_EXPIRY
//! [varint key length]                                 only if its code is 31
//! key bytes
//! inline: [varint value length]                       only if its code is 63
//!         value bytes                                 (a string)
//! BOXED:  padding to 8, then a `Value` (24 bytes)     (a collection, or a string
//!                                                     changed in place)
//! ```
//!
//! A length code below its maximum (31 for keys, 63 for values) is the
//! length itself, so short keys and values cost no length bytes. The layout
//! bits never change after the entry is built; the access, LFU and PENDING
//! bits beside them are updated with relaxed stores that keep them (always
//! under the shard lock, so a load-then-store loses nothing). The allocation is sized exactly: a 16-byte key
//! with a 32-byte string and no TTL takes 56 bytes, one allocator size
//! class with no slack (mimalloc and jemalloc both have a 56-byte class). Strings are stored
//! inline when written whole (SET and friends); a command that changes one
//! in place (APPEND, SETRANGE, SETBIT...) gets it as a `Value::Str(Vec)` in
//! the BOXED form, so that repeated appends stay amortized O(1) — as Redis
//! turns an embstr into a raw string. A BOXED string is what OBJECT
//! ENCODING reports as `raw` (see [`Entry::encoding`]); commands that
//! create a raw string in Redis (PFADD, SETRANGE, BITOP...) store theirs
//! BOXED from the start, so the encoding needs no bit of its own.
//!
//! All the unsafe code of the entry layout is in this module.

use std::alloc::{self, Layout};
use std::fmt;
use std::mem::{self, ManuallyDrop};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU32;

use super::value::{AccessTime, LfuCounter, Value, ValueRef, ACCESS_TIME_MASK, LFU_MASK};

const ACCESS: usize = 0;
const LFU: usize = 4;
const BODY: usize = 8;
const ALIGN: usize = 8;

/// The value is a `Value` at an 8-aligned offset (else inline string bytes).
const BOXED: u8 = 1;
/// An 8-byte expiry follows the two words.
const HAS_EXPIRY: u8 = 2;

/// Where the flags and the key length code sit in the access word.
const FLAGS_SHIFT: u32 = 24;
/// The key has a change waiting for write-behind (in the access word; not
/// a layout bit: it is carried into rebuilt allocations of the same key).
const PENDING: u32 = 1 << 26;
const KEY_CODE_SHIFT: u32 = 27;
/// Where the value length code sits in the LFU word.
const VALUE_CODE_SHIFT: u32 = 26;
/// The key length code meaning "a varint length follows" (5 bits).
const LONG_KEY: usize = 31;
/// The value length code meaning "a varint length follows" (6 bits).
const LONG_VALUE: usize = 63;

/// Bytes a length takes in the body when `long` is its varint code.
fn length_bytes(len: usize, long: usize) -> usize {
    if len < long {
        0
    } else {
        varint_len(len)
    }
}

/// A key, its value, its expiry and its access history, in one allocation
/// (see the module docs). Dropping it frees everything.
pub struct Entry {
    ptr: NonNull<u8>,
}

// SAFETY: an Entry owns its allocation exclusively (like a Box); the only
// state changed through a shared reference is the two atomics. The values
// it may hold (Vec and the collection types) are Send and Sync.
unsafe impl Send for Entry {}
// SAFETY: see above; `&Entry` only reads, or stores to atomics.
unsafe impl Sync for Entry {}

// What the two impls above rely on: the values an entry holds are Send and
// Sync themselves.
const _: fn() = || {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Value>();
};

/// What goes where a value is stored.
enum Payload<'a> {
    Inline(&'a [u8]),
    Boxed(Value),
}

/// Where the parts of an allocation are.
#[derive(Debug, Clone, Copy)]
struct Shape {
    flags: u8,
    value_at: usize,
    /// Inline value bytes (0 when BOXED).
    value_len: usize,
    size: usize,
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// Writes `n` as LEB128 at `p`; returns the bytes written.
///
/// # Safety
/// `p` must be valid for `varint_len(n)` bytes of writes.
unsafe fn write_varint(p: *mut u8, mut n: usize) -> usize {
    let mut i = 0;
    while n >= 0x80 {
        // SAFETY: i < varint_len(n) by construction (caller's contract).
        unsafe { p.add(i).write((n as u8) | 0x80) };
        n >>= 7;
        i += 1;
    }
    // SAFETY: as above; this is the last byte.
    unsafe { p.add(i).write(n as u8) };
    i + 1
}

/// Reads a LEB128 number written by [`write_varint`]; returns it and its
/// length.
///
/// # Safety
/// `p` must point at a varint written by `write_varint`.
#[inline]
unsafe fn read_varint(p: *const u8) -> (usize, usize) {
    // SAFETY: the caller's contract: every byte read up to the one without
    // the continuation bit belongs to the varint.
    let first = unsafe { *p };
    if first < 0x80 {
        return (first as usize, 1);
    }
    let mut n = (first & 0x7f) as usize;
    let mut shift = 7;
    let mut i = 1;
    loop {
        // SAFETY: as above.
        let byte = unsafe { *p.add(i) };
        n |= ((byte & 0x7f) as usize) << shift;
        i += 1;
        if byte < 0x80 {
            return (n, i);
        }
        shift += 7;
    }
}

fn layout(size: usize) -> Layout {
    match Layout::from_size_align(size, ALIGN) {
        Ok(layout) => layout,
        // Only for sizes near isize::MAX, which no key or value reaches
        // (they were received or built in memory first).
        Err(_) => std::process::abort(),
    }
}

impl Entry {
    /// A new entry, accessed now. A string is stored inline.
    pub fn new(key: &[u8], value: Value, expires_at: Option<u64>, now_ms: u64) -> Entry {
        let access = AccessTime::word_at(now_ms);
        let lfu = LfuCounter::fresh_word(now_ms);
        match value {
            Value::Str(bytes) => {
                Entry::build(key, expires_at, Payload::Inline(&bytes), access, lfu)
            }
            other => Entry::build(key, expires_at, Payload::Boxed(other), access, lfu),
        }
    }

    /// A new entry holding the string `value` out of line, accessed now:
    /// what Redis calls a raw string (see [`Entry::encoding`]), as the
    /// commands that build a string in place make it (PFADD, SETRANGE,
    /// SETBIT, BITOP...).
    pub fn new_raw_str(key: &[u8], value: Vec<u8>, expires_at: Option<u64>, now_ms: u64) -> Entry {
        let access = AccessTime::word_at(now_ms);
        let lfu = LfuCounter::fresh_word(now_ms);
        Entry::build(
            key,
            expires_at,
            Payload::Boxed(Value::Str(value)),
            access,
            lfu,
        )
    }

    /// A new entry holding the string `value` inline, accessed now.
    pub fn new_str(key: &[u8], value: &[u8], expires_at: Option<u64>, now_ms: u64) -> Entry {
        let access = AccessTime::word_at(now_ms);
        let lfu = LfuCounter::fresh_word(now_ms);
        Entry::build(key, expires_at, Payload::Inline(value), access, lfu)
    }

    fn build(
        key: &[u8],
        expires_at: Option<u64>,
        payload: Payload<'_>,
        access: u32,
        lfu: u32,
    ) -> Entry {
        let mut flags = 0;
        let mut at = BODY;
        if expires_at.is_some() {
            flags |= HAS_EXPIRY;
            at += 8;
        }
        let key_len_at = at;
        let key_at = at + length_bytes(key.len(), LONG_KEY);
        let end_of_key = key_at + key.len();
        let mut value_code = 0;
        let (value_at, size) = match &payload {
            Payload::Inline(bytes) => {
                value_code = bytes.len().min(LONG_VALUE);
                let value_at = end_of_key + length_bytes(bytes.len(), LONG_VALUE);
                (value_at, value_at + bytes.len())
            }
            Payload::Boxed(_) => {
                flags |= BOXED;
                let value_at = end_of_key.next_multiple_of(ALIGN);
                (value_at, value_at + mem::size_of::<Value>())
            }
        };
        let access = (access & (ACCESS_TIME_MASK | PENDING))
            | (u32::from(flags) << FLAGS_SHIFT)
            | ((key.len().min(LONG_KEY) as u32) << KEY_CODE_SHIFT);
        let lfu = (lfu & LFU_MASK) | ((value_code as u32) << VALUE_CODE_SHIFT);
        let layout = layout(size);
        // SAFETY: the layout has a non-zero size (at least BODY bytes).
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout);
        };
        let p = ptr.as_ptr();
        // SAFETY: every write below is within the `size` bytes computed
        // above for exactly these parts; the atomics' offsets (0, 4) and the
        // Value's offset (a multiple of 8) are aligned in an 8-aligned block.
        unsafe {
            p.add(ACCESS).cast::<u32>().write(access);
            p.add(LFU).cast::<u32>().write(lfu);
            if let Some(at) = expires_at {
                p.add(BODY).cast::<[u8; 8]>().write(at.to_le_bytes());
            }
            if key.len() >= LONG_KEY {
                write_varint(p.add(key_len_at), key.len());
            }
            ptr::copy_nonoverlapping(key.as_ptr(), p.add(key_at), key.len());
            match payload {
                Payload::Inline(bytes) => {
                    if bytes.len() >= LONG_VALUE {
                        write_varint(p.add(end_of_key), bytes.len());
                    }
                    ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(value_at), bytes.len());
                }
                Payload::Boxed(value) => p.add(value_at).cast::<Value>().write(value),
            }
        }
        Entry { ptr }
    }

    #[inline]
    fn flags(&self) -> u8 {
        ((self.last_access().word() >> FLAGS_SHIFT) & 3) as u8
    }

    /// The key's offset and length.
    #[inline]
    fn key_span(&self) -> (usize, usize) {
        let word = self.last_access().word();
        let start = if (word >> FLAGS_SHIFT) as u8 & HAS_EXPIRY != 0 {
            BODY + 8
        } else {
            BODY
        };
        let code = (word >> KEY_CODE_SHIFT) as usize;
        if code < LONG_KEY {
            (start, code)
        } else {
            // SAFETY: with the LONG code, the key's varint length is at
            // `start` (see `build`).
            let (len, n) = unsafe { read_varint(self.ptr.as_ptr().add(start)) };
            (start + n, len)
        }
    }

    #[inline]
    fn shape(&self) -> Shape {
        let flags = self.flags();
        let p = self.ptr.as_ptr();
        let (key_at, key_len) = self.key_span();
        let end_of_key = key_at + key_len;
        if flags & BOXED != 0 {
            let value_at = end_of_key.next_multiple_of(ALIGN);
            Shape {
                flags,
                value_at,
                value_len: 0,
                size: value_at + mem::size_of::<Value>(),
            }
        } else {
            let code = (self.lfu().word() >> VALUE_CODE_SHIFT) as usize;
            let (value_len, value_at) = if code < LONG_VALUE {
                (code, end_of_key)
            } else {
                // SAFETY: with the LONG code, the value's varint length
                // follows the key (see `build`).
                let (len, n) = unsafe { read_varint(p.add(end_of_key)) };
                (len, end_of_key + n)
            };
            Shape {
                flags,
                value_at,
                value_len,
                size: value_at + value_len,
            }
        }
    }

    /// Overwrites an inline string with `value` of the same length, in
    /// place, and sets the expiry and the access time as a fresh entry
    /// would have them; false (nothing changed) when the layout would
    /// differ: another length, a boxed value, an expiry where there was
    /// none or the reverse. Rewriting a counter or a fixed-size record
    /// then costs no allocation and no free.
    pub fn overwrite_str(&mut self, value: &[u8], expires_at: Option<u64>, now_ms: u64) -> bool {
        let shape = self.shape();
        if shape.flags & BOXED != 0
            || shape.value_len != value.len()
            || self.expires_at().is_some() != expires_at.is_some()
        {
            return false;
        }
        // SAFETY: an inline value has `value_len` bytes at `value_at`
        // (see `shape`), and `&mut self` is exclusive.
        unsafe {
            ptr::copy_nonoverlapping(
                value.as_ptr(),
                self.ptr.as_ptr().add(shape.value_at),
                value.len(),
            );
        }
        self.set_expires_at(expires_at);
        self.last_access().mark(now_ms);
        true
    }

    /// Starts loading the entry's first 64 bytes (its header and, for a
    /// small key, the key and a short value): a hint to the CPU. An entry
    /// is rarely aligned to a cache line, so those bytes usually span two:
    /// both are asked for now, rather than the second once the header
    /// has arrived (see [`Entry::prefetch_rest`]).
    #[inline]
    pub fn prefetch(&self) {
        let start = self.ptr.as_ptr().cast_const();
        super::prefetch(start);
        super::prefetch(start.wrapping_add(63));
    }

    /// Starts loading the entry's lines after the first (up to 4 KiB): a
    /// long inline value that a GET will copy or a SET overwrite.
    #[inline]
    pub fn prefetch_rest(&self) {
        const LINE: usize = 64;
        let size = self.shape().size.min(4096);
        let start = self.ptr.as_ptr().cast_const();
        let mut offset = LINE - (start as usize % LINE);
        while offset < size {
            super::prefetch(start.wrapping_add(offset));
            offset += LINE;
        }
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> &[u8] {
        let (at, len) = self.key_span();
        // SAFETY: the key's bytes are at `at` (see `build`); they live as
        // long as `self` and are never written after `build`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(at), len) }
    }

    /// The value, borrowed.
    #[inline]
    pub fn value(&self) -> ValueRef<'_> {
        let shape = self.shape();
        let p = self.ptr.as_ptr();
        if shape.flags & BOXED != 0 {
            // SAFETY: a BOXED allocation holds an initialized Value at
            // value_at, aligned, alive as long as `self`.
            let value = unsafe { &*p.add(shape.value_at).cast::<Value>() };
            value.view()
        } else {
            // SAFETY: the inline bytes are at value_at, value_len long.
            ValueRef::Str(unsafe {
                std::slice::from_raw_parts(p.add(shape.value_at), shape.value_len)
            })
        }
    }

    /// Whether the value is a string kept out of line: one changed in
    /// place or built by a command that makes raw strings.
    #[inline]
    pub fn is_raw_string(&self) -> bool {
        self.flags() & BOXED != 0 && matches!(self.value(), ValueRef::Str(_))
    }

    /// The encoding OBJECT ENCODING reports. A string kept out of line is
    /// `raw` whatever its length or content, as Redis's strings changed in
    /// place (APPEND, SETRANGE, SETBIT, BITFIELD, PFADD...: its
    /// `dbUnshareStringValue`) or created raw (`createObject`,
    /// `createHLLObject`: SETRANGE, SETBIT and BITFIELD on a new key,
    /// BITOP, PFADD, PFMERGE); a string written whole is encoded as
    /// Redis's `tryObjectEncoding` would (int, embstr, raw by content).
    pub fn encoding(&self) -> &'static str {
        if self.is_raw_string() {
            "raw"
        } else {
            self.value().encoding()
        }
    }

    /// The value for in-place change. An inline string is moved out of line
    /// first (once: it stays so until the key is written whole again).
    pub fn value_mut(&mut self) -> &mut Value {
        if self.flags() & BOXED == 0 {
            let bytes = match self.value() {
                ValueRef::Str(s) => s.to_vec(),
                _ => Vec::new(),
            };
            let boxed = Entry::build(
                self.key(),
                self.expires_at(),
                Payload::Boxed(Value::Str(bytes)),
                self.access_word(),
                self.lfu_word(),
            );
            // The old inline entry is dropped (freed) here.
            *self = boxed;
        }
        let shape = self.shape();
        // SAFETY: now BOXED: an initialized, aligned Value at value_at,
        // borrowed mutably through `&mut self`.
        unsafe { &mut *self.ptr.as_ptr().add(shape.value_at).cast::<Value>() }
    }

    /// Unix time in milliseconds at which the key expires; `None` if never.
    #[inline]
    pub fn expires_at(&self) -> Option<u64> {
        if self.flags() & HAS_EXPIRY == 0 {
            return None;
        }
        // SAFETY: with HAS_EXPIRY, 8 bytes of expiry follow the flags.
        let bytes = unsafe { self.ptr.as_ptr().add(BODY).cast::<[u8; 8]>().read() };
        Some(u64::from_le_bytes(bytes))
    }

    /// Sets or clears the expiry (in place if there was one and is one).
    pub fn set_expires_at(&mut self, expires_at: Option<u64>) {
        match (self.expires_at(), expires_at) {
            (Some(_), Some(at)) => {
                // SAFETY: HAS_EXPIRY: 8 bytes at BODY, and `&mut self` is
                // exclusive.
                unsafe {
                    self.ptr
                        .as_ptr()
                        .add(BODY)
                        .cast::<[u8; 8]>()
                        .write(at.to_le_bytes())
                };
            }
            (None, None) => {}
            _ => self.rebuild(expires_at),
        }
    }

    /// Moves everything into a new allocation with `expires_at`.
    fn rebuild(&mut self, expires_at: Option<u64>) {
        let shape = self.shape();
        let p = self.ptr.as_ptr();
        let fresh = if shape.flags & BOXED != 0 {
            // SAFETY: a BOXED allocation holds an initialized Value; it is
            // moved out here and the old allocation is freed below without
            // dropping it (`free_only`). `build` does not unwind (allocation
            // failure aborts), so the value is never dropped twice.
            let value = unsafe { p.add(shape.value_at).cast::<Value>().read() };
            Entry::build(
                self.key(),
                expires_at,
                Payload::Boxed(value),
                self.access_word(),
                self.lfu_word(),
            )
        } else {
            // SAFETY: the inline bytes (see `value`).
            let bytes =
                unsafe { std::slice::from_raw_parts(p.add(shape.value_at), shape.value_len) };
            Entry::build(
                self.key(),
                expires_at,
                Payload::Inline(bytes),
                self.access_word(),
                self.lfu_word(),
            )
        };
        let old = mem::replace(self, fresh);
        if shape.flags & BOXED != 0 {
            // SAFETY: its Value was moved into `fresh` above.
            unsafe { old.free_only() };
        } else {
            drop(old);
        }
    }

    /// Frees the allocation without dropping a boxed value in it.
    ///
    /// # Safety
    /// A boxed value must have been moved out before.
    unsafe fn free_only(self) {
        let size = self.shape().size;
        let this = ManuallyDrop::new(self);
        // SAFETY: allocated in `build` with this layout (the shape is
        // computed from the same lengths).
        unsafe { alloc::dealloc(this.ptr.as_ptr(), layout(size)) };
    }

    /// The value, taken out (an inline string is copied out).
    pub fn into_value(self) -> Value {
        let shape = self.shape();
        if shape.flags & BOXED != 0 {
            // SAFETY: moved out, then the allocation is freed without
            // dropping it.
            let value = unsafe { self.ptr.as_ptr().add(shape.value_at).cast::<Value>().read() };
            // SAFETY: the value was just moved out.
            unsafe { self.free_only() };
            value
        } else {
            match self.value() {
                ValueRef::Str(s) => Value::Str(s.to_vec()),
                other => other.to_owned(),
            }
        }
    }

    /// The access time and PENDING bits (without the layout bits): what
    /// a rebuilt allocation of the same key keeps.
    #[inline]
    fn access_word(&self) -> u32 {
        self.last_access().word() & (ACCESS_TIME_MASK | PENDING)
    }

    /// The LFU bits (without the layout bits).
    #[inline]
    fn lfu_word(&self) -> u32 {
        self.lfu().word() & LFU_MASK
    }

    /// When the key was last read or written.
    #[inline]
    pub fn last_access(&self) -> &AccessTime {
        // SAFETY: an aligned u32 initialized in `build`, only ever accessed
        // atomically afterwards; AccessTime is a transparent AtomicU32.
        unsafe {
            &*self
                .ptr
                .as_ptr()
                .add(ACCESS)
                .cast::<AtomicU32>()
                .cast::<AccessTime>()
        }
    }

    /// The LFU counter (and the S3-FIFO bits beside it).
    #[inline]
    pub fn lfu(&self) -> &LfuCounter {
        // SAFETY: as for `last_access`; LfuCounter is a transparent AtomicU32.
        unsafe {
            &*self
                .ptr
                .as_ptr()
                .add(LFU)
                .cast::<AtomicU32>()
                .cast::<LfuCounter>()
        }
    }

    /// As in Redis, a key is still there at its expiry millisecond and gone
    /// after it.
    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expires_at(), Some(at) if at < now_ms)
    }

    /// Records a read or write: the LRU time and the LFU counter.
    #[inline]
    pub fn mark_access(&self, now_ms: u64) {
        self.last_access().mark(now_ms);
        self.lfu().touch(now_ms);
    }

    /// Takes over the access history of the entry it replaces (an
    /// overwritten key keeps its LFU counter, as in Redis's `dbSetValue`),
    /// and its PENDING bit (the key's change is still waiting).
    pub fn inherit_access(&mut self, previous: &Entry) {
        self.lfu().set_bits(previous.lfu_word());
        self.set_pending(previous.is_pending());
    }

    /// Whether the key has a change waiting for write-behind (see
    /// `store::changes`).
    #[inline]
    pub(crate) fn is_pending(&self) -> bool {
        self.last_access().word() & PENDING != 0
    }

    /// Sets or clears the PENDING bit. Called under the shard lock only.
    #[inline]
    pub(crate) fn set_pending(&self, pending: bool) {
        let word = self.last_access().word();
        let updated = if pending {
            word | PENDING
        } else {
            word & !PENDING
        };
        if updated != word {
            self.last_access().store_word(updated);
        }
    }

    /// Dates the last access `idle_secs` seconds back (RESTORE IDLETIME,
    /// loading an RDB file's idle time), on the wrapping 24-bit clock as
    /// Redis's `objectSetLRUOrLFU`.
    pub fn set_idle_secs(&self, idle_secs: u64, now_ms: u64) {
        self.last_access().set_idle_secs(idle_secs, now_ms);
    }

    /// Sets the LFU counter (RESTORE FREQ, an RDB file's frequency), its
    /// decay time now, as Redis's `objectSetLRUOrLFU`.
    pub fn set_frequency(&self, counter: u8, now_ms: u64) {
        self.lfu().set_counter(counter, now_ms);
    }

    /// Seconds since the last read or write (OBJECT IDLETIME).
    pub fn idle_secs(&self, now_ms: u64) -> u64 {
        self.last_access().idle_secs(now_ms)
    }

    /// The decayed LFU counter (OBJECT FREQ).
    pub fn frequency(&self, now_ms: u64) -> u8 {
        self.lfu().frequency(now_ms)
    }

    /// Bytes of this entry's own allocation (key, metadata, inline value).
    pub fn allocation_size(&self) -> usize {
        self.shape().size
    }

    /// Approximate heap bytes this entry costs, key and value included (not
    /// the map's slot).
    pub fn heap_size(&self) -> usize {
        let shape = self.shape();
        if shape.flags & BOXED != 0 {
            // SAFETY: a BOXED allocation holds an initialized Value.
            let value = unsafe { &*self.ptr.as_ptr().add(shape.value_at).cast::<Value>() };
            shape.size + value.heap_size()
        } else {
            shape.size
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let shape = self.shape();
        let p = self.ptr.as_ptr();
        // SAFETY: a BOXED allocation holds an initialized Value, dropped
        // once here; then the allocation is freed with the layout `build`
        // used (same lengths, same shape).
        unsafe {
            if shape.flags & BOXED != 0 {
                ptr::drop_in_place(p.add(shape.value_at).cast::<Value>());
            }
            alloc::dealloc(p, layout(shape.size));
        }
    }
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        let payload = match self.value() {
            ValueRef::Str(s) if self.flags() & BOXED == 0 => Payload::Inline(s),
            other => Payload::Boxed(other.to_owned()),
        };
        Entry::build(
            self.key(),
            self.expires_at(),
            payload,
            self.access_word(),
            self.lfu_word(),
        )
    }
}

/// Entries are equal when their data is: access times are bookkeeping.
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
            && self.value() == other.value()
            && self.expires_at() == other.expires_at()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("value", &self.value())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::types::{ListValue, SetValue};

    fn list_of(items: &[&[u8]]) -> Value {
        let mut list = ListValue::new();
        for item in items {
            list.push(false, item);
        }
        Value::List(Box::new(list))
    }

    #[test]
    fn a_string_of_the_same_length_is_overwritten_in_place() {
        let mut entry = Entry::new_str(b"key", b"0123456789", Some(5_000), 1_000);
        let before = entry.ptr;
        assert!(entry.overwrite_str(b"abcdefghij", Some(9_000), 2_000));
        assert_eq!(entry.ptr, before, "same allocation");
        assert_eq!(entry.key(), b"key");
        assert!(matches!(entry.value(), ValueRef::Str(b"abcdefghij")));
        assert_eq!(entry.expires_at(), Some(9_000));
        // Another length, an expiry appearing or going, a boxed value: the
        // layout would change, so nothing is touched.
        assert!(!entry.overwrite_str(b"short", Some(9_000), 3_000));
        assert!(!entry.overwrite_str(b"0123456789", None, 3_000));
        let mut persistent = Entry::new_str(b"key", b"0123456789", None, 1_000);
        assert!(!persistent.overwrite_str(b"0123456789", Some(1), 3_000));
        persistent.value_mut();
        assert!(!persistent.overwrite_str(b"0123456789", None, 3_000));
        assert!(matches!(entry.value(), ValueRef::Str(b"abcdefghij")));
    }

    #[test]
    fn a_long_string_is_overwritten_in_place_too() {
        let long = vec![b'a'; 1000];
        let mut entry = Entry::new_str(b"key", &long, None, 1_000);
        let replacement = vec![b'b'; 1000];
        assert!(entry.overwrite_str(&replacement, None, 2_000));
        assert!(matches!(entry.value(), ValueRef::Str(v) if v == replacement.as_slice()));
        assert_eq!(entry.key(), b"key");
    }

    #[test]
    fn thin_pointer() {
        assert_eq!(mem::size_of::<Entry>(), 8);
        assert_eq!(mem::size_of::<Option<Entry>>(), 8);
    }

    #[test]
    fn small_string_fits_64_bytes() {
        let entry = Entry::new_str(b"key:000000000001", &[b'v'; 32], None, 0);
        assert_eq!(entry.allocation_size(), 56);
        let with_ttl = Entry::new_str(b"key:000000000001", &[b'v'; 32], Some(5), 0);
        assert_eq!(with_ttl.allocation_size(), 64);
        // Key lengths from 31 on, value lengths from 63 on, take a varint.
        let long = Entry::new_str(&[b'k'; 63], &[b'v'; 200], None, 0);
        assert_eq!(long.allocation_size(), 8 + 1 + 63 + 2 + 200);
        let key_30 = Entry::new_str(&[b'k'; 30], &[b'v'; 62], None, 0);
        assert_eq!(key_30.allocation_size(), 8 + 30 + 62);
        let key_31 = Entry::new_str(&[b'k'; 31], &[b'v'; 62], None, 0);
        assert_eq!(key_31.allocation_size(), 8 + 1 + 31 + 62);
    }

    #[test]
    fn pending_bit_survives_rebuilds_and_leaves_the_layout_alone() {
        for klen in [0, 30, 31, 32, 200] {
            let key = vec![b'k'; klen];
            let mut entry = Entry::new_str(&key, b"value", None, 7_000);
            assert!(!entry.is_pending());
            entry.set_pending(true);
            assert!(entry.is_pending());
            assert_eq!(entry.key(), &key[..]);
            entry.set_expires_at(Some(99));
            assert!(entry.is_pending());
            assert_eq!(entry.expires_at(), Some(99));
            entry.value_mut();
            assert!(entry.is_pending());
            assert_eq!(entry.value(), ValueRef::Str(b"value"));
            entry.mark_access(123_000);
            assert!(entry.is_pending());
            let mut fresh = Entry::new_str(&key, b"other", None, 0);
            fresh.inherit_access(&entry);
            assert!(fresh.is_pending());
            entry.set_pending(false);
            assert!(!entry.is_pending());
            assert_eq!(entry.key(), &key[..]);
            assert_eq!(entry.expires_at(), Some(99));
            assert_eq!(entry.idle_secs(123_000), 0);
        }
    }

    #[test]
    fn inline_round_trip() {
        for (klen, vlen) in [
            (0, 0),
            (1, 1),
            (30, 1),
            (31, 1),
            (32, 1),
            (62, 62),
            (63, 63),
            (62, 64),
            (127, 128),
            (128, 127),
            (300, 20_000),
            (5, 70_000),
        ] {
            let key: Vec<u8> = (0..klen).map(|i| i as u8).collect();
            let value: Vec<u8> = (0..vlen).map(|i| (i * 7) as u8).collect();
            for expiry in [None, Some(0), Some(u64::MAX), Some(1_700_000_000_123)] {
                let entry = Entry::new(&key, Value::Str(value.clone()), expiry, 1000);
                assert_eq!(entry.key(), &key[..]);
                assert_eq!(entry.value(), ValueRef::Str(&value));
                assert_eq!(entry.expires_at(), expiry);
                let copy = entry.clone();
                assert_eq!(copy, entry);
                assert_eq!(entry.into_value(), Value::Str(value.clone()));
            }
        }
    }

    #[test]
    fn varints() {
        for n in [
            0usize,
            1,
            127,
            128,
            255,
            16_383,
            16_384,
            1 << 30,
            usize::MAX,
        ] {
            let mut buf = [0u8; 16];
            // SAFETY: 16 bytes hold any usize varint (at most 10).
            let written = unsafe { write_varint(buf.as_mut_ptr(), n) };
            assert_eq!(written, varint_len(n));
            // SAFETY: just written.
            assert_eq!(unsafe { read_varint(buf.as_ptr()) }, (n, written));
        }
    }

    #[test]
    fn boxed_values_and_expiry_changes() {
        let mut entry = Entry::new(b"list", list_of(&[b"a", b"b"]), None, 0);
        assert_eq!(entry.value().type_name(), "list");
        entry.set_expires_at(Some(42));
        assert_eq!(entry.expires_at(), Some(42));
        entry.set_expires_at(Some(43));
        assert_eq!(entry.expires_at(), Some(43));
        assert_eq!(entry.key(), b"list");
        entry.set_expires_at(None);
        assert_eq!(entry.expires_at(), None);
        assert_eq!(entry.value().to_owned(), list_of(&[b"a", b"b"]));
        let clone = entry.clone();
        assert_eq!(clone.into_value(), list_of(&[b"a", b"b"]));
        let mut set = SetValue::new();
        set.insert(b"m");
        let entry = Entry::new(b"s", Value::Set(Box::new(set.clone())), Some(7), 0);
        assert_eq!(entry.into_value(), Value::Set(Box::new(set)));
    }

    #[test]
    fn in_place_change_moves_a_string_out_of_line_and_keeps_metadata() {
        let minute = 60_000;
        let mut entry = Entry::new_str(b"k", b"abc", Some(99), 10 * minute);
        for _ in 0..100 {
            entry.mark_access(10 * minute);
        }
        let freq = entry.frequency(10 * minute);
        let inline_size = entry.allocation_size();
        match entry.value_mut() {
            Value::Str(s) => s.extend_from_slice(b"def"),
            _ => panic!("not a string"),
        }
        assert_eq!(entry.value(), ValueRef::Str(b"abcdef"));
        assert_eq!(entry.expires_at(), Some(99));
        assert_eq!(entry.key(), b"k");
        assert_eq!(entry.frequency(10 * minute), freq);
        assert!(entry.allocation_size() > inline_size);
        entry.set_expires_at(None);
        assert_eq!(entry.value(), ValueRef::Str(b"abcdef"));
        assert_eq!(entry.into_value(), Value::Str(b"abcdef".to_vec()));
    }

    #[test]
    fn access_words_are_aligned_atomics() {
        let entry = Entry::new_str(b"k", b"v", None, 5_000);
        assert_eq!(entry.idle_secs(7_000), 2);
        entry.mark_access(9_000);
        assert_eq!(entry.idle_secs(9_000), 0);
        assert_eq!(entry.lfu().fifo_freq(), 1);
        let mut other = Entry::new_str(b"k", b"w", None, 9_000);
        other.inherit_access(&entry);
        assert_eq!(other.lfu().fifo_freq(), 1);
        // Access bookkeeping keeps the layout bits beside it.
        let long_key = vec![b'x'; 40];
        let entry = Entry::new_str(&long_key, &[b'y'; 50], Some(77), 5_000);
        for t in 0..300u64 {
            entry.mark_access(t * 61_000);
            entry.lfu().set_fifo_freq((t % 4) as u8);
        }
        let mut copy = Entry::new_str(b"z", b"", None, 0);
        copy.inherit_access(&entry);
        assert_eq!(entry.key(), &long_key[..]);
        assert_eq!(entry.value(), ValueRef::Str(&[b'y'; 50]));
        assert_eq!(entry.expires_at(), Some(77));
        assert_eq!(copy.key(), b"z");
        assert_eq!(copy.value(), ValueRef::Str(b""));
        // 24-bit seconds wrap as Redis's LRU clock does.
        let old = Entry::new_str(b"k", b"v", None, 0);
        assert_eq!(old.idle_secs((1 << 24) * 1000 + 5_000), 5);
    }

    // ---- Property tests: round trips across the length boundaries ----

    use crate::store::types::{HashValue, ZSetValue};
    use proptest::prelude::*;

    /// Lengths at and around every boundary of the encoding: the 5-bit key
    /// code (30, 31, 32), the 6-bit value code (62, 63, 64), one- to
    /// two-byte varints (127, 128), two to
    /// three bytes (2^14) and the 8-byte alignment of a boxed value.
    fn boundary_len() -> impl Strategy<Value = usize> {
        prop_oneof![
            4 => prop::sample::select(vec![
                0usize, 1, 7, 8, 9, 15, 16, 17, 30, 31, 32, 61, 62, 63, 64, 65, 126, 127,
                128, 129,
                16_383, 16_384, 16_385,
            ]),
            2 => 0usize..300,
        ]
    }

    fn bytes_of_len() -> impl Strategy<Value = Vec<u8>> {
        (boundary_len(), any::<u8>()).prop_map(|(len, seed)| {
            (0..len)
                .map(|i| seed.wrapping_add((i * 31 % 251) as u8))
                .collect()
        })
    }

    fn expiry() -> impl Strategy<Value = Option<u64>> {
        prop_oneof![
            2 => Just(None),
            1 => Just(Some(0)),
            1 => Just(Some(u64::MAX)),
            1 => Just(Some(1 << 56)),
            2 => any::<u64>().prop_map(Some),
        ]
    }

    fn small_items() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..5), 0..6)
    }

    /// A value of any type; strings across the length boundaries.
    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => bytes_of_len().prop_map(Value::Str),
            1 => small_items().prop_map(|items| {
                let mut list = ListValue::new();
                for item in &items {
                    list.push(false, item);
                }
                Value::List(Box::new(list))
            }),
            1 => small_items().prop_map(|items| {
                let mut hash = HashValue::new();
                for item in &items {
                    hash.set(item, &item.repeat(3));
                }
                Value::Hash(Box::new(hash))
            }),
            1 => small_items().prop_map(|items| {
                let mut set = SetValue::new();
                for item in &items {
                    set.insert(item);
                }
                Value::Set(Box::new(set))
            }),
            1 => small_items().prop_map(|items| {
                let mut zset = ZSetValue::new();
                for (i, item) in items.iter().enumerate() {
                    zset.insert(item, i as f64 * 1.5);
                }
                Value::ZSet(Box::new(zset))
            }),
        ]
    }

    #[derive(Debug, Clone)]
    enum EntryOp {
        SetExpiry(Option<u64>),
        /// Through `value_mut`: append to a string, push to a list, add
        /// to a set...
        MutateInPlace(Vec<u8>),
        /// The string made longer or shorter in place (crossing the
        /// inline length boundaries is irrelevant once out of line, but
        /// an empty string must survive).
        TruncateInPlace(usize),
        /// Replaced whole, as `Db::insert`/`update_str` do.
        Replace(Value),
        ReplaceStr(Vec<u8>),
        Access(u64),
        SetFifo(u8),
        CloneAndCompare,
    }

    fn entry_op() -> impl Strategy<Value = EntryOp> {
        prop_oneof![
            3 => expiry().prop_map(EntryOp::SetExpiry),
            3 => prop::collection::vec(any::<u8>(), 0..70).prop_map(EntryOp::MutateInPlace),
            1 => (0usize..100).prop_map(EntryOp::TruncateInPlace),
            2 => any_value().prop_map(EntryOp::Replace),
            2 => bytes_of_len().prop_map(EntryOp::ReplaceStr),
            2 => any::<u64>().prop_map(|t| EntryOp::Access(t % (1 << 45))),
            1 => (0u8..5).prop_map(EntryOp::SetFifo),
            1 => Just(EntryOp::CloneAndCompare),
        ]
    }

    fn mutate_model(value: &mut Value, extra: &[u8]) {
        match value {
            Value::Str(s) => s.extend_from_slice(extra),
            Value::List(l) => l.push(true, extra),
            Value::Hash(h) => {
                h.set(extra, b"x");
            }
            Value::Set(s) => {
                s.insert(extra);
            }
            Value::ZSet(z) => {
                z.insert(extra, -1.0);
            }
            Value::Stream(s) => {
                let _ = s.add(crate::store::types::AddId::Auto, &[extra, b"x"], 0);
            }
        }
    }

    fn varint_bytes(len: usize, long: usize) -> usize {
        if len < long {
            0
        } else {
            varint_len(len)
        }
    }

    /// What `allocation_size` must be: the layout of the module docs,
    /// computed independently.
    fn expected_size(key: &[u8], expiry: Option<u64>, inline: Option<usize>) -> usize {
        let head =
            8 + if expiry.is_some() { 8 } else { 0 } + varint_bytes(key.len(), 31) + key.len();
        match inline {
            Some(len) => head + varint_bytes(len, 63) + len,
            None => head.div_ceil(8) * 8 + mem::size_of::<Value>(),
        }
    }

    fn check(entry: &Entry, key: &[u8], value: &Value, expiry: Option<u64>, inline: bool) {
        assert_eq!(entry.key(), key);
        assert_eq!(entry.value(), value.view());
        assert_eq!(entry.expires_at(), expiry);
        let inline_len = match (inline, value) {
            (true, Value::Str(s)) => Some(s.len()),
            _ => None,
        };
        assert_eq!(
            entry.allocation_size(),
            expected_size(key, expiry, inline_len)
        );
        assert_eq!(entry.flags() & BOXED == 0, inline);
    }

    #[test]
    fn boxed_values_fit_the_alignment() {
        assert!(mem::align_of::<Value>() <= ALIGN);
        assert_eq!(mem::size_of::<Value>(), 24);
    }

    #[test]
    fn huge_lengths_round_trip() {
        // Three- and four-byte varints (2^14, 2^21) on both sides of the
        // boundary, as key and as value, with and without expiry.
        for len in [
            (1 << 14) - 1,
            1 << 14,
            (1 << 21) - 1,
            1 << 21,
            (1 << 21) + 1,
        ] {
            let big: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            for expiry in [None, Some(12_345)] {
                let mut entry = Entry::new_str(&big, b"v", expiry, 0);
                check(&entry, &big, &Value::Str(b"v".to_vec()), expiry, true);
                entry.set_expires_at(expiry.xor(Some(9)));
                check(
                    &entry,
                    &big,
                    &Value::Str(b"v".to_vec()),
                    expiry.xor(Some(9)),
                    true,
                );
                let entry = Entry::new_str(b"k", &big, expiry, 0);
                check(&entry, b"k", &Value::Str(big.clone()), expiry, true);
                assert_eq!(entry.into_value(), Value::Str(big.clone()));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 6 } else { 256 },
            ..ProptestConfig::default()
        })]

        /// An entry against a plain (key, value, expiry) model through
        /// random expiry changes, in-place changes, whole replacements,
        /// access bookkeeping and clones; the entry is consumed at the end
        /// (`into_value`) or dropped, alternately (leaks and double drops
        /// show under Miri).
        #[test]
        fn entry_matches_a_model(
            key in bytes_of_len(),
            value in any_value(),
            expires in expiry(),
            ops in prop::collection::vec(entry_op(), 0..24),
            consume in any::<bool>(),
        ) {
            let mut model = value.clone();
            let mut model_expiry = expires;
            let mut inline = matches!(value, Value::Str(_));
            let mut entry = Entry::new(&key, value, expires, 1_000);
            check(&entry, &key, &model, model_expiry, inline);
            let mut fifo = entry.lfu().fifo_freq();
            for op in ops {
                match op {
                    EntryOp::SetExpiry(at) => {
                        entry.set_expires_at(at);
                        model_expiry = at;
                    }
                    EntryOp::MutateInPlace(extra) => {
                        mutate_model(entry.value_mut(), &extra);
                        mutate_model(&mut model, &extra);
                        inline = false;
                    }
                    EntryOp::TruncateInPlace(len) => {
                        if let Value::Str(s) = entry.value_mut() {
                            s.truncate(len);
                        }
                        if let Value::Str(s) = &mut model {
                            s.truncate(len);
                        }
                        inline = false;
                    }
                    EntryOp::Replace(value) => {
                        inline = matches!(value, Value::Str(_));
                        model = value.clone();
                        let mut fresh = Entry::new(&key, value, model_expiry, 2_000);
                        fresh.inherit_access(&entry);
                        let old = mem::replace(&mut entry, fresh);
                        drop(old);
                    }
                    EntryOp::ReplaceStr(bytes) => {
                        let mut fresh = Entry::new_str(&key, &bytes, model_expiry, 2_000);
                        fresh.inherit_access(&entry);
                        let old = mem::replace(&mut entry, fresh);
                        // The old entry handed back whole, as `Db::insert` does.
                        prop_assert_eq!(old.into_value(), model.clone());
                        model = Value::Str(bytes);
                        inline = true;
                    }
                    EntryOp::Access(now) => {
                        entry.mark_access(now);
                        fifo = (fifo + 1).min(3);
                        prop_assert_eq!(entry.idle_secs(now), 0);
                    }
                    EntryOp::SetFifo(f) => {
                        entry.lfu().set_fifo_freq(f);
                        fifo = f.min(3);
                    }
                    EntryOp::CloneAndCompare => {
                        let copy = entry.clone();
                        prop_assert_eq!(&copy, &entry);
                        check(&copy, &key, &model, model_expiry, inline);
                        prop_assert_eq!(copy.into_value(), model.clone());
                    }
                }
                check(&entry, &key, &model, model_expiry, inline);
                // The access bookkeeping survives every rebuild and never
                // touches the layout bits.
                prop_assert_eq!(entry.lfu().fifo_freq(), fifo);
                prop_assert_eq!(
                    entry.is_expired(5_000),
                    matches!(model_expiry, Some(at) if at < 5_000)
                );
            }
            if consume {
                prop_assert_eq!(entry.into_value(), model);
            } else {
                drop(entry);
            }
        }
    }
}
