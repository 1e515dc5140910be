#!/usr/bin/env bash
# Builds the torrust-actix embedding (embeddings/torrust-actix, a Cargo
# workspace of its own) and runs its tests: its unit tests in its own
# workspace, then the end-to-end tests (tests/tests/torrust_actix.rs: the
# real binary, libtorrent, the unchanged maintenance-sidecar, SQLite and a
# throwaway PostgreSQL) from the main workspace.
#
# The embedding's target folder persists under /var/tmp, keyed by the
# torrust-actix version, so only a first run builds actix and sqlx (debug
# builds: the tests need no optimisation); later runs rebuild our crates.
#
# Usage: scripts/test-embedding-torrust-actix.sh
# Env:   TORRUST_ACTIX_TARGET_DIR  another target folder for the embedding
#        TEST_POSTGRES_URL          a PostgreSQL to use instead of a throwaway one
#        TEST_POSTGRES_PORT_WANTED  port of the throwaway PostgreSQL (54323)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
began=$(date +%s)

version=$(sed -n 's/^torrust-actix = "=\(.*\)"$/\1/p' embeddings/torrust-actix/Cargo.toml)
[ -n "$version" ] || { echo "no pinned torrust-actix version in embeddings/torrust-actix/Cargo.toml" >&2; exit 1; }
target=${TORRUST_ACTIX_TARGET_DIR:-/var/tmp/torrust-actix-$version-target}

work=$(mktemp -d "${TMPDIR:-/tmp}/embedding-tests.XXXXXX")
cleanup() {
    scripts/test-postgres.sh stop "$work/postgres" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== torrust-actix $version embedding: build and unit tests (target $target)"
(
    cd embeddings/torrust-actix
    CARGO_TARGET_DIR=$target cargo build --locked --bins
    CARGO_TARGET_DIR=$target cargo test --locked
)
built=$(date +%s)

# The sidecar the tests run is the main workspace's, unchanged.
cargo build --locked -q -p maintenance-sidecar --bins

if [ -z "${TEST_POSTGRES_URL:-}" ]; then
    port=${TEST_POSTGRES_PORT_WANTED:-54323}
    eval "$(scripts/test-postgres.sh start "$work/postgres" "$port")"
    echo "started a throwaway PostgreSQL on 127.0.0.1:$port"
fi
export TEST_POSTGRES_URL TEST_POSTGRES_HOST TEST_POSTGRES_PORT TEST_POSTGRES_USER TEST_POSTGRES_PASSWORD

echo "== end-to-end tests"
TORRUST_ACTIX_MAINTAINED=$target/debug/torrust-actix-maintained \
    cargo test --locked -p maintenance-e2e --features embedding-torrust-actix \
    --test torrust_actix -- --test-threads=2

done_at=$(date +%s)
echo "embedding tests took $((done_at - began)) s (build and unit tests $((built - began)) s, end-to-end $((done_at - built)) s)"
cd "$root"
