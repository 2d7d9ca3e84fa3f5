//! Client-side caching commands: CLIENT TRACKING, CACHING, TRACKINGINFO
//! and GETREDIR, with Redis 7's options and errors. The table and the
//! invalidations are the `pubsub::tracking` engine's.

use bytes::Bytes;

use super::parse::is_keyword;
use super::{Ctx, Session};
use crate::error::{Error, Result};
use crate::pubsub::{TrackingMode, TrackingOptions};
use crate::shared::Shared;

/// Turns tracking off for `session` (CLIENT TRACKING OFF, RESET, the
/// client leaving).
pub fn turn_off(shared: &Shared, session: &mut Session) {
    if session.tracking.take().is_some() {
        shared.pubsub.disable_tracking(session.handle.id);
    }
    session.caching = false;
    let mut meta = session.handle.meta.lock();
    meta.tracking = false;
    meta.redirect = -1;
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN]
/// [OPTOUT] [NOLOOP].
pub fn client_tracking(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let mut redirect: Option<u64> = None;
    let mut bcast = false;
    let mut optin = false;
    let mut optout = false;
    let mut noloop = false;
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut i = 3;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        let option = argv[i];
        if is_keyword(option, "REDIRECT") && more {
            i += 1;
            if redirect.is_some() {
                return Err(Error::err(
                    "A client can only redirect to a single other client",
                ));
            }
            let id = super::parse::int_arg(argv[i])?;
            let exists = u64::try_from(id).is_ok_and(|id| ctx.shared.clients.get(id).is_some());
            if !exists {
                return Err(Error::err(
                    "The client ID you want redirect to does not exist",
                ));
            }
            redirect = Some(id as u64);
        } else if is_keyword(option, "BCAST") {
            bcast = true;
        } else if is_keyword(option, "OPTIN") {
            optin = true;
        } else if is_keyword(option, "OPTOUT") {
            optout = true;
        } else if is_keyword(option, "NOLOOP") {
            noloop = true;
        } else if is_keyword(option, "PREFIX") && more {
            i += 1;
            prefixes.push(Bytes::copy_from_slice(argv[i]));
        } else {
            return Err(Error::syntax());
        }
        i += 1;
    }
    if is_keyword(argv[2], "OFF") {
        turn_off(ctx.shared, ctx.session);
        ctx.out.ok();
        return Ok(());
    }
    if !is_keyword(argv[2], "ON") {
        return Err(Error::syntax());
    }
    if !bcast && !prefixes.is_empty() {
        return Err(Error::err(
            "PREFIX option requires BCAST mode to be enabled",
        ));
    }
    if let Some(mode) = ctx.session.tracking {
        if (mode == TrackingMode::Broadcast) != bcast {
            return Err(Error::err(
                "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
            ));
        }
    }
    if bcast && (optin || optout) {
        return Err(Error::err("OPTIN and OPTOUT are not compatible with BCAST"));
    }
    if optin && optout {
        return Err(Error::err(
            "You can't specify both OPTIN mode and OPTOUT mode",
        ));
    }
    let current = ctx.session.tracking;
    if (optin && current == Some(TrackingMode::OptOut))
        || (optout && current == Some(TrackingMode::OptIn))
    {
        return Err(Error::err(
            "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    let id = ctx.session.handle.id;
    if bcast {
        ctx.shared
            .pubsub
            .tracking
            .check_prefixes(id, &prefixes)
            .map_err(Error::raw)?;
    }
    let mode = if bcast {
        TrackingMode::Broadcast
    } else if optin {
        TrackingMode::OptIn
    } else if optout {
        TrackingMode::OptOut
    } else {
        TrackingMode::Default
    };
    let target = match redirect {
        Some(target) => match ctx.shared.clients.get(target) {
            Some(handle) => handle.mailbox.clone(),
            None => {
                return Err(Error::err(
                    "The client ID you want redirect to does not exist",
                ))
            }
        },
        None => ctx.session.handle.mailbox.clone(),
    };
    let options = TrackingOptions {
        mode,
        redirect,
        noloop,
        prefixes,
    };
    let mailbox = ctx.session.handle.mailbox.clone();
    ctx.shared.pubsub.enable_tracking(&mailbox, options, target);
    ctx.session.tracking = Some(mode);
    ctx.session.caching = false;
    let mut meta = ctx.session.handle.meta.lock();
    meta.tracking = true;
    meta.redirect = redirect.map_or(0, |id| id as i64);
    drop(meta);
    ctx.out.ok();
    Ok(())
}

/// CLIENT CACHING YES|NO.
pub fn client_caching(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    let Some(mode) = ctx.session.tracking else {
        return Err(Error::err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    if is_keyword(argv[2], "YES") {
        if mode != TrackingMode::OptIn {
            return Err(Error::err(
                "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if is_keyword(argv[2], "NO") {
        if mode != TrackingMode::OptOut {
            return Err(Error::err(
                "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(Error::syntax());
    }
    ctx.session.caching = true;
    ctx.out.ok();
    Ok(())
}

/// CLIENT GETREDIR: the redirect client, 0 without one, -1 when tracking
/// is off.
pub fn client_getredir(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let redirect = match ctx.session.tracking {
        Some(_) => ctx
            .shared
            .pubsub
            .tracking
            .options(ctx.session.handle.id)
            .and_then(|options| options.redirect)
            .map_or(0, |id| id as i64),
        None => -1,
    };
    ctx.out.int(redirect);
    Ok(())
}

/// CLIENT TRACKINGINFO, as Redis: flags (a set), redirect, prefixes.
pub fn client_trackinginfo(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let id = ctx.session.handle.id;
    let options = ctx
        .session
        .tracking
        .and_then(|_| ctx.shared.pubsub.tracking.options(id));
    let mut flags: Vec<&str> = Vec::new();
    match &options {
        None => flags.push("off"),
        Some(options) => {
            flags.push("on");
            match options.mode {
                TrackingMode::Broadcast => flags.push("bcast"),
                TrackingMode::OptIn => {
                    flags.push("optin");
                    if ctx.session.caching {
                        flags.push("caching-yes");
                    }
                }
                TrackingMode::OptOut => {
                    flags.push("optout");
                    if ctx.session.caching {
                        flags.push("caching-no");
                    }
                }
                TrackingMode::Default => {}
            }
            if options.noloop {
                flags.push("noloop");
            }
            if ctx.shared.pubsub.tracking.redirect_broken(id) {
                flags.push("broken_redirect");
            }
        }
    }
    ctx.out.map(3);
    ctx.out.bulk(b"flags");
    ctx.out.set(flags.len());
    for flag in flags {
        ctx.out.bulk(flag.as_bytes());
    }
    ctx.out.bulk(b"redirect");
    ctx.out.int(match &options {
        Some(options) => options.redirect.map_or(0, |id| id as i64),
        None => -1,
    });
    ctx.out.bulk(b"prefixes");
    let mut prefixes = options.map(|o| o.prefixes).unwrap_or_default();
    prefixes.sort();
    ctx.out.array(prefixes.len());
    for prefix in prefixes {
        ctx.out.bulk(&prefix);
    }
    Ok(())
}
