//! SLOWLOG: GET, LEN, RESET, HELP over the slow log the dispatcher fills
//! (`shared::command_stats::SlowLog`, see `commands::run`).

use super::connection::container;
use super::flags::*;
use super::{reply_help, CommandSpec, Ctx, NO_KEYS};
use crate::error::{Error, Result};

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("slowlog", -2, 0, NO_KEYS, container)
    .doc(
        "server",
        "2.2.12",
        "A container for slow log commands",
        "Depends on subcommand.",
    )
    .subcommands(SLOWLOG_SUBCOMMANDS)];

static SLOWLOG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "slowlog|get",
        -2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        slowlog_get,
    )
    .tips(&["request_policy:all_nodes", "nondeterministic_output"])
    .doc(
        "server",
        "2.2.12",
        "Get the slow log's entries",
        "O(N) where N is the number of entries returned",
    ),
    CommandSpec::new(
        "slowlog|len",
        2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        slowlog_len,
    )
    .tips(&[
        "request_policy:all_nodes",
        "response_policy:agg_sum",
        "nondeterministic_output",
    ])
    .doc("server", "2.2.12", "Get the slow log's length", "O(1)"),
    CommandSpec::new(
        "slowlog|reset",
        2,
        ADMIN | LOADING | STALE,
        NO_KEYS,
        slowlog_reset,
    )
    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
    .doc(
        "server",
        "2.2.12",
        "Clear all entries from the slow log",
        "O(N) where N is the number of entries in the slowlog",
    ),
    CommandSpec::new("slowlog|help", 2, LOADING | STALE, NO_KEYS, slowlog_help).doc(
        "server",
        "6.2.0",
        "Show helpful text about the different subcommands",
        "O(1)",
    ),
];

/// SLOWLOG GET [count]: the newest `count` entries (10; -1: all), each
/// `[id, time, duration µs, argv, client addr, client name]`.
fn slowlog_get(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv.len() > 3 {
        return Err(Error::raw(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
            String::from_utf8_lossy(argv[1])
        )));
    }
    let count = match argv.get(2) {
        None => Some(10),
        Some(arg) => match super::parse::strict_i64(arg) {
            Some(-1) => None,
            Some(n) if n >= 0 => Some(n as usize),
            _ => return Err(Error::err("count should be greater than or equal to -1")),
        },
    };
    let entries = ctx.shared.slowlog.newest(count);
    ctx.out.array(entries.len());
    for entry in entries {
        ctx.out.array(6);
        ctx.out.int(entry.id as i64);
        ctx.out.int(entry.time);
        ctx.out.int(entry.duration_us as i64);
        ctx.out.array(entry.argv.len());
        for arg in &entry.argv {
            ctx.out.bulk(arg);
        }
        ctx.out.bulk(entry.client_addr.as_bytes());
        ctx.out.bulk(entry.client_name.as_bytes());
    }
    Ok(())
}

fn slowlog_len(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.out.int(ctx.shared.slowlog.len() as i64);
    Ok(())
}

fn slowlog_reset(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.shared.slowlog.reset();
    ctx.out.ok();
    Ok(())
}

fn slowlog_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    reply_help(
        ctx,
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    );
    Ok(())
}
