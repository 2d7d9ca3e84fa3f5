#!/usr/bin/env bash
# Runs the same redis-benchmark command against Larder (release build) and a
# real redis-server, one after the other on this machine, and prints requests
# per second for each test with the Larder/Redis ratio.
#
#   tools/compare-with-redis.sh                      # the default test set below
#   tools/compare-with-redis.sh -t get,set -n 200000 # any redis-benchmark options
set -euo pipefail
cd "$(dirname "$0")/.."

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(-t ping,set,get,incr,mset -n 1000000 -r 1000000 -P 16)
fi
larder_port=${LARDER_PORT:-6479}
redis_port=${REDIS_PORT:-6480}

cargo build --release --quiet
./target/release/larder-server --port "$larder_port" --loglevel warning &
larder_pid=$!
redis-server --port "$redis_port" --save '' --appendonly no --loglevel warning &
redis_pid=$!
trap 'kill $larder_pid $redis_pid 2>/dev/null || true' EXIT
for port in "$larder_port" "$redis_port"; do
    for _ in $(seq 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
done

run() { redis-benchmark -p "$1" -q "${args[@]}" 2>/dev/null | tr '\r' '\n' | grep 'requests per second'; }
larder=$(run "$larder_port")
redis=$(run "$redis_port")

echo "redis-benchmark ${args[*]}"
printf '%-24s %14s %14s %8s\n' test larder redis ratio
paste <(echo "$larder") <(echo "$redis") | while IFS=$'\t' read -r ours theirs; do
    name=${ours%%:*}
    a=$(echo "$ours" | sed -E 's/.*: ([0-9.]+) requests.*/\1/')
    b=$(echo "$theirs" | sed -E 's/.*: ([0-9.]+) requests.*/\1/')
    awk -v n="$name" -v a="$a" -v b="$b" 'BEGIN { printf "%-24s %14s %14s %8.2f\n", n, a, b, a / b }'
done
