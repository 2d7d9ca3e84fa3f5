//! The network side: listener, connection loop, client registry, shutdown.
//! It knows nothing of individual commands; it hands every decoded request
//! to [`crate::commands::execute`].

mod connection;
mod tls;

pub use connection::{protected_mode_refuses, PROTECTED_MODE_DENIED};

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use crate::config::renames::CommandRenames;
use crate::config::Config;
use crate::shared::Shared;
use crate::store::Store;
use crate::writebehind::flusher::FlusherThread;
use crate::writebehind::WriteBehind;

/// A bound server, ready to run.
///
/// ```
/// use larder::{Config, Server};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut config = Config::default();
/// config.port = 0; // any free port
/// let server = Server::start(config).await.unwrap();
/// let addr = server.local_addr();
/// assert_ne!(addr.port(), 0);
/// server.store().set(0, b"k", b"v").unwrap();
/// server.shutdown().await;
/// # });
/// ```
pub struct Server {
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    /// The `unixsocket` listener and its path.
    unix: Option<(UnixListener, Arc<str>)>,
    /// The Prometheus endpoint's listener (`metrics-port`), if on.
    metrics: Option<TcpListener>,
    /// `tls-port`: its context and listeners.
    tls: Arc<tls::Tls>,
    /// The `bind` addresses, for the TLS listeners CONFIG SET opens.
    ips: Vec<std::net::IpAddr>,
}

impl Server {
    /// Binds every `bind` address on `port`, without serving yet.
    pub async fn bind(config: Config) -> io::Result<Server> {
        let mut listeners = Vec::new();
        let mut port = config.port;
        let ips = bind_ips(&config)?;
        for &ip in &ips {
            let listener = TcpListener::bind(SocketAddr::new(ip, port)).await?;
            // With port 0, every further address uses the port the first got.
            port = listener.local_addr()?.port();
            listeners.push(listener);
        }
        if listeners.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no bind address",
            ));
        }
        let renames = command_renames(&config)?;
        let unix = bind_unix_socket(&config)?;
        let metrics = crate::metrics::bind(&config).await?;
        let tls = tls::Tls::bind(&config, &ips).await?;
        let audit_log_file = config.audit_log_file.clone();
        let mut shared = Shared::new(config);
        shared.renamed_commands = renames;
        shared.audit.reopen(&audit_log_file).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("audit-log-file '{audit_log_file}': {error}"),
            )
        })?;
        // Until `run` has loaded the dataset, clients get -LOADING. With
        // nothing to load the server serves at once, as before.
        let rdb_file = shared.save_options().path().exists();
        shared
            .persistence
            .set_loading(rdb_file || shared.writebehind.is_some());
        let shared = Arc::new(shared);
        crate::commands::load_acl(&shared)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        *shared.bound.lock() = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        Ok(Server {
            shared,
            listeners,
            unix,
            metrics,
            tls,
            ips,
        })
    }

    /// Binds and serves in the background on the current tokio runtime;
    /// returns once the dataset is loaded (RDB file, write-behind warm
    /// start and journal), so that every command is served from then on.
    pub async fn start(config: Config) -> io::Result<RunningServer> {
        let server = Server::bind(config).await?;
        let shared = server.shared.clone();
        let addr = server.local_addr();
        let metrics_addr = server.metrics_addr();
        let task = tokio::spawn(server.run());
        while shared.persistence.is_loading() && !task.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        if task.is_finished() {
            // It could not start (a damaged RDB file...).
            task.await.map_err(io::Error::other)??;
            return Err(io::Error::other("the server stopped while starting"));
        }
        Ok(RunningServer {
            shared,
            addr,
            metrics_addr,
            task,
        })
    }

    /// The first bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.bound.lock()[0]
    }

    /// The Prometheus endpoint's address (`metrics-port`), if on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn store(&self) -> Store {
        self.shared.store.clone()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until shutdown is requested (SHUTDOWN, or a handle).
    pub async fn run(mut self) -> io::Result<()> {
        // While the dataset loads, clients are served already and get
        // -LOADING for what needs the data, as in Redis; with nothing to
        // load, serving starts once the background tasks are up.
        let mut serving = self
            .shared
            .persistence
            .is_loading()
            .then(|| self.start_serving());
        // Only a complete dataset is served (and saved): after a failed or
        // interrupted load, the clients connected meanwhile keep getting
        // -LOADING until the stop closes them.
        match self.load_dataset().await {
            Ok(true) => self.shared.persistence.set_loading(false),
            // A shutdown asked for while loading: nothing more to do.
            Ok(false) => return Ok(()),
            Err(_) if self.shared.is_stopping() => return Ok(()),
            Err(error) => {
                self.shared.request_shutdown();
                return Err(error);
            }
        }
        let expiry = spawn_active_expiry(self.shared.clone())?;
        let flusher = match self.shared.writebehind.clone() {
            Some(writebehind) => Some((
                writebehind.clone(),
                crate::writebehind::flusher::spawn(
                    self.shared.store.clone(),
                    self.shared.config.clone(),
                    writebehind,
                )?,
            )),
            None => None,
        };
        let serving = serving.get_or_insert_with(|| self.start_serving());
        let mut shutdown = self.shared.shutdown_receiver();
        let _ = shutdown.wait_for(|&stop| stop).await;
        serving.stop();
        // Stopped otherwise than by SHUTDOWN (a signal, the embedding
        // program): as Redis, a final snapshot if save points are set.
        if !self.shared.persistence.shutdown_handled() {
            let shared = self.shared.clone();
            let _ = tokio::task::spawn_blocking(move || {
                crate::commands::shutdown_save(&shared, false, false, false)
            })
            .await;
        }
        stop_within_deadline(&self.shared, flusher, expiry).await;
        Ok(())
    }

    /// The dataset, before commands that need it are served: the RDB file
    /// `dir/dbfilename`, if there is one (a file that cannot be read
    /// whole stops the start-up), then the warm start from PostgreSQL,
    /// which adds the keys the file did not have (it never replaces a
    /// key), then, on top of both, the changes PostgreSQL had not
    /// confirmed when an earlier run stopped (the journal). `Ok(false)`:
    /// a shutdown was asked for meanwhile.
    async fn load_dataset(&self) -> io::Result<bool> {
        let loader = self.shared.clone();
        tokio::task::spawn_blocking(move || loader.load_rdb(false))
            .await
            .map_err(io::Error::other)?
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        let Some(writebehind) = &self.shared.writebehind else {
            return Ok(true);
        };
        if writebehind.warm_start_enabled() {
            let maxmemory = self.shared.config.read().maxmemory;
            let mut shutdown = self.shared.shutdown_receiver();
            tokio::select! {
                started = writebehind.warm_start(&self.shared.store, maxmemory) => {
                    if let Err(error) = started {
                        tracing::error!(%error, "write-behind warm start failed; starting without it");
                    }
                }
                // A stop asked for during a long warm start ends it.
                _ = shutdown.wait_for(|&stop| stop) => {
                    tracing::warn!("write-behind warm start interrupted by shutdown");
                    return Ok(false);
                }
            }
        }
        let shared = self.shared.clone();
        let writebehind = writebehind.clone();
        tokio::task::spawn_blocking(move || writebehind.start_journal(&shared.store))
            .await
            .map_err(io::Error::other)?
            .map_err(|error| {
                io::Error::new(error.kind(), format!("write-behind journal: {error}"))
            })?;
        Ok(true)
    }

    /// Starts accepting connections on every listener (TCP, TLS, Unix
    /// socket, metrics).
    fn start_serving(&mut self) -> Serving {
        let mut tasks = Vec::new();
        self.tls.start(&self.shared, self.ips.clone());
        for listener in std::mem::take(&mut self.listeners) {
            tasks.push(tokio::spawn(accept_loop(self.shared.clone(), listener)));
        }
        // As Redis: the socket file goes with the server, also when the
        // server's future is dropped rather than run to its end.
        let mut socket_file = None;
        if let Some((listener, path)) = self.unix.take() {
            tracing::info!("The server is now ready to accept connections at {path}");
            socket_file = Some(UnixSocketFile(path.clone()));
            tasks.push(tokio::spawn(accept_unix_loop(
                self.shared.clone(),
                listener,
                path,
            )));
        }
        if let Some(listener) = self.metrics.take() {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "Prometheus metrics at http://{address}/metrics");
            }
            // It stops by itself on shutdown; aborted with the listeners
            // all the same.
            tasks.push(tokio::spawn(crate::metrics::serve(
                self.shared.clone(),
                listener,
            )));
        }
        Serving {
            tasks,
            tls: self.tls.clone(),
            _socket_file: socket_file,
        }
    }
}

/// The accept loops of a running server; dropped (or stopped), they end.
struct Serving {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    tls: Arc<tls::Tls>,
    _socket_file: Option<UnixSocketFile>,
}

impl Serving {
    fn stop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.tls.stop();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The shutdown after the listeners closed, every step bounded by
/// `shutdown-timeout` (the binary enforces it too, with an exit): what did
/// not finish in time is abandoned and logged.
async fn stop_within_deadline(
    shared: &Arc<Shared>,
    flusher: Option<(Arc<WriteBehind>, FlusherThread)>,
    expiry: std::thread::JoinHandle<()>,
) {
    let budget = Duration::from_secs(shared.config.read().shutdown_timeout);
    let deadline = Instant::now() + budget;
    let mut abandoned = Vec::new();
    // Connections watch the same signal and close (every wait of theirs,
    // writes included, also waits on it); give them a moment to write
    // their last replies.
    let connections_deadline = deadline.min(Instant::now() + Duration::from_secs(2));
    while !shared.clients.is_empty() && Instant::now() < connections_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !shared.clients.is_empty() {
        abandoned.push(format!("{} connections still open", shared.clients.len()));
    }
    // Write-behind: the backlog goes to PostgreSQL before we stop, within
    // write-behind-shutdown-timeout, and within what shutdown-timeout
    // leaves once the journal has its share.
    if let Some((writebehind, mut flusher)) = flusher {
        writebehind.begin_shutdown();
        let journal_share = (budget / 5).min(Duration::from_secs(1));
        let flusher_deadline = deadline
            .checked_sub(journal_share)
            .unwrap_or(deadline)
            .min(Instant::now() + writebehind.shutdown_timeout() + Duration::from_secs(1));
        if !flusher.finish_by(flusher_deadline).await {
            drop(flusher);
            tracing::error!("write-behind: shutdown flush did not finish in time");
        }
        // What PostgreSQL did not take stays in the journal (if on).
        let journal = writebehind.clone();
        let stop_journal = tokio::task::spawn_blocking(move || journal.stop_journal());
        let journal_written = tokio::time::timeout_at(deadline.into(), stop_journal)
            .await
            .is_ok();
        if !journal_written {
            abandoned.push("the write-behind journal was not written out".to_string());
        }
        abandoned.extend(writebehind_leftovers(&writebehind));
    }
    let expiry_stopped = tokio::time::timeout_at(
        deadline.into(),
        tokio::task::spawn_blocking(move || expiry.join()),
    )
    .await
    .is_ok();
    if !expiry_stopped {
        abandoned.push("active expiry still running".to_string());
    }
    if abandoned.is_empty() {
        tracing::info!("server stopped");
    } else {
        tracing::error!(
            "server stopped at shutdown-timeout ({} s) without finishing: {}",
            budget.as_secs(),
            abandoned.join("; ")
        );
    }
}

/// What a shutdown stopped now would leave undone (empty: nothing): for the
/// log of a shutdown cut short by `shutdown-timeout`.
pub fn unfinished_work(shared: &Shared) -> Vec<String> {
    let mut unfinished = Vec::new();
    let open = shared.clients.len();
    if open > 0 {
        unfinished.push(format!("{open} connections still open"));
    }
    if let Some(writebehind) = shared.writebehind.as_deref() {
        unfinished.extend(writebehind_leftovers(writebehind));
    }
    unfinished
}

fn writebehind_leftovers(writebehind: &WriteBehind) -> Option<String> {
    let pending = writebehind.pending_keys();
    (pending > 0).then(|| {
        let fate = if writebehind.journal().is_some() {
            "kept in the journal, replayed at the next start"
        } else {
            "lost (write-behind-journal is off)"
        };
        format!("{pending} write-behind changes not in PostgreSQL: {fate}")
    })
}

/// A server serving in the background: its address, its store, and the way
/// to stop it.
pub struct RunningServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Prometheus endpoint's address (`metrics-port`), if on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn store(&self) -> Store {
        self.shared.store.clone()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Stops the server and waits until it has stopped.
    pub async fn shutdown(self) {
        self.shared.request_shutdown();
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (e.g. a client sent SHUTDOWN).
    pub async fn wait(self) -> io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }
}

/// What `rename-command` made of the command names, checked against the
/// command table (Redis's errors); `None` when nothing is renamed.
fn command_renames(config: &Config) -> io::Result<Option<Box<CommandRenames>>> {
    if config.rename_commands.is_empty() {
        return Ok(None);
    }
    let command_named = |name: &str| crate::commands::lookup(name.as_bytes()).map(|s| s.name);
    CommandRenames::build(&config.rename_commands, command_named)
        .map(|renames| Some(Box::new(renames)))
        .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))
}

/// The `bind` addresses (a leading `-`, Redis's "optional", is dropped).
fn bind_ips(config: &Config) -> io::Result<Vec<std::net::IpAddr>> {
    config
        .bind
        .iter()
        .map(|address| {
            let host = address.trim_start_matches('-');
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid bind address '{address}'"),
                )
            })
        })
        .collect()
}

/// Listens on `unixsocket`, if set: a file left there (by a server that
/// did not stop cleanly) is removed first, and `unixsocketperm` applied,
/// as Redis's anetUnixServer does.
fn bind_unix_socket(config: &Config) -> io::Result<Option<(UnixListener, Arc<str>)>> {
    if config.unixsocket.is_empty() {
        return Ok(None);
    }
    let path = config.unixsocket.as_str();
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("Failed opening Unix socket {path}: {error}"),
        )
    })?;
    if config.unixsocketperm != 0 {
        use std::os::unix::fs::PermissionsExt;
        let permissions = std::fs::Permissions::from_mode(config.unixsocketperm);
        std::fs::set_permissions(path, permissions)?;
    }
    Ok(Some((listener, Arc::from(path))))
}

/// Removes the Unix socket's file when dropped.
struct UnixSocketFile(Arc<str>);

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        let path = &*self.0;
        if let Err(error) = std::fs::remove_file(path) {
            tracing::warn!(%error, "Error removing the unix socket file {path}");
        }
    }
}

async fn accept_unix_loop(shared: Arc<Shared>, listener: UnixListener, path: Arc<str>) {
    let mut failures = AcceptFailures::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                failures.succeeded();
                let origin = connection::Origin::Unix(path.clone());
                tokio::spawn(connection::serve(shared.clone(), stream, origin));
            }
            Err(error) => {
                let pause = failures.failed(&error);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut failures = AcceptFailures::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                failures.succeeded();
                tokio::spawn(connection::serve_tcp(shared.clone(), stream, peer));
            }
            Err(error) => {
                // Typically EMFILE: the connection waits in the backlog
                // until a descriptor frees; back off instead of spinning.
                let pause = failures.failed(&error);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Accept failures in a row: the pause before the next try doubles (10 ms
/// up to 200 ms), and the log has one line per 10 seconds at most, with
/// the count, instead of one per try.
#[derive(Default)]
struct AcceptFailures {
    in_a_row: u32,
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl AcceptFailures {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn failed(&mut self, error: &io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unlogged += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= Self::LOG_EVERY)
        {
            tracing::warn!(
                failures = self.unlogged,
                "Accepting client connection: {error}"
            );
            self.unlogged = 0;
            self.logged_at = Some(Instant::now());
        }
        Duration::from_millis(10 << self.in_a_row.min(5)).min(Duration::from_millis(200))
    }

    fn succeeded(&mut self) {
        self.in_a_row = 0;
    }
}

/// Active expiry runs on its own thread so that a burst of due keys never
/// occupies a runtime worker that clients' connections are waiting on; it
/// takes one shard lock at a time, briefly. So does eviction while used
/// memory is over `maxmemory` (write commands evict too, reads do not: see
/// `store::evict`). Once a second the same thread
/// closes clients idle past `timeout` and hands freed memory back to the
/// OS when the allocator keeps much of it.
fn spawn_active_expiry(shared: Arc<Shared>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("larder-expire".into())
        .spawn(move || {
            // Its work comes in slices (64 keys a shard lock, eviction 1 ms
            // at a time); between them, the clients' threads go first.
            crate::latency::run_behind_clients();
            let mut last_cron = Instant::now();
            let mut last_client_check = Instant::now() - Duration::from_secs(1);
            let mut last_save_check = Instant::now();
            while !shared.is_stopping() {
                // Save points and BGSAVE SCHEDULE, as Redis's serverCron
                // (10 times a second).
                if last_save_check.elapsed() >= Duration::from_millis(100) {
                    let save_points = shared.config.read().save_points.clone();
                    shared
                        .persistence
                        .cron(&shared.store, &save_points, || shared.save_options());
                    last_save_check = Instant::now();
                }
                // Once a second: freed memory goes back to the OS.
                if last_cron.elapsed() >= Duration::from_secs(1) {
                    crate::memory::purge_if_retaining();
                    let timeout = shared.config.read().timeout;
                    if timeout > 0 {
                        shared.clients.close_idle(Duration::from_secs(timeout));
                    }
                    last_cron = Instant::now();
                }
                // Client eviction follows `maxmemory-clients` (and
                // `maxmemory`, for a percentage) within a cycle; past the
                // limit, it also catches what pushes from here added.
                if last_client_check.elapsed() >= Duration::from_millis(50) {
                    let limit = {
                        let config = shared.config.read();
                        let setting = config.get("maxmemory-clients").unwrap_or_default();
                        crate::shared::client_eviction_limit(&setting, config.maxmemory)
                    };
                    shared.clients.set_eviction_limit(limit);
                    last_client_check = Instant::now();
                }
                shared.stats.sample_instantaneous();
                let cycle_started = Instant::now();
                let reclaimed = shared.store.expire_cycle();
                let stats = &shared.stats;
                stats
                    .expired_keys
                    .fetch_add(reclaimed as u64, Ordering::Relaxed);
                stats.expire_cycle_us.fetch_add(
                    cycle_started.elapsed().as_micros() as u64,
                    Ordering::Relaxed,
                );
                // Over maxmemory: evict a slice, as Redis's eviction
                // time proc (reads leave eviction to this thread).
                let limits = shared.config.read().memory_limits();
                let evicting = shared.store.evict_in_background(&limits);
                if reclaimed == 0 && !evicting {
                    // A key table resize that reads alone would leave
                    // under way (Redis's `activerehashing`).
                    let rehashing = shared.config.read().get("activerehashing");
                    if rehashing.is_some_and(|on| on.eq_ignore_ascii_case("yes")) {
                        shared.store.rehash_cycle();
                    }
                    let hz = shared.config.read().hz.max(1);
                    std::thread::sleep(Duration::from_millis(1000 / hz));
                } else {
                    // More may be due or over the limit: go on, but let
                    // clients' threads run.
                    std::thread::yield_now();
                }
            }
        })
}
