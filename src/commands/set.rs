//! Set commands (to be filled in).

use super::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
