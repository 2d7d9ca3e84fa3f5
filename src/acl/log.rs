//! ACL LOG: the refused commands, keys, channels and authentications, as
//! Redis 7.0 keeps them.

use std::collections::VecDeque;

/// One entry (Redis's ACLLogEntry).
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub count: u64,
    /// `command`, `key`, `channel` or `auth`.
    pub reason: &'static str,
    /// `toplevel`, `multi` or `lua`.
    pub context: &'static str,
    /// The command, key or channel refused (`AUTH` for authentication).
    pub object: Vec<u8>,
    pub username: Vec<u8>,
    /// When it last happened (Unix ms).
    pub last_ms: u64,
    /// CLIENT INFO of the client, when it last happened.
    pub client_info: String,
}

/// The most recent entries first.
#[derive(Debug, Default)]
pub struct AclLog {
    entries: VecDeque<LogEntry>,
}

/// Entries alike within this long are counted as one (Redis's
/// ACL_LOG_GROUPING_MAX_TIME_DELTA).
const GROUPING_MS: u64 = 60_000;

impl AclLog {
    /// Adds an entry (or counts it into a like one less than a minute
    /// old, moving it to the front), then trims to `max_len`.
    pub fn add(&mut self, entry: LogEntry, max_len: usize) {
        let alike = self.entries.iter().position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.object == entry.object
                && e.username == entry.username
                && entry.last_ms.saturating_sub(e.last_ms) < GROUPING_MS
        });
        match alike {
            Some(index) => {
                let mut existing = self.entries.remove(index).unwrap_or(entry.clone());
                existing.count += 1;
                existing.last_ms = entry.last_ms;
                existing.client_info = entry.client_info;
                self.entries.push_front(existing);
            }
            None => self.entries.push_front(entry),
        }
        self.entries.truncate(max_len);
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// The `count` most recent entries.
    pub fn recent(&self, count: usize) -> Vec<LogEntry> {
        self.entries.iter().take(count).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &str, at: u64) -> LogEntry {
        LogEntry {
            count: 1,
            reason: "key",
            context: "toplevel",
            object: object.as_bytes().to_vec(),
            username: b"u".to_vec(),
            last_ms: at,
            client_info: format!("at={at}"),
        }
    }

    #[test]
    fn alike_entries_group_within_a_minute_and_the_log_is_trimmed() {
        let mut log = AclLog::default();
        log.add(entry("a", 0), 2);
        log.add(entry("b", 1), 2);
        log.add(entry("a", 2), 2);
        let recent = log.recent(10);
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].object, b"a");
        assert_eq!(recent[0].count, 2);
        assert_eq!(recent[0].client_info, "at=2");
        log.add(entry("a", 70_000), 2);
        assert_eq!(log.recent(10)[0].count, 1);
        log.add(entry("c", 70_001), 2);
        assert_eq!(log.recent(10).len(), 2);
        log.reset();
        assert!(log.recent(10).is_empty());
    }
}
