//! The state one server shares between its connections, its commands and
//! its background tasks: the store, the settings, the counters, the client
//! and blocking registries, and the engines (write-behind). It sits below
//! both the command layer and the network layer, which reach each other only
//! through it; the engines below it are handed the pieces they need (the
//! store, the settings), never the whole.

pub mod blocking;
mod clients;
pub mod command_stats;
pub mod instantaneous;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam::utils::CachePadded;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

pub use blocking::BlockingRegistry;
pub use clients::{client_eviction_limit, ClientHandle, ClientMeta, ClientRegistry, UnblockReason};
pub use command_stats::{CommandStats, SlowLog};

use crate::config::{Config, SharedConfig};
use crate::persistence::{AccessInfo, Persistence, SaveOptions};
use crate::pubsub::PubSub;
use crate::scripting::Scripting;
use crate::store::{Clock, Store, StoreOptions};
use crate::writebehind::WriteBehind;

/// Left in the session by `WRITEBEHIND FLUSH`: the connection waits,
/// without holding a thread, until PostgreSQL has every change up to
/// `target`, or `timeout` passes, or the client is killed or unblocked,
/// or the server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushWait {
    pub target: u64,
    /// `None`: no limit.
    pub timeout: Option<std::time::Duration>,
}

/// CLIENT PAUSE: until when, and whether every command or only those
/// that write waits.
#[derive(Debug, Default)]
pub struct ClientPause {
    state: Mutex<Option<PauseState>>,
    /// A pause may be on (one load on the request path).
    active: AtomicBool,
    /// Woken when the pause is lifted or changed.
    changed: tokio::sync::Notify,
}

/// A pause in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PauseState {
    pub until: Instant,
    /// ALL (every command) rather than WRITE.
    pub all: bool,
}

impl ClientPause {
    /// Pauses clients until `until` (ALL or WRITE). As Redis, a pause
    /// already in force is only ever extended and made stricter here.
    pub fn pause(&self, until: Instant, all: bool) {
        let mut state = self.state.lock();
        let merged = match *state {
            Some(current) if current.until > Instant::now() => PauseState {
                until: current.until.max(until),
                all: current.all || all,
            },
            _ => PauseState { until, all },
        };
        *state = Some(merged);
        self.active.store(true, Ordering::Release);
        drop(state);
        self.changed.notify_waiters();
    }

    /// CLIENT UNPAUSE.
    pub fn unpause(&self) {
        *self.state.lock() = None;
        self.active.store(false, Ordering::Release);
        self.changed.notify_waiters();
    }

    #[inline]
    pub fn may_be_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The pause in force now, if any.
    pub fn current(&self) -> Option<PauseState> {
        let mut state = self.state.lock();
        match *state {
            Some(pause) if pause.until > Instant::now() => Some(pause),
            _ => {
                *state = None;
                self.active.store(false, Ordering::Release);
                None
            }
        }
    }

    /// Waits until the pause ends or changes (then check again).
    pub async fn changed_or_over(&self, until: Instant) {
        let changed = self.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if self.current().is_none_or(|now| now.until != until) {
            return;
        }
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(until.into()) => {}
        }
    }
}

/// Server-wide counters reported by INFO.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: StripedCounter,
    pub error_replies: AtomicU64,
    pub net_input_bytes: StripedCounter,
    pub net_output_bytes: StripedCounter,
    pub expired_keys: AtomicU64,
    /// Read commands' key lookups that found / missed their key (see
    /// `commands::reads`).
    pub keyspace_hits: StripedCounter,
    pub keyspace_misses: StripedCounter,
    /// Hash fields reclaimed by their own TTL.
    pub expired_subkeys: AtomicU64,
    /// Socket reads and writes (INFO total_reads/writes_processed).
    pub reads_processed: StripedCounter,
    pub writes_processed: StripedCounter,
    /// Clients closed for going past `client-query-buffer-limit`.
    pub query_buffer_limit_disconnections: AtomicU64,
    /// AUTH / HELLO AUTH attempts refused (acl_access_denied_auth).
    pub auth_failures: AtomicU64,
    /// Commands refused by the ACL: for the command, a key, a channel
    /// (acl_access_denied_cmd, _key, _channel).
    pub acl_denied: [AtomicU64; 3],
    /// Time spent in active expiry cycles, in µs.
    pub expire_cycle_us: AtomicU64,
    /// instantaneous_ops_per_sec and the kbps figures.
    pub instantaneous: instantaneous::InstantaneousMetrics,
}

impl Stats {
    /// Feeds the instantaneous figures (called about every 100 ms).
    pub fn sample_instantaneous(&self) {
        self.instantaneous.sample(
            Instant::now(),
            [
                self.commands_processed.load(),
                self.net_input_bytes.load(),
                self.net_output_bytes.load(),
            ],
        );
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for counter in [
            &self.commands_processed,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.reads_processed,
            &self.writes_processed,
        ] {
            counter.reset();
        }
        for counter in [
            &self.connections_received,
            &self.rejected_connections,
            &self.error_replies,
            &self.expired_keys,
            &self.expired_subkeys,
            &self.expire_cycle_us,
            &self.query_buffer_limit_disconnections,
            &self.auth_failures,
            &self.acl_denied[0],
            &self.acl_denied[1],
            &self.acl_denied[2],
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.instantaneous.reset();
    }
}

/// A counter every worker thread bumps on every command (or read, or
/// write): one cache line per stripe, and each thread bumps its own
/// stripe, so that the cores serving clients do not pass one line back and
/// forth. Read by summing the stripes (INFO).
///
/// A thread that has a stripe to itself bumps it with a plain load and
/// store instead of a locked add (which costs as much as the rest of a
/// counter's work and stalls the loads after it). A reset therefore does
/// not write the stripes: it records what they hold as a baseline that
/// reads subtract, so no increment can undo it.
#[derive(Debug, Default)]
pub struct StripedCounter {
    stripes: [CachePadded<CounterStripe>; STRIPES],
}

#[derive(Debug, Default)]
struct CounterStripe {
    count: AtomicU64,
    /// What `count` held at the last reset.
    baseline: AtomicU64,
}

/// More stripes than worker threads on most machines: the first
/// `STRIPES - 1` threads that count get one each, to themselves; the
/// threads after them share the last, with locked adds.
const STRIPES: usize = 16;

impl StripedCounter {
    #[inline]
    pub fn add(&self, amount: u64) {
        let stripe = this_threads_stripe();
        bump(&self.stripes[stripe.index].count, amount, stripe.exclusive);
    }

    pub fn load(&self) -> u64 {
        self.stripes
            .iter()
            .map(|stripe| {
                let baseline = stripe.baseline.load(Ordering::Relaxed);
                stripe.count.load(Ordering::Relaxed).wrapping_sub(baseline)
            })
            .fold(0, u64::wrapping_add)
    }

    pub fn reset(&self) {
        for stripe in &self.stripes {
            let count = stripe.count.load(Ordering::Relaxed);
            stripe.baseline.store(count, Ordering::Relaxed);
        }
    }
}

/// Adds `amount` to `counter`: a plain load and store when only this
/// thread ever writes it (`exclusive`), a locked add otherwise.
#[inline]
fn bump(counter: &AtomicU64, amount: u64, exclusive: bool) {
    if exclusive {
        let count = counter.load(Ordering::Relaxed);
        counter.store(count.wrapping_add(amount), Ordering::Relaxed);
    } else {
        counter.fetch_add(amount, Ordering::Relaxed);
    }
}

/// A thread's stripe of the striped counters and statistics.
#[derive(Debug, Clone, Copy)]
struct ThreadStripe {
    index: usize,
    /// No other thread writes this stripe.
    exclusive: bool,
}

/// The stripe the calling thread bumps: threads take stripes in turn.
#[inline]
fn this_threads_stripe() -> ThreadStripe {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: ThreadStripe = {
            let number = NEXT.fetch_add(1, Ordering::Relaxed);
            if number < STRIPES - 1 {
                ThreadStripe { index: number, exclusive: true }
            } else {
                ThreadStripe { index: STRIPES - 1, exclusive: false }
            }
        };
    }
    STRIPE.with(|stripe| *stripe)
}

/// State shared by every connection and background task of one server.
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    /// Read it freely; change it only through [`Shared::set_config`], which
    /// tells sessions to refresh their cached hot settings.
    pub config: SharedConfig,
    /// Bumped by every configuration change (see `Session::hot`).
    config_epoch: AtomicU64,
    pub stats: Stats,
    /// INFO commandstats, errorstats and latencystats.
    pub command_stats: CommandStats,
    /// SLOWLOG.
    pub slowlog: SlowLog,
    pub clients: ClientRegistry,
    /// Clients blocked by BLPOP & co., queued on the keys they wait for.
    pub blocking: BlockingRegistry,
    pub started: Instant,
    /// 40 hex characters identifying this run (INFO run_id).
    pub run_id: String,
    /// The addresses actually bound (port 0 resolved).
    pub bound: Mutex<Vec<SocketAddr>>,
    /// Write-behind to PostgreSQL, when `write-behind-url` is set.
    pub writebehind: Option<Arc<WriteBehind>>,
    /// The Lua VM, its script cache and function libraries.
    pub scripting: Scripting,
    /// RDB snapshots: SAVE, BGSAVE, save points, INFO persistence.
    pub persistence: Arc<Persistence>,
    /// Pub/sub, keyspace notifications, MONITOR and client-side caching.
    pub pubsub: Arc<PubSub>,
    /// CLIENT PAUSE.
    pub pause: ClientPause,
    /// ACL users and the ACL log.
    pub acl: crate::acl::Acl,
    /// The configuration file the server started with (absolute), for
    /// CONFIG REWRITE; unset: started without one.
    pub config_file: std::sync::OnceLock<std::path::PathBuf>,
    /// The audit trail (`audit-log-file`); opened by the server at start
    /// and by CONFIG SET.
    pub audit: crate::audit::AuditLog,
    /// What `rename-command` made of command names; `None` when the config
    /// file renamed nothing (one branch per command, then).
    pub renamed_commands: Option<Box<crate::config::renames::CommandRenames>>,
    /// Applies a CONFIG SET that touched `tls-*` settings (old, new):
    /// installed by the server, which owns the TLS listener and context.
    pub tls_reconfigure: std::sync::OnceLock<TlsReconfigure>,
    shutdown_tx: watch::Sender<bool>,
    stopping: AtomicBool,
}

/// See [`Shared::tls_reconfigure`]: Err is CONFIG SET's error text.
pub struct TlsReconfigure(pub Box<TlsReconfigureFn>);

/// (current configuration, configuration CONFIG SET makes).
pub type TlsReconfigureFn = dyn Fn(&Config, &Config) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for TlsReconfigure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsReconfigure")
    }
}

impl Shared {
    /// Shared state for `config`, with a fresh store. No socket is opened:
    /// this is also how tests and fuzz targets run commands in-process.
    pub fn new(config: Config) -> Self {
        Self::with_clock(config, Clock::System)
    }

    pub fn with_clock(config: Config, clock: Clock) -> Self {
        let store = Store::with_options(StoreOptions {
            databases: config.databases,
            shards: config.shards,
            clock,
        });
        // The URL was checked when it was set; a table name that cannot be
        // used shows up as the flusher's error.
        let writebehind = match WriteBehind::from_config(&config) {
            Ok(writebehind) => writebehind.map(Arc::new),
            Err(error) => {
                tracing::error!(%error, "write-behind is off");
                None
            }
        };
        if let Some(writebehind) = &writebehind {
            store.observe_changes(writebehind.clone());
        }
        let run_id: String = (0..40)
            .map(|_| char::from_digit(rand::random::<u32>() % 16, 16).unwrap_or('0'))
            .collect();
        let pubsub = Arc::new(PubSub::default());
        pubsub.configure(&config);
        store.listen(pubsub.key_signals());
        let scripting = Scripting::new();
        scripting.set_busy_threshold_ms(config.busy_reply_threshold);
        store
            .latency()
            .set_threshold_ms(config.latency_monitor_threshold);
        let acl = crate::acl::Acl::new(config.requirepass.as_deref());
        Shared {
            store,
            command_stats: CommandStats::default(),
            slowlog: SlowLog::default(),
            config: Arc::new(RwLock::new(config)),
            stats: Stats::default(),
            clients: ClientRegistry::default(),
            blocking: BlockingRegistry::default(),
            started: Instant::now(),
            run_id,
            bound: Mutex::new(Vec::new()),
            writebehind,
            scripting,
            persistence: Arc::new(Persistence::new(crate::persistence::unix_now())),
            pubsub,
            pause: ClientPause::default(),
            config_file: std::sync::OnceLock::new(),
            audit: crate::audit::AuditLog::default(),
            renamed_commands: None,
            tls_reconfigure: std::sync::OnceLock::new(),
            shutdown_tx: watch::channel(false).0,
            config_epoch: AtomicU64::new(0),
            acl,
            stopping: AtomicBool::new(false),
        }
    }

    /// Replaces the configuration (CONFIG SET).
    pub fn set_config(&self, config: Config) {
        // As Redis: setting requirepass replaces the default user's
        // passwords.
        if self.config.read().requirepass != config.requirepass {
            self.acl.set_requirepass(config.requirepass.as_deref());
        }
        self.scripting
            .set_busy_threshold_ms(config.busy_reply_threshold);
        self.pubsub.configure(&config);
        self.store
            .latency()
            .set_threshold_ms(config.latency_monitor_threshold);
        *self.config.write() = config;
        self.config_epoch.fetch_add(1, Ordering::Release);
    }

    /// An ACL user changed: sessions refresh their user (see
    /// `Session::hot`).
    pub fn acl_changed(&self) {
        self.config_epoch.fetch_add(1, Ordering::Release);
    }

    /// Changes whenever the configuration does.
    pub fn config_epoch(&self) -> u64 {
        self.config_epoch.load(Ordering::Acquire)
    }

    /// How a snapshot is written under the current settings (`dir`,
    /// `dbfilename`, `rdbcompression`, `rdbchecksum`, the eviction policy
    /// for IDLE/FREQ), with the function libraries of now.
    pub fn save_options(&self) -> SaveOptions {
        let config = self.config.read();
        let yes = |name: &str| config.get(name).is_none_or(|v| v == "yes");
        let policy = config.maxmemory_policy;
        let access = if policy.is_lfu() {
            AccessInfo::Lfu
        } else if matches!(
            policy,
            crate::store::Policy::AllKeysLru | crate::store::Policy::VolatileLru
        ) {
            AccessInfo::Lru
        } else {
            AccessInfo::None
        };
        SaveOptions {
            dir: std::path::PathBuf::from(if config.dir.is_empty() {
                "."
            } else {
                config.dir.as_str()
            }),
            dbfilename: config
                .get("dbfilename")
                .unwrap_or_else(|| "dump.rdb".to_string()),
            compress: yes("rdbcompression"),
            checksum: yes("rdbchecksum"),
            access,
            functions: self
                .scripting
                .function_list(None)
                .into_iter()
                .map(|library| library.code)
                .collect(),
            used_mem: crate::memory::used_memory(),
        }
    }

    /// Loads `dir/dbfilename` if it exists (at start, or for DEBUG
    /// RELOAD, while clients get -LOADING), function libraries included;
    /// with `merge`, keys and libraries already there are replaced.
    /// `Ok(None)`: no file.
    pub fn load_rdb(&self, merge: bool) -> Result<Option<crate::persistence::LoadStats>, String> {
        let options = self.save_options();
        let path = options.path();
        if !path.exists() {
            return Ok(None);
        }
        tracing::info!("Loading RDB file {}", path.display());
        let mut functions = |code: &[u8]| {
            self.scripting
                .function_load(code, merge)
                .map(|_| ())
                .map_err(|error| error.to_string())
        };
        // `key-load-delay` may change meanwhile (CONFIG SET works while
        // loading): read again every 256 keys, or every key while it is on.
        let mut delay = self.config.read().key_load_delay;
        let mut keys = 0u32;
        let mut after_key = || {
            keys = keys.wrapping_add(1);
            if delay != 0 || keys.is_multiple_of(256) {
                delay = self.config.read().key_load_delay;
                debug_delay(delay);
            }
            !self.is_stopping()
        };
        match self
            .persistence
            .load(&self.store, &path, merge, &mut functions, &mut after_key)
        {
            Ok(stats) => {
                tracing::info!(
                    "Done loading RDB, keys loaded: {}, keys expired: {}. DB loaded from disk: {:.3} seconds",
                    stats.keys_loaded,
                    stats.keys_expired,
                    stats.elapsed.as_secs_f64()
                );
                Ok(Some(stats))
            }
            Err(error) => Err(format!("Error loading {}: {error}", path.display())),
        }
    }

    /// Asks the server to stop: listeners close, connections end.
    pub fn request_shutdown(&self) {
        // A running script would hold its worker and the shutdown with it.
        // Its writes so far stay (and are written behind): Redis, which
        // exits at once, would lose them instead.
        self.scripting.stop_running();
        self.stopping.store(true, Ordering::Release);
        self.shutdown_tx.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }
}

/// Redis's debugDelay: sleeps `usec` microseconds; a negative `-N` sleeps
/// 1 µs once in N calls (a short sleep costs a context switch anyway).
fn debug_delay(usec: i64) {
    let usec = if usec < 0 {
        u64::from(rand::random::<u64>().is_multiple_of(usec.unsigned_abs()))
    } else {
        usec as u64
    };
    if usec > 0 {
        std::thread::sleep(std::time::Duration::from_micros(usec));
    }
}

#[cfg(test)]
mod tests {
    use super::StripedCounter;

    #[test]
    fn a_striped_counter_sums_every_threads_additions() {
        let counter = StripedCounter::default();
        std::thread::scope(|scope| {
            for _ in 0..20 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        counter.add(1);
                    }
                });
            }
        });
        counter.add(5);
        assert_eq!(counter.load(), 20_005);
        counter.reset();
        assert_eq!(counter.load(), 0);
    }
}
