#!/usr/bin/env bash
# Lua scripting, Larder against a real redis-server, side by side on this
# machine (issue 12's "Measure"), in the manner of tools/compare-with-redis.sh:
# both servers started on spare ports, the same workloads on each, rounds
# interleaved (odd rounds Larder first, even rounds Redis), each server's CPU
# time per request from /proc/<pid>/stat, medians over the rounds, ratios
# taken per round. Three parts:
#
#   evalsha  redis-benchmark EVALSHA of a one-key GET script
#            (`return redis.call('GET', KEYS[1])` over a filled keyspace) and
#            of a 10-command script (INCRBY then GET of each of its 5
#            declared keys), at each of PIPELINES, CLIENTS clients.
#   lock     redis-py `Lock` acquire + release (SET NX PX, then the release
#            script by EVALSHA) in a loop, LOCK_CLIENTS worker processes
#            (processes, not threads: no GIL between them) for LOCK_SECONDS,
#            on one lock and on 1,000 locks (a random one per acquisition);
#            tools/lock-bench.py.
#   busy     redis-benchmark GET and SET (CLIENTS clients, -P BUSY_PIPELINE)
#            alone, then while SCRIPT_LOOPERS more connections loop EVALSHA
#            of `return redis.call('INCR', KEYS[1])` (one declared key,
#            sk:0..999): how much of the plain traffic survives scripts.
#            The loops' own rate is reported too (from the sum of their
#            counters): a server that runs fewer scripts meanwhile is under
#            less script load, so read "kept" together with "scr/s". Pinned,
#            the loops share CPU 1 with redis-benchmark, so part of any drop
#            is on the client side, the same for both servers.
#
#   tools/compare-scripting-with-redis.sh              # all parts, pinned, 3 rounds (6-7 minutes on a quiet machine, at most 3 more waiting for one)
#   ROUNDS=1 LOCK_SECONDS=3 tools/compare-scripting-with-redis.sh   # quick look (~2 minutes)
#   PARTS=busy LARDER=/tmp/larder-shard-locks tools/compare-scripting-with-redis.sh
#   MODES="pinned unpinned" PARTS="evalsha busy" tools/compare-scripting-with-redis.sh
#
# Modes: `pinned` (the default) gives each server CPU 0 only and every load
# generator (redis-benchmark, the script loops, the Python lock clients) CPU
# 1; `unpinned` pins nothing.
#
# Settings (environment): LARDER (the larder-server binary; default: build
# the release one), ROUNDS (3), MODES ("pinned"), PARTS ("evalsha lock
# busy"), CLIENTS (50), KEYS (1000000: keys filled with SIZE-byte values and
# the -r range), SIZE (32), PIPELINES ("1 16"), REQUESTS_P1 (100000) and
# REQUESTS_PIPELINED (500000) per EVALSHA run (a quarter of it for the
# 10-command script), LOCK_CLIENTS (50), LOCK_COUNTS ("1 1000"),
# LOCK_SECONDS (10), LOCK_SLEEP (0.1, redis-py's default retry interval
# while a lock is taken: what a redis-py user gets; shorter sleeps make 49
# waiting Python processes poll, and on one load-generator core the lock
# holder then waits for the CPU: 0.001 gives ~100 acquisitions/s on one lock,
# a figure of the client machine, not of the server), SCRIPT_LOOPERS
# (4), BUSY_TESTS ("get set"), BUSY_PIPELINE (16), BUSY_REQUESTS (2000000),
# QUIET (0.10) and QUIET_WAIT (180): before each run, wait until other
# processes use at most QUIET of the machine's CPU (sampled over half a
# second, while this tool's own servers idle), spending at most QUIET_WAIT
# seconds waiting over the whole report (QUIET_WAIT=0: never wait),
# LARDER_PORT (6483), REDIS_PORT (6484).
#
# Every process it starts runs in its own session and is killed on exit,
# failure or interrupt; the redis-benchmark, larder and redis-server
# processes already running before (they would spoil the figures) and any
# left after are listed at the top and the bottom of the report.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/servers.sh

rounds=${ROUNDS:-3}
modes=${MODES:-pinned}
parts=${PARTS:-evalsha lock busy}
clients=${CLIENTS:-50}
keyspace=${KEYS:-1000000}
size=${SIZE:-32}
pipelines=${PIPELINES:-1 16}
requests_p1=${REQUESTS_P1:-100000}
requests_pipelined=${REQUESTS_PIPELINED:-500000}
lock_clients=${LOCK_CLIENTS:-50}
lock_counts=${LOCK_COUNTS:-1 1000}
lock_seconds=${LOCK_SECONDS:-10}
lock_sleep=${LOCK_SLEEP:-0.1}
loopers=${SCRIPT_LOOPERS:-4}
busy_tests=${BUSY_TESTS:-get set}
busy_pipeline=${BUSY_PIPELINE:-16}
busy_requests=${BUSY_REQUESTS:-2000000}
quiet=${QUIET:-0.10}
quiet_wait=${QUIET_WAIT:-180}
larder_port=${LARDER_PORT:-6483}
redis_port=${REDIS_PORT:-6484}

get_script="return redis.call('GET', KEYS[1])"
multi_script="for i = 1, #KEYS do redis.call('INCRBY', KEYS[i], 1) end
local values = {}
for i = 1, #KEYS do values[i] = redis.call('GET', KEYS[i]) end
return values"
incr_script="return redis.call('INCR', KEYS[1])"
# The looping scripts' keys: sk:000000000000 .. sk:000000000999.
looper_keys=1000

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
python3 -c 'import redis' 2>/dev/null || { echo "python3 needs the redis package" >&2; exit 1; }
for port in "$larder_port" "$redis_port"; do
    if redis-cli -p "$port" ping >/dev/null 2>&1; then
        echo "port $port is taken (LARDER_PORT / REDIS_PORT)" >&2
        exit 1
    fi
done

# Load generators and servers not started by this run.
strays() {
    {
        pgrep -a redis-benchmark || true
        pgrep -a larder || true
        pgrep -a redis-server || true
        pgrep -af tools/lock-bench.py || true
    } | sed 's/^/  /'
}

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
# Forgets a process that has ended.
reaped() { sed -i "/^$1\$/d" "$work/pids"; }
# Runs a command as spawn does and waits for it (an interrupt still reaches
# the trap at once).
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

# The report's own stdout and stderr: a trap may fire inside a function
# whose output is redirected.
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
    echo
    echo "After the run, redis-benchmark / larder / redis-server / lock-bench processes still running:"
    local after
    after=$(strays)
    echo "${after:-  none}"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

before=$(strays)
echo "Load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine spoils the figures)"
echo "Before the run, redis-benchmark / larder / redis-server / lock-bench processes already running (not started by this run):"
echo "${before:-  none}"
echo

# CPU 0's busy and total time so far (seconds), from /proc/stat.
cpu0_of() {
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu0" {
        busy = $2 + $3 + $4 + $7 + $8 + $9
        printf "%.3f %.3f", busy / hz, (busy + $5 + $6) / hz
    }' /proc/stat
}
# The share of the whole machine's CPU in use over half a second.
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
# The share of CPU 0 that went to other processes than the server between
# two cpu0_of readings, given the server's CPU seconds meanwhile (pinned, the
# server's core should be the server's alone: other work there spoils the
# figures).
other0() { awk -v a="$1" -v b="$2" -v server="$3" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    share = (y[2] > x[2]) ? (y[1] - x[1] - server) / (y[2] - x[2]) : 0
    printf "%.3f", share < 0 ? 0 : share
}'; }

# SCRIPT LOAD on a server; the same SHA1 on both or we stop.
load_script() {
    local sha
    sha=$(redis-cli -p "$1" script load "$2")
    if ! [[ $sha =~ ^[0-9a-f]{40}$ ]]; then
        echo "SCRIPT LOAD failed on port $1: $sha" >&2
        exit 1
    fi
    echo "$sha"
}

# The sum of the looping scripts' counters: how many of them ran so far.
looper_key_list=()
for i in $(seq 0 $((looper_keys - 1))); do looper_key_list+=("$(printf 'sk:%012d' "$i")"); done
looper_count() {
    redis-cli -p "$1" mget "${looper_key_list[@]}" | awk '{ s += $1 } END { printf "%d", s }'
}

# One redis-benchmark run against one server (pid) on a port; sets
# bench_result to "rps cpu_seconds p99 other" (p99 in ms; other: the share
# of CPU 0 other processes used meanwhile). Not in a command
# substitution, so that an interrupt reaches the trap at once.
bench() {
    local mode=$1 port=$2 pid=$3 out=$work/bench.out
    shift 3
    local pin=()
    [ "$mode" = pinned ] && pin=(taskset -c 1)
    local before after core0 core1
    bench_result=""
    [ "${bench_quiet:-1}" = 1 ] && wait_quiet
    core0=$(cpu0_of)
    before=$(cpu_of "$pid")
    run timeout 300 "${pin[@]}" redis-benchmark -p "$port" --csv "$@" >"$out" 2>/dev/null || true
    after=$(cpu_of "$pid")
    core1=$(cpu0_of)
    # "test","rps","avg","min","p50","p95","p99","max"
    local csv rps p99
    csv=$(grep -v '^"test"' "$out" | tail -1)
    rps=$(echo "$csv" | awk -F'","' '{ print $2 }')
    p99=$(echo "$csv" | awk -F'","' '{ print $7 }')
    if [ -z "$rps" ]; then
        echo "redis-benchmark failed on port $port: $*" >&2
        return 1
    fi
    local cpu
    cpu=$(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }')
    bench_result="$rps $cpu $p99 $(other0 "$core0" "$core1" "$cpu")"
}

part_evalsha() {
    local mode=$1 round=$2 server=$3 port=$4 pid=$5 pipeline script requests rps cpu p99 other
    for pipeline in $pipelines; do
        for script in get1 cmd10; do
            requests=$requests_p1
            [ "$pipeline" -gt 1 ] && requests=$requests_pipelined
            local args=(EVALSHA "$get_sha" 1 key:__rand_int__)
            if [ "$script" = cmd10 ]; then
                requests=$((requests / 4))
                args=(EVALSHA "$multi_sha" 5)
                for _ in 1 2 3 4 5; do args+=(ctr:__rand_int__); done
            fi
            bench "$mode" "$port" "$pid" -c "$clients" -n "$requests" -r "$keyspace" \
                -P "$pipeline" "${args[@]}" || continue
            read -r rps cpu p99 other <<<"$bench_result"
            echo "evalsha $mode $round $script $pipeline $server $rps $cpu $requests $p99 $other" >>"$results"
        done
    done
}

part_lock() {
    local mode=$1 round=$2 server=$3 port=$4 pid=$5 locks line pin=()
    [ "$mode" = pinned ] && pin=(taskset -c 1)
    for locks in $lock_counts; do
        wait_quiet
        run timeout $((lock_seconds * 3 + 120)) "${pin[@]}" python3 tools/lock-bench.py --port "$port" \
            --pid "$pid" --clients "$lock_clients" --locks "$locks" --seconds "$lock_seconds" \
            --sleep "$lock_sleep" >"$work/lock.out" || { echo "lock-bench failed on $server" >&2; continue; }
        line=$(tail -1 "$work/lock.out")
        echo "lock $mode $round $locks $server $line" >>"$results"
    done
}

part_busy() {
    local mode=$1 round=$2 server=$3 port=$4 pid=$5 test rps cpu p99 other pin=()
    [ "$mode" = pinned ] && pin=(taskset -c 1)
    for test in $busy_tests; do
        local args=(-c "$clients" -n "$busy_requests" -r "$keyspace" -P "$busy_pipeline" -t "$test" -d "$size")
        bench "$mode" "$port" "$pid" "${args[@]}" || continue
        read -r rps cpu p99 other <<<"$bench_result"
        echo "busy $mode $round $test alone $server $rps $cpu $busy_requests $p99 0 $other" >>"$results"

        # The same while SCRIPT_LOOPERS connections loop a declared-key script.
        wait_quiet
        spawn "${pin[@]}" redis-benchmark -p "$port" -c "$loopers" -n 2000000000 -r "$looper_keys" \
            -P 1 -q EVALSHA "$incr_sha" 1 sk:__rand_int__ >/dev/null 2>&1
        local looper=$last_pid
        sleep 1
        if ! kill -0 "$looper" 2>/dev/null; then
            echo "the script loops did not start on $server" >&2
            stop "$looper"
            continue
        fi
        local count0 count1 t0 t1
        count0=$(looper_count "$port")
        t0=$(date +%s.%N)
        bench_quiet=0
        bench "$mode" "$port" "$pid" "${args[@]}" || { bench_quiet=1; stop "$looper"; continue; }
        bench_quiet=1
        count1=$(looper_count "$port")
        t1=$(date +%s.%N)
        stop "$looper"
        read -r rps cpu p99 other <<<"$bench_result"
        echo "busy $mode $round $test scripts $server $rps $cpu $busy_requests $p99 $(awk -v a="$count0" -v b="$count1" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }') $other" >>"$results"
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
    for port in "$larder_port" "$redis_port"; do
        redis-cli -p "$port" flushall >/dev/null
        case " $parts " in *" evalsha "* | *" busy "*) fill "$port" "$size" "$keyspace" ;; esac
    done
    get_sha=$(load_script "$larder_port" "$get_script")
    multi_sha=$(load_script "$larder_port" "$multi_script")
    incr_sha=$(load_script "$larder_port" "$incr_script")
    [ "$(load_script "$redis_port" "$get_script")" = "$get_sha" ] &&
        [ "$(load_script "$redis_port" "$multi_script")" = "$multi_sha" ] &&
        [ "$(load_script "$redis_port" "$incr_script")" = "$incr_sha" ] ||
        { echo "the servers disagree on the scripts' SHA1s" >&2; exit 1; }
    echo "  $mode: servers up (Larder pid $larder_pid, Redis pid $redis_pid), $keyspace keys each" >&2
    for round in $(seq "$rounds"); do
        local order=("larder $larder_port $larder_pid" "redis $redis_port $redis_pid")
        [ $((round % 2)) -eq 0 ] && order=("${order[1]}" "${order[0]}")
        for part in $parts; do
            for server in "${order[@]}"; do
                # shellcheck disable=SC2086 # name, port, pid
                "part_$part" "$mode" "$round" $server
            done
            echo "  $mode round $round of $rounds: $part done" >&2
        done
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
echo "$rounds rounds interleaved (odd rounds Larder first), medians; ratios per round, then their median; $(($(date +%s) - start_time)) s in all"
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $waited s spent waiting for a quiet machine (QUIET=$quiet of the CPU, QUIET_WAIT=$quiet_wait s)"
echo "cpu = the server's CPU µs (user + system, all threads) per request; eff = Redis's cpu / Larder's (above 1: Larder is cheaper)"
echo "oth0 = median share of CPU 0 (the servers' core when pinned) taken by other processes during the runs of a row: above a few %, the row is spoilt"
awk -v clients="$clients" -v keyspace="$keyspace" -v lock_clients="$lock_clients" -v lock_seconds="$lock_seconds" \
    -v lock_sleep="$lock_sleep" -v loopers="$loopers" -v busy_pipeline="$busy_pipeline" '
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
    # The median over the rounds of larder / redis (or redis / larder) of a figure.
    function ratio(key, name, inverse,    n, rs, i, l, r, list) {
        list = ""
        n = split(rounds[key], rs, " ")
        for (i = 1; i <= n; i++) {
            if (!((key, "larder", name, rs[i]) in per) || !((key, "redis", name, rs[i]) in per)) continue
            l = per[key, "larder", name, rs[i]]; r = per[key, "redis", name, rs[i]]
            if (inverse) { if (l > 0) list = list " " r / l } else if (r > 0) list = list " " l / r
        }
        return median(list)
    }
    function m(key, server, name) { return median(values[key, server, name]) }
    $1 == "evalsha" {
        # evalsha mode round script pipeline server rps cpu requests p99
        key = $2 " " $4 " " $5
        add(key, $6, $3, "rps", $7); add(key, $6, $3, "cpu", $8 / $9 * 1e6); add(key, $6, $3, "p99", $10)
        add(key, "any", $3, "oth", $11)
    }
    $1 == "lock" {
        # lock mode round locks server acquisitions attempts errors seconds cpu other
        key = $2 " " $4
        add(key, "any", $3, "oth", $11)
        add(key, $5, $3, "acq", $6 / $9); add(key, $5, $3, "att", $7 / $9); add(key, $5, $3, "err", $8)
        add(key, $5, $3, "cpu", $6 > 0 ? $10 / $6 * 1e6 : 0)
    }
    $1 == "busy" {
        # busy mode round test condition server rps cpu requests p99 scripts_per_s other
        key = $2 " " $4
        add(key, "any", $3, "oth", $12)
        add(key, $6, $3, $5, $7); add(key, $6, $3, $5 "_p99", $10)
        if ($5 == "scripts") add(key, $6, $3, "sps", $11)
        if ($5 == "scripts" && ((key, $6, "alone", $3) in per)) add(key, $6, $3, "kept", $7 / per[key, $6, "alone", $3])
    }
    END {
        if (count["evalsha"]) {
            printf "\nEVALSHA, redis-benchmark -c %d -r %d: get1 = return redis.call(\"GET\", KEYS[1]); cmd10 = INCRBY then GET of 5 declared keys (10 calls)\n", clients, keyspace
            printf "%-8s %-6s %3s | %9s %9s %6s | %7s %7s %6s | %7s %7s | %5s\n", "mode", "script", "-P", "larder/s", "redis/s", "ratio", "cpu L", "cpu R", "eff", "p99 L", "p99 R", "oth0"
            for (k = 1; k <= count["evalsha"]; k++) {
                key = order["evalsha", k]; split(key, f, " ")
                printf "%-8s %-6s %3s | %9.0f %9.0f %6.2f | %7.2f %7.2f %6.2f | %7.3f %7.3f | %4.0f%%\n", f[1], f[2], f[3],
                    m(key, "larder", "rps"), m(key, "redis", "rps"), ratio(key, "rps", 0),
                    m(key, "larder", "cpu"), m(key, "redis", "cpu"), ratio(key, "cpu", 1),
                    m(key, "larder", "p99"), m(key, "redis", "p99"), 100 * m(key, "any", "oth")
            }
        }
        if (count["lock"]) {
            printf "\nredis-py Lock acquire + release, %d worker processes, %s s, retry sleep %s s; cpu = server CPU µs per acquisition; tries = SET NX sent per second\n", lock_clients, lock_seconds, lock_sleep
            printf "%-8s %5s | %9s %9s %6s | %7s %7s %6s | %9s %9s | %5s %5s | %5s\n", "mode", "locks", "larder/s", "redis/s", "ratio", "cpu L", "cpu R", "eff", "tries L", "tries R", "err L", "err R", "oth0"
            for (k = 1; k <= count["lock"]; k++) {
                key = order["lock", k]; split(key, f, " ")
                printf "%-8s %5s | %9.0f %9.0f %6.2f | %7.1f %7.1f %6.2f | %9.0f %9.0f | %5d %5d | %4.0f%%\n", f[1], f[2],
                    m(key, "larder", "acq"), m(key, "redis", "acq"), ratio(key, "acq", 0),
                    m(key, "larder", "cpu"), m(key, "redis", "cpu"), ratio(key, "cpu", 1),
                    m(key, "larder", "att"), m(key, "redis", "att"), m(key, "larder", "err"), m(key, "redis", "err"), 100 * m(key, "any", "oth")
            }
        }
        if (count["busy"]) {
            printf "\nPlain traffic while scripts run: redis-benchmark -c %d -P %d, alone, then with %d more connections looping EVALSHA \"return redis.call(INCR, KEYS[1])\"\n", clients, busy_pipeline, loopers
            printf "kept = with scripts / alone (per round); scr/s = scripts the loops ran per second meanwhile; ratio = Larder / Redis with scripts\n"
            printf "%-8s %-4s | %9s %9s %5s %7s | %9s %9s %5s %7s | %6s | %13s %13s\n", "mode", "test", "L alone", "L +scr", "kept", "L scr/s", "R alone", "R +scr", "kept", "R scr/s", "ratio", "p99 L al/scr", "p99 R al/scr", "oth0"
            for (k = 1; k <= count["busy"]; k++) {
                key = order["busy", k]; split(key, f, " ")
                printf "%-8s %-4s | %9.0f %9.0f %5.2f %7.0f | %9.0f %9.0f %5.2f %7.0f | %6.2f | %6.3f/%6.3f %6.3f/%6.3f | %4.0f%%\n", f[1], f[2],
                    m(key, "larder", "alone"), m(key, "larder", "scripts"), m(key, "larder", "kept"), m(key, "larder", "sps"),
                    m(key, "redis", "alone"), m(key, "redis", "scripts"), m(key, "redis", "kept"), m(key, "redis", "sps"),
                    ratio(key, "scripts", 0),
                    m(key, "larder", "alone_p99"), m(key, "larder", "scripts_p99"), m(key, "redis", "alone_p99"), m(key, "redis", "scripts_p99"), 100 * m(key, "any", "oth")
            }
        }
    }' "$results"
echo
echo "Every run (evalsha: mode round script -P server rps cpu_s requests p99 oth0;"
echo "lock: mode round locks server acquisitions tries errors seconds cpu_s oth0;"
echo "busy: mode round test alone|scripts server rps cpu_s requests p99 scripts/s oth0):"
sed 's/^/  /' "$results"
