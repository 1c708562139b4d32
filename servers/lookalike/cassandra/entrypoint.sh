#!/bin/bash
# The project's single-node cassandra.yaml, listening on the container's address, then the node.
set -euo pipefail
home=/var/lib/cassandra
mkdir -p "$home"/{data,commitlog,saved_caches,hints,cdc_raw,logs,triggers}
address="$(hostname -i | awk '{print $1}')"
sed -e "s|\$workdir|$home|g" -e "s|\$native_port|9042|g" -e "s|\$storage_port|7000|g" \
    -e "s|^listen_address:.*|listen_address: $address|" \
    -e "s|^rpc_address:.*|rpc_address: 0.0.0.0\nbroadcast_rpc_address: $address|" \
    -e "s|- seeds: .*|- seeds: \"$address:7000\"|" \
    -e "s|^num_tokens:.*|num_tokens: ${CASSANDRA_NUM_TOKENS:-1}|" \
    /opt/cassandra/cassandra.yaml >"$home/cassandra.yaml"
mapfile -t flags </opt/cassandra/jvm.args
read -r -a extra <<<"${JVM_EXTRA_OPTS:-}"
exec java "${flags[@]}" -Xmx"${MAX_HEAP_SIZE:-1G}" "${extra[@]}" \
    "-Dcassandra.config=file://$home/cassandra.yaml" "-Dcassandra.storagedir=$home" \
    "-Dcassandra.logdir=$home/logs" "-Dcassandra.triggers_dir=$home/triggers" \
    -Dlogback.configurationFile=/opt/cassandra/logback.xml \
    -cp "/opt/cassandra/lib/*" org.apache.cassandra.service.CassandraDaemon
