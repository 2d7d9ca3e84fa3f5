//! Request decoding: arbitrary bytes through `RequestDecoder`, once as one
//! buffer and once arriving in chunks cut at fuzzer-chosen points (the way a
//! connection sees them), which must yield the same requests and the same
//! outcome. Also `split_args`, with a quoting round trip.
#![no_main]

use arbitrary::Arbitrary;
use larder::protocol::{split_args, Limits, ProtocolError, RequestDecoder};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    unauthenticated: bool,
    /// Small limits reach the "invalid bulk length" paths with short inputs.
    bulk_limit: u8,
    /// Chunk lengths; the rest of the data arrives in one last chunk.
    cuts: Vec<u8>,
    data: Vec<u8>,
}

type Requests = Vec<Vec<Vec<u8>>>;

#[derive(Debug, PartialEq)]
enum End {
    /// Waiting for more bytes, with this many buffered and unconsumed.
    Incomplete(usize),
    Error(ProtocolError),
}

fn limits(input: &Input) -> Limits {
    let max_bulk_len = match input.bulk_limit % 4 {
        0 => 512 * 1024 * 1024,
        1 => 0,
        2 => 3,
        _ => input.bulk_limit as usize,
    };
    Limits {
        max_bulk_len,
        unauthenticated: input.unauthenticated,
    }
}

/// Decodes every request at the front of `buf`, as a connection does after a
/// read; returns how many bytes were consumed.
fn drain(
    decoder: &mut RequestDecoder,
    buf: &[u8],
    limits: Limits,
    out: &mut Requests,
) -> Result<usize, ProtocolError> {
    let mut consumed = 0;
    loop {
        let rest = &buf[consumed..];
        match decoder.decode(rest, limits)? {
            Some(n) => {
                assert!(n > 0, "a complete request must consume bytes");
                assert!(n <= rest.len(), "request longer than the buffer");
                out.push(
                    decoder
                        .args(&rest[..n])
                        .iter()
                        .map(|a| a.to_vec())
                        .collect(),
                );
                decoder.reset();
                consumed += n;
            }
            None => {
                if let Some(needed) = decoder.bytes_needed() {
                    assert!(needed > rest.len(), "needs {needed}, has {}", rest.len());
                }
                return Ok(consumed);
            }
        }
    }
}

fn whole(data: &[u8], limits: Limits) -> (Requests, End) {
    let mut decoder = RequestDecoder::new();
    let mut out = Vec::new();
    let end = match drain(&mut decoder, data, limits, &mut out) {
        Ok(consumed) => End::Incomplete(data.len() - consumed),
        Err(error) => End::Error(error),
    };
    (out, end)
}

fn chunked(data: &[u8], cuts: &[u8], limits: Limits) -> (Requests, End) {
    let mut decoder = RequestDecoder::new();
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut cuts = cuts.iter();
    while fed < data.len() {
        let step = match cuts.next() {
            Some(&c) => (c as usize).max(1),
            None => data.len() - fed,
        };
        let next = (fed + step).min(data.len());
        buf.extend_from_slice(&data[fed..next]);
        fed = next;
        match drain(&mut decoder, &buf, limits, &mut out) {
            Ok(consumed) => {
                buf.drain(..consumed);
            }
            Err(error) => return (out, End::Error(error)),
        }
    }
    (out, End::Incomplete(buf.len()))
}

/// Quotes `arg` so that `split_args` must give it back unchanged.
fn quote(arg: &[u8], style: u8) -> Vec<u8> {
    let mut quoted = Vec::new();
    match style % 3 {
        0 => {
            quoted.push(b'"');
            for &b in arg {
                quoted.extend_from_slice(format!("\\x{b:02x}").as_bytes());
            }
            quoted.push(b'"');
        }
        1 => {
            quoted.push(b'"');
            for &b in arg {
                match b {
                    b'"' | b'\\' => quoted.extend_from_slice(&[b'\\', b]),
                    b'\n' => quoted.extend_from_slice(b"\\n"),
                    b'\r' => quoted.extend_from_slice(b"\\r"),
                    b'\t' => quoted.extend_from_slice(b"\\t"),
                    _ => quoted.push(b),
                }
            }
            quoted.push(b'"');
        }
        _ => {
            quoted.push(b'\'');
            for &b in arg {
                if b == b'\'' {
                    quoted.extend_from_slice(b"\\'");
                } else {
                    quoted.push(b);
                }
            }
            quoted.push(b'\'');
        }
    }
    quoted
}

fn check_split_args(input: &Input) {
    let Some(args) = split_args(&input.data) else {
        return;
    };
    assert!(args.len() <= input.data.len());
    // 'single quotes' cannot express a backslash before a final quote
    // (`'\'` is an escaped quote), so that style is skipped for such args.
    let style = input.bulk_limit;
    let mut line = Vec::new();
    for arg in &args {
        let style = if style % 3 == 2 && arg.last() == Some(&b'\\') {
            0
        } else {
            style
        };
        line.extend_from_slice(&quote(arg, style));
        line.push(b' ');
    }
    assert_eq!(
        split_args(&line).as_ref(),
        Some(&args),
        "re-quoted line {:?}",
        String::from_utf8_lossy(&line)
    );
}

fuzz_target!(|input: Input| {
    // Beyond 64 KiB the outcome legitimately depends on how reads are cut
    // (Redis's PROTO_INLINE_MAX_SIZE checks apply to what is buffered).
    if input.data.len() > 32 * 1024 {
        return;
    }
    let limits = limits(&input);
    let expected = whole(&input.data, limits);
    let got = chunked(&input.data, &input.cuts, limits);
    assert_eq!(expected, got, "whole buffer vs chunks {:?}", input.cuts);
    check_split_args(&input);
});
