//! How long do other clients wait while one client runs a long command?
//!
//! Against any Redis-compatible server: for each scenario it fills the data
//! (pipelined), then runs the command on one connection while a probe
//! connection sends PINGs one at a time and times each round trip. It
//! prints, per scenario, the command's own time and the worst PING round
//! trip during it, and one tab-separated `RESULT` line for
//! tools/stall-probe.sh.
//!
//! Scenarios (`--only a,b` picks some): `keys` (KEYS * over `--keys` keys),
//! `flushall-sync`, `flushall-async` (FLUSHALL SYNC/ASYNC of `--keys` keys),
//! `del-<type>` and `unlink-<type>` for set, list, hash and zset (DEL and
//! UNLINK of one key of `--elements` elements), `swapdb` (SWAPDB 0 1 of two
//! databases of `--keys` keys each).
//!
//! ```text
//! cargo run --release --example stall_probe -- --port 6379 --keys 2000000 --elements 5000000
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    port: u16,
    label: String,
    keys: usize,
    elements: usize,
    only: Option<Vec<String>>,
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 6379,
        label: "server".into(),
        keys: 2_000_000,
        elements: 5_000_000,
        only: None,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let value = raw.get(i + 1).cloned().unwrap_or_default();
        match raw[i].as_str() {
            "--port" => args.port = value.parse().expect("--port"),
            "--label" => args.label = value,
            "--keys" => args.keys = value.parse().expect("--keys"),
            "--elements" => args.elements = value.parse().expect("--elements"),
            "--only" => args.only = Some(value.split(',').map(String::from).collect()),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    args
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            reader: BufReader::with_capacity(1 << 20, stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Sends `commands` in one write and reads (and discards) every reply;
    /// panics on an error reply.
    fn pipeline(&mut self, commands: &[Vec<Vec<u8>>]) {
        let mut out = Vec::new();
        for command in commands {
            let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
            Self::encode(&mut out, &args);
        }
        self.writer.write_all(&out).expect("write");
        for _ in commands {
            self.skip_reply();
        }
    }

    fn call(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        Self::encode(&mut out, args);
        self.writer.write_all(&out).expect("write");
        self.skip_reply();
    }

    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read");
        assert!(line.ends_with(b"\r\n"), "connection closed");
        line.truncate(line.len() - 2);
        line
    }

    /// Reads one reply of any size without keeping it.
    fn skip_reply(&mut self) {
        let line = self.line();
        let count = |line: &[u8]| -> i64 {
            std::str::from_utf8(&line[1..])
                .expect("utf8")
                .parse()
                .expect("length")
        };
        match line.first() {
            Some(b'+' | b':' | b',' | b'#' | b'_') => {}
            Some(b'-') => panic!("error reply: {}", String::from_utf8_lossy(&line)),
            Some(b'$' | b'=' | b'!') => {
                let len = count(&line);
                if len >= 0 {
                    let mut left = len as u64 + 2;
                    let mut sink = std::io::sink();
                    let copied = std::io::copy(&mut (&mut self.reader).take(left), &mut sink)
                        .expect("read bulk");
                    left -= copied;
                    assert_eq!(left, 0, "connection closed");
                }
            }
            Some(b'*' | b'~' | b'>') => {
                for _ in 0..count(&line).max(0) {
                    self.skip_reply();
                }
            }
            Some(b'%') => {
                for _ in 0..count(&line).max(0) * 2 {
                    self.skip_reply();
                }
            }
            _ => panic!("unexpected reply {}", String::from_utf8_lossy(&line)),
        }
    }
}

/// Pipelined MSETs of `count` small keys (`key:<n>`) into database `db`.
fn fill_keys(conn: &mut Conn, db: usize, count: usize) {
    conn.call(&[b"SELECT", db.to_string().as_bytes()]);
    let per_command = 1000;
    let mut batch = Vec::new();
    let mut n = 0;
    while n < count {
        let mut command = vec![b"MSET".to_vec()];
        for i in n..(n + per_command).min(count) {
            command.push(format!("key:{i}").into_bytes());
            command.push(format!("value:{i}").into_bytes());
        }
        n += per_command;
        batch.push(command);
        if batch.len() == 50 {
            conn.pipeline(&batch);
            batch.clear();
        }
    }
    conn.pipeline(&batch);
    conn.call(&[b"SELECT", b"0"]);
}

/// One key `big` of `elements` elements of `kind`.
fn fill_collection(conn: &mut Conn, kind: &str, elements: usize) {
    let per_command = 1000;
    let mut batch = Vec::new();
    let mut n = 0;
    while n < elements {
        let mut command = vec![
            match kind {
                "set" => b"SADD".to_vec(),
                "list" => b"RPUSH".to_vec(),
                "hash" => b"HSET".to_vec(),
                "zset" => b"ZADD".to_vec(),
                other => panic!("unknown type {other}"),
            },
            b"big".to_vec(),
        ];
        for i in n..(n + per_command).min(elements) {
            match kind {
                "hash" => {
                    command.push(format!("field:{i}").into_bytes());
                    command.push(b"v".to_vec());
                }
                "zset" => {
                    command.push(i.to_string().into_bytes());
                    command.push(format!("member:{i}").into_bytes());
                }
                _ => command.push(format!("member:{i}").into_bytes()),
            }
        }
        n += per_command;
        batch.push(command);
        if batch.len() == 50 {
            conn.pipeline(&batch);
            batch.clear();
        }
    }
    conn.pipeline(&batch);
}

/// Runs `command` while a probe PINGs; returns (command time, worst PING).
fn measure(port: u16, conn: &mut Conn, command: &[&[u8]]) -> (Duration, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let probe = {
        let stop = stop.clone();
        let mut probe = Conn::open(port);
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                probe.call(&[b"PING"]);
                worst = worst.max(start.elapsed());
                std::thread::sleep(Duration::from_micros(200));
            }
            worst
        })
    };
    // Let the probe settle in before the command starts.
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    conn.call(command);
    let took = start.elapsed();
    // What runs after the reply (a background free) counts too.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let worst = probe.join().expect("probe");
    (took, worst)
}

fn main() {
    let args = parse_args();
    let mut scenarios: Vec<String> = vec![
        "keys".into(),
        "flushall-sync".into(),
        "flushall-async".into(),
    ];
    for kind in ["set", "list", "hash", "zset"] {
        scenarios.push(format!("del-{kind}"));
        scenarios.push(format!("unlink-{kind}"));
    }
    scenarios.push("swapdb".into());
    if let Some(only) = &args.only {
        scenarios.retain(|s| only.contains(s));
    }
    let mut conn = Conn::open(args.port);
    for scenario in &scenarios {
        conn.call(&[b"FLUSHALL"]);
        let (what, command): (String, Vec<Vec<u8>>) = match scenario.as_str() {
            "keys" => {
                fill_keys(&mut conn, 0, args.keys);
                (
                    format!("KEYS * ({} keys)", args.keys),
                    vec![b"KEYS".to_vec(), b"*".to_vec()],
                )
            }
            "flushall-sync" | "flushall-async" => {
                fill_keys(&mut conn, 0, args.keys);
                let mode = if scenario.ends_with("async") {
                    "ASYNC"
                } else {
                    "SYNC"
                };
                (
                    format!("FLUSHALL {mode} ({} keys)", args.keys),
                    vec![b"FLUSHALL".to_vec(), mode.as_bytes().to_vec()],
                )
            }
            "swapdb" => {
                fill_keys(&mut conn, 0, args.keys);
                fill_keys(&mut conn, 1, args.keys);
                (
                    format!("SWAPDB 0 1 (2 x {} keys)", args.keys),
                    vec![b"SWAPDB".to_vec(), b"0".to_vec(), b"1".to_vec()],
                )
            }
            other => {
                let (verb, kind) = other.split_once('-').expect("scenario");
                fill_collection(&mut conn, kind, args.elements);
                (
                    format!(
                        "{} of a {}-element {kind}",
                        verb.to_uppercase(),
                        args.elements
                    ),
                    vec![verb.to_uppercase().into_bytes(), b"big".to_vec()],
                )
            }
        };
        let command: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        let (took, worst) = measure(args.port, &mut conn, &command);
        println!(
            "{:<40} command {:>9.1} ms   worst PING {:>9.1} ms",
            what,
            took.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0
        );
        println!(
            "RESULT\t{}\t{}\t{:.1}\t{:.1}",
            args.label,
            what,
            took.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0
        );
    }
    conn.call(&[b"FLUSHALL"]);
}
