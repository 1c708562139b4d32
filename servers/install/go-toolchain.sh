# Sourced by the Go builds (influxdb.sh, toxiproxy.sh, cosmosdb.sh), not run by itself:
#   source "$(dirname "$0")/go-toolchain.sh"; use_go NAME MIN_MINOR
# Puts Go's module, build and toolchain caches under $CACHE/go (shared by every Go build, so a
# rebuild is cheap), and makes sure a Go >= 1.MIN_MINOR is on PATH: the installed one, else the
# toolchain the Go module proxy publishes as a module (golang.org/toolchain), cached there too.
GO_FALLBACK=1.26.8

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
    [[ "$minor" =~ ^[0-9]+$ ]] && ((minor >= $1))
}

fetch_go() {
    local name=$1 arch tool_dir proxy zip
    case "$(uname -m)" in
        x86_64) arch=amd64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) echo "$name: no Go toolchain for $(uname -m)" >&2 && exit 1 ;;
    esac
    tool_dir="$CACHE/go/toolchain/go$GO_FALLBACK"
    if [[ ! -x "$tool_dir/bin/go" ]]; then
        echo "$name: fetching Go $GO_FALLBACK from the module proxy"
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

use_go() {
    go_is_recent "$2" || fetch_go "$1"
}
