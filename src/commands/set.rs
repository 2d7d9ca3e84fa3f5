//! Set commands: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP,
//! SRANDMEMBER, SMOVE, SINTER, SINTERCARD, SUNION, SDIFF, SINTERSTORE,
//! SUNIONSTORE, SDIFFSTORE, SSCAN — with Redis 7.0's replies, errors and
//! order of checks.
//!
//! Multi-key commands lock the shards of all their keys (ascending order),
//! check every key's type first (WRONGTYPE wins over a missing key, as in
//! Redis 7.0), then work one key at a time: the intersection filters the
//! smallest set, a chunk at a time, through each other set; the
//! difference starts from a copy of the first set and shrinks by whichever
//! of itself or the next set is smaller. Missing keys are empty sets.
//!
//! The member order of SMEMBERS, SINTER, SUNION, SDIFF, SPOP and
//! SRANDMEMBER differs from Redis's (which depends on its hash table or
//! intset layout); sets carry no order in Redis's contract either.

use super::flags::*;
use super::parse::{
    glob_match, int_arg, is_keyword, parse_cursor, parse_scan_options, strict_i64, ScanExtra,
    ScanOptions,
};
use super::reads;
use super::{CommandSpec, Ctx, KeySpec, ALL_KEYS, FIRST_KEY};
use crate::error::{Error, Result};
use crate::pubsub::{events, PubSub};
use crate::shared::Shared;
use crate::store::changes::{Effect, Items};
use crate::store::types::SetValue;
use crate::store::{Db, LockSet, Value, ValueRef};

const SET: &[&str] = &["set"];

/// SMOVE: source and destination.
const TWO_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: 2,
    step: 1,
};

/// The STORE forms: the destination at 1, the sources after it.
const DEST_AND_SOURCES: KeySpec = KeySpec::Range {
    first: 1,
    last: -1,
    step: 1,
};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("sadd", -3, WRITE | DENYOOM | FAST, FIRST_KEY, sadd)
        .member_at(2)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Add one or more members to a set",
            "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        ),
    CommandSpec::new("srem", -3, WRITE | FAST, FIRST_KEY, srem)
        .member_at(2)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Remove one or more members from a set",
            "O(N) where N is the number of members to be removed.",
        ),
    CommandSpec::new("smembers", 2, READONLY, FIRST_KEY, smembers)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Get all the members in a set",
            "O(N) where N is the set cardinality.",
        ),
    CommandSpec::new("sismember", 3, READONLY | FAST, FIRST_KEY, sismember)
        .member_at(2)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Determine if a given value is a member of a set",
            "O(1)",
        ),
    CommandSpec::new("smismember", -3, READONLY | FAST, FIRST_KEY, smismember)
        .member_at(2)
        .acl(SET)
        .doc(
            "set",
            "6.2.0",
            "Returns the membership associated with the given elements for a set",
            "O(N) where N is the number of elements being checked for membership",
        ),
    CommandSpec::new("scard", 2, READONLY | FAST, FIRST_KEY, scard)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Get the number of members in a set",
            "O(1)",
        ),
    CommandSpec::new("spop", -2, WRITE | FAST, FIRST_KEY, spop)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Remove and return one or multiple random members from a set",
            "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.",
        ),
    CommandSpec::new("srandmember", -2, READONLY, FIRST_KEY, srandmember)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Get one or multiple random members from a set",
            "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.",
        ),
    CommandSpec::new("smove", 4, WRITE | FAST, TWO_KEYS, smove)
        .acl(SET)
        .doc("set", "1.0.0", "Move a member from one set to another", "O(1)"),
    CommandSpec::new("sinter", -2, READONLY, ALL_KEYS, sinter)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Intersect multiple sets",
            "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        ),
    CommandSpec::new(
        "sintercard",
        -3,
        READONLY,
        KeySpec::NumKeys { numkeys_index: 1 },
        sintercard,
    )
    .acl(SET)
    .doc(
        "set",
        "7.0.0",
        "Intersect multiple sets and return the cardinality of the result",
        "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
    ),
    CommandSpec::new("sunion", -2, READONLY, ALL_KEYS, sunion)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Add multiple sets",
            "O(N) where N is the total number of elements in all given sets.",
        ),
    CommandSpec::new("sdiff", -2, READONLY, ALL_KEYS, sdiff)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Subtract multiple sets",
            "O(N) where N is the total number of elements in all given sets.",
        ),
    CommandSpec::new("sinterstore", -3, WRITE | DENYOOM, DEST_AND_SOURCES, sinterstore)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Intersect multiple sets and store the resulting set in a key",
            "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.",
        ),
    CommandSpec::new("sunionstore", -3, WRITE | DENYOOM, DEST_AND_SOURCES, sunionstore)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Add multiple sets and store the resulting set in a key",
            "O(N) where N is the total number of elements in all given sets.",
        ),
    CommandSpec::new("sdiffstore", -3, WRITE | DENYOOM, DEST_AND_SOURCES, sdiffstore)
        .acl(SET)
        .doc(
            "set",
            "1.0.0",
            "Subtract multiple sets and store the resulting set in a key",
            "O(N) where N is the total number of elements in all given sets.",
        ),
    CommandSpec::new("sscan", -3, READONLY, FIRST_KEY, sscan)
        .acl(SET)
        .doc(
            "set",
            "2.8.0",
            "Incrementally iterate Set elements",
            "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..",
        ),
];

/// The set at `key`: `None` if there is no such key, WRONGTYPE if it holds
/// another type.
fn get_set<'d>(db: &'d Db, key: &[u8], now: u64) -> Result<Option<&'d SetValue>> {
    match db.get(key, now) {
        None => Ok(None),
        Some(entry) => match entry.value() {
            ValueRef::Set(set) => Ok(Some(set)),
            _ => Err(Error::wrong_type()),
        },
    }
}

/// Like [`get_set`], for changing the set in place (call `db.touch` after).
fn get_set_mut<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d mut SetValue>> {
    match db.value_mut(key, now) {
        None => Ok(None),
        Some(Value::Set(set)) => Ok(Some(set)),
        Some(_) => Err(Error::wrong_type()),
    }
}

/// Keyspace notifications are published through the engine directly, under
/// the key's shard lock (which borrows the `Ctx`), so that the events of one
/// key come in the order of its changes.
///
/// Announces a change of the set at `key` (`event`), and its deletion if
/// the change `emptied` it, as Redis does.
fn notify_change(pubsub: &PubSub, db: usize, key: &[u8], event: &str, emptied: bool) {
    pubsub.notify(events::SET, event, key, db);
    if emptied {
        pubsub.notify(events::GENERIC, "del", key, db);
    }
}

/// [`get_set`] for a read command: a miss is announced (`keymiss`, as
/// Redis's lookupKeyRead does).
fn read_set<'d>(
    shared: &Shared,
    db: &'d Db,
    dbi: usize,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d SetValue>> {
    reads::counted(shared, dbi, key, get_set(db, key, now))
}

/// Stores `set` at `key` (replacing whatever is there, TTL included), or
/// deletes `key` if `set` is empty, as the STORE forms do; announces it as
/// `event`, or as a deletion.
fn store_result(
    pubsub: &PubSub,
    db: &mut Db,
    dbi: usize,
    key: &[u8],
    set: SetValue,
    now: u64,
    event: &str,
) -> usize {
    let len = set.len();
    if set.is_empty() {
        if db.remove(key, now).is_some() {
            pubsub.notify(events::GENERIC, "del", key, dbi);
        }
    } else {
        db.insert(key, Value::Set(Box::new(set)), None, now);
        pubsub.notify(events::SET, event, key, dbi);
    }
    len
}

fn sadd(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let added = if let Some(set) = get_set_mut(part, key, now)? {
        let added = argv[2..].iter().filter(|m| set.insert(m)).count();
        if added > 0 {
            part.touch_with(key, Effect::SetMembers(Items::all(&argv[2..])));
        }
        added
    } else {
        let set: SetValue = argv[2..].iter().copied().collect();
        let added = set.len();
        part.insert(key, Value::Set(Box::new(set)), None, now);
        added
    };
    if added > 0 {
        notify_change(&ctx.shared.pubsub, db, key, "sadd", false);
    }
    ctx.out.int(added as i64);
    Ok(())
}

fn srem(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let Some(set) = get_set_mut(part, key, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let removed = argv[2..].iter().filter(|m| set.remove(m)).count();
    let emptied = set.is_empty();
    if emptied {
        part.remove(key, now);
    } else if removed > 0 {
        part.touch_with(key, Effect::SetMembers(Items::all(&argv[2..])));
    }
    if removed > 0 {
        notify_change(&ctx.shared.pubsub, db, key, "srem", emptied);
    }
    ctx.out.int(removed as i64);
    Ok(())
}

/// SMEMBERS: in Redis 7.0 this is SINTER with one key (a set reply).
fn smembers(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    match read_set(shared, locked.db(db, key)?, db, key, now)? {
        None => ctx.out.set(0),
        Some(set) => {
            ctx.out.set(set.len());
            for member in set.iter() {
                ctx.out.bulk(member);
            }
        }
    }
    Ok(())
}

fn sismember(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let found = read_set(shared, locked.db(db, key)?, db, key, now)?
        .is_some_and(|set| set.contains(argv[2]));
    ctx.out.int(found as i64);
    Ok(())
}

fn smismember(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let set = read_set(shared, locked.db(db, key)?, db, key, now)?;
    ctx.out.array(argv.len() - 2);
    for member in &argv[2..] {
        ctx.out
            .int(set.is_some_and(|set| set.contains(member)) as i64);
    }
    Ok(())
}

fn scard(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let len = read_set(shared, locked.db(db, key)?, db, key, now)?.map_or(0, SetValue::len);
    ctx.out.int(len as i64);
    Ok(())
}

/// SPOP key [count]. The count is checked before the key (so a negative
/// count is an error even for a missing key or another type), as in Redis.
fn spop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv.len() > 3 {
        return Err(Error::syntax());
    }
    let count = match argv.get(2) {
        // Redis's getPositiveLongFromObjectOrReply: one message for a
        // non-integer and for a negative number.
        Some(arg) => Some(
            strict_i64(arg)
                .filter(|&n| n >= 0)
                .ok_or_else(|| Error::err("value is out of range, must be positive"))?,
        ),
        None => None,
    };
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let Some(set) = get_set_mut(part, key, now)? else {
        if count.is_some() {
            ctx.out.set(0);
        } else {
            ctx.out.null();
        }
        return Ok(());
    };
    let wanted = match count {
        Some(0) => {
            ctx.out.set(0);
            return Ok(());
        }
        // A count larger than the set pops it whole.
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => 1,
    };
    let popped = set.pop_random(wanted, &mut rand::thread_rng());
    let emptied = set.is_empty();
    if emptied {
        part.remove(key, now);
    } else {
        part.touch(key);
    }
    notify_change(&ctx.shared.pubsub, db, key, "spop", emptied);
    drop(locked);
    if count.is_some() {
        ctx.out.set(popped.len());
        for member in &popped {
            ctx.out.bulk(member);
        }
    } else if let Some(member) = popped.first() {
        ctx.out.bulk(member);
    } else {
        ctx.out.null();
    }
    Ok(())
}

/// SRANDMEMBER key [count].
///
/// A positive count gives distinct members (the whole set if the count is
/// at least its size); a negative one gives exactly |count| members picked
/// independently (repeats possible). As in Redis 7.0 the count must be
/// within ±i64::MAX (so negating it cannot overflow). Redis streams the
/// repeated picks of a huge negative count until the client's output
/// buffer limit closes the connection; Larder builds a reply in memory,
/// so it refuses a negative count whose reply would exceed
/// `proto-max-bulk-len` (512 MB by default) instead of allocating it.
fn srandmember(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv.len() > 3 {
        return Err(Error::syntax());
    }
    let count = match argv.get(2) {
        Some(arg) => {
            let n = int_arg(arg)?;
            if n == i64::MIN {
                return Err(Error::err(
                    "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            Some(n)
        }
        None => None,
    };
    let reply_limit = ctx.shared.config.read().proto_max_bulk_len;
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let Some(set) = read_set(shared, locked.db(db, key)?, db, key, now)? else {
        if count.is_some() {
            ctx.out.array(0);
        } else {
            ctx.out.null();
        }
        return Ok(());
    };
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        match set.random_member(&mut rng) {
            Some(member) => ctx.out.bulk(member),
            None => ctx.out.null(),
        }
        return Ok(());
    };
    if count == 0 {
        ctx.out.array(0);
    } else if count < 0 || count == 1 {
        let picks = count.unsigned_abs();
        // Each pick costs at least "$<len>\r\n<member>\r\n".
        let average = (set.member_bytes() / set.len().max(1)) as u64 + 16;
        if picks.saturating_mul(average) > reply_limit.max(1) {
            return Err(Error::err(
                "SRANDMEMBER count is too large: the reply would exceed proto-max-bulk-len",
            ));
        }
        // `picks` is bounded by the reply limit, so it fits in memory.
        let picks = usize::try_from(picks).unwrap_or(usize::MAX);
        ctx.out.array(picks);
        for _ in 0..picks {
            if let Some(member) = set.random_member(&mut rng) {
                ctx.out.bulk(member);
            }
        }
    } else {
        let wanted = usize::try_from(count).unwrap_or(usize::MAX);
        let members = set.random_distinct(wanted, &mut rng);
        ctx.out.array(members.len());
        for member in members {
            ctx.out.bulk(member);
        }
    }
    Ok(())
}

/// What a key holds, for commands that must look at two keys before
/// changing either.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holds {
    Nothing,
    Set,
    Other,
}

fn holds(db: &mut Db, key: &[u8], now: u64) -> Holds {
    match db.get(key, now) {
        None => Holds::Nothing,
        Some(entry) if matches!(entry.value(), ValueRef::Set(_)) => Holds::Set,
        Some(_) => Holds::Other,
    }
}

/// SMOVE source destination member. A missing source answers 0 before any
/// type check of the destination, as in Redis.
fn smove(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (source, target, member) = (argv[1], argv[2], argv[3]);
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.keys(&[source, target])?;
    let source_holds = holds(locked.db(db, source)?, source, now);
    let target_holds = holds(locked.db(db, target)?, target, now);
    if source_holds == Holds::Nothing {
        ctx.out.int(0);
        return Ok(());
    }
    if source_holds == Holds::Other || target_holds == Holds::Other {
        return Err(Error::wrong_type());
    }
    if source == target {
        let found =
            get_set(locked.db(db, source)?, source, now)?.is_some_and(|set| set.contains(member));
        ctx.out.int(found as i64);
        return Ok(());
    }
    let part = locked.db(db, source)?;
    let Some(set) = get_set_mut(part, source, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    if !set.remove(member) {
        ctx.out.int(0);
        return Ok(());
    }
    let moved = [member];
    let emptied = set.is_empty();
    if emptied {
        part.remove(source, now);
    } else {
        part.touch_with(source, Effect::SetMembers(Items::all(&moved)));
    }
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    notify_change(pubsub, db, source, "srem", emptied);
    let part = locked.db(db, target)?;
    let added = if let Some(set) = get_set_mut(part, target, now)? {
        let added = set.insert(member);
        if added {
            part.touch_with(target, Effect::SetMembers(Items::all(&moved)));
        }
        added
    } else {
        let set: SetValue = std::iter::once(member).collect();
        part.insert(target, Value::Set(Box::new(set)), None, now);
        true
    };
    if added {
        notify_change(pubsub, db, target, "sadd", false);
    }
    ctx.out.int(1);
    Ok(())
}

/// Checks every key in order (the first that holds another type is a
/// WRONGTYPE error; a missing one is announced) and returns each one's
/// size, `None` for a missing key.
fn source_sizes(
    shared: &Shared,
    locked: &mut LockSet,
    db: usize,
    keys: &[&[u8]],
    now: u64,
) -> Result<Vec<Option<usize>>> {
    keys.iter()
        .map(|key| Ok(read_set(shared, locked.db(db, key)?, db, key, now)?.map(SetValue::len)))
        .collect()
}

/// The intersection of the sets at `keys` (types already checked by
/// [`source_sizes`]), stopping once it has `limit` members (0: no limit):
/// the smallest set's members that all the others hold.
fn intersection(
    locked: &mut LockSet,
    db: usize,
    keys: &[&[u8]],
    sizes: &[Option<usize>],
    now: u64,
    limit: usize,
) -> Result<Vec<Box<[u8]>>> {
    if sizes.iter().any(|size| size.is_none_or(|n| n == 0)) {
        return Ok(Vec::new());
    }
    let Some(smallest) = (0..keys.len()).min_by_key(|&i| sizes[i]) else {
        return Ok(Vec::new());
    };
    let mut others: Vec<usize> = (0..keys.len())
        .filter(|&i| keys[i] != keys[smallest])
        .collect();
    // Smallest first: the candidates shrink fastest. Sorting by key too
    // brings repeated keys together so that each set filters once.
    others.sort_by_key(|&i| (sizes[i], keys[i]));
    others.dedup_by_key(|i| keys[*i]);
    // The smallest set is filtered a chunk at a time (positions are stable
    // while the locks are held), so that memory stays bounded by the result
    // plus one chunk, and a LIMIT stops the work early.
    const CHUNK: usize = 1024;
    let base_len = sizes[smallest].unwrap_or(0);
    let mut result: Vec<Box<[u8]>> = Vec::new();
    let mut start = 0;
    while start < base_len {
        let end = start.saturating_add(CHUNK).min(base_len);
        let Some(base) = get_set(locked.db(db, keys[smallest])?, keys[smallest], now)? else {
            break;
        };
        let mut chunk: Vec<Box<[u8]>> = (start..end)
            .filter_map(|i| base.get_index(i))
            .map(Box::from)
            .collect();
        for &i in &others {
            if chunk.is_empty() {
                break;
            }
            if let Some(set) = get_set(locked.db(db, keys[i])?, keys[i], now)? {
                chunk.retain(|member| set.contains(member));
            } else {
                chunk.clear();
            }
        }
        result.extend(chunk);
        if limit > 0 && result.len() >= limit {
            result.truncate(limit);
            break;
        }
        start = end;
    }
    Ok(result)
}

/// The union of the sets at `keys` (types already checked).
fn union(locked: &mut LockSet, db: usize, keys: &[&[u8]], now: u64) -> Result<SetValue> {
    let mut result = SetValue::new();
    for key in keys {
        if let Some(set) = get_set(locked.db(db, key)?, key, now)? {
            for member in set.iter() {
                result.insert(member);
            }
        }
    }
    Ok(result)
}

/// The members of the first set in none of the others (types already
/// checked). Its encoding is the one Redis 7.0 gives SDIFFSTORE's result,
/// which depends on the algorithm Redis picks from the sizes: the
/// "subtract" algorithm adds the whole first set before removing, so a
/// non-integer there leaves the result a hash table.
fn difference(
    locked: &mut LockSet,
    db: usize,
    keys: &[&[u8]],
    sizes: &[Option<usize>],
    now: u64,
) -> Result<SetValue> {
    let Some(first) = get_set(locked.db(db, keys[0])?, keys[0], now)? else {
        return Ok(SetValue::new());
    };
    let mut result: SetValue = first.iter().collect();
    let first_size = result.len() as u64;
    let (mut filter_work, mut subtract_work) = (0u64, 0u64);
    for size in sizes.iter().flatten() {
        filter_work += first_size;
        subtract_work += *size as u64;
    }
    let redis_filters = filter_work / 2 <= subtract_work;
    for key in &keys[1..] {
        if result.is_empty() {
            break;
        }
        if *key == keys[0] {
            result = SetValue::new();
            break;
        }
        if let Some(set) = get_set(locked.db(db, key)?, key, now)? {
            if set.len() < result.len() {
                for member in set.iter() {
                    result.remove(member);
                }
            } else {
                result.retain(|member| !set.contains(member));
            }
        }
    }
    if redis_filters {
        result.refresh_encoding();
    }
    Ok(result)
}

#[derive(Clone, Copy)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// SINTER, SUNION, SDIFF, and their STORE forms (`destination` given).
fn set_operation(
    ctx: &mut Ctx,
    op: SetOp,
    sources: &[&[u8]],
    destination: Option<&[u8]>,
) -> Result<()> {
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut all_keys: Vec<&[u8]> = sources.to_vec();
    all_keys.extend(destination);
    let mut locked = ctx.locks.keys(&all_keys)?;
    let sizes = source_sizes(shared, &mut locked, db, sources, now)?;
    let result = match op {
        SetOp::Inter => {
            let members = intersection(&mut locked, db, sources, &sizes, now, 0)?;
            if destination.is_none() {
                drop(locked);
                ctx.out.set(members.len());
                for member in &members {
                    ctx.out.bulk(member);
                }
                return Ok(());
            }
            members.iter().map(|m| &**m).collect()
        }
        SetOp::Union => union(&mut locked, db, sources, now)?,
        SetOp::Diff => difference(&mut locked, db, sources, &sizes, now)?,
    };
    match destination {
        Some(destination) => {
            let event = match op {
                SetOp::Inter => "sinterstore",
                SetOp::Union => "sunionstore",
                SetOp::Diff => "sdiffstore",
            };
            let part = locked.db(db, destination)?;
            let len = store_result(pubsub, part, db, destination, result, now, event);
            ctx.out.int(len as i64);
        }
        None => {
            drop(locked);
            ctx.out.set(result.len());
            for member in result.iter() {
                ctx.out.bulk(member);
            }
        }
    }
    Ok(())
}

fn sinter(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_operation(ctx, SetOp::Inter, &argv[1..], None)
}

fn sunion(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_operation(ctx, SetOp::Union, &argv[1..], None)
}

fn sdiff(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_operation(ctx, SetOp::Diff, &argv[1..], None)
}

fn sinterstore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_operation(ctx, SetOp::Inter, &argv[2..], Some(argv[1]))
}

fn sunionstore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_operation(ctx, SetOp::Union, &argv[2..], Some(argv[1]))
}

fn sdiffstore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_operation(ctx, SetOp::Diff, &argv[2..], Some(argv[1]))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let numkeys = strict_i64(argv[1])
        .filter(|&n| n >= 1)
        .ok_or_else(|| Error::err("numkeys should be greater than 0"))?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > argv.len() - 2 {
        return Err(Error::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let mut limit: usize = 0;
    let mut i = 2 + numkeys;
    while i < argv.len() {
        if is_keyword(argv[i], "LIMIT") && i + 1 < argv.len() {
            let n = strict_i64(argv[i + 1])
                .filter(|&n| n >= 0)
                .ok_or_else(|| Error::err("LIMIT can't be negative"))?;
            limit = usize::try_from(n).unwrap_or(usize::MAX);
            i += 2;
        } else {
            return Err(Error::syntax());
        }
    }
    let keys = &argv[2..2 + numkeys];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.keys(keys)?;
    let sizes = source_sizes(shared, &mut locked, db, keys, now)?;
    let members = intersection(&mut locked, db, keys, &sizes, now, limit)?;
    drop(locked);
    ctx.out.int(members.len() as i64);
    Ok(())
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
///
/// Guarantee (Redis's): a member present in the set from the start to the
/// end of a full iteration (from cursor 0 until the returned cursor is 0)
/// is returned at least once; members added or removed meanwhile may or may
/// not be; a member may be returned more than once. See
/// [`SetValue::scan`] for how positions make that hold.
///
/// As in Redis, the cursor is checked first, then the key (a missing key
/// answers an empty scan whatever the options), then the options. COUNT
/// counts visited members and MATCH filters them, so a call may return
/// nothing with a non-zero cursor. Like Redis 7.0 with a small (intset)
/// set, an "intset"-encoded set is returned whole with cursor 0, and a set
/// smaller than COUNT comes back whole in one call.
fn sscan(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let cursor = parse_cursor(argv[2]).ok_or_else(|| Error::err("invalid cursor"))?;
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let Some(set) = read_set(shared, locked.db(db, key)?, db, key, now)? else {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
        return Ok(());
    };
    let ScanOptions { count, pattern, .. } = parse_scan_options(&argv[3..], ScanExtra::None)?;
    let (next, visited) = if set.encoding() == "intset" {
        (0, set.iter().collect())
    } else {
        set.scan(cursor, count)
    };
    let found: Vec<&[u8]> = visited
        .into_iter()
        .filter(|member| pattern.is_none_or(|p| glob_match(p, member, false)))
        .collect();
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.array(found.len());
    for member in found {
        ctx.out.bulk(member);
    }
    Ok(())
}
