//! INCRBYFLOAT/HINCRBYFLOAT arithmetic: x87 80-bit `long double`, in software.
//!
//! Redis parses with `strtold`, adds in `long double` (64-bit significand on
//! x86-64) and prints with `%.17Lf` before trimming zeros. An f64 version
//! disagrees on everyday inputs ("0.1" + "0.2" is "0.3" in Redis), so this is
//! an exact emulation: correctly rounded parsing (decimal and hex), correctly
//! rounded addition, exact decimal printing, all with round-half-even.

/// Exponent of the least significant bit of the smallest subnormal.
const LD_MIN_LSB: i64 = -16445;
/// Exponent of the least significant bit of the largest finite values.
const LD_MAX_LSB: i64 = 16320;
/// `string2ld` refuses strings this long or longer.
const LD_MAX_CHARS: usize = 5 * 1024;

/// A finite `long double` is `mantissa * 2^exponent`, normalised (mantissa
/// in `[2^63, 2^64)`) unless subnormal (exponent `LD_MIN_LSB`) or zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LongDouble {
    Finite {
        negative: bool,
        mantissa: u64,
        exponent: i64,
    },
    Infinite {
        negative: bool,
    },
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble::Finite {
        negative: false,
        mantissa: 0,
        exponent: 0,
    };

    pub fn is_infinite(&self) -> bool {
        matches!(self, LongDouble::Infinite { .. })
    }

    pub fn is_zero(&self) -> bool {
        matches!(self, LongDouble::Finite { mantissa: 0, .. })
    }

    /// Rounds `q * 2^lsb` (plus something below `2^lsb` if `sticky`) to the
    /// nearest `long double`, ties to even. Callers pass `sticky` only with
    /// `q` of at least 65 significant bits or a value far below the normal
    /// range, so the sticky part always lies below the rounding point.
    fn round(negative: bool, q: u128, lsb: i64, sticky: bool) -> LongDouble {
        if q == 0 {
            return LongDouble::Finite {
                negative,
                mantissa: 0,
                exponent: 0,
            };
        }
        let bits = 128 - q.leading_zeros() as i64;
        let mut target = (lsb + bits - 64).max(LD_MIN_LSB);
        let shift = target - lsb;
        let mut m: u128 = if shift <= 0 {
            q << (-shift)
        } else if shift >= 129 {
            // Below half the last place: rounds to zero.
            0
        } else {
            let kept = if shift >= 128 { 0 } else { q >> shift };
            let guard = (q >> (shift - 1)) & 1 == 1;
            let below_guard = if shift - 1 == 0 {
                0
            } else {
                q & ((1u128 << (shift - 1)) - 1)
            };
            let rest = below_guard != 0 || sticky;
            if guard && (rest || kept & 1 == 1) {
                kept + 1
            } else {
                kept
            }
        };
        if m == 1u128 << 64 {
            m >>= 1;
            target += 1;
        }
        if m == 0 {
            return LongDouble::Finite {
                negative,
                mantissa: 0,
                exponent: 0,
            };
        }
        if target > LD_MAX_LSB {
            return LongDouble::Infinite { negative };
        }
        LongDouble::Finite {
            negative,
            mantissa: m as u64,
            exponent: target,
        }
    }

    /// Redis's `string2ld`: `strtold` must consume every byte, no leading
    /// space, no NaN, and no overflow or underflow to zero. `None` if Redis
    /// would refuse it.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() >= LD_MAX_CHARS {
            return None;
        }
        if matches!(s[0], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            return None;
        }
        let (negative, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble::Infinite { negative });
        }
        let value = if body.len() > 2
            && body[0] == b'0'
            && (body[1] | 0x20) == b'x'
            && (body[2].is_ascii_hexdigit()
                || (body[2] == b'.' && body.get(3).is_some_and(u8::is_ascii_hexdigit)))
        {
            parse_hex(negative, &body[2..])?
        } else {
            parse_decimal(negative, body)?
        };
        match value {
            LongDouble::Infinite { .. } => None,
            v if v.is_zero() && value_was_nonzero(body) => None,
            v => Some(v),
        }
    }

    /// Correctly rounded sum (IEEE round-to-nearest-even).
    pub fn add(self, other: LongDouble) -> LongDouble {
        let (
            LongDouble::Finite {
                negative: na,
                mantissa: ma,
                exponent: ea,
            },
            LongDouble::Finite {
                negative: nb,
                mantissa: mb,
                exponent: eb,
            },
        ) = (self, other)
        else {
            // inf + x is inf, inf - inf is NaN: either way Redis refuses.
            return LongDouble::Infinite { negative: false };
        };
        if mb == 0 {
            return self;
        }
        if ma == 0 {
            return other;
        }
        // Put the operand with the larger exponent first.
        let ((na, ma, ea), (nb, mb, eb)) = if ea >= eb {
            ((na, ma, ea), (nb, mb, eb))
        } else {
            ((nb, mb, eb), (na, ma, ea))
        };
        let distance = (ea - eb) as u64;
        let a = (ma as u128) << 63;
        let (b, sticky) = if distance <= 63 {
            (((mb as u128) << 63) >> distance, false)
        } else {
            let shift = distance - 63;
            if shift >= 64 {
                (0, true)
            } else {
                let lost = mb & ((1u64 << shift) - 1);
                ((mb >> shift) as u128, lost != 0)
            }
        };
        let lsb = ea - 63;
        if na == nb {
            return LongDouble::round(na, a + b, lsb, sticky);
        }
        if a > b || (a == b && sticky) {
            // With sticky bits b was truncated: subtract one more unit and
            // keep the sticky flag (the true difference lies just above).
            let difference = a - b - sticky as u128;
            LongDouble::round(na, difference, lsb, sticky)
        } else if a == b {
            LongDouble::ZERO
        } else {
            LongDouble::round(nb, b - a, lsb, false)
        }
    }

    /// The text Redis stores and replies: `%.17Lf` with trailing zeros (and
    /// a trailing dot) removed, and "-0" written "0".
    pub fn to_human_string(self) -> Vec<u8> {
        let (negative, mantissa, exponent) = match self {
            LongDouble::Infinite { negative } => {
                return if negative {
                    b"-inf".to_vec()
                } else {
                    b"inf".to_vec()
                };
            }
            LongDouble::Finite {
                negative,
                mantissa,
                exponent,
            } => (negative, mantissa, exponent),
        };
        const SCALE: u128 = 100_000_000_000_000_000; // 10^17
        let (integer, fraction): (Big, u128) = if exponent >= 0 {
            (Big::from_u128(mantissa as u128).shl(exponent as u64), 0)
        } else if -exponent >= 128 {
            (Big::zero(), 0)
        } else {
            let k = (-exponent) as u32;
            let m = mantissa as u128;
            let mut integer = if k >= 64 { 0 } else { m >> k };
            let frac = m & ((1u128 << k) - 1);
            let scaled = frac * SCALE;
            let mut digits = scaled >> k;
            let remainder = scaled & ((1u128 << k) - 1);
            let half = 1u128 << (k - 1);
            if remainder > half || (remainder == half && digits & 1 == 1) {
                digits += 1;
            }
            if digits == SCALE {
                digits = 0;
                integer += 1;
            }
            (Big::from_u128(integer), digits)
        };
        let mut text = Vec::new();
        if negative {
            text.push(b'-');
        }
        text.extend_from_slice(&integer.to_decimal());
        if fraction != 0 {
            let digits = format!("{fraction:017}");
            text.push(b'.');
            text.extend_from_slice(digits.trim_end_matches('0').as_bytes());
        }
        if text == b"-0" {
            text = b"0".to_vec();
        }
        text
    }
}

/// True if the digits of a parsed number (mantissa part) are not all zero,
/// i.e. a zero result came from underflow rather than from "0.000".
fn value_was_nonzero(body: &[u8]) -> bool {
    let hex = body.len() > 1 && body[0] == b'0' && (body[1] | 0x20) == b'x';
    let digits = if hex { &body[2..] } else { body };
    digits
        .iter()
        .take_while(|c| {
            if hex {
                c.is_ascii_hexdigit() || **c == b'.'
            } else {
                c.is_ascii_digit() || **c == b'.'
            }
        })
        .any(|c| *c != b'0' && *c != b'.')
}

/// A decimal `strtold` body (after the sign): digits, an optional fraction,
/// an optional exponent; the whole body must be consumed.
fn parse_decimal(negative: bool, body: &[u8]) -> Option<LongDouble> {
    let mut i = 0;
    let mut digits: Vec<u8> = Vec::new();
    let mut seen_digit = false;
    let mut fraction_digits: i64 = 0;
    while i < body.len() && body[i].is_ascii_digit() {
        if !(digits.is_empty() && body[i] == b'0') {
            digits.push(body[i] - b'0');
        }
        seen_digit = true;
        i += 1;
    }
    if i < body.len() && body[i] == b'.' {
        i += 1;
        while i < body.len() && body[i].is_ascii_digit() {
            if !(digits.is_empty() && body[i] == b'0') {
                digits.push(body[i] - b'0');
            }
            fraction_digits += 1;
            seen_digit = true;
            i += 1;
        }
    }
    if !seen_digit {
        return None;
    }
    let exponent = parse_exponent(body, &mut i, b'e')?;
    if i != body.len() {
        return None;
    }
    if digits.is_empty() {
        return Some(LongDouble::Finite {
            negative,
            mantissa: 0,
            exponent: 0,
        });
    }
    // Leading zeros of the fraction were dropped from `digits`, so
    // value = digits * 10^(exponent - fraction_digits) exactly.
    let scale = exponent - fraction_digits;
    let magnitude = digits.len() as i64 + scale; // value < 10^magnitude
    if magnitude > 4940 {
        return Some(LongDouble::Infinite { negative });
    }
    if magnitude < -4960 {
        return Some(LongDouble::Finite {
            negative,
            mantissa: 0,
            exponent: 0,
        });
    }
    let n = Big::from_decimal_digits(&digits);
    if scale >= 0 {
        let x = n.mul_pow10(scale as u32);
        Some(round_big(negative, &x, 0))
    } else {
        let d = Big::zero_plus_one().mul_pow10((-scale) as u32);
        // Choose s so that q = floor(n * 2^s / d) has about 101 bits.
        let s = 101 - (n.bit_len() as i64 - d.bit_len() as i64);
        let (num, den) = if s >= 0 {
            (n.shl(s as u64), d)
        } else {
            (n, d.shl((-s) as u64))
        };
        let (q, remainder_nonzero) = Big::div_to_u128(num, den, 103);
        Some(LongDouble::round(negative, q, -s, remainder_nonzero))
    }
}

/// A hex `strtold` body after "0x": hex digits, an optional fraction, an
/// optional binary exponent `p`.
fn parse_hex(negative: bool, body: &[u8]) -> Option<LongDouble> {
    let mut i = 0;
    let mut value = Big::zero();
    let mut fraction_digits: i64 = 0;
    let mut seen_digit = false;
    let hex = |c: u8| (c as char).to_digit(16);
    while i < body.len() && body[i].is_ascii_hexdigit() {
        value = value.shl(4);
        value.add_small(hex(body[i])?);
        seen_digit = true;
        i += 1;
    }
    if i < body.len() && body[i] == b'.' {
        i += 1;
        while i < body.len() && body[i].is_ascii_hexdigit() {
            value = value.shl(4);
            value.add_small(hex(body[i])?);
            fraction_digits += 1;
            seen_digit = true;
            i += 1;
        }
    }
    if !seen_digit {
        return None;
    }
    let exponent = parse_exponent(body, &mut i, b'p')?;
    if i != body.len() {
        return None;
    }
    Some(round_big(negative, &value, exponent - 4 * fraction_digits))
}

/// An optional exponent (`e` or `p`, sign, digits) at `body[*i..]`, which
/// `strtold` consumes only if at least one digit follows. Saturates far
/// beyond any representable range.
fn parse_exponent(body: &[u8], i: &mut usize, marker: u8) -> Option<i64> {
    let start = *i;
    if start >= body.len() || (body[start] | 0x20) != marker {
        return Some(0);
    }
    let mut j = start + 1;
    let negative = match body.get(j) {
        Some(b'-') => {
            j += 1;
            true
        }
        Some(b'+') => {
            j += 1;
            false
        }
        _ => false,
    };
    if !body.get(j).is_some_and(u8::is_ascii_digit) {
        // Not an exponent: strtold stops before the marker.
        return Some(0);
    }
    let mut value: i64 = 0;
    while j < body.len() && body[j].is_ascii_digit() {
        value = (value * 10 + (body[j] - b'0') as i64).min(10_000_000);
        j += 1;
    }
    *i = j;
    Some(if negative { -value } else { value })
}

/// Rounds the exact value `x * 2^lsb` to a `long double`.
fn round_big(negative: bool, x: &Big, lsb: i64) -> LongDouble {
    let bits = x.bit_len();
    if bits <= 128 {
        LongDouble::round(negative, x.low_u128(), lsb, false)
    } else {
        let drop = bits - 128;
        let (q, sticky) = x.shr_to_u128(drop);
        LongDouble::round(negative, q, lsb + drop as i64, sticky)
    }
}

/// A small arbitrary-precision unsigned integer (little-endian 32-bit
/// limbs, no high zero limbs), just enough for exact float conversion.
#[derive(Clone, Debug)]
struct Big(Vec<u32>);

impl Big {
    fn zero() -> Big {
        Big(Vec::new())
    }

    fn zero_plus_one() -> Big {
        Big(vec![1])
    }

    fn from_u128(mut v: u128) -> Big {
        let mut limbs = Vec::new();
        while v != 0 {
            limbs.push(v as u32);
            v >>= 32;
        }
        Big(limbs)
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn mul_small(&mut self, factor: u32) {
        let mut carry = 0u64;
        for limb in self.0.iter_mut() {
            let v = *limb as u64 * factor as u64 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add_small(&mut self, addend: u32) {
        let mut carry = addend as u64;
        for limb in self.0.iter_mut() {
            if carry == 0 {
                break;
            }
            let v = *limb as u64 + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    /// Divides in place by `divisor`, returning the remainder.
    fn div_small(&mut self, divisor: u32) -> u32 {
        let mut remainder = 0u64;
        for limb in self.0.iter_mut().rev() {
            let v = (remainder << 32) | *limb as u64;
            *limb = (v / divisor as u64) as u32;
            remainder = v % divisor as u64;
        }
        self.trim();
        remainder as u32
    }

    fn from_decimal_digits(digits: &[u8]) -> Big {
        let mut n = Big::zero();
        for chunk in digits.chunks(9) {
            let mut factor = 1u32;
            let mut part = 0u32;
            for d in chunk {
                factor *= 10;
                part = part * 10 + *d as u32;
            }
            n.mul_small(factor);
            n.add_small(part);
        }
        n
    }

    fn mul_pow10(mut self, mut power: u32) -> Big {
        while power >= 9 {
            self.mul_small(1_000_000_000);
            power -= 9;
        }
        self.mul_small(10u32.pow(power));
        self
    }

    fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(top) => (self.0.len() as u64 - 1) * 32 + (32 - top.leading_zeros() as u64),
        }
    }

    fn bit(&self, index: u64) -> bool {
        let limb = (index / 32) as usize;
        limb < self.0.len() && (self.0[limb] >> (index % 32)) & 1 == 1
    }

    fn shl(&self, shift: u64) -> Big {
        if self.0.is_empty() {
            return Big::zero();
        }
        let limbs = (shift / 32) as usize;
        let bits = (shift % 32) as u32;
        let mut out = vec![0u32; limbs];
        out.reserve(self.0.len() + 1);
        let mut carry = 0u32;
        for &limb in &self.0 {
            if bits == 0 {
                out.push(limb);
            } else {
                out.push((limb << bits) | carry);
                carry = limb >> (32 - bits);
            }
        }
        if carry != 0 {
            out.push(carry);
        }
        let mut big = Big(out);
        big.trim();
        big
    }

    fn shr1(&mut self) {
        let mut carry = 0u32;
        for limb in self.0.iter_mut().rev() {
            let next = *limb & 1;
            *limb = (*limb >> 1) | (carry << 31);
            carry = next;
        }
        self.trim();
    }

    fn low_u128(&self) -> u128 {
        self.0
            .iter()
            .take(4)
            .enumerate()
            .fold(0u128, |acc, (i, &limb)| acc | (limb as u128) << (32 * i))
    }

    /// `self >> drop` as a u128 (the caller makes sure it fits) and whether
    /// any dropped bit was set.
    fn shr_to_u128(&self, drop: u64) -> (u128, bool) {
        let mut q = 0u128;
        for i in (0..128u64).rev() {
            q = (q << 1) | self.bit(drop + i) as u128;
        }
        let sticky = (0..drop).any(|i| self.bit(i));
        (q, sticky)
    }

    fn cmp(&self, other: &Big) -> std::cmp::Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// `self -= other`, with `self >= other`.
    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = *limb as i64 - other.0.get(i).copied().unwrap_or(0) as i64 - borrow;
            if v < 0 {
                *limb = (v + (1i64 << 32)) as u32;
                borrow = 1;
            } else {
                *limb = v as u32;
                borrow = 0;
            }
        }
        self.trim();
    }

    /// `floor(num / den)`, known to be below `2^(top_bit + 1)`, and whether a
    /// remainder is left.
    fn div_to_u128(mut num: Big, den: Big, top_bit: u32) -> (u128, bool) {
        let mut shifted = den.shl(top_bit as u64);
        let mut q = 0u128;
        for bit in (0..=top_bit).rev() {
            if num.cmp(&shifted) != std::cmp::Ordering::Less {
                num.sub_assign(&shifted);
                q |= 1u128 << bit;
            }
            shifted.shr1();
        }
        (q, !num.0.is_empty())
    }

    fn to_decimal(&self) -> Vec<u8> {
        if self.0.is_empty() {
            return b"0".to_vec();
        }
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.0.is_empty() {
            chunks.push(n.div_small(1_000_000_000));
        }
        let mut text = String::new();
        for (i, chunk) in chunks.iter().rev().enumerate() {
            if i == 0 {
                text.push_str(&chunk.to_string());
            } else {
                text.push_str(&format!("{chunk:09}"));
            }
        }
        text.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: &str, b: &str) -> String {
        let a = LongDouble::parse(a.as_bytes()).expect("a");
        let b = LongDouble::parse(b.as_bytes()).expect("b");
        String::from_utf8(a.add(b).to_human_string()).expect("utf8")
    }

    #[test]
    fn long_double_sums_like_redis() {
        assert_eq!(add("10.5", "0.1"), "10.6");
        assert_eq!(add("0.1", "0.2"), "0.3");
        assert_eq!(add("0", "0.000003814697265625"), "0.00000381469726562");
        assert_eq!(add("16", "1e-4940"), "16");
        assert_eq!(add("0", "0x10"), "16");
        assert_eq!(add("0", "-0.0000000000000000001"), "0");
        assert_eq!(add("5.0e3", "2.0e2"), "5200");
        assert_eq!(add("1", "-1"), "0");
        assert_eq!(add("-3", "1.5"), "-1.5");
    }

    #[test]
    fn long_double_parse_refusals() {
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"1e",
            b"1e5000",
            b"1e-5000",
            b"0x",
            b".",
            b"abc",
        ] {
            assert!(
                LongDouble::parse(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(LongDouble::parse(b"inf").is_some_and(|v| v.is_infinite()));
        assert!(LongDouble::parse(b"0e99999999").is_some_and(|v| v.is_zero()));
    }
}
