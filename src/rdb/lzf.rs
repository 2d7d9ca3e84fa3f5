//! LZF, as Redis's copy of liblzf (`lzf_c.c`, `lzf_d.c` with `HLOG` 16,
//! `VERY_FAST`, a zeroed hash table): strings longer than 20 bytes are
//! stored compressed in RDB files and DUMP payloads when that saves space.
//! The compressor makes the same choices as liblzf, so that a DUMP of a
//! compressible string is byte for byte Redis's.

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input` into at most `max_out` bytes; `None` when the
/// result would not fit (liblzf's 0).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len == 0 || max_out == 0 {
        return None;
    }
    // Positions in `input` (0 = none: liblzf never refers to the first byte).
    let mut htab = vec![0u32; HSIZE];
    let mut out = vec![0u8; max_out];
    let out_end = max_out;
    let mut ip = 0usize;
    let mut op = 1usize; // start run
    let mut lit = 0usize;
    let frst = |p: usize| ((input[p] as u32) << 8) | input[p + 1] as u32;
    let next = |v: u32, p: usize| (v << 8) | input[p + 2] as u32;
    let mut hval = if in_len >= 2 { frst(0) } else { 0 };
    while in_len > 2 && ip < in_len - 2 {
        hval = next(hval, ip);
        let slot = idx(hval);
        let reference = htab[slot] as usize;
        htab[slot] = ip as u32;
        let off = ip.wrapping_sub(reference).wrapping_sub(1);
        if reference < ip
            && off < MAX_OFF
            && reference > 0
            && input[reference + 2] == input[ip + 2]
            && input[reference] == input[ip]
            && input[reference + 1] == input[ip + 1]
        {
            let mut len = 2;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if op + 3 + 1 >= out_end && op - usize::from(lit == 0) + 3 + 1 >= out_end {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop run
            op -= usize::from(lit == 0); // undo run if length is zero
            loop {
                len += 1;
                if len >= maxlen || input[reference + len] != input[ip + len] {
                    break;
                }
            }
            len -= 2; // now #octets - 1
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1; // start run
            ip += len + 1;
            if ip >= in_len - 2 {
                break;
            }
            ip -= 2;
            hval = frst(ip);
            hval = next(hval, ip);
            htab[idx(hval)] = ip as u32;
            ip += 1;
            hval = next(hval, ip);
            htab[idx(hval)] = ip as u32;
            ip += 1;
        } else {
            if op >= out_end {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_end {
        return None;
    }
    while ip < in_len {
        lit += 1;
        if op >= out_end {
            return None;
        }
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    if op > out_end {
        return None;
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1); // end run
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

/// Decompresses `input`, which must expand to exactly `out_len` bytes.
/// Every byte is checked: `None` for anything liblzf would refuse
/// (`EINVAL`, `E2BIG`) or a result of another length.
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    // A 3-byte back-reference expands to at most 264 bytes: a longer
    // promised result cannot be honest, and is refused before allocating.
    if out_len > input.len().saturating_mul(88).saturating_add(8) {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < (1 << 5) {
            let run = ctrl + 1;
            if out.len() + run > out_len || ip + run > input.len() {
                return None;
            }
            out.extend_from_slice(&input[ip..ip + run]);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            let back = ((ctrl & 0x1f) << 8) + 1;
            if ip >= input.len() {
                return None;
            }
            if len == 7 {
                len += input[ip] as usize;
                ip += 1;
                if ip >= input.len() {
                    return None;
                }
            }
            let back = back + input[ip] as usize;
            ip += 1;
            if out.len() + len + 2 > out_len || back > out.len() {
                return None;
            }
            let start = out.len() - back;
            for i in 0..len + 2 {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut samples: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabc".to_vec(),
            (0..5000u32).map(|i| (i % 251) as u8).collect(),
            (0..70_000u32).map(|i| ((i / 3) % 7) as u8).collect(),
            (0..3000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ];
        samples.push(b"x".repeat(1000));
        for s in &samples {
            if let Some(c) = compress(s, s.len() + 64) {
                assert_eq!(decompress(&c, s.len()).as_deref(), Some(&s[..]));
                assert_eq!(decompress(&c, s.len() + 1), None);
            }
        }
        let c = compress(&samples[0], samples[0].len() - 4).expect("compressible");
        assert!(c.len() < 10, "{c:?}");
    }

    #[test]
    fn incompressible_is_refused() {
        let s: Vec<u8> = (0..100u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
            .collect();
        assert_eq!(compress(&s, s.len() - 4), None);
    }

    #[test]
    fn hostile_input_is_refused() {
        assert_eq!(decompress(&[0x20, 0x00], 10), None); // back-reference before start
        assert_eq!(decompress(&[0x05, b'a'], 6), None); // literal past the input
        assert_eq!(decompress(&[0x00, b'a', 0xe0], 100), None); // truncated reference
        assert_eq!(decompress(&[0x00, b'a', 0x20, 0x00], 2), None); // past out_len
        assert_eq!(
            decompress(&[0x00, b'a', 0x20, 0x00], 4).as_deref(),
            Some(&b"aaaa"[..])
        );
    }
}
