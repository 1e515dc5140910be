#!/usr/bin/env bash
# Starts a throwaway MariaDB server for the test suite and prints the
# environment the tests read (TEST_MARIADB_URL, TEST_MARIADB_*).
#
# Usage: scripts/test-mariadb.sh start DIR [PORT]   # prints `export ...` lines
#        scripts/test-mariadb.sh stop DIR
#
# The server listens on 127.0.0.1:PORT (default 33060) with its data, socket
# and log under DIR, so it never touches a system installation.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
port=${3:-33060}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 2
fi

case "$cmd" in
start)
    if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
        echo "error: mariadbd not found; install it with: apt-get install -y mariadb-server mariadb-client" >&2
        exit 1
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/mysqld.pid" ] && kill -0 "$(cat "$dir/mysqld.pid")" 2>/dev/null; then
        echo "MariaDB already running from $dir" >&2
    else
    if [ ! -d "$dir/data/mysql" ]; then
        mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
            --skip-test-db --user="$(id -un)" >"$dir/install.log" 2>&1 || {
            echo "error: mariadb-install-db failed; see $dir/install.log" >&2
            exit 1
        }
    fi
    /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" \
        --port="$port" --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" \
        --log-error="$dir/mysqld.log" --user="$(id -un)" --skip-name-resolve \
        --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
    fi
    for _ in $(seq 1 60); do
        if mariadb --no-defaults --socket="$dir/mysqld.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
            break
        fi
        sleep 0.5
    done
    mariadb --no-defaults --socket="$dir/mysqld.sock" -uroot -e "
        CREATE USER IF NOT EXISTS 'tester'@'127.0.0.1' IDENTIFIED BY 'tester-pass';
        GRANT ALL PRIVILEGES ON *.* TO 'tester'@'127.0.0.1' WITH GRANT OPTION;
        FLUSH PRIVILEGES;" || {
        echo "error: MariaDB did not come up; see $dir/mysqld.log" >&2
        exit 1
    }
    echo "export TEST_MARIADB_URL=mysql://tester:tester-pass@127.0.0.1:$port"
    echo "export TEST_MARIADB_HOST=127.0.0.1"
    echo "export TEST_MARIADB_PORT=$port"
    echo "export TEST_MARIADB_USER=tester"
    echo "export TEST_MARIADB_PASSWORD=tester-pass"
    ;;
stop)
    if [ -f "$dir/mysqld.pid" ]; then
        kill "$(cat "$dir/mysqld.pid")" 2>/dev/null || true
    fi
    ;;
*)
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
