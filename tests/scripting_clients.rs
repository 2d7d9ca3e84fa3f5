//! Lua scripting as client libraries use it, against Larder:
//!
//! - redis-py (RESP2 and RESP3, `tests/clients/redis_py_scripting.py`):
//!   its `Lock` (sync and `redis.asyncio`), `Script` objects across
//!   SCRIPT FLUSH, a sliding-window rate limiter in Lua under concurrent
//!   callers, FUNCTION LOAD / FCALL;
//! - the `redis` crate: 50 clients incrementing one key by script (declared
//!   and undeclared keys), mixed with plain INCR, and readers that must
//!   never see a script half done.
//!
//! Needs `python3` with the `redis` package (`.ci/run` installs it).

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use common::TestServer;

fn run_redis_py(protocol: u8, section: &str) {
    let server = TestServer::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/redis_py_scripting.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(server.addr.port().to_string())
        .arg(protocol.to_string())
        .arg(section)
        .output()
        .expect("python3 must be installed, with the redis package (pip install redis)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "redis-py (RESP{protocol}, {section}) failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn redis_py_lock_resp2() {
    run_redis_py(2, "lock");
}

#[test]
fn redis_py_lock_resp3() {
    run_redis_py(3, "lock");
}

#[test]
fn redis_py_asyncio_lock_resp2() {
    run_redis_py(2, "async_lock");
}

#[test]
fn redis_py_asyncio_lock_resp3() {
    run_redis_py(3, "async_lock");
}

#[test]
fn redis_py_script_objects_survive_script_flush_resp2() {
    run_redis_py(2, "script");
}

#[test]
fn redis_py_script_objects_survive_script_flush_resp3() {
    run_redis_py(3, "script");
}

#[test]
fn redis_py_sliding_window_rate_limiter_resp2() {
    run_redis_py(2, "rate_limiter");
}

#[test]
fn redis_py_sliding_window_rate_limiter_resp3() {
    run_redis_py(3, "rate_limiter");
}

#[test]
fn redis_py_function_load_and_fcall_resp2() {
    run_redis_py(2, "function");
}

#[test]
fn redis_py_function_load_and_fcall_resp3() {
    run_redis_py(3, "function");
}

// ------------------------------------------------ the `redis` crate, 50 clients

const CLIENTS: usize = 50;
const ROUNDS: usize = 200;

/// GET, add 1, SET: a read-modify-write that loses updates unless the
/// script runs as one isolated step. The busy loop between the read and the
/// write widens the window an interleaving command would need.
const INCR_DECLARED: &str = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') \
     for i = 1, 200 do end \
     redis.call('SET', KEYS[1], v + 1) \
     return v + 1";

/// The same on a key the script does not declare (its name in ARGV).
const INCR_UNDECLARED: &str = "local v = tonumber(redis.call('GET', ARGV[1]) or '0') \
     for i = 1, 200 do end \
     redis.call('SET', ARGV[1], v + 1) \
     return v + 1";

/// Writes the client's own declared key first, then the read-modify-write
/// of the counter, which it does not declare (its name in ARGV).
const INCR_UNDECLARED_AFTER_A_WRITE: &str = "redis.call('SET', KEYS[1], ARGV[1]) \
     local v = tonumber(redis.call('GET', ARGV[1]) or '0') \
     for i = 1, 200 do end \
     redis.call('SET', ARGV[1], v + 1) \
     return v + 1";

#[derive(Clone, Copy)]
enum Client {
    /// EVALSHA of `INCR_DECLARED` with the key in KEYS.
    Declared,
    /// EVALSHA of `INCR_UNDECLARED` with no keys.
    Undeclared,
    /// EVALSHA of `INCR_UNDECLARED_AFTER_A_WRITE`, declaring a key of its
    /// own (`client:N`).
    UndeclaredAfterAWrite(usize),
    /// Plain INCR.
    Incr,
}

/// Runs `kinds[i]` on client i, ROUNDS times each, all starting together;
/// returns the final value of `counter`.
fn hammer(server: &TestServer, kinds: &[Client]) -> i64 {
    let mut con = server.client();
    let declared: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(INCR_DECLARED)
        .query(&mut con)
        .unwrap();
    let undeclared: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(INCR_UNDECLARED)
        .query(&mut con)
        .unwrap();
    let after_a_write: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(INCR_UNDECLARED_AFTER_A_WRITE)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("DEL").arg("counter").query(&mut con).unwrap();
    let start = Arc::new(Barrier::new(kinds.len()));
    let handles: Vec<_> = kinds
        .iter()
        .map(|&kind| {
            let mut con = server.client();
            let start = Arc::clone(&start);
            let (declared, undeclared) = (declared.clone(), undeclared.clone());
            let after_a_write = after_a_write.clone();
            std::thread::spawn(move || {
                start.wait();
                let mut last = 0;
                for _ in 0..ROUNDS {
                    let value: i64 = match kind {
                        Client::Declared => redis::cmd("EVALSHA")
                            .arg(&declared)
                            .arg(1)
                            .arg("counter")
                            .query(&mut con),
                        Client::Undeclared => redis::cmd("EVALSHA")
                            .arg(&undeclared)
                            .arg(0)
                            .arg("counter")
                            .query(&mut con),
                        Client::UndeclaredAfterAWrite(n) => redis::cmd("EVALSHA")
                            .arg(&after_a_write)
                            .arg(1)
                            .arg(format!("client:{n}"))
                            .arg("counter")
                            .query(&mut con),
                        Client::Incr => redis::cmd("INCR").arg("counter").query(&mut con),
                    }
                    .unwrap();
                    // Each client's own results only grow.
                    assert!(value > last, "{value} after {last}");
                    last = value;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("client thread");
    }
    redis::cmd("GET").arg("counter").query(&mut con).unwrap()
}

#[test]
fn fifty_clients_incrementing_by_evalsha_lose_no_update() {
    let server = TestServer::start();
    let total = hammer(&server, &[Client::Declared; CLIENTS]);
    assert_eq!(total, (CLIENTS * ROUNDS) as i64);
}

#[test]
fn fifty_clients_incrementing_an_undeclared_key_by_evalsha_lose_no_update() {
    let server = TestServer::start();
    let total = hammer(&server, &[Client::Undeclared; CLIENTS]);
    assert_eq!(total, (CLIENTS * ROUNDS) as i64);
}

/// Each script declares a key of its own, writes it, then increments the
/// undeclared counter: Redis runs every one whole, with no error.
#[test]
fn fifty_clients_incrementing_an_undeclared_key_after_a_write_lose_no_update() {
    let server = TestServer::start();
    let kinds: Vec<Client> = (0..CLIENTS).map(Client::UndeclaredAfterAWrite).collect();
    let total = hammer(&server, &kinds);
    assert_eq!(total, (CLIENTS * ROUNDS) as i64);
}

#[test]
fn scripts_mixed_with_plain_incr_lose_no_update() {
    let server = TestServer::start();
    // Half run INCR; the scripts alternate declared and undeclared access.
    let kinds: Vec<Client> = (0..CLIENTS)
        .map(|i| match i % 4 {
            0 | 2 => Client::Incr,
            1 => Client::Declared,
            _ => Client::Undeclared,
        })
        .collect();
    let total = hammer(&server, &kinds);
    assert_eq!(total, (CLIENTS * ROUNDS) as i64);
}

/// What concurrent scripts and readers went through.
#[derive(Debug, Default)]
struct Sightings {
    /// Scripts that failed (each one an error reply Redis never gives).
    script_errors: Vec<String>,
    /// Reads that saw the keys a script writes together disagree.
    half_done: Vec<Vec<i64>>,
    reads: usize,
}

/// `writers` clients run `script` (declaring `declared`) 300 times each
/// while readers MGET `read_sets` in a loop; the script sets every key of
/// `pair:a`, `pair:b`, `other:c` to one new number.
fn scripts_against_readers(
    script: &str,
    declared: &[&str],
    writers: usize,
    read_sets: &[&[&str]],
) -> (Sightings, Vec<i64>) {
    let server = TestServer::start();
    let mut con = server.client();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(script)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("MSET")
        .arg(&["pair:a", "0", "pair:b", "0", "other:c", "0"])
        .query(&mut con)
        .unwrap();
    let sightings = Arc::new(std::sync::Mutex::new(Sightings::default()));
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..writers)
        .map(|_| {
            let mut con = server.client();
            let sha = sha.clone();
            let declared: Vec<String> = declared.iter().map(|k| k.to_string()).collect();
            let sightings = Arc::clone(&sightings);
            std::thread::spawn(move || {
                for _ in 0..300 {
                    let result: redis::RedisResult<i64> = redis::cmd("EVALSHA")
                        .arg(&sha)
                        .arg(declared.len())
                        .arg(&declared)
                        .query(&mut con);
                    if let Err(error) = result {
                        sightings
                            .lock()
                            .unwrap()
                            .script_errors
                            .push(error.to_string());
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = read_sets
        .iter()
        .flat_map(|keys| [keys, keys])
        .map(|keys| {
            let mut con = server.client();
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            let done = Arc::clone(&done);
            let sightings = Arc::clone(&sightings);
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(Ordering::Relaxed) || reads < 10 {
                    let values: Vec<i64> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
                    if values.windows(2).any(|w| w[0] != w[1]) {
                        sightings.lock().unwrap().half_done.push(values);
                    }
                    reads += 1;
                }
                sightings.lock().unwrap().reads += reads;
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("reader");
    }
    let values: Vec<i64> = redis::cmd("MGET")
        .arg(&["pair:a", "pair:b", "other:c"])
        .query(&mut con)
        .unwrap();
    let sightings = std::mem::take(&mut *sightings.lock().unwrap());
    (sightings, values)
}

/// Checks a run of [`scripts_against_readers`] with 4 writers: every script
/// ran, no read saw one half done, the keys end equal at 1200.
fn assert_isolated(sightings: Sightings, values: Vec<i64>) {
    assert!(sightings.reads >= 10, "{sightings:?}");
    assert!(
        sightings.script_errors.is_empty() && sightings.half_done.is_empty(),
        "{} of 1200 scripts failed (first: {:?}); {} of {} reads saw a script half done (first: {:?}); final values {values:?}",
        sightings.script_errors.len(),
        sightings.script_errors.first(),
        sightings.half_done.len(),
        sightings.reads,
        sightings.half_done.first(),
    );
    assert_eq!(values, vec![1200, 1200, 1200]);
}

/// Writes `pair:a` (by INCR: the new number), then the two others.
const WRITE_THREE: &str = "local n = redis.call('INCR', 'pair:a') \
     for i = 1, 200 do end \
     redis.call('SET', 'pair:b', n) \
     redis.call('SET', 'other:c', n) \
     return n";

/// A script that declares no key writes three: readers of all three, and
/// readers of two, see it whole or not at all.
#[test]
fn readers_never_see_a_script_without_declared_keys_half_done() {
    let (sightings, values) = scripts_against_readers(
        WRITE_THREE,
        &[],
        4,
        &[&["pair:a", "pair:b", "other:c"], &["pair:b", "other:c"]],
    );
    assert_isolated(sightings, values);
}

/// The same script declaring all three keys.
#[test]
fn readers_never_see_a_script_with_declared_keys_half_done() {
    let (sightings, values) = scripts_against_readers(
        WRITE_THREE,
        &["pair:a", "pair:b", "other:c"],
        4,
        &[&["pair:a", "pair:b", "other:c"], &["pair:b", "other:c"]],
    );
    assert_isolated(sightings, values);
}

/// The same script declaring only `pair:a`, the key it writes first: the
/// other two are undeclared keys touched after a write. Redis runs it
/// whole; Larder must too (issue 12: isolation "including keys the script
/// touches without declaring them in KEYS"), whoever else reads them.
#[test]
fn readers_never_see_a_script_with_undeclared_keys_after_a_write_half_done() {
    let (sightings, values) = scripts_against_readers(
        WRITE_THREE,
        &["pair:a"],
        4,
        &[&["pair:a", "pair:b", "other:c"], &["pair:b", "other:c"]],
    );
    assert_isolated(sightings, values);
}

/// SCRIPT FLUSH while clients run EVALSHA, falling back to EVAL on NOSCRIPT
/// (as client libraries do), and FUNCTION LOAD REPLACE while others FCALL:
/// no call fails otherwise, no update is lost.
#[test]
fn script_flush_and_function_replace_under_concurrent_callers() {
    let server = TestServer::start();
    let mut con = server.client();
    let library = "#!lua name=ctr\nredis.register_function('ctr_incr', function(keys) \
                   local v = tonumber(redis.call('GET', keys[1]) or '0') \
                   redis.call('SET', keys[1], v + 1) return v + 1 end)";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(library)
        .query(&mut con)
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let flusher = {
        let mut con = server.client();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut flushes = 0;
            while !done.load(Ordering::Relaxed) {
                let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
                let _: String = redis::cmd("FUNCTION")
                    .arg("LOAD")
                    .arg("REPLACE")
                    .arg(library)
                    .query(&mut con)
                    .unwrap();
                flushes += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            flushes
        })
    };
    let callers: Vec<_> = (0..16)
        .map(|i| {
            let mut con = server.client();
            std::thread::spawn(move || {
                let sha = redis::Script::new(INCR_DECLARED).get_hash().to_string();
                let mut noscript = 0;
                for _ in 0..100 {
                    if i % 2 == 0 {
                        let by_sha: redis::RedisResult<i64> = redis::cmd("EVALSHA")
                            .arg(&sha)
                            .arg(1)
                            .arg("by-script")
                            .query(&mut con);
                        match by_sha {
                            Ok(_) => {}
                            Err(error) if error.kind() == redis::ErrorKind::NoScriptError => {
                                noscript += 1;
                                let _: i64 = redis::cmd("EVAL")
                                    .arg(INCR_DECLARED)
                                    .arg(1)
                                    .arg("by-script")
                                    .query(&mut con)
                                    .unwrap();
                            }
                            Err(error) => panic!("EVALSHA: {error}"),
                        }
                    } else {
                        let _: i64 = redis::cmd("FCALL")
                            .arg("ctr_incr")
                            .arg(1)
                            .arg("by-function")
                            .query(&mut con)
                            .unwrap();
                    }
                }
                noscript
            })
        })
        .collect();
    let mut noscript = 0;
    for caller in callers {
        noscript += caller.join().expect("caller");
    }
    // EVAL loaded the script again after each flush: EVALSHA found it too.
    assert!(noscript < 800, "every EVALSHA got NOSCRIPT");
    done.store(true, Ordering::Relaxed);
    assert!(flusher.join().expect("flusher") > 0);
    let values: Vec<i64> = redis::cmd("MGET")
        .arg(&["by-script", "by-function"])
        .query(&mut con)
        .unwrap();
    assert_eq!(values, vec![800, 800]);
}

/// A client that sends a long script and disconnects at once: the script
/// still runs to its end (its writes land, as in Redis), and the others
/// wait for it rather than seeing its state half done.
#[test]
fn a_script_whose_client_disconnects_runs_to_its_end() {
    let server = TestServer::start();
    let mut con = server.client();
    let script = "redis.call('SET', 'first', '1') \
                  local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] \
                  repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start > 300000 \
                  redis.call('SET', 'second', '1') return 1";
    let mut raw = server.raw();
    raw.send(&common::encode_command(&[b"EVAL", script.as_bytes(), b"0"]));
    drop(raw);
    // Whenever `first` shows, `second` must be there too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let both: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&["first", "second"])
            .query(&mut con)
            .unwrap();
        match both.as_slice() {
            [None, None] => {
                assert!(std::time::Instant::now() < deadline, "the script never ran");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            [Some(_), Some(_)] => break,
            other => panic!("the script was cut short or seen half done: {other:?}"),
        }
    }
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

/// EVALSHA queued in MULTI/EXEC by concurrent clients, with plain INCR in
/// the same transactions: exact totals.
#[test]
fn scripts_inside_concurrent_transactions_lose_no_update() {
    let server = TestServer::start();
    let mut con = server.client();
    let mut load = |script: &str| -> String {
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(script)
            .query(&mut con)
            .unwrap()
    };
    let (declared, undeclared) = (load(INCR_DECLARED), load(INCR_UNDECLARED));
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let mut con = server.client();
            let (declared, undeclared) = (declared.clone(), undeclared.clone());
            std::thread::spawn(move || {
                for _ in 0..100 {
                    let (a, b, c): (i64, i64, i64) = redis::pipe()
                        .atomic()
                        .cmd("EVALSHA")
                        .arg(&declared)
                        .arg(1)
                        .arg("tx:counter")
                        .cmd("INCR")
                        .arg("tx:counter")
                        .cmd("EVALSHA")
                        .arg(&undeclared)
                        .arg(0)
                        .arg("tx:counter")
                        .query(&mut con)
                        .unwrap();
                    // Nothing runs between a transaction's commands.
                    assert_eq!((b, c), (a + 1, a + 2));
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    let total: i64 = redis::cmd("GET").arg("tx:counter").query(&mut con).unwrap();
    assert_eq!(total, 3000);
}

/// Larder's `math.random` follows Redis's one sequence for the server's
/// life (README); a script that reads a key it did not declare is run a
/// second time holding every shard, and that second run must not draw
/// numbers Redis would not have drawn. Compared with a fresh redis-server.
#[test]
fn math_random_sequence_matches_redis_across_a_rerun() {
    let pair = common::Pair::start();
    let mut clients = pair.clients();
    let draw_then_read = "local r = math.random(1000000) redis.call('GET', ARGV[1]) return r";
    for undeclared in ["undeclared-zz", "u1", "u2", "u3"] {
        clients.same(&["EVAL", draw_then_read, "1", "declared", undeclared]);
        clients.same(&["EVAL", "return math.random(1000000)", "0"]);
    }
}

/// A script that declares one key and, after writing it, writes a key it
/// did not declare: a client WATCHing that key has its EXEC aborted, and a
/// client blocked on it (BLPOP) is served, as in Redis. Both key orders
/// (the undeclared key's shard before and after the declared one's).
#[test]
fn undeclared_writes_after_a_write_abort_watchers_and_wake_blocked_clients() {
    let server = TestServer::start();
    let mut con = server.client();
    let script = "redis.call('INCR', KEYS[1]) return redis.call('RPUSH', ARGV[1], 'v')";
    for (declared, undeclared) in [
        ("pair:a", "pair:b"),
        ("pair:b", "pair:a"),
        ("x", "y"),
        ("y", "x"),
    ] {
        let mut watcher = server.client();
        let _: () = redis::cmd("WATCH")
            .arg(undeclared)
            .query(&mut watcher)
            .unwrap();
        let _: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(declared)
            .arg(undeclared)
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("MULTI").query(&mut watcher).unwrap();
        let _: () = redis::cmd("SET")
            .arg("out")
            .arg("1")
            .query(&mut watcher)
            .unwrap();
        let exec: redis::Value = redis::cmd("EXEC").query(&mut watcher).unwrap();
        assert_eq!(exec, redis::Value::Nil, "EXEC after {undeclared} changed");

        let list = format!("list:{undeclared}");
        let blocked = {
            let mut blocked = server.client();
            let list = list.clone();
            std::thread::spawn(move || -> Option<(String, String)> {
                redis::cmd("BLPOP")
                    .arg(&list)
                    .arg(5)
                    .query(&mut blocked)
                    .unwrap()
            })
        };
        // Wait until the client is blocked.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
            if info.contains("blocked_clients:1") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{info}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(declared)
            .arg(&list)
            .query(&mut con)
            .unwrap();
        let popped = blocked.join().expect("blocked client");
        assert_eq!(popped, Some((list.clone(), "v".to_string())));
        let _: () = redis::cmd("DEL")
            .arg(&[declared, undeclared, list.as_str()])
            .query(&mut con)
            .unwrap();
    }
}
