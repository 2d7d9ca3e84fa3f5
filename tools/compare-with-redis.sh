#!/usr/bin/env bash
# Larder against a real redis-server, side by side on this machine: the
# same redis-benchmark workloads, interleaved (each round alternates which
# server goes first), with each server's CPU time per request taken from
# /proc. Prints, per workload, the medians over the rounds of: requests per
# second, server CPU-seconds per million requests, p99 latency, and the
# Larder/Redis ratios (efficiency = Redis's CPU per request / Larder's: above
# 1 Larder is the cheaper server).
#
#   tools/compare-with-redis.sh                   # pinned, then unpinned, 3 rounds
#   MODES=pinned ROUNDS=5 tools/compare-with-redis.sh
#   WORKLOADS="get set" SIZES=32 PIPELINES=16 tools/compare-with-redis.sh
#   LARDER=/tmp/larder-before tools/compare-with-redis.sh   # another build
#
# Modes: `pinned` gives each server CPU 0 only and redis-benchmark CPU 1 (so
# Larder runs one worker thread); `unpinned` pins nothing: the servers and
# redis-benchmark share every core, as on a small machine.
#
# Settings (environment): ROUNDS (3), MODES ("pinned unpinned"), SIZES
# ("32 1024": value bytes for get, set, mget, mset; the other workloads use
# 32), PIPELINES ("1 16"), CLIENTS (50), KEYS (1000000), WORKLOADS (all of:
# ping get set incr mget mset hset hget lpush lpop zadd zrange getone
# setone; getone and setone are GET and SET of one key, as redis-benchmark
# runs them without -r: a key always in cache), REQUESTS_P1
# (300000) and REQUESTS_PIPELINED (2000000): requests per run (a fifth of
# it for mget, mset and zadd, half for 1 KiB values).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/servers.sh

rounds=${ROUNDS:-3}
modes=${MODES:-pinned unpinned}
sizes=${SIZES:-32 1024}
pipelines=${PIPELINES:-1 16}
clients=${CLIENTS:-50}
keyspace=${KEYS:-1000000}
workloads=${WORKLOADS:-ping get set incr mget mset hset hget lpush lpop zadd zrange getone setone}
requests_p1=${REQUESTS_P1:-300000}
requests_pipelined=${REQUESTS_PIPELINED:-2000000}
larder_port=${LARDER_PORT:-6479}
redis_port=${REDIS_PORT:-6480}

if [ -z "${LARDER:-}" ]; then
    cargo build --release --quiet
    LARDER=target/release/larder-server
fi
if [ ! -x "$LARDER" ] || [ -d "$LARDER" ]; then
    echo "no Larder binary at $LARDER" >&2
    exit 1
fi
for tool in redis-server redis-benchmark redis-cli taskset; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

work=$(mktemp -d)
results=$work/results
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mget_args() { for _ in $(seq 10); do printf 'key:__rand_int__ '; done; }

# The redis-benchmark arguments of a workload.
workload_args() {
    local name=$1 size=$2
    case $name in
        ping) echo "-t ping_mbulk" ;;
        get | set | incr | mset | hset | lpush | lpop | zadd) echo "-t $name -d $size" ;;
        mget) echo "MGET $(mget_args)" ;;
        hget) echo "HGET myhash element:__rand_int__" ;;
        zrange) echo "ZRANGE myzset 0 9" ;;
        # One key of the fill (32-byte values), read or rewritten.
        getone) echo "GET key:000000000000" ;;
        setone) echo "SET key:000000000000 $(printf '%032d' 0)" ;;
    esac
}

# One run of a workload against one server: appends
# "mode round workload size pipeline server rps cpu_seconds requests p99" to the results.
measure() {
    local mode=$1 round=$2 name=$3 size=$4 pipeline=$5 server=$6 port=$7 pid=$8
    local requests=$requests_p1 bench=()
    [ "$pipeline" -gt 1 ] && requests=$requests_pipelined
    # The slow ones (10 keys a request, a growing sorted set, 1 KiB
    # values) get fewer requests, so that a run takes seconds.
    case $name in mget | mset | zadd) requests=$((requests / 5)) ;; esac
    [ "$size" -gt 100 ] && requests=$((requests / 2))
    [ "$mode" = pinned ] && bench=(taskset -c 1)
    local before after csv
    before=$(cpu_of "$pid")
    # shellcheck disable=SC2046 # the workload's arguments split on purpose
    csv=$(timeout 300 "${bench[@]}" redis-benchmark -p "$port" -c "$clients" -n "$requests" \
        -r "$keyspace" -P "$pipeline" --csv $(workload_args "$name" "$size") 2>/dev/null |
        grep -v '^"test"' | tail -1)
    after=$(cpu_of "$pid")
    # "test","rps","avg","min","p50","p95","p99","max"
    local rps p99
    rps=$(echo "$csv" | awk -F'","' '{ print $2 }')
    p99=$(echo "$csv" | awk -F'","' '{ print $7 }')
    if [ -z "$rps" ]; then
        echo "redis-benchmark failed: $server $name" >&2
        return
    fi
    echo "$mode $round $name $size $pipeline $server $rps $(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }') $requests $p99" >>"$results"
}

run_mode() {
    local mode=$1 pin=()
    [ "$mode" = pinned ] && pin=(taskset -c 0)
    "${pin[@]}" "$LARDER" --port "$larder_port" --loglevel warning >"$work/larder.log" 2>&1 &
    local larder_pid=$!
    "${pin[@]}" redis-server --port "$redis_port" --save '' --appendonly no --loglevel warning >"$work/redis.log" &
    local redis_pid=$!
    pids+=("$larder_pid" "$redis_pid")
    wait_for "$larder_port"
    wait_for "$redis_port"
    for round in $(seq "$rounds"); do
        # Interleaved: odd rounds run Larder first, even rounds Redis.
        local order=("larder $larder_port $larder_pid" "redis $redis_port $redis_pid")
        [ $((round % 2)) -eq 0 ] && order=("${order[1]}" "${order[0]}")
        for size in $sizes; do
            for server in "${order[@]}"; do
                # shellcheck disable=SC2086
                set -- $server
                redis-cli -p "$2" flushall >/dev/null
                fill "$2" "$size" "$keyspace"
            done
            for pipeline in $pipelines; do
                for name in $workloads; do
                    case $name in
                        get | set | mget | mset) ;;
                        *) [ "$size" = "$(echo "$sizes" | awk '{ print $1 }')" ] || continue ;;
                    esac
                    local name_size=$size
                    case $name in get | set | mget | mset) ;; *) name_size=32 ;; esac
                    for server in "${order[@]}"; do
                        # shellcheck disable=SC2086
                        set -- $server
                        measure "$mode" "$round" "$name" "$name_size" "$pipeline" "$1" "$2" "$3"
                    done
                done
            done
        done
        echo "  $mode round $round of $rounds done" >&2
    done
    kill "$larder_pid" "$redis_pid"
    wait "$larder_pid" "$redis_pid" 2>/dev/null || true
}

: >"$results"
for mode in $modes; do
    run_mode "$mode"
done

echo "Larder ($LARDER) against $(redis-server --version | awk '{ print $3 }'), $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
echo "redis-benchmark -c $clients -r $keyspace, $rounds rounds interleaved, medians; cpu = server CPU-seconds per million requests"
awk '
    function median(list,    n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        key = $1 " " $3 " " $4 " " $5
        if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
        cpu = $8 / $9 * 1e6
        rps[key, $6] = rps[key, $6] " " $7
        cpus[key, $6] = cpus[key, $6] " " cpu
        p99[key, $6] = p99[key, $6] " " $10
        # Ratios per round, so that drift between rounds cancels.
        if ($6 == "larder") { lr[key, $2] = $7; lc[key, $2] = cpu } else { rr[key, $2] = $7; rc[key, $2] = cpu }
        rounds[key] = rounds[key] " " $2
    }
    END {
        printf "%-9s %-7s %5s %3s | %10s %10s %6s | %7s %7s %6s | %7s %7s\n", "mode", "test", "bytes", "-P", "larder/s", "redis/s", "ratio", "cpu L", "cpu R", "eff", "p99 L", "p99 R"
        for (k = 1; k <= keys; k++) {
            key = order[k]
            split(key, f, " ")
            tr = ""; te = ""
            n = split(rounds[key], rs, " ")
            for (i = 1; i <= n; i++) {
                r = rs[i]
                if ((key SUBSEP r) in lr && (key SUBSEP r) in rr && !done[key, r]++) {
                    tr = tr " " lr[key, r] / rr[key, r]
                    te = te " " (lc[key, r] > 0 ? rc[key, r] / lc[key, r] : 0)
                }
            }
            printf "%-9s %-7s %5s %3s | %10.0f %10.0f %6.2f | %7.3f %7.3f %6.2f | %7.3f %7.3f\n", f[1], f[2], f[3], f[4],
                median(rps[key, "larder"]), median(rps[key, "redis"]), median(tr),
                median(cpus[key, "larder"]), median(cpus[key, "redis"]), median(te),
                median(p99[key, "larder"]), median(p99[key, "redis"])
        }
    }' "$results"
