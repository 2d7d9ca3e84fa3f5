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
