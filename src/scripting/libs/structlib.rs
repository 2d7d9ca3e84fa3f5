//! `struct`: Roberto Ierusalimschy's struct library (1.4) as Redis 7.0 ships
//! it, including Redis' hardening (size overflow and offset checks).
//!
//! The C library runs with `long` = 64-bit, `int` = 32-bit, `size_t` =
//! 64-bit, little-endian native order and a maximum alignment of 8; these
//! are fixed here.

use mlua::{Lua, MultiValue, Value};

use super::{
    arg, arg_error, check_string, double_to_i64, lua_function, new_module, opt_integer, rt_error,
    to_number, type_error, Ret,
};

const MAXINTSIZE: usize = 32;
const MAXALIGN: usize = 8;
/// Lua 5.1's limit of stack slots for a C function (LUAI_MAXCSTACK).
const MAX_STACK: usize = 8000;

struct Header {
    little: bool,
    align: usize,
}

impl Header {
    fn new() -> Self {
        Header {
            little: cfg!(target_endian = "little"),
            align: 1,
        }
    }
}

struct Fmt<'a> {
    s: &'a [u8],
    i: usize,
}

impl Fmt<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.s.get(self.i).copied()?;
        // The C code walks a NUL-terminated string: an embedded zero ends it.
        if c == 0 {
            return None;
        }
        self.i += 1;
        Some(c)
    }

    fn getnum(&mut self, df: usize) -> mlua::Result<usize> {
        if !self.peek().is_ascii_digit() {
            return Ok(df);
        }
        let mut a: i64 = 0;
        while self.peek().is_ascii_digit() {
            let d = (self.peek() - b'0') as i64;
            if a > (i32::MAX as i64) / 10 || a * 10 > i32::MAX as i64 - d {
                return Err(rt_error("integral size overflow"));
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a as usize)
    }
}

fn optsize(opt: u8, fmt: &mut Fmt) -> mlua::Result<usize> {
    Ok(match opt {
        b'B' | b'b' => 1,
        b'H' | b'h' => 2,
        b'L' | b'l' | b'T' => 8,
        b'f' => 4,
        b'd' => 8,
        b'x' => 1,
        b'c' => fmt.getnum(1)?,
        b'i' | b'I' => {
            let sz = fmt.getnum(4)?;
            if sz > MAXINTSIZE {
                return Err(rt_error(format!(
                    "integral size {sz} is larger than limit of {MAXINTSIZE}"
                )));
            }
            sz
        }
        _ => 0,
    })
}

/// Bytes of padding needed to align an item of `size` at offset `len`.
fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    let mask = size.wrapping_sub(1);
    size.wrapping_sub(len & mask) & mask
}

fn controloptions(opt: u8, fmt: &mut Fmt, h: &mut Header, fname: &str) -> mlua::Result<()> {
    match opt {
        b' ' => Ok(()),
        b'>' => {
            h.little = false;
            Ok(())
        }
        b'<' => {
            h.little = true;
            Ok(())
        }
        b'!' => {
            let a = fmt.getnum(MAXALIGN)?;
            if a == 0 || a & (a - 1) != 0 {
                return Err(rt_error(format!("alignment {a} is not a power of 2")));
            }
            h.align = a;
            Ok(())
        }
        _ => Err(arg_error(
            1,
            fname,
            &format!("invalid format option '{}'", opt as char),
        )),
    }
}

/// C's `(unsigned long)d` as gcc compiles it for x86-64.
fn double_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if d >= TWO63 {
        (double_to_i64(d - TWO63) as u64) ^ (1 << 63)
    } else {
        double_to_i64(d) as u64
    }
}

fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let mut value = if n < 0.0 {
        double_to_i64(n) as u64
    } else {
        double_to_u64(n)
    };
    let mut buf = vec![0u8; size];
    for k in 0..size {
        let idx = if little { k } else { size - 1 - k };
        buf[idx] = (value & 0xff) as u8;
        value = value.checked_shr(8).unwrap_or(0);
    }
    out.extend_from_slice(&buf);
}

fn get_integer(data: &[u8], little: bool, signed: bool) -> f64 {
    let size = data.len();
    let mut l: u64 = 0;
    let mut push = |b: u8| l = (l << 8) | b as u64;
    if little {
        data.iter().rev().for_each(|&b| push(b));
    } else {
        data.iter().for_each(|&b| push(b));
    }
    if !signed {
        return l as f64;
    }
    // As in C on x86-64, the shift count is taken modulo 64.
    let mask = (!0u64).wrapping_shl((size as u32).wrapping_mul(8).wrapping_sub(1));
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

/// Argument `n` of `pack`, as the C code sees its stack: the arguments
/// followed by a nil marker.
fn pack_arg(args: &MultiValue, n: usize) -> Option<&Value> {
    if n <= args.len() {
        arg(args, n)
    } else if n == args.len() + 1 {
        Some(&Value::Nil)
    } else {
        None
    }
}

fn pack(lua: &Lua, args: MultiValue) -> Ret {
    let fmt_s = check_string(lua, &args, 1, "pack")?;
    let fmt_b = fmt_s.as_bytes();
    let mut fmt = Fmt { s: &fmt_b, i: 0 };
    let mut h = Header::new();
    let mut argn = 2;
    let mut out: Vec<u8> = Vec::new();
    let mut total: usize = 0;
    let num_arg = |lua: &Lua, n: usize| -> mlua::Result<f64> {
        let v = pack_arg(&args, n);
        to_number(lua, v).ok_or_else(|| type_error(n, "pack", "number", v))
    };
    while let Some(opt) = fmt.next() {
        let mut size = optsize(opt, &mut fmt)?;
        let toalign = gettoalign(total, &h, opt, size);
        total = total.wrapping_add(toalign);
        out.resize(out.len() + toalign, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = num_arg(lua, argn)?;
                argn += 1;
                put_integer(&mut out, n, h.little, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = num_arg(lua, argn)? as f32;
                argn += 1;
                if h.little {
                    out.extend_from_slice(&f.to_le_bytes());
                } else {
                    out.extend_from_slice(&f.to_be_bytes());
                }
            }
            b'd' => {
                let d = num_arg(lua, argn)?;
                argn += 1;
                if h.little {
                    out.extend_from_slice(&d.to_le_bytes());
                } else {
                    out.extend_from_slice(&d.to_be_bytes());
                }
            }
            b'c' | b's' => {
                let v = pack_arg(&args, argn);
                let s = match v {
                    Some(Value::String(s)) => s.clone(),
                    Some(v @ (Value::Integer(_) | Value::Number(_))) => lua
                        .coerce_string(v.clone())?
                        .ok_or_else(|| type_error(argn, "pack", "string", Some(v)))?,
                    other => return Err(type_error(argn, "pack", "string", other)),
                };
                argn += 1;
                let bytes = s.as_bytes();
                if size == 0 {
                    size = bytes.len();
                }
                if bytes.len() < size {
                    // The C code reports the argument after the string.
                    return Err(arg_error(argn, "pack", "string too short"));
                }
                out.extend_from_slice(&bytes[..size]);
                if opt == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => controloptions(opt, &mut fmt, &mut h, "pack")?,
        }
        total = total.wrapping_add(size);
    }
    Ok(MultiValue::from_vec(vec![Value::String(
        lua.create_string(&out)?,
    )]))
}

fn unpack(lua: &Lua, args: MultiValue) -> Ret {
    let fmt_s = check_string(lua, &args, 1, "unpack")?;
    let data_s = check_string(lua, &args, 2, "unpack")?;
    let start = opt_integer(lua, &args, 3, "unpack", 1)? as u64;
    if start == 0 {
        return Err(arg_error(3, "unpack", "offset must be 1 or greater"));
    }
    let fmt_b = fmt_s.as_bytes();
    let data = data_s.as_bytes();
    let ld = data.len();
    let mut fmt = Fmt { s: &fmt_b, i: 0 };
    let mut h = Header::new();
    let mut pos = usize::try_from(start - 1).unwrap_or(usize::MAX);
    // The C function's stack: format, data, then the results.
    let mut stack: Vec<Value> = vec![Value::String(fmt_s.clone()), Value::String(data_s.clone())];
    let too_short = || arg_error(2, "unpack", "data string too short");
    while let Some(opt) = fmt.next() {
        let mut size = optsize(opt, &mut fmt)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        let end = pos.checked_add(size).ok_or_else(too_short)?;
        if end > ld {
            return Err(too_short());
        }
        if stack.len() + 1 > MAX_STACK {
            return Err(rt_error("stack overflow (too many results)"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = get_integer(&data[pos..end], h.little, opt.is_ascii_lowercase());
                stack.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..end].try_into().map_err(|_| too_short())?;
                let f = if h.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                stack.push(Value::Number(f as f64));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..end].try_into().map_err(|_| too_short())?;
                let d = if h.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                stack.push(Value::Number(d));
            }
            b'c' => {
                if size == 0 {
                    // Redis requires a value unpacked by this call.
                    let prev = if stack.len() > 2 {
                        stack.last().and_then(|v| to_number(lua, Some(v)))
                    } else {
                        None
                    };
                    let Some(n) = prev else {
                        return Err(rt_error("format 'c0' needs a previous size"));
                    };
                    size = usize::try_from(double_to_u64(n)).unwrap_or(usize::MAX);
                    stack.pop();
                    match pos.checked_add(size) {
                        Some(e) if e <= ld => {}
                        _ => return Err(too_short()),
                    }
                }
                stack.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let rest = &data[pos..];
                let Some(z) = rest.iter().position(|&b| b == 0) else {
                    return Err(rt_error("unfinished string in data"));
                };
                size = z + 1;
                stack.push(Value::String(lua.create_string(&rest[..z])?));
            }
            _ => controloptions(opt, &mut fmt, &mut h, "unpack")?,
        }
        pos = pos.wrapping_add(size);
    }
    stack.push(Value::Number(pos.wrapping_add(1) as f64));
    let n = stack.len().saturating_sub(2);
    let first = stack.len() - n;
    Ok(MultiValue::from_vec(stack.split_off(first)))
}

fn size(lua: &Lua, args: MultiValue) -> Ret {
    let fmt_s = check_string(lua, &args, 1, "size")?;
    let fmt_b = fmt_s.as_bytes();
    let mut fmt = Fmt { s: &fmt_b, i: 0 };
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next() {
        let size = optsize(opt, &mut fmt)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if opt == b's' {
            return Err(arg_error(1, "size", "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(arg_error(1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            controloptions(opt, &mut fmt, &mut h, "size")?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(MultiValue::from_vec(vec![Value::Number(pos as f64)]))
}

pub fn register(lua: &Lua) -> mlua::Result<()> {
    let module = new_module(
        lua,
        vec![
            ("pack", lua_function(lua, pack)?),
            ("unpack", lua_function(lua, unpack)?),
            ("size", lua_function(lua, size)?),
        ],
    )?;
    lua.globals().set("struct", module)
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
    /// harness (`super::super::HARNESS`) through EVAL.
    #[test]
    fn matches_redis() {
        let cases: &[(&str, &str)] = &[
            (r#"struct.pack('>i', 1)"#, r#""\00\00\00\01""#),
            (r#"struct.pack('<i', -2)"#, r#""\fe\ff\ff\ff""#),
            (
                r#"struct.pack('=i', 1)"#,
                r#"ERR:user_script:1: bad argument #1 to 'pack' (invalid format option '=')"#,
            ),
            (r#"struct.pack('<h', -2)"#, r#""\fe\ff""#),
            (r#"struct.pack('>H', 65535)"#, r#""\ff\ff""#),
            (
                r#"struct.pack('y', 1)"#,
                r#"ERR:user_script:1: bad argument #1 to 'pack' (invalid format option 'y')"#,
            ),
            (
                r#"struct.pack('i33', 1)"#,
                r#"ERR:user_script:1: integral size 33 is larger than limit of 32"#,
            ),
            (
                r#"struct.pack('i99999999999', 1)"#,
                r#"ERR:user_script:1: integral size overflow"#,
            ),
            (
                r#"struct.pack('!3i', 1)"#,
                r#"ERR:user_script:1: alignment 3 is not a power of 2"#,
            ),
            (
                r#"struct.pack('!99999999999i', 1)"#,
                r#"ERR:user_script:1: integral size overflow"#,
            ),
            (
                r#"struct.pack('c5', 'ab')"#,
                r#"ERR:user_script:1: bad argument #3 to 'pack' (string too short)"#,
            ),
            (r#"struct.pack('c0', 'ab')"#, r#""ab""#),
            (r#"struct.pack('c2', 'abc')"#, r#""ab""#),
            (r#"struct.pack('s', 'ab')"#, r#""ab\00""#),
            (r#"struct.pack('s', 'a\0b')"#, r#""a\00b\00""#),
            (
                r#"struct.pack('>!4bi', 1, 2)"#,
                r#""\01\00\00\00\00\00\00\02""#,
            ),
            (
                r#"struct.pack('<!8bd', 1, 1.5)"#,
                r#""\01\00\00\00\00\00\00\00\00\00\00\00\00\00\f8?""#,
            ),
            (
                r#"struct.pack('!4bh!2bi', 1, 2, 3, 4)"#,
                r#""\01\00\02\00\03\00\04\00\00\00""#,
            ),
            (
                r#"struct.pack('bx3', 1)"#,
                r#"ERR:user_script:1: bad argument #1 to 'pack' (invalid format option '3')"#,
            ),
            (r#"struct.pack('bxb', 1, 2)"#, r#""\01\00\02""#),
            (
                r#"struct.pack('i', 'x')"#,
                r#"ERR:user_script:1: bad argument #2 to 'pack' (number expected, got string)"#,
            ),
            (
                r#"struct.pack('i')"#,
                r#"ERR:user_script:1: bad argument #2 to 'pack' (number expected, got nil)"#,
            ),
            (
                r#"struct.pack('ii', 1)"#,
                r#"ERR:user_script:1: bad argument #3 to 'pack' (number expected, got nil)"#,
            ),
            (
                r#"struct.pack('s')"#,
                r#"ERR:user_script:1: bad argument #2 to 'pack' (string expected, got nil)"#,
            ),
            (r#"struct.pack('i', '12')"#, r#""\0c\00\00\00""#),
            (
                r#"struct.pack('i16', -1)"#,
                r#""\ff\ff\ff\ff\ff\ff\ff\ff\00\00\00\00\00\00\00\00""#,
            ),
            (r#"struct.pack('>i3', -2)"#, r#""\ff\ff\fe""#),
            (r#"struct.pack('i', 2^40)"#, r#""\00\00\00\00""#),
            (r#"struct.pack('i', 2^31)"#, r#""\00\00\00\80""#),
            (r#"struct.pack('L', -1)"#, r#""\ff\ff\ff\ff\ff\ff\ff\ff""#),
            (r#"struct.pack('L', 2^63)"#, r#""\00\00\00\00\00\00\00\80""#),
            (r#"struct.pack('l', 2^63)"#, r#""\00\00\00\00\00\00\00\80""#),
            (r#"struct.pack('b', 300)"#, r#"",""#),
            (r#"struct.pack('B', -1)"#, r#""\ff""#),
            (r#"struct.pack('b', 1.9)"#, r#""\01""#),
            (r#"struct.pack('b', -1.9)"#, r#""\ff""#),
            (r#"struct.pack(' < b', 1)"#, r#""\01""#),
            (r#"struct.pack('c', 'abc')"#, r#""a""#),
            (r#"struct.pack('s', 5)"#, r#""5\00""#),
            (
                r#"struct.pack(5, 1)"#,
                r#"ERR:user_script:1: bad argument #1 to 'pack' (invalid format option '5')"#,
            ),
            (r#"struct.pack('>f', 0.1)"#, r#""=\cc\cc\cd""#),
            (
                r#"struct.pack('<d', -0.5)"#,
                r#""\00\00\00\00\00\00\e0\bf""#,
            ),
            (r#"struct.pack('>d', 1/0)"#, r#""\7f\f0\00\00\00\00\00\00""#),
            (r#"struct.pack('I0', 5)"#, r#""""#),
            (r#"struct.pack('!', 1)"#, r#""""#),
            (
                r#"struct.pack()"#,
                r#"ERR:user_script:1: bad argument #1 to 'pack' (string expected, got no value)"#,
            ),
            (
                r#"struct.pack({})"#,
                r#"ERR:user_script:1: bad argument #1 to 'pack' (string expected, got table)"#,
            ),
            (
                r#"struct.pack('c', {})"#,
                r#"ERR:user_script:1: bad argument #2 to 'pack' (string expected, got table)"#,
            ),
            (
                r#"struct.unpack('b', 'abc', 0)"#,
                r#"ERR:user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)"#,
            ),
            (
                r#"struct.unpack('b', 'abc', -5)"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)"#,
            ),
            (
                r#"struct.unpack('b', 'abc', 4)"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)"#,
            ),
            (r#"struct.unpack('b', 'abc', 3)"#, r#"99 4"#),
            (r#"struct.unpack('b', 'abc', '2')"#, r#"98 3"#),
            (
                r#"struct.unpack('b', 'a', 2^40)"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)"#,
            ),
            (
                r#"struct.unpack('b', 'abc', 'x')"#,
                r#"ERR:user_script:1: bad argument #3 to 'unpack' (number expected, got string)"#,
            ),
            (
                r#"struct.unpack('c0', 'abc')"#,
                r#"ERR:user_script:1: format 'c0' needs a previous size"#,
            ),
            (r#"struct.unpack('bc0', '\2abc')"#, r#""ab" 4"#),
            (
                r#"struct.unpack('c0', '3abcd')"#,
                r#"ERR:user_script:1: format 'c0' needs a previous size"#,
            ),
            (r#"struct.unpack('c1c0', '2abcd')"#, r#""ab" 4"#),
            (
                r#"struct.unpack('c1c0', 'xabcd')"#,
                r#"ERR:user_script:1: format 'c0' needs a previous size"#,
            ),
            (
                r#"struct.unpack('bc0', '\9abc')"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)"#,
            ),
            (
                r#"struct.unpack('c0', '0')"#,
                r#"ERR:user_script:1: format 'c0' needs a previous size"#,
            ),
            (
                r#"struct.unpack('s', 'abc')"#,
                r#"ERR:user_script:1: unfinished string in data"#,
            ),
            (r#"struct.unpack('s', 'ab\0c')"#, r#""ab" 4"#),
            (r#"struct.unpack('ss', 'ab\0\0c')"#, r#""ab" "" 5"#),
            (r#"struct.unpack('<i3', '\255\255\255')"#, r#"-1 4"#),
            (r#"struct.unpack('<I3', '\255\255\255')"#, r#"16777215 4"#),
            (r#"struct.unpack('>h', '\128\0')"#, r#"-32768 3"#),
            (r#"struct.unpack('>H', '\128\0')"#, r#"32768 3"#),
            (r#"struct.unpack('>d', struct.pack('>d', 1.5))"#, r#"1.5 9"#),
            (
                r#"struct.unpack('<f', struct.pack('<f', 0.1))"#,
                r#"0.10000000149012 5"#,
            ),
            (
                r#"struct.unpack('>l', '\255\255\255\255\255\255\255\254')"#,
                r#"-2 9"#,
            ),
            (
                r#"struct.unpack('<L', '\255\255\255\255\255\255\255\255')"#,
                r#"1.844674407371e+19 9"#,
            ),
            (
                r#"struct.unpack('<i16', string.rep('\255', 16))"#,
                r#"-1 17"#,
            ),
            (
                r#"struct.unpack('<I16', string.rep('\255', 16))"#,
                r#"1.844674407371e+19 17"#,
            ),
            (r#"struct.unpack('>i9', '\1\0\0\0\0\0\0\0\5')"#, r#"5 10"#),
            (r#"struct.unpack('<i9', '\5\0\0\0\0\0\0\0\1')"#, r#"5 10"#),
            (r#"struct.unpack('i0', '')"#, r#"0 1"#),
            (
                r#"struct.unpack('L', struct.pack('L', -1))"#,
                r#"1.844674407371e+19 9"#,
            ),
            (
                r#"struct.unpack('x', '')"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)"#,
            ),
            (r#"struct.unpack('x', 'a')"#, r#"2"#),
            (r#"struct.unpack('>T', struct.pack('>T', 7))"#, r#"7 9"#),
            (r#"struct.unpack('!4bi', '\1\0\0\0\2\0\0\0')"#, r#"1 2 9"#),
            (
                r#"struct.unpack('bb', 'ab', 2)"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)"#,
            ),
            (
                r#"struct.unpack('i', 'ab')"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack' (data string too short)"#,
            ),
            (
                r#"struct.unpack('y', 'ab')"#,
                r#"ERR:user_script:1: bad argument #1 to 'unpack' (invalid format option 'y')"#,
            ),
            (
                r#"struct.unpack()"#,
                r#"ERR:user_script:1: bad argument #1 to 'unpack' (string expected, got no value)"#,
            ),
            (
                r#"struct.unpack('b')"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack' (string expected, got no value)"#,
            ),
            (
                r#"struct.unpack('b', {})"#,
                r#"ERR:user_script:1: bad argument #2 to 'unpack' (string expected, got table)"#,
            ),
            (r#"struct.unpack('', 'abc')"#, r#"1"#),
            (r#"struct.unpack('>I2', 'xyz', 2)"#, r#"31098 4"#),
            (r#"struct.size('i')"#, r#"4"#),
            (
                r#"struct.size('s')"#,
                r#"ERR:user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)"#,
            ),
            (
                r#"struct.size('c0')"#,
                r#"ERR:user_script:1: bad argument #1 to 'size' (option 'c0' has no fixed size)"#,
            ),
            (r#"struct.size('c9')"#, r#"9"#),
            (r#"struct.size('!8bd')"#, r#"16"#),
            (r#"struct.size('!bd')"#, r#"16"#),
            (r#"struct.size('!2bd')"#, r#"10"#),
            (r#"struct.size('y')"#, r#"0"#),
            (r#"struct.size('bi3')"#, r#"4"#),
            (r#"struct.size('!4bi3')"#, r#"6"#),
            (r#"struct.size('!4bi3i')"#, r#"12"#),
            (r#"struct.size('>!4 bxhT')"#, r#"12"#),
            (
                r#"struct.size('=')"#,
                r#"ERR:user_script:1: bad argument #1 to 'size' (invalid format option '=')"#,
            ),
            (
                r#"struct.size('!3')"#,
                r#"ERR:user_script:1: alignment 3 is not a power of 2"#,
            ),
            (
                r#"struct.size('i40')"#,
                r#"ERR:user_script:1: integral size 40 is larger than limit of 32"#,
            ),
            (
                r#"struct.size()"#,
                r#"ERR:user_script:1: bad argument #1 to 'size' (string expected, got no value)"#,
            ),
            (r#"struct.size('lLhHbBfdTiIx')"#, r#"51"#),
        ];
        super::super::check_cases(&lua(), cases);
    }

    #[test]
    fn round_trips() {
        let got = super::super::run_case(
            &lua(),
            "struct.unpack('>!4 b i h B H l L d f s c3 T', struct.pack('>!4 b i h B H l L d f s c3 T', -1, -2, -3, 4, 5, -6, 7, 0.25, 1.5, 'hi', 'xyz', 9))",
        );
        assert_eq!(got, r#"-1 -2 -3 4 5 -6 7 0.25 1.5 "hi" "xyz" 9 61"#);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let lua = lua();
        for expr in [
            "struct.unpack('c0', '')",
            "struct.unpack('bc0', '\\255', 1)",
            "struct.unpack('b', 'abc', -1)",
            "struct.unpack('b', 'abc', 2^63)",
            "struct.unpack('b', 'abc', -2^63)",
            "struct.unpack('d', 'abc', 2^53)",
            "struct.pack('i32', 0/0)",
            "struct.pack('!2147483647d', 1)",
            "struct.unpack('!2147483648d', 'abc')",
            "struct.size('c2147483647c2147483647c2147483647')",
            "struct.pack('c2147483647', 'x')",
            "struct.unpack(string.rep('b', 9000), string.rep('a', 9000))",
        ] {
            let _ = super::super::run_case(&lua, expr);
        }
    }
}
