//! Redis's glob matching (`stringmatchlen` in Redis 7's `util.c`), with its
//! polynomial bound.
//!
//! Used by KEYS, SCAN and the type scans, CONFIG GET, COMMAND LIST FILTERBY
//! PATTERN and the write-behind key filter. It sits on the bottom floor so
//! that the store and the engines can match patterns without importing the
//! command layer.
//!
//! The syntax: `*` any run of bytes, `?` one byte, `[abc]`, `[a-z]` and
//! `[^...]` classes (a range's ends may come in either order), `\x` the byte
//! `x`; an unterminated class ends with the pattern. As in Redis, the empty
//! text matches only the empty pattern (not even `*`).
//!
//! ```
//! use larder::glob::glob_match;
//!
//! assert!(glob_match(b"user:*:name", b"user:42:name", false));
//! assert!(glob_match(b"h[a-e]llo", b"HELLO", true));
//! assert!(!glob_match(b"h[^e]llo", b"hello", false));
//! // A pattern that takes exponential time to backtrack returns at once.
//! let text = [b'a'; 40];
//! assert!(!glob_match(b"*a*a*a*a*a*a*a*a*a*b", &text, false));
//! ```

/// Redis's protection against abusive patterns: a `*` nested deeper than
/// this never matches.
const MAX_NESTING: usize = 1000;

/// Whether `text` matches the glob `pattern`, exactly as Redis's
/// `stringmatchlen` decides (ASCII case folding when `nocase`).
///
/// Time is O(len(pattern) × len(text)): Redis's `skipLongerMatches` rule
/// (the fix for CVE-2022-36021) stops the search as soon as the rest of the
/// pattern after some `*` is known to match nowhere in the remaining text,
/// since letting an earlier `*` swallow more cannot help then. Each `*`'s
/// loop over start positions therefore runs at most once per call.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let mut skip_longer_matches = false;
    match_from(pattern, text, nocase, &mut skip_longer_matches, 0)
}

fn fold(byte: u8, nocase: bool) -> u8 {
    if nocase {
        byte.to_ascii_lowercase()
    } else {
        byte
    }
}

fn match_from(
    mut p: &[u8],
    mut s: &[u8],
    nocase: bool,
    skip_longer_matches: &mut bool,
    nesting: usize,
) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while let (Some(&pc), Some(&sc)) = (p.first(), s.first()) {
        match pc {
            b'*' => {
                while p.get(1) == Some(&b'*') {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_from(&p[1..], s, nocase, skip_longer_matches, nesting + 1) {
                        return true;
                    }
                    if *skip_longer_matches {
                        return false;
                    }
                    s = &s[1..];
                }
                // The rest of the pattern matches from no position of the
                // rest of the text: no earlier `*` can fix that by taking
                // more, so every caller gives up too.
                *skip_longer_matches = true;
                return false;
            }
            b'?' => s = &s[1..],
            b'[' => {
                let (matched, rest) = match_class(&p[1..], sc, nocase);
                if !matched {
                    return false;
                }
                s = &s[1..];
                // `rest` starts at the closing `]`, or is empty when the
                // class ran to the end of the pattern.
                p = rest;
                if p.is_empty() {
                    return s.is_empty();
                }
            }
            _ => {
                // `\x` is the byte `x`; a trailing `\` is itself.
                if pc == b'\\' && p.len() >= 2 {
                    p = &p[1..];
                }
                if fold(p[0], nocase) != fold(sc, nocase) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

/// Matches byte `c` against the class that starts at `p` (just after `[`).
/// Returns whether it matched and the pattern from the closing `]` on
/// (empty if the class is unterminated).
fn match_class(mut p: &[u8], c: u8, nocase: bool) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = &p[1..];
    }
    let mut matched = false;
    loop {
        match p {
            [] | [b']', ..] => break,
            // An escaped byte compares exactly, even under nocase (as Redis).
            [b'\\', escaped, ..] => {
                matched |= *escaped == c;
                p = &p[2..];
            }
            [start, b'-', end, ..] => {
                let (lo, hi) = if start <= end {
                    (*start, *end)
                } else {
                    (*end, *start)
                };
                let (lo, hi, c) = (fold(lo, nocase), fold(hi, nocase), fold(c, nocase));
                matched |= lo <= c && c <= hi;
                p = &p[3..];
            }
            [single, ..] => {
                matched |= fold(*single, nocase) == fold(c, nocase);
                p = &p[1..];
            }
        }
    }
    (matched != negate, p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The pre-CVE-2022-36021 `stringmatchlen`: plain backtracking, the
    /// reference the bounded matcher must agree with.
    fn backtracking_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
        backtrack(pattern, text, nocase, 0)
    }

    fn backtrack(mut p: &[u8], mut s: &[u8], nocase: bool, depth: usize) -> bool {
        // Redis caps recursion to protect itself from pathological patterns.
        if depth > MAX_NESTING {
            return false;
        }
        let eq = |a: u8, b: u8| {
            if nocase {
                a.eq_ignore_ascii_case(&b)
            } else {
                a == b
            }
        };
        while !p.is_empty() && !s.is_empty() {
            match p[0] {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    while !s.is_empty() {
                        if backtrack(&p[1..], s, nocase, depth + 1) {
                            return true;
                        }
                        s = &s[1..];
                    }
                    return false;
                }
                b'?' => s = &s[1..],
                b'[' => {
                    p = &p[1..];
                    let negate = p.first() == Some(&b'^');
                    if negate {
                        p = &p[1..];
                    }
                    let mut matched = false;
                    loop {
                        match p {
                            [] => break,
                            [b'\\', escaped, ..] => {
                                if *escaped == s[0] {
                                    matched = true;
                                }
                                p = &p[2..];
                            }
                            [b']', ..] => break,
                            [start, b'-', end, ..] => {
                                let (mut lo, mut hi, mut c) = (*start, *end, s[0]);
                                if lo > hi {
                                    std::mem::swap(&mut lo, &mut hi);
                                }
                                if nocase {
                                    lo = lo.to_ascii_lowercase();
                                    hi = hi.to_ascii_lowercase();
                                    c = c.to_ascii_lowercase();
                                }
                                if c >= lo && c <= hi {
                                    matched = true;
                                }
                                p = &p[3..];
                            }
                            [c, ..] => {
                                if eq(*c, s[0]) {
                                    matched = true;
                                }
                                p = &p[1..];
                            }
                        }
                    }
                    let matched = matched != negate;
                    if !matched {
                        return false;
                    }
                    s = &s[1..];
                    // `p` is at the closing bracket (or the end of a malformed
                    // pattern, which Redis treats as closed).
                    if p.is_empty() {
                        return s.is_empty();
                    }
                }
                b'\\' if p.len() >= 2 => {
                    p = &p[1..];
                    if !eq(p[0], s[0]) {
                        return false;
                    }
                    s = &s[1..];
                }
                c => {
                    if !eq(c, s[0]) {
                        return false;
                    }
                    s = &s[1..];
                }
            }
            p = &p[1..];
            if s.is_empty() {
                while p.first() == Some(&b'*') {
                    p = &p[1..];
                }
                break;
            }
        }
        p.is_empty() && s.is_empty()
    }

    #[test]
    fn globs_like_stringmatchlen() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"h[b-a]llo", b"hbllo", false));
        assert!(glob_match(b"user:*", b"user:42", false));
        assert!(!glob_match(b"user:*", b"users", false));
        assert!(glob_match(b"a\\*b", b"a*b", false));
        assert!(!glob_match(b"a\\*b", b"axb", false));
        assert!(glob_match(b"HELLO", b"hello", true));
        assert!(!glob_match(b"HELLO", b"hello", false));
        assert!(glob_match(b"a*", b"a", false));
        assert!(!glob_match(b"a?", b"a", false));
        // The empty text matches only the empty pattern, as in Redis.
        assert!(!glob_match(b"*", b"", false));
        assert!(glob_match(b"", b"", false));
        // Unterminated classes end with the pattern; `[` alone never matches.
        assert!(glob_match(b"a[bc", b"ab", false));
        assert!(!glob_match(b"[", b"x", false));
        assert!(glob_match(b"[^", b"x", false));
        // A trailing backslash is itself.
        assert!(glob_match(b"a\\", b"a\\", false));
        // Escapes inside a class compare exactly, even under nocase.
        assert!(glob_match(b"[\\]]", b"]", false));
        assert!(!glob_match(b"[\\A]", b"a", true));
        assert!(glob_match(b"[A-C]", b"b", true));
        // `]` right after `-` ends a range, not the class.
        assert!(glob_match(b"[a-]]x", b"^x", false));
        assert!(!glob_match(b"[a-]]x", b"]]x", false));
    }

    #[test]
    fn adversarial_patterns_return_at_once() {
        let text = [b'a'; 40];
        assert!(!glob_match(b"*a*a*a*a*a*a*a*a*a*b", &text, false));
        assert!(glob_match(b"*a*a*a*a*a*a*a*a*a*a", &text, false));
        let long = vec![b'a'; 4096];
        let mut pattern = b"*a".repeat(500);
        pattern.push(b'b');
        assert!(!glob_match(&pattern, &long, false));
        for name in ["maxmemory", "databases", "lazyfree-lazy-user-del"] {
            assert!(!glob_match(
                b"*?*?*?*?*?*?*?*?*?*?*?*?*!",
                name.as_bytes(),
                true
            ));
        }
    }

    #[test]
    fn nesting_is_capped_as_in_redis() {
        let text = [b'a'; 1100];
        let deep = b"*a".repeat(1001);
        assert!(!glob_match(&deep, &text, false));
        let shallow = b"*a".repeat(1000);
        assert!(glob_match(&shallow, &text, false));
    }

    fn small_pattern() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::sample::select(vec![
                b'a', b'b', b'A', b'*', b'*', b'?', b'[', b']', b'^', b'-', b'\\',
            ]),
            0..12,
        )
    }

    fn small_text() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::sample::select(vec![b'a', b'b', b'A', b'B', b'-', b']', b'*']),
            0..12,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn agrees_with_backtracking(
            pattern in small_pattern(),
            text in small_text(),
            nocase in any::<bool>(),
        ) {
            prop_assert_eq!(
                glob_match(&pattern, &text, nocase),
                backtracking_match(&pattern, &text, nocase)
            );
        }
    }
}
