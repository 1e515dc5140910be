#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the test suite and prints the
# environment the tests read (TEST_POSTGRES_URL, TEST_POSTGRES_*).
#
# Usage: scripts/test-postgres.sh start DIR [PORT]   # prints `export ...` lines
#        scripts/test-postgres.sh stop DIR
#
# The cluster (initdb + pg_ctl) listens on 127.0.0.1:PORT (default 54321)
# with its data, socket and log under DIR, so it never touches a system
# installation. PostgreSQL refuses to run as root: when started as root the
# cluster runs as the unprivileged `postgres` system user (Debian's package
# creates it) through runuser. Loopback TCP needs a password
# (scram-sha-256); the superuser is `tester`.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
port=${3:-54321}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 2
fi

bindir=""
for b in /usr/lib/postgresql/*/bin; do
    [ -x "$b/pg_ctl" ] && bindir=$b
done
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null 2>&1; then
    bindir=$(dirname "$(command -v pg_ctl)")
fi

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    if [ -z "$bindir" ]; then
        echo "error: pg_ctl not found; install it with: apt-get install -y postgresql" >&2
        exit 1
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "error: running as root needs the 'postgres' system user (apt-get install -y postgresql)" >&2
            exit 1
        fi
        chown postgres: "$dir"
        # The cluster's user must be able to reach DIR.
        p=$(dirname "$dir")
        while [ "$p" != "/" ]; do
            chmod o+x "$p"
            p=$(dirname "$p")
        done
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        pw="$dir/pwfile"
        printf 'tester-pass\n' >"$pw"
        chmod 0600 "$pw"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$pw"
        as_owner "$bindir/initdb" -D "$dir/data" -U tester --pwfile="$pw" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-sync \
            >"$dir/initdb.log" 2>&1 || {
            echo "error: initdb failed; see $dir/initdb.log" >&2
            exit 1
        }
        rm -f "$pw"
    fi
    if as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        echo "PostgreSQL already running from $dir" >&2
    else
        as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c max_connections=200" \
            start >/dev/null || {
            echo "error: PostgreSQL did not come up; see $dir/postgres.log" >&2
            exit 1
        }
    fi
    echo "export TEST_POSTGRES_URL=postgresql://tester:tester-pass@127.0.0.1:$port/postgres"
    echo "export TEST_POSTGRES_HOST=127.0.0.1"
    echo "export TEST_POSTGRES_PORT=$port"
    echo "export TEST_POSTGRES_USER=tester"
    echo "export TEST_POSTGRES_PASSWORD=tester-pass"
    ;;
stop)
    if [ -n "$bindir" ] && [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
