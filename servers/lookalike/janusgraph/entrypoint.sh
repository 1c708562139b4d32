#!/bin/bash
# As the official image's entrypoint: the properties of JANUS_PROPS_TEMPLATE (inmemory only here)
# plus every `janusgraph.<option>` variable, the server YAML plus top-level `gremlinserver.<key>`
# variables, then JanusGraph Server in the foreground on 0.0.0.0:8182.
set -euo pipefail
conf=/etc/opt/janusgraph
mkdir -p "$conf"
if [[ "${JANUS_PROPS_TEMPLATE:-inmemory}" != inmemory ]]; then
    echo "lookalike: JANUS_PROPS_TEMPLATE=${JANUS_PROPS_TEMPLATE} is not imitated (inmemory only)" >&2
    exit 1
fi
grep -v '^schema.default' /opt/janusgraph/conf/janusgraph.properties >"$conf/janusgraph.properties"
sed -e 's|^host:.*|host: 0.0.0.0|' -e 's|^port:.*|port: 8182|' \
    -e "s|graph: janusgraph.properties|graph: $conf/janusgraph.properties|" \
    -e 's|files: \[init.groovy\]|files: [/opt/janusgraph/conf/init.groovy]|' \
    /opt/janusgraph/conf/janusgraph-server.yaml >"$conf/janusgraph-server.yaml"
while IFS= read -r line; do
    name="${line%%=*}" value="${line#*=}"
    case "$name" in
    janusgraph.*)
        option="${name#janusgraph.}"
        sed -i "/^${option//./\\.}=/d" "$conf/janusgraph.properties"
        echo "${option}=${value}" >>"$conf/janusgraph.properties"
        ;;
    gremlinserver.*)
        key="${name#gremlinserver.}"
        sed -i "/^${key}:/d" "$conf/janusgraph-server.yaml"
        echo "${key}: ${value}" >>"$conf/janusgraph-server.yaml"
        ;;
    esac
done < <(env)
read -r -a options <<<"${JAVA_OPTIONS:-}"
exec java -Xms64m -Xmx512m -XX:+UseSerialGC "${options[@]}" \
    -Dlog4j2.configurationFile=/opt/janusgraph/conf/log4j2.xml \
    -cp "/opt/janusgraph/lib/*" org.janusgraph.graphdb.server.JanusGraphServer "$conf/janusgraph-server.yaml"
