//! A SET flood far beyond `maxmemory`, against any Redis-compatible server:
//! `--clients` connections write distinct keys with pipelined SETs (values
//! cycling through `--sizes`) until `--total-mb` have been sent, while
//!
//! - a probe connection sends one SET (100-byte value, distinct keys) at a
//!   time and times each round trip, with a PING every 100th command (the
//!   server must keep answering): SET latency percentiles under eviction;
//! - a sampler reads the server's VmRSS (`/proc/<pid>/status`, `--pid`) and
//!   INFO's `used_memory` every 50 ms, during the flood and for `--settle-ms`
//!   after it.
//!
//! It prints the baseline (RSS of the idle server with every connection
//! open), the peak RSS during and after the flood, the peak `used_memory`,
//! the latency percentiles, and one tab-separated `RESULT` line for
//! tools/flood.sh.
//!
//! ```text
//! cargo run --release --example flood -- --port 6379 --pid $(pidof redis-server) \
//!     --maxmemory 100mb --policy allkeys-lru --total-mb 1000
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    port: u16,
    pid: u32,
    label: String,
    maxmemory: String,
    policy: String,
    clients: usize,
    pipeline: usize,
    sizes: Vec<usize>,
    total_mb: u64,
    settle_ms: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 6379,
        pid: 0,
        label: String::new(),
        maxmemory: "100mb".into(),
        policy: "allkeys-lru".into(),
        clients: 2,
        pipeline: 64,
        sizes: vec![100, 1000, 10_000],
        total_mb: 1000,
        settle_ms: 2000,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let value = raw.get(i + 1).cloned().unwrap_or_default();
        match raw[i].as_str() {
            "--port" => args.port = value.parse().expect("--port"),
            "--pid" => args.pid = value.parse().expect("--pid"),
            "--label" => args.label = value,
            "--maxmemory" => args.maxmemory = value,
            "--policy" => args.policy = value,
            "--clients" => args.clients = value.parse().expect("--clients"),
            "--pipeline" => args.pipeline = value.parse().expect("--pipeline"),
            "--sizes" => {
                args.sizes = value
                    .split(',')
                    .map(|s| s.parse().expect("--sizes"))
                    .collect()
            }
            "--total-mb" => args.total_mb = value.parse().expect("--total-mb"),
            "--settle-ms" => args.settle_ms = value.parse().expect("--settle-ms"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    if args.label.is_empty() {
        args.label = args.policy.clone();
    }
    args
}

fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// A connection that reads whole replies of the simple kinds these commands
/// get (`+OK`, `-ERR...`, `:n`, `$n` bulk).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Conn {
    fn connect(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
        }
    }

    fn fill(&mut self) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk).expect("read");
        assert!(n > 0, "server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(end) = self.buf[self.start..].windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[self.start..self.start + end].to_vec();
                self.start += end + 2;
                return line;
            }
            self.fill();
        }
    }

    /// One reply; bulk strings are returned with their content.
    fn reply(&mut self) -> Vec<u8> {
        let line = self.line();
        if line.first() == Some(&b'$') {
            let len: i64 = std::str::from_utf8(&line[1..]).unwrap().parse().unwrap();
            if len < 0 {
                return line;
            }
            while self.buf.len() - self.start < len as usize + 2 {
                self.fill();
            }
            let body = self.buf[self.start..self.start + len as usize].to_vec();
            self.start += len as usize + 2;
            return body;
        }
        line
    }

    fn command(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(args, &mut out);
        self.stream.write_all(&out).expect("write");
        self.reply()
    }
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn info_field(conn: &mut Conn, name: &str) -> u64 {
    let text = conn.command(&[b"INFO", b"all"]);
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn mib(n: u64) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

fn main() {
    let args = parse_args();
    let mut admin = Conn::connect(args.port);
    admin.command(&[b"FLUSHALL"]);
    admin.command(&[b"CONFIG", b"SET", b"maxmemory", b"0"]);
    admin.command(&[
        b"CONFIG",
        b"SET",
        b"maxmemory-policy",
        args.policy.as_bytes(),
    ]);
    let maxmemory_reply =
        admin.command(&[b"CONFIG", b"SET", b"maxmemory", args.maxmemory.as_bytes()]);
    assert_eq!(maxmemory_reply, b"+OK", "CONFIG SET maxmemory");
    let maxmemory = info_field(&mut admin, "maxmemory");

    // Every connection open, nothing stored: the baseline.
    let floods: Vec<Conn> = (0..args.clients)
        .map(|_| Conn::connect(args.port))
        .collect();
    let mut probe = Conn::connect(args.port);
    probe.command(&[b"PING"]);
    let mut sampler_conn = Conn::connect(args.port);
    std::thread::sleep(Duration::from_millis(200));
    let baseline_rss = rss_bytes(args.pid);
    let baseline_used = info_field(&mut sampler_conn, "used_memory");

    let running = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let budget = args.total_mb * 1024 * 1024;
    let started = Instant::now();

    let flooders: Vec<_> = floods
        .into_iter()
        .enumerate()
        .map(|(id, mut conn)| {
            let sent = sent.clone();
            let errors = errors.clone();
            let sizes = args.sizes.clone();
            let pipeline = args.pipeline;
            std::thread::spawn(move || {
                let values: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![b'x'; n]).collect();
                let mut n: u64 = 0;
                let mut batch = Vec::new();
                while sent.load(Ordering::Relaxed) < budget {
                    batch.clear();
                    let mut bytes = 0;
                    for _ in 0..pipeline {
                        let value = &values[(n % values.len() as u64) as usize];
                        let key = format!("flood:{id}:{n}");
                        encode(&[b"SET", key.as_bytes(), value], &mut batch);
                        bytes += value.len() as u64 + key.len() as u64;
                        n += 1;
                    }
                    conn.stream.write_all(&batch).expect("write");
                    for _ in 0..pipeline {
                        let reply = conn.reply();
                        if reply.first() == Some(&b'-') {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    sent.fetch_add(bytes, Ordering::Relaxed);
                }
                n
            })
        })
        .collect();

    let probe_running = running.clone();
    let prober = std::thread::spawn(move || {
        let value = vec![b'p'; 100];
        let mut set_us = Vec::new();
        let mut ping_max = Duration::ZERO;
        let mut n = 0u64;
        while probe_running.load(Ordering::Relaxed) {
            let key = format!("probe:{n}");
            let t = Instant::now();
            let reply = probe.command(&[b"SET", key.as_bytes(), &value]);
            set_us.push(t.elapsed().as_micros() as u64);
            assert!(
                reply.starts_with(b"+OK") || reply.starts_with(b"-OOM"),
                "{reply:?}"
            );
            n += 1;
            if n.is_multiple_of(100) {
                let t = Instant::now();
                assert_eq!(probe.command(&[b"PING"]), b"+PONG");
                ping_max = ping_max.max(t.elapsed());
            }
        }
        (set_us, ping_max)
    });

    let pid = args.pid;
    let sample = move |conn: &mut Conn| (rss_bytes(pid), info_field(conn, "used_memory"));
    let mut peak_rss = 0;
    let mut peak_used = 0;
    while sent.load(Ordering::Relaxed) < budget {
        let (rss, used) = sample(&mut sampler_conn);
        peak_rss = peak_rss.max(rss);
        peak_used = peak_used.max(used);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut keys_written = 0;
    for flooder in flooders {
        keys_written += flooder.join().expect("flood client");
    }
    running.store(false, Ordering::Relaxed);
    let (mut set_us, ping_max) = prober.join().expect("probe");
    let elapsed = started.elapsed();
    let flood_peak_rss = peak_rss;
    let settle_until = Instant::now() + Duration::from_millis(args.settle_ms);
    while Instant::now() < settle_until {
        let (rss, used) = sample(&mut sampler_conn);
        peak_rss = peak_rss.max(rss);
        peak_used = peak_used.max(used);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (final_rss, final_used) = sample(&mut sampler_conn);
    let evicted = info_field(&mut sampler_conn, "evicted_keys");
    let dbsize = {
        let reply = sampler_conn.command(&[b"DBSIZE"]);
        String::from_utf8_lossy(&reply[1..])
            .parse::<u64>()
            .unwrap_or(0)
    };
    set_us.sort_unstable();
    let p = |q: f64| percentile(&set_us, q);
    let bound_mib = (peak_rss as f64 - 1.1 * maxmemory as f64) / (1024.0 * 1024.0);

    println!(
        "{}: maxmemory {:.1} MiB, {} clients x pipeline {}, values {:?} B, {:.0} MiB sent in {:.1} s ({} keys, {} OOM errors)",
        args.label,
        mib(maxmemory),
        args.clients,
        args.pipeline,
        args.sizes,
        mib(sent.load(Ordering::Relaxed)),
        elapsed.as_secs_f64(),
        keys_written,
        errors.load(Ordering::Relaxed),
    );
    println!(
        "  baseline (idle, connections open): RSS {:.1} MiB, used_memory {:.1} MiB",
        mib(baseline_rss),
        mib(baseline_used)
    );
    println!(
        "  RSS peak {:.1} MiB (flood {:.1}, after {:.1}), final {:.1} MiB; used_memory peak {:.1} MiB, final {:.1} MiB",
        mib(peak_rss),
        mib(flood_peak_rss),
        mib(peak_rss),
        mib(final_rss),
        mib(peak_used),
        mib(final_used)
    );
    println!(
        "  RSS peak - 1.1 x maxmemory = {:.1} MiB; keys held {}, evicted {}",
        bound_mib, dbsize, evicted
    );
    println!(
        "  probe SET latency over {} SETs: p50 {} us, p99 {} us, p99.9 {} us, max {} us; PING max {} us",
        set_us.len(),
        p(0.5),
        p(0.99),
        p(0.999),
        set_us.last().copied().unwrap_or(0),
        ping_max.as_micros()
    );
    println!(
        "RESULT\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        args.label,
        maxmemory,
        baseline_rss,
        peak_rss,
        final_rss,
        peak_used,
        p(0.5),
        p(0.99),
        p(0.999),
        set_us.last().copied().unwrap_or(0),
        ping_max.as_micros(),
        evicted
    );
}
