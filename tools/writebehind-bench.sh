#!/usr/bin/env bash
# Write-behind throughput, from one run on this machine. Each round:
#
#   1. SET throughput of Larder with write-behind off (a fresh release
#      server under redis-benchmark);
#   2. the same with write-behind on (a fresh server and an empty table):
#      how many distinct keys per second reach PostgreSQL while the load
#      runs (rows_written sampled every 200 ms), how far behind it runs
#      (oldest_pending_age_ms), how long the backlog left at the end takes
#      to drain (WRITEBEHIND FLUSH), and the CPU time Larder and PostgreSQL
#      spent during the load;
#   3. the same with the flusher held back (nothing reaches PostgreSQL
#      during the load): the cost of recording changes alone.
#
# The machine is shared and noisy, so rounds alternate and the summary gives
# each ratio's median over the rounds.
#
#   tools/writebehind-bench.sh                 # defaults below
#   ROUNDS=5 tools/writebehind-bench.sh
#   PIN=1 tools/writebehind-bench.sh           # PostgreSQL on CPU 1 only,
#                                              # Larder and redis-benchmark
#                                              # on CPU 0 only (all runs)
#   WB_FLAGS="--write-behind-journal yes --write-behind-fsync always" tools/writebehind-bench.sh
#   LARDER=/tmp/larder-old tools/writebehind-bench.sh   # another build
#
# PostgreSQL is a throwaway cluster (initdb + pg_ctl from Debian's package,
# run as the postgres user when root) on the same machine, with its default
# durability settings (fsync, synchronous_commit and full_page_writes on),
# reached through its Unix socket.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-2000000}
KEYSPACE=${KEYSPACE:-1000000}
PIPELINE=${PIPELINE:-16}
CLIENTS=${CLIENTS:-50}
VALUE_SIZE=${VALUE_SIZE:-32}
PIN=${PIN:-0}
# Extra larder-server flags for the write-behind runs (e.g. the journal).
WB_FLAGS=${WB_FLAGS:-}

cargo build --release --quiet --bin larder-server
target=${CARGO_TARGET_DIR:-target}
server=${LARDER:-$target/release/larder-server}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Pinning: Larder and the load generator share CPU 0, PostgreSQL has CPU 1.
front=()
back=()
if [ "$PIN" = 1 ]; then
    front=(taskset -c 0)
    back=(taskset -c 1)
fi

pg_bin=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -1)
work=$(mktemp -d /tmp/larder-wb-bench.XXXXXX)
as_pg=()
if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$work"
    as_pg=(runuser -u postgres --)
fi
pg_port=$(free_port)
larder_pid=
cleanup() {
    [ -n "$larder_pid" ] && kill -9 "$larder_pid" 2>/dev/null
    [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/data" -A trust -U postgres -E UTF8 >/dev/null
"${back[@]}" "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
    -o "-k $work -p $pg_port -c listen_addresses=''" start >/dev/null
pg_url="host=$work port=$pg_port user=postgres dbname=postgres"
psql_cmd() { PGOPTIONS="-c client_min_messages=warning" psql -h "$work" -p "$pg_port" -U postgres -d postgres -X -q -c "$1" >/dev/null; }

# CPU seconds (user + system) a process, or all of PostgreSQL's, used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; }
pg_cpu() {
    local total=0 pid postmaster
    postmaster=$(head -1 "$work/data/postmaster.pid")
    for pid in "$postmaster" $(pgrep -P "$postmaster"); do
        total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", t + ($14 + $15) / hz }' "/proc/$pid/stat" 2>/dev/null || echo "$total")
    done
    echo "$total"
}

start_larder() {
    local port=$1
    shift
    # A directory of its own: no server replays another's journal.
    local dir="$work/larder-$port"
    mkdir -p "$dir"
    "${front[@]}" "$server" --port "$port" --loglevel warning --dir "$dir" "$@" &
    larder_pid=$!
    for _ in $(seq 100); do
        redis-cli -p "$port" PING >/dev/null 2>&1 && return
        sleep 0.05
    done
    echo "larder-server on $port did not start" >&2
    exit 1
}

stop_larder() {
    # No shutdown flush: the runs are measured already.
    kill -9 "$larder_pid" 2>/dev/null || true
    wait "$larder_pid" 2>/dev/null || true
    larder_pid=
}

set_rps() {
    "${front[@]}" redis-benchmark -p "$1" -q -t set -n "$REQUESTS" -r "$KEYSPACE" -P "$PIPELINE" \
        -c "$CLIENTS" -d "$VALUE_SIZE" 2>/dev/null | tr '\r' '\n' |
        grep 'requests per second' | sed -E 's/.*: ([0-9.]+) requests.*/\1/'
}

field() { redis-cli -p "$1" WRITEBEHIND STATUS | awk -v f="$2" 'prev == f { print; exit } { prev = $0 }'; }

results="$work/results"
: >"$results"
for round in $(seq "$ROUNDS"); do
    port=$(free_port)
    start_larder "$port"
    off_cpu0=$(cpu_of "$larder_pid")
    off=$(set_rps "$port")
    off_cpu=$(awk -v a="$off_cpu0" -v b="$(cpu_of "$larder_pid")" 'BEGIN { printf "%.3f", b - a }')
    stop_larder

    psql_cmd "DROP TABLE IF EXISTS larder_kv"
    port=$(free_port)
    # shellcheck disable=SC2086
    start_larder "$port" --write-behind-url "$pg_url" $WB_FLAGS
    redis-cli -p "$port" SET warmup 1 >/dev/null
    redis-cli -p "$port" WRITEBEHIND FLUSH >/dev/null
    base_rows=$(field "$port" rows_written)
    samples="$work/samples"
    (
        while true; do
            echo "$(date +%s.%N) $(field "$port" rows_written) $(field "$port" oldest_pending_age_ms)"
            sleep 0.2
        done
    ) >"$samples" 2>/dev/null &
    sampler=$!
    larder_cpu0=$(cpu_of "$larder_pid")
    pg_cpu0=$(pg_cpu)
    load_start=$(date +%s.%N)
    on=$(set_rps "$port")
    larder_cpu1=$(cpu_of "$larder_pid")
    pg_cpu1=$(pg_cpu)
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    sampler=
    left=$(field "$port" pending_keys)
    drain_start=$(date +%s.%N)
    redis-cli -p "$port" WRITEBEHIND FLUSH >/dev/null
    drain_end=$(date +%s.%N)
    total_rows=$(($(field "$port" rows_written) - base_rows))
    stop_larder
    read -r during secs lag < <(awk -v base="$base_rows" -v t0="$load_start" '
        { rows = $2; t = $1; if ($3 > lag) lag = $3 }
        END { printf "%d %.3f %d\n", rows - base, t - t0, lag }' "$samples")

    port=$(free_port)
    # shellcheck disable=SC2086
    start_larder "$port" --write-behind-url "$pg_url" $WB_FLAGS \
        --write-behind-delay 3600000 --write-behind-batch-size 1000000
    redis-cli -p "$port" SET warmup 1 >/dev/null
    held_cpu0=$(cpu_of "$larder_pid")
    held=$(set_rps "$port")
    held_cpu=$(awk -v a="$held_cpu0" -v b="$(cpu_of "$larder_pid")" 'BEGIN { printf "%.3f", b - a }')
    stop_larder

    echo "$round $off $on $held $during $secs $lag $left $drain_start $drain_end $total_rows $load_start $larder_cpu0 $larder_cpu1 $pg_cpu0 $pg_cpu1 $off_cpu $held_cpu" >>"$results"
done

awk -v pipeline="$PIPELINE" -v clients="$CLIENTS" -v requests="$REQUESTS" -v keyspace="$KEYSPACE" \
    -v pin="$PIN" -v flags="$WB_FLAGS" '
    function median(a, n,    i, j, t) {
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        n++
        on_ratio[n] = $3 / $2; held_ratio[n] = $4 / $2; rate[n] = $5 / $6
        larder = $14 - $13; pg = $16 - $15
        printf "round %d: SET/s off %.0f, on %.0f (%.2f), flusher held back %.0f (%.2f)\n", $1, $2, $3, $3 / $2, $4, $4 / $2
        printf "         during the load: %d rows reached PostgreSQL in %.2f s = %.0f keys/s, largest lag %d ms\n", $5, $6, $5 / $6, $7
        per_row = $5 > 0 ? pg / $5 * 1e6 : 0
        printf "         CPU during the load: PostgreSQL %.2f s (%.1f us per row); Larder %.2f s, against %.2f s off and %.2f s held back\n", pg, per_row, larder, $17, $18
        printf "         left at the end %d keys, drained in %.2f s; %d rows in all, %.0f keys/s from load start to drained\n", $8, $10 - $9, $11, $11 / ($10 - $12)
    }
    END {
        pinned = pin == 1 ? ", pinned (PostgreSQL on CPU 1, the rest on CPU 0)" : ""
        extra = flags != "" ? ", flags " flags : ""
        printf "SET %d requests over %d keys (redis-benchmark -P %s -c %s)%s%s, %d rounds, medians:\n", requests, keyspace, pipeline, clients, pinned, extra, n
        printf "  write-behind on / off             %.2f\n", median(on_ratio, n)
        printf "  flusher held back / off           %.2f\n", median(held_ratio, n)
        printf "  keys/s reaching PostgreSQL        %.0f\n", median(rate, n)
    }' "$results"
