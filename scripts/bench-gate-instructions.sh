#!/usr/bin/env bash
# Gate overhead in CPU instructions per announce, counted by callgrind:
# the same reference-tracker binary with the coordinator idle
# ([maintenance] enabled, no window) and without it (no [maintenance]
# table: AnnounceGate::always_open()). Instruction counts do not depend on
# what else the machine is doing, unlike throughput on a shared host.
#
# For each configuration the tracker runs under callgrind twice, serving 0
# and N announces over keep-alive HTTP (or, with `udp`, N UDP announces
# sent one at a time by `bench udp-announce`); (I(N) - I(0)) / N is the
# cost of one announce, start-up and shutdown cancelled out.
#
# Usage: scripts/bench-gate-instructions.sh [N] [http|udp]   (default 2000 http)
# Needs: valgrind, curl, a release build (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
proto=${2:-http}
case "$proto" in http|udp) ;; *) echo "protocol must be http or udp, not $proto" >&2; exit 2 ;; esac
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed: apt-get install -y curl" >&2; exit 1; }
cargo build --release --locked -q -p reference-tracker
bin=$PWD/target/release/reference-tracker
if [ "$proto" = udp ]; then
    cargo build --release --locked -q -p maintenance-e2e --bin bench
fi
bench=$PWD/target/release/bench
work=$(mktemp -d "${TMPDIR:-/tmp}/gate-instr.XXXXXX")
trap '[ -n "${GATE_BENCH_KEEP:-}" ] || rm -rf "$work"' EXIT
port=${GATE_BENCH_PORT:-17170}

write_config() { # dir with_maintenance
    local dir=$1
    mkdir -p "$dir"
    cat >"$dir/tracker.toml" <<EOF
[core.database]
driver = "sqlite3"
path = "$dir/tracker.db"
[[http_trackers]]
bind_address = "127.0.0.1:$port"
[health_check_api]
bind_address = "127.0.0.1:$((port + 1))"
EOF
    if [ "$proto" = udp ]; then
        printf '[[udp_trackers]]\nbind_address = "127.0.0.1:%s"\n' $((port + 3)) >>"$dir/tracker.toml"
    fi
    if [ "$2" = yes ]; then
        cat >>"$dir/tracker.toml" <<EOF
[maintenance]
enabled = true
window = "$(date -u -d '+12 hours' +%H:%M)-$(date -u -d '+12 hours 5 minutes' +%H:%M)"
token = "instruction-count-bench-token"
bind = "127.0.0.1:$((port + 2))"
EOF
    fi
}

# Prints the instruction count of one tracker run serving `count` announces.
run_one() { # dir count
    local dir=$1 count=$2 pid urls i
    rm -f "$dir"/callgrind.out* "$dir/tracker.db"*
    if curl -fs "http://127.0.0.1:$((port + 1))/health_check" >/dev/null 2>&1; then
        echo "port $((port + 1)) already answers: stop that process or set GATE_BENCH_PORT" >&2
        exit 1
    fi
    valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
        "$bin" --config "$dir/tracker.toml" >"$dir/tracker.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$((port + 1))/health_check" >/dev/null 2>&1 && break
        sleep 0.1
    done
    if [ "$count" -gt 0 ] && [ "$proto" = udp ]; then
        "$bench" udp-announce "127.0.0.1:$((port + 3))" "$count" >/dev/null \
            || { echo "UDP announces failed; see $dir/tracker.log" >&2; exit 1; }
    elif [ "$count" -gt 0 ]; then
        urls="$dir/urls"
        : >"$urls"
        for i in $(seq 1 "$count"); do
            printf 'url = "http://127.0.0.1:%s/announce?info_hash=%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%%02x&peer_id=-GI0001-%012d&port=%d&uploaded=0&downloaded=0&left=0&compact=1"\noutput = "/dev/null"\n' \
                "$port" $((i % 64)) $((i % 200)) $((6881 + i % 200)) >>"$urls"
        done
        curl -fs --config "$urls" || { echo "announces failed; see $dir/tracker.log" >&2; exit 1; }
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    [ -s "$dir/callgrind.out" ] || { echo "callgrind wrote nothing; see $dir/tracker.log" >&2; exit 1; }
    callgrind_annotate "$dir/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}

printf '# callgrind instructions, %s %s announces per run, reference-tracker release build\n' "$n" "$proto"
declare -A per
for cfg in off idle; do
    dir="$work/$cfg"
    write_config "$dir" "$([ "$cfg" = idle ] && echo yes || echo no)"
    zero=$(run_one "$dir" 0)
    full=$(run_one "$dir" "$n")
    per[$cfg]=$(awk -v a="$full" -v b="$zero" -v n="$n" 'BEGIN { printf "%.0f", (a - b) / n }')
    printf '%-5s start+stop %s, with %s announces %s => %s instructions per announce\n' \
        "$cfg" "$zero" "$n" "$full" "${per[$cfg]}"
done
awk -v p="$proto" -v i="${per[idle]}" -v o="${per[off]}" 'BEGIN {
    printf "RESULT gate-instructions (%s): idle %d, off %d instructions per announce; throughput ratio off/idle = %.4f (goal >= 0.98: %s)\n",
        p, i, o, o / i, (o / i >= 0.98) ? "met" : "NOT met"
}'
