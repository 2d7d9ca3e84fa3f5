//! Reading an RDB file into the store at start: every opcode Redis 7.0 to
//! 7.4 writes, the checksum verified, keys past their TTL skipped.
//!
//! A file that cannot be read whole is an error that stops the start-up
//! (the caller exits): never a partial load served to clients. When the
//! file carries a checksum it is verified over the whole file before a
//! single key is stored, so a corrupt byte anywhere stores nothing.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::opcodes::*;
use crate::rdb::{self, RdbError, Reader};
use crate::store::Store;

/// What a load stored.
#[derive(Debug, Clone, Default)]
pub struct LoadStats {
    pub keys_loaded: u64,
    /// Keys whose TTL had passed: skipped, as Redis does.
    pub keys_expired: u64,
    pub functions: u64,
    pub bytes: u64,
    pub version: u16,
    pub elapsed: Duration,
}

/// Why a file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Io(std::io::Error),
    /// The file is not an RDB file Larder can read: what is wrong, and
    /// where.
    Invalid(String),
    /// The caller stopped the load (a shutdown asked for meanwhile).
    Stopped,
}

/// What the loader tells its caller as it goes (INFO's `loading_*`
/// fields, `key-load-delay`).
#[derive(Debug, Clone, Copy)]
pub enum LoadEvent {
    /// The file's `used-mem` AUX field: the memory of the server that
    /// wrote it.
    UsedMem(u64),
    /// A key was stored; `position` bytes of the file are read.
    Key { position: u64 },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(error) => write!(f, "{error}"),
            LoadError::Invalid(what) => f.write_str(what),
            LoadError::Stopped => f.write_str("loading stopped by a shutdown"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Progress lines in the log: every this many keys...
const PROGRESS_KEYS: u64 = 1_000_000;
/// ...or this often, whichever comes first.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

fn invalid(what: impl Into<String>) -> LoadError {
    LoadError::Invalid(what.into())
}

/// Loads the RDB file at `path` into `store` (which should be empty);
/// keys whose TTL passed before `now_ms` are skipped. `functions` gets the
/// code of each function library; `events` hears of progress and stops
/// the load by returning false. With `merge`, a key already in the store
/// is replaced (DEBUG RELOAD MERGE); else it is an error. Progress goes to
/// the log too.
pub fn load_file(
    store: &Store,
    path: &Path,
    now_ms: u64,
    merge: bool,
    functions: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    events: &mut dyn FnMut(LoadEvent) -> bool,
) -> Result<LoadStats, LoadError> {
    let started = Instant::now();
    let data = std::fs::read(path).map_err(LoadError::Io)?;
    let mut stats = load_bytes(store, &data, now_ms, merge, functions, events, started)?;
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// [`load_file`] of bytes already read.
pub fn load_bytes(
    store: &Store,
    data: &[u8],
    now_ms: u64,
    merge: bool,
    functions: &mut dyn FnMut(&[u8]) -> Result<(), String>,
    events: &mut dyn FnMut(LoadEvent) -> bool,
    started: Instant,
) -> Result<LoadStats, LoadError> {
    if data.len() < 9 || &data[..5] != b"REDIS" {
        return Err(invalid("Wrong signature trying to load DB from file"));
    }
    let version = std::str::from_utf8(&data[5..9])
        .ok()
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(0);
    if !(1..=rdb::RDB_VERSION_FIELD_TTLS).contains(&version) {
        return Err(invalid(format!(
            "Can't handle RDB format version {version}"
        )));
    }
    // The checksum of a well-formed file is its last 8 bytes: checked
    // before anything is stored. (A file with bytes after its checksum is
    // checked again where its EOF really is.)
    let prechecked = version >= 5 && data.len() >= 17 && {
        let (body, tail) = data.split_at(data.len() - 8);
        let expected = u64::from_le_bytes(tail.try_into().unwrap_or([0; 8]));
        let got = rdb::crc64(0, body);
        if expected != 0 && expected != got && body.last() == Some(&EOF) {
            return Err(invalid(format!(
                "Wrong RDB checksum expected: ({expected:x}) got ({got:x}). Aborting now."
            )));
        }
        expected == got
    };
    let mut r = Reader::new(&data[9..]);
    let mut stats = LoadStats {
        version,
        bytes: data.len() as u64,
        ..LoadStats::default()
    };
    let databases = store.databases();
    let mut db = 0usize;
    let mut expires_at: Option<u64> = None;
    let mut idle: Option<u64> = None;
    let mut freq: Option<u8> = None;
    let mut last_progress = Instant::now();
    let at = |r: &Reader<'_>| r.position() + 9;
    let corrupt = |r: &Reader<'_>, error: RdbError| {
        invalid(format!(
            "Short read or OOM loading DB. Unrecoverable error, aborting now. ({error} at byte {})",
            r.position() + 9
        ))
    };
    loop {
        let opcode = r.read_u8().map_err(|e| corrupt(&r, e))?;
        match opcode {
            EXPIRETIME => {
                let seconds = r.read_u32_le().map_err(|e| corrupt(&r, e))?;
                expires_at = Some(u64::from(seconds) * 1000);
            }
            EXPIRETIME_MS => {
                expires_at = Some(r.read_u64_le().map_err(|e| corrupt(&r, e))?);
            }
            FREQ => freq = Some(r.read_u8().map_err(|e| corrupt(&r, e))?),
            IDLE => idle = Some(r.read_length().map_err(|e| corrupt(&r, e))?),
            EOF => break,
            SELECTDB => {
                let index = r.read_length().map_err(|e| corrupt(&r, e))?;
                if index >= databases as u64 {
                    return Err(invalid(format!(
                        "FATAL: Data file was created with a Redis server configured to handle more than {databases} databases (it selects database {index}). Exiting"
                    )));
                }
                db = index as usize;
            }
            RESIZEDB => {
                // A hint for table sizes: Larder's tables grow as keys come.
                r.read_length().map_err(|e| corrupt(&r, e))?;
                r.read_length().map_err(|e| corrupt(&r, e))?;
            }
            SLOT_INFO => {
                // Cluster slot sizes (Redis 7.4+): a hint, ignored.
                for _ in 0..3 {
                    r.read_length().map_err(|e| corrupt(&r, e))?;
                }
            }
            AUX => {
                let key = r.read_string().map_err(|e| corrupt(&r, e))?;
                let value = r.read_string().map_err(|e| corrupt(&r, e))?;
                match &key[..] {
                    b"redis-ver" => tracing::info!(
                        "Loading RDB produced by version {}",
                        String::from_utf8_lossy(&value)
                    ),
                    b"ctime" => tracing::info!(
                        "RDB age {} seconds",
                        (now_ms / 1000).saturating_sub(
                            std::str::from_utf8(&value)
                                .ok()
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(now_ms / 1000)
                        )
                    ),
                    _ => {}
                }
            }
            MODULE_AUX => {
                return Err(invalid(format!(
                    "The RDB file contains AUX module data (at byte {}): Larder loads no modules and cannot load it",
                    at(&r) - 1
                )));
            }
            FUNCTION_PRE_GA => {
                return Err(invalid("Pre-release function format not supported."));
            }
            FUNCTION2 => {
                let code = r.read_string().map_err(|e| corrupt(&r, e))?;
                functions(&code).map_err(|error| {
                    invalid(format!("Failed loading library from the RDB file: {error}"))
                })?;
                stats.functions += 1;
            }
            type_byte if rdb::types::is_object_type(type_byte) => {
                let key = r.read_string().map_err(|e| corrupt(&r, e))?;
                let value = match rdb::read_object(&mut r, type_byte, now_ms) {
                    Ok(value) => value,
                    Err(RdbError::Module) => {
                        return Err(invalid(format!(
                            "The RDB file holds a module value (key '{}'): Larder loads no modules and cannot load it",
                            String::from_utf8_lossy(&key)
                        )))
                    }
                    Err(error) => return Err(corrupt(&r, error)),
                };
                let (expiry, key_idle, key_freq) = (expires_at.take(), idle.take(), freq.take());
                let Some(value) = value else {
                    // Empty once its expired hash fields are dropped.
                    stats.keys_expired += 1;
                    continue;
                };
                if expiry.is_some_and(|at| at <= now_ms) {
                    stats.keys_expired += 1;
                    continue;
                }
                let mut locks = store.lock_keys([key.as_slice()]);
                let part = locks
                    .db(db, &key)
                    .map_err(|error| invalid(error.to_string()))?;
                if merge {
                    drop(part.remove(&key, now_ms));
                }
                if !part.insert_loaded(&key, value, expiry, part.removals(), now_ms) {
                    return Err(invalid(format!(
                        "RDB has duplicated key '{}' in DB {db}",
                        String::from_utf8_lossy(&key)
                    )));
                }
                if key_idle.is_some() || key_freq.is_some() {
                    if let Some(entry) = part.peek(&key, now_ms) {
                        if let Some(idle) = key_idle {
                            entry.set_idle_secs(idle, now_ms);
                        }
                        if let Some(counter) = key_freq {
                            entry.set_frequency(counter, now_ms);
                        }
                    }
                }
                stats.keys_loaded += 1;
                if !events(LoadEvent::Key {
                    position: at(&r) as u64,
                }) {
                    return Err(LoadError::Stopped);
                }
                if stats.keys_loaded.is_multiple_of(PROGRESS_KEYS)
                    || (stats.keys_loaded.is_multiple_of(1024)
                        && last_progress.elapsed() >= PROGRESS_EVERY)
                {
                    last_progress = Instant::now();
                    tracing::info!(
                        keys = stats.keys_loaded,
                        percent = (at(&r) * 100 / data.len()) as u64,
                        seconds = started.elapsed().as_secs(),
                        "Loading RDB: {} keys so far",
                        stats.keys_loaded
                    );
                }
            }
            other => {
                return Err(invalid(format!(
                    "Unknown RDB encoding type {other} at byte {}",
                    at(&r) - 1
                )));
            }
        }
    }
    if version >= 5 {
        let expected = r.read_u64_le().map_err(|e| corrupt(&r, e))?;
        if expected == 0 {
            tracing::warn!("RDB file was saved with checksum disabled: no check performed.");
        } else if !prechecked {
            let got = rdb::crc64(0, &data[..at(&r) - 8]);
            if got != expected {
                return Err(invalid(format!(
                    "Wrong RDB checksum expected: ({expected:x}) got ({got:x}). Aborting now."
                )));
            }
        }
    }
    Ok(stats)
}
