#!/usr/bin/env python3
"""Client side of tools/compare-pubsub-with-redis.sh: raw sockets, no client
library, one process, one thread (epoll), so that it costs as little as it
can on the load generator's core.

  subscribe  --port P --channels N --per-channel M
      Opens N*M connections; connection j SUBSCRIBEs to channel j % N
      (ch:000000000000, ch:000000000001, ... as redis-benchmark's
      __rand_int__ spells them). Prints "ready" once every subscription is
      confirmed, then counts the message frames it reads until no message
      came for --idle seconds (after the first), or --timeout. Prints
      "messages first_ts last_ts closed" (closed: connections the server
      dropped, e.g. past client-output-buffer-limit).

  latency    --port P --samples S
      A RESP3 client with CLIENT TRACKING ON GETs a key (so it is tracked),
      then another connection SETs it: the time from sending the SET to the
      tracker reading its `invalidate` push, and to the writer reading +OK.
      Prints "push_p50 push_p99 push_max ok_p50 ok_p99 samples" in ms.

  getload    --port P --pid PID --clients C --keys K --tracking on|off
      C RESP3 connections (HELLO 3), each with CLIENT TRACKING ON when
      --tracking on, GET their own K keys (key:%012d, client c has
      c*K .. c*K+K-1, values of --value-size bytes) once each, then for
      --seconds send pipelines of --pipeline GETs round-robin over those
      keys. Prints "gets gets_per_s server_cpu_s" for the timed loop (CPU of
      process PID from /proc, user + system).
"""

import argparse
import os
import select
import socket
import sys
import time

MESSAGE = b"$7\r\nmessage\r\n"


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_until(sock, marker, buf=b""):
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("connection closed")
        buf += chunk
    return buf


def channel(i):
    return "ch:%012d" % i


def subscribe(a):
    n = a.channels * a.per_channel
    socks = []
    for j in range(n):
        s = connect(a.port)
        s.sendall(command("SUBSCRIBE", channel(j % a.channels)))
        socks.append(s)
    for s in socks:
        read_until(s, b"subscribe")
        s.setblocking(False)
    ep = select.epoll()
    by_fd = {}
    tails = {}
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN)
        by_fd[s.fileno()] = s
        tails[s.fileno()] = b""
    print("ready", flush=True)
    count = 0
    closed = 0
    first = last = 0.0
    keep = len(MESSAGE) - 1
    start = time.monotonic()
    while by_fd:
        events = ep.poll(0.1)
        now = time.monotonic()
        for fd, _ in events:
            s = by_fd[fd]
            try:
                data = s.recv(262144)
            except BlockingIOError:
                continue
            except ConnectionError:
                data = b""
            if not data:
                ep.unregister(fd)
                del by_fd[fd]
                closed += 1
                continue
            # A frame split between two reads: look at the seam too.
            t = tails[fd]
            got = data.count(MESSAGE) + (t + data[:keep]).count(MESSAGE)
            tails[fd] = data[-keep:]
            if got:
                if not count:
                    first = now
                count += got
                last = now
        if count and now - last > a.idle:
            break
        if now - start > a.timeout:
            break
    print(count, "%.6f" % first, "%.6f" % last, closed, flush=True)


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[i]


def latency(a):
    tracker = connect(a.port)
    tracker.sendall(command("HELLO", "3") + command("CLIENT", "TRACKING", "ON") + command("PING"))
    read_until(tracker, b"+PONG\r\n")
    writer = connect(a.port)
    pushes, oks = [], []
    for i in range(a.samples):
        key = "inv:%d:%d" % (os.getpid(), i)
        writer.sendall(command("SET", key, "v1"))
        read_until(writer, b"+OK\r\n")
        tracker.sendall(command("GET", key))
        buf = read_until(tracker, b"v1\r\n")
        if buf != b"$2\r\nv1\r\n":
            raise SystemExit("unexpected GET reply %r" % buf)
        time.sleep(a.gap)
        set_cmd = command("SET", key, "v2")
        t0 = time.perf_counter()
        writer.sendall(set_cmd)
        tbuf = wbuf = b""
        t_push = t_ok = None
        while t_push is None or t_ok is None:
            ready, _, _ = select.select([tracker, writer], [], [], 5)
            if not ready:
                raise SystemExit("no invalidation within 5 s (sample %d)" % i)
            now = time.perf_counter()
            for s in ready:
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit("connection closed")
                if s is tracker:
                    tbuf += chunk
                    if t_push is None and key.encode() + b"\r\n" in tbuf and b"invalidate" in tbuf:
                        t_push = now
                else:
                    wbuf += chunk
                    if t_ok is None and b"+OK\r\n" in wbuf:
                        t_ok = now
        pushes.append((t_push - t0) * 1000)
        oks.append((t_ok - t0) * 1000)
    pushes.sort()
    oks.sort()
    print(
        "%.4f %.4f %.4f %.4f %.4f %d"
        % (percentile(pushes, 50), percentile(pushes, 99), pushes[-1], percentile(oks, 50), percentile(oks, 99), len(pushes)),
        flush=True,
    )


def cpu_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def getload(a):
    reply = len(b"$%d\r\n" % a.value_size) + a.value_size + 2
    conns = []
    for c in range(a.clients):
        s = connect(a.port)
        setup = command("HELLO", "3")
        if a.tracking == "on":
            setup += command("CLIENT", "TRACKING", "ON")
        s.sendall(setup + command("PING"))
        read_until(s, b"+PONG\r\n")
        keys = ["key:%012d" % (c * a.keys + i) for i in range(a.keys)]
        gets = [command("GET", k) for k in keys]
        # Every key read once (tracked, with tracking on), in pipelines of 100.
        for i in range(0, a.keys, 100):
            batch = gets[i : i + 100]
            s.sendall(b"".join(batch))
            want = reply * len(batch)
            got = 0
            while got < want:
                chunk = s.recv(262144)
                if not chunk:
                    raise SystemExit("connection closed")
                if got == 0 and chunk[:1] != b"$":
                    raise SystemExit("unexpected reply %r" % chunk[:60])
                got += len(chunk)
            if got != want:
                raise SystemExit("got %d bytes for %d GETs, not %d: missing keys or pushes?" % (got, len(batch), want))
        batches = [b"".join(gets[i : i + a.pipeline]) for i in range(0, a.keys - a.pipeline + 1, a.pipeline)]
        s.setblocking(False)
        conns.append((s, batches))
    want = reply * a.pipeline
    ep = select.epoll()
    state = {}
    for s, batches in conns:
        ep.register(s.fileno(), select.EPOLLIN)
        state[s.fileno()] = [s, batches, 0, 0]  # socket, batches, next batch, bytes of the pending one
    cpu0 = cpu_of(a.pid)
    t0 = time.monotonic()
    end = t0 + a.seconds
    for st in state.values():
        st[0].sendall(st[1][0])
        st[2] = 1
    done = 0
    active = len(state)
    while active:
        for fd, _ in ep.poll(1):
            st = state[fd]
            try:
                chunk = st[0].recv(262144)
            except BlockingIOError:
                continue
            if not chunk:
                raise SystemExit("connection closed")
            st[3] += len(chunk)
            if st[3] >= want:
                if st[3] != want:
                    raise SystemExit("got %d bytes for %d GETs, not %d: a push?" % (st[3], a.pipeline, want))
                done += a.pipeline
                st[3] = 0
                if time.monotonic() < end:
                    st[0].sendall(st[1][st[2]])
                    st[2] = (st[2] + 1) % len(st[1])
                else:
                    ep.unregister(fd)
                    active -= 1
    elapsed = time.monotonic() - t0
    cpu = cpu_of(a.pid) - cpu0
    print(done, "%.0f" % (done / elapsed), "%.3f" % cpu, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("subscribe")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--channels", type=int, default=1)
    s.add_argument("--per-channel", type=int, default=1)
    s.add_argument("--idle", type=float, default=1.0)
    s.add_argument("--timeout", type=float, default=300)
    s = sub.add_parser("latency")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--samples", type=int, default=2000)
    s.add_argument("--gap", type=float, default=0.001, help="seconds between a GET and the SET")
    s = sub.add_parser("getload")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--clients", type=int, default=50)
    s.add_argument("--keys", type=int, default=10000)
    s.add_argument("--value-size", type=int, default=32)
    s.add_argument("--pipeline", type=int, default=32)
    s.add_argument("--seconds", type=float, default=10)
    s.add_argument("--tracking", choices=["on", "off"], default="on")
    a = p.parse_args()
    {"subscribe": subscribe, "latency": latency, "getload": getload}[a.what](a)


if __name__ == "__main__":
    sys.exit(main())
