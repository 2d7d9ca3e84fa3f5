//! Hash commands: differential tests against a real redis-server (7.0) for
//! everything deterministic, and Larder-only tests for Redis 7.4's field
//! expiry (HEXPIRE and friends do not exist in 7.0): some through a real
//! server and the wall clock, most in-process with a manual clock so that
//! time is exact. Property tests compare random command sequences with Redis
//! and with a model of field expiry.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Differential, TestServer};
use larder::commands::{execute, Session};
use larder::protocol::ReplyBuf;
use larder::shared::{ClientHandle, Shared};
use larder::{Clock, Config};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

// ---------------------------------------------------------------- helpers

fn decode(raw: &[u8]) -> redis::Value {
    redis::parse_redis_value(raw).expect("well-formed reply")
}

fn strings(raw: &[u8]) -> Vec<String> {
    redis::from_redis_value(&decode(raw)).expect("array of strings")
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

/// An HGETALL-style flat reply as sorted (field, value) pairs.
fn sorted_pairs(raw: &[u8]) -> Vec<(String, String)> {
    let flat = strings(raw);
    let mut pairs: Vec<(String, String)> = flat
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    pairs.sort();
    pairs
}

fn check_unordered(pair: &mut Differential, args: &[&str]) {
    let ours = pair.larder.command(args);
    let theirs = pair.redis.command(args);
    assert_eq!(
        sorted(strings(&ours)),
        sorted(strings(&theirs)),
        "replies differ (ignoring order) for {args:?}"
    );
}

/// Every field (and value) of a full HSCAN iteration, and the number of calls.
fn full_hscan(client: &mut common::RawClient, key: &str, count: &str) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut items = Vec::new();
    let mut calls = 0;
    loop {
        let raw = client.command(&["HSCAN", key, &cursor, "COUNT", count]);
        let (next, batch): (String, Vec<String>) =
            redis::from_redis_value(&decode(&raw)).expect("HSCAN reply");
        items.extend(batch);
        calls += 1;
        cursor = next;
        if cursor == "0" {
            return (items, calls);
        }
        assert!(calls < 100_000, "HSCAN does not terminate");
    }
}

/// Larder in-process with a manual clock: commands run through the real
/// dispatcher, time moves only when told.
struct Local {
    shared: Shared,
    session: Session,
    clock: Arc<AtomicU64>,
}

const START_MS: u64 = 1_700_000_000_000;

impl Local {
    fn new() -> Self {
        let (clock, handle) = Clock::manual(START_MS);
        Local {
            shared: Shared::with_clock(Config::default(), clock),
            session: Session::new(Arc::new(ClientHandle::new(1, None, None))),
            clock: handle,
        }
    }

    /// A second client of the same server.
    fn other_session(&self, id: u64) -> Session {
        Session::new(Arc::new(ClientHandle::new(id, None, None)))
    }

    fn run_as(&self, session: &mut Session, args: &[&str]) -> Vec<u8> {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut out = ReplyBuf::new();
        execute(&self.shared, session, &mut out, &argv);
        out.buffer().to_vec()
    }

    fn raw(&mut self, args: &[&str]) -> Vec<u8> {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut out = ReplyBuf::new();
        execute(&self.shared, &mut self.session, &mut out, &argv);
        out.buffer().to_vec()
    }

    /// The reply as text, for readable assertions.
    fn text(&mut self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.raw(args)).into_owned()
    }

    fn int(&mut self, args: &[&str]) -> i64 {
        redis::from_redis_value(&decode(&self.raw(args))).expect("integer reply")
    }

    fn ints(&mut self, args: &[&str]) -> Vec<i64> {
        redis::from_redis_value(&decode(&self.raw(args))).expect("array of integers")
    }

    fn strs(&mut self, args: &[&str]) -> Vec<String> {
        strings(&self.raw(args))
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::Relaxed);
    }

    /// Runs active expiry until nothing due is left.
    fn expire_all(&self) -> usize {
        let mut total = 0;
        loop {
            let reclaimed = self.shared.store.expire_cycle();
            total += reclaimed;
            if reclaimed == 0 {
                return total;
            }
        }
    }

    fn dbsize(&self) -> usize {
        self.shared.store.dbsize(0).expect("db 0")
    }
}

fn ints_reply(values: &[i64]) -> String {
    let mut text = format!("*{}\r\n", values.len());
    for v in values {
        text.push_str(&format!(":{v}\r\n"));
    }
    text
}

// ---------------------------------------------------------------- differential

#[test]
fn basic_commands_match_redis() {
    let mut pair = Differential::start();
    pair.script(
        "
        HSET h a 1 b 2 c 3
        HSET h a 10 d 4
        HGET h a
        HGET h missing
        HGET nokey a
        HMGET h a missing c
        HMGET nokey a b
        HGETALL h
        HKEYS h
        HVALS h
        HLEN h
        HLEN nokey
        HSTRLEN h a
        HSTRLEN h missing
        HSTRLEN nokey a
        HEXISTS h a
        HEXISTS h missing
        HEXISTS nokey a
        HDEL h a missing
        HDEL h a
        HDEL nokey a
        HGETALL h
        HSET h b 20
        HGETALL h
        HSETNX h b x
        HSETNX h e 5
        HSETNX newh f v
        HGETALL newh
        HMSET h x 1 y 2
        HMSET h x 3
        HGETALL h
        HGETALL nokey
        HKEYS nokey
        HVALS nokey
        TYPE h
        HSET dup f 1 f 2 f 3
        HGETALL dup
        # deleting the last field removes the key
        HSET one f v
        HDEL one f
        EXISTS one
        HSET two f v g w
        HDEL two f g nothere
        EXISTS two
        HGETALL two
        ",
    );
    // Empty and binary fields and values.
    pair.check(&["HSET", "bin", "", ""]);
    pair.check(&["HSET", "bin", "nul\0field", "val\r\nue"]);
    pair.check(&["HGET", "bin", ""]);
    pair.check(&["HGETALL", "bin"]);
    pair.check(&["HSTRLEN", "bin", "nul\0field"]);
    pair.check(&["HEXISTS", "bin", ""]);
}

#[test]
fn wrong_type_and_arity_errors_match_redis() {
    let mut pair = Differential::start();
    pair.script(
        "
        SET s v
        HSET s a 1
        HSETNX s a 1
        HMSET s a 1
        HGET s a
        HMGET s a b
        HGETALL s
        HKEYS s
        HVALS s
        HDEL s a
        HEXISTS s a
        HLEN s
        HSTRLEN s a
        HINCRBY s a 1
        HINCRBYFLOAT s a 1
        HRANDFIELD s
        HRANDFIELD s 2
        HRANDFIELD s -2 WITHVALUES
        HSCAN s 0
        # argument errors come before the type check where Redis does so
        HINCRBY s a x
        HINCRBYFLOAT s a x
        HRANDFIELD s x
        HRANDFIELD s 1 bogus
        HSCAN s x
        HSCAN s 0 COUNT 0
        GET s
        HSET
        HSET h
        HSET h a
        HSET h a b c
        HMSET h a
        HMSET h a b c
        HSETNX h a
        HSETNX h a b c
        HGET h
        HGET h a b
        HMGET h
        HGETALL
        HGETALL h x
        HDEL h
        HEXISTS h
        HLEN
        HLEN h x
        HSTRLEN h
        HKEYS
        HVALS
        HINCRBY h a
        HINCRBYFLOAT h a
        HRANDFIELD
        HSCAN h
        EXISTS h
        ",
    );
}

#[test]
fn hincrby_and_hincrbyfloat_match_redis() {
    let mut pair = Differential::start();
    pair.script(
        "
        HINCRBY h n 5
        HINCRBY h n -10
        HINCRBY h n 9223372036854775807
        HINCRBY h n 10
        HINCRBY h m -9223372036854775808
        HINCRBY h m -1
        HINCRBY h m 0
        HINCRBY h n 1.5
        HINCRBY h n 9223372036854775808
        HINCRBY h n abc
        HSET h s hello
        HINCRBY h s 1
        HSET h lead 01
        HINCRBY h lead 1
        HSET h plus +1
        HINCRBY h plus 1
        HGET h n
        HINCRBYFLOAT h f 10.5
        HINCRBYFLOAT h f 0.25
        HINCRBYFLOAT h f -10.75
        HINCRBYFLOAT h g 5.0e3
        HINCRBYFLOAT h g 1.5
        HINCRBYFLOAT h big 1e20
        HINCRBYFLOAT h tiny 0.1
        HINCRBYFLOAT h neg -0.5
        HINCRBYFLOAT h neg 0.5
        HSET h small 7
        HINCRBYFLOAT h small 1.5
        HINCRBYFLOAT h f abc
        HINCRBYFLOAT h f nan
        HINCRBYFLOAT h f inf
        HINCRBYFLOAT h f -inf
        HINCRBYFLOAT h s 1
        HINCRBYFLOAT newkey f 2.5
        HGETALL h
        HGETALL newkey
        ",
    );
    pair.check(&["HINCRBYFLOAT", "h", "f", " 1"]);
    pair.check(&["HSET", "h", "sp", " 1"]);
    pair.check(&["HINCRBYFLOAT", "h", "sp", "1"]);
    pair.check(&["HINCRBY", "h", "sp", "1"]);
}

#[test]
fn hrandfield_matches_redis_where_deterministic() {
    let mut pair = Differential::start();
    pair.script(
        "
        HSET h a 1 b 2 c 3
        HRANDFIELD h 0
        HRANDFIELD h 0 WITHVALUES
        HRANDFIELD h 3
        HRANDFIELD h 10
        HRANDFIELD h 10 WITHVALUES
        HRANDFIELD h 4611686018427387903 WITHVALUES
        HRANDFIELD h 4611686018427387904 WITHVALUES
        HRANDFIELD h -4611686018427387904 WITHVALUES
        HRANDFIELD h -9223372036854775808
        HRANDFIELD h 9223372036854775807
        HRANDFIELD h x
        HRANDFIELD h 1.5
        HRANDFIELD h 1 WITHVALUES extra
        HRANDFIELD h 1 NOTWITHVALUES
        HRANDFIELD h 3 withvalues
        HRANDFIELD nokey
        HRANDFIELD nokey 3
        HRANDFIELD nokey -3 WITHVALUES
        HRANDFIELD nokey 0
        HSET one f v
        HRANDFIELD one
        HRANDFIELD one 1
        HRANDFIELD one -5
        HRANDFIELD one -3 WITHVALUES
        HRANDFIELD one 5 WITHVALUES
        ",
    );
}

#[test]
fn hscan_matches_redis_for_small_hashes() {
    let mut pair = Differential::start();
    pair.script(
        "
        HSET h f1 v1 f2 v2 g1 w1
        HSCAN h 0
        HSCAN h 0 COUNT 1
        HSCAN h 0 MATCH f*
        HSCAN h 0 MATCH f* COUNT 100
        HSCAN h 0 match *1 count 2
        HSCAN h 0 MATCH nomatch
        HSCAN h 0 MATCH *
        HSCAN h 0 COUNT 0
        HSCAN h 0 COUNT -1
        HSCAN h 0 COUNT x
        HSCAN h 0 MATCH
        HSCAN h 0 COUNT
        HSCAN h 0 TYPE string
        HSCAN h 0 bogus
        HSCAN h abc
        HSCAN h -1
        HSCAN h 18446744073709551616
        HSCAN h 7
        HSCAN nokey 0
        HSCAN nokey 0 COUNT x
        HSCAN nokey 0 bogus
        HSCAN nokey x
        ",
    );
}

#[test]
fn resp3_shapes_match_redis() {
    let mut pair = Differential::start();
    // HELLO's reply names each server: switch both, compare what follows.
    pair.larder.command(&["HELLO", "3"]);
    pair.redis.command(&["HELLO", "3"]);
    pair.script(
        "
        HSET h a 1 b 2
        HSET one f v
        HGETALL h
        HGETALL nokey
        HKEYS h
        HVALS h
        HGET h a
        HGET h zz
        HGET nokey a
        HMGET h a zz
        HMGET nokey a
        HRANDFIELD h 5 WITHVALUES
        HRANDFIELD one -3 WITHVALUES
        HRANDFIELD one -2
        HRANDFIELD nokey
        HRANDFIELD nokey 2 WITHVALUES
        HRANDFIELD h 0 WITHVALUES
        HSCAN h 0
        HSCAN nokey 0
        HINCRBYFLOAT h f 1.5
        HINCRBY h n 3
        HLEN h
        HEXISTS h a
        HSETNX h a 1
        HDEL h a
        SET s v
        HGETALL s
        ",
    );
}

#[test]
fn listpack_limit_is_redis_default() {
    // Redis 7.0's hash-max-listpack-entries is 512: a hash of 512 fields is
    // still a listpack, one more makes it a hashtable.
    let mut pair = Differential::start();
    let mut args: Vec<String> = vec!["HSET".into(), "h".into()];
    for i in 0..512 {
        args.push(format!("f{i}"));
        args.push("v".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pair.check(&args);
    pair.check(&["OBJECT", "ENCODING", "h"]);
    pair.check(&["HSET", "h", "one-more", "v"]);
    pair.check(&["OBJECT", "ENCODING", "h"]);
}

#[test]
fn large_hashes_match_redis_ignoring_order() {
    let mut pair = Differential::start();
    let mut args: Vec<String> = vec!["HSET".into(), "big".into()];
    for i in 0..600 {
        args.push(format!("field:{i}"));
        args.push(format!("value:{i}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pair.check(&args);
    pair.check(&["HLEN", "big"]);
    pair.check(&["HGET", "big", "field:123"]);
    pair.check(&["HMGET", "big", "field:1", "nope", "field:299"]);
    check_unordered(&mut pair, &["HKEYS", "big"]);
    check_unordered(&mut pair, &["HVALS", "big"]);
    let ours = pair.larder.command(&["HGETALL", "big"]);
    let theirs = pair.redis.command(&["HGETALL", "big"]);
    assert_eq!(sorted_pairs(&ours), sorted_pairs(&theirs));
    pair.check(&["HDEL", "big", "field:0", "field:1", "field:2", "nope"]);
    pair.check(&["HLEN", "big"]);
    check_unordered(&mut pair, &["HKEYS", "big"]);

    // A full HSCAN returns every field, at least once, in both.
    let (ours, calls) = full_hscan(&mut pair.larder, "big", "10");
    let (theirs, _) = full_hscan(&mut pair.redis, "big", "10");
    let ours: HashSet<String> = ours.into_iter().collect();
    let theirs: HashSet<String> = theirs.into_iter().collect();
    assert_eq!(ours, theirs);
    assert!(calls > 10, "a large hash is scanned in several calls");

    // HRANDFIELD: distinct members for positive counts, repeats for negative.
    let members: HashSet<String> = strings(&pair.larder.command(&["HKEYS", "big"]))
        .into_iter()
        .collect();
    let picked = strings(&pair.larder.command(&["HRANDFIELD", "big", "50"]));
    assert_eq!(picked.len(), 50);
    assert_eq!(picked.iter().collect::<HashSet<_>>().len(), 50);
    assert!(picked.iter().all(|f| members.contains(f)));
    let picked = strings(&pair.larder.command(&["HRANDFIELD", "big", "250"]));
    assert_eq!(picked.iter().collect::<HashSet<_>>().len(), 250);
    let picked = strings(&pair.larder.command(&["HRANDFIELD", "big", "1000"]));
    assert_eq!(picked.len(), 597);
    let picked = strings(&pair.larder.command(&["HRANDFIELD", "big", "-1000"]));
    assert_eq!(picked.len(), 1000);
    assert!(picked.iter().all(|f| members.contains(f)));
    let with_values = strings(
        &pair
            .larder
            .command(&["HRANDFIELD", "big", "-20", "WITHVALUES"]),
    );
    assert_eq!(with_values.len(), 40);
    for pair in with_values.chunks(2) {
        assert_eq!(pair[0].replace("field", "value"), pair[1]);
    }

    // Long values make a hashtable too.
    pair.check(&["HSET", "long", "a", &"x".repeat(100), "b", "short"]);
    let ours = pair.larder.command(&["HGETALL", "long"]);
    let theirs = pair.redis.command(&["HGETALL", "long"]);
    assert_eq!(sorted_pairs(&ours), sorted_pairs(&theirs));
}

#[test]
fn hrandfield_negative_counts_are_bounded() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.command(&["HSET", "h", "f", "v"]);
    // Redis would try to stream ~9e18 replies; Larder refuses.
    assert_eq!(
        raw.command(&["HRANDFIELD", "h", "-9223372036854775807"]),
        b"-ERR value is out of range\r\n"
    );
    assert_eq!(
        raw.command(&["HRANDFIELD", "h", "-4611686018427387903", "WITHVALUES"]),
        b"-ERR value is out of range\r\n"
    );
    // The server is fine afterwards.
    assert_eq!(raw.command(&["HGET", "h", "f"]), b"$1\r\nv\r\n");
    let picked = strings(&raw.command(&["HRANDFIELD", "h", "-100000"]));
    assert_eq!(picked.len(), 100_000);
}

// ---------------------------------------------------------------- field expiry, wall clock

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn field_is_gone_after_hpexpire() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.command(&["HSET", "h", "a", "1", "b", "2"]);
    assert_eq!(
        raw.command(&["HPEXPIRE", "h", "50", "FIELDS", "1", "a"]),
        b"*1\r\n:1\r\n"
    );
    assert_eq!(raw.command(&["HGET", "h", "a"]), b"$1\r\n1\r\n");
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(raw.command(&["HGET", "h", "a"]), b"$-1\r\n");
    assert_eq!(raw.command(&["HEXISTS", "h", "a"]), b":0\r\n");
    assert_eq!(
        raw.command(&["HGETALL", "h"]),
        b"*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    assert_eq!(raw.command(&["HLEN", "h"]), b":1\r\n");
    assert_eq!(
        raw.command(&["HTTL", "h", "FIELDS", "2", "a", "b"]),
        b"*2\r\n:-2\r\n:-1\r\n"
    );
}

#[test]
fn expired_fields_are_reclaimed_actively() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let mut args = vec!["HSET".to_string(), "h".to_string()];
    for i in 0..10 {
        args.push(format!("f{i}"));
        args.push("v".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    raw.command(&args);
    assert_eq!(
        raw.command(&["HPEXPIRE", "h", "30", "FIELDS", "5", "f0", "f1", "f2", "f3", "f4"]),
        ints_reply(&[1, 1, 1, 1, 1]).as_bytes()
    );
    // HLEN counts expired fields until they are reclaimed (as Redis 7.4's
    // does) and touches none: only active expiry can make it drop.
    assert_eq!(raw.command(&["HLEN", "h"]), b":10\r\n");
    wait_until("active field expiry", || {
        raw.command(&["HLEN", "h"]) == b":5\r\n"
    });
    assert_eq!(
        strings(&raw.command(&["HKEYS", "h"])),
        ["f5", "f6", "f7", "f8", "f9"]
    );
}

#[test]
fn hash_whose_fields_all_expire_disappears() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.command(&["HSET", "doomed", "a", "1", "b", "2"]);
    raw.command(&["HSET", "kept", "a", "1", "b", "2"]);
    raw.command(&["HPEXPIRE", "doomed", "30", "FIELDS", "2", "a", "b"]);
    raw.command(&["HPEXPIRE", "kept", "30", "FIELDS", "1", "a"]);
    assert_eq!(server.shared.store.dbsize(0).unwrap(), 2);
    // dbsize reads the shards without touching keys: only active expiry
    // can remove the hash.
    wait_until("the emptied hash to be removed", || {
        server.shared.store.dbsize(0).unwrap() == 1
    });
    assert_eq!(raw.command(&["EXISTS", "doomed"]), b":0\r\n");
    assert_eq!(
        raw.command(&["HGETALL", "kept"]),
        b"*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
}

// ---------------------------------------------------------------- field expiry, manual clock

#[test]
fn hexpire_replies_per_field() {
    let mut l = Local::new();
    l.raw(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
    assert_eq!(
        l.ints(&["HEXPIRE", "h", "100", "FIELDS", "2", "a", "zz"]),
        [1, -2]
    );
    assert_eq!(
        l.ints(&["HPTTL", "h", "FIELDS", "3", "a", "b", "zz"]),
        [100_000, -1, -2]
    );
    // NX: only fields without a TTL.
    assert_eq!(
        l.ints(&["HEXPIRE", "h", "200", "NX", "FIELDS", "2", "a", "b"]),
        [0, 1]
    );
    // XX: only fields with one.
    assert_eq!(
        l.ints(&["HEXPIRE", "h", "300", "XX", "FIELDS", "2", "b", "c"]),
        [1, 0]
    );
    // GT: a field without TTL has an infinite one, which nothing exceeds.
    assert_eq!(
        l.ints(&["HEXPIRE", "h", "150", "GT", "FIELDS", "3", "a", "b", "c"]),
        [1, 0, 0]
    );
    // LT: anything is less than a missing TTL.
    assert_eq!(
        l.ints(&["HEXPIRE", "h", "120", "LT", "FIELDS", "3", "a", "b", "c"]),
        [1, 1, 1]
    );
    assert_eq!(
        l.ints(&["HTTL", "h", "FIELDS", "3", "a", "b", "c"]),
        [120, 120, 120]
    );
    // Case-insensitive keywords.
    assert_eq!(
        l.ints(&["hpexpire", "h", "5000", "gt", "fields", "1", "a"]),
        [0]
    );
    // A time that is not in the future deletes the field (2).
    assert_eq!(l.ints(&["HEXPIREAT", "h", "0", "FIELDS", "1", "a"]), [2]);
    assert_eq!(l.ints(&["HPEXPIRE", "h", "0", "FIELDS", "1", "b"]), [2]);
    let now = l.now().to_string();
    assert_eq!(
        l.ints(&["HPEXPIREAT", "h", &now, "FIELDS", "2", "c", "c"]),
        [2, -2]
    );
    // ...and the emptied hash goes.
    assert_eq!(l.int(&["EXISTS", "h"]), 0);
    assert_eq!(l.dbsize(), 0);
    // A missing key: -2 for every field.
    assert_eq!(
        l.ints(&["HEXPIRE", "nokey", "10", "FIELDS", "2", "a", "b"]),
        [-2, -2]
    );
    assert_eq!(l.int(&["EXISTS", "nokey"]), 0);
}

#[test]
fn field_expiry_argument_errors() {
    let mut l = Local::new();
    l.raw(&["HSET", "h", "a", "1"]);
    l.raw(&["SET", "s", "v"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["HEXPIRE", "h", "10", "FIELDS", "0", "a"],
            "-ERR Parameter `numFields` should be greater than 0\r\n",
        ),
        (
            &["HEXPIRE", "h", "10", "FIELDS", "x", "a"],
            "-ERR Parameter `numFields` should be greater than 0\r\n",
        ),
        (
            &["HEXPIRE", "h", "10", "FIELDS", "-1", "a"],
            "-ERR Parameter `numFields` should be greater than 0\r\n",
        ),
        (
            &["HEXPIRE", "h", "10", "FIELDS", "2", "a"],
            "-ERR The `numfields` parameter must match the number of arguments\r\n",
        ),
        (
            &["HEXPIRE", "h", "10", "FIELDS", "1", "a", "b"],
            "-ERR The `numfields` parameter must match the number of arguments\r\n",
        ),
        (
            &["HEXPIRE", "h", "10", "NX", "FIELDS", "1"],
            "-ERR The `numfields` parameter must match the number of arguments\r\n",
        ),
        (
            &["HEXPIRE", "h", "10", "NX", "XX", "FIELDS", "1", "a"],
            "-ERR Mandatory argument FIELDS is missing or not at the right position\r\n",
        ),
        (
            &["HEXPIRE", "h", "10", "FIELD", "1", "a"],
            "-ERR Mandatory argument FIELDS is missing or not at the right position\r\n",
        ),
        (
            &["HEXPIRE", "h", "10", "BOGUS", "FIELDS", "1", "a"],
            "-ERR Mandatory argument FIELDS is missing or not at the right position\r\n",
        ),
        (
            &["HEXPIRE", "h", "x", "FIELDS", "1", "a"],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            &["HEXPIRE", "h", "-1", "FIELDS", "1", "a"],
            "-ERR invalid expire time, must be >= 0\r\n",
        ),
        (
            &["HEXPIRE", "h", "70368744178", "FIELDS", "1", "a"],
            "-ERR invalid expire time in 'hexpire' command\r\n",
        ),
        (
            &["HPEXPIRE", "h", "70368744177663", "FIELDS", "1", "a"],
            "-ERR invalid expire time in 'hpexpire' command\r\n",
        ),
        (
            &["HEXPIREAT", "h", "70368744178", "FIELDS", "1", "a"],
            "-ERR invalid expire time in 'hexpireat' command\r\n",
        ),
        (
            &["HPEXPIREAT", "h", "70368744177664", "FIELDS", "1", "a"],
            "-ERR invalid expire time in 'hpexpireat' command\r\n",
        ),
        (
            &["HEXPIRE", "h", "10", "FIELDS", "1"],
            "-ERR wrong number of arguments for 'hexpire' command\r\n",
        ),
        (
            &["HPEXPIRE", "h", "10", "FIELDS"],
            "-ERR wrong number of arguments for 'hpexpire' command\r\n",
        ),
        (
            &["HTTL", "h", "FIELDS", "1"],
            "-ERR wrong number of arguments for 'httl' command\r\n",
        ),
        (
            &["HTTL", "h", "FIELDS", "0", "a"],
            "-ERR Number of fields must be a positive integer\r\n",
        ),
        (
            &["HPTTL", "h", "FIELDS", "2", "a"],
            "-ERR The `numfields` parameter must match the number of arguments\r\n",
        ),
        (
            &["HEXPIRETIME", "h", "FIELD", "1", "a"],
            "-ERR Mandatory argument FIELDS is missing or not at the right position\r\n",
        ),
        (
            &["HPERSIST", "h", "FIELDS", "x", "a"],
            "-ERR Number of fields must be a positive integer\r\n",
        ),
        (
            &["HPERSIST", "h", "FIELDS", "1", "a", "b"],
            "-ERR The `numfields` parameter must match the number of arguments\r\n",
        ),
        // The type is checked first.
        (
            &["HEXPIRE", "s", "x", "FIELDS", "0", "a"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        (
            &["HTTL", "s", "FIELDS", "0", "a"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        (
            &["HPERSIST", "s", "FIELDS", "1", "a"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        (
            &["HPEXPIRETIME", "s", "FIELDS", "1", "a"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        // ...and arguments before the key's existence.
        (
            &["HEXPIRE", "nokey", "10", "FIELDS", "0", "a"],
            "-ERR Parameter `numFields` should be greater than 0\r\n",
        ),
        (
            &["HTTL", "nokey", "FIELDS", "2", "a"],
            "-ERR The `numfields` parameter must match the number of arguments\r\n",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(l.text(args), *expected, "{args:?}");
    }
    // The largest time accepted.
    assert_eq!(
        l.ints(&["HPEXPIREAT", "h", "70368744177663", "FIELDS", "1", "a"]),
        [1]
    );
    assert_eq!(
        l.ints(&["HPEXPIRETIME", "h", "FIELDS", "1", "a"]),
        [70_368_744_177_663]
    );
    assert_eq!(
        l.ints(&["HEXPIRETIME", "h", "FIELDS", "1", "a"]),
        [70_368_744_178]
    );
}

#[test]
fn ttl_queries_and_hpersist() {
    let mut l = Local::new();
    l.raw(&["HSET", "h", "a", "1", "b", "2"]);
    assert_eq!(l.ints(&["HPEXPIRE", "h", "1500", "FIELDS", "1", "a"]), [1]);
    assert_eq!(l.ints(&["HPTTL", "h", "FIELDS", "2", "a", "b"]), [1500, -1]);
    // Seconds round up, as Redis 7.4's (ttl + 999) / 1000.
    assert_eq!(l.ints(&["HTTL", "h", "FIELDS", "1", "a"]), [2]);
    let at = l.now() + 1500;
    assert_eq!(
        l.ints(&["HPEXPIRETIME", "h", "FIELDS", "2", "a", "b"]),
        [at as i64, -1]
    );
    assert_eq!(
        l.ints(&["HEXPIRETIME", "h", "FIELDS", "1", "a"]),
        [at.div_ceil(1000) as i64]
    );
    l.advance(600);
    assert_eq!(l.ints(&["HPTTL", "h", "FIELDS", "1", "a"]), [900]);
    assert_eq!(l.ints(&["HTTL", "h", "FIELDS", "1", "a"]), [1]);
    // Still there at its millisecond, gone after it.
    l.advance(900);
    assert_eq!(l.ints(&["HPTTL", "h", "FIELDS", "1", "a"]), [0]);
    assert_eq!(l.text(&["HGET", "h", "a"]), "$1\r\n1\r\n");
    l.advance(1);
    assert_eq!(l.ints(&["HPTTL", "h", "FIELDS", "1", "a"]), [-2]);
    assert_eq!(l.ints(&["HPERSIST", "h", "FIELDS", "1", "a"]), [-2]);

    l.raw(&["HSET", "h", "a", "1"]);
    l.raw(&["HEXPIRE", "h", "100", "FIELDS", "1", "a"]);
    assert_eq!(
        l.ints(&["HPERSIST", "h", "FIELDS", "3", "a", "b", "zz"]),
        [1, -1, -2]
    );
    assert_eq!(l.ints(&["HTTL", "h", "FIELDS", "1", "a"]), [-1]);
    assert_eq!(l.ints(&["HPERSIST", "h", "FIELDS", "1", "a"]), [-1]);
    // Missing keys: -2 for every field.
    assert_eq!(
        l.ints(&["HTTL", "nokey", "FIELDS", "2", "a", "b"]),
        [-2, -2]
    );
    assert_eq!(l.ints(&["HPERSIST", "nokey", "FIELDS", "1", "a"]), [-2]);
    // A persisted field outlives its old time.
    l.advance(200_000);
    l.expire_all();
    assert_eq!(l.text(&["HGET", "h", "a"]), "$1\r\n1\r\n");
}

#[test]
fn writes_and_field_ttls() {
    let mut l = Local::new();
    l.raw(&["HSET", "h", "a", "1", "n", "10", "f", "1.5", "x", "0"]);
    l.raw(&["HPEXPIRE", "h", "1000", "FIELDS", "4", "a", "n", "f", "x"]);
    // HSET and HMSET clear the TTL of the fields they set.
    assert_eq!(l.int(&["HSET", "h", "a", "2"]), 0);
    assert_eq!(l.ints(&["HTTL", "h", "FIELDS", "1", "a"]), [-1]);
    // HINCRBY and HINCRBYFLOAT keep it.
    assert_eq!(l.int(&["HINCRBY", "h", "n", "5"]), 15);
    assert_eq!(l.text(&["HINCRBYFLOAT", "h", "f", "1"]), "$3\r\n2.5\r\n");
    assert_eq!(
        l.ints(&["HPTTL", "h", "FIELDS", "2", "n", "f"]),
        [1000, 1000]
    );
    // HSETNX does not touch an existing field.
    assert_eq!(l.int(&["HSETNX", "h", "x", "new"]), 0);
    assert_eq!(l.ints(&["HPTTL", "h", "FIELDS", "1", "x"]), [1000]);
    l.advance(1001);
    // Expired fields are absent for every command that names them...
    assert_eq!(l.text(&["HGET", "h", "n"]), "$-1\r\n");
    assert_eq!(l.int(&["HINCRBY", "h", "n", "1"]), 1);
    assert_eq!(l.ints(&["HTTL", "h", "FIELDS", "1", "n"]), [-1]);
    assert_eq!(l.text(&["HINCRBYFLOAT", "h", "f", "1"]), "$1\r\n1\r\n");
    assert_eq!(l.int(&["HSETNX", "h", "x", "new"]), 1);
    assert_eq!(l.text(&["HGET", "h", "x"]), "$3\r\nnew\r\n");
    assert_eq!(l.ints(&["HTTL", "h", "FIELDS", "1", "x"]), [-1]);
    assert_eq!(l.text(&["HGETALL", "h"]).matches("$1\r\na\r\n").count(), 1);
}

#[test]
fn expired_fields_are_invisible_but_counted_by_hlen_until_reclaimed() {
    let mut l = Local::new();
    l.raw(&["HSET", "h", "a", "1", "b", "2", "c", "3", "d", "4"]);
    l.raw(&["HPEXPIRE", "h", "10", "FIELDS", "3", "a", "b", "c"]);
    l.advance(11);
    // Readers skip them without reclaiming them: HLEN still counts them.
    assert_eq!(l.text(&["HGETALL", "h"]), "*2\r\n$1\r\nd\r\n$1\r\n4\r\n");
    assert_eq!(l.strs(&["HKEYS", "h"]), ["d"]);
    assert_eq!(l.strs(&["HVALS", "h"]), ["4"]);
    assert_eq!(
        l.text(&["HSCAN", "h", "0"]),
        "*2\r\n$1\r\n0\r\n*2\r\n$1\r\nd\r\n$1\r\n4\r\n"
    );
    assert_eq!(l.int(&["HLEN", "h"]), 4);
    // Commands naming a field reclaim it.
    assert_eq!(l.int(&["HEXISTS", "h", "a"]), 0);
    assert_eq!(l.int(&["HLEN", "h"]), 3);
    assert_eq!(l.int(&["HSTRLEN", "h", "b"]), 0);
    assert_eq!(l.int(&["HLEN", "h"]), 2);
    // HDEL of an expired field deletes nothing (it is already gone).
    assert_eq!(l.int(&["HDEL", "h", "c"]), 0);
    assert_eq!(l.int(&["HLEN", "h"]), 1);
    // HSET of an expired field creates it anew.
    l.raw(&["HPEXPIRE", "h", "10", "FIELDS", "1", "d"]);
    l.advance(11);
    assert_eq!(l.int(&["HSET", "h", "d", "5", "e", "6"]), 2);
    assert_eq!(
        l.text(&["HGETALL", "h"]),
        "*4\r\n$1\r\nd\r\n$1\r\n5\r\n$1\r\ne\r\n$1\r\n6\r\n"
    );
    // HEXPIRE sees an expired field as missing.
    l.raw(&["HPEXPIRE", "h", "10", "FIELDS", "1", "d"]);
    l.advance(11);
    assert_eq!(l.ints(&["HPEXPIRE", "h", "10", "FIELDS", "1", "d"]), [-2]);
    assert_eq!(l.int(&["HLEN", "h"]), 1);

    // Reclaiming the last field removes the key.
    l.raw(&["HSET", "g", "a", "1"]);
    l.raw(&["HPEXPIRE", "g", "10", "FIELDS", "1", "a"]);
    l.advance(11);
    assert_eq!(l.int(&["EXISTS", "g"]), 1, "until reclaimed, as in Redis");
    assert_eq!(l.text(&["HGETALL", "g"]), "*0\r\n");
    assert_eq!(l.text(&["HMGET", "g", "a", "b"]), "*2\r\n$-1\r\n$-1\r\n");
    assert_eq!(l.int(&["EXISTS", "g"]), 0);
}

#[test]
fn hrandfield_never_returns_expired_fields() {
    let mut l = Local::new();
    l.raw(&["HSET", "h", "a", "1", "b", "2", "c", "3"]);
    l.raw(&["HPEXPIRE", "h", "10", "FIELDS", "2", "a", "b"]);
    l.advance(11);
    for _ in 0..20 {
        assert_eq!(l.text(&["HRANDFIELD", "h"]), "$1\r\nc\r\n");
    }
    assert_eq!(
        l.int(&["HLEN", "h"]),
        1,
        "HRANDFIELD reclaims expired fields"
    );
    assert_eq!(l.strs(&["HRANDFIELD", "h", "-5"]), ["c"; 5]);
    l.raw(&["HPEXPIRE", "h", "10", "FIELDS", "1", "c"]);
    l.advance(11);
    assert_eq!(l.text(&["HRANDFIELD", "h", "5", "WITHVALUES"]), "*0\r\n");
    assert_eq!(l.int(&["EXISTS", "h"]), 0);
    l.raw(&["HSET", "h", "a", "1"]);
    l.raw(&["HPEXPIRE", "h", "10", "FIELDS", "1", "a"]);
    l.advance(11);
    assert_eq!(l.text(&["HRANDFIELD", "h"]), "$-1\r\n");
}

#[test]
fn active_expiry_reclaims_fields_and_empty_hashes() {
    let mut l = Local::new();
    let mut args = vec!["HSET".to_string(), "h".to_string()];
    for i in 0..200 {
        args.push(format!("f{i}"));
        args.push("v".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    l.raw(&args);
    let mut expire = vec!["HPEXPIRE", "h", "100", "FIELDS", "150"];
    let names: Vec<String> = (0..150).map(|i| format!("f{i}")).collect();
    expire.extend(names.iter().map(String::as_str));
    assert_eq!(l.ints(&expire), vec![1; 150]);
    l.raw(&["HSET", "small", "a", "1"]);
    l.raw(&["HPEXPIRE", "small", "50", "FIELDS", "1", "a"]);
    assert_eq!(l.expire_all(), 0, "nothing due yet");
    l.advance(101);
    // One cycle reclaims a bounded batch per shard...
    let first = l.shared.store.expire_cycle_counts();
    assert!(first.fields >= 1 && first.fields <= 64 + 1, "{first:?}");
    // ...and further cycles the rest.
    l.expire_all();
    assert_eq!(l.int(&["HLEN", "h"]), 50);
    assert_eq!(l.dbsize(), 1);
    assert_eq!(l.int(&["EXISTS", "small"]), 0);
}

#[test]
fn key_ttl_and_field_ttls_are_independent() {
    let mut l = Local::new();
    l.raw(&["HSET", "h", "a", "1", "b", "2"]);
    l.raw(&["PEXPIRE", "h", "1000"]);
    l.raw(&["HPEXPIRE", "h", "5000", "FIELDS", "1", "a"]);
    assert_eq!(l.int(&["PTTL", "h"]), 1000);
    assert_eq!(l.ints(&["HPTTL", "h", "FIELDS", "1", "a"]), [5000]);
    assert_eq!(l.int(&["PERSIST", "h"]), 1);
    assert_eq!(l.ints(&["HPTTL", "h", "FIELDS", "1", "a"]), [5000]);
    l.raw(&["PEXPIRE", "h", "10000"]);
    assert_eq!(l.ints(&["HPERSIST", "h", "FIELDS", "1", "a"]), [1]);
    assert_eq!(l.int(&["PTTL", "h"]), 10_000);
    // A field expiring does not touch the key's TTL...
    l.raw(&["HPEXPIRE", "h", "100", "FIELDS", "1", "b"]);
    l.advance(101);
    l.expire_all();
    assert_eq!(l.int(&["PTTL", "h"]), 9_899);
    // ...and the key expiring takes its fields along.
    l.raw(&["HPEXPIRE", "h", "100000", "FIELDS", "1", "a"]);
    l.advance(10_000);
    l.expire_all();
    assert_eq!(l.int(&["EXISTS", "h"]), 0);
    assert_eq!(l.dbsize(), 0);

    // HSET over a hash whose fields all expired keeps the key (and its TTL),
    // as Redis's HSET does; HSETNX, like Redis's, lazily deletes the emptied
    // hash and creates a new one.
    for (command, ttl) in [("HSET", 9_989), ("HSETNX", -1)] {
        l.raw(&["HSET", "k", "a", "1"]);
        l.raw(&["PEXPIRE", "k", "10000"]);
        l.raw(&["HPEXPIRE", "k", "10", "FIELDS", "1", "a"]);
        l.advance(11);
        assert_eq!(l.int(&[command, "k", "a", "2"]), 1, "{command}");
        assert_eq!(l.int(&["PTTL", "k"]), ttl, "{command}");
        assert_eq!(l.text(&["HGET", "k", "a"]), "$1\r\n2\r\n");
        l.raw(&["DEL", "k"]);
    }
}

#[test]
fn field_ttls_follow_the_hash_across_keyspace_commands() {
    let mut l = Local::new();
    for key in ["r", "c", "m", "s"] {
        l.raw(&["HSET", key, "a", "1", "b", "2"]);
        l.raw(&["HPEXPIRE", key, "100", "FIELDS", "1", "a"]);
    }
    l.raw(&["RENAME", "r", "r2"]);
    l.raw(&["COPY", "c", "c2"]);
    l.raw(&["MOVE", "m", "1"]);
    l.raw(&["SWAPDB", "0", "2"]);
    assert_eq!(l.ints(&["HPTTL", "r", "FIELDS", "1", "a"]), [-2]);
    l.raw(&["SELECT", "2"]);
    assert_eq!(l.ints(&["HPTTL", "r2", "FIELDS", "1", "a"]), [100]);
    assert_eq!(l.ints(&["HPTTL", "c2", "FIELDS", "1", "a"]), [100]);
    l.advance(101);
    l.expire_all();
    // Reclaimed actively wherever the hash went.
    for key in ["r2", "c", "c2", "s"] {
        assert_eq!(l.int(&["HLEN", key]), 1, "{key}");
    }
    l.raw(&["SELECT", "1"]);
    assert_eq!(l.int(&["HLEN", "m"]), 1);
    // A flushed hash leaves nothing behind for active expiry to trip on.
    l.raw(&["HSET", "f", "a", "1"]);
    l.raw(&["HPEXPIRE", "f", "100", "FIELDS", "1", "a"]);
    l.raw(&["FLUSHALL"]);
    l.raw(&["SET", "f", "string"]);
    l.advance(101);
    l.expire_all();
    assert_eq!(l.text(&["GET", "f"]), "$6\r\nstring\r\n");
    // Overwriting a hash with another value drops its field timers too.
    l.raw(&["HSET", "o", "a", "1"]);
    l.raw(&["HPEXPIRE", "o", "100", "FIELDS", "1", "a"]);
    l.raw(&["SET", "o", "string"]);
    l.raw(&["HSET", "o2", "a", "1"]);
    l.raw(&["RENAME", "o2", "o"]);
    l.advance(101);
    l.expire_all();
    assert_eq!(l.text(&["HGET", "o", "a"]), "$1\r\n1\r\n");
}

#[test]
fn field_expiry_aborts_watchers() {
    let mut l = Local::new();
    let mut watcher = l.other_session(2);
    l.raw(&["HSET", "h", "a", "1", "b", "2"]);
    l.raw(&["HPEXPIRE", "h", "100", "FIELDS", "1", "a"]);
    assert_eq!(l.run_as(&mut watcher, &["WATCH", "h"]), b"+OK\r\n");
    l.advance(101);
    assert!(l.expire_all() >= 1);
    l.run_as(&mut watcher, &["MULTI"]);
    l.run_as(&mut watcher, &["HSET", "h", "c", "3"]);
    assert_eq!(l.run_as(&mut watcher, &["EXEC"]), b"*-1\r\n");
    // Field commands work inside MULTI/EXEC.
    l.raw(&["MULTI"]);
    l.raw(&["HPEXPIRE", "h", "100", "FIELDS", "1", "b"]);
    l.raw(&["HPTTL", "h", "FIELDS", "1", "b"]);
    l.raw(&["HGETALL", "h"]);
    assert_eq!(
        l.text(&["EXEC"]),
        "*3\r\n*1\r\n:1\r\n*1\r\n:100\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
}

#[test]
fn large_hash_scan_skips_expired_fields_and_survives_changes() {
    let mut l = Local::new();
    let mut args = vec!["HSET".to_string(), "h".to_string()];
    for i in 0..700 {
        args.push(format!("f{i}"));
        args.push(format!("v{i}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    l.raw(&args);
    let mut expire = vec!["HPEXPIRE", "h", "10", "FIELDS", "100"];
    let names: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
    expire.extend(names.iter().map(String::as_str));
    l.raw(&expire);
    l.advance(11);
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let (next, batch): (String, Vec<String>) = redis::from_redis_value(&decode(
            &l.raw(&["HSCAN", "h", &cursor, "COUNT", "25", "NOVALUES"]),
        ))
        .expect("HSCAN reply");
        seen.extend(batch);
        calls += 1;
        // Fields come and go during the iteration.
        l.raw(&["HDEL", "h", &format!("f{}", 300 + calls)]);
        l.raw(&["HSET", "h", &format!("new{calls}"), "x"]);
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert!(calls >= 16, "{calls}");
    for i in 100..300 {
        assert!(seen.contains(&format!("f{i}")), "f{i} missed");
    }
    assert!(!seen
        .iter()
        .any(|f| f.starts_with("f") && f[1..].parse::<u32>().is_ok_and(|n| n < 100)));
    assert_eq!(
        l.text(&["HSCAN", "h", "0", "MATCH", "f1?", "COUNT", "1000", "NOVALUES"])
            .matches("$3\r\nf1")
            .count(),
        0
    );
    let matched = l.strs(&["HKEYS", "h"]);
    assert!(matched.len() < 700);
}

// ---------------------------------------------------------------- property tests

#[derive(Debug, Clone)]
enum Op {
    Hset(u8, Vec<(u8, u8)>),
    Hsetnx(u8, u8, u8),
    Hdel(u8, Vec<u8>),
    Hget(u8, u8),
    Hmget(u8, Vec<u8>),
    Hgetall(u8),
    Hkeys(u8),
    Hvals(u8),
    Hlen(u8),
    Hexists(u8, u8),
    Hstrlen(u8, u8),
    Hincrby(u8, u8, i8),
    Hincrbyfloat(u8, u8, i8),
    HrandfieldAll(u8, bool),
    Hscan(u8),
    Del(u8),
    Exists(u8),
}

fn key_name(k: u8) -> String {
    format!("h{}", k % 3)
}

fn field_name(f: u8) -> String {
    format!("f{}", f % 6)
}

fn value_name(v: u8) -> String {
    match v % 5 {
        0 => "0".into(),
        1 => "-7".into(),
        2 => "text".into(),
        3 => "1.5".into(),
        _ => format!("{}", v),
    }
}

impl Op {
    fn args(&self) -> Vec<String> {
        let k = |k: &u8| key_name(*k);
        let f = |f: &u8| field_name(*f);
        match self {
            Op::Hset(key, pairs) => {
                let mut args = vec!["HSET".into(), k(key)];
                for (field, value) in pairs {
                    args.push(f(field));
                    args.push(value_name(*value));
                }
                args
            }
            Op::Hsetnx(key, field, value) => {
                vec!["HSETNX".into(), k(key), f(field), value_name(*value)]
            }
            Op::Hdel(key, fields) => {
                let mut args = vec!["HDEL".into(), k(key)];
                args.extend(fields.iter().map(f));
                args
            }
            Op::Hget(key, field) => vec!["HGET".into(), k(key), f(field)],
            Op::Hmget(key, fields) => {
                let mut args = vec!["HMGET".into(), k(key)];
                args.extend(fields.iter().map(f));
                args
            }
            Op::Hgetall(key) => vec!["HGETALL".into(), k(key)],
            Op::Hkeys(key) => vec!["HKEYS".into(), k(key)],
            Op::Hvals(key) => vec!["HVALS".into(), k(key)],
            Op::Hlen(key) => vec!["HLEN".into(), k(key)],
            Op::Hexists(key, field) => vec!["HEXISTS".into(), k(key), f(field)],
            Op::Hstrlen(key, field) => vec!["HSTRLEN".into(), k(key), f(field)],
            Op::Hincrby(key, field, by) => vec!["HINCRBY".into(), k(key), f(field), by.to_string()],
            Op::Hincrbyfloat(key, field, by) => {
                vec![
                    "HINCRBYFLOAT".into(),
                    k(key),
                    f(field),
                    format!("{}", *by as f64 / 4.0),
                ]
            }
            Op::HrandfieldAll(key, with_values) => {
                let mut args = vec!["HRANDFIELD".into(), k(key), "10".into()];
                if *with_values {
                    args.push("WITHVALUES".into());
                }
                args
            }
            Op::Hscan(key) => vec!["HSCAN".into(), k(key), "0".into()],
            Op::Del(key) => vec!["DEL".into(), k(key)],
            Op::Exists(key) => vec!["EXISTS".into(), k(key)],
        }
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let pairs = prop::collection::vec((any::<u8>(), any::<u8>()), 1..4);
    let fields = prop::collection::vec(any::<u8>(), 1..4);
    prop_oneof![
        4 => (any::<u8>(), pairs).prop_map(|(k, p)| Op::Hset(k, p)),
        1 => (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(k, f, v)| Op::Hsetnx(k, f, v)),
        2 => (any::<u8>(), fields.clone()).prop_map(|(k, f)| Op::Hdel(k, f)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(k, f)| Op::Hget(k, f)),
        1 => (any::<u8>(), fields).prop_map(|(k, f)| Op::Hmget(k, f)),
        2 => any::<u8>().prop_map(Op::Hgetall),
        1 => any::<u8>().prop_map(Op::Hkeys),
        1 => any::<u8>().prop_map(Op::Hvals),
        1 => any::<u8>().prop_map(Op::Hlen),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(k, f)| Op::Hexists(k, f)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(k, f)| Op::Hstrlen(k, f)),
        2 => (any::<u8>(), any::<u8>(), any::<i8>()).prop_map(|(k, f, b)| Op::Hincrby(k, f, b)),
        1 => (any::<u8>(), any::<u8>(), any::<i8>()).prop_map(|(k, f, b)| Op::Hincrbyfloat(k, f, b)),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(k, w)| Op::HrandfieldAll(k, w)),
        1 => any::<u8>().prop_map(Op::Hscan),
        1 => any::<u8>().prop_map(Op::Del),
        1 => any::<u8>().prop_map(Op::Exists),
    ]
}

/// Random command sequences give byte-identical replies in Larder and Redis
/// (small hashes: their order is Redis's listpack order).
#[test]
fn random_sequences_match_redis() {
    let pair = RefCell::new(Differential::start());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(op_strategy(), 1..40), |ops| {
            let mut pair = pair.borrow_mut();
            pair.larder.command(&["FLUSHALL"]);
            pair.redis.command(&["FLUSHALL"]);
            for op in &ops {
                let args = op.args();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let ours = pair.larder.command(&args);
                let theirs = pair.redis.command(&args);
                prop_assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs),
                    "for {:?} in {:?}",
                    args,
                    ops
                );
            }
            Ok(())
        })
        .unwrap();
}

#[derive(Debug, Clone)]
enum TtlOp {
    Hset(u8, u8),
    Hdel(u8),
    Hget(u8),
    Hincrby(u8),
    Hpexpire(u8, u16, u8),
    Hpersist(u8),
    Hpttl(u8),
    Hgetall,
    Advance(u16),
    /// Active expiry until nothing is due, then HLEN and EXISTS.
    ReclaimAndCount,
}

fn ttl_op_strategy() -> impl Strategy<Value = TtlOp> {
    prop_oneof![
        3 => (any::<u8>(), any::<u8>()).prop_map(|(f, v)| TtlOp::Hset(f, v)),
        1 => any::<u8>().prop_map(TtlOp::Hdel),
        2 => any::<u8>().prop_map(TtlOp::Hget),
        1 => any::<u8>().prop_map(TtlOp::Hincrby),
        3 => (any::<u8>(), 0u16..300, any::<u8>()).prop_map(|(f, ms, c)| TtlOp::Hpexpire(f, ms, c)),
        1 => any::<u8>().prop_map(TtlOp::Hpersist),
        2 => any::<u8>().prop_map(TtlOp::Hpttl),
        2 => Just(TtlOp::Hgetall),
        3 => (0u16..200).prop_map(TtlOp::Advance),
        1 => Just(TtlOp::ReclaimAndCount),
    ]
}

/// The field-expiry model: field -> (value, expiry time).
#[derive(Default)]
struct Model {
    fields: BTreeMap<String, (String, Option<u64>)>,
}

impl Model {
    fn live(&self, field: &str, now: u64) -> Option<&(String, Option<u64>)> {
        self.fields
            .get(field)
            .filter(|(_, at)| at.is_none_or(|at| at >= now))
    }

    fn drop_expired(&mut self, field: &str, now: u64) {
        if self.live(field, now).is_none() {
            self.fields.remove(field);
        }
    }
}

/// Random sequences of field-expiry commands agree with a simple model, time
/// moving only when the sequence says so.
#[test]
fn field_expiry_matches_a_model() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(ttl_op_strategy(), 1..60), |ops| {
            let mut l = Local::new();
            let mut model = Model::default();
            for op in &ops {
                let now = l.now();
                let field = |f: &u8| format!("f{}", f % 5);
                match op {
                    TtlOp::Hset(f, v) => {
                        let f = field(f);
                        let created = model.live(&f, now).is_none();
                        model.fields.insert(f.clone(), (v.to_string(), None));
                        prop_assert_eq!(l.int(&["HSET", "h", &f, &v.to_string()]), created as i64);
                    }
                    TtlOp::Hdel(f) => {
                        let f = field(f);
                        model.drop_expired(&f, now);
                        let existed = model.fields.remove(&f).is_some();
                        prop_assert_eq!(l.int(&["HDEL", "h", &f]), existed as i64);
                    }
                    TtlOp::Hget(f) => {
                        let f = field(f);
                        model.drop_expired(&f, now);
                        let expected = match model.fields.get(&f) {
                            Some((v, _)) => format!("${}\r\n{}\r\n", v.len(), v),
                            None => "$-1\r\n".into(),
                        };
                        prop_assert_eq!(l.text(&["HGET", "h", &f]), expected);
                    }
                    TtlOp::Hincrby(f) => {
                        let f = field(f);
                        model.drop_expired(&f, now);
                        let entry = model.fields.entry(f.clone()).or_insert(("0".into(), None));
                        let next = entry.0.parse::<i64>().unwrap_or(0) + 1;
                        entry.0 = next.to_string();
                        prop_assert_eq!(l.int(&["HINCRBY", "h", &f, "1"]), next);
                    }
                    TtlOp::Hpexpire(f, ms, c) => {
                        let f = field(f);
                        model.drop_expired(&f, now);
                        let (word, condition) = match c % 5 {
                            0 => (None, ""),
                            1 => (Some("NX"), "NX"),
                            2 => (Some("XX"), "XX"),
                            3 => (Some("GT"), "GT"),
                            _ => (Some("LT"), "LT"),
                        };
                        let at = now + *ms as u64;
                        let code = match model.fields.get(&f).map(|(_, t)| *t) {
                            None => -2,
                            Some(None) if condition == "XX" || condition == "GT" => 0,
                            Some(Some(t))
                                if condition == "NX"
                                    || (condition == "GT" && t >= at)
                                    || (condition == "LT" && t <= at) =>
                            {
                                0
                            }
                            _ if at <= now => {
                                model.fields.remove(&f);
                                2
                            }
                            _ => {
                                if let Some(entry) = model.fields.get_mut(&f) {
                                    entry.1 = Some(at);
                                }
                                1
                            }
                        };
                        let ms = ms.to_string();
                        let mut args = vec!["HPEXPIRE", "h", &ms];
                        args.extend(word);
                        args.extend(["FIELDS", "1", &f]);
                        prop_assert_eq!(l.ints(&args), vec![code]);
                    }
                    TtlOp::Hpersist(f) => {
                        let f = field(f);
                        let code = match model.live(&f, now) {
                            None => -2,
                            Some((_, None)) => -1,
                            Some((_, Some(_))) => 1,
                        };
                        if code == 1 {
                            if let Some(entry) = model.fields.get_mut(&f) {
                                entry.1 = None;
                            }
                        }
                        prop_assert_eq!(l.ints(&["HPERSIST", "h", "FIELDS", "1", &f]), vec![code]);
                    }
                    TtlOp::Hpttl(f) => {
                        let f = field(f);
                        let expected = match model.live(&f, now) {
                            None => -2,
                            Some((_, None)) => -1,
                            Some((_, Some(at))) => (at - now) as i64,
                        };
                        prop_assert_eq!(l.ints(&["HPTTL", "h", "FIELDS", "1", &f]), vec![expected]);
                    }
                    TtlOp::Hgetall => {
                        let mut expected: Vec<(String, String)> = model
                            .fields
                            .iter()
                            .filter(|(f, _)| model.live(f, now).is_some())
                            .map(|(f, (v, _))| (f.clone(), v.clone()))
                            .collect();
                        expected.sort();
                        prop_assert_eq!(sorted_pairs(&l.raw(&["HGETALL", "h"])), expected);
                    }
                    TtlOp::Advance(ms) => l.advance(*ms as u64),
                    TtlOp::ReclaimAndCount => {
                        l.expire_all();
                        model
                            .fields
                            .retain(|_, (_, at)| at.is_none_or(|at| at >= now));
                        prop_assert_eq!(l.int(&["HLEN", "h"]), model.fields.len() as i64);
                        prop_assert_eq!(l.int(&["EXISTS", "h"]), !model.fields.is_empty() as i64);
                        prop_assert_eq!(l.dbsize(), !model.fields.is_empty() as usize);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

/// A pipeline of lookups inside large collections (past the size where the
/// connection prefetches the member's index group, element and bytes
/// before running them) answers as Redis does: fields and members present
/// and absent, in a hash, a set and a sorted set, on a missing key and a
/// key of the wrong type, with writes to the same collections in between.
#[test]
fn pipelined_member_lookups_in_large_collections_match_redis() {
    let mut both = Differential::start();
    let mut fill = Vec::new();
    for i in 0..1000 {
        let (field, value) = (format!("f{i}"), format!("v{i}"));
        fill.extend(common::encode_command(&[
            b"HSET",
            b"h",
            field.as_bytes(),
            value.as_bytes(),
        ]));
        fill.extend(common::encode_command(&[b"SADD", b"s", field.as_bytes()]));
        let score = (i * 7 % 1000).to_string();
        fill.extend(common::encode_command(&[
            b"ZADD",
            b"z",
            score.as_bytes(),
            field.as_bytes(),
        ]));
    }
    fill.extend(common::encode_command(&[b"SET", b"str", b"x"]));
    fill.extend(common::encode_command(&[b"PING"]));
    for client in [&mut both.larder, &mut both.redis] {
        client.send(&fill);
        for _ in 0..3001 {
            client.read_reply();
        }
        assert_eq!(client.read_reply(), b"+PONG\r\n");
    }
    let lookups: &[&[&str]] = &[
        &["HGET", "h", "f1"],
        &["HGET", "h", "nope"],
        &["HEXISTS", "h", "f999"],
        &["HSTRLEN", "h", "f10"],
        &["HMGET", "h", "f2", "nope", "f3"],
        &["HINCRBY", "h", "counter", "5"],
        &["HDEL", "h", "f4"],
        &["HGET", "h", "f4"],
        &["HSET", "h", "f4", "again"],
        &["HGET", "h", "f4"],
        &["SISMEMBER", "s", "f5"],
        &["SISMEMBER", "s", "nope"],
        &["SMISMEMBER", "s", "f6", "nope"],
        &["SREM", "s", "f7"],
        &["SISMEMBER", "s", "f7"],
        &["SADD", "s", "f7"],
        &["ZSCORE", "z", "f8"],
        &["ZSCORE", "z", "nope"],
        &["ZMSCORE", "z", "f9", "nope"],
        &["ZRANK", "z", "f11"],
        &["ZREVRANK", "z", "f11"],
        &["ZINCRBY", "z", "2.5", "f12"],
        &["ZREM", "z", "f13"],
        &["ZSCORE", "z", "f13"],
        &["ZADD", "z", "3", "f13"],
        &["ZADD", "z", "NX", "1", "f14"],
        &["ZADD", "z", "XX", "CH", "5", "f15", "6", "nope"],
        &["ZSCORE", "z", "f15"],
        &["HGET", "missing", "f1"],
        &["SISMEMBER", "str", "x"],
        &["ZSCORE", "h", "f1"],
        &["HGET", "z", "f1"],
    ];
    let mut pipeline = Vec::new();
    for args in lookups {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        pipeline.extend(common::encode_command(&args));
    }
    both.larder.send(&pipeline);
    both.redis.send(&pipeline);
    for args in lookups {
        let ours = both.larder.read_reply();
        let theirs = both.redis.read_reply();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "replies differ for {args:?}"
        );
    }
}
