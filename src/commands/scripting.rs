//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FUNCTION, FCALL, FCALL_RO.
//!
//! A script or function runs holding the shards of the keys it declares
//! (every shard if it declares none, or once it touches another key before
//! writing), so no other client sees a state in between; the commands it
//! calls run through [`ScriptCaller`], which checks them against those
//! locks (see the README's "Lua scripting"). The Lua side lives in
//! `crate::scripting`.

use super::flags::*;
use super::parse::{int_arg, is_keyword};
use super::{reply_help, resolve_raw, run, CommandSpec, Ctx, KeySpec, Session, NO_KEYS};
use crate::config::renames::Renamed;
use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;
use crate::scripting::{CommandRunner, RestorePolicy, RunKind, Script, ScriptFlags};
use crate::shared::Shared;
use crate::store::{ChangeObserver, LockSet};

const SCRIPTING: &[&str] = &["scripting"];

/// Where EVAL-style commands keep their keys: a count at 2, then the keys.
const NUMKEYS_AT_2: KeySpec = KeySpec::NumKeys { numkeys_index: 2 };

/// The flags of the commands that run scripts. `WHOLE_KEYSPACE`: inside
/// MULTI, EXEC locks every shard for them.
const RUNS_SCRIPT: u32 = NOSCRIPT | SKIP_MONITOR | STALE | NO_MANDATORY_KEYS | WHOLE_KEYSPACE;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("eval", -3, RUNS_SCRIPT | MAY_REPLICATE, NUMKEYS_AT_2, eval)
        .acl(SCRIPTING)
        .doc(
            "scripting",
            "2.6.0",
            "Executes a server-side Lua script.",
            "Depends on the script that is executed.",
        ),
    CommandSpec::new(
        "evalsha",
        -3,
        RUNS_SCRIPT | MAY_REPLICATE,
        NUMKEYS_AT_2,
        evalsha,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "2.6.0",
        "Executes a server-side Lua script by SHA1 digest.",
        "Depends on the script that is executed.",
    ),
    CommandSpec::new("eval_ro", -3, RUNS_SCRIPT | READONLY, NUMKEYS_AT_2, eval_ro)
        .acl(SCRIPTING)
        .doc(
            "scripting",
            "7.0.0",
            "Executes a read-only server-side Lua script.",
            "Depends on the script that is executed.",
        ),
    CommandSpec::new(
        "evalsha_ro",
        -3,
        RUNS_SCRIPT | READONLY,
        NUMKEYS_AT_2,
        evalsha_ro,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "7.0.0",
        "Executes a read-only server-side Lua script by SHA1 digest.",
        "Depends on the script that is executed.",
    ),
    CommandSpec::new(
        "fcall",
        -3,
        RUNS_SCRIPT | MAY_REPLICATE,
        NUMKEYS_AT_2,
        fcall,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "7.0.0",
        "Invokes a function.",
        "Depends on the function that is executed.",
    ),
    CommandSpec::new(
        "fcall_ro",
        -3,
        RUNS_SCRIPT | READONLY,
        NUMKEYS_AT_2,
        fcall_ro,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "7.0.0",
        "Invokes a read-only function.",
        "Depends on the function that is executed.",
    ),
    CommandSpec::new("script", -2, 0, NO_KEYS, super::connection::container)
        .doc(
            "scripting",
            "2.6.0",
            "A container for Lua scripts management commands.",
            "Depends on subcommand.",
        )
        .subcommands(SCRIPT_SUBCOMMANDS),
    CommandSpec::new("function", -2, 0, NO_KEYS, super::connection::container)
        .doc(
            "scripting",
            "7.0.0",
            "A container for function commands.",
            "Depends on subcommand.",
        )
        .subcommands(FUNCTION_SUBCOMMANDS),
];

static SCRIPT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("script|load", 3, NOSCRIPT | STALE, NO_KEYS, script_load)
        .acl(SCRIPTING)
        .doc("scripting", "2.6.0", "Loads a server-side Lua script to the script cache.", "O(N) with N being the length in bytes of the script body."),
    CommandSpec::new("script|exists", -3, NOSCRIPT, NO_KEYS, script_exists)
        .acl(SCRIPTING)
        .doc("scripting", "2.6.0", "Determines whether server-side Lua scripts exist in the script cache.", "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation)."),
    CommandSpec::new("script|flush", -2, NOSCRIPT, NO_KEYS, script_flush)
        .acl(SCRIPTING)
        .doc("scripting", "2.6.0", "Removes all server-side Lua scripts from the script cache.", "O(N) with N being the number of scripts in cache"),
    CommandSpec::new("script|kill", 2, NOSCRIPT | ALLOW_BUSY, NO_KEYS, script_kill)
        .acl(SCRIPTING)
        .doc("scripting", "2.6.0", "Terminates a server-side Lua script during execution.", "O(1)"),
    CommandSpec::new("script|help", 2, LOADING | STALE, NO_KEYS, script_help)
        .acl(SCRIPTING)
        .doc("scripting", "5.0.0", "Returns helpful text about the different subcommands.", "O(1)"),
];

static FUNCTION_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "function|load",
        -3,
        WRITE | DENYOOM | NOSCRIPT | MAY_REPLICATE,
        NO_KEYS,
        function_load,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "7.0.0",
        "Creates a library.",
        "O(1) (considering compilation time is redundant)",
    ),
    CommandSpec::new(
        "function|delete",
        3,
        WRITE | NOSCRIPT | MAY_REPLICATE,
        NO_KEYS,
        function_delete,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "7.0.0",
        "Deletes a library and its functions.",
        "O(1)",
    ),
    CommandSpec::new("function|list", -2, NOSCRIPT, NO_KEYS, function_list)
        .acl(SCRIPTING)
        .doc(
            "scripting",
            "7.0.0",
            "Returns information about all libraries.",
            "O(N) where N is the number of functions",
        ),
    CommandSpec::new("function|dump", 2, NOSCRIPT, NO_KEYS, function_dump)
        .acl(SCRIPTING)
        .doc(
            "scripting",
            "7.0.0",
            "Dumps all libraries into a serialized binary payload.",
            "O(N) where N is the number of functions",
        ),
    CommandSpec::new(
        "function|restore",
        -3,
        WRITE | DENYOOM | NOSCRIPT | MAY_REPLICATE,
        NO_KEYS,
        function_restore,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "7.0.0",
        "Restores all libraries from a payload.",
        "O(N) where N is the number of functions on the payload",
    ),
    CommandSpec::new(
        "function|flush",
        -2,
        WRITE | NOSCRIPT | MAY_REPLICATE,
        NO_KEYS,
        function_flush,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "7.0.0",
        "Deletes all libraries and functions.",
        "O(N) where N is the number of functions deleted",
    ),
    CommandSpec::new(
        "function|kill",
        2,
        NOSCRIPT | ALLOW_BUSY,
        NO_KEYS,
        function_kill,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "7.0.0",
        "Terminates a function during execution.",
        "O(1)",
    ),
    CommandSpec::new(
        "function|stats",
        2,
        NOSCRIPT | ALLOW_BUSY,
        NO_KEYS,
        function_stats,
    )
    .acl(SCRIPTING)
    .doc(
        "scripting",
        "7.0.0",
        "Returns information about a function during execution.",
        "O(1)",
    ),
    CommandSpec::new("function|help", 2, LOADING | STALE, NO_KEYS, function_help)
        .acl(SCRIPTING)
        .doc(
            "scripting",
            "7.0.0",
            "Returns helpful text about the different subcommands.",
            "O(1)",
        ),
];

/// Runs the commands a script calls, under the locks the script holds.
struct ScriptCaller<'c, 's> {
    shared: &'s Shared,
    /// The keys the script declared (read-through loaded them before it
    /// ran).
    declared: &'c [&'c [u8]],
    /// Memory was over `maxmemory` when the script started (Redis checks
    /// once, before the script: evicting under the script's locks could
    /// wait for a shard it holds).
    out_of_memory: bool,
    session: &'c mut Session,
    /// The shards the script holds: those of its declared keys (grown on
    /// demand), or all of them.
    locks: &'c mut LockSet<'s>,
    /// A write command ran: from then on the script cannot be run again
    /// from the start, so a missing shard lock must be taken in place.
    wrote: bool,
    /// The script touched a shard it does not hold before it wrote: it is
    /// being stopped, nothing more runs, and it runs again holding every
    /// shard.
    rerun_with_all_shards: bool,
    /// EVAL_RO, FCALL_RO, or a script flagged `no-writes`.
    read_only: bool,
    /// A script without a shebang: OOM is checked per command.
    compat_mode: bool,
    allow_oom: bool,
}

impl ScriptCaller<'_, '_> {
    /// A command the script called, its name its own.
    fn call_resolved(&mut self, argv: &[&[u8]], out: &mut ReplyBuf) -> bool {
        let spec = match resolve_raw(argv) {
            Ok(spec) => spec,
            Err(message) => {
                let text: &[u8] = if message.starts_with(b"ERR unknown command") {
                    b"ERR Unknown Redis command called from script"
                } else if message.starts_with(b"ERR wrong number") {
                    b"ERR Wrong number of args calling Redis command from script"
                } else {
                    &message
                };
                self.refuse(super::rejected_spec(argv), text, out);
                return false;
            }
        };
        if spec.has(NOSCRIPT) {
            self.refuse(
                Some(spec),
                b"ERR This Redis command is not allowed from script",
                out,
            );
            return false;
        }
        // The script runs with its caller's permissions (scriptVerifyACL).
        if !self.session.hot(self.shared).acl_open {
            if let Err(denial) = super::acl::check(&self.session.user, spec, argv) {
                let context = super::acl::Context::Lua;
                super::acl::log_denial(self.shared, self.session, spec, argv, denial, context);
                self.refuse(
                    Some(spec),
                    super::acl::script_message(denial).as_bytes(),
                    out,
                );
                return false;
            }
        }
        let writes = spec.has(WRITE) || spec.has(MAY_REPLICATE);
        if writes && self.read_only {
            let message = b"ERR Write commands are not allowed from read-only scripts.";
            self.refuse(Some(spec), message, out);
            return false;
        }
        if spec.has(DENYOOM) && self.compat_mode && !self.allow_oom && self.out_of_memory {
            let message = b"OOM command not allowed when used memory > 'maxmemory'.";
            self.refuse(Some(spec), message, out);
            return false;
        }
        if let Some(refusal) = self.write_behind_refusal(spec, argv) {
            self.refuse(Some(spec), refusal.as_bytes(), out);
            return false;
        }
        if !self.hold_shards_for(spec, argv, out) {
            return false;
        }
        self.shared.stats.commands_processed.add(1);
        run(
            self.shared,
            self.session,
            out,
            spec,
            argv,
            Some(&mut *self.locks),
        );
        super::feed_monitors(self.shared, self.session, spec, argv, true);
        self.wrote |= spec.has(WRITE);
        spec.has(WRITE)
    }
}

impl CommandRunner for ScriptCaller<'_, '_> {
    fn call(&mut self, argv: &[&[u8]], out: &mut ReplyBuf) -> bool {
        // rename-command applies to scripts too, as in Redis.
        if let (Some(renames), Some(typed)) =
            (self.shared.renamed_commands.as_deref(), argv.first())
        {
            match renames.resolve(typed) {
                Renamed::AsTyped => {}
                Renamed::Command(name) => {
                    return self.call_resolved(&super::renamed::translate(argv, name), out)
                }
                Renamed::Gone => {
                    self.refuse(None, b"ERR Unknown Redis command called from script", out);
                    return false;
                }
            }
        }
        self.call_resolved(argv, out)
    }

    fn command_known(&self, argv: &[&[u8]]) -> bool {
        let name = match self.shared.renamed_commands.as_deref() {
            Some(renames) => match renames.resolve(argv[0]) {
                Renamed::AsTyped => argv[0],
                Renamed::Command(name) => name.as_bytes(),
                Renamed::Gone => return false,
            },
            None => argv[0],
        };
        super::lookup(name).is_some_and(|spec| {
            spec.subcommands.is_empty()
                || argv.get(1).is_none_or(|sub| {
                    spec.subcommands
                        .iter()
                        .any(|s| s.subcommand_name().as_bytes().eq_ignore_ascii_case(sub))
                })
        })
    }
}

impl ScriptCaller<'_, '_> {
    /// Refuses a command the script called, as Redis's `scriptCall`: the
    /// command's rejected call and the error are counted (once: the script
    /// failing with it does not count it again).
    fn refuse(&mut self, spec: Option<&CommandSpec>, message: &[u8], out: &mut ReplyBuf) {
        super::count_script_refusal(self.shared, self.session, spec, message);
        out.error_bytes(message);
    }

    /// What write-behind says against running `argv` now, as `execute`
    /// checks it for a client's own commands: no writes while the journal
    /// cannot be written, none to followed keys past the backlog limit;
    /// and, with read-through, no command on a followed key the script did
    /// not declare and that is not in memory (it was not loaded from
    /// PostgreSQL, so writing it would overwrite the stored row).
    fn write_behind_refusal(&mut self, spec: &CommandSpec, argv: &[&[u8]]) -> Option<String> {
        let writebehind = self.shared.writebehind.as_deref()?;
        if spec.has(WRITE) {
            if let Some(misconf) = writebehind.disk_error() {
                return Some(misconf);
            }
        }
        if let Some(refusal) = writebehind.backlog_refusal() {
            if super::writebehind::writes_followed_key(writebehind, self.session, spec, argv) {
                return Some(refusal);
            }
        }
        if self.session.hot(self.shared).read_through {
            let db = self.session.db;
            let now = self
                .session
                .batch_time_ms
                .unwrap_or_else(|| self.shared.store.now_ms());
            for position in spec.key_positions(argv) {
                let key = argv[position];
                if self.declared.contains(&key) || !writebehind.observes(db, key) {
                    continue;
                }
                let in_memory = self.locks.covers(key)
                    && self
                        .locks
                        .db(db, key)
                        .is_ok_and(|part| part.contains(key, now));
                if !in_memory {
                    return Some(
                        "ERR with write-behind-read-through, a script must declare in KEYS the keys it uses that may be stored in PostgreSQL"
                            .into(),
                    );
                }
            }
        }
        None
    }

    /// Makes sure the script holds the shards `argv` touches (all of them
    /// for a whole-keyspace command). Before the script wrote, a missing
    /// shard stops it, to run again with every shard; after, the shard is
    /// taken in place (see `LockSet::extend`), or, if another client holds
    /// it and may be waiting for ours, the command fails.
    fn hold_shards_for(&mut self, spec: &CommandSpec, argv: &[&[u8]], out: &mut ReplyBuf) -> bool {
        if self.rerun_with_all_shards {
            out.error("ERR the script runs again holding every shard");
            return false;
        }
        let mut missing: smallvec::SmallVec<[usize; 4]> = if spec.has(WHOLE_KEYSPACE) {
            (0..self.locks.shard_count()).collect()
        } else {
            spec.key_positions(argv)
                .into_iter()
                .map(|i| self.locks.shard_index(argv[i]))
                .collect()
        };
        missing.retain(|index| !self.locks.covers_shard(*index));
        if missing.is_empty() {
            return true;
        }
        if !self.wrote {
            self.rerun_with_all_shards = true;
            self.shared.scripting.stop_running();
            out.error("ERR the script runs again holding every shard");
            return false;
        }
        missing.sort_unstable();
        missing.dedup();
        let mut held = true;
        for index in missing {
            if !self.locks.extend(index, UNDECLARED_KEY_PATIENCE) {
                out.error(
                    "ERR a key the script did not declare is locked by another client: declare every key the script uses in KEYS",
                );
                held = false;
                break;
            }
        }
        self.shared
            .scripting
            .set_held_shards(Some(self.locks.shard_indexes()));
        held
    }
}

/// How long a script that has written waits for the lock of an undeclared
/// key's shard below one it holds. No client waits for a shard while it
/// holds another (`Store::lock_shards` backs off), so the wait ends when
/// the holder's command does; the limit only guards against a holder that
/// breaks that rule.
const UNDECLARED_KEY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// A script's keys, then its other arguments.
type KeysAndArgs<'a> = (&'a [&'a [u8]], &'a [&'a [u8]]);

/// `numkeys` and the split of the rest into keys and arguments.
fn split_keys<'a>(argv: &'a [&'a [u8]], bad_numkeys: &str) -> Result<KeysAndArgs<'a>> {
    let numkeys = match int_arg(argv[2]) {
        Ok(n) => n,
        Err(error) if bad_numkeys.is_empty() => return Err(error),
        Err(_) => return Err(Error::err(bad_numkeys)),
    };
    let rest = &argv[3..];
    if numkeys > rest.len() as i64 {
        return Err(Error::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(Error::err("Number of keys can't be negative"));
    }
    Ok(rest.split_at(numkeys as usize))
}

/// The checks Redis's `scriptPrepareForRun` makes before a script runs.
/// Returns whether memory is over `maxmemory` (after evicting what it
/// could), for the checks of the commands the script calls.
fn prepare(ctx: &mut Ctx, flags: ScriptFlags, read_only_command: bool) -> Result<bool> {
    if read_only_command && flags.declared && !flags.no_writes {
        return Err(Error::err(
            "Can not execute a script with write flag using *_ro command.",
        ));
    }
    let limits = ctx.session.hot(ctx.shared).memory;
    let out_of_memory =
        limits.maxmemory > 0 && ctx.shared.store.make_room(&limits) != crate::store::Room::Ok;
    if out_of_memory && flags.declared && !flags.no_writes && !flags.allow_oom {
        return Err(Error::raw(
            "OOM command not allowed when used memory > 'maxmemory'.",
        ));
    }
    Ok(out_of_memory)
}

/// What runs: an EVAL script or a function.
#[derive(Clone)]
enum Runnable<'a> {
    Script(Script),
    /// The function's name, and the whole FCALL command.
    Function(&'a [u8], &'a [&'a [u8]]),
}

/// Runs a script or function with every shard locked, off the runtime
/// worker (a script may run long; other connections wait without holding
/// a thread, see `Scripting::wait_while_running`).
fn run_locked(
    ctx: &mut Ctx,
    runnable: Runnable,
    flags: ScriptFlags,
    read_only_command: bool,
    keys: &[&[u8]],
    args: &[&[u8]],
) -> Result<()> {
    let out_of_memory = prepare(ctx, flags, read_only_command)?;
    // The same random numbers if it runs twice (Redis runs it once).
    let random_state = ctx.shared.scripting.random_state();
    // A script that declares its keys first holds only their shards, so
    // that scripts on different keys, and other clients, run alongside.
    if !keys.is_empty() && !ctx.locks.in_transaction() {
        let start = ctx.out.len();
        let done = run_holding(
            ctx,
            runnable.clone(),
            flags,
            read_only_command,
            keys,
            args,
            false,
            out_of_memory,
        )?;
        if done {
            return Ok(());
        }
        // It touched an undeclared key before writing: run it again with
        // every shard (what it did so far were reads, with no effect).
        ctx.out.truncate(start);
        ctx.shared.scripting.set_random_state(random_state);
    }
    run_holding(
        ctx,
        runnable,
        flags,
        read_only_command,
        keys,
        args,
        true,
        out_of_memory,
    )
    .map(|_| ())
}

/// Runs the script holding the shards of its declared keys, or every shard
/// (`all_shards`). Returns false if it must run again with every shard.
#[allow(clippy::too_many_arguments)]
fn run_holding(
    ctx: &mut Ctx,
    runnable: Runnable,
    flags: ScriptFlags,
    read_only_command: bool,
    keys: &[&[u8]],
    args: &[&[u8]],
    all_shards: bool,
    out_of_memory: bool,
) -> Result<bool> {
    let shared = ctx.shared;
    let db = ctx.session.db;
    let engine = shared.scripting.enter();
    let mut locked = if all_shards {
        ctx.locks.all()?
    } else {
        ctx.locks.keys(keys)?
    };
    shared
        .scripting
        .set_held_shards((!all_shards).then(|| locked.shard_indexes()));
    let mut caller = ScriptCaller {
        shared,
        declared: keys,
        out_of_memory,
        session: &mut *ctx.session,
        locks: &mut locked,
        wrote: false,
        rerun_with_all_shards: false,
        read_only: read_only_command || flags.no_writes,
        compat_mode: !flags.declared,
        allow_oom: flags.allow_oom,
    };
    let out = &mut *ctx.out;
    // On this worker thread: handing it off (`block_in_place`) costs more
    // than most scripts take. A long script holds this worker; the other
    // connections wait for it asynchronously or run alongside, on the
    // other workers.
    let result = match runnable {
        Runnable::Script(script) => {
            shared
                .scripting
                .eval(&engine, &script, keys, args, &mut caller, out);
            Ok(())
        }
        Runnable::Function(name, command) => {
            shared
                .scripting
                .fcall(&engine, name, command, keys, args, &mut caller, out)
        }
    };
    // SELECT inside a script does not change the caller's database.
    caller.session.db = db;
    let rerun = caller.rerun_with_all_shards;
    result.map(|()| !rerun)
}

fn eval_generic(ctx: &mut Ctx, argv: &[&[u8]], by_sha: bool, read_only: bool) -> Result<()> {
    let (keys, args) = split_keys(argv, "")?;
    let script = if by_sha {
        ctx.shared
            .scripting
            .cached(argv[1])
            .ok_or_else(|| Error::raw("NOSCRIPT No matching script. Please use EVAL."))?
    } else {
        ctx.shared.scripting.load(argv[1], true)?
    };
    let flags = script.flags;
    run_locked(ctx, Runnable::Script(script), flags, read_only, keys, args)
}

fn eval(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    eval_generic(ctx, argv, false, false)
}

fn evalsha(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    eval_generic(ctx, argv, true, false)
}

fn eval_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    eval_generic(ctx, argv, false, true)
}

fn evalsha_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    eval_generic(ctx, argv, true, true)
}

fn fcall_generic(ctx: &mut Ctx, argv: &[&[u8]], read_only: bool) -> Result<()> {
    let flags = ctx.shared.scripting.function_flags(argv[1])?;
    let (keys, args) = split_keys(argv, "Bad number of keys provided")?;
    run_locked(
        ctx,
        Runnable::Function(argv[1], argv),
        flags,
        read_only,
        keys,
        args,
    )
}

fn fcall(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    fcall_generic(ctx, argv, false)
}

fn fcall_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    fcall_generic(ctx, argv, true)
}

fn script_load(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "script", Some("load"), script_load_unaudited)
}

fn script_load_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let script = ctx.shared.scripting.load(argv[2], false)?;
    ctx.out.bulk(script.sha.as_bytes());
    Ok(())
}

fn script_exists(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    ctx.out.array(argv.len() - 2);
    for sha in &argv[2..] {
        ctx.out.int(ctx.shared.scripting.exists(sha) as i64);
    }
    Ok(())
}

/// The optional ASYNC|SYNC of SCRIPT FLUSH and FUNCTION FLUSH.
fn flush_mode(argv: &[&[u8]]) -> Result<()> {
    match argv.get(2) {
        None => Ok(()),
        Some(mode)
            if argv.len() == 3 && (is_keyword(mode, "async") || is_keyword(mode, "sync")) =>
        {
            Ok(())
        }
        Some(_) => Err(Error::err("SCRIPT FLUSH only support SYNC|ASYNC option")),
    }
}

fn script_flush(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    flush_mode(argv)?;
    ctx.shared.scripting.flush_scripts();
    ctx.out.ok();
    Ok(())
}

fn script_kill(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.shared.scripting.kill(RunKind::Eval)?;
    ctx.out.ok();
    Ok(())
}

fn script_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    reply_help(
        ctx,
        "SCRIPT",
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    );
    Ok(())
}

fn function_load(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "function", Some("load"), function_load_unaudited)
}

fn function_load_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (replace, code) = match argv.len() {
        3 => (false, argv[2]),
        4 if is_keyword(argv[2], "replace") => (true, argv[3]),
        4 => {
            return Err(Error::raw(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(argv[2])
            )))
        }
        _ => return Err(Error::wrong_arity("function|load")),
    };
    let name = ctx.shared.scripting.function_load(code, replace)?;
    ctx.out.bulk(name.as_bytes());
    Ok(())
}

fn function_delete(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    ctx.shared.scripting.function_delete(argv[2])?;
    ctx.out.ok();
    Ok(())
}

fn function_list(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut pattern = None;
    let mut with_code = false;
    let mut i = 2;
    while i < argv.len() {
        if is_keyword(argv[i], "withcode") && !with_code {
            with_code = true;
        } else if is_keyword(argv[i], "libraryname") && pattern.is_none() {
            if argv.len() <= i + 1 {
                return Err(Error::err("library name argument was not given"));
            }
            let Some(p) = argv.get(i + 1) else {
                return Err(Error::err("library name argument was not given"));
            };
            pattern = Some(*p);
            i += 1;
        } else {
            return Err(Error::raw(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(argv[i])
            )));
        }
        i += 1;
    }
    let libraries = ctx.shared.scripting.function_list(pattern);
    let out = &mut *ctx.out;
    out.array(libraries.len());
    for library in &libraries {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(library.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(library.functions.len());
        for (name, description, flags) in &library.functions {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"description");
            match description {
                Some(text) => out.bulk(text),
                None => out.null(),
            }
            out.bulk(b"flags");
            out.set(flags.len());
            for flag in flags {
                out.simple(flag);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&library.code);
        }
    }
    Ok(())
}

fn function_dump(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let compress = super::dump::compression(ctx);
    let payload = ctx.shared.scripting.function_dump(compress);
    ctx.out.bulk(&payload);
    Ok(())
}

fn function_restore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let policy = match argv.get(3) {
        None => RestorePolicy::Append,
        Some(p) if argv.len() == 4 && is_keyword(p, "append") => RestorePolicy::Append,
        Some(p) if argv.len() == 4 && is_keyword(p, "replace") => RestorePolicy::Replace,
        Some(p) if argv.len() == 4 && is_keyword(p, "flush") => RestorePolicy::Flush,
        Some(_) if argv.len() > 4 => {
            return Err(Error::raw(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
                String::from_utf8_lossy(argv[1])
            )))
        }
        Some(_) => {
            return Err(Error::err(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ))
        }
    };
    ctx.shared.scripting.function_restore(argv[2], policy)?;
    ctx.out.ok();
    Ok(())
}

fn function_flush(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv.len() > 3 {
        return Err(Error::raw(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
            String::from_utf8_lossy(argv[1])
        )));
    }
    match argv.get(2) {
        None => {}
        Some(mode)
            if argv.len() == 3 && (is_keyword(mode, "async") || is_keyword(mode, "sync")) => {}
        Some(_) => return Err(Error::err("FUNCTION FLUSH only supports SYNC|ASYNC option")),
    }
    ctx.shared.scripting.function_flush();
    ctx.out.ok();
    Ok(())
}

fn function_kill(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.shared.scripting.kill(RunKind::Function)?;
    ctx.out.ok();
    Ok(())
}

fn function_stats(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    if ctx.shared.scripting.busy() == Some(RunKind::Eval) {
        return Err(Error::raw(crate::scripting::BUSY_EVAL));
    }
    let (libraries, functions) = ctx.shared.scripting.function_counts();
    let running = ctx.shared.scripting.running_function();
    let out = &mut *ctx.out;
    out.map(2);
    out.bulk(b"running_script");
    match running {
        Some((name, command, duration_ms)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(command.len());
            for arg in &command {
                out.bulk(arg);
            }
            out.bulk(b"duration_ms");
            out.int(duration_ms as i64);
        }
        None => out.null(),
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libraries as i64);
    out.bulk(b"functions_count");
    out.int(functions as i64);
    Ok(())
}

fn function_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    reply_help(
        ctx,
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    );
    Ok(())
}
