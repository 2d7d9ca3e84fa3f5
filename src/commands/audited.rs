//! The commands of the audit trail (see `crate::audit`): their handlers
//! run through [`audited`], which writes the line once the command has run
//! and before its reply leaves. Off, it costs one atomic load, and only for
//! these commands.

use super::{Ctx, Handler};
use crate::audit::AuditEvent;
use crate::error::Result;

/// Runs `handler`, then records it in the audit trail if that is on.
pub(super) fn audited(
    ctx: &mut Ctx,
    argv: &[&[u8]],
    command: &'static str,
    subcommand: Option<&'static str>,
    handler: Handler,
) -> Result<()> {
    let result = handler(ctx, argv);
    // Looked at after the command: CONFIG SET audit-log-file that turns
    // the trail on is its first line.
    let user = ctx.session.user.clone();
    record(
        ctx,
        &user.name,
        command,
        subcommand,
        result.as_ref().map(|_| ()).map_err(|e| e.message()),
    );
    result
}

/// Records one event of this client's (authentication, which `audited`
/// does not see, which records the user it tried).
pub(super) fn record(
    ctx: &Ctx,
    user: &str,
    command: &'static str,
    subcommand: Option<&'static str>,
    result: std::result::Result<(), &str>,
) {
    let audit = &ctx.shared.audit;
    if audit.is_on() {
        audit.record(&AuditEvent {
            client_id: ctx.session.handle.id,
            client_addr: &ctx.session.handle.addr,
            user,
            command,
            subcommand,
            result,
        });
    }
}
