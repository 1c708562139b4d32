#!/usr/bin/env bash
# Neo4j Community 5.26 (LTS) for local runs: its jars from Maven Central and a small launcher
# that embeds the database and opens Bolt (servers/java/neo4j). Everything goes to
# $CACHE/neo4j; a second run finds the stamp of the same sources there and does nothing.
set -euo pipefail

CACHE="${EXAMPLES_CACHE:-$HOME/.cache/database-examples}"
DEST="$CACHE/neo4j"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../java/neo4j" && pwd)"
LAUNCHER="$SRC/src/main/java/Neo4jLauncher.java"

source "$(dirname "${BASH_SOURCE[0]}")/maven-jars.sh"

# What the install is made from: the sources here and the JDK (its archive fits one JDK build).
stamp() {
    local jdk
    jdk="$(java17_home || true)"
    {
        cat "$SRC/pom.xml" "$LAUNCHER" "${BASH_SOURCE[0]}"
        if [[ -n "$jdk" ]]; then cat "$jdk/release"; fi
    } | sha256sum | cut -c1-16
}

if [[ -f "$DEST/classpath" && "$(cat "$DEST/stamp" 2>/dev/null)" == "$(stamp)" ]]; then
    echo "neo4j: already installed in $DEST"
    exit 0
fi

use_java17_and_maven neo4j
JDK="$java_home"
export JAVA_HOME="$JDK"
mkdir -p "$DEST"
rm -f "$DEST/classpath" "$DEST/stamp"  # marks the install incomplete until the end

echo "neo4j: copying the jars from Maven Central (first time: about 150 MB)"
rm -rf "$DEST/lib.new"
if ! mvn -q -B -Dstyle.color=never -f "$SRC/pom.xml" -Dmaven.repo.local="$DEST/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$DEST/lib.new" \
    >"$DEST/maven.log" 2>&1; then
    cat "$DEST/maven.log" >&2
    exit 1
fi
rm -rf "${DEST:?}/lib"
mv "$DEST/lib.new" "$DEST/lib"

echo "neo4j: compiling the launcher"
rm -rf "$DEST/launcher" "$DEST/launcher.jar" "$DEST/launcher.jsa"
"$JDK/bin/javac" --release 17 -d "$DEST/launcher" -cp "$DEST/lib/*" "$LAUNCHER"
"$JDK/bin/jar" --create --file "$DEST/launcher.jar" -C "$DEST/launcher" .
rm -rf "$DEST/launcher"
ln -sfn "$JDK/bin/java" "$DEST/java"

# An explicit, ordered classpath of jars only: class data sharing wants the same one each start.
classpath="$DEST/launcher.jar"
while read -r jar; do classpath+=":$jar"; done < <(find "$DEST/lib" -name '*.jar' | LC_ALL=C sort)

# Record the classes a start and a few queries load into a class data sharing archive: later
# starts map them instead of parsing and verifying them again (about a third less CPU).
# Optional: without the archive the server starts all the same, only slower. The flags that
# matter to the archive (GC, heap size range, compiler) match JVM_FLAGS in servers/local/neo4j.py.
echo "neo4j: recording a class data sharing archive (one warm-up start)"
warm="$(mktemp -d)"
mkdir -p "$warm/conf"
printf '%s\n' server.bolt.enabled=true server.bolt.listen_address=127.0.0.1:0 server.http.enabled=false \
    dbms.usage_report.enabled=false server.memory.pagecache.size=32m >"$warm/conf/neo4j.conf"
if ! timeout 600 "$JDK/bin/java" -Xms128m -Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED -Dio.netty.tryReflectionSetAccessible=true \
    -Xlog:cds=off -Xlog:cds+dynamic=off -XX:ArchiveClassesAtExit="$DEST/launcher.jsa" \
    -cp "$classpath" Neo4jLauncher --warmup "$warm/home" "$warm/conf" >"$DEST/warmup.log" 2>&1; then
    echo "neo4j: warm-up failed (see $DEST/warmup.log); starting without the archive"
    rm -f "$DEST/launcher.jsa"
fi
rm -rf "$warm"

echo "$classpath" >"$DEST/classpath"
stamp >"$DEST/stamp"
echo "neo4j: installed Neo4j $(sed -n 's:.*<neo4j.version>\(.*\)</neo4j.version>.*:\1:p' "$SRC/pom.xml") in $DEST"
