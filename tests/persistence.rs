//! RDB files: SAVE and BGSAVE, loading at start, files exchanged with a
//! real redis-server 7.0 both ways, refusal of damaged files, and the
//! error texts of SAVE, BGSAVE and LASTSAVE against Redis.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::scenario::differential;
use common::{free_port, fresh_dir, RedisServer, TestServer};
use redis::Value;

/// Every key of every database, as comparable text: type, contents (sets
/// and hashes sorted), absolute expiry, and for streams their groups.
type Keyspace = BTreeMap<(usize, Vec<u8>), String>;

fn bulk_list(value: Value) -> Vec<Vec<u8>> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::BulkString(bytes) => bytes,
                other => format!("{other:?}").into_bytes(),
            })
            .collect(),
        other => vec![format!("{other:?}").into_bytes()],
    }
}

fn keyspace(conn: &mut redis::Connection, databases: usize) -> Keyspace {
    let mut all = Keyspace::new();
    for db in 0..databases {
        let _: () = redis::cmd("SELECT").arg(db).query(conn).expect("SELECT");
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(conn).expect("KEYS");
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(conn).expect("TYPE");
            let query = |name: &str, args: &[&str], conn: &mut redis::Connection| {
                let mut cmd = redis::cmd(name);
                cmd.arg(&key);
                for arg in args {
                    cmd.arg(*arg);
                }
                cmd.query::<Value>(conn).expect("read")
            };
            let contents = match kind.as_str() {
                "string" => format!("{:?}", query("GET", &[], conn)),
                "list" => format!("{:?}", bulk_list(query("LRANGE", &["0", "-1"], conn))),
                "set" => {
                    let mut members = bulk_list(query("SMEMBERS", &[], conn));
                    members.sort();
                    format!("{members:?}")
                }
                "zset" => format!(
                    "{:?}",
                    bulk_list(query("ZRANGE", &["0", "-1", "WITHSCORES"], conn))
                ),
                "hash" => {
                    let flat = bulk_list(query("HGETALL", &[], conn));
                    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = flat
                        .chunks(2)
                        .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
                        .collect();
                    pairs.sort();
                    format!("{pairs:?}")
                }
                "stream" => {
                    let entries = query("XRANGE", &["-", "+"], conn);
                    let info: Value = redis::cmd("XINFO")
                        .arg("GROUPS")
                        .arg(&key)
                        .query(conn)
                        .expect("XINFO GROUPS");
                    let pending: Vec<Value> = match &info {
                        Value::Array(groups) => groups
                            .iter()
                            .map(|group| {
                                let fields = bulk_list(group.clone());
                                let name = fields.get(1).cloned().unwrap_or_default();
                                redis::cmd("XPENDING")
                                    .arg(&key)
                                    .arg(name)
                                    .arg("-")
                                    .arg("+")
                                    .arg(100)
                                    .query::<Value>(conn)
                                    .map(strip_idle)
                                    .expect("XPENDING")
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    let last_id: Value = redis::cmd("XINFO")
                        .arg("STREAM")
                        .arg(&key)
                        .query(conn)
                        .expect("XINFO STREAM");
                    let last_id = match last_id {
                        Value::Array(fields) => fields
                            .chunks(2)
                            .find(|pair| {
                                matches!(&pair[0], Value::BulkString(name) if name == b"last-generated-id")
                            })
                            .map(|pair| format!("{:?}", pair[1]))
                            .unwrap_or_default(),
                        other => format!("{other:?}"),
                    };
                    format!("{entries:?} groups {info:?} pending {pending:?} last {last_id}")
                }
                other => panic!("unexpected type {other}"),
            };
            let expiry: i64 = redis::cmd("PEXPIRETIME")
                .arg(&key)
                .query(conn)
                .expect("PEXPIRETIME");
            all.insert((db, key), format!("{kind} {contents} expires {expiry}"));
        }
    }
    let _: () = redis::cmd("SELECT").arg(0).query(conn).expect("SELECT");
    all
}

/// XPENDING's extended form without the idle times (which move).
fn strip_idle(value: Value) -> Value {
    match value {
        Value::Array(entries) => Value::Array(
            entries
                .into_iter()
                .map(|entry| match entry {
                    Value::Array(mut fields) if fields.len() == 4 => {
                        fields[2] = Value::Nil;
                        Value::Array(fields)
                    }
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

fn run(conn: &mut redis::Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query::<Value>(conn)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

const LIBRARY: &str =
    "#!lua name=persisted\nredis.register_function('echo_back', function(keys, args) return args[1] end)";

/// Keys of every type and encoding Redis 7.0 has (int, embstr/raw and
/// LZF-compressible strings; small and large lists; intset and hashtable
/// sets; listpack and skiplist sorted sets; listpack and hashtable
/// hashes; a stream with a consumer group and pending entries), in
/// several databases, some with TTLs; and a function library.
fn fill(conn: &mut redis::Connection) {
    let far = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000)
        .to_string();
    for (db, prefix) in [(0, "a"), (1, "b"), (5, "c"), (15, "d")] {
        run(conn, &["SELECT", &db.to_string()]);
        let key = |name: &str| format!("{prefix}:{name}");
        run(conn, &["SET", &key("int"), "12345"]);
        run(conn, &["SET", &key("negative"), "-7"]);
        run(conn, &["SET", &key("big"), "9223372036854775807"]);
        run(conn, &["SET", &key("short"), "hello"]);
        run(conn, &["SET", &key("empty"), ""]);
        run(conn, &["SET", &key("long"), &"abc".repeat(400)]);
        let binary = redis::cmd("SET")
            .arg(key("binary"))
            .arg(&b"\x00\xff\r\nbytes"[..])
            .query::<Value>(conn);
        assert!(binary.is_ok());
        run(conn, &["RPUSH", &key("list"), "x", "1", "-2", "yyyy"]);
        for chunk in 0..10 {
            let mut cmd = redis::cmd("RPUSH");
            cmd.arg(key("biglist"));
            for i in 0..100 {
                cmd.arg(format!("item-{chunk}-{i}-{}", "z".repeat(i % 50)));
            }
            let _: Value = cmd.query(conn).unwrap();
        }
        run(conn, &["RPUSH", &key("biglist"), &"L".repeat(10_000)]);
        run(
            conn,
            &["SADD", &key("intset"), "1", "2", "3", "-100", "70000"],
        );
        run(conn, &["SADD", &key("set"), "apple", "pear", "1"]);
        let mut cmd = redis::cmd("SADD");
        cmd.arg(key("bigset"));
        for i in 0..1000 {
            cmd.arg(format!("m{i}"));
        }
        let _: Value = cmd.query(conn).unwrap();
        run(
            conn,
            &[
                "ZADD",
                &key("zset"),
                "1",
                "a",
                "2.5",
                "b",
                "-0.25",
                "c",
                "inf",
                "top",
                "-inf",
                "bottom",
            ],
        );
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(key("bigzset"));
        for i in 0..300 {
            cmd.arg(i as f64 / 3.0).arg(format!("member{i}"));
        }
        let _: Value = cmd.query(conn).unwrap();
        run(conn, &["HSET", &key("hash"), "f", "v", "n", "42"]);
        run(conn, &["HSET", &key("widehash"), "long", &"v".repeat(100)]);
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key("bighash"));
        for i in 0..1000 {
            cmd.arg(format!("field{i}")).arg(i);
        }
        let _: Value = cmd.query(conn).unwrap();
        run(conn, &["XADD", &key("stream"), "1-1", "a", "1"]);
        run(conn, &["XADD", &key("stream"), "1-2", "b", "2", "c", "3"]);
        run(conn, &["XADD", &key("stream"), "2-0", "a", "4"]);
        run(conn, &["XDEL", &key("stream"), "1-2"]);
        run(conn, &["XGROUP", "CREATE", &key("stream"), "workers", "0"]);
        run(
            conn,
            &[
                "XREADGROUP",
                "GROUP",
                "workers",
                "alice",
                "COUNT",
                "1",
                "STREAMS",
                &key("stream"),
                ">",
            ],
        );
        run(conn, &["SET", &key("ttl"), "soon", "PX", "3600000"]);
        run(conn, &["PEXPIREAT", &key("hash"), &far]);
        run(conn, &["PEXPIREAT", &key("bigzset"), &far]);
    }
    run(conn, &["SELECT", "0"]);
    run(conn, &["FUNCTION", "LOAD", LIBRARY]);
}

fn assert_same_keyspace(ours: &Keyspace, theirs: &Keyspace) {
    assert_eq!(ours.len(), theirs.len(), "key counts differ");
    for (key, value) in theirs {
        assert_eq!(
            ours.get(key),
            Some(value),
            "key {:?} in db {}",
            String::from_utf8_lossy(&key.1),
            key.0
        );
    }
}

fn fcall_echo(conn: &mut redis::Connection) -> Value {
    run(conn, &["FCALL", "echo_back", "0", "persisted!"])
}

#[test]
fn save_then_restart_loads_every_type_ttl_and_database() {
    let dir = fresh_dir("persist-restart");
    let dir_text = dir.display().to_string();
    let before = {
        let server = TestServer::with_config(|c| c.dir = dir_text.clone());
        let mut conn = server.client();
        fill(&mut conn);
        assert_eq!(run(&mut conn, &["SAVE"]), Value::Okay);
        keyspace(&mut conn, 16)
    };
    assert_eq!(
        before.len(),
        4 * 19,
        "the fill writes 19 keys in each of 4 databases"
    );
    let server = TestServer::with_config(|c| c.dir = dir_text.clone());
    let mut conn = server.client();
    assert_same_keyspace(&keyspace(&mut conn, 16), &before);
    assert_eq!(
        fcall_echo(&mut conn),
        Value::BulkString(b"persisted!".to_vec())
    );
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut conn)
        .unwrap();
    assert!(
        info.contains(&format!("rdb_last_load_keys_loaded:{}\r\n", before.len())),
        "{info}"
    );
    // What was loaded is not a change to save.
    assert!(info.contains("rdb_changes_since_last_save:0\r\n"), "{info}");
    drop(conn);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

fn info_field(conn: &mut redis::Connection, name: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(conn).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .to_string()
}

fn wait_for_bgsave(conn: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while info_field(conn, "rdb_bgsave_in_progress") == "1" {
        assert!(Instant::now() < deadline, "BGSAVE did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bgsave_writes_the_keyspace_as_it_was_when_it_started() {
    const KEYS: usize = 60_000;
    const WRITERS: usize = 4;
    let dir = fresh_dir("persist-bgsave");
    let dir_text = dir.display().to_string();
    {
        let server = TestServer::with_config(|c| c.dir = dir_text.clone());
        let mut conn = server.client();
        for start in (0..KEYS).step_by(1000) {
            let mut cmd = redis::cmd("MSET");
            for i in start..start + 1000 {
                cmd.arg(format!("k{i}")).arg(format!("old-{i}"));
            }
            let _: () = cmd.query(&mut conn).unwrap();
        }
        let changes_before: u64 = info_field(&mut conn, "rdb_changes_since_last_save")
            .parse()
            .unwrap();
        assert!(changes_before >= KEYS as u64);
        assert_eq!(
            run(&mut conn, &["BGSAVE"]),
            Value::SimpleString("Background saving started".into())
        );
        // Other clients rewrite every key, and add and delete some, while
        // the snapshot is being written.
        std::thread::scope(|scope| {
            for writer in 0..WRITERS {
                let server = &server;
                scope.spawn(move || {
                    let mut conn = server.client();
                    for start in (writer * 1000..KEYS).step_by(WRITERS * 1000) {
                        let mut pipe = redis::pipe();
                        for i in start..start + 1000 {
                            pipe.cmd("SET")
                                .arg(format!("k{i}"))
                                .arg(format!("new-{i}"))
                                .ignore();
                            pipe.cmd("SET").arg(format!("extra{i}")).arg(1).ignore();
                        }
                        pipe.cmd("DEL").arg(format!("k{start}")).ignore();
                        let _: () = pipe.query(&mut conn).unwrap();
                    }
                });
            }
        });
        wait_for_bgsave(&mut conn);
        assert_eq!(info_field(&mut conn, "rdb_last_bgsave_status"), "ok");
        assert_eq!(info_field(&mut conn, "rdb_saves"), "1");
        // The writes happened.
        let live: Option<String> = redis::cmd("GET").arg("k1").query(&mut conn).unwrap();
        assert_eq!(live.as_deref(), Some("new-1"));
        // Changes after the snapshot started are still to be saved.
        let after: u64 = info_field(&mut conn, "rdb_changes_since_last_save")
            .parse()
            .unwrap();
        assert!(after >= (2 * KEYS) as u64, "{after}");
    }
    let server = TestServer::with_config(|c| c.dir = dir_text.clone());
    let mut conn = server.client();
    let size: usize = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(size, KEYS);
    for start in (0..KEYS).step_by(1000) {
        let mut cmd = redis::cmd("MGET");
        for i in start..start + 1000 {
            cmd.arg(format!("k{i}"));
        }
        let values: Vec<Option<String>> = cmd.query(&mut conn).unwrap();
        for (offset, value) in values.into_iter().enumerate() {
            let i = start + offset;
            assert_eq!(value, Some(format!("old-{i}")), "k{i}");
        }
    }
    drop(conn);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_dump_saved_by_redis_starts_larder_with_every_key_equal() {
    let dir = fresh_dir("persist-from-redis");
    let redis = RedisServer::start_in(&dir, &["--enable-debug-command", "yes"]);
    let mut theirs = redis::Client::open(format!("redis://{}/", redis.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    fill(&mut theirs);
    // A key past its TTL that Redis has not reclaimed: saved by Redis,
    // skipped by the loader.
    run(&mut theirs, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    run(&mut theirs, &["SET", "gone", "x", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(run(&mut theirs, &["SAVE"]), Value::Okay);
    let expected = keyspace(&mut theirs, 16);
    assert!(!expected.contains_key(&(0, b"gone".to_vec())));
    let dir_text = dir.display().to_string();
    let server = TestServer::with_config(|c| c.dir = dir_text.clone());
    let mut ours = server.client();
    assert_same_keyspace(&keyspace(&mut ours, 16), &expected);
    assert_eq!(
        fcall_echo(&mut ours),
        Value::BulkString(b"persisted!".to_vec())
    );
    assert_eq!(info_field(&mut ours, "rdb_last_load_keys_expired"), "1");
    drop(redis);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_dump_saved_by_larder_loads_into_redis_with_every_key_equal() {
    for compression in ["yes", "no"] {
        let dir = fresh_dir("persist-to-redis");
        let dir_text = dir.display().to_string();
        let server = TestServer::with_config(|c| {
            c.dir = dir_text.clone();
            c.set("rdbcompression", compression).unwrap();
            c.set("dbfilename", "larder.rdb").unwrap();
        });
        let mut ours = server.client();
        fill(&mut ours);
        assert_eq!(run(&mut ours, &["SAVE"]), Value::Okay);
        assert!(dir.join("larder.rdb").exists());
        let expected = keyspace(&mut ours, 16);
        let redis = RedisServer::start_in(&dir, &["--dbfilename", "larder.rdb"]);
        let mut theirs = redis::Client::open(format!("redis://{}/", redis.addr))
            .unwrap()
            .get_connection()
            .unwrap();
        assert_same_keyspace(&keyspace(&mut theirs, 16), &expected);
        assert_eq!(
            fcall_echo(&mut theirs),
            Value::BulkString(b"persisted!".to_vec())
        );
        drop(redis);
        drop(server);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Starts the binary on `dir` and returns its exit status and output, once
/// it has stopped by itself (a bounded wait: it must refuse to start).
fn start_expecting_failure(dir: &Path, extra: &[&str]) -> (std::process::ExitStatus, String) {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder-server"))
        .args([
            "--port",
            &port.to_string(),
            "--dir",
            &dir.display().to_string(),
        ])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn larder-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("larder-server started on a damaged file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, text)
}

#[test]
fn truncated_or_corrupt_files_stop_the_start_with_a_clear_error() {
    let dir = fresh_dir("persist-damaged");
    let dir_text = dir.display().to_string();
    {
        let server = TestServer::with_config(|c| c.dir = dir_text.clone());
        let mut conn = server.client();
        fill(&mut conn);
        assert_eq!(run(&mut conn, &["SAVE"]), Value::Okay);
    }
    let good = std::fs::read(dir.join("dump.rdb")).unwrap();

    let truncated = &good[..good.len() / 2];
    std::fs::write(dir.join("dump.rdb"), truncated).unwrap();
    let (status, output) = start_expecting_failure(&dir, &[]);
    assert!(!status.success());
    assert!(output.contains("Short read"), "{output}");

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    std::fs::write(dir.join("dump.rdb"), &flipped).unwrap();
    let (status, output) = start_expecting_failure(&dir, &[]);
    assert!(!status.success());
    assert!(output.contains("Wrong RDB checksum"), "{output}");

    std::fs::write(dir.join("dump.rdb"), b"NOTREDIS0010").unwrap();
    let (status, output) = start_expecting_failure(&dir, &[]);
    assert!(!status.success());
    assert!(output.contains("Wrong signature"), "{output}");

    // Databases beyond `databases`: the file selects database 15.
    std::fs::write(dir.join("dump.rdb"), &good).unwrap();
    let (status, output) = start_expecting_failure(&dir, &["--databases", "4"]);
    assert!(!status.success());
    assert!(output.contains("databases"), "{output}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn save_points_trigger_a_background_save() {
    let dir = fresh_dir("persist-savepoints");
    let dir_text = dir.display().to_string();
    let server = TestServer::with_config(|c| {
        c.dir = dir_text.clone();
        c.set("save", "1 3").unwrap();
    });
    let mut conn = server.client();
    assert_eq!(
        run(&mut conn, &["CONFIG", "GET", "save"]),
        Value::Array(vec![
            Value::BulkString(b"save".to_vec()),
            Value::BulkString(b"1 3".to_vec()),
        ])
    );
    for i in 0..3 {
        run(&mut conn, &["SET", &format!("k{i}"), "v"]);
    }
    // More than a second after the start with 3 changes: the cron starts a
    // BGSAVE (a bounded wait for it).
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut conn, "rdb_saves") == "0" {
        assert!(Instant::now() < deadline, "no background save started");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_bgsave(&mut conn);
    assert!(dir.join("dump.rdb").exists());
    assert_eq!(info_field(&mut conn, "rdb_changes_since_last_save"), "0");
    drop(conn);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn shutdown_saves_with_save_points_or_save_and_not_with_nosave() {
    for (save_points, args, saved) in [
        ("", vec!["SHUTDOWN"], false),
        ("", vec!["SHUTDOWN", "SAVE"], true),
        ("3600 1", vec!["SHUTDOWN"], true),
        ("3600 1", vec!["SHUTDOWN", "NOSAVE"], false),
    ] {
        let dir = fresh_dir("persist-shutdown");
        let dir_text = dir.display().to_string();
        let server = TestServer::with_config(|c| {
            c.dir = dir_text.clone();
            c.set("save", save_points).unwrap();
        });
        let mut conn = server.client();
        run(&mut conn, &["SET", "k", "v"]);
        let mut raw = server.raw();
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        raw.send(&common::encode_command(&refs));
        // No reply: the connection closes.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.shared.is_stopping() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(conn);
        drop(server);
        assert_eq!(
            dir.join("dump.rdb").exists(),
            saved,
            "{save_points:?} {args:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_failed_save_refuses_shutdown_unless_forced_and_stops_writes() {
    let dir = fresh_dir("persist-fail");
    let missing = dir.join("missing");
    let missing_text = missing.display().to_string();
    let server = TestServer::with_config(|c| {
        c.dir = missing_text.clone();
        c.set("save", "3600 1").unwrap();
    });
    let mut raw = server.raw();
    assert_eq!(raw.command(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(raw.command(&["SAVE"]), b"-ERR\r\n");
    assert_eq!(
        raw.command(&["SHUTDOWN"]),
        b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n"
    );
    assert_eq!(raw.command(&["BGSAVE"]), b"+Background saving started\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = String::from_utf8_lossy(&raw.command(&["INFO", "persistence"])).into_owned();
        if info.contains("rdb_last_bgsave_status:err") {
            break;
        }
        assert!(Instant::now() < deadline, "{info}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let misconf = format!("-{}\r\n", larder::persistence::MISCONF);
    assert_eq!(raw.command(&["SET", "k", "w"]), misconf.as_bytes());
    assert_eq!(raw.command(&["PING"]), misconf.as_bytes());
    assert_eq!(raw.command(&["GET", "k"]), b"$1\r\nv\r\n");
    assert_eq!(
        raw.command(&["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"]),
        b"+OK\r\n"
    );
    assert_eq!(raw.command(&["SET", "k", "w"]), b"+OK\r\n");
    raw.send(&common::encode_command(&[b"SHUTDOWN", b"FORCE"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.shared.is_stopping() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn save_bgsave_and_lastsave_answer_as_redis() {
    differential(|s| {
        let c = s.connect();
        s.script(
            c,
            "
            SAVE extra
            BGSAVE foo
            BGSAVE SCHEDULE extra
            LASTSAVE extra
            SAVE => +OK|
            MULTI
            SAVE
            EXEC
            MULTI
            BGSAVE
            EXEC
            ",
        );
    });
}

#[test]
fn lastsave_moves_to_the_last_successful_save() {
    let server = TestServer::start();
    let mut conn = server.client();
    let started: i64 = redis::cmd("LASTSAVE").query(&mut conn).unwrap();
    let info_time: i64 = info_field(&mut conn, "rdb_last_save_time").parse().unwrap();
    assert_eq!(started, info_time);
    // A second later (LASTSAVE counts seconds), a save moves it.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(run(&mut conn, &["SAVE"]), Value::Okay);
    let saved: i64 = redis::cmd("LASTSAVE").query(&mut conn).unwrap();
    assert!(saved > started, "{saved} {started}");
}

#[test]
fn idle_times_and_lfu_counters_are_saved_and_loaded_per_policy() {
    for (policy, option, value, read) in [
        ("allkeys-lru", "IDLETIME", "1000", "IDLETIME"),
        ("allkeys-lfu", "FREQ", "100", "FREQ"),
    ] {
        let dir = fresh_dir("persist-access");
        let dir_text = dir.display().to_string();
        let start = || {
            TestServer::with_config(|c| {
                c.dir = dir_text.clone();
                c.set("maxmemory-policy", policy).unwrap();
            })
        };
        {
            let server = start();
            let mut conn = server.client();
            run(&mut conn, &["SET", "k", "v"]);
            let payload: Vec<u8> = redis::cmd("DUMP").arg("k").query(&mut conn).unwrap();
            let _: () = redis::cmd("RESTORE")
                .arg("k")
                .arg(0)
                .arg(payload)
                .arg("REPLACE")
                .arg(option)
                .arg(value)
                .query(&mut conn)
                .unwrap();
            assert_eq!(run(&mut conn, &["SAVE"]), Value::Okay);
        }
        let server = start();
        let mut conn = server.client();
        let got: i64 = redis::cmd("OBJECT")
            .arg(read)
            .arg("k")
            .query(&mut conn)
            .unwrap();
        let wanted: i64 = value.parse().unwrap();
        // Seconds pass (idle grows) and a minute may turn (the LFU
        // counter decays by one); a fresh key would read 0 or 5.
        assert!(
            (wanted - 1..wanted + 60).contains(&got),
            "{policy}: OBJECT {read} k = {got}"
        );
        drop(conn);
        drop(server);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A `larder-server` process on `dir` (a long load is watched from
/// outside: the in-process test server waits for loads to end).
struct LarderProcess {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl LarderProcess {
    /// Starts it and waits until it accepts connections (not until it
    /// has loaded).
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_larder-server"))
            .args([
                "--port",
                &port.to_string(),
                "--dir",
                &dir.display().to_string(),
            ])
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn larder-server");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "larder-server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        LarderProcess { child, addr }
    }
}

impl Drop for LarderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A dump.rdb of `keys` small string keys, written by Redis 7.0, in a
/// fresh directory.
fn redis_dump_of(label: &str, keys: u64) -> std::path::PathBuf {
    let dir = fresh_dir(label);
    let redis = RedisServer::start_in(&dir, &["--enable-debug-command", "yes"]);
    let mut raw = redis.raw();
    raw.command(&["DEBUG", "POPULATE", &keys.to_string(), "key", "8"]);
    assert_eq!(raw.command(&["SAVE"]), b"+OK\r\n");
    drop(redis);
    dir
}

fn info_has_loading(raw: &mut common::RawClient) -> bool {
    String::from_utf8_lossy(&raw.command(&["INFO", "persistence"])).contains("loading:1")
}

/// The field names of INFO persistence (values differ between servers).
fn persistence_field_names(raw: &mut common::RawClient) -> Vec<String> {
    String::from_utf8_lossy(&raw.command(&["INFO", "persistence"]))
        .lines()
        .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn while_loading_commands_get_loading_as_in_redis() {
    // 3000 keys at 1 ms each: three seconds of loading on both servers.
    let source = redis_dump_of("loading-source", 3000);
    let larder_dir = fresh_dir("loading-larder");
    let redis_dir = fresh_dir("loading-redis");
    for dir in [&larder_dir, &redis_dir] {
        std::fs::copy(source.join("dump.rdb"), dir.join("dump.rdb")).expect("copy the dump");
    }
    let slow = ["--key-load-delay", "1000"];
    let larder = LarderProcess::start(&larder_dir, &slow);
    // Redis serves clients between keys only every so many bytes read.
    let redis = RedisServer::start_in(
        &redis_dir,
        &[
            &slow[..],
            &["--loading-process-events-interval-bytes", "1024"],
        ]
        .concat(),
    );
    let mut ours = common::RawClient::connect(larder.addr);
    let mut theirs = redis.raw();
    assert!(info_has_loading(&mut ours), "Larder is loading");
    assert!(info_has_loading(&mut theirs), "Redis is loading");
    // The same fields, Redis's loading_* ones included.
    let names = persistence_field_names(&mut ours);
    assert_eq!(names, persistence_field_names(&mut theirs));
    assert!(names.iter().any(|name| name == "loading_eta_seconds"));

    let mut same = |args: &[&str]| {
        let (a, b) = (ours.command(args), theirs.command(args));
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "replies differ for {args:?}"
        );
        a
    };
    // What needs the dataset is refused; what does not, runs.
    assert_eq!(
        same(&["GET", "key:1"]),
        b"-LOADING Redis is loading the dataset in memory\r\n"
    );
    same(&["PING"]);
    same(&["SET", "new", "value"]);
    same(&["DBSIZE"]);
    same(&["BGSAVE"]);
    same(&["CONFIG", "GET", "key-load-delay"]);
    same(&["CLIENT", "SETNAME", "watcher"]);
    same(&["ECHO", "hi"]);
    // A transaction that queued a refused command is discarded.
    same(&["MULTI"]);
    same(&["GET", "key:1"]);
    same(&["EXEC"]);
    // One made only of commands allowed while loading runs.
    same(&["MULTI"]);
    same(&["CONFIG", "GET", "port-not-a-setting"]);
    same(&["EXEC"]);

    // Loading ends (faster now): everything is there, nothing was added.
    for raw in [&mut ours, &mut theirs] {
        assert_eq!(
            raw.command(&["CONFIG", "SET", "key-load-delay", "0"]),
            b"+OK\r\n"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while ours.command(&["PING"]) != b"+PONG\r\n" || theirs.command(&["PING"]) != b"+PONG\r\n" {
        assert!(Instant::now() < deadline, "loading did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ours.command(&["DBSIZE"]), b":3000\r\n");
    assert_eq!(theirs.command(&["DBSIZE"]), b":3000\r\n");
    assert_eq!(
        ours.command(&["GET", "key:17"]),
        theirs.command(&["GET", "key:17"])
    );
    assert!(!info_has_loading(&mut ours));
    drop(larder);
    drop(redis);
    for dir in [source, larder_dir, redis_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn shutdown_while_loading_stops_at_once_and_leaves_the_file_alone() {
    let dir = redis_dump_of("loading-shutdown", 5000);
    let before = std::fs::read(dir.join("dump.rdb")).expect("the dump");
    // Save points on: a normal SHUTDOWN would save. Five seconds of load.
    let larder = LarderProcess::start(&dir, &["--key-load-delay", "1000", "--save", "1 1"]);
    let mut raw = common::RawClient::connect(larder.addr);
    assert!(info_has_loading(&mut raw));
    let asked = Instant::now();
    raw.send(&common::encode_command(&[b"SHUTDOWN", b"SAVE"]));
    assert_eq!(raw.try_read_reply(), None, "no reply: the server goes");
    let mut larder = larder;
    let status = larder.child.wait().expect("exit status");
    assert!(status.success(), "{status}");
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "the load was stopped rather than finished ({:?})",
        asked.elapsed()
    );
    assert_eq!(
        std::fs::read(dir.join("dump.rdb")).expect("the dump"),
        before,
        "a half-loaded dataset is never saved"
    );
    drop(larder);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn debug_reload_saves_empties_and_loads_back_as_redis_does() {
    let larder_dir = fresh_dir("reload-larder");
    let redis_dir = fresh_dir("reload-redis");
    let dir_text = larder_dir.display().to_string();
    let larder = TestServer::with_config(|c| {
        c.dir = dir_text.clone();
        c.enable_debug_command = "yes".into();
    });
    let redis = RedisServer::start_in(&redis_dir, &["--enable-debug-command", "yes"]);
    let (mut ours, mut theirs) = (larder.raw(), redis.raw());
    let mut same = |args: &[&str]| {
        let (a, b) = (ours.command(args), theirs.command(args));
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "replies differ for {args:?}"
        );
        a
    };
    same(&["SET", "a", "1", "EX", "1000"]);
    same(&["HSET", "h", "f", "v"]);
    same(&["SELECT", "2"]);
    same(&["RPUSH", "l", "x", "y"]);
    same(&["SELECT", "0"]);
    same(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=lib\nredis.register_function('f', function() return 7 end)",
    ]);
    assert_eq!(same(&["DEBUG", "RELOAD"]), b"+OK\r\n");
    assert_eq!(same(&["DBSIZE"]), b":2\r\n");
    same(&["HGETALL", "h"]);
    same(&["EXPIRETIME", "a"]);
    assert_eq!(same(&["FCALL", "f", "0"]), b":7\r\n");
    same(&["SELECT", "2"]);
    same(&["LRANGE", "l", "0", "-1"]);
    same(&["SELECT", "0"]);
    // Keeping the dataset: the library is there twice, unless MERGE.
    assert_eq!(
        same(&["DEBUG", "RELOAD", "NOFLUSH"]),
        b"-ERR Error trying to load the RDB dump\r\n"
    );
    assert_eq!(same(&["DEBUG", "RELOAD", "NOFLUSH", "MERGE"]), b"+OK\r\n");
    assert_eq!(same(&["DBSIZE"]), b":2\r\n");
    // NOSAVE loads the file as it was: a key set since is gone.
    same(&["SET", "b", "2"]);
    assert_eq!(same(&["DEBUG", "RELOAD", "NOSAVE"]), b"+OK\r\n");
    assert_eq!(same(&["EXISTS", "b"]), b":0\r\n");
    same(&["DEBUG", "RELOAD", "SOON"]);
    // No file: the dataset is emptied all the same, and the load fails.
    std::fs::remove_file(larder_dir.join("dump.rdb")).expect("Larder's dump");
    std::fs::remove_file(redis_dir.join("dump.rdb")).expect("Redis's dump");
    assert_eq!(
        same(&["DEBUG", "RELOAD", "NOSAVE"]),
        b"-ERR Error trying to load the RDB dump\r\n"
    );
    assert_eq!(same(&["DBSIZE"]), b":0\r\n");
    drop(larder);
    drop(redis);
    let _ = std::fs::remove_dir_all(larder_dir);
    let _ = std::fs::remove_dir_all(redis_dir);
}

#[test]
fn flushall_inside_exec_saves_the_empty_dataset_after_exec() {
    let dir = fresh_dir("persist-flushall-exec");
    let dir_text = dir.display().to_string();
    // A save point that does not come due during the test.
    let server = TestServer::with_config(|c| {
        c.dir = dir_text.clone();
        c.set("save", "3600 1").unwrap();
    });
    let mut conn = server.client();
    run(&mut conn, &["SET", "k", "v"]);
    run(&mut conn, &["MULTI"]);
    run(&mut conn, &["SET", "k9", "v"]);
    run(&mut conn, &["FLUSHALL"]);
    run(&mut conn, &["EXEC"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(&mut conn, "rdb_saves") == "0" {
        assert!(Instant::now() < deadline, "FLUSHALL in EXEC saved nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_bgsave(&mut conn);
    let loaded = larder::store::Store::new();
    let stats = larder::persistence::load_file(
        &loaded,
        &dir.join("dump.rdb"),
        0,
        false,
        &mut |_| Ok(()),
        &mut |_| true,
    )
    .expect("the saved file loads");
    assert_eq!(stats.keys_loaded, 0, "the file is the flushed dataset");
    drop(conn);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
