//! The network side: listener, connection loop, client registry, shutdown.
//! It knows nothing of individual commands; it hands every decoded request
//! to [`crate::commands::execute`].

mod connection;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::shared::Shared;
use crate::store::Store;

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
}

impl Server {
    /// Binds every `bind` address on `port`, without serving yet.
    pub async fn bind(config: Config) -> io::Result<Server> {
        let mut listeners = Vec::new();
        let mut port = config.port;
        for address in &config.bind {
            let host = address.trim_start_matches('-');
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let ip: std::net::IpAddr = host.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid bind address '{address}'"),
                )
            })?;
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
        let shared = Arc::new(Shared::new(config));
        *shared.bound.lock() = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        Ok(Server { shared, listeners })
    }

    /// Binds and serves in the background on the current tokio runtime.
    pub async fn start(config: Config) -> io::Result<RunningServer> {
        let server = Server::bind(config).await?;
        let shared = server.shared.clone();
        let addr = server.local_addr();
        let task = tokio::spawn(server.run());
        Ok(RunningServer { shared, addr, task })
    }

    /// The first bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.bound.lock()[0]
    }

    pub fn store(&self) -> Store {
        self.shared.store.clone()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until shutdown is requested (SHUTDOWN, or a handle).
    pub async fn run(self) -> io::Result<()> {
        // Before any client is served (those that connect meanwhile wait in
        // the listen queue): the warm start from PostgreSQL, then, on top of
        // it, the changes PostgreSQL had not confirmed when an earlier run
        // stopped (the journal).
        if let Some(writebehind) = self.shared.writebehind.as_deref() {
            if writebehind.warm_start_enabled() {
                let maxmemory = self.shared.config.read().maxmemory;
                if let Err(error) = writebehind.warm_start(&self.shared.store, maxmemory).await {
                    tracing::error!(%error, "write-behind warm start failed; starting without it");
                }
            }
        }
        if let Some(writebehind) = &self.shared.writebehind {
            let shared = self.shared.clone();
            let writebehind = writebehind.clone();
            tokio::task::spawn_blocking(move || writebehind.start_journal(&shared.store))
                .await
                .map_err(io::Error::other)?
                .map_err(|error| {
                    io::Error::new(error.kind(), format!("write-behind journal: {error}"))
                })?;
        }
        let expiry = spawn_active_expiry(self.shared.clone())?;
        let flusher = self.shared.writebehind.clone().map(|writebehind| {
            (
                writebehind.clone(),
                tokio::spawn(crate::writebehind::flusher::run(
                    self.shared.store.clone(),
                    self.shared.config.clone(),
                    writebehind,
                )),
            )
        });
        let mut accept_tasks = Vec::new();
        for listener in self.listeners {
            accept_tasks.push(tokio::spawn(accept_loop(self.shared.clone(), listener)));
        }
        let mut shutdown = self.shared.shutdown_receiver();
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        for task in accept_tasks {
            task.abort();
        }
        // Connections watch the same signal and close; give them a moment
        // to flush their last replies.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.shared.clients.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Write-behind: the backlog goes to PostgreSQL before we stop,
        // within write-behind-shutdown-timeout.
        if let Some((writebehind, task)) = flusher {
            writebehind.begin_shutdown();
            let bound = writebehind.shutdown_timeout() + Duration::from_secs(1);
            if tokio::time::timeout(bound, task).await.is_err() {
                tracing::error!("write-behind: shutdown flush did not finish in time");
            }
            // What PostgreSQL did not take stays in the journal (if on).
            let _ = tokio::task::spawn_blocking(move || writebehind.stop_journal()).await;
        }
        let _ = tokio::task::spawn_blocking(move || expiry.join()).await;
        tracing::info!("server stopped");
        Ok(())
    }
}

/// A server serving in the background: its address, its store, and the way
/// to stop it.
pub struct RunningServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<io::Result<()>>,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(connection::serve(shared.clone(), stream, peer));
    }
}

/// Active expiry runs on its own thread so that a burst of due keys never
/// occupies a runtime worker that clients' connections are waiting on; it
/// takes one shard lock at a time, briefly.
fn spawn_active_expiry(shared: Arc<Shared>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("larder-expire".into())
        .spawn(move || {
            while !shared.is_stopping() {
                let reclaimed = shared.store.expire_cycle();
                shared
                    .stats
                    .expired_keys
                    .fetch_add(reclaimed as u64, Ordering::Relaxed);
                if reclaimed == 0 {
                    let hz = shared.config.read().hz.max(1);
                    std::thread::sleep(Duration::from_millis(1000 / hz));
                } else {
                    // More may be due: go on, but let clients' threads run.
                    std::thread::yield_now();
                }
            }
        })
}
