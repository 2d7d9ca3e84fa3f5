//! OBJECT and MEMORY: what a key's value looks like inside the server.

use super::connection::container;
use super::flags::*;
use super::parse::{int_arg, is_keyword};
use super::{CommandSpec, Ctx, KeySpec, NO_KEYS};
use crate::error::{Error, Result};
use crate::store::{Entry, ValueRef};

const KEY_AT_2: KeySpec = KeySpec::Range {
    first: 2,
    last: 2,
    step: 1,
};
const KEYSPACE: &[&str] = &["keyspace"];
const MEMORY_TIPS: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_shards",
    "response_policy:special",
];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("object", -2, 0, NO_KEYS, container)
        .doc(
            "generic",
            "2.2.3",
            "A container for object introspection commands.",
            "Depends on subcommand.",
        )
        .subcommands(OBJECT_SUBCOMMANDS),
    CommandSpec::new("memory", -2, 0, NO_KEYS, container)
        .doc(
            "server",
            "4.0.0",
            "A container for memory diagnostics commands.",
            "Depends on subcommand.",
        )
        .subcommands(MEMORY_SUBCOMMANDS),
];

static OBJECT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("object|encoding", 3, READONLY, KEY_AT_2, object_encoding)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "2.2.3",
            "Returns the internal encoding of a Redis object.",
            "O(1)",
        ),
    CommandSpec::new("object|freq", 3, READONLY, KEY_AT_2, object_freq)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "4.0.0",
            "Returns the logarithmic access frequency counter of a Redis object.",
            "O(1)",
        ),
    CommandSpec::new("object|idletime", 3, READONLY, KEY_AT_2, object_idletime)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "2.2.3",
            "Returns the time since the last access to a Redis object.",
            "O(1)",
        ),
    CommandSpec::new("object|refcount", 3, READONLY, KEY_AT_2, object_refcount)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "2.2.3",
            "Returns the reference count of a value of a key.",
            "O(1)",
        ),
    CommandSpec::new("object|help", 2, LOADING | STALE, NO_KEYS, object_help)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "6.2.0",
            "Returns helpful text about the different subcommands.",
            "O(1)",
        ),
];

static MEMORY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("memory|usage", -3, READONLY, KEY_AT_2, memory_usage).doc(
        "server",
        "4.0.0",
        "Estimates the memory usage of a key.",
        "O(N) where N is the number of samples.",
    ),
    CommandSpec::new("memory|stats", 2, WHOLE_KEYSPACE, NO_KEYS, memory_stats)
        .tips(MEMORY_TIPS)
        .doc(
            "server",
            "4.0.0",
            "Returns details about memory usage.",
            "O(1)",
        ),
    CommandSpec::new("memory|doctor", 2, 0, NO_KEYS, memory_doctor)
        .tips(MEMORY_TIPS)
        .doc(
            "server",
            "4.0.0",
            "Outputs a memory problems report.",
            "O(1)",
        ),
    CommandSpec::new("memory|malloc-stats", 2, 0, NO_KEYS, memory_malloc_stats)
        .tips(MEMORY_TIPS)
        .doc(
            "server",
            "4.0.0",
            "Returns the allocator statistics.",
            "Depends on how much memory is allocated, could be slow",
        ),
    CommandSpec::new("memory|purge", 2, 0, NO_KEYS, memory_purge)
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
        .doc(
            "server",
            "4.0.0",
            "Asks the allocator to release memory.",
            "Depends on how much memory is allocated, could be slow",
        ),
    CommandSpec::new("memory|help", 2, LOADING | STALE, NO_KEYS, memory_help).doc(
        "server",
        "4.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
    ),
];

/// Reads what `f` computes from the live entry of `argv[2]` (under its
/// shard lock, without cloning the value), or replies null if there is none.
/// `f`'s result is replied by `reply` after the lock is released.
fn with_entry<R>(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    f: impl FnOnce(&Entry) -> R,
    reply: impl FnOnce(&mut Ctx, R) -> Result<()>,
) -> Result<()> {
    let key = argv[2];
    let db = ctx.db();
    let now = ctx.now_ms;
    let found = {
        let mut locked = ctx.locks.key(key)?;
        locked.db(db, key)?.peek(key, now).map(f)
    };
    super::reads::looked_up_quietly(ctx.shared, found.is_some());
    match found {
        Some(result) => reply(ctx, result),
        None => {
            ctx.out.null();
            Ok(())
        }
    }
}

fn object_encoding(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    with_entry(
        ctx,
        argv,
        |entry| entry.encoding(),
        |ctx, encoding| {
            ctx.out.bulk(encoding.as_bytes());
            Ok(())
        },
    )
}

fn object_refcount(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    with_entry(
        ctx,
        argv,
        // Redis shares the integers 0..9999 and reports them with the
        // "shared" reference count; every other value has one owner (a raw
        // string too, numeric as it may be).
        |entry| match entry.value() {
            ValueRef::Str(s) if !entry.is_raw_string() => {
                super::parse::strict_i64(s).is_some_and(|n| (0..10_000).contains(&n))
            }
            _ => false,
        },
        |ctx, shared| {
            ctx.out.int(if shared { i32::MAX as i64 } else { 1 });
            Ok(())
        },
    )
}

/// Whether an LFU `maxmemory-policy` is selected.
fn lfu_policy(ctx: &Ctx) -> bool {
    ctx.shared.config.read().maxmemory_policy.is_lfu()
}

fn object_freq(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let now = ctx.now_ms;
    let lfu = lfu_policy(ctx);
    with_entry(
        ctx,
        argv,
        |entry| entry.frequency(now),
        |ctx, frequency| {
            // Larder keeps the counter under every policy, but reports it,
            // as Redis does, only under an LFU one.
            if !lfu {
                return Err(Error::err(
                    "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when \
                     switching between policies at runtime LRU and LFU data will take some time to adjust.",
                ));
            }
            ctx.out.int(frequency as i64);
            Ok(())
        },
    )
}

fn object_idletime(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let now = ctx.now_ms;
    let lfu = lfu_policy(ctx);
    with_entry(
        ctx,
        argv,
        |entry| entry.idle_secs(now),
        |ctx, idle| {
            if lfu {
                return Err(Error::err(
                    "An LFU maxmemory policy is selected, idle time not tracked. Please note that when \
                     switching between policies at runtime LRU and LFU data will take some time to adjust.",
                ));
            }
            ctx.out.int(idle as i64);
            Ok(())
        },
    )
}

fn object_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    super::reply_help(
        ctx,
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    );
    Ok(())
}

/// Bytes a key costs: its entry's allocation (key, metadata and an inline
/// string), the value's own heap if it has one, the map's slot (an 8-byte
/// pointer and a control byte) and, with a TTL, its expiry-index node.
pub fn entry_memory(key_len: usize, entry: &Entry) -> usize {
    let expiry_index = if entry.expires_at().is_some() {
        EXPIRY_SLOT + key_len
    } else {
        0
    };
    entry.heap_size() + MAP_SLOT + expiry_index
}

/// The map's slot for a key: an 8-byte pointer and a control byte.
const MAP_SLOT: usize = 9;
/// A key's cost in its shard's map besides the key and value bytes: its
/// slot and its entry's 8-byte header (access time, LFU counter, layout).
const MAIN_SLOT: usize = MAP_SLOT + 8;
/// A volatile key's cost in the expiry index besides its key bytes.
const EXPIRY_SLOT: usize = 8 + 16;

fn memory_usage(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    match &argv[3..] {
        [] => {}
        [option, count] if is_keyword(option, "SAMPLES") => {
            // Larder sizes collections exactly; the sample count is checked
            // as Redis checks it and otherwise needs no use.
            if int_arg(count)? < 0 {
                return Err(Error::syntax());
            }
        }
        _ => return Err(Error::syntax()),
    }
    let key_len = argv[2].len();
    with_entry(
        ctx,
        argv,
        |entry| entry_memory(key_len, entry),
        |ctx, bytes| {
            ctx.out.int(bytes as i64);
            Ok(())
        },
    )
}

fn memory_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    super::reply_help(
        ctx,
        "MEMORY",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    );
    Ok(())
}

/// The figures of MEMORY STATS and MEMORY DOCTOR: Redis's
/// `getMemoryOverheadData`, from Larder's accounting.
#[derive(Debug, Default)]
pub struct MemoryOverhead {
    pub peak_allocated: u64,
    pub total_allocated: u64,
    pub startup_allocated: u64,
    pub clients_normal: u64,
    /// Per non-empty database: (index, main table overhead, expiry index
    /// overhead).
    pub dbs: Vec<(usize, u64, u64)>,
    pub overhead_total: u64,
    pub keys: u64,
    pub bytes_per_key: u64,
    pub dataset: u64,
    pub dataset_perc: f32,
    pub peak_perc: f32,
    pub allocator_allocated: u64,
    pub allocator_active: u64,
    pub allocator_resident: u64,
    pub rss: u64,
}

impl MemoryOverhead {
    fn ratio(a: u64, b: u64) -> f32 {
        if b == 0 {
            0.0
        } else {
            a as f32 / b as f32
        }
    }
    pub fn allocator_frag(&self) -> f32 {
        Self::ratio(self.allocator_active, self.allocator_allocated)
    }
    pub fn allocator_frag_bytes(&self) -> i64 {
        self.allocator_active as i64 - self.allocator_allocated as i64
    }
    pub fn allocator_rss(&self) -> f32 {
        Self::ratio(self.allocator_resident, self.allocator_active)
    }
    pub fn allocator_rss_bytes(&self) -> i64 {
        self.allocator_resident as i64 - self.allocator_active as i64
    }
    pub fn rss_extra(&self) -> f32 {
        Self::ratio(self.rss, self.allocator_resident)
    }
    pub fn rss_extra_bytes(&self) -> i64 {
        self.rss as i64 - self.allocator_resident as i64
    }
    pub fn total_frag(&self) -> f32 {
        Self::ratio(self.rss, self.total_allocated)
    }
    pub fn total_frag_bytes(&self) -> i64 {
        self.rss as i64 - self.total_allocated as i64
    }
}

/// Larder's estimate of a connection's own memory (its read and write
/// buffers at rest and its session): what `clients.normal` counts per client.
pub const CLIENT_BASE_BYTES: u64 = 16 * 1024 + 1024;

/// Gathers the figures of MEMORY STATS. The per-database overheads are
/// computed from key counts with the per-slot costs MEMORY USAGE uses;
/// the allocator figures come from the allocator hooks when the program
/// registered them (`larder-server` does, for mimalloc), else used memory
/// and RSS stand in.
pub fn memory_overhead(ctx: &mut Ctx) -> Result<MemoryOverhead> {
    let databases = ctx.store().databases();
    let mut keys = vec![0u64; databases];
    let mut volatile = vec![0u64; databases];
    ctx.locks.each_shard(|shard| {
        for db in 0..databases {
            keys[db] += shard.db_ref(db).len() as u64;
            volatile[db] += shard.db_ref(db).volatile_len() as u64;
        }
        Ok(())
    })?;
    let total = crate::memory::used_memory();
    let mut m = MemoryOverhead {
        total_allocated: total,
        peak_allocated: crate::memory::peak_memory().max(total),
        // What startup held may since have been freed (buffers of the
        // start, another thread's unflushed count): the baseline never
        // exceeds what is allocated now.
        startup_allocated: crate::memory::startup_allocated().min(total),
        // The read buffers as they are; the rest of a client estimated.
        clients_normal: ctx.shared.clients.len() as u64 * (CLIENT_BASE_BYTES - 16 * 1024)
            + crate::memory::query_buffer_bytes(),
        rss: crate::memory::rss_bytes(),
        ..MemoryOverhead::default()
    };
    let mut overhead = m.startup_allocated + m.clients_normal;
    for db in 0..databases {
        if keys[db] == 0 {
            continue;
        }
        let main = keys[db] * MAIN_SLOT as u64;
        let expires = volatile[db] * EXPIRY_SLOT as u64;
        overhead += main + expires;
        m.keys += keys[db];
        m.dbs.push((db, main, expires));
    }
    m.overhead_total = overhead;
    m.dataset = total.saturating_sub(overhead);
    m.peak_perc = if m.peak_allocated == 0 {
        0.0
    } else {
        total as f32 * 100.0 / m.peak_allocated as f32
    };
    let net = total.saturating_sub(m.startup_allocated).max(1);
    m.dataset_perc = m.dataset as f32 * 100.0 / net as f32;
    m.bytes_per_key = net.checked_div(m.keys).unwrap_or(0);
    m.allocator_allocated = total;
    match crate::memory::allocator_hooks() {
        Some(hooks) => {
            let committed = (hooks.committed)();
            m.allocator_active = committed.max(total);
            m.allocator_resident = m.allocator_active;
        }
        None => {
            m.allocator_active = total;
            m.allocator_resident = m.rss.max(total);
        }
    }
    Ok(m)
}

fn memory_stats(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let m = memory_overhead(ctx)?;
    let out = &mut ctx.out;
    let int = |out: &mut crate::protocol::ReplyBuf, name: &str, value: i64| {
        out.bulk(name.as_bytes());
        out.int(value);
    };
    // Redis keeps these as floats and replies with their double value.
    let double = |out: &mut crate::protocol::ReplyBuf, name: &str, value: f32| {
        out.bulk(name.as_bytes());
        out.double(value as f64);
    };
    let clamp = |n: u64| n.min(i64::MAX as u64) as i64;
    out.map(27 + m.dbs.len());
    int(out, "peak.allocated", clamp(m.peak_allocated));
    int(out, "total.allocated", clamp(m.total_allocated));
    int(out, "startup.allocated", clamp(m.startup_allocated));
    int(out, "replication.backlog", 0);
    int(out, "clients.slaves", 0);
    int(out, "clients.normal", clamp(m.clients_normal));
    int(out, "cluster.links", 0);
    int(out, "aof.buffer", 0);
    int(out, "lua.caches", 0);
    int(out, "functions.caches", 0);
    for &(db, main, expires) in &m.dbs {
        out.bulk(format!("db.{db}").as_bytes());
        out.map(3);
        int(out, "overhead.hashtable.main", clamp(main));
        int(out, "overhead.hashtable.expires", clamp(expires));
        int(out, "overhead.hashtable.slot-to-keys", 0);
    }
    int(out, "overhead.total", clamp(m.overhead_total));
    int(out, "keys.count", clamp(m.keys));
    int(out, "keys.bytes-per-key", clamp(m.bytes_per_key));
    int(out, "dataset.bytes", clamp(m.dataset));
    double(out, "dataset.percentage", m.dataset_perc);
    double(out, "peak.percentage", m.peak_perc);
    int(out, "allocator.allocated", clamp(m.allocator_allocated));
    int(out, "allocator.active", clamp(m.allocator_active));
    int(out, "allocator.resident", clamp(m.allocator_resident));
    double(out, "allocator-fragmentation.ratio", m.allocator_frag());
    int(
        out,
        "allocator-fragmentation.bytes",
        m.allocator_frag_bytes(),
    );
    double(out, "allocator-rss.ratio", m.allocator_rss());
    int(out, "allocator-rss.bytes", m.allocator_rss_bytes());
    double(out, "rss-overhead.ratio", m.rss_extra());
    int(out, "rss-overhead.bytes", m.rss_extra_bytes());
    double(out, "fragmentation", m.total_frag());
    int(out, "fragmentation.bytes", m.total_frag_bytes());
    Ok(())
}

/// Redis's `getMemoryDoctorReport`, on Larder's figures.
pub fn memory_doctor_report(m: &MemoryOverhead, clients: u64, cached_scripts: u64) -> String {
    const MB10: i64 = 10 << 20;
    let mut issues: Vec<&str> = Vec::new();
    let empty = m.total_allocated < 5 * 1024 * 1024;
    if !empty {
        if m.peak_allocated as f32 / m.total_allocated as f32 > 1.5 {
            issues.push(" * Peak memory: In the past this instance used more than 150% the memory that is currently using. The allocator is normally not able to release memory after a peak, so you can expect to see a big fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to shutdown and restart the instance.\n\n");
        }
        if m.total_frag() > 1.4 && m.total_frag_bytes() > MB10 {
            issues.push(HIGH_FRAG);
        }
        if m.allocator_frag() > 1.1 && m.allocator_frag_bytes() > MB10 {
            issues.push(" * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1. This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n\n");
        }
        if m.allocator_rss() > 1.1 && m.allocator_rss_bytes() > MB10 {
            issues.push(" * High allocator RSS overhead: This instance has an RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the allocator is much larger than the sum what the allocator actually holds). This problem is usually due to a large peak memory (check if there is a peak memory entry above in the report), you can try the MEMORY PURGE command to reclaim it.\n\n");
        }
        if m.rss_extra() > 1.1 && m.rss_extra_bytes() > MB10 {
            issues.push(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 (this means that the Resident Set Size of the Redis process is much larger than the RSS the allocator holds). This problem may be due to Lua scripts or Modules.\n\n");
        }
        if clients > 0 && m.clients_normal / clients > 200 * 1024 {
            issues.push(" * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending commands with large replies or very large sequences of commands in the same pipeline. Please use the CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to understand better why certain clients are using a big amount of memory.\n\n");
        }
        if cached_scripts > 1000 {
            issues.push(" * Many scripts: There seem to be many cached scripts in this instance (more than 1000). This may be because scripts are generated and `EVAL`ed, instead of being parameterized (with KEYS and ARGV), `SCRIPT LOAD`ed and `EVALSHA`ed. Unless `SCRIPT FLUSH` is called periodically, the scripts' caches may end up consuming most of your memory.\n\n");
        }
    }
    if empty {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".to_string()
    } else if issues.is_empty() {
        "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".to_string()
    } else {
        let mut text = String::from(
            "Sam, I detected a few issues in this Redis instance memory implants:\n\n",
        );
        for issue in issues {
            text.push_str(&issue.replace("{allocator}", crate::memory::allocator_name()));
        }
        text.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
        text
    }
}

const HIGH_FRAG: &str = " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"{allocator}\".\n\n";

fn memory_doctor(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let m = memory_overhead(ctx)?;
    let cached_scripts = ctx.shared.scripting.stats().cached_scripts as u64;
    let report = memory_doctor_report(&m, ctx.shared.clients.len() as u64, cached_scripts);
    ctx.out.verbatim("txt", report.as_bytes());
    Ok(())
}

fn memory_malloc_stats(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let text = match crate::memory::allocator_hooks() {
        Some(hooks) => (hooks.stats)(),
        None => "Stats not supported for the current allocator".to_string(),
    };
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}

fn memory_purge(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    if let Some(hooks) = crate::memory::allocator_hooks() {
        (hooks.purge)();
    }
    ctx.out.ok();
    Ok(())
}
