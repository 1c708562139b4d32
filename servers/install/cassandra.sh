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

source "$here/maven-jars.sh"
use_java17_and_maven cassandra

echo "cassandra: resolving cassandra-all $version and its dependencies (Maven Central)"
copy_jars cassandra "$project/pom.xml" "$dest"

jamm=("$dest"/lib/jamm-*.jar)
ln -sfn "lib/$(basename "${jamm[0]}")" "$dest/jamm.jar"
ln -sfn "$java_home/bin/java" "$dest/java"
echo "$version" > "$dest/installed"
echo "cassandra: $version installed in $dest ($(ls "$dest/lib" | wc -l) jars, Java $java_home)"
