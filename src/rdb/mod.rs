//! Redis's RDB value encoding (`rdb.c`): the codec DUMP/RESTORE and the
//! RDB file use. One floor above `store`: it turns a stored value into
//! Redis 7's bytes and back, and knows nothing of files or commands.
//!
//! What is written is what Redis 7.0 writes (RDB version 10), so that a
//! DUMP from Larder RESTOREs into Redis 7.0; what is read is every encoding
//! Redis 7.0 and 7.4 can produce for the types Larder has (RDB versions up
//! to 12 where the value encodings allow). Input is hostile: every length
//! is checked against the bytes that remain before anything is allocated,
//! and nothing panics.
//!
//! ```
//! use larder::rdb::{read_object, write_object, Reader};
//! use larder::store::Value;
//!
//! let value = Value::Str(b"hello".to_vec());
//! let mut out = Vec::new();
//! write_object(&mut out, value.view(), true);
//! let mut r = Reader::new(&out[1..]);
//! let back = read_object(&mut r, out[0], 0).expect("valid").expect("not empty");
//! assert_eq!(back, value);
//! assert_eq!(r.remaining(), 0);
//! ```
//!

mod crc64;
mod encodings;
pub mod lzf;
mod object;
mod stream;

use std::fmt;

pub use crc64::crc64;
pub use encodings::{
    intset_members, listpack_elements, write_intset, ziplist_elements, zipmap_pairs, Element,
    ListpackWriter,
};
pub use object::{needs_version_12, read_object, write_object};

/// The RDB version Larder writes (Redis 7.0's).
pub const RDB_VERSION: u16 = 10;
/// The RDB version of Redis 7.4, the first with hash field TTLs: a DUMP of
/// a hash with field TTLs carries it (see [`needs_version_12`]).
pub const RDB_VERSION_FIELD_TTLS: u16 = 12;

/// Value type bytes (rdb.h).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    pub const HASH_METADATA: u8 = 24;
    pub const HASH_LISTPACK_EX: u8 = 25;

    /// Whether `t` is a value type byte (as `rdbIsObjectType` of Redis 7.4,
    /// without the pre-GA hash types 22 and 23).
    pub fn is_object_type(t: u8) -> bool {
        matches!(t, 0..=7 | 9..=21 | 24 | 25)
    }
}

/// Why bytes could not be read as a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdbError {
    /// The bytes end before the value does.
    Truncated,
    /// The bytes are not a valid encoding (what is wrong, for logs).
    Corrupt(String),
    /// A type byte Larder does not know.
    UnknownType(u8),
    /// A module value (types 6 and 7): Larder has no modules to load it.
    Module,
}

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RdbError::Truncated => write!(f, "unexpected end of RDB data"),
            RdbError::Corrupt(what) => write!(f, "corrupt RDB data: {what}"),
            RdbError::UnknownType(t) => write!(f, "unknown RDB value type {t}"),
            RdbError::Module => write!(
                f,
                "module values (RDB types 6 and 7) are not supported: Larder loads no modules"
            ),
        }
    }
}

impl std::error::Error for RdbError {}

fn corrupt(what: impl Into<String>) -> RdbError {
    RdbError::Corrupt(what.into())
}

// ---------------------------------------------------------------------------
// Writing.
// ---------------------------------------------------------------------------

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Appends an RDB length (`rdbSaveLen`): 6, 14, 32 or 64 bits.
///
/// ```
/// let mut out = Vec::new();
/// larder::rdb::write_length(&mut out, 300);
/// assert_eq!(out, [0x41, 0x2c]);
/// ```
pub fn write_length(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// The integer encoding `rdbTryIntegerEncoding` would choose for `s`, if
/// any: a string of at most 11 bytes in `string2ll` form within 32 bits.
fn integer_encoding(s: &[u8], out: &mut Vec<u8>) -> bool {
    if s.len() > 11 {
        return false;
    }
    let Some(v) = crate::numbers::strict_i64(s) else {
        return false;
    };
    if let Ok(v) = i8::try_from(v) {
        out.push(0xc0 | ENC_INT8);
        out.push(v as u8);
    } else if let Ok(v) = i16::try_from(v) {
        out.push(0xc0 | ENC_INT16);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.push(0xc0 | ENC_INT32);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Appends a string as `rdbSaveRawString`: integers of up to 32 bits in
/// their integer encoding, strings longer than 20 bytes LZF-compressed when
/// `compress` and it saves at least 4 bytes, others raw.
///
/// ```
/// let mut out = Vec::new();
/// larder::rdb::write_string(&mut out, b"-5", true);
/// assert_eq!(out, [0xc0, 0xfb]);
/// ```
pub fn write_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if integer_encoding(s, out) {
        return;
    }
    if compress && s.len() > 20 {
        if let Some(packed) = lzf::compress(s, s.len() - 4) {
            out.push(0xc0 | ENC_LZF);
            write_length(out, packed.len() as u64);
            write_length(out, s.len() as u64);
            out.extend_from_slice(&packed);
            return;
        }
    }
    write_length(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends a double as `rdbSaveBinaryDoubleValue` (8 bytes, little endian).
pub fn write_binary_double(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

// ---------------------------------------------------------------------------
// Reading.
// ---------------------------------------------------------------------------

/// A cursor over RDB bytes; every read checks what remains.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next `n` bytes.
    pub fn read_bytes(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        if n > self.remaining() {
            return Err(RdbError::Truncated);
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    pub fn read_u8(&mut self) -> Result<u8, RdbError> {
        Ok(self.read_bytes(1)?[0])
    }

    pub fn read_u16_le(&mut self) -> Result<u16, RdbError> {
        let b = self.read_bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn read_u32_le(&mut self) -> Result<u32, RdbError> {
        let b = self.read_bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_u64_le(&mut self) -> Result<u64, RdbError> {
        let b = self.read_bytes(8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }

    /// A length or, for the special string encodings, `(code, true)`
    /// (`rdbLoadLenByRef`).
    pub fn read_length_or_encoding(&mut self) -> Result<(u64, bool), RdbError> {
        let b = self.read_u8()?;
        match b >> 6 {
            0 => Ok(((b & 0x3f) as u64, false)),
            1 => {
                let lo = self.read_u8()?;
                Ok(((((b & 0x3f) as u64) << 8) | lo as u64, false))
            }
            3 => Ok(((b & 0x3f) as u64, true)),
            _ => match b {
                0x80 => {
                    let w = self.read_bytes(4)?;
                    Ok((u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64, false))
                }
                0x81 => {
                    let w = self.read_bytes(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(w);
                    Ok((u64::from_be_bytes(a), false))
                }
                _ => Err(corrupt(format!("unknown length encoding {b}"))),
            },
        }
    }

    /// A length (`rdbLoadLen`); a string encoding here is corrupt.
    pub fn read_length(&mut self) -> Result<u64, RdbError> {
        match self.read_length_or_encoding()? {
            (len, false) => Ok(len),
            (_, true) => Err(corrupt("string encoding where a length was expected")),
        }
    }

    /// A length that counts items of at least `min_item_bytes` bytes each
    /// still to read: refused when the bytes left cannot hold them, so that
    /// no loop or allocation trusts a hostile count.
    pub fn read_count(&mut self, min_item_bytes: usize) -> Result<usize, RdbError> {
        let len = self.read_length()?;
        let fits = usize::try_from(len)
            .ok()
            .filter(|&n| n.saturating_mul(min_item_bytes.max(1)) <= self.remaining());
        fits.ok_or(RdbError::Truncated)
    }

    /// A string in any of its encodings (`rdbGenericLoadStringObject`).
    pub fn read_string(&mut self) -> Result<Vec<u8>, RdbError> {
        let (len, encoded) = self.read_length_or_encoding()?;
        if !encoded {
            let len = usize::try_from(len).map_err(|_| RdbError::Truncated)?;
            return Ok(self.read_bytes(len)?.to_vec());
        }
        match len as u8 {
            ENC_INT8 => Ok((self.read_u8()? as i8).to_string().into_bytes()),
            ENC_INT16 => Ok((self.read_u16_le()? as i16).to_string().into_bytes()),
            ENC_INT32 => Ok((self.read_u32_le()? as i32).to_string().into_bytes()),
            ENC_LZF => {
                let clen = self.read_length()?;
                let len = self.read_length()?;
                let clen = usize::try_from(clen).map_err(|_| RdbError::Truncated)?;
                let packed = self.read_bytes(clen)?;
                // A back-reference of 3 bytes makes at most 264: a length
                // beyond that ratio cannot be honest.
                let bound = (clen as u64).saturating_mul(88).saturating_add(8);
                if len > bound {
                    return Err(corrupt("LZF length out of proportion"));
                }
                lzf::decompress(packed, len as usize)
                    .ok_or_else(|| corrupt("Invalid LZF compressed string"))
            }
            other => Err(corrupt(format!("unknown string encoding {other}"))),
        }
    }

    /// A double as `rdbLoadBinaryDoubleValue`.
    pub fn read_binary_double(&mut self) -> Result<f64, RdbError> {
        Ok(f64::from_bits(self.read_u64_le()?))
    }

    /// A double in the old text form of `RDB_TYPE_ZSET` (`rdbLoadDoubleValue`):
    /// a length byte (253 NaN, 254 +inf, 255 -inf) and `%.17g` text.
    pub fn read_text_double(&mut self) -> Result<f64, RdbError> {
        let len = self.read_u8()?;
        match len {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let text = self.read_bytes(n as usize)?;
                std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.trim().parse::<f64>().ok())
                    .ok_or_else(|| corrupt("bad double value"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_in_their_smallest_form() {
        for (len, size) in [
            (0u64, 1usize),
            (63, 1),
            (64, 2),
            (16383, 2),
            (16384, 5),
            (u32::MAX as u64, 5),
            (u32::MAX as u64 + 1, 9),
            (u64::MAX, 9),
        ] {
            let mut out = Vec::new();
            write_length(&mut out, len);
            assert_eq!(out.len(), size, "{len}");
            let mut r = Reader::new(&out);
            assert_eq!(r.read_length(), Ok(len));
            assert_eq!(r.remaining(), 0);
        }
        assert!(Reader::new(&[0x82]).read_length().is_err());
        assert_eq!(
            Reader::new(&[0x80, 0, 0]).read_length(),
            Err(RdbError::Truncated)
        );
    }

    #[test]
    fn strings_take_redis_encodings() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"0", &[0xc0, 0]),
            (b"-128", &[0xc0, 0x80]),
            (b"128", &[0xc1, 0x80, 0]),
            (b"-2147483648", &[0xc2, 0, 0, 0, 0x80]),
            (b"2147483648", b"\x0a2147483648"),
            (b"01", b"\x0201"),
        ];
        for (s, want) in cases {
            let mut out = Vec::new();
            write_string(&mut out, s, true);
            assert_eq!(out, want, "{}", String::from_utf8_lossy(s));
            assert_eq!(Reader::new(&out).read_string().as_deref(), Ok(s));
        }
        let long = b"a".repeat(100);
        let mut out = Vec::new();
        write_string(&mut out, &long, true);
        assert_eq!(out[0], 0xc3);
        assert!(out.len() < 20);
        assert_eq!(Reader::new(&out).read_string(), Ok(long.clone()));
        let mut raw = Vec::new();
        write_string(&mut raw, &long, false);
        assert_eq!(raw.len(), 102);
        // A lying LZF length is refused before anything is allocated.
        let lie = [
            0xc3, 0x02, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0,
        ];
        assert!(Reader::new(&lie).read_string().is_err());
    }
}
