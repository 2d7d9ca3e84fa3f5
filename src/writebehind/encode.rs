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
use crate::store::ValueRef;

/// The type name stored in the `type` column and the encoded value (of a
/// `&Value` or of an entry's borrowed value, with no copy first).
pub fn encode<'a>(value: impl Into<ValueRef<'a>>, now_ms: u64) -> (&'static str, Vec<u8>) {
    let value = value.into();
    let mut out = Vec::new();
    match value {
        ValueRef::Str(bytes) => out.extend_from_slice(bytes),
        ValueRef::List(list) => {
            for element in list.iter() {
                item(&mut out, element);
            }
        }
        ValueRef::Set(set) => {
            let mut members: Vec<&[u8]> = set.iter().collect();
            members.sort_unstable();
            for member in members {
                item(&mut out, member);
            }
        }
        ValueRef::Hash(hash) => {
            let mut fields: Vec<(&[u8], &[u8])> = hash.iter_live(now_ms).collect();
            fields.sort_unstable();
            for (field, value) in fields {
                item(&mut out, field);
                item(&mut out, value);
            }
        }
        ValueRef::ZSet(zset) => {
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
    use crate::store::Value;

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
}
