//! Blocking commands (BLPOP, BLMOVE, BLMPOP...): the registry of blocked
//! clients, and what a blocking command asks of its connection.
//!
//! How a client blocks:
//! 1. A blocking command that cannot be served writes nothing and leaves a
//!    [`BlockRequest`] in its session (inside EXEC, or outside a
//!    connection, it answers as on timeout instead).
//! 2. The connection registers the client here, at the back of the FIFO
//!    queue of each of its keys, then runs the command once more (a push
//!    that happened between the command and the registration would
//!    otherwise be missed), and waits: for a wakeup, its deadline, a kill,
//!    shutdown, or the socket closing. Its other pipelined commands wait.
//! 3. A command that adds data to a key calls [`BlockingRegistry::key_ready`]
//!    after its change; that wakes the first client (of the matching kind)
//!    queued on the key, which runs its command again under the shard locks
//!    — inside EXEC it waits for the transaction's locks, so it sees the
//!    state after EXEC, as in Redis.
//! 4. A client that is served, or leaves (timeout, kill, disconnect),
//!    passes the wakeup on to the next client queued on each of its keys,
//!    so that what is left is served in blocking order.
//!
//! Fairness: a blocking command may take from a key only if no client of
//! its kind blocked on that key before it ([`BlockingRegistry::may_take`]),
//! so a newcomer cannot overtake a woken client that has not run yet.
//!
//! Lock order: the registry's mutex is taken last (handlers call
//! `key_ready`/`may_take` while holding shard locks; nothing here takes a
//! shard lock), and never held across an await.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use smallvec::SmallVec;
use tokio::sync::Notify;

use crate::protocol::ReplyBuf;

/// What a blocked client waits for: data of this kind. A push of another
/// type onto the key does not serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    List,
    ZSet,
    /// XREAD: reading takes nothing, so every waiter is woken.
    Stream,
    /// XREADGROUP, for the consumer group the tag names: woken as XREAD
    /// is, but served first-come first-served among the readers of the
    /// same group ([`BlockingRegistry::may_take`] with the same tag); also
    /// woken every [`GROUP_RECHECK`] to look at its keys again, so that a
    /// deleted or re-typed key, which signals no waiter, ends its wait
    /// with Redis's error.
    StreamGroup(u64),
}

impl WaitKind {
    /// Whether data of `kind` may serve a waiter of this kind (stream
    /// data serves XREAD and XREADGROUP alike).
    fn served_by(self, kind: WaitKind) -> bool {
        self.family() == kind.family()
    }

    fn family(self) -> WaitKind {
        match self {
            WaitKind::StreamGroup(_) => WaitKind::Stream,
            other => other,
        }
    }
}

/// How often a blocked XREADGROUP looks at its keys again (see
/// [`WaitKind::StreamGroup`]).
pub const GROUP_RECHECK: Duration = Duration::from_millis(100);

/// The reply of a blocking command whose timeout passed, or that cannot
/// block (inside MULTI/EXEC). Redis 7.0 answers every timed-out list or
/// sorted-set command with a null array, even BLMOVE/BRPOPLPUSH, which
/// answer a null bulk string when they cannot block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReply {
    /// `*-1` (`_` in RESP3).
    NullArray,
    /// `$-1` (`_` in RESP3).
    NullBulk,
    /// `:0` (WAIT: no replica acknowledged).
    Zero,
    /// `*2 :0 :0` (WAITAOF: no local fsync, no replica acknowledged).
    TwoZeroes,
}

impl TimeoutReply {
    pub fn write(self, out: &mut ReplyBuf) {
        match self {
            TimeoutReply::NullArray => out.null_array(),
            TimeoutReply::NullBulk => out.null(),
            TimeoutReply::Zero => out.int(0),
            TimeoutReply::TwoZeroes => {
                out.array(2);
                out.int(0);
                out.int(0);
            }
        }
    }
}

/// What a blocking command leaves in the session when it must wait.
#[derive(Debug, Clone)]
pub struct BlockRequest {
    pub db: usize,
    /// The keys whose data would serve it (duplicates allowed).
    pub keys: Vec<Vec<u8>>,
    /// How long to wait at most; `None`: forever.
    pub timeout: Option<Duration>,
    pub kind: WaitKind,
    pub on_timeout: TimeoutReply,
}

/// One blocked client in the queues.
#[derive(Debug)]
struct Waiter {
    client_id: u64,
    kind: WaitKind,
    wakeup: Notify,
    /// The keys it was woken for, in the order they got data: Redis 7.0
    /// serves a blocked client from the key that became ready first.
    ready: Mutex<Vec<Box<[u8]>>>,
}

impl Waiter {
    /// Wakes the client for `key`.
    fn wake(&self, key: &[u8]) {
        self.mark_ready(key);
        self.wakeup.notify_one();
    }

    /// Adds `key` to the keys to look at when the client runs again.
    fn mark_ready(&self, key: &[u8]) {
        let mut ready = self.ready.lock();
        if !ready.iter().any(|k| **k == *key) {
            ready.push(Box::from(key));
        }
    }
}

type Queues = HashMap<usize, HashMap<Box<[u8]>, VecDeque<Arc<Waiter>>>>;

/// Every blocked client, queued per (database, key) in blocking order.
///
/// ```
/// use larder::shared::blocking::{BlockRequest, BlockingRegistry, TimeoutReply, WaitKind};
///
/// let registry = BlockingRegistry::default();
/// let request = BlockRequest {
///     db: 0,
///     keys: vec![b"jobs".to_vec()],
///     timeout: None,
///     kind: WaitKind::List,
///     on_timeout: TimeoutReply::NullArray,
/// };
/// let first = registry.register(1, &request);
/// let second = registry.register(2, &request);
/// assert_eq!(registry.blocked_clients(), 2);
/// // The client that blocked first is served first.
/// assert!(registry.may_take(0, b"jobs", 1, WaitKind::List));
/// assert!(!registry.may_take(0, b"jobs", 2, WaitKind::List));
/// registry.key_ready(0, b"jobs", Some(WaitKind::List)); // wakes client 1
/// drop(first); // served, or gone: client 2 is next
/// assert!(registry.may_take(0, b"jobs", 2, WaitKind::List));
/// drop(second);
/// assert_eq!(registry.waited_keys(), 0);
/// ```
#[derive(Debug, Default)]
pub struct BlockingRegistry {
    /// Registered clients (INFO `blocked_clients`); zero lets pushes skip
    /// the mutex entirely.
    blocked: AtomicUsize,
    /// Those with a finite timeout (INFO `clients_in_timeout_table`).
    timed: AtomicUsize,
    queues: Mutex<Queues>,
}

impl BlockingRegistry {
    /// Number of clients blocked right now.
    pub fn blocked_clients(&self) -> usize {
        self.blocked.load(Ordering::Acquire)
    }

    /// Number of blocked clients with a finite timeout.
    pub fn clients_with_timeout(&self) -> usize {
        self.timed.load(Ordering::Acquire)
    }

    /// Number of (database, key) queues (0 once nobody waits).
    pub fn waited_keys(&self) -> usize {
        self.queues.lock().values().map(HashMap::len).sum()
    }

    /// Queues client `client_id` on every key of `request`, at the back.
    /// The client stays queued until the returned registration is dropped.
    pub fn register(&self, client_id: u64, request: &BlockRequest) -> Registration<'_> {
        let waiter = Arc::new(Waiter {
            client_id,
            kind: request.kind,
            wakeup: Notify::new(),
            ready: Mutex::new(Vec::new()),
        });
        let mut keys: Vec<Box<[u8]>> = Vec::with_capacity(request.keys.len());
        for key in &request.keys {
            if !keys.iter().any(|k| **k == **key) {
                keys.push(Box::from(key.as_slice()));
            }
        }
        {
            let mut queues = self.queues.lock();
            let db = queues.entry(request.db).or_default();
            for key in &keys {
                db.entry(key.clone()).or_default().push_back(waiter.clone());
            }
            self.blocked.fetch_add(1, Ordering::AcqRel);
        }
        let timed = request.timeout.is_some();
        if timed {
            self.timed.fetch_add(1, Ordering::AcqRel);
        }
        Registration {
            registry: self,
            waiter,
            db: request.db,
            keys,
            timed,
        }
    }

    /// `key` in `db` got data of `kind` (`None`: of some type, e.g. after
    /// RENAME): wakes the first client waiting for that kind on it.
    pub fn key_ready(&self, db: usize, key: &[u8], kind: Option<WaitKind>) {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return;
        }
        let queues = self.queues.lock();
        if let Some(queue) = queues.get(&db).and_then(|keys| keys.get(key)) {
            wake_first(queue, key, kind);
        }
    }

    /// Every key of `db` may have new contents (SWAPDB): wakes the first
    /// waiter of each kind on each of its keys.
    pub fn db_ready(&self, db: usize) {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return;
        }
        let queues = self.queues.lock();
        if let Some(keys) = queues.get(&db) {
            for (key, queue) in keys {
                wake_first(queue, key, None);
            }
        }
    }

    /// Whether client `client_id`, waiting (or about to wait) for `kind`,
    /// may take data from `key`: no client waiting for the same kind was
    /// queued on it before. A refused client wakes the one ahead, in case
    /// data arrived without a signal.
    pub fn may_take(&self, db: usize, key: &[u8], client_id: u64, kind: WaitKind) -> bool {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return true;
        }
        let queues = self.queues.lock();
        let Some(queue) = queues.get(&db).and_then(|keys| keys.get(key)) else {
            return true;
        };
        for waiter in queue {
            if waiter.client_id == client_id {
                return true;
            }
            if waiter.kind == kind {
                waiter.wake(key);
                return false;
            }
        }
        true
    }

    fn unregister(&self, registration: &Registration<'_>) {
        let mut queues = self.queues.lock();
        if let Some(keys) = queues.get_mut(&registration.db) {
            for key in &registration.keys {
                let Some(queue) = keys.get_mut(key) else {
                    continue;
                };
                queue.retain(|w| !Arc::ptr_eq(w, &registration.waiter));
                if queue.is_empty() {
                    keys.remove(key);
                } else {
                    // Whatever this client was woken for, or left behind,
                    // is the next one's to take (an XREAD takes nothing;
                    // an XREADGROUP leaves the rest to its group's next).
                    match registration.waiter.kind {
                        WaitKind::Stream => {}
                        WaitKind::StreamGroup(_) => {
                            if let Some(next) =
                                queue.iter().find(|w| w.kind == registration.waiter.kind)
                            {
                                next.wake(key);
                            }
                        }
                        kind => wake_first(queue, key, Some(kind)),
                    }
                }
            }
            if keys.is_empty() {
                queues.remove(&registration.db);
            }
        }
        self.blocked.fetch_sub(1, Ordering::AcqRel);
        if registration.timed {
            self.timed.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Wakes the first waiter of `kind` (of each kind if `None`) in the queue
/// of `key`.
fn wake_first(queue: &VecDeque<Arc<Waiter>>, key: &[u8], kind: Option<WaitKind>) {
    let mut woken: [bool; 2] = [false; 2];
    // The groups whose first XREADGROUP reader was woken: the others of
    // the group wait for it to be served (it passes the wakeup on).
    let mut groups_woken: SmallVec<[u64; 4]> = SmallVec::new();
    for waiter in queue {
        if kind.is_some_and(|k| !waiter.kind.served_by(k)) {
            continue;
        }
        match waiter.kind {
            WaitKind::Stream => waiter.wake(key),
            WaitKind::StreamGroup(group) => {
                if !groups_woken.contains(&group) {
                    groups_woken.push(group);
                    waiter.wake(key);
                }
            }
            WaitKind::List | WaitKind::ZSet => {
                let slot = &mut woken[(waiter.kind != WaitKind::List) as usize];
                if !*slot {
                    *slot = true;
                    waiter.wake(key);
                }
                if kind.is_some() {
                    return;
                }
            }
        }
    }
}

/// A blocked client's place in the queues; dropping it leaves them (and
/// passes any pending wakeup on).
#[derive(Debug)]
pub struct Registration<'r> {
    registry: &'r BlockingRegistry,
    waiter: Arc<Waiter>,
    db: usize,
    keys: Vec<Box<[u8]>>,
    timed: bool,
}

impl Registration<'_> {
    /// Resolves once one of the keys may serve this client (a wakeup that
    /// arrived while it was not waiting is kept).
    pub async fn woken(&self) {
        if !matches!(self.waiter.kind, WaitKind::StreamGroup(_)) {
            return self.waiter.wakeup.notified().await;
        }
        tokio::select! {
            _ = self.waiter.wakeup.notified() => {}
            _ = tokio::time::sleep(GROUP_RECHECK) => {
                for key in &self.keys {
                    self.waiter.mark_ready(key);
                }
            }
        }
    }

    /// The keys this client was woken for since the last call, in the
    /// order they got data.
    pub fn take_ready_keys(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.waiter.ready.lock())
            .into_iter()
            .map(Vec::from)
            .collect()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.unregister(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(keys: &[&str], kind: WaitKind) -> BlockRequest {
        BlockRequest {
            db: 0,
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            timeout: None,
            kind,
            on_timeout: TimeoutReply::NullArray,
        }
    }

    #[test]
    fn queues_are_fifo_per_kind_and_leave_no_trace() {
        let registry = BlockingRegistry::default();
        let first = registry.register(1, &request(&["k", "k"], WaitKind::List));
        let zset = registry.register(2, &request(&["k"], WaitKind::ZSet));
        let second = registry.register(3, &request(&["k", "other"], WaitKind::List));
        assert_eq!(registry.blocked_clients(), 3);
        assert_eq!(registry.waited_keys(), 2);
        assert!(registry.may_take(0, b"k", 1, WaitKind::List));
        assert!(registry.may_take(0, b"k", 2, WaitKind::ZSet));
        assert!(!registry.may_take(0, b"k", 3, WaitKind::List));
        assert!(registry.may_take(0, b"other", 3, WaitKind::List));
        assert!(!registry.may_take(0, b"k", 99, WaitKind::List));
        assert!(registry.may_take(1, b"k", 99, WaitKind::List));
        drop(first);
        assert!(registry.may_take(0, b"k", 3, WaitKind::List));
        drop(zset);
        drop(second);
        assert_eq!(registry.blocked_clients(), 0);
        assert_eq!(registry.waited_keys(), 0);
    }

    #[test]
    fn stream_data_wakes_every_reader_and_the_first_of_each_group() {
        let registry = BlockingRegistry::default();
        let (g, h) = (WaitKind::StreamGroup(1), WaitKind::StreamGroup(2));
        let first = registry.register(1, &request(&["s"], g));
        let second = registry.register(2, &request(&["s"], g));
        let other_group = registry.register(3, &request(&["s"], h));
        let reader = registry.register(4, &request(&["s"], WaitKind::Stream));
        let list = registry.register(5, &request(&["s"], WaitKind::List));
        registry.key_ready(0, b"s", Some(WaitKind::Stream));
        let woken = |r: &Registration<'_>| !r.take_ready_keys().is_empty();
        assert!(woken(&first) && woken(&other_group) && woken(&reader));
        assert!(!woken(&second) && !woken(&list));
        // Readers of a group take in turn; other groups do not wait.
        assert!(registry.may_take(0, b"s", 1, g));
        assert!(!registry.may_take(0, b"s", 2, g));
        assert!(registry.may_take(0, b"s", 3, h));
        // The first reader served passes the wakeup to its group's next.
        drop(first);
        assert!(woken(&second));
        assert!(registry.may_take(0, b"s", 2, g));
        assert!(!woken(&list));
    }
}
