//! Pub/Sub and the client commands around it, compared with a real
//! redis-server 7.0 byte for byte, in RESP2 and RESP3: SUBSCRIBE and friends,
//! PUBLISH/SPUBLISH and the frames they push, PUBSUB introspection, the RESP2
//! subscribed context, RESET and disconnects, MONITOR, CLIENT REPLY, CLIENT
//! PAUSE/UNPAUSE, WAIT; and, on Larder alone, client-output-buffer-limit
//! disconnecting a subscriber that does not read.
//!
//! Each scenario runs on Redis, then on Larder, and the transcripts (every
//! command sent and frame read, on every connection) must be equal. Frames
//! that Redis pushes in hash-table order (several matching patterns,
//! UNSUBSCRIBE without arguments, PUBSUB CHANNELS) are compared sorted.
//! `LARDER_SELFCHECK=1` runs every scenario on two redis-servers.

mod common;

use std::time::{Duration, Instant};

use common::scenario::{differential, items, show, Item, Scenario, Target, EXPECTED_WITHIN};
use common::{Arrival, RawClient};

/// `HELLO 3` on connection `c`; the reply (server name, version, id) differs
/// between the servers, so only its type is logged.
fn hello3(s: &mut Scenario, c: usize) {
    let reply = s.client(c).command(&["HELLO", "3"]);
    s.note(format!("{c}: HELLO 3 answered a {}", show(&reply[..1])));
}

/// Reads the `n` frames of an unsubscribe from everything (UNSUBSCRIBE,
/// PUNSUBSCRIBE or SUNSUBSCRIBE without arguments): Redis walks its hash
/// table, so the names come in any order, but the counts go down one by one.
fn read_unsubscribe_all(s: &mut Scenario, c: usize, n: usize) {
    let mut kinds = Vec::new();
    let mut names = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..n {
        match s.client(c).read_within(EXPECTED_WITHIN) {
            Arrival::Reply(frame) => match items(&frame) {
                Some(elements) if elements.len() == 3 => {
                    kinds.push(format!("{}{:?}", show(&frame[..2]), elements[0]));
                    names.push(elements[1].clone());
                    counts.push(elements[2].clone());
                }
                _ => {
                    s.log.push(format!("{c}< {}", show(&frame)));
                    return;
                }
            },
            other => {
                s.log.push(format!("{c}< {other:?}"));
                return;
            }
        }
    }
    names.sort();
    s.log.push(format!(
        "{c}< {n} frames {kinds:?}, names {names:?}, counts in order {counts:?}"
    ));
}

/// Polls `PUBSUB NUMSUB channel` on `c` until it answers `count` (a
/// disconnect is processed asynchronously); logs the last answer.
fn await_numsub(s: &mut Scenario, c: usize, channel: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let reply = s.client(c).command(&["PUBSUB", "NUMSUB", channel]);
        let done = items(&reply).is_some_and(|e| e.get(1) == Some(&Item::Int(count)));
        if done || Instant::now() > deadline {
            s.log
                .push(format!("{c}< NUMSUB {channel} settled at {}", show(&reply)));
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn subscribe_and_unsubscribe_reply_with_counts_in_resp2() {
    differential(|s| {
        let c = s.connect();
        s.script(
            c,
            "
            # Nothing subscribed yet: a null name and a count of 0.
            UNSUBSCRIBE => *3|$11|unsubscribe|$-1|:0|
            PUNSUBSCRIBE => *3|$12|punsubscribe|$-1|:0|
            SUNSUBSCRIBE => *3|$12|sunsubscribe|$-1|:0|
            UNSUBSCRIBE never => *3|$11|unsubscribe|$5|never|:0|
            ",
        );
        // One frame per channel, the count growing.
        s.send(c, &[b"SUBSCRIBE", b"a", b"b", b"c"]);
        for expected in [
            "*3|$9|subscribe|$1|a|:1|",
            "*3|$9|subscribe|$1|b|:2|",
            "*3|$9|subscribe|$1|c|:3|",
        ] {
            let frame = s.read(c).unwrap_or_default();
            s.expect(&frame, expected);
        }
        // Again: a frame, the count unchanged.
        s.script(c, "SUBSCRIBE a => *3|$9|subscribe|$1|a|:3|");
        // Patterns count with channels.
        s.send(c, &[b"PSUBSCRIBE", b"p*", b"a"]);
        s.read(c);
        s.read(c);
        s.send(c, &[b"UNSUBSCRIBE", b"b", b"x", b"b"]);
        s.read(c);
        s.read(c);
        s.read(c);
        s.script(
            c,
            "
            PUNSUBSCRIBE nope => *3|$12|punsubscribe|$4|nope|:4|
            PUNSUBSCRIBE p*
            ",
        );
        // Without arguments: every channel, then nothing left.
        s.send(c, &[b"UNSUBSCRIBE"]);
        read_unsubscribe_all(s, c, 2);
        s.script(
            c,
            "
            PUNSUBSCRIBE
            UNSUBSCRIBE
            # Back to a normal connection.
            GET k
            ",
        );
        // Shard channels are counted apart.
        s.send(c, &[b"SSUBSCRIBE", b"s1", b"s2", b"s1"]);
        s.read(c);
        s.read(c);
        s.read(c);
        s.script(c, "SUBSCRIBE a");
        s.script(c, "SUNSUBSCRIBE s1 zz");
        s.read(c);
        s.send(c, &[b"SSUBSCRIBE", b"s3", b"s4"]);
        s.read(c);
        s.read(c);
        s.send(c, &[b"SUNSUBSCRIBE"]);
        read_unsubscribe_all(s, c, 3);
        s.script(c, "UNSUBSCRIBE");
        s.quiet(c);
    });
}

#[test]
fn subscribe_and_unsubscribe_are_push_frames_in_resp3() {
    differential(|s| {
        let c = s.connect();
        hello3(s, c);
        s.script(
            c,
            "
            UNSUBSCRIBE => >3|$11|unsubscribe|_|:0|
            PUNSUBSCRIBE => >3|$12|punsubscribe|_|:0|
            SUNSUBSCRIBE => >3|$12|sunsubscribe|_|:0|
            SUBSCRIBE a => >3|$9|subscribe|$1|a|:1|
            PSUBSCRIBE a* => >3|$10|psubscribe|$2|a*|:2|
            SSUBSCRIBE s => >3|$10|ssubscribe|$1|s|:1|
            UNSUBSCRIBE zz => >3|$11|unsubscribe|$2|zz|:2|
            PUNSUBSCRIBE a* => >3|$12|punsubscribe|$2|a*|:1|
            SUNSUBSCRIBE s => >3|$12|sunsubscribe|$1|s|:0|
            ",
        );
        s.send(c, &[b"SUBSCRIBE", b"b", b"c"]);
        s.read(c);
        s.read(c);
        s.send(c, &[b"UNSUBSCRIBE"]);
        read_unsubscribe_all(s, c, 3);
        s.quiet(c);
    });
}

#[test]
fn publish_delivers_message_and_pmessage_frames() {
    differential(|s| {
        let channel_only = s.connect();
        let patterns = s.connect();
        let both = s.connect();
        let publisher = s.connect();
        s.script(channel_only, "SUBSCRIBE news");
        s.send(patterns, &[b"PSUBSCRIBE", b"n*", b"*s", b"zzz*"]);
        s.read(patterns);
        s.read(patterns);
        s.read(patterns);
        s.script(both, "SUBSCRIBE news");
        s.script(both, "PSUBSCRIBE ne?s");
        // 1 + 2 patterns + channel and pattern of the same client = 5.
        s.script(publisher, "PUBLISH news hello => :5|");
        let frame = s.read(channel_only).unwrap_or_default();
        s.expect(&frame, "*3|$7|message|$4|news|$5|hello|");
        s.read_unordered(patterns, 2);
        // A channel's subscribers before the patterns.
        let frame = s.read(both).unwrap_or_default();
        s.expect(&frame, "*3|$7|message|$4|news|$5|hello|");
        let frame = s.read(both).unwrap_or_default();
        s.expect(&frame, "*4|$8|pmessage|$4|ne?s|$4|news|$5|hello|");
        s.quiet(channel_only);
        s.quiet(patterns);
        s.quiet(both);
        s.script(
            publisher,
            "
            PUBLISH other x => :0|
            PUBLISH nx y => :1|
            PUBLISH NEWS caps => :0|
            ",
        );
        s.read(patterns);
        // A payload with every byte value, and an empty one.
        let payload: Vec<u8> = (0..=255u8).collect();
        s.cmd_bytes(publisher, &[b"PUBLISH", b"news", &payload]);
        s.read(channel_only);
        s.read_unordered(patterns, 2);
        s.read(both);
        s.read(both);
        s.cmd_bytes(publisher, &[b"PUBLISH", b"nope", b""]);
        s.read(patterns);
        // From a script and from a transaction.
        s.cmd(
            publisher,
            &["EVAL", "return redis.call('publish', 'news', 'lua')", "0"],
        );
        s.read(channel_only);
        s.read_unordered(patterns, 2);
        s.read(both);
        s.read(both);
        s.script(
            publisher,
            "
            MULTI
            PUBLISH news tx
            PUBLISH other tx
            EXEC
            ",
        );
        s.read(channel_only);
        s.read_unordered(patterns, 2);
        s.read(both);
        s.read(both);
        s.quiet(patterns);
        // Many messages in a row arrive in order.
        for i in 0..20 {
            s.cmd(publisher, &["PUBLISH", "news", &i.to_string()]);
        }
        for _ in 0..20 {
            s.read(channel_only);
        }
        s.quiet(channel_only);
        // The subscribers in RESP3 get push frames.
        let resp3 = s.connect();
        hello3(s, resp3);
        s.script(resp3, "SUBSCRIBE news");
        s.script(resp3, "PSUBSCRIBE *w*");
        s.script(publisher, "PUBLISH news three => :7|");
        let frame = s.read(resp3).unwrap_or_default();
        s.expect(&frame, ">3|$7|message|$4|news|$5|three|");
        let frame = s.read(resp3).unwrap_or_default();
        s.expect(&frame, ">4|$8|pmessage|$3|*w*|$4|news|$5|three|");
        s.quiet(resp3);
    });
}

#[test]
fn spublish_reaches_shard_subscribers_only() {
    differential(|s| {
        let shard = s.connect();
        let pattern = s.connect();
        let channel = s.connect();
        let publisher = s.connect();
        s.send(shard, &[b"SSUBSCRIBE", b"orders", b"users"]);
        s.read(shard);
        s.read(shard);
        s.script(pattern, "PSUBSCRIBE *");
        s.script(channel, "SUBSCRIBE orders");
        s.script(publisher, "SPUBLISH orders o1 => :1|");
        let frame = s.read(shard).unwrap_or_default();
        s.expect(&frame, "*3|$8|smessage|$6|orders|$2|o1|");
        // PUBLISH does not reach shard subscribers, SPUBLISH does not reach
        // channel or pattern subscribers.
        s.script(publisher, "PUBLISH orders o2 => :2|");
        s.read(channel);
        s.read(pattern);
        s.quiet(shard);
        s.quiet(channel);
        s.quiet(pattern);
        s.script(
            publisher,
            "
            SPUBLISH users u1 => :1|
            SPUBLISH other x => :0|
            ",
        );
        s.read(shard);
        s.quiet(pattern);
        // In RESP3, an smessage push.
        let resp3 = s.connect();
        hello3(s, resp3);
        s.script(resp3, "SSUBSCRIBE users");
        s.script(publisher, "SPUBLISH users u2 => :2|");
        s.read(shard);
        let frame = s.read(resp3).unwrap_or_default();
        s.expect(&frame, ">3|$8|smessage|$5|users|$2|u2|");
        // A shard subscriber in RESP2 is in the subscribed context too.
        s.script(shard, "GET k");
        s.script(shard, "PING");
        s.send(shard, &[b"SUNSUBSCRIBE"]);
        read_unsubscribe_all(s, shard, 2);
        s.script(shard, "GET k => $-1|");
        s.script(publisher, "SPUBLISH orders o3 => :0|");
    });
}

#[test]
fn channel_names_and_patterns_are_binary_safe() {
    differential(|s| {
        let sub = s.connect();
        let publisher = s.connect();
        let binary: &[u8] = b"bin\x00\r\nchan\xff \"q\"";
        s.cmd_bytes(sub, &[b"SUBSCRIBE", binary]);
        s.cmd_bytes(sub, &[b"PSUBSCRIBE", b"bin\x00*\xff*"]);
        s.cmd_bytes(publisher, &[b"PUBLISH", binary, b"pay\x00load\r\n"]);
        s.read(sub);
        s.read(sub);
        // Glob patterns: ?, classes, negated classes, ranges, escapes.
        for pattern in [
            &b"h?llo"[..],
            b"h[ae]llo",
            b"h[^e]llo",
            b"h[a-b]llo",
            b"a\\*b",
            b"x\\?y",
            b"*",
            b"[",
            b"\\",
        ] {
            s.cmd_bytes(sub, &[b"PSUBSCRIBE", pattern]);
        }
        for channel in [
            &b"hello"[..],
            b"hallo",
            b"hbllo",
            b"hxllo",
            b"a*b",
            b"axb",
            b"x?y",
            b"xzy",
            b"[",
            b"\\",
            b"",
        ] {
            // Each frame on its own: the channel and every matching pattern,
            // patterns in any order.
            let reply = s.cmd_bytes(publisher, &[b"PUBLISH", channel, b"m"]);
            let receivers: usize = String::from_utf8_lossy(&reply)
                .trim()
                .trim_start_matches(':')
                .parse()
                .unwrap_or(0);
            // (Redis matches no pattern, not even `*`, against the empty
            // channel name.)
            if receivers > 0 {
                s.read_unordered(sub, receivers);
            }
        }
        s.quiet(sub);
        s.cmd_unordered(publisher, &["PUBSUB", "CHANNELS"]);
        s.cmd_bytes(publisher, &[b"PUBSUB", b"NUMSUB", binary]);
        s.script(publisher, "PUBSUB NUMPAT => :10|");
    });
}

#[test]
fn resp2_subscribed_context_allows_only_subscription_commands_ping_quit_reset() {
    differential(|s| {
        let c = s.connect();
        s.script(
            c,
            "
            SET k v
            SUBSCRIBE a
            GET k => -ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context|
            SET k w
            ECHO hi
            PUBLISH a x
            MULTI
            HELLO 2
            CLIENT ID
            PUBSUB NUMSUB a
            PING => *2|$4|pong|$0||
            PING hello => *2|$4|pong|$5|hello|
            ping x y
            SUBSCRIBE b
            PSUBSCRIBE c*
            SSUBSCRIBE d
            SUNSUBSCRIBE d
            PUNSUBSCRIBE
            UNSUBSCRIBE a
            GET k
            UNSUBSCRIBE b
            GET k => $1|v|
            PING => +PONG|
            ",
        );
        // Only patterns: still the subscribed context.
        s.script(
            c,
            "
            PSUBSCRIBE p*
            DEL k
            PUNSUBSCRIBE p*
            DEL k => :1|
            ",
        );
        // QUIT answers and closes.
        s.script(c, "SUBSCRIBE a");
        s.script(c, "QUIT => +OK|");
        s.read(c);
        // RESET answers and leaves the context.
        let d = s.connect();
        s.script(
            d,
            "
            SUBSCRIBE a
            PSUBSCRIBE b*
            RESET => +RESET|
            GET k => $-1|
            PUBSUB NUMSUB a => *2|$1|a|:0|
            PUBSUB NUMPAT => :0|
            ",
        );
        // The error for a command with a subcommand, and an unknown command.
        s.script(
            d,
            "
            SUBSCRIBE a
            CLIENT LIST
            CONFIG GET maxmemory
            NOSUCHCOMMAND x
            ",
        );
    });
}

#[test]
fn resp3_subscribers_run_any_command_and_pushes_interleave_with_replies() {
    differential(|s| {
        let sub = s.connect();
        let publisher = s.connect();
        hello3(s, sub);
        s.script(
            sub,
            "
            SUBSCRIBE a
            SET k v => +OK|
            GET k => $1|v|
            PING => +PONG|
            PING hi => $2|hi|
            PUBSUB NUMSUB a => *2|$1|a|:1|
            ",
        );
        // A publish before a command: the push comes before the reply.
        s.script(publisher, "PUBLISH a first => :1|");
        let reply = s.cmd(sub, &["GET", "k"]);
        s.expect(&reply, ">3|$7|message|$1|a|$5|first|");
        s.read(sub);
        // Each publish lands before the next command's reply.
        for i in 0..5 {
            s.cmd(publisher, &["PUBLISH", "a", &format!("m{i}")]);
            s.send(sub, &[b"INCR", b"n"]);
            s.read(sub);
            s.read(sub);
        }
        s.quiet(sub);
        // A transaction while subscribed.
        s.script(
            sub,
            "
            MULTI
            INCR n
            GET k
            EXEC
            ",
        );
        s.quiet(sub);
        // Back to RESP2 while subscribed, then the RESP2 rule holds.
        let reply = s.client(sub).command(&["HELLO", "2"]);
        s.note(format!("HELLO 2 answered a {}", show(&reply[..1])));
        s.script(sub, "GET k");
        s.script(sub, "UNSUBSCRIBE");
        s.script(sub, "GET k");
    });
}

#[test]
fn pubsub_introspection_commands() {
    differential(|s| {
        let a = s.connect();
        let b = s.connect();
        let q = s.connect();
        s.script(
            q,
            "
            PUBSUB CHANNELS => *0|
            PUBSUB NUMSUB => *0|
            PUBSUB NUMSUB x y => *4|$1|x|:0|$1|y|:0|
            PUBSUB NUMPAT => :0|
            PUBSUB SHARDCHANNELS => *0|
            PUBSUB SHARDNUMSUB => *0|
            PUBSUB SHARDNUMSUB x => *2|$1|x|:0|
            ",
        );
        s.send(a, &[b"SUBSCRIBE", b"news.uk", b"news.fr", b"sport"]);
        for _ in 0..3 {
            s.read(a);
        }
        s.send(b, &[b"SUBSCRIBE", b"news.uk"]);
        s.read(b);
        s.send(a, &[b"PSUBSCRIBE", b"news.*", b"x*"]);
        s.read(a);
        s.read(a);
        s.send(b, &[b"PSUBSCRIBE", b"news.*", b"y"]);
        s.read(b);
        s.read(b);
        s.send(a, &[b"SSUBSCRIBE", b"shard.1", b"shard.2"]);
        s.read(a);
        s.read(a);
        s.send(b, &[b"SSUBSCRIBE", b"shard.1"]);
        s.read(b);
        s.cmd_unordered(q, &["PUBSUB", "CHANNELS"]);
        s.cmd_unordered(q, &["PUBSUB", "CHANNELS", "news.*"]);
        s.cmd_unordered(q, &["PUBSUB", "channels", "*.uk"]);
        s.cmd_unordered(q, &["PUBSUB", "CHANNELS", "nothing*"]);
        s.cmd_unordered(q, &["PUBSUB", "SHARDCHANNELS"]);
        s.cmd_unordered(q, &["PUBSUB", "SHARDCHANNELS", "*.2"]);
        s.script(
            q,
            "
            PUBSUB NUMSUB news.uk news.fr sport nope news.uk => *10|$7|news.uk|:2|$7|news.fr|:1|$5|sport|:1|$4|nope|:0|$7|news.uk|:2|
            # Distinct patterns, not subscriptions.
            PUBSUB NUMPAT => :3|
            PUBSUB SHARDNUMSUB shard.1 shard.2 sport => *6|$7|shard.1|:2|$7|shard.2|:1|$5|sport|:0|
            pubsub numsub NEWS.UK
            ",
        );
        // Unsubscribing updates the counts.
        s.send(b, &[b"UNSUBSCRIBE"]);
        s.read(b);
        s.send(b, &[b"PUNSUBSCRIBE", b"news.*"]);
        s.read(b);
        s.script(
            q,
            "
            PUBSUB NUMSUB news.uk => *2|$7|news.uk|:1|
            PUBSUB NUMPAT => :3|
            ",
        );
        s.send(a, &[b"PUNSUBSCRIBE", b"news.*"]);
        s.read(a);
        s.script(q, "PUBSUB NUMPAT => :2|");
        // In RESP3 the same replies.
        hello3(s, q);
        s.cmd_unordered(q, &["PUBSUB", "CHANNELS"]);
        s.script(
            q,
            "
            PUBSUB NUMSUB news.uk sport
            PUBSUB NUMPAT
            PUBSUB SHARDNUMSUB shard.1
            ",
        );
        // Errors.
        s.script(
            q,
            "
            PUBSUB => -ERR wrong number of arguments for 'pubsub' command|
            PUBSUB FOO
            PUBSUB CHANNELS a b
            PUBSUB NUMPAT x
            PUBSUB SHARDCHANNELS a b
            PUBSUB HELP
            PUBSUB HELP x
            ",
        );
    });
}

#[test]
fn reset_and_disconnect_drop_every_subscription() {
    differential(|s| {
        let sub = s.connect();
        let q = s.connect();
        s.script(sub, "SUBSCRIBE a");
        s.script(sub, "PSUBSCRIBE p*");
        s.script(sub, "SSUBSCRIBE s");
        s.script(
            q,
            "
            PUBSUB NUMSUB a => *2|$1|a|:1|
            PUBSUB NUMPAT => :1|
            PUBSUB SHARDNUMSUB s => *2|$1|s|:1|
            ",
        );
        log_pubsub_info(s, q);
        s.script(sub, "RESET => +RESET|");
        log_pubsub_info(s, q);
        s.script(
            q,
            "
            PUBSUB NUMSUB a => *2|$1|a|:0|
            PUBSUB NUMPAT => :0|
            PUBSUB SHARDNUMSUB s => *2|$1|s|:0|
            PUBSUB CHANNELS => *0|
            PUBLISH a x => :0|
            PUBLISH pq x => :0|
            SPUBLISH s x => :0|
            ",
        );
        s.quiet(sub);
        // RESET from RESP3 too.
        hello3(s, sub);
        s.script(sub, "SUBSCRIBE a b");
        s.read(sub);
        s.script(sub, "RESET => +RESET|");
        s.script(q, "PUBSUB NUMSUB a b => *4|$1|a|:0|$1|b|:0|");
        // A disconnect drops them too.
        let gone = s.connect();
        s.script(gone, "SUBSCRIBE a");
        s.script(gone, "PSUBSCRIBE x*");
        s.script(gone, "SSUBSCRIBE s");
        s.script(q, "PUBSUB NUMSUB a => *2|$1|a|:1|");
        s.disconnect(gone);
        await_numsub(s, q, "a", 0);
        s.script(
            q,
            "
            PUBSUB NUMPAT => :0|
            PUBSUB SHARDNUMSUB s => *2|$1|s|:0|
            PUBLISH a x => :0|
            PUBLISH xy x => :0|
            SPUBLISH s x => :0|
            ",
        );
    });
}

/// INFO's pub/sub counters (stats section), as Redis 7.0 reports them.
fn log_pubsub_info(s: &mut Scenario, c: usize) {
    let info = s.client(c).command(&["INFO", "stats"]);
    let text = String::from_utf8_lossy(&info).into_owned();
    for field in ["pubsub_channels", "pubsub_patterns", "pubsubshard_channels"] {
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .unwrap_or("(missing)")
            .to_string();
        s.log.push(format!("{c}< INFO {field}:{value}"));
    }
}

#[test]
fn wrong_arity_and_arguments() {
    differential(|s| {
        let c = s.connect();
        s.script(
            c,
            "
            SUBSCRIBE => -ERR wrong number of arguments for 'subscribe' command|
            PSUBSCRIBE
            SSUBSCRIBE
            PUBLISH
            PUBLISH a
            PUBLISH a b c
            SPUBLISH a
            SPUBLISH a b c
            PUBSUB NUMSUB
            WAIT
            WAIT 0
            WAIT 0 0 0
            MONITOR x
            CLIENT REPLY
            CLIENT REPLY ON OFF
            CLIENT PAUSE
            CLIENT UNPAUSE x
            ",
        );
    });
}

#[test]
fn subscribe_inside_multi() {
    differential(|s| {
        let c = s.connect();
        let publisher = s.connect();
        s.script(
            c,
            "
            MULTI
            SUBSCRIBE a
            PSUBSCRIBE p*
            INCR n
            EXEC
            ",
        );
        s.script(publisher, "PUBLISH a hi");
        s.read(c);
        s.script(c, "GET n");
        s.script(c, "UNSUBSCRIBE");
        s.script(c, "PUNSUBSCRIBE");
        s.script(
            c,
            "
            MULTI
            SSUBSCRIBE s
            EXEC
            MULTI
            UNSUBSCRIBE a
            SUNSUBSCRIBE
            EXEC
            GET n
            ",
        );
        // RESP3.
        let d = s.connect();
        hello3(s, d);
        s.script(
            d,
            "
            MULTI
            SUBSCRIBE a
            GET n
            EXEC
            ",
        );
        s.script(publisher, "PUBLISH a hi");
        s.read(d);
        s.quiet(c);
    });
}

/// MONITOR lines with the timestamp and the client's port masked (they
/// differ between runs); a line whose timestamp is not `secs.usecs` is kept
/// whole, so the difference shows.
fn read_monitor_line(s: &mut Scenario, c: usize) {
    match s.client(c).read_within(EXPECTED_WITHIN) {
        Arrival::Reply(frame) => {
            let text = String::from_utf8_lossy(&frame).into_owned();
            let masked = mask_monitor_line(&text).unwrap_or(text);
            s.log.push(format!("{c}< {}", masked.escape_debug()));
        }
        other => s.log.push(format!("{c}< {other:?}")),
    }
}

fn mask_monitor_line(line: &str) -> Option<String> {
    let rest = line.strip_prefix('+')?;
    let (stamp, rest) = rest.split_once(' ')?;
    let (secs, micros) = stamp.split_once('.')?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let secs: u64 = secs.parse().ok()?;
    if micros.len() != 6 || !micros.bytes().all(|b| b.is_ascii_digit()) || secs.abs_diff(now) > 5 {
        return None;
    }
    let (client, rest) = rest.strip_prefix('[')?.split_once("] ")?;
    let client = match client.split_once(" 127.0.0.1:") {
        Some((db, port)) if port.parse::<u16>().is_ok() => format!("{db} 127.0.0.1:<port>"),
        _ => client.to_string(),
    };
    Some(format!("+<time> [{client}] {rest}"))
}

#[test]
fn monitor_shows_every_command_with_redis_quoting() {
    differential(|s| {
        let monitor = s.connect();
        let c = s.connect();
        s.script(monitor, "MONITOR => +OK|");
        s.script(c, "SET k v");
        read_monitor_line(s, monitor);
        s.cmd_bytes(
            c,
            &[b"SET", b"bin\x00\r\n\t\"q\"\\ \x07\xff", "é".as_bytes()],
        );
        read_monitor_line(s, monitor);
        s.script(
            c,
            "
            GET k
            INCR k
            PING
            SELECT 3
            SET k3 v
            SELECT 0
            ",
        );
        for _ in 0..6 {
            read_monitor_line(s, monitor);
        }
        // A transaction: MULTI, then the commands as EXEC runs them.
        s.script(
            c,
            "
            MULTI
            SET t 1
            INCR t
            EXEC
            ",
        );
        for _ in 0..4 {
            read_monitor_line(s, monitor);
        }
        // A script's commands, from "lua".
        s.cmd(
            c,
            &[
                "EVAL",
                "redis.call('set', KEYS[1], ARGV[1]) return 1",
                "1",
                "sk",
                "sv",
            ],
        );
        read_monitor_line(s, monitor);
        read_monitor_line(s, monitor);
        // Unknown commands and wrong arity are not shown; errors from a
        // command that ran are.
        s.script(
            c,
            "
            NOSUCH a
            GET
            LPUSH k x
            ECHO last
            ",
        );
        read_monitor_line(s, monitor);
        read_monitor_line(s, monitor);
        s.quiet(monitor);
        // Inline commands, and a second client.
        s.send_raw(c, b"set inline \"with space\"\r\n");
        s.read(c);
        read_monitor_line(s, monitor);
        let other = s.connect();
        s.script(other, "CLIENT SETNAME second");
        read_monitor_line(s, monitor);
        s.script(other, "DEL k");
        read_monitor_line(s, monitor);
        s.quiet(monitor);
    });
}

#[test]
fn client_reply_off_on_skip() {
    differential(|s| {
        let c = s.connect();
        // Every command sent at once; only the replies Redis sends come.
        for command in [
            &["CLIENT", "REPLY", "OFF"][..],
            &["SET", "a", "1"],
            &["GET", "a"],
            &["NOSUCH"],
            &["CLIENT", "REPLY", "ON"],
            &["GET", "a"],
            &["CLIENT", "REPLY", "SKIP"],
            &["SET", "b", "2"],
            &["GET", "b"],
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "ON"],
            &["ECHO", "after-skip-then-on"],
            &["CLIENT", "REPLY", "SKIP"],
            &["CLIENT", "REPLY", "OFF"],
            &["ECHO", "silent"],
            &["CLIENT", "REPLY", "ON"],
            &["CLIENT", "REPLY", "maybe"],
            &["ECHO", "end"],
        ] {
            let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
            s.send(c, &args);
        }
        for _ in 0..8 {
            s.read(c);
        }
        s.quiet(c);
        // RESP2 subscribers cannot use it.
        let publisher = s.connect();
        s.script(c, "SUBSCRIBE ch");
        s.script(c, "CLIENT REPLY OFF");
        s.script(c, "UNSUBSCRIBE");
        // In RESP3, replies are off but pushes still come.
        hello3(s, c);
        s.script(c, "SUBSCRIBE ch");
        s.send(c, &[b"CLIENT", b"REPLY", b"OFF"]);
        s.send(c, &[b"SET", b"k", b"v"]);
        s.send(c, &[b"SUBSCRIBE", b"other"]);
        s.quiet(c);
        s.script(publisher, "PUBLISH ch m => :1|");
        s.read(c);
        s.send(c, &[b"CLIENT", b"REPLY", b"ON"]);
        s.read(c);
        s.script(c, "GET k");
        s.quiet(c);
    });
}

#[test]
fn wait_answers_zero_replicas() {
    differential(|s| {
        let c = s.connect();
        s.script(
            c,
            "
            WAIT 0 0 => :0|
            SET k v
            WAIT 1 100 => :0|
            WAIT 0 10 => :0|
            WAIT a 0
            WAIT 0 a
            WAIT 0 -1
            WAIT -1 0
            ",
        );
        let start = Instant::now();
        s.script(c, "WAIT 1 100 => :0|");
        let waited = start.elapsed();
        s.note(format!(
            "WAIT 1 100 took at least 90 ms: {}, at most 1 s: {}",
            waited >= Duration::from_millis(90),
            waited <= Duration::from_secs(1)
        ));
        let start = Instant::now();
        s.script(c, "WAIT 0 5000 => :0|");
        s.note(format!(
            "WAIT 0 5000 returned at once: {}",
            start.elapsed() < Duration::from_millis(500)
        ));
    });
}

#[test]
fn client_pause_and_unpause_errors() {
    differential(|s| {
        let c = s.connect();
        s.script(
            c,
            "
            CLIENT PAUSE abc
            CLIENT PAUSE -1
            CLIENT PAUSE 100 FOO
            CLIENT PAUSE 100 WRITE ALL
            CLIENT PAUSE 0 => +OK|
            CLIENT PAUSE 0 WRITE => +OK|
            CLIENT UNPAUSE => +OK|
            CLIENT UNPAUSE => +OK|
            ",
        );
    });
}

/// Reads one frame on `client`, waiting up to `wait`; returns it and when it
/// came.
fn timed_read(client: &mut RawClient, wait: Duration) -> (Arrival, Instant) {
    let arrival = client.read_within(wait);
    (arrival, Instant::now())
}

#[test]
fn client_pause_write_holds_writes_until_the_timeout_and_lets_reads_through() {
    let server = Target::larder();
    let mut admin = server.raw();
    let mut writer = server.raw();
    let mut reader = server.raw();
    assert_eq!(
        show(&reader.command(&["SET", "k", "before"])),
        show(b"+OK\r\n")
    );
    let paused_at = Instant::now();
    assert_eq!(
        show(&admin.command(&["CLIENT", "PAUSE", "500", "WRITE"])),
        show(b"+OK\r\n")
    );
    writer.send(&common::encode_command(&[b"SET", b"k", b"after"]));
    // Reads go on while writes wait.
    let start = Instant::now();
    assert_eq!(
        show(&reader.command(&["GET", "k"])),
        show(b"$6\r\nbefore\r\n")
    );
    assert_eq!(show(&reader.command(&["EXISTS", "k"])), show(b":1\r\n"));
    assert!(
        start.elapsed() < Duration::from_millis(250),
        "reads waited {:?} during CLIENT PAUSE WRITE",
        start.elapsed()
    );
    let (arrival, at) = timed_read(&mut writer, Duration::from_secs(3));
    assert_eq!(arrival, Arrival::Reply(b"+OK\r\n".to_vec()));
    let held = at - paused_at;
    assert!(
        held >= Duration::from_millis(450) && held < Duration::from_millis(2000),
        "the write was answered {held:?} after CLIENT PAUSE 500 WRITE"
    );
    assert_eq!(
        show(&reader.command(&["GET", "k"])),
        show(b"$5\r\nafter\r\n")
    );
}

#[test]
fn client_unpause_releases_paused_clients_at_once() {
    let server = Target::larder();
    let mut admin = server.raw();
    let mut writer = server.raw();
    let mut publisher = server.raw();
    let mut reader = server.raw();
    assert_eq!(
        show(&admin.command(&["CLIENT", "PAUSE", "20000", "WRITE"])),
        show(b"+OK\r\n")
    );
    writer.send(&common::encode_command(&[b"INCR", b"n"]));
    // PUBLISH waits during a write pause too, as in Redis.
    publisher.send(&common::encode_command(&[b"PUBLISH", b"ch", b"m"]));
    assert_eq!(
        writer.read_within(Duration::from_millis(100)),
        Arrival::Nothing,
        "a write went through CLIENT PAUSE WRITE"
    );
    assert_eq!(
        publisher.read_within(Duration::from_millis(20)),
        Arrival::Nothing,
        "PUBLISH went through CLIENT PAUSE WRITE"
    );
    assert_eq!(show(&reader.command(&["GET", "n"])), show(b"$-1\r\n"));
    let unpaused = Instant::now();
    assert_eq!(
        show(&admin.command(&["CLIENT", "UNPAUSE"])),
        show(b"+OK\r\n")
    );
    let (arrival, at) = timed_read(&mut writer, Duration::from_secs(3));
    assert_eq!(arrival, Arrival::Reply(b":1\r\n".to_vec()));
    assert!(
        at - unpaused < Duration::from_millis(500),
        "released after {:?}",
        at - unpaused
    );
    assert_eq!(
        publisher.read_within(Duration::from_secs(3)),
        Arrival::Reply(b":0\r\n".to_vec())
    );
    // CLIENT PAUSE ALL (the default) holds reads as well, and every
    // command of every client: in Redis even CLIENT UNPAUSE waits for the
    // timeout.
    let paused_at = Instant::now();
    assert_eq!(
        show(&admin.command(&["CLIENT", "PAUSE", "400"])),
        show(b"+OK\r\n")
    );
    reader.send(&common::encode_command(&[b"GET", b"n"]));
    admin.send(&common::encode_command(&[b"CLIENT", b"UNPAUSE"]));
    assert_eq!(
        reader.read_within(Duration::from_millis(100)),
        Arrival::Nothing,
        "a read went through CLIENT PAUSE ALL"
    );
    let (arrival, at) = timed_read(&mut reader, Duration::from_secs(3));
    assert_eq!(arrival, Arrival::Reply(b"$1\r\n1\r\n".to_vec()));
    assert!(
        at - paused_at >= Duration::from_millis(350),
        "a read was answered {:?} into CLIENT PAUSE 400 (ALL)",
        at - paused_at
    );
    let (arrival, at) = timed_read(&mut admin, Duration::from_secs(3));
    assert_eq!(arrival, Arrival::Reply(b"+OK\r\n".to_vec()));
    assert!(
        at - paused_at >= Duration::from_millis(350),
        "CLIENT UNPAUSE was answered {:?} into CLIENT PAUSE 400 (ALL); Redis holds it too",
        at - paused_at
    );
}

#[test]
fn client_output_buffer_limit_config_round_trip() {
    differential(|s| {
        let c = s.connect();
        s.script(
            c,
            "
            CONFIG GET client-output-buffer-limit => *2|$26|client-output-buffer-limit|$67|normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60|
            ",
        );
        for (value, reply) in [
            ("pubsub 1mb 256kb 60", Some("+OK|")),
            ("normal 0 0 0 replica 1gb 512mb 30", Some("+OK|")),
            ("slave 10 20 30 pubsub 0 0 0", Some("+OK|")),
            ("PUBSUB 4kb 2k 1", None),
            ("pubsub 1MB 1Gb 5", None),
            ("foo 1 2 3", None),
            ("pubsub 1 2", None),
            ("pubsub a b c", None),
            ("pubsub 1 2 -3", None),
            ("pubsub -1 2 3", None),
            ("pubsub 1 2 3 normal", None),
            ("", None),
            ("master 1 2 3", None),
        ] {
            let reply_bytes = s.cmd(c, &["CONFIG", "SET", "client-output-buffer-limit", value]);
            if let Some(reply) = reply {
                s.expect(&reply_bytes, reply);
            }
            s.cmd(c, &["CONFIG", "GET", "client-output-buffer-limit"]);
        }
    });
}

/// An INFO field, as text.
fn info_field(client: &mut RawClient, name: &str) -> Option<String> {
    let reply = client.command(&["INFO", "all"]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .map(str::to_string)
}

fn info_u64(client: &mut RawClient, name: &str) -> u64 {
    info_field(client, name)
        .unwrap_or_else(|| panic!("INFO has no {name}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("INFO {name} is not a number"))
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_at_the_hard_limit() {
    // Set at run time here (the soft-limit test sets it at start).
    let server = Target::larder_binary(&[]);
    let mut admin = server.raw();
    assert_eq!(
        show(&admin.command(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 1mb 256kb 60"
        ])),
        "+OK\\r\\n"
    );
    let mut subscriber = server.raw();
    let mut publisher = server.raw();
    assert_eq!(
        show(&subscriber.command(&["SUBSCRIBE", "flood"])),
        show(b"*3\r\n$9\r\nsubscribe\r\n$5\r\nflood\r\n:1\r\n")
    );
    let baseline = info_u64(&mut admin, "used_memory");
    let payload = vec![b'x'; 64 * 1024];
    let batch: Vec<u8> = (0..16)
        .flat_map(|_| common::encode_command(&[b"PUBLISH", b"flood", &payload]))
        .collect();
    // Up to 200 MB, 1 MB per batch, until the subscriber is gone (the
    // publish reaches nobody).
    let mut sent = 0usize;
    let mut peak = baseline;
    let mut slowest = Duration::ZERO;
    let mut disconnected_after = None;
    while sent < 200 << 20 {
        let start = Instant::now();
        publisher.send(&batch);
        let mut receivers = Vec::new();
        for _ in 0..16 {
            receivers.push(publisher.read_reply());
        }
        slowest = slowest.max(start.elapsed());
        sent += 16 * payload.len();
        if sent.is_multiple_of(8 << 20) {
            peak = peak.max(info_u64(&mut admin, "used_memory"));
        }
        if receivers.last().map(Vec::as_slice) == Some(b":0\r\n") {
            disconnected_after = Some(sent);
            break;
        }
    }
    let sent_at_disconnect = disconnected_after.unwrap_or_else(|| {
        panic!(
            "the subscriber was still subscribed after {} MB",
            sent >> 20
        )
    });
    peak = peak.max(info_u64(&mut admin, "used_memory"));
    // The kernel's socket buffers hold some megabytes; the server's own
    // buffer must stop at 1 MB.
    assert!(
        sent_at_disconnect < 64 << 20,
        "disconnected only after {} MB were published",
        sent_at_disconnect >> 20
    );
    assert!(
        subscriber_closes(&mut subscriber),
        "the subscriber's connection was not closed"
    );
    assert_disconnections_counted(&mut admin, 1);
    assert!(
        peak < baseline + (32 << 20),
        "used_memory rose from {baseline} to {peak} while a non-reading subscriber was flooded"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a batch of 16 publishes took {slowest:?}"
    );
    assert_eq!(
        show(&admin.command(&["PUBSUB", "NUMSUB", "flood"])),
        show(b"*2\r\n$5\r\nflood\r\n:0\r\n")
    );
    // The publisher keeps being served.
    assert_eq!(
        show(&publisher.command(&["PUBLISH", "flood", "x"])),
        show(b":0\r\n")
    );
}

/// INFO's `client_output_buffer_limit_disconnections` (Redis 7.2 added it:
/// a redis-server 7.0 under `LARDER_SELFCHECK` has none).
fn assert_disconnections_counted(client: &mut RawClient, expected: u64) {
    let field = "client_output_buffer_limit_disconnections";
    if common::scenario::self_check() && info_field(client, field).is_none() {
        return;
    }
    assert_eq!(info_u64(client, field), expected, "INFO {field}");
}

/// Drains what the server had sent before closing; true once it is closed.
fn subscriber_closes(client: &mut RawClient) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match client.read_within(Duration::from_secs(2)) {
            Arrival::Closed => return true,
            Arrival::Nothing => return false,
            Arrival::Reply(_) => {}
        }
    }
    false
}

#[test]
fn a_subscriber_over_the_soft_limit_for_longer_than_its_seconds_is_disconnected() {
    // No hard limit: the soft one alone, 256 kB for more than 2 s.
    let server = Target::larder_binary(&[("client-output-buffer-limit", "pubsub 0 256kb 2")]);
    let mut admin = server.raw();
    let mut subscriber = server.raw();
    let mut reader = server.raw();
    let mut publisher = server.raw();
    subscriber.command(&["SUBSCRIBE", "slow"]);
    reader.command(&["SUBSCRIBE", "fast"]);
    // A subscriber that reads stays connected however much it gets.
    let payload = vec![b'y'; 64 * 1024];
    for _ in 0..64 {
        assert_eq!(
            show(&publisher.command_bytes(&[b"PUBLISH", b"fast", &payload])),
            show(b":1\r\n")
        );
        let message = reader.read_reply();
        assert_eq!(message.len(), payload.len() + 37);
    }
    // 16 MB to the one that does not read: far past the soft limit, once
    // the socket buffers are full.
    let burst_start = Instant::now();
    for _ in 0..256 {
        assert_eq!(
            show(&publisher.command_bytes(&[b"PUBLISH", b"slow", &payload])),
            show(b":1\r\n")
        );
    }
    // Over the soft limit but not for long: still there.
    assert!(
        burst_start.elapsed() < Duration::from_millis(1500),
        "publishing 16 MB took {:?}",
        burst_start.elapsed()
    );
    let reply = publisher.command(&["PUBLISH", "slow", "small"]);
    assert_eq!(
        show(&reply),
        show(b":1\r\n"),
        "disconnected at once at the soft limit"
    );
    // Keep writing to it (Redis checks the limit as output is added) until
    // it is dropped.
    let mut dropped_after = None;
    while burst_start.elapsed() < Duration::from_secs(8) {
        let reply = publisher.command(&["PUBLISH", "slow", "small"]);
        if reply == b":0\r\n" {
            dropped_after = Some(burst_start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dropped_after = dropped_after.expect("still subscribed 8 s after passing the soft limit");
    assert!(
        dropped_after >= Duration::from_millis(1900),
        "dropped {dropped_after:?} after passing a soft limit of 2 s"
    );
    assert!(subscriber_closes(&mut subscriber));
    assert_disconnections_counted(&mut admin, 1);
    // The reading subscriber is still there.
    assert_eq!(
        show(&publisher.command(&["PUBLISH", "fast", "still"])),
        show(b":1\r\n")
    );
    assert_eq!(
        show(&reader.read_reply()),
        show(b"*3\r\n$7\r\nmessage\r\n$4\r\nfast\r\n$5\r\nstill\r\n")
    );
}

/// A `name=value` field of the CLIENT LIST line of the client named `name`.
fn client_list_field(admin: &mut RawClient, client: &str, field: &str) -> String {
    let list = admin.command(&["CLIENT", "LIST"]);
    let text = String::from_utf8_lossy(&list).into_owned();
    let line = text
        .lines()
        .find(|line| line.contains(&format!(" name={client} ")))
        .unwrap_or_else(|| panic!("no client named {client} in CLIENT LIST: {text}"));
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
        .unwrap_or_else(|| panic!("no {field}= in {line}"))
        .to_string()
}

#[test]
fn client_list_shows_a_slow_subscribers_output_buffer() {
    let server = Target::larder();
    let mut admin = server.raw();
    let mut subscriber = server.raw();
    let mut publisher = server.raw();
    subscriber.command(&["CLIENT", "SETNAME", "slow"]);
    subscriber.command(&["SUBSCRIBE", "c1", "c2"]);
    subscriber.read_reply();
    subscriber.command(&["PSUBSCRIBE", "p*"]);
    assert_eq!(client_list_field(&mut admin, "slow", "flags"), "P");
    assert_eq!(client_list_field(&mut admin, "slow", "sub"), "2");
    assert_eq!(client_list_field(&mut admin, "slow", "psub"), "1");
    assert_eq!(client_list_field(&mut admin, "slow", "omem"), "0");
    // 16 MB that it does not read: more than the socket buffers hold, less
    // than the default pubsub hard limit (32 MB).
    let payload = vec![b'z'; 64 * 1024];
    for _ in 0..256 {
        assert_eq!(
            show(&publisher.command_bytes(&[b"PUBLISH", b"c1", &payload])),
            show(b":1\r\n")
        );
    }
    let omem: u64 = client_list_field(&mut admin, "slow", "omem")
        .parse()
        .expect("omem is a number");
    let total: u64 = client_list_field(&mut admin, "slow", "tot-mem")
        .parse()
        .expect("tot-mem is a number");
    assert!(omem > 1 << 20, "omem={omem} with megabytes waiting");
    assert!(total >= omem, "tot-mem={total} < omem={omem}");
    // Once it reads everything, the buffer is gone.
    for i in 0..256 {
        match subscriber.read_within(Duration::from_secs(3)) {
            Arrival::Reply(message) => assert_eq!(message.len(), payload.len() + 35),
            other => panic!(
                "message {i} of 256 never came ({other:?}); CLIENT LIST omem={}",
                client_list_field(&mut admin, "slow", "omem")
            ),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while client_list_field(&mut admin, "slow", "omem") != "0" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(client_list_field(&mut admin, "slow", "omem"), "0");
}
