//! Fault injection for write-behind: PostgreSQL unreachable (stopped: a
//! closed port), slow (a proxy that delays every chunk) and refusing (a
//! proxy that accepts and closes at once; a revoked privilege on the
//! table), each in the middle of a stream
//! of writes, deletes and read-through misses. Each time two rules are
//! checked: nothing acknowledged is lost (once PostgreSQL is healthy again,
//! the table holds exactly what the acknowledged commands left), and no
//! request hangs (a concurrent PING's worst latency stays under 1 s, and
//! every command of the stream gets its reply within a bound).

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::writebehind::{flush, status_int, status_text};
use common::TestServer;

/// The worst a concurrent PING may take.
const PING_BOUND: Duration = Duration::from_secs(1);
/// The worst any command of the stream may take (a read-through miss waits
/// for its 200 ms budget at most).
const REPLY_BOUND: Duration = Duration::from_secs(2);

/// What the proxy does with PostgreSQL's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Forwards as it comes.
    Forward = 0,
    /// Forwards each chunk 300 ms late, both ways.
    Slow = 1,
    /// Accepts and closes at once; cuts the connections it holds.
    Refuse = 2,
}

/// A TCP proxy in front of PostgreSQL, on std threads, whose behaviour the
/// test switches at run time.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

fn mode_of(mode: &AtomicU8) -> Mode {
    match mode.load(Ordering::SeqCst) {
        1 => Mode::Slow,
        2 => Mode::Refuse,
        _ => Mode::Forward,
    }
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        listener.set_nonblocking(true).expect("nonblocking accept");
        let mode = Arc::new(AtomicU8::new(Mode::Forward as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let mode = mode.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let client = match listener.accept() {
                        Ok((client, _)) => client,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(_) => continue,
                    };
                    if mode_of(&mode) == Mode::Refuse {
                        drop(client);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        continue;
                    };
                    for (from, to) in [(&client, &server), (&server, &client)] {
                        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                            continue;
                        };
                        let mode = mode.clone();
                        let stop = stop.clone();
                        std::thread::spawn(move || pump(from, to, &mode, &stop));
                    }
                }
            })
        };
        Proxy {
            port,
            mode,
            stop,
            acceptor: Some(acceptor),
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=2",
            self.port
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Copies `from` to `to` chunk by chunk, as the mode says, until either
/// side closes, the mode turns to refusing, or the proxy stops.
fn pump(mut from: TcpStream, mut to: TcpStream, mode: &AtomicU8, stop: &AtomicBool) {
    let _ = from.set_nonblocking(false);
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if stop.load(Ordering::SeqCst) || mode_of(mode) == Mode::Refuse {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        if mode_of(mode) == Mode::Slow {
            std::thread::sleep(Duration::from_millis(300));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// A client that PINGs every 10 ms until stopped; returns its worst
/// latency.
fn pinger(server: &TestServer, stop: Arc<AtomicBool>) -> JoinHandle<Duration> {
    let mut con = server.client();
    std::thread::spawn(move || {
        con.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut worst = Duration::ZERO;
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let pong: String = redis::cmd("PING").query(&mut con).expect("PING");
            assert_eq!(pong, "PONG");
            worst = worst.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(10));
        }
        worst
    })
}

/// What the acknowledged commands left: key to value, `None` if deleted.
type Expected = BTreeMap<String, Option<String>>;

/// Writes, overwrites, deletes and read-through misses until stopped;
/// returns what was acknowledged and the worst reply time. A command that
/// gets no reply within [`REPLY_BOUND`] fails the test.
fn writer(server: &TestServer, stop: Arc<AtomicBool>) -> JoinHandle<(Expected, Duration)> {
    let mut con = server.client();
    std::thread::spawn(move || {
        con.set_read_timeout(Some(REPLY_BOUND))
            .expect("read timeout");
        let mut expected = Expected::new();
        let mut worst = Duration::ZERO;
        let mut i = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let key = format!("wb:{}", i % 60);
            let started = Instant::now();
            if i % 7 == 3 {
                let _: i64 = redis::cmd("DEL").arg(&key).query(&mut con).expect("DEL");
                expected.insert(key, None);
            } else if i % 5 == 1 {
                let missing: Option<String> = redis::cmd("GET")
                    .arg(format!("absent:{i}"))
                    .query(&mut con)
                    .expect("GET");
                assert_eq!(missing, None);
            } else {
                let value = format!("value {i} of {key}");
                let () = redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .query(&mut con)
                    .expect("SET");
                expected.insert(key, Some(value));
            }
            worst = worst.max(started.elapsed());
            i += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        (expected, worst)
    })
}

/// Runs the stream of commands around `fault` (which injects the fault
/// and heals it), then checks both rules.
fn around_fault(pg: &Postgres, url: String, fault: impl FnOnce(&mut redis::Connection)) {
    let server = TestServer::with_config(|config| {
        config.write_behind_url = url;
        config.write_behind_delay = 20;
        config.write_behind_batch_size = 50;
        config.write_behind_circuit_cooldown = 300;
        config.write_behind_read_through = true;
    });
    let mut con = server.client();
    let stop = Arc::new(AtomicBool::new(false));
    let ping = pinger(&server, stop.clone());
    let writes = writer(&server, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    fault(&mut con);
    // Writes go on a little after the fault healed.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let worst_ping = ping.join().expect("pinger");
    let (expected, worst_reply) = writes.join().expect("writer");
    flush(&mut con);
    let table: BTreeMap<String, String> = pg
        .query(
            "SELECT key, value FROM larder_kv WHERE db = 0 AND key LIKE 'wb:%'",
            |row| (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1)),
        )
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    let acknowledged: BTreeMap<String, String> = expected
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    assert!(acknowledged.len() > 10, "the stream hardly wrote");
    assert_eq!(table, acknowledged, "nothing acknowledged is lost");
    assert_eq!(status_int(&mut con, "pending_keys"), 0);
    assert!(worst_ping < PING_BOUND, "worst PING {worst_ping:?}");
    assert!(worst_reply < REPLY_BOUND, "worst reply {worst_reply:?}");
    eprintln!("worst PING {worst_ping:?}, worst reply {worst_reply:?}");
}

fn wait_for_state(con: &mut redis::Connection, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_text(con, "state") != state {
        assert!(Instant::now() < deadline, "write-behind never got {state}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn postgres_unreachable_mid_stream() {
    let pg = Postgres::start();
    let url = pg.url();
    around_fault(&pg, url, |con| {
        pg.stop_server();
        wait_for_state(con, "retrying");
        std::thread::sleep(Duration::from_millis(1_000));
        assert!(status_int(con, "failures") > 0);
        pg.start_server();
    });
}

#[test]
fn postgres_slow_mid_stream() {
    let pg = Postgres::start();
    let proxy = Proxy::start(pg.port);
    around_fault(&pg, proxy.url(), |con| {
        proxy.set(Mode::Slow);
        std::thread::sleep(Duration::from_millis(2_000));
        // Each batch now takes over 600 ms: changes wait meanwhile.
        assert!(status_int(con, "pending_keys") > 0);
        proxy.set(Mode::Forward);
    });
}

#[test]
fn postgres_refusing_connections_mid_stream() {
    let pg = Postgres::start();
    let proxy = Proxy::start(pg.port);
    around_fault(&pg, proxy.url(), |con| {
        proxy.set(Mode::Refuse);
        wait_for_state(con, "retrying");
        std::thread::sleep(Duration::from_millis(1_000));
        assert!(status_int(con, "failures") > 0);
        proxy.set(Mode::Forward);
    });
}

#[test]
fn postgres_refusing_writes_for_lack_of_permission_mid_stream() {
    let pg = Postgres::start();
    // A role that is not a superuser, so that a revoked privilege binds it.
    pg.execute("CREATE ROLE larder LOGIN; GRANT ALL ON SCHEMA public TO larder;");
    let url = pg.url().replace("user=postgres", "user=larder");
    around_fault(&pg, url, |con| {
        pg.execute("ALTER TABLE larder_kv OWNER TO postgres; REVOKE ALL ON larder_kv FROM larder;");
        wait_for_state(con, "retrying");
        std::thread::sleep(Duration::from_millis(1_000));
        // Retried, not taken for bad data: nothing went to the dead letters.
        assert!(status_text(con, "last_error").starts_with("42501"));
        assert_eq!(status_int(con, "dead_letters"), 0);
        pg.execute("GRANT ALL ON larder_kv TO larder;");
    });
}
