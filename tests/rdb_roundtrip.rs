//! The RDB codec on random values of every type: what `write_object`
//! writes, `read_object` reads back equal, with and without compression;
//! and no prefix or corruption of a valid encoding makes the reader panic.

use larder::rdb::{read_object, write_object, Reader};
use larder::store::types::{
    AddId, ConsumerGroup, HashValue, ListValue, SetValue, StreamId, StreamValue, ZSetValue,
};
use larder::store::Value;
use proptest::prelude::*;

/// Strings that exercise every encoding: integers (8 to 64 bits, with and
/// without Redis's canonical form), short, long and compressible bytes.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        (-200i64..200).prop_map(|i| i.to_string().into_bytes()),
        Just(b"007".to_vec()),
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..80),
        (1usize..300, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        (1usize..40).prop_map(|n| b"abcdefgh".repeat(n)),
    ]
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i64..1000).prop_map(|i| i as f64),
        any::<f64>().prop_filter("not NaN", |f| !f.is_nan()),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(4_611_686_018_427_387_904.0),
        Just(1e17),
        Just(0.1),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        bytes().prop_map(Value::Str),
        proptest::collection::vec(bytes(), 1..300).prop_map(|items| {
            let list: ListValue = items.iter().map(|v| &v[..]).collect();
            Value::List(Box::new(list))
        }),
        proptest::collection::vec(bytes(), 1..700).prop_map(|members| {
            let mut set = SetValue::new();
            for m in &members {
                set.insert(m);
            }
            Value::Set(Box::new(set))
        }),
        proptest::collection::vec((bytes(), score()), 1..300).prop_map(|pairs| {
            let mut z = ZSetValue::new();
            for (m, s) in &pairs {
                z.insert(m, *s);
            }
            Value::ZSet(Box::new(z))
        }),
        (
            proptest::collection::vec(
                (bytes(), bytes(), proptest::option::of(1u64..1 << 40)),
                1..300
            ),
            any::<bool>()
        )
            .prop_map(|(fields, ttl_commands)| {
                let mut h = HashValue::new();
                for (f, v, _) in &fields {
                    h.set(f, v);
                }
                // HEXPIRE marks a listpack for good (`listpackex`); a hash
                // whose TTLs are all gone is written as a plain hash, as
                // Redis 7.0 knows it, and reads back `listpack`.
                if ttl_commands && fields.iter().any(|(_, _, ttl)| ttl.is_some()) {
                    h.mark_field_expiry_used();
                    for (f, _, ttl) in &fields {
                        if let Some(ttl) = ttl {
                            // In the future of the reader's clock (0).
                            h.set_field_expiry(f, *ttl);
                        }
                    }
                }
                Value::Hash(Box::new(h))
            }),
    ]
}

fn round_trip(value: &Value, compress: bool) -> (Vec<u8>, Value) {
    let mut out = Vec::new();
    write_object(&mut out, value.view(), compress);
    let mut r = Reader::new(&out[1..]);
    let back = read_object(&mut r, out[0], 0)
        .expect("a value we wrote reads back")
        .expect("not empty");
    assert_eq!(r.remaining(), 0, "every byte read");
    (out, back)
}

/// A stream with entries (some with the first entry's fields), deletions,
/// and a group with pending entries owned by consumers.
fn stream_from(ops: &[(u8, Vec<u8>)], deletes: &[usize]) -> StreamValue {
    let mut s = StreamValue::new();
    let mut ids = Vec::new();
    for (i, (kind, v)) in ops.iter().enumerate() {
        let pairs: Vec<&[u8]> = match kind % 3 {
            0 => vec![b"f", v, b"g", b"1"],
            1 => vec![b"f", v],
            _ => vec![v, b"x", b"other", v],
        };
        let id = StreamId::new(1000 + (i as u64 / 3), 0);
        if let Ok(id) = s.add(AddId::Ms(id.ms), &pairs, 0) {
            ids.push(id);
        }
    }
    let doomed: Vec<StreamId> = deletes
        .iter()
        .filter_map(|&d| ids.get(d % ids.len().max(1)).copied())
        .collect();
    s.delete_ids(&doomed);
    let mut group = ConsumerGroup::new(StreamId::MIN, Some(0));
    for (n, id) in ids.iter().enumerate().take(7) {
        if s.entry_exists(*id) {
            let who: &[u8] = if n % 2 == 0 { b"alice" } else { b"bob" };
            group.deliver(*id, who, 5000 + n as u64);
            group.last_delivered = *id;
        }
    }
    group.create_consumer(b"idle", 77);
    s.create_group(b"g", group);
    s.create_group(b"empty", ConsumerGroup::new(StreamId::new(1, 1), None));
    s
}

fn stream_logic(s: &StreamValue) -> String {
    let mut entries = Vec::new();
    s.range(StreamId::MIN, StreamId::MAX, false, 0, |e| {
        entries.push((
            e.id,
            e.pairs()
                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                .collect::<Vec<_>>(),
        ))
    });
    format!(
        "{entries:?} len={} last={} first={} maxdel={} added={} groups={:?}",
        s.len(),
        s.last_id(),
        s.first_id(),
        s.max_deleted_id(),
        s.entries_added(),
        s.groups()
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_value_reads_back_equal(v in value(), compress in any::<bool>()) {
        let (out, back) = round_trip(&v, compress);
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(back.encoding(), v.encoding());
        // Writing what was read gives the same bytes.
        let mut again = Vec::new();
        write_object(&mut again, back.view(), compress);
        prop_assert_eq!(again, out);
    }

    #[test]
    fn streams_read_back_equal(
        ops in proptest::collection::vec((any::<u8>(), bytes()), 1..400),
        deletes in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let s = stream_from(&ops, &deletes);
        let v = Value::Stream(Box::new(s));
        let (_, back) = round_trip(&v, true);
        let (Value::Stream(a), Value::Stream(b)) = (&v, &back) else {
            panic!("a stream reads back as a stream");
        };
        prop_assert_eq!(stream_logic(a), stream_logic(b));
    }

    #[test]
    fn damaged_encodings_never_panic(v in value(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let mut out = Vec::new();
        write_object(&mut out, v.view(), true);
        let at = cut.index(out.len());
        let _ = read_object(&mut Reader::new(&out[1..at.max(1)]), out[0], 0);
        let mut bad = out.clone();
        let i = flip.0.index(bad.len());
        bad[i] ^= flip.1 | 1;
        let _ = read_object(&mut Reader::new(&bad[1..]), bad[0], 0);
    }
}
