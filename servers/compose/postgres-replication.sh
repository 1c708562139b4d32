#!/bin/bash
# Runs once, when the primary's data folder is created: allow replication connections.
set -euo pipefail
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
