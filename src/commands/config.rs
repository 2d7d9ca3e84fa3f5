//! CONFIG: GET, SET, RESETSTAT, REWRITE, HELP over the settings in
//! `crate::config`.

use super::connection::container;
use super::flags::*;
use super::parse::glob_match;
use super::{CommandSpec, Ctx, NO_KEYS};
use crate::config::limits::fit_open_files_limit;
use crate::config::{Config, ConfigError, Mutability};
use crate::error::{Error, Result};

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("config", -2, 0, NO_KEYS, container)
    .doc(
        "server",
        "2.0.0",
        "A container for server configuration commands.",
        "Depends on subcommand.",
    )
    .subcommands(CONFIG_SUBCOMMANDS)];

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
    CommandSpec::new(
        "config|rewrite",
        2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        config_rewrite,
    )
    .doc(
        "server",
        "2.8.0",
        "Rewrite the configuration file with the in memory configuration",
        "O(1)",
    ),
    CommandSpec::new("config|help", 2, LOADING | STALE, NO_KEYS, config_help).doc(
        "server",
        "5.0.0",
        "Returns helpful text about the different subcommands.",
        "O(1)",
    ),
];

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
            if seen(&found, name.as_bytes())
                || Config::HIDDEN.contains(&name)
                || !glob_match(pattern, name.as_bytes(), true)
            {
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

/// Whether `enable-protected-configs` lets this client change protected
/// settings (`dir`, `dbfilename`): `yes`, or `local` for a client on the
/// loopback interface or a Unix socket, as Redis's allowProtectedAction.
fn protected_configs_allowed(ctx: &Ctx, config: &Config) -> bool {
    match config.get("enable-protected-configs").as_deref() {
        Some("yes") => true,
        Some("local") => ctx.session.handle.is_local(),
        _ => false,
    }
}

fn config_set(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "config", Some("set"), config_set_unaudited)
}

fn config_set_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if !argv.len().is_multiple_of(2) {
        return Err(Error::syntax());
    }
    // As Redis: first every name is checked (unknown, immutable or
    // protected, duplicate; the first problem is reported, under the name as
    // the client wrote it), then every value is applied to a copy (an error
    // is reported under the setting's name), and the copy replaces the
    // configuration only if all of them succeed: all or nothing.
    let current = ctx.shared.config.read().clone();
    let mut updated = current.clone();
    let mut seen: Vec<String> = Vec::new();
    for pair in argv[2..].chunks(2) {
        let typed = String::from_utf8_lossy(pair[0]);
        // Old names (hash-max-ziplist-entries...) count as settings of
        // their own here, as in Redis 7.0.
        let name = typed.to_ascii_lowercase();
        let refusal = match Config::mutability(&name) {
            None => {
                return Err(Error::err(format!(
                    "Unknown option or number of arguments for CONFIG SET - '{typed}'"
                )))
            }
            Some(Mutability::Immutable) => Some("can't set immutable config"),
            Some(Mutability::Protected) if !protected_configs_allowed(ctx, &current) => {
                Some("can't set protected config")
            }
            // `dir` is protected in Redis, and fixed at start-up in Larder.
            Some(Mutability::Protected) if name == "dir" => Some("can't set immutable config"),
            Some(_) => None,
        };
        if let Some(refusal) = refusal {
            return Err(Error::err(format!(
                "CONFIG SET failed (possibly related to argument '{typed}') - {refusal}"
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
        updated.set(name, &value).map_err(|e| {
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
    let previous = current.maxclients;
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
    // Set again to the same path, it is reopened: log rotation (move the
    // file away, then CONFIG SET audit-log-file <same path>).
    if seen.iter().any(|name| name == "audit-log-file") {
        // Turning the trail off is itself recorded, in the file it leaves.
        if updated.audit_log_file.is_empty() {
            let user = ctx.session.user.clone();
            super::audited::record(ctx, &user.name, "config", Some("set"), Ok(()));
        }
        if let Err(error) = ctx.shared.audit.reopen(&updated.audit_log_file) {
            return Err(Error::err(format!(
                "CONFIG SET failed (possibly related to argument 'audit-log-file') - {error}"
            )));
        }
    }
    // As Redis's applyTlsCfg: any tls-* change rebuilds the TLS context
    // (new connections get it); a bad one leaves everything as it was.
    if seen.iter().any(|name| name.starts_with("tls-")) {
        if let Some(reconfigure) = ctx.shared.tls_reconfigure.get() {
            if let Err(reason) = (reconfigure.0)(&current, &updated) {
                let name = seen.iter().find(|n| n.starts_with("tls-")).cloned();
                return Err(Error::err(format!(
                    "CONFIG SET failed (possibly related to argument '{}') - {reason}",
                    name.unwrap_or_default()
                )));
            }
        }
    }
    let level_changed = updated.loglevel != current.loglevel;
    let loglevel = updated.loglevel.clone();
    ctx.shared.set_config(updated);
    if level_changed {
        crate::config::logging::set_level(&loglevel);
    }
    ctx.out.ok();
    Ok(())
}

/// CONFIG REWRITE: the file the server started with, written back with the
/// current settings (see `crate::config::rewrite`).
fn config_rewrite(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let Some(path) = ctx.shared.config_file.get() else {
        return Err(Error::err("The server is running without a config file"));
    };
    let mut config = ctx.shared.config.read().clone();
    // The users as they are now, as Redis's rewriteConfigUserOption.
    config.acl_users = super::acl::user_lines(ctx.shared)
        .iter()
        .map(|line| line.split(' ').map(|w| w.as_bytes().to_vec()).collect())
        .collect();
    match crate::config::rewrite::rewrite_file(&config, path) {
        Ok(()) => {
            tracing::warn!("CONFIG REWRITE executed with success.");
            ctx.out.ok();
            Ok(())
        }
        Err(error) => {
            let reason = crate::config::rewrite::strerror(&error);
            tracing::warn!("CONFIG REWRITE failed: {reason}");
            Err(Error::err(format!("Rewriting config file: {reason}")))
        }
    }
}

fn config_resetstat(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.shared.stats.reset();
    ctx.shared.pubsub.reset_stats();
    ctx.shared.store.reset_eviction_stats();
    // Redis's lazyfreeResetStats.
    ctx.shared.store.lazyfree_stats().reset();
    // Commandstats, errorstats and latencystats (not the slow log, as in
    // Redis).
    ctx.shared.command_stats.reset();
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
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
    );
    Ok(())
}
