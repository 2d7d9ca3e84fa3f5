//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis 7.0 ships it (Lua 5.1 build on a
//! 64-bit host).

use mlua::{Lua, MultiValue, Table, Value};

use super::{
    arg_error, check_integer, check_string, core_error, double_to_i64, lua_function, new_module,
    opt_integer, rt_error, Ret,
};

/// Tables nested deeper than this are packed as nil.
const MAX_NESTING: usize = 16;
/// Lua 5.1's limit of stack slots for a C function (LUAI_MAXCSTACK); the C
/// decoder fails with a stack overflow when it would exceed it.
const MAX_STACK: usize = 8000;

// ----------------------------------------------------------------- encoding

fn encode_int(buf: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            buf.push(n as u8);
        } else if n <= 0xff {
            buf.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            buf.push(0xcd);
            buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            buf.push(0xce);
            buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            buf.push(0xcf);
            buf.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        buf.push(n as i8 as u8);
    } else if n >= -128 {
        buf.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        buf.push(0xd1);
        buf.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        buf.push(0xd2);
        buf.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(buf: &mut Vec<u8>, n: f64) {
    if !n.is_infinite() && double_to_i64(n) as f64 == n {
        encode_int(buf, double_to_i64(n));
        return;
    }
    let f = n as f32;
    if f as f64 == n {
        buf.push(0xca);
        buf.extend_from_slice(&f.to_be_bytes());
    } else {
        buf.push(0xcb);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        buf.push(0xa0 | len as u8);
    } else if len <= 0xff {
        buf.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        buf.push(0xda);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    }
    buf.extend_from_slice(s);
}

fn encode_header(buf: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        buf.push(fix | n as u8);
    } else if n <= 0xffff {
        buf.push(b16);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(b32);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// True when the keys are exactly the integers 1..n (each fitting a C int).
fn table_is_array(t: &Table) -> mlua::Result<bool> {
    let mut count: i64 = 0;
    let mut max: i64 = 0;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(false),
        };
        if n <= 0.0 || n > i32::MAX as f64 || n.fract() != 0.0 {
            return Ok(false);
        }
        max = max.max(n as i64);
        count += 1;
    }
    Ok(max == count)
}

fn encode_value(buf: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => encode_bytes(buf, &s.as_bytes()),
        Value::Boolean(b) => buf.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_number(buf, *i as f64),
        Value::Number(n) => encode_number(buf, *n),
        Value::Table(t) if level < MAX_NESTING => {
            if table_is_array(t)? {
                let len = t.raw_len();
                encode_header(buf, len, 0x90, 0xdc, 0xdd);
                for j in 1..=len {
                    let item: Value = t.raw_get(j)?;
                    encode_value(buf, &item, level + 1)?;
                }
            } else {
                let mut len = 0usize;
                for pair in t.pairs::<Value, Value>() {
                    pair?;
                    len += 1;
                }
                encode_header(buf, len, 0x80, 0xde, 0xdf);
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    encode_value(buf, &k, level + 1)?;
                    encode_value(buf, &v, level + 1)?;
                }
            }
        }
        _ => buf.push(0xc0),
    }
    Ok(())
}

fn pack(lua: &Lua, args: MultiValue) -> Ret {
    if args.is_empty() {
        return Err(arg_error(0, "pack", "MessagePack pack needs input."));
    }
    let mut buf = Vec::new();
    for v in args.iter() {
        encode_value(&mut buf, v, 0)?;
    }
    Ok(MultiValue::from_vec(vec![Value::String(
        lua.create_string(&buf)?,
    )]))
}

// ----------------------------------------------------------------- decoding

enum DecodeError {
    /// Input ended inside a value.
    Eof,
    /// A type byte this library does not know.
    BadFormat,
    /// A Lua-level error (stack overflow, nil table index, ...).
    Lua(mlua::Error),
}

impl From<mlua::Error> for DecodeError {
    fn from(e: mlua::Error) -> Self {
        DecodeError::Lua(e)
    }
}

/// A container being filled; `top` is the emulated C stack height before
/// the container was pushed (see `Decoder::value`). The tables and pending
/// map keys live in Lua-side lists indexed by depth, so only a few mlua
/// references are alive however deep the data goes (mlua can hold only about
/// 8000 references with Lua 5.1).
enum Frame {
    Array {
        len: u64,
        next: u64,
        top: usize,
    },
    Map {
        left: u64,
        has_key: bool,
        nil_key: bool,
        top: usize,
    },
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
}

enum Item {
    Done(Value),
    Array(u64),
    Map(u64),
}

impl Decoder<'_> {
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.left() < n {
            Err(DecodeError::Eof)
        } else {
            Ok(())
        }
    }

    fn bytes<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut b = [0u8; N];
        b.copy_from_slice(&self.data[self.pos + at..self.pos + at + N]);
        b
    }

    fn string(&mut self, lua: &Lua, hdr: usize, len: usize) -> Result<Item, DecodeError> {
        match hdr.checked_add(len) {
            Some(total) if total <= self.left() => {}
            _ => return Err(DecodeError::Eof),
        }
        let start = self.pos + hdr;
        let s = lua.create_string(&self.data[start..start + len])?;
        self.pos = start + len;
        Ok(Item::Done(Value::String(s)))
    }

    /// Reads one item header (scalars completely).
    fn item(&mut self, lua: &Lua) -> Result<Item, DecodeError> {
        let b = self.data[self.pos];
        let num = |n: f64| Item::Done(Value::Number(n));
        let (item, size) = match b {
            0xcc => {
                self.need(2)?;
                (num(self.data[self.pos + 1] as f64), 2)
            }
            0xd0 => {
                self.need(2)?;
                (num(self.data[self.pos + 1] as i8 as f64), 2)
            }
            0xcd => {
                self.need(3)?;
                (num(u16::from_be_bytes(self.bytes(1)) as f64), 3)
            }
            0xd1 => {
                self.need(3)?;
                (num(i16::from_be_bytes(self.bytes(1)) as f64), 3)
            }
            0xce => {
                self.need(5)?;
                (num(u32::from_be_bytes(self.bytes(1)) as f64), 5)
            }
            0xd2 => {
                self.need(5)?;
                (num(i32::from_be_bytes(self.bytes(1)) as f64), 5)
            }
            0xcf => {
                // Pushed through lua_pushinteger: values past i64::MAX wrap.
                self.need(9)?;
                (num(u64::from_be_bytes(self.bytes(1)) as i64 as f64), 9)
            }
            0xd3 => {
                self.need(9)?;
                (num(i64::from_be_bytes(self.bytes(1)) as f64), 9)
            }
            0xc0 => (Item::Done(Value::Nil), 1),
            0xc3 => (Item::Done(Value::Boolean(true)), 1),
            0xc2 => (Item::Done(Value::Boolean(false)), 1),
            0xca => {
                self.need(5)?;
                (num(f32::from_be_bytes(self.bytes(1)) as f64), 5)
            }
            0xcb => {
                self.need(9)?;
                (num(f64::from_be_bytes(self.bytes(1))), 9)
            }
            0xd9 => {
                self.need(2)?;
                let len = self.data[self.pos + 1] as usize;
                return self.string(lua, 2, len);
            }
            0xda => {
                self.need(3)?;
                let len = u16::from_be_bytes(self.bytes(1)) as usize;
                return self.string(lua, 3, len);
            }
            0xdb => {
                self.need(5)?;
                let len = u32::from_be_bytes(self.bytes(1)) as usize;
                return self.string(lua, 5, len);
            }
            0xdc => {
                self.need(3)?;
                (Item::Array(u16::from_be_bytes(self.bytes(1)) as u64), 3)
            }
            0xdd => {
                self.need(5)?;
                (Item::Array(u32::from_be_bytes(self.bytes(1)) as u64), 5)
            }
            0xde => {
                self.need(3)?;
                (Item::Map(u16::from_be_bytes(self.bytes(1)) as u64), 3)
            }
            0xdf => {
                self.need(5)?;
                (Item::Map(u32::from_be_bytes(self.bytes(1)) as u64), 5)
            }
            _ if b & 0x80 == 0 => (num(b as f64), 1),
            _ if b & 0xe0 == 0xe0 => (num(b as i8 as f64), 1),
            _ if b & 0xe0 == 0xa0 => return self.string(lua, 1, (b & 0x1f) as usize),
            _ if b & 0xf0 == 0x90 => (Item::Array((b & 0x0f) as u64), 1),
            _ if b & 0xf0 == 0x80 => (Item::Map((b & 0x0f) as u64), 1),
            _ => return Err(DecodeError::BadFormat),
        };
        self.pos += size;
        Ok(item)
    }

    /// Decodes one complete value whose slot on the emulated Lua stack is
    /// `top + 1` (the C decoder's stack height before pushing it is `top`).
    fn value(&mut self, lua: &Lua, top: usize) -> Result<Value, DecodeError> {
        let mut stack: Vec<Frame> = Vec::new();
        let tables = lua.create_table()?;
        let keys = lua.create_table()?;
        let mut top = top;
        loop {
            self.need(1)?;
            if top + 1 > MAX_STACK {
                return Err(DecodeError::Lua(rt_error(
                    "stack overflow (too many return values at once; \
                     use unpack_one or unpack_limit instead.)",
                )));
            }
            let mut v = match self.item(lua)? {
                Item::Done(v) => v,
                Item::Array(len) => {
                    let t = lua.create_table()?;
                    if top + 2 > MAX_STACK {
                        return Err(DecodeError::Lua(rt_error(
                            "stack overflow (in function mp_decode_to_lua_array)",
                        )));
                    }
                    if len == 0 {
                        Value::Table(t)
                    } else {
                        tables.raw_set(stack.len() + 1, t)?;
                        stack.push(Frame::Array { len, next: 1, top });
                        top += 2;
                        continue;
                    }
                }
                Item::Map(len) => {
                    let t = lua.create_table()?;
                    if len == 0 {
                        Value::Table(t)
                    } else {
                        tables.raw_set(stack.len() + 1, t)?;
                        stack.push(Frame::Map {
                            left: len,
                            has_key: false,
                            nil_key: false,
                            top,
                        });
                        top += 1;
                        continue;
                    }
                }
            };
            // Store the finished value in its container(s).
            loop {
                let depth = stack.len();
                let Some(frame) = stack.last_mut() else {
                    return Ok(v);
                };
                match frame {
                    Frame::Array {
                        len,
                        next,
                        top: ftop,
                    } => {
                        let t: Table = tables.raw_get(depth)?;
                        t.raw_set(*next as f64, v)?;
                        *next += 1;
                        if *next > *len {
                            v = Value::Table(t);
                            tables.raw_set(depth, Value::Nil)?;
                            stack.pop();
                            continue;
                        }
                        top = *ftop + 2;
                        break;
                    }
                    Frame::Map {
                        left,
                        has_key,
                        nil_key,
                        top: ftop,
                    } => {
                        if !*has_key {
                            // A nil key cannot be parked in the list; like
                            // the C code, complain only once the value is
                            // decoded too.
                            *nil_key = v.is_nil();
                            keys.raw_set(depth, v)?;
                            *has_key = true;
                            top = *ftop + 2;
                            break;
                        }
                        if *nil_key {
                            return Err(core_error("table index is nil").into());
                        }
                        let k: Value = keys.raw_get(depth)?;
                        if let Value::Number(n) = k {
                            if n.is_nan() {
                                return Err(core_error("table index is NaN").into());
                            }
                        }
                        let t: Table = tables.raw_get(depth)?;
                        t.raw_set(k, v)?;
                        keys.raw_set(depth, Value::Nil)?;
                        *has_key = false;
                        *left -= 1;
                        if *left == 0 {
                            v = Value::Table(t);
                            tables.raw_set(depth, Value::Nil)?;
                            stack.pop();
                            continue;
                        }
                        top = *ftop + 1;
                        break;
                    }
                }
            }
        }
    }
}

fn unpack_full(lua: &Lua, s: &[u8], limit: i64, offset: i64) -> Ret {
    let len = s.len();
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(rt_error(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        )));
    } else if offset as u64 > len as u64 {
        return Err(rt_error(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        )));
    }
    let limit = if decode_all { i32::MAX as i64 } else { limit };
    let mut dec = Decoder {
        data: s,
        pos: offset as usize,
    };
    let mut out: Vec<Value> = Vec::new();
    let mut cnt: i64 = 0;
    while dec.left() > 0 && cnt < limit {
        // The C stack holds the input string and the values so far.
        match dec.value(lua, 1 + out.len()) {
            Ok(v) => out.push(v),
            Err(DecodeError::Eof) => return Err(rt_error("Missing bytes in input.")),
            Err(DecodeError::BadFormat) => return Err(rt_error("Bad data format in input.")),
            Err(DecodeError::Lua(e)) => return Err(e),
        }
        cnt += 1;
    }
    if !decode_all {
        if 1 + out.len() + 1 > MAX_STACK {
            return Err(rt_error("stack overflow (in function mp_unpack_full)"));
        }
        let next = if dec.left() == 0 { -1 } else { dec.pos as i64 };
        out.insert(0, Value::Number(next as f64));
    }
    Ok(MultiValue::from_vec(out))
}

fn unpack(lua: &Lua, args: MultiValue) -> Ret {
    let s = check_string(lua, &args, 1, "unpack")?;
    unpack_full(lua, &s.as_bytes(), 0, 0)
}

fn unpack_one(lua: &Lua, args: MultiValue) -> Ret {
    let offset = opt_integer(lua, &args, 2, "unpack_one", 0)?;
    let s = check_string(lua, &args, 1, "unpack_one")?;
    unpack_full(lua, &s.as_bytes(), 1, offset)
}

fn unpack_limit(lua: &Lua, args: MultiValue) -> Ret {
    let limit = check_integer(lua, &args, 2, "unpack_limit")?;
    let offset = opt_integer(lua, &args, 3, "unpack_limit", 0)?;
    let s = check_string(lua, &args, 1, "unpack_limit")?;
    unpack_full(lua, &s.as_bytes(), limit, offset)
}

pub fn register(lua: &Lua) -> mlua::Result<()> {
    let module = new_module(
        lua,
        vec![
            ("pack", lua_function(lua, pack)?),
            ("unpack", lua_function(lua, unpack)?),
            ("unpack_one", lua_function(lua, unpack_one)?),
            ("unpack_limit", lua_function(lua, unpack_limit)?),
        ],
    )?;
    module.raw_set("_NAME", "cmsgpack")?;
    module.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    module.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    module.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    lua.globals().set("cmsgpack", module)
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    fn lua() -> Lua {
        let lua = Lua::new();
        super::register(&lua).unwrap();
        // Some cases use cjson.null as a lightuserdata value.
        super::super::cjson::register(&lua).unwrap();
        lua
    }

    /// Expected outputs come from redis-server 7.0.15 running the same
    /// harness (`super::super::HARNESS`) through EVAL.
    #[test]
    fn matches_redis() {
        let cases: &[(&str, &str)] = &[
            (
                r#"cmsgpack.pack(0, 1, 127, 128, 255, 256, 65535, 65536, 2^32-1, 2^32, 2^53)"#,
                r#""\00\01\7f\cc\80\cc\ff\cd\01\00\cd\ff\ff\ce\00\01\00\00\ce\ff\ff\ff\ff\cf\00\00\00\01\00\00\00\00\cf\00 \00\00\00\00\00\00""#,
            ),
            (
                r#"cmsgpack.pack(-1, -32, -33, -128, -129, -32768, -32769, -2^31, -2^31-1, -2^53)"#,
                r#""\ff\e0\d0\df\d0\80\d1\ff\7f\d1\80\00\d2\ff\ff\7f\ff\d2\80\00\00\00\d3\ff\ff\ff\ff\7f\ff\ff\ff\d3\ff\e0\00\00\00\00\00\00""#,
            ),
            (
                r#"cmsgpack.pack(2^63, -2^63, 2^64, 1/0, -1/0)"#,
                r#""\ca_\00\00\00\d3\80\00\00\00\00\00\00\00\ca_\80\00\00\ca\7f\80\00\00\ca\ff\80\00\00""#,
            ),
            (
                r#"cmsgpack.pack(0.5, 0.1, -1.25, 1e300, 3.4028234663852886e38)"#,
                r#""\ca?\00\00\00\cb?\b9\99\99\99\99\99\9a\ca\bf\a0\00\00\cb~7\e4<\88\00u\9c\ca\7f\7f\ff\ff""#,
            ),
            (r#"cmsgpack.pack(0/0) ~= nil"#, r#"true"#),
            (r#"cmsgpack.pack(true, false, nil)"#, r#""\c3\c2\c0""#),
            (r#"cmsgpack.pack(nil)"#, r#""\c0""#),
            (
                r#"cmsgpack.pack()"#,
                r#"ERR:user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)"#,
            ),
            (
                r#"cmsgpack.pack('', 'abc', string.rep('x', 31))"#,
                r#""\a0\a3abc\bfxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx""#,
            ),
            (
                r#"cmsgpack.pack(string.rep('x', 32))"#,
                r#""\d9 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx""#,
            ),
            (
                r#"#cmsgpack.pack(string.rep('x', 255)), #cmsgpack.pack(string.rep('x', 256)), #cmsgpack.pack(string.rep('x', 65535)), #cmsgpack.pack(string.rep('x', 65536))"#,
                r#"257 259 65538 65541"#,
            ),
            (
                r#"cmsgpack.pack(string.rep('x', 256)):sub(1, 4)"#,
                r#""\da\01\00x""#,
            ),
            (
                r#"cmsgpack.pack(string.rep('x', 65536)):sub(1, 6)"#,
                r#""\db\00\01\00\00x""#,
            ),
            (r#"cmsgpack.pack('\0\1\255')"#, r#""\a3\00\01\ff""#),
            (r#"cmsgpack.pack({})"#, r#""\90""#),
            (r#"cmsgpack.pack({1, 2, 3})"#, r#""\93\01\02\03""#),
            (r#"cmsgpack.pack({1, nil, 3})"#, r#""\82\01\01\03\03""#),
            (r#"cmsgpack.pack({[2] = 1})"#, r#""\81\02\01""#),
            (r#"cmsgpack.pack({a = 1})"#, r#""\81\a1a\01""#),
            (r#"cmsgpack.pack({[1.5] = 1})"#, r#""\81\ca?\c0\00\00\01""#),
            (r#"cmsgpack.pack({[0] = 1})"#, r#""\81\00\01""#),
            (r#"cmsgpack.pack({[-1] = 1})"#, r#""\81\ff\01""#),
            (r#"cmsgpack.pack({[true] = 1})"#, r#""\81\c3\01""#),
            (r#"cmsgpack.pack({{}, {{}}})"#, r#""\92\90\91\90""#),
            (
                r#"cmsgpack.pack(function() end, coroutine.create(function() end))"#,
                r#""\c0\c0""#,
            ),
            (r#"cmsgpack.pack(cjson.null)"#, r#""\c0""#),
            (
                r#"cmsgpack.pack({[2^31] = 1})"#,
                r#""\81\ce\80\00\00\00\01""#,
            ),
            (
                r#"#cmsgpack.pack({1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16})"#,
                r#"19"#,
            ),
            (
                r#"cmsgpack.pack({1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16}):sub(1, 4)"#,
                r#""\dc\00\10\01""#,
            ),
            (
                r#"cmsgpack.pack((function() local t = {} for i = 1, 65536 do t[i] = 1 end return t end)()):sub(1, 6)"#,
                r#""\dd\00\01\00\00\01""#,
            ),
            (
                r#"cmsgpack.pack((function() local t = {} for i = 1, 16 do t['k' .. i] = 1 end return t end)()):sub(1, 3)"#,
                r#""\de\00\10""#,
            ),
            (
                r#"(function() local t = {} local c = t for i = 1, 20 do c[1] = {} c = c[1] end return cmsgpack.pack(t) end)()"#,
                r#""\91\91\91\91\91\91\91\91\91\91\91\91\91\91\91\91\c0""#,
            ),
            (
                r#"(function() local t = {} t[1] = t return cmsgpack.pack(t) end)()"#,
                r#""\91\91\91\91\91\91\91\91\91\91\91\91\91\91\91\91\c0""#,
            ),
            (
                r#"(function() local t = {} local c = t for i = 1, 20 do c.a = {} c = c.a end return cmsgpack.pack(t) end)()"#,
                r#""\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\81\a1a\c0""#,
            ),
            (
                r#"cmsgpack.unpack(cmsgpack.pack(1, -1, 'a', true, false, 0.5, {1, 2}, {a = {b = 'c'}}))"#,
                r#"1 -1 "a" true false 0.5 {1=1,2=2} {"a"={"b"="c"}}"#,
            ),
            (r#"cmsgpack.unpack(cmsgpack.pack(nil, 1))"#, r#"nil 1"#),
            (r#"cmsgpack.unpack('')"#, r#""#),
            (r#"cmsgpack.unpack('\192')"#, r#"nil"#),
            (
                r#"cmsgpack.unpack('\204')"#,
                r#"ERR:user_script:1: Missing bytes in input."#,
            ),
            (r#"cmsgpack.unpack('\204\1')"#, r#"1"#),
            (r#"cmsgpack.unpack('\208\255')"#, r#"-1"#),
            (r#"cmsgpack.unpack('\205\1\0')"#, r#"256"#),
            (r#"cmsgpack.unpack('\209\255\0')"#, r#"-256"#),
            (
                r#"cmsgpack.unpack('\206\255\255\255\255')"#,
                r#"4294967295"#,
            ),
            (r#"cmsgpack.unpack('\210\128\0\0\0')"#, r#"-2147483648"#),
            (
                r#"cmsgpack.unpack('\207\255\255\255\255\255\255\255\255')"#,
                r#"-1"#,
            ),
            (
                r#"cmsgpack.unpack('\207\0\0\0\1\0\0\0\0')"#,
                r#"4294967296"#,
            ),
            (
                r#"cmsgpack.unpack('\211\255\255\255\255\255\255\255\254')"#,
                r#"-2"#,
            ),
            (r#"cmsgpack.unpack('\202\63\192\0\0')"#, r#"1.5"#),
            (r#"cmsgpack.unpack('\203\63\248\0\0\0\0\0\0')"#, r#"1.5"#),
            (r#"cmsgpack.unpack('\217\3abc')"#, r#""abc""#),
            (r#"cmsgpack.unpack('\218\0\3abc')"#, r#""abc""#),
            (r#"cmsgpack.unpack('\219\0\0\0\3abc')"#, r#""abc""#),
            (
                r#"cmsgpack.unpack('\219\0\0\0\4abc')"#,
                r#"ERR:user_script:1: Missing bytes in input."#,
            ),
            (
                r#"cmsgpack.unpack('\163ab')"#,
                r#"ERR:user_script:1: Missing bytes in input."#,
            ),
            (
                r#"cmsgpack.unpack('\196\1a')"#,
                r#"ERR:user_script:1: Bad data format in input."#,
            ),
            (
                r#"cmsgpack.unpack('\193')"#,
                r#"ERR:user_script:1: Bad data format in input."#,
            ),
            (
                r#"cmsgpack.unpack('\212\1\1')"#,
                r#"ERR:user_script:1: Bad data format in input."#,
            ),
            (
                r#"cmsgpack.unpack('\146\1')"#,
                r#"ERR:user_script:1: Missing bytes in input."#,
            ),
            (r#"cmsgpack.unpack('\220\0\2\1\2')"#, r#"{1=1,2=2}"#),
            (r#"cmsgpack.unpack('\221\0\0\0\2\1\2')"#, r#"{1=1,2=2}"#),
            (r#"cmsgpack.unpack('\222\0\1\1\2')"#, r#"{1=2}"#),
            (r#"cmsgpack.unpack('\223\0\0\0\1\161a\2')"#, r#"{"a"=2}"#),
            (
                r#"cmsgpack.unpack('\129\192\1')"#,
                r#"ERR:table index is nil"#,
            ),
            (
                r#"cmsgpack.unpack('\129\203\255\248\0\0\0\0\0\0\1')"#,
                r#"ERR:table index is NaN"#,
            ),
            (r#"cmsgpack.unpack('\129\1\192')"#, r#"{}"#),
            (r#"cmsgpack.unpack('\145\192')"#, r#"{}"#),
            (r#"cmsgpack.unpack('\147\1\192\3')"#, r#"{1=1,3=3}"#),
            (r#"cmsgpack.unpack('\255\224\127')"#, r#"-1 -32 127"#),
            (r#"cmsgpack.unpack(5)"#, r#"53"#),
            (
                r#"cmsgpack.unpack()"#,
                r#"ERR:user_script:1: bad argument #1 to 'unpack' (string expected, got no value)"#,
            ),
            (
                r#"cmsgpack.unpack({})"#,
                r#"ERR:user_script:1: bad argument #1 to 'unpack' (string expected, got table)"#,
            ),
            (r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))"#, r#"1 1"#),
            (
                r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1)"#,
                r#"2 2"#,
            ),
            (
                r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)"#,
                r#"-1 3"#,
            ),
            (r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 3)"#, r#"-1"#),
            (
                r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 4)"#,
                r#"ERR:user_script:1: Start offset 4 greater than input length 3."#,
            ),
            (
                r#"cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), -1)"#,
                r#"ERR:user_script:1: Invalid request to unpack with offset of -1 and limit of 3."#,
            ),
            (r#"cmsgpack.unpack_one('')"#, r#"-1"#),
            (
                r#"cmsgpack.unpack_one('\1', 'x')"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack_one' (number expected, got string)"#,
            ),
            (
                r#"cmsgpack.unpack_one(nil, 1)"#,
                r#"ERR:user_script:1: bad argument #1 to 'unpack_one' (string expected, got nil)"#,
            ),
            (
                r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)"#,
                r#"2 1 2"#,
            ),
            (
                r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 2)"#,
                r#"-1 3"#,
            ),
            (
                r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0)"#,
                r#"1 2 3"#,
            ),
            (
                r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0, 1)"#,
                r#"1"#,
            ),
            (
                r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 5)"#,
                r#"-1 1 2 3"#,
            ),
            (
                r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), -1)"#,
                r#"ERR:user_script:1: Invalid request to unpack with offset of 0 and limit of 3."#,
            ),
            (
                r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 1, -1)"#,
                r#"ERR:user_script:1: Invalid request to unpack with offset of -1 and limit of 3."#,
            ),
            (
                r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3))"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack_limit' (number expected, got no value)"#,
            ),
            (
                r#"cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 1, 9)"#,
                r#"ERR:user_script:1: Start offset 9 greater than input length 3."#,
            ),
            (
                r#"cmsgpack.unpack_limit('\1\204', 2)"#,
                r#"ERR:user_script:1: Missing bytes in input."#,
            ),
            (
                r#"cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._COPYRIGHT, cmsgpack._DESCRIPTION"#,
                r#""cmsgpack" "lua-cmsgpack 0.4.0" "Copyright (C) 2012, Salvatore Sanfilippo" "MessagePack C implementation for Lua""#,
            ),
            (
                r#"(function() local ok, t = pcall(cmsgpack.unpack, string.rep('\145', 3998) .. '\1') if not ok then return t end local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d, t end)()"#,
                r#"3998 1"#,
            ),
            (
                r#"(function() local ok, t = pcall(cmsgpack.unpack, string.rep('\145', 3999) .. '\1') if not ok then return t end local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d, t end)()"#,
                r#"3999 1"#,
            ),
            (
                r#"(function() local ok, t = pcall(cmsgpack.unpack, string.rep('\129\1', 3998) .. '\1') if not ok then return t end local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d, t end)()"#,
                r#"3998 1"#,
            ),
            (
                r#"(function() local ok, t = pcall(cmsgpack.unpack, string.rep('\129\1', 3999) .. '\1') if not ok then return t end local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d, t end)()"#,
                r#"3999 1"#,
            ),
            (
                r#"pcall(cmsgpack.unpack, string.rep('\129\145', 2000) .. '\1')"#,
                r#"false "Missing bytes in input.""#,
            ),
            (
                r#"select('#', cmsgpack.unpack(string.rep('\1', 7990)))"#,
                r#"7990"#,
            ),
            (
                r#"pcall(cmsgpack.unpack, string.rep('\1', 8000))"#,
                r#"false "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)""#,
            ),
            (
                r#"select('#', cmsgpack.unpack_limit(string.rep('\1', 9000), 7989))"#,
                r#"7990"#,
            ),
            (
                r#"pcall(cmsgpack.unpack_limit, string.rep('\1', 9000), 7999)"#,
                r#"false "stack overflow (in function mp_unpack_full)""#,
            ),
            (
                r#"pcall(cmsgpack.unpack, string.rep('\145', 100000))"#,
                r#"false "stack overflow (in function mp_decode_to_lua_array)""#,
            ),
            (
                r#"(function() local ok, t = pcall(cmsgpack.unpack, string.rep('\145', 4000) .. '\1') if not ok then return t end local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d, t end)()"#,
                r#""stack overflow (in function mp_decode_to_lua_array)""#,
            ),
            (
                r#"(function() local ok, t = pcall(cmsgpack.unpack, string.rep('\129\1', 4000) .. '\1') if not ok then return t end local d = 0 while type(t) == 'table' do t = t[1] d = d + 1 end return d, t end)()"#,
                r#""stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)""#,
            ),
            (
                r#"(function() local ok, t = pcall(cmsgpack.unpack, string.rep('\129\145', 1999) .. '\1') if not ok then return t end return 'ok' end)()"#,
                r#""Missing bytes in input.""#,
            ),
            (
                r#"(function() local ok, t = pcall(cmsgpack.unpack, string.rep('\129\145', 2000) .. '\1') if not ok then return t end return 'ok' end)()"#,
                r#""Missing bytes in input.""#,
            ),
            (
                r#"(function() local s = cmsgpack.pack('\0\255\128binary\0') local v = cmsgpack.unpack(s) return v == '\0\255\128binary\0' end)()"#,
                r#"true"#,
            ),
            (
                r#"cmsgpack.unpack(cmsgpack.pack({[1] = 'a', [2] = 'b', [3] = 'c'}, {x = {1, 2, {y = true}}}, -0.0, 2^53 + 2))"#,
                r#"{1="a",2="b",3="c"} {"x"={1=1,2=2,3={"y"=true}}} 0 9.007199254741e+15"#,
            ),
            (
                r#"cmsgpack.unpack('\129\192')"#,
                r#"ERR:user_script:1: Missing bytes in input."#,
            ),
            (
                r#"cmsgpack.unpack('\130\192\1')"#,
                r#"ERR:table index is nil"#,
            ),
            (
                r#"cmsgpack.unpack('\130\1\1\192')"#,
                r#"ERR:user_script:1: Missing bytes in input."#,
            ),
            (
                r#"cmsgpack.unpack('\130\1\1\192\1')"#,
                r#"ERR:table index is nil"#,
            ),
            (
                r#"cmsgpack.unpack('\129\203\255\248\0\0\0\0\0\0')"#,
                r#"ERR:user_script:1: Missing bytes in input."#,
            ),
            (r#"cmsgpack.unpack('\129\145\1\2')"#, r#"{{1=1}=2}"#),
            (r#"cmsgpack.unpack('\129\129\1\2\3')"#, r#"{{1=2}=3}"#),
        ];
        super::super::check_cases(&lua(), cases);
    }

    #[test]
    fn raw_bytes_round_trip() {
        let lua = lua();
        let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        let s = lua.create_string(&bytes).unwrap();
        lua.globals().set("s", s).unwrap();
        let back: mlua::LuaString = lua
            .load("return cmsgpack.unpack(cmsgpack.pack(s))")
            .eval()
            .unwrap();
        assert_eq!(back.as_bytes().to_vec(), bytes);
    }

    #[test]
    fn never_panics_on_garbage() {
        let lua = lua();
        let unpack: mlua::Function = lua.load("return cmsgpack.unpack").eval().unwrap();
        let mut seed: u32 = 12345;
        for round in 0..3000 {
            let len = round % 24;
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                buf.push((seed >> 16) as u8);
            }
            let s = lua.create_string(&buf).unwrap();
            let _ = unpack.call::<mlua::MultiValue>(s);
        }
        for prefix in [
            &b"\xdb\xff\xff\xff\xff"[..],
            b"\xdd\xff\xff\xff\xff",
            b"\xdf\xff\xff\xff\xff",
        ] {
            let s = lua.create_string(prefix).unwrap();
            assert!(unpack.call::<mlua::MultiValue>(s).is_err());
        }
    }
}
