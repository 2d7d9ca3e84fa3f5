//! The Prometheus endpoint (`metrics-port`): scraped over HTTP like
//! Prometheus would, parsed with a real parser (`prometheus-parse`), its
//! series named as redis_exporter names them and moving with traffic.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{free_port, TestServer};
use larder::{Config, Server};
use prometheus_parse::{Sample, Scrape, Value};

/// A server with the endpoint on a free port, and that endpoint's address.
fn server_with_metrics() -> (TestServer, SocketAddr) {
    let port = free_port();
    let server = TestServer::with_config(|c| {
        c.set("metrics-port", &port.to_string()).unwrap();
    });
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// One HTTP/1.1 request: (status code, headers in lower case, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.lines();
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, headers, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        content_type,
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Scrape::parse(body.as_bytes().lines()).expect("a valid exposition")
}

fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape.samples.iter().find(|s| {
        s.metric == metric
            && labels
                .iter()
                .all(|(name, value)| s.labels.get(name) == Some(*value))
    })
}

fn counter(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(scrape, metric, labels).map(|s| &s.value) {
        Some(Value::Counter(v)) => *v,
        other => panic!("{metric}{labels:?}: not a counter: {other:?}"),
    }
}

fn gauge(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(scrape, metric, labels).map(|s| &s.value) {
        Some(Value::Gauge(v)) => *v,
        other => panic!("{metric}{labels:?}: not a gauge: {other:?}"),
    }
}

fn command(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(con).expect("command")
}

#[test]
fn off_by_default() {
    let config = Config::default();
    assert_eq!(config.metrics_port, 0);
    assert_eq!(config.get("metrics-port").as_deref(), Some("0"));
    assert_eq!(config.get("metrics-bind").as_deref(), Some("127.0.0.1"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = Server::start(Config {
            port: 0,
            ..Config::default()
        })
        .await
        .unwrap();
        assert_eq!(server.metrics_addr(), None);
        server.shutdown().await;
    });
    // And CONFIG GET reports it, as an immutable setting.
    let server = TestServer::start();
    let mut con = server.client();
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("metrics-port")
        .query(&mut con)
        .unwrap();
    assert_eq!(reply, vec!["metrics-port".to_string(), "0".to_string()]);
    let refused: redis::RedisResult<()> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("metrics-port")
        .arg("9121")
        .query(&mut con);
    assert!(refused.is_err());
}

#[test]
fn invalid_metrics_bind_is_refused() {
    let mut config = Config::default();
    assert!(config.set("metrics-bind", "not-an-address").is_err());
    config.set("metrics-bind", "::1").unwrap();
    assert_eq!(config.metrics_bind, "::1");
}

#[test]
fn scrape_parses_with_redis_exporter_names_and_types() {
    let (server, addr) = server_with_metrics();
    let mut con = server.client();
    command(&mut con, &["SET", "k", "v"]);
    let scrape = scrape(addr);
    assert_eq!(gauge(&scrape, "redis_up", &[]), 1.0);
    for name in [
        "redis_connected_clients",
        "redis_blocked_clients",
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_uptime_in_seconds",
        "redis_pubsub_channels",
        "redis_start_time_seconds",
        "larder_shards",
    ] {
        gauge(&scrape, name, &[]);
    }
    for name in [
        "redis_commands_processed_total",
        "redis_connections_received_total",
        "redis_net_input_bytes_total",
        "redis_net_output_bytes_total",
        "redis_evicted_keys_total",
        "redis_expired_keys_total",
        "redis_cpu_sys_seconds_total",
        "redis_cpu_user_seconds_total",
        "larder_shard_lock_waits_total",
    ] {
        counter(&scrape, name, &[]);
    }
    // Every database has its keys series, with the db label.
    assert_eq!(gauge(&scrape, "redis_db_keys", &[("db", "db0")]), 1.0);
    assert_eq!(gauge(&scrape, "redis_db_keys", &[("db", "db15")]), 0.0);
    assert_eq!(
        gauge(&scrape, "redis_db_keys_expiring", &[("db", "db0")]),
        0.0
    );
    let info = find(&scrape, "redis_instance_info", &[("role", "master")]).expect("instance_info");
    assert!(!info.labels.get("redis_version").unwrap_or("").is_empty());
    assert_eq!(info.labels.get("maxmemory_policy"), Some("noeviction"));
    // Write-behind is off here: the engine's series say so, and no more.
    assert_eq!(gauge(&scrape, "larder_writebehind_enabled", &[]), 0.0);
    assert!(find(&scrape, "larder_writebehind_pending_keys", &[]).is_none());
    // Evictions by policy: the current policy's series is there from the
    // start.
    assert_eq!(
        counter(
            &scrape,
            "larder_evicted_keys_total",
            &[("policy", "noeviction")]
        ),
        0.0
    );
    // HELP for every family.
    for family in [
        "redis_up",
        "redis_db_keys",
        "redis_commands_processed_total",
    ] {
        assert!(scrape.docs.contains_key(family), "no HELP for {family}");
    }
}

#[test]
fn counters_move_as_traffic_runs() {
    let (server, addr) = server_with_metrics();
    let before = scrape(addr);
    let mut con = server.client();
    let mut second = server.client();
    for i in 0..100 {
        command(
            &mut con,
            &["SET", &format!("key:{i}"), "a value of some length"],
        );
    }
    command(&mut second, &["SET", "other", "x"]);
    command(&mut con, &["EXPIRE", "key:0", "1000"]);
    let after = scrape(addr);
    let moved = |name: &str| counter(&after, name, &[]) - counter(&before, name, &[]);
    // 102 commands, plus the first scrape's INFO.
    assert!(
        moved("redis_commands_processed_total") >= 102.0,
        "{}",
        moved("redis_commands_processed_total")
    );
    assert!(moved("redis_net_input_bytes_total") > 100.0 * 30.0);
    assert!(moved("redis_net_output_bytes_total") >= 100.0 * 5.0);
    assert!(moved("redis_connections_received_total") >= 2.0);
    assert_eq!(gauge(&after, "redis_db_keys", &[("db", "db0")]), 101.0);
    assert_eq!(
        gauge(&after, "redis_db_keys_expiring", &[("db", "db0")]),
        1.0
    );
    assert_eq!(gauge(&before, "redis_db_keys", &[("db", "db0")]), 0.0);
    assert!(gauge(&after, "redis_connected_clients", &[]) >= 2.0);
    drop(con);
    drop(second);
    // The clients' departure shows too.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = scrape(addr);
        if gauge(&now, "redis_connected_clients", &[]) == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connected clients never fell to 0"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Needs the per-command statistics (`INFO commandstats`) and the
/// keyspace hit counters in INFO: passes once those are merged.
#[test]
fn per_command_series_and_keyspace_hits_move_with_gets() {
    let (server, addr) = server_with_metrics();
    let mut con = server.client();
    command(&mut con, &["SET", "present", "v"]);
    let before = scrape(addr);
    let gets_before =
        find(&before, "redis_commands_total", &[("cmd", "get")]).map_or(0.0, |s| match s.value {
            Value::Counter(v) => v,
            _ => panic!("redis_commands_total is not a counter"),
        });
    for _ in 0..5 {
        command(&mut con, &["GET", "present"]);
    }
    for _ in 0..3 {
        command(&mut con, &["GET", "absent"]);
    }
    let after = scrape(addr);
    assert_eq!(
        counter(&after, "redis_commands_total", &[("cmd", "get")]) - gets_before,
        8.0
    );
    assert!(
        counter(
            &after,
            "redis_commands_duration_seconds_total",
            &[("cmd", "get")]
        ) > 0.0
    );
    let moved = |name: &str| counter(&after, name, &[]) - counter(&before, name, &[]);
    assert_eq!(moved("redis_keyspace_hits_total"), 5.0);
    assert_eq!(moved("redis_keyspace_misses_total"), 3.0);
    let ratio = gauge(&after, "larder_keyspace_hit_ratio", &[]);
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
}

#[test]
fn other_paths_are_404_and_other_methods_405() {
    let (_server, addr) = server_with_metrics();
    let (status, _, _) = http(addr, "GET", "/");
    assert_eq!(status, 404);
    let (status, _, _) = http(addr, "GET", "/metrics/extra");
    assert_eq!(status, 404);
    let (status, headers, _) = http(addr, "POST", "/metrics");
    assert_eq!(status, 405);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "allow" && v == "GET, HEAD"));
    // A query string is no other path (Prometheus may add parameters).
    let (status, _, body) = http(addr, "GET", "/metrics?name[]=redis_up");
    assert_eq!(status, 200);
    assert!(body.contains("\nredis_up 1\n"), "{body}");
}

#[test]
fn the_running_server_stops_the_endpoint() {
    let port = free_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = runtime.block_on(async {
        let mut config = Config {
            port: 0,
            ..Config::default()
        };
        config.set("metrics-port", &port.to_string()).unwrap();
        let server = Server::start(config).await.unwrap();
        let addr = server.metrics_addr().expect("metrics on");
        assert_eq!(addr.port(), port);
        let scraped = tokio::task::spawn_blocking(move || scrape(addr))
            .await
            .unwrap();
        assert_eq!(gauge(&scraped, "redis_up", &[]), 1.0);
        server.shutdown().await;
        addr
    });
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "the endpoint still accepts after shutdown"
    );
}

#[test]
fn a_taken_metrics_port_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(async {
        let mut config = Config {
            port: 0,
            ..Config::default()
        };
        config.set("metrics-port", &port.to_string()).unwrap();
        Server::bind(config).await.map(|_| ())
    });
    let error = result.expect_err("bound a taken port");
    assert!(error.to_string().contains("metrics"), "{error}");
}

/// The series built from real Redis 7 INFO text (captured from
/// redis-server 7.0.15: commandstats, errorstats, latencystats...) parse
/// with a real parser and have redis_exporter's types: what Larder's INFO
/// reports once it has those sections.
#[test]
fn redis_7_info_renders_a_valid_exposition() {
    let info = include_str!("../src/metrics/testdata/redis-7.0.15-info-everything.txt");
    let text = larder::metrics::exposition::render(Some(info), 16, 1_700_000_000.0);
    let scrape = Scrape::parse(text.as_bytes().lines()).expect("a valid exposition");
    assert_eq!(
        counter(&scrape, "redis_commands_total", &[("cmd", "get")]),
        2.0
    );
    assert_eq!(
        counter(
            &scrape,
            "redis_commands_failed_calls_total",
            &[("cmd", "lpush")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &scrape,
            "redis_commands_rejected_calls_total",
            &[("cmd", "lpush")]
        ),
        0.0
    );
    assert_eq!(
        counter(&scrape, "redis_errors_total", &[("err", "WRONGTYPE")]),
        1.0
    );
    assert_eq!(counter(&scrape, "redis_keyspace_hits_total", &[]), 1.0);
    assert_eq!(counter(&scrape, "redis_keyspace_misses_total", &[]), 1.0);
    assert_eq!(gauge(&scrape, "redis_db_keys", &[("db", "db2")]), 1.0);
    let latency = find(&scrape, "redis_latency_percentiles_usec", &[("cmd", "get")])
        .expect("the get latency summary");
    let Value::Summary(quantiles) = &latency.value else {
        panic!("not a summary: {:?}", latency.value);
    };
    let quantiles: Vec<(f64, f64)> = quantiles.iter().map(|q| (q.quantile, q.count)).collect();
    assert_eq!(quantiles, vec![(50.0, 3.007), (99.0, 5.023), (99.9, 5.023)]);
}

/// Write-behind's figures, with a real PostgreSQL (see
/// `common::postgres`): pending keys and lag while changes wait, rows
/// written once they are flushed, the circuit's state.
#[test]
fn writebehind_series_follow_the_engine() {
    let pg = common::postgres::Postgres::start();
    let port = free_port();
    let url = pg.url();
    let server = TestServer::with_config(|c| {
        c.write_behind_url = url;
        // Long enough that the changes below wait for the flush.
        c.write_behind_delay = 30_000;
        c.set("metrics-port", &port.to_string()).unwrap();
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut con = server.client();
    let before = scrape(addr);
    assert_eq!(gauge(&before, "larder_writebehind_enabled", &[]), 1.0);
    for i in 0..10 {
        command(&mut con, &["SET", &format!("wb:{i}"), "v"]);
    }
    std::thread::sleep(Duration::from_millis(100));
    let waiting = scrape(addr);
    assert_eq!(
        gauge(&waiting, "larder_writebehind_pending_keys", &[]),
        10.0
    );
    assert!(gauge(&waiting, "larder_writebehind_lag_seconds", &[]) >= 0.1);
    common::writebehind::flush(&mut con);
    let flushed = scrape(addr);
    assert_eq!(gauge(&flushed, "larder_writebehind_pending_keys", &[]), 0.0);
    assert_eq!(gauge(&flushed, "larder_writebehind_lag_seconds", &[]), 0.0);
    assert!(
        counter(&flushed, "larder_writebehind_rows_written_total", &[])
            - counter(&before, "larder_writebehind_rows_written_total", &[])
            >= 10.0
    );
    assert!(counter(&flushed, "larder_writebehind_batches_total", &[]) >= 1.0);
    assert_eq!(
        counter(&flushed, "larder_writebehind_errors_total", &[]),
        0.0
    );
    assert_eq!(
        counter(&flushed, "larder_writebehind_dead_letters_total", &[]),
        0.0
    );
    assert_eq!(gauge(&flushed, "larder_writebehind_up", &[]), 1.0);
    assert_eq!(
        gauge(
            &flushed,
            "larder_writebehind_circuit_state",
            &[("state", "closed")]
        ),
        1.0
    );
    assert_eq!(
        gauge(
            &flushed,
            "larder_writebehind_circuit_state",
            &[("state", "open")]
        ),
        0.0
    );
}

/// Evictions show under the policy that made them, and add up to
/// `redis_evicted_keys_total`. (In the test process `used_memory` is the
/// RSS, far above 1 MB: every key can go.)
#[test]
fn evictions_are_reported_by_policy() {
    let (server, addr) = server_with_metrics();
    let mut con = server.client();
    for i in 0..50 {
        command(&mut con, &["SET", &format!("e:{i}"), "v"]);
    }
    command(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"],
    );
    command(&mut con, &["CONFIG", "SET", "maxmemory", "1mb"]);
    // Evicts what it can, then (still over) refuses with OOM.
    let _: redis::RedisResult<()> = redis::cmd("SET").arg("one-more").arg("v").query(&mut con);
    command(&mut con, &["CONFIG", "SET", "maxmemory", "0"]);
    let scrape = scrape(addr);
    let by_policy = counter(
        &scrape,
        "larder_evicted_keys_total",
        &[("policy", "allkeys-random")],
    );
    assert!(by_policy >= 1.0, "{by_policy}");
    assert_eq!(by_policy, counter(&scrape, "redis_evicted_keys_total", &[]));
    assert!(find(
        &scrape,
        "larder_evicted_keys_total",
        &[("policy", "noeviction")]
    )
    .is_none());
}
