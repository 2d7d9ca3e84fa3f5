//! MULTI/EXEC/DISCARD/WATCH/UNWATCH: replies compared byte for byte with a
//! real redis-server, WATCH aborts caused by other connections, deletions,
//! flushes and expiry, the redis crate's atomic pipelines, and atomicity of
//! EXEC across shards under concurrency.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Pair, RawClient, TestServer};

#[test]
fn multi_exec_discard_basics() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        MULTI => +OK|
        SET a 1 => +QUEUED|
        GET a => +QUEUED|
        DEL a b => +QUEUED|
        GET a => +QUEUED|
        PING => +QUEUED|
        ECHO hi => +QUEUED|
        EXEC => *6|+OK|$1|1|:1|$-1|+PONG|$2|hi|
        MULTI
        EXEC => *0|
        MULTI
        SET a 2
        DISCARD => +OK|
        GET a => $-1|
        # Commands that run at once inside MULTI.
        MULTI
        SET a 3
        MULTI => -ERR MULTI calls can not be nested|
        WATCH a => -ERR WATCH inside MULTI is not allowed|
        EXEC => *1|+OK|
        GET a => $1|3|
        # SELECT inside a transaction applies to what follows.
        MULTI
        SELECT 1
        SET a in-1
        GET a
        SELECT 0
        EXEC
        GET a => $1|3|
        SELECT 1
        GET a => $4|in-1|
        SELECT 0
        # Server and connection commands inside MULTI.
        MULTI
        CLIENT SETNAME tx
        CLIENT GETNAME
        CONFIG SET timeout 0
        DBSIZE
        INFO nosuch
        EXEC
        CLIENT GETNAME
        ",
    );
}

#[test]
fn transaction_errors_outside_multi() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        EXEC => -ERR EXEC without MULTI|
        DISCARD => -ERR DISCARD without MULTI|
        UNWATCH => +OK|
        WATCH
        MULTI x
        EXEC x
        DISCARD x
        UNWATCH x
        exec
        # A refused EXEC discards the transaction.
        MULTI
        SET a 1
        EXEC x => -EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command|
        EXEC => -ERR EXEC without MULTI|
        GET a => $-1|
        ",
    );
    // ...and the watches.
    let mut other = pair.clients();
    c.same(&["WATCH", "a"]);
    c.same(&["EXEC", "x"]);
    other.same(&["SET", "a", "1"]);
    c.script("MULTI\nPING\nEXEC => *1|+PONG|");
}

#[test]
fn exec_without_authentication_is_an_execabort() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.same(&["CONFIG", "SET", "requirepass", "secret"]);
    let mut c = pair.clients();
    c.script(
        "
        MULTI => -NOAUTH Authentication required.|
        EXEC => -EXECABORT Transaction discarded because of: NOAUTH Authentication required.|
        DISCARD => -NOAUTH Authentication required.|
        AUTH secret
        MULTI
        SET a 1
        EXEC => *1|+OK|
        ",
    );
}

#[test]
fn queueing_errors_abort_exec() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        SET k before
        # An unknown command.
        MULTI
        SET k after
        NOSUCH a b
        EXEC => -EXECABORT Transaction discarded because of previous errors.|
        GET k => $6|before|
        # Wrong arity, at any position.
        MULTI
        SET k
        SET k after
        EXEC
        GET k => $6|before|
        MULTI
        SET k after
        GET
        GET k
        EXEC
        # An unknown subcommand, a subcommand with the wrong arity.
        MULTI
        CLIENT NOSUCH
        EXEC
        MULTI
        CLIENT SETNAME
        EXEC
        # A command not allowed inside MULTI.
        MULTI
        SET k after
        SHUTDOWN
        EXEC
        GET k => $6|before|
        # The error leaves MULTI open; DISCARD still works.
        MULTI
        NOSUCH
        DISCARD => +OK|
        EXEC => -ERR EXEC without MULTI|
        ",
    );
}

#[test]
fn runtime_errors_do_not_abort_the_rest() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        MULTI
        SET k 1
        SET k 2 x
        GET k
        SELECT 99
        SELECT x
        CONFIG SET nosuch 1
        CLIENT NO-EVICT maybe
        SET k 3
        EXEC
        GET k => $1|3|
        ",
    );
}

#[test]
fn exec_abort_is_a_null_reply_in_both_protocols() {
    let pair = Pair::start();
    for resp3 in [false, true] {
        let mut c = pair.clients();
        let mut other = pair.clients();
        if resp3 {
            c.ours.command(&["HELLO", "3"]);
            c.theirs.command(&["HELLO", "3"]);
        }
        c.same(&["WATCH", "k"]);
        other.same(&["SET", "k", "changed"]);
        c.same(&["MULTI"]);
        c.same(&["SET", "k", "mine"]);
        let reply = c.same(&["EXEC"]);
        assert_eq!(reply, if resp3 { "_\r\n" } else { "*-1\r\n" });
        assert_eq!(c.same(&["GET", "k"]), "$7\r\nchanged\r\n");
    }
}

/// WATCH k, let `change` run on another connection, then MULTI/EXEC on k:
/// returns EXEC's reply (after checking Larder and Redis agree).
fn watch_then(pair: &Pair, setup: &[&[&str]], change: &[&[&str]]) -> String {
    let mut c = pair.clients();
    let mut other = pair.clients();
    for command in setup {
        c.same(command);
    }
    c.same(&["WATCH", "k"]);
    for command in change {
        other.same(command);
    }
    c.same(&["MULTI"]);
    c.same(&["PING"]);
    let reply = c.same(&["EXEC"]);
    c.same(&["DEL", "k", "other"]);
    reply
}

const ABORTED: &str = "*-1\r\n";
const RAN: &str = "*1\r\n+PONG\r\n";

#[test]
fn watch_aborts_on_changes_to_the_key() {
    let pair = Pair::start();
    // Set by another connection, even to the same value.
    assert_eq!(watch_then(&pair, &[], &[&["SET", "k", "v"]]), ABORTED);
    assert_eq!(
        watch_then(&pair, &[&["SET", "k", "v"]], &[&["SET", "k", "v"]]),
        ABORTED
    );
    // Deleted.
    assert_eq!(
        watch_then(&pair, &[&["SET", "k", "v"]], &[&["DEL", "k"]]),
        ABORTED
    );
    // Created and deleted again.
    assert_eq!(
        watch_then(&pair, &[], &[&["SET", "k", "v"], &["DEL", "k"]]),
        ABORTED
    );
}

#[test]
fn watch_ignores_what_does_not_change_the_key() {
    let pair = Pair::start();
    assert_eq!(watch_then(&pair, &[], &[]), RAN);
    // Other keys.
    assert_eq!(watch_then(&pair, &[], &[&["SET", "other", "v"]]), RAN);
    // Reads.
    assert_eq!(
        watch_then(&pair, &[&["SET", "k", "v"]], &[&["GET", "k"]]),
        RAN
    );
    // Deleting a key that does not exist.
    assert_eq!(watch_then(&pair, &[], &[&["DEL", "k"]]), RAN);
    // The same name in another database.
    assert_eq!(
        watch_then(
            &pair,
            &[],
            &[&["SELECT", "1"], &["SET", "k", "v"], &["DEL", "k"]]
        ),
        RAN
    );
}

#[test]
fn watch_state_is_per_database_and_connection() {
    let pair = Pair::start();
    let mut c = pair.clients();
    let mut other = pair.clients();
    c.script(
        "
        # The watching client's own write aborts too.
        WATCH k
        SET k mine
        MULTI
        PING
        EXEC => *-1|
        # Watches taken in db 1 follow the key there.
        SELECT 1
        WATCH k
        SELECT 0
        ",
    );
    other.same(&["SELECT", "1"]);
    other.same(&["SET", "k", "v"]);
    c.script(
        "
        MULTI
        PING
        EXEC => *-1|
        ",
    );
    // Watching several keys; a change to any of them aborts.
    c.same(&["WATCH", "a", "b", "c"]);
    c.same(&["WATCH", "a"]);
    other.same(&["SELECT", "0"]);
    other.same(&["SET", "c", "1"]);
    c.script(
        "
        MULTI
        PING
        EXEC => *-1|
        ",
    );
}

#[test]
fn unwatch_exec_and_discard_forget_watched_keys() {
    let pair = Pair::start();
    let mut c = pair.clients();
    let mut other = pair.clients();
    // UNWATCH.
    c.same(&["WATCH", "k"]);
    c.same(&["UNWATCH"]);
    other.same(&["SET", "k", "1"]);
    c.script("MULTI\nPING\nEXEC => *1|+PONG|");
    // EXEC (even an aborted one) unwatches.
    c.same(&["WATCH", "k"]);
    other.same(&["SET", "k", "2"]);
    c.script("MULTI\nEXEC => *-1|");
    other.same(&["SET", "k", "3"]);
    c.script("MULTI\nPING\nEXEC => *1|+PONG|");
    // DISCARD unwatches.
    c.same(&["WATCH", "k"]);
    c.script("MULTI\nDISCARD");
    other.same(&["SET", "k", "4"]);
    c.script("MULTI\nPING\nEXEC => *1|+PONG|");
    // EXECABORT unwatches.
    c.same(&["WATCH", "k"]);
    c.script("MULTI\nNOSUCH\nEXEC");
    other.same(&["SET", "k", "5"]);
    c.script("MULTI\nPING\nEXEC => *1|+PONG|");
    // EXEC without MULTI keeps the watches.
    c.same(&["WATCH", "k"]);
    c.same(&["EXEC"]);
    other.same(&["SET", "k", "6"]);
    c.script("MULTI\nPING\nEXEC => *-1|");
}

#[test]
fn watch_aborts_when_the_key_expires() {
    let pair = Pair::start();
    let mut c = pair.clients();
    // Redis sets the TTL with SET PX; Larder's branch has plain SET only,
    // so the TTL is set through the library.
    c.theirs.command(&["SET", "k", "v", "PX", "150"]);
    pair.larder
        .shared
        .store
        .set_with_ttl(0, b"k", b"v", Duration::from_millis(150))
        .unwrap();
    c.same(&["WATCH", "k"]);
    std::thread::sleep(Duration::from_millis(300));
    c.same(&["MULTI"]);
    c.same(&["GET", "k"]);
    assert_eq!(c.same(&["EXEC"]), "*-1\r\n");

    // A key still alive at EXEC does not abort it.
    c.theirs.command(&["SET", "k", "v", "PX", "5000"]);
    pair.larder
        .shared
        .store
        .set_with_ttl(0, b"k", b"v", Duration::from_millis(5000))
        .unwrap();
    c.same(&["WATCH", "k"]);
    c.same(&["MULTI"]);
    c.same(&["GET", "k"]);
    assert_eq!(c.same(&["EXEC"]), "*1\r\n$1\r\nv\r\n");

    // A key already expired when watched, still missing at EXEC: no abort.
    c.theirs.command(&["SET", "gone", "v", "PX", "1"]);
    pair.larder
        .shared
        .store
        .set_with_ttl(0, b"gone", b"v", Duration::from_millis(1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    c.same(&["WATCH", "gone"]);
    c.same(&["MULTI"]);
    c.same(&["GET", "gone"]);
    assert_eq!(c.same(&["EXEC"]), "*1\r\n$-1\r\n");
}

#[test]
fn watch_aborts_on_library_writes_and_flushes() {
    let server = TestServer::start();
    let store = &server.shared.store;
    let mut client = server.raw();
    let run = |client: &mut RawClient, key: &str, change: &dyn Fn()| {
        assert_eq!(client.command(&["WATCH", key]), b"+OK\r\n");
        change();
        assert_eq!(client.command(&["MULTI"]), b"+OK\r\n");
        assert_eq!(client.command(&["PING"]), b"+QUEUED\r\n");
        client.command(&["EXEC"])
    };
    let aborted = b"*-1\r\n".to_vec();
    let ran = b"*1\r\n+PONG\r\n".to_vec();

    // Writes through the embedding API count like commands.
    assert_eq!(
        run(&mut client, "k", &|| store.set(0, b"k", b"v").unwrap()),
        aborted
    );
    assert_eq!(
        run(&mut client, "k", &|| assert!(store.del(0, b"k").unwrap())),
        aborted
    );
    store.set(0, b"k", b"v").unwrap();
    assert_eq!(
        run(&mut client, "k", &|| assert!(store
            .expire(0, b"k", Duration::from_secs(60))
            .unwrap())),
        aborted
    );
    // FLUSHDB/FLUSHALL-style clears abort transactions watching keys that
    // existed.
    store.set(0, b"k", b"v").unwrap();
    assert_eq!(
        run(&mut client, "k", &|| store.flush_db(0).unwrap()),
        aborted
    );
    store.set(0, b"k", b"v").unwrap();
    assert_eq!(run(&mut client, "k", &|| store.flush_all()), aborted);
    // Flushing another database leaves this one's watches alone.
    store.set(0, b"k", b"v").unwrap();
    store.set(1, b"k", b"v").unwrap();
    assert_eq!(run(&mut client, "k", &|| store.flush_db(1).unwrap()), ran);
    // A read through the API does not.
    assert_eq!(
        run(&mut client, "k", &|| assert!(store
            .get(0, b"k")
            .unwrap()
            .is_some())),
        ran
    );
}

#[test]
fn client_list_shows_the_transaction() {
    let pair = Pair::start();
    let mut c = pair.clients();
    let mut observer = pair.clients();
    let our_id = String::from_utf8(c.ours.command(&["CLIENT", "ID"])).unwrap();
    let their_id = String::from_utf8(c.theirs.command(&["CLIENT", "ID"])).unwrap();
    let our_id = our_id.trim_start_matches(':').trim_end().to_string();
    let their_id = their_id.trim_start_matches(':').trim_end().to_string();
    c.same(&["MULTI"]);
    c.same(&["SET", "a", "1"]);
    c.same(&["GET", "a"]);
    let fields = |client: &mut RawClient, id: &str| {
        let reply = client.command(&["CLIENT", "LIST", "ID", id]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        let line = text.lines().nth(1).unwrap_or_default().to_string();
        let get = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(&format!("{name}=")).map(str::to_string))
                .unwrap_or_default()
        };
        (get("flags"), get("multi"))
    };
    let ours = fields(&mut observer.ours, &our_id);
    let theirs = fields(&mut observer.theirs, &their_id);
    assert_eq!(ours, theirs);
    assert_eq!(ours, ("x".to_string(), "2".to_string()));
    c.same(&["DISCARD"]);
    let ours = fields(&mut observer.ours, &our_id);
    let theirs = fields(&mut observer.theirs, &their_id);
    assert_eq!(ours, theirs);
    assert_eq!(ours, ("N".to_string(), "-1".to_string()));
}

#[test]
fn redis_crate_atomic_pipelines() {
    let server = TestServer::start();
    for mut con in [server.client(), server.resp3_client()] {
        let (set, value, missing, deleted): ((), String, Option<String>, i64) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg("p")
            .arg("1")
            .cmd("GET")
            .arg("p")
            .cmd("GET")
            .arg("nosuch")
            .cmd("DEL")
            .arg("p")
            .query(&mut con)
            .unwrap();
        assert_eq!((set, value.as_str(), missing, deleted), ((), "1", None, 1));

        // A runtime error inside the transaction surfaces as an error.
        let result: redis::RedisResult<((), ())> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg("p")
            .arg("2")
            .cmd("SELECT")
            .arg("99")
            .query(&mut con);
        assert!(result.is_err());
        let value: String = redis::cmd("GET").arg("p").query(&mut con).unwrap();
        assert_eq!(value, "2");

        // The WATCH-retry helper: the first attempt is spoiled by another
        // connection, the second goes through.
        let mut spoiler = server.client();
        let mut attempts = 0;
        let (value,): (String,) = redis::transaction(&mut con, &["counter"], |con, pipe| {
            attempts += 1;
            let current: Option<String> = redis::cmd("GET").arg("counter").query(con)?;
            if attempts == 1 {
                let _: () = redis::cmd("SET")
                    .arg("counter")
                    .arg("spoiled")
                    .query(&mut spoiler)?;
            }
            let next = format!("{}+", current.unwrap_or_default());
            pipe.cmd("SET")
                .arg("counter")
                .arg(&next)
                .ignore()
                .cmd("GET")
                .arg("counter")
                .query(con)
        })
        .unwrap();
        assert_eq!(attempts, 2);
        assert_eq!(value, "spoiled+");
        let _: () = redis::cmd("DEL").arg("counter").query(&mut con).unwrap();
    }
}

#[test]
fn exec_is_atomic_across_shards() {
    let server = TestServer::start();
    let store = &server.shared.store;
    // Two keys in different shards.
    let a = "a".to_string();
    let b = (0..)
        .map(|i| format!("b{i}"))
        .find(|b| store.shard_index(b.as_bytes()) != store.shard_index(a.as_bytes()))
        .unwrap();
    let url = server.url();
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (url, a, b, stop) = (url.clone(), a.clone(), b.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let value = format!("{w}-{i}");
                    let _: ((), ()) = redis::pipe()
                        .atomic()
                        .cmd("SET")
                        .arg(&a)
                        .arg(&value)
                        .cmd("SET")
                        .arg(&b)
                        .arg(&value)
                        .query(&mut con)
                        .unwrap();
                    i += 1;
                }
                i
            })
        })
        .collect();

    let mut reader = server.client();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut reads = 0;
    let mut distinct = std::collections::HashSet::new();
    while Instant::now() < deadline {
        let (x, y): (Option<String>, Option<String>) = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(&a)
            .cmd("GET")
            .arg(&b)
            .query(&mut reader)
            .unwrap();
        assert_eq!(x, y, "a transaction saw half of another");
        distinct.insert(x);
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let written: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(reads > 50, "only {reads} reads");
    assert!(written > 50, "only {written} writes");
    assert!(distinct.len() > 5, "the reader saw too few states");
}
