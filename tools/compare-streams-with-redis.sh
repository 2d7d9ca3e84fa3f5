#!/usr/bin/env bash
# Streams and consumer groups (issue 15's "Measure"), Larder against a real
# redis-server, side by side on this machine, in the manner of
# tools/compare-with-redis.sh: both servers started on spare ports, each
# pinned to CPU 0 and every load generator to CPU 1, the same runs on each,
# rounds interleaved (odd rounds Larder first, even rounds Redis), each
# server's CPU time (user + system, all threads) from /proc/<pid>/stat,
# medians over the rounds, Larder/Redis ratios taken per round. Parts:
#
#   xadd    redis-benchmark -c CLIENTS at each of PIPELINES:
#           `XADD xadd:stream * f1 vvvvvvvvvv f2 vvvvvvvvvv f3 vvvvvvvvvv`
#           into one stream (deleted after each run). After each run the
#           stream must hold exactly as many entries as requests were sent
#           (else the run is reported as failed: an XADD that erred).
#   read    redis-benchmark `XRANGE read:stream - + COUNT 100` and
#           `XREAD COUNT 100 STREAMS read:stream 0` (100 entries a reply, 3
#           fields of 10 bytes each) on a stream of READ_ENTRIES entries.
#   group   tools/stream-group-bench.rs (compiled here with `rustc -O`, std
#           only): GROUP_MESSAGES entries pre-filled, a group created at 0,
#           then CONSUMERS consumers (one thread and connection each) loop
#           `XREADGROUP GROUP g cI COUNT n STREAMS group:stream >` and XACK
#           the IDs they got (sent with their next XREADGROUP, one round
#           trip a batch) until nothing is left, for n in GROUP_COUNTS. The
#           tool checks that every entry was delivered and acked once;
#           reported: messages acked per second, server CPU per message.
#   memory  MEMORY_ENTRIES XADDs of 3 fields (f1 f2 f3, the same names each
#           entry, as an application writes them) with 10-byte values
#           (v000000001, ...) into one stream through `redis-cli --pipe`
#           (the same RESP bytes to both servers); INFO used_memory and
#           VmRSS before and after: bytes per entry. Run once (it does not
#           vary between runs).
#
#   tools/compare-streams-with-redis.sh                  # all parts, 3 rounds (about 10 minutes)
#   ROUNDS=1 PARTS="xadd read" PIPELINES=16 tools/compare-streams-with-redis.sh
#   LARDER=/work/main/target/release/larder-server PARTS=memory tools/compare-streams-with-redis.sh
#
# Settings (environment): LARDER (the larder-server binary; default: build
# the release one), ROUNDS (3), PARTS ("xadd read group memory"), CLIENTS
# (50), PIPELINES ("1 16"), XADD_REQUESTS_P1 (300000), XADD_REQUESTS
# (1000000, at -P above 1), READ_REQUESTS_P1 (20000), READ_REQUESTS
# (40000), READ_ENTRIES (1000), GROUP_MESSAGES (300000), GROUP_COUNTS
# ("10 100"), CONSUMERS (10), MEMORY_ENTRIES (1000000), LARDER_PORT (7401),
# REDIS_PORT (7402), RAW (set: also print every run's line, "part round test
# pipeline server rate cpu_seconds units").
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/servers.sh

rounds=${ROUNDS:-3}
parts=${PARTS:-xadd read group memory}
clients=${CLIENTS:-50}
pipelines=${PIPELINES:-1 16}
xadd_requests_p1=${XADD_REQUESTS_P1:-300000}
xadd_requests=${XADD_REQUESTS:-1000000}
read_requests_p1=${READ_REQUESTS_P1:-20000}
read_requests=${READ_REQUESTS:-40000}
read_entries=${READ_ENTRIES:-1000}
group_messages=${GROUP_MESSAGES:-300000}
group_counts=${GROUP_COUNTS:-10 100}
consumers=${CONSUMERS:-10}
memory_entries=${MEMORY_ENTRIES:-1000000}
larder_port=${LARDER_PORT:-7401}
redis_port=${REDIS_PORT:-7402}

if [ -z "${LARDER:-}" ]; then
    cargo build --release --quiet --bin larder-server
    LARDER=${CARGO_TARGET_DIR:-target}/release/larder-server
fi
if [ ! -x "$LARDER" ] || [ -d "$LARDER" ]; then
    echo "no Larder binary at $LARDER" >&2
    exit 1
fi
for tool in redis-server redis-benchmark redis-cli taskset rustc; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
for port in "$larder_port" "$redis_port"; do
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

rss_of() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
used_memory() { cli "$1" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }

# RESP for `count` XADDs to stream `key`: fields f1 f2 f3, each value the
# 10-byte v%09d of the entry's number.
xadds() {
    awk -v n="$2" -v key="$1" 'BEGIN {
        head = sprintf("*9\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$1\r\n*\r\n", length(key), key)
        for (i = 0; i < n; i++) {
            v = sprintf("v%09d", i)
            printf "%s$2\r\nf1\r\n$10\r\n%s\r\n$2\r\nf2\r\n$10\r\n%s\r\n$2\r\nf3\r\n$10\r\n%s\r\n", head, v, v, v
        }
    }'
}
fill_stream() {
    local port=$1 key=$2 count=$3
    cli "$port" del "$key" >/dev/null
    xadds "$key" "$count" | timeout 300 redis-cli -p "$port" --pipe >"$work/pipe.log"
    if [ "$(cli "$port" xlen "$key")" != "$count" ]; then
        echo "filling $key on port $port failed: $(cat "$work/pipe.log")" >&2
        exit 1
    fi
}

# Appends "part round test pipeline server rate cpu_seconds units" to the results.
record() { echo "$*" >>"$results"; }

# One redis-benchmark run; prints its requests per second (empty if it failed).
bench() {
    local port=$1 requests=$2 pipeline=$3
    shift 3
    timeout 300 taskset -c 1 redis-benchmark -p "$port" -c "$clients" -n "$requests" -P "$pipeline" \
        --threads 1 --csv "$@" 2>/dev/null | grep -v '^"test"' | tail -1 | awk -F'","' '{ print $2 }'
}

part_xadd() {
    local round=$1 server=$2 port=$3 pid=$4 pipeline requests before rps after
    for pipeline in $pipelines; do
        requests=$xadd_requests
        [ "$pipeline" -eq 1 ] && requests=$xadd_requests_p1
        cli "$port" del xadd:stream >/dev/null
        before=$(cpu_of "$pid")
        rps=$(bench "$port" "$requests" "$pipeline" XADD xadd:stream '*' f1 vvvvvvvvvv f2 vvvvvvvvvv f3 vvvvvvvvvv)
        after=$(cpu_of "$pid")
        local length
        length=$(cli "$port" xlen xadd:stream)
        cli "$port" del xadd:stream >/dev/null
        if [ -z "$rps" ] || [ "$length" != "$requests" ]; then
            echo "XADD -P $pipeline failed on $server: rps '$rps', $length entries of $requests" >&2
            continue
        fi
        record xadd "$round" XADD "$pipeline" "$server" "$rps" "$(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }')" "$requests"
    done
}

part_read() {
    local round=$1 server=$2 port=$3 pid=$4 pipeline requests before rps after test
    fill_stream "$port" read:stream "$read_entries"
    # 100 entries a reply, each its ID and 3 field-value pairs: 700 lines.
    for test in XRANGE XREAD; do
        local lines
        case $test in
            XRANGE) lines=$(cli "$port" xrange read:stream - + count 100 | wc -l) ;;
            XREAD) lines=$(cli "$port" xread count 100 streams read:stream 0 | wc -l) ;;
        esac
        # XREAD's reply adds the stream's name.
        if [ "$lines" -lt 700 ]; then
            echo "$test on $server answered $lines lines, not 100 entries" >&2
            exit 1
        fi
    done
    for pipeline in $pipelines; do
        requests=$read_requests
        [ "$pipeline" -eq 1 ] && requests=$read_requests_p1
        for test in XRANGE XREAD; do
            local args=(XRANGE read:stream - + COUNT 100)
            [ "$test" = XREAD ] && args=(XREAD COUNT 100 STREAMS read:stream 0)
            before=$(cpu_of "$pid")
            rps=$(bench "$port" "$requests" "$pipeline" "${args[@]}")
            after=$(cpu_of "$pid")
            if [ -z "$rps" ]; then
                echo "redis-benchmark $test -P $pipeline failed on $server" >&2
                continue
            fi
            record read "$round" "$test" "$pipeline" "$server" "$rps" "$(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }')" "$requests"
        done
    done
    cli "$port" del read:stream >/dev/null
}

part_group() {
    local round=$1 server=$2 port=$3 pid=$4 count before out after
    for count in $group_counts; do
        fill_stream "$port" group:stream "$group_messages"
        cli "$port" xgroup create group:stream g 0 >/dev/null
        before=$(cpu_of "$pid")
        if ! out=$(timeout 300 taskset -c 1 "$work/stream-group-bench" "$port" group:stream g "$consumers" "$count" "$group_messages"); then
            echo "stream-group-bench COUNT $count failed on $server: $out" >&2
            continue
        fi
        after=$(cpu_of "$pid")
        local pending
        pending=$(cli "$port" xpending group:stream g | head -1)
        if [ "$pending" != 0 ]; then
            echo "$server: $pending entries still pending after the group run" >&2
            exit 1
        fi
        # "delivered acked seconds messages_per_second"
        # shellcheck disable=SC2086
        set -- $out
        record group "$round" "XREADGROUP+XACK_COUNT_$count" 1 "$server" "$4" "$(awk -v a="$before" -v b="$after" 'BEGIN { print b - a }')" "$2"
        cli "$port" del group:stream >/dev/null
    done
}

part_memory() {
    local server=$1 port=$2 pid=$3
    cli "$port" flushall >/dev/null
    sleep 1
    local used_before rss_before used_after rss_after
    used_before=$(used_memory "$port")
    rss_before=$(rss_of "$pid")
    timeout 600 redis-cli -p "$port" --pipe <"$work/memory.resp" >"$work/pipe.log"
    [ "$(cli "$port" xlen memory:stream)" = "$memory_entries" ] || {
        echo "memory fill failed on $server: $(cat "$work/pipe.log")" >&2
        exit 1
    }
    used_after=$(used_memory "$port")
    rss_after=$(rss_of "$pid")
    echo "$server $used_before $used_after $rss_before $rss_after" >>"$work/memory"
    cli "$port" flushall >/dev/null
}

if [[ " $parts " == *" group "* ]]; then
    rustc -O --edition 2021 tools/stream-group-bench.rs -o "$work/stream-group-bench"
fi

taskset -c 0 "$LARDER" --port "$larder_port" --loglevel warning >"$work/larder.log" 2>&1 &
larder_pid=$!
taskset -c 0 redis-server --port "$redis_port" --save '' --appendonly no --loglevel warning >"$work/redis.log" &
redis_pid=$!
pids+=("$larder_pid" "$redis_pid")
wait_for "$larder_port"
wait_for "$redis_port"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$results"
for round in $(seq "$rounds"); do
    order=("larder $larder_port $larder_pid" "redis $redis_port $redis_pid")
    [ $((round % 2)) -eq 0 ] && order=("${order[1]}" "${order[0]}")
    for part in $parts; do
        [ "$part" = memory ] && continue
        for server in "${order[@]}"; do
            # shellcheck disable=SC2086
            set -- $server
            "part_$part" "$round" "$1" "$2" "$3"
        done
    done
    echo "  round $round of $rounds done" >&2
done
if [[ " $parts " == *" memory "* ]]; then
    xadds memory:stream "$memory_entries" >"$work/memory.resp"
    : >"$work/memory"
    part_memory larder "$larder_port" "$larder_pid"
    part_memory redis "$redis_port" "$redis_pid"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "Larder ($LARDER) against $(redis-server --version | awk '{ print $3 }'), $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo))"
echo "servers on CPU 0, load generators on CPU 1; load average before: $load_before, after: $load_after"
if [ -s "$results" ]; then
    echo "$rounds rounds interleaved, medians; rate: requests/s (group: messages acked/s); us CPU: server CPU-microseconds per request (group: per message); eff = Redis's CPU per unit / Larder's"
    awk '
        function median(list,    n, a, i, j, t) {
            n = split(list, a, " ")
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        {
            key = $3 " " $4
            if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
            cpu = $7 / $8 * 1e6
            rate[key, $5] = rate[key, $5] " " $6
            cpus[key, $5] = cpus[key, $5] " " cpu
            if ($5 == "larder") { lr[key, $2] = $6; lc[key, $2] = cpu } else { rr[key, $2] = $6; rc[key, $2] = cpu }
            rounds[key] = rounds[key] " " $2
        }
        END {
            printf "%-25s %3s | %10s %10s %6s | %8s %8s %6s\n", "test", "-P", "larder", "redis", "ratio", "us CPU L", "us CPU R", "eff"
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
                printf "%-25s %3s | %10.0f %10.0f %6.2f | %8.2f %8.2f %6.2f\n", f[1], f[2],
                    median(rate[key, "larder"]), median(rate[key, "redis"]), median(tr),
                    median(cpus[key, "larder"]), median(cpus[key, "redis"]), median(te)
            }
        }' "$results"
fi
if [ -n "${RAW:-}" ] && [ -s "$results" ]; then
    echo
    echo "every run: part round test pipeline server rate cpu_seconds units"
    cat "$results"
fi
if [ -s "$work/memory" ]; then
    echo
    echo "memory: $memory_entries entries of 3 fields (10-byte values) in one stream; bytes per entry"
    awk -v n="$memory_entries" '
        { used[$1] = ($3 - $2) / n; rss[$1] = ($5 - $4) / n
          printf "%-7s used_memory %12d -> %12d: %7.1f B/entry | RSS %12d -> %12d: %7.1f B/entry\n", $1, $2, $3, used[$1], $4, $5, rss[$1] }
        END { if (used["redis"] > 0 && rss["redis"] > 0) printf "Larder/Redis: used_memory %.2f, RSS %.2f\n", used["larder"] / used["redis"], rss["larder"] / rss["redis"] }
    ' "$work/memory"
fi
