#!/usr/bin/env bash
# The main job, end to end, on an embedded default:
#   1. builds reference-tracker and maintenance-sidecar;
#   2. starts the tracker on SQLite with a [maintenance] section;
#   3. sends announces (some completed downloads) over real HTTP;
#   4. starts the sidecar in autonomous mode (`run`);
#   5. opens a maintenance window, so the tracker quiesces and the sidecar
#      claims it, snapshots, releases, compresses, verifies and publishes;
#   6. verifies the published backup, restores it and compares the counts.
#
# Usage: scripts/demo.sh [WORKDIR]     (default: ./demo-run, wiped first)
# Ports: DEMO_PORT_BASE (default 17070) .. +2 must be free on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:-demo-run}
base=${DEMO_PORT_BASE:-17070}
tracker_port=$base
maintenance_port=$((base + 1))
health_port=$((base + 2))

log() { printf '[%s] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$*"; }
die() { log "ERROR: $*"; exit 1; }

command -v curl >/dev/null || die "curl is needed: apt-get install -y curl"
command -v sqlite3 >/dev/null || die "sqlite3 is needed: apt-get install -y sqlite3"

log "building reference-tracker and maintenance-sidecar (release)"
cargo build --release --locked -q -p reference-tracker -p maintenance-sidecar
bin=target/release

rm -rf "$work"
mkdir -p "$work/storage/tracker/lib/database" "$work/storage/maintenance" "$work/backups"
work=$(cd "$work" && pwd)
token_file="$work/maintenance_token"
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file")

cat >"$work/tracker.toml" <<EOF
[core.database]
driver = "sqlite3"
path = "$work/storage/tracker/lib/database/sqlite3.db"
flush_interval = "200ms"

[[http_trackers]]
bind_address = "127.0.0.1:$tracker_port"

[health_check_api]
bind_address = "127.0.0.1:$health_port"

[maintenance]
enabled = true
window = "03:00-03:05"            # the nightly window; the demo also opens one now
timezone = "UTC"
announce_policy = "reject"
lease_ttl = "10s"
ready_file = "$work/storage/maintenance/ready.json"
bind = "127.0.0.1:$maintenance_port"
token_file = "$token_file"
EOF

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

log "starting reference-tracker (SQLite, window 03:00-03:05 UTC, policy reject)"
"$bin/reference-tracker" --config "$work/tracker.toml" >"$work/tracker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$health_port/health_check" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$health_port/health_check" >/dev/null || die "tracker did not start; see $work/tracker.log"

announce() { # info_hash_hex peer_number event
    local hash=$1 peer=$2 event=$3 ih pid
    ih=$(printf '%s' "$hash" | sed 's/../%&/g')
    pid=$(printf '%%2dDEMO%%2d%014d' "$peer")
    curl -fs "http://127.0.0.1:$tracker_port/announce?info_hash=$ih&peer_id=$pid&port=$((6881 + peer))&uploaded=0&downloaded=0&left=0&event=$event&compact=1" >/dev/null
}
hash_a=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
hash_b=bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
log "announcing: 5 completed downloads of torrent A, 3 of torrent B"
for i in 1 2 3 4 5; do announce $hash_a "$i" completed; done
for i in 6 7 8; do announce $hash_b "$i" completed; done
sleep 0.5

log "starting maintenance-sidecar run (autonomous: ready file + long-poll)"
MAINTENANCE_URL="http://127.0.0.1:$maintenance_port" \
MAINTENANCE_TOKEN_FILE="$token_file" \
MAINTENANCE_READY_FILE="$work/storage/maintenance/ready.json" \
SQLITE_DATABASE_PATH="$work/storage/tracker/lib/database/sqlite3.db" \
BACKUP_SQLITE_ENABLED=true BACKUP_MYSQL_ENABLED=false \
BACKUP_DIR="$work/backups" \
    "$bin/maintenance-sidecar" run >"$work/sidecar.log" 2>&1 &
pids+=($!)
sleep 0.5

log "opening a 120 s maintenance window now"
MAINTENANCE_URL="http://127.0.0.1:$maintenance_port" MAINTENANCE_TOKEN_FILE="$token_file" \
    "$bin/maintenance-sidecar" open-window --duration 120

for _ in $(seq 1 600); do
    [ -f "$work/backups/latest/manifest.json" ] && break
    sleep 0.1
done
[ -f "$work/backups/latest/manifest.json" ] || die "no backup was published; see $work/sidecar.log and $work/tracker.log"
# Wait until the coordinator recorded the outcome.
status=""
for _ in $(seq 1 100); do
    status=$(curl -fs "http://127.0.0.1:$maintenance_port/maintenance/v1/status")
    case "$status" in *'"outcome":"completed"'*) break ;; esac
    sleep 0.1
done
case "$status" in
*'"outcome":"completed"'*) log "coordinator recorded the window as completed" ;;
*) die "window not completed: $status" ;;
esac

log "verifying the published backup"
BACKUP_DIR="$work/backups" "$bin/maintenance-sidecar" verify latest
BACKUP_DIR="$work/backups" "$bin/maintenance-sidecar" list

log "restoring it and comparing the completed counts"
BACKUP_DIR="$work/backups" "$bin/maintenance-sidecar" restore latest --to "$work/restored.db" >/dev/null
got=$(sqlite3 "$work/restored.db" "SELECT group_concat(info_hash || '=' || completed, ' ') FROM (SELECT * FROM torrents ORDER BY info_hash)")
want="$hash_a=5 $hash_b=3"
[ "$got" = "$want" ] || die "restored counts differ: got '$got', want '$want'"
log "restored counts match: $got"
log "announce after the window: tracker serves normally again"
announce $hash_a 9 started
log "status at a glance"
MAINTENANCE_URL="http://127.0.0.1:$maintenance_port" BACKUP_DIR="$work/backups" \
    "$bin/maintenance-sidecar" status
log "done: verified backup in $(readlink -f "$work/backups/latest")"
