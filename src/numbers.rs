//! Number parsing with Redis's exact rules (`string2ll`, `strtod`), on the
//! bottom floor: the protocol, the store and the commands all use it.

/// Parses a signed 64-bit integer as Redis's `string2ll`: an optional `-`,
/// then digits with no leading zero (except "0" itself), no `+`, no spaces,
/// no overflow.
pub fn strict_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    if negative {
        if magnitude > i64::MAX as u64 + 1 {
            None
        } else {
            Some((magnitude as i64).wrapping_neg())
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Parses a double as Redis's `getDoubleFromObject` (`strtod`): the whole
/// argument must be a number, no leading or trailing space, no NaN; `inf`,
/// `-inf` and exponents are accepted.
pub fn strict_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() > 5 * 1024 {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    if text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    if value.is_nan() {
        return None;
    }
    Some(value)
}
