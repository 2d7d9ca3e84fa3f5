//! Memory accounting: how many bytes the process really holds, as Redis's
//! `used_memory` reports what its allocator handed out.
//!
//! The exact figure needs [`CountingAllocator`] installed as the program's
//! global allocator (the `larder-server` binary does, around mimalloc). It
//! wraps any [`GlobalAlloc`] and counts the bytes allocated and not yet freed.
//! To stay cheap on many cores, each thread keeps its own running delta and
//! adds it to one global atomic only once it exceeds [`FLUSH_BYTES`] either
//! way; the global figure is therefore exact to within `FLUSH_BYTES` per
//! thread (a thread that ends with an unflushed delta leaves at most that much
//! behind).
//!
//! A library user who does not install it gets an estimate instead:
//! [`used_memory`] falls back to the process's resident set size (RSS) from
//! `/proc/self/statm`. RSS is an upper bound (it includes freed pages the
//! allocator kept), so with `maxmemory` set and no counting allocator,
//! eviction keeps evicting until RSS itself drops, which it rarely does:
//! embed with the counting allocator when you use `maxmemory`.
//!
//! ```
//! use larder::memory::CountingAllocator;
//! use std::alloc::System;
//!
//! // In a program (not inside a function):
//! // #[global_allocator]
//! // static GLOBAL: CountingAllocator<System> = CountingAllocator::new(System, "libc");
//! let _counting: CountingAllocator<System> = CountingAllocator::new(System, "libc");
//! let used = larder::memory::used_memory();
//! assert!(used > 0 || !larder::memory::is_counting());
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicUsize, Ordering};

/// A thread adds its local delta to the global counter once it reaches this
/// many bytes (either way).
pub const FLUSH_BYTES: i64 = 64 * 1024;

static ALLOCATED: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);
static NAME_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static NAME_LEN: AtomicUsize = AtomicUsize::new(0);
/// The highest RSS seen when not counting (the peak of the estimate).
static RSS_PEAK: AtomicI64 = AtomicI64::new(0);

thread_local! {
    // Const-initialised and without a destructor: reading it never
    // allocates, so it is safe to use from inside the allocator.
    static LOCAL_DELTA: Cell<i64> = const { Cell::new(0) };
}

/// A global allocator that counts what it hands out, around any other
/// allocator `A`. Install it with `#[global_allocator]`; the counters are
/// process-wide (there is one global allocator per program).
///
/// ```
/// use larder::memory::CountingAllocator;
/// use std::alloc::System;
///
/// static _GLOBAL: CountingAllocator<System> = CountingAllocator::new(System, "libc");
/// ```
pub struct CountingAllocator<A> {
    inner: A,
    name: &'static str,
    size_class: Option<fn(usize) -> usize>,
}

impl<A> CountingAllocator<A> {
    /// Wraps `inner`; `name` is what INFO's `mem_allocator` reports. Counts
    /// the sizes asked for.
    pub const fn new(inner: A, name: &'static str) -> Self {
        CountingAllocator {
            inner,
            name,
            size_class: None,
        }
    }

    /// Like [`CountingAllocator::new`], but counts for each allocation what
    /// `size_class` says `inner` really reserves for that size (its size
    /// class: mimalloc's `mi_good_size`, jemalloc's `nallocx`), as Redis
    /// counts jemalloc's usable sizes: a 200-byte value costs 224 bytes.
    /// `size_class` must not allocate and must depend on the size only.
    pub const fn with_size_classes(
        inner: A,
        name: &'static str,
        size_class: fn(usize) -> usize,
    ) -> Self {
        CountingAllocator {
            inner,
            name,
            size_class: Some(size_class),
        }
    }

    #[inline]
    fn cost(&self, size: usize) -> i64 {
        match self.size_class {
            Some(class) => class(size) as i64,
            None => size as i64,
        }
    }

    #[inline]
    fn record(&self, delta: i64) {
        let flushed = LOCAL_DELTA.try_with(|local| {
            let pending = local.get() + delta;
            if pending.abs() < FLUSH_BYTES {
                local.set(pending);
                None
            } else {
                local.set(0);
                Some(pending)
            }
        });
        match flushed {
            Ok(None) => {}
            Ok(Some(pending)) => self.flush(pending),
            // Thread-local storage already gone (thread exit): count directly.
            Err(_) => self.flush(delta),
        }
    }

    #[cold]
    fn flush(&self, pending: i64) {
        let now = ALLOCATED.fetch_add(pending, Ordering::Relaxed) + pending;
        PEAK.fetch_max(now, Ordering::Relaxed);
        if !COUNTING.load(Ordering::Relaxed) {
            NAME_LEN.store(self.name.len(), Ordering::Relaxed);
            NAME_PTR.store(self.name.as_ptr() as *mut u8, Ordering::Release);
            COUNTING.store(true, Ordering::Release);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `inner`; the bookkeeping
// around it neither allocates nor touches the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAllocator<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = self.inner.alloc(layout);
        if !ptr.is_null() {
            self.record(self.cost(layout.size()));
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = self.inner.alloc_zeroed(layout);
        if !ptr.is_null() {
            self.record(self.cost(layout.size()));
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.inner.dealloc(ptr, layout);
        self.record(-self.cost(layout.size()));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = self.inner.realloc(ptr, layout, new_size);
        if !new.is_null() {
            self.record(self.cost(new_size) - self.cost(layout.size()));
        }
        new
    }
}

/// Adds this thread's unflushed delta to the global count at once. A thread
/// that just freed much (eviction) calls it: otherwise the others would
/// see up to [`FLUSH_BYTES`] more in use than there is, and evict for it.
pub fn publish_thread_delta() {
    if let Ok(pending) = LOCAL_DELTA.try_with(|local| local.replace(0)) {
        if pending != 0 {
            let now = ALLOCATED.fetch_add(pending, Ordering::Relaxed) + pending;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }
}

/// Whether a [`CountingAllocator`] is the global allocator (it announces
/// itself at its first flush, i.e. after the first 64 KiB).
pub fn is_counting() -> bool {
    COUNTING.load(Ordering::Acquire)
}

/// The name INFO's `mem_allocator` reports: the counting allocator's, or
/// "unknown" when it is not installed.
pub fn allocator_name() -> &'static str {
    if !is_counting() {
        return "unknown";
    }
    let ptr = NAME_PTR.load(Ordering::Acquire);
    let len = NAME_LEN.load(Ordering::Relaxed);
    if ptr.is_null() {
        return "unknown";
    }
    // SAFETY: ptr and len come from a `&'static str` stored by `flush`
    // before `COUNTING` was released (every instance stores its own name,
    // and a program has a single global allocator).
    unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, len)) }
}

/// Bytes allocated and not freed, as the counting allocator sees them
/// (including this thread's unflushed delta); the RSS when it is not
/// installed (see the module docs).
pub fn used_memory() -> u64 {
    if is_counting() {
        let local = LOCAL_DELTA.try_with(Cell::get).unwrap_or(0);
        (ALLOCATED.load(Ordering::Relaxed) + local).max(0) as u64
    } else {
        let rss = rss_bytes();
        RSS_PEAK.fetch_max(rss as i64, Ordering::Relaxed);
        rss
    }
}

/// The highest [`used_memory`] seen.
pub fn peak_memory() -> u64 {
    let used = used_memory();
    let peak = if is_counting() {
        PEAK.load(Ordering::Relaxed).max(0) as u64
    } else {
        RSS_PEAK.load(Ordering::Relaxed).max(0) as u64
    };
    peak.max(used)
}

/// Bytes held by the connections' query (read) buffers, as their
/// connections last reported them (once per read batch).
static QUERY_BUFFERS: AtomicI64 = AtomicI64::new(0);

/// A connection's query buffer grew (or shrank) by `delta` bytes.
pub fn query_buffers_changed(delta: i64) {
    QUERY_BUFFERS.fetch_add(delta, Ordering::Relaxed);
}

/// Bytes the connections' query buffers hold (their capacity): part of
/// [`used_memory`] (allocated through the same allocator), reported
/// within MEMORY STATS `clients.normal`.
pub fn query_buffer_bytes() -> u64 {
    QUERY_BUFFERS.load(Ordering::Relaxed).max(0) as u64
}

/// [`used_memory`] when the server finished starting (MEMORY STATS's
/// `startup.allocated`); 0 until [`mark_startup`] is called.
static STARTUP: AtomicI64 = AtomicI64::new(0);

/// Records the current [`used_memory`] as the startup baseline (MEMORY
/// STATS's `startup.allocated`). The `larder-server` binary calls it once
/// it listens; an embedding program may call it when its server is up.
pub fn mark_startup() {
    STARTUP.store(used_memory() as i64, Ordering::Relaxed);
}

/// The baseline recorded by [`mark_startup`] (0 if it was not called).
pub fn startup_allocated() -> u64 {
    STARTUP.load(Ordering::Relaxed).max(0) as u64
}

/// What the program's allocator can do beyond allocating, for MEMORY
/// PURGE, MEMORY MALLOC-STATS and MEMORY STATS. The library does not know
/// the allocator: the program that installs it registers these with
/// [`set_allocator_hooks`] (`larder-server` does, for mimalloc).
#[derive(Debug, Clone, Copy)]
pub struct AllocatorHooks {
    /// Returns freed memory to the operating system now.
    pub purge: fn(),
    /// The allocator's own statistics report, as text.
    pub stats: fn() -> String,
    /// Bytes the allocator has committed (mapped and in use or cached):
    /// Redis's `allocator.active`/`allocator.resident`.
    pub committed: fn() -> u64,
}

static HOOKS: std::sync::OnceLock<AllocatorHooks> = std::sync::OnceLock::new();

/// Registers the allocator's hooks (the first registration wins).
pub fn set_allocator_hooks(hooks: AllocatorHooks) {
    let _ = HOOKS.set(hooks);
}

/// The registered allocator hooks, if any.
pub fn allocator_hooks() -> Option<&'static AllocatorHooks> {
    HOOKS.get()
}

/// Freed memory the allocator may keep (committed, not in use) beyond what
/// it kept after the last purge, before [`purge_if_retaining`] hands it
/// back to the OS.
const RETAINED_BEFORE_PURGE: u64 = 32 * 1024 * 1024;

/// What the allocator still kept right after the last background purge
/// (what it cannot give back: fragmentation), so that it is not purged
/// again every second for nothing.
static RETAINED_AFTER_PURGE: AtomicI64 = AtomicI64::new(0);

/// Hands freed memory back to the OS, as MEMORY PURGE does, once the
/// allocator keeps [`RETAINED_BEFORE_PURGE`] more of it than after the last
/// purge: what a big transient value (a reply or query buffer, a replaced
/// value) leaves behind goes back without waiting for traffic to make the
/// allocator tidy up. A background thread calls it about once a second;
/// it does nothing unless the program registered its allocator's hooks.
/// Returns whether it purged.
pub fn purge_if_retaining() -> bool {
    let Some(hooks) = allocator_hooks() else {
        return false;
    };
    if !is_counting() {
        return false;
    }
    let retained = (hooks.committed)().saturating_sub(used_memory());
    let baseline = RETAINED_AFTER_PURGE.load(Ordering::Relaxed).max(0) as u64;
    if !should_purge(retained, baseline) {
        // Less is kept than after the last purge: lower the baseline.
        if retained < baseline {
            RETAINED_AFTER_PURGE.store(retained as i64, Ordering::Relaxed);
        }
        return false;
    }
    (hooks.purge)();
    let after = (hooks.committed)().saturating_sub(used_memory());
    RETAINED_AFTER_PURGE.store(after as i64, Ordering::Relaxed);
    true
}

fn should_purge(retained: u64, retained_after_last_purge: u64) -> bool {
    retained.saturating_sub(retained_after_last_purge) > RETAINED_BEFORE_PURGE
}

/// Resident set size of this process, from /proc (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * page_size())
}

fn page_size() -> u64 {
    4096
}

#[cfg(test)]
mod tests {

    #[test]
    fn purges_only_what_grew_past_the_last_purge() {
        let mb = 1024 * 1024;
        assert!(!should_purge(10 * mb, 0));
        assert!(should_purge(40 * mb, 0));
        // 40 MB kept even after a purge (fragmentation): not again...
        assert!(!should_purge(40 * mb, 40 * mb));
        assert!(!should_purge(70 * mb, 40 * mb));
        // ...until another 32 MB is kept.
        assert!(should_purge(80 * mb, 40 * mb));
    }

    use super::*;

    #[test]
    fn counts_through_a_local_instance() {
        let counting = CountingAllocator::new(std::alloc::System, "system");
        let layout = Layout::from_size_align(FLUSH_BYTES as usize * 2, 8).unwrap();
        let before = ALLOCATED.load(Ordering::Relaxed);
        unsafe {
            let ptr = counting.alloc(layout);
            assert!(!ptr.is_null());
            let after_alloc = ALLOCATED.load(Ordering::Relaxed);
            assert!(after_alloc - before >= FLUSH_BYTES * 2 - FLUSH_BYTES);
            counting.dealloc(ptr, layout);
        }
        let after = ALLOCATED.load(Ordering::Relaxed);
        assert!((after - before).abs() < FLUSH_BYTES * 2);
        assert_eq!(allocator_name(), "system");
        assert!(PEAK.load(Ordering::Relaxed) >= FLUSH_BYTES);
    }
}
