//! Freeing big values and flushed databases off the request path (Redis's
//! lazyfree).
//!
//! Commands detach what they remove under the shard lock in O(1) and hand it
//! here. UNLINK (and DEL with `lazyfree-lazy-user-del`), FLUSHALL/FLUSHDB
//! ASYNC (or without an option under `lazyfree-lazy-user-flush`) send it to
//! one background thread through a channel, as Redis's `bio` lazyfree
//! thread; a synchronous free happens after the locks are released, and a
//! big one on that thread too while the connection holds the reply (see
//! [`free_now`]). Values with at most [`LAZYFREE_THRESHOLD`]
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
    /// Counted in INFO for lazy frees only (Redis counts no synchronous
    /// free there).
    stats: Option<Arc<LazyFreeStats>>,
    /// A synchronous free: its caller's reply waits for this.
    done: Option<tokio::sync::oneshot::Sender<()>>,
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
    if let Some(stats) = job.stats {
        stats.pending.fetch_sub(job.objects, Ordering::Relaxed);
        stats.freed.fetch_add(job.objects, Ordering::Relaxed);
    }
    if let Some(done) = job.done {
        // A big synchronous free is followed by a purge before its reply.
        if job.objects >= PURGE_AFTER_OBJECTS {
            purge();
        }
        let _ = done.send(());
    }
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
        // Redis counts a stream's radix tree nodes.
        ValueRef::Stream(stream) => stream.node_count().max(1),
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
        stats: Some(stats.clone()),
        done: None,
    };
    if let Err(mpsc::SendError(job)) = queue.send(job) {
        stats.pending.fetch_sub(job.objects, Ordering::Relaxed);
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

/// Frees `garbage` (about `objects` allocations) as DEL or FLUSHALL SYNC
/// do: before the reply, but after the locks are released. A small free
/// happens here. A big one, made by a command that a connection runs inside
/// [`collect_sync_frees`], goes to the lazyfree thread and the connection
/// holds the reply until it is done (an async wait: no runtime worker is
/// held meanwhile); anywhere else (the library API, tests) it happens here.
/// Big frees are followed by a purge.
pub fn free_now<T: Send + 'static>(garbage: T, objects: usize) {
    if objects <= LAZYFREE_THRESHOLD {
        drop(garbage);
        return;
    }
    if let Err(garbage) = hand_to_connection(garbage, objects) {
        drop(garbage);
        if objects as u64 >= PURGE_AFTER_OBJECTS {
            purge();
        }
    }
}

/// Sends a big synchronous free to the lazyfree thread, its completion to
/// the connection's list; gives the garbage back outside
/// [`collect_sync_frees`].
fn hand_to_connection<T: Send + 'static>(garbage: T, objects: usize) -> Result<(), T> {
    SYNC_FREES.with(|frees| {
        let mut frees = frees.borrow_mut();
        let (Some(frees), Some(queue)) = (frees.as_mut(), queue()) else {
            return Err(garbage);
        };
        let (done, finished) = tokio::sync::oneshot::channel();
        let job = Job {
            garbage: Box::new(garbage),
            objects: objects as u64,
            stats: None,
            done: Some(done),
        };
        match queue.send(job) {
            Ok(()) => frees.push(finished),
            // The thread is gone: the job comes back and is freed here.
            Err(mpsc::SendError(job)) => drop(job),
        }
        Ok(())
    })
}

thread_local! {
    /// While a connection runs a command ([`collect_sync_frees`]): the
    /// completions of the big synchronous frees it asked for.
    static SYNC_FREES: std::cell::RefCell<Option<Vec<SyncFree>>> =
        const { std::cell::RefCell::new(None) };
}

/// The completion of a big synchronous free handed to the lazyfree thread.
pub type SyncFree = tokio::sync::oneshot::Receiver<()>;

/// Runs `command` (on this thread) and returns, with its result, the big
/// synchronous frees it handed to the lazyfree thread: the caller holds the
/// command's reply until they are done.
pub fn collect_sync_frees<R>(command: impl FnOnce() -> R) -> (R, Vec<SyncFree>) {
    let outer = SYNC_FREES.with(|frees| frees.borrow_mut().replace(Vec::new()));
    let result = command();
    let collected = SYNC_FREES.with(|frees| std::mem::replace(&mut *frees.borrow_mut(), outer));
    (result, collected.unwrap_or_default())
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

    /// Reports the thread it is dropped on, so a test sees where and when that happens.
    struct Freed(std::sync::mpsc::Sender<std::thread::ThreadId>);

    impl Drop for Freed {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().id());
        }
    }

    #[test]
    fn a_big_synchronous_free_goes_to_the_thread_only_for_a_connection() {
        let here = std::thread::current().id();
        // Outside a connection's command: freed here, at once.
        let (sender, freed) = std::sync::mpsc::channel();
        free_now(Freed(sender), LAZYFREE_THRESHOLD + 1);
        assert_eq!(freed.try_recv(), Ok(here));
        // Small, inside a command: here too, nothing to wait for.
        let (sender, freed) = std::sync::mpsc::channel();
        let ((), waits) = collect_sync_frees(|| free_now(Freed(sender), LAZYFREE_THRESHOLD));
        assert!(waits.is_empty());
        assert_eq!(freed.try_recv(), Ok(here));
        // Big, inside a command: on the lazyfree thread, with a completion
        // the connection awaits before replying; not counted as lazy.
        let (sender, freed) = std::sync::mpsc::channel();
        let ((), waits) = collect_sync_frees(|| free_now(Freed(sender), LAZYFREE_THRESHOLD + 1));
        assert_eq!(waits.len(), 1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for wait in waits {
            runtime.block_on(wait).expect("the free completes");
        }
        let thread = freed.recv_timeout(Duration::from_secs(10)).expect("freed");
        assert_ne!(thread, here);
        // Nothing is collected after the command.
        let (sender, freed) = std::sync::mpsc::channel();
        free_now(Freed(sender), LAZYFREE_THRESHOLD + 1);
        assert_eq!(freed.try_recv(), Ok(here));
    }
}
