//! Stream commands: differential tests against a real redis-server 7.0
//! for every deterministic reply and error (RESP2 and RESP3), and the
//! Redis 7.4 `+` of XREAD, keyspace events and TYPE/OBJECT checks.

mod common;

use common::{Differential, TestServer};

/// Explicit IDs, every option and error of XADD/XLEN/XRANGE/XREVRANGE/
/// XDEL/XTRIM/XREAD/XSETID/XINFO STREAM.
const SCRIPT: &str = r#"
# IDs and their errors
XADD s 1-1 a 1 b 2
XADD s 1-2 a 1 b 3
XADD s 1-* a 9 b 9
XADD s 2-* a 9
XADD s 1-5 a 1
XADD s 2-1 a 1
XADD s 0-0 a 1
XADD s 0 a 1
XADD s - a 1
XADD s + a 1
XADD s abc a 1
XADD s 3-x a 1
XADD s 1-2-3 a 1
XADD s 1-+2 a 1
XADD s 18446744073709551616-0 a 1
XADD s -1-0 a 1
XADD s 3-1 a
XADD s 3-1 a 1 b
XADD s 3-1
XADD s MAXLEN
XADD new 0-* f v
EXISTS new
XLEN new
XADD new2 0-0 f v
EXISTS new2
XADD missing NOMKSTREAM 5-5 f v
EXISTS missing
XADD s NOMKSTREAM 5-5 f v x y
XLEN s
XLEN nokey
# trimming options
XADD s MAXLEN -1 6-1 f v
XADD s MAXLEN abc 6-1 f v
XADD s MAXLEN 3 MINID 0 6-1 f v
XADD s MINID 0 MAXLEN 3 6-1 f v
XADD s LIMIT 10 6-1 f v
XADD s MAXLEN 5 LIMIT 10 6-1 f v
XADD s MAXLEN = 5 LIMIT 10 6-1 f v
XADD s MAXLEN ~ 5 LIMIT -1 6-1 f v
XADD s MINID bad 6-1 f v
XADD s MAXLEN = 4 6-1 f v
XRANGE s - +
XADD s MINID 2 7-1 f v
XRANGE s - +
XADD s MAXLEN ~ 1 8-1 f v
XLEN s
XADD s MAXLEN ~ 1 LIMIT 1 8-2 f v
XLEN s
# ranges
XRANGE s - + COUNT 2
XRANGE s - + COUNT 0
XRANGE s - + COUNT -5
XRANGE s - + COUNT
XRANGE s - + FOO 1
XRANGE s - + COUNT x
XRANGE s (6-1 +
XRANGE s - (7-1
XRANGE s (- +
XRANGE s ( +
XRANGE s 7 7
XRANGE s 7 6
XRANGE s (18446744073709551615-18446744073709551615 +
XRANGE s - (0-0
XRANGE s 0 +
XREVRANGE s + -
XREVRANGE s + - COUNT 1
XREVRANGE s (8-2 -
XREVRANGE s 7 7
XRANGE nokey - +
XREVRANGE nokey + -
# XDEL
XDEL s 7-1 7-1 99-1
XDEL s bad
XDEL s 1-1 bad
XDEL nokey bad
XLEN s
XINFO STREAM s
XINFO STREAM nokey
XINFO STREAM s FOO
XINFO STREAM nokey FOO
XINFO STREAM s FULL
XINFO STREAM s FULL COUNT 1
XINFO STREAM s FULL COUNT 0
XINFO STREAM s FULL COUNT -1
XINFO STREAM s FULL COUNT x
XINFO STREAM s FULL COUNT
XINFO STREAM s FULL LIMIT 1
XINFO STREAM s full count 2
XINFO STREAM s FOO COUNT 2
XINFO NOPE s
# XTRIM
XTRIM s
XTRIM s FOO
XTRIM s MAXLEN
XTRIM s MAXLEN 1 LIMIT 1
XTRIM s MAXLEN ~ 1 LIMIT 1
XTRIM s LIMIT 1
XTRIM s MAXLEN 100
XTRIM s MINID 0
XTRIM s MAXLEN 1
XTRIM nokey MAXLEN 1
XRANGE s - +
XINFO STREAM s
# XSETID
XSETID s 1-1
XSETID s 100-1 ENTRIESADDED 0
XSETID s 100-1 ENTRIESADDED -1
XSETID s 100-1 ENTRIESADDED x
XSETID s 100-1 MAXDELETEDID 200-1
XSETID s 100-1 MAXDELETEDID bad
XSETID s 100-1 FOO 1
XSETID s 100-1 ENTRIESADDED
XSETID s 100-1 ENTRIESADDED 50 MAXDELETEDID 90-9
XINFO STREAM s
XSETID s 95-0
XSETID nokey 1-1
XSETID s +
XSETID s bad
XADD s 100-1 f v
XADD s 100-* f v
# XREAD
XREAD STREAMS s 0
XREAD COUNT 1 STREAMS s 0
XREAD COUNT 1 STREAMS s nokey 0 0
XREAD STREAMS s $
XREAD STREAMS nokey $
XREAD STREAMS s 100-2
XREAD STREAMS s
XREAD STREAMS s a 0
XREAD COUNT x STREAMS s 0
XREAD FOO STREAMS s 0
XREAD COUNT 1
XREAD STREAMS s >
XREAD STREAMS s -
XREAD STREAMS s bad
XREAD GROUP g c STREAMS s 0
XREAD NOACK STREAMS s 0
# wrong types
SET str v
XADD str 1-1 f v
XLEN str
XRANGE str - +
XREVRANGE str + -
XDEL str 1-1
XTRIM str MAXLEN 1
XSETID str 1-1
XINFO STREAM str
XREAD STREAMS s str 0 0
XREAD STREAMS str s bad 0
GET s
LPUSH s x
TYPE s
OBJECT ENCODING s
# an empty stream stays a key
XDEL s 100-1 100-2 100-3
XLEN s
EXISTS s
XINFO STREAM s
XRANGE s - +
XREAD STREAMS s 0
"#;

fn run(resp3: bool) {
    let mut diff = Differential::start();
    if resp3 {
        diff.larder.command(&["HELLO", "3"]);
        diff.redis.command(&["HELLO", "3"]);
    }
    diff.script(SCRIPT);
}

#[test]
fn commands_match_redis_resp2() {
    run(false);
}

#[test]
fn commands_match_redis_resp3() {
    run(true);
}

/// Many entries: node splits by count and by bytes, partial and whole-node
/// trims, XINFO's radix tree counts, deletes across nodes.
#[test]
fn large_streams_match_redis() {
    let mut diff = Differential::start();
    for i in 1..=1000u64 {
        let id = format!("{}-{}", 1000 + i / 3, i % 3);
        let value = "x".repeat((i % 97) as usize);
        let (a, b) = if i % 7 == 0 {
            ("other", "field")
        } else {
            ("a", "b")
        };
        diff.check(&["XADD", "big", &id, a, &value, b, &i.to_string()]);
    }
    for i in (0..1000u64).step_by(13) {
        let id = format!("{}-{}", 1000 + i / 3, i % 3);
        diff.check(&["XDEL", "big", &id]);
    }
    diff.check(&["XINFO", "STREAM", "big"]);
    diff.check(&["XRANGE", "big", "1100", "1110"]);
    diff.check(&["XREVRANGE", "big", "1200", "1150", "COUNT", "7"]);
    diff.check(&["XTRIM", "big", "MAXLEN", "~", "900"]);
    diff.check(&["XINFO", "STREAM", "big"]);
    diff.check(&["XTRIM", "big", "MAXLEN", "~", "10", "LIMIT", "150"]);
    diff.check(&["XINFO", "STREAM", "big"]);
    diff.check(&["XTRIM", "big", "MINID", "=", "1150-1"]);
    diff.check(&["XINFO", "STREAM", "big"]);
    diff.check(&["XTRIM", "big", "MINID", "~", "1250"]);
    diff.check(&["XINFO", "STREAM", "big"]);
    diff.check(&["XTRIM", "big", "MAXLEN", "333"]);
    diff.check(&["XINFO", "STREAM", "big"]);
    diff.check(&["XINFO", "STREAM", "big", "FULL", "COUNT", "0"]);
    diff.check(&["XRANGE", "big", "-", "+", "COUNT", "5"]);
    diff.check(&["XREAD", "COUNT", "3", "STREAMS", "big", "1300"]);
    // Auto IDs: compare shapes only where time enters.
    let ours = diff.larder.command(&["XADD", "big", "*", "f", "v"]);
    assert!(ours.starts_with(b"$"), "{}", String::from_utf8_lossy(&ours));
    // Big values close nodes by bytes.
    let big_value = "y".repeat(1500);
    for i in 1..=20 {
        diff.check(&["XADD", "bytes", &format!("{i}-0"), "f", &big_value]);
    }
    diff.check(&["XINFO", "STREAM", "bytes"]);
    diff.check(&["XADD", "ints", "1-1", "1", "2"]);
    for i in 2..=300 {
        diff.check(&[
            "XADD",
            "ints",
            &format!("{i}-{i}"),
            "1",
            &(i * 1000).to_string(),
        ]);
    }
    diff.check(&["XINFO", "STREAM", "ints"]);
}

/// Redis 7.4's `+` in XREAD: the last entry of each stream.
#[test]
fn xread_plus_reads_the_last_entry() {
    let server = TestServer::start();
    let mut client = server.raw();
    client.command(&["XADD", "s", "1-1", "a", "1"]);
    client.command(&["XADD", "s", "2-1", "b", "2"]);
    let reply = client.command(&["XREAD", "STREAMS", "s", "e", "+", "+"]);
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
}

/// The frames `subscriber` received before the marker `mark`.
fn frames_until(subscriber: &mut common::RawClient, mark: &str) -> Vec<String> {
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

/// Keyspace events of the stream commands, frame for frame as Redis's:
/// xadd, xtrim (from XADD's trimming and XTRIM), xdel, xsetid, and none
/// for commands that change nothing.
#[test]
fn stream_commands_notify_as_redis() {
    let pair = common::Pair::start();
    let mut writer = pair.clients();
    let mut subscriber = pair.clients();
    writer.same(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    for client in [&mut subscriber.ours, &mut subscriber.theirs] {
        client.command(&["PSUBSCRIBE", "__key*__:*"]);
        client.command(&["SUBSCRIBE", "marker"]);
    }
    let script = [
        "XADD s 1-1 f v",
        "XADD s MAXLEN 1 2-1 f v",
        "XADD s MAXLEN 5 3-1 f v",
        "XADD s 0-1 f v",
        "XADD nomk NOMKSTREAM 1-1 f v",
        "XDEL s 3-1 9-9",
        "XDEL s 9-9",
        "XTRIM s MAXLEN 0",
        "XTRIM s MAXLEN 0",
        "XSETID s 10-1",
        "XLEN s",
        "XRANGE s - +",
        "DEL s",
    ];
    for (n, line) in script.iter().enumerate() {
        let args: Vec<&str> = line.split_whitespace().collect();
        writer.same(&args);
        let mark = n.to_string();
        writer.same(&["PUBLISH", "marker", &mark]);
        let ours = frames_until(&mut subscriber.ours, &mark);
        let theirs = frames_until(&mut subscriber.theirs, &mark);
        assert_eq!(ours, theirs, "events of {line}");
        if n == 1 {
            // XADD with trimming: both events, on both channels.
            assert_eq!(ours.len(), 4, "{ours:?}");
            assert!(ours[3].contains("xtrim"), "{ours:?}");
        }
    }
}

/// The generic commands on a stream key: TYPE, OBJECT ENCODING, SCAN TYPE,
/// COPY, RENAME, MOVE, DUMP-free round trips, WRONGTYPE from other types.
#[test]
fn generic_commands_handle_streams_as_redis() {
    let mut diff = Differential::start();
    diff.script(
        "
        XADD s 1-1 a 1 b 2
        XADD s 2-1 a 3 b 4
        XSETID s 5-5 ENTRIESADDED 9 MAXDELETEDID 3-3
        TYPE s
        OBJECT ENCODING s
        DEBUG DIGEST-VALUE s
        SCAN 0 TYPE stream
        SCAN 0 TYPE string
        COPY s c
        XINFO STREAM c
        XADD c 6-1 x y
        XLEN s
        XLEN c
        RENAME c r
        XRANGE r - +
        EXISTS c
        MOVE r 1
        SELECT 1
        XINFO STREAM r
        XRANGE r - +
        SELECT 0
        SET str v
        LPUSH s x
        HSET s f v
        SADD s m
        ZADD s 1 m
        GET s
        INCR s
        APPEND s x
        LRANGE s 0 -1
        DEL s
        XLEN s
        ",
    );
    let usage = diff.larder.command(&["MEMORY", "USAGE", "str"]);
    assert!(usage.starts_with(b":"));
    diff.larder.command(&["XADD", "m", "1-1", "f", "v"]);
    let usage =
        String::from_utf8_lossy(&diff.larder.command(&["MEMORY", "USAGE", "m"])).into_owned();
    let bytes: u64 = usage.trim_start_matches(':').trim().parse().unwrap();
    assert!(bytes > 16 && bytes < 10_000, "{usage}");
}

fn writebehind_server(
    pg: &common::postgres::Postgres,
    warm: bool,
    read_through: bool,
) -> TestServer {
    let url = pg.url();
    TestServer::with_config(|config| {
        config.write_behind_url = url;
        config.write_behind_delay = 50;
        config.write_behind_warm_start = warm;
        config.write_behind_read_through = read_through;
    })
}

/// A stream key is written behind (type `stream`), and read back, with its
/// entries and counters, by warm start and by read-through.
#[test]
fn streams_are_written_behind_and_read_back() {
    use common::writebehind::{cmd, flush};
    let pg = common::postgres::Postgres::start();
    let mut expected = Vec::new();
    {
        let server = writebehind_server(&pg, false, false);
        let mut raw = server.raw();
        for i in 1..=250 {
            let field = if i % 10 == 0 { "other" } else { "f" };
            raw.command(&[
                "XADD",
                "s",
                &format!("{i}-1"),
                field,
                &i.to_string(),
                "g",
                "",
            ]);
        }
        raw.command(&["XDEL", "s", "5-1", "250-1"]);
        raw.command(&["XSETID", "s", "300-0", "ENTRIESADDED", "400"]);
        raw.command(&["XADD", "empty", "1-1", "f", "v"]);
        raw.command(&["XDEL", "empty", "1-1"]);
        for args in [
            &["XINFO", "STREAM", "s"][..],
            &["XRANGE", "s", "-", "+"],
            &["XINFO", "STREAM", "empty"],
        ] {
            expected.push(raw.command(args));
        }
        let mut con = server.client();
        flush(&mut con);
        let kinds: Vec<String> = pg.query("SELECT type FROM larder_kv ORDER BY key", |r| r.get(0));
        assert_eq!(kinds, ["stream", "stream"]);
        cmd(&mut con, &["DBSIZE"]);
    }
    let compare = |server: &TestServer| {
        let mut raw = server.raw();
        let got: Vec<Vec<u8>> = [
            &["XINFO", "STREAM", "s"][..],
            &["XRANGE", "s", "-", "+"],
            &["XINFO", "STREAM", "empty"],
        ]
        .iter()
        .map(|args| raw.command(args))
        .collect();
        // XINFO's node counts may differ: the stored form keeps no
        // deleted entries. Everything else matches.
        assert_eq!(
            String::from_utf8_lossy(&got[1]),
            String::from_utf8_lossy(&expected[1])
        );
        for (ours, theirs) in [(&got[0], &expected[0]), (&got[2], &expected[2])] {
            let strip = |reply: &[u8]| -> String {
                String::from_utf8_lossy(reply)
                    .split("radix-tree-keys")
                    .next()
                    .unwrap()
                    .to_string()
                    + String::from_utf8_lossy(reply)
                        .split("last-generated-id")
                        .nth(1)
                        .unwrap()
            };
            assert_eq!(strip(ours), strip(theirs));
        }
    };
    compare(&writebehind_server(&pg, true, false));
    compare(&writebehind_server(&pg, false, true));
}

/// XREAD BLOCK: woken by an XADD from another client (every blocked reader
/// of the key, `$` meaning the last ID when it blocked), timing out with a
/// null array, not blocking inside MULTI; its errors.
#[test]
fn xread_block_matches_redis() {
    let pair = common::Pair::start();
    let mut writer = pair.clients();
    let mut readers = [pair.clients(), pair.clients()];
    writer.script(
        "
        XADD s 1-1 f v
        XREAD BLOCK x STREAMS s 0
        XREAD BLOCK -1 STREAMS s 0
        XREAD BLOCK 1.5 STREAMS s 0
        XREAD BLOCK 0 STREAMS s 0
        XREAD BLOCK 10 STREAMS s $
        XREAD BLOCK 10 STREAMS nokey $
        MULTI
        XREAD BLOCK 0 STREAMS s $
        EXEC
        ",
    );
    let request = |args: &[&str]| {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        common::encode_command(&bytes)
    };
    readers[0].ours.send(&request(&[
        "XREAD", "BLOCK", "0", "STREAMS", "s", "other", "$", "$",
    ]));
    readers[0].theirs.send(&request(&[
        "XREAD", "BLOCK", "0", "STREAMS", "s", "other", "$", "$",
    ]));
    readers[1].ours.send(&request(&[
        "XREAD", "COUNT", "1", "BLOCK", "5000", "STREAMS", "other", "0",
    ]));
    readers[1].theirs.send(&request(&[
        "XREAD", "COUNT", "1", "BLOCK", "5000", "STREAMS", "other", "0",
    ]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    writer.same(&["XADD", "other", "5-1", "a", "1"]);
    for reader in &mut readers {
        let ours = reader.ours.read_reply();
        let theirs = reader.theirs.read_reply();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
        assert!(
            ours.starts_with(b"*1\r\n"),
            "{}",
            String::from_utf8_lossy(&ours)
        );
    }
    // A `$` reader is not served by an older entry, only by a new one.
    readers[0]
        .ours
        .send(&request(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]));
    readers[0]
        .theirs
        .send(&request(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    writer.same(&["XADD", "s", "9-1", "late", "entry"]);
    let ours = readers[0].ours.read_reply();
    let theirs = readers[0].theirs.read_reply();
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
    assert!(String::from_utf8_lossy(&ours).contains("9-1"));
    // A key re-typed while a reader waits leaves it waiting; the stream
    // coming back with an entry serves it.
    readers[0]
        .ours
        .send(&request(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]));
    readers[0]
        .theirs
        .send(&request(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    writer.same(&["SET", "s", "now a string"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    writer.same(&["DEL", "s"]);
    writer.same(&["XADD", "s", "20-1", "back", "again"]);
    let ours = readers[0].ours.read_reply();
    let theirs = readers[0].theirs.read_reply();
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
    assert!(String::from_utf8_lossy(&ours).contains("20-1"));
    // A timeout answers a null array.
    readers[1].same(&["XREAD", "BLOCK", "50", "STREAMS", "s", "$"]);
}
