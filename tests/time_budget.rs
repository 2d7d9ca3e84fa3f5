//! Time budgets: for every command family, a matrix of adversarial
//! arguments (patterns that make a backtracking matcher explode, huge
//! counts, offsets and ranges) runs from two clients at once, as two
//! attackers would, while a probe client sends PING and GET. The probe's
//! worst round trip must stay under [`PROMPT`] (a debug build on 2 shared
//! cores): no command may hold a shard lock or both runtime workers for
//! long. Data sizes are 10^4..10^5 so that every case stays short.
//!
//! Also the lazyfree contract (Redis's): UNLINK, DEL under
//! `lazyfree-lazy-user-del`, FLUSHALL/FLUSHDB ASYNC or under
//! `lazyfree-lazy-user-flush` free in the background and count in INFO's
//! `lazyfree_pending_objects` and `lazyfreed_objects`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{encode_command, RawClient, TestServer};

/// The worst round trip the probe may see.
const PROMPT: Duration = Duration::from_secs(1);

/// The tests of this file run one at a time: each keeps two attackers
/// busy, and the 2 cores must not be shared with another test's.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Elements in each big collection, keys in the keyspace.
const ELEMENTS: usize = 20_000;

/// A client sending PING and GET (the GET takes a shard lock, so a
/// command holding one for long shows too), recording its slowest reply.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, Duration)>,
}

impl Probe {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut client = RawClient::connect(addr);
        assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
        let thread = std::thread::spawn(move || {
            let (mut count, mut slowest) = (0usize, Duration::ZERO);
            loop {
                let started = Instant::now();
                assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
                let key = format!("a{}", count % ELEMENTS);
                let reply = client.command(&["GET", &key]);
                assert!(reply.starts_with(b"$"), "GET: {reply:?}");
                slowest = slowest.max(started.elapsed());
                count += 1;
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (count, slowest)
        });
        Probe { stop, thread }
    }

    /// Stops the probe; its slowest round trip.
    fn finish(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        let (count, slowest) = self.thread.join().expect("probe thread");
        assert!(count > 0, "the probe got no answer at all");
        slowest
    }
}

/// Sends every command in one write and reads every reply.
fn pipeline(client: &mut RawClient, commands: &[Vec<String>]) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    for command in commands {
        let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
        bytes.extend(encode_command(&args));
    }
    client.send(&bytes);
    commands.iter().map(|_| client.read_reply()).collect()
}

/// `verb key` followed by `per_command` generated arguments at a time,
/// until `total` have been sent.
fn fill(
    client: &mut RawClient,
    verb: &str,
    key: Option<&str>,
    total: usize,
    args: impl Fn(usize) -> Vec<String>,
) {
    let per_command = 1000;
    let commands: Vec<Vec<String>> = (0..total)
        .step_by(per_command)
        .map(|start| {
            let mut command = vec![verb.to_string()];
            command.extend(key.map(str::to_string));
            for i in start..(start + per_command).min(total) {
                command.extend(args(i));
            }
            command
        })
        .collect();
    for reply in pipeline(client, &commands) {
        assert!(!reply.starts_with(b"-"), "{verb}: {reply:?}");
    }
}

/// A run of 40 `a`s followed by `i`: the shape that makes
/// `*a*a*a*a*a*a*a*a*a*b` backtrack.
fn a_name(i: usize) -> String {
    format!("{}{i}", "a".repeat(40))
}

/// The data every case runs against: `ELEMENTS` string keys (named `a<i>`
/// for the probe's GETs, and `aaa…a<i>` for the patterns), and one big
/// value of each type.
fn load(server: &TestServer) {
    let started = Instant::now();
    let mut client = server.raw();
    fill(&mut client, "MSET", None, ELEMENTS, |i| {
        vec![format!("a{i}"), "v".into()]
    });
    fill(&mut client, "MSET", None, ELEMENTS, |i| {
        vec![a_name(i), "v".into()]
    });
    fill(&mut client, "HSET", Some("hash"), ELEMENTS, |i| {
        vec![a_name(i), "v".into()]
    });
    fill(&mut client, "RPUSH", Some("list"), ELEMENTS, |i| {
        vec![a_name(i)]
    });
    fill(&mut client, "SADD", Some("set"), ELEMENTS, |i| {
        vec![a_name(i)]
    });
    fill(&mut client, "SADD", Some("set2"), ELEMENTS, |i| {
        vec![a_name(i * 2)]
    });
    fill(&mut client, "ZADD", Some("zset"), ELEMENTS, |i| {
        vec![i.to_string(), a_name(i)]
    });
    for command in [
        vec!["SETBIT", "bits", "134217727", "1"],
        vec!["SET", "s1", &"ab".repeat(1000)],
        vec!["SET", "s2", &"ba".repeat(1000)],
    ] {
        let reply = client.command(&command);
        assert!(!reply.starts_with(b"-"), "{command:?}: {reply:?}");
    }
    eprintln!("load took {:?}", started.elapsed());
}

/// What a case's reply must look like.
#[derive(Clone, Copy)]
enum Expect {
    /// Anything but an error.
    Reply,
    /// An error whose text contains this.
    Error(&'static str),
}

/// Reads one reply of any size without keeping it (the shared RawClient
/// re-decodes its whole buffer per read, too slow for multi-MB replies in
/// a debug build); returns its first line.
fn skip_reply(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read a reply");
    assert!(line.ends_with("\r\n"), "connection closed: {line:?}");
    let line = line.trim_end().to_string();
    let count = || -> i64 { line[1..].parse().expect("a length") };
    match line.as_bytes().first() {
        Some(b'$' | b'=' | b'!') if count() >= 0 => {
            let mut rest = (&mut *reader).take(count() as u64 + 2);
            std::io::copy(&mut rest, &mut std::io::sink()).expect("read a bulk");
        }
        Some(b'*' | b'~' | b'>') => (0..count().max(0)).for_each(|_| {
            skip_reply(reader);
        }),
        Some(b'%' | b'|') => (0..count().max(0) * 2).for_each(|_| {
            skip_reply(reader);
        }),
        _ => {}
    }
    line
}

/// Runs `command` from two clients at once under the probe; returns the
/// probe's slowest round trip.
fn attack(server: &TestServer, command: &[&str], expect: Expect) -> Duration {
    let probe = Probe::start(server.addr);
    std::thread::sleep(Duration::from_millis(10));
    let request = {
        let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
        encode_command(&args)
    };
    let attackers: Vec<JoinHandle<String>> = (0..2)
        .map(|_| {
            let stream = TcpStream::connect(server.addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let request = request.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                (&stream).write_all(&request).expect("send");
                skip_reply(&mut reader)
            })
        })
        .collect();
    for attacker in attackers {
        let first_line = attacker.join().expect("attacker");
        match expect {
            Expect::Reply => assert!(!first_line.starts_with('-'), "{command:?}: {first_line}"),
            Expect::Error(part) => {
                assert!(
                    first_line.starts_with('-'),
                    "{command:?} must fail: {first_line}"
                );
                assert!(first_line.contains(part), "{command:?}: {first_line}");
            }
        }
    }
    probe.finish()
}

/// Runs every case; fails listing those whose probe waited too long.
fn run_cases(server: &TestServer, cases: &[(Vec<&str>, Expect)]) {
    let mut slow = Vec::new();
    for (command, expect) in cases {
        let started = Instant::now();
        let slowest = attack(server, command, *expect);
        eprintln!(
            "{:?} took {:?}, probe {slowest:?}",
            &command
                .iter()
                .map(|a| &a[..a.len().min(30)])
                .collect::<Vec<_>>(),
            started.elapsed()
        );
        if slowest >= PROMPT {
            slow.push(format!("{command:?}: {slowest:?}"));
        }
    }
    assert!(
        slow.is_empty(),
        "the probe waited too long:\n{}",
        slow.join("\n")
    );
}

/// Patterns that take exponential time to backtrack.
fn nasty_patterns() -> Vec<String> {
    vec![
        "*a*a*a*a*a*a*a*a*a*b".into(),
        "*?*?*?*?*?*?*?*?*?*?*?*?*!".into(),
        "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*[b-z]".into(),
        format!("{}b", "*a".repeat(2000)),
        format!("{}b", "*[^b]".repeat(500)),
    ]
}

#[test]
fn glob_patterns_are_polynomial_everywhere() {
    let _serial = serial();
    let server = TestServer::start();
    load(&server);
    let patterns = nasty_patterns();
    let mut cases: Vec<(Vec<&str>, Expect)> = Vec::new();
    for pattern in &patterns {
        let p = pattern.as_str();
        cases.push((vec!["KEYS", p], Expect::Reply));
        cases.push((
            vec!["SCAN", "0", "MATCH", p, "COUNT", "9223372036854775807"],
            Expect::Reply,
        ));
        cases.push((
            vec![
                "SCAN", "0", "MATCH", p, "COUNT", "1000000", "TYPE", "string",
            ],
            Expect::Reply,
        ));
        cases.push((
            vec!["HSCAN", "hash", "0", "MATCH", p, "COUNT", "1000000"],
            Expect::Reply,
        ));
        cases.push((
            vec!["SSCAN", "set", "0", "MATCH", p, "COUNT", "1000000"],
            Expect::Reply,
        ));
        cases.push((
            vec!["ZSCAN", "zset", "0", "MATCH", p, "COUNT", "1000000"],
            Expect::Reply,
        ));
        cases.push((vec!["CONFIG", "GET", p], Expect::Reply));
        cases.push((
            vec!["COMMAND", "LIST", "FILTERBY", "PATTERN", p],
            Expect::Reply,
        ));
    }
    run_cases(&server, &cases);
    // The patterns must still mean what Redis says.
    let mut client = server.raw();
    assert_eq!(client.command(&["KEYS", "*a*a*a*a*a*a*a*a*a*b"]), b"*0\r\n");
    assert_eq!(
        client.command(&["KEYS", &format!("{}12345", "*a".repeat(30))]),
        format!("*1\r\n$45\r\n{}\r\n", a_name(12345)).into_bytes()
    );
}

#[test]
fn strings_and_bitmaps_within_budget() {
    let _serial = serial();
    let server = TestServer::start();
    load(&server);
    let cases: Vec<(Vec<&str>, Expect)> = vec![
        (vec!["SETRANGE", "far", "33554432", "x"], Expect::Reply),
        (vec!["SETBIT", "farbit", "268435455", "1"], Expect::Reply),
        (
            vec!["SETRANGE", "far", "536870912", "x"],
            Expect::Error("maximum allowed size"),
        ),
        (
            vec!["SETBIT", "farbit", "4294967296", "1"],
            Expect::Error("bit offset is not an integer or out of range"),
        ),
        (vec!["BITCOUNT", "bits", "0", "-1"], Expect::Reply),
        (vec!["BITCOUNT", "bits", "0", "-1", "BIT"], Expect::Reply),
        (
            vec![
                "BITCOUNT",
                "bits",
                "-9223372036854775808",
                "9223372036854775807",
            ],
            Expect::Reply,
        ),
        (vec!["BITPOS", "bits", "1"], Expect::Reply),
        (
            vec!["BITPOS", "bits", "1", "0", "9223372036854775807", "BIT"],
            Expect::Reply,
        ),
        (vec!["BITPOS", "bits", "0", "-1", "-1"], Expect::Reply),
        (
            vec!["GETRANGE", "bits", "9223372036854775807", "-1"],
            Expect::Reply,
        ),
        (
            vec!["GETRANGE", "bits", "-9223372036854775808", "100"],
            Expect::Reply,
        ),
        (vec!["STRLEN", "bits"], Expect::Reply),
        (
            vec![
                "BITFIELD",
                "bits",
                "GET",
                "u8",
                "1073741816",
                "INCRBY",
                "i64",
                "0",
                "1",
            ],
            Expect::Reply,
        ),
        (vec!["LCS", "s1", "s2", "LEN"], Expect::Reply),
    ];
    run_cases(&server, &cases);
}

#[test]
fn keyspace_within_budget() {
    let _serial = serial();
    let server = TestServer::start();
    load(&server);
    let cases: Vec<(Vec<&str>, Expect)> = vec![
        (vec!["KEYS", "*"], Expect::Reply),
        (
            vec!["SCAN", "0", "COUNT", "9223372036854775807"],
            Expect::Reply,
        ),
        (vec!["SCAN", "18446744073709551615"], Expect::Reply),
        (vec!["RANDOMKEY"], Expect::Reply),
        (vec!["DBSIZE"], Expect::Reply),
        (
            vec!["EXPIRE", "a1", "9223372036854775807"],
            Expect::Error("invalid expire time"),
        ),
        (vec!["SWAPDB", "0", "1"], Expect::Reply),
        (vec!["COPY", "set", "setcopy", "DB", "2"], Expect::Reply),
        (vec!["UNLINK", "setcopy"], Expect::Reply),
        (vec!["DEL", "hash", "list", "zset"], Expect::Reply),
        (vec!["FLUSHDB", "ASYNC"], Expect::Reply),
        (vec!["FLUSHALL", "SYNC"], Expect::Reply),
    ];
    run_cases(&server, &cases);
}

#[test]
fn hashes_within_budget() {
    let _serial = serial();
    let server = TestServer::start();
    load(&server);
    let cases: Vec<(Vec<&str>, Expect)> = vec![
        (vec!["HGETALL", "hash"], Expect::Reply),
        (vec!["HKEYS", "hash"], Expect::Reply),
        (vec!["HRANDFIELD", "hash", "-100000"], Expect::Reply),
        (
            vec!["HRANDFIELD", "hash", "100000", "WITHVALUES"],
            Expect::Reply,
        ),
        (
            vec!["HRANDFIELD", "hash", "-9223372036854775808"],
            Expect::Error("out of range"),
        ),
        (
            vec!["HSCAN", "hash", "0", "COUNT", "9223372036854775807"],
            Expect::Reply,
        ),
        (vec!["HLEN", "hash"], Expect::Reply),
    ];
    run_cases(&server, &cases);
}

#[test]
fn lists_within_budget() {
    let _serial = serial();
    let server = TestServer::start();
    load(&server);
    let cases: Vec<(Vec<&str>, Expect)> = vec![
        (vec!["LRANGE", "list", "0", "-1"], Expect::Reply),
        (
            vec![
                "LRANGE",
                "list",
                "-9223372036854775808",
                "9223372036854775807",
            ],
            Expect::Reply,
        ),
        (
            vec!["LPOS", "list", "nothere", "MAXLEN", "0"],
            Expect::Reply,
        ),
        (
            vec!["LPOS", "list", "nothere", "RANK", "-9223372036854775807"],
            Expect::Reply,
        ),
        (vec!["LPOS", "list", "nothere", "COUNT", "0"], Expect::Reply),
        (vec!["LINDEX", "list", "9223372036854775807"], Expect::Reply),
        (vec!["LREM", "list", "0", "nothere"], Expect::Reply),
        (
            vec!["LINSERT", "list", "BEFORE", "nothere", "x"],
            Expect::Reply,
        ),
        (
            vec!["LMPOP", "1", "list", "LEFT", "COUNT", "9223372036854775807"],
            Expect::Reply,
        ),
    ];
    run_cases(&server, &cases);
}

#[test]
fn sets_within_budget() {
    let _serial = serial();
    let server = TestServer::start();
    load(&server);
    let cases: Vec<(Vec<&str>, Expect)> = vec![
        (vec!["SMEMBERS", "set"], Expect::Reply),
        (vec!["SRANDMEMBER", "set", "-100000"], Expect::Reply),
        (
            vec!["SRANDMEMBER", "set", "9223372036854775807"],
            Expect::Reply,
        ),
        (
            vec!["SRANDMEMBER", "set", "-9223372036854775808"],
            Expect::Error("out of range"),
        ),
        (vec!["SINTER", "set", "set2"], Expect::Reply),
        (vec!["SUNION", "set", "set2"], Expect::Reply),
        (vec!["SDIFF", "set", "set2"], Expect::Reply),
        (
            vec!["SINTERCARD", "2", "set", "set2", "LIMIT", "0"],
            Expect::Reply,
        ),
        (
            vec!["SSCAN", "set", "0", "COUNT", "9223372036854775807"],
            Expect::Reply,
        ),
        (vec!["SUNIONSTORE", "set3", "set", "set2"], Expect::Reply),
        (vec!["SPOP", "set3", "100000"], Expect::Reply),
    ];
    run_cases(&server, &cases);
}

#[test]
fn sorted_sets_within_budget() {
    let _serial = serial();
    let server = TestServer::start();
    load(&server);
    let cases: Vec<(Vec<&str>, Expect)> = vec![
        (
            vec!["ZRANGE", "zset", "0", "-1", "WITHSCORES"],
            Expect::Reply,
        ),
        (
            vec![
                "ZRANGEBYSCORE",
                "zset",
                "-inf",
                "+inf",
                "LIMIT",
                "0",
                "9223372036854775807",
            ],
            Expect::Reply,
        ),
        (
            vec![
                "ZRANGEBYSCORE",
                "zset",
                "-inf",
                "+inf",
                "LIMIT",
                "9223372036854775807",
                "1",
            ],
            Expect::Reply,
        ),
        (
            vec![
                "ZRANGE", "zset", "+", "-", "BYLEX", "REV", "LIMIT", "0", "-1",
            ],
            Expect::Reply,
        ),
        (
            vec![
                "ZREVRANGE",
                "zset",
                "-9223372036854775808",
                "9223372036854775807",
            ],
            Expect::Reply,
        ),
        (vec!["ZRANDMEMBER", "zset", "-100000"], Expect::Reply),
        (
            vec!["ZRANDMEMBER", "zset", "-9223372036854775808"],
            Expect::Error("out of range"),
        ),
        (vec!["ZCOUNT", "zset", "-inf", "+inf"], Expect::Reply),
        (
            vec!["ZINTERSTORE", "zout", "2", "zset", "zset"],
            Expect::Reply,
        ),
        (
            vec!["ZSCAN", "zset", "0", "COUNT", "9223372036854775807"],
            Expect::Reply,
        ),
    ];
    run_cases(&server, &cases);
}

#[test]
fn server_commands_within_budget() {
    let _serial = serial();
    let server = TestServer::start();
    load(&server);
    let cases: Vec<(Vec<&str>, Expect)> = vec![
        (vec!["CONFIG", "GET", "*"], Expect::Reply),
        (vec!["COMMAND"], Expect::Reply),
        (vec!["COMMAND", "DOCS"], Expect::Reply),
        (vec!["INFO", "everything"], Expect::Reply),
        (
            vec!["MEMORY", "USAGE", "hash", "SAMPLES", "0"],
            Expect::Reply,
        ),
        (
            vec!["MEMORY", "USAGE", "zset", "SAMPLES", "0"],
            Expect::Reply,
        ),
        (vec!["MEMORY", "STATS"], Expect::Reply),
        (vec!["OBJECT", "ENCODING", "set"], Expect::Reply),
    ];
    run_cases(&server, &cases);
}

/// INFO's value of `field`.
fn info_field(client: &mut RawClient, field: &str) -> u64 {
    let reply = client.command(&["INFO", "memory"]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO memory"))
        .trim()
        .parse()
        .expect("a number")
}

/// Waits for the lazyfree thread to catch up; then `lazyfreed_objects`.
fn lazyfreed_when_idle(client: &mut RawClient) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(client, "lazyfree_pending_objects") > 0 {
        assert!(Instant::now() < deadline, "lazyfree never caught up");
        std::thread::sleep(Duration::from_millis(5));
    }
    info_field(client, "lazyfreed_objects")
}

fn big_set(client: &mut RawClient, key: &str, members: usize) {
    fill(client, "SADD", Some(key), members, |i| vec![i.to_string()]);
}

#[test]
fn unlink_and_async_flush_free_in_the_background() {
    let _serial = serial();
    let server = TestServer::start();
    let mut client = server.raw();
    assert_eq!(lazyfreed_when_idle(&mut client), 0);
    // Over Redis's threshold of 64 elements: freed in the background.
    big_set(&mut client, "big", 65);
    assert_eq!(client.command(&["UNLINK", "big"]), b":1\r\n");
    assert_eq!(lazyfreed_when_idle(&mut client), 1);
    // At the threshold, and strings: freed at once.
    big_set(&mut client, "small", 64);
    client.command(&["SET", "string", &"x".repeat(100_000)]);
    assert_eq!(client.command(&["UNLINK", "small", "string"]), b":2\r\n");
    assert_eq!(lazyfreed_when_idle(&mut client), 1);
    // DEL frees in place unless lazyfree-lazy-user-del.
    big_set(&mut client, "big", 100);
    assert_eq!(client.command(&["DEL", "big"]), b":1\r\n");
    assert_eq!(lazyfreed_when_idle(&mut client), 1);
    assert_eq!(
        client.command(&["CONFIG", "SET", "lazyfree-lazy-user-del", "yes"]),
        b"+OK\r\n"
    );
    big_set(&mut client, "big", 100);
    assert_eq!(client.command(&["DEL", "big", "missing"]), b":1\r\n");
    assert_eq!(lazyfreed_when_idle(&mut client), 2);
    assert_eq!(client.command(&["EXISTS", "big"]), b":0\r\n");

    // FLUSHALL ASYNC counts every key it frees; SYNC frees in place.
    fill(&mut client, "MSET", None, 300, |i| {
        vec![format!("k{i}"), "v".into()]
    });
    assert_eq!(client.command(&["FLUSHALL", "ASYNC"]), b"+OK\r\n");
    assert_eq!(client.command(&["DBSIZE"]), b":0\r\n");
    assert_eq!(lazyfreed_when_idle(&mut client), 302);
    fill(&mut client, "MSET", None, 300, |i| {
        vec![format!("k{i}"), "v".into()]
    });
    assert_eq!(client.command(&["FLUSHALL", "SYNC"]), b"+OK\r\n");
    assert_eq!(client.command(&["DBSIZE"]), b":0\r\n");
    assert_eq!(lazyfreed_when_idle(&mut client), 302);
    // Without an option, lazyfree-lazy-user-flush decides.
    fill(&mut client, "MSET", None, 10, |i| {
        vec![format!("k{i}"), "v".into()]
    });
    assert_eq!(client.command(&["FLUSHDB"]), b"+OK\r\n");
    assert_eq!(lazyfreed_when_idle(&mut client), 302);
    assert_eq!(
        client.command(&["CONFIG", "SET", "lazyfree-lazy-user-flush", "yes"]),
        b"+OK\r\n"
    );
    assert_eq!(
        client.command(&["CONFIG", "GET", "lazyfree-lazy-user-flush"]),
        b"*2\r\n$24\r\nlazyfree-lazy-user-flush\r\n$3\r\nyes\r\n"
    );
    fill(&mut client, "MSET", None, 10, |i| {
        vec![format!("k{i}"), "v".into()]
    });
    assert_eq!(client.command(&["FLUSHDB"]), b"+OK\r\n");
    assert_eq!(lazyfreed_when_idle(&mut client), 312);
    assert_eq!(
        client.command(&["FLUSHALL", "LATER"]),
        b"-ERR syntax error\r\n"
    );
    // CONFIG RESETSTAT starts the count over, as Redis.
    assert_eq!(client.command(&["CONFIG", "RESETSTAT"]), b"+OK\r\n");
    assert_eq!(lazyfreed_when_idle(&mut client), 0);
}

#[test]
fn many_databases_cost_nothing_until_used() {
    let _serial = serial();
    // 10000 databases in 256 shards: 2.56M empty parts if made at start.
    let server = TestServer::with_config(|config| config.databases = 10_000);
    let mut client = server.raw();
    assert_eq!(client.command(&["SELECT", "9999"]), b"+OK\r\n");
    assert_eq!(client.command(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(client.command(&["DBSIZE"]), b":1\r\n");
    assert_eq!(client.command(&["SWAPDB", "9999", "5000"]), b"+OK\r\n");
    assert_eq!(client.command(&["DBSIZE"]), b":0\r\n");
    assert_eq!(client.command(&["SELECT", "5000"]), b"+OK\r\n");
    assert_eq!(client.command(&["GET", "k"]), b"$1\r\nv\r\n");
    let info = String::from_utf8(client.command(&["INFO", "keyspace"])).expect("utf8");
    assert!(info.contains("db5000:keys=1,expires=0"), "{info}");
    assert_eq!(client.command(&["FLUSHALL"]), b"+OK\r\n");
    assert_eq!(client.command(&["DBSIZE"]), b":0\r\n");
    // Reads of unused databases create nothing: at most the databases
    // touched above (0, 5000, 9999) have parts, in any shard.
    let store = &server.shared.store;
    let parts: usize = (0..store.shard_count())
        .map(|index| {
            let mut locks = store.lock_shard(index);
            let shard = locks.shard(index).expect("locked");
            shard.existing_dbs_mut().count()
        })
        .sum();
    assert!(parts <= 3 * store.shard_count(), "{parts} database parts");
}
