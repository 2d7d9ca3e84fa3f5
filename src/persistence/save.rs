//! Writing a snapshot: the record of each key (see the module notes), the
//! walk over the shards and the file around the chunks.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{unbounded, Receiver, Sender};

use super::opcodes::*;
use super::{unix_now, AccessInfo, Queued, SaveOptions};
use crate::rdb;
use crate::store::{Entry, SnapshotCapture, Store};
use parking_lot::Mutex;

/// What a snapshot wrote.
#[derive(Debug, Clone)]
pub struct SaveStats {
    pub keys: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// The store's change count when the snapshot started.
    pub changes_at_start: u64,
    /// Keys written by the threads that were about to change them
    /// (clients' writes, active expiry, eviction) rather than by the walker.
    pub keys_written_by_changes: u64,
    /// The longest one of those took, under its shard lock.
    pub longest_key_write: Duration,
}

/// Records of one database, ready for the file.
struct Chunk {
    bytes: Vec<u8>,
    keys: u64,
}

/// Serializes each key once (see `store::snapshot`).
struct Capture {
    chunks: Sender<Chunk>,
    /// The snapshot's instant: keys past their TTL then are left out, idle
    /// times are counted to it.
    now_ms: u64,
    compress: bool,
    access: AccessInfo,
    cancel: Arc<AtomicBool>,
    queued: Arc<Queued>,
    /// The thread walking the keyspace; keys written by any other thread,
    /// and the longest such write, in ns.
    walker: std::thread::ThreadId,
    keys_written_by_changes: AtomicU64,
    longest_key_write_ns: AtomicU64,
    /// A reusable buffer for a value's encoding.
    value: Mutex<Vec<u8>>,
}

impl SnapshotCapture for Capture {
    fn record(&self, out: &mut Vec<u8>, key: &[u8], entry: &Entry) -> bool {
        if self.cancel.load(Ordering::Relaxed) || entry.is_expired(self.now_ms) {
            return false;
        }
        if std::thread::current().id() == self.walker {
            self.serialize(out, key, entry);
        } else {
            let started = Instant::now();
            self.serialize(out, key, entry);
            self.keys_written_by_changes.fetch_add(1, Ordering::Relaxed);
            self.longest_key_write_ns
                .fetch_max(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        true
    }

    fn deliver(&self, db: usize, records: Vec<u8>, keys: u64) {
        let mut bytes = Vec::with_capacity(records.len() + 10);
        bytes.push(SELECTDB);
        rdb::write_length(&mut bytes, db as u64);
        bytes.extend_from_slice(&records);
        self.queued.add(bytes.len() as u64);
        // The writer may have gone (an I/O error): the chunk is dropped.
        let _ = self.chunks.send(Chunk { bytes, keys });
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

impl Capture {
    /// One key's record: `EXPIRETIME_MS`, `IDLE` or `FREQ`, type, key, value.
    fn serialize(&self, out: &mut Vec<u8>, key: &[u8], entry: &Entry) {
        if let Some(at) = entry.expires_at() {
            out.push(EXPIRETIME_MS);
            out.extend_from_slice(&at.to_le_bytes());
        }
        match self.access {
            AccessInfo::None => {}
            AccessInfo::Lru => {
                out.push(IDLE);
                rdb::write_length(out, entry.idle_secs(self.now_ms));
            }
            AccessInfo::Lfu => {
                out.push(FREQ);
                out.push(entry.frequency(self.now_ms));
            }
        }
        // The codec writes type and body; the key goes between. Several
        // threads may write keys at once (one per shard): a thread that
        // finds the buffer taken uses one of its own.
        let mut shared = self.value.try_lock();
        let mut own = Vec::new();
        let value = shared.as_deref_mut().unwrap_or(&mut own);
        value.clear();
        rdb::write_object(value, entry.value(), self.compress);
        if let Some((&type_byte, body)) = value.split_first() {
            out.push(type_byte);
            rdb::write_string(out, key, self.compress);
            out.extend_from_slice(body);
        }
    }
}

/// The file being written, with its running CRC64.
struct RdbFile {
    out: BufWriter<File>,
    crc: u64,
    checksum: bool,
    bytes: u64,
}

impl RdbFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.checksum {
            self.crc = rdb::crc64(self.crc, data);
        }
        self.bytes += data.len() as u64;
        self.out.write_all(data)
    }
}

fn aux(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.push(AUX);
    rdb::write_string(out, key.as_bytes(), false);
    rdb::write_string(out, value, false);
}

/// Writes a snapshot of `store` to `options.path()` (through a temp file
/// renamed into place). `keys_total` is told the number of keys when the
/// snapshot starts; `keys_processed` counts those written.
pub fn write_snapshot(
    store: &Store,
    options: &SaveOptions,
    cancel: &Arc<AtomicBool>,
    queued: &Arc<Queued>,
    keys_processed: &AtomicU64,
    keys_total: impl FnOnce(u64),
) -> Result<SaveStats, String> {
    let started = Instant::now();
    let temp = options.dir.join(format!("temp-{}.rdb", std::process::id()));
    let file = File::create(&temp).map_err(|error| {
        format!(
            "Failed opening the temp RDB file {} (in server root dir {}) for saving: {error}",
            temp.display(),
            options.dir.display()
        )
    })?;
    let result = write_into(store, options, cancel, queued, keys_processed, keys_total, file, started)
        .and_then(|stats| {
            std::fs::rename(&temp, options.path()).map_err(|error| {
                format!(
                    "Error moving temp DB file {} on the final destination {} (in server root dir {}): {error}",
                    temp.display(),
                    options.dbfilename,
                    options.dir.display()
                )
            })?;
            // The rename itself durable too, as Redis's fsyncFileDir.
            if let Ok(dir) = File::open(&options.dir) {
                let _ = dir.sync_all();
            }
            Ok(stats)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn write_into(
    store: &Store,
    options: &SaveOptions,
    cancel: &Arc<AtomicBool>,
    queued: &Arc<Queued>,
    keys_processed: &AtomicU64,
    keys_total: impl FnOnce(u64),
    file: File,
    started: Instant,
) -> Result<SaveStats, String> {
    let (sender, chunks) = unbounded();
    let now_ms = store.now_ms();
    let capture = Arc::new(Capture {
        chunks: sender,
        now_ms,
        compress: options.compress,
        access: options.access,
        cancel: cancel.clone(),
        queued: queued.clone(),
        walker: std::thread::current().id(),
        keys_written_by_changes: AtomicU64::new(0),
        longest_key_write_ns: AtomicU64::new(0),
        value: Mutex::new(Vec::new()),
    });
    // Under every lock: the counts RESIZEDB gives, whether some hash has
    // field TTLs, the change counter; then every part is to be walked.
    let databases = store.databases();
    let (sizes, field_ttls, changes_at_start) = store.begin_snapshot(capture.clone(), |all| {
        let mut sizes = vec![(0u64, 0u64); databases];
        let mut field_ttls = false;
        let mut changes = 0;
        for (_, shard) in all.shards_mut() {
            for (db, size) in sizes.iter_mut().enumerate().take(shard.databases()) {
                let part = shard.db_ref(db);
                size.0 += part.len() as u64;
                size.1 += part.volatile_len() as u64;
                field_ttls |= part.field_volatile_len() > 0;
                changes += part.changes();
            }
        }
        (sizes, field_ttls, changes)
    });
    keys_total(sizes.iter().map(|(keys, _)| keys).sum());
    let version = if field_ttls {
        rdb::RDB_VERSION_FIELD_TTLS
    } else {
        rdb::RDB_VERSION
    };
    let mut header = format!("REDIS{version:04}").into_bytes();
    aux(
        &mut header,
        "redis-ver",
        crate::version::REDIS_VERSION.as_bytes(),
    );
    aux(&mut header, "redis-bits", b"64");
    aux(&mut header, "ctime", unix_now().to_string().as_bytes());
    aux(
        &mut header,
        "used-mem",
        options.used_mem.to_string().as_bytes(),
    );
    aux(&mut header, "aof-base", b"0");
    for code in &options.functions {
        header.push(FUNCTION2);
        rdb::write_string(&mut header, code, false);
    }
    for (db, &(keys, volatile)) in sizes.iter().enumerate() {
        if keys == 0 {
            continue;
        }
        header.push(SELECTDB);
        rdb::write_length(&mut header, db as u64);
        header.push(RESIZEDB);
        rdb::write_length(&mut header, keys);
        rdb::write_length(&mut header, volatile);
    }
    let mut file = RdbFile {
        out: BufWriter::with_capacity(1 << 20, file),
        crc: 0,
        checksum: options.checksum,
        bytes: 0,
    };
    let io = |error: std::io::Error| format!("Write error saving DB on disk: {error}");
    // Whatever happens below, the walk goes to the end of every part, so
    // that no part keeps paying for the snapshot (a cancelled one writes
    // nothing more).
    let mut written_keys = 0;
    let mut write_error = file.write(&header).err().map(io);
    let drain = |file: &mut RdbFile,
                 chunks: &Receiver<Chunk>,
                 write_error: &mut Option<String>,
                 written_keys: &mut u64| {
        for chunk in chunks.try_iter() {
            queued.sub(chunk.bytes.len() as u64);
            if write_error.is_none() && !cancel.load(Ordering::Relaxed) {
                *write_error = file.write(&chunk.bytes).err().map(io);
                *written_keys += chunk.keys;
                keys_processed.fetch_add(chunk.keys, Ordering::Relaxed);
            }
        }
    };
    for index in 0..store.shard_count() {
        store.capture_shard(index);
        drain(&mut file, &chunks, &mut write_error, &mut written_keys);
    }
    // Every part was walked to its end, which delivers what it held, so
    // every chunk is in the channel by now.
    drain(&mut file, &chunks, &mut write_error, &mut written_keys);
    let keys_written_by_changes = capture.keys_written_by_changes.load(Ordering::Relaxed);
    let longest_key_write =
        Duration::from_nanos(capture.longest_key_write_ns.load(Ordering::Relaxed));
    drop(capture);
    if cancel.load(Ordering::Relaxed) {
        return Err("Background saving stopped".into());
    }
    if let Some(error) = write_error {
        return Err(error);
    }
    file.write(&[EOF]).map_err(io)?;
    let crc = if options.checksum { file.crc } else { 0 };
    file.write(&crc.to_le_bytes()).map_err(io)?;
    let bytes = file.bytes;
    let inner = file
        .out
        .into_inner()
        .map_err(|error| io(error.into_error()))?;
    inner.sync_all().map_err(io)?;
    Ok(SaveStats {
        keys: written_keys,
        bytes,
        elapsed: started.elapsed(),
        changes_at_start,
        keys_written_by_changes,
        longest_key_write,
    })
}
