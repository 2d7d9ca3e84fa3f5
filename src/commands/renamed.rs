//! Dispatch when the config file renamed or removed commands
//! (`rename-command`): the typed name is translated to the command's own
//! before anything else looks at it, so that MULTI queues, statistics and
//! every check see the real command; a name renamed away is unknown, as in
//! Redis.

use smallvec::SmallVec;

use super::{Session, Shared};
use crate::config::renames::{CommandRenames, Renamed};
use crate::protocol::ReplyBuf;

#[cold]
pub(super) fn execute(
    shared: &Shared,
    session: &mut Session,
    out: &mut ReplyBuf,
    argv: &[&[u8]],
    renames: &CommandRenames,
) {
    match renames.resolve(argv[0]) {
        Renamed::AsTyped => super::execute_resolved(shared, session, out, argv),
        Renamed::Command(name) => {
            let translated = translate(argv, name);
            super::execute_resolved(shared, session, out, &translated);
        }
        Renamed::Gone => {
            let reply_start = out.len();
            shared.stats.commands_processed.add(1);
            let message = super::unknown_command_message(argv);
            super::reject(shared, session, out, argv[0], None, &message);
            super::apply_reply_mode(session, out, reply_start, false);
        }
    }
}

/// `argv` with the command's own name in place of the typed one.
pub(super) fn translate<'a>(argv: &[&'a [u8]], name: &'a str) -> SmallVec<[&'a [u8]; 8]> {
    let mut translated = SmallVec::from_slice(argv);
    translated[0] = name.as_bytes();
    translated
}
