#!/usr/bin/env bash
# init.sh: the one set-up step of the compose stack.
#
# Creates what `docker compose up` needs and nothing can half-do: .env (from
# .env.example), the storage folders, the maintenance token, and the owner
# the containers run as (APP_UID:APP_GID from .env). Run it before the first
# `up` and again whenever in doubt: it is idempotent, completes whatever is
# missing, repairs owners and modes, and never replaces an existing token.
#
# It also repairs the classic half-done state: when the token file was
# missing, Docker/podman create an empty DIRECTORY in its place; init.sh
# removes that empty directory and writes the token.
#
# The token is written atomically (exclusive temp file with a random name,
# mode 0600, fsync, rename, fsync of the folder); it never appears in argv
# or in the output.
#
# Usage: compose/init.sh [COMPOSE_DIR]      (default: the script's folder)
# Exit codes: 0 ready, 1 something could not be set up (the message names
# the path, its owner and the fix), 2 usage.
set -euo pipefail

die() {
    printf 'init.sh: %s\n' "$*" >&2
    exit 1
}

case ${1:-} in
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
esac
[ $# -le 1 ] || {
    echo "usage: $(basename "$0") [COMPOSE_DIR]" >&2
    exit 2
}

DIR=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
[ -f "$DIR/docker-compose.yml" ] || die "$DIR has no docker-compose.yml; pass the compose folder"
cd "$DIR"

# Reads KEY from .env (plain KEY=value lines, as compose reads them).
env_value() {
    local key=$1 default=$2 line value=""
    [ -f .env ] && line=$(grep -E "^[[:space:]]*$key=" .env | tail -n 1) && value=${line#*=}
    value=${value%\"} && value=${value#\"}
    printf '%s' "${value:-$default}"
}

owner_of() { stat -c '%U(%u):%G(%g) mode %a' "$1"; }

if [ ! -e .env ]; then
    [ -f .env.example ] || die "$DIR/.env.example is missing; restore it from the repository"
    install -m 0600 .env.example .env
    echo "created .env from .env.example (edit it: window, ports, MYSQL_PASSWORD)"
fi

APP_UID=$(env_value APP_UID 1000)
APP_GID=$(env_value APP_GID 1000)
[[ $APP_UID =~ ^[0-9]+$ && $APP_GID =~ ^[0-9]+$ ]] ||
    die ".env: APP_UID/APP_GID must be numeric ids, got '$APP_UID:$APP_GID'"
TOKEN_FILE=$(env_value MAINTENANCE_TOKEN_FILE ./storage/secrets/maintenance_token)
OWNER="$APP_UID:$APP_GID"

can_chown=false
[ "$(id -u)" -eq 0 ] && can_chown=true

# ensure_owned PATH MODE: PATH belongs to APP_UID:APP_GID with MODE.
ensure_owned() {
    local path=$1 mode=$2
    if [ "$(stat -c '%u:%g' "$path")" != "$OWNER" ]; then
        $can_chown || die "$path is owned by $(owner_of "$path"), the containers run as $OWNER; fix: sudo $0 $DIR"
        chown "$OWNER" "$path"
    fi
    chmod "$mode" "$path"
}

# Folders: created, then owned by the container user. The data and backup
# trees are chowned recursively (a restored database or a copied backup
# keeps the owner the containers need).
for d in storage/tracker/lib/database storage/backup "$(dirname "$TOKEN_FILE")"; do
    mkdir -p "$d"
done
for d in storage/tracker/lib storage/backup; do
    if [ -n "$(find "$d" \( ! -uid "$APP_UID" -o ! -gid "$APP_GID" \) -print -quit)" ]; then
        $can_chown || die "$d holds files not owned by $OWNER (e.g. $(find "$d" ! -uid "$APP_UID" -print -quit): $(owner_of "$(find "$d" ! -uid "$APP_UID" -print -quit)")); fix: sudo $0 $DIR"
        chown -R "$OWNER" "$d"
    fi
    chmod u+rwx "$d"
done
ensure_owned "$(dirname "$TOKEN_FILE")" 0700

# The token. An empty directory in its place was created by the engine when
# the file was missing: remove it. Anything else in the way is an error.
if [ -d "$TOKEN_FILE" ]; then
    if rmdir "$TOKEN_FILE" 2>/dev/null; then
        echo "removed the empty directory $TOKEN_FILE (created by the container engine because the token was missing)"
    else
        die "$TOKEN_FILE is a directory with files in it, not the token file; move it away and run $0 again"
    fi
fi
if [ ! -e "$TOKEN_FILE" ]; then
    token_dir=$(dirname "$TOKEN_FILE")
    tmp=$(mktemp "$token_dir/.maintenance_token.XXXXXXXXXX") # O_EXCL, 0600
    trap 'rm -f "$tmp"' EXIT
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$tmp"
    echo >>"$tmp"
    $can_chown && chown "$OWNER" "$tmp"
    sync "$tmp"
    mv -T "$tmp" "$TOKEN_FILE"
    trap - EXIT
    sync "$token_dir"
    echo "created the maintenance token $TOKEN_FILE (mode 0600, owner $OWNER)"
fi
[ -f "$TOKEN_FILE" ] || die "$TOKEN_FILE is not a regular file ($(stat -c %F "$TOKEN_FILE")); move it away and run $0 again"
[ -s "$TOKEN_FILE" ] || die "$TOKEN_FILE is empty; delete it and run $0 again to create a token"
ensure_owned "$TOKEN_FILE" 0600

echo "ready: $DIR (containers run as $OWNER; token $TOKEN_FILE)"
