//! TLS, with rustls: the server context built from the `tls-*` settings,
//! the `tls-port` listeners, and their reconfiguration by CONFIG SET.
//!
//! The context is read once per accepted connection (a CONFIG SET swaps it
//! for the connections that come after); the handshake runs in the
//! connection's own task, bounded by [`HANDSHAKE_TIMEOUT`].

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::crypto::ring as provider;
use rustls::server::{StoresServerSessions, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{Config, TlsConfig};
use crate::shared::Shared;

/// Longest a client may take over its TLS handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Redis's CONFIG SET errors.
const CONTEXT_FAILED: &str = "Unable to update TLS configuration. Check server logs.";
const LISTEN_FAILED: &str = "Unable to listen on this port. Check server logs.";

/// The TLS side of a server: its context and its listeners.
pub(super) struct Tls {
    /// The context new connections get (`None` while `tls-port` is 0).
    context: Mutex<Option<Arc<ServerConfig>>>,
    /// Bound, not yet serving (between `bind` and `run`).
    unstarted: Mutex<Vec<TcpListener>>,
    /// The accept loops of the listeners serving now.
    accepting: Mutex<Vec<JoinHandle<()>>>,
}

impl Tls {
    /// Builds the context and binds `tls-port` on every `bind` address, if
    /// the port is set.
    pub(super) async fn bind(config: &Config, ips: &[IpAddr]) -> io::Result<Arc<Tls>> {
        let tls = Arc::new(Tls {
            context: Mutex::new(None),
            unstarted: Mutex::new(Vec::new()),
            accepting: Mutex::new(Vec::new()),
        });
        if config.tls.port == 0 {
            return Ok(tls);
        }
        let context = server_config(&config.tls)
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
        *tls.context.lock() = Some(context);
        let mut listeners = Vec::new();
        for &ip in ips {
            let address = SocketAddr::new(ip, config.tls.port);
            let listener = TcpListener::bind(address).await.map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("Could not create server TCP listening socket {address}: {error}"),
                )
            })?;
            listeners.push(listener);
        }
        *tls.unstarted.lock() = listeners;
        Ok(tls)
    }

    /// Starts serving the listeners `bind` opened, and lets CONFIG SET
    /// reconfigure TLS from now on.
    pub(super) fn start(self: &Arc<Self>, shared: &Arc<Shared>, ips: Vec<IpAddr>) {
        let listeners = std::mem::take(&mut *self.unstarted.lock());
        for listener in listeners {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "Ready to accept TLS connections");
            }
            let task = tokio::spawn(accept_loop(shared.clone(), self.clone(), listener));
            self.accepting.lock().push(task);
        }
        let tls = self.clone();
        let weak: Weak<Shared> = Arc::downgrade(shared);
        let reconfigure = move |old: &Config, new: &Config| {
            let shared = weak.upgrade().ok_or("server stopping")?;
            tls.reconfigure(&shared, &ips, old, new)
        };
        let _ = shared
            .tls_reconfigure
            .set(crate::shared::TlsReconfigure(Box::new(reconfigure)));
    }

    /// Closes the TLS listeners.
    pub(super) fn stop(&self) {
        for task in self.accepting.lock().drain(..) {
            task.abort();
        }
    }

    /// As Redis's applyTlsCfg and applyTLSPort: a new context (while the
    /// port is set), and the listeners moved if the port changed. Nothing
    /// changes if either fails.
    fn reconfigure(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        ips: &[IpAddr],
        old: &Config,
        new: &Config,
    ) -> Result<(), String> {
        let context = if new.tls.port != 0 {
            match server_config(&new.tls) {
                Ok(context) => Some(context),
                Err(reason) => {
                    tracing::warn!("Failed to configure TLS: {reason}");
                    return Err(CONTEXT_FAILED.into());
                }
            }
        } else {
            None
        };
        if new.tls.port != old.tls.port {
            let mut listeners = Vec::new();
            if new.tls.port != 0 {
                for &ip in ips {
                    match listen(SocketAddr::new(ip, new.tls.port)) {
                        Ok(listener) => listeners.push(listener),
                        Err(error) => {
                            tracing::warn!(
                                "Could not create server TCP listening socket {ip}:{}: {error}",
                                new.tls.port
                            );
                            return Err(LISTEN_FAILED.into());
                        }
                    }
                }
            }
            self.stop();
            *self.context.lock() = context;
            for listener in listeners {
                let task = tokio::spawn(accept_loop(shared.clone(), self.clone(), listener));
                self.accepting.lock().push(task);
            }
        } else {
            *self.context.lock() = context;
        }
        Ok(())
    }
}

/// A listener bound from synchronous code (CONFIG SET runs inside the
/// runtime, but not in an async context of its own).
fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

async fn accept_loop(shared: Arc<Shared>, tls: Arc<Tls>, listener: TcpListener) {
    let mut failures = super::AcceptFailures::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                failures.succeeded();
                // Once per connection: a CONFIG SET after this does not
                // change this handshake.
                let Some(context) = tls.context.lock().clone() else {
                    continue;
                };
                tokio::spawn(super::connection::serve_tls(
                    shared.clone(),
                    stream,
                    peer,
                    context,
                ));
            }
            Err(error) => {
                let pause = failures.failed(&error);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// The rustls server configuration the `tls-*` settings describe, or why
/// there is none (for the log).
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    if tls.cert_file.is_empty() {
        return Err("No tls-cert-file configured!".into());
    }
    if tls.key_file.is_empty() {
        return Err("No tls-key-file configured!".into());
    }
    if tls.ca_cert_file.is_empty() && tls.ca_cert_dir.is_empty() {
        return Err("Either tls-ca-cert-file or tls-ca-cert-dir must be specified".into());
    }
    let certs = read_certificates(&tls.cert_file)?;
    if certs.is_empty() {
        return Err(format!(
            "Failed to load certificate: {}: no certificate in it",
            tls.cert_file
        ));
    }
    let key = read_private_key(&tls.key_file, &tls.key_file_pass)?;
    let roots = trusted_roots(tls)?;

    // ring's own defaults (X25519, P-256, P-384): the post-quantum groups
    // the deprecation points to are aws-lc-rs's, which needs cmake.
    #[allow(deprecated)]
    let mut crypto = provider::default_provider();
    crypto.cipher_suites = cipher_suites(&tls.ciphersuites, &tls.ciphers)?;
    let crypto = Arc::new(crypto);
    let versions = protocol_versions(&tls.protocols)?;
    let verifier = match tls.auth_clients.as_str() {
        "no" => WebPkiClientVerifier::no_client_auth(),
        mode => {
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto.clone());
            let builder = if mode == "optional" {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder
                .build()
                .map_err(|error| format!("Failed to configure CA certificate(s): {error}"))?
        }
    };
    let mut config = ServerConfig::builder_with_provider(crypto)
        .with_protocol_versions(&versions)
        .map_err(|error| format!("Failed to configure TLS versions and ciphers: {error}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|error| format!("Failed to load certificate or private key: {error}"))?;
    config.ignore_client_order = tls.prefer_server_ciphers;
    if tls.session_caching {
        config.session_storage = Arc::new(SessionCache::new(
            tls.session_cache_size as usize,
            Duration::from_secs(tls.session_cache_timeout),
        ));
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("Failed to load certificate: {path}: {error}"))
}

/// The private key in `path`: PKCS#8 (also encrypted, with `password`),
/// PKCS#1 or SEC1.
fn read_private_key(path: &str, password: &str) -> Result<PrivateKeyDer<'static>, String> {
    let failed = |reason: String| format!("Failed to load private key: {path}: {reason}");
    let pem = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    if let Some(start) = pem.find(ENCRYPTED_BEGIN) {
        if password.is_empty() {
            return Err(failed(
                "the key is encrypted and tls-key-file-pass is not set".into(),
            ));
        }
        let end = pem[start..]
            .find(ENCRYPTED_END)
            .map(|at| start + at + ENCRYPTED_END.len())
            .ok_or_else(|| failed("unterminated ENCRYPTED PRIVATE KEY".into()))?;
        let (_, der) = pkcs8::der::pem::decode_vec(&pem.as_bytes()[start..end])
            .map_err(|e| failed(e.to_string()))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| failed(e.to_string()))?;
        let decrypted = encrypted
            .decrypt(password.as_bytes())
            .map_err(|e| failed(format!("cannot decrypt it with tls-key-file-pass: {e}")))?;
        return Ok(PrivatePkcs8KeyDer::from(decrypted.as_bytes().to_vec()).into());
    }
    if pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(failed(
            "keys encrypted in OpenSSL's traditional format are not supported; convert it to encrypted PKCS#8 (openssl pkcs8 -topk8)".into(),
        ));
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| failed(e.to_string()))
}

/// The CA certificates of `tls-ca-cert-file` and of every PEM file in
/// `tls-ca-cert-dir`.
fn trusted_roots(tls: &TlsConfig) -> Result<RootCertStore, String> {
    let mut certs = Vec::new();
    if !tls.ca_cert_file.is_empty() {
        certs.extend(read_certificates(&tls.ca_cert_file).map_err(|reason| {
            format!("Failed to configure CA certificate(s) file/directory: {reason}")
        })?);
    }
    if !tls.ca_cert_dir.is_empty() {
        let entries = std::fs::read_dir(&tls.ca_cert_dir).map_err(|error| {
            format!(
                "Failed to configure CA certificate(s) file/directory: {}: {error}",
                tls.ca_cert_dir
            )
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            // As OpenSSL's lookup in a directory: what is not a certificate
            // is not one of the CAs.
            if let Ok(found) = CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            {
                certs.extend(found);
            }
        }
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|error| format!("Failed to configure CA certificate(s): {error}"))?;
    }
    Ok(roots)
}

/// `tls-protocols`: the versions, as Redis names them.
fn protocol_versions(
    protocols: &str,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    if protocols.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut versions = Vec::new();
    for name in protocols.split_ascii_whitespace() {
        let version = if name.eq_ignore_ascii_case("TLSv1.2") {
            &rustls::version::TLS12
        } else if name.eq_ignore_ascii_case("TLSv1.3") {
            &rustls::version::TLS13
        } else if name.eq_ignore_ascii_case("TLSv1") || name.eq_ignore_ascii_case("TLSv1.1") {
            return Err(format!(
                "tls-protocols: {name} is not supported (rustls serves TLSv1.2 and TLSv1.3 only)"
            ));
        } else {
            return Err("Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'.".into());
        };
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    Ok(versions)
}

/// TLS 1.3 suites by their IANA names (`tls-ciphersuites`).
const TLS13_SUITES: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_AES_256_GCM_SHA384",
        provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// TLS 1.2 suites by their OpenSSL names (`tls-ciphers`).
const TLS12_SUITES: &[(&str, SupportedCipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        provider::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
];

/// OpenSSL cipher-list words that only exclude what rustls never offers:
/// accepted as no-ops, so common strings such as `HIGH:!aNULL:!MD5` work.
const EXCLUDED_ANYWAY: &[&str] = &[
    "aNULL", "eNULL", "NULL", "MD5", "RC4", "DES", "3DES", "EXPORT", "EXP", "LOW", "MEDIUM", "PSK",
    "SRP", "DSS", "CAMELLIA", "SEED", "IDEA", "kRSA", "SHA1", "CBC",
];

/// The suites of `tls-ciphersuites` (TLS 1.3) then `tls-ciphers` (TLS
/// 1.2), in the order given; empty settings stand for all rustls has.
fn cipher_suites(tls13: &str, tls12: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut suites = Vec::new();
    if tls13.trim().is_empty() {
        suites.extend(TLS13_SUITES.iter().map(|(_, suite)| *suite));
    } else {
        for name in tls13.split(':').map(str::trim).filter(|n| !n.is_empty()) {
            let (_, suite) = TLS13_SUITES
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!(
                        "Failed to configure ciphersuites: unknown or unsupported TLS 1.3 suite '{name}' (supported: {})",
                        names(TLS13_SUITES)
                    )
                })?;
            push_once(&mut suites, *suite);
        }
    }
    if tls12.trim().is_empty() {
        suites.extend(TLS12_SUITES.iter().map(|(_, suite)| *suite));
    } else {
        let words = tls12
            .split([':', ',', ' '])
            .map(str::trim)
            .filter(|w| !w.is_empty());
        for word in words {
            if ["DEFAULT", "HIGH", "ALL"]
                .iter()
                .any(|all| all.eq_ignore_ascii_case(word))
            {
                for (_, suite) in TLS12_SUITES {
                    push_once(&mut suites, *suite);
                }
                continue;
            }
            if let Some(excluded) = word.strip_prefix(['!', '-']) {
                if EXCLUDED_ANYWAY.contains(&excluded) {
                    continue;
                }
            }
            let (_, suite) = TLS12_SUITES
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(word))
                .ok_or_else(|| {
                    format!(
                        "Failed to configure ciphers: unknown or unsupported TLS 1.2 cipher '{word}' (supported: {}, DEFAULT, HIGH)",
                        names(TLS12_SUITES)
                    )
                })?;
            push_once(&mut suites, *suite);
        }
    }
    Ok(suites)
}

fn names(suites: &[(&str, SupportedCipherSuite)]) -> String {
    suites
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn push_once(suites: &mut Vec<SupportedCipherSuite>, suite: SupportedCipherSuite) {
    if !suites.iter().any(|s| s.suite() == suite.suite()) {
        suites.push(suite);
    }
}

/// The server's session cache (`tls-session-cache-size` sessions, 0: no
/// limit, as OpenSSL; each resumable for `tls-session-cache-timeout`).
/// Sessions are touched per handshake, never per command.
#[derive(Debug)]
struct SessionCache {
    limit: usize,
    timeout: Duration,
    sessions: Mutex<Sessions>,
}

#[derive(Debug, Default)]
struct Sessions {
    by_id: HashMap<Vec<u8>, (Instant, Vec<u8>)>,
    /// Ids oldest first, for eviction at the limit.
    order: VecDeque<Vec<u8>>,
}

impl SessionCache {
    fn new(limit: usize, timeout: Duration) -> Self {
        SessionCache {
            limit,
            timeout,
            sessions: Mutex::new(Sessions::default()),
        }
    }

    fn fresh(&self, stored: Instant) -> bool {
        stored.elapsed() < self.timeout
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, id: Vec<u8>, value: Vec<u8>) -> bool {
        if self.timeout.is_zero() {
            return false;
        }
        let mut sessions = self.sessions.lock();
        if sessions
            .by_id
            .insert(id.clone(), (Instant::now(), value))
            .is_none()
        {
            sessions.order.push_back(id);
        }
        while self.limit > 0 && sessions.by_id.len() > self.limit {
            let Some(oldest) = sessions.order.pop_front() else {
                break;
            };
            sessions.by_id.remove(&oldest);
        }
        // Expired entries go as new ones arrive.
        while let Some(oldest) = sessions.order.front() {
            match sessions.by_id.get(oldest) {
                Some((stored, _)) if self.fresh(*stored) => break,
                _ => {
                    let oldest = sessions.order.pop_front().unwrap_or_default();
                    sessions.by_id.remove(&oldest);
                }
            }
        }
        true
    }

    fn get(&self, id: &[u8]) -> Option<Vec<u8>> {
        let sessions = self.sessions.lock();
        let (stored, value) = sessions.by_id.get(id)?;
        self.fresh(*stored).then(|| value.clone())
    }

    fn take(&self, id: &[u8]) -> Option<Vec<u8>> {
        let mut sessions = self.sessions.lock();
        let (stored, value) = sessions.by_id.remove(id)?;
        sessions.order.retain(|kept| kept.as_slice() != id);
        self.fresh(stored).then_some(value)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_follow_redis_names() {
        assert_eq!(protocol_versions("").unwrap().len(), 2);
        assert_eq!(protocol_versions("TLSv1.3").unwrap().len(), 1);
        assert!(protocol_versions("TLSv1.1 TLSv1.2").is_err());
        assert!(protocol_versions("SSLv3").is_err());
    }

    #[test]
    fn cipher_names_map_to_rustls_suites() {
        assert_eq!(cipher_suites("", "").unwrap().len(), 9);
        let only = cipher_suites("TLS_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256").unwrap();
        assert_eq!(only.len(), 2);
        assert_eq!(
            cipher_suites("", "HIGH:!aNULL:!MD5").unwrap().len(),
            9,
            "HIGH with exclusions of what rustls lacks anyway"
        );
        assert!(cipher_suites("TLS_AES_128_CCM_SHA256", "").is_err());
        assert!(cipher_suites("", "AES128-SHA").is_err());
    }

    #[test]
    fn the_session_cache_keeps_its_limit_and_timeout() {
        let cache = SessionCache::new(2, Duration::from_secs(60));
        for id in 0u8..3 {
            assert!(cache.put(vec![id], vec![id]));
        }
        assert_eq!(cache.get(&[0]), None, "the oldest went at the limit");
        assert_eq!(cache.get(&[2]), Some(vec![2]));
        assert_eq!(cache.take(&[1]), Some(vec![1]));
        assert_eq!(cache.get(&[1]), None);
        let expired = SessionCache::new(0, Duration::from_millis(1));
        expired.put(vec![1], vec![1]);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(expired.get(&[1]), None);
    }
}
