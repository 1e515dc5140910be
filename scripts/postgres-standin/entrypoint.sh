#!/bin/bash
# Entry point of the PostgreSQL stand-in image: on an empty data folder,
# initialise a cluster whose superuser is POSTGRES_USER (password
# POSTGRES_PASSWORD, handed to initdb in a 0600 file, never on a command
# line), create POSTGRES_DB, and accept password logins (scram-sha-256)
# from the network; then run the server in the foreground as `postgres`.
set -euo pipefail
data=/var/lib/postgresql/data
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
mkdir -p "$data"
chown postgres:postgres "$data"
chmod 0700 "$data"
install -d -o postgres -g postgres /run/postgresql
if [ ! -s "$data/PG_VERSION" ]; then
    user=${POSTGRES_USER:?POSTGRES_USER is not set}
    pass=${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}
    db=${POSTGRES_DB:-$user}
    pwfile=$(mktemp)
    chown postgres "$pwfile"
    printf '%s\n' "$pass" >"$pwfile"
    as_postgres initdb -D "$data" -U "$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >>"$data/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
    if [ "$db" != postgres ]; then
        as_postgres pg_ctl -D "$data" -o "-c listen_addresses=''" -w start >/dev/null
        as_postgres psql -q -v ON_ERROR_STOP=1 -U "$user" -d postgres \
            -c "CREATE DATABASE \"$db\" OWNER \"$user\""
        as_postgres pg_ctl -D "$data" -m fast -w stop >/dev/null
    fi
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups -- postgres -D "$data"
