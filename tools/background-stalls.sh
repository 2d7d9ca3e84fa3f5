#!/usr/bin/env bash
# Do other clients stall while the server evicts or flushes write-behind
# changes? Runs examples/background_stalls.rs, each scenario on a fresh
# server (release build):
#
#   eviction     Larder (allkeys-lru), then redis-server, ROUNDS times
#   writebehind  Larder with write-behind to a throwaway PostgreSQL
#                cluster, its flusher held back while the keys load (at
#                most 990,000: the batch size caps the backlog)
#
#   tools/background-stalls.sh
#   KEYS=1000000 ROUNDS=2 ONLY=eviction tools/background-stalls.sh
#   PIN=1 tools/background-stalls.sh    # PostgreSQL on CPU 1, the servers
#                                       # and the probe on CPU 0
#   LARDER=/tmp/larder-old tools/background-stalls.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
ROUNDS=${ROUNDS:-2}
ONLY=${ONLY:-eviction,writebehind}
PIN=${PIN:-0}
front=()
back=()
if [ "$PIN" = 1 ]; then
    front=(taskset -c 0)
    back=(taskset -c 1)
fi

cargo build --release --quiet --bin larder-server --example background_stalls
target=${CARGO_TARGET_DIR:-target}
larder=${LARDER:-$target/release/larder-server}
probe="$target/release/examples/background_stalls"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

server_pid=
work=
as_pg=()
pg_bin=
cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null
    if [ -n "$work" ]; then
        "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# Starts "$@" on a free port and waits until it answers; sets port.
start() {
    port=$(free_port)
    "${front[@]}" "$@" --port "$port" >/dev/null 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && return; sleep 0.1; done
    echo "$1 did not start" >&2
    exit 1
}
stop() {
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}
run() {
    echo "== $1, $KEYS keys"
    "${front[@]}" "$probe" --port "$port" --keys "$KEYS" --scenario "$2"
}

if [[ ",$ONLY," == *,eviction,* ]]; then
    for round in $(seq "$ROUNDS"); do
        start "$larder"
        run "round $round: Larder, eviction" eviction
        stop
        start redis-server --save '' --appendonly no
        run "round $round: Redis $(redis-server --version | grep -o 'v=[0-9.]*'), eviction" eviction
        stop
    done
fi

if [[ ",$ONLY," == *,writebehind,* ]]; then
    pg_bin=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -1)
    work=$(mktemp -d /tmp/larder-stalls.XXXXXX)
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$work"
        as_pg=(runuser -u postgres --)
    fi
    pg_port=$(free_port)
    "${as_pg[@]}" "$pg_bin/initdb" -D "$work/data" -A trust -U postgres -E UTF8 >/dev/null
    "${back[@]}" "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
        -o "-k $work -p $pg_port -c listen_addresses=''" start >/dev/null
    for round in $(seq "$ROUNDS"); do
        psql -h "$work" -p "$pg_port" -U postgres -d postgres -X -q \
            -c "DROP TABLE IF EXISTS larder_kv" >/dev/null 2>&1
        # The flusher held back until WRITEBEHIND FLUSH (fewer pending
        # keys than the batch size, which would start it).
        start "$larder" --write-behind-url "host=$work port=$pg_port user=postgres dbname=postgres" \
            --write-behind-delay 3600000 --write-behind-batch-size 1000000
        KEYS=$((KEYS < 990000 ? KEYS : 990000)) run "round $round: Larder, write-behind flush" writebehind
        stop
    done
fi
