#!/usr/bin/env bash
# RDB snapshots, Larder against a real redis-server 7.0 on this machine:
#
#   1. SAVE time and file size for KEYS small string keys (DEBUG POPULATE),
#   2. load time at start (restart until PING answers PONG, DBSIZE checked),
#   3. p50/p99/max latency of GET and SET on other clients (redis-benchmark)
#      with no save running, then while BGSAVEs run back to back, and the
#      snapshot's memory cost (Redis: rdb_last_cow_size, copy-on-write pages;
#      Larder: the most serialized records waiting for the writer), and
#      Larder's longest single key write by a client (the extra cost of the
#      first write to a key the snapshot has not reached).
#
#   tools/compare-rdb-with-redis.sh                  # 1M keys
#   KEYS=10000000 tools/compare-rdb-with-redis.sh
#   LARDER=/tmp/larder-before tools/compare-rdb-with-redis.sh
#
# Settings (environment): KEYS (1000000), SIZE (32: value bytes), CLIENTS
# (50), REQUESTS (1000000 per redis-benchmark run), COMPRESSION (yes:
# `rdbcompression` of both servers), LARDER (a built binary; default: cargo
# build --release).
#
# The machine is shared: figures move between runs; compare the two servers
# within one run, and run it more than once.
set -euo pipefail
cd "$(dirname "$0")/.."

keys=${KEYS:-1000000}
size=${SIZE:-32}
clients=${CLIENTS:-50}
requests=${REQUESTS:-1000000}
compression=${COMPRESSION:-yes}
larder_port=${LARDER_PORT:-6579}
redis_port=${REDIS_PORT:-6580}

if [ -z "${LARDER:-}" ]; then
    cargo build --release --quiet --bin larder-server
    LARDER=${CARGO_TARGET_DIR:-target}/release/larder-server
fi
for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

work=$(mktemp -d)
mkdir -p "$work/larder" "$work/redis"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cli() { timeout 600 redis-cli -p "$@"; }

wait_pong() {
    for _ in $(seq 12000); do
        [ "$(timeout 5 redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    echo "server on port $1 did not answer" >&2
    exit 1
}

start_larder() {
    "$LARDER" --port "$larder_port" --dir "$work/larder" --enable-debug-command yes \
        --rdbcompression "$compression" \
        >>"$work/larder.log" 2>&1 &
    larder_pid=$!
    pids+=("$larder_pid")
}

start_redis() {
    redis-server --port "$redis_port" --dir "$work/redis" --save '' --appendonly no \
        --enable-debug-command yes --rdbcompression "$compression" >>"$work/redis.log" 2>&1 &
    redis_pid=$!
    pids+=("$redis_pid")
}

stop() { cli "$1" shutdown nosave >/dev/null 2>&1 || true; wait "$2" 2>/dev/null || true; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'; }
info() { cli "$1" info persistence | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'; }

echo "# $keys keys of $size bytes, rdbcompression $compression; $(nproc) cores, shared with other work: figures are noisy"
start_larder
start_redis
wait_pong "$larder_port"
wait_pong "$redis_port"

declare -A save_s file_mb load_s
for server in larder redis; do
    port_var=${server}_port
    port=${!port_var}
    cli "$port" debug populate "$keys" key "$size" >/dev/null
    t0=$(now)
    cli "$port" save >/dev/null
    t1=$(now)
    save_s[$server]=$(elapsed "$t0" "$t1")
    file_mb[$server]=$(awk -v b="$(stat -c %s "$work/$server/dump.rdb")" 'BEGIN { printf "%.1f", b / 1048576 }')
done

# Load: restart on the file, time until PING answers PONG.
stop "$larder_port" "$larder_pid"
t0=$(now); start_larder; wait_pong "$larder_port"; t1=$(now)
load_s[larder]=$(elapsed "$t0" "$t1")
stop "$redis_port" "$redis_pid"
t0=$(now); start_redis; wait_pong "$redis_port"; t1=$(now)
load_s[redis]=$(elapsed "$t0" "$t1")
for server in larder redis; do
    port_var=${server}_port
    loaded=$(cli "${!port_var}" dbsize)
    [ "$loaded" = "$keys" ] || { echo "$server loaded $loaded keys, not $keys" >&2; exit 1; }
done

printf '\n%-22s %12s %12s %8s\n' "" larder redis ratio
printf '%-22s %12s %12s %8s\n' "SAVE (s)" "${save_s[larder]}" "${save_s[redis]}" "$(ratio "${save_s[larder]}" "${save_s[redis]}")"
printf '%-22s %12s %12s %8s\n' "file (MiB)" "${file_mb[larder]}" "${file_mb[redis]}" "$(ratio "${file_mb[larder]}" "${file_mb[redis]}")"
printf '%-22s %12s %12s %8s\n' "load to PONG (s)" "${load_s[larder]}" "${load_s[redis]}" "$(ratio "${load_s[larder]}" "${load_s[redis]}")"

# p50/p99/max of GET and SET (ms) from redis-benchmark's CSV.
bench() {
    timeout 900 redis-benchmark -p "$1" -c "$clients" -n "$requests" -r "$keys" -d "$size" \
        -t get,set --csv 2>/dev/null | grep -v '^"test"' | tr -d '"' |
        awk -F, '{ printf "%s p50 %s p99 %s max %s\n", $1, $5, $7, $8 }'
}

# BGSAVE after BGSAVE while the benchmark runs.
bgsave_loop() {
    local port=$1 count=0
    while [ -e "$work/benching" ]; do
        cli "$port" bgsave >/dev/null 2>&1 || true
        while [ "$(info "$port" rdb_bgsave_in_progress)" = 1 ]; do sleep 0.02; done
        count=$((count + 1))
    done
    echo "$count" >"$work/bgsaves"
}

echo
for server in larder redis; do
    port_var=${server}_port
    port=${!port_var}
    echo "## $server: GET/SET latency (ms), $clients clients, $requests requests each"
    echo "without BGSAVE:"
    bench "$port"
    touch "$work/benching"
    bgsave_loop "$port" &
    loop=$!
    echo "during back-to-back BGSAVEs:"
    bench "$port"
    rm -f "$work/benching"
    wait "$loop"
    echo "BGSAVEs during the run: $(cat "$work/bgsaves"); last one took $(info "$port" rdb_last_bgsave_time_sec) s; rdb_last_cow_size $(info "$port" rdb_last_cow_size) bytes"
done

echo
echo "Larder's own account of its last saves (log):"
grep -o 'DB saved on disk: .*' "$work/larder.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -3
