//! Redis's conversions between replies and Lua values: a command's reply
//! (RESP2, or RESP3 after `redis.setresp(3)`) into what `redis.call`
//! returns, and a script's result into the client's reply.

use mlua::{Lua, Table, Value};

use crate::protocol::{format_double, ReplyBuf};

/// How deep a reply may nest before it is refused (Redis's replies nest a
/// few levels; this only guards the recursion).
const MAX_DEPTH: usize = 64;

/// A Lua number as `redis.call` passes it to a command (Redis's `%.17g`).
pub fn lua_number_text(n: f64) -> String {
    format_double(n)
}

/// Parses one encoded reply into a Lua value. Returns whether it was an
/// error reply (a `{err=...}` table).
pub fn reply_to_lua(lua: &Lua, reply: &[u8]) -> mlua::Result<(bool, Value)> {
    let is_error = reply.first() == Some(&b'-');
    let mut at = 0;
    let value = parse(lua, reply, &mut at, 0)?;
    Ok((is_error, value))
}

fn broken() -> mlua::Error {
    mlua::Error::RuntimeError("internal error: a command's reply could not be read".into())
}

/// The line at `*at` (without CRLF), advancing past it.
fn line<'r>(reply: &'r [u8], at: &mut usize) -> mlua::Result<&'r [u8]> {
    let rest = reply.get(*at..).ok_or_else(broken)?;
    let end = rest
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or_else(broken)?;
    *at += end + 2;
    Ok(&rest[..end])
}

fn number(text: &[u8]) -> mlua::Result<i64> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(broken)
}

fn bulk<'r>(reply: &'r [u8], at: &mut usize, len: usize) -> mlua::Result<&'r [u8]> {
    let data = reply.get(*at..*at + len).ok_or_else(broken)?;
    *at += len + 2;
    Ok(data)
}

fn parse(lua: &Lua, reply: &[u8], at: &mut usize, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(broken());
    }
    let kind = *reply.get(*at).ok_or_else(broken)?;
    *at += 1;
    let head = line(reply, at)?;
    Ok(match kind {
        b':' => Value::Number(number(head)? as f64),
        b'+' => tagged(lua, "ok", Value::String(lua.create_string(head)?))?,
        b'-' => {
            let mut buffer = b"-".to_vec();
            buffer.extend_from_slice(head);
            let table = lua.create_table()?;
            table.raw_set(
                "err",
                lua.create_string(super::sandbox::error_text(&buffer))?,
            )?;
            table.raw_set("ignore_error_stats_update", true)?;
            Value::Table(table)
        }
        b'$' => match number(head)? {
            -1 => Value::Boolean(false),
            len => Value::String(lua.create_string(bulk(reply, at, len as usize)?)?),
        },
        b'*' | b'>' => match number(head)? {
            -1 => Value::Boolean(false),
            len => {
                let table = lua.create_table()?;
                for i in 1..=len {
                    let item = parse(lua, reply, at, depth + 1)?;
                    table.raw_set(i, item)?;
                }
                Value::Table(table)
            }
        },
        b'_' => Value::Nil,
        b'#' => Value::Boolean(head == b"t"),
        b',' => {
            let text = std::str::from_utf8(head).map_err(|_| broken())?;
            let value: f64 = match text {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" => f64::NAN,
                _ => text.parse().map_err(|_| broken())?,
            };
            tagged(lua, "double", Value::Number(value))?
        }
        b'(' => tagged(lua, "big_number", Value::String(lua.create_string(head)?))?,
        b'=' => {
            let data = bulk(reply, at, number(head)? as usize)?;
            let (format, text) = if data.len() >= 4 && data[3] == b':' {
                (&data[..3], &data[4..])
            } else {
                (&b"txt"[..], data)
            };
            let inner = lua.create_table()?;
            inner.raw_set("format", lua.create_string(format)?)?;
            inner.raw_set("string", lua.create_string(text)?)?;
            tagged(lua, "verbatim_string", Value::Table(inner))?
        }
        b'%' => {
            let map = lua.create_table()?;
            for _ in 0..number(head)? {
                let key = parse(lua, reply, at, depth + 1)?;
                let value = parse(lua, reply, at, depth + 1)?;
                if key != Value::Nil {
                    map.raw_set(key, value)?;
                }
            }
            tagged(lua, "map", Value::Table(map))?
        }
        b'~' => {
            let set = lua.create_table()?;
            for _ in 0..number(head)? {
                let member = parse(lua, reply, at, depth + 1)?;
                if member != Value::Nil {
                    set.raw_set(member, true)?;
                }
            }
            tagged(lua, "set", Value::Table(set))?
        }
        b'|' => {
            // An attribute: skipped, the reply that follows is the value.
            for _ in 0..number(head)? * 2 {
                parse(lua, reply, at, depth + 1)?;
            }
            parse(lua, reply, at, depth + 1)?
        }
        _ => return Err(broken()),
    })
}

/// `{<field> = value}`.
fn tagged(lua: &Lua, field: &str, value: Value) -> mlua::Result<Value> {
    let table = lua.create_table()?;
    table.raw_set(field, value)?;
    Ok(Value::Table(table))
}

/// Writes a script's result as the reply Redis sends for it. `script_resp3`
/// is the protocol the script chose with `redis.setresp` (Redis decides
/// booleans by it; everything else follows the client's protocol).
pub fn lua_to_reply(value: &Value, out: &mut ReplyBuf, script_resp3: bool) {
    write_value(value, out, script_resp3, 0);
}

fn write_value(value: &Value, out: &mut ReplyBuf, script_resp3: bool, depth: usize) {
    match value {
        Value::String(text) => out.bulk(&text.as_bytes()),
        Value::Boolean(true) if !script_resp3 => out.int(1),
        Value::Boolean(false) if !script_resp3 => out.null(),
        Value::Boolean(b) => out.boolean(*b),
        Value::Integer(n) => out.int(*n),
        Value::Number(n) => out.int(truncate(*n)),
        Value::Table(table) if depth < MAX_DEPTH => write_table(table, out, script_resp3, depth),
        Value::Table(_) => out.error("ERR reached lua stack limit"),
        _ => out.null(),
    }
}

/// C's `(long long)` of a double on x86-64: truncation, and the
/// "indefinite" value `i64::MIN` for NaN, infinities and anything out of
/// range (Redis replies that for `return 1e20`).
fn truncate(n: f64) -> i64 {
    if n.is_finite() && n > -9.223_372_036_854_776e18 && n < 9.223_372_036_854_776e18 {
        n as i64
    } else {
        i64::MIN
    }
}

fn write_table(table: &Table, out: &mut ReplyBuf, script_resp3: bool, depth: usize) {
    if let Ok(Value::String(error)) = table.raw_get::<Value>("err") {
        let error = error.as_bytes();
        let error = error.strip_prefix(b"-").unwrap_or(&error);
        out.error_bytes(error);
        return;
    }
    if let Ok(Value::String(status)) = table.raw_get::<Value>("ok") {
        let mut line = vec![b'+'];
        line.extend(
            status
                .as_bytes()
                .iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        line.extend_from_slice(b"\r\n");
        out.raw(&line);
        return;
    }
    match table.raw_get::<Value>("double") {
        // C's printf writes a NaN with its sign (0/0 is negative on x86).
        Ok(Value::Number(n)) if n.is_nan() => {
            let text: &[u8] = if n.is_sign_negative() {
                b"-nan"
            } else {
                b"nan"
            };
            if out.is_resp3() {
                out.raw(b",");
                out.raw(text);
                out.raw(b"\r\n");
            } else {
                out.bulk(text);
            }
            return;
        }
        Ok(Value::Number(n)) => return out.double(n),
        Ok(Value::Integer(n)) => return out.double(n as f64),
        _ => {}
    }
    if let Ok(Value::String(digits)) = table.raw_get::<Value>("big_number") {
        let digits: Vec<u8> = digits
            .as_bytes()
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        if out.is_resp3() {
            let mut line = vec![b'('];
            line.extend_from_slice(&digits);
            line.extend_from_slice(b"\r\n");
            out.raw(&line);
        } else {
            out.bulk(&digits);
        }
        return;
    }
    if let Ok(Value::Table(verbatim)) = table.raw_get::<Value>("verbatim_string") {
        let format = verbatim.raw_get::<Value>("format");
        let text = verbatim.raw_get::<Value>("string");
        if let (Ok(Value::String(format)), Ok(Value::String(text))) = (format, text) {
            if format.as_bytes().len() == 3 {
                let format = String::from_utf8_lossy(&format.as_bytes()).into_owned();
                out.verbatim(&format, &text.as_bytes());
                return;
            }
        }
    }
    if let Ok(Value::Table(map)) = table.raw_get::<Value>("map") {
        let pairs: Vec<(Value, Value)> =
            map.pairs::<Value, Value>().filter_map(Result::ok).collect();
        out.map(pairs.len());
        for (key, value) in &pairs {
            write_value(key, out, script_resp3, depth + 1);
            write_value(value, out, script_resp3, depth + 1);
        }
        return;
    }
    if let Ok(Value::Table(set)) = table.raw_get::<Value>("set") {
        let members: Vec<Value> = set
            .pairs::<Value, Value>()
            .filter_map(|pair| pair.ok().map(|(member, _)| member))
            .collect();
        out.set(members.len());
        for member in &members {
            write_value(member, out, script_resp3, depth + 1);
        }
        return;
    }
    // An array: items 1, 2, ... up to the first nil.
    let mut items = Vec::new();
    for i in 1.. {
        match table.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(item) => items.push(item),
        }
    }
    out.array(items.len());
    for item in &items {
        write_value(item, out, script_resp3, depth + 1);
    }
}
