#!/usr/bin/env bash
# test-containers.sh: builds the real images and runs the real compose stack.
#
# What `compose/` ships is only worth something if it runs, so this script
# does what a user does, on real containers (podman + runc, driven by
# docker-compose v1 through podman's Docker-compatible API socket):
#   1. installs podman, runc, docker-compose, debootstrap, ... (apt, idempotent);
#   2. configures the engine in its own work folder (CONTAINERS_CONF,
#      CONTAINERS_STORAGE_CONF): runc (crun fails under hybrid cgroups),
#      cgroupfs, explicit nofile/nproc ulimits (rlimits cannot be raised),
#      its own image store and network config, nothing left on the machine;
#   3. bootstraps debian:bookworm-slim with debootstrap from the machine's
#      configured Debian mirror (no registry needed; the tarball is cached in
#      CACHE_DIR), imports it with `podman import`;
#   4. builds both binaries on the host and both images through the
#      `builder` build context (compose/build-images.sh: the offline path);
#   5. sets up a fresh stack folder with compose/init.sh, as the README says,
#      and checks: up -d, healthy, announces; a scheduled window (the next
#      minute, through .env) and an ad hoc window each publish a verified
#      backup owned by the container user that verify and restore accept,
#      with the announced counts; a tracker restarted inside the completed
#      window does not run it again; the fallback script exits 3 after the
#      autonomous backup, with --force backs up online (the file is in
#      WAL mode, the tracker keeps its process), and with --force
#      --force-stop stops, backs up, restarts (new process); the build
#      context holds no secrets; start-up checks name a bad token file.
#   6. the `postgres` profile on a PostgreSQL stand-in image (bookworm +
#      Debian's postgresql-15, built in the background meanwhile): healthy,
#      announces, an ad hoc window publishing a verified backup that
#      restores into a second database with the announced counts
#      (scripts/test-containers-postgres.sh; --without-postgres skips it).
# With --with-mysql it also builds a MariaDB stand-in image (bookworm +
# Debian's mariadb-server) and runs the `mysql` profile through a window.
# With --save-images FILE it saves both images to FILE (podman save) for
# scripts/test-kubernetes.sh --images FILE.
#
# Usage: scripts/test-containers.sh [--with-mysql] [--without-postgres] [--keep]
#   [--save-images FILE]
# Environment: CACHE_DIR (default /var/tmp/test-containers-cache),
#   WORK_PARENT (default /var/tmp), BIN_PROFILE (debug|release, default debug),
#   DEBIAN_MIRROR (default: read from /etc/apt/sources*).
# Needs root (apt, podman). Exit 0 when every check passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WITH_MYSQL=false
WITH_POSTGRES=true
KEEP=false
SAVE_IMAGES=""
while [ $# -gt 0 ]; do
    arg=$1
    shift
    case $arg in
    --save-images)
        SAVE_IMAGES=${1:?--save-images needs a file}
        shift
        ;;
    --with-mysql) WITH_MYSQL=true ;;
    --without-postgres) WITH_POSTGRES=false ;;
    --keep) KEEP=true ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "test-containers.sh: unknown argument $arg (try --help)" >&2
        exit 2
        ;;
    esac
done
[ "$(id -u)" -eq 0 ] || {
    echo "test-containers.sh: needs root (apt-get, podman with runc)" >&2
    exit 2
}

CACHE_DIR=${CACHE_DIR:-/var/tmp/test-containers-cache}
BIN_PROFILE=${BIN_PROFILE:-debug}
# step, die, check, and the engine set-up.
# shellcheck source=scripts/podman-engine.sh
. "$REPO/scripts/podman-engine.sh"

# --- 1. packages ----------------------------------------------------------------

"$REPO/scripts/apt-ensure.sh" podman runc conmon containernetworking-plugins \
    golang-github-containernetworking-plugin-dnsname iptables uidmap debootstrap docker-compose \
    podman-compose curl sqlite3 zstd python3 systemd

# --- 2. engine ------------------------------------------------------------------------

mkdir -p "${WORK_PARENT:-/var/tmp}" "$CACHE_DIR"
WORK=$(mktemp -d "${WORK_PARENT:-/var/tmp}/test-containers.XXXXXX")
ENGINE=$WORK/engine
SOCK=$ENGINE/podman.sock
PROJECT=mwtest$$
service_pid=""

cleanup() {
    local rc=$?
    set +e
    if [ -n "${STACK:-}" ] && [ -S "$SOCK" ]; then
        (cd "$STACK" && dc --profile mysql --profile postgres --profile backup down -v --remove-orphans >/dev/null 2>&1)
    fi
    podman rm -af -t 2 >/dev/null 2>&1
    podman pod rm -af >/dev/null 2>&1
    podman network prune -f >/dev/null 2>&1
    [ -n "${postgres_build_pid:-}" ] && kill "$postgres_build_pid" 2>/dev/null && wait "$postgres_build_pid" 2>/dev/null
    [ -n "$service_pid" ] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
    podman_engine_teardown "$rc" "$KEEP" "$WORK" "$ENGINE"
}
trap cleanup EXIT

podman_engine_setup "$ENGINE"
export DOCKER_HOST=unix://$SOCK
podman system service --time=0 "unix://$SOCK" >"$WORK/podman-service.log" 2>&1 &
service_pid=$!
for _ in $(seq 100); do
    [ -S "$SOCK" ] && curl -fsS --unix-socket "$SOCK" -o /dev/null http://d/_ping 2>/dev/null && break
    sleep 0.1
done
check "podman API socket answers (runc, ulimits nofile=$nofile nproc=$nproc)" \
    curl -fsS --unix-socket "$SOCK" -o /dev/null http://d/_ping

# --- 3. base image ----------------------------------------------------------------------

podman_base_image "$CACHE_DIR" "$WORK"
if [ "$WITH_POSTGRES" = true ]; then
    # shellcheck source=scripts/test-containers-postgres.sh
    . "$REPO/scripts/test-containers-postgres.sh"
    step "building the PostgreSQL stand-in image in the background"
    postgres_standin_build
fi

# --- 4. binaries and images -------------------------------------------------------------

podman_build_images "$WORK/build-images.log" "$BIN_PROFILE"
if [ -n "$SAVE_IMAGES" ]; then
    podman_save_images "$SAVE_IMAGES"
    check "images saved for the Kubernetes test ($SAVE_IMAGES)" test -s "$SAVE_IMAGES"
fi

glibc_ok() {
    podman run --rm --entrypoint /usr/local/bin/reference-tracker \
        maintenance-window/reference-tracker:latest --help >/dev/null
}
check "host-built binary runs in the bookworm image" glibc_ok

# Finding: secrets and data must never reach the build context.
context_is_clean() {
    local probe=$WORK/context-probe
    mkdir -p "$REPO/compose/storage/secrets"
    # Plant what a used deployment leaves behind, then build a probe that
    # lists the context the engine received.
    local planted=(compose/storage/secrets/.probe-token compose/.env compose/storage/tracker/lib/.probe.db
        compose/storage/mysql/.probe-ibdata compose/storage/backup/.probe-backup)
    local p
    for p in "${planted[@]}"; do
        [ -e "$REPO/$p" ] && continue
        mkdir -p "$(dirname "$REPO/$p")"
        echo probe >"$REPO/$p"
        echo "$p" >>"$WORK/planted"
    done
    printf 'FROM docker.io/library/debian:bookworm-slim\nCOPY . /ctx\nRUN find /ctx -type f | sed "s|^/ctx/||" | sort > /files\n' >"$WORK/Dockerfile.probe"
    podman build -q -f "$WORK/Dockerfile.probe" -t context-probe "$REPO" >/dev/null
    podman run --rm context-probe cat /files >"$probe"
    while read -r p; do rm -f "$REPO/$p"; done <"$WORK/planted"
    rmdir "$REPO/compose/storage/mysql" "$REPO/compose/storage/secrets" 2>/dev/null || true
    podman rmi -f context-probe >/dev/null
    if grep -E '^(compose/storage/(secrets|tracker/lib|mysql|backup)/|compose/\.env$|target/|\.git/)' "$probe"; then
        return 1
    fi
    grep -qx 'Cargo.toml' "$probe" && grep -qx 'compose/Dockerfile' "$probe"
}
check "build context holds no token, .env, database, MariaDB data or backups (.dockerignore)" context_is_clean

# --- 5. the stack -------------------------------------------------------------------------

dc() { docker-compose -p "$PROJECT" "$@"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

set_env() { # KEY VALUE: in the stack's .env
    if grep -q "^$1=" "$STACK/.env"; then
        sed -i "s|^$1=.*|$1=$2|" "$STACK/.env"
    else
        echo "$1=$2" >>"$STACK/.env"
    fi
}

STACK=$WORK/stack
mkdir -p "$STACK"
# A fresh checkout of compose/ (no runtime data), set up the README's way.
(cd "$REPO/compose" && tar --exclude=./storage/tracker/lib --exclude=./storage/backup \
    --exclude=./storage/secrets --exclude=./storage/mysql --exclude=./.env -cf - .) | tar -C "$STACK" -xf -

# Finding: a missing token file becomes a directory and the services
# crash-loop. The tracker must fail at start naming the path and the fix.
token_dir_is_named() {
    local out=$WORK/token-dir.out
    mkdir -p "$WORK/token-dir/maintenance_token" "$WORK/token-dir/lib/database"
    chown -R 1000:1000 "$WORK/token-dir/lib"
    podman run --rm --user 1000:1000 \
        -v "$STACK/storage/tracker/etc:/etc/torrust/tracker:ro" \
        -v "$WORK/token-dir/lib:/var/lib/torrust/tracker" \
        -v "$WORK/token-dir/maintenance_token:/run/secrets/maintenance_token:ro" \
        maintenance-window/reference-tracker:latest >"$out" 2>&1 && return 1
    grep -q '/run/secrets/maintenance_token' "$out" && grep -qi 'is a directory' "$out" && grep -q 'init.sh' "$out"
}
check "tracker refuses a token_file that is a directory, naming the path and the fix" token_dir_is_named

cp "$STACK/.env.example" "$STACK/.env"
HTTP_PORT=$(free_port)
HEALTH_PORT=$(free_port)
API_PORT=$(free_port)
set_env TRACKER_HTTP_PORT "127.0.0.1:$HTTP_PORT"
set_env TRACKER_HEALTH_BIND "127.0.0.1:$HEALTH_PORT"
set_env MAINTENANCE_API_BIND "127.0.0.1:$API_PORT"
set_env MAINTENANCE_ANNOUNCE_POLICY reject
# A scheduled window starting at the next full minute (at least 40 s ahead,
# so the stack is up in time), 3 minutes long.
start_epoch=$(((($(date +%s) + 40) / 60 + 1) * 60))
WINDOW="$(date -u -d "@$start_epoch" +%H:%M)-$(date -u -d "@$((start_epoch + 180))" +%H:%M)"
set_env MAINTENANCE_WINDOW "$WINDOW"
set_env MAINTENANCE_TIMEZONE UTC
check "compose/init.sh sets up storage, token and owners" "$STACK/init.sh" >/dev/null
check "compose/init.sh is idempotent" "$STACK/init.sh" >/dev/null
TOKEN=$(cat "$STACK/storage/secrets/maintenance_token")

step "docker-compose up -d (window $WINDOW UTC)"
(cd "$STACK" && dc up -d) >"$WORK/up.log" 2>&1 || die "up -d failed: $(tail -n 20 "$WORK/up.log")"

API=http://127.0.0.1:$API_PORT/maintenance/v1
container_of() { podman ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$1" | head -n 1; }

wait_healthy() { # [SERVICE (default tracker)] [TRIES (default 60, one a second)]
    local svc=${1:-tracker} c
    for _ in $(seq "${2:-60}"); do
        c=$(container_of "$svc")
        # Healthchecks need systemd timers on podman: run them by hand.
        if [ -n "$c" ] && podman healthcheck run "$c" >/dev/null 2>&1; then
            [ "$(podman inspect -f '{{.State.Health.Status}}' "$c" 2>/dev/null)" = healthy ] && return 0
        fi
        sleep 1
    done
    podman logs --tail 20 "$(container_of "$svc")" >&2 || true
    return 1
}
check "tracker healthy (healthcheck run by hand)" wait_healthy
# The sidecar may start before the tracker listens (one "unreachable,
# retrying in 1 s" warning): the night's checks below count from a
# second after the maintenance API answers (podman's --since has whole
# seconds), when every such attempt is over.
api_answers() {
    for _ in $(seq 30); do
        curl -fsS --max-time 2 -o /dev/null "$API/status" && return 0
        sleep 1
    done
    return 1
}
check "maintenance API answers" api_answers
sleep 2
HEALTHY_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)

announce_completed() { # HEX40 PEER_NO
    local hash
    hash=$(printf '%s' "$1" | sed 's/../%&/g')
    curl -fsS --max-time 5 -o /dev/null \
        "http://127.0.0.1:$HTTP_PORT/announce?info_hash=$hash&peer_id=-CT0001-00000000000$2&port=6881&uploaded=0&downloaded=100&left=0&event=completed"
}
announces() {
    announce_completed aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 &&
        announce_completed aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 2 &&
        announce_completed bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb 1
}
check "announces answered" announces
ANNOUNCED=3

status() { curl -fsS --max-time 5 "$API/status"; }
outcomes_completed() { status | python3 -c 'import json,sys; print(sum(1 for o in json.load(sys.stdin)["last_outcomes"] if o["outcome"] == "completed"))'; }

# wait_outcomes N TIMEOUT: N completed windows in the status.
wait_outcomes() {
    local deadline=$((SECONDS + $2))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ "$(outcomes_completed 2>/dev/null || echo 0)" -ge "$1" ] && return 0
        sleep 2
    done
    status >&2 || true
    return 1
}

BACKUPS=$STACK/storage/backup
manifests() { find "$BACKUPS" -mindepth 2 -maxdepth 2 -name manifest.json | sort; }

# backup_ok DIR: verified, owned by the container user, verify + restore
# accept it, the restored database holds the announced counts.
backup_ok() {
    local dir=$1 name restored
    name=$(basename "$dir")
    grep -q '"verified": true' "$dir/manifest.json" || { echo "$name: not verified" >&2; return 1; }
    [ "$(stat -c %u:%g "$dir")" = 1000:1000 ] || { echo "$name: owner $(stat -c %u:%g "$dir")" >&2; return 1; }
    [ -z "$(find "$dir" ! -uid 1000)" ] || { echo "$name: files not owned by 1000" >&2; return 1; }
    (cd "$STACK" && dc run --rm -T backup-once verify "$name") >"$WORK/verify.log" 2>&1 ||
        { cat "$WORK/verify.log" >&2; return 1; }
    restored=$WORK/restore-$name
    mkdir -p "$restored" && chown 1000:1000 "$restored"
    (cd "$STACK" && dc run --rm -T -v "$restored:/restore" backup-once \
        restore "$name" --engine sqlite --to /restore/sqlite3.db --force) >"$WORK/restore.log" 2>&1 ||
        { cat "$WORK/restore.log" >&2; return 1; }
    [ "$(sqlite3 "$restored/sqlite3.db" 'select sum(completed) from torrents')" = "$ANNOUNCED" ] ||
        { echo "$name: restored counts $(sqlite3 "$restored/sqlite3.db" 'select sum(completed) from torrents'), announced $ANNOUNCED" >&2; return 1; }
}

step "waiting for the scheduled window at $(date -u -d "@$start_epoch" +%H:%M:%S)"
check "scheduled window completed" wait_outcomes 1 $((start_epoch - $(date +%s) + 120))
check "scheduled window published one backup" test "$(manifests | wc -l)" -eq 1
check "scheduled backup: verified, owned by 1000, verify + restore give the announced counts" \
    backup_ok "$(dirname "$(manifests | head -n 1)")"

# Finding: a warning every night (the database is mounted read-only in the
# sidecar). A good night logs no warning at all, in either container, from
# the moment the stack is up.
no_warnings() {
    local svc bad=0
    for svc in tracker backup-sidecar; do
        if podman logs --since "$HEALTHY_AT" "$(container_of "$svc")" 2>&1 | grep -E ' (WARN|ERROR) '; then
            bad=1
        fi
    done
    [ "$bad" -eq 0 ]
}
check "a good scheduled window logs no warning (read-only database mount included)" no_warnings

# Finding: a tracker restarted inside its (completed) window must not run
# it again. The window is still open for minutes.
restart_in_window_no_rerun() {
    local before
    before=$(manifests | wc -l)
    [ "$(date +%s)" -lt $((start_epoch + 150)) ] || { echo "too late in the window to test the restart" >&2; return 1; }
    (cd "$STACK" && dc restart tracker) >/dev/null 2>&1
    wait_healthy tracker || return 1
    sleep 8
    [ "$(status | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = idle ] || return 1
    [ "$(manifests | wc -l)" -eq "$before" ]
}
check "tracker restarted inside the completed window stays idle, no second backup" restart_in_window_no_rerun

step "ad hoc window through the API"
adhoc() {
    curl -fsS --max-time 5 -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data '{"duration_secs":120}' "$API/windows"
}
check "ad hoc window opened with the token" adhoc
check "ad hoc window completed" wait_outcomes 1 90
wait_manifests() {
    for _ in $(seq 60); do
        [ "$(manifests | wc -l)" -ge "$1" ] && return 0
        sleep 1
    done
    return 1
}
check "ad hoc window published a second backup" wait_manifests 2
check "ad hoc backup: verified, owned by 1000, verify + restore give the announced counts" \
    backup_ok "$(readlink -f "$BACKUPS/latest")"

# --- 6. the fallback script against the real containers ----------------------------------

fallback() {
    COMPOSE_DIR=$STACK COMPOSE_CMD="docker-compose -p $PROJECT" LOCK_FILE=$WORK/fallback.lock \
        HEALTH_URLS="http://127.0.0.1:$HEALTH_PORT/health_check" HEALTH_TIMEOUT=60 \
        "$REPO/compose/maintenance-backup.sh" "$@" >"$WORK/fallback.log" 2>&1
}
fallback_skips() {
    local rc=0
    fallback || rc=$?
    [ "$rc" -eq 3 ] && grep -q 'skipped: verified autonomous backup' "$WORK/fallback.log" &&
        grep -q 'Compose command:.*docker-compose' "$WORK/fallback.log"
}
check "fallback exits 3 after a good autonomous backup" fallback_skips

# Runs the fallback with ARGS, then checks the tracker's process (`same`:
# the online path left it alone; `new`: stop-copy-start restarted it), its
# health, and the new backup's mode, consistency and verification.
fallback_outcome() { # same|new CONSISTENCY ARGS...
    local process=$1 consistency=$2 pid_before pid_after
    shift 2
    pid_before=$(podman inspect -f '{{.State.Pid}}' "$(container_of tracker)")
    fallback "$@" || { cat "$WORK/fallback.log" >&2; return 1; }
    pid_after=$(podman inspect -f '{{.State.Pid}}' "$(container_of tracker)")
    case $process in
    same) [ "$pid_before" = "$pid_after" ] || { echo "the online path restarted the tracker" >&2; return 1; } ;;
    new) [ "$pid_before" != "$pid_after" ] || { echo "tracker process not restarted" >&2; return 1; } ;;
    esac
    curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$HEALTH_PORT/health_check" || return 1
    grep -q '"mode": "once"' "$BACKUPS/latest/manifest.json" || return 1
    grep -q "\"consistency\": \"$consistency\"" "$BACKUPS/latest/manifest.json" || return 1
    backup_ok "$(readlink -f "$BACKUPS/latest")"
}
# The tracker's SQLite file is in WAL mode, so the fallback's first choice
# is the online backup: the tracker keeps its process.
check "fallback --force on a WAL file: online backup, tracker not restarted, consistency online, verified" \
    fallback_outcome same online --force
check "fallback --force --force-stop: stop, backup-once, restart (new process), exit 0, verified backup" \
    fallback_outcome new uncoordinated --force --force-stop

# Finding: the systemd unit requires docker.service, which podman hosts
# lack. The podman unit must verify on this (podman) host.
podman_unit_verifies() {
    "$REPO/scripts/verify-systemd-units.sh" "$REPO/compose/systemd/podman/maintenance-backup.service" \
        "$WORK/units"
}
if command -v systemd-analyze >/dev/null; then
    check "podman systemd unit verifies on a podman host (no docker.service)" podman_unit_verifies
fi

# --- 7. MariaDB stand-in (optional) --------------------------------------------------------

if [ "$WITH_MYSQL" = true ]; then
    # shellcheck source=scripts/test-containers-mysql.sh
    . "$REPO/scripts/test-containers-mysql.sh"
fi

# --- 8. PostgreSQL stand-in -----------------------------------------------------------------

if [ "$WITH_POSTGRES" = true ]; then
    postgres_profile_checks
fi

step "all container checks passed in $((SECONDS - T0))s"
