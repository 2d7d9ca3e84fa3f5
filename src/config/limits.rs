//! The open-file limit, fitted to `maxclients` at start-up as Redis's
//! `adjustOpenFilesLimit` does: every client is a file descriptor, and a
//! server that runs out of them can neither accept nor refuse anyone.

use crate::config::Config;

/// Descriptors kept for the server's own use (listeners, the runtime's
/// event queue, PostgreSQL connections, the journal): Redis's
/// `CONFIG_MIN_RESERVED_FDS`.
pub const RESERVED_FDS: u64 = 32;

/// Raises the soft `RLIMIT_NOFILE` to `maxclients + 32`; where the system
/// does not allow it, takes the highest limit it allows and lowers
/// `maxclients` to fit, logging it in Redis's words. Fails when the limit
/// leaves no room for a single client.
pub fn fit_open_files_limit(config: &mut Config) -> Result<(), String> {
    let wanted = config.maxclients as u64 + RESERVED_FDS;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let error = std::io::Error::last_os_error();
        config.maxclients = (1024 - RESERVED_FDS) as usize;
        tracing::warn!(
            "Unable to obtain the current NOFILE limit ({error}), assuming 1024 and setting the max clients configuration accordingly."
        );
        return Ok(());
    }
    let original = limit.rlim_cur;
    if original >= wanted {
        return Ok(());
    }
    // The highest limit the system allows: Redis steps down by 16; the
    // steps here grow with the distance, so that a huge maxclients does not
    // cost millions of calls.
    let mut best = wanted;
    let mut refusal = None;
    while best > original {
        let attempt = libc::rlimit {
            rlim_cur: best,
            rlim_max: limit.rlim_max.max(best),
        };
        // SAFETY: setrlimit only reads the struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &attempt) } == 0 {
            break;
        }
        refusal = Some(std::io::Error::last_os_error());
        // Below the hard limit, the soft limit alone can go up.
        if best > limit.rlim_max && limit.rlim_max > original {
            best = limit.rlim_max;
            continue;
        }
        best = best.saturating_sub(16.max((best - original) / 8));
    }
    let best = best.max(original);
    if best >= wanted {
        tracing::info!(
            "Increased maximum number of open files to {best} (it was originally set to {original})."
        );
        return Ok(());
    }
    if best <= RESERVED_FDS {
        return Err(format!(
            "Your current 'ulimit -n' of {original} is not enough for the server to start. Please increase your open file limit to at least {wanted}. Exiting."
        ));
    }
    let requested = config.maxclients;
    config.maxclients = (best - RESERVED_FDS) as usize;
    tracing::warn!(
        "You requested maxclients of {requested} requiring at least {wanted} max file descriptors."
    );
    if let Some(error) = refusal {
        tracing::warn!(
            "Server can't set maximum open files to {wanted} because of OS error: {error}."
        );
    }
    tracing::warn!(
        "Current maximum open files is {best}. maxclients has been reduced to {} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
        config.maxclients
    );
    Ok(())
}
