//! Redis 7.0's HyperLogLog over plain bytes: the `HYLL` string a PF command
//! stores, in its sparse or dense encoding, ported from Redis's
//! `hyperloglog.c` so that the bytes, the counts and the corruption checks
//! are Redis's own.
//!
//! Layout (16-byte header, then the registers):
//!
//! ```text
//! "HYLL" | encoding (0 dense, 1 sparse) | 3 unused | cached cardinality (8 bytes LE)
//! ```
//!
//! The top bit of the cardinality's last byte set means "cache invalid".
//! Dense: 16384 six-bit registers packed LSB first (12288 bytes). Sparse: a
//! run-length code of ZERO (`00xxxxxx`, 1..64 zeros), XZERO (`01xxxxxx
//! yyyyyyyy`, 1..16384 zeros) and VAL (`1vvvvvxx`, value 1..32 repeated
//! 1..4 times) opcodes.
//!
//! Redis reads the byte just past the string where an opcode runs off its
//! end (the SDS terminator, a zero); [`byte_at`] does the same, so a
//! truncated value decodes as it does in Redis, without reading out of
//! bounds.

/// Bits of the hash that choose the register.
pub const P: u32 = 14;
/// Bits left for the run of zeros.
const Q: u32 = 64 - P;
/// Number of registers.
pub const REGISTERS: usize = 1 << P;
const P_MASK: u64 = (REGISTERS - 1) as u64;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
/// Header size.
pub const HDR_SIZE: usize = 16;
/// Size of a dense HLL, header included.
pub const DENSE_SIZE: usize = HDR_SIZE + (REGISTERS * BITS).div_ceil(8);
/// Encoding byte of a dense HLL.
pub const DENSE: u8 = 0;
/// Encoding byte of a sparse HLL.
pub const SPARSE: u8 = 1;
const MAX_ENCODING: u8 = 1;

const SPARSE_XZERO_BIT: u8 = 0x40;
const SPARSE_VAL_BIT: u8 = 0x80;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
const HASH_SEED: u64 = 0xadc8_3b19;

/// `hll-sparse-max-bytes`' default.
pub const DEFAULT_SPARSE_MAX_BYTES: u64 = 3000;

/// The value is not a valid HLL (Redis's `INVALIDOBJ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// The byte at `i`, or the zero Redis finds past the end of its strings.
#[inline]
fn byte_at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

#[inline]
fn is_zero(op: u8) -> bool {
    op & 0xc0 == 0
}
#[inline]
fn is_xzero(op: u8) -> bool {
    op & 0xc0 == SPARSE_XZERO_BIT
}
#[inline]
fn is_val(op: u8) -> bool {
    op & SPARSE_VAL_BIT != 0
}
#[inline]
fn zero_len(op: u8) -> usize {
    (op & 0x3f) as usize + 1
}
#[inline]
fn xzero_len(op: u8, next: u8) -> usize {
    ((((op & 0x3f) as usize) << 8) | next as usize) + 1
}
#[inline]
fn val_value(op: u8) -> u8 {
    ((op >> 2) & 0x1f) + 1
}
#[inline]
fn val_len(op: u8) -> usize {
    (op & 0x3) as usize + 1
}
#[inline]
fn val_op(value: u8, len: usize) -> u8 {
    (((value - 1) << 2) | (len as u8 - 1)) | SPARSE_VAL_BIT
}
#[inline]
fn zero_op(len: usize) -> u8 {
    (len - 1) as u8
}
#[inline]
fn xzero_op(len: usize) -> [u8; 2] {
    let l = len - 1;
    [((l >> 8) as u8) | SPARSE_XZERO_BIT, (l & 0xff) as u8]
}

/// MurmurHash2, 64-bit version, as Redis's endian-neutral `MurmurHash64A`.
pub fn murmur_hash64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in and the length of its `000..1`
/// pattern (1..=51): Redis's `hllPatLen`.
pub fn pat_len(element: &[u8]) -> (usize, u8) {
    let hash = murmur_hash64a(element, HASH_SEED);
    let index = (hash & P_MASK) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// A new, empty HLL: sparse, one XZERO covering every register.
pub fn new_sparse() -> Vec<u8> {
    let mut hll = Vec::with_capacity(HDR_SIZE + 2);
    hll.extend_from_slice(b"HYLL");
    hll.push(SPARSE);
    hll.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(SPARSE_XZERO_MAX_LEN);
        hll.extend_from_slice(&xzero_op(run));
        left -= run;
    }
    hll
}

/// Whether a string value may be used as an HLL (`isHLLObjectOrReply`):
/// the header is there, the magic and the encoding are right, and a dense
/// value has exactly the dense size. The sparse opcodes are checked as they
/// are read.
pub fn is_hll(bytes: &[u8]) -> bool {
    bytes.len() >= HDR_SIZE
        && &bytes[..4] == b"HYLL"
        && bytes[4] <= MAX_ENCODING
        && (bytes[4] != DENSE || bytes.len() == DENSE_SIZE)
}

/// The encoding byte of a valid HLL.
pub fn encoding(hll: &[u8]) -> u8 {
    hll[4]
}

/// The cached cardinality, if valid.
pub fn cached_cardinality(hll: &[u8]) -> Option<u64> {
    if hll[15] & 0x80 != 0 {
        return None;
    }
    Some(u64::from_le_bytes(hll[8..16].try_into().expect("8 bytes")))
}

/// Stores `card` as the cached cardinality (valid, as it is below 2^63).
pub fn set_cached_cardinality(hll: &mut [u8], card: u64) {
    hll[8..16].copy_from_slice(&card.to_le_bytes());
}

/// Marks the cached cardinality stale.
pub fn invalidate_cache(hll: &mut [u8]) {
    hll[15] |= 0x80;
}

/// Dense register `index` of the register bytes `regs`.
#[inline]
fn dense_get(regs: &[u8], index: usize) -> u8 {
    let byte = index * BITS / 8;
    let fb = (index * BITS) & 7;
    let b0 = regs[byte] as u32;
    let b1 = byte_at(regs, byte + 1) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX as u32) as u8
}

#[inline]
fn dense_set_register(regs: &mut [u8], index: usize, value: u8) {
    let byte = index * BITS / 8;
    let fb = (index * BITS) & 7;
    let fb8 = 8 - fb;
    let v = value as u32;
    regs[byte] &= !((REGISTER_MAX as u32) << fb) as u8;
    regs[byte] |= (v << fb) as u8;
    if let Some(next) = regs.get_mut(byte + 1) {
        *next &= !((REGISTER_MAX as u32) >> fb8) as u8;
        *next |= (v >> fb8) as u8;
    }
}

/// `hllDenseSet`: raises register `index` to `count`; true if it changed.
fn dense_set(regs: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(regs, index) {
        dense_set_register(regs, index, count);
        true
    } else {
        false
    }
}

/// `hllSparseToDense`: rewrites a sparse HLL densely (header, and so the
/// cached cardinality, kept). A dense one is left alone.
pub fn sparse_to_dense(hll: &mut Vec<u8>) -> Result<(), Corrupt> {
    if hll[4] == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR_SIZE].copy_from_slice(&hll[..HDR_SIZE]);
    dense[4] = DENSE;
    let regs = &mut dense[HDR_SIZE..];
    let mut idx = 0usize;
    let mut p = HDR_SIZE;
    while p < hll.len() {
        let op = hll[p];
        // Any run past the last register makes the value invalid (the
        // overflow checks of Redis's fix for CVE-2025-32023).
        if is_zero(op) {
            idx += zero_len(op);
            p += 1;
        } else if is_xzero(op) {
            idx += xzero_len(op, byte_at(hll, p + 1));
            p += 2;
        } else {
            let run = val_len(op);
            let value = val_value(op);
            if run + idx > REGISTERS {
                return Err(Corrupt);
            }
            for _ in 0..run {
                dense_set_register(regs, idx, value);
                idx += 1;
            }
            p += 1;
        }
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    *hll = dense;
    Ok(())
}

/// `hllSparseSet`: raises register `index` to `count` in a sparse HLL,
/// promoting it to dense when the value does not fit a VAL opcode or the
/// string would grow past `sparse_max_bytes`. True if a register changed
/// (the cache is then invalidated).
fn sparse_set(
    hll: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max_bytes: u64,
) -> Result<bool, Corrupt> {
    if count > SPARSE_VAL_MAX_VALUE {
        return promote(hll, index, count);
    }
    // Step 1: find the opcode covering `index`.
    let end = hll.len();
    let mut p = HDR_SIZE;
    let mut first = 0usize;
    let mut prev: Option<usize> = None;
    let mut span = 0usize;
    while p < end {
        let op = hll[p];
        let mut oplen = 1;
        if is_zero(op) {
            span = zero_len(op);
        } else if is_val(op) {
            span = val_len(op);
        } else {
            span = xzero_len(op, byte_at(hll, p + 1));
            oplen = 2;
        }
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= end {
        return Err(Corrupt);
    }
    let op = hll[p];
    let xzero = is_xzero(op);
    let next = if xzero { p + 2 } else { p + 1 };
    let has_next = next < end;
    let (zero, runlen) = if is_zero(op) {
        (true, zero_len(op))
    } else if xzero {
        (false, xzero_len(op, byte_at(hll, p + 1)))
    } else {
        (false, val_len(op))
    };
    let val = !zero && !xzero;

    // Step 2: the trivial cases, updated in place.
    let mut in_place = false;
    if val {
        let old = val_value(op);
        if old >= count {
            return Ok(false);
        }
        if runlen == 1 {
            hll[p] = val_op(count, 1);
            in_place = true;
        }
    }
    if !in_place && zero && runlen == 1 {
        hll[p] = val_op(count, 1);
        in_place = true;
    }

    if !in_place {
        // The general case: split the opcode into up to three (five bytes
        // at most: XZERO-VAL-XZERO), built on the stack.
        let mut seq = [0u8; 5];
        let mut n = 0;
        let last = first + span - 1;
        let current = val_value(op);
        for (len, middle) in [(index - first, false), (1, true), (last - index, false)] {
            if len == 0 {
                continue;
            }
            if middle {
                seq[n] = val_op(count, 1);
                n += 1;
            } else if val {
                seq[n] = val_op(current, len);
                n += 1;
            } else if len > SPARSE_ZERO_MAX_LEN {
                seq[n..n + 2].copy_from_slice(&xzero_op(len));
                n += 2;
            } else {
                seq[n] = zero_op(len);
                n += 1;
            }
        }
        let seq = &seq[..n];
        // Step 3: put the new sequence in place of the old opcode.
        let oldlen = if xzero { 2 } else { 1 };
        let delta = n as isize - oldlen as isize;
        if delta > 0 && (end as u64).saturating_add(delta as u64) > sparse_max_bytes {
            return promote(hll, index, count);
        }
        let new_len = (end as isize + delta) as usize;
        if has_next {
            hll.splice(p..p + oldlen, seq.iter().copied());
        } else {
            // The last opcode (possibly cut short): Redis writes the sequence
            // at `p` and sets the length to the old one plus the delta.
            hll.truncate(p);
            hll.extend_from_slice(seq);
            hll.resize(new_len, 0);
        }
    }

    // Step 4: merge adjacent VAL opcodes of the same value, scanning up to
    // five opcodes from the one before the change.
    let mut p = prev.unwrap_or(HDR_SIZE);
    let mut scan = 5;
    while p < hll.len() && scan > 0 {
        scan -= 1;
        let op = hll[p];
        if is_xzero(op) {
            p += 2;
            continue;
        } else if is_zero(op) {
            p += 1;
            continue;
        }
        if p + 1 < hll.len() && is_val(hll[p + 1]) {
            let (v1, v2) = (val_value(op), val_value(hll[p + 1]));
            if v1 == v2 {
                let len = val_len(op) + val_len(hll[p + 1]);
                if len <= SPARSE_VAL_MAX_LEN {
                    hll[p + 1] = val_op(v1, len);
                    hll.remove(p);
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate_cache(hll);
    Ok(true)
}

/// Sparse to dense, then the register set there (which then must change).
fn promote(hll: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    sparse_to_dense(hll)?;
    Ok(dense_set(&mut hll[HDR_SIZE..], index, count))
}

/// Raises register `index` to `count` in a valid HLL of either encoding
/// (`hllDenseSet` / `hllSparseSet`); true if it changed. The cache is
/// invalidated by the sparse path only, as in Redis: callers invalidate it.
pub fn set_register(
    hll: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max_bytes: u64,
) -> Result<bool, Corrupt> {
    match hll[4] {
        DENSE => Ok(dense_set(&mut hll[HDR_SIZE..], index, count)),
        SPARSE => sparse_set(hll, index, count, sparse_max_bytes),
        _ => Err(Corrupt),
    }
}

/// `hllAdd`: adds one element to a valid HLL; true if a register changed.
pub fn add(hll: &mut Vec<u8>, element: &[u8], sparse_max_bytes: u64) -> Result<bool, Corrupt> {
    let (index, count) = pat_len(element);
    set_register(hll, index, count, sparse_max_bytes)
}

/// Histogram of the register values (`reghisto`), 64 buckets as in Redis.
type Histogram = [u32; 64];

fn dense_histogram(regs: &[u8], histogram: &mut Histogram) {
    // Four registers in every three bytes.
    for chunk in regs[..REGISTERS * BITS / 8].chunks_exact(3) {
        let (a, b, c) = (chunk[0], chunk[1], chunk[2]);
        histogram[(a & 63) as usize] += 1;
        histogram[((a >> 6 | b << 2) & 63) as usize] += 1;
        histogram[((b >> 4 | c << 4) & 63) as usize] += 1;
        histogram[((c >> 2) & 63) as usize] += 1;
    }
}

/// False if the opcodes do not cover exactly the registers.
fn sparse_histogram(ops: &[u8], histogram: &mut Histogram) -> bool {
    let mut idx = 0usize;
    let mut p = 0;
    while p < ops.len() {
        let op = ops[p];
        if is_zero(op) {
            let run = zero_len(op);
            idx += run;
            histogram[0] += run as u32;
            p += 1;
        } else if is_xzero(op) {
            let run = xzero_len(op, byte_at(ops, p + 1));
            idx += run;
            histogram[0] += run as u32;
            p += 2;
        } else {
            let run = val_len(op);
            idx += run;
            histogram[val_value(op) as usize] += run as u32;
            p += 1;
        }
    }
    idx == REGISTERS
}

/// Ertl's sigma ("New cardinality estimation algorithms for HyperLogLog
/// sketches", arXiv:1702.01284), as Redis computes it.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let z_prime = z;
        z += x * y;
        y += y;
        if z_prime == z {
            return z;
        }
    }
}

/// Ertl's tau, as Redis computes it.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let z_prime = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z_prime == z {
            return z / 3.0;
        }
    }
}

/// The estimate from a register histogram (the end of `hllCount`).
fn estimate(histogram: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histogram[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histogram[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histogram[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// `hllCount` of a valid HLL, ignoring the cache.
pub fn count(hll: &[u8]) -> Result<u64, Corrupt> {
    let mut histogram: Histogram = [0; 64];
    match hll[4] {
        DENSE => dense_histogram(&hll[HDR_SIZE..], &mut histogram),
        SPARSE => {
            if !sparse_histogram(&hll[HDR_SIZE..], &mut histogram) {
                return Err(Corrupt);
            }
        }
        _ => return Err(Corrupt),
    }
    Ok(estimate(&histogram))
}

/// `hllCount` of one byte per register (PFCOUNT of several keys).
pub fn count_registers(registers: &[u8; REGISTERS]) -> u64 {
    let mut histogram: Histogram = [0; 64];
    for &r in registers.iter() {
        histogram[(r & 63) as usize] += 1;
    }
    estimate(&histogram)
}

/// `hllMerge`: `max[i] = max(max[i], register i)` for a valid HLL.
pub fn merge_into(max: &mut [u8; REGISTERS], hll: &[u8]) -> Result<(), Corrupt> {
    if hll[4] == DENSE {
        // Four registers in every three bytes.
        let regs = &hll[HDR_SIZE..HDR_SIZE + REGISTERS * BITS / 8];
        for (bytes, slots) in regs.chunks_exact(3).zip(max.chunks_exact_mut(4)) {
            let (a, b, c) = (bytes[0], bytes[1], bytes[2]);
            let values = [
                a & 63,
                (a >> 6 | b << 2) & 63,
                (b >> 4 | c << 4) & 63,
                c >> 2,
            ];
            for (slot, value) in slots.iter_mut().zip(values) {
                *slot = (*slot).max(value);
            }
        }
        return Ok(());
    }
    let mut i = 0usize;
    let mut p = HDR_SIZE;
    while p < hll.len() {
        let op = hll[p];
        // As in sparse_to_dense, a run past the last register is invalid.
        if is_zero(op) {
            i += zero_len(op);
            p += 1;
        } else if is_xzero(op) {
            i += xzero_len(op, byte_at(hll, p + 1));
            p += 2;
        } else {
            let run = val_len(op);
            let value = val_value(op);
            if run + i > REGISTERS {
                return Err(Corrupt);
            }
            for slot in &mut max[i..i + run] {
                if value > *slot {
                    *slot = value;
                }
            }
            i += run;
            p += 1;
        }
    }
    if i != REGISTERS {
        return Err(Corrupt);
    }
    Ok(())
}

/// Writes `registers` (values below 64) as the registers of a dense HLL,
/// packed four to three bytes.
pub fn set_dense_registers(hll: &mut [u8], registers: &[u8; REGISTERS]) {
    let regs = &mut hll[HDR_SIZE..HDR_SIZE + REGISTERS * BITS / 8];
    for (bytes, values) in regs.chunks_exact_mut(3).zip(registers.chunks_exact(4)) {
        let [r0, r1, r2, r3] = [values[0], values[1], values[2], values[3]].map(|v| v & 63);
        bytes[0] = r0 | r1 << 6;
        bytes[1] = r1 >> 2 | r2 << 4;
        bytes[2] = r2 >> 4 | r3 << 2;
    }
}

/// Every register of a dense HLL (PFDEBUG GETREG).
pub fn dense_registers(hll: &[u8]) -> Vec<u8> {
    let regs = &hll[HDR_SIZE..];
    (0..REGISTERS).map(|i| dense_get(regs, i)).collect()
}

/// The opcodes of a sparse HLL as PFDEBUG DECODE prints them
/// (`Z:16384`, `z:3`, `v:2,1`, space separated).
pub fn decode_sparse(hll: &[u8]) -> String {
    let mut out = String::new();
    let mut p = HDR_SIZE;
    while p < hll.len() {
        let op = hll[p];
        if is_zero(op) {
            out.push_str(&format!("z:{} ", zero_len(op)));
            p += 1;
        } else if is_xzero(op) {
            out.push_str(&format!("Z:{} ", xzero_len(op, byte_at(hll, p + 1))));
            p += 2;
        } else {
            out.push_str(&format!("v:{},{} ", val_value(op), val_len(op)));
            p += 1;
        }
    }
    out.trim_matches(' ').to_string()
}

/// PFSELFTEST's checks (`pfselftestCommand`), with Redis's sizes for the
/// command (`cycles` 1000, `elements` 10,000,000): random registers read
/// back through the dense packing, then the same elements added to a dense
/// and a sparse HLL whose counts must agree and stay within six standard
/// errors at every power of ten. `Err` holds Redis's `TESTFAILED` text.
pub fn self_test(
    cycles: u32,
    elements: u64,
    sparse_max_bytes: u64,
    rng: &mut impl FnMut() -> u64,
) -> Result<(), String> {
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..4].copy_from_slice(b"HYLL");
    let mut bytes = vec![0u8; REGISTERS];
    for _ in 0..cycles {
        for (i, slot) in bytes.iter_mut().enumerate() {
            let r = (rng() & REGISTER_MAX as u64) as u8;
            *slot = r;
            dense_set_register(&mut dense[HDR_SIZE..], i, r);
        }
        for (i, &expected) in bytes.iter().enumerate() {
            let got = dense_get(&dense[HDR_SIZE..], i);
            if got != expected {
                return Err(format!(
                    "TESTFAILED Register {i} should be {expected} but is {got}"
                ));
            }
        }
    }
    dense[HDR_SIZE..].fill(0);
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint: u64 = 1;
    let seed = rng();
    for j in 1..=elements {
        let element = (j ^ seed).to_ne_bytes();
        let (index, pattern) = pat_len(&element);
        dense_set(&mut dense[HDR_SIZE..], index, pattern);
        add(&mut sparse, &element, sparse_max_bytes).map_err(|_| "TESTFAILED corrupted")?;
        if j != checkpoint {
            continue;
        }
        if j < sparse_max_bytes / 2 && sparse[4] != SPARSE {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let dense_count = count(&dense).map_err(|_| "TESTFAILED corrupted")?;
        if Ok(dense_count) != count(&sparse) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        let abserr = (checkpoint as i64 - dense_count as i64).unsigned_abs();
        let mut maxerr = (relerr * 6.0 * checkpoint as f64).ceil() as u64;
        if j == 10 {
            maxerr = 1;
        }
        if abserr > maxerr {
            return Err(format!(
                "TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn filled(elements: impl IntoIterator<Item = Vec<u8>>, max: u64) -> Vec<u8> {
        let mut hll = new_sparse();
        for e in elements {
            add(&mut hll, &e, max).unwrap();
        }
        hll
    }

    #[test]
    fn murmur_matches_reference_vectors() {
        // MurmurHash64A of the empty string with seed 0 is 0; the rest pin
        // the tail handling of every length class against the reference.
        assert_eq!(murmur_hash64a(b"", 0), 0);
        let a = murmur_hash64a(b"abcdefgh", HASH_SEED);
        let b = murmur_hash64a(b"abcdefghi", HASH_SEED);
        assert_ne!(a, b);
    }

    #[test]
    fn empty_hll_is_the_redis_bytes() {
        let hll = new_sparse();
        assert_eq!(&hll[..], b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff");
        assert!(is_hll(&hll));
        assert_eq!(count(&hll), Ok(0));
        assert_eq!(decode_sparse(&hll), "Z:16384");
    }

    #[test]
    fn header_checks() {
        let hll = new_sparse();
        assert!(!is_hll(&hll[..15]));
        let mut bad = hll.clone();
        bad[0] = b'h';
        assert!(!is_hll(&bad));
        bad = hll.clone();
        bad[4] = 2;
        assert!(!is_hll(&bad));
        bad = hll.clone();
        bad[4] = DENSE;
        assert!(!is_hll(&bad));
    }

    #[test]
    fn promotion_by_size_and_value() {
        let hll = filled((0..2000u32).map(|i| i.to_string().into_bytes()), 3000);
        assert_eq!(encoding(&hll), DENSE);
        assert_eq!(hll.len(), DENSE_SIZE);
        let small = filled((0..10u32).map(|i| i.to_string().into_bytes()), 3000);
        assert_eq!(encoding(&small), SPARSE);
        let mut big = new_sparse();
        assert_eq!(set_register(&mut big, 5, 33, 3000), Ok(true));
        assert_eq!(encoding(&big), DENSE);
        assert_eq!(dense_registers(&big)[5], 33);
    }

    #[test]
    fn packed_registers_round_trip() {
        let mut registers = [0u8; REGISTERS];
        for (i, r) in registers.iter_mut().enumerate() {
            *r = (i * 7 % 64) as u8;
        }
        let mut hll = new_sparse();
        sparse_to_dense(&mut hll).unwrap();
        set_dense_registers(&mut hll, &registers);
        assert_eq!(dense_registers(&hll), registers.to_vec());
        let mut max = [0u8; REGISTERS];
        merge_into(&mut max, &hll).unwrap();
        assert_eq!(max, registers);
        let mut one_by_one = new_sparse();
        sparse_to_dense(&mut one_by_one).unwrap();
        for (i, &r) in registers.iter().enumerate() {
            set_register(&mut one_by_one, i, r, 3000).unwrap();
        }
        assert_eq!(one_by_one, hll);
    }

    #[test]
    fn corrupt_sparse_is_detected() {
        let mut hll = new_sparse();
        hll.pop();
        hll.pop();
        assert_eq!(count(&hll), Err(Corrupt));
        assert_eq!(sparse_to_dense(&mut hll.clone()), Err(Corrupt));
        let mut max = [0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &hll), Err(Corrupt));
        assert_eq!(add(&mut hll, b"x", 3000), Err(Corrupt));
    }

    #[test]
    fn self_test_passes_small() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut rng = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        assert_eq!(self_test(3, 100_000, 3000, &mut rng), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// The same adds in sparse and dense give the same registers and count.
        #[test]
        fn sparse_and_dense_agree(elements in prop::collection::vec(any::<u32>(), 0..600)) {
            let mut sparse = new_sparse();
            let mut dense = new_sparse();
            sparse_to_dense(&mut dense).unwrap();
            for e in &elements {
                let e = e.to_le_bytes();
                let a = add(&mut sparse, &e, 1 << 20).unwrap();
                let b = add(&mut dense, &e, 1 << 20).unwrap();
                prop_assert_eq!(a, b);
            }
            prop_assert_eq!(count(&sparse), count(&dense));
            let mut promoted = sparse.clone();
            sparse_to_dense(&mut promoted).unwrap();
            prop_assert_eq!(&promoted[HDR_SIZE..], &dense[HDR_SIZE..]);
        }

        /// Merging is commutative and matches adding everything to one HLL.
        #[test]
        fn merge_is_commutative(a in prop::collection::vec(any::<u16>(), 0..300),
                                b in prop::collection::vec(any::<u16>(), 0..300)) {
            let ha = filled(a.iter().map(|e| e.to_le_bytes().to_vec()), 3000);
            let hb = filled(b.iter().map(|e| e.to_le_bytes().to_vec()), 3000);
            let both = filled(a.iter().chain(&b).map(|e| e.to_le_bytes().to_vec()), 3000);
            let mut ab = [0u8; REGISTERS];
            merge_into(&mut ab, &ha).unwrap();
            merge_into(&mut ab, &hb).unwrap();
            let mut ba = [0u8; REGISTERS];
            merge_into(&mut ba, &hb).unwrap();
            merge_into(&mut ba, &ha).unwrap();
            prop_assert_eq!(ab, ba);
            let mut all = [0u8; REGISTERS];
            merge_into(&mut all, &both).unwrap();
            prop_assert_eq!(ab, all);
            prop_assert_eq!(count_registers(&ab), count(&both).unwrap());
        }

        /// Arbitrary bytes behind a valid header never panic anything.
        #[test]
        fn arbitrary_bodies_do_not_panic(body in prop::collection::vec(any::<u8>(), 0..64),
                                         dense in any::<bool>(),
                                         element in any::<u32>()) {
            let mut hll = b"HYLL".to_vec();
            hll.push(if dense { DENSE } else { SPARSE });
            hll.extend_from_slice(&[0; 11]);
            hll.extend_from_slice(&body);
            if dense {
                hll.resize(DENSE_SIZE, 0x55);
            }
            prop_assume!(is_hll(&hll));
            let _ = count(&hll);
            let mut max = [0u8; REGISTERS];
            let _ = merge_into(&mut max, &hll);
            let _ = decode_sparse(&hll);
            let _ = add(&mut hll.clone(), &element.to_le_bytes(), 3000);
            let _ = sparse_to_dense(&mut hll.clone());
            for index in [0, 1, 63, 64, 65, 1000, REGISTERS - 1] {
                let _ = set_register(&mut hll.clone(), index, 7, 40);
            }
        }
    }
}
