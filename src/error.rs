//! The one error type: every failure a client can cause renders to a Redis
//! error line, byte-identical to what Redis 7 would send.

use std::borrow::Cow;
use std::fmt;

/// An error reply. `message` is the text after the `-`, starting with the
/// error code (`ERR`, `WRONGTYPE`, `NOAUTH`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: Cow<'static, str>,
}

/// The result type of every command handler.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error whose text already starts with its code.
    pub fn raw(message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            message: message.into(),
        }
    }

    /// An `ERR ...` error.
    pub fn err(message: impl fmt::Display) -> Self {
        Error::raw(format!("ERR {message}"))
    }

    /// The error text without the leading `-` and without CRLF.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn syntax() -> Self {
        Error::raw("ERR syntax error")
    }

    pub fn wrong_type() -> Self {
        Error::raw("WRONGTYPE Operation against a key holding the wrong kind of value")
    }

    pub fn is_wrong_type(&self) -> bool {
        self.message.starts_with("WRONGTYPE ")
    }

    pub fn not_integer() -> Self {
        Error::raw("ERR value is not an integer or out of range")
    }

    pub fn not_float() -> Self {
        Error::raw("ERR value is not a valid float")
    }

    pub fn overflow() -> Self {
        Error::raw("ERR increment or decrement would overflow")
    }

    pub fn no_such_key() -> Self {
        Error::raw("ERR no such key")
    }

    pub fn db_index_out_of_range() -> Self {
        Error::raw("ERR DB index is out of range")
    }

    pub fn wrong_arity(command_name: &str) -> Self {
        Error::raw(format!(
            "ERR wrong number of arguments for '{command_name}' command"
        ))
    }

    pub fn invalid_expire(command_name: &str) -> Self {
        Error::raw(format!(
            "ERR invalid expire time in '{command_name}' command"
        ))
    }

    pub fn unknown_subcommand(subcommand: &[u8], command_name: &str) -> Self {
        let sub = String::from_utf8_lossy(subcommand);
        let sub: String = sub.chars().take(128).collect();
        Error::raw(format!(
            "ERR unknown subcommand '{sub}'. Try {} HELP.",
            command_name.to_ascii_uppercase()
        ))
    }

    pub fn no_auth() -> Self {
        Error::raw("NOAUTH Authentication required.")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
