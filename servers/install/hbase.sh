#!/usr/bin/env bash
# HBase 2.6 for local runs (a standalone master on the local filesystem, and the Thrift server):
# hbase-server, hbase-thrift, hbase-zookeeper and their dependencies from Maven Central (the list is
# servers/java/hbase/pom.xml) into $CACHE/hbase/lib, about 120 MB. It runs on Java 17. A second run
# finds the stamp of the same sources and does nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$here/../java/hbase"
cache="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
dest="$cache/hbase"
version="$(sed -n 's:.*<hbase.version>\(.*\)</hbase.version>.*:\1:p' "$project/pom.xml")"
stamp="$(cat "$project/pom.xml" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"

if [[ "$(cat "$dest/installed" 2>/dev/null)" == "$stamp" && -f "$dest/lib/hbase-server-$version.jar" \
      && -x "$dest/java" ]]; then
    echo "hbase: $version already installed in $dest"
    exit 0
fi

source "$here/maven-jars.sh"
use_java17_and_maven hbase

echo "hbase: resolving hbase-server $version and its dependencies (Maven Central)"
mkdir -p "$dest"
rm -f "$dest/installed"
copy_jars hbase "$project/pom.xml" "$dest"
ln -sfn "$java_home/bin/java" "$dest/java"
echo "$stamp" >"$dest/installed"
echo "hbase: $version installed in $dest ($(ls "$dest/lib" | wc -l) jars, Java $java_home)"
