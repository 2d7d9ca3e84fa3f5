//! The audit trail (`audit-log-file`, off by default): one JSON line per
//! security-relevant event, appended to a file before the command's reply
//! leaves the server.
//!
//! What is recorded: authentication successes and failures (AUTH, HELLO
//! AUTH), CONFIG SET, FLUSHALL, FLUSHDB, SHUTDOWN, CLIENT KILL, SCRIPT LOAD,
//! FUNCTION LOAD and WRITEBEHIND FLUSH. Each line has the time (RFC 3339,
//! UTC), the client's id and address, the user, the command and its
//! subcommand, and the outcome (`ok`, or the error's code such as `ERR`,
//! `WRONGPASS`). Never an argument's value, so never a password.
//!
//! ```json
//! {"time":"2026-12-05T21:50:00.123Z","client_id":7,"client_addr":"127.0.0.1:50312","user":"default","command":"config","subcommand":"set","result":"ok"}
//! ```
//!
//! The cost when off is one relaxed atomic load, and only in the handlers
//! of the commands above (never on GET or SET). Other code that has events
//! to record (ACL SETUSER, DELUSER, LOAD... once ACL exists) calls
//! [`AuditLog::record`] with an [`AuditEvent`], after checking
//! [`AuditLog::is_on`].
//!
//! ```
//! use larder::audit::{AuditEvent, AuditLog};
//!
//! let dir = std::env::temp_dir().join(format!("larder-audit-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("audit.log");
//! let log = AuditLog::default();
//! log.reopen(path.to_str().unwrap()).unwrap();
//! if log.is_on() {
//!     log.record(&AuditEvent {
//!         client_id: 3,
//!         client_addr: "10.0.0.5:40000",
//!         user: "default",
//!         command: "acl",
//!         subcommand: Some("setuser"),
//!         result: Ok(()),
//!     });
//! }
//! let text = std::fs::read_to_string(&path).unwrap();
//! assert!(text.contains(r#""command":"acl","subcommand":"setuser","result":"ok""#));
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// The audit log of a server: off until [`AuditLog::reopen`] gets a path.
#[derive(Debug, Default)]
pub struct AuditLog {
    on: AtomicBool,
    file: Mutex<Option<File>>,
}

/// One event. `result`: `Ok(())`, or the error line the client got (only
/// its first word, the code, is written: the rest may quote arguments).
pub struct AuditEvent<'a> {
    pub client_id: u64,
    pub client_addr: &'a str,
    pub user: &'a str,
    /// The command's own name, lower case (not a name given by
    /// rename-command).
    pub command: &'a str,
    pub subcommand: Option<&'a str>,
    pub result: Result<(), &'a str>,
}

impl AuditLog {
    /// Whether events are recorded: check it before building an event.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Appends to `path` from now on (created if missing, mode 0600); an
    /// empty path turns the log off. Opening the same path again follows a
    /// rotation (the old file moved away). On error the log stays as it
    /// was.
    pub fn reopen(&self, path: &str) -> io::Result<()> {
        let mut file = self.file.lock();
        if path.is_empty() {
            *file = None;
            self.on.store(false, Ordering::Relaxed);
            return Ok(());
        }
        // Only the server's user reads it: it tells who did what.
        let opened = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        *file = Some(opened);
        self.on.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Writes one line for `event` (one `write` of the whole line, to a
    /// file opened for appending). A failure is logged, not returned: the
    /// command itself went ahead.
    pub fn record(&self, event: &AuditEvent) {
        let line = event.to_json_line(SystemTime::now());
        let mut file = self.file.lock();
        let Some(file) = file.as_mut() else {
            return;
        };
        if let Err(error) = file.write_all(line.as_bytes()) {
            tracing::warn!(%error, "cannot write to audit-log-file");
        }
    }
}

impl AuditEvent<'_> {
    fn to_json_line(&self, at: SystemTime) -> String {
        let mut line = String::with_capacity(192);
        line.push_str("{\"time\":\"");
        line.push_str(&rfc3339_utc(at));
        line.push_str("\",\"client_id\":");
        line.push_str(&self.client_id.to_string());
        line.push_str(",\"client_addr\":");
        push_json_string(&mut line, self.client_addr);
        line.push_str(",\"user\":");
        push_json_string(&mut line, self.user);
        line.push_str(",\"command\":");
        push_json_string(&mut line, self.command);
        if let Some(subcommand) = self.subcommand {
            line.push_str(",\"subcommand\":");
            push_json_string(&mut line, subcommand);
        }
        line.push_str(",\"result\":");
        match self.result {
            Ok(()) => line.push_str("\"ok\""),
            Err(message) => {
                let code = message.split(' ').next().unwrap_or("ERR");
                push_json_string(&mut line, code);
            }
        }
        line.push_str("}\n");
        line
    }
}

fn push_json_string(out: &mut String, text: &str) {
    // serde_json escapes exactly as JSON needs; a &str always serializes.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
}

/// `2026-12-05T21:50:00.123Z`.
fn rfc3339_utc(at: SystemTime) -> String {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // date -u -d @1709251199 -> 2024-02-29 23:59:59 (a leap day).
        let at = UNIX_EPOCH + Duration::from_millis(1_709_251_199_042);
        assert_eq!(rfc3339_utc(at), "2024-02-29T23:59:59.042Z");
        let at = UNIX_EPOCH + Duration::from_secs(1_796_507_262);
        assert_eq!(rfc3339_utc(at), "2026-12-05T21:47:42.000Z");
    }

    #[test]
    fn lines_escape_and_keep_only_the_error_code() {
        let event = AuditEvent {
            client_id: 9,
            client_addr: "/tmp/a \"b\".sock:0",
            user: "default",
            command: "auth",
            subcommand: None,
            result: Err("WRONGPASS invalid username-password pair or user is disabled."),
        };
        assert_eq!(
            event.to_json_line(UNIX_EPOCH),
            "{\"time\":\"1970-01-01T00:00:00.000Z\",\"client_id\":9,\"client_addr\":\"/tmp/a \\\"b\\\".sock:0\",\"user\":\"default\",\"command\":\"auth\",\"result\":\"WRONGPASS\"}\n"
        );
    }
}
