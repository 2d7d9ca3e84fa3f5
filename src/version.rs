//! The Redis version Larder reports (INFO, HELLO, LOLWUT, and scripts'
//! `redis.REDIS_VERSION`): the Redis release whose behaviour it matches.

/// As `INFO server` reports it.
pub const REDIS_VERSION: &str = "7.2.4";

/// The same version as one number, `0x00MMmmpp` (scripts'
/// `redis.REDIS_VERSION_NUM`).
pub const REDIS_VERSION_NUM: u32 = 0x0007_0204;
