//! The command table: every family's `COMMANDS`, indexed by name.

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

/// The commands by name: an open-addressed table of at most a quarter
/// full, probed linearly. Looked up twice for every request of a pipeline
/// (its prefetch, then its run), so it hashes the name as it stands,
/// without the lowercase copy, UTF-8 check and general-purpose hash a
/// `HashMap<&str, _>` lookup needs.
struct Index {
    slots: Box<[Option<&'static CommandSpec>]>,
    mask: usize,
}

impl Index {
    fn build() -> Index {
        let count = all_commands().count();
        let size = (count * 4).next_power_of_two();
        let mut slots = vec![None; size].into_boxed_slice();
        let mask = size - 1;
        for spec in all_commands() {
            let mut slot = name_hash(spec.name.as_bytes()) & mask;
            while slots[slot].is_some() {
                slot = (slot + 1) & mask;
            }
            slots[slot] = Some(spec);
        }
        Index { slots, mask }
    }

    fn get(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        let mut slot = name_hash(name) & self.mask;
        loop {
            let spec = self.slots[slot]?;
            if spec.name.len() == name.len() && spec.name.as_bytes().eq_ignore_ascii_case(name) {
                return Some(spec);
            }
            slot = (slot + 1) & self.mask;
        }
    }
}

/// FNV-1a over the name's bytes with bit 5 set, so that a letter hashes
/// the same in either case (other bytes only need to hash alike each time:
/// a match is confirmed by comparing the names).
fn name_hash(name: &[u8]) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in name {
        hash = (hash ^ u64::from(byte | 0x20)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash ^ (hash >> 29)) as usize
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(Index::build)
}

/// Finds a command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    index().get(name)
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
        assert!(lookup(b"").is_none());
        // Bytes that differ from a name only in bit 5 hash alike: the
        // names are compared too.
        assert!(lookup(b"georadius\x7fro").is_none());
    }

    #[test]
    fn every_command_is_found_in_any_case() {
        for spec in all_commands() {
            let upper = spec.name.to_ascii_uppercase();
            assert_eq!(lookup(upper.as_bytes()).map(|s| s.name), Some(spec.name));
            assert_eq!(
                lookup(spec.name.as_bytes()).map(|s| s.name),
                Some(spec.name)
            );
        }
    }
}
