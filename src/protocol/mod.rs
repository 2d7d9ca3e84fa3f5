//! The wire format: decoding client requests (RESP multibulk and inline) and
//! encoding replies in RESP2 or RESP3.
//!
//! Requests are decoded by hand rather than through a generic RESP frame
//! decoder because Redis accepts only two request shapes (arrays of bulk
//! strings, and inline lines), answers malformed input with specific error
//! lines that clients and tests rely on, and because arguments are best left
//! as slices of the read buffer. The `redis-protocol` crate is used as an
//! independent reference decoder in tests, benches and fuzz targets.

mod reply;
mod request;

pub use reply::{format_double, ReplyBuf};
pub use request::{split_args, Limits, ProtocolError, RequestDecoder};
