//! `client-output-buffer-limit`: how much output a client of each class
//! may have waiting before it is dropped (see `pubsub::mailbox`).

/// A client class of `client-output-buffer-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientClass {
    Normal = 0,
    Replica = 1,
    PubSub = 2,
}

impl ClientClass {
    /// The name CONFIG and CLIENT KILL TYPE use.
    pub fn name(self) -> &'static str {
        match self {
            ClientClass::Normal => "normal",
            ClientClass::Replica => "slave",
            ClientClass::PubSub => "pubsub",
        }
    }

    /// Parses a class name as Redis does (`replica` and `slave` alike).
    pub fn parse(name: &[u8]) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        match name.as_slice() {
            b"normal" => Some(ClientClass::Normal),
            b"replica" | b"slave" => Some(ClientClass::Replica),
            b"pubsub" => Some(ClientClass::PubSub),
            _ => None,
        }
    }
}

/// One class's limits: a client is dropped once its pending output
/// passes `hard` bytes, or stays past `soft` bytes for `soft_seconds`
/// (0: that limit is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

/// `client-output-buffer-limit`, by [`ClientClass`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits(pub [OutputLimit; 3]);

impl Default for OutputLimits {
    /// Redis's defaults: `normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60`.
    fn default() -> Self {
        const MB: u64 = 1024 * 1024;
        OutputLimits([
            OutputLimit::default(),
            OutputLimit {
                hard: 256 * MB,
                soft: 64 * MB,
                soft_seconds: 60,
            },
            OutputLimit {
                hard: 32 * MB,
                soft: 8 * MB,
                soft_seconds: 60,
            },
        ])
    }
}

impl OutputLimits {
    pub fn get(&self, class: ClientClass) -> OutputLimit {
        self.0[class as usize]
    }

    /// The setting as CONFIG GET shows it.
    pub fn to_config_string(&self) -> String {
        [
            ClientClass::Normal,
            ClientClass::Replica,
            ClientClass::PubSub,
        ]
        .iter()
        .map(|&class| {
            let limit = self.get(class);
            format!(
                "{} {} {} {}",
                class.name(),
                limit.hard,
                limit.soft,
                limit.soft_seconds
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
    }

    /// Applies a CONFIG SET / config file value: groups of `<class> <hard>
    /// <soft> <soft seconds>`, sizes with Redis's units (`32mb`, `1gb`...).
    /// The classes not named keep their limits.
    pub fn parse_onto(&self, value: &str) -> Result<OutputLimits, String> {
        let words: Vec<&str> = value.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        let mut limits = *self;
        for group in words.chunks(4) {
            let class = ClientClass::parse(group[0].as_bytes()).ok_or_else(|| {
                "Invalid client class specified in buffer limit configuration.".to_string()
            })?;
            let hard = super::parse_memory(group[1]);
            let soft = super::parse_memory(group[2]);
            let seconds = group[3].parse::<i64>().ok().filter(|s| *s >= 0);
            let (Some(hard), Some(soft), Some(seconds)) = (hard, soft, seconds) else {
                return Err(
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                        .into(),
                );
            };
            limits.0[class as usize] = OutputLimit {
                hard,
                soft,
                soft_seconds: seconds as u64,
            };
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_print_as_redis() {
        let limits = OutputLimits::default();
        assert_eq!(
            limits.to_config_string(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
        let changed = limits.parse_onto("pubsub 1mb 256kb 10").unwrap();
        assert_eq!(
            changed.get(ClientClass::PubSub),
            OutputLimit {
                hard: 1024 * 1024,
                soft: 256 * 1024,
                soft_seconds: 10
            }
        );
        assert_eq!(changed.get(ClientClass::Normal), OutputLimit::default());
        assert!(limits.parse_onto("pubsub 1mb 256kb").is_err());
        assert!(limits.parse_onto("master 1 1 1").is_err());
        assert!(limits.parse_onto("pubsub x 1 1").is_err());
    }
}
