//! The stable encoding of values in the write-behind table.
//!
//! - `string`: the bytes as they are.
//! - `list`: the elements, head to tail.
//! - `set`: the members, sorted bytewise.
//! - `hash`: field, value, field, value... sorted by field (live fields only;
//!   field TTLs are not stored).
//! - `zset`: member, score, member, score... in rank order (ascending
//!   score), the score as the decimal text ZSCORE replies with.
//! - `stream`: the last generated ID, entries-added and the largest deleted
//!   ID (IDs as `ms-seq` text, the count in decimal), then each live entry
//!   in ID order: its ID, its number of fields, then field, value, field,
//!   value... Deleted entries and node boundaries are not stored.
//!
//! Every item of a collection is a 4-byte big-endian length followed by that
//! many bytes; an empty collection is empty bytes.

use crate::protocol::format_double;
use crate::store::types::{HashValue, ListValue, SetValue, StreamId, StreamValue, ZSetValue};
use crate::store::{Value, ValueRef};

/// The type name stored in the `type` column and the encoded value (of a
/// `&Value` or of an entry's borrowed value, with no copy first).
pub fn encode<'a>(value: impl Into<ValueRef<'a>>, now_ms: u64) -> (&'static str, Vec<u8>) {
    let mut out = Vec::new();
    let type_name = encode_into(value, now_ms, &mut out);
    (type_name, out)
}

/// [`encode`], appending the bytes to `out`; returns the type name.
pub fn encode_into<'a>(
    value: impl Into<ValueRef<'a>>,
    now_ms: u64,
    out: &mut Vec<u8>,
) -> &'static str {
    let value = value.into();
    let out = &mut *out;
    match value {
        ValueRef::Str(bytes) => out.extend_from_slice(bytes),
        ValueRef::List(list) => {
            for element in list.iter() {
                item(out, element);
            }
        }
        ValueRef::Set(set) => {
            let mut members: Vec<&[u8]> = set.iter().collect();
            members.sort_unstable();
            for member in members {
                item(out, member);
            }
        }
        ValueRef::Hash(hash) => {
            let mut fields: Vec<(&[u8], &[u8])> = hash.iter_live(now_ms).collect();
            fields.sort_unstable();
            for (field, value) in fields {
                item(out, field);
                item(out, value);
            }
        }
        ValueRef::ZSet(zset) => {
            for (member, score) in zset.iter() {
                item(out, member);
                item(out, format_double(score).as_bytes());
            }
        }
        ValueRef::Stream(stream) => {
            item(out, stream.last_id().to_string().as_bytes());
            item(out, stream.entries_added().to_string().as_bytes());
            item(out, stream.max_deleted_id().to_string().as_bytes());
            stream.range(StreamId::MIN, StreamId::MAX, false, 0, |entry| {
                item(out, entry.id.to_string().as_bytes());
                item(out, entry.len().to_string().as_bytes());
                for (field, value) in entry.pairs() {
                    item(out, field);
                    item(out, value);
                }
            });
        }
    }
    value.type_name()
}

/// One item of an encoded collection: its length (4 bytes, big-endian),
/// then its bytes.
pub(super) fn item(out: &mut Vec<u8>, bytes: &[u8]) {
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

/// The value `encode` made `(type_name, bytes)` from (the journal's
/// replay). `None` if the type is unknown or the bytes are malformed. Hash
/// field TTLs are not encoded, so a decoded hash has none; a zset member
/// with a NaN score is refused.
pub fn decode(type_name: &str, bytes: &[u8]) -> Option<Value> {
    if type_name == "string" {
        return Some(Value::Str(bytes.to_vec()));
    }
    let items = decode_items(bytes)?;
    let value = match type_name {
        "list" => Value::List(Box::new(
            items.iter().map(Vec::as_slice).collect::<ListValue>(),
        )),
        "set" => Value::Set(Box::new(
            items.iter().map(Vec::as_slice).collect::<SetValue>(),
        )),
        "hash" => {
            if items.len() % 2 != 0 {
                return None;
            }
            let mut hash = HashValue::new();
            for pair in items.chunks_exact(2) {
                hash.set(&pair[0], &pair[1]);
            }
            Value::Hash(Box::new(hash))
        }
        "zset" => {
            if items.len() % 2 != 0 {
                return None;
            }
            let mut zset = ZSetValue::new();
            for pair in items.chunks_exact(2) {
                let score: f64 = std::str::from_utf8(&pair[1]).ok()?.parse().ok()?;
                if score.is_nan() {
                    return None;
                }
                zset.insert(&pair[0], score);
            }
            Value::ZSet(Box::new(zset))
        }
        "stream" => Value::Stream(Box::new(decode_stream(&items)?)),
        _ => return None,
    };
    Some(value)
}

/// A stream from its encoded items (see the module's documentation).
fn decode_stream(items: &[Vec<u8>]) -> Option<StreamValue> {
    let [last_id, entries_added, max_deleted, rest @ ..] = items else {
        return None;
    };
    let number = |bytes: &[u8]| -> Option<u64> { std::str::from_utf8(bytes).ok()?.parse().ok() };
    let mut entries = Vec::new();
    let mut rest = rest;
    while let [id, count, tail @ ..] = rest {
        let strings = usize::try_from(number(count)?).ok()?.checked_mul(2)?;
        if tail.len() < strings {
            return None;
        }
        let fields = tail[..strings].iter().map(Vec::as_slice).collect();
        entries.push((StreamId::from_text(id)?, fields));
        rest = &tail[strings..];
    }
    if !rest.is_empty() {
        return None;
    }
    StreamValue::restore(
        entries,
        StreamId::from_text(last_id)?,
        number(entries_added)?,
        StreamId::from_text(max_deleted)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Rows read back from PostgreSQL (warm start, read-through) or the
        /// journal may hold anything: decoding never panics.
        #[test]
        fn arbitrary_bytes_decode_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            type_name in "string|list|set|hash|zset|stream|other",
        ) {
            let _ = decode(&type_name, &bytes);
            let _ = decode_items(&bytes);
        }
    }
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

    fn round_trip(value: Value) {
        let (kind, bytes) = encode(&value, 0);
        let decoded = decode(kind, &bytes).expect("decodes");
        // Compared through the encoding: collections may differ in inner
        // layout (insertion order of a set, say) and still be equal.
        assert_eq!(decoded.type_name(), value.type_name());
        assert_eq!(encode(&decoded, 0), (kind, bytes));
    }

    #[test]
    fn every_type_round_trips() {
        round_trip(Value::Str(Vec::new()));
        round_trip(Value::Str(b"\x00binary\r\n\xff".to_vec()));
        let list: ListValue = [&b"b"[..], b"", b"a", b"b"].into_iter().collect();
        round_trip(Value::List(Box::new(list)));
        let set: SetValue = [&b"z"[..], b"", b"a", b"\x00"].into_iter().collect();
        round_trip(Value::Set(Box::new(set)));
        let mut hash = HashValue::new();
        hash.set(b"f", b"v");
        hash.set(b"", b"\x00");
        round_trip(Value::Hash(Box::new(hash)));
        let mut zset = ZSetValue::new();
        for (member, score) in [
            (&b"a"[..], 1.5),
            (b"b", -0.1),
            (b"c", f64::INFINITY),
            (b"d", f64::NEG_INFINITY),
            (b"e", 1e-300),
            (b"f", 0.1 + 0.2),
            (b"g", 0.0),
        ] {
            zset.insert(member, score);
        }
        round_trip(Value::ZSet(Box::new(zset.clone())));
        let mut stream = StreamValue::new();
        for n in 1..=150u64 {
            let value = n.to_string();
            let fields: &[&[u8]] = if n % 3 == 0 {
                &[b"other", value.as_bytes()]
            } else {
                &[b"f", value.as_bytes(), b"", b"\x00"]
            };
            stream
                .add(
                    crate::store::types::AddId::Exact(StreamId::new(n, n)),
                    fields,
                    0,
                )
                .unwrap();
        }
        stream.delete_ids(&[StreamId::new(7, 7)]);
        stream.set_last_id(StreamId::new(900, 1));
        round_trip(Value::Stream(Box::new(stream.clone())));
        let (_, bytes) = encode(&Value::Stream(Box::new(stream.clone())), 0);
        let Some(Value::Stream(back)) = decode("stream", &bytes) else {
            panic!("stream decodes");
        };
        assert_eq!(
            (
                back.len(),
                back.last_id(),
                back.entries_added(),
                back.max_deleted_id()
            ),
            (149, StreamId::new(900, 1), 150, StreamId::new(7, 7))
        );
        round_trip(Value::Stream(Box::new(StreamValue::new())));
        let (_, bytes) = encode(&Value::ZSet(Box::new(zset)), 0);
        let Some(Value::ZSet(back)) = decode("zset", &bytes) else {
            panic!("zset decodes");
        };
        let scores: Vec<f64> = back.iter().map(|(_, score)| score).collect();
        assert!(
            scores.contains(&(0.1 + 0.2)),
            "scores are exact: {scores:?}"
        );
    }

    #[test]
    fn malformed_encodings_are_refused() {
        assert_eq!(decode("nosuchtype", b""), None);
        // A stream whose entries go backwards, or lack fields.
        let mut bytes = Vec::new();
        for text in [
            &b"9-0"[..],
            b"2",
            b"0-0",
            b"5-0",
            b"1",
            b"f",
            b"v",
            b"4-0",
            b"1",
            b"f",
            b"v",
        ] {
            item(&mut bytes, text);
        }
        assert_eq!(decode("stream", &bytes), None);
        let mut bytes = Vec::new();
        for text in [&b"9-0"[..], b"1", b"0-0", b"5-0", b"0"] {
            item(&mut bytes, text);
        }
        assert_eq!(decode("stream", &bytes), None);
        assert_eq!(decode("list", &[0, 0, 0, 9, b'x']), None);
        assert_eq!(decode("hash", &[0, 0, 0, 1, b'f']), None);
        assert_eq!(decode("zset", &[0, 0, 0, 1, b'm', 0, 0, 0, 1, b'x']), None);
        assert_eq!(
            decode("zset", &[0, 0, 0, 1, b'm', 0, 0, 0, 3, b'n', b'a', b'n']),
            None
        );
    }
}
