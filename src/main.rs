//! `larder-server`: the command-line entry point.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use larder::memory::CountingAllocator;
use larder::{Config, Server};

/// mimalloc, counted: INFO's used_memory and maxmemory eviction see exactly
/// what the allocator handed out (see `larder::memory`).
#[global_allocator]
static GLOBAL: CountingAllocator<mimalloc::MiMalloc> =
    CountingAllocator::new(mimalloc::MiMalloc, "mimalloc");

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
    /// Log level: debug, verbose, notice, warning (or a tracing filter).
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

fn tracing_filter(loglevel: &str) -> &'static str {
    match loglevel {
        "debug" => "debug",
        "verbose" => "info",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    }
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(tracing_filter(&config.loglevel))
            }),
        )
        .init();
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
    runtime.block_on(async move {
        let server = match Server::bind(config).await {
            Ok(server) => server,
            Err(error) => {
                tracing::error!(%error, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(address = %server.local_addr(), "Larder ready to accept connections");
        let shared = server.shared();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::warn!("received a termination signal, shutting down");
            shared.request_shutdown();
        });
        match server.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    match (interrupt, terminate) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
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
