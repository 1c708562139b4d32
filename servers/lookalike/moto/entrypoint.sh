#!/bin/bash
# As the image does: moto's server on every interface, on MOTO_PORT (5000 unless set).
exec /opt/moto/bin/moto_server -H 0.0.0.0 -p "${MOTO_PORT:-5000}"
