//! Reply encoding straight into the connection's output buffer.

use bytes::{BufMut, BytesMut};

/// A connection's output buffer together with the protocol version the client
/// chose (`HELLO`), so that handlers write one reply and get RESP2 or RESP3.
#[derive(Debug)]
pub struct ReplyBuf {
    buf: BytesMut,
    resp3: bool,
}

impl Default for ReplyBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplyBuf {
    pub fn new() -> Self {
        ReplyBuf {
            buf: BytesMut::with_capacity(16 * 1024),
            resp3: false,
        }
    }

    pub fn is_resp3(&self) -> bool {
        self.resp3
    }

    pub fn set_resp3(&mut self, resp3: bool) {
        self.resp3 = resp3;
    }

    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Drops everything written after `len` (used to replace a partial reply).
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    fn line(&mut self, prefix: u8, n: i64) {
        self.buf.put_u8(prefix);
        let mut digits = itoa::Buffer::new();
        self.buf.put_slice(digits.format(n).as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    /// `+OK`
    pub fn ok(&mut self) {
        self.buf.put_slice(b"+OK\r\n");
    }

    /// A status reply such as `+PONG`. `text` must not contain CR or LF.
    pub fn simple(&mut self, text: &str) {
        self.buf.put_u8(b'+');
        self.buf.put_slice(text.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    /// An error reply; `message` starts with its code (`ERR`, `WRONGTYPE`...).
    /// CR and LF are replaced by spaces, as Redis does, so that no client
    /// input can break the protocol.
    pub fn error(&mut self, message: &str) {
        self.buf.put_u8(b'-');
        for &b in message.as_bytes() {
            self.buf
                .put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.put_slice(b"\r\n");
    }

    /// Like [`ReplyBuf::error`], for a message that may hold any bytes
    /// (client input quoted in it, as Redis quotes it with `%s`/`%c`).
    pub fn error_bytes(&mut self, message: &[u8]) {
        self.buf.put_u8(b'-');
        for &b in message {
            self.buf
                .put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.put_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.line(b':', n);
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.line(b'$', data.len() as i64);
        self.buf.put_slice(data);
        self.buf.put_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of `n` (e.g. INCRBYFLOAT-style
    /// replies that Redis sends as strings).
    pub fn bulk_int(&mut self, n: i64) {
        let mut digits = itoa::Buffer::new();
        self.bulk(digits.format(n).as_bytes());
    }

    /// The null bulk string (`$-1` in RESP2, `_` in RESP3).
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.put_slice(b"_\r\n");
        } else {
            self.buf.put_slice(b"$-1\r\n");
        }
    }

    /// The null array (`*-1` in RESP2, `_` in RESP3).
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.put_slice(b"_\r\n");
        } else {
            self.buf.put_slice(b"*-1\r\n");
        }
    }

    pub fn array(&mut self, len: usize) {
        self.line(b'*', len as i64);
    }

    /// An out-of-band push of `len` elements: `>` in RESP3, an array in
    /// RESP2 (pub/sub replies and messages).
    pub fn push(&mut self, len: usize) {
        if self.resp3 {
            self.line(b'>', len as i64);
        } else {
            self.line(b'*', len as i64);
        }
    }

    /// A map of `pairs` entries: `%` in RESP3, a flat array in RESP2.
    pub fn map(&mut self, pairs: usize) {
        if self.resp3 {
            self.line(b'%', pairs as i64);
        } else {
            self.line(b'*', 2 * pairs as i64);
        }
    }

    /// A set: `~` in RESP3, an array in RESP2.
    pub fn set(&mut self, len: usize) {
        if self.resp3 {
            self.line(b'~', len as i64);
        } else {
            self.line(b'*', len as i64);
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, value: bool) {
        if self.resp3 {
            self.buf
                .put_slice(if value { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(value as i64);
        }
    }

    /// A double: `,` in RESP3, a bulk string in RESP2, formatted as Redis does.
    pub fn double(&mut self, value: f64) {
        let text = format_double(value);
        if self.resp3 {
            self.buf.put_u8(b',');
            self.buf.put_slice(text.as_bytes());
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    /// A verbatim string (`=` with a 3-letter format in RESP3, bulk in RESP2).
    pub fn verbatim(&mut self, format: &str, text: &[u8]) {
        if self.resp3 {
            self.line(b'=', (text.len() + 4) as i64);
            self.buf.put_slice(format.as_bytes());
            self.buf.put_u8(b':');
            self.buf.put_slice(text);
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    /// Appends bytes that are already a complete encoded reply.
    pub fn raw(&mut self, encoded: &[u8]) {
        self.buf.put_slice(encoded);
    }
}

/// Formats a double as Redis 7.0 replies with it (`addReplyDouble`):
/// `inf`, `-inf`, `nan`, and otherwise C's `%.17g` — 17 significant digits,
/// trailing zeros removed, exponent form when the exponent is below -4 or at
/// least 17 (`0.10000000000000001`, `1e+100`, `4.9406564584124654e-324`).
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:.16e}` rounds exactly (ties to even, as glibc's printf does)
    // to 17 significant digits: "d.dddddddddddddddde<exp>".
    let scientific = format!("{:.16e}", value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..17).contains(&exponent) {
        let significant = digits.trim_end_matches('0');
        let (first, rest) = significant.split_at(1.min(significant.len()));
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{fraction}e{exponent_sign}{:02}",
            exponent.unsigned_abs()
        );
    }
    if exponent < 0 {
        let zeros = "0".repeat((-exponent - 1) as usize);
        return format!("{sign}0.{zeros}{}", digits.trim_end_matches('0'));
    }
    let (integer, fraction) = digits.split_at(exponent as usize + 1);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{integer}")
    } else {
        format!("{sign}{integer}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::format_double;

    /// Expected values are what redis-server 7.0.15 replies to ZSCORE.
    #[test]
    fn doubles_like_redis() {
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1.1), "1.1000000000000001");
        assert_eq!(format_double(1e21), "1e+21");
        assert_eq!(format_double(1e100), "1e+100");
        assert_eq!(format_double(1e16), "10000000000000000");
        assert_eq!(format_double(1e17), "1e+17");
        assert_eq!(
            format_double(123456789012345680.0),
            "1.2345678901234568e+17"
        );
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_double(1e-300), "1e-300");
        assert_eq!(format_double(5e-324), "4.9406564584124654e-324");
        assert_eq!(format_double(f64::MAX), "1.7976931348623157e+308");
        assert_eq!(format_double(3.0000000000000004), "3.0000000000000004");
        // 1234567890123456.25 is exact: a tie at 17 digits, rounded to even.
        assert_eq!(
            format_double(1234567890123456.0 + 0.25),
            "1234567890123456.2"
        );
        assert_eq!(format_double(12345.678), "12345.678");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(0.0), "0");
        assert_eq!(format_double(-0.0), "-0");
        assert_eq!(format_double(2.75), "2.75");
        assert_eq!(format_double(100.0), "100");
        assert_eq!(format_double(-0.5), "-0.5");
    }
}
