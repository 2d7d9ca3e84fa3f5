//! List commands: LPUSH, RPUSH, LPUSHX, RPUSHX, LPOP, RPOP, LLEN, LRANGE,
//! LINDEX, LSET, LINSERT, LREM, LTRIM, LPOS, LMOVE, RPOPLPUSH, LMPOP, and
//! the blocking BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP — with Redis
//! 7.0's replies, errors and order of checks.
//!
//! A blocking command that can be served at once behaves as its
//! non-blocking form. Otherwise it writes nothing and leaves a block
//! request in the session; the connection waits and runs the command again
//! when one of its keys gets data (see `shared::blocking`). Every command
//! that adds list data to a key (the pushes, the destination of the moves)
//! signals the key afterwards. Inside MULTI/EXEC a blocking command that
//! cannot be served answers as on timeout, as in Redis.

use std::time::Duration;

use super::flags::*;
use super::long_double::LongDouble;
use super::parse::{int_arg, is_keyword, strict_i64};
use super::reads;
use super::{CommandSpec, Ctx, KeySpec, FIRST_KEY};
use crate::error::{Error, Result};
use crate::pubsub::{events, PubSub};
use crate::shared::blocking::{BlockRequest, TimeoutReply, WaitKind};
use crate::shared::Shared;
use crate::store::changes::Effect;
use crate::store::types::ListValue;
use crate::store::{Db, Value, ValueRef};

const LIST: &[&str] = &["list"];

/// One list element, as the list hands it out.
type Element = Box<[u8]>;

/// Which end of a list (LEFT: the head, index 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

impl End {
    fn left(self) -> bool {
        self == End::Left
    }

    /// The keyspace event of a pop from this end.
    fn pop_event(self) -> &'static str {
        match self {
            End::Left => "lpop",
            End::Right => "rpop",
        }
    }

    /// The keyspace event of a push to this end.
    fn push_event(self) -> &'static str {
        match self {
            End::Left => "lpush",
            End::Right => "rpush",
        }
    }
}

/// Source and destination (LMOVE, RPOPLPUSH, BLMOVE, BRPOPLPUSH).
const TWO_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: 2,
    step: 1,
};

/// BLPOP/BRPOP: every argument but the last (the timeout).
const KEYS_BEFORE_TIMEOUT: KeySpec = KeySpec::Range {
    first: 1,
    last: -2,
    step: 1,
};

const INSERT: &[&str] = &["RW", "insert"];
const POP: &[&str] = &["RW", "access", "delete"];
const REMOVE: &[&str] = &["RW", "delete"];
const READ: &[&str] = &["RO", "access"];

const PUSH_COMPLEXITY: &str = "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.";
const MPOP_COMPLEXITY: &str =
    "O(N+M) where N is the number of provided keys and M is the number of elements returned.";

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("lpush", -3, WRITE | DENYOOM | FAST, FIRST_KEY, lpush)
        .acl(LIST)
        .key_spec_flags(INSERT)
        .doc("list", "1.0.0", "Prepend one or multiple elements to a list", PUSH_COMPLEXITY),
    CommandSpec::new("rpush", -3, WRITE | DENYOOM | FAST, FIRST_KEY, rpush)
        .acl(LIST)
        .key_spec_flags(INSERT)
        .doc("list", "1.0.0", "Append one or multiple elements to a list", PUSH_COMPLEXITY),
    CommandSpec::new("lpushx", -3, WRITE | DENYOOM | FAST, FIRST_KEY, lpushx)
        .acl(LIST)
        .key_spec_flags(INSERT)
        .doc(
            "list",
            "2.2.0",
            "Prepend an element to a list, only if the list exists",
            PUSH_COMPLEXITY,
        ),
    CommandSpec::new("rpushx", -3, WRITE | DENYOOM | FAST, FIRST_KEY, rpushx)
        .acl(LIST)
        .key_spec_flags(INSERT)
        .doc(
            "list",
            "2.2.0",
            "Append an element to a list, only if the list exists",
            PUSH_COMPLEXITY,
        ),
    CommandSpec::new("lpop", -2, WRITE | FAST, FIRST_KEY, lpop)
        .acl(LIST)
        .key_spec_flags(POP)
        .doc(
            "list",
            "1.0.0",
            "Remove and get the first elements in a list",
            "O(N) where N is the number of elements returned",
        ),
    CommandSpec::new("rpop", -2, WRITE | FAST, FIRST_KEY, rpop)
        .acl(LIST)
        .key_spec_flags(POP)
        .doc(
            "list",
            "1.0.0",
            "Remove and get the last elements in a list",
            "O(N) where N is the number of elements returned",
        ),
    CommandSpec::new("llen", 2, READONLY | FAST, FIRST_KEY, llen)
        .acl(LIST)
        .key_spec_flags(&["RO"])
        .doc("list", "1.0.0", "Get the length of a list", "O(1)"),
    CommandSpec::new("lrange", 4, READONLY, FIRST_KEY, lrange)
        .acl(LIST)
        .key_spec_flags(READ)
        .doc(
            "list",
            "1.0.0",
            "Get a range of elements from a list",
            "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.",
        ),
    CommandSpec::new("lindex", 3, READONLY, FIRST_KEY, lindex)
        .acl(LIST)
        .key_spec_flags(READ)
        .doc(
            "list",
            "1.0.0",
            "Get an element from a list by its index",
            "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1).",
        ),
    CommandSpec::new("lset", 4, WRITE | DENYOOM, FIRST_KEY, lset)
        .acl(LIST)
        .key_spec_flags(&["RW", "update"])
        .doc(
            "list",
            "1.0.0",
            "Set the value of an element in a list by its index",
            "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).",
        ),
    CommandSpec::new("linsert", 5, WRITE | DENYOOM, FIRST_KEY, linsert)
        .acl(LIST)
        .key_spec_flags(INSERT)
        .doc(
            "list",
            "2.2.0",
            "Insert an element before or after another element in a list",
            "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).",
        ),
    CommandSpec::new("lrem", 4, WRITE, FIRST_KEY, lrem)
        .acl(LIST)
        .key_spec_flags(REMOVE)
        .doc(
            "list",
            "1.0.0",
            "Remove elements from a list",
            "O(N+M) where N is the length of the list and M is the number of elements removed.",
        ),
    CommandSpec::new("ltrim", 4, WRITE, FIRST_KEY, ltrim)
        .acl(LIST)
        .key_spec_flags(REMOVE)
        .doc(
            "list",
            "1.0.0",
            "Trim a list to the specified range",
            "O(N) where N is the number of elements to be removed by the operation.",
        ),
    CommandSpec::new("lpos", -3, READONLY, FIRST_KEY, lpos)
        .acl(LIST)
        .key_spec_flags(READ)
        .doc(
            "list",
            "6.0.6",
            "Return the index of matching elements on a list",
            "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.",
        ),
    // LMOVE & co. have two key specs in Redis (source: RW access delete;
    // destination: RW insert); the table has one per command.
    CommandSpec::new("lmove", 5, WRITE | DENYOOM, TWO_KEYS, lmove)
        .acl(LIST)
        .key_spec_flags(POP)
        .doc(
            "list",
            "6.2.0",
            "Pop an element from a list, push it to another list and return it",
            "O(1)",
        ),
    CommandSpec::new("rpoplpush", 3, WRITE | DENYOOM, TWO_KEYS, rpoplpush)
        .acl(LIST)
        .key_spec_flags(POP)
        .doc(
            "list",
            "1.2.0",
            "Remove the last element in a list, prepend it to another list and return it",
            "O(1)",
        ),
    CommandSpec::new("lmpop", -4, WRITE, KeySpec::NumKeys { numkeys_index: 1 }, lmpop)
        .acl(LIST)
        .key_spec_flags(POP)
        .doc("list", "7.0.0", "Pop elements from a list", MPOP_COMPLEXITY),
    CommandSpec::new("blpop", -3, WRITE | NOSCRIPT | BLOCKING, KEYS_BEFORE_TIMEOUT, blpop)
        .acl(LIST)
        .key_spec_flags(POP)
        .doc(
            "list",
            "2.0.0",
            "Remove and get the first element in a list, or block until one is available",
            "O(N) where N is the number of provided keys.",
        ),
    CommandSpec::new("brpop", -3, WRITE | NOSCRIPT | BLOCKING, KEYS_BEFORE_TIMEOUT, brpop)
        .acl(LIST)
        .key_spec_flags(POP)
        .doc(
            "list",
            "2.0.0",
            "Remove and get the last element in a list, or block until one is available",
            "O(N) where N is the number of provided keys.",
        ),
    CommandSpec::new(
        "blmove",
        6,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        TWO_KEYS,
        blmove,
    )
    .acl(LIST)
    .key_spec_flags(POP)
    .doc(
        "list",
        "6.2.0",
        "Pop an element from a list, push it to another list and return it; or block until one is available",
        "O(1)",
    ),
    CommandSpec::new(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        TWO_KEYS,
        brpoplpush,
    )
    .acl(LIST)
    .key_spec_flags(POP)
    .doc(
        "list",
        "2.2.0",
        "Pop an element from a list, push it to another list and return it; or block until one is available",
        "O(1)",
    ),
    CommandSpec::new(
        "blmpop",
        -5,
        WRITE | BLOCKING,
        KeySpec::NumKeys { numkeys_index: 2 },
        blmpop,
    )
    .acl(LIST)
    .key_spec_flags(POP)
    .doc(
        "list",
        "7.0.0",
        "Pop elements from a list, or block until one is available",
        MPOP_COMPLEXITY,
    ),
];

// ---------------------------------------------------------------- helpers

/// The list at `key` (`None` if there is none), WRONGTYPE if the key holds
/// another type.
fn get_list<'d>(db: &'d Db, key: &[u8], now: u64) -> Result<Option<&'d ListValue>> {
    match db.get(key, now) {
        None => Ok(None),
        Some(entry) => match entry.value() {
            ValueRef::List(list) => Ok(Some(list)),
            _ => Err(Error::wrong_type()),
        },
    }
}

/// Like [`get_list`], for changing the list in place (call `db.touch`, and
/// remove the key if the list became empty).
fn get_list_mut<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d mut ListValue>> {
    match db.value_mut(key, now) {
        None => Ok(None),
        Some(Value::List(list)) => Ok(Some(list)),
        Some(_) => Err(Error::wrong_type()),
    }
}

/// After an in-place change: a list left empty goes away, as in Redis.
/// `effect` says what the change did, if it is cheap to say (the journal).
fn after_change(db: &mut Db, key: &[u8], now: u64, empty: bool, effect: Option<Effect<'_>>) {
    if empty {
        db.remove(key, now);
    } else if let Some(effect) = effect {
        db.touch_with(key, effect);
    } else {
        db.touch(key);
    }
}

/// Keyspace notifications are published through the engine directly, under
/// the key's shard lock (which borrows the `Ctx`), so that the events of one
/// key come in the order of its changes.
///
/// Announces a change of the list at `key` (`event`), and its deletion if
/// the change `emptied` it, as Redis does.
fn notify_change(pubsub: &PubSub, db: usize, key: &[u8], event: &str, emptied: bool) {
    pubsub.notify(events::LIST, event, key, db);
    if emptied {
        pubsub.notify(events::GENERIC, "del", key, db);
    }
}

/// [`get_list`] for a read command: a miss is announced (`keymiss`, as
/// Redis's lookupKeyRead does).
fn read_list<'d>(
    shared: &Shared,
    db: &'d Db,
    dbi: usize,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d ListValue>> {
    reads::counted(shared, dbi, key, get_list(db, key, now))
}

/// What popping `count` elements from one end did.
fn popped_from(left: bool, count: usize) -> Option<Effect<'static>> {
    Some(if left {
        Effect::ListTrim {
            head: count,
            tail: 0,
        }
    } else {
        Effect::ListTrim {
            head: 0,
            tail: count,
        }
    })
}

/// LEFT or RIGHT (Redis's `getListPositionFromObjectOrReply`).
fn end_arg(arg: &[u8]) -> Result<End> {
    if is_keyword(arg, "LEFT") {
        Ok(End::Left)
    } else if is_keyword(arg, "RIGHT") {
        Ok(End::Right)
    } else {
        Err(Error::syntax())
    }
}

/// Redis's `getRangeLongFromObjectOrReply(.., 1, LONG_MAX, msg)`: the same
/// message for a non-integer and for a value below 1.
fn at_least_one(arg: &[u8], message: &'static str) -> Result<i64> {
    strict_i64(arg)
        .filter(|&n| n >= 1)
        .ok_or_else(|| Error::err(message))
}

/// Redis's `getPositiveLongFromObjectOrReply` with a message: the same
/// message for a non-integer and for a negative value.
fn non_negative(arg: &[u8], message: &'static str) -> Result<i64> {
    strict_i64(arg)
        .filter(|&n| n >= 0)
        .ok_or_else(|| Error::err(message))
}

fn count_to_usize(count: i64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

fn reply_elements(ctx: &mut Ctx, elements: &[Element]) {
    ctx.out.array(elements.len());
    for element in elements {
        ctx.out.bulk(element);
    }
}

/// Parses a blocking command's timeout (seconds, fractions allowed; 0 is
/// forever) as Redis 7.0's `getTimeoutFromObjectOrReply`: the number is
/// read as a C `long double` (hexadecimal and huge exponents accepted),
/// multiplied by 1000, rounded up, and cast to `long long` — which on
/// x86 turns an infinite or out-of-range value into LLONG_MIN, hence
/// "timeout is negative". A deadline past the end of time (`now_ms` plus
/// the timeout overflowing) is already due, as in Redis. (The arithmetic is
/// done in `f64`, which only differs from Redis's for numbers needing more
/// than 53 bits of precision.)
pub(super) fn timeout_arg(arg: &[u8], now_ms: u64) -> Result<Option<Duration>> {
    let seconds = LongDouble::parse(arg)
        .map(long_double_to_f64)
        .ok_or_else(|| Error::err("timeout is not a float or out of range"))?;
    let millis = (seconds * 1000.0).ceil();
    // 2^63: the first value past i64::MAX.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let millis = if (-LIMIT..LIMIT).contains(&millis) {
        millis as i64
    } else {
        i64::MIN
    };
    if millis < 0 {
        return Err(Error::err("timeout is negative"));
    }
    if millis == 0 {
        return Ok(None);
    }
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    if millis.checked_add(now).is_none() {
        return Ok(Some(Duration::ZERO));
    }
    Ok(Some(Duration::from_millis(millis as u64)))
}

/// The nearest `f64`; a value too small for one stays non-zero (its
/// timeout is 1 ms, as Redis computes it).
fn long_double_to_f64(value: LongDouble) -> f64 {
    let (negative, magnitude) = match value {
        LongDouble::Infinite { negative } => (negative, f64::INFINITY),
        LongDouble::Finite {
            negative,
            mantissa,
            exponent,
        } => {
            let magnitude = if mantissa == 0 {
                0.0
            } else if exponent > 1100 {
                f64::INFINITY
            } else if exponent < -1200 {
                f64::MIN_POSITIVE
            } else {
                // In two steps, each power of two representable.
                let half = exponent / 2;
                let scaled =
                    mantissa as f64 * 2f64.powi(half as i32) * 2f64.powi((exponent - half) as i32);
                if scaled == 0.0 {
                    f64::MIN_POSITIVE
                } else {
                    scaled
                }
            };
            (negative, magnitude)
        }
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// A blocking command found nothing to serve it: block the client until
/// `keys` get data of `kind`, or (inside EXEC, or outside a network
/// connection) answer `at_once` — null for BLMOVE/BRPOPLPUSH, a null array
/// for the others. A timeout, though, always answers a null array (`*-1`),
/// as Redis 7.0 does for every list and sorted-set command
/// (`replyToBlockedClientTimedOut`). Sorted sets' BZPOPMIN & co. can use
/// it too.
pub(super) fn block_or_timeout(
    ctx: &mut Ctx,
    keys: &[&[u8]],
    timeout: Option<Duration>,
    kind: WaitKind,
    at_once: TimeoutReply,
) {
    if ctx.locks.in_transaction() || !ctx.session.blocking_allowed {
        at_once.write(ctx.out);
        return;
    }
    ctx.session.block = Some(BlockRequest {
        db: ctx.db(),
        keys: keys.iter().map(|k| k.to_vec()).collect(),
        timeout,
        kind,
        on_timeout: TimeoutReply::NullArray,
    });
}

/// Wakes clients blocked on `key` for list data.
fn signal_list(ctx: &Ctx, db: usize, key: &[u8]) {
    ctx.shared.blocking.key_ready(db, key, Some(WaitKind::List));
}

// ---------------------------------------------------------------- pushes

fn lpush(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    push(ctx, argv, End::Left, false)
}

fn rpush(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    push(ctx, argv, End::Right, false)
}

fn lpushx(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    push(ctx, argv, End::Left, true)
}

fn rpushx(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    push(ctx, argv, End::Right, true)
}

/// [LR]PUSH[X] key element...: the new length (0 for a missing key with
/// the X forms).
fn push(ctx: &mut Ctx, argv: &[&[u8]], end: End, only_existing: bool) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let len = if let Some(list) = get_list_mut(part, key, now)? {
        for element in &argv[2..] {
            list.push(end.left(), element);
        }
        let len = list.len();
        part.touch_with(
            key,
            Effect::ListPush {
                left: end.left(),
                elements: &argv[2..],
            },
        );
        len
    } else if only_existing {
        0
    } else {
        let mut list = ListValue::new();
        for element in &argv[2..] {
            list.push(end.left(), element);
        }
        let len = list.len();
        part.insert(key, Value::List(Box::new(list)), None, now);
        len
    };
    if len > 0 {
        notify_change(pubsub, db, key, end.push_event(), false);
    }
    drop(locked);
    ctx.out.int(len as i64);
    if len > 0 {
        signal_list(ctx, db, key);
    }
    Ok(())
}

/// LINSERT key BEFORE|AFTER pivot element.
fn linsert(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let after = if is_keyword(argv[2], "AFTER") {
        true
    } else if is_keyword(argv[2], "BEFORE") {
        false
    } else {
        return Err(Error::syntax());
    };
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let Some(list) = get_list_mut(part, key, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    if !list.insert(argv[3], argv[4], after) {
        ctx.out.int(-1);
        return Ok(());
    }
    let len = list.len();
    part.touch(key);
    notify_change(&ctx.shared.pubsub, db, key, "linsert", false);
    ctx.out.int(len as i64);
    Ok(())
}

// ---------------------------------------------------------------- pops

fn lpop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    pop(ctx, argv, End::Left)
}

fn rpop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    pop(ctx, argv, End::Right)
}

/// [LR]POP key [count]. With a count the reply is an array (a null array
/// for a missing key, an empty one for a count of 0).
fn pop(ctx: &mut Ctx, argv: &[&[u8]], end: End) -> Result<()> {
    if argv.len() > 3 {
        return Err(Error::wrong_arity(if end == End::Left {
            "lpop"
        } else {
            "rpop"
        }));
    }
    let count = match argv.get(2) {
        Some(arg) => Some(non_negative(
            arg,
            "value is out of range, must be positive",
        )?),
        None => None,
    };
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let Some(list) = get_list_mut(part, key, now)? else {
        if count.is_some() {
            ctx.out.null_array();
        } else {
            ctx.out.null();
        }
        return Ok(());
    };
    match count {
        Some(0) => ctx.out.array(0),
        Some(count) => {
            let popped = list.pop_many(end.left(), count_to_usize(count));
            let empty = list.is_empty();
            after_change(part, key, now, empty, popped_from(end.left(), popped.len()));
            notify_change(&ctx.shared.pubsub, db, key, end.pop_event(), empty);
            drop(locked);
            reply_elements(ctx, &popped);
        }
        None => {
            let popped = list.pop(end.left());
            let empty = list.is_empty();
            let count = usize::from(popped.is_some());
            after_change(part, key, now, empty, popped_from(end.left(), count));
            if count > 0 {
                notify_change(&ctx.shared.pubsub, db, key, end.pop_event(), empty);
            }
            drop(locked);
            match popped {
                Some(element) => ctx.out.bulk(&element),
                None => ctx.out.null(),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- reads

fn llen(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let len = read_list(shared, locked.db(db, key)?, db, key, now)?.map_or(0, ListValue::len);
    ctx.out.int(len as i64);
    Ok(())
}

/// LRANGE key start stop: the indexes are checked before the key.
fn lrange(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let start = int_arg(argv[2])?;
    let end = int_arg(argv[3])?;
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let Some(list) = read_list(shared, locked.db(db, key)?, db, key, now)? else {
        ctx.out.array(0);
        return Ok(());
    };
    match list.range_bounds(start, end) {
        None => ctx.out.array(0),
        Some((first, last)) => {
            ctx.out.array(last - first + 1);
            for element in list.range(first, last) {
                ctx.out.bulk(element);
            }
        }
    }
    Ok(())
}

/// LINDEX key index: the key is looked at before the index is parsed.
fn lindex(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let Some(list) = read_list(shared, locked.db(db, key)?, db, key, now)? else {
        ctx.out.null();
        return Ok(());
    };
    let index = int_arg(argv[2])?;
    match list.get(index) {
        Some(element) => ctx.out.bulk(element),
        None => ctx.out.null(),
    }
    Ok(())
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]. The
/// options are checked before the key.
fn lpos(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut rank: i64 = 1;
    let mut count: Option<i64> = None;
    let mut maxlen: i64 = 0;
    let mut i = 3;
    while i < argv.len() {
        let has_value = i + 1 < argv.len();
        if is_keyword(argv[i], "RANK") && has_value {
            rank = int_arg(argv[i + 1])?;
            if rank == 0 {
                return Err(Error::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is_keyword(argv[i], "COUNT") && has_value {
            count = Some(non_negative(argv[i + 1], "COUNT can't be negative")?);
        } else if is_keyword(argv[i], "MAXLEN") && has_value {
            maxlen = non_negative(argv[i + 1], "MAXLEN can't be negative")?;
        } else {
            return Err(Error::syntax());
        }
        i += 2;
    }
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let locked = ctx.locks.read_key(key)?;
    let found = match read_list(shared, locked.db(db, key)?, db, key, now)? {
        Some(list) => list.positions(argv[2], rank, count, maxlen),
        None => Vec::new(),
    };
    drop(locked);
    if count.is_some() {
        ctx.out.array(found.len());
        for index in found {
            ctx.out.int(index);
        }
    } else {
        match found.first() {
            Some(&index) => ctx.out.int(index),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- in-place changes

/// LSET key index element.
fn lset(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let list = get_list_mut(part, key, now)?.ok_or_else(Error::no_such_key)?;
    let index = int_arg(argv[2])?;
    if !list.set(index, argv[3]) {
        return Err(Error::err("index out of range"));
    }
    part.touch(key);
    notify_change(&ctx.shared.pubsub, db, key, "lset", false);
    ctx.out.ok();
    Ok(())
}

/// LREM key count element: the count is checked before the key.
fn lrem(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let count = int_arg(argv[2])?;
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    let Some(list) = get_list_mut(part, key, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let removed = list.remove(count, argv[3]);
    if removed > 0 {
        let empty = list.is_empty();
        after_change(part, key, now, empty, None);
        notify_change(&ctx.shared.pubsub, db, key, "lrem", empty);
    }
    ctx.out.int(removed as i64);
    Ok(())
}

/// LTRIM key start stop: the indexes are checked before the key.
fn ltrim(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let start = int_arg(argv[2])?;
    let end = int_arg(argv[3])?;
    let key = argv[1];
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let part = locked.db(db, key)?;
    if let Some(list) = get_list_mut(part, key, now)? {
        let before = list.len();
        let kept = list.range_bounds(start, end);
        list.trim(start, end);
        let empty = list.is_empty();
        if list.len() != before {
            let effect = kept.map(|(first, last)| Effect::ListTrim {
                head: first,
                tail: before - 1 - last,
            });
            after_change(part, key, now, empty, effect);
        }
        // Announced even when nothing was trimmed, as in Redis.
        notify_change(&ctx.shared.pubsub, db, key, "ltrim", empty);
    }
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------- moves

fn lmove(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let from = end_arg(argv[3])?;
    let to = end_arg(argv[4])?;
    let moved = move_element(ctx, argv[1], argv[2], from, to, false)?;
    reply_moved(ctx, argv[2], moved);
    Ok(())
}

fn rpoplpush(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let moved = move_element(ctx, argv[1], argv[2], End::Right, End::Left, false)?;
    reply_moved(ctx, argv[2], moved);
    Ok(())
}

/// The moved element (null if there was none), and the wakeup of clients
/// blocked on the destination.
fn reply_moved(ctx: &mut Ctx, target: &[u8], moved: Option<Element>) {
    match moved {
        Some(element) => {
            ctx.out.bulk(&element);
            signal_list(ctx, ctx.db(), target);
        }
        None => ctx.out.null(),
    }
}

/// LMOVE's body: a missing source gives `None` before the destination is
/// looked at; then WRONGTYPE for either; then the element moves (the same
/// key rotates the list). For the blocking forms (`blocking`), a source
/// that earlier blocked clients have a claim on counts as missing, and so
/// does one of another type when a blocked client runs again (see
/// [`pop_first`]).
fn move_element(
    ctx: &mut Ctx,
    source: &[u8],
    target: &[u8],
    from: End,
    to: End,
    blocking: bool,
) -> Result<Option<Element>> {
    let (db, now) = (ctx.db(), ctx.now_ms);
    let client = ctx.session.handle.id;
    let skip_other_type = blocking && ctx.session.woken_by.is_some();
    let fair = blocking && !ctx.locks.in_transaction();
    let shared = ctx.shared;
    let mut locked = ctx.locks.keys(&[source, target])?;
    match get_list(locked.db(db, source)?, source, now) {
        Ok(Some(_)) => {}
        Ok(None) => return Ok(None),
        Err(_) if skip_other_type => return Ok(None),
        Err(error) => return Err(error),
    }
    if fair && !shared.blocking.may_take(db, source, client, WaitKind::List) {
        return Ok(None);
    }
    let target_exists = get_list(locked.db(db, target)?, target, now)?.is_some();
    let part = locked.db(db, source)?;
    let Some(list) = get_list_mut(part, source, now)? else {
        return Ok(None);
    };
    let Some(element) = list.pop(from.left()) else {
        return Ok(None);
    };
    // Redis announces the push before the pop.
    if source == target {
        list.push(to.left(), &element);
        part.touch(source);
        notify_change(&shared.pubsub, db, target, to.push_event(), false);
        notify_change(&shared.pubsub, db, source, from.pop_event(), false);
        return Ok(Some(element));
    }
    let empty = list.is_empty();
    after_change(part, source, now, empty, popped_from(from.left(), 1));
    let part = locked.db(db, target)?;
    match get_list_mut(part, target, now)? {
        Some(list) if target_exists => {
            list.push(to.left(), &element);
            part.touch_with(
                target,
                Effect::ListPush {
                    left: to.left(),
                    elements: &[&element[..]],
                },
            );
        }
        _ => {
            let mut list = ListValue::new();
            list.push(to.left(), &element);
            part.insert(target, Value::List(Box::new(list)), None, now);
        }
    }
    notify_change(&shared.pubsub, db, target, to.push_event(), false);
    notify_change(&shared.pubsub, db, source, from.pop_event(), empty);
    Ok(Some(element))
}

// ---------------------------------------------------------------- multi-key pops

/// The first of `keys` holding a list, popped: [key, element] (BLPOP's
/// shape, when `count` is `None`) or [key, [elements...]] (LMPOP's).
/// WRONGTYPE for a key of another type met on the way, except when a
/// blocked client runs again after a wakeup: Redis 7.0 then serves it from
/// the keys that got data, in the order they got it, whatever the others
/// hold; so those keys are tried first. `fair`: blocking commands leave a
/// key to the clients that blocked on it earlier. Returns whether it
/// replied.
fn pop_first(
    ctx: &mut Ctx,
    keys: &[&[u8]],
    end: End,
    count: Option<usize>,
    fair: bool,
) -> Result<bool> {
    let (db, now) = (ctx.db(), ctx.now_ms);
    let client = ctx.session.handle.id;
    let woken_by = ctx.session.woken_by.take();
    let skip_other_types = woken_by.is_some();
    let order = serving_order(keys, &woken_by);
    let fair = fair && !ctx.locks.in_transaction();
    let shared = ctx.shared;
    let mut locked = ctx.locks.keys(keys)?;
    for key in order {
        let part = locked.db(db, key)?;
        let list = match part.value_mut(key, now) {
            None => continue,
            Some(Value::List(list)) => list,
            Some(_) if skip_other_types => continue,
            Some(_) => return Err(Error::wrong_type()),
        };
        if list.is_empty() || (fair && !shared.blocking.may_take(db, key, client, WaitKind::List)) {
            continue;
        }
        let popped = list.pop_many(end.left(), count.unwrap_or(1));
        let empty = list.is_empty();
        after_change(part, key, now, empty, popped_from(end.left(), popped.len()));
        notify_change(&shared.pubsub, db, key, end.pop_event(), empty);
        drop(locked);
        ctx.out.array(2);
        ctx.out.bulk(key);
        if count.is_some() {
            reply_elements(ctx, &popped);
        } else if let Some(element) = popped.first() {
            ctx.out.bulk(element);
        }
        return Ok(true);
    }
    Ok(false)
}

/// The order in which a blocking command looks at its keys: when it runs
/// again after a wakeup, the keys that got data first, in the order they
/// got it (as Redis 7.0 serves blocked clients from its ready keys); then
/// all its keys in argument order.
pub(super) fn serving_order<'a>(
    keys: &[&'a [u8]],
    woken_by: &'a Option<Vec<Vec<u8>>>,
) -> Vec<&'a [u8]> {
    woken_by
        .iter()
        .flatten()
        .map(Vec::as_slice)
        .filter(|k| keys.contains(k))
        .chain(keys.iter().copied())
        .collect()
}

/// LMPOP/BLMPOP's arguments from `numkeys` on: the keys, the end, the count.
fn mpop_args<'a>(argv: &[&'a [u8]], numkeys_index: usize) -> Result<(Vec<&'a [u8]>, End, usize)> {
    let numkeys = at_least_one(argv[numkeys_index], "numkeys should be greater than 0")?;
    let where_index = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(numkeys_index + 1))
        .filter(|&i| i < argv.len())
        .ok_or_else(Error::syntax)?;
    let end = end_arg(argv[where_index])?;
    let mut count = None;
    let mut i = where_index + 1;
    while i < argv.len() {
        if count.is_none() && is_keyword(argv[i], "COUNT") && i + 1 < argv.len() {
            count = Some(at_least_one(argv[i + 1], "count should be greater than 0")?);
            i += 2;
        } else {
            return Err(Error::syntax());
        }
    }
    let keys = argv[numkeys_index + 1..where_index].to_vec();
    Ok((keys, end, count_to_usize(count.unwrap_or(1))))
}

/// LMPOP numkeys key... LEFT|RIGHT [COUNT count].
fn lmpop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (keys, end, count) = mpop_args(argv, 1)?;
    if !pop_first(ctx, &keys, end, Some(count), false)? {
        ctx.out.null_array();
    }
    Ok(())
}

// ---------------------------------------------------------------- blocking forms

fn blpop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    blocking_pop(ctx, argv, End::Left)
}

fn brpop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    blocking_pop(ctx, argv, End::Right)
}

/// B[LR]POP key... timeout: the timeout is checked first.
fn blocking_pop(ctx: &mut Ctx, argv: &[&[u8]], end: End) -> Result<()> {
    let timeout = timeout_arg(argv[argv.len() - 1], ctx.now_ms)?;
    let keys = &argv[1..argv.len() - 1];
    if !pop_first(ctx, keys, end, None, true)? {
        block_or_timeout(ctx, keys, timeout, WaitKind::List, TimeoutReply::NullArray);
    }
    Ok(())
}

/// BLMPOP timeout numkeys key... LEFT|RIGHT [COUNT count].
fn blmpop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let timeout = timeout_arg(argv[1], ctx.now_ms)?;
    let (keys, end, count) = mpop_args(argv, 2)?;
    if !pop_first(ctx, &keys, end, Some(count), true)? {
        block_or_timeout(ctx, &keys, timeout, WaitKind::List, TimeoutReply::NullArray);
    }
    Ok(())
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout: the directions
/// first, then the timeout.
fn blmove(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let from = end_arg(argv[3])?;
    let to = end_arg(argv[4])?;
    let timeout = timeout_arg(argv[5], ctx.now_ms)?;
    blocking_move(ctx, argv[1], argv[2], from, to, timeout)
}

/// BRPOPLPUSH source destination timeout.
fn brpoplpush(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let timeout = timeout_arg(argv[3], ctx.now_ms)?;
    blocking_move(ctx, argv[1], argv[2], End::Right, End::Left, timeout)
}

/// A missing source blocks without a look at the destination (whose type
/// is checked once there is something to move), as in Redis.
fn blocking_move(
    ctx: &mut Ctx,
    source: &[u8],
    target: &[u8],
    from: End,
    to: End,
    timeout: Option<Duration>,
) -> Result<()> {
    match move_element(ctx, source, target, from, to, true)? {
        Some(element) => reply_moved(ctx, target, Some(element)),
        None => block_or_timeout(
            ctx,
            &[source],
            timeout,
            WaitKind::List,
            TimeoutReply::NullBulk,
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(s: &str) -> std::result::Result<Option<Duration>, String> {
        timeout_arg(s.as_bytes(), 1_700_000_000_000).map_err(|e| e.message().to_string())
    }

    #[test]
    fn timeouts_parse_as_redis_7_0() {
        let not_float = Err("ERR timeout is not a float or out of range".to_string());
        let negative = Err("ERR timeout is negative".to_string());
        assert_eq!(timeout("0"), Ok(None));
        assert_eq!(timeout("-0.0001"), Ok(None));
        assert_eq!(timeout("0.1"), Ok(Some(Duration::from_millis(100))));
        assert_eq!(timeout("0.0001"), Ok(Some(Duration::from_millis(1))));
        assert_eq!(timeout("1e-400"), Ok(Some(Duration::from_millis(1))));
        assert_eq!(timeout("1e-4940"), Ok(Some(Duration::from_millis(1))));
        assert_eq!(timeout("0x10"), Ok(Some(Duration::from_secs(16))));
        assert_eq!(timeout("0x0.1p1"), Ok(Some(Duration::from_millis(125))));
        assert_eq!(timeout("+1.5"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(
            timeout("9.2e15"),
            Ok(Some(Duration::from_millis(9_200_000_000_000_000_000)))
        );
        assert_eq!(timeout("9.223372036854e15"), Ok(Some(Duration::ZERO)));
        assert_eq!(timeout("-1"), negative);
        assert_eq!(timeout("inf"), negative);
        assert_eq!(timeout("-inf"), negative);
        assert_eq!(timeout("1e400"), negative);
        assert_eq!(timeout("9.3e15"), negative);
        assert_eq!(timeout("1e5000"), not_float);
        assert_eq!(timeout("1e-5000"), not_float);
        assert_eq!(timeout("nan"), not_float);
        assert_eq!(timeout(" 1"), not_float);
        assert_eq!(timeout("1 "), not_float);
        assert_eq!(timeout(""), not_float);
        assert_eq!(timeout("x"), not_float);
        assert_eq!(timeout("1e"), not_float);
        assert_eq!(timeout("."), not_float);
        assert_eq!(timeout("+-1"), not_float);
    }
}
