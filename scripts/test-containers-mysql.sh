# shellcheck shell=bash
# shellcheck disable=SC2154  # nofile, nproc, REPO, STACK, ... come from test-containers.sh
# The `mysql` profile of the compose stack on real containers, sourced by
# scripts/test-containers.sh --with-mysql after the SQLite checks (it uses
# that script's helpers and stack folder).
#
# No MariaDB image can be pulled, so a stand-in is built from the bookworm
# base with Debian's mariadb-server (scripts/mariadb-standin/). The stack
# then runs as the README's MySQL section says (.env: COMPOSE_PROFILES=mysql,
# tracker.mysql.toml, MYSQL_PASSWORD, BACKUP_MYSQL_ENABLED=true,
# BACKUP_SQLITE_ENABLED=false) and goes through the same checks: healthy,
# announces, an ad hoc window publishing a verified backup owned by the
# container user that verify accepts and that restores (into a second
# database) with the announced counts.

step "MySQL profile: building the MariaDB stand-in image"
podman build -q --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
    -t localhost/mariadb-standin:latest "$REPO/scripts/mariadb-standin" >"$WORK/mariadb-build.log" 2>&1 ||
    die "MariaDB stand-in build failed: $(tail -n 20 "$WORK/mariadb-build.log")"

(cd "$STACK" && dc down -v) >"$WORK/down.log" 2>&1 || die "down failed: $(tail -n 20 "$WORK/down.log")"
mysql_password=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
set_env COMPOSE_PROFILES mysql
set_env TRACKER_CONFIG_FILE tracker.mysql.toml
set_env MYSQL_PASSWORD "$mysql_password"
set_env MYSQL_IMAGE localhost/mariadb-standin:latest
set_env BACKUP_MYSQL_ENABLED true
set_env BACKUP_SQLITE_ENABLED false
# No scheduled window during this part.
set_env MAINTENANCE_WINDOW "$(date -u -d '+12 hours' +%H:00)-$(date -u -d '+12 hours' +%H:05)"
check "compose/init.sh for the mysql profile" "$STACK/init.sh" >/dev/null
mkdir -p "$STACK/storage/mysql"
before_mysql=$(manifests | wc -l)

step "docker-compose up -d (profile mysql)"
(cd "$STACK" && dc up -d) >"$WORK/up-mysql.log" 2>&1 || die "up -d (mysql) failed: $(tail -n 20 "$WORK/up-mysql.log")"

mysql_healthy() {
    local c
    for _ in $(seq 90); do
        c=$(container_of mysql)
        [ -n "$c" ] && podman healthcheck run "$c" >/dev/null 2>&1 && return 0
        sleep 1
    done
    podman logs --tail 20 "$(container_of mysql)" >&2 || true
    return 1
}
check "MariaDB stand-in healthy" mysql_healthy
check "tracker on MySQL healthy (it restarts until MariaDB accepts connections)" wait_healthy
check "announces answered (MySQL)" announces
check "ad hoc window opened (MySQL)" adhoc
check "ad hoc window completed (MySQL)" wait_outcomes 1 120
check "MySQL window published a backup" wait_manifests $((before_mysql + 1))

mysql_backup_ok() {
    local dir name
    dir=$(readlink -f "$BACKUPS/latest")
    name=$(basename "$dir")
    grep -q '"verified": true' "$dir/manifest.json" || { echo "$name: not verified" >&2; return 1; }
    grep -q '"engine": "mysql"' "$dir/manifest.json" || { echo "$name: no mysql artifact" >&2; return 1; }
    [ -z "$(find "$dir" ! -uid 1000)" ] || { echo "$name: files not owned by 1000" >&2; return 1; }
    (cd "$STACK" && dc run --rm -T backup-once verify "$name") >"$WORK/verify-mysql.log" 2>&1 ||
        { cat "$WORK/verify-mysql.log" >&2; return 1; }
    podman exec "$(container_of mysql)" mariadb -e \
        "CREATE DATABASE restored; GRANT ALL ON restored.* TO 'torrust'@'%'" || return 1
    (cd "$STACK" && dc run --rm -T backup-once restore "$name" --engine mysql --database restored) \
        >"$WORK/restore-mysql.log" 2>&1 || { cat "$WORK/restore-mysql.log" >&2; return 1; }
    local restored
    restored=$(podman exec "$(container_of mysql)" mariadb -N -e "SELECT SUM(completed) FROM restored.torrents")
    [ "$restored" = "$ANNOUNCED" ] || { echo "restored counts $restored, announced $ANNOUNCED" >&2; return 1; }
}
check "MySQL backup: verified, owned by 1000, verify + restore (second database) give the announced counts" mysql_backup_ok
