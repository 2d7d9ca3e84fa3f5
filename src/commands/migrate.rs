//! MIGRATE: moves keys to another Redis-protocol server (Redis or Larder):
//! a DUMP of each key here, `RESTORE` of it there, then its deletion here
//! (unless COPY), as Redis's `migrateCommand`, with its replies and errors.
//!
//! The exchange runs without holding shard locks (inside EXEC and scripts,
//! with the transaction's locks held, as Redis blocks meanwhile), off the
//! runtime's worker. A key is deleted only if it is still what was sent:
//! a client's write that came in meanwhile is kept, not lost. Unlike
//! Redis, connections to targets are not cached between calls: each MIGRATE
//! connects, authenticates and selects the database anew.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::dump::{compression, dump_payload};
use super::flags::*;
use super::parse::{int_arg, is_keyword};
use super::{reads, CommandSpec, Ctx, KeySpec};
use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;
use crate::pubsub::events;

const KEYSPACE_WRITE_DANGEROUS: &[&str] = &["keyspace", "dangerous"];

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "migrate",
    -6,
    WRITE,
    KeySpec::Migrate,
    migrate,
)
.acl(KEYSPACE_WRITE_DANGEROUS)
.tips(&["nondeterministic_output"])
.key_spec_flags(&["RW", "access", "delete"])
.doc(
    "generic",
    "2.6.0",
    "Atomically transfer a key from one Redis instance to another.",
    "This command actually executes a DUMP+DEL in the source instance, and a RESTORE in the target instance. See the pages of these commands for time complexity. Also an O(N) data transfer between the two instances is performed.",
)];

/// The key positions of a MIGRATE command line, as Redis's
/// `migrateGetKeys`: argument 3, or everything after the KEYS option
/// (skipping the arguments of AUTH and AUTH2 while looking for it).
pub(super) fn key_positions(argv: &[&[u8]]) -> std::ops::Range<usize> {
    let mut i = 6;
    while i < argv.len() {
        let arg = argv[i];
        if is_keyword(arg, "KEYS") {
            if !argv[3].is_empty() {
                return 0..0;
            }
            return i + 1..argv.len();
        }
        if is_keyword(arg, "AUTH") {
            i += 1;
        } else if is_keyword(arg, "AUTH2") {
            i += 2;
        }
        i += 1;
    }
    3..argv.len().min(4)
}

/// MIGRATE's options after the timeout.
#[derive(Default)]
struct Options<'a> {
    copy: bool,
    replace: bool,
    username: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
    /// With KEYS: where the keys start (else the key is argument 3).
    keys_from: Option<usize>,
}

fn parse_options<'a>(argv: &[&'a [u8]]) -> Result<Options<'a>> {
    let mut options = Options::default();
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let arg = argv[j];
        if is_keyword(arg, "COPY") {
            options.copy = true;
        } else if is_keyword(arg, "REPLACE") {
            options.replace = true;
        } else if is_keyword(arg, "AUTH") {
            if more < 1 {
                return Err(Error::syntax());
            }
            j += 1;
            options.password = Some(argv[j]);
        } else if is_keyword(arg, "AUTH2") {
            if more < 2 {
                return Err(Error::syntax());
            }
            options.username = Some(argv[j + 1]);
            options.password = Some(argv[j + 2]);
            j += 2;
        } else if is_keyword(arg, "KEYS") {
            if !argv[3].is_empty() {
                return Err(Error::err(
                    "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            options.keys_from = Some(j + 1);
            break;
        } else {
            return Err(Error::syntax());
        }
        j += 1;
    }
    Ok(options)
}

/// One key as sent: its name, expiry, TTL in ms (0: none) and DUMP
/// payload.
struct Outgoing<'a> {
    key: &'a [u8],
    expires_at: Option<u64>,
    ttl_ms: u64,
    payload: Vec<u8>,
}

/// How the exchange with the target ended.
enum Exchange {
    /// The replies were read (after an error from the target, as many as
    /// came): for each key, whether the target restored it; and the first
    /// error the target replied, if any.
    Replied {
        restored: Vec<bool>,
        error: Option<String>,
    },
    /// The connection could not be made, or failed: Redis's IOERR text,
    /// and the keys acknowledged before that.
    Failed {
        message: &'static str,
        restored: Vec<bool>,
    },
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE]
/// [AUTH password | AUTH2 username password] [KEYS key [key ...]]
fn migrate(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let options = parse_options(argv)?;
    let timeout = int_arg(argv[5])?;
    let target_db = int_arg(argv[4])?;
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    let keys: Vec<&[u8]> = match options.keys_from {
        Some(first) => argv[first..].to_vec(),
        None => vec![argv[3]],
    };
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let compress = compression(ctx);
    let shared = ctx.shared;
    // What is sent: each live key as it is now.
    let mut outgoing = Vec::new();
    {
        let mut locked = ctx.locks.keys(&keys)?;
        for &key in &keys {
            let db = locked.db(dbi, key)?;
            match db.get(key, now) {
                Some(entry) => {
                    reads::hit(shared);
                    let expires_at = entry.expires_at();
                    outgoing.push(Outgoing {
                        key,
                        expires_at,
                        ttl_ms: expires_at.map_or(0, |at| at.saturating_sub(now).max(1)),
                        payload: dump_payload(entry.value(), compress),
                    });
                }
                None => reads::miss(shared, dbi, key),
            }
        }
    }
    if outgoing.is_empty() {
        ctx.out.simple("NOKEY");
        return Ok(());
    }
    let exchange = super::off_the_worker(|| {
        exchange(argv[1], argv[2], timeout, &options, target_db, &outgoing)
    });
    let (restored, reply) = match exchange {
        Exchange::Replied { restored, error } => (restored, error.map(Error::err)),
        Exchange::Failed { message, restored } => (restored, Some(Error::raw(message))),
    };
    if !options.copy {
        delete_sent(ctx, &outgoing, &restored, compress)?;
    }
    match reply {
        Some(error) => Err(error),
        None => {
            ctx.out.ok();
            Ok(())
        }
    }
}

/// Deletes the keys the target restored, each only if it is still what
/// was sent (same value and TTL): a write that came in meanwhile stays.
fn delete_sent(
    ctx: &mut Ctx,
    outgoing: &[Outgoing<'_>],
    restored: &[bool],
    compress: bool,
) -> Result<()> {
    let keys: Vec<&[u8]> = outgoing
        .iter()
        .zip(restored)
        .filter(|(_, &ok)| ok)
        .map(|(sent, _)| sent.key)
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let pubsub = &*ctx.shared.pubsub;
    let mut locked = ctx.locks.keys(&keys)?;
    for (sent, _) in outgoing.iter().zip(restored).filter(|(_, &ok)| ok) {
        let db = locked.db(dbi, sent.key)?;
        let unchanged = db.peek(sent.key, now).is_some_and(|entry| {
            entry.expires_at() == sent.expires_at
                && dump_payload(entry.value(), compress) == sent.payload
        });
        if unchanged && db.remove(sent.key, now).is_some() {
            pubsub.notify(events::GENERIC, "del", sent.key, dbi);
        }
    }
    Ok(())
}

const CONNECT_ERROR: &str = "IOERR error or timeout connecting to the client";
const WRITE_ERROR: &str = "IOERR error or timeout writing to target instance";
const READ_ERROR: &str = "IOERR error or timeout reading to target instance";

/// Connects to the target, sends AUTH (if asked), SELECT and one RESTORE
/// per key in one write, and reads the replies, each within `timeout`.
fn exchange(
    host: &[u8],
    port: &[u8],
    timeout: Duration,
    options: &Options<'_>,
    target_db: i64,
    outgoing: &[Outgoing<'_>],
) -> Exchange {
    let failed = |message, restored| Exchange::Failed { message, restored };
    let stream = match connect(host, port, timeout) {
        Ok(stream) => stream,
        Err(message) => return failed(message, Vec::new()),
    };
    // A request is an array of bulk strings, as a RESP2 reply is.
    let mut request = ReplyBuf::new();
    let mut command = |args: &[&[u8]]| {
        request.array(args.len());
        args.iter().for_each(|arg| request.bulk(arg));
    };
    if let Some(password) = options.password {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        args.extend(options.username);
        args.push(password);
        command(&args);
    }
    command(&[b"SELECT", target_db.to_string().as_bytes()]);
    for sent in outgoing {
        let ttl = sent.ttl_ms.to_string();
        let mut args: Vec<&[u8]> = vec![b"RESTORE", sent.key, ttl.as_bytes(), &sent.payload];
        if options.replace {
            args.push(b"REPLACE");
        }
        command(&args);
    }
    let mut writer = &stream;
    if writer.write_all(request.buffer()).is_err() {
        return failed(WRITE_ERROR, Vec::new());
    }
    let mut reader = BufReader::new(&stream);
    let mut line = || -> Option<String> {
        let mut text = String::new();
        match reader.read_line(&mut text) {
            Ok(n) if n > 0 && text.ends_with('\n') => {
                Some(text.trim_end_matches(['\r', '\n']).to_string())
            }
            _ => None,
        }
    };
    // Redis reports the first error in its order: AUTH's, SELECT's, then
    // the first RESTORE's.
    let mut error = None;
    let note = |reply: &str, error: &mut Option<String>| match reply.strip_prefix('-') {
        Some(text) => {
            error.get_or_insert_with(|| format!("Target instance replied with error: {text}"));
            false
        }
        None => true,
    };
    // As Redis: an AUTH or SELECT error counts every key as not moved,
    // whatever the RESTOREs answered.
    let authenticated = match options.password {
        None => true,
        Some(_) => match line() {
            Some(reply) => note(&reply, &mut error),
            None => return failed(READ_ERROR, Vec::new()),
        },
    };
    let selected = match line() {
        Some(reply) => note(&reply, &mut error),
        None => return failed(READ_ERROR, Vec::new()),
    };
    let mut restored = Vec::with_capacity(outgoing.len());
    for _ in outgoing {
        match line() {
            Some(reply) => restored.push(note(&reply, &mut error) && authenticated && selected),
            // The target's error, if it sent one, is the reply.
            None if error.is_some() => break,
            None => return failed(READ_ERROR, restored),
        }
    }
    Exchange::Replied { restored, error }
}

/// The connection to the target, or the IOERR text Redis gives: an
/// address that does not resolve or a connect that times out is a
/// connection error; a refused one shows, in Redis, only when it first
/// writes (its connect is non-blocking), so it is a write error here too.
fn connect(
    host: &[u8],
    port: &[u8],
    timeout: Duration,
) -> std::result::Result<TcpStream, &'static str> {
    let address = std::str::from_utf8(host)
        .ok()
        .zip(
            std::str::from_utf8(port)
                .ok()
                .and_then(|p| p.parse::<u16>().ok()),
        )
        .and_then(|(host, port)| (host, port).to_socket_addrs().ok()?.next())
        .ok_or(CONNECT_ERROR)?;
    let stream = TcpStream::connect_timeout(&address, timeout).map_err(|error| {
        if error.kind() == std::io::ErrorKind::TimedOut {
            CONNECT_ERROR
        } else {
            WRITE_ERROR
        }
    })?;
    let configured = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)));
    configured.map_err(|_| WRITE_ERROR)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
