//! Every setting Larder has, in one place: its redis.conf name, default, and
//! whether `CONFIG SET` may change it at run time. The CLI flags, the config
//! file and `CONFIG GET/SET` all go through [`SETTINGS`].

use std::collections::BTreeMap;
use std::path::Path;

pub mod keyspace_events;
pub mod limits;
pub mod logging;
pub mod output_limits;
pub mod pg_tls;
pub mod redis_params;
pub mod renames;
pub mod rewrite;
pub mod writebehind;

use crate::store::{MemoryLimits, Policy};
pub use redis_params::Mutability;
pub use writebehind::{JournalFsync, KeyFilter, Mapping};

/// The settings of a running server, shared by its parts: read freely;
/// changed only through `Shared::set_config` (CONFIG SET).
pub type SharedConfig = std::sync::Arc<parking_lot::RwLock<Config>>;

/// The server's configuration.
///
/// ```
/// use larder::Config;
///
/// let mut config = Config::default();
/// assert_eq!(config.port, 6379);
/// config.set("port", "0").unwrap();
/// config.set("maxclients", "100").unwrap();
/// assert_eq!(config.get("maxclients").as_deref(), Some("100"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Addresses to listen on (`bind`).
    pub bind: Vec<String>,
    pub port: u16,
    /// Port of the Prometheus endpoint (`metrics-port`, 0: off).
    pub metrics_port: u16,
    /// Address the Prometheus endpoint listens on (`metrics-bind`).
    pub metrics_bind: String,
    /// Number of logical databases.
    pub databases: usize,
    /// Password for the default user (`requirepass`); `None`: no auth.
    pub requirepass: Option<String>,
    /// `user` lines of the configuration file, each split into words
    /// (name, then rules); applied by the ACL at start-up.
    pub acl_users: Vec<Vec<Vec<u8>>>,
    /// Maximum simultaneous clients.
    pub maxclients: usize,
    /// Close clients idle for this many seconds (0: never).
    pub timeout: u64,
    /// How long a script runs before other clients get BUSY and SCRIPT
    /// KILL may stop it, in ms (`busy-reply-threshold`, alias
    /// `lua-time-limit`).
    pub busy_reply_threshold: u64,
    /// Commands slower than this many microseconds go to the slow log
    /// (`slowlog-log-slower-than`; -1: none, 0: all).
    pub slowlog_log_slower_than: i64,
    /// Entries the slow log keeps (`slowlog-max-len`).
    pub slowlog_max_len: u64,
    /// Events at least this many milliseconds long are sampled by the
    /// latency monitor (`latency-monitor-threshold`; 0: off).
    pub latency_monitor_threshold: u64,
    /// Per-command latency histograms (`latency-tracking`).
    pub latency_tracking: bool,
    /// The percentiles INFO latencystats reports
    /// (`latency-tracking-info-percentiles`).
    pub latency_tracking_info_percentiles: Vec<f64>,
    /// Which keyspace notifications are published
    /// (`notify-keyspace-events`, see [`keyspace_events`]).
    pub notify_keyspace_events: u32,
    /// `client-output-buffer-limit`, by client class.
    pub client_output_buffer_limit: output_limits::OutputLimits,
    /// Keys the client-side caching table may remember
    /// (`tracking-table-max-keys`; 0: no limit).
    pub tracking_table_max_keys: u64,
    /// Longest bulk argument a client may send, in bytes.
    pub proto_max_bulk_len: u64,
    /// Largest unparsed request a client may accumulate, in bytes.
    pub client_query_buffer_limit: u64,
    /// TCP keepalive interval in seconds (0: off).
    pub tcp_keepalive: u64,
    /// Longest a shutdown may take, in seconds (`shutdown-timeout`): then
    /// the process exits, leaving what it could not finish.
    pub shutdown_timeout: u64,
    /// Background task frequency (active expiry passes per second).
    pub hz: u64,
    /// Microseconds slept per key loaded from an RDB file (`key-load-delay`,
    /// Redis's debugging parameter, for tests that need a long load).
    pub key_load_delay: i64,
    /// Log verbosity: debug, verbose, notice, warning, nothing.
    pub loglevel: String,
    /// File the log is appended to (`logfile`); empty: standard output.
    pub logfile: String,
    /// Log to syslog too (`syslog-enabled`).
    pub syslog_enabled: bool,
    /// `syslog-ident`.
    pub syslog_ident: String,
    /// `syslog-facility`: user, local0...local7.
    pub syslog_facility: String,
    /// Who may run DEBUG (`enable-debug-command`): no, yes, local.
    pub enable_debug_command: String,
    /// Refuse clients from other hosts while the default user has no
    /// password (`protected-mode`), as Redis.
    pub protected_mode: bool,
    /// Path of a Unix socket to listen on as well (`unixsocket`; empty:
    /// none).
    pub unixsocket: String,
    /// The Unix socket's permissions (`unixsocketperm`, octal; 0: as the
    /// umask leaves them).
    pub unixsocketperm: u32,
    /// TLS (`tls-port` and the `tls-*` settings the server acts on).
    pub tls: TlsConfig,
    /// File the audit trail is appended to (`audit-log-file`; empty: off).
    /// See `crate::audit`.
    pub audit_log_file: String,
    /// `rename-command` directives of the config file, in order: (name,
    /// new name; empty: the command is removed). Checked against the
    /// command table when the server starts.
    pub rename_commands: Vec<(String, String)>,
    /// Number of keyspace shards (Larder-specific; power of two).
    pub shards: usize,
    /// Memory limit in bytes (`maxmemory`, 0: none).
    pub maxmemory: u64,
    /// What to evict when over `maxmemory` (`maxmemory-policy`).
    pub maxmemory_policy: Policy,
    /// Keys sampled per eviction (`maxmemory-samples`).
    pub maxmemory_samples: u32,
    /// `lfu-log-factor`.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time`, in minutes.
    pub lfu_decay_time: u32,
    /// DEL frees big values in the background, as UNLINK
    /// (`lazyfree-lazy-user-del`).
    pub lazyfree_lazy_user_del: bool,
    /// FLUSHALL and FLUSHDB without SYNC/ASYNC free in the background
    /// (`lazyfree-lazy-user-flush`).
    pub lazyfree_lazy_user_flush: bool,
    /// PostgreSQL connection string for write-behind (`write-behind-url`);
    /// empty: write-behind is off.
    pub write_behind_url: String,
    /// Table written behind to (`write-behind-table`), `name` or
    /// `schema.name`; created if missing.
    pub write_behind_table: String,
    /// Globs of the keys written behind (`write-behind-match`).
    pub write_behind_match: String,
    /// Per-database globs (`write-behind-match-db`): database, glob pairs.
    pub write_behind_match_db: String,
    /// Longest a change waits before it is sent, in ms (`write-behind-delay`).
    pub write_behind_delay: u64,
    /// Keys per batch statement (`write-behind-batch-size`).
    pub write_behind_batch_size: usize,
    /// Pending keys past which writes to written-behind keys are refused
    /// (`write-behind-max-pending`).
    pub write_behind_max_pending: usize,
    /// PostgreSQL connections (`write-behind-pool-size`).
    pub write_behind_pool_size: usize,
    /// How long shutdown waits for the backlog to reach PostgreSQL, in ms
    /// (`write-behind-shutdown-timeout`).
    pub write_behind_shutdown_timeout: u64,
    /// How long `WRITEBEHIND FLUSH` without a timeout waits at most, in ms
    /// (`write-behind-flush-timeout`, 0: no limit).
    pub write_behind_flush_timeout: u64,
    /// Keys mapped to rows of existing tables (`write-behind-map`; see
    /// the write-behind engine's `mapping` module).
    pub write_behind_map: Vec<Mapping>,
    /// Table poison rows are written to (`write-behind-dead-letter-table`);
    /// created if missing.
    pub write_behind_dead_letter_table: String,
    /// Consecutive failures that open the circuit breaker
    /// (`write-behind-circuit-failures`).
    pub write_behind_circuit_failures: u32,
    /// How long an open circuit waits before its probe, in ms
    /// (`write-behind-circuit-cooldown`).
    pub write_behind_circuit_cooldown: u64,
    /// Expired keys delete their rows (`write-behind-expiry-deletes`).
    pub write_behind_expiry_deletes: bool,
    /// Load the write-behind table at start-up (`write-behind-warm-start`).
    pub write_behind_warm_start: bool,
    /// Load missing written-behind keys on access
    /// (`write-behind-read-through`).
    pub write_behind_read_through: bool,
    /// Milliseconds one command waits for its read-through lookups
    /// (`write-behind-read-timeout`).
    pub write_behind_read_timeout: u64,
    /// Working directory for files Larder writes (`dir`): the write-behind
    /// journal, the RDB file.
    pub dir: String,
    /// RDB save points (`save`): a background save starts when at least
    /// `.1` changes happened and `.0` seconds passed since the last save.
    /// None by default (Redis has three): Larder's persistence is
    /// write-behind, and a server started for a test leaves no dump.rdb.
    pub save_points: Vec<(u64, u64)>,
    /// Keep a local journal of changes PostgreSQL has not confirmed yet
    /// (`write-behind-journal`).
    pub write_behind_journal: bool,
    /// When the journal is fsynced (`write-behind-fsync`).
    pub write_behind_fsync: JournalFsync,
    /// Past this size the journal is rewritten
    /// (`write-behind-journal-max-size`, 0: never).
    pub write_behind_journal_max_size: u64,
    /// Redis tuning parameters that have no meaning in Larder (encoding
    /// thresholds and the like): accepted, kept and reported back so that
    /// existing redis.conf files and tools work.
    pub accepted_only: BTreeMap<&'static str, String>,
}

/// The TLS settings, as Redis's `tls-*` (see the server's tls module for
/// what each one does). Kept as given: checked when the TLS context is
/// built (start-up, CONFIG SET), as in Redis.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    /// `tls-port` (0: no TLS listener).
    pub port: u16,
    pub cert_file: String,
    pub key_file: String,
    pub key_file_pass: String,
    pub ca_cert_file: String,
    pub ca_cert_dir: String,
    /// `tls-auth-clients`: "yes", "no" or "optional".
    pub auth_clients: String,
    /// `tls-protocols`, e.g. "TLSv1.2 TLSv1.3" (empty: both).
    pub protocols: String,
    /// `tls-ciphers`: TLS 1.2 suites, OpenSSL names.
    pub ciphers: String,
    /// `tls-ciphersuites`: TLS 1.3 suites.
    pub ciphersuites: String,
    pub prefer_server_ciphers: bool,
    pub session_caching: bool,
    pub session_cache_size: u64,
    /// Seconds.
    pub session_cache_timeout: u64,
}

/// Old names Redis still accepts for settings Larder acts on (those of the
/// accepted-only parameters are in [`redis_params::PARAMS`]).
const SETTING_ALIASES: &[(&str, &str)] = &[("lua-time-limit", "busy-reply-threshold")];

/// The config file directive that renames (or removes) a command; not a
/// setting: CONFIG GET and SET do not know it, as in Redis.
pub const RENAME_COMMAND: &str = "rename-command";

/// How a setting's value is written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    /// A byte count with Redis's units (1k, 1kb, 5mb, 1gb...).
    Memory,
    /// yes or no.
    YesNo,
    /// One of a list of names.
    Enum,
    /// A string, written quoted by CONFIG REWRITE.
    Text,
    /// A string where empty means "not set" (CONFIG REWRITE removes it).
    NullableText,
    /// Space-separated words, written as they are.
    Words,
}

/// One setting.
#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
    /// Whether CONFIG SET may change it while the server runs.
    pub mutable: bool,
    pub default: &'static str,
    pub description: &'static str,
    get: fn(&Config) -> String,
    set: fn(&mut Config, &str) -> Result<(), String>,
}

/// An integer as Redis's string2ll reads it (no sign `+`, no spaces).
fn int(value: &str) -> Result<i64, String> {
    redis_params::string2ll(value)
        .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())
}

fn parse_yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

fn yes_no_text(on: bool) -> String {
    if on { "yes" } else { "no" }.to_string()
}

fn ranged(value: &str, min: i64, max: i64) -> Result<i64, String> {
    let n = int(value)?;
    if n < min || n > max {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(n)
}

/// Parses a byte count with Redis's units: k=1000, kb=1024, m, mb, g, gb
/// (as Redis's memtoull: digits and a unit, nothing else).
pub fn parse_memory(value: &str) -> Option<u64> {
    redis_params::memtoull(value)
}

/// `latency-tracking-info-percentiles`: numbers from 0 to 100, separated
/// by spaces ("" for none), with Redis's errors.
fn parse_percentiles(value: &str) -> Result<Vec<f64>, String> {
    value
        .split_ascii_whitespace()
        .map(|word| {
            let percentile = crate::numbers::strict_f64(word.as_bytes())
                .ok_or("Invalid latency-tracking-info-percentiles parameters")?;
            if !(0.0..=100.0).contains(&percentile) {
                return Err(
                    "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                        .to_string(),
                );
            }
            Ok(percentile)
        })
        .collect()
}

fn memory(value: &str) -> Result<u64, String> {
    parse_memory(value).ok_or_else(|| "argument must be a memory value".to_string())
}

/// The settings table.
pub static SETTINGS: &[Setting] = &[
    Setting {
        name: "bind",
        kind: Kind::Words,
        mutable: false,
        default: "127.0.0.1",
        description: "Addresses to listen on, separated by spaces.",
        get: |c| c.bind.join(" "),
        set: |c, v| {
            let addresses: Vec<String> = v.split_whitespace().map(str::to_string).collect();
            if addresses.is_empty() {
                return Err("at least one address is needed".into());
            }
            c.bind = addresses;
            Ok(())
        },
    },
    Setting {
        name: "port",
        kind: Kind::Integer,
        mutable: false,
        default: "6379",
        description: "TCP port (0: pick a free one).",
        get: |c| c.port.to_string(),
        set: |c, v| {
            c.port = ranged(v, 0, 65535)? as u16;
            Ok(())
        },
    },
    Setting {
        name: "metrics-port",
        kind: Kind::Integer,
        mutable: false,
        default: "0",
        description: "TCP port of the Prometheus endpoint, GET /metrics over HTTP (0: off).",
        get: |c| c.metrics_port.to_string(),
        set: |c, v| {
            c.metrics_port = ranged(v, 0, 65535)? as u16;
            Ok(())
        },
    },
    Setting {
        name: "metrics-bind",
        kind: Kind::Text,
        mutable: false,
        default: "127.0.0.1",
        description: "Address the Prometheus endpoint listens on (one IPv4 or IPv6 address).",
        get: |c| c.metrics_bind.clone(),
        set: |c, v| {
            let host = v.trim().trim_start_matches('[').trim_end_matches(']');
            if host.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("invalid address '{v}'"));
            }
            c.metrics_bind = host.to_string();
            Ok(())
        },
    },
    Setting {
        name: "databases",
        kind: Kind::Integer,
        mutable: false,
        default: "16",
        description: "Number of logical databases (SELECT 0..n-1).",
        get: |c| c.databases.to_string(),
        set: |c, v| {
            c.databases = ranged(v, 1, i32::MAX as i64)? as usize;
            Ok(())
        },
    },
    Setting {
        name: "requirepass",
        kind: Kind::NullableText,
        mutable: true,
        default: "",
        description: "Password clients must AUTH with; empty: none.",
        get: |c| c.requirepass.clone().unwrap_or_default(),
        set: |c, v| {
            c.requirepass = (!v.is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    Setting {
        name: "maxclients",
        kind: Kind::Integer,
        mutable: true,
        default: "10000",
        description: "Maximum simultaneous clients; more are refused.",
        get: |c| c.maxclients.to_string(),
        set: |c, v| {
            c.maxclients = ranged(v, 1, u32::MAX as i64)? as usize;
            Ok(())
        },
    },
    Setting {
        name: "timeout",
        kind: Kind::Integer,
        mutable: true,
        default: "0",
        description: "Close a client idle this many seconds (0: never).",
        get: |c| c.timeout.to_string(),
        set: |c, v| {
            c.timeout = ranged(v, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "notify-keyspace-events",
        kind: Kind::Text,
        mutable: true,
        default: "",
        description: "Keyspace notification classes to publish (K, E, g, $, l, s, h, z, x, e, t, m, d, n, A).",
        get: |c| keyspace_events::format(c.notify_keyspace_events),
        set: |c, v| {
            c.notify_keyspace_events = keyspace_events::parse(v)?;
            Ok(())
        },
    },
    Setting {
        name: "client-output-buffer-limit",
        kind: Kind::Words,
        mutable: true,
        default: "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        description: "Output a client of each class may have waiting before it is dropped: <class> <hard> <soft> <soft seconds>.",
        get: |c| c.client_output_buffer_limit.to_config_string(),
        set: |c, v| {
            c.client_output_buffer_limit = c.client_output_buffer_limit.parse_onto(v)?;
            Ok(())
        },
    },
    Setting {
        name: "tracking-table-max-keys",
        kind: Kind::Integer,
        mutable: true,
        default: "1000000",
        description: "Keys the client-side caching table remembers before it invalidates some (0: no limit).",
        get: |c| c.tracking_table_max_keys.to_string(),
        set: |c, v| {
            c.tracking_table_max_keys = ranged(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "busy-reply-threshold",
        kind: Kind::Integer,
        mutable: true,
        default: "5000",
        description: "Milliseconds a script runs before other clients get BUSY and SCRIPT KILL may stop it.",
        get: |c| c.busy_reply_threshold.to_string(),
        set: |c, v| {
            c.busy_reply_threshold = ranged(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "slowlog-log-slower-than",
        kind: Kind::Integer,
        mutable: true,
        default: "10000",
        description: "Commands that run at least this many microseconds go to the slow log (-1: none, 0: every command).",
        get: |c| c.slowlog_log_slower_than.to_string(),
        set: |c, v| {
            c.slowlog_log_slower_than = ranged(v, -1, i64::MAX)?;
            Ok(())
        },
    },
    Setting {
        name: "slowlog-max-len",
        kind: Kind::Integer,
        mutable: true,
        default: "128",
        description: "Entries the slow log keeps (the oldest go first).",
        get: |c| c.slowlog_max_len.to_string(),
        set: |c, v| {
            c.slowlog_max_len = ranged(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "latency-monitor-threshold",
        kind: Kind::Integer,
        mutable: true,
        default: "0",
        description: "Events (commands, expiry and eviction cycles, write-behind flushes, journal fsyncs) at least this many milliseconds long are sampled for LATENCY (0: off).",
        get: |c| c.latency_monitor_threshold.to_string(),
        set: |c, v| {
            c.latency_monitor_threshold = ranged(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "latency-tracking",
        kind: Kind::YesNo,
        mutable: true,
        default: "yes",
        description: "Whether each command's latencies are kept in a histogram (INFO latencystats, LATENCY HISTOGRAM).",
        get: |c| yes_no_text(c.latency_tracking),
        set: |c, v| {
            c.latency_tracking = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "latency-tracking-info-percentiles",
        kind: Kind::Words,
        mutable: true,
        default: "50 99 99.9",
        description: "The percentiles INFO latencystats reports, separated by spaces.",
        get: |c| {
            c.latency_tracking_info_percentiles
                .iter()
                .map(|p| crate::latency::percentile_name(*p))
                .collect::<Vec<_>>()
                .join(" ")
        },
        set: |c, v| {
            c.latency_tracking_info_percentiles = parse_percentiles(v)?;
            Ok(())
        },
    },
    Setting {
        name: "proto-max-bulk-len",
        kind: Kind::Memory,
        mutable: true,
        default: "512mb",
        description: "Longest bulk string a client may send.",
        get: |c| c.proto_max_bulk_len.to_string(),
        set: |c, v| {
            let n = memory(v)?;
            if n < 1024 * 1024 {
                return Err(
                    "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                );
            }
            c.proto_max_bulk_len = n;
            Ok(())
        },
    },
    Setting {
        name: "client-query-buffer-limit",
        kind: Kind::Memory,
        mutable: true,
        default: "1gb",
        description: "Largest unparsed request a client may buffer before it is disconnected.",
        get: |c| c.client_query_buffer_limit.to_string(),
        set: |c, v| {
            let n = memory(v)?;
            if n < 1024 * 1024 {
                return Err(
                    "argument must be between 1048576 and 9223372036854775807 inclusive".into(),
                );
            }
            c.client_query_buffer_limit = n;
            Ok(())
        },
    },
    Setting {
        name: "tcp-keepalive",
        kind: Kind::Integer,
        mutable: true,
        default: "300",
        description: "TCP keepalive interval in seconds for new clients (0: off).",
        get: |c| c.tcp_keepalive.to_string(),
        set: |c, v| {
            c.tcp_keepalive = ranged(v, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "shutdown-timeout",
        kind: Kind::Integer,
        mutable: true,
        default: "10",
        description: "Seconds a shutdown may take at most (write-behind flush, journal, connections); then the process exits.",
        get: |c| c.shutdown_timeout.to_string(),
        set: |c, v| {
            c.shutdown_timeout = ranged(v, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "hz",
        kind: Kind::Integer,
        mutable: true,
        default: "10",
        description: "Active expiry passes per second.",
        get: |c| c.hz.to_string(),
        set: |c, v| {
            // As Redis: any count is taken, and held between 1 and 500.
            c.hz = ranged(v, 0, i32::MAX as i64)?.clamp(1, 500) as u64;
            Ok(())
        },
    },
    Setting {
        name: "key-load-delay",
        kind: Kind::Integer,
        mutable: true,
        default: "0",
        description: "Microseconds to sleep per key loaded from the RDB file (-N: 1 µs for one key in N), for tests of loading; Redis's debugging parameter.",
        get: |c| c.key_load_delay.to_string(),
        set: |c, v| {
            c.key_load_delay = ranged(v, i32::MIN as i64, i32::MAX as i64)?;
            Ok(())
        },
    },
    Setting {
        name: "loglevel",
        kind: Kind::Enum,
        mutable: true,
        default: "notice",
        description: "Log verbosity: debug, verbose, notice, warning.",
        get: |c| c.loglevel.clone(),
        set: |c, v| {
            let level = v.to_ascii_lowercase();
            if !["debug", "verbose", "notice", "warning", "nothing"].contains(&level.as_str()) {
                return Err("argument(s) must be one of the following: debug, verbose, notice, warning, nothing".into());
            }
            c.loglevel = level;
            Ok(())
        },
    },
    Setting {
        name: "enable-debug-command",
        kind: Kind::Enum,
        mutable: false,
        default: "no",
        description: "Whether DEBUG may run: no, yes, or local (loopback and unix socket clients only).",
        get: |c| c.enable_debug_command.clone(),
        set: |c, v| {
            let value = v.to_ascii_lowercase();
            if !["no", "yes", "local"].contains(&value.as_str()) {
                return Err("argument(s) must be one of the following: no, yes, local".into());
            }
            c.enable_debug_command = value;
            Ok(())
        },
    },
    Setting {
        name: "protected-mode",
        kind: Kind::YesNo,
        mutable: true,
        default: "yes",
        description: "While the default user has no password, clients from other hosts get DENIED and are closed (loopback and Unix socket clients are served).",
        get: |c| yes_no_text(c.protected_mode),
        set: |c, v| {
            c.protected_mode = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "unixsocket",
        kind: Kind::NullableText,
        mutable: false,
        default: "",
        description: "Path of a Unix socket to listen on besides TCP (empty: none); removed at shutdown.",
        get: |c| c.unixsocket.clone(),
        set: |c, v| {
            c.unixsocket = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "unixsocketperm",
        kind: Kind::Integer,
        mutable: false,
        default: "0",
        description: "Permissions of the Unix socket, in octal (0: as the umask leaves them).",
        get: |c| format!("{:o}", c.unixsocketperm),
        set: |c, v| {
            let shown = redis_params::Check::Octal(0, 0o777).parse(v)?;
            c.unixsocketperm = u32::from_str_radix(&shown, 8).map_err(|e| e.to_string())?;
            Ok(())
        },
    },
    Setting {
        name: "tls-port",
        kind: Kind::Integer,
        mutable: true,
        default: "0",
        description: "TLS port, served besides the plaintext `port` on the same `bind` addresses (0: no TLS). CONFIG SET moves the listener.",
        get: |c| c.tls.port.to_string(),
        set: |c, v| {
            c.tls.port = ranged(v, 0, 65535)? as u16;
            Ok(())
        },
    },
    Setting {
        name: "tls-cert-file",
        kind: Kind::NullableText,
        mutable: true,
        default: "",
        description: "PEM file with the server certificate (then its chain). Any tls-* CONFIG SET reloads it, for new connections.",
        get: |c| c.tls.cert_file.clone(),
        set: |c, v| {
            c.tls.cert_file = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "tls-key-file",
        kind: Kind::NullableText,
        mutable: true,
        default: "",
        description: "PEM file with the server certificate's private key (PKCS#8, PKCS#1 or SEC1; encrypted only as PKCS#8).",
        get: |c| c.tls.key_file.clone(),
        set: |c, v| {
            c.tls.key_file = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "tls-key-file-pass",
        kind: Kind::NullableText,
        mutable: true,
        default: "",
        description: "Password of an encrypted PKCS#8 `tls-key-file` (`ENCRYPTED PRIVATE KEY`).",
        get: |c| c.tls.key_file_pass.clone(),
        set: |c, v| {
            c.tls.key_file_pass = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "tls-ca-cert-file",
        kind: Kind::NullableText,
        mutable: true,
        default: "",
        description: "PEM file of the CA certificates client certificates are checked against (this or tls-ca-cert-dir is required).",
        get: |c| c.tls.ca_cert_file.clone(),
        set: |c, v| {
            c.tls.ca_cert_file = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "tls-ca-cert-dir",
        kind: Kind::NullableText,
        mutable: true,
        default: "",
        description: "Directory whose PEM files hold CA certificates client certificates are checked against.",
        get: |c| c.tls.ca_cert_dir.clone(),
        set: |c, v| {
            c.tls.ca_cert_dir = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "tls-auth-clients",
        kind: Kind::Enum,
        mutable: true,
        default: "yes",
        description: "yes: clients must present a certificate signed by a trusted CA; optional: one is checked if presented; no: none is asked for.",
        get: |c| c.tls.auth_clients.clone(),
        set: |c, v| {
            c.tls.auth_clients = redis_params::Check::Enum(&["no", "yes", "optional"]).parse(v)?;
            Ok(())
        },
    },
    Setting {
        name: "tls-protocols",
        kind: Kind::NullableText,
        mutable: true,
        default: "",
        description: "TLS versions served, e.g. `TLSv1.2 TLSv1.3` (empty: both; TLSv1 and TLSv1.1 are not supported).",
        get: |c| c.tls.protocols.clone(),
        set: |c, v| {
            c.tls.protocols = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "tls-ciphers",
        kind: Kind::NullableText,
        mutable: true,
        default: "",
        description: "TLS 1.2 cipher suites, OpenSSL names separated by `:` (ECDHE-ECDSA/RSA with AES-GCM or CHACHA20-POLY1305, or DEFAULT/HIGH; empty: all of them).",
        get: |c| c.tls.ciphers.clone(),
        set: |c, v| {
            c.tls.ciphers = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "tls-ciphersuites",
        kind: Kind::NullableText,
        mutable: true,
        default: "",
        description: "TLS 1.3 cipher suites separated by `:` (TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256; empty: all).",
        get: |c| c.tls.ciphersuites.clone(),
        set: |c, v| {
            c.tls.ciphersuites = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "tls-prefer-server-ciphers",
        kind: Kind::YesNo,
        mutable: true,
        default: "no",
        description: "Choose the cipher suite by the server's order rather than the client's.",
        get: |c| yes_no_text(c.tls.prefer_server_ciphers),
        set: |c, v| {
            c.tls.prefer_server_ciphers = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "tls-session-caching",
        kind: Kind::YesNo,
        mutable: true,
        default: "yes",
        description: "Let clients resume TLS sessions (server-side session cache; TLS 1.3 stateful tickets).",
        get: |c| yes_no_text(c.tls.session_caching),
        set: |c, v| {
            c.tls.session_caching = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "tls-session-cache-size",
        kind: Kind::Integer,
        mutable: true,
        default: "20480",
        description: "TLS sessions kept for resumption (0: no limit, as OpenSSL).",
        get: |c| c.tls.session_cache_size.to_string(),
        set: |c, v| {
            c.tls.session_cache_size = ranged(v, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "tls-session-cache-timeout",
        kind: Kind::Integer,
        mutable: true,
        default: "300",
        description: "Seconds a cached TLS session may be resumed for.",
        get: |c| c.tls.session_cache_timeout.to_string(),
        set: |c, v| {
            c.tls.session_cache_timeout = ranged(v, 0, i32::MAX as i64)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "audit-log-file",
        kind: Kind::Text,
        mutable: true,
        default: "",
        description: "File the audit trail goes to, one JSON line per authentication, CONFIG SET, FLUSHALL/FLUSHDB, SHUTDOWN, CLIENT KILL, SCRIPT/FUNCTION LOAD, ACL SETUSER/DELUSER/LOAD/SAVE and WRITEBEHIND admin command (empty: off).",
        get: |c| c.audit_log_file.clone(),
        set: |c, v| {
            c.audit_log_file = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "logfile",
        kind: Kind::Text,
        mutable: false,
        default: "",
        description: "File log lines are appended to (opened for each line, so rotation needs no signal); empty: standard output.",
        get: |c| c.logfile.clone(),
        set: |c, v| {
            c.logfile = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "syslog-enabled",
        kind: Kind::YesNo,
        mutable: false,
        default: "no",
        description: "yes: log lines also go to syslog.",
        get: |c| yes_no_text(c.syslog_enabled),
        set: |c, v| {
            c.syslog_enabled = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "syslog-ident",
        kind: Kind::Text,
        mutable: false,
        default: "redis",
        description: "The identity syslog lines carry.",
        get: |c| c.syslog_ident.clone(),
        set: |c, v| {
            c.syslog_ident = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "syslog-facility",
        kind: Kind::Enum,
        mutable: false,
        default: "local0",
        description: "The syslog facility: user or local0 to local7.",
        get: |c| c.syslog_facility.clone(),
        set: |c, v| {
            const FACILITIES: [&str; 9] = [
                "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
                "local7",
            ];
            let facility = FACILITIES
                .iter()
                .find(|f| f.eq_ignore_ascii_case(v))
                .ok_or_else(|| {
                    format!(
                        "argument(s) must be one of the following: {}",
                        FACILITIES.join(", ")
                    )
                })?;
            c.syslog_facility = facility.to_string();
            Ok(())
        },
    },
    Setting {
        name: "save",
        kind: Kind::Words,
        mutable: true,
        default: "",
        description: "RDB save points, as Redis: pairs of <seconds> <changes>; a background save starts when that many changes happened within that many seconds since the last save. \"\" (the default): none.",
        get: |c| format_save_points(&c.save_points),
        set: |c, v| {
            c.save_points = parse_save_points(v)?;
            Ok(())
        },
    },
    Setting {
        name: "appendonly",
        kind: Kind::YesNo,
        mutable: true,
        default: "no",
        description: "Larder has no append-only file: only `no` is accepted. Reported so tools that read it work.",
        get: |_| "no".into(),
        set: |_, v| {
            if v.eq_ignore_ascii_case("no") {
                Ok(())
            } else {
                Err("Larder has no append-only file; only 'no' is accepted".into())
            }
        },
    },
    Setting {
        name: "shards",
        kind: Kind::Integer,
        mutable: false,
        default: "256",
        description: "Keyspace shards (rounded up to a power of two). Larder-specific.",
        get: |c| c.shards.to_string(),
        set: |c, v| {
            c.shards = ranged(v, 1, 65536)? as usize;
            Ok(())
        },
    },
    Setting {
        name: "maxmemory",
        kind: Kind::Memory,
        mutable: true,
        default: "0",
        description: "Memory limit (Redis's units: 100mb, 1gb...; 0: none). Over it, keys are evicted per maxmemory-policy, or commands that add data are refused with OOM.",
        get: |c| c.maxmemory.to_string(),
        set: |c, v| {
            c.maxmemory = memory(v)?;
            Ok(())
        },
    },
    Setting {
        name: "maxmemory-policy",
        kind: Kind::Enum,
        mutable: true,
        default: "noeviction",
        description: "What to evict over maxmemory: noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu, volatile-random, volatile-ttl, or Larder's allkeys-s3fifo (S3-FIFO per shard).",
        get: |c| c.maxmemory_policy.name().to_string(),
        set: |c, v| {
            c.maxmemory_policy = Policy::parse(v).ok_or_else(|| {
                let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "argument(s) must be one of the following: {}",
                    names.join(", ")
                )
            })?;
            Ok(())
        },
    },
    Setting {
        name: "maxmemory-samples",
        kind: Kind::Integer,
        mutable: true,
        default: "5",
        description: "Keys sampled per eviction: more is closer to true LRU/LFU, and slower.",
        get: |c| c.maxmemory_samples.to_string(),
        set: |c, v| {
            c.maxmemory_samples = ranged(v, 1, i32::MAX as i64)? as u32;
            Ok(())
        },
    },
    Setting {
        name: "lfu-log-factor",
        kind: Kind::Integer,
        mutable: true,
        default: "10",
        description: "How many hits it takes to raise a key's LFU counter (logarithmic). Process-wide.",
        get: |c| c.lfu_log_factor.to_string(),
        set: |c, v| {
            c.lfu_log_factor = ranged(v, 0, i32::MAX as i64)? as u32;
            Ok(())
        },
    },
    Setting {
        name: "lfu-decay-time",
        kind: Kind::Integer,
        mutable: true,
        default: "1",
        description: "Minutes after which an idle key's LFU counter is decremented (0: never). Process-wide.",
        get: |c| c.lfu_decay_time.to_string(),
        set: |c, v| {
            c.lfu_decay_time = ranged(v, 0, i32::MAX as i64)? as u32;
            Ok(())
        },
    },
    Setting {
        name: "lazyfree-lazy-user-del",
        kind: Kind::YesNo,
        mutable: true,
        default: "no",
        description: "yes: DEL frees a big value (over 64 elements) in the background, as UNLINK does.",
        get: |c| yes_no_text(c.lazyfree_lazy_user_del),
        set: |c, v| {
            c.lazyfree_lazy_user_del = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "lazyfree-lazy-user-flush",
        kind: Kind::YesNo,
        mutable: true,
        default: "no",
        description: "yes: FLUSHALL and FLUSHDB without SYNC or ASYNC free the keys in the background.",
        get: |c| yes_no_text(c.lazyfree_lazy_user_flush),
        set: |c, v| {
            c.lazyfree_lazy_user_flush = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-url",
        kind: Kind::Text,
        mutable: false,
        default: "",
        description: "PostgreSQL connection string (postgresql://user:password@host:port/db or key=value form) that changes are written behind to; empty: write-behind is off. `sslmode` (disable, prefer, require, verify-ca, verify-full) and `sslrootcert` as in libpq.",
        get: |c| c.write_behind_url.clone(),
        set: |c, v| {
            if !v.is_empty() {
                let (rest, _) = pg_tls::split_tls_options(v).map_err(|e| {
                    format!("argument must be a PostgreSQL connection string ({e})")
                })?;
                rest.parse::<tokio_postgres::Config>()
                    .map_err(|e| format!("argument must be a PostgreSQL connection string ({e})"))?;
            }
            c.write_behind_url = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "write-behind-table",
        kind: Kind::Text,
        mutable: false,
        default: "larder_kv",
        description: "Table (name or schema.name) keys are written behind to; created if missing.",
        get: |c| c.write_behind_table.clone(),
        set: |c, v| {
            if v.is_empty() || v.split('.').count() > 2 || v.split('.').any(str::is_empty) {
                return Err("argument must be a table name or schema.table".into());
            }
            c.write_behind_table = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "write-behind-match",
        kind: Kind::Text,
        mutable: false,
        default: "*",
        description: "Glob patterns (as KEYS takes them, space-separated) of the keys written behind, in every database without its own list in write-behind-match-db.",
        get: |c| c.write_behind_match.clone(),
        set: |c, v| {
            c.write_behind_match = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "write-behind-match-db",
        kind: Kind::Text,
        mutable: false,
        default: "",
        description: "Per-database globs of the keys written behind, as pairs of a database number and a glob (\"1 orders:* 1 carts:*\"); a database named here follows only its own globs.",
        get: |c| c.write_behind_match_db.clone(),
        set: |c, v| {
            KeyFilter::parse("", v)?;
            c.write_behind_match_db = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "write-behind-delay",
        kind: Kind::Integer,
        mutable: true,
        default: "1000",
        description: "Milliseconds a change may wait before it is sent to PostgreSQL.",
        get: |c| c.write_behind_delay.to_string(),
        set: |c, v| {
            c.write_behind_delay = ranged(v, 1, 3_600_000)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-batch-size",
        kind: Kind::Integer,
        mutable: true,
        default: "1000",
        description: "Keys per batch statement; this many pending keys also start a flush before the delay.",
        get: |c| c.write_behind_batch_size.to_string(),
        set: |c, v| {
            c.write_behind_batch_size = ranged(v, 1, 1_000_000)? as usize;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-max-pending",
        kind: Kind::Integer,
        mutable: false,
        default: "1000000",
        description: "Pending keys past which writes to written-behind keys are refused until PostgreSQL catches up.",
        get: |c| c.write_behind_max_pending.to_string(),
        set: |c, v| {
            c.write_behind_max_pending = ranged(v, 1, i64::MAX)? as usize;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-pool-size",
        kind: Kind::Integer,
        mutable: false,
        default: "2",
        description: "PostgreSQL connections write-behind uses (batches in flight at once).",
        get: |c| c.write_behind_pool_size.to_string(),
        set: |c, v| {
            c.write_behind_pool_size = ranged(v, 1, 64)? as usize;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-warm-start",
        kind: Kind::YesNo,
        mutable: false,
        default: "no",
        description: "yes: at start-up, load the keys the write-behind table holds into memory (most recently written first, stopping at maxmemory).",
        get: |c| yes_no_text(c.write_behind_warm_start),
        set: |c, v| {
            c.write_behind_warm_start = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-expiry-deletes",
        kind: Kind::YesNo,
        mutable: false,
        default: "no",
        description: "yes: a key whose TTL passes is deleted from PostgreSQL too (by default expiry and eviction leave the stored copy: PostgreSQL stays the system of record).",
        get: |c| yes_no_text(c.write_behind_expiry_deletes),
        set: |c, v| {
            c.write_behind_expiry_deletes = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-read-through",
        kind: Kind::YesNo,
        mutable: true,
        default: "no",
        description: "yes: a command naming a written-behind key missing from memory first loads it from PostgreSQL (one query for concurrent misses of the same key).",
        get: |c| yes_no_text(c.write_behind_read_through),
        set: |c, v| {
            c.write_behind_read_through = parse_yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-read-timeout",
        kind: Kind::Integer,
        mutable: false,
        default: "200",
        description: "Milliseconds a command waits at most for all its read-through lookups together; a key not loaded by then counts as missing.",
        get: |c| c.write_behind_read_timeout.to_string(),
        set: |c, v| {
            c.write_behind_read_timeout = ranged(v, 1, i64::MAX)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-shutdown-timeout",
        kind: Kind::Integer,
        mutable: false,
        default: "10000",
        description: "Milliseconds shutdown waits for pending changes to reach PostgreSQL.",
        get: |c| c.write_behind_shutdown_timeout.to_string(),
        set: |c, v| {
            c.write_behind_shutdown_timeout = ranged(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-flush-timeout",
        kind: Kind::Integer,
        mutable: true,
        default: "60000",
        description: "Milliseconds WRITEBEHIND FLUSH without a timeout argument waits at most (0: no limit).",
        get: |c| c.write_behind_flush_timeout.to_string(),
        set: |c, v| {
            c.write_behind_flush_timeout = ranged(v, 0, i64::MAX)? as u64;
            Ok(())
        },
    },
    Setting {
        name: "dir",
        kind: Kind::Text,
        mutable: false,
        default: ".",
        description: "Directory of the files Larder writes (the write-behind journal), as Redis's dir.",
        get: |c| c.dir.clone(),
        set: |c, v| {
            if v.is_empty() {
                return Err("argument must be a directory".into());
            }
            c.dir = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "write-behind-journal",
        kind: Kind::YesNo,
        mutable: false,
        default: "no",
        description: "yes: keep changes PostgreSQL has not confirmed in an append-only journal in dir, replayed at start-up.",
        get: |c| if c.write_behind_journal { "yes" } else { "no" }.into(),
        set: |c, v| {
            c.write_behind_journal = yes_no(v)?;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-fsync",
        kind: Kind::Enum,
        mutable: false,
        default: "everysec",
        description: "When the journal is fsynced: always (before the reply), everysec, or no (left to the OS), as appendfsync.",
        get: |c| c.write_behind_fsync.name().into(),
        set: |c, v| {
            c.write_behind_fsync = JournalFsync::parse(v)
                .ok_or("argument(s) must be one of the following: always, everysec, no")?;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-journal-max-size",
        kind: Kind::Memory,
        mutable: false,
        default: "256mb",
        description: "When the journal's files grow past this size (and past twice what its last rewrite left), it is rewritten from memory to hold each unconfirmed key once, as auto-aof-rewrite-min-size and auto-aof-rewrite-percentage 100 (0: never).",
        get: |c| c.write_behind_journal_max_size.to_string(),
        set: |c, v| {
            c.write_behind_journal_max_size = memory(v)?;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-map",
        kind: Kind::Text,
        mutable: false,
        default: "",
        description: "Keys mapped to rows of existing tables: \"<pattern with one {column}> <table> [column=<col>] [db=<n>]\", e.g. \"user:{id} users\". Each directive adds mappings (several may be separated by ';'); an empty value clears them.",
        get: |c| {
            c.write_behind_map
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        },
        set: |c, v| {
            if v.trim().is_empty() {
                c.write_behind_map.clear();
                return Ok(());
            }
            let mappings = writebehind::parse_mappings(v)?;
            c.write_behind_map.extend(mappings);
            Ok(())
        },
    },
    Setting {
        name: "write-behind-dead-letter-table",
        kind: Kind::Text,
        mutable: false,
        default: "larder_dead_letter",
        description: "Table (name or schema.name) poison rows are written to with their error; created if missing.",
        get: |c| c.write_behind_dead_letter_table.clone(),
        set: |c, v| {
            if v.is_empty() || v.split('.').count() > 2 || v.split('.').any(str::is_empty) {
                return Err("argument must be a table name or schema.table".into());
            }
            c.write_behind_dead_letter_table = v.to_string();
            Ok(())
        },
    },
    Setting {
        name: "write-behind-circuit-failures",
        kind: Kind::Integer,
        mutable: false,
        default: "5",
        description: "Consecutive PostgreSQL failures that open the write-behind circuit breaker.",
        get: |c| c.write_behind_circuit_failures.to_string(),
        set: |c, v| {
            c.write_behind_circuit_failures = ranged(v, 1, 1_000_000)? as u32;
            Ok(())
        },
    },
    Setting {
        name: "write-behind-circuit-cooldown",
        kind: Kind::Integer,
        mutable: false,
        default: "5000",
        description: "Milliseconds an open circuit breaker waits before one probe of PostgreSQL.",
        get: |c| c.write_behind_circuit_cooldown.to_string(),
        set: |c, v| {
            c.write_behind_circuit_cooldown = ranged(v, 1, 3_600_000)? as u64;
            Ok(())
        },
    },
];

fn yes_no(value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err("argument must be 'yes' or 'no'".into())
    }
}

/// Why a setting could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Unknown(String),
    Immutable(String),
    Invalid { name: String, reason: String },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Unknown(name) => write!(f, "unknown setting '{name}'"),
            ConfigError::Immutable(name) => write!(f, "'{name}' can't be changed at run time"),
            ConfigError::Invalid { name, reason } => write!(f, "'{name}': {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Default for Config {
    fn default() -> Self {
        let mut config = Config {
            bind: Vec::new(),
            port: 0,
            metrics_port: 0,
            metrics_bind: String::new(),
            databases: 0,
            requirepass: None,
            acl_users: Vec::new(),
            maxclients: 0,
            timeout: 0,
            busy_reply_threshold: 0,
            slowlog_log_slower_than: 0,
            slowlog_max_len: 0,
            latency_monitor_threshold: 0,
            latency_tracking: false,
            latency_tracking_info_percentiles: Vec::new(),
            notify_keyspace_events: 0,
            client_output_buffer_limit: output_limits::OutputLimits::default(),
            tracking_table_max_keys: 0,
            proto_max_bulk_len: 0,
            client_query_buffer_limit: 0,
            tcp_keepalive: 0,
            shutdown_timeout: 0,
            hz: 0,
            key_load_delay: 0,
            loglevel: String::new(),
            logfile: String::new(),
            syslog_enabled: false,
            syslog_ident: String::new(),
            syslog_facility: String::new(),
            enable_debug_command: String::new(),
            protected_mode: false,
            unixsocket: String::new(),
            unixsocketperm: 0,
            tls: TlsConfig::default(),
            audit_log_file: String::new(),
            rename_commands: Vec::new(),
            shards: 0,
            maxmemory: 0,
            maxmemory_policy: Policy::NoEviction,
            maxmemory_samples: 0,
            lfu_log_factor: 0,
            lfu_decay_time: 0,
            lazyfree_lazy_user_del: false,
            lazyfree_lazy_user_flush: false,
            write_behind_url: String::new(),
            write_behind_table: String::new(),
            write_behind_match: String::new(),
            write_behind_match_db: String::new(),
            write_behind_delay: 0,
            write_behind_batch_size: 0,
            write_behind_max_pending: 0,
            write_behind_pool_size: 0,
            write_behind_shutdown_timeout: 0,
            write_behind_flush_timeout: 0,
            write_behind_map: Vec::new(),
            write_behind_dead_letter_table: String::new(),
            write_behind_circuit_failures: 0,
            write_behind_circuit_cooldown: 0,
            write_behind_expiry_deletes: false,
            write_behind_warm_start: false,
            write_behind_read_through: false,
            write_behind_read_timeout: 0,
            dir: String::new(),
            save_points: Vec::new(),
            write_behind_journal: false,
            write_behind_fsync: JournalFsync::EverySec,
            write_behind_journal_max_size: 256 * 1024 * 1024,
            accepted_only: redis_params::PARAMS
                .iter()
                .map(|p| (p.name, p.default.to_string()))
                .collect(),
        };
        for setting in SETTINGS {
            // Defaults are valid by construction (a unit test checks it).
            let _ = (setting.set)(&mut config, setting.default);
        }
        config
    }
}

/// The name a setting or parameter is known by: `name` in lower case, an
/// alias replaced by the name it stands for.
pub fn canonical(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if let Some((_, real)) = SETTING_ALIASES.iter().find(|(alias, _)| *alias == lower) {
        return real.to_string();
    }
    match redis_params::find(&lower) {
        Some(param) => param.name.to_string(),
        None => lower,
    }
}

impl Config {
    /// The settings eviction follows, as one value.
    pub fn memory_limits(&self) -> MemoryLimits {
        MemoryLimits {
            maxmemory: self.maxmemory,
            policy: self.maxmemory_policy,
            samples: self.maxmemory_samples,
            lfu_log_factor: self.lfu_log_factor,
            lfu_decay_time: self.lfu_decay_time,
        }
    }

    /// All setting names, real ones, accepted-only ones and aliases, sorted.
    /// Settings that CONFIG GET lists for their exact name only, never
    /// for a pattern: Redis's hidden debugging parameters.
    pub const HIDDEN: &'static [&'static str] = &["key-load-delay"];

    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = SETTINGS.iter().map(|s| s.name).collect();
        names.extend(SETTING_ALIASES.iter().map(|(n, _)| *n));
        for param in redis_params::PARAMS {
            names.push(param.name);
            names.extend(param.alias);
        }
        names.sort_unstable();
        names
    }

    /// Whether CONFIG SET may change the setting called `name` (any case,
    /// aliases too); `None` if there is no such setting.
    pub fn mutability(name: &str) -> Option<Mutability> {
        let name = canonical(name);
        if let Some(setting) = SETTINGS.iter().find(|s| s.name == name) {
            // `dir` is protected in Redis; in Larder it is also fixed at
            // start-up (the journal lives there).
            return Some(match (setting.name, setting.mutable) {
                ("dir", _) => Mutability::Protected,
                (_, true) => Mutability::Mutable,
                (_, false) => Mutability::Immutable,
            });
        }
        redis_params::find(&name).map(|p| p.mutability)
    }

    /// The current value of a setting, as CONFIG GET shows it.
    pub fn get(&self, name: &str) -> Option<String> {
        let name = canonical(name);
        if let Some(setting) = SETTINGS.iter().find(|s| s.name == name) {
            return Some((setting.get)(self));
        }
        self.accepted_only.get(name.as_str()).cloned()
    }

    /// Sets a setting from its textual value (config file, CLI, CONFIG SET).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let name = canonical(name);
        if name == RENAME_COMMAND {
            return self.add_rename_command(value);
        }
        if let Some(setting) = SETTINGS.iter().find(|s| s.name == name) {
            return (setting.set)(self, value)
                .map_err(|reason| ConfigError::Invalid { name, reason });
        }
        let Some(param) = redis_params::find(&name) else {
            return Err(ConfigError::Unknown(name));
        };
        let shown = param
            .check
            .parse(value)
            .and_then(|shown| match redis_params::Check::refusal(param, &shown) {
                Some(reason) => Err(reason),
                None => Ok(shown),
            })
            .map_err(|reason| ConfigError::Invalid { name, reason })?;
        self.accepted_only.insert(param.name, shown);
        Ok(())
    }

    /// A `rename-command` directive: "<command> <new name>", the new name
    /// possibly empty (the command is removed), as Redis's config file
    /// writes `rename-command CONFIG ""`.
    fn add_rename_command(&mut self, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            name: RENAME_COMMAND.into(),
            reason: reason.into(),
        };
        let (command, new_name) = value
            .split_once(' ')
            .ok_or_else(|| invalid("wrong number of arguments"))?;
        if command.is_empty() || new_name.contains(' ') {
            return Err(invalid("wrong number of arguments"));
        }
        self.rename_commands
            .push((command.to_string(), new_name.to_string()));
        Ok(())
    }

    /// Like [`Config::set`], but refuses settings fixed at start-up (and
    /// protected ones: see `enable-protected-configs`).
    pub fn set_at_runtime(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        if canonical(name) == RENAME_COMMAND {
            return Err(ConfigError::Unknown(RENAME_COMMAND.into()));
        }
        if Config::mutability(name).is_some_and(|m| m != Mutability::Mutable) {
            return Err(ConfigError::Immutable(canonical(name)));
        }
        self.set(name, value)
    }

    /// Reads a redis.conf-style file: one `name value...` directive a line,
    /// `#` comments, quoted values allowed.
    pub fn load_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.load_str(&text)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Applies redis.conf-style directives.
    pub fn load_str(&mut self, text: &str) -> Result<(), String> {
        // As Redis: the first `save` line replaces the save points, the
        // next ones add to them.
        let mut save_lines = 0;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = crate::protocol::split_args(line.as_bytes())
                .ok_or_else(|| format!("line {}: unbalanced quotes", number + 1))?;
            let Some((name, values)) = words.split_first() else {
                continue;
            };
            let name = String::from_utf8_lossy(name);
            if name.eq_ignore_ascii_case("user") {
                // ACL users: several lines, parsed by the ACL at start-up.
                if values.is_empty() {
                    return Err(format!("line {}: wrong number of arguments", number + 1));
                }
                self.acl_users.push(values.to_vec());
                continue;
            }
            let value = values
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let value = if name.eq_ignore_ascii_case("save") {
                save_lines += 1;
                let earlier = format_save_points(&self.save_points);
                if save_lines > 1 && !earlier.is_empty() {
                    format!("{earlier} {value}")
                } else {
                    value
                }
            } else {
                value
            };
            self.set(&name, &value)
                .map_err(|e| format!("line {}: {e}", number + 1))?;
        }
        Ok(())
    }
}

/// Parses a `save` value: pairs of `<seconds> <changes>`, as Redis
/// (seconds at least 1, changes at least 0).
pub fn parse_save_points(value: &str) -> Result<Vec<(u64, u64)>, String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if !words.len().is_multiple_of(2) {
        return Err("Invalid save parameters".into());
    }
    words
        .chunks(2)
        .map(|pair| {
            let seconds = pair[0].parse::<i64>().ok().filter(|&s| s >= 1);
            let changes = pair[1].parse::<i64>().ok().filter(|&c| c >= 0);
            match (seconds, changes) {
                (Some(seconds), Some(changes)) => Ok((seconds as u64, changes as u64)),
                _ => Err("Invalid save parameters".into()),
            }
        })
        .collect()
}

/// Save points as CONFIG GET shows them (`3600 1 300 100`).
pub fn format_save_points(points: &[(u64, u64)]) -> String {
    points
        .iter()
        .map(|(seconds, changes)| format!("{seconds} {changes}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_points_accumulate_in_a_file_and_are_replaced_by_config_set() {
        let mut config = Config::default();
        assert_eq!(config.get("save").as_deref(), Some(""));
        config
            .load_str("save 900 1\nsave 300 10\nsave 60 10000\n")
            .unwrap();
        assert_eq!(config.save_points, vec![(900, 1), (300, 10), (60, 10000)]);
        assert_eq!(config.get("save").as_deref(), Some("900 1 300 10 60 10000"));
        config.set("save", "3600 1").unwrap();
        assert_eq!(config.save_points, vec![(3600, 1)]);
        config.set("save", "").unwrap();
        assert!(config.save_points.is_empty());
        for bad in ["10", "0 1", "10 -1", "x 1"] {
            assert!(
                matches!(config.set("save", bad), Err(ConfigError::Invalid { reason, .. }) if reason == "Invalid save parameters"),
                "{bad}"
            );
        }
    }

    #[test]
    fn defaults_parse() {
        let config = Config::default();
        assert_eq!(config.bind, vec!["127.0.0.1".to_string()]);
        assert_eq!(config.port, 6379);
        assert_eq!(config.databases, 16);
        assert_eq!(config.proto_max_bulk_len, 512 * 1024 * 1024);
        assert_eq!(config.client_query_buffer_limit, 1024 * 1024 * 1024);
        assert_eq!(config.maxclients, 10000);
        for setting in SETTINGS {
            let mut c = Config::default();
            assert!(
                (setting.set)(&mut c, setting.default).is_ok(),
                "{}",
                setting.name
            );
        }
    }

    #[test]
    fn eviction_settings() {
        let mut config = Config::default();
        assert_eq!(config.memory_limits(), MemoryLimits::default());
        config.set("maxmemory", "20mb").unwrap();
        config.set("maxmemory-policy", "ALLKEYS-LFU").unwrap();
        assert_eq!(config.get("maxmemory").as_deref(), Some("20971520"));
        assert_eq!(
            config.get("maxmemory-policy").as_deref(),
            Some("allkeys-lfu")
        );
        let reason = |name: &str, value: &str| match Config::default().set_at_runtime(name, value) {
            Err(ConfigError::Invalid { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason("maxmemory-policy", "lru"),
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction, allkeys-s3fifo"
        );
        assert_eq!(reason("maxmemory", "-1"), "argument must be a memory value");
        assert_eq!(
            reason("maxmemory-samples", "0"),
            "argument must be between 1 and 2147483647 inclusive"
        );
        assert_eq!(
            reason("lfu-log-factor", "-1"),
            "argument must be between 0 and 2147483647 inclusive"
        );
        assert_eq!(
            reason("lfu-decay-time", "x"),
            "argument couldn't be parsed into an integer"
        );
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("5MB"), Some(5 * 1024 * 1024));
        assert_eq!(parse_memory("1g"), Some(1_000_000_000));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("x"), None);
    }

    #[test]
    fn file_and_aliases() {
        let mut config = Config::default();
        config
            .load_str("# comment\nport 7000\nbind 127.0.0.1 ::1\nhash-max-ziplist-entries 256\nrequirepass \"s3 cret\"\n")
            .unwrap();
        assert_eq!(config.port, 7000);
        assert_eq!(config.bind.len(), 2);
        assert_eq!(
            config.get("hash-max-listpack-entries").as_deref(),
            Some("256")
        );
        assert_eq!(config.requirepass.as_deref(), Some("s3 cret"));
        assert!(config.load_str("no-such-thing 1").is_err());
        config
            .load_str("write-behind-map user:{id} users column=name\nwrite-behind-map \"order:{id} orders db=1; item:{sku}:v items\"\n")
            .unwrap();
        assert_eq!(
            config.get("write-behind-map").as_deref(),
            Some("user:{id} users column=name; order:{id} orders db=1; item:{sku}:v items")
        );
        assert!(config.set("write-behind-map", "user:id users").is_err());
        config.set("write-behind-map", "").unwrap();
        assert!(config.write_behind_map.is_empty());
        assert_eq!(
            config.set_at_runtime("databases", "4"),
            Err(ConfigError::Immutable("databases".into()))
        );
    }
}
