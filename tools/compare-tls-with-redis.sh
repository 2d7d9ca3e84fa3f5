#!/usr/bin/env bash
# TLS GET/SET throughput: Larder against redis-server with the same
# certificates (EC P-256, client certificate presented), each server pinned
# to CPU 0 and redis-benchmark to CPU 1, rounds interleaved (odd rounds
# Larder first). Prints every run; take the medians per row.
#
#   tools/compare-tls-with-redis.sh            # 3 rounds, release build of the tree
#   ROUNDS=5 LARDER=/path/to/larder-server tools/compare-tls-with-redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
LARDER=${LARDER:-}
if [ -z "$LARDER" ]; then
    cargo build --release --quiet
    LARDER=${CARGO_TARGET_DIR:-target}/release/larder-server
fi
work=$(mktemp -d)
trap 'kill $larder_pid $redis_pid 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
    -out ca.crt -days 2 -subj "/CN=Larder Bench CA" 2>/dev/null
for name in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $name.key \
        -out $name.csr -subj "/CN=$name" 2>/dev/null
    printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n" > $name.ext
    openssl x509 -req -in $name.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -out $name.crt -extfile $name.ext 2>/dev/null
done
tls_files=(--tls-cert-file server.crt --tls-key-file server.key --tls-ca-cert-file ca.crt)
taskset -c 0 "$LARDER" --port 7480 --tls-port 7481 "${tls_files[@]}" > larder.log 2>&1 &
larder_pid=$!
taskset -c 0 redis-server --port 7482 --tls-port 7483 "${tls_files[@]}" --save "" \
    --appendonly no > redis.log 2>&1 &
redis_pid=$!
sleep 2

bench() { # name port pipeline requests
    timeout 300 taskset -c 1 redis-benchmark --tls --cacert ca.crt --cert client.crt \
        --key client.key -p "$2" -t get,set -n "$4" -c 50 -P "$3" -d 32 -r 100000 \
        --threads 1 -q 2>&1 | tr '\r' '\n' | grep "requests per second" | sed "s/^/$1 -P $3 /"
}
for round in $(seq "$ROUNDS"); do
    order=(larder:7481 redis:7483)
    [ $((round % 2)) -eq 0 ] && order=(redis:7483 larder:7481)
    for server in "${order[@]}"; do
        bench "${server%%:*}" "${server##*:}" 16 300000
        bench "${server%%:*}" "${server##*:}" 1 100000
    done
done
