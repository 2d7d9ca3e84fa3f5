//! The store's read path: `Store::get` hits and misses on a store holding
//! 100,000 keys, from one thread and from two threads reading different keys
//! at the same time (throughput in GETs per second over both threads), and
//! hits in batches of 16 announced with `Store::prefetch`, and hits read in
//! place with `Store::get_with`.
//!
//! The two-thread rows come in two kinds: `2_thread`, each thread on every
//! other key (so both use every shard, as a server's workers do), and
//! `2_thread_own_shards`, each thread on the keys of its own half of the
//! shards. The gap between them is what the two threads pay for taking the
//! same shard locks: a lock's cache line moves to the core that takes it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use larder::store::{MemoryLimits, Policy};
use larder::Store;

// The allocator the server runs with (src/main.rs): a GET hit allocates
// the copy it returns.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEYS: usize = 100_000;

fn keys(prefix: &str) -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("{prefix}:{i}").into_bytes())
        .collect()
}

fn filled_store(hit_keys: &[Vec<u8>]) -> Store {
    let store = Store::new();
    let value = [b'v'; 32];
    for key in hit_keys {
        store.set(0, key, &value).expect("db 0 exists");
    }
    store
}

/// Which keys thread `t` of `threads` reads.
#[derive(Clone, Copy)]
enum Split {
    /// Keys `t`, `t + threads`, ...: every thread on every shard.
    Interleaved,
    /// The keys of the shards whose index is `t` modulo `threads`.
    OwnShards,
}

/// `threads` threads each run `iters` GETs on their `split` of `keys`;
/// returns the wall time of the slowest.
fn parallel_gets(
    store: &Store,
    keys: &[Vec<u8>],
    threads: usize,
    split: Split,
    iters: u64,
) -> Duration {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mine: Vec<&[u8]> = keys
                        .iter()
                        .enumerate()
                        .filter(|(i, key)| match split {
                            Split::Interleaved => i % threads == t,
                            Split::OwnShards => store.shard_index(key) % threads == t,
                        })
                        .map(|(_, k)| &k[..])
                        .collect();
                    let start = Instant::now();
                    let mut i = 0;
                    for _ in 0..iters {
                        black_box(store.get(0, black_box(mine[i])).ok());
                        i += 1;
                        if i == mine.len() {
                            i = 0;
                        }
                    }
                    start.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn bench_get(c: &mut Criterion) {
    let hit_keys = keys("key");
    let miss_keys = keys("missing");
    let store = filled_store(&hit_keys);
    assert_eq!(store.dbsize(0).ok(), Some(KEYS));

    let mut group = c.benchmark_group("store_get");
    for (name, keys) in [("hit", &hit_keys), ("miss", &miss_keys)] {
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{name}/1_thread"), |b| {
            let mut i = 0;
            b.iter(|| {
                let got = store.get(0, black_box(&keys[i])).ok();
                i = (i + 1) % KEYS;
                got
            });
        });
        // One iteration is one GET on each thread.
        group.throughput(Throughput::Elements(2));
        for (rows, split) in [
            ("2_thread", Split::Interleaved),
            ("2_thread_own_shards", Split::OwnShards),
        ] {
            group.bench_function(format!("{name}/{rows}"), |b| {
                b.iter_custom(|iters| parallel_gets(&store, keys, 2, split, iters));
            });
        }
    }
    // Hits read in place with `Store::get_with`: no copy to allocate.
    group.throughput(Throughput::Elements(1));
    group.bench_function("hit_in_place/1_thread", |b| {
        let mut i = 0;
        b.iter(|| {
            let got = store.get_with(0, black_box(&hit_keys[i]), |v| v[0]).ok();
            i = (i + 1) % KEYS;
            got
        });
    });
    // Hits copied into one reused buffer with `Store::get_into`.
    group.bench_function("hit_into_buffer/1_thread", |b| {
        let mut i = 0;
        let mut buf = Vec::new();
        b.iter(|| {
            let got = store.get_into(0, black_box(&hit_keys[i]), &mut buf).ok();
            i = (i + 1) % KEYS;
            got
        });
    });
    // A batch of 16 reads announced first with `Store::prefetch`, as the
    // server does for a pipeline: the batch's cache misses overlap.
    group.throughput(Throughput::Elements(16));
    group.bench_function("hit_prefetched_16/1_thread", |b| {
        let batches: Vec<Vec<&[u8]>> = hit_keys
            .chunks(16)
            .map(|chunk| chunk.iter().map(|k| &k[..]).collect())
            .collect();
        let mut i = 0;
        b.iter(|| {
            let batch = &batches[i];
            store.prefetch(0, batch, &[]);
            for key in batch {
                black_box(store.get(0, key).ok());
            }
            i = (i + 1) % batches.len();
        });
    });
    group.finish();
}

/// `Store::evict_one` under allkeys-lru with Redis's default 5 samples, on
/// a store of a million keys, so that every sample is a cache miss, as on
/// a full server. Only the evictions are timed: as many new keys are
/// written after them, untimed, so the store stays at a million.
fn bench_evict(c: &mut Criterion) {
    const FULL: usize = 1_000_000;
    let store = Store::new();
    let value = [b'v'; 32];
    for i in 0..FULL {
        store
            .set(0, format!("key:{i}").as_bytes(), &value)
            .expect("db 0 exists");
    }
    let limits = MemoryLimits {
        maxmemory: 1,
        policy: Policy::AllKeysLru,
        samples: 5,
        ..MemoryLimits::default()
    };
    let mut next = FULL;
    let mut group = c.benchmark_group("store_evict");
    group.throughput(Throughput::Elements(1));
    group.bench_function("allkeys_lru/1M_keys", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                assert!(store.evict_one(&limits));
            }
            let took = start.elapsed();
            for _ in 0..iters {
                store
                    .set(0, format!("key:{next}").as_bytes(), &value)
                    .expect("db 0 exists");
                next += 1;
            }
            took
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_get, bench_evict
}
criterion_main!(benches);
