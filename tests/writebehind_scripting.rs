//! Write-behind of the keys Lua scripts and functions change, to a real
//! PostgreSQL started by the test (see `common::postgres`): declared and
//! undeclared keys, other databases, deletes and expiries, functions,
//! scripts inside MULTI/EXEC, and scripts that fail half-way (Redis keeps
//! the writes made before the error, so PostgreSQL must hold them too).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::writebehind::{cmd, flush, status, status_int};
use common::TestServer;

fn server(pg: &Postgres) -> TestServer {
    let url = pg.url();
    TestServer::with_config(|config| {
        config.write_behind_url = url;
        config.write_behind_delay = 50;
    })
}

/// Items of a collection, length-prefixed, as the README documents.
fn items(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// A row's type and value.
type Row = (String, Vec<u8>);

type Rows = BTreeMap<(i32, String), Row>;

fn table_rows(pg: &Postgres) -> Rows {
    pg.query(
        "SELECT db, key, type, value FROM larder_kv ORDER BY db, key",
        |row| {
            (
                (
                    row.get::<_, i32>(0),
                    String::from_utf8(row.get::<_, Vec<u8>>(1)).expect("UTF-8 key"),
                ),
                (row.get::<_, String>(2), row.get::<_, Vec<u8>>(3)),
            )
        },
    )
    .into_iter()
    .collect()
}

fn string(value: &str) -> Row {
    ("string".into(), value.as_bytes().to_vec())
}

fn collection(kind: &str, parts: &[&str]) -> Row {
    (kind.into(), items(parts))
}

fn rows(entries: Vec<((i32, &str), Row)>) -> Rows {
    entries
        .into_iter()
        .map(|((db, key), value)| ((db, key.to_string()), value))
        .collect()
}

fn eval(
    con: &mut redis::Connection,
    script: &str,
    keys: &[&str],
) -> redis::RedisResult<redis::Value> {
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(keys.len());
    for key in keys {
        command.arg(*key);
    }
    command.query(con)
}

#[test]
fn a_script_writing_declared_and_undeclared_keys_is_written_behind() {
    let pg = Postgres::start();
    let server = server(&pg);
    let mut con = server.client();
    cmd(&mut con, &["SET", "pre:gone", "old"]);
    cmd(&mut con, &["HSET", "pre:hash", "a", "1", "b", "2"]);
    cmd(&mut con, &["SET", "pre:undeclared-gone", "x"]);
    cmd(&mut con, &["SET", "pre:overwritten", "old"]);
    flush(&mut con);
    assert_eq!(table_rows(&pg).len(), 4);

    let script = "
        redis.call('SET', KEYS[1], 'first')
        redis.call('APPEND', KEYS[1], '+second')
        redis.call('HSET', KEYS[2], 'f1', 'a', 'f2', 'b', 'f3', 'c')
        redis.call('HDEL', KEYS[2], 'f2')
        redis.call('DEL', KEYS[3])
        redis.call('HSET', KEYS[4], 'c', '3')
        redis.call('HDEL', KEYS[4], 'a')
        redis.call('SET', 'u:string', 'undeclared')
        redis.call('EXPIRE', 'u:string', 1000)
        redis.call('HSET', 'u:hash', 'y', '2', 'x', '1')
        redis.call('RPUSH', 'u:list', 'a', 'b', 'c')
        redis.call('LPOP', 'u:list')
        redis.call('SADD', 'u:set', 'm2', 'm1', 'm3')
        redis.call('SREM', 'u:set', 'm3')
        redis.call('DEL', 'pre:undeclared-gone')
        redis.call('SET', 'pre:overwritten', 'new')
        redis.call('SET', 'u:temp', 'created then deleted')
        redis.call('DEL', 'u:temp')
        redis.call('INCR', 'u:counter')
        redis.call('INCR', 'u:counter')
        redis.call('SELECT', 1)
        redis.call('SET', 'u:db1', 'in db 1')
        return 'done'";
    let reply = eval(
        &mut con,
        script,
        &["s:declared", "h:declared", "pre:gone", "pre:hash"],
    )
    .expect("the script runs");
    assert_eq!(reply, redis::Value::BulkString(b"done".to_vec()));
    // SELECT inside the script did not change this connection's database.
    let here: Option<String> = redis::cmd("GET").arg("u:string").query(&mut con).unwrap();
    assert_eq!(here.as_deref(), Some("undeclared"));
    flush(&mut con);
    let expected = rows(vec![
        ((0, "s:declared"), string("first+second")),
        (
            (0, "h:declared"),
            collection("hash", &["f1", "a", "f3", "c"]),
        ),
        ((0, "pre:hash"), collection("hash", &["b", "2", "c", "3"])),
        ((0, "u:string"), string("undeclared")),
        ((0, "u:hash"), collection("hash", &["x", "1", "y", "2"])),
        ((0, "u:list"), collection("list", &["b", "c"])),
        ((0, "u:set"), collection("set", &["m1", "m2"])),
        ((0, "pre:overwritten"), string("new")),
        ((0, "u:counter"), string("2")),
        ((1, "u:db1"), string("in db 1")),
    ]);
    assert_eq!(table_rows(&pg), expected);
    // The expiry set inside the script is written behind too.
    let expires: Vec<bool> = pg.query(
        "SELECT expires_at > now() + interval '900 seconds' FROM larder_kv WHERE key = 'u:string'",
        |row| row.get(0),
    );
    assert_eq!(expires, vec![true]);

    // EVALSHA of a cached script, and a script that only reads: the row
    // changes for the first, nothing changes for the second.
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return redis.call('HLEN', KEYS[1])")
        .query(&mut con)
        .unwrap();
    let fields: i64 = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg("u:hash")
        .arg("z")
        .arg("3")
        .query(&mut con)
        .unwrap();
    assert_eq!(fields, 3);
    eval(&mut con, "return redis.call('GET', 'u:string')", &[]).unwrap();
    flush(&mut con);
    let mut expected = expected;
    expected.insert(
        (0, "u:hash".into()),
        collection("hash", &["x", "1", "y", "2", "z", "3"]),
    );
    assert_eq!(table_rows(&pg), expected);
}

#[test]
fn a_function_that_writes_is_written_behind() {
    let pg = Postgres::start();
    let server = server(&pg);
    let mut con = server.client();
    cmd(&mut con, &["SET", "order:7:draft", "draft"]);
    flush(&mut con);
    let library = "#!lua name=orders
        redis.register_function('place_order', function(keys, args)
          redis.call('HSET', keys[1], 'status', 'placed', 'total', args[1])
          redis.call('RPUSH', 'orders:queue', keys[1])
          redis.call('DEL', keys[1] .. ':draft')
          redis.call('INCRBY', 'orders:count', 1)
          return redis.call('HGET', keys[1], 'status')
        end)";
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(library)
        .query(&mut con)
        .unwrap();
    assert_eq!(name, "orders");
    let status: String = redis::cmd("FCALL")
        .arg("place_order")
        .arg(1)
        .arg("order:7")
        .arg("42")
        .query(&mut con)
        .unwrap();
    assert_eq!(status, "placed");
    let status: String = redis::cmd("FCALL")
        .arg("place_order")
        .arg(1)
        .arg("order:8")
        .arg("5")
        .query(&mut con)
        .unwrap();
    assert_eq!(status, "placed");
    flush(&mut con);
    let expected = rows(vec![
        (
            (0, "order:7"),
            collection("hash", &["status", "placed", "total", "42"]),
        ),
        (
            (0, "order:8"),
            collection("hash", &["status", "placed", "total", "5"]),
        ),
        (
            (0, "orders:queue"),
            collection("list", &["order:7", "order:8"]),
        ),
        ((0, "orders:count"), string("2")),
    ]);
    assert_eq!(table_rows(&pg), expected);
}

#[test]
fn scripts_and_functions_inside_multi_exec_are_written_behind() {
    let pg = Postgres::start();
    let server = server(&pg);
    let mut con = server.client();
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=m\nredis.register_function('mark', function(keys, args) return redis.call('SET', keys[1], args[1]) end)")
        .query(&mut con)
        .unwrap();
    cmd(&mut con, &["MULTI"]);
    cmd(
        &mut con,
        &[
            "EVAL",
            "redis.call('SET', KEYS[1], 'a') return redis.call('SADD', 'tx:undeclared', 'x')",
            "1",
            "tx:declared",
        ],
    );
    cmd(&mut con, &["FCALL", "mark", "1", "tx:function", "marked"]);
    cmd(&mut con, &["SET", "tx:plain", "p"]);
    let replies: Vec<redis::Value> = redis::cmd("EXEC").query(&mut con).unwrap();
    assert_eq!(replies.len(), 3, "{replies:?}");
    flush(&mut con);
    let expected = rows(vec![
        ((0, "tx:declared"), string("a")),
        ((0, "tx:undeclared"), collection("set", &["x"])),
        ((0, "tx:function"), string("marked")),
        ((0, "tx:plain"), string("p")),
    ]);
    assert_eq!(table_rows(&pg), expected);
}

#[test]
fn a_script_that_fails_half_way_keeps_and_writes_behind_its_earlier_writes() {
    let pg = Postgres::start();
    let server = server(&pg);
    let mut con = server.client();
    cmd(&mut con, &["SET", "text", "not a number"]);
    cmd(&mut con, &["SET", "doomed", "deleted before the error"]);
    flush(&mut con);

    // An error raised by redis.call (wrong type) after writes.
    let error = eval(
        &mut con,
        "redis.call('SET', 'a', '1')
         redis.call('HSET', KEYS[1], 'f', 'v')
         redis.call('DEL', 'doomed')
         redis.call('INCR', 'text')
         redis.call('SET', 'never:1', 'x')",
        &["b"],
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("value is not an integer or out of range"),
        "{error}"
    );
    // error() from Lua after a write.
    let error = eval(
        &mut con,
        "redis.call('SET', 'd', '1') error('boom') redis.call('SET', 'never:2', 'x')",
        &[],
    )
    .unwrap_err();
    assert!(error.to_string().contains("boom"), "{error}");
    // A Lua runtime error after a write to an undeclared key in another db.
    let error = eval(
        &mut con,
        "redis.call('SELECT', 3) redis.call('RPUSH', 'f', 'in db 3') local x = nil return x.y",
        &[],
    )
    .unwrap_err();
    assert!(error.to_string().contains("attempt to index"), "{error}");
    // redis.pcall's error does not stop the script: later writes land.
    let reply = eval(
        &mut con,
        "local r = redis.pcall('INCR', 'text') redis.call('SET', 'g', r['err'] and 'caught' or 'no') return 1",
        &[],
    )
    .unwrap();
    assert_eq!(reply, redis::Value::Int(1));

    // The cache kept what Redis keeps.
    let kept: i64 = redis::cmd("EXISTS")
        .arg(&["a", "b", "d", "g"])
        .query(&mut con)
        .unwrap();
    assert_eq!(kept, 4);
    let never: i64 = redis::cmd("EXISTS")
        .arg(&["never:1", "never:2", "doomed"])
        .query(&mut con)
        .unwrap();
    assert_eq!(never, 0);

    flush(&mut con);
    let expected = rows(vec![
        ((0, "text"), string("not a number")),
        ((0, "a"), string("1")),
        ((0, "b"), collection("hash", &["f", "v"])),
        ((0, "d"), string("1")),
        ((0, "g"), string("caught")),
        ((3, "f"), collection("list", &["in db 3"])),
    ]);
    assert_eq!(table_rows(&pg), expected);
}

/// Rows of a previous server's life: the table as a cold cache sees it.
fn seed(pg: &Postgres) {
    let server = server(pg);
    let mut con = server.client();
    cmd(&mut con, &["SET", "cold:s", "stored"]);
    cmd(&mut con, &["HSET", "cold:h", "f1", "v1", "f2", "v2"]);
    cmd(&mut con, &["RPUSH", "cold:l", "a", "b"]);
    cmd(&mut con, &["SET", "cold:u", "stored-undeclared"]);
    cmd(&mut con, &["HSET", "cold:uh", "f1", "v1"]);
    cmd(&mut con, &["SET", "cold:fn", "10"]);
    flush(&mut con);
}

#[test]
fn read_through_loads_the_keys_a_script_declares_before_it_runs() {
    let pg = Postgres::start();
    seed(&pg);
    let server = read_through_server(&pg);
    let mut con = server.client();
    assert_eq!(cmd(&mut con, &["DBSIZE"]), redis::Value::Int(0));
    // A read by script sees the stored value.
    let value = eval(&mut con, "return redis.call('GET', KEYS[1])", &["cold:s"]).unwrap();
    assert_eq!(value, redis::Value::BulkString(b"stored".to_vec()));
    // A write by script on a cold hash adds to the stored hash.
    let fields = eval(
        &mut con,
        "redis.call('HSET', KEYS[1], 'f3', 'v3') return redis.call('HLEN', KEYS[1])",
        &["cold:h"],
    )
    .unwrap();
    assert_eq!(fields, redis::Value::Int(3));
    let length = eval(
        &mut con,
        "return redis.call('RPUSH', KEYS[1], 'c')",
        &["cold:l"],
    )
    .unwrap();
    assert_eq!(length, redis::Value::Int(3));
    // A function's declared keys too.
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=cold\nredis.register_function('bump', function(keys) return redis.call('INCRBY', keys[1], 5) end)")
        .query(&mut con)
        .unwrap();
    let bumped: i64 = redis::cmd("FCALL")
        .arg("bump")
        .arg(1)
        .arg("cold:fn")
        .query(&mut con)
        .unwrap();
    assert_eq!(bumped, 15);
    flush(&mut con);
    let table = table_rows(&pg);
    assert_eq!(
        table[&(0, "cold:h".to_string())],
        collection("hash", &["f1", "v1", "f2", "v2", "f3", "v3"])
    );
    assert_eq!(
        table[&(0, "cold:l".to_string())],
        collection("list", &["a", "b", "c"])
    );
    assert_eq!(table[&(0, "cold:fn".to_string())], string("15"));
}

fn read_through_server(pg: &Postgres) -> TestServer {
    let url = pg.url();
    TestServer::with_config(|config| {
        config.write_behind_url = url;
        config.write_behind_delay = 50;
        config.write_behind_read_through = true;
    })
}

/// A script may name a key only in ARGV (Redis allows it outside cluster
/// mode). With read-through, Larder cannot load such a key from PostgreSQL
/// under the script's locks: a command on it fails, asking to declare it,
/// rather than write back a row that would drop the stored fields.
/// Declared, the same script adds to the stored hash.
#[test]
fn a_script_writing_an_undeclared_cold_key_fails_and_clobbers_nothing() {
    let pg = Postgres::start();
    seed(&pg);
    let server = read_through_server(&pg);
    let mut con = server.client();
    let script = "redis.call('HSET', KEYS[1] or 'cold:uh', 'f2', 'v2') return redis.call('HLEN', KEYS[1] or 'cold:uh')";
    let refused = eval(&mut con, script, &[]).unwrap_err();
    assert!(
        refused.to_string().contains("must declare in KEYS"),
        "{refused}"
    );
    flush(&mut con);
    assert_eq!(
        table_rows(&pg)[&(0, "cold:uh".to_string())],
        collection("hash", &["f1", "v1"]),
        "the stored hash changed"
    );
    let fields = eval(&mut con, script, &["cold:uh"]).unwrap();
    assert_eq!(fields, redis::Value::Int(2));
    flush(&mut con);
    assert_eq!(
        table_rows(&pg)[&(0, "cold:uh".to_string())],
        collection("hash", &["f1", "v1", "f2", "v2"])
    );
}

/// The read side of the same: GET of an undeclared cold key by script is
/// refused (not answered nil); declared, it reads the stored value.
#[test]
fn a_script_reading_an_undeclared_cold_key_is_refused_and_declared_reads_it() {
    let pg = Postgres::start();
    seed(&pg);
    let server = read_through_server(&pg);
    let mut con = server.client();
    let script = "return redis.call('GET', KEYS[1] or 'cold:u')";
    let refused = eval(&mut con, script, &[]).unwrap_err();
    assert!(
        refused.to_string().contains("must declare in KEYS"),
        "{refused}"
    );
    let value = eval(&mut con, script, &["cold:u"]).unwrap();
    assert_eq!(
        value,
        redis::Value::BulkString(b"stored-undeclared".to_vec())
    );
}

const BACKLOG_KEYS: [&str; 3] = ["wb:declared", "wb:undeclared", "wb:mixed"];

/// What scripts writing followed keys got while PostgreSQL was down and the
/// backlog full (10 pending keys), what memory then held for those keys,
/// and the table once PostgreSQL is back and the backlog flushed.
struct BacklogRun {
    results: Vec<redis::RedisResult<redis::Value>>,
    in_memory: Vec<Option<String>>,
    /// `pending_keys` of WRITEBEHIND STATUS after the scripts ran.
    pending: i64,
    table: Rows,
}

fn scripts_against_a_full_backlog() -> BacklogRun {
    let pg = Postgres::start();
    let url = pg.url();
    let server = TestServer::with_config(|config| {
        config.write_behind_url = url;
        config.write_behind_delay = 50;
        config.write_behind_max_pending = 10;
        config.write_behind_match = "wb:*".into();
    });
    let mut con = server.client();
    cmd(&mut con, &["SET", "wb:before", "v"]);
    flush(&mut con);
    pg.stop_server();
    cmd(&mut con, &["SET", "wb:0", "v"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&mut con).get("state") != Some(&redis::Value::BulkString(b"retrying".to_vec())) {
        assert!(Instant::now() < deadline, "PostgreSQL stop not noticed");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 1..10 {
        cmd(&mut con, &["SET", &format!("wb:{i}"), "v"]);
    }
    // Full: plain commands are refused.
    let error = redis::cmd("SET")
        .arg("wb:plain")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(error.to_string().contains("backlog full"), "{error}");
    let results = vec![
        // A script writing a followed key it declares,
        eval(
            &mut con,
            "return redis.call('SET', KEYS[1], 'script')",
            &["wb:declared"],
        ),
        // one it does not declare,
        eval(
            &mut con,
            "return redis.call('SET', 'wb:undeclared', 'script')",
            &[],
        ),
        // and one writing a local key first, then a followed one.
        eval(
            &mut con,
            "redis.call('SET', 'local:a', '1') return redis.call('SET', 'wb:mixed', 'script')",
            &[],
        ),
    ];
    let in_memory: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&BACKLOG_KEYS)
        .query(&mut con)
        .unwrap();
    let pending = status_int(&mut con, "pending_keys");
    pg.start_server();
    flush(&mut con);
    BacklogRun {
        results,
        in_memory,
        pending,
        table: table_rows(&pg),
    }
}

/// Whatever a script wrote to a followed key while the backlog was full
/// reaches PostgreSQL once it is back; whatever was refused is not in
/// memory either.
#[test]
fn script_writes_during_a_full_backlog_are_never_lost() {
    let run = scripts_against_a_full_backlog();
    for ((key, result), value) in BACKLOG_KEYS.iter().zip(&run.results).zip(&run.in_memory) {
        if let Err(error) = result {
            assert!(error.to_string().contains("backlog full"), "{key}: {error}");
            assert_eq!(value, &None, "{key} was refused but is in memory");
        }
        let row = run.table.get(&(0, key.to_string()));
        match value {
            Some(v) => assert_eq!(row, Some(&string(v)), "{key} in memory, not in PostgreSQL"),
            None => assert_eq!(row, None, "{key}"),
        }
    }
    assert_eq!(
        run.table.len(),
        11 + run.in_memory.iter().flatten().count(),
        "{:?}",
        run.table.keys().collect::<Vec<_>>()
    );
}

/// The README: past `write-behind-max-pending`, write commands on
/// written-behind keys are refused with `-WRITEBEHIND backlog full`. A
/// script's write to such a key is a write command on it.
#[test]
fn a_full_backlog_refuses_script_writes_to_followed_keys() {
    let run = scripts_against_a_full_backlog();
    for (key, result) in BACKLOG_KEYS.iter().zip(&run.results) {
        match result {
            Err(error) => assert!(error.to_string().contains("backlog full"), "{key}: {error}"),
            Ok(reply) => panic!(
                "{key}: a script wrote through a full backlog: {reply:?} ({} pending keys, limit 10)",
                run.pending
            ),
        }
    }
    assert_eq!(run.in_memory, vec![None, None, None]);
    assert!(run.pending <= 10, "{} pending keys", run.pending);
}

/// Two keys, one per database, both flushed to PostgreSQL.
fn two_databases(pg: &Postgres, con: &mut redis::Connection) {
    cmd(con, &["SET", "old:0", "x"]);
    cmd(con, &["SELECT", "1"]);
    cmd(con, &["SET", "old:1", "x"]);
    cmd(con, &["SELECT", "0"]);
    flush(con);
    assert_eq!(table_rows(pg).len(), 2);
}

/// FLUSHDB and FLUSHALL are allowed in scripts (Redis 7 runs them): the
/// rows of the flushed databases go, the writes after the flush stay.
#[test]
fn flushdb_and_flushall_inside_scripts_are_written_behind() {
    let pg = Postgres::start();
    let server = server(&pg);
    let mut con = server.client();
    two_databases(&pg, &mut con);
    let reply = eval(
        &mut con,
        "redis.call('SET', 'gone', '1') redis.call('FLUSHDB') return redis.call('SET', 'after-flushdb', '1')",
        &[],
    )
    .unwrap();
    assert_eq!(reply, redis::Value::Okay);
    flush(&mut con);
    assert_eq!(
        table_rows(&pg),
        rows(vec![
            ((0, "after-flushdb"), string("1")),
            ((1, "old:1"), string("x"))
        ])
    );
    let reply = eval(
        &mut con,
        "redis.call('SET', 'gone', '1') redis.call('FLUSHALL') redis.call('SELECT', 2) return redis.call('SET', 'after-flushall', '1')",
        &[],
    )
    .unwrap();
    assert_eq!(reply, redis::Value::Okay);
    flush(&mut con);
    assert_eq!(
        table_rows(&pg),
        rows(vec![((2, "after-flushall"), string("1"))])
    );
}

/// SWAPDB in a script: the table ends holding each database's keys under
/// their new database, as the cache does.
#[test]
fn swapdb_inside_a_script_is_written_behind() {
    let pg = Postgres::start();
    let server = server(&pg);
    let mut con = server.client();
    two_databases(&pg, &mut con);
    let reply = eval(
        &mut con,
        "redis.call('SET', 'zero', 'was in 0')
         redis.call('SELECT', 1)
         redis.call('SET', 'one', 'was in 1')
         redis.call('SWAPDB', 0, 1)
         redis.call('SET', 'after-swap', 'in 1')
         return redis.call('DBSIZE')",
        &[],
    )
    .unwrap();
    assert_eq!(reply, redis::Value::Int(3));
    flush(&mut con);
    assert_eq!(
        table_rows(&pg),
        rows(vec![
            ((0, "old:1"), string("x")),
            ((0, "one"), string("was in 1")),
            ((1, "old:0"), string("x")),
            ((1, "zero"), string("was in 0")),
            ((1, "after-swap"), string("in 1")),
        ])
    );
}

/// The same without a script, the smallest reproduction: two flushed keys,
/// SWAPDB 0 1, WRITEBEHIND FLUSH.
#[test]
fn swapdb_keeps_postgresql_equal_to_the_cache() {
    let pg = Postgres::start();
    let server = server(&pg);
    let mut con = server.client();
    two_databases(&pg, &mut con);
    cmd(&mut con, &["SWAPDB", "0", "1"]);
    flush(&mut con);
    // Give a late write every chance.
    std::thread::sleep(Duration::from_millis(300));
    flush(&mut con);
    assert_eq!(
        table_rows(&pg),
        rows(vec![
            ((0, "old:1"), string("x")),
            ((1, "old:0"), string("x"))
        ])
    );
}

// ------------------------------------------------------------ the journal

/// A `larder-server` process (so that it can be SIGKILLed), writing behind
/// to `pg` with its journal in `dir`.
struct Process {
    child: std::process::Child,
    port: u16,
}

impl Process {
    fn start(pg: &Postgres, dir: &std::path::Path, settings: &[(&str, &str)]) -> Process {
        let port = common::free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("open the server log");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_larder-server"));
        command
            .arg("--port")
            .arg(port.to_string())
            .args(["--set", "write-behind-url"])
            .arg(pg.url())
            .args(["--set", "dir"])
            .arg(dir)
            .args(["--set", "write-behind-journal", "yes"])
            .args(["--set", "write-behind-fsync", "always"]);
        for (name, value) in settings {
            command.args(["--set", name, value]);
        }
        let child = command
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start larder-server");
        let process = Process { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut con) = process.try_client() {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return process;
                }
            }
            assert!(Instant::now() < deadline, "larder-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_client(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?
            .get_connection_with_timeout(Duration::from_secs(5))
    }

    fn client(&self) -> redis::Connection {
        self.try_client().expect("connect to larder-server")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every string and hash of databases 0 and 1, as rows.
fn memory_rows(con: &mut redis::Connection) -> Rows {
    let mut rows = Rows::new();
    for db in [0, 1] {
        cmd(con, &["SELECT", &db.to_string()]);
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query(con).unwrap();
            let row = match kind.as_str() {
                "string" => {
                    let value: String = redis::cmd("GET").arg(&key).query(con).unwrap();
                    string(&value)
                }
                "hash" => {
                    let fields: BTreeMap<String, String> =
                        redis::cmd("HGETALL").arg(&key).query(con).unwrap();
                    let flat: Vec<&str> = fields
                        .iter()
                        .flat_map(|(f, v)| [f.as_str(), v.as_str()])
                        .collect();
                    collection("hash", &flat)
                }
                "set" => {
                    let mut members: Vec<String> =
                        redis::cmd("SMEMBERS").arg(&key).query(con).unwrap();
                    members.sort();
                    let members: Vec<&str> = members.iter().map(String::as_str).collect();
                    collection("set", &members)
                }
                other => panic!("unexpected type {other} of {key}"),
            };
            rows.insert((db, key), row);
        }
    }
    cmd(con, &["SELECT", "0"]);
    rows
}

/// Scripts' writes are journaled like any write: acknowledged, not yet in
/// PostgreSQL, then SIGKILL; after the restart PostgreSQL and memory hold
/// exactly what the scripts left, including values a replay of the script
/// itself could not reproduce (TIME, SPOP).
#[test]
fn script_writes_survive_a_sigkill_through_the_journal() {
    let pg = Postgres::start();
    let dir = std::env::temp_dir().join(format!(
        "larder-wb-scripting-journal-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let larder = Process::start(&pg, &dir, &[]);
    let mut con = larder.client();
    cmd(&mut con, &["SET", "flushed", "to be deleted by a script"]);
    cmd(&mut con, &["SADD", "pool", "a", "b", "c", "d", "e", "f"]);
    flush(&mut con);
    // The flusher held back: only the journal can bring what follows back.
    cmd(
        &mut con,
        &["CONFIG", "SET", "write-behind-delay", "3600000"],
    );
    cmd(
        &mut con,
        &["CONFIG", "SET", "write-behind-batch-size", "1000000"],
    );
    // Let the flusher finish the pass it was in and fall asleep.
    std::thread::sleep(Duration::from_millis(300));
    eval(
        &mut con,
        "local t = redis.call('TIME')
         redis.call('SET', KEYS[1], t[1] .. '.' .. t[2])
         redis.call('HSET', 'undeclared:h', 'popped', redis.call('SPOP', KEYS[2]))
         redis.call('DEL', 'flushed')
         redis.call('SELECT', 1)
         redis.call('SET', 'db1', 'one')
         return 1",
        &["time", "pool"],
    )
    .unwrap();
    eval(
        &mut con,
        "redis.call('INCRBYFLOAT', 'float', '1.5')
         redis.call('SET', 'before-error', 'kept')
         return redis.call('HSET', 'before-error', 'f', 'v')",
        &[],
    )
    .unwrap_err();
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=j\nredis.register_function('put', function(keys, args) return redis.call('SET', keys[1], args[1]) end)")
        .query(&mut con)
        .unwrap();
    cmd(&mut con, &["FCALL", "put", "1", "by-function", "fv"]);
    let before = memory_rows(&mut con);
    assert_eq!(before.len(), 7, "{before:?}");
    assert!(!before.contains_key(&(0, "flushed".to_string())));
    let in_pg = table_rows(&pg);
    assert!(
        in_pg.contains_key(&(0, "flushed".to_string())) && in_pg.len() == 2,
        "the flusher was not held back: {in_pg:?}"
    );
    drop(con);
    drop(larder); // SIGKILL
    let larder = Process::start(&pg, &dir, &[]);
    let mut con = larder.client();
    assert_eq!(memory_rows(&mut con), before, "memory after the replay");
    flush(&mut con);
    assert_eq!(table_rows(&pg), before, "PostgreSQL after the replay");
    drop(larder);
    let _ = std::fs::remove_dir_all(&dir);
}
