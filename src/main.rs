//! `larder-server`: the command-line entry point.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use larder::memory::{AllocatorHooks, CountingAllocator};
use larder::shared::Shared;
use larder::{Config, Server};

/// mimalloc, counted: INFO's used_memory and maxmemory eviction see exactly
/// what the allocator handed out (see `larder::memory`).
#[global_allocator]
static GLOBAL: CountingAllocator<mimalloc::MiMalloc> =
    CountingAllocator::with_size_classes(mimalloc::MiMalloc, "mimalloc", mi::good_size);

/// mimalloc's entry points for MEMORY PURGE, MEMORY MALLOC-STATS and
/// MEMORY STATS (linked through the `mimalloc` crate's static library).
mod mi {
    use std::ffi::{c_char, c_void, CStr};

    extern "C" {
        fn mi_option_set(option: i32, value: std::ffi::c_long);
        fn mi_option_get(option: i32) -> std::ffi::c_long;
        fn mi_good_size(size: usize) -> usize;
        fn mi_collect(force: bool);
        fn mi_stats_print_out(
            out: Option<unsafe extern "C" fn(*const c_char, *mut c_void)>,
            arg: *mut c_void,
        );
        fn mi_process_info(
            elapsed_msecs: *mut usize,
            user_msecs: *mut usize,
            system_msecs: *mut usize,
            current_rss: *mut usize,
            peak_rss: *mut usize,
            current_commit: *mut usize,
            peak_commit: *mut usize,
            page_faults: *mut usize,
        );
    }

    /// The bytes mimalloc reserves for an allocation of `size` (its size
    /// class): what used_memory counts.
    pub fn good_size(size: usize) -> usize {
        // SAFETY: pure arithmetic on the size; never allocates.
        unsafe { mi_good_size(size) }
    }

    /// `mi_option_page_reclaim_on_free`'s number in the mimalloc this
    /// binary links, read from its header at build time (build.rs); `None`
    /// if that mimalloc has no such option.
    const PAGE_RECLAIM_ON_FREE: Option<&str> = option_env!("LARDER_MI_PAGE_RECLAIM_ON_FREE");

    /// What [`tune`] did, for the log (written once logging is set up).
    pub enum Tuning {
        Set,
        LeftToEnvironment,
        Unknown,
        DidNotStick(std::ffi::c_long),
    }

    /// mimalloc settings for a cache that evicts: a page abandoned by one
    /// thread is not taken over by whichever thread frees a block into it
    /// (an evicting connection frees keys other threads allocated), but
    /// reclaimed by threads looking for free space. With the default, a SET
    /// flood at maxmemory held ~25 MiB more RSS per 100 MiB (see the
    /// README). `MIMALLOC_PAGE_RECLAIM_ON_FREE` in the environment wins.
    pub fn tune() -> Tuning {
        if std::env::var_os("MIMALLOC_PAGE_RECLAIM_ON_FREE").is_some() {
            return Tuning::LeftToEnvironment;
        }
        let Some(option) = PAGE_RECLAIM_ON_FREE.and_then(|n| n.parse::<i32>().ok()) else {
            return Tuning::Unknown;
        };
        // SAFETY: sets and reads an integer option; no allocation involved.
        let value = unsafe {
            mi_option_set(option, -1);
            mi_option_get(option)
        };
        if value == -1 {
            Tuning::Set
        } else {
            Tuning::DidNotStick(value)
        }
    }

    pub fn log(tuning: Tuning) {
        match tuning {
            Tuning::Set | Tuning::LeftToEnvironment => {}
            Tuning::Unknown => tracing::warn!(
                "this mimalloc has no page_reclaim_on_free option: RSS may run higher under eviction"
            ),
            Tuning::DidNotStick(value) => tracing::warn!(
                value,
                "mimalloc's page_reclaim_on_free did not take -1: RSS may run higher under eviction"
            ),
        }
    }

    /// Frees what the calling thread's heap holds unused and purges
    /// pages that are free (MEMORY PURGE).
    pub fn purge() {
        // SAFETY: no arguments beyond a flag; callable from any thread.
        unsafe { mi_collect(true) }
    }

    unsafe extern "C" fn append(message: *const c_char, arg: *mut c_void) {
        if message.is_null() || arg.is_null() {
            return;
        }
        // SAFETY: `arg` is the `String` passed by `stats` below, alive for
        // the call; `message` is a NUL-terminated string from mimalloc.
        let text = unsafe { &mut *(arg as *mut String) };
        text.push_str(&unsafe { CStr::from_ptr(message) }.to_string_lossy());
    }

    pub fn stats() -> String {
        let mut text = String::new();
        // SAFETY: `append` only writes into `text`, which outlives the call.
        unsafe { mi_stats_print_out(Some(append), &mut text as *mut String as *mut c_void) };
        text
    }

    pub fn committed() -> u64 {
        let mut values = [0usize; 8];
        let [a, b, c, d, e, f, g, h] = &mut values;
        // SAFETY: eight valid out-pointers.
        unsafe { mi_process_info(a, b, c, d, e, f, g, h) };
        values[5] as u64
    }
}

/// Turns transparent huge pages off for this process, as Redis does by
/// default (`disable-thp yes`): with THP, the kernel backs any 2 MiB range
/// the allocator touched with a whole huge page, and RSS ran up to 80% over
/// `used_memory` under a SET flood of small values (see the README).
/// `LARDER_THP=1` keeps them.
fn disable_thp() {
    const PR_SET_THP_DISABLE: std::ffi::c_int = 41;
    extern "C" {
        fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
    }
    if std::env::var_os("LARDER_THP").is_some_and(|v| v == "1") {
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument (the rest
    // must be 0); it only sets a flag on this process.
    let done = unsafe {
        prctl(
            PR_SET_THP_DISABLE,
            1 as std::ffi::c_ulong,
            0 as std::ffi::c_ulong,
            0 as std::ffi::c_ulong,
            0 as std::ffi::c_ulong,
        )
    };
    if done != 0 {
        eprintln!("larder-server: could not disable transparent huge pages");
    }
}

/// A Redis-compatible caching server.
///
/// Settings come from an optional redis.conf-style file, then from flags;
/// both use Redis's directive names (`--port 6380`, `--maxclients 100`...):
/// as with redis-server, `--<any setting> <value>` works for every setting.
#[derive(Parser, Debug)]
#[command(name = "larder-server", version)]
struct Cli {
    /// A redis.conf-style configuration file.
    config_file: Option<PathBuf>,
    /// TCP port to listen on.
    #[arg(long)]
    port: Option<u16>,
    /// Addresses to listen on (repeat or space-separate for several).
    #[arg(long, num_args = 1..)]
    bind: Vec<String>,
    /// Number of logical databases.
    #[arg(long)]
    databases: Option<usize>,
    /// Password clients must AUTH with.
    #[arg(long)]
    requirepass: Option<String>,
    /// Log level: debug, verbose, notice, warning, nothing.
    #[arg(long)]
    loglevel: Option<String>,
    /// Any other setting, as NAME VALUE (e.g. --set maxclients 100).
    #[arg(long = "set", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    set: Vec<String>,
}

/// Rewrites `--<setting> <value>` for settings without a flag of their own
/// into `--set <setting> <value>`, so that every redis.conf directive works as
/// a flag, as it does for redis-server (a value of several words is quoted).
fn setting_flags_as_set(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    const OWN_FLAGS: &[&str] = &[
        "port",
        "bind",
        "databases",
        "requirepass",
        "loglevel",
        "set",
        "help",
        "version",
    ];
    let settings = Config::names();
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let setting = arg
            .to_str()
            .and_then(|text| text.strip_prefix("--"))
            .map(str::to_ascii_lowercase)
            .filter(|name| !OWN_FLAGS.contains(&name.as_str()))
            .filter(|name| settings.contains(&name.as_str()));
        match setting {
            Some(name) => {
                out.push("--set".into());
                out.push(name.into());
                out.extend(args.next());
            }
            // `--rename-command CONFIG ""`: two words, as in the file.
            None if arg == "--rename-command" => {
                out.push("--set".into());
                out.push(larder::config::RENAME_COMMAND.into());
                let mut words = OsString::new();
                words.extend(args.next());
                words.push(" ");
                words.extend(args.next());
                out.push(words);
            }
            None => out.push(arg),
        }
    }
    out
}

fn build_config(cli: &Cli) -> Result<Config, String> {
    let mut config = Config::default();
    if let Some(path) = &cli.config_file {
        config.load_file(path)?;
    }
    let mut apply = |name: &str, value: String| config.set(name, &value).map_err(|e| e.to_string());
    if let Some(port) = cli.port {
        apply("port", port.to_string())?;
    }
    if !cli.bind.is_empty() {
        apply("bind", cli.bind.join(" "))?;
    }
    if let Some(databases) = cli.databases {
        apply("databases", databases.to_string())?;
    }
    if let Some(password) = &cli.requirepass {
        apply("requirepass", password.clone())?;
    }
    if let Some(level) = &cli.loglevel {
        apply("loglevel", level.clone())?;
    }
    for pair in cli.set.chunks(2) {
        if let [name, value] = pair {
            apply(name, value.clone())?;
        }
    }
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(setting_flags_as_set(std::env::args_os()));
    let config = match build_config(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("larder-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Before the runtime and the store allocate anything much.
    disable_thp();
    let tuning = mi::tune();
    larder::memory::set_allocator_hooks(AllocatorHooks {
        purge: mi::purge,
        stats: mi::stats,
        committed: mi::committed,
    });
    // As Redis: the log (standard output or `logfile`, syslog) in Redis's
    // line format; see `larder::config::logging`.
    if let Err(error) = larder::config::logging::init(&config) {
        eprintln!("larder-server: {error}");
        return ExitCode::FAILURE;
    }
    mi::log(tuning);
    let mut config = config;
    if let Err(message) = larder::config::limits::fit_open_files_limit(&mut config) {
        tracing::error!("{message}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("larder-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let server = match Server::bind(config).await {
            Ok(server) => server,
            Err(error) => {
                // Sockets, and what must be right before serving
                // (rename-command, audit-log-file).
                tracing::error!("cannot start: {error}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(path) = &cli.config_file {
            // Absolute, as Redis keeps it: CONFIG REWRITE writes there
            // whatever the working directory.
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            let _ = server.shared().config_file.set(path);
        }
        larder::memory::mark_startup();
        tracing::info!(address = %server.local_addr(), "Larder ready to accept connections");
        let shared = server.shared();
        tokio::spawn(stop_on_signals(shared.clone()));
        tokio::spawn(enforce_shutdown_deadline(shared));
        match server.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "server failed");
                ExitCode::FAILURE
            }
        }
    });
    // What shutdown abandoned at its deadline (a blocking task stuck on the
    // disk, say) must not hold the process.
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

/// Added to `shutdown-timeout` before the process exits by force: the
/// server's own bounded shutdown normally returns first, with its log.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Signals this close together are one delivery (see [`stop_on_signals`]).
const SAME_SIGNAL_WINDOW: Duration = Duration::from_millis(200);

/// SIGTERM or SIGINT starts a shutdown; a second one (or one arriving
/// during a SHUTDOWN) exits at once, as Redis does.
async fn stop_on_signals(shared: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut interrupt, mut terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
        _ => {
            tracing::error!("cannot listen for signals; only SHUTDOWN stops the server");
            return;
        }
    };
    let mut first_at = None;
    loop {
        let (received, name) = tokio::select! {
            received = interrupt.recv() => (received, "SIGINT"),
            received = terminate.recv() => (received, "SIGTERM"),
        };
        if received.is_none() {
            return;
        }
        // The same signal sent to the process and to its group (GNU
        // timeout does both) arrives twice at once: that is not insisting.
        if first_at.is_some_and(|at: std::time::Instant| at.elapsed() < SAME_SIGNAL_WINDOW) {
            continue;
        }
        if shared.is_stopping() {
            // As Redis: a second SIGINT (Ctrl-C again) exits at once; a
            // second SIGTERM lets the shutdown under way finish (it is
            // bounded by shutdown-timeout anyway).
            if name == "SIGINT" {
                tracing::warn!("You insist... exiting now.");
                std::process::exit(1);
            }
            tracing::warn!("received SIGTERM again: the shutdown is under way");
            continue;
        }
        first_at = Some(std::time::Instant::now());
        tracing::warn!("received {name}, shutting down");
        shared.request_shutdown();
    }
}

/// Once a shutdown starts (signal or SHUTDOWN), the process ends within
/// `shutdown-timeout` whatever still runs: a thread of its own exits, so
/// that no wedged task or worker can hold it.
async fn enforce_shutdown_deadline(shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_receiver();
    let _ = shutdown.wait_for(|&stop| stop).await;
    let budget = Duration::from_secs(shared.config.read().shutdown_timeout) + SHUTDOWN_GRACE;
    let watchdog = std::thread::Builder::new()
        .name("larder-shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(budget);
            let unfinished = larder::server::unfinished_work(&shared);
            tracing::error!(
                "shutdown-timeout passed: exiting without finishing: {}",
                if unfinished.is_empty() {
                    "the server's own shutdown".to_string()
                } else {
                    unfinished.join("; ")
                }
            );
            std::process::exit(1);
        });
    if let Err(error) = watchdog {
        tracing::error!(%error, "cannot enforce shutdown-timeout");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(args: &[&str]) -> Vec<String> {
        setting_flags_as_set(args.iter().map(OsString::from))
            .into_iter()
            .map(|arg| arg.into_string().unwrap_or_default())
            .collect()
    }

    #[test]
    fn any_setting_works_as_a_flag() {
        assert_eq!(
            rewritten(&["larder-server", "--maxmemory", "100mb", "--port", "7000"]),
            [
                "larder-server",
                "--set",
                "maxmemory",
                "100mb",
                "--port",
                "7000"
            ]
        );
        assert_eq!(
            rewritten(&["larder-server", "--Write-Behind-Url", "host=/tmp user=app"]),
            [
                "larder-server",
                "--set",
                "write-behind-url",
                "host=/tmp user=app"
            ]
        );
    }

    #[test]
    fn rename_command_takes_two_words() {
        assert_eq!(
            rewritten(&[
                "larder-server",
                "--rename-command",
                "CONFIG",
                "",
                "--port",
                "1"
            ]),
            [
                "larder-server",
                "--set",
                "rename-command",
                "CONFIG ",
                "--port",
                "1"
            ]
        );
        let cli = Cli::try_parse_from(setting_flags_as_set(
            ["larder-server", "--rename-command", "flushall", "wipe"].map(OsString::from),
        ))
        .map_err(|e| e.to_string());
        let config = cli
            .and_then(|cli| build_config(&cli))
            .map(|c| c.rename_commands);
        assert_eq!(config, Ok(vec![("flushall".into(), "wipe".into())]));
    }

    #[test]
    fn unknown_flags_are_left_for_clap_to_refuse() {
        assert_eq!(
            rewritten(&["larder-server", "--no-such-setting", "1"]),
            ["larder-server", "--no-such-setting", "1"]
        );
        let cli = Cli::try_parse_from(setting_flags_as_set(
            ["larder-server", "--maxmemory-policy", "allkeys-lru"].map(OsString::from),
        ))
        .map_err(|e| e.to_string());
        let config = cli.and_then(|cli| build_config(&cli));
        assert_eq!(
            config.map(|c| c.get("maxmemory-policy")),
            Ok(Some("allkeys-lru".to_string()))
        );
    }
}
