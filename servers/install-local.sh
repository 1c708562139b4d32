#!/usr/bin/env bash
# Installs the local (Docker-less) servers: `bash servers/install-local.sh [engine ...]`.
# Needs root on Debian/Ubuntu. Idempotent: what is installed is skipped, downloads and builds
# are cached under ${EXAMPLES_CACHE:-~/.cache/database-examples}, so a second run takes seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export EXAMPLES_CACHE="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
mkdir -p "$EXAMPLES_CACHE"

all=(postgres postgres_secure mysql redis prometheus postgres_exporter redis_exporter alertmanager toxiproxy pgbouncer dynamodb moto neo4j cassandra mongodb influxdb couchdb gremlin janusgraph cosmosdb hbase)
engines=("$@")
[ ${#engines[@]} -eq 0 ] && engines=("${all[@]}")

if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi

# Debian packages per engine (the JVM and Go engines need their toolchains), and the tools its
# lessons drive: pgloader and percona-toolkit (migration/), pgBackRest and mariadb-backup
# (recovery/), pgAudit, an sshd for tunnels and iptables for a firewall (security/; no service of
# theirs is started).
declare -A packages=(
  [postgres]="postgresql postgresql-contrib postgresql-15-pgaudit pgbackrest pgloader openssh-server iptables pg-auto-failover-cli postgresql-15-auto-failover"
  [mysql]="mariadb-server mariadb-backup percona-toolkit"
  [redis]="redis-server"
  [prometheus]="prometheus prometheus-pushgateway"
  [postgres_secure]="postgresql postgresql-contrib postgresql-15-pgaudit"
  [postgres_exporter]="prometheus-postgres-exporter"
  [redis_exporter]="prometheus-redis-exporter"
  [alertmanager]="prometheus-alertmanager"
  [pgbouncer]="pgbouncer"
  [neo4j]="openjdk-17-jdk-headless maven"
  [cassandra]="openjdk-17-jdk-headless maven"
  [mongodb]="openjdk-17-jdk-headless maven"
  [influxdb]="curl unzip ca-certificates"
  [gremlin]="openjdk-17-jdk-headless maven unzip"  # Gremlin Server: the stand-in for Neptune's Gremlin API
  [janusgraph]="openjdk-17-jdk-headless maven"
  [dynamodb]=""
  [moto]=""  # moto[server] from PyPI, with the project (make install), as for dynamodb
  # Node.js and npm: servers/install/couchdb.sh installs them when missing (a NodeSource nodejs
  # conflicts with Debian's npm package, so no package is named here).
  [couchdb]=""
  [cosmosdb]=""  # Cosmium, built by servers/install/cosmosdb.sh with the Go toolchain it fetches if needed
  [hbase]="openjdk-17-jdk-headless maven"  # HBase 2.6 standalone + Thrift server: jars from Maven Central
)

wanted=()
for engine in "${engines[@]}"; do
  for package in ${packages[$engine]-}; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || wanted+=("$package")
  done
done
if [ ${#wanted[@]} -gt 0 ]; then
  echo "apt: installing ${wanted[*]}"
  $SUDO apt-get update -qq
  # Debian's policy script keeps these packages from starting their services: we start our own.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
fi

# The registry-built engines install in parallel: Maven downloads overlap the Go build.
logs="$(mktemp -d)"
pids=()
names=()
for engine in "${engines[@]}"; do
  if [ -f "$here/install/$engine.sh" ]; then
    bash "$here/install/$engine.sh" >"$logs/$engine.log" 2>&1 &
    pids+=($!)
    names+=("$engine")
  fi
done
failed=()
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    tail -3 "$logs/${names[$i]}.log"
  else
    echo "== ${names[$i]} FAILED:" >&2
    cat "$logs/${names[$i]}.log" >&2
    failed+=("${names[$i]}")
  fi
done
rm -rf "$logs"
if [ ${#failed[@]} -gt 0 ]; then
  echo "local servers NOT installed: ${failed[*]}" >&2
  exit 1
fi
echo "local servers installed: ${engines[*]}"
