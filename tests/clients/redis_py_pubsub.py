"""Drives a Larder server's Pub/Sub and client-side caching with redis-py, the
way applications use them: PubSub objects (sync and asyncio) with
get_message, listen and run_in_thread, health checks on the subscribed
connection, reconnection and resubscription after the server drops the
connection, and redis-py's client-side cache (RESP3, CLIENT TRACKING).

Usage: python3 redis_py_pubsub.py PORT PROTOCOL SECTION
  PROTOCOL is 2 or 3; SECTION is one of pubsub, listen, thread, async,
  health_check, reconnect, cache (RESP3 only).
Prints "ok" on success; exits non-zero with a message on the first wrong
answer (a hang dumps every thread's traceback after 20 s and exits).

Runs as well against a real redis-server (the reference). redis-py's cache
refuses servers older than 7.4; to check the cache section against Debian's
redis-server 7.0.15, set REDIS_PY_CACHE_ANY_VERSION=1 (Larder itself must
pass without it).
"""
import asyncio
import faulthandler
import os
import queue
import sys
import threading
import time

import redis
import redis.asyncio
import redis.cache

port, protocol, section = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
faulthandler.dump_traceback_later(20, exit=True)


def client(**extra):
    extra.setdefault("decode_responses", True)
    extra.setdefault("protocol", protocol)
    return redis.Redis(host="127.0.0.1", port=port, **extra)


def fail(what):
    sys.exit(f"[RESP{protocol} {section}] {what}")


def check(got, expected, what):
    if got != expected:
        fail(f"{what}: expected {expected!r}, got {got!r}")


def check_soon(read, expected, what, within=1.0):
    """`read()` returns `expected` within `within` seconds. For a cached read
    after another client's write: Larder's invalidation reaches the cache's
    connection from that connection's own task, which may write it a moment
    after the writer has its reply (Redis writes both in one event-loop
    pass). A cache that is never invalidated still fails."""
    deadline = time.monotonic() + within
    got = read()
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.01)
        got = read()
    check(got, expected, what)


def check_true(condition, what):
    if not condition:
        fail(what)


def next_message(p, what, timeout=3.0):
    """The next message that is not a subscription confirmation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = p.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            return message
    fail(f"no message within {timeout} s: {what}")


def confirmation(p, what, kind=None):
    """The next message, which must be a (p)(un)subscribe confirmation (of
    `kind` if given)."""
    message = p.get_message(timeout=3.0)
    check_true(message is not None, f"no confirmation for {what}")
    check_true(message["type"] in ("subscribe", "psubscribe", "unsubscribe", "punsubscribe"),
               f"{what}: not a confirmation: {message}")
    if kind is not None:
        check(message["type"], kind, f"confirmation type for {what}")
    return message


# ------------------------------------------------------------------ pubsub


def pubsub_section():
    publisher, r = client(), client()
    p = r.pubsub()
    p.subscribe("news", "weather")
    check(
        confirmation(p, "subscribe news"),
        {"type": "subscribe", "pattern": None, "channel": "news", "data": 1},
        "first subscribe confirmation",
    )
    check(
        confirmation(p, "subscribe weather"),
        {"type": "subscribe", "pattern": None, "channel": "weather", "data": 2},
        "second subscribe confirmation",
    )
    check_true(p.subscribed, "subscribed after SUBSCRIBE")
    check(publisher.pubsub_numsub("news", "nobody"), [("news", 1), ("nobody", 0)], "PUBSUB NUMSUB")
    check(sorted(publisher.pubsub_channels()), ["news", "weather"], "PUBSUB CHANNELS")

    # get_message with a timeout waits that long, then returns None.
    start = time.monotonic()
    check(p.get_message(timeout=0.3), None, "get_message with nothing published")
    waited = time.monotonic() - start
    check_true(0.25 <= waited < 2.0, f"get_message(timeout=0.3) returned after {waited:.3f} s")

    check(publisher.publish("news", "hello"), 1, "PUBLISH to one subscriber")
    check(publisher.publish("nobody", "lost"), 0, "PUBLISH to no subscriber")
    check(
        next_message(p, "message on news"),
        {"type": "message", "pattern": None, "channel": "news", "data": "hello"},
        "message",
    )

    p.psubscribe("w*")
    check(
        confirmation(p, "psubscribe w*"),
        {"type": "psubscribe", "pattern": None, "channel": "w*", "data": 3},
        "psubscribe confirmation",
    )
    check(publisher.pubsub_numpat(), 1, "PUBSUB NUMPAT")
    # One subscriber, two subscriptions: the channel and the pattern.
    check(publisher.publish("weather", "rain"), 2, "PUBLISH matching a channel and a pattern")
    got = [next_message(p, "weather twice"), next_message(p, "weather twice")]
    check(
        got,
        [
            {"type": "message", "pattern": None, "channel": "weather", "data": "rain"},
            {"type": "pmessage", "pattern": "w*", "channel": "weather", "data": "rain"},
        ],
        "a message matched by a channel and a pattern",
    )
    check(publisher.publish("wind", "gusts"), 1, "PUBLISH matching the pattern only")
    check(
        next_message(p, "pmessage on wind"),
        {"type": "pmessage", "pattern": "w*", "channel": "wind", "data": "gusts"},
        "pmessage",
    )

    # Binary-safe payloads, with a client that does not decode.
    raw_publisher = client(decode_responses=False)
    raw = client(decode_responses=False).pubsub()
    raw.subscribe(b"bin\x00chan")
    check(
        confirmation(raw, "binary subscribe"),
        {"type": "subscribe", "pattern": None, "channel": b"bin\x00chan", "data": 1},
        "binary subscribe confirmation",
    )
    check(raw_publisher.publish(b"bin\x00chan", b"\x00\xff\r\n"), 1, "binary PUBLISH")
    check(
        next_message(raw, "binary message"),
        {"type": "message", "pattern": None, "channel": b"bin\x00chan", "data": b"\x00\xff\r\n"},
        "binary message",
    )
    raw.close()

    # Unsubscribing from everything leaves the subscribed state.
    p.unsubscribe()
    p.punsubscribe()
    got = [confirmation(p, "unsubscribe") for _ in range(3)]
    check(
        sorted((m["type"], m["channel"]) for m in got),
        [("punsubscribe", "w*"), ("unsubscribe", "news"), ("unsubscribe", "weather")],
        "unsubscribe confirmations",
    )
    check(got[-1]["data"], 0, "the last unsubscribe confirmation counts 0 subscriptions")
    check(p.subscribed, False, "subscribed after unsubscribing from everything")
    check(publisher.publish("news", "late"), 0, "PUBLISH after UNSUBSCRIBE")
    p.close()


def listen_section():
    publisher, r = client(), client()
    p = r.pubsub()
    p.subscribe("jobs")
    p.psubscribe("events.*")
    confirmation(p, "subscribe", "subscribe")
    confirmation(p, "psubscribe", "psubscribe")
    for n in range(3):
        check(publisher.publish("jobs", f"job {n}"), 1, "PUBLISH jobs")
    check(publisher.publish("events.login", "alice"), 1, "PUBLISH events.login")
    check(publisher.publish("jobs", "stop"), 1, "PUBLISH stop")
    got = []
    for message in p.listen():
        if message["type"] in ("subscribe", "psubscribe"):
            continue
        got.append((message["type"], message["pattern"], message["channel"], message["data"]))
        if message["data"] == "stop":
            break
    check(
        got,
        [
            ("message", None, "jobs", "job 0"),
            ("message", None, "jobs", "job 1"),
            ("message", None, "jobs", "job 2"),
            ("pmessage", "events.*", "events.login", "alice"),
            ("message", None, "jobs", "stop"),
        ],
        "messages read with listen()",
    )
    p.close()


def thread_section():
    publisher, r = client(), client()
    received = queue.Queue()
    errors = []
    p = r.pubsub()
    p.subscribe(**{"orders": lambda m: received.put(("orders", m["data"]))})
    p.psubscribe(**{"audit.*": lambda m: received.put((m["pattern"], m["channel"], m["data"]))})
    worker = p.run_in_thread(sleep_time=0.01, daemon=True, exception_handler=lambda e, ps, t: errors.append(e))
    try:
        # The thread subscribes as it starts reading: wait for both.
        deadline = time.monotonic() + 3
        while publisher.pubsub_numsub("orders")[0][1] != 1 or publisher.pubsub_numpat() != 1:
            check_true(time.monotonic() < deadline, "the thread's subscriptions never showed up")
            time.sleep(0.01)
        for n in range(5):
            check(publisher.publish("orders", f"order {n}"), 1, "PUBLISH orders")
        check(publisher.publish("audit.login", "bob"), 1, "PUBLISH audit.login")
        got = []
        for _ in range(6):
            try:
                got.append(received.get(timeout=3))
            except queue.Empty:
                fail(f"the handler got only {got}")
        check(
            got,
            [("orders", f"order {n}") for n in range(5)] + [("audit.*", "audit.login", "bob")],
            "messages seen by the handlers",
        )
    finally:
        worker.stop()
        worker.join(timeout=3)
    check_true(not worker.is_alive(), "the worker thread did not stop")
    check(errors, [], "exceptions in the worker thread")
    p.close()


def async_section():
    async def run():
        publisher = redis.asyncio.Redis(
            host="127.0.0.1", port=port, protocol=protocol, decode_responses=True
        )
        r = redis.asyncio.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True)
        p = r.pubsub()
        await p.subscribe("ticks")
        await p.psubscribe("sensor.*")
        first = await p.get_message(timeout=3)
        check(first, {"type": "subscribe", "pattern": None, "channel": "ticks", "data": 1}, "async subscribe")
        second = await p.get_message(timeout=3)
        check(second, {"type": "psubscribe", "pattern": None, "channel": "sensor.*", "data": 2}, "async psubscribe")
        check(await p.get_message(timeout=0.2), None, "async get_message with nothing published")

        check(await publisher.publish("ticks", "1"), 1, "async PUBLISH")
        message = None
        deadline = time.monotonic() + 3
        while message is None and time.monotonic() < deadline:
            message = await p.get_message(ignore_subscribe_messages=True, timeout=0.1)
        check(message, {"type": "message", "pattern": None, "channel": "ticks", "data": "1"}, "async message")

        for n in range(3):
            await publisher.publish("sensor.temp", str(20 + n))
        await publisher.publish("ticks", "stop")
        got = []

        async def consume():
            async for m in p.listen():
                if m["type"] in ("message", "pmessage"):
                    got.append((m["type"], m["channel"], m["data"]))
                    if m["data"] == "stop":
                        return

        await asyncio.wait_for(consume(), timeout=5)
        check(
            got,
            [("pmessage", "sensor.temp", str(20 + n)) for n in range(3)] + [("message", "ticks", "stop")],
            "async listen()",
        )
        await p.unsubscribe("ticks")
        await p.punsubscribe()
        # The async client sends these without waiting: read the
        # confirmations, so the PUBLISH below cannot overtake them.
        confirmed = []
        deadline = time.monotonic() + 3
        while len(confirmed) < 2 and time.monotonic() < deadline:
            message = await p.get_message(timeout=0.1)
            if message is not None and message["type"] in ("unsubscribe", "punsubscribe"):
                confirmed.append(message["type"])
        check(confirmed, ["unsubscribe", "punsubscribe"], "async unsubscribe confirmations")
        check(await publisher.publish("ticks", "late"), 0, "async PUBLISH after unsubscribe")
        await p.aclose()
        await r.aclose()
        await publisher.aclose()

    asyncio.run(run())


def health_check_section():
    publisher = client()
    r = client(health_check_interval=1)
    p = r.pubsub()
    p.subscribe("hc")
    confirmation(p, "subscribe", "subscribe")
    conn = p.connection
    before = pings(publisher)
    # Due now: the next get_message sends PING redis-py-health-check on the
    # subscribed connection and must recognise the pong.
    conn.next_health_check = 0
    check(p.get_message(timeout=0.5), None, "get_message returning the health check's pong")
    check(p.health_check_response_counter, 0, "health check replies still awaited")
    check_true(pings(publisher) > before, "no PING reached the server")
    check(publisher.publish("hc", "after the health check"), 1, "PUBLISH")
    check(next_message(p, "message after the health check")["data"], "after the health check", "message")

    # Many health checks in a row, interleaved with messages.
    for n in range(5):
        conn.next_health_check = 0
        publisher.publish("hc", f"m{n}")
        check(next_message(p, f"message m{n}")["data"], f"m{n}", "message between health checks")
    deadline = time.monotonic() + 3
    while p.health_check_response_counter > 0 and time.monotonic() < deadline:
        check(p.get_message(timeout=0.1), None, "only pongs left")
    check(p.health_check_response_counter, 0, "pongs never came")

    # PING from the PubSub object itself.
    p.ping("hello")
    check(next_message(p, "pong"), {"type": "pong", "pattern": None, "channel": None, "data": "hello"}, "PubSub.ping")
    p.close()


def pings(r):
    """PINGs the server has run, from the connection's perspective: CLIENT
    LIST of the subscribed connections shows `cmd=ping` after one."""
    total = 0
    for info in r.client_list(_type="pubsub"):
        if info.get("cmd") == "ping":
            total += 1
    return total


def reconnect_section():
    publisher = client()
    r = client()
    p = r.pubsub()
    p.subscribe("alerts")
    p.psubscribe("alarm.*")
    confirmation(p, "subscribe", "subscribe")
    confirmation(p, "psubscribe", "psubscribe")
    check(publisher.publish("alerts", "before"), 1, "PUBLISH before the kill")
    check(next_message(p, "before the kill")["data"], "before", "message before the kill")

    for how in ("type", "id"):
        if how == "type":
            killed = publisher.client_kill_filter(_type="pubsub")
        else:
            ids = [c["id"] for c in publisher.client_list(_type="pubsub")]
            check(len(ids), 1, "pubsub connections in CLIENT LIST")
            killed = publisher.client_kill_filter(_id=ids[0])
        check(killed, 1, f"CLIENT KILL {how.upper()}")
        # The subscriber notices, reconnects and subscribes again by itself;
        # messages published meanwhile may be lost, so publish until one lands.
        deadline = time.monotonic() + 5
        got = None
        n = 0
        while got is None:
            check_true(time.monotonic() < deadline, f"no message after CLIENT KILL {how.upper()}")
            n += 1
            publisher.publish("alerts", f"after {how} {n}")
            try:
                got = p.get_message(ignore_subscribe_messages=True, timeout=0.1)
            except redis.ConnectionError:
                got = None
        check_true(got["data"].startswith(f"after {how}"), f"message after reconnect: {got}")
        check(publisher.pubsub_numsub("alerts"), [("alerts", 1)], "NUMSUB after resubscribing")
        check(publisher.pubsub_numpat(), 1, "NUMPAT after resubscribing")
        check(publisher.publish("alarm.fire", how), 1, "PUBLISH to the pattern after reconnect")
        # Drain the channel's extra messages until the pattern's arrives.
        while True:
            m = next_message(p, "pmessage after reconnect")
            if m["type"] == "pmessage":
                check(m["data"], how, "pmessage after reconnect")
                break
    p.close()


# ------------------------------------------------------------------- cache


def cache_section():
    if protocol != 3:
        fail("client-side caching needs RESP3")
    if os.environ.get("REDIS_PY_CACHE_ANY_VERSION"):
        from redis.connection import CacheProxyConnection

        CacheProxyConnection.MIN_ALLOWED_VERSION = "6.0.0"
    writer = client(protocol=2)
    writer.flushall()
    r = client(cache_config=redis.cache.CacheConfig())
    cache = r.get_cache()
    check_true(cache is not None, "the client has no cache")

    writer.set("user:1", "alice")
    check(r.get("user:1"), "alice", "first GET")
    check(cache.size, 1, "cache entries after the first GET")
    before = commands_processed(writer)
    for _ in range(5):
        check(r.get("user:1"), "alice", "GET served from the cache")
    after = commands_processed(writer)
    # The INFO call itself may count; five GETs sent to the server would
    # add at least five.
    check_true(after - before <= 2, f"cached GETs reached the server ({after - before} commands)")

    # Another client's write invalidates: the next GET reads the new value.
    writer.set("user:1", "bob")
    check_soon(lambda: r.get("user:1"), "bob", "GET after another client's SET")
    check_soon(lambda: r.get("user:1"), "bob", "GET again")
    writer.append("user:1", "by")
    check_soon(lambda: r.get("user:1"), "bobby", "GET after APPEND")
    writer.delete("user:1")
    check_soon(lambda: r.get("user:1"), None, "GET after DEL")
    writer.set("user:1", "carol")
    check_soon(lambda: r.get("user:1"), "carol", "GET after SET of a deleted key")

    # Other cacheable reads.
    writer.hset("h", mapping={"f": "1", "g": "2"})
    check_soon(lambda: r.hget("h", "f"), "1", "HGET")
    check_soon(lambda: r.hgetall("h"), {"f": "1", "g": "2"}, "HGETALL")
    writer.hset("h", "f", "10")
    check_soon(lambda: r.hget("h", "f"), "10", "HGET after HSET")
    check_soon(lambda: r.hgetall("h"), {"f": "10", "g": "2"}, "HGETALL after HSET")
    writer.mset({"a": "1", "b": "2"})
    check_soon(lambda: r.mget("a", "b"), ["1", "2"], "MGET")
    writer.set("b", "3")
    check_soon(lambda: r.mget("a", "b"), ["1", "3"], "MGET after SET of one key")

    # The cache's own client writes: the reply, then the invalidation.
    check(r.get("own"), None, "GET own")
    r.set("own", "1")
    check(r.get("own"), "1", "GET after its own SET")

    # A flush empties the cache.
    check_true(cache.size > 0, "cache empty before FLUSHALL")
    writer.flushall()
    check_soon(lambda: r.get("user:1"), None, "GET after FLUSHALL")
    # (redis-py does not cache a missing key's None.)
    check(cache.size, 0, "cache entries after FLUSHALL")

    # Expiry: the cached value goes once the key expires on the server.
    writer.set("session", "s", px=500)
    check(r.get("session"), "s", "GET of a key with a TTL")
    deadline = time.monotonic() + 3
    while r.get("session") is not None:
        check_true(time.monotonic() < deadline, "the cache kept an expired key")
        time.sleep(0.02)

    # A pipeline of writes, then reads from the cache client.
    for n in range(20):
        writer.set(f"k{n}", "old")
        check(r.get(f"k{n}"), "old", f"GET k{n}")
    pipe = writer.pipeline(transaction=False)
    for n in range(20):
        pipe.set(f"k{n}", "new")
    pipe.execute()
    check_soon(lambda: [r.get(f"k{n}") for n in range(20)], ["new"] * 20, "GETs after a pipeline of SETs")
    r.close()


def commands_processed(r):
    return int(r.info("stats")["total_commands_processed"])


sections = {
    "pubsub": pubsub_section,
    "listen": listen_section,
    "thread": thread_section,
    "async": async_section,
    "health_check": health_check_section,
    "reconnect": reconnect_section,
    "cache": cache_section,
}
sections[section]()
print("ok")
