//! The stable encoding of values in the write-behind table.
//!
//! - `string`: the bytes as they are.
//! - `list`: the elements, head to tail.
//! - `set`: the members, sorted bytewise.
//! - `hash`: field, value, field, value... sorted by field (live fields only;
//!   field TTLs are not stored).
//! - `zset`: member, score, member, score... in rank order (ascending
//!   score), the score as the decimal text ZSCORE replies with.
//!
//! Every item of a collection is a 4-byte big-endian length followed by that
//! many bytes; an empty collection is empty bytes.

use crate::protocol::format_double;
use crate::store::types::{HashValue, ListValue, SetValue, ZSetValue};
use crate::store::Value;

/// The type name stored in the `type` column and the encoded value.
pub fn encode(value: &Value, now_ms: u64) -> (&'static str, Vec<u8>) {
    let mut out = Vec::new();
    match value {
        Value::Str(bytes) => out.extend_from_slice(bytes),
        Value::List(list) => {
            for element in list.iter() {
                item(&mut out, element);
            }
        }
        Value::Set(set) => {
            let mut members: Vec<&[u8]> = set.iter().collect();
            members.sort_unstable();
            for member in members {
                item(&mut out, member);
            }
        }
        Value::Hash(hash) => {
            let mut fields: Vec<(&[u8], &[u8])> = hash.iter_live(now_ms).collect();
            fields.sort_unstable();
            for (field, value) in fields {
                item(&mut out, field);
                item(&mut out, value);
            }
        }
        Value::ZSet(zset) => {
            for (member, score) in zset.iter() {
                item(&mut out, member);
                item(&mut out, format_double(score).as_bytes());
            }
        }
    }
    (value.type_name(), out)
}

fn item(out: &mut Vec<u8>, bytes: &[u8]) {
    // Values are limited by proto-max-bulk-len (at most 512 MB by default);
    // saturate rather than wrap for anything larger.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The value `encode` made of type `type_name`; `None` if the type is
/// unknown or the bytes are not a well-formed encoding of it (an empty
/// collection also gives `None`: Redis has no empty collections).
pub fn decode(type_name: &str, bytes: &[u8]) -> Option<Value> {
    if type_name == "string" {
        return Some(Value::Str(bytes.to_vec()));
    }
    let items = decode_items(bytes)?;
    if items.is_empty() {
        return None;
    }
    let value = match type_name {
        "list" => Value::List(Box::new(
            items.iter().map(Vec::as_slice).collect::<ListValue>(),
        )),
        "set" => Value::Set(Box::new(
            items.iter().map(Vec::as_slice).collect::<SetValue>(),
        )),
        "hash" => {
            let mut hash = HashValue::new();
            for pair in pairs(&items)? {
                hash.set(pair.0, pair.1);
            }
            Value::Hash(Box::new(hash))
        }
        "zset" => {
            let mut zset = ZSetValue::new();
            for (member, score) in pairs(&items)? {
                let score: f64 = std::str::from_utf8(score).ok()?.parse().ok()?;
                if score.is_nan() {
                    return None;
                }
                zset.insert(member, score);
            }
            Value::ZSet(Box::new(zset))
        }
        _ => return None,
    };
    Some(value)
}

fn pairs(items: &[Vec<u8>]) -> Option<impl Iterator<Item = (&[u8], &[u8])>> {
    items.len().is_multiple_of(2).then(|| {
        items
            .chunks_exact(2)
            .map(|pair| (pair[0].as_slice(), pair[1].as_slice()))
    })
}

/// Splits an encoded collection back into its items (for tests and tools).
/// `None` if the bytes are not a well-formed sequence of items.
pub fn decode_items(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        items.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::types::HashValue;

    #[test]
    fn hashes_encode_sorted_and_decode() {
        let mut hash = HashValue::new();
        hash.set(b"b", b"2");
        hash.set(b"a", b"");
        let (kind, bytes) = encode(&Value::Hash(Box::new(hash)), 0);
        assert_eq!(kind, "hash");
        assert_eq!(
            decode_items(&bytes),
            Some(vec![
                b"a".to_vec(),
                b"".to_vec(),
                b"b".to_vec(),
                b"2".to_vec()
            ])
        );
        assert_eq!(decode_items(&[0, 0, 0, 5, 1]), None);
        let (kind, bytes) = encode(&Value::Str(b"raw".to_vec()), 0);
        assert_eq!((kind, bytes.as_slice()), ("string", &b"raw"[..]));
    }

    #[test]
    fn every_type_decodes_to_what_was_encoded() {
        let mut hash = HashValue::new();
        hash.set(b"f", b"v");
        hash.set(b"", b"empty field");
        let mut zset = ZSetValue::new();
        zset.insert(b"a", 1.5);
        zset.insert(b"b", f64::INFINITY);
        zset.insert(b"c", -0.1);
        let values = [
            Value::Str(b"".to_vec()),
            Value::Str(b"\x00bin\xff".to_vec()),
            Value::List(Box::new([&b"x"[..], b"", b"x"].into_iter().collect())),
            Value::Set(Box::new([&b"m"[..], b"n"].into_iter().collect())),
            Value::Hash(Box::new(hash)),
            Value::ZSet(Box::new(zset)),
        ];
        for value in values {
            let (kind, bytes) = encode(&value, 0);
            let decoded = decode(kind, &bytes).expect("decodes");
            assert_eq!(encode(&decoded, 0), (kind, bytes), "{value:?}");
            assert_eq!(decoded.type_name(), value.type_name());
        }
        assert_eq!(decode("list", &[]), None);
        assert_eq!(
            decode("zset", &items(&[b"m".to_vec(), b"NaN".to_vec()])),
            None
        );
        assert_eq!(decode("hash", &items(&[b"odd".to_vec()])), None);
        assert_eq!(decode("stream", b""), None);
    }

    fn items(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            item(&mut out, part);
        }
        out
    }
}
