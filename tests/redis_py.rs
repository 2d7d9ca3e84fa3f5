//! redis-py, the most used Python client, against Larder in RESP2 and RESP3:
//! plain commands, cache-aside, collections, pipelines (MULTI/EXEC by
//! default in redis-py), WATCH transactions, INFO parsing; and a stream
//! worker pool (consumer group, XACK, XAUTOCLAIM of a crashed consumer).
//! Needs `python3` with the `redis` package (`.ci/run` installs it).

mod common;

use std::process::Command;

use common::TestServer;

fn run_redis_py(protocol: u8) {
    let server = TestServer::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/redis_py_check.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(server.addr.port().to_string())
        .arg(protocol.to_string())
        .output()
        .expect("python3 must be installed, with the redis package (pip install redis)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "redis-py (RESP{protocol}) failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn redis_py_resp2() {
    run_redis_py(2);
}

#[test]
fn redis_py_resp3() {
    run_redis_py(3);
}

/// Issue 15's acceptance: a worker pool of 10 redis-py consumers in one
/// group processes the messages with each acked exactly once, while a
/// crashed consumer's pending entries are reclaimed by XAUTOCLAIM
/// (`tests/clients/redis_py_streams.py` says what it checks).
fn run_redis_py_streams(protocol: u8, messages: u32) {
    let server = TestServer::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/redis_py_streams.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(server.addr.port().to_string())
        .arg(protocol.to_string())
        .arg(messages.to_string())
        .output()
        .expect("python3 must be installed, with the redis package (pip install redis)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "redis-py stream worker pool (RESP{protocol}) failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn redis_py_stream_worker_pool_acks_each_message_once_and_reclaims_a_crashed_consumer() {
    run_redis_py_streams(2, 100_000);
}

/// The same in RESP3 (redis-py parses stream replies differently), smaller.
#[test]
fn redis_py_stream_worker_pool_resp3() {
    run_redis_py_streams(3, 20_000);
}
