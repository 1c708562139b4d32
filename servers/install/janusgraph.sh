#!/usr/bin/env bash
# JanusGraph 1.1 Server for local runs, with the in-memory storage backend: its jars from Maven Central
# (the list is servers/java/janusgraph/pom.xml, which imports JanusGraph's own pom as a BOM) into
# $CACHE/janusgraph/lib. It runs on Java 17. A second run finds the stamp of the same sources and
# does nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$here/../java/janusgraph"
cache="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
dest="$cache/janusgraph"
version="$(sed -n 's:.*<janusgraph.version>\(.*\)</janusgraph.version>.*:\1:p' "$project/pom.xml")"
stamp="$(cat "$project/pom.xml" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"

if [[ "$(cat "$dest/installed" 2>/dev/null)" == "$stamp" && -f "$dest/lib/janusgraph-server-$version.jar" \
      && -x "$dest/java" ]]; then
    echo "janusgraph: $version already installed in $dest"
    exit 0
fi

source "$here/maven-jars.sh"
use_java17_and_maven janusgraph

echo "janusgraph: resolving janusgraph-server $version and its dependencies (Maven Central, about 60 MB)"
mkdir -p "$dest"
rm -f "$dest/installed"
copy_jars janusgraph "$project/pom.xml" "$dest"
ln -sfn "$java_home/bin/java" "$dest/java"
echo "$stamp" >"$dest/installed"
echo "janusgraph: $version installed in $dest ($(ls "$dest/lib" | wc -l) jars, Java $java_home)"
