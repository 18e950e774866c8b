-- Prosody 0.12 (Debian bookworm's package) as docker-compose.yml runs it beside the gateway:
-- domain.com over c2s with STARTTLS. Close to Debian's stock /etc/prosody/prosody.cfg.lua where
-- the gateway can tell (SCRAM storage, stream management, the stock c2s rate limit); what
-- differs is marked. The certificate and key for domain.com are put in /etc/prosody/certs by
-- deploy/prosody/entrypoint.sh, the accounts are registered by it too.

-- The accounts allowed to run XEP-0133 commands (mod_admin_adhoc checks this list).
admins = { "admin@domain.com" }

modules_enabled = {
	-- What the gateway needs.
	"saslauth"; -- SCRAM-SHA-1 / PLAIN login
	"tls"; -- STARTTLS
	"disco"; -- command discovery (GET /rest/adhoc/...)
	"admin_adhoc"; -- XEP-0133 admin commands over XEP-0050

	-- Also in the stock config.
	"roster";
	"ping";
	"smacks"; -- stream management (XEP-0198): every real client uses it
	"limits"; -- the c2s rate limit below
	"carbons";
	"blocklist";
	"time";
	"uptime";
	"version";
	"posix";
}

-- Differs from stock: no server-to-server. domain.com is a demo name that is not ours.
modules_disabled = { "s2s" }

-- Differs from stock: IPv4 only (Docker networks often have no IPv6), c2s on 5222 only.
interfaces = { "*" }
c2s_ports = { 5222 }
c2s_direct_tls_ports = { }

c2s_require_encryption = true
allow_unencrypted_plain_auth = false

-- The stock rate limit. It throttles what every client sends, the gateway's admin stream
-- included (~25 commands/s measured). Each admin account that uses the gateway goes in
-- unlimited_jids (bare JID, lower case).
limits = {
	c2s = { rate = "10kb/s"; };
	s2sin = { rate = "30kb/s"; };
}
unlimited_jids = { "admin@domain.com" }

authentication = "internal_hashed"
storage = "internal"
data_path = "/var/lib/prosody"
certificates = "/etc/prosody/certs"

-- Differs from stock: log to the console (`docker compose logs prosody`), not to files.
log = { { levels = { min = "info" }; to = "console"; } }

VirtualHost "domain.com"
