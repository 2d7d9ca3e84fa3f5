//! Glob matching under a time budget: arbitrary patterns and texts (each
//! optionally repeated, so that short inputs grow into the long adversarial
//! shapes like `*a*a*a…b` against `aaaa…`) must each match within a CPU
//! budget linear in pattern length × text length (the matcher's bound): a
//! backtracking matcher takes exponential time on such inputs and blows it
//! by orders of magnitude.
#![no_main]

use arbitrary::Arbitrary;
use larder::glob::glob_match;
use libfuzzer_sys::fuzz_target;

/// Longest pattern and text tried: a few KB, as KEYS, SCAN MATCH or CONFIG
/// GET would receive.
const MAX_PATTERN: usize = 2 * 1024;
const MAX_TEXT: usize = 4 * 1024;
/// The CPU time one match may take: a fixed 50 ms, plus 25 ns per
/// (pattern byte × text byte), the O(pattern × text) bound with room for
/// the fuzzer's instrumentation (an unterminated `[` class is rescanned at
/// every start position, as in Redis: 2 KB × 4 KB took 145 ms
/// instrumented).
fn budget_nanos(pattern: usize, text: usize) -> u64 {
    50_000_000 + 25 * (pattern as u64) * (text as u64)
}

#[derive(Debug, Arbitrary)]
struct Input {
    nocase: bool,
    pattern_repeat: u16,
    text_repeat: u16,
    pattern: Vec<u8>,
    text: Vec<u8>,
}

fn repeated(unit: &[u8], times: u16, max: usize) -> Vec<u8> {
    let times = usize::from(times).max(1);
    let mut out = unit.repeat(times);
    out.truncate(max);
    out
}

/// The calling thread's CPU time: the fuzzer shares the machine, and wall
/// time would count the moments it is not running.
fn thread_cpu_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for clock_gettime to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

fuzz_target!(|input: Input| {
    let pattern = repeated(&input.pattern, input.pattern_repeat, MAX_PATTERN);
    let text = repeated(&input.text, input.text_repeat, MAX_TEXT);
    for nocase in [input.nocase, !input.nocase] {
        let start = thread_cpu_nanos();
        let matched = glob_match(&pattern, &text, nocase);
        let spent = thread_cpu_nanos() - start;
        assert!(
            spent <= budget_nanos(pattern.len(), text.len()),
            "glob_match took {} ms (matched: {matched}, nocase: {nocase}, pattern {} bytes, text {} bytes)",
            spent / 1_000_000,
            pattern.len(),
            text.len()
        );
    }
    // A pattern always matches itself once its metacharacters are escaped.
    if !input.text.is_empty() {
        let mut escaped = Vec::with_capacity(input.text.len() * 2);
        for &b in &input.text {
            escaped.extend_from_slice(&[b'\\', b]);
        }
        assert!(glob_match(&escaped, &input.text, false));
        assert!(glob_match(&escaped, &input.text, true));
    }
});
