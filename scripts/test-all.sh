#!/usr/bin/env bash
# Runs the whole test suite: shell and config linters, then every Rust test
# in the workspace against a throwaway MariaDB server and a throwaway
# PostgreSQL cluster.
#
# Needs: cargo, mariadb-server, mariadb-client, postgresql, sqlite3,
# the linter shellcheck, docker-compose (parser only, no engine), promtool.
# `.ci/run` installs them on Debian. Set TEST_MARIADB_URL or
# TEST_POSTGRES_URL to use a server you already run.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/maintenance-tests.XXXXXX")
touch "$work/lint.log"
cleanup() {
    scripts/test-mariadb.sh stop "$work/mariadb" || true
    scripts/test-postgres.sh stop "$work/postgres" || true
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${TEST_MARIADB_URL:-}" ]; then
    port=${TEST_MARIADB_PORT_WANTED:-33061}
    eval "$(scripts/test-mariadb.sh start "$work/mariadb" "$port")"
    echo "started a throwaway MariaDB on 127.0.0.1:$port"
fi
export TEST_MARIADB_URL TEST_MARIADB_HOST TEST_MARIADB_PORT TEST_MARIADB_USER TEST_MARIADB_PASSWORD

if [ -z "${TEST_POSTGRES_URL:-}" ]; then
    pg_port=${TEST_POSTGRES_PORT_WANTED:-54321}
    eval "$(scripts/test-postgres.sh start "$work/postgres" "$pg_port")"
    echo "started a throwaway PostgreSQL on 127.0.0.1:$pg_port"
fi
export TEST_POSTGRES_URL TEST_POSTGRES_HOST TEST_POSTGRES_PORT TEST_POSTGRES_USER TEST_POSTGRES_PASSWORD

if [ -x scripts/lint.sh ]; then
    scripts/lint.sh 2>&1 | tee "$work/lint.log"
fi

cargo test --workspace --all-targets --locked 2>&1 | tee "$work/cargo.log"
cargo test --workspace --doc --locked 2>&1 | tee -a "$work/cargo.log"

# One closing line over everything that ran.
awk '
    /^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
    /^[0-9]+ passed, [0-9]+ failed/ { p += $1; f += $3 }
    END { if (p == 0) { print "no test ran"; exit 1 } printf "Total: %d passed, %d failed\n", p, f; exit (f > 0) }
' "$work/cargo.log" "$work/lint.log"
