# Shell functions the Redis comparisons share; source it from a tools/
# script: `. "$(dirname "$0")/servers.sh"`.

# CPU seconds (user + system, every thread) a process used so far (the
# fields counted after the command name, which may hold spaces).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.3f", ($12 + $13) / hz }' "/proc/$1/stat"; }

# Waits until a server answers PING on port $1.
wait_for() {
    for _ in $(seq 200); do
        timeout 5 redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "server on port $1 did not start" >&2
    exit 1
}

# Writes `count` keys key:000000000000 .. (as redis-benchmark's
# __rand_int__ makes them) with `size`-byte values: fill port size count.
fill() {
    local port=$1 size=$2 count=$3
    awk -v n="$count" -v size="$size" 'BEGIN {
        value = sprintf("%" size "s", ""); gsub(/ /, "x", value)
        for (i = 0; i < n; i++) {
            key = sprintf("key:%012d", i)
            printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(key), key, size, value
        }
    }' | redis-cli -p "$port" --pipe >/dev/null
}
