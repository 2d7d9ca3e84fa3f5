//! Server commands: TIME, SHUTDOWN, DBSIZE. INFO, CONFIG and COMMAND
//! have files of their own.

use std::time::{SystemTime, UNIX_EPOCH};

use super::flags::*;
use super::parse::is_keyword;
use super::{CommandSpec, Ctx, NO_KEYS};
use crate::error::{Error, Result};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("time", 1, LOADING | STALE | FAST, NO_KEYS, time)
        .tips(&["nondeterministic_output"])
        .doc("server", "2.6.0", "Returns the server time.", "O(1)"),
    CommandSpec::new("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY, NO_KEYS, shutdown)
        .doc("server", "1.0.0", "Synchronously saves the database(s) to disk and shuts down the Redis server.", "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)"),
    CommandSpec::new("dbsize", 1, READONLY | FAST | WHOLE_KEYSPACE, NO_KEYS, dbsize)
        .acl(&["keyspace"])
        .tips(&["request_policy:all_shards", "response_policy:agg_sum"])
        .doc("server", "1.0.0", "Returns the number of keys in the database.", "O(1)"),
];
fn time(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    ctx.out.array(2);
    ctx.out.bulk_int(now.as_secs() as i64);
    ctx.out.bulk_int(now.subsec_micros() as i64);
    Ok(())
}

fn dbsize(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let db = ctx.db();
    let mut total = 0;
    ctx.locks.each_shard(|shard| {
        total += shard.db_ref(db).len();
        Ok(())
    })?;
    ctx.out.int(total as i64);
    Ok(())
}

fn shutdown(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut abort = false;
    let (mut save, mut nosave) = (false, false);
    for arg in &argv[1..] {
        if is_keyword(arg, "NOSAVE") {
            nosave = true;
        } else if is_keyword(arg, "SAVE") {
            save = true;
        } else if is_keyword(arg, "NOW") || is_keyword(arg, "FORCE") {
            // Larder has no replicas to wait for and no save that could fail.
        } else if is_keyword(arg, "ABORT") {
            abort = true;
        } else {
            return Err(Error::syntax());
        }
    }
    if (save && nosave) || (abort && argv.len() > 2) {
        return Err(Error::syntax());
    }
    if abort {
        // Shutdown is immediate in Larder: there is never one to abort.
        return Err(Error::err("No shutdown in progress."));
    }
    // Past busy-reply-threshold, as Redis: only SHUTDOWN NOSAVE, which
    // stops the script (see `Shared::request_shutdown`).
    if !nosave {
        match ctx.shared.scripting.busy() {
            Some(crate::scripting::RunKind::Eval) => {
                return Err(Error::raw(crate::scripting::BUSY_EVAL))
            }
            Some(crate::scripting::RunKind::Function) => {
                return Err(Error::raw(crate::scripting::BUSY_FUNCTION))
            }
            None => {}
        }
    }
    tracing::warn!("User requested shutdown...");
    ctx.shared.request_shutdown();
    // Like Redis, no reply: the connection just closes.
    ctx.session.close_after_reply = true;
    Ok(())
}
