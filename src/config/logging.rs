//! The server log, as Redis writes it: one line per event,
//! `<pid>:M <dd Mon yyyy HH:MM:SS.mmm> <mark> <message>`, where the mark is
//! `.` debug, `-` verbose, `*` notice, `#` warning; to standard output, or
//! appended to `logfile` (opened for each line, so that a rotated file is
//! followed at once, as Redis does); and to syslog when `syslog-enabled`.
//!
//! Redis's levels map onto `tracing`'s: debug = TRACE, verbose = DEBUG,
//! notice = INFO, warning = WARN and ERROR; `nothing` logs nothing. Events
//! of other crates (the PostgreSQL driver...) show from notice up. CONFIG
//! SET loglevel changes the level at once ([`set_level`]).

use std::ffi::CString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{reload, EnvFilter};

use super::Config;

/// The `tracing` filter for a Redis log level.
pub fn filter_for(loglevel: &str) -> &'static str {
    match loglevel {
        "debug" => "info,larder=trace,larder_server=trace",
        "verbose" => "info,larder=debug,larder_server=debug",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    }
}

/// The mark Redis puts before a message of this level.
fn mark(level: Level) -> char {
    match level {
        Level::TRACE => '.',
        Level::DEBUG => '-',
        Level::INFO => '*',
        _ => '#',
    }
}

/// Changes the log level of a running server (CONFIG SET loglevel);
/// nothing happens where [`init`] was not called (in-process tests).
pub fn set_level(loglevel: &str) {
    if let Some(apply) = LEVEL.get() {
        apply(loglevel);
    }
}

type LevelSetter = Box<dyn Fn(&str) + Send + Sync>;

static LEVEL: OnceLock<LevelSetter> = OnceLock::new();

/// Where log lines go, from the settings.
#[derive(Debug, Clone)]
pub struct Output {
    /// `logfile`: `None` for standard output.
    pub file: Option<PathBuf>,
    /// `syslog-enabled`.
    pub syslog: bool,
}

impl Output {
    pub fn from_config(config: &Config) -> Output {
        Output {
            file: (!config.logfile.is_empty()).then(|| PathBuf::from(&config.logfile)),
            syslog: config.syslog_enabled,
        }
    }
}

/// Checks the settings as Redis does before it logs anything: the log file
/// must open for appending.
pub fn check(config: &Config) -> Result<(), String> {
    if let Some(file) = Output::from_config(config).file {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(|e| format!("Can't open the log file: {}", super::rewrite::strerror(&e)))?;
    }
    Ok(())
}

/// Sets up the process's log from the settings. `RUST_LOG`, when set,
/// replaces the level's filter until CONFIG SET loglevel.
pub fn init(config: &Config) -> Result<(), String> {
    check(config)?;
    let output = Output::from_config(config);
    if output.syslog {
        open_syslog(config)?;
    }
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(filter_for(&config.loglevel)));
    let (filter, handle) = reload::Layer::new(filter);
    let layer = tracing_subscriber::fmt::layer()
        .event_format(RedisFormat {
            pid: std::process::id(),
        })
        .with_writer(output);
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .map_err(|e| e.to_string())?;
    let _ = LEVEL.set(Box::new(move |loglevel: &str| {
        let _ = handle.reload(EnvFilter::new(filter_for(loglevel)));
    }));
    Ok(())
}

/// Redis's log line format.
pub struct RedisFormat {
    pub pid: u32,
}

impl<S, N> FormatEvent<S, N> for RedisFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(
            writer,
            "{}:M {} {} ",
            self.pid,
            timestamp(),
            mark(*event.metadata().level())
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Local time as Redis's log shows it: `05 Dec 2026 13:07:31.123`.
pub fn timestamp() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs() as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own; a zeroed tm is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&seconds, &mut tm) };
    format!(
        "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        now.subsec_millis()
    )
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            output: self,
            level: Level::INFO,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            output: self,
            level: *meta.level(),
        }
    }
}

/// Writes one formatted event (the fmt layer hands it over in one write).
pub struct LineWriter<'a> {
    output: &'a Output,
    level: Level,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        match &self.output.file {
            // Opened for each line, as Redis does: log rotation needs no
            // signal.
            Some(path) => {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                file.write_all(line)?;
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(line)?;
                stdout.flush()?;
            }
        }
        if self.output.syslog {
            send_to_syslog(self.level, line);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The syslog facility for a `syslog-facility` name.
fn facility(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "user" => libc::LOG_USER,
        "local0" => libc::LOG_LOCAL0,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        _ => return None,
    })
}

/// As Redis: `openlog(syslog-ident, LOG_PID | LOG_NDELAY | LOG_NOWAIT,
/// syslog-facility)`, through the C library's syslog (what Redis itself
/// calls: the same socket, the same message format, no dependency).
fn open_syslog(config: &Config) -> Result<(), String> {
    let facility = facility(&config.syslog_facility)
        .ok_or("syslog-facility must be one of user, local0 ... local7")?;
    let ident = CString::new(config.syslog_ident.as_str())
        .map_err(|_| "syslog-ident holds a NUL byte".to_string())?;
    // openlog keeps the pointer: the ident lives as long as the process.
    let ident: &'static std::ffi::CStr = Box::leak(ident.into_boxed_c_str());
    // SAFETY: a NUL-terminated string that is never freed; integer flags.
    unsafe {
        libc::openlog(
            ident.as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY | libc::LOG_NOWAIT,
            facility,
        )
    };
    Ok(())
}

fn send_to_syslog(level: Level, line: &[u8]) {
    let priority = match level {
        Level::TRACE => libc::LOG_DEBUG,
        Level::DEBUG => libc::LOG_INFO,
        Level::INFO => libc::LOG_NOTICE,
        _ => libc::LOG_WARNING,
    };
    // Syslog stamps its own time and pid: send the message alone (after
    // "<pid>:M <dd> <Mon> <yyyy> <time> <mark> ").
    let text = String::from_utf8_lossy(line);
    let message = text.splitn(7, ' ').nth(6).unwrap_or(&text).trim_end();
    let Ok(message) = CString::new(message.replace('\0', " ")) else {
        return;
    };
    // SAFETY: a constant "%s" format with one NUL-terminated argument.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), message.as_ptr()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_facilities() {
        assert_eq!(mark(Level::INFO), '*');
        assert_eq!(mark(Level::ERROR), '#');
        assert_eq!(filter_for("warning"), "warn");
        assert_eq!(filter_for("nothing"), "off");
        assert_eq!(facility("local7"), Some(libc::LOG_LOCAL7));
        assert_eq!(facility("local8"), None);
        let stamp = timestamp();
        assert_eq!(stamp.len(), "05 Dec 2026 13:07:31.123".len(), "{stamp}");
    }
}
