//! `bit`: LuaBitOp 1.0.2 semantics (32-bit operations on Lua numbers).

use mlua::{Lua, MultiValue, Value};

use super::{arg, lua_function, new_module, to_number, type_error, Ret};

/// Normalises argument `n` to 32 bits the way LuaBitOp does: the number is
/// rounded by adding 2^52+2^51 and the low 32 bits of the double are taken.
fn barg(lua: &Lua, args: &MultiValue, n: usize, fname: &str) -> mlua::Result<u32> {
    match to_number(lua, arg(args, n)) {
        Some(d) => Ok(tobit(d)),
        None => Err(type_error(n, fname, "number", arg(args, n))),
    }
}

fn tobit(d: f64) -> u32 {
    (d + 6_755_399_441_055_744.0).to_bits() as u32
}

fn ret(b: u32) -> Ret {
    Ok(MultiValue::from_vec(vec![Value::Number(b as i32 as f64)]))
}

type Unary = fn(u32) -> u32;
type Shift = fn(u32, u32) -> u32;
type Fold = fn(u32, u32) -> u32;

pub fn register(lua: &Lua) -> mlua::Result<()> {
    let mut funcs = Vec::new();

    let unary: [(&'static str, Unary); 3] = [
        ("tobit", |b| b),
        ("bnot", |b| !b),
        ("bswap", |b| b.swap_bytes()),
    ];
    for (name, op) in unary {
        let f = lua_function(lua, move |lua, args| ret(op(barg(lua, &args, 1, name)?)))?;
        funcs.push((name, f));
    }

    let folds: [(&'static str, Fold); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, op) in folds {
        let f = lua_function(lua, move |lua, args| {
            let mut b = barg(lua, &args, 1, name)?;
            // LuaBitOp checks the arguments from the last one down.
            for i in (2..=args.len()).rev() {
                b = op(b, barg(lua, &args, i, name)?);
            }
            ret(b)
        })?;
        funcs.push((name, f));
    }

    let shifts: [(&'static str, Shift); 5] = [
        ("lshift", |b, n| b << n),
        ("rshift", |b, n| b >> n),
        ("arshift", |b, n| ((b as i32) >> n) as u32),
        ("rol", |b, n| b.rotate_left(n)),
        ("ror", |b, n| b.rotate_right(n)),
    ];
    for (name, op) in shifts {
        let f = lua_function(lua, move |lua, args| {
            let b = barg(lua, &args, 1, name)?;
            let n = barg(lua, &args, 2, name)? & 31;
            ret(op(b, n))
        })?;
        funcs.push((name, f));
    }

    let tohex = lua_function(lua, |lua, args| {
        let mut b = barg(lua, &args, 1, "tohex")?;
        let mut n: i32 = if args.len() < 2 {
            8
        } else {
            barg(lua, &args, 2, "tohex")? as i32
        };
        let digits: &[u8; 16] = if n < 0 {
            n = n.wrapping_neg();
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        // n == i32::MIN stays negative: no digits (C would misbehave here).
        let n = n.clamp(0, 8) as usize;
        let mut buf = vec![0u8; n];
        for slot in buf.iter_mut().rev() {
            *slot = digits[(b & 15) as usize];
            b >>= 4;
        }
        Ok(MultiValue::from_vec(vec![Value::String(
            lua.create_string(&buf)?,
        )]))
    })?;
    funcs.push(("tohex", tohex));

    let module = new_module(lua, funcs)?;
    lua.globals().set("bit", module)
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    fn lua() -> Lua {
        let lua = Lua::new();
        super::register(&lua).unwrap();
        lua
    }

    fn eval_str(lua: &Lua, code: &str) -> String {
        lua.load(code)
            .set_name("@user_script")
            .eval::<String>()
            .unwrap()
    }

    /// Expected values were produced by redis-server 7.0.15
    /// (`EVAL "return <expr>" 0`, joined with spaces via table.concat).
    #[test]
    fn matches_redis() {
        let lua = lua();
        let cases: &[(&str, &str)] = &[
            ("bit.tobit(0xffffffff)", "-1"),
            ("bit.tobit(2^32+5)", "5"),
            ("bit.tobit(1.5)", "2"),
            ("bit.tobit(2.5)", "2"),
            ("bit.tobit(-1.5)", "-2"),
            ("bit.tobit('12')", "12"),
            ("bit.tohex(255)", "000000ff"),
            ("bit.tohex(-1, -4)", "FFFF"),
            ("bit.tohex(0x1234abcd, 3)", "bcd"),
            ("bit.tohex(1, 20)", "00000001"),
            ("bit.tohex(1, 0)", ""),
            ("bit.bnot(0)", "-1"),
            ("bit.band(0xff, 0x0f, 0x3)", "3"),
            ("bit.bor(1, 2, 4, 8)", "15"),
            ("bit.bxor(5, 3)", "6"),
            ("bit.band(7)", "7"),
            ("bit.lshift(1, 31)", "-2147483648"),
            ("bit.lshift(1, 33)", "2"),
            ("bit.rshift(-1, 28)", "15"),
            ("bit.arshift(-256, 4)", "-16"),
            ("bit.rol(0x12345678, 8)", "878082066"),
            ("bit.ror(0x12345678, 8)", "2014458966"),
            ("bit.rol(0x12345678, 0)", "305419896"),
            ("bit.bswap(0x12345678)", "2018915346"),
            ("bit.tobit(2^53)", "0"),
            ("bit.tobit(-2^31)", "-2147483648"),
        ];
        for (expr, want) in cases {
            let got = eval_str(&lua, &format!("return tostring({expr})"));
            assert_eq!(&got, want, "{expr}");
        }
    }

    #[test]
    fn argument_errors() {
        let lua = lua();
        let cases: &[(&str, &str)] = &[
            (
                "bit.tobit()",
                "user_script:1: bad argument #1 to 'tobit' (number expected, got no value)",
            ),
            (
                "bit.band(1, 'x')",
                "user_script:1: bad argument #2 to 'band' (number expected, got string)",
            ),
            (
                "bit.lshift(1)",
                "user_script:1: bad argument #2 to 'lshift' (number expected, got no value)",
            ),
            (
                "bit.tohex({})",
                "user_script:1: bad argument #1 to 'tohex' (number expected, got table)",
            ),
        ];
        for (code, want) in cases {
            let got = eval_str(
                &lua,
                &format!("return select(2, pcall(function() local r = {code} return r end))"),
            );
            assert_eq!(&got, want, "{code}");
        }
    }
}
