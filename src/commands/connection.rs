//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.

use super::flags::*;
use super::parse::{int_arg, is_keyword};
use super::{tracking, transaction, CommandSpec, Ctx, ReplyMode, NO_KEYS};
use crate::error::{Error, Result};
use crate::pubsub::ClientClass;
use crate::shared::UnblockReason;

pub use crate::version::REDIS_VERSION;

const CONN: &[&str] = &["connection"];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("ping", -1, FAST, NO_KEYS, ping)
        .acl(CONN)
        .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
        .doc(
            "connection",
            "1.0.0",
            "Returns the server's liveliness response.",
            "O(1)",
        ),
    CommandSpec::new("echo", 2, LOADING | STALE | FAST, NO_KEYS, echo)
        .acl(CONN)
        .doc("connection", "1.0.0", "Returns the given string.", "O(1)"),
    CommandSpec::new(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        NO_KEYS,
        hello,
    )
    .acl(CONN)
    .doc(
        "connection",
        "6.0.0",
        "Handshakes with the Redis server.",
        "O(1)",
    ),
    CommandSpec::new(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        NO_KEYS,
        auth,
    )
    .acl(CONN)
    .doc(
        "connection",
        "1.0.0",
        "Authenticates the connection.",
        "O(N) where N is the number of passwords defined for the user",
    ),
    CommandSpec::new("select", 2, LOADING | STALE | FAST, NO_KEYS, select)
        .acl(CONN)
        .doc(
            "connection",
            "1.0.0",
            "Changes the selected database.",
            "O(1)",
        ),
    CommandSpec::new(
        "quit",
        -1,
        ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        NO_KEYS,
        quit,
    )
    .acl(CONN)
    .doc("connection", "1.0.0", "Closes the connection.", "O(1)"),
    CommandSpec::new(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        NO_KEYS,
        reset,
    )
    .acl(CONN)
    .doc("connection", "6.2.0", "Resets the connection.", "O(1)"),
    CommandSpec::new("wait", 3, NOSCRIPT, NO_KEYS, wait)
        .acl(CONN)
        .doc(
            "generic",
            "3.0.0",
            "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
            "O(1)",
        ),
    CommandSpec::new("waitaof", 4, NOSCRIPT, NO_KEYS, waitaof)
        .acl(CONN)
        .doc(
            "generic",
            "7.2.0",
            "Blocks until all of the preceding write commands sent by the connection are written to the append-only file of the master and/or replicas.",
            "O(1)",
        ),
    CommandSpec::new("client", -2, 0, NO_KEYS, container)
        .doc(
            "connection",
            "2.4.0",
            "A container for client connection commands.",
            "Depends on subcommand.",
        )
        .subcommands(CLIENT_SUBCOMMANDS),
];

const CLIENT_FLAGS: u32 = NOSCRIPT | LOADING | STALE;

static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("client|id", 2, CLIENT_FLAGS, NO_KEYS, client_id)
        .acl(CONN)
        .doc(
            "connection",
            "5.0.0",
            "Returns the unique client ID of the connection.",
            "O(1)",
        ),
    CommandSpec::new("client|setname", 3, CLIENT_FLAGS, NO_KEYS, client_setname)
        .acl(CONN)
        .doc("connection", "2.6.9", "Sets the connection name.", "O(1)"),
    CommandSpec::new("client|getname", 2, CLIENT_FLAGS, NO_KEYS, client_getname)
        .acl(CONN)
        .doc(
            "connection",
            "2.6.9",
            "Returns the name of the connection.",
            "O(1)",
        ),
    CommandSpec::new("client|setinfo", 4, CLIENT_FLAGS, NO_KEYS, client_setinfo)
        .acl(CONN)
        .doc(
            "connection",
            "7.2.0",
            "Sets information specific to the client or connection.",
            "O(1)",
        ),
    CommandSpec::new("client|info", 2, CLIENT_FLAGS, NO_KEYS, client_info)
        .acl(CONN)
        .tips(&["nondeterministic_output"])
        .doc(
            "connection",
            "6.2.0",
            "Returns information about the connection.",
            "O(1)",
        ),
    CommandSpec::new(
        "client|list",
        -2,
        ADMIN | CLIENT_FLAGS,
        NO_KEYS,
        client_list,
    )
    .acl(CONN)
    .tips(&["nondeterministic_output"])
    .doc(
        "connection",
        "2.4.0",
        "Lists open connections.",
        "O(N) where N is the number of client connections",
    ),
    CommandSpec::new(
        "client|kill",
        -3,
        ADMIN | CLIENT_FLAGS,
        NO_KEYS,
        client_kill,
    )
    .acl(CONN)
    .doc(
        "connection",
        "2.4.0",
        "Terminates open connections.",
        "O(N) where N is the number of client connections",
    ),
    CommandSpec::new(
        "client|unblock",
        -3,
        ADMIN | CLIENT_FLAGS,
        NO_KEYS,
        client_unblock,
    )
    .acl(CONN)
    .doc(
        "connection",
        "5.0.0",
        "Unblock a client blocked in a blocking command from a different connection",
        "O(log N) where N is the number of client connections",
    ),
    CommandSpec::new(
        "client|no-evict",
        3,
        ADMIN | CLIENT_FLAGS,
        NO_KEYS,
        client_no_evict,
    )
    .acl(CONN)
    .doc(
        "connection",
        "7.0.0",
        "Sets the client eviction mode of the connection.",
        "O(1)",
    ),
    CommandSpec::new("client|no-touch", 3, CLIENT_FLAGS, NO_KEYS, client_no_touch)
        .acl(CONN)
        .doc(
            "connection",
            "7.2.0",
            "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.",
            "O(1)",
        ),
    CommandSpec::new(
        "client|tracking",
        -3,
        CLIENT_FLAGS,
        NO_KEYS,
        tracking::client_tracking,
    )
    .acl(CONN)
    .doc(
        "connection",
        "6.0.0",
        "Controls server-assisted client-side caching for the connection.",
        "O(1). Some options may introduce additional complexity.",
    ),
    CommandSpec::new(
        "client|caching",
        3,
        CLIENT_FLAGS,
        NO_KEYS,
        tracking::client_caching,
    )
    .acl(CONN)
    .doc(
        "connection",
        "6.0.0",
        "Instructs the server whether to track the keys in the next request.",
        "O(1)",
    ),
    CommandSpec::new(
        "client|trackinginfo",
        2,
        CLIENT_FLAGS,
        NO_KEYS,
        tracking::client_trackinginfo,
    )
    .acl(CONN)
    .doc(
        "connection",
        "6.2.0",
        "Returns information about server-assisted client-side caching for the connection.",
        "O(1)",
    ),
    CommandSpec::new(
        "client|getredir",
        2,
        CLIENT_FLAGS,
        NO_KEYS,
        tracking::client_getredir,
    )
    .acl(CONN)
    .doc(
        "connection",
        "6.0.0",
        "Returns the client ID to which the connection's tracking notifications are redirected.",
        "O(1)",
    ),
    CommandSpec::new(
        "client|pause",
        -3,
        ADMIN | CLIENT_FLAGS,
        NO_KEYS,
        client_pause,
    )
    .acl(CONN)
    .doc(
        "connection",
        "3.0.0",
        "Suspends commands processing.",
        "O(1)",
    ),
    CommandSpec::new(
        "client|unpause",
        2,
        ADMIN | CLIENT_FLAGS,
        NO_KEYS,
        client_unpause,
    )
    .acl(CONN)
    .doc(
        "connection",
        "6.2.0",
        "Resumes processing commands from paused clients.",
        "O(N) Where N is the number of paused clients",
    ),
    CommandSpec::new("client|reply", 3, CLIENT_FLAGS, NO_KEYS, client_reply)
        .acl(CONN)
        .doc(
            "connection",
            "3.2.0",
            "Instructs the server whether to reply to commands.",
            "O(1)",
        ),
    CommandSpec::new("client|help", 2, LOADING | STALE, NO_KEYS, client_help)
        .acl(CONN)
        .doc(
            "connection",
            "5.0.0",
            "Returns helpful text about the different subcommands.",
            "O(1)",
        ),
];

/// The handler of a container command; never called, since dispatch
/// resolves the subcommand first.
pub fn container(_ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    Err(super::resolve(argv)
        .err()
        .unwrap_or_else(|| Error::err("unknown subcommand")))
}

fn ping(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    // A subscribed RESP2 client gets a `pong` message-like array, as in
    // Redis, so that it can tell the reply from a message.
    if ctx.session.subscriptions.total() > 0 && !ctx.out.is_resp3() {
        if argv.len() > 2 {
            return Err(Error::wrong_arity("ping"));
        }
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(argv.get(1).copied().unwrap_or_default());
        return Ok(());
    }
    match argv.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(argv[1]),
        _ => return Err(Error::wrong_arity("ping")),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    ctx.out.bulk(argv[1]);
    Ok(())
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Checks credentials against the ACL users: on success the session
/// runs as that user (`None`: the default user, AUTH's one-argument form).
/// `command`: AUTH or HELLO, for the audit trail.
fn check_credentials(
    ctx: &mut Ctx,
    command: &'static str,
    username: Option<&[u8]>,
    password: &[u8],
) -> Result<()> {
    let user = username.unwrap_or(b"default");
    let accepted = super::acl::authenticate(ctx, user, password);
    if ctx.shared.audit.is_on() {
        let result = if accepted { Ok(()) } else { Err(WRONGPASS) };
        super::audited::record(ctx, &String::from_utf8_lossy(user), command, None, result);
    }
    if !accepted {
        return Err(Error::raw(WRONGPASS));
    }
    Ok(())
}

fn auth(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    match argv.len() {
        2 => {
            if ctx.shared.acl.default_user().nopass {
                return Err(Error::err(
                    "AUTH <password> called without any password configured for the default user. \
                     Are you sure your configuration is correct?",
                ));
            }
            check_credentials(ctx, "auth", None, argv[1])?;
        }
        3 => check_credentials(ctx, "auth", Some(argv[1]), argv[2])?,
        _ => return Err(Error::syntax()),
    }
    ctx.out.ok();
    Ok(())
}

/// Client names, library names and versions: printable, no spaces.
fn valid_client_text(text: &[u8]) -> bool {
    text.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn check_client_name(name: &[u8]) -> Result<()> {
    if !valid_client_text(name) {
        return Err(Error::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn set_client_name(ctx: &mut Ctx, name: &[u8]) -> Result<()> {
    check_client_name(name)?;
    ctx.session.handle.meta.lock().name = (!name.is_empty()).then(|| name.to_vec());
    Ok(())
}

fn hello(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut protocol = None;
    let mut rest = &argv[1..];
    if let Some((version, options)) = rest.split_first() {
        let version = int_arg(version)
            .map_err(|_| Error::err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&version) {
            return Err(Error::raw("NOPROTO unsupported protocol version"));
        }
        protocol = Some(version);
        rest = options;
    }
    let mut credentials = None;
    let mut name = None;
    let mut i = 0;
    while i < rest.len() {
        let remaining = rest.len() - i - 1;
        if is_keyword(rest[i], "AUTH") && remaining >= 2 {
            credentials = Some((rest[i + 1], rest[i + 2]));
            i += 3;
        } else if is_keyword(rest[i], "SETNAME") && remaining >= 1 {
            // Redis validates the name while parsing, before checking AUTH.
            check_client_name(rest[i + 1])?;
            name = Some(rest[i + 1]);
            i += 2;
        } else {
            return Err(Error::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(rest[i])
            )));
        }
    }
    if let Some((user, pass)) = credentials {
        check_credentials(ctx, "hello", Some(user), pass)?;
    }
    if ctx.session.requires_auth(ctx.shared) {
        return Err(Error::raw(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> \
             AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol \
             version at the same time",
        ));
    }
    if let Some(name) = name {
        set_client_name(ctx, name)?;
    }
    if let Some(version) = protocol {
        ctx.out.set_resp3(version == 3);
        ctx.session.handle.mailbox.set_resp3(version == 3);
        ctx.session.handle.meta.lock().resp = version as u8;
    }
    let proto = if ctx.out.is_resp3() { 3 } else { 2 };
    ctx.out.map(7);
    ctx.out.bulk(b"server");
    ctx.out.bulk(b"redis");
    ctx.out.bulk(b"version");
    ctx.out.bulk(REDIS_VERSION.as_bytes());
    ctx.out.bulk(b"proto");
    ctx.out.int(proto);
    ctx.out.bulk(b"id");
    ctx.out.int(ctx.session.handle.id as i64);
    ctx.out.bulk(b"mode");
    ctx.out.bulk(b"standalone");
    ctx.out.bulk(b"role");
    ctx.out.bulk(b"master");
    ctx.out.bulk(b"modules");
    ctx.out.array(0);
    Ok(())
}

fn select(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let index = int_arg(argv[1])?;
    // Redis reads the index with getIntFromObjectOrReply.
    if i32::try_from(index).is_err() {
        return Err(Error::err(
            "value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    if index < 0 || index as usize >= ctx.store().databases() {
        return Err(Error::db_index_out_of_range());
    }
    ctx.session.set_db(index as usize);
    ctx.out.ok();
    Ok(())
}

fn quit(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.session.close_after_reply = true;
    ctx.out.ok();
    Ok(())
}

fn reset(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.session.multi = None;
    transaction::unwatch_all(ctx.shared, ctx.session, None);
    ctx.session.set_db(0);
    super::pubsub::drop_subscriptions(ctx.shared, ctx.session);
    super::tracking::turn_off(ctx.shared, ctx.session);
    ctx.session.reply_mode = super::ReplyMode::On;
    ctx.out.set_resp3(false);
    ctx.session.handle.mailbox.set_resp3(false);
    ctx.session.set_user(ctx.shared.acl.default_user());
    ctx.session.authenticated = super::acl::default_needs_no_auth(ctx.shared);
    {
        let mut meta = ctx.session.handle.meta.lock();
        meta.resp = 2;
        meta.multi = -1;
        meta.name = None;
        // Redis's RESET clears no-touch but keeps no-evict (and the
        // library name and version).
        meta.no_touch = false;
    }
    ctx.out.simple("RESET");
    Ok(())
}

fn client_id(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.out.int(ctx.session.handle.id as i64);
    Ok(())
}

fn client_setname(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    set_client_name(ctx, argv[2])?;
    ctx.out.ok();
    Ok(())
}

fn client_getname(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    match ctx.session.handle.meta.lock().name.clone() {
        Some(name) => ctx.out.bulk(&name),
        None => ctx.out.null(),
    }
    Ok(())
}

fn client_setinfo(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let (option, value) = (argv[2], argv[3]);
    let is_name = is_keyword(option, "LIB-NAME");
    if !is_name && !is_keyword(option, "LIB-VER") {
        return Err(Error::err(format!(
            "Unrecognized option '{}'",
            String::from_utf8_lossy(option)
        )));
    }
    if !valid_client_text(value) {
        return Err(Error::err(format!(
            "{} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(option).to_ascii_lowercase()
        )));
    }
    let value = (!value.is_empty()).then(|| value.to_vec());
    let mut meta = ctx.session.handle.meta.lock();
    if is_name {
        meta.lib_name = value;
    } else {
        meta.lib_ver = value;
    }
    drop(meta);
    ctx.out.ok();
    Ok(())
}

fn client_info(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let line = ctx.session.handle.info_line() + "\n";
    ctx.out.verbatim("txt", line.as_bytes());
    Ok(())
}

/// Redis's client types for CLIENT LIST/KILL TYPE: the class a client
/// must be of (`None`: master, which Larder never has); an unknown type is
/// an error that quotes the name as given.
fn client_type(kind: &[u8]) -> Result<Option<ClientClass>> {
    if kind.eq_ignore_ascii_case(b"master") {
        return Ok(None);
    }
    ClientClass::parse(kind).map(Some).ok_or_else(|| {
        Error::err(format!(
            "Unknown client type '{}'",
            String::from_utf8_lossy(kind)
        ))
    })
}

fn client_list(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut text = String::new();
    if argv.len() == 2 {
        for client in ctx.shared.clients.list() {
            text.push_str(&client.info_line());
            text.push('\n');
        }
    } else if argv.len() == 4 && is_keyword(argv[2], "TYPE") {
        let class = client_type(argv[3])?;
        for client in ctx.shared.clients.list() {
            if Some(client.mailbox.class()) == class {
                text.push_str(&client.info_line());
                text.push('\n');
            }
        }
    } else if argv.len() >= 4 && is_keyword(argv[2], "ID") {
        let mut ids = Vec::with_capacity(argv.len() - 3);
        for arg in &argv[3..] {
            ids.push(int_arg(arg).map_err(|_| Error::err("Invalid client ID"))?);
        }
        // In the order given, as Redis does; unknown ids are skipped.
        for id in ids {
            let client = u64::try_from(id)
                .ok()
                .and_then(|id| ctx.shared.clients.get(id));
            if let Some(client) = client {
                text.push_str(&client.info_line());
                text.push('\n');
            }
        }
    } else {
        return Err(Error::syntax());
    }
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}

/// CLIENT UNBLOCK client-id [TIMEOUT | ERROR]
fn client_unblock(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv.len() > 4 {
        // Redis's CLIENT dispatch falls through to its generic reply.
        return Err(Error::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(argv[1])
        )));
    }
    // As Redis: the reason is checked before the id.
    let reason = match argv.get(3) {
        None => UnblockReason::Timeout,
        Some(word) if word.eq_ignore_ascii_case(b"timeout") => UnblockReason::Timeout,
        Some(word) if word.eq_ignore_ascii_case(b"error") => UnblockReason::Error,
        Some(_) => {
            return Err(Error::err(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    let id = int_arg(argv[2])?;
    let unblocked = u64::try_from(id)
        .ok()
        .and_then(|id| ctx.shared.clients.get(id))
        .is_some_and(|client| client.request_unblock(reason));
    ctx.out.int(i64::from(unblocked));
    Ok(())
}

fn client_kill(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    super::audited::audited(ctx, argv, "client", Some("kill"), client_kill_unaudited)
}

fn client_kill_unaudited(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let clients = ctx.shared.clients.list();
    if argv.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let addr = String::from_utf8_lossy(argv[2]);
        let target = clients
            .iter()
            .find(|c| c.addr == addr)
            .ok_or_else(|| Error::err("No such client"))?;
        target.kill();
        ctx.out.ok();
        return Ok(());
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut skip_me = true;
    let mut max_age = None;
    let mut user = None;
    let mut kind: Option<Option<ClientClass>> = None;
    let mut i = 2;
    while i < argv.len() {
        let Some(value) = argv.get(i + 1) else {
            return Err(Error::syntax());
        };
        let option = String::from_utf8_lossy(argv[i]).to_ascii_uppercase();
        let text = String::from_utf8_lossy(value).into_owned();
        match option.as_str() {
            "ID" => match int_arg(value) {
                Ok(n) if n > 0 => id = Some(n as u64),
                _ => return Err(Error::err("client-id should be greater than 0")),
            },
            "ADDR" => addr = Some(text),
            "LADDR" => laddr = Some(text),
            "USER" => {
                if ctx.shared.acl.user(&text).is_none() {
                    return Err(Error::err(format!("No such user '{text}'")));
                }
                user = Some(text)
            }
            // Redis 7.4's MAXAGE and its error texts.
            "MAXAGE" => match int_arg(value) {
                Ok(age) if age > 0 => max_age = Some(age),
                Ok(_) => return Err(Error::err("maxage should be greater than 0")),
                Err(_) => return Err(Error::err("maxage is not an integer or out of range")),
            },
            "TYPE" => kind = Some(client_type(value)?),
            "SKIPME" => match text.to_ascii_lowercase().as_str() {
                "yes" => skip_me = true,
                "no" => skip_me = false,
                _ => return Err(Error::syntax()),
            },
            _ => return Err(Error::syntax()),
        }
        i += 2;
    }
    let mut killed = 0;
    for client in clients {
        let me = client.id == ctx.session.handle.id;
        let matches = kind.is_none_or(|kind| kind == Some(client.mailbox.class()))
            && id.is_none_or(|id| client.id == id)
            && addr.as_ref().is_none_or(|a| &client.addr == a)
            && laddr.as_ref().is_none_or(|a| &client.laddr == a)
            && user
                .as_ref()
                .is_none_or(|u| client.meta.lock().user.as_deref().unwrap_or("default") == u)
            && max_age.is_none_or(|age| client.age_secs() as i64 >= age)
            && !(skip_me && me);
        if matches {
            client.kill();
            killed += 1;
        }
    }
    ctx.out.int(killed);
    Ok(())
}

fn on_off(arg: &[u8]) -> Result<bool> {
    if is_keyword(arg, "ON") {
        Ok(true)
    } else if is_keyword(arg, "OFF") {
        Ok(false)
    } else {
        Err(Error::syntax())
    }
}

fn client_no_evict(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    ctx.session.handle.meta.lock().no_evict = on_off(argv[2])?;
    ctx.out.ok();
    Ok(())
}

fn client_no_touch(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    ctx.session.handle.meta.lock().no_touch = on_off(argv[2])?;
    ctx.out.ok();
    Ok(())
}

/// A CLIENT PAUSE or WAIT timeout in milliseconds, as Redis's
/// getTimeoutFromObjectOrReply with UNIT_MILLISECONDS; `None`: none.
fn millis_timeout(arg: &[u8]) -> Result<Option<std::time::Duration>> {
    let millis = super::parse::strict_i64(arg)
        .ok_or_else(|| Error::err("timeout is not an integer or out of range"))?;
    if millis < 0 {
        return Err(Error::err("timeout is negative"));
    }
    Ok((millis > 0).then(|| std::time::Duration::from_millis(millis as u64)))
}

/// CLIENT PAUSE timeout [WRITE|ALL].
fn client_pause(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv.len() > 4 {
        return Err(Error::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(argv[1])
        )));
    }
    let all = match argv.get(3) {
        None => true,
        Some(mode) if is_keyword(mode, "WRITE") => false,
        Some(mode) if is_keyword(mode, "ALL") => true,
        Some(_) => return Err(Error::err("CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let timeout = millis_timeout(argv[2])?.unwrap_or_default();
    let until = std::time::Instant::now() + timeout;
    ctx.shared.pause.pause(until, all);
    // Expiry and eviction stop too (both modes, as Redis 7.0), until the
    // same moment on the store's clock.
    let store = &ctx.shared.store;
    store.pause_expiry(store.now_ms().saturating_add(timeout.as_millis() as u64));
    ctx.out.ok();
    Ok(())
}

fn client_unpause(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.shared.pause.unpause();
    ctx.shared.store.resume_expiry();
    ctx.out.ok();
    Ok(())
}

/// CLIENT REPLY ON|OFF|SKIP (the connection drops the replies).
fn client_reply(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if is_keyword(argv[2], "ON") {
        ctx.session.reply_mode = ReplyMode::On;
        ctx.out.ok();
    } else if is_keyword(argv[2], "OFF") {
        ctx.session.reply_mode = ReplyMode::Off;
    } else if is_keyword(argv[2], "SKIP") {
        if ctx.session.reply_mode != ReplyMode::Off {
            ctx.session.reply_mode = ReplyMode::SkipNext;
        }
    } else {
        return Err(Error::syntax());
    }
    Ok(())
}

/// WAIT numreplicas timeout: Larder has no replicas, so the count of
/// replicas that acknowledged is 0, given at once when 0 are asked for
/// (or the client cannot block), else after the timeout, as Redis.
fn wait(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let wanted = int_arg(argv[1])?;
    let timeout = millis_timeout(argv[2])?;
    if wanted <= 0 || !ctx.session.blocking_allowed || ctx.locks.in_transaction() {
        ctx.out.int(0);
        return Ok(());
    }
    ctx.session.block = Some(crate::shared::blocking::BlockRequest {
        db: ctx.session.db,
        keys: Vec::new(),
        timeout,
        kind: crate::shared::blocking::WaitKind::List,
        on_timeout: crate::shared::blocking::TimeoutReply::Zero,
    });
    Ok(())
}

/// WAITAOF numlocal numreplicas timeout, as Redis 7.2 with `appendonly
/// no` and no replicas (Larder has no append-only file: write-behind's
/// journal is not waited on here): numlocal 1 is refused; otherwise
/// nothing was fsynced and no replica acknowledged, so the answer is
/// `[0, 0]`, at once if that is enough (numreplicas 0, or the client may
/// not block), else after the timeout (never, for 0), as Redis's
/// waitaofCommand.
fn waitaof(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let numlocal = int_arg(argv[1])?;
    if !(0..=1).contains(&numlocal) {
        return Err(Error::err(
            "value is out of range, value must between 0 and 1",
        ));
    }
    let numreplicas = int_arg(argv[2])?;
    if numreplicas < 0 {
        return Err(Error::err("value is out of range, must be positive"));
    }
    let timeout = millis_timeout(argv[3])?;
    if numlocal > 0 {
        return Err(Error::err(
            "WAITAOF cannot be used when numlocal is set but appendonly is disabled.",
        ));
    }
    if numreplicas == 0 || !ctx.session.blocking_allowed || ctx.locks.in_transaction() {
        ctx.out.array(2);
        ctx.out.int(0);
        ctx.out.int(0);
        return Ok(());
    }
    ctx.session.block = Some(crate::shared::blocking::BlockRequest {
        db: ctx.session.db,
        keys: Vec::new(),
        timeout,
        kind: crate::shared::blocking::WaitKind::List,
        on_timeout: crate::shared::blocking::TimeoutReply::TwoZeroes,
    });
    Ok(())
}

fn client_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    super::reply_help(
        ctx,
        "CLIENT",
        &[
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are: ID, ADDR, LADDR, TYPE, USER, SKIPME, MAXAGE.",
            "LIST [options ...]",
            "    Return information about client connections. Options: TYPE, ID.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "GETNAME",
            "    Return the name of the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "NO-TOUCH (ON|OFF)",
            "    Will not touch LRU/LFU stats when this mode is on.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
        ],
    );
    Ok(())
}
