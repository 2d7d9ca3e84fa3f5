//! `cjson`: lua-cjson 2.1.0 as Redis 7.0 ships it (module table with
//! `encode`, `decode`, the configuration functions, `new` and `null`).
//!
//! Encoding and decoding walk nested data with explicit stacks (no Rust
//! recursion), and reproduce the C code's Lua-stack limits so deep nesting
//! fails with the same errors at the same depths.

use std::sync::{Arc, Mutex};

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::{arg, arg_error, check_integer, check_string, lua_function, rt_error, type_name, Ret};

/// Lua 5.1's limit of stack slots for a C function (LUAI_MAXCSTACK).
const MAX_STACK: usize = 8000;

#[derive(Clone, Copy)]
struct Config {
    sparse_convert: i32,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0: refuse NaN/Inf, 1: encode them ("nan", "inf"), 2: encode as null.
    encode_invalid_numbers: i32,
    decode_invalid_numbers: i32,
    keep_buffer: i32,
    precision: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: 0,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: 1,
            keep_buffer: 1,
            precision: 14,
        }
    }
}

type Shared = Arc<Mutex<Config>>;

fn config(shared: &Shared) -> Config {
    *shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn update(shared: &Shared, f: impl FnOnce(&mut Config)) -> Config {
    let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut guard);
    *guard
}

// ------------------------------------------------------------ configuration

/// `json_arg_init`: refuses extra arguments; missing ones read as nil.
fn check_arg_count(args: &MultiValue, max: usize, fname: &str) -> mlua::Result<()> {
    if args.len() > max {
        return Err(arg_error(max + 1, fname, "found too many arguments"));
    }
    Ok(())
}

fn is_nil(args: &MultiValue, n: usize) -> bool {
    matches!(arg(args, n), None | Some(Value::Nil))
}

/// `json_integer_option`: the new value if one was given (the C code reports
/// range errors against argument 1 whatever the position).
fn integer_option(
    lua: &Lua,
    args: &MultiValue,
    n: usize,
    fname: &str,
    min: i32,
    max: i32,
) -> mlua::Result<Option<i32>> {
    if is_nil(args, n) {
        return Ok(None);
    }
    let value = check_integer(lua, args, n, fname)? as i32;
    if value < min || value > max {
        return Err(arg_error(
            1,
            fname,
            &format!("expected integer between {min} and {max}"),
        ));
    }
    Ok(Some(value))
}

/// `json_enum_option` with `bool_true` = 1: booleans or one of `options`.
fn enum_option(
    lua: &Lua,
    args: &MultiValue,
    n: usize,
    fname: &str,
    options: &[&str],
) -> mlua::Result<Option<i32>> {
    match arg(args, n) {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::Boolean(b)) => Ok(Some(*b as i32)),
        _ => {
            let s = check_string(lua, args, n, fname)?;
            let bytes = s.as_bytes();
            match options.iter().position(|o| o.as_bytes() == &bytes[..]) {
                Some(i) => Ok(Some(i as i32)),
                None => Err(arg_error(
                    n,
                    fname,
                    &format!("invalid option '{}'", String::from_utf8_lossy(&bytes)),
                )),
            }
        }
    }
}

/// The value a `json_enum_option` setting reads back as.
fn enum_value(lua: &Lua, setting: i32, options: &[&str]) -> mlua::Result<Value> {
    if setting == 0 || setting == 1 {
        Ok(Value::Boolean(setting == 1))
    } else {
        let name = options.get(setting as usize).copied().unwrap_or("");
        Ok(Value::String(lua.create_string(name)?))
    }
}

const BOOL_OPTIONS: [&str; 2] = ["off", "on"];
const INVALID_NUMBER_OPTIONS: [&str; 3] = ["off", "on", "null"];

fn one(v: Value) -> Ret {
    Ok(MultiValue::from_vec(vec![v]))
}

// ---------------------------------------------------------- number format

/// C's `printf("%.*g", precision, x)`.
fn format_g(x: f64, precision: i32) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let p = precision.max(1) as usize;
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let mantissa = strip_zeros(mantissa.to_string());
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        strip_zeros(format!("{:.*}", (p as i32 - 1 - exp) as usize, x))
    }
}

fn strip_zeros(mut s: String) -> String {
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

// ---------------------------------------------------------------- encoding

fn encode_error(what: &str, reason: &str) -> mlua::Error {
    rt_error(format!("Cannot serialise {what}: {reason}"))
}

fn append_number(out: &mut Vec<u8>, cfg: &Config, num: f64) -> mlua::Result<()> {
    match cfg.encode_invalid_numbers {
        0 if num.is_nan() || num.is_infinite() => {
            return Err(encode_error("number", "must not be NaN or Inf"));
        }
        1 if num.is_nan() => {
            out.extend_from_slice(b"nan");
            return Ok(());
        }
        2 if num.is_nan() || num.is_infinite() => {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        _ => {}
    }
    out.extend_from_slice(format_g(num, cfg.precision).as_bytes());
    Ok(())
}

fn append_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// C's `(int)d` as x86-64 computes it (out of range gives INT_MIN).
fn double_to_i32(d: f64) -> i32 {
    if d.is_nan() || d >= 2_147_483_648.0 || d <= -2_147_483_649.0 {
        i32::MIN
    } else {
        d as i32
    }
}

/// `lua_array_length`: the array size if the table is an array, -1 (or
/// anything <= 0) for an object; errors for excessively sparse arrays.
fn array_length(t: &Table, cfg: &Config) -> mlua::Result<i32> {
    let mut max: i32 = 0;
    let mut items: i64 = 0;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        match number_of(&k) {
            Some(k) if k != 0.0 && k.floor() == k && k >= 1.0 => {
                if k > max as f64 {
                    max = double_to_i32(k);
                }
                items += 1;
            }
            _ => return Ok(-1),
        }
    }
    if cfg.sparse_ratio > 0 && max as i64 > items * cfg.sparse_ratio as i64 && max > cfg.sparse_safe
    {
        if cfg.sparse_convert == 0 {
            return Err(encode_error("table", "excessively sparse array"));
        }
        return Ok(-1);
    }
    Ok(max)
}

/// An open container while encoding. The tables themselves (and an object's
/// current key) live in Lua-side lists indexed by depth, so only a couple of
/// mlua references are alive however deep the data goes (mlua can hold only
/// about 8000 references with Lua 5.1).
enum EncFrame {
    Array { len: i64, i: i64, top: usize },
    Object { first: bool, top: usize },
}

fn encode_value(lua: &Lua, cfg: &Config, next: &Function, root: Value) -> mlua::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut stack: Vec<EncFrame> = Vec::new();
    let tables = lua.create_table()?;
    let keys = lua.create_table()?;
    // The value to emit and the C stack height it would sit at.
    let mut pending = Some((root, 1usize));
    loop {
        if let Some((v, top)) = pending.take() {
            match v {
                Value::String(s) => append_string(&mut out, &s.as_bytes()),
                Value::Integer(i) => append_number(&mut out, cfg, i as f64)?,
                Value::Number(n) => append_number(&mut out, cfg, n)?,
                Value::Boolean(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                Value::Nil => out.extend_from_slice(b"null"),
                Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
                Value::Table(t) => {
                    let depth = stack.len() + 1;
                    if depth > cfg.encode_max_depth.max(0) as usize || top + 3 > MAX_STACK {
                        return Err(rt_error(format!(
                            "Cannot serialise, excessive nesting ({depth})"
                        )));
                    }
                    let len = array_length(&t, cfg)?;
                    tables.raw_set(depth, t)?;
                    if len > 0 {
                        out.push(b'[');
                        stack.push(EncFrame::Array {
                            len: len as i64,
                            i: 0,
                            top,
                        });
                    } else {
                        out.push(b'{');
                        stack.push(EncFrame::Object { first: true, top });
                    }
                }
                other => return Err(encode_error(type_name(Some(&other)), "type not supported")),
            }
        }
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else {
            return Ok(out);
        };
        match frame {
            EncFrame::Array { len, i, top } => {
                if *i == *len {
                    out.push(b']');
                    tables.raw_set(depth, Value::Nil)?;
                    stack.pop();
                    continue;
                }
                if *i > 0 {
                    out.push(b',');
                }
                *i += 1;
                let t: Table = tables.raw_get(depth)?;
                let v: Value = t.raw_get(*i)?;
                pending = Some((v, *top + 1));
            }
            EncFrame::Object { first, top } => {
                let t: Table = tables.raw_get(depth)?;
                let key: Value = keys.raw_get(depth)?;
                let (k, v): (Value, Value) = next.call((t, key))?;
                if k.is_nil() {
                    out.push(b'}');
                    tables.raw_set(depth, Value::Nil)?;
                    keys.raw_set(depth, Value::Nil)?;
                    stack.pop();
                    continue;
                }
                if !*first {
                    out.push(b',');
                }
                *first = false;
                match &k {
                    Value::String(s) => {
                        append_string(&mut out, &s.as_bytes());
                        out.push(b':');
                    }
                    k if number_of(k).is_some() => {
                        out.push(b'"');
                        append_number(&mut out, cfg, number_of(k).unwrap_or(0.0))?;
                        out.extend_from_slice(b"\":");
                    }
                    other => {
                        return Err(encode_error(
                            type_name(Some(other)),
                            "table key must be a number or string",
                        ))
                    }
                }
                keys.raw_set(depth, k)?;
                pending = Some((v, *top + 2));
            }
        }
    }
}

// ---------------------------------------------------------------- decoding

enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    fn name(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str(_) => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Token {
    tok: Tok,
    index: usize,
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    decode_invalid_numbers: bool,
}

fn hex_value(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// C's `strtod` in the "C" locale: the value and the end of the longest
/// prefix of `s[start..]` that forms a number, or None.
fn strtod(at: &dyn Fn(usize) -> u8, start: usize) -> Option<(f64, usize)> {
    let mut i = start;
    while is_space(at(i)) {
        i += 1;
    }
    let negative = at(i) == b'-';
    if matches!(at(i), b'+' | b'-') {
        i += 1;
    }
    let sign = if negative { -1.0 } else { 1.0 };
    let lower = |k: usize| at(k).to_ascii_lowercase();
    if lower(i) == b'i' && lower(i + 1) == b'n' && lower(i + 2) == b'f' {
        let mut end = i + 3;
        if (0..5).all(|k| lower(end + k) == b"inity"[k]) {
            end += 5;
        }
        return Some((sign * f64::INFINITY, end));
    }
    if lower(i) == b'n' && lower(i + 1) == b'a' && lower(i + 2) == b'n' {
        let mut end = i + 3;
        if at(end) == b'(' {
            let mut k = end + 1;
            while at(k).is_ascii_alphanumeric() || at(k) == b'_' {
                k += 1;
            }
            if at(k) == b')' {
                end = k + 1;
            }
        }
        let nan = if negative { -f64::NAN } else { f64::NAN };
        return Some((nan, end));
    }
    if at(i) == b'0'
        && lower(i + 1) == b'x'
        && (hex_value(at(i + 2)).is_some() || (at(i + 2) == b'.' && hex_value(at(i + 3)).is_some()))
    {
        return Some(hex_float(at, i + 2, sign));
    }
    let mut text = String::new();
    let mut k = i;
    let mut digits = 0;
    while at(k).is_ascii_digit() {
        text.push(at(k) as char);
        k += 1;
        digits += 1;
    }
    if text.is_empty() {
        text.push('0');
    }
    text.push('.');
    if at(k) == b'.' {
        k += 1;
        while at(k).is_ascii_digit() {
            text.push(at(k) as char);
            k += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    text.push('0');
    if lower(k) == b'e' {
        let mut e = k + 1;
        let mut exp = String::from("e");
        if matches!(at(e), b'+' | b'-') {
            exp.push(at(e) as char);
            e += 1;
        }
        if at(e).is_ascii_digit() {
            while at(e).is_ascii_digit() {
                exp.push(at(e) as char);
                e += 1;
            }
            text.push_str(&exp);
            k = e;
        }
    }
    let v: f64 = text.parse().unwrap_or(0.0);
    Some((sign * v, k))
}

/// Hexadecimal floating point (after "0x"), as strtod reads it.
fn hex_float(at: &dyn Fn(usize) -> u8, start: usize, sign: f64) -> (f64, usize) {
    let mut k = start;
    let mut mantissa: u64 = 0;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut add = |d: u32, exp_adjust: i64, exp: &mut i64| {
        if mantissa >> 56 == 0 {
            mantissa = mantissa * 16 + d as u64;
            *exp += exp_adjust;
        } else {
            sticky |= d != 0;
            *exp += exp_adjust + 4;
        }
    };
    while let Some(d) = hex_value(at(k)) {
        add(d, 0, &mut exp);
        k += 1;
    }
    if at(k) == b'.' {
        k += 1;
        while let Some(d) = hex_value(at(k)) {
            add(d, -4, &mut exp);
            k += 1;
        }
    }
    if at(k).eq_ignore_ascii_case(&b'p') {
        let mut e = k + 1;
        let negative = at(e) == b'-';
        if matches!(at(e), b'+' | b'-') {
            e += 1;
        }
        if at(e).is_ascii_digit() {
            let mut p: i64 = 0;
            while at(e).is_ascii_digit() {
                p = (p * 10 + (at(e) - b'0') as i64).min(1 << 40);
                e += 1;
            }
            exp += if negative { -p } else { p };
            k = e;
        }
    }
    if sticky {
        mantissa |= 1;
    }
    let exp = exp.clamp(-5000, 5000) as i32;
    let mut v = mantissa as f64;
    // Scale in steps so intermediate powers stay finite.
    let mut e = exp;
    while e > 0 {
        let step = e.min(1000);
        v *= 2f64.powi(step);
        e -= step;
    }
    while e < 0 {
        let step = e.max(-1000);
        v *= 2f64.powi(step);
        e -= step;
    }
    (sign * v, k)
}

impl Parser<'_> {
    /// The byte at `i`; the C code reads a NUL-terminated buffer.
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn error_token(&self, msg: &'static str) -> Token {
        Token {
            tok: Tok::Error(msg),
            index: self.pos,
        }
    }

    fn starts_with(&self, word: &[u8]) -> bool {
        word.iter()
            .enumerate()
            .all(|(k, &c)| self.at(self.pos + k) == c)
    }

    /// `json_is_invalid_number`: forms strtod accepts but JSON does not.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.pos;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return c2 | 0x20 == b'x' || c2.is_ascii_digit();
        } else if c <= b'9' {
            return false;
        }
        let lower = |k: usize| self.at(p + k).to_ascii_lowercase();
        let word = [lower(0), lower(1), lower(2)];
        &word == b"inf" || &word == b"nan"
    }

    fn number_token(&mut self) -> Token {
        let index = self.pos;
        match strtod(&|i| self.at(i), self.pos) {
            Some((v, end)) => {
                self.pos = end;
                Token {
                    tok: Tok::Num(v),
                    index,
                }
            }
            None => self.error_token("invalid number"),
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0;
        for k in 0..4 {
            v = (v << 4) | hex_value(self.at(at + k))?;
        }
        Some(v)
    }

    /// Handles `\uXXXX` (and surrogate pairs) at `self.pos`.
    fn unicode_escape(&mut self, buf: &mut Vec<u8>) -> Option<()> {
        let mut cp = self.hex4(self.pos + 2)?;
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return None;
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return None;
            }
            let low = self.hex4(self.pos + 8)?;
            if low & 0xFC00 != 0xDC00 {
                return None;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let ch = char::from_u32(cp)?;
        let mut tmp = [0u8; 4];
        buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
        self.pos += len;
        Some(())
    }

    fn string_token(&mut self) -> Token {
        let index = self.pos;
        self.pos += 1;
        let mut buf = Vec::new();
        loop {
            let mut ch = self.at(self.pos);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                return self.error_token("unexpected end of string");
            }
            if ch == b'\\' {
                ch = match self.at(self.pos + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 0x0c,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape(&mut buf).is_some() {
                            continue;
                        }
                        return self.error_token("invalid unicode escape code");
                    }
                    _ => return self.error_token("invalid escape code"),
                };
                self.pos += 1;
            }
            buf.push(ch);
            self.pos += 1;
        }
        self.pos += 1;
        Token {
            tok: Tok::Str(buf),
            index,
        }
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let index = self.pos;
        let simple = |tok| Token { tok, index };
        let ch = self.at(self.pos);
        let tok = match ch {
            b'{' => Tok::ObjBegin,
            b'}' => Tok::ObjEnd,
            b'[' => Tok::ArrBegin,
            b']' => Tok::ArrEnd,
            b',' => Tok::Comma,
            b':' => Tok::Colon,
            0 => return simple(Tok::End),
            b'"' => return self.string_token(),
            b'-' | b'0'..=b'9' => {
                if !self.decode_invalid_numbers && self.is_invalid_number() {
                    return self.error_token("invalid number");
                }
                return self.number_token();
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                if self.starts_with(b"true") {
                    self.pos += 4;
                    return simple(Tok::Bool(true));
                } else if self.starts_with(b"false") {
                    self.pos += 5;
                    return simple(Tok::Bool(false));
                } else if self.starts_with(b"null") {
                    self.pos += 4;
                    return simple(Tok::Null);
                } else if self.decode_invalid_numbers && self.is_invalid_number() {
                    return self.number_token();
                }
                return self.error_token("invalid token");
            }
            _ => return self.error_token("invalid token"),
        };
        self.pos += 1;
        simple(tok)
    }
}

fn parse_error(expected: &str, token: &Token) -> mlua::Error {
    rt_error(format!(
        "Expected {expected} but found {} at character {}",
        token.tok.name(),
        token.index + 1
    ))
}

/// An open container while decoding; the tables live in a Lua-side list
/// indexed by depth (see `EncFrame`).
enum DecFrame {
    Array { i: i64, top: usize },
    Object { key: Vec<u8>, top: usize },
}

fn decode_value(lua: &Lua, cfg: &Config, data: &[u8]) -> mlua::Result<Value> {
    let mut p = Parser {
        data,
        pos: 0,
        decode_invalid_numbers: cfg.decode_invalid_numbers != 0,
    };
    let mut stack: Vec<DecFrame> = Vec::new();
    let tables = lua.create_table()?;
    // The C stack holds the input string: values start at height 1.
    let mut top = 1usize;
    let mut token = p.next_token();
    let descend = |p: &Parser, depth: usize, top: usize, slots: usize| -> mlua::Result<()> {
        if depth <= cfg.decode_max_depth.max(0) as usize && top + slots <= MAX_STACK {
            return Ok(());
        }
        Err(rt_error(format!(
            "Found too many nested data structures ({depth}) at character {}",
            p.pos
        )))
    };
    // Reads `"key" :` after an object start or a comma.
    let object_key = |p: &mut Parser, token: Token| -> mlua::Result<Vec<u8>> {
        let Tok::Str(key) = token.tok else {
            return Err(parse_error("object key string", &token));
        };
        let colon = p.next_token();
        if !matches!(colon.tok, Tok::Colon) {
            return Err(parse_error("colon", &colon));
        }
        Ok(key)
    };
    'value: loop {
        let mut v = match token.tok {
            Tok::Str(ref s) => Value::String(lua.create_string(s)?),
            Tok::Num(n) => Value::Number(n),
            Tok::Bool(b) => Value::Boolean(b),
            Tok::Null => Value::NULL,
            Tok::ObjBegin => {
                descend(&p, stack.len() + 1, top, 3)?;
                let t = lua.create_table()?;
                let next = p.next_token();
                if matches!(next.tok, Tok::ObjEnd) {
                    Value::Table(t)
                } else {
                    let key = object_key(&mut p, next)?;
                    tables.raw_set(stack.len() + 1, t)?;
                    stack.push(DecFrame::Object { key, top });
                    top += 2;
                    token = p.next_token();
                    continue 'value;
                }
            }
            Tok::ArrBegin => {
                descend(&p, stack.len() + 1, top, 2)?;
                let t = lua.create_table()?;
                let next = p.next_token();
                if matches!(next.tok, Tok::ArrEnd) {
                    Value::Table(t)
                } else {
                    tables.raw_set(stack.len() + 1, t)?;
                    stack.push(DecFrame::Array { i: 1, top });
                    top += 1;
                    token = next;
                    continue 'value;
                }
            }
            _ => return Err(parse_error("value", &token)),
        };
        loop {
            let depth = stack.len();
            let Some(frame) = stack.last_mut() else {
                let end = p.next_token();
                if !matches!(end.tok, Tok::End) {
                    return Err(parse_error("the end", &end));
                }
                return Ok(v);
            };
            match frame {
                DecFrame::Array { i, top: ftop } => {
                    let t: Table = tables.raw_get(depth)?;
                    t.raw_set(*i, v)?;
                    *i += 1;
                    let next = p.next_token();
                    match next.tok {
                        Tok::ArrEnd => {
                            v = Value::Table(t);
                            tables.raw_set(depth, Value::Nil)?;
                            stack.pop();
                        }
                        Tok::Comma => {
                            top = *ftop + 1;
                            token = p.next_token();
                            continue 'value;
                        }
                        _ => return Err(parse_error("comma or array end", &next)),
                    }
                }
                DecFrame::Object { key, top: ftop } => {
                    let t: Table = tables.raw_get(depth)?;
                    t.raw_set(lua.create_string(&key[..])?, v)?;
                    let next = p.next_token();
                    match next.tok {
                        Tok::ObjEnd => {
                            v = Value::Table(t);
                            tables.raw_set(depth, Value::Nil)?;
                            stack.pop();
                        }
                        Tok::Comma => {
                            let key_token = p.next_token();
                            *key = object_key(&mut p, key_token)?;
                            top = *ftop + 2;
                            token = p.next_token();
                            continue 'value;
                        }
                        _ => return Err(parse_error("comma or object end", &next)),
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ module

fn build_module(lua: &Lua) -> mlua::Result<Table> {
    let shared: Shared = Arc::new(Mutex::new(Config::default()));
    let next: Function = lua.globals().raw_get("next")?;
    let m = lua.create_table()?;

    let cfg = shared.clone();
    m.raw_set(
        "encode",
        lua_function(lua, move |lua, args| {
            if args.len() != 1 {
                return Err(arg_error(1, "encode", "expected 1 argument"));
            }
            let c = config(&cfg);
            let root = args.into_iter().next().unwrap_or(Value::Nil);
            let out = encode_value(lua, &c, &next, root)?;
            one(Value::String(lua.create_string(&out)?))
        })?,
    )?;

    let cfg = shared.clone();
    m.raw_set(
        "decode",
        lua_function(lua, move |lua, args| {
            if args.len() != 1 {
                return Err(arg_error(1, "decode", "expected 1 argument"));
            }
            let s = check_string(lua, &args, 1, "decode")?;
            let data = s.as_bytes();
            if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
                return Err(rt_error("JSON parser does not support UTF-16 or UTF-32"));
            }
            let c = config(&cfg);
            one(decode_value(lua, &c, &data)?)
        })?,
    )?;

    let cfg = shared.clone();
    m.raw_set(
        "encode_sparse_array",
        lua_function(lua, move |lua, args| {
            let f = "encode_sparse_array";
            check_arg_count(&args, 3, f)?;
            let convert = enum_option(lua, &args, 1, f, &BOOL_OPTIONS)?;
            if let Some(v) = convert {
                update(&cfg, |c| c.sparse_convert = v);
            }
            let ratio = integer_option(lua, &args, 2, f, 0, i32::MAX)?;
            if let Some(v) = ratio {
                update(&cfg, |c| c.sparse_ratio = v);
            }
            let safe = integer_option(lua, &args, 3, f, 0, i32::MAX)?;
            let c = update(&cfg, |c| {
                if let Some(v) = safe {
                    c.sparse_safe = v;
                }
            });
            Ok(MultiValue::from_vec(vec![
                enum_value(lua, c.sparse_convert, &BOOL_OPTIONS)?,
                Value::Number(c.sparse_ratio as f64),
                Value::Number(c.sparse_safe as f64),
            ]))
        })?,
    )?;

    type IntField = fn(&mut Config) -> &mut i32;
    let int_options: [(&'static str, IntField, i32, i32); 3] = [
        ("encode_max_depth", |c| &mut c.encode_max_depth, 1, i32::MAX),
        ("decode_max_depth", |c| &mut c.decode_max_depth, 1, i32::MAX),
        ("encode_number_precision", |c| &mut c.precision, 1, 14),
    ];
    for (name, field, min, max) in int_options {
        let cfg = shared.clone();
        m.raw_set(
            name,
            lua_function(lua, move |lua, args| {
                check_arg_count(&args, 1, name)?;
                let value = integer_option(lua, &args, 1, name, min, max)?;
                let mut c = config(&cfg);
                if let Some(v) = value {
                    c = update(&cfg, |c| *field(c) = v);
                }
                one(Value::Number(*field(&mut c) as f64))
            })?,
        )?;
    }

    let enum_options: [(&'static str, IntField, &'static [&'static str]); 3] = [
        ("encode_keep_buffer", |c| &mut c.keep_buffer, &BOOL_OPTIONS),
        (
            "encode_invalid_numbers",
            |c| &mut c.encode_invalid_numbers,
            &INVALID_NUMBER_OPTIONS,
        ),
        (
            "decode_invalid_numbers",
            |c| &mut c.decode_invalid_numbers,
            &BOOL_OPTIONS,
        ),
    ];
    for (name, field, options) in enum_options {
        let cfg = shared.clone();
        m.raw_set(
            name,
            lua_function(lua, move |lua, args| {
                check_arg_count(&args, 1, name)?;
                let value = enum_option(lua, &args, 1, name, options)?;
                let mut c = config(&cfg);
                if let Some(v) = value {
                    c = update(&cfg, |c| *field(c) = v);
                }
                one(enum_value(lua, *field(&mut c), options)?)
            })?,
        )?;
    }

    m.raw_set(
        "new",
        lua_function(lua, |lua, _args| one(Value::Table(build_module(lua)?)))?,
    )?;
    m.raw_set("null", Value::NULL)?;
    m.raw_set("_NAME", "cjson")?;
    m.raw_set("_VERSION", "2.1.0")?;
    Ok(m)
}

pub fn register(lua: &Lua) -> mlua::Result<()> {
    let module = build_module(lua)?;
    lua.globals().set("cjson", module)
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    fn lua() -> Lua {
        let lua = Lua::new();
        super::register(&lua).unwrap();
        lua
    }

    /// Expected outputs come from redis-server 7.0.15 running the same
    /// harness (`super::super::HARNESS`) through EVAL. Cases that change
    /// settings do so on a `cjson.new()` instance.
    #[test]
    fn matches_redis() {
        let cases: &[(&str, &str)] = &[
            (r#"cjson.encode({1, 2, 3})"#, r#""[1,2,3]""#),
            (r#"cjson.encode({})"#, r#""{}""#),
            (r#"cjson.encode({a = 1})"#, r#""{\22a\22:1}""#),
            (
                r#"cjson.encode({a = {b = {c = 'd'}}})"#,
                r#""{\22a\22:{\22b\22:{\22c\22:\22d\22}}}""#,
            ),
            (r#"cjson.encode('abc')"#, r#""\22abc\22""#),
            (r#"cjson.encode(123)"#, r#""123""#),
            (
                r#"cjson.encode(true), cjson.encode(false), cjson.encode(nil), cjson.encode(cjson.null)"#,
                r#""true" "false" "null" "null""#,
            ),
            (
                r#"cjson.encode('a"b\\c/d\be\ff\ng\rh\ti\0j\1k\31l\127m\128\255')"#,
                r#""\22a\5c\22b\5c\5cc\5c/d\5cbe\5cff\5cng\5crh\5cti\5cu0000j\5cu0001k\5cu001fl\5cu007fm\80\ff\22""#,
            ),
            (
                r#"cjson.encode('caf\195\169 \240\159\152\128')"#,
                r#""\22caf\c3\a9 \f0\9f\98\80\22""#,
            ),
            (
                r#"cjson.encode({0.1, 1/3, 1e20, 123456789012345678, -0.0, 1e-5, 100, 1e15, 1e14, 123456789012345, 0.00001234, 2^53, -1.5e-300, 5e-324, 1.7976931348623157e308})"#,
                r#""[0.1,0.33333333333333,1e+20,1.2345678901235e+17,-0,1e-05,100,1e+15,1e+14,1.2345678901234e+14,1.234e-05,9.007199254741e+15,-1.5e-300,4.9406564584125e-324,1.7976931348623e+308]""#,
            ),
            (r#"cjson.encode({1, nil, 3})"#, r#""[1,null,3]""#),
            (
                r#"cjson.encode({[1] = 1, [2] = 2, [4] = 4})"#,
                r#""[1,2,null,4]""#,
            ),
            (r#"cjson.encode({[3] = 'x'})"#, r#""[null,null,\22x\22]""#),
            (
                r#"cjson.encode({[10] = 'x'})"#,
                r#""[null,null,null,null,null,null,null,null,null,\22x\22]""#,
            ),
            (
                r#"cjson.encode({[11] = 'x'})"#,
                r#"ERR:user_script:1: Cannot serialise table: excessively sparse array"#,
            ),
            (
                r#"cjson.encode({[1] = 1, [20] = 20})"#,
                r#"ERR:user_script:1: Cannot serialise table: excessively sparse array"#,
            ),
            (r#"cjson.encode({[0] = 1})"#, r#""{\220\22:1}""#),
            (r#"cjson.encode({[-1] = 1})"#, r#""{\22-1\22:1}""#),
            (r#"cjson.encode({[1.5] = 1})"#, r#""{\221.5\22:1}""#),
            (
                r#"cjson.encode({[1] = 'a', x = 'b'})"#,
                r#""{\221\22:\22a\22,\22x\22:\22b\22}""#,
            ),
            (
                r#"cjson.encode({[true] = 1})"#,
                r#"ERR:user_script:1: Cannot serialise boolean: table key must be a number or string"#,
            ),
            (
                r#"cjson.encode({[{}] = 1})"#,
                r#"ERR:user_script:1: Cannot serialise table: table key must be a number or string"#,
            ),
            (
                r#"cjson.encode({[2^40] = 1})"#,
                r#""{\221099511627776\22:1}""#,
            ),
            (
                r#"cjson.encode({[1/0] = 1})"#,
                r#"ERR:user_script:1: Cannot serialise number: must not be NaN or Inf"#,
            ),
            (
                r#"cjson.encode(function() end)"#,
                r#"ERR:user_script:1: Cannot serialise function: type not supported"#,
            ),
            (
                r#"cjson.encode({f = function() end})"#,
                r#"ERR:user_script:1: Cannot serialise function: type not supported"#,
            ),
            (
                r#"cjson.encode(coroutine.create(function() end))"#,
                r#"ERR:user_script:1: Cannot serialise thread: type not supported"#,
            ),
            (
                r#"cjson.encode(1/0)"#,
                r#"ERR:user_script:1: Cannot serialise number: must not be NaN or Inf"#,
            ),
            (
                r#"cjson.encode(-1/0)"#,
                r#"ERR:user_script:1: Cannot serialise number: must not be NaN or Inf"#,
            ),
            (
                r#"cjson.encode(0/0)"#,
                r#"ERR:user_script:1: Cannot serialise number: must not be NaN or Inf"#,
            ),
            (
                r#"cjson.encode()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode' (expected 1 argument)"#,
            ),
            (
                r#"cjson.encode(1, 2)"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode' (expected 1 argument)"#,
            ),
            (r#"cjson.encode({{{{}}}})"#, r#""[[[{}]]]""#),
            (
                r#"(function() local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end return #cjson.encode(t) end)()"#,
                r#"2000"#,
            ),
            (
                r#"(function() local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end return pcall(cjson.encode, t) end)()"#,
                r#"false "Cannot serialise, excessive nesting (1001)""#,
            ),
            (
                r#"(function() local t = {} t[1] = t return pcall(cjson.encode, t) end)()"#,
                r#"false "Cannot serialise, excessive nesting (1001)""#,
            ),
            (
                r#"(function() local t = {} t.a = t return pcall(cjson.encode, t) end)()"#,
                r#"false "Cannot serialise, excessive nesting (1001)""#,
            ),
            (
                r#"(function() local j = cjson.new() j.encode_max_depth(100000) local t = {} local c = t for i = 1, 10000 do c[1] = {} c = c[1] end return pcall(j.encode, t) end)()"#,
                r#"false "Cannot serialise, excessive nesting (7998)""#,
            ),
            (
                r#"(function() local j = cjson.new() j.encode_max_depth(100000) local t = {} local c = t for i = 1, 10000 do c.a = {} c = c.a end return pcall(j.encode, t) end)()"#,
                r#"false "Cannot serialise, excessive nesting (4000)""#,
            ),
            (
                r#"(function() local j = cjson.new() j.encode_max_depth(100000) local t = {} local c = t for i = 1, 3998 do c.a = {} c = c.a end return #j.encode(t) end)()"#,
                r#"23990"#,
            ),
            (
                r#"(function() local j = cjson.new() j.encode_max_depth(100000) local t = {} local c = t for i = 1, 7996 do c[1] = {} c = c[1] end return #j.encode(t) end)()"#,
                r#"15994"#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_max_depth(3), pcall(j.encode, {{{1}}}), pcall(j.encode, {{{{1}}}}) end)()"#,
                r#"3 true false "Cannot serialise, excessive nesting (4)""#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_sparse_array(true), j.encode({[1] = 1, [20] = 20}), j.encode({[3] = 'x'}) end)()"#,
                r#"true "{\221\22:1,\2220\22:20}" "[null,null,\22x\22]""#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_sparse_array(false, 0), j.encode({[1] = 1, [20] = 20}) end)()"#,
                r#"false "[1,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,20]""#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_sparse_array(false, 1, 0), pcall(j.encode, {[1] = 1, [3] = 3}) end)()"#,
                r#"false false "Cannot serialise table: excessively sparse array""#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_sparse_array(nil, nil, 50), j.encode({[40] = 1}) end)()"#,
                r#"false "[null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,1]""#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_sparse_array('on', 3, 4), j.encode_sparse_array() end)()"#,
                r#"true true 3 4"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_sparse_array('yes') return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_sparse_array' (invalid option 'yes')"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_sparse_array(true, -1) return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_sparse_array(true, 1, -1) return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_sparse_array(true, 'x') return r end)()"#,
                r#"ERR:user_script:1: bad argument #2 to 'encode_sparse_array' (number expected, got string)"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_sparse_array(true, 1, 1, 1) return r end)()"#,
                r#"ERR:user_script:1: bad argument #4 to 'encode_sparse_array' (found too many arguments)"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_sparse_array({}) return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_sparse_array' (string expected, got table)"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_sparse_array(1) return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_sparse_array' (invalid option '1')"#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_number_precision(), j.encode_number_precision(3), j.encode(math.pi), j.encode({[math.pi] = 1}), j.encode(12345) end)()"#,
                r#"14 3 "3.14" "{\223.14\22:1}" "1.23e+04""#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_number_precision(0) return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_number_precision(15) return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_number_precision('5') return r end)()"#,
                r#"5"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_number_precision(2.9) return r end)()"#,
                r#"2"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_max_depth(0) return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)"#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_max_depth(1, 2) return r end)()"#,
                r#"ERR:user_script:1: bad argument #2 to 'encode_max_depth' (found too many arguments)"#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_max_depth(2^32 + 7) end)()"#,
                r#"7"#,
            ),
            (
                r#"(function() local j = cjson.new() return j.decode_max_depth(), j.decode_max_depth(2), pcall(j.decode, '[[1]]'), pcall(j.decode, '[[[1]]]') end)()"#,
                r#"1000 2 true false "Found too many nested data structures (3) at character 3""#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.decode_max_depth(-1) return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'decode_max_depth' (expected integer between 1 and 2147483647)"#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_keep_buffer(), j.encode_keep_buffer(false), j.encode_keep_buffer(), j.encode_keep_buffer('on'), j.encode({1}) end)()"#,
                r#"true false false true "[1]""#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_keep_buffer('maybe') return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_keep_buffer' (invalid option 'maybe')"#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_invalid_numbers(), j.encode_invalid_numbers(true), j.encode(1/0), j.encode(-1/0), j.encode(0/0), j.encode({[1/0] = 1}) end)()"#,
                r#"false true "inf" "-inf" "nan" "{\22inf\22:1}""#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_invalid_numbers('null'), j.encode({1/0, 0/0, 1}), j.encode_invalid_numbers() end)()"#,
                r#""null" "[null,null,1]" "null""#,
            ),
            (
                r#"(function() local j = cjson.new() return j.encode_invalid_numbers('off'), pcall(j.encode, 0/0) end)()"#,
                r#"false false "Cannot serialise number: must not be NaN or Inf""#,
            ),
            (
                r#"(function() local j = cjson.new() local r = j.encode_invalid_numbers('nil') return r end)()"#,
                r#"ERR:user_script:1: bad argument #1 to 'encode_invalid_numbers' (invalid option 'nil')"#,
            ),
            (
                r#"(function() local j = cjson.new() return j.decode_invalid_numbers(), j.decode_invalid_numbers(false), pcall(j.decode, '0x10'), pcall(j.decode, 'nan'), pcall(j.decode, '+1'), pcall(j.decode, '012'), pcall(j.decode, '-inf'), j.decode('0.5'), j.decode('-0') end)()"#,
                r#"true false false false false false false 0.5 -0"#,
            ),
            (
                r#"(function() local j = cjson.new() return j.decode_invalid_numbers('on'), j.decode('Infinity') end)()"#,
                r#"true inf"#,
            ),
            (
                r#"(function() local j = cjson.new() return j ~= cjson, j.null == cjson.null, j._NAME, j._VERSION, type(j.new) end)()"#,
                r#"true true "cjson" "2.1.0" "function""#,
            ),
            (
                r#"cjson._NAME, cjson._VERSION, cjson.safe"#,
                r#""cjson" "2.1.0" nil"#,
            ),
            (r#"cjson.decode('[1,2,3]')"#, r#"{1=1,2=2,3=3}"#),
            (
                r#"cjson.decode('{"a":1,"b":[true,false,null],"c":{"d":"e"}}')"#,
                r#"{"a"=1,"b"={1=true,2=false,3=null},"c"={"d"="e"}}"#,
            ),
            (r#"cjson.decode('  [ 1 , 2 ]  ')"#, r#"{1=1,2=2}"#),
            (r#"cjson.decode('{}'), cjson.decode('[]')"#, r#"{} {}"#),
            (
                r#"cjson.decode('"abc"'), cjson.decode('123'), cjson.decode('true'), cjson.decode('false'), cjson.decode('null')"#,
                r#""abc" 123 true false null"#,
            ),
            (r#"cjson.decode('[null]')[1] == cjson.null"#, r#"true"#),
            (
                r#"cjson.decode('"\\"\\\\\\/\\b\\f\\n\\r\\t"')"#,
                r#""\22\5c/\08\0c\0a\0d\09""#,
            ),
            (
                r#"cjson.decode('"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\u0000z"')"#,
                r#""A\c3\a9\e2\82\ac\f0\9f\98\80\00z""#,
            ),
            (r#"cjson.decode('"\\uD83D\\uDE00"')"#, r#""\f0\9f\98\80""#),
            (
                r#"cjson.decode('"\\udc00"')"#,
                r#"ERR:user_script:1: Expected value but found invalid unicode escape code at character 2"#,
            ),
            (
                r#"cjson.decode('"\\ud800x"')"#,
                r#"ERR:user_script:1: Expected value but found invalid unicode escape code at character 2"#,
            ),
            (
                r#"cjson.decode('"\\ud800\\u0041"')"#,
                r#"ERR:user_script:1: Expected value but found invalid unicode escape code at character 2"#,
            ),
            (
                r#"cjson.decode('"\\u12"')"#,
                r#"ERR:user_script:1: Expected value but found invalid unicode escape code at character 2"#,
            ),
            (
                r#"cjson.decode('"\\u12G4"')"#,
                r#"ERR:user_script:1: Expected value but found invalid unicode escape code at character 2"#,
            ),
            (
                r#"cjson.decode('"\\q"')"#,
                r#"ERR:user_script:1: Expected value but found invalid escape code at character 2"#,
            ),
            (
                r#"cjson.decode('"abc')"#,
                r#"ERR:user_script:1: Expected value but found unexpected end of string at character 5"#,
            ),
            (r#"cjson.decode('"a\1b\255"')"#, r#""a\01b\ff""#),
            (
                r#"cjson.decode('0x10'), cjson.decode('+5'), cjson.decode('012'), cjson.decode('-Infinity'), cjson.decode('nan'), cjson.decode('1e400'), cjson.decode('-.5')"#,
                r#"16 5 12 -inf nan inf -0.5"#,
            ),
            (
                r#"cjson.decode('123456789012345678901234567890'), cjson.decode('1e99999999999999999999'), cjson.decode('1e-400'), cjson.decode('0x1p4'), cjson.decode('0x.8'), cjson.decode('0XaBp-1')"#,
                r#"1.2345678901235e+29 inf 0 16 0.5 85.5"#,
            ),
            (
                r#"cjson.decode('1.5e3'), cjson.decode('1E+2'), cjson.decode('-0.0'), cjson.decode('5.'), cjson.decode('9007199254740993')"#,
                r#"1500 100 -0 5 9.007199254741e+15"#,
            ),
            (
                r#"cjson.decode('NaN(123)'), cjson.decode('-nan'), cjson.decode('infinity'), cjson.decode('-0'), cjson.decode('inFINity')"#,
                r#"nan -nan inf -0 inf"#,
            ),
            (
                r#"cjson.decode('0x')"#,
                r#"ERR:user_script:1: Expected the end but found invalid token at character 2"#,
            ),
            (
                r#"cjson.decode('1e')"#,
                r#"ERR:user_script:1: Expected the end but found invalid token at character 2"#,
            ),
            (
                r#"cjson.decode('1e+')"#,
                r#"ERR:user_script:1: Expected the end but found invalid token at character 2"#,
            ),
            (
                r#"cjson.decode('1.5.5')"#,
                r#"ERR:user_script:1: Expected the end but found invalid token at character 4"#,
            ),
            (
                r#"cjson.decode('- 1')"#,
                r#"ERR:user_script:1: Expected value but found invalid number at character 1"#,
            ),
            (
                r#"cjson.decode('nil')"#,
                r#"ERR:user_script:1: Expected value but found invalid token at character 1"#,
            ),
            (
                r#"cjson.decode('tru')"#,
                r#"ERR:user_script:1: Expected value but found invalid token at character 1"#,
            ),
            (
                r#"cjson.decode('nul')"#,
                r#"ERR:user_script:1: Expected value but found invalid token at character 1"#,
            ),
            (
                r#"cjson.decode('x')"#,
                r#"ERR:user_script:1: Expected value but found invalid token at character 1"#,
            ),
            (
                r#"cjson.decode('-')"#,
                r#"ERR:user_script:1: Expected value but found invalid number at character 1"#,
            ),
            (
                r#"cjson.decode('.5')"#,
                r#"ERR:user_script:1: Expected value but found invalid token at character 1"#,
            ),
            (
                r#"cjson.decode('+')"#,
                r#"ERR:user_script:1: Expected value but found invalid number at character 1"#,
            ),
            (
                r#"cjson.decode('in')"#,
                r#"ERR:user_script:1: Expected value but found invalid token at character 1"#,
            ),
            (
                r#"cjson.decode('[1,]')"#,
                r#"ERR:user_script:1: Expected value but found T_ARR_END at character 4"#,
            ),
            (
                r#"cjson.decode('[,1]')"#,
                r#"ERR:user_script:1: Expected value but found T_COMMA at character 2"#,
            ),
            (
                r#"cjson.decode('[1')"#,
                r#"ERR:user_script:1: Expected comma or array end but found T_END at character 3"#,
            ),
            (
                r#"cjson.decode('{"a":1,}')"#,
                r#"ERR:user_script:1: Expected object key string but found T_OBJ_END at character 8"#,
            ),
            (
                r#"cjson.decode('{"a":1')"#,
                r#"ERR:user_script:1: Expected comma or object end but found T_END at character 7"#,
            ),
            (
                r#"cjson.decode('{"a" 1}')"#,
                r#"ERR:user_script:1: Expected colon but found T_NUMBER at character 6"#,
            ),
            (
                r#"cjson.decode('{1:2}')"#,
                r#"ERR:user_script:1: Expected object key string but found T_NUMBER at character 2"#,
            ),
            (
                r#"cjson.decode('[1 2]')"#,
                r#"ERR:user_script:1: Expected comma or array end but found T_NUMBER at character 4"#,
            ),
            (
                r#"cjson.decode('1 2')"#,
                r#"ERR:user_script:1: Expected the end but found T_NUMBER at character 3"#,
            ),
            (
                r#"cjson.decode(']')"#,
                r#"ERR:user_script:1: Expected value but found T_ARR_END at character 1"#,
            ),
            (
                r#"cjson.decode('')"#,
                r#"ERR:user_script:1: Expected value but found T_END at character 1"#,
            ),
            (
                r#"cjson.decode(' ')"#,
                r#"ERR:user_script:1: Expected value but found T_END at character 2"#,
            ),
            (
                r#"cjson.decode('\0')"#,
                r#"ERR:user_script:1: Expected value but found T_END at character 1"#,
            ),
            (
                r#"cjson.decode('1\0')"#,
                r#"ERR:user_script:1: JSON parser does not support UTF-16 or UTF-32"#,
            ),
            (
                r#"cjson.decode('\0\0')"#,
                r#"ERR:user_script:1: JSON parser does not support UTF-16 or UTF-32"#,
            ),
            (r#"cjson.decode('  1\0')"#, r#"1"#),
            (r#"cjson.decode('[1]\0garbage')"#, r#"{1=1}"#),
            (r#"cjson.decode(123)"#, r#"123"#),
            (
                r#"cjson.decode()"#,
                r#"ERR:user_script:1: bad argument #1 to 'decode' (expected 1 argument)"#,
            ),
            (
                r#"cjson.decode('1', '2')"#,
                r#"ERR:user_script:1: bad argument #1 to 'decode' (expected 1 argument)"#,
            ),
            (
                r#"cjson.decode({})"#,
                r#"ERR:user_script:1: bad argument #1 to 'decode' (string expected, got table)"#,
            ),
            (r#"cjson.decode('{"a":1,"a":2}')"#, r#"{"a"=2}"#),
            (r#"cjson.decode('{"1":1}')"#, r#"{"1"=1}"#),
            (r#"cjson.decode('[1,null,3]')"#, r#"{1=1,2=null,3=3}"#),
            (
                r#"cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000)) ~= nil"#,
                r#"true"#,
            ),
            (
                r#"cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))"#,
                r#"ERR:user_script:1: Found too many nested data structures (1001) at character 1001"#,
            ),
            (
                r#"cjson.decode(string.rep('{"a":', 1001) .. '1' .. string.rep('}', 1001))"#,
                r#"ERR:user_script:1: Found too many nested data structures (1001) at character 5001"#,
            ),
            (
                r#"(function() local j = cjson.new() j.decode_max_depth(100000) return pcall(j.decode, string.rep('[', 10000)) end)()"#,
                r#"false "Found too many nested data structures (7999) at character 7999""#,
            ),
            (
                r#"(function() local j = cjson.new() j.decode_max_depth(100000) return pcall(j.decode, string.rep('{"a":', 10000)) end)()"#,
                r#"false "Found too many nested data structures (4000) at character 19996""#,
            ),
            (
                r#"(function() local j = cjson.new() j.decode_max_depth(100000) local t = j.decode(string.rep('[', 7998) .. string.rep(']', 7998)) local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d end)()"#,
                r#"7998"#,
            ),
            (
                r#"(function() local j = cjson.new() j.decode_max_depth(100000) local t = j.decode(string.rep('{"a":', 3999) .. '1' .. string.rep('}', 3999)) local d = 0 while type(t) == 'table' do t = t.a d = d + 1 end return d end)()"#,
                r#"3999"#,
            ),
            (
                r#"cjson.decode(cjson.encode({a = {1, 2, {b = 'c'}}, d = 'e\0f', g = -1.25}))"#,
                r#"{"a"={1=1,2=2,3={"b"="c"}},"d"="e\00f","g"=-1.25}"#,
            ),
            (
                r#"cjson.decode(cjson.encode('\0\1\127\128\255'))"#,
                r#""\00\01\7f\80\ff""#,
            ),
        ];
        super::super::check_cases(&lua(), cases);
    }

    #[test]
    fn format_g_matches_printf() {
        let cases: &[(f64, i32, &str)] = &[
            (0.1, 14, "0.1"),
            (1e21, 14, "1e+21"),
            (123456.0, 3, "1.23e+05"),
            (0.0001, 14, "0.0001"),
            (0.00001, 14, "1e-05"),
            (99999999999999.5, 14, "1e+14"),
            (-2.5, 1, "-2"),
            (1e-310, 14, "1e-310"),
        ];
        for (x, p, want) in cases {
            assert_eq!(super::format_g(*x, *p), *want, "{x} %.{p}g");
        }
    }

    #[test]
    fn config_is_per_instance_and_persistent() {
        let lua = lua();
        let got: String = lua
            .load(
                "cjson.encode_number_precision(3) \
                 local other = cjson.new() \
                 return cjson.encode(math.pi) .. ' ' .. other.encode(math.pi)",
            )
            .eval()
            .unwrap();
        assert_eq!(got, "3.14 3.1415926535898");
    }

    #[test]
    fn never_panics_on_garbage() {
        let lua = lua();
        let decode: mlua::Function = lua.load("return cjson.decode").eval().unwrap();
        let alphabet = b"{}[],:\"\\/ubfnrt0123456789-+.eExXaAiInNlsp \t\n\x00\xff";
        let mut seed: u32 = 99;
        for round in 0..4000 {
            let len = round % 20;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                buf.push(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            let s = lua.create_string(&buf).unwrap();
            let _ = decode.call::<mlua::Value>(s);
        }
    }
}
