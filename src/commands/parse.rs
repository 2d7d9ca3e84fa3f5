//! Argument parsing with Redis's exact rules (`string2ll`, `strtod`).

use crate::error::{Error, Result};

pub use crate::numbers::{strict_f64, strict_i64};

/// An integer argument, or Redis's "value is not an integer" error.
pub fn int_arg(arg: &[u8]) -> Result<i64> {
    strict_i64(arg).ok_or_else(Error::not_integer)
}

/// A float argument, or Redis's "value is not a valid float" error.
pub fn float_arg(arg: &[u8]) -> Result<f64> {
    strict_f64(arg).ok_or_else(Error::not_float)
}

/// A non-negative integer argument, with Redis's range error otherwise.
pub fn positive_arg(arg: &[u8], what: &str) -> Result<i64> {
    let n = int_arg(arg)?;
    if n < 0 {
        return Err(Error::err(format!(
            "{what} is out of range, must be positive"
        )));
    }
    Ok(n)
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
pub fn is_keyword(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Glob matching lives on the bottom floor (`crate::glob`); re-exported
/// for the command families.
pub use crate::glob::glob_match;

/// The options of SCAN, SSCAN, HSCAN and ZSCAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOptions<'a> {
    /// `COUNT` (default 10; below 1 is a syntax error, as in Redis).
    pub count: usize,
    /// `MATCH`; `None` for no pattern or `*` (which matches everything).
    pub pattern: Option<&'a [u8]>,
    /// `TYPE` (SCAN only).
    pub type_name: Option<&'a [u8]>,
    /// `NOVALUES` (HSCAN only).
    pub no_values: bool,
}

/// Which options beyond MATCH and COUNT a scan command takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanExtra {
    None,
    /// SCAN's `TYPE type`.
    Type,
    /// HSCAN's `NOVALUES`.
    NoValues,
}

/// Parses the options after a scan command's cursor, as Redis's
/// `scanGenericCommand`: anything else is a syntax error.
pub fn parse_scan_options<'a>(args: &[&'a [u8]], extra: ScanExtra) -> Result<ScanOptions<'a>> {
    let mut options = ScanOptions {
        count: 10,
        pattern: None,
        type_name: None,
        no_values: false,
    };
    let mut i = 0;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if is_keyword(args[i], "COUNT") && has_value {
            let count = int_arg(args[i + 1])?;
            if count < 1 {
                return Err(Error::syntax());
            }
            options.count = usize::try_from(count).unwrap_or(usize::MAX);
            i += 2;
        } else if is_keyword(args[i], "MATCH") && has_value {
            options.pattern = Some(args[i + 1]).filter(|p| *p != b"*");
            i += 2;
        } else if extra == ScanExtra::Type && is_keyword(args[i], "TYPE") && has_value {
            options.type_name = Some(args[i + 1]);
            i += 2;
        } else if extra == ScanExtra::NoValues && is_keyword(args[i], "NOVALUES") {
            options.no_values = true;
            i += 1;
        } else {
            return Err(Error::syntax());
        }
    }
    Ok(options)
}

/// A SCAN cursor as Redis's `parseScanCursorOrReply` reads it with
/// `strtoul`: no leading space, an optional sign (a negative number wraps
/// around, as in C), digits up to u64::MAX, nothing after them (a NUL byte
/// ends the C string). The empty string is cursor 0.
pub fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let arg = match arg.iter().position(|&b| b == 0) {
        Some(end) => &arg[..end],
        None => arg,
    };
    match arg.first() {
        None => return Some(0),
        Some(b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') => return None,
        Some(_) => {}
    }
    let (negative, digits) = match arg.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some(if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_like_string2ll() {
        assert_eq!(strict_i64(b"0"), Some(0));
        assert_eq!(strict_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(strict_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(strict_i64(b"9223372036854775808"), None);
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1.0",
            b"abc",
        ] {
            assert_eq!(strict_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_like_strtod() {
        assert_eq!(strict_f64(b"1.5"), Some(1.5));
        assert_eq!(strict_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(strict_f64(b"1e3"), Some(1000.0));
        assert_eq!(strict_f64(b" 1"), None);
        assert_eq!(strict_f64(b"nan"), None);
        assert_eq!(strict_f64(b"1x"), None);
    }
}
