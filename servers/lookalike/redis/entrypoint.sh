#!/bin/bash
set -euo pipefail
if [[ "${1:-}" == -* || "${1:-}" == *.conf ]]; then set -- redis-server "$@"; fi
if [[ "${1:-}" == redis-server ]]; then
    shift
    exec redis-server "$@" --protected-mode no --bind 0.0.0.0
fi
exec "$@"
