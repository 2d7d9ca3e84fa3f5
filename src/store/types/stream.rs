//! Streams: an append-only log of entries, each a list of field/value pairs
//! under an ID (`ms-seq`), as Redis 7's stream type.
//!
//! The layout follows Redis's radix tree of listpacks: entries live in
//! nodes, a `BTreeMap` keyed by each node's first ID (its *master ID*). A
//! node is one byte buffer: the fields of its first entry (the *master
//! fields*) stored once, then each entry as
//!
//! ```text
//! varint (ms-delta << 2 | flags) | varint seq | [varint nfields] | (varint len, bytes)...
//! ```
//!
//! where the ID is delta-encoded against the master ID (the sequence is a
//! delta when the milliseconds are equal, else absolute), and an entry with
//! the master's fields (flag `SAME_FIELDS`) stores only its values. XDEL and
//! exact trimming flag entries `DELETED` in place; a node whose entries are
//! all deleted is freed, and trimming frees whole nodes.
//!
//! Node boundaries are Redis's: a node takes at most
//! `stream-node-max-entries` entries (live or deleted) and closes when the
//! listpack Redis would have built for it reaches `stream-node-max-bytes`.
//! Each node tracks that listpack size (not its own, smaller, size), so
//! approximate trimming (`~`) and XINFO STREAM's node counts give Redis's
//! answers.

use std::collections::BTreeMap;
use std::fmt;

use smallvec::SmallVec;

use super::stream_groups::ConsumerGroup;

/// A stream entry ID: milliseconds and a sequence number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The next ID (Redis's `streamIncrID`); `None` after the last one.
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous ID (Redis's `streamDecrID`); `None` before `0-0`.
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// The 16 bytes Redis keys its radix tree with (big-endian ms, seq).
    fn rax_key(self) -> [u8; 16] {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.ms.to_be_bytes());
        key[8..].copy_from_slice(&self.seq.to_be_bytes());
        key
    }
}

impl StreamId {
    /// Parses `ms-seq` in plain decimal (the form [`fmt::Display`] writes).
    pub fn from_text(text: &[u8]) -> Option<StreamId> {
        let text = std::str::from_utf8(text).ok()?;
        let (ms, seq) = text.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(StreamId::new(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Node limits: Redis's `stream-node-max-entries` and
/// `stream-node-max-bytes` (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    pub max_entries: u64,
    pub max_bytes: u64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            max_entries: 100,
            max_bytes: 4096,
        }
    }
}

/// The largest listpack Redis builds (`STREAM_LISTPACK_MAX_SIZE`), the
/// node size limit when `stream-node-max-bytes` is 0.
const LISTPACK_MAX_SIZE: u64 = 1 << 30;

/// How XADD picks the new entry's ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddId {
    /// `*`: the time now, or the last ID's successor.
    Auto,
    /// `ms-*`: the given milliseconds, the next free sequence.
    Ms(u64),
    /// A full ID.
    Exact(StreamId),
}

/// Why XADD could not add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// The last possible ID was generated already.
    Exhausted,
    /// The ID is not greater than the last generated one.
    NotGreater,
}

/// What XTRIM (or XADD's trimming) keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// At most this many entries.
    MaxLen(u64),
    /// No entry with a smaller ID.
    MinId(StreamId),
}

const FLAG_DELETED: u8 = 1;
const FLAG_SAME_FIELDS: u8 = 2;

/// A run of entries sharing a master ID and master fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    /// Master fields (`varint count`, then each as `varint len, bytes`),
    /// then the entries.
    buf: Vec<u8>,
    /// Where the entries start in `buf`.
    entries_start: u32,
    master_fields: u32,
    live: u32,
    deleted: u32,
    /// The ID of the node's last entry, live or deleted.
    last_id: StreamId,
    /// The size of Redis's listpack for the same node, less its `count`
    /// and `deleted` integers (they change size as they change).
    listpack_bytes: u64,
}

impl Node {
    fn redis_bytes(&self) -> u64 {
        self.listpack_bytes + lp_int_size(self.live as i64) + lp_int_size(self.deleted as i64)
    }

    fn master(&self) -> &[u8] {
        &self.buf[..self.entries_start as usize]
    }

    /// Decodes the entry at `pos`.
    fn entry_at(&self, master_id: StreamId, pos: usize) -> RawEntry {
        let buf = &self.buf;
        let mut at = pos;
        let head = read_varint128(buf, &mut at);
        let flags = (head & 3) as u8;
        let ms_delta = (head >> 2) as u64;
        let seq = read_varint(buf, &mut at);
        let id = if ms_delta == 0 {
            StreamId::new(master_id.ms, master_id.seq.wrapping_add(seq))
        } else {
            StreamId::new(master_id.ms.wrapping_add(ms_delta), seq)
        };
        let nfields = if flags & FLAG_SAME_FIELDS != 0 {
            self.master_fields as usize
        } else {
            read_varint(buf, &mut at) as usize
        };
        let body = at;
        let strings = if flags & FLAG_SAME_FIELDS != 0 {
            nfields
        } else {
            nfields * 2
        };
        for _ in 0..strings {
            let len = read_varint(buf, &mut at) as usize;
            at += len;
        }
        RawEntry {
            id,
            flags,
            body,
            end: at,
            nfields,
        }
    }

    /// The positions of every entry, in order.
    fn positions(&self, master_id: StreamId) -> SmallVec<[u32; 128]> {
        let mut out = SmallVec::new();
        let mut pos = self.entries_start as usize;
        while pos < self.buf.len() {
            out.push(pos as u32);
            pos = self.entry_at(master_id, pos).end;
        }
        out
    }

    fn view<'a>(&'a self, raw: &RawEntry) -> EntryView<'a> {
        EntryView {
            id: raw.id,
            master: self.master(),
            body: &self.buf[raw.body..raw.end],
            nfields: raw.nfields,
            same_fields: raw.flags & FLAG_SAME_FIELDS != 0,
        }
    }

    /// Flags the entry at `pos` deleted (it must be live).
    fn mark_deleted(&mut self, pos: usize) {
        self.buf[pos] |= FLAG_DELETED;
        self.live -= 1;
        self.deleted += 1;
    }
}

#[derive(Debug, Clone, Copy)]
struct RawEntry {
    id: StreamId,
    flags: u8,
    body: usize,
    end: usize,
    nfields: usize,
}

impl RawEntry {
    fn is_deleted(&self) -> bool {
        self.flags & FLAG_DELETED != 0
    }
}

/// One entry, borrowed from its node.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    pub id: StreamId,
    master: &'a [u8],
    body: &'a [u8],
    nfields: usize,
    same_fields: bool,
}

impl<'a> EntryView<'a> {
    /// How many field/value pairs the entry has.
    pub fn len(&self) -> usize {
        self.nfields
    }

    pub fn is_empty(&self) -> bool {
        self.nfields == 0
    }

    /// The field/value pairs, in the order they were added.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let (master, body, same) = (self.master, self.body, self.same_fields);
        let mut master_at = 0;
        if same {
            read_varint(master, &mut master_at);
        }
        let mut body_at = 0;
        (0..self.nfields).map(move |_| {
            let field = if same {
                read_string(master, &mut master_at)
            } else {
                read_string(body, &mut body_at)
            };
            (field, read_string(body, &mut body_at))
        })
    }
}

/// One entry of a node, live or deleted, as [`StreamValue::for_each_node`]
/// shows it.
#[derive(Debug, Clone)]
pub struct RawNodeEntry<'a> {
    pub id: StreamId,
    pub deleted: bool,
    /// The entry has the node's master fields (Redis's `SAMEFIELDS` flag).
    pub same_fields: bool,
    pub pairs: Vec<(&'a [u8], &'a [u8])>,
}

/// A stream.
///
/// ```
/// use larder::store::types::{AddId, StreamId, StreamValue, Trim};
///
/// let mut stream = StreamValue::new();
/// let id = stream.add(AddId::Exact(StreamId::new(5, 1)), &[b"f", b"v"], 0).unwrap();
/// assert_eq!(id.to_string(), "5-1");
/// stream.add(AddId::Ms(5), &[b"f", b"w"], 0).unwrap(); // 5-2
/// assert_eq!(stream.len(), 2);
/// assert_eq!(stream.trim(Trim::MaxLen(1), false, 0), 1);
/// let mut ids = vec![];
/// stream.range(StreamId::MIN, StreamId::MAX, false, 0, |e| ids.push(e.id));
/// assert_eq!(ids, [StreamId::new(5, 2)]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamValue {
    nodes: BTreeMap<StreamId, Node>,
    length: u64,
    last_id: StreamId,
    first_id: StreamId,
    max_deleted_id: StreamId,
    entries_added: u64,
    limits: NodeLimits,
    groups: BTreeMap<Box<[u8]>, ConsumerGroup>,
}

impl Default for StreamValue {
    fn default() -> Self {
        StreamValue::with_limits(NodeLimits::default())
    }
}

impl StreamValue {
    pub fn new() -> Self {
        StreamValue::default()
    }

    pub fn with_limits(limits: NodeLimits) -> Self {
        StreamValue {
            nodes: BTreeMap::new(),
            length: 0,
            last_id: StreamId::MIN,
            first_id: StreamId::MIN,
            max_deleted_id: StreamId::MIN,
            entries_added: 0,
            limits,
            groups: BTreeMap::new(),
        }
    }

    /// Live entries.
    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The last ID generated (XADD) or set (XSETID).
    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    /// The ID of the first live entry as last recorded (0-0 when empty).
    pub fn first_id(&self) -> StreamId {
        self.first_id
    }

    pub fn max_deleted_id(&self) -> StreamId {
        self.max_deleted_id
    }

    pub fn entries_added(&self) -> u64 {
        self.entries_added
    }

    pub fn groups(&self) -> &BTreeMap<Box<[u8]>, ConsumerGroup> {
        &self.groups
    }

    pub fn group(&self, name: &[u8]) -> Option<&ConsumerGroup> {
        self.groups.get(name)
    }

    pub fn group_mut(&mut self, name: &[u8]) -> Option<&mut ConsumerGroup> {
        self.groups.get_mut(name)
    }

    /// XGROUP CREATE: false if a group of that name exists.
    pub fn create_group(&mut self, name: &[u8], group: ConsumerGroup) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        self.groups.insert(Box::from(name), group);
        true
    }

    /// XGROUP DESTROY: false if there is no such group.
    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        self.groups.remove(name).is_some()
    }

    /// Whether a live entry has the ID `id`.
    pub fn entry_exists(&self, id: StreamId) -> bool {
        self.range(id, id, false, 1, |_| {}) == 1
    }

    /// Redis's `streamRangeHasTombstones` from `start` to the end: whether
    /// a deleted entry may lie in that range.
    pub fn range_has_tombstones(&self, start: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_id == StreamId::MIN {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id
    }

    /// Redis's `streamEstimateDistanceFromFirstEverEntry`: how many
    /// entries were added up to `id`, when that can be known.
    pub fn entries_up_to(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted_id == StreamId::MIN || self.max_deleted_id < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return Some(self.entries_added - self.length),
                std::cmp::Ordering::Equal => return Some(self.entries_added - self.length + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// A group's lag (Redis's `streamReplyWithCGLag`): entries added and
    /// not yet read by the group, when that can be known.
    pub fn group_lag(&self, group: &ConsumerGroup) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        let read = match group.entries_read {
            Some(read) if !self.range_has_tombstones(group.last_delivered) => read,
            _ => self.entries_up_to(group.last_delivered)?,
        };
        Some(self.entries_added.wrapping_sub(read))
    }

    /// XREADGROUP `>`: visits up to `count` (0: all) entries after the
    /// group's last delivered ID, advances the group over them (with its
    /// `entries-read`) and, unless `noack`, makes them pending for
    /// `consumer`. Returns how many were visited; `None` if the group does
    /// not exist.
    pub fn read_group(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        count: u64,
        noack: bool,
        now_ms: u64,
        mut visit: impl FnMut(EntryView<'_>),
    ) -> Option<u64> {
        let last = self.groups.get(group)?.last_delivered;
        let mut delivered: Vec<StreamId> = Vec::new();
        if let Some(start) = last.next() {
            self.range(start, StreamId::MAX, false, count, |entry| {
                delivered.push(entry.id);
                visit(entry);
            });
        }
        // Each delivered ID's counter, computed before the group changes.
        let counters: Vec<(StreamId, bool, Option<u64>)> = delivered
            .iter()
            .map(|&id| (id, self.range_has_tombstones(id), self.entries_up_to(id)))
            .collect();
        let entries_added = self.entries_added;
        let group = self.groups.get_mut(group)?;
        for (id, tombstones, estimate) in counters {
            if id > group.last_delivered {
                group.entries_read = match group.entries_read {
                    Some(read) if !tombstones => Some(read + 1),
                    _ if entries_added > 0 => estimate,
                    current => current,
                };
                group.last_delivered = id;
            }
            if !noack {
                group.deliver(id, consumer, now_ms);
            }
        }
        Some(delivered.len() as u64)
    }

    /// Visits the entry `id` if it is live; returns whether it was.
    pub fn visit_entry(&self, id: StreamId, visit: impl FnMut(EntryView<'_>)) -> bool {
        self.range(id, id, false, 1, visit) == 1
    }

    /// XSETID: the caller checked the new values against the stream.
    pub fn set_last_id(&mut self, id: StreamId) {
        self.last_id = id;
    }

    pub fn set_entries_added(&mut self, entries_added: u64) {
        self.entries_added = entries_added;
    }

    pub fn set_max_deleted_id(&mut self, id: StreamId) {
        self.max_deleted_id = id;
    }

    /// Rebuilds a stream from its live entries (in ID order, each with at
    /// least one field/value pair) and its counters, as write-behind reads
    /// one back. `None` if the parts contradict each other.
    pub fn restore<'a>(
        entries: impl IntoIterator<Item = (StreamId, Vec<&'a [u8]>)>,
        last_id: StreamId,
        entries_added: u64,
        max_deleted_id: StreamId,
    ) -> Option<StreamValue> {
        let mut stream = StreamValue::new();
        for (id, fields_and_values) in entries {
            let well_formed = !fields_and_values.is_empty() && fields_and_values.len() % 2 == 0;
            if !well_formed || id == StreamId::MIN || (stream.length > 0 && id <= stream.last_id) {
                return None;
            }
            stream.append(id, &fields_and_values);
        }
        if stream.length > 0 && last_id < stream.last_id || entries_added < stream.length {
            return None;
        }
        stream.last_id = last_id;
        stream.entries_added = entries_added;
        stream.max_deleted_id = max_deleted_id;
        Some(stream)
    }

    /// Every node as Redis's stream listpack lays it out (the RDB codec
    /// writes them): its master ID, its master fields, and each entry, live
    /// or deleted, in order.
    pub fn for_each_node<'s>(
        &'s self,
        mut visit: impl FnMut(StreamId, &[&'s [u8]], &[RawNodeEntry<'s>]),
    ) {
        for (&master_id, node) in &self.nodes {
            let master = node.master();
            let mut at = 0;
            let count = read_varint(master, &mut at);
            let fields: Vec<&[u8]> = (0..count).map(|_| read_string(master, &mut at)).collect();
            let entries: Vec<RawNodeEntry<'s>> = node
                .positions(master_id)
                .iter()
                .map(|&pos| {
                    let raw = node.entry_at(master_id, pos as usize);
                    let view = node.view(&raw);
                    RawNodeEntry {
                        id: raw.id,
                        deleted: raw.is_deleted(),
                        same_fields: raw.flags & FLAG_SAME_FIELDS != 0,
                        pairs: view.pairs().collect(),
                    }
                })
                .collect();
            visit(master_id, &fields, &entries);
        }
    }

    /// Nodes (Redis's `radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Approximate heap bytes.
    pub fn heap_size(&self) -> usize {
        // A BTreeMap leaf holds up to 11 key/value pairs; count a slot per
        // node plus the map's per-leaf overhead, amortized.
        let per_node = std::mem::size_of::<(StreamId, Node)>() + 16;
        self.nodes
            .values()
            .map(|node| node.buf.capacity() + per_node)
            .sum::<usize>()
            + self
                .groups
                .iter()
                .map(|(name, group)| name.len() + 48 + group.heap_size())
                .sum::<usize>()
    }

    /// Adds an entry of `fields_and_values` (alternating, an even count of
    /// at least 2) under the ID `id` asks for; `now_ms` for `*`.
    pub fn add(
        &mut self,
        id: AddId,
        fields_and_values: &[&[u8]],
        now_ms: u64,
    ) -> Result<StreamId, AddError> {
        if self.last_id == StreamId::MAX {
            return Err(AddError::Exhausted);
        }
        let new_id = match id {
            AddId::Auto => {
                if now_ms > self.last_id.ms {
                    StreamId::new(now_ms, 0)
                } else {
                    // Not MAX (checked above), so there is a successor.
                    self.last_id.next().unwrap_or(StreamId::MAX)
                }
            }
            AddId::Ms(ms) if ms == self.last_id.ms => {
                if self.last_id.seq == u64::MAX {
                    return Err(AddError::NotGreater);
                }
                StreamId::new(ms, self.last_id.seq + 1)
            }
            AddId::Ms(ms) => StreamId::new(ms, 0),
            AddId::Exact(id) => id,
        };
        if new_id <= self.last_id {
            return Err(AddError::NotGreater);
        }
        self.append(new_id, fields_and_values);
        Ok(new_id)
    }

    /// Appends an entry with an ID greater than every ID so far.
    fn append(&mut self, id: StreamId, fields_and_values: &[&[u8]]) {
        let nfields = fields_and_values.len() / 2;
        let payload: u64 = fields_and_values.iter().map(|s| s.len() as u64).sum();
        let max_bytes = match self.limits.max_bytes {
            0 => LISTPACK_MAX_SIZE,
            n => n.min(LISTPACK_MAX_SIZE),
        };
        let max_entries = self.limits.max_entries;
        let tail_fits = self.nodes.last_key_value().is_some_and(|(_, node)| {
            node.redis_bytes() + payload < max_bytes
                && (max_entries == 0 || ((node.live + node.deleted) as u64) < max_entries)
        });
        if !tail_fits {
            // The closed tail will not grow again: give back its slack.
            if let Some(mut tail) = self.nodes.last_entry() {
                tail.get_mut().buf.shrink_to_fit();
            }
            let mut buf = Vec::with_capacity(64);
            write_varint(&mut buf, nfields as u64);
            let mut listpack_bytes = 7 + lp_int_size(nfields as i64) + lp_int_size(0);
            for field in fields_and_values.iter().step_by(2) {
                write_string(&mut buf, field);
                listpack_bytes += lp_string_size(field);
            }
            let entries_start = buf.len() as u32;
            self.nodes.insert(
                id,
                Node {
                    buf,
                    entries_start,
                    master_fields: nfields as u32,
                    live: 0,
                    deleted: 0,
                    last_id: id,
                    listpack_bytes,
                },
            );
        }
        let (&master_id, node) = self.nodes.iter_mut().next_back().expect("a tail node");
        let same = node.master_fields as usize == nfields && {
            let mut at = 0;
            read_varint(&node.buf, &mut at);
            fields_and_values
                .iter()
                .step_by(2)
                .all(|field| read_string(&node.buf, &mut at) == *field)
        };
        let flags = if same { FLAG_SAME_FIELDS } else { 0 };
        let ms_delta = id.ms - master_id.ms;
        // The flags share the first varint's low bits: one byte less per
        // entry. (Bit 0 of the first byte is bit 0 of the value, so
        // deletion flips it in place.)
        write_varint128(&mut node.buf, (ms_delta as u128) << 2 | flags as u128);
        write_varint(
            &mut node.buf,
            if ms_delta == 0 {
                id.seq - master_id.seq
            } else {
                id.seq
            },
        );
        let mut lp = lp_int_size(flags as i64)
            + lp_int_size(ms_delta as i64)
            + lp_int_size(id.seq.wrapping_sub(master_id.seq) as i64);
        let mut lp_count = nfields as i64 + 3;
        if same {
            for value in fields_and_values.iter().skip(1).step_by(2) {
                write_string(&mut node.buf, value);
                lp += lp_string_size(value);
            }
        } else {
            write_varint(&mut node.buf, nfields as u64);
            lp += lp_int_size(nfields as i64);
            lp_count += nfields as i64 + 1;
            for item in fields_and_values {
                write_string(&mut node.buf, item);
                lp += lp_string_size(item);
            }
        }
        lp += lp_int_size(lp_count);
        node.listpack_bytes += lp;
        node.live += 1;
        node.last_id = id;
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
    }

    /// The node that would hold `id`.
    fn node_for(&self, id: StreamId) -> Option<(StreamId, &Node)> {
        self.nodes
            .range(..=id)
            .next_back()
            .map(|(&key, node)| (key, node))
    }

    /// Deletes the entry `id`; false if there is none (XDEL's one step:
    /// see [`StreamValue::delete_ids`]).
    fn delete_one(&mut self, id: StreamId) -> bool {
        let Some((master_id, node)) = self.node_for(id) else {
            return false;
        };
        if id > node.last_id {
            return false;
        }
        let mut pos = node.entries_start as usize;
        let found = loop {
            if pos >= node.buf.len() {
                break None;
            }
            let raw = node.entry_at(master_id, pos);
            if raw.id >= id {
                break (raw.id == id && !raw.is_deleted()).then_some(pos);
            }
            pos = raw.end;
        };
        let Some(pos) = found else {
            return false;
        };
        let node = self.nodes.get_mut(&master_id).expect("node found above");
        node.mark_deleted(pos);
        if node.live == 0 {
            self.nodes.remove(&master_id);
        }
        self.length -= 1;
        true
    }

    /// XDEL: deletes each of `ids` there is; returns how many. Keeps the
    /// first ID and the largest deleted ID as Redis does.
    pub fn delete_ids(&mut self, ids: &[StreamId]) -> u64 {
        let mut deleted = 0;
        let mut first_entry = false;
        for &id in ids {
            if self.delete_one(id) {
                first_entry |= id == self.first_id;
                if id > self.max_deleted_id {
                    self.max_deleted_id = id;
                }
                deleted += 1;
            }
        }
        if deleted > 0 {
            if self.length == 0 {
                self.first_id = StreamId::MIN;
            } else if first_entry {
                self.first_id = self.first_live_id().unwrap_or(StreamId::MIN);
            }
        }
        deleted
    }

    /// Redis's `streamTrim`: removes entries from the head as `trim` says;
    /// `approx` removes whole nodes only; `limit` (0: none) caps the
    /// entries removed. Returns how many were removed.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: u64) -> u64 {
        let mut removed = 0u64;
        while let Some(mut first) = self.nodes.first_entry() {
            if let Trim::MaxLen(max) = trim {
                if self.length <= max {
                    break;
                }
            }
            let entries = first.get().live as u64;
            if limit > 0 && removed + entries > limit {
                break;
            }
            let remove_node = match trim {
                Trim::MaxLen(max) => self.length - entries >= max,
                Trim::MinId(min) => first.get().last_id < min,
            };
            if remove_node {
                first.remove();
                self.length -= entries;
                removed += entries;
                continue;
            }
            if approx {
                break;
            }
            let master_id = *first.key();
            let node = first.get_mut();
            let mut pos = node.entries_start as usize;
            while pos < node.buf.len() {
                let raw = node.entry_at(master_id, pos);
                let stop = match trim {
                    Trim::MaxLen(max) => self.length <= max,
                    Trim::MinId(min) => raw.id >= min,
                };
                if stop {
                    break;
                }
                if !raw.is_deleted() {
                    node.mark_deleted(pos);
                    self.length -= 1;
                    removed += 1;
                }
                pos = raw.end;
            }
            break;
        }
        self.first_id = self.first_live_id().unwrap_or(StreamId::MIN);
        removed
    }

    fn first_live_id(&self) -> Option<StreamId> {
        let mut first = None;
        self.range(StreamId::MIN, StreamId::MAX, false, 1, |entry| {
            first = Some(entry.id)
        });
        first
    }

    /// The ID of the last live entry (Redis's `streamLastValidID`).
    pub fn last_live_id(&self) -> Option<StreamId> {
        let mut last = None;
        self.range(StreamId::MIN, StreamId::MAX, true, 1, |entry| {
            last = Some(entry.id)
        });
        last
    }

    /// Calls `visit` with each live entry whose ID is in `start..=end`, in
    /// order (`rev`: from the end), at most `count` of them (0: all).
    /// Returns how many were visited.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        count: u64,
        mut visit: impl FnMut(EntryView<'_>),
    ) -> u64 {
        if start > end {
            return 0;
        }
        let mut seen = 0u64;
        // The node holding `start` may begin before it.
        let from = self.node_for(start).map_or(start, |(key, _)| key);
        let nodes = self.nodes.range(from..=end);
        let mut emit = |node: &Node, raw: &RawEntry| -> bool {
            if raw.is_deleted() || raw.id < start || raw.id > end {
                return true;
            }
            visit(node.view(raw));
            seen += 1;
            count == 0 || seen < count
        };
        if rev {
            for (&master_id, node) in nodes.rev() {
                if node.last_id < start {
                    break;
                }
                for &pos in node.positions(master_id).iter().rev() {
                    let raw = node.entry_at(master_id, pos as usize);
                    if raw.id < start {
                        break;
                    }
                    if !emit(node, &raw) {
                        return seen;
                    }
                }
            }
        } else {
            for (&master_id, node) in nodes {
                if node.last_id < start {
                    continue;
                }
                let mut pos = node.entries_start as usize;
                while pos < node.buf.len() {
                    let raw = node.entry_at(master_id, pos);
                    if raw.id > end {
                        return seen;
                    }
                    if !emit(node, &raw) {
                        return seen;
                    }
                    pos = raw.end;
                }
            }
        }
        seen
    }

    /// The number of nodes Redis's radix tree would have for this stream's
    /// node keys (XINFO STREAM's `radix-tree-nodes`): one per branch, one
    /// per compressed run of single-child bytes, one per key.
    pub fn rax_node_count(&self) -> u64 {
        let keys: Vec<[u8; 16]> = self.nodes.keys().map(|id| id.rax_key()).collect();
        if keys.is_empty() {
            return 1;
        }
        rax_nodes(&keys, 0)
    }
}

/// Rax nodes below depth `depth` for sorted, distinct 16-byte `keys`.
fn rax_nodes(keys: &[[u8; 16]], depth: usize) -> u64 {
    if keys.len() == 1 {
        return if depth < 16 { 2 } else { 1 };
    }
    let (first, last) = (&keys[0], &keys[keys.len() - 1]);
    let mut split = depth;
    while first[split] == last[split] {
        split += 1;
    }
    let mut nodes = if split > depth { 2 } else { 1 };
    let mut group = 0;
    while group < keys.len() {
        let byte = keys[group][split];
        let end = group + keys[group..].partition_point(|key| key[split] == byte);
        nodes += rax_nodes(&keys[group..end], split + 1);
        group = end;
    }
    nodes
}

// ---------------------------------------------------------------- encoding

fn write_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn read_varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = buf[*at];
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

fn write_varint128(buf: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn read_varint128(buf: &[u8], at: &mut usize) -> u128 {
    let mut value = 0u128;
    let mut shift = 0;
    loop {
        let byte = buf[*at];
        *at += 1;
        value |= ((byte & 0x7f) as u128) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

fn write_string(buf: &mut Vec<u8>, s: &[u8]) {
    write_varint(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

fn read_string<'a>(buf: &'a [u8], at: &mut usize) -> &'a [u8] {
    let len = read_varint(buf, at) as usize;
    let s = &buf[*at..*at + len];
    *at += len;
    s
}

// ------------------------------------------- Redis's listpack sizes

/// Bytes of a listpack element's back-length.
fn lp_backlen_size(len: u64) -> u64 {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Bytes of an integer element in a listpack.
fn lp_int_size(v: i64) -> u64 {
    let enc = if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if (-32768..=32767).contains(&v) {
        3
    } else if (-8388608..=8388607).contains(&v) {
        4
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        5
    } else {
        9
    };
    enc + 1
}

/// Bytes of a string element in a listpack (stored as an integer if it is
/// one, as `lpAppend` does).
fn lp_string_size(s: &[u8]) -> u64 {
    if let Some(v) = crate::numbers::strict_i64(s) {
        return lp_int_size(v);
    }
    let len = s.len() as u64;
    let enc = if len < 64 {
        1 + len
    } else if len < 4096 {
        2 + len
    } else {
        5 + len
    };
    enc + lp_backlen_size(enc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    fn ids(stream: &StreamValue, rev: bool) -> Vec<StreamId> {
        let mut out = vec![];
        stream.range(StreamId::MIN, StreamId::MAX, rev, 0, |e| out.push(e.id));
        out
    }

    #[test]
    fn ids_follow_redis_rules() {
        let mut s = StreamValue::new();
        assert_eq!(s.add(AddId::Ms(0), &[b"f", b"v"], 0), Ok(id(0, 1)));
        assert_eq!(s.add(AddId::Auto, &[b"f", b"v"], 0), Ok(id(0, 2)));
        assert_eq!(s.add(AddId::Auto, &[b"f", b"v"], 7), Ok(id(7, 0)));
        assert_eq!(s.add(AddId::Ms(7), &[b"f", b"v"], 0), Ok(id(7, 1)));
        assert_eq!(s.add(AddId::Ms(9), &[b"f", b"v"], 0), Ok(id(9, 0)));
        assert_eq!(
            s.add(AddId::Exact(id(9, 0)), &[b"f", b"v"], 0),
            Err(AddError::NotGreater)
        );
        assert_eq!(
            s.add(AddId::Ms(8), &[b"f", b"v"], 0),
            Err(AddError::NotGreater)
        );
        s.set_last_id(id(10, u64::MAX));
        assert_eq!(s.add(AddId::Auto, &[b"f", b"v"], 0), Ok(id(11, 0)));
        s.set_last_id(id(12, u64::MAX));
        assert_eq!(
            s.add(AddId::Ms(12), &[b"f", b"v"], 0),
            Err(AddError::NotGreater)
        );
        s.set_last_id(StreamId::MAX);
        assert_eq!(
            s.add(AddId::Auto, &[b"f", b"v"], 0),
            Err(AddError::Exhausted)
        );
        assert_eq!(s.len(), 6);
        assert_eq!(s.entries_added(), 6);
    }

    #[test]
    fn entries_keep_fields_values_and_order() {
        let mut s = StreamValue::new();
        s.add(AddId::Exact(id(1, 0)), &[b"a", b"1", b"b", b"2"], 0)
            .unwrap();
        s.add(AddId::Exact(id(1, 1)), &[b"a", b"3", b"b", b"4"], 0)
            .unwrap();
        s.add(AddId::Exact(id(2, 0)), &[b"x", b""], 0).unwrap();
        let mut seen = vec![];
        s.range(id(1, 1), StreamId::MAX, false, 0, |e| {
            seen.push((
                e.id,
                e.pairs()
                    .map(|(f, v)| (f.to_vec(), v.to_vec()))
                    .collect::<Vec<_>>(),
            ))
        });
        assert_eq!(
            seen,
            vec![
                (
                    id(1, 1),
                    vec![
                        (b"a".to_vec(), b"3".to_vec()),
                        (b"b".to_vec(), b"4".to_vec())
                    ]
                ),
                (id(2, 0), vec![(b"x".to_vec(), b"".to_vec())]),
            ]
        );
        assert_eq!(ids(&s, true), vec![id(2, 0), id(1, 1), id(1, 0)]);
    }

    #[test]
    fn nodes_split_at_redis_limits_and_free_when_emptied() {
        let mut s = StreamValue::new();
        for i in 1..=250 {
            s.add(AddId::Exact(id(i, 0)), &[b"f", b"v"], 0).unwrap();
        }
        assert_eq!(s.node_count(), 3);
        // Deleting all of the first node's entries frees it.
        let first: Vec<StreamId> = (1..=100).map(|i| id(i, 0)).collect();
        assert_eq!(s.delete_ids(&first), 100);
        assert_eq!(s.node_count(), 2);
        assert_eq!(s.first_id(), id(101, 0));
        assert_eq!(s.max_deleted_id(), id(100, 0));
        // ~ removes whole nodes only.
        assert_eq!(s.trim(Trim::MaxLen(120), true, 0), 0);
        assert_eq!(s.trim(Trim::MaxLen(50), true, 0), 100);
        assert_eq!(s.len(), 50);
        // Big values close a node by bytes.
        let mut big = StreamValue::new();
        let value = vec![b'x'; 1000];
        for i in 1..=10 {
            big.add(AddId::Exact(id(i, 0)), &[b"f", &value], 0).unwrap();
        }
        assert_eq!(big.node_count(), 3);
    }

    #[test]
    fn huge_id_deltas_round_trip_and_delete() {
        let mut s = StreamValue::new();
        s.add(AddId::Exact(id(1, 7)), &[b"f", b"v"], 0).unwrap();
        s.add(AddId::Exact(id(u64::MAX, 2)), &[b"f", b"w"], 0)
            .unwrap();
        s.add(AddId::Exact(StreamId::MAX), &[b"g", b"x"], 0)
            .unwrap();
        assert_eq!(s.node_count(), 1);
        assert_eq!(
            ids(&s, false),
            vec![id(1, 7), id(u64::MAX, 2), StreamId::MAX]
        );
        assert_eq!(s.delete_ids(&[id(u64::MAX, 2)]), 1);
        assert_eq!(ids(&s, true), vec![StreamId::MAX, id(1, 7)]);
        let mut pairs = vec![];
        s.range(StreamId::MAX, StreamId::MAX, false, 0, |e| {
            pairs.extend(e.pairs().map(|(f, v)| (f.to_vec(), v.to_vec())))
        });
        assert_eq!(pairs, vec![(b"g".to_vec(), b"x".to_vec())]);
    }

    #[test]
    fn rax_node_counts() {
        let mut s = StreamValue::new();
        assert_eq!(s.rax_node_count(), 1);
        s.add(AddId::Exact(id(1, 1)), &[b"f", b"v"], 0).unwrap();
        assert_eq!(s.rax_node_count(), 2);
    }

    /// The model: a sorted map of entries.
    type Model = BTreeMap<StreamId, Vec<(Vec<u8>, Vec<u8>)>>;

    #[derive(Debug, Clone)]
    enum Op {
        Add { ms_step: u64, fields: Vec<(u8, u8)> },
        Delete(usize),
        TrimMaxLen(u64),
        TrimMinId(usize),
        Range(usize, usize, bool, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u64..3, prop::collection::vec((0u8..3, any::<u8>()), 1..4))
                .prop_map(|(ms_step, fields)| Op::Add { ms_step, fields }),
            2 => any::<usize>().prop_map(Op::Delete),
            1 => (0u64..40).prop_map(Op::TrimMaxLen),
            1 => any::<usize>().prop_map(Op::TrimMinId),
            2 => (any::<usize>(), any::<usize>(), any::<bool>(), 0u64..5)
                .prop_map(|(a, b, rev, count)| Op::Range(a, b, rev, count)),
        ]
    }

    fn pick(model: &Model, last: StreamId, n: usize) -> StreamId {
        // Mostly existing IDs, sometimes absent ones.
        let keys: Vec<StreamId> = model.keys().copied().collect();
        if keys.is_empty() || n.is_multiple_of(5) {
            StreamId::new((n as u64 / 7) % (last.ms + 2), n as u64 % 3)
        } else {
            keys[n % keys.len()]
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn stream_matches_model(ops in prop::collection::vec(op(), 1..300)) {
            // Small nodes so that splits, frees and partial trims happen.
            let mut s = StreamValue::with_limits(NodeLimits { max_entries: 5, max_bytes: 120 });
            let mut model = Model::new();
            let mut now = 1;
            for op in ops {
                match op {
                    Op::Add { ms_step, fields } => {
                        now += ms_step;
                        let owned: Vec<Vec<u8>> = fields
                            .iter()
                            .flat_map(|&(f, v)| [vec![b'f', f], vec![v]])
                            .collect();
                        let args: Vec<&[u8]> = owned.iter().map(|x| &x[..]).collect();
                        let id = s.add(AddId::Auto, &args, now).unwrap();
                        prop_assert!(model.last_key_value().is_none_or(|(last, _)| *last < id));
                        model.insert(id, owned.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect());
                    }
                    Op::Delete(n) => {
                        let target = pick(&model, s.last_id(), n);
                        let expected = model.remove(&target).is_some() as u64;
                        prop_assert_eq!(s.delete_ids(&[target]), expected);
                    }
                    Op::TrimMaxLen(max) => {
                        let excess = (model.len() as u64).saturating_sub(max);
                        let doomed: Vec<StreamId> = model.keys().take(excess as usize).copied().collect();
                        for id in &doomed { model.remove(id); }
                        prop_assert_eq!(s.trim(Trim::MaxLen(max), false, 0), excess);
                    }
                    Op::TrimMinId(n) => {
                        let min = pick(&model, s.last_id(), n);
                        let doomed: Vec<StreamId> = model.range(..min).map(|(k, _)| *k).collect();
                        for id in &doomed { model.remove(id); }
                        prop_assert_eq!(s.trim(Trim::MinId(min), false, 0), doomed.len() as u64);
                    }
                    Op::Range(a, b, rev, count) => {
                        let (a, b) = (pick(&model, s.last_id(), a), pick(&model, s.last_id(), b));
                        let mut got = vec![];
                        s.range(a, b, rev, count, |e| {
                            got.push((e.id, e.pairs().map(|(f, v)| (f.to_vec(), v.to_vec())).collect::<Vec<_>>()))
                        });
                        let mut want: Vec<_> = if a <= b {
                            model.range(a..=b).map(|(k, v)| (*k, v.clone())).collect()
                        } else {
                            vec![]
                        };
                        if rev { want.reverse(); }
                        if count > 0 { want.truncate(count as usize); }
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(s.len(), model.len() as u64);
                prop_assert_eq!(s.first_id(), model.keys().next().copied().unwrap_or_default());
                prop_assert_eq!(s.last_live_id(), model.keys().next_back().copied());
                // No node is left without live entries by XDEL.
                prop_assert!(s.nodes.values().all(|n| n.live + n.deleted > 0));
            }
        }

        /// The approximate trim keeps a suffix and removes whole nodes only.
        #[test]
        fn approximate_trim_removes_whole_nodes(n in 1u64..200, max in 0u64..200) {
            let mut s = StreamValue::with_limits(NodeLimits { max_entries: 10, max_bytes: 0 });
            for i in 1..=n {
                s.add(AddId::Exact(StreamId::new(i, 0)), &[b"f", b"v"], 0).unwrap();
            }
            let removed = s.trim(Trim::MaxLen(max), true, 0);
            prop_assert!(removed.is_multiple_of(10) || removed == n);
            prop_assert!(s.len() >= max.min(n));
            prop_assert!(s.len() < max + 10 || s.len() == n);
            prop_assert_eq!(ids(&s, false).len() as u64, s.len());
        }
    }
}
