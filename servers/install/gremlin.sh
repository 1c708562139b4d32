#!/usr/bin/env bash
# Apache TinkerPop Gremlin Server 3.7 for local runs, the stand-in for Amazon Neptune's Gremlin API:
# the server's own distribution zip from Maven Central (org.apache.tinkerpop:gremlin-server, classifier
# `distribution`), unpacked into $CACHE/gremlin. It runs on Java 17. The version matches gremlinpython's
# in pyproject.toml: a driver of another minor version fails on some requests. A second run finds the
# stamp of the same version and does nothing.
set -euo pipefail

VERSION=3.7.3
CACHE="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
DEST="$CACHE/gremlin"
HOME_DIR="$DEST/apache-tinkerpop-gremlin-server-$VERSION"

if [[ "$(cat "$DEST/installed" 2>/dev/null)" == "$VERSION" && -d "$HOME_DIR/lib" && -x "$DEST/java" ]]; then
    echo "gremlin: Gremlin Server $VERSION already installed in $DEST"
    exit 0
fi

source "$(dirname "${BASH_SOURCE[0]}")/maven-jars.sh"
use_java17_and_maven gremlin unzip
JDK="$java_home"
export JAVA_HOME="$JDK"
mkdir -p "$DEST"
rm -f "$DEST/installed"  # marks the install incomplete until the end

echo "gremlin: fetching the Gremlin Server $VERSION distribution from Maven Central (about 30 MB)"
rm -rf "$DEST/zip"
if ! mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$DEST/m2" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
    -Dartifact="org.apache.tinkerpop:gremlin-server:$VERSION:zip:distribution" \
    -DoutputDirectory="$DEST/zip" >"$DEST/maven.log" 2>&1; then
    cat "$DEST/maven.log" >&2
    echo "gremlin: Maven failed (log above, also in $DEST/maven.log)" >&2
    exit 1
fi
rm -rf "$HOME_DIR" "$DEST/unpack"
unzip -q "$DEST/zip/gremlin-server-$VERSION-distribution.zip" -d "$DEST/unpack"
mv "$DEST/unpack/apache-tinkerpop-gremlin-server-$VERSION" "$HOME_DIR"
rm -rf "$DEST/unpack" "$DEST/zip"
ln -sfn "$HOME_DIR" "$DEST/home"
ln -sfn "$JDK/bin/java" "$DEST/java"
echo "$VERSION" >"$DEST/installed"
echo "gremlin: installed Gremlin Server $VERSION in $DEST ($(ls "$HOME_DIR/lib" | wc -l) jars, Java $JDK)"
