//! A client's mailbox: what other clients and the server push to it
//! (pub/sub messages, invalidations, MONITOR lines), already encoded for
//! its protocol, until its connection writes them out.
//!
//! Pushing never waits: the pusher appends bytes under the mailbox's own
//! short lock and signals the connection. A client that does not read
//! cannot make its mailbox grow without bound: past its class's
//! `client-output-buffer-limit` the mailbox closes (the connection then
//! drops the client), and what it held is freed at once.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub use crate::config::output_limits::{ClientClass, OutputLimit, OutputLimits};

/// Client eviction (`maxmemory-clients`, as Redis 7): the memory all
/// normal and pub/sub clients use together (query buffer, reply buffer and
/// what waits in their mailboxes: CLIENT LIST's tot-mem), kept up to date
/// only while a limit is set. Each client adds what changed since it last
/// reported (see [`Mailbox::account`]), so the sum stays exact without a
/// scan; while the limit is off, nothing is counted (one load).
#[derive(Default)]
pub struct ClientMemory {
    /// Bytes; 0: no client eviction.
    limit: AtomicU64,
    /// What the clients last reported, together.
    total: AtomicI64,
    /// Clients evicted (INFO `evicted_clients`).
    evicted: AtomicU64,
    /// Who evicts clients when the total reaches the limit (the client
    /// registry, above this layer).
    evictor: OnceLock<Weak<dyn ClientEvictor>>,
}

impl std::fmt::Debug for ClientMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientMemory")
            .field("limit", &self.limit.load(Ordering::Relaxed))
            .field("total", &self.total.load(Ordering::Relaxed))
            .finish()
    }
}

/// Closes the clients using the most memory until the total is under the
/// limit again.
pub trait ClientEvictor: Send + Sync {
    fn evict_clients(&self, memory: &ClientMemory);
}

impl ClientMemory {
    /// The limit in bytes (0: off).
    #[inline]
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Sets the limit; returns the previous one.
    pub fn set_limit(&self, limit: u64) -> u64 {
        self.limit.swap(limit, Ordering::Relaxed)
    }

    /// The memory the clients last reported, together.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed).max(0) as u64
    }

    /// Whether the clients together use more than the limit allows
    /// (Redis evicts while the total is at or past it).
    pub fn over(&self) -> bool {
        let limit = self.limit();
        limit > 0 && self.total() >= limit
    }

    pub fn set_evictor(&self, evictor: Weak<dyn ClientEvictor>) {
        let _ = self.evictor.set(evictor);
    }

    pub fn count_eviction(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Evicts clients if the total reached the limit.
    pub fn evict_if_over(&self) {
        if self.over() {
            if let Some(evictor) = self.evictor.get().and_then(Weak::upgrade) {
                evictor.evict_clients(self);
            }
        }
    }
}

/// What a mailbox holds.
#[derive(Debug, Default)]
struct Held {
    frames: BytesMut,
    /// Frames for the client whose own command caused them, to go after
    /// that command's reply (see [`Mailbox::push_after_reply`]).
    after_reply: BytesMut,
    /// When the pending output first went past the soft limit (cleared
    /// once it is back under).
    over_soft_since: Option<Instant>,
}

/// See the module docs. One per client, shared by its connection and the
/// engines that push to it.
#[derive(Debug)]
pub struct Mailbox {
    /// The client's id (CLIENT ID).
    pub id: u64,
    held: Mutex<Held>,
    signal: Notify,
    /// The client speaks RESP3: frames are pushes (`>`).
    resp3: AtomicBool,
    /// The client may receive pushes (it subscribed, tracks keys, or
    /// monitors): its connection listens for them.
    listening: AtomicBool,
    /// Past its output limit: the connection must drop the client.
    overflowed: AtomicBool,
    /// The client has gone: nothing is delivered any more.
    closed: AtomicBool,
    /// Bytes the connection took from here (or its own replies) and has
    /// not written yet: they count toward the output limit too.
    unsent: AtomicUsize,
    class: AtomicU8,
    /// Client eviction's accounting (`None`: a client outside any
    /// server's registry).
    memory: Option<Arc<ClientMemory>>,
    /// The client's query and reply buffers, as its connection reported
    /// them.
    buffer_bytes: AtomicUsize,
    /// What this client counts for in `memory`'s total.
    accounted: AtomicUsize,
}

impl Mailbox {
    pub fn new(id: u64) -> Self {
        Self::with_memory(id, None)
    }

    /// A mailbox whose client counts toward `memory` (client eviction).
    pub fn with_memory(id: u64, memory: Option<Arc<ClientMemory>>) -> Self {
        Mailbox {
            id,
            held: Mutex::new(Held::default()),
            signal: Notify::new(),
            resp3: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            unsent: AtomicUsize::new(0),
            class: AtomicU8::new(ClientClass::Normal as u8),
            memory,
            buffer_bytes: AtomicUsize::new(0),
            accounted: AtomicUsize::new(0),
        }
    }

    /// The client's connection buffers now take `bytes` (query plus reply
    /// buffer capacity); with client eviction on, the total is updated and
    /// clients are evicted if it reached the limit.
    pub fn set_buffer_bytes(&self, bytes: usize) {
        self.buffer_bytes.store(bytes, Ordering::Relaxed);
        if let Some(memory) = self.memory.as_deref() {
            if memory.limit() > 0 {
                self.account(memory, self.held_bytes());
                memory.evict_if_over();
            }
        }
    }

    /// What this client uses: buffers and mailbox (CLIENT LIST's tot-mem).
    pub fn memory_bytes(&self) -> usize {
        self.buffer_bytes.load(Ordering::Relaxed) + self.held_bytes()
    }

    /// Brings this client's share of `memory`'s total up to date, `held`
    /// being what its mailbox holds.
    fn account(&self, memory: &ClientMemory, held: usize) {
        if self.class() == ClientClass::Replica || self.is_closed() {
            return;
        }
        let now = self.buffer_bytes.load(Ordering::Relaxed) + held;
        let before = self.accounted.swap(now, Ordering::Relaxed);
        if now != before {
            memory
                .total
                .fetch_add(now as i64 - before as i64, Ordering::Relaxed);
        }
    }

    /// Re-counts this client (client eviction was just turned on: its share
    /// may be stale).
    pub fn reaccount(&self) {
        if let Some(memory) = self.memory.as_deref() {
            self.account(memory, self.held_bytes());
        }
    }

    /// The client has gone: its share leaves the total.
    pub fn unaccount(&self) {
        if let Some(memory) = self.memory.as_deref() {
            let before = self.accounted.swap(0, Ordering::Relaxed);
            memory.total.fetch_sub(before as i64, Ordering::Relaxed);
        }
    }

    pub fn is_resp3(&self) -> bool {
        self.resp3.load(Ordering::Relaxed)
    }

    pub fn set_resp3(&self, resp3: bool) {
        self.resp3.store(resp3, Ordering::Relaxed);
    }

    /// Whether the connection must listen for pushes.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Relaxed);
    }

    pub fn class(&self) -> ClientClass {
        match self.class.load(Ordering::Relaxed) {
            1 => ClientClass::Replica,
            2 => ClientClass::PubSub,
            _ => ClientClass::Normal,
        }
    }

    pub fn set_class(&self, class: ClientClass) {
        self.class.store(class as u8, Ordering::Relaxed);
    }

    /// Appends one encoded frame, unless that takes the client past
    /// `limit`: then the mailbox empties and closes, and this returns
    /// false (the caller counts and logs the disconnection once).
    pub fn push(&self, frame: &[u8], limit: OutputLimit) -> bool {
        self.append(frame, limit, false)
    }

    /// [`Mailbox::push`] of a frame the client's own running command
    /// caused and that Redis sends after that command's reply (its own
    /// invalidations).
    pub fn push_after_reply(&self, frame: &[u8], limit: OutputLimit) -> bool {
        self.append(frame, limit, true)
    }

    fn append(&self, frame: &[u8], limit: OutputLimit, after_reply: bool) -> bool {
        if self.overflowed.load(Ordering::Relaxed) || self.is_closed() {
            return true;
        }
        let mut held = self.held.lock();
        if after_reply {
            held.after_reply.extend_from_slice(frame);
        } else {
            held.frames.extend_from_slice(frame);
        }
        let pending =
            held.frames.len() + held.after_reply.len() + self.unsent.load(Ordering::Relaxed);
        if exceeds(&mut held.over_soft_since, pending as u64, limit) {
            *held = Held::default();
            drop(held);
            self.overflowed.store(true, Ordering::Release);
            self.signal.notify_one();
            return false;
        }
        let held_now = held.frames.len() + held.after_reply.len();
        drop(held);
        self.signal.notify_one();
        if let Some(memory) = self.memory.as_deref() {
            if memory.limit() > 0 {
                self.account(memory, held_now);
                memory.evict_if_over();
            }
        }
        true
    }

    /// The client has gone: what it held is freed, later pushes dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        *self.held.lock() = Held::default();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Whether the client went past its output limit.
    pub fn is_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Takes everything pushed so far (appending it to `out`).
    pub fn drain_into(&self, out: &mut BytesMut) {
        let mut held = self.held.lock();
        if held.frames.is_empty() && held.after_reply.is_empty() {
            return;
        }
        out.extend_from_slice(&held.frames);
        out.extend_from_slice(&held.after_reply);
        if held.frames.capacity() + held.after_reply.capacity() > 64 * 1024 {
            held.frames = BytesMut::new();
            held.after_reply = BytesMut::new();
        } else {
            held.frames.clear();
            held.after_reply.clear();
        }
    }

    /// Takes what was pushed, as (frames to go before the running
    /// command's reply, frames to go after it).
    pub fn take_split(&self) -> (BytesMut, BytesMut) {
        let mut held = self.held.lock();
        (held.frames.split(), held.after_reply.split())
    }

    /// Bytes waiting here.
    pub fn held_bytes(&self) -> usize {
        let held = self.held.lock();
        held.frames.len() + held.after_reply.len()
    }

    /// The connection holds `bytes` it has not written yet.
    pub fn set_unsent(&self, bytes: usize) {
        self.unsent.store(bytes, Ordering::Relaxed);
    }

    /// Resolves once something was pushed (or the mailbox closed) since
    /// the last wait.
    pub async fn pushed(&self) {
        self.signal.notified().await;
    }
}

/// Redis's checkClientOutputBufferLimits: past the hard limit, or past the
/// soft limit for longer than its seconds.
fn exceeds(over_soft_since: &mut Option<Instant>, pending: u64, limit: OutputLimit) -> bool {
    if limit.hard > 0 && pending >= limit.hard {
        return true;
    }
    if limit.soft > 0 && pending >= limit.soft {
        let since = *over_soft_since.get_or_insert_with(Instant::now);
        return since.elapsed() > Duration::from_secs(limit.soft_seconds);
    }
    *over_soft_since = None;
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mailbox_past_its_hard_limit_closes_and_frees() {
        let mailbox = Mailbox::new(1);
        let limit = OutputLimit {
            hard: 100,
            soft: 0,
            soft_seconds: 0,
        };
        assert!(mailbox.push(&[b'x'; 60], limit));
        assert!(!mailbox.push(&[b'x'; 60], limit));
        assert!(mailbox.is_overflowed());
        assert_eq!(mailbox.held_bytes(), 0);
    }

    #[test]
    fn the_soft_limit_allows_a_burst_for_its_seconds() {
        let mut since = None;
        let limit = OutputLimit {
            hard: 0,
            soft: 10,
            soft_seconds: 60,
        };
        assert!(!exceeds(&mut since, 20, limit));
        assert!(since.is_some());
        assert!(!exceeds(&mut since, 5, limit));
        assert!(since.is_none());
        let strict = OutputLimit {
            soft_seconds: 0,
            ..limit
        };
        let mut since = Some(Instant::now() - Duration::from_millis(10));
        assert!(exceeds(&mut since, 20, strict));
    }
}
