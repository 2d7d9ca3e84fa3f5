//! Set commands: differential tests against a real redis-server 7.0 for
//! everything deterministic (member order compared order-insensitively),
//! property tests for SPOP/SRANDMEMBER, SSCAN's guarantee under concurrent
//! changes, encodings against OBJECT ENCODING, and a proptest model test
//! against a `BTreeSet` model.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};

use common::{Differential, RawClient, RedisServer, TestServer};
use proptest::prelude::*;
use redis::Commands;

/// A flat aggregate reply (array or set of bulk strings) with its elements
/// sorted, so that replies differing only in member order compare equal;
/// the header (`*n` or `~n`) is kept, so RESP3 types still count. Any other
/// reply is returned as is.
fn sorted_reply(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).into_owned();
    if !(text.starts_with('*') || text.starts_with('~')) {
        return text;
    }
    let Some(header_end) = raw.windows(2).position(|w| w == b"\r\n") else {
        return text;
    };
    let header = String::from_utf8_lossy(&raw[..header_end]).into_owned();
    let mut rest = &raw[header_end + 2..];
    let mut elements: Vec<Vec<u8>> = Vec::new();
    while !rest.is_empty() {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return text;
        };
        let Some(len) = std::str::from_utf8(&rest[1..line_end])
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return text;
        };
        if rest[0] != b'$' || rest.len() < line_end + 2 + len + 2 {
            return text;
        }
        let element_end = line_end + 2 + len + 2;
        elements.push(rest[..element_end].to_vec());
        rest = &rest[element_end..];
    }
    elements.sort();
    let mut out = header;
    out.push_str("\r\n");
    for element in elements {
        out.push_str(&String::from_utf8_lossy(&element));
    }
    out
}

/// Sends `args` to both servers and compares the replies with their
/// elements sorted (SMEMBERS, SINTER, SUNION, SDIFF order differs).
fn check_sorted(pair: &mut Differential, args: &[&str]) -> String {
    let ours = sorted_reply(&pair.larder.command(args));
    let theirs = sorted_reply(&pair.redis.command(args));
    assert_eq!(ours, theirs, "replies differ for {args:?}");
    ours
}

/// Like `Differential::script`, but lines starting with `~` are compared
/// with their elements sorted.
fn script(pair: &mut Differential, script: &str) {
    for line in script.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(unordered) = line.strip_prefix('~') {
            let args: Vec<&str> = unordered.split_whitespace().collect();
            check_sorted(pair, &args);
        } else {
            let args: Vec<&str> = line.split_whitespace().collect();
            pair.check(&args);
        }
    }
}

/// Runs a script in RESP2, then again from scratch in RESP3.
fn script_both_protocols(text: &str) {
    let mut pair = Differential::start();
    script(&mut pair, text);
    pair.check(&["FLUSHALL"]);
    pair.larder.command(&["HELLO", "3"]);
    pair.redis.command(&["HELLO", "3"]);
    script(&mut pair, text);
}

#[test]
fn add_remove_membership_and_cardinality() {
    script_both_protocols(
        "
        SADD s a b c a
        SADD s c d
        SADD s 1 2 3
        SCARD s
        SCARD missing
        SISMEMBER s a
        SISMEMBER s zz
        SISMEMBER missing a
        SMISMEMBER s a zz b a
        SMISMEMBER missing a b
        ~SMEMBERS s
        ~SMEMBERS missing
        SREM s a zz a
        SREM missing a
        SCARD s
        SREM s b c d 1 2 3
        EXISTS s
        SCARD s
        SADD e x
        SREM e x x
        EXISTS e
        # empty member, binary-ish member, long member
        SADD odd '' - -0 007 9223372036854775808
        SISMEMBER odd -0
        ~SMEMBERS odd
        SET str v
        SADD str a
        SREM str a
        SCARD str
        SISMEMBER str a
        SMISMEMBER str a
        SMEMBERS str
        # arity
        SADD s
        SADD
        SREM s
        SCARD
        SCARD a b
        SISMEMBER s
        SISMEMBER s a b
        SMISMEMBER s
        SMEMBERS
        SMEMBERS a b
        ",
    );
}

#[test]
fn sinter_sunion_sdiff() {
    script_both_protocols(
        "
        SADD a 1 2 3 4 x y
        SADD b 3 4 5 y z
        SADD c 4 y q
        SADD ints 1 2 3 4 5 6 7 8 9 10
        SET str v
        ~SINTER a b
        ~SINTER a b c
        ~SINTER a a
        ~SINTER b a a b
        ~SINTER a missing
        ~SINTER missing
        ~SINTER a ints
        ~SUNION a b c
        ~SUNION a missing
        ~SUNION missing other
        ~SUNION a a
        ~SDIFF a b
        ~SDIFF a b c
        ~SDIFF a missing
        ~SDIFF missing a
        ~SDIFF a a
        ~SDIFF b a a
        ~SDIFF ints a
        ~SDIFF a ints b c missing
        # WRONGTYPE wins over a missing key, wherever it is
        SINTER missing str
        SINTER str missing
        SINTER a str
        SUNION missing str
        SUNION a str
        SDIFF missing str
        SDIFF a str
        SDIFF str a
        SINTER
        SUNION
        SDIFF
        ",
    );
}

#[test]
fn store_forms_overwrite_delete_and_count() {
    script_both_protocols(
        "
        SADD a 1 2 3 x
        SADD b 2 3 4 y
        SET str v
        SET d1 foo
        EXPIRE d1 1000
        SINTERSTORE d1 a b
        TTL d1
        TYPE d1
        ~SMEMBERS d1
        SUNIONSTORE d2 a b missing
        ~SMEMBERS d2
        SDIFFSTORE d3 a b
        ~SMEMBERS d3
        SDIFFSTORE d3 a a
        EXISTS d3
        SINTERSTORE d1 a missing
        EXISTS d1
        SUNIONSTORE d4 missing other
        EXISTS d4
        SDIFFSTORE d2 missing a
        EXISTS d2
        # a destination of another type is replaced; a source of another type is an error
        SINTERSTORE d5 a str
        SUNIONSTORE d5 str
        SDIFFSTORE d5 a str
        EXISTS d5
        SUNIONSTORE str a b
        TYPE str
        ~SMEMBERS str
        SET str v
        SINTERSTORE str missing
        EXISTS str
        # the destination may be a source
        SUNIONSTORE a a b
        ~SMEMBERS a
        SDIFFSTORE a a b
        ~SMEMBERS a
        SINTERSTORE b b a
        ~SMEMBERS b
        SINTERSTORE
        SINTERSTORE d
        SUNIONSTORE d
        SDIFFSTORE d
        ",
    );
}

#[test]
fn sintercard_matches_redis() {
    script_both_protocols(
        "
        SADD a 1 2 3 4 x y
        SADD b 3 4 5 y z
        SADD c 4 y q
        SET str v
        SINTERCARD 1 a
        SINTERCARD 2 a b
        SINTERCARD 3 a b c
        SINTERCARD 2 a missing
        SINTERCARD 2 a a
        SINTERCARD 2 a b LIMIT 0
        SINTERCARD 2 a b LIMIT 1
        SINTERCARD 2 a b limit 2
        SINTERCARD 2 a b LIMIT 100
        SINTERCARD 1 a LIMIT 3
        SINTERCARD 2 a b LIMIT 5 LIMIT 1
        SINTERCARD 2 missing str
        SINTERCARD 2 str missing
        SINTERCARD 1 str
        SINTERCARD 0 a
        SINTERCARD -1 a
        SINTERCARD abc a
        SINTERCARD 01 a
        SINTERCARD 3 a b
        SINTERCARD 9223372036854775807 a
        SINTERCARD 99999999999999999999 a
        SINTERCARD 1 a LIMIT -1
        SINTERCARD 1 a LIMIT abc
        SINTERCARD 1 a LIMIT
        SINTERCARD 1 a foo
        SINTERCARD 1 missing str
        SINTERCARD 0 a LIMIT -1
        SINTERCARD 3 a b LIMIT -1
        SINTERCARD 1
        SINTERCARD
        ",
    );
}

#[test]
fn smove_matches_redis() {
    script_both_protocols(
        "
        SADD s a b c
        SADD t c d
        SET str v
        SMOVE s t a
        ~SMEMBERS s
        ~SMEMBERS t
        SMOVE s t c
        ~SMEMBERS s
        SMOVE s t zz
        SMOVE s new b
        EXISTS s
        TYPE new
        ~SMEMBERS new
        SMOVE t t d
        SMOVE t t zz
        SMOVE missing t a
        SMOVE missing str a
        SMOVE str t a
        SMOVE t str d
        SMOVE str str a
        SMOVE t missing2 zz
        EXISTS missing2
        SMOVE s t
        SMOVE s t a b
        ",
    );
}

#[test]
fn spop_and_srandmember_deterministic_cases() {
    script_both_protocols(
        "
        SET str v
        SADD one only
        SPOP missing
        SPOP missing 3
        SPOP missing 0
        SPOP one 0
        SPOP one -1
        SPOP missing -1
        SPOP str -1
        SPOP str
        SPOP str 0
        SPOP str 1
        SPOP one abc
        SPOP one 1 2
        SPOP one 9223372036854775808
        SRANDMEMBER missing
        SRANDMEMBER missing 3
        SRANDMEMBER missing -3
        SRANDMEMBER missing 0
        SRANDMEMBER one
        SRANDMEMBER one 0
        SRANDMEMBER one 1
        SRANDMEMBER one 5
        SRANDMEMBER one -3
        SRANDMEMBER one 9223372036854775807
        SRANDMEMBER one -9223372036854775808
        SRANDMEMBER missing -9223372036854775808
        SRANDMEMBER str -9223372036854775808
        SRANDMEMBER str 3
        SRANDMEMBER str
        SRANDMEMBER one abc
        SRANDMEMBER one 1 2
        SPOP one
        EXISTS one
        SADD one only
        SPOP one 5
        EXISTS one
        SADD two x y
        ~SPOP two 2
        EXISTS two
        SADD two x y
        ~SRANDMEMBER two 2
        ~SRANDMEMBER two 100
        SPOP
        SRANDMEMBER
        ",
    );
}

#[test]
fn sscan_matches_redis_where_deterministic() {
    script_both_protocols(
        "
        SET str v
        SADD small a b c
        SADD ints 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25
        SSCAN missing 0
        SSCAN missing 0 COUNT 0
        SSCAN missing 0 NONSENSE
        SSCAN missing abc
        SSCAN str 0
        SSCAN str 0 COUNT 0
        SSCAN str abc
        SSCAN small abc
        SSCAN small 1.5
        SSCAN small 18446744073709551616
        SSCAN small 0 COUNT 0
        SSCAN small 0 COUNT -1
        SSCAN small 0 COUNT abc
        SSCAN small 0 COUNT
        SSCAN small 0 MATCH
        SSCAN small 0 TYPE set
        SSCAN small 0 NOVALUES
        SSCAN small 0 COUNT 5 FOO bar
        SSCAN small
        SSCAN
        ",
    );
    let mut pair = Differential::start();
    script(
        &mut pair,
        "
        SADD small a b c
        SADD ints 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25
        SADD mixed 1 2 x
        ",
    );
    // Small sets come back whole in one call with cursor 0; an intset does
    // whatever the COUNT and the cursor.
    for args in [
        &["SSCAN", "small", "0"][..],
        &["SSCAN", "small", "0", "COUNT", "100"],
        &["SSCAN", "small", "0", "MATCH", "[ab]"],
        &["SSCAN", "small", "0", "MATCH", "*"],
        &["SSCAN", "small", "0", "match", "z*", "count", "50"],
        &["SSCAN", "mixed", "0"],
        &["SSCAN", "ints", "0"],
        &["SSCAN", "ints", "0", "COUNT", "3"],
        &["SSCAN", "ints", "12345", "COUNT", "3"],
        &["SSCAN", "ints", "0", "MATCH", "1*", "COUNT", "1"],
    ] {
        let ours = scan_reply(&pair.larder.command(args));
        let theirs = scan_reply(&pair.redis.command(args));
        assert_eq!(ours, theirs, "SSCAN replies differ for {args:?}");
    }
}

/// An SSCAN reply: the cursor and the members (sorted).
fn scan_reply(raw: &[u8]) -> (String, Vec<Vec<u8>>) {
    let value = redis::parse_redis_value(raw).expect("well-formed reply");
    let (cursor, mut members): (String, Vec<Vec<u8>>) =
        redis::from_redis_value(&value).expect("SSCAN reply");
    members.sort();
    (cursor, members)
}

#[test]
fn commands_in_a_transaction_lock_their_keys() {
    script_both_protocols(
        "
        SADD a 1 2 3
        SADD b 2 3 4
        MULTI
        SINTERCARD 2 a b
        SINTERCARD 2 a b LIMIT 1
        SMOVE a b 1
        SINTERSTORE c a b
        SUNIONSTORE d a b
        SDIFFSTORE e b a
        SCARD c
        SPOP missing 2
        EXEC
        ~SMEMBERS d
        ~SMEMBERS e
        MULTI
        SINTERCARD 0 a
        SADD a
        EXEC
        MULTI
        SINTERCARD 1 a LIMIT -1
        SPOP a -1
        SCARD a
        EXEC
        ",
    );
}

#[test]
fn random_commands_keep_their_promises() {
    let server = TestServer::start();
    let mut con = server.client();
    let members: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    let _: i64 = con.sadd("s", &members).unwrap();
    let universe: HashSet<String> = members.iter().cloned().collect();

    for count in [1usize, 2, 10, 16, 17, 49, 50, 51, 1000] {
        let got: Vec<String> = con.srandmember_multiple("s", count).unwrap();
        assert_eq!(got.len(), count.min(50), "SRANDMEMBER s {count}");
        let distinct: HashSet<&String> = got.iter().collect();
        assert_eq!(distinct.len(), got.len(), "SRANDMEMBER s {count} repeats");
        assert!(got.iter().all(|m| universe.contains(m)));
    }
    for count in [1i64, 2, 50, 51, 1000] {
        let got: Vec<String> = redis::cmd("SRANDMEMBER")
            .arg("s")
            .arg(-count)
            .query(&mut con)
            .unwrap();
        assert_eq!(got.len() as i64, count, "SRANDMEMBER s -{count}");
        assert!(got.iter().all(|m| universe.contains(m)));
    }
    let single: String = con.srandmember("s").unwrap();
    assert!(universe.contains(&single));
    let card: i64 = con.scard("s").unwrap();
    assert_eq!(card, 50, "SRANDMEMBER does not remove");

    // Repeated picks are roughly uniform: 20000 picks over 10 members.
    let ten: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
    let _: i64 = con.sadd("u", &ten).unwrap();
    let picks: Vec<String> = redis::cmd("SRANDMEMBER")
        .arg("u")
        .arg(-20000)
        .query(&mut con)
        .unwrap();
    let mut histogram: HashMap<&str, usize> = HashMap::new();
    for pick in &picks {
        *histogram.entry(pick.as_str()).or_default() += 1;
    }
    assert_eq!(histogram.len(), 10);
    assert!(
        histogram.values().all(|&n| (1500..2500).contains(&n)),
        "{histogram:?}"
    );

    // SPOP removes what it returns, and the key goes with the last member.
    let mut model = universe.clone();
    for count in [1usize, 3, 10, 20] {
        let got: Vec<String> = redis::cmd("SPOP")
            .arg("s")
            .arg(count)
            .query(&mut con)
            .unwrap();
        assert_eq!(got.len(), count);
        for member in &got {
            assert!(
                model.remove(member),
                "SPOP returned {member} twice or never added"
            );
        }
        let remaining: HashSet<String> = con.smembers("s").unwrap();
        assert_eq!(remaining, model);
    }
    let one: String = con.spop("s").unwrap();
    assert!(model.remove(&one));
    let rest: Vec<String> = redis::cmd("SPOP")
        .arg("s")
        .arg(100)
        .query(&mut con)
        .unwrap();
    assert_eq!(rest.iter().cloned().collect::<HashSet<_>>(), model);
    assert_eq!(rest.len(), model.len());
    let exists: bool = con.exists("s").unwrap();
    assert!(!exists, "a set emptied by SPOP is deleted");

    // A large pop (what remains is small) takes the rebuilding path.
    let many: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    let _: i64 = con.sadd("big", &many).unwrap();
    let got: Vec<String> = redis::cmd("SPOP")
        .arg("big")
        .arg(590)
        .query(&mut con)
        .unwrap();
    let distinct: HashSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), 590);
    let remaining: HashSet<String> = con.smembers("big").unwrap();
    assert_eq!(remaining.len(), 10);
    assert!(remaining.iter().all(|m| !distinct.contains(m)));
}

#[test]
fn huge_counts_do_not_allocate() {
    let server = TestServer::start();
    let mut raw = server.raw();
    raw.command(&["SADD", "s", "a", "b", "c"]);
    // Redis 7.0 refuses i64::MIN (its negation overflows).
    assert_eq!(
        raw.command(&["SRANDMEMBER", "s", "-9223372036854775808"]),
        b"-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n"
    );
    // Redis would stream i64::MAX picks until the client is dropped; Larder
    // refuses a reply it would have to hold in memory.
    let reply = raw.command(&["SRANDMEMBER", "s", "-9223372036854775807"]);
    assert!(
        reply.starts_with(b"-ERR SRANDMEMBER count is too large"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    let reply = raw.command(&["SRANDMEMBER", "s", "-100000000"]);
    assert!(
        reply.starts_with(b"-ERR"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    // Positive counts and SPOP counts are clamped to the set size.
    assert!(raw
        .command(&["SRANDMEMBER", "s", "9223372036854775807"])
        .starts_with(b"*3\r\n"));
    assert!(raw
        .command(&["SPOP", "s", "9223372036854775807"])
        .starts_with(b"*3\r\n"));
    assert_eq!(raw.command(&["EXISTS", "s"]), b":0\r\n");
    raw.command(&["SADD", "t", "a"]);
    assert_eq!(
        raw.command(&["SSCAN", "t", "0", "COUNT", "9223372036854775807"]),
        b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n"
    );
    assert_eq!(
        raw.command(&["SINTERCARD", "1", "t", "LIMIT", "9223372036854775807"]),
        b":1\r\n"
    );
    assert_eq!(raw.command(&["PING"]), b"+PONG\r\n");
}

#[test]
fn sscan_returns_every_stable_member_despite_changes() {
    let server = TestServer::start();
    let mut con = server.client();
    let mut writer = server.client();
    let members: Vec<String> = (0..2000).map(|i| format!("member:{i}")).collect();
    let _: i64 = con.sadd("s", &members).unwrap();
    // Members divisible by 4 get removed during the iteration; the rest
    // stay and must all be returned.
    let stable: HashSet<String> = (0..2000)
        .filter(|i| i % 4 != 0)
        .map(|i| format!("member:{i}"))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor: u64 = 0;
    let mut calls = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg("s")
            .arg(cursor)
            .arg("COUNT")
            .arg(37)
            .query(&mut con)
            .unwrap();
        assert!(found.len() <= 37);
        seen.extend(found);
        // Change the set between calls: remove some, add others.
        for i in (calls * 4..2000).step_by(4).take(3) {
            let _: i64 = writer.srem("s", format!("member:{i}")).unwrap();
        }
        let _: i64 = writer.sadd("s", format!("added:{calls}")).unwrap();
        calls += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
        assert!(calls < 10_000, "SSCAN does not terminate");
    }
    let missed: Vec<&String> = stable.difference(&seen).collect();
    assert!(
        missed.is_empty(),
        "SSCAN missed {} members: {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );

    // MATCH filters what is visited; COUNT bounds the members visited.
    let mut matched: BTreeSet<String> = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg("s")
            .arg(cursor)
            .arg("MATCH")
            .arg("member:1?")
            .arg("COUNT")
            .arg(100)
            .query(&mut con)
            .unwrap();
        matched.extend(found);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let expected: BTreeSet<String> = (10..20)
        .filter(|i| i % 4 != 0)
        .map(|i| format!("member:{i}"))
        .collect();
    assert_eq!(matched, expected);
}

/// Larder's encoding for `key` (what OBJECT ENCODING would report).
fn larder_encoding(server: &TestServer, key: &str) -> Option<&'static str> {
    let store = &server.shared.store;
    let mut locked = store.lock_keys([key.as_bytes()]);
    let db = locked.db(0, key.as_bytes()).ok()?;
    db.get(key.as_bytes(), store.now_ms())
        .map(|entry| entry.value().encoding())
}

#[test]
fn encodings_match_redis_7_0() {
    let larder = TestServer::start();
    let redis = RedisServer::start();
    let mut ours = larder.raw();
    let mut theirs = redis.raw();
    let both = |ours: &mut RawClient, theirs: &mut RawClient, args: &[&str]| {
        let a = sorted_reply(&ours.command(args));
        let b = sorted_reply(&theirs.command(args));
        assert_eq!(a, b, "replies differ for {args:?}");
    };
    let ints: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    let mut commands: Vec<Vec<String>> = Vec::new();
    fn add(commands: &mut Vec<Vec<String>>, line: &str) {
        commands.push(line.split_whitespace().map(String::from).collect());
    }
    add(&mut commands, "SADD i 1 2 3 -4 9223372036854775807");
    add(&mut commands, "SADD s a 1");
    add(&mut commands, "SADD m 1 2 3");
    add(&mut commands, "SADD m x");
    add(&mut commands, "SREM m x");
    add(&mut commands, "SADD z 01");
    add(&mut commands, "SADD neg -0");
    add(
        &mut commands,
        "SADD big -9223372036854775808 9223372036854775808",
    );
    add(&mut commands, "SINTERSTORE inter m i");
    add(&mut commands, "SUNIONSTORE uni i s");
    add(&mut commands, "SUNIONSTORE uni2 i m");
    // SDIFFSTORE: Redis's choice of algorithm decides the encoding.
    add(&mut commands, "SADD first 1 2 3 a");
    add(&mut commands, "SADD other a");
    add(&mut commands, "SDIFFSTORE diff1 first other");
    add(&mut commands, "SADD huge a b c d e f g h i j k l");
    add(&mut commands, "SDIFFSTORE diff2 first huge");
    add(&mut commands, "SMOVE first newint 1");
    add(&mut commands, "SMOVE first newstr a");
    let mut line = vec!["SADD".to_string(), "many".to_string()];
    line.extend(ints.iter().take(512).cloned());
    commands.push(line);
    let mut line = vec!["SADD".to_string(), "many2".to_string()];
    line.extend(ints.iter().take(513).cloned());
    commands.push(line);
    add(&mut commands, "SREM many2 0 1 2 3");
    let mut line = vec!["SADD".to_string(), "pop".to_string()];
    line.extend(ints.iter().cloned());
    commands.push(line);
    let mut line = vec!["SADD".to_string(), "pop2".to_string()];
    line.extend(ints.iter().cloned());
    commands.push(line);
    for command in &commands {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        both(&mut ours, &mut theirs, &args);
    }
    // Popping most of a set rebuilds it (fresh encoding); popping a few
    // does not. Results are random, only the sizes and encodings compare.
    for (key, count) in [("pop", "590"), ("pop2", "100")] {
        ours.command(&["SPOP", key, count]);
        theirs.command(&["SPOP", key, count]);
        both(&mut ours, &mut theirs, &["SCARD", key]);
    }
    for key in [
        "i", "s", "m", "z", "neg", "big", "inter", "uni", "uni2", "first", "diff1", "diff2",
        "newint", "newstr", "many", "many2", "pop", "pop2",
    ] {
        let reply = theirs.command(&["OBJECT", "ENCODING", key]);
        let text = String::from_utf8_lossy(&reply);
        let expected = text.lines().nth(1).map(str::to_string);
        assert_eq!(
            larder_encoding(&larder, key).map(str::to_string),
            expected,
            "encoding of {key}"
        );
    }
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Add(usize, Vec<u8>),
    Rem(usize, Vec<u8>),
    IsMember(usize, u8),
    Card(usize),
    Members(usize),
    Pop(usize, usize),
    RandMember(usize, i64),
    Move(usize, usize, u8),
    InterStore(usize, Vec<usize>),
    UnionStore(usize, Vec<usize>),
    DiffStore(usize, Vec<usize>),
    InterCard(Vec<usize>, usize),
}

const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];

fn member(n: u8) -> String {
    // A mix of integers (intset) and strings.
    if n.is_multiple_of(3) {
        format!("m{n}")
    } else {
        n.to_string()
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let members = prop::collection::vec(0u8..24, 1..6);
    let keys = prop::collection::vec(0..KEYS.len(), 1..4);
    prop_oneof![
        3 => (key.clone(), members.clone()).prop_map(|(k, m)| Op::Add(k, m)),
        2 => (key.clone(), members).prop_map(|(k, m)| Op::Rem(k, m)),
        1 => (key.clone(), 0u8..24).prop_map(|(k, m)| Op::IsMember(k, m)),
        1 => key.clone().prop_map(Op::Card),
        1 => key.clone().prop_map(Op::Members),
        1 => (key.clone(), 0usize..8).prop_map(|(k, n)| Op::Pop(k, n)),
        1 => (key.clone(), -8i64..8).prop_map(|(k, n)| Op::RandMember(k, n)),
        1 => (key.clone(), key.clone(), 0u8..24).prop_map(|(a, b, m)| Op::Move(a, b, m)),
        1 => (key.clone(), keys.clone()).prop_map(|(d, s)| Op::InterStore(d, s)),
        1 => (key.clone(), keys.clone()).prop_map(|(d, s)| Op::UnionStore(d, s)),
        1 => (key.clone(), keys.clone()).prop_map(|(d, s)| Op::DiffStore(d, s)),
        1 => (keys, 0usize..4).prop_map(|(s, l)| Op::InterCard(s, l)),
    ]
}

type Model = HashMap<usize, BTreeSet<String>>;

fn model_get(model: &Model, key: usize) -> BTreeSet<String> {
    model.get(&key).cloned().unwrap_or_default()
}

fn model_put(model: &mut Model, key: usize, set: BTreeSet<String>) {
    if set.is_empty() {
        model.remove(&key);
    } else {
        model.insert(key, set);
    }
}

fn run_model(con: &mut redis::Connection, ops: &[Op]) -> Result<(), TestCaseError> {
    let _: () = redis::cmd("FLUSHALL").query(con).unwrap();
    let mut model: Model = HashMap::new();
    for op in ops {
        match op {
            Op::Add(k, ms) => {
                let ms: Vec<String> = ms.iter().map(|&m| member(m)).collect();
                let got: i64 = con.sadd(KEYS[*k], &ms).unwrap();
                let set = model.entry(*k).or_default();
                let added = ms.iter().filter(|m| set.insert((*m).clone())).count();
                prop_assert_eq!(got, added as i64, "{:?}", op);
            }
            Op::Rem(k, ms) => {
                let ms: Vec<String> = ms.iter().map(|&m| member(m)).collect();
                let got: i64 = con.srem(KEYS[*k], &ms).unwrap();
                let mut set = model_get(&model, *k);
                let removed = ms.iter().filter(|m| set.remove(*m)).count();
                model_put(&mut model, *k, set);
                prop_assert_eq!(got, removed as i64, "{:?}", op);
            }
            Op::IsMember(k, m) => {
                let got: bool = con.sismember(KEYS[*k], member(*m)).unwrap();
                prop_assert_eq!(got, model_get(&model, *k).contains(&member(*m)));
            }
            Op::Card(k) => {
                let got: usize = con.scard(KEYS[*k]).unwrap();
                prop_assert_eq!(got, model_get(&model, *k).len());
            }
            Op::Members(k) => {
                let got: BTreeSet<String> = con.smembers(KEYS[*k]).unwrap();
                prop_assert_eq!(got, model_get(&model, *k));
            }
            Op::Pop(k, n) => {
                let got: Vec<String> = redis::cmd("SPOP").arg(KEYS[*k]).arg(*n).query(con).unwrap();
                let mut set = model_get(&model, *k);
                prop_assert_eq!(got.len(), (*n).min(set.len()));
                for m in &got {
                    prop_assert!(set.remove(m), "SPOP returned {} not in the set", m);
                }
                model_put(&mut model, *k, set);
            }
            Op::RandMember(k, n) => {
                let got: Vec<String> = redis::cmd("SRANDMEMBER")
                    .arg(KEYS[*k])
                    .arg(*n)
                    .query(con)
                    .unwrap();
                let set = model_get(&model, *k);
                prop_assert!(got.iter().all(|m| set.contains(m)));
                if *n >= 0 {
                    prop_assert_eq!(got.len(), (*n as usize).min(set.len()));
                    let distinct: HashSet<&String> = got.iter().collect();
                    prop_assert_eq!(distinct.len(), got.len());
                } else if set.is_empty() {
                    prop_assert!(got.is_empty());
                } else {
                    prop_assert_eq!(got.len() as i64, -n);
                }
            }
            Op::Move(a, b, m) => {
                let m = member(*m);
                let got: bool = con.smove(KEYS[*a], KEYS[*b], &m).unwrap();
                let mut source = model_get(&model, *a);
                let expected = source.contains(&m);
                if expected && a != b {
                    source.remove(&m);
                    model_put(&mut model, *a, source);
                    model.entry(*b).or_default().insert(m);
                }
                prop_assert_eq!(got, expected, "{:?}", op);
            }
            Op::InterStore(d, sources) | Op::UnionStore(d, sources) | Op::DiffStore(d, sources) => {
                let sets: Vec<BTreeSet<String>> =
                    sources.iter().map(|s| model_get(&model, *s)).collect();
                let (name, result): (&str, BTreeSet<String>) = match op {
                    Op::InterStore(..) => (
                        "SINTERSTORE",
                        sets[0]
                            .iter()
                            .filter(|m| sets.iter().all(|s| s.contains(*m)))
                            .cloned()
                            .collect(),
                    ),
                    Op::UnionStore(..) => ("SUNIONSTORE", sets.iter().flatten().cloned().collect()),
                    _ => (
                        "SDIFFSTORE",
                        sets[0]
                            .iter()
                            .filter(|m| !sets[1..].iter().any(|s| s.contains(*m)))
                            .cloned()
                            .collect(),
                    ),
                };
                let mut cmd = redis::cmd(name);
                cmd.arg(KEYS[*d]);
                for s in sources {
                    cmd.arg(KEYS[*s]);
                }
                let got: usize = cmd.query(con).unwrap();
                prop_assert_eq!(got, result.len(), "{:?}", op);
                model_put(&mut model, *d, result);
            }
            Op::InterCard(sources, limit) => {
                let sets: Vec<BTreeSet<String>> =
                    sources.iter().map(|s| model_get(&model, *s)).collect();
                let card = sets[0]
                    .iter()
                    .filter(|m| sets.iter().all(|s| s.contains(*m)))
                    .count();
                let expected = if *limit == 0 { card } else { card.min(*limit) };
                let mut cmd = redis::cmd("SINTERCARD");
                cmd.arg(sources.len());
                for s in sources {
                    cmd.arg(KEYS[*s]);
                }
                cmd.arg("LIMIT").arg(*limit);
                let got: usize = cmd.query(con).unwrap();
                prop_assert_eq!(got, expected, "{:?}", op);
            }
        }
        // After every step each key agrees with the model: its size, and
        // its existence (empty sets are deleted).
        for (k, key) in KEYS.iter().enumerate() {
            let exists: bool = con.exists(*key).unwrap();
            let set = model.get(&k);
            prop_assert_eq!(exists, set.is_some(), "existence of {} after {:?}", key, op);
            let card: usize = con.scard(*key).unwrap();
            prop_assert_eq!(card, set.map_or(0, BTreeSet::len));
        }
    }
    for (k, key) in KEYS.iter().enumerate() {
        let got: BTreeSet<String> = con.smembers(*key).unwrap();
        prop_assert_eq!(got, model_get(&model, k));
    }
    Ok(())
}

#[test]
fn model_test_against_btreeset() {
    let server = TestServer::start();
    let con = std::cell::RefCell::new(server.client());
    let config = ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in prop::collection::vec(op_strategy(), 1..40))| {
        run_model(&mut con.borrow_mut(), &ops)?;
    });
}

#[test]
fn command_info_matches_redis() {
    let mut pair = Differential::start();
    for name in [
        "sadd",
        "srem",
        "smembers",
        "sismember",
        "smismember",
        "scard",
        "spop",
        "srandmember",
        "smove",
        "sinter",
        "sintercard",
        "sunion",
        "sdiff",
        "sinterstore",
        "sunionstore",
        "sdiffstore",
        "sscan",
    ] {
        let ours = redis::parse_redis_value(&pair.larder.command(&["COMMAND", "INFO", name]))
            .expect("COMMAND INFO reply");
        let theirs = redis::parse_redis_value(&pair.redis.command(&["COMMAND", "INFO", name]))
            .expect("COMMAND INFO reply");
        // name, arity, flags, first key, last key, step, ACL categories
        let head = |value: redis::Value| -> Vec<redis::Value> {
            match value {
                redis::Value::Array(mut outer) => match outer.remove(0) {
                    redis::Value::Array(info) => info.into_iter().take(7).collect(),
                    other => panic!("unexpected {other:?}"),
                },
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(head(ours), head(theirs), "COMMAND INFO {name}");
    }
    // The key positions EXEC locks by (COMMAND GETKEYS reads the same spec).
    for args in [
        &[
            "COMMAND",
            "GETKEYS",
            "SINTERCARD",
            "2",
            "a",
            "b",
            "LIMIT",
            "1",
        ][..],
        &["COMMAND", "GETKEYS", "SMOVE", "a", "b", "m"],
        &["COMMAND", "GETKEYS", "SINTERSTORE", "d", "a", "b"],
        &["COMMAND", "GETKEYS", "SDIFF", "a", "b", "c"],
    ] {
        pair.check(args);
    }
}

#[test]
fn watch_sees_changes_and_only_changes() {
    script_both_protocols(
        "
        SADD s a b c
        SADD t x
        # no-op writes leave a WATCHed key alone
        WATCH s
        SADD s a
        SREM s zz
        SPOP s 0
        SMOVE s t zz
        SINTERSTORE nothing missing
        MULTI
        SCARD s
        EXEC
        WATCH nothing
        SINTERSTORE nothing missing
        MULTI
        PING
        EXEC
        # real changes abort the transaction
        WATCH s
        SADD s d
        MULTI
        SCARD s
        EXEC
        WATCH s
        SREM s d
        MULTI
        SCARD s
        EXEC
        WATCH t
        SMOVE s t a
        MULTI
        SCARD t
        EXEC
        WATCH s
        SMOVE s t b
        MULTI
        SCARD t
        EXEC
        WATCH d
        SUNIONSTORE d s t
        MULTI
        SCARD d
        EXEC
        ",
    );
}

#[test]
fn large_set_operations_match_redis() {
    let mut pair = Differential::start();
    let add = |pair: &mut Differential, key: &str, members: Vec<String>| {
        let mut args = vec!["SADD", key];
        args.extend(members.iter().map(String::as_str));
        pair.check(&args);
    };
    add(&mut pair, "a", (0..5000).map(|i| format!("m{i}")).collect());
    add(
        &mut pair,
        "b",
        (0..5000).step_by(2).map(|i| format!("m{i}")).collect(),
    );
    add(
        &mut pair,
        "c",
        (0..6000).step_by(3).map(|i| format!("m{i}")).collect(),
    );
    add(&mut pair, "n", (0..3000).map(|i| i.to_string()).collect());
    for args in [
        &["SINTER", "a", "b", "c"][..],
        &["SINTER", "c", "a"],
        &["SUNION", "b", "c"],
        &["SDIFF", "a", "b", "c"],
        &["SDIFF", "c", "a"],
        &["SMEMBERS", "n"],
    ] {
        check_sorted(&mut pair, args);
    }
    pair.script(
        "
        SINTERCARD 3 a b c
        SINTERCARD 3 a b c LIMIT 100
        SINTERCARD 3 a b c LIMIT 1500
        SINTERCARD 2 a n
        SINTERSTORE d a b c
        SUNIONSTORE e b c n
        SDIFFSTORE f a b
        SCARD d
        SCARD e
        SCARD f
        SINTERSTORE g a n
        EXISTS g
        ",
    );
}
