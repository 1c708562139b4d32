#!/bin/bash
# Serve the NoSQL API on 8081 over HTTPS (Cosmium's built-in self-signed certificate), data in memory.
# It advertises https://localhost:8081/; clients of a mapped port keep to their own URL instead
# (common.settings.cosmos_client_options turns endpoint discovery off for a loopback address).
set -euo pipefail
exec /usr/local/bin/cosmium -Host localhost -Port 8081 -LogLevel error
