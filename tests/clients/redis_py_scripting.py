"""Drives a Larder server's Lua scripting with redis-py, the way applications
use it: redis-py's Lock (sync and asyncio), Script objects, a sliding-window
rate limiter in Lua, and FUNCTION LOAD / FCALL.

Usage: python3 redis_py_scripting.py PORT PROTOCOL SECTION
  PROTOCOL is 2 or 3; SECTION is one of lock, async_lock, script,
  rate_limiter, function (or all).
Prints "ok" on success; exits non-zero with a message on the first wrong
answer. Runs as well against a real redis-server (the reference).
"""
import asyncio
import sys
import threading
import time

import redis
import redis.asyncio
from redis.exceptions import LockError, LockNotOwnedError, NoScriptError

port, protocol, section = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


def client(**extra):
    return redis.Redis(
        host="127.0.0.1", port=port, protocol=protocol, decode_responses=True, **extra
    )


def check(got, expected, what):
    if got != expected:
        sys.exit(f"[RESP{protocol} {section}] {what}: expected {expected!r}, got {got!r}")


def check_true(condition, what):
    if not condition:
        sys.exit(f"[RESP{protocol} {section}] {what}")


def lock_section():
    a, b = client(), client()
    a.delete("lock:res", "lock:short")

    # Acquire; a second client cannot take it without blocking.
    la = a.lock("lock:res", timeout=10)
    check(la.acquire(blocking=False), True, "first acquire")
    check(la.locked(), True, "locked() after acquire")
    check(la.owned(), True, "owned() by the holder")
    lb = b.lock("lock:res", timeout=10)
    check(lb.locked(), True, "locked() seen by another client")
    check(lb.owned(), False, "owned() by a non-holder")
    check(lb.acquire(blocking=False), False, "non-blocking acquire of a held lock")
    check(lb.acquire(blocking=True, blocking_timeout=0.2), False, "blocking acquire times out")

    # extend adds to the remaining time; reacquire resets it to the timeout.
    check(la.extend(20), True, "extend")
    check(25_000 < a.pttl("lock:res") <= 30_000, True, f"PTTL after extend ({a.pttl('lock:res')})")
    check(la.extend(5, replace_ttl=True), True, "extend replace_ttl")
    check(3_000 < a.pttl("lock:res") <= 5_000, True, f"PTTL after extend replace_ttl ({a.pttl('lock:res')})")
    check(la.reacquire(), True, "reacquire")
    check(8_000 < a.pttl("lock:res") <= 10_000, True, f"PTTL after reacquire ({a.pttl('lock:res')})")
    # A non-holder cannot extend or reacquire (redis-py checks its token).
    lb.local.token = "not-the-token"
    try:
        lb.extend(5)
        sys.exit(f"[RESP{protocol} {section}] extend by a non-holder succeeded")
    except LockNotOwnedError:
        pass
    try:
        lb.reacquire()
        sys.exit(f"[RESP{protocol} {section}] reacquire by a non-holder succeeded")
    except LockNotOwnedError:
        pass
    try:
        lb.release()
        sys.exit(f"[RESP{protocol} {section}] release by a non-holder succeeded")
    except LockNotOwnedError:
        pass
    check(la.owned(), True, "still owned after a non-holder's attempts")
    lb.local.token = None

    # A blocking acquire by a second client waits until the holder releases.
    acquired = {}

    def waiter():
        start = time.monotonic()
        lock = b.lock("lock:res", timeout=10, sleep=0.01, thread_local=False)
        acquired["ok"] = lock.acquire(blocking=True, blocking_timeout=5)
        acquired["after"] = time.monotonic() - start
        acquired["owned"] = lock.owned()
        acquired["lock"] = lock

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    check("ok" in acquired, False, "the waiter got the lock while it was held")
    la.release()
    thread.join(10)
    check(acquired.get("ok"), True, "blocking acquire after release")
    check_true(acquired["after"] >= 0.25, f"waiter got the lock after {acquired['after']:.3f} s, before the release")
    check(acquired["owned"], True, "owned() by the new holder")
    check(la.owned(), False, "owned() by the old holder after release")
    check(la.locked(), True, "locked() while the new holder holds it")
    acquired["lock"].release()
    check(la.locked(), False, "locked() after the last release")
    check(a.exists("lock:res"), 0, "lock key after release")
    # Releasing an unlocked lock object is a LockError.
    try:
        la.release()
        sys.exit(f"[RESP{protocol} {section}] release of an unlocked lock succeeded")
    except LockError:
        pass

    # The context manager form.
    with a.lock("lock:res", timeout=5) as held:
        check(held.owned(), True, "owned() inside with")
        check(b.lock("lock:res").acquire(blocking=False), False, "held inside with")
    check(a.exists("lock:res"), 0, "released by with")

    # Expiry: the lock expires, someone else takes it; the first holder
    # then gets LockNotOwnedError on release and on extend.
    short = a.lock("lock:short", timeout=0.2)
    check(short.acquire(blocking=False), True, "acquire a short lock")
    time.sleep(0.35)
    check(short.locked(), False, "expired lock is not locked")
    other = b.lock("lock:short", timeout=10)
    check(other.acquire(blocking=False), True, "acquire after expiry by another client")
    check(short.owned(), False, "owned() by the expired holder")
    try:
        short.extend(1)
        sys.exit(f"[RESP{protocol} {section}] extend of a lost lock succeeded")
    except LockNotOwnedError:
        pass
    try:
        short.release()
        sys.exit(f"[RESP{protocol} {section}] release of a lost lock succeeded")
    except LockNotOwnedError:
        pass
    # The failed release did not delete the new holder's key.
    check(other.owned(), True, "the new holder still owns it")
    check(0 < b.pttl("lock:short") <= 10_000, True, "the new holder's TTL is intact")
    other.release()
    check(b.exists("lock:short"), 0, "released by the new holder")

    # Many threads incrementing under the lock lose no update.
    a.set("lock:counter", 0)

    def worker():
        r = client()
        for _ in range(10):
            with r.lock("lock:res", timeout=10, sleep=0.001, blocking_timeout=10):
                value = int(r.get("lock:counter"))
                r.set("lock:counter", value + 1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    check(a.get("lock:counter"), "60", "counter incremented under the lock")


async def async_lock_section():
    from redis.asyncio.lock import Lock

    def aclient():
        return redis.asyncio.Redis(
            host="127.0.0.1", port=port, protocol=protocol, decode_responses=True
        )

    a, b = aclient(), aclient()
    await a.delete("alock:res", "alock:short")
    la = Lock(a, "alock:res", timeout=10)
    check(await la.acquire(blocking=False), True, "first acquire")
    check(await la.locked(), True, "locked()")
    check(await la.owned(), True, "owned() by the holder")
    lb = Lock(b, "alock:res", timeout=10, sleep=0.01)
    check(await lb.owned(), False, "owned() by a non-holder")
    check(await lb.acquire(blocking=False), False, "non-blocking acquire of a held lock")
    check(await la.extend(20), True, "extend")
    pttl = await a.pttl("alock:res")
    check(25_000 < pttl <= 30_000, True, f"PTTL after extend ({pttl})")
    check(await la.reacquire(), True, "reacquire")
    pttl = await a.pttl("alock:res")
    check(8_000 < pttl <= 10_000, True, f"PTTL after reacquire ({pttl})")

    # Blocking acquire by the second client completes once the first releases.
    async def waiter():
        start = time.monotonic()
        got = await lb.acquire(blocking=True, blocking_timeout=5)
        return got, time.monotonic() - start

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.3)
    check(task.done(), False, "the waiter got the lock while it was held")
    await la.release()
    got, after = await asyncio.wait_for(task, 10)
    check(got, True, "blocking acquire after release")
    check_true(after >= 0.25, f"waiter got the lock after {after:.3f} s, before the release")
    check(await lb.owned(), True, "owned() by the new holder")
    check(await la.owned(), False, "owned() by the old holder")
    await lb.release()
    check(await a.exists("alock:res"), 0, "lock key after release")

    async with Lock(a, "alock:res", timeout=5) as held:
        check(await held.owned(), True, "owned() inside async with")
    check(await a.exists("alock:res"), 0, "released by async with")

    # Lost after expiry: LockNotOwnedError for the first holder.
    short = Lock(a, "alock:short", timeout=0.2)
    check(await short.acquire(blocking=False), True, "acquire a short lock")
    await asyncio.sleep(0.35)
    other = Lock(b, "alock:short", timeout=10)
    check(await other.acquire(blocking=False), True, "acquire after expiry")
    for what, attempt in (("extend", lambda: short.extend(1)), ("reacquire", short.reacquire), ("release", short.release)):
        try:
            await attempt()
            sys.exit(f"[RESP{protocol} {section}] {what} of a lost lock succeeded")
        except LockNotOwnedError:
            pass
    check(await other.owned(), True, "the new holder still owns it")
    await other.release()

    # Concurrent tasks on separate connections: mutual exclusion.
    await a.set("alock:counter", 0)
    clients = [aclient() for _ in range(5)]

    async def worker(r):
        for _ in range(10):
            async with Lock(r, "alock:res", timeout=10, sleep=0.001, blocking_timeout=10):
                value = int(await r.get("alock:counter"))
                await asyncio.sleep(0)
                await r.set("alock:counter", value + 1)

    await asyncio.gather(*(worker(r) for r in clients))
    check(await a.get("alock:counter"), "50", "counter incremented under the async lock")
    for r in clients + [a, b]:
        await r.aclose()


def script_section():
    r = client()
    r.delete("sc:k", "sc:n")
    # Script objects: EVALSHA, reloaded by redis-py on NOSCRIPT.
    incr_by = r.register_script(
        "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) return {v, ARGV[2]}"
    )
    check(incr_by(keys=["sc:n"], args=[5, "x"]), [5, "x"], "Script call")
    check(r.script_exists(incr_by.sha), [True], "SCRIPT EXISTS after the first call")
    check(r.script_flush(), True, "SCRIPT FLUSH")
    check(r.script_exists(incr_by.sha), [False], "SCRIPT EXISTS after SCRIPT FLUSH")
    try:
        r.evalsha(incr_by.sha, 1, "sc:n", 1, "y")
        sys.exit(f"[RESP{protocol} {section}] EVALSHA after SCRIPT FLUSH succeeded")
    except NoScriptError as error:
        check(str(error), "No matching script. Please use EVAL.", "NOSCRIPT text")
    check(incr_by(keys=["sc:n"], args=[2, "y"]), [7, "y"], "Script call after SCRIPT FLUSH")
    check(r.script_exists(incr_by.sha), [True], "reloaded by the Script object")
    r.script_flush("ASYNC")
    check(incr_by(keys=["sc:n"], args=[1, "z"]), [8, "z"], "Script call after SCRIPT FLUSH ASYNC")
    r.script_flush("SYNC")
    # In a pipeline (transaction or not) redis-py loads missing scripts first.
    for transaction in (True, False):
        r.script_flush()
        pipe = r.pipeline(transaction=transaction)
        incr_by(keys=["sc:n"], args=[10, "p"], client=pipe)
        pipe.get("sc:n")
        check(pipe.execute(), [[18 if transaction else 28, "p"], str(18 if transaction else 28)], f"Script in a pipeline (transaction={transaction})")
    # FLUSHALL does not clear the script cache.
    r.flushall()
    check(r.script_exists(incr_by.sha), [True], "SCRIPT EXISTS after FLUSHALL")
    # SCRIPT LOAD's sha is the sha1 of the body, as redis-py computes it.
    check(r.script_load("return 'hello'"), r.register_script("return 'hello'").sha, "SCRIPT LOAD sha")
    check(r.evalsha(r.script_load("return 'hello'"), 0), "hello", "EVALSHA of a loaded script")
    # Types through redis-py.
    conv = r.register_script(
        "redis.call('SET', KEYS[1], 'v') "
        "return {1, 'two', redis.call('GET', KEYS[1]), false, 3.99, {ok='fine'}, {err='ignored'}}"
    )
    converted = conv(keys=["sc:k"])
    check(converted[:6], [1, "two", "v", None, 3, "fine"], "conversions of a returned table")
    check(len(converted), 7, "length of the converted table")
    check_true(isinstance(converted[6], redis.ResponseError), f"an error table nested in a reply: {converted[6]!r}")
    check(str(converted[6]), "ignored", "text of a nested error")
    try:
        r.eval("return redis.error_reply('MY custom error')", 0)
        sys.exit(f"[RESP{protocol} {section}] error_reply did not raise")
    except redis.ResponseError as error:
        check(str(error), "MY custom error", "error_reply text")
    try:
        r.eval("return redis.call('INCR', KEYS[1])", 1, "sc:k")
        sys.exit(f"[RESP{protocol} {section}] INCR of a string did not raise")
    except redis.ResponseError as error:
        check_true(str(error).startswith("value is not an integer or out of range script:"), f"redis.call error text: {error}")
    # EVAL_RO and a read-only script refusing writes.
    check(r.eval_ro("return redis.call('GET', KEYS[1])", 1, "sc:k"), "v", "EVAL_RO")
    try:
        r.eval_ro("return redis.call('SET', KEYS[1], 'w')", 1, "sc:k")
        sys.exit(f"[RESP{protocol} {section}] EVAL_RO wrote")
    except redis.ResponseError as error:
        check_true("Write commands are not allowed from read-only scripts" in str(error), f"EVAL_RO write error: {error}")
    check(r.get("sc:k"), "v", "value after the refused write")


RATE_LIMITER = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  return 1
end
return 0
"""


def rate_limiter_section():
    r = client()
    r.delete("rl:api", "rl:slide")
    limiter = r.register_script(RATE_LIMITER)
    limit, window_ms = 50, 60_000
    admitted, rejected = [], []
    lock = threading.Lock()

    def caller(n):
        conn = client()
        mine = []
        for i in range(20):
            now = int(time.time() * 1000)
            mine.append(limiter(keys=["rl:api"], args=[now, window_ms, limit, f"{n}:{i}"], client=conn))
        with lock:
            admitted.extend(x for x in mine if x == 1)
            rejected.extend(x for x in mine if x == 0)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(len(admitted), limit, "requests admitted by 8 concurrent callers")
    check(len(rejected), 8 * 20 - limit, "requests rejected")
    check(r.zcard("rl:api"), limit, "ZCARD of the window")
    check(0 < r.pttl("rl:api") <= window_ms, True, "PEXPIRE set by the script")

    # The window slides: once old requests leave it, new ones are admitted.
    window_ms = 250
    results = []

    def burst():
        now = int(time.time() * 1000)
        return [limiter(keys=["rl:slide"], args=[now, window_ms, 5, f"{now}:{i}"]) for i in range(8)]

    results = burst()
    check(results, [1] * 5 + [0] * 3, "first burst")
    time.sleep(window_ms / 1000 + 0.1)
    results = burst()
    check(results, [1] * 5 + [0] * 3, "burst after the window slid")
    time.sleep(window_ms / 1000 + 0.2)
    check(r.exists("rl:slide"), 0, "the window key expired (PEXPIRE)")


def function_section():
    r = client()
    r.delete("fn:k", "fn:h")
    r.function_flush()
    library = """#!lua name=acclib
local function add(keys, args)
  local v = redis.call('INCRBY', keys[1], args[1])
  redis.call('HSET', keys[2], 'last', args[1])
  return v
end
local function read(keys, args)
  return {redis.call('GET', keys[1]), redis.call('HGET', keys[2], 'last')}
end
redis.register_function('acc_add', add)
redis.register_function{function_name='acc_read', callback=read, flags={'no-writes'}}
"""
    check(r.function_load(library), "acclib", "FUNCTION LOAD")
    try:
        r.function_load(library)
        sys.exit(f"[RESP{protocol} {section}] loading an existing library succeeded")
    except redis.ResponseError as error:
        check(str(error), "Library 'acclib' already exists", "FUNCTION LOAD twice")
    check(r.function_load(library, replace=True), "acclib", "FUNCTION LOAD REPLACE")
    check(r.fcall("acc_add", 2, "fn:k", "fn:h", 4), 4, "FCALL")
    check(r.fcall("acc_add", 2, "fn:k", "fn:h", 3), 7, "FCALL again")
    check(r.fcall_ro("acc_read", 2, "fn:k", "fn:h"), ["7", "3"], "FCALL_RO")
    try:
        r.fcall_ro("acc_add", 2, "fn:k", "fn:h", 1)
        sys.exit(f"[RESP{protocol} {section}] FCALL_RO of a writing function succeeded")
    except redis.ResponseError as error:
        check(str(error), "Can not execute a script with write flag using *_ro command.", "FCALL_RO of a writer")
    check(r.get("fn:k"), "7", "value after the refused FCALL_RO")
    listing = r.function_list(library="acclib")
    check(len(listing), 1, "FUNCTION LIST LIBRARYNAME")
    lib = listing[0]
    if isinstance(lib, list):  # RESP2: flat key/value list
        lib = dict(zip(lib[0::2], lib[1::2]))
    check(lib["library_name"], "acclib", "FUNCTION LIST library_name")
    check(lib["engine"], "LUA", "FUNCTION LIST engine")
    names = []
    for fn in lib["functions"]:
        if isinstance(fn, list):
            fn = dict(zip(fn[0::2], fn[1::2]))
        names.append((fn["name"], sorted(fn["flags"])))
    check(sorted(names), [("acc_add", []), ("acc_read", ["no-writes"])], "FUNCTION LIST functions")
    # DUMP / FLUSH / RESTORE round trip through redis-py (bytes).
    raw = redis.Redis(host="127.0.0.1", port=port, protocol=protocol)
    payload = raw.function_dump()
    check(r.function_flush(), True, "FUNCTION FLUSH")
    try:
        r.fcall("acc_add", 2, "fn:k", "fn:h", 1)
        sys.exit(f"[RESP{protocol} {section}] FCALL after FUNCTION FLUSH succeeded")
    except redis.ResponseError as error:
        check(str(error), "Function not found", "FCALL of a flushed function")
    check(raw.function_restore(payload), True, "FUNCTION RESTORE")
    check(r.fcall("acc_add", 2, "fn:k", "fn:h", 1), 8, "FCALL after RESTORE")
    check(r.function_delete("acclib"), True, "FUNCTION DELETE")
    check(r.function_list(), [], "FUNCTION LIST after DELETE")
    # FLUSHALL keeps functions.
    r.function_load(library)
    r.flushall()
    check(r.fcall("acc_add", 2, "fn:k", "fn:h", 2), 2, "FCALL after FLUSHALL")
    r.function_flush()


SECTIONS = {
    "lock": lock_section,
    "async_lock": lambda: asyncio.run(async_lock_section()),
    "script": script_section,
    "rate_limiter": rate_limiter_section,
    "function": function_section,
}

if section == "all":
    for name, run in SECTIONS.items():
        section = name
        run()
else:
    SECTIONS[section]()
print("ok")
