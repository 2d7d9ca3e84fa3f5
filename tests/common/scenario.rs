//! Differential scenarios over several connections: a scenario opens
//! connections to one server, sends commands, reads replies and the frames
//! other connections' commands push, and writes everything it sees into a
//! transcript. The same scenario runs against a real redis-server and against
//! Larder, and the two transcripts must be equal, byte for byte.
//!
//! Frames pushed by other connections are read with a timeout, so a missing
//! frame shows up in the transcript as `(nothing)` rather than hanging.
//!
//! With `LARDER_SELFCHECK=1` in the environment, the Larder side is a second
//! redis-server: that checks the scenarios themselves (they must be
//! deterministic on Redis) and the expectations they assert on Redis.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{encode_command, Arrival, RawClient, RedisServer, TestServer};

/// How long a scenario waits for a frame it expects.
pub const EXPECTED_WITHIN: Duration = Duration::from_millis(1500);

/// True when the "Larder" side is a redis-server too (`LARDER_SELFCHECK=1`).
pub fn self_check() -> bool {
    std::env::var_os("LARDER_SELFCHECK").is_some_and(|v| v != "0")
}

/// A server a scenario can run against.
pub enum Target {
    InProcess(TestServer),
    Binary { addr: SocketAddr, child: Child },
    Redis(RedisServer),
}

impl Target {
    /// Larder in-process (a redis-server under `LARDER_SELFCHECK`).
    pub fn larder() -> Target {
        if self_check() {
            Target::Redis(RedisServer::start())
        } else {
            Target::InProcess(TestServer::start())
        }
    }

    /// The `larder-server` binary (its allocator counted, so INFO's
    /// used_memory is exact), with `--set name value` for each setting; a
    /// redis-server with the same settings under `LARDER_SELFCHECK`.
    pub fn larder_binary(settings: &[(&str, &str)]) -> Target {
        if self_check() {
            let target = Target::Redis(RedisServer::start());
            let mut client = target.raw();
            for (name, value) in settings {
                let reply = client.command(&["CONFIG", "SET", name, value]);
                assert_eq!(reply, b"+OK\r\n", "CONFIG SET {name} {value}");
            }
            return target;
        }
        for _ in 0..5 {
            let port = super::free_port();
            let mut command = Command::new(env!("CARGO_BIN_EXE_larder-server"));
            command.arg("--port").arg(port.to_string());
            // Its `dir` is ".": a fresh one, so no stray dump.rdb is loaded.
            command.current_dir(super::fresh_dir("binary"));
            for (name, value) in settings {
                command.arg("--set").arg(name).arg(value);
            }
            let mut child = command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn larder-server");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                // PONG, not -LOADING: with write-behind on, the server
                // loads (journal, warm start) before it serves.
                if let Ok(stream) = std::net::TcpStream::connect(addr) {
                    let mut client = super::RawClient::from_stream(stream);
                    client.send(&super::encode_command(&[b"PING"]));
                    if client.try_read_reply().as_deref() == Some(&b"+PONG\r\n"[..]) {
                        return Target::Binary { addr, child };
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("larder-server did not start");
    }

    /// A real redis-server.
    pub fn redis() -> Target {
        Target::Redis(RedisServer::start())
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Target::InProcess(server) => server.addr,
            Target::Binary { addr, .. } => *addr,
            Target::Redis(server) => server.addr,
        }
    }

    pub fn raw(&self) -> RawClient {
        RawClient::connect(self.addr())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Target::Binary { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Bytes as a readable line: printable ASCII as is, the rest escaped.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// One run of a scenario against one server.
pub struct Scenario {
    addr: SocketAddr,
    conns: Vec<Option<RawClient>>,
    /// Everything seen, one entry per command sent or frame read.
    pub log: Vec<String>,
    /// True on the reference server (Redis): `expect` asserts there.
    pub reference: bool,
    missed: usize,
}

impl Scenario {
    pub fn new(addr: SocketAddr, reference: bool) -> Self {
        Scenario {
            addr,
            conns: Vec::new(),
            log: Vec::new(),
            reference,
            missed: 0,
        }
    }

    /// Opens a new connection; returns its number.
    pub fn connect(&mut self) -> usize {
        self.conns.push(Some(RawClient::connect(self.addr)));
        self.conns.len() - 1
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.log.push(format!("# {}", text.into()));
    }

    /// Sends a command without reading anything.
    pub fn send(&mut self, c: usize, args: &[&[u8]]) {
        self.log.push(format!("{c}> {}", show_args(args)));
        if !self.client(c).try_send(&encode_command(args)) {
            self.log.push(format!("{c}! send failed"));
        }
    }

    /// Sends raw bytes (inline commands, pipelines).
    pub fn send_raw(&mut self, c: usize, bytes: &[u8]) {
        self.log.push(format!("{c}> raw {}", show(bytes)));
        if !self.client(c).try_send(bytes) {
            self.log.push(format!("{c}! send failed"));
        }
    }

    /// Reads the next frame on `c`, waiting up to [`EXPECTED_WITHIN`].
    pub fn read(&mut self, c: usize) -> Option<Vec<u8>> {
        self.read_for(c, EXPECTED_WITHIN)
    }

    /// Reads the next frame on `c`, waiting up to `wait`; logs what came
    /// (a frame, `(nothing)` or `(closed)`).
    pub fn read_for(&mut self, c: usize, wait: Duration) -> Option<Vec<u8>> {
        // A server that misses frames would make every later read wait: after
        // a few misses, stop waiting for long.
        let wait = if self.missed >= 3 {
            wait.min(Duration::from_millis(100))
        } else {
            wait
        };
        match self.client(c).read_within(wait) {
            Arrival::Reply(frame) => {
                self.log.push(format!("{c}< {}", show(&frame)));
                Some(frame)
            }
            Arrival::Nothing => {
                if wait >= EXPECTED_WITHIN.min(Duration::from_millis(500)) {
                    self.missed += 1;
                }
                self.log.push(format!("{c}< (nothing)"));
                None
            }
            Arrival::Closed => {
                self.log.push(format!("{c}< (closed)"));
                None
            }
        }
    }

    /// Checks that nothing arrives on `c` for a short while (100 ms).
    pub fn quiet(&mut self, c: usize) -> Option<Vec<u8>> {
        self.read_for(c, Duration::from_millis(100))
    }

    /// Sends a command and reads one frame.
    pub fn cmd_bytes(&mut self, c: usize, args: &[&[u8]]) -> Vec<u8> {
        self.send(c, args);
        self.read(c).unwrap_or_default()
    }

    pub fn cmd(&mut self, c: usize, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd_bytes(c, &args)
    }

    /// Runs one command per line (split on whitespace; blank lines and `#`
    /// comments skipped) on connection `c`; `=> reply` after a command
    /// checks the reply on Redis (with `\r\n` written as `|`).
    pub fn script(&mut self, c: usize, script: &str) {
        for line in script.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (command, expected) = match line.split_once("=>") {
                Some((command, expected)) => (command, Some(expected.trim())),
                None => (line, None),
            };
            let args: Vec<&str> = command.split_whitespace().collect();
            let reply = self.cmd(c, &args);
            if let Some(expected) = expected {
                self.expect(&reply, expected);
            }
        }
    }

    /// On the reference server, asserts `got` is `want` (`\r\n` written as
    /// `|`): the scenario's own expectations, checked on Redis. On Larder
    /// the transcript comparison does the checking.
    pub fn expect(&self, got: &[u8], want: &str) {
        if self.reference {
            assert_eq!(
                String::from_utf8_lossy(got).replace("\r\n", "|"),
                want,
                "Redis does not answer as the scenario expects"
            );
        }
    }

    /// Whether the server closed `c` within `wait` (frames still buffered
    /// before the close are skipped).
    pub fn closed_within(&mut self, c: usize, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.client(c).read_within(left) {
                Arrival::Closed => return true,
                Arrival::Nothing => return false,
                Arrival::Reply(_) => {}
            }
        }
    }

    /// Connection `c` itself.
    pub fn client(&mut self, c: usize) -> &mut RawClient {
        self.conns[c]
            .as_mut()
            .expect("the scenario disconnected this connection")
    }

    /// Drops connection `c` (closes the socket).
    pub fn disconnect(&mut self, c: usize) {
        self.log.push(format!("{c}> (disconnect)"));
        self.conns[c] = None;
    }
}

pub fn show_args(args: &[&[u8]]) -> String {
    args.iter().map(|a| show(a)).collect::<Vec<_>>().join(" ")
}

/// Runs `scenario` on a real Redis, then on Larder (fresh servers each), and
/// asserts equal transcripts.
pub fn differential(scenario: impl Fn(&mut Scenario)) {
    differential_on(Target::redis(), Target::larder(), scenario);
}

/// Like [`differential`], on given servers.
pub fn differential_on(theirs: Target, ours: Target, scenario: impl Fn(&mut Scenario)) {
    let mut reference = Scenario::new(theirs.addr(), true);
    scenario(&mut reference);
    if std::env::var_os("LARDER_SCENARIO_DUMP").is_some() {
        eprintln!("Redis transcript:\n{}", reference.log.join("\n"));
    }
    let mut candidate = Scenario::new(ours.addr(), false);
    scenario(&mut candidate);
    assert_same_transcripts(&reference.log, &candidate.log);
}

/// Compares a Redis transcript with a Larder one; the failure message is
/// a line diff (`-` Redis only, `+` Larder only, two lines of context).
pub fn assert_same_transcripts(redis: &[String], larder: &[String]) {
    if redis == larder {
        return;
    }
    panic!(
        "transcripts differ (- Redis, the reference; + Larder):\n{}",
        diff(redis, larder)
    );
}

/// A line diff of two transcripts (longest common subsequence), with two
/// lines of context around each change; at most 80 lines.
pub fn diff(a: &[String], b: &[String]) -> String {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: the LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            lines.push((' ', &a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            lines.push(('+', &b[j]));
            j += 1;
        } else {
            lines.push(('-', &a[i]));
            i += 1;
        }
    }
    // Within a run of changes, pair each Redis line with a Larder line.
    let mut paired: Vec<(char, &str)> = Vec::with_capacity(lines.len());
    let mut k = 0;
    while k < lines.len() {
        if lines[k].0 == ' ' {
            paired.push(lines[k]);
            k += 1;
            continue;
        }
        let end = (k..lines.len())
            .find(|&e| lines[e].0 == ' ')
            .unwrap_or(lines.len());
        let minus: Vec<_> = lines[k..end].iter().filter(|l| l.0 == '-').collect();
        let plus: Vec<_> = lines[k..end].iter().filter(|l| l.0 == '+').collect();
        for p in 0..minus.len().max(plus.len()) {
            paired.extend(minus.get(p).copied());
            paired.extend(plus.get(p).copied());
        }
        k = end;
    }
    let lines = paired;
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != ' ').collect();
    let mut out = Vec::new();
    let mut last_shown = None;
    for (k, (mark, line)) in lines.iter().enumerate() {
        let near = changed.iter().any(|&c| c.abs_diff(k) <= 2);
        if !near {
            continue;
        }
        if last_shown.is_some_and(|l: usize| l + 1 < k) {
            out.push("  ...".to_string());
        }
        out.push(format!("{mark} {line}"));
        last_shown = Some(k);
        if out.len() >= 80 {
            out.push("  (more differences follow)".to_string());
            break;
        }
    }
    out.join("\n")
}

/// A decoded element of a flat frame (an array or push of scalars).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    Bulk(Vec<u8>),
    Int(i64),
    Nil,
    Other(String),
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Bulk(bytes) => write!(f, "\"{}\"", show(bytes)),
            Item::Int(n) => write!(f, ":{n}"),
            Item::Nil => write!(f, "nil"),
            Item::Other(line) => write!(f, "{}", line.escape_debug()),
        }
    }
}

/// A frame in a short form that still tells any two frames apart: the type
/// and elements of a flat frame (`>4 ["pmessage", ...]`), else the raw bytes.
pub fn compact(frame: &[u8]) -> String {
    match items(frame) {
        Some(elements) if !elements.iter().any(|e| matches!(e, Item::Other(_))) => {
            format!("{}{} {elements:?}", show(&frame[..1]), elements.len())
        }
        _ => show(frame),
    }
}

/// The elements of a flat frame (`*N`, `>N`, `~N`, `%N` of bulk strings,
/// integers, nulls and simple strings); `None` if it is not one.
pub fn items(frame: &[u8]) -> Option<Vec<Item>> {
    fn line(buf: &[u8], pos: &mut usize) -> Option<String> {
        let end = buf[*pos..].windows(2).position(|w| w == b"\r\n")? + *pos;
        let text = String::from_utf8_lossy(&buf[*pos..end]).into_owned();
        *pos = end + 2;
        Some(text)
    }
    let mut pos = 0;
    let header = line(frame, &mut pos)?;
    let (kind, count) = header.split_at(1);
    if !matches!(kind, "*" | ">" | "~" | "%") {
        return None;
    }
    let mut count: usize = count.parse().ok()?;
    if kind == "%" {
        count *= 2;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let head = line(frame, &mut pos)?;
        let (kind, rest) = head.split_at(1);
        match kind {
            "$" if rest == "-1" => out.push(Item::Nil),
            "$" => {
                let len: usize = rest.parse().ok()?;
                out.push(Item::Bulk(frame.get(pos..pos + len)?.to_vec()));
                pos += len + 2;
            }
            ":" => out.push(Item::Int(rest.parse().ok()?)),
            "_" => out.push(Item::Nil),
            _ => out.push(Item::Other(head)),
        }
    }
    (pos == frame.len()).then_some(out)
}

impl Scenario {
    /// Sends a command whose reply is a flat array in no defined order
    /// (PUBSUB CHANNELS...): logs its type and its elements sorted.
    pub fn cmd_unordered(&mut self, c: usize, args: &[&str]) -> Vec<Item> {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.log.push(format!("{c}> {}", show_args(&bytes)));
        self.client(c).send(&encode_command(&bytes));
        let frame = match self.client(c).read_within(EXPECTED_WITHIN) {
            Arrival::Reply(frame) => frame,
            other => {
                self.log.push(format!("{c}< {other:?}"));
                return Vec::new();
            }
        };
        match items(&frame) {
            Some(mut elements) => {
                elements.sort();
                self.log
                    .push(format!("{c}< (sorted) {} {elements:?}", show(&frame[..1])));
                elements
            }
            None => {
                self.log.push(format!("{c}< {}", show(&frame)));
                Vec::new()
            }
        }
    }

    /// Reads `n` frames on `c` that may come in any order (frames for
    /// several matching patterns...): logs them sorted, as one entry.
    pub fn read_unordered(&mut self, c: usize, n: usize) {
        let mut frames = Vec::new();
        for _ in 0..n {
            match self.client(c).read_within(EXPECTED_WITHIN) {
                Arrival::Reply(frame) => frames.push(frame),
                other => {
                    frames.sort();
                    let shown: Vec<String> = frames.iter().map(|f| show(f)).collect();
                    self.log.push(format!(
                        "{c}< (in any order) {} then {other:?}",
                        shown.join(" ; ")
                    ));
                    return;
                }
            }
        }
        frames.sort();
        let shown: Vec<String> = frames.iter().map(|f| show(f)).collect();
        self.log
            .push(format!("{c}< (in any order) {}", shown.join(" ; ")));
    }
}
