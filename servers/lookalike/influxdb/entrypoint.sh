#!/bin/bash
# Start influxd, create the init bucket as a database (a 2.x bucket is a 1.x database and
# retention policy), then stay in the foreground with it.
set -euo pipefail
influxd run -config /etc/influxdb/influxdb.conf &
server=$!
until influx ping >/dev/null 2>&1; do
    kill -0 "$server" || exit 1
    sleep 0.2
done
bucket="${DOCKER_INFLUXDB_INIT_BUCKET:-}"
if [[ -n "$bucket" ]]; then
    exec 3<>/dev/tcp/127.0.0.1/8086
    query="q=CREATE+DATABASE+%22${bucket}%22"
    printf 'POST /query HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s' \
        "${#query}" "$query" >&3
    head -n1 <&3
    exec 3>&-
fi
wait "$server"
