//! Larder: a Redis-compatible caching server, embeddable as a library.
//!
//! - [`Store`]: the sharded in-memory keyspace, typed and socket-free.
//! - [`Server`]: the whole server, built from a [`Config`].
//!
//! ```
//! use larder::Store;
//!
//! let store = Store::new();
//! store.set(0, b"user:1:name", b"Ada").unwrap();
//! assert_eq!(store.get(0, b"user:1:name").unwrap().as_deref(), Some(&b"Ada"[..]));
//! ```

pub mod acl;
pub mod audit;
pub mod commands;
pub mod config;
pub mod error;
pub mod geohash;
pub mod glob;
pub mod hyperloglog;
pub mod latency;
pub mod memory;
pub mod metrics;
pub mod numbers;
pub mod persistence;
pub mod protocol;
pub mod pubsub;
pub mod rdb;
pub mod scripting;
pub mod server;
pub mod shared;
pub mod store;
pub mod version;
pub mod writebehind;

pub use config::Config;
pub use error::Error;
pub use server::{RunningServer, Server};
pub use store::{Clock, Store, StoreOptions, Ttl};
