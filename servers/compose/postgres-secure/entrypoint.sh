#!/bin/bash
# postgres_secure's entrypoint: on first start, a CA and a server certificate made with openssl
# into /certs (bind-mounted from the host's .local/certs/postgres_secure: clients trust its
# ca.crt); then the official entrypoint, with the certificate, its key and pg_hba.conf.
# The CA's private key is thrown away once it has signed: nothing else is ever signed with it.
set -euo pipefail
certs=/certs
private=/var/lib/postgresql/tls  # in the container only: the copy of the key the server reads
names="DNS:localhost,IP:127.0.0.1,IP:::1,DNS:postgres_secure"

make_certificates() {
    local work
    work="$(mktemp -d)"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=database-examples postgres_secure CA" -keyout "$work/ca.key" -out "$work/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$work/server.key" -out "$work/server.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=$names" \
        "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$work/server.ext"
    openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -days 3650 \
        -set_serial "0x$(openssl rand -hex 16)" -extfile "$work/server.ext" -out "$work/server.crt"
    install -m 0600 "$work/server.key" "$certs/server.key"
    install -m 0644 "$work/server.crt" "$certs/server.crt"
    install -m 0644 "$work/ca.crt" "$certs/ca.crt"  # last: with it, the set is complete
    rm -rf "$work"
    echo "postgres_secure: made a CA and a server certificate ($names) in $certs"
}

if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$certs"
    (
        # Two containers starting at once on one host folder make one set, not two halves (on a file
        # system that takes no locks, the first start goes on unlocked).
        flock 9 || true
        if [[ ! -s "$certs/ca.crt" || ! -s "$certs/server.crt" || ! -s "$certs/server.key" ]]; then
            make_certificates
        fi
    ) 9>"$certs/.lock"
    install -d -o postgres -g postgres -m 0700 "$private"
    install -o postgres -g postgres -m 0600 "$certs/server.key" "$private/server.key"
    install -o postgres -g postgres -m 0644 "$certs/server.crt" "$private/server.crt"
fi
[[ $# -gt 0 ]] || set -- postgres
# TLS always on: the image's pg_hba.conf lets nothing else in over the network.
exec docker-entrypoint.sh "$@" -c ssl=on -c "ssl_cert_file=$private/server.crt" \
    -c "ssl_key_file=$private/server.key" -c hba_file=/etc/postgresql-secure/pg_hba.conf
