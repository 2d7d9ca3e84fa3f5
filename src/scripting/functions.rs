//! Redis 7 functions: libraries loaded with FUNCTION LOAD (`#!lua
//! name=<lib>`), whose code registers named functions with
//! `redis.register_function`, called by FCALL.
//!
//! Each library gets its own environment table: while its code loads, its
//! `redis` is the load-time API (register_function, log, setresp and the
//! constants, no `call`); afterwards the same environment reads through to
//! the full globals, so the registered callbacks see `redis.call`.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, MultiValue, Table, Value};
use parking_lot::Mutex;

use super::sandbox::Sandbox;
use super::ScriptFlags;
use crate::error::{Error, Result};

/// A function's flags and the library it is in (FCALL's checks).
pub type FunctionFlags = ScriptFlags;

/// What FUNCTION RESTORE does with libraries that already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    Append,
    Replace,
    Flush,
}

/// One registered function.
#[derive(Clone)]
struct RegisteredFunction {
    name: String,
    callback: Function,
    flags: ScriptFlags,
    description: Option<Vec<u8>>,
}

struct Library {
    code: Vec<u8>,
    functions: Vec<RegisteredFunction>,
}

/// FUNCTION LIST's view of one function: name, description, flags.
pub type FunctionInfo = (String, Option<Vec<u8>>, Vec<&'static str>);

/// FUNCTION LIST's view of one library.
pub struct LibraryInfo {
    pub name: String,
    pub code: Vec<u8>,
    /// (name, description, flags) of each function, by name.
    pub functions: Vec<FunctionInfo>,
}

/// The loaded libraries, by name.
#[derive(Default)]
pub struct Registry {
    libraries: BTreeMap<String, Library>,
}

/// Redis's rule for library and function names.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The library name of `#!lua name=<lib>` (and the other metadata checks).
fn library_name(code: &[u8]) -> Result<String> {
    let Some(rest) = code.strip_prefix(b"#!") else {
        return Err(Error::err("Missing library metadata"));
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or(b"");
    if !engine.eq_ignore_ascii_case(b"lua") {
        return Err(Error::raw(format!(
            "ERR Engine '{}' not found",
            String::from_utf8_lossy(engine)
        )));
    }
    let mut name = None;
    for part in parts {
        match part.strip_prefix(b"name=") {
            Some(value) if name.is_none() => name = Some(value),
            Some(_) => {
                return Err(Error::err(
                    "Invalid metadata value, name argument was given multiple times",
                ))
            }
            None => {
                return Err(Error::raw(format!(
                    "ERR Invalid metadata value given: {}",
                    String::from_utf8_lossy(part)
                )))
            }
        }
    }
    let Some(name) = name else {
        return Err(Error::err("Library name was not given"));
    };
    if !valid_name(name) {
        return Err(Error::err(
            "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ));
    }
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// The functions a library's code registers while it loads.
type Collected = Arc<Mutex<Vec<RegisteredFunction>>>;

fn runtime(message: &str) -> mlua::Error {
    mlua::Error::RuntimeError(message.into())
}

/// `redis.register_function(name, callback)` or
/// `redis.register_function{function_name=, callback=, flags=, description=}`.
fn register_function(collected: &Collected, arguments: MultiValue) -> mlua::Result<()> {
    let arguments: Vec<Value> = arguments.into_iter().collect();
    let function = match arguments.as_slice() {
        [Value::Table(named)] => {
            let mut name = None;
            let mut callback = None;
            let mut flags = ScriptFlags {
                declared: true,
                ..ScriptFlags::default()
            };
            let mut description = None;
            for pair in named.pairs::<Value, Value>() {
                let (key, value) = pair?;
                let Value::String(key) = key else {
                    return Err(runtime("named argument key given to redis.register_function is not a string"));
                };
                match (&*key.as_bytes(), value) {
                    (b"function_name", Value::Integer(n)) => name = Some(n.to_string().into_bytes()),
                    (b"function_name", Value::Number(n)) => {
                        name = Some(super::convert::lua_number_text(n).into_bytes())
                    }
                    (b"function_name", Value::String(text)) => {
                        name = Some(text.as_bytes().to_vec())
                    }
                    (b"function_name", _) => {
                        return Err(runtime("function_name argument given to redis.register_function must be a string"))
                    }
                    (b"callback", Value::Function(f)) => callback = Some(f),
                    (b"callback", _) => {
                        return Err(runtime("callback argument given to redis.register_function must be a function"))
                    }
                    (b"description", Value::Integer(n)) => {
                        description = Some(n.to_string().into_bytes())
                    }
                    (b"description", Value::Number(n)) => {
                        description = Some(super::convert::lua_number_text(n).into_bytes())
                    }
                    (b"description", Value::String(text)) => {
                        description = Some(text.as_bytes().to_vec())
                    }
                    (b"description", _) => {
                        return Err(runtime("description argument given to redis.register_function must be a string"))
                    }
                    (b"flags", Value::Table(list)) => {
                        for flag in list.sequence_values::<Value>() {
                            let Value::String(flag) = flag? else {
                                return Err(runtime("unknown flag given"));
                            };
                            if flags.set(&flag.as_bytes()).is_none() {
                                return Err(runtime("unknown flag given"));
                            }
                        }
                    }
                    (b"flags", _) => {
                        return Err(runtime("flags argument to redis.register_function must be a table representing function flags"))
                    }
                    _ => {
                        return Err(runtime("unknown argument given to redis.register_function"))
                    }
                }
            }
            let name = name.ok_or_else(|| runtime("redis.register_function must get a function name argument"))?;
            let callback = callback.ok_or_else(|| runtime("redis.register_function must get a callback argument"))?;
            (name, callback, flags, description)
        }
        [_] => {
            return Err(runtime("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."))
        }
        [Value::String(name), Value::Function(callback)] => (
            name.as_bytes().to_vec(),
            callback.clone(),
            ScriptFlags {
                declared: true,
                ..ScriptFlags::default()
            },
            None,
        ),
        [Value::String(_), _] => {
            return Err(runtime("second argument to redis.register_function must be a function"))
        }
        [_, _] => {
            return Err(runtime("first argument to redis.register_function must be a string"))
        }
        _ => return Err(runtime("wrong number of arguments to redis.register_function")),
    };
    let (name, callback, flags, description) = function;
    if !valid_name(&name) {
        return Err(runtime("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"));
    }
    let name = String::from_utf8_lossy(&name).into_owned();
    let mut collected = collected.lock();
    if collected.iter().any(|f| f.name == name) {
        return Err(runtime("Function already exists in the library"));
    }
    collected.push(RegisteredFunction {
        name,
        callback,
        flags,
        description,
    });
    Ok(())
}

impl Registry {
    /// Loads (compiles and runs) a library's code and returns its name and
    /// functions, without registering it.
    fn compile(&self, lua: &Lua, sandbox: &Sandbox, code: &[u8]) -> Result<(String, Library)> {
        let name = library_name(code)?;
        let collected: Collected = Arc::new(Mutex::new(Vec::new()));
        let lua_error = |error: mlua::Error| {
            Error::raw(format!(
                "ERR Error registering functions: ERR {}",
                describe(&error)
            ))
        };
        let setup = || -> mlua::Result<(Table, Table, Function)> {
            let real = sandbox.real_globals();
            let load_api = lua.create_table()?;
            let full_redis: Table = real.raw_get("redis")?;
            for field in [
                "log",
                "REDIS_VERSION",
                "REDIS_VERSION_NUM",
                "LOG_DEBUG",
                "LOG_VERBOSE",
                "LOG_NOTICE",
                "LOG_WARNING",
            ] {
                load_api.raw_set(field, full_redis.get::<Value>(field)?)?;
            }
            let sink = collected.clone();
            load_api.raw_set(
                "register_function",
                lua.create_function(move |_, arguments: MultiValue| {
                    register_function(&sink, arguments)
                })?,
            )?;
            let make_env: Function = lua
                .load(LIBRARY_ENV)
                .set_name("=larder")
                .set_mode(ChunkMode::Text)
                .into_function()?;
            let (env, finish): (Table, Function) = make_env.call((
                real.clone(),
                load_api.clone(),
                sandbox.function_redis().clone(),
            ))?;
            Ok((env, load_api, finish))
        };
        let (env, _load_api, finish) = setup().map_err(lua_error)?;
        // The metadata line becomes a comment, so that line numbers stay.
        let mut source = code.to_vec();
        source[..2].copy_from_slice(b"--");
        let chunk = lua
            .load(source)
            .set_name("@user_function")
            .set_mode(ChunkMode::Text)
            .set_environment(env)
            .into_function()
            .map_err(|error| {
                Error::raw(format!(
                    "ERR Error compiling function: {}",
                    describe(&error)
                ))
            })?;
        chunk.call::<()>(()).map_err(lua_error)?;
        finish.call::<()>(()).map_err(lua_error)?;
        let functions = std::mem::take(&mut *collected.lock());
        if functions.is_empty() {
            return Err(Error::err("No functions registered"));
        }
        Ok((
            name,
            Library {
                code: code.to_vec(),
                functions,
            },
        ))
    }

    /// Checks that none of `library`'s functions exists in another library
    /// than `except`.
    fn check_collisions(&self, library: &Library, except: Option<&str>) -> Result<()> {
        for function in &library.functions {
            for (other_name, other) in &self.libraries {
                if Some(other_name.as_str()) == except {
                    continue;
                }
                if other.functions.iter().any(|f| f.name == function.name) {
                    return Err(Error::raw(format!(
                        "ERR Function {} already exists",
                        function.name
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn load(
        &mut self,
        lua: &Lua,
        sandbox: &Sandbox,
        code: &[u8],
        replace: bool,
    ) -> Result<String> {
        let name = library_name(code)?;
        if self.libraries.contains_key(&name) && !replace {
            return Err(Error::raw(format!("ERR Library '{name}' already exists")));
        }
        let (name, library) = self.compile(lua, sandbox, code)?;
        self.check_collisions(&library, Some(&name))?;
        self.libraries.insert(name.clone(), library);
        Ok(name)
    }

    fn find(&self, name: &[u8]) -> Option<&RegisteredFunction> {
        self.libraries
            .values()
            .flat_map(|library| &library.functions)
            .find(|f| f.name.as_bytes() == name)
    }

    pub fn flags_of(&self, name: &[u8]) -> Result<ScriptFlags> {
        self.find(name)
            .map(|f| f.flags)
            .ok_or_else(|| Error::err("Function not found"))
    }

    pub fn callable(&self, name: &[u8]) -> Result<(Function, String)> {
        self.find(name)
            .map(|f| (f.callback.clone(), f.name.clone()))
            .ok_or_else(|| Error::err("Function not found"))
    }

    pub fn delete(&mut self, library: &[u8]) -> Result<()> {
        let name = String::from_utf8_lossy(library).into_owned();
        self.libraries
            .remove(&name)
            .map(|_| ())
            .ok_or_else(|| Error::err("Library not found"))
    }

    pub fn flush(&mut self) {
        self.libraries.clear();
    }

    pub fn counts(&self) -> (usize, usize) {
        let functions = self.libraries.values().map(|l| l.functions.len()).sum();
        (self.libraries.len(), functions)
    }

    pub fn list(&self, pattern: Option<&[u8]>) -> Vec<LibraryInfo> {
        self.libraries
            .iter()
            .filter(|(name, _)| {
                pattern.is_none_or(|p| crate::glob::glob_match(p, name.as_bytes(), true))
            })
            .map(|(name, library)| {
                let mut functions: Vec<_> = library
                    .functions
                    .iter()
                    .map(|f| (f.name.clone(), f.description.clone(), f.flags.names()))
                    .collect();
                functions.sort_by(|a, b| a.0.cmp(&b.0));
                LibraryInfo {
                    name: name.clone(),
                    code: library.code.clone(),
                    functions,
                }
            })
            .collect()
    }

    /// FUNCTION DUMP: every library's code as Redis serializes it (RDB
    /// function records, the RDB version, a CRC64).
    pub fn dump(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        for library in self.libraries.values() {
            payload.push(RDB_OPCODE_FUNCTION2);
            rdb_write_string(&mut payload, &library.code);
        }
        payload.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crate::rdb::crc64(0, &payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        payload
    }

    pub fn restore(
        &mut self,
        lua: &Lua,
        sandbox: &Sandbox,
        payload: &[u8],
        policy: RestorePolicy,
    ) -> Result<()> {
        let bad = || Error::err("DUMP payload version or checksum are wrong");
        if payload.len() < 10 {
            return Err(bad());
        }
        let (body, footer) = payload.split_at(payload.len() - 10);
        let version = u16::from_le_bytes([footer[0], footer[1]]);
        let crc = u64::from_le_bytes(footer[2..10].try_into().map_err(|_| bad())?);
        if version > RDB_VERSION
            || (crc != 0 && crate::rdb::crc64(0, &payload[..payload.len() - 8]) != crc)
        {
            return Err(bad());
        }
        let mut codes = Vec::new();
        let mut at = 0;
        while at < body.len() {
            match body[at] {
                RDB_OPCODE_FUNCTION2 => {}
                RDB_OPCODE_FUNCTION_PRE_GA => return Err(Error::err("Failed loading engine name")),
                _ => return Err(Error::err("given type is not a function")),
            }
            at += 1;
            let code = rdb_read_string(body, &mut at)
                .ok_or_else(|| Error::err("payload version or checksum are wrong"))?;
            codes.push(code);
        }
        // Compile everything first: a bad library restores nothing.
        let mut loaded: Vec<(String, Library)> = Vec::new();
        for code in &codes {
            let (name, library) = self.compile(lua, sandbox, code)?;
            if loaded.iter().any(|(other, _)| *other == name) {
                return Err(Error::raw(format!("ERR Library '{name}' already exists")));
            }
            loaded.push((name, library));
        }
        let mut next = match policy {
            RestorePolicy::Flush => BTreeMap::new(),
            _ => std::mem::take(&mut self.libraries),
        };
        let previous = if policy == RestorePolicy::Flush {
            std::mem::take(&mut self.libraries)
        } else {
            BTreeMap::new()
        };
        for (name, library) in loaded {
            if next.contains_key(&name) && policy == RestorePolicy::Append {
                let error = Error::raw(format!("ERR Library {name} already exists"));
                self.libraries = if policy == RestorePolicy::Flush {
                    previous
                } else {
                    next
                };
                return Err(error);
            }
            next.insert(name, library);
        }
        // No function name may appear twice.
        let mut seen = std::collections::HashSet::new();
        for library in next.values() {
            for function in &library.functions {
                if !seen.insert(function.name.clone()) {
                    let error =
                        Error::raw(format!("ERR Function {} already exists", function.name));
                    if policy == RestorePolicy::Flush {
                        self.libraries = previous;
                    } else {
                        // Put back what was there before the restore.
                        self.libraries = next
                            .into_iter()
                            .filter(|(n, _)| {
                                !codes
                                    .iter()
                                    .any(|c| library_name(c).ok().as_deref() == Some(n.as_str()))
                            })
                            .collect();
                    }
                    return Err(error);
                }
            }
        }
        self.libraries = next;
        Ok(())
    }
}

/// Lua that builds a library's environment: during load, `redis` is the
/// load-time API; `finish()` switches it to the full globals.
const LIBRARY_ENV: &str = r#"
local real, load_api, function_redis = ...
local rawget, error, tostring, setmetatable = rawget, error, tostring, setmetatable
local loading = true
local env = {}
local function missing(key)
  error("Script attempted to access nonexistent global variable '" .. tostring(key) .. "'", 3)
end
-- While loading, only `redis` (the load-time API) exists.
setmetatable(load_api, {
  __index = function(_, key) missing(key) end,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
  __metatable = false,
})
local function lookup(_, key)
  local value
  if loading then
    if key == 'redis' then value = load_api end
  elseif key == 'redis' then
    value = function_redis
  elseif key ~= 'KEYS' and key ~= 'ARGV' then
    value = rawget(real, key)
  end
  if value == nil then missing(key) end
  return value
end
setmetatable(env, {
  __index = lookup,
  __newindex = function() error("Attempt to modify a readonly table", 2) end,
  __metatable = false,
})
return env, function() loading = false end
"#;

fn describe(error: &mlua::Error) -> String {
    super::sandbox::describe_error(error)
}

/// The RDB opcode of a function library record (Redis 7.0).
const RDB_OPCODE_FUNCTION2: u8 = 245;
/// The record of Redis 7.0's release candidates, which Redis refuses.
const RDB_OPCODE_FUNCTION_PRE_GA: u8 = 246;
/// The RDB version Redis 7.0 writes (Redis 7.0 refuses payloads of newer
/// versions, so Larder writes the oldest one that carries functions).
const RDB_VERSION: u16 = 10;

/// RDB's length-prefixed string (never compressed when Larder writes it).
fn rdb_write_string(out: &mut Vec<u8>, data: &[u8]) {
    let len = data.len();
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as usize {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(data);
}

/// Reads an RDB string: plain, or LZF-compressed as Redis writes strings
/// longer than 20 bytes when `rdbcompression` is on.
fn rdb_read_string(input: &[u8], at: &mut usize) -> Option<Vec<u8>> {
    let first = *input.get(*at)?;
    *at += 1;
    let len = match first >> 6 {
        0 => (first & 0x3f) as usize,
        1 => {
            let next = *input.get(*at)? as usize;
            *at += 1;
            (((first & 0x3f) as usize) << 8) | next
        }
        2 if first == 0x80 => {
            let bytes = input.get(*at..*at + 4)?;
            *at += 4;
            u32::from_be_bytes(bytes.try_into().ok()?) as usize
        }
        2 if first == 0x81 => {
            let bytes = input.get(*at..*at + 8)?;
            *at += 8;
            usize::try_from(u64::from_be_bytes(bytes.try_into().ok()?)).ok()?
        }
        3 if first & 0x3f == 3 => {
            // LZF: compressed length, plain length, data.
            let compressed = rdb_read_length(input, at)?;
            let plain = rdb_read_length(input, at)?;
            let data = input.get(*at..at.checked_add(compressed)?)?;
            *at += compressed;
            return crate::rdb::lzf::decompress(data, plain);
        }
        _ => return None,
    };
    let data = input.get(*at..at.checked_add(len)?)?;
    *at += len;
    Some(data.to_vec())
}

fn rdb_read_length(input: &[u8], at: &mut usize) -> Option<usize> {
    let first = *input.get(*at)?;
    *at += 1;
    match first >> 6 {
        0 => Some((first & 0x3f) as usize),
        1 => {
            let next = *input.get(*at)? as usize;
            *at += 1;
            Some((((first & 0x3f) as usize) << 8) | next)
        }
        2 if first == 0x80 => {
            let bytes = input.get(*at..*at + 4)?;
            *at += 4;
            Some(u32::from_be_bytes(bytes.try_into().ok()?) as usize)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdb_strings_round_trip_at_every_length_class() {
        for len in [0, 63, 64, 16383, 16384, 70000] {
            let data = vec![b'x'; len];
            let mut encoded = Vec::new();
            rdb_write_string(&mut encoded, &data);
            let mut at = 0;
            assert_eq!(rdb_read_string(&encoded, &mut at), Some(data));
            assert_eq!(at, encoded.len());
        }
    }

    #[test]
    fn library_metadata_is_checked() {
        assert_eq!(library_name(b"#!lua name=mylib\nreturn").unwrap(), "mylib");
        assert!(library_name(b"return 1").is_err());
        assert!(library_name(b"#!js name=x\n").is_err());
        assert!(library_name(b"#!lua name=a-b\n").is_err());
    }
}
