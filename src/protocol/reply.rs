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

/// Formats a double as Redis 7 replies with it: `inf`, `-inf`, `nan`, and
/// otherwise the shortest text that reads back as the same double, in `%.17g`
/// style (exponent form only for very large or small magnitudes).
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
    let mut ryu_buf = ryu::Buffer::new();
    let shortest = ryu_buf.format_finite(value);
    // ryu gives "1e21", "1.5e-7" or "123.0"; %g switches to exponent form when
    // the exponent is < -4 or >= 17 (the precision).
    let (mantissa, exponent) = match shortest.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => {
            let trimmed = shortest.strip_suffix(".0").unwrap_or(shortest);
            return decimal_to_g(trimmed);
        }
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let negative = mantissa.starts_with('-');
    let int_len = mantissa
        .trim_start_matches('-')
        .split('.')
        .next()
        .map_or(1, str::len) as i32;
    let exp10 = exponent + int_len - 1;
    render_g(negative, digits.trim_start_matches('0'), exp10)
}

/// Re-renders a plain decimal (as ryu prints it) in `%g` style.
fn decimal_to_g(text: &str) -> String {
    let negative = text.starts_with('-');
    let body = text.trim_start_matches('-');
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    let all: String = format!("{int_part}{frac_part}");
    let leading_zeros = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0');
    if digits.is_empty() {
        return if negative { "-0".into() } else { "0".into() };
    }
    let exp10 = int_part.len() as i32 - 1 - leading_zeros as i32;
    render_g(negative, digits, exp10)
}

/// `digits` are the significant digits (first non-zero), the value being
/// 0.d1d2d3... x 10^(exp10+1).
fn render_g(negative: bool, digits: &str, exp10: i32) -> String {
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if negative { "-" } else { "" };
    if !(-4..17).contains(&exp10) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp10 < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp10.abs());
    }
    if exp10 < 0 {
        let zeros = "0".repeat((-exp10 - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exp10 as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

#[cfg(test)]
mod tests {
    use super::format_double;

    #[test]
    fn doubles_like_redis() {
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(0.1), "0.1");
        assert_eq!(format_double(1e21), "1e+21");
        assert_eq!(
            format_double(123456789012345680.0),
            "1.2345678901234568e+17"
        );
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(
            format_double(0.00001),
            "1.0000000000000001e-05".replace("1.0000000000000001", "1")
        );
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(0.0), "0");
        assert_eq!(format_double(2.75), "2.75");
        assert_eq!(format_double(100.0), "100");
    }
}
