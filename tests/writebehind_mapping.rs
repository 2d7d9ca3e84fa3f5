//! Write-behind to mapped tables, poison rows and the circuit breaker,
//! against a real PostgreSQL started by the test (see `common::postgres`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::writebehind::{cmd, flush, status, status_int, status_text};
use common::TestServer;

const USERS: &str = "CREATE TABLE users (
    id integer PRIMARY KEY,
    name text,
    age integer CHECK (age >= 0),
    bio text,
    email text
)";

fn server(pg: &Postgres, maps: &str, adjust: impl FnOnce(&mut larder::Config)) -> TestServer {
    let url = pg.url();
    let maps = maps.to_string();
    TestServer::with_config(move |config| {
        config.write_behind_url = url;
        // Batches go when the test says so (WRITEBEHIND FLUSH), so batch
        // mates are in one batch.
        config.write_behind_delay = 60_000;
        config.write_behind_circuit_cooldown = 200;
        config.set("write-behind-map", &maps).expect("mapping");
        adjust(config);
    })
}

type User = (
    i32,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<String>,
);

fn users(pg: &Postgres) -> Vec<User> {
    pg.query(
        "SELECT id, name, age, bio, email FROM users ORDER BY id",
        |row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)),
    )
}

fn user(id: i32, name: Option<&str>, age: Option<i32>, bio: Option<&str>) -> User {
    (id, name.map(String::from), age, bio.map(String::from), None)
}

/// (key, target table, operation, fields as text, error, sqlstate)
type DeadLetter = (
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

fn dead_letters(pg: &Postgres) -> Vec<DeadLetter> {
    pg.query(
        "SELECT convert_from(key, 'UTF8'), target_table, operation, fields::text, error, sqlstate \
         FROM larder_dead_letter ORDER BY key",
        |row| {
            (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            )
        },
    )
}

fn wait_for(
    con: &mut redis::Connection,
    what: &str,
    mut done: impl FnMut(&mut redis::Connection) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(con) {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached; status {:?}",
            status(con)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hashes_and_strings_become_rows() {
    let pg = Postgres::start();
    pg.execute(USERS);
    let server = server(&pg, "user:{id} users column=bio", |_| {});
    let mut con = server.client();
    let maps: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("write-behind-map")
        .query(&mut con)
        .unwrap();
    assert_eq!(maps, ["write-behind-map", "user:{id} users column=bio"]);

    cmd(&mut con, &["HSET", "user:1", "name", "Ada", "age", "36"]);
    cmd(&mut con, &["HSET", "user:2", "name", "Bob"]);
    cmd(&mut con, &["SET", "plain", "v"]);
    flush(&mut con);
    assert_eq!(
        users(&pg),
        [
            user(1, Some("Ada"), Some(36), None),
            user(2, Some("Bob"), None, None)
        ]
    );
    // Mapped keys go to their table only; others to the default table.
    let kv: Vec<Vec<u8>> = pg.query("SELECT key FROM larder_kv", |r| r.get(0));
    assert_eq!(kv, [b"plain".to_vec()]);

    // HDEL sets the column to NULL; a string goes to column=, leaving the
    // other columns as they are.
    pg.execute("INSERT INTO users (id, email) VALUES (3, 'c@example.com')");
    cmd(&mut con, &["HDEL", "user:1", "age"]);
    cmd(&mut con, &["HSET", "user:2", "age", "40"]);
    cmd(&mut con, &["SET", "user:3", "hello"]);
    cmd(&mut con, &["SET", "user:4", "new"]);
    flush(&mut con);
    let mut three = user(3, None, None, Some("hello"));
    three.4 = Some("c@example.com".into());
    assert_eq!(
        users(&pg),
        [
            user(1, Some("Ada"), None, None),
            user(2, Some("Bob"), Some(40), None),
            three,
            user(4, None, None, Some("new")),
        ]
    );

    // DEL deletes the row; many changes to one key arrive as its last state.
    cmd(&mut con, &["DEL", "user:2", "user:4"]);
    for age in 0..100 {
        cmd(&mut con, &["HSET", "user:1", "age", &age.to_string()]);
    }
    flush(&mut con);
    let ids: Vec<(i32, Option<i32>)> = pg.query("SELECT id, age FROM users ORDER BY id", |r| {
        (r.get(0), r.get(1))
    });
    assert_eq!(ids, [(1, Some(99)), (3, None)]);
    assert_eq!(status_int(&mut con, "pending_keys"), 0);
    assert_eq!(status_int(&mut con, "dead_letters"), 0);
    assert!(status_int(&mut con, "rows_deleted") >= 2);

    // A field named like the key column: ignored if it agrees with the
    // key, reported (and not written) otherwise. HDEL of the last field
    // removes the key, so the row goes.
    cmd(&mut con, &["HSET", "user:1", "id", "1"]);
    flush(&mut con);
    assert_eq!(status_int(&mut con, "unmapped_fields"), 0);
    cmd(&mut con, &["HSET", "user:1", "id", "2"]);
    flush(&mut con);
    assert_eq!(status_int(&mut con, "unmapped_fields"), 1);
    assert_eq!(status_text(&mut con, "last_unmapped_field"), "users.id");
    let ids: Vec<i32> = pg.query("SELECT id FROM users ORDER BY id", |r| r.get(0));
    assert_eq!(ids, [1, 3]);
    cmd(&mut con, &["HDEL", "user:1", "name", "age", "id"]);
    flush(&mut con);
    let ids: Vec<i32> = pg.query("SELECT id FROM users ORDER BY id", |r| r.get(0));
    assert_eq!(ids, [3]);

    // A column dropped while Larder runs: the statement naming it fails,
    // the next connection reads the catalog again, and writing goes on.
    pg.execute("ALTER TABLE users DROP COLUMN email");
    cmd(&mut con, &["HSET", "user:6", "name", "after the change"]);
    flush(&mut con);
    let names: Vec<Option<String>> = pg.query("SELECT name FROM users WHERE id = 6", |r| r.get(0));
    assert_eq!(names, [Some("after the change".to_string())]);
}

#[test]
fn injection_through_a_field_a_key_and_a_value_executes_nothing() {
    let pg = Postgres::start();
    pg.execute(USERS);
    let server = server(&pg, "user:{id} users", |_| {});
    let mut con = server.client();
    let field = "name\"; DROP TABLE users; --";
    let value = "'); DROP TABLE users; --";
    let key = "user:1; DROP TABLE users; --";
    cmd(&mut con, &["HSET", "user:5", field, "x", "name", value]);
    cmd(&mut con, &["HSET", key, "name", "y"]);
    cmd(
        &mut con,
        &["HSET", "user:6", "age", "1); DROP TABLE users; --"],
    );
    flush(&mut con);
    // The table survives, the value is stored verbatim, the field without a
    // column is reported and not written.
    assert_eq!(users(&pg), [user(5, Some(value), None, None)]);
    assert_eq!(status_int(&mut con, "unmapped_fields"), 1);
    assert_eq!(
        status_text(&mut con, "last_unmapped_field"),
        format!("users.{field}")
    );
    let info: String = redis::cmd("INFO")
        .arg("writebehind")
        .query(&mut con)
        .unwrap();
    assert!(info.contains("unmapped_fields:1"), "{info}");
    // The key part and the value the int column rejects are poison rows.
    let dead = dead_letters(&pg);
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0, key);
    assert_eq!(dead[0].5.as_deref(), Some("22P02"), "{dead:?}");
    assert_eq!(dead[1].0, "user:6");
    assert_eq!(dead[1].5.as_deref(), Some("22P02"), "{dead:?}");
    assert_eq!(status_int(&mut con, "pending_keys"), 0);
    // Still there after a second round.
    cmd(&mut con, &["DEL", "user:5", key]);
    flush(&mut con);
    assert_eq!(users(&pg), []);
    let tables: Vec<i64> = pg.query(
        "SELECT count(*) FROM pg_tables WHERE tablename = 'users'",
        |r| r.get(0),
    );
    assert_eq!(tables, [1]);
}

#[test]
fn poison_rows_go_to_the_dead_letter_table_and_their_batch_mates_land() {
    let pg = Postgres::start();
    pg.execute(USERS);
    let server = server(&pg, "user:{id} users", |_| {});
    let mut con = server.client();
    for id in 10..40 {
        cmd(&mut con, &["HSET", &format!("user:{id}"), "name", "mate"]);
    }
    cmd(&mut con, &["HSET", "user:7", "age", "notanumber"]);
    cmd(
        &mut con,
        &["HSET", "user:8", "name", "negative", "age", "-1"],
    );
    cmd(&mut con, &["RPUSH", "user:9", "a", "list"]);
    cmd(&mut con, &["SET", "user:41", "no column= for strings"]);
    cmd(&mut con, &["SET", "kv-key", "default table"]);
    flush(&mut con);
    let ids: Vec<i32> = pg.query("SELECT id FROM users ORDER BY id", |r| r.get(0));
    assert_eq!(ids, (10..40).collect::<Vec<_>>());
    let kv: Vec<i64> = pg.query("SELECT count(*) FROM larder_kv", |r| r.get(0));
    assert_eq!(kv, [1]);
    let dead = dead_letters(&pg);
    let keys: Vec<&str> = dead.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(keys, ["user:41", "user:7", "user:8", "user:9"], "{dead:?}");
    let by_key: BTreeMap<&str, &DeadLetter> = dead.iter().map(|d| (d.0.as_str(), d)).collect();
    let seven = by_key["user:7"];
    assert_eq!(seven.1, "users");
    assert_eq!(seven.2, "upsert");
    assert_eq!(
        seven.3.as_deref(),
        Some(r#"{"id": "7", "age": "notanumber"}"#)
    );
    assert!(seven.4.contains("notanumber"), "{seven:?}");
    assert_eq!(seven.5.as_deref(), Some("22P02"));
    assert_eq!(by_key["user:8"].5.as_deref(), Some("23514"));
    assert!(by_key["user:9"].4.contains("list"), "{dead:?}");
    assert_eq!(by_key["user:9"].5, None);
    assert_eq!(status_int(&mut con, "dead_letters"), 4);
    assert_eq!(status_int(&mut con, "pending_keys"), 0);
    // Fixed, the key lands.
    cmd(&mut con, &["HSET", "user:7", "age", "30"]);
    flush(&mut con);
    let ages: Vec<Option<i32>> = pg.query("SELECT age FROM users WHERE id = 7", |r| r.get(0));
    assert_eq!(ages, [Some(30)]);

    // A delete the table refuses (a foreign key) is a poison row too; the
    // deletes batched with it happen.
    pg.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users (id));
         INSERT INTO orders VALUES (1, 10)",
    );
    cmd(&mut con, &["DEL", "user:10", "user:11", "user:12"]);
    flush(&mut con);
    let ids: Vec<i32> = pg.query("SELECT id FROM users WHERE id < 13 ORDER BY id", |r| {
        r.get(0)
    });
    assert_eq!(ids, [7, 10]);
    let refused: Vec<(String, Option<String>)> = pg.query(
        "SELECT operation, sqlstate FROM larder_dead_letter WHERE key = 'user:10'",
        |r| (r.get(0), r.get(1)),
    );
    assert_eq!(refused, [("delete".to_string(), Some("23503".to_string()))]);
    assert_eq!(status_int(&mut con, "dead_letters"), 5);
    assert_eq!(status_int(&mut con, "pending_keys"), 0);
}

#[test]
fn a_key_column_without_a_unique_index_is_reported_and_fixing_it_recovers() {
    let pg = Postgres::start();
    pg.execute("CREATE TABLE people (id integer, name text)");
    let server = server(&pg, "person:{id} people", |_| {});
    let mut con = server.client();
    cmd(&mut con, &["HSET", "person:1", "name", "Ada"]);
    wait_for(&mut con, "the error is reported", |con| {
        status_text(con, "last_error").contains("neither its primary key nor UNIQUE")
    });
    pg.execute("ALTER TABLE people ADD PRIMARY KEY (id)");
    flush(&mut con);
    let names: Vec<String> = pg.query("SELECT name FROM people", |r| r.get(0));
    assert_eq!(names, ["Ada"]);
}

#[test]
fn the_circuit_opens_while_postgres_is_down_and_closes_after_it_returns() {
    let pg = Postgres::start();
    pg.execute(USERS);
    let server = server(&pg, "user:{id} users", |config| {
        config.write_behind_delay = 20;
        config.write_behind_circuit_failures = 2;
        config.write_behind_max_pending = 3;
    });
    let mut con = server.client();
    cmd(&mut con, &["HSET", "user:1", "name", "before"]);
    flush(&mut con);
    assert_eq!(status_text(&mut con, "circuit"), "closed");
    pg.stop_server();
    cmd(&mut con, &["HSET", "user:2", "name", "during"]);
    wait_for(&mut con, "the circuit opens", |con| {
        status_text(con, "circuit") != "closed"
    });
    assert_eq!(status_text(&mut con, "state"), "retrying");
    let info: String = redis::cmd("INFO")
        .arg("writebehind")
        .query(&mut con)
        .unwrap();
    assert!(info.contains("circuit:"), "{info}");
    // The backlog refusal still says what is going on.
    cmd(&mut con, &["HSET", "user:3", "name", "during"]);
    cmd(&mut con, &["HSET", "user:4", "name", "during"]);
    let error = redis::cmd("HSET")
        .arg("user:5")
        .arg("name")
        .arg("refused")
        .query::<i64>(&mut con)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("backlog full: PostgreSQL is unreachable (3 changes pending)"),
        "{error}"
    );
    pg.start_server();
    flush(&mut con);
    assert_eq!(status_text(&mut con, "circuit"), "closed");
    assert_eq!(status_text(&mut con, "state"), "up");
    assert!(status_int(&mut con, "failures") >= 2);
    let ids: Vec<i32> = pg.query("SELECT id FROM users ORDER BY id", |r| r.get(0));
    assert_eq!(ids, [1, 2, 3, 4]);
}

#[test]
fn mapped_rows_load_at_warm_start_and_read_through() {
    let pg = Postgres::start();
    pg.execute(USERS);
    pg.execute("CREATE TABLE greetings (lang text PRIMARY KEY, text text)");
    pg.execute(
        "INSERT INTO users (id, name, age) VALUES (1, 'Ada', 36), (2, 'Bob', NULL);
         INSERT INTO greetings VALUES ('en', 'hello'), ('fr', 'bonjour');",
    );
    let maps = "user:{id} users; greeting:{lang} greetings column=text";
    // Warm start: a hash of each user's non-NULL columns, a string per greeting.
    let warm = server(&pg, maps, |config| config.write_behind_warm_start = true);
    let mut con = warm.client();
    let ada: BTreeMap<String, String> =
        redis::cmd("HGETALL").arg("user:1").query(&mut con).unwrap();
    assert_eq!(
        ada,
        BTreeMap::from([("age".into(), "36".into()), ("name".into(), "Ada".into())])
    );
    let bob: BTreeMap<String, String> =
        redis::cmd("HGETALL").arg("user:2").query(&mut con).unwrap();
    assert_eq!(bob, BTreeMap::from([("name".into(), "Bob".into())]));
    let hello: String = redis::cmd("GET")
        .arg("greeting:en")
        .query(&mut con)
        .unwrap();
    assert_eq!(hello, "hello");
    assert_eq!(status_int(&mut con, "keys_loaded"), 4);
    assert_eq!(status_int(&mut con, "pending_keys"), 0);
    drop(con);
    drop(warm);
    // Read-through: one key at a time, the key's text cast by PostgreSQL
    // (so a key that is no integer simply has no row).
    let cold = server(&pg, maps, |config| config.write_behind_read_through = true);
    let mut con = cold.client();
    assert_eq!(cmd(&mut con, &["DBSIZE"]), redis::Value::Int(0));
    let age: Option<String> = redis::cmd("HGET")
        .arg("user:1")
        .arg("age")
        .query(&mut con)
        .unwrap();
    assert_eq!(age.as_deref(), Some("36"));
    let bonjour: String = redis::cmd("GET")
        .arg("greeting:fr")
        .query(&mut con)
        .unwrap();
    assert_eq!(bonjour, "bonjour");
    let missing: Option<String> = redis::cmd("GET")
        .arg("greeting:de")
        .query(&mut con)
        .unwrap();
    assert_eq!(missing, None);
    // An update of a cold key keeps the row's other columns.
    cmd(&mut con, &["HSET", "user:2", "age", "41"]);
    flush(&mut con);
    let bob: Vec<User> = pg.query(
        "SELECT id, name, age, bio, email FROM users WHERE id = 2",
        |row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)),
    );
    assert_eq!(bob, vec![(2, Some("Bob".into()), Some(41), None, None)]);
    assert_eq!(status_int(&mut con, "read_through_queries"), 4);
    assert_eq!(status_int(&mut con, "load_failures"), 0);
}
