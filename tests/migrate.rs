//! MIGRATE against real redis-server 7.0 instances: the same commands run
//! on a Larder source and on a Redis source, each moving keys to a Redis
//! target of its own, must give byte-identical replies and leave both
//! sources and both targets in the same state.

mod common;

use common::{free_port, RawClient, RedisServer, TestServer};

/// A Larder and a Redis source, each with its own password-protected
/// Redis target.
struct Setup {
    larder: RawClient,
    redis: RawClient,
    /// The targets of Larder's and of Redis's migrations.
    larder_target: RawClient,
    redis_target: RawClient,
    larder_target_port: String,
    redis_target_port: String,
    _servers: (TestServer, RedisServer, RedisServer, RedisServer),
}

impl Setup {
    fn start() -> Self {
        let larder_server = TestServer::start();
        let redis_server = RedisServer::start();
        let (larder_target_server, redis_target_server) =
            (RedisServer::start(), RedisServer::start());
        let mut larder_target = larder_target_server.raw();
        let mut redis_target = redis_target_server.raw();
        for target in [&mut larder_target, &mut redis_target] {
            let set = target.command(&["CONFIG", "SET", "requirepass", "secret"]);
            assert_eq!(set, b"+OK\r\n");
            assert_eq!(target.command(&["AUTH", "secret"]), b"+OK\r\n");
        }
        Setup {
            larder: larder_server.raw(),
            redis: redis_server.raw(),
            larder_target,
            redis_target,
            larder_target_port: larder_target_server.addr.port().to_string(),
            redis_target_port: redis_target_server.addr.port().to_string(),
            _servers: (
                larder_server,
                redis_server,
                larder_target_server,
                redis_target_server,
            ),
        }
    }

    /// Runs `args` on both sources and asserts the same reply.
    fn same(&mut self, args: &[&str]) -> Vec<u8> {
        same_reply(&mut self.larder, &mut self.redis, args, args)
    }

    /// MIGRATE host port `rest...` to each source's own target.
    fn migrate(&mut self, rest: &[&str]) -> Vec<u8> {
        let (ours, theirs) = (
            self.larder_target_port.clone(),
            self.redis_target_port.clone(),
        );
        let ours: Vec<&str> = ["MIGRATE", "127.0.0.1", &ours]
            .iter()
            .chain(rest)
            .copied()
            .collect();
        let theirs: Vec<&str> = ["MIGRATE", "127.0.0.1", &theirs]
            .iter()
            .chain(rest)
            .copied()
            .collect();
        same_reply(&mut self.larder, &mut self.redis, &ours, &theirs)
    }

    /// Runs `args` on both targets and asserts the same reply.
    fn on_targets(&mut self, args: &[&str]) -> Vec<u8> {
        same_reply(&mut self.larder_target, &mut self.redis_target, args, args)
    }
}

/// Sends `ours` to one server and `theirs` to the other; asserts the
/// replies are the same bytes and returns them.
fn same_reply(
    larder: &mut RawClient,
    redis: &mut RawClient,
    ours: &[&str],
    theirs: &[&str],
) -> Vec<u8> {
    let (a, b) = (larder.command(ours), redis.command(theirs));
    assert_eq!(
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&b),
        "replies differ for {theirs:?}"
    );
    a
}

#[test]
fn migrate_moves_copies_and_refuses_as_redis_does() {
    let mut s = Setup::start();
    // Nothing to move.
    assert_eq!(
        s.migrate(&["missing", "0", "5000", "AUTH", "secret"]),
        b"+NOKEY\r\n"
    );
    // A key with a TTL moves; the source loses it.
    s.same(&["SET", "k", "v", "EX", "100"]);
    assert_eq!(s.migrate(&["k", "0", "5000", "AUTH", "secret"]), b"+OK\r\n");
    assert_eq!(s.same(&["EXISTS", "k"]), b":0\r\n");
    assert_eq!(s.on_targets(&["GET", "k"]), b"$1\r\nv\r\n");
    for target in [&mut s.larder_target, &mut s.redis_target] {
        let ttl = String::from_utf8(target.command(&["TTL", "k"])).unwrap();
        let ttl: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
        assert!((90..=100).contains(&ttl), "TTL {ttl}");
    }
    // COPY keeps the source; a second copy finds the key there (BUSYKEY)
    // and keeps it; REPLACE overwrites it.
    s.same(&["SET", "c", "1"]);
    assert_eq!(
        s.migrate(&["c", "0", "5000", "COPY", "AUTH", "secret"]),
        b"+OK\r\n"
    );
    assert_eq!(s.same(&["GET", "c"]), b"$1\r\n1\r\n");
    s.same(&["SET", "c", "2"]);
    assert_eq!(
        s.migrate(&["c", "0", "5000", "AUTH", "secret"]),
        b"-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n"
    );
    assert_eq!(s.same(&["GET", "c"]), b"$1\r\n2\r\n");
    assert_eq!(
        s.migrate(&["c", "0", "5000", "REPLACE", "AUTH", "secret"]),
        b"+OK\r\n"
    );
    assert_eq!(s.on_targets(&["GET", "c"]), b"$1\r\n2\r\n");
    assert_eq!(s.same(&["EXISTS", "c"]), b":0\r\n");
    // Several keys of every type with KEYS, to another database, AUTH2;
    // a missing one is skipped.
    s.same(&["HSET", "h", "f", "1", "g", "2"]);
    s.same(&["RPUSH", "l", "a", "b", "c"]);
    s.same(&["SADD", "set", "x", "y"]);
    s.same(&["ZADD", "z", "1.5", "m", "2", "n"]);
    s.same(&["XADD", "st", "1-1", "f", "v"]);
    assert_eq!(
        s.migrate(&[
            "", "3", "5000", "AUTH2", "default", "secret", "KEYS", "h", "l", "set", "z", "st",
            "gone",
        ]),
        b"+OK\r\n"
    );
    assert_eq!(s.same(&["EXISTS", "h", "l", "set", "z", "st"]), b":0\r\n");
    s.on_targets(&["SELECT", "3"]);
    s.on_targets(&["HGETALL", "h"]);
    s.on_targets(&["LRANGE", "l", "0", "-1"]);
    s.on_targets(&["SMISMEMBER", "set", "x", "y", "w"]);
    s.on_targets(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]);
    s.on_targets(&["XRANGE", "st", "-", "+"]);
    assert_eq!(s.on_targets(&["DBSIZE"]), b":5\r\n");
    s.on_targets(&["SELECT", "0"]);
    // Inside a transaction.
    s.same(&["SET", "t", "1"]);
    s.same(&["MULTI"]);
    let port_ours = s.larder_target_port.clone();
    let port_theirs = s.redis_target_port.clone();
    assert_eq!(
        s.larder.command(&[
            "MIGRATE",
            "127.0.0.1",
            &port_ours,
            "t",
            "0",
            "5000",
            "AUTH",
            "secret"
        ]),
        b"+QUEUED\r\n"
    );
    assert_eq!(
        s.redis.command(&[
            "MIGRATE",
            "127.0.0.1",
            &port_theirs,
            "t",
            "0",
            "5000",
            "AUTH",
            "secret"
        ]),
        b"+QUEUED\r\n"
    );
    assert_eq!(s.same(&["EXEC"]), b"*1\r\n+OK\r\n");
    assert_eq!(s.on_targets(&["GET", "t"]), b"$1\r\n1\r\n");
}

#[test]
fn migrate_errors_are_redis_errors() {
    let mut s = Setup::start();
    s.same(&["SET", "k", "v"]);
    // No password, a wrong one, a database the target lacks: the key
    // stays. (Redis keeps its connection to a target for 10 s and Larder
    // does not: the order here is one where that does not show.)
    assert_eq!(
        s.migrate(&["k", "0", "5000"]),
        b"-ERR Target instance replied with error: NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        s.migrate(&["k", "0", "5000", "AUTH", "wrong"]),
        b"-ERR Target instance replied with error: WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        s.migrate(&["k", "99", "5000", "AUTH", "secret"]),
        b"-ERR Target instance replied with error: ERR DB index is out of range\r\n"
    );
    assert_eq!(s.same(&["GET", "k"]), b"$1\r\nv\r\n");
    // Arguments.
    for bad in [
        &["k", "0", "5000", "BOGUS"][..],
        &["k", "0", "5000", "AUTH"],
        &["k", "0", "5000", "AUTH2", "user"],
        &["k", "0", "5000", "KEYS", "a"],
        &["k", "0", "soon"],
        &["k", "zero", "5000"],
        &["k", "zero", "soon"],
        &["k", "0"],
    ] {
        s.migrate(bad);
    }
    // Nobody listening: Redis's non-blocking connect shows the refusal
    // on its first write. A name that does not resolve.
    let closed = free_port().to_string();
    for raw in [&mut s.larder, &mut s.redis] {
        assert_eq!(
            raw.command(&["MIGRATE", "127.0.0.1", &closed, "k", "0", "1000"]),
            b"-IOERR error or timeout writing to target instance\r\n"
        );
        assert_eq!(
            raw.command(&["MIGRATE", "no-such-host.invalid", "6379", "k", "0", "1000"]),
            b"-IOERR error or timeout connecting to the client\r\n"
        );
    }
    assert_eq!(s.same(&["GET", "k"]), b"$1\r\nv\r\n");
    // AUTH to a target without a password fails while the RESTORE
    // succeeds: Redis counts the key as not moved and keeps it.
    s.on_targets(&["CONFIG", "SET", "requirepass", ""]);
    let reply = s.migrate(&["k", "0", "5000", "AUTH", "secret"]);
    assert!(
        reply.starts_with(b"-ERR Target instance replied with error: ERR AUTH <password> called without any password configured"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(s.same(&["GET", "k"]), b"$1\r\nv\r\n");
    assert_eq!(s.on_targets(&["GET", "k"]), b"$1\r\nv\r\n");
    // Larder's COMMAND entry is Redis's.
    s.same(&["COMMAND", "INFO", "MIGRATE"]);
    s.same(&["COMMAND", "GETKEYS", "MIGRATE", "h", "1", "k", "0", "5"]);
    s.same(&[
        "COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "5", "AUTH", "KEYS", "KEYS", "a", "b",
    ]);
}

/// A key written by another client while MIGRATE waits for the target is
/// neither blocked nor lost: the write goes through at once (no lock is
/// held meanwhile), and the key, no longer what was sent, is not deleted.
/// The target is a stand-in that holds its replies until told (a real
/// server answers too fast to write in between).
#[test]
fn a_key_written_during_the_exchange_is_kept() {
    use std::io::{Read, Write};
    let server = TestServer::start();
    let mut source = server.raw();
    let mut other = server.raw();
    assert_eq!(source.command(&["SET", "k", "before"]), b"+OK\r\n");
    assert_eq!(source.command(&["SET", "j", "moves"]), b"+OK\r\n");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port().to_string();
    let (received_tx, received_rx) = std::sync::mpsc::channel();
    let (reply_tx, reply_rx) = std::sync::mpsc::channel::<()>();
    let target = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        // SELECT and two RESTOREs, all in one write; wait for the end of it.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while seen.windows(7).filter(|w| w == b"RESTORE").count() < 2 || !seen.ends_with(b"\r\n") {
            let n = conn.read(&mut buf).expect("read");
            assert!(n > 0, "the source closed early");
            seen.extend_from_slice(&buf[..n]);
        }
        received_tx.send(seen).unwrap();
        reply_rx.recv().unwrap();
        conn.write_all(b"+OK\r\n+OK\r\n+OK\r\n").unwrap();
    });
    source.send(&common::encode_command(&[
        b"MIGRATE",
        b"127.0.0.1",
        port.as_bytes(),
        b"",
        b"0",
        b"10000",
        b"KEYS",
        b"k",
        b"j",
    ]));
    let request = received_rx.recv().unwrap();
    assert!(request.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n"));
    assert_eq!(other.command(&["SET", "k", "after"]), b"+OK\r\n");
    reply_tx.send(()).unwrap();
    assert_eq!(source.read_reply(), b"+OK\r\n");
    target.join().unwrap();
    assert_eq!(source.command(&["GET", "k"]), b"$5\r\nafter\r\n");
    assert_eq!(source.command(&["EXISTS", "j"]), b":0\r\n");
}
