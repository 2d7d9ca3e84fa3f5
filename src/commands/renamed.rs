//! `rename-command`: a client's request names its command as the config
//! file renamed it. The connection translates the name once, as soon as
//! the request is decoded, so that everything after it (CLIENT PAUSE,
//! read-through, MULTI queues, statistics, dispatch) sees the command's
//! own name; a name renamed away (or removed) is unknown, as in Redis.
//! Scripts' `redis.call` translates the same way. In-process callers
//! (the metrics endpoint's INFO) use the real names.

use smallvec::SmallVec;

use super::{Session, Shared};
use crate::config::renames::{CommandRenames, Renamed};
use crate::protocol::ReplyBuf;

/// Puts the command's own name in `argv[0]` if the client typed a new
/// name; false when the typed name was renamed away or removed (refuse
/// it with [`refuse_renamed_away`]).
pub fn apply_renames(renames: &CommandRenames, argv: &mut [&[u8]]) -> bool {
    let Some(typed) = argv.first_mut() else {
        return true;
    };
    match renames.resolve(typed) {
        Renamed::AsTyped => true,
        Renamed::Command(name) => {
            *typed = name.as_bytes();
            true
        }
        Renamed::Gone => false,
    }
}

/// The reply to a command renamed away: Redis's unknown command error,
/// counted and failing a transaction as any unknown command.
pub fn refuse_renamed_away(
    shared: &Shared,
    session: &mut Session,
    out: &mut ReplyBuf,
    argv: &[&[u8]],
) {
    let reply_start = out.len();
    shared.stats.commands_processed.add(1);
    let message = super::unknown_command_message(argv);
    super::reject(shared, session, out, argv[0], None, &message);
    super::apply_reply_mode(session, out, reply_start, false);
}

/// `argv` with the command's own name in place of the typed one.
pub(super) fn translate<'a>(argv: &[&'a [u8]], name: &'static str) -> SmallVec<[&'a [u8]; 8]> {
    let mut translated = SmallVec::from_slice(argv);
    translated[0] = name.as_bytes();
    translated
}
