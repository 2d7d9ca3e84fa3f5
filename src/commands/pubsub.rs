//! Pub/sub commands: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UN-
//! forms, PUBLISH, SPUBLISH, PUBSUB, and MONITOR. The channel tables and
//! delivery are the `pubsub` engine's; this file keeps each client's
//! subscriptions (in its session) and writes Redis's replies.

use bytes::Bytes;

use super::flags::*;
use super::{reply_help, CommandSpec, Ctx, Session, NO_KEYS};
use crate::error::Result;
use crate::pubsub::{ChannelKind, ClientClass};
use crate::shared::Shared;

const PUBSUB_ACL: &[&str] = &["pubsub"];
const SUBSCRIBE_FLAGS: u32 = PUBSUB | NOSCRIPT | LOADING | STALE;

/// The keys of SSUBSCRIBE/SUNSUBSCRIBE/SPUBLISH are channels (Redis's
/// `not_key` key specs).
const CHANNELS: super::KeySpec = super::ALL_KEYS;
const CHANNEL: super::KeySpec = super::FIRST_KEY;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("subscribe", -2, SUBSCRIBE_FLAGS, NO_KEYS, subscribe)
        .acl(PUBSUB_ACL)
        .doc(
            "pubsub",
            "2.0.0",
            "Listens for messages published to channels.",
            "O(N) where N is the number of channels to subscribe to.",
        ),
    CommandSpec::new("unsubscribe", -1, SUBSCRIBE_FLAGS, NO_KEYS, unsubscribe)
        .acl(PUBSUB_ACL)
        .doc(
            "pubsub",
            "2.0.0",
            "Stops listening to messages posted to channels.",
            "O(N) where N is the number of channels to unsubscribe.",
        ),
    CommandSpec::new("psubscribe", -2, SUBSCRIBE_FLAGS, NO_KEYS, psubscribe)
        .acl(PUBSUB_ACL)
        .doc(
            "pubsub",
            "2.0.0",
            "Listens for messages published to channels that match one or more patterns.",
            "O(N) where N is the number of patterns to subscribe to.",
        ),
    CommandSpec::new("punsubscribe", -1, SUBSCRIBE_FLAGS, NO_KEYS, punsubscribe)
        .acl(PUBSUB_ACL)
        .doc(
            "pubsub",
            "2.0.0",
            "Stops listening to messages published to channels that match one or more patterns.",
            "O(N) where N is the number of patterns to unsubscribe.",
        ),
    CommandSpec::new("ssubscribe", -2, SUBSCRIBE_FLAGS, CHANNELS, ssubscribe)
        .acl(PUBSUB_ACL)
        .key_spec_flags(&["not_key"])
        .doc(
            "pubsub",
            "7.0.0",
            "Listens for messages published to shard channels.",
            "O(N) where N is the number of shard channels to subscribe to.",
        ),
    CommandSpec::new("sunsubscribe", -1, SUBSCRIBE_FLAGS, CHANNELS, sunsubscribe)
        .acl(PUBSUB_ACL)
        .key_spec_flags(&["not_key"])
        .doc(
            "pubsub",
            "7.0.0",
            "Stops listening to messages posted to shard channels.",
            "O(N) where N is the number of shard channels to unsubscribe.",
        ),
    CommandSpec::new(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        NO_KEYS,
        publish,
    )
    .acl(PUBSUB_ACL)
    .doc(
        "pubsub",
        "2.0.0",
        "Posts a message to a channel.",
        "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).",
    ),
    CommandSpec::new(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        CHANNEL,
        spublish,
    )
    .acl(PUBSUB_ACL)
    .key_spec_flags(&["not_key"])
    .doc(
        "pubsub",
        "7.0.0",
        "Post a message to a shard channel",
        "O(N) where N is the number of clients subscribed to the receiving shard channel.",
    ),
    CommandSpec::new("pubsub", -2, 0, NO_KEYS, super::connection::container)
        .doc(
            "pubsub",
            "2.8.0",
            "A container for Pub/Sub commands.",
            "Depends on subcommand.",
        )
        .subcommands(PUBSUB_SUBCOMMANDS),
    CommandSpec::new("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE, NO_KEYS, monitor).doc(
        "server",
        "1.0.0",
        "Listens for all requests received by the server in real-time.",
        "",
    ),
];

const PUBSUB_QUERY: u32 = PUBSUB | LOADING | STALE;

static PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("pubsub|channels", -2, PUBSUB_QUERY, NO_KEYS, pubsub_channels)
        .acl(PUBSUB_ACL)
        .doc(
            "pubsub",
            "2.8.0",
            "Returns the active channels.",
            "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)",
        ),
    CommandSpec::new("pubsub|numpat", 2, PUBSUB_QUERY, NO_KEYS, pubsub_numpat)
        .acl(PUBSUB_ACL)
        .doc(
            "pubsub",
            "2.8.0",
            "Returns a count of unique pattern subscriptions.",
            "O(1)",
        ),
    CommandSpec::new("pubsub|numsub", -2, PUBSUB_QUERY, NO_KEYS, pubsub_numsub)
        .acl(PUBSUB_ACL)
        .doc(
            "pubsub",
            "2.8.0",
            "Returns a count of subscribers to channels.",
            "O(N) for the NUMSUB subcommand, where N is the number of requested channels",
        ),
    CommandSpec::new(
        "pubsub|shardchannels",
        -2,
        PUBSUB_QUERY,
        NO_KEYS,
        pubsub_shardchannels,
    )
    .acl(PUBSUB_ACL)
    .doc(
        "pubsub",
        "7.0.0",
        "Returns the active shard channels.",
        "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels).",
    ),
    CommandSpec::new(
        "pubsub|shardnumsub",
        -2,
        PUBSUB_QUERY,
        NO_KEYS,
        pubsub_shardnumsub,
    )
    .acl(PUBSUB_ACL)
    .doc(
        "pubsub",
        "7.0.0",
        "Returns the count of subscribers of shard channels.",
        "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels",
    ),
    CommandSpec::new("pubsub|help", 2, LOADING | STALE, NO_KEYS, pubsub_help).doc(
        "pubsub",
        "6.2.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
    ),
];

/// Whether `name` may run in a RESP2 connection that subscribes to
/// something (Redis's subscribed-context rule).
pub fn allowed_while_subscribed(name: &str) -> bool {
    matches!(
        name,
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

/// Redis's refusal of other commands in that context.
pub fn subscribed_context_error(name: &str) -> String {
    format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )
}

/// One subscribe/unsubscribe confirmation: `[kind, channel or null, count]`.
fn confirm(ctx: &mut Ctx, kind: &str, channel: Option<&[u8]>, count: usize) {
    ctx.out.push(3);
    ctx.out.bulk(kind.as_bytes());
    match channel {
        Some(channel) => ctx.out.bulk(channel),
        None => ctx.out.null(),
    }
    ctx.out.int(count as i64);
}

/// The count a confirmation reports: shard channels are counted apart.
fn count(session: &Session, kind: ChannelKind) -> usize {
    let subscriptions = &session.subscriptions;
    match kind {
        ChannelKind::Classic => subscriptions.channels.len() + subscriptions.patterns.len(),
        ChannelKind::Shard => subscriptions.shard_channels.len(),
    }
}

/// Keeps the client's class (its output limit, CLIENT LIST's `P` flag)
/// in step with its subscriptions.
fn update_class(ctx: &Ctx) {
    let subscriptions = &ctx.session.subscriptions;
    let mailbox = &ctx.session.handle.mailbox;
    if subscriptions.total() > 0 {
        mailbox.set_class(ClientClass::PubSub);
        mailbox.set_listening(true);
    } else {
        mailbox.set_class(ClientClass::Normal);
    }
    let mut meta = ctx.session.handle.meta.lock();
    meta.subscriptions = [
        subscriptions.channels.len(),
        subscriptions.patterns.len(),
        subscriptions.shard_channels.len(),
    ];
}

fn deny_blocking(ctx: &Ctx, name: &str) -> Result<()> {
    // As Redis: a client that must get one reply per command cannot
    // subscribe; inside MULTI, SUBSCRIBE and PSUBSCRIBE still may (for
    // compatibility), SSUBSCRIBE may not.
    let in_multi_allowed = ctx.locks.in_transaction() && name != "SSUBSCRIBE";
    if (!ctx.session.blocking_allowed || ctx.locks.in_transaction()) && !in_multi_allowed {
        return Err(crate::error::Error::err(format!(
            "{name} isn't allowed for a DENY BLOCKING client"
        )));
    }
    Ok(())
}

fn subscribe_to(ctx: &mut Ctx, argv: &[&[u8]], kind: ChannelKind) -> Result<()> {
    let (name, reply) = match kind {
        ChannelKind::Classic => ("SUBSCRIBE", "subscribe"),
        ChannelKind::Shard => ("SSUBSCRIBE", "ssubscribe"),
    };
    deny_blocking(ctx, name)?;
    for channel in &argv[1..] {
        let channel = Bytes::copy_from_slice(channel);
        let set = match kind {
            ChannelKind::Classic => &mut ctx.session.subscriptions.channels,
            ChannelKind::Shard => &mut ctx.session.subscriptions.shard_channels,
        };
        if set.insert(channel.clone()) {
            ctx.shared
                .pubsub
                .subscribe(kind, &channel, &ctx.session.handle.mailbox);
        }
        update_class(ctx);
        let count = count(ctx.session, kind);
        confirm(ctx, reply, Some(&channel), count);
    }
    Ok(())
}

fn unsubscribe_from(ctx: &mut Ctx, argv: &[&[u8]], kind: ChannelKind) -> Result<()> {
    let reply = match kind {
        ChannelKind::Classic => "unsubscribe",
        ChannelKind::Shard => "sunsubscribe",
    };
    let channels: Vec<Bytes> = if argv.len() > 1 {
        argv[1..]
            .iter()
            .map(|c| Bytes::copy_from_slice(c))
            .collect()
    } else {
        match kind {
            ChannelKind::Classic => ctx.session.subscriptions.channels.iter().cloned().collect(),
            ChannelKind::Shard => ctx
                .session
                .subscriptions
                .shard_channels
                .iter()
                .cloned()
                .collect(),
        }
    };
    if channels.is_empty() {
        let count = count(ctx.session, kind);
        confirm(ctx, reply, None, count);
        return Ok(());
    }
    for channel in channels {
        let set = match kind {
            ChannelKind::Classic => &mut ctx.session.subscriptions.channels,
            ChannelKind::Shard => &mut ctx.session.subscriptions.shard_channels,
        };
        if set.shift_remove(&channel) {
            ctx.shared
                .pubsub
                .unsubscribe(kind, &channel, ctx.session.handle.id);
        }
        update_class(ctx);
        let count = count(ctx.session, kind);
        confirm(ctx, reply, Some(&channel), count);
    }
    Ok(())
}

fn subscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    subscribe_to(ctx, argv, ChannelKind::Classic)
}

fn ssubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    subscribe_to(ctx, argv, ChannelKind::Shard)
}

fn unsubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    unsubscribe_from(ctx, argv, ChannelKind::Classic)
}

fn sunsubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    unsubscribe_from(ctx, argv, ChannelKind::Shard)
}

fn psubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    deny_blocking(ctx, "PSUBSCRIBE")?;
    for pattern in &argv[1..] {
        let pattern = Bytes::copy_from_slice(pattern);
        if ctx.session.subscriptions.patterns.insert(pattern.clone()) {
            ctx.shared
                .pubsub
                .psubscribe(&pattern, &ctx.session.handle.mailbox);
        }
        update_class(ctx);
        let count = count(ctx.session, ChannelKind::Classic);
        confirm(ctx, "psubscribe", Some(&pattern), count);
    }
    Ok(())
}

fn punsubscribe(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let patterns: Vec<Bytes> = if argv.len() > 1 {
        argv[1..]
            .iter()
            .map(|c| Bytes::copy_from_slice(c))
            .collect()
    } else {
        ctx.session.subscriptions.patterns.iter().cloned().collect()
    };
    if patterns.is_empty() {
        let count = count(ctx.session, ChannelKind::Classic);
        confirm(ctx, "punsubscribe", None, count);
        return Ok(());
    }
    for pattern in patterns {
        if ctx.session.subscriptions.patterns.shift_remove(&pattern) {
            ctx.shared
                .pubsub
                .punsubscribe(&pattern, ctx.session.handle.id);
        }
        update_class(ctx);
        let count = count(ctx.session, ChannelKind::Classic);
        confirm(ctx, "punsubscribe", Some(&pattern), count);
    }
    Ok(())
}

/// Drops every subscription of `session` (RESET, disconnection).
pub fn drop_subscriptions(shared: &Shared, session: &mut Session) {
    let id = session.handle.id;
    let subscriptions = std::mem::take(&mut session.subscriptions);
    for channel in &subscriptions.channels {
        shared.pubsub.unsubscribe(ChannelKind::Classic, channel, id);
    }
    for channel in &subscriptions.shard_channels {
        shared.pubsub.unsubscribe(ChannelKind::Shard, channel, id);
    }
    for pattern in &subscriptions.patterns {
        shared.pubsub.punsubscribe(pattern, id);
    }
    session.handle.mailbox.set_class(ClientClass::Normal);
    session.handle.meta.lock().subscriptions = [0; 3];
    if session.monitoring {
        shared.pubsub.remove_monitor(id);
        session.monitoring = false;
    }
}

fn publish(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let receivers = ctx
        .shared
        .pubsub
        .publish(ChannelKind::Classic, argv[1], argv[2]);
    ctx.out.int(receivers as i64);
    Ok(())
}

fn spublish(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let receivers = ctx
        .shared
        .pubsub
        .publish(ChannelKind::Shard, argv[1], argv[2]);
    ctx.out.int(receivers as i64);
    Ok(())
}

fn channel_list(ctx: &mut Ctx, argv: &[&[u8]], kind: ChannelKind) -> Result<()> {
    if argv.len() > 3 {
        return Err(crate::error::Error::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(argv[1])
        )));
    }
    let names = ctx.shared.pubsub.channel_names(kind, argv.get(2).copied());
    ctx.out.array(names.len());
    for name in names {
        ctx.out.bulk(&name);
    }
    Ok(())
}

fn pubsub_channels(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    channel_list(ctx, argv, ChannelKind::Classic)
}

fn pubsub_shardchannels(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    channel_list(ctx, argv, ChannelKind::Shard)
}

fn subscriber_counts(ctx: &mut Ctx, argv: &[&[u8]], kind: ChannelKind) -> Result<()> {
    // Flat pairs, in RESP3 too, as Redis.
    ctx.out.array(2 * (argv.len() - 2));
    for channel in &argv[2..] {
        ctx.out.bulk(channel);
        let count = ctx.shared.pubsub.subscriber_count(kind, channel);
        ctx.out.int(count as i64);
    }
    Ok(())
}

fn pubsub_numsub(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    subscriber_counts(ctx, argv, ChannelKind::Classic)
}

fn pubsub_shardnumsub(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    subscriber_counts(ctx, argv, ChannelKind::Shard)
}

fn pubsub_numpat(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.out.int(ctx.shared.pubsub.pattern_count() as i64);
    Ok(())
}

fn pubsub_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    reply_help(
        ctx,
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
    );
    Ok(())
}

fn monitor(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    // As Redis: refused inside MULTI and scripts, which expect one reply
    // per command.
    if ctx.locks.in_transaction() || !ctx.session.blocking_allowed {
        return Err(crate::error::Error::err(
            "MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    // Already monitoring: ignored, without a reply, as in Redis.
    if ctx.session.monitoring {
        return Ok(());
    }
    ctx.session.monitoring = true;
    let mailbox = &ctx.session.handle.mailbox;
    mailbox.set_listening(true);
    ctx.shared.pubsub.add_monitor(mailbox);
    ctx.session.handle.meta.lock().monitor = true;
    ctx.out.ok();
    Ok(())
}

/// One MONITOR line for a command client `session` ran (`script`: from a
/// script, shown as `lua`), in Redis's format:
/// `+<secs>.<usecs> [<db> <addr>] "arg" "arg"...`.
pub fn monitor_line(session: &Session, argv: &[&[u8]], script: bool) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = format!(
        "+{}.{:06} [{} ",
        now.as_secs(),
        now.subsec_micros(),
        session.db
    )
    .into_bytes();
    if script {
        line.extend_from_slice(b"lua");
    } else if session.handle.unix_socket {
        // As Redis: `unix:<path>` rather than `<path>:0`.
        line.extend_from_slice(b"unix:");
        let path = session.handle.addr.strip_suffix(":0");
        line.extend_from_slice(path.unwrap_or(&session.handle.addr).as_bytes());
    } else {
        line.extend_from_slice(session.handle.addr.as_bytes());
    }
    line.extend_from_slice(b"]");
    for arg in argv {
        line.push(b' ');
        quote_repr(&mut line, arg);
    }
    line.extend_from_slice(b"\r\n");
    line
}

/// Redis's sdscatrepr: a quoted, escaped form of `data`.
fn quote_repr(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'"');
    for &byte in data {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(byte),
            _ => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::quote_repr;

    #[test]
    fn arguments_are_quoted_as_redis_sdscatrepr() {
        let mut out = Vec::new();
        quote_repr(&mut out, b"a\"b\\c\n\x01\xff ok");
        assert_eq!(out, b"\"a\\\"b\\\\c\\n\\x01\\xff ok\"");
    }
}
