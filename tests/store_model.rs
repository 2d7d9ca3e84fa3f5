//! Model-based test of the typed `Store` API: random operation sequences run
//! against a `Store` on a manual clock and against a plain `BTreeMap` model
//! with expiry times; every observable result must agree.
//!
//! The model tracks keys that expired but were not reclaimed yet, because
//! `dbsize` counts them (as Redis's DBSIZE does): every single-key operation
//! first reclaims its key if it is due (lazy expiry), and `expire_cycle`
//! reclaims every due key (active expiry; the test keeps far fewer keys per
//! shard than one cycle's batch).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use larder::{Clock, Store, StoreOptions, Ttl};
use proptest::prelude::*;

const DATABASES: usize = 2;
const START_MS: u64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Set(usize, Vec<u8>, Vec<u8>),
    SetWithTtl(usize, Vec<u8>, Vec<u8>, Duration),
    Get(usize, Vec<u8>),
    Del(usize, Vec<u8>),
    Exists(usize, Vec<u8>),
    Expire(usize, Vec<u8>, Duration),
    Persist(usize, Vec<u8>),
    Ttl(usize, Vec<u8>),
    IncrBy(usize, Vec<u8>, i64),
    DbSize(usize),
    FlushDb(usize),
    Advance(u64),
    ExpireCycle,
}

/// Database indexes, with the occasional out-of-range one.
fn db() -> impl Strategy<Value = usize> {
    prop_oneof![10 => 0..DATABASES, 1 => Just(DATABASES)]
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (0..6u8).prop_map(|i| format!("key:{i}").into_bytes()),
        1 => Just(Vec::new()),
        1 => proptest::collection::vec(any::<u8>(), 1..4),
    ]
}

/// Values, many of them integers (and near-integers) for `incr_by`.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => (-1000i64..1000).prop_map(|n| n.to_string().into_bytes()),
        1 => Just(i64::MAX.to_string().into_bytes()),
        1 => Just(i64::MIN.to_string().into_bytes()),
        1 => prop::sample::select(vec![
            "", "-0", "007", "+1", " 1", "1 ", "1.0", "abc", "9223372036854775808",
            "-9223372036854775809", "00", "-",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        2 => proptest::collection::vec(any::<u8>(), 0..8),
    ]
}

/// TTLs: mostly a few milliseconds, so that advancing time crosses them;
/// some with sub-millisecond parts, some huge (in seconds, beyond what fits
/// in u64 milliseconds).
fn ttl() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => (0..50u64).prop_map(Duration::from_millis),
        2 => (0..5_000u64).prop_map(Duration::from_millis),
        1 => (0..100_000u64).prop_map(Duration::from_micros),
        1 => Just(Duration::from_millis(u64::MAX / 2)),
        1 => any::<u64>().prop_map(Duration::from_millis),
        1 => any::<u64>().prop_map(Duration::from_secs),
    ]
}

/// What a TTL means to the store: whole milliseconds, saturating.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => -100i64..100,
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => any::<i64>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (db(), key(), value()).prop_map(|(d, k, v)| Op::Set(d, k, v)),
        4 => (db(), key(), value(), ttl()).prop_map(|(d, k, v, t)| Op::SetWithTtl(d, k, v, t)),
        4 => (db(), key()).prop_map(|(d, k)| Op::Get(d, k)),
        2 => (db(), key()).prop_map(|(d, k)| Op::Del(d, k)),
        2 => (db(), key()).prop_map(|(d, k)| Op::Exists(d, k)),
        3 => (db(), key(), ttl()).prop_map(|(d, k, t)| Op::Expire(d, k, t)),
        2 => (db(), key()).prop_map(|(d, k)| Op::Persist(d, k)),
        3 => (db(), key()).prop_map(|(d, k)| Op::Ttl(d, k)),
        3 => (db(), key(), delta()).prop_map(|(d, k, n)| Op::IncrBy(d, k, n)),
        2 => db().prop_map(Op::DbSize),
        1 => db().prop_map(Op::FlushDb),
        4 => prop_oneof![0..3u64, 0..100u64, 0..10_000u64].prop_map(Op::Advance),
        2 => Just(Op::ExpireCycle),
    ]
}

#[derive(Debug, Clone)]
struct ModelEntry {
    value: Vec<u8>,
    expires_at: Option<u64>,
}

impl ModelEntry {
    fn expired(&self, now: u64) -> bool {
        // As in Redis, a key is there at its expiry millisecond, gone after.
        self.expires_at.is_some_and(|at| at < now)
    }
}

/// Every key physically present, expired or not, per database.
#[derive(Debug, Default)]
struct Model {
    now: u64,
    dbs: Vec<BTreeMap<Vec<u8>, ModelEntry>>,
}

impl Model {
    fn new(now: u64) -> Self {
        Model {
            now,
            dbs: vec![BTreeMap::new(); DATABASES],
        }
    }

    /// Lazy expiry of one key, then its live entry.
    fn live(&mut self, db: usize, key: &[u8]) -> Option<&mut ModelEntry> {
        let now = self.now;
        let map = &mut self.dbs[db];
        if map.get(key).is_some_and(|e| e.expired(now)) {
            map.remove(key);
        }
        map.get_mut(key)
    }

    /// The live entry, without reclaiming an expired one: reads in the store
    /// leave expired keys for writes and active expiry to remove.
    fn peek(&mut self, db: usize, key: &[u8]) -> Option<&mut ModelEntry> {
        let now = self.now;
        self.dbs[db].get_mut(key).filter(|e| !e.expired(now))
    }

    fn live_count(&self, db: usize) -> usize {
        self.dbs[db]
            .values()
            .filter(|e| !e.expired(self.now))
            .count()
    }

    fn expire_all_due(&mut self) -> usize {
        let now = self.now;
        let mut reclaimed = 0;
        for map in &mut self.dbs {
            let before = map.len();
            map.retain(|_, e| !e.expired(now));
            reclaimed += before - map.len();
        }
        reclaimed
    }
}

/// Redis's string2ll accepts exactly the canonical decimal form of an i64.
fn model_int(value: &[u8]) -> Option<i64> {
    let n: i64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == value).then_some(n)
}

const OUT_OF_RANGE: &str = "ERR DB index is out of range";

fn expect_err<T: std::fmt::Debug>(got: larder::error::Result<T>, message: &str, op: &Op) {
    match got {
        Err(error) => assert_eq!(error.message(), message, "{op:?}"),
        Ok(value) => panic!("{op:?}: expected error {message:?}, got {value:?}"),
    }
}

fn run(shards: usize, ops: &[Op]) {
    let (clock, handle): (Clock, Arc<AtomicU64>) = Clock::manual(START_MS);
    let store = Store::with_options(StoreOptions {
        clock,
        shards,
        databases: DATABASES,
    });
    let mut model = Model::new(START_MS);
    for op in ops {
        // An out-of-range database is refused before anything happens.
        let bad_db = match op {
            Op::Set(d, ..)
            | Op::SetWithTtl(d, ..)
            | Op::Get(d, _)
            | Op::Del(d, _)
            | Op::Exists(d, _)
            | Op::Expire(d, ..)
            | Op::Persist(d, _)
            | Op::Ttl(d, _)
            | Op::IncrBy(d, ..)
            | Op::DbSize(d)
            | Op::FlushDb(d) => *d >= DATABASES,
            Op::Advance(_) | Op::ExpireCycle => false,
        };
        if bad_db {
            match op {
                Op::Set(d, k, v) => expect_err(store.set(*d, k, v), OUT_OF_RANGE, op),
                Op::SetWithTtl(d, k, v, t) => {
                    expect_err(store.set_with_ttl(*d, k, v, *t), OUT_OF_RANGE, op)
                }
                Op::Get(d, k) => expect_err(store.get(*d, k), OUT_OF_RANGE, op),
                Op::Del(d, k) => expect_err(store.del(*d, k), OUT_OF_RANGE, op),
                Op::Exists(d, k) => expect_err(store.exists(*d, k), OUT_OF_RANGE, op),
                Op::Expire(d, k, t) => expect_err(store.expire(*d, k, *t), OUT_OF_RANGE, op),
                Op::Persist(d, k) => expect_err(store.persist(*d, k), OUT_OF_RANGE, op),
                Op::Ttl(d, k) => expect_err(store.ttl(*d, k), OUT_OF_RANGE, op),
                Op::IncrBy(d, k, n) => expect_err(store.incr_by(*d, k, *n), OUT_OF_RANGE, op),
                Op::DbSize(d) => expect_err(store.dbsize(*d), OUT_OF_RANGE, op),
                Op::FlushDb(d) => expect_err(store.flush_db(*d), OUT_OF_RANGE, op),
                Op::Advance(_) | Op::ExpireCycle => unreachable!(),
            }
            continue;
        }
        match op {
            Op::Set(d, k, v) => {
                store.set(*d, k, v).unwrap();
                model.live(*d, k);
                model.dbs[*d].insert(
                    k.clone(),
                    ModelEntry {
                        value: v.clone(),
                        expires_at: None,
                    },
                );
            }
            Op::SetWithTtl(d, k, v, t) => {
                store.set_with_ttl(*d, k, v, *t).unwrap();
                model.live(*d, k);
                let at = model.now.saturating_add(ttl_ms(*t));
                model.dbs[*d].insert(
                    k.clone(),
                    ModelEntry {
                        value: v.clone(),
                        expires_at: Some(at),
                    },
                );
            }
            Op::Get(d, k) => {
                let expected = model.peek(*d, k).map(|e| e.value.clone());
                assert_eq!(store.get(*d, k).unwrap(), expected, "{op:?}");
            }
            Op::Del(d, k) => {
                let expected = model.live(*d, k).is_some();
                model.dbs[*d].remove(k);
                assert_eq!(store.del(*d, k).unwrap(), expected, "{op:?}");
            }
            Op::Exists(d, k) => {
                let expected = model.peek(*d, k).is_some();
                assert_eq!(store.exists(*d, k).unwrap(), expected, "{op:?}");
            }
            Op::Expire(d, k, t) => {
                let at = model.now.saturating_add(ttl_ms(*t));
                let expected = match model.live(*d, k) {
                    Some(entry) => {
                        entry.expires_at = Some(at);
                        true
                    }
                    None => false,
                };
                assert_eq!(store.expire(*d, k, *t).unwrap(), expected, "{op:?}");
            }
            Op::Persist(d, k) => {
                let expected = match model.peek(*d, k) {
                    Some(entry) => entry.expires_at.take().is_some(),
                    None => false,
                };
                assert_eq!(store.persist(*d, k).unwrap(), expected, "{op:?}");
            }
            Op::Ttl(d, k) => {
                let now = model.now;
                let expected = match model.peek(*d, k) {
                    None => Ttl::Missing,
                    Some(ModelEntry {
                        expires_at: None, ..
                    }) => Ttl::Persistent,
                    Some(ModelEntry {
                        expires_at: Some(at),
                        ..
                    }) => Ttl::Expires(Duration::from_millis(*at - now)),
                };
                assert_eq!(store.ttl(*d, k).unwrap(), expected, "{op:?}");
            }
            Op::IncrBy(d, k, n) => {
                let got = store.incr_by(*d, k, *n);
                match model.live(*d, k) {
                    Some(entry) => match model_int(&entry.value) {
                        None => expect_err(got, "ERR value is not an integer or out of range", op),
                        Some(current) => match current.checked_add(*n) {
                            None => {
                                expect_err(got, "ERR increment or decrement would overflow", op)
                            }
                            Some(next) => {
                                assert_eq!(got.unwrap(), next, "{op:?}");
                                entry.value = next.to_string().into_bytes();
                            }
                        },
                    },
                    None => {
                        assert_eq!(got.unwrap(), *n, "{op:?}");
                        model.dbs[*d].insert(
                            k.clone(),
                            ModelEntry {
                                value: n.to_string().into_bytes(),
                                expires_at: None,
                            },
                        );
                    }
                }
            }
            Op::DbSize(d) => {
                // Expired keys count until something reclaims them.
                assert_eq!(store.dbsize(*d).unwrap(), model.dbs[*d].len(), "{op:?}");
            }
            Op::FlushDb(d) => {
                store.flush_db(*d).unwrap();
                model.dbs[*d].clear();
            }
            Op::Advance(ms) => {
                model.now += ms;
                handle.fetch_add(*ms, Ordering::Relaxed);
                assert_eq!(store.now_ms(), model.now);
            }
            Op::ExpireCycle => {
                let expected = model.expire_all_due();
                assert_eq!(store.expire_cycle(), expected, "{op:?}");
                for d in 0..DATABASES {
                    assert_eq!(
                        store.dbsize(d).unwrap(),
                        model.live_count(d),
                        "dbsize of {d} after expire_cycle"
                    );
                }
            }
        }
    }
    // Finally everything the model holds must read back the same.
    for d in 0..DATABASES {
        let keys: Vec<Vec<u8>> = model.dbs[d].keys().cloned().collect();
        for k in keys {
            let expected = model.peek(d, &k).map(|e| e.value.clone());
            assert_eq!(store.get(d, &k).unwrap(), expected, "final get {k:?}");
        }
        assert_eq!(store.dbsize(d).unwrap(), model.dbs[d].len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        ..ProptestConfig::default()
    })]

    #[test]
    fn store_matches_model(
        shards in prop_oneof![Just(4usize), Just(256usize)],
        ops in proptest::collection::vec(op(), 1..100),
    ) {
        run(shards, &ops);
    }
}

/// A few fixed sequences worth keeping regardless of what proptest draws.
#[test]
fn expiry_boundaries() {
    use Op::*;
    let k = || b"key:1".to_vec();
    let ms = Duration::from_millis;
    run(
        4,
        &[
            SetWithTtl(0, k(), b"v".to_vec(), ms(10)),
            Advance(9),
            Ttl(0, k()),
            Get(0, k()),
            Advance(1),
            DbSize(0),
            Ttl(0, k()),
            DbSize(0),
            SetWithTtl(0, k(), b"5".to_vec(), ms(0)),
            DbSize(0),
            ExpireCycle,
            IncrBy(0, k(), 3),
            Expire(0, k(), ms(5)),
            IncrBy(0, k(), 3),
            Ttl(0, k()),
            Persist(0, k()),
            Persist(0, k()),
            SetWithTtl(1, k(), b"x".to_vec(), ms(u64::MAX)),
            Ttl(1, k()),
            // More milliseconds than a u64 holds: must saturate, not wrap
            // (18446744073709552 s is 2^64 + 384 ms).
            SetWithTtl(
                0,
                k(),
                b"y".to_vec(),
                Duration::from_secs(18_446_744_073_709_552),
            ),
            Expire(1, k(), Duration::MAX),
            Advance(1_000),
            Ttl(0, k()),
            Ttl(1, k()),
            Advance(1_000_000),
            ExpireCycle,
            FlushDb(1),
            DbSize(1),
        ],
    );
}
