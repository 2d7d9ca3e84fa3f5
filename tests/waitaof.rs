//! WAITAOF (Redis 7.2), as a Redis with `appendonly no` and no replicas
//! answers it (redis-server 7.0 has no WAITAOF to compare with: the
//! expected replies are Redis 7.2's waitaofCommand's).

mod common;

use std::time::{Duration, Instant};

use common::TestServer;

#[test]
fn waitaof_answers_as_redis_without_an_append_only_file() {
    let server = TestServer::start();
    let mut c = server.raw();
    let run = |c: &mut common::RawClient, args: &[&str]| {
        String::from_utf8_lossy(&c.command(args)).replace("\r\n", "|")
    };
    c.command(&["SET", "k", "v"]);
    assert_eq!(run(&mut c, &["WAITAOF", "0", "0", "0"]), "*2|:0|:0|");
    assert_eq!(
        run(&mut c, &["WAITAOF", "1", "0", "0"]),
        "-ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.|"
    );
    for (args, error) in [
        (
            ["2", "0", "0"],
            "-ERR value is out of range, value must between 0 and 1|",
        ),
        (
            ["-1", "0", "0"],
            "-ERR value is out of range, value must between 0 and 1|",
        ),
        (
            ["x", "0", "0"],
            "-ERR value is not an integer or out of range|",
        ),
        (
            ["0", "-1", "0"],
            "-ERR value is out of range, must be positive|",
        ),
        (
            ["0", "x", "0"],
            "-ERR value is not an integer or out of range|",
        ),
        (["0", "0", "-5"], "-ERR timeout is negative|"),
        (
            ["0", "0", "x"],
            "-ERR timeout is not an integer or out of range|",
        ),
        // The timeout is read before the append-only check.
        (["1", "0", "-5"], "-ERR timeout is negative|"),
    ] {
        let mut command = vec!["WAITAOF"];
        command.extend_from_slice(&args);
        assert_eq!(run(&mut c, &command), error, "{command:?}");
    }
    assert_eq!(
        run(&mut c, &["WAITAOF", "0"]),
        "-ERR wrong number of arguments for 'waitaof' command|"
    );
    // A replica to wait for never comes: [0, 0] after the timeout.
    let started = Instant::now();
    assert_eq!(run(&mut c, &["WAITAOF", "0", "1", "150"]), "*2|:0|:0|");
    assert!(started.elapsed() >= Duration::from_millis(140));
    // Inside MULTI it cannot block: at once.
    c.command(&["MULTI"]);
    c.command(&["WAITAOF", "0", "1", "0"]);
    assert_eq!(run(&mut c, &["EXEC"]), "*1|*2|:0|:0|");
    // In RESP3 too, an array of two integers.
    c.command(&["HELLO", "3"]);
    assert_eq!(run(&mut c, &["WAITAOF", "0", "0", "0"]), "*2|:0|:0|");
}
