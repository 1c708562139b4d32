#!/bin/bash
# Ready when the Thrift server answers getTableNames with a result (not an exception): a Thrift 1
# binary-protocol call written by hand over bash's /dev/tcp, as the image has no Thrift client.
set -euo pipefail
exec 3<>/dev/tcp/127.0.0.1/9090
printf '\x80\x01\x00\x01\x00\x00\x00\x0dgetTableNames\x00\x00\x00\x01\x00' >&3
# The reply: header (4), name length (4), "getTableNames" (13), seqid (4), then field 0 (success, a list: 0x0f 0x00 0x00).
timeout 5 head -c 28 <&3 | od -An -tx1 | tr -d ' \n' | grep -q '0f0000$'
