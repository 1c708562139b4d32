#!/usr/bin/env bash
# Installs the local MongoDB stand-in: mongo-java-server (a MongoDB wire-protocol server in
# Java, with an on-disk H2 backend) plus a small launcher, into $CACHE/mongodb/.
# No MongoDB server build can be downloaded here, so this is what local runs use.
#
#   servers/install/mongodb.sh          # install (a second run only checks and exits)
#   servers/install/mongodb.sh --force  # reinstall
#
# Layout: lib/*.jar (dependencies), classes/MongoLauncher.class, m2/ (Maven's local
# repository, kept so a reinstall needs no network), installed.txt (what was installed).
set -euo pipefail

CACHE="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../java/mongodb" && pwd)"
DEST="$CACHE/mongodb"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

say() { echo "mongodb: $*"; }

# The stamp records the inputs, so editing the pom or the launcher triggers a reinstall.
stamp() { cat "$SOURCE/pom.xml" "$SOURCE/MongoLauncher.java" | sha256sum | cut -d' ' -f1; }

if [[ "${1:-}" != "--force" && -f "$DEST/installed.txt" && -f "$DEST/classes/MongoLauncher.class" ]] \
    && grep -qx "inputs $(stamp)" "$DEST/installed.txt"; then
    say "already installed in $DEST"
    exit 0
fi

java_ok() {
    command -v javac >/dev/null && command -v mvn >/dev/null || return 1
    local major
    major="$(javac -version 2>&1 | sed -E 's/^javac ([0-9]+).*/\1/')"
    [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 17))
}

if ! java_ok; then
    say "installing a JDK and Maven (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null
fi

mkdir -p "$DEST"
BUILD="$(mktemp -d "$DEST/.build.XXXXXX")"
trap 'rm -rf "$BUILD"' EXIT

say "copying mongo-java-server jars from Maven Central"
# Maven's output (even with -q, some colour codes) goes to a log shown only on failure.
if ! mvn -q -B -f "$SOURCE/pom.xml" -Dmaven.repo.local="$DEST/m2" \
    "$DEPENDENCY_PLUGIN:copy-dependencies" -DoutputDirectory="$BUILD/lib" -DincludeScope=runtime \
    >"$BUILD/maven.log" 2>&1; then
    cat "$BUILD/maven.log" >&2
    exit 1
fi

say "compiling the launcher"
javac -nowarn -d "$BUILD/classes" -cp "$BUILD/lib/*" "$SOURCE/MongoLauncher.java"

rm -rf "$DEST/lib" "$DEST/classes"
mv "$BUILD/lib" "$BUILD/classes" "$DEST/"
{
    echo "inputs $(stamp)"
    ls "$DEST/lib" | grep -E '^mongo-java-server-core-' | sed -E 's/^mongo-java-server-core-(.*)\.jar$/version \1/'
    echo "java $(javac -version 2>&1)"
} >"$DEST/installed.txt"
say "installed in $DEST ($(ls "$DEST/lib" | wc -l) jars)"
