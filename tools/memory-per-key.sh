#!/usr/bin/env bash
# Memory per key, Larder (release build) against a real redis-server in the
# same run: loads N keys `key:%012d` with 32-byte values into each through
# `redis-cli --pipe` and prints RSS (VmRSS) and INFO used_memory before and
# after, bytes per key from the difference, and the Larder/Redis ratio.
# SHAPE=hash loads N fields `field:%012d` of one hash instead, SHAPE=zset
# N members `member:%012d` of one sorted set (scores spread over the set),
# SHAPE=set N members `member:%012d` of one set, and the figures are per
# field or member.
#
#   tools/memory-per-key.sh            # 1,000,000 keys
#   KEYS=200000 tools/memory-per-key.sh
#   SHAPE=zset tools/memory-per-key.sh
#   NO_BUILD=1 tools/memory-per-key.sh # use the release binary as it is
set -euo pipefail
cd "$(dirname "$0")/.."

keys=${KEYS:-1000000}
shape=${SHAPE:-strings}
case $shape in strings | hash | zset | set) ;; *) echo "SHAPE is strings, hash, zset or set" >&2 && exit 2 ;; esac
larder_port=${LARDER_PORT:-6481}
redis_port=${REDIS_PORT:-6482}

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release --quiet --bin larder-server
fi
bin=${CARGO_TARGET_DIR:-target}/release/larder-server

workdir=$(mktemp -d)
larder_pid=
redis_pid=
cleanup() {
    [ -n "$larder_pid" ] && kill "$larder_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

# The load, as RESP, generated once and fed to both servers.
python3 - "$keys" "$shape" >"$workdir/load.resp" <<'EOF'
import sys
n, shape = int(sys.argv[1]), sys.argv[2]
value = b"v" * 32
out = sys.stdout.buffer
chunk = []

def command(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)

for i in range(n):
    if shape == "hash":
        chunk.append(command(b"HSET", b"bighash", b"field:%012d" % i, value))
    elif shape == "set":
        chunk.append(command(b"SADD", b"bigset", b"member:%012d" % i))
    elif shape == "zset":
        score = b"%d" % (i * 7919 % n)
        chunk.append(command(b"ZADD", b"bigzset", score, b"member:%012d" % i))
    else:
        chunk.append(command(b"SET", b"key:%012d" % i, value))
    if len(chunk) == 10000:
        out.write(b"".join(chunk))
        chunk = []
out.write(b"".join(chunk))
EOF

"$bin" --port "$larder_port" --loglevel warning 2>/dev/null &
larder_pid=$!
redis-server --port "$redis_port" --save "" --appendonly no --loglevel warning >/dev/null &
redis_pid=$!
for port in "$larder_port" "$redis_port"; do
    for _ in $(seq 200); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
done

rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
used() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }

measure() { # name pid port
    local name=$1 pid=$2 port=$3
    local rss0 used0 rss1 used1 dbsize
    sleep 0.5
    rss0=$(rss "$pid")
    used0=$(used "$port")
    redis-cli -p "$port" --pipe <"$workdir/load.resp" >/dev/null
    sleep 1
    case $shape in
        hash) dbsize=$(redis-cli -p "$port" hlen bighash | tr -d '\r') ;;
        zset) dbsize=$(redis-cli -p "$port" zcard bigzset | tr -d '\r') ;;
        set) dbsize=$(redis-cli -p "$port" scard bigset | tr -d '\r') ;;
        *) dbsize=$(redis-cli -p "$port" dbsize | tr -d '\r') ;;
    esac
    rss1=$(rss "$pid")
    used1=$(used "$port")
    echo "$name $rss0 $rss1 $used0 $used1 $dbsize"
}

larder=$(measure larder "$larder_pid" "$larder_port")
redis=$(measure redis "$redis_pid" "$redis_port")

case $shape in
    hash) echo "one hash of $keys fields field:%012d, 32-byte values, loaded with redis-cli --pipe ($(nproc) cores); per field:" ;;
    zset) echo "one sorted set of $keys members member:%012d, loaded with redis-cli --pipe ($(nproc) cores); per member:" ;;
    set) echo "one set of $keys members member:%012d, loaded with redis-cli --pipe ($(nproc) cores); per member:" ;;
    *) echo "$keys keys key:%012d, 32-byte values, loaded with redis-cli --pipe ($(nproc) cores)" ;;
esac
printf '%-8s %12s %12s %10s %14s %14s %10s %10s\n' \
    server "rss before" "rss after" "rss/key" "used before" "used after" "used/key" keys
for line in "$larder" "$redis"; do
    echo "$line" | awk '{
        printf "%-8s %10.1fMB %10.1fMB %10.1f %12.1fMB %12.1fMB %10.1f %10d\n",
            $1, $2 / 1e6, $3 / 1e6, ($3 - $2) / $6, $4 / 1e6, $5 / 1e6, ($5 - $4) / $6, $6 }'
done
echo "$larder $redis" | awk '{
    printf "ratio larder/redis: rss/key %.2f, used_memory/key %.2f\n",
        (($3 - $2) / $6) / (($9 - $8) / $12), (($5 - $4) / $6) / (($11 - $10) / $12) }'
