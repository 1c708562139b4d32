#!/bin/bash
# HBase 2.6 standalone in one container, as servers/local/hbase.py runs it: the master (with its region
# server and an embedded ZooKeeper, data under /data on the container's filesystem) in the background,
# then the Thrift server on 0.0.0.0:9090 in the foreground; a stop (SIGTERM) stops both, the master last.
set -euo pipefail
home=/opt/hbase
mkdir -p "$home/conf" /data
property() { printf '  <property><name>%s</name><value>%s</value></property>\n' "$1" "$2"; }
{
    echo '<?xml version="1.0"?>'
    echo '<configuration>'
    property hbase.cluster.distributed false
    property hbase.rootdir file:///data/hbase
    property hbase.tmp.dir /data/tmp
    property hbase.zookeeper.quorum 127.0.0.1
    property hbase.zookeeper.property.dataDir /data/zookeeper
    property hbase.unsafe.stream.capability.enforce false
    property hbase.master.wait.on.regionservers.mintostart 1
    property hbase.master.wait.on.regionservers.timeout 500
    property hbase.master.wait.on.regionservers.interval 200
    property zookeeper.recovery.retry 1
    property zookeeper.recovery.retry.intervalmill 200
    property hbase.master.info.port -1
    property hbase.regionserver.info.port -1
    property hbase.thrift.info.port -1
    echo '</configuration>'
} >"$home/conf/hbase-site.xml"
read -r -a flags <"$home/jvm.args"
read -r -a options <<<"${JAVA_OPTIONS:-}"
java=(java "${flags[@]}" "${options[@]}" "-Dlog4j.configuration=file:$home/log4j.properties"
      -Djava.net.preferIPv4Stack=true -cp "$home/conf:$home/lib/*")
"${java[@]}" -Xmx"${MASTER_HEAP:-384m}" org.apache.hadoop.hbase.master.HMaster start &
master=$!
"${java[@]}" -Xmx"${THRIFT_HEAP:-128m}" org.apache.hadoop.hbase.thrift.ThriftServer -b 0.0.0.0 -p 9090 start &
thrift=$!
stop() { kill -KILL "$thrift" 2>/dev/null || true; kill -TERM "$master" 2>/dev/null || true; wait "$master" || true; exit 0; }
trap stop TERM INT
wait -n "$master" "$thrift"
echo "hbase: a process exited; stopping" >&2
stop
