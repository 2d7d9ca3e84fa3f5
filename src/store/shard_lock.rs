//! The locks the shards sit behind: exclusive for commands that change a
//! shard, shared for reads, and a read writes no cache line that another
//! core's reads write.
//!
//! A mutex (or a reader-writer lock with one reader count) is a word every
//! acquisition writes, so two cores reading keys of the same shards pass
//! that word's cache line back and forth: on the project's Intel VM that
//! cost two threads reading different keys about a third of the second
//! thread (`cargo bench --bench store`, the `2_thread` rows against
//! `2_thread_own_shards`). Here each reading thread announces itself in a
//! counter of its own row (see [`ReaderCounts`]); a writer takes the
//! shard's mutex, raises its `writing` flag, and waits for that shard's
//! counter in every row to drain. Readers are brief (a lookup and a copy)
//! and never wait for anything while reading, so the wait is short. This is
//! the "distributed reader indicator" of BRAVO and of Linux's per-CPU
//! rwsem, with a row per thread slot rather than per CPU.

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crossbeam::utils::CachePadded;
use parking_lot::lock_api::RawMutex as _;

/// One shard's writer side and value, on cache lines of its own.
struct Slot<T> {
    /// Held by the one writer; readers that find `writing` raised wait on it.
    writer: parking_lot::RawMutex,
    /// Raised by the writer once it holds `writer`, before it waits for the
    /// readers to drain; a reader that sees it backs off.
    writing: AtomicBool,
    value: UnsafeCell<T>,
}

/// Counters per shard in a row per thread slot. A thread's row is written
/// by that thread alone (unless more threads read than there are rows,
/// when some share one, which is still correct), so its lines stay in its
/// core's cache. Rows, not a padded counter per shard and slot, so that
/// a writer's check of one shard's counters in every row reads lines it
/// mostly has cached: 4 bytes a counter, 1 KiB a row at 256 shards.
struct ReaderCounts {
    counters: Box<[CachePadded<[AtomicU32; COUNTERS_PER_CHUNK]>]>,
    chunks_per_row: usize,
    rows: usize,
}

/// Counters in one `CachePadded` chunk (128 bytes on x86-64).
const COUNTERS_PER_CHUNK: usize = 32;

impl ReaderCounts {
    fn new(shards: usize, rows: usize) -> Self {
        let chunks_per_row = shards.div_ceil(COUNTERS_PER_CHUNK);
        ReaderCounts {
            counters: (0..rows * chunks_per_row)
                .map(|_| CachePadded::new(Default::default()))
                .collect(),
            chunks_per_row,
            rows,
        }
    }

    #[inline]
    fn counter(&self, row: usize, shard: usize) -> &AtomicU32 {
        &self.counters[row * self.chunks_per_row + shard / COUNTERS_PER_CHUNK]
            [shard % COUNTERS_PER_CHUNK]
    }
}

/// The locks of a store's shards, each around a `T` (a [`super::Shard`]):
/// [`LockRef::lock`] for `&mut T`, [`LockRef::read`] for `&T` shared with
/// other readers.
pub struct ShardLocks<T> {
    slots: Box<[CachePadded<Slot<T>>]>,
    readers: ReaderCounts,
}

// SAFETY: a writer has `&mut T` alone (the mutex, and `writing` keeping
// readers out); readers share `&T`, so `T` must be `Sync` to be read from
// several threads and `Send` to be changed from any of them.
unsafe impl<T: Send> Send for ShardLocks<T> {}
unsafe impl<T: Send + Sync> Sync for ShardLocks<T> {}

impl<T> ShardLocks<T> {
    /// A lock around each value. Rows of reader counters: two per core
    /// (reading threads are the runtime's workers and a few others), at
    /// least 8.
    pub fn new(values: impl IntoIterator<Item = T>) -> Self {
        let slots: Box<[CachePadded<Slot<T>>]> = values
            .into_iter()
            .map(|value| {
                CachePadded::new(Slot {
                    writer: parking_lot::RawMutex::INIT,
                    writing: AtomicBool::new(false),
                    value: UnsafeCell::new(value),
                })
            })
            .collect();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let readers = ReaderCounts::new(slots.len(), (2 * cores).clamp(8, 64));
        ShardLocks { slots, readers }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The lock of shard `index`.
    #[inline]
    pub fn get(&self, index: usize) -> LockRef<'_, T> {
        LockRef {
            slot: &self.slots[index],
            readers: &self.readers,
            index,
        }
    }
}

/// One shard's lock (see [`ShardLocks::get`]).
pub struct LockRef<'a, T> {
    slot: &'a Slot<T>,
    readers: &'a ReaderCounts,
    index: usize,
}

// Not derived: that would require `T: Copy`.
impl<T> Clone for LockRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for LockRef<'_, T> {}

impl<'a, T> LockRef<'a, T> {
    /// Exclusive access, waiting for the writer before and for the readers
    /// inside.
    pub fn lock(self) -> ShardGuard<'a, T> {
        self.slot.writer.lock();
        self.exclude_readers();
        ShardGuard {
            slot: self.slot,
            _not_send: PhantomData,
        }
    }

    /// Exclusive access if no one else holds the lock: no writer, and no
    /// reader inside. It never waits.
    pub fn try_lock(self) -> Option<ShardGuard<'a, T>> {
        if !self.slot.writer.try_lock() {
            return None;
        }
        self.slot.writing.swap(true, Ordering::SeqCst);
        let guard = ShardGuard {
            slot: self.slot,
            _not_send: PhantomData,
        };
        if self.readers_inside() {
            // Dropping the guard lowers `writing` and releases the mutex.
            return None;
        }
        Some(guard)
    }

    /// Exclusive access if it can be had by `deadline`: the writer mutex
    /// is tried, not waited for, and readers inside are waited for with
    /// `writing` raised, so that new readers stay out meanwhile (retrying
    /// [`LockRef::try_lock`] instead could fail forever against readers
    /// that keep coming). For a holder of other locks taking this one out
    /// of order (`LockSet::extend`), where the writer in the way may be
    /// waiting for one of those: the deadline ends that wait.
    pub fn try_lock_until(self, deadline: std::time::Instant) -> Option<ShardGuard<'a, T>> {
        loop {
            if self.slot.writer.try_lock() {
                self.slot.writing.swap(true, Ordering::SeqCst);
                let guard = ShardGuard {
                    slot: self.slot,
                    _not_send: PhantomData,
                };
                loop {
                    if !self.readers_inside() {
                        return Some(guard);
                    }
                    if std::time::Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::yield_now();
                }
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// Whether a reader is counted in any row (with `writing` raised).
    fn readers_inside(self) -> bool {
        (0..self.readers.rows)
            .any(|row| self.readers.counter(row, self.index).load(Ordering::SeqCst) != 0)
    }

    /// Raises `writing` (with the writer mutex held) and waits until no
    /// reader is inside. A reader increments its counter before it checks
    /// `writing`, and this raises `writing` before it reads the counters,
    /// all sequentially consistent: either the reader sees `writing` and
    /// backs off, or this sees its count and waits for it. It ends: no
    /// reader waits for anything while it reads (`Store::read_keys` backs
    /// off as `Store::lock_shards` does), so each finishes its lookup.
    fn exclude_readers(self) {
        self.slot.writing.swap(true, Ordering::SeqCst);
        for row in 0..self.readers.rows {
            let readers = self.readers.counter(row, self.index);
            let mut spins = 0u32;
            while readers.load(Ordering::SeqCst) != 0 {
                // A reader preempted while inside: let it run.
                if spins < 64 {
                    std::hint::spin_loop();
                    spins += 1;
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Shared access, waiting while a writer holds the lock.
    #[inline]
    pub fn read(self) -> ShardReadGuard<'a, T> {
        let counter = self
            .readers
            .counter(thread_row(self.readers.rows), self.index);
        loop {
            if let Some(guard) = self.try_read_counted(counter) {
                return guard;
            }
            // Wait for the writer without spinning on `writing`: take and
            // release its mutex, which parks this thread until it is done.
            self.wait_for_writer();
        }
    }

    /// Shared access if no writer holds the lock.
    #[inline]
    pub fn try_read(self) -> Option<ShardReadGuard<'a, T>> {
        self.try_read_counted(
            self.readers
                .counter(thread_row(self.readers.rows), self.index),
        )
    }

    #[inline]
    fn try_read_counted(self, counter: &'a AtomicU32) -> Option<ShardReadGuard<'a, T>> {
        counter.fetch_add(1, Ordering::SeqCst);
        if self.slot.writing.load(Ordering::SeqCst) {
            counter.fetch_sub(1, Ordering::Release);
            return None;
        }
        Some(ShardReadGuard {
            slot: self.slot,
            counter,
            _not_send: PhantomData,
        })
    }

    #[cold]
    fn wait_for_writer(self) {
        self.slot.writer.lock();
        // SAFETY: locked just above, by this thread.
        unsafe { self.slot.writer.unlock() };
    }
}

/// This thread's row of reader counters: threads are numbered in the order
/// of their first read.
#[inline]
fn thread_row(rows: usize) -> usize {
    static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static THREAD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    THREAD.with(|thread| {
        let mut number = thread.get();
        if number == usize::MAX {
            number = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
            thread.set(number);
        }
        number % rows
    })
}

/// Exclusive access to a shard; dropping it releases the lock. Not `Send`:
/// it is released by the thread that took it.
pub struct ShardGuard<'a, T> {
    slot: &'a Slot<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T> Deref for ShardGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the writer mutex is held and no reader is inside.
        unsafe { &*self.slot.value.get() }
    }
}

impl<T> DerefMut for ShardGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this the only borrow.
        unsafe { &mut *self.slot.value.get() }
    }
}

impl<T> Drop for ShardGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.slot.writing.store(false, Ordering::Release);
        // SAFETY: this guard's thread locked the mutex in `lock`/`try_lock`.
        unsafe { self.slot.writer.unlock() };
    }
}

/// Shared access to a shard; dropping it leaves.
pub struct ShardReadGuard<'a, T> {
    slot: &'a Slot<T>,
    counter: &'a AtomicU32,
    _not_send: PhantomData<*const ()>,
}

impl<T> Deref for ShardReadGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this reader is counted and `writing` was down when it
        // entered, so no writer has `&mut T` until it leaves.
        unsafe { &*self.slot.value.get() }
    }
}

impl<T> Drop for ShardReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn readers_share_and_a_writer_excludes_them() {
        let locks = ShardLocks::new([5u64]);
        let lock = locks.get(0);
        let first = lock.read();
        let second = lock.read();
        assert_eq!(*first + *second, 10);
        // A reader inside keeps `try_lock` out, without waiting.
        assert!(lock.try_lock().is_none());
        drop((first, second));
        let mut writer = lock.lock();
        *writer += 1;
        assert!(lock.try_read().is_none());
        assert!(lock.try_lock().is_none());
        drop(writer);
        assert_eq!(*lock.read(), 6);
    }

    #[test]
    fn a_reader_waits_for_the_writer() {
        let locks = Arc::new(ShardLocks::new([0u64, 0]));
        let writer = locks.get(1).lock();
        let reader = {
            let locks = locks.clone();
            std::thread::spawn(move || *locks.get(1).read())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!reader.is_finished());
        // The other shard is not held.
        assert_eq!(*locks.get(0).read(), 0);
        let mut writer = writer;
        *writer = 7;
        drop(writer);
        assert_eq!(reader.join().unwrap(), 7);
    }

    #[test]
    fn a_writer_waits_for_the_readers_inside() {
        let locks = Arc::new(ShardLocks::new([0u64]));
        let reader = locks.get(0).read();
        let writer = {
            let locks = locks.clone();
            std::thread::spawn(move || *locks.get(0).lock() = 1)
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!writer.is_finished());
        assert_eq!(*reader, 0);
        drop(reader);
        writer.join().unwrap();
        assert_eq!(*locks.get(0).read(), 1);
    }

    #[test]
    fn try_lock_until_waits_for_readers_up_to_its_deadline() {
        let locks = Arc::new(ShardLocks::new([0u64]));
        let (entered, wait_for_entry) = std::sync::mpsc::channel();
        let (leave, wait_to_leave) = std::sync::mpsc::channel::<()>();
        let reader = {
            let locks = locks.clone();
            std::thread::spawn(move || {
                let guard = locks.get(0).read();
                entered.send(()).unwrap();
                wait_to_leave.recv().unwrap();
                std::thread::sleep(Duration::from_millis(20));
                drop(guard);
            })
        };
        wait_for_entry.recv().unwrap();
        let started = std::time::Instant::now();
        let deadline = started + Duration::from_millis(30);
        assert!(locks.get(0).try_lock_until(deadline).is_none());
        assert!(started.elapsed() >= Duration::from_millis(30));
        // While it waited, `writing` kept new readers out; now it is down.
        assert!(locks.get(0).try_read().is_some());
        leave.send(()).unwrap();
        let guard = locks
            .get(0)
            .try_lock_until(std::time::Instant::now() + Duration::from_secs(10));
        assert!(guard.is_some());
        drop(guard);
        reader.join().unwrap();
    }

    /// Writers keep two halves equal; readers on other threads must never
    /// see them differ (a torn read would mean a reader overlapped a
    /// writer). More threads than rows of counters, so some share a row.
    #[test]
    fn readers_never_see_a_write_half_done() {
        const SHARDS: usize = 40;
        let locks = Arc::new(ShardLocks::new((0..SHARDS).map(|_| (0u64, 0u64))));
        let threads: Vec<_> = (0..70u64)
            .map(|thread| {
                let locks = locks.clone();
                std::thread::spawn(move || {
                    for i in 0..4_000u64 {
                        let lock = locks.get(((i * 7 + thread) % SHARDS as u64) as usize);
                        if (i + thread) % 4 == 0 {
                            let mut pair = lock.lock();
                            pair.0 += 1;
                            std::hint::black_box(&mut *pair);
                            pair.1 += 1;
                        } else if let Some(pair) = lock.try_read().or_else(|| Some(lock.read())) {
                            assert_eq!(pair.0, pair.1);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let writes: u64 = (0..SHARDS).map(|i| locks.get(i).read().0).sum();
        assert_eq!(writes, 70 * 1_000);
    }
}
