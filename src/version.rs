//! The Redis version Larder reports (INFO, HELLO, LOLWUT, and scripts'
//! `redis.REDIS_VERSION`): the Redis release whose behaviour it matches.

/// As `INFO server` reports it. 7.4: Larder has 7.4's hash-field
/// expiry and client-side caching, and clients (redis-py's client-side
/// cache among them) enable features by this number.
pub const REDIS_VERSION: &str = "7.4.0";

/// The same version as one number, `0x00MMmmpp` (scripts'
/// `redis.REDIS_VERSION_NUM`).
pub const REDIS_VERSION_NUM: u32 = 0x0007_0400;
