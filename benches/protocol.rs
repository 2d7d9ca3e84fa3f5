//! The wire format: decoding a pipelined batch of requests with
//! `RequestDecoder`, and encoding replies with `ReplyBuf`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use larder::protocol::{Limits, ReplyBuf, RequestDecoder};

const BATCH: usize = 100;

const LIMITS: Limits = Limits {
    max_bulk_len: 512 * 1024 * 1024,
    unauthenticated: false,
};

/// `*2\r\n$3\r\nGET\r\n$<n>\r\nkey:<i>\r\n`, 100 times.
fn get_pipeline() -> Vec<u8> {
    let mut buf = Vec::new();
    for i in 0..BATCH {
        let key = format!("key:{i}");
        buf.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes());
    }
    buf
}

/// Decodes every request in `buf`; returns the number of arguments seen.
fn decode_all(decoder: &mut RequestDecoder, buf: &[u8]) -> usize {
    let mut rest = buf;
    let mut args = 0;
    while let Ok(Some(n)) = decoder.decode(rest, LIMITS) {
        args += black_box(decoder.args(&rest[..n])).len();
        rest = &rest[n..];
        decoder.reset();
    }
    args
}

fn bench_decode(c: &mut Criterion) {
    let pipeline = get_pipeline();
    let mut decoder = RequestDecoder::new();
    assert_eq!(decode_all(&mut decoder, &pipeline), 2 * BATCH);

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("pipeline_100_get", |b| {
        b.iter(|| decode_all(&mut decoder, black_box(&pipeline)))
    });
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let value = [b'x'; 32];
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(BATCH as u64));

    let mut out = ReplyBuf::new();
    group.bench_function("bulk_32b_x100", |b| {
        b.iter(|| {
            out.buffer().clear();
            for _ in 0..BATCH {
                out.bulk(black_box(&value));
            }
            out.len()
        })
    });

    group.bench_function("int_x100", |b| {
        b.iter(|| {
            out.buffer().clear();
            for i in 0..BATCH as i64 {
                out.int(black_box(i * 1_000_003 - 50_000_000));
            }
            out.len()
        })
    });

    // 100 small maps (HGETALL-like replies of 4 fields) in RESP3.
    let fields: Vec<Vec<u8>> = (0..4).map(|i| format!("field{i}").into_bytes()).collect();
    let mut out3 = ReplyBuf::new();
    out3.set_resp3(true);
    group.bench_function("resp3_map_4_fields_x100", |b| {
        b.iter(|| {
            out3.buffer().clear();
            for _ in 0..BATCH {
                out3.map(fields.len());
                for field in &fields {
                    out3.bulk(black_box(field));
                    out3.bulk(black_box(&value));
                }
            }
            out3.len()
        })
    });

    group.bench_function("resp3_double_x100", |b| {
        b.iter(|| {
            out3.buffer().clear();
            for i in 0..BATCH {
                out3.double(black_box(i as f64 * 1.25 + 0.1));
            }
            out3.len()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = bench_decode, bench_encode
}
criterion_main!(benches);
