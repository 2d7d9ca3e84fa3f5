//! Keyspace commands: DEL, UNLINK, EXISTS, TYPE, TOUCH, the EXPIRE and TTL
//! families, PERSIST, RENAME, RENAMENX, COPY, MOVE, KEYS, SCAN, RANDOMKEY,
//! SWAPDB, FLUSHDB and FLUSHALL.
//!
//! KEYS, SCAN and RANDOMKEY walk the keyspace one shard lock at a time
//! (`ctx.locks.each_shard`/`ctx.locks.shard`), so they never stall the
//! server behind one long lock hold. SWAPDB, FLUSHDB and FLUSHALL lock every
//! shard at once, since no client may see them half done; the work under
//! those locks is O(shards): maps are swapped or detached, and freed after
//! the locks are released (on the lazyfree thread for ASYNC). DEL and
//! UNLINK free big values after releasing their locks too (see
//! `store::lazyfree`). Inside MULTI/EXEC all of them run under the locks
//! the transaction holds.

use rand::Rng;

use super::flags::*;
use super::parse::{
    glob_match, int_arg, is_keyword, parse_cursor, parse_scan_options, strict_i64, ScanExtra,
    ScanOptions,
};
use super::reads;
use super::{CommandSpec, Ctx, KeySpec, ALL_KEYS, FIRST_KEY, NO_KEYS};
use crate::error::{Error, Result};
use crate::pubsub::events;
use crate::store::{lazyfree, Key};

const KEYSPACE: &[&str] = &["keyspace"];
const KEYSPACE_DANGEROUS: &[&str] = &["keyspace", "dangerous"];

/// RENAME, RENAMENX, COPY: the source and the destination.
const TWO_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: 2,
    step: 1,
};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("del", -2, WRITE, ALL_KEYS, del)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.0.0",
            "Deletes one or more keys.",
            "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).",
        ),
    CommandSpec::new("unlink", -2, WRITE | FAST, ALL_KEYS, unlink)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "4.0.0",
            "Asynchronously deletes one or more keys.",
            "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.",
        ),
    CommandSpec::new("exists", -2, READONLY | FAST, ALL_KEYS, exists)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.0.0",
            "Determines whether one or more keys exist.",
            "O(N) where N is the number of keys to check.",
        ),
    CommandSpec::new("touch", -2, READONLY | FAST, ALL_KEYS, exists)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "3.2.1",
            "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
            "O(N) where N is the number of keys that will be touched.",
        ),
    CommandSpec::new("type", 2, READONLY | FAST, FIRST_KEY, type_command)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.0.0",
            "Determines the type of value stored at a key.",
            "O(1)",
        ),
    CommandSpec::new("expire", -3, WRITE | FAST, FIRST_KEY, expire)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.0.0",
            "Sets the expiration time of a key in seconds.",
            "O(1)",
        ),
    CommandSpec::new("pexpire", -3, WRITE | FAST, FIRST_KEY, pexpire)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "2.6.0",
            "Sets the expiration time of a key in milliseconds.",
            "O(1)",
        ),
    CommandSpec::new("expireat", -3, WRITE | FAST, FIRST_KEY, expireat)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.2.0",
            "Sets the expiration time of a key to a Unix timestamp.",
            "O(1)",
        ),
    CommandSpec::new("pexpireat", -3, WRITE | FAST, FIRST_KEY, pexpireat)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "2.6.0",
            "Sets the expiration time of a key to a Unix milliseconds timestamp.",
            "O(1)",
        ),
    CommandSpec::new("ttl", 2, READONLY | FAST, FIRST_KEY, ttl)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.0.0",
            "Returns the expiration time in seconds of a key.",
            "O(1)",
        ),
    CommandSpec::new("pttl", 2, READONLY | FAST, FIRST_KEY, pttl)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "2.6.0",
            "Returns the expiration time in milliseconds of a key.",
            "O(1)",
        ),
    CommandSpec::new("expiretime", 2, READONLY | FAST, FIRST_KEY, expiretime)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "7.0.0",
            "Returns the expiration time of a key as a Unix timestamp.",
            "O(1)",
        ),
    CommandSpec::new("pexpiretime", 2, READONLY | FAST, FIRST_KEY, pexpiretime)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "7.0.0",
            "Returns the expiration time of a key as a Unix milliseconds timestamp.",
            "O(1)",
        ),
    CommandSpec::new("persist", 2, WRITE | FAST, FIRST_KEY, persist)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "2.2.0",
            "Removes the expiration time of a key.",
            "O(1)",
        ),
    CommandSpec::new("rename", 3, WRITE, TWO_KEYS, rename)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.0.0",
            "Renames a key and overwrites the destination.",
            "O(1)",
        ),
    CommandSpec::new("renamenx", 3, WRITE | FAST, TWO_KEYS, renamenx)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.0.0",
            "Renames a key only when the target key name doesn't exist.",
            "O(1)",
        ),
    CommandSpec::new("copy", -3, WRITE | DENYOOM, TWO_KEYS, copy)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "6.2.0",
            "Copies the value of a key to a new key.",
            "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.",
        ),
    CommandSpec::new("move", 3, WRITE | FAST, FIRST_KEY, move_command)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.0.0",
            "Moves a key to another database.",
            "O(1)",
        ),
    CommandSpec::new("keys", 2, READONLY | WHOLE_KEYSPACE, NO_KEYS, keys)
        .acl(KEYSPACE_DANGEROUS)
        .doc(
            "generic",
            "1.0.0",
            "Returns all key names that match a pattern.",
            "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.",
        ),
    CommandSpec::new("scan", -2, READONLY | WHOLE_KEYSPACE, NO_KEYS, scan)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "2.8.0",
            "Iterates over the key names in the database.",
            "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        ),
    CommandSpec::new("randomkey", 1, READONLY | WHOLE_KEYSPACE, NO_KEYS, randomkey)
        .acl(KEYSPACE)
        .doc(
            "generic",
            "1.0.0",
            "Returns a random key name from the database.",
            "O(1)",
        ),
    CommandSpec::new("swapdb", 3, WRITE | FAST | WHOLE_KEYSPACE, NO_KEYS, swapdb)
        .acl(KEYSPACE_DANGEROUS)
        .doc(
            "server",
            "4.0.0",
            "Swaps two Redis databases.",
            "O(N) where N is the count of clients watching or blocking on keys from both databases.",
        ),
    CommandSpec::new("flushdb", -1, WRITE | WHOLE_KEYSPACE, NO_KEYS, flushdb)
        .acl(KEYSPACE_DANGEROUS)
        .doc(
            "server",
            "1.0.0",
            "Removes all keys from the current database.",
            "O(N) where N is the number of keys in the selected database",
        ),
    CommandSpec::new("flushall", -1, WRITE | WHOLE_KEYSPACE, NO_KEYS, flushall)
        .acl(KEYSPACE_DANGEROUS)
        .doc(
            "server",
            "1.0.0",
            "Removes all keys from all databases.",
            "O(N) where N is the total number of keys in all databases",
        ),
];

// ---------------------------------------------------------------- helpers

/// Redis's `getIntFromObjectOrReply`: a strict integer that fits in a C
/// `int`. With `message`, every failure is that error; without, Redis's two
/// generic messages.
fn int32_arg(arg: &[u8], message: Option<&'static str>) -> Result<i64> {
    let custom = || message.map(Error::err);
    let value = strict_i64(arg).ok_or_else(|| custom().unwrap_or_else(Error::not_integer))?;
    if value < i32::MIN as i64 || value > i32::MAX as i64 {
        return Err(custom().unwrap_or_else(|| {
            Error::err("value is out of range, value must between -2147483648 and 2147483647")
        }));
    }
    Ok(value)
}

/// A database index as SELECT/MOVE/COPY take it: an `int`, then a range check.
fn db_index_arg(ctx: &Ctx, arg: &[u8]) -> Result<usize> {
    let index = int32_arg(arg, None)?;
    usize::try_from(index)
        .ok()
        .filter(|&index| index < ctx.store().databases())
        .ok_or_else(Error::db_index_out_of_range)
}

fn same_object() -> Error {
    Error::err("source and destination objects are the same")
}

// ---------------------------------------------------------------- DEL, EXISTS, TYPE

/// DEL and UNLINK (freeing is never deferred in Larder: values are dropped
/// in place, which for UNLINK only costs the time Redis would spend in its
/// background thread).
fn del(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    remove_keys(ctx, argv, false)
}

/// UNLINK: as DEL, but a big value is always freed in the background.
fn unlink(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    remove_keys(ctx, argv, true)
}

/// DEL and UNLINK. Keys leave their maps under the lock; big values are
/// freed after it is released (DEL: on this thread, unless
/// `lazyfree-lazy-user-del`; UNLINK: on the lazyfree thread), so that a
/// 10M-element set never holds a shard lock while it is freed.
fn remove_keys(ctx: &mut Ctx, argv: &[&[u8]], unlink: bool) -> Result<()> {
    let keys = &argv[1..];
    let db = ctx.db();
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.keys(keys)?;
    let mut removed = 0;
    let mut big = Vec::new();
    for key in keys {
        if let Some(entry) = locked.db(db, key)?.remove(key, ctx.now_ms) {
            pubsub.notify(events::GENERIC, "del", key, db);
            removed += 1;
            if lazyfree::free_effort(entry.value()) > lazyfree::LAZYFREE_THRESHOLD {
                big.push(entry.into_value());
            }
        }
    }
    drop(locked);
    if !big.is_empty() {
        let background = unlink || ctx.shared.config.read().lazyfree_lazy_user_del;
        for value in big {
            ctx.store().free_value(value, background);
        }
    }
    ctx.out.int(removed);
    Ok(())
}

/// EXISTS and TOUCH: how many of the arguments exist, repeats counted.
/// (Larder keeps no per-key access time yet, so TOUCH only counts.)
fn exists(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let keys = &argv[1..];
    let db = ctx.db();
    let shared = ctx.shared;
    let mut locked = ctx.locks.keys(keys)?;
    let mut found = 0;
    for key in keys {
        if locked.db(db, key)?.contains(key, ctx.now_ms) {
            reads::hit(shared);
            found += 1;
        } else {
            reads::miss(shared, db, key);
        }
    }
    ctx.out.int(found);
    Ok(())
}

fn type_command(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let db = ctx.db();
    let locked = ctx.locks.read_key(key)?;
    let name = match locked.db(db, key)?.get(key, ctx.now_ms) {
        Some(entry) => {
            reads::hit(ctx.shared);
            entry.value().type_name()
        }
        None => {
            reads::miss(ctx.shared, db, key);
            "none"
        }
    };
    ctx.out.simple(name);
    Ok(())
}

// ---------------------------------------------------------------- EXPIRE family

#[derive(Default)]
struct ExpireOptions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// The NX/XX/GT/LT options, checked in Redis's order: unknown options as
/// they come, then the incompatible combinations.
fn parse_expire_options(options: &[&[u8]]) -> Result<ExpireOptions> {
    let mut parsed = ExpireOptions::default();
    for option in options {
        if is_keyword(option, "NX") {
            parsed.nx = true;
        } else if is_keyword(option, "XX") {
            parsed.xx = true;
        } else if is_keyword(option, "GT") {
            parsed.gt = true;
        } else if is_keyword(option, "LT") {
            parsed.lt = true;
        } else {
            return Err(Error::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(option)
            )));
        }
    }
    if parsed.nx && (parsed.xx || parsed.gt || parsed.lt) {
        return Err(Error::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if parsed.gt && parsed.lt {
        return Err(Error::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    Ok(parsed)
}

fn expire(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let now = ctx.now_ms as i64;
    expire_generic(ctx, argv, "expire", now, true)
}

fn pexpire(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let now = ctx.now_ms as i64;
    expire_generic(ctx, argv, "pexpire", now, false)
}

fn expireat(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    expire_generic(ctx, argv, "expireat", 0, true)
}

fn pexpireat(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    expire_generic(ctx, argv, "pexpireat", 0, false)
}

/// Redis's `expireGenericCommand`: `basetime` is now for the relative forms
/// and 0 for the absolute ones; the argument is in seconds or milliseconds.
fn expire_generic(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    name: &'static str,
    basetime: i64,
    seconds: bool,
) -> Result<()> {
    let options = parse_expire_options(&argv[3..])?;
    let mut when = int_arg(argv[2])?;
    if seconds {
        when = when
            .checked_mul(1000)
            .ok_or_else(|| Error::invalid_expire(name))?;
    }
    // Redis rejects only overflow past i64::MAX; a very negative time is
    // simply in the past (basetime is never negative, so this cannot wrap).
    if when > i64::MAX - basetime {
        return Err(Error::invalid_expire(name));
    }
    when += basetime;

    let key = argv[1];
    let db = ctx.db();
    let now = ctx.now_ms;
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let Some(entry) = part.get(key, now) else {
        ctx.out.int(0);
        return Ok(());
    };
    // Stored expiry times are below i64::MAX: they all come from `when`.
    let current = entry.expires_at().map(|at| at as i64);
    let refused = (options.nx && current.is_some())
        || (options.xx && current.is_none())
        // GT: no TTL counts as an infinite one, which nothing exceeds.
        || (options.gt && current.is_none_or(|current| when <= current))
        || (options.lt && current.is_some_and(|current| when >= current));
    if refused {
        ctx.out.int(0);
        return Ok(());
    }
    // A time already past deletes the key, announced as a deletion.
    if when <= now as i64 {
        part.remove(key, now);
        ctx.shared.pubsub.notify(events::GENERIC, "del", key, db);
    } else {
        part.set_expiry(key, Some(when as u64), now);
        ctx.shared.pubsub.notify(events::GENERIC, "expire", key, db);
    }
    ctx.out.int(1);
    Ok(())
}

// ---------------------------------------------------------------- TTL family

fn ttl(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    ttl_generic(ctx, argv, false, false)
}

fn pttl(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    ttl_generic(ctx, argv, true, false)
}

fn expiretime(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    ttl_generic(ctx, argv, false, true)
}

fn pexpiretime(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    ttl_generic(ctx, argv, true, true)
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 for a missing key, -1 for a key
/// without expiry; seconds are rounded to the nearest, as Redis does.
fn ttl_generic(ctx: &mut Ctx, argv: &[&[u8]], millis: bool, absolute: bool) -> Result<()> {
    let key = argv[1];
    let db = ctx.db();
    let now = ctx.now_ms;
    let locked = ctx.locks.read_key(key)?;
    let reply = match locked.db(db, key)?.get(key, now) {
        None => {
            reads::miss(ctx.shared, db, key);
            -2
        }
        Some(entry) => match entry.expires_at() {
            None => -1,
            Some(at) => {
                let ms = if absolute { at } else { at.saturating_sub(now) };
                // In u64, as Redis's (ttl+500)/1000 on i64::MAX comes out.
                let value = if millis {
                    ms
                } else {
                    ms.saturating_add(500) / 1000
                };
                i64::try_from(value).unwrap_or(i64::MAX)
            }
        },
    };
    if reply != -2 {
        reads::hit(ctx.shared);
    }
    ctx.out.int(reply);
    Ok(())
}

fn persist(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let db = ctx.db();
    let now = ctx.now_ms;
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let had_ttl = part
        .get(key, now)
        .is_some_and(|entry| entry.expires_at().is_some());
    if had_ttl {
        part.set_expiry(key, None, now);
        ctx.shared
            .pubsub
            .notify(events::GENERIC, "persist", key, db);
    }
    ctx.out.int(had_ttl as i64);
    Ok(())
}

// ---------------------------------------------------------------- RENAME, COPY, MOVE

fn rename(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    rename_generic(ctx, argv, false)
}

fn renamenx(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    rename_generic(ctx, argv, true)
}

/// The value and its TTL move to the new name; an existing destination is
/// replaced (RENAME) or left alone with a 0 reply (RENAMENX).
fn rename_generic(ctx: &mut Ctx, argv: &[&[u8]], nx: bool) -> Result<()> {
    let (source, target) = (argv[1], argv[2]);
    let db = ctx.db();
    let now = ctx.now_ms;
    let mut locked = ctx.locks.keys(&[source, target])?;
    if !locked.db(db, source)?.contains(source, now) {
        return Err(Error::no_such_key());
    }
    let done = |ctx: &mut Ctx, renamed: bool| {
        if nx {
            ctx.out.int(renamed as i64);
        } else {
            ctx.out.ok();
        }
    };
    // Renaming a key to itself changes nothing, but still needs the key.
    if source == target {
        drop(locked);
        done(ctx, false);
        return Ok(());
    }
    if nx && locked.db(db, target)?.contains(target, now) {
        drop(locked);
        done(ctx, false);
        return Ok(());
    }
    let Some(entry) = locked.db(db, source)?.remove(source, now) else {
        return Err(Error::no_such_key());
    };
    let expires_at = entry.expires_at();
    let part = locked.db(db, target)?;
    let replaced = part.contains(target, now);
    part.insert_from(target, entry, expires_at, now);
    let pubsub = &ctx.shared.pubsub;
    if replaced {
        // Redis deletes the old destination and adds the key anew.
        pubsub.notify(events::NEW, "new", target, db);
    }
    pubsub.notify(events::GENERIC, "rename_from", source, db);
    pubsub.notify(events::GENERIC, "rename_to", target, db);
    drop(locked);
    // Clients blocked (BLPOP...) on the new name may now be served.
    ctx.shared.blocking.key_ready(db, target, None);
    done(ctx, true);
    Ok(())
}

/// COPY source destination [DB index] [REPLACE]: the value and its TTL.
fn copy(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (source, target) = (argv[1], argv[2]);
    let source_db = ctx.db();
    let mut target_db = source_db;
    let mut replace = false;
    let mut i = 3;
    while i < argv.len() {
        if is_keyword(argv[i], "REPLACE") {
            replace = true;
        } else if is_keyword(argv[i], "DB") && i + 1 < argv.len() {
            target_db = db_index_arg(ctx, argv[i + 1])?;
            i += 1;
        } else {
            return Err(Error::syntax());
        }
        i += 1;
    }
    if source_db == target_db && source == target {
        return Err(same_object());
    }
    let now = ctx.now_ms;
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.keys(&[source, target])?;
    let source_found = locked.db(source_db, source)?.contains(source, now);
    reads::looked_up(shared, source_db, source, source_found);
    let copied =
        if !source_found || (!replace && locked.db(target_db, target)?.contains(target, now)) {
            false
        } else {
            let entry = locked
                .db(source_db, source)?
                .get(source, now)
                .cloned()
                .ok_or_else(Error::no_such_key)?;
            let expires_at = entry.expires_at();
            let part = locked.db(target_db, target)?;
            let replaced = part.contains(target, now);
            part.insert_from(target, entry, expires_at, now);
            if replaced {
                // Redis deletes the old destination and adds the copy anew.
                pubsub.notify(events::NEW, "new", target, target_db);
            }
            pubsub.notify(events::GENERIC, "copy_to", target, target_db);
            true
        };
    drop(locked);
    if copied {
        // Clients blocked (BLPOP...) on the copy may now be served.
        ctx.shared.blocking.key_ready(target_db, target, None);
    }
    ctx.out.int(copied as i64);
    Ok(())
}

/// MOVE key db: a key's shard is the same in every database, so the move
/// stays inside one shard lock.
fn move_command(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let target_db = db_index_arg(ctx, argv[2])?;
    let source_db = ctx.db();
    if target_db == source_db {
        return Err(same_object());
    }
    let now = ctx.now_ms;
    let mut locked = ctx.locks.key(key)?;
    let (source, target) = locked.shard_for(key)?.two_dbs(source_db, target_db);
    let moved = source.contains(key, now) && !target.contains(key, now);
    if moved {
        if let Some(entry) = source.remove(key, now) {
            let expires_at = entry.expires_at();
            target.insert_from(key, entry, expires_at, now);
            let pubsub = &ctx.shared.pubsub;
            pubsub.notify(events::GENERIC, "move_from", key, source_db);
            pubsub.notify(events::GENERIC, "move_to", key, target_db);
        }
    }
    drop(locked);
    if moved {
        // Clients blocked (BLPOP...) on the key in its new database may now
        // be served.
        ctx.shared.blocking.key_ready(target_db, key, None);
    }
    ctx.out.int(moved as i64);
    Ok(())
}

// ---------------------------------------------------------------- KEYS, SCAN, RANDOMKEY

/// Past this many keys, KEYS walks the keyspace off the runtime worker.
const KEYS_OFF_WORKER: usize = 65_536;

fn keys(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let pattern = argv[1];
    let all = pattern == b"*";
    let db = ctx.db();
    let now = ctx.now_ms;
    let mut found: Vec<Key> = Vec::new();
    let big = !ctx.locks.in_transaction() && ctx.store().dbsize(db).unwrap_or(0) > KEYS_OFF_WORKER;
    let locks = &mut ctx.locks;
    // One shard lock at a time, so other clients get through between
    // shards; a big walk also leaves the runtime worker to them.
    let mut walk = || {
        locks.each_shard(|shard| {
            found.extend(
                shard
                    .db_ref(db)
                    .iter(now)
                    .filter(|(key, _)| all || glob_match(pattern, key, false))
                    .map(|(key, _)| Key::from(key)),
            );
            Ok(())
        })
    };
    if big {
        super::off_the_worker(walk)?;
    } else {
        walk()?;
    }
    ctx.out.array(found.len());
    for key in &found {
        ctx.out.bulk(key);
    }
    Ok(())
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
///
/// Design: the keyspace is split in `shard_count()` shards (a power of two)
/// and a key's shard never changes, so the cursor is simply the index of
/// the next shard to visit. Each call visits whole shards, one lock at a
/// time, until it has seen at least COUNT keys or reached the last shard
/// (then the cursor is 0). A key present for the whole iteration lives in
/// one shard that some call visits entirely, so it is returned — Redis's
/// guarantee — however the maps inside the shards resize meanwhile; and no
/// key is returned twice, which is more than Redis promises. MATCH and TYPE
/// only filter what was visited (COUNT counts visited keys), as in Redis, so
/// a call may return nothing with a non-zero cursor. A cursor at or past the
/// shard count (never one we returned) ends the iteration: cursor 0, no keys.
///
/// The cost of one call is bounded by the size of the shards it visits, not
/// by COUNT: with N keys, a call returns at least N / shard_count keys.
fn scan(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let cursor = parse_cursor(argv[1]).ok_or_else(|| Error::err("invalid cursor"))?;
    let ScanOptions {
        count,
        pattern,
        type_name,
        ..
    } = parse_scan_options(&argv[2..], ScanExtra::Type)?;
    let db = ctx.db();
    let now = ctx.now_ms;
    let shards = ctx.store().shard_count() as u64;
    let count = count as u64;
    let mut index = cursor;
    let mut visited: u64 = 0;
    let mut found: Vec<Key> = Vec::new();
    while index < shards && visited < count {
        let shard_index = index as usize;
        let mut locked = ctx.locks.shard(shard_index)?;
        for (key, entry) in locked.shard(shard_index)?.db(db).iter(now) {
            visited += 1;
            let matches = pattern.is_none_or(|p| glob_match(p, key, false))
                && type_name
                    .is_none_or(|t| t.eq_ignore_ascii_case(entry.value().type_name().as_bytes()));
            if matches {
                found.push(Key::from(key));
            }
        }
        index += 1;
    }
    let next = if index >= shards { 0 } else { index };
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.array(found.len());
    for key in &found {
        ctx.out.bulk(key);
    }
    Ok(())
}

/// A random live key: a random shard (the next non-empty one after it if it
/// is empty), then a random key in it. Shards hold about the same number of
/// keys, so this is close to uniform.
/// RANDOMKEY: a random shard, then a random key of it. With keys in most
/// shards a shard picked uniformly is a fair pick (they hold about as
/// many keys each). With few keys the shards are weighed by how many they
/// hold: walking on from a random shard to the next one with keys, as
/// this once did, favoured a shard after a long run of empty ones (of five
/// keys, one could come up once in 256 calls).
fn randomkey(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let db = ctx.db();
    let now = ctx.now_ms;
    let shards = ctx.store().shard_count();
    let mut rng = rand::thread_rng();
    for _ in 0..8 {
        let index = rng.gen_range(0..shards);
        if let Some(key) = random_key_in(ctx, index, db, now, rng.gen())? {
            ctx.out.bulk(&key);
            return Ok(());
        }
    }
    // A key picked can expire, or its shard empty, before it is read:
    // weigh again, a few times (all of them may be expired keys kept by
    // CLIENT PAUSE, which are never returned).
    for _ in 0..8 {
        let mut sizes = Vec::with_capacity(shards);
        for index in 0..shards {
            let mut locked = ctx.locks.shard(index)?;
            sizes.push(
                locked
                    .shard(index)?
                    .existing_db(db)
                    .map_or(0, |part| part.len()),
            );
        }
        let total: usize = sizes.iter().sum();
        if total == 0 {
            break;
        }
        let mut pick = rng.gen_range(0..total);
        let index = sizes
            .iter()
            .position(|&size| {
                let here = pick < size;
                pick = pick.saturating_sub(size);
                here
            })
            .unwrap_or(shards - 1);
        if let Some(key) = random_key_in(ctx, index, db, now, rng.gen())? {
            ctx.out.bulk(&key);
            return Ok(());
        }
    }
    ctx.out.null();
    Ok(())
}

/// A random live key of database `db` in shard `index`, if it has one.
fn random_key_in(
    ctx: &mut Ctx,
    index: usize,
    db: usize,
    now: u64,
    nth: usize,
) -> Result<Option<crate::store::Key>> {
    let mut locked = ctx.locks.shard(index)?;
    Ok(match locked.shard(index)?.existing_db_mut(db) {
        Some(part) if !part.is_empty() => part.key_at(nth, now),
        _ => None,
    })
}

// ---------------------------------------------------------------- SWAPDB, FLUSHDB, FLUSHALL

fn swapdb(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let first = int32_arg(argv[1], Some("invalid first DB index"))?;
    let second = int32_arg(argv[2], Some("invalid second DB index"))?;
    let databases = ctx.store().databases();
    let in_range = |index: i64| usize::try_from(index).ok().filter(|&i| i < databases);
    let (Some(first), Some(second)) = (in_range(first), in_range(second)) else {
        return Err(Error::db_index_out_of_range());
    };
    if first != second {
        // All shards at once: no client may see a half-swapped keyspace.
        let mut all = ctx.locks.all()?;
        for (i, (_, shard)) in all.shards_mut().enumerate() {
            shard.swap_dbs(first, second, i == 0);
        }
        drop(all);
        // Clients blocked (BLPOP...) in either database may now be served.
        ctx.shared.blocking.db_ready(first);
        ctx.shared.blocking.db_ready(second);
    }
    ctx.out.ok();
    Ok(())
}

/// FLUSHDB/FLUSHALL's optional ASYNC or SYNC; without one,
/// `lazyfree-lazy-user-flush` decides (as Redis's `getFlushCommandFlags`).
/// True: free in the background.
fn flush_in_background(ctx: &Ctx, argv: &[&[u8]]) -> Result<bool> {
    match argv {
        [_] => Ok(ctx.shared.config.read().lazyfree_lazy_user_flush),
        [_, mode] if is_keyword(mode, "SYNC") => Ok(false),
        [_, mode] if is_keyword(mode, "ASYNC") => Ok(true),
        _ => Err(Error::syntax()),
    }
}

fn flushdb(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "flushdb", None, flushdb_unaudited)
}

fn flushdb_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let background = flush_in_background(ctx, argv)?;
    let db = ctx.db();
    // Detach every shard's maps under all the locks (atomic for other
    // clients, O(shards)); free them after the locks are released.
    let removed = ctx.locks.all()?.clear_db(db);
    ctx.shared.pubsub.flushed();
    ctx.store().free_removed(removed, background);
    ctx.out.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "flushall", None, flushall_unaudited)
}

fn flushall_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let background = flush_in_background(ctx, argv)?;
    // As Redis 7.0's flushAllDataAndResetRDB: a background save running
    // is stopped (inside EXEC, whose locks its walker needs, without
    // waiting for it), and with save points the empty dataset is saved.
    // Inside EXEC, which holds the locks a save takes, the save is
    // scheduled instead: the cron runs it once the transaction is over.
    let in_exec = ctx.locks.in_transaction();
    ctx.shared.persistence.abort(!in_exec);
    let removed = ctx.locks.all()?.clear_all_dbs();
    ctx.shared.pubsub.flushed();
    ctx.store().free_removed(removed, background);
    if !ctx.shared.config.read().save_points.is_empty() {
        if in_exec {
            ctx.shared.persistence.schedule_bgsave();
        } else {
            let options = ctx.shared.save_options();
            // Its failure is in the log; FLUSHALL itself succeeded.
            let _ = ctx.shared.persistence.save(&ctx.shared.store, &options);
        }
    }
    ctx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"17"), Some(17));
        assert_eq!(parse_cursor(b"+17"), Some(17));
        assert_eq!(parse_cursor(b"007"), Some(7));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"5\0junk"), Some(5));
        for bad in [
            &b"18446744073709551616"[..],
            b" 1",
            b"1 ",
            b"+",
            b"-",
            b"0x10",
            b"abc",
        ] {
            assert_eq!(
                parse_cursor(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn int32_arguments_like_get_int_from_object() {
        assert_eq!(int32_arg(b"5", None), Ok(5));
        assert_eq!(int32_arg(b"x", None), Err(Error::not_integer()));
        assert_eq!(
            int32_arg(b"2147483648", None).unwrap_err().message(),
            "ERR value is out of range, value must between -2147483648 and 2147483647"
        );
        assert_eq!(
            int32_arg(b"2147483648", Some("invalid first DB index"))
                .unwrap_err()
                .message(),
            "ERR invalid first DB index"
        );
    }
}
