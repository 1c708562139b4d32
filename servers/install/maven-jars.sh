# Sourced by the installs whose server is a set of jars from Maven Central (cassandra.sh,
# janusgraph.sh, hbase.sh, gremlin.sh, neo4j.sh), not run by itself:
#   source "$here/maven-jars.sh"; use_java17_and_maven NAME [COMMAND...]; copy_jars NAME POM DEST
# Java 17 and Maven come from Debian packages when missing; the jars a pom lists (with their
# dependencies) land in DEST/lib, through DEST/lib.partial so a failed run leaves no half folder,
# and Maven's repository is DEST/m2, so a second resolution downloads nothing.

# A JDK, not only a runtime: neo4j.sh compiles its launcher.
java17_home() {
    local candidate
    for candidate in /usr/lib/jvm/java-17-openjdk-*; do
        if [[ -x "$candidate/bin/javac" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Sets java_home for the caller. The arguments after NAME are commands the install also needs, each
# from the Debian package of the same name (unzip), installed along when missing.
use_java17_and_maven() {
    local name=$1 missing=() command
    shift
    for command in "$@"; do
        command -v "$command" >/dev/null || missing+=("$command")
    done
    if ! java17_home >/dev/null || ! command -v mvn >/dev/null || ((${#missing[@]})); then
        echo "$name: installing Java 17 and Maven ${missing[*]} from Debian packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven "${missing[@]}" >/dev/null
    fi
    java_home="$(java17_home)"
}

copy_jars() {
    local name=$1 pom=$2 dest=$3
    mkdir -p "$dest"
    rm -rf "$dest/lib.partial"
    # Maven prints colour codes even when quiet: keep its output for a failure only.
    if ! JAVA_HOME="$java_home" mvn -B -q -Dstyle.color=never -f "$pom" -Dmaven.repo.local="$dest/m2" \
            dependency:copy-dependencies -DoutputDirectory="$dest/lib.partial" >"$dest/maven.log" 2>&1; then
        cat "$dest/maven.log" >&2
        echo "$name: Maven failed (log above, also in $dest/maven.log)" >&2
        exit 1
    fi
    rm -rf "$dest/lib"
    mv "$dest/lib.partial" "$dest/lib"
}
