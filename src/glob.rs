//! Glob matching as Redis's `stringmatchlen`, on the bottom floor: KEYS,
//! SCAN, CONFIG GET, COMMAND LIST and the write-behind key filter use it.

/// Redis's `stringmatchlen`: glob matching with `*`, `?`, `[...]` (ranges,
/// `^` negation) and `\` escapes, optionally case-insensitive.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    glob_match_impl(pattern, text, nocase, 0)
}

fn glob_match_impl(mut p: &[u8], mut s: &[u8], nocase: bool, depth: usize) -> bool {
    // Redis caps recursion to protect itself from pathological patterns.
    if depth > 1000 {
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
                    if glob_match_impl(&p[1..], s, nocase, depth + 1) {
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
