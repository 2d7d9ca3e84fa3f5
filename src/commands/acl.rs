//! ACL: the ACL command, and the permission check every command passes
//! (keys from the command table's key specs, categories as COMMAND INFO
//! reports them, channels of the pub/sub commands). The users themselves
//! are `crate::acl`.

use std::sync::{Arc, OnceLock};

use smallvec::SmallVec;

use super::connection::container;
use super::flags::*;
use super::{all_commands, reply_help, stat_slot, CommandSpec, Ctx, Session, NO_KEYS};
use crate::acl::{self, Catalog, CatalogCommand, Denial, Request, User};
use crate::error::{Error, Result};
use crate::shared::Shared;

const ADMIN_FLAGS: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("acl", -2, 0, NO_KEYS, container)
    .doc(
        "server",
        "6.0.0",
        "A container for Access List Control commands ",
        "Depends on subcommand.",
    )
    .subcommands(ACL_SUBCOMMANDS)];

static ACL_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("acl|cat", -2, NOSCRIPT | LOADING | STALE, NO_KEYS, acl_cat).doc(
        "server",
        "6.0.0",
        "List the ACL categories or the commands inside a category",
        "O(1) since the categories and commands are a fixed set.",
    ),
    CommandSpec::new("acl|deluser", -3, ADMIN_FLAGS, NO_KEYS, acl_deluser).doc(
        "server",
        "6.0.0",
        "Remove the specified ACL users and the associated rules",
        "O(1) amortized time considering the typical user.",
    ),
    CommandSpec::new("acl|dryrun", -4, ADMIN_FLAGS, NO_KEYS, acl_dryrun).doc(
        "server",
        "7.0.0",
        "Returns whether the user can execute the given command without executing the command.",
        "O(1).",
    ),
    CommandSpec::new(
        "acl|genpass",
        -2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        acl_genpass,
    )
    .doc(
        "server",
        "6.0.0",
        "Generate a pseudorandom secure password to use for ACL users",
        "O(1)",
    ),
    CommandSpec::new("acl|getuser", 3, ADMIN_FLAGS, NO_KEYS, acl_getuser).doc(
        "server",
        "6.0.0",
        "Get the rules for a specific ACL user",
        "O(N). Where N is the number of password, command and pattern rules that the user has.",
    ),
    CommandSpec::new("acl|help", 2, LOADING | STALE, NO_KEYS, acl_help).doc(
        "server",
        "6.0.0",
        "Show helpful text about the different subcommands",
        "O(1)",
    ),
    CommandSpec::new("acl|list", 2, ADMIN_FLAGS, NO_KEYS, acl_list).doc(
        "server",
        "6.0.0",
        "List the current ACL rules in ACL config file format",
        "O(N). Where N is the number of configured users.",
    ),
    CommandSpec::new("acl|load", 2, ADMIN_FLAGS, NO_KEYS, acl_load).doc(
        "server",
        "6.0.0",
        "Reload the ACLs from the configured ACL file",
        "O(N). Where N is the number of configured users.",
    ),
    CommandSpec::new("acl|log", -2, ADMIN_FLAGS, NO_KEYS, acl_log).doc(
        "server",
        "6.0.0",
        "List latest events denied because of ACLs in place",
        "O(N) with N being the number of entries shown.",
    ),
    CommandSpec::new("acl|save", 2, ADMIN_FLAGS, NO_KEYS, acl_save).doc(
        "server",
        "6.0.0",
        "Save the current ACL rules in the configured ACL file",
        "O(N). Where N is the number of configured users.",
    ),
    CommandSpec::new("acl|setuser", -3, ADMIN_FLAGS, NO_KEYS, acl_setuser).doc(
        "server",
        "6.0.0",
        "Modify or create the rules for a specific ACL user",
        "O(N). Where N is the number of rules provided.",
    ),
    CommandSpec::new("acl|users", 2, ADMIN_FLAGS, NO_KEYS, acl_users).doc(
        "server",
        "6.0.0",
        "List the username of all the configured ACL rules",
        "O(N). Where N is the number of configured users.",
    ),
    CommandSpec::new(
        "acl|whoami",
        2,
        NOSCRIPT | LOADING | STALE,
        NO_KEYS,
        acl_whoami,
    )
    .doc(
        "server",
        "6.0.0",
        "Return the name of the user associated to the current connection",
        "O(1)",
    ),
];

// ------------------------------------------------------------ the catalog

/// How the keys of a command are checked.
#[derive(Debug, Clone, Copy)]
enum KeyRule {
    /// Every key the table finds needs this ([`acl::READ`]/[`acl::WRITE`]).
    Uniform(u8),
    /// The key at argv 1 only (GET, INCR, HSET...), which needs this: the
    /// common case, checked without walking the key spec.
    First(u8),
    /// SET: write, and read too with GET.
    Set,
    /// Several key specs with their own flags: read from the key specs.
    Specs,
}

/// Which arguments of a command are channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelRule {
    None,
    /// PUBLISH, SPUBLISH: argv 1.
    First,
    /// SUBSCRIBE, SSUBSCRIBE: every argument.
    All,
    /// PSUBSCRIBE: every argument, as patterns.
    AllPatterns,
}

impl ChannelRule {
    fn of(name: &str) -> Self {
        match name {
            "publish" | "spublish" => ChannelRule::First,
            "subscribe" | "ssubscribe" => ChannelRule::All,
            "psubscribe" => ChannelRule::AllPatterns,
            _ => ChannelRule::None,
        }
    }
}

/// How a command is checked, by command id.
#[derive(Debug, Clone, Copy)]
struct CheckRule {
    keys: KeyRule,
    channels: ChannelRule,
}

struct AclTable {
    catalog: Catalog,
    /// By command id.
    rules: Vec<CheckRule>,
}

/// What a key spec's flags ask of a key pattern (Redis's
/// ACLSelectorCheckKey): `access` reads, `insert`/`delete`/`update` write.
fn perm_of(flags: &[&str]) -> u8 {
    let mut perm = 0;
    if flags.contains(&"access") {
        perm |= acl::READ;
    }
    if flags
        .iter()
        .any(|f| matches!(*f, "insert" | "delete" | "update"))
    {
        perm |= acl::WRITE;
    }
    perm
}

fn table() -> &'static AclTable {
    static TABLE: OnceLock<AclTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut specs: Vec<&'static CommandSpec> = Vec::new();
        for spec in all_commands() {
            specs.push(spec);
            specs.extend(spec.subcommands.iter());
        }
        let count = specs.iter().map(|s| stat_slot(s) + 1).max().unwrap_or(0);
        let mut commands: Vec<CatalogCommand> = (0..count)
            .map(|_| CatalogCommand {
                name: "",
                categories: 0,
                subcommands: Vec::new(),
                is_subcommand: false,
            })
            .collect();
        let mut rules = vec![
            CheckRule {
                keys: KeyRule::Uniform(0),
                channels: ChannelRule::None,
            };
            count
        ];
        for spec in &specs {
            let id = stat_slot(spec);
            let categories = spec
                .all_acl_categories()
                .iter()
                .filter_map(|c| acl::category_bit(c))
                .fold(0, |mask, bit| mask | bit);
            commands[id] = CatalogCommand {
                name: spec.name,
                categories,
                subcommands: spec.subcommands.iter().map(stat_slot).collect(),
                is_subcommand: spec.name.contains('|'),
            };
            let flag_sets = super::command::key_spec_flags(spec);
            let keys = if spec.name == "set" {
                KeyRule::Set
            } else if flag_sets.len() <= 1 && super::command::table_matches_key_spec(spec) {
                let perm = flag_sets.first().map_or(0, |f| perm_of(f));
                match spec.keys {
                    super::KeySpec::Range {
                        first: 1, last: 1, ..
                    } => KeyRule::First(perm),
                    _ => KeyRule::Uniform(perm),
                }
            } else {
                KeyRule::Specs
            };
            rules[id] = CheckRule {
                keys,
                channels: ChannelRule::of(spec.name),
            };
        }
        AclTable {
            catalog: Catalog::new(commands),
            rules,
        }
    })
}

/// The commands as the ACL numbers them.
pub fn catalog() -> &'static Catalog {
    &table().catalog
}

fn all_channels_default(shared: &Shared) -> bool {
    shared
        .config
        .read()
        .get("acl-pubsub-default")
        .is_some_and(|v| v == "allchannels")
}

// ------------------------------------------------------------ the check

/// Checks `argv` (already resolved to `spec`) against `user`.
pub fn check(user: &User, spec: &CommandSpec, argv: &[&[u8]]) -> std::result::Result<(), Denial> {
    if user.unrestricted() {
        return Ok(());
    }
    with_request(spec, argv, |request| user.check(request))
}

/// Redis's `ACLUserCheckCmdWithUnrestrictedKeyAccess` (SORT's BY and GET
/// patterns): a selector that allows `argv` may read every key.
pub fn may_read_any_key(user: &User, spec: &CommandSpec, argv: &[&[u8]]) -> bool {
    user.unrestricted() || with_request(spec, argv, |request| user.may_read_any_key(request))
}

/// Builds what `argv` needs from the ACL and hands it to `f`. A command
/// with one key at argv 1 and no channels (most commands) is described on
/// the stack, without walking its key spec or collecting anything.
fn with_request<R>(spec: &CommandSpec, argv: &[&[u8]], f: impl FnOnce(&Request) -> R) -> R {
    let id = stat_slot(spec);
    let rule = table().rules.get(id).copied().unwrap_or(CheckRule {
        keys: KeyRule::Specs,
        channels: ChannelRule::None,
    });
    let exempt = spec.has(NO_AUTH);
    let first_key = |perm: u8| argv.get(1).map(|key| (1, *key, perm));
    let single = match rule.keys {
        KeyRule::First(perm) => Some(first_key(perm)),
        // SET reads too with GET.
        KeyRule::Set => {
            let get = argv.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"GET"));
            Some(first_key(acl::WRITE | if get { acl::READ } else { 0 }))
        }
        _ => None,
    };
    if let (Some(key), ChannelRule::None) = (single, rule.channels) {
        let keys = match &key {
            Some(key) => std::slice::from_ref(key),
            None => &[],
        };
        return f(&Request {
            command: id,
            exempt,
            keys,
            channels: &[],
            first_arg: argv.get(1).copied(),
        });
    }
    let mut keys: SmallVec<[(usize, &[u8], u8); 4]> = SmallVec::new();
    match rule.keys {
        KeyRule::First(_) | KeyRule::Set => keys.extend(single.flatten()),
        KeyRule::Uniform(perm) => {
            keys.extend(
                spec.key_positions(argv)
                    .into_iter()
                    .map(|i| (i, argv[i], perm)),
            );
        }
        KeyRule::Specs => {
            for (i, flags) in super::command::keys_with_flags(spec, argv) {
                keys.push((i, argv[i], perm_of(&flags)));
            }
        }
    }
    let channels: SmallVec<[(usize, &[u8], bool); 4]> = match rule.channels {
        ChannelRule::None => SmallVec::new(),
        ChannelRule::First => argv.get(1).map(|c| (1, *c, false)).into_iter().collect(),
        ChannelRule::All | ChannelRule::AllPatterns => {
            let pattern = rule.channels == ChannelRule::AllPatterns;
            (1..argv.len()).map(|i| (i, argv[i], pattern)).collect()
        }
    };
    f(&Request {
        command: id,
        exempt,
        keys: &keys,
        channels: &channels,
        first_arg: argv.get(1).copied(),
    })
}

/// Where a refused command was: ACL LOG's `context`.
#[derive(Debug, Clone, Copy)]
pub enum Context {
    TopLevel,
    Multi,
    Lua,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::TopLevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

/// The NOPERM text a client gets for a refused command (Redis 7.0's
/// processCommand).
pub fn noperm_message(spec: &CommandSpec, denial: Denial) -> String {
    match denial {
        Denial::Command => format!(
            "NOPERM this user has no permissions to run the '{}' command",
            spec.name
        ),
        Denial::Key(_) => {
            "NOPERM this user has no permissions to access one of the keys used as arguments".into()
        }
        Denial::Channel(_) => {
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .into()
        }
    }
}

/// The error a script's `redis.call` gets (Redis 7.0's scriptVerifyACL).
pub fn script_message(denial: Denial) -> &'static str {
    match denial {
        Denial::Command => "ERR The user executing the script can't run this command or subcommand",
        Denial::Key(_) => "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments",
        Denial::Channel(_) => "ERR The user executing the script can't publish to the channel mentioned in the command",
    }
}

/// The error EXEC gives a queued command the rules no longer allow.
pub fn exec_message(denial: Denial) -> &'static str {
    match denial {
        Denial::Command => "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to execute the command or subcommand",
        Denial::Key(_) => "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to touch the specified keys",
        Denial::Channel(_) => "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to access one of the channels used as arguments",
    }
}

fn log_max_len(shared: &Shared) -> usize {
    shared
        .config
        .read()
        .get("acllog-max-len")
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

/// Adds a refusal to ACL LOG.
pub fn log_denial(
    shared: &Shared,
    session: &Session,
    spec: &CommandSpec,
    argv: &[&[u8]],
    denial: Denial,
    context: Context,
) {
    let counter = match denial {
        Denial::Command => 0,
        Denial::Key(_) => 1,
        Denial::Channel(_) => 2,
    };
    shared.stats.acl_denied[counter].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let object = match denial {
        Denial::Command => spec.name.as_bytes().to_vec(),
        Denial::Key(i) | Denial::Channel(i) => argv.get(i).map_or(Vec::new(), |a| a.to_vec()),
    };
    add_log_entry(
        shared,
        session,
        denial.reason(),
        context.name(),
        object,
        session.user.name.as_bytes().to_vec(),
    );
}

fn add_log_entry(
    shared: &Shared,
    session: &Session,
    reason: &'static str,
    context: &'static str,
    object: Vec<u8>,
    username: Vec<u8>,
) {
    let max_len = log_max_len(shared);
    let entry = acl::LogEntry {
        count: 1,
        reason,
        context,
        object,
        username,
        last_ms: shared.store.now_ms(),
        client_info: session.handle.info_line(),
    };
    shared.acl.log.lock().add(entry, max_len);
}

// ------------------------------------------------------------ auth

/// Whether a new (or RESET) connection is authenticated from the start:
/// the default user has `nopass` and is on.
pub fn default_needs_no_auth(shared: &Shared) -> bool {
    let default = shared.acl.default_user();
    default.nopass && default.enabled
}

/// AUTH / HELLO AUTH: checks the credentials; on success the session runs
/// as that user. A failure is counted and logged as Redis does.
pub fn authenticate(ctx: &mut Ctx, username: &[u8], password: &[u8]) -> bool {
    match ctx.shared.acl.authenticate(username, password) {
        acl::AuthResult::Ok(user) => {
            ctx.session.set_user(user);
            ctx.session.authenticated = true;
            true
        }
        acl::AuthResult::Denied => {
            ctx.shared
                .stats
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            add_log_entry(
                ctx.shared,
                ctx.session,
                "auth",
                "toplevel",
                b"AUTH".to_vec(),
                username.to_vec(),
            );
            false
        }
    }
}

/// Loads the users of the configuration (`user` lines, or `aclfile`) at
/// start-up; an error stops the server, as in Redis.
pub fn load_initial(shared: &Shared) -> std::result::Result<(), String> {
    let (lines, aclfile, requirepass) = {
        let config = shared.config.read();
        (
            config.acl_users.clone(),
            config.get("aclfile").filter(|f| !f.is_empty()),
            config.requirepass.clone(),
        )
    };
    let all_channels = all_channels_default(shared);
    if !lines.is_empty() && aclfile.is_some() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    if let Some(path) = aclfile {
        let users = read_acl_file(&path, all_channels)?;
        shared.acl.replace_all(users);
    } else if !lines.is_empty() {
        let mut users: Vec<User> = Vec::new();
        for words in &lines {
            let Some((name, rules)) = words.split_first() else {
                continue;
            };
            let name = String::from_utf8_lossy(name).into_owned();
            if users.iter().any(|u| u.name == name) {
                return Err(format!(
                    "Error in user declaration '{name}': Duplicate user found. A user can only be defined once in config files"
                ));
            }
            let start = if name == "default" {
                User::default_user()
            } else {
                User::new(&name, all_channels)
            };
            let user = start
                .apply_rules(catalog(), rules, all_channels)
                .map_err(|(rule, e)| {
                    format!(
                        "Error in user declaration '{name}': Error in applying operation '{}': {}",
                        String::from_utf8_lossy(&rule),
                        e.text()
                    )
                })?;
            users.push(user);
        }
        let has_default = users.iter().any(|u| u.name == "default");
        shared.acl.replace_all(users);
        if !has_default {
            shared.acl.set_requirepass(requirepass.as_deref());
        }
    }
    shared.acl_changed();
    Ok(())
}

fn read_acl_file(path: &str, all_channels: bool) -> std::result::Result<Vec<User>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return Err(format!("Error loading ACLs, opening file '{path}': {e}")),
    };
    acl::parse_acl_file(catalog(), path, &text, all_channels)
}

/// Kills the clients authenticated as `name` (but not `except`).
fn kill_clients_of(shared: &Shared, name: &str) {
    for client in shared.clients.list() {
        if client.meta.lock().user.as_deref() == Some(name) {
            client.kill();
        }
    }
}

/// Redis's ACLKillPubsubClientsIfNeeded: after `name` changed, its
/// subscribed clients that now hold a channel or pattern the user may not
/// use are disconnected.
fn kill_pubsub_clients_if_needed(shared: &Shared, name: &str) {
    let Some(user) = shared.acl.user(name) else {
        return;
    };
    if user.unrestricted() {
        return;
    }
    for client in shared.clients.list() {
        let (of_user, subscribed) = {
            let meta = client.meta.lock();
            (
                meta.user.as_deref().unwrap_or("default") == name,
                meta.subscriptions.iter().sum::<usize>() > 0,
            )
        };
        if !of_user || !subscribed {
            continue;
        }
        let [channels, shard_channels, patterns] = shared.pubsub.subscriptions_of(client.id);
        let mut named: Vec<(usize, &[u8], bool)> = Vec::new();
        named.extend(patterns.iter().map(|p| (0, p.as_ref(), true)));
        named.extend(
            channels
                .iter()
                .chain(&shard_channels)
                .map(|c| (0, c.as_ref(), false)),
        );
        let allowed = named.iter().all(|&channel| {
            user.check(&Request {
                command: 0,
                exempt: true,
                keys: &[],
                channels: &[channel],
                first_arg: None,
            })
            .is_ok()
        });
        if !allowed {
            client.kill();
        }
    }
}

// ------------------------------------------------------------ ACL ...

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// ACL SETUSER, recorded in the audit trail.
fn acl_setuser(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "acl", Some("setuser"), acl_setuser_unaudited)
}

fn acl_setuser_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let name = text(argv[2]);
    let rules: Vec<Vec<u8>> = argv[3..].iter().map(|a| a.to_vec()).collect();
    let all_channels = all_channels_default(ctx.shared);
    if let Err((rule, error)) = ctx
        .shared
        .acl
        .set_user(catalog(), &name, &rules, all_channels)
    {
        return Err(Error::err(match error {
            acl::RuleError::Unmatched => format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(&rule)
            ),
            _ => format!(
                "Error in ACL SETUSER modifier '{}': {}",
                String::from_utf8_lossy(&rule),
                error.text()
            ),
        }));
    }
    ctx.shared.acl_changed();
    kill_pubsub_clients_if_needed(ctx.shared, &name);
    ctx.out.ok();
    Ok(())
}

fn acl_getuser(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let Some(user) = ctx.shared.acl.user(&text(argv[2])) else {
        ctx.out.null();
        return Ok(());
    };
    let catalog = catalog();
    let out = &mut *ctx.out;
    out.map(6);
    out.bulk(b"flags");
    let flags = user.flags();
    out.array(flags.len());
    for flag in flags {
        out.bulk(flag.as_bytes());
    }
    out.bulk(b"passwords");
    let hashes = user.password_hashes();
    out.array(hashes.len());
    for hash in hashes {
        out.bulk(hash.as_bytes());
    }
    out.bulk(b"commands");
    out.bulk(user.root.describe_commands(catalog).as_bytes());
    out.bulk(b"keys");
    out.bulk(user.root.describe_keys().as_bytes());
    out.bulk(b"channels");
    out.bulk(user.root.describe_channels().as_bytes());
    out.bulk(b"selectors");
    out.array(user.selectors.len());
    for selector in &user.selectors {
        out.map(3);
        out.bulk(b"commands");
        out.bulk(selector.describe_commands(catalog).as_bytes());
        out.bulk(b"keys");
        out.bulk(selector.describe_keys().as_bytes());
        out.bulk(b"channels");
        out.bulk(selector.describe_channels().as_bytes());
    }
    Ok(())
}

/// ACL DELUSER, recorded in the audit trail.
fn acl_deluser(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "acl", Some("deluser"), acl_deluser_unaudited)
}

fn acl_deluser_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv[2..].iter().any(|n| *n == b"default") {
        return Err(Error::err("The 'default' user cannot be removed"));
    }
    let mut deleted = 0;
    for name in &argv[2..] {
        let name = text(name);
        if ctx.shared.acl.delete(&name) {
            deleted += 1;
            kill_clients_of(ctx.shared, &name);
        }
    }
    ctx.shared.acl_changed();
    ctx.out.int(deleted);
    Ok(())
}

fn acl_users(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let users = ctx.shared.acl.users();
    ctx.out.array(users.len());
    for user in users {
        ctx.out.bulk(user.name.as_bytes());
    }
    Ok(())
}

/// Every user as `name rules...` (CONFIG REWRITE's `user` lines).
pub fn user_lines(shared: &Shared) -> Vec<String> {
    shared
        .acl
        .users()
        .iter()
        .map(|u| format!("{} {}", u.name, u.describe(catalog())))
        .collect()
}

fn acl_lines(shared: &Shared) -> Vec<String> {
    shared
        .acl
        .users()
        .iter()
        .map(|u| format!("user {} {}", u.name, u.describe(catalog())))
        .collect()
}

fn acl_list(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let lines = acl_lines(ctx.shared);
    ctx.out.array(lines.len());
    for line in lines {
        ctx.out.bulk(line.as_bytes());
    }
    Ok(())
}

fn acl_whoami(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let name = ctx.session.user.name.clone();
    ctx.out.bulk(name.as_bytes());
    Ok(())
}

fn acl_cat(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    match argv.get(2) {
        None => {
            ctx.out.array(acl::CATEGORIES.len());
            for category in acl::CATEGORIES {
                ctx.out.bulk(category.as_bytes());
            }
        }
        Some(name) => {
            let name = text(name);
            let bit = acl::category_bit(&name)
                .ok_or_else(|| Error::err(format!("Unknown category '{name}'")))?;
            let names: Vec<&str> = catalog().in_category(bit).collect();
            ctx.out.array(names.len());
            for name in names {
                ctx.out.bulk(name.as_bytes());
            }
        }
    }
    Ok(())
}

fn acl_genpass(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    use rand::RngCore;
    let bits = match argv.get(2) {
        None => 256,
        Some(arg) => match super::parse::strict_i64(arg) {
            Some(bits) if (1..=4096).contains(&bits) => bits as usize,
            None => return Err(Error::err("value is not an integer or out of range")),
            _ => {
                return Err(Error::err(
                    "ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
                ))
            }
        },
    };
    let chars = bits.div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    ctx.out.bulk(hex.as_bytes());
    Ok(())
}

fn acl_log(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut count = 10;
    if let Some(arg) = argv.get(2) {
        if argv.len() > 3 {
            return Err(Error::err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
                text(argv[1])
            )));
        }
        if arg.eq_ignore_ascii_case(b"RESET") {
            ctx.shared.acl.log.lock().reset();
            ctx.out.ok();
            return Ok(());
        }
        // As Redis's `while (count--)`: a negative count shows them all.
        count = match super::parse::strict_i64(arg) {
            Some(n) if n >= 0 => n as usize,
            Some(_) => usize::MAX,
            None => return Err(Error::err("value is not an integer or out of range")),
        };
    }
    let entries = ctx.shared.acl.log.lock().recent(count);
    let now = ctx.shared.store.now_ms();
    ctx.out.array(entries.len());
    for entry in entries {
        ctx.out.map(7);
        ctx.out.bulk(b"count");
        ctx.out.int(entry.count as i64);
        ctx.out.bulk(b"reason");
        ctx.out.bulk(entry.reason.as_bytes());
        ctx.out.bulk(b"context");
        ctx.out.bulk(entry.context.as_bytes());
        ctx.out.bulk(b"object");
        ctx.out.bulk(&entry.object);
        ctx.out.bulk(b"username");
        ctx.out.bulk(&entry.username);
        ctx.out.bulk(b"age-seconds");
        ctx.out
            .double(now.saturating_sub(entry.last_ms) as f64 / 1000.0);
        ctx.out.bulk(b"client-info");
        ctx.out.bulk(entry.client_info.as_bytes());
    }
    Ok(())
}

fn acl_dryrun(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let name = text(argv[2]);
    let user = ctx
        .shared
        .acl
        .user(&name)
        .ok_or_else(|| Error::err(format!("User '{name}' not found")))?;
    let target = &argv[3..];
    let spec = super::lookup(target[0])
        .and_then(|spec| {
            if spec.subcommands.is_empty() || target.len() == 1 {
                Some(spec)
            } else {
                spec.subcommands.iter().find(|sub| {
                    sub.subcommand_name()
                        .as_bytes()
                        .eq_ignore_ascii_case(target[1])
                })
            }
        })
        .ok_or_else(|| Error::err(format!("Command '{}' not found", text(target[0]))))?;
    if !spec.arity_ok(target.len()) {
        return Err(Error::err(format!(
            "wrong number of arguments for '{}' command",
            spec.name
        )));
    }
    match check(&user, spec, target) {
        Ok(()) => ctx.out.ok(),
        Err(denial) => {
            let message = match denial {
                Denial::Command => format!(
                    "This user has no permissions to run the '{}' command",
                    spec.name
                ),
                Denial::Key(i) => format!(
                    "This user has no permissions to access the '{}' key",
                    text(target[i])
                ),
                Denial::Channel(i) => format!(
                    "This user has no permissions to access the '{}' channel",
                    text(target[i])
                ),
            };
            ctx.out.bulk(message.as_bytes());
        }
    }
    Ok(())
}

const NO_ACL_FILE: &str = "This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn aclfile(shared: &Shared) -> Option<String> {
    shared
        .config
        .read()
        .get("aclfile")
        .filter(|f| !f.is_empty())
}

/// ACL SAVE, recorded in the audit trail.
fn acl_save(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "acl", Some("save"), acl_save_unaudited)
}

fn acl_save_unaudited(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let path = aclfile(ctx.shared).ok_or_else(|| Error::err(NO_ACL_FILE))?;
    let mut text = acl_lines(ctx.shared).join("\n");
    text.push('\n');
    // As Redis: a temporary file renamed over the old one.
    let temp = format!("{path}.tmp-{}", std::process::id());
    let written = std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, &path));
    if let Err(error) = written {
        tracing::warn!(%error, path, "ACL SAVE failed");
        let _ = std::fs::remove_file(&temp);
        return Err(Error::err(
            "There was an error trying to save the ACLs. Please check the server logs for more information",
        ));
    }
    ctx.out.ok();
    Ok(())
}

/// ACL LOAD, recorded in the audit trail.
fn acl_load(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "acl", Some("load"), acl_load_unaudited)
}

fn acl_load_unaudited(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let path = aclfile(ctx.shared).ok_or_else(|| Error::err(NO_ACL_FILE))?;
    let users = read_acl_file(&path, all_channels_default(ctx.shared)).map_err(|errors| {
        Error::err(format!(
            "{errors}WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
        ))
    })?;
    let before: Vec<Arc<User>> = ctx.shared.acl.users();
    ctx.shared.acl.replace_all(users);
    // As Redis 7.0: the old users are freed with their clients, but the
    // default user is kept in place.
    for user in before.iter().filter(|u| u.name != "default") {
        kill_clients_of(ctx.shared, &user.name);
    }
    ctx.shared.acl_changed();
    ctx.out.ok();
    Ok(())
}

fn acl_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    reply_help(
        ctx,
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &[u8]) -> KeyRule {
        let spec = super::super::lookup(name).expect("command");
        table().rules[stat_slot(spec)].keys
    }

    #[test]
    fn key_rules_use_the_table_only_where_it_matches_the_key_specs() {
        assert!(matches!(rule(b"get"), KeyRule::First(acl::READ)));
        assert!(matches!(rule(b"incr"), KeyRule::First(p) if p == acl::READ | acl::WRITE));
        assert!(matches!(rule(b"del"), KeyRule::Uniform(acl::WRITE)));
        assert!(matches!(rule(b"mget"), KeyRule::Uniform(acl::READ)));
        assert!(matches!(rule(b"set"), KeyRule::Set));
        // Several specs, or a keyword search: the key specs decide.
        assert!(matches!(rule(b"lmove"), KeyRule::Specs));
        assert!(matches!(rule(b"xread"), KeyRule::Specs));
        assert!(matches!(rule(b"eval"), KeyRule::Uniform(_)));
    }

    #[test]
    fn channel_rules_name_the_pubsub_commands() {
        let channels = |name: &[u8]| {
            let spec = super::super::lookup(name).expect("command");
            table().rules[stat_slot(spec)].channels
        };
        assert_eq!(channels(b"publish"), ChannelRule::First);
        assert_eq!(channels(b"spublish"), ChannelRule::First);
        assert_eq!(channels(b"subscribe"), ChannelRule::All);
        assert_eq!(channels(b"ssubscribe"), ChannelRule::All);
        assert_eq!(channels(b"psubscribe"), ChannelRule::AllPatterns);
        assert_eq!(channels(b"get"), ChannelRule::None);
    }

    #[test]
    fn every_command_finds_the_same_keys_by_either_path() {
        // For the fast-path commands, the table and the specs agree on a
        // few argument shapes.
        for spec in all_commands().flat_map(|s| std::iter::once(s).chain(s.subcommands)) {
            let first_only = match table().rules[stat_slot(spec)].keys {
                KeyRule::Uniform(_) => false,
                KeyRule::First(_) => true,
                _ => continue,
            };
            for argc in 1..7usize {
                let mut argv: Vec<&[u8]> = vec![spec.name.as_bytes(); argc];
                for arg in argv.iter_mut().skip(1) {
                    *arg = b"1";
                }
                if !spec.arity_ok(argc) {
                    continue;
                }
                let table: Vec<usize> = if first_only {
                    vec![1]
                } else {
                    spec.key_positions(&argv).to_vec()
                };
                let specs: Vec<usize> = super::super::command::keys_with_flags(spec, &argv)
                    .into_iter()
                    .map(|k| k.0)
                    .collect();
                assert_eq!(table, specs, "{} with {argc} arguments", spec.name);
            }
        }
    }
}
