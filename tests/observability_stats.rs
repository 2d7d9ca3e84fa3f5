//! INFO commandstats / errorstats / latencystats, SLOWLOG and LATENCY,
//! against a real redis-server 7.0.15: the same sequence of commands on
//! both, then the figures compared (times masked, lines sorted: Redis
//! lists commands in its hash table's order).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Differential, Pair, RawClient, TestServer};

/// A decoded RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Value>),
}

fn parse(bytes: &[u8]) -> Value {
    let (value, rest) = parse_one(bytes);
    assert!(rest.is_empty(), "trailing bytes after a reply");
    value
}

fn parse_one(bytes: &[u8]) -> (Value, &[u8]) {
    let end = bytes.windows(2).position(|w| w == b"\r\n").expect("a line");
    let line = std::str::from_utf8(&bytes[1..end]).expect("utf-8 header");
    let rest = &bytes[end + 2..];
    match bytes[0] {
        b'+' => (Value::Simple(line.to_string()), rest),
        b'-' => (Value::Error(line.to_string()), rest),
        b':' => (Value::Int(line.parse().expect("integer")), rest),
        b'$' => {
            let len: i64 = line.parse().expect("length");
            if len < 0 {
                return (Value::Nil, rest);
            }
            let len = len as usize;
            (Value::Bulk(rest[..len].to_vec()), &rest[len + 2..])
        }
        b'*' => {
            let len: i64 = line.parse().expect("length");
            if len < 0 {
                return (Value::Nil, rest);
            }
            let mut items = Vec::new();
            let mut rest = rest;
            for _ in 0..len {
                let (item, after) = parse_one(rest);
                items.push(item);
                rest = after;
            }
            (Value::Array(items), rest)
        }
        other => panic!("unexpected reply type {}", other as char),
    }
}

fn array(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn bulk(value: &Value) -> String {
    match value {
        Value::Bulk(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// The lines of an INFO section's body (the `# Title` line dropped).
fn info_lines(client: &mut RawClient, section: &str) -> Vec<String> {
    let text = bulk(&parse(&client.command(&["INFO", section])));
    text.split("\r\n")
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// A commandstats line with its times masked: the counts stay.
fn mask_times(line: &str) -> String {
    let (name, fields) = line.split_once(':').expect("name:fields");
    let fields: Vec<String> = fields
        .split(',')
        .map(|field| match field.split_once('=') {
            Some((key @ ("usec" | "usec_per_call"), _)) => format!("{key}=T"),
            _ => field.to_string(),
        })
        .collect();
    format!("{name}:{}", fields.join(","))
}

/// A latencystats line with every number as N: the shape stays.
fn mask_numbers(line: &str) -> String {
    let (name, fields) = line.split_once(':').expect("name:fields");
    let fields: Vec<String> = fields
        .split(',')
        .map(|field| {
            let (key, value) = field.split_once('=').expect("key=value");
            let shape: String = value
                .chars()
                .map(|c| if c.is_ascii_digit() { 'N' } else { c })
                .collect();
            assert!(shape.ends_with(".NNN"), "{line}: three decimals");
            format!("{key}=N.NNN")
        })
        .collect();
    format!("{name}:{}", fields.join(","))
}

fn commandstats(client: &mut RawClient) -> Vec<String> {
    let mut lines: Vec<String> = info_lines(client, "commandstats")
        .iter()
        .filter(|line| !line.starts_with("cmdstat_info:"))
        .map(|line| mask_times(line))
        .collect();
    lines.sort();
    lines
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

fn total_error_replies(client: &mut RawClient) -> String {
    info_lines(client, "stats")
        .into_iter()
        .find(|line| line.starts_with("total_error_replies:"))
        .expect("total_error_replies in INFO stats")
}

/// The sequence of the issue: plain commands, MULTI/EXEC (with a failing
/// command, and aborted by a queued arity error), scripts calling commands
/// (with pcall, with a failing call, with an unknown command), an unknown
/// command, wrong arities, failed commands.
const SEQUENCE: &str = "
    SET a b
    GET a
    nosuchcommand x y
    SET k
    LPUSH a x
    INCR a
    CONFIG
    CONFIG nosuchsub
    CONFIG GET
    MULTI
    SET x 1
    INCR a
    GET x
    EXEC
    MULTI
    SET x
    EXEC
    EXEC
    EVAL \"redis.call('set','y','2')\" 0
    EVAL \"return redis.pcall('incr','a')\" 0
    EVAL \"return redis.call('incr','a')\" 0
    EVAL \"return redis.call('nosuch')\" 0
    EVAL \"redis.pcall('incr','a') return 1\" 0
    EVAL \"redis.pcall('nosuch') return 1\" 0
    EVAL \"return redis.pcall('get')\" 0
    EVAL \"return redis.call('get')\" 0
    EVAL_RO \"return redis.call('set','a','b')\" 0
    EVAL \"return redis.pcall('multi')\" 0
    EVAL
    EVALSHA 0123456789012345678901234567890123456789 0
    AUTH nopass
    HSET h f v
    HGET h f
    GET h
";

/// Splits a line of [`SEQUENCE`] into arguments (double quotes group).
fn split_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

fn run_sequence(clients: &mut common::Clients) {
    for line in SEQUENCE.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let args = split_args(line);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        clients.same(&args);
    }
}

#[test]
fn commandstats_and_errorstats_count_as_redis() {
    let pair = Pair::start();
    let mut clients = pair.clients();
    clients.same(&["CONFIG", "RESETSTAT"]);
    run_sequence(&mut clients);
    let ours = commandstats(&mut clients.ours);
    let theirs = commandstats(&mut clients.theirs);
    assert_eq!(ours, theirs);
    // The figures are there, not just the same on both.
    assert!(ours.contains(
        &"cmdstat_set:calls=3,usec=T,usec_per_call=T,rejected_calls=3,failed_calls=0".to_string()
    ));
    assert!(ours.contains(
        &"cmdstat_config:calls=0,usec=T,usec_per_call=T,rejected_calls=1,failed_calls=0"
            .to_string()
    ));
    assert!(ours.iter().any(|line| line.starts_with("cmdstat_eval:")));
    let ours_errors = sorted(info_lines(&mut clients.ours, "errorstats"));
    let theirs_errors = sorted(info_lines(&mut clients.theirs, "errorstats"));
    assert_eq!(ours_errors, theirs_errors);
    assert!(ours_errors
        .iter()
        .any(|l| l.starts_with("errorstat_EXECABORT:")));
    assert!(ours_errors
        .iter()
        .any(|l| l.starts_with("errorstat_WRONGTYPE:")));
    assert!(ours_errors
        .iter()
        .any(|l| l.starts_with("errorstat_NOSCRIPT:")));
    // total_error_replies agrees with errorstats, on both.
    let total = total_error_replies(&mut clients.ours);
    assert_eq!(total, total_error_replies(&mut clients.theirs));
    let summed: u64 = ours_errors
        .iter()
        .map(|line| {
            line.rsplit_once("count=")
                .and_then(|(_, n)| n.parse::<u64>().ok())
                .expect("count")
        })
        .sum();
    assert_eq!(total, format!("total_error_replies:{summed}"));
}

#[test]
fn errorstats_and_commandstats_are_in_info_all_not_in_default() {
    let mut diff = Differential::start();
    diff.check(&["SET", "a", "b"]);
    diff.check(&["GET", "a", "b"]);
    let titles = |client: &mut RawClient, args: &[&str]| -> Vec<String> {
        bulk(&parse(&client.command(args)))
            .split("\r\n")
            .filter(|line| line.starts_with("# "))
            .map(str::to_string)
            .filter(|title| {
                ["# Commandstats", "# Errorstats", "# Latencystats"].contains(&title.as_str())
            })
            .collect()
    };
    for args in [
        &["INFO"][..],
        &["INFO", "all"],
        &["INFO", "everything"],
        &["INFO", "commandstats", "latencystats"],
    ] {
        assert_eq!(
            titles(&mut diff.larder, args),
            titles(&mut diff.redis, args),
            "{args:?}"
        );
    }
    assert_eq!(
        titles(&mut diff.larder, &["INFO", "all"]),
        vec!["# Commandstats", "# Errorstats", "# Latencystats"]
    );
}

#[test]
fn latencystats_lines_and_settings_as_redis() {
    let mut diff = Differential::start();
    diff.script(
        "
        CONFIG GET latency-tracking
        CONFIG GET latency-tracking-info-percentiles
        CONFIG SET latency-tracking-info-percentiles 10.0 50.0 a
        CONFIG SET latency-tracking-info-percentiles 101
        CONFIG SET latency-tracking maybe
        CONFIG SET slowlog-log-slower-than -2
        CONFIG SET slowlog-max-len -1
        CONFIG SET latency-monitor-threshold -1
        CONFIG GET slowlog-log-slower-than
        CONFIG GET slowlog-max-len
        CONFIG GET latency-monitor-threshold
        CONFIG RESETSTAT
        SET a b
        GET a
        ",
    );
    // Not compared: the ids differ.
    diff.larder.command(&["CLIENT", "ID"]);
    diff.redis.command(&["CLIENT", "ID"]);
    let shape = |client: &mut RawClient| -> Vec<String> {
        sorted(
            info_lines(client, "latencystats")
                .iter()
                .filter(|line| !line.contains("_info:"))
                .map(|line| mask_numbers(line))
                .collect(),
        )
    };
    let ours = shape(&mut diff.larder);
    assert_eq!(ours, shape(&mut diff.redis));
    assert!(
        ours.contains(&"latency_percentiles_usec_set:p50=N.NNN,p99=N.NNN,p99.9=N.NNN".to_string())
    );
    assert!(ours.contains(
        &"latency_percentiles_usec_client|id:p50=N.NNN,p99=N.NNN,p99.9=N.NNN".to_string()
    ));

    diff.check(&[
        "CONFIG",
        "SET",
        "latency-tracking-info-percentiles",
        "0.0 50.0 100.0",
    ]);
    diff.check(&["CONFIG", "GET", "latency-tracking-info-percentiles"]);
    let ours = shape(&mut diff.larder);
    assert_eq!(ours, shape(&mut diff.redis));
    assert!(
        ours.contains(&"latency_percentiles_usec_get:p0=N.NNN,p50=N.NNN,p100=N.NNN".to_string())
    );

    // Off: nothing recorded after a reset.
    diff.check(&["CONFIG", "SET", "latency-tracking", "no"]);
    diff.check(&["CONFIG", "RESETSTAT"]);
    diff.check(&["SET", "a", "b"]);
    assert_eq!(shape(&mut diff.larder), Vec::<String>::new());
    assert_eq!(shape(&mut diff.redis), Vec::<String>::new());
}

#[test]
fn config_resetstat_clears_the_stats_but_not_the_slowlog() {
    let pair = Pair::start();
    let mut clients = pair.clients();
    clients.same(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    clients.same(&["SLOWLOG", "RESET"]);
    run_sequence(&mut clients);
    let before = String::from_utf8_lossy(&clients.ours.command(&["SLOWLOG", "LEN"])).into_owned();
    clients.same(&["CONFIG", "RESETSTAT"]);
    let ours = commandstats(&mut clients.ours);
    assert_eq!(ours, commandstats(&mut clients.theirs));
    assert_eq!(
        ours,
        vec!["cmdstat_config|resetstat:calls=1,usec=T,usec_per_call=T,rejected_calls=0,failed_calls=0"]
    );
    assert_eq!(
        info_lines(&mut clients.ours, "errorstats"),
        Vec::<String>::new()
    );
    assert_eq!(
        info_lines(&mut clients.theirs, "errorstats"),
        Vec::<String>::new()
    );
    assert_eq!(
        total_error_replies(&mut clients.ours),
        "total_error_replies:0"
    );
    let latency: Vec<String> = info_lines(&mut clients.ours, "latencystats");
    assert!(
        latency.iter().all(
            |line| line.starts_with("latency_percentiles_usec_config|resetstat:")
                || line.starts_with("latency_percentiles_usec_info:")
        ),
        "{latency:?}"
    );
    // SLOWLOG LEN and INFO ran since: the log grew, it was not emptied.
    let after = String::from_utf8_lossy(&clients.ours.command(&["SLOWLOG", "LEN"])).into_owned();
    let count = |reply: &str| {
        reply
            .trim_start_matches(':')
            .trim()
            .parse::<u64>()
            .expect("len")
    };
    assert!(count(&after) > count(&before), "{before} -> {after}");
}

#[test]
fn slowlog_replies_as_redis() {
    let mut diff = Differential::start();
    diff.script(
        "
        SLOWLOG HELP
        SLOWLOG RESET
        SLOWLOG LEN
        SLOWLOG GET
        SLOWLOG GET x
        SLOWLOG GET -2
        SLOWLOG GET 1 2
        SLOWLOG LEN extra
        SLOWLOG NOSUCH
        SLOWLOG
        ",
    );
}

/// An entry with what differs between servers masked: the time (checked
/// to be now), the duration and the client's port.
fn masked_entry(entry: &Value) -> Vec<String> {
    let fields = array(entry);
    assert_eq!(fields.len(), 6, "{entry:?}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((int(&fields[1]) - now).abs() <= 5, "time is now");
    assert!(int(&fields[2]) >= 0);
    let argv: Vec<String> = array(&fields[3]).iter().map(bulk).collect();
    let addr = bulk(&fields[4]);
    let addr = match addr.rsplit_once(':') {
        Some(("127.0.0.1", _)) => "127.0.0.1:PORT".to_string(),
        _ => addr,
    };
    let mut masked = vec![int(&fields[0]).to_string()];
    masked.extend(argv);
    masked.push(addr);
    masked.push(bulk(&fields[5]));
    masked
}

#[test]
fn slowlog_entries_as_redis_logs_them() {
    let pair = Pair::start();
    let mut clients = pair.clients();
    clients.same(&["CLIENT", "SETNAME", "observer"]);
    clients.same(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let long_key = "k".repeat(200);
    clients.same(&["SET", &long_key, "v"]);
    let mut many = vec!["DEL".to_string()];
    many.extend((0..40).map(|n| format!("key{n}")));
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    clients.same(&many);
    clients.same(&["MULTI"]);
    clients.same(&["SET", "x", "1"]);
    clients.same(&["EXEC"]);
    clients.same(&["EVAL", "return redis.call('get','x')", "0"]);
    clients.same(&["AUTH", "secret"]);
    let ours = parse(&clients.ours.command(&["SLOWLOG", "GET", "-1"]));
    let theirs = parse(&clients.theirs.command(&["SLOWLOG", "GET", "-1"]));
    let ours: Vec<Vec<String>> = array(&ours).iter().map(masked_entry).collect();
    let theirs: Vec<Vec<String>> = array(&theirs).iter().map(masked_entry).collect();
    assert_eq!(ours, theirs);
    // What Redis trims, trimmed byte for byte; EXEC left out (its
    // commands are there); AUTH's password redacted; the script's own
    // command as run by the script client.
    let flat: Vec<&str> = ours.iter().flatten().map(String::as_str).collect();
    assert!(flat.contains(&format!("{}... (72 more bytes)", "k".repeat(128)).as_str()));
    assert!(flat.contains(&"... (10 more arguments)"));
    assert!(!flat.contains(&"EXEC") && !flat.contains(&"secret"));
    assert!(ours
        .iter()
        .any(|entry| entry[1..3] == ["AUTH", "(redacted)"]));
    assert!(ours
        .iter()
        .any(|entry| entry[1] == "get" && entry.ends_with(&["?:0".into(), String::new()])));
    assert!(ours
        .iter()
        .any(|entry| entry.last().map(String::as_str) == Some("observer")));
    let del = ours
        .iter()
        .find(|entry| entry[1] == "DEL")
        .expect("DEL logged");
    assert_eq!(del.len(), 1 + 32 + 2);

    clients.same(&["CONFIG", "SET", "slowlog-max-len", "2"]);
    clients.same(&["SET", "y", "1"]);
    clients.same(&["SLOWLOG", "LEN"]);
    clients.same(&["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    clients.same(&["SLOWLOG", "RESET"]);
    clients.same(&["GET", "y"]);
    assert_eq!(clients.same(&["SLOWLOG", "LEN"]), ":0\r\n");
}

#[test]
fn latency_monitor_replies_as_redis() {
    let mut diff = Differential::start();
    diff.script(
        "
        LATENCY HELP
        LATENCY LATEST
        LATENCY HISTORY command
        LATENCY GRAPH command
        LATENCY RESET
        LATENCY DOCTOR
        LATENCY NOSUCH
        LATENCY GRAPH
        LATENCY HISTOGRAM nosuchcommand
        CONFIG SET latency-monitor-threshold 20
        LATENCY DOCTOR
        ",
    );
    // A command slow enough on both: a script's busy loop (150 ms in
    // Redis on our VM). The threshold is well under it, and well over what
    // a busy machine adds to a quick command, so that the script's spike
    // is the only one; the events the commands above may have logged go
    // first all the same.
    diff.larder.command(&["LATENCY", "RESET"]);
    diff.redis.command(&["LATENCY", "RESET"]);
    let busy = "local i = 0 while i < 10000000 do i = i + 1 end return i";
    diff.check(&["EVAL", busy, "0"]);
    for client in [&mut diff.larder, &mut diff.redis] {
        let latest = parse(&client.command(&["LATENCY", "LATEST"]));
        // Larder may also show an `expire-cycle` that waited for the
        // shards the script held.
        let events = array(&latest);
        let event = events
            .iter()
            .map(array)
            .find(|event| bulk(&event[0]) == "command")
            .expect("a command event");
        assert!(int(&event[2]) >= 20 && int(&event[3]) >= int(&event[2]));
        let history = parse(&client.command(&["LATENCY", "HISTORY", "command"]));
        let samples = array(&history);
        assert_eq!(samples.len(), 1);
        assert_eq!(array(&samples[0])[0], event[1]);
        let graph = bulk(&parse(&client.command(&["LATENCY", "GRAPH", "command"])));
        let lines: Vec<&str> = graph.split('\n').collect();
        assert!(lines[0].starts_with("command - high "), "{graph}");
        assert_eq!(lines[1], "-".repeat(80));
        assert_eq!(lines[5], "_");
        let doctor = bulk(&parse(&client.command(&["LATENCY", "DOCTOR"])));
        assert!(
            doctor.contains("1. command: 1 latency spikes (average "),
            "{doctor}"
        );
        assert!(doctor.contains("- Check your Slow Log"), "{doctor}");
    }
    diff.check(&["LATENCY", "RESET", "command", "nosuch"]);
    let after = parse(&diff.larder.command(&["LATENCY", "LATEST"]));
    assert!(array(&after)
        .iter()
        .all(|event| bulk(&array(event)[0]) != "command"));
    diff.larder.command(&["LATENCY", "RESET"]);
    diff.redis.command(&["LATENCY", "RESET"]);
    diff.check(&["CONFIG", "SET", "latency-monitor-threshold", "0"]);
    diff.check(&["LATENCY", "LATEST"]);
}

#[test]
fn latency_histogram_as_redis_shapes_it() {
    let mut diff = Differential::start();
    diff.check(&["CONFIG", "RESETSTAT"]);
    for _ in 0..3 {
        diff.check(&["SET", "a", "b"]);
    }
    diff.check(&["CONFIG", "GET", "maxmemory"]);
    for client in [&mut diff.larder, &mut diff.redis] {
        let reply = parse(&client.command(&["LATENCY", "HISTOGRAM", "set", "config", "nosuch"]));
        let items = array(&reply);
        // SET, and the CONFIG subcommands that ran since the reset.
        assert_eq!(items.len(), 6, "{reply:?}");
        let mut names: Vec<String> = items.iter().step_by(2).map(bulk).collect();
        names.sort();
        assert_eq!(names, vec!["config|get", "config|resetstat", "set"]);
        let at = items
            .iter()
            .position(|item| *item == Value::Bulk(b"set".to_vec()));
        let figures = array(&items[at.expect("set") + 1]);
        assert_eq!(bulk(&figures[0]), "calls");
        assert_eq!(int(&figures[1]), 3);
        assert_eq!(bulk(&figures[2]), "histogram_usec");
        let buckets: Vec<i64> = array(&figures[3]).iter().map(int).collect();
        assert!(buckets.len() >= 2 && buckets.len().is_multiple_of(2));
        // Cumulative counts, rising to the calls; bucket bounds rising.
        assert_eq!(*buckets.last().expect("a bucket"), 3);
        for pair in buckets.chunks(2).collect::<Vec<_>>().windows(2) {
            assert!(pair[0][0] < pair[1][0] && pair[0][1] < pair[1][1]);
        }
        // All of them: RESETSTAT and INFO ran too.
        let all = parse(&client.command(&["LATENCY", "HISTOGRAM"]));
        assert!(array(&all).len() >= 6);
    }
}

#[test]
fn a_blocked_command_counts_once_and_an_unblock_error_as_redis() {
    let pair = Pair::start();
    let mut clients = pair.clients();
    clients.same(&["CONFIG", "RESETSTAT"]);
    for (blocked, control) in [
        (&mut pair.larder.raw(), &mut clients.ours),
        (&mut pair.redis.raw(), &mut clients.theirs),
    ] {
        let id = String::from_utf8_lossy(&blocked.command(&["CLIENT", "ID"]))
            .trim_start_matches(':')
            .trim()
            .to_string();
        blocked.send(&common::encode_command(&[b"BLPOP", b"list", b"0"]));
        wait_blocked(control);
        control.command(&["LPUSH", "list", "a"]);
        assert!(String::from_utf8_lossy(&blocked.read_reply()).contains("list"));
        blocked.send(&common::encode_command(&[b"BLPOP", b"list", b"0"]));
        wait_blocked(control);
        control.command(&["CLIENT", "UNBLOCK", &id, "ERROR"]);
        assert!(String::from_utf8_lossy(&blocked.read_reply()).starts_with("-UNBLOCKED"));
    }
    // Redis also counts CLIENT UNBLOCK as failed (the blocked client's
    // error reply goes out while it runs); Larder does not.
    let without_unblock = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|line| !line.starts_with("cmdstat_client|unblock:"))
            .collect()
    };
    let ours = without_unblock(commandstats(&mut clients.ours));
    assert_eq!(ours, without_unblock(commandstats(&mut clients.theirs)));
    assert!(ours.contains(
        &"cmdstat_blpop:calls=2,usec=T,usec_per_call=T,rejected_calls=0,failed_calls=1".to_string()
    ));
    assert_eq!(
        sorted(info_lines(&mut clients.ours, "errorstats")),
        sorted(info_lines(&mut clients.theirs, "errorstats"))
    );
    assert_eq!(
        total_error_replies(&mut clients.ours),
        total_error_replies(&mut clients.theirs)
    );

    // A timeout: as in Redis 7.0, no latency sample, no slow log entry.
    clients.same(&["CONFIG", "RESETSTAT"]);
    clients.same(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    clients.same(&["SLOWLOG", "RESET"]);
    clients.same(&["BLPOP", "nothing", "0.01"]);
    let blpop_latency = |client: &mut RawClient| -> Vec<String> {
        info_lines(client, "latencystats")
            .into_iter()
            .filter(|line| line.starts_with("latency_percentiles_usec_blpop:"))
            .collect()
    };
    assert_eq!(blpop_latency(&mut clients.ours), Vec::<String>::new());
    assert_eq!(blpop_latency(&mut clients.theirs), Vec::<String>::new());
    for client in [&mut clients.ours, &mut clients.theirs] {
        let log = parse(&client.command(&["SLOWLOG", "GET", "-1"]));
        assert!(array(&log)
            .iter()
            .all(|entry| masked_entry(entry)[1] != "BLPOP"));
    }
    let ours = commandstats(&mut clients.ours);
    assert!(ours
        .iter()
        .any(|line| line.starts_with("cmdstat_blpop:calls=1,")));
    assert_eq!(ours, commandstats(&mut clients.theirs));
}

#[test]
fn protocol_errors_count_as_errors() {
    let pair = Pair::start();
    let mut clients = pair.clients();
    clients.same(&["CONFIG", "RESETSTAT"]);
    for server in [pair.larder.addr, pair.redis.addr] {
        let mut bad = RawClient::connect(server);
        bad.send(b"*1\r\n$x\r\n");
        assert!(String::from_utf8_lossy(&bad.read_reply()).starts_with("-ERR Protocol error"));
    }
    assert_eq!(
        info_lines(&mut clients.ours, "errorstats"),
        info_lines(&mut clients.theirs, "errorstats")
    );
    assert_eq!(
        total_error_replies(&mut clients.ours),
        "total_error_replies:1"
    );
}

fn wait_blocked(client: &mut RawClient) {
    for _ in 0..500 {
        let info = bulk(&parse(&client.command(&["INFO", "clients"])));
        if info.contains("blocked_clients:1\r\n") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the client did not block");
}

#[test]
fn every_command_has_a_statistics_slot() {
    let server = TestServer::start();
    let names: Vec<(usize, &str)> = larder::commands::stat_names().collect();
    assert!(names.len() < larder::shared::command_stats::MAX_COMMANDS);
    for spec in larder::commands::all_commands() {
        let slot = larder::commands::stat_slot(spec);
        assert_eq!(names[slot].1, spec.name);
    }
    drop(server);
}
