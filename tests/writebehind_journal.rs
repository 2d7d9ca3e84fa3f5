//! The write-behind journal, against a real PostgreSQL and a real
//! `larder-server` process (so that it can be SIGKILLed).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::writebehind::{cmd, flush};

/// A flusher delay long enough that nothing reaches PostgreSQL during a
/// test: whatever PostgreSQL gets afterwards came from the journal.
const NEVER: &str = "3600000";

struct Larder {
    child: Child,
    port: u16,
}

impl Larder {
    /// Starts `larder-server` writing behind to `pg` with the journal in
    /// `dir`, and waits until it answers (which is after replay).
    fn start(pg: &Postgres, dir: &Path, settings: &[(&str, &str)]) -> Larder {
        let port = common::free_port();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.with_extension("log"))
            .expect("open the server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_larder-server"));
        command
            .arg("--port")
            .arg(port.to_string())
            .args(["--set", "write-behind-url"])
            .arg(pg.url())
            .args(["--set", "dir"])
            .arg(dir)
            .args(["--set", "write-behind-delay", "50"]);
        for (name, value) in settings {
            command.args(["--set", name, value]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start larder-server");
        let mut larder = Larder { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut con) = larder.try_client() {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    break;
                }
            }
            if let Ok(Some(status)) = larder.child.try_wait() {
                panic!(
                    "larder-server exited ({status}): {}",
                    fs::read_to_string(dir.with_extension("log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "larder-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        larder
    }

    fn try_client(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?
            .get_connection_with_timeout(Duration::from_secs(5))
    }

    fn client(&self) -> redis::Connection {
        self.try_client().expect("connect to larder-server")
    }

    /// SIGKILL: no shutdown flush, no last write of the journal.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Larder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory for the journal (its server's log beside it),
/// removed when the test passes, kept for a look when it fails.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
            let _ = fs::remove_file(self.0.with_extension("log"));
        }
    }
}

fn temp_dir(name: &str) -> TempDir {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "larder-journal-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(dir.with_extension("log"));
    fs::create_dir_all(&dir).expect("create the journal directory");
    TempDir(dir)
}

fn info_field(con: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("writebehind")
        .query(con)
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .to_string()
}

fn journal_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("larder-journal."))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn items(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

type Rows = BTreeMap<(i32, Vec<u8>), (String, Vec<u8>)>;

fn table_rows(pg: &Postgres) -> Rows {
    pg.query("SELECT db, key, type, value FROM larder_kv", |row| {
        (
            (row.get::<_, i32>(0), row.get::<_, Vec<u8>>(1)),
            (row.get::<_, String>(2), row.get::<_, Vec<u8>>(3)),
        )
    })
    .into_iter()
    .collect()
}

const STRINGS: usize = 600;

/// Writes a known set of changes, every one acknowledged, with a flusher
/// that will not send them; returns the rows PostgreSQL must end with.
/// Before: rows for `old` (db 0) and `old1`, `old2` (db 1) are in
/// PostgreSQL.
fn write_unconfirmed(larder: &Larder) -> Rows {
    let mut expected = Rows::new();
    // Several connections at once, pipelined: their replies wait for the
    // journal together (group commit).
    std::thread::scope(|scope| {
        for worker in 0..4 {
            scope.spawn(move || {
                let mut con = larder.client();
                for chunk in (worker..STRINGS).step_by(4).collect::<Vec<_>>().chunks(50) {
                    let mut pipe = redis::pipe();
                    for i in chunk {
                        pipe.cmd("SET").arg(format!("s:{i}")).arg(format!("v{i}"));
                    }
                    let replies: Vec<String> = pipe.query(&mut con).expect("pipelined SETs");
                    assert!(replies.iter().all(|r| r == "OK"));
                }
            });
        }
    });
    for i in 0..STRINGS {
        expected.insert(
            (0, format!("s:{i}").into_bytes()),
            ("string".into(), format!("v{i}").into_bytes()),
        );
    }
    let mut con = larder.client();
    for args in [
        &["RPUSH", "list", "a", "b", "c"][..],
        &["LPOP", "list"],
        &["HSET", "hash", "f2", "v2", "f1", "v1"],
        &["SADD", "set", "y", "x"],
        &["ZADD", "zset", "1.5", "m1", "-2", "m2"],
        &["INCRBY", "counter", "10"],
        &["SET", "over", "1"],
        &["SET", "over", "2"],
        &["SET", "ttl", "v", "EX", "1000"],
        &["SET", "soon", "v", "PX", "1500"],
        &["DEL", "old"],
        &["SELECT", "1"],
        &["FLUSHDB"],
        &["SET", "new", "after-flush"],
    ] {
        cmd(&mut con, args);
    }
    for (key, kind, value) in [
        ("list", "list", items(&[b"b", b"c"])),
        ("hash", "hash", items(&[b"f1", b"v1", b"f2", b"v2"])),
        ("set", "set", items(&[b"x", b"y"])),
        ("zset", "zset", items(&[b"m2", b"-2", b"m1", b"1.5"])),
        ("counter", "string", b"10".to_vec()),
        ("over", "string", b"2".to_vec()),
        ("ttl", "string", b"v".to_vec()),
        ("soon", "string", b"v".to_vec()),
    ] {
        expected.insert((0, key.as_bytes().to_vec()), (kind.into(), value));
    }
    expected.insert(
        (1, b"new".to_vec()),
        ("string".into(), b"after-flush".to_vec()),
    );
    expected
}

/// Phase 0 (flushed to PostgreSQL): the rows that phase 1 deletes or
/// flushes. Then the flusher is held back.
fn seed_and_hold(larder: &Larder) {
    let mut con = larder.client();
    cmd(&mut con, &["SET", "old", "x"]);
    cmd(&mut con, &["SELECT", "1"]);
    cmd(&mut con, &["SET", "old1", "x"]);
    cmd(&mut con, &["SET", "old2", "x"]);
    flush(&mut con);
    cmd(&mut con, &["CONFIG", "SET", "write-behind-delay", NEVER]);
    cmd(
        &mut con,
        &["CONFIG", "SET", "write-behind-batch-size", "1000000"],
    );
    // Let the flusher finish the pass it was in and fall asleep.
    std::thread::sleep(Duration::from_millis(300));
}

fn check_recovered(pg: &Postgres, larder: &Larder, expected: &Rows) {
    let mut con = larder.client();
    flush(&mut con);
    let rows = table_rows(pg);
    let missing: Vec<_> = expected
        .iter()
        .filter(|(key, value)| rows.get(key) != Some(value))
        .map(|(key, value)| (key, value, rows.get(key)))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "not in PostgreSQL as acknowledged: {missing:?}"
    );
    assert_eq!(rows.len(), expected.len(), "unexpected rows: {rows:?}");
    // The key whose TTL passed while Larder was down is in PostgreSQL with
    // its expiry, not in memory; the others are in memory again.
    let soon: Vec<bool> = pg.query(
        "SELECT expires_at < now() FROM larder_kv WHERE db = 0 AND key = 'soon'",
        |row| row.get(0),
    );
    assert_eq!(soon, vec![true]);
    assert_eq!(cmd(&mut con, &["EXISTS", "soon"]), redis::Value::Int(0));
    let ttl: i64 = redis::cmd("TTL").arg("ttl").query(&mut con).unwrap();
    assert!(ttl > 900, "ttl {ttl}");
    for i in [0, 1, STRINGS / 2, STRINGS - 1] {
        let value: String = redis::cmd("GET")
            .arg(format!("s:{i}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(value, format!("v{i}"));
    }
    let list: Vec<String> = redis::cmd("LRANGE")
        .arg("list")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(list, ["b", "c"]);
    let score: f64 = redis::cmd("ZSCORE")
        .arg("zset")
        .arg("m1")
        .query(&mut con)
        .unwrap();
    assert_eq!(score, 1.5);
    cmd(&mut con, &["SELECT", "1"]);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(keys, ["new"]);
}

fn sigkill_loses_no_acknowledged_write(fsync: &str, crash_twice: bool) {
    let pg = Postgres::start();
    let dir = temp_dir(fsync);
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-fsync", fsync),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    seed_and_hold(&larder);
    let expected = write_unconfirmed(&larder);
    {
        let mut con = larder.client();
        let bytes: u64 = info_field(&mut con, "journal_bytes").parse().unwrap();
        assert!(bytes > 10_000, "journal_bytes {bytes}");
        assert_eq!(info_field(&mut con, "journal_fsync"), fsync);
    }
    // Nothing of it reached PostgreSQL: only the journal can bring it back.
    assert_eq!(
        pg.query(
            "SELECT count(*) FROM larder_kv WHERE key = 'new' OR key = 's:0'",
            |row| row.get::<_, i64>(0)
        ),
        vec![0]
    );
    larder.kill();
    // `soon` expires while Larder is down.
    std::thread::sleep(Duration::from_millis(1600));
    if crash_twice {
        // Replayed but not confirmed, killed again: the files stay.
        let larder = Larder::start(
            &pg,
            &dir,
            &[settings[0], settings[1], ("write-behind-delay", NEVER)],
        );
        let mut con = larder.client();
        let pending: u64 = info_field(&mut con, "pending_keys").parse().unwrap();
        assert!(pending >= STRINGS as u64, "pending {pending}");
        cmd(&mut con, &["SET", "s:0", "v0"]);
        larder.kill();
    }
    let larder = Larder::start(&pg, &dir, &settings);
    check_recovered(&pg, &larder, &expected);
    // Confirmed: the files of the earlier runs are gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while journal_files(&dir).len() > 1 {
        assert!(Instant::now() < deadline, "{:?}", journal_files(&dir));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn always_sigkill_loses_no_acknowledged_write() {
    sigkill_loses_no_acknowledged_write("always", false);
}

#[test]
fn everysec_sigkill_twice_loses_no_acknowledged_write() {
    sigkill_loses_no_acknowledged_write("everysec", true);
}

#[test]
fn journal_shrinks_once_postgres_confirms() {
    let pg = Postgres::start();
    let dir = temp_dir("shrink");
    let larder = Larder::start(
        &pg,
        &dir,
        &[
            ("write-behind-journal", "yes"),
            ("write-behind-fsync", "always"),
            ("write-behind-delay", NEVER),
            ("write-behind-batch-size", "1000000"),
        ],
    );
    let mut con = larder.client();
    let value = "x".repeat(1000);
    for i in 0..500 {
        cmd(&mut con, &["SET", &format!("k{i}"), &value]);
    }
    let grown: u64 = info_field(&mut con, "journal_bytes").parse().unwrap();
    assert!(grown > 500 * 1000, "journal_bytes {grown}");
    assert_eq!(journal_files(&dir).len(), 1);
    assert_eq!(fs::metadata(&journal_files(&dir)[0]).unwrap().len(), grown);
    cmd(&mut con, &["CONFIG", "SET", "write-behind-delay", "50"]);
    flush(&mut con);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bytes: u64 = info_field(&mut con, "journal_bytes").parse().unwrap();
        if bytes < 100 {
            break;
        }
        assert!(Instant::now() < deadline, "journal_bytes stays {bytes}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let files = journal_files(&dir);
    assert_eq!(files.len(), 1);
    assert!(fs::metadata(&files[0]).unwrap().len() < 100);
    // And it keeps working after the cut (the flusher held back again).
    cmd(&mut con, &["CONFIG", "SET", "write-behind-delay", NEVER]);
    std::thread::sleep(Duration::from_millis(300));
    cmd(&mut con, &["SET", "after", "cut"]);
    larder.kill();
    let larder = Larder::start(&pg, &dir, &[("write-behind-journal", "yes")]);
    let mut con = larder.client();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(keys, ["after"], "only the unconfirmed change is replayed");
    flush(&mut con);
    let rows = table_rows(&pg);
    assert_eq!(rows.len(), 501);
    assert_eq!(
        rows.get(&(0, b"after".to_vec())),
        Some(&("string".to_string(), b"cut".to_vec()))
    );
}

#[test]
fn torn_tail_is_tolerated() {
    let pg = Postgres::start();
    let dir = temp_dir("torn");
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-fsync", "always"),
        ("write-behind-delay", NEVER),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    for key in ["a", "b", "c"] {
        cmd(&mut con, &["SET", key, key]);
    }
    larder.kill();
    // A record cut short by the crash: a length promising more than there is.
    let files = journal_files(&dir);
    let last = files.last().expect("a journal file");
    let mut file = fs::OpenOptions::new().append(true).open(last).unwrap();
    file.write_all(&1000u64.to_le_bytes()).unwrap();
    file.write_all(&[0xAB; 20]).unwrap();
    drop(file);
    let larder = Larder::start(&pg, &dir, &[settings[0], settings[1]]);
    let mut con = larder.client();
    flush(&mut con);
    let rows = table_rows(&pg);
    for key in ["a", "b", "c"] {
        assert_eq!(
            rows.get(&(0, key.as_bytes().to_vec())),
            Some(&("string".to_string(), key.as_bytes().to_vec()))
        );
        let value: String = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        assert_eq!(value, key);
    }
    let log = fs::read_to_string(dir.with_extension("log")).unwrap();
    assert!(log.contains("torn or corrupt record"), "{log}");
}

#[test]
fn journal_off_creates_no_file() {
    let pg = Postgres::start();
    let dir = temp_dir("off");
    let larder = Larder::start(&pg, &dir, &[]);
    let mut con = larder.client();
    let config: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("write-behind-*")
        .query(&mut con)
        .unwrap();
    let config: BTreeMap<String, String> = config
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    assert_eq!(config["write-behind-journal"], "no");
    assert_eq!(config["write-behind-fsync"], "everysec");
    let dir_setting: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut con)
        .unwrap();
    assert_eq!(dir_setting, ["dir".to_string(), dir.display().to_string()]);
    for i in 0..100 {
        cmd(&mut con, &["SET", &format!("k{i}"), "v"]);
    }
    flush(&mut con);
    assert_eq!(info_field(&mut con, "journal_enabled"), "0");
    assert_eq!(info_field(&mut con, "journal_bytes"), "0");
    larder.kill();
    assert!(journal_files(&dir).is_empty());
    assert_eq!(fs::read_dir(&*dir).unwrap().count(), 0);
}

/// A filesystem mounted on a test's journal directory, unmounted when
/// dropped (before the directory is removed).
struct Mount(PathBuf);

impl Mount {
    /// `mount ARGS... dir`; `Err` says why it could not (not root, no
    /// mount in this environment).
    fn new(args: &[&str], dir: &Path) -> Result<Mount, String> {
        let output = Command::new("mount")
            .args(args)
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Sends `args` and returns its reply within 10 s; a reply that does not
/// come is a hung request: the test fails.
fn reply_in_time(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    let reply = command.query(con);
    if let Err(error) = &reply {
        assert!(
            !error.is_timeout() && !error.is_io_error(),
            "{args:?} hung or lost its connection: {error}"
        );
    }
    reply
}

/// A full disk: the write whose records cannot be written gets MISCONF
/// (not OK, and no hang); later writes to written-behind keys are refused
/// before they are applied (their values never show); reads go on; once
/// space is back, writes are taken again by themselves; and after a crash
/// every acknowledged write is there.
fn full_disk_refuses_writes_and_recovers(fsync: &str) {
    let dir = temp_dir(&format!("full-{fsync}"));
    let mount = match Mount::new(&["-t", "tmpfs", "-o", "size=2m", "tmpfs"], &dir) {
        Ok(mount) => mount,
        Err(why) => {
            eprintln!("SKIPPED full_disk ({fsync}): cannot mount a small tmpfs: {why}");
            return;
        }
    };
    // What the journal may use: about 1 MB, until the filler goes.
    let filler = dir.join("filler");
    fs::write(&filler, vec![0u8; 1024 * 1024]).expect("write the filler");
    let pg = Postgres::start();
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-fsync", fsync),
        ("write-behind-delay", NEVER),
        ("write-behind-batch-size", "1000000"),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    let value = |i: usize| format!("{i:06}").repeat(10_000);
    let mut acknowledged = Vec::new();
    let mut unknown = None;
    for i in 0..100 {
        let key = format!("k{i}");
        match reply_in_time(&mut con, &["SET", &key, &value(i)]) {
            Ok(reply) => {
                assert_eq!(reply, redis::Value::Okay);
                acknowledged.push(i);
            }
            Err(error) => {
                assert_eq!(error.code(), Some("MISCONF"), "{error}");
                assert!(
                    error.to_string().contains("No space left on device"),
                    "{error}"
                );
                unknown = Some(i);
                break;
            }
        }
    }
    let first_failed = unknown.expect("the 2 MB disk never filled up");
    assert!(acknowledged.len() > 3, "{acknowledged:?}");
    // Refused up front now: not applied, so never visible, also inside a
    // transaction (EXECABORT) and for other written-behind write commands.
    let mut other = larder.client();
    for (args, key) in [
        (&["SET", "refused", "v"][..], "refused"),
        (&["RPUSH", "refused-list", "a"], "refused-list"),
        (&["HSET", "refused-hash", "f", "v"], "refused-hash"),
    ] {
        let error = reply_in_time(&mut other, args).unwrap_err();
        assert_eq!(error.code(), Some("MISCONF"), "{args:?}: {error}");
        let exists = reply_in_time(&mut con, &["EXISTS", key]).unwrap();
        assert_eq!(exists, redis::Value::Int(0), "{key} was applied");
    }
    // Every write command, keyless ones too, as Redis refuses them when
    // its AOF cannot be written (k0 is read below: nothing was flushed).
    let error = reply_in_time(&mut other, &["FLUSHALL"]).unwrap_err();
    assert_eq!(error.code(), Some("MISCONF"), "FLUSHALL: {error}");
    reply_in_time(&mut other, &["MULTI"]).unwrap();
    assert!(reply_in_time(&mut other, &["SET", "refused", "v"]).is_err());
    let error = reply_in_time(&mut other, &["EXEC"]).unwrap_err();
    assert_eq!(error.code(), Some("EXECABORT"), "{error}");
    // Reads go on.
    let got = reply_in_time(&mut con, &["GET", "k0"]).unwrap();
    assert_eq!(got, redis::Value::BulkString(value(0).into_bytes()));
    assert_eq!(
        info_field(&mut con, "journal_last_error"),
        "write: No space left on device (os error 28)"
    );
    // Space is back: the writer's retry succeeds, writes are taken again.
    fs::remove_file(&filler).expect("remove the filler");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match reply_in_time(&mut con, &["SET", "after", "space"]) {
            Ok(_) => break,
            Err(error) => assert_eq!(error.code(), Some("MISCONF"), "{error}"),
        }
        assert!(Instant::now() < deadline, "writes stay refused");
        std::thread::sleep(Duration::from_millis(50));
    }
    larder.kill();
    let larder = Larder::start(&pg, &dir, &settings[..2]);
    let mut con = larder.client();
    for &i in &acknowledged {
        let got = reply_in_time(&mut con, &["GET", &format!("k{i}")]).unwrap();
        assert_eq!(got, redis::Value::BulkString(value(i).into_bytes()), "k{i}");
    }
    let got = reply_in_time(&mut con, &["GET", "after"]).unwrap();
    assert_eq!(got, redis::Value::BulkString(b"space".to_vec()));
    // The write that got MISCONF: its outcome is unknown (its records were
    // buffered and written once space was back), but never half of it.
    let got = reply_in_time(&mut con, &["GET", &format!("k{first_failed}")]).unwrap();
    assert!(
        got == redis::Value::Nil
            || got == redis::Value::BulkString(value(first_failed).into_bytes())
    );
    for key in ["refused", "refused-list", "refused-hash"] {
        let exists = reply_in_time(&mut con, &["EXISTS", key]).unwrap();
        assert_eq!(exists, redis::Value::Int(0), "{key}");
    }
    flush(&mut con);
    let rows = table_rows(&pg);
    for &i in &acknowledged {
        assert_eq!(
            rows.get(&(0, format!("k{i}").into_bytes())),
            Some(&("string".to_string(), value(i).into_bytes()))
        );
    }
    larder.kill();
    drop(mount);
}

#[test]
fn full_disk_refuses_writes_and_recovers_always() {
    full_disk_refuses_writes_and_recovers("always");
}

#[test]
fn full_disk_refuses_writes_and_recovers_everysec() {
    full_disk_refuses_writes_and_recovers("everysec");
}

/// A journal directory that became read-only (as root, permissions do not
/// stop writes: a read-only bind mount does) while unconfirmed changes are
/// in it: the server refuses to start with a clear error (as Redis when it
/// cannot open its AOF) rather than serve without its journal, and nothing
/// is lost: once the directory is writable again, they are all back.
#[test]
fn read_only_journal_dir_refuses_to_start_and_loses_nothing() {
    let pg = Postgres::start();
    let dir = temp_dir("read-only");
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-fsync", "always"),
        ("write-behind-delay", NEVER),
        ("write-behind-batch-size", "1000000"),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    for i in 0..50 {
        cmd(&mut con, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    larder.kill();
    let bind = match Mount::new(&["--bind"], &dir) {
        Ok(mount) => mount,
        Err(why) => {
            eprintln!("SKIPPED read_only_journal_dir: cannot bind-mount: {why}");
            return;
        }
    };
    if let Err(why) = Mount::new(&["-o", "remount,bind,ro"], &dir).map(std::mem::forget) {
        eprintln!("SKIPPED read_only_journal_dir: cannot remount read-only: {why}");
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder-server"))
        .arg("--port")
        .arg(common::free_port().to_string())
        .args(["--set", "write-behind-url"])
        .arg(pg.url())
        .args(["--set", "dir"])
        .arg(&*dir)
        .args(["--set", "write-behind-journal", "yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start larder-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("larder-server neither started nor exited on a read-only journal dir");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!status.success(), "{log}");
    assert!(log.contains("write-behind journal"), "{log}");
    assert!(log.contains("Read-only file system"), "{log}");
    drop(bind);
    let larder = Larder::start(&pg, &dir, &settings[..2]);
    let mut con = larder.client();
    for i in 0..50 {
        let got: String = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(got, format!("v{i}"));
    }
}

/// Start-up with odd names in the journal directory: a directory named
/// like a journal file is skipped with a warning (it used to abort
/// start-up); a file at the last sequence number stops start-up with a
/// clear error instead of wrapping around to file 0 (which would replay
/// before the older ones).
#[test]
fn odd_journal_names_are_handled_at_start() {
    let pg = Postgres::start();
    let dir = temp_dir("odd-names");
    fs::create_dir(dir.join("larder-journal.0000000005")).unwrap();
    let settings = [("write-behind-journal", "yes")];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    cmd(&mut con, &["SET", "k", "v"]);
    larder.kill();
    let log = fs::read_to_string(dir.with_extension("log")).unwrap();
    assert!(log.contains("not a file; skipped"), "{log}");
    assert!(dir.join("larder-journal.0000000005").is_dir());

    fs::write(
        dir.join(format!("larder-journal.{}", u64::MAX)),
        b"LARDERJ1",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_larder-server"))
        .arg("--port")
        .arg(common::free_port().to_string())
        .args(["--set", "write-behind-url"])
        .arg(pg.url())
        .args(["--set", "dir"])
        .arg(&*dir)
        .args(["--set", "write-behind-journal", "yes"])
        .stdin(Stdio::null())
        .output()
        .expect("run larder-server");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("sequence numbers are used up"), "{log}");
    // The unconfirmed change is still there for a start that can go on.
    fs::remove_file(dir.join(format!("larder-journal.{}", u64::MAX))).unwrap();
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    let got: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(got, "v");
}

/// SIGTERM while PostgreSQL is down: the shutdown log tells the truth —
/// the changes it could not send stay in the journal — and they do reach
/// PostgreSQL after the next start.
#[test]
fn shutdown_with_postgres_down_says_the_journal_keeps_the_changes() {
    let pg = Postgres::start();
    let dir = temp_dir("shutdown-down");
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-shutdown-timeout", "300"),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    cmd(&mut con, &["SET", "warm", "up"]);
    flush(&mut con);
    pg.stop_server();
    cmd(&mut con, &["SET", "k", "kept"]);
    let status = Command::new("kill")
        .args(["-TERM", &larder.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut larder = larder;
    let deadline = Instant::now() + Duration::from_secs(20);
    while larder.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "SIGTERM did not stop the server");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = fs::read_to_string(dir.with_extension("log")).unwrap();
    assert!(log.contains("stay in the journal"), "{log}");
    assert!(!log.contains("are lost"), "{log}");
    drop(larder);
    pg.start_server();
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    flush(&mut con);
    assert_eq!(
        table_rows(&pg).get(&(0, b"k".to_vec())),
        Some(&("string".to_string(), b"kept".to_vec()))
    );
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Everything a key holds, as read back through commands (collections in
/// a canonical order), and whether it has a TTL.
fn dump(
    con: &mut redis::Connection,
    keys: &[String],
) -> BTreeMap<String, (String, Vec<String>, bool)> {
    let mut out = BTreeMap::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(key).query(con).unwrap();
        let mut items: Vec<String> = match kind.as_str() {
            "none" => continue,
            "string" => vec![redis::cmd("GET").arg(key).query(con).unwrap()],
            "list" => redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query(con)
                .unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(key).query(con).unwrap(),
            "hash" => {
                let map: BTreeMap<String, String> =
                    redis::cmd("HGETALL").arg(key).query(con).unwrap();
                let ttls: Vec<i64> = redis::cmd("HPTTL")
                    .arg(key)
                    .arg("FIELDS")
                    .arg(map.len())
                    .arg(map.keys().collect::<Vec<_>>())
                    .query(con)
                    .unwrap();
                map.into_iter()
                    .zip(ttls)
                    .map(|((f, v), ttl)| format!("{f}={v} ttl:{}", ttl > 0))
                    .collect()
            }
            "zset" => redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(con)
                .unwrap(),
            other => panic!("{key}: {other}"),
        };
        if kind == "set" {
            items.sort();
        }
        let pttl: i64 = redis::cmd("PTTL").arg(key).query(con).unwrap();
        out.insert(key.clone(), (kind, items, pttl > 0));
    }
    out
}

/// Random in-place changes of lists, sets, hashes and zsets (journaled as
/// effects once each key is pending), then a crash: replay rebuilds exactly
/// what memory held.
#[test]
fn effect_records_replay_to_the_exact_values_after_a_crash() {
    let pg = Postgres::start();
    let dir = temp_dir("effects");
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-fsync", "everysec"),
        ("write-behind-delay", NEVER),
        ("write-behind-batch-size", "1000000"),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    let keys: Vec<String> = ["l0", "l1", "s0", "s1", "h0", "h1", "z0", "z1"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let element = |rng: &mut Rng| format!("e{}", rng.below(40));
    for round in 0..30 {
        let mut pipe = redis::pipe();
        for _ in 0..100 {
            let which = rng.below(2);
            let list = format!("l{which}");
            let other = format!("l{}", 1 - which);
            let set = format!("s{which}");
            let hash = format!("h{which}");
            let zset = format!("z{which}");
            match rng.below(22) {
                0 | 1 => pipe
                    .cmd("RPUSH")
                    .arg(&list)
                    .arg(element(&mut rng))
                    .arg(element(&mut rng)),
                2 | 3 => pipe
                    .cmd("LPUSH")
                    .arg(&list)
                    .arg(element(&mut rng))
                    .arg(element(&mut rng)),
                4 => pipe.cmd("LPOP").arg(&list),
                5 => pipe.cmd("RPOP").arg(&list).arg(rng.below(3)),
                6 => pipe
                    .cmd("LTRIM")
                    .arg(&list)
                    .arg(rng.below(2))
                    .arg(-1 - rng.below(2) as i64),
                7 => pipe
                    .cmd("LMOVE")
                    .arg(&list)
                    .arg(&other)
                    .arg("LEFT")
                    .arg("RIGHT"),
                8 | 9 => pipe
                    .cmd("SADD")
                    .arg(&set)
                    .arg(element(&mut rng))
                    .arg(element(&mut rng)),
                10 => pipe.cmd("SREM").arg(&set).arg(element(&mut rng)),
                11 => pipe
                    .cmd("SMOVE")
                    .arg(&set)
                    .arg(format!("s{}", 1 - which))
                    .arg(element(&mut rng)),
                12 | 13 => pipe
                    .cmd("HSET")
                    .arg(&hash)
                    .arg(element(&mut rng))
                    .arg(round)
                    .arg(element(&mut rng))
                    .arg("v"),
                14 => pipe.cmd("HDEL").arg(&hash).arg(element(&mut rng)),
                15 => pipe
                    .cmd("HPEXPIRE")
                    .arg(&hash)
                    .arg(1_000_000)
                    .arg("FIELDS")
                    .arg(1)
                    .arg(element(&mut rng)),
                16 | 17 => pipe
                    .cmd("ZADD")
                    .arg(&zset)
                    .arg(rng.below(100))
                    .arg(element(&mut rng)),
                18 => pipe
                    .cmd("ZADD")
                    .arg(&zset)
                    .arg("GT")
                    .arg("CH")
                    .arg(rng.below(100))
                    .arg(element(&mut rng)),
                19 => pipe
                    .cmd("ZINCRBY")
                    .arg(&zset)
                    .arg(1.5)
                    .arg(element(&mut rng)),
                20 => pipe
                    .cmd("ZREM")
                    .arg(&zset)
                    .arg(element(&mut rng))
                    .arg(element(&mut rng)),
                _ => match rng.below(3) {
                    0 => pipe
                        .cmd("PEXPIRE")
                        .arg(&keys[rng.below(8) as usize])
                        .arg(1_000_000),
                    1 => pipe.cmd("PERSIST").arg(&keys[rng.below(8) as usize]),
                    _ => pipe
                        .cmd("HPERSIST")
                        .arg(&hash)
                        .arg("FIELDS")
                        .arg(1)
                        .arg(element(&mut rng)),
                },
            };
            pipe.ignore();
        }
        let () = pipe.query(&mut con).expect("pipeline");
    }
    let before = dump(&mut con, &keys);
    assert!(before.len() >= 6, "{before:?}");
    let bytes: u64 = info_field(&mut con, "journal_bytes").parse().unwrap();
    larder.kill();
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    let after = dump(&mut con, &keys);
    assert_eq!(before, after, "journal of {bytes} bytes");
    // And PostgreSQL gets the same values from the replayed keys.
    cmd(&mut con, &["CONFIG", "SET", "write-behind-delay", "50"]);
    flush(&mut con);
    let rows = table_rows(&pg);
    for key in ["l0", "l1"] {
        let expected = before.get(key).map(|(_, items, _)| {
            let parts: Vec<&[u8]> = items.iter().map(|s| s.as_bytes()).collect();
            items_bytes(&parts)
        });
        assert_eq!(
            rows.get(&(0, key.as_bytes().to_vec()))
                .map(|(_, v)| v.clone()),
            expected,
            "{key}"
        );
    }
}

fn items_bytes(parts: &[&[u8]]) -> Vec<u8> {
    items(parts)
}

/// 1,000 pushes of 1 byte onto a pending 100,000-element list journal
/// what they add, not the list each time (it was 1.7 MB a push); and the
/// replayed list is whole.
#[test]
fn journal_grows_with_the_change_not_the_value() {
    let pg = Postgres::start();
    let dir = temp_dir("proportional");
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-delay", NEVER),
        ("write-behind-batch-size", "1000000"),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    for chunk in 0..100 {
        let mut command = redis::cmd("RPUSH");
        command.arg("big");
        for i in 0..1000 {
            command.arg(format!("element-{:06}", chunk * 1000 + i));
        }
        let _: i64 = command.query(&mut con).unwrap();
    }
    let members: Vec<String> = (0..200_000).map(|i| format!("m{i}")).collect();
    for chunk in members.chunks(10_000) {
        let _: i64 = redis::cmd("SADD")
            .arg("bigset")
            .arg(chunk)
            .query(&mut con)
            .unwrap();
    }
    let before: u64 = info_field(&mut con, "journal_bytes").parse().unwrap();
    let mut pipe = redis::pipe();
    for _ in 0..1000 {
        pipe.cmd("RPUSH").arg("big").arg("x").ignore();
        pipe.cmd("SADD").arg("bigset").arg("y").ignore();
    }
    let () = pipe.query(&mut con).unwrap();
    let after: u64 = info_field(&mut con, "journal_bytes").parse().unwrap();
    let grown = after - before;
    assert!(
        grown < 1024 * 1024,
        "1,000 RPUSHes and SADDs of 1 byte grew the journal by {grown} bytes"
    );
    eprintln!("journal growth for 1,000 RPUSH + 1,000 SADD of 1 byte: {grown} bytes");
    larder.kill();
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    let len: i64 = redis::cmd("LLEN").arg("big").query(&mut con).unwrap();
    assert_eq!(len, 101_000);
    let edges: Vec<String> = redis::cmd("LRANGE")
        .arg("big")
        .arg(99_999)
        .arg(100_000)
        .query(&mut con)
        .unwrap();
    assert_eq!(edges, ["element-099999", "x"]);
    let card: i64 = redis::cmd("SCARD").arg("bigset").query(&mut con).unwrap();
    assert_eq!(card, 200_001);
}

/// PostgreSQL down, the same keys written over and over: the journal is
/// rewritten from memory whenever it passes write-behind-journal-max-size,
/// so it stays near that bound instead of growing with every write; after
/// a crash, and PostgreSQL back, every last value is there.
#[test]
fn rewrite_bounds_the_journal_while_postgres_is_down() {
    const ROUNDS: usize = 300;
    let pg = Postgres::start();
    let dir = temp_dir("rewrite");
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-fsync", "everysec"),
        ("write-behind-journal-max-size", "1mb"),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    // Some keys reach PostgreSQL; then it goes away with changes in flight.
    cmd(&mut con, &["SET", "before", "down"]);
    flush(&mut con);
    pg.stop_server();
    let value = |round: usize, key: usize| format!("{round:04}-{key:02}-").repeat(1000);
    let mut largest = 0u64;
    for round in 0..ROUNDS {
        let mut pipe = redis::pipe();
        for key in 0..20 {
            pipe.cmd("SET")
                .arg(format!("k{key}"))
                .arg(value(round, key))
                .ignore();
        }
        pipe.cmd("RPUSH").arg("list").arg(round).ignore();
        pipe.cmd("HSET")
            .arg("hash")
            .arg(format!("f{}", round % 7))
            .arg(round)
            .ignore();
        let () = pipe.query(&mut con).unwrap();
        let bytes: u64 = info_field(&mut con, "journal_bytes").parse().unwrap();
        largest = largest.max(bytes);
        // 20 MB/s: the journal grows past its bound by what is appended
        // while a rewrite runs (tens of ms), whatever the total.
        std::thread::sleep(Duration::from_millis(10));
    }
    // 300 x 20 x 10 KB = 60 MB were journaled.
    let rewrites: u64 = info_field(&mut con, "journal_rewrites").parse().unwrap();
    assert!(rewrites >= 2, "journal_rewrites {rewrites}");
    assert!(
        largest < 12 * 1024 * 1024,
        "the journal reached {largest} bytes"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let bytes: u64 = info_field(&mut con, "journal_bytes").parse().unwrap();
        let busy = info_field(&mut con, "journal_rewrite_in_progress") == "1";
        if !busy && bytes < 3 * 1024 * 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the journal stays at {bytes} bytes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let on_disk: u64 = journal_files(&dir)
        .iter()
        .map(|path| fs::metadata(path).map_or(0, |m| m.len()))
        .sum();
    assert!(
        on_disk < 3 * 1024 * 1024,
        "{on_disk} bytes in {:?}",
        journal_files(&dir)
    );
    eprintln!("journal: largest {largest} bytes, {rewrites} rewrites, {on_disk} bytes at the end");
    larder.kill();
    pg.start_server();
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    for key in 0..20 {
        let got: String = redis::cmd("GET")
            .arg(format!("k{key}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(got, value(ROUNDS - 1, key), "k{key}");
    }
    let list: Vec<usize> = redis::cmd("LRANGE")
        .arg("list")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(list, (0..ROUNDS).collect::<Vec<usize>>());
    let hash: BTreeMap<String, usize> = redis::cmd("HGETALL").arg("hash").query(&mut con).unwrap();
    assert_eq!(hash.len(), 7);
    assert_eq!(hash["f3"], ROUNDS - 1 - (ROUNDS - 1 - 3) % 7);
    flush(&mut con);
    let rows = table_rows(&pg);
    for key in 0..20 {
        assert_eq!(
            rows.get(&(0, format!("k{key}").into_bytes())),
            Some(&("string".to_string(), value(ROUNDS - 1, key).into_bytes())),
            "k{key}"
        );
    }
    assert!(rows.contains_key(&(0, b"before".to_vec())));
}

/// The journal directory turns read-only under a running server (a
/// read-only bind mount over it): the open file still takes records, so
/// writes are acknowledged and none hangs; the rewrite, which needs new
/// files, fails with its error in INFO and writing goes on; after a crash,
/// with the directory writable again, every acknowledged write is there.
#[test]
fn read_only_dir_at_run_time_fails_the_rewrite_not_the_writes() {
    let pg = Postgres::start();
    let dir = temp_dir("read-only-run");
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-fsync", "always"),
        ("write-behind-journal-max-size", "1mb"),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    flush(&mut con);
    pg.stop_server();
    let bind = match Mount::new(&["--bind"], &dir) {
        Ok(mount) => mount,
        Err(why) => {
            eprintln!("SKIPPED read_only_dir_at_run_time: cannot bind-mount: {why}");
            return;
        }
    };
    if let Err(why) = Mount::new(&["-o", "remount,bind,ro"], &dir).map(std::mem::forget) {
        eprintln!("SKIPPED read_only_dir_at_run_time: cannot remount read-only: {why}");
        return;
    }
    let value = |round: usize, key: usize| format!("{round:03}-{key:02}-").repeat(1000);
    for round in 0..40 {
        for key in 0..10 {
            let reply = reply_in_time(&mut con, &["SET", &format!("k{key}"), &value(round, key)]);
            assert_eq!(reply.unwrap(), redis::Value::Okay);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let error = info_field(&mut con, "journal_last_error");
        if error.contains("Read-only file system") {
            assert!(error.starts_with("rewrite"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline, "journal_last_error: {error}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(info_field(&mut con, "journal_rewrites"), "0");
    larder.kill();
    drop(bind);
    pg.start_server();
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    for key in 0..10 {
        let got: String = redis::cmd("GET")
            .arg(format!("k{key}"))
            .query(&mut con)
            .unwrap();
        assert_eq!(got, value(39, key), "k{key}");
    }
}

/// A stream's consumer groups survive a crash through the journal: the
/// group commands' records (each group's whole state after the change)
/// replay over the stream's last full record to what memory held, and
/// PostgreSQL then gets the groups too.
#[test]
fn stream_groups_replay_after_a_crash() {
    let pg = Postgres::start();
    let dir = temp_dir("groups");
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-fsync", "everysec"),
        ("write-behind-delay", NEVER),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    for line in [
        "XADD s 1-1 f a",
        "XADD s 2-1 f b",
        "XADD s 3-1 f c",
        "XADD s 4-1 f d",
        "XGROUP CREATE s g 0",
        "XGROUP CREATE s h $",
        "XGROUP CREATE s gone 0",
        "XREADGROUP GROUP g alice COUNT 2 STREAMS s >",
        "XREADGROUP GROUP g bob STREAMS s >",
        "XACK s g 2-1",
        "XCLAIM s g carol 0 1-1 RETRYCOUNT 9",
        "XAUTOCLAIM s g dave 0 4-1",
        "XGROUP CREATECONSUMER s h idle",
        "XGROUP SETID s h 2-1 ENTRIESREAD 2",
        "XGROUP DESTROY s gone",
        "XADD s 5-1 f e",
        "XREADGROUP GROUP h erin NOACK STREAMS s >",
        "XGROUP DELCONSUMER s g alice",
    ] {
        let args: Vec<&str> = line.split_whitespace().collect();
        cmd(&mut con, &args);
    }
    let state = |con: &mut redis::Connection| -> Vec<String> {
        ["FULL", "GROUPS"]
            .iter()
            .map(|what| {
                let args: &[&str] = if *what == "FULL" {
                    &["XINFO", "STREAM", "s", "FULL"]
                } else {
                    &["XINFO", "GROUPS", "s"]
                };
                format!("{:?}", cmd(con, args))
            })
            .collect()
    };
    let before = state(&mut con);
    for needle in ["carol", "dave", "idle", "erin"] {
        assert!(before[0].contains(needle), "{needle}: {}", before[0]);
    }
    assert!(!before[0].contains("alice") && !before[0].contains("gone"));
    larder.kill();
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    assert_eq!(state(&mut con), before);
    cmd(&mut con, &["CONFIG", "SET", "write-behind-delay", "50"]);
    flush(&mut con);
    let values: Vec<Vec<u8>> = pg
        .query("SELECT value FROM larder_kv WHERE key = 's'::bytea", |r| {
            r.get(0)
        });
    let items = larder::writebehind::encode::decode_items(&values[0]).expect("items");
    let groups = items
        .iter()
        .position(|i| i == b"groups")
        .expect("groups stored");
    assert_eq!(items[groups + 1], b"2");
    assert!(items.contains(&b"carol".to_vec()) && items.contains(&b"idle".to_vec()));
}

/// A group command journals what it touched (the group's counters, its
/// consumer, the pending entries it named), not the whole pending entries
/// list: with 5,000 entries pending, an XACK, an XCLAIM or a read of a
/// consumer's history adds a record of well under a kilobyte, where the
/// group's whole state is over 100 KB. After a crash the PEL is as it was.
#[test]
fn group_records_are_proportional_to_what_changed() {
    let pg = Postgres::start();
    let dir = temp_dir("group-size");
    let settings = [
        ("write-behind-journal", "yes"),
        ("write-behind-fsync", "everysec"),
        ("write-behind-delay", NEVER),
    ];
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    let mut pipe = redis::pipe();
    for i in 1..=5000 {
        pipe.cmd("XADD")
            .arg("s")
            .arg(format!("{i}-1"))
            .arg("f")
            .arg("v")
            .ignore();
    }
    let () = pipe.query(&mut con).expect("XADDs");
    cmd(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]);
    let bytes = |con: &mut redis::Connection| -> u64 {
        info_field(con, "journal_bytes").parse().expect("bytes")
    };
    let start = bytes(&mut con);
    cmd(
        &mut con,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"],
    );
    let read = bytes(&mut con) - start;
    // The read names all 5,000 entries it made pending.
    assert!(read > 5000 * 20, "{read}");
    for args in [
        &["XACK", "s", "g", "2500-1"][..],
        &["XCLAIM", "s", "g", "bob", "0", "10-1"],
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            "0",
        ],
        &["XAUTOCLAIM", "s", "g", "carol", "0", "4000-1", "COUNT", "2"],
    ] {
        let before = bytes(&mut con);
        cmd(&mut con, args);
        let grew = bytes(&mut con) - before;
        assert!(grew > 0 && grew < 1000, "{args:?}: {grew} bytes");
    }
    let pending = |con: &mut redis::Connection| format!("{:?}", cmd(con, &["XPENDING", "s", "g"]));
    let full = |con: &mut redis::Connection| {
        format!(
            "{:?}",
            cmd(con, &["XINFO", "STREAM", "s", "FULL", "COUNT", "0"])
        )
    };
    let (pending_before, full_before) = (pending(&mut con), full(&mut con));
    assert!(pending_before.contains("4999"), "{pending_before}");
    larder.kill();
    let larder = Larder::start(&pg, &dir, &settings);
    let mut con = larder.client();
    assert_eq!(pending(&mut con), pending_before);
    assert_eq!(full(&mut con), full_before);
}
