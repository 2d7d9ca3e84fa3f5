//! INFO: the server's figures, section by section, in Redis 7.4's order
//! and with its field names, so that tools written for Redis find what
//! they look for. Figures of machinery Larder does not have (replication,
//! AOF, forks, defragmentation, modules) are reported as Redis reports
//! them when that machinery is idle or off. Larder's own figures are in
//! the `larder` and `writebehind` sections, shown when asked for by name
//! or with `everything`.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::connection::REDIS_VERSION;
use super::flags::*;
use super::{CommandSpec, Ctx, NO_KEYS};
use crate::error::Result;
use crate::shared::instantaneous::Metric;

pub static COMMANDS: &[CommandSpec] =
    &[
        CommandSpec::new("info", -1, LOADING | STALE | WHOLE_KEYSPACE, NO_KEYS, info)
            .acl(&["dangerous"])
            .tips(&[
                "nondeterministic_output",
                "request_policy:all_shards",
                "response_policy:special",
            ])
            .doc(
                "server",
                "1.0.0",
                "Returns information and statistics about the server.",
                "O(1)",
            ),
    ];

/// One INFO section: its name, and whether plain INFO (`default`) shows it.
struct Section {
    name: &'static str,
    default: bool,
    /// Shown by `all` (Redis's sections); Larder's own need `everything`
    /// or their name.
    in_all: bool,
}

const fn section(name: &'static str, default: bool, in_all: bool) -> Section {
    Section {
        name,
        default,
        in_all,
    }
}

/// Every section, in the order INFO prints them.
const SECTIONS: &[Section] = &[
    section("server", true, true),
    section("clients", true, true),
    section("memory", true, true),
    section("persistence", true, true),
    section("stats", true, true),
    section("replication", true, true),
    section("cpu", true, true),
    section("modules", true, true),
    section("commandstats", false, true),
    section("errorstats", true, true),
    section("latencystats", false, true),
    section("cluster", true, true),
    section("keyspace", true, true),
    section("larder", false, false),
    section("writebehind", false, false),
];

/// Which sections INFO's arguments ask for (Redis 7's genInfoSectionDict:
/// `all`, `default`, `everything` and section names, case-insensitively;
/// unknown names are ignored).
fn wanted_sections(argv: &[&[u8]]) -> Vec<bool> {
    let mut wanted = vec![false; SECTIONS.len()];
    let mut select = |pick: &dyn Fn(&Section) -> bool| {
        for (i, section) in SECTIONS.iter().enumerate() {
            wanted[i] |= pick(section);
        }
    };
    if argv.len() == 1 {
        select(&|s| s.default);
    }
    for arg in &argv[1..] {
        let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match name.as_str() {
            "default" => select(&|s| s.default),
            "all" => select(&|s| s.in_all),
            "everything" => select(&|_| true),
            name => select(&|s| s.name == name),
        }
    }
    wanted
}

fn info(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let wanted = wanted_sections(argv);
    let mut text = String::new();
    for (section, _) in SECTIONS.iter().zip(&wanted).filter(|(_, w)| **w) {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let body = match section.name {
            "server" => server_section(ctx),
            "clients" => clients_section(ctx)?,
            "memory" => memory_section(ctx)?,
            "persistence" => persistence_section(ctx)?,
            "stats" => stats_section(ctx),
            "replication" => replication_section(ctx),
            "cpu" => cpu_section(),
            "modules" => String::new(),
            "commandstats" => super::commandstats_info(ctx.shared),
            "errorstats" => super::errorstats_info(ctx.shared),
            "latencystats" => super::latencystats_info(ctx.shared),
            "cluster" => fields(&[("cluster_enabled", "0".into())]),
            "keyspace" => keyspace_section(ctx)?,
            "larder" => larder_section(ctx),
            _ => writebehind_section(ctx),
        };
        let title = match section.name {
            "cpu" => "CPU".to_string(),
            name => format!("{}{}", name[..1].to_ascii_uppercase(), &name[1..]),
        };
        text.push_str(&format!("# {title}\r\n{body}"));
    }
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}

fn fields(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}:{v}\r\n")).collect()
}

fn unix_now() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn server_section(ctx: &Ctx) -> String {
    let uptime = ctx.shared.started.elapsed().as_secs();
    let bound = ctx.shared.bound.lock().clone();
    let port = bound.first().map_or(0, |a| a.port());
    let now = unix_now();
    let hz = ctx.shared.config.read().hz;
    // Redis's LRU clock: seconds, in 24 bits.
    let lru_clock = now.as_secs() & ((1 << 24) - 1);
    let (sysname, release, machine) = uname();
    let binds: String = bound.iter().map(|a| format!(",bind={}", a.ip())).collect();
    fields(&[
        ("redis_version", REDIS_VERSION.into()),
        ("redis_git_sha1", "00000000".into()),
        ("redis_git_dirty", "0".into()),
        ("redis_build_id", "0".into()),
        ("redis_mode", "standalone".into()),
        ("os", format!("{sysname} {release} {machine}")),
        ("arch_bits", (usize::BITS).to_string()),
        ("monotonic_clock", "POSIX clock_gettime".into()),
        ("multiplexing_api", "epoll".into()),
        ("atomicvar_api", "c11-builtin".into()),
        // Larder is not built by gcc.
        ("gcc_version", "0.0.0".into()),
        ("process_id", std::process::id().to_string()),
        ("process_supervised", "no".into()),
        ("run_id", ctx.shared.run_id.clone()),
        ("tcp_port", port.to_string()),
        ("server_time_usec", now.as_micros().to_string()),
        ("uptime_in_seconds", uptime.to_string()),
        ("uptime_in_days", (uptime / 86400).to_string()),
        ("hz", hz.to_string()),
        ("configured_hz", hz.to_string()),
        ("lru_clock", lru_clock.to_string()),
        (
            "executable",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("config_file", String::new()),
        ("io_threads_active", "0".into()),
        ("listener0", format!("name=tcp{binds},port={port}")),
        ("larder_version", env!("CARGO_PKG_VERSION").into()),
    ])
}

/// The kernel's name, release and machine (`uname -srm`), as Redis's `os`.
fn uname() -> (String, String, String) {
    // SAFETY: utsname is plain bytes; uname fills it or fails.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return (
            std::env::consts::OS.into(),
            String::new(),
            std::env::consts::ARCH.into(),
        );
    }
    let text = |field: &[libc::c_char]| {
        let bytes: Vec<u8> = field
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (
        text(&name.sysname),
        text(&name.release),
        text(&name.machine),
    )
}

fn clients_section(ctx: &mut Ctx) -> Result<String> {
    let maxclients = ctx.shared.config.read().maxclients;
    let clients = ctx.shared.clients.list();
    let (mut max_input, mut max_output) = (0, 0);
    let (mut pubsub_clients, mut watching_clients) = (0, 0);
    for client in &clients {
        let (input, output) = client.buffer_lengths();
        max_input = max_input.max(input);
        max_output = max_output.max(output);
        let meta = client.meta.lock();
        pubsub_clients += usize::from(meta.subscriptions.iter().any(|&n| n > 0));
        watching_clients += usize::from(meta.watching > 0);
    }
    let mut watched_keys = 0;
    let databases = ctx.store().databases();
    ctx.locks.each_shard(|shard| {
        for db in 0..databases {
            watched_keys += shard.db_ref(db).watched_len();
        }
        Ok(())
    })?;
    let blocking = &ctx.shared.blocking;
    Ok(fields(&[
        ("connected_clients", clients.len().to_string()),
        ("cluster_connections", "0".into()),
        ("maxclients", maxclients.to_string()),
        ("client_recent_max_input_buffer", max_input.to_string()),
        ("client_recent_max_output_buffer", max_output.to_string()),
        ("blocked_clients", blocking.blocked_clients().to_string()),
        (
            "tracking_clients",
            ctx.shared.pubsub.tracking.client_count().to_string(),
        ),
        ("pubsub_clients", pubsub_clients.to_string()),
        ("watching_clients", watching_clients.to_string()),
        (
            "clients_in_timeout_table",
            blocking.clients_with_timeout().to_string(),
        ),
        ("total_watched_keys", watched_keys.to_string()),
        ("total_blocking_keys", blocking.waited_keys().to_string()),
        // Keys waited on by clients that must wake if the key is deleted
        // (XREADGROUP): Larder has no such waits.
        ("total_blocking_keys_on_nokey", "0".into()),
    ]))
}

/// Bytes in Redis's human form: 1.50K, 2.00M...
pub fn human_bytes(n: u64) -> String {
    let units = [
        ("B", 1u64),
        ("K", 1 << 10),
        ("M", 1 << 20),
        ("G", 1 << 30),
        ("T", 1 << 40),
    ];
    let (unit, size) = units
        .iter()
        .rev()
        .find(|(_, size)| n >= *size)
        .copied()
        .unwrap_or(("B", 1));
    if unit == "B" {
        format!("{n}B")
    } else {
        format!("{:.2}{unit}", n as f64 / size as f64)
    }
}

/// Redis's memory fields, in Redis 7.0's order. `used_memory` is what the
/// allocator handed out when the counting allocator is installed
/// (`larder-server` installs it around mimalloc); otherwise it is the
/// process RSS, an upper bound (see `larder::memory`), and `mem_allocator`
/// says "unknown". The overhead/dataset split and the allocator figures are
/// MEMORY STATS's (`object::memory_overhead`); Lua, functions, replication
/// and AOF do not exist in Larder and report 0.
fn memory_section(ctx: &mut Ctx) -> Result<String> {
    let lua = ctx.shared.scripting.stats();
    let m = super::object::memory_overhead(ctx)?;
    let used = m.total_allocated;
    let peak = m.peak_allocated;
    let rss = m.rss;
    let limits = ctx.shared.config.read().memory_limits();
    let system = total_system_memory();
    let net = used.saturating_sub(m.startup_allocated).max(1);
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(fields(&[
        ("used_memory", used.to_string()),
        ("used_memory_human", human_bytes(used)),
        ("used_memory_rss", rss.to_string()),
        ("used_memory_rss_human", human_bytes(rss)),
        ("used_memory_peak", peak.to_string()),
        ("used_memory_peak_human", human_bytes(peak)),
        (
            "used_memory_peak_perc",
            format!("{:.2}%", ratio(used, peak) * 100.0),
        ),
        ("used_memory_overhead", m.overhead_total.to_string()),
        ("used_memory_startup", m.startup_allocated.to_string()),
        ("used_memory_dataset", m.dataset.to_string()),
        (
            "used_memory_dataset_perc",
            format!("{:.2}%", ratio(m.dataset, net) * 100.0),
        ),
        ("allocator_allocated", m.allocator_allocated.to_string()),
        ("allocator_active", m.allocator_active.to_string()),
        ("allocator_resident", m.allocator_resident.to_string()),
        ("total_system_memory", system.to_string()),
        ("total_system_memory_human", human_bytes(system)),
        // One Lua VM serves scripts and functions: its memory is reported
        // as the scripts' (used_memory_vm_functions: 0).
        ("used_memory_lua", lua.lua_memory.to_string()),
        ("used_memory_vm_eval", lua.lua_memory.to_string()),
        ("used_memory_lua_human", human_bytes(lua.lua_memory as u64)),
        ("used_memory_scripts_eval", lua.scripts_bytes.to_string()),
        ("number_of_cached_scripts", lua.cached_scripts.to_string()),
        ("number_of_functions", lua.functions.to_string()),
        ("number_of_libraries", lua.libraries.to_string()),
        ("used_memory_vm_functions", "0".into()),
        ("used_memory_vm_total", lua.lua_memory.to_string()),
        (
            "used_memory_vm_total_human",
            human_bytes(lua.lua_memory as u64),
        ),
        ("used_memory_functions", "0".into()),
        ("used_memory_scripts", lua.scripts_bytes.to_string()),
        (
            "used_memory_scripts_human",
            human_bytes(lua.scripts_bytes as u64),
        ),
        ("maxmemory", limits.maxmemory.to_string()),
        ("maxmemory_human", human_bytes(limits.maxmemory)),
        ("maxmemory_policy", limits.policy.name().into()),
        ("allocator_frag_ratio", format!("{:.2}", m.allocator_frag())),
        ("allocator_frag_bytes", m.allocator_frag_bytes().to_string()),
        ("allocator_rss_ratio", format!("{:.2}", m.allocator_rss())),
        ("allocator_rss_bytes", m.allocator_rss_bytes().to_string()),
        ("rss_overhead_ratio", format!("{:.2}", m.rss_extra())),
        ("rss_overhead_bytes", m.rss_extra_bytes().to_string()),
        (
            "mem_fragmentation_ratio",
            format!("{:.2}", ratio(rss, used)),
        ),
        (
            "mem_fragmentation_bytes",
            (rss as i64 - used as i64).to_string(),
        ),
        ("mem_not_counted_for_evict", "0".into()),
        ("mem_replication_backlog", "0".into()),
        ("mem_total_replication_buffers", "0".into()),
        ("mem_clients_slaves", "0".into()),
        ("mem_clients_normal", m.clients_normal.to_string()),
        ("mem_cluster_links", "0".into()),
        ("mem_aof_buffer", "0".into()),
        ("mem_allocator", crate::memory::allocator_name().into()),
        ("active_defrag_running", "0".into()),
        (
            "lazyfree_pending_objects",
            ctx.store().lazyfree_stats().pending_objects().to_string(),
        ),
        (
            "lazyfreed_objects",
            ctx.store().lazyfree_stats().freed_objects().to_string(),
        ),
    ]))
}

/// Physical memory of the machine (`total_system_memory`), from
/// /proc/meminfo; 0 where unavailable.
fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn persistence_section(ctx: &mut Ctx) -> Result<String> {
    // Inside EXEC the shards are held already; outside, read without
    // capturing shards a BGSAVE has not reached yet.
    let changes = if ctx.locks.in_transaction() {
        let mut changes = 0;
        ctx.locks.each_shard(|shard| {
            for db in 0..shard.databases() {
                changes += shard.db_ref(db).changes();
            }
            Ok(())
        })?;
        changes
    } else {
        crate::persistence::store_changes(ctx.store())
    };
    let p = ctx.shared.persistence.info();
    let saving = p.keys_total > 0 || p.bgsave_in_progress;
    let percent = if p.keys_total > 0 {
        p.keys_processed as f64 * 100.0 / p.keys_total as f64
    } else {
        0.0
    };
    // The copy-on-write figures are the snapshot's queued chunks (see
    // `crate::persistence`): what Larder holds in memory for it.
    let mut section = fields(&[
        ("loading", u8::from(p.loading.is_some()).to_string()),
        ("async_loading", "0".into()),
        (
            "current_cow_peak",
            if saving { p.cow_peak } else { 0 }.to_string(),
        ),
        (
            "current_cow_size",
            if saving { p.cow_now } else { 0 }.to_string(),
        ),
        ("current_cow_size_age", "0".into()),
        ("current_fork_perc", format!("{percent:.2}")),
        ("current_save_keys_processed", p.keys_processed.to_string()),
        ("current_save_keys_total", p.keys_total.to_string()),
        (
            "rdb_changes_since_last_save",
            changes.saturating_sub(p.changes_at_last_save).to_string(),
        ),
        (
            "rdb_bgsave_in_progress",
            u8::from(p.bgsave_in_progress).to_string(),
        ),
        ("rdb_last_save_time", p.lastsave.to_string()),
        (
            "rdb_last_bgsave_status",
            if p.last_bgsave_ok { "ok" } else { "err" }.into(),
        ),
        (
            "rdb_last_bgsave_time_sec",
            p.last_bgsave_time_sec.to_string(),
        ),
        (
            "rdb_current_bgsave_time_sec",
            p.current_bgsave_time_sec.to_string(),
        ),
        ("rdb_saves", p.saves.to_string()),
        (
            "rdb_last_cow_size",
            if saving { 0 } else { p.cow_peak }.to_string(),
        ),
        (
            "rdb_last_load_keys_expired",
            p.last_load_keys_expired.to_string(),
        ),
        (
            "rdb_last_load_keys_loaded",
            p.last_load_keys_loaded.to_string(),
        ),
        ("aof_enabled", "0".into()),
        ("aof_rewrite_in_progress", "0".into()),
        ("aof_rewrite_scheduled", "0".into()),
        ("aof_last_rewrite_time_sec", "-1".into()),
        ("aof_current_rewrite_time_sec", "-1".into()),
        ("aof_last_bgrewrite_status", "ok".into()),
        ("aof_rewrites", "0".into()),
        ("aof_rewrites_consecutive_failures", "0".into()),
        ("aof_last_write_status", "ok".into()),
        ("aof_last_cow_size", "0".into()),
        ("module_fork_in_progress", "0".into()),
        ("module_fork_last_cow_size", "0".into()),
    ]);
    if let Some(load) = p.loading {
        section.push_str(&fields(&[
            ("loading_start_time", load.start_time.to_string()),
            ("loading_total_bytes", load.total_bytes.to_string()),
            ("loading_rdb_used_mem", load.rdb_used_mem.to_string()),
            ("loading_loaded_bytes", load.loaded_bytes.to_string()),
            ("loading_loaded_perc", format!("{:.2}", load.loaded_perc)),
            ("loading_eta_seconds", load.eta_seconds.to_string()),
        ]));
    }
    Ok(section)
}

fn stats_section(ctx: &Ctx) -> String {
    let stats = &ctx.shared.stats;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
    let pubsub = &ctx.shared.pubsub;
    let (tracking_keys, tracking_items, tracking_prefixes) = pubsub.tracking.totals();
    let rate = |metric| stats.instantaneous.rate(metric);
    let kbps = |metric| format!("{:.2}", rate(metric) / 1024.0);
    use crate::pubsub::ChannelKind;
    fields(&[
        (
            "total_connections_received",
            get(&stats.connections_received),
        ),
        (
            "total_commands_processed",
            stats.commands_processed.load().to_string(),
        ),
        (
            "instantaneous_ops_per_sec",
            (rate(Metric::Commands) as u64).to_string(),
        ),
        (
            "total_net_input_bytes",
            stats.net_input_bytes.load().to_string(),
        ),
        (
            "total_net_output_bytes",
            stats.net_output_bytes.load().to_string(),
        ),
        ("total_net_repl_input_bytes", "0".into()),
        ("total_net_repl_output_bytes", "0".into()),
        ("instantaneous_input_kbps", kbps(Metric::NetInput)),
        ("instantaneous_output_kbps", kbps(Metric::NetOutput)),
        ("instantaneous_input_repl_kbps", "0.00".into()),
        ("instantaneous_output_repl_kbps", "0.00".into()),
        ("rejected_connections", get(&stats.rejected_connections)),
        ("sync_full", "0".into()),
        ("sync_partial_ok", "0".into()),
        ("sync_partial_err", "0".into()),
        ("expired_subkeys", get(&stats.expired_subkeys)),
        (
            "expired_keys",
            (stats.expired_keys.load(Ordering::Relaxed) + ctx.store().expired_by_eviction())
                .to_string(),
        ),
        // Larder's active expiry pops due keys from a time-ordered index
        // instead of sampling: no stale keys are estimated, and a cycle
        // never stops at a time cap.
        ("expired_stale_perc", "0.00".into()),
        ("expired_time_cap_reached_count", "0".into()),
        (
            "expire_cycle_cpu_milliseconds",
            (stats.expire_cycle_us.load(Ordering::Relaxed) / 1000).to_string(),
        ),
        ("evicted_keys", ctx.store().evicted_keys().to_string()),
        (
            "evicted_clients",
            ctx.shared.clients.memory().evicted().to_string(),
        ),
        (
            "evicted_scripts",
            ctx.shared.scripting.stats().evicted_scripts.to_string(),
        ),
        ("total_eviction_exceeded_time", "0".into()),
        ("current_eviction_exceeded_time", "0".into()),
        ("keyspace_hits", stats.keyspace_hits.load().to_string()),
        ("keyspace_misses", stats.keyspace_misses.load().to_string()),
        (
            "pubsub_channels",
            pubsub.channel_count(ChannelKind::Classic).to_string(),
        ),
        ("pubsub_patterns", pubsub.pattern_count().to_string()),
        (
            "pubsubshard_channels",
            pubsub.channel_count(ChannelKind::Shard).to_string(),
        ),
        ("latest_fork_usec", "0".into()),
        ("total_forks", "0".into()),
        ("migrate_cached_sockets", "0".into()),
        ("slave_expires_tracked_keys", "0".into()),
        ("active_defrag_hits", "0".into()),
        ("active_defrag_misses", "0".into()),
        ("active_defrag_key_hits", "0".into()),
        ("active_defrag_key_misses", "0".into()),
        ("total_active_defrag_time", "0".into()),
        ("current_active_defrag_time", "0".into()),
        ("tracking_total_keys", tracking_keys.to_string()),
        ("tracking_total_items", tracking_items.to_string()),
        ("tracking_total_prefixes", tracking_prefixes.to_string()),
        ("unexpected_error_replies", "0".into()),
        ("total_error_replies", get(&stats.error_replies)),
        ("dump_payload_sanitizations", "0".into()),
        (
            "total_reads_processed",
            stats.reads_processed.load().to_string(),
        ),
        (
            "total_writes_processed",
            stats.writes_processed.load().to_string(),
        ),
        // Larder's connections run on every worker thread; there are no
        // separate I/O threads.
        ("io_threaded_reads_processed", "0".into()),
        ("io_threaded_writes_processed", "0".into()),
        (
            "client_query_buffer_limit_disconnections",
            get(&stats.query_buffer_limit_disconnections),
        ),
        (
            "client_output_buffer_limit_disconnections",
            pubsub.limit_disconnections().to_string(),
        ),
        ("reply_buffer_shrinks", "0".into()),
        ("reply_buffer_expands", "0".into()),
        ("acl_access_denied_auth", get(&stats.auth_failures)),
        ("acl_access_denied_cmd", get(&stats.acl_denied[0])),
        ("acl_access_denied_key", get(&stats.acl_denied[1])),
        ("acl_access_denied_channel", get(&stats.acl_denied[2])),
    ])
}

fn replication_section(ctx: &Ctx) -> String {
    fields(&[
        ("role", "master".into()),
        ("connected_slaves", "0".into()),
        ("master_failover_state", "no-failover".into()),
        ("master_replid", ctx.shared.run_id.clone()),
        ("master_replid2", "0".repeat(40)),
        ("master_repl_offset", "0".into()),
        ("second_repl_offset", "-1".into()),
        ("repl_backlog_active", "0".into()),
        ("repl_backlog_size", "1048576".into()),
        ("repl_backlog_first_byte_offset", "0".into()),
        ("repl_backlog_histlen", "0".into()),
    ])
}

/// CPU time from getrusage: the process, its children, and the main
/// thread (Redis's `_main_thread` fields; Larder's commands run on the
/// runtime's worker threads, which `larder` lists).
fn cpu_section() -> String {
    let (self_sys, self_user) = rusage(libc::RUSAGE_SELF);
    let (child_sys, child_user) = rusage(libc::RUSAGE_CHILDREN);
    let (main_sys, main_user) = main_thread_cpu();
    let seconds = |s: f64| format!("{s:.6}");
    fields(&[
        ("used_cpu_sys", seconds(self_sys)),
        ("used_cpu_user", seconds(self_user)),
        ("used_cpu_sys_children", seconds(child_sys)),
        ("used_cpu_user_children", seconds(child_user)),
        ("used_cpu_sys_main_thread", seconds(main_sys)),
        ("used_cpu_user_main_thread", seconds(main_user)),
    ])
}

/// (system, user) CPU seconds of `who`.
fn rusage(who: libc::c_int) -> (f64, f64) {
    // SAFETY: rusage is plain data that getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (seconds(usage.ru_stime), seconds(usage.ru_utime))
}

/// (system, user) CPU seconds of the process's first thread, from
/// /proc (getrusage can only measure the calling thread).
fn main_thread_cpu() -> (f64, f64) {
    let pid = std::process::id();
    thread_cpu(&format!("/proc/self/task/{pid}/stat")).unwrap_or((0.0, 0.0))
}

/// (system, user) CPU seconds from a /proc `stat` file.
fn thread_cpu(path: &str) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    // After the name: state is field 3; utime and stime are 14 and 15.
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((system / ticks, user / ticks))
}

fn keyspace_section(ctx: &mut Ctx) -> Result<String> {
    let databases = ctx.store().databases();
    let now = ctx.now_ms;
    #[derive(Default, Clone, Copy)]
    struct Counts {
        keys: usize,
        volatile: usize,
        ttl_sum: u128,
        field_volatile: usize,
    }
    let mut counts = vec![Counts::default(); databases];
    ctx.locks.each_shard(|shard| {
        for (db, counts) in counts.iter_mut().enumerate() {
            // db_ref: reading must not create the parts of unused databases.
            let part = shard.db_ref(db);
            counts.keys += part.len();
            counts.volatile += part.volatile_len();
            counts.ttl_sum += u128::from(part.average_ttl_ms(now)) * part.volatile_len() as u128;
            counts.field_volatile += part.field_volatile_len();
        }
        Ok(())
    })?;
    Ok(counts
        .iter()
        .enumerate()
        .filter(|(_, c)| c.keys > 0)
        .map(|(db, c)| {
            let avg_ttl = if c.volatile == 0 {
                0
            } else {
                c.ttl_sum / c.volatile as u128
            };
            format!(
                "db{db}:keys={},expires={},avg_ttl={avg_ttl},subexpiry={}\r\n",
                c.keys, c.volatile, c.field_volatile
            )
        })
        .collect())
}

/// Larder's own figures: the store's layout and lock contention,
/// evictions by the policy that chose them (one `evicted_keys_<policy>`
/// line for each policy that evicted, and for the current one), the hit
/// ratio.
fn larder_section(ctx: &Ctx) -> String {
    let store = ctx.store();
    let stats = &ctx.shared.stats;
    let (hits, misses) = (stats.keyspace_hits.load(), stats.keyspace_misses.load());
    let lookups = hits + misses;
    let hit_ratio = if lookups == 0 {
        0.0
    } else {
        hits as f64 / lookups as f64
    };
    let current = ctx.shared.config.read().maxmemory_policy;
    let mut text = fields(&[
        ("larder_version", env!("CARGO_PKG_VERSION").into()),
        ("shards", store.shard_count().to_string()),
        ("shard_lock_waits", store.shard_lock_waits().to_string()),
        (
            "worker_threads",
            tokio::runtime::Handle::try_current()
                .map_or(0, |runtime| runtime.metrics().num_workers())
                .to_string(),
        ),
        ("maxmemory_policy", current.name().into()),
        ("evicted_keys", store.evicted_keys().to_string()),
        // Keys eviction found already expired and reclaimed as expired.
        (
            "expired_by_eviction",
            store.expired_by_eviction().to_string(),
        ),
        ("keyspace_hit_ratio", format!("{hit_ratio:.4}")),
    ]);
    for (policy, evicted) in store.evicted_keys_by_policy() {
        if evicted > 0 || policy == current {
            text.push_str(&format!("evicted_keys_{}:{evicted}\r\n", policy.name()));
        }
    }
    text
}

/// Write-behind to PostgreSQL (Larder-only).
fn writebehind_section(ctx: &Ctx) -> String {
    match &ctx.shared.writebehind {
        Some(writebehind) => fields(&writebehind.status()),
        None => fields(&[("writebehind_enabled", "0".to_string())]),
    }
}
