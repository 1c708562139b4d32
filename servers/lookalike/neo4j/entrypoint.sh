#!/bin/bash
# neo4j.conf from the launcher's settings plus NEO4J_* variables, then the embedded server.
set -euo pipefail
mkdir -p /conf
cp /opt/neo4j/neo4j.conf /conf/neo4j.conf
echo "server.bolt.listen_address=0.0.0.0:7687" >>/conf/neo4j.conf
heap=()
while IFS='=' read -r name value; do
    case "$name" in
    NEO4J_AUTH | NEO4J_ACCEPT_LICENSE_AGREEMENT | NEO4J_PASSWORD) ;;
    NEO4J_server_memory_heap_max__size) heap=("-Xmx${value}") ;;
    NEO4J_server_memory_heap_initial__size) heap+=("-Xms${value}") ;;
    NEO4J_*)
        # As the official image: strip the prefix, `__` is `_`, `_` is `.`.
        setting="${name#NEO4J_}"; setting="${setting//__/@}"; setting="${setting//_/.}"
        setting="${setting//@/_}"
        sed -i "/^${setting//./\\.}=/d" /conf/neo4j.conf  # a variable overrides the default
        echo "${setting}=${value}" >>/conf/neo4j.conf
        ;;
    esac
done < <(env)
export NEO4J_PASSWORD="${NEO4J_AUTH#neo4j/}"
mapfile -t flags </opt/neo4j/jvm.args
exec java "${flags[@]}" "${heap[@]}" -cp "/opt/neo4j/launcher.jar:/opt/neo4j/lib/*" Neo4jLauncher /data /conf
