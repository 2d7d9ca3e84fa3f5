//! Measures how fast a server reclaims keys whose TTL passed, and whether
//! other clients stall meanwhile.
//!
//! Loads N keys with a 1-second TTL (pipelined `SET key:i value PX 1000`),
//! then, while a probe connection sends PING after PING and records each
//! round trip, polls DBSIZE until it reaches 0. Prints the drain time after
//! the TTL deadline, the probe's worst and 99th-percentile latency during the
//! drain, and the server's RSS before loading, loaded, and drained.
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

/// Reads one reply: a line, or a bulk string (the only shapes used here).
fn read_reply(stream: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    stream.read_line(&mut line).expect("read");
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

fn rss(stream: &mut BufReader<TcpStream>) -> u64 {
    let info = command(stream, &["INFO", "memory"]);
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory_rss:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
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
    let rss_empty = rss(&mut control);

    // Load in pipelined batches.
    let mut loader = connect();
    let batch = 1000;
    let load_start = Instant::now();
    for start in (0..keys).step_by(batch) {
        let end = (start + batch).min(keys);
        let mut request = String::new();
        for i in start..end {
            let key = format!("key:{i:012}");
            request.push_str(&format!(
                "*5\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$32\r\n{}\r\n$2\r\nPX\r\n$4\r\n1000\r\n",
                key.len(),
                "v".repeat(32)
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
    let rss_loaded = rss(&mut control);
    println!("loaded {keys} keys in {:.2?}", loaded_at - load_start);

    // Probe latency while the keys expire.
    let stop = Arc::new(AtomicBool::new(false));
    let probe_stop = stop.clone();
    let mut probe = connect();
    let probe_thread = std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !probe_stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            command(&mut probe, &["PING"]);
            samples.push(t.elapsed());
            std::thread::sleep(Duration::from_micros(200));
        }
        samples
    });

    // The last key expires 1 s after it was written.
    let deadline = loaded_at + Duration::from_secs(1);
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
    let rss_drained = rss(&mut control);
    stop.store(true, Ordering::Relaxed);
    let mut samples = probe_thread.join().expect("probe");
    samples.sort();
    let p99 = samples[samples.len() * 99 / 100];
    let max = samples[samples.len() - 1];
    match drained_at {
        Some(at) => println!(
            "DBSIZE reached 0 {:.2?} after the last TTL passed",
            at - deadline
        ),
        None => println!("DBSIZE did not reach 0 within 30 s"),
    }
    println!(
        "PING probe during the drain: {} samples, p99 {:.2?}, max {:.2?}",
        samples.len(),
        p99,
        max
    );
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "RSS: empty {:.1} MiB, loaded {:.1} MiB, drained (+2 s) {:.1} MiB",
        mb(rss_empty),
        mb(rss_loaded),
        mb(rss_drained)
    );
}
