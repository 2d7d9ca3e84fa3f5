//! How long does one insertion of a new key take at worst while the
//! keyspace grows? In process, no network: inserts `N` new string keys
//! (32-byte values) into a default [`Store`] (256 shards) one at a time,
//! timing each, and prints the total, how many took over 100 µs and over
//! 1 ms, and the eight slowest. A shard's key table that resized in one go
//! showed here as thousands of insertions of 0.1-20 ms.
//!
//! ```text
//! cargo run --release --example keyspace_growth -- 10000000
//! ```

use std::time::Instant;

use larder::store::Store;

// The server's allocator: the stalls of fresh memory are the allocator's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("a number of keys"))
        .unwrap_or(10_000_000);
    let store = Store::new();
    let value = [b'v'; 32];
    let mut slow = Vec::new();
    let start = Instant::now();
    for i in 0..keys {
        let key = format!("key:{i:012}");
        let insertion = Instant::now();
        store.set(0, key.as_bytes(), &value).expect("set");
        let micros = insertion.elapsed().as_micros();
        if micros > 100 {
            slow.push(micros);
        }
    }
    let total = start.elapsed();
    slow.sort_unstable_by(|a, b| b.cmp(a));
    println!(
        "{keys} insertions in {:.2} s ({:.0} ns each): {} over 100 µs, {} over 1 ms; slowest (µs): {:?}",
        total.as_secs_f64(),
        total.as_nanos() as f64 / keys as f64,
        slow.len(),
        slow.iter().filter(|&&m| m > 1000).count(),
        &slow[..slow.len().min(8)]
    );
}
