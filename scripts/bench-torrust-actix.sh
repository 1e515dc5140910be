#!/usr/bin/env bash
# Benchmarks of the torrust-actix embedding beside torrust-actix's own
# binary, same version, same build, side by side in one run:
#
#   gate    callgrind instructions per HTTP announce: torrust-actix-maintained
#           with the coordinator idle against upstream's torrust-actix
#           (persistence off in both, so only the request path counts).
#   pause   on a SQLite file of SIZE MiB in torrust-actix's schema (default
#           1024): the refusal (policy reject) and the write pause
#           (defer-writes) of a window backed up by the unchanged
#           maintenance-sidecar, against stopping upstream's binary, copying
#           the file and starting it again until it answers an announce.
#
# The upstream binary is torrust-actix's own src/main.rs, built from the
# published crate (copied out of the cargo registry into the target folder,
# never into this repository) with the same utoipa-swagger-ui "vendored"
# line and the embedding's Cargo.lock, in the embedding's persistent target
# folder. Both are debug builds (the profile the tests already built): the
# ratio compares like with like, the absolute counts are not release ones.
#
# Usage: scripts/bench-torrust-actix.sh [gate|pause|all] [N announces (2000)] [SIZE MiB (1024)]
# Needs: valgrind, curl, sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
n=${2:-2000}
size_mib=${3:-1024}
for tool in valgrind curl sqlite3; do
    command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install -y $tool" >&2; exit 1; }
done
version=$(sed -n 's/^torrust-actix = "=\(.*\)"$/\1/p' embeddings/torrust-actix/Cargo.toml)
target=${TORRUST_ACTIX_TARGET_DIR:-/var/tmp/torrust-actix-$version-target}
token=bench-token-0123456789abcdef
port=${TORRUST_BENCH_PORT:-17270}

(cd embeddings/torrust-actix && CARGO_TARGET_DIR=$target cargo build --locked -q --bins)
cargo build --locked -q -p maintenance-sidecar --bins
ours=$target/debug/torrust-actix-maintained
sidecar=$PWD/target/debug/maintenance-sidecar

# torrust-actix's own binary, built from the published crate as is.
(cd embeddings/torrust-actix && cargo fetch --locked -q)
src=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src -maxdepth 2 -name "torrust-actix-$version" -type d | head -1)
up=$target/upstream-torrust-actix-$version
if [ ! -f "$up/Cargo.toml" ]; then
    rm -rf "$up"
    cp -r "$src" "$up"
    # The same offline-build line as the embedding's Cargo.toml.
    sed -i '/^\[dependencies.utoipa-swagger-ui\]/,/^features/ s/^features = \["actix-web"\]/features = ["actix-web", "vendored"]/' "$up/Cargo.toml"
    grep -q '"vendored"' "$up/Cargo.toml" || { echo "could not add the vendored feature to $up/Cargo.toml" >&2; exit 1; }
    printf '\n[workspace]\n' >>"$up/Cargo.toml"
    cp embeddings/torrust-actix/Cargo.lock "$up/Cargo.lock"
fi
(cd "$up" && CARGO_TARGET_DIR=$target cargo build -q --bin torrust-actix)
upstream=$target/debug/torrust-actix

work=$(mktemp -d "${TMPDIR:-/var/tmp}/torrust-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    [ -n "${TORRUST_BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# config.toml for one binary: DSN, persistence, interval, policy.
write_config() { # dir persistent policy
    local dir=$1 persistent=$2 policy=$3
    mkdir -p "$dir/ready"
    cat >"$dir/config.toml" <<EOF
log_level = "info"
log_console_interval = 3600
api_server = []
udp_server = []

[tracker_config]
api_key = "Bench-Api-Key-0123456789-abcdefghijk"
request_interval = 1800
request_interval_minimum = 1800
peers_timeout = 2700
peers_cleanup_interval = 900
peers_cleanup_threads = 1
total_downloads = 0

[database]
engine = "sqlite3"
path = "sqlite://$dir/torrust.db"
persistent = $persistent
persistent_interval = 60
insert_vacant = true
remove_action = false
update_completed = true
update_peers = false

[[http_server]]
enabled = true
bind_address = "127.0.0.1:$port"
real_ip = "X-Real-IP"
keep_alive = 60
request_timeout = 15
disconnect_timeout = 15
max_connections = 1000
threads = 1
ssl = false
ssl_key = ""
ssl_cert = ""
tls_connection_rate = 256

[maintenance]
enabled = true
window = "$(date -u -d '+12 hours' +%H:%M)-$(date -u -d '+12 hours 5 minutes' +%H:%M)"
announce_policy = "$policy"
ready_file = "$dir/ready/ready.json"
bind = "127.0.0.1:$((port + 1))"
token = "$token"
EOF
}

announce_url() { # n event
    printf 'http://127.0.0.1:%s/announce?info_hash=%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%aa%%%02x&peer_id=-BT0001-%012d&port=%d&uploaded=0&downloaded=0&left=0&compact=1%s' \
        "$port" $(($1 % 64)) "$1" $((6881 + $1 % 200)) "${2:+&event=$2}"
}

wait_serving() { # what
    for _ in $(seq 1 600); do
        curl -fs "$(announce_url 0)" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$1 did not answer an announce" >&2
    exit 1
}

# ---------------------------------------------------------------- gate
# Instructions of one run serving `count` announces under callgrind.
run_counted() { # binary dir count
    local bin=$1 dir=$2 count=$3 pid i
    rm -f "$dir"/callgrind.out*
    (cd "$dir" && exec valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
        "$bin" >"$dir/run.log" 2>&1) &
    pid=$!
    wait_serving "$bin"
    if [ "$count" -gt 0 ]; then
        : >"$dir/urls"
        for i in $(seq 1 "$count"); do
            printf 'url = "%s"\noutput = "/dev/null"\n' "$(announce_url "$i")" >>"$dir/urls"
        done
        curl -fs --config "$dir/urls" || { echo "announces failed; see $dir/run.log" >&2; exit 1; }
    fi
    kill -INT "$pid"
    wait "$pid" || true
    callgrind_annotate "$dir/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !d { gsub(",", "", $1); print $1; d = 1 }'
}

bench_gate() {
    printf '# callgrind instructions, %s HTTP announces per run, debug builds of torrust-actix %s\n' "$n" "$version"
    declare -A per
    for who in upstream embedded; do
        local dir=$work/gate-$who bin
        write_config "$dir" false reject
        bin=$([ "$who" = upstream ] && echo "$upstream" || echo "$ours")
        # The warm-up request of wait_serving is in both runs, so it cancels out.
        local zero full
        zero=$(run_counted "$bin" "$dir" 0)
        full=$(run_counted "$bin" "$dir" "$n")
        per[$who]=$(awk -v a="$full" -v b="$zero" -v n="$n" 'BEGIN { printf "%.0f", (a - b) / n }')
        printf '%-9s start+stop %s, with %s announces %s => %s instructions per announce\n' \
            "$who" "$zero" "$n" "$full" "${per[$who]}"
    done
    awk -v e="${per[embedded]}" -v u="${per[upstream]}" 'BEGIN {
        printf "RESULT torrust-actix gate-instructions: embedded (coordinator idle) %d, upstream %d instructions per announce; throughput ratio upstream/embedded = %.4f (goal >= 0.98: %s)\n",
            e, u, u / e, (u / e >= 0.98) ? "met" : "NOT met"
    }'
}

# ---------------------------------------------------------------- pause
# A WAL-mode SQLite file in torrust-actix's schema: 10000 torrents and
# SIZE MiB of padding (torrust-actix loads only its own tables).
make_db() { # path
    sqlite3 "$1" <<EOF >/dev/null
PRAGMA journal_mode=WAL;
CREATE TABLE torrents (infohash BLOB PRIMARY KEY NOT NULL, seeds INTEGER DEFAULT 0, peers INTEGER DEFAULT 0, completed INTEGER DEFAULT 0);
CREATE TABLE padding (b BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
  INSERT INTO torrents SELECT randomblob(20), 0, 0, i FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $((size_mib * 16)))
  INSERT INTO padding SELECT randomblob(65536) FROM n;
PRAGMA wal_checkpoint(TRUNCATE);
EOF
}

status_field() { # python expression on the status JSON
    curl -fs "http://127.0.0.1:$((port + 1))/maintenance/v1/status" |
        python3 -c "import json, sys; s = json.load(sys.stdin); print($1)"
}

# One window of `policy` on the embedded tracker, backed up by the sidecar:
# prints quiesced_secs (tracker side: refusal or write pause) and the
# refusal the client saw (first refused to first answered announce).
embedded_window() { # policy
    local policy=$1 dir=$work/pause-$1 pid spid id i t0 first_refused="" first_back="" now
    write_config "$dir" true "$policy"
    cp --reflink=auto "$work/source.db" "$dir/torrust.db"
    # A tracker's file is not a gigabyte of dirty pages: write the copy
    # back first, or the quiesce's checkpoint (which fsyncs the file) pays
    # for the copy.
    sync "$dir/torrust.db"
    (cd "$dir" && exec "$ours" >"$dir/run.log" 2>&1) &
    pid=$!; pids+=("$pid")
    wait_serving "torrust-actix-maintained"
    MAINTENANCE_URL=http://127.0.0.1:$((port + 1)) MAINTENANCE_TOKEN=$token \
        MAINTENANCE_READY_FILE=$dir/ready/ready.json BACKUP_DIR=$dir/backups \
        BACKUP_SQLITE_ENABLED=true SQLITE_DATABASE_PATH=$dir/torrust.db BACKUP_MYSQL_ENABLED=false \
        "$sidecar" run >"$dir/sidecar.log" 2>&1 &
    spid=$!; pids+=("$spid")
    sleep 2
    id=$(curl -fs -X POST -H "Authorization: Bearer $token" -H 'content-type: application/json' \
        -d '{"duration_secs": 300}' "http://127.0.0.1:$((port + 1))/maintenance/v1/windows" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["window_id"])')
    t0=$(date +%s.%N)
    for i in $(seq 1 20000); do
        now=$(date +%s.%N)
        if curl -fs "$(announce_url "$i" completed)" | grep -q 'failure reason'; then
            [ -n "$first_refused" ] || first_refused=$now
        else
            [ -z "$first_refused" ] || first_back=$now
            # A window quicker than the first request leaves nothing to see.
            if [ "$(status_field 's["state"]')" = idle ]; then break; fi
        fi
        [ -z "$first_back" ] || break
        awk -v a="$now" -v b="$t0" 'BEGIN { exit !(a - b > 120) }' && break
    done
    for _ in $(seq 1 600); do
        status_field "[o for o in s['last_outcomes'] if o['window_id'] == '$id']" | grep -q "'outcome'" && break
        sleep 0.5
    done
    status_field "[(o['outcome'], o['quiesced_secs']) for o in s['last_outcomes'] if o['window_id'] == '$id'][0]" >"$dir/outcome"
    kill -INT "$spid" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    printf '%s %s\n' "$(cat "$dir/outcome")" \
        "$(awk -v a="${first_refused:-0}" -v b="${first_back:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.3f", b - a; else print "-" }')"
}

# Upstream: SIGINT its binary, copy the file, start it, until it answers.
upstream_cycle() {
    local dir=$work/pause-upstream pid t0 t1
    write_config "$dir" true reject
    cp --reflink=auto "$work/source.db" "$dir/torrust.db"
    (cd "$dir" && exec "$upstream" >"$dir/run.log" 2>&1) &
    pid=$!
    wait_serving "torrust-actix"
    t0=$(date +%s.%N)
    kill -INT "$pid"
    wait "$pid" || true
    cp "$dir/torrust.db" "$dir/copy.db"
    sync -f "$dir/copy.db"
    (cd "$dir" && exec "$upstream" >>"$dir/run.log" 2>&1) &
    pid=$!; pids+=("$pid")
    wait_serving "torrust-actix (restarted)"
    t1=$(date +%s.%N)
    kill -INT "$pid"; wait "$pid" || true
    awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }'
}

bench_pause() {
    echo "# pause on a ${size_mib} MiB SQLite file in torrust-actix's schema, debug builds of torrust-actix $version"
    make_db "$work/source.db"
    ls -l "$work/source.db"
    local reject defer cycle
    reject=$(embedded_window reject)
    defer=$(embedded_window defer-writes)
    cycle=$(upstream_cycle)
    echo "embedded reject:       (outcome, quiesced s) refusal seen by a client (s): $reject"
    echo "embedded defer-writes: (outcome, write pause s) -: $defer"
    echo "upstream stop + cp + start until it answers: $cycle s"
    python3 - "$reject" "$defer" "$cycle" <<'EOF'
import ast, sys
r, d, c = sys.argv[1], sys.argv[2], float(sys.argv[3])
rq = ast.literal_eval(r.rsplit(" ", 1)[0])[1]
dq = ast.literal_eval(d.rsplit(" ", 1)[0])[1]
print("RESULT torrust-actix pause: reject %.0f ms, defer-writes write pause %.0f ms, upstream stop+copy+start %.1f s: %.0fx and %.0fx shorter (goal <= 100 ms and >= 100x)"
      % (rq * 1000, dq * 1000, c, c / rq, c / dq))
EOF
}

case "$what" in
gate) bench_gate ;;
pause) bench_pause ;;
all) bench_gate; bench_pause ;;
*) echo "usage: $0 [gate|pause|all] [N] [SIZE_MIB]" >&2; exit 2 ;;
esac
