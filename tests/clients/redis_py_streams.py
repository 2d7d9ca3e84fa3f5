"""A worker pool on a Larder stream with redis-py (issue 15's acceptance):
10 consumers in one group process MESSAGES messages with each acked exactly
once, while a crashed consumer's pending entries are reclaimed by
XAUTOCLAIM.

Usage: python3 redis_py_streams.py PORT PROTOCOL [MESSAGES]
  PROTOCOL is 2 or 3; MESSAGES defaults to 100000.
Prints "ok" on success; exits non-zero with a message on the first wrong
answer (a hang dumps every thread's traceback after 120 s and exits).
Runs as well against a real redis-server (the reference).

The producer XADDs the messages (pipelines of 1,000, field `n` = the
message's number). A consumer `crashed` reads CRASHED of them with
XREADGROUP and never acks them (its connection is closed). Then 10 worker
threads, each with its own client and consumer name, loop: XREADGROUP
COUNT 100 `>`, "process" (record the IDs), and XACK them in one pipeline
with the next XREADGROUP; once `>` has nothing new they reclaim with
XAUTOCLAIM (min-idle MIN_IDLE_MS) until nothing is pending. Checked: every
message was processed, the XACK replies add up to exactly MESSAGES (an ID
acked twice or not at all would change the sum), a second XACK of every ID
counts 0, the crashed consumer's entries were all reclaimed by XAUTOCLAIM
and it has none pending, XPENDING's summary is 0.
"""
import faulthandler
import sys
import threading
import time

import redis

port, protocol = int(sys.argv[1]), int(sys.argv[2])
messages = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
faulthandler.dump_traceback_later(120, exit=True)

STREAM, GROUP = "jobs", "workers"
WORKERS, BATCH, CRASHED = 10, 100, 500
MIN_IDLE_MS = 1000


def client():
    return redis.Redis(host="127.0.0.1", port=port, protocol=protocol, decode_responses=True)


def fail(what):
    sys.exit(f"[RESP{protocol}] {what}")


def check(got, expected, what):
    if got != expected:
        fail(f"{what}: expected {expected!r}, got {got!r}")


def entries_of(reply):
    """The (id, fields) entries of an XREADGROUP reply on one stream, as
    redis-py parses it in RESP2 (a list of [name, entries]) and RESP3 (a
    dict name -> [entries])."""
    if not reply:
        return []
    if isinstance(reply, dict):
        # redis-py wraps RESP3's entries in one more list.
        (name, (entries,)), = reply.items()
    else:
        (name, entries), = reply
    check(name, STREAM, "XREADGROUP's stream name")
    # Entries are [id, fields] (RESP3) or (id, fields) (RESP2).
    return [tuple(entry) for entry in entries]


r = client()
r.delete(STREAM)
ids = []
for start in range(0, messages, 1000):
    pipe = r.pipeline(transaction=False)
    for n in range(start, min(start + 1000, messages)):
        pipe.xadd(STREAM, {"n": n})
    ids.extend(pipe.execute())
check(r.xlen(STREAM), messages, "XLEN after the producer")
check(len(set(ids)), messages, "distinct IDs from XADD")
check(r.xgroup_create(STREAM, GROUP, id="0"), True, "XGROUP CREATE")

# The crashed consumer: reads, never acks, goes away.
crashed_client = client()
crashed = entries_of(crashed_client.xreadgroup(GROUP, "crashed", {STREAM: ">"}, count=CRASHED))
crashed_client.close()
check(len(crashed), CRASHED, "entries the crashed consumer read")
crashed_ids = {entry_id for entry_id, _ in crashed}

lock = threading.Lock()
processed = []  # (id, n) of every entry a worker processed
reclaimed = set()  # IDs workers got from XAUTOCLAIM
acked_total = 0
errors = []


def worker(index):
    global acked_total
    name = f"w{index}"
    c = client()
    try:
        pending_ack = []
        done, acked = [], 0
        while True:
            pipe = c.pipeline(transaction=False)
            if pending_ack:
                pipe.xack(STREAM, GROUP, *pending_ack)
            pipe.xreadgroup(GROUP, name, {STREAM: ">"}, count=BATCH)
            replies = pipe.execute()
            if pending_ack:
                acked += replies[0]
            batch = entries_of(replies[-1])
            if not batch:
                pending_ack = []
                break
            done.extend((entry_id, int(fields["n"])) for entry_id, fields in batch)
            pending_ack = [entry_id for entry_id, _ in batch]
        # Nothing new: reclaim what idles past MIN_IDLE_MS (the crashed
        # consumer's entries), until nothing is pending in the group.
        mine = set()
        give_up = time.monotonic() + 30
        while True:
            next_start, claimed = "0-0", []
            while True:
                reply = c.xautoclaim(STREAM, GROUP, name, MIN_IDLE_MS, start_id=next_start, count=BATCH)
                next_start, entries = reply[0], reply[1]
                claimed.extend(tuple(entry) for entry in entries)
                if next_start == "0-0":
                    break
            if claimed:
                done.extend((entry_id, int(fields["n"])) for entry_id, fields in claimed)
                mine.update(entry_id for entry_id, _ in claimed)
                acked += c.xack(STREAM, GROUP, *[entry_id for entry_id, _ in claimed])
                continue
            pending = c.xpending(STREAM, GROUP)["pending"]
            if pending == 0:
                break
            if time.monotonic() > give_up:
                raise AssertionError(f"{pending} entries still pending, none reclaimable")
            time.sleep(0.05)
        with lock:
            processed.extend(done)
            reclaimed.update(mine)
            acked_total += acked
    except Exception as error:  # reported by the main thread
        errors.append(f"{name}: {error!r}")
    finally:
        c.close()


threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    fail("; ".join(errors))

check(acked_total, messages, "sum of XACK replies (each ID acked exactly once)")
check(len({entry_id for entry_id, _ in processed}), messages, "distinct IDs processed")
check({entry_id for entry_id, _ in processed}, set(ids), "IDs processed are the IDs added")
check({n for _, n in processed}, set(range(messages)), "payloads processed")
check(crashed_ids <= reclaimed, True, "the crashed consumer's entries were reclaimed by XAUTOCLAIM")
summary = r.xpending(STREAM, GROUP)
check(summary["pending"], 0, "XPENDING summary count")
consumers = {c["name"]: c["pending"] for c in r.xinfo_consumers(STREAM, GROUP)}
check(consumers.get("crashed"), 0, "the crashed consumer's pending count")
check(sorted(consumers), sorted(["crashed"] + [f"w{i}" for i in range(WORKERS)]), "consumers in the group")
again = 0
for start in range(0, messages, 1000):
    again += r.xack(STREAM, GROUP, *ids[start:start + 1000])
check(again, 0, "XACK of every ID a second time")
group = r.xinfo_groups(STREAM)[0]
check((group["name"], group["pending"], group["last-delivered-id"]), (GROUP, 0, ids[-1]), "XINFO GROUPS")
print("ok")
