//! Glob matching under a time budget: arbitrary patterns and texts (each
//! optionally repeated, so that short inputs grow into the long adversarial
//! shapes like `*a*a*a…b` against `aaaa…`) must each match within 50 ms of
//! CPU time. A backtracking matcher takes exponential time on such inputs.
#![no_main]

use arbitrary::Arbitrary;
use larder::glob::glob_match;
use libfuzzer_sys::fuzz_target;

/// Longest pattern and text tried: a few KB, as KEYS, SCAN MATCH or CONFIG
/// GET would receive.
const MAX_PATTERN: usize = 2 * 1024;
const MAX_TEXT: usize = 4 * 1024;
/// The CPU time one match may take. Matching is O(pattern × text), well
/// under a millisecond at these sizes in a release build; the margin covers
/// the fuzzer's instrumentation.
const BUDGET_NANOS: u64 = 50_000_000;

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
            spent <= BUDGET_NANOS,
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
