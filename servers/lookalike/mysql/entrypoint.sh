#!/bin/bash
# The official mysql entrypoint's first start, in short, for MariaDB.
set -euo pipefail
if [[ "${1:-}" == -* ]]; then set -- mysqld "$@"; fi
if [[ "${1:-}" != mysqld ]]; then exec "$@"; fi
shift
# skip-name-resolve as the official image's config has it: else every connection from another
# container waits on a reverse DNS lookup that no resolver answers here.
server=(mariadbd --no-defaults --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock --performance-schema=ON --skip-name-resolve)
if [[ ! -d /var/lib/mysql/mysql ]]; then
    : "${MYSQL_ROOT_PASSWORD:?the official image refuses to start without a root password option}"
    mariadb-install-db --no-defaults --user=mysql --datadir=/var/lib/mysql \
        --auth-root-authentication-method=normal --skip-test-db >/dev/null
    "${server[@]}" --skip-networking &
    for _ in $(seq 1 300); do mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
    sql=(mariadb -uroot --socket=/run/mysqld/mysqld.sock)
    "${sql[@]}" <<SQL
CREATE USER 'root'@'%' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';
SQL
    sql+=("-p${MYSQL_ROOT_PASSWORD}")
    if [[ -n "${MYSQL_DATABASE:-}" ]]; then "${sql[@]}" -e "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`"; fi
    if [[ -n "${MYSQL_USER:-}" ]]; then
        "${sql[@]}" -e "CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY '${MYSQL_PASSWORD:?}'"
        if [[ -n "${MYSQL_DATABASE:-}" ]]; then "${sql[@]}" -e "GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'%'"; fi
    fi
    for file in /docker-entrypoint-initdb.d/*; do
        case "$file" in
        *.sh) echo "running $file"; . "$file" ;;
        *.sql) echo "running $file"; "${sql[@]}" "${MYSQL_DATABASE:-mysql}" <"$file" ;;
        esac
    done
    "${sql[@]}" -e 'SHUTDOWN'
    wait
    echo "MySQL init process done. Ready for start up."
fi
exec "${server[@]}" --bind-address=0.0.0.0 --port=3306 "$@"
