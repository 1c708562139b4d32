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
exec postgres -D "$PGDATA"
