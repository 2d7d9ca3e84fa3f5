#!/usr/bin/env bash
# How long other clients wait while one client runs a long command
# (examples/stall_probe.rs): KEYS over KEYS keys, FLUSHALL SYNC/ASYNC, DEL
# and UNLINK of ELEMENTS-element sets, lists, hashes and sorted sets, and
# SWAPDB of two big databases, each while a probe connection PINGs.
#
#   tools/stall-probe.sh                          # Larder's release build
#   SERVER=/path/to/larder-server tools/stall-probe.sh
#   SERVER=redis-server tools/stall-probe.sh      # the same against Redis
#   KEYS=2000000 ELEMENTS=5000000 ONLY=keys,swapdb tools/stall-probe.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-2000000}
ELEMENTS=${ELEMENTS:-5000000}
ONLY=${ONLY:-}

cargo build --release --quiet --bin larder-server --example stall_probe
target=${CARGO_TARGET_DIR:-target}
SERVER=${SERVER:-$target/release/larder-server}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ "$(basename "$SERVER")" = redis-server ]; then
  "$SERVER" --port "$port" --save '' --appendonly no --daemonize no >/dev/null 2>&1 &
else
  "$SERVER" --port "$port" >/dev/null 2>&1 &
fi
server_pid=$!
trap 'kill $server_pid 2>/dev/null' EXIT
for _ in $(seq 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
only=()
[ -n "$ONLY" ] && only=(--only "$ONLY")
"$target/release/examples/stall_probe" --port "$port" --label "$(basename "$SERVER")" \
  --keys "$KEYS" --elements "$ELEMENTS" "${only[@]}" | grep -v '^RESULT'
