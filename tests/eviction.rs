//! maxmemory and eviction, through the real `larder-server` binary: it
//! installs the counting allocator, so INFO's used_memory is exact there
//! (and each test gets its own process, so memory figures do not mix).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::{Connection, RedisResult, Value};

/// Redis's OOM error, as the redis crate renders it (code, colon, text).
const OOM: &str = "OOM: command not allowed when used memory > 'maxmemory'.";

struct BinServer {
    child: Child,
    url: String,
    addr: SocketAddr,
}

impl BinServer {
    fn start(settings: &[(&str, &str)]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut command = Command::new(env!("CARGO_BIN_EXE_larder-server"));
        command.arg("--port").arg(port.to_string());
        for (name, value) in settings {
            command.arg("--set").arg(name).arg(value);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn larder-server");
        let server = BinServer {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // PONG, not -LOADING: with write-behind on, the server loads
            // (journal, warm start) before it serves.
            let pong = server
                .try_client()
                .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con));
            if pong.is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("larder-server did not start");
    }

    fn try_client(&self) -> RedisResult<Connection> {
        redis::Client::open(self.url.as_str())?.get_connection()
    }

    fn client(&self) -> Connection {
        self.try_client().expect("connect")
    }
}

impl Drop for BinServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn info_field(con: &mut Connection, name: &str) -> String {
    let text: String = redis::cmd("INFO").arg("all").query(con).expect("INFO");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("INFO has no {name}"))
        .to_string()
}

fn info_u64(con: &mut Connection, name: &str) -> u64 {
    info_field(con, name).parse().expect("number")
}

fn config_set(con: &mut Connection, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(con)
        .expect("CONFIG SET");
}

/// Writes keys `prefix{i}` with `value`, `count` of them, in pipelined
/// batches; returns the first error.
fn fill(
    con: &mut Connection,
    prefix: &str,
    range: std::ops::Range<usize>,
    value: &[u8],
    ttl: Option<u64>,
) -> Result<(), String> {
    let keys: Vec<usize> = range.collect();
    for batch in keys.chunks(200) {
        let mut pipe = redis::pipe();
        for i in batch {
            let cmd = pipe.cmd("SET").arg(format!("{prefix}{i}")).arg(value);
            if let Some(secs) = ttl {
                cmd.arg("EX").arg(secs + *i as u64);
            }
        }
        let replies: Vec<RedisResult<Value>> = match pipe.query::<Vec<Value>>(con) {
            Ok(values) => values.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        for reply in replies {
            if let Err(e) = reply {
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

fn exists(con: &mut Connection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(con)
        .expect("EXISTS")
        == 1
}

fn count_existing(con: &mut Connection, prefix: &str, range: std::ops::Range<usize>) -> usize {
    range
        .filter(|i| exists(con, &format!("{prefix}{i}")))
        .count()
}

#[test]
fn noeviction_refuses_writes_and_serves_reads() {
    let server = BinServer::start(&[]);
    let mut con = server.client();
    let _: () = redis::cmd("SET")
        .arg("keep")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let used = info_u64(&mut con, "used_memory");
    config_set(&mut con, "maxmemory", &(used + 2 * 1024 * 1024).to_string());
    let err = fill(&mut con, "k", 0..100_000, &[b'x'; 1024], None).unwrap_err();
    assert!(err.contains(OOM), "{err}");
    // The fill hit the limit while its pipeline's buffers counted too; with
    // them gone a small write could fit again, so the limit drops well
    // under what the keys alone use.
    let used = info_u64(&mut con, "used_memory");
    config_set(&mut con, "maxmemory", &(used / 2).to_string());
    // Reads and deletions still work; writes do not.
    let value: String = redis::cmd("GET").arg("keep").query(&mut con).unwrap();
    assert_eq!(value, "v");
    let err = redis::cmd("SET")
        .arg("more")
        .arg("x")
        .query::<()>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("OOM"));
    assert!(err.to_string().contains(OOM), "{err}");
    // Byte for byte, as Redis sends it.
    let mut raw = std::net::TcpStream::connect(
        server
            .url
            .trim_start_matches("redis://")
            .trim_end_matches('/'),
    )
    .unwrap();
    use std::io::{Read, Write};
    raw.write_all(b"SET more x\r\n").unwrap();
    let mut reply = [0u8; 128];
    let n = raw.read(&mut reply).unwrap();
    assert_eq!(
        &reply[..n],
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
    );
    // A refused command inside MULTI aborts the transaction.
    let _: () = redis::cmd("MULTI").query(&mut con).unwrap();
    assert!(redis::cmd("SET")
        .arg("a")
        .arg("b")
        .query::<()>(&mut con)
        .is_err());
    let err = redis::cmd("EXEC").query::<Value>(&mut con).unwrap_err();
    assert!(err.to_string().contains("Transaction discarded"), "{err}");
    let removed: i64 = redis::cmd("DEL").arg("k0").query(&mut con).unwrap();
    assert_eq!(removed, 1);
    assert_eq!(info_u64(&mut con, "evicted_keys"), 0);
    // Lifting the limit lets writes through again.
    config_set(&mut con, "maxmemory", "0");
    let _: () = redis::cmd("SET")
        .arg("more")
        .arg("x")
        .query(&mut con)
        .unwrap();
}

#[test]
fn volatile_policies_evict_only_keys_with_a_ttl() {
    for policy in [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] {
        let server = BinServer::start(&[("maxmemory-policy", policy)]);
        let mut con = server.client();
        let value = [b'v'; 1024];
        fill(&mut con, "p", 0..2000, &value, None).unwrap();
        fill(&mut con, "t", 0..2000, &value, Some(1000)).unwrap();
        let used = info_u64(&mut con, "used_memory");
        config_set(&mut con, "maxmemory", &(used - 1024 * 1024).to_string());
        // Writes go on while volatile keys remain; then OOM.
        let result = fill(&mut con, "q", 0..20_000, &value, None);
        let err = result.expect_err(policy);
        assert!(err.contains(OOM), "{policy}: {err}");
        assert_eq!(
            count_existing(&mut con, "p", 0..2000),
            2000,
            "{policy} evicted persistent keys"
        );
        assert_eq!(count_existing(&mut con, "t", 0..2000), 0, "{policy}");
        assert!(info_u64(&mut con, "evicted_keys") >= 2000, "{policy}");
        let value: String = redis::cmd("GET").arg("p7").query(&mut con).unwrap();
        assert_eq!(value.len(), 1024);
    }
}

#[test]
fn volatile_ttl_evicts_the_soonest_expiring_first() {
    let server = BinServer::start(&[("maxmemory-policy", "volatile-ttl")]);
    let mut con = server.client();
    let value = [b'v'; 1024];
    // t{i} expires in 1000 + i seconds.
    fill(&mut con, "t", 0..4000, &value, Some(1000)).unwrap();
    let used = info_u64(&mut con, "used_memory");
    config_set(&mut con, "maxmemory", &used.to_string());
    // About 1000 keys' worth of new persistent data.
    fill(&mut con, "p", 0..1000, &value, None).unwrap();
    let evicted = info_u64(&mut con, "evicted_keys") as usize;
    assert!((800..=1600).contains(&evicted), "{evicted}");
    let soonest_left = count_existing(&mut con, "t", 0..500);
    let latest_left = count_existing(&mut con, "t", 2000..4000);
    assert!(soonest_left < 50, "{soonest_left} of the 500 soonest kept");
    assert!(latest_left > 1950, "{latest_left} of the 2000 latest kept");
}

#[test]
fn allkeys_lru_keeps_recently_read_keys() {
    let server = BinServer::start(&[("maxmemory-policy", "allkeys-lru")]);
    let mut con = server.client();
    let value = [b'v'; 1024];
    fill(&mut con, "cold", 0..6000, &value, None).unwrap();
    // The LRU clock ticks in seconds, as Redis's does.
    std::thread::sleep(Duration::from_millis(2100));
    let used = info_u64(&mut con, "used_memory");
    config_set(&mut con, "maxmemory", &used.to_string());
    let hot = 0..500;
    for round in 0..20 {
        for i in hot.clone() {
            let _: Option<Vec<u8>> = redis::cmd("GET")
                .arg(format!("cold{i}"))
                .query(&mut con)
                .unwrap();
        }
        fill(
            &mut con,
            "new",
            round * 200..(round + 1) * 200,
            &value,
            None,
        )
        .unwrap();
    }
    let evicted = info_u64(&mut con, "evicted_keys");
    assert!(evicted >= 3000, "{evicted}");
    let hot_left = count_existing(&mut con, "cold", hot);
    assert!(hot_left >= 475, "only {hot_left} of 500 hot keys kept");
}

#[test]
fn allkeys_lfu_keeps_frequently_read_keys_and_reports_freq() {
    let server = BinServer::start(&[("maxmemory-policy", "allkeys-lfu")]);
    let mut con = server.client();
    let value = [b'v'; 1024];
    fill(&mut con, "k", 0..6000, &value, None).unwrap();
    for _ in 0..30 {
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.cmd("GET").arg(format!("k{i}")).ignore();
        }
        let _: () = pipe.query(&mut con).unwrap();
    }
    let freq: i64 = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("k1")
        .query(&mut con)
        .unwrap();
    assert!(freq > 5, "{freq}");
    let err = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("k1")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("An LFU maxmemory policy is selected, idle time not tracked"),
        "{err}"
    );
    let used = info_u64(&mut con, "used_memory");
    config_set(&mut con, "maxmemory", &used.to_string());
    fill(&mut con, "new", 0..3000, &value, None).unwrap();
    let hot_left = count_existing(&mut con, "k", 0..500);
    assert!(hot_left >= 475, "only {hot_left} of 500 hot keys kept");
    // Back to an LRU policy: FREQ errors as in Redis, IDLETIME works.
    config_set(&mut con, "maxmemory-policy", "allkeys-lru");
    let err = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("k1")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("An LFU maxmemory policy is not selected"));
    let _: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("k1")
        .query(&mut con)
        .unwrap();
}

#[test]
fn a_flood_far_beyond_maxmemory_stays_near_the_limit() {
    let limit: u64 = 20 * 1024 * 1024;
    let server = BinServer::start(&[
        ("maxmemory", "20mb"),
        ("maxmemory-policy", "allkeys-random"),
    ]);
    let mut con = server.client();
    let value = vec![b'x'; 10 * 1024];
    let mut peak_used = 0;
    // 200 MB of SETs, ten times the limit.
    for round in 0..20 {
        fill(
            &mut con,
            "f",
            round * 1000..(round + 1) * 1000,
            &value,
            None,
        )
        .unwrap();
        peak_used = peak_used.max(info_u64(&mut con, "used_memory"));
        let pong: String = redis::cmd("PING").query(&mut con).unwrap();
        assert_eq!(pong, "PONG");
    }
    let used = info_u64(&mut con, "used_memory");
    let rss = info_u64(&mut con, "used_memory_rss");
    let keys: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    // Slack: one value, plus per-thread unflushed counts and buffers.
    assert!(used <= limit + 1024 * 1024, "used_memory {used}");
    assert!(peak_used <= limit + 1024 * 1024, "peak {peak_used}");
    assert!(
        used >= limit / 2,
        "used_memory {used}: evicted far too much"
    );
    assert!(keys < 2000, "{keys} keys of 10 KiB under 20 MiB");
    // Every key written is there or was evicted. Background eviction may
    // still be at work: count when no eviction happened around DBSIZE.
    let mut settled = false;
    for _ in 0..100 {
        let before = info_u64(&mut con, "evicted_keys");
        let now_keys: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        if info_u64(&mut con, "evicted_keys") == before {
            assert_eq!(before + now_keys, 20_000);
            settled = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(settled, "eviction never settled");
    eprintln!("flood: used_memory {used}, rss {rss}, keys {keys}");
}

/// As Redis's eviction time proc: with `maxmemory` lowered below the used
/// memory, the server evicts down to it in the background, while its
/// clients only read; the reads answer throughout and none is refused.
#[test]
fn a_lowered_maxmemory_is_reached_in_the_background_without_writes() {
    let server = BinServer::start(&[("maxmemory-policy", "allkeys-lru")]);
    let mut con = server.client();
    let empty = info_u64(&mut con, "used_memory");
    fill(&mut con, "k:", 0..20_000, &[b'v'; 500], None).expect("fill");
    let used = info_u64(&mut con, "used_memory");
    let limit = empty + (used - empty) / 2;
    config_set(&mut con, "maxmemory", &limit.to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reads = 0;
    // used_memory is exact to 64 KiB per thread (larder::memory).
    while info_u64(&mut con, "used_memory") > limit + 128 * 1024 {
        assert!(
            Instant::now() < deadline,
            "still over maxmemory {limit}: {}, {} evicted, {} keys left",
            info_u64(&mut con, "used_memory"),
            info_u64(&mut con, "evicted_keys"),
            redis::cmd("DBSIZE").query::<u64>(&mut con).unwrap()
        );
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("k:{}", reads % 20_000))
            .query(&mut con)
            .expect("a read is never refused");
        if let Some(value) = value {
            assert_eq!(value, [b'v'; 500]);
        }
        reads += 1;
    }
    // The background thread evicts on down to maxmemory itself, past the
    // loop's margin: count the keys once it has stopped, so that no key
    // goes between the count and `evicted_keys`.
    let (left, evicted) = loop {
        let before = info_u64(&mut con, "evicted_keys");
        std::thread::sleep(Duration::from_millis(100));
        let left = count_existing_fast(&mut con, "k:", 0..20_000);
        let evicted = info_u64(&mut con, "evicted_keys");
        if evicted == before {
            break (left, evicted);
        }
        assert!(Instant::now() < deadline, "eviction never settled");
    };
    assert!(evicted > 5_000, "{evicted} evicted");
    assert_eq!(
        left + evicted as usize,
        20_000,
        "{left} left, {evicted} evicted"
    );
}

#[test]
fn config_set_at_run_time_and_info_fields() {
    let server = BinServer::start(&[]);
    let mut con = server.client();
    assert_eq!(info_field(&mut con, "maxmemory_policy"), "noeviction");
    assert_eq!(info_field(&mut con, "maxmemory"), "0");
    assert_eq!(info_field(&mut con, "maxmemory_human"), "0B");
    assert_eq!(info_field(&mut con, "mem_allocator"), "mimalloc");
    config_set(&mut con, "maxmemory", "100mb");
    config_set(&mut con, "maxmemory-policy", "VOLATILE-TTL");
    config_set(&mut con, "maxmemory-samples", "10");
    config_set(&mut con, "lfu-log-factor", "0");
    config_set(&mut con, "lfu-decay-time", "0");
    assert_eq!(info_field(&mut con, "maxmemory"), "104857600");
    assert_eq!(info_field(&mut con, "maxmemory_human"), "100.00M");
    assert_eq!(info_field(&mut con, "maxmemory_policy"), "volatile-ttl");
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["maxmemory-policy", "volatile-ttl"]);
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("lru")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"), "{err}");
    // One INFO reply, so that the figures are from the same moment (other
    // tests run beside this one and move the allocator's figures).
    let info: String = redis::cmd("INFO").arg("memory").query(&mut con).unwrap();
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("INFO has no {name}"))
            .parse()
            .unwrap()
    };
    let (used_now, peak, rss) = (
        field("used_memory"),
        field("used_memory_peak"),
        field("used_memory_rss"),
    );
    assert!(used_now > 0.0 && peak >= used_now && rss > 0.0);
    let ratio = field("mem_fragmentation_ratio");
    let used = used_now as u64;
    assert!(
        (ratio - rss / used_now).abs() < 0.01,
        "{ratio} vs {rss} / {used_now}"
    );
    for field in [
        "used_memory_human",
        "used_memory_rss_human",
        "used_memory_peak_human",
    ] {
        assert!(info_field(&mut con, field).ends_with(['B', 'K', 'M', 'G']));
    }
    // used_memory follows the data: 10 MB of values show up (stored
    // inline, with little overhead; other tests running in this process
    // move used_memory by some KB meanwhile).
    fill(&mut con, "k", 0..1000, &[b'x'; 10_000], None).unwrap();
    let grown = info_u64(&mut con, "used_memory");
    assert!(
        grown >= used + 9_800_000 && grown < used + 14_000_000,
        "{used} -> {grown}"
    );
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let flushed = info_u64(&mut con, "used_memory");
    assert!(flushed < used + 2_000_000, "{used} -> {flushed}");
}

#[test]
fn allkeys_s3fifo_stays_under_maxmemory_and_keeps_hot_keys_through_a_scan() {
    let server = BinServer::start(&[("maxmemory-policy", "allkeys-lru")]);
    let mut con = server.client();
    // Switched at run time: the keys already there are queued.
    config_set(&mut con, "maxmemory-policy", "allkeys-s3fifo");
    assert_eq!(info_field(&mut con, "maxmemory_policy"), "allkeys-s3fifo");
    let value = [b'v'; 1024];
    fill(&mut con, "hot", 0..500, &value, None).unwrap();
    fill(&mut con, "cold", 0..5500, &value, None).unwrap();
    let read_hot = |con: &mut Connection| {
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.cmd("GET").arg(format!("hot{i}")).ignore();
        }
        let _: () = pipe.query(con).unwrap();
    };
    read_hot(&mut con);
    read_hot(&mut con);
    let limit = info_u64(&mut con, "used_memory");
    config_set(&mut con, "maxmemory", &limit.to_string());
    // A scan three times the size of the cache, with the hot keys read
    // now and then.
    for round in 0..18 {
        fill(
            &mut con,
            "scan",
            round * 1000..(round + 1) * 1000,
            &value,
            None,
        )
        .unwrap();
        if round % 6 == 5 {
            read_hot(&mut con);
        }
        let used = info_u64(&mut con, "used_memory");
        // One command may go over by its own size before the next evicts.
        assert!(used <= limit + 64 * 1024, "{used} > {limit}");
    }
    let evicted = info_u64(&mut con, "evicted_keys");
    assert!(evicted >= 15_000, "{evicted}");
    let hot_left = count_existing(&mut con, "hot", 0..500);
    assert!(hot_left >= 490, "only {hot_left} of 500 hot keys kept");
    // The policy can be left again at run time.
    config_set(&mut con, "maxmemory-policy", "allkeys-lru");
    fill(&mut con, "after", 0..1000, &value, None).unwrap();
    assert!(info_u64(&mut con, "used_memory") <= limit + 64 * 1024);
}

/// The shape of a RESP reply: types, with the text of map keys (and of the
/// even elements of RESP2 arrays, which MEMORY STATS uses as keys) kept and
/// every value reduced to its type.
fn shape(reply: &[u8]) -> String {
    fn line(buf: &[u8], pos: &mut usize) -> String {
        let end = buf[*pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("line end")
            + *pos;
        let text = String::from_utf8_lossy(&buf[*pos..end]).into_owned();
        *pos = end + 2;
        text
    }
    fn one(buf: &[u8], pos: &mut usize, keep: bool, out: &mut String) {
        let kind = buf[*pos] as char;
        *pos += 1;
        let head = line(buf, pos);
        match kind {
            '$' | '=' => {
                let len: usize = head.parse().expect("length");
                let text = String::from_utf8_lossy(&buf[*pos..*pos + len]).into_owned();
                *pos += len + 2;
                out.push(kind);
                if keep {
                    out.push_str(&text);
                }
            }
            '*' | '%' => {
                let n: usize = head.parse().expect("count");
                let items = if kind == '%' { n * 2 } else { n };
                out.push(kind);
                out.push('[');
                for i in 0..items {
                    one(buf, pos, i % 2 == 0, out);
                    out.push(' ');
                }
                out.push(']');
            }
            _ => out.push(kind),
        }
    }
    let mut out = String::new();
    one(reply, &mut 0, false, &mut out);
    out
}

#[test]
fn memory_stats_has_redis_shape_in_resp2_and_resp3() {
    let redis = common::RedisServer::start();
    let larder = BinServer::start(&[]);
    let mut clients = [redis.raw(), common::RawClient::connect(larder.addr)];
    for client in &mut clients {
        for args in [
            &["SET", "a", "1"][..],
            &["SET", "b", "2", "EX", "100"],
            &["SELECT", "2"],
            &["SET", "c", "3"],
            &["SELECT", "0"],
        ] {
            client.command(args);
        }
    }
    for protocol in ["2", "3"] {
        let mut shapes = Vec::new();
        for client in &mut clients {
            client.command(&["HELLO", protocol]);
            let stats = client.command(&["MEMORY", "STATS"]);
            let doctor = client.command(&["MEMORY", "DOCTOR"]);
            let malloc = client.command(&["MEMORY", "MALLOC-STATS"]);
            shapes.push((shape(&stats), shape(&doctor), shape(&malloc)));
        }
        assert_eq!(shapes[0], shapes[1], "RESP{protocol}");
        assert!(shapes[1].0.contains("$db.2 "), "{}", shapes[1].0);
    }
    // INFO memory: Redis 7.0's fields, in its order.
    let names: Vec<Vec<String>> = clients
        .iter_mut()
        .map(|c| {
            let reply = c.command(&["INFO", "memory"]);
            String::from_utf8_lossy(&reply)
                .lines()
                .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
                .filter(|k| !k.starts_with('$') && !k.starts_with('='))
                .collect()
        })
        .collect();
    assert!(names[0].len() > 40, "{:?}", names[0]);
    assert_eq!(names[0], names[1]);
    // Exact: replies whose bytes do not depend on the data.
    for args in [
        &["MEMORY", "PURGE"][..],
        &["MEMORY", "HELP"],
        &["MEMORY", "STATS", "x"],
        &["MEMORY", "DOCTOR", "x"],
        &["MEMORY", "PURGE", "x"],
        &["MEMORY", "MALLOC-STATS", "x"],
        &["MEMORY", "FOO"],
        &["COMMAND", "INFO", "memory|stats", "memory|doctor"],
        &["COMMAND", "INFO", "memory|malloc-stats", "memory|purge"],
        &["COMMAND", "COUNT"],
    ] {
        let replies: Vec<Vec<u8>> = clients.iter_mut().map(|c| c.command(args)).collect();
        if args[0] == "COMMAND" && args[1] == "COUNT" {
            continue;
        }
        assert_eq!(
            String::from_utf8_lossy(&replies[0]),
            String::from_utf8_lossy(&replies[1]),
            "{args:?}"
        );
    }
}

#[test]
fn memory_stats_figures_follow_the_data() {
    let server = BinServer::start(&[]);
    let mut con = server.client();
    let stats = |con: &mut Connection| -> std::collections::HashMap<String, Value> {
        let items: Vec<Value> = redis::cmd("MEMORY").arg("STATS").query(con).unwrap();
        items
            .chunks(2)
            .map(|pair| match &pair[0] {
                Value::BulkString(k) => (String::from_utf8_lossy(k).into_owned(), pair[1].clone()),
                other => panic!("key {other:?}"),
            })
            .collect()
    };
    let int = |map: &std::collections::HashMap<String, Value>, k: &str| match map.get(k) {
        Some(Value::Int(n)) => *n,
        other => panic!("{k}: {other:?}"),
    };
    let before = stats(&mut con);
    let startup = int(&before, "startup.allocated");
    assert!(startup > 0);
    assert!(int(&before, "total.allocated") >= startup);
    fill(&mut con, "k", 0..10_000, &[b'x'; 1000], Some(1000)).unwrap();
    let after = stats(&mut con);
    assert_eq!(int(&after, "keys.count"), 10_000);
    let total = int(&after, "total.allocated");
    assert!(total >= startup + 10_000_000, "{total}");
    let per_key = int(&after, "keys.bytes-per-key");
    assert!((1000..1400).contains(&per_key), "{per_key}");
    let dataset = int(&after, "dataset.bytes");
    assert!(dataset >= 10_000_000 && dataset < total, "{dataset}");
    assert_eq!(
        int(&after, "overhead.total") + dataset,
        total,
        "overhead + dataset = total"
    );
    match after.get("db.0") {
        Some(Value::Array(db)) => assert!(matches!(db[3], Value::Int(n) if n > 0)),
        other => panic!("db.0: {other:?}"),
    }
    // The allocator is mimalloc: its report and purge are there.
    let report: String = redis::cmd("MEMORY")
        .arg("MALLOC-STATS")
        .query(&mut con)
        .unwrap();
    assert!(!report.contains("not supported"), "{report}");
    let doctor: String = redis::cmd("MEMORY").arg("DOCTOR").query(&mut con).unwrap();
    assert!(
        doctor.starts_with("Hi Sam") || doctor.starts_with("Sam,"),
        "{doctor}"
    );
    let _: () = redis::cmd("MEMORY").arg("PURGE").query(&mut con).unwrap();
}

/// How many of `prefix{i}` exist, with pipelined EXISTS.
fn count_existing_fast(con: &mut Connection, prefix: &str, range: std::ops::Range<usize>) -> usize {
    let keys: Vec<usize> = range.collect();
    let mut found = 0;
    for batch in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for i in batch {
            pipe.cmd("EXISTS").arg(format!("{prefix}{i}"));
        }
        let replies: Vec<i64> = pipe.query(con).unwrap();
        found += replies.iter().sum::<i64>() as usize;
    }
    found
}

#[test]
fn volatile_policies_at_scale_keep_every_persistent_key_then_refuse() {
    const VOLATILE: usize = 60_000;
    for policy in [
        "volatile-ttl",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
    ] {
        let server = BinServer::start(&[("maxmemory", "4mb"), ("maxmemory-policy", policy)]);
        let mut con = server.client();
        let value = [b'v'; 200];
        // v{i} expires in 1,000,000 - i seconds: later keys expire sooner.
        // Every 20th step also writes a persistent key: ~14 MB in all,
        // through 256 shards, most of them holding few persistent keys.
        let indexes: Vec<usize> = (0..VOLATILE).collect();
        for batch in indexes.chunks(500) {
            let mut pipe = redis::pipe();
            for &i in batch {
                pipe.cmd("SET")
                    .arg(format!("v{i}"))
                    .arg(&value[..])
                    .arg("EX")
                    .arg(1_000_000 - i)
                    .ignore();
                if i % 20 == 0 {
                    pipe.cmd("SET")
                        .arg(format!("p{i}"))
                        .arg("persistent")
                        .ignore();
                }
            }
            let _: () = pipe
                .query(&mut con)
                .unwrap_or_else(|e| panic!("{policy}: {e}"));
        }
        let persistent = VOLATILE / 20;
        let persistent_left = (0..VOLATILE)
            .step_by(20)
            .filter(|i| exists(&mut con, &format!("p{i}")))
            .count();
        assert_eq!(
            persistent_left, persistent,
            "{policy} evicted keys without a TTL"
        );
        let evicted = info_u64(&mut con, "evicted_keys") as usize;
        let early = count_existing_fast(&mut con, "v", 0..VOLATILE / 2);
        let late = count_existing_fast(&mut con, "v", VOLATILE / 2..VOLATILE);
        // Reading takes memory too, so eviction goes on while we count.
        let evicted_after = info_u64(&mut con, "evicted_keys") as usize;
        assert!(evicted > VOLATILE / 2, "{policy}: evicted {evicted}");
        assert!(
            early + late > 1000,
            "{policy}: volatile keys left {early} + {late}"
        );
        assert!(
            early + late + evicted <= VOLATILE && early + late + evicted_after >= VOLATILE,
            "{policy}: {early} + {late} left, {evicted}..{evicted_after} evicted"
        );
        if policy == "volatile-ttl" {
            // The soonest-expiring (the latest written) went first.
            assert!(
                late * 10 < early,
                "{policy}: kept {early} early, {late} late"
            );
        }
        // Persistent writes evict the remaining volatile keys, then get OOM.
        let err = fill(&mut con, "q", 0..50_000, &[b'q'; 1000], None)
            .expect_err("writes must be refused once no key with a TTL is left");
        assert!(err.contains(OOM), "{policy}: {err}");
        assert_eq!(
            count_existing_fast(&mut con, "v", 0..VOLATILE),
            0,
            "{policy}"
        );
        let persistent_left = (0..VOLATILE)
            .step_by(20)
            .filter(|i| exists(&mut con, &format!("p{i}")))
            .count();
        assert_eq!(persistent_left, persistent, "{policy}");
        // Reads go on.
        let got: String = redis::cmd("GET").arg("p20").query(&mut con).unwrap();
        assert_eq!(got, "persistent");
    }
}

#[test]
fn a_pipelined_set_flood_keeps_used_memory_at_maxmemory_and_the_server_answering() {
    for policy in ["allkeys-lru", "allkeys-s3fifo"] {
        let limit: u64 = 3 * 1024 * 1024;
        let server = BinServer::start(&[("maxmemory", "3mb"), ("maxmemory-policy", policy)]);
        let mut con = server.client();
        let _: () = redis::cmd("SET")
            .arg("hot")
            .arg("1")
            .query(&mut con)
            .unwrap();
        // A second client checks that the server answers all along.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut watcher = server.client();
        watcher
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let watching = stop.clone();
        let watch = std::thread::spawn(move || {
            let mut answers = 0u64;
            while !watching.load(std::sync::atomic::Ordering::Relaxed) {
                let pong: String = redis::cmd("PING").query(&mut watcher).expect("PING");
                assert_eq!(pong, "PONG");
                let _: Option<String> = redis::cmd("GET")
                    .arg("hot")
                    .query(&mut watcher)
                    .expect("GET");
                answers += 1;
            }
            answers
        });
        let mut peak_used = 0;
        let sizes = [16usize, 64, 200, 700];
        let keys: Vec<usize> = (0..300_000).collect();
        for (round, batch) in keys.chunks(1000).enumerate() {
            let mut pipe = redis::pipe();
            for &i in batch {
                pipe.cmd("SET")
                    .arg(format!("flood:{i}"))
                    .arg(vec![b'f'; sizes[i % sizes.len()]])
                    .ignore();
            }
            let _: () = pipe
                .query(&mut con)
                .unwrap_or_else(|e| panic!("{policy}: {e}"));
            if round % 10 == 0 {
                let used = info_u64(&mut con, "used_memory");
                peak_used = peak_used.max(used);
                // Slack: the thread-local counts not yet flushed (64 KiB a
                // thread) and the pipeline being read.
                assert!(used <= limit + 512 * 1024, "{policy}: used_memory {used}");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let answers = watch.join().expect("the watcher saw every answer");
        assert!(answers > 0);
        let evicted = info_u64(&mut con, "evicted_keys");
        let keys: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert!(evicted > 200_000, "{policy}: evicted {evicted}");
        assert!(keys > 1000, "{policy}: {keys} keys held");
        eprintln!("{policy}: peak used_memory {peak_used}, {keys} keys, {evicted} evicted, {answers} PING+GET");
    }
}

/// A 100 KB value that says which key it belongs to.
fn big_value(i: usize) -> Vec<u8> {
    let mut value = format!("value of wb:{i};").into_bytes();
    value.resize(100 * 1024, b'0' + (i % 10) as u8);
    value
}

#[test]
fn postgres_down_with_memory_full_of_unflushed_data_refuses_followed_writes_and_loses_nothing() {
    use common::postgres::Postgres;
    use common::writebehind::{flush, status_text};

    let pg = Postgres::start();
    let url = pg.url();
    let server = BinServer::start(&[
        ("maxmemory", "50mb"),
        ("maxmemory-policy", "allkeys-lru"),
        ("write-behind-url", &url),
        ("write-behind-match", "wb:*"),
        ("write-behind-delay", "20"),
    ]);
    let mut con = server.client();
    // Clean data: keys not written behind, and a flushed one.
    fill(&mut con, "local:", 0..50, &[b'x'; 100 * 1024], None).expect("clean keys");
    let _: () = redis::cmd("SET")
        .arg("wb:before")
        .arg("v")
        .query(&mut con)
        .unwrap();
    flush(&mut con);
    pg.stop_server();
    let mut acknowledged = Vec::new();
    let _: () = redis::cmd("SET")
        .arg("wb:0")
        .arg(big_value(0))
        .query(&mut con)
        .unwrap();
    acknowledged.push(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_text(&mut con, "state") != "retrying" {
        assert!(Instant::now() < deadline, "PostgreSQL stop not noticed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // 100 KB values until refused: 50 MB hold about 500.
    let mut refusal = None;
    for i in 1..2_000 {
        match redis::cmd("SET")
            .arg(format!("wb:{i}"))
            .arg(big_value(i))
            .query::<()>(&mut con)
        {
            Ok(()) => acknowledged.push(i),
            Err(error) => {
                refusal = Some(error.to_string());
                break;
            }
        }
    }
    let refusal = refusal.expect("writes past maxmemory were never refused");
    assert!(
        refusal.starts_with("WRITEBEHIND: backlog full: PostgreSQL is unreachable (")
            && refusal.contains("memory full of unflushed data"),
        "{refusal}"
    );
    assert!(
        acknowledged.len() > 300,
        "refused after only {} writes",
        acknowledged.len()
    );
    // The clean keys made room first; every acknowledged value written
    // since the flusher got stuck is still in memory (wb:0 went into the
    // batch it retries: clean in memory, so evictable, and its copy waits
    // in the batch), and memory stays near the limit.
    assert_eq!(count_existing(&mut con, "local:", 0..50), 0);
    assert!(info_u64(&mut con, "evicted_keys") >= 50);
    for &i in &acknowledged {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("wb:{i}"))
            .query(&mut con)
            .expect("GET");
        match value {
            Some(value) => assert_eq!(value, big_value(i), "wb:{i}"),
            None => assert_eq!(i, 0, "wb:{i} is neither in memory nor in flight"),
        }
    }
    let used = info_u64(&mut con, "used_memory");
    assert!(used < 60 * 1024 * 1024, "used_memory {used}");
    // Refused again (not OOM), also with a fresh key; other keys get the
    // OOM error (nothing clean is left to evict); reads and deletions go on.
    let again = redis::cmd("SET")
        .arg("wb:fresh")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap_err()
        .to_string();
    assert!(again.contains("memory full of unflushed data"), "{again}");
    let other = redis::cmd("SET")
        .arg("local:new")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap_err()
        .to_string();
    assert_eq!(other, OOM);
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let deleted: i64 = redis::cmd("DEL").arg("wb:1").query(&mut con).unwrap();
    assert_eq!(deleted, 1);
    acknowledged.retain(|&i| i != 1);

    // PostgreSQL back: the backlog drains, and it holds every
    // acknowledged value exactly.
    pg.start_server();
    flush(&mut con);
    let rows: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = pg
        .query("SELECT key, value FROM larder_kv WHERE db = 0", |row| {
            (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1))
        })
        .into_iter()
        .collect();
    for &i in &acknowledged {
        assert_eq!(
            rows.get(format!("wb:{i}").as_bytes()),
            Some(&big_value(i)),
            "wb:{i} in PostgreSQL"
        );
    }
    assert!(!rows.contains_key(&b"wb:1"[..]));
    assert_eq!(rows.len(), acknowledged.len() + 1, "and wb:before");

    // Flushed data is clean: with PostgreSQL down again, other keys are
    // written by evicting it, and so are written-behind keys. 60 MB of
    // them: the background eviction may have taken memory well under the
    // limit meanwhile (it evicts while the flusher's copies of the batch
    // count), but not by more than the limit.
    pg.stop_server();
    let evicted = info_u64(&mut con, "evicted_keys");
    fill(&mut con, "local:", 100..700, &[b'y'; 100 * 1024], None).expect("writes evict clean keys");
    for i in 5_000..5_050 {
        let _: () = redis::cmd("SET")
            .arg(format!("wb:{i}"))
            .arg(big_value(i))
            .query(&mut con)
            .expect("followed writes evict clean keys");
    }
    assert!(info_u64(&mut con, "evicted_keys") >= evicted + 50);
    // A followed key the flusher took into the batch it now retries is
    // clean in memory, so it may have been evicted for a later write; its
    // copy waits in that batch. Every other one is still in memory, and
    // once PostgreSQL is back all 50 are there.
    for i in 5_000..5_050 {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("wb:{i}"))
            .query(&mut con)
            .expect("GET");
        if let Some(value) = value {
            assert_eq!(value, big_value(i), "wb:{i}");
        }
    }
    pg.start_server();
    flush(&mut con);
    let rows: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = pg
        .query("SELECT key, value FROM larder_kv WHERE db = 0", |row| {
            (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1))
        })
        .into_iter()
        .collect();
    for i in 5_000..5_050 {
        assert_eq!(
            rows.get(format!("wb:{i}").as_bytes()),
            Some(&big_value(i)),
            "wb:{i} in PostgreSQL"
        );
    }
}

/// GET of `key`, with a short message (not 100 KB of bytes) if it is not
/// `expected`.
fn assert_get(con: &mut Connection, key: &str, expected: Option<&[u8]>) {
    let value: Option<Vec<u8>> = redis::cmd("GET").arg(key).query(con).expect("GET");
    let show = |value: Option<&[u8]>| {
        value.map(|v| {
            format!(
                "{} bytes, {:?}...",
                v.len(),
                String::from_utf8_lossy(&v[..v.len().min(20)])
            )
        })
    };
    assert!(
        value.as_deref() == expected,
        "{key}: {:?}, expected {:?}",
        show(value.as_deref()),
        show(expected)
    );
}

/// Writes 100 KB filler keys (not written behind) `local:{filled..}`
/// until memory holds no key matching `pattern`, then deletes the last
/// ten; returns the new `filled`.
fn evict_all(con: &mut Connection, pattern: &str, mut filled: usize) -> usize {
    // Eviction samples one random non-empty shard at a time: with some 200
    // keys over 256 shards, a given key is sampled about once in 150
    // evictions, and may lose a tie on idle time when it is. The bound is
    // there to catch a key that is never evicted, not a slow draw.
    let limit = filled + 5_000;
    while !keys_in_memory(con, pattern).is_empty() {
        assert!(filled < limit, "{pattern} never evicted");
        fill(
            con,
            "local:",
            filled..filled + 20,
            &[b'x'; 100 * 1024],
            None,
        )
        .expect("fillers evict");
        filled += 20;
    }
    // Room for what read-through loads next (1 MB): otherwise the GET's
    // own eviction may take the key it just loaded.
    let mut del = redis::cmd("DEL");
    for i in filled - 10..filled {
        del.arg(format!("local:{i}"));
    }
    let _: i64 = del.query(con).expect("DEL fillers");
    filled
}

/// Bare `KEYS pattern` (it never reads through, so it shows what memory
/// holds).
fn keys_in_memory(con: &mut Connection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(con).expect("KEYS");
    keys.sort();
    keys
}

#[test]
fn read_through_of_a_key_evicted_while_its_batch_is_retried_returns_the_acknowledged_state() {
    use common::postgres::Postgres;
    use common::writebehind::{flush, status_int};

    let pg = Postgres::start();
    let url = pg.url();
    let server = BinServer::start(&[
        ("maxmemory", "20mb"),
        ("maxmemory-policy", "allkeys-lru"),
        ("write-behind-url", &url),
        ("write-behind-match", "wb:*"),
        ("write-behind-read-through", "yes"),
        // No pass on a timer: the flusher wakes when 3 keys are pending,
        // so the three changes below go in one batch.
        ("write-behind-delay", "60000"),
        ("write-behind-batch-size", "3"),
    ]);
    let mut con = server.client();
    // Older rows in PostgreSQL.
    for key in ["wb:old", "wb:gone"] {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("v1")
            .query(&mut con)
            .unwrap();
    }
    flush(&mut con);
    assert_eq!(
        pg.query("SELECT count(*) FROM larder_kv WHERE db = 0", |row| row
            .get::<_, i64>(0)),
        vec![2]
    );
    pg.stop_server();
    // Acknowledged while PostgreSQL is down: a newer value, a key
    // PostgreSQL never had, and a deletion.
    let _: () = redis::cmd("MSET")
        .arg("wb:old")
        .arg(big_value(1))
        .arg("wb:new")
        .arg(big_value(2))
        .query(&mut con)
        .unwrap();
    let deleted: i64 = redis::cmd("DEL").arg("wb:gone").query(&mut con).unwrap();
    assert_eq!(deleted, 1);
    // The flusher took the batch and retries it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_int(&mut con, "retries") == 0 {
        assert!(Instant::now() < deadline, "the batch was never tried");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The batch's keys are no longer pending: filler keys (not written
    // behind) evict them.
    assert_eq!(keys_in_memory(&mut con, "wb:*"), ["wb:new", "wb:old"]);
    let filled = evict_all(&mut con, "wb:*", 0);
    assert!(info_u64(&mut con, "evicted_keys") >= 2);
    // Read-through loads what was acknowledged, not PostgreSQL's older
    // rows (or nothing), and does not bring the deleted key back.
    assert_get(&mut con, "wb:old", Some(&big_value(1)));
    assert_get(&mut con, "wb:new", Some(&big_value(2)));
    assert_get(&mut con, "wb:gone", None);
    assert_eq!(status_int(&mut con, "keys_loaded"), 2);
    // PostgreSQL back: the batch lands, with the same values.
    pg.start_server();
    flush(&mut con);
    let rows: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = pg
        .query("SELECT key, value FROM larder_kv WHERE db = 0", |row| {
            (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1))
        })
        .into_iter()
        .collect();
    assert!(
        rows.get(&b"wb:old"[..]) == Some(&big_value(1)),
        "wb:old row"
    );
    assert!(
        rows.get(&b"wb:new"[..]) == Some(&big_value(2)),
        "wb:new row"
    );
    assert!(!rows.contains_key(&b"wb:gone"[..]));
    // Landed: evicted again, the key is read from PostgreSQL.
    let queries = status_int(&mut con, "read_through_queries");
    evict_all(&mut con, "wb:*", filled);
    assert_get(&mut con, "wb:old", Some(&big_value(1)));
    assert_eq!(status_int(&mut con, "read_through_queries"), queries + 1);
}

#[test]
fn read_through_never_loads_the_older_row_while_the_newer_one_waits_on_a_row_lock() {
    use common::postgres::Postgres;
    use common::writebehind::{flush, status_int};

    let pg = Postgres::start();
    let url = pg.url();
    let server = BinServer::start(&[
        ("maxmemory", "20mb"),
        ("maxmemory-policy", "allkeys-lru"),
        ("write-behind-url", &url),
        ("write-behind-match", "wb:*"),
        ("write-behind-read-through", "yes"),
        ("write-behind-delay", "60000"),
        ("write-behind-batch-size", "1"),
    ]);
    let mut con = server.client();
    let _: () = redis::cmd("SET")
        .arg("wb:old")
        .arg("v1")
        .query(&mut con)
        .unwrap();
    flush(&mut con);
    // Another session locks the row: the flusher's write of the newer
    // value waits, while PostgreSQL still serves the older row to reads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let locker = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute("BEGIN; SELECT 1 FROM larder_kv WHERE key = 'wb:old' FOR UPDATE")
            .await
            .expect("lock the row");
        client
    });
    let _: () = redis::cmd("SET")
        .arg("wb:old")
        .arg(big_value(1))
        .query(&mut con)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let waiting = || {
        pg.query(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
            |row| row.get::<_, i64>(0),
        ) == [1]
    };
    while !waiting() {
        assert!(
            Instant::now() < deadline,
            "the flusher's write never waited on the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let filled = evict_all(&mut con, "wb:*", 0);
    let queries = status_int(&mut con, "read_through_queries");
    assert_get(&mut con, "wb:old", Some(&big_value(1)));
    // Served from the write in flight, not looked up.
    assert_eq!(status_int(&mut con, "read_through_queries"), queries);
    // The lock released, the write lands; evicted again, the key is read
    // from its row, now the newer one.
    runtime.block_on(async {
        locker.batch_execute("ROLLBACK").await.expect("unlock");
    });
    flush(&mut con);
    evict_all(&mut con, "wb:*", filled);
    assert_get(&mut con, "wb:old", Some(&big_value(1)));
    assert_eq!(status_int(&mut con, "read_through_queries"), queries + 1);
}
