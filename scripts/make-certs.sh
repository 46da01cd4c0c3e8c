#!/bin/sh
# make-certs.sh — make a certificate authority and node certificates for Tandem's peer TLS.
#
# Usage: scripts/make-certs.sh DIR NODE [NODE...]
#
# Writes into DIR (created if missing, mode 0700):
#   ca.crt  ca.key       a self-signed CA (EC P-256, 10 years). Reused if DIR already holds
#                        one, so nodes can be added later with the same CA.
#   ca.srl               the CA's serial-number counter.
#   NODE.crt NODE.key    for each NODE: an EC P-256 key and a certificate signed by the CA
#                        (825 days) with CN=NODE and subjectAltName DNS:NODE, usable for both
#                        TLS client and server authentication (each node is both).
# Keys are written with mode 0600. NODE must be the node name the peer is configured to expect
# (tandemd checks the peer certificate's SAN DNS names, falling back to its CN).
#
# Each node needs ca.crt, its own NODE.crt and NODE.key; ca.key should stay off the nodes.
# Requires openssl(1) 1.1.1 or later.
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: $0 DIR NODE [NODE...]" >&2
    exit 2
fi
dir=$1
shift
umask 077
mkdir -p "$dir"

if [ ! -f "$dir/ca.key" ] || [ ! -f "$dir/ca.crt" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=Tandem CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.crt"
fi

for node in "$@"; do
    case "$node" in
        *[!A-Za-z0-9._-]* | "" | .*)
            echo "$0: invalid node name '$node' (letters, digits, '.', '_', '-')" >&2
            exit 2 ;;
    esac
    ext="$dir/$node.ext"
    printf '%s\n' \
        "subjectAltName=DNS:$node" \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth,clientAuth" > "$ext"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$node.key" 2>/dev/null
    openssl req -new -key "$dir/$node.key" -subj "/CN=$node" -out "$dir/$node.csr"
    openssl x509 -req -in "$dir/$node.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 825 -sha256 -extfile "$ext" -out "$dir/$node.crt" 2>/dev/null
    rm -f "$dir/$node.csr" "$ext"
    chmod 0644 "$dir/$node.crt"
done
chmod 0644 "$dir/ca.crt"
