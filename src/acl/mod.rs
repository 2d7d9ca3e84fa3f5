//! ACL users and their permissions, as Redis 7.0 has them.
//!
//! This module is the model only: users, selectors, rule parsing and
//! description, credential checks and the ACL log. It knows commands only
//! as numbered entries of a [`Catalog`] the command layer builds from its
//! table (name, categories, subcommands), and keys and channels as the
//! command layer hands them over; the ACL commands and the per-command
//! check live in `commands/acl.rs`.
//!
//! Users are immutable once published: a change builds a new [`User`] and
//! replaces it in the map, and sessions pick the new one up when the
//! configuration epoch moves (see `Session::hot`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

mod log;

pub use log::{AclLog, LogEntry};

/// ACL categories in Redis's order (`ACL CAT`).
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The bit of `category` in a [`CatalogCommand::categories`] mask.
pub fn category_bit(category: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(category))
        .map(|i| 1 << i)
}

/// How many command ids a selector has room for (Redis has 1024 too).
pub const MAX_COMMANDS: usize = 1024;
const WORDS: usize = MAX_COMMANDS / 64;

/// Read permission on a key pattern (`%R~`).
pub const READ: u8 = 1;
/// Write permission on a key pattern (`%W~`).
pub const WRITE: u8 = 2;

/// One command (or subcommand) as the ACL sees it.
#[derive(Debug, Clone)]
pub struct CatalogCommand {
    /// Full name: `get`, `client|id`.
    pub name: &'static str,
    /// Bits of [`CATEGORIES`].
    pub categories: u32,
    /// Ids of the subcommands of a container command.
    pub subcommands: Vec<usize>,
    /// Set for a subcommand.
    pub is_subcommand: bool,
}

/// Every command, numbered: the command layer's table in the ACL's terms.
/// Ids are indexes into `commands`.
#[derive(Debug)]
pub struct Catalog {
    pub commands: Vec<CatalogCommand>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    pub fn new(commands: Vec<CatalogCommand>) -> Self {
        assert!(commands.len() < MAX_COMMANDS, "too many commands for ACL");
        let by_name = commands
            .iter()
            .enumerate()
            .map(|(id, c)| (c.name.to_string(), id))
            .collect();
        Catalog { commands, by_name }
    }

    /// A command by its full name (`get`, `config|get`), any case.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The names of the commands in `category`, subcommands included.
    pub fn in_category(&self, bit: u32) -> impl Iterator<Item = &'static str> + '_ {
        self.commands
            .iter()
            .filter(move |c| c.categories & bit != 0)
            .map(|c| c.name)
    }
}

/// A key pattern and the access it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Vec<u8>,
    /// [`READ`] | [`WRITE`].
    pub perm: u8,
    /// How the pattern is matched, decided once when it is added.
    shape: PatternShape,
    /// The first 8 bytes of the literal part (the pattern, or the pattern
    /// without its `*` for a prefix), little-endian, zero-padded; `mask`
    /// covers the bytes it has. A key's first 8 bytes masked must equal it.
    head: u64,
    mask: u64,
}

/// Most key patterns are `prefix*` or a plain key: those are matched
/// without the glob matcher, which costs a call and a loop per byte on
/// every key check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternShape {
    /// No special character: the key must equal the pattern.
    Literal,
    /// A non-empty literal then one `*`: the key must start with it.
    /// (Not a lone `*`, which Redis's matcher does not match with "".)
    Prefix,
    Glob,
}

impl PatternShape {
    fn of(pattern: &[u8]) -> Self {
        let special = |b: &u8| matches!(b, b'*' | b'?' | b'[' | b'\\');
        match pattern.split_last() {
            _ if !pattern.iter().any(special) => PatternShape::Literal,
            Some((b'*', head)) if !head.is_empty() && !head.iter().any(special) => {
                PatternShape::Prefix
            }
            _ => PatternShape::Glob,
        }
    }
}

/// The first 8 bytes of `bytes` as a little-endian word, zero-padded.
#[inline]
fn head_word(bytes: &[u8]) -> u64 {
    match bytes.first_chunk::<8>() {
        Some(first) => u64::from_le_bytes(*first),
        None => {
            let mut word = [0u8; 8];
            word[..bytes.len()].copy_from_slice(bytes);
            u64::from_le_bytes(word)
        }
    }
}

impl KeyPattern {
    fn new(pattern: &[u8], perm: u8) -> Self {
        let shape = PatternShape::of(pattern);
        let literal = match shape {
            PatternShape::Literal => pattern,
            PatternShape::Prefix => &pattern[..pattern.len() - 1],
            PatternShape::Glob => &[],
        };
        let covered = literal.len().min(8);
        KeyPattern {
            pattern: pattern.to_vec(),
            perm,
            shape,
            head: head_word(literal),
            mask: if covered == 8 {
                u64::MAX
            } else {
                (1u64 << (covered * 8)) - 1
            },
        }
    }

    /// Whether the key matches, as `glob::glob_match` says.
    pub fn matches(&self, key: &[u8]) -> bool {
        self.matches_with_head(key, head_word(key))
    }

    /// [`Self::matches`] with the key's [`head_word`] computed once for
    /// all the patterns: a literal or prefix pattern is then decided by a
    /// length test and one masked compare, unless it is longer than 8
    /// bytes.
    #[inline]
    fn matches_with_head(&self, key: &[u8], key_head: u64) -> bool {
        match self.shape {
            PatternShape::Literal => {
                key.len() == self.pattern.len()
                    && key_head & self.mask == self.head
                    && (key.len() <= 8 || key[8..] == self.pattern[8..])
            }
            PatternShape::Prefix => {
                let literal = self.pattern.len() - 1;
                key.len() >= literal
                    && key_head & self.mask == self.head
                    && (literal <= 8 || key[8..literal] == self.pattern[8..literal])
            }
            PatternShape::Glob => crate::glob::glob_match(&self.pattern, key, false),
        }
    }
}

/// A set of permissions: the user's root one, or one of its `(...)`
/// selectors. A command runs if one selector allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    allowed: [u64; WORDS],
    /// Set by `+@all`/`allcommands`, cleared by `-@all`/`nocommands`: the
    /// rules are described as starting from `+@all`.
    all_commands: bool,
    pub all_keys: bool,
    pub keys: Vec<KeyPattern>,
    pub all_channels: bool,
    pub channels: Vec<Vec<u8>>,
    /// Redis 7.0's first-arg rules (`+select|0`): a command whose bit is
    /// clear may still run when its first argument is one of these
    /// (compared without case). Looked at only when the bit is clear, and
    /// empty for almost every user.
    first_args: Vec<(usize, Vec<Vec<u8>>)>,
}

/// Why a selector refused a request (ordered as Redis ranks them: the
/// highest among the selectors is reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denial {
    Command,
    /// The key at this argv index.
    Key(usize),
    /// The channel at this argv index.
    Channel(usize),
}

impl Denial {
    fn rank(self) -> (u8, usize) {
        match self {
            Denial::Command => (1, 0),
            Denial::Key(i) => (2, i),
            Denial::Channel(i) => (4, i),
        }
    }

    /// ACL LOG's `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Denial::Command => "command",
            Denial::Key(_) => "key",
            Denial::Channel(_) => "channel",
        }
    }
}

/// What a request needs, as the command layer computes it.
pub struct Request<'a> {
    pub command: usize,
    /// `no_auth` commands (AUTH, HELLO...) need no command permission.
    pub exempt: bool,
    /// (argv index, key, [`READ`]/[`WRITE`] needed; 0: any pattern).
    pub keys: &'a [(usize, &'a [u8], u8)],
    /// (argv index, channel, is a pattern (PSUBSCRIBE)).
    pub channels: &'a [(usize, &'a [u8], bool)],
    /// argv\[1\], for first-arg rules (`+select|0`).
    pub first_arg: Option<&'a [u8]>,
}

impl Selector {
    fn empty(all_channels: bool) -> Self {
        Selector {
            allowed: [0; WORDS],
            all_commands: false,
            all_keys: false,
            keys: Vec::new(),
            all_channels,
            channels: Vec::new(),
            first_args: Vec::new(),
        }
    }

    fn allows_command(&self, id: usize) -> bool {
        self.allowed[id / 64] & (1 << (id % 64)) != 0
    }

    /// Sets or clears a command's bit; its first-arg rules go, as in
    /// Redis's ACLChangeSelectorPerm.
    fn set_command(&mut self, id: usize, allow: bool) {
        if !self.first_args.is_empty() {
            self.first_args.retain(|(command, _)| *command != id);
        }
        if allow {
            self.allowed[id / 64] |= 1 << (id % 64);
        } else {
            self.allowed[id / 64] &= !(1 << (id % 64));
        }
    }

    /// Redis's ACLChangeSelectorPerm: a container takes its subcommands
    /// along.
    fn change_command(&mut self, catalog: &Catalog, id: usize, allow: bool) {
        self.set_command(id, allow);
        for &sub in &catalog.commands[id].subcommands {
            self.set_command(sub, allow);
        }
    }

    fn change_category(&mut self, catalog: &Catalog, bit: u32, allow: bool) {
        for (id, command) in catalog.commands.iter().enumerate() {
            if command.categories & bit != 0 {
                self.set_command(id, allow);
            }
        }
    }

    /// Everything allowed: the check can be skipped.
    fn unrestricted(&self) -> bool {
        self.all_keys && self.all_channels && self.allowed.iter().all(|w| *w == u64::MAX)
    }

    /// Redis's ACLAddAllowedFirstArg: `arg` once, without case.
    fn add_first_arg(&mut self, id: usize, arg: &[u8]) {
        let at = match self.first_args.iter().position(|(c, _)| *c == id) {
            Some(at) => at,
            None => {
                self.first_args.push((id, Vec::new()));
                self.first_args.len() - 1
            }
        };
        let args = &mut self.first_args[at].1;
        if !args.iter().any(|a| a.eq_ignore_ascii_case(arg)) {
            args.push(arg.to_vec());
        }
    }

    /// The first-arg rules of a command, in the order they were given.
    fn first_args_of(&self, id: usize) -> &[Vec<u8>] {
        self.first_args
            .iter()
            .find(|(c, _)| *c == id)
            .map_or(&[], |(_, args)| args.as_slice())
    }

    /// Whether the command may run: its bit, or (only when the bit is
    /// clear and the selector has first-arg rules) its first argument.
    #[inline]
    fn allows_request(&self, request: &Request) -> bool {
        request.exempt
            || self.allows_command(request.command)
            || (!self.first_args.is_empty() && self.allows_first_arg(request))
    }

    #[cold]
    fn allows_first_arg(&self, request: &Request) -> bool {
        request.first_arg.is_some_and(|arg| {
            self.first_args_of(request.command)
                .iter()
                .any(|a| a.eq_ignore_ascii_case(arg))
        })
    }

    /// Redis's ACLSelectorCheckCmd.
    pub fn check(&self, request: &Request) -> Result<(), Denial> {
        if !self.allows_request(request) {
            return Err(Denial::Command);
        }
        if !self.all_keys {
            for &(index, key, needed) in request.keys {
                let key_head = head_word(key);
                let allowed = self
                    .keys
                    .iter()
                    .any(|p| p.perm & needed == needed && p.matches_with_head(key, key_head));
                if !allowed {
                    return Err(Denial::Key(index));
                }
            }
        }
        if !self.all_channels && !request.channels.is_empty() {
            for &(index, channel, is_pattern) in request.channels {
                let allowed = self.channels.iter().any(|p| {
                    if is_pattern {
                        p.as_slice() == channel
                    } else {
                        crate::glob::glob_match(p, channel, false)
                    }
                });
                if !allowed {
                    return Err(Denial::Channel(index));
                }
            }
        }
        Ok(())
    }

    /// Applies one rule (Redis's ACLSetSelector).
    fn apply(&mut self, catalog: &Catalog, op: &[u8]) -> Result<(), RuleError> {
        let lower = op.to_ascii_lowercase();
        match lower.as_slice() {
            b"allkeys" | b"~*" => {
                self.all_keys = true;
                self.keys.clear();
            }
            b"resetkeys" => {
                self.all_keys = false;
                self.keys.clear();
            }
            b"allchannels" | b"&*" => {
                self.all_channels = true;
                self.channels.clear();
            }
            b"resetchannels" => {
                self.all_channels = false;
                self.channels.clear();
            }
            b"allcommands" | b"+@all" => {
                self.allowed = [u64::MAX; WORDS];
                self.all_commands = true;
                self.first_args.clear();
            }
            b"nocommands" | b"-@all" => {
                self.allowed = [0; WORDS];
                self.all_commands = false;
                self.first_args.clear();
            }
            _ => match op.first() {
                Some(b'~') | Some(b'%') => self.add_key_pattern(op)?,
                Some(b'&') => {
                    if self.all_channels {
                        return Err(RuleError::ChannelAfterAll);
                    }
                    let pattern = &op[1..];
                    if has_spaces(pattern) {
                        return Err(RuleError::Syntax);
                    }
                    if !self.channels.iter().any(|c| c == pattern) {
                        self.channels.push(pattern.to_vec());
                    }
                }
                Some(sign @ (b'+' | b'-')) => {
                    let allow = *sign == b'+';
                    let name = std::str::from_utf8(&op[1..]).map_err(|_| RuleError::Unknown)?;
                    if let Some(category) = name.strip_prefix('@') {
                        let bit = category_bit(category).ok_or(RuleError::Unknown)?;
                        self.change_category(catalog, bit, allow);
                    } else {
                        self.apply_command(catalog, name, allow)?;
                    }
                }
                _ => return Err(RuleError::Syntax),
            },
        }
        Ok(())
    }

    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if self.all_keys {
            return Err(RuleError::KeyAfterAll);
        }
        let (perm, offset) = if op[0] == b'%' {
            let mut perm = 0;
            let mut offset = 1;
            loop {
                match op.get(offset).map(u8::to_ascii_uppercase) {
                    Some(b'R') if perm & READ == 0 => perm |= READ,
                    Some(b'W') if perm & WRITE == 0 => perm |= WRITE,
                    Some(b'~') if perm != 0 => {
                        offset += 1;
                        break;
                    }
                    _ => return Err(RuleError::Syntax),
                }
                offset += 1;
            }
            (perm, offset)
        } else {
            (READ | WRITE, 1)
        };
        let pattern = &op[offset..];
        if has_spaces(pattern) {
            return Err(RuleError::Syntax);
        }
        match self.keys.iter_mut().find(|p| p.pattern == pattern) {
            Some(existing) => existing.perm |= perm,
            None => self.keys.push(KeyPattern::new(pattern, perm)),
        }
        Ok(())
    }

    /// `+name`/`-name` (Redis 7.0's ACLSetSelector): `-` takes a command
    /// or subcommand name only; `+container|sub` allows a subcommand, and
    /// `+command|arg` on a command without subcommands adds a first-arg
    /// rule.
    fn apply_command(
        &mut self,
        catalog: &Catalog,
        name: &str,
        allow: bool,
    ) -> Result<(), RuleError> {
        let split = if allow { name.rsplit_once('|') } else { None };
        let Some((container, arg)) = split else {
            let id = catalog.find(name).ok_or(RuleError::Unknown)?;
            self.change_command(catalog, id, allow);
            return Ok(());
        };
        let parent = catalog.find(container).ok_or(RuleError::Unknown)?;
        if catalog.commands[parent].is_subcommand {
            return Err(RuleError::FirstArgOfSubcommand);
        }
        if arg.is_empty() {
            return Err(RuleError::Syntax);
        }
        if catalog.commands[parent].subcommands.is_empty() {
            self.add_first_arg(parent, arg.as_bytes());
        } else {
            let id = catalog.find(name).ok_or(RuleError::Unknown)?;
            self.change_command(catalog, id, allow);
        }
        Ok(())
    }

    /// The command rules, as Redis 7.0's ACLDescribeSelectorCommandRules
    /// writes them: `+@all`/`-@all`, the categories that fit best, then
    /// the single commands that differ.
    pub fn describe_commands(&self, catalog: &Catalog) -> String {
        let additive = !self.all_commands;
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = Selector::empty(false);
        if !additive {
            fake.allowed = [u64::MAX; WORDS];
        }
        let mut temp = self.clone();
        let mut applied = [false; 32];
        loop {
            let mut best = None;
            let (mut min_diff, mut max_same) = (usize::MAX, 0);
            for (j, category) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let bit = 1 << j;
                let (mut on, mut off) = (0, 0);
                for (id, command) in catalog.commands.iter().enumerate() {
                    if command.categories & bit != 0 {
                        if temp.allows_command(id) {
                            on += 1;
                        } else {
                            off += 1;
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                    best = Some((j, *category));
                    min_diff = diff;
                    max_same = same;
                }
            }
            let Some((j, category)) = best else { break };
            let bit = 1 << j;
            fake.change_category(catalog, bit, additive);
            temp.change_category(catalog, bit, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(category);
            rules.push(' ');
            applied[j] = true;
        }
        for (id, command) in catalog.commands.iter().enumerate() {
            let mine = self.allows_command(id);
            if mine != fake.allows_command(id) {
                rules.push(if mine { '+' } else { '-' });
                rules.push_str(command.name);
                rules.push(' ');
                fake.change_command(catalog, id, mine);
            }
            if !mine {
                for arg in self.first_args_of(id) {
                    rules.push('+');
                    rules.push_str(command.name);
                    rules.push('|');
                    rules.push_str(&String::from_utf8_lossy(arg));
                    rules.push(' ');
                }
            }
        }
        rules.pop();
        rules
    }

    /// The key patterns as GETUSER shows them (`~a* %R~b*`).
    pub fn describe_keys(&self) -> String {
        if self.all_keys {
            return "~*".into();
        }
        let patterns: Vec<String> = self.keys.iter().map(describe_key_pattern).collect();
        patterns.join(" ")
    }

    /// The channel patterns as GETUSER shows them (`&a*`).
    pub fn describe_channels(&self) -> String {
        if self.all_channels {
            return "&*".into();
        }
        let patterns: Vec<String> = self
            .channels
            .iter()
            .map(|c| format!("&{}", String::from_utf8_lossy(c)))
            .collect();
        patterns.join(" ")
    }

    /// As ACL LIST shows it (Redis's ACLDescribeSelector).
    fn describe(&self, catalog: &Catalog) -> String {
        let mut out = String::new();
        if self.all_keys {
            out.push_str("~* ");
        } else {
            for pattern in &self.keys {
                out.push_str(&describe_key_pattern(pattern));
                out.push(' ');
            }
        }
        if self.all_channels {
            out.push_str("&* ");
        } else {
            out.push_str("resetchannels ");
            for channel in &self.channels {
                out.push('&');
                out.push_str(&String::from_utf8_lossy(channel));
                out.push(' ');
            }
        }
        out.push_str(&self.describe_commands(catalog));
        out
    }
}

fn describe_key_pattern(pattern: &KeyPattern) -> String {
    let prefix = match pattern.perm {
        READ => "%R~",
        WRITE => "%W~",
        _ => "~",
    };
    format!("{prefix}{}", String::from_utf8_lossy(&pattern.pattern))
}

fn has_spaces(text: &[u8]) -> bool {
    text.iter().any(|b| b.is_ascii_whitespace())
}

/// Why a rule was refused; the text is Redis's (ACLSetUserStringError).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    Unknown,
    Syntax,
    KeyAfterAll,
    ChannelAfterAll,
    NoSuchPassword,
    BadHash,
    FirstArgOfSubcommand,
    /// A selector's `(` has no `)` (ACL SETUSER's own message).
    Unmatched,
}

impl RuleError {
    pub fn text(self) -> &'static str {
        match self {
            RuleError::Unknown => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::KeyAfterAll => {
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
            }
            RuleError::ChannelAfterAll => {
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
            }
            RuleError::NoSuchPassword => {
                "The password you are trying to remove from the user does not exist"
            }
            RuleError::BadHash => {
                "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
            }
            RuleError::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
            RuleError::Unmatched => "Unmatched parenthesis in acl selector",
        }
    }
}

/// A user (Redis's `user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// `sanitize-payload` / `skip-sanitize-payload` (shown only).
    pub sanitize_payload: Option<bool>,
    /// SHA-256 digests of the passwords, in the order they were added.
    pub passwords: Vec<[u8; 32]>,
    pub root: Selector,
    pub selectors: Vec<Selector>,
    /// Set when the root selector allows everything: the per-command check
    /// is skipped.
    unrestricted: bool,
}

impl User {
    /// A new user as ACL SETUSER creates one: off, no password, no
    /// permissions; channels as `acl-pubsub-default` says.
    pub fn new(name: &str, all_channels: bool) -> Self {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize_payload: None,
            passwords: Vec::new(),
            root: Selector::empty(all_channels),
            selectors: Vec::new(),
            unrestricted: false,
        }
    }

    /// The `default` user Redis starts with: `on nopass ~* &* +@all`.
    pub fn default_user() -> Self {
        let mut user = User::new("default", true);
        user.enabled = true;
        user.nopass = true;
        user.root.all_keys = true;
        user.root.allowed = [u64::MAX; WORDS];
        user.root.all_commands = true;
        user.unrestricted = true;
        user
    }

    /// Whether every command, key and channel is allowed.
    #[inline]
    pub fn unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// Redis's ACLUserCheckCmdWithUnrestrictedKeyAccess: a selector that
    /// allows `request` has all keys, or a `*` pattern that may read.
    pub fn may_read_any_key(&self, request: &Request) -> bool {
        self.unrestricted
            || std::iter::once(&self.root).chain(&self.selectors).any(|s| {
                s.check(request).is_ok()
                    && (s.all_keys
                        || s.keys
                            .iter()
                            .any(|p| p.pattern == b"*" && p.perm & READ == READ))
            })
    }

    /// Redis's ACLCheckAllUserCommandPerm: allowed if one selector allows;
    /// otherwise the most relevant refusal.
    pub fn check(&self, request: &Request) -> Result<(), Denial> {
        if self.unrestricted {
            return Ok(());
        }
        let mut worst = match self.root.check(request) {
            Ok(()) => return Ok(()),
            Err(denial) => denial,
        };
        for selector in &self.selectors {
            match selector.check(request) {
                Ok(()) => return Ok(()),
                Err(denial) => {
                    if denial.rank() > worst.rank() {
                        worst = denial;
                    }
                }
            }
        }
        Err(worst)
    }

    /// Whether `password` is one of the user's (constant time in the
    /// password and in which one matches).
    pub fn password_matches(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let digest = Sha256::digest(password);
        let mut matched = subtle::Choice::from(0);
        for stored in &self.passwords {
            matched |= stored.as_slice().ct_eq(digest.as_slice());
        }
        matched.into()
    }

    /// Applies rules in order (Redis's ACLSetUser for each), as one
    /// change: on an error the user is unchanged and the failing rule is
    /// returned with the reason.
    pub fn apply_rules(
        &self,
        catalog: &Catalog,
        rules: &[Vec<u8>],
        all_channels_default: bool,
    ) -> Result<User, (Vec<u8>, RuleError)> {
        let mut user = self.clone();
        for rule in merge_selector_arguments(rules)? {
            user.apply(catalog, &rule, all_channels_default)
                .map_err(|e| (rule.clone(), e))?;
        }
        user.unrestricted = user.root.unrestricted();
        Ok(user)
    }

    fn apply(
        &mut self,
        catalog: &Catalog,
        op: &[u8],
        all_channels_default: bool,
    ) -> Result<(), RuleError> {
        let lower = op.to_ascii_lowercase();
        match lower.as_slice() {
            b"on" => self.enabled = true,
            b"off" => self.enabled = false,
            b"skip-sanitize-payload" => self.sanitize_payload = Some(false),
            b"sanitize-payload" => self.sanitize_payload = Some(true),
            b"nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            b"resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            b"clearselectors" => self.selectors.clear(),
            b"reset" => {
                for rule in [
                    &b"resetpass"[..],
                    b"resetkeys",
                    b"resetchannels",
                    b"off",
                    b"clearselectors",
                    b"-@all",
                ] {
                    self.apply(catalog, rule, all_channels_default)?;
                }
                if all_channels_default {
                    self.root.all_channels = true;
                }
                self.sanitize_payload = Some(true);
            }
            _ => match op.first() {
                Some(b'>') => {
                    let digest: [u8; 32] = Sha256::digest(&op[1..]).into();
                    self.add_password(digest);
                }
                Some(b'#') => self.add_password(parse_hash(&op[1..])?),
                Some(b'<') => {
                    let digest: [u8; 32] = Sha256::digest(&op[1..]).into();
                    self.remove_password(digest)?;
                }
                Some(b'!') => self.remove_password(parse_hash(&op[1..])?)?,
                Some(b'(') if op.last() == Some(&b')') && op.len() >= 2 => {
                    let mut selector = Selector::empty(all_channels_default);
                    for part in op[1..op.len() - 1]
                        .split(|b| b.is_ascii_whitespace())
                        .filter(|p| !p.is_empty())
                    {
                        selector.apply(catalog, part)?;
                    }
                    self.selectors.push(selector);
                }
                _ => self.root.apply(catalog, op)?,
            },
        }
        Ok(())
    }

    fn add_password(&mut self, digest: [u8; 32]) {
        if !self.passwords.contains(&digest) {
            self.passwords.push(digest);
        }
        self.nopass = false;
    }

    fn remove_password(&mut self, digest: [u8; 32]) -> Result<(), RuleError> {
        let before = self.passwords.len();
        self.passwords.retain(|p| *p != digest);
        if self.passwords.len() == before {
            return Err(RuleError::NoSuchPassword);
        }
        Ok(())
    }

    /// The user's flags as GETUSER lists them.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.sanitize_payload {
            Some(false) => flags.push("skip-sanitize-payload"),
            Some(true) => flags.push("sanitize-payload"),
            None => {}
        }
        flags
    }

    /// The passwords' digests in hex.
    pub fn password_hashes(&self) -> Vec<String> {
        self.passwords.iter().map(|p| hex(p)).collect()
    }

    /// The user's rules as ACL LIST and ACL SAVE write them (without the
    /// leading `user name`).
    pub fn describe(&self, catalog: &Catalog) -> String {
        let mut out = String::new();
        for flag in self.flags() {
            out.push_str(flag);
            out.push(' ');
        }
        for hash in self.password_hashes() {
            out.push('#');
            out.push_str(&hash);
            out.push(' ');
        }
        out.push_str(&self.root.describe(catalog));
        for selector in &self.selectors {
            out.push_str(" (");
            out.push_str(&selector.describe(catalog));
            out.push(')');
        }
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(text: &[u8]) -> Result<[u8; 32], RuleError> {
    if text.len() != 64 || !text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(RuleError::BadHash);
    }
    let mut digest = [0u8; 32];
    for (i, pair) in text.chunks(2).enumerate() {
        let nibble = |b: u8| {
            if b.is_ascii_digit() {
                b - b'0'
            } else {
                b - b'a' + 10
            }
        };
        digest[i] = nibble(pair[0]) << 4 | nibble(pair[1]);
    }
    Ok(digest)
}

/// Redis's ACLMergeSelectorArguments: a selector split over several
/// arguments (`(~a*` `+get)`) becomes one.
fn merge_selector_arguments(rules: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, (Vec<u8>, RuleError)> {
    let mut merged = Vec::new();
    let mut open: Option<Vec<u8>> = None;
    let mut opened_by = Vec::new();
    for rule in rules {
        match &mut open {
            Some(selector) => {
                selector.push(b' ');
                selector.extend_from_slice(rule);
                if rule.last() == Some(&b')') {
                    merged.push(open.take().unwrap_or_default());
                }
            }
            None if rule.first() == Some(&b'(') && rule.last() != Some(&b')') => {
                open = Some(rule.clone());
                opened_by = rule.clone();
            }
            None => merged.push(rule.clone()),
        }
    }
    if open.is_some() {
        return Err((opened_by, RuleError::Unmatched));
    }
    Ok(merged)
}

/// The result of checking a username and password.
#[derive(Debug)]
pub enum AuthResult {
    Ok(Arc<User>),
    Denied,
}

/// The server's users and ACL log.
#[derive(Debug)]
pub struct Acl {
    users: RwLock<BTreeMap<String, Arc<User>>>,
    pub log: Mutex<AclLog>,
}

impl Default for Acl {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Acl {
    /// The `default` user only, with `requirepass` applied.
    pub fn new(requirepass: Option<&str>) -> Self {
        let acl = Acl {
            users: RwLock::new(BTreeMap::new()),
            log: Mutex::new(AclLog::default()),
        };
        let mut default = User::default_user();
        apply_requirepass(&mut default, requirepass);
        acl.users
            .write()
            .insert("default".into(), Arc::new(default));
        acl
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    pub fn default_user(&self) -> Arc<User> {
        self.user("default")
            .unwrap_or_else(|| Arc::new(User::default_user()))
    }

    /// Sorted, as Redis's radix tree lists them.
    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    pub fn put(&self, user: User) {
        self.users.write().insert(user.name.clone(), Arc::new(user));
    }

    /// Applies `rules` to `name` (created if new) atomically.
    pub fn set_user(
        &self,
        catalog: &Catalog,
        name: &str,
        rules: &[Vec<u8>],
        all_channels_default: bool,
    ) -> Result<(), (Vec<u8>, RuleError)> {
        let mut users = self.users.write();
        let fresh;
        let current = match users.get(name) {
            Some(user) => user.as_ref(),
            None => {
                fresh = User::new(name, all_channels_default);
                &fresh
            }
        };
        let updated = current.apply_rules(catalog, rules, all_channels_default)?;
        users.insert(name.to_string(), Arc::new(updated));
        Ok(())
    }

    pub fn delete(&self, name: &str) -> bool {
        self.users.write().remove(name).is_some()
    }

    /// Replaces every user (ACL LOAD, start-up); a missing `default` user
    /// is the stock one.
    pub fn replace_all(&self, users: Vec<User>) {
        let mut map: BTreeMap<String, Arc<User>> = users
            .into_iter()
            .map(|u| (u.name.clone(), Arc::new(u)))
            .collect();
        map.entry("default".into())
            .or_insert_with(|| Arc::new(User::default_user()));
        *self.users.write() = map;
    }

    /// CONFIG SET requirepass: the default user's passwords become this
    /// one (or `nopass` when empty), as Redis's ACLUpdateDefaultUserPassword.
    pub fn set_requirepass(&self, requirepass: Option<&str>) {
        let mut users = self.users.write();
        let mut default = users
            .get("default")
            .map(|u| User::clone(u))
            .unwrap_or_else(User::default_user);
        apply_requirepass(&mut default, requirepass);
        users.insert("default".into(), Arc::new(default));
    }

    /// Checks credentials (Redis's ACLCheckUserCredentials).
    pub fn authenticate(&self, name: &[u8], password: &[u8]) -> AuthResult {
        let Some(user) = std::str::from_utf8(name).ok().and_then(|n| self.user(n)) else {
            // Hash anyway, so that an unknown user takes as long.
            let _ = Sha256::digest(password);
            return AuthResult::Denied;
        };
        if !user.enabled || !user.password_matches(password) {
            return AuthResult::Denied;
        }
        AuthResult::Ok(user)
    }
}

fn apply_requirepass(user: &mut User, requirepass: Option<&str>) {
    user.passwords.clear();
    match requirepass {
        Some(password) => {
            user.nopass = false;
            user.passwords
                .push(Sha256::digest(password.as_bytes()).into());
        }
        None => user.nopass = true,
    }
}

/// Splits an ACL file or `user` config line into words the way Redis's
/// sdssplitargs does (quotes allowed).
pub fn split_line(line: &str) -> Option<Vec<Vec<u8>>> {
    crate::protocol::split_args(line.as_bytes())
}

/// Parses the lines of an ACL file (Redis's ACLLoadFromFile): every line
/// `user <name> <rules...>`; all errors are collected, as Redis reports
/// them (`path:line: reason. `).
pub fn parse_acl_file(
    catalog: &Catalog,
    path: &str,
    text: &str,
    all_channels_default: bool,
) -> Result<Vec<User>, String> {
    let mut errors = String::new();
    let mut users: Vec<User> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(words) = split_line(line) else {
            errors.push_str(&format!("{path}:{number}: unbalanced quotes in acl line. "));
            continue;
        };
        if words.first().map(Vec::as_slice) != Some(b"user") || words.len() < 2 {
            errors.push_str(&format!(
                "{path}:{number} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let name = String::from_utf8_lossy(&words[1]).into_owned();
        if users.iter().any(|u| u.name == name) {
            errors.push_str(&format!("{path}:{number}: Duplicate user '{name}' found. "));
            continue;
        }
        match User::new(&name, all_channels_default).apply_rules(
            catalog,
            &words[2..],
            all_channels_default,
        ) {
            Ok(user) => users.push(user),
            Err((rule, error)) => {
                errors.push_str(&format!(
                    "{path}:{number}: Error in applying operation '{}': {}. ",
                    String::from_utf8_lossy(&rule),
                    error.text()
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests;
