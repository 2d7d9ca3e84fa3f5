//! Blocking commands (BLPOP, BLMOVE, BLMPOP...): the registry of blocked
//! clients and the timeout rules.
//!
//! How a client blocks:
//! 1. A blocking command that cannot be served writes nothing and leaves a
//!    [`BlockRequest`] in its session (inside EXEC, or outside a
//!    connection, it answers as on timeout instead).
//! 2. The connection registers the client here, at the back of the FIFO
//!    queue of each of its keys, then runs the command once more (a push
//!    that happened between the command and the registration would
//!    otherwise be missed), and waits: for a wakeup, its deadline, a kill,
//!    shutdown, or the socket closing. Its other pipelined commands wait.
//! 3. A command that adds data to a key calls [`BlockingRegistry::key_ready`]
//!    after its change; that wakes the first client (of the matching kind)
//!    queued on the key, which runs its command again under the shard locks
//!    — inside EXEC it waits for the transaction's locks, so it sees the
//!    state after EXEC, as in Redis.
//! 4. A client that is served, or leaves (timeout, kill, disconnect),
//!    passes the wakeup on to the next client queued on each of its keys,
//!    so that what is left is served in blocking order.
//!
//! Fairness: a blocking command may take from a key only if no client of
//! its kind blocked on that key before it ([`BlockingRegistry::may_take`]),
//! so a newcomer cannot overtake a woken client that has not run yet.
//!
//! Lock order: the registry's mutex is taken last (handlers call
//! `key_ready`/`may_take` while holding shard locks; nothing here takes a
//! shard lock), and never held across an await.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::protocol::ReplyBuf;

/// What a blocked client waits for: data of this kind. A push of another
/// type onto the key does not serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    List,
    ZSet,
}

/// The reply of a blocking command whose timeout passed, or that cannot
/// block (inside MULTI/EXEC). Redis 7.0 answers every timed-out list or
/// sorted-set command with a null array, even BLMOVE/BRPOPLPUSH, which
/// answer a null bulk string when they cannot block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReply {
    /// `*-1` (`_` in RESP3).
    NullArray,
    /// `$-1` (`_` in RESP3).
    NullBulk,
}

impl TimeoutReply {
    pub fn write(self, out: &mut ReplyBuf) {
        match self {
            TimeoutReply::NullArray => out.null_array(),
            TimeoutReply::NullBulk => out.null(),
        }
    }
}

/// What a blocking command leaves in the session when it must wait.
#[derive(Debug, Clone)]
pub struct BlockRequest {
    pub db: usize,
    /// The keys whose data would serve it (duplicates allowed).
    pub keys: Vec<Vec<u8>>,
    /// How long to wait at most; `None`: forever.
    pub timeout: Option<Duration>,
    pub kind: WaitKind,
    pub on_timeout: TimeoutReply,
}

/// Parses a blocking command's timeout (seconds, fractions allowed; 0 is
/// forever) as Redis 7.0's `getTimeoutFromObjectOrReply` does: the number
/// is read as a C `long double` (so hexadecimal and huge exponents are
/// accepted), multiplied by 1000, rounded up, and converted to an integer
/// (infinite or out-of-range values become negative on x86, hence "timeout
/// is negative"). A deadline past the end of time (`now_ms` + timeout
/// overflowing) is already due, as it is in Redis.
pub fn timeout_arg(arg: &[u8], now_ms: u64) -> Result<Option<Duration>> {
    let seconds = parse_long_double(arg)
        .ok_or_else(|| Error::err("timeout is not a float or out of range"))?;
    let millis = (seconds * 1000.0).ceil();
    // `(long long)` of a value outside its range is LLONG_MIN on x86.
    // 2^63: the first value past i64::MAX.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let millis = if (-LIMIT..LIMIT).contains(&millis) {
        millis as i64
    } else {
        i64::MIN
    };
    if millis < 0 {
        return Err(Error::err("timeout is negative"));
    }
    if millis == 0 {
        return Ok(None);
    }
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    if millis.checked_add(now).is_none() {
        return Ok(Some(Duration::ZERO));
    }
    Ok(Some(Duration::from_millis(millis as u64)))
}

/// Largest and smallest decimal exponents of an x86 `long double`.
const LONG_DOUBLE_MAX_EXP10: i64 = 4932;
const LONG_DOUBLE_MIN_EXP10: i64 = -4951;

/// C's `strtold` over the whole argument, as Redis's
/// `getLongDoubleFromObject` uses it: no leading space, nothing left over,
/// no NaN, no overflow, no underflow to zero. The result is an `f64`:
/// values beyond its range but within a `long double`'s become infinite
/// (too large) or the smallest normal number (too small), which gives the
/// same timeout.
fn parse_long_double(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() || arg.len() > 5 * 1024 || arg[0].is_ascii_whitespace() {
        return None;
    }
    let text = std::str::from_utf8(arg).ok()?;
    let (negative, body) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let sign = if negative { -1.0 } else { 1.0 };
    if body.starts_with(['+', '-']) {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    let (value, exp10) = if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex)?
    } else {
        if !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
        let value: f64 = body.parse().ok()?;
        (value, decimal_exponent(body))
    };
    if value.is_nan() {
        return None;
    }
    match exp10 {
        // A zero mantissa (or no digits at all, which parse refused).
        None => Some(sign * value),
        Some(e) if !(LONG_DOUBLE_MIN_EXP10..=LONG_DOUBLE_MAX_EXP10).contains(&e) => None,
        Some(_) if value == 0.0 => Some(sign * f64::MIN_POSITIVE),
        Some(_) => Some(sign * value),
    }
}

/// The decimal exponent of the first significant digit of a decimal
/// number (`None` if every digit is zero).
fn decimal_exponent(body: &str) -> Option<i64> {
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (
            &body[..at],
            body[at + 1..].parse::<i64>().unwrap_or_else(|_| {
                // Too many digits for an i64: saturate by sign.
                if body[at + 1..].starts_with('-') {
                    i64::MIN / 2
                } else {
                    i64::MAX / 2
                }
            }),
        ),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let position = if let Some(i) = int_part.bytes().position(|b| b != b'0') {
        (int_part.len() - 1 - i) as i64
    } else {
        let j = frac_part.bytes().position(|b| b != b'0')?;
        -(j as i64) - 1
    };
    Some(position.saturating_add(exponent))
}

/// A hexadecimal float body (after `0x`): hex digits with an optional
/// point and an optional binary exponent `p[+-]digits`. Returns the value
/// and its approximate decimal exponent (`None` if it is zero).
fn parse_hex_float(hex: &str) -> Option<(f64, Option<i64>)> {
    let (mantissa, exponent) = match hex.split_once('p') {
        Some((m, e)) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let e = e.parse::<i64>().unwrap_or(if e.starts_with('-') {
                -100_000
            } else {
                100_000
            });
            (m, e)
        }
        None => (hex, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut value = 0.0f64;
    for b in int_part.bytes() {
        value = value * 16.0 + (b as char).to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for b in frac_part.bytes() {
        value += (b as char).to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    if value == 0.0 {
        return Some((0.0, None));
    }
    let exp2 = value.log2().floor() as i64 + exponent;
    // log10(2) ~ 0.30103.
    let exp10 = exp2.saturating_mul(30103) / 100_000;
    let scaled = value * 2f64.powi(exponent.clamp(-2000, 2000) as i32);
    Some((scaled, Some(exp10)))
}

/// One blocked client in the queues.
#[derive(Debug)]
struct Waiter {
    client_id: u64,
    kind: WaitKind,
    wakeup: Notify,
    /// The keys it was woken for, in the order they got data: Redis 7.0
    /// serves a blocked client from the key that became ready first.
    ready: Mutex<Vec<Box<[u8]>>>,
}

impl Waiter {
    /// Wakes the client for `key`.
    fn wake(&self, key: &[u8]) {
        {
            let mut ready = self.ready.lock();
            if !ready.iter().any(|k| **k == *key) {
                ready.push(Box::from(key));
            }
        }
        self.wakeup.notify_one();
    }
}

type Queues = HashMap<usize, HashMap<Box<[u8]>, VecDeque<Arc<Waiter>>>>;

/// Every blocked client, queued per (database, key) in blocking order.
#[derive(Debug, Default)]
pub struct BlockingRegistry {
    /// Registered clients (INFO `blocked_clients`); zero lets pushes skip
    /// the mutex entirely.
    blocked: AtomicUsize,
    /// Those with a finite timeout (INFO `clients_in_timeout_table`).
    timed: AtomicUsize,
    queues: Mutex<Queues>,
}

impl BlockingRegistry {
    /// Number of clients blocked right now.
    pub fn blocked_clients(&self) -> usize {
        self.blocked.load(Ordering::Acquire)
    }

    /// Number of blocked clients with a finite timeout.
    pub fn clients_with_timeout(&self) -> usize {
        self.timed.load(Ordering::Acquire)
    }

    /// Number of (database, key) queues (0 once nobody waits).
    pub fn waited_keys(&self) -> usize {
        self.queues.lock().values().map(HashMap::len).sum()
    }

    /// Queues client `client_id` on every key of `request`, at the back.
    /// The client stays queued until the returned registration is dropped.
    pub fn register(&self, client_id: u64, request: &BlockRequest) -> Registration<'_> {
        let waiter = Arc::new(Waiter {
            client_id,
            kind: request.kind,
            wakeup: Notify::new(),
            ready: Mutex::new(Vec::new()),
        });
        let mut keys: Vec<Box<[u8]>> = Vec::with_capacity(request.keys.len());
        for key in &request.keys {
            if !keys.iter().any(|k| **k == **key) {
                keys.push(Box::from(key.as_slice()));
            }
        }
        {
            let mut queues = self.queues.lock();
            let db = queues.entry(request.db).or_default();
            for key in &keys {
                db.entry(key.clone()).or_default().push_back(waiter.clone());
            }
            self.blocked.fetch_add(1, Ordering::AcqRel);
        }
        let timed = request.timeout.is_some();
        if timed {
            self.timed.fetch_add(1, Ordering::AcqRel);
        }
        Registration {
            registry: self,
            waiter,
            db: request.db,
            keys,
            timed,
        }
    }

    /// `key` in `db` got data of `kind` (`None`: of some type, e.g. after
    /// RENAME): wakes the first client waiting for that kind on it.
    pub fn key_ready(&self, db: usize, key: &[u8], kind: Option<WaitKind>) {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return;
        }
        let queues = self.queues.lock();
        if let Some(queue) = queues.get(&db).and_then(|keys| keys.get(key)) {
            wake_first(queue, key, kind);
        }
    }

    /// Every key of `db` may have new contents (SWAPDB): wakes the first
    /// waiter of each kind on each of its keys.
    pub fn db_ready(&self, db: usize) {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return;
        }
        let queues = self.queues.lock();
        if let Some(keys) = queues.get(&db) {
            for (key, queue) in keys {
                wake_first(queue, key, None);
            }
        }
    }

    /// Whether client `client_id`, waiting (or about to wait) for `kind`,
    /// may take data from `key`: no client waiting for the same kind was
    /// queued on it before. A refused client wakes the one ahead, in case
    /// data arrived without a signal.
    pub fn may_take(&self, db: usize, key: &[u8], client_id: u64, kind: WaitKind) -> bool {
        if self.blocked.load(Ordering::Acquire) == 0 {
            return true;
        }
        let queues = self.queues.lock();
        let Some(queue) = queues.get(&db).and_then(|keys| keys.get(key)) else {
            return true;
        };
        for waiter in queue {
            if waiter.client_id == client_id {
                return true;
            }
            if waiter.kind == kind {
                waiter.wake(key);
                return false;
            }
        }
        true
    }

    fn unregister(&self, registration: &Registration<'_>) {
        let mut queues = self.queues.lock();
        if let Some(keys) = queues.get_mut(&registration.db) {
            for key in &registration.keys {
                let Some(queue) = keys.get_mut(key) else {
                    continue;
                };
                queue.retain(|w| !Arc::ptr_eq(w, &registration.waiter));
                if queue.is_empty() {
                    keys.remove(key);
                } else {
                    // Whatever this client was woken for, or left behind,
                    // is the next one's to take.
                    wake_first(queue, key, Some(registration.waiter.kind));
                }
            }
            if keys.is_empty() {
                queues.remove(&registration.db);
            }
        }
        self.blocked.fetch_sub(1, Ordering::AcqRel);
        if registration.timed {
            self.timed.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Wakes the first waiter of `kind` (of each kind if `None`) in the queue
/// of `key`.
fn wake_first(queue: &VecDeque<Arc<Waiter>>, key: &[u8], kind: Option<WaitKind>) {
    let mut woken: [bool; 2] = [false; 2];
    for waiter in queue {
        if kind.is_some_and(|k| k != waiter.kind) {
            continue;
        }
        let slot = &mut woken[waiter.kind as usize];
        if !*slot {
            *slot = true;
            waiter.wake(key);
        }
        if kind.is_some() || woken.iter().all(|w| *w) {
            return;
        }
    }
}

/// A blocked client's place in the queues; dropping it leaves them (and
/// passes any pending wakeup on).
#[derive(Debug)]
pub struct Registration<'r> {
    registry: &'r BlockingRegistry,
    waiter: Arc<Waiter>,
    db: usize,
    keys: Vec<Box<[u8]>>,
    timed: bool,
}

impl Registration<'_> {
    /// Resolves once one of the keys may serve this client (a wakeup that
    /// arrived while it was not waiting is kept).
    pub async fn woken(&self) {
        self.waiter.wakeup.notified().await;
    }

    /// The keys this client was woken for since the last call, in the
    /// order they got data.
    pub fn take_ready_keys(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.waiter.ready.lock())
            .into_iter()
            .map(Vec::from)
            .collect()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.unregister(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(s: &str) -> std::result::Result<Option<Duration>, String> {
        timeout_arg(s.as_bytes(), 1_700_000_000_000).map_err(|e| e.message().to_string())
    }

    #[test]
    fn timeouts_parse_as_redis_7_0() {
        let not_float = Err("ERR timeout is not a float or out of range".to_string());
        let negative = Err("ERR timeout is negative".to_string());
        assert_eq!(timeout("0"), Ok(None));
        assert_eq!(timeout("-0.0001"), Ok(None));
        assert_eq!(timeout("0.1"), Ok(Some(Duration::from_millis(100))));
        assert_eq!(timeout("0.0001"), Ok(Some(Duration::from_millis(1))));
        assert_eq!(timeout("1e-400"), Ok(Some(Duration::from_millis(1))));
        assert_eq!(timeout("0x10"), Ok(Some(Duration::from_secs(16))));
        assert_eq!(timeout("0x0.1p1"), Ok(Some(Duration::from_millis(125))));
        assert_eq!(timeout("+1.5"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(
            timeout("9.2e15"),
            Ok(Some(Duration::from_millis(9_200_000_000_000_000_000)))
        );
        assert_eq!(timeout("9.223372036854e15"), Ok(Some(Duration::ZERO)));
        assert_eq!(timeout("-1"), negative);
        assert_eq!(timeout("inf"), negative);
        assert_eq!(timeout("1e400"), negative);
        assert_eq!(timeout("9.3e15"), negative);
        assert_eq!(timeout("1e5000"), not_float);
        assert_eq!(timeout("1e-5000"), not_float);
        assert_eq!(timeout("nan"), not_float);
        assert_eq!(timeout(" 1"), not_float);
        assert_eq!(timeout("1 "), not_float);
        assert_eq!(timeout(""), not_float);
        assert_eq!(timeout("x"), not_float);
        assert_eq!(timeout("1e"), not_float);
        assert_eq!(timeout("."), not_float);
    }

    fn request(keys: &[&str], kind: WaitKind) -> BlockRequest {
        BlockRequest {
            db: 0,
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            timeout: None,
            kind,
            on_timeout: TimeoutReply::NullArray,
        }
    }

    #[test]
    fn queues_are_fifo_per_kind_and_leave_no_trace() {
        let registry = BlockingRegistry::default();
        let first = registry.register(1, &request(&["k", "k"], WaitKind::List));
        let zset = registry.register(2, &request(&["k"], WaitKind::ZSet));
        let second = registry.register(3, &request(&["k", "other"], WaitKind::List));
        assert_eq!(registry.blocked_clients(), 3);
        assert_eq!(registry.waited_keys(), 2);
        assert!(registry.may_take(0, b"k", 1, WaitKind::List));
        assert!(registry.may_take(0, b"k", 2, WaitKind::ZSet));
        assert!(!registry.may_take(0, b"k", 3, WaitKind::List));
        assert!(registry.may_take(0, b"other", 3, WaitKind::List));
        assert!(!registry.may_take(0, b"k", 99, WaitKind::List));
        assert!(registry.may_take(1, b"k", 99, WaitKind::List));
        drop(first);
        assert!(registry.may_take(0, b"k", 3, WaitKind::List));
        drop(zset);
        drop(second);
        assert_eq!(registry.blocked_clients(), 0);
        assert_eq!(registry.waited_keys(), 0);
    }
}
