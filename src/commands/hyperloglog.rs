//! HyperLogLog commands (PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST),
//! byte-compatible with Redis 7.0: an HLL is a plain string holding Redis's
//! own representation (see `crate::hyperloglog`), so GET returns Redis's
//! bytes and a value copied from Redis counts the same here.
//!
//! Values are changed in place through the store's string write path
//! (`value_mut` + `touch`, or `insert` for a new key), so WATCH, client
//! tracking and write-behind see every change, as for APPEND or SETRANGE.

use super::flags::*;
use super::reads;
use super::{CommandSpec, Ctx, KeySpec, ALL_KEYS, FIRST_KEY};
use crate::error::{Error, Result};
use crate::hyperloglog::{self as hll, Corrupt, REGISTERS};
use crate::pubsub::events;
use crate::store::{Db, Value, ValueRef};

const HYPERLOGLOG: &[&str] = &["hyperloglog"];

/// PFDEBUG: the key after the subcommand.
const KEY_AT_2: KeySpec = KeySpec::Range {
    first: 2,
    last: 2,
    step: 1,
};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("pfadd", -2, WRITE | DENYOOM | FAST, FIRST_KEY, pfadd)
        .acl(HYPERLOGLOG)
        .doc(
            "hyperloglog",
            "2.8.9",
            "Adds the specified elements to the specified HyperLogLog.",
            "O(1) to add every element.",
        ),
    CommandSpec::new("pfcount", -2, READONLY, ALL_KEYS, pfcount)
        .acl(HYPERLOGLOG)
        .doc(
            "hyperloglog",
            "2.8.9",
            "Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s).",
            "O(1) with a very small average constant time when called with a single key. O(N) with N being the number of keys, and much bigger constant times, when called with multiple keys.",
        ),
    CommandSpec::new("pfmerge", -2, WRITE | DENYOOM, ALL_KEYS, pfmerge)
        .acl(HYPERLOGLOG)
        .doc(
            "hyperloglog",
            "2.8.9",
            "Merge N different HyperLogLogs into a single one.",
            "O(N) to merge N HyperLogLogs, but with high constant times.",
        ),
    CommandSpec::new("pfdebug", 3, WRITE | DENYOOM | ADMIN, KEY_AT_2, pfdebug)
        .acl(HYPERLOGLOG)
        .doc(
            "hyperloglog",
            "2.8.9",
            "Internal commands for debugging HyperLogLog values",
            "N/A",
        ),
    CommandSpec::new("pfselftest", 1, ADMIN, KeySpec::None, pfselftest)
        .acl(HYPERLOGLOG)
        .doc(
            "hyperloglog",
            "2.8.9",
            "An internal command for testing HyperLogLog values",
            "N/A",
        ),
];

fn invalid_hll() -> Error {
    Error::raw("WRONGTYPE Key is not a valid HyperLogLog string value.")
}

fn corrupt(_: Corrupt) -> Error {
    Error::raw("INVALIDOBJ Corrupted HLL object detected")
}

/// `hll-sparse-max-bytes`, read once per command before any shard lock.
fn sparse_max_bytes(ctx: &Ctx) -> u64 {
    ctx.shared
        .config
        .read()
        .accepted_only
        .get("hll-sparse-max-bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(hll::DEFAULT_SPARSE_MAX_BYTES)
}

/// A value as an HLL (`isHLLObjectOrReply`): WRONGTYPE for another type,
/// or for a string that is not an HLL.
fn as_hll(value: ValueRef<'_>) -> Result<&[u8]> {
    let bytes = value.as_str().ok_or_else(Error::wrong_type)?;
    if hll::is_hll(bytes) {
        Ok(bytes)
    } else {
        Err(invalid_hll())
    }
}

/// The HLL at `key` for change in place (checked by [`as_hll`]).
fn hll_mut<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d mut Vec<u8>>> {
    match db.value_mut(key, now) {
        None => Ok(None),
        Some(Value::Str(s)) => {
            if hll::is_hll(s) {
                Ok(Some(s))
            } else {
                Err(invalid_hll())
            }
        }
        #[allow(unreachable_patterns)]
        Some(_) => Err(Error::wrong_type()),
    }
}

/// The HLL at `key` as a read command looks it up (hits, misses and
/// `keymiss` counted).
fn read_hll<'d>(
    ctx_shared: &crate::shared::Shared,
    db: &'d mut Db,
    dbi: usize,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d [u8]>> {
    match db.get(key, now) {
        None => {
            reads::miss(ctx_shared, dbi, key);
            Ok(None)
        }
        Some(entry) => {
            reads::hit(ctx_shared);
            as_hll(entry.value()).map(Some)
        }
    }
}

fn pfadd(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let max_bytes = sparse_max_bytes(ctx);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let mut updated = false;
    let result = match hll_mut(db, key, now)? {
        Some(value) => {
            let mut outcome = Ok(());
            for element in &argv[2..] {
                match hll::add(value, element, max_bytes) {
                    Ok(changed) => updated |= changed,
                    Err(e) => {
                        outcome = Err(corrupt(e));
                        break;
                    }
                }
            }
            if updated && outcome.is_ok() {
                hll::invalidate_cache(value);
            }
            // A change made before a corrupted part was met is kept, as in
            // Redis; the key is touched so that write-behind sees it.
            if updated {
                db.touch(key);
            }
            outcome
        }
        None => {
            let mut value = hll::new_sparse();
            let mut outcome = Ok(());
            for element in &argv[2..] {
                if let Err(e) = hll::add(&mut value, element, max_bytes) {
                    outcome = Err(corrupt(e));
                    break;
                }
            }
            hll::invalidate_cache(&mut value);
            // A raw string, as Redis's createHLLObject makes it.
            db.insert_raw_str(key, value, None, now);
            updated = true;
            outcome
        }
    };
    result?;
    if updated {
        ctx.shared.pubsub.notify(events::STRING, "pfadd", key, dbi);
    }
    ctx.out.int(updated as i64);
    Ok(())
}

fn pfcount(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    if argv.len() > 2 {
        // The union of several HLLs, in a temporary of one byte per register.
        let mut max = Box::new([0u8; REGISTERS]);
        let mut locked = ctx.locks.keys(&argv[1..])?;
        for key in &argv[1..] {
            if let Some(value) = read_hll(shared, locked.db(dbi, key)?, dbi, key, now)? {
                hll::merge_into(&mut max, value).map_err(corrupt)?;
            }
        }
        drop(locked);
        ctx.out.int(hll::count_registers(&max) as i64);
        return Ok(());
    }
    let key = argv[1];
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let Some(value) = read_hll(shared, db, dbi, key, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    // Redis unshares the string first (dbUnshareStringValue), cached count
    // or not: a PFCOUNTed HLL is a raw string.
    let card = match hll::cached_cardinality(value) {
        Some(card) => {
            if db.get(key, now).is_some_and(|e| !e.is_raw_string()) {
                db.value_mut(key, now);
            }
            card
        }
        None => {
            let card = hll::count(value).map_err(corrupt)?;
            // Caching the count changes the string: a write, as in Redis
            // (signalModifiedKey), though PFCOUNT is flagged read-only.
            if let Some(Value::Str(s)) = db.value_mut(key, now) {
                hll::set_cached_cardinality(s, card);
                db.touch(key);
            }
            card
        }
    };
    ctx.out.int(card as i64);
    Ok(())
}

fn pfmerge(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let dest = argv[1];
    let max_bytes = sparse_max_bytes(ctx);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut max = Box::new([0u8; REGISTERS]);
    let mut use_dense = false;
    let mut locked = ctx.locks.keys(&argv[1..])?;
    for key in &argv[1..] {
        if let Some(value) = read_hll(shared, locked.db(dbi, key)?, dbi, key, now)? {
            use_dense |= hll::encoding(value) == hll::DENSE;
            hll::merge_into(&mut max, value).map_err(corrupt)?;
        }
    }
    let db = locked.db(dbi, dest)?;
    let write = |value: &mut Vec<u8>| -> Result<()> {
        if use_dense {
            hll::sparse_to_dense(value).map_err(corrupt)?;
        }
        if hll::encoding(value) == hll::DENSE {
            // The destination was merged into `max` too, so raising each of
            // its registers to `max` is writing `max` whole.
            hll::set_dense_registers(value, &max);
        } else {
            for (index, &count) in max.iter().enumerate() {
                if count != 0 {
                    // As Redis, a failure here (a corrupted destination was
                    // caught above) is not reported.
                    let _ = hll::set_register(value, index, count, max_bytes);
                }
            }
        }
        hll::invalidate_cache(value);
        Ok(())
    };
    match hll_mut(db, dest, now)? {
        Some(value) => {
            write(value)?;
            db.touch(dest);
        }
        None => {
            let mut value = hll::new_sparse();
            write(&mut value)?;
            db.insert_raw_str(dest, value, None, now);
        }
    }
    drop(locked);
    // Redis announces a merge as a PFADD (a mass add of elements).
    shared.pubsub.notify(events::STRING, "pfadd", dest, dbi);
    ctx.out.ok();
    Ok(())
}

/// An argument as C's `%s` prints it: up to its first NUL byte.
fn c_str(arg: &[u8]) -> &[u8] {
    arg.iter()
        .position(|&b| b == 0)
        .map_or(arg, |nul| &arg[..nul])
}

fn pfdebug(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (sub, key) = (c_str(argv[1]), argv[2]);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let Some(value) = hll_mut(db, key, now)? else {
        return Err(Error::err("The specified key does not exist"));
    };
    if sub.eq_ignore_ascii_case(b"getreg") {
        if hll::encoding(value) == hll::SPARSE {
            hll::sparse_to_dense(value).map_err(corrupt)?;
            db.touch(key);
        }
        let Some(Value::Str(value)) = db.value_mut(key, now) else {
            return Err(Error::err("The specified key does not exist"));
        };
        let registers = hll::dense_registers(value);
        drop(locked);
        ctx.out.array(registers.len());
        for register in registers {
            ctx.out.int(register as i64);
        }
    } else if sub.eq_ignore_ascii_case(b"decode") {
        if hll::encoding(value) != hll::SPARSE {
            return Err(Error::err("HLL encoding is not sparse"));
        }
        let decoded = hll::decode_sparse(value);
        drop(locked);
        ctx.out.bulk(decoded.as_bytes());
    } else if sub.eq_ignore_ascii_case(b"encoding") {
        let name = if hll::encoding(value) == hll::DENSE {
            "dense"
        } else {
            "sparse"
        };
        drop(locked);
        ctx.out.simple(name);
    } else if sub.eq_ignore_ascii_case(b"todense") {
        let converted = hll::encoding(value) == hll::SPARSE;
        if converted {
            hll::sparse_to_dense(value).map_err(corrupt)?;
            db.touch(key);
        }
        drop(locked);
        ctx.out.int(converted as i64);
    } else {
        // addReplyErrorFormat turns newlines into spaces.
        let shown: String = String::from_utf8_lossy(sub)
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        return Err(Error::err(format!("Unknown PFDEBUG subcommand '{shown}'")));
    }
    Ok(())
}

fn pfselftest(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let max_bytes = sparse_max_bytes(ctx);
    let mut rng = rand::random::<u64>;
    match hll::self_test(1000, 10_000_000, max_bytes, &mut rng) {
        Ok(()) => {
            ctx.out.ok();
            Ok(())
        }
        Err(message) => Err(Error::err(message)),
    }
}
