//! Keyspace commands.

use super::flags::*;
use super::{CommandSpec, Ctx, ALL_KEYS};
use crate::error::Result;

const KEYSPACE: &[&str] = &["keyspace"];

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new("del", -2, WRITE, ALL_KEYS, del)
    .acl(KEYSPACE)
    .doc(
        "generic",
        "1.0.0",
        "Deletes one or more keys.",
        "O(N) where N is the number of keys that will be removed.",
    )];

fn del(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let keys = &argv[1..];
    let db = ctx.db();
    let mut locked = ctx.locks.keys(keys)?;
    let mut removed = 0;
    for key in keys {
        if locked.db(db, key)?.remove(key, ctx.now_ms).is_some() {
            removed += 1;
        }
    }
    ctx.out.int(removed);
    Ok(())
}
