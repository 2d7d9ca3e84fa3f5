//! The Redis 7 parameters Larder accepts, validates and reports but does not
//! act on: replication, persistence, cluster, TLS to other servers, encoding thresholds and
//! the like. Each is checked with the rules (types, bounds, enum values,
//! error texts) of Redis 7's config.c, keeps the value it was given, shows it
//! in CONFIG GET as Redis formats it, and is written back by CONFIG REWRITE;
//! nothing in Larder reads it (except `maxmemory-clients`, acted on by
//! client eviction, and the RDB settings, read by persistence). What Larder acts on is in `super::SETTINGS`.

/// Whether CONFIG SET may change a parameter, as Redis's config flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    Mutable,
    /// `can't set immutable config`.
    Immutable,
    /// `can't set protected config` unless `enable-protected-configs`
    /// allows it.
    Protected,
}

/// A string parameter's own check (Redis's is_valid_fn).
pub type Validator = fn(&str) -> Result<(), String>;

/// How a parameter's value is checked and shown, as Redis's config types.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// yes or no.
    Bool,
    /// One of the names (case-insensitive), shown as listed.
    Enum(&'static [&'static str]),
    /// Several of the names at once (`shutdown-on-sigint nosave now`); the
    /// first name is the empty set.
    Flags(&'static [&'static str]),
    /// A signed integer within the bounds.
    Int(i64, i64),
    /// An unsigned integer (Redis's unsigned types: bounds are compared and
    /// printed unsigned).
    Unsigned(u64, u64),
    /// A byte count with Redis's units, within the bounds; `unsigned` as
    /// for [`Check::Unsigned`].
    Memory { min: u64, max: u64, unsigned: bool },
    /// A byte count or a percentage (`maxmemory-clients`), at most
    /// `max_percent`%.
    MemoryOrPercent { max_percent: i64 },
    /// An octal number within the bounds.
    Octal(u64, u64),
    /// A string; `empty_is_null`: an empty value means "not set" (CONFIG
    /// REWRITE then removes its lines).
    Str {
        empty_is_null: bool,
        validate: Option<Validator>,
    },
    /// `oom-score-adj-values`: three integers.
    OomScoreAdjValues,
    /// `replicaof` / `slaveof`: `<host> <port>` or empty.
    ReplicaOf,
}

/// One accepted-only parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    /// The other name Redis accepts for it (`slave-priority`...).
    pub alias: Option<&'static str>,
    pub check: Check,
    /// Redis's default, as CONFIG GET shows it.
    pub default: &'static str,
    pub mutability: Mutability,
}

const fn param(
    name: &'static str,
    alias: Option<&'static str>,
    mutability: Mutability,
    default: &'static str,
    check: Check,
) -> Param {
    Param {
        name,
        alias,
        check,
        default,
        mutability,
    }
}

use Check::*;
use Mutability::*;

const INT_MAX: i64 = i32::MAX as i64;
const INT_MIN: i64 = i32::MIN as i64;
const LONG_MAX: i64 = i64::MAX;
const UINT_MAX: u64 = u32::MAX as u64;

const fn string() -> Check {
    Str {
        empty_is_null: false,
        validate: None,
    }
}

const fn nullable() -> Check {
    Str {
        empty_is_null: true,
        validate: None,
    }
}

const fn size_t(max: i64) -> Check {
    Unsigned(0, max as u64)
}

const fn memory(min: u64, max: i64, unsigned: bool) -> Check {
    Memory {
        min,
        max: max as u64,
        unsigned,
    }
}

const YES_NO_LOCAL: &[&str] = &["no", "yes", "local"];
const SHUTDOWN_FLAGS: &[&str] = &["default", "save", "nosave", "now", "force"];

/// Redis 7's parameters that Larder accepts but does not act on, with
/// Redis's defaults, bounds and mutability (src/config.c of Redis 7.0,
/// checked against redis-server 7.0.15; `set-max-listpack-*` are 7.2's).
/// Hidden debugging parameters (`key-load-delay`...) are left out.
pub static PARAMS: &[Param] = &[
    // Encodings: Larder's structures do not switch at thresholds.
    param("activerehashing", None, Mutable, "yes", Bool),
    param(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        Mutable,
        "512",
        size_t(LONG_MAX),
    ),
    param(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        Mutable,
        "64",
        memory(0, LONG_MAX, true),
    ),
    param(
        "hll-sparse-max-bytes",
        None,
        Mutable,
        "3000",
        memory(0, LONG_MAX, true),
    ),
    param("list-compress-depth", None, Mutable, "0", Int(0, INT_MAX)),
    param(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        Mutable,
        "-2",
        Int(INT_MIN, INT_MAX),
    ),
    param(
        "set-max-intset-entries",
        None,
        Mutable,
        "512",
        size_t(LONG_MAX),
    ),
    param(
        "set-max-listpack-entries",
        None,
        Mutable,
        "128",
        size_t(LONG_MAX),
    ),
    param(
        "set-max-listpack-value",
        None,
        Mutable,
        "64",
        memory(0, LONG_MAX, true),
    ),
    param(
        "stream-node-max-bytes",
        None,
        Mutable,
        "4096",
        memory(0, LONG_MAX, true),
    ),
    param(
        "stream-node-max-entries",
        None,
        Mutable,
        "100",
        Int(0, LONG_MAX),
    ),
    param(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        Mutable,
        "128",
        size_t(LONG_MAX),
    ),
    param(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        Mutable,
        "64",
        memory(0, LONG_MAX, true),
    ),
    // Lazy freeing Larder does not do (user del and flush are acted on).
    param("lazyfree-lazy-eviction", None, Mutable, "no", Bool),
    param("lazyfree-lazy-expire", None, Mutable, "no", Bool),
    param("lazyfree-lazy-server-del", None, Mutable, "no", Bool),
    param(
        "replica-lazy-flush",
        Some("slave-lazy-flush"),
        Mutable,
        "no",
        Bool,
    ),
    // Eviction and expiry tuning.
    param(
        "maxmemory-eviction-tenacity",
        None,
        Mutable,
        "10",
        Int(0, 100),
    ),
    // The exception: kept and checked here, but acted on (client eviction:
    // the expire thread reads it, see `shared::client_eviction_limit`).
    param(
        "maxmemory-clients",
        None,
        Mutable,
        "0",
        MemoryOrPercent { max_percent: 100 },
    ),
    param("active-expire-effort", None, Mutable, "1", Int(1, 10)),
    param("dynamic-hz", None, Mutable, "yes", Bool),
    // Active defragmentation (mimalloc has no defragmenter).
    param("activedefrag", None, Mutable, "no", Bool),
    param("active-defrag-cycle-min", None, Mutable, "1", Int(1, 99)),
    param("active-defrag-cycle-max", None, Mutable, "25", Int(1, 99)),
    param(
        "active-defrag-ignore-bytes",
        None,
        Mutable,
        "104857600",
        memory(1, LONG_MAX, true),
    ),
    param(
        "active-defrag-max-scan-fields",
        None,
        Mutable,
        "1000",
        Int(1, LONG_MAX),
    ),
    param(
        "active-defrag-threshold-lower",
        None,
        Mutable,
        "10",
        Int(0, 1000),
    ),
    param(
        "active-defrag-threshold-upper",
        None,
        Mutable,
        "100",
        Int(0, 1000),
    ),
    param("jemalloc-bg-thread", None, Mutable, "yes", Bool),
    // ACL: kept and checked here, acted on by `crate::acl` and ACL LOG.
    param(
        "acl-pubsub-default",
        None,
        Mutable,
        "resetchannels",
        Enum(&["allchannels", "resetchannels"]),
    ),
    param("aclfile", None, Immutable, "", string()),
    param("acllog-max-len", None, Mutable, "128", Int(0, LONG_MAX)),
    // RDB and AOF persistence: `dbfilename`, `rdbcompression`,
    // `rdbchecksum` and `stop-writes-on-bgsave-error` are checked here and
    // read by `crate::shared::Shared::save_options` and the command layer
    // for RDB snapshots (`save` is a setting of its own); the rest (AOF)
    // Larder does not act on.
    param(
        "dbfilename",
        None,
        Protected,
        "dump.rdb",
        Str {
            empty_is_null: false,
            validate: Some(valid_dbfilename),
        },
    ),
    param("rdbchecksum", None, Immutable, "yes", Bool),
    param("rdbcompression", None, Mutable, "yes", Bool),
    param("rdb-del-sync-files", None, Mutable, "no", Bool),
    param("rdb-save-incremental-fsync", None, Mutable, "yes", Bool),
    param("stop-writes-on-bgsave-error", None, Mutable, "yes", Bool),
    param(
        "sanitize-dump-payload",
        None,
        Mutable,
        "no",
        Enum(&["no", "yes", "clients"]),
    ),
    param(
        "appendfilename",
        None,
        Immutable,
        "appendonly.aof",
        Str {
            empty_is_null: false,
            validate: Some(valid_aof_filename),
        },
    ),
    param(
        "appenddirname",
        None,
        Immutable,
        "appendonlydir",
        Str {
            empty_is_null: false,
            validate: Some(valid_aof_dirname),
        },
    ),
    param(
        "appendfsync",
        None,
        Mutable,
        "everysec",
        Enum(&["everysec", "always", "no"]),
    ),
    param("aof-disable-auto-gc", None, Mutable, "no", Bool),
    param("aof-load-truncated", None, Mutable, "yes", Bool),
    param("aof-rewrite-incremental-fsync", None, Mutable, "yes", Bool),
    param("aof-timestamp-enabled", None, Mutable, "no", Bool),
    param("aof-use-rdb-preamble", None, Mutable, "yes", Bool),
    param(
        "auto-aof-rewrite-min-size",
        None,
        Mutable,
        "67108864",
        memory(0, LONG_MAX, false),
    ),
    param(
        "auto-aof-rewrite-percentage",
        None,
        Mutable,
        "100",
        Int(0, INT_MAX),
    ),
    param("no-appendfsync-on-rewrite", None, Mutable, "no", Bool),
    // Replication (Larder is always a master without replicas).
    param("replicaof", Some("slaveof"), Immutable, "", ReplicaOf),
    param("masterauth", None, Mutable, "", nullable()),
    param("masteruser", None, Mutable, "", nullable()),
    param(
        "min-replicas-max-lag",
        Some("min-slaves-max-lag"),
        Mutable,
        "10",
        Int(0, INT_MAX),
    ),
    param(
        "min-replicas-to-write",
        Some("min-slaves-to-write"),
        Mutable,
        "0",
        Int(0, INT_MAX),
    ),
    param(
        "propagation-error-behavior",
        None,
        Mutable,
        "ignore",
        Enum(&["ignore", "panic", "panic-on-replicas"]),
    ),
    param(
        "repl-backlog-size",
        None,
        Mutable,
        "1048576",
        memory(1, LONG_MAX, false),
    ),
    param("repl-backlog-ttl", None, Mutable, "3600", Int(0, LONG_MAX)),
    param("repl-disable-tcp-nodelay", None, Mutable, "no", Bool),
    param(
        "repl-diskless-load",
        None,
        Mutable,
        "disabled",
        Enum(&["disabled", "on-empty-db", "swapdb"]),
    ),
    param("repl-diskless-sync", None, Mutable, "yes", Bool),
    param(
        "repl-diskless-sync-delay",
        None,
        Mutable,
        "5",
        Int(0, INT_MAX),
    ),
    param(
        "repl-diskless-sync-max-replicas",
        None,
        Mutable,
        "0",
        Int(0, INT_MAX),
    ),
    param(
        "repl-ping-replica-period",
        Some("repl-ping-slave-period"),
        Mutable,
        "10",
        Int(1, INT_MAX),
    ),
    param("repl-timeout", None, Mutable, "60", Int(1, INT_MAX)),
    param(
        "replica-announce-ip",
        Some("slave-announce-ip"),
        Mutable,
        "",
        nullable(),
    ),
    param(
        "replica-announce-port",
        Some("slave-announce-port"),
        Mutable,
        "0",
        Int(0, 65535),
    ),
    param("replica-announced", None, Mutable, "yes", Bool),
    param(
        "replica-ignore-disk-write-errors",
        None,
        Mutable,
        "no",
        Bool,
    ),
    param(
        "replica-ignore-maxmemory",
        Some("slave-ignore-maxmemory"),
        Mutable,
        "yes",
        Bool,
    ),
    param(
        "replica-priority",
        Some("slave-priority"),
        Mutable,
        "100",
        Int(0, INT_MAX),
    ),
    param(
        "replica-read-only",
        Some("slave-read-only"),
        Mutable,
        "yes",
        Bool,
    ),
    param(
        "replica-serve-stale-data",
        Some("slave-serve-stale-data"),
        Mutable,
        "yes",
        Bool,
    ),
    // Cluster (Larder runs standalone).
    param(
        "cluster-allow-pubsubshard-when-down",
        None,
        Mutable,
        "yes",
        Bool,
    ),
    param("cluster-allow-reads-when-down", None, Mutable, "no", Bool),
    param(
        "cluster-allow-replica-migration",
        None,
        Mutable,
        "yes",
        Bool,
    ),
    param(
        "cluster-announce-bus-port",
        None,
        Mutable,
        "0",
        Int(0, 65535),
    ),
    param(
        "cluster-announce-hostname",
        None,
        Mutable,
        "",
        Str {
            empty_is_null: true,
            validate: Some(valid_hostname),
        },
    ),
    param("cluster-announce-ip", None, Mutable, "", nullable()),
    param("cluster-announce-port", None, Mutable, "0", Int(0, 65535)),
    param(
        "cluster-announce-tls-port",
        None,
        Mutable,
        "0",
        Int(0, 65535),
    ),
    param(
        "cluster-config-file",
        None,
        Immutable,
        "nodes.conf",
        string(),
    ),
    param("cluster-enabled", None, Immutable, "no", Bool),
    param(
        "cluster-link-sendbuf-limit",
        None,
        Mutable,
        "0",
        memory(0, -1, true),
    ),
    param(
        "cluster-migration-barrier",
        None,
        Mutable,
        "1",
        Int(0, INT_MAX),
    ),
    param(
        "cluster-node-timeout",
        None,
        Mutable,
        "15000",
        Int(0, LONG_MAX),
    ),
    param("cluster-port", None, Immutable, "0", Int(0, 65535)),
    param(
        "cluster-preferred-endpoint-type",
        None,
        Mutable,
        "ip",
        Enum(&["ip", "hostname", "unknown-endpoint"]),
    ),
    param(
        "cluster-replica-no-failover",
        Some("cluster-slave-no-failover"),
        Mutable,
        "no",
        Bool,
    ),
    param(
        "cluster-replica-validity-factor",
        Some("cluster-slave-validity-factor"),
        Mutable,
        "10",
        Int(0, INT_MAX),
    ),
    param("cluster-require-full-coverage", None, Mutable, "yes", Bool),
    // TLS to other servers (replication, cluster) and DH parameters:
    // Larder has neither, and rustls no finite-field DH. What it serves is
    // in `super::SETTINGS`.
    param("tls-client-cert-file", None, Mutable, "", nullable()),
    param("tls-client-key-file", None, Mutable, "", nullable()),
    param("tls-client-key-file-pass", None, Mutable, "", nullable()),
    param("tls-cluster", None, Mutable, "no", Bool),
    param("tls-dh-params-file", None, Mutable, "", nullable()),
    param("tls-replication", None, Mutable, "no", Bool),
    // Process, network and logging details Larder does not use.
    param("always-show-logo", None, Immutable, "no", Bool),
    param("bind-source-addr", None, Mutable, "", nullable()),
    param("crash-log-enabled", None, Mutable, "yes", Bool),
    param("crash-memcheck-enabled", None, Mutable, "yes", Bool),
    param("daemonize", None, Immutable, "no", Bool),
    param("disable-thp", None, Immutable, "yes", Bool),
    param(
        "enable-module-command",
        None,
        Immutable,
        "no",
        Enum(YES_NO_LOCAL),
    ),
    param(
        "enable-protected-configs",
        None,
        Immutable,
        "no",
        Enum(YES_NO_LOCAL),
    ),
    param("ignore-warnings", None, Mutable, "", string()),
    param("io-threads", None, Immutable, "1", Int(1, 128)),
    param("io-threads-do-reads", None, Immutable, "no", Bool),
    param(
        "oom-score-adj",
        None,
        Mutable,
        "no",
        Enum(&["no", "yes", "relative", "absolute"]),
    ),
    param(
        "oom-score-adj-values",
        None,
        Mutable,
        "0 200 800",
        OomScoreAdjValues,
    ),
    param("pidfile", None, Immutable, "", nullable()),
    param(
        "proc-title-template",
        None,
        Mutable,
        "{title} {listen-addr} {server-mode}",
        Str {
            empty_is_null: false,
            validate: Some(valid_proc_title_template),
        },
    ),
    param("set-proc-title", None, Immutable, "yes", Bool),
    param(
        "shutdown-on-sigint",
        None,
        Mutable,
        "default",
        Flags(SHUTDOWN_FLAGS),
    ),
    param(
        "shutdown-on-sigterm",
        None,
        Mutable,
        "default",
        Flags(SHUTDOWN_FLAGS),
    ),
    param(
        "socket-mark-id",
        None,
        Immutable,
        "0",
        Unsigned(0, UINT_MAX),
    ),
    param(
        "supervised",
        None,
        Immutable,
        "no",
        Enum(&["upstart", "systemd", "auto", "no"]),
    ),
    param("tcp-backlog", None, Immutable, "511", Int(0, INT_MAX)),
    param("server_cpulist", None, Immutable, "", nullable()),
    param("bio_cpulist", None, Immutable, "", nullable()),
    param("aof_rewrite_cpulist", None, Immutable, "", nullable()),
    param("bgsave_cpulist", None, Immutable, "", nullable()),
];

/// The accepted-only parameter called `name` (its own name or its alias;
/// `name` in lower case).
pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS
        .iter()
        .find(|p| p.name == name || p.alias == Some(name))
}

fn valid_dbfilename(value: &str) -> Result<(), String> {
    if value.contains('/') {
        return Err("dbfilename can't be a path, just a filename".into());
    }
    Ok(())
}

fn valid_aof_filename(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("appendfilename can't be empty".into());
    }
    if value.contains('/') {
        return Err("appendfilename can't be a path, just a filename".into());
    }
    Ok(())
}

fn valid_aof_dirname(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("appenddirname can't be empty".into());
    }
    if value.contains('/') {
        return Err("appenddirname can't be a path, just a dirname".into());
    }
    Ok(())
}

fn valid_hostname(value: &str) -> Result<(), String> {
    if value.len() >= 256 {
        return Err("Hostnames must be less than 256 characters".into());
    }
    if !value
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
    {
        return Err("Hostnames may only contain alphanumeric characters, hyphens or dots".into());
    }
    Ok(())
}

/// As Redis's validateProcTitleTemplate: `{name}` variables must be known,
/// braces balanced (`{{` and `}}` stand for themselves), and the title must
/// not come out empty.
fn valid_proc_title_template(value: &str) -> Result<(), String> {
    const INVALID: &str = "template format is invalid or contains unknown variables";
    let mut expanded = String::new();
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("{{") {
            expanded.push('{');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("}}") {
            expanded.push('}');
            rest = after;
        } else if c == '}' {
            return Err(INVALID.into());
        } else if c == '{' {
            let end = rest.find('}').ok_or(INVALID)?;
            // What each variable stands for in a standalone server with no
            // title: only `{title}` and `{server-mode}` may be empty.
            let sample = match &rest[1..end] {
                "title" | "server-mode" | "unixsocket" | "config-file" => "",
                "listen-addr" => "*:6379",
                "port" => "6379",
                "tls-port" => "0",
                _ => return Err(INVALID.into()),
            };
            expanded.push_str(sample);
            rest = &rest[end + 1..];
        } else {
            expanded.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if expanded.trim_matches(' ').is_empty() {
        return Err(INVALID.into());
    }
    Ok(())
}

/// Parses a byte count as Redis's memtoull: digits, then an optional unit
/// (b, k, kb, m, mb, g, gb; any case). No sign, no spaces.
pub fn memtoull(value: &str) -> Option<u64> {
    let digits_end = value
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(digits_end);
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    // As strtoull: no digits at all reads as 0.
    let number: u64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    number.checked_mul(factor)
}

/// Parses a whole string as a signed 64-bit integer, as Redis's string2ll
/// (no spaces, no `+`).
pub fn string2ll(value: &str) -> Option<i64> {
    if value.is_empty() || value.starts_with('+') || value.len() > 20 {
        return None;
    }
    if value.len() > 1 && (value.starts_with('0') || value.starts_with("-0")) {
        return None;
    }
    value.parse().ok()
}

fn bounds_error_signed(min: i64, max: i64) -> String {
    format!("argument must be between {min} and {max} inclusive")
}

fn bounds_error_unsigned(min: u64, max: u64) -> String {
    format!("argument must be between {min} and {max} inclusive")
}

fn enum_error(names: &[&str]) -> String {
    format!(
        "argument(s) must be one of the following: {}",
        names.join(", ")
    )
}

impl Check {
    /// The value as CONFIG GET will show it, or Redis's reason to refuse it.
    pub fn parse(self, value: &str) -> Result<String, String> {
        match self {
            Bool => match value.to_ascii_lowercase().as_str() {
                "yes" => Ok("yes".into()),
                "no" => Ok("no".into()),
                _ => Err("argument must be 'yes' or 'no'".into()),
            },
            Enum(names) => names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(value))
                .map(|n| n.to_string())
                .ok_or_else(|| enum_error(names)),
            Flags(names) => {
                let mut chosen = vec![false; names.len()];
                let words: Vec<&str> = value.split(' ').collect();
                for word in &words {
                    let index = names
                        .iter()
                        .position(|n| n.eq_ignore_ascii_case(word))
                        .ok_or_else(|| enum_error(names))?;
                    chosen[index] = true;
                }
                if names == SHUTDOWN_FLAGS && chosen[1] && chosen[2] {
                    return Err(
                        "shutdown options SAVE and NOSAVE can't be used simultaneously".into(),
                    );
                }
                let shown: Vec<&str> = names
                    .iter()
                    .zip(&chosen)
                    .skip(1)
                    .filter(|(_, on)| **on)
                    .map(|(n, _)| *n)
                    .collect();
                Ok(if shown.is_empty() {
                    names[0].to_string()
                } else {
                    shown.join(" ")
                })
            }
            Int(min, max) => {
                let n = string2ll(value).ok_or("argument couldn't be parsed into an integer")?;
                if n < min || n > max {
                    return Err(bounds_error_signed(min, max));
                }
                Ok(n.to_string())
            }
            Unsigned(min, max) => {
                let n =
                    string2ll(value).ok_or("argument couldn't be parsed into an integer")? as u64;
                if n < min || n > max {
                    return Err(bounds_error_unsigned(min, max));
                }
                Ok(n.to_string())
            }
            Memory { min, max, unsigned } => {
                let n = memtoull(value).ok_or("argument must be a memory value")?;
                if unsigned {
                    if n < min || n > max {
                        return Err(bounds_error_unsigned(min, max));
                    }
                } else {
                    let signed = n as i64;
                    if signed < min as i64 || signed > max as i64 {
                        return Err(bounds_error_signed(min as i64, max as i64));
                    }
                }
                Ok(n.to_string())
            }
            MemoryOrPercent { max_percent } => {
                if let Some(n) = memtoull(value) {
                    // Stored signed: past i64::MAX it reads as a percentage
                    // of more than 100, as in Redis.
                    if (n as i64) < 0 {
                        return Err(format!(
                            "percentage argument must be less or equal to {max_percent}"
                        ));
                    }
                    return Ok(n.to_string());
                }
                let percent = value
                    .strip_suffix('%')
                    .filter(|n| !n.is_empty())
                    .and_then(string2ll)
                    .filter(|n| *n >= 0)
                    .ok_or("argument must be a memory or percent value")?;
                if percent > max_percent {
                    return Err(format!(
                        "percentage argument must be less or equal to {max_percent}"
                    ));
                }
                Ok(if percent == 0 {
                    "0".into()
                } else {
                    format!("{percent}%")
                })
            }
            Octal(min, max) => {
                let n = i64::from_str_radix(value, 8)
                    .ok()
                    .filter(|_| !value.starts_with('+') && !value.is_empty())
                    .ok_or("argument couldn't be parsed as an octal number")?
                    as u64;
                if n < min || n > max {
                    return Err(format!(
                        "argument must be between {min:o} and {max:o} inclusive"
                    ));
                }
                Ok(format!("{n:o}"))
            }
            Str { validate, .. } => {
                if let Some(validate) = validate {
                    validate(value)?;
                }
                Ok(value.to_string())
            }
            OomScoreAdjValues => {
                let words: Vec<&str> = value.split(' ').collect();
                if words.len() != 3 {
                    return Err("wrong number of arguments".into());
                }
                let mut values = Vec::with_capacity(3);
                for word in words {
                    match word.parse::<i64>() {
                        Ok(n) if (-2000..=2000).contains(&n) && !word.starts_with('+') => {
                            values.push(n.to_string())
                        }
                        _ => {
                            return Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into())
                        }
                    }
                }
                Ok(values.join(" "))
            }
            ReplicaOf => {
                let words: Vec<&str> = value.split(' ').collect();
                if value.is_empty() {
                    return Ok(String::new());
                }
                if words.len() != 2 {
                    return Err("wrong number of arguments".into());
                }
                if words[0].eq_ignore_ascii_case("no") && words[1].eq_ignore_ascii_case("one") {
                    return Ok(String::new());
                }
                // Accepting a master would promise a replication Larder
                // does not do.
                Err("Larder does not replicate: only 'replicaof no one' is accepted".into())
            }
        }
    }

    /// Why Larder refuses a value Redis would take, for what would pretend
    /// to work: turning on TLS or defragmentation (the reasons are Redis's
    /// own, given by a Redis built without them).
    pub fn refusal(param: &Param, shown: &str) -> Option<String> {
        match (param.name, shown) {
            ("tls-cluster" | "tls-replication", "yes") => {
                Some("Unable to update TLS configuration. Check server logs.".into())
            }
            ("activedefrag", "yes") => Some(
                "Active defragmentation cannot be enabled: it requires a Redis server compiled with a modified Jemalloc like the one shipped by default with the Redis source distribution"
                    .into(),
            ),
            ("cluster-enabled", "yes") => {
                Some("Larder runs standalone: cluster-enabled must be 'no'".into())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_shown_as_given() {
        for p in PARAMS {
            assert_eq!(
                p.check.parse(p.default).as_deref(),
                Ok(p.default),
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn checks_follow_redis() {
        assert_eq!(memtoull("1kb"), Some(1024));
        assert_eq!(memtoull("kb"), Some(0));
        assert_eq!(memtoull("+5"), None);
        assert_eq!(memtoull("-5"), None);
        assert_eq!(string2ll("+5"), None);
        assert_eq!(string2ll(" 5"), None);
        let clients = MemoryOrPercent { max_percent: 100 };
        assert_eq!(clients.parse("10%").as_deref(), Ok("10%"));
        assert_eq!(clients.parse("0%").as_deref(), Ok("0"));
        assert!(clients.parse("101%").is_err());
        assert!(clients.parse("-1%").is_err());
        assert_eq!(
            Flags(SHUTDOWN_FLAGS).parse("now nosave").as_deref(),
            Ok("nosave now")
        );
        assert_eq!(
            Flags(SHUTDOWN_FLAGS).parse("default").as_deref(),
            Ok("default")
        );
        assert!(Flags(SHUTDOWN_FLAGS).parse("save nosave").is_err());
        assert_eq!(Octal(0, 0o777).parse("755").as_deref(), Ok("755"));
        assert_eq!(
            Octal(0, 0o777).parse("1000"),
            Err("argument must be between 0 and 777 inclusive".into())
        );
        assert!(valid_proc_title_template("{title}").is_err());
        assert!(valid_proc_title_template("{{title}}").is_ok());
        assert!(valid_proc_title_template("{title} {listen-addr}").is_ok());
        assert!(valid_proc_title_template("x {foo").is_err());
    }
}
