//! Lua scripting: EVAL scripts and FUNCTION libraries, run on one Lua 5.1
//! VM, as Redis embeds it.
//!
//! This floor knows Lua and RESP, not the command table: a script's
//! `redis.call` goes through a [`CommandRunner`] the command layer hands
//! in, which runs the command (under the locks the script holds) and
//! writes its reply into a buffer that [`convert`] turns into Lua values.
//!
//! A script is atomic: the command layer runs it holding the shards it
//! touches. While it runs, connections that need those shards wait
//! asynchronously (see [`Scripting::wait_while_running`] and
//! [`Scripting::holds_any`]); once it has run longer than
//! `busy-reply-threshold` they get BUSY, and SCRIPT KILL / FUNCTION KILL
//! may stop it if it has not written yet.

mod convert;
mod functions;
mod libs;
mod sandbox;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{Function, Lua, Table, Value};
use parking_lot::Mutex;
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;

pub use functions::{FunctionFlags, LibraryInfo, RestorePolicy};

/// Runs the commands a script calls. Implemented by the command layer.
pub trait CommandRunner {
    /// Runs `argv` as a command of the running script and writes its reply
    /// (or the error that refused it) into `out`, in the protocol version
    /// `out` is set to. Returns whether the command was a write.
    fn call(&mut self, argv: &[&[u8]], out: &mut ReplyBuf) -> bool;

    /// Whether `argv` names a command (and subcommand) Larder has
    /// (`redis.acl_check_cmd`).
    fn command_known(&self, argv: &[&[u8]]) -> bool;
}

/// What a script declared in its shebang (`#!lua flags=...`) or a function
/// in `redis.register_function`: Redis's script flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScriptFlags {
    /// Declared flags at all (a script without a shebang runs in Redis 6
    /// compatibility mode: it may write, and OOM is checked per command).
    pub declared: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
    pub allow_stale: bool,
    pub no_cluster: bool,
    pub allow_cross_slot_keys: bool,
}

impl ScriptFlags {
    /// Parses one flag name; `None` for an unknown one.
    fn set(&mut self, name: &[u8]) -> Option<()> {
        match name {
            b"no-writes" => self.no_writes = true,
            b"allow-oom" => self.allow_oom = true,
            b"allow-stale" => self.allow_stale = true,
            b"no-cluster" => self.no_cluster = true,
            b"allow-cross-slot-keys" => self.allow_cross_slot_keys = true,
            _ => return None,
        }
        Some(())
    }

    /// The flag names, as FUNCTION LIST reports them.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for (on, name) in [
            (self.no_writes, "no-writes"),
            (self.allow_oom, "allow-oom"),
            (self.allow_stale, "allow-stale"),
            (self.no_cluster, "no-cluster"),
            (self.allow_cross_slot_keys, "allow-cross-slot-keys"),
        ] {
            if on {
                names.push(name);
            }
        }
        names
    }
}

/// A compiled EVAL script.
#[derive(Clone)]
pub struct Script {
    pub sha: String,
    pub flags: ScriptFlags,
    function: Function,
    body_len: usize,
}

/// What is running, for BUSY replies and the KILL commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Eval,
    Function,
}

/// The state other connections read while a script runs.
struct RunState {
    running: AtomicBool,
    /// Milliseconds since `epoch` when the running script started.
    started_ms: AtomicU64,
    is_function: AtomicBool,
    wrote: AtomicBool,
    kill_requested: AtomicBool,
    /// Whether this run already woke another runtime worker (see
    /// [`RunState::nudge_runtime_if_long`]).
    nudged: AtomicBool,
    busy_threshold_ms: AtomicU64,
    epoch: Instant,
    /// Sent to when a script ends, to wake waiting connections.
    running_tx: tokio::sync::watch::Sender<bool>,
}

impl RunState {
    fn elapsed_ms(&self) -> u64 {
        let now = self.epoch.elapsed().as_millis() as u64;
        now.saturating_sub(self.started_ms.load(Ordering::Relaxed))
    }

    /// A script runs on its connection's runtime worker (handing the
    /// worker off for every script would cost more than most scripts take).
    /// A parked worker does not notice that this one is busy, and may be
    /// parked away from the network (tokio's I/O driver), so that nothing
    /// would read sockets until the script ends. Once a script has run for
    /// a while, an empty task is spawned from another thread: a task
    /// scheduled from outside the runtime always wakes a parked worker,
    /// which then serves the network, so SCRIPT KILL and other clients get
    /// through.
    fn nudge_runtime_if_long(&self) {
        if self.elapsed_ms() < LONG_SCRIPT_MS || self.nudged.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let _ = std::thread::Builder::new()
                .name("larder-script-nudge".into())
                .spawn(move || drop(runtime.spawn(async {})));
        }
    }
}

/// How long a script runs before another runtime worker is woken to serve
/// the network meanwhile.
const LONG_SCRIPT_MS: u64 = 2;

/// The Lua VM and what lives in it, behind one lock (scripts run one at a
/// time, as in Redis).
struct Vm {
    lua: Lua,
    sandbox: sandbox::Sandbox,
    scripts: HashMap<String, Script>,
    /// The scripts EVAL added (not SCRIPT LOAD), with when each was last
    /// used: past [`MAX_EVAL_SCRIPTS`] the least recently used goes, as in
    /// Redis 7.4, so that clients sending ever new script bodies cannot
    /// fill memory. (A use is O(1); finding the oldest, O(500), happens
    /// only when a new script is compiled anyway.)
    eval_scripts: HashMap<String, u64>,
    /// Counts uses of EVAL scripts: their last-use stamps in `eval_scripts`.
    eval_clock: u64,
    /// EVAL scripts dropped from the cache (INFO evicted_scripts).
    evicted_scripts: u64,
    functions: functions::Registry,
}

impl Vm {
    /// Marks an EVAL script as just used (no-op for SCRIPT LOAD'ed ones).
    fn touch_eval_script(&mut self, sha: &str) {
        self.eval_clock += 1;
        let now = self.eval_clock;
        if let Some(used) = self.eval_scripts.get_mut(sha) {
            *used = now;
        }
    }
}

/// The VM, held for one script run (see [`Scripting::enter`]).
pub struct Engine<'a>(parking_lot::MutexGuard<'a, Vm>);

/// The scripting engine: one per server, in `Shared`.
pub struct Scripting {
    vm: Mutex<Vm>,
    state: Arc<RunState>,
    /// (libraries, functions), kept outside the VM's lock: FUNCTION STATS
    /// answers while a function runs.
    stats: Mutex<ScriptStats>,
    /// The shards the running script holds (`None`: all of them), so that
    /// clients working on other shards need not wait for it.
    held_shards: Mutex<Option<Vec<usize>>>,
    /// The running function's name and command (FUNCTION STATS).
    running_function: Mutex<Option<(String, Vec<Vec<u8>>)>>,
}

/// What INFO reports about scripting, kept outside the VM's lock.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScriptStats {
    pub cached_scripts: usize,
    /// Bytes of cached script bodies.
    pub scripts_bytes: usize,
    /// The Lua VM's memory.
    pub lua_memory: usize,
    pub libraries: usize,
    pub functions: usize,
    /// EVAL scripts dropped from the cache past [`MAX_EVAL_SCRIPTS`].
    pub evicted_scripts: u64,
}

/// How many EVAL-loaded scripts stay cached (Redis 7.4's figure).
pub const MAX_EVAL_SCRIPTS: usize = 500;

/// What other clients get while a script is busy.
pub const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// What other clients get while a function is busy.
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// How long to run between checks for SCRIPT KILL (Lua VM instructions).
const KILL_CHECK_INSTRUCTIONS: u32 = 100_000;

/// Redis's default `busy-reply-threshold` (`lua-time-limit`), in ms.
pub const DEFAULT_BUSY_REPLY_THRESHOLD_MS: u64 = 5000;

impl Scripting {
    /// A fresh VM with Redis's sandbox and libraries.
    pub fn new() -> Self {
        let (running_tx, _) = tokio::sync::watch::channel(false);
        let state = Arc::new(RunState {
            running: AtomicBool::new(false),
            started_ms: AtomicU64::new(0),
            is_function: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            kill_requested: AtomicBool::new(false),
            nudged: AtomicBool::new(false),
            busy_threshold_ms: AtomicU64::new(DEFAULT_BUSY_REPLY_THRESHOLD_MS),
            epoch: Instant::now(),
            running_tx,
        });
        let (lua, sandbox) = sandbox::build(state.clone()).expect("the Lua sandbox builds");
        Scripting {
            vm: Mutex::new(Vm {
                lua,
                sandbox,
                scripts: HashMap::new(),
                eval_scripts: HashMap::new(),
                eval_clock: 0,
                evicted_scripts: 0,
                functions: functions::Registry::default(),
            }),
            state,
            stats: Mutex::new(ScriptStats::default()),
            running_function: Mutex::new(None),
            held_shards: Mutex::new(None),
        }
    }

    /// Sets `busy-reply-threshold` (ms).
    pub fn set_busy_threshold_ms(&self, ms: u64) {
        self.state.busy_threshold_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether a script is running now (one relaxed load: the connection
    /// loop checks it before every request).
    #[inline]
    pub fn is_running(&self) -> bool {
        self.state.running.load(Ordering::Relaxed)
    }

    /// The running script, if it has run past `busy-reply-threshold`: other
    /// clients then get BUSY.
    pub fn busy(&self) -> Option<RunKind> {
        if !self.is_running() {
            return None;
        }
        let threshold = self.state.busy_threshold_ms.load(Ordering::Relaxed);
        (self.state.elapsed_ms() >= threshold).then(|| self.running_kind())
    }

    fn running_kind(&self) -> RunKind {
        if self.state.is_function.load(Ordering::Relaxed) {
            RunKind::Function
        } else {
            RunKind::Eval
        }
    }

    /// Waits, without holding a thread, until no script runs or the running
    /// one has become busy (then the caller answers BUSY).
    pub async fn wait_while_running(&self) {
        let mut running = self.state.running_tx.subscribe();
        loop {
            if !self.is_running() || self.busy().is_some() {
                return;
            }
            let threshold = self.state.busy_threshold_ms.load(Ordering::Relaxed);
            let left = threshold.saturating_sub(self.state.elapsed_ms()).max(1);
            tokio::select! {
                _ = running.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(left)) => {}
            }
        }
    }

    /// SCRIPT KILL (`kind` Eval) or FUNCTION KILL (`kind` Function).
    pub fn kill(&self, kind: RunKind) -> Result<()> {
        if !self.is_running() {
            return Err(Error::raw("NOTBUSY No scripts in execution right now."));
        }
        if self.state.wrote.load(Ordering::Relaxed) {
            return Err(Error::raw(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
            ));
        }
        // SCRIPT KILL does not stop a function, nor FUNCTION KILL a script.
        match self.running_kind() {
            running if running == kind => {}
            RunKind::Eval => return Err(Error::raw(BUSY_EVAL)),
            RunKind::Function => return Err(Error::raw(BUSY_FUNCTION)),
        }
        self.state.kill_requested.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The state of `math.random` (to run a script again with the same
    /// numbers).
    pub fn random_state(&self) -> u64 {
        self.vm.lock().sandbox.random_state()
    }

    pub fn set_random_state(&self, state: u64) {
        self.vm.lock().sandbox.set_random_state(state);
    }

    /// Records which shards the running script holds (`None`: all).
    pub fn set_held_shards(&self, shards: Option<Vec<usize>>) {
        *self.held_shards.lock() = shards;
    }

    /// Whether the running script holds any of `shards` (a script that
    /// holds them all, or none running: per `is_running`).
    pub fn holds_any(&self, shards: &[usize]) -> bool {
        match &*self.held_shards.lock() {
            None => true,
            Some(held) => shards.iter().any(|shard| held.contains(shard)),
        }
    }

    /// Stops the running script at its next instruction check, as SCRIPT
    /// KILL does (the command layer runs it again holding every shard).
    pub fn stop_running(&self) {
        self.state.kill_requested.store(true, Ordering::Relaxed);
    }

    /// SHA1 of a script body, as Redis names scripts (lowercase hex).
    pub fn sha1_hex(body: &[u8]) -> String {
        hex(&Sha1::digest(body))
    }

    /// Compiles `body` (if not cached) and returns the script: EVAL
    /// (`from_eval`, the script may be evicted later) and SCRIPT LOAD (it
    /// stays).
    pub fn load(&self, body: &[u8], from_eval: bool) -> Result<Script> {
        let sha = Self::sha1_hex(body);
        let mut vm = self.vm.lock();
        if let Some(script) = vm.scripts.get(&sha).cloned() {
            if from_eval {
                vm.touch_eval_script(&sha);
            } else {
                vm.eval_scripts.remove(&sha);
            }
            return Ok(script);
        }
        let flags = parse_shebang(body)?;
        // The shebang becomes a comment, so that line numbers stay.
        let mut source = body.to_vec();
        if flags.declared {
            source[..2].copy_from_slice(b"--");
        }
        let function = vm
            .sandbox
            .compile(&vm.lua, &source, "@user_script")
            .map_err(|message| {
                Error::raw(format!(
                    "ERR Error compiling script (new function): {message}"
                ))
            })?;
        let script = Script {
            sha: sha.clone(),
            flags,
            function,
            body_len: body.len(),
        };
        vm.scripts.insert(sha.clone(), script.clone());
        if from_eval {
            vm.eval_clock += 1;
            let now = vm.eval_clock;
            vm.eval_scripts.insert(sha, now);
            if vm.eval_scripts.len() > MAX_EVAL_SCRIPTS {
                let oldest = vm
                    .eval_scripts
                    .iter()
                    .min_by_key(|(_, used)| **used)
                    .map(|(sha, _)| sha.clone());
                if let Some(oldest) = oldest {
                    vm.eval_scripts.remove(&oldest);
                    vm.scripts.remove(&oldest);
                    vm.evicted_scripts += 1;
                }
            }
        }
        self.update_stats(&vm);
        Ok(script)
    }

    /// The cached script named `sha` (EVALSHA), case-insensitively.
    pub fn cached(&self, sha: &[u8]) -> Option<Script> {
        if sha.len() != 40 {
            return None;
        }
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        let mut vm = self.vm.lock();
        let script = vm.scripts.get(&sha).cloned()?;
        vm.touch_eval_script(&sha);
        Some(script)
    }

    /// SCRIPT EXISTS of one sha.
    pub fn exists(&self, sha: &[u8]) -> bool {
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        self.vm.lock().scripts.contains_key(&sha)
    }

    /// SCRIPT FLUSH: forgets every script (a fresh VM, as Redis, so that
    /// nothing scripts left behind survives), keeping the function
    /// libraries.
    pub fn flush_scripts(&self) {
        let mut vm = self.vm.lock();
        vm.scripts.clear();
        vm.eval_scripts.clear();
        vm.lua.gc_collect().ok();
        self.update_stats(&vm);
    }

    /// INFO's figures (the last known ones while a script runs).
    pub fn stats(&self) -> ScriptStats {
        *self.stats.lock()
    }

    fn update_stats(&self, vm: &Vm) {
        let (libraries, functions) = vm.functions.counts();
        *self.stats.lock() = ScriptStats {
            cached_scripts: vm.scripts.len(),
            scripts_bytes: vm.scripts.values().map(|s| s.body_len).sum(),
            lua_memory: vm.lua.used_memory(),
            libraries,
            functions,
            evicted_scripts: vm.evicted_scripts,
        };
    }

    /// Takes the VM for a script run. Take it before the script's shard
    /// locks: a client holding shards never waits for the VM then, so a
    /// running script can wait for a shard it did not declare.
    pub fn enter(&self) -> Engine<'_> {
        Engine(self.vm.lock())
    }

    /// Runs a loaded EVAL script with `keys` and `args`, and writes its
    /// result (or error) to `out`.
    pub fn eval(
        &self,
        vm: &Engine<'_>,
        script: &Script,
        keys: &[&[u8]],
        args: &[&[u8]],
        runner: &mut dyn CommandRunner,
        out: &mut ReplyBuf,
    ) {
        let name = script.sha.clone();
        self.run(
            &vm.0,
            RunKind::Eval,
            &script.function,
            &name,
            keys,
            args,
            runner,
            out,
        );
    }

    /// Runs `function` (a script body or a registered function) with every
    /// safeguard: the run state others see, the kill hook, the error
    /// handler.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        vm: &Vm,
        kind: RunKind,
        function: &Function,
        name: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        runner: &mut dyn CommandRunner,
        out: &mut ReplyBuf,
    ) {
        let state = &self.state;
        state.wrote.store(false, Ordering::Relaxed);
        state.kill_requested.store(false, Ordering::Relaxed);
        state.nudged.store(false, Ordering::Relaxed);
        state
            .is_function
            .store(kind == RunKind::Function, Ordering::Relaxed);
        state
            .started_ms
            .store(state.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        state.running.store(true, Ordering::SeqCst);

        let outcome = vm.sandbox.call(&vm.lua, kind, function, keys, args, runner);
        match outcome {
            Ok(value) => convert::lua_to_reply(&value, out, vm.sandbox.script_resp3()),
            Err(failure) => {
                out.error_bytes(&failure.render(name));
            }
        }
        self.stats.lock().lua_memory = vm.lua.used_memory();

        state.running.store(false, Ordering::SeqCst);
        // Wake the connections waiting for this script, if any (they
        // subscribe before they check `running`, so none is missed).
        if state.running_tx.receiver_count() > 0 {
            state.running_tx.send_replace(false);
        }
    }

    /// FUNCTION LOAD: registers the library `code` declares, returns its name.
    pub fn function_load(&self, code: &[u8], replace: bool) -> Result<String> {
        let mut vm = self.vm.lock();
        let vm = &mut *vm;
        let loaded = vm.functions.load(&vm.lua, &vm.sandbox, code, replace);
        self.update_stats(vm);
        loaded
    }

    /// FCALL / FCALL_RO: the function `name`'s flags, or the error for an
    /// unknown one.
    pub fn function_flags(&self, name: &[u8]) -> Result<FunctionFlags> {
        self.vm.lock().functions.flags_of(name)
    }

    /// Runs the function `name` (FCALL) and writes its result to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn fcall(
        &self,
        vm: &Engine<'_>,
        name: &[u8],
        command: &[&[u8]],
        keys: &[&[u8]],
        args: &[&[u8]],
        runner: &mut dyn CommandRunner,
        out: &mut ReplyBuf,
    ) -> Result<()> {
        let vm = &vm.0;
        let (function, function_name) = vm.functions.callable(name)?;
        *self.running_function.lock() = Some((
            function_name.clone(),
            command.iter().map(|arg| arg.to_vec()).collect(),
        ));
        self.run(
            vm,
            RunKind::Function,
            &function,
            &function_name,
            keys,
            args,
            runner,
            out,
        );
        Ok(())
    }

    /// FUNCTION DELETE.
    pub fn function_delete(&self, library: &[u8]) -> Result<()> {
        let mut vm = self.vm.lock();
        let deleted = vm.functions.delete(library);
        self.update_stats(&vm);
        deleted
    }

    /// FUNCTION FLUSH.
    pub fn function_flush(&self) {
        let mut vm = self.vm.lock();
        vm.functions.flush();
        self.update_stats(&vm);
    }

    /// FUNCTION LIST's view of the libraries whose name matches `pattern`.
    pub fn function_list(&self, pattern: Option<&[u8]>) -> Vec<LibraryInfo> {
        self.vm.lock().functions.list(pattern)
    }

    /// FUNCTION DUMP's payload (`compress`: `rdbcompression`).
    pub fn function_dump(&self, compress: bool) -> Vec<u8> {
        self.vm.lock().functions.dump(compress)
    }

    /// FUNCTION RESTORE.
    pub fn function_restore(&self, payload: &[u8], policy: RestorePolicy) -> Result<()> {
        let mut vm = self.vm.lock();
        let vm = &mut *vm;
        let restored = vm.functions.restore(&vm.lua, &vm.sandbox, payload, policy);
        self.update_stats(vm);
        restored
    }

    /// FUNCTION STATS: (libraries, functions).
    pub fn function_counts(&self) -> (usize, usize) {
        let stats = self.stats();
        (stats.libraries, stats.functions)
    }

    /// The running function's name, command and how long it has run (ms),
    /// for FUNCTION STATS.
    pub fn running_function(&self) -> Option<(String, Vec<Vec<u8>>, u64)> {
        if !self.is_running() || self.running_kind() != RunKind::Function {
            return None;
        }
        let (name, command) = self.running_function.lock().clone()?;
        Some((name, command, self.state.elapsed_ms()))
    }
}

impl std::fmt::Debug for Scripting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripting")
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

impl Default for Scripting {
    fn default() -> Self {
        Self::new()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[(byte >> 4) as usize] as char);
        text.push(DIGITS[(byte & 15) as usize] as char);
    }
    text
}

/// The flags of an EVAL script's shebang line (`#!lua flags=a,b`), if it
/// has one, with Redis's errors.
fn parse_shebang(body: &[u8]) -> Result<ScriptFlags> {
    let mut flags = ScriptFlags::default();
    if !body.starts_with(b"#!") {
        return Ok(flags);
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err(Error::err("Invalid script shebang"));
    };
    flags.declared = true;
    let mut parts = body[..end]
        .split(|b| b.is_ascii_whitespace())
        .filter(|part| !part.is_empty());
    let engine = parts.next().unwrap_or(b"");
    if engine != b"#!lua" {
        return Err(Error::raw(format!(
            "ERR Unexpected engine in script shebang: {}",
            String::from_utf8_lossy(engine)
        )));
    }
    for part in parts {
        let Some(list) = part.strip_prefix(b"flags=") else {
            return Err(Error::raw(format!(
                "ERR Unknown lua shebang option: {}",
                String::from_utf8_lossy(part)
            )));
        };
        if list.is_empty() {
            continue;
        }
        for flag in list.split(|&b| b == b',') {
            if flags.set(flag).is_none() {
                return Err(Error::raw(format!(
                    "ERR Unexpected flag in script shebang: {}",
                    String::from_utf8_lossy(flag)
                )));
            }
        }
    }
    Ok(flags)
}

/// Reads a Lua table's string field (`err`, `ok`...).
fn string_field(table: &Table, field: &str) -> Option<Vec<u8>> {
    match table.raw_get::<Value>(field).ok()? {
        Value::String(text) => Some(text.as_bytes().to_vec()),
        _ => None,
    }
}
