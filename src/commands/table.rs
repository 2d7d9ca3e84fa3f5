//! The command table: every family's `COMMANDS`, indexed by name.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::CommandSpec;

/// Every family's command list.
fn families() -> [&'static [CommandSpec]; 27] {
    [
        super::acl::COMMANDS,
        super::command::COMMANDS,
        super::config::COMMANDS,
        super::connection::COMMANDS,
        super::debug::COMMANDS,
        super::dump::COMMANDS,
        super::migrate::COMMANDS,
        super::geo::COMMANDS,
        super::hash::COMMANDS,
        super::hyperloglog::COMMANDS,
        super::info::COMMANDS,
        super::keyspace::COMMANDS,
        super::latency::COMMANDS,
        super::list::COMMANDS,
        super::object::COMMANDS,
        super::pubsub::COMMANDS,
        super::scripting::COMMANDS,
        super::server::COMMANDS,
        super::set::COMMANDS,
        super::slowlog::COMMANDS,
        super::sort::COMMANDS,
        super::stream::COMMANDS,
        super::stream_groups::COMMANDS,
        super::string::COMMANDS,
        super::transaction::COMMANDS,
        super::writebehind::COMMANDS,
        super::zset::COMMANDS,
    ]
}

/// Every command Larder implements, in no particular order.
pub fn all_commands() -> impl Iterator<Item = &'static CommandSpec> {
    families().into_iter().flat_map(|family| family.iter())
}

type Index = HashMap<&'static str, &'static CommandSpec, foldhash::fast::RandomState>;

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| all_commands().map(|spec| (spec.name, spec)).collect())
}

/// Finds a command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    for (dst, src) in lower.iter_mut().zip(name) {
        *dst = src.to_ascii_lowercase();
    }
    let name = std::str::from_utf8(lower).ok()?;
    index().get(name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lowercase() {
        let mut seen = std::collections::HashSet::new();
        for spec in all_commands() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(seen.insert(spec.name), "duplicate command {}", spec.name);
            assert!(!spec.summary.is_empty(), "{} has no summary", spec.name);
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").map(|s| s.name), Some("get"));
        assert!(lookup(b"nope").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
    }
}
