//! The parsed forms of the write-behind settings: the journal's fsync
//! policy, the table mappings (`write-behind-map`, see
//! the write-behind engine's `mapping` module for what they do) and the key filter
//! (`write-behind-match`, `write-behind-match-db`). They live with the
//! settings so that parsing a setting never reaches up into the engine.

use crate::glob::glob_match;

/// When the journal is fsynced (`write-behind-fsync`), as Redis's
/// `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalFsync {
    /// Before the replies of the commands whose records it holds.
    Always,
    /// Once a second (records are written to the OS before the reply).
    EverySec,
    /// Never: the OS writes the file when it wants.
    No,
}

impl JournalFsync {
    pub fn name(self) -> &'static str {
        match self {
            JournalFsync::Always => "always",
            JournalFsync::EverySec => "everysec",
            JournalFsync::No => "no",
        }
    }

    pub fn parse(value: &str) -> Option<JournalFsync> {
        [
            JournalFsync::Always,
            JournalFsync::EverySec,
            JournalFsync::No,
        ]
        .into_iter()
        .find(|policy| value.eq_ignore_ascii_case(policy.name()))
    }
}

use std::fmt;

/// One `write-behind-map` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The literal text before the placeholder.
    pub prefix: Vec<u8>,
    /// The literal text after it.
    pub suffix: Vec<u8>,
    /// The placeholder's name: the key column.
    pub key_column: String,
    /// `name` or `schema.name`, unquoted.
    pub table: String,
    /// Where string values go.
    pub string_column: Option<String>,
    /// The database whose keys are mapped.
    pub db: usize,
}

impl Mapping {
    /// The captured part of `key` if this mapping applies to it.
    ///
    /// ```
    /// use larder::writebehind::mapping::parse_mappings;
    ///
    /// let maps = parse_mappings("user:{id} users").unwrap();
    /// assert_eq!(maps[0].capture(0, b"user:42"), Some(&b"42"[..]));
    /// assert_eq!(maps[0].capture(0, b"user:"), None);
    /// assert_eq!(maps[0].capture(1, b"user:42"), None);
    /// ```
    pub fn capture<'a>(&self, db: usize, key: &'a [u8]) -> Option<&'a [u8]> {
        if db != self.db || key.len() <= self.prefix.len() + self.suffix.len() {
            return None;
        }
        if !key.starts_with(&self.prefix) || !key.ends_with(&self.suffix) {
            return None;
        }
        Some(&key[self.prefix.len()..key.len() - self.suffix.len()])
    }
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{{{}}}{} {}",
            String::from_utf8_lossy(&self.prefix),
            self.key_column,
            String::from_utf8_lossy(&self.suffix),
            self.table
        )?;
        if let Some(column) = &self.string_column {
            write!(f, " column={column}")?;
        }
        if self.db != 0 {
            write!(f, " db={}", self.db)?;
        }
        Ok(())
    }
}

/// Parses a `write-behind-map` value: mappings separated by `;`.
///
/// ```
/// use larder::writebehind::mapping::parse_mappings;
///
/// let maps = parse_mappings("user:{id} users; session:{sid}:data app.sessions column=payload db=2")
///     .unwrap();
/// assert_eq!(maps[1].key_column, "sid");
/// assert_eq!(maps[1].table, "app.sessions");
/// assert_eq!(maps[1].to_string(), "session:{sid}:data app.sessions column=payload db=2");
/// assert!(parse_mappings("user:id users").is_err());
/// ```
pub fn parse_mappings(text: &str) -> Result<Vec<Mapping>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(parse_one)
        .collect()
}

fn parse_one(text: &str) -> Result<Mapping, String> {
    let usage = "expected \"<pattern with one {column}> <table> [column=<col>] [db=<n>]\"";
    let mut words = text.split_whitespace();
    let (Some(pattern), Some(table)) = (words.next(), words.next()) else {
        return Err(format!("'{text}': {usage}"));
    };
    let (open, close) = match (pattern.find('{'), pattern.find('}')) {
        (Some(open), Some(close)) if open < close => (open, close),
        _ => {
            return Err(format!(
                "'{pattern}': the pattern needs one {{column}} placeholder"
            ))
        }
    };
    let key_column = &pattern[open + 1..close];
    let suffix = &pattern[close + 1..];
    if key_column.is_empty()
        || key_column.contains('{')
        || suffix.contains(['{', '}'])
        || pattern[..open].contains('}')
    {
        return Err(format!(
            "'{pattern}': the pattern needs exactly one non-empty {{column}} placeholder"
        ));
    }
    if table.split('.').count() > 2 || table.split('.').any(str::is_empty) {
        return Err(format!("'{table}': expected a table name or schema.table"));
    }
    let mut mapping = Mapping {
        prefix: pattern.as_bytes()[..open].to_vec(),
        suffix: suffix.as_bytes().to_vec(),
        key_column: key_column.to_string(),
        table: table.to_string(),
        string_column: None,
        db: 0,
    };
    for option in words {
        match option.split_once('=') {
            Some(("column", column)) if !column.is_empty() => {
                mapping.string_column = Some(column.to_string());
            }
            Some(("db", db)) => {
                mapping.db = db
                    .parse()
                    .map_err(|_| format!("'{option}': db must be a database number"))?;
            }
            _ => return Err(format!("'{option}': unknown option; {usage}")),
        }
    }
    Ok(mapping)
}

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
mod filter_tests {
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
