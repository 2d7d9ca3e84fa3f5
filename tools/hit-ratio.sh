#!/usr/bin/env bash
# Hit ratios of Larder's eviction policies and Redis's, in one run, at the
# same maxmemory: the cache-aside loop of examples/hit_ratio.rs (Zipf GETs
# over 1,000,000 keys, SET on miss, 100-byte values), for Zipf 0.99 and 0.8,
# each plain and with a one-time scan of 1,000,000 unrelated keys halfway.
#
#   tools/hit-ratio.sh                      # defaults below
#   REQUESTS=1000000 MAXMEMORY=30000000 tools/hit-ratio.sh
#
# Needs redis-server (7.0.15 here) on PATH. Prints the raw lines, then
# markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-2000000}
KEYS=${KEYS:-1000000}
SCAN_KEYS=${SCAN_KEYS:-1000000}
WINDOW=${WINDOW:-100000}
# About 10% of the keyspace: ~100,000 keys in Larder, ~150,000 in Redis
# (Redis spends fewer bytes per key; see "keys held").
MAXMEMORY=${MAXMEMORY:-30000000}
# Also Redis at the memory where it holds about as many keys as Larder
# (policy against policy, leaving per-key footprint aside).
REDIS_EQUAL_KEYS_MAXMEMORY=${REDIS_EQUAL_KEYS_MAXMEMORY:-20500000}

cargo build --release --quiet --bin larder-server --example hit_ratio
target=${CARGO_TARGET_DIR:-target}
tool="$target/release/examples/hit_ratio"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
larder_port=$(free_port)
redis-server --port "$redis_port" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
redis_pid=$!
"$target/release/larder-server" --port "$larder_port" >/dev/null 2>&1 &
larder_pid=$!
trap 'kill $redis_pid $larder_pid 2>/dev/null || true' EXIT
for port in "$redis_port" "$larder_port"; do
  for _ in $(seq 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
done

results=$(mktemp)
for zipf in 0.99 0.8; do
  for scan in "" "--scan"; do
    for run in "larder allkeys-s3fifo $larder_port" "larder allkeys-lru $larder_port" \
               "larder allkeys-lfu $larder_port" "redis allkeys-lru $redis_port" \
               "redis allkeys-lfu $redis_port" \
               "redis allkeys-lru $redis_port $REDIS_EQUAL_KEYS_MAXMEMORY" \
               "redis allkeys-lfu $redis_port $REDIS_EQUAL_KEYS_MAXMEMORY"; do
      set -- $run
      memory=${4:-$MAXMEMORY}
      label="$1 $2"
      [ "$memory" = "$MAXMEMORY" ] || label="$label @ $memory"
      "$tool" --port "$3" --policy "$2" --label "$label" --maxmemory "$memory" \
        --zipf "$zipf" $scan --requests "$REQUESTS" --keys "$KEYS" \
        --scan-keys "$SCAN_KEYS" --window "$WINDOW" | tee -a "$results" | grep -v '^RESULT'
    done
  done
done

echo
echo "maxmemory $MAXMEMORY, $REQUESTS GETs per workload over $KEYS keys, scan of $SCAN_KEYS keys"
echo
python3 - "$results" <<'PY'
import sys
rows = {}
order = []
for line in open(sys.argv[1]):
    if not line.startswith("RESULT"):
        continue
    _, label, zipf, kind, overall, before, after, windows, held = line.rstrip("\n").split("\t")
    if label not in rows:
        rows[label] = {}
        order.append(label)
    rows[label][(zipf, kind)] = (overall, after, windows.split(","), held)
cols = [("0.99", "plain"), ("0.99", "scan"), ("0.8", "plain"), ("0.8", "scan")]
print("Overall hit ratio (keys held at the end of Zipf 0.99 plain):")
print()
print("| server / policy | " + " | ".join(f"Zipf {z} {k}" for z, k in cols) + " | keys held |")
print("|---|" + "---|" * (len(cols) + 1))
for label in order:
    r = rows[label]
    cells = [r[c][0] if c in r else "-" for c in cols]
    held = r.get(cols[0], ("", "", [], "?"))[3]
    print(f"| {label} | " + " | ".join(cells) + f" | {held} |")
print()
print("After the scan: hit ratio in the 1st, 2nd, 3rd window of GETs after it, and over the whole second half:")
print()
print("| server / policy | Zipf 0.99: w1 / w2 / w3 / 2nd half | Zipf 0.8: w1 / w2 / w3 / 2nd half |")
print("|---|---|---|")
for label in order:
    r = rows[label]
    cells = []
    for z in ("0.99", "0.8"):
        if (z, "scan") in r:
            _, after, w, _ = r[(z, "scan")]
            cells.append(" / ".join(w[:3] + [after]))
        else:
            cells.append("-")
    print(f"| {label} | " + " | ".join(cells) + " |")
PY
rm -f "$results"
