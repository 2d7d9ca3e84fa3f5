//! Latency at a fixed offered load, against any Redis-compatible server.
//!
//! redis-benchmark sends as fast as the server answers, so two servers of
//! different speeds are measured at different loads, and its latency of a
//! pipelined request is the time to the first byte of the batch's first
//! reply. This sends on a schedule instead (open loop, as wrk2 does):
//! batch `n` of `--pipeline` requests is due at `n × pipeline / rate`
//! seconds, on connection `n mod clients`, whether or not the earlier ones
//! were answered. A request's latency runs from when its batch was due (not
//! when it was sent, so a late sender counts against the server: no
//! coordinated omission) to when its own reply arrived.
//!
//! One thread does everything and never sleeps: it sends the batches that
//! are due and asks epoll, without waiting, which connections have replies
//! to read, so timing is exact to a few microseconds and no wake-up adds
//! to the figures. It therefore takes a whole core; pin it apart from the
//! server.
//!
//! Workloads are redis-benchmark's, with its key names (`key:<12 digits>`
//! over `--keyspace`, `counter:`, `myhash`, `mylist`, `myzset`): ping, get,
//! set, incr, mget, mset (10 keys), hset, hget, lpush, lpop, zadd, zrange
//! (0 9), getone and setone (one key). It prints the percentiles and one
//! tab-separated `RESULT` line for tools/paced-latency.sh.
//!
//! ```text
//! cargo run --release --example paced_latency -- --port 6379 --workload get --rate 100000
//! ```

mod support;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use support::encode;

struct Args {
    port: u16,
    workload: String,
    size: usize,
    pipeline: usize,
    clients: usize,
    rate: f64,
    warmup: f64,
    seconds: f64,
    keyspace: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 6379,
        workload: "get".into(),
        size: 32,
        pipeline: 1,
        clients: 50,
        rate: 100_000.0,
        warmup: 1.0,
        seconds: 4.0,
        keyspace: 1_000_000,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--port" => args.port = value.parse().expect("--port"),
            "--workload" => args.workload = value,
            "--size" => args.size = value.parse().expect("--size"),
            "--pipeline" => args.pipeline = value.parse().expect("--pipeline"),
            "--clients" => args.clients = value.parse().expect("--clients"),
            "--rate" => args.rate = value.parse().expect("--rate"),
            "--warmup" => args.warmup = value.parse().expect("--warmup"),
            "--seconds" => args.seconds = value.parse().expect("--seconds"),
            "--keyspace" => args.keyspace = value.parse().expect("--keyspace"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(args.pipeline > 0 && args.clients > 0 && args.rate > 0.0);
    args
}

/// Builds a workload's requests, with random keys as redis-benchmark's
/// `-r` makes them.
struct Requests {
    workload: String,
    value: Vec<u8>,
    keyspace: u64,
    seed: u64,
}

impl Requests {
    fn random_key(&mut self, prefix: &str) -> Vec<u8> {
        // xorshift64: cheap, and the same sequence for both servers.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        format!("{prefix}{:012}", self.seed % self.keyspace).into_bytes()
    }

    fn append(&mut self, out: &mut Vec<u8>) {
        let value = self.value.clone();
        match self.workload.as_str() {
            "ping" => encode(out, &[b"PING"]),
            "get" => {
                let key = self.random_key("key:");
                encode(out, &[b"GET", &key]);
            }
            "set" => {
                let key = self.random_key("key:");
                encode(out, &[b"SET", &key, &value]);
            }
            "incr" => {
                let key = self.random_key("counter:");
                encode(out, &[b"INCR", &key]);
            }
            "mget" => {
                let keys: Vec<Vec<u8>> = (0..10).map(|_| self.random_key("key:")).collect();
                let mut args: Vec<&[u8]> = vec![b"MGET"];
                args.extend(keys.iter().map(Vec::as_slice));
                encode(out, &args);
            }
            "mset" => {
                let keys: Vec<Vec<u8>> = (0..10).map(|_| self.random_key("key:")).collect();
                let mut args: Vec<&[u8]> = vec![b"MSET"];
                for key in &keys {
                    args.push(key);
                    args.push(&value);
                }
                encode(out, &args);
            }
            "hset" => {
                let field = self.random_key("element:");
                encode(out, &[b"HSET", b"myhash", &field, &value]);
            }
            "hget" => {
                let field = self.random_key("element:");
                encode(out, &[b"HGET", b"myhash", &field]);
            }
            "lpush" => encode(out, &[b"LPUSH", b"mylist", &value]),
            "lpop" => encode(out, &[b"LPOP", b"mylist"]),
            "zadd" => {
                let score = self.random_key("");
                let member = self.random_key("element:");
                encode(out, &[b"ZADD", b"myzset", &score, &member]);
            }
            "zrange" => encode(out, &[b"ZRANGE", b"myzset", b"0", b"9"]),
            "getone" => encode(out, &[b"GET", b"key:000000000000"]),
            "setone" => encode(out, &[b"SET", b"key:000000000000", &value]),
            other => panic!("unknown workload {other}"),
        }
    }
}

/// The length of the first complete RESP reply in `buf`, if it is all
/// there.
fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.iter().position(|&b| b == b'\n')? + 1;
    let count = || -> i64 {
        std::str::from_utf8(&buf[1..line_end - 2])
            .ok()
            .and_then(|n| n.parse().ok())
            .expect("a length")
    };
    match buf.first()? {
        b'$' | b'=' | b'!' => {
            let len = count();
            if len < 0 {
                return Some(line_end);
            }
            let total = line_end + len as usize + 2;
            (buf.len() >= total).then_some(total)
        }
        kind @ (b'*' | b'~' | b'>' | b'%') => {
            let elements = count().max(0) as usize * if *kind == b'%' { 2 } else { 1 };
            let mut at = line_end;
            for _ in 0..elements {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        _ => Some(line_end),
    }
}

/// One connection: requests waiting to be written, replies waiting to be
/// parsed, and the due time of every request not yet answered.
struct Connection {
    stream: TcpStream,
    outgoing: Vec<u8>,
    written: usize,
    incoming: Vec<u8>,
    due_times: VecDeque<Instant>,
}

impl Connection {
    fn open(address: &str) -> Connection {
        let stream = TcpStream::connect(address).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_nonblocking(true).expect("nonblocking");
        Connection {
            stream,
            outgoing: Vec::new(),
            written: 0,
            incoming: Vec::with_capacity(64 * 1024),
            due_times: VecDeque::new(),
        }
    }

    fn flush(&mut self) {
        while self.written < self.outgoing.len() {
            match self.stream.write(&self.outgoing[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => panic!("write: {e}"),
            }
        }
        self.outgoing.clear();
        self.written = 0;
    }

    /// Reads what has arrived and returns the due times of the requests it
    /// completes, with the time it arrived, and how many were errors.
    fn poll_replies(&mut self, answered: &mut Vec<(Instant, Instant)>) -> usize {
        let mut chunk = [0u8; 64 * 1024];
        let mut errors = 0;
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the server closed the connection"),
                Ok(n) => {
                    let arrived = Instant::now();
                    self.incoming.extend_from_slice(&chunk[..n]);
                    let mut at = 0;
                    while let Some(len) = reply_len(&self.incoming[at..]) {
                        if self.incoming[at] == b'-' {
                            errors += 1;
                        }
                        let due = self
                            .due_times
                            .pop_front()
                            .expect("a reply nobody asked for");
                        answered.push((due, arrived));
                        at += len;
                    }
                    self.incoming.drain(..at);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return errors,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

/// An epoll set of the connections' sockets, asked without waiting.
struct Readable {
    epoll: i32,
}

impl Readable {
    fn watch(connections: &[Connection]) -> Readable {
        // SAFETY: plain syscalls on descriptors the connections own and
        // keep open for as long as this runs.
        let epoll = unsafe { libc::epoll_create1(0) };
        assert!(epoll >= 0, "epoll_create1");
        for (index, connection) in connections.iter().enumerate() {
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: index as u64,
            };
            let fd = connection.stream.as_raw_fd();
            let added = unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) };
            assert_eq!(added, 0, "epoll_ctl");
        }
        Readable { epoll }
    }

    /// The indexes of the connections with something to read now.
    fn poll(&self) -> Vec<usize> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: `events` has room for the 64 events asked for.
        let ready = unsafe { libc::epoll_wait(self.epoll, events.as_mut_ptr(), 64, 0) };
        assert!(ready >= 0, "epoll_wait");
        events[..ready as usize]
            .iter()
            .map(|e| e.u64 as usize)
            .collect()
    }
}

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[(sorted.len() * per_mille / 1000).min(sorted.len() - 1)]
}

fn main() {
    let args = parse_args();
    let address = format!("127.0.0.1:{}", args.port);
    let mut requests = Requests {
        workload: args.workload.clone(),
        value: vec![b'x'; args.size],
        keyspace: args.keyspace,
        seed: 0x9E37_79B9_7F4A_7C15,
    };
    let mut connections: Vec<Connection> = (0..args.clients)
        .map(|_| Connection::open(&address))
        .collect();
    let readable = Readable::watch(&connections);

    let batch_interval = args.pipeline as f64 / args.rate;
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let give_up = end + Duration::from_secs(30);
    let mut batches = 0u64;
    let mut next_due = start;
    let mut answered = Vec::new();
    let mut latencies = Vec::new();
    // The worst latency of the requests due in each second of the run.
    let mut worst_per_second: Vec<Duration> = Vec::new();
    let mut errors = 0;
    let mut batch = Vec::new();
    let mut send_lags = Vec::new();
    loop {
        let now = Instant::now();
        while next_due <= now && next_due < end {
            let connection = &mut connections[batches as usize % args.clients];
            batch.clear();
            for _ in 0..args.pipeline {
                requests.append(&mut batch);
                connection.due_times.push_back(next_due);
            }
            connection.outgoing.extend_from_slice(&batch);
            connection.flush();
            if next_due >= measure_from {
                send_lags.push(Instant::now() - next_due);
            }
            batches += 1;
            next_due = start + Duration::from_secs_f64(batches as f64 * batch_interval);
        }
        for index in readable.poll() {
            errors += connections[index].poll_replies(&mut answered);
        }
        let mut outstanding = 0;
        for connection in &mut connections {
            if !connection.outgoing.is_empty() {
                connection.flush();
            }
            outstanding += connection.due_times.len();
        }
        for (due, arrived) in answered.drain(..) {
            if due >= measure_from {
                latencies.push(arrived - due);
                let second = (due - measure_from).as_secs() as usize;
                if worst_per_second.len() <= second {
                    worst_per_second.resize(second + 1, Duration::ZERO);
                }
                worst_per_second[second] = worst_per_second[second].max(arrived - due);
            }
        }
        if now >= end && outstanding == 0 {
            break;
        }
        if now >= give_up {
            panic!("{outstanding} requests still unanswered 30 s after the last was sent");
        }
    }

    latencies.sort();
    let measured = latencies.len();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p90, p99, p999, max) = (
        ms(percentile(&latencies, 500)),
        ms(percentile(&latencies, 900)),
        ms(percentile(&latencies, 990)),
        ms(percentile(&latencies, 999)),
        ms(latencies[measured - 1]),
    );
    let achieved = measured as f64 / args.seconds;
    send_lags.sort();
    println!(
        "sender: batches sent p99 {:.3} ms, max {:.3} ms after they were due",
        ms(percentile(&send_lags, 990)),
        ms(send_lags[send_lags.len() - 1])
    );
    println!(
        "{} -P {} at {:.0}/s offered ({achieved:.0}/s measured, {errors} errors): \
         p50 {p50:.3} ms, p90 {p90:.3} ms, p99 {p99:.3} ms, p99.9 {p999:.3} ms, max {max:.3} ms",
        args.workload, args.pipeline, args.rate
    );
    let worst: Vec<String> = worst_per_second
        .iter()
        .map(|d| format!("{:.1}", ms(*d)))
        .collect();
    println!("worst latency (ms) of each second: {}", worst.join(" "));
    println!("RESULT\t{achieved:.0}\t{errors}\t{p50:.3}\t{p90:.3}\t{p99:.3}\t{p999:.3}\t{max:.3}");
}
