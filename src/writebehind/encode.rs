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
//!   value... Deleted entries and node boundaries are not stored. A stream
//!   with consumer groups then has the item `groups` (never an entry ID),
//!   the number of groups, and each group in name order: its name, its
//!   last delivered ID, its entries-read (`-1` when unknown), its number of
//!   consumers, and each consumer in name order: its name, its seen time
//!   and active time (Unix milliseconds, `-1` if it never had one), its
//!   number of pending entries, and each of them in ID order: its ID, its
//!   last delivery time and its delivery count. A group's pending entries
//!   list is the union of its consumers' (every pending entry has one
//!   owner). A record without the `groups` item (a stream without groups,
//!   or one written before groups were stored) is a stream without groups.
//!
//! Every item of a collection is a 4-byte big-endian length followed by that
//! many bytes; an empty collection is empty bytes.

use crate::protocol::format_double;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::store::types::{
    Consumer, ConsumerGroup, ConsumerName, HashValue, ListValue, PendingEntry, SetValue, StreamId,
    StreamValue, ZSetValue,
};
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
            if !stream.groups().is_empty() {
                item(out, GROUPS);
                item(out, stream.groups().len().to_string().as_bytes());
                for (name, group) in stream.groups() {
                    encode_group(out, name, group);
                }
            }
        }
    }
    value.type_name()
}

/// The item that starts a stream's groups section.
const GROUPS: &[u8] = b"groups";

/// A time or counter that may be unknown, as decimal text (`-1`: unknown).
fn optional_number(value: Option<u64>) -> String {
    value.map_or_else(|| "-1".to_string(), |n| n.to_string())
}

/// One consumer group of a stream's record (see the module's
/// documentation), also the body of the journal's group records.
pub(super) fn encode_group(out: &mut Vec<u8>, name: &[u8], group: &ConsumerGroup) {
    item(out, name);
    item(out, group.last_delivered.to_string().as_bytes());
    item(out, optional_number(group.entries_read).as_bytes());
    item(out, group.consumers.len().to_string().as_bytes());
    for (consumer_name, consumer) in &group.consumers {
        item(out, consumer_name);
        item(out, consumer.seen_time.to_string().as_bytes());
        item(out, optional_number(consumer.active_time).as_bytes());
        item(out, consumer.pending.len().to_string().as_bytes());
        for id in &consumer.pending {
            // The two PELs always agree (see `ConsumerGroup`): the lookup
            // finds the entry.
            let (time, count) = group
                .pel
                .get(id)
                .map_or((0, 0), |entry| (entry.delivery_time, entry.delivery_count));
            item(out, id.to_string().as_bytes());
            item(out, time.to_string().as_bytes());
            item(out, count.to_string().as_bytes());
        }
    }
}

fn number(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// [`optional_number`] read back.
fn optional(bytes: &[u8]) -> Option<Option<u64>> {
    if bytes == b"-1" {
        Some(None)
    } else {
        number(bytes).map(Some)
    }
}

/// A group's name, the group, and the items after it.
pub(super) type DecodedGroup<'a> = (Vec<u8>, ConsumerGroup, &'a [Vec<u8>]);

/// Reads one group [`encode_group`] wrote from the front of `items`;
/// returns its name, the group and the items after it. `None` if the items
/// are malformed or contradict each other (an ID pending for two
/// consumers, two consumers of one name).
pub(super) fn decode_group(items: &[Vec<u8>]) -> Option<DecodedGroup<'_>> {
    let [name, last_delivered, entries_read, consumers, rest @ ..] = items else {
        return None;
    };
    let mut rest = rest;
    let mut group = ConsumerGroup::new(
        StreamId::from_text(last_delivered)?,
        optional(entries_read)?,
    );
    for _ in 0..number(consumers)? {
        let [consumer_name, seen, active, pending, tail @ ..] = rest else {
            return None;
        };
        let consumer_name: ConsumerName = Arc::from(consumer_name.as_slice());
        let mut owned = BTreeSet::new();
        let pending = usize::try_from(number(pending)?).ok()?;
        let (entries, tail) = tail.split_at_checked(pending.checked_mul(3)?)?;
        for entry in entries.chunks_exact(3) {
            let id = StreamId::from_text(&entry[0])?;
            let pending_entry = PendingEntry {
                consumer: consumer_name.clone(),
                delivery_time: number(&entry[1])?,
                delivery_count: number(&entry[2])?,
            };
            if group.pel.insert(id, pending_entry).is_some() || !owned.insert(id) {
                return None;
            }
        }
        let consumer = Consumer {
            seen_time: number(seen)?,
            active_time: optional(active)?,
            pending: owned,
        };
        if group.consumers.insert(consumer_name, consumer).is_some() {
            return None;
        }
        rest = tail;
    }
    Some((name.clone(), group, rest))
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
    let mut entries = Vec::new();
    let mut rest = rest;
    let mut groups = BTreeMap::new();
    while let [id, count, tail @ ..] = rest {
        if id == GROUPS {
            // The groups section ends the record.
            let mut left = tail;
            for _ in 0..number(count)? {
                let (name, group, after) = decode_group(left)?;
                if groups.insert(name, group).is_some() {
                    return None;
                }
                left = after;
            }
            rest = left;
            break;
        }
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
    let mut stream = StreamValue::restore(
        entries,
        StreamId::from_text(last_id)?,
        number(entries_added)?,
        StreamId::from_text(max_deleted)?,
    )?;
    for (name, group) in groups {
        stream.create_group(&name, group);
    }
    Some(stream)
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

    /// A stored record from its items, written as words.
    fn record(words: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for word in words.split(' ') {
            item(&mut out, word.as_bytes());
        }
        out
    }

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

    /// A stream with groups: created, delivered to, acked, claimed
    /// (FORCE included), a consumer never active, a group that read
    /// everything with NOACK, a destroyed consumer's entries gone.
    fn stream_with_groups() -> StreamValue {
        let mut stream = StreamValue::new();
        for n in 1..=20u64 {
            stream
                .add(
                    crate::store::types::AddId::Exact(StreamId::new(n, 0)),
                    &[b"f", n.to_string().as_bytes()],
                    0,
                )
                .unwrap();
        }
        stream.create_group(b"g", ConsumerGroup::new(StreamId::MIN, None));
        stream.create_group(b"h", ConsumerGroup::new(StreamId::new(5, 0), Some(5)));
        stream.create_group(b"", ConsumerGroup::new(StreamId::MAX, None));
        stream
            .read_group(b"g", b"alice", 5, false, 1_000, |_| {})
            .unwrap();
        stream
            .read_group(b"g", b"bob", 3, false, 2_000, |_| {})
            .unwrap();
        stream
            .read_group(b"h", b"carol", 0, true, 3_000, |_| {})
            .unwrap();
        let group = stream.group_mut(b"g").unwrap();
        assert!(group.ack(StreamId::new(2, 0)));
        let (bob, _) = group.consumer_or_create(b"bob", 4_000);
        group.claim(StreamId::new(1, 0), &bob, 4_000, None, true);
        group.claim(StreamId::new(19, 0), &bob, 4_500, Some(7), false);
        group.mark_active(b"bob", 4_500);
        group.create_consumer(b"idle \x00 one", 5_000);
        group.create_consumer(b"gone", 5_000);
        group.deliver(StreamId::new(20, 0), b"gone", 5_500);
        group.delete_consumer(b"gone");
        stream.delete_ids(&[StreamId::new(3, 0)]);
        stream
    }

    #[test]
    fn groups_round_trip_exactly() {
        let stream = stream_with_groups();
        assert!(stream.groups().values().all(ConsumerGroup::is_consistent));
        round_trip(Value::Stream(Box::new(stream.clone())));
        let (_, bytes) = encode(&Value::Stream(Box::new(stream.clone())), 0);
        let Some(Value::Stream(back)) = decode("stream", &bytes) else {
            panic!("stream decodes");
        };
        assert_eq!(back.groups(), stream.groups());
        let g = back.group(b"g").unwrap();
        assert!(g.is_consistent());
        assert_eq!(g.consumers[&b"alice"[..]].active_time, Some(1_000));
        assert_eq!(g.consumers[&b"bob"[..]].active_time, Some(4_500));
        assert_eq!(g.consumers[&b"idle \x00 one"[..]].active_time, None);
        assert_eq!(g.pel[&StreamId::new(19, 0)].delivery_count, 7);
        assert_eq!(back.group(b"h").unwrap().entries_read, Some(20));
        assert_eq!(back.group(b"").unwrap().entries_read, None);
        // A stream's own counters come back too.
        assert_eq!(
            (back.len(), back.last_id(), back.max_deleted_id()),
            (19, StreamId::new(20, 0), StreamId::new(3, 0))
        );
    }

    /// Records written before groups were stored (or of a stream without
    /// groups) have no `groups` item, and a stream without groups is
    /// still written that way.
    #[test]
    fn records_without_groups_decode() {
        let legacy = record("9-0 2 3-0 5-0 1 f v 9-0 1 f w");
        let Some(Value::Stream(stream)) = decode("stream", &legacy) else {
            panic!("a record without groups decodes");
        };
        assert!(stream.groups().is_empty());
        assert_eq!((stream.len(), stream.entries_added()), (2, 2));
        assert_eq!(encode(&Value::Stream(stream), 0).1, legacy);
    }

    #[test]
    fn malformed_groups_are_refused() {
        let stream = stream_with_groups();
        let (_, good) = encode(&Value::Stream(Box::new(stream)), 0);
        let items = decode_items(&good).unwrap();
        let at = items.iter().position(|i| i == b"groups").unwrap();
        let rebuild = |items: &[Vec<u8>]| {
            let mut out = Vec::new();
            for i in items {
                item(&mut out, i);
            }
            out
        };
        // Truncated anywhere inside the section.
        for cut in at + 1..items.len() {
            assert!(
                decode("stream", &rebuild(&items[..cut])).is_none(),
                "cut at {cut}"
            );
        }
        // Trailing items after the section.
        let mut extra = items.clone();
        extra.push(b"1-0".to_vec());
        assert!(decode("stream", &rebuild(&extra)).is_none());
        // A group count larger than the groups there.
        let mut more = items.clone();
        more[at + 1] = b"4".to_vec();
        assert!(decode("stream", &rebuild(&more)).is_none());
        // One ID pending for two consumers, and a repeated group.
        let two = record("5-0 1 0-0 5-0 1 f v groups 1 g 5-0 1 2 a 1 -1 1 5-0 1 1 b 1 1 1 5-0 1 1");
        assert!(decode("stream", &two).is_none());
        // The same record with the second consumer owning nothing decodes.
        let one = record("5-0 1 0-0 5-0 1 f v groups 1 g 5-0 1 2 a 1 -1 1 5-0 1 1 b 1 1 0");
        assert!(decode("stream", &one).is_some());
        let repeated = record("5-0 1 0-0 groups 2 g 0-0 -1 0 g 0-0 -1 0");
        assert!(decode("stream", &repeated).is_none());
    }

    #[test]
    fn malformed_encodings_are_refused() {
        assert_eq!(decode("nosuchtype", b""), None);
        // A stream whose entries go backwards, or lack fields.
        let bytes = record("9-0 2 0-0 5-0 1 f v 4-0 1 f v");
        assert_eq!(decode("stream", &bytes), None);
        assert_eq!(decode("stream", &record("9-0 1 0-0 5-0 0")), None);
        assert_eq!(decode("list", &[0, 0, 0, 9, b'x']), None);
        assert_eq!(decode("hash", &[0, 0, 0, 1, b'f']), None);
        assert_eq!(decode("zset", &[0, 0, 0, 1, b'm', 0, 0, 0, 1, b'x']), None);
        assert_eq!(
            decode("zset", &[0, 0, 0, 1, b'm', 0, 0, 0, 3, b'n', b'a', b'n']),
            None
        );
    }
}
