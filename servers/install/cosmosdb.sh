#!/usr/bin/env bash
# Build Cosmium (a Cosmos DB NoSQL API emulator in Go) from the Go module proxy into $CACHE/cosmosdb/bin.
#
# Microsoft's emulator is an image only. Cosmium speaks the same REST API over HTTPS with the
# emulators' well-known key. The proxy serves v0.1.20 by name but refuses the module's version
# list, and `go install module@version` reads that list (for deprecations) and fails: so the
# module is downloaded by name and built from inside its own folder with its own go.sum.
# Go's caches live under $CACHE/go (shared with the other Go builds): a second run only checks.
set -euo pipefail

VERSION=0.1.20
# Go >= 1.24 (the installed one, else one fetched from the module proxy: go-toolchain.sh)
CACHE="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
DEST="$CACHE/cosmosdb/bin"
BINARY="$DEST/cosmium"
STAMP="$DEST/cosmium.version"

if [[ -x "$BINARY" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; then
    echo "cosmosdb: cosmium $VERSION already installed in $DEST"
    exit 0
fi

source "$(dirname "$0")/go-toolchain.sh"
use_go cosmosdb 24
echo "cosmosdb: building cosmium $VERSION with $(go env GOVERSION)"
mkdir -p "$DEST"
LOG="$CACHE/cosmosdb/build.log"
if ! SOURCE=$(go mod download -json "github.com/pikami/cosmium@v$VERSION" 2>>"$LOG" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || [[ -z "$SOURCE" ]]; then
    tail -n 30 "$LOG" >&2
    echo "cosmosdb: download failed, log in $LOG" >&2
    exit 1
fi
if ! (cd "$SOURCE" && go build -trimpath -ldflags "-s -w" -o "$BINARY.tmp" ./cmd/server) >>"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    echo "cosmosdb: build failed, full log in $LOG" >&2
    exit 1
fi
mv "$BINARY.tmp" "$BINARY"
echo "$VERSION" >"$STAMP"
echo "cosmosdb: installed cosmium $VERSION in $DEST"
