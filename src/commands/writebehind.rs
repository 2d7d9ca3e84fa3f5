//! Larder-only commands for write-behind to PostgreSQL: WRITEBEHIND FLUSH
//! (wait until every change made so far is in PostgreSQL) and WRITEBEHIND
//! STATUS (the counters of INFO's `writebehind` section, as a map).

use std::time::Duration;

use super::connection::container;
use super::flags::*;
use super::parse::strict_i64;
use super::{CommandSpec, Ctx, NO_KEYS};
use crate::error::{Error, Result};
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

fn enabled<'a>(ctx: &Ctx<'_, 'a>) -> Result<&'a WriteBehind> {
    ctx.shared
        .writebehind
        .as_deref()
        .ok_or_else(|| Error::err("write-behind is off (set write-behind-url to turn it on)"))
}

/// `WRITEBEHIND FLUSH [timeout-ms]`: 0 or nothing waits as long as it
/// takes.
fn flush(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let timeout = match argv.get(2) {
        None => None,
        Some(arg) => match strict_i64(arg) {
            Some(0) => None,
            Some(ms) if ms > 0 => Some(Duration::from_millis(ms as u64)),
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
    // The wait blocks this thread: tell the runtime so that its other tasks
    // (the flusher among them) move to other workers.
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let done = if multi_threaded {
        tokio::task::block_in_place(|| writebehind.wait_flushed(timeout))
    } else if tokio::runtime::Handle::try_current().is_err() {
        writebehind.wait_flushed(timeout)
    } else {
        return Err(Error::err(
            "WRITEBEHIND FLUSH needs a multi-threaded runtime",
        ));
    };
    if !done {
        return Err(Error::raw(format!(
            "WRITEBEHIND flush did not complete: {} changes are not in PostgreSQL yet",
            writebehind.pending_keys()
        )));
    }
    ctx.out.ok();
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
