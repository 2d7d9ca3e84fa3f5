#!/usr/bin/env bash
# Pub/sub and client-side caching (issue 13's "Measure"), Larder against a
# real redis-server, side by side on this machine, in the manner of
# tools/compare-with-redis.sh: both servers started on spare ports, the same
# runs on each, rounds interleaved (odd rounds Larder first, even rounds
# Redis), each server's CPU time from /proc/<pid>/stat, medians over the
# rounds, Larder/Redis ratios taken per round. Three parts:
#
#   publish   redis-benchmark `PUBLISH ch:<n> payload:__rand_int__` (CLIENTS
#             clients, at each of PIPELINES) to 1 channel with 1, 100 and
#             1,000 subscribers, and to 1,000 channels with 1 subscriber
#             each (publishers spread over the channels by -r 1000). The
#             subscribers are one process of tools/pubsub-bench.py (raw
#             sockets, epoll) that reads and counts every message frame:
#             reported are publishes/s (redis-benchmark's), messages
#             delivered/s (messages the subscribers read / the time from the
#             first to the last), the share of the expected messages that
#             arrived, and the server's CPU per publish and per message.
#   invalidation
#             A RESP3 client with CLIENT TRACKING ON GETs a key, another
#             connection SETs it: p50/p99 of the time from sending the SET
#             to the tracker reading its `invalidate` push (and, for scale,
#             to the writer reading its +OK), INV_SAMPLES samples, with the
#             servers idle and under a redis-benchmark GET/SET load
#             (`-t set,get -l`, CLIENTS clients, -P LOAD_PIPELINE).
#   tracking  GET throughput of tools/pubsub-bench.py getload: 50 RESP3
#             connections (HELLO 3), each with or without CLIENT TRACKING
#             ON, GET their own 10,000 keys once (so 500,000 keys are
#             tracked), then pipelines of TRACK_PIPELINE GETs over those
#             keys for TRACK_SECONDS: GETs/s and the server's CPU per GET,
#             tracking on against off on the same server (the cost of
#             tracking), and Larder against Redis.
#
#   tools/compare-pubsub-with-redis.sh                 # all parts, pinned, 3 rounds (about 8 minutes on a quiet machine)
#   ROUNDS=1 PARTS=publish PIPELINES=16 tools/compare-pubsub-with-redis.sh   # quick look
#   LARDER=/tmp/larder-other PARTS="invalidation tracking" tools/compare-pubsub-with-redis.sh
#
# Modes: `pinned` (the default) gives each server CPU 0 only and every load
# generator (redis-benchmark, the subscribers, the tracking and latency
# clients) CPU 1; `unpinned` pins nothing. Pinned, the subscribers share
# CPU 1 with the publishing redis-benchmark, so the client side's cost is in
# every figure, the same for both servers; the "recv" column shows whether
# the subscribers kept up (100%: every message arrived, and the last one
# within a second of the others).
#
# Settings (environment): LARDER (the larder-server binary; default: build
# the release one), ROUNDS (3), MODES ("pinned"), PARTS ("publish
# invalidation tracking"), CLIENTS (50), PIPELINES ("1 16"), PUB_CASES
# ("1x1 1x100 1x1000 1000x1": channels x subscribers per channel),
# PUB_REQUESTS (1000000 at -P 16 and more, a third of it at -P 1; divided by
# 5 with 100 subscribers a channel and by 50 with 1,000, so that each run
# delivers up to 20 million messages), INV_SAMPLES (2000), LOAD_PIPELINE
# (1), TRACK_CLIENTS (50), TRACK_KEYS (10000 per client), TRACK_PIPELINE
# (32), TRACK_SECONDS (10), QUIET (0.10) and QUIET_WAIT (180): before each
# run, wait until other processes use at most QUIET of the machine's CPU
# (QUIET_WAIT=0: never wait), LARDER_PORT (6600), REDIS_PORT (6601).
#
# Every process it starts runs in its own session and is killed on exit,
# failure or interrupt.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/servers.sh

rounds=${ROUNDS:-3}
modes=${MODES:-pinned}
parts=${PARTS:-publish invalidation tracking}
clients=${CLIENTS:-50}
pipelines=${PIPELINES:-1 16}
pub_cases=${PUB_CASES:-1x1 1x100 1x1000 1000x1}
pub_requests=${PUB_REQUESTS:-1000000}
inv_samples=${INV_SAMPLES:-2000}
load_pipeline=${LOAD_PIPELINE:-1}
track_clients=${TRACK_CLIENTS:-50}
track_keys=${TRACK_KEYS:-10000}
track_pipeline=${TRACK_PIPELINE:-32}
track_seconds=${TRACK_SECONDS:-10}
quiet=${QUIET:-0.10}
quiet_wait=${QUIET_WAIT:-180}
larder_port=${LARDER_PORT:-6600}
redis_port=${REDIS_PORT:-6601}
keyspace=$((track_clients * track_keys))
size=32

if [ -z "${LARDER:-}" ]; then
    cargo build --release --quiet --bin larder-server
    LARDER=${CARGO_TARGET_DIR:-target}/release/larder-server
fi
if [ ! -x "$LARDER" ] || [ -d "$LARDER" ]; then
    echo "no Larder binary at $LARDER" >&2
    exit 1
fi
for tool in redis-server redis-benchmark redis-cli taskset setsid python3; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
for port in "$larder_port" "$redis_port"; do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
        echo "port $port is taken (LARDER_PORT / REDIS_PORT)" >&2
        exit 1
    fi
done
# 1,000 subscribers and 50 clients, with room to spare.
[ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 2>/dev/null || { echo "ulimit -n is below 4096" >&2; exit 1; }

work=$(mktemp -d)
results=$work/results
: >"$work/pids"

# Starts a command in the background, in its own session (so that it and
# any children can be killed as a group), and records its pid.
spawn() {
    setsid "$@" &
    echo $! >>"$work/pids"
    last_pid=$!
}
reaped() { sed -i "/^$1\$/d" "$work/pids"; }
run() {
    spawn "$@"
    local pid=$last_pid status=0
    wait "$pid" || status=$?
    reaped "$pid"
    return $status
}
stop() {
    kill -- "-$1" 2>/dev/null || kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    reaped "$1"
}

exec 3>&1 4>&2
cleanup() {
    local status=$? pid left=""
    set +e
    trap - INT TERM
    exec 1>&3 2>&4
    while read -r pid; do
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null
    done <"$work/pids"
    for _ in $(seq 50); do
        left=""
        while read -r pid; do kill -0 "$pid" 2>/dev/null && left="$left $pid"; done <"$work/pids"
        [ -z "$left" ] && break
        sleep 0.1
    done
    for pid in $left; do kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "Load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine spoils the figures)"
others=$({ pgrep -a redis-benchmark; pgrep -a larder; pgrep -a redis-server; } 2>/dev/null | sed 's/^/  /' || true)
echo "redis-benchmark / larder / redis-server processes already running: ${others:+
}${others:-none}"
echo

cpu0_of() {
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu0" {
        busy = $2 + $3 + $4 + $7 + $8 + $9
        printf "%.3f %.3f", busy / hz, (busy + $5 + $6) / hz
    }' /proc/stat
}
machine_busy() {
    local a b
    a=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    sleep 0.5
    b=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.3f", (y[2] > x[2]) ? (y[1] - x[1]) / (y[2] - x[2]) : 0 }'
}
# Before a run, with nothing of ours loaded: waits until the machine is
# quiet (QUIET), within what is left of QUIET_WAIT.
waited=0
wait_quiet() {
    local busy start=$SECONDS
    while :; do
        busy=$(machine_busy)
        awk -v b="$busy" -v q="$quiet" 'BEGIN { exit !(b <= q) }' && break
        if [ $((waited + SECONDS - start)) -ge "$quiet_wait" ]; then
            [ "$quiet_wait" -gt 0 ] && [ -z "${quiet_gave_up:-}" ] &&
                echo "  no more waiting for a quiet machine (QUIET_WAIT=$quiet_wait s spent); other work spoils what follows" >&2
            quiet_gave_up=1
            break
        fi
        sleep 1
    done
    waited=$((waited + SECONDS - start))
}
# The share of CPU 0 other processes than the server (whose CPU seconds
# meanwhile are the third argument) used between two cpu0_of readings.
other0() { awk -v a="$1" -v b="$2" -v server="$3" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    share = (y[2] > x[2]) ? (y[1] - x[1] - server) / (y[2] - x[2]) : 0
    printf "%.3f", share < 0 ? 0 : share
}'; }

# An empty server (FLUSHALL also empties the tracking table) with the
# tracking part's keys, key:000000000000 .., 32-byte values.
fresh() {
    redis-cli -p "$1" flushall >/dev/null
    awk -v n="$keyspace" -v size="$size" 'BEGIN {
        value = sprintf("%" size "s", ""); gsub(/ /, "x", value)
        for (i = 0; i < n; i++) {
            key = sprintf("key:%012d", i)
            printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(key), key, size, value
        }
    }' | redis-cli -p "$1" --pipe >/dev/null
}

client_pin() { [ "$1" = pinned ] && echo "taskset -c 1" || true; }

part_publish() {
    local mode=$1 round=$2 server=$3 port=$4 pid=$5 case pipeline channels per requests
    local pin
    read -ra pin <<<"$(client_pin "$mode")"
    for pipeline in $pipelines; do
        for case in $pub_cases; do
            channels=${case%x*}
            per=${case#*x}
            requests=$pub_requests
            [ "$pipeline" -gt 1 ] || requests=$((requests / 3))
            [ "$per" -ge 100 ] && requests=$((requests / 5))
            [ "$per" -ge 1000 ] && requests=$((requests / 10))
            wait_quiet
            local out=$work/sub.out
            : >"$out"
            spawn "${pin[@]}" python3 tools/pubsub-bench.py subscribe --port "$port" --channels "$channels" \
                --per-channel "$per" --timeout 200 >"$out"
            local sub=$last_pid
            for _ in $(seq 1200); do
                grep -q ready "$out" && break
                kill -0 "$sub" 2>/dev/null || break
                sleep 0.05
            done
            if ! grep -q ready "$out"; then
                echo "the subscribers did not start on $server ($case)" >&2
                stop "$sub"
                continue
            fi
            local target=ch:000000000000 range=()
            if [ "$channels" -gt 1 ]; then
                target=ch:__rand_int__
                range=(-r "$channels")
            fi
            local core0 core1 before after csv rps
            core0=$(cpu0_of)
            before=$(cpu_of "$pid")
            run timeout 300 "${pin[@]}" redis-benchmark -p "$port" -c "$clients" -n "$requests" "${range[@]}" \
                -P "$pipeline" --csv PUBLISH "$target" payload:__rand_int__ >"$work/bench.out" 2>/dev/null || true
            # The subscribers stop a second after the last message.
            wait "$sub" 2>/dev/null || true
            reaped "$sub"
            after=$(cpu_of "$pid")
            core1=$(cpu0_of)
            csv=$(grep -v '^"test"' "$work/bench.out" | tail -1)
            rps=$(echo "$csv" | awk -F'","' '{ print $2 }')
            if [ -z "$rps" ]; then
                echo "redis-benchmark failed on $server ($case -P $pipeline)" >&2
                continue
            fi
            local messages first last closed cpu
            read -r messages first last closed < <(tail -1 "$out")
            cpu=$(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }')
            echo "pub $mode $round $case $pipeline $server $rps $cpu $requests $per $messages $(awk -v f="$first" -v l="$last" 'BEGIN { print l - f }') $closed $(other0 "$core0" "$core1" "$cpu")" >>"$results"
        done
    done
}

part_invalidation() {
    local mode=$1 round=$2 server=$3 port=$4 pid=$5 load pin line
    read -ra pin <<<"$(client_pin "$mode")"
    fresh "$port"
    for load in idle getset; do
        wait_quiet
        local loader=""
        if [ "$load" = getset ]; then
            spawn "${pin[@]}" redis-benchmark -p "$port" -c "$clients" -n 10000000 -r "$keyspace" -d "$size" \
                -P "$load_pipeline" -t set,get -l -q >/dev/null 2>&1
            loader=$last_pid
            sleep 1
            kill -0 "$loader" 2>/dev/null || { echo "the GET/SET load did not start on $server" >&2; stop "$loader"; continue; }
        fi
        local core0 core1 before after
        core0=$(cpu0_of)
        before=$(cpu_of "$pid")
        run timeout 300 "${pin[@]}" python3 tools/pubsub-bench.py latency --port "$port" --samples "$inv_samples" \
            >"$work/lat.out" || echo "the latency probe failed on $server ($load)" >&2
        after=$(cpu_of "$pid")
        core1=$(cpu0_of)
        [ -n "$loader" ] && stop "$loader"
        line=$(tail -1 "$work/lat.out")
        [ -n "$line" ] || continue
        echo "inv $mode $round $load $server $line $(other0 "$core0" "$core1" "$(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }')")" >>"$results"
    done
}

part_tracking() {
    local mode=$1 round=$2 server=$3 port=$4 pid=$5 tracking pin line
    read -ra pin <<<"$(client_pin "$mode")"
    for tracking in off on; do
        fresh "$port"
        wait_quiet
        local core0 core1
        core0=$(cpu0_of)
        run timeout 600 "${pin[@]}" python3 tools/pubsub-bench.py getload --port "$port" --pid "$pid" \
            --clients "$track_clients" --keys "$track_keys" --value-size "$size" --pipeline "$track_pipeline" \
            --seconds "$track_seconds" --tracking "$tracking" >"$work/get.out" ||
            { echo "the GET load failed on $server (tracking $tracking)" >&2; continue; }
        core1=$(cpu0_of)
        line=$(tail -1 "$work/get.out")
        # gets gets/s cpu_s; other0 is over the whole run, warm-up included.
        read -r gets gps cpu <<<"$line"
        echo "trk $mode $round $tracking $server $gps $cpu $gets $(other0 "$core0" "$core1" "$cpu")" >>"$results"
    done
}

run_mode() {
    local mode=$1 pin=()
    [ "$mode" = pinned ] && pin=(taskset -c 0)
    spawn "${pin[@]}" "$LARDER" --port "$larder_port" --loglevel warning >"$work/larder.log" 2>&1
    local larder_pid=$last_pid
    spawn "${pin[@]}" redis-server --port "$redis_port" --save '' --appendonly no --loglevel warning >"$work/redis.log" 2>&1
    local redis_pid=$last_pid
    wait_for "$larder_port"
    wait_for "$redis_port"
    echo "  $mode: servers up (Larder pid $larder_pid, Redis pid $redis_pid)" >&2
    for round in $(seq "$rounds"); do
        local order=("larder $larder_port $larder_pid" "redis $redis_port $redis_pid")
        [ $((round % 2)) -eq 0 ] && order=("${order[1]}" "${order[0]}")
        for part in $parts; do
            for server in "${order[@]}"; do
                # shellcheck disable=SC2086 # name, port, pid
                "part_$part" "$mode" "$round" $server
            done
            echo "  $mode round $round of $rounds: $part done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
        done
    done
    for server in larder redis; do
        local p=$larder_pid
        [ "$server" = redis ] && p=$redis_pid
        echo "  $server: $(grep -E '^(VmHWM)' "/proc/$p/status" | tr -s ' \t' ' ') at the end of $mode" >&2
    done
    stop "$larder_pid"
    stop "$redis_pid"
}

start_time=$(date +%s)
: >"$results"
for mode in $modes; do
    run_mode "$mode"
done

echo "Larder ($LARDER) against redis-server $(redis-server --version | awk '{ print $3 }' | sed 's/v=//'), $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
echo "$rounds rounds interleaved (odd rounds Larder first), medians; ratios (Larder / Redis) per round, then their median; $(($(date +%s) - start_time)) s in all"
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $waited s spent waiting for a quiet machine (QUIET=$quiet, QUIET_WAIT=$quiet_wait s)"
echo "oth0 = median share of CPU 0 (the servers' core when pinned) taken by other processes during the runs of a row: above a few %, the row is spoilt"
awk -v clients="$clients" -v samples="$inv_samples" -v load_pipeline="$load_pipeline" -v track_clients="$track_clients" \
    -v track_keys="$track_keys" -v track_pipeline="$track_pipeline" -v track_seconds="$track_seconds" '
    function median(list,    n, a, i, j, t) {
        n = split(list, a, " ")
        if (n == 0) return 0
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(key, server, round, name, value) {
        if (!((key, "seen") in has)) { has[key, "seen"] = 1; order[$1, ++count[$1]] = key }
        values[key, server, name] = values[key, server, name] " " value
        per[key, server, name, round] = value
        if (!((key, round) in rseen)) { rseen[key, round] = 1; rounds[key] = rounds[key] " " round }
    }
    # The median over the rounds of a / b, where a and b are figures of
    # (key, server) pairs: larder/redis, or on/off.
    function ratio2(ka, sa, kb, sb, name,    n, rs, i, x, y, list) {
        list = ""
        n = split(rounds[ka], rs, " ")
        for (i = 1; i <= n; i++) {
            if (!((ka, sa, name, rs[i]) in per) || !((kb, sb, name, rs[i]) in per)) continue
            x = per[ka, sa, name, rs[i]]; y = per[kb, sb, name, rs[i]]
            if (y > 0) list = list " " x / y
        }
        return median(list)
    }
    function ratio(key, name) { return ratio2(key, "larder", key, "redis", name) }
    function m(key, server, name) { return median(values[key, server, name]) }
    $1 == "pub" {
        # pub mode round case pipeline server pubs/s cpu_s publishes per_channel messages seconds closed other0
        key = $2 " " $4 " " $5
        add(key, $6, $3, "pps", $7)
        add(key, $6, $3, "mps", $12 > 0 ? $11 / $12 : 0)
        add(key, $6, $3, "recv", $11 / ($9 * $10))
        add(key, $6, $3, "cpup", $8 / $9 * 1e6)
        add(key, $6, $3, "cpum", $11 > 0 ? $8 / $11 * 1e6 : 0)
        add(key, $6, $3, "closed", $13)
        add(key, "any", $3, "oth", $14)
    }
    $1 == "inv" {
        # inv mode round load server push_p50 push_p99 push_max ok_p50 ok_p99 samples other0
        key = $2 " " $4
        add(key, $5, $3, "p50", $6); add(key, $5, $3, "p99", $7); add(key, $5, $3, "ok50", $9); add(key, $5, $3, "ok99", $10)
        add(key, "any", $3, "oth", $12)
    }
    $1 == "trk" {
        # trk mode round on|off server gets/s cpu_s gets other0
        key = $2 " " $4
        add(key, $5, $3, "gps", $6); add(key, $5, $3, "cpu", $8 > 0 ? $7 / $8 * 1e6 : 0)
        add(key, "any", $3, "oth", $9)
    }
    END {
        if (count["pub"]) {
            printf "\nPUBLISH, redis-benchmark -c %d; case = channels x subscribers per channel; pub/s = publishes/s, msg/s = messages the subscribers read per second;\n", clients
            printf "recv = messages read / (publishes x subscribers per channel); cpu/pub, cpu/msg = server CPU µs (user + system, all threads); ratio = Larder / Redis\n"
            printf "%-7s %-6s %3s | %8s %8s %5s | %9s %9s %5s | %5s %5s | %7s %7s | %6s %6s | %4s\n", "mode", "case", "-P", "L pub/s", "R pub/s", "ratio", "L msg/s", "R msg/s", "ratio", "L rcv", "R rcv", "L cpu/p", "R cpu/p", "L c/m", "R c/m", "oth0"
            for (k = 1; k <= count["pub"]; k++) {
                key = order["pub", k]; split(key, f, " ")
                printf "%-7s %-6s %3s | %8.0f %8.0f %5.2f | %9.0f %9.0f %5.2f | %4.0f%% %4.0f%% | %7.2f %7.2f | %6.3f %6.3f | %3.0f%%\n", f[1], f[2], f[3],
                    m(key, "larder", "pps"), m(key, "redis", "pps"), ratio(key, "pps"),
                    m(key, "larder", "mps"), m(key, "redis", "mps"), ratio(key, "mps"),
                    100 * m(key, "larder", "recv"), 100 * m(key, "redis", "recv"),
                    m(key, "larder", "cpup"), m(key, "redis", "cpup"), m(key, "larder", "cpum"), m(key, "redis", "cpum"),
                    100 * m(key, "any", "oth")
                if (m(key, "larder", "closed") + m(key, "redis", "closed") > 0)
                    printf "        (subscribers dropped by the server, median: Larder %d, Redis %d)\n", m(key, "larder", "closed"), m(key, "redis", "closed")
            }
        }
        if (count["inv"]) {
            printf "\nInvalidation latency, ms from sending SET to the RESP3 tracker reading its invalidate push (%d samples a run); +OK = to the writer reading its reply;\n", samples
            printf "getset = while redis-benchmark -t set,get -l -c %d -P %d runs\n", clients, load_pipeline
            printf "%-7s %-6s | %7s %7s %7s %7s | %7s %7s %7s %7s | %6s %6s | %4s\n", "mode", "load", "L p50", "L p99", "R p50", "R p99", "L ok50", "L ok99", "R ok50", "R ok99", "r p50", "r p99", "oth0"
            for (k = 1; k <= count["inv"]; k++) {
                key = order["inv", k]; split(key, f, " ")
                printf "%-7s %-6s | %7.3f %7.3f %7.3f %7.3f | %7.3f %7.3f %7.3f %7.3f | %6.2f %6.2f | %3.0f%%\n", f[1], f[2],
                    m(key, "larder", "p50"), m(key, "larder", "p99"), m(key, "redis", "p50"), m(key, "redis", "p99"),
                    m(key, "larder", "ok50"), m(key, "larder", "ok99"), m(key, "redis", "ok50"), m(key, "redis", "ok99"),
                    ratio(key, "p50"), ratio(key, "p99"), 100 * m(key, "any", "oth")
            }
        }
        if (count["trk"]) {
            printf "\nGET with and without CLIENT TRACKING: %d RESP3 connections, %d keys tracked each, pipelines of %d GETs for %d s; cpu = server CPU µs per GET\n", track_clients, track_keys, track_pipeline, track_seconds
            printf "%-7s %-8s | %9s %9s %5s | %6s %6s %5s | %4s\n", "mode", "tracking", "L GET/s", "R GET/s", "ratio", "L cpu", "R cpu", "ratio", "oth0"
            for (k = 1; k <= count["trk"]; k++) {
                key = order["trk", k]; split(key, f, " ")
                printf "%-7s %-8s | %9.0f %9.0f %5.2f | %6.3f %6.3f %5.2f | %3.0f%%\n", f[1], f[2],
                    m(key, "larder", "gps"), m(key, "redis", "gps"), ratio(key, "gps"),
                    m(key, "larder", "cpu"), m(key, "redis", "cpu"), ratio(key, "cpu"), 100 * m(key, "any", "oth")
            }
            printf "on / off, same server (per round): GET/s and CPU per GET\n"
            for (k = 1; k <= count["trk"]; k++) {
                key = order["trk", k]; split(key, f, " ")
                if (f[2] != "on") continue
                off = f[1] " off"
                printf "%-7s Larder GET/s %5.2f, cpu/GET %5.2f;  Redis GET/s %5.2f, cpu/GET %5.2f\n", f[1],
                    ratio2(key, "larder", off, "larder", "gps"), ratio2(key, "larder", off, "larder", "cpu"),
                    ratio2(key, "redis", off, "redis", "gps"), ratio2(key, "redis", off, "redis", "cpu")
            }
        }
    }' "$results"
echo
echo "Every run (pub: mode round case -P server pub/s cpu_s publishes subs/channel messages seconds closed oth0;"
echo "inv: mode round load server push_p50 push_p99 push_max ok_p50 ok_p99 samples oth0;"
echo "trk: mode round tracking server GET/s cpu_s GETs oth0):"
sed 's/^/  /' "$results"
