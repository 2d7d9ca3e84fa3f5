//! DEBUG: the subcommands tools and test suites use, where they are safe
//! on a cache that serves clients, behind `enable-debug-command` as in
//! Redis 7 (`no` by default; `local`: loopback and unix socket clients).
//!
//! SLEEP pauses only the calling client's connection (the connection loop
//! waits, without holding a runtime worker); Redis stops the whole server.
//! Subcommands that crash, reload or rewrite the server, or that need
//! structures Larder does not have (RDB, AOF, replication, quicklists),
//! answer with an error that says so rather than a pretend OK.

use std::time::Duration;

use super::flags::*;
use super::parse::is_keyword;
use super::{CommandSpec, Ctx, NO_KEYS};
use crate::error::{Error, Result};
use crate::store::types::StreamId;
use crate::store::ValueRef;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "debug",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    NO_KEYS,
    debug,
)
.doc(
    "server",
    "1.0.0",
    "A container for debugging commands.",
    "Depends on subcommand.",
)];

const DEBUG_REFUSED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

const MODULE_REFUSED: &str = "ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// Redis 7's protected commands (its CMD_PROTECTED: DEBUG, MODULE LOAD,
/// LOADEX and UNLOAD) are refused before they run, as its processCommand
/// does, unless `enable-debug-command` / `enable-module-command` allow the
/// client (`yes`, or `local`: loopback and Unix socket clients). Dispatch
/// asks only for ADMIN commands.
pub(super) fn protected_command_refusal(
    shared: &crate::shared::Shared,
    session: &super::Session,
    spec: &CommandSpec,
) -> Option<&'static str> {
    let (setting, refusal) = match spec.name {
        "debug" => ("enable-debug-command", DEBUG_REFUSED),
        "module|load" | "module|loadex" | "module|unload" => {
            ("enable-module-command", MODULE_REFUSED)
        }
        _ => return None,
    };
    let allowed = shared.config.read().get(setting);
    let allowed = match allowed.as_deref() {
        Some("yes") => true,
        Some("local") => session.handle.is_local(),
        _ => false,
    };
    (!allowed).then_some(refusal)
}

fn debug(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let sub = String::from_utf8_lossy(argv[1]).to_ascii_lowercase();
    match (sub.as_str(), argv.len()) {
        ("help", 2) => {
            super::reply_help(ctx, "DEBUG", HELP);
            Ok(())
        }
        ("sleep", 3) => {
            // strtod, as Redis: what does not parse sleeps for zero.
            let seconds = std::str::from_utf8(argv[2])
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .unwrap_or(0.0);
            ctx.session.debug_sleep = Some(Duration::from_secs_f64(seconds.min(1e9)));
            ctx.out.ok();
            Ok(())
        }
        ("set-active-expire", 3) => {
            ctx.store().set_active_expire(atoi(argv[2]) != 0);
            ctx.out.ok();
            Ok(())
        }
        ("object", 3) => debug_object(ctx, argv[2]),
        ("log", 3) => {
            tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(argv[2]));
            ctx.out.ok();
            Ok(())
        }
        ("error", 3) => {
            // As Redis's addReplyError: the text is the whole error line,
            // with no ERR code added.
            let text = String::from_utf8_lossy(argv[2]).replace(['\r', '\n'], " ");
            Err(Error::raw(text))
        }
        ("protocol", 3) => debug_protocol(ctx, argv[2]),
        ("digest", 2) => debug_digest(ctx),
        ("digest-value", _) => debug_digest_value(ctx, &argv[2..]),
        ("populate", 3..=5) => debug_populate(ctx, argv),
        ("segfault" | "panic" | "assert" | "oom" | "crash-and-recover" | "restart" | "leak", _) => {
            Err(Error::err(format!(
                "DEBUG {} is not supported: Larder does not crash, restart or leak on request",
                sub.to_ascii_uppercase()
            )))
        }
        ("reload", _) => debug_reload(ctx, &argv[2..]),
        ("loadaof" | "aof-flush-sleep" | "set-skip-checksum-validation", _) => {
            Err(Error::err(format!(
                "DEBUG {} is not supported: Larder has no AOF",
                sub.to_ascii_uppercase()
            )))
        }
        ("change-repl-id" | "replicate" | "drop-cluster-packet-filter" | "clusterlink", _) => {
            Err(Error::err(format!(
                "DEBUG {} is not supported: Larder has no replication or cluster",
                sub.to_ascii_uppercase()
            )))
        }
        (
            "digest"
            | "htstats"
            | "htstats-key"
            | "mallctl"
            | "mallctl-str"
            | "sdslen"
            | "stringmatch-test"
            | "structsize"
            | "listpack"
            | "quicklist"
            | "quicklist-packed-threshold"
            | "client-eviction"
            | "pause-cron"
            | "replybuffer"
            | "config-rewrite-force-all",
            _,
        ) => Err(Error::err(format!(
            "DEBUG {} is not supported by Larder: it has no such structure or setting",
            sub.to_ascii_uppercase()
        ))),
        _ => Err(Error::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(argv[1])
        ))),
    }
}

/// C's atoi: leading digits (after an optional sign), else 0.
fn atoi(arg: &[u8]) -> i64 {
    let text = std::str::from_utf8(arg).unwrap_or("").trim_start();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    sign * digits[..end].parse::<i64>().unwrap_or(0)
}

/// `Value at:<address> refcount:<n> encoding:<OBJECT ENCODING>
/// serializedlength:<RDB bytes> lru:<LRU clock> lru_seconds_idle:<s>`.
fn debug_object(ctx: &mut Ctx, key: &[u8]) -> Result<()> {
    let (db, now) = (ctx.db(), ctx.now_ms);
    let line = {
        let mut locked = ctx.locks.key(key)?;
        let Some(entry) = locked.db(db, key)?.peek(key, now) else {
            return Err(Error::err("no such key"));
        };
        let value = entry.value();
        // Redis shares the integers 0..9999 (refcount INT_MAX).
        let shared = !entry.is_raw_string()
            && matches!(value, ValueRef::Str(s)
            if super::parse::strict_i64(s).is_some_and(|n| (0..10_000).contains(&n)));
        let idle = entry.idle_secs(now);
        // Redis's LRU clock: seconds, 24 bits, as of the last access.
        let lru = ((now / 1000).saturating_sub(idle)) & ((1 << 24) - 1);
        format!(
            "Value at:{:p} refcount:{} encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
            entry as *const _,
            if shared { i32::MAX } else { 1 },
            entry.encoding(),
            serialized_length(value, now),
            lru,
            idle
        )
    };
    ctx.out.simple(&line);
    Ok(())
}

/// The bytes of a value in an RDB file, without LZF compression: strings
/// exactly as `rdbSaveRawString` writes them (integers in 1, 2 or 4 bytes
/// when they fit), collections as their element count and elements.
/// Redis compresses strings over 20 bytes and packs small collections into
/// one listpack blob, so for those its figure is smaller.
fn serialized_length(value: ValueRef, now_ms: u64) -> usize {
    match value {
        ValueRef::Str(s) => rdb_string_len(s),
        ValueRef::List(list) => {
            rdb_len_len(list.len()) + list.iter().map(rdb_string_len).sum::<usize>()
        }
        ValueRef::Set(set) => {
            rdb_len_len(set.len()) + set.iter().map(rdb_string_len).sum::<usize>()
        }
        ValueRef::Hash(hash) => {
            let fields: Vec<(&[u8], &[u8])> = hash.iter_live(now_ms).collect();
            rdb_len_len(fields.len())
                + fields
                    .iter()
                    .map(|(f, v)| rdb_string_len(f) + rdb_string_len(v))
                    .sum::<usize>()
        }
        ValueRef::ZSet(zset) => {
            // Members, then each score as an 8-byte binary double.
            rdb_len_len(zset.len())
                + zset
                    .iter()
                    .map(|(member, _)| rdb_string_len(member) + 8)
                    .sum::<usize>()
        }
        ValueRef::Stream(stream) => {
            // Each entry: its 16-byte ID, field count, fields and values.
            let mut total = rdb_len_len(stream.len() as usize) + 16 * 3;
            stream.range(StreamId::MIN, StreamId::MAX, false, 0, |entry| {
                total += 16 + rdb_len_len(entry.len());
                for (field, value) in entry.pairs() {
                    total += rdb_string_len(field) + rdb_string_len(value);
                }
            });
            total
        }
    }
}

/// RDB's length prefix: 1, 2, 5 or 9 bytes.
fn rdb_len_len(len: usize) -> usize {
    match len {
        0..=63 => 1,
        64..=16383 => 2,
        _ if len <= u32::MAX as usize => 5,
        _ => 9,
    }
}

fn rdb_string_len(s: &[u8]) -> usize {
    // rdbTryIntegerEncoding: strings of at most 11 bytes that are the
    // canonical form of an integer in the 32-bit range.
    if s.len() <= 11 {
        if let Some(n) = super::parse::strict_i64(s) {
            if n.to_string().as_bytes() == s {
                if (-(1 << 7)..(1 << 7)).contains(&n) {
                    return 2;
                } else if (-(1 << 15)..(1 << 15)).contains(&n) {
                    return 3;
                } else if (-(1i64 << 31)..(1i64 << 31)).contains(&n) {
                    return 5;
                }
            }
        }
    }
    rdb_len_len(s.len()) + s.len()
}

// ---------------------------------------------------------------- DIGEST
//
// Redis's dataset digest (debug.c): unordered collections xor their
// elements' SHA1s, ordered ones feed each SHA1 back, so two servers with
// the same data give the same digest whatever their layout.

type Digest = [u8; 20];

fn sha1(data: &[u8]) -> Digest {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}

fn xor_digest(digest: &mut Digest, data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

fn mix_digest(digest: &mut Digest, data: &[u8]) {
    xor_digest(digest, data);
    *digest = sha1(digest);
}

/// Redis's object type numbers (OBJ_STRING...), which the digest mixes in.
fn type_number(value: &ValueRef) -> u32 {
    match value {
        ValueRef::Str(_) => 0,
        ValueRef::List(_) => 1,
        ValueRef::Set(_) => 2,
        ValueRef::ZSet(_) => 3,
        ValueRef::Hash(_) => 4,
        ValueRef::Stream(_) => 6,
    }
}

/// `xorObjectDigest`: the value's type, its elements, and whether it has
/// a TTL.
fn value_digest(digest: &mut Digest, entry: &crate::store::Entry, now_ms: u64) {
    let value = entry.value();
    mix_digest(digest, &type_number(&value).to_be_bytes());
    match value {
        ValueRef::Str(s) => mix_digest(digest, s),
        ValueRef::List(list) => list.iter().for_each(|item| mix_digest(digest, item)),
        ValueRef::Set(set) => set.iter().for_each(|member| xor_digest(digest, member)),
        ValueRef::ZSet(zset) => {
            for (member, score) in zset.iter() {
                let mut element = [0u8; 20];
                mix_digest(&mut element, member);
                mix_digest(
                    &mut element,
                    crate::protocol::format_double(score).as_bytes(),
                );
                xor_digest(digest, &element);
            }
        }
        ValueRef::Hash(hash) => {
            for (field, value) in hash.iter_live(now_ms) {
                let mut element = [0u8; 20];
                mix_digest(&mut element, field);
                mix_digest(&mut element, value);
                xor_digest(digest, &element);
            }
        }
        ValueRef::Stream(stream) => {
            // As Redis: each entry's "ms.seq", then its fields and values.
            stream.range(StreamId::MIN, StreamId::MAX, false, 0, |entry| {
                mix_digest(
                    digest,
                    format!("{}.{}", entry.id.ms, entry.id.seq).as_bytes(),
                );
                for (field, value) in entry.pairs() {
                    mix_digest(digest, field);
                    mix_digest(digest, value);
                }
            });
        }
    }
    if entry.expires_at().is_some() {
        xor_digest(digest, b"!!expire!!");
    }
}

fn hex(digest: &Digest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// DEBUG DIGEST: every database's keys and values, all zeros when empty.
fn debug_digest(ctx: &mut Ctx) -> Result<()> {
    let now = ctx.now_ms;
    let databases = ctx.store().databases();
    let mut per_db: Vec<Option<Digest>> = vec![None; databases];
    ctx.locks.each_shard(|shard| {
        for (db, combined) in per_db.iter_mut().enumerate() {
            let Some(keys) = shard.existing_db(db) else {
                continue;
            };
            for (key, entry) in keys.iter(now) {
                let mut digest = [0u8; 20];
                mix_digest(&mut digest, key);
                value_digest(&mut digest, entry, now);
                // Redis: xorDigest(final, digest), final ^= SHA1(digest).
                xor_digest(combined.get_or_insert([0u8; 20]), &digest);
            }
        }
        Ok(())
    })?;
    let mut total = [0u8; 20];
    for (db, keys) in per_db.iter().enumerate() {
        if let Some(keys) = keys {
            mix_digest(&mut total, &(db as u32).to_be_bytes());
            xor_digest_raw(&mut total, keys);
        }
    }
    ctx.out.simple(&hex(&total));
    Ok(())
}

/// Xors a database's combined key digests into the total: xor commutes,
/// so this is Redis's key-by-key xor after the database's id is mixed in.
fn xor_digest_raw(total: &mut Digest, keys: &Digest) {
    for (t, k) in total.iter_mut().zip(keys) {
        *t ^= k;
    }
}

/// DEBUG DIGEST-VALUE key...: each value's digest (zeros for a missing key).
fn debug_digest_value(ctx: &mut Ctx, keys: &[&[u8]]) -> Result<()> {
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut digests = Vec::with_capacity(keys.len());
    for key in keys {
        let mut digest = [0u8; 20];
        let mut locked = ctx.locks.key(key)?;
        if let Some(entry) = locked.db(db, key)?.peek(key, now) {
            value_digest(&mut digest, entry, now);
        }
        digests.push(hex(&digest));
    }
    ctx.out.array(digests.len());
    for digest in digests {
        ctx.out.simple(&digest);
    }
    Ok(())
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE], as Redis: saves the RDB file,
/// empties every database and the function libraries, and loads the file
/// back; meanwhile other clients get -LOADING. NOSAVE loads the file as it
/// is, NOFLUSH keeps the dataset (a key or library the file also has is
/// then an error, unless MERGE, which replaces it).
fn debug_reload(ctx: &mut Ctx, options: &[&[u8]]) -> Result<()> {
    let (mut merge, mut flush, mut save) = (false, true, true);
    for option in options {
        if is_keyword(option, "MERGE") {
            merge = true;
        } else if is_keyword(option, "NOFLUSH") {
            flush = false;
        } else if is_keyword(option, "NOSAVE") {
            save = false;
        } else {
            return Err(Error::err(
                "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            ));
        }
    }
    // The save and the load take every shard lock in turn, which a
    // transaction holds.
    if ctx.locks.in_transaction() {
        return Err(Error::err(
            "DEBUG RELOAD is not allowed inside a transaction",
        ));
    }
    // Emptying the databases would delete every row written behind, and
    // keys loaded from a file are not written behind again.
    if ctx.shared.writebehind.is_some() {
        return Err(Error::err(
            "DEBUG RELOAD is not supported while write-behind is on: it would delete the keys from PostgreSQL",
        ));
    }
    let shared = ctx.shared;
    let persistence = &shared.persistence;
    if persistence.is_loading() {
        return Err(Error::raw(super::LOADING_ERROR));
    }
    if save {
        // A background save running finishes first (Redis's foreground
        // save does not wait for its child; one snapshot at a time here).
        let saved = super::off_the_worker(|| {
            while persistence.is_saving() {
                std::thread::sleep(Duration::from_millis(5));
            }
            persistence.save(&shared.store, &shared.save_options())
        });
        if saved.is_err() {
            // Redis answers a bare `-ERR`; the reason is in the log.
            return Err(Error::raw("ERR"));
        }
    }
    // Other clients get -LOADING from here on; taking every lock below
    // waits for the commands already running.
    if !persistence.begin_loading() {
        return Err(Error::raw(super::LOADING_ERROR));
    }
    if flush {
        let removed = match ctx.locks.all() {
            Ok(mut all) => all.clear_all_dbs(),
            Err(error) => {
                persistence.set_loading(false);
                return Err(error);
            }
        };
        shared.pubsub.flushed();
        ctx.store().free_removed(removed, false);
        shared.scripting.function_flush();
    }
    let loaded = shared.load_rdb(merge);
    // Stopped by a shutdown: the dataset is partial and stays flagged as
    // loading, so that the shutdown does not save it over the file.
    if shared.is_stopping() {
        return Err(Error::err("Error trying to load the RDB dump"));
    }
    persistence.set_loading(false);
    match loaded {
        Ok(Some(_)) => {
            tracing::warn!("DB reloaded by DEBUG RELOAD");
            ctx.out.ok();
            Ok(())
        }
        Ok(None) | Err(_) => Err(Error::err("Error trying to load the RDB dump")),
    }
}

/// DEBUG PROTOCOL <type>: a sample reply of each RESP type, as Redis's.
fn debug_protocol(ctx: &mut Ctx, kind: &[u8]) -> Result<()> {
    let out = &mut *ctx.out;
    match String::from_utf8_lossy(kind).to_ascii_lowercase().as_str() {
        "string" => out.bulk(b"Hello World"),
        "integer" => out.int(12345),
        // Redis's sample value, not an approximation of pi.
        #[allow(clippy::approx_constant)]
        "double" => out.double(3.141),
        "bignum" => {
            let digits = b"1234567999999999999999999999999999999";
            if out.is_resp3() {
                out.raw(b"(1234567999999999999999999999999999999\r\n");
            } else {
                out.bulk(digits);
            }
        }
        "null" => out.null(),
        "array" | "set" => {
            if kind.eq_ignore_ascii_case(b"set") {
                out.set(3);
            } else {
                out.array(3);
            }
            (0..3).for_each(|j| out.int(j));
        }
        "map" => {
            out.map(3);
            for j in 0..3 {
                out.int(j);
                out.boolean(j == 1);
            }
        }
        "attrib" => {
            if out.is_resp3() {
                out.raw(b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n");
            }
            out.bulk(b"Some real reply following the attribute");
        }
        "push" => {
            if !out.is_resp3() {
                return Err(Error::err("RESP2 is not supported by this command"));
            }
            out.push(2);
            out.bulk(b"server-cpu-usage");
            out.int(42);
            out.bulk(b"Some real reply following the push reply");
        }
        "true" => out.boolean(true),
        "false" => out.boolean(false),
        "verbatim" => out.verbatim("txt", b"This is a verbatim\nstring"),
        _ => {
            return Err(Error::err(
                "Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
            ))
        }
    }
    Ok(())
}

/// DEBUG POPULATE <count> [<prefix>] [<size>]: string keys `prefix:N` with
/// `value:N` (cut or zero-padded to `size`), skipping keys that exist.
fn debug_populate(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let count = super::parse::strict_i64(argv[2]).ok_or_else(Error::not_integer)?;
    if count < 0 {
        return Err(Error::err("value is out of range, must be positive"));
    }
    let prefix: &[u8] = argv.get(3).copied().unwrap_or(b"key");
    let size = match argv.get(4) {
        Some(arg) => {
            let size = super::parse::strict_i64(arg).ok_or_else(Error::not_integer)?;
            if size < 0 {
                return Err(Error::err("value is out of range, must be positive"));
            }
            Some(size as usize)
        }
        None => None,
    };
    let (db, now) = (ctx.db(), ctx.now_ms);
    for n in 0..count {
        let mut key = prefix.to_vec();
        key.extend_from_slice(format!(":{n}").as_bytes());
        let mut value = format!("value:{n}").into_bytes();
        if let Some(size) = size {
            value.resize(size, 0);
        }
        let mut locked = ctx.locks.key(&key)?;
        let target = locked.db(db, &key)?;
        if !target.contains(&key, now) {
            target.insert_str(&key, &value, None, now);
        }
    }
    ctx.out.ok();
    Ok(())
}

/// Redis 7.0's DEBUG HELP, word for word: every subcommand it lists either
/// works here or answers with an error saying why it does not.
const HELP: &[&str] = &[
    "AOF-FLUSH-SLEEP <microsec>",
    "    Server will sleep before flushing the AOF, this is used for testing.",
    "ASSERT",
    "    Crash by assertion failed.",
    "CHANGE-REPL-ID",
    "    Change the replication IDs of the instance.",
    "    Dangerous: should be used only for testing the replication subsystem.",
    "CONFIG-REWRITE-FORCE-ALL",
    "    Like CONFIG REWRITE but writes all configuration options, including",
    "    keywords not listed in original configuration file or default values.",
    "CRASH-AND-RECOVER [<milliseconds>]",
    "    Hard crash and restart after a <milliseconds> delay (default 0).",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LEAK <string>",
    "    Create a memory leak of the input string.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "HTSTATS <dbid>",
    "    Return hash table statistics of the specified Redis database.",
    "HTSTATS-KEY <key>",
    "    Like HTSTATS but for the hash table stored at <key>'s value.",
    "LOADAOF",
    "    Flush the AOF buffers on disk and reload the AOF in memory.",
    "REPLICATE <string>",
    "    Replicates the provided string to replicas, allowing data divergence.",
    "MALLCTL <key> [<val>]",
    "    Get or set a malloc tuning integer.",
    "MALLCTL-STR <key> [<val>]",
    "    Get or set a malloc tuning string.",
    "OBJECT <key>",
    "    Show low level info about `key` and associated value.",
    "DROP-CLUSTER-PACKET-FILTER <packet-type>",
    "    Drop all packets that match the filtered type. Set to -1 allow all packets.",
    "OOM",
    "    Crash the server simulating an out-of-memory error.",
    "PANIC",
    "    Crash the server simulating a panic.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas. Cluster slots are not respected so keys not belonging to the",
    "    current node can be created in cluster mode.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
    "    * MERGE: conflicting keys will be loaded from RDB.",
    "    * NOFLUSH: the existing database will not be removed before load, but",
    "      conflicting keys will generate an exception and kill the server.",
    "    * NOSAVE: the database will be loaded from an existing RDB file.",
    "    Examples:",
    "    * DEBUG RELOAD: verify that the server is able to persist, flush and reload",
    "      the database.",
    "    * DEBUG RELOAD NOSAVE: replace the current database with the contents of an",
    "      existing RDB file.",
    "    * DEBUG RELOAD NOSAVE NOFLUSH MERGE: add the contents of an existing RDB",
    "      file to the database.",
    "RESTART [<milliseconds>]",
    "    Graceful restart: save config, db, restart after a <milliseconds> delay (default 0).",
    "SDSLEN <key>",
    "    Show low level SDS string info representing `key` and value.",
    "SEGFAULT",
    "    Crash the server with sigsegv.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "QUICKLIST-PACKED-THRESHOLD <size>",
    "    Sets the threshold for elements to be inserted as plain vs packed nodes",
    "    Default value is 1GB, allows values up to 4GB. Setting to 0 restores to default.",
    "SET-SKIP-CHECKSUM-VALIDATION <0|1>",
    "    Enables or disables checksum checks for RDB files and RESTORE's payload.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "STRINGMATCH-TEST",
    "    Run a fuzz tester against the stringmatchlen() function.",
    "STRUCTSIZE",
    "    Return the size of different Redis core C structures.",
    "LISTPACK <key>",
    "    Show low level info about the listpack encoding of <key>.",
    "QUICKLIST <key> [<0|1>]",
    "    Show low level info about the quicklist encoding of <key>.",
    "    The optional argument (0 by default) sets the level of detail",
    "CLIENT-EVICTION",
    "    Show low level client eviction pools info (maxmemory-clients).",
    "PAUSE-CRON <0|1>",
    "    Stop periodic cron job processing.",
    "REPLYBUFFER PEAK-RESET-TIME <NEVER||RESET|time>",
    "    Sets the time (in milliseconds) to wait between client reply buffer peak resets.",
    "    In case NEVER is provided the last observed peak will never be reset",
    "    In case RESET is provided the peak reset time will be restored to the default value",
    "REPLYBUFFER RESIZING <0|1>",
    "    Enable or disable the reply buffer resize cron job",
    "CLUSTERLINK KILL <to|from|all> <node-id>",
    "    Kills the link based on the direction to/from (both) with the provided node.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdb_lengths() {
        assert_eq!(rdb_string_len(b"bar"), 4);
        assert_eq!(rdb_string_len(b"12345"), 3);
        assert_eq!(rdb_string_len(b"-5"), 2);
        assert_eq!(rdb_string_len(b"0123"), 5);
        assert_eq!(rdb_string_len(&[b'x'; 100]), 102);
        assert_eq!(atoi(b"1"), 1);
        assert_eq!(atoi(b"0"), 0);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b" 12abc"), 12);
    }
}
