-- Prosody for scripts/demo: domain.com on loopback, in a private folder (@DIR@, @PORT@ are
-- filled in by the script). Close to Debian's stock config where it matters: SCRAM storage,
-- stream management, the stock c2s rate limit, with the admin exempt from it.
admins = { "admin@domain.com" }
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "admin_adhoc"; "smacks"; "limits"; "posix";
}
modules_disabled = { "s2s" }
interfaces = { "127.0.0.1" }
c2s_ports = { @PORT@ }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = true
limits = { c2s = { rate = "10kb/s" } }
unlimited_jids = { "admin@domain.com" }
authentication = "internal_hashed"
storage = "internal"
data_path = "@DIR@/data"
pidfile = "@DIR@/data/prosody.pid"
certificates = "@DIR@/certs"
log = { info = "@DIR@/prosody.log" }
VirtualHost "domain.com"
