//! Network security as Redis 7.0: protected mode (a client from another
//! address of this machine), the Unix socket, rename-command,
//! enable-module-command, and Larder's audit trail. Texts are compared with
//! a real redis-server 7.0.15.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{encode_command, free_port, RawClient, TestServer};
use larder::{Config, Server};

/// A non-loopback IPv4 address of this machine (from `hostname -I`): a
/// client connecting to it comes from it, so it is not local.
fn non_loopback_address() -> Option<IpAddr> {
    let output = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|word| word.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

/// A redis-server on a free port with extra arguments.
struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start(extra: &[&str]) -> Redis {
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let mut client = RawClient::connect(SocketAddr::from(([127, 0, 0, 1], port)));
                    client.send(&encode_command(&[b"INFO", b"server"]));
                    if client
                        .try_read_reply()
                        .is_some_and(|r| String::from_utf8_lossy(&r).contains("redis_version"))
                    {
                        return Redis { port, child };
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    fn local(&self) -> RawClient {
        RawClient::connect(SocketAddr::from(([127, 0, 0, 1], self.port)))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a server sends a new connection that says `PING`, up to
/// the close (or 2 s of silence).
fn greeting_of(addr: SocketAddr) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = stream.write_all(b"PING\r\n");
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                received.extend_from_slice(&chunk[..n]);
                if received == b"+PONG\r\n" {
                    break;
                }
            }
        }
    }
    received
}

fn info_field(client: &mut RawClient, field: &str) -> String {
    let info = String::from_utf8_lossy(&client.command(&["INFO", "stats"])).into_owned();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn protected_mode_refuses_other_hosts_with_redis_text() {
    let Some(remote_ip) = non_loopback_address() else {
        eprintln!("skipped: this machine has no non-loopback address (hostname -I)");
        return;
    };
    let larder = TestServer::with_config(|c| {
        c.set("bind", "0.0.0.0").unwrap();
    });
    let redis = Redis::start(&["--bind", "0.0.0.0"]);
    let ours = greeting_of(SocketAddr::new(remote_ip, larder.addr.port()));
    let theirs = greeting_of(SocketAddr::new(remote_ip, redis.port));
    assert!(theirs.starts_with(b"-DENIED Redis is running in protected mode"));
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs)
    );
    assert_eq!(
        ours.as_slice(),
        larder::server::PROTECTED_MODE_DENIED.as_bytes()
    );
    // Loopback is served, and counts the refusal as Redis does.
    let mut local = larder.raw();
    assert_eq!(local.command(&["PING"]), b"+PONG\r\n");
    assert_eq!(info_field(&mut local, "rejected_connections"), "1");
    assert_eq!(
        info_field(&mut local, "rejected_connections"),
        info_field(&mut redis.local(), "rejected_connections")
    );
    // CONFIG SET protected-mode no lets the other host in.
    assert_eq!(
        local.command(&["CONFIG", "SET", "protected-mode", "no"]),
        b"+OK\r\n"
    );
    assert_eq!(
        greeting_of(SocketAddr::new(remote_ip, larder.addr.port())),
        b"+PONG\r\n"
    );
    // On again, with a password: protected mode no longer applies.
    local.command(&["CONFIG", "SET", "protected-mode", "yes"]);
    local.command(&["CONFIG", "SET", "requirepass", "secret"]);
    let reply = greeting_of(SocketAddr::new(remote_ip, larder.addr.port()));
    assert!(
        reply.starts_with(b"-NOAUTH"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    // What counts is the default user's password, however it was set.
    local.command(&["AUTH", "secret"]);
    local.command(&["CONFIG", "SET", "requirepass", ""]);
    assert!(greeting_of(SocketAddr::new(remote_ip, larder.addr.port())).starts_with(b"-DENIED"));
    local.command(&["ACL", "SETUSER", "default", ">viaacl"]);
    let reply = greeting_of(SocketAddr::new(remote_ip, larder.addr.port()));
    assert!(
        reply.starts_with(b"-NOAUTH"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
}

#[test]
fn protected_mode_decision() {
    use larder::server::protected_mode_refuses;
    assert!(Config::default().protected_mode, "on by default, as Redis");
    assert!(protected_mode_refuses(true, true, false));
    assert!(
        !protected_mode_refuses(true, true, true),
        "local peers pass"
    );
    assert!(
        !protected_mode_refuses(true, false, false),
        "a password on the default user (requirepass or ACL SETUSER) lets others in"
    );
    assert!(!protected_mode_refuses(false, true, false));
}

fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("larder-{name}-{}.sock", std::process::id()))
}

/// One request over a Unix socket, the reply read up to `\r\n` ends.
fn unix_command(stream: &mut UnixStream, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    stream.write_all(&encode_command(&args)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
        if common::reply_length(&received).ok().flatten().is_some() {
            break;
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[test]
fn unix_socket_serves_local_clients_beside_tcp() {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path("unix");
    let path_text = path.to_str().unwrap().to_string();
    // A file left behind by an earlier run is replaced, as Redis does.
    std::fs::write(&path, b"stale").unwrap();
    let server = {
        let path_text = path_text.clone();
        TestServer::with_config(move |c| {
            c.set("unixsocket", &path_text).unwrap();
            c.set("unixsocketperm", "700").unwrap();
            c.set("bind", "0.0.0.0").unwrap();
            c.set("enable-debug-command", "local").unwrap();
        })
    };
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let mut unix = UnixStream::connect(&path).expect("connect to the unix socket");
    assert_eq!(unix_command(&mut unix, &["PING"]), "+PONG\r\n");
    assert_eq!(unix_command(&mut unix, &["SET", "k", "v"]), "+OK\r\n");
    // TCP beside it, the same data.
    assert_eq!(server.raw().command(&["GET", "k"]), b"$1\r\nv\r\n");
    // CLIENT INFO as Redis shows a Unix client.
    let info = unix_command(&mut unix, &["CLIENT", "INFO"]);
    assert!(
        info.contains(&format!(" addr={path_text}:0 laddr={path_text}:0 ")),
        "{info}"
    );
    assert!(info.contains(" flags=U "), "{info}");
    // A Unix client is local: DEBUG under `local`.
    assert!(unix_command(&mut unix, &["DEBUG", "HELP"]).starts_with('*'));
    assert_eq!(
        unix_command(&mut unix, &["CONFIG", "GET", "unix*"]),
        format!(
            "*4\r\n$10\r\nunixsocket\r\n${}\r\n{path_text}\r\n$14\r\nunixsocketperm\r\n$3\r\n700\r\n",
            path_text.len()
        )
    );
    // redis-cli -s and redis-py's unix_socket_path.
    let cli = Command::new("timeout")
        .args(["5", "redis-cli", "-s", &path_text, "GET", "k"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cli.stdout), "v\n");
    let python = Command::new("timeout")
        .args([
            "10",
            "python3",
            "-c",
            "import redis,sys; r = redis.Redis(unix_socket_path=sys.argv[1]); print(r.get('k').decode())",
            &path_text,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&python.stdout),
        "v\n",
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    drop(unix);
    drop(server);
    // Removed at shutdown.
    let deadline = Instant::now() + Duration::from_secs(3);
    while path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!path.exists(), "the socket file outlived the server");
}

#[test]
fn monitor_shows_unix_clients_as_redis() {
    let path = socket_path("monitor");
    let path_text = path.to_str().unwrap().to_string();
    let server = {
        let path_text = path_text.clone();
        TestServer::with_config(move |c| c.set("unixsocket", &path_text).unwrap())
    };
    let mut monitor = server.raw();
    assert_eq!(monitor.command(&["MONITOR"]), b"+OK\r\n");
    let mut unix = UnixStream::connect(&path).unwrap();
    unix_command(&mut unix, &["PING"]);
    let line = String::from_utf8_lossy(&monitor.read_reply()).into_owned();
    assert!(
        line.ends_with(&format!(" [0 unix:{path_text}] \"PING\"\r\n")),
        "{line}"
    );
}

/// Larder (in-process) and redis-server, both with the same
/// rename-command directives.
#[test]
fn rename_command_as_redis() {
    let larder = TestServer::with_config(|c| {
        c.load_str(
            "rename-command CONFIG cfg\nrename-command flushall \"\"\nrename-command get fetch\n",
        )
        .unwrap();
    });
    let redis = Redis::start(&[
        "--rename-command",
        "CONFIG",
        "cfg",
        "--rename-command",
        "flushall",
        "",
        "--rename-command",
        "get",
        "fetch",
    ]);
    let mut ours = larder.raw();
    let mut theirs = redis.local();
    let mut same = |args: &[&str]| {
        let a = ours.command(args);
        let b = theirs.command(args);
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "replies differ for {args:?}"
        );
        String::from_utf8_lossy(&a).into_owned()
    };
    assert!(same(&["CONFIG", "GET", "maxmemory"]).starts_with("-ERR unknown command 'CONFIG'"));
    assert_eq!(
        same(&["CFG", "GET", "maxmemory"]),
        "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
    );
    assert!(same(&["FLUSHALL"]).starts_with("-ERR unknown command"));
    same(&["SET", "k", "v"]);
    assert!(same(&["GET", "k"]).starts_with("-ERR unknown command 'GET'"));
    assert_eq!(same(&["fetch", "k"]), "$1\r\nv\r\n");
    // Queued under the new name; the old one fails the transaction.
    same(&["MULTI"]);
    same(&["FETCH", "k"]);
    same(&["GET", "k"]);
    assert!(same(&["EXEC"]).starts_with("-EXECABORT"));
    // Scripts see the same names.
    same(&["EVAL", "return redis.call('fetch', 'k')", "0"]);
    assert!(same(&["EVAL", "return redis.pcall('flushall')", "0"]).starts_with("-ERR"));
    assert!(same(&["EVAL", "return redis.pcall('get', 'k')", "0"]).starts_with("-ERR"));
    assert_eq!(same(&["DBSIZE"]), ":1\r\n");
}

#[test]
fn rename_command_errors_stop_the_start() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (directives, error) in [
        (
            "rename-command nosuch x",
            "No such command in rename-command",
        ),
        (
            "rename-command get set",
            "Target command name already exists",
        ),
    ] {
        let mut config = Config {
            port: 0,
            ..Config::default()
        };
        config.load_str(directives).unwrap();
        let result = runtime.block_on(Server::bind(config));
        assert_eq!(result.err().map(|e| e.to_string()).as_deref(), Some(error));
    }
    // Redis refuses these at load too: wrong number of words.
    assert!(Config::default().load_str("rename-command get").is_err());
    assert!(Config::default()
        .load_str("rename-command get a b")
        .is_err());
    // Not a setting: CONFIG GET and SET do not know it.
    let larder = TestServer::start();
    let mut client = larder.raw();
    assert_eq!(
        client.command(&["CONFIG", "GET", "rename-command"]),
        b"*0\r\n"
    );
    assert!(client
        .command(&["CONFIG", "SET", "rename-command", "get x"])
        .starts_with(b"-ERR Unknown option"));
}

#[test]
fn debug_module_and_protected_configs_refused_by_default_as_redis() {
    let larder = TestServer::start();
    let redis = Redis::start(&["--bind", "127.0.0.1"]);
    let mut ours = larder.raw();
    let mut theirs = redis.local();
    for args in [
        &["DEBUG", "HELP"][..],
        &["MODULE", "LOAD", "/nonexistent.so"],
        &["MODULE", "LOADEX", "/nonexistent.so"],
        &["MODULE", "UNLOAD", "x"],
        &["MODULE", "LIST"],
        &["CONFIG", "SET", "dir", "/tmp"],
        &["CONFIG", "SET", "dbfilename", "x.rdb"],
        &["CONFIG", "GET", "enable-module-command"],
        &["CONFIG", "GET", "enable-protected-configs"],
        &["CONFIG", "GET", "protected-mode"],
    ] {
        let a = ours.command(args);
        let b = theirs.command(args);
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "replies differ for {args:?}"
        );
    }
    assert!(ours
        .command(&["MODULE", "LOAD", "/x.so"])
        .starts_with(b"-ERR MODULE command not allowed."));
    theirs.command(&["MODULE", "LOAD", "/x.so"]);
    // Refused before running, as Redis's processCommand: a rejected call,
    // and inside MULTI the transaction is discarded.
    for args in [
        &["MULTI"][..],
        &["DEBUG", "SLEEP", "0"],
        &["SET", "k", "v"],
        &["EXEC"],
        &["EXISTS", "k"],
    ] {
        let a = ours.command(args);
        let b = theirs.command(args);
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "replies differ for {args:?}"
        );
    }
    let stats = |client: &mut RawClient| {
        let info = String::from_utf8_lossy(&client.command(&["INFO", "commandstats"])).into_owned();
        info.lines()
            .filter(|l| l.starts_with("cmdstat_debug:") || l.starts_with("cmdstat_module|load:"))
            .map(|l| {
                l.split(",usec=").next().unwrap_or("").to_string()
                    + &l[l.find(",rejected_calls").unwrap_or(l.len())..]
            })
            .collect::<std::collections::BTreeSet<String>>()
    };
    let ours_stats = stats(&mut ours);
    assert_eq!(ours_stats, stats(&mut theirs));
    assert!(
        ours_stats.contains("cmdstat_debug:calls=0,rejected_calls=2,failed_calls=0"),
        "{ours_stats:?}"
    );
}

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect()
}

fn field<'v>(line: &'v serde_json::Value, name: &str) -> &'v str {
    line[name].as_str().unwrap_or("")
}

#[test]
fn audit_trail_records_admin_commands_without_their_arguments() {
    let dir = std::env::temp_dir().join(format!("larder-audit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.log");
    let path_text = path.to_str().unwrap().to_string();
    let server = TestServer::with_config(|c| {
        c.set("requirepass", "hunter2-secret").unwrap();
        c.set("audit-log-file", &path_text).unwrap();
    });
    let mut client = server.raw();
    assert!(client
        .command(&["AUTH", "wrong-guess"])
        .starts_with(b"-WRONGPASS"));
    // Each line is in the file by the time the reply arrives.
    assert_eq!(audit_lines(&path).len(), 1);
    assert_eq!(client.command(&["AUTH", "hunter2-secret"]), b"+OK\r\n");
    client.command(&["SET", "k", "v"]);
    client.command(&["GET", "k"]);
    client.command(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    client.command(&["CONFIG", "SET", "no-such-setting", "1"]);
    client.command(&["FLUSHDB"]);
    client.command(&["FLUSHALL", "ASYNC"]);
    client.command(&["SCRIPT", "LOAD", "return 'script-body'"]);
    client.command(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=auditlib\nredis.register_function('f', function() return 1 end)",
    ]);
    client.command(&["CLIENT", "KILL", "ID", "999999"]);
    client.command(&["WRITEBEHIND", "FLUSH"]);
    let mut other = server.raw();
    assert!(other
        .command(&["HELLO", "3", "AUTH", "default", "hunter2-secret"])
        .starts_with(b"%"));
    let lines = audit_lines(&path);
    let summary: Vec<String> = lines
        .iter()
        .map(|line| {
            format!(
                "{} {} {}",
                field(line, "command"),
                field(line, "subcommand"),
                field(line, "result")
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "auth  WRONGPASS",
            "auth  ok",
            "config set ok",
            "config set ERR",
            "flushdb  ok",
            "flushall  ok",
            "script load ok",
            "function load ok",
            "client kill ok",
            "writebehind flush ERR",
            "hello  ok",
        ]
    );
    for line in &lines {
        assert_eq!(field(line, "user"), "default");
        assert!(field(line, "client_addr").starts_with("127.0.0.1:"));
        assert!(line["client_id"].as_u64().is_some());
        let time = field(line, "time");
        assert!(
            time.len() == 24 && time.ends_with('Z') && &time[10..11] == "T",
            "{time}"
        );
    }
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        "hunter2",
        "wrong-guess",
        "allkeys-lru",
        "script-body",
        "auditlib",
        "999999",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the audit log");
    }
    // Off: the switch itself is the last line, then nothing more.
    assert_eq!(
        client.command(&["CONFIG", "SET", "audit-log-file", ""]),
        b"+OK\r\n"
    );
    client.command(&["FLUSHALL"]);
    let lines = audit_lines(&path);
    assert_eq!(lines.len(), 12);
    assert_eq!(field(&lines[11], "command"), "config");
    // On again, in another file, through CONFIG SET; SHUTDOWN is recorded.
    let second = dir.join("second.log");
    let reply = client.command(&["CONFIG", "SET", "audit-log-file", second.to_str().unwrap()]);
    assert_eq!(reply, b"+OK\r\n");
    let refused = client.command(&["CONFIG", "SET", "audit-log-file", "/nonexistent-dir/a.log"]);
    assert!(refused
        .starts_with(b"-ERR CONFIG SET failed (possibly related to argument 'audit-log-file')"));
    // Rotation: the file moved away, the same path set again.
    let rotated = dir.join("second.log.1");
    std::fs::rename(&second, &rotated).unwrap();
    let reply = client.command(&["CONFIG", "SET", "audit-log-file", second.to_str().unwrap()]);
    assert_eq!(reply, b"+OK\r\n");
    let rotated_commands: Vec<String> = audit_lines(&rotated)
        .iter()
        .map(|l| field(l, "command").to_string())
        .collect();
    assert_eq!(rotated_commands, ["config", "config"]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&second).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    client.send(&encode_command(&[b"SHUTDOWN"]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !audit_lines(&second)
        .iter()
        .any(|l| field(l, "command") == "shutdown")
    {
        assert!(Instant::now() < deadline, "SHUTDOWN not recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    let commands: Vec<String> = audit_lines(&second)
        .iter()
        .map(|l| field(l, "command").to_string())
        .collect();
    assert_eq!(commands, ["config", "shutdown"]);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Debian's stock redis.conf (Redis 7.0) loads, with its security
/// directives, and a server starts from it (port and files moved aside).
#[test]
fn stock_redis_conf_with_security_directives_starts() {
    let stock = std::fs::read_to_string("/etc/redis/redis.conf").unwrap_or_default();
    if stock.is_empty() {
        eprintln!("no /etc/redis/redis.conf: checking the added directives only");
    }
    let socket = socket_path("stock");
    let extra = format!(
        "\nprotected-mode yes\nrename-command CONFIG \"\"\nrename-command FLUSHDB \"wipe-db\"\nunixsocket {}\nunixsocketperm 770\nenable-debug-command local\nenable-protected-configs no\nenable-module-command no\n",
        socket.display()
    );
    let mut config = Config::default();
    config
        .load_str(&format!("{stock}{extra}"))
        .expect("the stock file loads");
    config.port = 0;
    config.logfile = String::new();
    config.dir = std::env::temp_dir().display().to_string();
    for name in ["daemonize", "pidfile"] {
        let _ = config.set(name, if name == "daemonize" { "no" } else { "" });
    }
    assert!(config.protected_mode);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(Server::start(config)).expect("starts");
    let mut client = RawClient::connect(server.local_addr());
    assert!(client
        .command(&["CONFIG", "GET", "port"])
        .starts_with(b"-ERR unknown command 'CONFIG'"));
    assert_eq!(client.command(&["WIPE-DB"]), b"+OK\r\n");
    // The new name is the command for everything before dispatch too:
    // CLIENT PAUSE WRITE holds it as it holds FLUSHDB.
    let mut pauser = RawClient::connect(server.local_addr());
    assert_eq!(
        pauser.command(&["CLIENT", "PAUSE", "300", "WRITE"]),
        b"+OK\r\n"
    );
    let started = Instant::now();
    assert_eq!(client.command(&["wipe-db"]), b"+OK\r\n");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "a renamed write ran during CLIENT PAUSE WRITE"
    );
    let mut unix = UnixStream::connect(&socket).expect("unix socket");
    assert_eq!(unix_command(&mut unix, &["PING"]), "+PONG\r\n");
    runtime.block_on(server.shutdown());
    assert!(!socket.exists());
}
