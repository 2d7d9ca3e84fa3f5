#!/usr/bin/env bash
# Latency of Larder and a real redis-server at the same offered load:
# examples/paced_latency sends each workload on a fixed schedule (open
# loop) to each server in turn, pinned as compare-with-redis.sh's `pinned`
# mode pins them (each server on CPU 0, the load on CPU 1), and this prints
# per workload the medians over the rounds of p50, p99 and p99.9 (ms, from
# when a request was due to its own reply) and of each server's CPU time
# per request at that load.
#
#   tools/paced-latency.sh                             # every workload, 3 rounds (about 25 minutes)
#   WORKLOADS="get set" PIPELINES=16 tools/paced-latency.sh
#   LOAD=0.5 tools/paced-latency.sh                    # every rate halved
#
# Settings (environment): ROUNDS (3), SIZES ("32 1024": value bytes for get,
# set, mget, mset; the rest use 32), PIPELINES ("1 16"), CLIENTS (50), KEYS
# (1000000), WORKLOADS (ping get set incr mget mset hset hget lpush lpop
# zadd zrange getone setone), MEASURE_SECONDS (4, after 1 of warm-up),
# LOAD (1: a factor on every rate below), LARDER (a Larder binary), RESULTS
# (a file to keep every run's figures in, one line a run).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/servers.sh

rounds=${ROUNDS:-3}
sizes=${SIZES:-32 1024}
pipelines=${PIPELINES:-1 16}
clients=${CLIENTS:-50}
keyspace=${KEYS:-1000000}
workloads=${WORKLOADS:-ping get set incr mget mset hset hget lpush lpop zadd zrange getone setone}
seconds=${MEASURE_SECONDS:-4}
load=${LOAD:-1}
larder_port=${LARDER_PORT:-6479}
redis_port=${REDIS_PORT:-6480}

# The offered load, requests a second, of a workload at -P 1 and at -P 16:
# about three quarters of what Redis serves pinned on this machine
# (redis-benchmark, README), so that both servers are busy but neither is
# saturated.
rate_of() {
    local name=$1 size=$2 pipeline=$3
    local p1 p16
    case $name/$size in
        ping/*) p1=100000 p16=1000000 ;;
        get/32 | set/32 | hset/* | hget/*) p1=100000 p16=300000 ;;
        get/1024 | set/1024) p1=80000 p16=150000 ;;
        incr/*) p1=100000 p16=400000 ;;
        mget/32 | mset/32) p1=30000 p16=45000 ;;
        mget/1024 | mset/1024) p1=15000 p16=15000 ;;
        lpush/* | lpop/*) p1=100000 p16=800000 ;;
        zadd/*) p1=80000 p16=150000 ;;
        zrange/*) p1=100000 p16=500000 ;;
        getone/* | setone/*) p1=100000 p16=1000000 ;;
    esac
    local rate=$p1
    [ "$pipeline" -gt 1 ] && rate=$p16
    awk -v r="$rate" -v f="$load" 'BEGIN { printf "%d", r * f }'
}

if [ -z "${LARDER:-}" ]; then
    cargo build --release --quiet
    LARDER=target/release/larder-server
fi
cargo build --release --quiet --example paced_latency
paced=target/release/examples/paced_latency
for tool in redis-server redis-cli taskset; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

work=$(mktemp -d)
results=$work/results
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${RESULTS:-}" ] && [ -f "$results" ]; then cp "$results" "$RESULTS"; fi
    rm -rf "$work"
}
trap cleanup EXIT

# One run: appends "round workload size pipeline server rate p50 p99 p999 cpu_per_million errors".
measure() {
    local round=$1 name=$2 size=$3 pipeline=$4 server=$5 port=$6 pid=$7
    local rate before after result
    rate=$(rate_of "$name" "$size" "$pipeline")
    before=$(cpu_of "$pid")
    result=$(taskset -c 1 "$paced" --port "$port" --workload "$name" --size "$size" \
        --pipeline "$pipeline" --clients "$clients" --rate "$rate" --seconds "$seconds" \
        --keyspace "$keyspace" | grep '^RESULT')
    after=$(cpu_of "$pid")
    # RESULT achieved errors p50 p90 p99 p999 max
    echo "$result" | awk -v round="$round" -v name="$name" -v size="$size" -v pipeline="$pipeline" \
        -v server="$server" -v rate="$rate" -v cpu="$(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }')" \
        -v sent="$(awk -v r="$rate" -v s="$seconds" 'BEGIN { print r * (s + 1) }')" \
        '{ print round, name, size, pipeline, server, rate, $4, $6, $7, cpu / sent * 1e6, $3 }' >>"$results"
}

taskset -c 0 "$LARDER" --port "$larder_port" --loglevel warning >"$work/larder.log" 2>&1 &
larder_pid=$!
taskset -c 0 redis-server --port "$redis_port" --save '' --appendonly no --loglevel warning >"$work/redis.log" &
redis_pid=$!
pids+=("$larder_pid" "$redis_pid")
wait_for "$larder_port"
wait_for "$redis_port"
: >"$results"
for round in $(seq "$rounds"); do
    # Interleaved: odd rounds run Larder first, even rounds Redis.
    order=("larder $larder_port $larder_pid" "redis $redis_port $redis_pid")
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
                name_size=$size
                case $name in get | set | mget | mset) ;; *) name_size=32 ;; esac
                for server in "${order[@]}"; do
                    # shellcheck disable=SC2086
                    set -- $server
                    measure "$round" "$name" "$name_size" "$pipeline" "$1" "$2" "$3"
                done
            done
        done
    done
    echo "  round $round of $rounds done" >&2
done

echo "Larder ($LARDER) against $(redis-server --version | awk '{ print $3 }'), $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
echo "paced_latency -c $clients, keys over $keyspace, servers on CPU 0, load on CPU 1, $rounds rounds interleaved, medians"
echo "latency in ms from when a request was due to its reply; cpu = server CPU-seconds per million requests at that load"
awk '
    function median(list,    n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        key = $2 " " $3 " " $4 " " $6
        if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
        p50[key, $5] = p50[key, $5] " " $7
        p99[key, $5] = p99[key, $5] " " $8
        p999[key, $5] = p999[key, $5] " " $9
        cpu[key, $5] = cpu[key, $5] " " $10
        errors[key, $5] += $11
    }
    END {
        printf "%-7s %5s %3s %8s | %7s %7s | %7s %7s | %7s %7s | %6s %6s\n", "test", "bytes", "-P", "rate/s", "p50 L", "p50 R", "p99 L", "p99 R", "p999 L", "p999 R", "cpu L", "cpu R"
        for (k = 1; k <= keys; k++) {
            key = order[k]
            split(key, f, " ")
            printf "%-7s %5s %3s %8s | %7.3f %7.3f | %7.3f %7.3f | %7.3f %7.3f | %6.2f %6.2f%s\n", f[1], f[2], f[3], f[4],
                median(p50[key, "larder"]), median(p50[key, "redis"]),
                median(p99[key, "larder"]), median(p99[key, "redis"]),
                median(p999[key, "larder"]), median(p999[key, "redis"]),
                median(cpu[key, "larder"]), median(cpu[key, "redis"]),
                errors[key, "larder"] + errors[key, "redis"] ? "  (errors: " errors[key, "larder"] "/" errors[key, "redis"] ")" : ""
        }
    }' "$results"
