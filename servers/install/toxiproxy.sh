#!/usr/bin/env bash
# Build Toxiproxy (toxiproxy-server) from the Go module proxy into $CACHE/toxiproxy/bin.
#
# Toxiproxy is Shopify's TCP proxy for chaos tests: clients connect to it, it forwards to the
# real server, and "toxics" added over its HTTP API (latency, jitter, bandwidth, timeouts, cut
# connections) shape what passes. The version is the compose image's (ghcr.io/shopify/toxiproxy);
# the module proxy serves it though `go list -m -versions` lists only older tags: ask for it by name.
# Go's caches live under $CACHE/go (shared with the other Go builds), so a second run of this
# script only checks the binary's version.
set -euo pipefail

VERSION=2.12.0
# Go >= 1.22 (the installed one, else one fetched from the module proxy: go-toolchain.sh)
CACHE="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
DEST="$CACHE/toxiproxy/bin"
BINARY="$DEST/toxiproxy-server"

if [[ -x "$BINARY" ]] && "$BINARY" --version 2>/dev/null | grep -q "$VERSION"; then
    echo "toxiproxy: toxiproxy-server $VERSION already installed in $DEST"
    exit 0
fi

source "$(dirname "$0")/go-toolchain.sh"
use_go toxiproxy 22
echo "toxiproxy: building toxiproxy-server $VERSION with $(go env GOVERSION)"
mkdir -p "$CACHE/toxiproxy"
LOG="$CACHE/toxiproxy/build.log"
# `go install` names the binary after its folder (cmd/server): build into a scratch GOBIN, rename.
STAGE="$(mktemp -d "$CACHE/toxiproxy/stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
if ! GOBIN="$STAGE" go install -trimpath \
    -ldflags "-s -w -X github.com/Shopify/toxiproxy/v2.Version=$VERSION" \
    "github.com/Shopify/toxiproxy/v2/cmd/server@v$VERSION" >"$LOG" 2>&1; then
    tail -n 30 "$LOG" >&2
    echo "toxiproxy: build failed, full log in $LOG" >&2
    exit 1
fi
mkdir -p "$DEST"
mv "$STAGE/server" "$BINARY"
echo "toxiproxy: installed $("$BINARY" --version 2>&1 | head -1) in $DEST"
