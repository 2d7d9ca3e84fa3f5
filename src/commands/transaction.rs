//! MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! EXEC locks, in ascending shard order, the shards of every key its queued
//! commands and watched keys touch (every shard if one of them works on the
//! whole keyspace), checks the watched keys under those locks, then runs the
//! queue: no other client sees a state in between.

use smallvec::SmallVec;

use super::flags::*;
use super::{resolve, run, CommandSpec, Ctx, KeySpec, MultiState, Session, WatchedKey, NO_KEYS};
use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::store::LockSet;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        NO_KEYS,
        multi,
    )
    .acl(&["transaction"])
    .doc("transaction", "1.2.0", "Starts a transaction.", "O(1)"),
    CommandSpec::new(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG,
        NO_KEYS,
        exec,
    )
    .acl(&["transaction"])
    .doc(
        "transaction",
        "1.2.0",
        "Executes all commands in a transaction.",
        "Depends on commands in the transaction",
    ),
    CommandSpec::new(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        NO_KEYS,
        discard,
    )
    .acl(&["transaction"])
    .doc(
        "transaction",
        "2.0.0",
        "Discards a transaction.",
        "O(N), when N is the number of queued commands",
    ),
    CommandSpec::new(
        "watch",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        KeySpec::Range {
            first: 1,
            last: -1,
            step: 1,
        },
        watch,
    )
    .acl(&["transaction"])
    .key_spec_flags(&["RO"])
    .doc(
        "transaction",
        "2.2.0",
        "Monitors changes to keys to determine the execution of a transaction.",
        "O(1) for every key.",
    ),
    CommandSpec::new(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST | ALLOW_BUSY,
        NO_KEYS,
        unwatch,
    )
    .acl(&["transaction"])
    .doc(
        "transaction",
        "2.2.0",
        "Forgets about watched keys of a transaction.",
        "O(1)",
    ),
];

/// Commands that run immediately even inside MULTI.
pub fn runs_inside_multi(spec: &CommandSpec) -> bool {
    matches!(
        spec.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

fn multi(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    if ctx.session.multi.is_some() {
        return Err(Error::err("MULTI calls can not be nested"));
    }
    ctx.session.multi = Some(MultiState::default());
    ctx.session.handle.meta.lock().multi = 0;
    ctx.out.ok();
    Ok(())
}

fn discard(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    if ctx.session.multi.take().is_none() {
        return Err(Error::err("DISCARD without MULTI"));
    }
    ctx.session.handle.meta.lock().multi = -1;
    unwatch_all(ctx.shared, ctx.session, None);
    ctx.out.ok();
    Ok(())
}

fn watch(ctx: &mut Ctx, argv: &[&[u8]]) -> Result<()> {
    if ctx.session.multi.is_some() {
        return Err(Error::err("WATCH inside MULTI is not allowed"));
    }
    let db = ctx.db();
    for &key in &argv[1..] {
        if ctx
            .session
            .watched
            .iter()
            .any(|w| w.db == db && w.key == key)
        {
            continue;
        }
        let mut locked = ctx.locks.key(key)?;
        let part = locked.db(db, key)?;
        let existed = part.contains(key, ctx.now_ms);
        let version = part.watch(key);
        ctx.session.watched.push(WatchedKey {
            db,
            key: key.to_vec(),
            version,
            existed,
        });
    }
    ctx.session.handle.meta.lock().watching = ctx.session.watched.len();
    ctx.out.ok();
    Ok(())
}

fn unwatch(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    unwatch_all(ctx.shared, ctx.session, None);
    ctx.out.ok();
    Ok(())
}

/// Forgets every key the session watches. Uses `held` locks when given
/// (they must cover the watched keys), else locks each key's shard.
pub fn unwatch_all(shared: &Shared, session: &mut Session, mut held: Option<&mut LockSet<'_>>) {
    for watched in session.watched.drain(..) {
        match held.as_deref_mut() {
            Some(locks) => {
                if let Ok(part) = locks.db(watched.db, &watched.key) {
                    part.unwatch(&watched.key);
                }
            }
            None => {
                let mut locks = shared.store.lock_keys([watched.key.as_slice()]);
                if let Ok(part) = locks.db(watched.db, &watched.key) {
                    part.unwatch(&watched.key);
                }
            }
        }
    }
    session.handle.meta.lock().watching = 0;
}

/// Cleans up when a connection ends: its watches must not outlive it.
pub fn end_session(shared: &Shared, session: &mut Session) {
    session.multi = None;
    unwatch_all(shared, session, None);
    super::pubsub::drop_subscriptions(shared, session);
    super::tracking::turn_off(shared, session);
    // Invalidations redirected here now find the client gone.
    session.handle.mailbox.close();
}

fn exec(ctx: &mut Ctx, _argv: &[&[u8]]) -> Result<()> {
    let Some(multi) = ctx.session.multi.take() else {
        return Err(Error::err("EXEC without MULTI"));
    };
    ctx.session.handle.meta.lock().multi = -1;
    if multi.had_error {
        unwatch_all(ctx.shared, ctx.session, None);
        return Err(Error::raw(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    let queued: Vec<(&'static CommandSpec, SmallVec<[&[u8]; 8]>)> = multi
        .queued
        .iter()
        .filter_map(|argv| {
            let args: SmallVec<[&[u8]; 8]> = argv.iter().map(Vec::as_slice).collect();
            resolve(&args).ok().map(|spec| (spec, args))
        })
        .collect();

    let store = &ctx.shared.store;
    let mut locks = if queued.iter().any(|(spec, _)| spec.has(WHOLE_KEYSPACE)) {
        store.lock_all()
    } else {
        let keys = queued
            .iter()
            .flat_map(|(spec, args)| spec.key_positions(args).into_iter().map(move |i| args[i]))
            .chain(ctx.session.watched.iter().map(|w| w.key.as_slice()));
        store.lock_keys(keys)
    };

    let now = ctx.now_ms;
    let mut changed = false;
    for watched in &ctx.session.watched {
        let part = locks.db(watched.db, &watched.key)?;
        let version_moved = part.watch_version(&watched.key) != Some(watched.version);
        let expired_since = watched.existed && !part.contains(&watched.key, now);
        if version_moved || expired_since {
            changed = true;
            break;
        }
    }
    unwatch_all(ctx.shared, ctx.session, Some(&mut locks));
    if changed {
        ctx.out.null_array();
        return Ok(());
    }
    ctx.out.array(queued.len());
    let acl_open = ctx.session.hot(ctx.shared).acl_open;
    for (spec, args) in &queued {
        // The rules may have changed since the command was queued.
        if !acl_open {
            if let Err(denial) = super::acl::check(&ctx.session.user, spec, args) {
                let context = super::acl::Context::Multi;
                super::acl::log_denial(ctx.shared, ctx.session, spec, args, denial, context);
                let message = super::acl::exec_message(denial);
                super::count_error_reply(ctx.shared, message.as_bytes());
                ctx.out.error(message);
                continue;
            }
        }
        run(
            ctx.shared,
            ctx.session,
            ctx.out,
            spec,
            args,
            Some(&mut locks),
        );
        super::feed_monitors(ctx.shared, ctx.session, spec, args, false);
    }
    Ok(())
}
