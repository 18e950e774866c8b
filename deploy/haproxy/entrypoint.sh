#!/bin/sh
# Entry point of the HAProxy image (deploy/haproxy/Dockerfile). Renders the shipped
# haproxy.cfg for the addresses of this deployment, changing nothing else, as scripts/bench
# does for its loopback ports (benches/gateway/replicas.rs, `render`):
#   - the `bind` line becomes `bind $XRG_HAPROXY_BIND` (e.g. 0.0.0.0:8080): plain HTTP, as
#     the compose stack's gateways serve it on 127.0.0.1 (see docker-compose.yml for TLS);
#   - the `server` lines take the addresses of $XRG_HAPROXY_SERVERS (space-separated
#     host:port, in order; names and options kept; server lines beyond them dropped);
#   - `errorfile` paths point at the same file names in $XRG_HAPROXY_ERRORS
#     (default /etc/haproxy/xrg-errors, where the image copies and compose mounts errors/;
#     an absolute path: the rendered file is not beside errors/);
# everything else as shipped (chroot /var/lib/haproxy, user haproxy, the stats socket in
# /run/haproxy: the image has them). Checks the result with `haproxy -c` and execs HAProxy in
# the foreground (-W: master-worker, so `docker kill -s USR2` reloads; -db: no daemon,
# whatever the configuration says).
set -eu

src=${XRG_HAPROXY_CFG:-/etc/haproxy/haproxy.cfg}
errors=${XRG_HAPROXY_ERRORS:-/etc/haproxy/xrg-errors}
out=${XRG_HAPROXY_RENDERED:-/tmp/haproxy.cfg}
: "${XRG_HAPROXY_BIND:?set XRG_HAPROXY_BIND (the address HAProxy listens on, e.g. 0.0.0.0:8080)}"
: "${XRG_HAPROXY_SERVERS:?set XRG_HAPROXY_SERVERS (the gateways, host:port separated by spaces)}"

awk -v bind="$XRG_HAPROXY_BIND" -v servers="$XRG_HAPROXY_SERVERS" -v errors="$errors" '
BEGIN { n = split(servers, addr, " "); used = 0; binds = 0 }
{ match($0, /^[ \t]*/); indent = substr($0, 1, RLENGTH) }
$1 == "bind" { binds++; print indent "bind " bind; next }
$1 == "server" && NF >= 3 { used++; if (used <= n) { $3 = addr[used]; print indent $0 }; next }
$1 == "errorfile" && NF == 3 { k = split($3, p, "/"); $3 = errors "/" p[k]; print indent $0; next }
{ print }
END {
  if (binds != 1) { print "entrypoint: " binds " bind lines in the configuration (1 expected)" > "/dev/stderr"; exit 1 }
  if (used < n) { print "entrypoint: " used " server lines for " n " servers" > "/dev/stderr"; exit 1 }
}' "$src" >"$out"

haproxy -c -f "$out" >/dev/null
# XRG_HAPROXY_CHECK_ONLY=1: render and check, then stop (.ci/run, outside a container).
[ "${XRG_HAPROXY_CHECK_ONLY:-}" = 1 ] && exit 0
exec haproxy -W -db -f "$out"
