//! Stream consumer groups: differential tests against a real redis-server
//! 7.0 for every command, option and error (RESP2 and RESP3), blocking
//! XREADGROUP, keyspace events, the generic commands on a stream with
//! groups, and a pool of consumers acking 10,000 messages exactly once
//! while a crashed consumer's entries are reclaimed with XAUTOCLAIM.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Differential, RawClient, TestServer};

/// Compares two replies token by token. Times may differ between the two
/// servers: Unix times in milliseconds (at least 10^12) by up to 10 s, and
/// on lines marked `~` (idle times) any integer by up to 100 ms.
fn assert_same(ours: &[u8], theirs: &[u8], fuzzy: bool, what: &str) {
    let (a, b) = (
        String::from_utf8_lossy(ours),
        String::from_utf8_lossy(theirs),
    );
    let ta: Vec<&str> = a.split("\r\n").collect();
    let tb: Vec<&str> = b.split("\r\n").collect();
    let close = |x: &str, y: &str| -> bool {
        let (Some(x), Some(y)) = (x.strip_prefix(':'), y.strip_prefix(':')) else {
            return false;
        };
        let (Ok(x), Ok(y)) = (x.parse::<i64>(), y.parse::<i64>()) else {
            return false;
        };
        (x >= 1_000_000_000_000 && y >= 1_000_000_000_000 && (x - y).abs() < 10_000)
            || (fuzzy && (x - y).abs() <= 100)
    };
    let same = ta.len() == tb.len() && ta.iter().zip(&tb).all(|(x, y)| x == y || close(x, y));
    assert!(
        same,
        "replies differ for {what}:\nlarder: {a:?}\nredis:  {b:?}"
    );
}

/// Runs a script (one command a line; `~` first marks a reply with idle
/// times) on both servers.
fn run_script(diff: &mut Differential, script: &str) {
    for line in script.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (fuzzy, command) = match line.strip_prefix('~') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let args: Vec<&str> = command.split_whitespace().collect();
        let ours = diff.larder.command(&args);
        let theirs = diff.redis.command(&args);
        assert_same(&ours, &theirs, fuzzy, command);
    }
}

const SCRIPT: &str = r#"
# XGROUP CREATE / SETID / DESTROY / CREATECONSUMER / DELCONSUMER / HELP
XADD s 1-1 a 1
XADD s 2-1 b 2
XGROUP CREATE s g $
XGROUP CREATE s g0 0
XGROUP CREATE s g1 1-1 ENTRIESREAD 1
XGROUP CREATE s g1 0
XGROUP CREATE s g2 0 ENTRIESREAD -1
XGROUP CREATE s g3 0 ENTRIESREAD -2
XGROUP CREATE s g3 0 ENTRIESREAD x
XGROUP CREATE s g3 0 ENTRIESREAD
XGROUP CREATE s g3 0 FOO
XGROUP CREATE s g3 bad
XGROUP CREATE s g3 +
XGROUP CREATE s g3 0 MKSTREAM MKSTREAM MKSTREAM MKSTREAM
XGROUP CREATE nokey g 0
XGROUP CREATE nokey g $ MKSTREAM
XINFO STREAM nokey
XGROUP CREATE nokey2 g 7-7 MKSTREAM ENTRIESREAD 3
XINFO GROUPS nokey2
XGROUP CREATE s
XGROUP DESTROY s g2
XGROUP DESTROY s g2
XGROUP DESTROY nokey3 g
XGROUP DESTROY s g2 extra
XGROUP SETID s nog 0
XGROUP SETID nokey3 g 0
XGROUP SETID s g2 0
XGROUP SETID s g1 1-1 ENTRIESREAD 5 x
XGROUP SETID s g1 1-1 FOO 5
XGROUP SETID s g1 bad
XGROUP SETID s g1 + ENTRIESREAD 2
XINFO GROUPS s
XGROUP SETID s g1 -
XGROUP SETID s g1 $
XGROUP CREATECONSUMER s g0 c9
XGROUP CREATECONSUMER s g0 c9
XGROUP CREATECONSUMER s nog c9
XGROUP DELCONSUMER s g0 c9
XGROUP DELCONSUMER s g0 c9
XGROUP DELCONSUMER s nog c9
XGROUP HELP
XGROUP help
XGROUP HELP x
XGROUP FOO
XGROUP FOO a b c
XGROUP
XINFO HELP
XINFO HELP x
XINFO GROUPS s
XINFO GROUPS nokey3
XINFO CONSUMERS s nog
XINFO CONSUMERS nokey3 g
# XREADGROUP
XADD s 3-1 c 3
XREADGROUP GROUP g0 c1 STREAMS s a
XREADGROUP GROUP g0 c1 STREAMS s a b
XREADGROUP GROUP g0 c1 STREAMS s
XREADGROUP STREAMS s >
XREADGROUP COUNT 1 STREAMS s >
XREADGROUP GROUP g0 STREAMS s >
XREADGROUP GROUP g0 c1 COUNT x STREAMS s >
XREADGROUP GROUP g0 c1 BLOCK x STREAMS s >
XREADGROUP GROUP g0 c1 BLOCK -1 STREAMS s >
XREADGROUP GROUP g0 c1 FOO STREAMS s >
XREADGROUP GROUP nog c1 STREAMS s >
XREADGROUP GROUP g0 c1 STREAMS nokey3 >
XREADGROUP GROUP g0 c1 STREAMS s nokey3 > >
XREADGROUP GROUP g0 c1 STREAMS s bad
XREADGROUP GROUP g0 c1 STREAMS s $
XREADGROUP GROUP g0 c1 STREAMS s +
XREADGROUP GROUP g0 c1 COUNT 1 NOACK STREAMS s >
XREADGROUP GROUP g0 c1 COUNT 1 STREAMS s >
XREADGROUP GROUP g0 c2 STREAMS s >
XREADGROUP GROUP g0 c2 STREAMS s >
XREADGROUP GROUP g0 c3 BLOCK 10 STREAMS s >
XREADGROUP GROUP g0 c2 STREAMS s 0-0
XREADGROUP GROUP g0 c2 STREAMS s 2-1
XREADGROUP GROUP g0 c2 COUNT 0 STREAMS s 0
XREADGROUP GROUP g0 c2 COUNT -3 STREAMS s 0
XREADGROUP GROUP g0 c1 STREAMS s 0
XREADGROUP GROUP g0 nobody STREAMS s 0
XREADGROUP GROUP g0 c1 STREAMS s s 0 >
XREADGROUP GROUP g1 c1 STREAMS s nokey2 > >
XINFO GROUPS s
~XINFO CONSUMERS s g0
# XPENDING
XPENDING s g0
XPENDING s g
XPENDING s g0 - + 10 nocons
XPENDING s g0 IDLE 1000000 - + 10
XPENDING s g0 IDLE x - + 10
XPENDING s g0 IDLE 5 - +
XPENDING s g0 - + x
XPENDING s g0 x + 1
XPENDING s g0 (- + 1
XPENDING s g0 - (0-0 1
XPENDING s g0 (18446744073709551615-18446744073709551615 + 1
XPENDING s g0 - + 1 a b
XPENDING s g0 - + 0
XPENDING s g0 - + -1
XPENDING s g0 5 1 10
XPENDING s g0 -
XPENDING s g0 - + 1 a b c d
XPENDING s nog
XPENDING nokey3 g - + 1
~XPENDING s g0 - + 10
~XPENDING s g0 - + 10 c2
~XPENDING s g0 (2-1 + 10
~XPENDING s g0 IDLE -5 - + 1
# XACK
XACK s g0 2-1 9-9
XACK s g0 2-1
XACK s g0 bad
XACK s g0 1-1 bad
XACK s nog 1-1
XACK nokey3 g 1-1
XACK nokey3 g bad
# a deleted entry in a consumer's history
XDEL s 3-1
XREADGROUP GROUP g0 c2 STREAMS s 0
XPENDING s g0
XINFO GROUPS s
XGROUP SETID s g0 0 ENTRIESREAD 0
XINFO GROUPS s
XGROUP SETID s g0 $
XINFO GROUPS s
# XCLAIM
DEL s
XADD s 1-1 a 1
XADD s 2-1 b 2
XADD s 3-1 c 3
XGROUP CREATE s g 0
XREADGROUP GROUP g c1 STREAMS s >
XCLAIM s g c3 0 1-1
XCLAIM s g c3 0 1-1 JUSTID
XCLAIM s g c3 0 1-1 2-1 justid
XCLAIM s g c4 100000 1-1
XINFO GROUPS s
XCLAIM s g c4 0 1-1 IDLE 5000 RETRYCOUNT 7 JUSTID
XCLAIM s g c4 0 1-1 TIME 5000 JUSTID
XCLAIM s g c4 0 1-1 TIME x
XCLAIM s g c4 0 1-1 IDLE x
XCLAIM s g c4 0 1-1 RETRYCOUNT x
XCLAIM s g c4 0 1-1 LASTID x
XCLAIM s g c4 0 1-1 FOO
XCLAIM s g c4 0 1-1 IDLE
XCLAIM s g c4 x 1-1
XCLAIM s g c4 -5 1-1 bad 2-1
XCLAIM s g c4 0 - +
XCLAIM s nog c4 0 1-1
XCLAIM nokey3 g c4 0 1-1
XCLAIM s g c4 0 9-9 FORCE
XCLAIM s g c4 0 3-1 FORCE JUSTID
XCLAIM s g c4 0 3-1 LASTID 10-0 JUSTID
XCLAIM s g c4 0 3-1 LASTID 5-0 JUSTID RETRYCOUNT -4
XCLAIM s g c4 0 3-1 IDLE -100 JUSTID
XCLAIM s g c4 0 3-1 TIME 99999999999999999 JUSTID
XINFO GROUPS s
XDEL s 2-1
XCLAIM s g c5 0 2-1 3-1 JUSTID
XPENDING s g
XADD s 4-1 d 4
XCLAIM s g c7 100000 4-1 FORCE JUSTID
XCLAIM s g c7 0 4-1 RETRYCOUNT 3
XPENDING s g
# XAUTOCLAIM
XAUTOCLAIM s g c6 0 0
XAUTOCLAIM s g c6 0 0 COUNT 1 JUSTID
XAUTOCLAIM s g c6 0 (1-1 COUNT 1
XAUTOCLAIM s g c6 0 0 COUNT 0
XAUTOCLAIM s g c6 0 0 COUNT x
XAUTOCLAIM s g c6 0 0 COUNT 1152921504606846976
XAUTOCLAIM s g c6 0 0 COUNT
XAUTOCLAIM s g c6 0 0 FOO
XAUTOCLAIM s g c6 x 0
XAUTOCLAIM s g c6 0 x
XAUTOCLAIM s g c6 0 -
XAUTOCLAIM s g c6 0 +
XAUTOCLAIM s nog c6 0 0
XAUTOCLAIM nokey3 g c6 0 0
XAUTOCLAIM s g c6 0 (18446744073709551615-18446744073709551615
XAUTOCLAIM s g c8 100000 0
XINFO GROUPS s
XADD s 5-1 e 5
XADD s 6-1 f 6
XADD s 7-1 g 7
XREADGROUP GROUP g c1 STREAMS s >
XDEL s 5-1 6-1
XAUTOCLAIM s g c2 0 0 COUNT 2
XAUTOCLAIM s g c2 0 0 COUNT 2 JUSTID
XAUTOCLAIM s g c2 0 0 COUNT 2
XAUTOCLAIM s g c2 0 4-1 COUNT 1
XPENDING s g
XGROUP DELCONSUMER s g c6
XGROUP DESTROY s g
XINFO CONSUMERS s g
# wrong types
SET str x
XINFO GROUPS str
XINFO CONSUMERS str g
XGROUP CREATE str g 0
XGROUP CREATE str g 0 MKSTREAM
XGROUP SETID str g 0
XGROUP DESTROY str g
XREADGROUP GROUP g c STREAMS str >
XACK str g 1-1
XPENDING str g
XCLAIM str g c 0 1-1
XAUTOCLAIM str g c 0 0
"#;

fn run(resp3: bool) {
    let mut diff = Differential::start();
    if resp3 {
        diff.larder.command(&["HELLO", "3"]);
        diff.redis.command(&["HELLO", "3"]);
    }
    run_script(&mut diff, SCRIPT);
}

#[test]
fn group_commands_match_redis_resp2() {
    run(false);
}

#[test]
fn group_commands_match_redis_resp3() {
    run(true);
}

/// Lag and entries-read through deletions, trims, XSETID and XGROUP SETID
/// backwards (entries delivered again change owner), and XINFO
/// STREAM FULL's groups section (delivery and seen times compared within
/// a few seconds).
#[test]
fn lag_and_full_info_match_redis() {
    for resp3 in [false, true] {
        let mut diff = Differential::start();
        if resp3 {
            diff.larder.command(&["HELLO", "3"]);
            diff.redis.command(&["HELLO", "3"]);
        }
        run_script(
            &mut diff,
            "
            XGROUP CREATE e g 0 MKSTREAM
            XINFO GROUPS e
            XADD s 1-1 a 1
            XADD s 2-1 b 2
            XADD s 3-1 c 3
            XADD s 4-1 d 4
            XADD s 5-1 e 5
            XGROUP CREATE s a 0
            XGROUP CREATE s b 2-1
            XGROUP CREATE s c 0 ENTRIESREAD 0
            XGROUP CREATE s d 9-9
            XINFO GROUPS s
            XREADGROUP GROUP a x COUNT 2 STREAMS s >
            XREADGROUP GROUP c x COUNT 1 STREAMS s >
            XINFO GROUPS s
            XDEL s 4-1
            XINFO GROUPS s
            XREADGROUP GROUP a x COUNT 1 STREAMS s >
            XREADGROUP GROUP b y STREAMS s >
            XINFO GROUPS s
            XDEL s 1-1
            XINFO GROUPS s
            XTRIM s MAXLEN 1
            XINFO GROUPS s
            XREADGROUP GROUP c x STREAMS s >
            XINFO GROUPS s
            XSETID s 10-1 ENTRIESADDED 20 MAXDELETEDID 9-9
            XINFO GROUPS s
            XADD s 11-1 f 6
            XREADGROUP GROUP a x STREAMS s >
            XINFO GROUPS s
            XINFO STREAM s FULL
            XINFO STREAM s FULL COUNT 1
            XINFO STREAM e FULL
            XADD t 1-1 a 1
            XADD t 2-1 a 1
            XADD t 3-1 a 1
            XGROUP CREATE t g 0
            XREADGROUP GROUP g c1 COUNT 2 STREAMS t >
            XREADGROUP GROUP g c2 STREAMS t >
            XGROUP CREATECONSUMER t g c0
            XINFO STREAM t FULL
            XINFO STREAM t FULL COUNT 1
            XINFO STREAM t FULL COUNT 0
            ~XINFO CONSUMERS t g
            FLUSHALL
            xadd s 1-1 a 1
            xadd s 2-1 b 2
            xadd s 3-1 c 3
            xgroup create s g 0 entriesread 10
            xinfo groups s
            xreadgroup group g c1 streams s >
            xinfo groups s
            xgroup setid s g 1-1
            xreadgroup group g c2 count 1 streams s >
            xpending s g
            xinfo groups s
            xgroup setid s g 0 entriesread 0
            xreadgroup group g c2 streams s >
            xpending s g
            xinfo groups s
            xgroup create s h 2-1
            xinfo groups s
            xadd s 4-1 d 4
            xdel s 1-1
            xinfo groups s
            xgroup create s i 0
            xreadgroup group i c streams s >
            xinfo groups s
            xsetid s 4-1 entriesadded 100
            xinfo groups s
            xgroup create s j 18446744073709551615-18446744073709551615
            xinfo groups s
            xreadgroup group j c streams s >
            xreadgroup group g c9 count 1 streams s 3-1 >
            xreadgroup group g c2 count 1 streams s 0 
            xreadgroup group g c2 count 1 streams s (1-1
            ",
        );
    }
}

fn request(args: &[&str]) -> Vec<u8> {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    common::encode_command(&bytes)
}

/// Sends `args` on both connections of `client` without reading.
fn send_both(client: &mut common::Clients, args: &[&str]) {
    client.ours.send(&request(args));
    client.theirs.send(&request(args));
}

fn read_both(client: &mut common::Clients) -> String {
    let ours = client.ours.read_reply();
    let theirs = client.theirs.read_reply();
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
    String::from_utf8_lossy(&ours).into_owned()
}

/// XREADGROUP BLOCK: served by an XADD from another client; a timeout
/// answers a null array; inside MULTI it does not block; a deleted or
/// re-typed key, or a destroyed group, ends the wait with Redis's errors.
#[test]
fn xreadgroup_block_matches_redis() {
    xreadgroup_block(false);
    xreadgroup_block(true);
}

fn xreadgroup_block(resp3: bool) {
    let pair = common::Pair::start();
    let mut writer = pair.clients();
    let mut reader = pair.clients();
    if resp3 {
        reader.ours.command(&["HELLO", "3"]);
        reader.theirs.command(&["HELLO", "3"]);
    }
    writer.script(
        "
        XGROUP CREATE s g $ MKSTREAM
        XREADGROUP GROUP g c BLOCK 20 STREAMS s >
        MULTI
        XREADGROUP GROUP g c BLOCK 0 STREAMS s >
        EXEC
        ",
    );
    reader.same(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "c",
        "BLOCK",
        "30",
        "STREAMS",
        "s",
        ">",
    ]);
    send_both(
        &mut reader,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ],
    );
    std::thread::sleep(Duration::from_millis(200));
    writer.same(&["XADD", "s", "1-1", "f", "v"]);
    let served = read_both(&mut reader);
    assert!(served.contains("1-1"), "{served}");
    writer.same(&["XPENDING", "s", "g"]);
    // Blocked on two keys, woken by the second.
    writer.same(&["XGROUP", "CREATE", "t", "g", "$", "MKSTREAM"]);
    send_both(
        &mut reader,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "5",
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            "t",
            ">",
            ">",
        ],
    );
    std::thread::sleep(Duration::from_millis(200));
    writer.same(&["XADD", "t", "2-1", "f", "v"]);
    let served = read_both(&mut reader);
    assert!(served.contains("2-1"), "{served}");
    // CLIENT UNBLOCK: as a timeout, or with an error.
    let id = |client: &mut RawClient| -> String {
        let reply = String::from_utf8_lossy(&client.command(&["CLIENT", "ID"])).into_owned();
        reply.trim_start_matches(':').trim().to_string()
    };
    let (ours_id, theirs_id) = (id(&mut reader.ours), id(&mut reader.theirs));
    for how in ["TIMEOUT", "ERROR"] {
        send_both(
            &mut reader,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
        );
        std::thread::sleep(Duration::from_millis(200));
        let ours = writer.ours.command(&["CLIENT", "UNBLOCK", &ours_id, how]);
        let theirs = writer
            .theirs
            .command(&["CLIENT", "UNBLOCK", &theirs_id, how]);
        assert_eq!(
            (ours.as_slice(), theirs.as_slice()),
            (&b":1\r\n"[..], &b":1\r\n"[..])
        );
        read_both(&mut reader);
    }
    for (action, error) in [
        (&["DEL", "s"][..], "UNBLOCKED"),
        (&["SET", "s", "x"][..], "UNBLOCKED"),
        (&["XGROUP", "DESTROY", "s", "g"][..], "NOGROUP"),
    ] {
        writer.script("DEL s\nXGROUP CREATE s g $ MKSTREAM");
        send_both(
            &mut reader,
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "0",
                "STREAMS",
                "s",
                ">",
            ],
        );
        std::thread::sleep(Duration::from_millis(200));
        writer.same(action);
        let reply = read_both(&mut reader);
        assert!(reply.starts_with(&format!("-{error}")), "{reply}");
    }
}

/// Two consumers of a group blocked on a key: one XADD serves the one
/// that blocked first (and a reader of another group blocked between
/// them); the next XADD serves the other.
#[test]
fn one_entry_serves_one_blocked_consumer() {
    let server = TestServer::start();
    let mut writer = server.raw();
    writer.command(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    writer.command(&["XGROUP", "CREATE", "s", "other", "$"]);
    let block = |group: &str, consumer: &str| {
        request(&[
            "XREADGROUP",
            "GROUP",
            group,
            consumer,
            "BLOCK",
            "0",
            "STREAMS",
            "s",
            ">",
        ])
    };
    let mut readers: Vec<RawClient> = (0..2).map(|_| server.raw()).collect();
    let mut other = server.raw();
    readers[0].send(&block("g", "c0"));
    std::thread::sleep(Duration::from_millis(100));
    other.send(&block("other", "o"));
    std::thread::sleep(Duration::from_millis(100));
    readers[1].send(&block("g", "c1"));
    std::thread::sleep(Duration::from_millis(100));
    writer.command(&["XADD", "s", "1-1", "f", "v"]);
    let mut served = Vec::new();
    let mut waiting = Vec::new();
    for (n, reader) in readers.iter_mut().enumerate() {
        match reader.read_within(Duration::from_millis(500)) {
            common::Arrival::Reply(reply) => {
                assert!(String::from_utf8_lossy(&reply).contains("1-1"));
                served.push(n);
            }
            _ => waiting.push(n),
        }
    }
    assert_eq!((served, waiting), (vec![0], vec![1]));
    let reply = other.read_reply();
    assert!(String::from_utf8_lossy(&reply).contains("1-1"));
    writer.command(&["XADD", "s", "2-1", "f", "v"]);
    let reply = readers[1].read_reply();
    assert!(String::from_utf8_lossy(&reply).contains("2-1"));
    let pending = writer.command(&["XPENDING", "s", "g"]);
    assert!(String::from_utf8_lossy(&pending).starts_with("*4\r\n:2\r\n"));
}

/// The frames `subscriber` received before the marker `mark`.
fn frames_until(subscriber: &mut RawClient, mark: &str) -> Vec<String> {
    let marker = format!("$6\r\nmarker\r\n${}\r\n{mark}\r\n", mark.len());
    let mut frames = Vec::new();
    loop {
        let frame = String::from_utf8_lossy(&subscriber.read_reply()).into_owned();
        if frame.ends_with(&marker) {
            return frames;
        }
        frames.push(frame);
    }
}

/// Keyspace events of the group commands, frame for frame as Redis's.
#[test]
fn group_commands_notify_as_redis() {
    let pair = common::Pair::start();
    let mut writer = pair.clients();
    let mut subscriber = pair.clients();
    writer.same(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    for client in [&mut subscriber.ours, &mut subscriber.theirs] {
        client.command(&["PSUBSCRIBE", "__key*__:*"]);
        client.command(&["SUBSCRIBE", "marker"]);
    }
    let script = [
        "XGROUP CREATE s g 0 MKSTREAM",
        "XGROUP CREATE s g 0",
        "XADD s 1-1 a 1",
        "XREADGROUP GROUP g c1 STREAMS s >",
        "XREADGROUP GROUP g c2 STREAMS s >",
        "XREADGROUP GROUP g c2 STREAMS s 0",
        "XCLAIM s g c1 0 1-1",
        "XCLAIM s g c9 0 1-1",
        "XCLAIM s g c8 100000 1-1",
        "XAUTOCLAIM s g c9 0 0",
        "XAUTOCLAIM s g c10 0 0",
        "XACK s g 1-1",
        "XPENDING s g",
        "XGROUP SETID s g 0",
        "XGROUP CREATECONSUMER s g c11",
        "XGROUP CREATECONSUMER s g c11",
        "XGROUP DELCONSUMER s g c11",
        "XGROUP DELCONSUMER s g c11",
        "XGROUP DESTROY s g",
        "XGROUP DESTROY s g",
        "XINFO GROUPS s",
    ];
    for (n, line) in script.iter().enumerate() {
        let args: Vec<&str> = line.split_whitespace().collect();
        writer.same(&args);
        let mark = n.to_string();
        writer.same(&["PUBLISH", "marker", &mark]);
        let ours = frames_until(&mut subscriber.ours, &mark);
        let theirs = frames_until(&mut subscriber.theirs, &mark);
        assert_eq!(ours, theirs, "events of {line}");
    }
}

/// COPY, RENAME and MOVE keep a stream's groups; DEL and re-creation do
/// not; MEMORY USAGE counts the pending entries.
#[test]
fn generic_commands_keep_groups_as_redis() {
    let mut diff = Differential::start();
    run_script(
        &mut diff,
        "
        XADD s 1-1 a 1
        XADD s 2-1 b 2
        XGROUP CREATE s g 0
        XGROUP CREATE s h $
        XREADGROUP GROUP g c1 COUNT 1 STREAMS s >
        DEBUG DIGEST-VALUE s
        XINFO STREAM s
        COPY s c
        XINFO GROUPS c
        XPENDING c g
        XACK c g 1-1
        XPENDING s g
        XPENDING c g
        RENAME c r
        XINFO GROUPS r
        XPENDING r g - + 10 c1
        MOVE r 1
        SELECT 1
        XINFO GROUPS r
        XREADGROUP GROUP g c2 STREAMS r >
        SELECT 0
        DEL s
        XADD s 3-1 x y
        XINFO GROUPS s
        ",
    );
    // From a script (which cannot block) and inside MULTI.
    run_script(&mut diff, "XGROUP CREATE s g 0");
    for script in [
        "return redis.call('XREAD','BLOCK','0','streams','s','0')",
        "return redis.call('xreadgroup','group','g','c3','block','0','streams','s','>')",
        "return redis.call('xreadgroup','group','g','c3','streams','s','0')",
        "return redis.call('xack','s','g','3-1')",
    ] {
        diff.check(&["EVAL", script, "1", "s"]);
    }
    run_script(
        &mut diff,
        "
        XADD s 4-1 x y
        MULTI
        XREADGROUP GROUP g c3 BLOCK 0 STREAMS s >
        XREADGROUP GROUP g c3 BLOCK 0 STREAMS s >
        EXEC
        ",
    );
    let usage = |client: &mut RawClient, key: &str| -> u64 {
        let reply = client.command(&["MEMORY", "USAGE", key]);
        String::from_utf8_lossy(&reply)
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap()
    };
    let larder = &mut diff.larder;
    for i in 1..=200 {
        larder.command(&["XADD", "m", &format!("{i}-1"), "f", "v"]);
    }
    let before = usage(larder, "m");
    larder.command(&["XGROUP", "CREATE", "m", "g", "0"]);
    larder.command(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "a-consumer",
        "STREAMS",
        "m",
        ">",
    ]);
    let after = usage(larder, "m");
    assert!(after > before + 200 * 16, "{before} -> {after}");
}

/// Ten consumers in one group process 10,000 messages, each acked exactly
/// once, while the entries a crashed consumer read and never acked are
/// reclaimed with XAUTOCLAIM.
#[test]
fn worker_pool_acks_every_message_once() {
    const MESSAGES: usize = 10_000;
    const WORKERS: usize = 10;
    let server = TestServer::start();
    let mut con = server.client();
    redis::cmd("XGROUP")
        .arg(&["CREATE", "jobs", "workers", "$", "MKSTREAM"])
        .query::<()>(&mut con)
        .unwrap();
    let mut pipe = redis::pipe();
    for i in 0..MESSAGES {
        pipe.cmd("XADD")
            .arg("jobs")
            .arg("*")
            .arg("n")
            .arg(i)
            .ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    // The crashed consumer takes 700 entries and never acks them.
    let crashed: redis::Value = redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP", "workers", "crashed", "COUNT", "700", "STREAMS", "jobs", ">",
        ])
        .query(&mut con)
        .unwrap();
    assert_eq!(entry_ids(&crashed).len(), 700);

    let acked = Arc::new(Mutex::new(HashSet::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let reclaimed = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    let threads: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (acked, done, reclaimed) = (acked.clone(), done.clone(), reclaimed.clone());
            let mut con = server.client();
            std::thread::spawn(move || {
                let name = format!("w{w}");
                while done.load(Ordering::SeqCst) < MESSAGES && Instant::now() < deadline {
                    let read: redis::Value = redis::cmd("XREADGROUP")
                        .arg(&["GROUP", "workers", &name, "COUNT", "50", "BLOCK", "20"])
                        .arg(&["STREAMS", "jobs", ">"])
                        .query(&mut con)
                        .unwrap();
                    let mut ids = entry_ids(&read);
                    if ids.is_empty() {
                        // Nothing new: take over what idles (the crashed
                        // consumer's entries).
                        let claimed: redis::Value = redis::cmd("XAUTOCLAIM")
                            .arg(&["jobs", "workers", &name, "50", "0", "COUNT", "50"])
                            .query(&mut con)
                            .unwrap();
                        let redis::Value::Array(parts) = claimed else {
                            panic!("{claimed:?}")
                        };
                        ids = entry_ids_of(&parts[1]);
                        reclaimed.fetch_add(ids.len(), Ordering::SeqCst);
                    }
                    for id in ids {
                        let n: i64 = redis::cmd("XACK")
                            .arg(&["jobs", "workers", &id])
                            .query(&mut con)
                            .unwrap();
                        if n == 1 {
                            assert!(acked.lock().unwrap().insert(id.clone()), "{id} twice");
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(acked.lock().unwrap().len(), MESSAGES);
    assert!(reclaimed.load(Ordering::SeqCst) >= 700);
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&["jobs", "workers"])
        .query(&mut con)
        .unwrap();
    let redis::Value::Array(summary) = pending else {
        panic!("{pending:?}")
    };
    assert_eq!(summary[0], redis::Value::Int(0));
}

/// The IDs of an XREADGROUP reply (any number of streams).
fn entry_ids(reply: &redis::Value) -> Vec<String> {
    let redis::Value::Array(streams) = reply else {
        return Vec::new();
    };
    streams
        .iter()
        .flat_map(|stream| match stream {
            redis::Value::Array(pair) => entry_ids_of(&pair[1]),
            _ => Vec::new(),
        })
        .collect()
}

/// The IDs of an array of entries.
fn entry_ids_of(entries: &redis::Value) -> Vec<String> {
    let redis::Value::Array(entries) = entries else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            redis::Value::Array(parts) => match &parts[0] {
                redis::Value::BulkString(id) => Some(String::from_utf8_lossy(id).into_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Consumer groups live in memory: a stream with groups is written behind
/// with its entries and counters, and comes back (warm start) without its
/// groups; group commands write nothing behind.
#[test]
fn groups_are_not_written_behind() {
    use common::writebehind::flush;
    let pg = common::postgres::Postgres::start();
    let server_with = |warm: bool| {
        let url = pg.url();
        TestServer::with_config(|config| {
            config.write_behind_url = url;
            config.write_behind_delay = 50;
            config.write_behind_warm_start = warm;
        })
    };
    {
        let server = server_with(false);
        let mut raw = server.raw();
        raw.command(&["XADD", "s", "1-1", "f", "v"]);
        raw.command(&["XADD", "s", "2-1", "f", "w"]);
        raw.command(&["XGROUP", "CREATE", "s", "g", "0"]);
        raw.command(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"]);
        raw.command(&["XGROUP", "CREATE", "made", "g", "$", "MKSTREAM"]);
        flush(&mut server.client());
    }
    let server = server_with(true);
    let mut raw = server.raw();
    let range = raw.command(&["XRANGE", "s", "-", "+"]);
    assert!(String::from_utf8_lossy(&range).starts_with("*2\r\n"));
    assert_eq!(raw.command(&["XINFO", "GROUPS", "s"]), b"*0\r\n");
    assert_eq!(raw.command(&["XLEN", "made"]), b":0\r\n");
    assert_eq!(raw.command(&["XINFO", "GROUPS", "made"]), b"*0\r\n");
}

/// Random sequences of group commands (reads, acks, claims, autoclaims,
/// deletes, trims, SETID, consumer changes) give the same replies as
/// Redis: PEL ownership, delivery counts, lag and entries-read agree step
/// by step.
#[test]
fn random_group_workloads_match_redis() {
    let mut diff = Differential::start();
    // A small deterministic generator (no seed to carry around).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |bound: u64| -> u64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    for round in 0..4 {
        let key = format!("w{round}");
        let mut commands: Vec<String> = vec![format!("XGROUP CREATE {key} g 0 MKSTREAM")];
        let mut top = 0;
        for _ in 0..250 {
            let id = |n: u64| format!("{}-1", n);
            let pick = |next: &mut dyn FnMut(u64) -> u64, top: u64| id(next(top + 2));
            let consumer = format!("c{}", next(4));
            let command = match next(14) {
                0..=2 => {
                    top += 1 + next(2);
                    format!("XADD {key} {} f {}", id(top), next(100))
                }
                3 | 4 => {
                    let noack = if next(4) == 0 { "NOACK" } else { "" };
                    format!(
                        "XREADGROUP GROUP g {consumer} COUNT {} {noack} STREAMS {key} >",
                        next(4)
                    )
                }
                5 => format!(
                    "XREADGROUP GROUP g {consumer} COUNT {} STREAMS {key} {}",
                    next(3),
                    pick(&mut next, top)
                ),
                6 => format!(
                    "XACK {key} g {} {}",
                    pick(&mut next, top),
                    pick(&mut next, top)
                ),
                7 => {
                    let force = if next(2) == 0 { "FORCE" } else { "" };
                    let justid = if next(2) == 0 { "JUSTID" } else { "" };
                    format!(
                        "XCLAIM {key} g {consumer} 0 {} {} {force} {justid} RETRYCOUNT {}",
                        pick(&mut next, top),
                        pick(&mut next, top),
                        next(3) as i64 - 1
                    )
                }
                8 => {
                    let justid = if next(2) == 0 { "JUSTID" } else { "" };
                    format!(
                        "XAUTOCLAIM {key} g {consumer} 0 {} COUNT {} {justid}",
                        pick(&mut next, top),
                        1 + next(3)
                    )
                }
                9 => format!("XDEL {key} {}", pick(&mut next, top)),
                10 => match next(4) {
                    0 => format!("XTRIM {key} MAXLEN {}", next(6)),
                    1 => format!("XGROUP SETID {key} g {}", pick(&mut next, top)),
                    2 => format!("XGROUP DELCONSUMER {key} g {consumer}"),
                    _ => format!("XGROUP CREATECONSUMER {key} g {consumer}"),
                },
                11 => format!("XPENDING {key} g"),
                12 => format!("~XPENDING {key} g - + 100"),
                _ => format!("XINFO GROUPS {key}"),
            };
            commands.push(command);
        }
        commands.push(format!("XPENDING {key} g"));
        commands.push(format!("XINFO GROUPS {key}"));
        commands.push(format!("~XPENDING {key} g - + 1000"));
        run_script(&mut diff, &commands.join("\n"));
    }
}
