//! Larder-only commands for write-behind to PostgreSQL: WRITEBEHIND FLUSH
//! (wait until every change made so far is in PostgreSQL) and WRITEBEHIND
//! STATUS (the counters of INFO's `writebehind` section, as a map).

use std::time::Duration;

use super::connection::container;
use super::flags::*;
use super::parse::strict_i64;
use super::{resolve, CommandSpec, Ctx, Session, NO_KEYS};
use crate::error::{Error, Result};
use crate::shared::FlushWait;
use crate::store::ChangeObserver;
use crate::writebehind::WriteBehind;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("writebehind", -2, 0, NO_KEYS, container)
    .doc(
        "server",
        "0.1.0",
        "A container for write-behind commands (Larder).",
        "Depends on subcommand.",
    )
    .subcommands(SUBCOMMANDS)];

static SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("writebehind|flush", -2, ADMIN | NOSCRIPT | NO_MULTI, NO_KEYS, flush)
        .doc(
            "server",
            "0.1.0",
            "Waits until every change acknowledged so far is in PostgreSQL (optionally at most timeout milliseconds).",
            "O(N) where N is the number of pending keys",
        ),
    CommandSpec::new("writebehind|status", 2, ADMIN | LOADING | STALE, NO_KEYS, status)
        .doc("server", "0.1.0", "Returns the state and counters of write-behind.", "O(1)"),
];

/// The written-behind keys `argv` names (for EXEC: that the queued
/// commands name), without duplicates: what read-through loads before the
/// command runs. Nothing inside MULTI (the keys load at EXEC).
pub fn read_through_keys(
    writebehind: &WriteBehind,
    session: &Session,
    argv: &[&[u8]],
) -> Vec<Vec<u8>> {
    let db = session.db;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut add_keys = |spec: &CommandSpec, argv: &[&[u8]]| {
        for position in spec.key_positions(argv) {
            let key = argv[position];
            if writebehind.observes(db, key) && !keys.iter().any(|k| k == key) {
                keys.push(key.to_vec());
            }
        }
    };
    match resolve(argv) {
        Ok(spec) if spec.name == "exec" => {
            if let Some(multi) = &session.multi {
                for command in &multi.queued {
                    let argv: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
                    if let Ok(spec) = resolve(&argv) {
                        add_keys(spec, &argv);
                    }
                }
            }
        }
        Ok(_) if session.multi.is_some() => {}
        Ok(spec) => add_keys(spec, argv),
        Err(_) => {}
    }
    keys
}

/// Whether the command writes a written-behind key (for EXEC: whether one
/// of the queued commands does), so that a full backlog refuses it.
pub(super) fn writes_followed_key(
    writebehind: &WriteBehind,
    session: &Session,
    spec: &CommandSpec,
    argv: &[&[u8]],
) -> bool {
    let db = session.db;
    let writes = |spec: &CommandSpec, argv: &[&[u8]]| {
        spec.has(WRITE)
            && spec
                .key_positions(argv)
                .iter()
                .any(|&i| writebehind.observes(db, argv[i]))
    };
    if spec.name == "exec" {
        session.multi.as_ref().is_some_and(|multi| {
            multi.queued.iter().any(|command| {
                let argv: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
                !argv.is_empty() && resolve(&argv).is_ok_and(|spec| writes(spec, &argv))
            })
        })
    } else {
        writes(spec, argv)
    }
}

fn enabled<'a>(ctx: &Ctx<'_, 'a>) -> Result<&'a WriteBehind> {
    ctx.shared
        .writebehind
        .as_deref()
        .ok_or_else(|| Error::err("write-behind is off (set write-behind-url to turn it on)"))
}

/// `WRITEBEHIND FLUSH [timeout-ms]`: without an argument, waits at most
/// `write-behind-flush-timeout`; 0 waits as long as it takes. The command
/// only records what to wait for: the connection waits (see
/// [`crate::shared::FlushWait`]), holding no thread, cancellable by
/// CLIENT KILL, CLIENT UNBLOCK and shutdown.
fn flush(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "writebehind", Some("flush"), flush_unaudited)
}

fn flush_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let timeout_ms = match argv.get(2) {
        None => ctx.shared.config.read().write_behind_flush_timeout,
        Some(arg) => match strict_i64(arg) {
            Some(ms) if ms >= 0 => ms as u64,
            _ => return Err(Error::err("timeout is not an integer or out of range")),
        },
    };
    if argv.len() > 3 {
        return Err(Error::syntax());
    }
    let writebehind = enabled(ctx)?;
    if ctx.locks.in_transaction() {
        return Err(Error::err(
            "WRITEBEHIND FLUSH is not allowed inside a transaction",
        ));
    }
    let target = writebehind.flush_target();
    if writebehind.is_flushed(target) {
        ctx.out.ok();
        return Ok(());
    }
    // Only a network connection can wait; an in-process caller learns at
    // once that the flush is not complete (as a blocking command inside
    // MULTI gets its timeout reply at once).
    if !ctx.session.blocking_allowed {
        return Err(Error::raw(writebehind.flush_incomplete_message()));
    }
    ctx.session.flush_wait = Some(FlushWait {
        target,
        timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms)),
    });
    Ok(())
}

fn status(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let fields = enabled(ctx)?.status();
    ctx.out.map(fields.len());
    for (name, value) in fields {
        ctx.out.bulk(name.as_bytes());
        match value.parse::<i64>() {
            Ok(n) if !name.ends_with("error") && name != "state" => ctx.out.int(n),
            _ => ctx.out.bulk(value.as_bytes()),
        }
    }
    Ok(())
}
