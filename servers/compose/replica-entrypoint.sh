#!/bin/bash
# A hot standby of $PRIMARY_HOST: copy it with pg_basebackup (once), then follow its WAL.
set -euo pipefail
export PGDATA=/var/lib/postgresql/data
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -D "$PGDATA" -R -X stream -c fast; do
    echo "waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"; sleep 1
  done
  chmod 700 "$PGDATA"
fi
# A standby refuses to start ("insufficient parameter settings") when any of these is lower
# than on the primary, and the primary sets them on its command line, which the copied
# postgresql.conf does not carry: read them from the primary and pass the same values.
settings=$(psql -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -d postgres -Atc "
  SELECT '-c ' || name || '=' || setting FROM pg_settings
  WHERE name IN ('max_connections', 'max_worker_processes', 'max_wal_senders',
                 'max_prepared_transactions', 'max_locks_per_transaction')") || settings=""  # primary gone: the copied values
# shellcheck disable=SC2086 # one word per option
exec postgres -D "$PGDATA" $settings
