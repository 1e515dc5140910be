# shellcheck shell=bash
# shellcheck disable=SC2154  # nofile, nproc, REPO, STACK, ... come from test-containers.sh
# The `postgres` profile of the compose stack on real containers: functions
# sourced by scripts/test-containers.sh, which starts the stand-in's image
# build early (postgres_standin_build) and runs postgres_profile_checks after
# the SQLite (and MySQL) checks, with its helpers and stack folder.
#
# No PostgreSQL image can be pulled, so a stand-in is built from the
# bookworm base with Debian's PostgreSQL 15 (scripts/postgres-standin/; the
# build starts in the background right after the base image is imported,
# see postgres_standin_build). The stack then runs as the README's
# PostgreSQL section says (.env: COMPOSE_PROFILES=postgres,
# tracker.postgresql.toml, POSTGRES_PASSWORD, BACKUP_POSTGRES_ENABLED=true,
# BACKUP_SQLITE_ENABLED=false) and goes through the same checks: healthy,
# announces, an ad hoc window publishing a verified backup owned by the
# container user that verify accepts and that restores (into a second
# database) with the announced counts. verify and restore run in the
# running sidecar container (`podman exec`: the same image, environment and
# volumes as `backup-once`, without a slow `docker-compose run` each).

# Starts the stand-in's image build in the background (the caller waits with
# postgres_standin_wait).
postgres_standin_build() {
    podman build -q --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
        -t localhost/postgres-standin:latest "$REPO/scripts/postgres-standin" \
        >"$WORK/postgres-build.log" 2>&1 &
    postgres_build_pid=$!
}

postgres_standin_wait() {
    wait "$postgres_build_pid" || die "PostgreSQL stand-in build failed: $(tail -n 20 "$WORK/postgres-build.log")"
}

# psql as the database's superuser inside the PostgreSQL container.
pg_sql() { # DB SQL
    podman exec "$(container_of postgres)" psql -X -A -t -q -v ON_ERROR_STOP=1 -U torrust -d "$1" -c "$2"
}

postgres_backup_ok() {
    local dir name sidecar restored
    dir=$(readlink -f "$BACKUPS/latest")
    name=$(basename "$dir")
    grep -q '"verified": true' "$dir/manifest.json" || { echo "$name: not verified" >&2; return 1; }
    grep -q '"engine": "postgres"' "$dir/manifest.json" || { echo "$name: no postgres artifact" >&2; return 1; }
    [ -z "$(find "$dir" ! -uid 1000)" ] || { echo "$name: files not owned by 1000" >&2; return 1; }
    sidecar=$(container_of backup-sidecar)
    podman exec "$sidecar" maintenance-sidecar verify "$name" >"$WORK/verify-postgres.log" 2>&1 ||
        { cat "$WORK/verify-postgres.log" >&2; return 1; }
    podman exec "$sidecar" maintenance-sidecar restore "$name" --engine postgres --database restored \
        >"$WORK/restore-postgres.log" 2>&1 || { cat "$WORK/restore-postgres.log" >&2; return 1; }
    restored=$(pg_sql restored "SELECT SUM(completed) FROM torrents")
    [ "$restored" = "$ANNOUNCED" ] || { echo "restored counts $restored, announced $ANNOUNCED" >&2; return 1; }
}

postgres_profile_checks() {
    postgres_standin_wait
    check "PostgreSQL stand-in image built (Debian's postgresql-15)" \
        podman image exists localhost/postgres-standin:latest
    (cd "$STACK" && dc down -v) >"$WORK/down-postgres.log" 2>&1 ||
        die "down failed: $(tail -n 20 "$WORK/down-postgres.log")"
    set_env COMPOSE_PROFILES postgres
    set_env TRACKER_CONFIG_FILE tracker.postgresql.toml
    # The tracker's password is MYSQL_PASSWORD and POSTGRES_PASSWORD joined.
    set_env MYSQL_PASSWORD ""
    set_env POSTGRES_PASSWORD "$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
    set_env POSTGRES_IMAGE localhost/postgres-standin:latest
    set_env BACKUP_POSTGRES_ENABLED true
    set_env BACKUP_MYSQL_ENABLED false
    set_env BACKUP_SQLITE_ENABLED false
    # No scheduled window during this part.
    set_env MAINTENANCE_WINDOW "$(date -u -d '+12 hours' +%H:00)-$(date -u -d '+12 hours' +%H:05)"
    check "compose/init.sh for the postgres profile" "$STACK/init.sh" >/dev/null
    mkdir -p "$STACK/storage/postgres"
    local before
    before=$(manifests | wc -l)

    step "docker-compose up -d (profile postgres)"
    (cd "$STACK" && dc up -d) >"$WORK/up-postgres.log" 2>&1 ||
        die "up -d (postgres) failed: $(tail -n 20 "$WORK/up-postgres.log")"
    check "PostgreSQL stand-in healthy (pg_isready)" wait_healthy postgres 90
    check "tracker on PostgreSQL healthy (it restarts until PostgreSQL accepts connections)" wait_healthy
    check "announces answered (PostgreSQL)" announces
    check "ad hoc window opened (PostgreSQL)" adhoc
    check "ad hoc window completed (PostgreSQL)" wait_outcomes 1 120
    check "PostgreSQL window published a backup" wait_manifests $((before + 1))
    check "PostgreSQL backup: verified, owned by 1000, verify + restore (second database) give the announced counts" \
        postgres_backup_ok
}
