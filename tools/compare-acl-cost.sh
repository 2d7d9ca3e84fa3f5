#!/usr/bin/env bash
# The cost of ACL checks (issue 16's "Measure"): redis-benchmark GET and SET
# (32-byte values) against Larder and a real redis-server, each with ACL
# "off" (the benchmark connects as the default user, nopass, no other user
# defined) and "on" (it authenticates as user `bench`, whose rules are 10
# key patterns, the matching one last, so that every key check walks all
# ten, and category rules:
#   ACL SETUSER bench on >pw ~k1:* ~k2:* ... ~k9:* ~key:* +@read +@write -@dangerous +ping +config
# redis-benchmark's keys are key:__rand_int__). In the manner of
# tools/compare-with-redis.sh: both servers on spare ports, each pinned to
# CPU 0 and redis-benchmark to CPU 1, rounds interleaved (odd rounds Larder
# first and ACL off first, even rounds Redis first and ACL on first), each
# server's CPU time (user + system, all threads) from /proc/<pid>/stat,
# medians over the rounds, ratios taken per round. Prints per server,
# workload and pipeline depth: requests/s and server CPU-microseconds per
# request with ACL off and on, and the cost of the checks (on/off - 1, in
# %, of CPU per request and of throughput); then Larder/Redis ratios.
#
#   tools/compare-acl-cost.sh                      # 5 rounds, GET and SET at -P 1 and -P 16 (about 8 minutes)
#   ROUNDS=3 PIPELINES=16 WORKLOADS=get tools/compare-acl-cost.sh
#   LARDER=/work/main/target/release/larder-server tools/compare-acl-cost.sh
#   BASELINE=/tmp/larder-old NO_REDIS=1 PIPELINES=16 tools/compare-acl-cost.sh   # before/after a change
#
# Settings (environment): LARDER (the larder-server binary; default: build
# the release one), ROUNDS (5), WORKLOADS ("get set"), PIPELINES ("1 16"),
# CLIENTS (50), KEYS (100000: key:%012d written with 32-byte values before
# the runs, and redis-benchmark's -r), REQUESTS_P1 (300000),
# REQUESTS_PIPELINED (2000000), LARDER_PORT (7401), REDIS_PORT (7402), RAW
# (set: also print every run's line, "round workload pipeline server acl
# rps cpu_seconds requests"), BASELINE (another larder-server binary, say
# the build before a change: run as server "base" on BASELINE_PORT (7403)
# in the same interleaved rounds, and compared with Larder), NO_REDIS (set:
# leave redis-server out, for a quicker before/after run), PROFILE (set:
# afterwards, for each Larder server and workload at the largest pipeline
# depth, record the server with `perf record --call-graph dwarf` for
# PROFILE_SECONDS (4) while redis-benchmark runs as `bench`, PROFILE_ROUNDS
# (3) times, and print the median share of the server's samples spent in
# `commands::acl::check`, callees included: the check's cost measured
# where timing is too noisy to show a few percent; needs perf and the
# release build's debug info).
#
# On a busy shared machine the CPU-per-request medians still move by
# +-10% from run to run (batching changes with the load on the
# benchmark's CPU); the profile share moves by about a percentage point.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/servers.sh

rounds=${ROUNDS:-5}
workloads=${WORKLOADS:-get set}
pipelines=${PIPELINES:-1 16}
clients=${CLIENTS:-50}
keyspace=${KEYS:-100000}
requests_p1=${REQUESTS_P1:-300000}
requests_pipelined=${REQUESTS_PIPELINED:-2000000}
larder_port=${LARDER_PORT:-7401}
redis_port=${REDIS_PORT:-7402}
baseline_port=${BASELINE_PORT:-7403}
size=32
bench_rules=(on '>pw' '~k1:*' '~k2:*' '~k3:*' '~k4:*' '~k5:*' '~k6:*' '~k7:*' '~k8:*' '~k9:*' '~key:*'
    +@read +@write -@dangerous +ping +config)

if [ -z "${LARDER:-}" ]; then
    cargo build --release --quiet --bin larder-server
    LARDER=${CARGO_TARGET_DIR:-target}/release/larder-server
fi
for binary in "$LARDER" ${BASELINE:+"$BASELINE"}; do
    if [ ! -x "$binary" ] || [ -d "$binary" ]; then
        echo "no Larder binary at $binary" >&2
        exit 1
    fi
done
for tool in redis-server redis-benchmark redis-cli taskset; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
for port in "$larder_port" "$redis_port" ${BASELINE:+"$baseline_port"}; do
    if timeout 5 redis-cli -p "$port" ping >/dev/null 2>&1; then
        echo "port $port is taken (LARDER_PORT / REDIS_PORT)" >&2
        exit 1
    fi
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

cli() { timeout 60 redis-cli -p "$@"; }

# ACL "on": the user exists and the benchmark logs in as it; "off": no user
# but the default one, and the benchmark does not authenticate.
set_acl() {
    local port=$1 mode=$2
    if [ "$mode" = on ]; then
        cli "$port" acl setuser bench reset "${bench_rules[@]}" >/dev/null
    else
        cli "$port" acl deluser bench >/dev/null
    fi
}

# One run: appends "round workload pipeline server acl rps cpu_seconds requests".
measure() {
    local round=$1 name=$2 pipeline=$3 server=$4 port=$5 pid=$6 acl=$7
    local requests=$requests_p1 auth=() before after rps
    [ "$pipeline" -gt 1 ] && requests=$requests_pipelined
    [ "$acl" = on ] && auth=(--user bench -a pw)
    set_acl "$port" "$acl"
    # The rules must hold: the user reads and writes key:*, and is refused
    # a key outside its patterns and a dangerous command.
    if [ "$acl" = on ]; then
        local denied
        denied=$(cli "$port" --user bench --pass pw --no-auth-warning get other:1 2>&1)
        denied+=$(cli "$port" --user bench --pass pw --no-auth-warning flushall 2>&1)
        if [ "$(echo "$denied" | grep -o NOPERM | wc -l)" != 2 ]; then
            echo "ACL rules do not hold on $server: $denied" >&2
            exit 1
        fi
    fi
    before=$(cpu_of "$pid")
    rps=$(timeout 300 taskset -c 1 redis-benchmark -p "$port" "${auth[@]}" -c "$clients" -n "$requests" \
        -r "$keyspace" -P "$pipeline" --threads 1 --csv -t "$name" -d "$size" 2>/dev/null |
        grep -v '^"test"' | tail -1 | awk -F'","' '{ print $2 }')
    after=$(cpu_of "$pid")
    if [ -z "$rps" ]; then
        echo "redis-benchmark $name -P $pipeline failed on $server (ACL $acl)" >&2
        return
    fi
    echo "$round $name $pipeline $server $acl $rps $(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }') $requests" >>"$results"
}

# Every server under test: "name port pid".
servers_all=()
start_larder() {
    local name=$1 binary=$2 port=$3
    taskset -c 0 "$binary" --port "$port" --loglevel warning >"$work/$name.log" 2>&1 &
    pids+=("$!")
    servers_all+=("$name $port $!")
}
start_larder larder "$LARDER" "$larder_port"
[ -n "${BASELINE:-}" ] && start_larder base "$BASELINE" "$baseline_port"
if [ -z "${NO_REDIS:-}" ]; then
    taskset -c 0 redis-server --port "$redis_port" --save '' --appendonly no --loglevel warning >"$work/redis.log" &
    pids+=("$!")
    servers_all+=("redis $redis_port $!")
fi
names=""
for server in "${servers_all[@]}"; do
    # shellcheck disable=SC2086
    set -- $server
    wait_for "$2"
    fill "$2" "$size" "$keyspace"
    names+="$1 "
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$results"
for round in $(seq "$rounds"); do
    servers=("${servers_all[@]}")
    acls=(off on)
    if [ $((round % 2)) -eq 0 ]; then
        servers=()
        for ((i = ${#servers_all[@]} - 1; i >= 0; i--)); do servers+=("${servers_all[i]}"); done
        acls=(on off)
    fi
    for pipeline in $pipelines; do
        for name in $workloads; do
            for server in "${servers[@]}"; do
                for acl in "${acls[@]}"; do
                    # shellcheck disable=SC2086
                    set -- $server
                    measure "$round" "$name" "$pipeline" "$1" "$2" "$3" "$acl"
                done
            done
        done
    done
    echo "  round $round of $rounds done" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The profile share: "server workload percent" lines.
profiles=$work/profiles
: >"$profiles"
if [ -n "${PROFILE:-}" ]; then
    command -v perf >/dev/null || { echo "PROFILE needs perf" >&2; exit 1; }
    depth=1
    for pipeline in $pipelines; do
        if [ "$pipeline" -gt "$depth" ]; then depth=$pipeline; fi
    done
    for round in $(seq "${PROFILE_ROUNDS:-3}"); do
        for name in $workloads; do
            for server in "${servers_all[@]}"; do
                # shellcheck disable=SC2086
                set -- $server
                [ "$1" = redis ] && continue
                set_acl "$2" on
                perf record --call-graph dwarf,8192 -p "$3" -o "$work/perf.data" \
                    -- sleep "${PROFILE_SECONDS:-4}" >/dev/null 2>&1 &
                perf_pid=$!
                timeout 300 taskset -c 1 redis-benchmark -p "$2" --user bench -a pw -c "$clients" \
                    -n 100000000 -r "$keyspace" -P "$depth" --threads 1 -q -t "$name" -d "$size" \
                    >/dev/null 2>&1 &
                bench_pid=$!
                wait "$perf_pid" || true
                kill "$bench_pid" 2>/dev/null || true
                wait "$bench_pid" 2>/dev/null || true
                share=$(perf report -i "$work/perf.data" --children --stdio --no-inline -g none \
                    --percent-limit 0 2>/dev/null |
                    awk '$NF == "larder::commands::acl::check" && !found { sub("%", "", $1); print $1; found = 1 }')
                echo "$1 $name ${share:-0}" >>"$profiles"
            done
        done
        echo "  profile round $round of ${PROFILE_ROUNDS:-3} done" >&2
    done
fi

echo "Larder ($LARDER)${BASELINE:+, baseline ($BASELINE)}${NO_REDIS:-, against Redis $(redis-server --version | awk '{ print $3 }')}, $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
echo "servers on CPU 0, redis-benchmark on CPU 1 (-c $clients -r $keyspace -d $size); load average before: $load_before, after: $load_after"
echo "$rounds rounds interleaved, medians; us = server CPU-microseconds per request; cost = on/off - 1 per round (CPU per request; throughput lost)"
awk -v names="$names" '
    function median(list,    n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        key = $2 " " $3
        if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
        cpu = $7 / $8 * 1e6
        rps[key, $4, $5] = rps[key, $4, $5] " " $6
        cpus[key, $4, $5] = cpus[key, $4, $5] " " cpu
        r[key, $4, $5, $1] = $6
        c[key, $4, $5, $1] = cpu
        if ($1 > maxround) maxround = $1
    }
    END {
        printf "%-6s %-4s %3s | %9s %9s %8s | %7s %7s %8s\n", "server", "test", "-P", "off/s", "on/s", "rps lost", "us off", "us on", "CPU cost"
        nservers = split(names, servers, " ")
        for (s = 1; s <= nservers; s++) for (k = 1; k <= keys; k++) {
            key = order[k]; split(key, f, " "); sv = servers[s]
            lost = ""; cost = ""
            for (i = 1; i <= maxround; i++) {
                if ((key SUBSEP sv SUBSEP "off" SUBSEP i) in r && (key SUBSEP sv SUBSEP "on" SUBSEP i) in r) {
                    lost = lost " " (1 - r[key, sv, "on", i] / r[key, sv, "off", i]) * 100
                    cost = cost " " (c[key, sv, "on", i] / c[key, sv, "off", i] - 1) * 100
                }
            }
            printf "%-6s %-4s %3s | %9.0f %9.0f %7.1f%% | %7.3f %7.3f %7.1f%%\n", sv, f[1], f[2],
                median(rps[key, sv, "off"]), median(rps[key, sv, "on"]), median(lost),
                median(cpus[key, sv, "off"]), median(cpus[key, sv, "on"]), median(cost)
        }
        # Larder against each other server: throughput ratio and CPU
        # efficiency (their CPU per request over Larder, above 1: Larder
        # is cheaper), medians of per-round ratios.
        for (s = 2; s <= nservers; s++) {
            other = servers[s]; o = other == "redis" ? "R" : "B"
            print ""
            printf "%-4s %3s %-3s | %7s %7s\n", "test", "-P", "ACL", "rps L/" o, "eff " o "/L"
            for (k = 1; k <= keys; k++) for (a = 1; a <= 2; a++) {
                key = order[k]; split(key, f, " "); acl = a == 1 ? "off" : "on"
                tr = ""; te = ""
                for (i = 1; i <= maxround; i++) {
                    if ((key SUBSEP "larder" SUBSEP acl SUBSEP i) in r && (key SUBSEP other SUBSEP acl SUBSEP i) in r) {
                        tr = tr " " r[key, "larder", acl, i] / r[key, other, acl, i]
                        te = te " " c[key, other, acl, i] / c[key, "larder", acl, i]
                    }
                }
                printf "%-4s %3s %-3s | %7.2f %7.2f\n", f[1], f[2], acl, median(tr), median(te)
            }
        }
    }' "$results"
if [ -s "$profiles" ]; then
    echo
    echo "perf: share of the server's samples in commands::acl::check (with callees), ACL on, -P $depth;"
    echo "median of ${PROFILE_ROUNDS:-3} recordings of ${PROFILE_SECONDS:-4} s (each value listed)"
    awk '{ key = $1 " " $2; if (!(key in all)) order[++n] = key; all[key] = all[key] " " $3 }
        END {
            for (k = 1; k <= n; k++) {
                m = split(all[order[k]], a, " ")
                for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
                med = m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
                printf "%-6s %-4s %5.2f%%  (%s )\n", substr(order[k], 1, index(order[k], " ") - 1),
                    substr(order[k], index(order[k], " ") + 1), med, all[order[k]]
            }
        }' "$profiles"
fi
if [ -n "${RAW:-}" ]; then
    echo
    echo "every run: round workload pipeline server acl rps cpu_seconds requests"
    cat "$results"
fi
