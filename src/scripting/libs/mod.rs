//! Redis' extra Lua libraries (`cjson`, `cmsgpack`, `bit`, `struct`),
//! re-implemented in Rust on top of mlua with Redis 7.0's observable behaviour.
//!
//! Errors raised by these functions reach scripts as plain Lua strings (like
//! `luaL_error` in the C originals), not as mlua error userdata, so
//! `pcall(cjson.decode, s)` returns `false, "Expected value but ..."`.

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

use mlua::{Error, Function, Lua, MultiValue, Value};

/// Installs the globals `cjson`, `cmsgpack`, `bit` and `struct`.
pub fn register_all(lua: &Lua) -> mlua::Result<()> {
    self::cjson::register(lua)?;
    self::cmsgpack::register(lua)?;
    self::bit::register(lua)?;
    self::structlib::register(lua)?;
    Ok(())
}

/// Lua glue: calls the Rust function in protected mode and re-raises any
/// failure as a plain string error, the way `luaL_error` would:
///
/// * `error(msg, 2)` puts the caller's position in front ("chunk:line: ")
///   when the caller is Lua code, and nothing when it is a C function such
///   as `pcall`, like `luaL_where(L, 1)` does for a C library function.
///   Errors the C code gets from the Lua core while running (e.g. "table
///   index is nil") carry no position: `msgof` asks for level 0 then.
/// * When the `debug` library is loaded, "bad argument" messages name the
///   function as its caller called it ('?' from `pcall`), as
///   `luaL_argerror` does; without it they use the library's own name.
///
/// The Rust side returns `(n, v)`: `v` is the only result when `n == 1`,
/// otherwise a table holding the `n` results. (Returning many values through
/// `pcall` directly trips an API check of the vendored Lua in debug builds.)
const WRAPPER: &str = r#"
local inner, msgof = ...
local pcall, error, unpack, type = pcall, error, unpack, type
local getinfo = type(debug) == "table" and debug.getinfo or nil
return function(...)
  local ok, n, v = pcall(inner, ...)
  if ok then
    if n == 1 then return v end
    if n == 0 then return end
    return unpack(v, 1, n)
  end
  local name
  if getinfo then
    local ar = getinfo(1, "n")
    name = ar and ar.name or "?"
  end
  local msg, level = msgof(n, name)
  error(msg, level)
end
"#;

/// Result type of the library functions: all Lua values they return.
type Ret = mlua::Result<MultiValue>;

/// Creates a Lua function from `f`; errors it returns are raised in Lua as
/// plain strings.
fn lua_function<F>(lua: &Lua, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, MultiValue) -> Ret + Send + 'static,
{
    let inner = lua.create_function(
        move |lua, args: MultiValue| -> mlua::Result<(usize, Value)> {
            let mut results = f(lua, args)?;
            match results.len() {
                0 => Ok((0, Value::Nil)),
                1 => Ok((1, results.pop_front().unwrap_or(Value::Nil))),
                n => {
                    let t = lua.create_table_with_capacity(n, 0)?;
                    for (i, v) in results.into_iter().enumerate() {
                        t.raw_set(i + 1, v)?;
                    }
                    Ok((n, Value::Table(t)))
                }
            }
        },
    )?;
    let msgof = lua.create_function(
        |lua, (v, name): (Value, Option<String>)| -> mlua::Result<(Value, i32)> {
            match v {
                Value::Error(e) => {
                    let level = if has_no_position(&e) { 0 } else { 2 };
                    let mut text = error_text(&e);
                    if let Some(name) = name {
                        text = rename_function(&text, &name);
                    }
                    Ok((Value::String(lua.create_string(text)?), level))
                }
                other => Ok((other, 2)),
            }
        },
    )?;
    let wrap: Function = lua.load(WRAPPER).set_name("=[C]").into_function()?;
    wrap.call((inner, msgof))
}

/// An error message raised without position information.
#[derive(Debug)]
struct NoPosition(String);

impl std::fmt::Display for NoPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoPosition {}

/// An error the C code would get from the Lua core (no position prefix).
fn core_error(msg: impl Into<String>) -> Error {
    Error::external(NoPosition(msg.into()))
}

fn has_no_position(e: &Error) -> bool {
    match e {
        Error::CallbackError { cause, .. } => has_no_position(cause),
        Error::ExternalError(x) => x.downcast_ref::<NoPosition>().is_some(),
        _ => false,
    }
}

/// The message carried by an error, without mlua's decorations.
fn error_text(e: &Error) -> String {
    match e {
        Error::CallbackError { cause, .. } => error_text(cause),
        Error::ExternalError(x) => x.to_string(),
        Error::RuntimeError(s) => s.clone(),
        Error::MemoryError(_) => "not enough memory".to_string(),
        Error::StackError => "stack overflow".to_string(),
        other => other.to_string(),
    }
}

/// Replaces the function name in a "bad argument #n to 'name' (...)" message.
fn rename_function(msg: &str, name: &str) -> String {
    if let Some(rest) = msg.strip_prefix("bad argument #") {
        if let Some(start) = rest.find(" to '") {
            let after = &rest[start + 5..];
            if let Some(end) = after.find("' (") {
                return format!(
                    "bad argument #{} to '{name}'{}",
                    &rest[..start],
                    &after[end + 1..]
                );
            }
        }
    }
    msg.to_string()
}

/// A `luaL_error`-style error.
fn rt_error(msg: impl Into<String>) -> Error {
    Error::RuntimeError(msg.into())
}

/// A `luaL_argerror`-style error.
fn arg_error(narg: usize, fname: &str, msg: &str) -> Error {
    rt_error(format!("bad argument #{narg} to '{fname}' ({msg})"))
}

/// Lua's name for the type of argument `v` (`luaL_typename`).
fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_)) | Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// A `luaL_typerror`-style error.
fn type_error(narg: usize, fname: &str, expected: &str, got: Option<&Value>) -> Error {
    arg_error(
        narg,
        fname,
        &format!("{expected} expected, got {}", type_name(got)),
    )
}

/// Argument `n` (1-based) of a call.
fn arg(args: &MultiValue, n: usize) -> Option<&Value> {
    args.get(n - 1)
}

/// `lua_tonumber`: numbers and numeric strings.
fn to_number(lua: &Lua, v: Option<&Value>) -> Option<f64> {
    match v {
        Some(Value::Integer(i)) => Some(*i as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(s @ Value::String(_)) => lua.coerce_number(s.clone()).ok().flatten(),
        _ => None,
    }
}

/// `luaL_checknumber`.
fn check_number(lua: &Lua, args: &MultiValue, n: usize, fname: &str) -> mlua::Result<f64> {
    to_number(lua, arg(args, n)).ok_or_else(|| type_error(n, fname, "number", arg(args, n)))
}

/// C's `(ptrdiff_t)d` as x86-64 computes it (out of range gives i64::MIN).
fn double_to_i64(d: f64) -> i64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if !(-TWO63..TWO63).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// `luaL_checkinteger`.
fn check_integer(lua: &Lua, args: &MultiValue, n: usize, fname: &str) -> mlua::Result<i64> {
    check_number(lua, args, n, fname).map(double_to_i64)
}

/// `luaL_optinteger`.
fn opt_integer(
    lua: &Lua,
    args: &MultiValue,
    n: usize,
    fname: &str,
    default: i64,
) -> mlua::Result<i64> {
    match arg(args, n) {
        None | Some(Value::Nil) => Ok(default),
        _ => check_integer(lua, args, n, fname),
    }
}

/// `luaL_checklstring`: strings, and numbers converted to strings.
fn check_string(
    lua: &Lua,
    args: &MultiValue,
    n: usize,
    fname: &str,
) -> mlua::Result<mlua::LuaString> {
    match arg(args, n) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => lua
            .coerce_string(v.clone())?
            .ok_or_else(|| type_error(n, fname, "string", Some(v))),
        other => Err(type_error(n, fname, "string", other)),
    }
}

/// Builds a module table from `(name, function)` pairs.
fn new_module(lua: &Lua, funcs: Vec<(&str, Function)>) -> mlua::Result<mlua::Table> {
    let t = lua.create_table()?;
    for (name, f) in funcs {
        t.raw_set(name, f)?;
    }
    Ok(t)
}

/// Test harness shared with the script that asked redis-server 7.0.15 for
/// the expected values: runs `EXPR` in a fresh function, then prints its
/// results (strings quoted with `\xx` hex escapes for control, non-ASCII,
/// quote and backslash bytes; tables as sorted `key=value` lists) or
/// `ERR:<message>`. It is one line so that error positions read
/// `user_script:1:` as in Redis.
#[cfg(test)]
const HARNESS: &str = r#"local function dump(v) local t = type(v) if t == 'string' then return '"' .. v:gsub('[%c\128-\255\\"]', function(c) return string.format('\\%02x', c:byte()) end) .. '"' elseif t == 'table' then local items = {} for k, x in pairs(v) do items[#items + 1] = dump(k) .. '=' .. dump(x) end table.sort(items) return '{' .. table.concat(items, ',') .. '}' elseif t == 'userdata' and cjson and v == cjson.null then return 'null' else return tostring(v) end end local function pk(...) return {n = select('#', ...), ...} end local r = pk(pcall(function() local a = pk(EXPR) return a end)) if not r[1] then return 'ERR:' .. tostring(r[2]) end local o = {} for i = 1, r[2].n do o[#o + 1] = dump(r[2][i]) end return table.concat(o, ' ')"#;

/// Runs one harness case (see `HARNESS`) in `lua`.
#[cfg(test)]
fn run_case(lua: &Lua, expr: &str) -> String {
    lua.load(HARNESS.replace("EXPR", expr))
        .set_name("@user_script")
        .eval::<String>()
        .unwrap_or_else(|e| format!("harness failure: {e}"))
}

/// Checks `(expression, expected output)` pairs with `run_case`.
#[cfg(test)]
fn check_cases(lua: &Lua, cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (expr, want) in cases {
        let got = run_case(lua, expr);
        if &got != want {
            failures.push(format!("{expr}\n   want: {want}\n    got: {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_all_globals() {
        let lua = Lua::new();
        register_all(&lua).unwrap();
        let kinds: String = lua
            .load("return type(cjson)..type(cmsgpack)..type(bit)..type(struct)")
            .eval()
            .unwrap();
        assert_eq!(kinds, "tabletabletabletable");
    }

    #[test]
    fn errors_are_plain_strings() {
        let lua = Lua::new();
        register_all(&lua).unwrap();
        let (ty, msg): (String, String) = lua
            .load("local ok, e = pcall(cjson.decode, '') return type(e), e")
            .eval()
            .unwrap();
        assert_eq!(ty, "string");
        assert_eq!(msg, "Expected value but found T_END at character 1");
        let err = lua
            .load("\n\ncjson.decode('x')")
            .set_name("@user_script")
            .exec()
            .unwrap_err();
        // mlua appends a traceback when the error leaves Lua.
        assert!(
            error_text(&err).starts_with(
                "user_script:3: Expected value but found invalid token at character 1\n"
            ),
            "{err}"
        );
    }

    /// Cases modelled on Redis' own scripting tests (tests/unit/scripting.tcl),
    /// with outputs from redis-server 7.0.15 through the same harness.
    #[test]
    fn matches_redis() {
        let lua = Lua::new();
        register_all(&lua).unwrap();
        let cases: &[(&str, &str)] = &[
            (
                r#"(function() local encoded = cmsgpack.pack(0.1) local h = '' for i = 1, #encoded do h = h .. string.format('%02x', string.byte(encoded, i)) end return h end)()"#,
                r#""cb3fb999999999999a""#,
            ),
            (
                r#"(function() local encoded = cmsgpack.pack(-1099511627776) local h = '' for i = 1, #encoded do h = h .. string.format('%02x', string.byte(encoded, i)) end return h end)()"#,
                r#""d3ffffff0000000000""#,
            ),
            (
                r#"(function() local a = {x = nil, y = 5} local b = {x = a} a['x'] = b local encoded = cmsgpack.pack(a) local h = '' for i = 1, #encoded do h = h .. string.format('%02x', string.byte(encoded, i)) end local re = cmsgpack.unpack(encoded) assert(re) assert(re.x) assert(re.x.x.y == re.y) assert(re.x.x.x.x.y == re.y) assert(re.x.x.x.x.x.x.y == re.y) assert(re.x.x.x.x.x.x.x == nil) return h end)()"#,
                r#"ERR:user_script:1: assertion failed!"#,
            ),
            (
                r#"(function() local str_lt_32 = string.rep('x', 30) local str_lt_255 = string.rep('x', 250) local str_lt_65535 = string.rep('x', 65530) local str_long = string.rep('x', 100000) local t = {str_lt_32, str_lt_255, str_lt_65535, str_long} local u = cmsgpack.unpack(cmsgpack.pack(t)) return #u[1], #u[2], #u[3], #u[4], u[4] == str_long end)()"#,
                r#"30 250 65530 100000 true"#,
            ),
            (
                r#"(function() local array = {1, 2, 3} local r = cmsgpack.unpack(cmsgpack.pack(array)) return #r, r[3] end)()"#,
                r#"3 3"#,
            ),
            (
                r#"table.concat(cjson.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]'), ' ')"#,
                r#""0 -5000 -1 0.0003 1023.2 0""#,
            ),
            (
                r#"(function() local decoded = cjson.decode('{"keya": "a", "keyb": "b"}') return decoded.keya, decoded.keyb end)()"#,
                r#""a" "b""#,
            ),
            (
                r#"cjson.encode(cjson.decode('{"1":"one","2":"two"}'))"#,
                r#""{\221\22:\22one\22,\222\22:\22two\22}""#,
            ),
            (
                r#"cjson.encode({1, 2, {a = {3, {b = true}}}})"#,
                r#""[1,2,{\22a\22:[3,{\22b\22:true}]}]""#,
            ),
            (r#"struct.pack('HH', 1, 2)"#, r#""\01\00\02\00""#),
            (
                r#"struct.unpack('HH', struct.pack('HH', 1, 2))"#,
                r#"1 2 5"#,
            ),
            (r#"struct.size('HH')"#, r#"4"#),
            (
                r#"struct.pack('>I2', 65535), struct.pack('<I2', 1)"#,
                r#""\ff\ff" "\01\00""#,
            ),
            (
                r#"bit.tohex(65535), bit.tohex(-1, -3), bit.band(0x0f, 0xff), bit.bxor(0x0f, 0xff)"#,
                r#""0000ffff" "FFF" 15 240"#,
            ),
        ];
        check_cases(&lua, cases);
    }

    #[test]
    fn error_positions_follow_the_caller() {
        let lua = Lua::new();
        register_all(&lua).unwrap();
        // A C caller (pcall) adds no position; a Lua caller adds its line.
        assert_eq!(
            run_case(&lua, "pcall(bit.tobit)"),
            "false \"bad argument #1 to 'tobit' (number expected, got no value)\""
        );
        assert_eq!(
            run_case(&lua, "pcall(function()\n local x = bit.tobit() end)"),
            "false \"user_script:2: bad argument #1 to 'tobit' (number expected, got no value)\""
        );
    }
}
