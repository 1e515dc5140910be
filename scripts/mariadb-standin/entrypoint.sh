#!/bin/bash
# Entry point of the MariaDB stand-in image: on an empty data folder,
# initialise it and create MARIADB_DATABASE and MARIADB_USER (identified by
# MARIADB_PASSWORD, from the environment, never on a command line); then
# run the server in the foreground on all interfaces.
set -euo pipefail
datadir=/var/lib/mysql
chown mysql:mysql "$datadir"
if [ ! -d "$datadir/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db >/dev/null
    mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket=/run/mysqld/init.sock &
    pid=$!
    for _ in $(seq 60); do
        mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break
        sleep 0.5
    done
    db=${MARIADB_DATABASE:?MARIADB_DATABASE is not set}
    user=${MARIADB_USER:?MARIADB_USER is not set}
    pass=${MARIADB_PASSWORD:?MARIADB_PASSWORD is not set}
    pass=${pass//\\/\\\\}
    pass=${pass//\'/\\\'}
    mariadb --socket=/run/mysqld/init.sock <<SQL
CREATE DATABASE IF NOT EXISTS \`$db\`;
CREATE USER IF NOT EXISTS '$user'@'%' IDENTIFIED BY '$pass';
GRANT ALL ON \`$db\`.* TO '$user'@'%';
FLUSH PRIVILEGES;
SQL
    kill "$pid"
    wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --socket=/run/mysqld/mysqld.sock
