//! Measures how fast a server reclaims keys whose TTL passed, and whether
//! other clients stall meanwhile.
//!
//! Loads N keys that all expire at the same millisecond, 10 s after loading
//! starts (pipelined `SET key:i value PXAT deadline`: the harshest case, every
//! key due at once), checks they are all there, then, while a probe
//! connection sends PING after PING and records each round trip, polls
//! DBSIZE until it reaches 0. Prints the drain time after
//! the TTL deadline; the probe's worst and 99th-percentile latency, and how
//! many round trips took over 1 ms, in three phases: waiting for the
//! deadline (the baseline: nothing to expire yet), the drain, and the 2 s
//! after it (when freed memory goes back to the OS); and the server's RSS
//! before loading, loaded, and drained.
//!
//! ```text
//! cargo run --release --example expiry_drain -- 127.0.0.1:6379 1000000
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn command(stream: &mut BufReader<TcpStream>, args: &[&str]) -> String {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .expect("write");
    read_reply(stream)
}

/// Reads one reply: a line, a bulk string, or an array of those (joined
/// with spaces) — the only shapes used here.
fn read_reply(stream: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    stream.read_line(&mut line).expect("read");
    if let Some(count) = line.strip_prefix('*') {
        let count: usize = count.trim().parse().unwrap_or(0);
        return (0..count)
            .map(|_| read_reply(stream))
            .collect::<Vec<_>>()
            .join(" ");
    }
    if let Some(len) = line.strip_prefix('$') {
        let len: i64 = len.trim().parse().expect("bulk length");
        if len < 0 {
            return String::new();
        }
        let mut body = vec![0; len as usize + 2];
        stream.read_exact(&mut body).expect("read bulk");
        body.truncate(len as usize);
        return String::from_utf8_lossy(&body).into_owned();
    }
    line.trim_end().to_string()
}

/// (used_memory, used_memory_rss) from INFO memory.
fn memory(stream: &mut BufReader<TcpStream>) -> (u64, u64) {
    let info = command(stream, &["INFO", "memory"]);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("used_memory:"), field("used_memory_rss:"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:6379".into());
    let keys: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let connect = || BufReader::new(TcpStream::connect(&address).expect("connect"));
    let mut control = connect();
    command(&mut control, &["FLUSHALL"]);
    let mem_empty = memory(&mut control);

    // Load in pipelined batches, every key due at `deadline`.
    let mut loader = connect();
    let batch = 1000;
    let load_start = Instant::now();
    let server_now_ms: u64 = {
        let time = command(&mut control, &["TIME"]);
        let seconds = time.split_whitespace().next().unwrap_or("0");
        seconds.parse::<u64>().unwrap_or(0) * 1000
    };
    let deadline_ms = (server_now_ms + 10_000).to_string();
    for start in (0..keys).step_by(batch) {
        let end = (start + batch).min(keys);
        let mut request = String::new();
        for i in start..end {
            let key = format!("key:{i:012}");
            request.push_str(&format!(
                "*5\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$32\r\n{}\r\n$4\r\nPXAT\r\n${}\r\n{deadline_ms}\r\n",
                key.len(),
                "v".repeat(32),
                deadline_ms.len()
            ));
        }
        loader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("write");
        for _ in start..end {
            read_reply(&mut loader);
        }
    }
    let loaded_at = Instant::now();
    let mem_loaded = memory(&mut control);
    let loaded: usize = command(&mut control, &["DBSIZE"])
        .trim_start_matches(':')
        .parse()
        .unwrap_or(0);
    println!("loaded {loaded} keys in {:.2?}", loaded_at - load_start);
    assert_eq!(
        loaded, keys,
        "some keys expired before the deadline: load took too long"
    );

    // Probe latency while the keys expire.
    let stop = Arc::new(AtomicBool::new(false));
    let probe_stop = stop.clone();
    let mut probe = connect();
    // (when the round trip started, how long it took)
    let probe_thread = std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !probe_stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            command(&mut probe, &["PING"]);
            samples.push((t, t.elapsed()));
            std::thread::sleep(Duration::from_micros(200));
        }
        samples
    });

    let deadline = load_start + Duration::from_secs(10);
    let mut drained_at = None;
    while Instant::now() < deadline + Duration::from_secs(30) {
        let size: u64 = command(&mut control, &["DBSIZE"])
            .trim_start_matches(':')
            .parse()
            .unwrap_or(u64::MAX);
        if size == 0 && Instant::now() >= deadline {
            drained_at = Some(Instant::now());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2)); // let the allocator return pages
    let mem_drained = memory(&mut control);
    stop.store(true, Ordering::Relaxed);
    let samples = probe_thread.join().expect("probe");
    match drained_at {
        Some(at) => println!(
            "DBSIZE reached 0 {:.2?} after the common expiry time",
            at - deadline
        ),
        None => println!("DBSIZE did not reach 0 within 30 s"),
    }
    let drain_end = drained_at.unwrap_or(deadline + Duration::from_secs(30));
    let phases = [
        ("before the deadline", None, Some(deadline)),
        ("during the drain", Some(deadline), Some(drain_end)),
        ("2 s after it", Some(drain_end), None),
    ];
    for (phase, from, to) in phases {
        let mut rtts: Vec<Duration> = samples
            .iter()
            .filter(|(at, _)| from.is_none_or(|from| *at >= from) && to.is_none_or(|to| *at < to))
            .map(|(_, rtt)| *rtt)
            .collect();
        if rtts.is_empty() {
            println!("PING probe {phase}: no samples");
            continue;
        }
        rtts.sort();
        let over_1ms = rtts
            .iter()
            .filter(|rtt| **rtt > Duration::from_millis(1))
            .count();
        println!(
            "PING probe {phase}: {} samples, p99 {:.2?}, max {:.2?}, {over_1ms} over 1 ms",
            rtts.len(),
            rtts[rtts.len() * 99 / 100],
            rtts[rtts.len() - 1],
        );
    }
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    for (name, pick) in [("used_memory", 0), ("RSS", 1)] {
        let get = |m: (u64, u64)| if pick == 0 { m.0 } else { m.1 };
        println!(
            "{name}: empty {:.1} MiB, loaded {:.1} MiB, drained (+2 s) {:.1} MiB",
            mb(get(mem_empty)),
            mb(get(mem_loaded)),
            mb(get(mem_drained))
        );
    }
}
