//! The compact blobs Redis stores inside RDB strings: listpacks (7.0's
//! small hashes, sorted sets and quicklist nodes), and the older ziplists,
//! intsets and zipmaps (read only). Every byte is hostile: every offset is
//! bounds-checked, every length compared with what remains, nothing
//! allocated from a length field alone.

use super::RdbError;

fn corrupt(what: &str) -> RdbError {
    RdbError::Corrupt(what.to_string())
}

/// One element of a listpack or ziplist: bytes or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl Element<'_> {
    /// The element as a string (integers in decimal, as Redis returns them).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Element::Bytes(b) => b.to_vec(),
            Element::Int(i) => i.to_string().into_bytes(),
        }
    }

    /// The element as a signed integer, if it is one (stream fields are).
    pub fn as_int(self) -> Option<i64> {
        match self {
            Element::Int(i) => Some(i),
            Element::Bytes(b) => crate::numbers::strict_i64(b),
        }
    }
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | b as u64)
}

// ---------------------------------------------------------------------------
// Listpacks (listpack.c).
// ---------------------------------------------------------------------------

const LP_HEADER: usize = 6;
const LP_EOF: u8 = 0xff;

/// The size in bytes of a listpack back-length for an entry of `len` bytes.
fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn push_backlen(out: &mut Vec<u8>, len: usize) {
    let l = len as u64;
    match backlen_size(len) {
        1 => out.push(l as u8),
        2 => out.extend_from_slice(&[(l >> 7) as u8, ((l & 127) | 128) as u8]),
        3 => out.extend_from_slice(&[
            (l >> 14) as u8,
            (((l >> 7) & 127) | 128) as u8,
            ((l & 127) | 128) as u8,
        ]),
        4 => out.extend_from_slice(&[
            (l >> 21) as u8,
            (((l >> 14) & 127) | 128) as u8,
            (((l >> 7) & 127) | 128) as u8,
            ((l & 127) | 128) as u8,
        ]),
        _ => out.extend_from_slice(&[
            (l >> 28) as u8,
            (((l >> 21) & 127) | 128) as u8,
            (((l >> 14) & 127) | 128) as u8,
            (((l >> 7) & 127) | 128) as u8,
            ((l & 127) | 128) as u8,
        ]),
    }
}

/// Reads the back-length that ends at `end` (exclusive), as lpDecodeBacklen.
fn decode_backlen(blob: &[u8], end: usize) -> Option<usize> {
    let mut value: u64 = 0;
    let mut shift = 0;
    let mut p = end;
    loop {
        p = p.checked_sub(1)?;
        let b = *blob.get(p)?;
        value |= ((b & 127) as u64) << shift;
        if b & 128 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    usize::try_from(value).ok()
}

/// Builds a listpack as `lpAppend` does: strings that are integers in
/// Redis's `string2ll` form are stored as integers.
#[derive(Debug)]
pub struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackWriter {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; LP_HEADER]);
        ListpackWriter { buf, count: 0 }
    }

    /// Bytes the listpack would have if finished now.
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a string (stored as an integer when it is one).
    pub fn push(&mut self, s: &[u8]) {
        match crate::numbers::strict_i64(s) {
            Some(i) => self.push_int(i),
            None => self.push_str(s),
        }
    }

    /// Appends an integer in its smallest encoding.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1fff;
            self.buf.push(0xc0 | (u >> 8) as u8);
            self.buf.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            self.buf.push(0xf1);
            self.buf.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8_388_608..=8_388_607).contains(&v) {
            self.buf.push(0xf2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if i32::try_from(v).is_ok() {
            self.buf.push(0xf3);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.buf.push(0xf4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        let len = self.buf.len() - start;
        push_backlen(&mut self.buf, len);
        self.count += 1;
    }

    /// Appends bytes as a string entry (never as an integer).
    pub fn push_str(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let len = s.len();
        if len < 64 {
            self.buf.push(0x80 | len as u8);
        } else if len < 4096 {
            self.buf.push(0xe0 | (len >> 8) as u8);
            self.buf.push(len as u8);
        } else {
            self.buf.push(0xf0);
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        let entry = self.buf.len() - start;
        push_backlen(&mut self.buf, entry);
        self.count += 1;
    }

    /// The finished listpack.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(LP_EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(u16::MAX);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// Every element of a listpack, validated as `lpValidateIntegrity` with
/// deep checks: header size and count, each entry's encoding, length and
/// back-length, the terminator at the very end.
pub fn listpack_elements(blob: &[u8]) -> Result<Vec<Element<'_>>, RdbError> {
    if blob.len() < LP_HEADER + 1 {
        return Err(corrupt("listpack too short"));
    }
    let total = le(&blob[0..4]) as usize;
    if total != blob.len() {
        return Err(corrupt("listpack size mismatch"));
    }
    if blob[blob.len() - 1] != LP_EOF {
        return Err(corrupt("listpack not terminated"));
    }
    let declared = le(&blob[4..6]) as usize;
    let end = blob.len() - 1;
    // Each entry takes at least two bytes.
    let mut elements = Vec::with_capacity(declared.min((end - LP_HEADER) / 2));
    let mut p = LP_HEADER;
    while p < end {
        let start = p;
        let b = blob[p];
        let need = |n: usize| -> Result<&[u8], RdbError> {
            blob.get(start + 1..start + 1 + n)
                .filter(|_| start + 1 + n <= end)
                .ok_or_else(|| corrupt("listpack entry out of range"))
        };
        let (element, size) = if b & 0x80 == 0 {
            (Element::Int((b & 0x7f) as i64), 1)
        } else if b & 0xc0 == 0x80 {
            let len = (b & 0x3f) as usize;
            (Element::Bytes(need(len)?), 1 + len)
        } else if b & 0xe0 == 0xc0 {
            let lo = need(1)?[0] as u64;
            let u = (((b & 0x1f) as u64) << 8) | lo;
            // 13-bit two's complement.
            let v = if u >= 1 << 12 {
                u as i64 - (1 << 13)
            } else {
                u as i64
            };
            (Element::Int(v), 2)
        } else if b & 0xf0 == 0xe0 {
            let lo = need(1)?[0] as usize;
            let len = (((b & 0x0f) as usize) << 8) | lo;
            let data = blob
                .get(start + 2..start + 2 + len)
                .filter(|_| start + 2 + len <= end)
                .ok_or_else(|| corrupt("listpack entry out of range"))?;
            (Element::Bytes(data), 2 + len)
        } else {
            match b {
                0xf1 => (Element::Int(le(need(2)?) as u16 as i16 as i64), 3),
                0xf2 => {
                    let u = le(need(3)?) as u32;
                    (Element::Int(((u << 8) as i32 >> 8) as i64), 4)
                }
                0xf3 => (Element::Int(le(need(4)?) as u32 as i32 as i64), 5),
                0xf4 => (Element::Int(le(need(8)?) as i64), 9),
                0xf0 => {
                    let len = le(need(4)?) as usize;
                    let data = blob
                        .get(start + 5..)
                        .and_then(|rest| rest.get(..len))
                        .filter(|_| start + 5 + len <= end)
                        .ok_or_else(|| corrupt("listpack entry out of range"))?;
                    (Element::Bytes(data), 5 + len)
                }
                _ => return Err(corrupt("listpack bad entry encoding")),
            }
        };
        let after = start + size + backlen_size(size);
        if after > end || decode_backlen(blob, after) != Some(size) {
            return Err(corrupt("listpack bad back-length"));
        }
        elements.push(element);
        p = after;
    }
    if declared != u16::MAX as usize && declared != elements.len() {
        return Err(corrupt("listpack count mismatch"));
    }
    Ok(elements)
}

// ---------------------------------------------------------------------------
// Ziplists (ziplist.c, read only: Redis 7 converts them on load).
// ---------------------------------------------------------------------------

const ZL_HEADER: usize = 10;
const ZL_END: u8 = 0xff;

/// Every element of a ziplist, with `ziplistValidateIntegrity`'s deep
/// checks (sizes, tail offset, each entry's prevlen, the terminator).
pub fn ziplist_elements(blob: &[u8]) -> Result<Vec<Element<'_>>, RdbError> {
    if blob.len() < ZL_HEADER + 1 {
        return Err(corrupt("ziplist too short"));
    }
    if le(&blob[0..4]) as usize != blob.len() {
        return Err(corrupt("ziplist size mismatch"));
    }
    let tail = le(&blob[4..8]) as usize;
    let declared = le(&blob[8..10]) as usize;
    let end = blob.len() - 1;
    if blob[end] != ZL_END || tail > end {
        return Err(corrupt("ziplist bad tail or terminator"));
    }
    let mut elements = Vec::with_capacity(declared.min((end - ZL_HEADER) / 2));
    let mut p = ZL_HEADER;
    let mut prev_len = 0usize;
    let mut last_start = ZL_HEADER;
    while p < end {
        let start = p;
        let bad = || corrupt("ziplist entry out of range");
        // prevlen
        let (prevlen, mut q) = if blob[p] < 254 {
            (blob[p] as usize, p + 1)
        } else if blob[p] == 254 {
            let b = blob.get(p + 1..p + 5).ok_or_else(bad)?;
            (le(b) as usize, p + 5)
        } else {
            return Err(bad());
        };
        if prevlen != prev_len {
            return Err(corrupt("ziplist bad prevlen"));
        }
        let enc = *blob.get(q).ok_or_else(bad)?;
        let take = |from: usize, n: usize| -> Result<&[u8], RdbError> {
            blob.get(from..)
                .and_then(|rest| rest.get(..n))
                .filter(|_| from + n <= end)
                .ok_or_else(bad)
        };
        let element = match enc >> 6 {
            0 => {
                let len = (enc & 0x3f) as usize;
                q += 1;
                let data = take(q, len)?;
                q += len;
                Element::Bytes(data)
            }
            1 => {
                let lo = take(q + 1, 1)?[0] as usize;
                let len = (((enc & 0x3f) as usize) << 8) | lo;
                q += 2;
                let data = take(q, len)?;
                q += len;
                Element::Bytes(data)
            }
            2 => {
                if enc != 0x80 {
                    return Err(corrupt("ziplist bad string encoding"));
                }
                let b = take(q + 1, 4)?;
                let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                q += 5;
                let data = take(q, len)?;
                q += len;
                Element::Bytes(data)
            }
            _ => {
                q += 1;
                let (value, n) = match enc {
                    0xc0 => (le(take(q, 2)?) as u16 as i16 as i64, 2),
                    0xd0 => (le(take(q, 4)?) as u32 as i32 as i64, 4),
                    0xe0 => (le(take(q, 8)?) as i64, 8),
                    0xf0 => {
                        let u = le(take(q, 3)?) as u32;
                        (((u << 8) as i32 >> 8) as i64, 3)
                    }
                    0xfe => (take(q, 1)?[0] as i8 as i64, 1),
                    0xf1..=0xfd => ((enc & 0x0f) as i64 - 1, 0),
                    _ => return Err(corrupt("ziplist bad integer encoding")),
                };
                q += n;
                Element::Int(value)
            }
        };
        if q > end {
            return Err(bad());
        }
        elements.push(element);
        prev_len = q - start;
        last_start = start;
        p = q;
    }
    if !elements.is_empty() && tail != last_start {
        return Err(corrupt("ziplist bad tail offset"));
    }
    if declared != u16::MAX as usize && declared != elements.len() {
        return Err(corrupt("ziplist count mismatch"));
    }
    Ok(elements)
}

// ---------------------------------------------------------------------------
// Intsets (intset.c).
// ---------------------------------------------------------------------------

/// The members of an intset, checked sorted and unique.
pub fn intset_members(blob: &[u8]) -> Result<Vec<i64>, RdbError> {
    if blob.len() < 8 {
        return Err(corrupt("intset too short"));
    }
    let width = le(&blob[0..4]) as usize;
    let count = le(&blob[4..8]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(corrupt("intset bad encoding"));
    }
    if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(blob.len()) {
        return Err(corrupt("intset size mismatch"));
    }
    let mut members = Vec::with_capacity(count);
    for chunk in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => le(chunk) as u16 as i16 as i64,
            4 => le(chunk) as u32 as i32 as i64,
            _ => le(chunk) as i64,
        };
        if members.last().is_some_and(|&last| last >= v) {
            return Err(corrupt("intset not sorted"));
        }
        members.push(v);
    }
    Ok(members)
}

/// An intset of `members` (any order, no duplicates), as intset.c lays it
/// out: the narrowest width that holds every member, sorted.
pub fn write_intset(members: &mut [i64]) -> Vec<u8> {
    members.sort_unstable();
    let width: usize = if members.iter().all(|&v| i16::try_from(v).is_ok()) {
        2
    } else if members.iter().all(|&v| i32::try_from(v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + members.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for &v in members.iter() {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

// ---------------------------------------------------------------------------
// Zipmaps (zipmap.c, Redis 2.4's small hashes; read only).
// ---------------------------------------------------------------------------

/// A field and its value.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The field/value pairs of a zipmap.
pub fn zipmap_pairs(blob: &[u8]) -> Result<Vec<Pair<'_>>, RdbError> {
    let bad = || corrupt("zipmap out of range");
    let mut p = 1usize; // zmlen
    if blob.is_empty() {
        return Err(bad());
    }
    let read_len = |p: &mut usize| -> Result<Option<usize>, RdbError> {
        let b = *blob.get(*p).ok_or_else(bad)?;
        match b {
            255 => Ok(None),
            254 => {
                let bytes = blob.get(*p + 1..*p + 5).ok_or_else(bad)?;
                *p += 5;
                Ok(Some(le(bytes) as usize))
            }
            n => {
                *p += 1;
                Ok(Some(n as usize))
            }
        }
    };
    let mut pairs = Vec::new();
    while let Some(flen) = read_len(&mut p)? {
        let field = blob.get(p..).and_then(|r| r.get(..flen)).ok_or_else(bad)?;
        p += flen;
        let vlen = read_len(&mut p)?.ok_or_else(bad)?;
        let free = *blob.get(p).ok_or_else(bad)? as usize;
        p += 1;
        let value = blob.get(p..).and_then(|r| r.get(..vlen)).ok_or_else(bad)?;
        p += vlen + free;
        pairs.push((field, value));
    }
    if p + 1 != blob.len() {
        return Err(corrupt("zipmap trailing bytes"));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_round_trips_every_encoding() {
        let ints = [
            0i64,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -32768,
            32767,
            40000,
            -8_388_608,
            8_388_607,
            9_000_000,
            i32::MIN as i64,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ];
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 200];
        let mut w = ListpackWriter::new();
        for &i in &ints {
            w.push_int(i);
        }
        w.push(b"hello");
        w.push(b"007");
        w.push(&mid);
        w.push(&long);
        w.push(b"");
        let blob = w.finish();
        let got = listpack_elements(&blob).expect("valid");
        let mut want: Vec<Element> = ints.iter().map(|&i| Element::Int(i)).collect();
        want.extend([
            Element::Bytes(b"hello"),
            Element::Bytes(b"007"),
            Element::Bytes(&mid),
            Element::Bytes(&long),
            Element::Bytes(b""),
        ]);
        assert_eq!(got, want);
        // Every truncation or one-byte change is refused or read without panic.
        for cut in 0..blob.len() {
            assert!(listpack_elements(&blob[..cut]).is_err());
        }
        for i in 0..blob.len().min(300) {
            let mut b = blob.clone();
            b[i] ^= 0x5a;
            let _ = listpack_elements(&b);
        }
    }

    #[test]
    fn redis_listpack_bytes() {
        // A listpack Redis 7.0 builds for RPUSH l a 1 (header, "a", 1, EOF).
        let blob = [0x0d, 0, 0, 0, 2, 0, 0x81, b'a', 2, 0x01, 1, 0xff];
        assert_eq!(
            listpack_elements(&blob[..12]).ok(),
            None,
            "size field says 13"
        );
        let mut w = ListpackWriter::new();
        w.push(b"a");
        w.push(b"1");
        let built = w.finish();
        assert_eq!(built, [0x0c, 0, 0, 0, 2, 0, 0x81, b'a', 2, 0x01, 1, 0xff]);
    }

    #[test]
    fn intsets() {
        let mut m = vec![5, -3, 70000];
        let blob = write_intset(&mut m);
        assert_eq!(&blob[0..4], &4u32.to_le_bytes());
        assert_eq!(intset_members(&blob).expect("valid"), vec![-3, 5, 70000]);
        let mut bad = blob.clone();
        bad.pop();
        assert!(intset_members(&bad).is_err());
        let unsorted = [2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 1, 0];
        assert!(intset_members(&unsorted).is_err());
    }

    #[test]
    fn ziplist_and_zipmap() {
        // ziplist of "a", 5 (0xf6), -2 (int8), written by hand.
        let mut z = vec![0u8; 10];
        let e1 = [0u8, 0x01, b'a'];
        let e2 = [3u8, 0xf6];
        let e3 = [2u8, 0xfe, 0xfe];
        z.extend_from_slice(&e1);
        z.extend_from_slice(&e2);
        let tail = z.len();
        z.extend_from_slice(&e3);
        z.push(0xff);
        let total = z.len() as u32;
        z[0..4].copy_from_slice(&total.to_le_bytes());
        z[4..8].copy_from_slice(&(tail as u32).to_le_bytes());
        z[8..10].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(
            ziplist_elements(&z).expect("valid"),
            vec![Element::Bytes(b"a"), Element::Int(5), Element::Int(-2)]
        );
        for cut in 0..z.len() {
            assert!(ziplist_elements(&z[..cut]).is_err());
        }
        let zm = [2u8, 1, b'f', 2, 1, b'v', b'w', 0, 255];
        assert_eq!(
            zipmap_pairs(&zm).expect("valid"),
            vec![(&b"f"[..], &b"vw"[..])]
        );
        assert!(zipmap_pairs(&zm[..8]).is_err());
    }
}
