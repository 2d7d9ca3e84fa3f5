//! Command execution in-process: arbitrary argv lists, biased towards real
//! command names, subcommands and typical arguments, run by two clients of
//! one server against a manual clock. Every command's output must be exactly
//! one well-formed reply (checked with the `redis-protocol` decoders, RESP2
//! or RESP3 as the client's protocol is after the command) and no reply may
//! report an internal error.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Result, Unstructured};
use larder::commands::{self, all_commands, flags, Session};
use larder::protocol::ReplyBuf;
use larder::shared::Shared;
use larder::{Clock, Config};
use libfuzzer_sys::fuzz_target;
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::OwnedFrame as Frame3;

/// Commands that would stop the process, block, or touch the filesystem or
/// other servers. Matched against the lowercase command (or `cmd|sub`) name.
const EXCLUDED: &[&str] = &[
    "shutdown",
    "debug",
    "monitor",
    "sync",
    "psync",
    "replicaof",
    "slaveof",
    "failover",
    "save",
    "bgsave",
    "bgrewriteaof",
    "config|rewrite",
    "client|pause",
    "wait",
    "waitaof",
    // Ten million adds: seconds per run.
    "pfselftest",
];

/// Commands that legitimately write other than one reply.
const MULTI_REPLY: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
    "client|reply",
];

/// Arguments that steer handlers into their interesting branches.
const TOKENS: &[&str] = &[
    "k",
    "k2",
    "k3",
    "{k}1",
    "",
    "0",
    "1",
    "2",
    "3",
    "-1",
    "10",
    "100",
    "1000",
    "0.5",
    "-0",
    "+inf",
    "-inf",
    "nan",
    "1e3",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "2147483648",
    "4294967296",
    "EX",
    "PX",
    "EXAT",
    "PXAT",
    "NX",
    "XX",
    "GT",
    "LT",
    "GET",
    "KEEPTTL",
    "PERSIST",
    "CH",
    "INCR",
    "WITHSCORES",
    // PFDEBUG subcommands, and an HLL header (sparse, no registers yet:
    // APPEND and SETRANGE give it a body).
    "GETREG",
    "DECODE",
    "ENCODING",
    "TODENSE",
    "HYLL\x01\0\0\0\0\0\0\0\0\0\0\0",
    "LIMIT",
    "COUNT",
    "MATCH",
    "TYPE",
    "BY",
    "ASC",
    "DESC",
    "ALPHA",
    "STORE",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "REPLACE",
    "DB",
    "ABSTTL",
    "IDLETIME",
    "FREQ",
    "AUTH",
    "SETNAME",
    "default",
    "RESET",
    "ON",
    "OFF",
    "SKIP",
    "YES",
    "NO",
    "ID",
    "USER",
    "ADDR",
    "LADDR",
    "MAXAGE",
    "SKIPME",
    "LIB-NAME",
    "LIB-VER",
    "FILTERBY",
    "MODULE",
    "ACLCAT",
    "PATTERN",
    "*",
    "?",
    "[a-z]",
    "\\",
    "*k*",
    "maxmemory",
    "requirepass",
    "timeout",
    "hz",
    "databases",
    "proto-max-bulk-len",
    "save",
    "appendonly",
    "SYNC",
    "ASYNC",
    "HELP",
    "string",
    "list",
    "hash",
    "set",
    "zset",
    "stream",
    "EMPTY",
];

struct Names {
    /// (command, its subcommand names)
    commands: Vec<(&'static str, Vec<&'static str>)>,
    config: Config,
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let commands = all_commands()
            .filter(|spec| !EXCLUDED.contains(&spec.name) && !spec.has(flags::BLOCKING))
            .map(|spec| {
                let subs = spec
                    .subcommands
                    .iter()
                    .filter(|sub| !EXCLUDED.contains(&sub.name) && !sub.has(flags::BLOCKING))
                    .map(|sub| sub.subcommand_name())
                    .collect();
                (spec.name, subs)
            })
            .collect();
        Names {
            commands,
            config: Config::default(),
        }
    })
}

fn is_excluded(argv: &[Vec<u8>]) -> bool {
    let Some(name) = argv.first() else {
        return false;
    };
    let Some(spec) = commands::lookup(name) else {
        return false;
    };
    if EXCLUDED.contains(&spec.name) || spec.has(flags::BLOCKING) {
        return true;
    }
    if let Some(sub) = argv.get(1) {
        if let Some(sub) = spec
            .subcommands
            .iter()
            .find(|s| s.subcommand_name().as_bytes().eq_ignore_ascii_case(sub))
        {
            return EXCLUDED.contains(&sub.name) || sub.has(flags::BLOCKING);
        }
    }
    false
}

fn is_multi_reply(argv: &[Vec<u8>]) -> bool {
    let Some(spec) = argv.first().and_then(|n| commands::lookup(n)) else {
        return false;
    };
    if MULTI_REPLY.contains(&spec.name) {
        return true;
    }
    match argv.get(1) {
        Some(sub) => MULTI_REPLY.iter().any(|m| {
            m.split_once('|')
                .is_some_and(|(c, s)| c == spec.name && s.as_bytes().eq_ignore_ascii_case(sub))
        }),
        None => false,
    }
}

fn mixed_case(name: &str, u: &mut Unstructured) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => name.to_ascii_uppercase().into_bytes(),
        1 => name
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                if i % 2 == 0 {
                    b.to_ascii_uppercase()
                } else {
                    b
                }
            })
            .collect(),
        _ => name.as_bytes().to_vec(),
    })
}

fn argument(u: &mut Unstructured) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=5 => {
            let token = u.choose(TOKENS)?;
            mixed_case(token, u)?
        }
        6 => u.int_in_range(-1000i64..=1000)?.to_string().into_bytes(),
        7 => i64::arbitrary(u)?.to_string().into_bytes(),
        _ => {
            let len = u.int_in_range(0..=40usize)?;
            u.bytes(len)?.to_vec()
        }
    })
}

#[derive(Debug)]
enum Op {
    Command {
        client: usize,
        argv: Vec<Vec<u8>>,
    },
    /// Moves the manual clock forward by this many milliseconds.
    Advance(u64),
    /// One active-expiry pass.
    ExpireCycle,
}

fn op(u: &mut Unstructured) -> Result<Op> {
    let kind = u.int_in_range(0..=19u8)?;
    if kind == 0 {
        let ms = match u.int_in_range(0..=3u8)? {
            0 => u.int_in_range(0..=10u64)?,
            1 => u.int_in_range(0..=2_000u64)?,
            2 => u.int_in_range(0..=200_000u64)?,
            _ => u.int_in_range(0..=u64::from(u32::MAX))?,
        };
        return Ok(Op::Advance(ms));
    }
    if kind == 1 {
        return Ok(Op::ExpireCycle);
    }
    let client = usize::from(kind % 5 == 0);
    let names = names();
    let mut argv = Vec::new();
    if kind < 18 && !names.commands.is_empty() {
        let (name, subs) = u.choose(&names.commands)?;
        argv.push(mixed_case(name, u)?);
        if !subs.is_empty() && u.int_in_range(0..=7u8)? > 0 {
            let sub = u.choose(subs)?;
            argv.push(mixed_case(sub, u)?);
        }
    } else {
        argv.push(argument(u)?);
    }
    let extra = u.int_in_range(0..=6usize)?;
    for _ in 0..extra {
        argv.push(argument(u)?);
    }
    Ok(Op::Command { client, argv })
}

struct Input {
    shards: usize,
    ops: Vec<Op>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "shards: {}", self.shards)?;
        for op in &self.ops {
            match op {
                Op::Command { client, argv } => {
                    let words: Vec<String> = argv
                        .iter()
                        .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
                        .collect();
                    writeln!(f, "  client {client}: {}", words.join(" "))?;
                }
                other => writeln!(f, "  {other:?}")?,
            }
        }
        Ok(())
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let shards = *u.choose(&[1usize, 2, 16])?;
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < 64 {
            ops.push(op(u)?);
        }
        Ok(Input { shards, ops })
    }
}

/// The dispatcher's own failures ("ERR internal error: ...", e.g. a handler
/// locking a key its spec does not name) must never reach a client. Only the
/// start of the message is checked: errors may quote client input.
fn check_error_text(text: &str, argv: &[Vec<u8>]) {
    assert!(
        !text.starts_with("ERR internal error"),
        "{text:?} in reply to {argv:?}"
    );
}

fn check_errors2(frame: &Frame2, argv: &[Vec<u8>]) {
    match frame {
        Frame2::Error(text) => check_error_text(text, argv),
        Frame2::Array(items) => items.iter().for_each(|f| check_errors2(f, argv)),
        _ => {}
    }
}

fn check_errors3(frame: &Frame3, argv: &[Vec<u8>]) {
    match frame {
        Frame3::SimpleError { data, .. } => check_error_text(data, argv),
        Frame3::BlobError { data, .. } => check_error_text(&String::from_utf8_lossy(data), argv),
        Frame3::Array { data, .. } | Frame3::Push { data, .. } => {
            data.iter().for_each(|f| check_errors3(f, argv))
        }
        Frame3::Set { data, .. } => data.iter().for_each(|f| check_errors3(f, argv)),
        Frame3::Map { data, .. } => data.iter().for_each(|(k, v)| {
            check_errors3(k, argv);
            check_errors3(v, argv);
        }),
        _ => {}
    }
}

/// Checks that `bytes` is exactly one complete reply (or, for the few
/// commands that may write several or none, a sequence of complete replies).
fn check_replies(bytes: &[u8], resp3: bool, exactly_one: bool, argv: &[Vec<u8>]) {
    let mut offset = 0;
    let mut count = 0;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        // A top-level error line may quote the client's bytes as Redis
        // does (`unknown command '\xff'`), which redis-protocol refuses as
        // not UTF-8: check it as a line of its own.
        if rest.first() == Some(&b'-') {
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or_else(|| panic!("unterminated error line to {argv:?}"));
            let line = &rest[1..end];
            assert!(
                !line.contains(&b'\r') && !line.contains(&b'\n'),
                "an error line with CR or LF inside, to {argv:?}"
            );
            check_error_text(&String::from_utf8_lossy(line), argv);
            offset += end + 2;
            count += 1;
            continue;
        }
        let decoded = if resp3 {
            redis_protocol::resp3::decode::complete::decode(rest).map(|f| {
                f.map(|(frame, n)| {
                    check_errors3(&frame, argv);
                    n
                })
            })
        } else {
            redis_protocol::resp2::decode::decode(rest).map(|f| {
                f.map(|(frame, n)| {
                    check_errors2(&frame, argv);
                    n
                })
            })
        };
        match decoded {
            Ok(Some(n)) => {
                offset += n;
                count += 1;
            }
            Ok(None) => panic!(
                "incomplete reply (resp3: {resp3}) to {argv:?}: {:?}",
                String::from_utf8_lossy(rest)
            ),
            // redis-protocol cannot hold an aggregate inside a RESP3 set
            // (it hashes set members), which Redis itself sends (COMMAND
            // DOCS `history`): the rest of these bytes go unchecked.
            Err(error) if resp3 && format!("{error:?}").contains("Invalid hash key") => return,
            Err(error) => panic!(
                "malformed reply (resp3: {resp3}) to {argv:?}: {error:?} in {:?}",
                String::from_utf8_lossy(rest)
            ),
        }
    }
    if exactly_one {
        assert_eq!(
            count,
            1,
            "reply count for {argv:?}: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

fn start_session(shared: &Shared) -> Session {
    let mut session = Session::new(shared.clients.register(None, None));
    // As a connection does: authenticated unless a password is required.
    session.authenticated = shared.config.read().requirepass.is_none();
    session
}

fuzz_target!(|input: Input| {
    let mut config = names().config.clone();
    config.shards = input.shards;
    let (clock, now) = Clock::manual(1_700_000_000_000);
    let shared = Shared::with_clock(config, clock);
    let mut sessions = [start_session(&shared), start_session(&shared)];
    let mut outputs = [ReplyBuf::new(), ReplyBuf::new()];
    let mut closed = [false, false];
    for op in &input.ops {
        match op {
            Op::Advance(ms) => advance(&now, *ms),
            Op::ExpireCycle => {
                shared.store.expire_cycle();
            }
            Op::Command { client, argv } => {
                let client = *client;
                if closed[client] || is_excluded(argv) {
                    continue;
                }
                let out = &mut outputs[client];
                let session = &mut sessions[client];
                let start = out.len();
                let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
                commands::execute(&shared, session, out, &args);
                let resp3 = out.is_resp3();
                let written = out.buffer()[start..].to_vec();
                check_replies(&written, resp3, !is_multi_reply(argv), argv);
                if session.close_after_reply || session.handle.is_killed() {
                    closed[client] = true;
                }
                // Keep the buffer small: everything in it was checked.
                out.buffer().clear();
            }
        }
    }
    for session in &mut sessions {
        commands::end_session(&shared, session);
        shared.clients.unregister(session.handle.id);
    }
});

fn advance(now: &Arc<AtomicU64>, ms: u64) {
    now.fetch_add(ms, Ordering::Relaxed);
}
