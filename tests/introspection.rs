//! ROLE, LASTSAVE, MODULE, LOLWUT, COMMAND GETKEYSANDFLAGS and LIST
//! FILTERBY, DEBUG and MEMORY DOCTOR: against a real redis-server 7.0.15
//! byte for byte where the reply is deterministic, and their behaviour
//! (DEBUG SLEEP holds only its own client, SET-ACTIVE-EXPIRE 0 really
//! stops active expiry).

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{encode_command, free_port, Differential, RawClient, TestServer};

/// A redis-server started with extra arguments (`--enable-debug-command`,
/// `--enable-module-command`), which the shared `RedisServer` does not take.
struct Redis {
    addr: SocketAddr,
    child: Child,
}

impl Redis {
    fn start(extra: &[&str]) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--appendonly", "no"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                if TcpStream::connect(addr).is_ok() {
                    let mut client = RawClient::connect(addr);
                    client.send(&encode_command(&[b"INFO", b"server"]));
                    if let Some(reply) = client.try_read_reply() {
                        let info = String::from_utf8_lossy(&reply);
                        if info.contains("redis_version") && !info.contains("larder_version") {
                            return Redis { addr, child };
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Larder and a redis-server with the given settings, one client each.
struct Both {
    larder: RawClient,
    redis: RawClient,
    _servers: (TestServer, Redis),
}

impl Both {
    fn start(debug: &str) -> Self {
        let debug_owned = debug.to_owned();
        let larder = TestServer::with_config(move |c| {
            c.set("enable-debug-command", &debug_owned)
                .expect("enable-debug-command");
            c.set("enable-module-command", "yes")
                .expect("enable-module-command")
        });
        let redis = Redis::start(&[
            "--enable-debug-command",
            debug,
            "--enable-module-command",
            "yes",
        ]);
        Both {
            larder: larder.raw(),
            redis: RawClient::connect(redis.addr),
            _servers: (larder, redis),
        }
    }

    fn same(&mut self, args: &[&str]) -> String {
        let ours = self.larder.command(args);
        let theirs = self.redis.command(args);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "replies differ for {args:?}"
        );
        String::from_utf8_lossy(&ours).into_owned()
    }
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

#[test]
fn role_module_and_help_replies_match_redis() {
    let mut both = Both::start("yes");
    for protocol in ["2", "3"] {
        both.larder.command(&["HELLO", protocol]);
        both.redis.command(&["HELLO", protocol]);
        assert_eq!(
            both.same(&["ROLE"]),
            match protocol {
                "2" => "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n",
                _ => "*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n",
            }
        );
        assert_eq!(both.same(&["MODULE", "LIST"]), "*0\r\n");
        both.same(&["MODULE", "LOAD", "/nonexistent/module.so"]);
        both.same(&["MODULE", "LOAD", "/nonexistent/module.so", "arg1"]);
        both.same(&[
            "MODULE",
            "LOADEX",
            "/nonexistent/module.so",
            "CONFIG",
            "a",
            "b",
        ]);
        both.same(&["MODULE", "UNLOAD", "nosuch"]);
        both.same(&["MODULE", "HELP"]);
        both.same(&["MODULE"]);
        both.same(&["MODULE", "NOSUCH"]);
        both.same(&["DEBUG", "HELP"]);
        both.same(&["DEBUG", "JMAP"]);
        both.same(&["DEBUG", "OBJECT", "nosuchkey"]);
        both.same(&["DEBUG", "SLEEP", "0"]);
        both.same(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
        both.same(&["DEBUG", "LOG", "hello from the test"]);
        both.same(&["DEBUG", "ERROR", "some message"]);
        both.same(&["DEBUG", "ERROR", "-MYCODE own code"]);
        both.same(&["DEBUG"]);
        for kind in [
            "string", "integer", "double", "bignum", "null", "array", "set", "map", "true",
            "false", "verbatim", "nosuch",
        ] {
            both.same(&["DEBUG", "PROTOCOL", kind]);
        }
        both.same(&["COMMAND", "HELP"]);
        both.same(&["LASTSAVE", "extra"]);
        both.same(&["ROLE", "extra"]);
        both.same(&["LOLWUT", "VERSION", "x"]);
    }
}

#[test]
fn debug_is_refused_unless_enabled() {
    let mut both = Both::start("no");
    let refused = both.same(&["DEBUG", "SLEEP", "0"]);
    assert!(
        refused.starts_with("-ERR DEBUG command not allowed."),
        "{refused}"
    );
    both.same(&["DEBUG", "HELP"]);
    both.same(&["DEBUG", "OBJECT", "x"]);
    // `local`: this test's clients are on loopback, so it runs.
    let mut both = Both::start("local");
    assert_eq!(both.same(&["DEBUG", "SLEEP", "0"]), "+OK\r\n");
    // The setting is immutable, as in Redis.
    both.same(&["CONFIG", "SET", "enable-debug-command", "yes"]);
    both.same(&["CONFIG", "GET", "enable-debug-command"]);
}

#[test]
fn debug_object_and_populate() {
    let mut both = Both::start("yes");
    // Keys whose encodings both servers agree on, and lengths Larder
    // computes as Redis does (strings up to 20 bytes).
    both.same(&["SET", "s", "bar"]);
    both.same(&["SET", "n", "12345"]);
    both.same(&["SET", "small", "7"]);
    both.same(&["SET", "big", "70000"]);
    // Appended to: a raw string, not a shared integer.
    both.same(&["SET", "app", "1"]);
    both.same(&["APPEND", "app", "2"]);
    for key in ["s", "n", "small", "big", "app"] {
        let ours = text(&both.larder.command(&["DEBUG", "OBJECT", key]));
        let theirs = text(&both.redis.command(&["DEBUG", "OBJECT", key]));
        // The address and LRU clock are the process's own, and the idle
        // seconds may straddle a second between the two servers on a busy
        // machine (checked apart); the rest match.
        let strip = |line: &str| -> Vec<String> {
            line.trim_end()
                .split(' ')
                .filter(|f| {
                    !f.starts_with("at:")
                        && !f.starts_with("lru:")
                        && !f.starts_with("lru_seconds_idle:")
                })
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(strip(&ours), strip(&theirs), "DEBUG OBJECT {key}");
        assert!(ours.starts_with("+Value at:0x"), "{ours}");
        let idle = ours
            .trim_end()
            .rsplit_once("lru_seconds_idle:")
            .and_then(|(_, idle)| idle.parse::<u64>().ok());
        assert!(idle.is_some_and(|idle| idle <= 2), "{ours}");
    }
    both.same(&["DEBUG", "POPULATE", "50"]);
    both.same(&["DEBUG", "POPULATE", "10", "pre", "20"]);
    both.same(&["DEBUG", "POPULATE", "-1"]);
    both.same(&["DBSIZE"]);
    both.same(&["GET", "key:49"]);
    both.same(&["GET", "pre:3"]);
    both.same(&["STRLEN", "pre:3"]);
    // Existing keys are left alone.
    both.same(&["SET", "key:1", "mine"]);
    both.same(&["DEBUG", "POPULATE", "5"]);
    both.same(&["GET", "key:1"]);
}

#[test]
fn getkeysandflags_matches_redis() {
    let mut both = Both::start("no");
    let commands: &[&[&str]] = &[
        &["GET", "k"],
        &["SET", "k", "v"],
        &["SET", "k", "v", "GET"],
        &["SET", "k", "v", "EX", "10", "get"],
        &["MSET", "a", "1", "b", "2"],
        &["MGET", "a", "b", "c"],
        &["DEL", "a", "b"],
        &["LMOVE", "a", "b", "LEFT", "RIGHT"],
        &["RENAME", "a", "b"],
        &["COPY", "a", "b"],
        &["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
        &["ZUNION", "2", "a", "b"],
        &["ZINTERCARD", "2", "a", "b", "LIMIT", "1"],
        &["SINTERCARD", "3", "a", "b", "c"],
        &["LMPOP", "2", "a", "b", "LEFT"],
        &["BLMPOP", "0", "2", "a", "b", "LEFT"],
        &["BZMPOP", "0", "1", "a", "MIN"],
        &["EVAL", "return 1", "2", "a", "b", "x"],
        &["EVAL_RO", "return 1", "1", "a"],
        &["FCALL", "f", "1", "a"],
        &["BITFIELD", "k", "GET", "u8", "0"],
        &["BITFIELD", "k", "SET", "u8", "0", "1"],
        &["BITFIELD", "k", "INCRBY", "u8", "0", "1", "GET", "u8", "0"],
        &["BITOP", "AND", "d", "a", "b"],
        &["SMOVE", "a", "b", "m"],
        &["HSET", "h", "f", "v"],
        &["GETEX", "k", "PERSIST"],
        &["OBJECT", "ENCODING", "k"],
        &["MEMORY", "USAGE", "k"],
        &["TOUCH", "a", "b"],
        &["BLMOVE", "a", "b", "LEFT", "LEFT", "0"],
        &["SUNIONSTORE", "d", "a", "b"],
        &["ZRANGESTORE", "d", "s", "0", "-1"],
        &["XGROUPBOGUS", "a"],
        // Errors: no keys, bad counts, wrong arity, unknown commands.
        &["PING"],
        &["SPUBLISH", "ch", "m"],
        &["ZUNION", "5", "a"],
        &["ZUNION", "-1", "a"],
        &["EVAL", "return 1", "0"],
        &["EVAL", "return 1", "5", "a"],
        &["GET"],
        &["GET", "a", "b"],
        &["CLIENT", "LIST"],
        &["OBJECT", "NOSUCH", "k"],
        &["CONFIG"],
    ];
    for command in commands {
        for sub in ["GETKEYS", "GETKEYSANDFLAGS"] {
            let mut args = vec!["COMMAND", sub];
            args.extend_from_slice(command);
            both.same(&args);
        }
    }
    both.same(&["COMMAND", "GETKEYSANDFLAGS"]);
    both.same(&["COMMAND", "GETKEYSANDFLAGS", "GET"]);
}

/// The members of a flat array reply (COMMAND LIST), as a set.
fn members(reply: &[u8]) -> BTreeSet<String> {
    let text = text(reply);
    let mut lines = text.split("\r\n").skip(1);
    let mut names = BTreeSet::new();
    while let (Some(_), Some(name)) = (lines.next(), lines.next()) {
        names.insert(name.to_owned());
    }
    names
}

#[test]
fn command_list_filters_match_redis() {
    let mut diff = Differential::start();
    let larder_all = members(&diff.larder.command(&["COMMAND", "LIST"]));
    let redis_all = members(&diff.redis.command(&["COMMAND", "LIST"]));
    assert_eq!(
        larder_all.len() as i64,
        text(&diff.larder.command(&["COMMAND", "COUNT"]))
            .trim_start_matches(':')
            .trim()
            .parse::<i64>()
            .unwrap()
            + larder_all.iter().filter(|n| n.contains('|')).count() as i64,
        "COUNT counts commands, LIST names subcommands too"
    );
    let categories = members(&diff.redis.command(&["ACL", "CAT"]));
    assert!(categories.len() > 15);
    let mut filters: Vec<(String, String)> = categories
        .iter()
        .map(|c| ("ACLCAT".to_owned(), c.clone()))
        .collect();
    for pattern in [
        "*", "client*", "*|*", "h?et", "config|*", "[a-c]*", "*sub*", "nosuch",
    ] {
        filters.push(("PATTERN".to_owned(), pattern.to_owned()));
    }
    filters.push(("ACLCAT".to_owned(), "nosuchcategory".to_owned()));
    filters.push(("MODULE".to_owned(), "nosuchmodule".to_owned()));
    for (filter, value) in &filters {
        let args = ["COMMAND", "LIST", "FILTERBY", filter, value];
        let ours = members(&diff.larder.command(&args));
        let theirs = members(&diff.redis.command(&args));
        // On the commands both have, the same verdict; no name outside
        // Larder's table.
        for name in larder_all.intersection(&redis_all) {
            assert_eq!(
                ours.contains(name),
                theirs.contains(name),
                "FILTERBY {filter} {value}: {name}"
            );
        }
        assert!(ours.is_subset(&larder_all));
        if filter == "PATTERN" && value == "*" {
            assert_eq!(ours, larder_all);
        }
    }
    diff.check(&["COMMAND", "LIST", "FILTERBY", "MODULE", "nosuch"]);
    diff.check(&["COMMAND", "LIST", "FILTERBY", "NOSUCH", "x"]);
    diff.check(&["COMMAND", "LIST", "FILTERBY", "PATTERN"]);
    diff.check(&["COMMAND", "LIST", "EXTRA"]);
    diff.check(&["COMMAND", "LIST", "FILTERBY", "pattern", "getkeysandflag?"]);
}

#[test]
fn debug_sleep_holds_only_its_own_client() {
    let server = TestServer::with_config(|c| {
        c.set("enable-debug-command", "yes").unwrap();
    });
    let mut sleeper = server.raw();
    let mut other = server.raw();
    let started = Instant::now();
    sleeper.send(&encode_command(&[b"DEBUG", b"SLEEP", b"0.5"]));
    // Right behind it on the same connection: answered after the sleep.
    sleeper.send(&encode_command(&[b"PING"]));
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..5 {
        let ping = Instant::now();
        assert_eq!(other.command(&["PING"]), b"+PONG\r\n");
        assert!(
            ping.elapsed() < Duration::from_millis(200),
            "another client waited {:?}",
            ping.elapsed()
        );
    }
    assert!(started.elapsed() < Duration::from_millis(450));
    assert_eq!(sleeper.read_reply(), b"+OK\r\n");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "slept only {:?}",
        started.elapsed()
    );
    assert_eq!(sleeper.read_reply(), b"+PONG\r\n");
}

fn dbsize(client: &mut RawClient) -> String {
    text(&client.command(&["DBSIZE"]))
}

#[test]
fn set_active_expire_off_keeps_expired_keys_until_accessed() {
    let server = TestServer::with_config(|c| {
        c.set("enable-debug-command", "yes").unwrap();
        c.set("hz", "100").unwrap();
    });
    let mut client = server.raw();
    assert_eq!(
        client.command(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]),
        b"+OK\r\n"
    );
    client.command(&["SET", "gone", "v", "PX", "50"]);
    client.command(&["SET", "stays", "v"]);
    std::thread::sleep(Duration::from_millis(400));
    // Past its TTL but never touched: still counted, as in Redis.
    assert_eq!(dbsize(&mut client), ":2\r\n");
    assert_eq!(client.command(&["GET", "gone"]), b"$-1\r\n");
    assert_eq!(client.command(&["EXISTS", "gone"]), b":0\r\n");
    // Larder's reads leave the reclaiming to writes and the expiry
    // cycle (Redis's GET deletes it): a write to it reclaims it.
    assert_eq!(client.command(&["DEL", "gone"]), b":0\r\n");
    assert_eq!(dbsize(&mut client), ":1\r\n");
    // Back on: the next expired key goes by itself.
    assert_eq!(
        client.command(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]),
        b"+OK\r\n"
    );
    client.command(&["SET", "gone2", "v", "PX", "50"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while dbsize(&mut client) != ":1\r\n" {
        assert!(Instant::now() < deadline, "active expiry did not resume");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lastsave_is_the_start_time_and_stays() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let server = TestServer::start();
    let mut client = server.raw();
    let read = |client: &mut RawClient| -> u64 {
        text(&client.command(&["LASTSAVE"]))
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap()
    };
    let first = read(&mut client);
    assert!(
        first >= before && first <= before + 2,
        "{first} vs {before}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(read(&mut client), first);
}

#[test]
fn lolwut_draws_schotter_for_version_5() {
    let server = TestServer::start();
    let mut client = server.raw();
    let plain = text(&client.command(&["LOLWUT"]));
    assert!(plain.ends_with("\r\nRedis ver. 7.4.0\n\r\n"), "{plain}");
    let art = text(&client.command(&["LOLWUT", "VERSION", "5", "40", "4", "6"]));
    assert!(
        art.ends_with("\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. 7.4.0\n\r\n"),
        "{art}"
    );
    let body = art.split_once("\r\n").unwrap().1;
    let rows: Vec<&str> = body.lines().take_while(|l| !l.is_empty()).collect();
    // 40 columns of Braille; 80x(19*6+4) pixels in 4-pixel rows.
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r.chars().count() == 40));
    assert!(rows
        .iter()
        .all(|r| r.chars().all(|c| ('\u{2800}'..='\u{28ff}').contains(&c))));
    // Squares are drawn: dots on the first rows of squares.
    assert!(rows[1].chars().any(|c| c != '\u{2800}'));
    let v6 = text(&client.command(&["LOLWUT", "VERSION", "6", "30", "10"]));
    assert!(
        v6.ends_with("\nDedicated to the 8 bit game developers of past and present.\nOriginal 8 bit image from Plaguemon by hikikomori. Redis ver. 7.4.0\n\r\n"),
        "{v6}"
    );
    let sky = v6.split_once("\r\n").unwrap().1;
    assert_eq!(
        sky.lines()
            .take(10)
            .filter(|l| l.matches("\x1b[0m").count() == 30)
            .count(),
        10
    );
    let v7 = text(&client.command(&["LOLWUT", "VERSION", "7"]));
    assert!(v7.ends_with("\r\nRedis ver. 7.4.0\n\r\n"), "{v7}");
    // RESP3: a verbatim string.
    client.command(&["HELLO", "3"]);
    let verbatim = text(&client.command(&["LOLWUT"]));
    assert!(
        verbatim.starts_with("=21\r\ntxt:Redis ver. 7.4.0\n"),
        "{verbatim}"
    );
}

/// A larder-server process: MEMORY DOCTOR judges the whole process's
/// memory, which in this test binary holds every other test's servers too.
struct LarderProcess {
    addr: SocketAddr,
    child: Child,
}

impl LarderProcess {
    fn start(extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_larder-server"))
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("larder-server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "larder-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        LarderProcess { addr, child }
    }
}

impl Drop for LarderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// MEMORY STATS as name -> number (RESP2: a flat array; the per-db map
/// is skipped).
fn memory_stats(client: &mut RawClient) -> std::collections::HashMap<String, f64> {
    let reply = text(&client.command(&["MEMORY", "STATS"]));
    let lines: Vec<&str> = reply.split("\r\n").collect();
    let mut stats = std::collections::HashMap::new();
    let mut i = 1;
    while i + 1 < lines.len() {
        if lines[i].starts_with('$') {
            let name = lines[i + 1].to_owned();
            let value = lines.get(i + 2).copied().unwrap_or("");
            if let Some(n) = value.strip_prefix(':') {
                stats.insert(name, n.parse().unwrap());
                i += 3;
            } else if value.starts_with('$') {
                stats.insert(name, lines[i + 3].parse().unwrap_or(f64::NAN));
                i += 4;
            } else {
                i += 3;
            }
        } else {
            i += 1;
        }
    }
    stats
}

#[test]
fn memory_doctor_speaks_like_redis() {
    let larder = LarderProcess::start(&["--enable-debug-command", "yes"]);
    let redis = Redis::start(&[]);
    let (mut ours, mut theirs) = (
        RawClient::connect(larder.addr),
        RawClient::connect(redis.addr),
    );
    // Both nearly empty: Redis's text for too little memory.
    let empty = text(&theirs.command(&["MEMORY", "DOCTOR"]));
    assert!(empty.contains("Hi Sam, this instance is empty"), "{empty}");
    assert_eq!(text(&ours.command(&["MEMORY", "DOCTOR"])), empty);
    // With some 30 MB of data the detector runs its checks on MEMORY
    // STATS's figures: each issue is reported exactly when its figures
    // pass Redis's thresholds.
    assert_eq!(
        ours.command(&["DEBUG", "POPULATE", "200000", "key", "100"]),
        b"+OK\r\n"
    );
    let before = memory_stats(&mut ours);
    let report = text(&ours.command(&["MEMORY", "DOCTOR"]));
    let after = memory_stats(&mut ours);
    assert!(!report.contains("this instance is empty"), "{report}");
    let checks = [
        (
            "fragmentation",
            "fragmentation.bytes",
            1.4,
            "High total RSS",
        ),
        (
            "allocator-fragmentation.ratio",
            "allocator-fragmentation.bytes",
            1.1,
            "High allocator fragmentation",
        ),
        (
            "allocator-rss.ratio",
            "allocator-rss.bytes",
            1.1,
            "High allocator RSS overhead",
        ),
        (
            "rss-overhead.ratio",
            "rss-overhead.bytes",
            1.1,
            "High process RSS overhead",
        ),
    ];
    let mut issues = 0;
    for (ratio, bytes, limit, title) in checks {
        let flagged = |s: &std::collections::HashMap<String, f64>| {
            s[ratio] > limit && s[bytes] > (10 << 20) as f64
        };
        // Figures that moved across the threshold meanwhile prove nothing.
        if flagged(&before) == flagged(&after) {
            assert_eq!(
                report.contains(title),
                flagged(&before),
                "{title}: {before:?}\n{report}"
            );
        }
        issues += usize::from(report.contains(title));
    }
    if issues == 0 {
        assert!(
            report.starts_with("$105\r\nHi Sam, I can't find any memory issue"),
            "{report}"
        );
    } else {
        assert!(report
            .contains("Sam, I detected a few issues in this Redis instance memory implants:\n\n"));
        assert!(report.ends_with("I'm here to keep you safe, Sam. I want to help you.\n\r\n"));
    }
}

/// DEBUG DIGEST and DIGEST-VALUE: Redis's digest of the same data, whatever
/// the layout, so a test suite can compare a Larder and a Redis dataset.
#[test]
fn debug_digest_matches_redis() {
    let mut both = Both::start("yes");
    both.same(&["DEBUG", "DIGEST"]);
    let members: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    let mut zadd = vec!["ZADD", "zset:big"];
    let scores: Vec<String> = (0..300).map(|i| format!("{}", i as f64 / 7.0)).collect();
    for (score, member) in scores.iter().zip(&members) {
        zadd.push(score);
        zadd.push(member);
    }
    both.same(&zadd);
    let mut sadd = vec!["SADD", "set:big"];
    sadd.extend(members.iter().map(String::as_str));
    both.same(&sadd);
    let mut hset = vec!["HSET", "hash:big"];
    for member in &members {
        hset.push(member);
        hset.push("value");
    }
    both.same(&hset);
    for command in [
        "SET str hello",
        "SET int 123",
        "SET ttl v EX 1000",
        "RPUSH list a b c a",
        "SADD ints 1 2 3",
        "HSET hash f1 v1 f2 v2",
        "ZADD zset 1 a 2.5 b 0.1 c -inf d",
        "SELECT 5",
        "SET other db",
        "SELECT 0",
    ] {
        let args: Vec<&str> = command.split(' ').collect();
        both.same(&args);
    }
    let digest = both.same(&["DEBUG", "DIGEST"]);
    assert_ne!(digest, "+0000000000000000000000000000000000000000\r\n");
    both.same(&[
        "DEBUG",
        "DIGEST-VALUE",
        "str",
        "int",
        "ttl",
        "list",
        "ints",
        "hash",
        "zset",
        "zset:big",
        "set:big",
        "hash:big",
        "nosuch",
    ]);
    both.same(&["DEBUG", "DIGEST-VALUE"]);
    // Order matters for lists only.
    both.same(&["RPUSH", "list2", "c", "b", "a", "a"]);
    both.same(&["DEBUG", "DIGEST-VALUE", "list", "list2"]);
    both.same(&["PERSIST", "ttl"]);
    both.same(&["DEBUG", "DIGEST"]);
}
