//! The whole server: an in-process Larder on a loopback port, one TCP
//! connection sending pipelined batches of 100 GETs (raw RESP) and reading
//! until the 100 replies have arrived, then batches of 100 HGETs of random
//! fields of one hash of a million fields; then the same against a real
//! `redis-server`, if one is installed, for a ratio from the same run.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use larder::{Config, Server};

const BATCH: usize = 100;
const VALUE_LEN: usize = 32;
/// Fields of the hash the HGET batches read: large enough that its index
/// and fields miss the CPU caches, as in `tools/compare-with-redis.sh`.
const HASH_FIELDS: usize = 1_000_000;
/// Distinct HGET batches, cycled (4,096 × 100 random fields), so that the
/// timed batches do not keep reading the same cached fields.
const HGET_BATCHES: usize = 4096;

fn get_pipeline(prefix: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..BATCH {
        let key = format!("{prefix}:{i}");
        buf.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes());
    }
    buf
}

/// Counts the complete replies at the start of `buf` (bulk strings, nulls
/// and one-line replies: all a GET can answer).
fn complete_replies(buf: &[u8]) -> usize {
    let mut count = 0;
    let mut pos = 0;
    while let Some(cr) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
        let line_end = pos + cr + 2;
        let next = if buf[pos] == b'$' {
            let len: i64 = std::str::from_utf8(&buf[pos + 1..pos + cr])
                .ok()
                .and_then(|s| s.parse().ok())
                .expect("bulk length");
            if len < 0 {
                line_end
            } else {
                line_end + len as usize + 2
            }
        } else {
            line_end
        };
        if next > buf.len() {
            break;
        }
        count += 1;
        pos = next;
    }
    count
}

/// Sends one batch and reads until all its replies are in; returns the
/// number of reply bytes.
fn round_trip(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> usize {
    stream.write_all(request).expect("send batch");
    buf.clear();
    let mut chunk = [0u8; 64 * 1024];
    while complete_replies(buf) < BATCH {
        let n = stream.read(&mut chunk).expect("read replies");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.len()
}

/// Stores the 100 `key:N` values through the connection itself.
fn prefill(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut request = Vec::new();
    let value = [b'v'; VALUE_LEN];
    for i in 0..BATCH {
        let key = format!("key:{i}");
        request.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${VALUE_LEN}\r\n",
                key.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
    }
    assert_eq!(round_trip(stream, &request, buf), BATCH * b"+OK\r\n".len());
}

/// Fills hash `h` with `field:N` = `vN` for N below [`HASH_FIELDS`], a
/// hundred HSETs a round trip.
fn fill_hash(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    for start in (0..HASH_FIELDS).step_by(BATCH) {
        let mut request = Vec::new();
        for i in start..start + BATCH {
            let (field, value) = (format!("field:{i}"), format!("v{i}"));
            request.extend(
                redis::cmd("HSET")
                    .arg("h")
                    .arg(field)
                    .arg(value)
                    .get_packed_command(),
            );
        }
        round_trip(stream, &request, buf);
    }
}

/// [`HGET_BATCHES`] batches of 100 HGETs of random fields of `h`.
fn hget_batches() -> Vec<Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..HGET_BATCHES)
        .map(|_| {
            let mut request = Vec::new();
            for _ in 0..BATCH {
                // xorshift64: the same fields for both servers.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let field = format!("field:{}", state % HASH_FIELDS as u64);
                request.extend(redis::cmd("HGET").arg("h").arg(field).get_packed_command());
            }
            request
        })
        .collect()
}

/// Benches hit and miss batches over `stream`, named `<server>/<case>`.
fn bench_server(c: &mut Criterion, server: &str, stream: &mut TcpStream) {
    let mut buf = Vec::with_capacity(64 * 1024);
    prefill(stream, &mut buf);
    let mut group = c.benchmark_group("end_to_end");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (case, prefix) in [
        ("pipelined_get_hit_x100", "key"),
        ("pipelined_get_miss_x100", "missing"),
    ] {
        let request = get_pipeline(prefix);
        // Check the replies once before timing them.
        let expected = if prefix == "key" {
            BATCH * (format!("${VALUE_LEN}\r\n").len() + VALUE_LEN + 2)
        } else {
            BATCH * b"$-1\r\n".len()
        };
        assert_eq!(round_trip(stream, &request, &mut buf), expected);
        group.bench_function(format!("{server}/{case}"), |b| {
            b.iter(|| round_trip(stream, black_box(&request), &mut buf))
        });
    }
    fill_hash(stream, &mut buf);
    let batches = hget_batches();
    // Every field exists: each reply is a bulk string `v<N>`.
    assert!(round_trip(stream, &batches[0], &mut buf) > BATCH * "$2\r\nv0\r\n".len());
    group.bench_function(format!("{server}/pipelined_hget_1m_fields_x100"), |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % batches.len();
            round_trip(stream, black_box(&batches[next]), &mut buf)
        })
    });
    group.finish();
}

fn connect(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(addr) {
            Ok(stream) => {
                stream.set_nodelay(true).expect("nodelay");
                return stream;
            }
            Err(error) if Instant::now() > deadline => panic!("connect to {addr}: {error}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn bench_larder(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = Config {
        port: 0,
        bind: vec!["127.0.0.1".into()],
        ..Config::default()
    };
    let server = runtime
        .block_on(Server::start(config))
        .expect("start server");
    let mut stream = connect(server.local_addr());
    bench_server(c, "larder", &mut stream);
    drop(stream);
    runtime.block_on(server.shutdown());
}

/// The same batches against a real `redis-server` (single-threaded, as
/// Larder's server runtime is here), for a ratio from the same run. Skipped
/// when `redis-server` is not installed.
fn bench_redis(c: &mut Criterion) {
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(_) => return,
    };
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("redis-server not found: skipping the comparison");
        return;
    };
    let mut stream = connect(SocketAddr::from(([127, 0, 0, 1], port)));
    bench_server(c, "redis", &mut stream);
    drop(stream);
    let _ = child.kill();
    let _ = child.wait();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_larder, bench_redis
}
criterion_main!(benches);
