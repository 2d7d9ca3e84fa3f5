//! Stream commands, at Redis 7.0 fidelity: XADD, XLEN, XRANGE, XREVRANGE,
//! XDEL, XTRIM, XREAD (BLOCK included; `+` reads the last entry as in
//! Redis 7.4), XSETID, XINFO STREAM (FULL and COUNT included). Consumer
//! groups are in `stream_groups.rs`.
//!
//! Argument parsing, its order of checks and its error texts follow
//! Redis's `t_stream.c`, including its ID parser (`strtoull`'s leading
//! spaces and signs are accepted, as there).

use std::io::Write as _;
use std::time::Duration;

use super::connection::container;
use super::flags::*;
use super::parse::{int_arg, is_keyword, strict_i64};
use super::reads;
use super::{CommandSpec, Ctx, KeySpec, FIRST_KEY, NO_KEYS};
use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;
use crate::pubsub::events;
use crate::shared::blocking::{TimeoutReply, WaitKind};
use crate::store::changes::Effect;
use crate::store::types::{AddError, AddId, EntryView, StreamId, StreamValue, Trim};
use crate::store::{Db, Value, ValueRef};

pub(super) const STREAM: &[&str] = &["stream"];

pub(super) const KEY_AT_2: KeySpec = KeySpec::Range {
    first: 2,
    last: 2,
    step: 1,
};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xadd", -5, WRITE | DENYOOM | FAST, FIRST_KEY, xadd)
        .acl(STREAM)
        .tips(&["nondeterministic_output"])
        .doc(
            "stream",
            "5.0.0",
            "Appends a new message to a stream. Creates the key if it doesn't exist.",
            "O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted.",
        ),
    CommandSpec::new("xlen", 2, READONLY | FAST, FIRST_KEY, xlen)
        .acl(STREAM)
        .doc("stream", "5.0.0", "Return the number of messages in a stream.", "O(1)"),
    CommandSpec::new("xrange", -4, READONLY, FIRST_KEY, xrange)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Returns the messages from a stream within a range of IDs.",
            "O(N) with N being the number of elements being returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).",
        ),
    CommandSpec::new("xrevrange", -4, READONLY, FIRST_KEY, xrevrange)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Returns the messages from a stream within a range of IDs in reverse order.",
            "O(N) with N being the number of elements returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1).",
        ),
    CommandSpec::new("xdel", -3, WRITE | FAST, FIRST_KEY, xdel)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Returns the number of messages after removing them from a stream.",
            "O(1) for each single item to delete in the stream, regardless of the stream size.",
        ),
    CommandSpec::new("xtrim", -4, WRITE, FIRST_KEY, xtrim)
        .acl(STREAM)
        .tips(&["nondeterministic_output"])
        .doc(
            "stream",
            "5.0.0",
            "Deletes messages from the beginning of a stream.",
            "O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation.",
        ),
    CommandSpec::new("xread", -4, READONLY | BLOCKING, KeySpec::StreamsKeyword, xread)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
            "",
        ),
    CommandSpec::new("xsetid", -3, WRITE | DENYOOM | FAST, FIRST_KEY, xsetid)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "An internal command for replicating stream values.",
            "O(1)",
        ),
    CommandSpec::new("xinfo", -2, 0, NO_KEYS, container)
        .doc(
            "stream",
            "5.0.0",
            "A container for stream introspection commands.",
            "Depends on subcommand.",
        )
        .subcommands(XINFO_SUBCOMMANDS),
];

static XINFO_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xinfo|stream", -3, READONLY, KEY_AT_2, xinfo_stream)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Returns information about a stream.",
            "O(1)",
        ),
    super::stream_groups::XINFO_GROUPS,
    super::stream_groups::XINFO_CONSUMERS,
    super::stream_groups::XINFO_HELP,
];

// ---------------------------------------------------------------- IDs

pub(super) fn invalid_id() -> Error {
    Error::err("Invalid stream ID specified as stream command argument")
}

/// Redis's `string2ull`: `string2ll` for non-negative numbers, else C's
/// `strtoull` (leading white space, a sign, then only digits; a `-`
/// negates modulo 2^64).
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(n) = strict_i64(s) {
        return u64::try_from(n).ok();
    }
    let mut at = 0;
    while at < s.len() && matches!(s[at], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        at += 1;
    }
    let negative = s.get(at) == Some(&b'-');
    if matches!(s.get(at), Some(b'-' | b'+')) {
        at += 1;
    }
    let digits = &s[at..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value = 0u64;
    for &d in digits {
        value = value.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// What an ID argument may be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum IdForm {
    /// `-` and `+` allowed (XRANGE bounds).
    Loose,
    /// Only `ms[-seq]` (XADD, XDEL, XREAD...).
    Strict,
    /// `ms[-seq]` or `ms-*` (XADD's ID).
    Add,
}

/// Redis's `streamGenericParseIDOrReply`: `missing_seq` is the sequence of
/// a bare `ms`. For [`IdForm::Add`], `ms-*` gives `AddId::Ms`.
pub(super) fn parse_id(arg: &[u8], missing_seq: u64, form: IdForm) -> Result<AddId> {
    if arg.len() > 127 {
        return Err(invalid_id());
    }
    // Redis reads the argument as a C string.
    let arg = arg.split(|&b| b == 0).next().unwrap_or_default();
    match arg {
        b"-" | b"+" if form != IdForm::Loose => return Err(invalid_id()),
        b"-" => return Ok(AddId::Exact(StreamId::MIN)),
        b"+" => return Ok(AddId::Exact(StreamId::MAX)),
        _ => {}
    }
    let (ms, seq) = match arg.iter().position(|&b| b == b'-') {
        Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
        None => (arg, None),
    };
    let ms = string2ull(ms).ok_or_else(invalid_id)?;
    match seq {
        None => Ok(AddId::Exact(StreamId::new(ms, missing_seq))),
        Some(b"*") if form == IdForm::Add => Ok(AddId::Ms(ms)),
        Some(seq) => Ok(AddId::Exact(StreamId::new(
            ms,
            string2ull(seq).ok_or_else(invalid_id)?,
        ))),
    }
}

pub(super) fn parse_strict_id(arg: &[u8], missing_seq: u64) -> Result<StreamId> {
    match parse_id(arg, missing_seq, IdForm::Strict)? {
        AddId::Exact(id) => Ok(id),
        _ => Err(invalid_id()),
    }
}

/// An XRANGE bound: `(` makes it exclusive (then strict).
pub(super) fn parse_interval_id(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool)> {
    let exclusive = arg.len() > 1 && arg[0] == b'(';
    let form = if exclusive {
        IdForm::Strict
    } else {
        IdForm::Loose
    };
    let body = if exclusive { &arg[1..] } else { arg };
    match parse_id(body, missing_seq, form)? {
        AddId::Exact(id) => Ok((id, exclusive)),
        _ => Err(invalid_id()),
    }
}

pub(super) fn write_id(out: &mut ReplyBuf, id: StreamId) {
    let mut buf = [0u8; 41];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{}-{}", id.ms, id.seq);
    let len = cursor.position() as usize;
    out.bulk(&buf[..len]);
}

pub(super) fn write_entry(out: &mut ReplyBuf, entry: EntryView<'_>) {
    out.array(2);
    write_id(out, entry.id);
    out.array(entry.len() * 2);
    for (field, value) in entry.pairs() {
        out.bulk(field);
        out.bulk(value);
    }
}

// ---------------------------------------------------------------- lookups

pub(super) fn stream_ref<'d>(db: &'d Db, key: &[u8], now: u64) -> Result<Option<&'d StreamValue>> {
    match db.get(key, now) {
        None => Ok(None),
        Some(entry) => match entry.value() {
            ValueRef::Stream(stream) => Ok(Some(stream)),
            _ => Err(Error::wrong_type()),
        },
    }
}

pub(super) fn stream_mut<'d>(
    db: &'d mut Db,
    key: &[u8],
    now: u64,
) -> Result<Option<&'d mut StreamValue>> {
    match db.value_mut(key, now) {
        None => Ok(None),
        Some(Value::Stream(stream)) => Ok(Some(stream)),
        Some(_) => Err(Error::wrong_type()),
    }
}

pub(super) fn notify(ctx_shared: &crate::shared::Shared, event: &str, key: &[u8], db: usize) {
    ctx_shared.pubsub.notify(events::STREAM, event, key, db);
}

// ---------------------------------------------------------------- XADD / XTRIM options

struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    /// 0: no limit.
    limit: u64,
    no_mkstream: bool,
    /// XADD's ID and where it is.
    id: Option<(AddId, usize)>,
}

/// Redis's `streamParseAddOrTrimArgsOrReply`.
fn parse_trim_args(argv: &[&[u8]], xadd: bool) -> Result<TrimArgs> {
    let mut args = TrimArgs {
        trim: None,
        approx: false,
        limit: 0,
        no_mkstream: false,
        id: None,
    };
    let mut limit_given = false;
    let mut i = 2;
    let incompatible =
        || Error::err("syntax error, MAXLEN and MINID options at the same time are not compatible");
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = argv[i];
        if xadd && opt == b"*" {
            args.id = Some((AddId::Auto, i));
            break;
        } else if (is_keyword(opt, "maxlen") || is_keyword(opt, "minid")) && more > 0 {
            if args.trim.is_some() {
                return Err(incompatible());
            }
            args.approx = false;
            let next = argv[i + 1];
            if more >= 2 && (next == b"~" || next == b"=") {
                args.approx = next == b"~";
                i += 1;
            }
            let value = argv[i + 1];
            args.trim = Some(if is_keyword(opt, "maxlen") {
                let max = int_arg(value)?;
                if max < 0 {
                    return Err(Error::err("The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(max as u64)
            } else {
                Trim::MinId(parse_strict_id(value, 0)?)
            });
            i += 2;
        } else if is_keyword(opt, "limit") && more > 0 {
            let limit = int_arg(argv[i + 1])?;
            if limit < 0 {
                return Err(Error::err("The LIMIT argument must be >= 0."));
            }
            args.limit = limit as u64;
            limit_given = true;
            i += 2;
        } else if xadd && is_keyword(opt, "nomkstream") {
            args.no_mkstream = true;
            i += 1;
        } else if xadd {
            args.id = Some((parse_id(opt, 0, IdForm::Add)?, i));
            break;
        } else {
            return Err(Error::syntax());
        }
    }
    if args.limit > 0 && args.trim.is_none() {
        return Err(Error::err(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && args.trim.is_none() {
        return Err(Error::err(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !args.approx {
            return Err(Error::err(
                "syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if args.approx {
        // stream-node-max-entries (100) * 100, as Redis's default.
        args.limit = 10_000;
    } else {
        args.limit = 0;
    }
    Ok(args)
}

// ---------------------------------------------------------------- XADD

fn xadd(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let args = parse_trim_args(argv, true)?;
    let Some((id, id_pos)) = args.id else {
        return Err(Error::wrong_arity("xadd"));
    };
    let fields = &argv[id_pos + 1..];
    if fields.len() < 2 || fields.len() % 2 == 1 {
        return Err(Error::wrong_arity("xadd"));
    }
    if id == AddId::Exact(StreamId::MIN) {
        return Err(Error::err(
            "The ID specified in XADD must be greater than 0-0",
        ));
    }
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let created = stream_mut(db, key, now)?.is_none();
    if created {
        if args.no_mkstream {
            ctx.out.null();
            return Ok(());
        }
        // Created before the ID is checked: an ID refused leaves the empty
        // stream, as in Redis.
        db.insert(key, Value::Stream(Box::default()), None, now);
    }
    let stream = stream_mut(db, key, now)?.expect("present or just created");
    let added = stream.add(id, fields, now);
    let trimmed = match (added, args.trim) {
        (Ok(_), Some(trim)) => stream.trim(trim, args.approx, args.limit),
        _ => 0,
    };
    let new_id = match added {
        Ok(id) => id,
        Err(AddError::Exhausted) => {
            return Err(Error::err(
                "The stream has exhausted the last possible ID, unable to add more items",
            ))
        }
        Err(AddError::NotGreater) => {
            return Err(Error::err(
                "The ID specified in XADD is equal or smaller than the target stream top item",
            ))
        }
    };
    if trimmed > 0 || created {
        db.touch(key);
    } else {
        // The journal records the entry, not the whole stream.
        db.touch_with(
            key,
            Effect::StreamAdd {
                fields_and_values: fields,
            },
        );
    }
    drop(locked);
    write_id(ctx.out, new_id);
    shared.blocking.key_ready(dbi, key, Some(WaitKind::Stream));
    notify(shared, "xadd", key, dbi);
    if trimmed > 0 {
        notify(shared, "xtrim", key, dbi);
    }
    Ok(())
}

// ---------------------------------------------------------------- XLEN, XRANGE

fn xlen(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let stream = reads::counted(shared, dbi, key, stream_ref(locked.db(dbi, key)?, key, now))?;
    ctx.out.int(stream.map_or(0, |s| s.len() as i64));
    Ok(())
}

fn xrange(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    range_command(ctx, argv, false)
}

fn xrevrange(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    range_command(ctx, argv, true)
}

fn range_command(ctx: &mut Ctx, argv: &[&[u8]], rev: bool) -> Result<()> {
    let (start_arg, end_arg) = if rev {
        (argv[3], argv[2])
    } else {
        (argv[2], argv[3])
    };
    let (mut start, start_ex) = parse_interval_id(start_arg, 0)?;
    if start_ex {
        start = start
            .next()
            .ok_or_else(|| Error::err("invalid start ID for the interval"))?;
    }
    let (mut end, end_ex) = parse_interval_id(end_arg, u64::MAX)?;
    if end_ex {
        end = end
            .prev()
            .ok_or_else(|| Error::err("invalid end ID for the interval"))?;
    }
    let mut count: i64 = -1;
    let mut j = 4;
    while j < argv.len() {
        if is_keyword(argv[j], "count") && j + 1 < argv.len() {
            count = int_arg(argv[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(Error::syntax());
        }
    }
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let stream = reads::counted(shared, dbi, key, stream_ref(locked.db(dbi, key)?, key, now))?;
    let Some(stream) = stream else {
        ctx.out.array(0);
        return Ok(());
    };
    if count == 0 {
        ctx.out.null_array();
        return Ok(());
    }
    let limit = count.max(0) as u64;
    write_range(ctx.out, stream, start, end, rev, limit);
    Ok(())
}

/// The entries of `start..=end` as an array (the count is patched in once
/// known, as Redis's deferred length).
fn write_range(
    out: &mut ReplyBuf,
    stream: &StreamValue,
    start: StreamId,
    end: StreamId,
    rev: bool,
    count: u64,
) {
    let mut entries = ReplyBuf::new();
    entries.set_resp3(out.is_resp3());
    let n = stream.range(start, end, rev, count, |entry| {
        write_entry(&mut entries, entry)
    });
    out.array(n as usize);
    out.raw(&entries.buffer()[..]);
}

// ---------------------------------------------------------------- XDEL, XTRIM

fn xdel(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    if stream_mut(db, key, now)?.is_none() {
        ctx.out.int(0);
        return Ok(());
    }
    let ids = argv[2..]
        .iter()
        .map(|arg| parse_strict_id(arg, 0))
        .collect::<Result<Vec<_>>>()?;
    let stream = stream_mut(db, key, now)?.expect("checked above");
    let deleted = stream.delete_ids(&ids);
    if deleted > 0 {
        db.touch(key);
    }
    drop(locked);
    if deleted > 0 {
        notify(shared, "xdel", key, dbi);
    }
    ctx.out.int(deleted as i64);
    Ok(())
}

fn xtrim(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let args = parse_trim_args(argv, false)?;
    let trim = args.trim.expect("XTRIM requires a strategy");
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let Some(stream) = stream_mut(db, key, now)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let removed = stream.trim(trim, args.approx, args.limit);
    if removed > 0 {
        db.touch(key);
    }
    drop(locked);
    if removed > 0 {
        notify(shared, "xtrim", key, dbi);
    }
    ctx.out.int(removed as i64);
    Ok(())
}

// ---------------------------------------------------------------- XREAD

/// Where XREAD's keys are: after STREAMS, the first half of the rest
/// (`None` if there is no STREAMS or the rest is odd).
pub fn xread_key_range(argv: &[&[u8]]) -> Option<std::ops::Range<usize>> {
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let arg = argv[i];
        if is_keyword(arg, "streams") && more > 0 {
            let rest = argv.len() - (i + 1);
            if !rest.is_multiple_of(2) {
                return None;
            }
            return Some(i + 1..i + 1 + rest / 2);
        }
        if (is_keyword(arg, "block") || is_keyword(arg, "count")) && more > 0 {
            i += 2;
        } else if is_keyword(arg, "group") && more >= 2 {
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// BLOCK given to XREAD or XREADGROUP from a script (Redis refuses it
/// rather than treating it as a timeout).
pub(super) fn no_block_in_scripts(command: &[u8]) -> Error {
    Error::err(format!(
        "{} command is not allowed with BLOCK option from scripts",
        String::from_utf8_lossy(command)
    ))
}

/// XREAD BLOCK's timeout: integer milliseconds, 0 for ever.
pub(super) fn block_timeout(arg: &[u8]) -> Result<Option<Duration>> {
    let millis =
        strict_i64(arg).ok_or_else(|| Error::err("timeout is not an integer or out of range"))?;
    if millis < 0 {
        return Err(Error::err("timeout is negative"));
    }
    Ok((millis > 0).then(|| Duration::from_millis(millis as u64)))
}

/// The arguments of XREAD and XREADGROUP, parsed as Redis's
/// xreadCommand parses both.
pub(super) struct ReadArgs<'a> {
    pub count: u64,
    pub block: Option<Option<Duration>>,
    /// XREADGROUP's GROUP group consumer.
    pub group: Option<(&'a [u8], &'a [u8])>,
    pub noack: bool,
    pub keys: &'a [&'a [u8]],
    pub ids: &'a [&'a [u8]],
}

pub(super) fn parse_read<'a>(
    argv: &'a [&'a [u8]],
    in_script: bool,
    xreadgroup: bool,
) -> Result<ReadArgs<'a>> {
    let mut count = 0u64;
    let mut block = None;
    let mut streams_at = None;
    let mut group = None;
    let mut noack = false;
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let opt = argv[i];
        if is_keyword(opt, "block") && more > 0 {
            if in_script {
                return Err(no_block_in_scripts(argv[0]));
            }
            block = Some(block_timeout(argv[i + 1])?);
            i += 2;
        } else if is_keyword(opt, "count") && more > 0 {
            count = int_arg(argv[i + 1])?.max(0) as u64;
            i += 2;
        } else if is_keyword(opt, "streams") && more > 0 {
            let rest = argv.len() - (i + 1);
            if !rest.is_multiple_of(2) {
                return Err(Error::err(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            streams_at = Some(i + 1);
            break;
        } else if is_keyword(opt, "group") && more >= 2 {
            if !xreadgroup {
                return Err(Error::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            group = Some((argv[i + 1], argv[i + 2]));
            i += 3;
        } else if is_keyword(opt, "noack") {
            if !xreadgroup {
                return Err(Error::err(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            noack = true;
            i += 1;
        } else {
            return Err(Error::syntax());
        }
    }
    let Some(first) = streams_at else {
        return Err(Error::syntax());
    };
    let n = (argv.len() - first) / 2;
    Ok(ReadArgs {
        count,
        block,
        group,
        noack,
        keys: &argv[first..first + n],
        ids: &argv[first + n..],
    })
}

fn xread(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let ReadArgs {
        count,
        block,
        keys,
        ids: id_args,
        ..
    } = parse_read(argv, ctx.session.in_script, false)?;
    let n = keys.len();
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    // A blocked XREAD running again reads after what `$` meant when it
    // blocked.
    let resumed = ctx.session.rerunning && ctx.session.xread_after.len() == n;
    let mut locked = ctx.locks.keys(keys)?;
    let mut after: Vec<StreamId> = Vec::with_capacity(n);
    for (j, (key, arg)) in keys.iter().zip(id_args).enumerate() {
        if resumed {
            after.push(ctx.session.xread_after[j]);
            continue;
        }
        // Counted here and again when served below: Redis 7.0 looks every
        // key up in both of its passes.
        let stream = reads::counted(shared, dbi, key, stream_ref(locked.db(dbi, key)?, key, now))?;
        let last = stream.map_or(StreamId::MIN, StreamValue::last_id);
        after.push(match *arg {
            b"$" => last,
            b">" => {
                return Err(Error::err(
                    "The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                ))
            }
            // Redis 7.4: the last entry (entries after the one before it).
            b"+" => last.prev().unwrap_or(StreamId::MIN),
            _ => parse_strict_id(arg, 0)?,
        });
    }
    let mut body = ReplyBuf::new();
    body.set_resp3(ctx.out.is_resp3());
    let mut served = 0;
    for (key, &after) in keys.iter().zip(&after) {
        let stream = match stream_ref(locked.db(dbi, key)?, key, now) {
            // A key re-typed while the reader waited does not end the wait,
            // as in Redis 7.0: it just has nothing to serve.
            Err(_) if resumed => {
                reads::looked_up(shared, dbi, key, false);
                None
            }
            other => reads::counted(shared, dbi, key, other)?,
        };
        let Some(stream) = stream else {
            continue;
        };
        match stream.last_live_id() {
            Some(last) if last > after => {}
            _ => continue,
        }
        served += 1;
        if !body.is_resp3() {
            body.array(2);
        }
        body.bulk(key);
        let start = after.next().unwrap_or(StreamId::MAX);
        write_range(&mut body, stream, start, StreamId::MAX, false, count);
    }
    drop(locked);
    if served > 0 {
        if ctx.out.is_resp3() {
            ctx.out.map(served);
        } else {
            ctx.out.array(served);
        }
        ctx.out.raw(&body.buffer()[..]);
        return Ok(());
    }
    match block {
        Some(timeout) => {
            ctx.session.xread_after = after;
            super::list::block_or_timeout(
                ctx,
                keys,
                timeout,
                WaitKind::Stream,
                TimeoutReply::NullArray,
            );
        }
        None => ctx.out.null_array(),
    }
    Ok(())
}

// ---------------------------------------------------------------- XSETID

fn xsetid(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let id = parse_strict_id(argv[2], 0)?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if is_keyword(argv[i], "entriesadded") && more > 0 {
            let n = int_arg(argv[i + 1])?;
            if n < 0 {
                return Err(Error::err("entries_added must be positive"));
            }
            entries_added = Some(n as u64);
            i += 2;
        } else if is_keyword(argv[i], "maxdeletedid") && more > 0 {
            max_deleted = parse_strict_id(argv[i + 1], 0)?;
            if id < max_deleted {
                return Err(Error::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            i += 2;
        } else {
            return Err(Error::syntax());
        }
    }
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let Some(stream) = stream_mut(db, key, now)? else {
        return Err(Error::no_such_key());
    };
    if let Some(top) = stream.last_live_id() {
        if id < top {
            return Err(Error::err(
                "The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if entries_added.is_some_and(|n| stream.len() > n) {
            return Err(Error::err(
                "The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    if id < stream.max_deleted_id() {
        return Err(Error::err(
            "The ID specified in XSETID is smaller than current max_deleted_entry_id",
        ));
    }
    stream.set_last_id(id);
    if let Some(n) = entries_added {
        stream.set_entries_added(n);
    }
    if max_deleted != StreamId::MIN {
        stream.set_max_deleted_id(max_deleted);
    }
    db.touch(key);
    drop(locked);
    ctx.out.ok();
    notify(shared, "xsetid", key, dbi);
    Ok(())
}

// ---------------------------------------------------------------- XINFO STREAM

fn xinfo_stream(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[2];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    // The key is looked up before the options are read, as in Redis.
    let Some(stream) = stream_ref(locked.db(dbi, key)?, key, now)? else {
        return Err(Error::no_such_key());
    };
    let syntax = || {
        Error::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try XINFO HELP.",
            String::from_utf8_lossy(&argv[1][..argv[1].len().min(128)])
        ))
    };
    // XINFO STREAM key [FULL [COUNT count]]: None when not FULL.
    let full_count = match &argv[3..] {
        [] => None,
        [full] if is_keyword(full, "full") => Some(10),
        [full, count, n] if is_keyword(full, "full") && is_keyword(count, "count") => {
            let n = int_arg(n)?;
            Some(if n < 0 { 10 } else { n as u64 })
        }
        _ => return Err(syntax()),
    };
    let out = &mut *ctx.out;
    out.map(if full_count.is_some() { 9 } else { 10 });
    out.bulk(b"length");
    out.int(stream.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.int(stream.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(stream.rax_node_count() as i64);
    out.bulk(b"last-generated-id");
    write_id(out, stream.last_id());
    out.bulk(b"max-deleted-entry-id");
    write_id(out, stream.max_deleted_id());
    out.bulk(b"entries-added");
    out.int(stream.entries_added() as i64);
    out.bulk(b"recorded-first-entry-id");
    write_id(out, stream.first_id());
    if let Some(count) = full_count {
        out.bulk(b"entries");
        write_range(out, stream, StreamId::MIN, StreamId::MAX, false, count);
        out.bulk(b"groups");
        super::stream_groups::write_full_groups(out, stream, count);
        return Ok(());
    }
    out.bulk(b"groups");
    out.int(stream.groups().len() as i64);
    for (name, rev) in [(&b"first-entry"[..], false), (b"last-entry", true)] {
        out.bulk(name);
        let mut found = false;
        stream.range(StreamId::MIN, StreamId::MAX, rev, 1, |entry| {
            write_entry(out, entry);
            found = true;
        });
        if !found {
            out.null();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_redis_does() {
        let exact = |ms, seq| Ok(AddId::Exact(StreamId::new(ms, seq)));
        assert_eq!(parse_id(b"5", 0, IdForm::Strict), exact(5, 0));
        assert_eq!(parse_id(b"5", u64::MAX, IdForm::Strict), exact(5, u64::MAX));
        assert_eq!(parse_id(b"5-3", 0, IdForm::Strict), exact(5, 3));
        assert_eq!(parse_id(b" 5-1", 0, IdForm::Strict), exact(5, 1));
        assert_eq!(parse_id(b"+7", 0, IdForm::Strict), exact(7, 0));
        assert_eq!(parse_id(b"7- 3", 0, IdForm::Strict), exact(7, 3));
        // The first `-` splits, as Redis's strchr does.
        assert!(parse_id(b" -1", 0, IdForm::Strict).is_err());
        assert_eq!(parse_id(b"1- -1", 0, IdForm::Strict), exact(1, u64::MAX));
        assert_eq!(parse_id(b"5-*", 0, IdForm::Add), Ok(AddId::Ms(5)));
        assert!(parse_id(b"5-*", 0, IdForm::Strict).is_err());
        assert!(parse_id(b"-1", 0, IdForm::Strict).is_err());
        assert!(parse_id(b"+", 0, IdForm::Strict).is_err());
        assert_eq!(parse_id(b"+", 0, IdForm::Loose), exact(u64::MAX, u64::MAX));
        assert!(parse_id(b"18446744073709551616", 0, IdForm::Strict).is_err());
        assert_eq!(
            parse_id(b"18446744073709551615-1", 0, IdForm::Strict),
            exact(u64::MAX, 1)
        );
        assert!(parse_id(b"1-2-3", 0, IdForm::Strict).is_err());
        assert!(parse_id(b"", 0, IdForm::Strict).is_err());
    }

    #[test]
    fn xread_keys_follow_streams() {
        let argv: Vec<&[u8]> = vec![b"xread", b"count", b"2", b"streams", b"a", b"b", b"0", b"0"];
        assert_eq!(xread_key_range(&argv), Some(4..6));
        let odd: Vec<&[u8]> = vec![b"xread", b"streams", b"a", b"b", b"0"];
        assert_eq!(xread_key_range(&odd), None);
    }
}
