#!/usr/bin/env bash
# Build InfluxDB 1.8.10 (influxd) from the Go module proxy into $CACHE/influxdb/bin.
#
# Why 1.8.10: it is pure Go (Flux's Rust parser sits behind a build tag we leave off), and with
# flux-enabled it serves the /api/v2/write and /api/v2/query endpoints influxdb-client uses.
# InfluxDB 2.x compiles Rust for many minutes, too slow for a test run.
# Go's module, build and toolchain caches live under $CACHE/go, so a rebuild is cheap and a
# second run of this script only checks that the binary is there.
set -euo pipefail

VERSION=1.8.10
# Go >= 1.21 (the installed one, else one fetched from the module proxy: go-toolchain.sh)
CACHE="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
DEST="$CACHE/influxdb/bin"
BINARY="$DEST/influxd"

if [[ -x "$BINARY" ]] && "$BINARY" version 2>/dev/null | grep -q "v$VERSION "; then
    echo "influxdb: influxd $VERSION already installed in $DEST"
    exit 0
fi

source "$(dirname "$0")/go-toolchain.sh"
use_go influxdb 21
echo "influxdb: building influxd $VERSION with $(go env GOVERSION) (a few minutes cold)"
mkdir -p "$DEST"
LOG="$CACHE/influxdb/build.log"
if ! GOBIN="$DEST" go install -trimpath \
    -ldflags "-s -w -X main.version=$VERSION -X main.branch=1.8 -X main.commit=v$VERSION" \
    "github.com/influxdata/influxdb/cmd/influxd@v$VERSION" >"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    echo "influxdb: build failed, full log in $LOG" >&2
    exit 1
fi
echo "influxdb: installed $("$BINARY" version) in $DEST"
