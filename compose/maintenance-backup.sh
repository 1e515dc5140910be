#!/usr/bin/env bash
# maintenance-backup.sh: host-cron fallback for the maintenance-window stack.
#
# First tries the online backup (`docker compose run --rm backup-once once
# --online`), which copies the database while the tracker serves: SQLite in
# WAL mode, InnoDB on MySQL, PostgreSQL. If that qualifies, the tracker is
# never stopped and the script exits with the backup's status. If the
# database cannot be copied online (the sidecar refuses with exit 4: SQLite
# in rollback-journal mode, MyISAM tables), or with --force-stop, it stops
# the tracker service(s), runs the one-shot backup container
# (`docker compose run --rm backup-once once`), and ALWAYS starts the tracker
# again (through an EXIT trap, also when stopping failed or the script is
# interrupted), then waits until the tracker is healthy. --convert-to-wal
# switches a rollback-journal SQLite file to WAL while the tracker is
# stopped, so the next run is online. Logs in the format
# `[YYYY-MM-DD HH:MM:SS] message` to stdout and, if LOG_FILE is set, to that
# file; POSTs a JSON notification to NOTIFY_WEBHOOK_URL on failure.
#
# It skips itself (exit 3) when
#   - another run holds the lock (unless --wait),
#   - the autonomous sidecar published a verified backup less than
#     MAX_BACKUP_AGE_HOURS ago (unless --force),
#   - a tracker service is not running (someone else is doing maintenance).
#
# Exit codes: 0 ok, 1 backup (or restart) failed, 2 usage, 3 skipped.
# See compose/README.md, "Fallback: host cron".
set -euo pipefail

readonly EXIT_OK=0 EXIT_FAILED=1 EXIT_USAGE=2 EXIT_SKIPPED=3
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<EOF
Usage: $(basename "$0") [--dry-run] [--force] [--force-stop] [--convert-to-wal] [--wait] [--help]

Back up online while the tracker serves when the database allows it;
otherwise stop the tracker, run one backup container, always restart it.

Options:
  --dry-run         check everything and log what would happen; stop nothing
  --force           back up even if a recent verified autonomous backup exists
  --force-stop      skip the online attempt: stop, back up, restart
  --convert-to-wal  stop the tracker, switch its SQLite file to WAL
                    (maintenance-sidecar sqlite-wal), back up, restart; the
                    next runs are online
  --wait            wait for the lock (LOCK_WAIT_SECONDS) instead of skipping
  -h, --help        show this help

Environment (defaults in brackets):
  COMPOSE_DIR           folder with docker-compose.yml and .env [script's folder]
  COMPOSE_CMD           compose command [the first that works of: docker compose,
                        docker-compose, podman-compose]
  TRACKER_SERVICES      services to stop and restart, space-separated [tracker]
  BACKUP_SERVICE        one-shot backup service [backup-once]
  BACKUP_COMMAND        its command with the tracker stopped [once]
  ONLINE_COMMAND        its command for the online attempt [once --online]
  CONVERT_COMMAND       its command for --convert-to-wal [sqlite-wal]
  BACKUP_HOST_DIR       host path of the backup folder [\$COMPOSE_DIR/storage/backup]
  MAX_BACKUP_AGE_HOURS  skip if a verified autonomous backup is younger; 0 = never skip [20]
  AUTONOMOUS_MODES      manifest modes that count as autonomous [run]
  HEALTH_URLS           URLs that must answer 2xx after the restart; empty: wait
                        until compose reports the services running []
  HEALTH_TIMEOUT        seconds to wait for health [120]
  STOP_TIMEOUT          seconds passed to 'compose stop -t' [compose default]
  LOCK_FILE             flock file [/run/lock/maintenance-backup.lock]
  LOCK_WAIT_SECONDS     how long --wait waits [3600]
  LOG_FILE              also append the log here []
  NOTIFY_WEBHOOK_URL    POST a JSON notification here on failure []
  NOTIFY_ON_SUCCESS     also notify on success (true/false) [false]

Exit codes: 0 ok, 1 backup failed, 2 usage, 3 skipped.
EOF
}

# The backup container's exit code for "cannot be copied online".
readonly SIDECAR_NOT_ONLINE=4

# --- logging ---------------------------------------------------------------

log() {
    local line
    line="[$(date '+%Y-%m-%d %H:%M:%S')] $*"
    printf '%s\n' "$line"
    if [ -n "${LOG_FILE:-}" ]; then
        printf '%s\n' "$line" >>"$LOG_FILE" || true
    fi
}

die_usage() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    printf "Try '%s --help'.\n" "$(basename "$0")" >&2
    exit "$EXIT_USAGE"
}

# Runs a command with its output also appended to LOG_FILE. The lock's fd 9
# is closed for the child so nothing it starts can keep the lock.
run_logged() {
    if [ -n "${LOG_FILE:-}" ]; then
        "$@" 9>&- 2>&1 | tee -a "$LOG_FILE"
        return "${PIPESTATUS[0]}"
    fi
    "$@" 9>&-
}

compose() {
    run_logged "${COMPOSE[@]}" "$@"
}

json_escape() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/}
    s=${s//$'\t'/ }
    printf '%s' "$s"
}

notify() {
    local status=$1 message=$2 body
    [ -n "${NOTIFY_WEBHOOK_URL:-}" ] || return 0
    body=$(printf '{"source":"maintenance-backup.sh","host":"%s","status":"%s","exit_code":%d,"message":"%s","services":"%s","time":"%s"}' \
        "$(json_escape "$(hostname)")" "$status" "$result" "$(json_escape "$message")" \
        "$(json_escape "$TRACKER_SERVICES")" "$(date -u '+%Y-%m-%dT%H:%M:%SZ')")
    if curl -fsS --max-time 15 -o /dev/null -H 'Content-Type: application/json' \
        --data-binary "$body" "$NOTIFY_WEBHOOK_URL" 9>&-; then
        log "Notification sent ($status)"
    else
        log "WARNING: notification to the webhook failed"
    fi
}

# --- configuration -----------------------------------------------------------

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

dry_run=false
force=false
force_stop=false
convert_to_wal=false
wait_lock=false

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
        --dry-run) dry_run=true ;;
        --force) force=true ;;
        --force-stop) force_stop=true ;;
        --convert-to-wal) convert_to_wal=true ;;
        --wait) wait_lock=true ;;
        -h | --help)
            usage
            exit "$EXIT_OK"
            ;;
        *) die_usage "unknown argument: $1" ;;
        esac
        shift
    done
}

load_config() {
    COMPOSE_DIR=${COMPOSE_DIR:-$SCRIPT_DIR}
    TRACKER_SERVICES=${TRACKER_SERVICES:-tracker}
    BACKUP_SERVICE=${BACKUP_SERVICE:-backup-once}
    BACKUP_COMMAND=${BACKUP_COMMAND:-once}
    ONLINE_COMMAND=${ONLINE_COMMAND:-once --online}
    CONVERT_COMMAND=${CONVERT_COMMAND:-sqlite-wal}
    read -r -a ONLINE_ARGS <<<"$ONLINE_COMMAND"
    read -r -a CONVERT_ARGS <<<"$CONVERT_COMMAND"
    MAX_BACKUP_AGE_HOURS=${MAX_BACKUP_AGE_HOURS:-20}
    AUTONOMOUS_MODES=${AUTONOMOUS_MODES:-run}
    HEALTH_URLS=${HEALTH_URLS:-}
    HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-120}
    STOP_TIMEOUT=${STOP_TIMEOUT:-}
    LOCK_WAIT_SECONDS=${LOCK_WAIT_SECONDS:-3600}
    NOTIFY_ON_SUCCESS=${NOTIFY_ON_SUCCESS:-false}
    if [ -z "${LOCK_FILE:-}" ]; then
        if [ -d /run/lock ] && [ -w /run/lock ]; then
            LOCK_FILE=/run/lock/maintenance-backup.lock
        else
            LOCK_FILE=${TMPDIR:-/tmp}/maintenance-backup.lock
        fi
    fi
    read -r -a SERVICES <<<"$TRACKER_SERVICES"
    [ "${#SERVICES[@]}" -gt 0 ] || die_usage "TRACKER_SERVICES is empty"
    [ -n "$BACKUP_SERVICE" ] || die_usage "BACKUP_SERVICE is empty"
    local var
    for var in MAX_BACKUP_AGE_HOURS HEALTH_TIMEOUT LOCK_WAIT_SECONDS; do
        is_uint "${!var}" || die_usage "$var must be a whole number, got '${!var}'"
    done
    if [ -n "$STOP_TIMEOUT" ] && ! is_uint "$STOP_TIMEOUT"; then
        die_usage "STOP_TIMEOUT must be a whole number of seconds, got '$STOP_TIMEOUT'"
    fi
    case $NOTIFY_ON_SUCCESS in
    true | false) ;;
    *) die_usage "NOTIFY_ON_SUCCESS must be true or false, got '$NOTIFY_ON_SUCCESS'" ;;
    esac
    [ -d "$COMPOSE_DIR" ] || die_usage "COMPOSE_DIR does not exist: $COMPOSE_DIR"
    BACKUP_HOST_DIR=${BACKUP_HOST_DIR:-$COMPOSE_DIR/storage/backup}
    if [ -n "${LOG_FILE:-}" ]; then
        mkdir -p "$(dirname "$LOG_FILE")" 2>/dev/null || true
        touch "$LOG_FILE" 2>/dev/null || die_usage "LOG_FILE is not writable: $LOG_FILE"
    fi
    pick_compose
}

# Sets COMPOSE (and COMPOSE_ORIGIN): COMPOSE_CMD when set, else the first of
# `docker compose` (v2 plugin), `docker-compose` (v1), `podman-compose`
# whose `version` works. The script then uses only what all three accept:
# plain `ps`, `stop [-t N]`, `start`, `run --rm`.
pick_compose() {
    local candidate try
    if [ -n "${COMPOSE_CMD+set}" ]; then
        read -r -a COMPOSE <<<"$COMPOSE_CMD"
        [ "${#COMPOSE[@]}" -gt 0 ] || die_usage "COMPOSE_CMD is empty"
        COMPOSE_ORIGIN="from COMPOSE_CMD"
        return 0
    fi
    for candidate in "docker compose" "docker-compose" "podman-compose"; do
        read -r -a try <<<"$candidate"
        command -v "${try[0]}" >/dev/null 2>&1 || continue
        if "${try[@]}" version >/dev/null 2>&1 9>&-; then
            COMPOSE=("${try[@]}")
            COMPOSE_ORIGIN="detected"
            return 0
        fi
    done
    die_usage "no working compose command: tried 'docker compose', 'docker-compose' and 'podman-compose' (\`version\` failed or not installed); install one or set COMPOSE_CMD"
}

# --- lock ------------------------------------------------------------------------

acquire_lock() {
    if ! exec 9>>"$LOCK_FILE"; then
        log "ERROR: cannot open lock file $LOCK_FILE"
        exit "$EXIT_USAGE"
    fi
    if flock -n 9; then
        return 0
    fi
    if [ "$wait_lock" = true ]; then
        log "Another run holds the lock $LOCK_FILE; waiting up to ${LOCK_WAIT_SECONDS}s"
        if flock -w "$LOCK_WAIT_SECONDS" 9; then
            log "Lock acquired"
            return 0
        fi
        log "skipped: another run still holds the lock after ${LOCK_WAIT_SECONDS}s"
        exit "$EXIT_SKIPPED"
    fi
    log "skipped: another run holds the lock ($LOCK_FILE)"
    exit "$EXIT_SKIPPED"
}

# --- skip rule: recent verified autonomous backup ----------------------------

# Prints one top-level string/boolean field of a manifest.json (the sidecar
# writes it with serde_json; artifacts carry none of these keys).
manifest_field() {
    local file=$1 key=$2
    tr -d '\n' <"$file" |
        grep -o "\"$key\"[[:space:]]*:[[:space:]]*\(\"[^\"]*\"\|true\|false\|null\)" |
        head -n 1 | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/^"//' -e 's/"$//'
}

# Sets recent_name and recent_age (seconds) to the youngest verified backup
# made in an autonomous mode; returns 1 if there is none.
newest_autonomous_backup() {
    local manifest verified mode finished finished_s now age best_age=-1 best_name=""
    now=$(date +%s)
    [ -d "$BACKUP_HOST_DIR" ] || return 1
    for manifest in "$BACKUP_HOST_DIR"/*/manifest.json; do
        [ -f "$manifest" ] || continue
        verified=$(manifest_field "$manifest" verified) || continue
        [ "$verified" = true ] || continue
        mode=$(manifest_field "$manifest" mode) || continue
        case " $AUTONOMOUS_MODES " in
        *" $mode "*) ;;
        *) continue ;;
        esac
        finished=$(manifest_field "$manifest" finished_at) || continue
        finished_s=$(date -d "$finished" +%s 2>/dev/null) || continue
        age=$((now - finished_s))
        [ "$age" -ge 0 ] || age=0
        if [ "$best_age" -lt 0 ] || [ "$age" -lt "$best_age" ]; then
            best_age=$age
            best_name=$(basename "$(dirname "$manifest")")
        fi
    done
    [ "$best_age" -ge 0 ] || return 1
    recent_name=$best_name
    recent_age=$best_age
}

# --- services ----------------------------------------------------------------------

# True if the plain `ps` table (the one form every compose implementation
# accepts: v2 and podman-compose have no common filter, v1 no --status)
# has a line naming a container of service $2 (<project>_<service>_<n> or
# <project>-<service>-<n>) whose status is Up.
ps_lists_running() {
    awk -v s="$2" '
        function names_service(f,   base, tail) {
            if (!match(f, /[_-][0-9]+$/)) return 0
            base = substr(f, 1, RSTART - 1)
            tail = substr(base, length(base) - length(s))
            return tail == "_" s || tail == "-" s
        }
        {
            up = 0; named = 0
            for (i = 1; i <= NF; i++) {
                if ($i == "Up") up = 1
                if (names_service($i)) named = 1
            }
            if (up && named) found = 1
        }
        END { exit !found }' <<<"$1"
}

# Prints the tracker services that are not running; fails if compose fails.
not_running() {
    local table svc missing=()
    table=$("${COMPOSE[@]}" ps 9>&- 2>/dev/null) || return 1
    for svc in "${SERVICES[@]}"; do
        ps_lists_running "$table" "$svc" || missing+=("$svc")
    done
    printf '%s' "${missing[*]}"
}

healthy() {
    local url missing
    if [ -n "$HEALTH_URLS" ]; then
        for url in $HEALTH_URLS; do
            curl -fsS --max-time 5 -o /dev/null "$url" 9>&- 2>/dev/null || return 1
        done
        return 0
    fi
    missing=$(not_running 2>/dev/null) || return 1
    [ -z "$missing" ]
}

wait_healthy() {
    local deadline=$((SECONDS + HEALTH_TIMEOUT))
    log "Waiting for the tracker to be healthy (up to ${HEALTH_TIMEOUT}s)..."
    while ! healthy; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "ERROR: tracker not healthy after ${HEALTH_TIMEOUT}s"
            return 1
        fi
        sleep 1
    done
    log "Tracker is healthy"
}

stop_args=()
stop_tracker() {
    log "Stopping tracker services: ${SERVICES[*]}"
    compose stop "${stop_args[@]}" "${SERVICES[@]}"
}

run_backup() {
    local marker rc=0
    marker=$(mktemp "${TMPDIR:-/tmp}/maintenance-backup.XXXXXX")
    log "Running backup container (single execution)..."
    compose run --rm "$BACKUP_SERVICE" "$BACKUP_COMMAND" || rc=$?
    # Not every compose passes the container's exit code on (podman-compose
    # 1.0 does not), so a success also needs a new verified backup.
    if [ "$rc" -eq 0 ] && [ -d "$BACKUP_HOST_DIR" ] && ! published_since "$marker"; then
        log "ERROR: the backup container exited 0 but no new verified backup appeared in $BACKUP_HOST_DIR"
        rc=1
    fi
    rm -f "$marker"
    return "$rc"
}

# The online attempt, the tracker left running. Returns 0 when a new
# verified backup was published, 4 when the sidecar refused (the database
# cannot be copied online: its message says why), 1 otherwise.
run_online_backup() {
    local marker out rc=0
    marker=$(mktemp "${TMPDIR:-/tmp}/maintenance-backup.XXXXXX")
    out=$(mktemp "${TMPDIR:-/tmp}/maintenance-backup-out.XXXXXX")
    log "Running the online backup (the tracker keeps serving)..."
    compose run --rm "$BACKUP_SERVICE" "${ONLINE_ARGS[@]}" >"$out" 2>&1 || rc=$?
    cat "$out"
    # podman-compose 1.0 passes no exit code on: the refusal's words tell.
    if [ "$rc" -eq "$SIDECAR_NOT_ONLINE" ] || grep -q 'online backup refused:' "$out"; then
        rc=$SIDECAR_NOT_ONLINE
    elif [ "$rc" -eq 0 ] && [ -d "$BACKUP_HOST_DIR" ] && ! published_since "$marker"; then
        log "ERROR: the online backup exited 0 but no new verified backup appeared in $BACKUP_HOST_DIR"
        rc=1
    elif [ "$rc" -ne 0 ]; then
        rc=1
    fi
    rm -f "$marker" "$out"
    return "$rc"
}

convert_to_wal_now() {
    log "Converting the tracker's SQLite database to WAL (tracker stopped)..."
    compose run --rm "$BACKUP_SERVICE" "${CONVERT_ARGS[@]}"
}

# True if a manifest newer than the file $1 says "verified": true.
published_since() {
    local manifest
    for manifest in "$BACKUP_HOST_DIR"/*/manifest.json; do
        if [ ! -f "$manifest" ] || [ ! "$manifest" -nt "$1" ]; then
            continue
        fi
        [ "$(manifest_field "$manifest" verified)" = true ] && return 0
    done
    return 1
}

# Starts the tracker services, three attempts; then waits for health.
start_tracker() {
    local attempt
    need_restart=false
    for attempt in 1 2 3; do
        log "Starting tracker services: ${SERVICES[*]}"
        if compose start "${SERVICES[@]}"; then
            wait_healthy && return 0
        else
            log "ERROR: starting the tracker failed (attempt $attempt of 3)"
        fi
        [ "$attempt" -lt 3 ] && sleep 2
    done
    return 1
}

# --- main --------------------------------------------------------------------------

result=$EXIT_OK
need_restart=false
started_at=$SECONDS
failure=""

fail() {
    failure=${failure:+$failure; }$1
    result=$EXIT_FAILED
    log "ERROR: $1"
}

# shellcheck disable=SC2317  # trap handler
finish() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [ "$need_restart" = true ]; then
        # Reached only when the normal path was cut short (error or signal).
        log "Restarting the tracker after an interrupted run"
        [ "$rc" -eq 0 ] && rc=$EXIT_FAILED
        [ -n "$failure" ] || failure="interrupted (exit $rc)"
        result=$EXIT_FAILED
        start_tracker || fail "tracker did not come back: ${SERVICES[*]}"
        log "=== Maintenance backup FAILED after $((SECONDS - started_at))s ==="
        notify failed "$failure"
    fi
    if [ "$rc" -gt 3 ]; then
        rc=$EXIT_FAILED
    fi
    exit "$rc"
}

# shellcheck disable=SC2317  # trap handler
on_signal() {
    log "Received $1"
    failure="interrupted by $1"
    exit "$EXIT_FAILED"
}

main() {
    parse_args "$@"
    load_config
    cd "$COMPOSE_DIR"
    [ -n "$STOP_TIMEOUT" ] && stop_args=(-t "$STOP_TIMEOUT")
    acquire_lock

    log "=== Maintenance backup started ==="
    log "Configuration:"
    log "  Compose directory: $COMPOSE_DIR"
    log "  Compose command:   ${COMPOSE[*]} ($COMPOSE_ORIGIN)"
    log "  Tracker services:  ${SERVICES[*]}"
    log "  Backup service:    $BACKUP_SERVICE"
    log "  Backup folder:     $BACKUP_HOST_DIR"
    log "  Max backup age:    ${MAX_BACKUP_AGE_HOURS}h"
    log "  Dry run:           $dry_run"
    log "  Force:             $force"
    log "  Force stop:        $force_stop"
    log "  Convert to WAL:    $convert_to_wal"

    if [ "$force" = false ] && [ "$MAX_BACKUP_AGE_HOURS" -gt 0 ]; then
        local recent_name="" recent_age=0
        if newest_autonomous_backup; then
            if [ "$recent_age" -lt $((MAX_BACKUP_AGE_HOURS * 3600)) ]; then
                log "skipped: verified autonomous backup $recent_name finished $((recent_age / 60)) min ago (< ${MAX_BACKUP_AGE_HOURS}h); use --force to back up anyway"
                exit "$EXIT_SKIPPED"
            fi
            log "Newest verified autonomous backup $recent_name is $((recent_age / 3600))h old; backing up"
        else
            log "No verified autonomous backup found in $BACKUP_HOST_DIR; backing up"
        fi
    fi

    local missing
    if ! missing=$(not_running); then
        fail "cannot list running services (${COMPOSE[*]} ps)"
        notify failed "$failure"
        exit "$EXIT_FAILED"
    fi
    if [ -n "$missing" ]; then
        log "WARNING: tracker service(s) not running: $missing"
        log "skipped: services not running (manual maintenance or crash?); not touching them"
        exit "$EXIT_SKIPPED"
    fi

    if [ "$dry_run" = true ]; then
        if [ "$force_stop" = false ] && [ "$convert_to_wal" = false ]; then
            log "DRY RUN: would first try online: ${COMPOSE[*]} run --rm $BACKUP_SERVICE ${ONLINE_ARGS[*]}"
            log "DRY RUN: and only if the database cannot be copied online:"
        fi
        log "DRY RUN: would stop: ${COMPOSE[*]} stop ${stop_args[*]} ${SERVICES[*]}"
        if [ "$convert_to_wal" = true ]; then
            log "DRY RUN: would convert: ${COMPOSE[*]} run --rm $BACKUP_SERVICE ${CONVERT_ARGS[*]}"
        fi
        log "DRY RUN: would run:  ${COMPOSE[*]} run --rm $BACKUP_SERVICE $BACKUP_COMMAND"
        log "DRY RUN: would start: ${COMPOSE[*]} start ${SERVICES[*]} and wait for health"
        log "=== Dry run complete, nothing changed ==="
        exit "$EXIT_OK"
    fi

    if [ "$force_stop" = false ] && [ "$convert_to_wal" = false ]; then
        local online_rc=0
        run_online_backup || online_rc=$?
        case $online_rc in
        0)
            log "=== Online backup completed successfully in $((SECONDS - started_at))s (the tracker was not stopped) ==="
            if [ "$NOTIFY_ON_SUCCESS" = true ]; then notify ok "online backup completed"; fi
            exit "$EXIT_OK"
            ;;
        "$SIDECAR_NOT_ONLINE")
            log "The database cannot be copied online (see above); falling back to stop-copy-start. --convert-to-wal makes a SQLite file qualify from the next run on"
            ;;
        *)
            fail "online backup failed; the tracker was not stopped"
            log "=== Maintenance backup FAILED after $((SECONDS - started_at))s: $failure ==="
            notify failed "$failure"
            exit "$EXIT_FAILED"
            ;;
        esac
    fi

    trap finish EXIT
    trap 'on_signal SIGINT' INT
    trap 'on_signal SIGTERM' TERM
    trap 'on_signal SIGHUP' HUP
    need_restart=true

    if stop_tracker; then
        if [ "$convert_to_wal" = true ] && ! convert_to_wal_now; then
            fail "converting the database to WAL failed; restarting the tracker"
        elif run_backup; then
            log "Backup container completed successfully"
        else
            fail "backup container failed; restarting the tracker anyway"
        fi
    else
        fail "stopping the tracker failed; no backup taken, restarting the tracker"
    fi

    start_tracker || fail "tracker did not come back: ${SERVICES[*]}"

    if [ "$result" -eq "$EXIT_OK" ]; then
        log "=== Maintenance backup completed successfully in $((SECONDS - started_at))s ==="
        [ "$NOTIFY_ON_SUCCESS" = true ] && notify ok "backup completed"
    else
        log "=== Maintenance backup FAILED after $((SECONDS - started_at))s: $failure ==="
        notify failed "$failure"
    fi
    exit "$result"
}

main "$@"
