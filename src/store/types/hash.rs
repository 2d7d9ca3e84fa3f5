//! Hashes: fields and their values, with an optional expiry time per field
//! (Redis 7.4's hash field expiration).
//!
//! The fields live in a vector in iteration order with a hash index of
//! positions beside it (an `IndexedVec`), which gives O(1) lookups, O(1) access by
//! position (for HRANDFIELD and HSCAN) and a stable iteration order. The
//! index grows incrementally (see `slot_index`), so that no one HSET pays
//! for rehashing a million fields. A field and its value share one
//! allocation ([`FieldEntry`]): HGET on a large hash is bound by cache
//! misses, and this saves one (and an allocation per field). Field TTLs, when a hash has any, live beside it in a
//! second structure ordered by time, so that due fields are found without a
//! scan and hashes without TTLs pay one null pointer for the feature.
//!
//! Expired fields stay stored until something reclaims them, as in Redis: the
//! commands that name a field reclaim it when they touch it, the active
//! expiry cycle reclaims them in the background (`Db::expire_due`), and every
//! reader skips them meanwhile. [`HashValue::len`] counts them until then,
//! which is what Redis 7.4's HLEN reports.
//!
//! Order: while a hash is small (Redis's listpack encoding), removing a field
//! shifts the later ones down, so iteration order is Redis's listpack order
//! (insertion order, an updated field keeps its place). Once it is large
//! (Redis's hashtable encoding, where Redis's own order is its hash table's),
//! removal moves the last field into the hole: O(1), and the property HSCAN's
//! cursor relies on (see [`HashValue::scan`]).

use std::collections::{BTreeSet, HashMap};

use foldhash::fast::RandomState;

use super::slot_index::{IndexedVec, Keyed, PrefetchStep};
use super::thin_bytes::{decode_len, encode_len, ThinBytes};

/// Redis 7.0's `hash-max-listpack-entries` default (512): more fields than this and a
/// hash is reported as `hashtable`.
pub const LISTPACK_MAX_ENTRIES: usize = 512;
/// Redis's `hash-max-listpack-value` default: a longer field or value and a
/// hash is reported as `hashtable`.
pub const LISTPACK_MAX_VALUE: usize = 64;

type Bytes = Box<[u8]>;

/// A field and its value in one allocation behind an 8-byte pointer: the
/// field's length (LEB128: one byte below 128), the field, the value.
#[derive(Clone)]
struct FieldEntry(ThinBytes);

impl FieldEntry {
    fn new(field: &[u8], value: &[u8]) -> Self {
        let (field_len, prefix) = encode_len(field.len());
        FieldEntry(ThinBytes::concat(&[&field_len[..prefix], field, value]))
    }

    fn split(&self) -> (&[u8], &[u8]) {
        let (at, field_len) = decode_len(&self.0);
        self.0[at..].split_at(field_len)
    }

    fn field(&self) -> &[u8] {
        self.split().0
    }

    fn value(&self) -> &[u8] {
        self.split().1
    }

    /// Replaces the value, in place when the length is unchanged.
    fn set_value(&mut self, value: &[u8]) {
        let value_at = self.0.len() - self.value().len();
        if self.0.len() - value_at == value.len() {
            self.0.as_bytes_mut()[value_at..].copy_from_slice(value);
        } else {
            *self = FieldEntry::new(self.field(), value);
        }
    }
}

impl Keyed for FieldEntry {
    fn key(&self) -> &[u8] {
        self.field()
    }

    fn key_address(&self) -> *const u8 {
        // The field starts a few bytes in: its lengths come first.
        self.0.address()
    }
}

impl std::fmt::Debug for FieldEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (field, value) = self.split();
        write!(
            f,
            "{:?}: {:?}",
            String::from_utf8_lossy(field),
            String::from_utf8_lossy(value)
        )
    }
}

/// A hash of fields to values, with optional per-field expiry times (Unix
/// milliseconds; a field is gone once the clock is past its time, as keys are).
#[derive(Debug, Clone, Default)]
pub struct HashValue {
    fields: IndexedVec<FieldEntry>,
    ttls: Option<Box<FieldTtls>>,
    /// Redis never converts a hash back to a listpack: once it outgrew the
    /// listpack limits it stays a hashtable, whatever is removed later.
    hashtable: bool,
    /// A field-expiry command ran on this hash while it was a listpack, which
    /// Redis 7.4 turns into a `listpackex` for good.
    listpack_ex: bool,
}

/// The expiry times of the fields that have one, by field and by time.
#[derive(Debug, Clone, Default, PartialEq)]
struct FieldTtls {
    by_field: HashMap<Bytes, u64, RandomState>,
    by_time: BTreeSet<(u64, Bytes)>,
}

impl FieldTtls {
    fn remove(&mut self, field: &[u8]) -> Option<u64> {
        let (name, at) = self.by_field.remove_entry(field)?;
        self.by_time.remove(&(at, name));
        Some(at)
    }

    fn set(&mut self, field: &[u8], at: u64) {
        self.remove(field);
        self.by_field.insert(Bytes::from(field), at);
        self.by_time.insert((at, Bytes::from(field)));
    }

    fn is_empty(&self) -> bool {
        self.by_field.is_empty()
    }
}

/// Equal when they hold the same fields with the same values and TTLs, in
/// any order (as maps compare).
impl PartialEq for HashValue {
    fn eq(&self, other: &Self) -> bool {
        self.fields.len() == other.fields.len()
            && self.fields.as_slice().iter().all(|entry| {
                let (field, value) = entry.split();
                other.fields.get(field).map(FieldEntry::value) == Some(value)
            })
            && self.ttls == other.ttls
            && self.hashtable == other.hashtable
            && self.listpack_ex == other.listpack_ex
    }
}

impl HashValue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored fields, including expired ones not reclaimed yet (what
    /// Redis 7.4's HLEN reports).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The hash a lookup of `field` uses, for [`HashValue::prefetch_field`].
    pub fn field_hash(&self, field: &[u8]) -> u64 {
        self.fields.key_hash(field)
    }

    /// One step of a batched lookup of the field hashed as `hash` (see
    /// `Store::prefetch`).
    pub fn prefetch_field(&self, hash: u64, step: PrefetchStep) {
        self.fields.prefetch(hash, step);
    }

    pub fn heap_size(&self) -> usize {
        let fields = self.fields.heap_size()
            + self
                .fields
                .as_slice()
                .iter()
                .map(|e| e.0.len())
                .sum::<usize>();
        let ttls = self.ttls.as_ref().map_or(0, |t| {
            t.by_field.keys().map(|f| 2 * f.len() + 80).sum::<usize>()
        });
        fields + ttls
    }

    /// The encoding Redis 7.4 would report (OBJECT ENCODING).
    pub fn encoding(&self) -> &'static str {
        if self.hashtable {
            "hashtable"
        } else if self.listpack_ex {
            "listpackex"
        } else {
            "listpack"
        }
    }

    /// Whether the hash is still within the listpack limits (then replies
    /// list it in insertion order and HSCAN returns it in one call, as Redis
    /// does).
    pub fn is_small(&self) -> bool {
        !self.hashtable
    }

    /// Records that `count` fields are about to be set at once: Redis
    /// converts a listpack to a hashtable up front when a command sets more
    /// fields than the listpack limit, duplicates or not.
    pub fn reserve_fields(&mut self, count: usize) {
        if count > LISTPACK_MAX_ENTRIES {
            self.hashtable = true;
        }
        self.fields.reserve(count.min(LISTPACK_MAX_ENTRIES));
    }

    /// Records that a field-expiry command ran on this hash (`listpackex`).
    pub fn mark_field_expiry_used(&mut self) {
        self.listpack_ex = true;
    }

    fn note_sizes(&mut self, field: &[u8], value: &[u8]) {
        if field.len() > LISTPACK_MAX_VALUE
            || value.len() > LISTPACK_MAX_VALUE
            || self.fields.len() > LISTPACK_MAX_ENTRIES
        {
            self.hashtable = true;
        }
    }

    /// Whether `field` is stored but its time has passed.
    fn is_expired(&self, field: &[u8], now_ms: u64) -> bool {
        match &self.ttls {
            None => false,
            Some(ttls) => matches!(ttls.by_field.get(field), Some(&at) if at < now_ms),
        }
    }

    /// The value of a live field.
    pub fn get(&self, field: &[u8], now_ms: u64) -> Option<&[u8]> {
        let entry = self.fields.get(field)?;
        if self.is_expired(field, now_ms) {
            None
        } else {
            Some(entry.value())
        }
    }

    pub fn contains(&self, field: &[u8], now_ms: u64) -> bool {
        self.get(field, now_ms).is_some()
    }

    /// A live field's expiry time as HTTL and friends see it: `None` if
    /// there is no such field (or it expired), `Some(None)` if it never
    /// expires, `Some(Some(at))` if it expires at `at`.
    pub fn field_expiry(&self, field: &[u8], now_ms: u64) -> Option<Option<u64>> {
        self.fields.position(field)?;
        match self.ttls.as_ref().and_then(|t| t.by_field.get(field)) {
            None => Some(None),
            Some(&at) if at < now_ms => None,
            Some(&at) => Some(Some(at)),
        }
    }

    /// Number of live fields.
    pub fn live_len(&self, now_ms: u64) -> usize {
        self.fields.len() - self.expired_count(now_ms)
    }

    fn expired_count(&self, now_ms: u64) -> usize {
        match &self.ttls {
            None => 0,
            Some(ttls) => ttls.by_time.range(..(now_ms, Bytes::default())).count(),
        }
    }

    /// The live fields and values, in iteration order.
    pub fn iter_live(&self, now_ms: u64) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields
            .as_slice()
            .iter()
            .map(FieldEntry::split)
            .filter(move |(field, _)| !self.is_expired(field, now_ms))
    }

    /// The field and value stored at `index` in iteration order (expired
    /// or not; callers reclaim expired fields first or check them).
    pub fn get_index(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.fields.get_index(index).map(FieldEntry::split)
    }

    /// Sets `field` to `value`, clearing any TTL the field had (HSET).
    /// Returns true if the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Some(ttls) = &mut self.ttls {
            ttls.remove(field);
            if ttls.is_empty() {
                self.ttls = None;
            }
        }
        self.set_keep_ttl(field, value)
    }

    /// Sets `field` to `value`, keeping its TTL if it has one (HINCRBY).
    /// Returns true if the field is new.
    pub fn set_keep_ttl(&mut self, field: &[u8], value: &[u8]) -> bool {
        let created = match self.fields.get_mut(field) {
            Some(stored) => {
                stored.set_value(value);
                false
            }
            None => {
                self.fields.push_new(FieldEntry::new(field, value));
                true
            }
        };
        self.note_sizes(field, value);
        created
    }

    /// Removes `field` and its TTL; true if it was stored (expired or not).
    pub fn remove(&mut self, field: &[u8]) -> bool {
        let removed = if self.hashtable {
            self.fields.swap_remove(field)
        } else {
            self.fields.shift_remove(field)
        };
        if removed.is_none() {
            return false;
        }
        if let Some(ttls) = &mut self.ttls {
            ttls.remove(field);
            if ttls.is_empty() {
                self.ttls = None;
            }
        }
        true
    }

    /// Removes `field` if its time has passed; true if it did.
    pub fn reclaim_if_expired(&mut self, field: &[u8], now_ms: u64) -> bool {
        self.is_expired(field, now_ms) && self.remove(field)
    }

    /// Removes up to `max` fields whose time has passed, earliest first;
    /// returns how many.
    pub fn reclaim_expired(&mut self, now_ms: u64, max: usize) -> usize {
        let mut reclaimed = 0;
        while reclaimed < max {
            let Some(ttls) = &self.ttls else { break };
            let Some((at, field)) = ttls.by_time.first() else {
                break;
            };
            if *at >= now_ms {
                break;
            }
            let field = field.clone();
            self.remove(&field);
            reclaimed += 1;
        }
        reclaimed
    }

    /// Whether any field has a TTL.
    pub fn has_field_ttls(&self) -> bool {
        self.ttls.is_some()
    }

    /// The earliest field expiry time, if any field has a TTL.
    pub fn next_field_expiry(&self) -> Option<u64> {
        self.ttls
            .as_ref()
            .and_then(|t| t.by_time.first().map(|(at, _)| *at))
    }

    /// Gives a stored field an expiry time; false if there is no such field.
    pub fn set_field_expiry(&mut self, field: &[u8], at: u64) -> bool {
        if self.fields.position(field).is_none() {
            return false;
        }
        self.ttls
            .get_or_insert_with(Default::default)
            .set(field, at);
        true
    }

    /// Removes the TTL of a field; true if it had one.
    pub fn persist_field(&mut self, field: &[u8]) -> bool {
        let Some(ttls) = &mut self.ttls else {
            return false;
        };
        let had = ttls.remove(field).is_some();
        if ttls.is_empty() {
            self.ttls = None;
        }
        had
    }

    /// One HSCAN step from `cursor`, calling `visit` for each live field
    /// visited; returns the next cursor (0 when the iteration is complete).
    ///
    /// A small hash is returned whole, cursor 0, as Redis does for its
    /// listpack encoding. A large one is walked by position from the last
    /// field down: the cursor is the number of positions not visited yet (0
    /// to start means "all of them"), and each call visits `count`
    /// positions. Removing a field moves the last field into its place and
    /// adding one appends it, so a position not visited yet only ever
    /// receives fields that were not visited yet or already visited, never
    /// loses one: every field present for the whole iteration is returned at
    /// least once (Redis's guarantee), some possibly twice if fields were
    /// removed meanwhile, and a full iteration costs O(size).
    pub fn scan<'s>(
        &'s self,
        cursor: u64,
        count: usize,
        now_ms: u64,
        mut visit: impl FnMut(&'s [u8], &'s [u8]),
    ) -> u64 {
        if !self.hashtable {
            for (field, value) in self.iter_live(now_ms) {
                visit(field, value);
            }
            return 0;
        }
        let len = self.fields.len() as u64;
        let mut remaining = if cursor == 0 { len } else { cursor.min(len) };
        let mut visited = 0;
        while remaining > 0 && visited < count {
            remaining -= 1;
            visited += 1;
            if let Some(entry) = self.fields.get_index(remaining as usize) {
                let (field, value) = entry.split();
                if !self.is_expired(field, now_ms) {
                    visit(field, value);
                }
            }
        }
        remaining
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> HashValue {
        let mut h = HashValue::new();
        for (f, v) in pairs {
            h.set(f.as_bytes(), v.as_bytes());
        }
        h
    }

    #[test]
    fn entries_keep_fields_and_values_of_any_length_apart() {
        for field_len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let field = vec![b'f'; field_len];
            let mut entry = FieldEntry::new(&field, b"value");
            assert_eq!(entry.split(), (&field[..], &b"value"[..]));
            entry.set_value(b"other");
            assert_eq!(
                entry.split(),
                (&field[..], &b"other"[..]),
                "same length, in place"
            );
            entry.set_value(b"");
            assert_eq!(entry.split(), (&field[..], &b""[..]));
            entry.set_value(&[b'v'; 200]);
            assert_eq!(entry.split(), (&field[..], &[b'v'; 200][..]));
        }
    }

    #[test]
    fn the_index_grows_incrementally_and_finds_every_field_meanwhile() {
        use rand::Rng;
        let mut h = HashValue::new();
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut rng = rand::thread_rng();
        let mut saw_growth = 0;
        for i in 0..30_000u32 {
            let field = format!("f{i}").into_bytes();
            assert!(h.set(&field, &i.to_le_bytes()));
            model.insert(field, i.to_le_bytes().to_vec());
            // Meanwhile: remove (the last field moves into the hole), update
            // and read older fields.
            let other = format!("f{}", rng.gen_range(0..=i)).into_bytes();
            match rng.gen_range(0..4) {
                0 => assert_eq!(h.remove(&other), model.remove(&other).is_some()),
                1 if model.contains_key(&other) => {
                    assert!(!h.set(&other, b"updated"));
                    model.insert(other, b"updated".to_vec());
                }
                _ => assert_eq!(h.get(&other, 0), model.get(&other).map(|v| &v[..])),
            }
            if h.fields.index().is_growing() {
                saw_growth += 1;
                if saw_growth % 97 == 0 {
                    for (field, value) in &model {
                        assert_eq!(h.get(field, 0), Some(&value[..]));
                    }
                }
            }
        }
        assert!(
            saw_growth > 100,
            "the index grew over {saw_growth} insertions only"
        );
        assert_eq!(h.len(), model.len());
        assert_eq!(h.fields.index().len(), model.len());
        let listed: HashMap<Vec<u8>, Vec<u8>> = h
            .iter_live(0)
            .map(|(f, v)| (f.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(listed, model);
    }

    #[test]
    fn hashes_compare_as_maps_whatever_the_order() {
        let a = hash(&[("a", "1"), ("b", "2")]);
        assert_eq!(a, hash(&[("b", "2"), ("a", "1")]));
        assert_ne!(a, hash(&[("a", "1"), ("b", "3")]));
        assert_ne!(a, hash(&[("a", "1")]));
    }

    fn keys(h: &HashValue, now: u64) -> Vec<String> {
        h.iter_live(now)
            .map(|(f, _)| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[test]
    fn small_hashes_keep_listpack_order() {
        let mut h = hash(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        h.set(b"b", b"22");
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(keys(&h, 0), ["b", "c", "d"]);
        assert_eq!(h.get(b"b", 0), Some(&b"22"[..]));
        assert_eq!(h.encoding(), "listpack");
    }

    #[test]
    fn encodings_follow_redis_limits() {
        let mut h = hash(&[("f", "v")]);
        h.mark_field_expiry_used();
        assert_eq!(h.encoding(), "listpackex");
        h.set(b"long", &[b'x'; 65]);
        assert_eq!(h.encoding(), "hashtable");
        h.remove(b"long");
        assert_eq!(h.encoding(), "hashtable", "never converted back");

        let mut h = HashValue::new();
        for i in 0..LISTPACK_MAX_ENTRIES {
            h.set(format!("f{i}").as_bytes(), b"v");
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b"one-more", b"v");
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn field_ttls_hide_and_reclaim() {
        let mut h = hash(&[("a", "1"), ("b", "2"), ("c", "3")]);
        assert!(h.set_field_expiry(b"a", 100));
        assert!(h.set_field_expiry(b"b", 200));
        assert!(!h.set_field_expiry(b"zz", 200));
        assert_eq!(h.next_field_expiry(), Some(100));
        assert_eq!(
            h.get(b"a", 100),
            Some(&b"1"[..]),
            "alive at its millisecond"
        );
        assert_eq!(h.get(b"a", 101), None);
        assert_eq!(h.live_len(101), 2);
        assert_eq!(h.len(), 3, "counted until reclaimed");
        assert_eq!(h.field_expiry(b"a", 101), None);
        assert_eq!(h.field_expiry(b"b", 101), Some(Some(200)));
        assert_eq!(h.field_expiry(b"c", 101), Some(None));
        assert_eq!(h.reclaim_expired(300, 1), 1);
        assert_eq!(h.len(), 2);
        assert_eq!(h.reclaim_expired(300, 10), 1);
        assert_eq!(keys(&h, 300), ["c"]);
        assert!(!h.has_field_ttls());
    }

    #[test]
    fn set_clears_ttl_and_set_keep_ttl_keeps_it() {
        let mut h = hash(&[("a", "1"), ("b", "2")]);
        h.set_field_expiry(b"a", 100);
        h.set_field_expiry(b"b", 100);
        assert!(!h.set(b"a", b"x"));
        assert_eq!(h.field_expiry(b"a", 0), Some(None));
        assert!(!h.set_keep_ttl(b"b", b"y"));
        assert_eq!(h.field_expiry(b"b", 0), Some(Some(100)));
        assert!(h.persist_field(b"b"));
        assert!(!h.persist_field(b"b"));
        assert!(!h.has_field_ttls());
    }

    #[test]
    fn scan_returns_every_stable_field_despite_removals() {
        let mut h = HashValue::new();
        for i in 0..700 {
            h.set(format!("f{i}").as_bytes(), b"v");
        }
        assert!(!h.is_small());
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            cursor = h.scan(cursor, 7, 0, |f, _| {
                seen.insert(f.to_vec());
            });
            // Remove and add fields while iterating; f0..f99 stay put.
            step += 1;
            h.remove(format!("f{}", 100 + step).as_bytes());
            h.set(format!("new{step}").as_bytes(), b"v");
            if cursor == 0 {
                break;
            }
        }
        for i in 0..100 {
            assert!(seen.contains(format!("f{i}").as_bytes()), "f{i} missed");
        }
    }

    #[test]
    fn small_scan_is_one_call() {
        let h = hash(&[("a", "1"), ("b", "2")]);
        let mut seen = Vec::new();
        assert_eq!(
            h.scan(0, 1, 0, |f, v| seen.push((f.to_vec(), v.to_vec()))),
            0
        );
        assert_eq!(seen.len(), 2);
    }
}
