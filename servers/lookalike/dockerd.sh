#!/usr/bin/env bash
# A Docker engine of the run's own, for CI's Docker phase: `dockerd.sh start DIR` / `dockerd.sh stop DIR`.
#
# DIR holds everything the daemon has (data root, socket, pid, log) and is removed at stop, so
# nothing outlives the run. The daemon talks only to loopback and to its own containers:
# published ports bind 127.0.0.1, no iptables rules, no forwarding or masquerading (containers
# reach nothing outside), and registry pulls go to a dead loopback proxy so they fail at once
# instead of leaving the machine. Print `export DOCKER_HOST=...` for the caller to eval.
set -euo pipefail
action="${1:?start or stop}"
dir="$(mkdir -p "${2:?a state folder}" && cd "$2" && pwd)"
socket="unix://$dir/docker.sock"

case "$action" in
start)
    if ! command -v dockerd >/dev/null; then
        echo "dockerd: installing Debian's docker.io" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    fi
    HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= \
        setsid dockerd --host "$socket" --data-root "$dir/data" --exec-root "$dir/exec" \
        --pidfile "$dir/dockerd.pid" --storage-driver=overlay2 \
        --iptables=false --ip-forward=false --ip-masq=false --ip=127.0.0.1 \
        >"$dir/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 100); do
        if DOCKER_HOST="$socket" docker version >/dev/null 2>&1; then
            echo "export DOCKER_HOST=$socket"
            exit 0
        fi
        sleep 0.1
    done
    tail -20 "$dir/dockerd.log" >&2
    echo "dockerd did not answer on $socket" >&2
    exit 1
    ;;
stop)
    if [[ -f "$dir/dockerd.pid" ]]; then
        DOCKER_HOST="$socket" docker ps -aq 2>/dev/null | xargs -r env DOCKER_HOST="$socket" docker rm -f >/dev/null 2>&1 || true
        pid="$(cat "$dir/dockerd.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    # Overlay mounts left by a killed daemon would keep the folder from being removed.
    grep -o "$dir/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: dockerd.sh start|stop DIR" >&2
    exit 2
    ;;
esac
