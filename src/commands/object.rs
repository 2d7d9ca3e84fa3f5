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
        |entry| entry.value().encoding(),
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
        // "shared" reference count; every other value has one owner.
        |entry| match entry.value() {
            ValueRef::Str(s) => {
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
    const MAP_SLOT: usize = 9;
    let expiry_index = if entry.expires_at().is_some() {
        8 + 16 + key_len
    } else {
        0
    };
    entry.heap_size() + MAP_SLOT + expiry_index
}

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
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    );
    Ok(())
}
