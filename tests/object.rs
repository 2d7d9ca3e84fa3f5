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
