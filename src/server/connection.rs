//! One client connection: read what the socket has, execute every complete
//! request in it, write all the replies with one syscall.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::blocking::BlockRequest;
use super::client::UnblockReason;
use super::Shared;
use crate::commands::{self, Session};
use crate::protocol::{Limits, ReplyBuf, RequestDecoder};
use crate::writebehind::journal::{replace_replies, take_appended, Journal};

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
    session.blocking_allowed = true;
    let mut connection = Connection {
        shared: &shared,
        input: BytesMut::with_capacity(16 * 1024),
        output: ReplyBuf::new(),
        decoder: RequestDecoder::new(),
        journal: shared
            .writebehind
            .as_ref()
            .and_then(|writebehind| writebehind.journal().cloned()),
        journaled_up_to: 0,
        journaled_replies: Vec::new(),
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
    /// The write-behind journal, when it is on: replies to write commands
    /// go out only once their records are written (fsynced under
    /// `always`).
    journal: Option<Arc<Journal>>,
    /// The journal position the records of the replies in `output` end at
    /// (0: none).
    journaled_up_to: u64,
    /// Where in `output` the replies of the commands that journaled
    /// records are: replaced by an error if writing the records fails.
    journaled_replies: Vec<std::ops::Range<usize>>,
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
            session.last_read = Instant::now();
            self.shared
                .stats
                .net_input_bytes
                .fetch_add(read as u64, Ordering::Relaxed);
            let keep_open = loop {
                match self.process_input(session, stream).await? {
                    Processed::Open => break true,
                    Processed::Close => break false,
                    // A blocking command must wait: the replies before it
                    // go out now; the requests after it wait in `input`.
                    Processed::Blocked(argv, request) => {
                        self.flush(stream).await?;
                        if !self
                            .wait_unblocked(session, stream, &mut shutdown, argv, request)
                            .await?
                        {
                            return Ok(());
                        }
                    }
                }
            };
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

    /// Executes every complete request in the input buffer, up to the
    /// first one that blocks the client.
    async fn process_input(
        &mut self,
        session: &mut Session,
        stream: &mut TcpStream,
    ) -> std::io::Result<Processed> {
        loop {
            let hot = session.hot(self.shared);
            let limits = Limits {
                max_bulk_len: hot.max_bulk_len,
                unauthenticated: !session.authenticated && hot.requirepass_set,
            };
            match self.decoder.decode(&self.input, limits) {
                Ok(Some(length)) => {
                    let args = self.decoder.args(&self.input[..length]);
                    let mut blocked = None;
                    let reply_start = self.output.len();
                    if !args.is_empty() {
                        if let Some(writebehind) = self.shared.writebehind.as_deref() {
                            writebehind.load_missing(self.shared, session, &args).await;
                        }
                        commands::execute(self.shared, session, &mut self.output, &args);
                        // The command runs again when woken: keep a copy
                        // (the input buffer moves on).
                        if let Some(request) = session.block.take() {
                            blocked = Some((args.iter().map(|a| a.to_vec()).collect(), request));
                        }
                    }
                    drop(args);
                    self.note_journaled(reply_start);
                    self.input.advance(length);
                    self.decoder.reset();
                    // Like Redis, nothing after QUIT, SHUTDOWN or a CLIENT
                    // KILL of this client runs, even if already received.
                    if session.close_after_reply || session.handle.is_killed() {
                        return Ok(Processed::Close);
                    }
                    if let Some((argv, request)) = blocked {
                        return Ok(Processed::Blocked(argv, request));
                    }
                    if self.output.len() >= OUTPUT_FLUSH_THRESHOLD {
                        self.flush(stream).await?;
                    }
                }
                Ok(None) => {
                    let limit = session.hot(self.shared).query_buffer_limit;
                    if self.input.len() as u64 > limit {
                        tracing::warn!(
                            client = session.handle.id,
                            "closing client that reached max query buffer length"
                        );
                        return Ok(Processed::Close);
                    }
                    return Ok(Processed::Open);
                }
                Err(error) => {
                    tracing::debug!(
                        client = session.handle.id,
                        error = error.0,
                        "protocol error"
                    );
                    self.output.error_bytes(&error.message_bytes());
                    return Ok(Processed::Close);
                }
            }
        }
    }

    /// Keeps a client blocked (see `server::blocking`) until its command
    /// is served, times out, or the client goes away. Returns false when
    /// the connection must close (killed, shutdown, the peer closed): a
    /// client that leaves while blocked leaves no trace, its registration
    /// is dropped on every path. Requests the client pipelines meanwhile
    /// are read into `input` (so that its closing is seen), not run.
    async fn wait_unblocked(
        &mut self,
        session: &mut Session,
        stream: &mut TcpStream,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        argv: Vec<Vec<u8>>,
        request: BlockRequest,
    ) -> std::io::Result<bool> {
        let shared = self.shared;
        let handle = session.handle.clone();
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        // A deadline beyond what Instant can hold is as good as never.
        let deadline = request
            .timeout
            .and_then(|timeout| tokio::time::Instant::now().checked_add(timeout));
        let timeout = async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timeout);
        let _blocked_flag = BlockedFlag::set(&handle);
        let registration = shared.blocking.register(handle.id, &request);
        // The first run happens right after queueing: data pushed between
        // the command and the queueing would otherwise be missed.
        let mut woken_by = None;
        loop {
            let reply_start = self.output.len();
            commands::rerun_blocked(shared, session, &mut self.output, &args, woken_by);
            self.note_journaled(reply_start);
            if session.block.take().is_none() {
                // Served (or failed): the reply is in `output`. Dropping the
                // registration wakes the next client on these keys.
                return Ok(true);
            }
            loop {
                tokio::select! {
                    _ = registration.woken() => break,
                    _ = &mut timeout => {
                        request.on_timeout.write(&mut self.output);
                        return Ok(true);
                    }
                    reason = handle.unblock_requested() => {
                        match reason {
                            UnblockReason::Timeout => request.on_timeout.write(&mut self.output),
                            UnblockReason::Error => self
                                .output
                                .error("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
                        }
                        return Ok(true);
                    }
                    _ = handle.killed() => return Ok(false),
                    _ = shutdown.changed() => return Ok(false),
                    read = stream.read_buf(&mut self.input) => {
                        let read = read?;
                        if read == 0 {
                            return Ok(false);
                        }
                        shared
                            .stats
                            .net_input_bytes
                            .fetch_add(read as u64, Ordering::Relaxed);
                        let limit = shared.config.read().client_query_buffer_limit;
                        if self.input.len() as u64 > limit {
                            return Ok(false);
                        }
                    }
                }
            }
            woken_by = Some(registration.take_ready_keys());
        }
    }

    /// Notes where the records of the command just run end in the
    /// journal (they were appended by this thread, during the command).
    fn note_journaled(&mut self, reply_start: usize) {
        if self.journal.is_some() {
            let appended = take_appended();
            if appended > 0 {
                self.journaled_up_to = self.journaled_up_to.max(appended);
                self.journaled_replies.push(reply_start..self.output.len());
            }
        }
    }

    async fn flush(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        if self.journaled_up_to > 0 {
            if let Some(journal) = &self.journal {
                if !journal.write_through(self.journaled_up_to) {
                    if let Err(error) = journal.wait_durable(self.journaled_up_to).await {
                        replace_replies(self.output.buffer(), &self.journaled_replies, &error);
                    }
                }
            }
            self.journaled_up_to = 0;
            self.journaled_replies.clear();
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

/// What became of the requests in the input buffer.
enum Processed {
    /// All complete requests ran; read more.
    Open,
    /// Close the connection once the replies are written.
    Close,
    /// A blocking command must wait: its arguments and what it waits for.
    Blocked(Vec<Vec<u8>>, BlockRequest),
}

/// CLIENT LIST's `b` flag, set while the client is blocked.
struct BlockedFlag<'h>(&'h super::ClientHandle);

impl<'h> BlockedFlag<'h> {
    fn set(handle: &'h super::ClientHandle) -> Self {
        handle.set_blocked(true);
        BlockedFlag(handle)
    }
}

impl Drop for BlockedFlag<'_> {
    fn drop(&mut self) {
        self.0.set_blocked(false);
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
