//! What the latency examples share: a blocking RESP client just big enough
//! for them, and a probe connection that times one request after another
//! and reports the round trips per phase of a run.

#![allow(dead_code)] // each example uses part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub type Conn = BufReader<TcpStream>;

pub fn connect(address: &str) -> Conn {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    BufReader::new(stream)
}

/// Appends `args` to `request` as one RESP command.
pub fn encode(request: &mut Vec<u8>, args: &[&[u8]]) {
    request.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
}

/// Sends one command and reads its reply.
pub fn command(conn: &mut Conn, args: &[&str]) -> String {
    let mut request = Vec::new();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    encode(&mut request, &args);
    conn.get_mut().write_all(&request).expect("write");
    read_reply(conn)
}

/// Sends `request` (several encoded commands) and reads `replies` replies.
pub fn pipeline(conn: &mut Conn, request: &[u8], replies: usize) {
    conn.get_mut().write_all(request).expect("write");
    for _ in 0..replies {
        read_reply(conn);
    }
}

/// Reads one reply: a line, a bulk string, or an array or map of those
/// (joined with spaces) — the only shapes used here.
pub fn read_reply(conn: &mut Conn) -> String {
    let mut line = String::new();
    conn.read_line(&mut line).expect("read");
    let aggregate = |conn: &mut Conn, count: usize| {
        (0..count)
            .map(|_| read_reply(conn))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if let Some(count) = line.strip_prefix('*') {
        return aggregate(conn, count.trim().parse().unwrap_or(0));
    }
    if let Some(count) = line.strip_prefix('%') {
        return aggregate(conn, 2 * count.trim().parse::<usize>().unwrap_or(0));
    }
    if let Some(len) = line.strip_prefix('$') {
        let len: i64 = len.trim().parse().expect("bulk length");
        if len < 0 {
            return String::new();
        }
        let mut body = vec![0; len as usize + 2];
        conn.read_exact(&mut body).expect("read bulk");
        body.truncate(len as usize);
        return String::from_utf8_lossy(&body).into_owned();
    }
    line.trim_end().to_string()
}

/// An integer reply's value.
pub fn integer(reply: &str) -> u64 {
    reply.trim_start_matches(':').parse().unwrap_or(0)
}

/// A numeric field of an INFO section.
pub fn info_field(conn: &mut Conn, section: &str, name: &str) -> u64 {
    let info = command(conn, &["INFO", section]);
    let prefix = format!("{name}:");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// (used_memory, used_memory_rss) from INFO memory.
pub fn memory(conn: &mut Conn) -> (u64, u64) {
    (
        info_field(conn, "memory", "used_memory"),
        info_field(conn, "memory", "used_memory_rss"),
    )
}

/// A connection that sends one request at a time, every 200 µs, and
/// records when each started and how long its round trip took.
pub struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(Instant, Duration)>>,
}

impl Probe {
    /// Starts probing with the request `next` returns each time.
    pub fn start(address: &str, mut next: impl FnMut() -> Vec<String> + Send + 'static) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let mut conn = connect(address);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let args = next();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let started = Instant::now();
                command(&mut conn, &args);
                samples.push((started, started.elapsed()));
                std::thread::sleep(Duration::from_micros(200));
            }
            samples
        });
        Probe { stop, thread }
    }

    /// Stops the probe and returns its samples.
    pub fn finish(self) -> Vec<(Instant, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("probe")
    }
}

/// Prints, for each phase (name, from, to; open ends where None), the
/// number of samples that started in it, their 99th percentile and worst
/// round trip, and how many took over 1 ms.
pub fn report_phases(
    what: &str,
    samples: &[(Instant, Duration)],
    phases: &[(&str, Option<Instant>, Option<Instant>)],
) {
    for (phase, from, to) in phases {
        let mut rtts: Vec<Duration> = samples
            .iter()
            .filter(|(at, _)| from.is_none_or(|from| *at >= from) && to.is_none_or(|to| *at < to))
            .map(|(_, rtt)| *rtt)
            .collect();
        if rtts.is_empty() {
            println!("{what} {phase}: no samples");
            continue;
        }
        rtts.sort();
        let over_1ms = rtts
            .iter()
            .filter(|rtt| **rtt > Duration::from_millis(1))
            .count();
        println!(
            "{what} {phase}: {} samples, p99 {:.2?}, max {:.2?}, {over_1ms} over 1 ms",
            rtts.len(),
            rtts[rtts.len() * 99 / 100],
            rtts[rtts.len() - 1],
        );
    }
}
