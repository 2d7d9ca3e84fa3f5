//! INFO's text turned into Prometheus's text exposition format (0.0.4),
//! with the series named as oliver006/redis_exporter names them, so that
//! dashboards and alerts built on it work unchanged, plus Larder's own
//! `larder_` series.
//!
//! Only what INFO reports is exported: a field INFO does not have produces
//! no series. The mapping follows redis_exporter's: the fields of its gauge
//! and counter tables (`redis_<name>`, HELP `<name> metric`), the keyspace
//! lines as `redis_db_keys{db=}` and `redis_db_keys_expiring{db=}` (0 for
//! every database without keys), commandstats as `redis_commands_total`,
//! `redis_commands_duration_seconds_total`, `..._rejected_calls_total` and
//! `..._failed_calls_total{cmd=}`, errorstats as `redis_errors_total{err=}`,
//! latencystats as the summary `redis_latency_percentiles_usec{cmd=,
//! quantile=}` (quantile as INFO names it: `50`, `99`, `99.9`; `_sum` and
//! `_count` from commandstats), and `redis_instance_info`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// INFO fields exported as gauges: (field, series name without `redis_`).
const GAUGES: &[(&str, &str)] = &[
    // Server
    ("uptime_in_seconds", "uptime_in_seconds"),
    ("process_id", "process_id"),
    ("io_threads_active", "io_threads_active"),
    // Clients
    ("connected_clients", "connected_clients"),
    ("blocked_clients", "blocked_clients"),
    ("maxclients", "max_clients"),
    ("tracking_clients", "tracking_clients"),
    ("clients_in_timeout_table", "clients_in_timeout_table"),
    ("pubsub_clients", "pubsub_clients"),
    ("watching_clients", "watching_clients"),
    ("total_watched_keys", "total_watched_keys"),
    ("total_blocking_keys", "total_blocking_keys"),
    (
        "total_blocking_keys_on_nokey",
        "total_blocking_keys_on_nokey",
    ),
    (
        "client_recent_max_output_buffer",
        "client_recent_max_output_buffer_bytes",
    ),
    (
        "client_recent_max_input_buffer",
        "client_recent_max_input_buffer_bytes",
    ),
    // Memory
    ("allocator_active", "allocator_active_bytes"),
    ("allocator_allocated", "allocator_allocated_bytes"),
    ("allocator_resident", "allocator_resident_bytes"),
    ("allocator_frag_ratio", "allocator_frag_ratio"),
    ("allocator_frag_bytes", "allocator_frag_bytes"),
    ("allocator_rss_ratio", "allocator_rss_ratio"),
    ("allocator_rss_bytes", "allocator_rss_bytes"),
    ("used_memory", "memory_used_bytes"),
    ("used_memory_rss", "memory_used_rss_bytes"),
    ("used_memory_peak", "memory_used_peak_bytes"),
    ("used_memory_lua", "memory_used_lua_bytes"),
    ("used_memory_vm_eval", "memory_used_vm_eval_bytes"),
    ("used_memory_scripts_eval", "memory_used_scripts_eval_bytes"),
    ("used_memory_overhead", "memory_used_overhead_bytes"),
    ("used_memory_startup", "memory_used_startup_bytes"),
    ("used_memory_dataset", "memory_used_dataset_bytes"),
    ("number_of_cached_scripts", "number_of_cached_scripts"),
    ("number_of_functions", "number_of_functions"),
    ("number_of_libraries", "number_of_libraries"),
    ("used_memory_vm_functions", "memory_used_vm_functions_bytes"),
    ("used_memory_scripts", "memory_used_scripts_bytes"),
    ("used_memory_functions", "memory_used_functions_bytes"),
    ("used_memory_vm_total", "memory_used_vm_total"),
    ("maxmemory", "memory_max_bytes"),
    ("mem_fragmentation_ratio", "mem_fragmentation_ratio"),
    ("mem_fragmentation_bytes", "mem_fragmentation_bytes"),
    ("mem_clients_slaves", "mem_clients_slaves"),
    ("mem_clients_normal", "mem_clients_normal"),
    ("expired_stale_perc", "expired_stale_percentage"),
    (
        "mem_not_counted_for_evict",
        "mem_not_counted_for_eviction_bytes",
    ),
    (
        "mem_total_replication_buffers",
        "mem_total_replication_buffers_bytes",
    ),
    ("lazyfree_pending_objects", "lazyfree_pending_objects"),
    ("active_defrag_running", "active_defrag_running"),
    ("migrate_cached_sockets", "migrate_cached_sockets_total"),
    ("active_defrag_hits", "defrag_hits"),
    ("active_defrag_misses", "defrag_misses"),
    ("active_defrag_key_hits", "defrag_key_hits"),
    ("active_defrag_key_misses", "defrag_key_misses"),
    // Persistence
    ("loading", "loading_dump_file"),
    ("async_loading", "async_loading"),
    ("rdb_changes_since_last_save", "rdb_changes_since_last_save"),
    ("rdb_bgsave_in_progress", "rdb_bgsave_in_progress"),
    ("rdb_last_save_time", "rdb_last_save_timestamp_seconds"),
    ("rdb_last_bgsave_status", "rdb_last_bgsave_status"),
    ("rdb_last_bgsave_time_sec", "rdb_last_bgsave_duration_sec"),
    (
        "rdb_current_bgsave_time_sec",
        "rdb_current_bgsave_duration_sec",
    ),
    ("rdb_saves", "rdb_saves_total"),
    ("rdb_last_cow_size", "rdb_last_cow_size_bytes"),
    ("rdb_last_load_keys_expired", "rdb_last_load_expired_keys"),
    ("rdb_last_load_keys_loaded", "rdb_last_load_loaded_keys"),
    ("aof_enabled", "aof_enabled"),
    ("aof_rewrite_in_progress", "aof_rewrite_in_progress"),
    ("aof_rewrite_scheduled", "aof_rewrite_scheduled"),
    ("aof_last_rewrite_time_sec", "aof_last_rewrite_duration_sec"),
    (
        "aof_current_rewrite_time_sec",
        "aof_current_rewrite_duration_sec",
    ),
    ("aof_last_cow_size", "aof_last_cow_size_bytes"),
    ("aof_current_size", "aof_current_size_bytes"),
    ("aof_base_size", "aof_base_size_bytes"),
    ("aof_pending_rewrite", "aof_pending_rewrite"),
    ("aof_buffer_length", "aof_buffer_length"),
    ("aof_rewrite_buffer_length", "aof_rewrite_buffer_length"),
    ("aof_pending_bio_fsync", "aof_pending_bio_fsync"),
    ("aof_delayed_fsync", "aof_delayed_fsync"),
    ("aof_last_bgrewrite_status", "aof_last_bgrewrite_status"),
    ("aof_last_write_status", "aof_last_write_status"),
    ("module_fork_in_progress", "module_fork_in_progress"),
    ("module_fork_last_cow_size", "module_fork_last_cow_size"),
    // Stats
    (
        "current_eviction_exceeded_time",
        "current_eviction_exceeded_time_ms",
    ),
    ("pubsub_channels", "pubsub_channels"),
    ("pubsub_patterns", "pubsub_patterns"),
    ("pubsubshard_channels", "pubsubshard_channels"),
    ("tracking_total_keys", "tracking_total_keys"),
    ("tracking_total_items", "tracking_total_items"),
    ("tracking_total_prefixes", "tracking_total_prefixes"),
    // Replication
    ("connected_slaves", "connected_slaves"),
    ("repl_backlog_size", "replication_backlog_bytes"),
    ("repl_backlog_active", "repl_backlog_is_active"),
    (
        "repl_backlog_first_byte_offset",
        "repl_backlog_first_byte_offset",
    ),
    ("repl_backlog_histlen", "repl_backlog_history_bytes"),
    ("master_repl_offset", "master_repl_offset"),
    ("second_repl_offset", "second_repl_offset"),
    ("slave_expires_tracked_keys", "slave_expires_tracked_keys"),
    ("slave_priority", "slave_priority"),
    ("sync_full", "replica_resyncs_full"),
    ("sync_partial_ok", "replica_partial_resync_accepted"),
    ("sync_partial_err", "replica_partial_resync_denied"),
    // Cluster
    ("cluster_stats_messages_sent", "cluster_messages_sent_total"),
    (
        "cluster_stats_messages_received",
        "cluster_messages_received_total",
    ),
];

/// INFO fields exported as counters: (field, series name without `redis_`).
const COUNTERS: &[(&str, &str)] = &[
    ("total_connections_received", "connections_received_total"),
    ("total_commands_processed", "commands_processed_total"),
    ("rejected_connections", "rejected_connections_total"),
    ("total_net_input_bytes", "net_input_bytes_total"),
    ("total_net_output_bytes", "net_output_bytes_total"),
    ("total_net_repl_input_bytes", "net_repl_input_bytes_total"),
    ("total_net_repl_output_bytes", "net_repl_output_bytes_total"),
    ("expired_subkeys", "expired_subkeys_total"),
    ("expired_keys", "expired_keys_total"),
    (
        "expired_time_cap_reached_count",
        "expired_time_cap_reached_total",
    ),
    (
        "expire_cycle_cpu_milliseconds",
        "expire_cycle_cpu_time_ms_total",
    ),
    ("evicted_keys", "evicted_keys_total"),
    ("evicted_clients", "evicted_clients_total"),
    ("evicted_scripts", "evicted_scripts_total"),
    (
        "total_eviction_exceeded_time",
        "eviction_exceeded_time_ms_total",
    ),
    ("keyspace_hits", "keyspace_hits_total"),
    ("keyspace_misses", "keyspace_misses_total"),
    ("used_cpu_sys", "cpu_sys_seconds_total"),
    ("used_cpu_user", "cpu_user_seconds_total"),
    ("used_cpu_sys_children", "cpu_sys_children_seconds_total"),
    ("used_cpu_user_children", "cpu_user_children_seconds_total"),
    (
        "used_cpu_sys_main_thread",
        "cpu_sys_main_thread_seconds_total",
    ),
    (
        "used_cpu_user_main_thread",
        "cpu_user_main_thread_seconds_total",
    ),
    ("unexpected_error_replies", "unexpected_error_replies"),
    ("total_error_replies", "total_error_replies"),
    ("dump_payload_sanitizations", "dump_payload_sanitizations"),
    ("total_reads_processed", "total_reads_processed"),
    ("total_writes_processed", "total_writes_processed"),
    ("io_threaded_reads_processed", "io_threaded_reads_processed"),
    (
        "io_threaded_writes_processed",
        "io_threaded_writes_processed",
    ),
    (
        "client_query_buffer_limit_disconnections",
        "client_query_buffer_limit_disconnections_total",
    ),
    (
        "client_output_buffer_limit_disconnections",
        "client_output_buffer_limit_disconnections_total",
    ),
    ("reply_buffer_shrinks", "reply_buffer_shrinks_total"),
    ("reply_buffer_expands", "reply_buffer_expands_total"),
    ("acl_access_denied_auth", "acl_access_denied_auth_total"),
    ("acl_access_denied_cmd", "acl_access_denied_cmd_total"),
    ("acl_access_denied_key", "acl_access_denied_key_total"),
    (
        "acl_access_denied_channel",
        "acl_access_denied_channel_total",
    ),
];

/// The write-behind section's fields (`INFO writebehind`, from the
/// engine's `status()`): (field, series, HELP, counter?). Lag and the
/// circuit states are handled apart.
const WRITEBEHIND: &[(&str, &str, &str, bool)] = &[
    (
        "writebehind_enabled",
        "writebehind_enabled",
        "Whether write-behind to PostgreSQL is on (1) or off (0).",
        false,
    ),
    (
        "pending_keys",
        "writebehind_pending_keys",
        "Changed keys not yet written to PostgreSQL.",
        false,
    ),
    (
        "rows_written",
        "writebehind_rows_written_total",
        "Rows written (inserted or updated) to PostgreSQL.",
        true,
    ),
    (
        "rows_deleted",
        "writebehind_rows_deleted_total",
        "Rows deleted from PostgreSQL.",
        true,
    ),
    (
        "batches",
        "writebehind_batches_total",
        "Batches sent to PostgreSQL.",
        true,
    ),
    (
        "retries",
        "writebehind_retries_total",
        "Batches retried after a failure.",
        true,
    ),
    (
        "failures",
        "writebehind_errors_total",
        "Failed attempts to write a batch to PostgreSQL.",
        true,
    ),
    (
        "dead_letters",
        "writebehind_dead_letters_total",
        "Rows PostgreSQL refused for good, written to the dead-letter table.",
        true,
    ),
    (
        "unmapped_fields",
        "writebehind_unmapped_fields_total",
        "Hash fields that no column of a mapped table took.",
        true,
    ),
    (
        "read_through_queries",
        "writebehind_read_through_queries_total",
        "Read-through lookups sent to PostgreSQL.",
        true,
    ),
    (
        "keys_loaded",
        "writebehind_keys_loaded_total",
        "Keys loaded from PostgreSQL (read-through and warm start).",
        true,
    ),
    (
        "load_failures",
        "writebehind_load_failures_total",
        "Failed read-through lookups.",
        true,
    ),
    (
        "read_through_skipped",
        "writebehind_read_through_skipped_total",
        "Read-through lookups skipped (circuit open or time budget spent).",
        true,
    ),
    (
        "journal_enabled",
        "writebehind_journal_enabled",
        "Whether the write-behind journal is on.",
        false,
    ),
    (
        "journal_bytes",
        "writebehind_journal_bytes",
        "Bytes in the write-behind journal's files.",
        false,
    ),
    (
        "journal_files",
        "writebehind_journal_files",
        "Files of the write-behind journal.",
        false,
    ),
    (
        "journal_buffered_bytes",
        "writebehind_journal_buffered_bytes",
        "Journal bytes not yet written to its file.",
        false,
    ),
    (
        "journal_rewrites",
        "writebehind_journal_rewrites_total",
        "Rewrites of the write-behind journal.",
        true,
    ),
    (
        "journal_rewrite_in_progress",
        "writebehind_journal_rewrite_in_progress",
        "Whether a journal rewrite runs now.",
        false,
    ),
    (
        "journal_errors",
        "writebehind_journal_errors_total",
        "Failed writes or fsyncs of the write-behind journal.",
        true,
    ),
];

/// The states a write-behind circuit breaker reports.
const CIRCUIT_STATES: &[&str] = &["closed", "open", "half-open"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
    Summary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Summary => "summary",
        }
    }
}

struct Family {
    help: String,
    kind: Kind,
    /// (name suffix such as `_sum`, labels, value), in the order added.
    samples: Vec<(&'static str, String, f64)>,
}

/// Metric families by name: the output lists them sorted by name, as
/// client_golang (redis_exporter's library) does.
#[derive(Default)]
struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    fn add(&mut self, name: &str, kind: Kind, help: &str, labels: &[(&str, &str)], value: f64) {
        self.add_sample(name, "", kind, help, labels, value);
    }

    fn add_sample(
        &mut self,
        name: &str,
        suffix: &'static str,
        kind: Kind,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let family = self
            .families
            .entry(name.to_string())
            .or_insert_with(|| Family {
                help: help.to_string(),
                kind,
                samples: Vec::new(),
            });
        let mut text = String::new();
        for (i, (label, label_value)) in labels.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{label}=\"{}\"", escape_label(label_value));
        }
        family.samples.push((suffix, text, value));
    }

    /// A redis_exporter series from its tables: HELP as it writes it.
    fn redis(&mut self, name: &str, kind: Kind, value: f64) {
        let help = format!("{name} metric");
        self.add(&format!("redis_{name}"), kind, &help, &[], value);
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, family) in &self.families {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.name());
            for (suffix, labels, value) in &family.samples {
                out.push_str(name);
                out.push_str(suffix);
                if !labels.is_empty() {
                    out.push('{');
                    out.push_str(labels);
                    out.push('}');
                }
                out.push(' ');
                out.push_str(&format_value(*value));
                out.push('\n');
            }
        }
        out
    }
}

/// A sample value as the text format writes it (Go's spelling of the
/// special values).
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A field's value as a number, as redis_exporter reads it: `ok`/`true`
/// are 1, `err`/`fail`/`false` 0; what is not a number gives no series.
fn number(value: &str) -> Option<f64> {
    match value {
        "ok" | "true" => Some(1.0),
        "err" | "fail" | "false" => Some(0.0),
        _ => value.parse().ok(),
    }
}

/// `name=value` pairs of a line such as `calls=2,usec=8,usec_per_call=4.00`.
fn pairs(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(',').filter_map(|pair| pair.split_once('='))
}

/// One `field:value` line of INFO, with the section it is in (lower case:
/// `stats`, `commandstats`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    pub section: String,
    pub key: &'a str,
    pub value: &'a str,
}

/// INFO's lines, section by section (`# Title` lines start a section;
/// blank lines and anything without a colon are skipped).
pub fn parse_info(text: &str) -> Vec<Field<'_>> {
    let mut section = String::new();
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(title) = line.strip_prefix("# ") {
            section = title.trim().to_ascii_lowercase();
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            if !key.is_empty() {
                fields.push(Field {
                    section: section.clone(),
                    key,
                    value,
                });
            }
        }
    }
    fields
}

/// The scrape: `info` is the text of `INFO everything` (`None`: INFO
/// failed, and only `redis_up 0` is reported); `databases` the number of
/// databases (each without keys gets `redis_db_keys 0`); `now_unix` the
/// time, for `redis_start_time_seconds`.
pub fn render(info: Option<&str>, databases: usize, now_unix: f64) -> String {
    let mut out = Exposition::default();
    out.add(
        "redis_up",
        Kind::Gauge,
        "Information about the Redis instance",
        &[],
        if info.is_some() { 1.0 } else { 0.0 },
    );
    if let Some(info) = info {
        add_info(&mut out, &parse_info(info), databases, now_unix);
    }
    out.render()
}

fn add_info(out: &mut Exposition, fields: &[Field<'_>], databases: usize, now_unix: f64) {
    let mut values: BTreeMap<&str, &str> = BTreeMap::new();
    let mut databases_seen = Vec::new();
    // Per command, from commandstats: (calls, usec) for the latency
    // summaries' _count and _sum.
    let mut command_totals: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut latencies: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    for field in fields {
        let (key, value) = (field.key, field.value);
        match field.section.as_str() {
            "commandstats" => {
                if let Some(cmd) = key.strip_prefix("cmdstat_") {
                    if let Some(totals) = add_command_stats(out, cmd, value) {
                        command_totals.insert(cmd, totals);
                    }
                }
                continue;
            }
            "errorstats" => {
                if let Some(kind) = key.strip_prefix("errorstat_") {
                    if let Some(count) = pairs(value).find(|(k, _)| *k == "count") {
                        if let Ok(count) = count.1.parse() {
                            out.add(
                                "redis_errors_total",
                                Kind::Counter,
                                "Total number of errors per error type",
                                &[("err", kind)],
                                count,
                            );
                        }
                    }
                }
                continue;
            }
            "latencystats" => {
                if let Some(cmd) = key.strip_prefix("latency_percentiles_usec_") {
                    let quantiles: Option<Vec<(f64, f64)>> = pairs(value)
                        .map(|(p, v)| Some((p.strip_prefix('p')?.parse().ok()?, v.parse().ok()?)))
                        .collect();
                    if let Some(quantiles) = quantiles {
                        latencies.push((cmd, quantiles));
                    }
                }
                continue;
            }
            "keyspace" if add_keyspace(out, key, value) => {
                databases_seen.push(key);
                continue;
            }
            "writebehind" | "larder" => {
                add_larder(out, key, value);
                continue;
            }
            _ => {}
        }
        values.insert(key, value);
        if key == "uptime_in_seconds" {
            if let Ok(uptime) = value.parse::<f64>() {
                out.add(
                    "redis_start_time_seconds",
                    Kind::Gauge,
                    "Start time of the Redis instance since unix epoch in seconds.",
                    &[],
                    (now_unix - uptime).floor(),
                );
            }
        }
        if key == "latest_fork_usec" {
            if let Ok(usec) = value.parse::<f64>() {
                out.redis("latest_fork_seconds", Kind::Gauge, usec / 1e6);
            }
            continue;
        }
        let counter = COUNTERS.iter().find(|(field, _)| *field == key);
        let gauge = GAUGES.iter().find(|(field, _)| *field == key);
        let name = match (gauge, counter) {
            (Some((_, name)), _) | (None, Some((_, name))) => name.to_string(),
            // Every cluster_ field is a gauge of its own name in
            // redis_exporter (cluster_enabled...).
            (None, None) if key.starts_with("cluster_") => key.to_string(),
            (None, None) => continue,
        };
        if let Some(value) = number(value) {
            let kind = if counter.is_some() {
                Kind::Counter
            } else {
                Kind::Gauge
            };
            out.redis(&name, kind, value);
        }
    }
    for db in 0..databases {
        let name = format!("db{db}");
        if !databases_seen.contains(&name.as_str()) {
            add_db_keys(out, &name, 0.0, 0.0);
        }
    }
    for (cmd, quantiles) in latencies {
        let Some(&(calls, usec)) = command_totals.get(cmd) else {
            continue;
        };
        const HELP: &str = "A summary of latency percentile distribution per command";
        const NAME: &str = "redis_latency_percentiles_usec";
        for (quantile, value) in quantiles {
            let quantile = format_value(quantile);
            let labels = [("cmd", cmd), ("quantile", quantile.as_str())];
            out.add(NAME, Kind::Summary, HELP, &labels, value);
        }
        out.add_sample(NAME, "_sum", Kind::Summary, HELP, &[("cmd", cmd)], usec);
        out.add_sample(NAME, "_count", Kind::Summary, HELP, &[("cmd", cmd)], calls);
    }
    let label = |name: &str| values.get(name).copied().unwrap_or("");
    out.add(
        "redis_instance_info",
        Kind::Gauge,
        "Information about the Redis instance",
        &[
            ("role", label("role")),
            ("redis_version", label("redis_version")),
            ("redis_build_id", label("redis_build_id")),
            ("redis_mode", label("redis_mode")),
            ("os", label("os")),
            ("maxmemory_policy", label("maxmemory_policy")),
            ("tcp_port", label("tcp_port")),
            ("run_id", label("run_id")),
            ("process_id", label("process_id")),
            ("master_replid", label("master_replid")),
        ],
        1.0,
    );
    if !label("larder_version").is_empty() {
        out.add(
            "larder_build_info",
            Kind::Gauge,
            "Larder's version and the Redis version it reports.",
            &[
                ("larder_version", label("larder_version")),
                ("redis_version", label("redis_version")),
            ],
            1.0,
        );
    }
    let hits = values
        .get("keyspace_hits")
        .and_then(|v| v.parse::<f64>().ok());
    let misses = values
        .get("keyspace_misses")
        .and_then(|v| v.parse::<f64>().ok());
    if let (Some(hits), Some(misses)) = (hits, misses) {
        let lookups = hits + misses;
        out.add(
            "larder_keyspace_hit_ratio",
            Kind::Gauge,
            "keyspace_hits / (keyspace_hits + keyspace_misses) since the start or CONFIG RESETSTAT (0 before any lookup).",
            &[],
            if lookups > 0.0 { hits / lookups } else { 0.0 },
        );
    }
}

/// `cmdstat_<cmd>:calls=,usec=,usec_per_call=[,rejected_calls=,failed_calls=]`;
/// returns (calls, usec).
fn add_command_stats(out: &mut Exposition, cmd: &str, value: &str) -> Option<(f64, f64)> {
    let stats: BTreeMap<&str, f64> = pairs(value)
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    let calls = *stats.get("calls")?;
    let usec = *stats.get("usec")?;
    let labels = [("cmd", cmd)];
    out.add(
        "redis_commands_total",
        Kind::Counter,
        "Total number of calls per command",
        &labels,
        calls,
    );
    out.add(
        "redis_commands_duration_seconds_total",
        Kind::Counter,
        "Total amount of time in seconds spent per command",
        &labels,
        usec / 1e6,
    );
    if let (Some(&rejected), Some(&failed)) =
        (stats.get("rejected_calls"), stats.get("failed_calls"))
    {
        out.add(
            "redis_commands_rejected_calls_total",
            Kind::Counter,
            "Total number of errors within command execution per command",
            &labels,
            rejected,
        );
        out.add(
            "redis_commands_failed_calls_total",
            Kind::Counter,
            "Total number of errors prior command execution per command",
            &labels,
            failed,
        );
    }
    Some((calls, usec))
}

/// `db<n>:keys=,expires=,avg_ttl=`: whether `key` was such a line.
fn add_keyspace(out: &mut Exposition, key: &str, value: &str) -> bool {
    if !key.starts_with("db") {
        return false;
    }
    let stats: BTreeMap<&str, f64> = pairs(value)
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect();
    let (Some(&keys), Some(&expires)) = (stats.get("keys"), stats.get("expires")) else {
        return false;
    };
    add_db_keys(out, key, keys, expires);
    if let Some(&avg_ttl) = stats.get("avg_ttl") {
        out.add(
            "redis_db_avg_ttl_seconds",
            Kind::Gauge,
            "Avg TTL in seconds",
            &[("db", key)],
            avg_ttl / 1000.0,
        );
    }
    true
}

fn add_db_keys(out: &mut Exposition, db: &str, keys: f64, expires: f64) {
    out.add(
        "redis_db_keys",
        Kind::Gauge,
        "Total number of keys by DB",
        &[("db", db)],
        keys,
    );
    out.add(
        "redis_db_keys_expiring",
        Kind::Gauge,
        "Total number of expiring keys by DB",
        &[("db", db)],
        expires,
    );
}

/// A field of the `writebehind` or `larder` section.
fn add_larder(out: &mut Exposition, key: &str, value: &str) {
    if let Some(&(_, name, help, counter)) = WRITEBEHIND.iter().find(|(field, ..)| *field == key) {
        if let Ok(value) = value.parse() {
            let kind = if counter { Kind::Counter } else { Kind::Gauge };
            out.add(&format!("larder_{name}"), kind, help, &[], value);
        }
        return;
    }
    match key {
        "state" => out.add(
            "larder_writebehind_up",
            Kind::Gauge,
            "Whether PostgreSQL took the last write-behind batch (1) or the engine is retrying (0).",
            &[],
            if value == "up" { 1.0 } else { 0.0 },
        ),
        "oldest_pending_age_ms" => {
            if let Ok(ms) = value.parse::<f64>() {
                out.add(
                    "larder_writebehind_lag_seconds",
                    Kind::Gauge,
                    "Age of the oldest change not yet in PostgreSQL.",
                    &[],
                    ms / 1000.0,
                );
            }
        }
        "circuit" | "read_through_circuit" => {
            let (name, help) = if key == "circuit" {
                (
                    "larder_writebehind_circuit_state",
                    "State of the write-behind circuit breaker (1 for the current state).",
                )
            } else {
                (
                    "larder_writebehind_read_through_circuit_state",
                    "State of the read-through circuit breaker (1 for the current state).",
                )
            };
            for state in CIRCUIT_STATES {
                let current = if *state == value { 1.0 } else { 0.0 };
                out.add(name, Kind::Gauge, help, &[("state", state)], current);
            }
        }
        "shards" => {
            if let Ok(shards) = value.parse() {
                out.add(
                    "larder_shards",
                    Kind::Gauge,
                    "Keyspace shards (each with its own lock).",
                    &[],
                    shards,
                );
            }
        }
        "shard_lock_waits" => {
            if let Ok(waits) = value.parse() {
                out.add(
                    "larder_shard_lock_waits_total",
                    Kind::Counter,
                    "Shard-lock acquisitions that found the lock held by another thread and waited.",
                    &[],
                    waits,
                );
            }
        }
        _ => {
            if let (Some(policy), Ok(evicted)) =
                (key.strip_prefix("evicted_keys_"), value.parse::<f64>())
            {
                out.add(
                    "larder_evicted_keys_total",
                    Kind::Counter,
                    "Keys evicted for maxmemory, by the maxmemory-policy that chose them.",
                    &[("policy", policy)],
                    evicted,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `INFO everything` from redis-server 7.0.15 after a little traffic
    /// (SET, GET hit and miss, EXPIRE, INCR, LPUSH on a string, an unknown
    /// command, CONFIG GET, keys in db0 and db2); the os line generalised.
    const REDIS_7_0_15: &str = include_str!("testdata/redis-7.0.15-info-everything.txt");

    /// (name with labels, value) of every sample line.
    fn samples(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').expect("name and value");
                (name.to_string(), value.to_string())
            })
            .collect()
    }

    fn value_of(text: &str, series: &str) -> Option<String> {
        samples(text)
            .into_iter()
            .find(|(name, _)| name == series)
            .map(|(_, value)| value)
    }

    fn type_of(text: &str, family: &str) -> Option<String> {
        let prefix = format!("# TYPE {family} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::to_string)
    }

    #[test]
    fn parses_sections_and_fields() {
        let fields = parse_info(REDIS_7_0_15);
        let get = fields
            .iter()
            .find(|f| f.key == "cmdstat_get")
            .expect("cmdstat_get");
        assert_eq!(get.section, "commandstats");
        assert_eq!(
            get.value,
            "calls=2,usec=8,usec_per_call=4.00,rejected_calls=0,failed_calls=0"
        );
        let db2 = fields.iter().find(|f| f.key == "db2").expect("db2");
        assert_eq!(db2.section, "keyspace");
        // CRLF endings are gone; a value may hold colons (run_id has none,
        // but executable paths and `config|get` names must stay whole).
        assert!(fields.iter().all(|f| !f.value.ends_with('\r')));
        assert!(fields
            .iter()
            .any(|f| f.key == "latency_percentiles_usec_config|get"));
    }

    #[test]
    fn redis_7_info_maps_to_redis_exporter_series() {
        let text = render(Some(REDIS_7_0_15), 16, 1_700_000_000.0);
        let expect = [
            ("redis_up", "1"),
            ("redis_connected_clients", "1"),
            ("redis_commands_processed_total", "11"),
            ("redis_keyspace_hits_total", "1"),
            ("redis_keyspace_misses_total", "1"),
            ("redis_db_keys{db=\"db0\"}", "2"),
            ("redis_db_keys_expiring{db=\"db0\"}", "1"),
            ("redis_db_keys{db=\"db2\"}", "1"),
            ("redis_db_keys{db=\"db1\"}", "0"),
            ("redis_db_keys{db=\"db15\"}", "0"),
            ("redis_commands_total{cmd=\"get\"}", "2"),
            ("redis_commands_total{cmd=\"config|get\"}", "1"),
            (
                "redis_commands_duration_seconds_total{cmd=\"set\"}",
                "0.000025",
            ),
            ("redis_commands_failed_calls_total{cmd=\"lpush\"}", "1"),
            ("redis_commands_rejected_calls_total{cmd=\"lpush\"}", "0"),
            ("redis_errors_total{err=\"ERR\"}", "1"),
            ("redis_errors_total{err=\"WRONGTYPE\"}", "1"),
            (
                "redis_latency_percentiles_usec{cmd=\"get\",quantile=\"50\"}",
                "3.007",
            ),
            (
                "redis_latency_percentiles_usec{cmd=\"get\",quantile=\"99.9\"}",
                "5.023",
            ),
            ("redis_latency_percentiles_usec_sum{cmd=\"get\"}", "8"),
            ("redis_latency_percentiles_usec_count{cmd=\"get\"}", "2"),
            ("redis_cpu_sys_seconds_total", "0.001572"),
            ("redis_cpu_user_seconds_total", "0.002489"),
            ("redis_memory_max_bytes", "0"),
            ("redis_rdb_last_bgsave_status", "1"),
            ("redis_cluster_enabled", "0"),
            ("larder_keyspace_hit_ratio", "0.5"),
        ];
        for (series, value) in expect {
            assert_eq!(
                value_of(&text, series).as_deref(),
                Some(value),
                "{series} in:\n{text}"
            );
        }
        let used = value_of(&text, "redis_memory_used_bytes").expect("memory");
        assert!(used.parse::<u64>().unwrap() > 100_000);
        for (family, kind) in [
            ("redis_up", "gauge"),
            ("redis_connected_clients", "gauge"),
            ("redis_commands_processed_total", "counter"),
            ("redis_net_input_bytes_total", "counter"),
            ("redis_connections_received_total", "counter"),
            ("redis_evicted_keys_total", "counter"),
            ("redis_expired_keys_total", "counter"),
            ("redis_db_keys", "gauge"),
            ("redis_commands_total", "counter"),
            ("redis_latency_percentiles_usec", "summary"),
            ("redis_instance_info", "gauge"),
            ("redis_pubsub_channels", "gauge"),
            ("redis_blocked_clients", "gauge"),
            ("redis_uptime_in_seconds", "gauge"),
            ("redis_start_time_seconds", "gauge"),
        ] {
            assert_eq!(type_of(&text, family).as_deref(), Some(kind), "{family}");
        }
        let info = samples(&text)
            .into_iter()
            .find(|(name, _)| name.starts_with("redis_instance_info{"))
            .expect("instance_info")
            .0;
        assert!(info.contains("redis_version=\"7.0.15\""), "{info}");
        assert!(info.contains("role=\"master\""), "{info}");
        assert!(info.contains("maxmemory_policy=\"noeviction\""), "{info}");
        // Strings INFO has that are not numbers make no series.
        assert!(value_of(&text, "redis_os").is_none());
        assert!(!text.contains("redis_used_memory_human"));
    }

    #[test]
    fn every_family_has_help_and_type_once_and_before_its_samples() {
        let text = render(Some(REDIS_7_0_15), 16, 1_700_000_000.0);
        let mut seen = std::collections::HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(seen.insert(name.clone()), "{name} twice");
                current = name;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert!(rest.starts_with(&format!("{current} ")), "{line}");
            } else {
                assert!(line.starts_with(&current), "{line} outside {current}");
            }
        }
        assert!(seen.len() > 40, "{}", seen.len());
    }

    #[test]
    fn without_info_only_up_zero() {
        let text = render(None, 16, 0.0);
        assert_eq!(
            text,
            "# HELP redis_up Information about the Redis instance\n# TYPE redis_up gauge\nredis_up 0\n"
        );
    }

    #[test]
    fn latency_without_its_command_stats_makes_no_summary() {
        let info =
            "# Latencystats\r\nlatency_percentiles_usec_get:p50=1.003,p99=2.007,p99.9=3.007\r\n";
        let text = render(Some(info), 1, 0.0);
        assert!(!text.contains("redis_latency_percentiles_usec"), "{text}");
        let info = format!(
            "# Commandstats\r\ncmdstat_get:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\r\n{info}"
        );
        let text = render(Some(&info), 1, 0.0);
        assert_eq!(
            value_of(
                &text,
                "redis_latency_percentiles_usec{cmd=\"get\",quantile=\"99\"}"
            )
            .as_deref(),
            Some("2.007")
        );
    }

    #[test]
    fn larder_sections_map_to_larder_series() {
        let info = "# Writebehind\r\nwritebehind_enabled:1\r\nstate:retrying\r\npending_keys:7\r\n\
            oldest_pending_age_ms:1500\r\nrows_written:40\r\nfailures:3\r\ncircuit:open\r\n\
            dead_letters:2\r\nlast_error:connection refused: 5432\r\n\r\n\
            # Larder\r\nshards:64\r\nshard_lock_waits:11\r\nevicted_keys_allkeys-lru:5\r\n\
            evicted_keys_allkeys-s3fifo:0\r\n";
        let text = render(Some(info), 1, 0.0);
        for (series, value) in [
            ("larder_writebehind_enabled", "1"),
            ("larder_writebehind_up", "0"),
            ("larder_writebehind_pending_keys", "7"),
            ("larder_writebehind_lag_seconds", "1.5"),
            ("larder_writebehind_rows_written_total", "40"),
            ("larder_writebehind_errors_total", "3"),
            ("larder_writebehind_dead_letters_total", "2"),
            ("larder_writebehind_circuit_state{state=\"open\"}", "1"),
            ("larder_writebehind_circuit_state{state=\"closed\"}", "0"),
            ("larder_shards", "64"),
            ("larder_shard_lock_waits_total", "11"),
            ("larder_evicted_keys_total{policy=\"allkeys-lru\"}", "5"),
            ("larder_evicted_keys_total{policy=\"allkeys-s3fifo\"}", "0"),
        ] {
            assert_eq!(
                value_of(&text, series).as_deref(),
                Some(value),
                "{series} in:\n{text}"
            );
        }
        assert_eq!(
            type_of(&text, "larder_writebehind_rows_written_total").as_deref(),
            Some("counter")
        );
        // Write-behind's generic field names never leak into redis_ series.
        assert!(!text.contains("redis_failures"));
    }

    #[test]
    fn label_values_are_escaped() {
        let info = "# Errorstats\r\nerrorstat_a\"b\\c:count=1\r\n";
        let text = render(Some(info), 0, 0.0);
        assert!(
            text.contains("redis_errors_total{err=\"a\\\"b\\\\c\"} 1\n"),
            "{text}"
        );
    }
}
