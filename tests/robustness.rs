//! Abusive clients: garbage, truncated frames, huge declared bulks, huge
//! pipelines, slow-loris writers, too many clients, idle clients, oversized
//! query buffers. In every case the server stays up and a well-behaved
//! client keeps getting prompt answers. Each test is bounded in time.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{encode_command, RawClient, RedisServer, TestServer};

/// The longest a PING may take while the server is being abused (debug
/// build, two shared cores: generous, but far below "stuck").
const PROMPT: Duration = Duration::from_millis(1000);

/// A well-behaved client that PINGs in the background and records the
/// slowest round trip.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, Duration)>,
}

impl Probe {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let mut client = RawClient::connect(addr);
        // Registered with the server before the abuse starts.
        assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
        let thread = std::thread::spawn(move || {
            let (mut count, mut slowest) = (0, Duration::ZERO);
            loop {
                let started = Instant::now();
                assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
                slowest = slowest.max(started.elapsed());
                count += 1;
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (count, slowest)
        });
        Probe { stop, thread }
    }

    /// Stops the probe and asserts every PING was answered promptly.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (count, slowest) = self.thread.join().expect("probe thread");
        assert!(count > 0, "the probe got no answer at all");
        assert!(slowest < PROMPT, "a PING took {slowest:?}");
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// Reads until the server closes the connection (or 10 s pass: a failure).
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut output = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return output,
            Ok(n) => output.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return output,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

/// Number of connected clients, as the server counts them.
fn connected(server: &TestServer) -> usize {
    server.shared.clients.len()
}

/// Waits until the server counts `n` clients (connections are unregistered
/// asynchronously after they close).
fn wait_for_clients(server: &TestServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while connected(server) != n {
        assert!(
            Instant::now() < deadline,
            "{} clients connected, expected {n}",
            connected(server)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A small deterministic generator for garbage.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn garbage_bytes() {
    let server = TestServer::start();
    let probe = Probe::start(server.addr);
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let prefixes: [&[u8]; 6] = [
        b"",
        b"*",
        b"*2\r\n",
        b"*1\r\n$",
        b"$",
        b"*3\r\n$3\r\nSET\r\n",
    ];
    for round in 0..60 {
        let mut stream = connect(server.addr);
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut input = prefixes[round % prefixes.len()].to_vec();
        let len = 1 + (rng.next() % 4096) as usize;
        input.extend(rng.bytes(len));
        let _ = stream.write_all(&input);
        // Whatever comes back (errors, or nothing while the server waits
        // for more), it must be well-formed RESP.
        let mut output = Vec::new();
        let mut chunk = [0u8; 65536];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            output.extend_from_slice(&chunk[..n]);
        }
        let mut rest = &output[..];
        while !rest.is_empty() {
            assert_eq!(rest[0], b'-', "only error replies to garbage: {output:?}");
            let end = rest.windows(2).position(|w| w == b"\r\n").expect("CRLF");
            rest = &rest[end + 2..];
        }
    }
    probe.finish();
    let mut client = server.raw();
    assert_eq!(client.command(&["SET", "still", "here"]), b"+OK\r\n");
    assert_eq!(client.command(&["GET", "still"]), b"$4\r\nhere\r\n");
}

#[test]
fn truncated_frames_then_close() {
    let server = TestServer::start();
    let mut client = server.raw();
    assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
    let baseline = connected(&server);
    let probe = Probe::start(server.addr);
    let frame = encode_command(&[b"SET", b"truncated", b"some value here"]);
    for cut in 1..frame.len() {
        let mut stream = connect(server.addr);
        stream.write_all(&frame[..cut]).unwrap();
        drop(stream);
    }
    // A half-sent inline request too.
    let mut stream = connect(server.addr);
    stream.write_all(b"SET truncated inl").unwrap();
    drop(stream);
    probe.finish();
    // Nothing half-parsed was executed, and every connection is gone.
    assert_eq!(client.command(&["GET", "truncated"]), b"$-1\r\n");
    wait_for_clients(&server, baseline);
}

#[test]
fn huge_declared_bulk_with_a_slow_trickle_then_close() {
    let server = TestServer::start();
    let mut client = server.raw();
    assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
    let baseline = connected(&server);
    let probe = Probe::start(server.addr);
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(server.addr);
        stream
            .write_all(b"*2\r\n$4\r\nECHO\r\n$536870912\r\n")
            .unwrap();
        streams.push(stream);
    }
    for _ in 0..10 {
        for stream in &mut streams {
            stream.write_all(&[b'x'; 1000]).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let clients = parse_int(&client.command(&["INFO", "clients"]), "connected_clients");
    assert_eq!(clients, baseline + 4 + 1, "the probe and the four senders");
    drop(streams);
    probe.finish();
    wait_for_clients(&server, baseline);
    assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
}

fn parse_int(info: &[u8], field: &str) -> usize {
    let text = String::from_utf8_lossy(info);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_hundred_thousand_pipelined_commands() {
    const N: usize = 100_000;
    let server = TestServer::start();
    let probe = Probe::start(server.addr);
    let mut stream = connect(server.addr);
    let mut writer = stream.try_clone().unwrap();
    // Write from one thread while reading from another, so that neither
    // side's socket buffers can fill up and stall.
    let sender = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..N {
            let i = i.to_string();
            batch.extend(encode_command(&[b"ECHO", i.as_bytes()]));
            if batch.len() > 256 * 1024 {
                writer.write_all(&batch).unwrap();
                batch.clear();
            }
        }
        writer.write_all(&batch).unwrap();
    });
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut next = 0usize;
    while next < N {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {next} replies");
        pending.extend_from_slice(&chunk[..n]);
        // Replies come back in order: $<len>\r\n<i>\r\n.
        let mut at = 0;
        loop {
            let expected = next.to_string();
            let reply = format!("${}\r\n{}\r\n", expected.len(), expected);
            if pending.len() - at < reply.len() {
                break;
            }
            assert_eq!(
                &pending[at..at + reply.len()],
                reply.as_bytes(),
                "reply {next}"
            );
            at += reply.len();
            next += 1;
        }
        pending.drain(..at);
        assert!(started.elapsed() < Duration::from_secs(30), "too slow");
    }
    sender.join().unwrap();
    probe.finish();
    let mut client = server.raw();
    assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
}

#[test]
fn slow_loris() {
    let server = TestServer::start();
    let probe = Probe::start(server.addr);
    let mut slow = connect(server.addr);
    let frame = encode_command(&[b"PING"]);
    for byte in &frame {
        slow.write_all(std::slice::from_ref(byte)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut reply = [0u8; 7];
    slow.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    probe.finish();
}

#[test]
fn maxclients_refuses_extra_connections_like_redis() {
    let larder = TestServer::start();
    let redis = RedisServer::start();
    let mut outputs = Vec::new();
    for addr in [larder.addr, redis.addr] {
        let mut first = RawClient::connect(addr);
        assert_eq!(
            first.command(&["CONFIG", "SET", "maxclients", "2"]),
            b"+OK\r\n"
        );
        let mut second = RawClient::connect(addr);
        assert_eq!(second.command(&["PING"]), b"+PONG\r\n");
        let received = parse_int(
            &first.command(&["INFO", "stats"]),
            "total_connections_received",
        );
        let mut third = connect(addr);
        let output = read_to_close(&mut third);
        assert_eq!(first.command(&["PING"]), b"+PONG\r\n");
        let stats = first.command(&["INFO", "stats"]);
        assert_eq!(parse_int(&stats, "rejected_connections"), 1);
        // A refused connection is not counted as received.
        assert_eq!(parse_int(&stats, "total_connections_received"), received);
        // Once a client leaves, a new one gets in.
        drop(second);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut again = connect(addr);
            again.write_all(&encode_command(&[b"PING"])).unwrap();
            let mut reply = [0u8; 7];
            if again.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n" {
                break;
            }
            assert!(Instant::now() < deadline, "no room after a client left");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            first.command(&["CONFIG", "SET", "maxclients", "10000"]),
            b"+OK\r\n"
        );
        outputs.push(String::from_utf8_lossy(&output).into_owned());
    }
    assert_eq!(outputs[0], "-ERR max number of clients reached\r\n");
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn timeout_closes_idle_clients() {
    let server = TestServer::start();
    // Connected before the setting changes: it applies to it too.
    let mut idle = connect(server.addr);
    idle.write_all(&encode_command(&[b"PING"])).unwrap();
    let mut pong = [0u8; 7];
    idle.read_exact(&mut pong).unwrap();
    let mut admin = server.raw();
    assert_eq!(
        admin.command(&["CONFIG", "SET", "timeout", "1"]),
        b"+OK\r\n"
    );
    let mut active = server.raw();
    let started = Instant::now();
    let mut idle_closed_at = None;
    idle.set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    while started.elapsed() < Duration::from_millis(3500) {
        assert_eq!(active.command(&["PING"]), b"+PONG\r\n");
        let mut byte = [0u8; 1];
        match idle.read(&mut byte) {
            Ok(0) => {
                idle_closed_at.get_or_insert(started.elapsed());
                break;
            }
            Ok(_) => panic!("the idle client got data"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                idle_closed_at.get_or_insert(started.elapsed());
                break;
            }
            Err(_) => {} // still open
        }
    }
    let closed_at = idle_closed_at.expect("the idle client was not closed");
    assert!(
        closed_at >= Duration::from_millis(900),
        "closed too early: {closed_at:?}"
    );
    // The active client, talking every 250 ms, is still there.
    assert_eq!(active.command(&["PING"]), b"+PONG\r\n");
    assert_eq!(
        active.command(&["CONFIG", "SET", "timeout", "0"]),
        b"+OK\r\n"
    );
}

#[test]
fn timeout_spares_blocked_clients_and_slow_senders() {
    let server = TestServer::start();
    let mut admin = server.raw();
    assert_eq!(
        admin.command(&["CONFIG", "SET", "timeout", "1"]),
        b"+OK\r\n"
    );
    // Blocked with no timeout of its own: its command waits, it is not idle.
    let mut blocked = connect(server.addr);
    blocked
        .write_all(&encode_command(&[b"BLPOP", b"queue", b"0"]))
        .unwrap();
    // Sends a big argument a little at a time: every read is activity.
    let mut slow = connect(server.addr);
    slow.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$20\r\n")
        .unwrap();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        slow.write_all(b"xx").unwrap();
        assert_eq!(admin.command(&["PING"]), b"+PONG\r\n");
    }
    slow.write_all(b"\r\n").unwrap();
    let mut ok = [0u8; 5];
    slow.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    assert_eq!(admin.command(&["RPUSH", "queue", "job"]), b":1\r\n");
    let mut served = [0u8; 24];
    blocked.read_exact(&mut served).unwrap();
    assert_eq!(&served, b"*2\r\n$5\r\nqueue\r\n$3\r\njob\r\n");
    assert_eq!(
        admin.command(&["CONFIG", "SET", "timeout", "0"]),
        b"+OK\r\n"
    );
}

#[test]
fn client_query_buffer_limit_closes_the_client_like_redis() {
    let larder = TestServer::start();
    let redis = RedisServer::start();
    let probe = Probe::start(larder.addr);
    for addr in [larder.addr, redis.addr] {
        let mut admin = RawClient::connect(addr);
        assert_eq!(
            admin.command(&["CONFIG", "SET", "client-query-buffer-limit", "1mb"]),
            b"+OK\r\n"
        );
        let mut stream = connect(addr);
        stream
            .write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$2097152\r\n")
            .unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        // Stop writing once the server has hung up.
        while sent < 1536 * 1024 {
            if stream.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        let output = read_to_close(&mut stream);
        assert_eq!(output, b"", "closed without a reply");
        assert_eq!(admin.command(&["GET", "big"]), b"$-1\r\n");
        assert_eq!(admin.command(&["PING"]), b"+PONG\r\n");
        // A complete request under the limit still works.
        let value = vec![b'y'; 512 * 1024];
        assert_eq!(admin.command_bytes(&[b"SET", b"big", &value]), b"+OK\r\n");
    }
    probe.finish();
}
