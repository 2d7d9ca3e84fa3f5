//! INFO: the server's figures, section by section, as Redis prints them.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::connection::REDIS_VERSION;
use super::flags::*;
use super::{CommandSpec, Ctx, NO_KEYS};
use crate::error::Result;

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

// ---------------------------------------------------------------- INFO

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "keyspace",
];

/// Larder's own sections: shown when asked for by name (or with
/// `everything`), so that plain INFO has only Redis's sections.
const LARDER_SECTIONS: &[&str] = &["writebehind", "larder"];

fn info(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut wanted: Vec<&str> = Vec::new();
    if argv.len() == 1 {
        wanted.extend(DEFAULT_SECTIONS);
    }
    for arg in &argv[1..] {
        let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match name.as_str() {
            "all" | "default" => wanted.extend(DEFAULT_SECTIONS),
            "everything" => {
                wanted.extend(DEFAULT_SECTIONS);
                wanted.extend(LARDER_SECTIONS);
            }
            other => {
                if let Some(section) = DEFAULT_SECTIONS
                    .iter()
                    .chain(LARDER_SECTIONS)
                    .find(|s| **s == other)
                {
                    wanted.push(section);
                }
            }
        }
    }
    let mut text = String::new();
    for section in DEFAULT_SECTIONS
        .iter()
        .chain(LARDER_SECTIONS)
        .filter(|s| wanted.contains(s))
    {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let body = match *section {
            "server" => server_section(ctx),
            "clients" => clients_section(ctx),
            "memory" => memory_section(ctx)?,
            "persistence" => persistence_section(),
            "stats" => stats_section(ctx),
            "replication" => replication_section(),
            "cpu" => cpu_section(),
            "writebehind" => writebehind_section(ctx),
            "larder" => larder_section(ctx),
            _ => keyspace_section(ctx)?,
        };
        let title = match *section {
            "cpu" => "CPU".to_string(),
            _ => format!("{}{}", section[..1].to_ascii_uppercase(), &section[1..]),
        };
        text.push_str(&format!("# {title}\r\n{body}"));
    }
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}

/// Write-behind to PostgreSQL (Larder-only).
fn writebehind_section(ctx: &Ctx) -> String {
    match &ctx.shared.writebehind {
        Some(writebehind) => fields(&writebehind.status()),
        None => fields(&[("writebehind_enabled", "0".to_string())]),
    }
}

/// Larder's own store figures: shard-lock contention and evictions by
/// the policy that chose them (one `evicted_keys_<policy>` line for each
/// policy that evicted, and for the current one).
fn larder_section(ctx: &Ctx) -> String {
    let store = ctx.store();
    let current = ctx.shared.config.read().maxmemory_policy;
    let mut text = fields(&[
        ("shards", store.shard_count().to_string()),
        ("shard_lock_waits", store.shard_lock_waits().to_string()),
    ]);
    for (policy, evicted) in store.evicted_keys_by_policy() {
        if evicted > 0 || policy == current {
            text.push_str(&format!("evicted_keys_{}:{evicted}\r\n", policy.name()));
        }
    }
    text
}

fn fields(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}:{v}\r\n")).collect()
}

fn server_section(ctx: &Ctx) -> String {
    let uptime = ctx.shared.started.elapsed().as_secs();
    let port = ctx.shared.bound.lock().first().map_or(0, |a| a.port());
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let hz = ctx.shared.config.read().hz;
    fields(&[
        ("redis_version", REDIS_VERSION.into()),
        ("redis_git_sha1", "00000000".into()),
        ("redis_git_dirty", "0".into()),
        ("redis_build_id", "0".into()),
        ("redis_mode", "standalone".into()),
        ("larder_version", env!("CARGO_PKG_VERSION").into()),
        (
            "os",
            format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        ),
        ("arch_bits", (usize::BITS).to_string()),
        ("multiplexing_api", "epoll".into()),
        ("process_id", std::process::id().to_string()),
        ("run_id", ctx.shared.run_id.clone()),
        ("tcp_port", port.to_string()),
        ("server_time_usec", now_us.to_string()),
        ("uptime_in_seconds", uptime.to_string()),
        ("uptime_in_days", (uptime / 86400).to_string()),
        ("hz", hz.to_string()),
        ("configured_hz", hz.to_string()),
        (
            "executable",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
    ])
}

fn clients_section(ctx: &Ctx) -> String {
    let maxclients = ctx.shared.config.read().maxclients;
    fields(&[
        ("connected_clients", ctx.shared.clients.len().to_string()),
        ("cluster_connections", "0".into()),
        ("maxclients", maxclients.to_string()),
        (
            "blocked_clients",
            ctx.shared.blocking.blocked_clients().to_string(),
        ),
        (
            "pubsub_clients",
            ctx.shared
                .clients
                .list()
                .iter()
                .filter(|client| client.meta.lock().subscriptions.iter().any(|&n| n > 0))
                .count()
                .to_string(),
        ),
        (
            "tracking_clients",
            ctx.shared.pubsub.tracking.client_count().to_string(),
        ),
        (
            "clients_in_timeout_table",
            ctx.shared.blocking.clients_with_timeout().to_string(),
        ),
    ])
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

fn persistence_section() -> String {
    fields(&[
        ("loading", "0".into()),
        ("async_loading", "0".into()),
        ("rdb_bgsave_in_progress", "0".into()),
        ("aof_enabled", "0".into()),
        ("aof_rewrite_in_progress", "0".into()),
    ])
}

fn stats_section(ctx: &Ctx) -> String {
    let stats = &ctx.shared.stats;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
    let pubsub = &ctx.shared.pubsub;
    let (tracking_keys, tracking_items, tracking_prefixes) = pubsub.tracking.totals();
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
            "total_net_input_bytes",
            stats.net_input_bytes.load().to_string(),
        ),
        (
            "total_net_output_bytes",
            stats.net_output_bytes.load().to_string(),
        ),
        ("rejected_connections", get(&stats.rejected_connections)),
        (
            "expired_keys",
            (stats.expired_keys.load(Ordering::Relaxed) + ctx.store().expired_by_eviction())
                .to_string(),
        ),
        ("expired_subkeys", get(&stats.expired_subkeys)),
        ("evicted_keys", ctx.store().evicted_keys().to_string()),
        ("total_error_replies", get(&stats.error_replies)),
        (
            "pubsub_channels",
            pubsub.channel_count(ChannelKind::Classic).to_string(),
        ),
        ("pubsub_patterns", pubsub.pattern_count().to_string()),
        (
            "pubsubshard_channels",
            pubsub.channel_count(ChannelKind::Shard).to_string(),
        ),
        ("tracking_total_keys", tracking_keys.to_string()),
        ("tracking_total_items", tracking_items.to_string()),
        ("tracking_total_prefixes", tracking_prefixes.to_string()),
        (
            "client_output_buffer_limit_disconnections",
            pubsub.limit_disconnections().to_string(),
        ),
    ])
}

fn replication_section() -> String {
    fields(&[("role", "master".into()), ("connected_slaves", "0".into())])
}

fn cpu_section() -> String {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks.
    let ticks: Vec<f64> = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_string()))
        .map(|rest| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let seconds = |i: usize| format!("{:.6}", ticks.get(i).copied().unwrap_or(0.0) / 100.0);
    fields(&[("used_cpu_sys", seconds(1)), ("used_cpu_user", seconds(0))])
}

fn keyspace_section(ctx: &mut Ctx) -> Result<String> {
    let databases = ctx.store().databases();
    let mut keys = vec![0usize; databases];
    let mut volatile = vec![0usize; databases];
    ctx.locks.each_shard(|shard| {
        for db in 0..databases {
            // db_ref: reading must not create the parts of unused databases.
            keys[db] += shard.db_ref(db).len();
            volatile[db] += shard.db_ref(db).volatile_len();
        }
        Ok(())
    })?;
    Ok((0..databases)
        .filter(|&db| keys[db] > 0)
        .map(|db| {
            format!(
                "db{db}:keys={},expires={},avg_ttl=0\r\n",
                keys[db], volatile[db]
            )
        })
        .collect())
}
