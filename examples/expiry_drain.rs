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

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::{command, connect, memory, read_reply, report_phases, Probe};

fn main() {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:6379".into());
    let keys: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let mut control = connect(&address);
    command(&mut control, &["FLUSHALL"]);
    let mem_empty = memory(&mut control);

    // Load in pipelined batches, every key due at `deadline`.
    let mut loader = connect(&address);
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
    let probe = Probe::start(&address, || vec!["PING".to_string()]);

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
    let samples = probe.finish();
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
    report_phases("PING probe", &samples, &phases);
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
