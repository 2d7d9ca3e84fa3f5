//! Connection and server commands through real connections, compared byte
//! for byte with a real redis-server where the replies can be equal, and by
//! shape where they legitimately differ (ids, addresses, INFO contents,
//! versions): PING, ECHO, AUTH, HELLO, SELECT, QUIT, RESET, CLIENT, TIME,
//! DBSIZE, INFO, CONFIG, COMMAND, SHUTDOWN.

mod common;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Clients, Pair, RawClient, TestServer};

/// Both servers with `requirepass secret`, set through CONFIG SET.
fn pair_with_password() -> Pair {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.same(&["CONFIG", "SET", "requirepass", "secret"]);
    pair
}

/// Sends `args` to both; returns both replies, parsed.
trait BothReplies {
    fn both(&mut self, args: &[&str]) -> (Resp, Resp);
}

impl BothReplies for Clients {
    fn both(&mut self, args: &[&str]) -> (Resp, Resp) {
        (
            parse(&self.ours.command(args)),
            parse(&self.theirs.command(args)),
        )
    }
}

/// A decoded reply, for assertions on shape.
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

impl Resp {
    fn text(&self) -> String {
        match self {
            Resp::Simple(s) | Resp::Error(s) => s.clone(),
            Resp::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Resp::Int(n) => n.to_string(),
            other => panic!("not a string: {other:?}"),
        }
    }

    fn items(&self) -> &[Resp] {
        match self {
            Resp::Array(Some(items)) => items,
            other => panic!("not an array: {other:?}"),
        }
    }

    fn int(&self) -> i64 {
        match self {
            Resp::Int(n) => *n,
            other => panic!("not an integer: {other:?}"),
        }
    }
}

fn parse(buf: &[u8]) -> Resp {
    let (value, used) = parse_at(buf);
    assert_eq!(used, buf.len(), "trailing bytes after a reply");
    value
}

fn parse_at(buf: &[u8]) -> (Resp, usize) {
    let line_end = buf
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a complete line");
    let line = String::from_utf8_lossy(&buf[1..line_end]).into_owned();
    let next = line_end + 2;
    let count = || line.parse::<i64>().expect("a length");
    match buf[0] {
        b'+' => (Resp::Simple(line), next),
        b'-' => (Resp::Error(line), next),
        b':' => (Resp::Int(count()), next),
        b'_' => (Resp::Bulk(None), next),
        b'$' | b'=' => {
            if count() < 0 {
                return (Resp::Bulk(None), next);
            }
            let len = count() as usize;
            let mut data = buf[next..next + len].to_vec();
            if buf[0] == b'=' {
                data.drain(..4); // "txt:"
            }
            (Resp::Bulk(Some(data)), next + len + 2)
        }
        b'*' | b'~' | b'%' => {
            if count() < 0 {
                return (Resp::Array(None), next);
            }
            let n = count() as usize * if buf[0] == b'%' { 2 } else { 1 };
            let mut items = Vec::with_capacity(n);
            let mut at = next;
            for _ in 0..n {
                let (item, used) = parse_at(&buf[at..]);
                items.push(item);
                at += used;
            }
            (Resp::Array(Some(items)), at)
        }
        other => panic!("unexpected reply type {:?}", other as char),
    }
}

/// A flat array of name/value bulks (CONFIG GET) as a sorted map: Redis
/// returns them in hash order.
fn pairs(reply: &Resp) -> BTreeMap<String, String> {
    reply
        .items()
        .chunks(2)
        .map(|pair| (pair[0].text(), pair[1].text()))
        .collect()
}

/// `key=value` fields of a CLIENT LIST/INFO line.
fn client_fields(line: &str) -> Vec<(String, String)> {
    line.split(' ')
        .map(|field| {
            let (k, v) = field.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn field(line: &str, name: &str) -> String {
    client_fields(line)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

fn client_info(client: &mut RawClient) -> String {
    let reply = parse(&client.command(&["CLIENT", "INFO"])).text();
    assert!(reply.ends_with('\n'));
    reply.trim_end().to_string()
}

fn larder_hello_noauth() -> &'static str {
    // Redis 7.2's wording (7.0 says "the HELLO AUTH <user> <pass> option").
    "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> \
     AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
     version at the same time\r\n"
}

// ------------------------------------------------------------- connection

#[test]
fn ping_echo_select_match_redis() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        PING
        ping hello
        PING a b
        ECHO hi
        ECHO
        ECHO a b
        SELECT 15
        SET k in-15
        GET k
        SELECT 0
        GET k
        SELECT 16
        SELECT -1
        SELECT 1.5
        SELECT x
        SELECT 2147483648
        SELECT -2147483649
        SELECT 99999999999999999999
        SELECT
        SELECT 1 2
        GET k
        ",
    );
    c.same(&["ECHO", ""]);
    c.same(&["PING", ""]);
    c.same(&["ECHO", "with\r\nnewline"]);
}

#[test]
fn quit_replies_ok_then_closes() {
    let pair = Pair::start();
    for args in [&["QUIT"][..], &["quit", "extra", "args"]] {
        let mut c = pair.clients();
        c.same(args);
        assert!(c.ours.is_closed());
        assert!(c.theirs.is_closed());
    }
    // QUIT inside MULTI runs at once.
    let mut c = pair.clients();
    c.same(&["MULTI"]);
    assert_eq!(c.same(&["QUIT"]), "+OK\r\n");
    assert!(c.ours.is_closed());
    assert!(c.theirs.is_closed());
}

#[test]
fn auth_without_a_password_configured() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        AUTH x
        AUTH default x
        AUTH nobody x
        AUTH a b c
        AUTH
        PING
        ",
    );
}

#[test]
fn auth_with_requirepass_matches_redis() {
    let pair = pair_with_password();
    let mut c = pair.clients();
    c.script(
        "
        PING
        GET a
        SET a 1
        NOSUCH command
        GET
        CLIENT SETNAME x
        MULTI
        AUTH wrong
        AUTH default wrong
        AUTH nobody secret
        AUTH DEFAULT secret
        AUTH a b c
        GET a
        AUTH secret
        PING
        SET a 1
        GET a
        AUTH wrong
        GET a
        ",
    );
    let mut c = pair.clients();
    c.same(&["AUTH", "default", "secret"]);
    c.same(&["GET", "a"]);
    // QUIT needs no authentication.
    let mut c = pair.clients();
    c.same(&["QUIT"]);
    assert!(c.ours.is_closed() && c.theirs.is_closed());
}

#[test]
fn hello_with_requirepass() {
    let pair = pair_with_password();
    let mut c = pair.clients();
    let noauth = c.ours.command(&["HELLO", "3"]);
    assert_eq!(String::from_utf8_lossy(&noauth), larder_hello_noauth());
    c.theirs.command(&["HELLO", "3"]);
    c.same(&["HELLO", "3", "AUTH", "default", "wrong"]);
    c.same(&["HELLO", "3", "AUTH", "nobody", "secret"]);
    c.same(&["GET", "a"]);
    let (ours, theirs) = c.both(&["HELLO", "3", "AUTH", "default", "secret", "SETNAME", "x"]);
    let ours = ours.items().to_vec();
    let theirs = theirs.items().to_vec();
    assert_eq!(ours.len(), 14);
    for i in (0..14).step_by(2) {
        assert_eq!(ours[i], theirs[i]);
        if !matches!(ours[i].text().as_str(), "version" | "id") {
            assert_eq!(ours[i + 1], theirs[i + 1], "{}", ours[i].text());
        }
    }
    assert_eq!(c.same(&["CLIENT", "GETNAME"]), "$1\r\nx\r\n");
    c.same(&["GET", "missing"]); // RESP3 null: "_"
                                 // RESET forgets the authentication.
    c.same(&["RESET"]);
    c.same(&["GET", "a"]);
    c.same(&["HELLO", "2", "AUTH", "default", "wrong"]);

    // The redis crate authenticates through the URL, in RESP2 and RESP3.
    let url = format!("redis://:secret@{}/", pair.larder.addr);
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let url = format!(
        "redis://default:secret@{}/?protocol=resp3",
        pair.larder.addr
    );
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let value: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(value, "v");
    let url = format!("redis://:wrong@{}/", pair.larder.addr);
    assert!(redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .is_err());
}

#[test]
fn requirepass_from_the_config() {
    let server = TestServer::with_config(|c| c.requirepass = Some("pw".into()));
    let mut raw = server.raw();
    assert_eq!(
        raw.command(&["PING"]),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(raw.command(&["AUTH", "pw"]), b"+OK\r\n");
    assert_eq!(raw.command(&["PING"]), b"+PONG\r\n");
    assert_eq!(
        raw.command(&["CONFIG", "GET", "requirepass"]),
        b"*2\r\n$11\r\nrequirepass\r\n$2\r\npw\r\n"
    );
    // Clearing the password lets new connections in.
    assert_eq!(
        raw.command(&["CONFIG", "SET", "requirepass", ""]),
        b"+OK\r\n"
    );
    assert_eq!(server.raw().command(&["PING"]), b"+PONG\r\n");
}

#[test]
fn reset_returns_the_connection_to_its_defaults() {
    let pair = Pair::start();
    let mut c = pair.clients();
    let mut other = pair.clients();
    c.same(&["WATCH", "w"]);
    c.same(&["SELECT", "3"]);
    c.same(&["CLIENT", "SETNAME", "named"]);
    c.same(&["CLIENT", "NO-EVICT", "on"]);
    c.ours.command(&["HELLO", "3"]);
    c.theirs.command(&["HELLO", "3"]);
    c.same(&["MULTI"]);
    c.same(&["SET", "queued", "1"]);
    assert_eq!(c.same(&["RESET"]), "+RESET\r\n");
    // Out of MULTI, queue dropped.
    c.same(&["EXEC"]);
    // RESP2 again, database 0.
    assert_eq!(c.same(&["GET", "queued"]), "$-1\r\n");
    c.same(&["SELECT", "3"]);
    c.same(&["GET", "queued"]);
    c.same(&["SELECT", "0"]);
    c.same(&["CLIENT", "GETNAME"]);
    // Unwatched: a change to w does not abort the next transaction.
    other.same(&["SET", "w", "changed"]);
    c.same(&["MULTI"]);
    c.same(&["PING"]);
    assert_eq!(c.same(&["EXEC"]), "*1\r\n+PONG\r\n");
    for client in [&mut c.ours, &mut c.theirs] {
        let info = client_info(client);
        assert_eq!(field(&info, "db"), "0");
        assert_eq!(field(&info, "multi"), "-1");
        assert_eq!(field(&info, "name"), "");
        // RESET keeps no-evict.
        assert_eq!(field(&info, "flags"), "e");
        assert_eq!(field(&info, "resp"), "2");
    }
    assert_eq!(field(&client_info(&mut c.ours), "watch"), "0");
}

// ------------------------------------------------------------- CLIENT

#[test]
fn client_errors_match_redis() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        CLIENT
        CLIENT FOO
        CLIENT foo bar baz
        CLIENT ID x
        CLIENT SETNAME
        CLIENT SETNAME a b
        CLIENT GETNAME x
        CLIENT INFO x
        CLIENT HELP x
        CLIENT LIST foo
        CLIENT LIST TYPE
        CLIENT LIST TYPE foo
        CLIENT LIST TYPE FOO
        CLIENT LIST ID
        CLIENT LIST ID x
        CLIENT LIST ID 1 x
        CLIENT LIST TYPE normal ID 1
        CLIENT LIST TYPE normal TYPE normal
        CLIENT KILL
        CLIENT KILL 1.2.3.4:5
        CLIENT KILL ID
        CLIENT KILL ID x
        CLIENT KILL ID 0
        CLIENT KILL ID -5
        CLIENT KILL ID 999999
        CLIENT KILL ADDR 1.2.3.4:5
        CLIENT KILL LADDR 1.2.3.4:5
        CLIENT KILL ADDR 1.2.3.4:5 SKIPME maybe
        CLIENT KILL ADDR 1.2.3.4:5 SKIPME
        CLIENT KILL FOO bar
        CLIENT KILL TYPE foo
        CLIENT KILL TYPE Pubsub
        CLIENT KILL TYPE master
        CLIENT KILL USER nobody
        CLIENT KILL USER default SKIPME yes TYPE replica
        CLIENT NO-EVICT
        CLIENT NO-EVICT maybe
        CLIENT NO-EVICT on off
        ",
    );
    // Subcommand arity errors name the subcommand.
    assert_eq!(
        c.same(&["CLIENT", "SETNAME"]),
        "-ERR wrong number of arguments for 'client|setname' command\r\n"
    );
    c.same(&["CLIENT", "SETNAME", "a b"]);
    c.same(&["CLIENT", "SETNAME", "a\nb"]);
    c.same(&["CLIENT", "SETNAME", "\u{e9}"]);
}

#[test]
fn client_id_setname_getname_info() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.same(&["CLIENT", "GETNAME"]);
    c.same(&["CLIENT", "SETNAME", "worker-1"]);
    c.same(&["CLIENT", "GETNAME"]);
    c.same(&["CLIENT", "SETNAME", ""]);
    c.same(&["CLIENT", "GETNAME"]);
    c.same(&["CLIENT", "SETNAME", "again"]);

    let id = parse(&c.ours.command(&["CLIENT", "ID"])).int();
    assert!(id > 0);
    let info = client_info(&mut c.ours);
    assert_eq!(field(&info, "id"), id.to_string());
    assert_eq!(field(&info, "name"), "again");
    assert_eq!(field(&info, "cmd"), "client|info");
    assert_eq!(field(&info, "db"), "0");
    assert_eq!(field(&info, "resp"), "2");
    assert!(field(&info, "addr").starts_with("127.0.0.1:"));
    assert_eq!(
        field(&info, "laddr"),
        pair.larder.addr.to_string(),
        "laddr is the server's address"
    );
    // Larder's line has every field Redis 7.0 reports, in the same order.
    let theirs: Vec<String> = client_fields(&client_info(&mut c.theirs))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let ours: Vec<String> = client_fields(&info)
        .into_iter()
        .map(|(k, _)| k)
        // Redis 7.2 added lib-name and lib-ver, 7.4 watch.
        .filter(|k| !matches!(k.as_str(), "watch" | "lib-name" | "lib-ver"))
        .collect();
    assert_eq!(ours, theirs);

    // CLIENT ID is stable, and different for another connection.
    assert_eq!(parse(&c.ours.command(&["CLIENT", "ID"])).int(), id);
    let mut other = pair.larder.raw();
    assert_ne!(parse(&other.command(&["CLIENT", "ID"])).int(), id);

    // RESP3: CLIENT INFO is a verbatim string.
    c.ours.command(&["HELLO", "3"]);
    let reply = c.ours.command(&["CLIENT", "INFO"]);
    assert!(
        reply.starts_with(b"="),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    assert!(String::from_utf8_lossy(&reply).contains("txt:id="));
}

#[test]
fn client_setinfo_and_no_touch() {
    // Redis 7.2 commands (the reference server is 7.0): checked on Larder.
    let server = TestServer::start();
    let mut raw = server.raw();
    assert_eq!(
        raw.command(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]),
        b"+OK\r\n"
    );
    assert_eq!(
        raw.command(&["CLIENT", "SETINFO", "lib-ver", "5.0.1"]),
        b"+OK\r\n"
    );
    let info = client_info(&mut raw);
    assert_eq!(field(&info, "lib-name"), "redis-py");
    assert_eq!(field(&info, "lib-ver"), "5.0.1");
    assert_eq!(
        raw.command(&["CLIENT", "SETINFO", "lib-foo", "x"]),
        b"-ERR Unrecognized option 'lib-foo'\r\n"
    );
    assert_eq!(
        raw.command(&["CLIENT", "SETINFO", "lib-name", "a b"]),
        b"-ERR lib-name cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        raw.command(&["CLIENT", "SETINFO", "lib-name"]),
        b"-ERR wrong number of arguments for 'client|setinfo' command\r\n"
    );
    assert_eq!(raw.command(&["CLIENT", "NO-TOUCH", "on"]), b"+OK\r\n");
    assert_eq!(field(&client_info(&mut raw), "flags"), "T");
    assert_eq!(raw.command(&["CLIENT", "NO-EVICT", "on"]), b"+OK\r\n");
    assert_eq!(field(&client_info(&mut raw), "flags"), "eT");
    assert_eq!(raw.command(&["CLIENT", "NO-TOUCH", "OFF"]), b"+OK\r\n");
    assert_eq!(raw.command(&["CLIENT", "NO-EVICT", "off"]), b"+OK\r\n");
    assert_eq!(field(&client_info(&mut raw), "flags"), "N");
    assert_eq!(
        raw.command(&["CLIENT", "NO-TOUCH", "x"]),
        b"-ERR syntax error\r\n"
    );
}

#[test]
fn client_list_and_its_filters() {
    let pair = Pair::start();
    let mut c = pair.clients();
    let mut second = pair.larder.raw();
    let my_id = parse(&c.ours.command(&["CLIENT", "ID"])).int();
    let second_id = parse(&second.command(&["CLIENT", "ID"])).int();

    let list = parse(&c.ours.command(&["CLIENT", "LIST"])).text();
    assert!(list.ends_with('\n'));
    let ids: Vec<String> = list.lines().map(|l| field(l, "id")).collect();
    assert!(ids.contains(&my_id.to_string()));
    assert!(ids.contains(&second_id.to_string()));

    for filter in [&["TYPE", "normal"][..], &["type", "NORMAL"]] {
        let mut args = vec!["CLIENT", "LIST"];
        args.extend_from_slice(filter);
        let list = parse(&c.ours.command(&args)).text();
        assert!(list.lines().count() >= 2);
    }
    // Larder has no replicas or subscribers: Redis agrees for a lone client.
    for kind in ["pubsub", "master", "replica", "slave"] {
        c.same(&["CLIENT", "LIST", "TYPE", kind]);
    }

    // ID: exactly those clients, in the order asked for; unknown ids skipped.
    let list = parse(&c.ours.command(&[
        "CLIENT",
        "LIST",
        "ID",
        &second_id.to_string(),
        "999999",
        "0",
        "-3",
        &my_id.to_string(),
    ]))
    .text();
    let ids: Vec<String> = list.lines().map(|l| field(l, "id")).collect();
    assert_eq!(ids, vec![second_id.to_string(), my_id.to_string()]);
    c.same(&["CLIENT", "LIST", "ID", "999999", "0"]);
}

#[test]
fn client_kill_really_closes_connections() {
    let server = TestServer::start();
    let mut admin = server.raw();
    let admin_addr = field(&client_info(&mut admin), "addr");

    // Old form: CLIENT KILL addr:port.
    let mut victim = server.raw();
    let addr = field(&client_info(&mut victim), "addr");
    assert_eq!(admin.command(&["CLIENT", "KILL", &addr]), b"+OK\r\n");
    assert!(victim.is_closed());
    assert_eq!(
        admin.command(&["CLIENT", "KILL", &addr]),
        b"-ERR No such client\r\n"
    );

    // ID.
    let mut victim = server.raw();
    let id = parse(&victim.command(&["CLIENT", "ID"])).int().to_string();
    assert_eq!(admin.command(&["CLIENT", "KILL", "ID", &id]), b":1\r\n");
    assert!(victim.is_closed());
    assert_eq!(admin.command(&["CLIENT", "KILL", "ID", &id]), b":0\r\n");

    // ADDR, LADDR and USER filters combined.
    let mut victim = server.raw();
    let addr = field(&client_info(&mut victim), "addr");
    let laddr = server.addr.to_string();
    assert_eq!(
        admin.command(&[
            "CLIENT", "KILL", "ADDR", &addr, "LADDR", &laddr, "USER", "default", "TYPE", "normal"
        ]),
        b":1\r\n"
    );
    assert!(victim.is_closed());

    // SKIPME: by default a client does not kill itself...
    assert_eq!(
        admin.command(&["CLIENT", "KILL", "ADDR", &admin_addr]),
        b":0\r\n"
    );
    assert_eq!(admin.command(&["PING"]), b"+PONG\r\n");
    // ...but it can, and gets the reply before the connection closes.
    let mut suicidal = server.raw();
    let addr = field(&client_info(&mut suicidal), "addr");
    assert_eq!(
        suicidal.command(&["CLIENT", "KILL", "ADDR", &addr, "SKIPME", "no"]),
        b":1\r\n"
    );
    assert!(suicidal.is_closed());
    // The old form may kill the caller too.
    let mut suicidal = server.raw();
    let addr = field(&client_info(&mut suicidal), "addr");
    assert_eq!(suicidal.command(&["CLIENT", "KILL", &addr]), b"+OK\r\n");
    assert!(suicidal.is_closed());

    // MAXAGE (Redis 7.4): only connections at least that old.
    let mut old = server.raw();
    assert_eq!(old.command(&["PING"]), b"+PONG\r\n");
    std::thread::sleep(Duration::from_millis(1100));
    let mut young = server.raw();
    assert_eq!(young.command(&["PING"]), b"+PONG\r\n");
    let killed = parse(&young.command(&["CLIENT", "KILL", "MAXAGE", "1"])).int();
    assert_eq!(killed, 2, "the old client and the admin connection");
    assert!(old.is_closed());
    assert!(admin.is_closed());
    assert_eq!(young.command(&["PING"]), b"+PONG\r\n");
    assert_eq!(
        young.command(&["CLIENT", "KILL", "MAXAGE", "0"]),
        b"-ERR maxage should be greater than 0\r\n"
    );
    assert_eq!(
        young.command(&["CLIENT", "KILL", "MAXAGE", "x"]),
        b"-ERR maxage is not an integer or out of range\r\n"
    );
    // The killed clients are gone from the list.
    let list = parse(&young.command(&["CLIENT", "LIST"])).text();
    assert_eq!(list.lines().count(), 1, "{list}");
}

#[test]
fn nothing_runs_after_a_client_kills_itself() {
    let pair = Pair::start();
    let mut c = pair.clients();
    for client in [&mut c.ours, &mut c.theirs] {
        let addr = field(&client_info(client), "addr");
        let mut pipeline = common::encode_command(&[b"SET", b"before", b"1"]);
        pipeline.extend(common::encode_command(&[
            b"CLIENT",
            b"KILL",
            b"ADDR",
            addr.as_bytes(),
            b"SKIPME",
            b"no",
        ]));
        pipeline.extend(common::encode_command(&[b"SET", b"after", b"1"]));
        client.send(&pipeline);
        assert_eq!(client.read_reply(), b"+OK\r\n");
        assert_eq!(client.read_reply(), b":1\r\n");
        assert!(client.is_closed());
    }
    let mut c = pair.clients();
    c.same(&["GET", "before"]);
    assert_eq!(c.same(&["GET", "after"]), "$-1\r\n");
}

#[test]
fn client_no_evict_and_help() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.same(&["CLIENT", "NO-EVICT", "on"]);
    for client in [&mut c.ours, &mut c.theirs] {
        assert_eq!(field(&client_info(client), "flags"), "e");
    }
    c.same(&["CLIENT", "NO-EVICT", "OFF"]);
    for client in [&mut c.ours, &mut c.theirs] {
        assert_eq!(field(&client_info(client), "flags"), "N");
    }
    // HELP: a header line, pairs of lines, and the closing HELP lines. Redis
    // lists subcommands Larder does not have, so only the shape is shared.
    let (ours, theirs) = c.both(&["CLIENT", "HELP"]);
    for help in [&ours, &theirs] {
        let lines: Vec<String> = help.items().iter().map(Resp::text).collect();
        assert_eq!(
            lines[0],
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
        );
        assert_eq!(lines[lines.len() - 2], "HELP");
        assert_eq!(lines[lines.len() - 1], "    Prints this help.");
        for line in &lines {
            assert!(help.items().iter().all(|l| matches!(l, Resp::Simple(_))));
            assert!(!line.contains('\n'));
        }
    }
    let ours: Vec<String> = ours.items().iter().map(Resp::text).collect();
    let theirs: Vec<String> = theirs.items().iter().map(Resp::text).collect();
    for sub in [
        "ID",
        "INFO",
        "GETNAME",
        "SETNAME <name>",
        "NO-EVICT (ON|OFF)",
    ] {
        assert!(ours.iter().any(|l| l == sub), "{sub}");
        assert!(theirs.iter().any(|l| l == sub), "{sub}");
    }
}

// ------------------------------------------------------------- server

#[test]
fn time_and_dbsize() {
    let pair = Pair::start();
    let mut c = pair.clients();
    let reply = parse(&c.ours.command(&["TIME"]));
    let parts = reply.items();
    assert_eq!(parts.len(), 2);
    let seconds: u64 = parts[0].text().parse().unwrap();
    let micros: u64 = parts[1].text().parse().unwrap();
    assert!(micros < 1_000_000);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(seconds.abs_diff(now) <= 2);
    assert!(matches!(parts[0], Resp::Bulk(Some(_))));
    c.same(&["TIME", "x"]);

    c.script(
        "
        DBSIZE
        SET a 1
        SET b 2
        SET c 3
        DBSIZE
        SET a 4
        DBSIZE
        DEL b nosuch
        DBSIZE
        SELECT 5
        DBSIZE
        SET a 1
        DBSIZE
        SELECT 0
        DBSIZE
        DBSIZE x
        ",
    );
}

/// Parses INFO text: `# Section` headers, `key:value` lines, blank lines
/// between sections. Returns section name -> fields.
fn parse_info(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut sections = BTreeMap::new();
    let mut current: Option<String> = None;
    assert!(text.is_empty() || text.ends_with("\r\n"), "{text:?}");
    for line in text.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        if let Some(title) = line.strip_prefix("# ") {
            current = Some(title.to_string());
            sections.insert(title.to_string(), BTreeMap::new());
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not key:value: {line:?}"));
        let section = current.as_ref().expect("a line before any section");
        sections
            .get_mut(section)
            .unwrap()
            .insert(key.to_string(), value.to_string());
    }
    sections
}

fn info(client: &mut RawClient, args: &[&str]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut command = vec!["INFO"];
    command.extend_from_slice(args);
    parse_info(&parse(&client.command(&command)).text())
}

#[test]
fn info_sections_parse_like_redis() {
    let pair = Pair::start();
    let mut c = pair.clients();
    let all = info(&mut c.ours, &[]);
    let theirs = info(&mut c.theirs, &[]);
    for section in ["Server", "Clients", "Memory", "Stats", "Keyspace"] {
        assert!(all.contains_key(section), "{section}");
        assert!(theirs.contains_key(section), "{section}");
    }
    let server = &all["Server"];
    assert_eq!(server["tcp_port"], pair.larder.addr.port().to_string());
    assert_eq!(server["redis_mode"], "standalone");
    assert!(server["redis_version"].starts_with("7."));
    assert_eq!(server["run_id"].len(), 40);
    // Field names and their order are checked in tests/info.rs.

    let clients = &info(&mut c.ours, &["clients"])["Clients"];
    let _second = pair.larder.raw();
    let connected: usize = clients["connected_clients"].parse().unwrap();
    assert!(connected >= 1);
    assert_eq!(clients["maxclients"], "10000");

    let memory = &info(&mut c.ours, &["memory"])["Memory"];
    assert!(memory["used_memory"].parse::<u64>().unwrap() > 0);

    let before: u64 = info(&mut c.ours, &["stats"])["Stats"]["total_commands_processed"]
        .parse()
        .unwrap();
    c.ours.command(&["PING"]);
    c.ours.command(&["PING"]);
    let after: u64 = info(&mut c.ours, &["stats"])["Stats"]["total_commands_processed"]
        .parse()
        .unwrap();
    assert!(after >= before + 2);

    // Sections that exist alone, several at once, case-insensitively.
    let some = info(&mut c.ours, &["SERVER", "clients"]);
    assert_eq!(some.keys().collect::<Vec<_>>(), vec!["Clients", "Server"]);
    for args in [&["all"][..], &["everything"], &["default"]] {
        assert!(info(&mut c.ours, args).contains_key("Keyspace"));
    }

    // The keyspace section is identical for identical data, but for
    // Redis 7.4's `subexpiry` (the reference server is 7.0).
    let same_keyspace = |c: &mut common::Clients| {
        let body = |reply: Vec<u8>| {
            let text = String::from_utf8_lossy(&reply).into_owned();
            text[text.find('\n').unwrap()..].to_string()
        };
        let ours = body(c.ours.command(&["INFO", "keyspace"])).replace(",subexpiry=0", "");
        let theirs = body(c.theirs.command(&["INFO", "keyspace"]));
        assert_eq!(ours, theirs);
        ours
    };
    same_keyspace(&mut c);
    c.same(&["INFO", "nosuch"]);
    for i in 0..5 {
        c.same(&["SET", &format!("k{i}"), "v"]);
    }
    c.same(&["SELECT", "2"]);
    c.same(&["SET", "x", "y"]);
    let reply = same_keyspace(&mut c);
    assert!(reply.contains("db0:keys=5,expires=0,avg_ttl=0\r\n"));
    assert!(reply.contains("db2:keys=1,expires=0,avg_ttl=0\r\n"));
    let keyspace = &info(&mut c.ours, &[])["Keyspace"];
    assert_eq!(keyspace["db0"], "keys=5,expires=0,avg_ttl=0,subexpiry=0");

    // RESP3: a verbatim string.
    c.ours.command(&["HELLO", "3"]);
    assert!(c.ours.command(&["INFO", "server"]).starts_with(b"="));
}

#[test]
fn config_get_matches_redis() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        CONFIG GET nosuch
        CONFIG GET maxclients
        CONFIG GET MAXCLIENTS
        CONFIG GET maxclients MAXCLIENTS
        CONFIG GET timeout
        CONFIG GET requirepass
        CONFIG GET databases
        CONFIG GET proto-max-bulk-len
        CONFIG GET client-query-buffer-limit
        CONFIG GET tcp-keepalive
        CONFIG GET hz
        CONFIG GET loglevel
        CONFIG GET nosuch*
        CONFIG GET [
        CONFIG GET
        ",
    );
    // Several patterns and globs: the same pairs (Redis's order is its hash
    // order).
    for args in [
        &["CONFIG", "GET", "timeout", "maxclients", "nosuch"][..],
        &["CONFIG", "GET", "*maxcl*"],
        &["CONFIG", "GET", "time*", "TIME*"],
        &["CONFIG", "GET", "maxclient?", "tcp-keepaliv[ef]"],
        &["CONFIG", "GET", "*bulk*", "*query*"],
    ] {
        let (ours, theirs) = c.both(args);
        assert_eq!(pairs(&ours), pairs(&theirs), "{args:?}");
    }
    // Globs match the old names too (hash-max-ziplist-*), under their name.
    let (ours, theirs) = c.both(&["CONFIG", "GET", "hash-max-*"]);
    assert_eq!(
        pairs(&ours).keys().collect::<Vec<_>>(),
        pairs(&theirs).keys().collect::<Vec<_>>()
    );
    let (ours, theirs) = c.both(&["CONFIG", "GET", "zset-*"]);
    assert_eq!(
        pairs(&ours).keys().collect::<Vec<_>>(),
        pairs(&theirs).keys().collect::<Vec<_>>()
    );
    // RESP3: a map.
    c.ours.command(&["HELLO", "3"]);
    c.theirs.command(&["HELLO", "3"]);
    c.same(&["CONFIG", "GET", "timeout"]);
    c.same(&["CONFIG", "GET", "nosuch"]);
}

#[test]
fn config_set_matches_redis() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        CONFIG SET
        CONFIG SET maxclients
        CONFIG SET maxclients 100 timeout
        CONFIG SET nosuch 1
        CONFIG SET maxclients x
        CONFIG SET maxclients 1.5
        CONFIG SET timeout -1
        CONFIG SET timeout x
        CONFIG SET timeout 5 timeout 6
        CONFIG SET timeout 5 TIMEOUT 6
        CONFIG SET databases 4
        CONFIG SET proto-max-bulk-len 1
        CONFIG SET proto-max-bulk-len x
        CONFIG SET client-query-buffer-limit 1
        CONFIG SET tcp-keepalive -1
        CONFIG SET loglevel warning
        CONFIG GET loglevel
        CONFIG SET loglevel notice
        CONFIG SET requirepass foo nosuch 1
        CONFIG GET requirepass
        # Several pairs at once.
        CONFIG SET maxclients 500 timeout 300 tcp-keepalive 60
        CONFIG GET maxclients
        CONFIG GET timeout
        CONFIG GET tcp-keepalive
        # Atomic: one bad value changes nothing.
        CONFIG SET timeout 10 maxclients x
        CONFIG GET timeout
        CONFIG SET timeout 11 nosuch 1
        CONFIG GET timeout
        CONFIG SET timeout 12 databases 4
        CONFIG GET timeout
        # Names are all checked before any value.
        CONFIG SET maxclients x nosuch 1
        CONFIG SET maxclients x DATABASES 4
        CONFIG SET MAXCLIENTS x
        CONFIG SET Nosuch 1 databases 4
        CONFIG SET databases 4 nosuch 1
        CONFIG SET hash-max-ziplist-entries 1 HASH-MAX-LISTPACK-ENTRIES 2
        CONFIG GET timeout
        # Memory units.
        CONFIG SET proto-max-bulk-len 2mb client-query-buffer-limit 1gb
        CONFIG GET proto-max-bulk-len
        CONFIG GET client-query-buffer-limit
        CONFIG SET proto-max-bulk-len 2000k
        CONFIG GET proto-max-bulk-len
        CONFIG SET proto-max-bulk-len 512mb
        # Old names.
        CONFIG SET hash-max-ziplist-entries 100
        CONFIG GET hash-max-listpack-entries
        CONFIG GET hash-max-ziplist-entries
        CONFIG SET hash-max-listpack-entries 64 hash-max-listpack-value 32
        CONFIG GET hash-max-listpack-entries
        CONFIG GET hash-max-listpack-value
        CONFIG SET timeout 0 maxclients 10000 tcp-keepalive 300
        ",
    );
    // A setting Larder fixes at start-up (Redis can re-bind at run time).
    assert_eq!(
        c.ours.command(&["CONFIG", "SET", "port", "1"]),
        b"-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n"
    );
}

#[test]
fn config_set_takes_effect() {
    let server = TestServer::start();
    let mut raw = server.raw();
    assert_eq!(
        raw.command(&["CONFIG", "SET", "maxclients", "123"]),
        b"+OK\r\n"
    );
    assert_eq!(server.shared.config.read().maxclients, 123);
    assert!(parse(&raw.command(&["INFO", "clients"]))
        .text()
        .contains("maxclients:123\r\n"));
}

#[test]
fn config_resetstat_and_help() {
    let pair = Pair::start();
    let mut c = pair.clients();
    for _ in 0..20 {
        c.ours.command(&["PING"]);
    }
    let before: u64 = info(&mut c.ours, &["stats"])["Stats"]["total_commands_processed"]
        .parse()
        .unwrap();
    assert!(before >= 20);
    c.same(&["CONFIG", "RESETSTAT"]);
    let after: u64 = info(&mut c.ours, &["stats"])["Stats"]["total_commands_processed"]
        .parse()
        .unwrap();
    assert!(after < 5, "{after}");
    c.same(&["CONFIG", "RESETSTAT", "x"]);
    c.same(&["CONFIG"]);
    c.same(&["CONFIG", "FOO"]);
    c.same(&["config", "foo"]);
    let (ours, theirs) = c.both(&["CONFIG", "HELP"]);
    let ours: Vec<String> = ours.items().iter().map(Resp::text).collect();
    let theirs: Vec<String> = theirs.items().iter().map(Resp::text).collect();
    for line in &ours {
        assert!(
            theirs.contains(line),
            "{line} is not in Redis's CONFIG HELP"
        );
    }
}

// ------------------------------------------------------------- COMMAND

#[test]
fn command_info_matches_redis() {
    let pair = Pair::start();
    let mut c = pair.clients();
    // Byte for byte: every command and subcommand whose Redis 7.0 entry
    // Larder reproduces entirely.
    for name in [
        "get",
        "ping",
        "echo",
        "hello",
        "auth",
        "select",
        "quit",
        "reset",
        "info",
        "time",
        "shutdown",
        "dbsize",
        "multi",
        "exec",
        "discard",
        "watch",
        "unwatch",
        "client|id",
        "client|setname",
        "client|getname",
        "client|info",
        "client|list",
        "client|kill",
        "client|no-evict",
        "client|help",
        "config|get",
        "config|set",
        "config|resetstat",
        "config|help",
        "command|count",
        "command|info",
        "command|list",
        "command|docs",
        "command|getkeys",
        "command|help",
        "CONFIG|GET",
        "nosuch",
        "get|x",
    ] {
        c.same(&["COMMAND", "INFO", name]);
    }
    c.same(&["COMMAND", "INFO", "get", "nosuch", "ping"]);
    // SET and DEL: the same up to their key specs and tips.
    for name in ["set", "del"] {
        let (ours, theirs) = c.both(&["COMMAND", "INFO", name]);
        assert_eq!(ours.items()[0].items()[..7], theirs.items()[0].items()[..7]);
    }
    // Containers list subcommands Larder lacks: compare the common ones.
    for name in ["client", "config", "command"] {
        let (ours, theirs) = c.both(&["COMMAND", "INFO", name]);
        let (ours, theirs) = (&ours.items()[0], &theirs.items()[0]);
        assert_eq!(ours.items()[..9], theirs.items()[..9]);
        for sub in ours.items()[9].items() {
            let name = sub.items()[0].text();
            if name == "client|setinfo" || name == "client|no-touch" {
                continue; // Redis 7.2
            }
            let theirs_sub = theirs.items()[9]
                .items()
                .iter()
                .find(|t| t.items()[0].text() == name)
                .unwrap_or_else(|| panic!("Redis has no {name}"));
            assert_eq!(sub, theirs_sub);
        }
    }
}

#[test]
fn command_count_list_docs_getkeys() {
    let pair = Pair::start();
    let mut c = pair.clients();
    let count = parse(&c.ours.command(&["COMMAND", "COUNT"])).int();
    // COMMAND LIST names subcommands too; COMMAND COUNT does not count them.
    let list = parse(&c.ours.command(&["COMMAND", "LIST"]));
    let names: Vec<String> = list.items().iter().map(Resp::text).collect();
    assert_eq!(
        names.iter().filter(|n| !n.contains('|')).count() as i64,
        count
    );
    for name in [
        "get",
        "set",
        "del",
        "ping",
        "client",
        "config",
        "command",
        "multi",
        "client|kill",
        "config|get",
    ] {
        assert!(names.iter().any(|n| n == name), "{name}");
    }
    let (_, theirs) = c.both(&["COMMAND", "LIST"]);
    let theirs: Vec<String> = theirs.items().iter().map(Resp::text).collect();
    for name in &names {
        // Commands from Redis 7.2/7.4, newer than the 7.0 reference server.
        let newer = [
            "client|setinfo",
            "client|no-touch",
            "hexpire",
            "hpexpire",
            "hexpireat",
            "hpexpireat",
            "httl",
            "hpttl",
            "hexpiretime",
            "hpexpiretime",
            "hpersist",
            "waitaof",
            // Larder's own.
            "writebehind",
            "writebehind|flush",
            "writebehind|status",
        ];
        if !newer.contains(&name.as_str()) {
            assert!(theirs.contains(name), "Redis has no {name}");
        }
    }
    let all = parse(&c.ours.command(&["COMMAND"]));
    assert_eq!(all.items().len() as i64, count);
    for entry in all.items() {
        assert_eq!(entry.items().len(), 10);
    }
    let info_all = parse(&c.ours.command(&["COMMAND", "INFO"]));
    assert_eq!(info_all.items().len() as i64, count);

    // FILTERBY.
    let pattern = parse(
        &c.ours
            .command(&["COMMAND", "LIST", "FILTERBY", "PATTERN", "client*"]),
    );
    let pattern: Vec<String> = pattern.items().iter().map(Resp::text).collect();
    assert!(pattern.contains(&"client".to_string()));
    assert!(pattern.contains(&"client|setname".to_string()));
    let category =
        parse(
            &c.ours
                .command(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "transaction"]),
        );
    let mut category: Vec<String> = category.items().iter().map(Resp::text).collect();
    category.sort();
    assert_eq!(category, ["discard", "exec", "multi", "unwatch", "watch"]);
    // Subcommands have categories of their own; every command Larder puts
    // in @connection, Redis does too.
    let (ours, theirs) = c.both(&["COMMAND", "LIST", "FILTERBY", "ACLCAT", "connection"]);
    let ours: Vec<String> = ours.items().iter().map(Resp::text).collect();
    let theirs: Vec<String> = theirs.items().iter().map(Resp::text).collect();
    assert!(ours.contains(&"client|kill".to_string()));
    for name in &ours {
        if !matches!(
            name.as_str(),
            "client|setinfo" | "client|no-touch" | "waitaof"
        ) {
            assert!(
                theirs.contains(name),
                "{name} is not in Redis's @connection"
            );
        }
    }
    c.script(
        "
        COMMAND LIST FILTERBY
        COMMAND LIST FILTERBY foo bar
        COMMAND LIST FILTERBY pattern nosuch*
        COMMAND LIST FILTERBY aclcat nosuch
        COMMAND LIST foo
        COMMAND COUNT x
        COMMAND FOO
        COMMAND HELP x
        ",
    );

    // DOCS: a map of name -> summary/since/group/complexity/arguments.
    let docs = parse(&c.ours.command(&["COMMAND", "DOCS", "get", "nosuch"]));
    let docs = docs.items();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].text(), "get");
    let fields: Vec<String> = docs[1].items().iter().step_by(2).map(Resp::text).collect();
    assert_eq!(
        fields,
        ["summary", "since", "group", "complexity", "arguments"]
    );
    let (_, theirs) = c.both(&["COMMAND", "DOCS", "get"]);
    let theirs = theirs.items()[1].items().to_vec();
    assert_eq!(docs[1].items()[2..6], theirs[2..6], "since and group");
    c.same(&["COMMAND", "DOCS", "nosuch"]);
    let docs = parse(&c.ours.command(&["COMMAND", "DOCS", "config"]));
    let config_fields: Vec<String> = docs.items()[1]
        .items()
        .iter()
        .step_by(2)
        .map(Resp::text)
        .collect();
    assert!(config_fields.contains(&"subcommands".to_string()));

    // GETKEYS.
    c.script(
        "
        COMMAND GETKEYS get a
        COMMAND GETKEYS GET a
        COMMAND GETKEYS set a b
        COMMAND GETKEYS del a b c
        COMMAND GETKEYS watch x y
        COMMAND GETKEYS get
        COMMAND GETKEYS get a b
        COMMAND GETKEYS ping
        COMMAND GETKEYS ping x
        COMMAND GETKEYS nosuch a
        COMMAND GETKEYS client setname x
        COMMAND GETKEYS config get x
        COMMAND GETKEYS
        ",
    );
}

// ------------------------------------------------------------- SHUTDOWN

#[test]
fn shutdown_errors_match_redis() {
    let pair = Pair::start();
    let mut c = pair.clients();
    c.script(
        "
        SHUTDOWN foo
        SHUTDOWN ABORT
        shutdown abort
        SHUTDOWN ABORT NOW
        SHUTDOWN SAVE NOSAVE
        MULTI
        SHUTDOWN
        SET k v
        EXEC
        MULTI
        SHUTDOWN NOSAVE
        EXEC
        GET k
        ",
    );
    assert_eq!(c.same(&["MULTI"]), "+OK\r\n");
    assert_eq!(
        c.same(&["SHUTDOWN", "ABORT"]),
        "-ERR Command not allowed inside a transaction\r\n"
    );
    assert_eq!(
        c.same(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
}

#[test]
fn shutdown_stops_the_server() {
    let pair = Pair::start();
    let mut c = pair.clients();
    let mut bystander = pair.larder.raw();
    c.ours
        .send(&common::encode_command(&[b"SHUTDOWN", b"NOSAVE"]));
    c.theirs
        .send(&common::encode_command(&[b"SHUTDOWN", b"NOSAVE"]));
    // No reply: the connection just closes.
    assert!(c.ours.is_closed());
    assert!(c.theirs.is_closed());
    // Other connections close too.
    assert!(bystander.is_closed());
    // And new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(pair.larder.addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "Larder still accepts connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(pair.larder.shared.is_stopping());
}

/// Reads grow while a client keeps filling them and shrink back for small
/// requests: pipelines of large values, whole or split in the middle of a
/// value, then small requests, all arrive intact.
#[test]
fn pipelines_of_large_values_arrive_intact_as_reads_grow_and_shrink() {
    let server = TestServer::start();
    let mut client = server.raw();
    let value = |round: usize, i: usize| -> Vec<u8> {
        (0..4000)
            .map(|n| b'a' + ((n + round * 7 + i) % 26) as u8)
            .collect()
    };
    for round in 0..8 {
        let mut pipeline = Vec::new();
        for i in 0..16 {
            let key = format!("big:{round}:{i}");
            pipeline.extend(common::encode_command(&[
                b"SET",
                key.as_bytes(),
                &value(round, i),
            ]));
        }
        if round % 2 == 1 {
            // Split inside a value: the second read starts with a left-over.
            let (first, second) = pipeline.split_at(pipeline.len() / 2 + 17);
            client.send(first);
            std::thread::sleep(Duration::from_millis(20));
            client.send(second);
        } else {
            client.send(&pipeline);
        }
        for _ in 0..16 {
            assert_eq!(client.read_reply(), b"+OK\r\n");
        }
        // Small requests in between.
        assert_eq!(client.command(&["PING"]), b"+PONG\r\n");
    }
    for round in 0..8 {
        for i in 0..16 {
            let key = format!("big:{round}:{i}");
            let reply = client.command_bytes(&[b"GET", key.as_bytes()]);
            let mut expected = b"$4000\r\n".to_vec();
            expected.extend(value(round, i));
            expected.extend(b"\r\n");
            assert!(reply == expected, "{key} came back different");
        }
    }
}
