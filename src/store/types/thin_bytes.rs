//! An owned byte string behind one 8-byte pointer: its length is stored in
//! the allocation, before the bytes (LEB128: one byte below 128), instead
//! of beside the pointer as `Box<[u8]>` keeps it. A set of a million
//! members holds a million of these in one vector: 8 bytes an element
//! fewer.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

pub struct ThinBytes(NonNull<u8>);

// SAFETY: a ThinBytes owns its allocation as a Box<[u8]> would, and hands
// out only shared references to it.
unsafe impl Send for ThinBytes {}
// SAFETY: as above; nothing is mutated through a shared reference.
unsafe impl Sync for ThinBytes {}

/// The LEB128 encoding of `len`, and how many bytes it takes.
pub fn encode_len(mut len: usize) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let mut at = 0;
    while len >= 0x80 {
        out[at] = len as u8 | 0x80;
        len >>= 7;
        at += 1;
    }
    out[at] = len as u8;
    (out, at + 1)
}

/// Reads the LEB128 length at the start of `bytes`: (how many bytes it
/// takes, the length). A truncated prefix reads as what it holds.
pub fn decode_len(bytes: &[u8]) -> (usize, usize) {
    let mut len = 0usize;
    for (at, &byte) in bytes.iter().enumerate() {
        len |= usize::from(byte & 0x7f) << (7 * at);
        if byte & 0x80 == 0 {
            return (at + 1, len);
        }
    }
    (bytes.len(), len)
}

impl ThinBytes {
    pub fn new(bytes: &[u8]) -> Self {
        Self::concat(&[bytes])
    }

    /// The bytes of `parts`, one after the other.
    pub fn concat(parts: &[&[u8]]) -> Self {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        let (prefix, prefix_len) = encode_len(len);
        let layout = Self::layout(prefix_len + len);
        // SAFETY: the layout is at least one byte long.
        let Some(ptr) = NonNull::new(unsafe { alloc(layout) }) else {
            handle_alloc_error(layout)
        };
        // SAFETY: the allocation holds prefix_len + len bytes, the parts
        // add up to len, and no source overlaps it.
        unsafe {
            std::ptr::copy_nonoverlapping(prefix.as_ptr(), ptr.as_ptr(), prefix_len);
            let mut at = prefix_len;
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), ptr.as_ptr().add(at), part.len());
                at += part.len();
            }
        }
        ThinBytes(ptr)
    }

    fn layout(size: usize) -> Layout {
        Layout::array::<u8>(size).expect("a byte string fits in memory")
    }

    /// (length of the prefix, length of the bytes).
    #[inline]
    fn lengths(&self) -> (usize, usize) {
        let mut len = 0usize;
        let mut at = 0;
        loop {
            // SAFETY: the prefix was written by `new` and ends at the first
            // byte without the high bit, within the allocation.
            let byte = unsafe { *self.0.as_ptr().add(at) };
            len |= usize::from(byte & 0x7f) << (7 * at);
            at += 1;
            if byte & 0x80 == 0 {
                return (at, len);
            }
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        let (prefix_len, len) = self.lengths();
        // SAFETY: `len` bytes follow the prefix, initialized by `new`, and
        // live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(prefix_len), len) }
    }

    /// The bytes, to change in place (the length stays).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let (prefix_len, len) = self.lengths();
        // SAFETY: as `as_bytes`, and `&mut self` makes this the only
        // reference.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr().add(prefix_len), len) }
    }

    /// Where the allocation starts (what a prefetch loads), without reading
    /// it.
    pub fn address(&self) -> *const u8 {
        self.0.as_ptr()
    }
}

impl Drop for ThinBytes {
    fn drop(&mut self) {
        let (prefix_len, len) = self.lengths();
        // SAFETY: allocated by `new` with this very layout.
        unsafe { dealloc(self.0.as_ptr(), Self::layout(prefix_len + len)) }
    }
}

impl Clone for ThinBytes {
    fn clone(&self) -> Self {
        ThinBytes::new(self.as_bytes())
    }
}

impl std::ops::Deref for ThinBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<[u8]> for ThinBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl From<&[u8]> for ThinBytes {
    fn from(bytes: &[u8]) -> Self {
        ThinBytes::new(bytes)
    }
}

impl PartialEq for ThinBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ThinBytes {}

impl PartialOrd for ThinBytes {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The bytes' order (memcmp's).
impl Ord for ThinBytes {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// Hashes and compares as its bytes do, so maps keyed by it are looked up
/// by `&[u8]`.
impl std::borrow::Borrow<[u8]> for ThinBytes {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::hash::Hash for ThinBytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for ThinBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_class() {
        for len in [0, 1, 126, 127, 128, 129, 16_383, 16_384, 70_000, 3_000_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let thin = ThinBytes::new(&bytes);
            assert_eq!(thin.as_bytes(), &bytes[..], "length {len}");
            let copy = thin.clone();
            drop(thin);
            assert_eq!(&*copy, &bytes[..]);
            assert_eq!(copy, ThinBytes::from(&bytes[..]));
            let (head, tail) = bytes.split_at(len / 3);
            assert_eq!(ThinBytes::concat(&[head, b"", tail]), copy);
            let mut changed = copy.clone();
            changed
                .as_bytes_mut()
                .iter_mut()
                .for_each(|b| *b = b.wrapping_add(1));
            assert!(changed
                .iter()
                .zip(&bytes)
                .all(|(a, b)| *a == b.wrapping_add(1)));
            assert_eq!(changed.len(), len);
        }
        assert_eq!(std::mem::size_of::<ThinBytes>(), 8);
        assert_eq!(std::mem::size_of::<Option<ThinBytes>>(), 8);
    }

    #[test]
    fn the_length_prefix_is_leb128() {
        for (len, prefix) in [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3)] {
            assert_eq!(encode_len(len).1, prefix, "{len}");
            let thin = ThinBytes::new(&vec![7u8; len]);
            assert_eq!(thin.lengths(), (prefix, len));
            let (encoded, encoded_len) = encode_len(len);
            assert_eq!(decode_len(&encoded[..encoded_len]), (prefix, len));
        }
    }
}
