#!/usr/bin/env bash
# A SET flood far beyond maxmemory (examples/flood.rs), against Larder's
# release build (allkeys-lru, allkeys-s3fifo) and redis-server 7.0.15
# (allkeys-lru) in one run, each on a fresh server: peak RSS against
# maxmemory, and SET latency percentiles of a probe client while the server
# evicts.
#
#   tools/flood.sh                               # defaults below
#   MAXMEMORY=100mb TOTAL_MB=1000 CLIENTS=2 tools/flood.sh
#
# Needs redis-server on PATH. Prints each run, then a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

MAXMEMORY=${MAXMEMORY:-100mb}
TOTAL_MB=${TOTAL_MB:-1000}
CLIENTS=${CLIENTS:-2}
PIPELINE=${PIPELINE:-64}
SIZES=${SIZES:-100,1000,10000}
SETTLE_MS=${SETTLE_MS:-2000}
RUNS=${RUNS:-"larder:allkeys-lru larder:allkeys-s3fifo redis:allkeys-lru"}

cargo build --release --quiet --bin larder-server --example flood
target=${CARGO_TARGET_DIR:-target}
tool="$target/release/examples/flood"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
results=$(mktemp)
server_pid=
trap '[ -n "$server_pid" ] && kill $server_pid 2>/dev/null; rm -f "$results"' EXIT
for run in $RUNS; do
  server=${run%%:*}
  policy=${run#*:}
  port=$(free_port)
  if [ "$server" = redis ]; then
    redis-server --port "$port" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
  else
    "$target/release/larder-server" --port "$port" >/dev/null 2>&1 &
  fi
  server_pid=$!
  for _ in $(seq 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
  "$tool" --port "$port" --pid "$server_pid" --label "$server $policy" --policy "$policy" \
    --maxmemory "$MAXMEMORY" --total-mb "$TOTAL_MB" --clients "$CLIENTS" \
    --pipeline "$PIPELINE" --sizes "$SIZES" --settle-ms "$SETTLE_MS" | tee -a "$results" | grep -v '^RESULT'
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
  server_pid=
done

echo
echo "maxmemory $MAXMEMORY, $TOTAL_MB MiB of SETs ($CLIENTS clients, pipeline $PIPELINE, values $SIZES bytes), $(nproc) cores"
echo
python3 - "$results" <<'PY'
import sys
mib = lambda n: f"{int(n) / 1048576:.1f}"
print("| server / policy | baseline RSS | peak RSS | RSS after | peak used_memory | RSS - 1.1 x maxmemory | SET p50 / p99 / p99.9 / max (us) | PING max (us) | evicted |")
print("|---|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    if not line.startswith("RESULT"):
        continue
    _, label, maxmem, base, peak, final, used, p50, p99, p999, mx, ping, evicted = line.rstrip("\n").split("\t")
    over = (int(peak) - 1.1 * int(maxmem)) / 1048576
    print(f"| {label} | {mib(base)} MiB | {mib(peak)} MiB | {mib(final)} MiB | {mib(used)} MiB | {over:.1f} MiB | {p50} / {p99} / {p999} / {mx} | {ping} | {evicted} |")
PY
