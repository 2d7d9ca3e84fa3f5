//! Helpers of the write-behind tests: commands, `WRITEBEHIND FLUSH` and
//! `WRITEBEHIND STATUS` through a `redis` crate connection, and the
//! encoding of stored collections.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// Runs `args` and returns the reply; panics on an error reply.
pub fn cmd(con: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// `WRITEBEHIND FLUSH`: waits until every acknowledged change is in
/// PostgreSQL (30 s at most).
pub fn flush(con: &mut redis::Connection) {
    let reply: String = redis::cmd("WRITEBEHIND")
        .arg("FLUSH")
        .arg(30_000)
        .query(con)
        .expect("WRITEBEHIND FLUSH");
    assert_eq!(reply, "OK");
}

pub fn status(con: &mut redis::Connection) -> BTreeMap<String, redis::Value> {
    redis::cmd("WRITEBEHIND")
        .arg("STATUS")
        .query(con)
        .expect("WRITEBEHIND STATUS")
}

pub fn status_int(con: &mut redis::Connection, field: &str) -> i64 {
    match status(con).get(field) {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("{field}: {other:?}"),
    }
}

pub fn status_text(con: &mut redis::Connection, field: &str) -> String {
    match status(con).get(field) {
        Some(redis::Value::BulkString(text)) => String::from_utf8_lossy(text).into_owned(),
        other => panic!("{field}: {other:?}"),
    }
}
