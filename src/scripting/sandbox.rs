//! The Lua VM as Redis sets it up: the libraries scripts may use, the
//! `redis` object, read-only globals, and the error handler that gives
//! every failure its `script: <name>, on @user_script:<line>.` suffix.
//!
//! Stock Lua 5.1 has no read-only tables (Redis patched its Lua for them),
//! so scripts see proxies: the globals table and every library table are
//! empty tables whose metatable reads through to the real table and
//! refuses writes; the functions that write past metatables (`rawset`,
//! `setmetatable`, `table.insert`...) refuse them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mlua::chunk::ChunkMode;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use parking_lot::Mutex;

use super::convert;
use super::{CommandRunner, RunKind, RunState};
use crate::protocol::ReplyBuf;
use crate::version::{REDIS_VERSION, REDIS_VERSION_NUM};

/// The chunk name of Larder's own Lua code: frames from it are skipped when
/// an error is located in the user's script.
const PRELUDE_NAME: &str = "=larder";

/// Lua defined once at start-up, with the real globals as its environment:
/// the error handler scripts run under, and `redis.acl_check_cmd`.
const PRELUDE: &str = r#"
local slot, real = ...
local error, type, tostring, xpcall, rawget, getinfo =
      error, type, tostring, xpcall, rawget, debug.getinfo
local PRELUDE = "=larder"

-- The first frame, from `level` up, that is neither C nor Larder's code.
local function where(level)
  while true do
    local info = getinfo(level, 'Sl')
    if not info then return nil end
    -- "=[C]": the Lua glue of the cjson/cmsgpack/bit/struct libraries.
    if info.what ~= 'C' and info.source ~= PRELUDE and info.source ~= '=[C]' then
      return info
    end
    level = level + 1
  end
end

local function handler(err)
  if type(err) == 'userdata' then
    err = slot.describe(err)
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  elseif type(rawget(err, 'err')) ~= 'string' then
    err = {err = 'ERR ' .. tostring(rawget(err, 'err'))}
  end
  local info = where(2)
  if info then
    err.source = info.source
    err.line = info.currentline
  end
  return err
end
real.__redis__err__handler = handler



return function(fn, keys, args)
  if keys then
    return xpcall(function() return fn(keys, args) end, handler)
  end
  return xpcall(fn, handler)
end
"#;

/// `pairs`, `next` and `ipairs` that see through the read-only proxies (as
/// they see Redis's read-only tables); `rawset`, `setmetatable` and the
/// table functions that write raw refuse them, so that no script can leave
/// anything behind for the next; and Redis's `pcall`, which turns an error
/// table into its `err` string (and, like `xpcall`, never swallows the
/// error that stops a killed script).
const ITERATION_AND_PCALL: &str = r#"
local real, proxied, killed = ...
local next, pairs, ipairs, pcall, xpcall, type, rawget, error =
      next, pairs, ipairs, pcall, xpcall, type, rawget, error
real.next = function(t, k) return next(proxied[t] or t, k) end
real.pairs = function(t) return pairs(proxied[t] or t) end
real.ipairs = function(t) return ipairs(proxied[t] or t) end
local function finish(ok, ...)
  if ok then return true, ... end
  local err = ...
  -- A killed script stays killed: no pcall swallows the kill.
  if killed() then error(err, 0) end
  if type(err) == 'table' and type(rawget(err, 'err')) == 'string' then
    return false, rawget(err, 'err')
  end
  return false, err
end
real.pcall = function(...) return finish(pcall(...)) end
local function finish_xpcall(ok, ...)
  if not ok and killed() then error((...), 0) end
  return ok, ...
end
real.xpcall = function(f, handler) return finish_xpcall(xpcall(f, handler)) end
local rawset, setmetatable = rawset, setmetatable
real.setmetatable = function(t, m)
  if proxied[t] then error("Attempt to modify a readonly table", 0) end
  return setmetatable(t, m)
end
real.rawset = function(t, k, v)
  if proxied[t] then error("Attempt to modify a readonly table", 0) end
  return rawset(t, k, v)
end
-- The table functions that write raw (past __newindex) refuse proxies too.
local library, ipairs = proxied[real.table], ipairs
for _, name in ipairs({'insert', 'remove', 'sort'}) do
  local original = library[name]
  library[name] = function(t, ...)
    if proxied[t] then error("Attempt to modify a readonly table", 0) end
    return original(t, ...)
  end
end
-- String methods reach the string library through its proxy.
getmetatable('').__index = real.string
"#;

/// The globals Redis 7.0 gives scripts (besides KEYS and ARGV).
const ALLOWED_GLOBALS: &[&str] = &[
    "_G",
    "_VERSION",
    "__redis__err__handler",
    "assert",
    "bit",
    "cjson",
    "cmsgpack",
    "collectgarbage",
    "coroutine",
    "error",
    "gcinfo",
    "getmetatable",
    "ipairs",
    "load",
    "loadstring",
    "math",
    "next",
    "pairs",
    "pcall",
    "rawequal",
    "rawget",
    "rawset",
    "redis",
    "select",
    "setmetatable",
    "string",
    "struct",
    "table",
    "tonumber",
    "tostring",
    "type",
    "unpack",
    "xpcall",
];

/// The libraries scripts see (as read-only proxies).
const LIBRARIES: &[&str] = &[
    "string",
    "table",
    "math",
    "redis",
    "cjson",
    "bit",
    "struct",
    "cmsgpack",
    "coroutine",
];

/// The registry key of the slot table, where the C functions below find
/// the running script's command runner.
const SLOT_KEY: &std::ffi::CStr = c"larder.script_slot";

/// `redis.acl_check_cmd`: `slot.acl_check(...)`, from C for the same
/// reason as `redis.call`.
unsafe extern "C-unwind" fn redis_acl_check(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    use mlua::ffi;
    let arguments = ffi::lua_gettop(state);
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, SLOT_KEY.as_ptr());
    ffi::lua_getfield(state, -1, c"acl_check".as_ptr());
    ffi::lua_remove(state, -2);
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, arguments, 1);
    1
}

/// Calls `slot.raw(...)`, which answers `ok, reply`; leaves them on the
/// stack. A C function (not Lua) so that `return redis.call(...)` is no
/// tail call that would hide the script's line from error messages, as in
/// Redis, where `redis.call` is C too.
///
/// # Safety
/// Called by Lua with a valid state, as a `lua_CFunction`.
unsafe fn call_raw(state: *mut mlua::ffi::lua_State) {
    use mlua::ffi;
    let arguments = ffi::lua_gettop(state);
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, SLOT_KEY.as_ptr());
    ffi::lua_getfield(state, -1, c"raw".as_ptr());
    ffi::lua_remove(state, -2);
    ffi::lua_insert(state, 1);
    ffi::lua_call(state, arguments, 2);
}

/// `redis.call`: the reply, or the error table raised.
unsafe extern "C-unwind" fn redis_call(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    call_raw(state);
    if mlua::ffi::lua_toboolean(state, -2) == 0 {
        mlua::ffi::lua_error(state);
    }
    1
}

/// `redis.pcall`: the reply, an error table included.
unsafe extern "C-unwind" fn redis_pcall(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    call_raw(state);
    1
}

/// A failed run: the error reply Redis would send, before the script's name
/// is known.
pub struct Failure {
    pub message: Vec<u8>,
    pub source: Option<String>,
    pub line: Option<i64>,
}

impl Failure {
    /// `<message> script: <name>, on <source>:<line>.` as Redis words it.
    pub fn render(&self, name: &str) -> Vec<u8> {
        let mut text: Vec<u8> = self
            .message
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        if let (Some(source), Some(line)) = (&self.source, self.line) {
            text.extend_from_slice(format!(" script: {name}, on {source}:{line}.").as_bytes());
        }
        text
    }
}

/// The handles Larder keeps into the VM.
pub struct Sandbox {
    /// The real globals (scripts see a read-only proxy of them).
    real_globals: Table,
    /// The `redis` object functions see when they run.
    function_redis: Table,
    /// Private to the prelude: `raw` (the running script's command
    /// runner) and `describe`.

    /// The prelude's `run(fn, keys, args)`.
    run: Function,
    /// Whether `redis.call` replies come in RESP3 (`redis.setresp(3)`).
    resp3: Arc<AtomicBool>,
    /// The running script's command runner, for `redis.call`.
    current: Arc<CurrentRunner>,
    /// Redis's rand48 state behind `math.random`.
    rand48: Arc<Mutex<u64>>,
}

/// Builds the VM with Redis's libraries, sandbox and `redis` object.
pub fn build(state: Arc<RunState>) -> mlua::Result<(Lua, Sandbox)> {
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
    // SAFETY: `debug` is loaded only for the prelude's error handler, which
    // keeps `debug.getinfo` in a local; the library itself is removed from
    // the globals below, before any script runs. No C module loader
    // (`package`) is loaded.
    let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::default()) };
    let real = lua.globals();
    super::libs::register_all(&lua)?;

    let resp3 = Arc::new(AtomicBool::new(false));
    // As Redis: one rand48 sequence for the server's life, from rand48's
    // default state, which `math.randomseed` restarts.
    let rand48 = Arc::new(Mutex::new(RAND48_INITIAL_STATE));
    let redis = lua.create_table()?;
    register_redis_object(&lua, &redis, resp3.clone())?;
    real.raw_set("redis", redis)?;
    replace_math_random(&lua, &real, rand48.clone())?;

    let slot = lua.create_table()?;
    lua.set_named_registry_value(SLOT_KEY.to_str().unwrap_or_default(), slot.clone())?;
    let redis: Table = real.raw_get("redis")?;
    // SAFETY: both are `lua_CFunction`s that only use the Lua stack.
    unsafe {
        redis.raw_set("call", lua.create_c_function(redis_call)?)?;
        redis.raw_set("pcall", lua.create_c_function(redis_pcall)?)?;
        redis.raw_set("acl_check_cmd", lua.create_c_function(redis_acl_check)?)?;
    }
    let current = Arc::new(CurrentRunner::default());
    slot.raw_set(
        "raw",
        raw_call_function(&lua, current.clone(), resp3.clone(), state.clone())?,
    )?;
    slot.raw_set("acl_check", acl_check_function(&lua, current.clone())?)?;
    slot.raw_set(
        "describe",
        lua.create_function(|lua, error: Value| {
            let message = match error {
                Value::Error(error) => describe_error(&error),
                other => format!("{other:?}"),
            };
            lua.create_string(message)
        })?,
    )?;
    let run: Function = lua
        .load(PRELUDE)
        .set_name(PRELUDE_NAME)
        .set_mode(ChunkMode::Text)
        .call((slot.clone(), real.clone()))?;

    // Only what Redis 7 leaves scripts (no debug, getfenv, setfenv,
    // newproxy, print, dofile, loadfile).
    let names: Vec<Value> = real
        .pairs::<Value, Value>()
        .filter_map(|pair| pair.ok().map(|(name, _)| name))
        .collect();
    for name in names {
        let keep = matches!(&name, Value::String(text) if ALLOWED_GLOBALS.contains(&&*text.to_string_lossy()));
        if !keep {
            real.raw_set(name, Value::Nil)?;
        }
    }

    // Read-only proxies, then the globals swap: from here on, code loaded
    // sees `proxy_globals`.
    let proxied = lua.create_table()?;
    for name in LIBRARIES {
        let library: Value = real.raw_get(*name)?;
        if let Value::Table(library) = library {
            let proxy = read_only_proxy(&lua, &library, false)?;
            proxied.raw_set(proxy.clone(), library.clone())?;
            real.raw_set(*name, proxy)?;
        }
    }
    // What functions see as `redis` when they run: without the EVAL-only
    // breakpoint, debug and replicate_commands.
    let eval_redis: Table = proxied.raw_get(real.raw_get::<Table>("redis")?)?;
    let runtime_redis = lua.create_table()?;
    for pair in eval_redis.pairs::<Value, Value>() {
        let (key, value) = pair?;
        let eval_only = matches!(&key, Value::String(name)
            if ["breakpoint", "debug", "replicate_commands"].contains(&&*name.to_string_lossy()));
        if !eval_only {
            runtime_redis.raw_set(key, value)?;
        }
    }
    let function_redis = read_only_proxy(&lua, &runtime_redis, false)?;
    proxied.raw_set(function_redis.clone(), runtime_redis)?;
    let proxy_globals = read_only_proxy(&lua, &real, true)?;
    proxied.raw_set(proxy_globals.clone(), real.clone())?;
    let kill_state = state.clone();
    let killed =
        lua.create_function(move |_, ()| Ok(kill_state.kill_requested.load(Ordering::Relaxed)))?;
    lua.load(ITERATION_AND_PCALL)
        .set_name(PRELUDE_NAME)
        .set_mode(ChunkMode::Text)
        .call::<()>((real.clone(), proxied, killed))?;
    real.raw_set("_G", proxy_globals.clone())?;
    lua.set_globals(proxy_globals)?;

    let hook_state = state.clone();
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(super::KILL_CHECK_INSTRUCTIONS),
        move |_lua, _debug| {
            if hook_state.kill_requested.load(Ordering::Relaxed) {
                return Err(mlua::Error::RuntimeError(
                    "Script killed by user with SCRIPT KILL...".into(),
                ));
            }
            hook_state.nudge_runtime_if_long();
            Ok(VmState::Continue)
        },
    )?;

    Ok((
        lua,
        Sandbox {
            real_globals: real,
            function_redis,
            run,
            resp3,
            current,
            rand48,
        },
    ))
}

/// An empty table that reads through to `target` and refuses writes; for
/// the globals, reading a missing name is an error too.
fn read_only_proxy(lua: &Lua, target: &Table, globals: bool) -> mlua::Result<Table> {
    let code = if globals {
        r#"local target, rawget, error, tostring = ...
        return function(_, key)
          local value = rawget(target, key)
          if value == nil then
            error("Script attempted to access nonexistent global variable '" .. tostring(key) .. "'", 2)
          end
          return value
        end"#
    } else {
        r#"local target = ...
        return target"#
    };
    let index: Value = lua.load(code).set_name(PRELUDE_NAME).call((
        target.clone(),
        lua.globals().raw_get::<Value>("rawget")?,
        lua.globals().raw_get::<Value>("error")?,
        lua.globals().raw_get::<Value>("tostring")?,
    ))?;
    let refuse: Function = lua
        .load(
            r#"local error = ...
            return function() error("Attempt to modify a readonly table", 2) end"#,
        )
        .set_name(PRELUDE_NAME)
        .call(lua.globals().raw_get::<Value>("error")?)?;
    let meta = lua.create_table()?;
    meta.raw_set("__index", index)?;
    meta.raw_set("__newindex", refuse)?;
    meta.raw_set("__metatable", false)?;
    let proxy = lua.create_table()?;
    proxy.set_metatable(Some(meta))?;
    Ok(proxy)
}

impl Sandbox {
    /// Compiles a script body (text only: precompiled bytecode can crash
    /// the VM). The error is Lua's message (`user_script:1: ...`).
    pub fn compile(&self, lua: &Lua, body: &[u8], name: &str) -> Result<Function, String> {
        lua.load(body)
            .set_name(name)
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|error| match error {
                mlua::Error::SyntaxError { message, .. } => message,
                other => describe_error(&other),
            })
    }

    pub fn random_state(&self) -> u64 {
        *self.rand48.lock()
    }

    pub fn set_random_state(&self, state: u64) {
        *self.rand48.lock() = state;
    }

    /// Whether the script last chose RESP3 (`redis.setresp(3)`): Redis
    /// converts its booleans by that.
    pub fn script_resp3(&self) -> bool {
        self.resp3.load(Ordering::Relaxed)
    }

    /// The `redis` object functions see when they run.
    pub fn function_redis(&self) -> &Table {
        &self.function_redis
    }

    /// The real globals table (function libraries are loaded against it).
    pub fn real_globals(&self) -> &Table {
        &self.real_globals
    }

    /// Runs `function` as a script (`kind` Eval: KEYS and ARGV as globals;
    /// Function: passed as its two arguments).
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &self,
        lua: &Lua,
        kind: RunKind,
        function: &Function,
        keys: &[&[u8]],
        args: &[&[u8]],
        runner: &mut dyn CommandRunner,
    ) -> Result<Value, Failure> {
        self.resp3.store(false, Ordering::Relaxed);
        let fail = |error: mlua::Error| Failure {
            message: format!("ERR {}", describe_error(&error)).into_bytes(),
            source: None,
            line: None,
        };
        let keys_table = lua
            .create_sequence_from(
                keys.iter()
                    .map(|k| lua.create_string(k))
                    .collect::<mlua::Result<Vec<_>>>()
                    .map_err(fail)?,
            )
            .map_err(fail)?;
        let args_table = lua
            .create_sequence_from(
                args.iter()
                    .map(|a| lua.create_string(a))
                    .collect::<mlua::Result<Vec<_>>>()
                    .map_err(fail)?,
            )
            .map_err(fail)?;
        if kind == RunKind::Eval {
            self.real_globals
                .raw_set("KEYS", keys_table.clone())
                .map_err(fail)?;
            self.real_globals
                .raw_set("ARGV", args_table.clone())
                .map_err(fail)?;
        }
        let outcome = {
            let _running = self.current.enter(runner);
            match kind {
                RunKind::Eval => self.run.call::<(bool, Value)>(function.clone()),
                RunKind::Function => {
                    self.run
                        .call::<(bool, Value)>((function.clone(), keys_table, args_table))
                }
            }
        };
        match outcome {
            Ok((true, value)) => Ok(value),
            Ok((false, Value::Table(error))) => Err(Failure {
                message: super::string_field(&error, "err").unwrap_or_default(),
                source: super::string_field(&error, "source")
                    .map(|s| String::from_utf8_lossy(&s).into_owned()),
                line: error.raw_get::<Option<i64>>("line").ok().flatten(),
            }),
            Ok((false, other)) => Err(Failure {
                message: format!("ERR {other:?}").into_bytes(),
                source: None,
                line: None,
            }),
            Err(error) => Err(fail(error)),
        }
    }
}

/// The command runner of the running script, where the `redis.call`
/// callback (created once, so it cannot borrow it) finds it.
#[derive(Default)]
struct CurrentRunner {
    runner: std::cell::Cell<Option<std::ptr::NonNull<dyn CommandRunner + 'static>>>,
}

// SAFETY: the pointer is set and cleared by `Sandbox::call`, which holds the
// VM's lock, and read only by callbacks that run inside that call, on the
// same thread.
unsafe impl Send for CurrentRunner {}
unsafe impl Sync for CurrentRunner {}

/// Clears the current runner when the script's call ends, however it ends.
struct RunnerGuard<'a>(&'a CurrentRunner);

impl Drop for RunnerGuard<'_> {
    fn drop(&mut self) {
        self.0.runner.set(None);
    }
}

impl CurrentRunner {
    /// Makes `runner` the current one until the guard drops.
    fn enter<'a>(&'a self, runner: &mut dyn CommandRunner) -> RunnerGuard<'a> {
        let pointer = std::ptr::NonNull::from(runner);
        // SAFETY: only the lifetime is erased; the guard clears the pointer
        // before `runner`'s borrow (held by `Sandbox::call`) ends.
        let pointer: std::ptr::NonNull<dyn CommandRunner + 'static> =
            unsafe { std::mem::transmute(pointer) };
        self.runner.set(Some(pointer));
        RunnerGuard(self)
    }

    /// Runs `f` on the current runner, if a script is running.
    fn with<R>(&self, f: impl FnOnce(&mut dyn CommandRunner) -> R) -> Option<R> {
        let mut pointer = self.runner.take()?;
        // SAFETY: set by `enter` from a `&mut` that `Sandbox::call` does not
        // use while the script runs; taken out of the cell meanwhile, so no
        // second reference can be made (scripts cannot nest anyway).
        let result = f(unsafe { pointer.as_mut() });
        self.runner.set(Some(pointer));
        Some(result)
    }
}

/// `slot.raw(...)`: runs a command for `redis.call`/`redis.pcall` and
/// answers `ok, reply`.
fn raw_call_function(
    lua: &Lua,
    current: Arc<CurrentRunner>,
    resp3: Arc<AtomicBool>,
    state: Arc<RunState>,
) -> mlua::Result<Function> {
    let reply = Mutex::new(ReplyBuf::new());
    lua.create_function(move |lua, arguments: MultiValue| {
        if arguments.is_empty() {
            return script_error(
                lua,
                "Please specify at least one argument for this redis lib call",
            );
        }
        let mut strings = Vec::with_capacity(arguments.len());
        let mut numbers: Vec<(usize, Vec<u8>)> = Vec::new();
        for (i, argument) in arguments.iter().enumerate() {
            match argument {
                Value::String(text) => strings.push(Some(text.as_bytes())),
                Value::Integer(n) => {
                    numbers.push((i, n.to_string().into_bytes()));
                    strings.push(None);
                }
                Value::Number(n) => {
                    numbers.push((i, convert::lua_number_text(*n).into_bytes()));
                    strings.push(None);
                }
                _ => {
                    return script_error(
                        lua,
                        "Lua redis lib command arguments must be strings or integers",
                    )
                }
            }
        }
        let mut numbers = numbers.iter().peekable();
        let argv: Vec<&[u8]> = strings
            .iter()
            .enumerate()
            .map(|(i, text)| match text {
                Some(text) => &text[..],
                None => match numbers.next_if(|(at, _)| *at == i) {
                    Some((_, digits)) => digits.as_slice(),
                    None => &[][..],
                },
            })
            .collect();
        let mut out = reply.lock();
        out.truncate(0);
        out.set_resp3(resp3.load(Ordering::Relaxed));
        let Some(wrote) = current.with(|runner| runner.call(&argv, &mut out)) else {
            return script_error(lua, "This Redis command is not allowed from script");
        };
        if wrote {
            state.wrote.store(true, Ordering::Relaxed);
        }
        let parsed = convert::reply_to_lua(lua, out.buffer());
        // Keep the buffer for the next call, unless a huge reply grew it.
        if out.buffer().capacity() > 1 << 20 {
            *out = ReplyBuf::new();
        }
        let (is_error, value) = parsed?;
        Ok((!is_error, value))
    })
}

/// `slot.acl_check(...)`: `redis.acl_check_cmd`.
fn acl_check_function(lua: &Lua, current: Arc<CurrentRunner>) -> mlua::Result<Function> {
    lua.create_function(move |lua, arguments: MultiValue| {
        let mut argv: Vec<Vec<u8>> = Vec::new();
        for argument in arguments.iter() {
            match lua.coerce_string(argument.clone())? {
                Some(text) => argv.push(text.as_bytes().to_vec()),
                None => {
                    return Err(mlua::Error::RuntimeError(
                        "Lua redis lib command arguments must be strings or integers".into(),
                    ))
                }
            }
        }
        if argv.is_empty() {
            return Err(mlua::Error::RuntimeError(
                "Please specify at least one argument for this redis lib call".into(),
            ));
        }
        let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        if current.with(|runner| runner.command_known(&argv)) != Some(true) {
            return Err(mlua::Error::RuntimeError(
                "Invalid command passed to redis.acl_check_cmd()".into(),
            ));
        }
        // No ACL users yet: the default user may run every command.
        Ok(true)
    })
}

/// An error table `{err = message}` returned (not raised) by the raw call:
/// `redis.call` raises it, `redis.pcall` returns it.
fn script_error(lua: &Lua, message: &str) -> mlua::Result<(bool, Value)> {
    let table = lua.create_table()?;
    table.raw_set("err", lua.create_string(error_text(message.as_bytes()))?)?;
    Ok((false, Value::Table(table)))
}

/// An error's text as Redis keeps it in a Lua error table (its
/// `luaPushErrorBuff`): `-CODE message` loses the dash, a message without
/// a code (no dash, or no space after it) gets `ERR`, and the trailing
/// newline goes.
pub fn error_text(buffer: &[u8]) -> Vec<u8> {
    let (code, message): (&[u8], &[u8]) = match buffer.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&b| b == b' ') {
            Some(space) => (&rest[..space], &rest[space + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", buffer),
    };
    let mut message = message;
    while let Some((&last, rest)) = message.split_last() {
        if last == b'\r' || last == b'\n' {
            message = rest;
        } else {
            break;
        }
    }
    while let Some((&first, rest)) = message.split_first() {
        if first == b'\r' || first == b'\n' {
            message = rest;
        } else {
            break;
        }
    }
    let mut text = code.to_vec();
    text.push(b' ');
    text.extend_from_slice(message);
    text
}

/// What `redis.error_reply` and `redis.status_reply` return (not raise)
/// for bad arguments, as Redis does.
fn wrong_arguments_table(lua: &Lua) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set("err", "ERR wrong number or type of arguments")?;
    Ok(table)
}

/// The message of an error raised in Lua or in Rust code called from it,
/// without the traceback mlua appends.
pub fn describe_error(error: &mlua::Error) -> String {
    match error {
        mlua::Error::RuntimeError(message) => message
            .split_once("\nstack traceback:")
            .map_or(message.as_str(), |(message, _)| message)
            .to_string(),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::CallbackError { cause, .. } => describe_error(cause),
        mlua::Error::MemoryError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// The `redis` object's functions that need no command runner.
fn register_redis_object(lua: &Lua, redis: &Table, resp3: Arc<AtomicBool>) -> mlua::Result<()> {
    redis.raw_set(
        "sha1hex",
        lua.create_function(|lua, arguments: MultiValue| {
            if arguments.len() != 1 {
                return Err(mlua::Error::RuntimeError(
                    "wrong number of arguments".into(),
                ));
            }
            // As Redis: what is not a string or number hashes as "".
            let text = match &arguments[0] {
                Value::String(text) => text.as_bytes().to_vec(),
                Value::Integer(n) => n.to_string().into_bytes(),
                Value::Number(n) => super::convert::lua_number_text(*n).into_bytes(),
                _ => Vec::new(),
            };
            lua.create_string(super::Scripting::sha1_hex(&text))
        })?,
    )?;
    redis.raw_set(
        "error_reply",
        lua.create_function(|lua, arguments: MultiValue| {
            let arguments: Vec<Value> = arguments.into_iter().collect();
            let [Value::String(text)] = arguments.as_slice() else {
                return wrong_arguments_table(lua);
            };
            let table = lua.create_table()?;
            let text = text.as_bytes();
            let mut buffer = Vec::with_capacity(text.len() + 1);
            if !text.starts_with(b"-") {
                buffer.push(b'-');
            }
            buffer.extend_from_slice(&text);
            table.raw_set("err", lua.create_string(error_text(&buffer))?)?;
            Ok(table)
        })?,
    )?;
    redis.raw_set(
        "status_reply",
        lua.create_function(|lua, arguments: MultiValue| {
            let arguments: Vec<Value> = arguments.into_iter().collect();
            let [Value::String(text)] = arguments.as_slice() else {
                return wrong_arguments_table(lua);
            };
            let table = lua.create_table()?;
            table.raw_set("ok", text.clone())?;
            Ok(table)
        })?,
    )?;
    redis.raw_set(
        "log",
        lua.create_function(|lua, arguments: MultiValue| {
            if arguments.len() < 2 {
                return Err(mlua::Error::RuntimeError(
                    "redis.log() requires two arguments or more.".into(),
                ));
            }
            let level = match &arguments[0] {
                Value::Integer(n) => *n,
                Value::Number(n) => *n as i64,
                _ => {
                    return Err(mlua::Error::RuntimeError(
                        "First argument must be a number (log level).".into(),
                    ))
                }
            };
            if !(0..=3).contains(&level) {
                return Err(mlua::Error::RuntimeError("Invalid debug level.".into()));
            }
            let mut message = Vec::new();
            for (i, part) in arguments.iter().skip(1).enumerate() {
                if i > 0 {
                    message.push(b' ');
                }
                if let Some(text) = lua.coerce_string(part.clone())? {
                    message.extend_from_slice(&text.as_bytes());
                }
            }
            let message = String::from_utf8_lossy(&message);
            match level {
                // Redis's levels as `config::logging` maps them.
                0 => tracing::trace!(target: "larder::script", "{message}"),
                1 => tracing::debug!(target: "larder::script", "{message}"),
                2 => tracing::info!(target: "larder::script", "{message}"),
                _ => tracing::warn!(target: "larder::script", "{message}"),
            }
            Ok(())
        })?,
    )?;
    for (name, value) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.raw_set(name, value)?;
    }
    redis.raw_set(
        "setresp",
        lua.create_function(move |_, arguments: MultiValue| {
            if arguments.len() != 1 {
                return Err(mlua::Error::RuntimeError(
                    "redis.setresp() requires one argument.".into(),
                ));
            }
            let version = match &arguments[0] {
                Value::Integer(n) => *n,
                Value::Number(n) => *n as i64,
                _ => 0,
            };
            if version != 2 && version != 3 {
                return Err(mlua::Error::RuntimeError(
                    "RESP version must be 2 or 3.".into(),
                ));
            }
            resp3.store(version == 3, Ordering::Relaxed);
            Ok(())
        })?,
    )?;
    redis.raw_set(
        "set_repl",
        lua.create_function(|_, arguments: MultiValue| {
            if arguments.len() != 1 {
                return Err(mlua::Error::RuntimeError(
                    "redis.set_repl() requires two arguments.".into(),
                ));
            }
            let flags = match &arguments[0] {
                Value::Integer(n) => *n,
                Value::Number(n) => *n as i64,
                _ => -1,
            };
            if !(0..=3).contains(&flags) {
                return Err(mlua::Error::RuntimeError(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."
                        .into(),
                ));
            }
            Ok(())
        })?,
    )?;
    redis.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    redis.raw_set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    redis.raw_set("REDIS_VERSION", REDIS_VERSION)?;
    redis.raw_set("REDIS_VERSION_NUM", REDIS_VERSION_NUM)?;
    Ok(())
}

/// rand48's state before any seeding (Redis never seeds it at start).
const RAND48_INITIAL_STATE: u64 = 0x1234_ABCD_330E;

/// Redis's `redisSrand48`: the 48-bit state for a seed.
fn rand48_seed(seed: u32) -> u64 {
    ((seed as u64) << 16) | 0x330E
}

/// Redis's `redisLrand48`: the next 31-bit number.
fn rand48_next(state: &mut u64) -> i64 {
    *state = (state.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & ((1 << 48) - 1);
    (*state >> 17) as i64
}

/// `math.random` and `math.randomseed` on Redis's rand48, so that scripts
/// get the numbers they get in Redis.
/// An error as a C library function raises it with `luaL_error`: with the
/// calling Lua code's position in front (`user_script:1: ...`).
fn c_library_error(lua: &Lua, message: &str) -> mlua::Error {
    let position = lua
        .inspect_stack(1, |debug| {
            let line = debug.current_line()?;
            let source = debug.source();
            let short = source.short_src.as_deref()?.to_string();
            Some(format!("{short}:{line}: "))
        })
        .flatten()
        .unwrap_or_default();
    mlua::Error::RuntimeError(format!("{position}{message}"))
}

fn replace_math_random(lua: &Lua, globals: &Table, state: Arc<Mutex<u64>>) -> mlua::Result<()> {
    let math: Table = globals.raw_get("math")?;
    let random_state = state.clone();
    math.raw_set(
        "random",
        lua.create_function(move |lua, arguments: MultiValue| {
            const MAX: i64 = i32::MAX as i64;
            let r = (rand48_next(&mut random_state.lock()) % MAX) as f64 / MAX as f64;
            let number = |value: &Value| match value {
                Value::Integer(n) => Ok(*n as f64),
                Value::Number(n) => Ok(*n),
                _ => Err(c_library_error(
                    lua,
                    "bad argument to 'random' (number expected)",
                )),
            };
            match arguments.len() {
                0 => Ok(Value::Number(r)),
                1 => {
                    let upper = number(&arguments[0])?.floor();
                    if upper < 1.0 {
                        return Err(c_library_error(
                            lua,
                            "bad argument #1 to 'random' (interval is empty)",
                        ));
                    }
                    Ok(Value::Number((r * upper).floor() + 1.0))
                }
                2 => {
                    let lower = number(&arguments[0])?.floor();
                    let upper = number(&arguments[1])?.floor();
                    if lower > upper {
                        return Err(c_library_error(
                            lua,
                            "bad argument #2 to 'random' (interval is empty)",
                        ));
                    }
                    Ok(Value::Number((r * (upper - lower + 1.0)).floor() + lower))
                }
                _ => Err(mlua::Error::RuntimeError(
                    "wrong number of arguments".into(),
                )),
            }
        })?,
    )?;
    math.raw_set(
        "randomseed",
        lua.create_function(move |_, seed: Value| {
            let seed = match seed {
                Value::Integer(n) => n,
                Value::Number(n) => n as i64,
                _ => 0,
            };
            *state.lock() = rand48_seed(seed as u32);
            Ok(())
        })?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand48_matches_the_c_library_sequence() {
        // lrand48() after srand48(0), as glibc (and Redis's copy) give it.
        let mut state = rand48_seed(0);
        let first: Vec<i64> = (0..3).map(|_| rand48_next(&mut state)).collect();
        assert_eq!(first, vec![366850414, 1610402240, 206956554]);
    }
}
