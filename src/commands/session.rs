//! Per-connection command state: selected database, protocol, auth,
//! transaction queue and watched keys.

use std::sync::Arc;

use crate::server::blocking::BlockRequest;
use crate::server::{ClientHandle, Shared};

/// A key WATCHed by this client, with what it looked like then.
#[derive(Debug, Clone)]
pub struct WatchedKey {
    pub db: usize,
    pub key: Vec<u8>,
    /// The key's version in its shard when WATCH ran.
    pub version: u64,
    /// Whether the key existed (unexpired) when WATCH ran: if it then expires
    /// before EXEC, the transaction aborts, as in Redis 7.
    pub existed: bool,
}

/// Commands queued between MULTI and EXEC.
#[derive(Debug, Default)]
pub struct MultiState {
    pub queued: Vec<Vec<Vec<u8>>>,
    /// A queued command was rejected (unknown, wrong arity...): EXEC answers
    /// EXECABORT.
    pub had_error: bool,
}

/// One client's state, owned by its connection task.
#[derive(Debug)]
pub struct Session {
    pub db: usize,
    pub authenticated: bool,
    pub multi: Option<MultiState>,
    pub watched: Vec<WatchedKey>,
    /// Set by QUIT (and fatal errors): close once the replies are written.
    pub close_after_reply: bool,
    /// The registry entry other clients see (CLIENT LIST, CLIENT KILL).
    pub handle: Arc<ClientHandle>,
    /// Whether a blocking command may block this client: only a network
    /// connection can wait (in-process callers get the timeout reply at
    /// once, as inside MULTI).
    pub blocking_allowed: bool,
    /// Left by a blocking command that could not be served and wrote no
    /// reply: the connection blocks the client (see `server::blocking`).
    pub block: Option<BlockRequest>,
    /// While a blocked client's command runs again after a wakeup: the keys
    /// it was woken for, in the order they got data. As Redis 7.0 serves a
    /// blocked client from the key that became ready (first), the command
    /// tries those keys first, and a key of another type no longer fails it.
    pub woken_by: Option<Vec<Vec<u8>>>,
}

impl Session {
    pub fn new(handle: Arc<ClientHandle>) -> Self {
        Session {
            db: 0,
            authenticated: false,
            multi: None,
            watched: Vec::new(),
            close_after_reply: false,
            handle,
            blocking_allowed: false,
            block: None,
            woken_by: None,
        }
    }

    /// Whether commands other than AUTH/HELLO... are refused with NOAUTH.
    pub fn requires_auth(&self, shared: &Shared) -> bool {
        self.requires_auth_with(&shared.config.read())
    }

    /// Marks the open transaction (if any) as failed.
    pub fn flag_transaction_error(&mut self) {
        if let Some(multi) = &mut self.multi {
            multi.had_error = true;
        }
    }

    pub fn queue(&mut self, argv: &[&[u8]]) {
        if let Some(multi) = &mut self.multi {
            multi.queued.push(argv.iter().map(|a| a.to_vec()).collect());
            // CLIENT LIST's multi= counts the queued commands.
            self.handle.meta.lock().multi = multi.queued.len() as i64;
        }
    }

    pub fn set_db(&mut self, db: usize) {
        self.db = db;
        self.handle.set_db(db);
    }
}

impl Session {
    /// [`Session::requires_auth`] with the configuration already at hand.
    pub fn requires_auth_with(&self, config: &crate::config::Config) -> bool {
        !self.authenticated && config.requirepass.is_some()
    }
}
