//! Do other clients stall while the server evicts or flushes write-behind
//! changes to PostgreSQL?
//!
//! Loads `--keys` keys (`key:<i>`, 32-byte values, pipelined), then runs
//! a paced writer (20,000 SETs a second in batches of 100) and a probe
//! connection that GETs one random loaded key at a time, every 200 µs, so
//! that it goes through the same shard locks as the background work. The
//! probe's round trips are reported per phase, the first of which is the
//! baseline: the same load with nothing in the background.
//!
//! - `eviction` (any server): after the 2 s baseline, `maxmemory` drops to
//!   half the used memory (policy `--policy`, allkeys-lru unless given):
//!   the mass eviction lasts until used memory is under it, then 3 s of
//!   steady eviction follow, where each new key the writer adds evicts.
//! - `writebehind` (Larder started with write-behind on and its flusher
//!   held back, e.g. `--write-behind-delay 3600000
//!   --write-behind-batch-size 1000000`, more than `--keys`): after the 2 s
//!   baseline, `WRITEBEHIND FLUSH 0` sends the whole backlog to
//!   PostgreSQL in batches of 1,000 keys; the flush phase lasts until it
//!   answers, then 2 s follow.
//!
//! ```text
//! cargo run --release --example background_stalls -- --port 6379 --scenario eviction
//! ```
//!
//! `tools/background-stalls.sh` starts the servers (and PostgreSQL) and
//! runs both scenarios.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{command, connect, encode, info_field, integer, pipeline, report_phases, Probe};

struct Args {
    port: u16,
    scenario: String,
    keys: u64,
    policy: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 6379,
        scenario: "eviction".into(),
        keys: 1_000_000,
        policy: "allkeys-lru".into(),
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--port" => args.port = value.parse().expect("--port"),
            "--scenario" => args.scenario = value,
            "--keys" => args.keys = value.parse().expect("--keys"),
            "--policy" => args.policy = value,
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

const VALUE: &[u8] = &[b'v'; 32];
const WRITER_BATCH: u64 = 100;
const WRITER_PERIOD: Duration = Duration::from_millis(5);

/// Sets `key:<i>` for i in `range`, 1,000 commands per round trip.
fn load(address: &str, range: std::ops::Range<u64>) {
    let mut conn = connect(address);
    let mut request = Vec::new();
    let mut i = range.start;
    while i < range.end {
        let end = (i + 1000).min(range.end);
        request.clear();
        for n in i..end {
            encode(
                &mut request,
                &[b"SET", format!("key:{n}").as_bytes(), VALUE],
            );
        }
        pipeline(&mut conn, &request, (end - i) as usize);
        i = end;
    }
}

/// The paced writer: `WRITER_BATCH` SETs every `WRITER_PERIOD`, of new keys
/// from `first` on (`fresh`) or of loaded keys below `first`, recording
/// each batch's start and round trip as the probe does.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(Instant, Duration)>>,
}

impl Writer {
    fn start(address: &str, first: u64, fresh: bool) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let mut conn = connect(address);
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut request = Vec::new();
            let mut next_key = first;
            let mut next_batch = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                request.clear();
                for _ in 0..WRITER_BATCH {
                    let key = if fresh {
                        next_key += 1;
                        next_key
                    } else {
                        random() % first
                    };
                    encode(
                        &mut request,
                        &[b"SET", format!("key:{key}").as_bytes(), VALUE],
                    );
                }
                let started = Instant::now();
                pipeline(&mut conn, &request, WRITER_BATCH as usize);
                samples.push((started, started.elapsed()));
                next_batch += WRITER_PERIOD;
                if let Some(wait) = next_batch.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            samples
        });
        Writer { stop, thread }
    }

    /// Stops it and returns the batches' samples.
    fn finish(self) -> Vec<(Instant, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("writer")
    }
}

/// xorshift64, seeded from the clock: enough to spread the probe's keys.
fn random() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 | 1),
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

/// Polls every 50 ms, for at most `limit`, until `done` holds; returns when.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Instant {
    let give_up = Instant::now() + limit;
    while !done() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
    }
    Instant::now()
}

fn main() {
    let args = parse_args();
    let address = format!("127.0.0.1:{}", args.port);
    let mut control = connect(&address);
    command(&mut control, &["FLUSHALL"]);
    let load_started = Instant::now();
    // Two loaders, each on half of the keys.
    let half = args.keys / 2;
    std::thread::scope(|scope| {
        scope.spawn(|| load(&address, 0..half));
        scope.spawn(|| load(&address, half..args.keys));
    });
    let loaded = integer(&command(&mut control, &["DBSIZE"]));
    println!("loaded {loaded} keys in {:.2?}", load_started.elapsed());
    assert_eq!(loaded, args.keys, "not every key was loaded");

    let keys = args.keys;
    let probe = Probe::start(&address, move || {
        vec!["GET".into(), format!("key:{}", random() % keys)]
    });
    let fresh = args.scenario == "eviction";
    let writer = Writer::start(&address, keys, fresh);
    let baseline_from = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let work_from = Instant::now();
    let (work_to, after_to, after_name) = match args.scenario.as_str() {
        "eviction" => {
            let used = info_field(&mut control, "memory", "used_memory");
            let limit = used / 2;
            command(
                &mut control,
                &["CONFIG", "SET", "maxmemory-policy", &args.policy],
            );
            command(
                &mut control,
                &["CONFIG", "SET", "maxmemory", &limit.to_string()],
            );
            // The writer's keys keep it a little over the limit between
            // evictions: within 1% counts as there.
            let under = wait_until(Duration::from_secs(60), || {
                info_field(&mut control, "memory", "used_memory") <= limit + limit / 100
            });
            println!(
                "maxmemory {used} -> {limit} bytes ({}): used memory at it after {:.2?}",
                args.policy,
                under - work_from
            );
            std::thread::sleep(Duration::from_secs(3));
            (under, Instant::now(), "steady eviction (3 s)")
        }
        "writebehind" => {
            let pending = |c: &mut support::Conn| {
                let status = command(c, &["WRITEBEHIND", "STATUS"]);
                let mut fields = status.split_whitespace();
                while let Some(name) = fields.next() {
                    if name == "pending_keys" {
                        return fields.next().map_or(0, integer);
                    }
                }
                0
            };
            let backlog = pending(&mut control);
            // Batches of the default size from here on.
            command(
                &mut control,
                &["CONFIG", "SET", "write-behind-batch-size", "1000"],
            );
            let reply = command(&mut control, &["WRITEBEHIND", "FLUSH", "0"]);
            let flushed = Instant::now();
            println!(
                "WRITEBEHIND FLUSH of {backlog} pending keys: {reply} after {:.2?}",
                flushed - work_from
            );
            std::thread::sleep(Duration::from_secs(2));
            (flushed, Instant::now(), "after it (2 s)")
        }
        other => panic!("unknown scenario {other}"),
    };
    let batches = writer.finish();
    let sets = batches.len() as u64 * WRITER_BATCH;
    let samples = probe.finish();
    println!(
        "writer: {sets} SETs; DBSIZE now {}, evicted_keys {}",
        integer(&command(&mut control, &["DBSIZE"])),
        info_field(&mut control, "stats", "evicted_keys")
    );
    let during = if fresh { "mass eviction" } else { "the flush" };
    let phases = [
        ("baseline (2 s)", Some(baseline_from), Some(work_from)),
        (during, Some(work_from), Some(work_to)),
        (after_name, Some(work_to), Some(after_to)),
    ];
    report_phases("GET probe", &samples, &phases);
    report_phases("writer's batches", &batches, &phases);
}
