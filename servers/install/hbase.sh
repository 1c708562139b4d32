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

java17_home() {
    local candidate
    for candidate in /usr/lib/jvm/java-17-openjdk-*; do
        if [[ -x "$candidate/bin/java" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if ! java17_home >/dev/null || ! command -v mvn >/dev/null; then
    echo "hbase: installing Java 17 and Maven from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null
fi
java_home="$(java17_home)"

echo "hbase: resolving hbase-server $version and its dependencies (Maven Central)"
mkdir -p "$dest"
rm -f "$dest/installed"
rm -rf "$dest/lib.partial"
if ! JAVA_HOME="$java_home" mvn -B -q -Dstyle.color=never -f "$project/pom.xml" \
        -Dmaven.repo.local="$dest/m2" \
        dependency:copy-dependencies -DoutputDirectory="$dest/lib.partial" >"$dest/maven.log" 2>&1; then
    cat "$dest/maven.log" >&2
    echo "hbase: Maven failed (log above, also in $dest/maven.log)" >&2
    exit 1
fi
rm -rf "$dest/lib"
mv "$dest/lib.partial" "$dest/lib"
ln -sfn "$java_home/bin/java" "$dest/java"
echo "$stamp" >"$dest/installed"
echo "hbase: $version installed in $dest ($(ls "$dest/lib" | wc -l) jars, Java $java_home)"
