#!/usr/bin/env bash
# Install a local Apache Cassandra 5.0 node without Docker: the server's jars come from Maven
# Central (the list is servers/java/cassandra/pom.xml) into $CACHE/cassandra/lib, and it runs
# on Java 17, the only current Java that Cassandra 5.0 supports. A second run finds the finished
# install and stops at once. Works on a fresh Debian 12 as root (installs Java 17 and Maven).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$here/../java/cassandra"
cache="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
dest="$cache/cassandra"
version="$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$project/pom.xml")"

if [[ -f "$dest/installed" && "$(cat "$dest/installed")" == "$version" \
      && -f "$dest/lib/cassandra-all-$version.jar" && -x "$dest/java" && -f "$dest/jamm.jar" ]]; then
    echo "cassandra: $version already installed in $dest"
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
    echo "cassandra: installing Java 17 and Maven from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null
fi
java_home="$(java17_home)"

echo "cassandra: resolving cassandra-all $version and its dependencies (Maven Central)"
mkdir -p "$dest"
rm -rf "$dest/lib.partial"
# Maven prints colour codes even when quiet: keep its output for a failure only.
if ! JAVA_HOME="$java_home" mvn -B -q -f "$project/pom.xml" \
        -Dmaven.repo.local="$dest/m2" \
        dependency:copy-dependencies -DoutputDirectory="$dest/lib.partial" >"$dest/maven.log" 2>&1; then
    cat "$dest/maven.log" >&2
    echo "cassandra: Maven failed (log above, also in $dest/maven.log)" >&2
    exit 1
fi
rm -rf "$dest/lib"
mv "$dest/lib.partial" "$dest/lib"

jamm=("$dest"/lib/jamm-*.jar)
ln -sfn "lib/$(basename "${jamm[0]}")" "$dest/jamm.jar"
ln -sfn "$java_home/bin/java" "$dest/java"
echo "$version" > "$dest/installed"
echo "cassandra: $version installed in $dest ($(ls "$dest/lib" | wc -l) jars, Java $java_home)"
