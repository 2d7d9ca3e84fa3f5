//! TLS (`tls-port` and the `tls-*` settings) through real clients:
//! redis-cli, redis-py, redis-benchmark and openssl s_client, with a CA,
//! server and client certificates made by the openssl CLI at test time.
//! Needs `openssl`, `redis-cli`, `redis-benchmark`, `redis-server` (built
//! with TLS) and python3 with the `redis` package.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, TestServer};

/// A CA, a server certificate (localhost, 127.0.0.1) and a client one, in
/// a directory of their own.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "larder-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let certs = Certs { dir };
        certs.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=Larder Test CA",
        ]);
        certs.issue("server", "localhost", 1001);
        certs.issue("client", "client", 1002);
        certs
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl must be installed");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `name`.crt and `name`.key, signed by the CA, with this serial.
    fn issue(&self, name: &str, cn: &str, serial: u32) {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ]);
        std::fs::write(
            self.dir.join(&ext),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &serial.to_string(),
            "-days",
            "2",
            "-out",
            &crt,
            "-extfile",
            &ext,
        ]);
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Larder serving plaintext on its port and TLS on `tls_port`.
fn tls_server(certs: &Certs, adjust: impl FnOnce(&mut larder::Config)) -> (TestServer, u16) {
    let tls_port = free_port();
    let server = TestServer::with_config(|config| {
        config.tls.port = tls_port;
        config.tls.cert_file = certs.path("server.crt");
        config.tls.key_file = certs.path("server.key");
        config.tls.ca_cert_file = certs.path("ca.crt");
        adjust(config);
    });
    (server, tls_port)
}

/// redis-cli over TLS; `with_cert`: presenting the client certificate.
fn tls_cli(certs: &Certs, port: u16, with_cert: bool, args: &[&str]) -> Output {
    let mut command = Command::new("timeout");
    command.args(["10", "redis-cli", "-p", &port.to_string(), "--tls"]);
    command.args(["--cacert", &certs.path("ca.crt")]);
    if with_cert {
        command.args(["--cert", &certs.path("client.crt")]);
        command.args(["--key", &certs.path("client.key")]);
    }
    command
        .args(args)
        .output()
        .expect("redis-cli must be installed")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The serial of the certificate the server on `port` presents to a new
/// connection (openssl s_client, with the client certificate).
fn served_serial(certs: &Certs, port: u16) -> String {
    let mut client = Command::new("timeout")
        .args([
            "10",
            "openssl",
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-CAfile", &certs.path("ca.crt")])
        .args([
            "-cert",
            &certs.path("client.crt"),
            "-key",
            &certs.path("client.key"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut presented = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut presented)
        .unwrap();
    let _ = client.wait();
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    x509.stdin
        .take()
        .unwrap()
        .write_all(presented.as_bytes())
        .unwrap();
    stdout(&x509.wait_with_output().unwrap())
}

#[test]
fn redis_cli_over_tls_beside_the_plaintext_port() {
    let certs = Certs::new();
    let (server, tls_port) = tls_server(&certs, |_| {});
    let set = tls_cli(&certs, tls_port, true, &["SET", "greeting", "over tls"]);
    assert_eq!(stdout(&set), "OK", "{set:?}");
    // The plaintext port serves the same data, at the same time.
    let mut plain = server.raw();
    assert_eq!(
        plain.command(&["GET", "greeting"]),
        b"$8\r\nover tls\r\n".to_vec()
    );
    let got = tls_cli(&certs, tls_port, true, &["GET", "greeting"]);
    assert_eq!(stdout(&got), "over tls");
    // CLIENT LIST and INFO work for a TLS client; its local address is
    // the TLS port.
    let list = tls_cli(&certs, tls_port, true, &["CLIENT", "LIST"]);
    assert!(
        stdout(&list).contains(&format!("laddr=127.0.0.1:{tls_port}")),
        "{}",
        stdout(&list)
    );
    let info = tls_cli(&certs, tls_port, true, &["INFO", "clients"]);
    assert!(
        stdout(&info).contains("connected_clients:2"),
        "{}",
        stdout(&info)
    );
    // Plaintext on the TLS port gets no reply and is closed.
    let mut stream = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 64];
    let read = stream.read(&mut reply).unwrap_or(0);
    assert!(
        !reply[..read].starts_with(b"+PONG"),
        "plaintext must not be served on the TLS port"
    );
}

#[test]
fn auth_clients_yes_needs_a_client_certificate_optional_does_not() {
    let certs = Certs::new();
    let (server, tls_port) = tls_server(&certs, |_| {});
    let with_cert = tls_cli(&certs, tls_port, true, &["PING"]);
    assert_eq!(stdout(&with_cert), "PONG");
    let without = tls_cli(&certs, tls_port, false, &["PING"]);
    assert_ne!(
        stdout(&without),
        "PONG",
        "tls-auth-clients yes (the default)"
    );
    // A certificate from another CA is refused too.
    let stranger = Certs::new();
    let mut command = Command::new("timeout");
    let foreign = command
        .args(["10", "redis-cli", "-p", &tls_port.to_string(), "--tls"])
        .args(["--cacert", &certs.path("ca.crt")])
        .args(["--cert", &stranger.path("client.crt")])
        .args(["--key", &stranger.path("client.key"), "PING"])
        .output()
        .unwrap();
    assert_ne!(stdout(&foreign), "PONG");

    let mut plain = server.raw();
    assert_eq!(
        plain.command(&["CONFIG", "SET", "tls-auth-clients", "optional"]),
        b"+OK\r\n".to_vec()
    );
    let without = tls_cli(&certs, tls_port, false, &["PING"]);
    assert_eq!(stdout(&without), "PONG", "optional: {without:?}");
    let foreign = Command::new("timeout")
        .args(["10", "redis-cli", "-p", &tls_port.to_string(), "--tls"])
        .args(["--cacert", &certs.path("ca.crt")])
        .args(["--cert", &stranger.path("client.crt")])
        .args(["--key", &stranger.path("client.key"), "PING"])
        .output()
        .unwrap();
    assert_ne!(
        stdout(&foreign),
        "PONG",
        "optional still checks a certificate presented"
    );
    assert_eq!(
        plain.command(&["CONFIG", "SET", "tls-auth-clients", "no"]),
        b"+OK\r\n".to_vec()
    );
    assert_eq!(stdout(&tls_cli(&certs, tls_port, false, &["PING"])), "PONG");
}

#[test]
fn config_set_reloads_the_certificate_for_new_connections() {
    let certs = Certs::new();
    let (server, tls_port) = tls_server(&certs, |_| {});
    assert_eq!(served_serial(&certs, tls_port), "serial=03E9"); // 1001
    certs.issue("renewed", "localhost", 2002);
    let mut plain = server.raw();
    // A file that cannot be read changes nothing, with Redis's error.
    let refused = plain.command(&["CONFIG", "SET", "tls-cert-file", "/nonexistent/x.crt"]);
    assert_eq!(
        String::from_utf8_lossy(&refused),
        "-ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs.\r\n"
    );
    let kept = plain.command(&["CONFIG", "GET", "tls-cert-file"]);
    assert!(String::from_utf8_lossy(&kept).contains(&certs.path("server.crt")));
    assert_eq!(served_serial(&certs, tls_port), "serial=03E9");
    let renewed = plain.command(&[
        "CONFIG",
        "SET",
        "tls-cert-file",
        &certs.path("renewed.crt"),
        "tls-key-file",
        &certs.path("renewed.key"),
    ]);
    assert_eq!(renewed, b"+OK\r\n".to_vec());
    assert_eq!(served_serial(&certs, tls_port), "serial=07D2"); // 2002
    assert_eq!(stdout(&tls_cli(&certs, tls_port, true, &["PING"])), "PONG");
    // tls-protocols TLSv1.3 only: a TLS 1.2 client is turned away.
    let tls12 = |certs: &Certs| {
        Command::new("timeout")
            .args(["10", "openssl", "s_client", "-tls1_2", "-connect"])
            .arg(format!("127.0.0.1:{tls_port}"))
            .args(["-CAfile", &certs.path("ca.crt")])
            .args([
                "-cert",
                &certs.path("client.crt"),
                "-key",
                &certs.path("client.key"),
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert!(stdout(&tls12(&certs)).contains("New, TLSv1.2, Cipher is ECDHE"));
    assert_eq!(
        plain.command(&["CONFIG", "SET", "tls-protocols", "TLSv1.3"]),
        b"+OK\r\n".to_vec()
    );
    assert!(!stdout(&tls12(&certs)).contains("New, TLSv1.2, Cipher is ECDHE"));
    assert!(plain
        .command(&["CONFIG", "SET", "tls-protocols", "SSLv3"])
        .starts_with(b"-ERR CONFIG SET failed"));
}

#[test]
fn config_set_tls_port_moves_the_listener() {
    let certs = Certs::new();
    let (server, tls_port) = tls_server(&certs, |_| {});
    let moved_to = free_port();
    let mut plain = server.raw();
    assert_eq!(
        plain.command(&["CONFIG", "SET", "tls-port", &moved_to.to_string()]),
        b"+OK\r\n".to_vec()
    );
    assert_eq!(stdout(&tls_cli(&certs, moved_to, true, &["PING"])), "PONG");
    assert_ne!(stdout(&tls_cli(&certs, tls_port, true, &["PING"])), "PONG");
    assert_eq!(
        plain.command(&["CONFIG", "SET", "tls-port", "0"]),
        b"+OK\r\n".to_vec()
    );
    assert_ne!(stdout(&tls_cli(&certs, moved_to, true, &["PING"])), "PONG");
    // A server without TLS gets it by CONFIG SET.
    let other = TestServer::start();
    let port = free_port();
    let mut plain = other.raw();
    for (name, file) in [
        ("tls-cert-file", "server.crt"),
        ("tls-key-file", "server.key"),
        ("tls-ca-cert-file", "ca.crt"),
    ] {
        assert_eq!(
            plain.command(&["CONFIG", "SET", name, &certs.path(file)]),
            b"+OK\r\n".to_vec()
        );
    }
    assert_eq!(
        plain.command(&["CONFIG", "SET", "tls-port", &port.to_string()]),
        b"+OK\r\n".to_vec()
    );
    assert_eq!(stdout(&tls_cli(&certs, port, true, &["PING"])), "PONG");
}

#[test]
fn a_stalled_or_garbage_client_does_not_hold_up_others() {
    let certs = Certs::new();
    let (_server, tls_port) = tls_server(&certs, |_| {});
    // One connects and says nothing (its handshake never starts), another
    // sends garbage.
    let _silent = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    let mut garbage = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .unwrap();
    garbage.write_all(&[0u8; 4096]).unwrap();
    let started = Instant::now();
    assert_eq!(stdout(&tls_cli(&certs, tls_port, true, &["PING"])), "PONG");
    assert!(started.elapsed() < Duration::from_secs(5));
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    // Closed by the server (after an alert at most, or reset since it
    // left the garbage unread), not left hanging.
    match garbage.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

#[test]
fn redis_py_with_ssl() {
    let certs = Certs::new();
    let (_server, tls_port) = tls_server(&certs, |_| {});
    let script = r#"
import sys, redis
port, ca, cert, key = sys.argv[1:5]
r = redis.Redis(host="localhost", port=int(port), ssl=True, ssl_ca_certs=ca,
                ssl_certfile=cert, ssl_keyfile=key, ssl_cert_reqs="required")
assert r.set("py", "ok")
assert r.get("py") == b"ok"
pipe = r.pipeline(transaction=False)
for i in range(500):
    pipe.set(f"k{i}", "x" * 1000)
assert all(pipe.execute())
big = "y" * 300000
r.set("big", big)
assert r.get("big") == big.encode()
# Replies far past the socket's and rustls's buffers: written out in parts.
pipe = r.pipeline(transaction=False)
for _ in range(40):
    pipe.get("big")
assert all(v == big.encode() for v in pipe.execute())
assert r.dbsize() == 502
print("ok")
"#;
    let output = Command::new("timeout")
        .args(["30", "python3", "-c", script, &tls_port.to_string()])
        .args([
            certs.path("ca.crt"),
            certs.path("client.crt"),
            certs.path("client.key"),
        ])
        .output()
        .expect("python3 with the redis package");
    assert_eq!(
        stdout(&output),
        "ok",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn redis_benchmark_over_tls() {
    let certs = Certs::new();
    let (server, tls_port) = tls_server(&certs, |_| {});
    let output = Command::new("timeout")
        .args(["60", "redis-benchmark", "--tls"])
        .args(["--cacert", &certs.path("ca.crt")])
        .args(["--cert", &certs.path("client.crt")])
        .args(["--key", &certs.path("client.key")])
        .args(["-p", &tls_port.to_string(), "-t", "set,get", "-n", "5000"])
        .args(["-c", "10", "-P", "8", "-d", "64", "-r", "1000", "-q"])
        .output()
        .expect("redis-benchmark");
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(!text.to_lowercase().contains("error"), "{text}");
    assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
    let mut plain = server.raw();
    let size = String::from_utf8(plain.command(&["DBSIZE"])).unwrap();
    let size: u64 = size.trim_start_matches(':').trim().parse().unwrap();
    assert!(size > 100, "{size} keys");
}

#[test]
fn an_encrypted_pkcs8_key_with_its_password() {
    let certs = Certs::new();
    certs.openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        "server.key",
        "-out",
        "server.enc.key",
        "-passout",
        "pass:s3cret",
    ]);
    let refused = larder::Config {
        tls: larder::config::TlsConfig {
            port: free_port(),
            cert_file: certs.path("server.crt"),
            key_file: certs.path("server.enc.key"),
            ca_cert_file: certs.path("ca.crt"),
            key_file_pass: "wrong".into(),
            auth_clients: "yes".into(),
            ..Default::default()
        },
        port: 0,
        ..larder::Config::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime
        .block_on(larder::Server::bind(refused))
        .err()
        .expect("a wrong password must stop the start");
    assert!(error.to_string().contains("tls-key-file-pass"), "{error}");
    let (_server, tls_port) = tls_server(&certs, |config| {
        config.tls.key_file = certs.path("server.enc.key");
        config.tls.key_file_pass = "s3cret".into();
    });
    assert_eq!(stdout(&tls_cli(&certs, tls_port, true, &["PING"])), "PONG");
}

/// CONFIG GET tls-* as redis-server 7 shows it, started with the same
/// files and settings.
#[test]
fn config_get_tls_matches_redis() {
    let certs = Certs::new();
    let settings: Vec<(&str, String)> = vec![
        ("tls-cert-file", certs.path("server.crt")),
        ("tls-key-file", certs.path("server.key")),
        ("tls-ca-cert-file", certs.path("ca.crt")),
        ("tls-ca-cert-dir", certs.dir.display().to_string()),
        ("tls-auth-clients", "optional".into()),
        ("tls-protocols", "TLSv1.2 TLSv1.3".into()),
        ("tls-ciphersuites", "TLS_AES_128_GCM_SHA256".into()),
        ("tls-prefer-server-ciphers", "yes".into()),
        ("tls-session-cache-size", "100".into()),
    ];
    let redis_port = free_port();
    let redis_tls_port = free_port();
    let mut args = vec![
        "--port".to_string(),
        redis_port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--tls-port".into(),
        redis_tls_port.to_string(),
    ];
    for (name, value) in &settings {
        args.push(format!("--{name}"));
        args.push(value.clone());
    }
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _redis = Kill(
        Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    let (server, tls_port) = tls_server(&certs, |config| {
        for (name, value) in &settings {
            config.set(name, value).unwrap();
        }
    });
    let config_get = |port: u16| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let output = Command::new("timeout")
                .args(["10", "redis-cli", "-p", &port.to_string()])
                .args(["CONFIG", "GET", "tls-*"])
                .output()
                .unwrap();
            let text = stdout(&output);
            if !text.is_empty() && !text.contains("Connection refused") {
                let lines: Vec<String> = text.lines().map(str::to_string).collect();
                let mut pairs: Vec<(String, String)> = lines
                    .chunks(2)
                    .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default()))
                    .collect();
                pairs.sort();
                return pairs;
            }
            assert!(Instant::now() < deadline, "port {port}: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let ours = config_get(server.addr.port());
    let theirs = config_get(redis_port);
    let mut ours_with_port = ours.clone();
    // The ports differ by construction.
    for (name, value) in ours_with_port.iter_mut() {
        if name == "tls-port" {
            assert_eq!(*value, tls_port.to_string());
            *value = redis_tls_port.to_string();
        }
    }
    assert_eq!(ours_with_port, theirs);
    // Both serve TLS with these settings.
    assert_eq!(
        stdout(&tls_cli(&certs, redis_tls_port, true, &["PING"])),
        "PONG"
    );
    assert_eq!(stdout(&tls_cli(&certs, tls_port, false, &["PING"])), "PONG");
}

#[test]
fn a_start_with_a_bad_tls_configuration_fails_with_the_reason() {
    let certs = Certs::new();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = larder::Config {
        port: 0,
        ..larder::Config::default()
    };
    config.tls.port = free_port();
    config.tls.cert_file = certs.path("server.crt");
    config.tls.key_file = certs.path("server.key");
    let error = runtime
        .block_on(larder::Server::bind(config.clone()))
        .err()
        .expect("no CA: refused, as Redis");
    assert!(
        error
            .to_string()
            .contains("Either tls-ca-cert-file or tls-ca-cert-dir must be specified"),
        "{error}"
    );
    config.tls.ca_cert_file = certs.path("ca.crt");
    config.tls.ciphers = "RC4-MD5".into();
    let error = runtime
        .block_on(larder::Server::bind(config))
        .err()
        .expect("an unknown cipher: refused");
    assert!(error.to_string().contains("RC4-MD5"), "{error}");
}

/// Whether a second TLS 1.2 connection resumes the first one's session
/// (openssl s_client -sess_out, then -sess_in).
fn resumes_session(certs: &Certs, port: u16) -> bool {
    let session = certs.path("session.pem");
    let _ = std::fs::remove_file(&session);
    let connect = |flag: &str| {
        let output = Command::new("timeout")
            .args(["10", "openssl", "s_client", "-tls1_2", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-CAfile", &certs.path("ca.crt")])
            .args([
                "-cert",
                &certs.path("client.crt"),
                "-key",
                &certs.path("client.key"),
            ])
            .args([flag, &session])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        stdout(&output)
    };
    let first = connect("-sess_out");
    assert!(first.contains("New, TLSv1.2"), "{first}");
    connect("-sess_in").contains("Reused, TLSv1.2")
}

#[test]
fn sessions_resume_while_tls_session_caching_is_on() {
    let certs = Certs::new();
    let (server, tls_port) = tls_server(&certs, |_| {});
    assert!(resumes_session(&certs, tls_port), "tls-session-caching yes");
    let mut plain = server.raw();
    assert_eq!(
        plain.command(&["CONFIG", "SET", "tls-session-caching", "no"]),
        b"+OK\r\n".to_vec()
    );
    assert!(!resumes_session(&certs, tls_port), "tls-session-caching no");
    assert_eq!(
        plain.command(&[
            "CONFIG",
            "SET",
            "tls-session-caching",
            "yes",
            "tls-session-cache-timeout",
            "0"
        ]),
        b"+OK\r\n".to_vec()
    );
    assert!(!resumes_session(&certs, tls_port), "a timeout of 0");
}

#[test]
fn ciphersuites_and_the_servers_preference() {
    let certs = Certs::new();
    let (server, tls_port) = tls_server(&certs, |config| {
        config.tls.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384".into();
    });
    // The client prefers AES-256, then ChaCha20.
    let negotiated = || {
        let output = Command::new("timeout")
            .args(["10", "openssl", "s_client", "-tls1_3", "-connect"])
            .arg(format!("127.0.0.1:{tls_port}"))
            .args(["-CAfile", &certs.path("ca.crt")])
            .args([
                "-cert",
                &certs.path("client.crt"),
                "-key",
                &certs.path("client.key"),
            ])
            .args([
                "-ciphersuites",
                "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = stdout(&output);
        // "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
        text.lines()
            .find_map(|line| line.trim().strip_prefix("New, TLSv1.3, Cipher is "))
            .unwrap_or("none")
            .to_string()
    };
    assert_eq!(negotiated(), "TLS_AES_256_GCM_SHA384", "the client's order");
    let mut plain = server.raw();
    assert_eq!(
        plain.command(&["CONFIG", "SET", "tls-prefer-server-ciphers", "yes"]),
        b"+OK\r\n".to_vec()
    );
    assert_eq!(
        negotiated(),
        "TLS_CHACHA20_POLY1305_SHA256",
        "the server's order"
    );
    assert_eq!(
        plain.command(&[
            "CONFIG",
            "SET",
            "tls-ciphersuites",
            "TLS_AES_128_GCM_SHA256"
        ]),
        b"+OK\r\n".to_vec()
    );
    assert_eq!(negotiated(), "TLS_AES_128_GCM_SHA256");
    let refused = plain.command(&[
        "CONFIG",
        "SET",
        "tls-ciphersuites",
        "TLS_AES_128_CCM_SHA256",
    ]);
    assert!(refused.starts_with(b"-ERR CONFIG SET failed"));
}
