//! Client side of `tools/compare-streams-with-redis.sh group`: a consumer
//! group's round trip, XREADGROUP then XACK, as a worker pool does it.
//! Standard library only, so that the script compiles it with `rustc -O`
//! alone (no cargo, no build of Larder's crate); a compiled client costs
//! little on the load generator's core, so that the servers are what is
//! measured.
//!
//!   stream-group-bench PORT STREAM GROUP CONSUMERS COUNT EXPECTED
//!
//! The stream must already hold EXPECTED entries and GROUP must exist,
//! created at 0 with nothing delivered. CONSUMERS threads, one connection
//! each, consumer names c0, c1, ...; each loops: `XREADGROUP GROUP GROUP cI
//! COUNT COUNT STREAMS STREAM >`, then `XACK STREAM GROUP <the IDs read>`
//! (sent in one write with the next XREADGROUP: one round trip a batch),
//! until XREADGROUP finds nothing new. Prints
//! "delivered acked seconds messages_per_second"; exits non-zero if the
//! messages delivered or acked are not EXPECTED (an ID delivered twice, one
//! missed, an XACK that did not count).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// One RESP reply, as much of it as this tool needs.
enum Reply {
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
    Integer(i64),
    Simple,
}

fn read_line(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).expect("read");
    assert!(line.ends_with(b"\r\n"), "connection closed or bad reply");
    line.truncate(line.len() - 2);
    line
}

fn number(bytes: &[u8]) -> i64 {
    std::str::from_utf8(bytes).unwrap().parse().unwrap()
}

fn read_reply(reader: &mut BufReader<TcpStream>) -> Reply {
    let line = read_line(reader);
    let (kind, rest) = (line[0], &line[1..]);
    match kind {
        b'+' => Reply::Simple,
        b'-' => panic!("server error: {}", String::from_utf8_lossy(rest)),
        b':' => Reply::Integer(number(rest)),
        b'$' => {
            let len = number(rest);
            if len < 0 {
                return Reply::Bulk(None);
            }
            let mut data = vec![0; len as usize + 2];
            reader.read_exact(&mut data).expect("read");
            data.truncate(len as usize);
            Reply::Bulk(Some(data))
        }
        // RESP3's null and map are not asked for: the connections speak RESP2.
        b'*' => {
            let len = number(rest);
            if len < 0 {
                return Reply::Array(None);
            }
            Reply::Array(Some((0..len).map(|_| read_reply(reader)).collect()))
        }
        other => panic!("unexpected reply type {:?}", other as char),
    }
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The entry IDs of an XREADGROUP reply (one stream); empty when nothing new.
fn entry_ids(reply: Reply) -> Vec<Vec<u8>> {
    let Reply::Array(Some(streams)) = reply else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for stream in streams {
        let Reply::Array(Some(mut name_entries)) = stream else {
            panic!("bad XREADGROUP reply")
        };
        let Some(Reply::Array(Some(entries))) = name_entries.pop() else {
            panic!("bad XREADGROUP reply")
        };
        for entry in entries {
            let Reply::Array(Some(mut id_fields)) = entry else {
                panic!("bad XREADGROUP entry")
            };
            let Reply::Bulk(Some(id)) = id_fields.swap_remove(0) else {
                panic!("bad entry ID")
            };
            ids.push(id);
        }
    }
    ids
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: stream-group-bench PORT STREAM GROUP CONSUMERS COUNT EXPECTED");
        std::process::exit(2);
    }
    let port: u16 = args[1].parse().unwrap();
    let (stream, group) = (args[2].clone(), args[3].clone());
    let consumers: usize = args[4].parse().unwrap();
    let count = args[5].clone();
    let expected: u64 = args[6].parse().unwrap();

    let delivered = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    // Every connection is open before the clock starts.
    let start = Arc::new(Barrier::new(consumers + 1));
    let workers: Vec<_> = (0..consumers)
        .map(|i| {
            let (stream, group, count) = (stream.clone(), group.clone(), count.clone());
            let (delivered, acked, start) = (delivered.clone(), acked.clone(), start.clone());
            std::thread::spawn(move || {
                let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                socket.set_nodelay(true).unwrap();
                let mut writer = socket.try_clone().unwrap();
                let mut reader = BufReader::with_capacity(1 << 16, socket);
                let consumer = format!("c{i}");
                let read = command(&[
                    b"XREADGROUP",
                    b"GROUP",
                    group.as_bytes(),
                    consumer.as_bytes(),
                    b"COUNT",
                    count.as_bytes(),
                    b"STREAMS",
                    stream.as_bytes(),
                    b">",
                ]);
                start.wait();
                // The XACK of the last batch goes out in one write with the
                // next XREADGROUP, as a pipelining worker sends them: one
                // round trip per batch.
                let mut ids: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut out = Vec::new();
                    if !ids.is_empty() {
                        let mut ack: Vec<&[u8]> =
                            vec![b"XACK", stream.as_bytes(), group.as_bytes()];
                        ack.extend(ids.iter().map(|id| id.as_slice()));
                        out = command(&ack);
                    }
                    out.extend_from_slice(&read);
                    writer.write_all(&out).unwrap();
                    if !ids.is_empty() {
                        match read_reply(&mut reader) {
                            Reply::Integer(n) => acked.fetch_add(n as u64, Ordering::Relaxed),
                            _ => panic!("XACK did not answer an integer"),
                        };
                    }
                    ids = entry_ids(read_reply(&mut reader));
                    if ids.is_empty() {
                        break;
                    }
                    delivered.fetch_add(ids.len() as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for worker in workers {
        worker.join().expect("a consumer failed");
    }
    let seconds = began.elapsed().as_secs_f64();
    let (delivered, acked) = (
        delivered.load(Ordering::Relaxed),
        acked.load(Ordering::Relaxed),
    );
    println!(
        "{delivered} {acked} {seconds:.3} {:.0}",
        acked as f64 / seconds
    );
    if delivered != expected || acked != expected {
        eprintln!(
            "expected {expected} delivered and acked, got {delivered} delivered, {acked} acked"
        );
        std::process::exit(1);
    }
}
