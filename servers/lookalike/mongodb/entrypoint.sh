#!/bin/bash
# `mongod --replSet rs0 --bind_ip_all` and the like: the stand-in has no such options.
set -euo pipefail
mapfile -t flags </opt/mongodb/jvm.args
exec java "${flags[@]}" -cp "/opt/mongodb/classes:/opt/mongodb/lib/*" MongoLauncher \
    --host 0.0.0.0 --port 27017 --backend h2 --data /data/db
