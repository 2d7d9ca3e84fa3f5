//! Sorted set commands, following Redis 7.0's `t_zset.c` (plus ZRANK /
//! ZREVRANK WITHSCORE from 7.2).
//!
//! The data structure is `store::types::ZSetValue` (a skiplist with spans):
//! every range command finds its first element by rank in O(log n) and
//! walks m elements, so ranges are O(log n + m) — also with LIMIT offsets,
//! which Redis walks one by one.
//!
//! Multi-key commands (ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD)
//! take every shard lock they need at once and then visit the inputs one at
//! a time; plain sets are accepted as inputs, their members scoring 1.
//!
//! The blocking BZPOPMIN/BZPOPMAX/BZMPOP use the list commands' blocking
//! machinery (`list::block_or_timeout`, `shared::blocking`); every write
//! that adds members to a key (ZADD, ZINCRBY, the STORE forms) wakes the
//! clients blocked on it.

use std::collections::{HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::Rng;

use super::flags::*;
use super::list::{block_or_timeout, serving_order, timeout_arg};
use super::parse::{
    glob_match, int_arg, is_keyword, parse_cursor, parse_scan_options, strict_i64, ScanExtra,
    ScanOptions,
};
use super::reads;
use super::{CommandSpec, Ctx, KeySpec, FIRST_KEY};
use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;
use crate::pubsub::{events, PubSub};
use crate::shared::blocking::{TimeoutReply, WaitKind};
use crate::shared::Shared;
use crate::store::changes::{Effect, Items};
use crate::store::types::ThinBytes;
use crate::store::types::{SetValue, ZSetValue};
use crate::store::{Db, Value, ValueRef};

const ZSET: &[&str] = &["sortedset"];

/// A popped or computed element: the member's shared bytes and its score.
pub type Element = (ThinBytes, f64);
const GROUP: &str = "sorted-set";
const TWO_KEYS: KeySpec = KeySpec::Range {
    first: 1,
    last: 2,
    step: 1,
};
const NUMKEYS: KeySpec = KeySpec::NumKeys { numkeys_index: 1 };
/// BZPOPMIN/BZPOPMAX: every argument but the last (the timeout).
const KEYS_BEFORE_TIMEOUT: KeySpec = KeySpec::Range {
    first: 1,
    last: -2,
    step: 1,
};
const POP_KEYS: &[&str] = &["RW", "access", "delete"];
const DEST_NUMKEYS: KeySpec = KeySpec::DestAndNumKeys { numkeys_index: 2 };

const RANGE_COMPLEXITY: &str = "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N)).";
const REMRANGE_COMPLEXITY: &str = "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.";

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("zadd", -4, WRITE | DENYOOM | FAST, FIRST_KEY, zadd)
        // Without options (NX, GT, CH...), the first member; with them the
        // prefetch loads a member that is not looked up, which is harmless.
        .member_at(3)
        .acl(ZSET)
        .doc(GROUP, "1.2.0", "Add one or more members to a sorted set, or update its score if it already exists", "O(log(N)) for each item added, where N is the number of elements in the sorted set."),
    CommandSpec::new("zincrby", 4, WRITE | DENYOOM | FAST, FIRST_KEY, zincrby)
        .member_at(3)
        .acl(ZSET)
        .doc(GROUP, "1.2.0", "Increment the score of a member in a sorted set", "O(log(N)) where N is the number of elements in the sorted set."),
    CommandSpec::new("zrem", -3, WRITE | FAST, FIRST_KEY, zrem)
        .member_at(2)
        .acl(ZSET)
        .doc(GROUP, "1.2.0", "Remove one or more members from a sorted set", "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed."),
    CommandSpec::new("zcard", 2, READONLY | FAST, FIRST_KEY, zcard)
        .acl(ZSET)
        .doc(GROUP, "1.2.0", "Get the number of members in a sorted set", "O(1)"),
    CommandSpec::new("zscore", 3, READONLY | FAST, FIRST_KEY, zscore)
        .member_at(2)
        .acl(ZSET)
        .doc(GROUP, "1.2.0", "Get the score associated with the given member in a sorted set", "O(1)"),
    CommandSpec::new("zmscore", -3, READONLY | FAST, FIRST_KEY, zmscore)
        .member_at(2)
        .acl(ZSET)
        .doc(GROUP, "6.2.0", "Get the score associated with the given members in a sorted set", "O(N) where N is the number of members being requested."),
    CommandSpec::new("zcount", 4, READONLY | FAST, FIRST_KEY, zcount)
        .acl(ZSET)
        .doc(GROUP, "2.0.0", "Count the members in a sorted set with scores within the given values", "O(log(N)) with N being the number of elements in the sorted set."),
    CommandSpec::new("zlexcount", 4, READONLY | FAST, FIRST_KEY, zlexcount)
        .acl(ZSET)
        .doc(GROUP, "2.8.9", "Count the number of members in a sorted set between a given lexicographical range", "O(log(N)) with N being the number of elements in the sorted set."),
    CommandSpec::new("zrank", -3, READONLY | FAST, FIRST_KEY, zrank)
        .member_at(2)
        .acl(ZSET)
        .doc(GROUP, "2.0.0", "Determine the index of a member in a sorted set", "O(log(N))"),
    CommandSpec::new("zrevrank", -3, READONLY | FAST, FIRST_KEY, zrevrank)
        .member_at(2)
        .acl(ZSET)
        .doc(GROUP, "2.0.0", "Determine the index of a member in a sorted set, with scores ordered from high to low", "O(log(N))"),
    CommandSpec::new("zrange", -4, READONLY, FIRST_KEY, zrange)
        .acl(ZSET)
        .doc(GROUP, "1.2.0", "Return a range of members in a sorted set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned."),
    CommandSpec::new("zrangestore", -5, WRITE | DENYOOM, TWO_KEYS, zrangestore)
        .acl(ZSET)
        .doc(GROUP, "6.2.0", "Store a range of members from sorted set into another key", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements stored into the destination key."),
    CommandSpec::new("zrangebyscore", -4, READONLY, FIRST_KEY, zrangebyscore)
        .acl(ZSET)
        .doc(GROUP, "1.0.5", "Return a range of members in a sorted set, by score", RANGE_COMPLEXITY),
    CommandSpec::new("zrevrangebyscore", -4, READONLY, FIRST_KEY, zrevrangebyscore)
        .acl(ZSET)
        .doc(GROUP, "2.2.0", "Return a range of members in a sorted set, by score, with scores ordered from high to low", RANGE_COMPLEXITY),
    CommandSpec::new("zrangebylex", -4, READONLY, FIRST_KEY, zrangebylex)
        .acl(ZSET)
        .doc(GROUP, "2.8.9", "Return a range of members in a sorted set, by lexicographical range", RANGE_COMPLEXITY),
    CommandSpec::new("zrevrangebylex", -4, READONLY, FIRST_KEY, zrevrangebylex)
        .acl(ZSET)
        .doc(GROUP, "2.8.9", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.", RANGE_COMPLEXITY),
    CommandSpec::new("zrevrange", -4, READONLY, FIRST_KEY, zrevrange)
        .acl(ZSET)
        .doc(GROUP, "1.2.0", "Return a range of members in a sorted set, by index, with scores ordered from high to low", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned."),
    CommandSpec::new("zpopmin", -2, WRITE | FAST, FIRST_KEY, zpopmin)
        .acl(ZSET)
        .doc(GROUP, "5.0.0", "Remove and return members with the lowest scores in a sorted set", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped."),
    CommandSpec::new("zpopmax", -2, WRITE | FAST, FIRST_KEY, zpopmax)
        .acl(ZSET)
        .doc(GROUP, "5.0.0", "Remove and return members with the highest scores in a sorted set", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped."),
    CommandSpec::new("zmpop", -4, WRITE, NUMKEYS, zmpop)
        .acl(ZSET)
        .doc(GROUP, "7.0.0", "Remove and return members with scores in a sorted set", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped."),
    CommandSpec::new("bzpopmin", -3, WRITE | NOSCRIPT | BLOCKING | FAST, KEYS_BEFORE_TIMEOUT, bzpopmin)
        .acl(ZSET)
        .key_spec_flags(POP_KEYS)
        .doc(GROUP, "5.0.0", "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available", "O(log(N)) with N being the number of elements in the sorted set."),
    CommandSpec::new("bzpopmax", -3, WRITE | NOSCRIPT | BLOCKING | FAST, KEYS_BEFORE_TIMEOUT, bzpopmax)
        .acl(ZSET)
        .key_spec_flags(POP_KEYS)
        .doc(GROUP, "5.0.0", "Remove and return the member with the highest score from one or more sorted sets, or block until one is available", "O(log(N)) with N being the number of elements in the sorted set."),
    CommandSpec::new("bzmpop", -5, WRITE | BLOCKING, KeySpec::NumKeys { numkeys_index: 2 }, bzmpop)
        .acl(ZSET)
        .key_spec_flags(POP_KEYS)
        .doc(GROUP, "7.0.0", "Remove and return members with scores in a sorted set or block until one is available", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped."),
    CommandSpec::new("zrandmember", -2, READONLY, FIRST_KEY, zrandmember)
        .acl(ZSET)
        .doc(GROUP, "6.2.0", "Get one or multiple random elements from a sorted set", "O(N) where N is the number of elements returned"),
    CommandSpec::new("zremrangebyrank", 4, WRITE, FIRST_KEY, zremrangebyrank)
        .acl(ZSET)
        .doc(GROUP, "2.0.0", "Remove all members in a sorted set within the given indexes", REMRANGE_COMPLEXITY),
    CommandSpec::new("zremrangebyscore", 4, WRITE, FIRST_KEY, zremrangebyscore)
        .acl(ZSET)
        .doc(GROUP, "1.2.0", "Remove all members in a sorted set within the given scores", REMRANGE_COMPLEXITY),
    CommandSpec::new("zremrangebylex", 4, WRITE, FIRST_KEY, zremrangebylex)
        .acl(ZSET)
        .doc(GROUP, "2.8.9", "Remove all members in a sorted set between the given lexicographical range", REMRANGE_COMPLEXITY),
    CommandSpec::new("zunion", -3, READONLY, NUMKEYS, zunion)
        .acl(ZSET)
        .doc(GROUP, "6.2.0", "Add multiple sorted sets", "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set."),
    CommandSpec::new("zinter", -3, READONLY, NUMKEYS, zinter)
        .acl(ZSET)
        .doc(GROUP, "6.2.0", "Intersect multiple sorted sets", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set."),
    CommandSpec::new("zdiff", -3, READONLY, NUMKEYS, zdiff)
        .acl(ZSET)
        .doc(GROUP, "6.2.0", "Subtract multiple sorted sets", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set."),
    CommandSpec::new("zunionstore", -4, WRITE | DENYOOM, DEST_NUMKEYS, zunionstore)
        .acl(ZSET)
        .doc(GROUP, "2.0.0", "Add multiple sorted sets and store the resulting sorted set in a new key", "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set."),
    CommandSpec::new("zinterstore", -4, WRITE | DENYOOM, DEST_NUMKEYS, zinterstore)
        .acl(ZSET)
        .doc(GROUP, "2.0.0", "Intersect multiple sorted sets and store the resulting sorted set in a new key", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set."),
    CommandSpec::new("zdiffstore", -4, WRITE | DENYOOM, DEST_NUMKEYS, zdiffstore)
        .acl(ZSET)
        .doc(GROUP, "6.2.0", "Subtract multiple sorted sets and store the resulting sorted set in a new key", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set."),
    CommandSpec::new("zintercard", -3, READONLY, NUMKEYS, zintercard)
        .acl(ZSET)
        .doc(GROUP, "7.0.0", "Intersect multiple sorted sets and return the cardinality of the result", "O(N*K) worst case with N being the smallest input sorted set, K being the number of input sorted sets."),
    CommandSpec::new("zscan", -3, READONLY, FIRST_KEY, zscan)
        .acl(ZSET)
        .doc(GROUP, "2.8.0", "Incrementally iterate sorted sets elements and associated scores", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.."),
];

// ---------------------------------------------------------------------------
// Argument parsing: C's strtod and Redis's range syntax.
// ---------------------------------------------------------------------------

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The argument as a C string sees it: up to the first NUL byte.
fn c_str(arg: &[u8]) -> &[u8] {
    match arg.iter().position(|&b| b == 0) {
        Some(end) => &arg[..end],
        None => arg,
    }
}

/// What C's `strtod` returns for a prefix of `s`.
pub(super) struct Strtod {
    pub(super) value: f64,
    /// Bytes consumed (0 when nothing was converted, as `endptr == nptr`).
    pub(super) end: usize,
    /// `errno == ERANGE`: the text overflowed to infinity or underflowed to 0.
    pub(super) range_error: bool,
}

/// glibc's `strtod` on `s`: leading white space, a sign, then a decimal
/// number, a hexadecimal one (`0x1.8p3`), `inf`/`infinity` or
/// `nan`/`nan(...)`, case-insensitively. Stops at the first byte that does
/// not fit (including NUL).
pub(super) fn strtod(s: &[u8]) -> Strtod {
    let none = Strtod {
        value: 0.0,
        end: 0,
        range_error: false,
    };
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let start = i;
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let sign = if negative { -1.0 } else { 1.0 };
    let rest = &s[i..];
    let starts_with =
        |word: &[u8]| rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    if starts_with(b"infinity") {
        return Strtod {
            value: sign * f64::INFINITY,
            end: i + 8,
            range_error: false,
        };
    }
    if starts_with(b"inf") {
        return Strtod {
            value: sign * f64::INFINITY,
            end: i + 3,
            range_error: false,
        };
    }
    if starts_with(b"nan") {
        let mut end = i + 3;
        if s.get(end) == Some(&b'(') {
            let mut j = end + 1;
            while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
                j += 1;
            }
            if s.get(j) == Some(&b')') {
                end = j + 1;
            }
        }
        return Strtod {
            value: f64::NAN,
            end,
            range_error: false,
        };
    }
    if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((value, used, range_error)) = parse_hex_float(&rest[2..]) {
            return Strtod {
                value: sign * value,
                end: i + 2 + used,
                range_error,
            };
        }
        // "0x" without hex digits: just the 0.
        return Strtod {
            value: sign * 0.0,
            end: i + 1,
            range_error: false,
        };
    }
    // Decimal: digits, optional fraction, at least one digit, optional exponent.
    let mut j = i;
    let mut digits = 0;
    let mut nonzero = false;
    while j < s.len() && s[j].is_ascii_digit() {
        nonzero |= s[j] != b'0';
        digits += 1;
        j += 1;
    }
    if j < s.len() && s[j] == b'.' {
        j += 1;
        while j < s.len() && s[j].is_ascii_digit() {
            nonzero |= s[j] != b'0';
            digits += 1;
            j += 1;
        }
    }
    if digits == 0 {
        return none;
    }
    if j < s.len() && (s[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            k += 1;
        }
        if k < s.len() && s[k].is_ascii_digit() {
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(&s[start..j]).unwrap_or("0");
    let value: f64 = text.parse().unwrap_or(0.0);
    let range_error = value.is_infinite() || (value == 0.0 && nonzero);
    Strtod {
        value,
        end: j,
        range_error,
    }
}

/// The part of a hexadecimal float after "0x": hex digits with an optional
/// fraction and an optional binary exponent (`p[+-]digits`). Returns the
/// magnitude, the bytes used and whether it overflowed or underflowed.
fn parse_hex_float(s: &[u8]) -> Option<(f64, usize, bool)> {
    let mut mantissa: u64 = 0;
    let mut exponent: i64 = 0;
    let mut any = false;
    let mut nonzero = false;
    let mut i = 0;
    let mut seen_point = false;
    while i < s.len() {
        let b = s[i];
        if b == b'.' && !seen_point {
            seen_point = true;
            i += 1;
            continue;
        }
        let Some(d) = (b as char).to_digit(16) else {
            break;
        };
        any = true;
        nonzero |= d != 0;
        if mantissa < (1 << 59) {
            mantissa = mantissa * 16 + d as u64;
            if seen_point {
                exponent -= 4;
            }
        } else if !seen_point {
            exponent += 4;
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if i < s.len() && (s[i] | 0x20) == b'p' {
        let mut k = i + 1;
        let negative = match s.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        if k < s.len() && s[k].is_ascii_digit() {
            let mut e: i64 = 0;
            while k < s.len() && s[k].is_ascii_digit() {
                e = e.saturating_mul(10).saturating_add((s[k] - b'0') as i64);
                k += 1;
            }
            exponent = exponent.saturating_add(if negative { -e } else { e });
            i = k;
        }
    }
    let mut value = mantissa as f64;
    let mut e = exponent;
    while e > 0 && value.is_finite() {
        let step = e.min(512);
        value *= 2f64.powi(step as i32);
        e -= step;
    }
    while e < 0 && value != 0.0 {
        let step = (-e).min(512);
        value /= 2f64.powi(step as i32);
        e += step;
    }
    let range_error = value.is_infinite() || (value == 0.0 && nonzero);
    Some((value, i, range_error))
}

/// A score as Redis's `getDoubleFromObject` reads it: the whole argument is
/// a number for strtod, no leading space, no overflow/underflow to
/// infinity/zero, not NaN.
pub(super) fn parse_score(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() || is_c_space(arg[0]) {
        return None;
    }
    let parsed = strtod(arg);
    if parsed.end != arg.len()
        || parsed.value.is_nan()
        || (parsed.range_error && (parsed.value.is_infinite() || parsed.value == 0.0))
    {
        return None;
    }
    Some(parsed.value)
}

fn score_arg(arg: &[u8]) -> Result<f64> {
    parse_score(arg).ok_or_else(Error::not_float)
}

/// A score interval (`(` makes a bound exclusive), as `zslParseRange`.
#[derive(Debug, Clone, Copy)]
struct ScoreRange {
    min: f64,
    max: f64,
    min_exclusive: bool,
    max_exclusive: bool,
}

/// One bound of a score range: strtod on the C string (so leading spaces,
/// the empty string — 0 — and hex are accepted, as in Redis), no NaN.
fn parse_score_bound(arg: &[u8]) -> Option<(f64, bool)> {
    let text = c_str(arg);
    let (exclusive, body) = match text.split_first() {
        Some((b'(', body)) => (true, body),
        _ => (false, text),
    };
    let parsed = strtod(body);
    if parsed.end != body.len() || parsed.value.is_nan() {
        return None;
    }
    Some((parsed.value, exclusive))
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self> {
        let bad = || Error::err("min or max is not a float");
        let (min, min_exclusive) = parse_score_bound(min).ok_or_else(bad)?;
        let (max, max_exclusive) = parse_score_bound(max).ok_or_else(bad)?;
        Ok(ScoreRange {
            min,
            max,
            min_exclusive,
            max_exclusive,
        })
    }

    fn ranks(&self, z: &ZSetValue) -> Option<(usize, usize)> {
        z.score_range_ranks(self.min, self.min_exclusive, self.max, self.max_exclusive)
    }
}

/// One end of a lexicographic range.
#[derive(Debug, Clone)]
enum LexBound {
    NegInf,
    PosInf,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

impl LexBound {
    /// `zslParseLexRangeItem`: `-`, `+`, `[member` or `(member`.
    fn parse(arg: &[u8]) -> Option<Self> {
        // "+" and "-" must be alone (C string: a NUL may follow).
        let alone = arg.get(1).is_none_or(|&b| b == 0);
        match arg.first() {
            Some(b'+') if alone => Some(LexBound::PosInf),
            Some(b'-') if alone => Some(LexBound::NegInf),
            Some(b'(') => Some(LexBound::Exclusive(arg[1..].to_vec())),
            Some(b'[') => Some(LexBound::Inclusive(arg[1..].to_vec())),
            _ => None,
        }
    }

    /// How `value` compares with this bound (`sdscmplex`).
    fn compare(&self, value: &[u8]) -> std::cmp::Ordering {
        match self {
            LexBound::NegInf => std::cmp::Ordering::Greater,
            LexBound::PosInf => std::cmp::Ordering::Less,
            LexBound::Inclusive(b) | LexBound::Exclusive(b) => value.cmp(b.as_slice()),
        }
    }

    fn exclusive(&self) -> bool {
        !matches!(self, LexBound::Inclusive(_))
    }
}

#[derive(Debug, Clone)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<Self> {
        let bad = || Error::err("min or max not valid string range item");
        Ok(LexRange {
            min: LexBound::parse(min).ok_or_else(bad)?,
            max: LexBound::parse(max).ok_or_else(bad)?,
        })
    }

    fn gte_min(&self, value: &[u8]) -> bool {
        let ord = self.min.compare(value);
        if self.min.exclusive() {
            ord.is_gt()
        } else {
            ord.is_ge()
        }
    }

    fn lte_max(&self, value: &[u8]) -> bool {
        let ord = self.max.compare(value);
        if self.max.exclusive() {
            ord.is_lt()
        } else {
            ord.is_le()
        }
    }

    fn ranks(&self, z: &ZSetValue) -> Option<(usize, usize)> {
        z.rank_span(|_, m| !self.gte_min(m), |_, m| self.lte_max(m))
    }
}

/// `getRangeLongFromObjectOrReply` with a custom message for both failures.
fn long_at_least_one(arg: &[u8], message: &'static str) -> Result<i64> {
    match strict_i64(arg) {
        Some(n) if n >= 1 => Ok(n),
        _ => Err(Error::err(message)),
    }
}

/// `getPositiveLongFromObjectOrReply` without a custom message.
fn positive_long(arg: &[u8]) -> Result<i64> {
    match strict_i64(arg) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(Error::err("value is out of range, must be positive")),
    }
}

// ---------------------------------------------------------------------------
// Keyspace helpers.
// ---------------------------------------------------------------------------

fn get_zset<'a>(db: &'a Db, key: &[u8], now: u64) -> Result<Option<&'a ZSetValue>> {
    match db.get(key, now) {
        None => Ok(None),
        Some(entry) => match entry.value() {
            ValueRef::ZSet(z) => Ok(Some(z)),
            _ => Err(Error::wrong_type()),
        },
    }
}

fn get_zset_mut<'a>(db: &'a mut Db, key: &[u8], now: u64) -> Result<Option<&'a mut ZSetValue>> {
    match db.value_mut(key, now) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(Error::wrong_type()),
    }
}

/// Keyspace notifications are published through the engine directly, under
/// the key's shard lock (which borrows the `Ctx`), so that the events of one
/// key come in the order of its changes.
///
/// Announces a change of the sorted set at `key` (`event`), and its
/// deletion if the change `emptied` it, as Redis does.
fn notify_change(pubsub: &PubSub, db: usize, key: &[u8], event: &str, emptied: bool) {
    pubsub.notify(events::ZSET, event, key, db);
    if emptied {
        pubsub.notify(events::GENERIC, "del", key, db);
    }
}

/// [`get_zset`] for a read command: a miss is announced.
fn read_zset<'a>(
    shared: &Shared,
    db: &'a Db,
    dbi: usize,
    key: &[u8],
    now: u64,
) -> Result<Option<&'a ZSetValue>> {
    reads::counted(shared, dbi, key, get_zset(db, key, now))
}

/// Stores the result of a STORE form at `dst`, announced as `event`; an
/// empty result deletes `dst` instead, announced as a deletion.
fn store_zset(
    pubsub: &PubSub,
    db: &mut Db,
    dbi: usize,
    dst: &[u8],
    out: ZSetValue,
    now: u64,
    event: &str,
) {
    if out.is_empty() {
        if db.remove(dst, now).is_some() {
            pubsub.notify(events::GENERIC, "del", dst, dbi);
        }
    } else {
        db.insert(dst, Value::ZSet(Box::new(out)), None, now);
        pubsub.notify(events::ZSET, event, dst, dbi);
    }
}

/// After an in-place change: an emptied set is deleted (as Redis does),
/// otherwise WATCHers see the change.
fn finish_write(db: &mut Db, key: &[u8], now: u64, emptied: bool, changed: bool) {
    if emptied {
        db.remove(key, now);
    } else if changed {
        db.touch(key);
    }
}

/// Writes (member, score) elements: a flat array (with scores interleaved
/// in RESP2), or [member, score] pairs in RESP3 when `withscores`.
fn reply_elements<'a>(
    out: &mut ReplyBuf,
    len: usize,
    elements: impl Iterator<Item = (&'a [u8], f64)>,
    withscores: bool,
) {
    let nested = withscores && out.is_resp3();
    out.array(if withscores && !nested { len * 2 } else { len });
    for (member, score) in elements.take(len) {
        if nested {
            out.array(2);
        }
        out.bulk(member);
        if withscores {
            out.double(score);
        }
    }
}

// ---------------------------------------------------------------------------
// ZADD, ZINCRBY, ZREM, ZCARD, ZSCORE, ZMSCORE, ZCOUNT, ZLEXCOUNT, ZRANK.
// ---------------------------------------------------------------------------

pub(super) fn zadd(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    zadd_generic(ctx, argv, 0)
}

fn zincrby(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    zadd_generic(ctx, argv, ZSetValue::INCR)
}

/// `zaddGenericCommand`: ZADD and ZINCRBY (which parses options too).
fn zadd_generic(ctx: &mut Ctx, argv: &[&[u8]], mut flags: u8) -> Result<()> {
    let key = argv[1];
    let mut ch = false;
    let mut index = 2;
    while index < argv.len() {
        let option = argv[index];
        if is_keyword(option, "nx") {
            flags |= ZSetValue::NX;
        } else if is_keyword(option, "xx") {
            flags |= ZSetValue::XX;
        } else if is_keyword(option, "ch") {
            ch = true;
        } else if is_keyword(option, "incr") {
            flags |= ZSetValue::INCR;
        } else if is_keyword(option, "gt") {
            flags |= ZSetValue::GT;
        } else if is_keyword(option, "lt") {
            flags |= ZSetValue::LT;
        } else {
            break;
        }
        index += 1;
    }
    let has = |flag: u8| flags & flag != 0;
    let rest = argv.len() - index;
    if !rest.is_multiple_of(2) || rest == 0 {
        return Err(Error::syntax());
    }
    let elements = rest / 2;
    if has(ZSetValue::NX) && has(ZSetValue::XX) {
        return Err(Error::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    let (nx, gt, lt) = (has(ZSetValue::NX), has(ZSetValue::GT), has(ZSetValue::LT));
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(Error::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    let incr = has(ZSetValue::INCR);
    if incr && elements > 1 {
        return Err(Error::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let scores = (0..elements)
        .map(|j| score_arg(argv[index + 2 * j]))
        .collect::<Result<Vec<f64>>>()?;

    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let apply = |z: &mut ZSetValue| -> Result<(usize, usize, Option<f64>)> {
        let (mut added, mut updated, mut last) = (0, 0, None);
        for (j, &score) in scores.iter().enumerate() {
            let member = argv[index + 2 * j + 1];
            let outcome = z
                .add(member, score, flags)
                .map_err(|_| Error::err("resulting score is not a number (NaN)"))?;
            added += outcome.added() as usize;
            updated += outcome.updated() as usize;
            if let Some(score) = outcome.score() {
                last = Some(score);
            }
        }
        Ok((added, updated, last))
    };
    let (added, updated, last) = match get_zset_mut(db, key, now)? {
        Some(z) => {
            let result = apply(z)?;
            if result.0 + result.1 > 0 {
                let members = Items::every(&argv[index + 1..], 2);
                db.touch_with(key, Effect::ZSetMembers(members));
            }
            result
        }
        None if has(ZSetValue::XX) => (0, 0, None),
        None => {
            let mut z = ZSetValue::new();
            let result = apply(&mut z)?;
            if !z.is_empty() {
                db.insert(key, Value::ZSet(Box::new(z)), None, now);
            }
            result
        }
    };
    if added + updated > 0 {
        let event = if incr { "zincr" } else { "zadd" };
        notify_change(pubsub, dbi, key, event, false);
    }
    if added > 0 {
        // Clients blocked (BZPOPMIN...) on the key may now be served.
        ctx.shared
            .blocking
            .key_ready(dbi, key, Some(WaitKind::ZSet));
    }
    if incr {
        match last {
            Some(score) => ctx.out.double(score),
            None => ctx.out.null(),
        }
    } else {
        ctx.out
            .int((if ch { added + updated } else { added }) as i64);
    }
    Ok(())
}

fn zrem(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let (deleted, emptied) = match get_zset_mut(db, key, now)? {
        None => (0, false),
        Some(z) => {
            let mut deleted = 0;
            for member in &argv[2..] {
                deleted += z.remove(member) as i64;
                if z.is_empty() {
                    break;
                }
            }
            (deleted, z.is_empty())
        }
    };
    if emptied {
        db.remove(key, now);
    } else if deleted > 0 {
        db.touch_with(key, Effect::ZSetMembers(Items::all(&argv[2..])));
    }
    if deleted > 0 {
        notify_change(&ctx.shared.pubsub, dbi, key, "zrem", emptied);
    }
    ctx.out.int(deleted);
    Ok(())
}

fn zcard(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let locked = ctx.locks.read_key(key)?;
    let len = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)?.map_or(0, ZSetValue::len);
    ctx.out.int(len as i64);
    Ok(())
}

fn zscore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let locked = ctx.locks.read_key(key)?;
    match read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)?.and_then(|z| z.score(argv[2]))
    {
        Some(score) => ctx.out.double(score),
        None => ctx.out.null(),
    }
    Ok(())
}

fn zmscore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let locked = ctx.locks.read_key(key)?;
    let z = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)?;
    ctx.out.array(argv.len() - 2);
    for member in &argv[2..] {
        match z.and_then(|z| z.score(member)) {
            Some(score) => ctx.out.double(score),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn zcount(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let range = ScoreRange::parse(argv[2], argv[3])?;
    count_generic(ctx, argv[1], |z| range.ranks(z))
}

fn zlexcount(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let range = LexRange::parse(argv[2], argv[3])?;
    count_generic(ctx, argv[1], |z| range.ranks(z))
}

fn count_generic(
    ctx: &mut Ctx,
    key: &[u8],
    ranks: impl Fn(&ZSetValue) -> Option<(usize, usize)>,
) -> Result<()> {
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let locked = ctx.locks.read_key(key)?;
    let count = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)?
        .and_then(ranks)
        .map_or(0, |(first, last)| last - first + 1);
    ctx.out.int(count as i64);
    Ok(())
}

fn zrank(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    rank_generic(ctx, argv, false)
}

fn zrevrank(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    rank_generic(ctx, argv, true)
}

/// ZRANK/ZREVRANK key member [WITHSCORE] (WITHSCORE is Redis 7.2).
fn rank_generic(ctx: &mut Ctx, argv: &[&[u8]], reverse: bool) -> Result<()> {
    if argv.len() > 4 {
        return Err(Error::wrong_arity(if reverse {
            "zrevrank"
        } else {
            "zrank"
        }));
    }
    let withscore = match argv.get(3) {
        Some(arg) if is_keyword(arg, "withscore") => true,
        Some(_) => return Err(Error::syntax()),
        None => false,
    };
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let locked = ctx.locks.read_key(key)?;
    let found = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)?
        .and_then(|z| z.rank(argv[2]).map(|(rank, score)| (rank, score, z.len())));
    match found {
        Some((rank, score, len)) => {
            let rank = if reverse { len - 1 - rank } else { rank };
            if withscore {
                ctx.out.array(2);
                ctx.out.int(rank as i64);
                ctx.out.double(score);
            } else {
                ctx.out.int(rank as i64);
            }
        }
        None if withscore => ctx.out.null_array(),
        None => ctx.out.null(),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// ZRANGE and friends.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

enum ParsedRange {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

fn zrange(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    range_generic(ctx, argv, 1, None, RangeType::Auto, Direction::Auto)
}

fn zrangestore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    range_generic(
        ctx,
        argv,
        2,
        Some(argv[1]),
        RangeType::Auto,
        Direction::Auto,
    )
}

fn zrevrange(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    range_generic(ctx, argv, 1, None, RangeType::Rank, Direction::Reverse)
}

fn zrangebyscore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    range_generic(ctx, argv, 1, None, RangeType::Score, Direction::Forward)
}

fn zrevrangebyscore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    range_generic(ctx, argv, 1, None, RangeType::Score, Direction::Reverse)
}

fn zrangebylex(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    range_generic(ctx, argv, 1, None, RangeType::Lex, Direction::Forward)
}

fn zrevrangebylex(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    range_generic(ctx, argv, 1, None, RangeType::Lex, Direction::Reverse)
}

/// The ranks a range selects: start at `start` (ascending rank), walk
/// `len` elements forward or backward.
struct Selection {
    start: usize,
    len: usize,
    reverse: bool,
}

impl Selection {
    fn empty() -> Self {
        Selection {
            start: 0,
            len: 0,
            reverse: false,
        }
    }
}

/// `genericZrangebyrankCommand`'s index arithmetic.
fn select_by_rank(len: usize, start: i64, end: i64, reverse: bool) -> Selection {
    let llen = len as i64;
    let mut start = if start < 0 { llen + start } else { start };
    let end = if end < 0 { llen + end } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= llen {
        return Selection::empty();
    }
    let end = end.min(llen - 1);
    let count = (end - start + 1) as usize;
    let start = start as usize;
    Selection {
        start: if reverse { len - 1 - start } else { start },
        len: count,
        reverse,
    }
}

/// Redis's BYSCORE/BYLEX walk: from the first (or, reversed, the last)
/// element in range, skip `offset`, then take up to `limit` (negative:
/// all) while in range. A negative offset walks off the end (empty).
fn select_by_span(
    len: usize,
    span: Option<(usize, usize)>,
    offset: i64,
    limit: i64,
    reverse: bool,
) -> Selection {
    if offset > 0 && offset as u64 >= len as u64 {
        return Selection::empty();
    }
    let Some((first, last)) = span else {
        return Selection::empty();
    };
    if offset < 0 {
        return Selection::empty();
    }
    let in_range = last - first + 1;
    let offset = offset as u64;
    if offset >= in_range as u64 {
        return Selection::empty();
    }
    let offset = offset as usize;
    let available = in_range - offset;
    let count = if limit < 0 {
        available
    } else {
        available.min(usize::try_from(limit).unwrap_or(usize::MAX))
    };
    Selection {
        start: if reverse {
            last - offset
        } else {
            first + offset
        },
        len: count,
        reverse,
    }
}

/// `zrangeGenericCommand`: ZRANGE, ZRANGESTORE and the older forms.
/// `arg_start` is the source key's index.
fn range_generic(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    arg_start: usize,
    store: Option<&[u8]>,
    mut range_type: RangeType,
    mut direction: Direction,
) -> Result<()> {
    let key = argv[arg_start];
    let mut min_index = arg_start + 1;
    let mut max_index = arg_start + 2;
    let mut withscores = false;
    let mut offset: i64 = 0;
    let mut limit: i64 = -1;

    let mut j = arg_start + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let arg = argv[j];
        if store.is_none() && is_keyword(arg, "withscores") {
            withscores = true;
        } else if is_keyword(arg, "limit") && left >= 2 {
            offset = int_arg(argv[j + 1])?;
            limit = int_arg(argv[j + 2])?;
            j += 2;
        } else if direction == Direction::Auto && is_keyword(arg, "rev") {
            direction = Direction::Reverse;
        } else if range_type == RangeType::Auto && is_keyword(arg, "bylex") {
            range_type = RangeType::Lex;
        } else if range_type == RangeType::Auto && is_keyword(arg, "byscore") {
            range_type = RangeType::Score;
        } else {
            return Err(Error::syntax());
        }
        j += 1;
    }
    if direction == Direction::Auto {
        direction = Direction::Forward;
    }
    if range_type == RangeType::Auto {
        range_type = RangeType::Rank;
    }
    if limit != -1 && range_type == RangeType::Rank {
        return Err(Error::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && range_type == RangeType::Lex {
        return Err(Error::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let reverse = direction == Direction::Reverse;
    if reverse && range_type != RangeType::Rank {
        std::mem::swap(&mut min_index, &mut max_index);
    }
    let range = match range_type {
        RangeType::Score => {
            ParsedRange::Score(ScoreRange::parse(argv[min_index], argv[max_index])?)
        }
        RangeType::Lex => ParsedRange::Lex(LexRange::parse(argv[min_index], argv[max_index])?),
        _ => ParsedRange::Rank(int_arg(argv[min_index])?, int_arg(argv[max_index])?),
    };

    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let pair = [store.unwrap_or(key), key];
    let keys = if store.is_some() {
        &pair[..]
    } else {
        &pair[..1]
    };
    let select = |z: &ZSetValue| match &range {
        ParsedRange::Rank(start, end) => select_by_rank(z.len(), *start, *end, reverse),
        ParsedRange::Score(r) => select_by_span(z.len(), r.ranks(z), offset, limit, reverse),
        ParsedRange::Lex(r) => select_by_span(z.len(), r.ranks(z), offset, limit, reverse),
    };
    let Some(dst) = store else {
        let locked = ctx.locks.read_key(key)?;
        let Some(z) = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)? else {
            ctx.out.array(0);
            return Ok(());
        };
        let sel = select(z);
        reply_elements(
            ctx.out,
            sel.len,
            z.iter_from(sel.start, sel.reverse),
            withscores,
        );
        return Ok(());
    };

    // ZRANGESTORE: copy the selection out, then write the destination
    // (which may be the source).
    let mut locked = ctx.locks.keys(keys)?;
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let (result, expected): (Vec<(Vec<u8>, f64)>, usize) =
        match read_zset(shared, locked.db(dbi, key)?, dbi, key, now)? {
            None => (Vec::new(), 0),
            Some(z) => {
                let sel = select(z);
                let expected = if matches!(range, ParsedRange::Rank(..)) {
                    sel.len
                } else {
                    0
                };
                let items = z
                    .iter_from(sel.start, sel.reverse)
                    .take(sel.len)
                    .map(|(m, s)| (m.to_vec(), s))
                    .collect();
                (items, expected)
            }
        };
    let db = locked.db(dbi, dst)?;
    let mut out = ZSetValue::with_expected_len(expected);
    for (member, score) in &result {
        out.insert(member, *score);
    }
    let len = out.len();
    store_zset(pubsub, db, dbi, dst, out, now, "zrangestore");
    if len == 0 {
        ctx.out.int(0);
        return Ok(());
    }
    ctx.shared
        .blocking
        .key_ready(dbi, dst, Some(WaitKind::ZSet));
    ctx.out.int(len as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX.
// ---------------------------------------------------------------------------

fn zremrangebyrank(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let start = int_arg(argv[2])?;
    let end = int_arg(argv[3])?;
    remrange_generic(ctx, argv[1], "zremrangebyrank", |z| {
        let sel = select_by_rank(z.len(), start, end, false);
        (sel.len > 0).then(|| (sel.start, sel.start + sel.len - 1))
    })
}

fn zremrangebyscore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let range = ScoreRange::parse(argv[2], argv[3])?;
    remrange_generic(ctx, argv[1], "zremrangebyscore", |z| range.ranks(z))
}

fn zremrangebylex(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let range = LexRange::parse(argv[2], argv[3])?;
    remrange_generic(ctx, argv[1], "zremrangebylex", |z| range.ranks(z))
}

fn remrange_generic(
    ctx: &mut Ctx,
    key: &[u8],
    event: &str,
    ranks: impl Fn(&ZSetValue) -> Option<(usize, usize)>,
) -> Result<()> {
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let (removed, emptied) = match get_zset_mut(db, key, now)? {
        None => (0, false),
        Some(z) => {
            let removed = match ranks(z) {
                Some((first, last)) => z.remove_rank_range(first, last),
                None => 0,
            };
            (removed, z.is_empty())
        }
    };
    finish_write(db, key, now, emptied, removed > 0);
    if removed > 0 {
        notify_change(&ctx.shared.pubsub, dbi, key, event, emptied);
    }
    ctx.out.int(removed as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZPOPMIN, ZPOPMAX, ZMPOP (and what the blocking forms will use).
// ---------------------------------------------------------------------------

/// Pops up to `count` elements from the lowest (or, with `max`, highest)
/// end of the sorted set at `key` in database `dbi`, deleting the key when
/// it empties, and announces it. `Ok(None)` if there is no such key;
/// WRONGTYPE if it holds another type. BZPOPMIN/BZPOPMAX/BZMPOP call this
/// once a key is ready.
pub fn pop_elements(
    pubsub: &PubSub,
    db: &mut Db,
    dbi: usize,
    key: &[u8],
    max: bool,
    count: usize,
    now: u64,
) -> Result<Option<Vec<Element>>> {
    let Some(z) = get_zset_mut(db, key, now)? else {
        return Ok(None);
    };
    let take = count.min(z.len());
    let mut popped = Vec::with_capacity(take);
    for _ in 0..take {
        match z.pop(max) {
            Some(element) => popped.push(element),
            None => break,
        }
    }
    let emptied = z.is_empty();
    finish_write(db, key, now, emptied, !popped.is_empty());
    if !popped.is_empty() {
        let event = if max { "zpopmax" } else { "zpopmin" };
        notify_change(pubsub, dbi, key, event, emptied);
    }
    Ok(Some(popped))
}

/// The BZPOPMIN/BZPOPMAX reply: `[key, member, score]` (score a double in
/// RESP3, a bulk string in RESP2).
pub fn reply_bzpop(out: &mut ReplyBuf, key: &[u8], member: &[u8], score: f64) {
    out.array(3);
    out.bulk(key);
    out.bulk(member);
    out.double(score);
}

/// The ZMPOP/BZMPOP reply: `[key, [[member, score], ...]]`.
pub fn reply_mpop(out: &mut ReplyBuf, key: &[u8], elements: &[Element]) {
    out.array(2);
    out.bulk(key);
    out.array(elements.len());
    for (member, score) in elements {
        out.array(2);
        out.bulk(member);
        out.double(*score);
    }
}

fn zpopmin(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    zpop_minmax(ctx, argv, false)
}

fn zpopmax(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    zpop_minmax(ctx, argv, true)
}

/// ZPOPMIN/ZPOPMAX key [count]: a flat [member, score, ...] array, or
/// [member, score] pairs in RESP3 when a count is given.
fn zpop_minmax(ctx: &mut Ctx, argv: &[&[u8]], max: bool) -> Result<()> {
    if argv.len() > 3 {
        return Err(Error::syntax());
    }
    let count = match argv.get(2) {
        Some(arg) => Some(positive_long(arg)?),
        None => None,
    };
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    let wanted = match count {
        Some(0) => {
            // Type check only, then an empty array.
            get_zset(db, key, now)?;
            ctx.out.array(0);
            return Ok(());
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => 1,
    };
    let popped =
        pop_elements(&ctx.shared.pubsub, db, dbi, key, max, wanted, now)?.unwrap_or_default();
    let nested = ctx.out.is_resp3() && count.is_some();
    let items = popped.iter().map(|(m, s)| (&m[..], *s));
    if nested {
        reply_elements(ctx.out, popped.len(), items, true);
    } else {
        ctx.out.array(popped.len() * 2);
        for (member, score) in items {
            ctx.out.bulk(member);
            ctx.out.double(score);
        }
    }
    Ok(())
}

/// ZMPOP/BZMPOP's arguments from `numkeys` on: the keys, MAX (or MIN),
/// the count.
fn zmpop_args<'a>(argv: &[&'a [u8]], numkeys_index: usize) -> Result<(Vec<&'a [u8]>, bool, usize)> {
    let numkeys = long_at_least_one(argv[numkeys_index], "numkeys should be greater than 0")?;
    let where_index = usize::try_from(numkeys)
        .ok()
        .and_then(|n| n.checked_add(numkeys_index + 1))
        .filter(|&i| i < argv.len())
        .ok_or_else(Error::syntax)?;
    let max = if is_keyword(argv[where_index], "min") {
        false
    } else if is_keyword(argv[where_index], "max") {
        true
    } else {
        return Err(Error::syntax());
    };
    let mut count: Option<i64> = None;
    let mut j = where_index + 1;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if count.is_none() && is_keyword(argv[j], "count") && more > 0 {
            j += 1;
            count = Some(long_at_least_one(
                argv[j],
                "count should be greater than 0",
            )?);
        } else {
            return Err(Error::syntax());
        }
        j += 1;
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Ok((argv[numkeys_index + 1..where_index].to_vec(), max, count))
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
fn zmpop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (keys, max, count) = zmpop_args(argv, 1)?;
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let mut locked = ctx.locks.keys(&keys)?;
    for key in &keys {
        let db = locked.db(dbi, key)?;
        if let Some(popped) = pop_elements(&ctx.shared.pubsub, db, dbi, key, max, count, now)? {
            reply_mpop(ctx.out, key, &popped);
            return Ok(());
        }
    }
    ctx.out.null_array();
    Ok(())
}

// ---------------------------------------------------------------------------
// BZPOPMIN, BZPOPMAX, BZMPOP.
// ---------------------------------------------------------------------------

fn bzpopmin(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    bzpop(ctx, argv, false)
}

fn bzpopmax(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    bzpop(ctx, argv, true)
}

/// BZPOP(MIN|MAX) key [key ...] timeout: the timeout is checked first.
fn bzpop(ctx: &mut Ctx, argv: &[&[u8]], max: bool) -> Result<()> {
    let timeout = timeout_arg(argv[argv.len() - 1], ctx.now_ms)?;
    let keys = &argv[1..argv.len() - 1];
    if !pop_first_zset(ctx, keys, max, None)? {
        block_or_timeout(ctx, keys, timeout, WaitKind::ZSet, TimeoutReply::NullArray);
    }
    Ok(())
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: unlike
/// BLMPOP, Redis 7.0 checks the other arguments before the timeout.
fn bzmpop(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (keys, max, count) = zmpop_args(argv, 2)?;
    let timeout = timeout_arg(argv[1], ctx.now_ms)?;
    if !pop_first_zset(ctx, &keys, max, Some(count))? {
        block_or_timeout(ctx, &keys, timeout, WaitKind::ZSet, TimeoutReply::NullArray);
    }
    Ok(())
}

/// Pops from the first of `keys` holding a sorted set: the BZPOPMIN reply
/// `[key, member, score]` when `count` is `None`, BZMPOP's otherwise.
/// Returns whether it replied. As for the blocking list pops: WRONGTYPE
/// for a key of another type, except when a blocked client runs again
/// after a wakeup (then the keys that got data are tried first); and a
/// key is left to the clients that blocked on it earlier.
fn pop_first_zset(ctx: &mut Ctx, keys: &[&[u8]], max: bool, count: Option<usize>) -> Result<bool> {
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let client = ctx.session.handle.id;
    let woken_by = ctx.session.woken_by.take();
    let skip_other_types = woken_by.is_some();
    let order = serving_order(keys, &woken_by);
    let fair = !ctx.locks.in_transaction();
    let shared = ctx.shared;
    let mut locked = ctx.locks.keys(keys)?;
    for key in order {
        let db = locked.db(dbi, key)?;
        match get_zset(db, key, now) {
            Ok(Some(z)) if !z.is_empty() => {}
            Ok(_) => continue,
            Err(_) if skip_other_types => continue,
            Err(error) => return Err(error),
        }
        if fair && !shared.blocking.may_take(dbi, key, client, WaitKind::ZSet) {
            continue;
        }
        let popped = pop_elements(&shared.pubsub, db, dbi, key, max, count.unwrap_or(1), now)?
            .unwrap_or_default();
        drop(locked);
        match count {
            Some(_) => reply_mpop(ctx.out, key, &popped),
            None => match popped.first() {
                Some((member, score)) => reply_bzpop(ctx.out, key, member, *score),
                None => ctx.out.null_array(),
            },
        }
        return Ok(true);
    }
    Ok(false)
}

// ---------------------------------------------------------------------------
// ZRANDMEMBER.
// ---------------------------------------------------------------------------

/// Refuse negative-count replies larger than this (Redis would stream
/// them; we build replies in memory).
const MAX_RANDOM_REPLY_BYTES: u64 = 512 * 1024 * 1024;

/// ZRANDMEMBER key [count [WITHSCORES]]
fn zrandmember(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    if argv.len() < 3 {
        let locked = ctx.locks.read_key(key)?;
        match read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)? {
            None => ctx.out.null(),
            Some(z) => {
                let rank = rand::thread_rng().gen_range(0..z.len());
                match z.at_rank(rank) {
                    Some((member, _)) => ctx.out.bulk(member),
                    None => ctx.out.null(),
                }
            }
        }
        return Ok(());
    }
    let l = int_arg(argv[2])?;
    if l == i64::MIN {
        return Err(Error::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if argv.len() > 4 || (argv.len() == 4 && !is_keyword(argv[3], "withscores")) {
        return Err(Error::syntax());
    }
    let withscores = argv.len() == 4;
    if withscores && l < -(i64::MAX / 2) {
        return Err(Error::err("value is out of range"));
    }
    let locked = ctx.locks.read_key(key)?;
    let Some(z) = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)? else {
        ctx.out.array(0);
        return Ok(());
    };
    let size = z.len();
    let unique = l >= 0;
    let count = l.unsigned_abs();
    if count == 0 {
        ctx.out.array(0);
        return Ok(());
    }
    let mut rng = rand::thread_rng();
    let out = &mut *ctx.out;
    // Case 1: repeats allowed (or a single element).
    if !unique || count == 1 {
        let average =
            z.iter().take(16).map(|(m, _)| m.len() as u64).sum::<u64>() / size.min(16) as u64;
        let estimate = count.saturating_mul(average + if withscores { 64 } else { 16 });
        if estimate > MAX_RANDOM_REPLY_BYTES {
            return Err(Error::err("value is out of range"));
        }
        let count = count as usize;
        let picks = (0..count).filter_map(|_| z.at_rank(rng.gen_range(0..size)));
        reply_elements(out, count, picks, withscores);
        return Ok(());
    }
    // Case 2: the whole set, in the order Redis's iterator walks it
    // (highest to lowest).
    if count >= size as u64 {
        reply_elements(out, size, z.iter_rev(), withscores);
        return Ok(());
    }
    let count = count as usize;
    let ranks: Vec<usize> = if count * 3 > size {
        // Case 3: drop random elements until `count` remain.
        let mut all: Vec<usize> = (0..size).collect();
        let (chosen, _) = all.partial_shuffle(&mut rng, count);
        chosen.to_vec()
    } else {
        // Case 4: sample until `count` distinct ones.
        let mut seen = HashSet::with_capacity(count);
        let mut ranks = Vec::with_capacity(count);
        while ranks.len() < count {
            let rank = rng.gen_range(0..size);
            if seen.insert(rank) {
                ranks.push(rank);
            }
        }
        ranks
    };
    let picks = ranks.iter().filter_map(|&rank| z.at_rank(rank));
    reply_elements(out, count, picks, withscores);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// `zunionInterAggregate`.
fn aggregate(target: &mut f64, value: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += value;
            // +inf + -inf: Redis's convention is 0.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if value < *target {
                *target = value;
            }
        }
        Aggregate::Max => {
            if value > *target {
                *target = value;
            }
        }
    }
}

fn zunion(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_op_generic(ctx, argv, None, 1, SetOp::Union, false)
}

fn zinter(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_op_generic(ctx, argv, None, 1, SetOp::Inter, false)
}

fn zdiff(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_op_generic(ctx, argv, None, 1, SetOp::Diff, false)
}

fn zunionstore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_op_generic(ctx, argv, Some(argv[1]), 2, SetOp::Union, false)
}

fn zinterstore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_op_generic(ctx, argv, Some(argv[1]), 2, SetOp::Inter, false)
}

fn zdiffstore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_op_generic(ctx, argv, Some(argv[1]), 2, SetOp::Diff, false)
}

fn zintercard(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_op_generic(ctx, argv, None, 1, SetOp::Inter, true)
}

/// A ZUNION-family input: a sorted set, or a set whose members score 1.
enum Input<'a> {
    ZSet(&'a ZSetValue),
    Set(&'a SetValue),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::ZSet(z) => z.len(),
            Input::Set(s) => s.len(),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Input::ZSet(z) => z.score(member),
            Input::Set(s) => s.contains(member).then_some(1.0),
        }
    }

    fn elements(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match self {
            Input::ZSet(z) => Box::new(z.iter()),
            Input::Set(s) => Box::new(s.iter().map(|m| (m, 1.0))),
        }
    }

    fn members(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match self {
            Input::ZSet(z) => Box::new(z.iter().map(|(m, _)| m)),
            Input::Set(s) => Box::new(s.iter()),
        }
    }
}

/// The input at `key`: None if missing, WRONGTYPE unless a set or sorted set.
fn get_input<'a>(db: Option<&'a Db>, key: &[u8], now: u64) -> Result<Option<Input<'a>>> {
    match db.and_then(|db| db.get(key, now)) {
        None => Ok(None),
        Some(entry) => match entry.value() {
            ValueRef::ZSet(z) => Ok(Some(Input::ZSet(z))),
            ValueRef::Set(s) => Ok(Some(Input::Set(s))),
            _ => Err(Error::wrong_type()),
        },
    }
}

/// One input: its key, weight and size (0 when missing).
struct Source<'a> {
    key: &'a [u8],
    weight: f64,
    len: usize,
}

/// `zunionInterDiffGenericCommand`.
fn set_op_generic(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    dst: Option<&[u8]>,
    numkeys_index: usize,
    op: SetOp,
    cardinality_only: bool,
) -> Result<()> {
    let setnum = int_arg(argv[numkeys_index])?;
    if setnum < 1 {
        return Err(Error::err(format!(
            "at least 1 input key is needed for '{}' command",
            String::from_utf8_lossy(argv[0]).to_ascii_lowercase()
        )));
    }
    let first_key = numkeys_index + 1;
    if setnum > (argv.len() - first_key) as i64 {
        return Err(Error::syntax());
    }
    let setnum = setnum as usize;
    let source_keys = &argv[first_key..first_key + setnum];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let mut lock_keys: Vec<&[u8]> = Vec::with_capacity(setnum + 1);
    lock_keys.extend(dst);
    lock_keys.extend_from_slice(source_keys);
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.keys(&lock_keys)?;

    // Inputs are looked up (and type-checked) before the options are read.
    let mut sources: Vec<Source> = Vec::with_capacity(setnum);
    for key in source_keys {
        let db = locked.db(dbi, key)?;
        let input = reads::counted(shared, dbi, key, get_input(Some(db), key, now))?;
        let len = input.map_or(0, |i| i.len());
        sources.push(Source {
            key,
            weight: 1.0,
            len,
        });
    }

    let mut how: Option<Aggregate> = None;
    let mut withscores = false;
    let mut limit: i64 = 0;
    let mut j = first_key + setnum;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let arg = argv[j];
        if op != SetOp::Diff
            && !cardinality_only
            && remaining > setnum
            && is_keyword(arg, "weights")
        {
            j += 1;
            for source in sources.iter_mut() {
                source.weight = parse_score(argv[j])
                    .ok_or_else(|| Error::err("weight value is not a float"))?;
                j += 1;
            }
        } else if op != SetOp::Diff
            && !cardinality_only
            && remaining >= 2
            && is_keyword(arg, "aggregate")
        {
            let name = argv[j + 1];
            how = Some(if is_keyword(name, "sum") {
                Aggregate::Sum
            } else if is_keyword(name, "min") {
                Aggregate::Min
            } else if is_keyword(name, "max") {
                Aggregate::Max
            } else {
                return Err(Error::syntax());
            });
            j += 2;
        } else if dst.is_none() && !cardinality_only && is_keyword(arg, "withscores") {
            withscores = true;
            j += 1;
        } else if cardinality_only && remaining >= 2 && is_keyword(arg, "limit") {
            limit = match strict_i64(argv[j + 1]) {
                Some(n) if n >= 0 => n,
                _ => return Err(Error::err("LIMIT can't be negative")),
            };
            j += 2;
        } else {
            return Err(Error::syntax());
        }
    }
    let how = how.unwrap_or(Aggregate::Sum);
    let limit = if limit <= 0 {
        usize::MAX
    } else {
        usize::try_from(limit).unwrap_or(usize::MAX)
    };
    if op != SetOp::Diff {
        // Smallest first (a stable sort, as glibc's merge-sort qsort).
        sources.sort_by_key(|s| s.len);
    }

    // The inputs, read together; the result, unsorted, borrows their
    // members (copied only into a stored result).
    let mut inputs = Vec::with_capacity(sources.len());
    for source in &sources {
        inputs.push(get_input(locked.db_ref(dbi, source.key)?, source.key, now)?);
    }
    let mut result: Vec<(&[u8], f64)> = Vec::new();
    let mut cardinality = 0usize;
    match op {
        SetOp::Inter => {
            if let Some(first) = &inputs[0] {
                let weight = sources[0].weight;
                let mut candidates: Vec<(&[u8], f64)> = first
                    .elements()
                    .map(|(m, s)| {
                        let score = weight * s;
                        (m, if score.is_nan() { 0.0 } else { score })
                    })
                    .collect();
                for (source, input) in sources.iter().zip(&inputs).skip(1) {
                    let Some(z) = input else {
                        candidates.clear();
                        break;
                    };
                    if candidates.is_empty() {
                        break;
                    }
                    candidates.retain_mut(|(member, score)| match z.score(member) {
                        Some(value) => {
                            aggregate(score, value * source.weight, how);
                            true
                        }
                        None => false,
                    });
                }
                cardinality = candidates.len().min(limit);
                result = candidates;
            }
        }
        SetOp::Union => {
            let mut accumulator: HashMap<&[u8], f64> = HashMap::new();
            for (source, input) in sources.iter().zip(&inputs) {
                let Some(z) = input else {
                    continue;
                };
                for (member, s) in z.elements() {
                    let mut score = source.weight * s;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    accumulator
                        .entry(member)
                        .and_modify(|target| aggregate(target, score, how))
                        .or_insert(score);
                }
            }
            result = accumulator.into_iter().collect();
        }
        SetOp::Diff => {
            if let Some(first) = &inputs[0] {
                let mut candidates: HashMap<&[u8], f64> = first.elements().collect();
                for z in inputs[1..].iter().flatten() {
                    if candidates.is_empty() {
                        break;
                    }
                    if z.len() < candidates.len() {
                        for member in z.members() {
                            candidates.remove(member);
                        }
                    } else {
                        candidates.retain(|member, _| z.score(member).is_none());
                    }
                }
                result = candidates.into_iter().collect();
            }
        }
    }

    if cardinality_only {
        ctx.out.int(cardinality as i64);
        return Ok(());
    }
    if let Some(dst) = dst {
        let mut out = ZSetValue::new();
        for (member, score) in result {
            out.push_new(ThinBytes::from(member), score);
        }
        out.finish_store();
        drop(inputs);
        let db = locked.db(dbi, dst)?;
        let len = out.len();
        let event = match op {
            SetOp::Union => "zunionstore",
            SetOp::Inter => "zinterstore",
            SetOp::Diff => "zdiffstore",
        };
        store_zset(pubsub, db, dbi, dst, out, now, event);
        if len == 0 {
            ctx.out.int(0);
            return Ok(());
        }
        ctx.shared
            .blocking
            .key_ready(dbi, dst, Some(WaitKind::ZSet));
        ctx.out.int(len as i64);
        return Ok(());
    }
    result.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(b.0))
    });
    let len = result.len();
    reply_elements(ctx.out, len, result.iter().copied(), withscores);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZSCAN.
// ---------------------------------------------------------------------------

/// A score as ZSCAN shows it: a listpack stores integral scores (within
/// ±2^62) as integers, others as `%.17g`; a skiplist prints `%.17g`.
fn scan_score_text(score: f64, listpack: bool) -> String {
    const LIMIT: f64 = 4_611_686_018_427_387_904.0; // 2^62, (double)(LLONG_MAX/2)
    if listpack && score.is_finite() && (-LIMIT..=LIMIT).contains(&score) && score.trunc() == score
    {
        return (score as i64).to_string();
    }
    crate::protocol::format_double(score)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
fn zscan(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let cursor = parse_cursor(argv[2]).ok_or_else(|| Error::err("invalid cursor"))?;
    let key = argv[1];
    let now = ctx.now_ms;
    let dbi = ctx.session.db;
    let locked = ctx.locks.read_key(key)?;
    let Some(z) = read_zset(ctx.shared, locked.db(dbi, key)?, dbi, key, now)? else {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
        return Ok(());
    };
    let ScanOptions { count, pattern, .. } = parse_scan_options(&argv[3..], ScanExtra::None)?;
    let listpack = z.is_listpack();
    let mut found: Vec<(&[u8], f64)> = Vec::new();
    let next = z.scan(cursor, count, |m, s| found.push((m, s)));
    found.retain(|(m, _)| pattern.is_none_or(|p| glob_match(p, m, false)));
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(found.len() * 2);
    for (member, score) in found {
        ctx.out.bulk(member);
        ctx.out.bulk(scan_score_text(score, listpack).as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_like_get_double_from_object() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"0x1p-2"), Some(0.25));
        assert_eq!(parse_score(b"1e-310"), Some(1e-310));
        assert_eq!(parse_score(b".5"), Some(0.5));
        assert_eq!(parse_score(b"5."), Some(5.0));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"1e400",
            b"1e-400",
            b"abc",
            b"1e",
            b"0x",
            b"1\x002",
            b"--1",
        ] {
            assert_eq!(parse_score(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn range_bounds_like_zsl_parse_range() {
        assert_eq!(parse_score_bound(b"(1.5"), Some((1.5, true)));
        assert_eq!(parse_score_bound(b""), Some((0.0, false)));
        assert_eq!(parse_score_bound(b"("), Some((0.0, true)));
        assert_eq!(parse_score_bound(b" 2"), Some((2.0, false)));
        assert_eq!(parse_score_bound(b"1e400"), Some((f64::INFINITY, false)));
        assert_eq!(parse_score_bound(b"3\0junk"), Some((3.0, false)));
        assert_eq!(parse_score_bound(b" "), None);
        assert_eq!(parse_score_bound(b"nan"), None);
        assert_eq!(parse_score_bound(b"1x"), None);
    }

    #[test]
    fn lex_bounds() {
        assert!(matches!(LexBound::parse(b"+"), Some(LexBound::PosInf)));
        assert!(matches!(LexBound::parse(b"-"), Some(LexBound::NegInf)));
        assert!(LexBound::parse(b"+a").is_none());
        assert!(LexBound::parse(b"a").is_none());
        assert!(LexBound::parse(b"").is_none());
        assert!(matches!(LexBound::parse(b"(a"), Some(LexBound::Exclusive(v)) if v == b"a"));
        assert!(matches!(LexBound::parse(b"["), Some(LexBound::Inclusive(v)) if v.is_empty()));
    }

    #[test]
    fn span_selection_matches_redis_walks() {
        // 10 elements, range covers ranks 2..=7.
        let s = select_by_span(10, Some((2, 7)), 1, 2, false);
        assert_eq!((s.start, s.len), (3, 2));
        let s = select_by_span(10, Some((2, 7)), 1, -1, true);
        assert_eq!((s.start, s.len), (6, 5));
        assert_eq!(select_by_span(10, Some((2, 7)), -1, 5, false).len, 0);
        assert_eq!(select_by_span(10, Some((2, 7)), 6, 5, false).len, 0);
        assert_eq!(select_by_span(10, Some((2, 7)), 0, 0, false).len, 0);
        assert_eq!(select_by_span(10, Some((2, 7)), i64::MAX, 5, false).len, 0);
        let s = select_by_rank(10, -3, -1, true);
        assert_eq!((s.start, s.len), (2, 3));
        assert_eq!(select_by_rank(10, i64::MIN, i64::MAX, false).len, 10);
    }

    #[test]
    fn scan_scores() {
        assert_eq!(scan_score_text(1e17, true), "100000000000000000");
        assert_eq!(scan_score_text(1e17, false), "1e+17");
        assert_eq!(scan_score_text(0.1, true), "0.10000000000000001");
        assert_eq!(scan_score_text(f64::INFINITY, true), "inf");
        assert_eq!(scan_score_text(-0.0, false), "-0");
    }
}
