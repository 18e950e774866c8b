#!/bin/sh
# One-shot: a throwaway CA and a certificate for $XMPP_DOMAIN signed by it, into $CERT_DIR
# (the compose `certs` volume). Does nothing when they are already there; remove the volume
# (`docker compose down -v`) to make new ones. Needs the openssl CLI (installed with apk when
# missing, as in the alpine image docker-compose.yml uses).
#
# Leaves in $CERT_DIR:
#   ca.pem                 the CA certificate: the gateway's --upstream-ca (0644)
#   $XMPP_DOMAIN.crt       the server certificate, SAN DNS:$XMPP_DOMAIN (0644)
#   $XMPP_DOMAIN.key       its private key (0600, root; the server entrypoints copy it)
# The CA's key is deleted once the certificate is signed: nothing else can be signed with it.
# rustls (the gateway's TLS) does not accept a self-signed server certificate as its own
# trust anchor, hence the CA.
set -eu

dir=${CERT_DIR:-/certs}
domain=${XMPP_DOMAIN:-domain.com}
days=${CERT_DAYS:-365}

if [ -s "$dir/ca.pem" ] && [ -s "$dir/$domain.crt" ] && [ -s "$dir/$domain.key" ]; then
  echo "certs: $dir already holds ca.pem and $domain.crt/.key; nothing to do"
  exit 0
fi
if ! command -v openssl >/dev/null 2>&1; then
  apk add --no-cache openssl >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
  -days "$days" -subj "/CN=xmpp-rest-gateway throwaway CA" \
  -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout "$tmp/server.key" -out "$tmp/server.csr" \
  -subj "/CN=$domain" 2>/dev/null
cat >"$tmp/server.ext" <<EOF
subjectAltName=DNS:$domain
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
EOF
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$tmp/server.ext" \
  -out "$tmp/server.crt" 2>/dev/null
openssl verify -CAfile "$tmp/ca.pem" "$tmp/server.crt" >/dev/null

mkdir -p "$dir"
chmod 0755 "$dir" # the gateway reads ca.pem as a non-root user
install -m 0644 "$tmp/ca.pem" "$dir/ca.pem"
install -m 0644 "$tmp/server.crt" "$dir/$domain.crt"
install -m 0600 "$tmp/server.key" "$dir/$domain.key"
echo "certs: made a throwaway CA ($dir/ca.pem) and a certificate for $domain, valid $days days"
