//! Test harness shared by the integration tests: an in-process Larder on a
//! free port, a real `redis-server` for differential tests, and a raw RESP
//! client that returns replies byte for byte.
#![allow(dead_code)]

pub mod postgres;
pub mod scenario;
pub mod writebehind;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use larder::shared::Shared;
use larder::{Config, Server};

/// A Larder server running in-process on its own runtime, on a free port.
/// Stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    /// The fresh `dir` the harness made, removed on drop (none when the
    /// test chose its own `dir`).
    own_dir: Option<std::path::PathBuf>,
}

/// A new empty directory under the system's temp dir, unique to this call:
/// servers started by tests work there, so that none loads or leaves a
/// stray dump.rdb.
pub fn fresh_dir(label: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "larder-{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a test directory");
    dir
}

impl TestServer {
    pub fn start() -> Self {
        Self::with_config(|_| {})
    }

    pub fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = fresh_dir("server");
        let mut config = Config {
            port: 0,
            dir: dir.display().to_string(),
            ..Config::default()
        };
        adjust(&mut config);
        let own_dir = (config.dir == dir.display().to_string()).then_some(dir.clone());
        if own_dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let server = runtime
            .block_on(Server::bind(config))
            .expect("bind test server");
        let addr = server.local_addr();
        let shared = server.shared();
        let running = runtime.spawn(server.run());
        // A server with a dataset to load (an RDB file, write-behind)
        // answers -LOADING until it is loaded: tests start after that.
        let deadline = Instant::now() + Duration::from_secs(120);
        while shared.persistence.is_loading() && !running.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the test server is still loading"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        TestServer {
            addr,
            shared,
            runtime: Some(runtime),
            own_dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// A `redis` crate connection speaking RESP2.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect with the redis crate")
    }

    /// A `redis` crate connection speaking RESP3.
    pub fn resp3_client(&self) -> redis::Connection {
        redis::Client::open(format!("{}?protocol=resp3", self.url()))
            .and_then(|c| c.get_connection())
            .expect("connect with the redis crate (RESP3)")
    }

    pub fn raw(&self) -> RawClient {
        RawClient::connect(self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.request_shutdown();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
        if let Some(dir) = self.own_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A free TCP port on loopback for an external server (redis-server, PostgreSQL).
///
/// Chosen below the kernel's ephemeral range (Linux: 32768-60999), so that
/// neither an in-process server bound to port 0 nor a client socket's local
/// port can take it between this check and the external server's bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread test binaries (separate processes) over the range.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = 20_000 + (std::process::id() % 500) as u16 * 20;
    for _ in 0..10_000 {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 12_000;
        let port = 20_000 + (start - 20_000 + offset) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// A real `redis-server` (Debian's package), for differential tests.
pub struct RedisServer {
    pub addr: SocketAddr,
    child: Child,
    /// Its working directory (`dir`), removed on drop when the harness
    /// made it.
    pub dir: std::path::PathBuf,
    own_dir: bool,
}

impl RedisServer {
    /// Starts a redis-server on a free port. The port is picked before the
    /// server binds it, so another process (an in-process Larder on port 0,
    /// say) may take it first: then redis-server exits and the start is
    /// retried on another port.
    pub fn start() -> Self {
        let dir = fresh_dir("redis");
        let mut server = Self::start_in(&dir, &[]);
        server.own_dir = true;
        server
    }

    /// A redis-server working in `dir` (where it loads and saves its RDB
    /// file), with `extra` arguments.
    pub fn start_in(dir: &std::path::Path, extra: &[&str]) -> Self {
        for _ in 0..5 {
            if let Some(server) = Self::try_start(dir, extra) {
                return server;
            }
        }
        panic!("redis-server did not start");
    }

    fn try_start(dir: &std::path::Path, extra: &[&str]) -> Option<Self> {
        let port = free_port();
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &dir.display().to_string()])
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for differential tests (apt-get install redis-server)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return None; // it could not bind the port
            }
            if let Ok(stream) = TcpStream::connect(addr) {
                let mut client = RawClient::from_stream(stream);
                // A connection reset (whatever held the port was closing)
                // is a retry like any other, not a failure.
                let asked = client
                    .stream
                    .write_all(&encode_command(&[b"INFO", b"server"]))
                    .is_ok();
                // Whoever answers must be this redis-server, not a Larder.
                if let Some(reply) = asked.then(|| client.try_read_reply()).flatten() {
                    let info = String::from_utf8_lossy(&reply);
                    if info.contains("redis_version") && !info.contains("larder_version") {
                        return Some(RedisServer {
                            addr,
                            child,
                            dir: dir.to_path_buf(),
                            own_dir: false,
                        });
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn raw(&self) -> RawClient {
        RawClient::connect(self.addr)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.own_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A client that sends bytes and returns whole replies as raw bytes.
pub struct RawClient {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one complete reply (any RESP2/RESP3 type), byte for byte.
    /// Panics if the connection closes or nothing arrives within 10 s.
    pub fn read_reply(&mut self) -> Vec<u8> {
        self.try_read_reply()
            .expect("connection closed before a reply")
    }

    /// Like `read_reply`, but `None` if the server closed the connection.
    pub fn try_read_reply(&mut self) -> Option<Vec<u8>> {
        loop {
            if !self.pending.is_empty() {
                match reply_length(&self.pending) {
                    Ok(Some(length)) => return Some(self.pending.drain(..length).collect()),
                    Ok(None) => {}
                    Err(error) => panic!(
                        "undecodable reply {:?}: {error:?}",
                        String::from_utf8_lossy(&self.pending)
                    ),
                }
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(error) => panic!("read failed: {error}"),
            }
        }
    }

    /// One reply if it arrives within `timeout`; tells a closed connection
    /// from silence. For frames pushed by other connections' commands.
    pub fn read_within(&mut self, timeout: Duration) -> Arrival {
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            if !self.pending.is_empty() {
                match reply_length(&self.pending) {
                    Ok(Some(length)) => {
                        break Arrival::Reply(self.pending.drain(..length).collect())
                    }
                    Ok(None) => {}
                    Err(error) => panic!(
                        "undecodable reply {:?}: {error:?}",
                        String::from_utf8_lossy(&self.pending)
                    ),
                }
            }
            let now = Instant::now();
            if now >= deadline {
                break Arrival::Nothing;
            }
            self.stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
                .expect("timeout");
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => break Arrival::Closed,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    break Arrival::Closed
                }
                Err(error) => panic!("read failed: {error}"),
            }
        };
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        outcome
    }

    /// Sends bytes, reporting failure (the server closed the connection)
    /// instead of panicking.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// True once the server has closed the connection (reads return EOF).
    pub fn is_closed(&mut self) -> bool {
        self.try_read_reply().is_none()
    }

    /// Sends one command as a RESP array and returns its raw reply.
    pub fn command(&mut self, args: &[&str]) -> Vec<u8> {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.command_bytes(&bytes)
    }

    pub fn command_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&encode_command(args));
        self.read_reply()
    }
}

/// What [`RawClient::read_within`] saw.
#[derive(Clone, PartialEq, Eq)]
pub enum Arrival {
    Reply(Vec<u8>),
    Closed,
    Nothing,
}

impl std::fmt::Debug for Arrival {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arrival::Reply(bytes) => write!(f, "Reply(\"{}\")", bytes.escape_ascii()),
            Arrival::Closed => write!(f, "Closed"),
            Arrival::Nothing => write!(f, "Nothing"),
        }
    }
}

/// The length of the first complete reply in `buf`, decoded with the
/// `redis-protocol` crate as an independent reference: RESP2 first (the
/// RESP3 decoder refuses RESP2's `$-1`/`*-1`), then RESP3.
pub fn reply_length(buf: &[u8]) -> Result<Option<usize>, String> {
    match redis_protocol::resp2::decode::decode(buf) {
        Ok(Some((_, length))) => return Ok(Some(length)),
        Ok(None) => return Ok(None),
        Err(_) => {}
    }
    match redis_protocol::resp3::decode::complete::decode(buf) {
        Ok(Some((_, length))) => Ok(Some(length)),
        Ok(None) => Ok(None),
        Err(error) => Err(format!("{error:?}")),
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Larder and a real Redis side by side: every command goes to both and the
/// replies must be identical, byte for byte.
pub struct Differential {
    pub larder: RawClient,
    pub redis: RawClient,
    _larder_server: TestServer,
    _redis_server: RedisServer,
}

impl Differential {
    pub fn start() -> Self {
        let larder_server = TestServer::start();
        let redis_server = RedisServer::start();
        Differential {
            larder: larder_server.raw(),
            redis: redis_server.raw(),
            _larder_server: larder_server,
            _redis_server: redis_server,
        }
    }

    /// Sends `args` to both servers and asserts identical replies; returns
    /// the reply.
    pub fn check(&mut self, args: &[&str]) -> Vec<u8> {
        let ours = self.larder.command(args);
        let theirs = self.redis.command(args);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "replies differ for {args:?}"
        );
        ours
    }

    /// Runs every command of a script (one command per line, split on
    /// whitespace; blank lines and `#` comments skipped) through `check`.
    pub fn script(&mut self, script: &str) {
        for line in script.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let args: Vec<&str> = line.split_whitespace().collect();
            self.check(&args);
        }
    }

    /// Sends the same raw bytes to both and compares the next reply.
    pub fn check_raw(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.larder.send(bytes);
        self.redis.send(bytes);
        let ours = self.larder.read_reply();
        let theirs = self.redis.read_reply();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "replies differ for raw input {:?}",
            String::from_utf8_lossy(bytes)
        );
        ours
    }
}

/// Larder and Redis side by side, with fresh connections on demand.
pub struct Pair {
    pub larder: TestServer,
    pub redis: RedisServer,
}

impl Pair {
    pub fn start() -> Self {
        Pair {
            larder: TestServer::start(),
            redis: RedisServer::start(),
        }
    }

    /// A new connection to each server.
    pub fn clients(&self) -> Clients {
        Clients {
            ours: self.larder.raw(),
            theirs: self.redis.raw(),
        }
    }
}

/// One connection to each server of a [`Pair`].
pub struct Clients {
    pub ours: RawClient,
    pub theirs: RawClient,
}

impl Clients {
    /// Sends `args` to both and asserts identical replies; returns the reply.
    pub fn same(&mut self, args: &[&str]) -> String {
        let a = self.ours.command(args);
        let b = self.theirs.command(args);
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "replies differ for {args:?}"
        );
        String::from_utf8_lossy(&a).into_owned()
    }

    /// Runs one command per line through `same` (blank lines and `#`
    /// comments skipped); `=> reply` after a command also checks the reply,
    /// with `\r\n` written as `|`.
    pub fn script(&mut self, script: &str) {
        for line in script.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (command, expected) = match line.split_once("=>") {
                Some((command, expected)) => (command, Some(expected.trim())),
                None => (line, None),
            };
            let args: Vec<&str> = command.split_whitespace().collect();
            let reply = self.same(&args);
            if let Some(expected) = expected {
                assert_eq!(reply.replace("\r\n", "|"), expected, "{command}");
            }
        }
    }
}
