//! String commands.

use super::flags::*;
use super::{CommandSpec, Ctx, FIRST_KEY};
use crate::error::{Error, Result};
use crate::store::Value;

const STRING: &[&str] = &["string"];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, READONLY | FAST, FIRST_KEY, get)
        .acl(STRING)
        .doc("string", "1.0.0", "Returns the string value of a key.", "O(1)"),
    CommandSpec::new("set", -3, WRITE | DENYOOM, FIRST_KEY, set)
        .acl(STRING)
        .doc("string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", "O(1)"),
];

fn get(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let mut locked = ctx.locks.key(key)?;
    match locked.db(ctx.session.db, key)?.get(key, ctx.now_ms) {
        None => ctx.out.null(),
        Some(entry) => match &entry.value {
            Value::Str(s) => ctx.out.bulk(s),
            #[allow(unreachable_patterns)]
            _ => return Err(Error::wrong_type()),
        },
    }
    Ok(())
}

fn set(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv.len() != 3 {
        return Err(Error::syntax());
    }
    let key = argv[1];
    let mut locked = ctx.locks.key(key)?;
    locked
        .db(ctx.session.db, key)?
        .insert(key, Value::Str(argv[2].to_vec()), None, ctx.now_ms);
    ctx.out.ok();
    Ok(())
}
