//! The collection types a key can hold. Each knows its size and the
//! encoding name Redis would report for the same data; the commands of a
//! family live in `commands/<family>.rs`.

mod hash;
mod list;
mod seg_vec;
mod set;
mod slot_index;
mod stream;
mod stream_groups;
mod thin_bytes;
mod zset;

pub use hash::HashValue;
pub use list::ListValue;
pub use set::SetValue;
pub use slot_index::PrefetchStep;
pub use stream::{
    AddError, AddId, EntryView, NodeLimits, RawNodeEntry, StreamId, StreamValue, Trim,
};
pub use stream_groups::{Consumer, ConsumerGroup, ConsumerName, PendingEntry};
pub use thin_bytes::ThinBytes;
pub use zset::ZSetValue;
