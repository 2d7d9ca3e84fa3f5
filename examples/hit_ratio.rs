//! Hit-ratio benchmark: the cache-aside loop against any Redis-compatible
//! server on a port.
//!
//! ```text
//! cargo run --release --example hit_ratio -- --port 6379 \
//!     --maxmemory 30000000 --policy allkeys-lru --zipf 0.99 --scan
//! ```
//!
//! Flushes the server, sets `maxmemory` and `maxmemory-policy` (if given),
//! then issues `--requests` GETs of keys `key:<rank>` with ranks drawn from a
//! Zipf distribution of exponent `--zipf` over `--keys` keys; each miss is
//! followed by a SET of a `--value-size`-byte value. GETs go out in
//! pipelined batches of `--batch`, then the SETs for that batch's misses.
//! With `--scan`, halfway through, `--scan-keys` unrelated keys
//! (`scan:<n>`, in order) are each read once and, missing, written (not
//! counted in the hit ratio). Prints the overall hit ratio, the ratio before
//! and after the halfway point, and per window of `--window` GETs after it
//! (how fast the cache recovers from the scan), then one `RESULT` line for
//! scripts.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

struct Options {
    host: String,
    port: u16,
    keys: usize,
    requests: usize,
    zipf: f64,
    scan: bool,
    scan_keys: usize,
    value_size: usize,
    batch: usize,
    window: usize,
    maxmemory: Option<u64>,
    policy: Option<String>,
    label: String,
    seed: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: hit_ratio --port P [--host H] [--keys 1000000] [--requests 2000000] \
         [--zipf 0.99] [--scan] [--scan-keys 1000000] [--value-size 100] [--batch 100] \
         [--window 100000] [--maxmemory BYTES] [--policy NAME] [--label TEXT] [--seed N]"
    );
    std::process::exit(2)
}

fn parse_options() -> Options {
    let mut o = Options {
        host: "127.0.0.1".into(),
        port: 0,
        keys: 1_000_000,
        requests: 2_000_000,
        zipf: 0.99,
        scan: false,
        scan_keys: 1_000_000,
        value_size: 100,
        batch: 100,
        window: 100_000,
        maxmemory: None,
        policy: None,
        label: String::new(),
        seed: 42,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        if flag == "--scan" {
            o.scan = true;
            i += 1;
            continue;
        }
        let Some(value) = args.get(i + 1) else {
            usage()
        };
        let num = || value.parse::<u64>().unwrap_or_else(|_| usage());
        match flag {
            "--host" => o.host = value.clone(),
            "--port" => o.port = num() as u16,
            "--keys" => o.keys = num() as usize,
            "--requests" => o.requests = num() as usize,
            "--zipf" => o.zipf = value.parse().unwrap_or_else(|_| usage()),
            "--scan-keys" => o.scan_keys = num() as usize,
            "--value-size" => o.value_size = num() as usize,
            "--batch" => o.batch = num().max(1) as usize,
            "--window" => o.window = num().max(1) as usize,
            "--maxmemory" => o.maxmemory = Some(num()),
            "--policy" => o.policy = Some(value.clone()),
            "--label" => o.label = value.clone(),
            "--seed" => o.seed = num(),
            _ => usage(),
        }
        i += 2;
    }
    if o.port == 0 || o.keys == 0 {
        usage();
    }
    if o.label.is_empty() {
        o.label = o
            .policy
            .clone()
            .unwrap_or_else(|| format!("port-{}", o.port));
    }
    o
}

/// SplitMix64: small, fast, good enough for sampling.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf over ranks 0..n (rank r has weight 1/(r+1)^s), by inverse CDF: a
/// table of cumulative weights and a binary search.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for rank in 1..=n {
            sum += 1.0 / (rank as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// A pipelining RESP client, just enough for GET, SET, CONFIG, INFO.
struct Client {
    out: std::io::BufWriter<TcpStream>,
    input: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Client {
    fn connect(host: &str, port: u16) -> std::io::Result<Self> {
        let stream = TcpStream::connect((host, port))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            out: std::io::BufWriter::with_capacity(1 << 16, stream.try_clone()?),
            input: BufReader::with_capacity(1 << 16, stream),
            line: Vec::new(),
        })
    }

    fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        write!(self.out, "*{}\r\n", args.len())?;
        for a in args {
            write!(self.out, "${}\r\n", a.len())?;
            self.out.write_all(a)?;
            self.out.write_all(b"\r\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Reads one reply: `Ok(Some(bytes))` for a bulk or simple string,
    /// `Ok(None)` for a null; errors become `Err`.
    fn reply(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.line.clear();
        self.input.read_until(b'\n', &mut self.line)?;
        let line = self
            .line
            .strip_suffix(b"\r\n")
            .ok_or_else(|| std::io::Error::other("connection closed"))?;
        match line.first() {
            Some(b'+') | Some(b':') => Ok(Some(line[1..].to_vec())),
            Some(b'-') => Err(std::io::Error::other(
                String::from_utf8_lossy(&line[1..]).into_owned(),
            )),
            Some(b'$') => {
                let len: i64 = std::str::from_utf8(&line[1..])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| std::io::Error::other("bad bulk length"))?;
                if len < 0 {
                    return Ok(None);
                }
                let mut data = vec![0; len as usize + 2];
                std::io::Read::read_exact(&mut self.input, &mut data)?;
                data.truncate(len as usize);
                Ok(Some(data))
            }
            _ => Err(std::io::Error::other(format!(
                "unexpected reply {:?}",
                String::from_utf8_lossy(line)
            ))),
        }
    }

    fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Option<Vec<u8>>> {
        self.send(args)?;
        self.flush()?;
        self.reply()
    }

    fn info_field(&mut self, name: &str) -> Option<String> {
        let text = self.call(&[b"INFO", b"all"]).ok()??;
        let text = String::from_utf8_lossy(&text).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
    }
}

/// GETs `keys` in one pipelined batch, then SETs the ones that missed;
/// returns how many hit.
fn cache_aside(client: &mut Client, keys: &[Vec<u8>], value: &[u8]) -> std::io::Result<usize> {
    for key in keys {
        client.send(&[b"GET", key])?;
    }
    client.flush()?;
    let mut missed = Vec::new();
    for (i, _) in keys.iter().enumerate() {
        if client.reply()?.is_none() {
            missed.push(i);
        }
    }
    for &i in &missed {
        client.send(&[b"SET", &keys[i], value])?;
    }
    client.flush()?;
    for _ in &missed {
        client.reply()?;
    }
    Ok(keys.len() - missed.len())
}

fn main() -> std::io::Result<()> {
    let o = parse_options();
    let mut client = Client::connect(&o.host, o.port)?;
    client.call(&[b"FLUSHALL"])?;
    if let Some(policy) = &o.policy {
        client.call(&[b"CONFIG", b"SET", b"maxmemory-policy", policy.as_bytes()])?;
    }
    if let Some(bytes) = o.maxmemory {
        client.call(&[
            b"CONFIG",
            b"SET",
            b"maxmemory",
            bytes.to_string().as_bytes(),
        ])?;
    }
    let zipf = Zipf::new(o.keys, o.zipf);
    let mut rng = Rng(o.seed);
    let value = vec![b'x'; o.value_size];
    let started = Instant::now();
    let half = o.requests / 2;
    let mut hits_before = 0usize;
    let mut hits_after = 0usize;
    let mut windows: Vec<(usize, usize)> = Vec::new();
    let mut done = 0usize;
    let mut scanned = false;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(o.batch);
    while done < o.requests {
        if done >= half && !scanned {
            scanned = true;
            if o.scan {
                let mut n = 0;
                while n < o.scan_keys {
                    let end = (n + o.batch).min(o.scan_keys);
                    let keys: Vec<Vec<u8>> =
                        (n..end).map(|i| format!("scan:{i}").into_bytes()).collect();
                    cache_aside(&mut client, &keys, &value)?;
                    n = end;
                }
            }
        }
        // Batches never straddle the halfway point.
        let limit = if done < half { half } else { o.requests };
        let size = o.batch.min(limit - done);
        batch.clear();
        for _ in 0..size {
            batch.push(format!("key:{}", zipf.sample(&mut rng)).into_bytes());
        }
        let hits = cache_aside(&mut client, &batch, &value)?;
        if done < half {
            hits_before += hits;
        } else {
            hits_after += hits;
            let w = (done - half) / o.window;
            if windows.len() <= w {
                windows.push((0, 0));
            }
            windows[w].0 += hits;
            windows[w].1 += size;
        }
        done += size;
    }
    let elapsed = started.elapsed();
    let keys_held = client
        .call(&[b"DBSIZE"])?
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_default();
    let used = client.info_field("used_memory").unwrap_or_default();
    let evicted = client.info_field("evicted_keys").unwrap_or_default();
    let ratio = |h: usize, n: usize| if n == 0 { 0.0 } else { h as f64 / n as f64 };
    let overall = ratio(hits_before + hits_after, o.requests);
    let before = ratio(hits_before, half);
    let after = ratio(hits_after, o.requests - half);
    let window_ratios: Vec<String> = windows
        .iter()
        .map(|&(h, n)| format!("{:.4}", ratio(h, n)))
        .collect();
    println!(
        "{} zipf={} scan={} requests={} keys={} maxmemory={:?}: hit ratio {:.4} (first half {:.4}, second half {:.4}); \
         windows of {} after halfway: [{}]; keys held {}, used_memory {}, evicted {}; {:.1}s",
        o.label,
        o.zipf,
        o.scan,
        o.requests,
        o.keys,
        o.maxmemory,
        overall,
        before,
        after,
        o.window,
        window_ratios.join(" "),
        keys_held,
        used,
        evicted,
        elapsed.as_secs_f64()
    );
    println!(
        "RESULT\t{}\t{}\t{}\t{:.4}\t{:.4}\t{:.4}\t{}\t{}",
        o.label,
        o.zipf,
        if o.scan { "scan" } else { "plain" },
        overall,
        before,
        after,
        window_ratios.join(","),
        keys_held
    );
    Ok(())
}
