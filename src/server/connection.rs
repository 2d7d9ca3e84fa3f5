//! One client connection: read what the socket has, execute every complete
//! request in it, write all the replies with one syscall.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Shared;
use crate::commands::{self, Session};
use crate::protocol::{Limits, ReplyBuf, RequestDecoder};

/// Replies are written out early once this much is pending, so a huge
/// pipeline does not accumulate all of its replies in memory.
const OUTPUT_FLUSH_THRESHOLD: usize = 1024 * 1024;

/// How often a waiting connection looks at the `timeout` setting again.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// Serves one client until it quits, is killed, errs, or the server stops.
pub async fn serve(shared: Arc<Shared>, mut stream: TcpStream, peer: SocketAddr) {
    let (maxclients, keepalive) = {
        let config = shared.config.read();
        (config.maxclients, config.tcp_keepalive)
    };
    if shared.clients.len() >= maxclients {
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    }
    // As in Redis, a refused connection is not counted as received.
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    if keepalive > 0 {
        let socket = socket2_ref(&stream);
        let _ = socket.set_keepalive(true);
    }
    let handle = shared
        .clients
        .register(Some(peer), stream.local_addr().ok());
    let mut session = Session::new(handle.clone());
    // As in Redis, a client that connects while no password is set stays
    // authenticated if one is set later.
    session.authenticated = shared.config.read().requirepass.is_none();
    let mut connection = Connection {
        shared: &shared,
        input: BytesMut::with_capacity(16 * 1024),
        output: ReplyBuf::new(),
        decoder: RequestDecoder::new(),
    };
    if let Err(error) = connection.run(&mut session, &mut stream).await {
        tracing::debug!(client = handle.id, %error, "connection closed");
    }
    commands::end_session(&shared, &mut session);
    shared.clients.unregister(handle.id);
}

fn socket2_ref(stream: &TcpStream) -> socket2::SockRef<'_> {
    socket2::SockRef::from(stream)
}

struct Connection<'a> {
    shared: &'a Shared,
    input: BytesMut,
    output: ReplyBuf,
    decoder: RequestDecoder,
}

impl Connection<'_> {
    async fn run(&mut self, session: &mut Session, stream: &mut TcpStream) -> std::io::Result<()> {
        let mut shutdown = self.shared.shutdown_receiver();
        // A receiver only sees changes after it subscribed: a connection
        // accepted just as the server stops must notice by itself, or it
        // would stay open after SHUTDOWN.
        if self.shared.is_stopping() {
            return Ok(());
        }
        let handle = session.handle.clone();
        loop {
            if let Some(needed) = self.decoder.bytes_needed() {
                // A big argument is on its way: grow once to fit it, but never
                // by more than what a read could fill soon (the length is
                // client-supplied).
                let wanted = needed
                    .saturating_sub(self.input.len())
                    .min(64 * 1024 * 1024);
                self.input.reserve(wanted);
            } else if self.input.capacity() - self.input.len() < 4096 {
                self.input.reserve(16 * 1024);
            }
            let waiting_since = Instant::now();
            let read = tokio::select! {
                read = stream.read_buf(&mut self.input) => read?,
                _ = handle.killed() => return Ok(()),
                _ = shutdown.changed() => return Ok(()),
                _ = idle(self.shared, waiting_since) => return Ok(()),
            };
            if read == 0 {
                return Ok(());
            }
            self.shared
                .stats
                .net_input_bytes
                .fetch_add(read as u64, Ordering::Relaxed);
            let keep_open = self.process_input(session, stream).await?;
            self.flush(stream).await?;
            if !keep_open || handle.is_killed() {
                return Ok(());
            }
            // Once drained, give back the memory a big request needed.
            if self.input.is_empty() && self.input.capacity() > 1024 * 1024 {
                self.input = BytesMut::with_capacity(16 * 1024);
            }
        }
    }

    /// Executes every complete request in the input buffer. Returns false
    /// when the connection must close after the replies are written.
    async fn process_input(
        &mut self,
        session: &mut Session,
        stream: &mut TcpStream,
    ) -> std::io::Result<bool> {
        loop {
            let limits = {
                let config = self.shared.config.read();
                Limits {
                    max_bulk_len: config.proto_max_bulk_len as usize,
                    unauthenticated: session.requires_auth_with(&config),
                }
            };
            match self.decoder.decode(&self.input, limits) {
                Ok(Some(length)) => {
                    let args = self.decoder.args(&self.input[..length]);
                    if !args.is_empty() {
                        commands::execute(self.shared, session, &mut self.output, &args);
                    }
                    drop(args);
                    self.input.advance(length);
                    self.decoder.reset();
                    // Like Redis, nothing after QUIT, SHUTDOWN or a CLIENT
                    // KILL of this client runs, even if already received.
                    if session.close_after_reply || session.handle.is_killed() {
                        return Ok(false);
                    }
                    if self.output.len() >= OUTPUT_FLUSH_THRESHOLD {
                        self.flush(stream).await?;
                    }
                }
                Ok(None) => {
                    let limit = self.shared.config.read().client_query_buffer_limit;
                    if self.input.len() as u64 > limit {
                        tracing::warn!(
                            client = session.handle.id,
                            "closing client that reached max query buffer length"
                        );
                        return Ok(false);
                    }
                    return Ok(true);
                }
                Err(error) => {
                    tracing::debug!(
                        client = session.handle.id,
                        error = error.0,
                        "protocol error"
                    );
                    self.output.error_bytes(&error.message_bytes());
                    return Ok(false);
                }
            }
        }
    }

    async fn flush(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let buffer = self.output.buffer();
        stream.write_all(buffer).await?;
        self.shared
            .stats
            .net_output_bytes
            .fetch_add(buffer.len() as u64, Ordering::Relaxed);
        buffer.clear();
        if buffer.capacity() > 4 * OUTPUT_FLUSH_THRESHOLD {
            *buffer = BytesMut::with_capacity(16 * 1024);
        }
        Ok(())
    }
}

/// Resolves once the client has been idle since `since` for longer than the
/// `timeout` setting. The setting is read again as time passes, so that
/// `CONFIG SET timeout` applies to clients already waiting, as in Redis.
async fn idle(shared: &Shared, since: Instant) {
    loop {
        let timeout = shared.config.read().timeout;
        let idle = since.elapsed();
        if timeout > 0 && idle >= Duration::from_secs(timeout) {
            return;
        }
        let until_due = if timeout == 0 {
            IDLE_RECHECK
        } else {
            Duration::from_secs(timeout).saturating_sub(idle)
        };
        tokio::time::sleep(until_due.min(IDLE_RECHECK)).await;
    }
}
