//! Pub/Sub and client-side caching as client programs use them, against
//! Larder:
//!
//! - redis-py (RESP2 and RESP3, `tests/clients/redis_py_pubsub.py`): its
//!   `PubSub` sync and asyncio (subscribe/psubscribe, `get_message` with a
//!   timeout, `listen`, `run_in_thread`), health checks on the subscribed
//!   connection, reconnection and resubscription after CLIENT KILL, and
//!   its client-side cache (RESP3, CLIENT TRACKING);
//! - the `redis` crate's pub/sub, sync and async;
//! - `redis-cli SUBSCRIBE`, `redis-cli --csv PSUBSCRIBE '*'` and
//!   `redis-cli MONITOR`.
//!
//! Needs `python3` with the `redis` package and `redis-cli` (`.ci/run`
//! installs them). With `PUBSUB_CLIENTS_AGAINST_REDIS=1` in the environment
//! every test runs against a real redis-server instead, to check the tests
//! themselves.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{RedisServer, TestServer};

/// The server under test: Larder, or Redis when checking the tests.
enum Target {
    Larder(TestServer),
    Redis(RedisServer),
}

impl Target {
    fn start() -> Self {
        if std::env::var_os("PUBSUB_CLIENTS_AGAINST_REDIS").is_some() {
            Target::Redis(RedisServer::start())
        } else {
            Target::Larder(TestServer::start())
        }
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Target::Larder(server) => server.addr,
            Target::Redis(server) => server.addr,
        }
    }

    fn is_redis(&self) -> bool {
        matches!(self, Target::Redis(_))
    }

    fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://{}/", self.addr())).expect("client")
    }

    fn connection(&self) -> redis::Connection {
        let con = self
            .client()
            .get_connection()
            .expect("connect with the redis crate");
        con.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        con
    }
}

// ---------------------------------------------------------------- redis-py

fn run_redis_py(protocol: u8, section: &str) {
    let target = Target::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/redis_py_pubsub.py"
    );
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(target.addr().port().to_string())
        .arg(protocol.to_string())
        .arg(section);
    if target.is_redis() {
        // redis-py's cache refuses Redis before 7.4; Debian ships 7.0.
        command.env("REDIS_PY_CACHE_ANY_VERSION", "1");
    }
    let output = command
        .output()
        .expect("python3 must be installed, with the redis package (pip install redis)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "redis-py (RESP{protocol}, {section}) failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn redis_py_pubsub_get_message_resp2() {
    run_redis_py(2, "pubsub");
}

#[test]
fn redis_py_pubsub_get_message_resp3() {
    run_redis_py(3, "pubsub");
}

#[test]
fn redis_py_pubsub_listen_resp2() {
    run_redis_py(2, "listen");
}

#[test]
fn redis_py_pubsub_listen_resp3() {
    run_redis_py(3, "listen");
}

#[test]
fn redis_py_pubsub_run_in_thread_resp2() {
    run_redis_py(2, "thread");
}

#[test]
fn redis_py_pubsub_run_in_thread_resp3() {
    run_redis_py(3, "thread");
}

#[test]
fn redis_py_asyncio_pubsub_resp2() {
    run_redis_py(2, "async");
}

#[test]
fn redis_py_asyncio_pubsub_resp3() {
    run_redis_py(3, "async");
}

#[test]
fn redis_py_pubsub_health_check_resp2() {
    run_redis_py(2, "health_check");
}

#[test]
fn redis_py_pubsub_health_check_resp3() {
    run_redis_py(3, "health_check");
}

#[test]
fn redis_py_pubsub_reconnects_and_resubscribes_after_client_kill_resp2() {
    run_redis_py(2, "reconnect");
}

#[test]
fn redis_py_pubsub_reconnects_and_resubscribes_after_client_kill_resp3() {
    run_redis_py(3, "reconnect");
}

#[test]
fn redis_py_client_side_cache() {
    run_redis_py(3, "cache");
}

// ------------------------------------------------------- the `redis` crate

#[test]
fn redis_crate_sync_pubsub_receives_messages_and_pattern_messages() {
    let target = Target::start();
    let mut publisher = target.connection();
    let mut subscriber = target.connection();
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("orders").expect("SUBSCRIBE");
    pubsub.psubscribe("audit.*").expect("PSUBSCRIBE");
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");

    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("orders")
        .arg("first")
        .query(&mut publisher)
        .expect("PUBLISH");
    assert_eq!(receivers, 1);
    let message = pubsub.get_message().expect("a message");
    assert_eq!(message.get_channel_name(), "orders");
    assert_eq!(message.get_payload::<String>().unwrap(), "first");
    assert!(!message.from_pattern());

    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("audit.login")
        .arg(&b"\x00binary\xff"[..])
        .query(&mut publisher)
        .expect("PUBLISH");
    assert_eq!(receivers, 1);
    let message = pubsub.get_message().expect("a pattern message");
    assert!(message.from_pattern());
    assert_eq!(message.get_pattern::<String>().unwrap(), "audit.*");
    assert_eq!(message.get_channel_name(), "audit.login");
    assert_eq!(message.get_payload_bytes(), b"\x00binary\xff");

    // Nothing published: the read times out instead of returning anything.
    pubsub
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    match pubsub.get_message() {
        Err(error) if error.is_timeout() => {}
        other => panic!("expected a timeout, got {other:?}"),
    }

    pubsub.unsubscribe("orders").expect("UNSUBSCRIBE");
    pubsub.punsubscribe("audit.*").expect("PUNSUBSCRIBE");
    drop(pubsub);
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("orders")
        .arg("late")
        .query(&mut publisher)
        .expect("PUBLISH");
    assert_eq!(receivers, 0, "a subscriber left after UNSUBSCRIBE");
    // The connection is usable for plain commands again.
    let pong: String = redis::cmd("PING").query(&mut subscriber).expect("PING");
    assert_eq!(pong, "PONG");
}

#[test]
fn redis_crate_async_pubsub_streams_messages() {
    use futures_util::StreamExt;

    let target = Target::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = target.client();
        let mut publisher = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let mut pubsub = client.get_async_pubsub().await.expect("async pubsub");
        pubsub.subscribe("ticks").await.expect("SUBSCRIBE");
        pubsub.psubscribe("sensor.*").await.expect("PSUBSCRIBE");
        for (channel, payload) in [("ticks", "1"), ("sensor.temp", "21"), ("ticks", "2")] {
            let receivers: i64 = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async(&mut publisher)
                .await
                .expect("PUBLISH");
            assert_eq!(receivers, 1, "PUBLISH {channel}");
        }
        let mut stream = pubsub.on_message();
        let mut got = Vec::new();
        for _ in 0..3 {
            let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .unwrap_or_else(|_| panic!("no message within 5 s; got {got:?}"))
                .expect("the stream ended");
            got.push((
                message.get_channel_name().to_string(),
                message.get_payload::<String>().unwrap(),
                message.from_pattern(),
            ));
        }
        assert_eq!(
            got,
            [
                ("ticks".to_string(), "1".to_string(), false),
                ("sensor.temp".to_string(), "21".to_string(), true),
                ("ticks".to_string(), "2".to_string(), false),
            ]
        );
    });
}

// ---------------------------------------------------------------- redis-cli

/// A `redis-cli` whose stdout lines arrive on a channel; killed when dropped.
struct Cli {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Cli {
    fn spawn(addr: SocketAddr, args: &[&str]) -> Self {
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-cli must be installed (apt-get install redis-tools)");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Cli {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one equals `expected`; panics with everything seen
    /// (and redis-cli's stderr) if it does not come within 5 s.
    fn expect_line(&mut self, expected: &str) {
        self.expect_matching(expected, |line| line == expected);
    }

    fn expect_matching(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let mut stderr = String::new();
                    if let Some(mut err) = self.child.stderr.take() {
                        use std::io::Read;
                        let _ = err.read_to_string(&mut stderr);
                    }
                    panic!(
                        "redis-cli never printed {what:?}; it printed {:?}; stderr: {stderr}",
                        self.seen
                    );
                }
            }
        }
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publish(con: &mut redis::Connection, channel: &str, payload: &str) -> i64 {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query(con)
        .expect("PUBLISH")
}

#[test]
fn redis_cli_subscribe_prints_messages() {
    let target = Target::start();
    let mut publisher = target.connection();
    let mut cli = Cli::spawn(target.addr(), &["SUBSCRIBE", "news"]);
    // The confirmation: type, channel, count, one per line.
    cli.expect_line("subscribe");
    cli.expect_line("news");
    cli.expect_line("1");
    assert_eq!(publish(&mut publisher, "news", "hello world"), 1);
    assert_eq!(publish(&mut publisher, "other", "not for it"), 0);
    assert_eq!(publish(&mut publisher, "news", "second"), 1);
    for line in [
        "message",
        "news",
        "hello world",
        "message",
        "news",
        "second",
    ] {
        cli.expect_line(line);
    }
    let skipped: Vec<&String> = cli
        .seen
        .iter()
        .filter(|l| l.contains("not for it"))
        .collect();
    assert!(
        skipped.is_empty(),
        "redis-cli got another channel's message: {:?}",
        cli.seen
    );
}

#[test]
fn redis_cli_csv_psubscribe_star_prints_every_message() {
    let target = Target::start();
    let mut publisher = target.connection();
    let mut cli = Cli::spawn(target.addr(), &["--csv", "PSUBSCRIBE", "*"]);
    cli.expect_line("\"psubscribe\",\"*\",1");
    assert_eq!(publish(&mut publisher, "ch", "hello"), 1);
    assert_eq!(publish(&mut publisher, "other:ch", "two words"), 1);
    cli.expect_line("\"pmessage\",\"*\",\"ch\",\"hello\"");
    cli.expect_line("\"pmessage\",\"*\",\"other:ch\",\"two words\"");
}

#[test]
fn redis_cli_monitor_shows_another_clients_commands() {
    let target = Target::start();
    let mut con = target.connection();
    let mut cli = Cli::spawn(target.addr(), &["MONITOR"]);
    cli.expect_line("OK");
    let _: () = redis::cmd("SET")
        .arg("monitored key")
        .arg("a \"quoted\" value")
        .query(&mut con)
        .expect("SET");
    let _: Option<String> = redis::cmd("GET")
        .arg("monitored key")
        .query(&mut con)
        .expect("GET");
    // `<seconds>.<micros> [<db> <addr>] "SET" "monitored key" "a \"quoted\" value"`
    let line = cli.expect_matching("the SET line", |line| line.contains("\"SET\""));
    let (stamp, rest) = line.split_once(' ').expect("a timestamp first");
    let (seconds, micros) = stamp.split_once('.').expect("seconds.micros");
    assert!(
        seconds.len() >= 10 && seconds.bytes().all(|b| b.is_ascii_digit()),
        "timestamp {stamp:?} in {line:?}"
    );
    assert!(
        micros.len() == 6 && micros.bytes().all(|b| b.is_ascii_digit()),
        "timestamp {stamp:?} in {line:?}"
    );
    let local = con_addr(&mut con);
    assert_eq!(
        rest,
        format!("[0 {local}] \"SET\" \"monitored key\" \"a \\\"quoted\\\" value\""),
        "MONITOR line {line:?}"
    );
    let line = cli.expect_matching("the GET line", |line| line.contains("\"GET\""));
    assert!(
        line.ends_with(&format!("[0 {local}] \"GET\" \"monitored key\"")),
        "MONITOR line {line:?}"
    );
}

/// The client's own address as the server sees it (CLIENT INFO's `addr=`).
fn con_addr(con: &mut redis::Connection) -> String {
    let info: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query(con)
        .expect("CLIENT INFO");
    info.split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {info:?}"))
        .to_string()
}
