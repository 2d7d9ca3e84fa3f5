//! List commands: differential tests against a real redis-server 7.0 for
//! every non-blocking command and error (RESP2 and RESP3); blocking
//! commands through raw clients and the redis crate (the same scenarios run
//! against both servers where the outcome is deterministic); the wakeup
//! latency; and a proptest model test against a `VecDeque` model.

mod common;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{encode_command, Differential, RawClient, RedisServer, TestServer};
use proptest::prelude::*;
use redis::Commands;

/// Runs a script in RESP2, then again from scratch in RESP3.
fn script_both_protocols(text: &str) {
    let mut pair = Differential::start();
    pair.script(text);
    pair.check(&["FLUSHALL"]);
    pair.larder.command(&["HELLO", "3"]);
    pair.redis.command(&["HELLO", "3"]);
    pair.script(text);
}

// ---------------------------------------------------------------- differential, non-blocking

#[test]
fn pushes_pops_and_lengths() {
    script_both_protocols(
        "
        LPUSH l a b c
        RPUSH l d e
        LRANGE l 0 -1
        LLEN l
        LLEN missing
        LPUSHX missing a
        RPUSHX missing a
        EXISTS missing
        LPUSHX l x y
        RPUSHX l z
        LRANGE l 0 -1
        LPOP l
        RPOP l
        LPOP l 2
        RPOP l 2
        LPOP l 0
        RPOP l 0
        LRANGE l 0 -1
        LPOP l 100
        EXISTS l
        LPOP l
        RPOP l
        LPOP l 0
        LPOP l 3
        RPOP l 1
        RPUSH n 1 2 3 -4 9223372036854775807 1.5 007
        LRANGE n 0 -1
        RPOP n 1
        LPOP n 1
        TYPE n
        OBJECT ENCODING n
        RPUSH one x
        LPOP one
        EXISTS one
        RPUSH one x
        RPOP one 1
        EXISTS one
        ",
    );
}

#[test]
fn ranges_indexes_and_in_place_changes() {
    script_both_protocols(
        "
        RPUSH l a b c d e f
        LRANGE l 0 0
        LRANGE l 1 3
        LRANGE l -2 -1
        LRANGE l -100 100
        LRANGE l 3 1
        LRANGE l 6 10
        LRANGE l -1 -2
        LRANGE l 5 5
        LRANGE l -9223372036854775808 9223372036854775807
        LRANGE l 9223372036854775807 -9223372036854775808
        LRANGE missing 0 -1
        LINDEX l 0
        LINDEX l -1
        LINDEX l 5
        LINDEX l 6
        LINDEX l -7
        LINDEX l -9223372036854775808
        LINDEX missing 0
        LSET l 0 A
        LSET l -1 F
        LSET l 6 x
        LSET l -7 x
        LSET missing 0 x
        LRANGE l 0 -1
        LINSERT l BEFORE c C1
        LINSERT l after c C2
        LINSERT l BEFORE A first
        LINSERT l AFTER F last
        LINSERT l BEFORE nothere x
        LINSERT missing BEFORE a x
        LINSERT l MIDDLE a x
        LRANGE l 0 -1
        RPUSH r x a x b x c x
        LREM r 2 x
        LRANGE r 0 -1
        LREM r -1 x
        LRANGE r 0 -1
        LREM r 0 x
        LRANGE r 0 -1
        LREM r 0 nothere
        LREM missing 0 x
        RPUSH r2 x x x
        LREM r2 -9223372036854775808 x
        EXISTS r2
        RPUSH t a b c d e f g
        LTRIM t 1 -2
        LRANGE t 0 -1
        LTRIM t -3 100
        LRANGE t 0 -1
        LTRIM t 0 0
        LRANGE t 0 -1
        LTRIM t 5 1
        EXISTS t
        LTRIM missing 0 1
        RPUSH t2 a b
        LTRIM t2 -9223372036854775808 9223372036854775807
        LRANGE t2 0 -1
        LTRIM t2 9223372036854775807 0
        EXISTS t2
        ",
    );
}

#[test]
fn lpos_matches_redis() {
    script_both_protocols(
        "
        RPUSH l a b c a b c a x
        LPOS l a
        LPOS l c
        LPOS l nothere
        LPOS l a RANK 2
        LPOS l a RANK -1
        LPOS l a RANK -3
        LPOS l a RANK 4
        LPOS l a RANK -4
        LPOS l a COUNT 0
        LPOS l a COUNT 2
        LPOS l a COUNT 2 RANK 2
        LPOS l a COUNT 0 RANK -1
        LPOS l a COUNT 1 RANK -2
        LPOS l a MAXLEN 3
        LPOS l a MAXLEN 3 COUNT 0
        LPOS l a MAXLEN 4 COUNT 0
        LPOS l a MAXLEN 1 RANK -1
        LPOS l a MAXLEN 2 RANK -1
        LPOS l a RANK 1 RANK 2
        LPOS l a COUNT 9223372036854775807
        LPOS l a rank -9223372036854775808
        LPOS l a rank -9223372036854775808 count 1
        LPOS l a rank -9223372036854775808 count 0
        LPOS l a rank 9223372036854775807
        LPOS l nothere COUNT 0
        LPOS missing a
        LPOS missing a COUNT 0
        LPOS missing a COUNT 3 RANK -1
        LPOS l a RANK 0
        LPOS missing a RANK 0
        LPOS l a RANK x
        LPOS l a RANK
        LPOS l a COUNT -1
        LPOS l a COUNT x
        LPOS l a MAXLEN -1
        LPOS l a MAXLEN x
        LPOS l a FOO 1
        LPOS l a COUNT
        LPOS l a RANK 1 FOO
        ",
    );
}

#[test]
fn moves_and_multi_pops() {
    script_both_protocols(
        "
        RPUSH src a b c d
        LMOVE src dst LEFT RIGHT
        LMOVE src dst right left
        LRANGE src 0 -1
        LRANGE dst 0 -1
        LMOVE src src LEFT RIGHT
        LRANGE src 0 -1
        LMOVE src src RIGHT RIGHT
        LRANGE src 0 -1
        RPOPLPUSH src dst
        RPOPLPUSH src dst
        EXISTS src
        RPOPLPUSH src dst
        LMOVE missing dst LEFT LEFT
        LMOVE src dst UP LEFT
        LMOVE src dst LEFT DOWN
        LMOVE missing dst UP LEFT
        RPUSH single x
        RPOPLPUSH single single
        LRANGE single 0 -1
        LRANGE dst 0 -1
        LMPOP 1 dst LEFT
        LMPOP 1 dst RIGHT COUNT 2
        LMPOP 2 missing dst LEFT COUNT 100
        LMPOP 2 missing dst LEFT
        EXISTS dst
        RPUSH a 1 2 3
        RPUSH b 4 5 6
        LMPOP 2 a b RIGHT COUNT 2
        LMPOP 2 a b RIGHT COUNT 2
        LMPOP 2 a b left COUNT 9223372036854775807
        LMPOP 0 a LEFT
        LMPOP -1 a LEFT
        LMPOP x a LEFT
        LMPOP 2 a LEFT
        LMPOP 1 a MIDDLE
        LMPOP 1 a LEFT COUNT 0
        LMPOP 1 a LEFT COUNT -1
        LMPOP 1 a LEFT COUNT x
        LMPOP 1 a LEFT COUNT 1 COUNT 1
        LMPOP 1 a LEFT COUNT
        LMPOP 1 a LEFT FOO
        LMPOP 9223372036854775807 a LEFT
        LMPOP 9223372036854775806 a LEFT
        LMPOP 1 a
        ",
    );
}

#[test]
fn wrong_types_and_argument_errors() {
    script_both_protocols(
        "
        SET s v
        RPUSH l a b
        LPUSH s a
        RPUSH s a
        LPUSHX s a
        RPUSHX s a
        LPOP s
        RPOP s
        LPOP s 2
        LPOP s 0
        LPOP s -1
        LPOP l -1
        LPOP l x
        LPOP missing -1
        LPOP l 1 2
        RPOP l 1 2
        LLEN s
        LRANGE s 0 1
        LRANGE s x 1
        LRANGE l x 1
        LRANGE l 0 y
        LRANGE missing x 1
        LINDEX s 0
        LINDEX s x
        LINDEX l x
        LINDEX missing x
        LSET s 0 x
        LSET s x x
        LSET l x x
        LSET missing x x
        LINSERT s BEFORE a b
        LINSERT s MIDDLE a b
        LREM s 0 a
        LREM s x a
        LREM l x a
        LREM missing x a
        LTRIM s 0 1
        LTRIM s x 1
        LTRIM missing 0 x
        LPOS s a
        LPOS s a RANK 0
        LPOS s a COUNT 0
        LMOVE s l LEFT LEFT
        LMOVE l s LEFT LEFT
        LMOVE missing s LEFT LEFT
        LMOVE s missing LEFT LEFT
        RPOPLPUSH s l
        RPOPLPUSH l s
        RPOPLPUSH missing s
        LMPOP 1 s LEFT
        LMPOP 2 missing s LEFT
        LMPOP 2 l s LEFT
        LMPOP 2 s l LEFT
        LRANGE l 0 -1
        GET s
        LPUSH
        LPUSH l
        RPUSH l
        LPUSHX l
        RPUSHX l
        LPOP
        RPOP
        LLEN
        LLEN l l
        LRANGE l 0
        LINDEX l
        LSET l 0
        LINSERT l BEFORE a
        LREM l 0
        LTRIM l 0
        LPOS l
        LMOVE l l LEFT
        RPOPLPUSH l
        LMPOP 1 l
        BLPOP l
        BRPOP l
        BLMOVE l l LEFT LEFT
        BRPOPLPUSH l l
        BLMPOP 0 1 l
        ",
    );
}

#[test]
fn binary_and_large_elements() {
    let mut pair = Differential::start();
    let big = "x".repeat(100_000);
    pair.check(&["RPUSH", "l", "", &big, "a\r\nb", "\0"]);
    pair.check(&["LRANGE", "l", "0", "-1"]);
    pair.check(&["LPOS", "l", ""]);
    pair.check(&["LINSERT", "l", "BEFORE", "", "first"]);
    pair.check(&["LREM", "l", "0", &big]);
    pair.check(&["LRANGE", "l", "0", "-1"]);
    pair.check(&["OBJECT", "ENCODING", "l"]);
    let many: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let mut args = vec!["RPUSH", "long"];
    args.extend(many.iter().map(String::as_str));
    pair.check(&args);
    pair.check(&["LLEN", "long"]);
    pair.check(&["LRANGE", "long", "100", "105"]);
    pair.check(&["OBJECT", "ENCODING", "long"]);
    pair.check(&["LTRIM", "long", "0", "9"]);
    pair.check(&["OBJECT", "ENCODING", "long"]);
}

/// A list of thousands of elements is kept in chunks of 1,024 (see
/// `store::types::list`): indexes, ranges, insertions and removals that
/// cross chunk boundaries answer as Redis's.
#[test]
fn long_lists_across_chunks_match_redis() {
    let mut pair = Differential::start();
    let elements: Vec<String> = (0..5000).map(|i| format!("e{}", i % 700)).collect();
    for chunk in elements.chunks(500) {
        let mut args = vec!["RPUSH", "l"];
        args.extend(chunk.iter().map(String::as_str));
        pair.check(&args);
        let mut args = vec!["LPUSH", "l"];
        args.extend(chunk.iter().map(String::as_str));
        pair.check(&args);
    }
    pair.check(&["LLEN", "l"]);
    for index in [
        "0", "1023", "1024", "1025", "4999", "5000", "9999", "-1", "-1024", "-1025", "-10000",
        "10000",
    ] {
        pair.check(&["LINDEX", "l", index]);
    }
    pair.check(&["LRANGE", "l", "1020", "1030"]);
    pair.check(&["LRANGE", "l", "-3000", "-2990"]);
    pair.check(&["LSET", "l", "1024", "changed"]);
    pair.check(&["LSET", "l", "-1025", "changed too"]);
    // Inserting into a full chunk splits it.
    for _ in 0..30 {
        pair.check(&["LINSERT", "l", "BEFORE", "e350", "inserted"]);
        pair.check(&["LINSERT", "l", "AFTER", "e699", "after"]);
    }
    pair.check(&["LPOS", "l", "inserted", "COUNT", "0"]);
    pair.check(&["LPOS", "l", "e10", "RANK", "-3", "COUNT", "5"]);
    pair.check(&["LREM", "l", "-7", "e20"]);
    pair.check(&["LREM", "l", "5", "e30"]);
    pair.check(&["LREM", "l", "0", "inserted"]);
    pair.check(&["LRANGE", "l", "0", "-1"]);
    pair.check(&["RPOP", "l", "1500"]);
    pair.check(&["LPOP", "l", "1100"]);
    pair.check(&["LTRIM", "l", "1000", "-1000"]);
    pair.check(&["LLEN", "l"]);
    pair.check(&["LRANGE", "l", "0", "-1"]);
    pair.check(&["LMOVE", "l", "l", "LEFT", "RIGHT"]);
    pair.check(&["LINDEX", "l", "-1"]);
}

#[test]
fn command_info_matches_redis() {
    let mut pair = Differential::start();
    // LMOVE, RPOPLPUSH, BLMOVE and BRPOPLPUSH have two key specs in Redis
    // (Larder's table has one per command): their head is compared only.
    let full = [
        "lpush", "rpush", "lpushx", "rpushx", "lpop", "rpop", "llen", "lrange", "lindex", "lset",
        "linsert", "lrem", "ltrim", "lpos", "lmpop", "blpop", "brpop", "blmpop", "bzpopmin",
        "bzpopmax", "bzmpop",
    ];
    let head_only = ["lmove", "rpoplpush", "blmove", "brpoplpush"];
    for name in full.iter().chain(&head_only) {
        let ours = redis::parse_redis_value(&pair.larder.command(&["COMMAND", "INFO", name]))
            .expect("COMMAND INFO reply");
        let theirs = redis::parse_redis_value(&pair.redis.command(&["COMMAND", "INFO", name]))
            .expect("COMMAND INFO reply");
        if full.contains(name) {
            assert_eq!(ours, theirs, "COMMAND INFO {name}");
            continue;
        }
        let head = |value: redis::Value| -> Vec<redis::Value> {
            match value {
                redis::Value::Array(mut outer) => match outer.remove(0) {
                    redis::Value::Array(info) => info.into_iter().take(8).collect(),
                    other => panic!("unexpected {other:?}"),
                },
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(head(ours), head(theirs), "COMMAND INFO {name}");
    }
}

// ---------------------------------------------------------------- differential, blocking commands that do not wait

#[test]
fn blocking_commands_served_at_once_match_redis() {
    script_both_protocols(
        "
        RPUSH a 1 2 3 4 5 6
        RPUSH b 7 8 9 10
        BLPOP a 0
        BRPOP a 0
        BLPOP missing b 0
        BRPOP missing a b 1
        BLPOP a 0
        LRANGE a 0 -1
        BLMPOP 0 2 missing b LEFT
        BLMPOP 0 1 b RIGHT COUNT 10
        EXISTS b
        RPUSH c x y z
        BLMOVE c d LEFT RIGHT 0
        BLMOVE c c RIGHT LEFT 0
        BRPOPLPUSH c d 0
        LRANGE c 0 -1
        LRANGE d 0 -1
        # timeouts that pass
        BLPOP missing 0.01
        BRPOP missing other 0.001
        BLMPOP 0.01 1 missing LEFT
        BLMOVE missing d LEFT LEFT 0.01
        BRPOPLPUSH missing d 0.01
        BLPOP missing 1e-400
        BLPOP missing 1e-4940
        BLPOP missing 0x1p-12
        BLPOP missing 0x.8p-3
        BLPOP missing 1e-4960
        BLPOP missing 0x
        # errors
        SET s v
        BLPOP s 0
        BLPOP missing s 0
        BLPOP c s 0
        BLPOP missing x
        BLPOP missing -1
        BLPOP missing inf
        BLPOP missing 1e400
        BLPOP missing 9.3e15
        BLPOP missing 1e5000
        BLPOP missing nan
        BLPOP missing 1x
        BLPOP s -1
        BRPOP s x
        BLMOVE s d LEFT LEFT 0
        BLMOVE d s LEFT LEFT 0
        BLMOVE missing s LEFT LEFT 0.01
        BLMOVE c d UP LEFT x
        BLMOVE c d LEFT LEFT x
        BLMOVE c d LEFT LEFT -1
        BRPOPLPUSH c d x
        BRPOPLPUSH s d 0
        BLMPOP x 1 a LEFT
        BLMPOP -1 1 a LEFT
        BLMPOP 0 0 a LEFT
        BLMPOP 0 1 a MIDDLE
        BLMPOP 0 1 a LEFT COUNT 0
        BLMPOP 0 2 a LEFT
        BLMPOP 0 1 s LEFT
        BLMPOP 0 2 missing s LEFT
        ",
    );
}

#[test]
fn blocking_inside_multi_answers_at_once() {
    script_both_protocols(
        "
        MULTI
        BLPOP missing 0
        BRPOP missing 0
        BLMOVE missing d LEFT LEFT 0
        BRPOPLPUSH missing d 0
        BLMPOP 0 1 missing LEFT
        RPUSH k a b
        BLPOP k 0
        BLMPOP 0 1 k LEFT COUNT 5
        BLPOP k 0
        EXEC
        EXISTS k
        ",
    );
}

#[test]
fn sorted_set_blocking_pops_served_at_once_match_redis() {
    script_both_protocols(
        "
        ZADD z 1 a 2 b 3 c 4 d 5 e
        ZADD y 10 x
        BZPOPMIN z 0
        BZPOPMAX z 0
        BZPOPMIN missing y z 0
        BZPOPMAX missing z 1
        BZMPOP 0 2 missing z MIN
        BZMPOP 0 1 z MAX COUNT 10
        EXISTS z
        BZPOPMIN missing 0.01
        BZPOPMAX missing other 0.001
        BZMPOP 0.01 1 missing MIN
        SET s v
        BZPOPMIN s 0
        BZPOPMIN missing s 0
        BZPOPMIN s x
        BZPOPMIN missing -1
        BZPOPMAX missing inf
        BZMPOP x 1 z MIN
        BZMPOP x 0 z MIN
        BZMPOP x 1 z MIDDLE
        BZMPOP x 1 z MIN COUNT 0
        BZMPOP -1 2 z MIN
        BZMPOP 0 1 s MIN
        BZMPOP 0 2 missing s MAX
        BZPOPMIN z
        BZMPOP 0 1 z
        MULTI
        BZPOPMIN missing 0
        BZMPOP 0 1 missing MAX
        ZADD q 1 one 2 two
        BZPOPMAX q 0
        BZMPOP 0 1 q MIN COUNT 5
        BZPOPMIN q 0
        EXEC
        ",
    );
}

// ---------------------------------------------------------------- blocking scenarios

/// `blocked_clients` from INFO clients.
fn blocked_clients(control: &mut RawClient) -> usize {
    let reply = control.command(&["INFO", "clients"]);
    let text = String::from_utf8_lossy(&reply);
    text.lines()
        .find_map(|line| line.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("blocked_clients in INFO")
}

/// Waits until exactly `n` clients are blocked.
fn wait_blocked(control: &mut RawClient, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked_clients(control) != n {
        assert!(Instant::now() < deadline, "never saw {n} blocked clients");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends a command without waiting for its reply.
fn send(client: &mut RawClient, args: &[&str]) {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    client.send(&encode_command(&bytes));
}

/// A scenario runs against one server address and returns what its
/// clients saw, in order.
type Scenario = fn(SocketAddr) -> Vec<String>;

/// Runs `scenario` against Larder and against Redis and asserts the same
/// transcript; returns it.
fn both(scenario: Scenario) -> Vec<String> {
    let larder = TestServer::start();
    let redis = RedisServer::start();
    let ours = scenario(larder.addr);
    let theirs = scenario(redis.addr);
    assert_eq!(ours, theirs, "Larder and Redis disagree");
    ours
}

fn text(reply: Vec<u8>) -> String {
    String::from_utf8_lossy(&reply).into_owned()
}

fn fifo_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut waiters: Vec<RawClient> = (0..3).map(|_| RawClient::connect(addr)).collect();
    for (i, waiter) in waiters.iter_mut().enumerate() {
        let name = format!("w{i}");
        waiter.command(&["CLIENT", "SETNAME", &name]);
        send(waiter, &["BLPOP", "other", "k", "0"]);
        wait_blocked(&mut control, i + 1);
    }
    let mut seen = vec![text(control.command(&["RPUSH", "k", "a", "b"]))];
    seen.extend(waiters[..2].iter_mut().map(|w| text(w.read_reply())));
    wait_blocked(&mut control, 1);
    seen.push(text(control.command(&["LPUSH", "other", "c"])));
    seen.push(text(waiters[2].read_reply()));
    wait_blocked(&mut control, 0);
    seen.push(text(control.command(&["EXISTS", "k", "other"])));
    seen
}

#[test]
fn blocked_clients_are_served_in_blocking_order() {
    let seen = both(fifo_scenario);
    assert_eq!(seen[1], "*2\r\n$1\r\nk\r\n$1\r\na\r\n");
    assert_eq!(seen[2], "*2\r\n$1\r\nk\r\n$1\r\nb\r\n");
    assert_eq!(seen[4], "*2\r\n$5\r\nother\r\n$1\r\nc\r\n");
}

#[test]
fn woken_by_a_push_from_another_connection() {
    let server = TestServer::start();
    let mut control = server.client();
    let waiter = {
        let mut con = server.client();
        std::thread::spawn(move || -> Option<(String, String)> {
            redis::cmd("BRPOP")
                .arg("jobs")
                .arg(0)
                .query(&mut con)
                .unwrap()
        })
    };
    let mut raw = server.raw();
    wait_blocked(&mut raw, 1);
    let _: i64 = control.rpush("jobs", "job-1").unwrap();
    assert_eq!(
        waiter.join().unwrap(),
        Some(("jobs".to_string(), "job-1".to_string()))
    );
    let left: i64 = control.llen("jobs").unwrap();
    assert_eq!(left, 0);
    // The redis crate's own helper.
    let _: i64 = control.lpush("jobs", "job-2").unwrap();
    let got: Option<(String, String)> = control.blpop("jobs", 1.0).unwrap();
    assert_eq!(got, Some(("jobs".into(), "job-2".into())));
}

#[test]
fn fractional_timeouts_pass_on_time() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let started = Instant::now();
    assert_eq!(raw.command(&["BLPOP", "missing", "0.1"]), b"*-1\r\n");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100) && waited < Duration::from_millis(600),
        "BLPOP 0.1 took {waited:?}"
    );
    let started = Instant::now();
    // Redis 7.0 times BLMOVE and BRPOPLPUSH out with a null array too.
    assert_eq!(
        raw.command(&["BLMOVE", "missing", "d", "LEFT", "LEFT", "0.05"]),
        b"*-1\r\n"
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        raw.command(&["BRPOPLPUSH", "missing", "d", "0.01"]),
        b"*-1\r\n"
    );
    assert_eq!(
        raw.command(&["BLMPOP", "0.01", "1", "missing", "LEFT"]),
        b"*-1\r\n"
    );
    raw.command(&["HELLO", "3"]);
    assert_eq!(raw.command(&["BLPOP", "missing", "0.01"]), b"_\r\n");
    assert_eq!(
        raw.command(&["BLMOVE", "missing", "d", "LEFT", "LEFT", "0.01"]),
        b"_\r\n"
    );
    let mut control = server.raw();
    wait_blocked(&mut control, 0);
    assert_eq!(server.shared.blocking.waited_keys(), 0);
}

fn multi_exec_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut waiter = RawClient::connect(addr);
    send(&mut waiter, &["BLPOP", "k", "0"]);
    wait_blocked(&mut control, 1);
    let mut seen = Vec::new();
    // A push undone inside the same transaction serves nobody.
    for args in [
        &["MULTI"][..],
        &["RPUSH", "k", "a"],
        &["DEL", "k"],
        &["EXEC"],
    ] {
        seen.push(text(control.command(args)));
    }
    std::thread::sleep(Duration::from_millis(50));
    seen.push(blocked_clients(&mut control).to_string());
    // The waiter sees the state after EXEC: the first element is gone.
    for args in [
        &["MULTI"][..],
        &["RPUSH", "k", "a"],
        &["RPUSH", "k", "b"],
        &["LPOP", "k"],
        &["EXEC"],
    ] {
        seen.push(text(control.command(args)));
    }
    seen.push(text(waiter.read_reply()));
    wait_blocked(&mut control, 0);
    seen.push(text(control.command(&["EXISTS", "k"])));
    seen
}

fn ready_order_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut waiter = RawClient::connect(addr);
    let mut seen = Vec::new();
    // Two of its keys get data in one transaction: Redis 7.0 serves the
    // client from the one that got it first, not the first it named.
    for (first, second) in [("k2", "k1"), ("k1", "k2")] {
        send(
            &mut waiter,
            &["BLMPOP", "0", "2", "k1", "k2", "LEFT", "COUNT", "5"],
        );
        wait_blocked(&mut control, 1);
        control.command(&["MULTI"]);
        control.command(&["RPUSH", first, "a", "b"]);
        control.command(&["RPUSH", second, "c"]);
        seen.push(text(control.command(&["EXEC"])));
        seen.push(text(waiter.read_reply()));
        control.command(&["DEL", "k1", "k2"]);
    }
    seen
}

#[test]
fn served_from_the_key_that_got_data_first() {
    let seen = both(ready_order_scenario);
    assert_eq!(seen[1], "*2\r\n$2\r\nk2\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    assert_eq!(seen[3], "*2\r\n$2\r\nk1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n");
}

#[test]
fn a_push_inside_multi_exec_wakes_after_exec() {
    let seen = both(multi_exec_scenario);
    assert_eq!(seen[4], "1", "still blocked after a push undone by DEL");
    assert_eq!(seen[10], "*2\r\n$1\r\nk\r\n$1\r\nb\r\n");
}

fn blmove_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut mover = RawClient::connect(addr);
    let mut popper = RawClient::connect(addr);
    // The mover waits on src; its push to dst serves the popper waiting
    // on dst.
    send(&mut popper, &["BLPOP", "dst", "0"]);
    wait_blocked(&mut control, 1);
    send(&mut mover, &["BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"]);
    wait_blocked(&mut control, 2);
    let mut seen = vec![text(control.command(&["RPUSH", "src", "x", "y"]))];
    seen.push(text(mover.read_reply()));
    seen.push(text(popper.read_reply()));
    wait_blocked(&mut control, 0);
    seen.push(text(control.command(&["LRANGE", "src", "0", "-1"])));
    seen.push(text(control.command(&["EXISTS", "dst"])));
    // BRPOPLPUSH onto a destination of the wrong type: WRONGTYPE once
    // served, and the element stays.
    control.command(&["SET", "str", "v"]);
    send(&mut mover, &["BRPOPLPUSH", "empty", "str", "0"]);
    wait_blocked(&mut control, 1);
    seen.push(text(control.command(&["RPUSH", "empty", "e"])));
    seen.push(text(mover.read_reply()));
    wait_blocked(&mut control, 0);
    seen.push(text(control.command(&["LRANGE", "empty", "0", "-1"])));
    seen
}

#[test]
fn blmove_and_brpoplpush_block_then_move() {
    let seen = both(blmove_scenario);
    assert_eq!(seen[1], "$1\r\ny\r\n");
    assert_eq!(seen[2], "*2\r\n$3\r\ndst\r\n$1\r\ny\r\n");
    assert!(seen[6].starts_with("-WRONGTYPE"));
}

fn blmpop_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut waiter = RawClient::connect(addr);
    send(
        &mut waiter,
        &["BLMPOP", "0", "2", "a", "b", "RIGHT", "COUNT", "2"],
    );
    wait_blocked(&mut control, 1);
    let mut seen = vec![text(control.command(&["RPUSH", "b", "1", "2", "3"]))];
    seen.push(text(waiter.read_reply()));
    // A key of another type among the keys of a blocked client: served
    // from the key that got data (Redis 7.0).
    send(&mut waiter, &["BLPOP", "s", "c", "0"]);
    wait_blocked(&mut control, 1);
    seen.push(text(control.command(&["SET", "s", "v"])));
    seen.push(text(control.command(&["RPUSH", "c", "z"])));
    seen.push(text(waiter.read_reply()));
    // A key that gets data of another type does not serve it.
    send(&mut waiter, &["BLMPOP", "0", "1", "d", "LEFT"]);
    wait_blocked(&mut control, 1);
    seen.push(text(control.command(&["SADD", "d", "m"])));
    seen.push(text(control.command(&["DEL", "d"])));
    seen.push(text(control.command(&["LPUSH", "d", "m"])));
    seen.push(text(waiter.read_reply()));
    seen
}

#[test]
fn blmpop_blocks_then_pops_a_count() {
    let seen = both(blmpop_scenario);
    assert_eq!(seen[1], "*2\r\n$1\r\nb\r\n*2\r\n$1\r\n3\r\n$1\r\n2\r\n");
    assert_eq!(seen[4], "*2\r\n$1\r\nc\r\n$1\r\nz\r\n");
}

fn keyspace_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut waiter = RawClient::connect(addr);
    let mut seen = Vec::new();
    // RENAME onto a waited key.
    send(&mut waiter, &["BLPOP", "target", "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", "staging", "r"]);
    seen.push(text(control.command(&["RENAME", "staging", "target"])));
    seen.push(text(waiter.read_reply()));
    // MOVE into the waiter's database.
    waiter.command(&["SELECT", "1"]);
    send(&mut waiter, &["BLPOP", "moved", "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", "moved", "m"]);
    seen.push(text(control.command(&["MOVE", "moved", "1"])));
    seen.push(text(waiter.read_reply()));
    // COPY into a waited key.
    send(&mut waiter, &["BLPOP", "copied", "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", "original", "c"]);
    seen.push(text(
        control.command(&["COPY", "original", "copied", "DB", "1"]),
    ));
    seen.push(text(waiter.read_reply()));
    // SWAPDB brings the data to the waiter.
    send(&mut waiter, &["BLPOP", "swapped", "0"]);
    wait_blocked(&mut control, 1);
    control.command(&["SELECT", "2"]);
    control.command(&["RPUSH", "swapped", "s"]);
    seen.push(text(control.command(&["SWAPDB", "1", "2"])));
    seen.push(text(waiter.read_reply()));
    seen
}

#[test]
fn rename_move_copy_and_swapdb_wake_blocked_clients() {
    let seen = both(keyspace_scenario);
    assert_eq!(seen[1], "*2\r\n$6\r\ntarget\r\n$1\r\nr\r\n");
    assert_eq!(seen[7], "*2\r\n$7\r\nswapped\r\n$1\r\ns\r\n");
}

fn pipeline_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut waiter = RawClient::connect(addr);
    // The commands after a blocked one wait for it.
    waiter.send(b"PING first\r\nBLPOP k 0\r\nPING second\r\nRPUSH k own\r\n");
    let mut seen = vec![text(waiter.read_reply())];
    wait_blocked(&mut control, 1);
    seen.push(text(control.command(&["LLEN", "k"])));
    seen.push(text(control.command(&["RPUSH", "k", "pushed"])));
    seen.push(text(waiter.read_reply()));
    seen.push(text(waiter.read_reply()));
    seen.push(text(waiter.read_reply()));
    seen.push(text(control.command(&["LRANGE", "k", "0", "-1"])));
    seen
}

fn sorted_set_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut zwaiters: Vec<RawClient> = (0..2).map(|_| RawClient::connect(addr)).collect();
    let mut lwaiter = RawClient::connect(addr);
    let mut seen = Vec::new();
    // Two BZPOPMIN clients and one BLPOP client on the same key: a list
    // push serves the list client only, a ZADD the sorted-set ones, in the
    // order they blocked.
    send(&mut zwaiters[0], &["BZPOPMIN", "k", "0"]);
    wait_blocked(&mut control, 1);
    send(&mut lwaiter, &["BLPOP", "k", "0"]);
    wait_blocked(&mut control, 2);
    send(&mut zwaiters[1], &["BZPOPMAX", "other", "k", "0"]);
    wait_blocked(&mut control, 3);
    seen.push(text(control.command(&["RPUSH", "k", "item"])));
    seen.push(text(lwaiter.read_reply()));
    wait_blocked(&mut control, 2);
    seen.push(text(
        control.command(&["ZADD", "k", "2", "two", "1", "one"]),
    ));
    seen.push(text(zwaiters[0].read_reply()));
    seen.push(text(zwaiters[1].read_reply()));
    wait_blocked(&mut control, 0);
    // BZMPOP woken by a STORE form.
    send(
        &mut zwaiters[0],
        &["BZMPOP", "0", "1", "dest", "MAX", "COUNT", "2"],
    );
    wait_blocked(&mut control, 1);
    control.command(&["ZADD", "src", "1", "a", "2", "b", "3", "c"]);
    seen.push(text(control.command(&["ZUNIONSTORE", "dest", "1", "src"])));
    seen.push(text(zwaiters[0].read_reply()));
    // RESP3: the score is a double.
    zwaiters[1].command(&["HELLO", "3"]);
    send(&mut zwaiters[1], &["BZPOPMIN", "z3", "0"]);
    wait_blocked(&mut control, 1);
    seen.push(text(control.command(&["ZINCRBY", "z3", "1.5", "m"])));
    seen.push(text(zwaiters[1].read_reply()));
    seen.push(text(zwaiters[1].command(&["BZPOPMAX", "z3", "0.01"])));
    seen
}

#[test]
fn sorted_set_blocking_pops_wait_for_zadd() {
    let seen = both(sorted_set_scenario);
    assert_eq!(seen[1], "*2\r\n$1\r\nk\r\n$4\r\nitem\r\n");
    assert_eq!(seen[3], "*3\r\n$1\r\nk\r\n$3\r\none\r\n$1\r\n1\r\n");
    assert_eq!(seen[4], "*3\r\n$1\r\nk\r\n$3\r\ntwo\r\n$1\r\n2\r\n");
    assert_eq!(seen[8], "*3\r\n$2\r\nz3\r\n$1\r\nm\r\n,1.5\r\n");
}

#[test]
fn pipelined_commands_wait_for_the_blocked_one() {
    let seen = both(pipeline_scenario);
    assert_eq!(seen[1], ":0\r\n");
    assert_eq!(seen[4], "$6\r\nsecond\r\n");
}

fn resp3_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut waiter = RawClient::connect(addr);
    waiter.command(&["HELLO", "3"]);
    send(
        &mut waiter,
        &["BLMPOP", "0", "1", "k", "LEFT", "COUNT", "3"],
    );
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", "k", "a", "b"]);
    let mut seen = vec![text(waiter.read_reply())];
    seen.push(text(waiter.command(&["BLPOP", "k", "0.01"])));
    seen.push(text(waiter.command(&["BRPOPLPUSH", "k", "d", "0.01"])));
    seen
}

#[test]
fn resp3_shapes_of_blocking_replies() {
    let seen = both(resp3_scenario);
    assert_eq!(seen[1], "_\r\n");
}

#[test]
fn a_client_that_disconnects_while_blocked_leaves_no_trace() {
    let server = TestServer::start();
    let mut control = server.raw();
    {
        let mut waiter = server.raw();
        send(&mut waiter, &["BLPOP", "k", "other", "0"]);
        wait_blocked(&mut control, 1);
        assert_eq!(server.shared.blocking.waited_keys(), 2);
        // Pipelined commands after it are read, not run.
        send(&mut waiter, &["RPUSH", "k", "never"]);
    }
    wait_blocked(&mut control, 0);
    assert_eq!(server.shared.blocking.waited_keys(), 0);
    // A later push is not swallowed by the departed client.
    assert_eq!(control.command(&["RPUSH", "k", "kept"]), b":1\r\n");
    assert_eq!(
        control.command(&["LRANGE", "k", "0", "-1"]),
        b"*1\r\n$4\r\nkept\r\n"
    );
    // Nor by one that left the line: the element goes to the next client.
    let mut first = server.raw();
    let mut second = server.raw();
    control.command(&["DEL", "k"]);
    send(&mut first, &["BLPOP", "k", "0"]);
    wait_blocked(&mut control, 1);
    send(&mut second, &["BLPOP", "k", "0"]);
    wait_blocked(&mut control, 2);
    drop(first);
    wait_blocked(&mut control, 1);
    control.command(&["RPUSH", "k", "v"]);
    assert_eq!(second.read_reply(), b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
    wait_blocked(&mut control, 0);
    assert_eq!(server.shared.blocking.waited_keys(), 0);
}

#[test]
fn client_kill_and_shutdown_end_blocked_clients() {
    let server = TestServer::start();
    let mut control = server.raw();
    let mut waiter = server.raw();
    let id = text(waiter.command(&["CLIENT", "ID"]));
    let id = id.trim_start_matches(':').trim().to_string();
    send(&mut waiter, &["BLPOP", "k", "0"]);
    wait_blocked(&mut control, 1);
    let list = text(control.command(&["CLIENT", "LIST"]));
    let line = list
        .lines()
        .find(|l| l.contains(&format!("id={id} ")))
        .expect("the waiter in CLIENT LIST");
    assert!(
        line.contains(" flags=b ") && line.contains(" cmd=blpop "),
        "{line}"
    );
    let info = text(control.command(&["INFO", "clients"]));
    assert!(info.contains("clients_in_timeout_table:0"), "{info}");
    assert_eq!(control.command(&["CLIENT", "KILL", "ID", &id]), b":1\r\n");
    assert!(
        waiter.is_closed(),
        "a killed blocked client is disconnected"
    );
    wait_blocked(&mut control, 0);
    assert_eq!(server.shared.blocking.waited_keys(), 0);
    assert_eq!(control.command(&["RPUSH", "k", "v"]), b":1\r\n");
    assert_eq!(control.command(&["LLEN", "k"]), b":1\r\n");

    let mut timed = server.raw();
    send(&mut timed, &["BLPOP", "q", "100"]);
    wait_blocked(&mut control, 1);
    let info = text(control.command(&["INFO", "clients"]));
    assert!(info.contains("clients_in_timeout_table:1"), "{info}");
    server.shared.request_shutdown();
    assert!(timed.is_closed(), "shutdown disconnects blocked clients");
    assert_eq!(server.shared.blocking.blocked_clients(), 0);
}

#[test]
fn many_producers_and_blocked_consumers_lose_nothing() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 500;
    const CONSUMERS: usize = 9;
    let server = TestServer::start();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let mut con = server.client();
            std::thread::spawn(move || -> Vec<String> {
                let mut got = Vec::new();
                loop {
                    // Three shapes of blocking pop; a stalled wakeup would
                    // show as a timeout (nil) long before the test ends.
                    let items: Vec<String> = match c % 3 {
                        0 => {
                            let r: Option<(String, String)> =
                                redis::cmd("BLPOP").arg("q").arg(5).query(&mut con).unwrap();
                            r.map(|(_, v)| vec![v]).expect("BLPOP stalled")
                        }
                        1 => {
                            let r: Option<(String, Vec<String>)> = redis::cmd("BLMPOP")
                                .arg(5)
                                .arg(1)
                                .arg("q")
                                .arg("RIGHT")
                                .arg("COUNT")
                                .arg(3)
                                .query(&mut con)
                                .unwrap();
                            r.map(|(_, v)| v).expect("BLMPOP stalled")
                        }
                        _ => {
                            let r: Option<String> = redis::cmd("BRPOPLPUSH")
                                .arg("q")
                                .arg("done")
                                .arg(5)
                                .query(&mut con)
                                .unwrap();
                            vec![r.expect("BRPOPLPUSH stalled")]
                        }
                    };
                    let stop = items.iter().any(|i| i == "stop");
                    got.extend(items.into_iter().filter(|i| i != "stop"));
                    if stop {
                        return got;
                    }
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut con = server.client();
            std::thread::spawn(move || {
                for i in 0..PER_PRODUCER {
                    let _: i64 = con.lpush("q", format!("{p}-{i}")).unwrap();
                }
            })
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    // One stop per consumer, each pushed once the queue has drained (a
    // BLMPOP could otherwise take two at once).
    let mut control = server.client();
    let drained = |control: &mut redis::Connection| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while control.llen::<_, usize>("q").unwrap() > 0 {
            assert!(Instant::now() < deadline, "the queue never drained");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    for _ in 0..CONSUMERS {
        drained(&mut control);
        let _: i64 = control.rpush("q", "stop").unwrap();
    }
    drained(&mut control);
    let mut all: Vec<String> = Vec::new();
    for consumer in consumers {
        all.extend(consumer.join().unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "an element was served twice");
    assert_eq!(total, PRODUCERS * PER_PRODUCER, "an element was lost");
    assert_eq!(control.llen::<_, usize>("q").unwrap(), 0);
    assert_eq!(server.shared.blocking.blocked_clients(), 0);
    assert_eq!(server.shared.blocking.waited_keys(), 0);
}

/// Wakeup latencies at `addr`: from sending LPUSH on one connection to
/// the blocked BLPOP's reply on another, sorted.
fn wakeup_latencies(addr: SocketAddr, rounds: usize) -> Vec<Duration> {
    let mut control = RawClient::connect(addr);
    let mut pusher = RawClient::connect(addr);
    let mut waiter = RawClient::connect(addr);
    let mut samples = Vec::new();
    for i in 0..rounds {
        let element = format!("e{i}");
        send(&mut waiter, &["BLPOP", "latency", "0"]);
        wait_blocked(&mut control, 1);
        let started = Instant::now();
        send(&mut pusher, &["LPUSH", "latency", &element]);
        let reply = waiter.read_reply();
        samples.push(started.elapsed());
        assert_eq!(pusher.read_reply(), b":1\r\n");
        assert!(text(reply).ends_with(&format!("{element}\r\n")));
    }
    samples.sort();
    samples
}

#[test]
fn wakeup_latency() {
    let server = TestServer::start();
    let ours = wakeup_latencies(server.addr, 50);
    let redis = RedisServer::start();
    let theirs = wakeup_latencies(redis.addr, 50);
    let (median, worst) = (ours[ours.len() / 2], ours[ours.len() - 1]);
    println!(
        "BLPOP wakeup latency over 50 pushes: Larder median {median:?}, worst {worst:?}; \
         redis-server median {:?}, worst {:?}",
        theirs[theirs.len() / 2],
        theirs[theirs.len() - 1]
    );
    assert!(worst < Duration::from_millis(50), "worst wakeup {worst:?}");
}

#[test]
fn in_process_callers_get_the_timeout_reply_at_once() {
    use larder::commands::{execute, Session};
    use larder::protocol::ReplyBuf;
    let shared = larder::shared::Shared::new(larder::Config::default());
    let mut session = Session::new(shared.clients.register(None, None));
    let mut out = ReplyBuf::new();
    execute(&shared, &mut session, &mut out, &[b"BLPOP", b"k", b"0"]);
    execute(
        &shared,
        &mut session,
        &mut out,
        &[b"BLMOVE", b"k", b"d", b"LEFT", b"LEFT", b"0"],
    );
    assert_eq!(&out.buffer()[..], b"*-1\r\n$-1\r\n");
    assert!(session.block.is_none());
    assert_eq!(shared.blocking.blocked_clients(), 0);
}

// ---------------------------------------------------------------- model test

/// A reply as RESP2 bytes, built from the model.
#[derive(Debug, Clone)]
enum Reply {
    Nil,
    NilArray,
    Int(i64),
    Bulk(String),
    Array(Vec<Reply>),
    Ok,
    Error(&'static str),
}

impl Reply {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Reply::Bulk(s) => out.extend_from_slice(format!("${}\r\n{s}\r\n", s.len()).as_bytes()),
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for item in items {
                    item.encode(out);
                }
            }
            Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
            Reply::Error(message) => out.extend_from_slice(format!("-{message}\r\n").as_bytes()),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    fn bulks(items: impl IntoIterator<Item = String>) -> Reply {
        Reply::Array(items.into_iter().map(Reply::Bulk).collect())
    }
}

const KEYS: [&str; 2] = ["a", "b"];
const ELEMENTS: [&str; 4] = ["x", "y", "z", "1"];

#[derive(Debug, Clone)]
enum Op {
    Push {
        key: usize,
        left: bool,
        only_existing: bool,
        elements: Vec<usize>,
    },
    Pop {
        key: usize,
        left: bool,
        count: Option<i64>,
    },
    Len(usize),
    Range(usize, i64, i64),
    Index(usize, i64),
    Set(usize, i64, usize),
    Insert {
        key: usize,
        after: bool,
        pivot: usize,
        element: usize,
    },
    Remove(usize, i64, usize),
    Trim(usize, i64, i64),
    Pos {
        key: usize,
        element: usize,
        rank: i64,
        count: Option<i64>,
        maxlen: i64,
    },
    Move {
        from: usize,
        to: usize,
        from_left: bool,
        to_left: bool,
    },
    MultiPop {
        left: bool,
        count: i64,
    },
    BlockingPop {
        left: bool,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let element = 0..ELEMENTS.len();
    let index = -6i64..6;
    prop_oneof![
        4 => (key.clone(), any::<bool>(), prop::bool::weighted(0.2), prop::collection::vec(element.clone(), 1..4))
            .prop_map(|(key, left, only_existing, elements)| Op::Push { key, left, only_existing, elements }),
        2 => (key.clone(), any::<bool>(), prop::option::of(0i64..4))
            .prop_map(|(key, left, count)| Op::Pop { key, left, count }),
        1 => key.clone().prop_map(Op::Len),
        2 => (key.clone(), index.clone(), index.clone()).prop_map(|(k, s, e)| Op::Range(k, s, e)),
        1 => (key.clone(), index.clone()).prop_map(|(k, i)| Op::Index(k, i)),
        1 => (key.clone(), index.clone(), element.clone()).prop_map(|(k, i, e)| Op::Set(k, i, e)),
        1 => (key.clone(), any::<bool>(), element.clone(), element.clone())
            .prop_map(|(key, after, pivot, element)| Op::Insert { key, after, pivot, element }),
        1 => (key.clone(), -3i64..3, element.clone()).prop_map(|(k, c, e)| Op::Remove(k, c, e)),
        1 => (key.clone(), index.clone(), index.clone()).prop_map(|(k, s, e)| Op::Trim(k, s, e)),
        2 => (key.clone(), element.clone(), prop_oneof![1i64..4, -3i64..0], prop::option::of(0i64..3), 0i64..5)
            .prop_map(|(key, element, rank, count, maxlen)| Op::Pos { key, element, rank, count, maxlen }),
        2 => (key.clone(), key.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(from, to, from_left, to_left)| Op::Move { from, to, from_left, to_left }),
        1 => (any::<bool>(), 1i64..4).prop_map(|(left, count)| Op::MultiPop { left, count }),
        1 => any::<bool>().prop_map(|left| Op::BlockingPop { left }),
    ]
}

type Model = HashMap<usize, VecDeque<String>>;

fn side(left: bool) -> &'static str {
    if left {
        "LEFT"
    } else {
        "RIGHT"
    }
}

/// Redis's index clamping for LRANGE/LTRIM, on the model's length.
fn clamp(len: usize, start: i64, end: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let end = if end < 0 { end + len } else { end.min(len - 1) };
    if start > end || start >= len {
        None
    } else {
        Some((start as usize, end as usize))
    }
}

fn resolve_index(len: usize, index: i64) -> Option<usize> {
    let index = if index < 0 { index + len as i64 } else { index };
    (0..len as i64).contains(&index).then_some(index as usize)
}

fn pop_model(list: &mut VecDeque<String>, left: bool) -> Option<String> {
    if left {
        list.pop_front()
    } else {
        list.pop_back()
    }
}

/// Applies `op` to the model; returns the command and the expected reply.
fn apply(model: &mut Model, op: &Op) -> (Vec<String>, Reply) {
    let s = |x: &str| x.to_string();
    let (args, reply) = match op {
        Op::Push {
            key,
            left,
            only_existing,
            elements,
        } => {
            let name = match (left, only_existing) {
                (true, false) => "LPUSH",
                (false, false) => "RPUSH",
                (true, true) => "LPUSHX",
                (false, true) => "RPUSHX",
            };
            let mut args = vec![s(name), s(KEYS[*key])];
            args.extend(elements.iter().map(|&e| s(ELEMENTS[e])));
            let reply = if *only_existing && !model.contains_key(key) {
                Reply::Int(0)
            } else {
                let list = model.entry(*key).or_default();
                for &e in elements {
                    if *left {
                        list.push_front(s(ELEMENTS[e]));
                    } else {
                        list.push_back(s(ELEMENTS[e]));
                    }
                }
                Reply::Int(list.len() as i64)
            };
            (args, reply)
        }
        Op::Pop { key, left, count } => {
            let mut args = vec![s(if *left { "LPOP" } else { "RPOP" }), s(KEYS[*key])];
            let reply = match (model.get_mut(key), count) {
                (None, None) => Reply::Nil,
                (None, Some(_)) => Reply::NilArray,
                (Some(list), None) => Reply::Bulk(pop_model(list, *left).unwrap_or_default()),
                (Some(list), Some(n)) => {
                    let popped: Vec<String> =
                        (0..*n).map_while(|_| pop_model(list, *left)).collect();
                    Reply::bulks(popped)
                }
            };
            if let Some(n) = count {
                args.push(n.to_string());
            }
            (args, reply)
        }
        Op::Len(key) => (
            vec![s("LLEN"), s(KEYS[*key])],
            Reply::Int(model.get(key).map_or(0, VecDeque::len) as i64),
        ),
        Op::Range(key, start, end) => {
            let list = model.get(key).cloned().unwrap_or_default();
            let items = match clamp(list.len(), *start, *end) {
                Some((a, b)) => list.range(a..=b).cloned().collect(),
                None => Vec::new(),
            };
            (
                vec![
                    s("LRANGE"),
                    s(KEYS[*key]),
                    start.to_string(),
                    end.to_string(),
                ],
                Reply::bulks(items),
            )
        }
        Op::Index(key, index) => {
            let reply = model
                .get(key)
                .and_then(|l| resolve_index(l.len(), *index).map(|i| Reply::Bulk(l[i].clone())))
                .unwrap_or(Reply::Nil);
            (vec![s("LINDEX"), s(KEYS[*key]), index.to_string()], reply)
        }
        Op::Set(key, index, element) => {
            let reply = match model.get_mut(key) {
                None => Reply::Error("ERR no such key"),
                Some(list) => match resolve_index(list.len(), *index) {
                    None => Reply::Error("ERR index out of range"),
                    Some(i) => {
                        list[i] = s(ELEMENTS[*element]);
                        Reply::Ok
                    }
                },
            };
            (
                vec![
                    s("LSET"),
                    s(KEYS[*key]),
                    index.to_string(),
                    s(ELEMENTS[*element]),
                ],
                reply,
            )
        }
        Op::Insert {
            key,
            after,
            pivot,
            element,
        } => {
            let reply = match model.get_mut(key) {
                None => Reply::Int(0),
                Some(list) => match list.iter().position(|e| e == ELEMENTS[*pivot]) {
                    None => Reply::Int(-1),
                    Some(at) => {
                        list.insert(at + *after as usize, s(ELEMENTS[*element]));
                        Reply::Int(list.len() as i64)
                    }
                },
            };
            let args = vec![
                s("LINSERT"),
                s(KEYS[*key]),
                s(if *after { "AFTER" } else { "BEFORE" }),
                s(ELEMENTS[*pivot]),
                s(ELEMENTS[*element]),
            ];
            (args, reply)
        }
        Op::Remove(key, count, element) => {
            let target = ELEMENTS[*element];
            let removed = match model.get_mut(key) {
                None => 0,
                Some(list) => {
                    let limit = if *count == 0 {
                        usize::MAX
                    } else {
                        count.unsigned_abs() as usize
                    };
                    let mut order: Vec<usize> = (0..list.len()).collect();
                    if *count < 0 {
                        order.reverse();
                    }
                    let doomed: Vec<usize> = order
                        .into_iter()
                        .filter(|&i| list[i] == target)
                        .take(limit)
                        .collect();
                    let kept: VecDeque<String> = list
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !doomed.contains(i))
                        .map(|(_, e)| e.clone())
                        .collect();
                    *list = kept;
                    doomed.len()
                }
            };
            (
                vec![s("LREM"), s(KEYS[*key]), count.to_string(), s(target)],
                Reply::Int(removed as i64),
            )
        }
        Op::Trim(key, start, end) => {
            if let Some(list) = model.get_mut(key) {
                *list = match clamp(list.len(), *start, *end) {
                    Some((a, b)) => list.range(a..=b).cloned().collect(),
                    None => VecDeque::new(),
                };
            }
            (
                vec![
                    s("LTRIM"),
                    s(KEYS[*key]),
                    start.to_string(),
                    end.to_string(),
                ],
                Reply::Ok,
            )
        }
        Op::Pos {
            key,
            element,
            rank,
            count,
            maxlen,
        } => {
            let list = model.get(key).cloned().unwrap_or_default();
            let len = list.len();
            let scanned: Vec<usize> = if *rank > 0 {
                (0..len).collect()
            } else {
                (0..len).rev().collect()
            };
            let limit = if *maxlen == 0 { len } else { *maxlen as usize };
            let matches: Vec<i64> = scanned
                .into_iter()
                .take(limit)
                .filter(|&i| list[i] == ELEMENTS[*element])
                .skip(rank.unsigned_abs() as usize - 1)
                .map(|i| i as i64)
                .collect();
            let reply = match count {
                None => matches.first().map_or(Reply::Nil, |&i| Reply::Int(i)),
                Some(0) => Reply::Array(matches.into_iter().map(Reply::Int).collect()),
                Some(n) => Reply::Array(
                    matches
                        .into_iter()
                        .take(*n as usize)
                        .map(Reply::Int)
                        .collect(),
                ),
            };
            let mut args = vec![
                s("LPOS"),
                s(KEYS[*key]),
                s(ELEMENTS[*element]),
                s("RANK"),
                rank.to_string(),
            ];
            if let Some(n) = count {
                args.extend([s("COUNT"), n.to_string()]);
            }
            args.extend([s("MAXLEN"), maxlen.to_string()]);
            (args, reply)
        }
        Op::Move {
            from,
            to,
            from_left,
            to_left,
        } => {
            let popped = model.get_mut(from).and_then(|l| pop_model(l, *from_left));
            let reply = match popped {
                None => Reply::Nil,
                Some(element) => {
                    let list = model.entry(*to).or_default();
                    if *to_left {
                        list.push_front(element.clone());
                    } else {
                        list.push_back(element.clone());
                    }
                    Reply::Bulk(element)
                }
            };
            let args = vec![
                s("LMOVE"),
                s(KEYS[*from]),
                s(KEYS[*to]),
                s(side(*from_left)),
                s(side(*to_left)),
            ];
            (args, reply)
        }
        Op::MultiPop { left, count } => {
            let reply = match (0..KEYS.len()).find(|k| model.get(k).is_some_and(|l| !l.is_empty()))
            {
                None => Reply::NilArray,
                Some(k) => {
                    let list = model.get_mut(&k).expect("found");
                    let popped: Vec<String> =
                        (0..*count).map_while(|_| pop_model(list, *left)).collect();
                    Reply::Array(vec![Reply::Bulk(s(KEYS[k])), Reply::bulks(popped)])
                }
            };
            let args = vec![
                s("LMPOP"),
                s("2"),
                s("a"),
                s("b"),
                s(side(*left)),
                s("COUNT"),
                count.to_string(),
            ];
            (args, reply)
        }
        Op::BlockingPop { left } => {
            let reply = match (0..KEYS.len()).find(|k| model.get(k).is_some_and(|l| !l.is_empty()))
            {
                None => Reply::NilArray,
                Some(k) => {
                    let element =
                        pop_model(model.get_mut(&k).expect("found"), *left).unwrap_or_default();
                    Reply::Array(vec![Reply::Bulk(s(KEYS[k])), Reply::Bulk(element)])
                }
            };
            let args = vec![
                s(if *left { "BLPOP" } else { "BRPOP" }),
                s("a"),
                s("b"),
                s("0.001"),
            ];
            (args, reply)
        }
    };
    // Empty lists do not exist.
    model.retain(|_, list| !list.is_empty());
    (args, reply)
}

fn run_model(client: &mut RawClient, ops: &[Op]) -> std::result::Result<(), TestCaseError> {
    client.command(&["FLUSHALL"]);
    let mut model = Model::new();
    for op in ops {
        let (args, expected) = apply(&mut model, op);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let got = client.command(&args);
        let expected = expected.bytes();
        prop_assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{:?} ({:?})",
            args,
            op
        );
    }
    for (k, key) in KEYS.iter().enumerate() {
        let got = client.command(&["LRANGE", key, "0", "-1"]);
        let expected = Reply::bulks(model.get(&k).cloned().unwrap_or_default());
        prop_assert_eq!(got, expected.bytes());
        let exists = client.command(&["EXISTS", key]);
        prop_assert_eq!(exists, Reply::Int(model.contains_key(&k) as i64).bytes());
    }
    Ok(())
}

#[test]
fn model_test_against_vecdeque() {
    let server = TestServer::start();
    let client = std::cell::RefCell::new(server.raw());
    let config = ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in prop::collection::vec(op_strategy(), 1..40))| {
        run_model(&mut client.borrow_mut(), &ops)?;
    });
}

fn client_unblock_scenario(addr: SocketAddr) -> Vec<String> {
    let mut control = RawClient::connect(addr);
    let mut waiter = RawClient::connect(addr);
    let id = text(waiter.command(&["CLIENT", "ID"]));
    let id = id.trim_start_matches(':').trim_end().to_string();
    let mut seen = Vec::new();
    send(&mut waiter, &["BLPOP", "k", "0"]);
    wait_blocked(&mut control, 1);
    seen.push(text(control.command(&["CLIENT", "UNBLOCK", &id])));
    seen.push(text(waiter.read_reply()));
    send(&mut waiter, &["BZPOPMIN", "z", "0"]);
    wait_blocked(&mut control, 1);
    seen.push(text(control.command(&["CLIENT", "UNBLOCK", &id, "error"])));
    seen.push(text(waiter.read_reply()));
    wait_blocked(&mut control, 0);
    // Not blocked any more, or no such client.
    seen.push(text(control.command(&["CLIENT", "UNBLOCK", &id])));
    seen.push(text(control.command(&["CLIENT", "UNBLOCK", "999999"])));
    seen.push(text(control.command(&["CLIENT", "UNBLOCK", "-1"])));
    seen.push(text(control.command(&["CLIENT", "UNBLOCK", "x"])));
    seen.push(text(control.command(&["CLIENT", "UNBLOCK", "x", "later"])));
    seen.push(text(
        control.command(&["CLIENT", "UNBLOCK", &id, "timeout", "x"]),
    ));
    // The next block is a fresh one: served by a push, not ended by the
    // earlier requests.
    send(&mut waiter, &["BLPOP", "k", "0"]);
    wait_blocked(&mut control, 1);
    seen.push(text(control.command(&["RPUSH", "k", "v"])));
    seen.push(text(waiter.read_reply()));
    seen
}

#[test]
fn client_unblock_ends_a_blocked_command_as_redis_does() {
    let seen = both(client_unblock_scenario);
    assert_eq!(seen[0], ":1\r\n");
    assert_eq!(seen[1], "*-1\r\n");
    assert_eq!(
        seen[3],
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    assert_eq!(seen[11], "*2\r\n$1\r\nk\r\n$1\r\nv\r\n");
}
