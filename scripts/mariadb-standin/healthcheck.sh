#!/bin/bash
# Health check of the MariaDB stand-in: accepts the official image's
# arguments (--connect, --innodb_initialized) and answers whether the
# server takes connections with InnoDB up.
mariadb --socket=/run/mysqld/mysqld.sock -N -e "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE = 'InnoDB' AND SUPPORT IN ('YES', 'DEFAULT')" | grep -qx 1
