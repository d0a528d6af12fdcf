#!/usr/bin/env bash
# Make development TLS certificates for kycd with the openssl CLI: a dev CA and
# a server certificate for localhost, 127.0.0.1 and ::1 signed by it. Both
# ECDSA P-256, valid 825 days. For development and tests only: production
# operators bring their own certificate (see certs/README.md).
#
# Writes into DIR (default: this script's folder, certs/):
#   ca.pem         the dev CA's certificate (clients trust this, e.g. curl --cacert)
#   ca.key         the dev CA's private key
#   server.pem     the server's certificate, the leaf alone
#   server.key     the server's private key
#   chain.pem      the CA certificate, as an operator's chain file would be
#   fullchain.pem  server.pem followed by chain.pem
#   client.pem     a client certificate (clientAuth), for testing mutual TLS
#   client.key     its private key
# Private keys are mode 600. Nothing is written unless all files are missing,
# broken or due: when the set exists, the server certificate verifies against
# ca.pem, matches server.key and is still valid for 7 days, the script does
# nothing (unless --force). A new set is made in a temporary folder and moved
# into place only when complete.
#
# Usage: certs/make-dev-certs.sh [--force] [DIR]
set -euo pipefail

usage="usage: make-dev-certs.sh [--force] [DIR]"
force=0
dir=
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *) [ -z "$dir" ] || { echo "$usage" >&2; exit 2; }; dir=$arg ;;
  esac
done
[ -n "$dir" ] || dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

days=825
files=(ca.pem ca.key server.pem server.key chain.pem fullchain.pem client.pem client.key)

up_to_date() {
  local f
  for f in "${files[@]}"; do [ -s "$dir/$f" ] || return 1; done
  openssl x509 -in "$dir/server.pem" -noout -checkend $((7 * 24 * 3600)) >/dev/null 2>&1 || return 1
  openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" >/dev/null 2>&1 || return 1
  [ "$(openssl x509 -in "$dir/server.pem" -noout -pubkey 2>/dev/null)" = \
    "$(openssl pkey -in "$dir/server.key" -pubout 2>/dev/null)" ] || return 1
}

if [ "$force" = 0 ] && up_to_date; then
  echo "make-dev-certs: certificates in $dir are up to date (use --force to remake them)"
  exit 0
fi

tmp=$(mktemp -d "$dir/.make-dev-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
umask 077

# Our own config, so nothing depends on the system's openssl.cnf defaults.
cat >"$tmp/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no

[dn]
O = kycd development
CN = kycd development CA

[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[v3_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key" 2>/dev/null
openssl req -new -x509 -config "$tmp/openssl.cnf" -extensions v3_ca \
  -key "$tmp/ca.key" -sha256 -days "$days" -set_serial "0x$(openssl rand -hex 16)" \
  -out "$tmp/ca.pem"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/server.key" 2>/dev/null
openssl req -new -config "$tmp/openssl.cnf" -key "$tmp/server.key" \
  -subj "/O=kycd development/CN=localhost" -out "$tmp/server.csr"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$tmp/openssl.cnf" -extensions v3_server -out "$tmp/server.pem" 2>/dev/null

# A client certificate, for testing optional mutual TLS (tls_client_ca).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/client.key" 2>/dev/null
openssl req -new -config "$tmp/openssl.cnf" -key "$tmp/client.key" \
  -subj "/O=kycd development/CN=p100-webhooks" -out "$tmp/client.csr"
openssl x509 -req -in "$tmp/client.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$tmp/openssl.cnf" -extensions v3_client -out "$tmp/client.pem" 2>/dev/null

cp "$tmp/ca.pem" "$tmp/chain.pem"
cat "$tmp/server.pem" "$tmp/chain.pem" >"$tmp/fullchain.pem"
openssl verify -CAfile "$tmp/ca.pem" "$tmp/server.pem" >/dev/null

chmod 600 "$tmp/ca.key" "$tmp/server.key" "$tmp/client.key"
chmod 644 "$tmp/ca.pem" "$tmp/server.pem" "$tmp/chain.pem" "$tmp/fullchain.pem" "$tmp/client.pem"
for f in "${files[@]}"; do
  mv -f "$tmp/$f" "$dir/$f"
done
echo "make-dev-certs: wrote ${files[*]} to $dir"
