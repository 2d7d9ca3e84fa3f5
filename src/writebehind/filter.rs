//! Which keys are written behind: `write-behind-match` (globs for every
//! database) and `write-behind-match-db` (globs for named databases, which
//! then use only their own).

use crate::glob::glob_match;

/// The globs of `write-behind-match` and `write-behind-match-db`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFilter {
    /// Globs for the databases `per_db` does not name.
    default: Vec<Vec<u8>>,
    /// Database number and its globs.
    per_db: Vec<(usize, Vec<Vec<u8>>)>,
}

impl KeyFilter {
    /// Parses `write-behind-match` (space-separated globs, as KEYS takes
    /// them; `*` for every key) and `write-behind-match-db` (pairs of a
    /// database number and a glob: `1 orders:* 1 carts:* 2 *`).
    pub fn parse(every_db: &str, per_db: &str) -> Result<KeyFilter, String> {
        let default = globs(every_db);
        let words: Vec<&str> = per_db.split_whitespace().collect();
        if !words.len().is_multiple_of(2) {
            return Err("expected pairs of a database number and a glob".into());
        }
        let mut by_db: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
        for pair in words.chunks(2) {
            let db: usize = pair[0]
                .parse()
                .map_err(|_| format!("'{}' is not a database number", pair[0]))?;
            let glob = pair[1].as_bytes().to_vec();
            match by_db.iter_mut().find(|(n, _)| *n == db) {
                Some((_, list)) => list.push(glob),
                None => by_db.push((db, vec![glob])),
            }
        }
        Ok(KeyFilter {
            default,
            per_db: by_db,
        })
    }

    /// Whether changes to `key` in database `db` are written behind.
    pub fn matches(&self, db: usize, key: &[u8]) -> bool {
        let list = self
            .per_db
            .iter()
            .find(|(n, _)| *n == db)
            .map_or(&self.default, |(_, list)| list);
        list.iter()
            .any(|glob| glob == b"*" || glob_match(glob, key, false))
    }
}

fn globs(text: &str) -> Vec<Vec<u8>> {
    text.split_whitespace()
        .map(|glob| glob.as_bytes().to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_apply_to_every_database_unless_it_has_its_own() {
        let filter = KeyFilter::parse("user:* session:*", "1 orders:* 1 carts:* 2 *").unwrap();
        assert!(filter.matches(0, b"user:1"));
        assert!(filter.matches(5, b"session:x"));
        assert!(!filter.matches(0, b"orders:1"));
        assert!(filter.matches(1, b"orders:1"));
        assert!(filter.matches(1, b"carts:9"));
        assert!(!filter.matches(1, b"user:1"));
        assert!(filter.matches(2, b"anything"));
    }

    #[test]
    fn an_empty_match_follows_nothing() {
        let filter = KeyFilter::parse("", "").unwrap();
        assert!(!filter.matches(0, b"k"));
        let filter = KeyFilter::parse("*", "").unwrap();
        assert!(filter.matches(3, b"k"));
    }

    #[test]
    fn malformed_per_db_lists_are_refused() {
        assert!(KeyFilter::parse("*", "1").is_err());
        assert!(KeyFilter::parse("*", "x user:*").is_err());
    }
}
