//! Value operations shared by the command handlers and the typed [`Store`]
//! API, so both follow the same rules.
//!
//! [`Store`]: super::Store

use super::shard::Db;
use super::value::ValueRef;
use crate::error::{Error, Result};

/// Reads a string value as Redis reads an integer: at most 20 bytes, strict
/// decimal syntax.
pub fn parse_int_value(bytes: &[u8]) -> Option<i64> {
    crate::numbers::strict_i64(bytes)
}

/// Reads a string value as a float the way INCRBYFLOAT does: no spaces, no NaN.
pub fn parse_float_value(bytes: &[u8]) -> Option<f64> {
    crate::numbers::strict_f64(bytes).filter(|v| !v.is_nan())
}

/// INCRBY on one key: missing counts as 0; keeps the TTL.
pub fn incr_by(db: &mut Db, key: &[u8], delta: i64, now_ms: u64) -> Result<i64> {
    let current = match db.get(key, now_ms) {
        None => None,
        Some(entry) => match entry.value() {
            ValueRef::Str(s) => Some(parse_int_value(s).ok_or_else(Error::not_integer)?),
            _ => return Err(Error::wrong_type()),
        },
    };
    let next = current
        .unwrap_or(0)
        .checked_add(delta)
        .ok_or_else(Error::overflow)?;
    let mut digits = itoa::Buffer::new();
    let text = digits.format(next).as_bytes();
    // In place, keeping the TTL; inline, as SET would store it.
    if current.is_none() || !db.replace_str(key, text, now_ms) {
        db.insert_str(key, text, None, now_ms);
    }
    Ok(next)
}
