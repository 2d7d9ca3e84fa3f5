//! Stream consumer groups: differential tests against a real redis-server
//! 7.0 for every command, option and error (RESP2 and RESP3), blocking
//! XREADGROUP, keyspace events, the generic commands on a stream with
//! groups, and a pool of consumers acking 10,000 messages exactly once
//! while a crashed consumer's entries are reclaimed with XAUTOCLAIM.

mod common;

use std::collections::{BTreeMap, HashSet};
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

/// A RESP reply as a tree: a leaf keeps its raw bytes (line, or length
/// line and data); an aggregate its type byte and children (a RESP3 map's
/// keys and values in turn).
enum Resp {
    Leaf(Vec<u8>),
    Aggregate {
        kind: u8,
        map: bool,
        items: Vec<Resp>,
    },
}

fn parse_resp(bytes: &[u8]) -> (Resp, &[u8]) {
    let end = bytes.windows(2).position(|w| w == b"\r\n").expect("a line");
    let (line, rest) = (&bytes[..end], &bytes[end + 2..]);
    let count = || -> i64 {
        String::from_utf8_lossy(&line[1..])
            .parse()
            .expect("a count")
    };
    match line[0] {
        b'$' | b'=' | b'!' if count() >= 0 => {
            let len = count() as usize + 2;
            let raw = bytes[..end + 2 + len].to_vec();
            (Resp::Leaf(raw), &rest[len..])
        }
        kind @ (b'*' | b'%' | b'~' | b'>' | b'|') if count() >= 0 => {
            let map = matches!(kind, b'%' | b'|');
            let n = count() as usize * if map { 2 } else { 1 };
            let mut items = Vec::with_capacity(n);
            let mut rest = rest;
            for _ in 0..n {
                let (item, after) = parse_resp(rest);
                items.push(item);
                rest = after;
            }
            (Resp::Aggregate { kind, map, items }, rest)
        }
        _ => (Resp::Leaf(bytes[..end + 2].to_vec()), rest),
    }
}

fn write_resp(resp: &Resp, out: &mut Vec<u8>) {
    match resp {
        Resp::Leaf(raw) => out.extend_from_slice(raw),
        Resp::Aggregate { kind, map, items } => {
            let n = items.len() / if *map { 2 } else { 1 };
            out.push(*kind);
            out.extend_from_slice(format!("{n}\r\n").as_bytes());
            for item in items {
                write_resp(item, out);
            }
        }
    }
}

fn bulk_text(resp: &Resp) -> Option<String> {
    match resp {
        Resp::Leaf(raw) if raw.first() == Some(&b'$') => {
            let text = String::from_utf8_lossy(raw).into_owned();
            text.split("\r\n").nth(1).map(str::to_string)
        }
        _ => None,
    }
}

fn int_value(resp: &Resp) -> i64 {
    match resp {
        Resp::Leaf(raw) if raw.first() == Some(&b':') => String::from_utf8_lossy(&raw[1..])
            .trim()
            .parse()
            .expect("an integer"),
        _ => panic!("not an integer"),
    }
}

/// One consumer's Redis 7.2 fields, taken out of a Larder reply: from XINFO
/// CONSUMERS its `idle` and `inactive`, from XINFO STREAM FULL its
/// `seen-time` and `active-time`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Times {
    Consumers { idle: i64, inactive: i64 },
    Full { seen: i64, active: i64 },
}

/// Removes Redis 7.2's consumer fields (`inactive` after `idle`,
/// `active-time` after `seen-time`) wherever a consumer's description
/// holds them, so that the rest compares with Redis 7.0; returns them.
fn strip_7_2(resp: &mut Resp, found: &mut Vec<Times>) {
    let Resp::Aggregate { items, .. } = resp else {
        return;
    };
    let keys: Vec<Option<String>> = items.iter().step_by(2).map(bulk_text).collect();
    let at = |name: &str| {
        keys.iter()
            .position(|k| k.as_deref() == Some(name))
            .map(|i| 2 * i)
    };
    let taken = match (
        at("idle"),
        at("inactive"),
        at("seen-time"),
        at("active-time"),
    ) {
        (Some(idle), Some(inactive), _, _) if inactive == idle + 2 => Some((
            inactive,
            Times::Consumers {
                idle: int_value(&items[idle + 1]),
                inactive: int_value(&items[inactive + 1]),
            },
        )),
        (_, _, Some(seen), Some(active)) if active == seen + 2 => Some((
            active,
            Times::Full {
                seen: int_value(&items[seen + 1]),
                active: int_value(&items[active + 1]),
            },
        )),
        _ => None,
    };
    if let Some((at, times)) = taken {
        items.drain(at..at + 2);
        found.push(times);
    }
    for item in items.iter_mut() {
        strip_7_2(item, found);
    }
}

/// [`strip_7_2`] of a whole reply, as bytes.
fn without_7_2(reply: &[u8]) -> (Vec<u8>, Vec<Times>) {
    let (mut resp, rest) = parse_resp(reply);
    assert!(rest.is_empty(), "one reply");
    let mut found = Vec::new();
    strip_7_2(&mut resp, &mut found);
    let mut out = Vec::new();
    write_resp(&resp, &mut out);
    (out, found)
}

/// The Redis 7.2 fields must agree with the 7.0 ones next to them: a
/// consumer never active says -1; otherwise its last success is no later
/// than its last attempt (the seen time moves on every read or claim).
fn check_7_2(times: &[Times], what: &str) {
    for t in times {
        let ok = match *t {
            Times::Consumers { idle, inactive } => inactive == -1 || inactive >= idle,
            Times::Full { seen, active } => active == -1 || (active > 0 && active <= seen),
        };
        assert!(ok, "Redis 7.2 consumer fields of {what}: {t:?}");
    }
}

/// Runs a script (one command a line; `~` first marks a reply with idle
/// times) on both servers. The reference is Redis 7.0, which has no
/// `inactive` (XINFO CONSUMERS) or `active-time` (XINFO STREAM FULL):
/// Larder's replies are compared byte for byte without those two fields,
/// which are checked on their own (see [`check_7_2`], and
/// `seven_two_consumer_times` for their exact rules).
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
        let (ours, times) = without_7_2(&ours);
        check_7_2(&times, command);
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

/// Like Redis 7.0, group commands do not signal the key as modified: a
/// WATCH of the stream survives them (XADD, for contrast, aborts it).
#[test]
fn group_commands_leave_watch_as_redis() {
    let pair = common::Pair::start();
    let mut watcher = pair.clients();
    let mut writer = pair.clients();
    writer.script(
        "
        XADD s 1-1 a 1
        XADD s 2-1 b 2
        ",
    );
    for line in [
        "XGROUP CREATE s g 0",
        "XREADGROUP GROUP g c COUNT 1 STREAMS s >",
        "XREADGROUP GROUP g c STREAMS s 0",
        "XACK s g 1-1",
        "XGROUP CREATECONSUMER s g c2",
        "XCLAIM s g c2 0 1-1 FORCE",
        "XAUTOCLAIM s g c3 0 0",
        "XGROUP SETID s g 0",
        "XGROUP DELCONSUMER s g c2",
        "XREADGROUP GROUP g c NOACK STREAMS s >",
        "XGROUP DESTROY s g",
        "XADD s 3-1 c 3",
    ] {
        watcher.same(&["WATCH", "s"]);
        let args: Vec<&str> = line.split_whitespace().collect();
        writer.same(&args);
        watcher.same(&["MULTI"]);
        watcher.same(&["PING"]);
        let exec = watcher.same(&["EXEC"]);
        let aborted = line.starts_with("XADD");
        assert_eq!(exec == "*-1\r\n", aborted, "{line}: {exec:?}");
    }
}

/// A consumer's field of an XINFO CONSUMERS or XINFO STREAM FULL reply
/// (RESP2: flat arrays), by consumer name.
fn consumer_field(reply: &[u8], consumer: &str, field: &str) -> i64 {
    fn find(resp: &Resp, consumer: &str, field: &str) -> Option<i64> {
        let Resp::Aggregate { items, .. } = resp else {
            return None;
        };
        let named = items.len() >= 2
            && bulk_text(&items[0]).as_deref() == Some("name")
            && bulk_text(&items[1]).as_deref() == Some(consumer);
        if named {
            let at = items
                .iter()
                .step_by(2)
                .position(|k| bulk_text(k).as_deref() == Some(field))?;
            return Some(int_value(&items[2 * at + 1]));
        }
        items.iter().find_map(|item| find(item, consumer, field))
    }
    let (resp, _) = parse_resp(reply);
    find(&resp, consumer, field)
        .unwrap_or_else(|| panic!("{consumer}'s {field} in {}", String::from_utf8_lossy(reply)))
}

/// Redis 7.2's rules for a consumer's seen and active times (t_stream.c of
/// 7.2: `seen_time` is set by any read or claim naming the consumer,
/// `active_time` where an entry enters its PEL by XREADGROUP, or where
/// XCLAIM or XAUTOCLAIM claims one; a new consumer's active time is -1).
/// Larder only: the reference redis-server 7.0 has neither field. Time
/// must pass between two steps for their times to differ: each such step
/// waits 5 ms first, and only ">=" is asserted of the gap.
#[test]
fn seven_two_consumer_times() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let pause = || std::thread::sleep(Duration::from_millis(5));
    for args in [
        &["XADD", "s", "1-1", "a", "1"][..],
        &["XADD", "s", "2-1", "b", "2"],
        &["XADD", "s", "3-1", "c", "3"],
        &["XGROUP", "CREATE", "s", "g", "0"],
        &["XGROUP", "CREATECONSUMER", "s", "g", "never"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "noack",
            "COUNT",
            "1",
            "NOACK",
            "STREAMS",
            "s",
            ">",
        ],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "reader",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
    ] {
        raw.command(args);
    }
    let full = |raw: &mut RawClient| raw.command(&["XINFO", "STREAM", "s", "FULL"]);
    let info = full(&mut raw);
    // Created, or read only with NOACK: never active.
    for name in ["never", "noack"] {
        assert_eq!(consumer_field(&info, name, "active-time"), -1, "{name}");
        let consumers = raw.command(&["XINFO", "CONSUMERS", "s", "g"]);
        assert_eq!(consumer_field(&consumers, name, "inactive"), -1, "{name}");
    }
    // A delivery into the PEL: active when seen.
    let seen = consumer_field(&info, "reader", "seen-time");
    assert_eq!(consumer_field(&info, "reader", "active-time"), seen);
    // Reading its history, or finding nothing new: seen, not active.
    pause();
    raw.command(&["XREADGROUP", "GROUP", "g", "reader", "STREAMS", "s", "0"]);
    let info = full(&mut raw);
    let later = consumer_field(&info, "reader", "seen-time");
    assert!(later >= seen + 5, "{seen} -> {later}");
    assert_eq!(consumer_field(&info, "reader", "active-time"), seen);
    let consumers = raw.command(&["XINFO", "CONSUMERS", "s", "g"]);
    assert!(
        consumer_field(&consumers, "reader", "inactive")
            >= consumer_field(&consumers, "reader", "idle") + 5
    );
    // XAUTOCLAIM and XCLAIM that claim nothing (the entry is not idle
    // enough): seen, not active.
    pause();
    raw.command(&["XAUTOCLAIM", "s", "g", "never", "100000", "0"]);
    raw.command(&["XCLAIM", "s", "g", "noack", "100000", "2-1"]);
    let info = full(&mut raw);
    for name in ["never", "noack"] {
        assert!(
            consumer_field(&info, name, "seen-time") >= later + 5,
            "{name}"
        );
        assert_eq!(consumer_field(&info, name, "active-time"), -1, "{name}");
    }
    // Claims that take an entry: active when seen.
    raw.command(&["XCLAIM", "s", "g", "never", "0", "2-1"]);
    raw.command(&["XAUTOCLAIM", "s", "g", "noack", "0", "0", "COUNT", "1"]);
    let info = full(&mut raw);
    for name in ["never", "noack"] {
        let seen = consumer_field(&info, name, "seen-time");
        assert_eq!(consumer_field(&info, name, "active-time"), seen, "{name}");
    }
    // RESP3 carries the same fields.
    raw.command(&["HELLO", "3"]);
    let consumers =
        String::from_utf8_lossy(&raw.command(&["XINFO", "CONSUMERS", "s", "g"])).into_owned();
    assert!(consumers.starts_with("*3\r\n%4\r\n"), "{consumers}");
    assert!(consumers.contains("$8\r\ninactive\r\n:"), "{consumers}");
    let info = String::from_utf8_lossy(&full(&mut raw)).into_owned();
    assert!(info.contains("%5\r\n$4\r\nname\r\n"), "{info}");
    assert!(info.contains("$11\r\nactive-time\r\n:"), "{info}");
}

/// Replies that must come back the same from PostgreSQL. XINFO STREAM
/// FULL holds every group, PEL entry and consumer with their absolute
/// times (delivery, seen, active), so it compares byte for byte but for
/// the node counts (the stored form keeps no deleted entries); the
/// replies with idle times (XINFO CONSUMERS, XPENDING's extended form)
/// compare with those times normalized: each may only have grown, by no
/// more than the time that passed.
const GROUP_STATE: &[&[&str]] = &[
    &["XINFO", "STREAM", "s", "FULL"],
    &["XINFO", "GROUPS", "s"],
    &["XINFO", "CONSUMERS", "s", "g"],
    &["XINFO", "CONSUMERS", "s", "h"],
    &["XPENDING", "s", "g"],
    &["XPENDING", "s", "g", "-", "+", "100"],
    &["XPENDING", "s", "h", "-", "+", "100"],
    &["XINFO", "STREAM", "made", "FULL"],
    &["XINFO", "GROUPS", "plain"],
];

/// The integers of a reply, and the reply with each integer that follows
/// an idle-time key (`idle`, `inactive`; XPENDING rows' third element)
/// blanked out.
fn idle_times(command: &[&str], reply: &[u8]) -> (String, Vec<i64>) {
    let text = String::from_utf8_lossy(reply).into_owned();
    let lines: Vec<&str> = text.split("\r\n").collect();
    let mut kept = Vec::new();
    let mut idles = Vec::new();
    let pending_rows = command[0] == "XPENDING" && command.len() > 3;
    for (i, line) in lines.iter().enumerate() {
        let after_key = i >= 1 && (lines[i - 1] == "idle" || lines[i - 1] == "inactive");
        // An XPENDING row: *4, $id-len, id, $name-len, name, :idle, :count.
        let pending_idle = pending_rows && i >= 5 && lines[i - 5] == "*4";
        if line.starts_with(':') && (after_key || pending_idle) {
            idles.push(line[1..].parse().expect("an idle time"));
            kept.push(":?".to_string());
        } else if i >= 1
            && (lines[i - 1] == "radix-tree-keys" || lines[i - 1] == "radix-tree-nodes")
        {
            kept.push(":nodes".to_string());
        } else {
            kept.push(line.to_string());
        }
    }
    (kept.join("\r\n"), idles)
}

/// A stream's consumer groups are written behind with it: groups created
/// (one on a stream made by MKSTREAM, one set back with SETID), entries
/// delivered, some acked, some claimed (XCLAIM with RETRYCOUNT and FORCE,
/// XAUTOCLAIM), a consumer created and never active, one deleted, a
/// group destroyed; a restart from PostgreSQL, by warm start and by
/// read-through, brings back every group, PEL entry and consumer exactly.
/// A stream that lost its groups is stored without them.
#[test]
fn groups_are_written_behind_and_read_back() {
    use common::writebehind::{cmd, flush};
    let pg = common::postgres::Postgres::start();
    let server_with = |warm: bool, read_through: bool| {
        let url = pg.url();
        TestServer::with_config(|config| {
            config.write_behind_url = url;
            config.write_behind_delay = 50;
            config.write_behind_warm_start = warm;
            config.write_behind_read_through = read_through;
        })
    };
    let script = "
        XADD s 1-1 f a
        XADD s 2-1 f b
        XADD s 3-1 f c
        XADD s 4-1 f d
        XADD s 5-1 f e
        XADD s 6-1 f g
        XGROUP CREATE s g 0
        XGROUP CREATE s h 0 ENTRIESREAD 0
        XGROUP CREATE s gone 0
        XREADGROUP GROUP g alice COUNT 3 STREAMS s >
        XREADGROUP GROUP g bob COUNT 2 STREAMS s >
        XREADGROUP GROUP h carol NOACK COUNT 2 STREAMS s >
        XREADGROUP GROUP h dave STREAMS s >
        XACK s g 2-1
        XCLAIM s g bob 0 1-1 RETRYCOUNT 5
        XAUTOCLAIM s g erin 0 3-1 COUNT 1
        XGROUP CREATECONSUMER s g idle-one
        XGROUP CREATECONSUMER s g doomed
        XREADGROUP GROUP g doomed STREAMS s >
        XGROUP DELCONSUMER s g doomed
        XDEL s 4-1
        XCLAIM s h dave 0 1-1 FORCE JUSTID
        XGROUP SETID s h 4-1 ENTRIESREAD 3
        XGROUP DESTROY s gone
        XGROUP CREATE made g $ MKSTREAM
        XGROUP CREATECONSUMER made g c
        XADD plain 1-1 f v
        XGROUP CREATE plain g 0
        XGROUP DESTROY plain g
    ";
    let mut before = Vec::new();
    let started;
    {
        let server = server_with(false, false);
        let mut raw = server.raw();
        let mut con = server.client();
        // Each command's change reaches PostgreSQL by itself: flushed
        // after each, the key's stored record changes every time (a group
        // command that did not mark its key would leave it as it was).
        let mut stored: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let args: Vec<&str> = line.split_whitespace().collect();
            let reply = raw.command(&args);
            assert!(
                !reply.starts_with(b"-"),
                "{line}: {}",
                String::from_utf8_lossy(&reply)
            );
            flush(&mut con);
            let key = match args[0] {
                "XGROUP" => args[2],
                "XREADGROUP" => args[args.len() - 2],
                _ => args[1],
            };
            let value: Option<Vec<u8>> = pg
                .query(
                    &format!("SELECT value FROM larder_kv WHERE key = '{key}'::bytea"),
                    |r| r.get(0),
                )
                .into_iter()
                .next();
            assert!(value.is_some(), "{line}: {key} is stored");
            let previous = stored.insert(key.to_string(), value.clone()).flatten();
            assert_ne!(previous, value, "{line} changed the stored {key}");
        }
        started = Instant::now();
        for command in GROUP_STATE {
            before.push(raw.command(command));
        }
        // The setup holds what the test means to store.
        let full = String::from_utf8_lossy(&before[0]).into_owned();
        for needle in ["idle-one", "erin", "carol", "dave", "$9\r\npel-count\r\n:3"] {
            assert!(full.contains(needle), "{needle} in {full}");
        }
        assert!(!full.contains("doomed") && !full.contains("gone"), "{full}");
        flush(&mut con);
        cmd(&mut con, &["DBSIZE"]);
    }
    // The stored record: the groups section after the entries.
    let rows: Vec<(Vec<u8>, Vec<u8>)> = pg
        .query("SELECT key, value FROM larder_kv ORDER BY key", |r| {
            (r.get(0), r.get(1))
        });
    let record = |key: &str| -> Vec<Vec<u8>> {
        let value = &rows.iter().find(|(k, _)| k == key.as_bytes()).expect(key).1;
        larder::writebehind::encode::decode_items(value).expect("items")
    };
    let made = record("made");
    assert_eq!(
        made[3..6],
        [b"groups".to_vec(), b"1".to_vec(), b"g".to_vec()],
        "{made:?}"
    );
    assert!(!record("plain").contains(&b"groups".to_vec()));
    let s = record("s");
    let at = s
        .iter()
        .position(|item| item == b"groups")
        .expect("a groups section");
    assert_eq!(s[at + 1], b"2", "two groups");
    for (name, restart) in [
        ("warm start", server_with(true, false)),
        ("read-through", server_with(false, true)),
    ] {
        let mut raw = restart.raw();
        let after: Vec<Vec<u8>> = GROUP_STATE.iter().map(|c| raw.command(c)).collect();
        let elapsed = started.elapsed().as_millis() as i64 + 1;
        for ((command, was), now) in GROUP_STATE.iter().zip(&before).zip(&after) {
            let (was_text, was_idle) = idle_times(command, was);
            let (now_text, now_idle) = idle_times(command, now);
            assert_eq!(now_text, was_text, "{name}: {command:?}");
            for (a, b) in was_idle.iter().zip(&now_idle) {
                let grew = if *a == -1 {
                    *b == -1
                } else {
                    *b >= *a && *b - *a <= elapsed
                };
                assert!(grew, "{name}: {command:?}: idle {a} -> {b} in {elapsed} ms");
            }
        }
        // The groups work on: the restored PEL is acked and claimed (on
        // the last server only: its changes are written behind too).
        if name == "read-through" {
            assert_eq!(raw.command(&["XACK", "s", "g", "1-1", "3-1"]), b":2\r\n");
            let claimed = raw.command(&["XAUTOCLAIM", "s", "g", "zed", "0", "0", "JUSTID"]);
            let claimed = String::from_utf8_lossy(&claimed).into_owned();
            assert!(
                claimed.contains("5-1") && claimed.contains("4-1"),
                "{claimed}"
            );
        }
    }
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
