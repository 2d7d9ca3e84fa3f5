//! One client connection: read what the socket has, execute every complete
//! request in it, write all the replies with one syscall.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;

use crate::commands::{self, Session};
use crate::protocol::{Limits, ReplyBuf, RequestDecoder};
use crate::shared::blocking::BlockRequest;
use crate::shared::UnblockReason;
use crate::shared::{ClientHandle, FlushWait, Shared};
use crate::store::evict::CEILING_TIME_LIMIT;
use crate::store::lazyfree;
use crate::writebehind::journal::{replace_replies, take_appended, Journal};

/// Replies are written out early once this much is pending, so a huge
/// pipeline does not accumulate all of its replies in memory.
const OUTPUT_FLUSH_THRESHOLD: usize = 1024 * 1024;

/// What a read asks for at least (and an idle connection's input buffer).
const READ_CHUNK: usize = 16 * 1024;
/// What a read asks for at most when a client keeps filling its reads (a
/// pipeline of large values): one read then takes in a batch that would
/// otherwise need several reads, each followed by a write of the replies
/// so far.
const MAX_READ_CHUNK: usize = 64 * 1024;

/// How many requests, from the next one to run, have their keys
/// prefetched at a time (see [`Connection::prefetch_ahead`]), and how many
/// keys at most.
const PREFETCH_REQUESTS: usize = 16;
const PREFETCH_KEYS: usize = 32;

/// How often a waiting connection looks at the `timeout` setting again.
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// A client's byte stream: TCP, a Unix socket, or TLS over TCP.
pub(super) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Writes what the socket takes now, without waiting.
    fn try_write_now(&mut self, buffer: &[u8]) -> std::io::Result<usize>;

    /// Whether bytes taken by a write still wait in the stream (TLS
    /// records not yet on the socket); a constant `false` for plain
    /// sockets, so that their write path has no extra step.
    fn has_pending_output(&self) -> bool {
        false
    }
}

impl ClientStream for TcpStream {
    fn try_write_now(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.try_write(buffer)
    }
}

impl ClientStream for UnixStream {
    fn try_write_now(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.try_write(buffer)
    }
}

impl ClientStream for TlsStream<TcpStream> {
    /// Encrypts what rustls takes, then writes the records the socket
    /// takes now; the rest goes out through the async write path.
    fn try_write_now(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        use std::io::Write;
        let (socket, session) = self.get_mut();
        let taken = session.writer().write(buffer)?;
        while session.wants_write() {
            match session.write_tls(&mut SocketNow(socket)) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(error),
            }
        }
        Ok(taken)
    }

    fn has_pending_output(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

/// A TCP socket as a synchronous writer that never waits.
struct SocketNow<'a>(&'a TcpStream);

impl std::io::Write for SocketNow<'_> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(buffer)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How long a connection runs commands of one pipeline before it lets the
/// other tasks queued on its worker run: a pipeline of slow commands would
/// otherwise hold them back for its whole length.
const LONG_TURN: Duration = Duration::from_millis(1);

/// Lets the tasks already queued on this worker run before this one goes
/// on: it wakes itself and returns `Pending` once, so the scheduler puts it
/// at the back of the queue (without `yield_now`'s poll of the socket events
/// when nothing else is queued).
async fn requeue_behind_ready_tasks() {
    let mut requeued = false;
    std::future::poll_fn(|cx| {
        if requeued {
            return std::task::Poll::Ready(());
        }
        requeued = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Writes some of `buffer`, or, when it is empty, what the stream still
/// holds (TLS): how much of `buffer` went.
async fn write_some<S: ClientStream>(stream: &mut S, buffer: &[u8]) -> std::io::Result<usize> {
    if buffer.is_empty() {
        stream.flush().await?;
        return Ok(0);
    }
    match stream.write(buffer).await? {
        0 => Err(std::io::ErrorKind::WriteZero.into()),
        sent => Ok(sent),
    }
}

/// Where a client connected from.
pub(super) enum Origin {
    Tcp {
        peer: SocketAddr,
        local: Option<SocketAddr>,
    },
    /// The `unixsocket` path.
    Unix(Arc<str>),
}

impl Origin {
    /// Redis's connIsLocal: a loopback peer or a Unix socket.
    fn is_local(&self) -> bool {
        match self {
            Origin::Tcp { peer, .. } => peer.ip().is_loopback(),
            Origin::Unix(_) => true,
        }
    }
}

/// Redis 7's refusal of a client from another host in protected mode.
pub const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Whether protected mode turns this client away: it is on, the default
/// user has no password, and the client is neither on the loopback
/// interface nor on the Unix socket. As in Redis 7, the bind addresses do
/// not matter.
pub fn protected_mode_refuses(
    protected_mode: bool,
    default_user_nopass: bool,
    peer_is_local: bool,
) -> bool {
    protected_mode && default_user_nopass && !peer_is_local
}

/// A TCP client: socket options, then [`serve`].
pub(super) async fn serve_tcp(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    set_socket_options(&shared, &stream);
    let local = stream.local_addr().ok();
    serve(shared, stream, Origin::Tcp { peer, local }).await
}

/// A client of the TLS port: socket options, the handshake (here, in the
/// connection's own task, within a time limit), then [`serve`].
pub(super) async fn serve_tls(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    context: Arc<rustls::ServerConfig>,
) {
    set_socket_options(&shared, &stream);
    let local = stream.local_addr().ok();
    let mut shutdown = shared.shutdown_receiver();
    let handshake = tokio_rustls::TlsAcceptor::from(context).accept(stream);
    let stream = tokio::select! {
        done = tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, handshake) => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "Error accepting a client connection (TLS handshake)");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "Error accepting a client connection: TLS handshake timed out");
                return;
            }
        },
        _ = shutdown.wait_for(|&stop| stop) => return,
    };
    serve(shared, stream, Origin::Tcp { peer, local }).await
}

fn set_socket_options(shared: &Shared, stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = shared.config.read().tcp_keepalive;
    if keepalive > 0 {
        // As Redis's anetKeepAlive: the first probe after `tcp-keepalive`
        // seconds of silence, then every third of it, 3 probes in all: a
        // dead peer goes within about twice the setting.
        let idle = Duration::from_secs(keepalive);
        let probes = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval((idle / 3).max(Duration::from_secs(1)))
            .with_retries(3);
        let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&probes);
    }
}

/// Serves one client until it quits, is killed, errs, or the server stops.
pub(super) async fn serve<S: ClientStream>(shared: Arc<Shared>, mut stream: S, origin: Origin) {
    let (maxclients, refused) = {
        let config = shared.config.read();
        (
            config.maxclients,
            protected_mode_refuses(
                config.protected_mode,
                shared.acl.default_user().nopass,
                origin.is_local(),
            ),
        )
    };
    let registered = match &origin {
        Origin::Tcp { peer, local } => {
            shared
                .clients
                .register_within(maxclients, Some(*peer), *local)
        }
        Origin::Unix(path) => shared.clients.register_unix_within(maxclients, path),
    };
    let Some(handle) = registered else {
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let refusal = async {
            stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await?;
            stream.flush().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), refusal).await;
        return;
    };
    // As in Redis, a refused connection is not counted as received; one
    // turned away by protected mode was accepted first, and is.
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    if refused {
        shared
            .stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let refusal = async {
            stream.write_all(PROTECTED_MODE_DENIED.as_bytes()).await?;
            stream.flush().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), refusal).await;
        shared.clients.unregister(handle.id);
        return;
    }
    let mut session = Session::new(handle.clone());
    // As in Redis, a client that connects while no password is set stays
    // authenticated if one is set later.
    session.authenticated = crate::commands::default_needs_no_auth(&shared);
    session.blocking_allowed = true;
    let mut connection = Connection {
        shared: &shared,
        handle: handle.clone(),
        shutdown: shared.shutdown_receiver(),
        input: BytesMut::with_capacity(READ_CHUNK),
        read_chunk: READ_CHUNK,
        reported_query_capacity: 0,
        output: ReplyBuf::new(),
        decoder: RequestDecoder::new(),
        lookahead: RequestDecoder::new(),
        decoded_ahead: DecodedAhead::default(),
        prefetched: 0,
        ran_since_read: 0,
        lone_worker: tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.metrics().num_workers() == 1),
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

struct Connection<'a> {
    shared: &'a Shared,
    /// This client's registry entry: its kill signal ends every wait.
    handle: Arc<ClientHandle>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    input: BytesMut,
    /// How much room the next read gets (READ_CHUNK..=MAX_READ_CHUNK): it
    /// doubles when a read fills the room it had, and halves when a read
    /// that starts a batch (nothing left over before it) fills less than a
    /// quarter of it.
    read_chunk: usize,
    /// The input buffer's capacity as last counted in
    /// `memory::query_buffer_bytes`.
    reported_query_capacity: usize,
    output: ReplyBuf,
    decoder: RequestDecoder,
    /// Decodes the requests after the running one, to prefetch their keys.
    lookahead: RequestDecoder,
    /// What `lookahead` decoded, so that those requests are not decoded
    /// twice.
    decoded_ahead: DecodedAhead,
    /// Requests at the start of `input` whose keys were prefetched and
    /// have not run yet.
    prefetched: usize,
    /// Requests run since the last read.
    ran_since_read: u32,
    /// Whether the runtime has a single worker thread (see the requeue
    /// before a flush in `run`).
    lone_worker: bool,
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

/// The requests at the start of the input buffer that the lookahead
/// decoded, in order: each request's length and where its arguments are
/// in it. The connection runs them from here instead of decoding them a
/// second time; anything else that moves the input clears them.
#[derive(Default)]
struct DecodedAhead {
    /// (length, range of `spans`) of each request; `next` is the first
    /// not yet taken.
    requests: SmallVec<[(usize, (u32, u32)); PREFETCH_REQUESTS]>,
    spans: Vec<(usize, usize)>,
    next: usize,
    /// What they were decoded under: a request must be decoded again if
    /// the limits changed since (a CONFIG SET of proto-max-bulk-len
    /// earlier in the pipeline).
    limits: Option<Limits>,
}

impl DecodedAhead {
    fn clear(&mut self) {
        self.requests.clear();
        self.spans.clear();
        self.next = 0;
        self.limits = None;
    }

    fn start(&mut self, limits: Limits) {
        self.clear();
        self.limits = Some(limits);
    }

    fn push(&mut self, length: usize, spans: &[(usize, usize)]) {
        let first = self.spans.len() as u32;
        self.spans.extend_from_slice(spans);
        self.requests
            .push((length, (first, self.spans.len() as u32)));
    }

    /// The next request's length and argument spans, if it was decoded
    /// under `limits`.
    fn next(&mut self, limits: Limits) -> Option<(usize, (u32, u32))> {
        let request = *self.requests.get(self.next)?;
        if self.limits != Some(limits) {
            self.clear();
            return None;
        }
        self.next += 1;
        Some(request)
    }

    /// Puts a request's arguments into `args` (filled in place: a
    /// returned `SmallVec` is a 264-byte copy a request).
    fn fill_args<'a>(
        &self,
        (first, end): (u32, u32),
        frame: &'a [u8],
        args: &mut SmallVec<[&'a [u8]; 16]>,
    ) {
        args.extend(
            self.spans[first as usize..end as usize]
                .iter()
                .map(|&(start, end)| &frame[start..end]),
        );
    }
}

impl Connection<'_> {
    async fn run<S: ClientStream>(
        &mut self,
        session: &mut Session,
        stream: &mut S,
    ) -> std::io::Result<()> {
        if self.shared.is_stopping() {
            return Ok(());
        }
        let handle = self.handle.clone();
        let mailbox = handle.mailbox.clone();
        // One wait for CLIENT KILL or shutdown for the connection's life,
        // not one per read: making and dropping those waits (each a lock
        // on a waiter list) was 3% of a server's CPU at one request a read.
        let stop = {
            let handle = handle.clone();
            let mut shutdown = self.shutdown.clone();
            async move {
                tokio::select! {
                    _ = handle.killed() => {}
                    _ = shutdown.wait_for(|&stop| stop) => {}
                }
            }
        };
        tokio::pin!(stop);
        loop {
            let left_over = self.input.len();
            let room = self.make_room_to_read();
            // `timeout` is not a timer per read: the idle sweep (see
            // `ClientRegistry::close_idle`) kills a client idle too long.
            // Only a client that subscribed, tracks or monitors listens for
            // pushes. The read goes first, so that a request that arrived
            // polls nothing else; a client that always has one waiting is
            // still stopped by the checks after each batch.
            let read = tokio::select! {
                biased;
                read = stream.read_buf(&mut self.input) => Some(read?),
                _ = mailbox.pushed(), if mailbox.is_listening() => None,
                _ = &mut stop => return Ok(()),
            };
            let Some(read) = read else {
                if !self.send_pushed(stream).await? {
                    return Ok(());
                }
                continue;
            };
            if read == 0 {
                return Ok(());
            }
            self.adapt_read_chunk(read, room, left_over);
            self.report_query_buffer();
            session.last_read = Instant::now();
            // Any read is activity, as in Redis: a big argument arriving
            // slowly is not idle.
            handle.touch(session.last_read);
            self.shared.stats.net_input_bytes.add(read as u64);
            self.shared.stats.reads_processed.add(1);
            self.ran_since_read = 0;
            let keep_open = loop {
                let processed = self.process_input(session, stream).await;
                // The next run of requests reads the clock again.
                session.end_batch();
                self.prefetched = 0;
                match processed? {
                    Processed::Open => break true,
                    Processed::Close => break false,
                    // A blocking command must wait: the replies before it
                    // go out now; the requests after it wait in `input`.
                    Processed::Blocked(argv, request) => {
                        self.flush(stream).await?;
                        if !self.wait_unblocked(session, stream, argv, request).await? {
                            return Ok(());
                        }
                    }
                    // WRITEBEHIND FLUSH: likewise, the replies before it go
                    // out, then the connection waits for PostgreSQL.
                    Processed::AwaitFlush(wait) => {
                        self.flush(stream).await?;
                        if !self.await_flush(session, stream, wait).await? {
                            return Ok(());
                        }
                    }
                }
            };
            if mailbox.is_listening() && !self.take_pushed() {
                return Ok(());
            }
            // With one worker thread, a pipelined client's replies wait until
            // the other connections already queued on it have run theirs, and
            // leave together, as Redis writes its replies just before it
            // sleeps: a client woken by the first of them is still awake for
            // the next, and waking a sleeping one is the costliest part of a
            // send on a VM. Not with several workers, where the requeued task
            // wakes an idle worker to steal it, nor for a client sending one
            // request at a time (README, "Performance", has the figures).
            if self.ran_since_read > 1 && self.lone_worker {
                requeue_behind_ready_tasks().await;
            }
            self.flush(stream).await?;
            if mailbox.is_listening()
                && mailbox.held_bytes() > 0
                && !self.send_pushed(stream).await?
            {
                return Ok(());
            }
            if !keep_open || handle.is_killed() || self.shared.is_stopping() {
                return Ok(());
            }
            // Once drained, give back the memory a big request needed.
            if self.input.is_empty() && self.input.capacity() > 1024 * 1024 {
                self.input = BytesMut::with_capacity(READ_CHUNK);
            }
            self.report_query_buffer();
        }
    }

    /// Moves what was pushed to this client (messages, invalidations,
    /// MONITOR lines) into its output; false when it went past its output
    /// limit and must be dropped.
    fn take_pushed(&mut self) -> bool {
        let mailbox = &self.handle.mailbox;
        if mailbox.is_overflowed() {
            return false;
        }
        mailbox.drain_into(self.output.buffer());
        true
    }

    /// Writes out what was pushed to this idle client; false when it must
    /// be dropped.
    async fn send_pushed<S: ClientStream>(&mut self, stream: &mut S) -> std::io::Result<bool> {
        // What arrives while a slow client reads the rest is sent too,
        // without waiting for another push to wake the connection.
        loop {
            if !self.take_pushed() {
                return Ok(false);
            }
            self.flush(stream).await?;
            if self.handle.is_killed() {
                return Ok(false);
            }
            if self.handle.mailbox.held_bytes() == 0 {
                return Ok(true);
            }
        }
    }

    /// Makes room in the input buffer for the next read. A big argument
    /// on its way grows the buffer in proportion to what has arrived
    /// (about doubling), never past what its announced length still
    /// needs: the length is the client's word, the data is not there yet,
    /// and a buffer sized by the announcement costs its full size once
    /// copied (as Redis grows a big argument's buffer as data comes).
    /// Returns the room the read gets.
    fn make_room_to_read(&mut self) -> usize {
        let len = self.input.len();
        let spare = self.input.capacity() - len;
        match self.decoder.bytes_needed() {
            Some(needed) => {
                let missing = needed.saturating_sub(len);
                let wanted = missing.min(len.max(READ_CHUNK));
                if spare < wanted / 2 || spare == 0 {
                    self.input.reserve(wanted);
                }
            }
            None if spare < 4096 || spare < self.read_chunk / 2 => {
                self.input.reserve(self.read_chunk)
            }
            None => {}
        }
        self.input.capacity() - len
    }

    /// Follows how much a client sends at a time (see `read_chunk`).
    fn adapt_read_chunk(&mut self, read: usize, room: usize, left_over: usize) {
        if read == room {
            self.read_chunk = (self.read_chunk * 2).min(MAX_READ_CHUNK);
        } else if left_over == 0 && read < self.read_chunk / 4 {
            self.read_chunk = (self.read_chunk / 2).max(READ_CHUNK);
        }
    }

    /// Tells CLIENT LIST and the memory figures what the input buffer
    /// holds (once per read batch).
    fn report_query_buffer(&mut self) {
        let capacity = self.input.capacity();
        self.handle.set_query_buffer(self.input.len(), capacity);
        if capacity != self.reported_query_capacity {
            crate::memory::query_buffers_changed(
                capacity as i64 - self.reported_query_capacity as i64,
            );
            self.reported_query_capacity = capacity;
        }
    }

    /// Executes every complete request in the input buffer, up to the
    /// first one that blocks the client.
    async fn process_input<S: ClientStream>(
        &mut self,
        session: &mut Session,
        stream: &mut S,
    ) -> std::io::Result<Processed> {
        // When the first command of this turn on the worker ended.
        let mut turn_started = None;
        loop {
            let hot = session.hot(self.shared);
            let limits = Limits {
                max_bulk_len: hot.max_bulk_len,
                unauthenticated: !session.authenticated && hot.requirepass_set,
            };
            // Every few requests: the clock is read again, and the keys of
            // the next requests are prefetched.
            if self.prefetched == 0 {
                session.begin_batch(self.shared.store.now_ms());
                // Not while a request is half arrived: the lookahead would
                // parse its arguments again on every read.
                self.prefetched = if limits.unauthenticated || !self.decoder.is_idle() {
                    self.decoded_ahead.clear();
                    1
                } else {
                    self.prefetch_ahead(session.db, limits)
                };
            }
            let ahead = self.decoded_ahead.next(limits);
            let decoded = match ahead {
                Some((length, _)) => Ok(Some(length)),
                None => self.decoder.decode(&self.input, limits),
            };
            match decoded {
                Ok(Some(length)) => {
                    self.prefetched = self.prefetched.saturating_sub(1);
                    let frame = &self.input[..length];
                    let mut args = SmallVec::new();
                    match ahead {
                        Some((_, spans)) => self.decoded_ahead.fill_args(spans, frame, &mut args),
                        None => args = self.decoder.args(frame),
                    }
                    // rename-command: the command's own name from here on.
                    let renamed_away = match self.shared.renamed_commands.as_deref() {
                        Some(renames) => !commands::apply_renames(renames, &mut args),
                        None => false,
                    };
                    let mut blocked = None;
                    let mut awaiting_flush = None;
                    let reply_start = self.output.len();
                    if !args.is_empty() {
                        // CLIENT PAUSE: the command waits (without holding
                        // this worker) until the pause is over.
                        while self.shared.pause.may_be_active() {
                            let Some(until) = commands::paused_until(self.shared, session, &args)
                            else {
                                break;
                            };
                            tokio::select! {
                                _ = self.shared.pause.changed_or_over(until) => {}
                                _ = self.handle.killed() => return Ok(Processed::Close),
                                _ = self.shutdown.wait_for(|&stop| stop) => {
                                    return Ok(Processed::Close)
                                }
                            }
                            session.begin_batch(self.shared.store.now_ms());
                        }
                        // A script holds shards this command needs: wait
                        // for it without holding this worker (once it is
                        // busy, the command gets BUSY or, if allowed, runs).
                        if self.shared.scripting.is_running()
                            && commands::must_wait_for_script(self.shared, &args)
                        {
                            tokio::select! {
                                _ = self.shared.scripting.wait_while_running() => {}
                                _ = self.handle.killed() => return Ok(Processed::Close),
                                _ = self.shutdown.wait_for(|&stop| stop) => {
                                    return Ok(Processed::Close)
                                }
                            }
                            session.begin_batch(self.shared.store.now_ms());
                        }
                        if let Some(writebehind) = self.shared.writebehind.as_deref() {
                            if session.hot(self.shared).read_through {
                                let keys = commands::read_through_keys(writebehind, session, &args);
                                if !keys.is_empty() {
                                    let store = &self.shared.store;
                                    tokio::select! {
                                        _ = writebehind.load_missing(store, session.db, keys) => {}
                                        _ = self.handle.killed() => return Ok(Processed::Close),
                                        _ = self.shutdown.wait_for(|&stop| stop) => {
                                            return Ok(Processed::Close)
                                        }
                                    }
                                    session.begin_batch(self.shared.store.now_ms());
                                }
                            }
                        }
                        // Past the memory ceiling, a write evicts first,
                        // a slice at a time, and the other connections of
                        // this worker run between slices.
                        if let Some(limits) =
                            commands::must_evict_first(self.shared, session, &args)
                        {
                            let store = &self.shared.store;
                            let give_up = Instant::now() + CEILING_TIME_LIMIT;
                            while store.evict_past_ceiling(&limits) && Instant::now() < give_up {
                                tokio::task::yield_now().await;
                            }
                            session.begin_batch(store.now_ms());
                        }
                        let ((), frees) = lazyfree::collect_sync_frees(|| {
                            if renamed_away {
                                let output = &mut self.output;
                                commands::refuse_renamed_away(self.shared, session, output, &args)
                            } else {
                                commands::execute(self.shared, session, &mut self.output, &args)
                            }
                        });
                        // A big DEL or FLUSHALL SYNC replies once its memory
                        // is freed, on the lazyfree thread: wait without
                        // holding the worker.
                        if !frees.is_empty() {
                            self.prefetched = 0;
                        }
                        for freed in frees {
                            tokio::select! {
                                _ = freed => {}
                                _ = self.handle.killed() => return Ok(Processed::Close),
                                _ = self.shutdown.wait_for(|&stop| stop) => {
                                    return Ok(Processed::Close)
                                }
                            }
                        }
                        // DEBUG SLEEP: only this connection waits.
                        if let Some(pause) = session.debug_sleep.take() {
                            self.prefetched = 0;
                            tokio::select! {
                                _ = tokio::time::sleep(pause) => {}
                                _ = self.handle.killed() => return Ok(Processed::Close),
                                _ = self.shutdown.wait_for(|&stop| stop) => {
                                    return Ok(Processed::Close)
                                }
                            }
                        }
                        // The command runs again when woken: keep a copy
                        // (the input buffer moves on).
                        if let Some(request) = session.block.take() {
                            blocked = Some((args.iter().map(|a| a.to_vec()).collect(), request));
                        }
                        awaiting_flush = session.flush_wait.take();
                    }
                    drop(args);
                    self.note_journaled(reply_start);
                    self.input.advance(length);
                    self.decoder.reset();
                    self.ran_since_read += 1;
                    // Like Redis, nothing after QUIT, SHUTDOWN or a CLIENT
                    // KILL of this client runs, even if already received.
                    if session.close_after_reply || session.handle.is_killed() {
                        return Ok(Processed::Close);
                    }
                    if let Some((argv, request)) = blocked {
                        return Ok(Processed::Blocked(argv, request));
                    }
                    if let Some(wait) = awaiting_flush {
                        return Ok(Processed::AwaitFlush(wait));
                    }
                    if self.output.len() >= OUTPUT_FLUSH_THRESHOLD {
                        self.flush(stream).await?;
                        self.prefetched = 0;
                    }
                    // A run of slow commands lets this worker's other
                    // connections in between, every LONG_TURN (yield_now:
                    // the socket events are polled too, so that a client
                    // whose request arrived meanwhile gets its turn).
                    if let Some(ended) = session.run_clock {
                        let started = *turn_started.get_or_insert(ended);
                        if ended.saturating_duration_since(started) >= LONG_TURN {
                            tokio::task::yield_now().await;
                            turn_started = None;
                            self.prefetched = 0;
                        }
                    }
                }
                Ok(None) => {
                    let limit = session.hot(self.shared).query_buffer_limit;
                    if self.input.len() as u64 > limit {
                        self.shared
                            .stats
                            .query_buffer_limit_disconnections
                            .fetch_add(1, Ordering::Relaxed);
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
                    let message = error.message_bytes();
                    commands::count_error_reply(self.shared, &message);
                    self.output.error_bytes(&message);
                    return Ok(Processed::Close);
                }
            }
        }
    }

    /// Prefetches the keys of the next requests in the input buffer (up
    /// to [`PREFETCH_REQUESTS`]) from the store, so that their cache misses
    /// overlap (see `Store::prefetch`). Returns how many requests that
    /// covers; a lone request is not worth it and counts as covered.
    fn prefetch_ahead(&mut self, db: usize, limits: Limits) -> usize {
        self.decoded_ahead.start(limits);
        let mut keys: SmallVec<[&[u8]; PREFETCH_KEYS]> = SmallVec::new();
        // (key, member) of the requests that look a member up in a key.
        let mut members: SmallVec<[(&[u8], &[u8]); PREFETCH_REQUESTS]> = SmallVec::new();
        // Each request's arguments in turn, in one vector filled in place.
        let mut argv: SmallVec<[&[u8]; 16]> = SmallVec::new();
        let mut offset = 0;
        let mut requests = 0;
        while requests < PREFETCH_REQUESTS && keys.len() < PREFETCH_KEYS {
            self.lookahead.reset();
            let Ok(Some(length)) = self.lookahead.decode(&self.input[offset..], limits) else {
                break;
            };
            // Inline requests (typed by hand) are not worth it.
            let Some(spans) = self.lookahead.arg_spans() else {
                break;
            };
            // A request alone in the buffer is worth it only if it may
            // name several keys (MGET, MSET: their misses overlap); one
            // with a name and one argument names one key at most.
            if requests == 0 && length == self.input.len() && spans.len() < 3 {
                break;
            }
            let frame = &self.input[offset..offset + length];
            argv.clear();
            argv.extend(spans.iter().map(|&(s, e)| &frame[s..e]));
            self.decoded_ahead.push(length, spans);
            if !argv.is_empty() {
                let (key_positions, member) = commands::prefetch_positions(&argv);
                if let (Some(&key), Some(member)) = (key_positions.first(), member) {
                    members.push((argv[key], argv[member]));
                }
                for position in key_positions {
                    if keys.len() == PREFETCH_KEYS {
                        break;
                    }
                    // A key repeated (a pipeline on one hot key) is
                    // prefetched once.
                    if keys.last() != Some(&argv[position]) {
                        keys.push(argv[position]);
                    }
                }
            }
            offset += length;
            requests += 1;
        }
        // A huge request leaves a huge argument list: not kept.
        if self
            .lookahead
            .arg_spans()
            .is_some_and(|spans| spans.len() > 1024)
        {
            self.lookahead = RequestDecoder::new();
        }
        self.lookahead.reset();
        // One key, one member: nothing to overlap, and on a hot key (every
        // request of redis-benchmark without -r) nothing to fetch either.
        if keys.len() > 1 || members.len() > 1 {
            self.shared.store.prefetch(db, &keys, &members);
        }
        requests.max(1)
    }

    /// Keeps a client blocked (see `shared::blocking`) until its command
    /// is served, times out, or the client goes away. Returns false when
    /// the connection must close (killed, shutdown, the peer closed): a
    /// client that leaves while blocked leaves no trace, its registration
    /// is dropped on every path. Requests the client pipelines meanwhile
    /// are read into `input` (so that its closing is seen), not run.
    async fn wait_unblocked<S: ClientStream>(
        &mut self,
        session: &mut Session,
        stream: &mut S,
        argv: Vec<Vec<u8>>,
        request: BlockRequest,
    ) -> std::io::Result<bool> {
        let shared = self.shared;
        let handle = session.handle.clone();
        let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let timeout = after(request.timeout);
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
                let pushed = tokio::select! {
                    _ = registration.woken() => break,
                    _ = &mut timeout => {
                        request.on_timeout.write(&mut self.output);
                        return Ok(true);
                    }
                    reason = handle.unblock_requested() => {
                        match reason {
                            UnblockReason::Timeout => request.on_timeout.write(&mut self.output),
                            UnblockReason::Error => {
                                let message = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
                                commands::blocked_command_failed(shared, &args, message);
                                self.output.error(message);
                            }
                        }
                        return Ok(true);
                    }
                    _ = handle.killed() => return Ok(false),
                    _ = self.shutdown.wait_for(|&stop| stop) => return Ok(false),
                    read = stream.read_buf(&mut self.input) => {
                        if !read_while_waiting(shared, self.input.len(), read?) {
                            return Ok(false);
                        }
                        false
                    }
                    _ = handle.mailbox.pushed(), if handle.mailbox.is_listening() => true,
                };
                // A blocked RESP3 client still gets its pushes
                // (invalidations, messages), as in Redis.
                if pushed && !self.send_pushed(stream).await? {
                    return Ok(false);
                }
            }
            woken_by = Some(registration.take_ready_keys());
        }
    }

    /// Waits for `WRITEBEHIND FLUSH` (see [`FlushWait`]) and writes its
    /// reply: +OK once PostgreSQL has every change up to the target, the
    /// incomplete-flush error at the timeout or on CLIENT UNBLOCK. Returns
    /// false when the connection must close (killed, shutdown, the peer
    /// closed). The wait holds no thread.
    async fn await_flush<S: ClientStream>(
        &mut self,
        session: &mut Session,
        stream: &mut S,
        wait: FlushWait,
    ) -> std::io::Result<bool> {
        let Some(writebehind) = self.shared.writebehind.clone() else {
            self.output
                .error("ERR write-behind is off (set write-behind-url to turn it on)");
            return Ok(true);
        };
        let handle = session.handle.clone();
        let timeout = after(wait.timeout);
        tokio::pin!(timeout);
        let flushed = writebehind.flushed(wait.target);
        tokio::pin!(flushed);
        // Shown as blocked (`b`), and CLIENT UNBLOCK ends it, as for WAIT.
        let _blocked_flag = BlockedFlag::set(&handle);
        loop {
            tokio::select! {
                done = &mut flushed => {
                    if done {
                        self.output.ok();
                    } else {
                        self.output.error(&writebehind.flush_incomplete_message());
                    }
                    return Ok(true);
                }
                _ = &mut timeout => {
                    self.output.error(&writebehind.flush_incomplete_message());
                    return Ok(true);
                }
                reason = handle.unblock_requested() => {
                    match reason {
                        UnblockReason::Timeout => {
                            self.output.error(&writebehind.flush_incomplete_message())
                        }
                        UnblockReason::Error => self
                            .output
                            .error("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
                    }
                    return Ok(true);
                }
                _ = handle.killed() => return Ok(false),
                _ = self.shutdown.wait_for(|&stop| stop) => return Ok(false),
                read = stream.read_buf(&mut self.input) => {
                    if !read_while_waiting(self.shared, self.input.len(), read?) {
                        return Ok(false);
                    }
                }
            }
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

    async fn flush<S: ClientStream>(&mut self, stream: &mut S) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        if self.journaled_up_to > 0 {
            if let Some(journal) = &self.journal {
                if !journal.write_through(self.journaled_up_to) {
                    tokio::select! {
                        durable = journal.wait_durable(self.journaled_up_to) => {
                            if let Err(error) = durable {
                                replace_replies(
                                    self.output.buffer(),
                                    &self.journaled_replies,
                                    &error,
                                );
                            }
                        }
                        _ = self.handle.killed() => return Err(closing("killed")),
                        _ = self.shutdown.wait_for(|&stop| stop) => {
                            return Err(closing("server stopping"))
                        }
                    }
                }
            }
            self.journaled_up_to = 0;
            self.journaled_replies.clear();
        }
        // A client that does not read its replies must not hold the
        // connection forever: every write also waits on CLIENT KILL,
        // shutdown and, as in Redis, `timeout` (a write that moves counts
        // as activity).
        let buffer = self.output.buffer();
        self.handle
            .set_output_buffer(buffer.len(), buffer.capacity());
        // Usually the socket takes everything at once: only what it does not
        // take arms the waits below.
        let mut written = match stream.try_write_now(buffer) {
            Ok(sent) => sent,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(error) => return Err(error),
        };
        let mut progress_at = Instant::now();
        let mailbox = &self.handle.mailbox;
        while written < buffer.len() || stream.has_pending_output() {
            // What the client has not read counts toward its output limit.
            mailbox.set_unsent(buffer.len() - written);
            tokio::select! {
                biased;
                sent = write_some(stream, &buffer[written..]) => {
                    written += sent?;
                    progress_at = Instant::now();
                },
                _ = mailbox.pushed(), if mailbox.is_listening() => {
                    if mailbox.is_overflowed() {
                        return Err(closing("output buffer limit reached"));
                    }
                }
                _ = self.handle.killed() => return Err(closing("killed while writing")),
                _ = self.shutdown.wait_for(|&stop| stop) => {
                    return Err(closing("server stopping while writing"))
                }
                _ = idle(self.shared, progress_at) => {
                    return Err(closing("timeout while its replies wait to be read"))
                }
            }
        }
        mailbox.set_unsent(0);
        self.shared.stats.net_output_bytes.add(buffer.len() as u64);
        self.shared.stats.writes_processed.add(1);
        buffer.clear();
        if buffer.capacity() > 4 * OUTPUT_FLUSH_THRESHOLD {
            *buffer = BytesMut::with_capacity(16 * 1024);
        }
        self.handle.set_output_buffer(0, buffer.capacity());
        Ok(())
    }
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        crate::memory::query_buffers_changed(-(self.reported_query_capacity as i64));
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
    /// `WRITEBEHIND FLUSH` must wait for PostgreSQL.
    AwaitFlush(FlushWait),
}

/// Accounts for `read` bytes a waiting client sent (kept in the input
/// buffer, now `input_len` long, for after the wait); false once it closed
/// the connection or went past the query buffer limit.
fn read_while_waiting(shared: &Shared, input_len: usize, read: usize) -> bool {
    if read == 0 {
        return false;
    }
    shared.stats.net_input_bytes.add(read as u64);
    shared.stats.reads_processed.add(1);
    let within = input_len as u64 <= shared.config.read().client_query_buffer_limit;
    if !within {
        shared
            .stats
            .query_buffer_limit_disconnections
            .fetch_add(1, Ordering::Relaxed);
    }
    within
}

/// The error that ends a connection the server closes on purpose.
fn closing(why: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, why)
}

/// CLIENT LIST's `b` flag, set while the client is blocked.
struct BlockedFlag<'h>(&'h ClientHandle);

impl<'h> BlockedFlag<'h> {
    fn set(handle: &'h ClientHandle) -> Self {
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

/// Resolves once `timeout` has passed from now; never for `None`, or for a
/// timeout beyond what `Instant` can hold (as good as never).
async fn after(timeout: Option<Duration>) {
    match timeout.and_then(|timeout| tokio::time::Instant::now().checked_add(timeout)) {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
