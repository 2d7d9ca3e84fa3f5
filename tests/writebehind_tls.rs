//! Write-behind over TLS to a real PostgreSQL (ssl=on, a certificate made
//! by the openssl CLI for `localhost` only): `sslmode` and `sslrootcert`
//! in `write-behind-url`, as libpq.

mod common;

use std::path::Path;
use std::process::Command;

use common::postgres::Postgres;
use common::writebehind::{flush, status_text};
use common::TestServer;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`name`.ca.crt) and, if `server`, a server certificate signed by
/// it for the DNS name localhost only (not for 127.0.0.1).
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.ca.key"),
            "-out",
            &format!("{name}.ca.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} CA"),
        ],
    );
}

/// PostgreSQL with ssl on, its certificate signed by the `pg` CA.
fn postgres_with_ssl() -> (Postgres, std::path::PathBuf) {
    let pg = Postgres::start();
    let dir = pg.dir().join("ssl");
    std::fs::create_dir_all(&dir).unwrap();
    make_ca(&dir, "pg");
    make_ca(&dir, "stranger");
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "pg.ca.crt",
            "-CAkey",
            "pg.ca.key",
            "-set_serial",
            "7",
            "-days",
            "2",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ],
    );
    // PostgreSQL wants its key private to its own user.
    let _ = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&dir)
        .status();
    let _ = Command::new("chmod")
        .arg("600")
        .arg(dir.join("server.key"))
        .status();
    // One statement each: ALTER SYSTEM refuses to run in a transaction.
    pg.execute(&format!(
        "ALTER SYSTEM SET ssl_cert_file = '{}'",
        dir.join("server.crt").display()
    ));
    pg.execute(&format!(
        "ALTER SYSTEM SET ssl_key_file = '{}'",
        dir.join("server.key").display()
    ));
    pg.execute("ALTER SYSTEM SET ssl = on");
    pg.execute("SELECT pg_reload_conf()");
    // The reload is asynchronous: wait until TLS is offered.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pg.query("SHOW ssl", |row| row.get::<_, String>(0)) != ["on"] {
        assert!(std::time::Instant::now() < deadline, "ssl did not come on");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (pg, dir)
}

fn larder(url: String) -> TestServer {
    TestServer::with_config(|config| {
        config.write_behind_url = url;
        config.write_behind_delay = 20;
    })
}

/// Whether the write-behind connections of Larder use TLS, per
/// PostgreSQL.
fn larder_connections_encrypted(pg: &Postgres, application: &str) -> Vec<bool> {
    pg.query(
        &format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = '{application}'"
        ),
        |row| row.get::<_, bool>(0),
    )
}

#[test]
fn verify_full_writes_behind_over_tls_and_checks_the_certificate() {
    let (pg, dir) = postgres_with_ssl();
    let ca = dir.join("pg.ca.crt").display().to_string();
    let url = |host: &str, mode: &str, ca: &str| {
        format!(
            "host={host} port={} user=postgres dbname=postgres connect_timeout=2 sslmode={mode} sslrootcert={ca} application_name=larder-{mode}",
            pg.port
        )
    };

    let server = larder(url("localhost", "verify-full", &ca));
    let mut con = server.client();
    let _: () = redis::cmd("SET")
        .arg("tls:k")
        .arg("v")
        .query(&mut con)
        .unwrap();
    flush(&mut con);
    let rows = pg.query(
        "SELECT convert_from(value, 'UTF8') FROM larder_kv WHERE key = 'tls:k'",
        |row| row.get::<_, String>(0),
    );
    assert_eq!(rows, ["v"]);
    let encrypted = larder_connections_encrypted(&pg, "larder-verify-full");
    assert!(
        !encrypted.is_empty() && encrypted.iter().all(|&ssl| ssl),
        "{encrypted:?}"
    );
    drop(con);
    drop(server);

    // The certificate names localhost, not 127.0.0.1: verify-full refuses
    // it there, verify-ca (the chain only) takes it.
    let refused = larder(url("127.0.0.1", "verify-full", &ca));
    let mut con = refused.client();
    let _: () = redis::cmd("SET")
        .arg("tls:n")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let flushed: redis::RedisResult<String> = redis::cmd("WRITEBEHIND")
        .arg("FLUSH")
        .arg(1500)
        .query(&mut con);
    assert!(flushed.is_err(), "{flushed:?}");
    let error = status_text(&mut con, "last_error");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    drop(con);
    drop(refused);

    let chain_only = larder(url("127.0.0.1", "verify-ca", &ca));
    let mut con = chain_only.client();
    let _: () = redis::cmd("SET")
        .arg("tls:ca")
        .arg("v")
        .query(&mut con)
        .unwrap();
    flush(&mut con);
    drop(con);
    drop(chain_only);

    // Another CA: refused by verify-ca too.
    let stranger = dir.join("stranger.ca.crt").display().to_string();
    let untrusted = larder(url("localhost", "verify-ca", &stranger));
    let mut con = untrusted.client();
    let _: () = redis::cmd("SET")
        .arg("tls:x")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let flushed: redis::RedisResult<String> = redis::cmd("WRITEBEHIND")
        .arg("FLUSH")
        .arg(1500)
        .query(&mut con);
    assert!(flushed.is_err(), "{flushed:?}");
    let error = status_text(&mut con, "last_error");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    drop(con);
    drop(untrusted);

    // require without a root certificate: encrypted, not checked.
    let required = larder(format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=require&connect_timeout=2&application_name=larder-require",
        pg.port
    ));
    let mut con = required.client();
    let _: () = redis::cmd("SET")
        .arg("tls:r")
        .arg("v")
        .query(&mut con)
        .unwrap();
    flush(&mut con);
    let encrypted = larder_connections_encrypted(&pg, "larder-require");
    assert!(
        !encrypted.is_empty() && encrypted.iter().all(|&ssl| ssl),
        "{encrypted:?}"
    );
    drop(con);
    drop(required);

    // disable: plain.
    let plain = larder(format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable application_name=larder-plain",
        pg.port
    ));
    let mut con = plain.client();
    let _: () = redis::cmd("SET")
        .arg("tls:p")
        .arg("v")
        .query(&mut con)
        .unwrap();
    flush(&mut con);
    let encrypted = larder_connections_encrypted(&pg, "larder-plain");
    assert!(
        !encrypted.is_empty() && encrypted.iter().all(|&ssl| !ssl),
        "{encrypted:?}"
    );
    let keys = pg.query(
        "SELECT convert_from(key, 'UTF8') FROM larder_kv ORDER BY 1",
        |row| row.get::<_, String>(0),
    );
    assert_eq!(keys, ["tls:ca", "tls:k", "tls:p", "tls:r"]);
}
