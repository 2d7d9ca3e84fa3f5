//! Streams in RDB (`rdbSaveObject`/`rdbLoadObject` for `OBJ_STREAM`): the
//! nodes as Redis's listpacks keyed by their master ID, the counters, then
//! the consumer groups with their PEL and consumers.
//!
//! Written as `RDB_TYPE_STREAM_LISTPACKS_2` (Redis 7.0); read from that,
//! from `_LISTPACKS` (Redis 5/6: no first ID, tombstone ID, entries-added
//! or entries-read) and from `_LISTPACKS_3` (Redis 7.2: consumers' active
//! time, which Larder does not keep).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::encodings::{listpack_elements, Element, ListpackWriter};
use super::{corrupt, types, write_length, write_string, RdbError, Reader};
use crate::store::types::{
    Consumer, ConsumerGroup, ConsumerName, PendingEntry, RawNodeEntry, StreamId, StreamValue,
};

const FLAG_DELETED: i64 = 1;
const FLAG_SAME_FIELDS: i64 = 2;

fn id_key(id: StreamId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.ms.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

fn key_id(key: &[u8]) -> Option<StreamId> {
    if key.len() != 16 {
        return None;
    }
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&key[..8]);
    seq.copy_from_slice(&key[8..]);
    Some(StreamId::new(
        u64::from_be_bytes(ms),
        u64::from_be_bytes(seq),
    ))
}

/// One node's listpack, as `streamAppendItem` builds it.
fn node_listpack(master_id: StreamId, fields: &[&[u8]], entries: &[RawNodeEntry<'_>]) -> Vec<u8> {
    let mut lp = ListpackWriter::new();
    let live = entries.iter().filter(|e| !e.deleted).count();
    lp.push_int(live as i64);
    lp.push_int((entries.len() - live) as i64);
    lp.push_int(fields.len() as i64);
    for field in fields {
        lp.push(field);
    }
    lp.push_int(0); // the master entry's terminator
    for e in entries {
        let mut flags = 0;
        if e.deleted {
            flags |= FLAG_DELETED;
        }
        if e.same_fields {
            flags |= FLAG_SAME_FIELDS;
        }
        lp.push_int(flags);
        lp.push_int(e.id.ms.wrapping_sub(master_id.ms) as i64);
        lp.push_int(e.id.seq.wrapping_sub(master_id.seq) as i64);
        let n = e.pairs.len() as i64;
        if e.same_fields {
            for (_, value) in &e.pairs {
                lp.push(value);
            }
            lp.push_int(n + 3);
        } else {
            lp.push_int(n);
            for (field, value) in &e.pairs {
                lp.push(field);
                lp.push(value);
            }
            lp.push_int(2 * n + 4);
        }
    }
    lp.finish()
}

/// Appends a stream's body (after the type byte), as
/// `RDB_TYPE_STREAM_LISTPACKS_2`.
pub fn write_stream(out: &mut Vec<u8>, stream: &StreamValue, compress: bool) {
    write_stream_as(out, stream, compress, 2);
}

/// The body in the layout of stream type `version` (1: Redis 5/6, 2: 7.0,
/// 3: 7.2, whose consumers' active time is their seen time here).
fn write_stream_as(out: &mut Vec<u8>, stream: &StreamValue, compress: bool, version: u8) {
    let mut nodes: Vec<(StreamId, Vec<u8>)> = Vec::new();
    stream.for_each_node(|master_id, fields, entries| {
        nodes.push((master_id, node_listpack(master_id, fields, entries)));
    });
    write_length(out, nodes.len() as u64);
    for (master_id, lp) in &nodes {
        write_string(out, &id_key(*master_id), compress);
        write_string(out, lp, compress);
    }
    write_length(out, stream.len());
    let last = stream.last_id();
    write_length(out, last.ms);
    write_length(out, last.seq);
    if version >= 2 {
        let first = stream.first_id();
        write_length(out, first.ms);
        write_length(out, first.seq);
        let tomb = stream.max_deleted_id();
        write_length(out, tomb.ms);
        write_length(out, tomb.seq);
        write_length(out, stream.entries_added());
    }
    let groups = stream.groups();
    write_length(out, groups.len() as u64);
    for (name, group) in groups {
        write_string(out, name, compress);
        write_length(out, group.last_delivered.ms);
        write_length(out, group.last_delivered.seq);
        if version >= 2 {
            // SCG_INVALID_ENTRIES_READ is -1, saved as an unsigned length.
            write_length(out, group.entries_read.unwrap_or(u64::MAX));
        }
        write_length(out, group.pel.len() as u64);
        for (id, nack) in &group.pel {
            out.extend_from_slice(&id_key(*id));
            out.extend_from_slice(&nack.delivery_time.to_le_bytes());
            write_length(out, nack.delivery_count);
        }
        write_length(out, group.consumers.len() as u64);
        for (name, consumer) in &group.consumers {
            write_string(out, name, compress);
            out.extend_from_slice(&consumer.seen_time.to_le_bytes());
            if version >= 3 {
                out.extend_from_slice(&consumer.seen_time.to_le_bytes());
            }
            write_length(out, consumer.pending.len() as u64);
            for id in &consumer.pending {
                out.extend_from_slice(&id_key(*id));
            }
        }
    }
}

fn int(e: Option<&Element<'_>>) -> Result<i64, RdbError> {
    e.and_then(|e| e.as_int())
        .ok_or_else(|| corrupt("stream listpack: bad integer"))
}

/// The live entries of one node listpack, validated as
/// `streamValidateListpackIntegrity` with deep checks.
fn node_entries(
    master_id: StreamId,
    lp: &[u8],
    out: &mut Vec<(StreamId, Vec<Vec<u8>>)>,
) -> Result<(), RdbError> {
    let elements = listpack_elements(lp)?;
    if elements.is_empty() {
        return Err(corrupt("Empty listpack inside stream"));
    }
    let mut it = elements.iter();
    let count = int(it.next())?;
    let deleted = int(it.next())?;
    let nfields = int(it.next())?;
    if count < 0 || deleted < 0 || nfields < 0 || nfields as usize > elements.len() {
        return Err(corrupt("stream listpack: bad master entry"));
    }
    let mut master_fields = Vec::with_capacity(nfields as usize);
    for _ in 0..nfields {
        master_fields.push(it.next().ok_or(RdbError::Truncated)?.to_vec());
    }
    if int(it.next())? != 0 {
        return Err(corrupt("stream listpack: bad master terminator"));
    }
    let (mut seen_live, mut seen_deleted) = (0i64, 0i64);
    while let Some(flags) = it.next() {
        let flags = flags
            .as_int()
            .ok_or_else(|| corrupt("stream listpack: bad flags"))?;
        let ms = int(it.next())?;
        let seq = int(it.next())?;
        let id = StreamId::new(
            master_id.ms.wrapping_add(ms as u64),
            master_id.seq.wrapping_add(seq as u64),
        );
        let mut values: Vec<Vec<u8>> = Vec::new();
        let lp_count = if flags & FLAG_SAME_FIELDS != 0 {
            for field in &master_fields {
                let value = it.next().ok_or(RdbError::Truncated)?;
                values.push(field.clone());
                values.push(value.to_vec());
            }
            nfields + 3
        } else {
            let n = int(it.next())?;
            if n < 0 || n as usize > elements.len() {
                return Err(corrupt("stream listpack: bad field count"));
            }
            for _ in 0..2 * n {
                values.push(it.next().ok_or(RdbError::Truncated)?.to_vec());
            }
            2 * n + 4
        };
        if int(it.next())? != lp_count {
            return Err(corrupt("stream listpack: bad lp-count"));
        }
        if flags & FLAG_DELETED != 0 {
            seen_deleted += 1;
        } else {
            if values.is_empty() {
                return Err(corrupt("stream entry without fields"));
            }
            seen_live += 1;
            out.push((id, values));
        }
    }
    if seen_live != count || seen_deleted != deleted {
        return Err(corrupt("stream listpack: counts do not match"));
    }
    Ok(())
}

fn read_id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    let ms = r.read_length()?;
    let seq = r.read_length()?;
    Ok(StreamId::new(ms, seq))
}

fn read_raw_id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    key_id(r.read_bytes(16)?).ok_or(RdbError::Truncated)
}

/// Reads a stream's body (after the type byte `type_byte`).
pub fn read_stream(r: &mut Reader<'_>, type_byte: u8) -> Result<StreamValue, RdbError> {
    let version = match type_byte {
        types::STREAM_LISTPACKS => 1,
        types::STREAM_LISTPACKS_2 => 2,
        _ => 3,
    };
    let nodes = r.read_count(2)?;
    let mut entries: Vec<(StreamId, Vec<Vec<u8>>)> = Vec::new();
    let mut last_master: Option<StreamId> = None;
    for _ in 0..nodes {
        let key = r.read_string()?;
        let master_id = key_id(&key)
            .ok_or_else(|| corrupt("Stream node key entry is not the size of a stream ID"))?;
        if last_master.is_some_and(|m| m >= master_id) {
            return Err(corrupt("stream nodes out of order"));
        }
        last_master = Some(master_id);
        let lp = r.read_string()?;
        let before = entries.len();
        node_entries(master_id, &lp, &mut entries)?;
        if entries[before..]
            .first()
            .is_some_and(|(id, _)| *id < master_id)
        {
            return Err(corrupt("stream entry before its master ID"));
        }
    }
    let length = r.read_length()?;
    let last_id = read_id(r)?;
    let (max_deleted, entries_added) = if version >= 2 {
        let _first = read_id(r)?;
        let max_deleted = read_id(r)?;
        (max_deleted, r.read_length()?)
    } else {
        (StreamId::MIN, length)
    };
    if length != entries.len() as u64 {
        return Err(corrupt("stream length does not match its entries"));
    }
    let views = entries
        .iter()
        .map(|(id, values)| (*id, values.iter().map(|v| &v[..]).collect::<Vec<&[u8]>>()));
    let mut stream = StreamValue::restore(views, last_id, entries_added, max_deleted)
        .ok_or_else(|| corrupt("stream entries contradict its counters"))?;

    let groups = r.read_count(1)?;
    for _ in 0..groups {
        let name = r.read_string()?;
        let last_delivered = read_id(r)?;
        let entries_read = if version >= 2 {
            match r.read_length()? {
                u64::MAX => None,
                n => Some(n),
            }
        } else {
            stream.entries_up_to(last_delivered)
        };
        let mut group = ConsumerGroup::new(last_delivered, entries_read);
        let pel_len = r.read_count(17)?;
        // Owners are filled in from the consumers' PELs below.
        let mut pel: BTreeMap<StreamId, (u64, u64)> = BTreeMap::new();
        for _ in 0..pel_len {
            let id = read_raw_id(r)?;
            let delivery_time = r.read_u64_le()?;
            let delivery_count = r.read_length()?;
            if pel.insert(id, (delivery_time, delivery_count)).is_some() {
                return Err(corrupt(
                    "Duplicated global PEL entry loading stream consumer group",
                ));
            }
        }
        let consumers = r.read_count(9)?;
        for _ in 0..consumers {
            let cname: ConsumerName = Arc::from(r.read_string()?);
            let seen_time = r.read_u64_le()?;
            if version >= 3 {
                let _active_time = r.read_u64_le()?;
            }
            let mut consumer = Consumer {
                seen_time,
                ..Consumer::default()
            };
            let owned = r.read_count(16)?;
            for _ in 0..owned {
                let id = read_raw_id(r)?;
                let Some(&(delivery_time, delivery_count)) = pel.get(&id) else {
                    return Err(corrupt("Consumer PEL entry not found in group global PEL"));
                };
                let nack = PendingEntry {
                    consumer: cname.clone(),
                    delivery_time,
                    delivery_count,
                };
                if group.pel.insert(id, nack).is_some() {
                    return Err(corrupt(
                        "Duplicated consumer PEL entry loading a stream consumer group",
                    ));
                }
                consumer.pending.insert(id);
            }
            if group.consumers.insert(cname, consumer).is_some() {
                return Err(corrupt("Duplicate stream consumer detected"));
            }
        }
        if group.pel.len() != pel.len() {
            return Err(corrupt("Stream CG PEL entry without consumer"));
        }
        if !stream.create_group(&name, group) {
            return Err(corrupt("Duplicated consumer group name"));
        }
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::types::AddId;

    fn sample() -> StreamValue {
        let mut s = StreamValue::new();
        for i in 1..=300u64 {
            let v = i.to_string();
            let pairs: Vec<&[u8]> = if i % 4 == 0 {
                vec![b"other", v.as_bytes()]
            } else {
                vec![b"f", v.as_bytes(), b"g", b"x"]
            };
            s.add(AddId::Exact(StreamId::new(i, 1)), &pairs, 0)
                .expect("increasing IDs");
        }
        s.delete_ids(&[StreamId::new(3, 1), StreamId::new(300, 1)]);
        let mut g = ConsumerGroup::new(StreamId::new(10, 1), Some(9));
        g.deliver(StreamId::new(4, 1), b"alice", 100);
        g.deliver(StreamId::new(7, 1), b"bob", 200);
        g.create_consumer(b"idle", 300);
        s.create_group(b"g", g);
        s
    }

    type Entries = Vec<(StreamId, Vec<(Vec<u8>, Vec<u8>)>)>;

    fn entries(s: &StreamValue) -> Entries {
        let mut out = Vec::new();
        s.range(StreamId::MIN, StreamId::MAX, false, 0, |e| {
            out.push((
                e.id,
                e.pairs().map(|(f, v)| (f.to_vec(), v.to_vec())).collect(),
            ))
        });
        out
    }

    #[test]
    fn every_stream_layout_reads_back() {
        let s = sample();
        for (version, type_byte) in [
            (1, types::STREAM_LISTPACKS),
            (2, types::STREAM_LISTPACKS_2),
            (3, types::STREAM_LISTPACKS_3),
        ] {
            let mut out = Vec::new();
            write_stream_as(&mut out, &s, true, version);
            let mut r = Reader::new(&out);
            let back = read_stream(&mut r, type_byte).expect("valid");
            assert_eq!(r.remaining(), 0, "version {version}");
            assert_eq!(entries(&back), entries(&s), "version {version}");
            assert_eq!(back.last_id(), s.last_id());
            assert_eq!(back.groups()[&b"g"[..]].pel, s.groups()[&b"g"[..]].pel);
            assert_eq!(
                back.groups()[&b"g"[..]].consumers,
                s.groups()[&b"g"[..]].consumers
            );
            if version >= 2 {
                assert_eq!(back.groups(), s.groups());
                assert_eq!(back.entries_added(), s.entries_added());
                assert_eq!(back.max_deleted_id(), s.max_deleted_id());
            } else {
                // Redis 5/6 kept no counters: entries-added is the length.
                assert_eq!(back.entries_added(), s.len());
            }
        }
    }

    #[test]
    fn inconsistent_groups_are_refused() {
        // A consumer owning an ID the group PEL lacks.
        let mut s = StreamValue::new();
        s.add(AddId::Exact(StreamId::new(1, 1)), &[b"f", b"v"], 0)
            .expect("first entry");
        let mut g = ConsumerGroup::new(StreamId::new(1, 1), Some(1));
        g.deliver(StreamId::new(1, 1), b"alice", 5);
        s.create_group(b"g", g);
        let mut out = Vec::new();
        write_stream(&mut out, &s, false);
        // The group PEL count is the byte after entries-read: make it 0 and
        // drop its one entry (16-byte ID, 8-byte time, 1-byte count).
        let mut r = Reader::new(&out);
        let _ = read_stream(&mut r, types::STREAM_LISTPACKS_2).expect("valid");
        let tail = 1 + 16 + 8 + 1 + 1 + 1 + 5 + 8 + 1 + 16;
        let pel_at = out.len() - tail;
        assert_eq!(out[pel_at], 1, "PEL count where expected");
        let mut bad = out[..pel_at].to_vec();
        bad.push(0);
        bad.extend_from_slice(&out[pel_at + 26..]);
        assert!(read_stream(&mut Reader::new(&bad), types::STREAM_LISTPACKS_2).is_err());
    }
}
