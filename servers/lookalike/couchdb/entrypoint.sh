#!/bin/bash
# The image's command (/opt/couchdb/bin/couchdb) is ignored, and so are COUCHDB_USER and
# COUCHDB_PASSWORD: pouchdb-server has no users, and ignore-credentials.js (servers/local/couchdb.py's
# PRELOAD) makes it ignore the credentials a URL carries. Logs go to stdout and to log.txt in /opt/couchdb/data.
set -euo pipefail
cd /opt/couchdb/data
exec node --require /opt/pouchdb-server/ignore-credentials.js \
    /opt/pouchdb-server/node_modules/pouchdb-server/bin/pouchdb-server \
    --host 0.0.0.0 --port 5984 --dir /opt/couchdb/data --config /opt/couchdb/data/config.json --no-color
