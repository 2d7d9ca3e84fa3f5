//! Keyspace notifications compared with a real redis-server 7.0 byte for
//! byte: `notify-keyspace-events` through CONFIG SET/GET, then, for commands
//! of every family, the `__keyspace@<db>__:<key>` and
//! `__keyevent@<db>__:<event>` frames each one pushes to a subscriber, in
//! order. Expired events from active expiry, the `new` and `keymiss` classes,
//! RESP3 pushes; and, on Larder alone, `evicted` and the hash-field expiry
//! events of Redis 7.4 (Redis 7.0 has no HEXPIRE).
//!
//! After every command, the writer publishes a marker that the subscriber
//! also listens to: the frames between two markers are what the command
//! pushed, with no timing guess. `LARDER_SELFCHECK=1` runs both sides on
//! redis-server.

mod common;

use std::time::{Duration, Instant};

use common::scenario::{
    compact, differential, items, show, show_args, Item, Scenario, Target, EXPECTED_WITHIN,
};
use common::{Arrival, RawClient};

#[test]
fn notify_keyspace_events_config_round_trip() {
    differential(|s| {
        let c = s.connect();
        s.script(
            c,
            "CONFIG GET notify-keyspace-events => *2|$22|notify-keyspace-events|$0||",
        );
        for flags in [
            "KEA",
            "Kx",
            "Egx$",
            "AKE",
            "nK",
            "mE",
            "KEtdm",
            "A",
            "K",
            "E",
            "g",
            "$",
            "l",
            "s",
            "h",
            "z",
            "x",
            "e",
            "t",
            "m",
            "d",
            "n",
            "KA",
            "gK",
            "Kgl",
            "Ehsz",
            "zz",
            "AKEnm",
            "KEAmn",
            "Knd",
            "g$lshzxetd",
            "g$lshzxetdKE",
            "gK$",
        ] {
            s.cmd(c, &["CONFIG", "SET", "notify-keyspace-events", flags]);
            s.cmd(c, &["CONFIG", "GET", "notify-keyspace-events"]);
        }
        // Invalid characters leave the setting as it was.
        for flags in ["KEQ", "KEA n", "a", "k", "1", "KE*"] {
            s.cmd(c, &["CONFIG", "SET", "notify-keyspace-events", flags]);
            s.cmd(c, &["CONFIG", "GET", "notify-keyspace-events"]);
        }
        s.cmd(c, &["CONFIG", "SET", "notify-keyspace-events", ""]);
        s.cmd(c, &["CONFIG", "GET", "notify-keyspace-events"]);
        s.cmd(c, &["CONFIG", "GET", "notify-*"]);
    });
}

/// The connections of an event scenario: a writer, a subscriber on every
/// keyspace and keyevent channel and on the marker channel, and the
/// connection that publishes the markers (not the writer, which may be in
/// a transaction).
struct Events {
    writer: usize,
    subscriber: usize,
    marker: usize,
    marks: usize,
}

impl Events {
    /// Sets `notify-keyspace-events` to `flags` and subscribes (RESP3 if
    /// `resp3`).
    fn start(s: &mut Scenario, flags: &str, resp3: bool) -> Events {
        let writer = s.connect();
        let subscriber = s.connect();
        let marker = s.connect();
        s.cmd(writer, &["CONFIG", "SET", "notify-keyspace-events", flags]);
        if resp3 {
            let reply = s.client(subscriber).command(&["HELLO", "3"]);
            s.note(format!("HELLO 3 answered a {}", show(&reply[..1])));
        }
        s.cmd(subscriber, &["PSUBSCRIBE", "__key*__:*"]);
        s.cmd(subscriber, &["SUBSCRIBE", "marker"]);
        Events {
            writer,
            subscriber,
            marker,
            marks: 0,
        }
    }

    /// Runs one command on the writer; logs, as one line, the command, its
    /// reply and every frame it pushed.
    fn run(&mut self, s: &mut Scenario, args: &[&[u8]]) -> Vec<u8> {
        let reply = s.client(self.writer).command_bytes(args);
        let frames = self.frames(s);
        s.log.push(format!(
            "{} -> {} => {frames}",
            show_args(args),
            show(&reply)
        ));
        reply
    }

    /// Logs the frames pushed since the last marker.
    fn collect(&mut self, s: &mut Scenario) {
        let frames = self.frames(s);
        s.log.push(format!("pushed => {frames}"));
    }

    /// Publishes a marker; returns the frames that came before it, in
    /// order.
    fn frames(&mut self, s: &mut Scenario) -> String {
        self.marks += 1;
        let mark = self.marks.to_string();
        s.client(self.marker).command(&["PUBLISH", "marker", &mark]);
        let mut frames = Vec::new();
        for _ in 0..64 {
            let frame = match s.client(self.subscriber).read_within(EXPECTED_WITHIN) {
                Arrival::Reply(frame) => frame,
                other => {
                    frames.push(format!("{other:?} (no marker)"));
                    break;
                }
            };
            let ends = items(&frame).is_some_and(|e| {
                e.len() == 3
                    && e[1] == Item::Bulk(b"marker".to_vec())
                    && e[2] == Item::Bulk(mark.clone().into_bytes())
            });
            if ends {
                break;
            }
            frames.push(compact(&frame));
        }
        if frames.is_empty() {
            "(none)".to_string()
        } else {
            frames.join(" ; ")
        }
    }

    /// Runs one command per line (split on whitespace; `#` comments and
    /// blank lines skipped).
    fn script(&mut self, s: &mut Scenario, script: &str) {
        for line in script.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
            self.run(s, &args);
        }
    }
}

/// A scenario running `script` with `flags`, in RESP2.
fn family(flags: &'static str, script: &'static str) {
    differential(move |s| {
        let mut events = Events::start(s, flags, false);
        events.script(s, script);
    });
}

#[test]
fn string_commands_notify_as_redis() {
    family(
        "KEA",
        "
        SET s1 v
        SET s1 v2 EX 100
        SET s1 v3 KEEPTTL
        SET s1 v NX
        SET s1 v XX GET
        SET s1 v PX 100000 GET
        SETEX s2 100 v
        PSETEX s3 100000 v
        SETNX s4 v
        SETNX s4 v
        GETSET s4 w
        GETDEL s4
        GETDEL s4
        GETEX s1 EX 100
        GETEX s1 PXAT 4000000000000
        GETEX s1 PERSIST
        GETEX s1
        GET s1
        APPEND s5 abc
        APPEND s5 def
        INCR n
        INCRBY n 10
        INCRBYFLOAT n 1.5
        INCRBYFLOAT n 0
        DECR c
        DECRBY c 3
        INCR s1
        SETRANGE s6 5 xyz
        SETRANGE s6 0 ab
        MSET m1 a m2 b m1 c
        MSETNX m3 a m4 b
        MSETNX m3 a m5 b
        SETBIT b 7 1
        SETBIT b 7 1
        BITOP AND dest s1 s5
        BITOP OR dest nokey1 nokey2
        BITFIELD bf SET u8 0 255
        BITFIELD bf GET u8 0
        SET s1 v
        LCS s1 s5
        STRLEN s1
        # From scripts (no spaces in these bodies: the script splits on them).
        EVAL redis.call('set','lk','v') 0
        EVAL redis.call('incr','ln');redis.call('del','lk') 0
        ",
    );
}

#[test]
fn string_commands_in_a_transaction_notify_at_exec() {
    family(
        "KEA",
        "
        MULTI
        SET t1 a
        INCR t2
        APPEND t1 b
        DEL t1
        EXEC
        ",
    );
}

#[test]
fn keyspace_commands_notify_as_redis() {
    family(
        "KEA",
        "
        SET k1 v
        SET k2 v
        DEL k1 k2 nokey
        DEL nokey
        SET k3 v
        UNLINK k3 nokey
        SET k4 v
        EXPIRE k4 100
        PEXPIRE k4 100000
        EXPIREAT k4 4000000000
        PEXPIREAT k4 4000000000000
        EXPIRE k4 100 NX
        EXPIRE k4 200 GT
        PERSIST k4
        PERSIST k4
        EXPIRE nokey 100
        EXPIRE k4 -1
        SET k4 v
        PEXPIREAT k4 1000
        SET k4 v EX 100
        SET k4 w
        SET k5 v
        RENAME k5 k6
        SET k7 v
        RENAME k6 k7
        RENAMENX k7 k8
        SET k9 v
        RENAMENX k8 k9
        RENAME k8 k8
        RENAME nokey k1
        MOVE k9 1
        SELECT 1
        MOVE k9 0
        SELECT 0
        SET k9 v
        MOVE k9 2
        COPY k8 c1
        COPY k8 c1
        COPY k8 c1 REPLACE
        COPY k8 c2 DB 2
        SELECT 2
        DEL c2 k9
        SELECT 0
        TOUCH k8 c1
        EXISTS k8
        TYPE k8
        EXPIRE k8 0
        SET k10 v
        SWAPDB 0 1
        SWAPDB 0 1
        DEL k10
        ",
    );
}

#[test]
fn list_commands_notify_as_redis() {
    family(
        "KEA",
        "
        LPUSH l a b c
        RPUSH l d
        LPUSHX l e
        LPUSHX nolist e
        RPUSHX l f
        RPUSHX nolist f
        LPOP l
        RPOP l
        LPOP l 2
        LPOP nolist
        LINSERT l BEFORE c x
        LINSERT l AFTER zz x
        LSET l 0 y
        LTRIM l 0 1
        LREM l 0 y
        LREM l 0 nothing
        RPUSH l p q r
        RPOPLPUSH l l2
        RPOPLPUSH l l
        LMOVE l2 l3 LEFT RIGHT
        LMOVE l l LEFT RIGHT
        RPUSH l4 a
        LPOP l4
        LMPOP 1 l3 LEFT
        LMPOP 2 nolist l RIGHT COUNT 10
        RPUSH l5 a b c
        LTRIM l5 5 10
        RPUSH l6 a a b
        LREM l6 0 a
        LREM l6 0 b
        LRANGE l6 0 -1
        LINDEX l6 0
        ",
    );
}

#[test]
fn a_served_blocking_pop_notifies_as_redis() {
    differential(|s| {
        let mut events = Events::start(s, "KEA", false);
        let blocked = s.connect();
        for (block, push) in [
            (
                &[&b"BLPOP"[..], b"bl", b"0"][..],
                &[&b"RPUSH"[..], b"bl", b"a", b"b"][..],
            ),
            (&[b"BRPOP", b"bl2", b"0"], &[b"LPUSH", b"bl2", b"x"]),
            (
                &[b"BLMOVE", b"bl3", b"dst", b"LEFT", b"RIGHT", b"0"],
                &[b"RPUSH", b"bl3", b"y"],
            ),
            (
                &[b"BLMPOP", b"0", b"1", b"bl4", b"LEFT", b"COUNT", b"5"],
                &[b"RPUSH", b"bl4", b"1", b"2"],
            ),
        ] {
            s.send(blocked, block);
            await_blocked(s, events.writer);
            s.cmd_bytes(events.writer, push);
            s.read(blocked);
            events.collect(s);
        }
    });
}

/// Waits until a client is blocked (INFO's blocked_clients).
fn await_blocked(s: &mut Scenario, c: usize) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let info = s.client(c).command(&["INFO", "clients"]);
        if String::from_utf8_lossy(&info).contains("blocked_clients:1") {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    s.note("no client blocked within 3 s");
}

#[test]
fn set_commands_notify_as_redis() {
    family(
        "KEA",
        "
        SADD s a b c
        SADD s a
        SREM s a b
        SREM s zz
        SPOP s
        SADD s x
        SPOP s 5
        SPOP s
        SADD s y z
        SPOP s 0
        SREM s y
        SPOP s 1
        SADD s1 a b c
        SADD s2 b c d
        SMOVE s1 s2 a
        SMOVE s1 s2 zz
        SMOVE s1 s2 b
        SINTERSTORE d s1 s2
        SUNIONSTORE d s1 s2
        SDIFFSTORE d s1 s2
        SDIFFSTORE d s1 s1
        SINTERSTORE d2 s1 nokey
        SUNIONSTORE d3 nokey1 nokey2
        SADD s3 x
        SMOVE s3 s4 x
        SREM s2 a b c d
        SMEMBERS s4
        SISMEMBER s4 x
        SCARD s4
        ",
    );
}

#[test]
fn sorted_set_commands_notify_as_redis() {
    family(
        "KEA",
        "
        ZADD z 1 a 2 b 3 c
        ZADD z 1 a
        ZADD z 5 a
        ZADD z XX 1 nope
        ZADD z INCR 5 a
        ZADD z NX INCR 5 a
        ZINCRBY z 1 b
        ZREM z c
        ZREM z zz
        ZREMRANGEBYSCORE z 0 1
        ZREMRANGEBYSCORE z 100 200
        ZREMRANGEBYRANK z 0 0
        ZADD z 0 x 0 y 0 w 0 v
        ZADD zl 0 x 0 y 0 w 0 v
        ZREMRANGEBYLEX zl [v [w
        ZPOPMIN z
        ZPOPMAX z
        ZPOPMIN z 10
        ZPOPMIN z
        ZADD z1 1 a 2 b
        ZADD z2 2 b 3 c
        ZUNIONSTORE d 2 z1 z2
        ZINTERSTORE d 2 z1 z2
        ZDIFFSTORE d 2 z1 z2
        ZINTERSTORE d 2 z1 nokey
        ZRANGESTORE d z1 0 -1
        ZRANGESTORE d z1 5 10
        ZMPOP 1 z1 MIN
        ZMPOP 1 z1 MAX COUNT 5
        ZREM z2 b c
        ZRANGE z2 0 -1
        ZSCORE z2 b
        ",
    );
}

#[test]
fn hash_commands_notify_as_redis() {
    family(
        "KEA",
        "
        HSET h a 1 b 2
        HSET h a 1
        HSETNX h a 1
        HSETNX h c 3
        HMSET h d 4
        HDEL h a
        HDEL h zz
        HINCRBY h n 5
        HINCRBYFLOAT h f 1.5
        HINCRBY h a x
        HDEL h b c d n f
        HDEL h zz
        HGET h a
        HGETALL h
        ",
    );
}

#[test]
fn flushdb_and_flushall_notify_as_redis() {
    family(
        "KEA",
        "
        SET a 1
        FLUSHDB
        SET b 1
        SELECT 1
        SET c 1
        FLUSHALL
        FLUSHDB ASYNC
        FLUSHALL SYNC
        SELECT 0
        ",
    );
}

#[test]
fn new_and_keymiss_classes_notify_as_redis() {
    family(
        "AKEnm",
        "
        GET miss
        SET k v
        SET k v2
        MGET k miss2
        EXISTS miss3
        TYPE miss4
        LPUSH l a
        LPUSH l b
        LRANGE nolist 0 -1
        HGET nohash f
        HSET h f v
        INCR cnt
        SADD s a
        ZADD z 1 a
        ZSCORE noz a
        SMEMBERS noset
        GETDEL miss5
        APPEND ap x
        RENAME k k2
        COPY k2 k3
        GETEX miss6
        STRLEN miss7
        ",
    );
}

#[test]
fn class_flags_filter_events_as_redis() {
    let commands = "
        SET s v
        EXPIRE s 100
        PERSIST s
        RENAME s s2
        LPUSH l a
        LPOP l
        SADD st a
        HSET h f v
        ZADD z 1 a
        DEL st h
        GET miss
        INCR n
        SET s3 v PX 100000
        ";
    for flags in [
        "K$", "Eg", "Kl", "Es", "Kh", "Ez", "Kg$", "E$x", "Kn", "Em", "EA", "Klz",
    ] {
        differential(move |s| {
            let mut events = Events::start(s, flags, false);
            events.script(s, commands);
        });
    }
}

#[test]
fn events_name_the_database() {
    family(
        "KEA",
        "
        SELECT 5
        SET k v
        DEL k
        SELECT 15
        LPUSH l x
        SELECT 0
        SET k v
        ",
    );
}

#[test]
fn resp3_subscribers_get_notifications_as_pushes() {
    differential(|s| {
        let mut events = Events::start(s, "KEA", true);
        events.script(
            s,
            "
            SET k v
            LPUSH l a
            DEL k l
            ",
        );
        // A client subscribed to its own events: the push comes before the
        // command's reply, as Redis 7.0 sends it.
        let own = s.connect();
        let reply = s.client(own).command(&["HELLO", "3"]);
        s.note(format!("HELLO 3 answered a {}", show(&reply[..1])));
        s.cmd(own, &["SUBSCRIBE", "__keyevent@0__:set"]);
        s.send(own, &[b"SET", b"mine", b"v"]);
        s.read(own);
        s.read(own);
        s.send(own, &[b"INCR", b"counter"]);
        s.read(own);
        s.script(own, "GET mine");
        s.quiet(own);
        events.collect(s);
    });
}

#[test]
fn active_expiry_sends_expired_without_the_key_being_touched() {
    differential(|s| {
        let mut events = Events::start(s, "KEA", false);
        events.script(
            s,
            "
            SET gone v PX 50
            HSET gone2 f v
            PEXPIRE gone2 60
            ",
        );
        // Two keys, two events each (keyspace, keyevent), from active
        // expiry; the order between the keys is not defined.
        let subscriber = events.subscriber;
        let mut frames = Vec::new();
        for _ in 0..4 {
            match s.client(subscriber).read_within(Duration::from_secs(3)) {
                Arrival::Reply(frame) => frames.push(frame),
                other => {
                    s.note(format!("after {} frames: {other:?}", frames.len()));
                    break;
                }
            }
        }
        frames.sort();
        for frame in frames {
            s.log.push(format!("expired: {}", show(&frame)));
        }
        events.script(s, "EXISTS gone gone2");
        // Expired on access or by active expiry, whichever comes first: the
        // same frames, before the next marker.
        events.script(s, "SET lazy v PX 30");
        std::thread::sleep(Duration::from_millis(60));
        events.script(s, "GET lazy");
    });
}

/// `notify-keyspace-events` set at start, a subscriber on `pattern`.
fn subscribe(server: &Target, flags: &str, pattern: &str) -> RawClient {
    let mut admin = server.raw();
    assert_eq!(
        show(&admin.command(&["CONFIG", "SET", "notify-keyspace-events", flags])),
        show(b"+OK\r\n")
    );
    let mut subscriber = server.raw();
    let reply = subscriber.command(&["PSUBSCRIBE", pattern]);
    assert!(
        reply.starts_with(b"*3\r\n$10\r\npsubscribe\r\n"),
        "{}",
        show(&reply)
    );
    subscriber
}

#[test]
fn eviction_sends_evicted_events() {
    let server = Target::larder_binary(&[("maxmemory-policy", "allkeys-random")]);
    let mut subscriber = subscribe(&server, "KEe", "__key*__:*");
    let mut writer = server.raw();
    let info = writer.command(&["INFO", "memory"]);
    let used: u64 = String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    let limit = (used + (2 << 20)).to_string();
    assert_eq!(
        show(&writer.command(&["CONFIG", "SET", "maxmemory", &limit])),
        show(b"+OK\r\n")
    );
    let value = vec![b'v'; 1024];
    let mut evicted = Vec::new();
    'fill: for batch in 0..100 {
        let mut pipeline = Vec::new();
        for i in 0..100 {
            let key = format!("key:{batch}:{i}");
            pipeline.extend(common::encode_command(&[b"SET", key.as_bytes(), &value]));
        }
        writer.send(&pipeline);
        for _ in 0..100 {
            writer.read_reply();
        }
        while let Arrival::Reply(frame) = subscriber.read_within(Duration::from_millis(5)) {
            evicted.push(frame);
            if evicted.len() >= 2 {
                break 'fill;
            }
        }
    }
    assert!(
        evicted.len() >= 2,
        "no evicted event after writing 10 MB into 2 MB"
    );
    // The keyspace frame, then the keyevent frame, for the same key.
    let keyspace = items(&evicted[0]).expect("a pmessage");
    let keyevent = items(&evicted[1]).expect("a pmessage");
    assert_eq!(
        keyspace[0],
        Item::Bulk(b"pmessage".to_vec()),
        "{}",
        show(&evicted[0])
    );
    assert_eq!(
        keyspace[3],
        Item::Bulk(b"evicted".to_vec()),
        "{}",
        show(&evicted[0])
    );
    let Item::Bulk(channel) = &keyspace[2] else {
        panic!("{}", show(&evicted[0]));
    };
    let key = channel
        .strip_prefix(b"__keyspace@0__:")
        .unwrap_or_else(|| panic!("{}", show(&evicted[0])))
        .to_vec();
    assert_eq!(keyevent[2], Item::Bulk(b"__keyevent@0__:evicted".to_vec()));
    assert_eq!(keyevent[3], Item::Bulk(key.clone()));
    assert_eq!(
        show(&writer.command_bytes(&[b"EXISTS", &key])),
        show(b":0\r\n")
    );
}

#[test]
fn hash_field_expiry_events_as_redis_7_4() {
    if common::scenario::self_check() {
        return; // Redis 7.0 has no HEXPIRE.
    }
    let server = Target::larder();
    let mut subscriber = subscribe(&server, "KEA", "__keyevent@0__:*");
    let mut writer = server.raw();
    let mut next = |expected: &str| {
        let frame = match subscriber.read_within(Duration::from_secs(3)) {
            Arrival::Reply(frame) => frame,
            other => panic!("expected {expected}, got {other:?}"),
        };
        assert_eq!(show(&frame), expected);
    };
    let event = |name: &str, key: &str| {
        let channel = format!("__keyevent@0__:{name}");
        format!(
            "*4\\r\\n$8\\r\\npmessage\\r\\n$16\\r\\n__keyevent@0__:*\\r\\n${}\\r\\n{channel}\\r\\n${}\\r\\n{key}\\r\\n",
            channel.len(),
            key.len()
        )
    };
    writer.command(&["HSET", "h", "a", "1", "b", "2"]);
    next(&event("hset", "h"));
    assert_eq!(
        show(&writer.command(&["HEXPIRE", "h", "100", "FIELDS", "1", "a"])),
        show(b"*1\r\n:1\r\n")
    );
    next(&event("hexpire", "h"));
    assert_eq!(
        show(&writer.command(&["HPERSIST", "h", "FIELDS", "1", "a"])),
        show(b"*1\r\n:1\r\n")
    );
    next(&event("hpersist", "h"));
    // Fields expiring by themselves: hexpired, and del once the hash is
    // empty.
    writer.command(&["HPEXPIRE", "h", "50", "FIELDS", "2", "a", "b"]);
    next(&event("hexpire", "h"));
    next(&event("hexpired", "h"));
    next(&event("del", "h"));
    assert_eq!(show(&writer.command(&["EXISTS", "h"])), show(b":0\r\n"));
}
