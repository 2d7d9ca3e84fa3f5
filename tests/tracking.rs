//! Client-side caching (CLIENT TRACKING) against a real `redis-server`
//! 7.0.15, byte for byte: RESP3 `invalidate` pushes on every kind of write,
//! expiry and flush; BCAST with and without prefixes; OPTIN/OPTOUT with
//! CLIENT CACHING; NOLOOP; RESP2 redirection to a client subscribed to
//! `__redis__:invalidate`; the `tracking-redir-broken` push; CLIENT
//! TRACKINGINFO and GETREDIR; every error text; `tracking-table-max-keys`;
//! the INFO fields.
//!
//! Each test opens its connections in the same order on both servers and
//! sends each the same commands; the replies (and the pushes read after
//! them) must be the same bytes. Client ids differ between the servers, so
//! commands that name an id get each server's own, and ids in replies are
//! compared as `<id>`.
//!
//! Pushes are read without sleeping: Redis queues an invalidation in the
//! tracking client's output before the writer gets its reply, so after the
//! write the tracking client sends PING and every push before the PONG is
//! what the write caused (and nothing before it means nothing was sent).
//! Clients' caches rely on that order: a read sent after another client's
//! write must see the invalidation first.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{encode_command, reply_length, RedisServer, TestServer};

/// Larder and a real Redis. With `TRACKING_TESTS_REDIS_TWICE=1` in the
/// environment, "ours" is a second redis-server: the expectations written
/// in these tests then check themselves against Redis alone.
struct Pair {
    ours: SocketAddr,
    theirs: SocketAddr,
    _larder: Option<TestServer>,
    _redis: Vec<RedisServer>,
}

impl Pair {
    fn start() -> Self {
        let theirs = RedisServer::start();
        if std::env::var_os("TRACKING_TESTS_REDIS_TWICE").is_some() {
            let ours = RedisServer::start();
            return Pair {
                ours: ours.addr,
                theirs: theirs.addr,
                _larder: None,
                _redis: vec![ours, theirs],
            };
        }
        let larder = TestServer::start();
        Pair {
            ours: larder.addr,
            theirs: theirs.addr,
            _larder: Some(larder),
            _redis: vec![theirs],
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let differences = DIFFERENCES.with(|d| std::mem::take(&mut *d.borrow_mut()));
        if !differences.is_empty() && !std::thread::panicking() {
            panic!("Larder and Redis differ:\n{}", differences.join("\n"));
        }
    }
}

thread_local! {
    /// Differences noted with `TRACKING_TESTS_KEEP_GOING=1`, reported when
    /// the test's `Pair` goes.
    static DIFFERENCES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// With `TRACKING_TESTS_KEEP_GOING=1`, a difference between the servers is
/// noted and the test goes on with Redis's reply, so that one run lists
/// every difference of a test (later ones may follow from earlier ones).
fn keep_going() -> bool {
    std::env::var_os("TRACKING_TESTS_KEEP_GOING").is_some()
}

/// How long a reply (or an expected push) may take.
const PATIENCE: Duration = Duration::from_secs(5);

/// One connection to one server; replies byte for byte, read with a deadline.
struct Conn {
    server: &'static str,
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Conn {
    fn connect(addr: SocketAddr, server: &'static str) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            server,
            stream,
            pending: Vec::new(),
        }
    }

    fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.stream
            .write_all(&encode_command(&args))
            .unwrap_or_else(|e| panic!("{}: send failed: {e}", self.server));
    }

    /// The next whole reply or push, or `None` if none comes within `limit`
    /// (or the server closed the connection).
    fn read_within(&mut self, limit: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + limit;
        loop {
            if !self.pending.is_empty() {
                match reply_length(&self.pending) {
                    Ok(Some(length)) => return Some(self.pending.drain(..length).collect()),
                    Ok(None) => {}
                    Err(error) => panic!(
                        "{}: undecodable reply {:?}: {error}",
                        self.server,
                        String::from_utf8_lossy(&self.pending)
                    ),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("{}: read failed: {e}", self.server),
            }
        }
    }

    fn read(&mut self, what: &str) -> Vec<u8> {
        self.read_within(PATIENCE)
            .unwrap_or_else(|| panic!("{}: nothing within {PATIENCE:?} ({what})", self.server))
    }

    fn command(&mut self, args: &[&str]) -> Vec<u8> {
        self.send(args);
        self.read(&args.join(" "))
    }

    fn id(&mut self) -> i64 {
        let reply = self.command(&["CLIENT", "ID"]);
        let text = String::from_utf8_lossy(&reply);
        text.trim()
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: CLIENT ID answered {text:?}", self.server))
    }
}

/// An invalidation: a RESP3 push, or a RESP2 `message` on a subscribed client.
fn is_push(reply: &[u8]) -> bool {
    reply.starts_with(b">") || reply.starts_with(b"*3\r\n$7\r\nmessage\r\n")
}

/// A reply for reading and comparing: `\r\n` as `|`, each id as `<id>`.
fn show(reply: &[u8], ids: &[i64]) -> String {
    let mut text = String::from_utf8_lossy(reply).into_owned();
    for id in ids {
        text = text.replace(&format!(":{id}\r\n"), ":<id>\r\n");
    }
    text.replace("\r\n", "|")
}

/// The same connection on Larder and on Redis.
struct Duo {
    ours: Conn,
    theirs: Conn,
    /// This connection's CLIENT ID on each server.
    id: (i64, i64),
}

impl Duo {
    fn open(pair: &Pair) -> Self {
        let mut ours = Conn::connect(pair.ours, "larder");
        let mut theirs = Conn::connect(pair.theirs, "redis");
        let id = (ours.id(), theirs.id());
        Duo { ours, theirs, id }
    }

    /// A connection that has switched to RESP3 (HELLO's reply differs
    /// between the servers, so it is only checked to be a map).
    fn open_resp3(pair: &Pair) -> Self {
        let mut duo = Self::open(pair);
        duo.hello3();
        duo
    }

    fn compare(&self, ours: &[u8], theirs: &[u8], ids: &[(i64, i64)], what: &str) -> String {
        let our_ids: Vec<i64> = ids.iter().map(|p| p.0).collect();
        let their_ids: Vec<i64> = ids.iter().map(|p| p.1).collect();
        let (ours, theirs) = (show(ours, &our_ids), show(theirs, &their_ids));
        if ours != theirs && keep_going() {
            DIFFERENCES.with(|d| {
                d.borrow_mut()
                    .push(format!("{what}\n  Larder: {ours:?}\n  Redis:  {theirs:?}"))
            });
            return theirs;
        }
        assert_eq!(
            ours, theirs,
            "Larder (left) and Redis (right) differ: {what}"
        );
        ours
    }

    /// Sends `args` to both; the replies must be the same bytes.
    fn same(&mut self, args: &[&str]) -> String {
        self.same_ids(args, &[])
    }

    /// Like `same`, and checks the reply too (`\r\n` written as `|`).
    fn expect(&mut self, args: &[&str], expected: &str) {
        let reply = self.same(args);
        assert_eq!(reply, expected, "{}", args.join(" "));
    }

    /// `same` where `{0}`, `{1}`... in the arguments stand for the ids of
    /// `ids` (each server's own), and those ids in the replies compare as
    /// `<id>`.
    fn same_ids(&mut self, args: &[&str], ids: &[(i64, i64)]) -> String {
        let fill = |pick: fn(&(i64, i64)) -> i64| -> Vec<String> {
            args.iter()
                .map(|arg| {
                    let mut arg = arg.to_string();
                    for (n, id) in ids.iter().enumerate() {
                        arg = arg.replace(&format!("{{{n}}}"), &pick(id).to_string());
                    }
                    arg
                })
                .collect()
        };
        let ours_args = fill(|p| p.0);
        let theirs_args = fill(|p| p.1);
        let ours_args: Vec<&str> = ours_args.iter().map(String::as_str).collect();
        let theirs_args: Vec<&str> = theirs_args.iter().map(String::as_str).collect();
        let ours = self.ours.command(&ours_args);
        let theirs = self.theirs.command(&theirs_args);
        self.compare(&ours, &theirs, ids, &args.join(" "))
    }

    /// The next reply or push on both, within `PATIENCE`.
    fn next(&mut self, what: &str) -> String {
        self.next_ids(what, &[])
    }

    fn next_ids(&mut self, what: &str, ids: &[(i64, i64)]) -> String {
        let ours = self.ours.read_within(PATIENCE);
        let theirs = self.theirs.read_within(PATIENCE);
        let none = b"(nothing)".to_vec();
        self.compare(
            ours.as_deref().unwrap_or(&none),
            theirs.as_deref().unwrap_or(&none),
            ids,
            what,
        )
    }

    /// Sends PING and returns every push that arrives before its reply (the
    /// PING reply itself is compared, not returned).
    fn pushes(&mut self, what: &str) -> String {
        self.pushes_ids(what, &[])
    }

    fn pushes_ids(&mut self, what: &str, ids: &[(i64, i64)]) -> String {
        let collect = |conn: &mut Conn| -> (Vec<u8>, Vec<u8>) {
            conn.send(&["PING"]);
            let mut pushes = Vec::new();
            loop {
                let reply = conn.read(&format!("the PING after {what}"));
                if !is_push(&reply) {
                    return (pushes, reply);
                }
                pushes.extend_from_slice(&reply);
            }
        };
        let (ours, our_pong) = collect(&mut self.ours);
        let (theirs, their_pong) = collect(&mut self.theirs);
        let pushes = self.compare(&ours, &theirs, ids, &format!("pushes after {what}"));
        self.compare(
            &our_pong,
            &their_pong,
            ids,
            &format!("the PING after {what}"),
        );
        pushes
    }
}

/// `>2 invalidate [keys]` as `show` writes it.
fn invalidate(keys: &[&str]) -> String {
    let mut text = format!(">2|$10|invalidate|*{}|", keys.len());
    for key in keys {
        text.push_str(&format!("${}|{key}|", key.len()));
    }
    text
}

const NULL_INVALIDATE: &str = ">2|$10|invalidate|_|";

/// A RESP2 `message` on `__redis__:invalidate` carrying `keys`.
fn message(keys: &[&str]) -> String {
    let mut text = format!("*3|$7|message|$20|__redis__:invalidate|*{}|", keys.len());
    for key in keys {
        text.push_str(&format!("${}|{key}|", key.len()));
    }
    text
}

/// A tracking connection (RESP3, CLIENT TRACKING ON plus `options`) and a
/// plain connection that writes.
fn tracker_and_writer(pair: &Pair, options: &[&str]) -> (Duo, Duo) {
    let mut tracker = Duo::open_resp3(pair);
    let mut args = vec!["CLIENT", "TRACKING", "ON"];
    args.extend_from_slice(options);
    tracker.expect(&args, "+OK|");
    let writer = Duo::open(pair);
    (tracker, writer)
}

// ------------------------------------------------------------ default mode

#[test]
fn a_write_from_another_connection_invalidates_a_key_read_before() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    tracker.expect(&["GET", "cache:user"], "_|");
    writer.expect(&["SET", "cache:user", "v"], "+OK|");
    assert_eq!(
        tracker.next("the invalidation"),
        invalidate(&["cache:user"])
    );
    assert_eq!(tracker.pushes("nothing more"), "");

    // Once invalidated the key is no longer tracked: a second write says nothing.
    writer.expect(&["SET", "cache:user", "w"], "+OK|");
    assert_eq!(tracker.pushes("a write to a key no longer tracked"), "");

    // A key that exists is tracked alike.
    tracker.expect(&["GET", "cache:user"], "$1|w|");
    writer.expect(&["APPEND", "cache:user", "x"], ":2|");
    assert_eq!(tracker.pushes("APPEND"), invalidate(&["cache:user"]));
}

#[test]
fn the_invalidation_reaches_the_tracking_client_before_its_next_reply() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    tracker.expect(&["GET", "k"], "_|");
    writer.expect(&["SET", "k", "1"], "+OK|");
    // A client cache reads GET's reply only after the push: if the push came
    // later, the cache would keep the old value after the new one was read.
    tracker.send_get_expecting_push_first();
}

#[test]
fn a_blocked_tracking_client_still_receives_its_invalidations() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    tracker.expect(&["GET", "k"], "_|");
    tracker.ours.send(&["BLPOP", "jobs", "0"]);
    tracker.theirs.send(&["BLPOP", "jobs", "0"]);
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(
        tracker.next("the invalidation while blocked"),
        invalidate(&["k"])
    );
    writer.expect(&["RPUSH", "jobs", "x"], ":1|");
    assert_eq!(
        tracker.next("the BLPOP reply"),
        "*2|$4|jobs|$1|x|".to_string()
    );
}

impl Duo {
    fn send_get_expecting_push_first(&mut self) {
        for conn in [&mut self.ours, &mut self.theirs] {
            conn.send(&["GET", "k"]);
            let first = conn.read("GET after a write");
            assert_eq!(
                show(&first, &[]),
                invalidate(&["k"]),
                "{}: the push must come before the reply of the next command",
                conn.server
            );
            assert_eq!(
                show(&conn.read("GET's reply"), &[]),
                "$1|1|",
                "{}",
                conn.server
            );
        }
    }
}

#[test]
fn a_key_read_twice_is_invalidated_once() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    writer.expect(&["SET", "k", "0"], "+OK|");
    tracker.expect(&["GET", "k"], "$1|0|");
    tracker.expect(&["GET", "k"], "$1|0|");
    tracker.expect(&["MGET", "k", "k"], "*2|$1|0|$1|0|");
    writer.expect(&["SET", "k", "1"], "+OK|");
    writer.expect(&["SET", "k", "2"], "+OK|");
    assert_eq!(tracker.pushes("two writes"), invalidate(&["k"]));
    // Read again, tracked again.
    tracker.expect(&["GET", "k"], "$1|2|");
    writer.expect(&["INCR", "k"], ":3|");
    assert_eq!(tracker.pushes("INCR"), invalidate(&["k"]));
}

#[test]
fn del_expire_in_the_past_and_other_writes_invalidate() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    // (setup, the tracker's read, the write)
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (&["SET", "k", "v"], &["GET", "k"], &["DEL", "k"]),
        (&["SET", "k", "v"], &["GET", "k"], &["UNLINK", "k"]),
        (&["SET", "k", "v"], &["GET", "k"], &["EXPIRE", "k", "-1"]),
        (&["SET", "k", "v"], &["GET", "k"], &["PEXPIREAT", "k", "1"]),
        (&["SET", "k", "v"], &["GET", "k"], &["EXPIRE", "k", "100"]),
        (
            &["SET", "k", "v", "EX", "100"],
            &["GET", "k"],
            &["PERSIST", "k"],
        ),
        (&["SET", "k", "v"], &["GET", "k"], &["GETDEL", "k"]),
        (
            &["SET", "k", "v"],
            &["GET", "k"],
            &["SETRANGE", "k", "0", "w"],
        ),
        (&["SET", "k", "v"], &["GET", "k"], &["RENAME", "k", "k2"]),
        (&["SET", "k", "v"], &["GET", "k2"], &["RENAME", "k", "k2"]),
        (&["SET", "k", "v"], &["GET", "k2"], &["COPY", "k", "k2"]),
        (
            &["HSET", "h", "f", "v"],
            &["HGET", "h", "f"],
            &["HSET", "h", "g", "w"],
        ),
        (
            &["HSET", "h", "f", "v"],
            &["HGETALL", "h"],
            &["HDEL", "h", "f"],
        ),
        (
            &["RPUSH", "l", "a"],
            &["LRANGE", "l", "0", "-1"],
            &["LPUSH", "l", "b"],
        ),
        (&["RPUSH", "l", "a"], &["LLEN", "l"], &["RPOP", "l"]),
        (&["SADD", "s", "a"], &["SMEMBERS", "s"], &["SADD", "s", "b"]),
        (
            &["SADD", "s", "a"],
            &["SISMEMBER", "s", "a"],
            &["SREM", "s", "a"],
        ),
        (
            &["ZADD", "z", "1", "a"],
            &["ZSCORE", "z", "a"],
            &["ZINCRBY", "z", "1", "a"],
        ),
        (
            &["ZADD", "z", "1", "a"],
            &["ZRANGE", "z", "0", "-1"],
            &["ZADD", "z", "2", "b"],
        ),
        // Every read-only command with keys tracks them, not only GET.
        (&["SET", "k", "v"], &["EXISTS", "k"], &["SET", "k", "w"]),
        (&["SET", "k", "v"], &["STRLEN", "k"], &["SET", "k", "w"]),
        (&["SET", "k", "v"], &["TYPE", "k"], &["SET", "k", "w"]),
        (&["SET", "k", "v"], &["TTL", "k"], &["SET", "k", "w"]),
        (
            &["SET", "k", "v"],
            &["GETRANGE", "k", "0", "0"],
            &["SET", "k", "w"],
        ),
    ];
    for (setup, read, write) in cases {
        let what = format!("{} after {}", write.join(" "), read.join(" "));
        writer.same(&["FLUSHALL"]);
        assert_eq!(tracker.pushes("FLUSHALL"), NULL_INVALIDATE, "{what}");
        writer.same(setup);
        tracker.same(read);
        writer.same(write);
        let pushes = tracker.pushes(&what);
        assert!(
            pushes.starts_with(">2|$10|invalidate|"),
            "no invalidation for {what}: {pushes:?}"
        );
    }
}

#[test]
fn a_write_that_changes_nothing_does_not_invalidate() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    writer.expect(&["SET", "k", "v"], "+OK|");
    tracker.expect(&["GET", "k"], "$1|v|");
    writer.expect(&["SETNX", "k", "w"], ":0|");
    writer.expect(&["DEL", "other"], ":0|");
    writer.expect(&["SET", "k", "w", "NX"], "$-1|");
    assert_eq!(tracker.pushes("writes that changed nothing"), "");
    writer.expect(&["SET", "k", "w", "XX"], "+OK|");
    assert_eq!(tracker.pushes("SET XX"), invalidate(&["k"]));
}

#[test]
fn expiry_by_ttl_invalidates_without_any_access() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    writer.expect(&["SET", "short", "v", "PX", "300"], "+OK|");
    tracker.expect(&["GET", "short"], "$1|v|");
    // Nobody touches the key: active expiry must find it and say so.
    assert_eq!(
        tracker.next("the expiry of a tracked key"),
        invalidate(&["short"])
    );
    assert_eq!(tracker.pushes("the expiry"), "");
}

#[test]
fn a_read_of_an_expired_key_sends_its_invalidation() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    // Another client reads the key once it expired: whichever comes first,
    // that read or active expiry, the tracker hears of it once.
    writer.expect(&["SET", "k", "v", "PX", "100"], "+OK|");
    tracker.expect(&["GET", "k"], "$1|v|");
    for conn in [&mut writer.ours, &mut writer.theirs] {
        let deadline = Instant::now() + PATIENCE;
        while conn.command(&["PTTL", "k"]) != b":-2\r\n" {
            assert!(
                Instant::now() < deadline,
                "{}: k never expired",
                conn.server
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    writer.expect(&["GET", "k"], "$-1|");
    let pushes = tracker.pushes("the expired key read by another client");
    assert_eq!(pushes, invalidate(&["k"]));
}

#[test]
fn flushdb_and_flushall_send_a_null_invalidation_to_every_tracking_client() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    tracker.expect(&["GET", "a"], "_|");
    writer.expect(&["FLUSHDB"], "+OK|");
    assert_eq!(tracker.next("FLUSHDB"), NULL_INVALIDATE);
    assert_eq!(tracker.pushes("FLUSHDB"), "");
    tracker.expect(&["GET", "a"], "_|");
    writer.expect(&["FLUSHALL"], "+OK|");
    assert_eq!(tracker.pushes("FLUSHALL"), NULL_INVALIDATE);
    writer.expect(&["FLUSHALL", "ASYNC"], "+OK|");
    assert_eq!(tracker.pushes("FLUSHALL ASYNC"), NULL_INVALIDATE);
    // Even with nothing tracked, and for another database.
    writer.expect(&["SELECT", "1"], "+OK|");
    writer.expect(&["FLUSHDB", "ASYNC"], "+OK|");
    assert_eq!(tracker.pushes("FLUSHDB of db 1"), NULL_INVALIDATE);
    // The tracker's own flush: reply first, then the push.
    tracker.expect(&["FLUSHDB"], "+OK|");
    assert_eq!(tracker.next("its own FLUSHDB"), NULL_INVALIDATE);
}

#[test]
fn tracking_follows_the_key_name_across_databases_as_redis() {
    // Redis's tracking table holds key names without their database: a
    // write to the same name in another database invalidates too.
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    tracker.expect(&["GET", "k"], "_|");
    writer.expect(&["SELECT", "3"], "+OK|");
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(tracker.pushes("a write in db 3"), invalidate(&["k"]));
}

#[test]
fn mset_of_several_tracked_keys_invalidates_each() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    tracker.expect(&["MGET", "a", "b", "c"], "*3|_|_|_|");
    writer.expect(
        &["MSET", "c", "3", "untracked", "0", "a", "1", "b", "2"],
        "+OK|",
    );
    let expected = [invalidate(&["c"]), invalidate(&["a"]), invalidate(&["b"])].concat();
    assert_eq!(tracker.pushes("MSET"), expected);
    tracker.expect(&["MGET", "a", "b"], "*2|$1|1|$1|2|");
    writer.expect(&["DEL", "b", "a", "nothing"], ":2|");
    assert_eq!(
        tracker.pushes("DEL of two"),
        [invalidate(&["b"]), invalidate(&["a"])].concat()
    );
}

#[test]
fn a_write_by_the_tracking_client_itself_invalidates_after_its_reply() {
    let pair = Pair::start();
    let (mut tracker, _writer) = tracker_and_writer(&pair, &[]);
    tracker.expect(&["GET", "k"], "_|");
    tracker.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(tracker.next("its own write"), invalidate(&["k"]));
    // Inside MULTI the pushes follow EXEC's reply.
    tracker.expect(&["GET", "k"], "$1|1|");
    tracker.expect(&["MULTI"], "+OK|");
    tracker.expect(&["INCR", "k"], "+QUEUED|");
    tracker.expect(&["EXEC"], "*1|:2|");
    assert_eq!(tracker.pushes("its own EXEC"), invalidate(&["k"]));
}

#[test]
fn noloop_suppresses_only_the_clients_own_writes() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &["NOLOOP"]);
    tracker.expect(&["GET", "k"], "_|");
    tracker.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(tracker.pushes("its own write with NOLOOP"), "");
    tracker.expect(&["GET", "k"], "$1|1|");
    writer.expect(&["SET", "k", "2"], "+OK|");
    assert_eq!(tracker.pushes("another client's write"), invalidate(&["k"]));
}

#[test]
fn tracking_off_stops_invalidations_and_reset_turns_tracking_off() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &[]);
    tracker.expect(&["GET", "k"], "_|");
    tracker.expect(&["CLIENT", "TRACKING", "OFF"], "+OK|");
    tracker.expect(&["CLIENT", "TRACKING", "OFF"], "+OK|");
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(tracker.pushes("a write after TRACKING OFF"), "");

    tracker.expect(&["CLIENT", "TRACKING", "ON"], "+OK|");
    tracker.expect(&["GET", "k"], "$1|1|");
    tracker.expect(&["RESET"], "+RESET|");
    tracker.expect(
        &["CLIENT", "TRACKINGINFO"],
        "*6|$5|flags|*1|$3|off|$8|redirect|:-1|$8|prefixes|*0|",
    );
    tracker.expect(&["CLIENT", "GETREDIR"], ":-1|");
    writer.expect(&["SET", "k", "2"], "+OK|");
    assert_eq!(tracker.pushes("a write after RESET"), "");
}

#[test]
fn tracking_in_resp2_without_redirect_sends_nothing() {
    let pair = Pair::start();
    let mut tracker = Duo::open(&pair);
    let mut writer = Duo::open(&pair);
    tracker.expect(&["CLIENT", "TRACKING", "ON"], "+OK|");
    tracker.expect(&["GET", "k"], "$-1|");
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(tracker.pushes("a write, RESP2 without redirect"), "");
    tracker.expect(
        &["CLIENT", "TRACKINGINFO"],
        "*6|$5|flags|*1|$2|on|$8|redirect|:0|$8|prefixes|*0|",
    );
}

/// The protocol is looked at when an invalidation is sent, as Redis's
/// sendTrackingMessage does: keys read in RESP2 are invalidated by pushes
/// once the client switched to RESP3, and a client back in RESP2 without
/// REDIRECT gets nothing (its keys are still dropped from the table).
#[test]
fn invalidations_follow_the_protocol_hello_switches_to() {
    let pair = Pair::start();
    let mut tracker = Duo::open(&pair);
    let mut writer = Duo::open(&pair);
    tracker.expect(&["CLIENT", "TRACKING", "ON"], "+OK|");
    tracker.expect(&["GET", "k"], "$-1|");
    tracker.expect(&["GET", "k2"], "$-1|");
    tracker.hello3();
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(
        tracker.next("the invalidation after HELLO 3"),
        invalidate(&["k"])
    );
    assert_eq!(tracker.pushes("nothing more"), "");
    // Back to RESP2: a tracked key's write sends nothing, and forgets it.
    tracker.expect(&["GET", "k"], "$1|1|");
    let hello2 = |conn: &mut Conn| {
        let reply = conn.command(&["HELLO", "2"]);
        assert!(
            reply.starts_with(b"*"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    };
    hello2(&mut tracker.ours);
    hello2(&mut tracker.theirs);
    writer.expect(&["SET", "k", "2"], "+OK|");
    writer.expect(&["SET", "k2", "2"], "+OK|");
    assert_eq!(tracker.pushes("writes while in RESP2"), "");
    tracker.hello3();
    writer.expect(&["SET", "k", "3"], "+OK|");
    assert_eq!(tracker.pushes("a write to a key invalidated in RESP2"), "");
    // Read again in RESP3: invalidated again.
    tracker.expect(&["GET", "k"], "$1|3|");
    writer.expect(&["DEL", "k"], ":1|");
    assert_eq!(tracker.next("the invalidation of DEL"), invalidate(&["k"]));
    tracker.expect(
        &["CLIENT", "TRACKINGINFO"],
        "%3|$5|flags|~1|$2|on|$8|redirect|:0|$8|prefixes|*0|",
    );
}

/// BCAST alike: turned on in RESP2 (nothing sent), announced as pushes
/// after HELLO 3.
#[test]
fn bcast_invalidations_follow_the_protocol_hello_switches_to() {
    let pair = Pair::start();
    let mut tracker = Duo::open(&pair);
    let mut writer = Duo::open(&pair);
    tracker.expect(
        &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:"],
        "+OK|",
    );
    writer.expect(&["SET", "user:1", "a"], "+OK|");
    assert_eq!(tracker.pushes("a write while in RESP2"), "");
    tracker.hello3();
    writer.expect(&["SET", "user:2", "b"], "+OK|");
    writer.expect(&["SET", "other", "b"], "+OK|");
    assert_eq!(
        tracker.next("the broadcast after HELLO 3"),
        invalidate(&["user:2"])
    );
    assert_eq!(tracker.pushes("nothing more"), "");
}

/// With REDIRECT, the target's protocol when the invalidation is sent
/// decides: a RESP3 target gets pushes, the same target after HELLO 2
/// (allowed while subscribed in RESP3, not in RESP2) gets `message`s.
#[test]
fn redirected_invalidations_follow_the_targets_protocol() {
    let pair = Pair::start();
    let mut target = Duo::open_resp3(&pair);
    let mut tracker = Duo::open(&pair);
    let mut writer = Duo::open(&pair);
    target.expect(
        &["SUBSCRIBE", "__redis__:invalidate"],
        ">3|$9|subscribe|$20|__redis__:invalidate|:1|",
    );
    let ids = [target.id];
    assert_eq!(
        tracker.same_ids(&["CLIENT", "TRACKING", "ON", "REDIRECT", "{0}"], &ids),
        "+OK|"
    );
    tracker.expect(&["GET", "k"], "$-1|");
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(target.next("the push in RESP3"), invalidate(&["k"]));
    for conn in [&mut target.ours, &mut target.theirs] {
        let reply = conn.command(&["HELLO", "2"]);
        assert!(
            reply.starts_with(b"*"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    tracker.expect(&["GET", "k"], "$1|1|");
    writer.expect(&["SET", "k", "2"], "+OK|");
    assert_eq!(target.next("the message after HELLO 2"), message(&["k"]));
    // Subscribed in RESP2 now: HELLO is refused as in Redis.
    target.same(&["HELLO", "3"]);
}

// ------------------------------------------------------------------- BCAST

#[test]
fn bcast_without_prefix_announces_every_write_grouped_and_sorted() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &["BCAST"]);
    // Nothing read, and yet every written key is announced; one push per
    // prefix per event-loop turn, its keys sorted and each once.
    writer.expect(&["MSET", "z", "1", "b", "2", "a", "3", "b", "4"], "+OK|");
    assert_eq!(tracker.pushes("MSET"), invalidate(&["a", "b", "z"]));
    writer.expect(&["SET", "z", "1"], "+OK|");
    writer.expect(&["DEL", "a", "nothing"], ":1|");
    assert_eq!(
        tracker.pushes("SET then DEL"),
        [invalidate(&["z"]), invalidate(&["a"])].concat()
    );
    tracker.expect(&["SET", "mine", "1"], "+OK|");
    assert_eq!(tracker.next("its own write"), invalidate(&["mine"]));
    writer.expect(&["FLUSHALL"], "+OK|");
    assert_eq!(tracker.pushes("FLUSHALL"), NULL_INVALIDATE);
    tracker.expect(
        &["CLIENT", "TRACKINGINFO"],
        "%3|$5|flags|~2|$2|on|$5|bcast|$8|redirect|:0|$8|prefixes|*1|$0||",
    );
}

#[test]
fn bcast_with_several_prefixes_announces_only_matching_keys() {
    let pair = Pair::start();
    let (mut tracker, mut writer) =
        tracker_and_writer(&pair, &["BCAST", "PREFIX", "user:", "PREFIX", "item:"]);
    writer.expect(&["SET", "user:1", "a"], "+OK|");
    writer.expect(&["SET", "other", "a"], "+OK|");
    writer.expect(
        &[
            "MSET", "user:3", "a", "item:1", "b", "user:2", "c", "x", "y",
        ],
        "+OK|",
    );
    assert_eq!(
        tracker.pushes("writes under two prefixes"),
        [
            invalidate(&["user:1"]),
            invalidate(&["item:1"]),
            invalidate(&["user:2", "user:3"])
        ]
        .concat()
    );
    writer.expect(&["DEL", "user:1", "item:1", "other"], ":3|");
    assert_eq!(
        tracker.pushes("DEL"),
        [invalidate(&["item:1"]), invalidate(&["user:1"])].concat()
    );
    tracker.expect(
        &["CLIENT", "TRACKINGINFO"],
        "%3|$5|flags|~2|$2|on|$5|bcast|$8|redirect|:0|$8|prefixes|*2|$5|item:|$5|user:|",
    );
    // A second client with an overlapping prefix of its own.
    let mut other = Duo::open_resp3(&pair);
    other.expect(
        &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user"],
        "+OK|",
    );
    writer.expect(&["SET", "user:9", "z"], "+OK|");
    assert_eq!(tracker.pushes("SET user:9"), invalidate(&["user:9"]));
    assert_eq!(other.pushes("SET user:9"), invalidate(&["user:9"]));
    writer.expect(&["SET", "username", "z"], "+OK|");
    assert_eq!(tracker.pushes("SET username"), "");
    assert_eq!(other.pushes("SET username"), invalidate(&["username"]));
}

#[test]
fn bcast_with_noloop_and_its_own_writes() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &["BCAST", "NOLOOP", "PREFIX", "p"]);
    tracker.expect(&["SET", "p1", "1"], "+OK|");
    assert_eq!(tracker.pushes("its own write with NOLOOP"), "");
    writer.expect(&["SET", "p1", "2"], "+OK|");
    assert_eq!(tracker.pushes("another's write"), invalidate(&["p1"]));
}

#[test]
fn bcast_prefix_overlaps_are_refused_with_redis_error_text() {
    let pair = Pair::start();
    let mut c = Duo::open_resp3(&pair);
    c.script(
        "CLIENT TRACKING ON BCAST PREFIX ab PREFIX a
         => -ERR Prefix 'ab' overlaps with another provided prefix 'a'. Prefixes for a single client must not overlap.|
         CLIENT TRACKING ON BCAST PREFIX a PREFIX ab
         => -ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single client must not overlap.|
         CLIENT TRACKING ON BCAST PREFIX x PREFIX x
         => -ERR Prefix 'x' overlaps with another provided prefix 'x'. Prefixes for a single client must not overlap.|
         CLIENT TRACKING ON BCAST PREFIX ab => +OK|
         CLIENT TRACKING ON BCAST PREFIX a
         => -ERR Prefix 'a' overlaps with an existing prefix 'ab'. Prefixes for a single client must not overlap.|
         CLIENT TRACKING ON BCAST PREFIX abc
         => -ERR Prefix 'abc' overlaps with an existing prefix 'ab'. Prefixes for a single client must not overlap.|
         CLIENT TRACKING ON BCAST PREFIX c PREFIX ab
         => -ERR Prefix 'ab' overlaps with an existing prefix 'ab'. Prefixes for a single client must not overlap.|
         # A refused command adds none of its prefixes.
         CLIENT TRACKINGINFO => %3|$5|flags|~2|$2|on|$5|bcast|$8|redirect|:0|$8|prefixes|*1|$2|ab|
         CLIENT TRACKING ON BCAST PREFIX d PREFIX c => +OK|
         CLIENT TRACKINGINFO => %3|$5|flags|~2|$2|on|$5|bcast|$8|redirect|:0|$8|prefixes|*3|$2|ab|$1|c|$1|d|
         CLIENT TRACKING ON BCAST PREFIX dd
         => -ERR Prefix 'dd' overlaps with an existing prefix 'd'. Prefixes for a single client must not overlap.|
         # ON BCAST with no PREFIX adds the empty prefix without a check (as Redis).
         CLIENT TRACKING ON BCAST => +OK|
         CLIENT TRACKINGINFO => %3|$5|flags|~2|$2|on|$5|bcast|$8|redirect|:0|$8|prefixes|*4|$0||$2|ab|$1|c|$1|d|
         CLIENT TRACKING ON BCAST PREFIX e
         => -ERR Prefix 'e' overlaps with an existing prefix ''. Prefixes for a single client must not overlap.|
         CLIENT TRACKING OFF => +OK|
         CLIENT TRACKINGINFO => %3|$5|flags|~1|$3|off|$8|redirect|:-1|$8|prefixes|*0|",
    );
}

impl Duo {
    /// One command per line through `same`; `=> reply` (on the same line or
    /// the next) also checks the reply, `\r\n` written as `|`. `#` lines
    /// are comments.
    fn script(&mut self, script: &str) {
        let mut lines = script
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .peekable();
        while let Some(line) = lines.next() {
            let (command, mut expected) = match line.split_once("=>") {
                Some((command, expected)) => (command.trim(), Some(expected.trim().to_string())),
                None => (line, None),
            };
            if expected.is_none() {
                if let Some(next) = lines.peek() {
                    if let Some(rest) = next.strip_prefix("=>") {
                        expected = Some(rest.trim().to_string());
                        lines.next();
                    }
                }
            }
            let args: Vec<&str> = command.split_whitespace().collect();
            let reply = self.same(&args);
            if let Some(expected) = expected {
                assert_eq!(reply, expected, "{command}");
            }
        }
    }
}

// ---------------------------------------------------------- OPTIN / OPTOUT

#[test]
fn optin_tracks_only_the_read_right_after_caching_yes() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &["OPTIN"]);
    tracker.expect(&["GET", "k1"], "_|");
    tracker.expect(&["CLIENT", "CACHING", "YES"], "+OK|");
    tracker.expect(&["GET", "k2"], "_|");
    tracker.expect(&["GET", "k3"], "_|");
    writer.expect(&["MSET", "k1", "1", "k2", "2", "k3", "3"], "+OK|");
    assert_eq!(tracker.pushes("MSET"), invalidate(&["k2"]));
    // Any command in between uses up CACHING YES, even PING.
    tracker.expect(&["CLIENT", "CACHING", "YES"], "+OK|");
    tracker.expect(&["PING"], "+PONG|");
    tracker.expect(&["GET", "k3"], "$1|3|");
    writer.expect(&["SET", "k3", "4"], "+OK|");
    assert_eq!(tracker.pushes("SET k3"), "");
    // CACHING YES before MULTI covers the whole transaction.
    tracker.expect(&["CLIENT", "CACHING", "YES"], "+OK|");
    tracker.expect(&["MULTI"], "+OK|");
    tracker.expect(&["GET", "k1"], "+QUEUED|");
    tracker.expect(&["GET", "k2"], "+QUEUED|");
    tracker.expect(&["EXEC"], "*2|$1|1|$1|2|");
    writer.expect(&["MSET", "k1", "1", "k2", "2", "k3", "3"], "+OK|");
    assert_eq!(
        tracker.pushes("MSET after EXEC"),
        [invalidate(&["k1"]), invalidate(&["k2"])].concat()
    );
    tracker.expect(
        &["CLIENT", "CACHING", "NO"],
        "-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.|",
    );
    tracker.expect(&["CLIENT", "CACHING", "maybe"], "-ERR syntax error|");
    tracker.expect(
        &["CLIENT", "TRACKINGINFO"],
        "%3|$5|flags|~2|$2|on|$5|optin|$8|redirect|:0|$8|prefixes|*0|",
    );
}

#[test]
fn optout_tracks_every_read_but_the_one_after_caching_no() {
    let pair = Pair::start();
    let (mut tracker, mut writer) = tracker_and_writer(&pair, &["OPTOUT"]);
    writer.expect(&["MSET", "k1", "1", "k2", "2", "k3", "3"], "+OK|");
    tracker.expect(&["GET", "k1"], "$1|1|");
    tracker.expect(&["CLIENT", "CACHING", "NO"], "+OK|");
    tracker.expect(&["GET", "k2"], "$1|2|");
    tracker.expect(&["GET", "k3"], "$1|3|");
    writer.expect(&["MSET", "k1", "1", "k2", "2", "k3", "3"], "+OK|");
    assert_eq!(
        tracker.pushes("MSET"),
        [invalidate(&["k1"]), invalidate(&["k3"])].concat()
    );
    tracker.expect(
        &["CLIENT", "CACHING", "YES"],
        "-ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.|",
    );
    tracker.expect(
        &["CLIENT", "TRACKINGINFO"],
        "%3|$5|flags|~2|$2|on|$6|optout|$8|redirect|:0|$8|prefixes|*0|",
    );
}

// ------------------------------------------------------------------ errors

#[test]
fn tracking_errors_match_redis() {
    let pair = Pair::start();
    let mut c = Duo::open(&pair);
    c.script(
        "CLIENT CACHING YES
         => -ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled|
         CLIENT CACHING NO
         => -ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled|
         CLIENT CACHING => -ERR wrong number of arguments for 'client|caching' command|
         CLIENT TRACKING => -ERR wrong number of arguments for 'client|tracking' command|
         CLIENT TRACKING MAYBE => -ERR syntax error|
         CLIENT TRACKING ON FOO => -ERR syntax error|
         CLIENT TRACKING ON BCAST PREFIX => -ERR syntax error|
         CLIENT TRACKING ON REDIRECT => -ERR syntax error|
         CLIENT TRACKING ON OPTIN OPTOUT => -ERR You can't specify both OPTIN mode and OPTOUT mode|
         CLIENT TRACKING ON BCAST OPTIN => -ERR OPTIN and OPTOUT are not compatible with BCAST|
         CLIENT TRACKING ON PREFIX a => -ERR PREFIX option requires BCAST mode to be enabled|
         CLIENT TRACKING ON REDIRECT 999999 => -ERR The client ID you want redirect to does not exist|
         CLIENT TRACKING ON REDIRECT 0 => -ERR The client ID you want redirect to does not exist|
         CLIENT TRACKING ON REDIRECT abc => -ERR value is not an integer or out of range|
         CLIENT TRACKINGINFO x => -ERR wrong number of arguments for 'client|trackinginfo' command|
         CLIENT GETREDIR x => -ERR wrong number of arguments for 'client|getredir' command|
         # None of those turned tracking on.
         CLIENT TRACKINGINFO => *6|$5|flags|*1|$3|off|$8|redirect|:-1|$8|prefixes|*0|
         # Changing mode while on: BCAST and OPTIN/OPTOUT need OFF first.
         CLIENT TRACKING ON OPTIN => +OK|
         CLIENT TRACKING ON OPTOUT
         => -ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.|
         CLIENT TRACKING ON BCAST
         => -ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.|
         CLIENT TRACKINGINFO => *6|$5|flags|*2|$2|on|$5|optin|$8|redirect|:0|$8|prefixes|*0|
         # ON again without a mode is allowed, and sets the flags afresh.
         CLIENT TRACKING ON NOLOOP => +OK|
         CLIENT TRACKINGINFO => *6|$5|flags|*2|$2|on|$6|noloop|$8|redirect|:0|$8|prefixes|*0|
         CLIENT TRACKING ON OPTOUT => +OK|
         CLIENT CACHING maybe => -ERR syntax error|
         CLIENT TRACKING OFF => +OK|
         CLIENT TRACKING ON BCAST => +OK|
         CLIENT TRACKING ON
         => -ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.|
         CLIENT TRACKING ON BCAST OPTOUT => -ERR OPTIN and OPTOUT are not compatible with BCAST|
         # Tracking is on, in neither mode.
         CLIENT CACHING YES => -ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.|
         CLIENT CACHING NO => -ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.|
         # Keywords are case-insensitive.
         client tracking off => +OK|
         client tracking on optin noloop => +OK|
         CLIENT TRACKINGINFO => *6|$5|flags|*3|$2|on|$5|optin|$6|noloop|$8|redirect|:0|$8|prefixes|*0|",
    );
}

// --------------------------------------------- TRACKINGINFO, GETREDIR, redirect

#[test]
fn trackinginfo_and_getredir_in_resp2_and_resp3() {
    let pair = Pair::start();
    let target = Duo::open(&pair);
    let mut c = Duo::open(&pair);
    let ids = [target.id];
    c.expect(&["CLIENT", "GETREDIR"], ":-1|");
    c.expect(
        &["CLIENT", "TRACKINGINFO"],
        "*6|$5|flags|*1|$3|off|$8|redirect|:-1|$8|prefixes|*0|",
    );
    c.expect(&["CLIENT", "TRACKING", "ON"], "+OK|");
    c.expect(&["CLIENT", "GETREDIR"], ":0|");
    assert_eq!(
        c.same_ids(&["CLIENT", "TRACKING", "ON", "REDIRECT", "{0}"], &ids),
        "+OK|"
    );
    assert_eq!(c.same_ids(&["CLIENT", "GETREDIR"], &ids), ":<id>|");
    assert_eq!(
        c.same_ids(&["CLIENT", "TRACKINGINFO"], &ids),
        "*6|$5|flags|*1|$2|on|$8|redirect|:<id>|$8|prefixes|*0|"
    );
    c.expect(&["CLIENT", "TRACKING", "OFF"], "+OK|");
    assert_eq!(
        c.same_ids(
            &[
                "CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP", "PREFIX", "b", "PREFIX", "a",
                "REDIRECT", "{0}"
            ],
            &ids
        ),
        "+OK|"
    );
    assert_eq!(
        c.same_ids(&["CLIENT", "TRACKINGINFO"], &ids),
        "*6|$5|flags|*3|$2|on|$5|bcast|$6|noloop|$8|redirect|:<id>|$8|prefixes|*2|$1|a|$1|b|"
    );
    c.hello3();
    assert_eq!(
        c.same_ids(&["CLIENT", "TRACKINGINFO"], &ids),
        "%3|$5|flags|~3|$2|on|$5|bcast|$6|noloop|$8|redirect|:<id>|$8|prefixes|*2|$1|a|$1|b|"
    );
    assert_eq!(c.same_ids(&["CLIENT", "GETREDIR"], &ids), ":<id>|");
    // Redirecting to itself is allowed.
    c.expect(&["CLIENT", "TRACKING", "OFF"], "+OK|");
    let own = [c.id];
    assert_eq!(
        c.same_ids(&["CLIENT", "TRACKING", "ON", "REDIRECT", "{0}"], &own),
        "+OK|"
    );
    assert_eq!(c.same_ids(&["CLIENT", "GETREDIR"], &own), ":<id>|");
}

impl Duo {
    /// `HELLO 3`'s reply differs between servers (id, version): only its
    /// type is compared.
    fn hello3(&mut self) {
        for conn in [&mut self.ours, &mut self.theirs] {
            let reply = conn.command(&["HELLO", "3"]);
            assert!(
                reply.starts_with(b"%"),
                "{}: {:?}",
                conn.server,
                String::from_utf8_lossy(&reply)
            );
        }
    }
}

#[test]
fn resp2_redirection_to_a_client_subscribed_to_redis_invalidate() {
    let pair = Pair::start();
    let mut listener = Duo::open(&pair);
    let mut tracker = Duo::open(&pair);
    let mut writer = Duo::open(&pair);
    let ids = [listener.id];
    listener.expect(
        &["SUBSCRIBE", "__redis__:invalidate"],
        "*3|$9|subscribe|$20|__redis__:invalidate|:1|",
    );
    assert_eq!(
        tracker.same_ids(&["CLIENT", "TRACKING", "ON", "REDIRECT", "{0}"], &ids),
        "+OK|"
    );
    tracker.expect(&["GET", "k1"], "$-1|");
    tracker.expect(&["MGET", "k2", "k3"], "*2|$-1|$-1|");
    writer.expect(&["MSET", "k1", "1", "k2", "2", "k3", "3"], "+OK|");
    assert_eq!(
        listener.pushes("MSET"),
        [message(&["k1"]), message(&["k2"]), message(&["k3"])].concat()
    );
    assert_eq!(tracker.pushes("MSET (the tracker itself)"), "");
    // A flush is a null invalidation: RESP2's null bulk.
    tracker.expect(&["GET", "k1"], "$1|1|");
    writer.expect(&["FLUSHALL"], "+OK|");
    assert_eq!(
        listener.pushes("FLUSHALL"),
        "*3|$7|message|$20|__redis__:invalidate|$-1|"
    );
    // The tracker's own write goes to the listener too.
    tracker.expect(&["GET", "k1"], "$-1|");
    tracker.expect(&["SET", "k1", "x"], "+OK|");
    assert_eq!(listener.pushes("the tracker's own write"), message(&["k1"]));
    assert_eq!(tracker.pushes("its own write"), "");
}

#[test]
fn resp2_redirection_with_bcast() {
    let pair = Pair::start();
    let mut listener = Duo::open(&pair);
    let mut tracker = Duo::open(&pair);
    let mut writer = Duo::open(&pair);
    let ids = [listener.id];
    listener.same(&["SUBSCRIBE", "__redis__:invalidate"]);
    assert_eq!(
        tracker.same_ids(
            &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "REDIRECT", "{0}"],
            &ids
        ),
        "+OK|"
    );
    writer.expect(&["MSET", "a2", "1", "b", "2", "a1", "3"], "+OK|");
    assert_eq!(listener.pushes("MSET"), message(&["a1", "a2"]));
}

#[test]
fn redirection_to_a_resp3_client_that_is_not_subscribed() {
    let pair = Pair::start();
    let mut listener = Duo::open_resp3(&pair);
    let mut tracker = Duo::open(&pair);
    let mut writer = Duo::open(&pair);
    let ids = [listener.id];
    assert_eq!(
        tracker.same_ids(&["CLIENT", "TRACKING", "ON", "REDIRECT", "{0}"], &ids),
        "+OK|"
    );
    tracker.expect(&["GET", "k"], "$-1|");
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(listener.pushes("SET"), invalidate(&["k"]));
}

#[test]
fn redirection_to_a_resp2_client_that_is_not_subscribed_sends_nothing() {
    let pair = Pair::start();
    let mut listener = Duo::open(&pair);
    let mut tracker = Duo::open_resp3(&pair);
    let mut writer = Duo::open(&pair);
    let ids = [listener.id];
    assert_eq!(
        tracker.same_ids(&["CLIENT", "TRACKING", "ON", "REDIRECT", "{0}"], &ids),
        "+OK|"
    );
    tracker.expect(&["GET", "k"], "_|");
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(listener.pushes("SET"), "");
    assert_eq!(tracker.pushes("SET"), "");
}

/// Waits until `id` is gone from CLIENT LIST on both servers.
fn wait_until_gone(admin: &mut Duo, id: (i64, i64)) {
    for (conn, id) in [(&mut admin.ours, id.0), (&mut admin.theirs, id.1)] {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let list = conn.command(&["CLIENT", "LIST"]);
            let list = String::from_utf8_lossy(&list);
            if !list.lines().any(|line| line.contains(&format!("id={id} "))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: client {id} still listed: {list}",
                conn.server
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_resp3_tracker_hears_when_its_redirect_client_is_gone() {
    let pair = Pair::start();
    let listener = Duo::open(&pair);
    let mut tracker = Duo::open_resp3(&pair);
    let mut writer = Duo::open(&pair);
    let ids = [listener.id];
    assert_eq!(
        tracker.same_ids(&["CLIENT", "TRACKING", "ON", "REDIRECT", "{0}"], &ids),
        "+OK|"
    );
    tracker.expect(&["GET", "k"], "_|");
    drop(listener);
    wait_until_gone(&mut writer, ids[0]);
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(
        tracker.pushes_ids("a write after the redirect client left", &ids),
        ">2|$21|tracking-redir-broken|:<id>|"
    );
    assert_eq!(
        tracker.same_ids(&["CLIENT", "TRACKINGINFO"], &ids),
        "%3|$5|flags|~2|$2|on|$15|broken_redirect|$8|redirect|:<id>|$8|prefixes|*0|"
    );
    assert_eq!(tracker.same_ids(&["CLIENT", "GETREDIR"], &ids), ":<id>|");
    // Every later invalidation says so again.
    tracker.expect(&["GET", "k"], "$1|1|");
    writer.expect(&["SET", "k", "2"], "+OK|");
    assert_eq!(
        tracker.pushes_ids("a second write", &ids),
        ">2|$21|tracking-redir-broken|:<id>|"
    );
}

#[test]
fn a_resp2_tracker_whose_redirect_client_is_gone_hears_nothing() {
    let pair = Pair::start();
    let mut listener = Duo::open(&pair);
    let mut tracker = Duo::open(&pair);
    let mut writer = Duo::open(&pair);
    let ids = [listener.id];
    listener.same(&["SUBSCRIBE", "__redis__:invalidate"]);
    assert_eq!(
        tracker.same_ids(&["CLIENT", "TRACKING", "ON", "REDIRECT", "{0}"], &ids),
        "+OK|"
    );
    tracker.expect(&["GET", "k"], "$-1|");
    drop(listener);
    wait_until_gone(&mut writer, ids[0]);
    writer.expect(&["SET", "k", "1"], "+OK|");
    assert_eq!(tracker.pushes("a write after the redirect client left"), "");
    assert_eq!(
        tracker.same_ids(&["CLIENT", "TRACKINGINFO"], &ids),
        "*6|$5|flags|*2|$2|on|$15|broken_redirect|$8|redirect|:<id>|$8|prefixes|*0|"
    );
    // Switching to RESP3 afterwards, the next invalidation reports it.
    tracker.hello3();
    tracker.expect(&["GET", "k"], "$1|1|");
    writer.expect(&["SET", "k", "2"], "+OK|");
    assert_eq!(
        tracker.pushes_ids("a write once in RESP3", &ids),
        ">2|$21|tracking-redir-broken|:<id>|"
    );
}

// ------------------------------------------------- tracking-table-max-keys

/// Reads pushes until `count` keys have been invalidated (or `PATIENCE`
/// passes), returning the keys in order.
fn invalidated_keys(conn: &mut Conn, count: usize) -> Vec<String> {
    let mut keys = Vec::new();
    while keys.len() < count {
        let Some(reply) = conn.read_within(PATIENCE) else {
            panic!(
                "{}: only {} invalidations of {count}: {keys:?}",
                conn.server,
                keys.len()
            );
        };
        keys.extend(push_keys(&reply).unwrap_or_else(|| {
            panic!(
                "{}: not an invalidation: {:?}",
                conn.server,
                String::from_utf8_lossy(&reply)
            )
        }));
    }
    keys
}

/// The keys of a `>2 invalidate *n ...` push.
fn push_keys(reply: &[u8]) -> Option<Vec<String>> {
    let text = String::from_utf8_lossy(reply);
    let rest = text.strip_prefix(">2\r\n$10\r\ninvalidate\r\n*")?;
    let mut parts = rest.split("\r\n");
    let n: usize = parts.next()?.parse().ok()?;
    let keys: Vec<String> = parts
        .skip(1)
        .step_by(2)
        .take(n)
        .map(str::to_string)
        .collect();
    (keys.len() == n).then_some(keys)
}

fn info_field(conn: &mut Conn, section: &str, field: &str) -> i64 {
    let reply = conn.command(&["INFO", section]);
    let text = String::from_utf8_lossy(&reply);
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}: no {field} in INFO {section}: {text}", conn.server))
}

/// Redis evicts keys at random from a full tracking table, so the test
/// checks what must hold on any server: the client hears of exactly the
/// keys dropped from the table (20 tracked, room for 10: 10 of them, all
/// different), the table then holds 10 keys, and writing every key
/// invalidates exactly the other 10.
fn tracking_table_max_keys_on(addr: SocketAddr, server: &'static str) {
    let mut admin = Conn::connect(addr, server);
    let mut tracker = Conn::connect(addr, server);
    let run = |conn: &mut Conn, args: &[&str], expected: &str| {
        let reply = show(&conn.command(args), &[]);
        assert_eq!(reply, expected, "{server}: {}", args.join(" "));
    };
    run(
        &mut admin,
        &["CONFIG", "SET", "tracking-table-max-keys", "10"],
        "+OK|",
    );
    run(
        &mut admin,
        &["CONFIG", "GET", "tracking-table-max-keys"],
        "*2|$23|tracking-table-max-keys|$2|10|",
    );
    assert!(tracker.command(&["HELLO", "3"]).starts_with(b"%"));
    run(&mut tracker, &["CLIENT", "TRACKING", "ON"], "+OK|");
    let all: Vec<String> = (0..20).map(|i| format!("key:{i}")).collect();
    let mut pushes = Vec::new();
    for key in &all {
        tracker.send(&["GET", key]);
        loop {
            let reply = tracker.read("GET");
            if reply == b"_\r\n" {
                break;
            }
            pushes.extend(push_keys(&reply).unwrap_or_else(|| {
                panic!(
                    "{server}: GET {key} answered {:?}",
                    String::from_utf8_lossy(&reply)
                )
            }));
        }
    }
    if pushes.len() < 10 {
        let more = invalidated_keys(&mut tracker, 10 - pushes.len());
        pushes.extend(more);
    }
    let mut evicted = pushes.clone();
    evicted.sort();
    evicted.dedup();
    assert_eq!(evicted.len(), 10, "{server}: evicted keys {pushes:?}");
    assert!(
        evicted.iter().all(|key| all.contains(key)),
        "{server}: evicted {evicted:?}"
    );
    assert_eq!(
        info_field(&mut admin, "stats", "tracking_total_keys"),
        10,
        "{server}"
    );

    // Nothing more comes, and writing every key invalidates the 10 left.
    let mut mset = vec!["MSET"];
    for key in &all {
        mset.push(key);
        mset.push("v");
    }
    run(&mut admin, &mset, "+OK|");
    let mut rest = invalidated_keys(&mut tracker, 10);
    rest.sort();
    let expected: Vec<String> = all
        .iter()
        .filter(|k| !evicted.contains(k))
        .cloned()
        .collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(
        rest, expected,
        "{server}: after MSET (evicted before: {evicted:?})"
    );
    run(&mut tracker, &["PING"], "+PONG|");
    assert_eq!(
        info_field(&mut admin, "stats", "tracking_total_keys"),
        0,
        "{server}"
    );
}

#[test]
fn tracking_table_max_keys_evicts_and_invalidates_on_redis() {
    let redis = RedisServer::start();
    tracking_table_max_keys_on(redis.addr, "redis");
}

#[test]
fn tracking_table_max_keys_evicts_and_invalidates_on_larder() {
    let larder = TestServer::start();
    tracking_table_max_keys_on(larder.addr, "larder");
}

// -------------------------------------------------------------------- INFO

#[test]
fn info_reports_tracking_clients_keys_items_and_prefixes_as_redis() {
    let pair = Pair::start();
    let mut admin = Duo::open(&pair);
    let mut a = Duo::open_resp3(&pair);
    let mut b = Duo::open_resp3(&pair);
    let mut c = Duo::open_resp3(&pair);
    let mut d = Duo::open_resp3(&pair);
    let fields = [
        ("clients", "tracking_clients"),
        ("stats", "tracking_total_keys"),
        ("stats", "tracking_total_items"),
        ("stats", "tracking_total_prefixes"),
    ];
    let snapshot = |admin: &mut Duo, expected: [i64; 4], when: &str| {
        for ((section, field), expected) in fields.iter().zip(expected) {
            let ours = info_field(&mut admin.ours, section, field);
            let theirs = info_field(&mut admin.theirs, section, field);
            assert_eq!(
                (ours, theirs),
                (expected, expected),
                "{field} (Larder, Redis) {when}"
            );
        }
    };
    snapshot(&mut admin, [0, 0, 0, 0], "before any tracking");
    a.expect(&["CLIENT", "TRACKING", "ON"], "+OK|");
    b.expect(&["CLIENT", "TRACKING", "ON"], "+OK|");
    snapshot(
        &mut admin,
        [2, 0, 0, 0],
        "with two clients tracking nothing yet",
    );
    a.expect(&["MGET", "x", "y"], "*2|_|_|");
    b.expect(&["GET", "x"], "_|");
    snapshot(&mut admin, [2, 2, 3, 0], "x by two clients, y by one");
    c.expect(
        &[
            "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p", "PREFIX", "q",
        ],
        "+OK|",
    );
    d.expect(
        &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "p"],
        "+OK|",
    );
    snapshot(
        &mut admin,
        [4, 2, 3, 2],
        "with two BCAST clients on prefixes p and q",
    );
    admin.expect(&["SET", "x", "1"], "+OK|");
    assert_eq!(a.pushes("SET x"), invalidate(&["x"]));
    assert_eq!(b.pushes("SET x"), invalidate(&["x"]));
    snapshot(&mut admin, [4, 1, 1, 2], "after x was invalidated");
    a.expect(&["CLIENT", "TRACKING", "OFF"], "+OK|");
    // Turning tracking off leaves the client's keys in the table until
    // they are invalidated (Redis does not walk the table).
    snapshot(
        &mut admin,
        [3, 1, 1, 2],
        "after one client turned tracking off",
    );
    let gone = d.id;
    drop(d);
    wait_until_gone(&mut admin, gone);
    c.expect(&["CLIENT", "TRACKING", "OFF"], "+OK|");
    admin.expect(&["FLUSHALL"], "+OK|");
    snapshot(
        &mut admin,
        [1, 0, 0, 0],
        "after FLUSHALL, with d gone and c off",
    );
    drop(b);
}

// ---------------------------------------------------------------- eviction

/// `larder-server` as a process: it installs the counting allocator, so
/// INFO's used_memory (and with it maxmemory) is exact there, as in
/// tests/eviction.rs.
struct LarderProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl LarderProcess {
    fn start() -> Self {
        let port = common::free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_larder-server"))
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn larder-server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "larder-server did not start");
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

/// Keys are written, then read by the tracking client (so tracked), while
/// memory fills past maxmemory: each key evicted must be invalidated, and
/// only those (nothing else writes them).
fn eviction_invalidates_on(addr: SocketAddr, server: &'static str) {
    let mut admin = Conn::connect(addr, server);
    let mut tracker = Conn::connect(addr, server);
    let used = info_field(&mut admin, "memory", "used_memory");
    let limit = (used + 1024 * 1024).to_string();
    for (name, value) in [
        ("maxmemory-policy", "allkeys-random"),
        ("maxmemory", limit.as_str()),
    ] {
        let reply = admin.command(&["CONFIG", "SET", name, value]);
        assert_eq!(
            show(&reply, &[]),
            "+OK|",
            "{server}: CONFIG SET {name} {value}"
        );
    }
    assert!(tracker.command(&["HELLO", "3"]).starts_with(b"%"));
    assert_eq!(
        show(&tracker.command(&["CLIENT", "TRACKING", "ON"]), &[]),
        "+OK|"
    );
    let value = "x".repeat(10 * 1024);
    let mut invalidated = std::collections::BTreeSet::new();
    let mut note = |reply: &[u8]| {
        let keys = push_keys(reply)
            .unwrap_or_else(|| panic!("{server}: not an invalidation: {:?}", show(reply, &[])));
        invalidated.extend(keys);
    };
    let keys: Vec<String> = (0..300).map(|i| format!("big:{i}")).collect();
    let mut gone_before_read = std::collections::BTreeSet::new();
    for key in &keys {
        let reply = admin.command(&["SET", key, &value]);
        assert_eq!(show(&reply, &[]), "+OK|", "{server}: SET {key}");
        tracker.send(&["GET", key]);
        loop {
            let reply = tracker.read("GET");
            if !is_push(&reply) {
                // Evicted already (a server may evict before any command):
                // never seen by the tracker, so nothing to invalidate.
                if reply == b"_\r\n" {
                    gone_before_read.insert(key.clone());
                }
                break;
            }
            note(&reply);
        }
    }
    // No more evictions from here on (Redis evicts before any command).
    let reply = admin.command(&["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(
        show(&reply, &[]),
        "+OK|",
        "{server}: CONFIG SET maxmemory 0"
    );
    tracker.send(&["PING"]);
    loop {
        let reply = tracker.read("PING");
        if !is_push(&reply) {
            assert_eq!(show(&reply, &[]), "+PONG|", "{server}");
            break;
        }
        note(&reply);
    }
    let evicted = info_field(&mut admin, "stats", "evicted_keys");
    assert!(evicted > 0, "{server}: nothing was evicted");
    let missing: std::collections::BTreeSet<String> = keys
        .iter()
        .filter(|key| admin.command(&["EXISTS", key]) == b":0\r\n")
        .cloned()
        .collect();
    let evicted_after_read: std::collections::BTreeSet<String> =
        missing.difference(&gone_before_read).cloned().collect();
    let not_invalidated: Vec<&String> = evicted_after_read.difference(&invalidated).collect();
    let invalidated_not_evicted: Vec<&String> =
        invalidated.difference(&evicted_after_read).collect();
    assert!(
        not_invalidated.is_empty() && invalidated_not_evicted.is_empty(),
        "{server}: {} keys evicted after the tracker read them; evicted but not invalidated: \
         {not_invalidated:?}; invalidated but not evicted: {invalidated_not_evicted:?}",
        evicted_after_read.len()
    );
    assert!(
        evicted_after_read.len() > 10,
        "{server}: too few evictions to tell"
    );
    assert_eq!(missing.len() as i64, evicted, "{server}: evicted_keys");
}

#[test]
fn eviction_invalidates_tracked_keys_on_redis() {
    let redis = RedisServer::start();
    eviction_invalidates_on(redis.addr, "redis");
}

#[test]
fn eviction_invalidates_tracked_keys_on_larder() {
    let larder = LarderProcess::start();
    eviction_invalidates_on(larder.addr, "larder");
}
