"""Drives a Larder server with redis-py, the way applications do.

Usage: python3 redis_py_check.py PORT PROTOCOL   (PROTOCOL is 2 or 3)
Exits non-zero with a message on the first wrong answer.
"""
import sys

import redis

port, protocol = int(sys.argv[1]), int(sys.argv[2])
r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True)


def check(got, expected, what):
    if got != expected:
        sys.exit(f"{what}: expected {expected!r}, got {got!r}")


check(r.ping(), True, "PING")
r.flushdb()
check(r.set("user:1:name", "Ada", ex=60), True, "SET EX")
check(r.get("user:1:name"), "Ada", "GET")
check(0 < r.ttl("user:1:name") <= 60, True, "TTL")
check(r.incr("visits"), 1, "INCR")
check(r.incrbyfloat("score", 0.5), 0.5, "INCRBYFLOAT")
check(r.mget("user:1:name", "nope"), ["Ada", None], "MGET")

# Cache-aside: a miss, then fill.
check(r.get("product:7"), None, "miss")
r.set("product:7", '{"price": 3}', px=5000)
check(r.get("product:7"), '{"price": 3}', "hit")

# Collections.
r.hset("h", mapping={"a": "1", "b": "2"})
check(r.hgetall("h"), {"a": "1", "b": "2"}, "HGETALL")
r.rpush("q", "x", "y")
check(r.lrange("q", 0, -1), ["x", "y"], "LRANGE")
r.sadd("s", "m1", "m2")
check(r.smembers("s"), {"m1", "m2"}, "SMEMBERS")
r.zadd("z", {"a": 1.5, "b": 2})
pairs = [("a", 1.5), ("b", 2.0)] if protocol == 2 else [["a", 1.5], ["b", 2.0]]
check(r.zrange("z", 0, -1, withscores=True), pairs, "ZRANGE WITHSCORES")
check(r.blpop(["q"], timeout=1), ("q", "x") if protocol == 2 else ["q", "x"], "BLPOP")

# Pipelines are transactions (MULTI/EXEC) by default in redis-py.
pipe = r.pipeline()
pipe.set("a", "1").incr("a").get("a")
check(pipe.execute(), [True, 2, "2"], "pipeline (MULTI/EXEC)")
pipe = r.pipeline(transaction=False)
for i in range(100):
    pipe.set(f"k{i}", i)
check(all(pipe.execute()), True, "plain pipeline")
check(r.dbsize() >= 100, True, "DBSIZE")


# WATCH-based optimistic locking with a retry.
def double(pipe):
    value = int(pipe.get("counter") or 1)
    pipe.multi()
    pipe.set("counter", value * 2)


r.set("counter", 21)
r.transaction(double, "counter")
check(r.get("counter"), "42", "WATCH transaction")

info = r.info()
check(info["redis_version"].startswith("7."), True, "INFO redis_version")
check("connected_clients" in info, True, "INFO connected_clients")
print("ok")
