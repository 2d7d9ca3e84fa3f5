//! DUMP and RESTORE against a real redis-server 7.0: payloads from Redis
//! restore into Larder with equal contents and the reverse, for every type
//! and encoding; small values dump to Redis's very bytes; every error is
//! Redis's, byte for byte, in RESP2 and RESP3.

mod common;

use common::{encode_command, Differential, RedisServer, TestServer};
use redis::Value as R;

/// Keys of every type and encoding, built the same way in both servers.
fn setup_script() -> Vec<Vec<String>> {
    let mut cmds: Vec<Vec<String>> = Vec::new();
    let mut c = |args: &[&str]| cmds.push(args.iter().map(|s| s.to_string()).collect());
    c(&["SET", "s:int8", "-7"]);
    c(&["SET", "s:int16", "1000"]);
    c(&["SET", "s:int32", "-2000000000"]);
    c(&["SET", "s:int64", "123456789012345"]);
    c(&["SET", "s:lead0", "007"]);
    c(&["SET", "s:short", "hello"]);
    c(&["SET", "s:empty", ""]);
    let lzf = "abcabcabc".repeat(40);
    c(&["SET", "s:lzf", &lzf]);
    let noisy: String = (0..300u32)
        .map(|i| char::from(b'!' + ((i.wrapping_mul(2654435761) >> 11) % 90) as u8))
        .collect();
    c(&["SET", "s:noisy", &noisy]);
    c(&["SET", "s:ttl", "v", "PX", "100000000"]);
    c(&[
        "RPUSH",
        "l:small",
        "a",
        "1",
        "-3",
        "b",
        "70000",
        "5000000000",
        "",
    ]);
    let mut big = vec!["RPUSH".to_string(), "l:big".to_string()];
    for i in 0..3000 {
        big.push(format!("element-{i}-{}", "x".repeat(i % 40)));
    }
    let big_refs: Vec<&str> = big.iter().map(String::as_str).collect();
    c(&big_refs);
    let huge = "h".repeat(20_000);
    c(&["RPUSH", "l:hugeitem", "a", &huge, "b"]);
    c(&["SADD", "set:int", "1", "-5", "70000", "5000000000", "3"]);
    c(&["SADD", "set:words", "apple", "pear", "1", "fig"]);
    let mut ints = vec!["SADD".to_string(), "set:bigint".to_string()];
    for i in 0..600 {
        ints.push((i * 7).to_string());
    }
    let int_refs: Vec<&str> = ints.iter().map(String::as_str).collect();
    c(&int_refs);
    c(&[
        "ZADD", "z:small", "1", "one", "2.5", "two", "-0.5", "neg", "inf", "top", "-inf", "bottom",
        "1e20", "huge", "0.1", "tenth", "3", "100",
    ]);
    let mut zbig = vec!["ZADD".to_string(), "z:big".to_string()];
    for i in 0..300 {
        zbig.push(format!("{}", i as f64 / 7.0));
        zbig.push(format!("member-{i}"));
    }
    let zbig_refs: Vec<&str> = zbig.iter().map(String::as_str).collect();
    c(&zbig_refs);
    let longmember = "m".repeat(100);
    c(&["ZADD", "z:longmember", "1", &longmember, "2", "b"]);
    c(&[
        "HSET", "h:small", "f", "v", "n", "12", "neg", "-40000", "empty", "",
    ]);
    // More fields than either server keeps in a listpack (Redis 7.0.15's
    // hash-max-listpack-entries here is 512, Larder's 128).
    let mut hbig = vec!["HSET".to_string(), "h:big".to_string()];
    for i in 0..600 {
        hbig.push(format!("field-{i}"));
        hbig.push(format!("value-{i}"));
    }
    let hbig_refs: Vec<&str> = hbig.iter().map(String::as_str).collect();
    c(&hbig_refs);
    let longvalue = "v".repeat(100);
    c(&["HSET", "h:longvalue", "f", &longvalue, "g", "1"]);
    // Streams: several nodes, deletions, groups with pending entries.
    for i in 1..=250 {
        let id = format!("{i}-1");
        if i % 3 == 0 {
            c(&["XADD", "st", &id, "other", &i.to_string()]);
        } else {
            c(&["XADD", "st", &id, "f", &i.to_string(), "g", "x"]);
        }
    }
    c(&["XDEL", "st", "5-1", "6-1", "250-1"]);
    c(&["XGROUP", "CREATE", "st", "g1", "0"]);
    c(&["XGROUP", "CREATE", "st", "g2", "$"]);
    c(&["XGROUP", "CREATECONSUMER", "st", "g2", "idle"]);
    c(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "alice",
        "COUNT",
        "3",
        "STREAMS",
        "st",
        ">",
    ]);
    c(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "bob",
        "COUNT",
        "2",
        "STREAMS",
        "st",
        ">",
    ]);
    c(&["XACK", "st", "g1", "2-1"]);
    c(&["XADD", "st:empty", "MAXLEN", "0", "1-1", "f", "v"]);
    cmds
}

fn run(conn: &mut redis::Connection, args: &[&[u8]]) -> R {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("ascii command"));
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(conn)
        .unwrap_or_else(|e| R::SimpleString(format!("error: {e}")))
}

fn strs(conn: &mut redis::Connection, args: &[&str]) -> R {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    run(conn, &bytes)
}

/// A value with unordered collections sorted, for comparison.
fn sorted(v: R, pairs: bool) -> String {
    match v {
        R::Array(items) | R::Set(items) => {
            let mut shown: Vec<String> = if pairs {
                items.chunks(2).map(|c| format!("{:?}", c)).collect()
            } else {
                items.iter().map(|i| format!("{i:?}")).collect()
            };
            shown.sort();
            shown.join(",")
        }
        R::Map(items) => {
            let mut shown: Vec<String> = items.iter().map(|kv| format!("{kv:?}")).collect();
            shown.sort();
            shown.join(",")
        }
        other => format!("{other:?}"),
    }
}

/// What a key holds, read with the type's own commands.
fn contents(conn: &mut redis::Connection, key: &str) -> String {
    let kind = match strs(conn, &["TYPE", key]) {
        R::SimpleString(s) => s,
        R::Okay => "ok".into(),
        other => format!("{other:?}"),
    };
    let has_ttl = match strs(conn, &["PTTL", key]) {
        R::Int(n) => n > 0,
        _ => false,
    };
    let body = match kind.as_str() {
        "string" => format!("{:?}", strs(conn, &["GET", key])),
        "list" => format!("{:?}", strs(conn, &["LRANGE", key, "0", "-1"])),
        "set" => sorted(strs(conn, &["SMEMBERS", key]), false),
        "zset" => format!(
            "{:?}",
            strs(conn, &["ZRANGE", key, "0", "-1", "WITHSCORES"])
        ),
        "hash" => sorted(strs(conn, &["HGETALL", key]), true),
        "stream" => {
            let mut out = format!("{:?}", strs(conn, &["XRANGE", key, "-", "+"]));
            out += &format!("{:?}", strs(conn, &["XINFO", "GROUPS", key]));
            for g in ["g1", "g2"] {
                out += &format!("{:?}", strs(conn, &["XPENDING", key, g]));
                out += &format!("{:?}", strs(conn, &["XPENDING", key, g, "-", "+", "100"]))
                    .split("Int(")
                    .count()
                    .to_string();
            }
            let info = strs(conn, &["XINFO", "STREAM", key]);
            if let R::Array(items) = info {
                // length, last-generated-id, max-deleted-entry-id, entries-added, groups
                for pair in items.chunks(2) {
                    let name = format!("{:?}", pair[0]);
                    if [
                        "length",
                        "last-generated-id",
                        "max-deleted-entry-id",
                        "entries-added",
                        "groups",
                        "recorded-first-entry-id",
                    ]
                    .iter()
                    .any(|n| name.contains(n))
                    {
                        out += &format!("{:?}={:?};", pair[0], pair.get(1));
                    }
                }
            }
            out
        }
        other => other.to_string(),
    };
    let encoding = format!("{:?}", strs(conn, &["OBJECT", "ENCODING", key]));
    // Error texts name the key: the copies have other names.
    format!("{kind} ttl={has_ttl} enc={encoding} {body}").replace(&format!("'{key}'"), "'KEY'")
}

/// Equal, or a failure showing where they part.
fn same(ours: &str, theirs: &str, what: &str) {
    if ours != theirs {
        let at = ours
            .bytes()
            .zip(theirs.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let from = at.saturating_sub(80);
        panic!(
            "{what}: differ at {at}:\n ours: {}\n theirs: {}",
            &ours[from..(at + 200).min(ours.len())],
            &theirs[from..(at + 200).min(theirs.len())]
        );
    }
}

fn dump(conn: &mut redis::Connection, key: &str) -> Vec<u8> {
    match strs(conn, &["DUMP", key]) {
        R::BulkString(b) => b,
        other => panic!("DUMP {key}: {other:?}"),
    }
}

fn keys() -> Vec<&'static str> {
    vec![
        "s:int8",
        "s:int16",
        "s:int32",
        "s:int64",
        "s:lead0",
        "s:short",
        "s:empty",
        "s:lzf",
        "s:noisy",
        "s:ttl",
        "l:small",
        "l:big",
        "l:hugeitem",
        "set:int",
        "set:words",
        "set:bigint",
        "z:small",
        "z:big",
        "z:longmember",
        "h:small",
        "h:big",
        "h:longvalue",
        "st",
        "st:empty",
    ]
}

fn connect(addr: std::net::SocketAddr) -> redis::Connection {
    redis::Client::open(format!("redis://{addr}/"))
        .and_then(|c| c.get_connection())
        .expect("connect")
}

#[test]
fn every_type_moves_between_redis_and_larder() {
    let larder = TestServer::start();
    let redis_server = RedisServer::start();
    let mut ours = larder.client();
    let mut theirs = connect(redis_server.addr);
    let mut source = connect(redis_server.addr);
    for cmd in setup_script() {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        strs(&mut source, &args);
    }
    for key in keys() {
        // Redis -> Larder.
        let payload = dump(&mut theirs, key);
        let pttl = match strs(&mut theirs, &["PTTL", key]) {
            R::Int(n) if n > 0 => n.to_string(),
            _ => "0".to_string(),
        };
        let reply = run(
            &mut ours,
            &[b"RESTORE", key.as_bytes(), pttl.as_bytes(), &payload],
        );
        assert_eq!(reply, R::Okay, "RESTORE {key} into Larder");
        same(
            &contents(&mut ours, key),
            &contents(&mut theirs, key),
            &format!("{key}: Redis -> Larder"),
        );

        // Larder -> Redis, under another name.
        let back = format!("back:{key}");
        let ours_payload = dump(&mut ours, key);
        let reply = run(
            &mut theirs,
            &[b"RESTORE", back.as_bytes(), pttl.as_bytes(), &ours_payload],
        );
        assert_eq!(reply, R::Okay, "RESTORE {key} into Redis");
        let want = contents(&mut theirs, key);
        same(
            &contents(&mut theirs, &back),
            &want,
            &format!("{key}: Larder -> Redis"),
        );
    }
}

/// Where Redis's own order is deterministic (not a hash table's), Larder's
/// DUMP is Redis's, byte for byte: integer and LZF strings, listpacks,
/// intsets, a quicklist of several nodes, a skiplist, a stream with
/// deletions and consumer groups.
#[test]
fn values_dump_to_redis_bytes() {
    let larder = TestServer::start();
    let redis_server = RedisServer::start();
    let mut ours = larder.client();
    let mut theirs = connect(redis_server.addr);
    for cmd in setup_script() {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        strs(&mut ours, &args);
        strs(&mut theirs, &args);
    }
    for key in [
        "s:int8",
        "s:int16",
        "s:int32",
        "s:int64",
        "s:lead0",
        "s:short",
        "s:empty",
        "s:lzf",
        "s:noisy",
        "l:small",
        "set:int",
        "z:small",
        "h:small",
        "z:longmember",
        "l:hugeitem",
    ] {
        assert_eq!(dump(&mut ours, key), dump(&mut theirs, key), "DUMP {key}");
    }
}

/// A payload with the right footer for `body` (type byte and object).
fn with_footer(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let crc = larder::rdb::crc64(0, &p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

#[test]
fn errors_like_redis_in_resp2_and_resp3() {
    let mut d = Differential::start();
    d.script(
        "
        SET s:short hello
        RPUSH l a b c
        SET n 1
        ",
    );
    // A bulk reply: $<len>\r\n<payload>\r\n
    let good = {
        let text = d.redis.command(&["DUMP", "s:short"]);
        let start = text.iter().position(|&b| b == b'\n').expect("header") + 1;
        text[start..text.len() - 2].to_vec()
    };
    let list = {
        let text = d.redis.command(&["DUMP", "l"]);
        let start = text.iter().position(|&b| b == b'\n').expect("header") + 1;
        text[start..text.len() - 2].to_vec()
    };
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let body = &good[..good.len() - 10];
    let truncated = with_footer(&body[..body.len() - 2], 10);
    let future = with_footer(body, 11);
    let mut payloads: Vec<(&str, Vec<u8>)> = vec![
        ("good", good.clone()),
        ("list", list.clone()),
        ("bad_crc", bad_crc),
        ("truncated", truncated),
        ("future", future),
        ("short", b"abc".to_vec()),
        ("garbage", b"this is not a dump payload at all".to_vec()),
        ("unknown_type", with_footer(&[8, 1, b'x'], 10)),
        ("module", with_footer(&[7, 1, 2, 3], 10)),
        ("empty_set", with_footer(&[2, 0], 10)),
        ("dup_set", with_footer(&[2, 2, 1, b'a', 1, b'a'], 10)),
        ("bad_listpack", with_footer(&[18, 1, 2, 3, 1, 2, 3], 10)),
        (
            "huge_count",
            with_footer(
                &[1, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                10,
            ),
        ),
        ("zero_crc", {
            let mut p = body.to_vec();
            p.extend_from_slice(&[10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            p
        }),
    ];
    // Every prefix of a valid list payload, re-footed.
    let list_body = &list[..list.len() - 10];
    for cut in 1..list_body.len() {
        payloads.push(("list_prefix", with_footer(&list_body[..cut], 10)));
    }
    for protocol in ["2", "3"] {
        // HELLO's reply differs (version, id): switch both without comparing.
        d.larder.command(&["HELLO", protocol]);
        d.redis.command(&["HELLO", protocol]);
        for (name, payload) in &payloads {
            for opts in [&[][..], &[&b"REPLACE"[..]][..]] {
                let mut args: Vec<&[u8]> = vec![b"RESTORE", b"target", b"0", payload];
                args.extend_from_slice(opts);
                let reply = d.check_raw(&encode_command(&args));
                let _ = name;
                d.check(&["DEL", "target"]);
                let _ = reply;
            }
        }
        let good_s = &good[..];
        for args in [
            vec![&b"RESTORE"[..], b"s:short", b"0", good_s],
            vec![b"RESTORE", b"n", b"0", good_s, b"REPLACE"],
            vec![b"RESTORE", b"x", b"-1", good_s],
            vec![b"RESTORE", b"x", b"abc", good_s],
            vec![b"RESTORE", b"s:short", b"-1", good_s],
            vec![b"RESTORE", b"x", b"0", good_s, b"IDLETIME", b"-1"],
            vec![b"RESTORE", b"x", b"0", good_s, b"IDLETIME", b"x"],
            vec![b"RESTORE", b"x", b"0", good_s, b"FREQ", b"256"],
            vec![b"RESTORE", b"x", b"0", good_s, b"FREQ", b"-1"],
            vec![
                b"RESTORE",
                b"x",
                b"0",
                good_s,
                b"IDLETIME",
                b"1",
                b"FREQ",
                b"1",
            ],
            vec![
                b"RESTORE",
                b"x",
                b"0",
                good_s,
                b"FREQ",
                b"1",
                b"IDLETIME",
                b"1",
            ],
            vec![b"RESTORE", b"x", b"0", good_s, b"IDLETIME"],
            vec![b"RESTORE", b"x", b"0", good_s, b"BOGUS"],
            vec![b"RESTORE", b"x", b"0"],
            vec![b"DUMP"],
            vec![b"DUMP", b"missing"],
            vec![b"RESTORE", b"x", b"1", good_s, b"ABSTTL"],
            vec![b"EXISTS", b"x"],
            vec![b"RESTORE", b"n", b"1", good_s, b"ABSTTL", b"REPLACE"],
            vec![b"EXISTS", b"n"],
            vec![b"RESTORE", b"y", b"100000", good_s],
            vec![b"GET", b"y"],
            vec![b"RESTORE", b"z", b"0", good_s, b"IDLETIME", b"1000"],
            vec![b"GET", b"z"],
            vec![b"DEL", b"y", b"z"],
        ] {
            d.check_raw(&encode_command(&args));
        }
    }
}

#[test]
fn idletime_freq_and_notifications() {
    let larder = TestServer::start();
    let mut c = larder.client();
    strs(&mut c, &["SET", "k", "v"]);
    let payload = dump(&mut c, "k");
    let r = run(
        &mut c,
        &[b"RESTORE", b"idle", b"0", &payload, b"IDLETIME", b"1000"],
    );
    assert_eq!(r, R::Okay);
    match strs(&mut c, &["OBJECT", "IDLETIME", "idle"]) {
        R::Int(n) => assert!((1000..=1001).contains(&n), "{n}"),
        other => panic!("{other:?}"),
    }
    strs(
        &mut c,
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"],
    );
    let r = run(
        &mut c,
        &[b"RESTORE", b"hot", b"0", &payload, b"FREQ", b"200"],
    );
    assert_eq!(r, R::Okay);
    assert_eq!(strs(&mut c, &["OBJECT", "FREQ", "hot"]), R::Int(200));

    // A TTL: relative or absolute.
    let r = run(&mut c, &[b"RESTORE", b"ttl", b"50000", &payload]);
    assert_eq!(r, R::Okay);
    match strs(&mut c, &["PTTL", "ttl"]) {
        R::Int(n) => assert!(n > 40_000 && n <= 50_000, "{n}"),
        other => panic!("{other:?}"),
    }

    // Keyspace notification `restore`, and WATCH sees the write.
    strs(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "KEg"]);
    let mut sub = larder.raw();
    sub.command(&["SUBSCRIBE", "__keyspace@0__:fresh"]);
    let mut w = larder.client();
    strs(&mut w, &["WATCH", "fresh"]);
    let r = run(&mut c, &[b"RESTORE", b"fresh", b"0", &payload]);
    assert_eq!(r, R::Okay);
    let note = sub.read_reply();
    assert!(
        String::from_utf8_lossy(&note).contains("restore"),
        "{}",
        String::from_utf8_lossy(&note)
    );
    strs(&mut w, &["MULTI"]);
    strs(&mut w, &["GET", "fresh"]);
    assert_eq!(
        strs(&mut w, &["EXEC"]),
        R::Nil,
        "WATCH must be invalidated by RESTORE"
    );

    // A field-TTL hash dumps with RDB version 12 and restores into Larder.
    strs(&mut c, &["HSET", "hf", "a", "1", "b", "2"]);
    strs(&mut c, &["HEXPIRE", "hf", "1000", "FIELDS", "1", "a"]);
    let hp = dump(&mut c, "hf");
    assert_eq!(hp[0], 25);
    assert_eq!(&hp[hp.len() - 10..hp.len() - 8], &[12, 0]);
    let r = run(&mut c, &[b"RESTORE", b"hf2", b"0", &hp]);
    assert_eq!(r, R::Okay);
    assert_eq!(
        strs(&mut c, &["HGET", "hf2", "b"]),
        R::BulkString(b"2".to_vec())
    );
    match strs(&mut c, &["HTTL", "hf2", "FIELDS", "2", "a", "b"]) {
        R::Array(v) => {
            assert!(matches!(v[0], R::Int(n) if n > 990 && n <= 1000), "{v:?}");
            assert_eq!(v[1], R::Int(-1));
        }
        other => panic!("{other:?}"),
    }
}

/// A ziplist as Redis 6 wrote them (strings, and integers in the 4-bit,
/// int8, int16, int24, int32 and int64 encodings).
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut entries: Vec<u8> = Vec::new();
    let mut prev = 0usize;
    let mut tail = 10;
    for item in items {
        let start = entries.len();
        tail = 10 + start;
        if prev < 254 {
            entries.push(prev as u8);
        } else {
            entries.push(254);
            entries.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        let int = std::str::from_utf8(item)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|i| i.to_string().as_bytes() == *item);
        match int {
            Some(i @ 0..=12) => entries.push(0xf1 + i as u8),
            Some(i) if i8::try_from(i).is_ok() => entries.extend_from_slice(&[0xfe, i as u8]),
            Some(i) if i16::try_from(i).is_ok() => {
                entries.push(0xc0);
                entries.extend_from_slice(&(i as i16).to_le_bytes());
            }
            Some(i) if (-(1 << 23)..(1 << 23)).contains(&i) => {
                entries.push(0xf0);
                entries.extend_from_slice(&(i as i32).to_le_bytes()[..3]);
            }
            Some(i) if i32::try_from(i).is_ok() => {
                entries.push(0xd0);
                entries.extend_from_slice(&(i as i32).to_le_bytes());
            }
            Some(i) => {
                entries.push(0xe0);
                entries.extend_from_slice(&i.to_le_bytes());
            }
            None if item.len() < 64 => {
                entries.push(item.len() as u8);
                entries.extend_from_slice(item);
            }
            None if item.len() < 16384 => {
                entries.push(0x40 | (item.len() >> 8) as u8);
                entries.push(item.len() as u8);
                entries.extend_from_slice(item);
            }
            None => {
                entries.push(0x80);
                entries.extend_from_slice(&(item.len() as u32).to_be_bytes());
                entries.extend_from_slice(item);
            }
        }
        prev = entries.len() - start;
    }
    let mut zl = Vec::new();
    zl.extend_from_slice(&((entries.len() + 11) as u32).to_le_bytes());
    zl.extend_from_slice(&(tail as u32).to_le_bytes());
    zl.extend_from_slice(&(items.len() as u16).to_le_bytes());
    zl.extend_from_slice(&entries);
    zl.push(0xff);
    zl
}

fn rdb_string(out: &mut Vec<u8>, s: &[u8]) {
    larder::rdb::write_string(out, s, false);
}

#[test]
fn old_encodings_restore_as_in_redis() {
    let larder = TestServer::start();
    let redis_server = RedisServer::start();
    let mut ours = larder.client();
    let mut theirs = connect(redis_server.addr);
    let long = vec![b'q'; 300];
    let mut many: Vec<Vec<u8>> = (0..300).map(|i| format!("item{i}").into_bytes()).collect();
    many.push(long.clone());
    let many_refs: Vec<&[u8]> = many.iter().map(|v| &v[..]).collect();
    let items: &[&[u8]] = &[
        b"a",
        b"0",
        b"12",
        b"13",
        b"-100",
        b"1000",
        b"-4000000",
        b"70000000",
        b"9000000000",
        b"",
        b"007",
        &long,
    ];
    let mut payloads: Vec<(&str, Vec<u8>)> = Vec::new();
    // RDB_TYPE_LIST (1): a length and strings.
    let mut p = vec![1u8];
    larder::rdb::write_length(&mut p, items.len() as u64);
    for i in items {
        rdb_string(&mut p, i);
    }
    payloads.push(("list", p));
    // RDB_TYPE_LIST_ZIPLIST (10).
    let mut p = vec![10u8];
    rdb_string(&mut p, &ziplist(items));
    payloads.push(("list_ziplist", p));
    // RDB_TYPE_LIST_QUICKLIST (14): ziplist nodes.
    let mut p = vec![14u8];
    larder::rdb::write_length(&mut p, 2);
    rdb_string(&mut p, &ziplist(items));
    rdb_string(&mut p, &ziplist(&many_refs));
    payloads.push(("quicklist", p));
    // RDB_TYPE_ZSET (3): text scores.
    let mut p = vec![3u8];
    larder::rdb::write_length(&mut p, 4);
    for (m, score) in [
        ("a", &b"1.5"[..]),
        ("b", b"-3"),
        ("c", b"\xfe"),
        ("d", b"\xff"),
    ] {
        rdb_string(&mut p, m.as_bytes());
        if score.len() == 1 && score[0] >= 253 {
            p.push(score[0]);
        } else {
            p.push(score.len() as u8);
            p.extend_from_slice(score);
        }
    }
    payloads.push(("zset_text", p));
    // RDB_TYPE_ZSET_ZIPLIST (12).
    let mut p = vec![12u8];
    rdb_string(
        &mut p,
        &ziplist(&[b"w", b"-70000", b"x", b"1", b"y", b"2.5", b"z", b"1e300"]),
    );
    payloads.push(("zset_ziplist", p));
    // RDB_TYPE_HASH_ZIPLIST (13).
    let mut p = vec![13u8];
    rdb_string(
        &mut p,
        &ziplist(&[b"f", b"v", b"n", b"12", b"big", b"9000000000"]),
    );
    payloads.push(("hash_ziplist", p));
    // RDB_TYPE_HASH_ZIPMAP (9): Redis 2.4.
    let mut zm = vec![2u8];
    for (f, v, free) in [(&b"field"[..], &b"value"[..], 2u8), (b"n", b"5", 0)] {
        zm.push(f.len() as u8);
        zm.extend_from_slice(f);
        zm.push(v.len() as u8);
        zm.push(free);
        zm.extend_from_slice(v);
        zm.extend(std::iter::repeat_n(0, free as usize));
    }
    zm.push(255);
    let mut p = vec![9u8];
    rdb_string(&mut p, &zm);
    payloads.push(("hash_zipmap", p));
    // RDB_TYPE_SET_INTSET (11) of 64-bit members.
    let mut is = Vec::new();
    is.extend_from_slice(&8u32.to_le_bytes());
    is.extend_from_slice(&3u32.to_le_bytes());
    for v in [-5i64, 7, 1 << 40] {
        is.extend_from_slice(&v.to_le_bytes());
    }
    let mut p = vec![11u8];
    rdb_string(&mut p, &is);
    payloads.push(("intset64", p));
    // Broken ones: a ziplist whose count lies, an unsorted intset.
    let mut bad = ziplist(items);
    bad[8] = 3;
    let mut p = vec![10u8];
    rdb_string(&mut p, &bad);
    payloads.push(("ziplist_bad_count", p));
    let mut p = vec![11u8];
    let mut unsorted = is.clone();
    unsorted[8..16].copy_from_slice(&100i64.to_le_bytes());
    rdb_string(&mut p, &unsorted);
    payloads.push(("intset_unsorted", p));

    for (name, body) in payloads {
        // Larder checks every payload as deeply as Redis does with
        // sanitize-dump-payload yes (by default Redis 7.0 takes an unsorted
        // intset, then cannot find its members).
        let sanitize = if name.contains("bad") || name.contains("unsorted") {
            "yes"
        } else {
            "no"
        };
        strs(
            &mut theirs,
            &["CONFIG", "SET", "sanitize-dump-payload", sanitize],
        );
        let payload = with_footer(&body, 9);
        let a = run(&mut ours, &[b"RESTORE", name.as_bytes(), b"0", &payload]);
        let b = run(&mut theirs, &[b"RESTORE", name.as_bytes(), b"0", &payload]);
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "RESTORE {name}");
        same(
            &contents(&mut ours, name),
            &contents(&mut theirs, name),
            name,
        );
    }
}

/// RESTORE REPLACE deletes the old key and adds a new one: the LFU counter
/// starts afresh (FREQ sets it), as in Redis; a TTL in the past with
/// REPLACE only deletes.
#[test]
fn replace_starts_afresh_like_redis() {
    let mut d = Differential::start();
    d.script(
        "
        CONFIG SET maxmemory-policy allkeys-lfu
        SET k v
        GET k
        GET k
        GET k
        OBJECT FREQ k
        ",
    );
    let text = d.redis.command(&["DUMP", "k"]);
    let start = text.iter().position(|&b| b == b'\n').expect("header") + 1;
    let payload = text[start..text.len() - 2].to_vec();
    d.larder.command(&["DUMP", "k"]);
    for args in [
        vec![&b"RESTORE"[..], b"k", b"0", &payload, b"REPLACE"],
        vec![b"OBJECT", b"FREQ", b"k"],
        vec![b"RESTORE", b"k", b"0", &payload, b"REPLACE", b"FREQ", b"77"],
        vec![b"OBJECT", b"FREQ", b"k"],
        vec![b"RESTORE", b"k", b"1", &payload, b"REPLACE", b"ABSTTL"],
        vec![b"EXISTS", b"k"],
        vec![b"RESTORE", b"k", b"1", &payload, b"ABSTTL"],
        vec![b"EXISTS", b"k"],
        vec![b"CONFIG", b"SET", b"maxmemory-policy", b"noeviction"],
    ] {
        d.check_raw(&encode_command(&args));
    }
}

/// A client tracking a key hears of its RESTORE (REPLACE) as Redis sends
/// it: an `invalidate` push naming the key.
#[test]
fn restore_invalidates_tracked_keys() {
    let larder = TestServer::start();
    let mut tracker = larder.raw();
    tracker.command(&["HELLO", "3"]);
    assert_eq!(tracker.command(&["CLIENT", "TRACKING", "ON"]), b"+OK\r\n");
    let mut writer = larder.raw();
    writer.command(&["SET", "k", "old"]);
    tracker.command(&["GET", "k"]);
    let text = writer.command(&["DUMP", "k"]);
    let start = text.iter().position(|&b| b == b'\n').expect("header") + 1;
    let payload = text[start..text.len() - 2].to_vec();
    let reply = writer.command_bytes(&[b"RESTORE", b"k", b"0", &payload, b"REPLACE"]);
    assert_eq!(reply, b"+OK\r\n");
    // The push is already sent when RESTORE replies; the next frame is it.
    let push = tracker.read_reply();
    assert_eq!(
        push,
        b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n",
        "{}",
        String::from_utf8_lossy(&push)
    );
}
