//! The command table and the dispatcher.
//!
//! Every command is a [`CommandSpec`]: data (name, arity, flags, key
//! positions, ACL categories, docs) plus a handler. Dispatch, `COMMAND`,
//! and transaction locking all read the same table. Each family file
//! (`string.rs`, `keyspace.rs`...) exports its `COMMANDS` slice.

pub mod parse;
mod session;
mod table;

mod acl;
mod audited;
mod command;
mod config;
mod connection;
mod debug;
mod docs;
mod dump;
mod geo;
mod hash;
mod hyperloglog;
mod info;
mod keyspace;
mod latency;
mod list;
mod long_double;
mod migrate;
mod object;
mod pubsub;
mod reads;
mod renamed;
mod scripting;
mod server;
pub use server::shutdown_save;
mod set;
mod slowlog;
mod sort;
mod stream;
mod stream_groups;
mod string;
mod tracking;
mod transaction;
mod writebehind;
mod zset;

use std::cell::Cell;

use smallvec::SmallVec;

pub use acl::{catalog as acl_catalog, default_needs_no_auth, load_initial as load_acl};
pub use dump::dump_payload;
pub use renamed::{apply_renames, refuse_renamed_away};
pub use session::{HotSettings, MultiState, ReplyMode, Session, Subscriptions, WatchedKey};
pub use table::{all_commands, lookup};
pub use transaction::end_session;
pub use writebehind::read_through_keys;

use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;
use crate::shared::Shared;
use crate::store::{Db, LockSet, ReadSet, Shard, ShardReadGuard, Store};

/// A command handler. `argv[0]` is the command name, as in Redis.
pub type Handler = fn(&mut Ctx<'_, '_>, &[&[u8]]) -> Result<()>;

/// Command flags, as `COMMAND INFO` reports them.
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const ALLOW_BUSY: u32 = 1 << 15;
    /// The command's keys may be zero in number (EVAL, FCALL...).
    pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
    /// Refused while a replica loads asynchronously (MODULE LOAD...):
    /// reported only, Larder has no replication.
    pub const NO_ASYNC_LOADING: u32 = 1 << 17;
    /// Larder-only, not reported: the command may touch any key (KEYS, SCAN,
    /// FLUSHDB...), so a transaction containing it locks every shard.
    pub const WHOLE_KEYSPACE: u32 = 1 << 30;

    /// Reported names, in Redis's order.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        // MAY_REPLICATE is hidden, as Redis hides it.
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Where a command's keys are in its argv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// No keys.
    None,
    /// Redis's legacy triple: first key, last key (negative counts from the
    /// end), step.
    Range { first: i32, last: i32, step: i32 },
    /// A count at `numkeys_index` followed by that many keys (ZUNION-style).
    NumKeys { numkeys_index: usize },
    /// A destination key at 1, then a count at `numkeys_index` followed by
    /// that many keys (ZUNIONSTORE-style).
    DestAndNumKeys { numkeys_index: usize },
    /// After the STREAMS keyword, the first half of the rest (XREAD).
    StreamsKeyword,
    /// The key at 1, and the destination after a STORE or STOREDIST
    /// option (GEORADIUS, GEORADIUSBYMEMBER).
    StoreOption,
    /// The key at 1, and the destination after SORT's last STORE option.
    SortStore,
    /// SORT_RO's key at 1, reported as movable like Redis's.
    SortReadOnly,
    /// MIGRATE's key at 3, or the keys after its KEYS option.
    Migrate,
}

/// One command: what `COMMAND INFO`/`COMMAND DOCS` report, and its handler.
#[derive(Debug, Clone, Copy)]
pub struct CommandSpec {
    pub name: &'static str,
    /// Positive: exact argc; negative: at least `-arity`.
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    pub acl_categories: &'static [&'static str],
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub complexity: &'static str,
    /// The subcommands of a container command (CLIENT, CONFIG...), each
    /// named `container|sub`. A container's own handler is never called.
    pub subcommands: &'static [CommandSpec],
    /// Command tips `COMMAND INFO` reports (`nondeterministic_output`,
    /// `request_policy:all_shards`...), as Redis 7 reports them.
    pub tips: &'static [&'static str],
    /// The flags of the key spec `COMMAND INFO` reports (`RW`, `access`,
    /// `update`, `delete`...); empty: `RW update` for write commands, `RO
    /// access` for the others.
    pub key_spec_flags: &'static [&'static str],
    /// Where the (first) member or field this command looks up inside its
    /// key's value is among its arguments (HGET's field: 2); 0 for none.
    /// What a pipeline's prefetch loads ahead (see `Store::prefetch`).
    pub member_at: usize,
    pub handler: Handler,
}

/// The usual key spec of single-key commands.
pub const FIRST_KEY: KeySpec = KeySpec::Range {
    first: 1,
    last: 1,
    step: 1,
};
/// Every argument after the name is a key (DEL, EXISTS, MGET...).
pub const ALL_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: -1,
    step: 1,
};
/// No keys.
pub const NO_KEYS: KeySpec = KeySpec::None;

/// ACL categories in the order Redis reports them.
pub const ACL_CATEGORY_ORDER: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

impl CommandSpec {
    /// A command with no documentation yet; chain [`CommandSpec::acl`] and
    /// [`CommandSpec::doc`].
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: KeySpec,
        handler: Handler,
    ) -> Self {
        CommandSpec {
            name,
            arity,
            flags,
            keys,
            acl_categories: &[],
            group: "generic",
            since: "1.0.0",
            summary: "",
            complexity: "",
            subcommands: &[],
            tips: &[],
            key_spec_flags: &[],
            member_at: 0,
            handler,
        }
    }

    /// Names the argument that is a member (or field) of the key's value
    /// (see [`CommandSpec::member_at`]).
    pub const fn member_at(mut self, position: usize) -> Self {
        self.member_at = position;
        self
    }

    /// Explicit ACL categories (without `@`); the implicit ones (read, write,
    /// fast/slow, admin...) follow from the flags.
    pub const fn acl(mut self, categories: &'static [&'static str]) -> Self {
        self.acl_categories = categories;
        self
    }

    pub const fn doc(
        mut self,
        group: &'static str,
        since: &'static str,
        summary: &'static str,
        complexity: &'static str,
    ) -> Self {
        self.group = group;
        self.since = since;
        self.summary = summary;
        self.complexity = complexity;
        self
    }

    pub const fn subcommands(mut self, subcommands: &'static [CommandSpec]) -> Self {
        self.subcommands = subcommands;
        self
    }

    pub const fn tips(mut self, tips: &'static [&'static str]) -> Self {
        self.tips = tips;
        self
    }

    pub const fn key_spec_flags(mut self, flags: &'static [&'static str]) -> Self {
        self.key_spec_flags = flags;
        self
    }

    /// `setname` for `client|setname`; the name itself otherwise.
    pub fn subcommand_name(&self) -> &'static str {
        self.name.split_once('|').map_or(self.name, |(_, sub)| sub)
    }

    /// All ACL categories, implicit and explicit, in Redis's order.
    pub fn all_acl_categories(&self) -> Vec<&'static str> {
        ACL_CATEGORY_ORDER
            .iter()
            .copied()
            .filter(|category| {
                self.acl_categories.contains(category)
                    || match *category {
                        "write" => self.has(flags::WRITE),
                        // As Redis's setImplicitACLCategories: not for scripts.
                        "read" => {
                            self.has(flags::READONLY) && !self.acl_categories.contains(&"scripting")
                        }
                        "admin" | "dangerous" => self.has(flags::ADMIN),
                        "pubsub" => self.has(flags::PUBSUB),
                        "fast" => self.has(flags::FAST),
                        "slow" => !self.has(flags::FAST),
                        "blocking" => self.has(flags::BLOCKING),
                        _ => false,
                    }
            })
            .collect()
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = self.arity as i64;
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Indexes of the keys in `argv`, following [`KeySpec`]. Out-of-range
    /// positions are skipped (arity has been checked before).
    pub fn key_positions(&self, argv: &[&[u8]]) -> SmallVec<[usize; 4]> {
        let mut positions = SmallVec::new();
        match self.keys {
            KeySpec::None => {}
            KeySpec::StreamsKeyword => {
                positions.extend(stream::xread_key_range(argv).unwrap_or_default())
            }
            KeySpec::StoreOption if argv.len() > 1 => {
                positions.push(1);
                positions.extend(geo::store_key_position(argv));
            }
            KeySpec::StoreOption => {}
            KeySpec::SortReadOnly if argv.len() > 1 => positions.push(1),
            KeySpec::SortStore if argv.len() > 1 => {
                positions.push(1);
                positions.extend(sort::store_key_position(argv));
            }
            KeySpec::SortStore | KeySpec::SortReadOnly => {}
            KeySpec::Migrate => positions.extend(migrate::key_positions(argv)),
            KeySpec::Range { first, last, step } => {
                if first <= 0 {
                    return positions;
                }
                let last = if last < 0 {
                    argv.len() as i32 + last
                } else {
                    last
                };
                let mut i = first;
                while i <= last && (i as usize) < argv.len() {
                    positions.push(i as usize);
                    i += step.max(1);
                }
            }
            KeySpec::NumKeys { numkeys_index } | KeySpec::DestAndNumKeys { numkeys_index } => {
                if matches!(self.keys, KeySpec::DestAndNumKeys { .. }) && argv.len() > 1 {
                    positions.push(1);
                }
                let count = argv
                    .get(numkeys_index)
                    .and_then(|a| parse::strict_i64(a))
                    .unwrap_or(0)
                    .max(0) as usize;
                let first = numkeys_index + 1;
                positions
                    .extend((first..first.saturating_add(count)).take_while(|&i| i < argv.len()));
            }
        }
        positions
    }
}

/// Shard locks for one command: either taken on demand, or (inside EXEC)
/// borrowed from the set the transaction already holds.
pub struct Locks<'c, 's> {
    store: &'s Store,
    held: Option<&'c mut LockSet<'s>>,
}

/// Locks obtained by [`Locks`]; derefs to the [`LockSet`].
pub enum Locked<'b, 's> {
    Own(LockSet<'s>),
    Held(&'b mut LockSet<'s>),
}

impl<'s> std::ops::Deref for Locked<'_, 's> {
    type Target = LockSet<'s>;
    fn deref(&self) -> &LockSet<'s> {
        match self {
            Locked::Own(set) => set,
            Locked::Held(set) => set,
        }
    }
}

impl<'s> std::ops::DerefMut for Locked<'_, 's> {
    fn deref_mut(&mut self) -> &mut LockSet<'s> {
        match self {
            Locked::Own(set) => set,
            Locked::Held(set) => set,
        }
    }
}

/// A shard read by [`Locks::read_key`]: shared with other readers, or
/// (inside EXEC) the transaction's exclusive lock.
pub enum ReadLocked<'b, 's> {
    /// The shard of the one key asked for.
    One(&'s Store, ShardReadGuard<'s, Shard>),
    Many(ReadSet<'s>),
    Held(&'b LockSet<'s>),
}

impl ReadLocked<'_, '_> {
    /// The part of database `db` holding `key` (empty if never created).
    pub fn db(&self, db: usize, key: &[u8]) -> Result<&Db> {
        let (store, shard) = match self {
            ReadLocked::One(store, guard) => (*store, &**guard),
            ReadLocked::Many(set) => (set.store(), set.shard_ref(key)?),
            ReadLocked::Held(set) => (set.store(), set.shard_ref(key)?),
        };
        if db >= store.databases() {
            return Err(Error::db_index_out_of_range());
        }
        Ok(shard.db_ref(db))
    }
}

impl<'c, 's> Locks<'c, 's> {
    pub fn new(store: &'s Store, held: Option<&'c mut LockSet<'s>>) -> Self {
        Locks { store, held }
    }

    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// True inside EXEC, where locks are already held.
    pub fn in_transaction(&self) -> bool {
        self.held.is_some()
    }

    /// Locks the shards of `keys` (ascending order).
    pub fn keys<'b>(&'b mut self, keys: &[&[u8]]) -> Result<Locked<'b, 's>> {
        match &mut self.held {
            Some(held) => {
                if keys.iter().all(|k| held.covers(k)) {
                    Ok(Locked::Held(held))
                } else {
                    Err(Error::err(
                        "internal error: transaction did not lock a key it uses",
                    ))
                }
            }
            None => Ok(Locked::Own(self.store.lock_keys(keys.iter().copied()))),
        }
    }

    /// The shard of one key, to read only: shared with other readers, so
    /// that reads of the same shards from several cores do not contend
    /// (see `store::shard_lock`). For a command that changes nothing but
    /// access statistics.
    pub fn read_key<'b>(&'b self, key: &[u8]) -> Result<ReadLocked<'b, 's>> {
        match &self.held {
            Some(held) if held.covers(key) => Ok(ReadLocked::Held(held)),
            Some(_) => Err(Error::err(
                "internal error: transaction did not lock a key it uses",
            )),
            None => Ok(ReadLocked::One(self.store, self.store.read_key(key))),
        }
    }

    /// The shards of `keys`, to read only, as [`Locks::read_key`].
    pub fn read_keys<'b>(&'b self, keys: &[&[u8]]) -> Result<ReadLocked<'b, 's>> {
        match &self.held {
            Some(held) if keys.iter().all(|k| held.covers(k)) => Ok(ReadLocked::Held(held)),
            Some(_) => Err(Error::err(
                "internal error: transaction did not lock a key it uses",
            )),
            None => Ok(ReadLocked::Many(self.store.read_keys(keys.iter().copied()))),
        }
    }

    /// Locks the shard of one key.
    pub fn key<'b>(&'b mut self, key: &[u8]) -> Result<Locked<'b, 's>> {
        self.keys(&[key])
    }

    /// Runs `f` on every shard in turn, one lock at a time (all of them are
    /// already held inside EXEC).
    pub fn each_shard(
        &mut self,
        mut f: impl FnMut(&mut crate::store::Shard) -> Result<()>,
    ) -> Result<()> {
        for index in 0..self.store.shard_count() {
            let mut locked = self.shard(index)?;
            f(locked.shard(index)?)?;
        }
        Ok(())
    }

    /// Locks every shard at once (inside EXEC: uses the held locks), for
    /// commands that must change the whole keyspace atomically (SWAPDB,
    /// FLUSHDB, FLUSHALL). Keep the work under these locks O(shards).
    pub fn all<'b>(&'b mut self) -> Result<Locked<'b, 's>> {
        match &mut self.held {
            Some(held) if (0..self.store.shard_count()).all(|i| held.covers_shard(i)) => {
                Ok(Locked::Held(held))
            }
            Some(_) => Err(Error::err(
                "internal error: transaction did not lock every shard",
            )),
            None => Ok(Locked::Own(self.store.lock_all())),
        }
    }

    /// Locks shard number `index` (whole-keyspace commands walk the shards
    /// one lock at a time).
    pub fn shard<'b>(&'b mut self, index: usize) -> Result<Locked<'b, 's>> {
        match &mut self.held {
            Some(held) if held.covers_shard(index) => Ok(Locked::Held(held)),
            Some(_) => Err(Error::err(
                "internal error: transaction did not lock a shard it uses",
            )),
            None => Ok(Locked::Own(self.store.lock_shard(index))),
        }
    }
}

/// Everything a handler may use: the server's shared state, this client's
/// session, its reply buffer, and shard locks.
pub struct Ctx<'c, 's> {
    pub shared: &'s Shared,
    pub session: &'c mut Session,
    pub out: &'c mut ReplyBuf,
    pub locks: Locks<'c, 's>,
    /// The time this command runs at (Unix ms), fixed for its whole run as
    /// Redis fixes it, so a command sees one consistent "now".
    pub now_ms: u64,
}

impl<'c, 's> Ctx<'c, 's> {
    /// The selected database.
    pub fn db(&self) -> usize {
        self.session.db
    }

    pub fn store(&self) -> &'s Store {
        self.locks.store
    }

    /// Publishes the keyspace notification `event` of `class` (see
    /// `pubsub::events`) for `key` in the selected database, if
    /// `notify-keyspace-events` enables it (one load otherwise).
    #[inline]
    pub fn notify(&self, class: u32, event: &str, key: &[u8]) {
        self.shared
            .pubsub
            .notify(class, event, key, self.session.db);
    }

    /// [`Ctx::notify`] in database `db` (MOVE, COPY ... DB).
    #[inline]
    pub fn notify_in(&self, db: usize, class: u32, event: &str, key: &[u8]) {
        self.shared.pubsub.notify(class, event, key, db);
    }
}

/// Redis's `%.<max>s` of a client argument: at most `max` bytes, ending at
/// the first NUL byte (the argument is printed as a C string).
fn c_str_prefix(arg: &[u8], max: usize) -> &[u8] {
    let arg = &arg[..arg.len().min(max)];
    arg.iter()
        .position(|&b| b == 0)
        .map_or(arg, |nul| &arg[..nul])
}

/// Redis's message for an unknown command: the name and a preview of the
/// arguments, each quoted, up to about 128 bytes. Raw bytes, as Redis sends
/// them (client input need not be UTF-8).
fn unknown_command_message(argv: &[&[u8]]) -> Vec<u8> {
    let mut message = b"ERR unknown command '".to_vec();
    message.extend_from_slice(c_str_prefix(argv[0], 128));
    message.extend_from_slice(b"', with args beginning with: ");
    let mut preview: Vec<u8> = Vec::new();
    for arg in &argv[1..] {
        if preview.len() >= 128 {
            break;
        }
        preview.push(b'\'');
        preview.extend_from_slice(c_str_prefix(arg, 128 - preview.len() + 1));
        preview.extend_from_slice(b"' ");
    }
    message.extend_from_slice(&preview);
    message
}

/// Redis's message for an unknown subcommand of a container command.
fn unknown_subcommand_message(argv: &[&[u8]]) -> Vec<u8> {
    let mut message = b"ERR unknown subcommand '".to_vec();
    message.extend_from_slice(c_str_prefix(argv[1], 128));
    message.extend_from_slice(b"'. Try ");
    message.extend(c_str_prefix(argv[0], usize::MAX).to_ascii_uppercase());
    message.extend_from_slice(b" HELP.");
    message
}

/// Redis's message for an unknown command (see [`resolve`]).
pub fn unknown_command_error(argv: &[&[u8]]) -> Error {
    Error::raw(String::from_utf8_lossy(&unknown_command_message(argv)).into_owned())
}

/// Finds the command `argv` names, descending into container commands
/// (CLIENT, CONFIG...) for their subcommand, and checks its arity.
pub fn resolve(argv: &[&[u8]]) -> Result<&'static CommandSpec> {
    resolve_raw(argv).map_err(|message| Error::raw(String::from_utf8_lossy(&message).into_owned()))
}

/// Where the keys of a request are among its arguments (none for an
/// unknown command or a wrong arity), and where the member or field it
/// looks up in the first key's value is: what the connection prefetches.
pub fn prefetch_positions(argv: &[&[u8]]) -> (SmallVec<[usize; 4]>, Option<usize>) {
    match resolve_raw(argv) {
        Ok(spec) => {
            let member =
                (spec.member_at > 0 && spec.member_at < argv.len()).then_some(spec.member_at);
            (spec.key_positions(argv), member)
        }
        Err(_) => (SmallVec::new(), None),
    }
}

/// Whether a request must wait for the running script before it runs:
/// it works on a shard the script holds, on the whole keyspace, or on the
/// scripting engine itself (EVAL, SCRIPT, FUNCTION...), or it is EXEC.
/// Others run alongside the script. The connection asks only while a
/// script runs.
pub fn must_wait_for_script(shared: &Shared, argv: &[&[u8]]) -> bool {
    let Ok(spec) = resolve_raw(argv) else {
        return false;
    };
    if spec.has(flags::WHOLE_KEYSPACE) || spec.group == "scripting" || spec.name == "exec" {
        return true;
    }
    let shards: SmallVec<[usize; 4]> = spec
        .key_positions(argv)
        .into_iter()
        .map(|i| shared.store.shard_index(argv[i]))
        .collect();
    !shards.is_empty() && shared.scripting.holds_any(&shards)
}

/// Past the memory ceiling (see `store::evict`): the limits to evict under
/// before `argv` runs, if it may add data. The connection evicts them in
/// slices, letting its thread's other connections run between them, where
/// the command would evict for up to 10 ms in one go.
pub fn must_evict_first(
    shared: &Shared,
    session: &mut Session,
    argv: &[&[u8]],
) -> Option<crate::store::MemoryLimits> {
    let limits = session.hot(shared).memory;
    if !shared.store.past_ceiling(&limits) {
        return None;
    }
    let spec = resolve_raw(argv).ok()?;
    let may_add_data =
        spec.has(flags::DENYOOM) || (spec.name == "exec" && queued_has(session, flags::DENYOOM));
    may_add_data.then_some(limits)
}

/// While CLIENT PAUSE is in force: until when a request must wait, as
/// Redis's processCommand decides: every command under ALL; under WRITE,
/// those that may write or publish (and EXEC of a transaction that queued
/// one). `None`: it runs now.
pub fn paused_until(
    shared: &Shared,
    session: &Session,
    argv: &[&[u8]],
) -> Option<std::time::Instant> {
    let pause = shared.pause.current()?;
    if pause.all {
        return Some(pause.until);
    }
    let spec = resolve_raw(argv).ok()?;
    let writes =
        |flag_holder: &CommandSpec| flag_holder.flags & (flags::WRITE | flags::MAY_REPLICATE) != 0;
    let paused = writes(spec)
        || (spec.name == "exec"
            && (queued_has(session, flags::WRITE) || queued_has(session, flags::MAY_REPLICATE)));
    paused.then_some(pause.until)
}

/// [`resolve`], with the rejection as the exact bytes Redis would send.
fn resolve_raw(argv: &[&[u8]]) -> std::result::Result<&'static CommandSpec, Vec<u8>> {
    let spec = lookup(argv[0]).ok_or_else(|| unknown_command_message(argv))?;
    // A container whose arity allows it alone (COMMAND) runs its own handler.
    if spec.subcommands.is_empty() || (argv.len() == 1 && spec.arity_ok(1)) {
        if !spec.arity_ok(argv.len()) {
            return Err(Error::wrong_arity(spec.name).message().as_bytes().to_vec());
        }
        return Ok(spec);
    }
    let Some(sub_name) = argv.get(1) else {
        return Err(Error::wrong_arity(spec.name).message().as_bytes().to_vec());
    };
    let sub = spec
        .subcommands
        .iter()
        .find(|sub| {
            sub.subcommand_name()
                .as_bytes()
                .eq_ignore_ascii_case(sub_name)
        })
        .ok_or_else(|| unknown_subcommand_message(argv))?;
    if !sub.arity_ok(argv.len()) {
        return Err(Error::wrong_arity(sub.name).message().as_bytes().to_vec());
    }
    Ok(sub)
}

/// Runs one client request: lookup, arity and auth checks, MULTI queueing,
/// then the handler. Every outcome is written to `out` as a reply.
pub fn execute(shared: &Shared, session: &mut Session, out: &mut ReplyBuf, argv: &[&[u8]]) {
    if argv.is_empty() {
        return;
    }
    let reply_start = out.len();
    match check_and_run(shared, session, out, argv) {
        Some(spec) => after_command(shared, session, out, spec, reply_start),
        None => apply_reply_mode(session, out, reply_start, false),
    }
}

/// CLIENT REPLY OFF/SKIP: the command's reply (from `reply_start`) is
/// dropped; `keeps_pushes`: it is a RESP3 push (Redis sends pushes
/// whatever CLIENT REPLY says).
fn apply_reply_mode(
    session: &mut Session,
    out: &mut ReplyBuf,
    reply_start: usize,
    keeps_pushes: bool,
) {
    match session.reply_mode {
        ReplyMode::On => {}
        ReplyMode::Off => {
            if !keeps_pushes {
                out.truncate(reply_start);
            }
        }
        ReplyMode::Skip => {
            if !keeps_pushes {
                out.truncate(reply_start);
            }
            session.reply_mode = ReplyMode::On;
        }
        ReplyMode::SkipNext => session.reply_mode = ReplyMode::Skip,
    }
}

/// [`execute`] up to running the command: every check, then the handler.
/// Returns the command if it ran (or was queued in MULTI).
fn check_and_run(
    shared: &Shared,
    session: &mut Session,
    out: &mut ReplyBuf,
    argv: &[&[u8]],
) -> Option<&'static CommandSpec> {
    shared.stats.commands_processed.add(1);
    let spec = match resolve_raw(argv) {
        Ok(spec) => spec,
        Err(message) => {
            // An arity error is the command's rejection; an unknown
            // command or subcommand is nobody's.
            let refused = rejected_spec(argv);
            reject(shared, session, out, argv[0], refused, &message);
            return None;
        }
    };
    // DEBUG, MODULE LOAD...: refused unless enable-*-command allows them.
    if spec.has(flags::ADMIN) {
        if let Some(refusal) = debug::protected_command_refusal(shared, session, spec) {
            reject(
                shared,
                session,
                out,
                argv[0],
                Some(spec),
                refusal.as_bytes(),
            );
            return None;
        }
    }
    // While a script runs past busy-reply-threshold, only ALLOW_BUSY
    // commands run (SCRIPT KILL, FUNCTION KILL...), as in Redis.
    if let Some(kind) = shared.scripting.busy() {
        if !spec.has(flags::ALLOW_BUSY) {
            let message = match kind {
                crate::scripting::RunKind::Eval => crate::scripting::BUSY_EVAL,
                crate::scripting::RunKind::Function => crate::scripting::BUSY_FUNCTION,
            };
            reject(
                shared,
                session,
                out,
                argv[0],
                Some(spec),
                message.as_bytes(),
            );
            return None;
        }
    }
    if !spec.has(flags::NO_AUTH) && session.requires_auth(shared) {
        reject(
            shared,
            session,
            out,
            argv[0],
            Some(spec),
            Error::no_auth().message().as_bytes(),
        );
        return None;
    }
    // RESP2 has no room for replies between messages: a subscribed
    // client may only (un)subscribe, PING, QUIT and RESET.
    if session.subscriptions.total() > 0
        && !out.is_resp3()
        && !pubsub::allowed_while_subscribed(spec.name)
    {
        let message = pubsub::subscribed_context_error(spec.name);
        reject(
            shared,
            session,
            out,
            argv[0],
            Some(spec),
            message.as_bytes(),
        );
        return None;
    }
    session
        .handle
        .record_command(spec.name, session.last_command, session.last_read);
    session.last_command = spec.name;
    // After recording the command: ACL LOG shows it in the client's info.
    // For an unrestricted user (the default one) this is one branch.
    let hot = session.hot(shared);
    if !hot.acl_open {
        if let Err(denial) = acl::check(&session.user, spec, argv) {
            let context = if session.multi.is_some() {
                acl::Context::Multi
            } else {
                acl::Context::TopLevel
            };
            acl::log_denial(shared, session, spec, argv, denial, context);
            let message = acl::noperm_message(spec, denial);
            reject(
                shared,
                session,
                out,
                argv[0],
                Some(spec),
                message.as_bytes(),
            );
            return None;
        }
    }
    // As Redis's processCommand, for commands that may add data (EXEC too,
    // if it queued some): evict if over maxmemory; if that fails, refuse
    // them. Other commands leave eviction to the background thread (see
    // `store::evict`), so that no read waits for it.
    let limits = hot.memory;
    let may_add_data =
        spec.has(flags::DENYOOM) || (spec.name == "exec" && queued_has(session, flags::DENYOOM));
    let room = if may_add_data {
        shared.store.make_room(&limits)
    } else {
        shared.store.apply_memory_settings(&limits);
        crate::store::Room::Ok
    };
    if room != crate::store::Room::Ok {
        // Memory full of changes PostgreSQL has not confirmed: writes to
        // written-behind keys get the backpressure error, others the OOM.
        if let Some(writebehind) = shared.writebehind.as_deref() {
            if room == crate::store::Room::FullOfUnflushed
                && writebehind::writes_followed_key(writebehind, session, spec, argv)
            {
                let refusal = writebehind.memory_full_refusal();
                reject(
                    shared,
                    session,
                    out,
                    argv[0],
                    Some(spec),
                    refusal.as_bytes(),
                );
                return None;
            }
        }
        let oom = b"OOM command not allowed when used memory > 'maxmemory'.";
        reject(shared, session, out, argv[0], Some(spec), oom);
        return None;
    }
    if let Some(writebehind) = shared.writebehind.as_deref() {
        // While the journal cannot be written (a full disk, a failed
        // fsync), no write command runs, as in Redis when its AOF fails:
        // the journal would not hold it. Reads go on.
        if let Some(misconf) = writebehind.disk_error() {
            if spec.has(flags::WRITE) || (spec.name == "exec" && queued_has(session, flags::WRITE))
            {
                reject(
                    shared,
                    session,
                    out,
                    argv[0],
                    Some(spec),
                    misconf.as_bytes(),
                );
                return None;
            }
        }
        // Backpressure: past write-behind-max-pending, writes to
        // written-behind keys wait for PostgreSQL to catch up.
        if let Some(refusal) = writebehind.backlog_refusal() {
            if writebehind::writes_followed_key(writebehind, session, spec, argv) {
                reject(
                    shared,
                    session,
                    out,
                    argv[0],
                    Some(spec),
                    refusal.as_bytes(),
                );
                return None;
            }
        }
    }
    // As Redis's stop-writes-on-bgsave-error: after a failed background
    // save, with save points configured, writes (and PING) are refused
    // until a save succeeds. One load while saves succeed.
    if shared.persistence.bgsave_failed()
        && (spec.has(flags::WRITE)
            || spec.name == "ping"
            || (spec.name == "exec" && queued_has(session, flags::WRITE)))
    {
        let refuse = {
            let config = shared.config.read();
            !config.save_points.is_empty()
                && config.get("stop-writes-on-bgsave-error").as_deref() != Some("no")
        };
        if refuse {
            reject(
                shared,
                session,
                out,
                argv[0],
                Some(spec),
                crate::persistence::MISCONF.as_bytes(),
            );
            return None;
        }
    }
    // While the dataset loads at start, only commands flagged `loading`
    // run (INFO, CONFIG, CLIENT, SHUTDOWN...), and EXEC only if all it
    // queued are such, as in Redis.
    if shared.persistence.is_loading()
        && (!spec.has(flags::LOADING)
            || (spec.name == "exec" && queued_lacks(session, flags::LOADING)))
    {
        reject(
            shared,
            session,
            out,
            argv[0],
            Some(spec),
            LOADING_ERROR.as_bytes(),
        );
        return None;
    }
    if session.multi.is_some() && spec.has(flags::NO_MULTI) {
        let message = b"ERR Command not allowed inside a transaction";
        reject(shared, session, out, argv[0], Some(spec), message);
        return None;
    }
    if session.multi.is_some() && !transaction::runs_inside_multi(spec) {
        session.queue(argv);
        out.simple("QUEUED");
        return Some(spec);
    }
    // Scripts show in MONITOR before the commands they run, as Redis.
    if spec.has(flags::SKIP_MONITOR) && spec.group == "scripting" && shared.pubsub.has_monitors() {
        shared
            .pubsub
            .feed_monitors(&pubsub::monitor_line(session, argv, false));
    }
    run(shared, session, out, spec, argv, None);
    feed_monitors(shared, session, spec, argv, false);
    Some(spec)
}

/// What follows a client's command (or its queueing in MULTI): CLIENT
/// REPLY applies, CLIENT CACHING's one-command flag expires, and what the command pushed to this very
/// client goes out in Redis's order.
fn after_command(
    shared: &Shared,
    session: &mut Session,
    out: &mut ReplyBuf,
    spec: &CommandSpec,
    reply_start: usize,
) {
    let pushes_only = out.is_resp3() && spec.has(flags::PUBSUB) && spec.name.contains("subscribe");
    apply_reply_mode(session, out, reply_start, pushes_only);
    // As Redis, CLIENT CACHING covers the next command, or the whole
    // transaction, and CLIENT commands in between do not use it up.
    if session.caching && session.multi.is_none() && !spec.name.starts_with("client|") {
        session.caching = false;
    }
    let mailbox = &session.handle.mailbox;
    if mailbox.is_listening() {
        // Messages and notifications the command caused for this client
        // come before its reply, as Redis writes them while the command
        // runs; its own invalidations come after (Redis defers them).
        let (before, after) = mailbox.take_split();
        if !before.is_empty() {
            let reply = out.buffer().split_off(reply_start);
            out.buffer().extend_from_slice(&before);
            out.buffer().extend_from_slice(&reply);
        }
        out.buffer().extend_from_slice(&after);
    }
    // BCAST clients hear of the command's changes once it is done.
    let tracking = &shared.pubsub.tracking;
    if tracking.has_pending_broadcasts() {
        tracking.flush_broadcasts(&shared.pubsub);
        if mailbox.is_listening() {
            mailbox.drain_into(out.buffer());
        }
    }
}

/// Shows a command to MONITOR clients, unless it is one Redis hides
/// (admin commands, and those flagged `skip_monitor`: EVAL, EXEC...).
/// `script`: run by a script (shown as `lua`).
pub fn feed_monitors(
    shared: &Shared,
    session: &Session,
    spec: &CommandSpec,
    argv: &[&[u8]],
    script: bool,
) {
    if shared.pubsub.has_monitors() && spec.flags & (flags::SKIP_MONITOR | flags::ADMIN) == 0 {
        shared
            .pubsub
            .feed_monitors(&pubsub::monitor_line(session, argv, script));
    }
}

/// Runs a blocked client's command again (see `shared::blocking`): right
/// after the client was queued (`woken_by` is `None`), or after a wakeup
/// for the keys `woken_by` lists. It was checked when it first ran, so it
/// is not counted or checked again; it either replies, or leaves a new
/// block request in the session.
pub fn rerun_blocked(
    shared: &Shared,
    session: &mut Session,
    out: &mut ReplyBuf,
    argv: &[&[u8]],
    woken_by: Option<Vec<Vec<u8>>>,
) {
    let Ok(spec) = resolve(argv) else {
        return;
    };
    session.woken_by = woken_by;
    session.rerunning = true;
    run_counted(shared, session, out, spec, argv, None, false);
    session.rerunning = false;
    session.woken_by = None;
    let tracking = &shared.pubsub.tracking;
    if tracking.has_pending_broadcasts() {
        tracking.flush_broadcasts(&shared.pubsub);
    }
}

/// A blocked command ends with the error `message` without running again
/// (CLIENT UNBLOCK ... ERROR): its failed call and the error are counted,
/// as Redis counts them. (Redis 7.0 gives a blocked command that ends
/// without running again, by a timeout or an error, no latency sample and
/// no slow log entry; neither does Larder.)
pub fn blocked_command_failed(shared: &Shared, argv: &[&[u8]], message: &str) {
    if let Ok(spec) = resolve(argv) {
        shared.command_stats.record_failed(stat_slot(spec));
    }
    count_error_reply(shared, message.as_bytes());
}

/// Redis's reply to a command that needs the dataset while it loads.
const LOADING_ERROR: &str = "LOADING Redis is loading the dataset in memory";

/// Whether the open transaction queued a command without flag `flag`.
fn queued_lacks(session: &Session, flag: u32) -> bool {
    queued_any(session, |spec| !spec.has(flag))
}

/// Whether the open transaction queued a command with flag `flag`.
fn queued_has(session: &Session, flag: u32) -> bool {
    queued_any(session, |spec| spec.has(flag))
}

fn queued_any(session: &Session, matches: impl Fn(&CommandSpec) -> bool) -> bool {
    session.multi.as_ref().is_some_and(|multi| {
        multi.queued.iter().any(|command| {
            let argv: SmallVec<[&[u8]; 8]> = command.iter().map(Vec::as_slice).collect();
            !argv.is_empty() && resolve_raw(&argv).is_ok_and(&matches)
        })
    })
}

/// Refuses a command before it runs, as Redis's `rejectCommand` does: the
/// refusal counts as the command's rejected call (`spec`: none for an
/// unknown command) and as an error reply; the open transaction is
/// flagged; and a refused EXEC (wrong arity, not authenticated) discards
/// the transaction and the watches and answers EXECABORT with the reason.
fn reject(
    shared: &Shared,
    session: &mut Session,
    out: &mut ReplyBuf,
    name: &[u8],
    spec: Option<&CommandSpec>,
    message: &[u8],
) {
    session.flag_transaction_error();
    if let Some(spec) = spec {
        shared.command_stats.record_rejected(stat_slot(spec));
    }
    if !name.eq_ignore_ascii_case(b"exec") {
        count_error_reply(shared, message);
        out.error_bytes(message);
        return;
    }
    session.multi = None;
    session.handle.meta.lock().multi = -1;
    transaction::unwatch_all(shared, session, None);
    let reason = message.strip_prefix(b"ERR ").unwrap_or(message);
    let mut text = b"EXECABORT Transaction discarded because of: ".to_vec();
    text.extend_from_slice(reason);
    count_error_reply(shared, &text);
    out.error_bytes(&text);
}

/// The command a refused request counts against: the one named, when only
/// its arity was wrong (a container alone, as `CONFIG`, is itself).
pub(crate) fn rejected_spec(argv: &[&[u8]]) -> Option<&'static CommandSpec> {
    let spec = lookup(argv[0])?;
    if spec.subcommands.is_empty() || argv.len() == 1 {
        return Some(spec);
    }
    spec.subcommands.iter().find(|sub| {
        sub.subcommand_name()
            .as_bytes()
            .eq_ignore_ascii_case(argv[1])
    })
}

/// A command a script called was refused before it ran (see
/// `scripting::ScriptCaller`): counted as `rejectCommand` counts, and
/// remembered so that the script failing with the same error does not
/// count it twice.
pub(crate) fn count_script_refusal(
    shared: &Shared,
    session: &mut Session,
    spec: Option<&CommandSpec>,
    message: &[u8],
) {
    if let Some(spec) = spec {
        shared.command_stats.record_rejected(stat_slot(spec));
    }
    count_error_reply(shared, message);
    session.nested_error = Some(message.to_vec());
}

/// Counts an error reply (`message` without the `-`): in
/// `total_error_replies` and by its code in errorstats, together, so that
/// they agree.
pub fn count_error_reply(shared: &Shared, message: &[u8]) {
    shared
        .stats
        .error_replies
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared.command_stats.record_error(message);
}

/// Each command's slot in `shared::command_stats`, found from the
/// address of its `&'static CommandSpec` (no hashing of the name).
struct StatSlots {
    /// (address, slot), by address.
    by_address: Vec<(usize, usize)>,
    /// Names by slot, in table order.
    names: Vec<&'static str>,
}

fn stat_slots() -> &'static StatSlots {
    static SLOTS: std::sync::OnceLock<StatSlots> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let mut names = Vec::new();
        let mut by_address = Vec::new();
        for spec in all_commands() {
            for spec in std::iter::once(spec).chain(spec.subcommands) {
                by_address.push((spec as *const CommandSpec as usize, names.len()));
                names.push(spec.name);
            }
        }
        by_address.sort_unstable();
        StatSlots { by_address, names }
    })
}

/// `spec`'s slot in the command statistics. Every command run asks, so
/// each thread remembers the slots it found lately (a direct-mapped cache
/// by address: one load instead of a binary search of 400 addresses).
#[inline]
pub fn stat_slot(spec: &CommandSpec) -> usize {
    const WAYS: usize = 64;
    thread_local! {
        static RECENT: [Cell<(usize, usize)>; WAYS] = const { [const { Cell::new((0, 0)) }; WAYS] };
    }
    let address = spec as *const CommandSpec as usize;
    let way = (address / std::mem::size_of::<CommandSpec>()) % WAYS;
    RECENT.with(|recent| {
        let (cached, slot) = recent[way].get();
        if cached == address {
            return slot;
        }
        let slot = find_stat_slot(spec);
        recent[way].set((address, slot));
        slot
    })
}

fn find_stat_slot(spec: &CommandSpec) -> usize {
    let slots = stat_slots();
    let address = spec as *const CommandSpec as usize;
    match slots.by_address.binary_search_by_key(&address, |&(a, _)| a) {
        Ok(found) => slots.by_address[found].1,
        // A copy of a spec (not one from the table): found by name.
        Err(_) => slots
            .names
            .iter()
            .position(|name| *name == spec.name)
            .unwrap_or(shared_stats::MAX_COMMANDS - 1),
    }
}

/// Every command's slot and name, in table order (for INFO and LATENCY).
pub fn stat_names() -> impl Iterator<Item = (usize, &'static str)> {
    stat_slots().names.iter().copied().enumerate()
}

use crate::shared::command_stats as shared_stats;

/// The body of INFO commandstats.
pub fn commandstats_info(shared: &Shared) -> String {
    shared.command_stats.render_commandstats(stat_names())
}

/// The body of INFO errorstats.
pub fn errorstats_info(shared: &Shared) -> String {
    shared.command_stats.render_errorstats()
}

/// The body of INFO latencystats.
pub fn latencystats_info(shared: &Shared) -> String {
    let percentiles = shared
        .config
        .read()
        .latency_tracking_info_percentiles
        .clone();
    shared
        .command_stats
        .render_latencystats(stat_names(), &percentiles)
}

/// Runs a looked-up, checked command (also used by EXEC for queued ones,
/// and by scripts for the commands they call), with Redis's `call()`
/// bookkeeping: commandstats, the latency histogram, the slow log and the
/// latency monitor.
pub fn run<'s>(
    shared: &'s Shared,
    session: &mut Session,
    out: &mut ReplyBuf,
    spec: &CommandSpec,
    argv: &[&[u8]],
    held: Option<&mut LockSet<'s>>,
) {
    run_counted(shared, session, out, spec, argv, held, true);
}

/// [`run`]; `first_run`: false when a blocked command runs again (it was
/// counted as a call when it first ran).
fn run_counted<'s>(
    shared: &'s Shared,
    session: &mut Session,
    out: &mut ReplyBuf,
    spec: &CommandSpec,
    argv: &[&[u8]],
    held: Option<&mut LockSet<'s>>,
    first_run: bool,
) {
    let nested = session.nesting > 0;
    // A command of a run of requests starts where the previous one ended
    // (one clock read per command); nested ones (EXEC's, a script's) read
    // the clock.
    let started = match session.run_clock.take() {
        Some(mark) if !nested => mark,
        _ => std::time::Instant::now(),
    };
    if !nested {
        session.nested_error = None;
        session.in_script = spec.group == "scripting";
    }
    session.nesting += 1;
    let start = out.len();
    {
        let mut ctx = Ctx {
            shared,
            now_ms: session
                .batch_time_ms
                .unwrap_or_else(|| shared.store.now_ms()),
            session: &mut *session,
            out: &mut *out,
            locks: Locks::new(&shared.store, held),
        };
        let outcome = if shared.pubsub.tracking.is_active() {
            if ctx.session.tracking.is_some() {
                remember_read_keys(shared, ctx.session, spec, argv);
            }
            crate::pubsub::as_client(ctx.session.handle.id, || (spec.handler)(&mut ctx, argv))
        } else {
            (spec.handler)(&mut ctx, argv)
        };
        if let Err(error) = outcome {
            // A handler returns its error before writing anything; drop any
            // partial reply anyway so the stream stays well-formed.
            ctx.out.truncate(start);
            ctx.out.error(error.message());
        }
    }
    session.nesting -= 1;
    let ended = std::time::Instant::now();
    if !nested {
        session.run_clock = Some(ended);
    }
    let nanos = ended.saturating_duration_since(started).as_nanos() as u64;
    let failed = out.len() > start && out.buffer()[start] == b'-';
    if failed {
        count_failure(shared, session, out, spec, start, nested);
    }
    let blocked = session.block.is_some();
    let hot = session.hot(shared);
    let slot = stat_slot(spec);
    shared.command_stats.record(
        slot,
        shared_stats::Run {
            call: first_run,
            nanos,
            failed,
            histogram: hot.latency_tracking && !blocked,
        },
    );
    if hot.latency_threshold_ms > 0 {
        let event = if spec.has(flags::FAST) {
            "fast-command"
        } else {
            "command"
        };
        shared
            .store
            .latency()
            .add_sample_if_needed(event, nanos / 1_000_000);
    }
    // A command that blocked is logged when it is served.
    if !blocked {
        log_if_slow(shared, session, spec, argv, nanos / 1000, &hot);
    }
}

/// Redis's `slowlogPushCurrentCommand`: `argv` goes to the slow log if it
/// ran at least `slowlog-log-slower-than` µs (a command a script ran
/// shows as run by Redis's script client).
fn log_if_slow(
    shared: &Shared,
    session: &Session,
    spec: &CommandSpec,
    argv: &[&[u8]],
    micros: u64,
    hot: &HotSettings,
) {
    let nested = session.nesting > 0;
    if hot.slowlog_slower_than >= 0
        && micros >= hot.slowlog_slower_than as u64
        && !spec.has(flags::SKIP_SLOWLOG)
    {
        let (addr, name) = if nested && session.in_script {
            ("?:0".to_string(), String::new())
        } else {
            let name = session.handle.meta.lock().name.clone().unwrap_or_default();
            (
                session.handle.addr.clone(),
                String::from_utf8_lossy(&name).into_owned(),
            )
        };
        let argv = redact_secrets(spec, argv);
        shared
            .slowlog
            .push(&argv, micros, addr, name, hot.slowlog_max_len);
    }
}

/// `argv` with its secrets as `(redacted)`, as Redis shows them in the
/// slow log: AUTH's arguments, ACL SETUSER's, HELLO's AUTH username and password, and
/// the value of a CONFIG SET of `requirepass`.
fn redact_secrets<'a>(spec: &CommandSpec, argv: &[&'a [u8]]) -> SmallVec<[&'a [u8]; 8]> {
    const REDACTED: &[u8] = b"(redacted)";
    let mut shown: SmallVec<[&[u8]; 8]> = argv.iter().copied().collect();
    match spec.name {
        "auth" => shown[1..].fill(REDACTED),
        // The user's name and rules (passwords among them).
        "acl|setuser" => shown[2..].fill(REDACTED),
        "hello" => {
            let mut i = 2;
            while i < shown.len() {
                if shown[i].eq_ignore_ascii_case(b"auth") && i + 2 < shown.len() {
                    shown[i + 1] = REDACTED;
                    shown[i + 2] = REDACTED;
                    i += 3;
                } else {
                    i += 1;
                }
            }
        }
        "config|set" => {
            for pair in shown[2..].chunks_mut(2) {
                if pair.len() == 2 && pair[0].eq_ignore_ascii_case(b"requirepass") {
                    pair[1] = REDACTED;
                }
            }
        }
        _ => {}
    }
    shown
}

/// A command replied an error (from `start` in `out`): its failed call,
/// and the error counted, unless a script only passes on the error of a
/// command it called, counted already (as Redis's
/// `ERR_REPLY_FLAG_NO_STATS_UPDATE`).
fn count_failure(
    shared: &Shared,
    session: &mut Session,
    out: &mut ReplyBuf,
    spec: &CommandSpec,
    start: usize,
    nested: bool,
) {
    let reply = &out.buffer()[start + 1..];
    let line = &reply[..reply
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(reply.len())];
    let passed_on = spec.group == "scripting"
        && session
            .nested_error
            .as_deref()
            .is_some_and(|inner| line.starts_with(inner));
    if !passed_on {
        count_error_reply(shared, line);
    }
    if nested {
        session.nested_error = Some(line.to_vec());
    }
}

/// Client-side caching: the keys a tracking client's read command reads
/// are remembered before it runs (a change between the read and the
/// remembering would otherwise be missed), as Redis's trackingRememberKeys
/// decides: read-only commands (not scripts: the commands they run), in
/// the default and OPTOUT modes unless CLIENT CACHING said otherwise.
fn remember_read_keys(shared: &Shared, session: &Session, spec: &CommandSpec, argv: &[&[u8]]) {
    use crate::pubsub::TrackingMode;
    if !spec.has(flags::READONLY) || spec.group == "scripting" {
        return;
    }
    let wanted = match session.tracking {
        Some(TrackingMode::Default) => true,
        Some(TrackingMode::OptIn) => session.caching,
        Some(TrackingMode::OptOut) => !session.caching,
        Some(TrackingMode::Broadcast) | None => false,
    };
    if !wanted {
        return;
    }
    let keys: SmallVec<[&[u8]; 4]> = spec.key_positions(argv).iter().map(|&i| argv[i]).collect();
    if !keys.is_empty() {
        shared
            .pubsub
            .tracking
            .remember(session.handle.id, &keys, &shared.pubsub);
    }
}

/// Runs long CPU work (KEYS over a big keyspace: it computes, it does not
/// wait) so that it does not hold a runtime worker: inside a
/// multi-threaded tokio runtime under `block_in_place`, which hands the
/// worker's other tasks to another thread meanwhile; elsewhere simply here.
fn off_the_worker<R>(work: impl FnOnce() -> R) -> R {
    let on_worker = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
    });
    if on_worker {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// A HELP reply as Redis formats it: a header line, the given lines, and
/// the closing HELP line, as status strings.
pub fn reply_help(ctx: &mut Ctx, command: &str, lines: &[&str]) {
    ctx.out.array(lines.len() + 3);
    ctx.out.simple(&format!(
        "{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for line in lines {
        ctx.out.simple(line);
    }
    ctx.out.simple("HELP");
    ctx.out.simple("    Prints this help.");
}
