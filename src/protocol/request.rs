//! Request decoding, following Redis's `processMultibulkBuffer` and
//! `processInlineBuffer`: the same limits, the same error texts.

use smallvec::SmallVec;

/// Longest inline request, and longest multibulk/bulk header line, Redis
/// accepts before it gives up on the client (`PROTO_INLINE_MAX_SIZE`).
const INLINE_MAX_SIZE: usize = 64 * 1024;

/// The limits that apply while decoding one client's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `proto-max-bulk-len`: the longest bulk argument.
    pub max_bulk_len: usize,
    /// While a client has not authenticated, Redis refuses multibulk counts
    /// above 10 and bulk lengths above 16384.
    pub unauthenticated: bool,
}

/// A malformed request. The connection is answered with
/// `-ERR Protocol error: <text>` and then closed, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

impl ProtocolError {
    /// The error line Redis sends for it, without the leading `-` and CRLF.
    pub fn message(&self) -> String {
        format!("ERR Protocol error: {}", self.0)
    }

    /// The error line as bytes. A byte Redis quotes with `%c` (the one after
    /// a missing `$`) is sent as that raw byte, not as its UTF-8 form: the
    /// texts hold it as the char of the same value (U+0000..U+00FF).
    pub fn message_bytes(&self) -> Vec<u8> {
        let mut out = b"ERR Protocol error: ".to_vec();
        out.extend(
            self.0
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')),
        );
        out
    }
}

/// Incremental decoder of one connection's request stream.
///
/// `decode` is called with everything buffered but not yet consumed; it
/// remembers how far it got, so a large frame arriving in many reads is
/// parsed once, not once per read.
#[derive(Debug, Default)]
pub struct RequestDecoder {
    /// Argument positions (start, end) in the frame, for multibulk requests.
    spans: Vec<(usize, usize)>,
    /// Unescaped arguments of an inline request.
    inline_args: Vec<Vec<u8>>,
    inline: bool,
    /// Where parsing resumes in the current frame.
    pos: usize,
    /// Arguments still expected in the current multibulk; 0 before the header.
    remaining: usize,
    /// Length of the bulk whose `$` header was read, when its data is pending.
    pending_bulk: Option<usize>,
}

impl RequestDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the next request at the start of `buf`.
    ///
    /// `Ok(Some(n))`: a complete request occupies `buf[..n]`; its arguments
    /// are `self.args(buf)` (possibly none: Redis ignores empty requests).
    /// Consume `n` bytes, then call [`RequestDecoder::reset`].
    /// `Ok(None)`: more bytes are needed.
    pub fn decode(&mut self, buf: &[u8], limits: Limits) -> Result<Option<usize>, ProtocolError> {
        if self.pos == 0 && self.remaining == 0 {
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => {}
                Some(_) => return self.decode_inline(buf),
            }
        }
        self.decode_multibulk(buf, limits)
    }

    /// Prepares for the next request after a complete one was consumed.
    pub fn reset(&mut self) {
        self.spans.clear();
        self.inline_args.clear();
        self.inline = false;
        self.pos = 0;
        self.remaining = 0;
        self.pending_bulk = None;
    }

    /// The arguments of the request `decode` just completed, borrowed from
    /// `frame` (multibulk) or from the decoder (inline).
    pub fn args<'a>(&'a self, frame: &'a [u8]) -> SmallVec<[&'a [u8]; 16]> {
        if self.inline {
            self.inline_args.iter().map(|a| a.as_slice()).collect()
        } else {
            self.spans.iter().map(|&(s, e)| &frame[s..e]).collect()
        }
    }

    /// Whether no request is partly decoded (the next `decode` starts a
    /// new one).
    pub fn is_idle(&self) -> bool {
        self.pos == 0 && self.remaining == 0
    }

    /// Where the arguments of the multibulk request `decode` just
    /// completed are in its frame; `None` for an inline request.
    pub fn arg_spans(&self) -> Option<&[(usize, usize)]> {
        (!self.inline).then_some(self.spans.as_slice())
    }

    /// How many bytes the request being decoded will need at least, if known:
    /// lets the reader size its buffer for a big argument in one step.
    pub fn bytes_needed(&self) -> Option<usize> {
        self.pending_bulk.map(|len| self.pos + len + 2)
    }

    fn decode_multibulk(
        &mut self,
        buf: &[u8],
        limits: Limits,
    ) -> Result<Option<usize>, ProtocolError> {
        if self.remaining == 0 {
            // The `*<count>\r\n` header.
            let Some(line_end) = find_cr(buf, 0) else {
                if buf.len() > INLINE_MAX_SIZE {
                    return Err(ProtocolError("too big mbulk count string"));
                }
                return Ok(None);
            };
            if line_end + 1 >= buf.len() {
                return Ok(None); // the '\n' has not arrived yet
            }
            let count = parse_i64(&buf[1..line_end]);
            let next = line_end + 2;
            match count {
                Some(n) if n <= i32::MAX as i64 => {
                    if n > 10 && limits.unauthenticated {
                        return Err(ProtocolError("unauthenticated multibulk length"));
                    }
                    if n <= 0 {
                        return Ok(Some(next));
                    }
                    self.remaining = n as usize;
                    self.pos = next;
                    // Reserve modestly: the count is client-supplied.
                    self.spans.reserve(self.remaining.min(1024));
                }
                _ => return Err(ProtocolError("invalid multibulk length")),
            }
        }
        while self.remaining > 0 {
            let len = match self.pending_bulk {
                Some(len) => len,
                None => {
                    let Some(line_end) = find_cr(buf, self.pos) else {
                        if buf.len() - self.pos > INLINE_MAX_SIZE {
                            return Err(ProtocolError("too big bulk count string"));
                        }
                        return Ok(None);
                    };
                    if line_end + 1 >= buf.len() {
                        return Ok(None);
                    }
                    if buf[self.pos] != b'$' {
                        return Err(expected_dollar(buf[self.pos]));
                    }
                    let len = match parse_i64(&buf[self.pos + 1..line_end]) {
                        Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len as u64 => n as usize,
                        _ => return Err(ProtocolError("invalid bulk length")),
                    };
                    if len > 16384 && limits.unauthenticated {
                        return Err(ProtocolError("unauthenticated bulk length"));
                    }
                    self.pos = line_end + 2;
                    self.pending_bulk = Some(len);
                    len
                }
            };
            // Like Redis, the two bytes after the data are skipped unchecked.
            if buf.len() < self.pos + len + 2 {
                return Ok(None);
            }
            self.spans.push((self.pos, self.pos + len));
            self.pos += len + 2;
            self.pending_bulk = None;
            self.remaining -= 1;
        }
        Ok(Some(self.pos))
    }

    fn decode_inline(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        // Redis finds the end of the line with strchr(p, '\n'): a NUL byte
        // before it ends the search, and the line never completes.
        let newline = buf
            .iter()
            .position(|&b| b == b'\n' || b == 0)
            .filter(|&at| buf[at] == b'\n');
        let Some(newline) = newline else {
            if buf.len() > INLINE_MAX_SIZE {
                return Err(ProtocolError("too big inline request"));
            }
            return Ok(None);
        };
        let mut line = &buf[..newline];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        self.inline_args = split_args(line).ok_or(ProtocolError("unbalanced quotes in request"))?;
        self.inline = true;
        Ok(Some(newline + 1))
    }
}

fn expected_dollar(got: u8) -> ProtocolError {
    // The error texts are static; the offending byte is one of 256.
    static TEXTS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        (0..=255u8)
            .map(|b| {
                let s = format!("expected '$', got '{}'", b as char);
                &*Box::leak(s.into_boxed_str())
            })
            .collect()
    });
    ProtocolError(texts[got as usize])
}

/// Where the header line starting at `from` ends, as Redis finds it with
/// `strchr(p, '\r')`: a NUL byte before the CR ends the search, so such a
/// line is never complete (the client waits until the 64KB limit).
fn find_cr(buf: &[u8], from: usize) -> Option<usize> {
    let at = buf
        .get(from..)?
        .iter()
        .position(|&b| b == b'\r' || b == 0)?;
    (buf[from + at] == b'\r').then_some(at + from)
}

/// Parses a request length the way Redis's `string2ll` does: optional `-`,
/// digits only, no leading zeros (except "0"), no overflow.
fn parse_i64(s: &[u8]) -> Option<i64> {
    crate::numbers::strict_i64(s)
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline request into arguments like Redis's `sdssplitargs`:
/// blanks separate arguments, "double quotes" take C escapes, 'single quotes'
/// take only \'. `None` on unbalanced quotes or a closing quote followed by
/// something other than a blank.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut p = 0;
    let at = |i: usize| line.get(i).copied();
    loop {
        while at(p).is_some_and(is_c_space) {
            p += 1;
        }
        if p >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(p);
            if in_double {
                match c {
                    None => return None,
                    Some(b'\\')
                        if at(p + 1) == Some(b'x')
                            && at(p + 2).and_then(hex_value).is_some()
                            && at(p + 3).and_then(hex_value).is_some() =>
                    {
                        let hi = at(p + 2).and_then(hex_value).unwrap_or(0);
                        let lo = at(p + 3).and_then(hex_value).unwrap_or(0);
                        current.push(hi * 16 + lo);
                        p += 3;
                    }
                    Some(b'\\') if at(p + 1).is_some() => {
                        p += 1;
                        current.push(match line[p] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if at(p + 1).is_some_and(|b| !is_c_space(b)) {
                            return None;
                        }
                        p += 1;
                        break;
                    }
                    Some(b) => current.push(b),
                }
            } else if in_single {
                match c {
                    None => return None,
                    Some(b'\\') if at(p + 1) == Some(b'\'') => {
                        p += 1;
                        current.push(b'\'');
                    }
                    Some(b'\'') => {
                        if at(p + 1).is_some_and(|b| !is_c_space(b)) {
                            return None;
                        }
                        p += 1;
                        break;
                    }
                    Some(b) => current.push(b),
                }
            } else {
                match c {
                    None => break,
                    Some(b) if is_c_space(b) => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(b) => current.push(b),
                }
            }
            p += 1;
        }
        args.push(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        unauthenticated: false,
    };

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut decoder = RequestDecoder::new();
        let mut rest = input;
        let mut out = Vec::new();
        while let Some(n) = decoder.decode(rest, LIMITS)? {
            out.push(
                decoder
                    .args(&rest[..n])
                    .iter()
                    .map(|a| a.to_vec())
                    .collect(),
            );
            rest = &rest[n..];
            decoder.reset();
        }
        Ok(out)
    }

    #[test]
    fn multibulk_pipeline() {
        let got = decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(
            got,
            vec![vec![b"GET".to_vec(), b"k".to_vec()], vec![b"PING".to_vec()]]
        );
    }

    #[test]
    fn frame_split_at_every_byte() {
        let frame = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        for cut in 0..frame.len() {
            let mut decoder = RequestDecoder::new();
            assert_eq!(
                decoder.decode(&frame[..cut], LIMITS),
                Ok(None),
                "cut at {cut}"
            );
            assert_eq!(decoder.decode(frame, LIMITS), Ok(Some(frame.len())));
            assert_eq!(decoder.args(frame).len(), 3);
        }
    }

    #[test]
    fn inline_quotes_and_escapes() {
        let got = decode_all(b"set \"a b\" 'c\\'d' \"\\x41\\n\"\r\n").unwrap();
        assert_eq!(
            got,
            vec![vec![
                b"set".to_vec(),
                b"a b".to_vec(),
                b"c'd".to_vec(),
                b"A\n".to_vec()
            ]]
        );
        assert_eq!(decode_all(b"\r\n").unwrap(), vec![Vec::<Vec<u8>>::new()]);
    }

    #[test]
    fn errors_match_redis() {
        assert_eq!(
            decode_all(b"*x\r\n"),
            Err(ProtocolError("invalid multibulk length"))
        );
        assert_eq!(
            decode_all(b"*1\r\n+x\r\n"),
            Err(ProtocolError("expected '$', got '+'"))
        );
        assert_eq!(
            decode_all(b"*1\r\n$-1\r\n"),
            Err(ProtocolError("invalid bulk length"))
        );
        assert_eq!(
            decode_all(b"*1\r\n$999999999999\r\n"),
            Err(ProtocolError("invalid bulk length"))
        );
        assert_eq!(
            decode_all(b"get \"a\r\n"),
            Err(ProtocolError("unbalanced quotes in request"))
        );
        assert_eq!(
            decode_all(&[b'a'; 70000]),
            Err(ProtocolError("too big inline request"))
        );
    }
}
