//! OBJECT and MEMORY, compared with Redis where the answers are the same.

mod common;

use common::{Differential, TestServer};

#[test]
fn object_matches_redis_for_strings() {
    let mut pair = Differential::start();
    pair.script(
        "
        SET small 12
        SET big 123456789
        SET text hello
        OBJECT ENCODING small
        OBJECT ENCODING text
        OBJECT ENCODING missing
        OBJECT REFCOUNT small
        OBJECT REFCOUNT big
        OBJECT REFCOUNT text
        OBJECT REFCOUNT missing
        OBJECT FREQ text
        OBJECT IDLETIME text
        OBJECT IDLETIME missing
        OBJECT HELP
        OBJECT
        OBJECT ENCODING
        OBJECT NOSUCH x
        MEMORY USAGE missing
        MEMORY USAGE text SAMPLES -1
        MEMORY USAGE text SAMPLES
        MEMORY USAGE text FOO 1
        ",
    );
    let long = "x".repeat(100);
    pair.check(&["SET", "long", &long]);
    pair.check(&["OBJECT", "ENCODING", "long"]);
}

/// Redis's string encodings follow how a string was made, not only its
/// content: PFADD, PFMERGE, SETRANGE, SETBIT, BITFIELD and BITOP create raw
/// strings, and APPEND, SETRANGE, SETBIT, BITFIELD, PFADD and PFMERGE turn
/// an existing one raw (`dbUnshareStringValue`), short or numeric as it
/// may be; writing it whole again encodes it by content. RENAME, MOVE and
/// COPY keep the encoding.
#[test]
fn object_encoding_of_strings_built_in_place_matches_redis() {
    let mut pair = Differential::start();
    pair.script(
        "
        PFADD hll a b c
        OBJECT ENCODING hll
        STRLEN hll
        PFADD hll d
        OBJECT ENCODING hll
        PFADD nothing
        OBJECT ENCODING nothing
        PFMERGE merged hll
        OBJECT ENCODING merged
        PFMERGE hll2 nothing
        OBJECT ENCODING hll2
        SET n 1
        OBJECT REFCOUNT n
        APPEND n 1
        GET n
        OBJECT ENCODING n
        OBJECT REFCOUNT n
        APPEND fresh 12
        OBJECT ENCODING fresh
        APPEND freshtext hello
        OBJECT ENCODING freshtext
        SETRANGE r 0 ab
        OBJECT ENCODING r
        SET s 12
        SETRANGE s 0 3
        GET s
        OBJECT ENCODING s
        SETBIT b 3 1
        OBJECT ENCODING b
        SET sb 12
        SETBIT sb 0 0
        OBJECT ENCODING sb
        BITFIELD bf SET u8 0 1
        OBJECT ENCODING bf
        SET bfget 12
        BITFIELD bfget GET u8 0
        OBJECT ENCODING bfget
        SET bfset 12
        BITFIELD bfset SET u8 0 49
        OBJECT ENCODING bfset
        SET src ab
        BITOP AND dest src src
        OBJECT ENCODING dest
        SET ren x
        APPEND ren y
        RENAME ren renamed
        OBJECT ENCODING renamed
        COPY renamed copied
        OBJECT ENCODING copied
        MOVE renamed 1
        SELECT 1
        OBJECT ENCODING renamed
        SELECT 0
        SET again 12
        APPEND again 3
        SET again 12
        OBJECT ENCODING again
        SET counter 1
        APPEND counter 2
        INCR counter
        OBJECT ENCODING counter
        SET long 123456789012345678901234567890123456789012345
        OBJECT ENCODING long
        ",
    );
    // Appending or setting nothing: APPEND still makes the string raw,
    // SETRANGE leaves it as it was.
    pair.check(&["SET", "e", "hello"]);
    pair.check(&["APPEND", "e", ""]);
    pair.check(&["OBJECT", "ENCODING", "e"]);
    pair.check(&["SET", "t", "hello"]);
    pair.check(&["SETRANGE", "t", "1", ""]);
    pair.check(&["OBJECT", "ENCODING", "t"]);
    pair.check(&["SETRANGE", "nokey", "1", ""]);
    pair.check(&["EXISTS", "nokey"]);
    // An HLL written whole (SET of its bytes) is an embstr; PFCOUNT makes
    // it raw, whether it caches its count or finds it cached.
    let reply = pair.check(&["GET", "hll"]);
    let start = reply
        .iter()
        .position(|&b| b == b'\n')
        .expect("a bulk reply")
        + 1;
    let bytes = &reply[start..reply.len() - 2];
    pair.check_raw(&common::encode_command(&[b"SET", b"hcopy", bytes]));
    pair.script(
        "
        OBJECT ENCODING hcopy
        PFCOUNT hcopy
        OBJECT ENCODING hcopy
        PFCOUNT hcopy
        ",
    );
    let reply = pair.check(&["GET", "hcopy"]);
    let start = reply
        .iter()
        .position(|&b| b == b'\n')
        .expect("a bulk reply")
        + 1;
    let cached = &reply[start..reply.len() - 2];
    pair.check_raw(&common::encode_command(&[b"SET", b"hcached", cached]));
    pair.script(
        "
        OBJECT ENCODING hcached
        PFCOUNT hcached
        OBJECT ENCODING hcached
        PFCOUNT hcached hcopy
        ",
    );
}

#[test]
fn memory_usage_grows_with_the_value() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("a").arg("x").query(&mut con).unwrap();
    let _: () = redis::cmd("SET")
        .arg("b")
        .arg("x".repeat(10_000))
        .query(&mut con)
        .unwrap();
    let small: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("a")
        .query(&mut con)
        .unwrap();
    let large: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert!((1..200).contains(&small), "small key costs {small}");
    assert!((10_000..10_300).contains(&large), "large key costs {large}");
}

#[test]
fn idletime_counts_from_the_last_access() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("k")
        .query(&mut con)
        .unwrap();
    assert!((1..=3).contains(&idle), "idle {idle}");
    // OBJECT and EXISTS are not accesses; GET is.
    let _: i64 = redis::cmd("EXISTS").arg("k").query(&mut con).unwrap();
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("k")
        .query(&mut con)
        .unwrap();
    assert!(idle >= 1, "EXISTS touched the key");
    let _: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("k")
        .query(&mut con)
        .unwrap();
    assert_eq!(idle, 0);
}
