//! Reply encoding: arbitrary trees of `ReplyBuf` calls, written in RESP2 and
//! in RESP3, decoded back with the `redis-protocol` crate and compared with
//! what each call should mean in that protocol.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use larder::protocol::{format_double, ReplyBuf};
use libfuzzer_sys::fuzz_target;
use redis_protocol::resp2::types::OwnedFrame as Frame2;
use redis_protocol::resp3::types::{OwnedFrame as Frame3, VerbatimStringFormat};

/// One `ReplyBuf` call, with the calls that make up its elements.
#[derive(Debug, Clone)]
enum Reply {
    Ok,
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    BulkInt(i64),
    Null,
    NullArray,
    Array(Vec<Reply>),
    /// Keys are scalars: the decoder refuses aggregate map keys.
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Boolean(bool),
    Double(f64),
    Verbatim(bool, Vec<u8>),
}

fn text(u: &mut Unstructured) -> Result<String> {
    let len = u.int_in_range(0..=20usize)?;
    let mut s = String::new();
    for _ in 0..len {
        s.push(char::arbitrary(u)?);
    }
    Ok(s)
}

fn bytes(u: &mut Unstructured) -> Result<Vec<u8>> {
    let len = match u.int_in_range(0..=15u8)? {
        0 => u.int_in_range(0..=300usize)?,
        _ => u.int_in_range(0..=12usize)?,
    };
    Ok(u.bytes(len)?.to_vec())
}

fn double(u: &mut Unstructured) -> Result<f64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => *u.choose(&[
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            1e-5,
            1e17,
            1e16,
            0.1,
            5e-324,
        ])?,
        1 => i64::arbitrary(u)? as f64,
        2 => f64::from(i32::arbitrary(u)?) / f64::from(u.int_in_range(1..=10_000u32)?),
        _ => f64::from_bits(u64::arbitrary(u)?),
    })
}

/// A reply that the RESP3 decoder accepts as a map key or set member:
/// no aggregates, no NaN (it is not equal to itself), no error replies.
fn scalar(u: &mut Unstructured) -> Result<Reply> {
    Ok(match u.int_in_range(0..=8u8)? {
        0 => Reply::Ok,
        1 => Reply::Simple(simple_text(u)?),
        2 => Reply::Int(i64::arbitrary(u)?),
        3 => Reply::BulkInt(i64::arbitrary(u)?),
        4 => Reply::Null,
        5 => Reply::Boolean(bool::arbitrary(u)?),
        6 => {
            let d = double(u)?;
            // NaN is not equal to itself; -0 and 0 are equal but hash apart.
            Reply::Double(if d.is_nan() || d == 0.0 { 0.0 } else { d })
        }
        _ => Reply::Bulk(bytes(u)?),
    })
}

/// Status texts must not contain CR or LF (the caller's contract).
fn simple_text(u: &mut Unstructured) -> Result<String> {
    Ok(text(u)?.replace(['\r', '\n'], "_"))
}

fn reply(u: &mut Unstructured, depth: usize) -> Result<Reply> {
    let top = if depth >= 4 { 9 } else { 13 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Reply::Ok,
        1 => Reply::Simple(simple_text(u)?),
        2 => Reply::Error(text(u)?),
        3 => Reply::Int(i64::arbitrary(u)?),
        4 => Reply::BulkInt(i64::arbitrary(u)?),
        5 => Reply::Null,
        6 => Reply::NullArray,
        7 => Reply::Boolean(bool::arbitrary(u)?),
        8 => Reply::Double(double(u)?),
        9 => Reply::Verbatim(bool::arbitrary(u)?, bytes(u)?),
        10 => {
            let n = u.int_in_range(0..=6usize)?;
            Reply::Array((0..n).map(|_| reply(u, depth + 1)).collect::<Result<_>>()?)
        }
        11 => {
            let n = u.int_in_range(0..=5usize)?;
            // Distinct keys only: the decoder parses into a map keyed by
            // byte ranges and then by content, so which of two equal keys
            // survives is unspecified.
            let mut pairs: Vec<(Reply, Reply)> = Vec::new();
            for _ in 0..n {
                let (key, value) = (scalar(u)?, reply(u, depth + 1)?);
                if !pairs.iter().any(|(k, _)| scalar3(k) == scalar3(&key)) {
                    pairs.push((key, value));
                }
            }
            Reply::Map(pairs)
        }
        12 => {
            let n = u.int_in_range(0..=5usize)?;
            Reply::Set((0..n).map(|_| scalar(u)).collect::<Result<_>>()?)
        }
        _ => Reply::Bulk(bytes(u)?),
    })
}

#[derive(Debug)]
struct Input(Vec<Reply>);

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut replies = Vec::new();
        while !u.is_empty() && replies.len() < 32 {
            replies.push(reply(u, 0)?);
        }
        Ok(Input(replies))
    }
}

fn write(out: &mut ReplyBuf, reply: &Reply) {
    match reply {
        Reply::Ok => out.ok(),
        Reply::Simple(s) => out.simple(s),
        Reply::Error(s) => out.error(s),
        Reply::Int(n) => out.int(*n),
        Reply::Bulk(b) => out.bulk(b),
        Reply::BulkInt(n) => out.bulk_int(*n),
        Reply::Null => out.null(),
        Reply::NullArray => out.null_array(),
        Reply::Array(items) => {
            out.array(items.len());
            items.iter().for_each(|r| write(out, r));
        }
        Reply::Map(pairs) => {
            out.map(pairs.len());
            for (k, v) in pairs {
                write(out, k);
                write(out, v);
            }
        }
        Reply::Set(items) => {
            out.set(items.len());
            items.iter().for_each(|r| write(out, r));
        }
        Reply::Boolean(b) => out.boolean(*b),
        Reply::Double(d) => out.double(*d),
        Reply::Verbatim(markdown, text) => {
            out.verbatim(if *markdown { "mkd" } else { "txt" }, text)
        }
    }
}

fn error_text(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// `format_double` must read back as the same double.
fn check_double_text(d: f64, text: &[u8]) {
    let text = std::str::from_utf8(text).expect("double text is ASCII");
    assert_eq!(text, format_double(d));
    let back: f64 = text.parse().expect("double text parses");
    assert!(
        back.to_bits() == d.to_bits() || (back.is_nan() && d.is_nan()),
        "{d:?} formatted as {text} reads back as {back:?}"
    );
}

fn check2(expected: &Reply, got: &Frame2) {
    let ok = match (expected, got) {
        (Reply::Ok, Frame2::SimpleString(s)) => s == b"OK",
        (Reply::Simple(t), Frame2::SimpleString(s)) => s == t.as_bytes(),
        (Reply::Error(t), Frame2::Error(s)) => *s == error_text(t),
        (Reply::Int(n), Frame2::Integer(m)) => n == m,
        (Reply::Bulk(b), Frame2::BulkString(s)) => b == s,
        (Reply::BulkInt(n), Frame2::BulkString(s)) => n.to_string().as_bytes() == s,
        (Reply::Null | Reply::NullArray, Frame2::Null) => true,
        (Reply::Array(items) | Reply::Set(items), Frame2::Array(frames)) => {
            assert_eq!(items.len(), frames.len(), "array length");
            items.iter().zip(frames).for_each(|(r, f)| check2(r, f));
            true
        }
        (Reply::Map(pairs), Frame2::Array(frames)) => {
            assert_eq!(pairs.len() * 2, frames.len(), "flattened map length");
            for ((k, v), kv) in pairs.iter().zip(frames.chunks(2)) {
                check2(k, &kv[0]);
                check2(v, &kv[1]);
            }
            true
        }
        (Reply::Boolean(b), Frame2::Integer(n)) => *n == i64::from(*b),
        (Reply::Double(d), Frame2::BulkString(s)) => {
            check_double_text(*d, s);
            true
        }
        (Reply::Verbatim(_, t), Frame2::BulkString(s)) => t == s,
        _ => false,
    };
    assert!(ok, "RESP2: expected {expected:?}, decoded {got:?}");
}

fn same_double(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// What the RESP3 decoder should give for a scalar (map keys, set members).
fn scalar3(reply: &Reply) -> Frame3 {
    match reply {
        Reply::Ok => Frame3::SimpleString {
            data: b"OK".to_vec(),
            attributes: None,
        },
        Reply::Simple(t) => Frame3::SimpleString {
            data: t.as_bytes().to_vec(),
            attributes: None,
        },
        Reply::Int(n) => Frame3::Number {
            data: *n,
            attributes: None,
        },
        Reply::BulkInt(n) => Frame3::BlobString {
            data: n.to_string().into_bytes(),
            attributes: None,
        },
        Reply::Bulk(b) => Frame3::BlobString {
            data: b.clone(),
            attributes: None,
        },
        Reply::Null => Frame3::Null,
        Reply::Boolean(b) => Frame3::Boolean {
            data: *b,
            attributes: None,
        },
        Reply::Double(d) => Frame3::Double {
            data: *d,
            attributes: None,
        },
        other => unreachable!("not a scalar: {other:?}"),
    }
}

fn check3(expected: &Reply, got: &Frame3) {
    let ok = match (expected, got) {
        (Reply::Ok, Frame3::SimpleString { data, .. }) => data == b"OK",
        (Reply::Simple(t), Frame3::SimpleString { data, .. }) => data == t.as_bytes(),
        (Reply::Error(t), Frame3::SimpleError { data, .. }) => *data == error_text(t),
        (Reply::Int(n), Frame3::Number { data, .. }) => n == data,
        (Reply::Bulk(b), Frame3::BlobString { data, .. }) => b == data,
        (Reply::BulkInt(n), Frame3::BlobString { data, .. }) => n.to_string().as_bytes() == data,
        (Reply::Null | Reply::NullArray, Frame3::Null) => true,
        (Reply::Array(items), Frame3::Array { data, .. }) => {
            assert_eq!(items.len(), data.len(), "array length");
            items.iter().zip(data).for_each(|(r, f)| check3(r, f));
            true
        }
        (Reply::Map(pairs), Frame3::Map { data, .. }) => {
            let distinct: Vec<(Frame3, &Reply)> =
                pairs.iter().map(|(k, v)| (scalar3(k), v)).collect();
            assert_eq!(distinct.len(), data.len(), "map length");
            for (key, value) in &distinct {
                let decoded = data
                    .get(key)
                    .unwrap_or_else(|| panic!("map key {key:?} missing from {data:?}"));
                check3(value, decoded);
            }
            true
        }
        (Reply::Set(items), Frame3::Set { data, .. }) => {
            let mut distinct: Vec<Frame3> = Vec::new();
            for item in items {
                let member = scalar3(item);
                if !distinct.contains(&member) {
                    distinct.push(member);
                }
            }
            assert_eq!(distinct.len(), data.len(), "distinct set members");
            distinct.iter().all(|m| data.contains(m))
        }
        (Reply::Boolean(b), Frame3::Boolean { data, .. }) => b == data,
        (Reply::Double(d), Frame3::Double { data, .. }) => same_double(*d, *data),
        (Reply::Verbatim(markdown, t), Frame3::VerbatimString { data, format, .. }) => {
            let expected_format = if *markdown {
                VerbatimStringFormat::Markdown
            } else {
                VerbatimStringFormat::Text
            };
            *format == expected_format && t == data
        }
        _ => false,
    };
    assert!(ok, "RESP3: expected {expected:?}, decoded {got:?}");
}

fuzz_target!(|input: Input| {
    for resp3 in [false, true] {
        let mut out = ReplyBuf::new();
        out.set_resp3(resp3);
        for reply in &input.0 {
            write(&mut out, reply);
        }
        let bytes = out.buffer().to_vec();
        let mut offset = 0;
        for expected in &input.0 {
            let rest = &bytes[offset..];
            if resp3 {
                let (frame, n) = redis_protocol::resp3::decode::complete::decode(rest)
                    .unwrap_or_else(|e| panic!("RESP3 decode error {e:?} for {expected:?}"))
                    .unwrap_or_else(|| panic!("RESP3 incomplete for {expected:?}"));
                check3(expected, &frame);
                offset += n;
            } else {
                let (frame, n) = redis_protocol::resp2::decode::decode(rest)
                    .unwrap_or_else(|e| panic!("RESP2 decode error {e:?} for {expected:?}"))
                    .unwrap_or_else(|| panic!("RESP2 incomplete for {expected:?}"));
                check2(expected, &frame);
                offset += n;
            }
        }
        assert_eq!(offset, bytes.len(), "bytes left after every reply");
    }
});
