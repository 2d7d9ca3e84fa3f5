#!/usr/bin/env bash
# Write-behind throughput, from one run on this machine:
#
#   1. SET throughput of Larder with write-behind off, then on (the same
#      redis-benchmark command against two fresh release servers);
#   2. while the write-behind server takes the load, how many distinct keys
#      per second reach PostgreSQL (rows_written over time) and how far
#      behind it runs (oldest_pending_age_ms);
#   3. how long the backlog left at the end takes to drain (WRITEBEHIND FLUSH).
#
#   tools/writebehind-bench.sh                    # defaults below
#   REQUESTS=2000000 KEYSPACE=2000000 tools/writebehind-bench.sh
#
# PostgreSQL is a throwaway cluster (initdb + pg_ctl from Debian's package,
# run as the postgres user when root) on the same machine, with its default
# durability settings (fsync and synchronous_commit on).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-2000000}
KEYSPACE=${KEYSPACE:-1000000}
PIPELINE=${PIPELINE:-16}
CLIENTS=${CLIENTS:-50}
VALUE_SIZE=${VALUE_SIZE:-32}
# Extra larder-server flags for the write-behind run (e.g. the journal).
WB_FLAGS=${WB_FLAGS:-}

cargo build --release --quiet --bin larder-server
target=${CARGO_TARGET_DIR:-target}
server="$target/release/larder-server"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pg_bin=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -1)
work=$(mktemp -d /tmp/larder-wb-bench.XXXXXX)
as_pg=()
if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$work"
    as_pg=(runuser -u postgres --)
fi
pg_port=$(free_port)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/data" -A trust -U postgres -E UTF8 >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
    -o "-k $work -p $pg_port -c listen_addresses=127.0.0.1" start >/dev/null

start_larder() {
    local port=$1
    shift
    "$server" --port "$port" --loglevel warning "$@" &
    pids+=($!)
    for _ in $(seq 100); do
        redis-cli -p "$port" PING >/dev/null 2>&1 && return
        sleep 0.05
    done
    echo "larder-server on $port did not start" >&2
    exit 1
}

set_rps() {
    redis-benchmark -p "$1" -q -t set -n "$REQUESTS" -r "$KEYSPACE" -P "$PIPELINE" \
        -c "$CLIENTS" -d "$VALUE_SIZE" 2>/dev/null | tr '\r' '\n' |
        grep 'requests per second' | sed -E 's/.*: ([0-9.]+) requests.*/\1/'
}

field() { redis-cli -p "$1" WRITEBEHIND STATUS | awk -v f="$2" 'prev == f { print; exit } { prev = $0 }'; }

off_port=$(free_port)
start_larder "$off_port"
off=$(set_rps "$off_port")

on_port=$(free_port)
# shellcheck disable=SC2086
start_larder "$on_port" --write-behind-url "host=127.0.0.1 port=$pg_port user=postgres dbname=postgres" $WB_FLAGS
redis-cli -p "$on_port" SET warmup 1 >/dev/null
redis-cli -p "$on_port" WRITEBEHIND FLUSH >/dev/null
base_rows=$(field "$on_port" rows_written)

# Sample rows_written and the lag every 200 ms while the load runs.
samples="$work/samples"
(
    while true; do
        echo "$(date +%s.%N) $(field "$on_port" rows_written) $(field "$on_port" oldest_pending_age_ms)"
        sleep 0.2
    done
) >"$samples" 2>/dev/null &
sampler=$!
pids+=("$sampler")
load_start=$(date +%s.%N)
on=$(set_rps "$on_port")
load_end=$(date +%s.%N)
kill "$sampler" 2>/dev/null || true
left=$(field "$on_port" pending_keys)
drain_start=$(date +%s.%N)
redis-cli -p "$on_port" WRITEBEHIND FLUSH >/dev/null
drain_end=$(date +%s.%N)
total_rows=$(( $(field "$on_port" rows_written) - base_rows ))
distinct=$(redis-cli -p "$on_port" DBSIZE)

awk -v off="$off" -v on="$on" -v base="$base_rows" -v t0="$load_start" -v t1="$load_end" \
    -v left="$left" -v d0="$drain_start" -v d1="$drain_end" -v total="$total_rows" \
    -v pipeline="$PIPELINE" -v clients="$CLIENTS" -v distinct="$distinct" -v requests="$REQUESTS" -v keyspace="$KEYSPACE" '
    { rows[NR] = $2; times[NR] = $1; if ($3 > lag) lag = $3 }
    END {
        during = rows[NR] - base
        secs = times[NR] - t0
        printf "SET %d requests over %d keys (redis-benchmark -P %s -c %s)\n", requests, keyspace, pipeline, clients
        printf "  write-behind off      %12.0f SET/s\n", off
        printf "  write-behind on       %12.0f SET/s  (%.2f of off)\n", on, on / off
        printf "rows reaching PostgreSQL during the load: %d in %.2f s = %.0f keys/s\n", during, secs, during / secs
        printf "largest lag during the load (oldest pending change): %d ms\n", lag
        printf "left pending when the load ended: %d keys, drained in %.2f s\n", left, d1 - d0
        printf "total rows written: %d for %d distinct keys; overall %.0f keys/s from load start to drained\n", total, distinct, total / (d1 - t0)
    }' "$samples"
