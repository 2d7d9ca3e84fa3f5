//! DUMP and RESTORE: a key's value in Redis's serialization format (the
//! RDB encoding of `crate::rdb`, then the RDB version and a CRC64), so that
//! values move between Larder and Redis 7.0 in either direction.

use super::flags::*;
use super::parse::{int_arg, is_keyword};
use super::reads;
use super::{CommandSpec, Ctx, FIRST_KEY};
use crate::error::{Error, Result};
use crate::pubsub::events;
use crate::rdb::{self, Reader};
use crate::store::{lazyfree, ValueRef};

const KEYSPACE: &[&str] = &["keyspace"];
const KEYSPACE_DANGEROUS: &[&str] = &["keyspace", "dangerous"];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("dump", 2, READONLY, FIRST_KEY, dump)
        .acl(KEYSPACE)
        .tips(&["nondeterministic_output"])
        .doc(
            "generic",
            "2.6.0",
            "Return a serialized version of the value stored at the specified key.",
            "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1).",
        ),
    CommandSpec::new("restore", -4, WRITE | DENYOOM, FIRST_KEY, restore)
        .acl(KEYSPACE_DANGEROUS)
        .key_spec_flags(&["OW", "update"])
        .doc(
            "generic",
            "2.6.0",
            "Create a key using the provided serialized value, previously obtained using DUMP.",
            "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).",
        ),
];

/// Whether strings in payloads are LZF-compressed (`rdbcompression`).
fn compression(ctx: &Ctx) -> bool {
    ctx.shared
        .config
        .read()
        .get("rdbcompression")
        .is_none_or(|v| v != "no")
}

/// The DUMP payload of a value (Redis's `createDumpPayload`): the type
/// byte and body, the RDB version (2 bytes, little endian) and the CRC64
/// of everything before it (8 bytes, little endian). A hash with field TTLs
/// carries version 12, the first that has them.
///
/// ```
/// use larder::commands::dump_payload;
/// use larder::store::ValueRef;
///
/// let payload = dump_payload(ValueRef::Str(b"hello"), true);
/// assert_eq!(payload[..7], [0, 5, b'h', b'e', b'l', b'l', b'o']);
/// assert_eq!(payload[7..9], [10, 0]); // RDB version 10
/// ```
pub fn dump_payload(value: ValueRef<'_>, compress: bool) -> Vec<u8> {
    let mut out = Vec::new();
    rdb::write_object(&mut out, value, compress);
    let version = if rdb::needs_version_12(value) {
        rdb::RDB_VERSION_FIELD_TTLS
    } else {
        rdb::RDB_VERSION
    };
    out.extend_from_slice(&version.to_le_bytes());
    let crc = rdb::crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// DUMP key
fn dump(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let compress = compression(ctx);
    let shared = ctx.shared;
    let payload = {
        let mut locked = ctx.locks.key(key)?;
        let db = locked.db(dbi, key)?;
        db.get(key, now)
            .map(|entry| dump_payload(entry.value(), compress))
    };
    match payload {
        None => {
            reads::miss(shared, dbi, key);
            ctx.out.null();
        }
        Some(payload) => {
            reads::hit(shared);
            ctx.out.bulk(&payload);
        }
    }
    Ok(())
}

/// Redis's `verifyDumpPayload`: the version (at most 10, what Redis 7.0
/// reads; 12 only for the hash-with-field-TTL types Larder writes with it)
/// and the checksum. Returns the bytes before the footer.
fn verify_payload(payload: &[u8]) -> Option<()> {
    if payload.len() < 10 {
        return None;
    }
    let footer = &payload[payload.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let field_ttl_type = matches!(
        payload[0],
        rdb::types::HASH_METADATA | rdb::types::HASH_LISTPACK_EX
    );
    if version > rdb::RDB_VERSION && !(field_ttl_type && version <= rdb::RDB_VERSION_FIELD_TTLS) {
        return None;
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    (rdb::crc64(0, &payload[..payload.len() - 8]) == u64::from_le_bytes(crc)).then_some(())
}

/// The value types Redis 7.0 knows (its `rdbIsObjectType`), and Larder's
/// own field-TTL hashes.
fn known_type(t: u8) -> bool {
    matches!(t, 0..=7 | 9..=19)
        || matches!(t, rdb::types::HASH_METADATA | rdb::types::HASH_LISTPACK_EX)
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
/// [FREQ frequency]
fn restore(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let key = argv[1];
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<u64>, Option<u8>) = (None, None);
    let mut j = 4;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        if is_keyword(argv[j], "replace") {
            replace = true;
        } else if is_keyword(argv[j], "absttl") {
            absttl = true;
        } else if is_keyword(argv[j], "idletime") && more && freq.is_none() {
            let v = int_arg(argv[j + 1])?;
            if v < 0 {
                return Err(Error::err("Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(v as u64);
            j += 1;
        } else if is_keyword(argv[j], "freq") && more && idle.is_none() {
            let v = int_arg(argv[j + 1])?;
            if !(0..=255).contains(&v) {
                return Err(Error::err("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            freq = Some(v as u8);
            j += 1;
        } else {
            return Err(Error::syntax());
        }
        j += 1;
    }
    let (dbi, now) = (ctx.db(), ctx.now_ms);
    let shared = ctx.shared;
    let pubsub = &*shared.pubsub;
    let mut locked = ctx.locks.key(key)?;
    let db = locked.db(dbi, key)?;
    if !replace && db.contains(key, now) {
        return Err(Error::raw("BUSYKEY Target key name already exists."));
    }
    let ttl = int_arg(argv[2])?;
    if ttl < 0 {
        return Err(Error::err("Invalid TTL value, must be >= 0"));
    }
    let payload = argv[3];
    if verify_payload(payload).is_none() {
        return Err(Error::err("DUMP payload version or checksum are wrong"));
    }
    // As Redis, the object is read from the whole payload, footer included.
    let mut reader = Reader::new(&payload[1..]);
    let value = match payload[0] {
        t if known_type(t) => rdb::read_object(&mut reader, t, now),
        t => Err(rdb::RdbError::UnknownType(t)),
    };
    let value = match value {
        Ok(Some(value)) => Some(value),
        // A hash whose fields all expired is gone, as a key restored with a
        // TTL in the past.
        Ok(None)
            if matches!(
                payload[0],
                rdb::types::HASH_METADATA | rdb::types::HASH_LISTPACK_EX
            ) =>
        {
            None
        }
        // An empty collection is bad data to Redis.
        Ok(None) | Err(_) => return Err(Error::err("Bad data format")),
    };
    let expires_at = match ttl {
        0 => None,
        t if absttl => Some(t as u64),
        t => Some((t as u64).saturating_add(now)),
    };
    // REPLACE: Redis deletes the old key, then adds the new one afresh (no
    // LFU counter inherited).
    let old = if replace { db.remove(key, now) } else { None };
    let restored = match value {
        Some(value) if expires_at.is_none_or(|at| at > now) => {
            db.insert(key, value, expires_at, now);
            if let Some(entry) = db.peek(key, now) {
                if let Some(idle) = idle {
                    entry.set_idle_secs(idle, now);
                }
                if let Some(freq) = freq {
                    entry.set_frequency(freq, now);
                }
            }
            pubsub.notify(events::GENERIC, "restore", key, dbi);
            true
        }
        // Already expired: only the old key goes.
        _ => {
            if old.is_some() {
                pubsub.notify(events::GENERIC, "del", key, dbi);
            }
            false
        }
    };
    drop(locked);
    if restored {
        // Clients blocked (BLPOP...) on the key may now be served.
        ctx.shared.blocking.key_ready(dbi, key, None);
    }
    // The old value is freed off the shard lock, as DEL frees (Redis's
    // dbDelete frees it synchronously).
    if let Some(old) = old {
        if lazyfree::free_effort(old.value()) > lazyfree::LAZYFREE_THRESHOLD {
            ctx.store().free_value(old.into_value(), false);
        }
    }
    ctx.out.ok();
    Ok(())
}
