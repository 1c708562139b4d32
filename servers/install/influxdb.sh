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
GO_FALLBACK=1.26.8 # used only when no Go >= 1.21 is on PATH
CACHE="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
DEST="$CACHE/influxdb/bin"
BINARY="$DEST/influxd"

if [[ -x "$BINARY" ]] && "$BINARY" version 2>/dev/null | grep -q "v$VERSION "; then
    echo "influxdb: influxd $VERSION already installed in $DEST"
    exit 0
fi

export GOPATH="$CACHE/go"
export GOMODCACHE="$CACHE/go/pkg/mod"
export GOCACHE="$CACHE/go/build-cache"
export GOFLAGS="-modcacherw -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

go_is_recent() {
    command -v go >/dev/null 2>&1 || return 1
    local minor
    minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
    [[ "$minor" =~ ^[0-9]+$ ]] && ((minor >= 21))
}

fetch_go() {
    # The Go toolchain is itself published as a module (golang.org/toolchain) on the proxy.
    local arch tool_dir proxy zip
    case "$(uname -m)" in
        x86_64) arch=amd64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) echo "influxdb: no Go toolchain for $(uname -m)" >&2 && exit 1 ;;
    esac
    tool_dir="$CACHE/go/toolchain/go$GO_FALLBACK"
    if [[ ! -x "$tool_dir/bin/go" ]]; then
        echo "influxdb: fetching Go $GO_FALLBACK from the module proxy"
        if ! command -v curl >/dev/null || ! command -v unzip >/dev/null; then
            apt-get update -qq && apt-get install -y -qq curl unzip ca-certificates >/dev/null
        fi
        proxy="${GOPROXY:-https://proxy.golang.org}"
        proxy="${proxy%%[,|]*}"
        [[ "$proxy" == http* ]] || proxy=https://proxy.golang.org
        zip="$CACHE/go/toolchain/go$GO_FALLBACK.zip"
        mkdir -p "$CACHE/go/toolchain"
        curl -fsSL -o "$zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_FALLBACK.linux-$arch.zip"
        rm -rf "$tool_dir.tmp" && mkdir -p "$tool_dir.tmp"
        unzip -q "$zip" -d "$tool_dir.tmp"
        mv "$tool_dir.tmp/golang.org/toolchain@v0.0.1-go$GO_FALLBACK.linux-$arch" "$tool_dir"
        rm -rf "$tool_dir.tmp" "$zip"
    fi
    export PATH="$tool_dir/bin:$PATH"
}

go_is_recent || fetch_go
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
