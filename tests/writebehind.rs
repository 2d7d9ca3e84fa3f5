//! Write-behind to a real PostgreSQL, started by the test itself (see
//! `common::postgres`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::writebehind::{cmd, flush, status, status_int};
use common::TestServer;
use larder::writebehind::encode::decode_items;

const INJECTION: &str = "'); DROP TABLE larder_kv; --";

fn server(pg: &Postgres, adjust: impl FnOnce(&mut larder::Config)) -> TestServer {
    let url = pg.url();
    TestServer::with_config(|config| {
        config.write_behind_url = url;
        config.write_behind_delay = 50;
        adjust(config);
    })
}

/// Items of a collection, length-prefixed, as the README documents.
fn items(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

type Rows = BTreeMap<(i32, Vec<u8>), (String, Vec<u8>)>;

/// What the table should hold for the cache's current contents of `dbs`.
fn cache_rows(con: &mut redis::Connection, dbs: &[i32]) -> Rows {
    let mut rows = Rows::new();
    for &db in dbs {
        let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).unwrap();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(con).unwrap();
            let value = match kind.as_str() {
                "string" => redis::cmd("GET").arg(&key).query(con).unwrap(),
                "list" => items(
                    &redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query::<Vec<Vec<u8>>>(con)
                        .unwrap(),
                ),
                "set" => {
                    let mut members: Vec<Vec<u8>> =
                        redis::cmd("SMEMBERS").arg(&key).query(con).unwrap();
                    members.sort();
                    items(&members)
                }
                "hash" => {
                    let flat: Vec<Vec<u8>> = redis::cmd("HGETALL").arg(&key).query(con).unwrap();
                    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = flat
                        .chunks(2)
                        .map(|p| (p[0].clone(), p[1].clone()))
                        .collect();
                    pairs.sort();
                    items(
                        &pairs
                            .into_iter()
                            .flat_map(|(f, v)| [f, v])
                            .collect::<Vec<_>>(),
                    )
                }
                "zset" => items(
                    &redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query::<Vec<Vec<u8>>>(con)
                        .unwrap(),
                ),
                other => panic!("unexpected type {other}"),
            };
            rows.insert((db, key), (kind, value));
        }
    }
    let _: () = redis::cmd("SELECT").arg(0).query(con).unwrap();
    rows
}

fn table_rows(pg: &Postgres, table: &str) -> Rows {
    pg.query(
        &format!("SELECT db, key, type, value FROM {table} ORDER BY db, key"),
        |row| {
            (
                (row.get::<_, i32>(0), row.get::<_, Vec<u8>>(1)),
                (row.get::<_, String>(2), row.get::<_, Vec<u8>>(3)),
            )
        },
    )
    .into_iter()
    .collect()
}

#[test]
fn off_by_default() {
    let server = TestServer::start();
    let mut con = server.client();
    let error = redis::cmd("WRITEBEHIND")
        .arg("FLUSH")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(error.to_string().contains("write-behind is off"), "{error}");
    let info: String = redis::cmd("INFO")
        .arg("writebehind")
        .query(&mut con)
        .unwrap();
    assert!(info.contains("writebehind_enabled:0"), "{info}");
    let url: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("write-behind-url")
        .query(&mut con)
        .unwrap();
    assert_eq!(url, vec!["write-behind-url".to_string(), String::new()]);
}

#[test]
fn table_ends_equal_to_cache() {
    let pg = Postgres::start();
    let server = server(&pg, |_| {});
    let mut con = server.client();
    for args in [
        &["SET", "s1", "one"][..],
        &["SET", "s2", "two"],
        &["SET", "s2", "two again"],
        &["APPEND", "s1", "+"],
        &["INCR", "counter"],
        &["HSET", "h", "b", "2", "a", "1"],
        &["HSET", "h", "c", "3"],
        &["HDEL", "h", "b"],
        &["RPUSH", "l", "x", "y", "z"],
        &["LPOP", "l"],
        &["SADD", "set", "m2", "m1", "m3"],
        &["SREM", "set", "m3"],
        &["ZADD", "z", "2.5", "b", "1", "a"],
        &["SET", "gone", "soon"],
        &["SET", "ttl", "v", "EX", "1000"],
        &["SELECT", "1"],
        &["SET", "other-db", "x"],
        &["SET", "flushed", "x"],
        &["SELECT", "0"],
    ] {
        cmd(&mut con, args);
    }
    flush(&mut con);
    assert_eq!(table_rows(&pg, "larder_kv"), cache_rows(&mut con, &[0, 1]));
    let expires: Vec<bool> = pg.query(
        "SELECT expires_at > now() + interval '900 seconds' FROM larder_kv WHERE key = 'ttl'",
        |row| row.get(0),
    );
    assert_eq!(expires, vec![true]);

    // Deletes, and a flush of another database.
    cmd(&mut con, &["DEL", "gone"]);
    cmd(&mut con, &["UNLINK", "s2"]);
    cmd(&mut con, &["SELECT", "1"]);
    cmd(&mut con, &["FLUSHDB"]);
    cmd(&mut con, &["SET", "after-flush", "kept"]);
    cmd(&mut con, &["SELECT", "0"]);
    cmd(&mut con, &["HSET", "h", "d", "4"]);
    cmd(&mut con, &["PERSIST", "ttl"]);
    flush(&mut con);
    let table = table_rows(&pg, "larder_kv");
    assert_eq!(table, cache_rows(&mut con, &[0, 1]));
    assert!(table.contains_key(&(1, b"after-flush".to_vec())));
    assert!(!table.contains_key(&(0, b"gone".to_vec())));
    let expires: Vec<bool> = pg.query(
        "SELECT expires_at IS NULL FROM larder_kv WHERE key = 'ttl'",
        |row| row.get(0),
    );
    assert_eq!(expires, vec![true]);
    // The documented encoding decodes.
    let hash = &table[&(0, b"h".to_vec())].1;
    assert_eq!(
        decode_items(hash).unwrap(),
        [&b"a"[..], b"1", b"c", b"3", b"d", b"4"].map(|s| s.to_vec())
    );
    assert!(status_int(&mut con, "rows_deleted") >= 3);
}

/// `host=/dir` is PostgreSQL's Unix socket: no TLS there (as libpq, with
/// the default sslmode=prefer), where the TLS connector used to fail every
/// connection for want of a host name.
#[test]
fn writes_behind_through_a_unix_socket() {
    let pg = Postgres::start();
    let url = pg.socket_url();
    let server = TestServer::with_config(|config| {
        config.write_behind_url = url;
        config.write_behind_delay = 50;
    });
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    flush(&mut con);
    let value: Vec<Vec<u8>> = pg.query("SELECT value FROM larder_kv WHERE key = 'k'", |r| r.get(0));
    assert_eq!(value, vec![b"v".to_vec()]);
}

/// The nice values of this process's threads named `name`.
#[cfg(target_os = "linux")]
fn nice_of_threads(name: &str) -> Vec<i64> {
    let mut nice = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
        // After "(comm) ", nice is the 17th field.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        nice.push(after_name.split(' ').nth(16).unwrap().parse().unwrap());
    }
    nice
}

/// The flusher runs on a thread of its own, below the client-serving
/// threads' priority, and its PostgreSQL connections with it; so does
/// active expiry.
#[cfg(target_os = "linux")]
#[test]
fn the_flusher_and_active_expiry_run_on_threads_of_their_own_at_nice_10() {
    let pg = Postgres::start();
    let server = server(&pg, |_| {});
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    flush(&mut con);
    let value: Vec<Vec<u8>> = pg.query("SELECT value FROM larder_kv WHERE key = 'k'", |r| r.get(0));
    assert_eq!(value, vec![b"v".to_vec()]);
    // Other tests of this file run their servers' flushers alongside.
    let nice = nice_of_threads("larder-flush");
    assert!(!nice.is_empty(), "no larder-flush thread");
    assert!(nice.iter().all(|&n| n == 10), "{nice:?}");
    let nice = nice_of_threads("larder-expire");
    assert!(!nice.is_empty(), "no larder-expire thread");
    assert!(nice.iter().all(|&n| n == 10), "{nice:?}");
    // The threads serving clients keep the default.
    let workers = nice_of_threads("tokio-rt-worker");
    assert!(!workers.is_empty(), "no runtime worker thread");
    assert!(workers.iter().all(|&n| n == 0), "{workers:?}");
}

#[test]
fn ten_thousand_writes_to_one_key_become_a_handful_of_row_writes() {
    let pg = Postgres::start();
    // Count row writes on the PostgreSQL side with a trigger.
    pg.execute(
        "CREATE TABLE larder_kv (db integer NOT NULL, key bytea NOT NULL, type text NOT NULL, \
           value bytea NOT NULL, expires_at timestamptz, version bigint NOT NULL, \
           updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (db, key));
         CREATE TABLE row_writes (n bigint NOT NULL);
         INSERT INTO row_writes VALUES (0);
         CREATE FUNCTION count_row_write() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN UPDATE row_writes SET n = n + 1; RETURN NEW; END $$;
         CREATE TRIGGER counted AFTER INSERT OR UPDATE ON larder_kv
           FOR EACH ROW EXECUTE FUNCTION count_row_write();",
    );
    let server = server(&pg, |config| config.write_behind_delay = 200);
    let mut con = server.client();
    let mut pipe = redis::pipe();
    for i in 0..10_000 {
        pipe.cmd("SET").arg("hot").arg(i).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    flush(&mut con);
    let value: Vec<Vec<u8>> = pg.query("SELECT value FROM larder_kv WHERE key = 'hot'", |r| {
        r.get(0)
    });
    assert_eq!(value, vec![b"9999".to_vec()]);
    let writes: Vec<i64> = pg.query("SELECT n FROM row_writes", |r| r.get(0));
    assert!(
        writes[0] >= 1 && writes[0] <= 20,
        "{} row writes",
        writes[0]
    );
}

#[test]
fn a_key_that_expires_before_its_flush_still_lands_and_expiry_deletes_no_row() {
    let pg = Postgres::start();
    let server = server(&pg, |config| config.write_behind_delay = 60_000);
    let mut con = server.client();
    // Written and flushed, then expired: the row stays.
    cmd(
        &mut con,
        &["SET", "flushed-then-expired", "kept", "PX", "300"],
    );
    flush(&mut con);
    // Written, then expired before any flush: it still lands.
    cmd(&mut con, &["SET", "expired-first", "first"]);
    cmd(&mut con, &["SET", "expired-first", "last", "PX", "100"]);
    cmd(&mut con, &["HSET", "hash-expired", "f", "v"]);
    cmd(&mut con, &["PEXPIRE", "hash-expired", "100"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg("expired-first")
            .arg("flushed-then-expired")
            .arg("hash-expired")
            .query(&mut con)
            .unwrap();
        // Active expiry reclaims them (EXISTS alone does not).
        let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        if exists == 0 && dbsize == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "keys did not expire");
        std::thread::sleep(Duration::from_millis(50));
    }
    flush(&mut con);
    let rows = table_rows(&pg, "larder_kv");
    assert_eq!(
        rows[&(0, b"expired-first".to_vec())],
        ("string".into(), b"last".to_vec())
    );
    assert_eq!(
        rows[&(0, b"flushed-then-expired".to_vec())],
        ("string".into(), b"kept".to_vec())
    );
    assert_eq!(
        rows[&(0, b"hash-expired".to_vec())],
        ("hash".into(), items(&[b"f".to_vec(), b"v".to_vec()]))
    );
}

#[test]
fn postgres_stopped_and_restarted_mid_load_loses_nothing() {
    let pg = Postgres::start();
    let server = server(&pg, |config| config.write_behind_batch_size = 100);
    let mut con = server.client();
    let addr = server.url();
    let writer = std::thread::spawn(move || {
        let mut con = redis::Client::open(addr).unwrap().get_connection().unwrap();
        for i in 0..3_000 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{}", i % 1_000))
                .arg(i)
                .query(&mut con)
                .unwrap();
            if i % 700 == 0 {
                let _: i64 = redis::cmd("DEL")
                    .arg(format!("k{}", (i + 500) % 1_000))
                    .query(&mut con)
                    .unwrap();
            }
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    pg.stop_server();
    std::thread::sleep(Duration::from_millis(1_500));
    let state: BTreeMap<String, redis::Value> = status(&mut con);
    assert_eq!(
        state.get("state"),
        Some(&redis::Value::BulkString(b"retrying".to_vec())),
        "{state:?}"
    );
    pg.start_server();
    writer.join().unwrap();
    flush(&mut con);
    assert_eq!(table_rows(&pg, "larder_kv"), cache_rows(&mut con, &[0]));
    assert!(status_int(&mut con, "failures") > 0);
    assert!(status_int(&mut con, "retries") > 0);
    assert_eq!(status_int(&mut con, "pending_keys"), 0);
}

#[test]
fn a_full_backlog_refuses_writes_to_followed_keys_and_recovers() {
    let pg = Postgres::start();
    let server = server(&pg, |config| {
        config.write_behind_max_pending = 50;
        config.write_behind_match = "wb:*".into();
    });
    let mut con = server.client();
    cmd(&mut con, &["SET", "wb:before", "v"]);
    flush(&mut con);
    pg.stop_server();
    cmd(&mut con, &["SET", "wb:0", "v"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&mut con).get("state") != Some(&redis::Value::BulkString(b"retrying".to_vec())) {
        assert!(
            Instant::now() < deadline,
            "write-behind did not notice PostgreSQL stopped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 1..50 {
        cmd(&mut con, &["SET", &format!("wb:{i}"), "v"]);
    }
    let error = redis::cmd("SET")
        .arg("wb:one-too-many")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("backlog full: PostgreSQL is unreachable (50 changes pending)"),
        "{message}"
    );
    // Rewriting a pending key adds nothing, but is a write: refused too.
    assert!(redis::cmd("SET")
        .arg("wb:1")
        .arg("w")
        .query::<()>(&mut con)
        .is_err());
    // Transactions that would write a followed key are refused at EXEC.
    cmd(&mut con, &["MULTI"]);
    assert!(redis::cmd("SET")
        .arg("wb:x")
        .arg("v")
        .query::<()>(&mut con)
        .is_err());
    assert!(redis::cmd("EXEC").query::<redis::Value>(&mut con).is_err());
    // Reads and keys not written behind go on.
    let value: String = redis::cmd("GET").arg("wb:7").query(&mut con).unwrap();
    assert_eq!(value, "v");
    cmd(&mut con, &["SET", "local-only", "fine"]);
    let info: String = redis::cmd("INFO")
        .arg("writebehind")
        .query(&mut con)
        .unwrap();
    assert!(
        info.contains("state:retrying") && info.contains("pending_keys:50"),
        "{info}"
    );
    pg.start_server();
    flush(&mut con);
    cmd(&mut con, &["SET", "wb:one-too-many", "v"]);
    flush(&mut con);
    let rows = table_rows(&pg, "larder_kv");
    assert_eq!(rows.len(), 52);
    assert!(!rows.contains_key(&(0, b"local-only".to_vec())));
}

#[test]
fn shutdown_flushes_the_backlog() {
    let pg = Postgres::start();
    let server = server(&pg, |config| config.write_behind_delay = 600_000);
    let mut con = server.client();
    for i in 0..500 {
        cmd(&mut con, &["SET", &format!("late{i}"), &i.to_string()]);
    }
    let mut raw = server.raw();
    raw.send(b"SHUTDOWN NOSAVE\r\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let count = pg.try_query_with("SELECT count(*) FROM larder_kv", |r| r.get::<_, i64>(0));
        if count.as_deref().ok() == Some(&[500][..]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backlog not flushed at shutdown: {count:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn injection_attempts_are_stored_verbatim() {
    let pg = Postgres::start();
    let server = server(&pg, |_| {});
    let mut con = server.client();
    cmd(&mut con, &["SET", INJECTION, INJECTION]);
    cmd(&mut con, &["HSET", "h", INJECTION, INJECTION]);
    cmd(&mut con, &["SET", "binary\0\r\n\"'\\", "\u{0}\u{ff}"]);
    flush(&mut con);
    let rows = table_rows(&pg, "larder_kv");
    assert_eq!(
        rows[&(0, INJECTION.as_bytes().to_vec())],
        ("string".into(), INJECTION.as_bytes().to_vec())
    );
    assert_eq!(rows, cache_rows(&mut con, &[0]));
    cmd(&mut con, &["DEL", INJECTION]);
    flush(&mut con);
    assert_eq!(table_rows(&pg, "larder_kv"), cache_rows(&mut con, &[0]));
}

#[test]
fn match_patterns_choose_keys_per_database() {
    let pg = Postgres::start();
    let server = server(&pg, |config| {
        config.write_behind_match = "user:* session:*".into();
        config.write_behind_match_db = "1 orders:* 1 carts:*".into();
    });
    let mut con = server.client();
    for key in ["user:1", "session:a", "orders:1", "other"] {
        cmd(&mut con, &["SET", key, "db0"]);
    }
    cmd(&mut con, &["SELECT", "1"]);
    for key in ["user:1", "orders:1", "carts:2", "other"] {
        cmd(&mut con, &["SET", key, "db1"]);
    }
    cmd(&mut con, &["SELECT", "2"]);
    for key in ["user:2", "orders:2"] {
        cmd(&mut con, &["SET", key, "db2"]);
    }
    flush(&mut con);
    let keys: Vec<(i32, String)> = table_rows(&pg, "larder_kv")
        .into_keys()
        .map(|(db, key)| (db, String::from_utf8_lossy(&key).into_owned()))
        .collect();
    let expected: Vec<(i32, String)> = [
        (0, "session:a"),
        (0, "user:1"),
        (1, "carts:2"),
        (1, "orders:1"),
        (2, "user:2"),
    ]
    .into_iter()
    .map(|(db, key)| (db, key.to_string()))
    .collect();
    assert_eq!(keys, expected);
    let setting: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("write-behind-match-db")
        .query(&mut con)
        .unwrap();
    assert_eq!(setting[1], "1 orders:* 1 carts:*");
}

/// Writes one key of every type (and one in database 2) through a
/// write-behind server, flushed to PostgreSQL; returns what the cache held.
fn seed_table(pg: &Postgres) -> Rows {
    let server = server(pg, |_| {});
    let mut con = server.client();
    cmd(&mut con, &["SET", "s", "string value", "EX", "1000"]);
    cmd(&mut con, &["HSET", "h", "f1", "v1", "f2", "v2"]);
    cmd(&mut con, &["RPUSH", "l", "a", "b", "a"]);
    cmd(&mut con, &["SADD", "set", "x", "y"]);
    cmd(&mut con, &["ZADD", "z", "1.5", "m1", "-2", "m2"]);
    cmd(&mut con, &["SELECT", "2"]);
    cmd(&mut con, &["SET", "other-db", "2"]);
    cmd(&mut con, &["SELECT", "0"]);
    flush(&mut con);
    cache_rows(&mut con, &[0, 2])
}

#[test]
fn warm_start_loads_the_table_without_writing_it_back() {
    let pg = Postgres::start();
    let written = seed_table(&pg);
    let server = server(&pg, |config| config.write_behind_warm_start = true);
    let mut con = server.client();
    assert_eq!(cache_rows(&mut con, &[0, 2]), written);
    let ttl: i64 = redis::cmd("TTL").arg("s").query(&mut con).unwrap();
    assert!(
        (990..=1000).contains(&ttl),
        "TTL survives the round trip: {ttl}"
    );
    assert_eq!(status_int(&mut con, "keys_loaded"), 6);
    // Loaded keys are not changes: nothing goes back to PostgreSQL.
    assert_eq!(status_int(&mut con, "pending_keys"), 0);
    flush(&mut con);
    assert_eq!(status_int(&mut con, "rows_written"), 0);
}

#[test]
fn read_through_loads_a_missing_key_once_and_never_resurrects_a_deleted_one() {
    let pg = Postgres::start();
    let written = seed_table(&pg);
    let server = server(&pg, |config| config.write_behind_read_through = true);
    let mut con = server.client();
    assert_eq!(cmd(&mut con, &["DBSIZE"]), redis::Value::Int(0));
    let value: String = redis::cmd("GET").arg("s").query(&mut con).unwrap();
    assert_eq!(value, "string value");
    let fields: BTreeMap<String, String> = redis::cmd("HGETALL").arg("h").query(&mut con).unwrap();
    assert_eq!(fields.get("f2").map(String::as_str), Some("v2"));
    // A write command loads first, so HSET adds to the stored hash.
    cmd(&mut con, &["HSET", "h", "f3", "v3"]);
    let count: i64 = redis::cmd("HLEN").arg("h").query(&mut con).unwrap();
    assert_eq!(count, 3);
    // Keys named inside MULTI load when EXEC runs.
    cmd(&mut con, &["MULTI"]);
    cmd(&mut con, &["LRANGE", "l", "0", "-1"]);
    let replies: Vec<Vec<String>> = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_eq!(replies, vec![vec!["a", "b", "a"]]);
    let queries = status_int(&mut con, "read_through_queries");
    assert_eq!(queries, 3);
    // Loaded once: the next reads are served from memory.
    let _: String = redis::cmd("GET").arg("s").query(&mut con).unwrap();
    assert_eq!(status_int(&mut con, "read_through_queries"), queries);
    // A key PostgreSQL does not have stays missing.
    let missing: Option<String> = redis::cmd("GET").arg("nope").query(&mut con).unwrap();
    assert_eq!(missing, None);
    // A deleted key is not loaded again while its deletion waits, nor after.
    cmd(&mut con, &["DEL", "s"]);
    let gone: Option<String> = redis::cmd("GET").arg("s").query(&mut con).unwrap();
    assert_eq!(gone, None);
    flush(&mut con);
    let gone: Option<String> = redis::cmd("GET").arg("s").query(&mut con).unwrap();
    assert_eq!(gone, None);
    // Other databases read through too.
    cmd(&mut con, &["SELECT", "2"]);
    let other: String = redis::cmd("GET").arg("other-db").query(&mut con).unwrap();
    assert_eq!(other, "2");
    assert!(written.contains_key(&(2, b"other-db".to_vec())));
    assert_eq!(status_int(&mut con, "load_failures"), 0);
}

#[test]
fn concurrent_misses_of_one_key_share_one_query() {
    let pg = Postgres::start();
    seed_table(&pg);
    let server = server(&pg, |config| {
        config.write_behind_read_through = true;
        // Longer than the lookups are held, so that none gives up.
        config.write_behind_read_timeout = 5_000;
    });
    let mut con = server.client();
    let before = status_int(&mut con, "read_through_queries");
    // Hold every lookup for half a second while 16 clients miss one key
    // PostgreSQL does not have (so none of them can find it in memory).
    let url = pg.url();
    let locker = std::thread::spawn(move || {
        let pg_url = url;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(
                    "BEGIN; LOCK TABLE larder_kv IN ACCESS EXCLUSIVE MODE; \
                     SELECT pg_sleep(0.6); COMMIT;",
                )
                .await
                .unwrap();
        });
    });
    std::thread::sleep(Duration::from_millis(150));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let mut con = server.client();
            std::thread::spawn(move || {
                let value: Option<String> =
                    redis::cmd("GET").arg("absent").query(&mut con).unwrap();
                value
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), None);
    }
    locker.join().unwrap();
    assert_eq!(status_int(&mut con, "read_through_queries") - before, 1);
}

#[test]
fn with_expiry_deletes_an_expired_key_deletes_its_row() {
    let pg = Postgres::start();
    let server = server(&pg, |config| {
        config.write_behind_delay = 60_000;
        config.write_behind_expiry_deletes = true;
    });
    let mut con = server.client();
    cmd(&mut con, &["SET", "flushed-then-expired", "v", "PX", "300"]);
    cmd(&mut con, &["SET", "persistent", "v"]);
    flush(&mut con);
    assert_eq!(table_rows(&pg, "larder_kv").len(), 2);
    // Never flushed before it expired: no row ever.
    cmd(&mut con, &["SET", "expired-first", "v", "PX", "100"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap() != 1 {
        assert!(Instant::now() < deadline, "keys did not expire");
        std::thread::sleep(Duration::from_millis(50));
    }
    flush(&mut con);
    let keys: Vec<Vec<u8>> = table_rows(&pg, "larder_kv")
        .into_keys()
        .map(|(_, key)| key)
        .collect();
    assert_eq!(keys, vec![b"persistent".to_vec()]);
    let setting: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("write-behind-expiry-deletes")
        .query(&mut con)
        .unwrap();
    assert_eq!(setting[1], "yes");
}

/// `expires=` of each database in INFO keyspace, summed.
fn keys_with_ttl(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("keyspace").query(con).unwrap();
    info.lines()
        .filter_map(|line| line.split("expires=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<i64>().ok())
        .sum()
}

#[test]
fn random_writes_deletes_expiries_and_hash_updates_end_equal_in_postgres() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pg = Postgres::start();
    // Flushes run while the commands go on (a short delay, small batches);
    // expired keys delete their rows, so the table must end equal to the
    // cache exactly.
    let server = server(&pg, |config| {
        config.write_behind_delay = 5;
        config.write_behind_batch_size = 16;
        config.write_behind_expiry_deletes = true;
    });
    let mut con = server.client();
    for _ in 0..3000 {
        let key = format!("k{}", rng.gen_range(0..40));
        let n = rng.gen_range(0..100).to_string();
        let db = rng.gen_range(0..2).to_string();
        let args: Vec<&str> = match rng.gen_range(0..14) {
            0 => vec!["SET", &key, &n],
            1 => vec!["SET", &key, &n, "PX", "150"],
            2 => vec!["DEL", &key],
            3 => vec!["HSET", &key, "f", &n],
            4 => vec!["HSET", &key, &n, "x"],
            5 => vec!["HDEL", &key, "f"],
            6 => vec!["PEXPIRE", &key, "100"],
            7 => vec!["PERSIST", &key],
            8 => vec!["INCR", &key],
            9 => vec!["RPUSH", &key, &n],
            10 => vec!["LPOP", &key],
            11 => vec!["SADD", &key, &n],
            12 => vec!["ZADD", &key, &n, &n],
            _ => vec!["SELECT", &db],
        };
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        // Wrong types and non-integers are expected errors, changing nothing.
        let _: redis::RedisResult<redis::Value> = command.query(&mut con);
        if rng.gen_range(0..500) == 0 {
            flush(&mut con);
        }
    }
    cmd(&mut con, &["SELECT", "0"]);
    // Every TTL given was at most 150 ms: wait until active expiry has
    // reclaimed them all (a key past its TTL but not reclaimed yet would
    // still have its row).
    let deadline = Instant::now() + Duration::from_secs(10);
    std::thread::sleep(Duration::from_millis(200));
    while keys_with_ttl(&mut con) > 0 {
        assert!(Instant::now() < deadline, "TTLs were not reclaimed");
        std::thread::sleep(Duration::from_millis(50));
    }
    flush(&mut con);
    let cache = cache_rows(&mut con, &[0, 1]);
    assert!(
        !cache.is_empty(),
        "seed {seed}: the sequence left something"
    );
    assert_eq!(table_rows(&pg, "larder_kv"), cache, "seed {seed}");
}

/// MGETs `keys` missing keys; returns how long it took.
fn mget_misses(con: &mut redis::Connection, prefix: &str, keys: usize) -> Duration {
    let mut mget = redis::cmd("MGET");
    for i in 0..keys {
        mget.arg(format!("{prefix}{i}"));
    }
    let started = Instant::now();
    let values: Vec<Option<String>> = mget.query(con).expect("MGET");
    let took = started.elapsed();
    assert_eq!(values, vec![None; keys]);
    took
}

#[test]
fn read_through_to_an_unresponsive_postgres_takes_one_short_budget_then_is_skipped() {
    // Accepts connections (the kernel completes them) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let server = TestServer::with_config(|config| {
        config.write_behind_url =
            format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=30");
        config.write_behind_read_through = true;
    });
    let mut con = server.client();
    // 20 misses share one 200 ms budget (they took 1 s each, one by one).
    let took = mget_misses(&mut con, "miss", 20);
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    assert_eq!(status_int(&mut con, "read_through_queries"), 20);
    assert!(status_int(&mut con, "load_failures") >= 1);
    // Those 20 lookups cut short opened the loader's circuit: the next
    // misses are not looked up at all.
    assert_eq!(
        common::writebehind::status_text(&mut con, "read_through_circuit"),
        "open"
    );
    let took = mget_misses(&mut con, "other", 20);
    assert!(took < Duration::from_millis(1_000), "{took:?}");
    assert_eq!(status_int(&mut con, "read_through_queries"), 20);
    assert_eq!(status_int(&mut con, "read_through_skipped"), 20);
    drop(silent);
}

#[test]
fn read_through_with_postgres_stopped_fails_fast_and_recovers() {
    let pg = Postgres::start();
    seed_table(&pg);
    let server = server(&pg, |config| {
        config.write_behind_read_through = true;
        config.write_behind_circuit_cooldown = 300;
    });
    let mut con = server.client();
    pg.stop_server();
    let took = mget_misses(&mut con, "miss", 20);
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    // Refused connections: the 20 concurrent lookups fail at once and
    // open the circuit; the next misses skip PostgreSQL.
    assert_eq!(status_int(&mut con, "read_through_queries"), 20);
    assert_eq!(status_int(&mut con, "load_failures"), 20);
    mget_misses(&mut con, "other", 20);
    assert_eq!(status_int(&mut con, "read_through_queries"), 20);
    assert_eq!(status_int(&mut con, "read_through_skipped"), 20);
    pg.start_server();
    // After the cool-down, a probe goes through and closes the circuit.
    std::thread::sleep(Duration::from_millis(400));
    let value: String = redis::cmd("GET").arg("s").query(&mut con).unwrap();
    assert_eq!(value, "string value");
    assert_eq!(
        common::writebehind::status_text(&mut con, "read_through_circuit"),
        "closed"
    );
}
