//! HyperLogLog commands, differential against a real redis-server 7.0.15:
//! replies and the stored bytes (GET) compared byte for byte, through the
//! sparse encoding, its promotion and the dense one; values moved from
//! Redis to Larder; corrupted values; PFDEBUG; RESP3; MULTI, scripts,
//! keyspace events and WATCH.

mod common;

use common::{encode_command, Differential, Pair};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sends a command with binary arguments to both servers and compares.
fn check_bytes(pair: &mut Differential, args: &[&[u8]]) -> Vec<u8> {
    pair.check_raw(&encode_command(args))
}

/// The payload of a bulk-string reply.
fn bulk_payload(reply: &[u8]) -> Vec<u8> {
    assert_eq!(reply[0], b'$', "{}", String::from_utf8_lossy(reply));
    let header_end = reply.windows(2).position(|w| w == b"\r\n").unwrap();
    let len: usize = std::str::from_utf8(&reply[1..header_end])
        .unwrap()
        .parse()
        .unwrap();
    reply[header_end + 2..header_end + 2 + len].to_vec()
}

/// PFADD of `elements` to `key` on both servers (one command).
fn pfadd(pair: &mut Differential, key: &str, elements: &[String]) -> Vec<u8> {
    let mut args: Vec<&[u8]> = vec![b"PFADD", key.as_bytes()];
    args.extend(elements.iter().map(|e| e.as_bytes()));
    check_bytes(pair, &args)
}

fn elements(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// Checks the stored bytes, the count and the encoding of `key` agree.
fn same_state(pair: &mut Differential, key: &str) {
    pair.check(&["GET", key]);
    pair.check(&["PFDEBUG", "ENCODING", key]);
    pair.check(&["PFCOUNT", key]);
    // The count is now cached in the header on both.
    pair.check(&["GET", key]);
}

#[test]
fn adds_through_sparse_promotion_and_dense() {
    let mut pair = Differential::start();
    pair.script(
        "
        PFCOUNT nokey
        PFADD empty
        GET empty
        PFADD empty
        PFCOUNT empty
        GET empty
        PFADD one a
        PFADD one a
        PFADD one a b c
        PFDEBUG DECODE one
        PFCOUNT one
        PFCOUNT one
        GET one
        TYPE one
        ",
    );
    let mut total = 0;
    let mut step = 1;
    let mut encoding_seen = Vec::new();
    while total < 200_000 {
        let batch = step.min(5_000);
        for start in (total..total + step).step_by(batch) {
            pfadd(&mut pair, "h", &elements("e", start..start + batch));
        }
        total += step;
        same_state(&mut pair, "h");
        let encoding = pair.check(&["PFDEBUG", "ENCODING", "h"]);
        if encoding == b"+sparse\r\n" {
            pair.check(&["PFDEBUG", "DECODE", "h"]);
        }
        encoding_seen.push(encoding);
        // Re-adding the same elements changes nothing.
        let again = pfadd(&mut pair, "h", &elements("e", total - 1..total));
        assert_eq!(again, b":0\r\n");
        step = (step * 3).min(50_000);
    }
    assert!(encoding_seen.contains(&b"+sparse\r\n".to_vec()));
    assert!(encoding_seen.contains(&b"+dense\r\n".to_vec()));
    // Binary elements and long ones (every MurmurHash tail length).
    let mut binary: Vec<Vec<u8>> = (0..40u8).map(|n| (0..n).collect()).collect();
    binary.push(vec![0xff; 1000]);
    for element in &binary {
        check_bytes(&mut pair, &[b"PFADD", b"bin", element]);
    }
    same_state(&mut pair, "bin");
}

#[test]
fn merges_and_multi_key_counts() {
    let mut pair = Differential::start();
    pfadd(&mut pair, "s1", &elements("a", 0..50));
    pfadd(&mut pair, "s2", &elements("a", 25..120));
    pfadd(&mut pair, "d1", &elements("b", 0..20_000));
    pfadd(&mut pair, "d2", &elements("a", 0..5_000));
    pair.script(
        "
        PFCOUNT s1 s2
        PFCOUNT s1 s2 nokey
        PFCOUNT s1 d1 d2
        PFCOUNT nokey nokey2
        PFMERGE m1 s1 s2
        GET m1
        PFDEBUG ENCODING m1
        PFCOUNT m1
        PFMERGE m2 s1 d1
        PFDEBUG ENCODING m2
        GET m2
        PFCOUNT m2
        PFMERGE s1 s2
        GET s1
        PFMERGE s2 s2
        GET s2
        PFMERGE m3
        GET m3
        PFMERGE m4 nokey
        GET m4
        PFMERGE d2 s1 s2 d1
        GET d2
        PFCOUNT d2
        PFCOUNT s1 s2 d1 d2 m1 m2 m3 m4
        PFMERGE m5 s1 s2 d1 d2
        PFMERGE m6 d2 d1 s2 s1
        PFCOUNT m5
        PFCOUNT m6
        GET m5
        GET m6
        ",
    );
    // A merge of sparse HLLs that must promote (many registers).
    for k in 0..8 {
        pfadd(
            &mut pair,
            &format!("p{k}"),
            &elements(&format!("p{k}-"), 0..300),
        );
    }
    pair.script(
        "
        PFMERGE big p0 p1 p2 p3 p4 p5 p6 p7
        PFDEBUG ENCODING big
        GET big
        PFCOUNT big
        PFCOUNT p0 p1 p2 p3 p4 p5 p6 p7
        ",
    );
}

#[test]
fn values_written_by_redis_count_the_same_in_larder() {
    let mut pair = Differential::start();
    for (key, n) in [("tiny", 3), ("sparse", 400), ("dense", 30_000)] {
        let mut args: Vec<Vec<u8>> = vec![b"PFADD".to_vec(), key.as_bytes().to_vec()];
        args.extend((0..n).map(|i| format!("r{i}").into_bytes()));
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        // Only Redis builds the value...
        pair.redis.command_bytes(&refs);
        let produced = bulk_payload(&pair.redis.command(&["GET", key]));
        // ...then both get Redis's bytes (stale cache on purpose first).
        let copy = format!("{key}-copy");
        check_bytes(&mut pair, &[b"SET", copy.as_bytes(), &produced]);
        pair.check(&["PFCOUNT", &copy]);
        pair.check(&["GET", &copy]);
        let mut args = vec!["PFADD".to_string(), copy.clone()];
        args.extend((0..50).map(|i| format!("more{i}")));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        pair.check(&refs);
        pair.check(&["GET", &copy]);
        pair.check(&["PFCOUNT", &copy, "nokey"]);
        // The same value with its cached cardinality, as Redis left it.
        pair.redis.command(&["PFCOUNT", key]);
        let cached = bulk_payload(&pair.redis.command(&["GET", key]));
        check_bytes(&mut pair, &[b"SET", b"cached", &cached]);
        pair.check(&["PFCOUNT", "cached"]);
        // A cached value is returned as it is, even a wrong one.
        let mut lying = cached.clone();
        lying[8..16].copy_from_slice(&12345u64.to_le_bytes());
        check_bytes(&mut pair, &[b"SET", b"lying", &lying]);
        assert_eq!(pair.check(&["PFCOUNT", "lying"]), b":12345\r\n");
        pair.check(&["PFCOUNT", "lying", "nokey"]);
    }
}

/// A valid sparse header with the given opcodes.
fn sparse(ops: &[u8]) -> Vec<u8> {
    let mut v = b"HYLL\x01\0\0\0".to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x80]);
    v.extend_from_slice(ops);
    v
}

#[test]
fn corrupted_values_get_redis_errors() {
    let mut pair = Differential::start();
    let mut dense = b"HYLL\0\0\0\0\0\0\0\0\0\0\0\x80".to_vec();
    dense.resize(16 + 12288, 0x41);
    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"hello".to_vec(),
        b"HYLL".to_vec(),
        b"HYLL\x01\0\0\0\0\0\0\0\0\0\0".to_vec(),
        b"HYLX\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff".to_vec(),
        b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff".to_vec(),
        b"HYLL\x00\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff".to_vec(),
        dense[..dense.len() - 1].to_vec(),
        [dense.clone(), vec![0]].concat(),
        dense.clone(),
        // Sparse: no opcodes, too few registers, too many, a cut XZERO,
        // a VAL running past the end, the header alone with a stale cache.
        sparse(&[]),
        sparse(&[0x40, 0x63]),
        sparse(&[0x7f, 0xff, 0x00]),
        sparse(&[0x7f, 0xff, 0x80]),
        sparse(&[0x7f]),
        sparse(&[0x7f, 0xfe, 0x8f]),
        sparse(&[0x7f, 0xfc, 0x8b]),
        sparse(&[0x7f, 0xfc, 0x84, 0x00]),
        sparse(&[0x00, 0x7f, 0xfe]),
        sparse(&[0x7f, 0xfd, 0x03]),
        sparse(&[0x3f; 256]),
        sparse(&[0xff; 4096]),
        sparse(&[0x80, 0x7f, 0xfe]),
        sparse(&[0x80, 0x80, 0x80, 0x7f, 0xfc]),
    ];
    // A valid sparse HLL from Redis, cut at every length.
    pair.redis
        .command(&["PFADD", "src", "a", "b", "c", "d", "e"]);
    let produced = bulk_payload(&pair.redis.command(&["GET", "src"]));
    for len in 16..produced.len() {
        cases.push(produced[..len].to_vec());
    }
    // And with one opcode byte changed in turn.
    for at in 16..produced.len() {
        for byte in [0x00, 0x3f, 0x40, 0x7f, 0x80, 0xff] {
            let mut v = produced.clone();
            v[at] = byte;
            cases.push(v);
        }
    }
    for (n, value) in cases.iter().enumerate() {
        eprintln!("case {n}: {value:?}");
        check_bytes(&mut pair, &[b"SET", b"bad", value]);
        check_bytes(&mut pair, &[b"SET", b"bad2", value]);
        pair.script(
            "
            PFCOUNT bad
            GET bad
            PFCOUNT bad nokey
            PFCOUNT nokey bad
            PFADD bad x y z 1 2 3 4 5 6 7 8 9
            GET bad
            PFMERGE dest bad
            PFMERGE bad2 nokey
            GET bad2
            PFDEBUG ENCODING bad
            PFDEBUG DECODE bad
            PFDEBUG TODENSE bad
            PFDEBUG GETREG bad
            GET bad
            DEL dest
            ",
        );
        // Still there and still answering, case after case.
        assert_eq!(pair.check(&["PING"]), b"+PONG\r\n", "case {n}");
    }
}

#[test]
fn wrong_types_and_argument_errors() {
    let mut pair = Differential::start();
    pair.script(
        "
        RPUSH list a
        HSET hash f v
        SADD set m
        SET str hello
        SET num 12345
        PFADD h a
        PFADD list a
        PFCOUNT hash
        PFCOUNT h hash
        PFCOUNT h str
        PFADD str a
        PFADD num a
        PFMERGE h set
        PFMERGE list h
        PFMERGE newkey h str
        EXISTS newkey
        PFDEBUG ENCODING list
        PFDEBUG ENCODING str
        PFDEBUG ENCODING nokey
        PFDEBUG NOSUCH h
        PFDEBUG NOSUCH nokey
        PFDEBUG getreg
        PFDEBUG
        PFADD
        PFCOUNT
        PFMERGE
        PFSELFTEST extra
        ",
    );
}

#[test]
fn pfdebug_outputs() {
    let mut pair = Differential::start();
    pfadd(&mut pair, "h", &elements("x", 0..200));
    pair.script(
        "
        PFDEBUG DECODE h
        PFDEBUG ENCODING h
        PFDEBUG getreg h
        PFDEBUG encoding h
        GET h
        PFDEBUG DECODE h
        PFDEBUG TODENSE h
        PFADD h2 a b c
        PFDEBUG TODENSE h2
        PFDEBUG TODENSE h2
        GET h2
        PFCOUNT h2
        PFDEBUG decode h2
        ",
    );
    // The same in RESP3.
    for c in [&mut pair.larder, &mut pair.redis] {
        assert!(c.command(&["HELLO", "3"]).starts_with(b"%"));
    }
    pair.script(
        "
        PFADD h3 a b c
        PFDEBUG GETREG h3
        PFDEBUG ENCODING h3
        PFCOUNT h3
        PFCOUNT h3 h
        PFMERGE h3 h
        PFADD h3 z
        PFDEBUG NOPE h3
        SET str hello
        PFCOUNT str
        ",
    );
}

#[test]
fn sparse_max_bytes_setting() {
    let mut pair = Differential::start();
    for limit in ["0", "20", "100", "1kb", "5000", "3000"] {
        pair.check(&["CONFIG", "SET", "hll-sparse-max-bytes", limit]);
        pair.check(&["CONFIG", "GET", "hll-sparse-max-bytes"]);
        let key = format!("k{limit}");
        for start in (0..600).step_by(37) {
            pfadd(&mut pair, &key, &elements("m", start..start + 37));
            pair.check(&["PFDEBUG", "ENCODING", &key]);
            pair.check(&["GET", &key]);
        }
        pair.check(&["PFMERGE", &format!("{key}-m"), &key, "k0"]);
        pair.check(&["GET", &format!("{key}-m")]);
        pair.check(&["PFCOUNT", &key]);
    }
}

#[test]
fn random_operations_match_redis() {
    let mut pair = Differential::start();
    let mut rng = StdRng::seed_from_u64(0x4c4c_5948);
    let keys = ["k1", "k2", "k3", "k4"];
    for _ in 0..400 {
        let key = keys[rng.gen_range(0..keys.len())];
        match rng.gen_range(0..10) {
            0..=4 => {
                let most = if rng.gen_bool(0.1) { 3000 } else { 30 };
                let n = rng.gen_range(0..most);
                let els: Vec<String> = (0..n)
                    .map(|_| rng.gen_range(0..100_000u32).to_string())
                    .collect();
                pfadd(&mut pair, key, &els);
            }
            5 => {
                pair.check(&["PFCOUNT", key]);
            }
            6 => {
                let other = keys[rng.gen_range(0..keys.len())];
                pair.check(&["PFCOUNT", key, other, "absent"]);
            }
            7 => {
                let a = keys[rng.gen_range(0..keys.len())];
                let b = keys[rng.gen_range(0..keys.len())];
                pair.check(&["PFMERGE", key, a, b]);
            }
            8 => {
                pair.check(&["GET", key]);
            }
            _ => {
                if rng.gen_bool(0.3) {
                    pair.check(&["PFDEBUG", "TODENSE", key]);
                } else {
                    pair.check(&["DEL", key]);
                }
            }
        }
    }
    for key in keys {
        pair.check(&["GET", key]);
    }
}

#[test]
fn transactions_scripts_events_and_watch() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        MULTI
        PFADD t a b c
        PFCOUNT t
        PFMERGE t2 t
        PFCOUNT t t2
        GET t
        EXEC
        SET notanhll hello
        PFDEBUG TODENSE t2
        OBJECT ENCODING t2
        TYPE t2
        CONFIG SET notify-keyspace-events KEA
        ",
    );
    for (script, key) in [
        ("return redis.call('pfadd', KEYS[1], 'x', 'y')", "s"),
        ("return redis.call('pfcount', KEYS[1])", "s"),
        ("return redis.call('pfmerge', KEYS[1], KEYS[2])", "s"),
        ("return redis.pcall('pfcount', KEYS[1])", "notanhll"),
        ("return redis.pcall('pfadd', KEYS[1], 'a')", "notanhll"),
        ("return redis.call('pfdebug', 'encoding', KEYS[1])", "s"),
    ] {
        c.same(&["EVAL", script, "2", key, "t"]);
    }
    // Keyspace events, as Redis sends them.
    let mut sub = pair.clients();
    sub.same(&["PSUBSCRIBE", "__key*__:*"]);
    let mut w = pair.clients();
    w.script(
        "
        PFADD ev a
        PFADD ev a
        PFCOUNT ev
        PFMERGE ev2 ev
        PFDEBUG TODENSE ev
        DEL ev ev2
        PING
        ",
    );
    // pfadd x2, pfadd x2 (merge), del x2 x2.
    for _ in 0..8 {
        let ours = sub.ours.read_reply();
        let theirs = sub.theirs.read_reply();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }
    // A PFCOUNT that refreshes the cache counts as a change for WATCH.
    let mut other = pair.clients();
    c.script(
        "
        PFADD w a b
        WATCH w
        ",
    );
    other.same(&["PFCOUNT", "w"]);
    c.script(
        "
        MULTI
        PING
        EXEC
        WATCH w
        ",
    );
    // A PFCOUNT answered from the cache does not.
    other.same(&["PFCOUNT", "w"]);
    other.same(&["PFADD", "w", "a"]);
    c.script(
        "
        MULTI
        PING
        EXEC
        ",
    );
}
