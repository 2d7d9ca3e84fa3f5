//! The harness itself works: a real client talks to Larder, and Larder and
//! Redis agree on the basics.

mod common;

use common::{Differential, TestServer};

#[test]
fn redis_crate_round_trip() {
    let server = TestServer::start();
    let mut con = server.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let value: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(value, "v");
}

#[test]
fn differential_basics() {
    let mut pair = Differential::start();
    pair.script(
        "
        PING
        PING hello
        ECHO hi
        SET k v
        GET k
        GET missing
        DEL k missing
        NOSUCHCOMMAND a b
        GET
        SELECT 99
        SELECT x
        ",
    );
}
