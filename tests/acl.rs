//! ACL users and permissions, against a real redis-server 7.0.
//!
//! Where Redis's output depends on its command dictionary's order (the
//! single commands after the categories in ACL GETUSER/LIST, ACL CAT
//! <category>), the rules used here produce one command at most, or the
//! replies are compared as sets.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Clients, Pair, RawClient, TestServer};

fn text(reply: Vec<u8>) -> String {
    String::from_utf8_lossy(&reply).into_owned()
}

/// Redis's and Larder's replies with the values that must differ (ages,
/// client details) blanked out.
fn normalise_log(reply: &str) -> String {
    let mut lines: Vec<String> = reply.split("\r\n").map(str::to_owned).collect();
    let mut i = 0;
    while i + 2 < lines.len() {
        if lines[i] == "age-seconds" || lines[i] == "client-info" {
            lines[i + 1] = "$?".into();
            lines[i + 2] = "?".into();
        }
        i += 1;
    }
    lines.join("|")
}

#[test]
fn users_are_created_described_listed_and_deleted_as_redis() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        ACL SETUSER alice on >pw ~foo* %R~bar* %W~w* &ch* +@hash -hdel
        ACL GETUSER alice
        ACL SETUSER alice (~x* +get) (%RW~y* &z +@string)
        ACL GETUSER alice
        ACL LIST
        ACL USERS
        ACL SETUSER bob
        ACL GETUSER bob
        ACL SETUSER bob on nopass allkeys allchannels allcommands -get
        ACL GETUSER bob
        ACL SETUSER bob resetkeys resetchannels nocommands +@hash -hset
        ACL GETUSER bob
        ACL SETUSER bob nocommands +client -client|kill
        ACL GETUSER bob
        ACL SETUSER bob +@all -@dangerous
        ACL GETUSER bob
        ACL SETUSER bob reset
        ACL GETUSER bob
        ACL SETUSER bob clearselectors >a >b <a
        ACL GETUSER bob
        ACL SETUSER bob #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
        ACL GETUSER bob
        ACL SETUSER bob !5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 resetpass
        ACL GETUSER bob
        ACL SETUSER bob ~a* ~a* %R~b %W~b
        ACL GETUSER bob
        ACL GETUSER default
        ACL GETUSER nobody
        ACL USERS
        ACL DELUSER bob nobody
        ACL DELUSER default
        ACL USERS
        ACL WHOAMI
        ACL CAT
        ACL CAT nope
        ACL GENPASS 0
        ACL GENPASS 4097
        ACL GENPASS x
        ACL HELP
        ACL
        ACL NOPE
        ",
    );
    // Generated passwords: 64 hex digits by default, bits/4 rounded up.
    for (args, len) in [
        (&["ACL", "GENPASS"][..], 64),
        (&["ACL", "GENPASS", "5"][..], 2),
    ] {
        let reply = text(c.ours.command(args));
        let body = reply.lines().nth(1).unwrap_or_default();
        assert_eq!(body.len(), len, "{reply}");
        assert!(body.bytes().all(|b| b.is_ascii_hexdigit()), "{reply}");
    }
}

#[test]
fn setuser_errors_are_redis_texts_and_change_nothing() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        ACL SETUSER x +nope
        ACL SETUSER x +@nope
        ACL SETUSER x foo
        ACL SETUSER x %X~a
        ACL SETUSER x %~a
        ACL SETUSER x #abc
        ACL SETUSER x <nope
        ACL SETUSER x !0000000000000000000000000000000000000000000000000000000000000000
        ACL SETUSER x (~a
        ACL SETUSER x (~a +get
        ACL SETUSER x +client|id|x
        ACL SETUSER x -select|0
        ACL SETUSER x allkeys ~a
        ACL SETUSER x allchannels &a
        ACL SETUSER x ~a allkeys
        ACL USERS
        ACL SETUSER x on >p +get ~k +nope
        ACL USERS
        ",
    );
}

#[test]
fn commands_keys_and_channels_are_refused_with_redis_texts() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.script(
        "
        ACL SETUSER bob on >pw ~foo* %R~r* %W~w* &ch* +get +set +publish +subscribe +psubscribe +exists +lmove +lpush +mget +getex +copy +acl
        SET r1 x
        RPUSH r2 a
        ",
    );
    let mut c = pair.clients();
    c.script(
        "
        AUTH bob pw
        GET foo1
        GET zz
        HGET foo a
        SET r1 x
        GET r1
        SET w1 y
        GET w1
        SET w1 y GET
        SET foo1 y GET
        EXISTS w1
        MGET foo1 r1 w1
        LMOVE r2 w2 LEFT RIGHT
        LMOVE w2 r2 LEFT RIGHT
        GETEX r1
        COPY r1 w3
        COPY w1 r3
        PUBLISH ch1 x
        PUBLISH zz x
        ACL WHOAMI
        ACL DRYRUN bob get zz
        ACL DRYRUN bob get foo
        ACL DRYRUN bob hget foo a
        ACL DRYRUN bob publish zz x
        ACL DRYRUN bob publish ch2 x
        ACL DRYRUN bob subscribe ch1 zz
        ACL DRYRUN bob psubscribe ch*
        ACL DRYRUN bob psubscribe c*
        ACL DRYRUN nob get foo1
        ACL DRYRUN bob nocmd foo1
        ACL DRYRUN bob get
        ACL DRYRUN default hget foo a
        ACL DRYRUN bob client id
        ACL SETUSER shard on nopass ~k* &ch* +spublish +ssubscribe +xread +lmove
        ACL DRYRUN shard spublish ch1 x
        ACL DRYRUN shard spublish zz x
        ACL DRYRUN shard ssubscribe ch1 zz
        ACL DRYRUN shard xread STREAMS k1 0
        ACL DRYRUN shard xread COUNT 1 STREAMS k1 zz 0 0
        ACL DRYRUN shard lmove k1 zz LEFT LEFT
        PSUBSCRIBE c*
        SUBSCRIBE ch1 zz
        ",
    );
    // INFO counts the refusals by kind, as Redis 7.2 does (7.0 has no
    // such fields): those above, DRYRUN's not counted.
    let ours: Vec<String> = text(admin.ours.command(&["INFO", "stats"]))
        .lines()
        .filter(|l| l.starts_with("acl_access_denied"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        ours,
        [
            "acl_access_denied_auth:0",
            "acl_access_denied_cmd:1",
            "acl_access_denied_key:9",
            "acl_access_denied_channel:3"
        ]
    );
    // Subscriptions that are allowed: the confirmations match.
    c.same(&["PSUBSCRIBE", "ch*"]);
    c.same(&["SUBSCRIBE", "ch1", "ch2"]);
}

#[test]
fn selectors_allow_what_the_root_refuses() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.same(&[
        "ACL",
        "SETUSER",
        "sel",
        "on",
        "nopass",
        "+get",
        "~a*",
        "(+set ~b*)",
        "(%R~c* +@read)",
    ]);
    let mut c = pair.clients();
    c.script(
        "
        AUTH sel any
        GET a1
        SET b1 x
        GET b1
        SET a1 x
        GET c1
        HGET c1 f
        SET c1 x
        ACL DRYRUN sel set a1 x
        ACL DRYRUN sel hget zz f
        ",
    );
}

#[test]
fn auth_and_hello_flows() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.script(
        "
        AUTH x
        AUTH default x
        ACL SETUSER carol on >secret ~* &* +@all
        ACL SETUSER dan off >secret ~* +@all
        ",
    );
    let mut c = pair.clients();
    c.script(
        "
        AUTH carol wrong
        AUTH nobody secret
        AUTH dan secret
        HELLO 2 AUTH carol wrong
        AUTH carol secret
        ACL WHOAMI
        RESET
        ACL WHOAMI
        ",
    );
    // HELLO AUTH switches the user (the HELLO maps differ in details).
    for client in [&mut c.ours, &mut c.theirs] {
        let reply = text(client.command(&["HELLO", "2", "AUTH", "carol", "secret"]));
        assert!(reply.starts_with("*14\r\n"), "{reply}");
    }
    c.same(&["ACL", "WHOAMI"]);
    let info = text(c.ours.command(&["CLIENT", "INFO"]));
    assert!(info.contains(" user=carol "), "{info}");

    // requirepass is the default user's password.
    admin.script(
        "
        CONFIG SET requirepass sesame
        ACL GETUSER default
        ",
    );
    let mut fresh = pair.clients();
    fresh.script(
        "
        GET a
        AUTH wrong
        AUTH sesame
        GET a
        ACL WHOAMI
        ",
    );
    let mut fresh = pair.clients();
    fresh.script(
        "
        HELLO 2 AUTH default wrong
        AUTH default sesame
        CONFIG SET requirepass \"\"
        ACL GETUSER default
        ",
    );
    let mut fresh = pair.clients();
    fresh.same(&["AUTH", "x"]);
    fresh.same(&["GET", "a"]);
}

#[test]
fn transactions_are_checked_when_queued_and_when_run() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.same(&["ACL", "SETUSER", "tx", "on", "nopass", "~a*", "&*", "+@all"]);
    let mut c = pair.clients();
    c.script(
        "
        AUTH tx x
        MULTI
        GET b
        GET a1
        EXEC
        MULTI
        GET a1
        SET a2 x
        PUBLISH c x
        ",
    );
    admin.same(&[
        "ACL",
        "SETUSER",
        "tx",
        "-get",
        "resetchannels",
        "resetkeys",
        "~a2",
    ]);
    c.same(&["EXEC"]);
    admin.same(&["ACL", "LOG", "RESET"]);
}

#[test]
fn scripts_run_with_the_callers_permissions() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.same(&[
        "ACL", "SETUSER", "lua", "on", "nopass", "~a*", "+eval", "+get", "+publish",
    ]);
    let mut c = pair.clients();
    c.same(&["AUTH", "lua", "x"]);
    // The error names the script's SHA1, the same on both.
    c.same(&["EVAL", "return redis.call('get','zz')", "0"]);
    c.same(&["EVAL", "return redis.call('hget','a','f')", "0"]);
    c.same(&["EVAL", "return redis.call('publish','ch','m')", "0"]);
    c.same(&["EVAL", "return redis.call('get','a1')", "0"]);
    c.same(&["EVAL", "return redis.call('get',KEYS[1])", "1", "zz"]);
    let ours = normalise_log(&text(admin.ours.command(&["ACL", "LOG"])));
    let theirs = normalise_log(&text(admin.theirs.command(&["ACL", "LOG"])));
    assert_eq!(ours, theirs);
}

#[test]
fn acl_log_entries_have_redis_fields_and_grouping() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.script(
        "
        ACL SETUSER logged on >pw ~k* &c* +get +publish
        ACL LOG x
        ACL LOG -1
        ACL LOG 1 2
        ",
    );
    let mut c = pair.clients();
    c.script(
        "
        AUTH logged bad
        AUTH logged pw
        GET zz
        GET zz
        HGET k f
        PUBLISH other x
        MULTI
        GET zz
        ",
    );
    for count in ["10", "2", "0"] {
        let ours = normalise_log(&text(admin.ours.command(&["ACL", "LOG", count])));
        let theirs = normalise_log(&text(admin.theirs.command(&["ACL", "LOG", count])));
        assert_eq!(ours, theirs, "ACL LOG {count}");
    }
    let ours = text(admin.ours.command(&["ACL", "LOG", "1"]));
    assert!(
        ours.contains("user=logged") && ours.contains("cmd=get"),
        "{ours}"
    );
    admin.same(&["ACL", "LOG", "RESET"]);
    admin.same(&["ACL", "LOG"]);
    // acllog-max-len trims the log.
    admin.same(&["CONFIG", "SET", "acllog-max-len", "1"]);
    c.same(&["DISCARD"]);
    c.same(&["GET", "zz1"]);
    c.same(&["GET", "zz2"]);
    let ours = normalise_log(&text(admin.ours.command(&["ACL", "LOG"])));
    let theirs = normalise_log(&text(admin.theirs.command(&["ACL", "LOG"])));
    assert_eq!(ours, theirs);
}

#[test]
fn client_kill_user_and_deluser_disconnect() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.same(&["ACL", "SETUSER", "k", "on", "nopass", "+@all", "~*"]);
    let mut victim = pair.clients();
    victim.same(&["AUTH", "k", "x"]);
    admin.same(&["CLIENT", "KILL", "USER", "nobody"]);
    admin.same(&["CLIENT", "KILL", "USER", "k"]);
    let mut victim = pair.clients();
    victim.same(&["AUTH", "k", "x"]);
    admin.same(&["ACL", "DELUSER", "k"]);
    for client in [&mut victim.ours, &mut victim.theirs] {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !client.is_closed() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(client.is_closed());
    }
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("larder-acl-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A redis-server started with `--aclfile`.
struct RedisWithAclFile {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl RedisWithAclFile {
    fn start(path: &std::path::Path) -> Self {
        let port = common::free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--aclfile", path.to_str().unwrap_or_default()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let addr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(stream) = std::net::TcpStream::connect(addr) {
                drop(stream);
                break;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisWithAclFile { child, addr }
    }
}

impl Drop for RedisWithAclFile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn acl_save_and_load_round_trip_through_a_file_redis_reads() {
    let dir = TempDir::new();
    let ours_path = dir.0.join("larder.acl");
    let theirs_path = dir.0.join("redis.acl");
    std::fs::write(&ours_path, "").unwrap();
    std::fs::write(&theirs_path, "").unwrap();
    let larder = TestServer::with_config(|config| {
        config
            .load_str(&format!("aclfile {}", ours_path.display()))
            .expect("aclfile");
    });
    let redis = RedisWithAclFile::start(&theirs_path);
    let mut c = Clients {
        ours: larder.raw(),
        theirs: RawClient::connect(redis.addr),
    };
    c.script(
        "
        ACL SETUSER alice on >pw ~foo* %R~bar* &ch* +@hash -hdel (~x* +get)
        ACL SETUSER bob off nopass allkeys +@all -@dangerous
        ACL SAVE
        ACL SETUSER alice off
        ACL DELUSER bob
        ACL LOAD
        ACL LIST
        ACL GETUSER alice
        ",
    );
    let saved = std::fs::read_to_string(&ours_path).unwrap();
    assert!(saved.contains("user alice on #"), "{saved}");
    // Each server loads the other's file and lists the same users.
    let theirs_saved = std::fs::read_to_string(&theirs_path).unwrap();
    std::fs::write(&ours_path, &theirs_saved).unwrap();
    std::fs::write(&theirs_path, &saved).unwrap();
    // As Redis 7.0, ACL LOAD disconnects the clients of every user but
    // the default one.
    let mut alice = Clients {
        ours: larder.raw(),
        theirs: RawClient::connect(redis.addr),
    };
    alice.same(&["AUTH", "alice", "pw"]);
    let mut anonymous = Clients {
        ours: larder.raw(),
        theirs: RawClient::connect(redis.addr),
    };
    c.script(
        "
        ACL LOAD
        ACL LIST
        ",
    );
    for client in [&mut alice.ours, &mut alice.theirs] {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !client.is_closed() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(client.is_closed());
    }
    anonymous.same(&["PING"]);
    // A bad file is refused whole, with the line and reason.
    std::fs::write(
        &ours_path,
        "user ok on nopass\nuser bad on +nope\nnonsense\n",
    )
    .unwrap();
    std::fs::write(
        &theirs_path,
        "user ok on nopass\nuser bad on +nope\nnonsense\n",
    )
    .unwrap();
    let ours = text(c.ours.command(&["ACL", "LOAD"]));
    let theirs = text(c.theirs.command(&["ACL", "LOAD"]));
    let strip = |s: &str, path: &std::path::Path| s.replace(path.to_str().unwrap(), "PATH");
    assert_eq!(strip(&ours, &ours_path), strip(&theirs, &theirs_path));
    c.same(&["ACL", "USERS"]);
}

#[test]
fn acl_save_without_a_file_and_user_lines_in_the_config() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        ACL SAVE
        ACL LOAD
        ",
    );
    let larder = TestServer::with_config(|config| {
        config
            .load_str("user app on >apppw ~app:* +@read +@write\nuser default on nopass ~* &* +@all -flushall")
            .expect("user lines");
    });
    let mut client = larder.raw();
    assert_eq!(
        text(client.command(&["ACL", "USERS"])),
        "*2\r\n$3\r\napp\r\n$7\r\ndefault\r\n"
    );
    assert_eq!(
        text(client.command(&["FLUSHALL"])),
        "-NOPERM this user has no permissions to run the 'flushall' command\r\n"
    );
    assert_eq!(text(client.command(&["AUTH", "app", "apppw"])), "+OK\r\n");
    assert_eq!(text(client.command(&["SET", "app:1", "v"])), "+OK\r\n");
    assert!(text(client.command(&["SET", "other", "v"])).starts_with("-NOPERM"));
    // Users in both the config file and an ACL file: refused at start.
    let mut config = larder::Config::default();
    config
        .load_str("user app on\naclfile /nonexistent")
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert!(runtime.block_on(larder::Server::bind(config)).is_err());
}

#[test]
fn config_rewrite_writes_the_users_back() {
    let dir = TempDir::new();
    let path = dir.0.join("larder.conf");
    std::fs::write(&path, "port 0\nuser app on >apppw ~app:* +@read\n").unwrap();
    let larder = TestServer::with_config(|config| config.load_file(&path).expect("config"));
    let _ = larder.shared.config_file.set(path.clone());
    let mut client = larder.raw();
    let ok = "+OK\r\n";
    assert_eq!(
        text(client.command(&["ACL", "SETUSER", "bob", "on", "nopass", "(~b* +get)"])),
        ok
    );
    assert_eq!(text(client.command(&["CONFIG", "REWRITE"])), ok);
    let listed = text(client.command(&["ACL", "LIST"]));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("user app on #"), "{written}");
    assert!(
        written.contains("user default on nopass ~* &* +@all"),
        "{written}"
    );
    // The rewritten file starts a server with the same users.
    let again = TestServer::with_config(|config| config.load_file(&path).expect("rewritten"));
    assert_eq!(text(again.raw().command(&["ACL", "LIST"])), listed);
}

#[test]
fn the_slow_log_hides_acl_setuser_arguments() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        CONFIG SET slowlog-log-slower-than 0
        SLOWLOG RESET
        ",
    );
    c.same(&["ACL", "SETUSER", "zed", "on", ">secret"]);
    let entry = |client: &mut RawClient| {
        let reply = text(client.command(&["SLOWLOG", "GET", "1"]));
        reply
            .split("\r\n")
            .skip(6)
            .take(11)
            .collect::<Vec<_>>()
            .join("|")
    };
    let ours = entry(&mut c.ours);
    assert_eq!(ours, entry(&mut c.theirs));
    assert!(
        ours.contains("(redacted)") && !ours.contains("secret"),
        "{ours}"
    );
}

#[test]
fn revoking_a_channel_disconnects_its_subscribers() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.same(&[
        "ACL", "SETUSER", "sub", "on", "nopass", "&news*", "&alerts", "+@all",
    ]);
    let mut kept = pair.clients();
    kept.same(&["AUTH", "sub", "x"]);
    kept.same(&["SUBSCRIBE", "alerts"]);
    let mut dropped = pair.clients();
    dropped.same(&["AUTH", "sub", "x"]);
    dropped.same(&["PSUBSCRIBE", "news*"]);
    admin.same(&["ACL", "SETUSER", "sub", "resetchannels", "&alerts"]);
    for client in [&mut dropped.ours, &mut dropped.theirs] {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !client.is_closed() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(client.is_closed());
    }
    kept.same(&["PING"]);
}

#[test]
fn acl_pubsub_default_decides_new_users_channels() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        CONFIG SET acl-pubsub-default allchannels
        ACL SETUSER fresh
        ACL GETUSER fresh
        ACL SETUSER fresh resetchannels &a reset
        ACL GETUSER fresh
        CONFIG SET acl-pubsub-default resetchannels
        ACL SETUSER other
        ACL LIST
        ",
    );
}

#[test]
fn first_arg_rules_allow_a_command_with_that_first_argument_only() {
    let pair = Pair::start();
    let mut admin = pair.clients();
    admin.script(
        "
        ACL SETUSER fa on nopass ~* +select|0 +select|1
        ACL GETUSER fa
        ACL LIST => *2|$34|user default on nopass ~* &* +@all|$60|user fa on nopass ~* resetchannels -@all +select|0 +select|1|
        ACL SETUSER fa +SELECT|1 +select|A +select|a
        ACL GETUSER fa
        ACL DRYRUN fa select 0
        ACL DRYRUN fa select a
        ACL DRYRUN fa select 2
        ACL DRYRUN fa select
        ACL SETUSER fa -select|0 => -ERR Error in ACL SETUSER modifier '-select|0': Unknown command or category name in ACL|
        ACL SETUSER fa +select|
        ACL SETUSER fa +select|0|x
        ACL SETUSER fa +config|get|x
        ACL SETUSER fa -config|get|x
        ACL SETUSER fa -config|
        ACL SETUSER fa +nosuch|x
        ACL GETUSER fa
        ACL SETUSER fa2 on nopass +ping|x (+select|1 ~a*)
        ACL LIST
        ACL DRYRUN fa2 ping
        ACL DRYRUN fa2 ping X
        ACL DRYRUN fa2 select 1
        ACL DRYRUN fa2 select 0
        ACL SETUSER getx on nopass ~* +get|x
        ACL GETUSER getx
        ACL DRYRUN getx get x
        ACL DRYRUN getx get y
        ACL SETUSER cfg on nopass +config|get
        ACL GETUSER cfg
        ACL DRYRUN cfg config get maxmemory
        ACL DRYRUN cfg config set maxmemory 0
        ACL LOG RESET
        ",
    );
    let mut c = pair.clients();
    c.script(
        "
        AUTH fa x
        SELECT 0 => +OK|
        SELECT 1
        SELECT 2 => -NOPERM this user has no permissions to run the 'select' command|
        SELECT a
        SELECT
        PING
        MULTI
        ",
    );
    let ours = normalise_log(&text(admin.ours.command(&["ACL", "LOG"])));
    let theirs = normalise_log(&text(admin.theirs.command(&["ACL", "LOG"])));
    assert_eq!(ours, theirs);
    assert!(ours.contains("select"), "{ours}");
    // A whole-command rule, a category holding the command, or +@all /
    // -@all drop its first-arg rules.
    admin.script(
        "
        ACL SETUSER fa +select
        ACL GETUSER fa
        ACL SETUSER fa -select +select|5
        ACL GETUSER fa
        ACL SETUSER fa -select
        ACL GETUSER fa
        ACL SETUSER fa +select|5 -@keyspace
        ACL GETUSER fa
        ACL SETUSER fa +@connection
        ACL GETUSER fa
        ACL SETUSER fa -@all +select|5 -@connection
        ACL GETUSER fa
        ACL SETUSER fa +select|5 +@all -select +select|7
        ACL GETUSER fa
        ACL SETUSER fa +select|5 allcommands
        ACL GETUSER fa
        ACL SETUSER fa +select|5 nocommands
        ACL GETUSER fa
        ACL SETUSER fa +select|5 reset
        ACL GETUSER fa
        ",
    );
    admin.same(&["ACL", "SETUSER", "fa", "on", "nopass", "+select|9"]);
    c.same(&["SELECT", "1"]);
    c.same(&["SELECT", "9"]);
}

#[test]
fn first_arg_rules_survive_acl_save_and_load() {
    let dir = TempDir::new();
    let ours_path = dir.0.join("larder.acl");
    let theirs_path = dir.0.join("redis.acl");
    std::fs::write(&ours_path, "").unwrap();
    std::fs::write(&theirs_path, "").unwrap();
    let larder = TestServer::with_config(|config| {
        config
            .load_str(&format!("aclfile {}", ours_path.display()))
            .expect("aclfile");
    });
    let redis = RedisWithAclFile::start(&theirs_path);
    let mut c = Clients {
        ours: larder.raw(),
        theirs: RawClient::connect(redis.addr),
    };
    c.script(
        "
        ACL SETUSER fa on nopass ~* +select|0 +select|3 (+select|1)
        ACL SAVE
        ACL SETUSER fa -@all
        ACL LOAD
        ACL LIST
        ",
    );
    let saved = std::fs::read_to_string(&ours_path).unwrap();
    assert!(
        saved.contains("-@all +select|0 +select|3 (resetchannels -@all +select|1)"),
        "{saved}"
    );
    // Each server loads the other's file.
    let theirs_saved = std::fs::read_to_string(&theirs_path).unwrap();
    std::fs::write(&ours_path, &theirs_saved).unwrap();
    std::fs::write(&theirs_path, &saved).unwrap();
    c.script(
        "
        ACL LOAD
        ACL LIST
        ACL DRYRUN fa select 3
        ACL DRYRUN fa select 1
        ACL DRYRUN fa select 2
        ",
    );
}
