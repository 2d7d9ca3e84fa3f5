//! The client registry: what CLIENT LIST shows and CLIENT KILL acts on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::pubsub::{ClientClass, ClientEvictor, ClientMemory};

/// Mutable, rarely-changing details of a client.
#[derive(Debug, Default, Clone)]
pub struct ClientMeta {
    pub name: Option<Vec<u8>>,
    pub lib_name: Option<Vec<u8>>,
    pub lib_ver: Option<Vec<u8>>,
    pub last_command: &'static str,
    pub resp: u8,
    /// Commands queued in an open MULTI, or -1 outside MULTI.
    pub multi: i64,
    pub watching: usize,
    pub no_evict: bool,
    pub no_touch: bool,
    /// Blocked by BLPOP & co. (flag `b`).
    pub blocked: bool,
    /// CLIENT UNBLOCK asked to end the blocked command this way.
    pub unblock: Option<UnblockReason>,
    /// Channels, patterns and shard channels subscribed to (CLIENT LIST's
    /// sub, psub, ssub).
    pub subscriptions: [usize; 3],
    /// Runs MONITOR (flag `O`).
    pub monitor: bool,
    /// CLIENT TRACKING is on (flag `t`).
    pub tracking: bool,
    /// Where its invalidations go (CLIENT LIST's redir: -1 without
    /// tracking, 0 for itself).
    pub redirect: i64,
    /// The ACL user, when not `default`.
    pub user: Option<String>,
}

/// How CLIENT UNBLOCK ends a blocked command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnblockReason {
    /// As if its timeout had passed.
    Timeout,
    /// With the error `-UNBLOCKED client unblocked via CLIENT UNBLOCK`.
    Error,
}

/// A connected client as other clients can see it.
#[derive(Debug)]
pub struct ClientHandle {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    /// Connected through the `unixsocket` (`addr` is then `<path>:0`).
    pub unix_socket: bool,
    created: Instant,
    /// Milliseconds since `created` of the last command.
    last_active_ms: AtomicU64,
    db: AtomicUsize,
    pub meta: Mutex<ClientMeta>,
    killed: AtomicBool,
    kill_signal: Notify,
    unblock_signal: Notify,
    /// What other clients and the server push to this one (pub/sub
    /// messages, invalidations, MONITOR lines).
    pub mailbox: Arc<crate::pubsub::Mailbox>,
    /// The connection's buffers as it last reported them (once per read
    /// batch): CLIENT LIST's qbuf, qbuf-free, obl, rbs and tot-mem.
    buffers: [AtomicUsize; 4],
}

const QUERY_LEN: usize = 0;
const QUERY_CAPACITY: usize = 1;
const OUTPUT_LEN: usize = 2;
const OUTPUT_CAPACITY: usize = 3;

impl ClientHandle {
    pub fn new(id: u64, addr: Option<SocketAddr>, laddr: Option<SocketAddr>) -> Self {
        Self::with_memory(id, addr, laddr, None)
    }

    /// A client counted toward `memory` (client eviction).
    fn with_memory(
        id: u64,
        addr: Option<SocketAddr>,
        laddr: Option<SocketAddr>,
        memory: Option<Arc<ClientMemory>>,
    ) -> Self {
        ClientHandle {
            id,
            addr: addr.map_or_else(String::new, |a| a.to_string()),
            laddr: laddr.map_or_else(String::new, |a| a.to_string()),
            unix_socket: false,
            created: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            db: AtomicUsize::new(0),
            meta: Mutex::new(ClientMeta {
                resp: 2,
                multi: -1,
                redirect: -1,
                last_command: "NULL",
                ..ClientMeta::default()
            }),
            killed: AtomicBool::new(false),
            kill_signal: Notify::new(),
            unblock_signal: Notify::new(),
            mailbox: Arc::new(crate::pubsub::Mailbox::with_memory(id, memory)),
            buffers: Default::default(),
        }
    }

    /// Redis's islocalClient: on the loopback interface, on the Unix
    /// socket, or in-process (no address at all).
    pub fn is_local(&self) -> bool {
        self.unix_socket
            || self.addr.is_empty()
            || self
                .addr
                .parse::<SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback())
    }

    /// The connection's query buffer holds `len` bytes of `capacity`.
    pub fn set_query_buffer(&self, len: usize, capacity: usize) {
        self.buffers[QUERY_LEN].store(len, Ordering::Relaxed);
        self.buffers[QUERY_CAPACITY].store(capacity, Ordering::Relaxed);
        self.report_buffer_bytes();
    }

    /// Client eviction sees the buffers' new size.
    fn report_buffer_bytes(&self) {
        self.mailbox.set_buffer_bytes(
            self.buffers[QUERY_CAPACITY].load(Ordering::Relaxed)
                + self.buffers[OUTPUT_CAPACITY].load(Ordering::Relaxed),
        );
    }

    /// (query buffer, reply buffer) lengths as last reported.
    pub fn buffer_lengths(&self) -> (usize, usize) {
        (
            self.buffers[QUERY_LEN].load(Ordering::Relaxed),
            self.buffers[OUTPUT_LEN].load(Ordering::Relaxed),
        )
    }

    /// The connection's reply buffer holds `len` bytes of `capacity`.
    pub fn set_output_buffer(&self, len: usize, capacity: usize) {
        self.buffers[OUTPUT_LEN].store(len, Ordering::Relaxed);
        self.buffers[OUTPUT_CAPACITY].store(capacity, Ordering::Relaxed);
        self.report_buffer_bytes();
    }

    /// Records the command the client runs, at `at` (the connection passes
    /// the time of the read that brought it: one clock read per batch).
    /// `previous` is the name this connection recorded last: the same
    /// command again (the usual case) takes no lock.
    pub fn record_command(&self, name: &'static str, previous: &'static str, at: Instant) {
        let since_created = at.saturating_duration_since(self.created).as_millis() as u64;
        self.last_active_ms.store(since_created, Ordering::Relaxed);
        if !std::ptr::eq(name, previous) {
            self.meta.lock().last_command = name;
        }
    }

    /// Records activity at `at` (a read), for the idle sweep.
    pub fn touch(&self, at: Instant) {
        let since_created = at.saturating_duration_since(self.created).as_millis() as u64;
        self.last_active_ms.store(since_created, Ordering::Relaxed);
    }

    /// Milliseconds since the client's last read or command.
    fn idle_ms(&self) -> u64 {
        let active = self.last_active_ms.load(Ordering::Relaxed);
        (self.created.elapsed().as_millis() as u64).saturating_sub(active)
    }

    pub fn set_db(&self, db: usize) {
        self.db.store(db, Ordering::Relaxed);
    }

    /// Asks the client's connection to close.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        // Every wait: the connection's own, and a blocked command's.
        self.kill_signal.notify_waiters();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Resolves once [`ClientHandle::kill`] was called.
    pub async fn killed(&self) {
        loop {
            // Waiting before looking at the flag: a kill in between wakes
            // this wait (`notify_waiters` keeps no permit for later ones).
            let notified = self.kill_signal.notified();
            if self.is_killed() {
                return;
            }
            notified.await;
        }
    }

    /// Marks the client blocked (or not), forgetting any earlier CLIENT
    /// UNBLOCK request.
    pub fn set_blocked(&self, blocked: bool) {
        let mut meta = self.meta.lock();
        meta.blocked = blocked;
        meta.unblock = None;
    }

    /// CLIENT UNBLOCK: asks the blocked command to end; false if the client
    /// is not blocked.
    pub fn request_unblock(&self, reason: UnblockReason) -> bool {
        let mut meta = self.meta.lock();
        if !meta.blocked {
            return false;
        }
        meta.unblock = Some(reason);
        drop(meta);
        self.unblock_signal.notify_one();
        true
    }

    /// Resolves with the reason once [`ClientHandle::request_unblock`] was
    /// called for the current block.
    pub async fn unblock_requested(&self) -> UnblockReason {
        loop {
            if let Some(reason) = self.meta.lock().unblock.take() {
                return reason;
            }
            self.unblock_signal.notified().await;
        }
    }

    /// Seconds since the client connected.
    pub fn age_secs(&self) -> u64 {
        self.created.elapsed().as_secs()
    }

    /// Seconds since the client's last command.
    pub fn idle_secs(&self) -> u64 {
        self.idle_ms() / 1000
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis 7.2's format.
    pub fn info_line(&self) -> String {
        let meta = self.meta.lock().clone();
        // What waits in the mailbox is Redis's reply list (omem).
        let pushed = self.mailbox.held_bytes();
        let [query_len, query_capacity, output_len, output_capacity] =
            [QUERY_LEN, QUERY_CAPACITY, OUTPUT_LEN, OUTPUT_CAPACITY]
                .map(|i| self.buffers[i].load(Ordering::Relaxed));
        let text = |v: &Option<Vec<u8>>| {
            v.as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned()
        };
        let mut flags = String::new();
        if meta.multi >= 0 {
            flags.push('x');
        }
        if meta.blocked {
            flags.push('b');
        }
        if self.unix_socket {
            flags.push('U');
        }
        if meta.no_evict {
            flags.push('e');
        }
        if meta.no_touch {
            flags.push('T');
        }
        if meta.monitor {
            flags.push('O');
        }
        if self.mailbox.class() == crate::pubsub::ClientClass::PubSub {
            flags.push('P');
        }
        if meta.tracking {
            flags.push('t');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} \
             watch={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp=0 obl={} oll=0 omem={} tot-mem={} events=r \
             cmd={} user={} redir={} resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            text(&meta.name),
            self.age_secs(),
            self.idle_secs(),
            flags,
            self.db.load(Ordering::Relaxed),
            meta.subscriptions[0],
            meta.subscriptions[1],
            meta.subscriptions[2],
            meta.multi,
            meta.watching,
            query_len,
            query_capacity.saturating_sub(query_len),
            output_capacity,
            output_len,
            pushed,
            query_capacity + output_capacity + pushed,
            meta.last_command,
            meta.user.as_deref().unwrap_or("default"),
            meta.redirect,
            meta.resp,
            text(&meta.lib_name),
            text(&meta.lib_ver),
        )
    }
}

/// The client eviction limit in bytes for a `maxmemory-clients` value as
/// CONFIG GET shows it (bytes, or a percentage of `maxmemory`), as Redis 7's
/// getClientEvictionLimit: 0 (off) for 0 or a percentage without
/// `maxmemory`, and never under 128 KiB, so that a server cannot be set up
/// to evict every client at once.
pub fn client_eviction_limit(setting: &str, maxmemory: u64) -> u64 {
    let bytes = match setting.strip_suffix('%') {
        Some(percent) => {
            let percent: u64 = percent.parse().unwrap_or(0);
            (maxmemory as f64 * percent as f64 / 100.0) as u64
        }
        None => setting.parse().unwrap_or(0),
    };
    if bytes == 0 {
        0
    } else {
        bytes.max(128 * 1024)
    }
}

/// All connected clients, by id.
#[derive(Debug)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Arc<ClientMap>,
    /// Client eviction (`maxmemory-clients`).
    memory: Arc<ClientMemory>,
}

/// The connected clients; evicts them for client eviction.
#[derive(Debug, Default)]
struct ClientMap {
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    /// Held by the one eviction running (others skip: it is doing their
    /// work).
    evicting: Mutex<()>,
}

impl std::ops::Deref for ClientMap {
    type Target = Mutex<BTreeMap<u64, Arc<ClientHandle>>>;
    fn deref(&self) -> &Self::Target {
        &self.clients
    }
}

impl Default for ClientRegistry {
    fn default() -> Self {
        let clients = Arc::new(ClientMap::default());
        let memory = Arc::new(ClientMemory::default());
        let evictor: Arc<dyn ClientEvictor> = clients.clone();
        memory.set_evictor(Arc::downgrade(&evictor));
        ClientRegistry {
            next_id: AtomicU64::new(0),
            clients,
            memory,
        }
    }
}

impl ClientEvictor for ClientMap {
    /// Redis 7's evictClients: while the normal and pub/sub clients use
    /// together at least the limit, the one using the most that may be
    /// evicted (not NO-EVICT) is closed, counted and logged. A sort of the
    /// candidates instead of Redis's buckets: this only runs past the limit.
    fn evict_clients(&self, memory: &ClientMemory) {
        let Some(_running) = self.evicting.try_lock() else {
            return;
        };
        let clients: Vec<Arc<ClientHandle>> = self.clients.lock().values().cloned().collect();
        let mut candidates: Vec<(usize, Arc<ClientHandle>)> = clients
            .into_iter()
            .filter(|client| {
                !client.is_killed()
                    && client.mailbox.class() != ClientClass::Replica
                    && !client.meta.lock().no_evict
            })
            .map(|client| (client.mailbox.memory_bytes(), client))
            .collect();
        candidates.sort_unstable_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        for (_, client) in candidates {
            if !memory.over() {
                break;
            }
            tracing::info!("Evicting client: {}", client.info_line());
            client.kill();
            // Gone for the accounting at once (its connection closes
            // later): what it held is freed, nothing more reaches it.
            client.mailbox.close();
            client.mailbox.unaccount();
            memory.count_eviction();
        }
    }
}

impl ClientRegistry {
    /// Client eviction's accounting and limit.
    pub fn memory(&self) -> &Arc<ClientMemory> {
        &self.memory
    }

    /// Sets the client eviction limit in bytes (0: off). Turned on, every
    /// client is counted afresh, and clients are evicted if already over.
    pub fn set_eviction_limit(&self, limit: u64) {
        let before = self.memory.set_limit(limit);
        if limit > 0 && before == 0 {
            for client in self.list() {
                client.mailbox.reaccount();
            }
        }
        if limit > 0 {
            self.memory.evict_if_over();
        }
    }

    /// Registers a new client and returns its handle (ids start at 1).
    pub fn register(
        &self,
        addr: Option<SocketAddr>,
        laddr: Option<SocketAddr>,
    ) -> Arc<ClientHandle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let handle = Arc::new(self.new_handle(id, addr, laddr));
        self.clients.lock().insert(id, handle.clone());
        handle
    }

    fn new_handle(
        &self,
        id: u64,
        addr: Option<SocketAddr>,
        laddr: Option<SocketAddr>,
    ) -> ClientHandle {
        ClientHandle::with_memory(id, addr, laddr, Some(self.memory.clone()))
    }

    /// Registers a new client unless `max` are connected already: the
    /// check and the registration are one step, so that clients connecting
    /// together cannot pass `maxclients` between them.
    pub fn register_within(
        &self,
        max: usize,
        addr: Option<SocketAddr>,
        laddr: Option<SocketAddr>,
    ) -> Option<Arc<ClientHandle>> {
        let mut clients = self.clients.lock();
        if clients.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let handle = Arc::new(self.new_handle(id, addr, laddr));
        clients.insert(id, handle.clone());
        Some(handle)
    }

    /// [`ClientRegistry::register_within`] for a client of the Unix socket
    /// at `path`: its address and local address are `<path>:0`, as Redis
    /// shows them.
    pub fn register_unix_within(&self, max: usize, path: &str) -> Option<Arc<ClientHandle>> {
        let mut clients = self.clients.lock();
        if clients.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut handle = self.new_handle(id, None, None);
        handle.addr = format!("{path}:0");
        handle.laddr = handle.addr.clone();
        handle.unix_socket = true;
        let handle = Arc::new(handle);
        clients.insert(id, handle.clone());
        Some(handle)
    }

    pub fn unregister(&self, id: u64) {
        if let Some(client) = self.clients.lock().remove(&id) {
            client.mailbox.unaccount();
        }
    }

    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the connected clients, by ascending id.
    pub fn list(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.lock().values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.clients.lock().get(&id).cloned()
    }

    /// The `timeout` setting, as Redis's clientsCron applies it: closes
    /// every client that has neither sent nor been sent anything for longer
    /// than `timeout`, except blocked ones (their command has its own
    /// timeout). A background thread calls it about once a second, so that
    /// no connection arms a timer per read. Returns how many it closed.
    pub fn close_idle(&self, timeout: std::time::Duration) -> usize {
        let limit = timeout.as_millis() as u64;
        let idle: Vec<Arc<ClientHandle>> = self
            .clients
            .lock()
            .values()
            .filter(|client| client.idle_ms() > limit && !client.is_killed())
            .cloned()
            .collect();
        let mut closed = 0;
        for client in idle {
            if client.meta.lock().blocked {
                continue;
            }
            tracing::debug!(client = client.id, "Closing idle client");
            client.kill();
            closed += 1;
        }
        closed
    }
}

#[cfg(test)]
mod eviction_limit_tests {
    use super::client_eviction_limit;

    #[test]
    fn limits_follow_redis() {
        assert_eq!(client_eviction_limit("0", 1 << 30), 0);
        assert_eq!(client_eviction_limit("10%", 0), 0);
        assert_eq!(client_eviction_limit("10%", 10 << 20), 1 << 20);
        assert_eq!(client_eviction_limit("1", 0), 128 * 1024);
        assert_eq!(client_eviction_limit("1048576", 0), 1 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_clients() {
        let tcp = |addr: &str| ClientHandle::new(1, addr.parse().ok(), None).is_local();
        assert!(tcp("127.0.0.1:5000"));
        assert!(tcp("[::1]:5000"));
        assert!(!tcp("10.1.2.3:5000"));
        // In-process: no address.
        assert!(ClientHandle::new(1, None, None).is_local());
        let registry = ClientRegistry::default();
        let unix = registry.register_unix_within(10, "/tmp/l.sock").unwrap();
        assert!(unix.is_local());
        assert_eq!(unix.addr, "/tmp/l.sock:0");
        assert!(unix
            .info_line()
            .contains(" addr=/tmp/l.sock:0 laddr=/tmp/l.sock:0 "));
        assert!(unix.info_line().contains(" flags=U "));
    }
}
