#!/usr/bin/env python3
"""redis-py `Lock` acquire/release throughput against one server, for
tools/compare-scripting-with-redis.sh.

CLIENTS worker *processes* (forked, one connection each: processes, not
threads, so the GIL does not serialise the clients) loop for SECONDS:
acquire a lock (blocking, redis-py's SET NX PX, retried every SLEEP seconds
while another client holds it), release it at once (redis-py's release
script, by EVALSHA). With --locks 1 every client fights over one lock; with
--locks N each iteration picks one of N locks at random.

Prints one line:
  acquisitions attempts errors seconds server_cpu_seconds other0
where attempts counts every SET NX sent (failed ones included),
server_cpu_seconds is the server's user + system CPU time (all threads, from
/proc/<pid>/stat) over the measured window, and other0 the share of CPU 0
that other processes than the server used meanwhile (pinned, CPU 0 should be
the server's alone).
"""
import argparse
import multiprocessing
import os
import random
import signal
import time

import redis
from redis.exceptions import LockError


def cpu0():
    """CPU 0's busy and total time so far, in clock ticks."""
    with open("/proc/stat") as f:
        for line in f:
            fields = line.split()
            if fields[0] == "cpu0":
                v = [int(x) for x in fields[1:9]]
                busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
                return busy, busy + v[3] + v[4]
    return 0, 0


def server_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        # Fields after the command name (which may hold spaces).
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CountingLock(redis.lock.Lock):
    """redis-py's Lock, counting the SET NX attempts it sends."""

    attempts = 0

    def do_acquire(self, token):
        CountingLock.attempts += 1
        return super().do_acquire(token)


def worker(port, locks, seconds, sleep, barrier, results):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    client = redis.Redis(port=port)
    client.ping()
    names = [f"benchlock:{i}" for i in range(locks)]
    rng = random.Random(os.getpid())
    acquisitions = errors = 0
    barrier.wait()
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        name = names[0] if locks == 1 else rng.choice(names)
        lock = client.lock(name, timeout=10, sleep=sleep, blocking_timeout=left,
                           lock_class=CountingLock)
        try:
            if not lock.acquire():
                break  # ran out of time waiting
            lock.release()
            if time.monotonic() <= deadline:
                acquisitions += 1
        except LockError:
            errors += 1
    results.put((acquisitions, CountingLock.attempts, errors))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the server's pid, for its CPU time")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--locks", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--sleep", type=float, default=0.1,
                        help="redis-py Lock's retry interval while the lock is held")
    args = parser.parse_args()

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(args.clients + 1)
    results = context.Queue()
    workers = [
        context.Process(target=worker, daemon=True,
                        args=(args.port, args.locks, args.seconds, args.sleep, barrier, results))
        for _ in range(args.clients)
    ]

    def stop(signum, _frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for w in workers:
            if w.pid is not None:
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for w in workers:
            w.start()
        barrier.wait(timeout=60)
        core_before = cpu0()
        cpu_before = server_cpu(args.pid)
        start = time.monotonic()
        time.sleep(args.seconds)
        cpu_after = server_cpu(args.pid)
        core_after = cpu0()
        elapsed = time.monotonic() - start
        totals = [0, 0, 0]
        for _ in workers:
            for i, value in enumerate(results.get(timeout=60)):
                totals[i] += value
        for w in workers:
            w.join(timeout=10)
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
    server = cpu_after - cpu_before
    hz = os.sysconf("SC_CLK_TCK")
    total = core_after[1] - core_before[1]
    other = (core_after[0] - core_before[0] - server * hz) / total if total > 0 else 0
    print(totals[0], totals[1], totals[2], f"{elapsed:.3f}", f"{server:.3f}", f"{max(other, 0):.3f}")


if __name__ == "__main__":
    main()
