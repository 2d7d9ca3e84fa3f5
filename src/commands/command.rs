//! COMMAND: the command table as clients see it (INFO, DOCS, LIST,
//! COUNT, GETKEYS).

use super::flags::*;
use super::parse::{glob_match, is_keyword};
use super::{all_commands, lookup, resolve, CommandSpec, Ctx, KeySpec, NO_KEYS};
use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;

pub static COMMANDS: &[CommandSpec] =
    &[
        CommandSpec::new("command", -1, LOADING | STALE, NO_KEYS, command_all)
            .acl(&["connection"])
            .tips(&["nondeterministic_output_order"])
            .doc(
                "server",
                "2.8.13",
                "Returns detailed information about all commands.",
                "O(N) where N is the total number of Redis commands",
            )
            .subcommands(COMMAND_SUBCOMMANDS),
    ];

static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new("command|count", 2, LOADING | STALE, NO_KEYS, command_count)
        .acl(&["connection"])
        .doc("server", "2.8.13", "Returns a count of commands.", "O(1)"),
    CommandSpec::new("command|info", -2, LOADING | STALE, NO_KEYS, command_info)
        .acl(&["connection"])
        .tips(&["nondeterministic_output_order"])
        .doc(
            "server",
            "2.8.13",
            "Returns information about one, multiple or all commands.",
            "O(N) where N is the number of commands to look up",
        ),
    CommandSpec::new("command|list", -2, LOADING | STALE, NO_KEYS, command_list)
        .acl(&["connection"])
        .tips(&["nondeterministic_output_order"])
        .doc(
            "server",
            "7.0.0",
            "Returns a list of command names.",
            "O(N) where N is the total number of Redis commands",
        ),
    CommandSpec::new("command|docs", -2, LOADING | STALE, NO_KEYS, command_docs)
        .acl(&["connection"])
        .tips(&["nondeterministic_output_order"])
        .doc(
            "server",
            "7.0.0",
            "Returns documentary information about one, multiple or all commands.",
            "O(N) where N is the number of commands to look up",
        ),
    CommandSpec::new(
        "command|getkeys",
        -4,
        LOADING | STALE,
        NO_KEYS,
        command_getkeys,
    )
    .acl(&["connection"])
    .doc(
        "server",
        "2.8.13",
        "Extracts the key names from an arbitrary command.",
        "O(N) where N is the number of arguments to the command",
    ),
    CommandSpec::new("command|help", 2, LOADING | STALE, NO_KEYS, command_help)
        .acl(&["connection"])
        .doc(
            "server",
            "5.0.0",
            "Returns helpful text about the different subcommands.",
            "O(1)",
        ),
];

// ---------------------------------------------------------------- COMMAND

fn command_all(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let specs: Vec<&CommandSpec> = all_commands().collect();
    ctx.out.array(specs.len());
    for spec in specs {
        write_command_info(ctx.out, spec);
    }
    Ok(())
}

fn command_count(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    ctx.out.int(all_commands().count() as i64);
    Ok(())
}

/// Looks a command up by name, including `container|sub` names.
fn find_by_full_name(name: &[u8]) -> Option<&'static CommandSpec> {
    let text = String::from_utf8_lossy(name).to_ascii_lowercase();
    match text.split_once('|') {
        None => lookup(name),
        Some((container, _)) => lookup(container.as_bytes())?
            .subcommands
            .iter()
            .find(|sub| sub.name == text),
    }
}

fn command_info(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if argv.len() == 2 {
        return command_all(ctx, argv);
    }
    ctx.out.array(argv.len() - 2);
    for name in &argv[2..] {
        match find_by_full_name(name) {
            Some(spec) => write_command_info(ctx.out, spec),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn command_list(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    // Like Redis, the list names subcommands too (`client|setname`), unlike
    // COMMAND COUNT.
    let every = || all_commands().flat_map(|s| std::iter::once(s).chain(s.subcommands.iter()));
    let names: Vec<&str> = match argv.len() {
        2 => every().map(|s| s.name).collect(),
        5 if is_keyword(argv[2], "FILTERBY") => {
            let value = argv[4];
            let filter = argv[3];
            if is_keyword(filter, "PATTERN") {
                every()
                    .filter(|s| glob_match(value, s.name.as_bytes(), true))
                    .map(|s| s.name)
                    .collect()
            } else if is_keyword(filter, "ACLCAT") {
                let category = String::from_utf8_lossy(value).to_ascii_lowercase();
                every()
                    .filter(|s| s.all_acl_categories().contains(&category.as_str()))
                    .map(|s| s.name)
                    .collect()
            } else if is_keyword(filter, "MODULE") {
                Vec::new()
            } else {
                return Err(Error::syntax());
            }
        }
        _ => return Err(Error::syntax()),
    };
    ctx.out.array(names.len());
    for name in names {
        ctx.out.bulk(name.as_bytes());
    }
    Ok(())
}

fn command_docs(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let specs: Vec<&CommandSpec> = if argv.len() == 2 {
        all_commands().collect()
    } else {
        argv[2..]
            .iter()
            .filter_map(|n| find_by_full_name(n))
            .collect()
    };
    ctx.out.map(specs.len());
    for spec in specs {
        ctx.out.bulk(spec.name.as_bytes());
        write_command_docs(ctx.out, spec);
    }
    Ok(())
}

fn command_getkeys(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let target = &argv[2..];
    let spec = match resolve(target) {
        Ok(spec) => spec,
        Err(e) if e.message().starts_with("ERR wrong number") => {
            return Err(Error::err(
                "Invalid number of arguments specified for command",
            ))
        }
        Err(_) => return Err(Error::err("Invalid command specified")),
    };
    let positions = spec.key_positions(target);
    if positions.is_empty() && !spec.has(NO_MANDATORY_KEYS) {
        return Err(Error::err("The command has no key arguments"));
    }
    ctx.out.array(positions.len());
    for i in positions {
        ctx.out.bulk(target[i]);
    }
    Ok(())
}

fn command_help(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    super::reply_help(
        ctx,
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
        ],
    );
    Ok(())
}

/// The legacy (first, last, step) triple COMMAND INFO reports.
fn legacy_key_triple(spec: &CommandSpec) -> (i64, i64, i64) {
    match spec.keys {
        KeySpec::Range { first, last, step } => (first as i64, last as i64, step as i64),
        KeySpec::DestAndNumKeys { .. } => (1, 1, 1),
        KeySpec::None | KeySpec::NumKeys { .. } => (0, 0, 0),
    }
}

fn write_command_info(out: &mut ReplyBuf, spec: &CommandSpec) {
    let mut flag_names: Vec<&str> = super::flags::NAMES
        .iter()
        .filter(|(bit, _)| spec.has(*bit))
        .map(|(_, name)| *name)
        .collect();
    if matches!(
        spec.keys,
        KeySpec::NumKeys { .. } | KeySpec::DestAndNumKeys { .. }
    ) {
        flag_names.push("movablekeys");
    }
    let (first, last, step) = legacy_key_triple(spec);
    out.array(10);
    out.bulk(spec.name.as_bytes());
    out.int(spec.arity as i64);
    out.set(flag_names.len());
    for name in flag_names {
        out.simple(name);
    }
    out.int(first);
    out.int(last);
    out.int(step);
    let categories = spec.all_acl_categories();
    out.set(categories.len());
    for category in categories {
        out.simple(&format!("@{category}"));
    }
    out.set(spec.tips.len());
    for tip in spec.tips {
        out.bulk(tip.as_bytes());
    }
    write_key_specs(out, spec);
    // Redis replies an empty set when there are no subcommands, an array
    // otherwise.
    if spec.subcommands.is_empty() {
        out.set(0);
    } else {
        out.array(spec.subcommands.len());
    }
    for sub in spec.subcommands {
        write_command_info(out, sub);
    }
}

fn write_key_specs(out: &mut ReplyBuf, spec: &CommandSpec) {
    let access: &[&str] = if !spec.key_spec_flags.is_empty() {
        spec.key_spec_flags
    } else if spec.has(WRITE) {
        &["RW", "update"]
    } else {
        &["RO", "access"]
    };
    match spec.keys {
        KeySpec::None => out.set(0),
        KeySpec::Range { first, last, step } => {
            let last_key = if last < 0 {
                last as i64
            } else {
                (last - first) as i64
            };
            out.set(1);
            write_key_spec(
                out,
                access,
                first as i64,
                FindKeys::Range(last_key, step as i64),
            );
        }
        KeySpec::NumKeys { numkeys_index } => {
            out.set(1);
            write_key_spec(out, access, numkeys_index as i64, FindKeys::KeyNum);
        }
        KeySpec::DestAndNumKeys { numkeys_index } => {
            // As Redis reports ZUNIONSTORE: the destination (overwritten),
            // then the source keys after the count.
            out.array(2);
            write_key_spec(out, &["OW", "update"], 1, FindKeys::Range(0, 1));
            write_key_spec(
                out,
                &["RO", "access"],
                numkeys_index as i64,
                FindKeys::KeyNum,
            );
        }
    }
}

/// How a key spec finds its keys from where its search begins.
enum FindKeys {
    /// `range`: last key (relative, or negative from the end) and step.
    Range(i64, i64),
    /// `keynum`: the count right at the start, the keys after it.
    KeyNum,
}

/// One key spec as COMMAND INFO shows it: its flags, an `index` begin
/// search at `index`, and how it finds the keys.
fn write_key_spec(out: &mut ReplyBuf, flags: &[&str], index: i64, find: FindKeys) {
    out.map(3);
    out.bulk(b"flags");
    out.set(flags.len());
    flags.iter().for_each(|f| out.simple(f));
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"index");
    out.bulk(b"spec");
    out.map(1);
    out.bulk(b"index");
    out.int(index);
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    match find {
        FindKeys::Range(last_key, step) => {
            out.bulk(b"range");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"lastkey");
            out.int(last_key);
            out.bulk(b"keystep");
            out.int(step);
            out.bulk(b"limit");
            out.int(0);
        }
        FindKeys::KeyNum => {
            out.bulk(b"keynum");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"keynumidx");
            out.int(0);
            out.bulk(b"firstkey");
            out.int(1);
            out.bulk(b"keystep");
            out.int(1);
        }
    }
}

fn write_command_docs(out: &mut ReplyBuf, spec: &CommandSpec) {
    super::docs::write(out, spec);
}
