//! `COMMAND DOCS` against a real redis-server 7.0.15: every command and
//! subcommand both servers have documents itself byte for byte (RESP2 and
//! RESP3), and the real `redis-cli` builds its help and hints from Larder's
//! reply.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{encode_command, RedisServer, TestServer};

/// A raw client with its own reply reader: the shared `RawClient` decodes
/// with `redis-protocol`, which refuses RESP3 sets of arrays (`history`).
struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client {
            stream,
            pending: Vec::new(),
        }
    }

    fn command(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.stream
            .write_all(&encode_command(&args))
            .expect("write");
        loop {
            if let Some((_, end)) = parse_at(&self.pending, 0) {
                return self.pending.drain(..end).collect();
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed");
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A Larder and a real Redis, one connection to each.
struct Pair {
    larder: Client,
    redis: Client,
    _servers: (TestServer, RedisServer),
}

impl Pair {
    fn start() -> Self {
        let (larder, redis) = (TestServer::start(), RedisServer::start());
        Pair {
            larder: Client::connect(larder.addr),
            redis: Client::connect(redis.addr),
            _servers: (larder, redis),
        }
    }

    fn hello(&mut self, protocol: &str) {
        self.larder.command(&["HELLO", protocol]);
        self.redis.command(&["HELLO", protocol]);
    }

    fn check(&mut self, args: &[&str]) {
        let ours = self.larder.command(args);
        let theirs = self.redis.command(args);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "replies differ for {args:?}"
        );
    }
}

/// One decoded RESP value: its complete encoding, and for aggregates the
/// children (maps as flat key, value, key, value...).
struct Node {
    raw: Vec<u8>,
    children: Vec<Node>,
}

fn parse(buf: &[u8]) -> Node {
    let (node, end) = parse_at(buf, 0).expect("a complete reply");
    assert_eq!(end, buf.len(), "one complete reply");
    node
}

/// Decodes the reply at `start`; `None` while it is incomplete.
fn parse_at(buf: &[u8], start: usize) -> Option<(Node, usize)> {
    let line_end = start + buf.get(start..)?.windows(2).position(|w| w == b"\r\n")?;
    let header = std::str::from_utf8(&buf[start + 1..line_end]).expect("ascii header");
    let mut pos = line_end + 2;
    let mut children = Vec::new();
    match buf[start] {
        b'$' | b'=' | b'!' => {
            let len: i64 = header.parse().expect("length");
            if len >= 0 {
                pos += len as usize + 2;
                if pos > buf.len() {
                    return None;
                }
            }
        }
        kind @ (b'*' | b'~' | b'%' | b'>') => {
            let len: i64 = header.parse().expect("length");
            let count = if kind == b'%' { 2 * len } else { len };
            for _ in 0..count.max(0) {
                let (child, end) = parse_at(buf, pos)?;
                children.push(child);
                pos = end;
            }
        }
        _ => {}
    }
    Some((
        Node {
            raw: buf[start..pos].to_vec(),
            children,
        },
        pos,
    ))
}

/// The text of a bulk-string node.
fn text(node: &Node) -> String {
    let raw = String::from_utf8_lossy(&node.raw).into_owned();
    raw.split_once("\r\n")
        .map(|(_, rest)| rest.trim_end_matches("\r\n").to_owned())
        .unwrap_or_default()
}

fn names(client: &mut Client) -> Vec<String> {
    parse(&client.command(&["COMMAND", "LIST"]))
        .children
        .iter()
        .map(text)
        .collect()
}

/// Compares one command's doc map. Redis lists a container's subcommands in
/// the (randomly seeded) order of its hash table, and Larder has only some of
/// them, so `subcommands` is compared entry by entry: every subcommand Larder
/// lists must be one Redis lists, with the same bytes. Everything else must
/// be byte-identical.
fn compare_doc(name: &str, ours: &Node, theirs: &Node) {
    assert_eq!(
        ours.children.len(),
        theirs.children.len(),
        "{name}: the same fields"
    );
    for (pair_ours, pair_theirs) in ours.children.chunks(2).zip(theirs.children.chunks(2)) {
        let key = text(&pair_ours[0]);
        assert_eq!(pair_ours[0].raw, pair_theirs[0].raw, "{name}: field order");
        if key == "subcommands" {
            let redis_subs: HashMap<String, &Node> = pair_theirs[1]
                .children
                .chunks(2)
                .map(|p| (text(&p[0]), &p[1]))
                .collect();
            for sub in pair_ours[1].children.chunks(2) {
                let sub_name = text(&sub[0]);
                match redis_subs.get(&sub_name) {
                    Some(theirs) => compare_doc(&sub_name, &sub[1], theirs),
                    None => assert!(
                        ["client|setinfo", "client|no-touch"].contains(&sub_name.as_str()),
                        "{sub_name} is not a Redis 7.0 subcommand"
                    ),
                }
            }
        } else {
            assert_eq!(
                String::from_utf8_lossy(&pair_ours[1].raw),
                String::from_utf8_lossy(&pair_theirs[1].raw),
                "{name}: field {key} differs"
            );
        }
    }
}

fn every_command_matches(protocol: &str) {
    let mut pair = Pair::start();
    pair.hello(protocol);
    let redis_names: Vec<String> = names(&mut pair.redis);
    let ours = names(&mut pair.larder);
    let mut compared = 0;
    let mut containers = Vec::new();
    for name in ours.iter().filter(|n| redis_names.contains(n)) {
        let larder = pair.larder.command(&["COMMAND", "DOCS", name]);
        let redis = pair.redis.command(&["COMMAND", "DOCS", name]);
        compared += 1;
        if larder == redis {
            continue;
        }
        let (larder, redis) = (parse(&larder), parse(&redis));
        assert_eq!(larder.children.len(), 2, "{name}: one entry");
        assert_eq!(larder.children[0].raw, redis.children[0].raw);
        let fields = &larder.children[1].children;
        assert!(
            fields.chunks(2).any(|p| text(&p[0]) == "subcommands"),
            "COMMAND DOCS {name} differs from Redis (RESP{protocol}):\nours:   {}\nredis:  {}",
            String::from_utf8_lossy(&larder.raw),
            String::from_utf8_lossy(&redis.raw)
        );
        compare_doc(name, &larder.children[1], &redis.children[1]);
        containers.push(name.clone());
    }
    assert!(compared > 150, "compared only {compared} commands");
    eprintln!(
        "RESP{protocol}: {compared} commands; containers compared per subcommand: {containers:?}"
    );
}

#[test]
fn every_shared_command_documents_itself_like_redis_resp2() {
    every_command_matches("2");
}

#[test]
fn every_shared_command_documents_itself_like_redis_resp3() {
    every_command_matches("3");
}

#[test]
fn several_names_unknown_names_and_case() {
    let mut pair = Pair::start();
    for protocol in ["2", "3"] {
        pair.hello(protocol);
        pair.check(&[
            "COMMAND",
            "DOCS",
            "get",
            "SET",
            "nosuch",
            "Client|Kill",
            "zadd",
        ]);
        pair.check(&["COMMAND", "DOCS", "nosuch"]);
        pair.check(&["COMMAND", "DOCS", "nosuch|thing", "client|nosuch"]);
        pair.check(&["COMMAND", "DOCS", "get", "get"]);
        pair.check(&["COMMAND", "DOCS", "client|kill", "object|encoding"]);
    }
}

#[test]
fn larder_only_commands_are_documented() {
    let server = TestServer::start();
    let mut raw = Client::connect(server.addr);
    for name in [
        "hexpire",
        "httl",
        "hpersist",
        "client|setinfo",
        "client|no-touch",
    ] {
        let reply = parse(&raw.command(&["COMMAND", "DOCS", name]));
        assert_eq!(reply.children.len(), 2, "{name} is documented");
        let keys: Vec<String> = reply.children[1]
            .children
            .iter()
            .step_by(2)
            .map(text)
            .collect();
        assert_eq!(
            keys,
            ["summary", "since", "group", "complexity", "arguments"],
            "{name}"
        );
    }
}

/// The real redis-cli asks for `COMMAND DOCS` when it starts its prompt and
/// builds each command's help line (the same text it shows as the hint while
/// typing) from the `arguments`; `help <command>` prints it.
#[test]
fn redis_cli_builds_hints_from_larder_docs() {
    let server = TestServer::start();
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli must be installed");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"help set\nhelp client kill\nhelp hexpire\nhelp getex\n")
        .expect("write");
    let output = child.wait_with_output().expect("redis-cli output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for hint in [
        "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]",
        "ip:port|[ID client-id]|[TYPE NORMAL|MASTER|SLAVE|REPLICA|PUBSUB]",
        "key seconds [NX|XX|GT|LT] FIELDS numfields field [field ...]",
        "key [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|PERSIST]",
    ] {
        assert!(stdout.contains(hint), "no hint {hint:?} in {stdout}");
    }
}

/// The subcommand entries of a COMMAND INFO entry (its tenth field), by
/// name.
fn subcommand_entries(entry: &Node) -> HashMap<String, &Node> {
    entry.children[9]
        .children
        .iter()
        .map(|sub| (text(&sub.children[0]), sub))
        .collect()
}

/// Commands whose COMMAND INFO differs from Redis 7.0.15 on purpose:
/// ZRANK and ZREVRANK take 7.2's WITHSCORE, so their arity is -3 (7.2's).
const NEWER_ARITY: &[&str] = &["zrank", "zrevrank"];

/// COMMAND INFO of every command and subcommand both servers have, byte
/// for byte: name, arity, flags, legacy key positions, ACL categories,
/// tips and key specs. Containers list their subcommands in Redis's hash
/// table order and Larder has only some, so that field is compared entry
/// by entry.
fn every_command_info_matches(protocol: &str) {
    let mut pair = Pair::start();
    pair.hello(protocol);
    let redis_names: Vec<String> = names(&mut pair.redis);
    let ours = names(&mut pair.larder);
    let mut compared = 0;
    for name in ours.iter().filter(|n| redis_names.contains(n)) {
        let larder = pair.larder.command(&["COMMAND", "INFO", name]);
        let redis = pair.redis.command(&["COMMAND", "INFO", name]);
        compared += 1;
        if larder == redis {
            continue;
        }
        let (larder, redis) = (parse(&larder), parse(&redis));
        let (ours, theirs) = (&larder.children[0], &redis.children[0]);
        assert_eq!(ours.children.len(), 10, "{name}: ten fields");
        for field in 0..9 {
            if field == 1 && NEWER_ARITY.contains(&name.as_str()) {
                assert_eq!(ours.children[1].raw, b":-3\r\n", "{name}");
                continue;
            }
            assert_eq!(
                String::from_utf8_lossy(&ours.children[field].raw),
                String::from_utf8_lossy(&theirs.children[field].raw),
                "COMMAND INFO {name} (RESP{protocol}): field {field} differs"
            );
        }
        let redis_subs = subcommand_entries(theirs);
        let our_subs = subcommand_entries(ours);
        assert!(
            !our_subs.is_empty() || NEWER_ARITY.contains(&name.as_str()),
            "{name}: differs outside subcommands"
        );
        for (sub, entry) in our_subs {
            match redis_subs.get(&sub) {
                Some(theirs) => assert_eq!(
                    String::from_utf8_lossy(&entry.raw),
                    String::from_utf8_lossy(&theirs.raw),
                    "COMMAND INFO {name}: subcommand {sub} differs"
                ),
                None => assert!(
                    ["client|setinfo", "client|no-touch"].contains(&sub.as_str()),
                    "{sub} is not a Redis 7.0 subcommand"
                ),
            }
        }
    }
    assert!(compared > 240, "compared only {compared} commands");
}

#[test]
fn every_shared_command_reports_info_like_redis_resp2() {
    every_command_info_matches("2");
}

#[test]
fn every_shared_command_reports_info_like_redis_resp3() {
    every_command_info_matches("3");
}

/// Several names at once, unknown ones, subcommands by full name.
#[test]
fn command_info_of_several_names() {
    let mut pair = Pair::start();
    for protocol in ["2", "3"] {
        pair.hello(protocol);
        pair.check(&[
            "COMMAND",
            "INFO",
            "get",
            "SET",
            "nosuch",
            "client|kill",
            "zunionstore",
        ]);
        pair.check(&[
            "COMMAND",
            "INFO",
            "role",
            "lastsave",
            "lolwut",
            "debug",
            "module|list",
        ]);
        pair.check(&[
            "COMMAND",
            "INFO",
            "command|getkeysandflags",
            "memory|doctor",
        ]);
        pair.check(&["COMMAND", "INFO", "nosuch|thing", "client|nosuch"]);
    }
}

/// Every command and subcommand Larder lists has COMMAND INFO and COMMAND
/// DOCS with a summary, Redis's or (for those Redis 7.0 lacks) its own.
#[test]
fn every_listed_command_has_info_and_docs() {
    let server = TestServer::start();
    let mut client = Client::connect(server.addr);
    let all = names(&mut client);
    assert!(all.len() > 250, "{}", all.len());
    for name in &all {
        let info = parse(&client.command(&["COMMAND", "INFO", name]));
        assert_eq!(info.children.len(), 1, "{name}");
        assert_eq!(info.children[0].children.len(), 10, "COMMAND INFO {name}");
        assert_eq!(&text(&info.children[0].children[0]), name);
        let docs = parse(&client.command(&["COMMAND", "DOCS", name]));
        assert_eq!(docs.children.len(), 2, "COMMAND DOCS {name}");
        let fields: Vec<String> = docs.children[1]
            .children
            .iter()
            .step_by(2)
            .map(text)
            .collect();
        assert!(
            fields.iter().any(|f| f == "summary") && fields.iter().any(|f| f == "group"),
            "COMMAND DOCS {name}: {fields:?}"
        );
    }
    // COUNT counts the top-level commands.
    let count = String::from_utf8_lossy(&client.command(&["COMMAND", "COUNT"])).into_owned();
    let top_level = all.iter().filter(|n| !n.contains('|')).count();
    assert_eq!(count, format!(":{top_level}\r\n"));
}
