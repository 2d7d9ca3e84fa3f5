//! The wire protocol, compared byte for byte with a real redis-server:
//! RESP2/RESP3 switching with HELLO, inline commands, pipelining, frames
//! split across writes, empty requests, and every protocol error (the exact
//! `-ERR Protocol error: ...` line, then the connection closes).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{encode_command, reply_length, RawClient, RedisServer, TestServer};

/// Larder and Redis side by side, with fresh connections on demand.
struct Pair {
    larder: TestServer,
    redis: RedisServer,
}

impl Pair {
    fn start() -> Self {
        Pair {
            larder: TestServer::start(),
            redis: RedisServer::start(),
        }
    }

    fn clients(&self) -> (RawClient, RawClient) {
        (self.larder.raw(), self.redis.raw())
    }

    /// Sends `input` on a new connection to each server and compares what
    /// comes back, and whether the server closed the connection.
    fn converse(&self, input: &[u8]) -> Conversation {
        let (ours, theirs) = std::thread::scope(|scope| {
            let theirs = scope.spawn(|| converse(self.redis.addr, input));
            let ours = converse(self.larder.addr, input);
            (ours, theirs.join().expect("conversation with Redis"))
        });
        assert_eq!(
            ours,
            theirs,
            "Larder and Redis differ for input {:?}",
            String::from_utf8_lossy(&input[..input.len().min(200)])
        );
        ours
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Conversation {
    /// What the server sent, byte for byte.
    bytes: Vec<u8>,
    /// The same, as text for assertions and messages.
    output: String,
    closed: bool,
}

/// Writes `input`, then reads until the server closes the connection or
/// stays silent for 300 ms.
fn converse(addr: SocketAddr, input: &[u8]) -> Conversation {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    // The server may close before it has read everything: that is fine.
    let _ = stream.write_all(input);
    read_until_quiet(&mut stream, Duration::from_millis(300))
}

fn read_until_quiet(stream: &mut TcpStream, quiet: Duration) -> Conversation {
    stream.set_read_timeout(Some(quiet)).expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut output = Vec::new();
    let mut chunk = [0u8; 65536];
    let closed = loop {
        assert!(Instant::now() < deadline, "server kept talking");
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => output.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false
            }
            Err(e) => panic!("read failed: {e}"),
        }
    };
    Conversation {
        output: String::from_utf8_lossy(&output).into_owned(),
        bytes: output,
        closed,
    }
}

fn same(ours: &mut RawClient, theirs: &mut RawClient, args: &[&str]) -> String {
    let a = ours.command(args);
    let b = theirs.command(args);
    assert_eq!(
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&b),
        "replies differ for {args:?}"
    );
    String::from_utf8_lossy(&a).into_owned()
}

fn same_raw(ours: &mut RawClient, theirs: &mut RawClient, bytes: &[u8]) -> String {
    ours.send(bytes);
    theirs.send(bytes);
    let a = ours.read_reply();
    let b = theirs.read_reply();
    assert_eq!(
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&b),
        "replies differ for raw input {:?}",
        String::from_utf8_lossy(bytes)
    );
    String::from_utf8_lossy(&a).into_owned()
}

/// A HELLO reply with the parts that legitimately differ (the version
/// string and the client id) replaced by placeholders.
fn normalize_hello(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply).into_owned();
    let mut out = String::new();
    let mut rest = text.as_str();
    // $7\r\nversion\r\n$<n>\r\n<v>\r\n
    if let Some(at) = rest.find("$7\r\nversion\r\n") {
        let after = &rest[at + "$7\r\nversion\r\n".len()..];
        let skip = after
            .match_indices("\r\n")
            .nth(1)
            .map(|(i, _)| i + 2)
            .expect("version value");
        out.push_str(&rest[..at]);
        out.push_str("$7\r\nversion\r\n<VERSION>");
        rest = &after[skip..];
    }
    if let Some(at) = rest.find("$2\r\nid\r\n:") {
        let after = &rest[at + "$2\r\nid\r\n:".len()..];
        let end = after.find("\r\n").expect("id value");
        assert!(after[..end].parse::<u64>().is_ok(), "id is an integer");
        out.push_str(&rest[..at]);
        out.push_str("$2\r\nid\r\n:<ID>");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn hello_same(ours: &mut RawClient, theirs: &mut RawClient, args: &[&str]) -> String {
    let a = normalize_hello(&ours.command(args));
    let b = normalize_hello(&theirs.command(args));
    assert_eq!(a, b, "HELLO replies differ for {args:?}");
    a
}

#[test]
fn resp2_is_the_default() {
    let pair = Pair::start();
    let (mut ours, mut theirs) = pair.clients();
    assert_eq!(same(&mut ours, &mut theirs, &["GET", "missing"]), "$-1\r\n");
    same(&mut ours, &mut theirs, &["CONFIG", "GET", "maxclients"]);
    same(&mut ours, &mut theirs, &["CLIENT", "GETNAME"]);
    let hello = hello_same(&mut ours, &mut theirs, &["HELLO"]);
    assert!(hello.starts_with("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n"));
    assert!(hello.contains("$5\r\nproto\r\n:2\r\n"));
    assert!(hello.ends_with("$7\r\nmodules\r\n*0\r\n"));
}

#[test]
fn hello_switches_between_resp2_and_resp3() {
    let pair = Pair::start();
    let (mut ours, mut theirs) = pair.clients();
    let hello = hello_same(&mut ours, &mut theirs, &["HELLO", "3"]);
    assert!(hello.starts_with("%7\r\n$6\r\nserver\r\n"), "{hello}");
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"));
    assert_eq!(same(&mut ours, &mut theirs, &["GET", "missing"]), "_\r\n");
    assert_eq!(
        same(&mut ours, &mut theirs, &["CONFIG", "GET", "timeout"]),
        "%1\r\n$7\r\ntimeout\r\n$1\r\n0\r\n"
    );
    same(&mut ours, &mut theirs, &["CLIENT", "GETNAME"]);
    same(&mut ours, &mut theirs, &["SET", "k", "v"]);
    same(&mut ours, &mut theirs, &["GET", "k"]);
    same(&mut ours, &mut theirs, &["COMMAND", "INFO", "nosuch"]);
    same(&mut ours, &mut theirs, &["COMMAND", "DOCS", "nosuch"]);
    same(
        &mut ours,
        &mut theirs,
        &["CLIENT", "LIST", "TYPE", "pubsub"],
    );
    same(&mut ours, &mut theirs, &["INFO", "nosuch"]);
    // HELLO with no version keeps the protocol and reports it.
    let hello = hello_same(&mut ours, &mut theirs, &["HELLO"]);
    assert!(hello.starts_with("%7\r\n"));
    let hello = hello_same(&mut ours, &mut theirs, &["HELLO", "2"]);
    assert!(hello.starts_with("*14\r\n"));
    assert_eq!(same(&mut ours, &mut theirs, &["GET", "missing"]), "$-1\r\n");
    same(&mut ours, &mut theirs, &["CONFIG", "GET", "timeout"]);
}

#[test]
fn hello_errors_match_redis() {
    let pair = Pair::start();
    let (mut ours, mut theirs) = pair.clients();
    for args in [
        &["HELLO", "4"][..],
        &["HELLO", "1"],
        &["HELLO", "-1"],
        &["HELLO", "x"],
        &["HELLO", "3.0"],
        &["HELLO", "99999999999999999999999"],
        &["HELLO", "3", "FOO"],
        &["HELLO", "3", "AUTH"],
        &["HELLO", "3", "AUTH", "default"],
        &["HELLO", "3", "SETNAME"],
        &["HELLO", "3", "SETNAME", "a b"],
        &["HELLO", "3", "SETNAME", "a\nb"],
        // The name is checked while parsing, before the credentials.
        &["HELLO", "2", "SETNAME", "a b", "AUTH", "nobody", "x"],
        &["HELLO", "2", "AUTH", "nobody", "x"],
        &["HELLO", "2", "AUTH", "default", "x", "FOO"],
    ] {
        let reply = same(&mut ours, &mut theirs, args);
        assert!(reply.starts_with('-'), "{args:?}: {reply}");
    }
    // The errors did not switch the protocol.
    same(&mut ours, &mut theirs, &["GET", "missing"]);
    // With no password configured, any password is accepted for default.
    hello_same(
        &mut ours,
        &mut theirs,
        &["HELLO", "2", "AUTH", "default", "x"],
    );
    // SETNAME twice: the last one wins.
    hello_same(
        &mut ours,
        &mut theirs,
        &["HELLO", "3", "SETNAME", "x", "setname", "y"],
    );
    assert_eq!(
        same(&mut ours, &mut theirs, &["CLIENT", "GETNAME"]),
        "$1\r\ny\r\n"
    );
}

#[test]
fn inline_commands_match_redis() {
    let pair = Pair::start();
    let (mut ours, mut theirs) = pair.clients();
    for input in [
        &b"PING\r\n"[..],
        b"PING\n",
        b"ping\r\n",
        b"   PING   \r\n",
        b"PING hello\r\n",
        b"PING a b\r\n",
        b"ECHO \"a b\"\r\n",
        b"ECHO \"\\x41\\x42\\n\\t\\r\\a\\b\\\\\\\"\"\r\n",
        b"ECHO \"\\x4g\"\r\n",
        b"ECHO 'it\\'s'\r\n",
        b"ECHO 'a\\nb'\r\n",
        b"ECHO \"\"\r\n",
        b"SET k \"v 1\"\r\n",
        b"GET k\r\n",
        b"SET empty ''\r\n",
        b"GET empty\r\n",
        b"ECHO a\tb\r\n",
        b"NOSUCH a 'b c'\r\n",
    ] {
        same_raw(&mut ours, &mut theirs, input);
    }
    // redis-benchmark's PING_INLINE: many inline PINGs in one write.
    let burst = b"PING\r\n".repeat(50);
    ours.send(&burst);
    theirs.send(&burst);
    for _ in 0..50 {
        assert_eq!(ours.read_reply(), b"+PONG\r\n");
        assert_eq!(theirs.read_reply(), b"+PONG\r\n");
    }
}

#[test]
fn pipelined_commands_get_every_reply_in_one_go() {
    let pair = Pair::start();
    let mut input = Vec::new();
    for i in 0..100 {
        let key = format!("key:{}", i % 7);
        let value = format!("value-{i}");
        let command: Vec<&[u8]> = match i % 5 {
            0 => vec![b"SET", key.as_bytes(), value.as_bytes()],
            1 => vec![b"GET", key.as_bytes()],
            2 => vec![b"PING"],
            3 => vec![b"ECHO", value.as_bytes()],
            _ => vec![b"DEL", key.as_bytes(), b"other"],
        };
        input.extend(encode_command(&command));
    }
    let mut outputs = Vec::new();
    for addr in [pair.larder.addr, pair.redis.addr] {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(&input).unwrap();
        let mut output = Vec::new();
        let mut reads = 0;
        let mut chunk = [0u8; 65536];
        let mut replies = 0;
        while replies < 100 {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "closed early");
            reads += 1;
            output.extend_from_slice(&chunk[..n]);
            replies = count_replies(&output);
        }
        assert_eq!(replies, 100);
        if addr == pair.larder.addr {
            // One read of the request, one write of all the replies: they
            // arrive together (a read may split them, but not into many).
            assert!(reads <= 2, "Larder's 100 replies took {reads} reads");
        }
        outputs.push(String::from_utf8(output).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
}

fn count_replies(mut buf: &[u8]) -> usize {
    let mut count = 0;
    while let Ok(Some(length)) = reply_length(buf) {
        buf = &buf[length..];
        count += 1;
    }
    count
}

#[test]
fn frames_split_one_byte_at_a_time() {
    let pair = Pair::start();
    let mut input = Vec::new();
    input.extend(encode_command(&[b"SET", b"split", b"a value\r\nwith CRLF"]));
    input.extend(encode_command(&[b"GET", b"split"]));
    input.extend_from_slice(b"ECHO \"inline too\"\r\n");
    input.extend(encode_command(&[b"PING"]));
    let mut outputs = Vec::new();
    for addr in [pair.larder.addr, pair.redis.addr] {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        for byte in &input {
            stream.write_all(std::slice::from_ref(byte)).unwrap();
            stream.flush().unwrap();
        }
        let mut client_output = Vec::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut chunk = [0u8; 4096];
        while count_replies(&client_output) < 4 {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0);
            client_output.extend_from_slice(&chunk[..n]);
        }
        outputs.push(String::from_utf8(client_output).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(
        outputs[0],
        "+OK\r\n$18\r\na value\r\nwith CRLF\r\n$10\r\ninline too\r\n+PONG\r\n"
    );
}

#[test]
fn empty_requests_get_no_reply() {
    let pair = Pair::start();
    for input in [
        &b"*0\r\nPING\r\n"[..],
        b"*-1\r\nPING\r\n",
        b"*-100\r\nPING\r\n",
        b"\r\nPING\r\n",
        b"\nPING\r\n",
        b"   \t \r\nPING\r\n",
        b"*0\r\n*0\r\n\r\n\r\n*1\r\n$4\r\nPING\r\n",
    ] {
        let conversation = pair.converse(input);
        assert_eq!(conversation.output, "+PONG\r\n");
        assert!(!conversation.closed);
    }
}

#[test]
fn protocol_errors_match_redis_and_close_the_connection() {
    let pair = Pair::start();
    let too_big_inline = vec![b'a'; 70_000];
    let mut too_big_mbulk = b"*".to_vec();
    too_big_mbulk.extend(vec![b'1'; 70_000]);
    let mut nul_in_inline = b"ECHO a\x00".to_vec();
    nul_in_inline.extend(vec![b'b'; 70_000]);
    nul_in_inline.extend_from_slice(b"\r\n");
    let mut too_big_bulk = b"*1\r\n$".to_vec();
    too_big_bulk.extend(vec![b'1'; 70_000]);
    let mut answered_then_error = encode_command(&[b"SET", b"k", b"v"]);
    answered_then_error.extend_from_slice(b"PING\r\n*1\r\n:1\r\nPING\r\n");
    let cases: Vec<(&[u8], &str)> = vec![
        (b"*x\r\n", "invalid multibulk length"),
        (b"*3000000000\r\n", "invalid multibulk length"),
        (b"*1a\r\n", "invalid multibulk length"),
        (b"*01\r\n", "invalid multibulk length"),
        (b"*\r\n", "invalid multibulk length"),
        (b"*1\r\n+x\r\n", "expected '$', got '+'"),
        (b"*2\r\n$4\r\nECHO\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\r\n\xff\r\n", "expected '$', got '"),
        (b"*1\r\n\r\n", "expected '$', got ' '"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$abc\r\n", "invalid bulk length"),
        (b"*1\r\n$01\r\n", "invalid bulk length"),
        (b"*1\r\n$\r\n", "invalid bulk length"),
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
        (b"*1\r\n$99999999999999999999\r\n", "invalid bulk length"),
        (&too_big_inline, "too big inline request"),
        (&nul_in_inline, "too big inline request"),
        (b"ECHO \"abc\r\n", "unbalanced quotes in request"),
        (b"ECHO 'abc\r\n", "unbalanced quotes in request"),
        (b"ECHO \"a\"b\r\n", "unbalanced quotes in request"),
        (b"ECHO 'a'b\r\n", "unbalanced quotes in request"),
        (&too_big_mbulk, "too big mbulk count string"),
        (&too_big_bulk, "too big bulk count string"),
        (&answered_then_error, "expected '$', got ':'"),
    ];
    for (input, expected) in cases {
        let conversation = pair.converse(input);
        assert!(
            conversation
                .output
                .contains(&format!("-ERR Protocol error: {expected}")),
            "{:?}",
            conversation
        );
        assert!(conversation.output.ends_with("\r\n"), "{:?}", conversation);
        assert!(
            conversation.closed,
            "connection left open: {conversation:?}"
        );
    }
    // The commands before the error were answered and took effect.
    let (mut ours, mut theirs) = pair.clients();
    assert_eq!(same(&mut ours, &mut theirs, &["GET", "k"]), "$1\r\nv\r\n");
}

#[test]
fn incomplete_requests_wait_for_more_like_redis() {
    let pair = Pair::start();
    for input in [
        &b"*2\r\n$4\r\nECHO\r\n"[..],
        b"*1\r\n$536870912\r\n",
        b"*1\r\n$4\r\nPI",
        b"*1\r",
        b"PING",
        &[b'a'; 65536],
        // A NUL byte before the CR: Redis's strchr never finds the line end.
        b"*1\r\n\x00\r\n",
        b"*1\r\n\x00abc\r\n",
        // Likewise strchr(p, '\n') for an inline request.
        b"ECHO abc\x00def\r\n",
    ] {
        let conversation = pair.converse(input);
        assert_eq!(conversation.output, "");
        assert!(!conversation.closed);
    }
}

#[test]
fn proto_max_bulk_len_applies_at_once() {
    let pair = Pair::start();
    let (mut ours, mut theirs) = pair.clients();
    same(
        &mut ours,
        &mut theirs,
        &["CONFIG", "SET", "proto-max-bulk-len", "1mb"],
    );
    let conversation = pair.converse(b"*1\r\n$1048577\r\n");
    assert_eq!(
        conversation.output,
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(conversation.closed);
    let conversation = pair.converse(b"*1\r\n$1048576\r\n");
    assert_eq!(conversation.output, "");
    assert!(!conversation.closed);
}

#[test]
fn unauthenticated_clients_have_small_limits() {
    let pair = Pair::start();
    let (mut ours, mut theirs) = pair.clients();
    same(
        &mut ours,
        &mut theirs,
        &["CONFIG", "SET", "requirepass", "secret"],
    );
    // The connection that set the password stays authenticated.
    same(&mut ours, &mut theirs, &["PING"]);

    let conversation = pair.converse(b"*11\r\n");
    assert_eq!(
        conversation.output,
        "-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    assert!(conversation.closed);
    let conversation = pair.converse(b"*1\r\n$16385\r\n");
    assert_eq!(
        conversation.output,
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    assert!(conversation.closed);
    // At the limits: accepted (and refused with NOAUTH once complete).
    let mut at_limits = b"*10\r\n$3\r\nDEL\r\n".to_vec();
    for _ in 0..9 {
        at_limits.extend_from_slice(b"$1\r\na\r\n");
    }
    at_limits.extend_from_slice(b"*1\r\n$16384\r\n");
    let conversation = pair.converse(&at_limits);
    assert_eq!(conversation.output, "-NOAUTH Authentication required.\r\n");
    assert!(!conversation.closed);
    // Inline requests are not limited that way.
    let mut long_inline = b"ECHO ".to_vec();
    long_inline.extend(vec![b'a'; 20_000]);
    long_inline.extend_from_slice(b"\r\n");
    let conversation = pair.converse(&long_inline);
    assert_eq!(conversation.output, "-NOAUTH Authentication required.\r\n");

    // Once authenticated, the usual limits apply.
    let mut input = encode_command(&[b"AUTH", b"secret"]);
    input.extend_from_slice(b"*12\r\n");
    for _ in 0..12 {
        input.extend_from_slice(b"$5\r\nhellx\r\n");
    }
    input.extend(encode_command(&[b"ECHO", &vec![b'x'; 20_000]]));
    let conversation = pair.converse(&input);
    assert!(
        conversation
            .output
            .starts_with("+OK\r\n-ERR unknown command 'hellx', with args beginning with: 'hellx' "),
        "{:?}",
        &conversation.output[..conversation.output.len().min(300)]
    );
    assert!(conversation
        .output
        .ends_with(&format!("$20000\r\n{}\r\n", "x".repeat(20_000))));
    assert!(!conversation.closed);
}

/// RESP3 replies whose sets hold maps (which the harness's reference decoder
/// cannot read) compared as raw text.
#[test]
fn resp3_command_info_matches_redis() {
    let pair = Pair::start();
    let mut input = encode_command(&[b"HELLO", b"3"]);
    for name in [
        "get",
        "watch",
        "ping",
        "client|list",
        "config|set",
        "echo",
        "nosuch",
    ] {
        input.extend(encode_command(&[b"COMMAND", b"INFO", name.as_bytes()]));
    }
    let ours = converse(pair.larder.addr, &input);
    let theirs = converse(pair.redis.addr, &input);
    assert_eq!(
        normalize_hello(ours.output.as_bytes()),
        normalize_hello(theirs.output.as_bytes())
    );
    assert!(!ours.closed);
}

/// Error replies quote client bytes as they are, even when they are not
/// UTF-8, and a NUL byte ends a quoted argument (Redis prints C strings).
#[test]
fn errors_quote_raw_client_bytes() {
    let pair = Pair::start();
    let mut input = b"\xff\xfe x\r\n".to_vec();
    input.extend(encode_command(&[b"NOSUCH", b"a\x00b", b"\xc3\xa9\xff"]));
    input.extend(encode_command(&[b"CLIENT", b"\xffsub\x00x"]));
    input.extend(encode_command(&[&[0xce; 200][..], &[0xa9; 200][..]]));
    input.extend(encode_command(&[
        b"x",
        &[b'a'; 126][..],
        "\u{e9}\u{e9}".as_bytes(),
    ]));
    let conversation = pair.converse(&input);
    assert_eq!(conversation.output.matches("\r\n").count(), 5);
    assert!(conversation
        .bytes
        .starts_with(b"-ERR unknown command '\xff\xfe', with args"));
    assert!(!conversation.closed);
}

/// The connection decodes the requests after the running one to prefetch
/// their keys (and reads the clock once per run of them): none of it may
/// show. A long pipeline mixing databases (SELECT half-way), multi-key
/// commands, strings rewritten in place (same length) and not, counters
/// changing length, expiries, inline requests, unknown commands and wrong
/// arities, ending in a protocol error, answers byte for byte as Redis.
#[test]
fn a_pipeline_looked_ahead_into_answers_as_redis() {
    let pair = Pair::start();
    let mut input = Vec::new();
    for i in 0..120 {
        let key = format!("k:{}", i % 9);
        let same_length = format!("v{:03}", i % 1000);
        let counter = format!("c:{}", i % 3);
        let command: Vec<&[u8]> = match i % 12 {
            0 => vec![b"SET", key.as_bytes(), same_length.as_bytes()],
            1 => vec![b"GET", key.as_bytes()],
            2 => vec![b"INCRBY", counter.as_bytes(), b"7"],
            3 => vec![b"MGET", b"k:0", b"k:1", key.as_bytes(), b"c:0"],
            4 => vec![b"MSET", key.as_bytes(), b"longer-value", b"k:8", b"x"],
            5 => vec![
                b"SET",
                key.as_bytes(),
                same_length.as_bytes(),
                b"PX",
                b"100000",
            ],
            6 => vec![b"TTL", key.as_bytes()],
            7 => vec![b"APPEND", key.as_bytes(), b"!"],
            8 => vec![b"NOSUCHCOMMAND", key.as_bytes()],
            9 => vec![b"GET"],
            10 if i == 58 => vec![b"SELECT", b"3"],
            10 => vec![b"DEL", key.as_bytes(), counter.as_bytes()],
            _ => vec![b"STRLEN", key.as_bytes()],
        };
        input.extend(encode_command(&command));
        if i == 77 {
            input.extend_from_slice(b"GET k:1\r\n");
        }
    }
    input.extend_from_slice(b"*1\r\n$-5\r\n");
    let conversation = pair.converse(&input);
    assert!(
        conversation.closed,
        "the protocol error closes the connection"
    );
    assert!(conversation.output.contains("Protocol error"));
    // The same in database 3 where the pipeline went: the keys landed there.
    let (mut ours, mut theirs) = pair.clients();
    same(&mut ours, &mut theirs, &["SELECT", "3"]);
    let values = same(
        &mut ours,
        &mut theirs,
        &["MGET", "k:0", "k:1", "k:2", "c:0"],
    );
    assert_ne!(
        values, "*4\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n",
        "the pipeline wrote to database 3"
    );
}
