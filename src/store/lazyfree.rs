//! Freeing big values and flushed databases off the request path (Redis's
//! lazyfree).
//!
//! Commands detach what they remove under the shard lock in O(1) and hand it
//! here. UNLINK (and DEL with `lazyfree-lazy-user-del`), FLUSHALL/FLUSHDB
//! ASYNC (or without an option under `lazyfree-lazy-user-flush`) send it to
//! one background thread through a channel, as Redis's `bio` lazyfree
//! thread; a synchronous free runs on the caller's thread but after the
//! locks are released, and outside the runtime's worker slot when it is
//! big (see [`free_now`]). Values with at most [`LAZYFREE_THRESHOLD`]
//! elements are cheaper to free at once than to hand over, as in Redis.
//!
//! After a big free, freed memory is handed back to the operating system
//! (the allocator's purge hook, what MEMORY PURGE calls), so that RSS falls
//! without waiting for traffic to make the allocator tidy up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use super::value::{Value, ValueRef};

/// Redis's `LAZYFREE_THRESHOLD`: a value that takes more allocations than
/// this to free is freed in the background.
pub const LAZYFREE_THRESHOLD: usize = 64;

/// Freeing at least this many objects at once is followed by a purge.
const PURGE_AFTER_OBJECTS: u64 = 4096;

/// INFO's `lazyfree_pending_objects` and `lazyfreed_objects` for one store.
#[derive(Debug, Default)]
pub struct LazyFreeStats {
    pending: AtomicU64,
    freed: AtomicU64,
}

impl LazyFreeStats {
    /// Objects handed to the background thread and not freed yet.
    pub fn pending_objects(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Objects the background thread has freed so far.
    pub fn freed_objects(&self) -> u64 {
        self.freed.load(Ordering::Relaxed)
    }

    /// CONFIG RESETSTAT: Redis resets `lazyfreed_objects`.
    pub fn reset(&self) {
        self.freed.store(0, Ordering::Relaxed);
    }
}

struct Job {
    garbage: Box<dyn Send>,
    objects: u64,
    stats: Arc<LazyFreeStats>,
}

/// The background thread's queue, started on first use and shared by every
/// store in the process (one thread is enough: freeing is memory-bound).
fn queue() -> Option<&'static mpsc::Sender<Job>> {
    static QUEUE: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (sender, receiver) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("larder-lazyfree".into())
                .spawn(move || free_forever(receiver))
                .ok()
                .map(|_| sender)
        })
        .as_ref()
}

fn free_forever(receiver: mpsc::Receiver<Job>) {
    let mut since_purge: u64 = 0;
    while let Ok(job) = receiver.recv() {
        since_purge += free_job(job);
        while let Ok(job) = receiver.try_recv() {
            since_purge += free_job(job);
        }
        // Purge once the queue is drained, not after every job.
        if since_purge >= PURGE_AFTER_OBJECTS {
            purge();
            since_purge = 0;
        }
    }
}

fn free_job(job: Job) -> u64 {
    drop(job.garbage);
    job.stats.pending.fetch_sub(job.objects, Ordering::Relaxed);
    job.stats.freed.fetch_add(job.objects, Ordering::Relaxed);
    job.objects
}

/// Returns freed memory to the operating system, if the program registered
/// its allocator's purge (MEMORY PURGE's hook).
fn purge() {
    if let Some(hooks) = crate::memory::allocator_hooks() {
        (hooks.purge)();
    }
}

/// Redis's `lazyfreeGetFreeEffort`: about how many allocations freeing
/// `value` takes (its elements for a collection, 1 for a string).
pub fn free_effort(value: ValueRef<'_>) -> usize {
    match value {
        ValueRef::Str(_) => 1,
        ValueRef::List(list) => list.len(),
        ValueRef::Hash(hash) => hash.len(),
        ValueRef::Set(set) => set.len(),
        ValueRef::ZSet(zset) => zset.len(),
    }
}

/// Frees `garbage` (made of about `objects` allocations) on the background
/// thread, counted in `stats`; frees it here if that thread could not be
/// started.
pub fn free_in_background(garbage: Box<dyn Send>, objects: u64, stats: &Arc<LazyFreeStats>) {
    let Some(queue) = queue() else {
        drop(garbage);
        return;
    };
    stats.pending.fetch_add(objects, Ordering::Relaxed);
    let job = Job {
        garbage,
        objects,
        stats: stats.clone(),
    };
    if let Err(mpsc::SendError(job)) = queue.send(job) {
        job.stats.pending.fetch_sub(job.objects, Ordering::Relaxed);
        drop(job.garbage);
    }
}

/// Frees a removed value as UNLINK does: in the background if freeing it
/// takes more than [`LAZYFREE_THRESHOLD`] allocations, here otherwise.
pub fn free_value_async(value: Value, stats: &Arc<LazyFreeStats>) {
    if free_effort(value.view()) > LAZYFREE_THRESHOLD {
        free_in_background(Box::new(value), 1, stats);
    } else {
        drop(value);
    }
}

/// Frees `garbage` (about `objects` allocations) on this thread, now: the
/// caller waits, as for DEL or FLUSHALL SYNC, but only after releasing its
/// locks. A big free inside a multi-threaded tokio runtime runs under
/// `block_in_place`, so the worker's other tasks move to another thread
/// instead of waiting behind it. Big frees are followed by a purge.
pub fn free_now<T>(garbage: T, objects: usize) {
    if objects <= LAZYFREE_THRESHOLD {
        drop(garbage);
        return;
    }
    off_the_worker(move || {
        drop(garbage);
        if objects as u64 >= PURGE_AFTER_OBJECTS {
            purge();
        }
    })
}

/// Runs long CPU work (a big free, KEYS over a big keyspace) so that it
/// does not hold a runtime worker: inside a multi-threaded tokio runtime,
/// under `block_in_place`, which hands the worker's other tasks to another
/// thread meanwhile; elsewhere (no runtime, a current-thread runtime)
/// simply here.
pub fn off_the_worker<R>(work: impl FnOnce() -> R) -> R {
    let on_worker = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    });
    if on_worker {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::types::SetValue;
    use std::time::{Duration, Instant};

    fn big_set(members: usize) -> Value {
        let mut set = SetValue::default();
        for i in 0..members {
            set.insert(format!("member:{i}").as_bytes());
        }
        Value::Set(Box::new(set))
    }

    fn wait_for(stats: &LazyFreeStats, freed: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.freed_objects() < freed && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn big_values_go_to_the_background_small_ones_do_not() {
        let stats = Arc::new(LazyFreeStats::default());
        free_value_async(big_set(LAZYFREE_THRESHOLD), &stats);
        free_value_async(Value::Str(vec![0; 1 << 20]), &stats);
        assert_eq!(stats.pending_objects() + stats.freed_objects(), 0);
        free_value_async(big_set(LAZYFREE_THRESHOLD + 1), &stats);
        wait_for(&stats, 1);
        assert_eq!(stats.freed_objects(), 1);
        assert_eq!(stats.pending_objects(), 0);
    }

    #[test]
    fn detached_contents_count_as_many_objects() {
        let stats = Arc::new(LazyFreeStats::default());
        free_in_background(Box::new(vec![big_set(10); 3]), 3, &stats);
        wait_for(&stats, 3);
        assert_eq!(stats.freed_objects(), 3);
        stats.reset();
        assert_eq!(stats.freed_objects(), 0);
    }
}
