#!/bin/bash
# What the official postgres entrypoint does on a first start, in short: initdb as `postgres`,
# a temporary socket-only server for the init scripts, then the real server in the foreground.
set -euo pipefail
if [[ "${1:-}" == -* ]]; then set -- postgres "$@"; fi
if [[ "${1:-}" != postgres ]]; then exec "$@"; fi
if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
    # setpriv execs (runuser would fork): the server is PID 1, as under gosu in the official image.
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
: "${POSTGRES_PASSWORD:?the official image refuses to start without POSTGRES_PASSWORD}"
user="${POSTGRES_USER:-postgres}"
database="${POSTGRES_DB:-$user}"
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") -D "$PGDATA" >/dev/null
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # With the command's options (shared_preload_libraries, hba_file, ssl...), as the official image.
    options=("${@:2}" -c listen_addresses=)
    pg_ctl -D "$PGDATA" -o "$(printf '%q ' "${options[@]}")" -w start >/dev/null
    if [[ "$database" != postgres ]]; then
        psql -v ON_ERROR_STOP=1 -U "$user" -d postgres -c "CREATE DATABASE \"$database\"" >/dev/null
    fi
    for file in /docker-entrypoint-initdb.d/*; do
        case "$file" in
        *.sh) echo "running $file"; . "$file" ;;
        *.sql) echo "running $file"; psql -v ON_ERROR_STOP=1 -U "$user" -d "$database" -f "$file" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
