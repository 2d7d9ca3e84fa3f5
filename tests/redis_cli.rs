//! The real `redis-cli` and `redis-benchmark` binaries against Larder:
//! single commands, stdin scripts, `--pipe` mass insertion, RESP3 mode,
//! authentication, and a short benchmark run. Where possible the output is
//! compared with the same invocation against a real redis-server.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use common::{RedisServer, TestServer};

/// Runs a tool with `args`, feeding `stdin`, and returns its output.
fn run(tool: &str, addr: SocketAddr, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(tool)
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} must be installed (apt-get install redis-tools): {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("tool output");
    writer.join().expect("stdin writer");
    output
}

fn cli(addr: SocketAddr, args: &[&str]) -> String {
    cli_with_stdin(addr, args, b"")
}

fn cli_with_stdin(addr: SocketAddr, args: &[&str], stdin: &[u8]) -> String {
    let output = run("redis-cli", addr, args, stdin);
    assert!(
        output.status.success(),
        "redis-cli {args:?} failed: {output:?}"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

struct Pair {
    larder: TestServer,
    redis: RedisServer,
}

impl Pair {
    fn start() -> Self {
        Pair {
            larder: TestServer::start(),
            redis: RedisServer::start(),
        }
    }

    /// Runs redis-cli against both servers and asserts the same output.
    fn same(&self, args: &[&str]) -> String {
        self.same_with_stdin(args, b"")
    }

    fn same_with_stdin(&self, args: &[&str], stdin: &[u8]) -> String {
        let ours = cli_with_stdin(self.larder.addr, args, stdin);
        let theirs = cli_with_stdin(self.redis.addr, args, stdin);
        assert_eq!(ours, theirs, "redis-cli {args:?} printed different output");
        ours
    }
}

#[test]
fn single_commands() {
    let pair = Pair::start();
    assert_eq!(pair.same(&["PING"]), "PONG\n");
    assert_eq!(pair.same(&["SET", "greeting", "hello world"]), "OK\n");
    assert_eq!(pair.same(&["GET", "greeting"]), "hello world\n");
    assert_eq!(pair.same(&["GET", "missing"]), "\n");
    assert_eq!(pair.same(&["DEL", "greeting", "missing"]), "1\n");
    pair.same(&["ECHO", "a\nb"]);
    pair.same(&["CONFIG", "GET", "maxclients"]);
    pair.same(&["DBSIZE"]);
    pair.same(&["SELECT", "99"]);
    pair.same(&["NOSUCH", "arg"]);
    pair.same(&["GET"]);
    // --no-raw shows the reply types.
    for args in [
        &["--no-raw", "GET", "missing"][..],
        &["--no-raw", "SET", "k", "v"],
        &["--no-raw", "GET", "k"],
        &["--no-raw", "DEL", "k"],
        &["--no-raw", "CONFIG", "GET", "timeout"],
        &["--no-raw", "NOSUCH"],
        &["--no-raw", "COMMAND", "INFO", "get"],
    ] {
        pair.same(args);
    }
    // -n selects the database first.
    pair.same(&["-n", "3", "SET", "in3", "x"]);
    assert_eq!(pair.same(&["-n", "3", "GET", "in3"]), "x\n");
    assert_eq!(pair.same(&["GET", "in3"]), "\n");
    // -x takes the last argument from stdin.
    assert_eq!(
        pair.same_with_stdin(&["-x", "SET", "fromstdin"], b"piped value"),
        "OK\n"
    );
    assert_eq!(pair.same(&["GET", "fromstdin"]), "piped value\n");
}

#[test]
fn commands_from_stdin() {
    let pair = Pair::start();
    // echo -e "SET a 1\nGET a" | redis-cli -p PORT
    let output = pair.same_with_stdin(&[], b"SET a 1\nGET a\n");
    assert_eq!(output, "OK\n1\n");
    let script = b"SET b \"two words\"\nGET b\nDEL a b nosuch\nGET a\nPING\nNOSUCH\nECHO 'x y'\n";
    pair.same_with_stdin(&[], script);
    // A MULTI/EXEC script.
    let output = pair.same_with_stdin(&[], b"MULTI\nSET t 1\nGET t\nEXEC\n");
    assert!(output.contains("QUEUED"), "{output}");
}

#[test]
fn pipe_mass_insertion() {
    let server = TestServer::start();
    let mut input = Vec::new();
    for i in 0..10_000 {
        let key = format!("key:{i}");
        let value = format!("value:{i}");
        input.extend(common::encode_command(&[
            b"SET",
            key.as_bytes(),
            value.as_bytes(),
        ]));
    }
    let output = run("redis-cli", server.addr, &["--pipe"], &input);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("All data transferred"), "{stdout}");
    assert!(
        stdout.contains("errors: 0, replies: 10000"),
        "unexpected summary: {stdout}"
    );
    assert_eq!(cli(server.addr, &["DBSIZE"]), "10000\n");
    assert_eq!(cli(server.addr, &["GET", "key:9999"]), "value:9999\n");

    // Errors are counted, and the rest still goes in.
    let mut input = Vec::new();
    input.extend(common::encode_command(&[b"SET", b"ok1", b"1"]));
    input.extend(common::encode_command(&[b"NOSUCH"]));
    input.extend(common::encode_command(&[b"SET", b"ok2"]));
    input.extend(common::encode_command(&[b"SET", b"ok3", b"3"]));
    let output = run("redis-cli", server.addr, &["--pipe"], &input);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("errors: 2, replies: 4"), "{stdout}");
    assert_eq!(cli(server.addr, &["DBSIZE"]), "10002\n");
}

#[test]
fn resp3_mode() {
    let pair = Pair::start();
    for args in [
        &["-3", "PING"][..],
        &["-3", "SET", "k", "v"],
        &["-3", "GET", "k"],
        &["-3", "GET", "missing"],
        &["-3", "--no-raw", "GET", "missing"],
        &["-3", "--no-raw", "CONFIG", "GET", "maxclients"],
        &["-3", "--no-raw", "DEL", "k", "nosuch"],
        &["-3", "--no-raw", "CLIENT", "GETNAME"],
        &["-3", "--json", "CONFIG", "GET", "timeout"],
        &["-3", "--json", "GET", "missing"],
        &["-3", "--no-raw", "EXEC"],
    ] {
        pair.same(args);
    }
    // A transaction aborted by WATCH: the null reply in RESP3.
    let script = b"WATCH w\nSET w changed\nMULTI\nPING\nEXEC\n";
    pair.same_with_stdin(&["-3", "--no-raw"], script);
    // HELLO itself differs only in version and id.
    let ours = cli(pair.larder.addr, &["-3", "HELLO"]);
    assert!(ours.contains("\nproto 3\n"), "{ours}");
}

#[test]
fn authentication() {
    let server = TestServer::with_config(|c| c.requirepass = Some("s3cret".into()));
    assert!(cli(server.addr, &["PING"]).contains("NOAUTH Authentication required."));
    let output = run("redis-cli", server.addr, &["-a", "s3cret", "PING"], b"");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "PONG\n");
    let output = run(
        "redis-cli",
        server.addr,
        &[
            "--user", "default", "--pass", "s3cret", "-3", "SET", "k", "v",
        ],
        b"",
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "OK\n");
    let output = run("redis-cli", server.addr, &["-a", "wrong", "PING"], b"");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("NOAUTH") || stderr.contains("WRONGPASS") || stdout.contains("WRONGPASS"),
        "{stdout} {stderr}"
    );
}

#[test]
fn redis_benchmark_completes() {
    let server = TestServer::start();
    let output = run(
        "redis-benchmark",
        server.addr,
        &["-t", "ping,set,get", "-n", "2000", "-q"],
        b"",
    );
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // -q prints one "<TEST>: <n> requests per second" line per test (after
    // progress lines separated by carriage returns).
    for test in ["PING_INLINE", "PING_MBULK", "SET", "GET"] {
        let line = stdout
            .split(['\r', '\n'])
            .find(|l| {
                l.trim_start().starts_with(&format!("{test}: "))
                    && l.contains("requests per second")
            })
            .unwrap_or_else(|| panic!("no result for {test}: {stdout}"));
        assert!(!line.contains("nan"), "{line}");
    }
    assert!(!stdout.contains("ERR"), "{stdout}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("ERR"));
    // The SETs went through (without -r, every one writes the same key
    // with a 3-byte payload).
    assert_eq!(cli(server.addr, &["GET", "key:__rand_int__"]).len(), 4);
}

/// The same data of every type on both servers: strings (one long), lists,
/// sets (intset and hashtable), hashes, sorted sets.
fn fill_every_type(pair: &Pair) {
    let long = "x".repeat(500);
    let members: Vec<String> = (0..200).map(|i| format!("member{i}")).collect();
    let mut script = format!(
        "SET str:short hello\nSET str:long {long}\nSET str:int 12345\n\
         RPUSH list:small a b c d\nLPUSH list:one x\n\
         SADD set:ints 1 2 3\nSADD set:words {}\n\
         HSET hash:small f1 v1 f2 v2\nHSET hash:wide {}\n\
         ZADD zset:small 1 a 2 b\nZADD zset:wide {}\n",
        members.join(" "),
        members
            .iter()
            .map(|m| format!("{m} v"))
            .collect::<Vec<_>>()
            .join(" "),
        members
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{i} {m}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    script.push_str("DBSIZE\n");
    let out = pair.same_with_stdin(&[], script.as_bytes());
    assert!(out.trim_end().ends_with("11"), "{out}");
}

/// The lines from redis-cli's `-------- summary -------` on.
fn summary(output: &str) -> String {
    let start = output
        .find("-------- summary -------")
        .unwrap_or_else(|| panic!("no summary in {output}"));
    output[start..].to_owned()
}

/// `--bigkeys` scans the keyspace with SCAN, TYPE and the per-type size
/// commands: the summary (biggest key of each type, counts and sizes) is
/// the same as against redis-server. (The "found so far" lines follow the
/// SCAN order, which differs.)
#[test]
fn bigkeys_finds_the_same_keys() {
    let pair = Pair::start();
    fill_every_type(&pair);
    let ours = cli(pair.larder.addr, &["--bigkeys"]);
    let theirs = cli(pair.redis.addr, &["--bigkeys"]);
    assert_eq!(summary(&ours), summary(&theirs));
    for expected in [
        "Biggest string found '\"str:long\"' has 500 bytes",
        "Biggest   list found '\"list:small\"' has 4 items",
        "Biggest    set found '\"set:words\"' has 200 members",
        "Biggest   hash found '\"hash:wide\"' has 200 fields",
        "Biggest   zset found '\"zset:wide\"' has 200 members",
        "Sampled 11 keys in the keyspace!",
    ] {
        assert!(ours.contains(expected), "no {expected:?} in {ours}");
    }
}

/// `--memkeys` asks MEMORY USAGE of every key: the same biggest key of
/// each type and the same key counts per type as redis-server (the byte
/// figures are each server's own).
#[test]
fn memkeys_finds_the_same_keys() {
    let pair = Pair::start();
    fill_every_type(&pair);
    let ours = cli(pair.larder.addr, &["--memkeys"]);
    let theirs = cli(pair.redis.addr, &["--memkeys"]);
    // "Biggest   list found '"list:small"' has 117 bytes" -> the name and key;
    // "2 lists with 231 bytes (...)" -> "2 lists".
    let shape = |output: &str| -> Vec<String> {
        summary(output)
            .lines()
            .map(|line| {
                if let Some((head, _)) = line.split_once(" has ") {
                    head.to_owned()
                } else if let Some((head, _)) = line.split_once(" with ") {
                    head.to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect()
    };
    assert_eq!(
        shape(&ours),
        shape(&theirs),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    assert!(
        ours.contains("Biggest string found '\"str:long\"' has"),
        "{ours}"
    );
    assert!(
        ours.contains("1 zsets with") || ours.contains("2 zsets with"),
        "{ours}"
    );
}

/// Runs `redis-cli --stat` for a moment and stops it, as a person would
/// with Ctrl-C. stdbuf unbuffers its output, which it never flushes.
fn stat_output(addr: SocketAddr) -> String {
    let child = Command::new("stdbuf")
        .args([
            "-o0",
            "redis-cli",
            "-h",
            "127.0.0.1",
            "-p",
            &addr.port().to_string(),
        ])
        .args(["--stat", "-i", "0.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stdbuf and redis-cli");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let output = child.wait_with_output().expect("redis-cli --stat");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `--stat` reads INFO every interval: its header is Redis's, and each
/// line shows the key count, memory, clients and a request count that
/// moves.
#[test]
fn stat_prints_a_line_per_interval() {
    let pair = Pair::start();
    fill_every_type(&pair);
    let ours = stat_output(pair.larder.addr);
    let theirs = stat_output(pair.redis.addr);
    let header = |output: &str| {
        output
            .lines()
            .take(2)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        header(&ours),
        header(&theirs),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    let rows: Vec<Vec<&str>> = ours
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() >= 6)
        .collect();
    assert!(rows.len() >= 3, "{ours}");
    let mut requests = Vec::new();
    for fields in &rows {
        assert_eq!(fields[0], "11", "keys column: {ours}");
        assert!(fields[1].ends_with(['K', 'M', 'B']), "mem column: {ours}");
        assert_eq!(fields[2], "1", "clients column: {ours}");
        requests.push(fields[4].parse::<u64>().expect("requests"));
    }
    assert!(requests.windows(2).all(|w| w[1] > w[0]), "{ours}");
}

/// `--latency` pings and reports min, max, average and count: with `--raw`
/// it prints one line and exits.
#[test]
fn latency_reports_samples() {
    let pair = Pair::start();
    for addr in [pair.larder.addr, pair.redis.addr] {
        let output = cli(addr, &["--latency", "--raw", "-i", "0.2"]);
        let fields: Vec<&str> = output.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "{output}");
        let min: u64 = fields[0].parse().expect("min");
        let max: u64 = fields[1].parse().expect("max");
        let avg: f64 = fields[2].parse().expect("avg");
        let count: u64 = fields[3].parse().expect("count");
        assert!(count >= 2, "{output}");
        assert!(
            min <= max && avg <= max as f64 && avg >= min as f64,
            "{output}"
        );
    }
}

/// `--hotkeys` reads OBJECT FREQ under an LFU policy: the key read most
/// is the hottest on both servers.
#[test]
fn hotkeys_finds_the_most_read_key() {
    let pair = Pair::start();
    fill_every_type(&pair);
    let reads = "GET str:short\n".repeat(300);
    pair.same_with_stdin(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"], b"");
    pair.same_with_stdin(&[], reads.as_bytes());
    for addr in [pair.larder.addr, pair.redis.addr] {
        let output = cli(addr, &["--hotkeys"]);
        let hottest = output
            .lines()
            .find(|l| l.starts_with("hot key found"))
            .unwrap_or_else(|| panic!("no hot key in {output}"));
        assert!(hottest.ends_with("keyname: \"str:short\""), "{output}");
        assert!(
            output.contains("Sampled 11 keys in the keyspace!"),
            "{output}"
        );
    }
}
