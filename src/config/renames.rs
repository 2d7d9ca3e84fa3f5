//! `rename-command`: the names clients call commands by, once the config
//! file renamed or removed some, as Redis's loadServerConfigFromString
//! edits its command table. The table itself is the command layer's; this
//! is only the translation, checked against it when the server starts.

use std::collections::HashMap;

/// What a typed command name stands for when some commands are renamed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommandRenames {
    /// Lower-case name a client types -> the command's own (lower-case)
    /// name, or `None` for a name that no longer exists (renamed away or
    /// removed).
    names: HashMap<Vec<u8>, Option<&'static str>>,
}

/// What a typed name resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Renamed {
    /// Not touched by rename-command: look it up as typed.
    AsTyped,
    /// The command's own name.
    Command(&'static str),
    /// Renamed away or removed: unknown.
    Gone,
}

impl CommandRenames {
    /// Applies the directives in order, as Redis does: the name renamed
    /// must exist now (its own, or given by an earlier directive), and the
    /// new name must not. `command_named` finds a (lower-case) name in the
    /// command table, giving the table's own name. Errors are Redis's texts.
    pub fn build(
        directives: &[(String, String)],
        command_named: impl Fn(&str) -> Option<&'static str>,
    ) -> Result<CommandRenames, String> {
        let mut renames = CommandRenames::default();
        for (from, to) in directives {
            let from = from.to_ascii_lowercase();
            let to = to.to_ascii_lowercase();
            let command = match renames.names.get(from.as_bytes()) {
                Some(Some(command)) => *command,
                Some(None) => return Err("No such command in rename-command".into()),
                None if from.contains('|') => {
                    return Err("No such command in rename-command".into())
                }
                None => command_named(&from).ok_or("No such command in rename-command")?,
            };
            renames.names.insert(from.into_bytes(), None);
            if to.is_empty() {
                continue;
            }
            let taken = match renames.names.get(to.as_bytes()) {
                Some(target) => target.is_some(),
                None => command_named(&to).is_some(),
            };
            if taken {
                return Err("Target command name already exists".into());
            }
            renames.names.insert(to.into_bytes(), Some(command));
        }
        Ok(renames)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// What the name a client typed stands for (any case; allocates only
    /// for a long name).
    pub fn resolve(&self, typed: &[u8]) -> Renamed {
        let mut lower = smallvec::SmallVec::<[u8; 32]>::from_slice(typed);
        lower.make_ascii_lowercase();
        match self.names.get(lower.as_slice()) {
            None => Renamed::AsTyped,
            Some(Some(command)) => Renamed::Command(command),
            Some(None) => Renamed::Gone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists(name: &str) -> Option<&'static str> {
        ["get", "set", "config", "flushall"]
            .into_iter()
            .find(|known| *known == name)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn rename_remove_and_chain() {
        let renames = CommandRenames::build(
            &pairs(&[("CONFIG", "cfg"), ("flushall", ""), ("cfg", "Cfg2")]),
            exists,
        )
        .unwrap();
        assert_eq!(renames.resolve(b"CFG2"), Renamed::Command("config"));
        assert_eq!(renames.resolve(b"cfg"), Renamed::Gone);
        assert_eq!(renames.resolve(b"Config"), Renamed::Gone);
        assert_eq!(renames.resolve(b"FLUSHALL"), Renamed::Gone);
        assert_eq!(renames.resolve(b"get"), Renamed::AsTyped);
    }

    #[test]
    fn errors_as_redis() {
        let error = |list: &[(&str, &str)]| CommandRenames::build(&pairs(list), exists).err();
        assert_eq!(
            error(&[("nosuch", "x")]).as_deref(),
            Some("No such command in rename-command")
        );
        assert_eq!(
            error(&[("get", "set")]).as_deref(),
            Some("Target command name already exists")
        );
        assert_eq!(
            error(&[("get", ""), ("get", "x")]).as_deref(),
            Some("No such command in rename-command")
        );
        // A name freed by an earlier directive may be taken again.
        assert_eq!(error(&[("get", "g"), ("set", "get")]), None);
    }
}
