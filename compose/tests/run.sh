#!/usr/bin/env bash
# Tests of the host-cron fallback (compose/maintenance-backup.sh).
#
# The REAL script runs with a `docker` stand-in on PATH (compose/tests/bin/
# docker) that starts and stops the REAL reference-tracker (pid files) and
# runs the REAL `maintenance-sidecar once` against the tracker's real SQLite
# database. Every test is a function named test_*; each gets its own temp
# folder, free loopback ports and lock file. The reference tracker's WAL
# file qualifies for the online path, so the stop-copy-start tests pass
# --force-stop (STOP_ARGS); the test_online_* tests clear it. Prints "N passed, M failed" and
# exits non-zero if any test failed (or none ran).
#
# Usage: compose/tests/run.sh [TEST_NAME...]
# Needs: cargo (builds the two debug binaries unless TRACKER_BIN/SIDECAR_BIN
# are set), curl, flock, sqlite3, setsid, python3 (webhook receiver).
set -uo pipefail

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COMPOSE_SRC=$(dirname "$TESTS_DIR")
REPO=$(dirname "$COMPOSE_SRC")
SCRIPT=$COMPOSE_SRC/maintenance-backup.sh

for tool in curl flock sqlite3 setsid; do
    command -v "$tool" >/dev/null || {
        echo "compose/tests: missing tool: $tool" >&2
        exit 1
    }
done

if [ -z "${TRACKER_BIN:-}" ] || [ -z "${SIDECAR_BIN:-}" ]; then
    echo "compose/tests: building reference-tracker and maintenance-sidecar (debug)"
    (cd "$REPO" && cargo build --locked -q -p reference-tracker -p maintenance-sidecar) || {
        echo "compose/tests: cargo build failed" >&2
        exit 1
    }
    TRACKER_BIN=$REPO/target/debug/reference-tracker
    SIDECAR_BIN=$REPO/target/debug/maintenance-sidecar
fi
TRACKER_BIN=$(readlink -f "$TRACKER_BIN")
SIDECAR_BIN=$(readlink -f "$SIDECAR_BIN")
for bin in "$TRACKER_BIN" "$SIDECAR_BIN"; do
    [ -x "$bin" ] || {
        echo "compose/tests: not executable: $bin" >&2
        exit 1
    }
done
export TRACKER_BIN SIDECAR_BIN

WORK=$(mktemp -d "${TMPDIR:-/tmp}/compose-tests.XXXXXX")

kill_pidfiles() {
    local f pid
    for f in "$@"; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null
        fi
        rm -f "$f"
    done
}

cleanup_all() {
    kill_pidfiles "$WORK"/*/state/*.pid "$WORK"/*/extra/*.pid
    if [ -z "${KEEP_TEST_DIR:-}" ]; then
        rm -rf "$WORK"
    else
        echo "test folders kept in $WORK"
    fi
}
trap cleanup_all EXIT

# --- helpers ------------------------------------------------------------------

# Ports below the kernel's ephemeral range, so outgoing connections of
# other processes on the machine never hold them.
USED_PORTS=" "
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$EPHEMERAL_LOW" -gt 12000 ] || EPHEMERAL_LOW=32768
# free_port VAR: sets VAR to a loopback port nothing listens on.
free_port() {
    local p
    for _ in $(seq 500); do
        p=$((10000 + RANDOM % (EPHEMERAL_LOW - 10000)))
        case $USED_PORTS in *" $p "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED_PORTS="$USED_PORTS$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    return 1
}

fail() {
    echo "    FAIL: $*"
    return 1
}

expect_eq() { # actual expected message
    [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

expect_ne() {
    [ "$1" != "$2" ] || fail "$3: did not expect '$2'"
}

expect_grep() { # file regex message
    grep -Eq -- "$2" "$1" || fail "$3: no line matching /$2/ in $1"
}

expect_no_grep() {
    ! grep -Eq -- "$2" "$1" || fail "$3: unexpected line matching /$2/ in $1"
}

# Per-test environment: everything under $T.
setup() {
    T=$WORK/$1
    mkdir -p "$T/state/services" "$T/compose" "$T/backups" "$T/extra"
    export PATH="$TESTS_DIR/bin:$ORIG_PATH"
    export DOCKER_STANDIN_STATE=$T/state
    export COMPOSE_DIR=$T/compose
    export LOCK_FILE=$T/lock
    export BACKUP_HOST_DIR=$T/backups BACKUP_DIR=$T/backups
    export LOG_FILE=$T/maintenance.log
    export HEALTH_TIMEOUT=30
    export TRACKER_SERVICES=tracker BACKUP_SERVICE=backup-once
    export SQLITE_DATABASE_PATH=$T/db/tracker/sqlite3.db
    export BACKUP_SIDECAR_ID=compose-tests
    export RUST_LOG=warn
    unset MAX_BACKUP_AGE_HOURS DOCKER_STANDIN_FAIL_STOP DOCKER_STANDIN_RUN_DELAY \
        NOTIFY_WEBHOOK_URL MAINTENANCE_URL MAINTENANCE_TOKEN HEALTH_URLS
    HEALTH_LIST=""
    STOP_ARGS=(--force-stop)
}

declare -A HTTP_PORT HEALTH_PORT API_PORT
TOKEN=compose-tests-token-0123456789

# add_tracker SERVICE: writes its config for the stand-in (not started).
add_tracker() {
    local svc=$1
    local p1 p2 p3
    free_port p1 && free_port p2 && free_port p3 || return 1
    HTTP_PORT[$svc]=$p1 HEALTH_PORT[$svc]=$p2 API_PORT[$svc]=$p3
    mkdir -p "$T/db/$svc" "$T/run/$svc"
    cat >"$T/state/services/$svc.toml" <<EOF
[core.database]
driver = "sqlite3"
path = "$T/db/$svc/sqlite3.db"
flush_interval = "200ms"

[[http_trackers]]
bind_address = "127.0.0.1:${HTTP_PORT[$svc]}"

[health_check_api]
bind_address = "127.0.0.1:${HEALTH_PORT[$svc]}"

[maintenance]
enabled = true
window = "03:00-03:05"
announce_policy = "reject"
ready_file = "$T/run/$svc/ready.json"
bind = "127.0.0.1:${API_PORT[$svc]}"
token = "$TOKEN"
EOF
    HEALTH_LIST="${HEALTH_LIST:+$HEALTH_LIST }$(health_url "$svc")"
    export HEALTH_URLS=$HEALTH_LIST
}

health_url() { echo "http://127.0.0.1:${HEALTH_PORT[$1]}/health_check"; }

is_healthy() { curl -fsS --max-time 2 -o /dev/null "$(health_url "$1")" 2>/dev/null; }

wait_healthy() {
    for _ in $(seq 100); do
        is_healthy "$1" && return 0
        sleep 0.1
    done
    fail "tracker $1 not healthy after 10 s (log: $(tail -n 3 "$T/state/$1.log" 2>/dev/null))"
}

# start_trackers SERVICE...: through the stand-in, as `docker compose up` would.
start_trackers() {
    local svc
    docker compose start "$@" >/dev/null || return 1
    for svc in "$@"; do
        wait_healthy "$svc" || return 1
    done
}

tracker_pid() { cat "$T/state/$1.pid" 2>/dev/null || echo none; }

# announce_completed SERVICE HEX40: one completed download for the torrent.
announce_completed() {
    local hash
    hash=$(printf '%s' "$2" | sed 's/../%&/g')
    curl -fsS --max-time 5 -o /dev/null \
        "http://127.0.0.1:${HTTP_PORT[$1]}/announce?info_hash=$hash&peer_id=-CT0001-000000000001&port=6881&uploaded=0&downloaded=100&left=0&event=completed"
}

# run_script ARGS...: runs the real script; output in $T/out, status in $rc.
run_script() {
    rc=0
    "$SCRIPT" "${STOP_ARGS[@]}" "$@" >"$T/out" 2>&1 || rc=$?
}

# rollback_db PATH: a SQLite file in rollback-journal mode with one row.
rollback_db() {
    mkdir -p "$(dirname "$1")"
    sqlite3 "$1" 'CREATE TABLE torrents (info_hash TEXT PRIMARY KEY, completed INTEGER); INSERT INTO torrents VALUES ('"'"'x'"'"', 7);' || return 1
    expect_eq "$(sqlite3 "$1" 'PRAGMA journal_mode')" delete "journal mode of the new file"
}

show_output() {
    echo "    --- script output (last 25 lines) ---"
    tail -n 25 "$T/out" 2>/dev/null | sed 's/^/    | /'
}

events() { awk '{print $2}' "$T/state/events" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'; }

wait_event() { # NAME [timeout_s]
    local n=$((${2:-20} * 10))
    for _ in $(seq "$n"); do
        grep -q " $1" "$T/state/events" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "event $1 did not happen"
}

backup_count() { find "$T/backups" -mindepth 2 -maxdepth 2 -name manifest.json | wc -l; }

# A REAL autonomous backup: the sidecar's `run` loop claims an ad hoc window
# opened on the tracker's coordinator, and publishes a mode "run" backup.
autonomous_backup() {
    local pid
    (
        export MAINTENANCE_URL="http://127.0.0.1:${API_PORT[tracker]}" MAINTENANCE_TOKEN=$TOKEN
        export MAINTENANCE_READY_FILE=$T/run/tracker/ready.json
        exec setsid "$SIDECAR_BIN" run </dev/null >"$T/extra/sidecar.log" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$T/extra/sidecar.pid"
    sleep 0.3
    MAINTENANCE_URL="http://127.0.0.1:${API_PORT[tracker]}" MAINTENANCE_TOKEN=$TOKEN \
        "$SIDECAR_BIN" open-window --duration 60 >/dev/null 2>&1 || fail "open-window failed" || return 1
    for _ in $(seq 200); do
        if grep -lq '"mode": "run"' "$T"/backups/*/manifest.json 2>/dev/null; then
            kill_pidfiles "$T/extra/sidecar.pid"
            wait_healthy tracker
            return
        fi
        sleep 0.1
    done
    kill_pidfiles "$T/extra/sidecar.pid"
    fail "no autonomous backup published (sidecar log: $(tail -n 3 "$T/extra/sidecar.log"))"
}

run_manifest() { grep -l '"mode": "run"' "$T"/backups/*/manifest.json | head -n 1; }

# run_after_one_completion: a tracker with one completed download, then
# the script; the tracker's pid before the run in $old.
run_after_one_completion() {
    add_tracker tracker && start_trackers tracker || return 1
    announce_completed tracker "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" || fail "announce" || return 1
    sleep 0.5
    old=$(tracker_pid tracker)
    run_script
}

# The latest backup verifies and restores to the one completed download.
expect_latest_holds_one_completion() {
    "$SIDECAR_BIN" verify latest >"$T/verify" 2>&1 || fail "maintenance-sidecar verify latest failed: $(cat "$T/verify")" || return 1
    "$SIDECAR_BIN" restore latest --to "$T/restored.db" >/dev/null 2>&1 || fail "restore failed" || return 1
    expect_eq "$(sqlite3 "$T/restored.db" 'select sum(completed) from torrents')" 1 "completed count in the backup"
}

# --- tests ------------------------------------------------------------------------

test_normal_run() {
    local old
    run_after_one_completion || return 1
    expect_eq "$rc" 0 "exit code" || return 1
    expect_eq "$(events)" "start stop run-begin run-end start" "docker compose calls" || return 1
    is_healthy tracker || fail "tracker not healthy after the run" || return 1
    expect_ne "$(tracker_pid tracker)" "$old" "tracker pid (restarted)" || return 1
    head -n 1 "$T/out" | grep -Eq '^\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\] === Maintenance backup started ===$' ||
        fail "first line not in [YYYY-MM-DD HH:MM:SS] format" || return 1
    expect_grep "$T/out" '^\[[-0-9: ]{19}\] === Maintenance backup completed successfully in [0-9]+s ===$' "success line" || return 1
    expect_grep "$LOG_FILE" 'Stopping tracker services: tracker$' "LOG_FILE copy" || return 1
    expect_grep "$LOG_FILE" 'Container tracker  Stopped' "compose output in LOG_FILE" || return 1
    expect_grep "$T/backups/latest/manifest.json" '"mode": "once"' "manifest mode" || return 1
    expect_grep "$T/backups/latest/manifest.json" '"verified": true' "manifest verified" || return 1
    expect_latest_holds_one_completion
}

test_online_backup_keeps_the_tracker_running() {
    STOP_ARGS=()
    local old
    run_after_one_completion || return 1
    expect_eq "$rc" 0 "exit code" || return 1
    expect_eq "$(events)" "start run-begin run-end" "docker compose calls (no stop, no start)" || return 1
    expect_eq "$(tracker_pid tracker)" "$old" "tracker pid (never restarted)" || return 1
    expect_grep "$T/out" 'Online backup completed successfully .*the tracker was not stopped' "success line" || return 1
    expect_grep "$T/backups/latest/manifest.json" '"consistency": "online"' "manifest consistency" || return 1
    expect_latest_holds_one_completion
}

test_online_refusal_falls_back_then_convert_to_wal_makes_it_online() {
    STOP_ARGS=()
    add_tracker tracker && start_trackers tracker || return 1
    export SQLITE_DATABASE_PATH=$T/legacy/legacy.db
    rollback_db "$SQLITE_DATABASE_PATH" || return 1
    run_script
    expect_eq "$rc" 0 "exit code of the fallback run" || return 1
    expect_eq "$(events)" "start run-begin run-end stop run-begin run-end start" "refused online, then stop-copy-start" || return 1
    expect_grep "$T/out" 'online backup refused: .*rollback-journal mode.*maintenance-sidecar sqlite-wal' "refusal with the fix" || return 1
    expect_grep "$T/out" 'falling back to stop-copy-start' "fallback logged" || return 1
    expect_grep "$T/backups/latest/manifest.json" '"consistency": "uncoordinated"' "manifest of the stopped copy" || return 1
    expect_eq "$(sqlite3 "$SQLITE_DATABASE_PATH" 'PRAGMA journal_mode')" delete "journal mode untouched by the refusal" || return 1
    : >"$T/state/events"
    run_script --convert-to-wal
    expect_eq "$rc" 0 "exit code of --convert-to-wal" || return 1
    expect_eq "$(events)" "stop run-begin run-end run-begin run-end start" "stop, convert, back up, start" || return 1
    expect_eq "$(sqlite3 "$SQLITE_DATABASE_PATH" 'PRAGMA journal_mode')" wal "journal mode after --convert-to-wal" || return 1
    expect_eq "$(sqlite3 "$SQLITE_DATABASE_PATH" 'select completed from torrents')" 7 "rows kept by the conversion" || return 1
    : >"$T/state/events"
    run_script --force
    expect_eq "$rc" 0 "exit code of the next run" || return 1
    expect_eq "$(events)" "run-begin run-end" "the next run is online" || return 1
    expect_grep "$T/backups/latest/manifest.json" '"consistency": "online"' "manifest consistency" || return 1
}

test_online_failure_does_not_stop_the_tracker() {
    STOP_ARGS=()
    add_tracker tracker && start_trackers tracker || return 1
    local old
    old=$(tracker_pid tracker)
    SQLITE_DATABASE_PATH=$T/no-such-dir/sqlite3.db run_script
    expect_eq "$rc" 1 "exit code" || return 1
    expect_eq "$(events)" "start run-begin run-end" "docker compose calls" || return 1
    expect_eq "$(tracker_pid tracker)" "$old" "tracker pid" || return 1
    expect_grep "$T/out" 'online backup failed; the tracker was not stopped' "error logged" || return 1
}

test_online_dry_run_names_both_paths() {
    STOP_ARGS=()
    add_tracker tracker && start_trackers tracker || return 1
    run_script --dry-run
    expect_eq "$rc" 0 "exit code" || return 1
    expect_eq "$(events)" "start" "docker compose calls" || return 1
    expect_grep "$T/out" 'DRY RUN: would first try online: .* run --rm backup-once once --online' "online attempt" || return 1
    expect_grep "$T/out" 'DRY RUN: would stop' "fallback" || return 1
    run_script --dry-run --convert-to-wal
    expect_grep "$T/out" 'DRY RUN: would convert: .* run --rm backup-once sqlite-wal' "conversion" || return 1
    expect_no_grep "$T/out" 'would first try online' "no online attempt with --convert-to-wal" || return 1
}

test_backup_failure_still_restarts() {
    add_tracker tracker && start_trackers tracker || return 1
    local old
    old=$(tracker_pid tracker)
    export SQLITE_DATABASE_PATH=$T/no-such-dir/sqlite3.db
    run_script
    expect_eq "$rc" 1 "exit code" || return 1
    expect_eq "$(events)" "start stop run-begin run-end start" "docker compose calls" || return 1
    expect_grep "$T/state/events" 'run-end backup-once [1-9]' "backup container failed" || return 1
    is_healthy tracker || fail "tracker not healthy after a failed backup" || return 1
    expect_ne "$(tracker_pid tracker)" "$old" "tracker pid (restarted)" || return 1
    expect_grep "$T/out" 'ERROR: backup container failed' "error logged" || return 1
    expect_grep "$T/out" '=== Maintenance backup FAILED' "failure summary" || return 1
    [ ! -e "$T/backups/latest" ] || fail "a backup was published" || return 1
}

test_stop_failure_tracker_keeps_running() {
    add_tracker tracker && start_trackers tracker || return 1
    local old
    old=$(tracker_pid tracker)
    export DOCKER_STANDIN_FAIL_STOP=before
    run_script
    expect_eq "$rc" 1 "exit code" || return 1
    expect_eq "$(events)" "start stop-failed" "docker compose calls (no backup of a live database)" || return 1
    is_healthy tracker || fail "tracker not healthy" || return 1
    expect_eq "$(tracker_pid tracker)" "$old" "tracker pid" || return 1
    expect_grep "$T/out" 'ERROR: stopping the tracker failed' "error logged" || return 1
}

test_stop_failure_after_stopping_restarts() {
    add_tracker tracker && start_trackers tracker || return 1
    local old
    old=$(tracker_pid tracker)
    export DOCKER_STANDIN_FAIL_STOP=after
    run_script
    expect_eq "$rc" 1 "exit code" || return 1
    expect_eq "$(events)" "start stop start" "docker compose calls" || return 1
    is_healthy tracker || fail "tracker not restarted after a failed stop" || return 1
    expect_ne "$(tracker_pid tracker)" "$old" "tracker pid (restarted)" || return 1
}

test_services_not_running_skips() {
    add_tracker tracker || return 1
    run_script
    expect_eq "$rc" 3 "exit code" || return 1
    expect_grep "$T/out" 'WARNING: tracker service\(s\) not running: tracker' "warning" || return 1
    expect_eq "$(events)" "" "docker compose calls (nothing started)" || return 1
    ! is_healthy tracker || fail "the script started a tracker that was down" || return 1
    # One of two services down: skip too, and leave the running one alone.
    add_tracker other && start_trackers other || return 1
    export TRACKER_SERVICES="tracker other"
    local old
    old=$(tracker_pid other)
    run_script
    expect_eq "$rc" 3 "exit code (one of two down)" || return 1
    expect_eq "$(tracker_pid other)" "$old" "running service untouched" || return 1
}

test_dry_run_changes_nothing() {
    add_tracker tracker && start_trackers tracker || return 1
    local old
    old=$(tracker_pid tracker)
    run_script --dry-run
    expect_eq "$rc" 0 "exit code" || return 1
    expect_eq "$(events)" "start" "docker compose calls" || return 1
    expect_eq "$(tracker_pid tracker)" "$old" "tracker pid" || return 1
    is_healthy tracker || fail "tracker not healthy" || return 1
    expect_grep "$T/out" 'DRY RUN: would stop' "dry-run log" || return 1
    expect_eq "$(backup_count)" 0 "backups" || return 1
}

test_concurrent_second_run_skips() {
    add_tracker tracker && start_trackers tracker || return 1
    export DOCKER_STANDIN_RUN_DELAY=3
    local first rc1=0
    "$SCRIPT" "${STOP_ARGS[@]}" >"$T/out1" 2>&1 &
    first=$!
    wait_event run-begin || return 1
    run_script
    expect_eq "$rc" 3 "second run exit code" || return 1
    expect_grep "$T/out" 'skipped: another run holds the lock' "second run log" || return 1
    expect_no_grep "$T/out" 'Stopping tracker' "second run touched the tracker" || return 1
    wait "$first" || rc1=$?
    expect_eq "$rc1" 0 "first run exit code" || return 1
    expect_eq "$(events)" "start stop run-begin run-end start" "exactly one cycle" || return 1
}

test_concurrent_wait_never_overlaps() {
    add_tracker tracker && start_trackers tracker || return 1
    export DOCKER_STANDIN_RUN_DELAY=2
    local first rc1=0
    "$SCRIPT" "${STOP_ARGS[@]}" >"$T/out1" 2>&1 &
    first=$!
    wait_event run-begin || return 1
    run_script --wait
    wait "$first" || rc1=$?
    expect_eq "$rc1" 0 "first run exit code" || return 1
    expect_eq "$rc" 0 "second run exit code" || return 1
    expect_grep "$T/out" 'waiting up to' "second run waited" || return 1
    # Strictly sequential cycles: the second stop comes after the first start.
    expect_eq "$(events)" "start stop run-begin run-end start stop run-begin run-end start" "two whole cycles, in order" || return 1
    local first_restart second_stop
    first_restart=$(awk '$2 == "start" {n++; if (n == 2) print $1}' "$T/state/events")
    second_stop=$(awk '$2 == "stop" {n++; if (n == 2) print $1}' "$T/state/events")
    awk -v a="$first_restart" -v b="$second_stop" 'BEGIN { exit !(a < b) }' ||
        fail "second run stopped the tracker ($second_stop) before the first restarted it ($first_restart)" || return 1
    expect_eq "$(backup_count)" 2 "backups" || return 1
    is_healthy tracker || fail "tracker not healthy" || return 1
}

test_recent_autonomous_backup_skips_and_force_overrides() {
    add_tracker tracker && start_trackers tracker || return 1
    autonomous_backup || return 1
    local old
    old=$(tracker_pid tracker)
    run_script
    expect_eq "$rc" 3 "exit code" || return 1
    expect_grep "$T/out" 'skipped: verified autonomous backup [^ ]+ finished [0-9]+ min ago' "skip log" || return 1
    expect_eq "$(events)" "start" "docker compose calls" || return 1
    expect_eq "$(tracker_pid tracker)" "$old" "tracker pid" || return 1
    run_script --force
    expect_eq "$rc" 0 "exit code with --force" || return 1
    expect_eq "$(events)" "start stop run-begin run-end start" "docker compose calls with --force" || return 1
    expect_grep "$T/backups/latest/manifest.json" '"mode": "once"' "new once backup is latest" || return 1
    "$SIDECAR_BIN" verify latest >/dev/null 2>&1 || fail "verify latest" || return 1
    # MAX_BACKUP_AGE_HOURS=0 disables the rule.
    MAX_BACKUP_AGE_HOURS=0 run_script
    expect_eq "$rc" 0 "exit code with MAX_BACKUP_AGE_HOURS=0" || return 1
}

test_old_or_unverified_autonomous_backup_does_not_skip() {
    add_tracker tracker && start_trackers tracker || return 1
    autonomous_backup || return 1
    local manifest
    manifest=$(run_manifest)
    # Unverified: does not count.
    sed -i 's/"verified": true/"verified": false/' "$manifest"
    run_script
    expect_eq "$rc" 0 "exit code (unverified autonomous backup)" || return 1
    # Verified but older than MAX_BACKUP_AGE_HOURS: does not count either;
    # the once backups made meanwhile do not count as autonomous.
    sed -i -e 's/"verified": false/"verified": true/' \
        -e "s/\"finished_at\": \"[^\"]*\"/\"finished_at\": \"$(date -u -d '-3 hours' '+%Y-%m-%dT%H:%M:%S.123456789Z')\"/" "$manifest"
    MAX_BACKUP_AGE_HOURS=2 run_script
    expect_eq "$rc" 0 "exit code (3 h old backup, max 2 h)" || return 1
    expect_grep "$T/out" 'Newest verified autonomous backup .* is 3h old; backing up' "age logged" || return 1
    MAX_BACKUP_AGE_HOURS=4 run_script
    expect_eq "$rc" 3 "exit code (3 h old backup, max 4 h)" || return 1
}

test_several_tracker_services() {
    add_tracker tracker && add_tracker other && start_trackers tracker other || return 1
    export TRACKER_SERVICES="tracker other"
    local old1 old2
    old1=$(tracker_pid tracker)
    old2=$(tracker_pid other)
    run_script
    expect_eq "$rc" 0 "exit code" || return 1
    expect_eq "$(events)" "start start stop stop run-begin run-end start start" "docker compose calls" || return 1
    is_healthy tracker && is_healthy other || fail "both trackers healthy" || return 1
    expect_ne "$(tracker_pid tracker)" "$old1" "tracker restarted" || return 1
    expect_ne "$(tracker_pid other)" "$old2" "other restarted" || return 1
}

test_compose_v1_command() {
    add_tracker tracker && start_trackers tracker || return 1
    local old
    old=$(tracker_pid tracker)
    COMPOSE_CMD=docker-compose run_script
    expect_eq "$rc" 0 "exit code" || return 1
    expect_eq "$(events)" "start stop run-begin run-end start" "docker-compose calls" || return 1
    expect_ne "$(tracker_pid tracker)" "$old" "tracker pid (restarted)" || return 1
    is_healthy tracker || fail "tracker not healthy" || return 1
}

test_compose_command_detected_and_named() {
    add_tracker tracker && start_trackers tracker || return 1
    unset COMPOSE_CMD
    run_script
    expect_eq "$rc" 0 "exit code (docker compose)" || return 1
    expect_grep "$T/out" 'Compose command: +docker compose \(detected\)$' "v2 detected and named" || return 1
    # No Compose v2 plugin: docker-compose.
    DOCKER_STANDIN_BROKEN=v2 run_script
    expect_eq "$rc" 0 "exit code (docker-compose)" || return 1
    expect_grep "$T/out" 'Compose command: +docker-compose \(detected\)$' "v1 detected and named" || return 1
    # Neither: podman-compose, which accepts no ps options.
    local old
    old=$(tracker_pid tracker)
    DOCKER_STANDIN_BROKEN="v2 v1" run_script
    expect_eq "$rc" 0 "exit code (podman-compose)" || return 1
    expect_grep "$T/out" 'Compose command: +podman-compose \(detected\)$' "podman-compose detected and named" || return 1
    expect_ne "$(tracker_pid tracker)" "$old" "tracker restarted through podman-compose" || return 1
    expect_eq "$(backup_count)" 3 "one backup per run" || return 1
    # COMPOSE_CMD wins and is named as such.
    COMPOSE_CMD=podman-compose run_script
    expect_eq "$rc" 0 "exit code (COMPOSE_CMD)" || return 1
    expect_grep "$T/out" 'Compose command: +podman-compose \(from COMPOSE_CMD\)$' "COMPOSE_CMD named" || return 1
    # None works: a usage error naming what was tried and the fix.
    # (The stand-ins come first on PATH, so a real compose is never reached.)
    DOCKER_STANDIN_BROKEN="v2 v1 podman-compose" run_script
    expect_eq "$rc" 2 "exit code (no compose)" || return 1
    expect_grep "$T/out" "no working compose command: tried 'docker compose', 'docker-compose' and 'podman-compose'.*set COMPOSE_CMD" "message" || return 1
    is_healthy tracker || fail "tracker not healthy" || return 1
}

test_not_running_found_in_every_ps_table() {
    add_tracker tracker && add_tracker other && start_trackers other || return 1
    export TRACKER_SERVICES="tracker other"
    local cmd
    for cmd in "docker compose" docker-compose podman-compose; do
        COMPOSE_CMD=$cmd run_script
        expect_eq "$rc" 3 "exit code with $cmd (tracker stopped)" || return 1
        expect_grep "$T/out" 'WARNING: tracker service\(s\) not running: tracker$' "$cmd: stopped service named" || return 1
    done
    start_trackers tracker || return 1
    COMPOSE_CMD=podman-compose run_script --dry-run
    expect_eq "$rc" 0 "both running (podman-compose table)" || return 1
}

test_backup_failure_seen_when_compose_hides_the_exit_code() {
    add_tracker tracker && start_trackers tracker || return 1
    export SQLITE_DATABASE_PATH=$T/no-such-dir/sqlite3.db
    COMPOSE_CMD=podman-compose run_script
    expect_eq "$rc" 1 "exit code" || return 1
    expect_grep "$T/out" 'exited 0 but no new verified backup appeared' "error logged" || return 1
    is_healthy tracker || fail "tracker not restarted" || return 1
}

# compose/init.sh on a fresh copy of the compose folder (needs root for chown).
init_stack() {
    mkdir -p "$T/stack"
    cp "$COMPOSE_SRC/docker-compose.yml" "$COMPOSE_SRC/.env.example" "$COMPOSE_SRC/init.sh" "$T/stack/"
}

test_init_sets_up_everything_once() {
    [ "$(id -u)" -eq 0 ] || { echo "    (skipped: init.sh chowns, needs root)"; return 0; }
    init_stack
    local s=$T/stack token
    "$s/init.sh" >"$T/out" 2>&1 || fail "init.sh failed: $(cat "$T/out")" || return 1
    expect_eq "$(stat -c %a "$s/.env")" 600 ".env mode" || return 1
    expect_eq "$(stat -c '%u:%g %a' "$s/storage/secrets/maintenance_token")" "1000:1000 600" "token owner and mode" || return 1
    token=$(cat "$s/storage/secrets/maintenance_token")
    [[ $token =~ ^[0-9a-f]{64}$ ]] || fail "token is not 64 hex characters" || return 1
    expect_no_grep "$T/out" "$token" "token printed" || return 1
    expect_eq "$(stat -c %u:%g "$s/storage/tracker/lib/database")" 1000:1000 "data folder owner" || return 1
    expect_eq "$(stat -c %u:%g "$s/storage/backup")" 1000:1000 "backup folder owner" || return 1
    expect_eq "$(find "$s/storage" -name '.maintenance_token.*' | wc -l)" 0 "temp files left" || return 1
    # Idempotent: the token stays, a root-owned file in the data folder is
    # given back to the container user.
    touch "$s/storage/tracker/lib/database/sqlite3.db"
    "$s/init.sh" >"$T/out" 2>&1 || fail "second init.sh failed: $(cat "$T/out")" || return 1
    expect_eq "$(cat "$s/storage/secrets/maintenance_token")" "$token" "token kept" || return 1
    expect_eq "$(stat -c %u "$s/storage/tracker/lib/database/sqlite3.db")" 1000 "database owner repaired" || return 1
    # APP_UID/APP_GID from .env decide the owner.
    sed -i 's/^APP_UID=.*/APP_UID=1234/; s/^APP_GID=.*/APP_GID=1234/' "$s/.env"
    "$s/init.sh" >"$T/out" 2>&1 || fail "init.sh with APP_UID=1234 failed: $(cat "$T/out")" || return 1
    expect_eq "$(stat -c %u:%g "$s/storage/secrets/maintenance_token")" 1234:1234 "token owner follows APP_UID" || return 1
    expect_eq "$(stat -c %u:%g "$s/storage/backup")" 1234:1234 "backup owner follows APP_UID" || return 1
}

test_init_repairs_the_directory_an_engine_made_of_a_missing_token() {
    [ "$(id -u)" -eq 0 ] || { echo "    (skipped: init.sh chowns, needs root)"; return 0; }
    init_stack
    local s=$T/stack
    # What `up` does before set-up: the missing secret becomes a directory.
    mkdir -p "$s/storage/secrets/maintenance_token"
    "$s/init.sh" >"$T/out" 2>&1 || fail "init.sh failed: $(cat "$T/out")" || return 1
    expect_grep "$T/out" 'removed the empty directory .*maintenance_token' "repair explained" || return 1
    [ -f "$s/storage/secrets/maintenance_token" ] && [ -s "$s/storage/secrets/maintenance_token" ] ||
        fail "no token file after the repair" || return 1
    # A directory with something in it is not removed: exit 1, path and fix named.
    rm "$s/storage/secrets/maintenance_token"
    mkdir -p "$s/storage/secrets/maintenance_token/keep"
    rc=0
    "$s/init.sh" >"$T/out" 2>&1 || rc=$?
    expect_eq "$rc" 1 "exit code (non-empty directory)" || return 1
    expect_grep "$T/out" 'maintenance_token is a directory with files in it.*move it away' "message" || return 1
    [ -d "$s/storage/secrets/maintenance_token/keep" ] || fail "init.sh removed a non-empty directory" || return 1
}

test_init_without_root_names_owner_and_fix() {
    if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
        echo "    (skipped: needs root and setpriv)"
        return 0
    fi
    init_stack
    local s=$T/stack
    "$s/init.sh" >/dev/null 2>&1 || fail "init.sh as root failed" || return 1
    chown 0:0 "$s/storage/secrets/maintenance_token"
    chmod -R a+rwX "$s" && chmod 755 "$T" "$WORK"
    rc=0
    setpriv --reuid=1000 --regid=1000 --clear-groups "$s/init.sh" >"$T/out" 2>&1 || rc=$?
    expect_eq "$rc" 1 "exit code" || return 1
    expect_grep "$T/out" 'maintenance_token is owned by root\(0\):root\(0\).*containers run as 1000:1000; fix: sudo ' "owner and fix named" || return 1
}

WEBHOOK_RECEIVER='
import http.server, os, sys
port, folder = int(sys.argv[1]), sys.argv[2]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        n = len(os.listdir(folder)) + 1
        with open(os.path.join(folder, "%d.json" % n), "wb") as f:
            f.write(body)
        self.send_response(204)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", port), Hook).serve_forever()
'

# A real HTTP receiver for the webhook: stores each POST body as
# $T/hooks/N.json and answers 204.
start_webhook_receiver() {
    local py port
    py=$(command -v python3) || fail "python3 is needed for the webhook receiver" || return 1
    free_port port || return 1
    mkdir -p "$T/hooks"
    setsid "$py" -c "$WEBHOOK_RECEIVER" "$port" "$T/hooks" </dev/null >"$T/extra/hook.log" 2>&1 9>&- &
    echo $! >"$T/extra/hook.pid"
    WEBHOOK_URL="http://127.0.0.1:$port/hook"
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    fail "webhook receiver did not start: $(cat "$T/extra/hook.log")"
}

json_field() { # FILE KEY
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

test_webhook_notifications() {
    add_tracker tracker && start_trackers tracker || return 1
    start_webhook_receiver || return 1
    export NOTIFY_WEBHOOK_URL=$WEBHOOK_URL
    # Failure: always notified.
    SQLITE_DATABASE_PATH=$T/no-such-dir/sqlite3.db run_script
    expect_eq "$rc" 1 "exit code (backup failed)" || return 1
    [ -f "$T/hooks/1.json" ] || fail "no notification received" || return 1
    expect_eq "$(json_field "$T/hooks/1.json" status)" failed "notification status" || return 1
    expect_eq "$(json_field "$T/hooks/1.json" exit_code)" 1 "notification exit_code" || return 1
    expect_eq "$(json_field "$T/hooks/1.json" services)" tracker "notification services" || return 1
    json_field "$T/hooks/1.json" message | grep -q 'backup container failed' || fail "notification message" || return 1
    expect_grep "$T/out" 'Notification sent \(failed\)' "log" || return 1
    # Success: silent by default, notified with NOTIFY_ON_SUCCESS=true.
    run_script
    expect_eq "$rc" 0 "exit code (ok)" || return 1
    [ ! -e "$T/hooks/2.json" ] || fail "success notified without NOTIFY_ON_SUCCESS" || return 1
    NOTIFY_ON_SUCCESS=true run_script
    expect_eq "$rc" 0 "exit code (ok, notify)" || return 1
    expect_eq "$(json_field "$T/hooks/2.json" status)" ok "success notification" || return 1
    # An unreachable webhook changes nothing but a warning.
    kill_pidfiles "$T/extra/hook.pid"
    SQLITE_DATABASE_PATH=$T/no-such-dir/sqlite3.db run_script
    expect_eq "$rc" 1 "exit code with a dead webhook" || return 1
    expect_grep "$T/out" 'WARNING: notification to the webhook failed' "warning" || return 1
    is_healthy tracker || fail "tracker not healthy" || return 1
}

test_sigterm_during_backup_restarts_tracker() {
    add_tracker tracker && start_trackers tracker || return 1
    export DOCKER_STANDIN_RUN_DELAY=2
    local pid old
    old=$(tracker_pid tracker)
    "$SCRIPT" "${STOP_ARGS[@]}" >"$T/out" 2>&1 &
    pid=$!
    wait_event run-begin || return 1
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    expect_eq "$rc" 1 "exit code" || return 1
    expect_grep "$T/out" 'Received SIGTERM' "signal logged" || return 1
    expect_grep "$T/out" 'Restarting the tracker after an interrupted run' "trap restart" || return 1
    is_healthy tracker || fail "tracker not restarted after SIGTERM" || return 1
    expect_ne "$(tracker_pid tracker)" "$old" "tracker pid (restarted)" || return 1
}

test_usage_errors() {
    add_tracker tracker && start_trackers tracker || return 1
    run_script --bogus
    expect_eq "$rc" 2 "exit code for an unknown option" || return 1
    expect_grep "$T/out" 'unknown argument: --bogus' "message" || return 1
    MAX_BACKUP_AGE_HOURS=soon run_script
    expect_eq "$rc" 2 "exit code for a bad MAX_BACKUP_AGE_HOURS" || return 1
    expect_grep "$T/out" "MAX_BACKUP_AGE_HOURS must be a whole number, got 'soon'" "message" || return 1
    COMPOSE_DIR=$T/missing run_script
    expect_eq "$rc" 2 "exit code for a missing COMPOSE_DIR" || return 1
    run_script --help
    expect_eq "$rc" 0 "exit code for --help" || return 1
    expect_grep "$T/out" '^Usage: ' "help text" || return 1
    expect_eq "$(events)" "start" "nothing touched" || return 1
}

# --- runner -------------------------------------------------------------------------

ORIG_PATH=$PATH
if [ $# -gt 0 ]; then
    tests=("$@")
else
    mapfile -t tests < <(declare -F | awk '$3 ~ /^test_/ {print $3}')
fi

passed=0
failed=0
failed_names=()
for t in "${tests[@]}"; do
    declare -F "$t" >/dev/null || {
        echo "no such test: $t" >&2
        exit 2
    }
    start=$SECONDS
    (
        setup "$t"
        "$t"
    )
    status=$?
    kill_pidfiles "$WORK/$t"/state/*.pid "$WORK/$t"/extra/*.pid
    if [ "$status" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $t ($((SECONDS - start))s)"
    else
        failed=$((failed + 1))
        failed_names+=("$t")
        echo "FAIL $t ($((SECONDS - start))s)"
        T=$WORK/$t show_output
    fi
done

echo "${passed} passed, ${failed} failed"
if [ "$failed" -gt 0 ]; then
    echo "failed: ${failed_names[*]}"
    exit 1
fi
[ "$passed" -gt 0 ] || exit 1
