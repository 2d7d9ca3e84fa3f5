//! Keyspace commands: differential tests against a real redis-server for
//! everything deterministic, and Larder-only tests for time, concurrency and
//! iteration order.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Differential, TestServer};

/// Decodes a raw reply with the `redis` crate's parser.
fn decode(raw: &[u8]) -> redis::Value {
    redis::parse_redis_value(raw).expect("well-formed reply")
}

/// A raw array-of-bulks reply (KEYS), sorted.
fn sorted_strings(raw: &[u8]) -> Vec<String> {
    let mut items: Vec<String> = redis::from_redis_value(&decode(raw)).expect("array of strings");
    items.sort();
    items
}

/// Sends the same command to both servers and compares the replies as
/// sorted sets of keys: the order of KEYS/SCAN output differs from Redis.
fn check_unordered(pair: &mut Differential, args: &[&str]) -> Vec<String> {
    let ours = pair.larder.command(args);
    let theirs = pair.redis.command(args);
    let (ours, theirs) = (sorted_strings(&ours), sorted_strings(&theirs));
    assert_eq!(ours, theirs, "key sets differ for {args:?}");
    ours
}

/// A SCAN reply: the cursor and the keys (sorted).
fn scan_reply(raw: &[u8]) -> (String, Vec<String>) {
    let (cursor, mut keys): (String, Vec<String>) =
        redis::from_redis_value(&decode(raw)).expect("SCAN reply");
    keys.sort();
    (cursor, keys)
}

/// A SCAN that completes in one call on both servers (fewer keys than
/// COUNT): same cursor (0) and the same keys in any order.
fn check_scan(pair: &mut Differential, args: &[&str]) -> Vec<String> {
    let ours = scan_reply(&pair.larder.command(args));
    let theirs = scan_reply(&pair.redis.command(args));
    assert_eq!(ours, theirs, "SCAN replies differ for {args:?}");
    ours.1
}

#[test]
fn del_unlink_exists_touch_type() {
    let mut pair = Differential::start();
    pair.script(
        "
        SET a 1
        SET b 2
        EXISTS a a b missing
        TOUCH a b missing a
        TYPE a
        TYPE missing
        DEL a missing a
        UNLINK b b missing
        EXISTS a b
        TOUCH a
        DEL
        UNLINK
        EXISTS
        TOUCH
        TYPE
        TYPE a b
        ",
    );
}

#[test]
fn expire_family_matches_redis() {
    let mut pair = Differential::start();
    pair.script(
        "
        EXPIRE missing 100
        PEXPIRE missing 100
        EXPIREAT missing 4102444800
        PEXPIREAT missing 4102444800000
        EXPIRE missing 100 GT
        SET s v
        EXPIRE s 100
        TTL s
        PERSIST s
        TTL s
        PERSIST s
        PERSIST missing
        TTL missing
        PTTL missing
        PTTL s
        EXPIRETIME s
        PEXPIRETIME s
        EXPIRETIME missing
        PEXPIRETIME missing
        EXPIREAT s 4102444800
        EXPIRETIME s
        PEXPIRETIME s
        PEXPIREAT s 4102444800123
        PEXPIRETIME s
        EXPIRETIME s
        PEXPIREAT s 4102444800500
        EXPIRETIME s
        PEXPIRE s 100000
        TTL s
        # NX XX GT LT; a key without TTL has an infinite one for GT/LT
        SET n v
        EXPIRE n 100 XX
        EXPIRE n 100 GT
        TTL n
        EXPIRE n 100 LT
        TTL n
        EXPIRE n 200 NX
        EXPIRE n 200 LT
        EXPIRE n 50 LT
        TTL n
        EXPIRE n 20 GT
        EXPIRE n 300 gt
        TTL n
        EXPIRE n 400 xx
        TTL n
        EXPIRE n 10 nx nx
        PERSIST n
        EXPIRE n 10 NX
        TTL n
        PERSIST n
        EXPIRE n 10 XX GT
        EXPIRE n 10 XX LT
        TTL n
        # incompatible options, unknown options, bad numbers, in Redis's order
        EXPIRE n 10 NX XX
        EXPIRE n 10 NX GT
        EXPIRE n 10 LT NX
        EXPIRE n 10 GT LT
        EXPIRE n 10 LT GT
        EXPIRE n 10 foo
        EXPIRE missing 10 foo
        EXPIRE n 10 NX foo
        EXPIRE n abc
        EXPIRE n abc foo
        EXPIRE n abc NX XX
        EXPIRE n 1.5
        EXPIRE n 01
        # overflow
        EXPIRE n 9223372036854775807
        EXPIRE n 9223372036854775
        EXPIRE n -9223372036854775808
        EXPIRE n -9223372036854776
        PEXPIRE n 9223372036854775807
        EXPIREAT n 9223372036854775808
        EXPIREAT n 9223372036854776
        EXPIREAT n -9223372036854776
        PEXPIREAT n 9223372036854775807
        PEXPIRETIME n
        EXPIRETIME n
        PERSIST n
        EXPIREAT n 9223372036854775
        EXPIRETIME n
        PEXPIRETIME n
        PERSIST n
        # a time in the past deletes the key and answers 1
        PEXPIRE n -9223372036854775808
        EXISTS n
        SET n v
        EXPIRE n -1
        EXISTS n
        SET n v
        EXPIRE n 0
        EXISTS n
        SET n v
        EXPIREAT n 1
        EXISTS n
        SET n v
        PEXPIREAT n 0
        EXISTS n
        SET n v
        EXPIREAT n -9223372036854775
        EXISTS n
        SET n v
        EXPIRE n 100
        EXPIRE n -5 GT
        EXPIRE n -5 NX
        TTL n
        EXPIRE n -5 LT
        EXISTS n
        SET n v
        EXPIRE n -5 LT
        EXISTS n
        SET n v
        EXPIRE n -5 GT
        EXISTS n
        # arity
        EXPIRE n
        PEXPIRE n
        EXPIREAT n
        PEXPIREAT n
        TTL
        TTL a b
        PTTL a b
        EXPIRETIME
        PEXPIRETIME a b
        PERSIST
        PERSIST a b
        ",
    );
}

#[test]
fn rename_and_renamenx_match_redis() {
    let mut pair = Differential::start();
    pair.script(
        "
        SET r1 v1
        RENAME r1 r2
        GET r1
        GET r2
        RENAME missing r3
        RENAME missing missing
        RENAMENX missing x
        RENAMENX missing missing
        RENAME r2 r2
        RENAMENX r2 r2
        GET r2
        SET r3 v3
        RENAMENX r2 r3
        GET r3
        RENAME r2 r3
        GET r3
        EXISTS r2
        EXPIRE r3 100
        RENAME r3 r4
        TTL r4
        TTL r3
        RENAMENX r4 r5
        TTL r5
        EXISTS r4
        SET r6 x
        EXPIRE r6 50
        RENAME r5 r6
        TTL r6
        GET r6
        SET r7 y
        RENAME r7 r6
        TTL r6
        GET r6
        EXPIRE r6 100
        RENAME r6 r6
        TTL r6
        RENAME r6
        RENAME r6 a b
        RENAMENX r6
        ",
    );
}

#[test]
fn copy_matches_redis() {
    let mut pair = Differential::start();
    pair.script(
        "
        SET c1 v
        EXPIRE c1 100
        COPY c1 c2
        GET c2
        TTL c2
        COPY c1 c2
        SET c1 w
        COPY c1 c2 REPLACE
        GET c2
        TTL c2
        COPY c1 c2 replace
        COPY missing c3
        EXISTS c3
        COPY missing c3 REPLACE
        COPY c1 c1
        COPY missing missing
        COPY c1 c1 DB 0
        COPY c1 c1 REPLACE
        COPY c1 c1 DB 1
        SELECT 1
        GET c1
        TTL c1
        SELECT 0
        COPY c1 c1 DB 1
        SET c1 newer
        COPY c1 c1 DB 1 REPLACE
        SELECT 1
        GET c1
        COPY c1 c1 DB 1
        COPY c1 c1 DB 0
        COPY c1 c9 DB 0
        SELECT 0
        GET c9
        COPY c1 c2 DB
        COPY c1 c2 foo
        COPY c1 c2 REPLACE foo
        COPY c1 c2 DB x
        COPY c1 c2 DB 16
        COPY c1 c2 DB -1
        COPY c1 c2 DB 99999999999
        COPY c1 c2 DB 1.5
        COPY c1 c2 DB 16 foo
        COPY c1 c2 foo DB 16
        COPY c1 c4 REPLACE DB 2 DB 3
        SELECT 3
        GET c4
        SELECT 2
        EXISTS c4
        SELECT 0
        COPY c1
        COPY
        ",
    );
}

#[test]
fn move_matches_redis() {
    let mut pair = Differential::start();
    pair.script(
        "
        SET m1 v
        EXPIRE m1 100
        MOVE m1 1
        EXISTS m1
        SELECT 1
        TTL m1
        GET m1
        SELECT 0
        MOVE m1 1
        SET m1 other
        MOVE m1 1
        GET m1
        SELECT 1
        GET m1
        MOVE m1 0
        SELECT 0
        MOVE m1 0
        MOVE missing 0
        MOVE m1 16
        MOVE m1 -1
        MOVE m1 abc
        MOVE m1 01
        MOVE m1 99999999999
        MOVE missing 16
        MOVE m1
        MOVE m1 1 2
        SET m2 x
        MOVE m2 15
        SELECT 15
        GET m2
        TTL m2
        ",
    );
}

#[test]
fn swapdb_flushdb_flushall_match_redis() {
    let mut pair = Differential::start();
    pair.script(
        "
        FLUSHALL
        SET w0 zero
        EXPIRE w0 100
        SELECT 1
        SET w1 one
        SELECT 0
        SWAPDB 0 1
        GET w0
        GET w1
        DBSIZE
        SELECT 1
        GET w0
        TTL w0
        SELECT 0
        SWAPDB 1 0
        GET w0
        SWAPDB 0 0
        GET w0
        SWAPDB 0 16
        SWAPDB 16 0
        SWAPDB -1 0
        SWAPDB 0 -1
        SWAPDB x 0
        SWAPDB 0 x
        SWAPDB x y
        SWAPDB 99999999999 0
        SWAPDB 0 99999999999
        SWAPDB -99999999999 x
        SWAPDB 1.0 0
        SWAPDB 0
        SWAPDB 0 1 2
        FLUSHDB foo
        FLUSHDB async sync
        FLUSHDB ASYNC
        DBSIZE
        SELECT 1
        DBSIZE
        SELECT 0
        SET f v
        FLUSHDB sync
        DBSIZE
        SELECT 1
        DBSIZE
        FLUSHALL foo
        FLUSHALL async
        DBSIZE
        SELECT 0
        SET f v
        FLUSHALL SYNC
        DBSIZE
        FLUSHALL
        FLUSHDB
        ",
    );
}

#[test]
fn keys_scan_randomkey_match_redis() {
    let mut pair = Differential::start();
    // Empty database first.
    pair.script(
        "
        KEYS *
        SCAN 0
        RANDOMKEY
        RANDOMKEY extra
        KEYS
        KEYS a b
        SCAN
        ",
    );
    for key in [
        "user:1", "user:2", "user:10", "order:1", "Ux", "a*b", "h?llo",
    ] {
        pair.check(&["SET", key, "v"]);
    }
    pair.check(&["EXPIRE", "order:1", "100"]);
    assert_eq!(check_unordered(&mut pair, &["KEYS", "*"]).len(), 7);
    assert_eq!(
        check_unordered(&mut pair, &["KEYS", "user:*"]),
        ["user:1", "user:10", "user:2"]
    );
    for pattern in [
        "user:?", "u*", "U*", "*:1", "[uo]*", "[^u]*", "a\\*b", "h\\?llo", "nomatch", "",
    ] {
        check_unordered(&mut pair, &["KEYS", pattern]);
    }
    // Fewer keys than COUNT: one call returns everything and cursor 0.
    assert_eq!(check_scan(&mut pair, &["SCAN", "0"]).len(), 7);
    check_scan(&mut pair, &["SCAN", "0", "MATCH", "user:*"]);
    check_scan(&mut pair, &["SCAN", "0", "match", "*"]);
    check_scan(&mut pair, &["SCAN", "0", "COUNT", "100", "MATCH", "*1*"]);
    check_scan(&mut pair, &["SCAN", "0", "COUNT", "10", "COUNT", "50"]);
    assert_eq!(
        check_scan(&mut pair, &["SCAN", "0", "TYPE", "string"]).len(),
        7
    );
    check_scan(&mut pair, &["SCAN", "0", "TYPE", "STRING", "MATCH", "U*"]);
    assert!(check_scan(&mut pair, &["SCAN", "0", "TYPE", "hash"]).is_empty());
    assert!(check_scan(&mut pair, &["SCAN", "0", "TYPE", "nonsense"]).is_empty());
    check_scan(&mut pair, &["SCAN", "", "COUNT", "1000"]);
    // Cursor and option errors.
    for args in [
        &["SCAN", "abc"][..],
        &["SCAN", " 1"],
        &["SCAN", "1 "],
        &["SCAN", "+"],
        &["SCAN", "-"],
        &["SCAN", "0x10"],
        &["SCAN", "18446744073709551616"],
        &["SCAN", "0", "COUNT", "0"],
        &["SCAN", "0", "COUNT", "-1"],
        &["SCAN", "0", "COUNT", "x"],
        &["SCAN", "0", "COUNT", "99999999999999999999"],
        &["SCAN", "0", "COUNT"],
        &["SCAN", "0", "MATCH"],
        &["SCAN", "0", "TYPE"],
        &["SCAN", "0", "foo", "bar"],
        &["SCAN", "0", "MATCH", "*", "foo"],
        &["SCAN", "abc", "COUNT", "0"],
        &["SCAN", "0", "COUNT", "0", "foo"],
    ] {
        pair.check(args);
    }
    // One key: RANDOMKEY is deterministic.
    pair.script(
        "
        FLUSHDB
        SET only v
        RANDOMKEY
        DEL only
        RANDOMKEY
        ",
    );
}

#[test]
fn whole_keyspace_commands_inside_multi_exec() {
    let mut pair = Differential::start();
    pair.script(
        "
        SET k1 v
        MULTI
        KEYS *
        SCAN 0
        SCAN 0 MATCH k* COUNT 5 TYPE string
        RANDOMKEY
        DBSIZE
        RENAME k1 k2
        COPY k2 k3 DB 1
        MOVE k2 2
        EXPIRE k3 100
        TTL k3
        EXISTS k1 k2 k3
        SWAPDB 0 1
        DBSIZE
        FLUSHDB
        DBSIZE
        FLUSHALL
        EXEC
        SELECT 2
        DBSIZE
        SELECT 1
        DBSIZE
        ",
    );
    // Many keys in the transaction, compared without order.
    for i in 0..50 {
        pair.check(&["SET", &format!("key:{i}"), "v"]);
    }
    pair.check(&["MULTI"]);
    pair.check(&["KEYS", "key:*"]);
    let ours = pair.larder.command(&["EXEC"]);
    let theirs = pair.redis.command(&["EXEC"]);
    let unwrap = |raw: &[u8]| {
        let (mut keys,): (Vec<String>,) = redis::from_redis_value(&decode(raw)).expect("EXEC");
        keys.sort();
        keys
    };
    assert_eq!(unwrap(&ours), unwrap(&theirs));
    assert_eq!(unwrap(&ours).len(), 50);
}

#[test]
fn ttl_decreases_and_keys_expire() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let set: i64 = redis::cmd("PEXPIRE")
        .arg("k")
        .arg(3000)
        .query(&mut con)
        .unwrap();
    assert_eq!(set, 1);
    let first: i64 = redis::cmd("PTTL").arg("k").query(&mut con).unwrap();
    assert!((2500..=3000).contains(&first), "{first}");
    let secs: i64 = redis::cmd("TTL").arg("k").query(&mut con).unwrap();
    assert_eq!(secs, 3);
    std::thread::sleep(Duration::from_millis(60));
    let second: i64 = redis::cmd("PTTL").arg("k").query(&mut con).unwrap();
    assert!(
        second < first && second >= first - 1000,
        "{first} then {second}"
    );
    let at: i64 = redis::cmd("PEXPIRETIME").arg("k").query(&mut con).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (at - now_ms - second).abs() < 1000,
        "{at} {now_ms} {second}"
    );

    // A read after the TTL sees nothing.
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("PEXPIRE")
        .arg("short")
        .arg(40)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("kept")
        .arg("v")
        .query(&mut con)
        .unwrap();
    std::thread::sleep(Duration::from_millis(80));
    let exists: i64 = redis::cmd("EXISTS").arg("short").query(&mut con).unwrap();
    assert_eq!(exists, 0);
    let ttl: i64 = redis::cmd("TTL").arg("short").query(&mut con).unwrap();
    assert_eq!(ttl, -2);
    let ttl: i64 = redis::cmd("TTL").arg("kept").query(&mut con).unwrap();
    assert_eq!(ttl, -1);

    // Keys nobody reads are reclaimed by active expiry (DBSIZE counts them
    // until then, as in Redis).
    for i in 0..20 {
        let key = format!("volatile:{i}");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("v")
            .query(&mut con)
            .unwrap();
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(&key)
            .arg(30)
            .query(&mut con)
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        // "k" (3 s TTL) and "kept" remain.
        if size == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "DBSIZE stuck at {size}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    keys.sort();
    assert_eq!(keys, ["k", "kept"]);
}

#[test]
fn expired_keys_are_invisible_to_keyspace_commands() {
    let server = TestServer::start();
    let mut con = server.client();
    for key in ["gone1", "gone2", "live"] {
        let _: () = redis::cmd("SET").arg(key).arg("v").query(&mut con).unwrap();
    }
    for key in ["gone1", "gone2"] {
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(key)
            .arg(20)
            .query(&mut con)
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(keys, ["live"]);
    let (cursor, keys): (String, Vec<String>) = redis::cmd("SCAN").arg(0).query(&mut con).unwrap();
    assert_eq!((cursor.as_str(), keys), ("0", vec!["live".to_string()]));
    for _ in 0..20 {
        let key: String = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
        assert_eq!(key, "live");
    }
    let renamed: redis::RedisResult<()> =
        redis::cmd("RENAME").arg("gone1").arg("x").query(&mut con);
    let error = renamed.unwrap_err().to_string();
    assert!(error.contains("no such key"), "{error}");
    let moved: i64 = redis::cmd("MOVE")
        .arg("gone2")
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert_eq!(moved, 0);
    let copied: i64 = redis::cmd("COPY")
        .arg("gone2")
        .arg("y")
        .query(&mut con)
        .unwrap();
    assert_eq!(copied, 0);
}

#[test]
fn randomkey_returns_every_key_eventually() {
    let server = TestServer::start();
    let mut con = server.client();
    let names: Vec<String> = (0..5).map(|i| format!("rk{i}")).collect();
    for name in &names {
        let _: () = redis::cmd("SET")
            .arg(name)
            .arg("v")
            .query(&mut con)
            .unwrap();
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..300 {
        let key: String = redis::cmd("RANDOMKEY").query(&mut con).unwrap();
        *seen.entry(key).or_default() += 1;
    }
    let mut found: Vec<&String> = seen.keys().collect();
    found.sort();
    assert_eq!(found, names.iter().collect::<Vec<_>>());
}

#[test]
fn swapdb_is_visible_to_other_connections() {
    let server = TestServer::start();
    let mut a = server.client();
    let mut b = server.client();
    let _: () = redis::cmd("SELECT").arg(1).query(&mut a).unwrap();
    let _: () = redis::cmd("SET")
        .arg("x")
        .arg("from-db1")
        .query(&mut a)
        .unwrap();
    let _: i64 = redis::cmd("EXPIRE")
        .arg("x")
        .arg(100)
        .query(&mut a)
        .unwrap();
    let before: Option<String> = redis::cmd("GET").arg("x").query(&mut b).unwrap();
    assert_eq!(before, None);
    // b WATCHes x in db 0: the swap changes what x is, so EXEC must fail.
    let _: () = redis::cmd("WATCH").arg("x").query(&mut b).unwrap();
    let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut a).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut b).unwrap();
    let _: () = redis::cmd("GET").arg("x").query(&mut b).unwrap();
    let aborted: Option<Vec<String>> = redis::cmd("EXEC").query(&mut b).unwrap();
    assert_eq!(aborted, None);
    let after: String = redis::cmd("GET").arg("x").query(&mut b).unwrap();
    assert_eq!(after, "from-db1");
    let ttl: i64 = redis::cmd("TTL").arg("x").query(&mut b).unwrap();
    assert_eq!(ttl, 100);
    let gone: Option<String> = redis::cmd("GET").arg("x").query(&mut a).unwrap();
    assert_eq!(gone, None);
    let size: i64 = redis::cmd("DBSIZE").query(&mut a).unwrap();
    assert_eq!(size, 0);
}

#[test]
fn flush_and_rename_abort_watchers() {
    let server = TestServer::start();
    let mut a = server.client();
    let mut b = server.client();
    let _: () = redis::cmd("SET").arg("w").arg("v").query(&mut a).unwrap();
    for change in [
        &["FLUSHDB"][..],
        &["FLUSHALL"],
        &["RENAME", "w", "w2"],
        &["EXPIRE", "w", "100"],
        &["MOVE", "w", "3"],
    ] {
        let _: () = redis::cmd("SET").arg("w").arg("v").query(&mut a).unwrap();
        let _: () = redis::cmd("WATCH").arg("w").query(&mut b).unwrap();
        let mut cmd = redis::cmd(change[0]);
        for arg in &change[1..] {
            cmd.arg(*arg);
        }
        let _: redis::Value = cmd.query(&mut a).unwrap();
        let _: () = redis::cmd("MULTI").query(&mut b).unwrap();
        let _: () = redis::cmd("GET").arg("w").query(&mut b).unwrap();
        let result: Option<Vec<Option<String>>> = redis::cmd("EXEC").query(&mut b).unwrap();
        assert_eq!(result, None, "{change:?} did not abort the transaction");
    }
}

#[test]
fn move_and_copy_across_databases() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET")
        .arg("doc")
        .arg("body")
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("PEXPIRE")
        .arg("doc")
        .arg(50_000)
        .query(&mut con)
        .unwrap();
    let copied: i64 = redis::cmd("COPY")
        .arg("doc")
        .arg("doc-copy")
        .arg("DB")
        .arg(7)
        .query(&mut con)
        .unwrap();
    assert_eq!(copied, 1);
    let moved: i64 = redis::cmd("MOVE")
        .arg("doc")
        .arg(3)
        .query(&mut con)
        .unwrap();
    assert_eq!(moved, 1);
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 0);
    for (db, key) in [(3, "doc"), (7, "doc-copy")] {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
        let value: String = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        assert_eq!(value, "body");
        let pttl: i64 = redis::cmd("PTTL").arg(key).query(&mut con).unwrap();
        assert!((40_000..=50_000).contains(&pttl), "{pttl}");
    }
    // The copy is independent of the original.
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    let _: () = redis::cmd("SET")
        .arg("doc")
        .arg("changed")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SELECT").arg(7).query(&mut con).unwrap();
    let value: String = redis::cmd("GET").arg("doc-copy").query(&mut con).unwrap();
    assert_eq!(value, "body");
}

/// Iterates a whole SCAN; returns every key it produced (with repeats).
fn full_scan(con: &mut redis::Connection, extra: &[&str]) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut all = Vec::new();
    let mut calls = 0;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(&cursor);
        for arg in extra {
            cmd.arg(*arg);
        }
        let (next, keys): (String, Vec<String>) = cmd.query(con).unwrap();
        calls += 1;
        all.extend(keys);
        if next == "0" {
            return (all, calls);
        }
        cursor = next;
    }
}

#[test]
fn scan_returns_every_key_present_for_the_whole_scan() {
    let server = TestServer::start();
    let mut con = server.client();
    let originals: Vec<String> = (0..10_000).map(|i| format!("orig:{i}")).collect();
    let mut pipe = redis::pipe();
    for key in &originals {
        pipe.cmd("SET").arg(key).arg("v").ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();

    // Another client keeps adding and deleting other keys meanwhile, so the
    // shards' maps grow and shrink under the scan.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let churn = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        let mut other = server.client();
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut pipe = redis::pipe();
                for i in 0..200 {
                    pipe.cmd("SET")
                        .arg(format!("churn:{round}:{i}"))
                        .arg("x")
                        .ignore();
                }
                if round > 0 {
                    for i in 0..200 {
                        pipe.cmd("DEL")
                            .arg(format!("churn:{}:{i}", round - 1))
                            .ignore();
                    }
                }
                let _: () = pipe.query(&mut other).unwrap();
                round += 1;
                rounds.store(round, Ordering::Relaxed);
            }
        })
    };
    while rounds.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }

    let before = rounds.load(Ordering::Relaxed);
    let (keys, calls) = full_scan(&mut con, &["COUNT", "10"]);
    let during = rounds.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    eprintln!("{calls} SCAN calls, {during} churn rounds during the scan");
    assert!(
        during > 0,
        "the other client made no change during the scan"
    );

    let mut seen: HashMap<&str, usize> = HashMap::new();
    for key in &keys {
        *seen.entry(key.as_str()).or_default() += 1;
    }
    let missing: Vec<&String> = originals
        .iter()
        .filter(|k| !seen.contains_key(k.as_str()))
        .collect();
    assert!(missing.is_empty(), "{} keys never returned", missing.len());
    assert!(seen.values().all(|&n| n == 1), "a key was returned twice");
    assert!(calls > 1, "COUNT 10 should take many calls, took {calls}");

    // MATCH filters what was visited; the union is still exact.
    let (matched, _) = full_scan(&mut con, &["MATCH", "orig:1*", "COUNT", "50"]);
    let expected: HashSet<&str> = originals
        .iter()
        .map(String::as_str)
        .filter(|k| k.starts_with("orig:1"))
        .collect();
    assert_eq!(
        matched.iter().map(String::as_str).collect::<HashSet<_>>(),
        expected
    );
    assert_eq!(matched.len(), expected.len());

    // TYPE string returns every string key; another type none.
    let (strings, _) = full_scan(&mut con, &["TYPE", "string", "MATCH", "orig:*"]);
    assert_eq!(strings.len(), originals.len());
    let (hashes, _) = full_scan(&mut con, &["TYPE", "hash", "COUNT", "1000"]);
    assert!(hashes.is_empty());

    // A cursor past the last shard ends the iteration.
    let (cursor, keys): (String, Vec<String>) = redis::cmd("SCAN")
        .arg("18446744073709551615")
        .query(&mut con)
        .unwrap();
    assert_eq!((cursor.as_str(), keys.len()), ("0", 0));

    // A large COUNT takes everything in one call.
    let (cursor, keys): (String, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(1_000_000)
        .arg("MATCH")
        .arg("orig:*")
        .query(&mut con)
        .unwrap();
    assert_eq!((cursor.as_str(), keys.len()), ("0", originals.len()));

    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 0);
    let (keys, _) = full_scan(&mut con, &[]);
    assert!(keys.is_empty());
}

#[test]
fn flushall_clears_every_database() {
    let server = TestServer::start();
    let mut con = server.client();
    for db in 0..16 {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
        for i in 0..10 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg("v")
                .query(&mut con)
                .unwrap();
        }
    }
    let _: () = redis::cmd("SELECT").arg(5).query(&mut con).unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 0);
    let _: () = redis::cmd("SELECT").arg(6).query(&mut con).unwrap();
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 10);
    let _: () = redis::cmd("FLUSHALL").arg("ASYNC").query(&mut con).unwrap();
    for db in 0..16 {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
        let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(size, 0, "db {db}");
    }
}

#[test]
fn resp3_replies_match_redis() {
    let mut pair = Differential::start();
    // HELLO's reply names each server: switch both, compare what follows.
    pair.larder.command(&["HELLO", "3"]);
    pair.redis.command(&["HELLO", "3"]);
    pair.script(
        "
        RANDOMKEY
        SET k v
        TYPE k
        TYPE nope
        SCAN 0
        KEYS *
        RANDOMKEY
        TTL k
        ",
    );
}
