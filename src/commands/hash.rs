//! Hash commands, at Redis 7.4 fidelity: HSET, HSETNX, HGET, HMGET, HMSET,
//! HGETALL, HDEL, HEXISTS, HLEN, HSTRLEN, HKEYS, HVALS, HINCRBY,
//! HINCRBYFLOAT, HRANDFIELD, HSCAN, and field expiry: HEXPIRE, HPEXPIRE,
//! HEXPIREAT, HPEXPIREAT, HTTL, HPTTL, HEXPIRETIME, HPEXPIRETIME, HPERSIST.
//!
//! Field expiry follows Redis 7.4: a field whose time passed is invisible to
//! every command except HLEN, which counts it until it is reclaimed, as
//! Redis's does. Commands that name fields reclaim the expired ones among
//! them on the way (Redis's lazy field expiry), HRANDFIELD reclaims every
//! expired field of the hash first (as Redis does, so that it can pick by
//! position), and the active expiry cycle reclaims the rest in the background
//! (`Db::expire_due`). A hash left without fields is removed.
//!
//! Where Redis 7.4 lets an expired-but-unreclaimed field show through, Larder
//! keeps it hidden: HSET on such a field counts it as new, HDEL of it counts
//! nothing, and HEXPIRE on it answers -2 (no such field), where Redis would
//! respectively answer 0, 1, and set a new time on it.

use rand::Rng;
use smallvec::SmallVec;

use super::flags::*;
use super::long_double::LongDouble;
use super::parse::{
    glob_match, int_arg, is_keyword, parse_cursor, parse_scan_options, strict_i64, ScanExtra,
};
use super::reads;
use super::{CommandSpec, Ctx, FIRST_KEY};
use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;
use crate::pubsub::events;
use crate::shared::Shared;
use crate::store::changes::{Effect, Items};
use crate::store::types::HashValue;
use crate::store::{Db, Value, ValueRef};

const HASH: &[&str] = &["hash"];

const FIELD_EXPIRY_COMPLEXITY: &str = "O(N) where N is the number of specified fields";

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("hset", -4, WRITE | DENYOOM | FAST, FIRST_KEY, hset)
        .member_at(2)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Creates or modifies the value of a field in a hash.",
            "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.",
        ),
    CommandSpec::new("hsetnx", 4, WRITE | DENYOOM | FAST, FIRST_KEY, hsetnx)
        .member_at(2)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Sets the value of a field in a hash only when the field doesn't exist.",
            "O(1)",
        ),
    CommandSpec::new("hmset", -4, WRITE | DENYOOM | FAST, FIRST_KEY, hmset)
        .member_at(2)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Sets the values of multiple fields.",
            "O(N) where N is the number of fields being set.",
        ),
    CommandSpec::new("hget", 3, READONLY | FAST, FIRST_KEY, hget)
        .member_at(2)
        .acl(HASH)
        .doc("hash", "2.0.0", "Returns the value of a field in a hash.", "O(1)"),
    CommandSpec::new("hmget", -3, READONLY | FAST, FIRST_KEY, hmget)
        .member_at(2)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Returns the values of all fields in a hash.",
            "O(N) where N is the number of fields being requested.",
        ),
    CommandSpec::new("hgetall", 2, READONLY, FIRST_KEY, hgetall)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Returns all fields and values in a hash.",
            "O(N) where N is the size of the hash.",
        ),
    CommandSpec::new("hkeys", 2, READONLY, FIRST_KEY, hkeys)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Returns all fields in a hash.",
            "O(N) where N is the size of the hash.",
        ),
    CommandSpec::new("hvals", 2, READONLY, FIRST_KEY, hvals)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Returns all values in a hash.",
            "O(N) where N is the size of the hash.",
        ),
    CommandSpec::new("hdel", -3, WRITE | FAST, FIRST_KEY, hdel)
        .member_at(2)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
            "O(N) where N is the number of fields to be removed.",
        ),
    CommandSpec::new("hexists", 3, READONLY | FAST, FIRST_KEY, hexists)
        .member_at(2)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Determines whether a field exists in a hash.",
            "O(1)",
        ),
    CommandSpec::new("hlen", 2, READONLY | FAST, FIRST_KEY, hlen)
        .acl(HASH)
        .doc("hash", "2.0.0", "Returns the number of fields in a hash.", "O(1)"),
    CommandSpec::new("hstrlen", 3, READONLY | FAST, FIRST_KEY, hstrlen)
        .member_at(2)
        .acl(HASH)
        .doc(
            "hash",
            "3.2.0",
            "Returns the length of the value of a field.",
            "O(1)",
        ),
    CommandSpec::new("hincrby", 4, WRITE | DENYOOM | FAST, FIRST_KEY, hincrby)
        .member_at(2)
        .acl(HASH)
        .doc(
            "hash",
            "2.0.0",
            "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
            "O(1)",
        ),
    CommandSpec::new("hincrbyfloat", 4, WRITE | DENYOOM | FAST, FIRST_KEY, hincrbyfloat)
        .member_at(2)
        .acl(HASH)
        .doc(
            "hash",
            "2.6.0",
            "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
            "O(1)",
        ),
    CommandSpec::new("hrandfield", -2, READONLY, FIRST_KEY, hrandfield)
        .acl(HASH)
        .doc(
            "hash",
            "6.2.0",
            "Returns one or more random fields from a hash.",
            "O(N) where N is the number of fields returned",
        ),
    CommandSpec::new("hscan", -3, READONLY, FIRST_KEY, hscan)
        .acl(HASH)
        .doc(
            "hash",
            "2.8.0",
            "Iterates over fields and values of a hash.",
            "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.",
        ),
    CommandSpec::new("hexpire", -6, WRITE | DENYOOM | FAST, FIRST_KEY, hexpire)
        .acl(HASH)
        .doc(
            "hash",
            "7.4.0",
            "Set expiry for hash field using relative time to expire (seconds)",
            FIELD_EXPIRY_COMPLEXITY,
        ),
    CommandSpec::new("hpexpire", -6, WRITE | DENYOOM | FAST, FIRST_KEY, hpexpire)
        .acl(HASH)
        .doc(
            "hash",
            "7.4.0",
            "Set expiry for hash field using relative time to expire (milliseconds)",
            FIELD_EXPIRY_COMPLEXITY,
        ),
    CommandSpec::new("hexpireat", -6, WRITE | DENYOOM | FAST, FIRST_KEY, hexpireat)
        .acl(HASH)
        .doc(
            "hash",
            "7.4.0",
            "Set expiry for hash field using an absolute Unix timestamp (seconds)",
            FIELD_EXPIRY_COMPLEXITY,
        ),
    CommandSpec::new("hpexpireat", -6, WRITE | DENYOOM | FAST, FIRST_KEY, hpexpireat)
        .acl(HASH)
        .doc(
            "hash",
            "7.4.0",
            "Set expiry for hash field using an absolute Unix timestamp (milliseconds)",
            FIELD_EXPIRY_COMPLEXITY,
        ),
    CommandSpec::new("httl", -5, READONLY | FAST, FIRST_KEY, httl)
        .acl(HASH)
        .doc(
            "hash",
            "7.4.0",
            "Returns the TTL in seconds of a hash field.",
            FIELD_EXPIRY_COMPLEXITY,
        ),
    CommandSpec::new("hpttl", -5, READONLY | FAST, FIRST_KEY, hpttl)
        .acl(HASH)
        .doc(
            "hash",
            "7.4.0",
            "Returns the TTL in milliseconds of a hash field.",
            FIELD_EXPIRY_COMPLEXITY,
        ),
    CommandSpec::new("hexpiretime", -5, READONLY | FAST, FIRST_KEY, hexpiretime)
        .acl(HASH)
        .doc(
            "hash",
            "7.4.0",
            "Returns the expiration time of a hash field as a Unix timestamp, in seconds.",
            FIELD_EXPIRY_COMPLEXITY,
        ),
    CommandSpec::new("hpexpiretime", -5, READONLY | FAST, FIRST_KEY, hpexpiretime)
        .acl(HASH)
        .doc(
            "hash",
            "7.4.0",
            "Returns the expiration time of a hash field as a Unix timestamp, in msec.",
            FIELD_EXPIRY_COMPLEXITY,
        ),
    CommandSpec::new("hpersist", -5, WRITE | FAST, FIRST_KEY, hpersist)
        .acl(HASH)
        .doc(
            "hash",
            "7.4.0",
            "Removes the expiration time for each specified field",
            FIELD_EXPIRY_COMPLEXITY,
        ),
];

// ---------------------------------------------------------------- helpers

/// What the field-expiry commands see of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldTtl {
    /// No such field (or it has expired).
    Missing,
    /// The field exists and never expires.
    Persistent,
    /// The field expires at this Unix time in milliseconds.
    ExpiresAt(u64),
}

fn field_ttl(hash: &HashValue, field: &[u8], now: u64) -> FieldTtl {
    match hash.field_expiry(field, now) {
        None => FieldTtl::Missing,
        Some(None) => FieldTtl::Persistent,
        Some(Some(at)) => FieldTtl::ExpiresAt(at),
    }
}

/// The hash at `key` for reading; `None` if there is no key, WRONGTYPE if it
/// holds another type. Expired fields are still stored: use the `now`-aware
/// accessors of [`HashValue`].
fn hash_ref<'d>(db: &'d Db, key: &[u8], now: u64) -> Result<Option<&'d HashValue>> {
    match db.get(key, now) {
        None => Ok(None),
        Some(entry) => match entry.value() {
            ValueRef::Hash(hash) => Ok(Some(hash)),
            _ => Err(Error::wrong_type()),
        },
    }
}

/// The hash at `key` for changing in place (call `db.touch` after).
fn hash_mut<'d>(db: &'d mut Db, key: &[u8], now: u64) -> Result<Option<&'d mut HashValue>> {
    match db.value_mut(key, now) {
        None => Ok(None),
        Some(Value::Hash(hash)) => Ok(Some(hash)),
        Some(_) => Err(Error::wrong_type()),
    }
}

/// Where a hash command announces what it does: keyspace notifications in
/// database `db`. They are published through the engine directly, under the
/// key's shard lock (which borrows the `Ctx`), so that the events of one key
/// come in the order of its changes.
#[derive(Clone, Copy)]
struct Events<'p> {
    shared: &'p Shared,
    db: usize,
}

impl<'p> Events<'p> {
    fn of(ctx: &Ctx<'_, 'p>) -> Self {
        Events {
            shared: ctx.shared,
            db: ctx.db(),
        }
    }

    /// A change of the hash at `key` (`event`), and its deletion if the
    /// change `emptied` it.
    fn changed(self, key: &[u8], event: &str, emptied: bool) {
        self.shared.pubsub.notify(events::HASH, event, key, self.db);
        if emptied {
            self.shared
                .pubsub
                .notify(events::GENERIC, "del", key, self.db);
        }
    }

    /// A read command looked `key` up (Redis's lookupKeyRead):
    /// [`reads::counted`] for this client's database.
    fn counted<T>(self, key: &[u8], lookup: Result<Option<T>>) -> Result<Option<T>> {
        reads::counted(self.shared, self.db, key, lookup)
    }
}

/// How a command announces the expired fields it reclaims: Redis 7.4 sends
/// `hexpired` for each field its lazy expiry deletes, but HMGET and
/// HRANDFIELD send one for all of them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reclaimed {
    EachField,
    Once,
}

/// Lazy field expiry for the commands that name fields: each of `fields`
/// whose time passed is removed now, so that the command sees it as absent,
/// and announced (`hexpired`, as `mode` says). If that empties the hash, the
/// key is removed (`del`). Returns whether `key` holds a hash afterwards;
/// WRONGTYPE if it holds another type.
fn reclaim_fields<'a>(
    events: Events,
    mode: Reclaimed,
    db: &mut Db,
    key: &[u8],
    fields: impl IntoIterator<Item = &'a [u8]>,
    now: u64,
) -> Result<bool> {
    // Looked at read-only first: a hash without field TTLs (the usual
    // case) is not taken for change (a running BGSAVE would copy it).
    match hash_ref(db, key, now)? {
        None => return Ok(false),
        Some(hash) if !hash.has_field_ttls() => return Ok(true),
        Some(_) => {}
    }
    let (removed, empty) = {
        let Some(hash) = hash_mut(db, key, now)? else {
            return Ok(false);
        };
        let removed = fields
            .into_iter()
            .filter(|field| hash.reclaim_if_expired(field, now))
            .count();
        (removed, hash.is_empty())
    };
    if removed > 0 {
        let announced = if mode == Reclaimed::Once { 1 } else { removed };
        for _ in 1..announced {
            events.changed(key, "hexpired", false);
        }
        events.changed(key, "hexpired", empty);
        if empty {
            db.remove(key, now);
            return Ok(false);
        }
        db.touch(key);
        db.index_field_expiry(key);
    }
    Ok(true)
}

/// Runs `read` on the hash at `key` (`None` if missing: announced as a
/// miss) once the expired ones among `fields` are reclaimed, as
/// [`reclaim_fields`] does. A hash without field TTLs (the usual case)
/// costs one lookup.
fn read_fields<'a, R>(
    events: Events,
    mode: Reclaimed,
    db: &mut Db,
    key: &[u8],
    fields: impl IntoIterator<Item = &'a [u8]>,
    now: u64,
    read: impl FnOnce(Option<&HashValue>) -> R,
) -> Result<R> {
    let hash = events.counted(key, hash_ref(db, key, now))?;
    match hash {
        None => return Ok(read(None)),
        Some(hash) if !hash.has_field_ttls() => return Ok(read(Some(hash))),
        Some(_) => {}
    }
    reclaim_fields(events, mode, db, key, fields, now)?;
    Ok(read(hash_ref(db, key, now)?))
}

/// [`read_fields`] for a command that changes nothing else: a missing key
/// or a hash without field TTLs (the usual case) is read under a shared
/// read of its shard (`Locks::read_key`); a hash with field TTLs under
/// the exclusive lock, where its expired `fields` are reclaimed first.
fn read_fields_shared<'a, R>(
    ctx: &mut Ctx,
    mode: Reclaimed,
    key: &[u8],
    fields: impl IntoIterator<Item = &'a [u8]>,
    read: impl FnOnce(&mut ReplyBuf, Option<&HashValue>) -> R,
) -> Result<R> {
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    {
        let locked = ctx.locks.read_key(key)?;
        let lookup = hash_ref(locked.db(dbi, key)?, key, now);
        if !matches!(lookup, Ok(Some(hash)) if hash.has_field_ttls()) {
            let hash = events.counted(key, lookup)?;
            return Ok(read(ctx.out, hash));
        }
    }
    let mut locked = ctx.locks.key(key)?;
    let out = &mut *ctx.out;
    read_fields(
        events,
        mode,
        locked.db(dbi, key)?,
        key,
        fields,
        now,
        |hash| read(out, hash),
    )
}

/// [`hash_ref`] for a read command: a miss is announced.
fn read_hash<'d>(
    events: Events,
    db: &'d Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d HashValue>> {
    events.counted(key, hash_ref(db, key, now))
}

/// After changing the hash at `key` in place: WATCH sees the change, an
/// emptied hash is removed, and the field-expiry index follows the hash's
/// TTLs if `ttls_involved` (it had or now has some).
/// `fields`, if given, are all the fields the change touched (the journal
/// then records only them). Returns whether the hash was removed.
fn finish_change(
    db: &mut Db,
    key: &[u8],
    now: u64,
    ttls_involved: bool,
    fields: Option<Items<'_>>,
) -> bool {
    let empty = matches!(db.get(key, now), Some(entry) if matches!(entry.value(), ValueRef::Hash(h) if h.is_empty()));
    if empty {
        db.remove(key, now);
        return true;
    }
    match fields {
        Some(fields) => db.touch_with(key, Effect::HashFields(fields)),
        None => db.touch(key),
    }
    if ttls_involved {
        db.index_field_expiry(key);
    }
    false
}

// ---------------------------------------------------------------- HSET, HMSET, HSETNX

fn hset(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let created = set_pairs(ctx, argv, "hset")?;
    ctx.out.int(created as i64);
    Ok(())
}

fn hmset(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_pairs(ctx, argv, "hmset")?;
    ctx.out.ok();
    Ok(())
}

/// HSET and HMSET: sets every field/value pair, clearing the TTLs of the
/// fields set; returns how many fields are new.
fn set_pairs(ctx: &mut Ctx, argv: &[&[u8]], name: &str) -> Result<usize> {
    if argv.len() % 2 == 1 {
        return Err(Error::wrong_arity(name));
    }
    let key = argv[1];
    let pairs = &argv[2..];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let set_all = |hash: &mut HashValue| {
        hash.reserve_fields(pairs.len() / 2);
        pairs
            .chunks_exact(2)
            .filter(|pair| hash.set(pair[0], pair[1]))
            .count()
    };
    let created = match hash_mut(db, key, now)? {
        Some(hash) => {
            let had_ttls = hash.has_field_ttls();
            if had_ttls {
                // An expired field being set is new. The hash is not removed
                // even if that reclaims its last field (it gets fields right
                // away), so a key TTL stays, as in Redis.
                for field in pairs.iter().step_by(2) {
                    hash.reclaim_if_expired(field, now);
                }
            }
            let created = set_all(hash);
            db.touch_with(key, Effect::HashFields(Items::every(pairs, 2)));
            if had_ttls {
                db.index_field_expiry(key);
            }
            created
        }
        None => {
            let mut hash = HashValue::new();
            let created = set_all(&mut hash);
            db.insert(key, Value::Hash(Box::new(hash)), None, now);
            created
        }
    };
    events.changed(key, "hset", false);
    Ok(created)
}

fn hsetnx(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, field, value) = (argv[1], argv[2], argv[3]);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    reclaim_fields(events, Reclaimed::EachField, db, key, [field], now)?;
    let set = match hash_mut(db, key, now)? {
        Some(hash) if hash.contains(field, now) => false,
        Some(hash) => {
            hash.set(field, value);
            finish_change(db, key, now, false, Some(Items::all(&argv[2..3])));
            true
        }
        None => {
            let mut hash = HashValue::new();
            hash.set(field, value);
            db.insert(key, Value::Hash(Box::new(hash)), None, now);
            true
        }
    };
    if set {
        events.changed(key, "hset", false);
    }
    ctx.out.int(set as i64);
    Ok(())
}

// ---------------------------------------------------------------- HGET, HMGET, HEXISTS, HSTRLEN, HLEN

fn hget(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, field) = (argv[1], argv[2]);
    let now = ctx.now_ms;
    read_fields_shared(
        ctx,
        Reclaimed::EachField,
        key,
        [field],
        |out, hash| match hash.and_then(|hash| hash.get(field, now)) {
            Some(value) => out.bulk(value),
            None => out.null(),
        },
    )
}

fn hmget(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let fields = &argv[2..];
    let now = ctx.now_ms;
    read_fields_shared(
        ctx,
        Reclaimed::Once,
        key,
        fields.iter().copied(),
        |out, hash| {
            out.array(fields.len());
            for field in fields {
                match hash.and_then(|hash| hash.get(field, now)) {
                    Some(value) => out.bulk(value),
                    None => out.null(),
                }
            }
        },
    )
}

fn hexists(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, field) = (argv[1], argv[2]);
    let now = ctx.now_ms;
    let found = read_fields_shared(ctx, Reclaimed::EachField, key, [field], |_, hash| {
        hash.is_some_and(|hash| hash.contains(field, now))
    })?;
    ctx.out.int(found as i64);
    Ok(())
}

fn hstrlen(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, field) = (argv[1], argv[2]);
    let now = ctx.now_ms;
    let len = read_fields_shared(ctx, Reclaimed::EachField, key, [field], |_, hash| {
        hash.and_then(|hash| hash.get(field, now))
            .map_or(0, <[u8]>::len)
    })?;
    ctx.out.int(len as i64);
    Ok(())
}

/// HLEN counts the fields stored, including expired ones that were not
/// reclaimed yet, as Redis 7.4's HLEN does.
fn hlen(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let locked = ctx.locks.read_key(key)?;
    let len = read_hash(events, locked.db(dbi, key)?, key, now)?.map_or(0, HashValue::len);
    ctx.out.int(len as i64);
    Ok(())
}

// ---------------------------------------------------------------- HGETALL, HKEYS, HVALS

#[derive(Clone, Copy, PartialEq, Eq)]
enum Parts {
    Fields,
    Values,
    Both,
}

fn hgetall(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    get_all(ctx, argv, Parts::Both)
}

fn hkeys(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    get_all(ctx, argv, Parts::Fields)
}

fn hvals(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    get_all(ctx, argv, Parts::Values)
}

/// HGETALL (a map in RESP3), HKEYS and HVALS (arrays): the live fields, in
/// the hash's iteration order.
fn get_all(ctx: &mut Ctx, argv: &[&[u8]], parts: Parts) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let locked = ctx.locks.read_key(key)?;
    let hash = read_hash(events, locked.db(dbi, key)?, key, now)?;
    let len = hash.map_or(0, |hash| hash.live_len(now));
    match parts {
        Parts::Both => ctx.out.map(len),
        Parts::Fields | Parts::Values => ctx.out.array(len),
    }
    let Some(hash) = hash else {
        return Ok(());
    };
    for (field, value) in hash.iter_live(now) {
        if parts != Parts::Values {
            ctx.out.bulk(field);
        }
        if parts != Parts::Fields {
            ctx.out.bulk(value);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- HDEL

fn hdel(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let fields = &argv[2..];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    reclaim_fields(
        events,
        Reclaimed::EachField,
        db,
        key,
        fields.iter().copied(),
        now,
    )?;
    let (deleted, had_ttls) = match hash_mut(db, key, now)? {
        None => (0, false),
        Some(hash) => {
            let had_ttls = hash.has_field_ttls();
            let deleted = fields.iter().filter(|field| hash.remove(field)).count();
            (deleted, had_ttls)
        }
    };
    if deleted > 0 {
        let emptied = finish_change(db, key, now, had_ttls, Some(Items::all(fields)));
        events.changed(key, "hdel", emptied);
    }
    ctx.out.int(deleted as i64);
    Ok(())
}

// ---------------------------------------------------------------- HINCRBY, HINCRBYFLOAT

fn hincrby(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, field) = (argv[1], argv[2]);
    let increment = int_arg(argv[3])?;
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    reclaim_fields(events, Reclaimed::EachField, db, key, [field], now)?;
    let current = match hash_ref(db, key, now)?.and_then(|hash| hash.get(field, now)) {
        None => 0,
        Some(text) => strict_i64(text).ok_or_else(|| Error::err("hash value is not an integer"))?,
    };
    let value = current.checked_add(increment).ok_or_else(Error::overflow)?;
    let mut digits = itoa::Buffer::new();
    store_keeping_ttl(db, key, field, digits.format(value).as_bytes(), now)?;
    events.changed(key, "hincrby", false);
    ctx.out.int(value);
    Ok(())
}

fn hincrbyfloat(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, field) = (argv[1], argv[2]);
    let increment = LongDouble::parse(argv[3]).ok_or_else(Error::not_float)?;
    if increment.is_infinite() {
        return Err(Error::err("value is NaN or Infinity"));
    }
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    reclaim_fields(events, Reclaimed::EachField, db, key, [field], now)?;
    let current = match hash_ref(db, key, now)?.and_then(|hash| hash.get(field, now)) {
        None => LongDouble::ZERO,
        Some(text) => {
            LongDouble::parse(text).ok_or_else(|| Error::err("hash value is not a float"))?
        }
    };
    let value = current.add(increment);
    if value.is_infinite() {
        return Err(Error::err("increment would produce NaN or Infinity"));
    }
    let text = value.to_human_string();
    store_keeping_ttl(db, key, field, &text, now)?;
    events.changed(key, "hincrbyfloat", false);
    ctx.out.bulk(&text);
    Ok(())
}

/// Stores an incremented value, keeping the field's TTL (as Redis 7.4's
/// HINCRBY and HINCRBYFLOAT do), creating the hash if needed.
fn store_keeping_ttl(db: &mut Db, key: &[u8], field: &[u8], value: &[u8], now: u64) -> Result<()> {
    match hash_mut(db, key, now)? {
        Some(hash) => {
            hash.set_keep_ttl(field, value);
            db.touch(key);
        }
        None => {
            let mut hash = HashValue::new();
            hash.set(field, value);
            db.insert(key, Value::Hash(Box::new(hash)), None, now);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- HRANDFIELD

/// Largest reply HRANDFIELD with a negative count may build, in bytes: Redis
/// would stream an arbitrarily long reply; Larder refuses with Redis's range
/// error rather than buffering gigabytes.
const RANDOM_REPLY_BUDGET: u64 = 256 * 1024 * 1024;

fn out_of_range() -> Error {
    Error::err("value is out of range")
}

fn hrandfield(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let mut count = None;
    let mut with_values = false;
    if argv.len() >= 3 {
        let n = int_arg(argv[2])?;
        if n == i64::MIN {
            return Err(Error::err(format!(
                "value is out of range, value must between {} and {}",
                -i64::MAX,
                i64::MAX
            )));
        }
        if argv.len() > 4 || (argv.len() == 4 && !is_keyword(argv[3], "WITHVALUES")) {
            return Err(Error::syntax());
        }
        if argv.len() == 4 {
            with_values = true;
            if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
                return Err(out_of_range());
            }
        }
        count = Some(n);
    }

    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    // Every expired field goes first, so that picks by position only see
    // live ones (as Redis 7.4 does for HRANDFIELD, announcing them once).
    let hash = events.counted(key, hash_ref(db, key, now))?;
    let exists = match hash {
        None => false,
        Some(hash) if !hash.has_field_ttls() => !hash.is_empty(),
        Some(_) => match hash_mut(db, key, now)? {
            None => false,
            Some(hash) => {
                let reclaimed = hash.reclaim_expired(now, usize::MAX);
                let empty = hash.is_empty();
                if reclaimed > 0 {
                    finish_change(db, key, now, true, None);
                    events.changed(key, "hexpired", empty);
                }
                !empty
            }
        },
    };
    let hash = if exists {
        hash_ref(db, key, now)?
    } else {
        None
    };

    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        match hash {
            Some(hash) => {
                let index = rng.gen_range(0..hash.len());
                let (field, _) = hash.get_index(index).unwrap_or_default();
                ctx.out.bulk(field);
            }
            None => ctx.out.null(),
        }
        return Ok(());
    };
    let Some(hash) = hash else {
        ctx.out.array(0);
        return Ok(());
    };
    if count == 0 {
        ctx.out.array(0);
        return Ok(());
    }
    let resp3 = ctx.out.is_resp3();
    let size = hash.len();
    let emit = |out: &mut crate::protocol::ReplyBuf, index: usize| {
        let (field, value) = hash.get_index(index).unwrap_or_default();
        if with_values && resp3 {
            out.array(2);
        }
        out.bulk(field);
        if with_values {
            out.bulk(value);
        }
    };
    let header = |out: &mut crate::protocol::ReplyBuf, items: usize| {
        if with_values && !resp3 {
            out.array(items * 2);
        } else {
            out.array(items);
        }
    };

    if count < 0 || count == 1 {
        // Repeats allowed: `count` independent picks, in random order.
        let picks = count.unsigned_abs();
        let average_item = hash_reply_bytes(hash, with_values) / size as u64 + 1;
        if picks.saturating_mul(average_item) > RANDOM_REPLY_BUDGET {
            return Err(out_of_range());
        }
        let picks = picks as usize;
        header(ctx.out, picks);
        for _ in 0..picks {
            emit(ctx.out, rng.gen_range(0..size));
        }
        return Ok(());
    }

    let count = count as usize;
    if count >= size {
        header(ctx.out, size);
        for index in 0..size {
            emit(ctx.out, index);
        }
        return Ok(());
    }
    let mut picked = rand::seq::index::sample(&mut rng, size, count).into_vec();
    if hash.is_small() {
        // Redis samples a listpack without reordering it.
        picked.sort_unstable();
    }
    header(ctx.out, count);
    for index in picked {
        emit(ctx.out, index);
    }
    Ok(())
}

/// Approximate encoded size of the whole hash as an HRANDFIELD reply.
fn hash_reply_bytes(hash: &HashValue, with_values: bool) -> u64 {
    (0..hash.len())
        .filter_map(|i| hash.get_index(i))
        .map(|(field, value)| {
            let value_len = if with_values { value.len() + 16 } else { 0 };
            (field.len() + 16 + value_len) as u64
        })
        .sum()
}

// ---------------------------------------------------------------- HSCAN

/// HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]
///
/// A small hash (Redis's listpack encoding) is returned whole with cursor 0
/// whatever COUNT says, as Redis does. A large one is walked by position,
/// COUNT positions per call (see `HashValue::scan`): every field present
/// from the first call to the last is returned at least once, a field may be
/// returned twice if fields are removed during the iteration, and a complete
/// iteration costs O(size). Expired fields are skipped; MATCH filters the
/// fields visited, so a call may return nothing with a non-zero cursor.
fn hscan(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let cursor = parse_cursor(argv[2]).ok_or_else(|| Error::err("invalid cursor"))?;
    // Redis reads the options only once it found the hash.
    let options = parse_scan_options(&argv[3..], ScanExtra::NoValues);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let Some(hash) = read_hash(events, locked.db(dbi, key)?, key, now)? else {
        ctx.out.raw(b"*2\r\n$1\r\n0\r\n*0\r\n");
        return Ok(());
    };
    let options = options?;
    let mut found: Vec<(&[u8], &[u8])> = Vec::new();
    let next = hash.scan(cursor, options.count, now, |field, value| {
        if options.pattern.is_none_or(|p| glob_match(p, field, false)) {
            found.push((field, value));
        }
    });
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    let per_field = if options.no_values { 1 } else { 2 };
    ctx.out.array(found.len() * per_field);
    for (field, value) in found {
        ctx.out.bulk(field);
        if !options.no_values {
            ctx.out.bulk(value);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- HEXPIRE family

/// Largest absolute field expiry time Redis 7.4 accepts, in milliseconds
/// (`HFE_MAX_ABS_TIME_MSEC`: 2^46 - 1).
const MAX_FIELD_EXPIRY_MS: i64 = (1 << 46) - 1;

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpireCondition {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
}

fn hexpire(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    expire_fields(ctx, argv, "hexpire", true, true)
}

fn hpexpire(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    expire_fields(ctx, argv, "hpexpire", true, false)
}

fn hexpireat(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    expire_fields(ctx, argv, "hexpireat", false, true)
}

fn hpexpireat(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    expire_fields(ctx, argv, "hpexpireat", false, false)
}

/// The `FIELDS numfields field...` block starting at `argv[at]`, checked as
/// Redis does; `count_error` is the command's message for a bad count.
fn fields_block<'a, 'b>(
    argv: &'b [&'a [u8]],
    at: usize,
    count_error: &'static str,
) -> Result<&'b [&'a [u8]]> {
    if !argv.get(at).is_some_and(|arg| is_keyword(arg, "FIELDS")) {
        return Err(Error::err(
            "Mandatory argument FIELDS is missing or not at the right position",
        ));
    }
    let count = argv
        .get(at + 1)
        .and_then(|arg| strict_i64(arg))
        .filter(|&n| n >= 1)
        .ok_or_else(|| Error::err(count_error))?;
    let fields = &argv[(at + 2).min(argv.len())..];
    if count as u64 != fields.len() as u64 {
        return Err(Error::err(
            "The `numfields` parameter must match the number of arguments",
        ));
    }
    Ok(fields)
}

/// Redis 7.4's `hexpireGenericCommand`: `relative` adds the command time,
/// `seconds` scales the argument. Per field: -2 no such field, 0 condition
/// not met, 1 time set, 2 field deleted (time not in the future).
fn expire_fields(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    name: &'static str,
    relative: bool,
    seconds: bool,
) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let exists = hash_ref(db, key, now)?.is_some();

    let mut at = int_arg(argv[2])?;
    if at < 0 {
        return Err(Error::err("invalid expire time, must be >= 0"));
    }
    if seconds {
        if at > MAX_FIELD_EXPIRY_MS / 1000 {
            return Err(Error::invalid_expire(name));
        }
        at *= 1000;
    }
    let base = if relative {
        i64::try_from(now).unwrap_or(i64::MAX)
    } else {
        0
    };
    if at > MAX_FIELD_EXPIRY_MS.saturating_sub(base) {
        return Err(Error::invalid_expire(name));
    }
    let at = (at + base) as u64;
    let condition = [
        ("NX", ExpireCondition::Nx),
        ("XX", ExpireCondition::Xx),
        ("GT", ExpireCondition::Gt),
        ("LT", ExpireCondition::Lt),
    ]
    .into_iter()
    .find(|(word, _)| is_keyword(argv[3], word))
    .map(|(_, condition)| condition);
    let fields_at = if condition.is_some() { 4 } else { 3 };
    let condition = condition.unwrap_or(ExpireCondition::Always);
    let fields = fields_block(
        argv,
        fields_at,
        "Parameter `numFields` should be greater than 0",
    )?;

    let mut codes: SmallVec<[i64; 8]> = SmallVec::new();
    let (mut reclaimed, mut timed, mut deleted) = (false, false, false);
    if let Some(hash) = hash_mut(db, key, now)?.filter(|_| exists) {
        if hash.is_small() {
            hash.mark_field_expiry_used();
        }
        for field in fields {
            if hash.reclaim_if_expired(field, now) {
                reclaimed = true;
            }
            let code = match field_ttl(hash, field, now) {
                FieldTtl::Missing => -2,
                FieldTtl::Persistent
                    if matches!(condition, ExpireCondition::Xx | ExpireCondition::Gt) =>
                {
                    0
                }
                FieldTtl::ExpiresAt(current)
                    if condition == ExpireCondition::Nx
                        || (condition == ExpireCondition::Gt && current >= at)
                        || (condition == ExpireCondition::Lt && current <= at) =>
                {
                    0
                }
                _ if at <= now => {
                    hash.remove(field);
                    deleted = true;
                    2
                }
                _ => {
                    hash.set_field_expiry(field, at);
                    timed = true;
                    1
                }
            };
            codes.push(code);
        }
    } else {
        codes.extend(fields.iter().map(|_| -2));
    }
    if reclaimed || timed || deleted {
        let emptied = finish_change(db, key, now, true, Some(Items::all(fields)));
        // Fields whose time had passed (Larder's lazy expiry), then, as
        // Redis 7.4: `hdel` if a time in the past deleted fields, else
        // `hexpire`; `del` if the hash is gone.
        let changed = timed || deleted;
        if reclaimed {
            events.changed(key, "hexpired", emptied && !changed);
        }
        if changed {
            let event = if deleted { "hdel" } else { "hexpire" };
            events.changed(key, event, emptied);
        }
    }
    drop(locked);
    ctx.out.array(codes.len());
    for code in codes {
        ctx.out.int(code);
    }
    Ok(())
}

// ---------------------------------------------------------------- HTTL family, HPERSIST

/// What the HTTL family reports for a field with a time.
#[derive(Clone, Copy)]
enum TtlReport {
    /// Remaining time in seconds (HTTL), rounded up.
    Seconds,
    /// Remaining time in milliseconds (HPTTL).
    Millis,
    /// Unix time in seconds (HEXPIRETIME), rounded up.
    UnixSeconds,
    /// Unix time in milliseconds (HPEXPIRETIME).
    UnixMillis,
}

fn httl(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    field_ttls(ctx, argv, TtlReport::Seconds)
}

fn hpttl(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    field_ttls(ctx, argv, TtlReport::Millis)
}

fn hexpiretime(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    field_ttls(ctx, argv, TtlReport::UnixSeconds)
}

fn hpexpiretime(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    field_ttls(ctx, argv, TtlReport::UnixMillis)
}

const FIELD_COUNT_ERROR: &str = "Number of fields must be a positive integer";

/// HTTL, HPTTL, HEXPIRETIME, HPEXPIRETIME: per field -2 (no such field), -1
/// (no TTL) or the time; seconds are rounded up, as Redis 7.4 does.
fn field_ttls(ctx: &mut Ctx, argv: &[&[u8]], report: TtlReport) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let hash = read_hash(events, locked.db(dbi, key)?, key, now)?;
    let fields = fields_block(argv, 2, FIELD_COUNT_ERROR)?;
    ctx.out.array(fields.len());
    for field in fields {
        let reply = match hash.map_or(FieldTtl::Missing, |hash| field_ttl(hash, field, now)) {
            FieldTtl::Missing => -2,
            FieldTtl::Persistent => -1,
            FieldTtl::ExpiresAt(at) => {
                let value = match report {
                    TtlReport::Seconds => (at - now).div_ceil(1000),
                    TtlReport::Millis => at - now,
                    TtlReport::UnixSeconds => at.div_ceil(1000),
                    TtlReport::UnixMillis => at,
                };
                i64::try_from(value).unwrap_or(i64::MAX)
            }
        };
        ctx.out.int(reply);
    }
    Ok(())
}

/// HPERSIST: per field -2 (no such field), -1 (no TTL), 1 (TTL removed).
fn hpersist(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let events = Events::of(ctx);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let exists = hash_ref(db, key, now)?.is_some();
    let fields = fields_block(argv, 2, FIELD_COUNT_ERROR)?;
    let mut codes: SmallVec<[i64; 8]> = SmallVec::new();
    let mut changed = false;
    if let Some(hash) = hash_mut(db, key, now)?.filter(|_| exists) {
        for field in fields {
            codes.push(match field_ttl(hash, field, now) {
                FieldTtl::Missing => -2,
                FieldTtl::Persistent => -1,
                FieldTtl::ExpiresAt(_) => {
                    hash.persist_field(field);
                    changed = true;
                    1
                }
            });
        }
    } else {
        codes.extend(fields.iter().map(|_| -2));
    }
    if changed {
        finish_change(db, key, now, true, Some(Items::all(fields)));
        events.changed(key, "hpersist", false);
    }
    drop(locked);
    ctx.out.array(codes.len());
    for code in codes {
        ctx.out.int(code);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_like_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"12"), Some(12));
        assert_eq!(parse_cursor(b"x"), None);
        assert_eq!(parse_cursor(b" 1"), None);
    }
}
