//! SORT and SORT_RO, after Redis 7.0's `sort.c`.
//!
//! BY and GET patterns may name any key, so both commands are
//! `WHOLE_KEYSPACE`: a transaction or a script holding one locks every
//! shard, and a SORT with a pattern takes every shard's lock for its run
//! (Redis runs it with the whole keyspace to itself too).

use std::cmp::Ordering;

use super::flags::*;
use super::{reads, CommandSpec, Ctx, KeySpec};
use crate::error::{Error, Result};
use crate::pubsub::events;
use crate::shared::Shared;
use crate::store::types::ListValue;
use crate::store::{LockSet, Value, ValueRef};

const SORT_CATEGORIES: &[&str] = &["set", "sortedset", "list", "dangerous"];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "sort",
        -2,
        WRITE | DENYOOM | WHOLE_KEYSPACE,
        KeySpec::SortStore,
        sort,
    )
    .acl(SORT_CATEGORIES)
    .doc(
        "generic",
        "1.0.0",
        "Sort the elements in a list, set or sorted set",
        "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).",
    ),
    CommandSpec::new("sort_ro", -2, READONLY | WHOLE_KEYSPACE, KeySpec::SortReadOnly, sort_ro)
        .acl(SORT_CATEGORIES)
        .doc(
            "generic",
            "7.0.0",
            "Sort the elements in a list, set or sorted set. Read-only variant of SORT.",
            "O(N+M*log(M)) where N is the number of elements in the list/set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).",
        ),
];

/// The argument as a C string sees it: up to the first NUL byte.
fn c_str(arg: &[u8]) -> &[u8] {
    match arg.iter().position(|&b| b == 0) {
        Some(end) => &arg[..end],
        None => arg,
    }
}

/// Redis's `strcasecmp` of an argument with an option name.
fn keyword(arg: &[u8], word: &str) -> bool {
    c_str(arg).eq_ignore_ascii_case(word.as_bytes())
}

/// Where SORT's destination is (Redis's `sortGetKeys`): after the last
/// STORE, skipping the arguments of LIMIT, GET and BY.
pub(super) fn store_key_position(argv: &[&[u8]]) -> Option<usize> {
    let mut found = None;
    let mut i = 2;
    while i < argv.len() {
        let arg = argv[i];
        if keyword(arg, "limit") {
            i += 2;
        } else if keyword(arg, "get") || keyword(arg, "by") {
            i += 1;
        } else if keyword(arg, "store") && i + 1 < argv.len() {
            found = Some(i + 1);
        }
        i += 1;
    }
    found
}

fn sort(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    sort_generic(ctx, argv, false)
}

fn sort_ro(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    sort_generic(ctx, argv, true)
}

/// One element to sort and what it sorts by.
struct Item {
    element: Vec<u8>,
    score: f64,
    /// ALPHA with BY: the weight's bytes (`None`: missing, sorts first).
    weight: Option<Vec<u8>>,
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the
/// first `*` is replaced by the element and the string at that key (or,
/// with `->field` after the `*`, that hash field) is returned. A pattern
/// without `*` finds nothing.
fn lookup_by_pattern(
    shared: &Shared,
    locked: &mut LockSet,
    dbi: usize,
    pattern: &[u8],
    element: &[u8],
    now: u64,
) -> Result<Option<Vec<u8>>> {
    let pattern = c_str(pattern);
    if pattern == b"#" {
        return Ok(Some(element.to_vec()));
    }
    let Some(star) = pattern.iter().position(|&b| b == b'*') else {
        return Ok(None);
    };
    let after = &pattern[star + 1..];
    let (postfix, field) = match after.windows(2).position(|w| w == b"->") {
        Some(arrow) if arrow + 2 < after.len() => (&after[..arrow], Some(&after[arrow + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(star + element.len() + postfix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(c_str(element));
    key.extend_from_slice(postfix);
    let db = locked.db(dbi, &key)?;
    let Some(entry) = db.get(&key, now) else {
        reads::miss(shared, dbi, &key);
        return Ok(None);
    };
    reads::hit(shared);
    Ok(match (entry.value(), field) {
        (ValueRef::Hash(hash), Some(field)) => hash.get(field, now).map(<[u8]>::to_vec),
        (ValueRef::Str(s), None) => Some(s.to_vec()),
        _ => None,
    })
}

/// A weight as SORT reads it with `strtod`: the whole C string must be a
/// number, neither out of range nor NaN (the empty string is 0). Redis
/// reads `errno` without clearing it first, so after an out-of-range value
/// it may refuse good ones for a while; Larder does not copy that.
fn parse_weight(weight: &[u8]) -> Option<f64> {
    let text = c_str(weight);
    let parsed = super::zset::strtod(text);
    // glibc's strtod also reports ERANGE for a subnormal result.
    let subnormal = parsed.value != 0.0 && parsed.value.abs() < f64::MIN_POSITIVE;
    (parsed.end == text.len() && !parsed.range_error && !subnormal && !parsed.value.is_nan())
        .then_some(parsed.value)
}

/// C's `strcmp` (strcoll in the C locale): the bytes up to the first NUL.
fn c_cmp(a: &[u8], b: &[u8]) -> Ordering {
    c_str(a).cmp(c_str(b))
}

fn sort_generic(ctx: &mut Ctx, argv: &[&[u8]], readonly: bool) -> Result<()> {
    let key = argv[1];
    let mut desc = false;
    let mut alpha = false;
    let mut limit_start: i64 = 0;
    let mut limit_count: i64 = -1;
    let mut dontsort = false;
    let mut sort_by: Option<&[u8]> = None;
    let mut store: Option<&[u8]> = None;
    let mut gets: Vec<&[u8]> = Vec::new();
    // Asked only when a pattern comes up.
    let user = &ctx.session.user;
    let full_key_access = || match super::lookup(argv[0]) {
        Some(spec) => super::acl::may_read_any_key(user, spec, argv),
        None => true,
    };
    let mut j = 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let arg = argv[j];
        if keyword(arg, "asc") {
            desc = false;
        } else if keyword(arg, "desc") {
            desc = true;
        } else if keyword(arg, "alpha") {
            alpha = true;
        } else if keyword(arg, "limit") && left >= 2 {
            limit_start = super::parse::int_arg(argv[j + 1])?;
            limit_count = super::parse::int_arg(argv[j + 2])?;
            j += 2;
        } else if !readonly && keyword(arg, "store") && left >= 1 {
            store = Some(argv[j + 1]);
            j += 1;
        } else if keyword(arg, "by") && left >= 1 {
            sort_by = Some(argv[j + 1]);
            // A pattern without `*` is constant: nothing to sort by.
            if !c_str(argv[j + 1]).contains(&b'*') {
                dontsort = true;
            } else if !full_key_access() {
                return Err(Error::err(
                    "BY option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            j += 1;
        } else if keyword(arg, "get") && left >= 1 {
            if !full_key_access() {
                return Err(Error::err(
                    "GET option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            gets.push(argv[j + 1]);
            j += 1;
        } else {
            return Err(Error::syntax());
        }
        j += 1;
    }

    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let in_script = ctx.session.in_script;
    let uses_patterns = (!dontsort && sort_by.is_some()) || gets.iter().any(|g| c_str(g) != b"#");
    let mut locked = if uses_patterns {
        ctx.locks.all()?
    } else {
        let mut keys: Vec<&[u8]> = vec![key];
        keys.extend(store);
        ctx.locks.keys(&keys)?
    };

    // The elements, in the order the source keeps them.
    let mut items: Vec<Item>;
    let mut start: i64;
    let mut end: i64;
    {
        let db = locked.db(dbi, key)?;
        let entry = db.get(key, now);
        reads::looked_up(shared, dbi, key, entry.is_some());
        let value = match entry {
            None => None,
            Some(entry) => match entry.value() {
                v @ (ValueRef::List(_) | ValueRef::Set(_) | ValueRef::ZSet(_)) => Some(v),
                _ => return Err(Error::wrong_type()),
            },
        };
        let is_set = matches!(value, Some(ValueRef::Set(_)));
        // A set has no order of its own: when the result must be
        // reproducible (stored, or in a script), it is sorted anyway.
        if dontsort && is_set && (store.is_some() || in_script) {
            dontsort = false;
            alpha = true;
            sort_by = None;
        }
        let len: i64 = match value {
            None => 0,
            Some(ValueRef::List(l)) => l.len() as i64,
            Some(ValueRef::Set(s)) => s.len() as i64,
            Some(ValueRef::ZSet(z)) => z.len() as i64,
            Some(_) => 0,
        };
        // Redis's LIMIT clamping.
        start = limit_start.max(0).min(len);
        let count = limit_count.max(-1).min(len);
        end = if count < 0 {
            len - 1
        } else {
            start + count - 1
        };
        if start >= len {
            start = len - 1;
            end = len - 2;
        }
        if end >= len {
            end = len - 1;
        }
        let mut wanted = len;
        if !is_set && dontsort && (start != 0 || end != len - 1) {
            wanted = end - start + 1;
        }
        let item = |element: &[u8]| Item {
            element: element.to_vec(),
            score: 0.0,
            weight: None,
        };
        items = Vec::with_capacity(wanted.max(0) as usize);
        match value {
            None => {}
            // The list's own order (reversed by DESC), LIMIT applied here.
            Some(ValueRef::List(list)) if dontsort && end >= start => {
                let take = wanted as usize;
                if desc {
                    let skip = start as usize;
                    items.extend(list.iter().rev().skip(skip).take(take).map(item));
                } else {
                    items.extend(list.iter().skip(start as usize).take(take).map(item));
                }
                end -= start;
                start = 0;
            }
            Some(ValueRef::List(_)) if dontsort => {}
            Some(ValueRef::List(list)) => items.extend(list.iter().map(item)),
            Some(ValueRef::Set(set)) => items.extend(set.iter().map(item)),
            Some(ValueRef::ZSet(zset)) if dontsort => {
                // The sorted set's order (reversed by DESC), LIMIT applied here.
                if wanted > 0 {
                    let take = wanted as usize;
                    let iter = if desc {
                        zset.iter_from((len - start - 1) as usize, true)
                    } else {
                        zset.iter_from(start as usize, false)
                    };
                    items.extend(iter.take(take).map(|(member, _)| item(member)));
                }
                end -= start;
                start = 0;
            }
            Some(ValueRef::ZSet(zset)) => items.extend(zset.iter().map(|(member, _)| item(member))),
            Some(_) => {}
        }
    }

    let mut conversion_error = false;
    if !dontsort {
        for item in items.iter_mut() {
            let by_value = match sort_by {
                Some(pattern) => {
                    match lookup_by_pattern(shared, &mut locked, dbi, pattern, &item.element, now)?
                    {
                        Some(found) => found,
                        None => continue,
                    }
                }
                None => {
                    if !alpha {
                        match parse_weight(&item.element) {
                            Some(score) => item.score = score,
                            None => conversion_error = true,
                        }
                    }
                    continue;
                }
            };
            if alpha {
                item.weight = Some(by_value);
            } else {
                match parse_weight(&by_value) {
                    Some(score) => item.score = score,
                    None => conversion_error = true,
                }
            }
        }
        if !conversion_error {
            let by_pattern = sort_by.is_some();
            let storing = store.is_some();
            items.sort_by(|a, b| {
                let order = if !alpha {
                    a.score
                        .partial_cmp(&b.score)
                        .unwrap_or(Ordering::Equal)
                        .then_with(|| a.element.cmp(&b.element))
                } else if by_pattern {
                    match (&a.weight, &b.weight) {
                        (None, None) => Ordering::Equal,
                        (None, Some(_)) => Ordering::Less,
                        (Some(_), None) => Ordering::Greater,
                        (Some(x), Some(y)) if storing => x.cmp(y),
                        (Some(x), Some(y)) => c_cmp(x, y),
                    }
                } else if storing {
                    a.element.cmp(&b.element)
                } else {
                    c_cmp(&a.element, &b.element)
                };
                if desc {
                    order.reverse()
                } else {
                    order
                }
            });
        }
    }
    if conversion_error {
        return Err(Error::err(
            "One or more scores can't be converted into double",
        ));
    }

    let picked = if end >= start {
        &items[start as usize..=end as usize]
    } else {
        &items[..0]
    };
    let output_len = if gets.is_empty() {
        picked.len()
    } else {
        gets.len() * picked.len()
    };
    match store {
        None => {
            if gets.is_empty() {
                ctx.out.array(output_len);
                for item in picked {
                    ctx.out.bulk(&item.element);
                }
                return Ok(());
            }
            let mut found: Vec<Option<Vec<u8>>> = Vec::with_capacity(output_len);
            for item in picked {
                for pattern in &gets {
                    found.push(lookup_by_pattern(
                        shared,
                        &mut locked,
                        dbi,
                        pattern,
                        &item.element,
                        now,
                    )?);
                }
            }
            drop(locked);
            ctx.out.array(output_len);
            for value in &found {
                match value {
                    Some(value) => ctx.out.bulk(value),
                    None => ctx.out.null(),
                }
            }
        }
        Some(destination) => {
            let mut list = ListValue::new();
            for item in picked {
                if gets.is_empty() {
                    list.push(false, &item.element);
                }
                for pattern in &gets {
                    let value =
                        lookup_by_pattern(shared, &mut locked, dbi, pattern, &item.element, now)?;
                    list.push(false, value.as_deref().unwrap_or(b""));
                }
            }
            let db = locked.db(dbi, destination)?;
            if output_len > 0 {
                db.insert(destination, Value::List(Box::new(list)), None, now);
                shared
                    .pubsub
                    .notify(events::LIST, "sortstore", destination, dbi);
            } else if db.remove(destination, now).is_some() {
                shared
                    .pubsub
                    .notify(events::GENERIC, "del", destination, dbi);
            }
            drop(locked);
            ctx.out.int(output_len as i64);
        }
    }
    Ok(())
}
