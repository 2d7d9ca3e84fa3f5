//! Settings parsing: redis.conf-style text through `Config::load_str`, and
//! name/value pairs (mostly real setting names, values built from the
//! shapes settings take) through `Config::set` and `set_at_runtime`, as
//! the config file, the command line and CONFIG SET pass them.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use larder::Config;
use libfuzzer_sys::fuzz_target;

/// Pieces values are made of: numbers, units, yes/no, globs, policy and
/// fsync words, write-behind mapping syntax, quotes.
const PIECES: &[&str] = &[
    "0", "1", "-1", "10", "16", "65535", "65536", "2147483647", "2147483648",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1k", "1kb", "5mb",
    "1gb", "1g", "1tb", "yes", "no", "YES", "allkeys-lru", "noeviction", "always", "everysec",
    "*", "?", "[", "]", "\\", "{id}", "{", "}", ":", ";", "=", "column=", "db=", "users", "user:{id}",
    " ", "  ", "\"", "'", "\t", "\n", "\r\n", "#", "127.0.0.1", "::1", "-", "x", "",
    "\u{0}", "\u{ff}", "é", "0x10", "1e3", "+1", ".", "..", "/",
];

#[derive(Debug)]
struct Input {
    file: String,
    pairs: Vec<(String, String, bool)>,
}

fn value(u: &mut Unstructured) -> Result<String> {
    let mut text = String::new();
    for _ in 0..u.int_in_range(0..=6u8)? {
        if u.ratio(1, 6)? {
            text.push(char::arbitrary(u)?);
        } else {
            text.push_str(u.choose(PIECES)?);
        }
    }
    Ok(text)
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let names = Config::names();
        let pair = |u: &mut Unstructured<'a>| -> Result<(String, String, bool)> {
            let name = if u.ratio(7, 8)? {
                let name = u.choose(&names)?.to_string();
                if u.ratio(1, 8)? {
                    name.to_ascii_uppercase()
                } else {
                    name
                }
            } else {
                value(u)?
            };
            Ok((name, value(u)?, bool::arbitrary(u)?))
        };
        let mut file = String::new();
        for _ in 0..u.int_in_range(0..=8u8)? {
            let (name, value, quoted) = pair(u)?;
            if quoted {
                file.push_str(&format!("{name} \"{value}\"\n"));
            } else {
                file.push_str(&format!("{name} {value}\n"));
            }
        }
        let mut pairs = Vec::new();
        for _ in 0..u.int_in_range(0..=8u8)? {
            pairs.push(pair(u)?);
        }
        Ok(Input { file, pairs })
    }
}

fuzz_target!(|input: Input| {
    let mut config = Config::default();
    let _ = config.load_str(&input.file);
    for (name, value, at_runtime) in &input.pairs {
        let result = if *at_runtime {
            config.set_at_runtime(name, value)
        } else {
            config.set(name, value)
        };
        let _ = result.map_err(|error| error.to_string());
        // What CONFIG GET shows must be accepted back as it is (CONFIG
        // REWRITE and `redis-cli CONFIG GET` round trips rely on it). On a
        // fresh configuration: multi-line directives (write-behind-map)
        // add to what is there.
        if let Some(shown) = config.get(name) {
            let mut fresh = Config::default();
            if let Err(error) = fresh.set(name, &shown) {
                panic!("{name}: its own value {shown:?} is refused: {error}");
            }
            assert_eq!(fresh.get(name), Some(shown), "{name}");
        }
    }
});
