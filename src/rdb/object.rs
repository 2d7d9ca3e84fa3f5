//! Values to RDB bytes and back, type by type (`rdbSaveObject`,
//! `rdbLoadObject`).

use super::encodings::{
    intset_members, listpack_elements, write_intset, ziplist_elements, zipmap_pairs, Element,
    ListpackWriter,
};
use super::{corrupt, types, write_binary_double, write_length, write_string, RdbError, Reader};
use crate::store::types::{HashValue, ListValue, SetValue, ZSetValue};
use crate::store::{Value, ValueRef};

/// A quicklist node holds at most this many bytes (`list-max-listpack-size`
/// -2, Redis's default).
const QUICKLIST_NODE_BYTES: usize = 8192;
/// `SIZE_ESTIMATE_OVERHEAD` of quicklist.c: the bytes an entry adds beyond
/// its own, estimated high.
const QUICKLIST_ENTRY_OVERHEAD: usize = 8;
/// The latest hash field expiry Redis 7.4 accepts (`EB_EXPIRE_TIME_MAX`,
/// 2^48 - 1 ms); a later one in a payload is corrupt.
const FIELD_EXPIRY_MAX: u64 = (1 << 48) - 1;
/// Quicklist node containers (quicklist.h).
const QUICKLIST_NODE_PLAIN: u64 = 1;
const QUICKLIST_NODE_PACKED: u64 = 2;

/// Whether `value` needs RDB version 12 (Redis 7.4) to be written: a hash
/// with field TTLs. Everything else is written as Redis 7.0 writes it.
pub fn needs_version_12(value: ValueRef<'_>) -> bool {
    matches!(value, ValueRef::Hash(h) if h.has_field_ttls())
}

/// Appends `value` as its type byte and body, as Redis 7.0 would save the
/// same data (Redis 7.4's hash types for a hash with field TTLs).
pub fn write_object(out: &mut Vec<u8>, value: ValueRef<'_>, compress: bool) {
    match value {
        ValueRef::Str(s) => {
            out.push(types::STRING);
            write_string(out, s, compress);
        }
        ValueRef::List(list) => {
            out.push(types::LIST_QUICKLIST_2);
            write_list(out, list, compress);
        }
        ValueRef::Set(set) => write_set(out, set, compress),
        ValueRef::ZSet(zset) => write_zset(out, zset, compress),
        ValueRef::Hash(hash) => write_hash(out, hash, compress),
        ValueRef::Stream(stream) => {
            out.push(types::STREAM_LISTPACKS_2);
            super::stream::write_stream(out, stream, compress);
        }
    }
}

fn write_list(out: &mut Vec<u8>, list: &ListValue, compress: bool) {
    let mut nodes: Vec<Vec<u8>> = Vec::new();
    let mut node = ListpackWriter::new();
    for item in list.iter() {
        if !node.is_empty()
            && node.bytes() + item.len() + QUICKLIST_ENTRY_OVERHEAD > QUICKLIST_NODE_BYTES
        {
            nodes.push(std::mem::take(&mut node).finish());
        }
        node.push(item);
    }
    if !node.is_empty() {
        nodes.push(node.finish());
    }
    write_length(out, nodes.len() as u64);
    for blob in nodes {
        write_length(out, QUICKLIST_NODE_PACKED);
        write_string(out, &blob, compress);
    }
}

fn write_set(out: &mut Vec<u8>, set: &SetValue, compress: bool) {
    if set.encoding() == "intset" {
        let mut members: Vec<i64> = set.iter().filter_map(crate::numbers::strict_i64).collect();
        if members.len() == set.len() {
            out.push(types::SET_INTSET);
            write_string(out, &write_intset(&mut members), compress);
            return;
        }
    }
    out.push(types::SET);
    write_length(out, set.len() as u64);
    for member in set.iter() {
        write_string(out, member, compress);
    }
}

/// Appends a score to a sorted set listpack as `zzlInsertAt` does: through
/// `d2string`, so integral scores within ±2^62 become integers.
fn push_score(lp: &mut ListpackWriter, score: f64) {
    const LIMIT: f64 = 4_611_686_018_427_387_904.0; // 2^62
    if score == 0.0 && score.is_sign_negative() {
        lp.push_str(b"-0");
    } else if score.is_finite() && (-LIMIT..=LIMIT).contains(&score) && score.trunc() == score {
        lp.push_int(score as i64);
    } else {
        lp.push(crate::protocol::format_double(score).as_bytes());
    }
}

fn write_zset(out: &mut Vec<u8>, zset: &ZSetValue, compress: bool) {
    if zset.is_listpack() {
        out.push(types::ZSET_LISTPACK);
        let mut lp = ListpackWriter::new();
        for (member, score) in zset.iter() {
            lp.push(member);
            push_score(&mut lp, score);
        }
        write_string(out, &lp.finish(), compress);
    } else {
        out.push(types::ZSET_2);
        write_length(out, zset.len() as u64);
        // From the tail, as rdbSaveObject: loading inserts at the head.
        for (member, score) in zset.iter_rev() {
            write_string(out, member, compress);
            write_binary_double(out, score);
        }
    }
}

fn write_hash(out: &mut Vec<u8>, hash: &HashValue, compress: bool) {
    let fields = (0..hash.len()).filter_map(|i| hash.get_index(i));
    // The stored expiry of a field (expired or not).
    let ttl = |field: &[u8]| hash.field_expiry(field, 0).flatten();
    match (hash.has_field_ttls(), hash.is_small()) {
        (false, true) => {
            out.push(types::HASH_LISTPACK);
            let mut lp = ListpackWriter::new();
            for (field, value) in fields {
                lp.push(field);
                lp.push(value);
            }
            write_string(out, &lp.finish(), compress);
        }
        (false, false) => {
            out.push(types::HASH);
            write_length(out, hash.len() as u64);
            for (field, value) in fields {
                write_string(out, field, compress);
                write_string(out, value, compress);
            }
        }
        (true, true) => {
            out.push(types::HASH_LISTPACK_EX);
            let min = hash.next_field_expiry().unwrap_or(0);
            out.extend_from_slice(&min.to_le_bytes());
            let mut lp = ListpackWriter::new();
            for (field, value) in fields {
                lp.push(field);
                lp.push(value);
                lp.push_int(ttl(field).map_or(0, |at| at as i64));
            }
            write_string(out, &lp.finish(), compress);
        }
        (true, false) => {
            out.push(types::HASH_METADATA);
            let min = hash.next_field_expiry().unwrap_or(0);
            out.extend_from_slice(&min.to_le_bytes());
            write_length(out, hash.len() as u64);
            for (field, value) in fields {
                // 0: no TTL; otherwise relative to the minimum, plus one.
                write_length(out, ttl(field).map_or(0, |at| at - min + 1));
                write_string(out, field, compress);
                write_string(out, value, compress);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------------

/// Reads the body of a value of type `type_byte` (already read). `now_ms`
/// drops hash fields whose TTL has passed, as Redis 7.4 does on load.
/// `Ok(None)`: the value is empty (an empty collection, or a hash whose
/// every field expired), which Redis never stores.
pub fn read_object(
    r: &mut Reader<'_>,
    type_byte: u8,
    now_ms: u64,
) -> Result<Option<Value>, RdbError> {
    let value = match type_byte {
        types::STRING => Value::Str(r.read_string()?),
        types::LIST => {
            let n = r.read_count(1)?;
            let mut list = ListValue::new();
            for _ in 0..n {
                list.push(false, &r.read_string()?);
            }
            Value::List(Box::new(list))
        }
        types::LIST_ZIPLIST => {
            let blob = r.read_string()?;
            let mut list = ListValue::new();
            for e in ziplist_elements(&blob)? {
                list.push(false, &e.to_vec());
            }
            Value::List(Box::new(list))
        }
        types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
            let v2 = type_byte == types::LIST_QUICKLIST_2;
            let nodes = r.read_count(1)?;
            let mut list = ListValue::new();
            for _ in 0..nodes {
                let container = if v2 {
                    r.read_length()?
                } else {
                    QUICKLIST_NODE_PACKED
                };
                let blob = r.read_string()?;
                match container {
                    QUICKLIST_NODE_PLAIN => list.push(false, &blob),
                    QUICKLIST_NODE_PACKED => {
                        let elements = if v2 {
                            listpack_elements(&blob)?
                        } else {
                            ziplist_elements(&blob)?
                        };
                        // Empty nodes are skipped, as Redis does.
                        for e in elements {
                            list.push(false, &e.to_vec());
                        }
                    }
                    _ => return Err(corrupt("Quicklist integrity check failed")),
                }
            }
            Value::List(Box::new(list))
        }
        types::SET => {
            let n = r.read_count(1)?;
            let mut set = SetValue::new();
            for _ in 0..n {
                insert_member(&mut set, &r.read_string()?)?;
            }
            Value::Set(Box::new(set))
        }
        types::SET_INTSET => {
            let blob = r.read_string()?;
            let mut set = SetValue::new();
            for v in intset_members(&blob)? {
                insert_member(&mut set, v.to_string().as_bytes())?;
            }
            Value::Set(Box::new(set))
        }
        types::SET_LISTPACK => {
            let blob = r.read_string()?;
            let mut set = SetValue::new();
            for e in listpack_elements(&blob)? {
                insert_member(&mut set, &e.to_vec())?;
            }
            Value::Set(Box::new(set))
        }
        types::ZSET | types::ZSET_2 => {
            let n = r.read_count(2)?;
            let mut zset = ZSetValue::new();
            for _ in 0..n {
                let member = r.read_string()?;
                let score = if type_byte == types::ZSET_2 {
                    r.read_binary_double()?
                } else {
                    r.read_text_double()?
                };
                insert_scored(&mut zset, &member, score)?;
            }
            Value::ZSet(Box::new(zset))
        }
        types::ZSET_ZIPLIST | types::ZSET_LISTPACK => {
            let blob = r.read_string()?;
            let elements = if type_byte == types::ZSET_LISTPACK {
                listpack_elements(&blob)?
            } else {
                ziplist_elements(&blob)?
            };
            if elements.len() % 2 != 0 {
                return Err(corrupt("sorted set listpack with an odd element count"));
            }
            let mut zset = ZSetValue::new();
            for pair in elements.chunks_exact(2) {
                let score = element_score(pair[1])?;
                insert_scored(&mut zset, &pair[0].to_vec(), score)?;
            }
            Value::ZSet(Box::new(zset))
        }
        types::HASH => {
            let n = r.read_count(2)?;
            let mut hash = HashValue::new();
            for _ in 0..n {
                let field = r.read_string()?;
                let value = r.read_string()?;
                insert_field(&mut hash, &field, &value)?;
            }
            Value::Hash(Box::new(hash))
        }
        types::HASH_ZIPMAP => {
            let blob = r.read_string()?;
            let mut hash = HashValue::new();
            for (field, value) in zipmap_pairs(&blob)? {
                insert_field(&mut hash, field, value)?;
            }
            Value::Hash(Box::new(hash))
        }
        types::HASH_ZIPLIST | types::HASH_LISTPACK => {
            let blob = r.read_string()?;
            let elements = if type_byte == types::HASH_LISTPACK {
                listpack_elements(&blob)?
            } else {
                ziplist_elements(&blob)?
            };
            if elements.len() % 2 != 0 {
                return Err(corrupt("hash listpack with an odd element count"));
            }
            let mut hash = HashValue::new();
            for pair in elements.chunks_exact(2) {
                insert_field(&mut hash, &pair[0].to_vec(), &pair[1].to_vec())?;
            }
            Value::Hash(Box::new(hash))
        }
        types::HASH_LISTPACK_EX => {
            let _min_expire = r.read_u64_le()?;
            let blob = r.read_string()?;
            let elements = listpack_elements(&blob)?;
            if elements.len() % 3 != 0 {
                return Err(corrupt(
                    "hash listpack-ex with an element count not a multiple of 3",
                ));
            }
            let mut hash = HashValue::new();
            hash.mark_field_expiry_used();
            for triple in elements.chunks_exact(3) {
                let ttl = match triple[2] {
                    Element::Int(t) if (0..=FIELD_EXPIRY_MAX as i64).contains(&t) => t as u64,
                    _ => return Err(corrupt("hash listpack-ex with a bad TTL")),
                };
                let field = triple[0].to_vec();
                insert_field(&mut hash, &field, &triple[1].to_vec())?;
                if ttl != 0 {
                    if ttl < now_ms {
                        hash.remove(&field);
                    } else {
                        hash.set_field_expiry(&field, ttl);
                    }
                }
            }
            Value::Hash(Box::new(hash))
        }
        types::HASH_METADATA => {
            let min_expire = r.read_u64_le()?;
            let n = r.read_count(3)?;
            let mut hash = HashValue::new();
            // Fields got TTLs: a field-expiry command ran on it.
            hash.mark_field_expiry_used();
            let mut dropped = 0;
            for _ in 0..n {
                let ttl = r.read_length()?;
                let field = r.read_string()?;
                let value = r.read_string()?;
                if ttl == 0 {
                    insert_field(&mut hash, &field, &value)?;
                    continue;
                }
                let at = min_expire
                    .checked_add(ttl - 1)
                    .filter(|&at| at <= FIELD_EXPIRY_MAX)
                    .ok_or_else(|| corrupt("hash field TTL out of range"))?;
                // Time 0 means "no TTL" in a listpack-ex: a field due at 0 is gone.
                if at < now_ms.max(1) {
                    dropped += 1;
                    if hash.contains(&field, 0) {
                        return Err(corrupt("Duplicate hash fields detected"));
                    }
                    continue;
                }
                insert_field(&mut hash, &field, &value)?;
                hash.set_field_expiry(&field, at);
            }
            if dropped > 0 && hash.is_empty() {
                return Ok(None);
            }
            Value::Hash(Box::new(hash))
        }
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
            Value::Stream(Box::new(super::stream::read_stream(r, type_byte)?))
        }
        types::MODULE_PRE_GA | types::MODULE_2 => return Err(RdbError::Module),
        other => return Err(RdbError::UnknownType(other)),
    };
    let empty = match &value {
        Value::Str(_) | Value::Stream(_) => false,
        Value::List(l) => l.is_empty(),
        Value::Set(s) => s.is_empty(),
        Value::ZSet(z) => z.is_empty(),
        Value::Hash(h) => h.is_empty(),
    };
    Ok((!empty).then_some(value))
}

fn insert_member(set: &mut SetValue, member: &[u8]) -> Result<(), RdbError> {
    if set.insert(member) {
        Ok(())
    } else {
        Err(corrupt("Duplicate set members detected"))
    }
}

fn insert_scored(zset: &mut ZSetValue, member: &[u8], score: f64) -> Result<(), RdbError> {
    if score.is_nan() {
        return Err(corrupt("Zset with NAN score detected"));
    }
    if zset.insert(member, score) {
        Ok(())
    } else {
        Err(corrupt("Duplicate zset fields detected"))
    }
}

fn insert_field(hash: &mut HashValue, field: &[u8], value: &[u8]) -> Result<(), RdbError> {
    if hash.set(field, value) {
        Ok(())
    } else {
        Err(corrupt("Duplicate hash fields detected"))
    }
}

/// A score stored in a sorted set listpack: an integer, or text that
/// `strtod` reads whole (`zzlGetScore`).
fn element_score(e: Element<'_>) -> Result<f64, RdbError> {
    match e {
        Element::Int(i) => Ok(i as f64),
        Element::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(parse_c_double)
            .ok_or_else(|| corrupt("bad sorted set score")),
    }
}

/// `strtod` on text Redis wrote with `%.17g` (`inf`, `-inf`, `nan`
/// included).
fn parse_c_double(t: &str) -> Option<f64> {
    match t {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) -> Value {
        let mut out = Vec::new();
        write_object(&mut out, value.view(), true);
        let mut r = Reader::new(&out[1..]);
        let back = read_object(&mut r, out[0], 0)
            .expect("valid")
            .expect("not empty");
        assert_eq!(r.remaining(), 0);
        back
    }

    #[test]
    fn collections_round_trip() {
        let list: ListValue = (0..3000)
            .map(|i| format!("item-{i}-{}", "x".repeat(i % 50)).into_bytes())
            .collect::<Vec<_>>()
            .iter()
            .map(|v| &v[..])
            .collect();
        let v = Value::List(Box::new(list));
        assert_eq!(round_trip(&v), v);

        let mut set = SetValue::new();
        for i in [-5i64, 7, 1 << 40] {
            set.insert(i.to_string().as_bytes());
        }
        let v = Value::Set(Box::new(set.clone()));
        let mut out = Vec::new();
        write_object(&mut out, v.view(), false);
        assert_eq!(out[0], types::SET_INTSET);
        assert_eq!(round_trip(&v), v);
        set.insert(b"word");
        let v = Value::Set(Box::new(set));
        assert_eq!(round_trip(&v), v);

        let mut z = ZSetValue::new();
        for (m, s) in [
            ("a", 1.5),
            ("b", -0.0),
            ("c", f64::INFINITY),
            ("d", 1e300),
            ("e", 3.0),
        ] {
            z.insert(m.as_bytes(), s);
        }
        let v = Value::ZSet(Box::new(z));
        assert_eq!(round_trip(&v), v);
        let mut big = ZSetValue::new();
        for i in 0..300 {
            big.insert(format!("m{i}").as_bytes(), i as f64 / 7.0);
        }
        let v = Value::ZSet(Box::new(big));
        assert_eq!(round_trip(&v), v);

        let mut h = HashValue::new();
        h.set(b"f", b"v");
        h.set(b"n", b"12");
        let v = Value::Hash(Box::new(h.clone()));
        assert_eq!(round_trip(&v), v);
        h.mark_field_expiry_used(); // as HEXPIRE does
        h.set_field_expiry(b"f", 5_000_000_000_000);
        let v = Value::Hash(Box::new(h));
        assert!(needs_version_12(v.view()));
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn empty_and_duplicates() {
        let mut r = Reader::new(&[0]);
        assert_eq!(read_object(&mut r, types::SET, 0), Ok(None));
        let dup = [2, 1, b'a', 1, b'a'];
        assert!(matches!(
            read_object(&mut Reader::new(&dup), types::SET, 0),
            Err(RdbError::Corrupt(_))
        ));
        assert_eq!(
            read_object(&mut Reader::new(&[0]), 7, 0),
            Err(RdbError::Module)
        );
        assert_eq!(
            read_object(&mut Reader::new(&[0]), 8, 0),
            Err(RdbError::UnknownType(8))
        );
        // A count no bytes could hold is refused before the loop.
        let huge = [0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            read_object(&mut Reader::new(&huge), types::LIST, 0),
            Err(RdbError::Truncated)
        );
    }
}
