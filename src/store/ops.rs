//! Value operations shared by the command handlers and the typed [`Store`]
//! API, so both follow the same rules.
//!
//! [`Store`]: super::Store

use super::shard::Db;
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

/// INCRBY on one key, in one lookup: missing counts as 0; keeps the TTL.
pub fn incr_by(db: &mut Db, key: &[u8], delta: i64, now_ms: u64) -> Result<i64> {
    db.update_str(key, now_ms, |current, text| {
        let current = match current {
            None => 0,
            Some(s) => parse_int_value(s).ok_or_else(Error::not_integer)?,
        };
        let next = current.checked_add(delta).ok_or_else(Error::overflow)?;
        text.extend_from_slice(itoa::Buffer::new().format(next).as_bytes());
        Ok(next)
    })
}
