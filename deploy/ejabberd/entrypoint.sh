#!/bin/bash
# Entry point of the ejabberd image (deploy/ejabberd/Dockerfile). Runs as root, then:
#   1. writes $CERT_DIR/$XMPP_DOMAIN.{key,crt} (made by the compose `certs` service) as one PEM
#      file where ejabberd.yml's `certfiles` names it, readable by the ejabberd group only;
#   2. starts `ejabberdctl foreground` (which switches to the ejabberd user itself);
#   3. once the node answers, registers admin@$XMPP_DOMAIN with $XMPP_ADMIN_PASSWORD and, if
#      $XMPP_TEST_PASSWORD is set, test@$XMPP_DOMAIN; an existing account gets the password
#      set again, so a changed password takes effect at the next start;
#   4. touches /run/ejabberd/xrg-provisioned (the compose healthcheck looks for it) and waits,
#      turning SIGTERM/SIGINT into `ejabberdctl stop`.
# The admin JID must also be in ejabberd.yml's `admin` ACL.
set -euo pipefail

domain=${XMPP_DOMAIN:-domain.com}
cert_dir=${CERT_DIR:-/certs}
marker=/run/ejabberd/xrg-provisioned

: "${XMPP_ADMIN_PASSWORD:?set XMPP_ADMIN_PASSWORD (compose passes XRG_ADMIN_PASSWORD)}"

for f in "$domain.crt" "$domain.key"; do
  [ -s "$cert_dir/$f" ] || { echo "entrypoint: $cert_dir/$f is missing" >&2; exit 1; }
done
install -d -o root -g ejabberd -m 0750 /etc/ejabberd/certs
(umask 027 && cat "$cert_dir/$domain.key" "$cert_dir/$domain.crt" >"/etc/ejabberd/certs/$domain.pem")
chown root:ejabberd "/etc/ejabberd/certs/$domain.pem"
install -d -o ejabberd -g ejabberd -m 0755 /run/ejabberd /var/log/ejabberd
chown -R ejabberd:ejabberd /var/lib/ejabberd
rm -f "$marker"

ejabberdctl foreground &
pid=$!
stop() {
  ejabberdctl stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
}
trap stop TERM INT

# Each ejabberdctl call is a fresh Erlang VM (about a second); the node takes a few seconds.
for _ in $(seq 1 60); do
  ejabberdctl status >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { wait "$pid"; exit $?; }
  sleep 1
done
ejabberdctl status >/dev/null

# The password is an argument, visible to `ps` inside this container for a moment.
register() { # local-part password
  local out
  if out=$(ejabberdctl register "$1" "$domain" "$2" 2>&1); then
    :
  elif [[ $out == *"already registered"* ]]; then
    ejabberdctl change_password "$1" "$domain" "$2" >/dev/null
  else
    echo "entrypoint: registering $1@$domain failed: $out" >&2
    return 1
  fi
  echo "entrypoint: account $1@$domain ready"
}
register admin "$XMPP_ADMIN_PASSWORD"
if [ -n "${XMPP_TEST_PASSWORD:-}" ]; then
  register test "$XMPP_TEST_PASSWORD"
fi
touch "$marker"

# `wait` returns early when a trapped signal arrives; keep waiting until ejabberd is gone.
while :; do
  wait "$pid" && status=0 || status=$?
  kill -0 "$pid" 2>/dev/null || break
done
exit "$status"
