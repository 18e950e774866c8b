#!/bin/sh
# Entry point of the Prosody image (deploy/prosody/Dockerfile). Runs as root, then:
#   1. installs $CERT_DIR/$XMPP_DOMAIN.{crt,key} (made by the compose `certs` service) where
#      prosody.cfg.lua's `certificates` finds them, readable by the prosody user only;
#   2. registers admin@$XMPP_DOMAIN with $XMPP_ADMIN_PASSWORD and, if $XMPP_TEST_PASSWORD is
#      set, test@$XMPP_DOMAIN (`prosodyctl register` on an existing account sets its password,
#      so a changed password takes effect at the next start);
#   3. execs Prosody in the foreground as the prosody user.
# The admin JID must also be in prosody.cfg.lua's `admins` and `unlimited_jids`.
set -eu

domain=${XMPP_DOMAIN:-domain.com}
cert_dir=${CERT_DIR:-/certs}
config=/etc/prosody/prosody.cfg.lua

: "${XMPP_ADMIN_PASSWORD:?set XMPP_ADMIN_PASSWORD (compose passes XRG_ADMIN_PASSWORD)}"

for f in "$domain.crt" "$domain.key"; do
  [ -s "$cert_dir/$f" ] || { echo "entrypoint: $cert_dir/$f is missing" >&2; exit 1; }
done
install -d -o prosody -g prosody -m 0750 /etc/prosody/certs
install -o prosody -g prosody -m 0644 "$cert_dir/$domain.crt" "/etc/prosody/certs/$domain.crt"
install -o prosody -g prosody -m 0600 "$cert_dir/$domain.key" "/etc/prosody/certs/$domain.key"
chown -R prosody:prosody /var/lib/prosody

as_prosody() {
  setpriv --reuid=prosody --regid=prosody --init-groups -- "$@"
}

# The password is an argument, visible to `ps` inside this container for a moment.
register() { # local-part password
  as_prosody prosodyctl --config "$config" register "$1" "$domain" "$2"
  echo "entrypoint: account $1@$domain ready"
}
register admin "$XMPP_ADMIN_PASSWORD"
if [ -n "${XMPP_TEST_PASSWORD:-}" ]; then
  register test "$XMPP_TEST_PASSWORD"
fi

exec setpriv --reuid=prosody --regid=prosody --init-groups -- prosody -F --config "$config"
