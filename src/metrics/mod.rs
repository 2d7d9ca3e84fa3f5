//! The Prometheus endpoint (`metrics-port`, `metrics-bind`): `GET /metrics`
//! over HTTP/1.1 (hyper), in the text exposition format 0.0.4.
//!
//! A scrape runs `INFO everything` through the normal command path, as an
//! internal client that no CLIENT LIST shows, and turns its fields into
//! series (see [`exposition`]): it takes the locks INFO takes, no others,
//! and its figures are INFO's. Like redis_exporter's own INFO, the scrape
//! counts as one `info` command in the statistics.

pub mod exposition;

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::commands::Session;
use crate::config::Config;
use crate::protocol::ReplyBuf;
use crate::shared::{ClientHandle, Shared};

/// The text exposition format's content type.
pub const CONTENT_TYPE_0_0_4: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A client that sends no complete request head within this long is
/// dropped (a scraper sends its request at once).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the endpoint if `metrics-port` is set (`None`: off).
pub async fn bind(config: &Config) -> io::Result<Option<TcpListener>> {
    if config.metrics_port == 0 {
        return Ok(None);
    }
    let ip: IpAddr = config.metrics_bind.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid metrics-bind address '{}'", config.metrics_bind),
        )
    })?;
    let listener = TcpListener::bind(SocketAddr::new(ip, config.metrics_port))
        .await
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "metrics endpoint on {}:{}: {error}",
                    config.metrics_bind, config.metrics_port
                ),
            )
        })?;
    Ok(Some(listener))
}

/// Serves scrapes until the server shuts down: accepting stops, and open
/// connections are closed.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let mut shutdown = shared.shutdown_receiver();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|&stop| stop) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Typically out of descriptors: wait instead of spinning.
                tracing::warn!(%error, "metrics endpoint: accepting a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut shutdown = shared.shutdown_receiver();
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, &request)) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "metrics endpoint: connection ended");
                    }
                }
                _ = shutdown.wait_for(|&stop| stop) => {}
            }
        });
    }
}

/// `GET /metrics` (and HEAD) answers the scrape; other methods there get
/// 405, other paths 404.
fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from(scrape(shared))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_0_0_4));
    response
}

/// One scrape's text: `INFO everything` as an internal client, rendered.
pub fn scrape(shared: &Shared) -> String {
    // Id 0: never a registered client's (those start at 1).
    let mut session = Session::new(Arc::new(ClientHandle::new(0, None, None)));
    // The endpoint is the operator's own: requirepass guards the Redis
    // port, and metrics-bind decides who reaches this one.
    session.authenticated = true;
    let mut out = ReplyBuf::new();
    crate::commands::execute(shared, &mut session, &mut out, &[b"INFO", b"everything"]);
    let info = bulk_text(out.buffer());
    if info.is_none() {
        tracing::warn!(
            reply = %String::from_utf8_lossy(out.buffer()).trim_end(),
            "metrics endpoint: INFO failed"
        );
    }
    let databases = shared.config.read().databases;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    exposition::render(info.as_deref(), databases, now)
}

/// The text of a RESP2 bulk reply (`$<len>\r\n<text>\r\n`); `None` for
/// anything else (an error).
fn bulk_text(reply: &[u8]) -> Option<String> {
    let rest = reply.strip_prefix(b"$")?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let len: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    let body = rest.get(end + 2..end + 2 + len)?;
    Some(String::from_utf8_lossy(body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_text_reads_a_bulk_reply_only() {
        assert_eq!(
            bulk_text(b"$9\r\n# Server\n\r\n").as_deref(),
            Some("# Server\n")
        );
        assert_eq!(bulk_text(b"-ERR no\r\n"), None);
        assert_eq!(bulk_text(b"$10\r\nshort\r\n"), None);
    }

    #[test]
    fn a_scrape_reports_what_info_reports() {
        let shared = Shared::new(Config::default());
        shared.store.set(0, b"a", b"1").unwrap();
        shared.store.set(3, b"b", b"2").unwrap();
        let text = scrape(&shared);
        assert!(text.contains("\nredis_up 1\n"), "{text}");
        assert!(text.contains("\nredis_db_keys{db=\"db0\"} 1\n"), "{text}");
        assert!(text.contains("\nredis_db_keys{db=\"db3\"} 1\n"), "{text}");
        assert!(text.contains("\nredis_db_keys{db=\"db1\"} 0\n"), "{text}");
        assert!(text.contains("\nlarder_shard_lock_waits_total "), "{text}");
        // The internal client is no connected client.
        assert!(text.contains("\nredis_connected_clients 0\n"), "{text}");
    }

    #[test]
    fn a_scrape_passes_requirepass() {
        let mut config = Config::default();
        config.set("requirepass", "secret").unwrap();
        let shared = Shared::new(config);
        assert!(scrape(&shared).contains("\nredis_up 1\n"));
    }
}
