//! Robustness of the network side: no client, and no fault of PostgreSQL,
//! can wedge the server or outlive CLIENT KILL, `timeout` or shutdown.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{encode_command, free_port, RawClient, TestServer};
use larder::{Config, Server};

/// A `write-behind-url` nothing listens on: PostgreSQL is unreachable.
fn unreachable_postgres_url() -> String {
    format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=1",
        free_port()
    )
}

fn with_unreachable_postgres(config: &mut Config) {
    config.write_behind_url = unreachable_postgres_url();
    config.write_behind_delay = 20;
    config.write_behind_shutdown_timeout = 300;
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// The ids in CLIENT LIST with `flags` containing `flag`.
fn ids_flagged(client: &mut RawClient, flag: char) -> Vec<u64> {
    let list = text(&client.command(&["CLIENT", "LIST"]));
    list.lines()
        .filter(|line| {
            line.split(' ').any(|field| {
                field
                    .strip_prefix("flags=")
                    .is_some_and(|f| f.contains(flag))
            })
        })
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .filter_map(|id| {
            id.trim_start_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .collect()
}

fn listed(client: &mut RawClient, id: u64) -> bool {
    text(&client.command(&["CLIENT", "LIST"]))
        .lines()
        .any(|line| line.contains(&format!("id={id} ")))
}

fn client_id(client: &mut RawClient) -> u64 {
    let reply = text(&client.command(&["CLIENT", "ID"]));
    reply
        .trim_start_matches(':')
        .trim()
        .parse()
        .expect("CLIENT ID")
}

/// Polls `done` every 20 ms for up to `budget`; true once it held.
fn within(budget: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + budget;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A PING must answer within a second (a generous "no stall" bound).
fn assert_ping_answers(client: &mut RawClient) {
    let started = Instant::now();
    assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "PING took {took:?}");
}

/// Connects `count` clients that each send WRITEBEHIND FLUSH (no timeout
/// argument: the default applies), with their ids, and waits until all
/// are blocked.
fn flush_waiters(
    addr: SocketAddr,
    observer: &mut RawClient,
    count: usize,
) -> Vec<(RawClient, u64)> {
    let waiters: Vec<(RawClient, u64)> = (0..count)
        .map(|_| {
            let mut waiter = RawClient::connect(addr);
            let id = client_id(&mut waiter);
            waiter.send(&encode_command(&[b"WRITEBEHIND", b"FLUSH"]));
            (waiter, id)
        })
        .collect();
    assert!(
        within(Duration::from_secs(10), || ids_flagged(observer, 'b').len()
            == count),
        "not every WRITEBEHIND FLUSH is waiting: {} of {count}",
        ids_flagged(observer, 'b').len()
    );
    waiters
}

#[test]
fn flush_waiters_hold_no_thread_and_yield_to_kill_and_unblock() {
    let server = TestServer::with_config(with_unreachable_postgres);
    let mut observer = server.raw();
    assert_eq!(observer.command(&["SET", "k", "v"]), b"+OK\r\n");
    // 50 waiters on a runtime of 2 worker threads: a thread each would
    // leave none for PING.
    let mut waiters = flush_waiters(server.addr, &mut observer, 50);
    let mut pinger = server.raw();
    for _ in 0..5 {
        assert_ping_answers(&mut pinger);
    }
    let mut blocked = ids_flagged(&mut observer, 'b');
    blocked.sort_unstable();
    let mut ids: Vec<u64> = waiters.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    assert_eq!(blocked, ids);
    // CLIENT KILL of a waiter closes it at once.
    let victim = waiters[0].1;
    assert_eq!(
        observer.command(&["CLIENT", "KILL", "ID", &victim.to_string()]),
        b":1\r\n"
    );
    assert!(
        within(Duration::from_secs(1), || !listed(&mut observer, victim)),
        "a killed waiter is still listed"
    );
    assert!(waiters[0].0.is_closed());
    // CLIENT UNBLOCK ... ERROR gives the UNBLOCKED error, TIMEOUT the
    // incomplete-flush error, and the clients go on.
    let unblocked = waiters[1].1;
    assert_eq!(
        observer.command(&["CLIENT", "UNBLOCK", &unblocked.to_string(), "ERROR"]),
        b":1\r\n"
    );
    assert_eq!(
        text(&waiters[1].0.read_reply()),
        "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    );
    assert_eq!(waiters[1].0.command(&["PING"]), b"+PONG\r\n");
    let timed_out = waiters[2].1;
    assert_eq!(
        observer.command(&["CLIENT", "UNBLOCK", &timed_out.to_string(), "TIMEOUT"]),
        b":1\r\n"
    );
    let reply = text(&waiters[2].0.read_reply());
    assert!(
        reply.starts_with(
            "-WRITEBEHIND flush did not complete: 1 changes are not in PostgreSQL yet"
        ),
        "{reply}"
    );
    assert_eq!(ids_flagged(&mut observer, 'b').len(), 47);
}

#[test]
fn flush_timeouts_reply_with_the_incomplete_flush_error() {
    let server = TestServer::with_config(with_unreachable_postgres);
    let mut client = server.raw();
    assert_eq!(client.command(&["SET", "k", "v"]), b"+OK\r\n");
    let started = Instant::now();
    let reply = text(&client.command(&["WRITEBEHIND", "FLUSH", "200"]));
    assert!(
        reply.starts_with(
            "-WRITEBEHIND flush did not complete: 1 changes are not in PostgreSQL yet"
        ),
        "{reply}"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    // Without an argument, write-behind-flush-timeout applies.
    assert_eq!(
        client.command(&["CONFIG", "GET", "write-behind-flush-timeout"]),
        b"*2\r\n$26\r\nwrite-behind-flush-timeout\r\n$5\r\n60000\r\n"
    );
    assert_eq!(
        client.command(&["CONFIG", "SET", "write-behind-flush-timeout", "150"]),
        b"+OK\r\n"
    );
    let started = Instant::now();
    let reply = text(&client.command(&["WRITEBEHIND", "FLUSH"]));
    assert!(
        reply.starts_with("-WRITEBEHIND flush did not complete"),
        "{reply}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The connection goes on, in order, after a wait.
    client.send(&encode_command(&[b"WRITEBEHIND", b"FLUSH", b"50"]));
    client.send(&encode_command(&[b"PING"]));
    assert!(text(&client.read_reply()).starts_with("-WRITEBEHIND flush did not complete"));
    assert_eq!(client.read_reply(), b"+PONG\r\n");
    assert!(text(&client.command(&["WRITEBEHIND", "FLUSH", "-1"])).starts_with("-ERR timeout"));
}

#[test]
fn shutdown_with_flush_waiters_is_prompt() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = Config {
        port: 0,
        ..Config::default()
    };
    with_unreachable_postgres(&mut config);
    let server = runtime
        .block_on(Server::start(config))
        .expect("start server");
    let mut observer = RawClient::connect(server.local_addr());
    assert_eq!(observer.command(&["SET", "k", "v"]), b"+OK\r\n");
    let mut waiters = flush_waiters(server.local_addr(), &mut observer, 20);
    let started = Instant::now();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), server.shutdown())
            .await
            .expect("shutdown did not complete within 5 s")
    });
    let took = started.elapsed();
    // The flush of the backlog has 300 ms (write-behind-shutdown-timeout).
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    for (waiter, _) in &mut waiters {
        assert!(waiter.is_closed());
    }
}

/// A client that pipelines big GETs and never reads its replies: the
/// server's writes to it stall.
fn stalled_reader(server: &TestServer) -> (RawClient, u64) {
    let mut setter = server.raw();
    let value = vec![b'x'; 1024 * 1024];
    assert_eq!(setter.command_bytes(&[b"SET", b"big", &value]), b"+OK\r\n");
    let mut reader = server.raw();
    let id = client_id(&mut reader);
    let mut pipeline = Vec::new();
    for _ in 0..100 {
        pipeline.extend_from_slice(&encode_command(&[b"GET", b"big"]));
    }
    reader.send(&pipeline);
    (reader, id)
}

#[test]
fn client_kill_removes_a_client_that_does_not_read() {
    let server = TestServer::start();
    let (_reader, id) = stalled_reader(&server);
    let mut observer = server.raw();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        listed(&mut observer, id),
        "the stalled client is gone already"
    );
    assert_eq!(
        observer.command(&["CLIENT", "KILL", "ID", &id.to_string()]),
        b":1\r\n"
    );
    assert!(
        within(Duration::from_secs(1), || !listed(&mut observer, id)),
        "a killed client that does not read is still listed"
    );
    assert_ping_answers(&mut observer);
}

#[test]
fn timeout_closes_a_client_that_does_not_read() {
    let server = TestServer::start();
    let (_reader, id) = stalled_reader(&server);
    let mut observer = server.raw();
    std::thread::sleep(Duration::from_millis(300));
    assert!(listed(&mut observer, id));
    assert_eq!(
        observer.command(&["CONFIG", "SET", "timeout", "1"]),
        b"+OK\r\n"
    );
    // The observer itself talks often enough to stay.
    let gone = within(Duration::from_secs(4), || !listed(&mut observer, id));
    assert!(gone, "timeout did not close a client that does not read");
}

/// The real `larder-server` binary, its output collected.
struct Binary {
    child: std::process::Child,
    addr: SocketAddr,
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Binary {
    /// Starts the binary with `args` (plus a port and bind address), under
    /// `shell_prefix` if given (e.g. `ulimit -n 64;`), and waits until it
    /// answers PING.
    fn start(shell_prefix: &str, args: &[&str]) -> Binary {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let port = free_port();
        let mut command_line = format!(
            "{shell_prefix} exec '{}' --port {port} --bind 127.0.0.1",
            env!("CARGO_BIN_EXE_larder-server")
        );
        for arg in args {
            command_line.push_str(&format!(" '{arg}'"));
        }
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(&command_line)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn larder-server");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut output) = output.lock() {
                        output.push_str(&line);
                        output.push('\n');
                    }
                }
            });
        }
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let answered = within(Duration::from_secs(20), || {
            std::net::TcpStream::connect(addr).is_ok_and(|stream| {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut client = RawClientProbe(stream);
                client.ping()
            })
        });
        let binary = Binary {
            child,
            addr,
            output,
        };
        assert!(answered, "larder-server did not start: {}", binary.log());
        binary
    }

    fn raw(&self) -> RawClient {
        RawClient::connect(self.addr)
    }

    fn log(&self) -> String {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits up to `budget` for the process to exit; true if it did.
    fn exits_within(&mut self, budget: Duration) -> bool {
        within(budget, || matches!(self.child.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PING over a plain socket that never panics (the server may not be up).
struct RawClientProbe(std::net::TcpStream);

impl RawClientProbe {
    fn ping(&mut self) -> bool {
        use std::io::{Read, Write};
        let mut reply = [0u8; 7];
        self.0.write_all(b"PING\r\n").is_ok()
            && self.0.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

/// A binary writing behind to an unreachable PostgreSQL, with pending
/// changes and clients waiting in WRITEBEHIND FLUSH.
fn busy_binary(shutdown_timeout: &str) -> (Binary, Vec<(RawClient, u64)>) {
    let url = unreachable_postgres_url();
    let binary = Binary::start(
        "",
        &[
            "--write-behind-url",
            &url,
            "--write-behind-shutdown-timeout",
            "60000",
            "--shutdown-timeout",
            shutdown_timeout,
        ],
    );
    let mut client = binary.raw();
    let mut pipeline = Vec::new();
    for i in 0..200 {
        pipeline.extend_from_slice(&encode_command(&[b"SET", format!("k{i}").as_bytes(), b"v"]));
    }
    client.send(&pipeline);
    for _ in 0..200 {
        assert_eq!(client.read_reply(), b"+OK\r\n");
    }
    let waiters = flush_waiters(binary.addr, &mut client, 10);
    (binary, waiters)
}

#[test]
fn sigterm_stops_the_binary_within_shutdown_timeout() {
    let (mut binary, _waiters) = busy_binary("2");
    let started = Instant::now();
    binary.signal("TERM");
    // The flusher alone would retry PostgreSQL for 60 s.
    assert!(
        binary.exits_within(Duration::from_secs(5)),
        "still running 5 s after SIGTERM with shutdown-timeout 2: {}",
        binary.log()
    );
    let took = started.elapsed();
    let log = binary.log();
    assert!(
        log.contains("200 write-behind changes not in PostgreSQL: lost"),
        "the log does not say what was left undone ({took:?}): {log}"
    );
}

#[test]
fn a_second_sigint_exits_at_once_a_second_sigterm_does_not() {
    let (mut binary, _waiters) = busy_binary("60");
    binary.signal("TERM");
    assert!(
        !binary.exits_within(Duration::from_millis(500)),
        "the server should still be flushing"
    );
    // As Redis: SIGTERM again lets the shutdown go on...
    binary.signal("TERM");
    assert!(
        !binary.exits_within(Duration::from_millis(500)),
        "a second SIGTERM cut the shutdown short"
    );
    // ...Ctrl-C again means now.
    binary.signal("INT");
    assert!(
        binary.exits_within(Duration::from_secs(1)),
        "a second signal did not exit at once: {}",
        binary.log()
    );
    assert!(binary.log().contains("You insist... exiting now."));
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmRSS:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .expect("VmRSS")
}

fn info_field(client: &mut RawClient, section: &str, field: &str) -> u64 {
    text(&client.command(&["INFO", section]))
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO {field}"))
}

/// `field=` of each CLIENT LIST line whose `cmd=` is `cmd`.
fn client_list_field(client: &mut RawClient, field: &str) -> Vec<u64> {
    text(&client.command(&["CLIENT", "LIST"]))
        .lines()
        .filter(|line| !line.contains("cmd=client"))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(&format!("{field}=")))
                .and_then(|v| v.parse().ok())
        })
        .collect()
}

#[test]
fn announced_huge_arguments_cost_what_has_arrived() {
    let binary = Binary::start("", &[]);
    let pid = binary.child.id();
    let mut observer = binary.raw();
    let mut clients: Vec<RawClient> = (0..20).map(|_| binary.raw()).collect();
    for client in &mut clients {
        assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
    }
    let rss_before = rss_kib(pid);
    let used_before = info_field(&mut observer, "memory", "used_memory");
    let chunk = vec![b'a'; 24 * 1024];
    for client in &mut clients {
        client.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n");
        client.send(&chunk);
    }
    let header = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n".len() as u64;
    let arrived = within(Duration::from_secs(10), || {
        let qbufs = client_list_field(&mut observer, "qbuf");
        qbufs.len() == 20 && qbufs.iter().all(|&q| q == header + 24 * 1024)
    });
    assert!(
        arrived,
        "CLIENT LIST qbuf: {:?}",
        client_list_field(&mut observer, "qbuf")
    );
    // The buffer grows with what came, not with what was announced.
    for free in client_list_field(&mut observer, "qbuf-free") {
        assert!(free <= 64 * 1024, "qbuf-free={free}");
    }
    for total in client_list_field(&mut observer, "tot-mem") {
        assert!((24 * 1024..256 * 1024).contains(&total), "tot-mem={total}");
    }
    let rss_growth_kib = rss_kib(pid).saturating_sub(rss_before);
    let used_growth =
        info_field(&mut observer, "memory", "used_memory").saturating_sub(used_before);
    eprintln!("20 clients x 24 KiB of a 512 MB argument: RSS +{rss_growth_kib} KiB, used_memory +{used_growth} B");
    // Before: 27-68 MB each, over 500 MB for 20 such clients.
    assert!(
        rss_growth_kib < 16 * 1024,
        "RSS grew by {rss_growth_kib} KiB"
    );
    assert!(
        used_growth < 8 * 1024 * 1024,
        "used_memory grew by {used_growth}"
    );
    // MEMORY STATS counts the query buffers in clients.normal.
    let stats = text(&observer.command(&["MEMORY", "STATS"]));
    let clients_normal: u64 = stats
        .split("clients.normal\r\n:")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .and_then(|n| n.parse().ok())
        .expect("clients.normal");
    assert!(
        clients_normal >= 20 * 24 * 1024,
        "clients.normal={clients_normal}"
    );
}

#[test]
fn a_low_open_file_limit_lowers_maxclients_and_refuses_the_surplus() {
    // `ulimit -n` in bash sets the hard limit too: it cannot be raised.
    let binary = Binary::start("ulimit -n 64;", &[]);
    let mut observer = binary.raw();
    assert_eq!(
        observer.command(&["CONFIG", "GET", "maxclients"]),
        b"*2\r\n$10\r\nmaxclients\r\n$2\r\n32\r\n"
    );
    let log = binary.log();
    assert!(
        log.contains("Current maximum open files is 64. maxclients has been reduced to 32 to compensate for low ulimit."),
        "{log}"
    );
    // Nor can CONFIG SET take it past the limit (Redis's words).
    assert_eq!(
        observer.command(&["CONFIG", "SET", "maxclients", "1000"]),
        &b"-ERR CONFIG SET failed (possibly related to argument 'maxclients') - The operating system is not able to handle the specified number of clients, try with 32\r\n"[..]
    );
    assert_eq!(
        observer.command(&["CONFIG", "GET", "maxclients"]),
        b"*2\r\n$10\r\nmaxclients\r\n$2\r\n32\r\n"
    );
    // 31 more fit beside the observer, once the server has seen the
    // start-up probe's connection close (under load it may not have yet).
    let alone = within(Duration::from_secs(5), || {
        info_field(&mut observer, "clients", "connected_clients") == 1
    });
    assert!(alone, "the start-up probe's connection is still open");
    let mut served: Vec<RawClient> = (0..31).map(|_| binary.raw()).collect();
    for client in &mut served {
        assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
    }
    // Many more at once, past the descriptors left: each is refused with
    // the error, none hangs.
    let addr = binary.addr;
    let surplus: Vec<_> = (0..80)
        .map(|_| {
            std::thread::spawn(move || {
                let mut client = RawClient::connect(addr);
                client.send(&encode_command(&[b"PING"]));
                client.try_read_reply()
            })
        })
        .collect();
    for attempt in surplus {
        let reply = attempt.join().expect("surplus client");
        assert_eq!(
            reply.as_deref(),
            Some(&b"-ERR max number of clients reached\r\n"[..])
        );
    }
    assert_ping_answers(&mut observer);
    assert_ping_answers(&mut served[30]);
    assert_eq!(
        info_field(&mut observer, "stats", "rejected_connections"),
        80
    );
    // Accept failures (if any) are not logged once per try.
    let accept_lines = binary.log().matches("Accepting client connection").count();
    assert!(accept_lines <= 2, "{accept_lines} accept failures logged");
}

#[test]
fn maxclients_holds_when_clients_connect_together() {
    let server = TestServer::with_config(|config| config.maxclients = 10);
    let mut observer = server.raw();
    let addr = server.addr;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let attempts: Vec<_> = (0..50)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut client = RawClient::connect(addr);
                client.send(&encode_command(&[b"PING"]));
                let reply = client.try_read_reply();
                // Stay connected until every attempt has its answer.
                barrier.wait();
                reply
            })
        })
        .collect();
    let replies: Vec<_> = attempts
        .into_iter()
        .map(|attempt| attempt.join().expect("client thread"))
        .collect();
    let served = replies
        .iter()
        .filter(|reply| reply.as_deref() == Some(&b"+PONG\r\n"[..]))
        .count();
    let refused = replies
        .iter()
        .filter(|reply| reply.as_deref() == Some(&b"-ERR max number of clients reached\r\n"[..]))
        .count();
    assert_eq!((served, refused), (9, 41));
    assert_ping_answers(&mut observer);
}

#[test]
fn tcp_keepalive_sets_the_probe_interval() {
    let server = TestServer::with_config(|config| config.tcp_keepalive = 7);
    let mut client = server.raw();
    assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
    // `ss -o` shows the server side's keepalive timer: 7 s, not the
    // system's default 2 hours.
    let port = server.addr.port();
    let output = std::process::Command::new("ss")
        .args([
            "-tnoH",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .expect("ss (iproute2) must be installed");
    let listing = String::from_utf8_lossy(&output.stdout);
    let timer = listing
        .split("timer:(keepalive,")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no keepalive timer: {listing}"));
    assert!(
        !timer.contains("min") && !timer.contains('h'),
        "keepalive timer {timer}"
    );
    let seconds: f64 = timer
        .trim_end_matches("sec")
        .trim_end_matches("ms")
        .parse()
        .unwrap_or_else(|_| panic!("keepalive timer {timer}"));
    assert!(seconds <= 7.0, "keepalive timer {timer}");
}

/// On one worker thread a pipelined client's replies wait for the other
/// ready connections (see `requeue_behind_ready_tasks`): many pipelining
/// clients at once each get every reply, in order, while another client
/// sends one request at a time and an idle one is killed.
#[test]
fn pipelines_on_one_worker_get_their_replies_in_order() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config {
        port: 0,
        ..Config::default()
    };
    let server = runtime
        .block_on(Server::start(config))
        .expect("start server");
    let addr = server.local_addr();
    let mut doomed = RawClient::connect(addr);
    assert_eq!(doomed.command(&["CLIENT", "SETNAME", "doomed"]), b"+OK\r\n");
    let pipeliners: Vec<_> = (0..8)
        .map(|client| {
            std::thread::spawn(move || {
                let mut raw = RawClient::connect(addr);
                for round in 0..100 {
                    let mut batch = Vec::new();
                    for i in 0..16 {
                        let key = format!("c{client}:k{i}");
                        let value = format!("{client}-{round}-{i}");
                        batch.extend(encode_command(&[b"SET", key.as_bytes(), value.as_bytes()]));
                        batch.extend(encode_command(&[b"GET", key.as_bytes()]));
                        batch.extend(encode_command(&[
                            b"INCR",
                            format!("c{client}:n").as_bytes(),
                        ]));
                    }
                    raw.send(&batch);
                    for i in 0..16 {
                        assert_eq!(raw.read_reply(), b"+OK\r\n");
                        let value = format!("{client}-{round}-{i}");
                        let expected = format!("${}\r\n{value}\r\n", value.len());
                        assert_eq!(text(&raw.read_reply()), expected);
                        let count = round * 16 + i + 1;
                        assert_eq!(text(&raw.read_reply()), format!(":{count}\r\n"));
                    }
                }
            })
        })
        .collect();
    // Meanwhile: one request at a time, then a kill.
    let mut single = RawClient::connect(addr);
    for i in 0..200 {
        let reply = single.command(&["ECHO", &i.to_string()]);
        assert_eq!(text(&reply), format!("${}\r\n{i}\r\n", i.to_string().len()));
    }
    let mut killer = RawClient::connect(addr);
    let list = text(&killer.command(&["CLIENT", "LIST"]));
    let id = list
        .lines()
        .find(|line| line.contains("name=doomed"))
        .and_then(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("the doomed client is listed")
        .to_string();
    assert_eq!(killer.command(&["CLIENT", "KILL", "ID", &id]), b":1\r\n");
    for pipeliner in pipeliners {
        pipeliner.join().expect("a pipelining client failed");
    }
    assert!(doomed.is_closed());
    runtime.block_on(server.shutdown());
}

/// With one worker thread, a pipeline of slow commands lets the worker's
/// other connections in between (after each millisecond of commands),
/// where it used to keep them waiting for its whole length.
#[test]
fn a_pipeline_of_slow_commands_does_not_hold_back_other_clients() {
    let binary = Binary::start("TOKIO_WORKER_THREADS=1", &[]);
    let mut slow = binary.raw();
    let mut other = binary.raw();
    // Two disjoint sets of 50,000 members: SINTER walks one and looks each
    // member up in the other, on the worker, and replies with an empty
    // array (no full socket buffer makes the pipeline wait).
    for (key, prefix) in [("s1", "a"), ("s2", "b")] {
        for chunk in 0..50 {
            let mut args = vec!["SADD".to_string(), key.to_string()];
            args.extend((0..1000).map(|i| format!("{prefix}{}", chunk * 1000 + i)));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(slow.command(&args), b":1000\r\n");
        }
    }
    assert_eq!(other.command(&["PING"]), b"+PONG\r\n");
    // 40 of them, then a mark that the pipeline has run.
    let mut pipeline = "*3\r\n$6\r\nSINTER\r\n$2\r\ns1\r\n$2\r\ns2\r\n".repeat(40);
    pipeline.push_str("*3\r\n$3\r\nSET\r\n$4\r\ndone\r\n$1\r\n1\r\n");
    let sent = Instant::now();
    slow.send(pipeline.as_bytes());
    // The other client's request, sent while the pipeline runs (it takes
    // about a second in a debug build), runs before the pipeline's end.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        other.command(&["GET", "done"]),
        b"$-1\r\n",
        "the other client was served only after the whole pipeline"
    );
    let other_served = sent.elapsed();
    for _ in 0..40 {
        assert_eq!(slow.read_reply(), b"*0\r\n");
    }
    assert_eq!(slow.read_reply(), b"+OK\r\n");
    eprintln!(
        "served after {other_served:?}; pipeline ran {:?}",
        sent.elapsed()
    );
}
