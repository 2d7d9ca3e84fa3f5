#!/bin/sh
# Runs every target in turn, one job at a time, for $1 seconds each
# (default 600). libFuzzer's -jobs mode logs to fuzz-0.log; each target's log
# is kept as fuzz-<target>.log. Stops at the first target that finds a crash.
set -e
cd "$(dirname "$0")"
secs="${1:-600}"
export RUSTC_BOOTSTRAP=1
cargo fuzz build
for target in decode_request execute_commands encode_reply config_parse glob_match journal_replay hll_decode rdb_object; do
    dict=""
    if [ "$target" = decode_request ]; then
        dict="-dict=dicts/resp.dict"
    fi
    cargo fuzz run "$target" -- -max_total_time="$secs" -jobs=1 $dict
    mv fuzz-0.log "fuzz-$target.log"
done
