//! String and bitmap commands, byte-compatible with Redis 7.0.
//!
//! Every handler validates its arguments before it writes a reply. Values
//! other than strings are WRONGTYPE everywhere (through [`as_str`] and
//! [`as_str_mut`]). Sizes that a client controls (SETRANGE/SETBIT/BITFIELD
//! offsets, APPEND) are checked against `proto-max-bulk-len` before any
//! allocation, as Redis does.

use smallvec::SmallVec;

use super::flags::*;
use super::long_double::LongDouble;
use super::parse::{int_arg, strict_i64};
use super::reads;
use super::{CommandSpec, Ctx, KeySpec, ALL_KEYS, FIRST_KEY};
use crate::error::{Error, Result};
use crate::pubsub::events;
use crate::shared::Shared;
use crate::store::{Db, Value, ValueRef};

const STRING: &[&str] = &["string"];
const BITMAP: &[&str] = &["bitmap"];

/// MSET/MSETNX: every other argument from the first is a key.
const KEY_VALUE_PAIRS: KeySpec = KeySpec::Range {
    first: 1,
    last: -1,
    step: 2,
};
/// LCS: two keys.
const TWO_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: 2,
    step: 1,
};
/// BITOP: the destination and the sources, after the operation name.
const BITOP_KEYS: KeySpec = KeySpec::Range {
    first: 2,
    last: -1,
    step: 1,
};

const GETRANGE_COMPLEXITY: &str = "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.";

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, READONLY | FAST, FIRST_KEY, get)
        .acl(STRING)
        .doc("string", "1.0.0", "Get the value of a key", "O(1)"),
    CommandSpec::new("set", -3, WRITE | DENYOOM, FIRST_KEY, set)
        .acl(STRING)
        .doc("string", "1.0.0", "Set the string value of a key", "O(1)"),
    CommandSpec::new("setnx", 3, WRITE | DENYOOM | FAST, FIRST_KEY, setnx)
        .acl(STRING)
        .doc(
            "string",
            "1.0.0",
            "Set the value of a key, only if the key does not exist",
            "O(1)",
        ),
    CommandSpec::new("setex", 4, WRITE | DENYOOM, FIRST_KEY, setex)
        .acl(STRING)
        .doc(
            "string",
            "2.0.0",
            "Set the value and expiration of a key",
            "O(1)",
        ),
    CommandSpec::new("psetex", 4, WRITE | DENYOOM, FIRST_KEY, psetex)
        .acl(STRING)
        .doc(
            "string",
            "2.6.0",
            "Set the value and expiration in milliseconds of a key",
            "O(1)",
        ),
    CommandSpec::new("getex", -2, WRITE | FAST, FIRST_KEY, getex)
        .acl(STRING)
        .doc(
            "string",
            "6.2.0",
            "Get the value of a key and optionally set its expiration",
            "O(1)",
        ),
    CommandSpec::new("getdel", 2, WRITE | FAST, FIRST_KEY, getdel)
        .acl(STRING)
        .doc(
            "string",
            "6.2.0",
            "Get the value of a key and delete the key",
            "O(1)",
        ),
    CommandSpec::new("getset", 3, WRITE | DENYOOM | FAST, FIRST_KEY, getset)
        .acl(STRING)
        .doc(
            "string",
            "1.0.0",
            "Set the string value of a key and return its old value",
            "O(1)",
        ),
    CommandSpec::new("mget", -2, READONLY | FAST, ALL_KEYS, mget)
        .acl(STRING)
        .doc(
            "string",
            "1.0.0",
            "Get the values of all the given keys",
            "O(N) where N is the number of keys to retrieve.",
        ),
    CommandSpec::new("mset", -3, WRITE | DENYOOM, KEY_VALUE_PAIRS, mset)
        .acl(STRING)
        .doc(
            "string",
            "1.0.1",
            "Set multiple keys to multiple values",
            "O(N) where N is the number of keys to set.",
        ),
    CommandSpec::new("msetnx", -3, WRITE | DENYOOM, KEY_VALUE_PAIRS, msetnx)
        .acl(STRING)
        .doc(
            "string",
            "1.0.1",
            "Set multiple keys to multiple values, only if none of the keys exist",
            "O(N) where N is the number of keys to set.",
        ),
    CommandSpec::new("incr", 2, WRITE | DENYOOM | FAST, FIRST_KEY, incr)
        .acl(STRING)
        .doc(
            "string",
            "1.0.0",
            "Increment the integer value of a key by one",
            "O(1)",
        ),
    CommandSpec::new("decr", 2, WRITE | DENYOOM | FAST, FIRST_KEY, decr)
        .acl(STRING)
        .doc(
            "string",
            "1.0.0",
            "Decrement the integer value of a key by one",
            "O(1)",
        ),
    CommandSpec::new("incrby", 3, WRITE | DENYOOM | FAST, FIRST_KEY, incrby)
        .acl(STRING)
        .doc(
            "string",
            "1.0.0",
            "Increment the integer value of a key by the given amount",
            "O(1)",
        ),
    CommandSpec::new("decrby", 3, WRITE | DENYOOM | FAST, FIRST_KEY, decrby)
        .acl(STRING)
        .doc(
            "string",
            "1.0.0",
            "Decrement the integer value of a key by the given number",
            "O(1)",
        ),
    CommandSpec::new(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        FIRST_KEY,
        incrbyfloat,
    )
    .acl(STRING)
    .doc(
        "string",
        "2.6.0",
        "Increment the float value of a key by the given amount",
        "O(1)",
    ),
    CommandSpec::new("append", 3, WRITE | DENYOOM | FAST, FIRST_KEY, append)
        .acl(STRING)
        .doc(
            "string",
            "2.0.0",
            "Append a value to a key",
            "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.",
        ),
    CommandSpec::new("strlen", 2, READONLY | FAST, FIRST_KEY, strlen)
        .acl(STRING)
        .doc(
            "string",
            "2.2.0",
            "Get the length of the value stored in a key",
            "O(1)",
        ),
    CommandSpec::new("getrange", 4, READONLY, FIRST_KEY, getrange)
        .acl(STRING)
        .doc(
            "string",
            "2.4.0",
            "Get a substring of the string stored at a key",
            GETRANGE_COMPLEXITY,
        ),
    CommandSpec::new("substr", 4, READONLY, FIRST_KEY, getrange)
        .acl(STRING)
        .doc(
            "string",
            "1.0.0",
            "Get a substring of the string stored at a key",
            GETRANGE_COMPLEXITY,
        ),
    CommandSpec::new("setrange", 4, WRITE | DENYOOM, FIRST_KEY, setrange)
        .acl(STRING)
        .doc(
            "string",
            "2.2.0",
            "Overwrite part of a string at key starting at the specified offset",
            "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.",
        ),
    CommandSpec::new("lcs", -3, READONLY, TWO_KEYS, lcs)
        .acl(STRING)
        .doc(
            "string",
            "7.0.0",
            "Find longest common substring",
            "O(N*M) where N and M are the lengths of s1 and s2, respectively",
        ),
    CommandSpec::new("setbit", 4, WRITE | DENYOOM, FIRST_KEY, setbit)
        .acl(BITMAP)
        .doc(
            "bitmap",
            "2.2.0",
            "Sets or clears the bit at offset in the string value stored at key",
            "O(1)",
        ),
    CommandSpec::new("getbit", 3, READONLY | FAST, FIRST_KEY, getbit)
        .acl(BITMAP)
        .doc(
            "bitmap",
            "2.2.0",
            "Returns the bit value at offset in the string value stored at key",
            "O(1)",
        ),
    CommandSpec::new("bitcount", -2, READONLY, FIRST_KEY, bitcount)
        .acl(BITMAP)
        .doc("bitmap", "2.6.0", "Count set bits in a string", "O(N)"),
    CommandSpec::new("bitpos", -3, READONLY, FIRST_KEY, bitpos)
        .acl(BITMAP)
        .doc(
            "bitmap",
            "2.8.7",
            "Find first bit set or clear in a string",
            "O(N)",
        ),
    CommandSpec::new("bitop", -4, WRITE | DENYOOM, BITOP_KEYS, bitop)
        .acl(BITMAP)
        .doc(
            "bitmap",
            "2.6.0",
            "Perform bitwise operations between strings",
            "O(N)",
        ),
    CommandSpec::new("bitfield", -2, WRITE | DENYOOM, FIRST_KEY, bitfield)
        .acl(BITMAP)
        .doc(
            "bitmap",
            "3.2.0",
            "Perform arbitrary bitfield integer operations on strings",
            "O(1) for each subcommand specified",
        ),
    CommandSpec::new("bitfield_ro", -2, READONLY | FAST, FIRST_KEY, bitfield_ro)
        .acl(BITMAP)
        .doc(
            "bitmap",
            "6.0.0",
            "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD",
            "O(1) for each subcommand specified",
        ),
];

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// A value as a string, or WRONGTYPE.
#[allow(unreachable_patterns)]
fn as_str(value: ValueRef<'_>) -> Result<&[u8]> {
    value.as_str().ok_or_else(Error::wrong_type)
}

/// A value as a mutable string, or WRONGTYPE.
#[allow(unreachable_patterns)]
fn as_str_mut(value: &mut Value) -> Result<&mut Vec<u8>> {
    match value {
        Value::Str(s) => Ok(s),
        _ => Err(Error::wrong_type()),
    }
}

/// The string at `key`: `None` if there is no live key, WRONGTYPE if it holds
/// another type.
fn read_string<'d>(db: &'d Db, key: &[u8], now: u64) -> Result<Option<&'d [u8]>> {
    match db.get(key, now) {
        None => Ok(None),
        Some(entry) => as_str(entry.value()).map(Some),
    }
}

/// The string at `key` for in-place change (the caller touches the key).
fn write_string<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d mut Vec<u8>>> {
    match db.value_mut(key, now) {
        None => Ok(None),
        Some(value) => as_str_mut(value).map(Some),
    }
}

/// Compares an option with a keyword the way Redis's `strcasecmp` on the
/// argument's C string does (the argument ends at its first NUL byte).
fn keyword(arg: &[u8], word: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(word.as_bytes())
}

/// The argument up to its first NUL byte, as C string functions see it.
fn c_str(arg: &[u8]) -> &[u8] {
    match arg.iter().position(|&b| b == 0) {
        Some(end) => &arg[..end],
        None => arg,
    }
}

/// `proto-max-bulk-len`, read before any shard lock is taken.
fn max_bulk_len(ctx: &Ctx) -> u64 {
    ctx.shared.config.read().proto_max_bulk_len
}

fn string_too_long() -> Error {
    Error::err("string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// Redis's `checkStringLength`: `size + append` must stay within the limit.
fn check_string_length(size: u64, append: u64, max: u64) -> Result<()> {
    match size.checked_add(append) {
        Some(total) if total <= max && total <= i64::MAX as u64 => Ok(()),
        _ => Err(string_too_long()),
    }
}

/// Grows `s` with zero bytes to `len` bytes (never shrinks), refusing
/// cleanly if the memory cannot be had.
fn grow_zeroed(s: &mut Vec<u8>, len: usize) -> Result<()> {
    if len > s.len() {
        s.try_reserve_exact(len - s.len())
            .map_err(|_| Error::raw("OOM command not allowed when used memory > 'maxmemory'."))?;
        s.resize(len, 0);
    }
    Ok(())
}

/// A zero-filled buffer of `len` bytes, refusing cleanly if it cannot be had.
fn zeroed(len: usize) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    grow_zeroed(&mut v, len)?;
    Ok(v)
}

/// [`read_string`] for a read command: a miss is announced.
fn read_string_noted<'d>(
    shared: &Shared,
    db: &'d Db,
    dbi: usize,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d [u8]>> {
    reads::counted(shared, dbi, key, read_string(db, key, now))
}

// ---------------------------------------------------------------------------
// GET, SET and friends
// ---------------------------------------------------------------------------

fn get(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    match read_string_noted(shared, locked.db(dbi, key)?, dbi, key, now)? {
        None => ctx.out.null(),
        Some(s) => ctx.out.bulk(s),
    }
    Ok(())
}

const OPT_NX: u32 = 1 << 0;
const OPT_XX: u32 = 1 << 1;
const OPT_EX: u32 = 1 << 2;
const OPT_PX: u32 = 1 << 3;
const OPT_KEEPTTL: u32 = 1 << 4;
const OPT_GET: u32 = 1 << 5;
const OPT_EXAT: u32 = 1 << 6;
const OPT_PXAT: u32 = 1 << 7;
const OPT_PERSIST: u32 = 1 << 8;
const ANY_EXPIRE: u32 = OPT_EX | OPT_PX | OPT_EXAT | OPT_PXAT;

/// Options of SET (`for_set`) or GETEX, accepted exactly as Redis 7.0's
/// `parseExtendedStringArgumentsOrReply` accepts them: one kind of expiry
/// (repeating the same one is allowed, the last wins), NX excludes XX,
/// KEEPTTL/PERSIST exclude any expiry.
struct ExtendedArgs<'a> {
    flags: u32,
    expire: Option<&'a [u8]>,
}

fn parse_extended<'a>(argv: &[&'a [u8]], for_set: bool) -> Result<ExtendedArgs<'a>> {
    let mut flags = 0;
    let mut expire = None;
    let mut j = if for_set { 3 } else { 2 };
    while j < argv.len() {
        let opt = argv[j];
        let next = argv.get(j + 1).copied();
        let none_of = |flags: u32, mask: u32| flags & mask == 0;
        // Each expiry option and the options it cannot be combined with.
        let expiry = [
            ("ex", OPT_EX, OPT_EXAT | OPT_PX | OPT_PXAT),
            ("px", OPT_PX, OPT_EX | OPT_EXAT | OPT_PXAT),
            ("exat", OPT_EXAT, OPT_EX | OPT_PX | OPT_PXAT),
            ("pxat", OPT_PXAT, OPT_EX | OPT_EXAT | OPT_PX),
        ]
        .into_iter()
        .find(|(word, _, excluded)| {
            keyword(opt, word)
                && none_of(flags, excluded | OPT_KEEPTTL | OPT_PERSIST)
                && next.is_some()
        });
        if keyword(opt, "nx") && none_of(flags, OPT_XX) && for_set {
            flags |= OPT_NX;
        } else if keyword(opt, "xx") && none_of(flags, OPT_NX) && for_set {
            flags |= OPT_XX;
        } else if keyword(opt, "get") && for_set {
            flags |= OPT_GET;
        } else if keyword(opt, "keepttl") && none_of(flags, OPT_PERSIST | ANY_EXPIRE) && for_set {
            flags |= OPT_KEEPTTL;
        } else if keyword(opt, "persist") && !for_set && none_of(flags, OPT_KEEPTTL | ANY_EXPIRE) {
            flags |= OPT_PERSIST;
        } else if let Some((_, flag, _)) = expiry {
            flags |= flag;
            expire = next;
            j += 1;
        } else {
            return Err(Error::syntax());
        }
        j += 1;
    }
    Ok(ExtendedArgs { flags, expire })
}

/// The absolute expiry time (Unix ms) an EX/PX/EXAT/PXAT argument names, with
/// Redis's checks: positive, and no overflow converting or adding "now".
fn expire_at(arg: &[u8], flags: u32, now: u64, command: &str) -> Result<u64> {
    let mut ms = int_arg(arg)?;
    let seconds = flags & (OPT_EX | OPT_EXAT) != 0;
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(Error::invalid_expire(command));
    }
    if seconds {
        ms *= 1000;
    }
    if flags & (OPT_EX | OPT_PX) != 0 {
        ms = ms
            .checked_add(now as i64)
            .ok_or_else(|| Error::invalid_expire(command))?;
    }
    if ms <= 0 {
        return Err(Error::invalid_expire(command));
    }
    Ok(ms as u64)
}

/// What a SET-family command replies when it did (not) set.
#[derive(Clone, Copy)]
enum SetReply {
    /// SET: `+OK`, or null when NX/XX stopped it.
    Ok,
    /// SETNX: `:1` or `:0`.
    Int,
}

/// Redis's `setGenericCommand`.
fn set_generic(
    ctx: &mut Ctx,
    key: &[u8],
    value: &[u8],
    flags: u32,
    expire: Option<&[u8]>,
    reply: SetReply,
    command: &str,
) -> Result<()> {
    let now = ctx.now_ms;
    let at = match expire {
        Some(arg) => Some(expire_at(arg, flags, now, command)?),
        None => None,
    };
    let dbi = ctx.db();
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let with_get = flags & OPT_GET != 0;
    let (found, old_expiry) = match db.get(key, now) {
        None => {
            if with_get {
                reads::miss(shared, dbi, key);
                ctx.out.null();
            }
            (false, None)
        }
        Some(entry) => {
            if with_get {
                reads::hit(shared);
                ctx.out.bulk(as_str(entry.value())?);
            }
            (true, entry.expires_at())
        }
    };
    if (flags & OPT_NX != 0 && found) || (flags & OPT_XX != 0 && !found) {
        if !with_get {
            match reply {
                SetReply::Ok => ctx.out.null(),
                SetReply::Int => ctx.out.int(0),
            }
        }
        return Ok(());
    }
    let expires_at = if at.is_some() {
        at
    } else if flags & OPT_KEEPTTL != 0 {
        old_expiry
    } else {
        None
    };
    db.insert_str(key, value, expires_at, now);
    pubsub.notify(events::STRING, "set", key, dbi);
    if at.is_some() {
        pubsub.notify(events::GENERIC, "expire", key, dbi);
    }
    if !with_get {
        match reply {
            SetReply::Ok => ctx.out.ok(),
            SetReply::Int => ctx.out.int(1),
        }
    }
    Ok(())
}

fn set(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let args = parse_extended(argv, true)?;
    set_generic(
        ctx,
        argv[1],
        argv[2],
        args.flags,
        args.expire,
        SetReply::Ok,
        "set",
    )
}

fn setnx(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_generic(ctx, argv[1], argv[2], OPT_NX, None, SetReply::Int, "setnx")
}

fn setex(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_generic(
        ctx,
        argv[1],
        argv[3],
        OPT_EX,
        Some(argv[2]),
        SetReply::Ok,
        "setex",
    )
}

fn psetex(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_generic(
        ctx,
        argv[1],
        argv[3],
        OPT_PX,
        Some(argv[2]),
        SetReply::Ok,
        "psetex",
    )
}

fn getex(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let args = parse_extended(argv, false)?;
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let had_expiry = match db.get(key, now) {
        None => {
            reads::miss(shared, dbi, key);
            ctx.out.null();
            return Ok(());
        }
        Some(entry) => {
            reads::hit(shared);
            as_str(entry.value())?;
            entry.expires_at().is_some()
        }
    };
    // Redis validates the expiry only once it knows the key is a string.
    let at = match args.expire {
        Some(arg) => Some(expire_at(arg, args.flags, now, "getex")?),
        None => None,
    };
    if let Some(value) = read_string(db, key, now)? {
        ctx.out.bulk(value);
    }
    match at {
        Some(at) if args.flags & (OPT_EXAT | OPT_PXAT) != 0 && at <= now => {
            db.remove(key, now);
            pubsub.notify(events::GENERIC, "del", key, dbi);
        }
        Some(at) => {
            db.set_expiry(key, Some(at), now);
            pubsub.notify(events::GENERIC, "expire", key, dbi);
        }
        None if args.flags & OPT_PERSIST != 0 && had_expiry => {
            db.set_expiry(key, None, now);
            pubsub.notify(events::GENERIC, "persist", key, dbi);
        }
        None => {}
    }
    Ok(())
}

fn getdel(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    match read_string_noted(shared, db, dbi, key, now)? {
        None => ctx.out.null(),
        Some(value) => {
            ctx.out.bulk(value);
            db.remove(key, now);
            pubsub.notify(events::GENERIC, "del", key, dbi);
        }
    }
    Ok(())
}

fn getset(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    match read_string_noted(shared, db, dbi, key, now)? {
        None => ctx.out.null(),
        Some(old) => ctx.out.bulk(old),
    }
    db.insert_str(key, argv[2], None, now);
    pubsub.notify(events::STRING, "set", key, dbi);
    Ok(())
}

fn mget(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let keys = &argv[1..];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_keys(keys)?;
    ctx.out.array(keys.len());
    for key in keys {
        match locked.db(dbi, key)?.get(key, now) {
            Some(entry) => {
                reads::hit(shared);
                match as_str(entry.value()) {
                    Ok(s) => ctx.out.bulk(s),
                    Err(_) => ctx.out.null(),
                }
            }
            None => {
                reads::miss(shared, dbi, key);
                ctx.out.null();
            }
        }
    }
    Ok(())
}

fn mset_generic(ctx: &mut Ctx, argv: &[&[u8]], nx: bool) -> Result<()> {
    if argv.len().is_multiple_of(2) {
        return Err(Error::wrong_arity(if nx { "msetnx" } else { "mset" }));
    }
    let keys: SmallVec<[&[u8]; 8]> = argv[1..].iter().step_by(2).copied().collect();
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.keys(&keys)?;
    if nx {
        for key in &keys {
            if locked.db(dbi, key)?.contains(key, now) {
                ctx.out.int(0);
                return Ok(());
            }
        }
    }
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    for pair in argv[1..].chunks_exact(2) {
        locked
            .db(dbi, pair[0])?
            .insert_str(pair[0], pair[1], None, now);
        pubsub.notify(events::STRING, "set", pair[0], dbi);
    }
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

fn mset(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    mset_generic(ctx, argv, false)
}

fn msetnx(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    mset_generic(ctx, argv, true)
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

fn incr_decr(ctx: &mut Ctx, key: &[u8], delta: i64) -> Result<()> {
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let value = crate::store::ops::incr_by(locked.db(dbi, key)?, key, delta, now)?;
    ctx.shared.pubsub.notify(events::STRING, "incrby", key, dbi);
    ctx.out.int(value);
    Ok(())
}

fn incr(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    incr_decr(ctx, argv[1], 1)
}

fn decr(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    incr_decr(ctx, argv[1], -1)
}

fn incrby(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let delta = int_arg(argv[2])?;
    incr_decr(ctx, argv[1], delta)
}

fn decrby(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let delta = int_arg(argv[2])?;
    if delta == i64::MIN {
        return Err(Error::err("decrement would overflow"));
    }
    incr_decr(ctx, argv[1], -delta)
}

fn incrbyfloat(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let text = db.update_str(key, now, |current, text| {
        let current = match current {
            None => LongDouble::ZERO,
            Some(s) => LongDouble::parse(s).ok_or_else(Error::not_float)?,
        };
        let increment = LongDouble::parse(argv[2]).ok_or_else(Error::not_float)?;
        let sum = current.add(increment);
        if sum.is_infinite() {
            return Err(Error::err("increment would produce NaN or Infinity"));
        }
        let human = sum.to_human_string();
        text.extend_from_slice(&human);
        Ok(human)
    })?;
    ctx.out.bulk(&text);
    ctx.shared
        .pubsub
        .notify(events::STRING, "incrbyfloat", key, dbi);
    Ok(())
}

// ---------------------------------------------------------------------------
// APPEND, STRLEN, GETRANGE, SETRANGE
// ---------------------------------------------------------------------------

fn append(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, tail) = (argv[1], argv[2]);
    let max = max_bulk_len(ctx);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let total = match write_string(db, key, now)? {
        None => {
            db.insert_str(key, tail, None, now);
            tail.len()
        }
        Some(s) => {
            check_string_length(s.len() as u64, tail.len() as u64, max)?;
            s.try_reserve(tail.len()).map_err(|_| {
                Error::raw("OOM command not allowed when used memory > 'maxmemory'.")
            })?;
            s.extend_from_slice(tail);
            let total = s.len();
            db.touch(key);
            total
        }
    };
    ctx.shared.pubsub.notify(events::STRING, "append", key, dbi);
    ctx.out.int(total as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let len =
        read_string_noted(shared, locked.db(dbi, key)?, dbi, key, now)?.map_or(0, <[u8]>::len);
    ctx.out.int(len as i64);
    Ok(())
}

/// GETRANGE and SUBSTR, with Redis 7.0's index rules.
fn getrange(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let start = int_arg(argv[2])?;
    let end = int_arg(argv[3])?;
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let Some(s) = read_string_noted(shared, locked.db(dbi, key)?, dbi, key, now)? else {
        ctx.out.bulk(b"");
        return Ok(());
    };
    if start < 0 && end < 0 && start > end {
        ctx.out.bulk(b"");
        return Ok(());
    }
    let len = s.len() as i128;
    let (mut start, mut end) = (start as i128, end as i128);
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        ctx.out.bulk(b"");
    } else {
        ctx.out.bulk(&s[start as usize..=end as usize]);
    }
    Ok(())
}

fn setrange(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, value) = (argv[1], argv[3]);
    let offset = int_arg(argv[2])?;
    if offset < 0 {
        return Err(Error::err("offset is out of range"));
    }
    let max = max_bulk_len(ctx);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let offset = offset as u64;
    if value.is_empty() {
        // Nothing to write: Redis answers the length and leaves the string
        // as it was (its encoding too).
        let len = read_string(db, key, now)?.map_or(0, <[u8]>::len);
        ctx.out.int(len as i64);
        return Ok(());
    }
    let len = match write_string(db, key, now)? {
        None => {
            check_string_length(offset, value.len() as u64, max)?;
            let offset = offset as usize;
            let mut s = zeroed(offset + value.len())?;
            s[offset..].copy_from_slice(value);
            let len = s.len();
            // Raw, as Redis's createObject makes it.
            db.insert_raw_str(key, s, None, now);
            len
        }
        Some(s) => {
            check_string_length(offset, value.len() as u64, max)?;
            let offset = offset as usize;
            grow_zeroed(s, offset + value.len())?;
            s[offset..offset + value.len()].copy_from_slice(value);
            let len = s.len();
            db.touch(key);
            len
        }
    };
    ctx.shared
        .pubsub
        .notify(events::STRING, "setrange", key, dbi);
    ctx.out.int(len as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// LCS
// ---------------------------------------------------------------------------

fn lcs(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let max = max_bulk_len(ctx);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    // Copy both strings out so the O(N*M) work runs without any shard lock.
    let shared = ctx.shared;
    let (a, b) = {
        let mut locked = ctx.locks.keys(&argv[1..3])?;
        let mut fetch = |key: &[u8]| -> Result<Vec<u8>> {
            match locked.db(dbi, key)?.get(key, now) {
                None => {
                    reads::miss(shared, dbi, key);
                    Ok(Vec::new())
                }
                Some(entry) => {
                    reads::hit(shared);
                    as_str(entry.value())
                }
                .map(<[u8]>::to_vec)
                .map_err(|_| Error::err("The specified keys must contain string values")),
            }
        };
        let a = fetch(argv[1]);
        let b = fetch(argv[2]);
        (a?, b?)
    };
    let (mut get_len, mut get_idx, mut with_match_len) = (false, false, false);
    let mut min_match_len: i64 = 0;
    let mut j = 3;
    while j < argv.len() {
        let opt = argv[j];
        let more = argv.len() - 1 - j;
        if keyword(opt, "idx") {
            get_idx = true;
        } else if keyword(opt, "len") {
            get_len = true;
        } else if keyword(opt, "withmatchlen") {
            with_match_len = true;
        } else if keyword(opt, "minmatchlen") && more > 0 {
            min_match_len = int_arg(argv[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(Error::syntax());
        }
        j += 1;
    }
    if get_len && get_idx {
        return Err(Error::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
        return Err(Error::err("String too long for LCS"));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u128 + 1) * (blen as u128 + 1);
    let bytes = cells * 4;
    if bytes >= usize::MAX as u128 {
        return Err(Error::err(
            "Insufficient memory, failed allocating transient memory for LCS",
        ));
    }
    if bytes > max as u128 {
        return Err(Error::err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let mut table: Vec<u32> = Vec::new();
    table.try_reserve_exact(cells as usize).map_err(|_| {
        Error::err("Insufficient memory, failed allocating transient memory for LCS")
    })?;
    table.resize(cells as usize, 0);
    let width = blen + 1;
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[alen * width + blen];
    if get_len && !get_idx {
        ctx.out.int(total as i64);
        return Ok(());
    }

    // Walk back from the end, collecting the common string and the matching
    // ranges (emitted in that backward order, as Redis does).
    let mut result = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut ranges: Vec<[usize; 5]> = Vec::new();
    let (mut i, mut j) = (alen, blen);
    let mut a_start = alen; // alen means "no range open"
    let (mut a_end, mut b_start, mut b_end) = (0, 0, 0);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == alen {
                a_start = i - 1;
                a_end = i - 1;
                b_start = j - 1;
                b_end = j - 1;
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        if emit {
            let match_len = a_end - a_start + 1;
            if min_match_len == 0 || match_len as i64 >= min_match_len {
                ranges.push([a_start, a_end, b_start, b_end, match_len]);
            }
            a_start = alen;
        }
    }
    if !get_idx {
        ctx.out.bulk(&result);
        return Ok(());
    }
    ctx.out.map(2);
    ctx.out.bulk(b"matches");
    ctx.out.array(ranges.len());
    for [a_start, a_end, b_start, b_end, match_len] in ranges {
        ctx.out.array(if with_match_len { 3 } else { 2 });
        ctx.out.array(2);
        ctx.out.int(a_start as i64);
        ctx.out.int(a_end as i64);
        ctx.out.array(2);
        ctx.out.int(b_start as i64);
        ctx.out.int(b_end as i64);
        if with_match_len {
            ctx.out.int(match_len as i64);
        }
    }
    ctx.out.bulk(b"len");
    ctx.out.int(total as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// Bitmaps
// ---------------------------------------------------------------------------

fn bit_offset_error() -> Error {
    Error::err("bit offset is not an integer or out of range")
}

/// Redis's `getBitOffsetFromArgument`: a non-negative bit offset whose byte
/// stays below `proto-max-bulk-len`; with `hash_bits`, `#N` means N times
/// that width.
fn bit_offset(arg: &[u8], hash_bits: Option<u32>, max: u64) -> Result<u64> {
    let (digits, multiplier) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], Some(bits)),
        _ => (arg, None),
    };
    let mut offset = strict_i64(digits).ok_or_else(bit_offset_error)?;
    if let Some(bits) = multiplier {
        // Redis multiplies without an overflow check; wrapping keeps the
        // same answer without undefined behaviour.
        offset = offset.wrapping_mul(bits as i64);
    }
    if offset < 0 || (offset >> 3) as u64 >= max {
        return Err(bit_offset_error());
    }
    Ok(offset as u64)
}

fn setbit(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let max = max_bulk_len(ctx);
    let offset = bit_offset(argv[2], None, max)?;
    let on = strict_i64(argv[3])
        .filter(|v| v & !1 == 0)
        .ok_or_else(|| Error::err("bit is not an integer or out of range"))?;
    let byte = (offset >> 3) as usize;
    let mask = 1u8 << (7 - (offset & 7));
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    // Whether the string was created, grew, or the bit changed: only then
    // does Redis announce the change.
    let (old, changed) = match write_string(db, key, now)? {
        Some(s) => {
            let grew = s.len() <= byte;
            grow_zeroed(s, byte + 1)?;
            let old = s[byte] & mask != 0;
            if on == 1 {
                s[byte] |= mask;
            } else {
                s[byte] &= !mask;
            }
            db.touch(key);
            (old, grew || old != (on == 1))
        }
        None => {
            let mut s = zeroed(byte + 1)?;
            if on == 1 {
                s[byte] |= mask;
            }
            db.insert_raw_str(key, s, None, now);
            (false, true)
        }
    };
    if changed {
        ctx.shared.pubsub.notify(events::STRING, "setbit", key, dbi);
    }
    ctx.out.int(old as i64);
    Ok(())
}

fn getbit(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let max = max_bulk_len(ctx);
    let offset = bit_offset(argv[2], None, max)?;
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let bit = match read_string_noted(shared, locked.db(dbi, key)?, dbi, key, now)? {
        None => false,
        Some(s) => {
            let byte = offset >> 3;
            byte < s.len() as u64 && s[byte as usize] & (1 << (7 - (offset & 7))) != 0
        }
    };
    ctx.out.int(bit as i64);
    Ok(())
}

/// Resolves a Redis range `[start, end]` (negative counts from the end) over
/// `total` units; `None` if it is empty.
fn clamp_range(start: i64, end: i64, total: i64) -> Option<(i64, i64)> {
    let (mut start, mut end) = (start as i128, end as i128);
    let total = total as i128;
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        None
    } else {
        Some((start as i64, end as i64))
    }
}

/// BIT or BYTE, as BITCOUNT and BITPOS take it; `None` for anything else.
fn bit_unit(arg: &[u8]) -> Option<bool> {
    if keyword(arg, "bit") {
        Some(true)
    } else if keyword(arg, "byte") {
        Some(false)
    } else {
        None
    }
}

/// The bit at position `index` (0 = most significant bit of the first byte).
fn bit_at(s: &[u8], index: u64) -> bool {
    s[(index >> 3) as usize] & (0x80 >> (index & 7)) != 0
}

/// Number of set bits among bit positions `first..=last` of `s`.
fn count_bits(s: &[u8], first: u64, last: u64) -> u64 {
    let (first_byte, last_byte) = ((first >> 3) as usize, (last >> 3) as usize);
    let mut count: u64 = s[first_byte..=last_byte]
        .iter()
        .map(|b| b.count_ones() as u64)
        .sum();
    let head = (s[first_byte] & !(0xFFu8 >> (first & 7))).count_ones();
    let tail = (s[last_byte] & (0x7Fu8 >> (last & 7))).count_ones();
    count -= (head + tail) as u64;
    count
}

/// BITCOUNT with Redis 7.0's order of checks: a missing key counts 0 before
/// any argument is looked at.
fn bitcount(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let Some(s) = read_string_noted(shared, locked.db(dbi, key)?, dbi, key, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let len = s.len() as i64;
    let range = match argv.len() {
        2 => (len > 0).then(|| (0, len as u64 * 8 - 1)),
        4 | 5 => {
            let start = int_arg(argv[2])?;
            let end = int_arg(argv[3])?;
            if start < 0 && end < 0 && start > end {
                ctx.out.int(0);
                return Ok(());
            }
            let is_bit = match argv.get(4) {
                Some(unit) => bit_unit(unit).ok_or_else(Error::syntax)?,
                None => false,
            };
            if is_bit {
                clamp_range(start, end, len.saturating_mul(8)).map(|(a, b)| (a as u64, b as u64))
            } else {
                clamp_range(start, end, len).map(|(a, b)| (a as u64 * 8, b as u64 * 8 + 7))
            }
        }
        _ => return Err(Error::syntax()),
    };
    let count = range.map_or(0, |(first, last)| count_bits(s, first, last));
    ctx.out.int(count as i64);
    Ok(())
}

/// BITPOS with Redis 7.0's rules: a missing key is all zeros; a clear bit
/// past the end of the string is found only when no end was given.
fn bitpos(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let bit = int_arg(argv[2])?;
    if bit != 0 && bit != 1 {
        return Err(Error::err("The bit argument must be 1 or 0."));
    }
    let want = bit == 1;
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let Some(s) = read_string_noted(shared, locked.db(dbi, key)?, dbi, key, now)? else {
        ctx.out.int(if want { -1 } else { 0 });
        return Ok(());
    };
    let len = s.len() as i64;
    let (range, end_given) = match argv.len() {
        3 => ((len > 0).then(|| (0, len as u64 * 8 - 1)), false),
        4..=6 => {
            let start = int_arg(argv[3])?;
            let is_bit = match argv.get(5) {
                Some(unit) => bit_unit(unit).ok_or_else(Error::syntax)?,
                None => false,
            };
            let end = match argv.get(4) {
                Some(arg) => Some(int_arg(arg)?),
                None => None,
            };
            let range = if is_bit {
                clamp_range(start, end.unwrap_or(i64::MAX), len.saturating_mul(8))
                    .map(|(a, b)| (a as u64, b as u64))
            } else {
                clamp_range(start, end.unwrap_or(len - 1), len)
                    .map(|(a, b)| (a as u64 * 8, b as u64 * 8 + 7))
            };
            (range, end.is_some())
        }
        _ => return Err(Error::syntax()),
    };
    let Some((first, last)) = range else {
        ctx.out.int(-1);
        return Ok(());
    };
    let found = find_bit(s, first, last, want);
    let pos = match found {
        Some(pos) => pos as i64,
        None if want || end_given => -1,
        None => last as i64 + 1,
    };
    ctx.out.int(pos);
    Ok(())
}

/// The first bit equal to `want` among positions `first..=last`.
fn find_bit(s: &[u8], first: u64, last: u64, want: bool) -> Option<u64> {
    let skip = if want { 0x00 } else { 0xFF };
    let mut pos = first;
    while pos <= last {
        if pos & 7 == 0 {
            // Skip whole bytes that cannot hold the bit, a slice at a time.
            let from = (pos >> 3) as usize;
            let whole = ((last + 1) >> 3) as usize;
            if from < whole {
                let skipped = s[from..whole]
                    .iter()
                    .position(|&b| b != skip)
                    .unwrap_or(whole - from);
                pos += skipped as u64 * 8;
                if pos > last {
                    break;
                }
            }
        }
        if bit_at(s, pos) == want {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

#[derive(Clone, Copy, PartialEq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

fn bitop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let name = argv[1];
    let op = if keyword(name, "and") {
        BitOp::And
    } else if keyword(name, "or") {
        BitOp::Or
    } else if keyword(name, "xor") {
        BitOp::Xor
    } else if keyword(name, "not") {
        BitOp::Not
    } else {
        return Err(Error::syntax());
    };
    if op == BitOp::Not && argv.len() != 4 {
        return Err(Error::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let dest = argv[2];
    let sources = &argv[3..];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.keys(&argv[2..])?;
    let mut lengths: SmallVec<[usize; 8]> = SmallVec::new();
    for key in sources {
        let source = read_string_noted(shared, locked.db(dbi, key)?, dbi, key, now)?;
        lengths.push(source.map_or(0, <[u8]>::len));
    }
    let max_len = lengths.iter().copied().max().unwrap_or(0);
    let mut result = zeroed(max_len)?;
    for (index, key) in sources.iter().enumerate() {
        let src: &[u8] = match read_string(locked.db(dbi, key)?, key, now)? {
            Some(s) => s,
            None => &[],
        };
        if index == 0 {
            result[..src.len()].copy_from_slice(src);
            if op == BitOp::Not {
                result.iter_mut().for_each(|b| *b = !*b);
            }
            continue;
        }
        match op {
            BitOp::And => {
                for (r, s) in result.iter_mut().zip(src) {
                    *r &= s;
                }
                result[src.len()..].iter_mut().for_each(|b| *b = 0);
            }
            BitOp::Or => {
                for (r, s) in result.iter_mut().zip(src) {
                    *r |= s;
                }
            }
            BitOp::Xor => {
                for (r, s) in result.iter_mut().zip(src) {
                    *r ^= s;
                }
            }
            BitOp::Not => {}
        }
    }
    let db = locked.db(dbi, dest)?;
    if max_len > 0 {
        // Raw, as Redis's createObject makes it.
        db.insert_raw_str(dest, result, None, now);
        pubsub.notify(events::STRING, "set", dest, dbi);
    } else if db.remove(dest, now).is_some() {
        pubsub.notify(events::GENERIC, "del", dest, dbi);
    }
    ctx.out.int(max_len as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// BITFIELD
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set,
    IncrBy,
}

#[derive(Clone, Copy)]
struct FieldCommand {
    op: FieldOp,
    offset: u64,
    value: i64,
    signed: bool,
    bits: u32,
    overflow: Overflow,
}

/// Redis's `getBitfieldTypeFromArgument`: `i1`..`i64` or `u1`..`u63`.
fn bitfield_type(arg: &[u8]) -> Result<(bool, u32)> {
    let error = || {
        Error::err(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let arg = c_str(arg);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(error()),
    };
    let bits = strict_i64(&arg[1..]).ok_or_else(error)?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(error());
    }
    Ok((signed, bits as u32))
}

fn get_unsigned_field(s: &[u8], offset: u64, bits: u32) -> u64 {
    let mut value = 0u64;
    for i in 0..bits as u64 {
        value = (value << 1) | bit_at(s, offset + i) as u64;
    }
    value
}

fn get_signed_field(s: &[u8], offset: u64, bits: u32) -> i64 {
    let value = get_unsigned_field(s, offset, bits);
    if bits < 64 && value & (1 << (bits - 1)) != 0 {
        (value | (u64::MAX << bits)) as i64
    } else {
        value as i64
    }
}

fn set_field(s: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let on = value & (1 << (bits as u64 - 1 - i)) != 0;
        let pos = offset + i;
        let mask = 0x80u8 >> (pos & 7);
        let byte = &mut s[(pos >> 3) as usize];
        if on {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: `Some(result)` to store when
/// `value + incr` does not fit (per `overflow`), `None` when it fits. With
/// FAIL the returned value is meaningless.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = (value as i64).wrapping_neg();
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > max_incr) {
        Some(match overflow {
            Overflow::Wrap => wrap(),
            _ => max,
        })
    } else if incr < 0 && incr < min_incr {
        Some(match overflow {
            Overflow::Wrap => wrap(),
            _ => 0,
        })
    } else {
        None
    }
}

/// Redis's `checkSignedBitfieldOverflow`, in the same shape as
/// [`unsigned_overflow`].
fn signed_overflow(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max: i64 = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1u64 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr)
    {
        Some(match overflow {
            Overflow::Wrap => wrap(),
            _ => max,
        })
    } else if value < min
        || (bits != 64 && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        Some(match overflow {
            Overflow::Wrap => wrap(),
            _ => min,
        })
    } else {
        None
    }
}

/// A BITFIELD GET: reads through a zero-padded 9-byte window, as Redis
/// does, so offsets past the end of the string read zeros.
fn read_field(s: &[u8], op: &FieldCommand) -> i64 {
    let byte = (op.offset >> 3) as usize;
    let mut window = [0u8; 9];
    if byte < s.len() {
        let n = (s.len() - byte).min(9);
        window[..n].copy_from_slice(&s[byte..byte + n]);
    }
    let local = op.offset & 7;
    if op.signed {
        get_signed_field(&window, local, op.bits)
    } else {
        get_unsigned_field(&window, local, op.bits) as i64
    }
}

fn bitfield(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    bitfield_generic(ctx, argv, false)
}

fn bitfield_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    bitfield_generic(ctx, argv, true)
}

fn bitfield_generic(ctx: &mut Ctx, argv: &[&[u8]], read_only_command: bool) -> Result<()> {
    let max = max_bulk_len(ctx);
    let mut ops: Vec<FieldCommand> = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut read_only = true;
    let mut highest_write: u64 = 0;
    let mut j = 2;
    while j < argv.len() {
        let remaining = argv.len() - j - 1;
        let sub = argv[j];
        let op = if keyword(sub, "get") && remaining >= 2 {
            FieldOp::Get
        } else if keyword(sub, "set") && remaining >= 3 {
            FieldOp::Set
        } else if keyword(sub, "incrby") && remaining >= 3 {
            FieldOp::IncrBy
        } else if keyword(sub, "overflow") && remaining >= 1 {
            let kind = argv[j + 1];
            overflow = if keyword(kind, "wrap") {
                Overflow::Wrap
            } else if keyword(kind, "sat") {
                Overflow::Sat
            } else if keyword(kind, "fail") {
                Overflow::Fail
            } else {
                return Err(Error::err("Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(Error::syntax());
        };
        let (signed, bits) = bitfield_type(argv[j + 1])?;
        let offset = bit_offset(argv[j + 2], Some(bits), max)?;
        let mut value = 0;
        if op != FieldOp::Get {
            read_only = false;
            highest_write = highest_write.max(offset + bits as u64 - 1);
            value = int_arg(argv[j + 3])?;
        }
        ops.push(FieldCommand {
            op,
            offset,
            value,
            signed,
            bits,
            overflow,
        });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }

    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    if read_only {
        let s: &[u8] = match read_string_noted(shared, db, dbi, key, now)? {
            Some(s) => s,
            None => &[],
        };
        ctx.out.array(ops.len());
        for op in &ops {
            ctx.out.int(read_field(s, op));
        }
        return Ok(());
    }
    if read_only_command {
        return Err(Error::err("BITFIELD_RO only supports the GET subcommand"));
    }
    let needed = (highest_write >> 3) as usize + 1;
    let created = write_string(db, key, now)?.is_none();
    if created {
        db.insert_raw_str(key, zeroed(needed)?, None, now);
    }
    let Some(s) = write_string(db, key, now)? else {
        return Err(Error::err("internal error: bitfield target vanished"));
    };
    let grew = s.len() < needed;
    grow_zeroed(s, needed)?;
    // As Redis, a write changes the string if it was created or grew, or
    // the field's value changed; one refused by OVERFLOW FAIL does not.
    let dirty = created || grew;
    let mut changed = false;
    ctx.out.array(ops.len());
    for op in &ops {
        match op.op {
            FieldOp::Get => ctx.out.int(read_field(s, op)),
            FieldOp::Set | FieldOp::IncrBy if op.signed => {
                let old = get_signed_field(s, op.offset, op.bits);
                let (wrapped, new, reply) = if op.op == FieldOp::IncrBy {
                    let wrapped = signed_overflow(old, op.value, op.bits, op.overflow);
                    let new = wrapped.unwrap_or_else(|| old.wrapping_add(op.value));
                    (wrapped, new, new)
                } else {
                    let wrapped = signed_overflow(op.value, 0, op.bits, op.overflow);
                    (wrapped, wrapped.unwrap_or(op.value), old)
                };
                if wrapped.is_some() && op.overflow == Overflow::Fail {
                    ctx.out.null();
                } else {
                    ctx.out.int(reply);
                    set_field(s, op.offset, op.bits, new as u64);
                    changed |= dirty || new != old;
                }
            }
            FieldOp::Set | FieldOp::IncrBy => {
                let old = get_unsigned_field(s, op.offset, op.bits);
                let (wrapped, new, reply) = if op.op == FieldOp::IncrBy {
                    let wrapped = unsigned_overflow(old, op.value, op.bits, op.overflow);
                    let new = wrapped.unwrap_or_else(|| old.wrapping_add(op.value as u64));
                    (wrapped, new, new)
                } else {
                    let value = op.value as u64;
                    let wrapped = unsigned_overflow(value, 0, op.bits, op.overflow);
                    (wrapped, wrapped.unwrap_or(value), old)
                };
                if wrapped.is_some() && op.overflow == Overflow::Fail {
                    ctx.out.null();
                } else {
                    ctx.out.int(reply as i64);
                    set_field(s, op.offset, op.bits, new);
                    changed |= dirty || new != old;
                }
            }
        }
    }
    db.touch(key);
    if changed {
        pubsub.notify(events::STRING, "setbit", key, dbi);
    }
    Ok(())
}
