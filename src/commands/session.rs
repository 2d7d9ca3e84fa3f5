//! Per-connection command state: selected database, protocol, auth,
//! transaction queue and watched keys.

use std::sync::Arc;

use crate::shared::blocking::BlockRequest;
use crate::shared::{ClientHandle, Shared};

/// The settings consulted on every command (see [`Session::hot`]).
#[derive(Debug, Clone, Copy)]
pub struct HotSettings {
    /// `Shared::config_epoch` when this copy was taken.
    epoch: u64,
    /// The default user needs a password (or is off): new connections
    /// must authenticate.
    pub requirepass_set: bool,
    /// The session's user allows every command, key and channel: the ACL
    /// check is skipped (refreshed with the rest when the epoch moves,
    /// which every ACL change bumps, or when the session's user changes).
    pub acl_open: bool,
    /// `proto-max-bulk-len`.
    pub max_bulk_len: usize,
    /// `client-query-buffer-limit`.
    pub query_buffer_limit: u64,
    pub memory: crate::store::MemoryLimits,
    /// `write-behind-read-through` (only meaningful with write-behind on).
    pub read_through: bool,
    /// `slowlog-log-slower-than` (µs; negative: off).
    pub slowlog_slower_than: i64,
    /// `slowlog-max-len`.
    pub slowlog_max_len: usize,
    /// `latency-monitor-threshold` (ms; 0: off).
    pub latency_threshold_ms: u64,
    /// `latency-tracking`.
    pub latency_tracking: bool,
}

/// A key WATCHed by this client, with what it looked like then.
#[derive(Debug, Clone)]
pub struct WatchedKey {
    pub db: usize,
    pub key: Vec<u8>,
    /// The key's version in its shard when WATCH ran.
    pub version: u64,
    /// Whether the key existed (unexpired) when WATCH ran: if it then expires
    /// before EXEC, the transaction aborts, as in Redis 7.
    pub existed: bool,
}

/// The channels and patterns a client subscribes to, in subscription
/// order.
#[derive(Debug, Default)]
pub struct Subscriptions {
    pub channels: indexmap::IndexSet<bytes::Bytes>,
    pub patterns: indexmap::IndexSet<bytes::Bytes>,
    pub shard_channels: indexmap::IndexSet<bytes::Bytes>,
}

impl Subscriptions {
    /// Redis's clientTotalPubSubSubscriptionCount.
    pub fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }
}

/// CLIENT REPLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// No reply to the next command.
    Skip,
    /// Set by CLIENT REPLY SKIP: becomes `Skip` once that command is done.
    SkipNext,
}

/// Commands queued between MULTI and EXEC.
#[derive(Debug, Default)]
pub struct MultiState {
    pub queued: Vec<Vec<Vec<u8>>>,
    /// A queued command was rejected (unknown, wrong arity...): EXEC answers
    /// EXECABORT.
    pub had_error: bool,
}

/// One client's state, owned by its connection task.
#[derive(Debug)]
pub struct Session {
    pub db: usize,
    /// The settings every command consults, cached (see [`Session::hot`]).
    hot: Option<HotSettings>,
    /// When the connection last received requests (CLIENT LIST idle=).
    pub last_read: std::time::Instant,
    pub authenticated: bool,
    /// The ACL user this connection runs as (refreshed from the ACL when
    /// the epoch moves).
    pub user: Arc<crate::acl::User>,
    pub multi: Option<MultiState>,
    pub watched: Vec<WatchedKey>,
    /// Set by QUIT (and fatal errors): close once the replies are written.
    pub close_after_reply: bool,
    /// The registry entry other clients see (CLIENT LIST, CLIENT KILL).
    pub handle: Arc<ClientHandle>,
    /// Whether a blocking command may block this client: only a network
    /// connection can wait (in-process callers get the timeout reply at
    /// once, as inside MULTI).
    pub blocking_allowed: bool,
    /// Left by a blocking command that could not be served and wrote no
    /// reply: the connection blocks the client (see `shared::blocking`).
    pub block: Option<BlockRequest>,
    /// Left by `WRITEBEHIND FLUSH`: the connection waits for the flush.
    pub flush_wait: Option<crate::shared::FlushWait>,
    /// DEBUG SLEEP: how long the connection waits after this command.
    pub debug_sleep: Option<std::time::Duration>,
    /// While a blocked client's command runs again after a wakeup: the keys
    /// it was woken for, in the order they got data. As Redis 7.0 serves a
    /// blocked client from the key that became ready (first), the command
    /// tries those keys first, and a key of another type no longer fails it.
    pub woken_by: Option<Vec<Vec<u8>>>,
    /// True while a blocked command runs again (see `rerun_blocked`).
    pub rerunning: bool,
    /// What a blocked XREAD reads after, per stream, resolved (`$`) when
    /// it blocked: its reruns use these.
    pub xread_after: Vec<crate::store::types::StreamId>,
    /// The store's time, read once for a run of up to 16 pipelined
    /// requests (and again after anything the run waited for): the
    /// commands of the run see the same now, as those of a MULTI do.
    /// (Redis 7.0 reads its clock once per command.) `None`: each command
    /// reads the clock.
    pub batch_time_ms: Option<u64>,
    /// The command this session last recorded in its registry entry
    /// (CLIENT LIST cmd=).
    pub last_command: &'static str,
    /// Pub/sub subscriptions.
    pub subscriptions: Subscriptions,
    /// CLIENT TRACKING is on, in this mode.
    pub tracking: Option<crate::pubsub::TrackingMode>,
    /// CLIENT CACHING YES (OPTIN) or NO (OPTOUT) was sent: it applies to
    /// the next command (or transaction) only.
    pub caching: bool,
    /// CLIENT REPLY.
    pub reply_mode: ReplyMode,
    /// Whether this client runs MONITOR.
    pub monitoring: bool,
    /// When the previous command of this run of requests ended: the next
    /// one is timed from there, so that timing a command costs one clock
    /// read. Cleared whenever the connection reads or waits (see
    /// [`Session::begin_batch`]), so that no wait is counted as a run.
    pub run_clock: Option<std::time::Instant>,
    /// How deep in nested runs the current command is (inside EXEC or a
    /// script: 1).
    pub(crate) nesting: u32,
    /// The last error a command run by a script replied (counted then):
    /// the script failing with it does not count it again, as Redis.
    pub(crate) nested_error: Option<Vec<u8>>,
    /// A script is running the commands now nested: the slow log shows
    /// them as run by Redis's script client (no address, no name).
    pub(crate) in_script: bool,
}

impl Session {
    pub fn new(handle: Arc<ClientHandle>) -> Self {
        Session {
            db: 0,
            hot: None,
            last_read: std::time::Instant::now(),
            authenticated: false,
            user: Arc::new(crate::acl::User::default_user()),
            multi: None,
            watched: Vec::new(),
            close_after_reply: false,
            handle,
            blocking_allowed: false,
            block: None,
            flush_wait: None,
            debug_sleep: None,
            woken_by: None,
            rerunning: false,
            xread_after: Vec::new(),
            batch_time_ms: None,
            last_command: "NULL",
            subscriptions: Subscriptions::default(),
            tracking: None,
            caching: false,
            reply_mode: ReplyMode::On,
            monitoring: false,
            run_clock: None,
            nesting: 0,
            nested_error: None,
            in_script: false,
        }
    }

    /// The connection starts a run of requests at `now_ms` (after a read
    /// or a wait): commands see that time, and the first is timed afresh.
    pub fn begin_batch(&mut self, now_ms: u64) {
        self.batch_time_ms = Some(now_ms);
        self.run_clock = None;
    }

    /// The run of requests is over: the next reads the clock again.
    pub fn end_batch(&mut self) {
        self.batch_time_ms = None;
        self.run_clock = None;
    }

    /// Whether commands other than AUTH/HELLO... are refused with NOAUTH.
    pub fn requires_auth(&mut self, shared: &Shared) -> bool {
        !self.authenticated && self.hot(shared).requirepass_set
    }

    /// The settings consulted on every command, from this session's copy:
    /// refreshed only when the configuration changed, so that commands take
    /// no shared lock to read them.
    #[inline]
    pub fn hot(&mut self, shared: &Shared) -> HotSettings {
        let epoch = shared.config_epoch();
        match self.hot {
            Some(hot) if hot.epoch == epoch => hot,
            _ => self.refresh_hot(shared, epoch),
        }
    }

    /// Takes a new copy of the settings (the configuration changed): out
    /// of line, so that `hot` inlines to a load, a compare and the fields
    /// its caller reads.
    #[cold]
    #[inline(never)]
    fn refresh_hot(&mut self, shared: &Shared, epoch: u64) -> HotSettings {
        self.refresh_user(shared);
        let default = shared.acl.default_user();
        let config = shared.config.read();
        let hot = HotSettings {
            epoch,
            requirepass_set: !(default.nopass && default.enabled),
            acl_open: self.user.unrestricted(),
            max_bulk_len: config.proto_max_bulk_len as usize,
            query_buffer_limit: config.client_query_buffer_limit,
            memory: config.memory_limits(),
            read_through: config.write_behind_read_through,
            slowlog_slower_than: config.slowlog_log_slower_than,
            slowlog_max_len: config.slowlog_max_len.min(usize::MAX as u64) as usize,
            latency_threshold_ms: config.latency_monitor_threshold,
            latency_tracking: config.latency_tracking,
        };
        self.hot = Some(hot);
        hot
    }

    /// The session now runs as `user` (AUTH, HELLO AUTH, RESET).
    pub fn set_user(&mut self, user: Arc<crate::acl::User>) {
        let name = (user.name != "default").then(|| user.name.clone());
        self.handle.meta.lock().user = name;
        self.user = user;
        self.hot = None;
    }

    /// Picks up the current definition of the session's user; a deleted
    /// user's connection closes (its commands are refused until then).
    fn refresh_user(&mut self, shared: &Shared) {
        match shared.acl.user(&self.user.name) {
            Some(user) => self.user = user,
            None => {
                self.user = Arc::new(crate::acl::User::new(&self.user.name, false));
                self.close_after_reply = true;
            }
        }
    }

    /// Marks the open transaction (if any) as failed.
    pub fn flag_transaction_error(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.had_error = true;
        }
    }

    pub fn queue(&mut self, argv: &[&[u8]]) {
        if let Some(multi) = &mut self.multi {
            multi.queued.push(argv.iter().map(|a| a.to_vec()).collect());
            // CLIENT LIST's multi= counts the queued commands.
            self.handle.meta.lock().multi = multi.queued.len() as i64;
        }
    }

    pub fn set_db(&mut self, db: usize) {
        self.db = db;
        self.handle.set_db(db);
    }
}
