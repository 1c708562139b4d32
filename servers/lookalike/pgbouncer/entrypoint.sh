#!/bin/bash
# Writes the configuration edoburu/pgbouncer would write from its variables, then runs
# PgBouncer as the `postgres` account (it refuses root).
set -euo pipefail
config=/etc/pgbouncer
cat >"$config/pgbouncer.ini" <<INI
[databases]
${DB_NAME:-*} = host=${DB_HOST:?} port=${DB_PORT:-5432} dbname=${DB_NAME:-postgres}
[pgbouncer]
listen_addr = 0.0.0.0
listen_port = ${LISTEN_PORT:-6432}
auth_type = ${AUTH_TYPE:-md5}
auth_file = $config/userlist.txt
pool_mode = ${POOL_MODE:-session}
max_client_conn = ${MAX_CLIENT_CONN:-100}
default_pool_size = ${DEFAULT_POOL_SIZE:-20}
ignore_startup_parameters = extra_float_digits
admin_users = ${ADMIN_USERS:-postgres}
unix_socket_dir =
INI
printf '"%s" "%s"\n' "${DB_USER:?}" "${DB_PASSWORD:?}" >"$config/userlist.txt"
chown -R postgres:postgres "$config"
exec runuser -u postgres -- pgbouncer "$config/pgbouncer.ini"
