//! String and bitmap commands: differential tests against a real
//! redis-server (replies compared byte for byte), expiry effects, RESP3
//! shapes, seeded random comparisons, and a few round trips through the
//! `redis` crate.
//!
//! The random tests run `STRINGS_FUZZ_ROUNDS` rounds each (default 150);
//! raise it locally for a deeper search.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{encode_command, Differential, RedisServer, TestServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rounds() -> usize {
    std::env::var("STRINGS_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

/// Sends a command with binary arguments to both servers and compares.
fn check_bytes(pair: &mut Differential, args: &[&[u8]]) -> Vec<u8> {
    pair.check_raw(&encode_command(args))
}

/// Switches both connections to RESP3 (HELLO replies differ by design:
/// server name, version, id).
fn resp3(pair: &mut Differential) {
    let ours = pair.larder.command(&["HELLO", "3"]);
    let theirs = pair.redis.command(&["HELLO", "3"]);
    assert!(ours.starts_with(b"%"), "{}", String::from_utf8_lossy(&ours));
    assert!(theirs.starts_with(b"%"));
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// GET / SET
// ---------------------------------------------------------------------------

#[test]
fn set_options_and_errors() {
    let mut pair = Differential::start();
    pair.script(
        "
        GET k
        SET k v
        GET k
        SET k v2 XX
        GET k
        SET k v3 NX
        GET k
        SET n v NX
        SET n2 v XX
        GET n2
        SET k v4 GET
        SET missing v GET
        GET missing
        SET k v5 NX GET
        GET k
        SET fresh v NX GET
        GET fresh
        SET nothere v XX GET
        GET nothere
        SET k v6 xx get
        set k v7 Px 1000 GeT
        SET k v EX 100 EX 200
        SET k v PX 100 PX 200
        SET k v NX NX
        SET k v GET GET
        SET k v KEEPTTL KEEPTTL
        SET k v XX KEEPTTL GET
        # conflicting or incomplete options
        SET k v NX XX
        SET k v XX NX
        SET k v EX 10 PX 100
        SET k v PX 10 EX 100
        SET k v EX 10 EXAT 100
        SET k v PXAT 10 EXAT 100
        SET k v KEEPTTL EX 10
        SET k v EX 10 KEEPTTL
        SET k v PERSIST
        SET k v EX
        SET k v PX
        SET k v FOO
        SET k v NX FOO
        SET k v v
        # expire values
        SET k v EX 0
        SET k v EX -1
        SET k v PX 0
        SET k v EXAT 0
        SET k v PXAT -5
        SET k v EX abc
        SET k v EX 1.5
        SET k v EX 9223372036854775807
        SET k v EX 9223372036854775
        SET k v EX 9223372036854776
        SET k v PX 9223372036854775807
        SET k v EXAT 9223372036854775807
        SET k v EXAT 9223372036854775
        SET k v PXAT 9223372036854775807
        SET k v EX 99999999999999999999
        GET k
        SET
        SET k
        GET
        GET a b
        ",
    );
    // Empty, binary and large values round-trip unchanged.
    check_bytes(&mut pair, &[b"SET", b"bin", b"a\x00b\r\n\xff"]);
    check_bytes(&mut pair, &[b"GET", b"bin"]);
    check_bytes(&mut pair, &[b"SET", b"empty", b""]);
    check_bytes(&mut pair, &[b"GET", b"empty"]);
    let big = vec![b'x'; 100_000];
    check_bytes(&mut pair, &[b"SET", b"big", &big]);
    check_bytes(&mut pair, &[b"GET", b"big"]);
    // An option is a C string to Redis: "NX\0junk" is NX.
    check_bytes(&mut pair, &[b"SET", b"cstr", b"v", b"NX\x00junk"]);
    check_bytes(&mut pair, &[b"SET", b"cstr", b"w", b"XX\x00"]);
    check_bytes(&mut pair, &[b"GET", b"cstr"]);
}

#[test]
fn set_expiry_effects() {
    let mut pair = Differential::start();
    let soon = now_ms() + 300;
    let past_s = (now_ms() / 1000 - 10).to_string();
    pair.script(&format!(
        "
        SET px v PX 300
        SET ex v EX 100
        SET pxat v PXAT {soon}
        SET exatpast v EXAT {past_s}
        SET pxatpast v PXAT 1
        GET exatpast
        GET pxatpast
        SET keep v PX 300
        SET keep v2 KEEPTTL
        SET clear v PX 300
        SET clear v2
        SET clearget v PX 300
        SET clearget v2 GET
        SET keepxx v PX 300
        SET keepxx v2 XX KEEPTTL
        SET nxfail v PX 300
        SET nxfail v2 NX EX 1000
        SET xxrenew v PX 300
        SET xxrenew v2 XX EX 1000
        PSETEX sx 300 v
        PSETEX psx 300 v
        SETEX sxlong 1000 v
        GETEX gx PX 300
        SET gx v
        GETEX gx PX 300
        SET persist v PX 300
        GETEX persist PERSIST
        SET gexat v
        GETEX gexat PXAT {soon}
        SET gpast v
        GETEX gpast EXAT {past_s}
        GET gpast
        SET gpast2 v EX 100
        GETEX gpast2 PXAT 1
        GET gpast2
        SET inc 5 PX 300
        INCR inc
        INCRBY inc 10
        DECR inc
        SET fl 1.5 PX 300
        INCRBYFLOAT fl 1
        SET ap a PX 300
        APPEND ap b
        SET sr abc PX 300
        SETRANGE sr 1 X
        SET sb a PX 300
        SETBIT sb 1 1
        SET bf a PX 300
        BITFIELD bf SET u8 0 255
        SET gs v PX 300
        GETSET gs v2
        SET ms v PX 300
        MSET ms v2 other x
        SET bo abc PX 300
        BITOP NOT bo bo
        "
    ));
    std::thread::sleep(Duration::from_millis(500));
    pair.script(
        "
        GET px
        GET ex
        GET pxat
        GET keep
        GET clear
        GET clearget
        GET keepxx
        GET nxfail
        GET xxrenew
        GET sx
        GET psx
        GET sxlong
        GET gx
        GET persist
        GET gexat
        GET inc
        GET fl
        GET ap
        GET sr
        GET sb
        GET bf
        GET gs
        GET ms
        GET bo
        INCR inc
        TTL inc
        INCRBYFLOAT fl 2
        TTL fl
        ",
    );
}

#[test]
fn setnx_setex_psetex() {
    let mut pair = Differential::start();
    pair.script(
        "
        SETNX k v
        SETNX k w
        GET k
        SETEX k 100 v2
        GET k
        PSETEX k 100000 v3
        GET k
        SETEX k 0 v
        SETEX k -1 v
        SETEX k abc v
        SETEX k 9223372036854775807 v
        PSETEX k 0 v
        PSETEX k -10 v
        PSETEX k 9223372036854775807 v
        PSETEX k 1.5 v
        SETNX k
        SETNX k v extra
        SETEX k 10
        PSETEX k 10
        SETEX k 10 v extra
        ",
    );
}

#[test]
fn getex_getdel_getset() {
    let mut pair = Differential::start();
    pair.script(
        "
        GETEX missing
        GETEX missing EX abc
        GETEX missing EX 0
        GETEX missing PERSIST
        SET k v
        GETEX k
        GETEX k EX 100
        GETEX k PX 100000
        GETEX k EXAT 99999999999
        GETEX k PXAT 99999999999999
        GETEX k PERSIST
        GETEX k PERSIST PERSIST
        GETEX k EX 10 EX 20
        GETEX k ex 10 px 20
        GETEX k PERSIST EX 10
        GETEX k EX 10 PERSIST
        GETEX k NX
        GETEX k XX
        GETEX k GET
        GETEX k KEEPTTL
        GETEX k EX
        GETEX k EX abc
        GETEX k EX 0
        GETEX k PX -1
        GETEX k EX 9223372036854775807
        GETEX k PX 9223372036854775807
        GETEX k FOO
        GETEX
        GETDEL k
        GETDEL k
        GET k
        GETDEL
        GETDEL a b
        GETSET g v
        GETSET g w
        GET g
        GETSET g
        GETSET g a b
        ",
    );
}

#[test]
fn mget_mset_msetnx() {
    let mut pair = Differential::start();
    pair.script(
        "
        MSET a 1 b 2 c 3
        MGET a b c missing a
        MSET a 10 a 20
        GET a
        MSET a
        MSET a 1 b
        MSET a 1 b 2 c
        MSETNX x 1 y 2
        MGET x y
        MSETNX y 3 z 4
        MGET y z
        MSETNX z 5 z 6
        GET z
        MSETNX z
        MSETNX z 1 q
        MGET
        MGET only
        ",
    );
    resp3(&mut pair);
    pair.script(
        "
        MGET a missing b
        MSETNX a 1
        ",
    );
    // Keys spread over many shards, all handled in one command.
    let mut args = vec!["MSET".to_string()];
    for i in 0..200 {
        args.push(format!("key:{i}"));
        args.push(format!("value:{i}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pair.check(&args);
    let mut keys = vec!["MGET".to_string()];
    keys.extend((0..210).map(|i| format!("key:{i}")));
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    pair.check(&keys);
}

// ---------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------

#[test]
fn integer_counters() {
    let mut pair = Differential::start();
    pair.script(
        "
        INCR n
        INCR n
        DECR n
        INCRBY n 100
        INCRBY n -50
        DECRBY n 7
        DECRBY n -7
        GET n
        DECR fresh
        DECRBY fresh2 5
        INCRBY n abc
        INCRBY n 1.5
        INCRBY n 99999999999999999999
        INCRBY n 9223372036854775807
        DECRBY n -9223372036854775808
        DECRBY n 9223372036854775807
        SET max 9223372036854775807
        INCR max
        INCRBY max 0
        DECR max
        SET min -9223372036854775808
        DECR min
        DECRBY min 1
        INCRBY min -1
        INCR min
        DECRBY x -9223372036854775808
        DECRBY x 9223372036854775807
        DECR x
        DECR x
        INCRBY x -9223372036854775808
        SET s abc
        INCR s
        DECR s
        INCRBY s 1
        SET s 1.0
        INCR s
        SET s 01
        INCR s
        SET s -0
        INCR s
        SET s +1
        INCR s
        SET s 9223372036854775808
        INCR s
        SET s -9223372036854775809
        DECR s
        SET s 00
        INCR s
        INCR
        INCR a b
        INCRBY a
        DECRBY a
        DECR a b
        ",
    );
    for value in [
        &b" 1"[..],
        b"1 ",
        b"1\x00",
        b"",
        b"\t2",
        b"12345678901234567890",
    ] {
        check_bytes(&mut pair, &[b"SET", b"w", value]);
        check_bytes(&mut pair, &[b"INCR", b"w"]);
        check_bytes(&mut pair, &[b"INCRBY", b"w2", value]);
    }
}

#[test]
fn incrbyfloat_formatting_and_errors() {
    let mut pair = Differential::start();
    pair.script(
        "
        INCRBYFLOAT f 10.5
        INCRBYFLOAT f 0.1
        INCRBYFLOAT f -5.0e3
        INCRBYFLOAT f 5.0e3
        INCRBYFLOAT g 0.1
        INCRBYFLOAT g 0.2
        INCRBYFLOAT g 0.7
        INCRBYFLOAT h 3
        INCRBYFLOAT h 1.0
        INCRBYFLOAT h -4
        INCRBYFLOAT h -0.5
        INCRBYFLOAT h 1e-18
        INCRBYFLOAT h 1e-17
        INCRBYFLOAT i 0.000003814697265625
        INCRBYFLOAT i 1
        INCRBYFLOAT j 123456789012345678901234567890
        INCRBYFLOAT j 0.5
        INCRBYFLOAT j 1e300
        INCRBYFLOAT big 1e4000
        INCRBYFLOAT big 1.18e4932
        INCRBYFLOAT big2 1.18e4932
        INCRBYFLOAT big2 1.18e4932
        INCRBYFLOAT tiny 1e-4940
        INCRBYFLOAT tiny 1e-4950
        INCRBYFLOAT tiny 1e-5000
        INCRBYFLOAT tiny 1e5000
        INCRBYFLOAT hex 0x10
        INCRBYFLOAT hex 0x1p-2
        INCRBYFLOAT hex 0X1.8P1
        INCRBYFLOAT hex 0x.8
        INCRBYFLOAT hex -0xA
        INCRBYFLOAT hex 0x
        INCRBYFLOAT hex 0xg
        INCRBYFLOAT hex 0x1p
        INCRBYFLOAT e 1e
        INCRBYFLOAT e 1e+
        INCRBYFLOAT e 1e+2
        INCRBYFLOAT e .5
        INCRBYFLOAT e 5.
        INCRBYFLOAT e +2
        INCRBYFLOAT e .
        INCRBYFLOAT e -
        INCRBYFLOAT e 1.2.3
        INCRBYFLOAT e abc
        INCRBYFLOAT e inf
        INCRBYFLOAT e -inf
        INCRBYFLOAT e Infinity
        INCRBYFLOAT e infin
        INCRBYFLOAT e nan
        INCRBYFLOAT e -nan
        INCRBYFLOAT e 1e0000000000000000000002
        INCRBYFLOAT e 0e999999999999
        INCRBYFLOAT e 00000.000000001
        GET e
        # ties and near-ties at the 64-bit significand
        INCRBYFLOAT t1 18446744073709551617
        INCRBYFLOAT t2 18446744073709551619
        INCRBYFLOAT t3 18446744073709551617.0000000000000000000001
        INCRBYFLOAT t4 18446744073709551616
        INCRBYFLOAT t4 1
        INCRBYFLOAT t4 3
        INCRBYFLOAT t5 1e30
        INCRBYFLOAT t5 -1e-30
        INCRBYFLOAT t6 9223372036854775808
        INCRBYFLOAT t6 -0.5
        INCRBYFLOAT t6 -0.25
        INCRBYFLOAT t7 0x1.0000000000000001p0
        INCRBYFLOAT t7 0x0.00000000000000008p0
        INCRBYFLOAT t8 0.99999999999999999999
        INCRBYFLOAT t9 123.456789012345678901
        INCRBYFLOAT t9 -123.456789012345678901
        INCRBYFLOAT z -0.0000000000000000001
        INCRBYFLOAT z -0
        SET s abc
        INCRBYFLOAT s 1
        SET s inf
        INCRBYFLOAT s 1
        SET s 1e5000
        INCRBYFLOAT s 1
        SET s 010
        INCRBYFLOAT s 1
        SET s 0x20
        INCRBYFLOAT s 1
        SET s 9223372036854775807
        INCRBYFLOAT s 1
        INCRBYFLOAT s 1e-30
        INCRBYFLOAT
        INCRBYFLOAT s
        INCRBYFLOAT s 1 2
        ",
    );
    for (value, incr) in [
        (&b" 1"[..], &b"1"[..]),
        (b"1", b" 1"),
        (b"1", b"1 "),
        (b"1\x00junk", b"1"),
        (b"1", b"2\x00junk"),
        (b"\x00", b"1"),
        (b"", b"1"),
        (b"1", b""),
    ] {
        check_bytes(&mut pair, &[b"SET", b"c", value]);
        check_bytes(&mut pair, &[b"INCRBYFLOAT", b"c", incr]);
    }
    let long = format!("1.{}", "0".repeat(5200));
    pair.check(&["INCRBYFLOAT", "long", &long]);
    let long = format!("1.{}", "0".repeat(5000));
    pair.check(&["INCRBYFLOAT", "long", &long]);
    let long = format!("0.{}1", "0".repeat(4900));
    pair.check(&["INCRBYFLOAT", "long2", &long]);
    // INCRBYFLOAT replies with a bulk string in RESP3 too.
    resp3(&mut pair);
    pair.script(
        "
        INCRBYFLOAT r3 1.5
        INCRBYFLOAT r3 abc
        ",
    );
}

/// A random decimal (sometimes hex, huge or tiny) number as text.
fn random_float_text(rng: &mut StdRng) -> String {
    let sign = match rng.gen_range(0..4) {
        0 => "-",
        1 if rng.gen_bool(0.2) => "+",
        _ => "",
    };
    if rng.gen_bool(0.05) {
        let digits: String = (0..rng.gen_range(1..8))
            .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
            .collect();
        return format!("{sign}0x{digits}p{}", rng.gen_range(-80..80));
    }
    let len = rng.gen_range(1..=25);
    let digits: String = (0..len)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    let point = rng.gen_range(0..=len);
    let mut text = format!("{sign}{}.{}", &digits[..point], &digits[point..]);
    if text.ends_with('.') && rng.gen_bool(0.5) {
        text.pop();
    }
    match rng.gen_range(0..10) {
        0 => text.push_str(&format!("e{}", rng.gen_range(-30..30))),
        1 => text.push_str(&format!("e{}", rng.gen_range(-4960..4940))),
        2 => text.push_str(&format!("E-{}", rng.gen_range(15..22))),
        _ => {}
    }
    text
}

#[test]
fn incrbyfloat_random_against_redis() {
    let mut pair = Differential::start();
    let mut rng = StdRng::seed_from_u64(0x1f10a7);
    for round in 0..rounds() {
        let key = format!("f{}", round % 7);
        if round % 3 == 0 {
            let start = random_float_text(&mut rng);
            pair.check(&["SET", &key, &start]);
        }
        let incr = random_float_text(&mut rng);
        pair.check(&["INCRBYFLOAT", &key, &incr]);
    }
}

// ---------------------------------------------------------------------------
// APPEND, STRLEN, GETRANGE, SETRANGE
// ---------------------------------------------------------------------------

#[test]
fn append_and_strlen() {
    let mut pair = Differential::start();
    pair.script(
        "
        STRLEN k
        APPEND k hello
        APPEND k _world
        APPEND k !
        GET k
        STRLEN k
        SET n 10
        APPEND n 5
        INCR n
        STRLEN n
        APPEND
        APPEND k
        APPEND k a b
        STRLEN
        STRLEN a b
        ",
    );
    check_bytes(&mut pair, &[b"APPEND", b"e", b""]);
    check_bytes(&mut pair, &[b"STRLEN", b"e"]);
    check_bytes(&mut pair, &[b"GET", b"e"]);
    // The size limit applies to the result.
    pair.script(
        "
        CONFIG SET proto-max-bulk-len 1mb
        SETRANGE limit 1048570 abcde
        STRLEN limit
        APPEND limit x
        APPEND limit y
        STRLEN limit
        CONFIG SET proto-max-bulk-len 512mb
        APPEND limit y
        STRLEN limit
        ",
    );
}

#[test]
fn getrange_and_substr() {
    let mut pair = Differential::start();
    pair.check(&["SET", "s", "Hello World"]);
    let indexes = [
        "0",
        "1",
        "4",
        "10",
        "11",
        "100",
        "-1",
        "-2",
        "-11",
        "-12",
        "-100",
        "9223372036854775807",
        "-9223372036854775808",
    ];
    for cmd in ["GETRANGE", "SUBSTR"] {
        for start in indexes {
            for end in indexes {
                pair.check(&[cmd, "s", start, end]);
            }
        }
        pair.check(&[cmd, "missing", "0", "-1"]);
        pair.check(&[cmd, "s", "a", "1"]);
        pair.check(&[cmd, "s", "0", "1.5"]);
        pair.check(&[cmd, "missing", "x", "1"]);
        pair.check(&[cmd, "s", "0"]);
        pair.check(&[cmd, "s", "0", "1", "2"]);
    }
    pair.script(
        "
        SET n 12345
        GETRANGE n 1 3
        ",
    );
    pair.check(&["SET", "e", ""]);
    for (start, end) in [("0", "-1"), ("0", "0"), ("-1", "-1"), ("-5", "5")] {
        pair.check(&["GETRANGE", "e", start, end]);
    }
}

#[test]
fn setrange_limits() {
    let mut pair = Differential::start();
    pair.script(
        "
        SETRANGE k 0 hello
        SETRANGE k 6 world
        GET k
        SETRANGE k 1 EL
        GET k
        SETRANGE k 20 x
        GET k
        STRLEN k
        SETRANGE new 3 abc
        GET new
        SETRANGE k -1 x
        SETRANGE k abc x
        SETRANGE k 1.5 x
        SETRANGE k 9223372036854775807 x
        SETRANGE missing 9223372036854775807 x
        SETRANGE missing2 536870912 x
        SETRANGE k 536870912 x
        SETRANGE k 536870911 xx
        SETRANGE n 99999999999999999999 x
        SET num 12345
        SETRANGE num 1 X
        GET num
        SETRANGE
        SETRANGE k 0
        SETRANGE k 0 a b
        ",
    );
    for (key, offset) in [
        ("emptyval", "3"),
        ("emptyval", "-1"),
        ("k", "2"),
        ("k", "-1"),
        ("k", "9223372036854775807"),
    ] {
        pair.check(&["SETRANGE", key, offset, ""]);
        pair.check(&["GET", key]);
    }
    pair.script(
        "
        CONFIG SET proto-max-bulk-len 1mb
        SETRANGE lim 1048575 x
        STRLEN lim
        SETRANGE lim 1048576 x
        SETRANGE lim 1048575 xy
        SETRANGE other 1048576 x
        SETRANGE other 1048575 xy
        STRLEN other
        CONFIG SET proto-max-bulk-len 512mb
        ",
    );
}

// ---------------------------------------------------------------------------
// LCS
// ---------------------------------------------------------------------------

#[test]
fn lcs_options_and_shapes() {
    let mut pair = Differential::start();
    let script = "
        MSET key1 ohmytext key2 mynewtext
        LCS key1 key2
        LCS key1 key2 LEN
        LCS key1 key2 IDX
        LCS key1 key2 IDX MINMATCHLEN 4
        LCS key1 key2 IDX MINMATCHLEN 4 WITHMATCHLEN
        LCS key1 key2 IDX WITHMATCHLEN
        LCS key1 key2 idx minmatchlen -5 withmatchlen
        LCS key1 key2 WITHMATCHLEN
        LCS key1 key2 MINMATCHLEN 2
        LCS key1 key2 LEN MINMATCHLEN 2
        LCS key1 key2 IDX LEN
        LCS key1 key2 LEN IDX
        LCS key1 key2 MINMATCHLEN
        LCS key1 key2 MINMATCHLEN abc
        LCS key1 key2 FOO
        LCS key1 missing
        LCS missing key2 IDX
        LCS missing1 missing2 LEN
        LCS missing1 missing2 IDX WITHMATCHLEN
        LCS key1 key1 IDX WITHMATCHLEN
        MSET a ABCBDAB b BDCABA
        LCS a b
        LCS a b IDX WITHMATCHLEN
        LCS b a IDX
        MSET x aaaa y aa
        LCS x y IDX WITHMATCHLEN
        LCS key1
        LCS
        ";
    pair.script(script);
    resp3(&mut pair);
    pair.script(script);
    // The transient table is limited by proto-max-bulk-len.
    let a = "a".repeat(600);
    let b = "b".repeat(600);
    pair.check(&["MSET", "la", &a, "lb", &b]);
    pair.check(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"]);
    pair.check(&["LCS", "la", "lb", "LEN"]);
    pair.check(&["LCS", "la", "missing"]);
    pair.check(&["CONFIG", "SET", "proto-max-bulk-len", "512mb"]);
    pair.check(&["LCS", "la", "lb", "LEN"]);
}

#[test]
fn lcs_random_against_redis() {
    let mut pair = Differential::start();
    let mut rng = StdRng::seed_from_u64(0x1c5);
    for round in 0..rounds() {
        if round == rounds() / 2 {
            resp3(&mut pair);
        }
        let word = |rng: &mut StdRng| -> String {
            let len = rng.gen_range(0..14);
            (0..len)
                .map(|_| char::from(b"abc"[rng.gen_range(0..3)]))
                .collect()
        };
        let (a, b) = (word(&mut rng), word(&mut rng));
        pair.check(&["MSET", "a", &a, "b", &b]);
        let mut args = vec!["LCS", "a", "b"];
        let min = rng.gen_range(0..4).to_string();
        match rng.gen_range(0..4) {
            0 => {}
            1 => args.push("LEN"),
            _ => {
                args.push("IDX");
                if rng.gen_bool(0.5) {
                    args.extend(["MINMATCHLEN", &min]);
                }
                if rng.gen_bool(0.5) {
                    args.push("WITHMATCHLEN");
                }
            }
        }
        pair.check(&args);
    }
}

// ---------------------------------------------------------------------------
// SETBIT / GETBIT / BITCOUNT / BITPOS / BITOP
// ---------------------------------------------------------------------------

#[test]
fn setbit_and_getbit() {
    let mut pair = Differential::start();
    pair.script(
        "
        SETBIT b 7 1
        SETBIT b 7 1
        SETBIT b 7 0
        SETBIT b 0 1
        SETBIT b 100 1
        GET b
        STRLEN b
        GETBIT b 0
        GETBIT b 1
        GETBIT b 100
        GETBIT b 101
        GETBIT b 1000000
        GETBIT missing 5
        SET s A
        SETBIT s 6 1
        GET s
        GETBIT s 1
        SETBIT b 5 2
        SETBIT b 5 -1
        SETBIT b 5 a
        SETBIT b -1 1
        SETBIT b a 1
        SETBIT b 1.5 1
        SETBIT b 4294967296 1
        SETBIT b 9223372036854775807 1
        SETBIT b 99999999999999999999 1
        SETBIT b -1 5
        SETBIT b 4294967296 5
        GETBIT b -1
        GETBIT b 4294967296
        GETBIT b 9223372036854775807
        GETBIT b a
        GETBIT missing -1
        SETBIT
        SETBIT b 1
        GETBIT b
        GETBIT b 1 2
        ",
    );
    pair.script(
        "
        CONFIG SET proto-max-bulk-len 1mb
        SETBIT big 8388607 1
        STRLEN big
        SETBIT big 8388608 1
        GETBIT big 8388608
        GETBIT big 8388607
        CONFIG SET proto-max-bulk-len 512mb
        ",
    );
}

/// Interesting bitmaps for BITCOUNT/BITPOS.
fn sample_bitmaps() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0xff],
        vec![0x00, 0x00, 0x00],
        vec![0xff, 0xff, 0xff],
        vec![0xff, 0xf0, 0x00],
        vec![0x00, 0x0f, 0xff],
        vec![0x80, 0x00, 0x01],
        vec![0x7f, 0xff, 0xfe],
        b"foobar".to_vec(),
        vec![0xff; 20],
        vec![0x00; 20],
        {
            let mut v = vec![0xff; 19];
            v.push(0xfe);
            v
        },
    ]
}

#[test]
fn bitcount_ranges() {
    let mut pair = Differential::start();
    let ends = [
        "0",
        "1",
        "2",
        "5",
        "7",
        "8",
        "9",
        "23",
        "100",
        "-1",
        "-2",
        "-8",
        "-9",
        "-100",
        "9223372036854775807",
        "-9223372036854775808",
    ];
    for (i, bitmap) in sample_bitmaps().iter().enumerate() {
        let key = format!("b{i}");
        check_bytes(&mut pair, &[b"SET", key.as_bytes(), bitmap]);
        pair.check(&["BITCOUNT", &key]);
        for start in ends {
            for end in ends {
                pair.check(&["BITCOUNT", &key, start, end]);
                pair.check(&["BITCOUNT", &key, start, end, "BIT"]);
            }
            pair.check(&["BITCOUNT", &key, start, "-1", "byte"]);
        }
    }
    pair.script(
        "
        SET s foobar
        BITCOUNT s 1 1
        BITCOUNT s 5 30 BIT
        BITCOUNT s 0
        BITCOUNT s 0 1 2
        BITCOUNT s 0 1 bits
        BITCOUNT s a 1
        BITCOUNT s 0 a
        BITCOUNT s 0 a FOO
        BITCOUNT s -1 -5 FOO
        BITCOUNT s 0 1 BIT extra
        BITCOUNT missing
        BITCOUNT missing 0
        BITCOUNT missing a b
        BITCOUNT missing 0 1 FOO
        BITCOUNT
        ",
    );
}

#[test]
fn bitpos_ranges_and_special_cases() {
    let mut pair = Differential::start();
    let ends = [
        "0",
        "1",
        "2",
        "7",
        "8",
        "15",
        "23",
        "100",
        "-1",
        "-2",
        "-8",
        "-9",
        "-100",
        "9223372036854775807",
        "-9223372036854775808",
    ];
    for (i, bitmap) in sample_bitmaps().iter().enumerate() {
        let key = format!("b{i}");
        check_bytes(&mut pair, &[b"SET", key.as_bytes(), bitmap]);
        for bit in ["0", "1"] {
            pair.check(&["BITPOS", &key, bit]);
            for start in ends {
                pair.check(&["BITPOS", &key, bit, start]);
                for end in ends {
                    pair.check(&["BITPOS", &key, bit, start, end]);
                    pair.check(&["BITPOS", &key, bit, start, end, "BIT"]);
                }
                pair.check(&["BITPOS", &key, bit, start, "-1", "BYTE"]);
            }
        }
    }
    pair.script(
        "
        BITPOS missing 0
        BITPOS missing 1
        BITPOS missing 1 a
        BITPOS missing 0 5 10 FOO
        BITPOS missing 2
        BITPOS missing x
        SET s foo
        BITPOS s 2
        BITPOS s -1
        BITPOS s a
        BITPOS s 1 a
        BITPOS s 1 0 a
        BITPOS s 1 0 a FOO
        BITPOS s 1 a 0 FOO
        BITPOS s 1 0 -1 FOO
        BITPOS s 1 0 -1 bit extra
        BITPOS
        BITPOS s
        ",
    );
}

/// A random bitmap, biased towards runs of 0x00 and 0xff.
fn random_bitmap(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.gen_range(0..14);
    (0..len)
        .map(|_| match rng.gen_range(0..4) {
            0 => 0x00,
            1 => 0xff,
            _ => rng.gen(),
        })
        .collect()
}

#[test]
fn bitcount_bitpos_random_against_redis() {
    let mut pair = Differential::start();
    let mut rng = StdRng::seed_from_u64(0xb175);
    for _ in 0..rounds() {
        let bitmap = random_bitmap(&mut rng);
        check_bytes(&mut pair, &[b"SET", b"r", &bitmap]);
        let start = rng.gen_range(-120i64..120).to_string();
        let end = rng.gen_range(-120i64..120).to_string();
        let unit = ["BIT", "BYTE"][rng.gen_range(0..2)];
        let bit = ["0", "1"][rng.gen_range(0..2)];
        pair.check(&["BITCOUNT", "r", &start, &end, unit]);
        pair.check(&["BITPOS", "r", bit, &start, &end, unit]);
        pair.check(&["BITPOS", "r", bit, &start]);
    }
}

#[test]
fn bitop_operations() {
    let mut pair = Differential::start();
    check_bytes(&mut pair, &[b"SET", b"a", b"\xff\x0f\xaa"]);
    check_bytes(&mut pair, &[b"SET", b"b", b"\x0f"]);
    check_bytes(&mut pair, &[b"SET", b"c", b"\xf0\xf0\xf0\xf0\xf0"]);
    pair.script(
        "
        BITOP AND d a b
        GET d
        BITOP AND d a b c
        GET d
        BITOP OR d a b c
        GET d
        BITOP XOR d a b c
        GET d
        BITOP XOR d a a
        GET d
        BITOP NOT d a
        GET d
        BITOP not d c
        GET d
        BITOP and d a
        GET d
        BITOP AND d a missing
        GET d
        BITOP OR d missing a
        GET d
        BITOP NOT d missing
        GET d
        SET d something
        BITOP OR d missing1 missing2
        GET d
        BITOP XOR a a c
        GET a
        BITOP NOT d a b
        BITOP NOT d
        BITOP NAND d a b
        BITOP ANDX d a
        BITOP
        BITOP AND
        BITOP AND d
        SET ttl x PX 100
        BITOP OR ttl b
        ",
    );
    // Long operands (past any word-at-a-time fast path).
    let long_a: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37)).collect();
    let long_b: Vec<u8> = (0..77u8).map(|i| i.wrapping_mul(91) ^ 0x5a).collect();
    check_bytes(&mut pair, &[b"SET", b"la", &long_a]);
    check_bytes(&mut pair, &[b"SET", b"lb", &long_b]);
    for op in ["AND", "OR", "XOR"] {
        pair.check(&["BITOP", op, "ld", "la", "lb", "b"]);
        pair.check(&["GET", "ld"]);
    }
    pair.check(&["BITOP", "NOT", "ld", "la"]);
    pair.check(&["GET", "ld"]);
    std::thread::sleep(Duration::from_millis(150));
    pair.check(&["GET", "ttl"]);
}

// ---------------------------------------------------------------------------
// BITFIELD
// ---------------------------------------------------------------------------

#[test]
fn bitfield_operations_and_errors() {
    let mut pair = Differential::start();
    pair.script(
        "
        BITFIELD bf SET u8 0 255 GET u8 0 GET i8 0
        BITFIELD bf INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1
        BITFIELD bf INCRBY i5 100 1 GET u4 0
        BITFIELD bf SET i8 #1 -100 GET i8 #1 GET u8 8
        BITFIELD bf SET u8 0 -1 GET i8 0 OVERFLOW SAT INCRBY i8 0 -200 OVERFLOW FAIL INCRBY u8 0 300
        BITFIELD bf OVERFLOW WRAP INCRBY u8 0 300 GET u8 0
        BITFIELD bf OVERFLOW SAT SET i4 0 100 GET i4 0 SET i4 0 -100 GET i4 0
        BITFIELD bf OVERFLOW FAIL SET i4 0 100 SET u4 0 16 SET u4 0 15
        BITFIELD bf SET i64 0 -9223372036854775808 GET i64 0 INCRBY i64 0 -1 GET i64 0
        BITFIELD bf OVERFLOW SAT INCRBY i64 0 -9223372036854775808 INCRBY i64 0 9223372036854775807
        BITFIELD bf OVERFLOW FAIL INCRBY i64 0 9223372036854775807 INCRBY i64 0 1 INCRBY i64 0 -1
        BITFIELD bf SET u63 1 9223372036854775807 GET u63 1 INCRBY u63 1 1 OVERFLOW SAT INCRBY u63 1 -5
        BITFIELD bf SET i1 0 1 GET i1 0 SET u1 0 1 GET u1 0 INCRBY i1 0 1 INCRBY u1 0 1
        BITFIELD bf GET u8 1000 GET i64 999 GET u63 100000
        GET bf
        BITFIELD missing GET u8 0 GET i64 3
        GET missing
        BITFIELD missing
        BITFIELD created OVERFLOW FAIL SET u8 100 300
        STRLEN created
        BITFIELD bf get u8 0 set u8 0 1 incrby u8 0 1 overflow sat
        BITFIELD bf GET I8 0
        BITFIELD bf GET U8 0
        BITFIELD bf GET u64 0
        BITFIELD bf GET i65 0
        BITFIELD bf GET i0 0
        BITFIELD bf GET u 0
        BITFIELD bf GET x8 0
        BITFIELD bf GET i08 0
        BITFIELD bf GET i-1 0
        BITFIELD bf GET i8 -1
        BITFIELD bf GET i8 a
        BITFIELD bf GET i8 #-1
        BITFIELD bf GET i8 ##1
        BITFIELD bf GET i8 #
        BITFIELD bf GET i8 4294967296
        BITFIELD bf GET i8 #536870912
        BITFIELD bf GET i8 #9223372036854775807
        BITFIELD bf GET i64 #2305843009213693953
        BITFIELD bf SET i8 0 abc
        BITFIELD bf INCRBY i8 0 1.5
        BITFIELD bf SET i8 0 99999999999999999999
        BITFIELD bf OVERFLOW FOO
        BITFIELD bf OVERFLOW
        BITFIELD bf FOO
        BITFIELD bf GET
        BITFIELD bf GET i8
        BITFIELD bf SET i8 0
        BITFIELD bf INCRBY i8 0
        BITFIELD bf GET i8 0 FOO
        BITFIELD bf SET i8 0 1 GET i8 abc
        BITFIELD
        BITFIELD_RO bf GET u8 0 GET i16 #1
        BITFIELD_RO bf
        BITFIELD_RO bf OVERFLOW SAT
        BITFIELD_RO bf SET u8 0 1
        BITFIELD_RO bf INCRBY u8 0 1
        BITFIELD_RO bf GET u8 0 SET u8 0 1
        BITFIELD_RO bf GET u64 0
        BITFIELD_RO missing GET u8 0
        BITFIELD_RO
        ",
    );
    pair.script(
        "
        CONFIG SET proto-max-bulk-len 1mb
        BITFIELD lim SET u8 8388600 1
        BITFIELD lim SET u8 8388601 1
        BITFIELD lim GET u8 8388608
        BITFIELD lim SET u8 #1048575 7
        BITFIELD lim SET u8 #1048576 7
        STRLEN lim
        CONFIG SET proto-max-bulk-len 512mb
        ",
    );
    resp3(&mut pair);
    pair.script(
        "
        BITFIELD bf OVERFLOW FAIL INCRBY u2 0 100 GET u2 0
        BITFIELD_RO bf GET u8 0
        ",
    );
}

#[test]
fn bitfield_random_against_redis() {
    let mut pair = Differential::start();
    let mut rng = StdRng::seed_from_u64(0xb17f);
    let values = [
        "0",
        "1",
        "-1",
        "127",
        "128",
        "-128",
        "255",
        "256",
        "9223372036854775807",
        "-9223372036854775808",
        "4611686018427387904",
        "-4611686018427387905",
    ];
    for round in 0..rounds() {
        if round % 10 == 0 {
            let bitmap = random_bitmap(&mut rng);
            check_bytes(&mut pair, &[b"SET", b"bf", &bitmap]);
        }
        let mut args: Vec<String> = vec!["BITFIELD".into(), "bf".into()];
        for _ in 0..rng.gen_range(1..5) {
            let signed = rng.gen_bool(0.5);
            let bits = if signed {
                rng.gen_range(1..=64)
            } else {
                rng.gen_range(1..=63)
            };
            let ty = format!("{}{bits}", if signed { 'i' } else { 'u' });
            let offset = if rng.gen_bool(0.2) {
                format!("#{}", rng.gen_range(0..6))
            } else {
                rng.gen_range(0..120).to_string()
            };
            let value = if rng.gen_bool(0.6) {
                values[rng.gen_range(0..values.len())].to_string()
            } else {
                rng.gen::<i64>().to_string()
            };
            match rng.gen_range(0..4) {
                0 => args.extend(["GET".into(), ty, offset]),
                1 => args.extend(["SET".into(), ty, offset, value]),
                2 => args.extend(["INCRBY".into(), ty, offset, value]),
                _ => args.extend([
                    "OVERFLOW".into(),
                    ["WRAP", "SAT", "FAIL"][rng.gen_range(0..3)].into(),
                ]),
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pair.check(&args);
        if round % 10 == 9 {
            pair.check(&["GET", "bf"]);
        }
    }
}

#[test]
fn random_getrange_setrange_against_redis() {
    let mut pair = Differential::start();
    let mut rng = StdRng::seed_from_u64(0x5e7);
    for _ in 0..rounds() {
        let start = rng.gen_range(-30i64..30).to_string();
        let end = rng.gen_range(-30i64..30).to_string();
        pair.check(&["GETRANGE", "s", &start, &end]);
        let offset = rng.gen_range(0..25).to_string();
        let piece: String = (0..rng.gen_range(0..5))
            .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
            .collect();
        match rng.gen_range(0..6) {
            0 => {
                pair.check(&["DEL", "s"]);
            }
            1 => {
                pair.check(&["APPEND", "s", &piece]);
            }
            _ => {
                pair.check(&["SETRANGE", "s", &offset, &piece]);
            }
        }
    }
    pair.check(&["GET", "s"]);
}

// ---------------------------------------------------------------------------
// Command table, transactions, WATCH
// ---------------------------------------------------------------------------

const STRING_COMMANDS: &[&str] = &[
    "get",
    "set",
    "setnx",
    "setex",
    "psetex",
    "getex",
    "getdel",
    "getset",
    "mget",
    "mset",
    "msetnx",
    "incr",
    "decr",
    "incrby",
    "decrby",
    "incrbyfloat",
    "append",
    "strlen",
    "getrange",
    "substr",
    "setrange",
    "lcs",
    "setbit",
    "getbit",
    "bitcount",
    "bitpos",
    "bitop",
    "bitfield",
    "bitfield_ro",
];

#[test]
fn command_info_matches_redis() {
    let larder = TestServer::start();
    let redis_server = RedisServer::start();
    let mut ours = larder.client();
    let mut theirs = redis::Client::open(format!("redis://{}/", redis_server.addr))
        .and_then(|c| c.get_connection())
        .expect("connect to redis-server");
    for name in STRING_COMMANDS {
        let info = |con: &mut redis::Connection| -> Vec<redis::Value> {
            let reply: redis::Value = redis::cmd("COMMAND")
                .arg("INFO")
                .arg(*name)
                .query(con)
                .expect("COMMAND INFO");
            match reply {
                redis::Value::Array(mut items) if items.len() == 1 => match items.remove(0) {
                    // name, arity, flags, first key, last key, step, ACL categories
                    redis::Value::Array(fields) => fields.into_iter().take(7).collect(),
                    other => panic!("unexpected {other:?}"),
                },
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(info(&mut ours), info(&mut theirs), "COMMAND INFO {name}");
        let docs = |con: &mut redis::Connection| -> Vec<redis::Value> {
            let reply: redis::Value = redis::cmd("COMMAND")
                .arg("DOCS")
                .arg(*name)
                .query(con)
                .expect("COMMAND DOCS");
            // RESP2: [name, [field, value, field, value...]]
            let redis::Value::Array(outer) = reply else {
                panic!("unexpected {reply:?}");
            };
            let Some(redis::Value::Array(fields)) = outer.get(1) else {
                panic!("unexpected {outer:?}");
            };
            ["summary", "since", "group", "complexity"]
                .iter()
                .map(|wanted| {
                    fields
                        .chunks(2)
                        .find(|pair| {
                            pair[0] == redis::Value::BulkString(wanted.as_bytes().to_vec())
                        })
                        .map_or(redis::Value::Nil, |pair| pair[1].clone())
                })
                .collect()
        };
        assert_eq!(docs(&mut ours), docs(&mut theirs), "COMMAND DOCS {name}");
    }
}

#[test]
fn key_positions_and_transactions() {
    let mut pair = Differential::start();
    pair.script(
        "
        COMMAND GETKEYS MSET a 1 b 2 c 3
        COMMAND GETKEYS MSETNX a 1 b 2
        COMMAND GETKEYS MGET a b c
        COMMAND GETKEYS BITOP AND dest s1 s2 s3
        COMMAND GETKEYS LCS k1 k2 IDX
        COMMAND GETKEYS GETEX k EX 10
        COMMAND GETKEYS SET k v GET
        COMMAND GETKEYS BITFIELD k GET u8 0
        MULTI
        MSET t1 a t2 b t3 c t4 d
        MGET t1 t2 t3 t4
        BITOP OR t5 t1 t2 t3 t4
        GET t5
        MSETNX t6 x t1 y
        LCS t1 t5
        INCR counter
        INCRBYFLOAT fcounter 1.5
        SETRANGE t1 3 xyz
        GETDEL t2
        EXEC
        MULTI
        SET q 1
        INCR q
        SET q abc
        INCR q
        GET q
        EXEC
        MULTI
        SET k v EX 0
        EXEC
        ",
    );
}

#[test]
fn watch_sees_in_place_changes() {
    let server = TestServer::start();
    let mut watcher = server.raw();
    let mut writer = server.raw();
    let changes: &[&[&str]] = &[
        &["APPEND", "w", "x"],
        &["SETRANGE", "w", "0", "y"],
        &["INCRBYFLOAT", "n", "1.5"],
        &["INCR", "i"],
        &["SETBIT", "w", "3", "1"],
        &["BITFIELD", "w", "SET", "u8", "0", "65"],
        &["GETEX", "w", "EX", "100"],
        &["GETDEL", "w"],
        &["BITOP", "NOT", "w", "w"],
    ];
    for change in changes {
        let key = change[1];
        let key = if change[0] == "BITOP" { change[2] } else { key };
        assert_eq!(writer.command(&["SET", key, "7"]), b"+OK\r\n");
        assert_eq!(watcher.command(&["WATCH", key]), b"+OK\r\n");
        writer.command(change);
        assert_eq!(watcher.command(&["MULTI"]), b"+OK\r\n");
        assert_eq!(watcher.command(&["GET", key]), b"+QUEUED\r\n");
        assert_eq!(
            watcher.command(&["EXEC"]),
            b"*-1\r\n",
            "{change:?} should abort the transaction"
        );
    }
}

// ---------------------------------------------------------------------------
// Through the redis crate
// ---------------------------------------------------------------------------

#[test]
fn redis_crate_round_trips() {
    let server = TestServer::start();
    let mut con = server.client();
    let ok: bool = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("NX")
        .arg("PX")
        .arg(60_000)
        .query(&mut con)
        .unwrap();
    assert!(ok);
    let not_set: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .arg("NX")
        .query(&mut con)
        .unwrap();
    assert_eq!(not_set, None);
    let old: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .arg("GET")
        .query(&mut con)
        .unwrap();
    assert_eq!(old.as_deref(), Some("v"));
    let n: i64 = redis::cmd("INCRBY")
        .arg("n")
        .arg(41)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 41);
    let f: String = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("10.5")
        .query(&mut con)
        .unwrap();
    assert_eq!(f, "10.5");
    let f: f64 = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("0.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(f, 10.6);
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query(&mut con)
        .unwrap();
    let values: Vec<Option<String>> = redis::cmd("MGET")
        .arg("a")
        .arg("missing")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert_eq!(values, vec![Some("1".into()), None, Some("2".into())]);
    let fields: Vec<Option<i64>> = redis::cmd("BITFIELD")
        .arg("bf")
        .arg("SET")
        .arg("u8")
        .arg(0)
        .arg(200)
        .arg("OVERFLOW")
        .arg("FAIL")
        .arg("INCRBY")
        .arg("u8")
        .arg(0)
        .arg(100)
        .arg("GET")
        .arg("i8")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(fields, vec![Some(0), None, Some(-56)]);
    let bits: i64 = redis::cmd("BITCOUNT").arg("bf").query(&mut con).unwrap();
    assert_eq!(bits, 3);
    let err = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("EX")
        .arg(0)
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid expire time in 'set' command"),
        "{err}"
    );
}

#[test]
fn redis_crate_resp3_lcs_idx() {
    let server = TestServer::start();
    let mut con = server.resp3_client();
    let _: () = redis::cmd("MSET")
        .arg("key1")
        .arg("ohmytext")
        .arg("key2")
        .arg("mynewtext")
        .query(&mut con)
        .unwrap();
    let reply: redis::Value = redis::cmd("LCS")
        .arg("key1")
        .arg("key2")
        .arg("IDX")
        .arg("MINMATCHLEN")
        .arg(4)
        .arg("WITHMATCHLEN")
        .query(&mut con)
        .unwrap();
    let redis::Value::Map(entries) = reply else {
        panic!("LCS IDX must be a map in RESP3, got {reply:?}");
    };
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[1],
        (
            redis::Value::BulkString(b"len".to_vec()),
            redis::Value::Int(6)
        )
    );
    let len: i64 = redis::cmd("LCS")
        .arg("key1")
        .arg("key2")
        .arg("LEN")
        .query(&mut con)
        .unwrap();
    assert_eq!(len, 6);
}

/// GET and MGET read their shards shared with other readers; writers
/// still exclude them. Two clients MSET a run of keys (spread over many
/// shards) to one value each round, and with DEL remove them all at once,
/// while three others read: an MGET must see every key at one value or
/// every key missing, never a mix, and a GET of any key only a value some
/// round wrote.
#[test]
fn readers_never_see_half_of_an_mset_or_a_del() {
    const KEYS: usize = 24;
    const ROUNDS: u64 = 1500;
    let server = TestServer::start();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("mset-key:{i}")).collect();
    let writers: Vec<_> = (0..2u64)
        .map(|writer| {
            let mut con = server.client();
            let keys = keys.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    if round % 10 == 9 {
                        let _: i64 = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
                    } else {
                        let value = format!("w{writer}-r{round}");
                        let pairs: Vec<(&str, &str)> =
                            keys.iter().map(|k| (k.as_str(), value.as_str())).collect();
                        let _: () = redis::cmd("MSET").arg(&pairs).query(&mut con).unwrap();
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..3usize)
        .map(|reader| {
            let mut con = server.client();
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut seen_values = 0;
                for i in 0..ROUNDS as usize {
                    let values: Vec<Option<String>> =
                        redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
                    assert!(
                        values.iter().all(|v| v == &values[0]),
                        "MGET saw a write half done: {values:?}"
                    );
                    seen_values += usize::from(values[0].is_some());
                    let one: Option<String> = redis::cmd("GET")
                        .arg(&keys[(i + reader) % KEYS])
                        .query(&mut con)
                        .unwrap();
                    if let Some(value) = one {
                        assert!(value.starts_with('w') && value.contains("-r"), "{value}");
                    }
                }
                seen_values
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let seen: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(seen > 0, "the readers never saw the keys set");
}
