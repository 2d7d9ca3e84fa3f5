//! Sorted set store operations on a 1,000,000-member set (built once):
//! a 10-member index range in the middle, a narrow score range, ZRANK and
//! ZSCORE — the store-level functions the commands call — and ZADD of
//! random members with random scores, as `redis-benchmark -t zadd -r` sends;
//! and a set built from empty to a million members (`zadd_growing`).
//!
//! Run with `cargo bench --bench zset`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use larder::store::types::ZSetValue;

// The server's allocator: node and member allocations cost what they cost there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MEMBERS: usize = 1_000_000;

/// xorshift64: cheap, and no pattern the skiplist could exploit.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn build() -> ZSetValue {
    let mut z = ZSetValue::new();
    // Scores are a permutation of 0..MEMBERS (a multiplicative step modulo
    // a prime-free stride), so insertions land all over the skiplist.
    for i in 0..MEMBERS {
        let score = ((i as u64 * 7_919) % MEMBERS as u64) as f64;
        z.insert(format!("member:{i}").as_bytes(), score);
    }
    z
}

fn zset(c: &mut Criterion) {
    let z = build();
    assert_eq!(z.len(), MEMBERS);
    let middle = MEMBERS / 2;
    let probe = format!("member:{}", MEMBERS / 3);
    // Probes spread over the whole set, cycled, so that lookups do not all
    // walk one cached path.
    let spread: Vec<usize> = (0..4096).map(|i| (i * 104_729 + 17) % MEMBERS).collect();
    let spread_members: Vec<Vec<u8>> = spread
        .iter()
        .map(|i| format!("member:{i}").into_bytes())
        .collect();

    c.bench_function("zrange_index_middle_10", |b| {
        b.iter(|| {
            let mut total = 0usize;
            for (member, score) in z.iter_from(black_box(middle), false).take(10) {
                total += member.len() + score as usize;
            }
            black_box(total)
        })
    });

    c.bench_function("zrangebyscore_narrow_10", |b| {
        b.iter(|| {
            let min = black_box(middle as f64);
            let max = min + 9.0;
            let mut total = 0usize;
            if let Some((first, last)) = z.score_range_ranks(min, false, max, false) {
                for (member, score) in z.iter_from(first, false).take(last - first + 1) {
                    total += member.len() + score as usize;
                }
            }
            black_box(total)
        })
    });

    c.bench_function("zrange_index_spread_10", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % spread.len();
            let start = spread[next].min(MEMBERS - 10);
            let mut total = 0usize;
            for (member, score) in z.iter_from(start, false).take(10) {
                total += member.len() + score as usize;
            }
            black_box(total)
        })
    });

    c.bench_function("zrangebyscore_narrow_spread_10", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % spread.len();
            let min = spread[next] as f64;
            let mut total = 0usize;
            if let Some((first, last)) = z.score_range_ranks(min, false, min + 9.0, false) {
                for (member, score) in z.iter_from(first, false).take(last - first + 1) {
                    total += member.len() + score as usize;
                }
            }
            black_box(total)
        })
    });

    c.bench_function("zrank", |b| {
        b.iter(|| black_box(z.rank(black_box(probe.as_bytes()))))
    });

    c.bench_function("zrank_spread", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % spread_members.len();
            black_box(z.rank(&spread_members[next]))
        })
    });

    c.bench_function("zscore", |b| {
        b.iter(|| black_box(z.score(black_box(probe.as_bytes()))))
    });

    c.bench_function("zscore_spread", |b| {
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % spread_members.len();
            black_box(z.score(&spread_members[next]))
        })
    });

    let mut w = z.clone();
    c.bench_function("zadd_update_score", |b| {
        let mut bump = 0.0;
        b.iter(|| {
            bump += 1.0;
            black_box(w.insert(black_box(probe.as_bytes()), 123_456.5 + bump % 1000.0))
        })
    });

    // Every member of the set, each moved to a random new score: both
    // descents (find the node, insert it again) go all over the skiplist.
    let members: Vec<Vec<u8>> = (0..MEMBERS)
        .map(|i| format!("member:{i}").into_bytes())
        .collect();
    c.bench_function("zadd_random_update", |b| {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        b.iter(|| {
            let state = xorshift(&mut state);
            let member = &members[(state % MEMBERS as u64) as usize];
            let score = ((state >> 32) % MEMBERS as u64) as f64;
            black_box(w.insert(member, score))
        })
    });
}

/// ZADD of new members into a set that grows from empty to a million,
/// as `redis-benchmark -t zadd -r` fills one: every insertion's descent,
/// and the index's moves to a larger table on the way.
fn zset_growth(c: &mut Criterion) {
    let members: Vec<Vec<u8>> = (0..MEMBERS)
        .map(|i| format!("member:{i}").into_bytes())
        .collect();
    let mut group = c.benchmark_group("zadd_growing");
    group.sample_size(10);
    group.bench_function("to_1m_members", |b| {
        b.iter_custom(|builds| {
            let mut took = std::time::Duration::ZERO;
            for _ in 0..builds {
                let mut z = ZSetValue::new();
                let mut state = 0x9e37_79b9_7f4a_7c15u64;
                let start = std::time::Instant::now();
                for member in &members {
                    let state = xorshift(&mut state);
                    z.insert(member, (state % MEMBERS as u64) as f64);
                }
                took += start.elapsed();
                black_box(&z);
            }
            took
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = zset, zset_growth
}
criterion_main!(benches);
