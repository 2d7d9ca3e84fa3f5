//! Server commands: INFO, CONFIG, COMMAND, TIME, SHUTDOWN, DBSIZE.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::connection::{container, REDIS_VERSION};
use super::flags::*;
use super::parse::{glob_match, is_keyword};
use super::{all_commands, lookup, resolve, CommandSpec, Ctx, KeySpec, NO_KEYS};
use crate::config::limits::fit_open_files_limit;
use crate::config::{Config, ConfigError, SETTINGS};
use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("info", -1, LOADING | STALE | WHOLE_KEYSPACE, NO_KEYS, info)
        .acl(&["dangerous"])
        .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
        .doc("server", "1.0.0", "Returns information and statistics about the server.", "O(1)"),
    CommandSpec::new("config", -2, 0, NO_KEYS, container)
        .doc("server", "2.0.0", "A container for server configuration commands.", "Depends on subcommand.")
        .subcommands(CONFIG_SUBCOMMANDS),
    CommandSpec::new("command", -1, LOADING | STALE, NO_KEYS, command_all)
        .acl(&["connection"])
        .tips(&["nondeterministic_output_order"])
        .doc("server", "2.8.13", "Returns detailed information about all commands.", "O(N) where N is the total number of Redis commands")
        .subcommands(COMMAND_SUBCOMMANDS),
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

static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "config|get",
        -3,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        config_get,
    )
    .doc(
        "server",
        "2.0.0",
        "Returns the effective values of configuration parameters.",
        "O(N) when N is the number of configuration parameters provided",
    ),
    CommandSpec::new(
        "config|set",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        config_set,
    )
    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
    .doc(
        "server",
        "2.0.0",
        "Sets configuration parameters in-flight.",
        "O(N) when N is the number of configuration parameters provided",
    ),
    CommandSpec::new(
        "config|resetstat",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        config_resetstat,
    )
    .doc("server", "2.0.0", "Resets the server's statistics.", "O(1)"),
    CommandSpec::new("config|help", 2, LOADING | STALE, NO_KEYS, config_help).doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
    ),
];

static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("command|count", 2, LOADING | STALE, NO_KEYS, command_count)
        .acl(&["connection"])
        .doc("server", "2.8.13", "Returns a count of commands.", "O(1)"),
    CommandSpec::new("command|info", -2, LOADING | STALE, NO_KEYS, command_info)
        .acl(&["connection"])
        .tips(&["nondeterministic_output_order"])
        .doc(
            "server",
            "2.8.13",
            "Returns information about one, multiple or all commands.",
            "O(N) where N is the number of commands to look up",
        ),
    CommandSpec::new("command|list", -2, LOADING | STALE, NO_KEYS, command_list)
        .acl(&["connection"])
        .tips(&["nondeterministic_output_order"])
        .doc(
            "server",
            "7.0.0",
            "Returns a list of command names.",
            "O(N) where N is the total number of Redis commands",
        ),
    CommandSpec::new("command|docs", -2, LOADING | STALE, NO_KEYS, command_docs)
        .acl(&["connection"])
        .tips(&["nondeterministic_output_order"])
        .doc(
            "server",
            "7.0.0",
            "Returns documentary information about one, multiple or all commands.",
            "O(N) where N is the number of commands to look up",
        ),
    CommandSpec::new(
        "command|getkeys",
        -4,
        LOADING | STALE,
        NO_KEYS,
        command_getkeys,
    )
    .acl(&["connection"])
    .doc(
        "server",
        "2.8.13",
        "Extracts the key names from an arbitrary command.",
        "O(N) where N is the number of arguments to the command",
    ),
    CommandSpec::new("command|help", 2, LOADING | STALE, NO_KEYS, command_help)
        .acl(&["connection"])
        .doc(
            "server",
            "5.0.0",
            "Returns helpful text about the different subcommands.",
            "O(1)",
        ),
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

// ---------------------------------------------------------------- CONFIG

fn config_get(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let config = ctx.shared.config.read().clone();
    // As in Redis, the reply is keyed by the name as the client wrote it for
    // an exact name, and by each matching name (aliases included) for a
    // glob; names are compared case-insensitively.
    let mut found: Vec<(Vec<u8>, String)> = Vec::new();
    let seen = |found: &[(Vec<u8>, String)], name: &[u8]| {
        found.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    for pattern in &argv[2..] {
        if !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            if seen(&found, pattern) {
                continue;
            }
            if let Some(value) = config.get(&String::from_utf8_lossy(pattern)) {
                found.push((pattern.to_vec(), value));
            }
            continue;
        }
        for name in Config::names() {
            if seen(&found, name.as_bytes()) || !glob_match(pattern, name.as_bytes(), true) {
                continue;
            }
            if let Some(value) = config.get(name) {
                found.push((name.as_bytes().to_vec(), value));
            }
        }
    }
    ctx.out.map(found.len());
    for (name, value) in found {
        ctx.out.bulk(&name);
        ctx.out.bulk(value.as_bytes());
    }
    Ok(())
}

fn config_set(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if !argv.len().is_multiple_of(2) {
        return Err(Error::syntax());
    }
    // As Redis does: first every name is checked (unknown, immutable,
    // duplicate; reported as the client wrote it), then every value is
    // applied to a copy (reported under the setting's own name), and the
    // copy replaces the configuration only if all of them succeed.
    let mut updated = ctx.shared.config.read().clone();
    let mut seen: Vec<String> = Vec::new();
    for pair in argv[2..].chunks(2) {
        let typed = String::from_utf8_lossy(pair[0]);
        // Old names (hash-max-ziplist-entries...) count as settings of
        // their own here, as in Redis 7.0.
        let name = typed.to_ascii_lowercase();
        if updated.get(&name).is_none() {
            return Err(Error::err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{typed}'"
            )));
        }
        if SETTINGS.iter().any(|s| s.name == name && !s.mutable) {
            return Err(Error::err(format!(
                "CONFIG SET failed (possibly related to argument '{typed}') - can't set immutable config"
            )));
        }
        if seen.contains(&name) {
            return Err(Error::err(format!(
                "CONFIG SET failed (possibly related to argument '{typed}') - duplicate parameter"
            )));
        }
        seen.push(name);
    }
    for (pair, name) in argv[2..].chunks(2).zip(&seen) {
        let value = String::from_utf8_lossy(pair[1]);
        updated.set_at_runtime(name, &value).map_err(|e| {
            let reason = match e {
                ConfigError::Immutable(_) => "can't set immutable config".to_string(),
                ConfigError::Invalid { reason, .. } => reason,
                ConfigError::Unknown(_) => "unknown setting".to_string(),
            };
            Error::err(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - {reason}"
            ))
        })?;
    }
    // As Redis's updateMaxclients: more clients need more descriptors.
    let previous = ctx.shared.config.read().maxclients;
    if updated.maxclients > previous {
        let wanted = updated.maxclients;
        let fitted = fit_open_files_limit(&mut updated);
        if fitted.is_err() || updated.maxclients != wanted {
            return Err(Error::err(format!(
                "CONFIG SET failed (possibly related to argument 'maxclients') - The operating system is not able to handle the specified number of clients, try with {}",
                updated.maxclients.max(previous)
            )));
        }
    }
    ctx.shared.set_config(updated);
    ctx.out.ok();
    Ok(())
}

fn config_resetstat(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.shared.stats.reset();
    ctx.shared.pubsub.reset_stats();
    ctx.shared.store.reset_eviction_stats();
    // Redis's lazyfreeResetStats.
    ctx.shared.store.lazyfree_stats().reset();
    ctx.out.ok();
    Ok(())
}

fn config_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    super::reply_help(
        ctx,
        "CONFIG",
        &[
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
        ],
    );
    Ok(())
}

// ---------------------------------------------------------------- COMMAND

fn command_all(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let specs: Vec<&CommandSpec> = all_commands().collect();
    ctx.out.array(specs.len());
    for spec in specs {
        write_command_info(ctx.out, spec);
    }
    Ok(())
}

fn command_count(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.out.int(all_commands().count() as i64);
    Ok(())
}

/// Looks a command up by name, including `container|sub` names.
fn find_by_full_name(name: &[u8]) -> Option<&'static CommandSpec> {
    let text = String::from_utf8_lossy(name).to_ascii_lowercase();
    match text.split_once('|') {
        None => lookup(name),
        Some((container, _)) => lookup(container.as_bytes())?
            .subcommands
            .iter()
            .find(|sub| sub.name == text),
    }
}

fn command_info(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv.len() == 2 {
        return command_all(ctx, argv);
    }
    ctx.out.array(argv.len() - 2);
    for name in &argv[2..] {
        match find_by_full_name(name) {
            Some(spec) => write_command_info(ctx.out, spec),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn command_list(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    // Like Redis, the list names subcommands too (`client|setname`), unlike
    // COMMAND COUNT.
    let every = || all_commands().flat_map(|s| std::iter::once(s).chain(s.subcommands.iter()));
    let names: Vec<&str> = match argv.len() {
        2 => every().map(|s| s.name).collect(),
        5 if is_keyword(argv[2], "FILTERBY") => {
            let value = argv[4];
            let filter = argv[3];
            if is_keyword(filter, "PATTERN") {
                every()
                    .filter(|s| glob_match(value, s.name.as_bytes(), true))
                    .map(|s| s.name)
                    .collect()
            } else if is_keyword(filter, "ACLCAT") {
                let category = String::from_utf8_lossy(value).to_ascii_lowercase();
                every()
                    .filter(|s| s.all_acl_categories().contains(&category.as_str()))
                    .map(|s| s.name)
                    .collect()
            } else if is_keyword(filter, "MODULE") {
                Vec::new()
            } else {
                return Err(Error::syntax());
            }
        }
        _ => return Err(Error::syntax()),
    };
    ctx.out.array(names.len());
    for name in names {
        ctx.out.bulk(name.as_bytes());
    }
    Ok(())
}

fn command_docs(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let specs: Vec<&CommandSpec> = if argv.len() == 2 {
        all_commands().collect()
    } else {
        argv[2..]
            .iter()
            .filter_map(|n| find_by_full_name(n))
            .collect()
    };
    ctx.out.map(specs.len());
    for spec in specs {
        ctx.out.bulk(spec.name.as_bytes());
        write_command_docs(ctx.out, spec);
    }
    Ok(())
}

fn command_getkeys(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let target = &argv[2..];
    let spec = match resolve(target) {
        Ok(spec) => spec,
        Err(e) if e.message().starts_with("ERR wrong number") => {
            return Err(Error::err(
                "Invalid number of arguments specified for command",
            ))
        }
        Err(_) => return Err(Error::err("Invalid command specified")),
    };
    let positions = spec.key_positions(target);
    if positions.is_empty() && !spec.has(NO_MANDATORY_KEYS) {
        return Err(Error::err("The command has no key arguments"));
    }
    ctx.out.array(positions.len());
    for i in positions {
        ctx.out.bulk(target[i]);
    }
    Ok(())
}

fn command_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    super::reply_help(
        ctx,
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
        ],
    );
    Ok(())
}

/// The legacy (first, last, step) triple COMMAND INFO reports.
fn legacy_key_triple(spec: &CommandSpec) -> (i64, i64, i64) {
    match spec.keys {
        KeySpec::Range { first, last, step } => (first as i64, last as i64, step as i64),
        KeySpec::DestAndNumKeys { .. } => (1, 1, 1),
        KeySpec::None | KeySpec::NumKeys { .. } => (0, 0, 0),
    }
}

fn write_command_info(out: &mut ReplyBuf, spec: &CommandSpec) {
    let mut flag_names: Vec<&str> = super::flags::NAMES
        .iter()
        .filter(|(bit, _)| spec.has(*bit))
        .map(|(_, name)| *name)
        .collect();
    if matches!(
        spec.keys,
        KeySpec::NumKeys { .. } | KeySpec::DestAndNumKeys { .. }
    ) {
        flag_names.push("movablekeys");
    }
    let (first, last, step) = legacy_key_triple(spec);
    out.array(10);
    out.bulk(spec.name.as_bytes());
    out.int(spec.arity as i64);
    out.set(flag_names.len());
    for name in flag_names {
        out.simple(name);
    }
    out.int(first);
    out.int(last);
    out.int(step);
    let categories = spec.all_acl_categories();
    out.set(categories.len());
    for category in categories {
        out.simple(&format!("@{category}"));
    }
    out.set(spec.tips.len());
    for tip in spec.tips {
        out.bulk(tip.as_bytes());
    }
    write_key_specs(out, spec);
    // Redis replies an empty set when there are no subcommands, an array
    // otherwise.
    if spec.subcommands.is_empty() {
        out.set(0);
    } else {
        out.array(spec.subcommands.len());
    }
    for sub in spec.subcommands {
        write_command_info(out, sub);
    }
}

fn write_key_specs(out: &mut ReplyBuf, spec: &CommandSpec) {
    let access: &[&str] = if !spec.key_spec_flags.is_empty() {
        spec.key_spec_flags
    } else if spec.has(WRITE) {
        &["RW", "update"]
    } else {
        &["RO", "access"]
    };
    match spec.keys {
        KeySpec::None => out.set(0),
        KeySpec::Range { first, last, step } => {
            let last_key = if last < 0 {
                last as i64
            } else {
                (last - first) as i64
            };
            out.set(1);
            write_key_spec(
                out,
                access,
                first as i64,
                FindKeys::Range(last_key, step as i64),
            );
        }
        KeySpec::NumKeys { numkeys_index } => {
            out.set(1);
            write_key_spec(out, access, numkeys_index as i64, FindKeys::KeyNum);
        }
        KeySpec::DestAndNumKeys { numkeys_index } => {
            // As Redis reports ZUNIONSTORE: the destination (overwritten),
            // then the source keys after the count.
            out.array(2);
            write_key_spec(out, &["OW", "update"], 1, FindKeys::Range(0, 1));
            write_key_spec(
                out,
                &["RO", "access"],
                numkeys_index as i64,
                FindKeys::KeyNum,
            );
        }
    }
}

/// How a key spec finds its keys from where its search begins.
enum FindKeys {
    /// `range`: last key (relative, or negative from the end) and step.
    Range(i64, i64),
    /// `keynum`: the count right at the start, the keys after it.
    KeyNum,
}

/// One key spec as COMMAND INFO shows it: its flags, an `index` begin
/// search at `index`, and how it finds the keys.
fn write_key_spec(out: &mut ReplyBuf, flags: &[&str], index: i64, find: FindKeys) {
    out.map(3);
    out.bulk(b"flags");
    out.set(flags.len());
    flags.iter().for_each(|f| out.simple(f));
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"index");
    out.bulk(b"spec");
    out.map(1);
    out.bulk(b"index");
    out.int(index);
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    match find {
        FindKeys::Range(last_key, step) => {
            out.bulk(b"range");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"lastkey");
            out.int(last_key);
            out.bulk(b"keystep");
            out.int(step);
            out.bulk(b"limit");
            out.int(0);
        }
        FindKeys::KeyNum => {
            out.bulk(b"keynum");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"keynumidx");
            out.int(0);
            out.bulk(b"firstkey");
            out.int(1);
            out.bulk(b"keystep");
            out.int(1);
        }
    }
}

fn write_command_docs(out: &mut ReplyBuf, spec: &CommandSpec) {
    super::docs::write(out, spec);
}

// ---------------------------------------------------------------- INFO

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "keyspace",
];

/// Larder's own sections: shown when asked for by name (or with
/// `everything`), so that plain INFO has only Redis's sections.
const LARDER_SECTIONS: &[&str] = &["writebehind"];

fn info(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut wanted: Vec<&str> = Vec::new();
    if argv.len() == 1 {
        wanted.extend(DEFAULT_SECTIONS);
    }
    for arg in &argv[1..] {
        let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match name.as_str() {
            "all" | "default" => wanted.extend(DEFAULT_SECTIONS),
            "everything" => {
                wanted.extend(DEFAULT_SECTIONS);
                wanted.extend(LARDER_SECTIONS);
            }
            other => {
                if let Some(section) = DEFAULT_SECTIONS
                    .iter()
                    .chain(LARDER_SECTIONS)
                    .find(|s| **s == other)
                {
                    wanted.push(section);
                }
            }
        }
    }
    let mut text = String::new();
    for section in DEFAULT_SECTIONS
        .iter()
        .chain(LARDER_SECTIONS)
        .filter(|s| wanted.contains(s))
    {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let body = match *section {
            "server" => server_section(ctx),
            "clients" => clients_section(ctx),
            "memory" => memory_section(ctx)?,
            "persistence" => persistence_section(),
            "stats" => stats_section(ctx),
            "replication" => replication_section(),
            "cpu" => cpu_section(),
            "writebehind" => writebehind_section(ctx),
            _ => keyspace_section(ctx)?,
        };
        let title = match *section {
            "cpu" => "CPU".to_string(),
            _ => format!("{}{}", section[..1].to_ascii_uppercase(), &section[1..]),
        };
        text.push_str(&format!("# {title}\r\n{body}"));
    }
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}

/// Write-behind to PostgreSQL (Larder-only).
fn writebehind_section(ctx: &Ctx) -> String {
    match &ctx.shared.writebehind {
        Some(writebehind) => fields(&writebehind.status()),
        None => fields(&[("writebehind_enabled", "0".to_string())]),
    }
}

fn fields(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}:{v}\r\n")).collect()
}

fn server_section(ctx: &Ctx) -> String {
    let uptime = ctx.shared.started.elapsed().as_secs();
    let port = ctx.shared.bound.lock().first().map_or(0, |a| a.port());
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let hz = ctx.shared.config.read().hz;
    fields(&[
        ("redis_version", REDIS_VERSION.into()),
        ("redis_git_sha1", "00000000".into()),
        ("redis_git_dirty", "0".into()),
        ("redis_build_id", "0".into()),
        ("redis_mode", "standalone".into()),
        ("larder_version", env!("CARGO_PKG_VERSION").into()),
        (
            "os",
            format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        ),
        ("arch_bits", (usize::BITS).to_string()),
        ("multiplexing_api", "epoll".into()),
        ("process_id", std::process::id().to_string()),
        ("run_id", ctx.shared.run_id.clone()),
        ("tcp_port", port.to_string()),
        ("server_time_usec", now_us.to_string()),
        ("uptime_in_seconds", uptime.to_string()),
        ("uptime_in_days", (uptime / 86400).to_string()),
        ("hz", hz.to_string()),
        ("configured_hz", hz.to_string()),
        (
            "executable",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
    ])
}

fn clients_section(ctx: &Ctx) -> String {
    let maxclients = ctx.shared.config.read().maxclients;
    fields(&[
        ("connected_clients", ctx.shared.clients.len().to_string()),
        ("cluster_connections", "0".into()),
        ("maxclients", maxclients.to_string()),
        (
            "blocked_clients",
            ctx.shared.blocking.blocked_clients().to_string(),
        ),
        (
            "pubsub_clients",
            ctx.shared
                .clients
                .list()
                .iter()
                .filter(|client| client.meta.lock().subscriptions.iter().any(|&n| n > 0))
                .count()
                .to_string(),
        ),
        (
            "tracking_clients",
            ctx.shared.pubsub.tracking.client_count().to_string(),
        ),
        (
            "clients_in_timeout_table",
            ctx.shared.blocking.clients_with_timeout().to_string(),
        ),
    ])
}

/// Bytes in Redis's human form: 1.50K, 2.00M...
pub fn human_bytes(n: u64) -> String {
    let units = [
        ("B", 1u64),
        ("K", 1 << 10),
        ("M", 1 << 20),
        ("G", 1 << 30),
        ("T", 1 << 40),
    ];
    let (unit, size) = units
        .iter()
        .rev()
        .find(|(_, size)| n >= *size)
        .copied()
        .unwrap_or(("B", 1));
    if unit == "B" {
        format!("{n}B")
    } else {
        format!("{:.2}{unit}", n as f64 / size as f64)
    }
}

/// Redis's memory fields, in Redis 7.0's order. `used_memory` is what the
/// allocator handed out when the counting allocator is installed
/// (`larder-server` installs it around mimalloc); otherwise it is the
/// process RSS, an upper bound (see `larder::memory`), and `mem_allocator`
/// says "unknown". The overhead/dataset split and the allocator figures are
/// MEMORY STATS's (`object::memory_overhead`); Lua, functions, replication
/// and AOF do not exist in Larder and report 0.
fn memory_section(ctx: &mut Ctx) -> Result<String> {
    let lua = ctx.shared.scripting.stats();
    let m = super::object::memory_overhead(ctx)?;
    let used = m.total_allocated;
    let peak = m.peak_allocated;
    let rss = m.rss;
    let limits = ctx.shared.config.read().memory_limits();
    let system = total_system_memory();
    let net = used.saturating_sub(m.startup_allocated).max(1);
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(fields(&[
        ("used_memory", used.to_string()),
        ("used_memory_human", human_bytes(used)),
        ("used_memory_rss", rss.to_string()),
        ("used_memory_rss_human", human_bytes(rss)),
        ("used_memory_peak", peak.to_string()),
        ("used_memory_peak_human", human_bytes(peak)),
        (
            "used_memory_peak_perc",
            format!("{:.2}%", ratio(used, peak) * 100.0),
        ),
        ("used_memory_overhead", m.overhead_total.to_string()),
        ("used_memory_startup", m.startup_allocated.to_string()),
        ("used_memory_dataset", m.dataset.to_string()),
        (
            "used_memory_dataset_perc",
            format!("{:.2}%", ratio(m.dataset, net) * 100.0),
        ),
        ("allocator_allocated", m.allocator_allocated.to_string()),
        ("allocator_active", m.allocator_active.to_string()),
        ("allocator_resident", m.allocator_resident.to_string()),
        ("total_system_memory", system.to_string()),
        ("total_system_memory_human", human_bytes(system)),
        // One Lua VM serves scripts and functions: its memory is reported
        // as the scripts' (used_memory_vm_functions: 0).
        ("used_memory_lua", lua.lua_memory.to_string()),
        ("used_memory_vm_eval", lua.lua_memory.to_string()),
        ("used_memory_lua_human", human_bytes(lua.lua_memory as u64)),
        ("used_memory_scripts_eval", lua.scripts_bytes.to_string()),
        ("number_of_cached_scripts", lua.cached_scripts.to_string()),
        ("number_of_functions", lua.functions.to_string()),
        ("number_of_libraries", lua.libraries.to_string()),
        ("used_memory_vm_functions", "0".into()),
        ("used_memory_vm_total", lua.lua_memory.to_string()),
        (
            "used_memory_vm_total_human",
            human_bytes(lua.lua_memory as u64),
        ),
        ("used_memory_functions", "0".into()),
        ("used_memory_scripts", lua.scripts_bytes.to_string()),
        (
            "used_memory_scripts_human",
            human_bytes(lua.scripts_bytes as u64),
        ),
        ("maxmemory", limits.maxmemory.to_string()),
        ("maxmemory_human", human_bytes(limits.maxmemory)),
        ("maxmemory_policy", limits.policy.name().into()),
        ("allocator_frag_ratio", format!("{:.2}", m.allocator_frag())),
        ("allocator_frag_bytes", m.allocator_frag_bytes().to_string()),
        ("allocator_rss_ratio", format!("{:.2}", m.allocator_rss())),
        ("allocator_rss_bytes", m.allocator_rss_bytes().to_string()),
        ("rss_overhead_ratio", format!("{:.2}", m.rss_extra())),
        ("rss_overhead_bytes", m.rss_extra_bytes().to_string()),
        (
            "mem_fragmentation_ratio",
            format!("{:.2}", ratio(rss, used)),
        ),
        (
            "mem_fragmentation_bytes",
            (rss as i64 - used as i64).to_string(),
        ),
        ("mem_not_counted_for_evict", "0".into()),
        ("mem_replication_backlog", "0".into()),
        ("mem_total_replication_buffers", "0".into()),
        ("mem_clients_slaves", "0".into()),
        ("mem_clients_normal", m.clients_normal.to_string()),
        ("mem_cluster_links", "0".into()),
        ("mem_aof_buffer", "0".into()),
        ("mem_allocator", crate::memory::allocator_name().into()),
        ("active_defrag_running", "0".into()),
        (
            "lazyfree_pending_objects",
            ctx.store().lazyfree_stats().pending_objects().to_string(),
        ),
        (
            "lazyfreed_objects",
            ctx.store().lazyfree_stats().freed_objects().to_string(),
        ),
    ]))
}

/// Physical memory of the machine (`total_system_memory`), from
/// /proc/meminfo; 0 where unavailable.
fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn persistence_section() -> String {
    fields(&[
        ("loading", "0".into()),
        ("async_loading", "0".into()),
        ("rdb_bgsave_in_progress", "0".into()),
        ("aof_enabled", "0".into()),
        ("aof_rewrite_in_progress", "0".into()),
    ])
}

fn stats_section(ctx: &Ctx) -> String {
    let stats = &ctx.shared.stats;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
    let pubsub = &ctx.shared.pubsub;
    let (tracking_keys, tracking_items, tracking_prefixes) = pubsub.tracking.totals();
    use crate::pubsub::ChannelKind;
    fields(&[
        (
            "total_connections_received",
            get(&stats.connections_received),
        ),
        (
            "total_commands_processed",
            stats.commands_processed.load().to_string(),
        ),
        (
            "total_net_input_bytes",
            stats.net_input_bytes.load().to_string(),
        ),
        (
            "total_net_output_bytes",
            stats.net_output_bytes.load().to_string(),
        ),
        ("rejected_connections", get(&stats.rejected_connections)),
        (
            "expired_keys",
            (stats.expired_keys.load(Ordering::Relaxed) + ctx.store().expired_by_eviction())
                .to_string(),
        ),
        ("expired_subkeys", get(&stats.expired_subkeys)),
        ("evicted_keys", ctx.store().evicted_keys().to_string()),
        ("total_error_replies", get(&stats.error_replies)),
        (
            "pubsub_channels",
            pubsub.channel_count(ChannelKind::Classic).to_string(),
        ),
        ("pubsub_patterns", pubsub.pattern_count().to_string()),
        (
            "pubsubshard_channels",
            pubsub.channel_count(ChannelKind::Shard).to_string(),
        ),
        ("tracking_total_keys", tracking_keys.to_string()),
        ("tracking_total_items", tracking_items.to_string()),
        ("tracking_total_prefixes", tracking_prefixes.to_string()),
        (
            "client_output_buffer_limit_disconnections",
            pubsub.limit_disconnections().to_string(),
        ),
    ])
}

fn replication_section() -> String {
    fields(&[("role", "master".into()), ("connected_slaves", "0".into())])
}

fn cpu_section() -> String {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks.
    let ticks: Vec<f64> = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_string()))
        .map(|rest| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let seconds = |i: usize| format!("{:.6}", ticks.get(i).copied().unwrap_or(0.0) / 100.0);
    fields(&[("used_cpu_sys", seconds(1)), ("used_cpu_user", seconds(0))])
}

fn keyspace_section(ctx: &mut Ctx) -> Result<String> {
    let databases = ctx.store().databases();
    let mut keys = vec![0usize; databases];
    let mut volatile = vec![0usize; databases];
    ctx.locks.each_shard(|shard| {
        for db in 0..databases {
            // db_ref: reading must not create the parts of unused databases.
            keys[db] += shard.db_ref(db).len();
            volatile[db] += shard.db_ref(db).volatile_len();
        }
        Ok(())
    })?;
    Ok((0..databases)
        .filter(|&db| keys[db] > 0)
        .map(|db| {
            format!(
                "db{db}:keys={},expires={},avg_ttl=0\r\n",
                keys[db], volatile[db]
            )
        })
        .collect())
}
