//! Stream consumer groups, at Redis 7.0 fidelity: XGROUP (CREATE, SETID,
//! DESTROY, CREATECONSUMER, DELCONSUMER, HELP), XREADGROUP (BLOCK
//! included), XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO GROUPS /
//! CONSUMERS / HELP.
//!
//! Argument parsing, its order of checks, error texts and keyspace events
//! follow Redis 7.0's `t_stream.c`; XINFO CONSUMERS and XINFO STREAM FULL
//! add Redis 7.2's `inactive` and `active-time` (a consumer's last
//! successful interaction: an entry XREADGROUP delivered to it, or one it
//! claimed), and a consumer's seen time follows 7.2 too (any read or claim
//! naming an existing consumer, whether it got anything or not), while
//! consumers are created where 7.0 creates them.
//!
//! Every change to a group is written behind with its stream (the stream's
//! record carries its groups: see `writebehind::encode`) through
//! [`Db::touch_unsignalled`](crate::store::Db::touch_unsignalled): like
//! Redis, group commands do not signal the key as modified, so WATCH and
//! client tracking do not see them.

use std::time::Duration;

use super::connection::container;
use super::flags::*;
use super::parse::{int_arg, is_keyword, strict_i64};
use super::stream::{
    notify, parse_id, parse_interval_id, parse_strict_id, stream_mut, stream_ref, write_entry,
    write_id, IdForm, KEY_AT_2, STREAM,
};
use super::{reads, reply_help, CommandSpec, Ctx, KeySpec, FIRST_KEY, NO_KEYS};
use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;
use crate::shared::blocking::{TimeoutReply, WaitKind};
use crate::store::changes::{Effect, GroupChange};
use crate::store::types::{AddId, ConsumerGroup, ConsumerName, StreamId, StreamValue};
use crate::store::{Db, Value};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xgroup", -2, 0, NO_KEYS, container)
        .doc(
            "stream",
            "5.0.0",
            "A container for consumer groups commands.",
            "Depends on subcommand.",
        )
        .subcommands(XGROUP_SUBCOMMANDS),
    CommandSpec::new(
        "xreadgroup",
        -7,
        WRITE | BLOCKING,
        KeySpec::StreamsKeyword,
        xreadgroup,
    )
    .acl(STREAM)
    .doc(
        "stream",
        "5.0.0",
        "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block.",
        "For each stream mentioned: O(M) with M being the number of elements returned. If M is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in order to serve the N clients blocked on the stream getting new data.",
    ),
    CommandSpec::new("xack", -4, WRITE | FAST, FIRST_KEY, xack)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL.",
            "O(1) for each message ID processed.",
        ),
    CommandSpec::new("xpending", -3, READONLY, FIRST_KEY, xpending)
        .acl(STREAM)
        .tips(&["nondeterministic_output"])
        .doc(
            "stream",
            "5.0.0",
            "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged.",
            "O(N) with N being the number of elements returned, so asking for a small fixed number of entries per call is O(1). O(M), where M is the total number of entries scanned when used with the IDLE filter. When the command returns just the summary and the list of consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for iterating every consumer.",
        ),
    CommandSpec::new("xclaim", -6, WRITE | FAST, FIRST_KEY, xclaim)
        .acl(STREAM)
        .tips(&["nondeterministic_output"])
        .doc(
            "stream",
            "5.0.0",
            "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer.",
            "O(log N) with N being the number of messages in the PEL of the consumer group.",
        ),
    CommandSpec::new("xautoclaim", -6, WRITE | FAST, FIRST_KEY, xautoclaim)
        .acl(STREAM)
        .tips(&["nondeterministic_output"])
        .doc(
            "stream",
            "6.2.0",
            "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer.",
            "O(1) if COUNT is small.",
        ),
];

static XGROUP_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xgroup|create", -5, WRITE | DENYOOM, KEY_AT_2, xgroup)
        .acl(STREAM)
        .doc("stream", "5.0.0", "Create a consumer group.", "O(1)"),
    CommandSpec::new("xgroup|setid", -5, WRITE, KEY_AT_2, xgroup)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Set a consumer group to an arbitrary last delivered ID value.",
            "O(1)",
        ),
    CommandSpec::new("xgroup|destroy", 4, WRITE, KEY_AT_2, xgroup)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Destroy a consumer group.",
            "O(N) where N is the number of entries in the group's pending entries list (PEL).",
        ),
    CommandSpec::new(
        "xgroup|createconsumer",
        5,
        WRITE | DENYOOM,
        KEY_AT_2,
        xgroup,
    )
    .acl(STREAM)
    .doc(
        "stream",
        "6.2.0",
        "Create a consumer in a consumer group.",
        "O(1)",
    ),
    CommandSpec::new("xgroup|delconsumer", 5, WRITE, KEY_AT_2, xgroup)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Delete a consumer from a consumer group.",
            "O(1)",
        ),
    CommandSpec::new("xgroup|help", 2, LOADING | STALE, NO_KEYS, xgroup)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Show helpful text about the different subcommands",
            "O(1)",
        ),
];

/// XINFO's subcommands besides STREAM (listed in `stream.rs`).
pub(super) const XINFO_GROUPS: CommandSpec =
    CommandSpec::new("xinfo|groups", 3, READONLY, KEY_AT_2, xinfo_groups)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "List the consumer groups of a stream",
            "O(1)",
        );

pub(super) const XINFO_CONSUMERS: CommandSpec =
    CommandSpec::new("xinfo|consumers", 4, READONLY, KEY_AT_2, xinfo_consumers)
        .acl(STREAM)
        .tips(&["nondeterministic_output"])
        .doc(
            "stream",
            "5.0.0",
            "List the consumers in a consumer group",
            "O(1)",
        );

pub(super) const XINFO_HELP: CommandSpec =
    CommandSpec::new("xinfo|help", 2, LOADING | STALE, NO_KEYS, xinfo_help)
        .acl(STREAM)
        .doc(
            "stream",
            "5.0.0",
            "Show helpful text about the different subcommands",
            "O(1)",
        );

// ---------------------------------------------------------------- errors

/// Redis's `addReplySubcommandSyntaxError`.
fn subcommand_syntax(subcommand: &[u8], command: &str) -> Error {
    Error::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try {command} HELP.",
        String::from_utf8_lossy(&subcommand[..subcommand.len().min(128)])
    ))
}

fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    // Redis prints names as C strings: up to the first NUL.
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end])
}

/// XPENDING, XCLAIM, XAUTOCLAIM: no such key or group.
fn no_key_or_group(key: &[u8], group: &[u8]) -> Error {
    Error::raw(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        text(key),
        text(group)
    ))
}

/// XGROUP's and XINFO CONSUMERS' missing group.
fn no_group(key: &[u8], group: &[u8]) -> Error {
    Error::raw(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        text(group),
        text(key)
    ))
}

/// Records that `change` happened to `group` of the stream `key`, for
/// write-behind (see the module's documentation).
fn group_changed(db: &mut Db, key: &[u8], group: &[u8], change: GroupChange<'_>) {
    db.touch_unsignalled(key, Some(Effect::StreamGroup { group, change }));
}

/// `now - then` in Redis's signed milliseconds.
fn elapsed(now: u64, then: u64) -> i64 {
    (now as i64).wrapping_sub(then as i64)
}

// ---------------------------------------------------------------- XGROUP

const XGROUP_HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
];

/// Every XGROUP subcommand, as Redis's one `xgroupCommand`.
fn xgroup(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let sub = argv[1];
    if argv.len() == 2 && is_keyword(sub, "help") {
        reply_help(ctx, "XGROUP", XGROUP_HELP);
        return Ok(());
    }
    if argv.len() < 4 {
        return Err(subcommand_syntax(sub, "XGROUP"));
    }
    let create = is_keyword(sub, "create");
    let setid = is_keyword(sub, "setid");
    let mut mkstream = false;
    let mut entries_read: Option<u64> = None;
    let mut i = 5;
    while i < argv.len() {
        if create && is_keyword(argv[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && is_keyword(argv[i], "entriesread") && i + 1 < argv.len() {
            let n = int_arg(argv[i + 1])?;
            if n < -1 {
                return Err(Error::err("value for ENTRIESREAD must be positive or -1"));
            }
            entries_read = u64::try_from(n).ok();
            i += 2;
        } else {
            return Err(subcommand_syntax(sub, "XGROUP"));
        }
    }
    let (key, group_name) = (argv[2], argv[3]);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let stream = stream_mut(db, key, now)?;
    if stream.is_none() && !mkstream {
        return Err(Error::err(
            "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        ));
    }
    let group_exists = stream
        .as_ref()
        .is_some_and(|s| s.group(group_name).is_some());
    let needs_group = setid || is_keyword(sub, "createconsumer") || is_keyword(sub, "delconsumer");
    if needs_group && !group_exists {
        return Err(no_group(key, group_name));
    }
    let event;
    if create && (5..=8).contains(&argv.len()) {
        let last = stream.as_ref().map_or(StreamId::MIN, |s| s.last_id());
        let id = if argv[4] == b"$" {
            last
        } else {
            parse_strict_id(argv[4], 0)?
        };
        if stream.is_none() {
            db.insert(key, Value::Stream(Box::default()), None, now);
            db.touch(key);
        }
        let stream = stream_mut(db, key, now)?.expect("present or just created");
        if !stream.create_group(group_name, ConsumerGroup::new(id, entries_read)) {
            return Err(Error::raw("BUSYGROUP Consumer Group name already exists"));
        }
        ctx.out.ok();
        event = Some("xgroup-create");
    } else if setid && (argv.len() == 5 || argv.len() == 7) {
        let stream = stream.expect("checked above");
        let id = if argv[4] == b"$" {
            stream.last_id()
        } else {
            match parse_id(argv[4], 0, IdForm::Loose)? {
                AddId::Exact(id) => id,
                _ => return Err(super::stream::invalid_id()),
            }
        };
        let group = stream.group_mut(group_name).expect("checked above");
        group.last_delivered = id;
        group.entries_read = entries_read;
        ctx.out.ok();
        event = Some("xgroup-setid");
    } else if is_keyword(sub, "destroy") && argv.len() == 4 {
        let stream = stream.expect("checked above");
        if stream.destroy_group(group_name) {
            ctx.out.int(1);
            event = Some("xgroup-destroy");
        } else {
            ctx.out.int(0);
            event = None;
        }
    } else if is_keyword(sub, "createconsumer") && argv.len() == 5 {
        let stream = stream.expect("checked above");
        let group = stream.group_mut(group_name).expect("checked above");
        let created = group.create_consumer(argv[4], now);
        ctx.out.int(created as i64);
        event = created.then_some("xgroup-createconsumer");
    } else if is_keyword(sub, "delconsumer") && argv.len() == 5 {
        let stream = stream.expect("checked above");
        let group = stream.group_mut(group_name).expect("checked above");
        let pending = group.delete_consumer(argv[4]);
        ctx.out.int(pending.unwrap_or(0) as i64);
        event = pending.is_some().then_some("xgroup-delconsumer");
    } else {
        return Err(subcommand_syntax(sub, "XGROUP"));
    }
    if event.is_some() {
        group_changed(db, key, group_name, GroupChange::Whole);
    }
    drop(locked);
    if let Some(event) = event {
        notify(shared, event, key, dbi);
        if event == "xgroup-destroy" {
            // Readers blocked on the group end with -NOGROUP.
            shared.blocking.key_ready(dbi, key, Some(WaitKind::Stream));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- XREADGROUP

/// The ID XREADGROUP reads after for `>` (Redis's "maximum ID" marker).
const NEW_ENTRIES: StreamId = StreamId::MAX;

/// Entries served to a woken XREADGROUP when it gave no COUNT (Redis's
/// `XREAD_BLOCKED_DEFAULT_COUNT`).
const BLOCKED_DEFAULT_COUNT: u64 = 1000;

/// The blocking kind of a group's readers: its tag is a hash of the group
/// name (FNV-1a), so that readers of one group are served in turn.
fn wait_kind(group: &[u8]) -> WaitKind {
    let hash = group.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| {
        (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
    });
    WaitKind::StreamGroup(hash)
}

struct ReadGroupArgs<'a> {
    group: &'a [u8],
    consumer: &'a [u8],
    count: u64,
    block: Option<Option<Duration>>,
    noack: bool,
    keys: &'a [&'a [u8]],
    ids: &'a [&'a [u8]],
}

fn parse_readgroup<'a>(argv: &'a [&'a [u8]], in_script: bool) -> Result<ReadGroupArgs<'a>> {
    let args = super::stream::parse_read(argv, in_script, true)?;
    let Some((group, consumer)) = args.group else {
        return Err(Error::err("Missing GROUP option for XREADGROUP"));
    };
    Ok(ReadGroupArgs {
        group,
        consumer,
        count: args.count,
        block: args.block,
        noack: args.noack,
        keys: args.keys,
        ids: args.ids,
    })
}

fn xreadgroup(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let args = parse_readgroup(argv, ctx.session.in_script)?;
    if ctx.session.rerunning {
        if let Some(woken) = ctx.session.woken_by.take().filter(|keys| !keys.is_empty()) {
            return serve_woken(ctx, &args, &woken);
        }
    }
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.keys(args.keys)?;
    let mut after: Vec<StreamId> = Vec::with_capacity(args.keys.len());
    for (key, arg) in args.keys.iter().zip(args.ids) {
        let stream = stream_ref(locked.db(dbi, key)?, key, now)?;
        if stream.and_then(|s| s.group(args.group)).is_none() {
            return Err(Error::raw(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                text(key),
                text(args.group)
            )));
        }
        after.push(match *arg {
            b"$" => {
                return Err(Error::err(
                    "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                ))
            }
            b">" => NEW_ENTRIES,
            _ => parse_strict_id(arg, 0)?,
        });
    }
    let mut body = ReplyBuf::new();
    body.set_resp3(ctx.out.is_resp3());
    let mut served = 0;
    let mut created: Vec<&[u8]> = Vec::new();
    let client = ctx.session.handle.id;
    for (key, &after) in args.keys.iter().zip(&after) {
        let db = locked.db(dbi, key)?;
        let stream = stream_mut(db, key, now)?.expect("checked above");
        reads::looked_up(shared, dbi, key, true);
        let history = after != NEW_ENTRIES;
        let delivered = stream
            .group(args.group)
            .map_or(StreamId::MAX, |g| g.last_delivered);
        // The last ID first: it is stored, while finding the last live
        // entry decodes the tail node.
        let has_new = !history
            && !stream.is_empty()
            && stream.last_id() > delivered
            && stream.last_live_id().is_some_and(|last| last > delivered);
        // An existing consumer is seen now whether or not the key serves
        // it (Redis 7.2's seen time: any attempted interaction).
        let group = stream.group_mut(args.group).expect("checked above");
        let seen = group.consumers.contains_key(args.consumer);
        group.touch_consumer(args.consumer, now);
        // A reader of the group blocked before this one goes first.
        if !history
            && (!has_new
                || !shared
                    .blocking
                    .may_take(dbi, key, client, wait_kind(args.group)))
        {
            if seen {
                let change = GroupChange::Pending {
                    consumer: Some(args.consumer),
                    ids: &[],
                };
                group_changed(db, key, args.group, change);
            }
            continue;
        }
        // Redis 7.0 creates the consumer only when it serves the key.
        let group = stream.group_mut(args.group).expect("checked above");
        let (_, new_consumer) = group.consumer_or_create(args.consumer, now);
        if new_consumer {
            created.push(key);
        }
        served += 1;
        if !body.is_resp3() {
            body.array(2);
        }
        body.bulk(key);
        let touched = if history {
            write_history(
                &mut body,
                stream,
                &args,
                after.next().unwrap_or(StreamId::MAX),
                now,
            )
        } else {
            write_new(&mut body, stream, &args, args.count, now)
        };
        let change = GroupChange::Pending {
            consumer: Some(args.consumer),
            ids: &touched,
        };
        group_changed(db, key, args.group, change);
    }
    drop(locked);
    for key in created {
        notify(shared, "xgroup-createconsumer", key, dbi);
    }
    if served > 0 {
        if ctx.out.is_resp3() {
            ctx.out.map(served);
        } else {
            ctx.out.array(served);
        }
        ctx.out.raw(&body.buffer()[..]);
        return Ok(());
    }
    match args.block {
        Some(timeout) => super::list::block_or_timeout(
            ctx,
            args.keys,
            timeout,
            wait_kind(args.group),
            TimeoutReply::NullArray,
        ),
        None => ctx.out.null_array(),
    }
    Ok(())
}

/// New entries for the group (`>`), made pending for the consumer unless
/// NOACK; the array of entries. Returns the IDs made pending.
fn write_new(
    out: &mut ReplyBuf,
    stream: &mut StreamValue,
    args: &ReadGroupArgs<'_>,
    count: u64,
    now: u64,
) -> Vec<StreamId> {
    let mut entries = ReplyBuf::new();
    entries.set_resp3(out.is_resp3());
    let mut delivered = Vec::new();
    let n = stream
        .read_group(args.group, args.consumer, count, args.noack, now, |entry| {
            delivered.push(entry.id);
            write_entry(&mut entries, entry)
        })
        .unwrap_or(0);
    out.array(n as usize);
    out.raw(&entries.buffer()[..]);
    if args.noack {
        delivered.clear();
    }
    delivered
}

/// The consumer's pending entries from `start` (Redis's
/// `streamReplyWithRangeFromConsumerPEL`): each entry still in the stream
/// is delivered again (its count and time updated); a deleted one is
/// answered with its ID and a null. Returns the IDs delivered again.
fn write_history(
    out: &mut ReplyBuf,
    stream: &mut StreamValue,
    args: &ReadGroupArgs<'_>,
    start: StreamId,
    now: u64,
) -> Vec<StreamId> {
    let ids: Vec<StreamId> = stream
        .group(args.group)
        .and_then(|g| g.consumers.get(args.consumer))
        .map(|consumer| {
            let pending = consumer.pending.range(start..);
            if args.count == 0 {
                pending.copied().collect()
            } else {
                pending.take(args.count as usize).copied().collect()
            }
        })
        .unwrap_or_default();
    out.array(ids.len());
    let mut redelivered = Vec::with_capacity(ids.len());
    for &id in &ids {
        if stream.visit_entry(id, |entry| write_entry(out, entry)) {
            redelivered.push(id);
        } else {
            out.array(2);
            write_id(out, id);
            out.null_array();
        }
    }
    if let Some(group) = stream.group_mut(args.group) {
        for id in &redelivered {
            if let Some(entry) = group.pel.get_mut(id) {
                entry.delivery_time = now;
                entry.delivery_count += 1;
            }
        }
    }
    redelivered
}

/// A blocked XREADGROUP woken for `woken` keys: served from the first of
/// them with entries the group has not read, as Redis serves a blocked
/// client from the key that became ready; a key deleted or re-typed, or a
/// group destroyed, ends the wait with Redis's errors.
fn serve_woken(ctx: &mut Ctx, args: &ReadGroupArgs<'_>, woken: &[Vec<u8>]) -> Result<()> {
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let count = match args.count {
        0 => BLOCKED_DEFAULT_COUNT,
        n => n,
    };
    let client = ctx.session.handle.id;
    let mut locked = ctx.locks.keys(args.keys)?;
    for key in woken {
        let key = key.as_slice();
        if !args.keys.contains(&key) {
            continue;
        }
        let db = locked.db(dbi, key)?;
        let Ok(Some(stream)) = stream_mut(db, key, now) else {
            return Err(Error::raw("UNBLOCKED the stream key no longer exists"));
        };
        let Some(group) = stream.group(args.group) else {
            return Err(Error::raw(
                "NOGROUP the consumer group this client was blocked on no longer exists",
            ));
        };
        if stream.last_id() <= group.last_delivered
            || !shared
                .blocking
                .may_take(dbi, key, client, wait_kind(args.group))
        {
            continue;
        }
        let group = stream.group_mut(args.group).expect("checked above");
        let (_, created) = group.consumer_or_create(args.consumer, now);
        group.touch_consumer(args.consumer, now);
        let out = &mut *ctx.out;
        if out.is_resp3() {
            out.map(1);
        } else {
            out.array(1);
            out.array(2);
        }
        out.bulk(key);
        let delivered = write_new(out, stream, args, count, now);
        let change = GroupChange::Pending {
            consumer: Some(args.consumer),
            ids: &delivered,
        };
        group_changed(db, key, args.group, change);
        drop(locked);
        if created {
            notify(shared, "xgroup-createconsumer", key, dbi);
        }
        return Ok(());
    }
    drop(locked);
    // Nothing for this group yet: wait on.
    super::list::block_or_timeout(
        ctx,
        args.keys,
        args.block.flatten(),
        wait_kind(args.group),
        TimeoutReply::NullArray,
    );
    Ok(())
}

// ---------------------------------------------------------------- XACK

fn xack(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, group_name) = (argv[1], argv[2]);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let Some(group) = stream_mut(db, key, now)?.and_then(|s| s.group_mut(group_name)) else {
        ctx.out.int(0);
        return Ok(());
    };
    let ids = argv[3..]
        .iter()
        .map(|arg| parse_strict_id(arg, 0))
        .collect::<Result<Vec<_>>>()?;
    let acked: Vec<StreamId> = ids.into_iter().filter(|&id| group.ack(id)).collect();
    if !acked.is_empty() {
        let change = GroupChange::Pending {
            consumer: None,
            ids: &acked,
        };
        group_changed(db, key, group_name, change);
    }
    ctx.out.int(acked.len() as i64);
    Ok(())
}

// ---------------------------------------------------------------- XPENDING

fn xpending(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, group_name) = (argv[1], argv[2]);
    let summary = argv.len() == 3;
    if !summary && !(6..=9).contains(&argv.len()) {
        return Err(Error::syntax());
    }
    let mut min_idle = 0i64;
    let mut range = (StreamId::MIN, StreamId::MAX);
    let mut count = 0i64;
    let mut consumer_name = None;
    if !summary {
        let mut at = 3;
        if is_keyword(argv[3], "idle") {
            min_idle = int_arg(argv[4])?;
            if argv.len() < 8 {
                return Err(Error::syntax());
            }
            at += 2;
        }
        count = int_arg(argv[at + 2])?.max(0);
        let (mut start, start_ex) = parse_interval_id(argv[at], 0)?;
        if start_ex {
            start = start
                .next()
                .ok_or_else(|| Error::err("invalid start ID for the interval"))?;
        }
        let (mut end, end_ex) = parse_interval_id(argv[at + 1], u64::MAX)?;
        if end_ex {
            end = end
                .prev()
                .ok_or_else(|| Error::err("invalid end ID for the interval"))?;
        }
        range = (start, end);
        consumer_name = argv.get(at + 3).copied();
    }
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let stream = stream_ref(locked.db(dbi, key)?, key, now)?;
    let Some(group) = stream.and_then(|s| s.group(group_name)) else {
        return Err(no_key_or_group(key, group_name));
    };
    let out = &mut *ctx.out;
    if summary {
        out.array(4);
        out.int(group.pel.len() as i64);
        match (group.pel.first_key_value(), group.pel.last_key_value()) {
            (Some((first, _)), Some((last, _))) => {
                write_id(out, *first);
                write_id(out, *last);
                let owners: Vec<_> = group
                    .consumers
                    .iter()
                    .filter(|(_, c)| !c.pending.is_empty())
                    .collect();
                out.array(owners.len());
                for (name, consumer) in owners {
                    out.array(2);
                    out.bulk(name);
                    out.bulk(consumer.pending.len().to_string().as_bytes());
                }
            }
            _ => {
                out.null();
                out.null();
                out.null_array();
            }
        }
        return Ok(());
    }
    let (start, end) = range;
    let ids: Box<dyn Iterator<Item = StreamId>> = match consumer_name {
        Some(name) => match group.consumers.get(name) {
            Some(consumer) if start <= end => {
                Box::new(consumer.pending.range(start..=end).copied())
            }
            Some(_) => Box::new(std::iter::empty()),
            None => {
                out.array(0);
                return Ok(());
            }
        },
        None if start <= end => Box::new(group.pel.range(start..=end).map(|(id, _)| *id)),
        None => Box::new(std::iter::empty()),
    };
    let mut rows = ReplyBuf::new();
    rows.set_resp3(out.is_resp3());
    let mut n = 0;
    for id in ids {
        if count == 0 {
            break;
        }
        let Some(entry) = group.pel.get(&id) else {
            continue;
        };
        let idle = elapsed(now, entry.delivery_time);
        if min_idle != 0 && idle < min_idle {
            continue;
        }
        count -= 1;
        n += 1;
        rows.array(4);
        write_id(&mut rows, id);
        rows.bulk(&entry.consumer);
        rows.int(idle.max(0));
        rows.int(entry.delivery_count as i64);
    }
    out.array(n);
    out.raw(&rows.buffer()[..]);
    Ok(())
}

// ---------------------------------------------------------------- XCLAIM

fn xclaim(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, group_name, consumer_name) = (argv[1], argv[2], argv[3]);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let stream = stream_mut(db, key, now)?;
    let Some(stream) = stream.filter(|s| s.group(group_name).is_some()) else {
        return Err(no_key_or_group(key, group_name));
    };
    let min_idle = strict_i64(argv[4])
        .ok_or_else(|| Error::err("Invalid min-idle-time argument for XCLAIM"))?
        .max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match parse_strict_id(argv[j], 0) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now_signed = now as i64;
    let mut force = false;
    let mut justid = false;
    let mut delivery_time: Option<i64> = None;
    let mut retry_count: i64 = -1;
    let mut last_id = StreamId::MIN;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = argv[j];
        let number = |arg: &[u8], what: &str| {
            strict_i64(arg)
                .ok_or_else(|| Error::err(format!("Invalid {what} option argument for XCLAIM")))
        };
        if is_keyword(opt, "force") {
            force = true;
        } else if is_keyword(opt, "justid") {
            justid = true;
        } else if is_keyword(opt, "idle") && more > 0 {
            j += 1;
            delivery_time = Some(now_signed.wrapping_sub(number(argv[j], "IDLE")?));
        } else if is_keyword(opt, "time") && more > 0 {
            j += 1;
            delivery_time = Some(number(argv[j], "TIME")?);
        } else if is_keyword(opt, "retrycount") && more > 0 {
            j += 1;
            retry_count = number(argv[j], "RETRYCOUNT")?;
        } else if is_keyword(opt, "lastid") && more > 0 {
            j += 1;
            last_id = parse_strict_id(argv[j], 0)?;
        } else {
            return Err(Error::err(format!(
                "Unrecognized XCLAIM option '{}'",
                text(opt)
            )));
        }
        j += 1;
    }
    let delivery_time = match delivery_time {
        Some(t) if t >= 0 && t <= now_signed => t as u64,
        _ => now,
    };
    let group = stream.group_mut(group_name).expect("checked above");
    let mut changed = false;
    if last_id > group.last_delivered {
        group.last_delivered = last_id;
        changed = true;
    }
    // An existing consumer is seen now, whatever it claims (Redis 7.2).
    if group.consumers.contains_key(consumer_name) {
        group.touch_consumer(consumer_name, now);
        changed = true;
    }
    let mut consumer: Option<ConsumerName> = None;
    let mut created = false;
    let mut claimed = Vec::new();
    let mut dropped = Vec::new();
    for id in ids {
        let exists = stream.entry_exists(id);
        let group = stream.group_mut(group_name).expect("checked above");
        if !exists {
            // An entry deleted from the stream leaves the PEL.
            if group.ack(id) {
                dropped.push(id);
            }
            continue;
        }
        // An entry FORCE creates is claimed whatever its idle time.
        match group.pel.get(&id) {
            Some(entry) if min_idle > 0 && elapsed(now, entry.delivery_time) < min_idle => continue,
            Some(_) => {}
            None if force => {}
            None => continue,
        }
        let owner = match &consumer {
            Some(owner) => owner.clone(),
            None => {
                let (owner, new) = group.consumer_or_create(consumer_name, now);
                group.touch_consumer(consumer_name, now);
                created = new;
                consumer = Some(owner.clone());
                owner
            }
        };
        let count = u64::try_from(retry_count).ok();
        group.claim(id, &owner, delivery_time, count, !justid);
        group.mark_active(consumer_name, now);
        claimed.push(id);
    }
    changed |= !claimed.is_empty() || !dropped.is_empty();
    dropped.extend_from_slice(&claimed);
    let touched = dropped;
    let out = &mut *ctx.out;
    out.array(claimed.len());
    for id in claimed {
        if justid {
            write_id(out, id);
        } else {
            stream.visit_entry(id, |entry| write_entry(out, entry));
        }
    }
    if changed {
        let change = GroupChange::Pending {
            consumer: Some(consumer_name),
            ids: &touched,
        };
        group_changed(db, key, group_name, change);
    }
    drop(locked);
    if created {
        notify(shared, "xgroup-createconsumer", key, dbi);
    }
    Ok(())
}

// ---------------------------------------------------------------- XAUTOCLAIM

fn xautoclaim(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, group_name, consumer_name) = (argv[1], argv[2], argv[3]);
    let min_idle = strict_i64(argv[4])
        .ok_or_else(|| Error::err("Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let (mut start, start_ex) = parse_interval_id(argv[5], 0)?;
    if start_ex {
        start = start
            .next()
            .ok_or_else(|| Error::err("invalid start ID for the interval"))?;
    }
    // Redis's bound: LONG_MAX / max(sizeof(streamID), attempts factor).
    const MAX_COUNT: i64 = i64::MAX / 16;
    const ATTEMPTS_FACTOR: u64 = 10;
    let mut count: u64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if is_keyword(argv[j], "count") && more > 0 {
            count = strict_i64(argv[j + 1])
                .filter(|n| (1..=MAX_COUNT).contains(n))
                .ok_or_else(|| Error::err("COUNT must be > 0"))? as u64;
            j += 1;
        } else if is_keyword(argv[j], "justid") {
            justid = true;
        } else {
            return Err(Error::syntax());
        }
        j += 1;
    }
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let stream = stream_mut(db, key, now)?;
    let Some(stream) = stream.filter(|s| s.group(group_name).is_some()) else {
        return Err(no_key_or_group(key, group_name));
    };
    // An existing consumer is seen now, whatever it claims (Redis 7.2).
    let group = stream.group_mut(group_name).expect("checked above");
    let seen = group.consumers.contains_key(consumer_name);
    group.touch_consumer(consumer_name, now);
    let mut attempts = count.saturating_mul(ATTEMPTS_FACTOR);
    // The PEL from `start`: as many IDs as may be examined, and one more
    // for the cursor.
    let candidates: Vec<StreamId> = stream
        .group(group_name)
        .expect("checked above")
        .pel
        .range(start..)
        .map(|(id, _)| *id)
        .take(
            usize::try_from(attempts)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        )
        .collect();
    let mut next = 0;
    let mut consumer: Option<ConsumerName> = None;
    let mut created = false;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    while attempts > 0 && count > 0 && next < candidates.len() {
        attempts -= 1;
        let id = candidates[next];
        next += 1;
        let exists = stream.entry_exists(id);
        let group = stream.group_mut(group_name).expect("checked above");
        if !exists {
            group.ack(id);
            deleted.push(id);
            count -= 1;
            continue;
        }
        let Some(entry) = group.pel.get(&id) else {
            continue;
        };
        if min_idle > 0 && elapsed(now, entry.delivery_time) < min_idle {
            continue;
        }
        let owner = match &consumer {
            Some(owner) => owner.clone(),
            None => {
                let (owner, new) = group.consumer_or_create(consumer_name, now);
                group.touch_consumer(consumer_name, now);
                created = new;
                consumer = Some(owner.clone());
                owner
            }
        };
        group.claim(id, &owner, now, None, !justid);
        group.mark_active(consumer_name, now);
        claimed.push(id);
        count -= 1;
    }
    let changed = seen || !claimed.is_empty() || !deleted.is_empty();
    let cursor = candidates.get(next).copied().unwrap_or(StreamId::MIN);
    let touched: Vec<StreamId> = claimed.iter().chain(&deleted).copied().collect();
    let out = &mut *ctx.out;
    out.array(3);
    write_id(out, cursor);
    out.array(claimed.len());
    for &id in &claimed {
        if justid {
            write_id(out, id);
        } else {
            stream.visit_entry(id, |entry| write_entry(out, entry));
        }
    }
    out.array(deleted.len());
    for &id in &deleted {
        write_id(out, id);
    }
    if changed {
        let change = GroupChange::Pending {
            consumer: Some(consumer_name),
            ids: &touched,
        };
        group_changed(db, key, group_name, change);
    }
    drop(locked);
    if created {
        notify(shared, "xgroup-createconsumer", key, dbi);
    }
    Ok(())
}

// ---------------------------------------------------------------- XINFO

const XINFO_HELP_LINES: &[&str] = &[
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
];

fn xinfo_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    reply_help(ctx, "XINFO", XINFO_HELP_LINES);
    Ok(())
}

fn write_lag(out: &mut ReplyBuf, stream: &StreamValue, group: &ConsumerGroup) {
    match stream.group_lag(group) {
        Some(lag) => out.int(lag as i64),
        None => out.null(),
    }
}

fn write_entries_read(out: &mut ReplyBuf, group: &ConsumerGroup) {
    match group.entries_read {
        Some(read) => out.int(read as i64),
        None => out.null(),
    }
}

fn xinfo_groups(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[2];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let Some(stream) = stream_ref(locked.db(dbi, key)?, key, now)? else {
        return Err(Error::no_such_key());
    };
    let out = &mut *ctx.out;
    out.array(stream.groups().len());
    for (name, group) in stream.groups() {
        out.map(6);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"consumers");
        out.int(group.consumers.len() as i64);
        out.bulk(b"pending");
        out.int(group.pel.len() as i64);
        out.bulk(b"last-delivered-id");
        write_id(out, group.last_delivered);
        out.bulk(b"entries-read");
        write_entries_read(out, group);
        out.bulk(b"lag");
        write_lag(out, stream, group);
    }
    Ok(())
}

fn xinfo_consumers(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (key, group_name) = (argv[2], argv[3]);
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let mut locked = ctx.locks.key(key)?;
    let Some(stream) = stream_ref(locked.db(dbi, key)?, key, now)? else {
        return Err(Error::no_such_key());
    };
    let Some(group) = stream.group(group_name) else {
        return Err(no_group(key, group_name));
    };
    let out = &mut *ctx.out;
    out.array(group.consumers.len());
    for (name, consumer) in &group.consumers {
        out.map(4);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"pending");
        out.int(consumer.pending.len() as i64);
        out.bulk(b"idle");
        out.int(elapsed(now, consumer.seen_time));
        // Redis 7.2: milliseconds since the last successful interaction,
        // -1 if none.
        out.bulk(b"inactive");
        out.int(consumer.active_time.map_or(-1, |at| elapsed(now, at)));
    }
    Ok(())
}

/// XINFO STREAM FULL's `groups` value: every group with its PEL and
/// consumers, up to `count` pending entries each (0: all).
pub(super) fn write_full_groups(out: &mut ReplyBuf, stream: &StreamValue, count: u64) {
    let limit = |n: usize| if count == 0 { n } else { n.min(count as usize) };
    out.array(stream.groups().len());
    for (name, group) in stream.groups() {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        write_id(out, group.last_delivered);
        out.bulk(b"entries-read");
        write_entries_read(out, group);
        out.bulk(b"lag");
        write_lag(out, stream, group);
        out.bulk(b"pel-count");
        out.int(group.pel.len() as i64);
        out.bulk(b"pending");
        out.array(limit(group.pel.len()));
        for (id, entry) in group.pel.iter().take(limit(group.pel.len())) {
            out.array(4);
            write_id(out, *id);
            out.bulk(&entry.consumer);
            out.int(entry.delivery_time as i64);
            out.int(entry.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(group.consumers.len());
        for (name, consumer) in &group.consumers {
            out.map(5);
            out.bulk(b"name");
            out.bulk(name);
            out.bulk(b"seen-time");
            out.int(consumer.seen_time as i64);
            // Redis 7.2: the last successful interaction, -1 if none.
            out.bulk(b"active-time");
            out.int(consumer.active_time.map_or(-1, |at| at as i64));
            out.bulk(b"pel-count");
            out.int(consumer.pending.len() as i64);
            out.bulk(b"pending");
            out.array(limit(consumer.pending.len()));
            for id in consumer.pending.iter().take(limit(consumer.pending.len())) {
                let entry = &group.pel[id];
                out.array(3);
                write_id(out, *id);
                out.int(entry.delivery_time as i64);
                out.int(entry.delivery_count as i64);
            }
        }
    }
}
