//! Every knob of the gateway in one place: its flag, its environment variable (`XRG_` + the
//! flag in upper snake case) and its default. `Cli` is what clap parses; `Config` is the checked
//! result the rest of the gateway reads.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use crate::http::site::Origin;

mod cli;
pub use cli::{Cli, CliError, Command};

/// How the gateway secures its c2s stream to the upstream server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamTls {
    /// Plain TCP, then STARTTLS (required: a server that does not offer it is an error).
    Starttls,
    /// TLS from the first byte (XEP-0368 style, usually port 5223).
    Direct,
    /// No TLS at all: only allowed when the upstream is a loopback address.
    None,
}

/// Whether and where the admin listener (metrics, health) listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListen {
    Off,
    /// The default address: when it is taken the gateway warns and runs without it.
    Default(SocketAddr),
    /// An address the operator gave: failing to bind it is fatal.
    Given(SocketAddr),
}

/// The admin listener's address when `--admin-listen` is not given.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9780);

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: AdminListen,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub upstream: UpstreamConfig,
    /// `--dns-server`: the DNS server for SRV lookups instead of the system's configuration.
    pub dns_server: Option<SocketAddr>,
    pub domain: Option<String>,
    pub aliases: Vec<String>,
    pub request_timeout: Duration,
    pub body_timeout: Duration,
    pub max_body: usize,
    pub max_in_flight: usize,
    pub max_jids: usize,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub keepalive_timeout: Duration,
    /// How long a write of an answer may wait for the client to take a byte (both listeners).
    pub write_timeout: Duration,
    /// `--drain-delay`: from SIGTERM to the end of accepting, /readyz answering `draining`.
    pub drain_delay: Duration,
    /// `--drain-timeout`: how long requests in flight may take to finish once accepting ends.
    pub drain_timeout: Duration,
    pub pool: PoolConfig,
    pub command_idle: Duration,
    pub threads: usize,
    pub log_format: crate::logging::LogFormat,
    pub throttle: ThrottleConfig,
    pub trusted_proxies: Vec<IpAddr>,
    /// `--public-origin`: the gateway's own origin, whatever a request's `Host` says.
    pub public_origin: Option<Origin>,
    /// `--cors-origin`: the origins whose pages may call `/rest/*` (CORS on when any).
    pub cors_origins: Vec<Origin>,
    pub access_file: Option<PathBuf>,
    pub credentials_file: Option<PathBuf>,
    pub require_api_key: bool,
    /// Stanzas per account through `POST /rest/stream/`.
    pub stream_rate: crate::policy::rules::Rate,
    /// `--console`: whether /console/ serves the web console.
    pub console: bool,
    /// IQ payload namespaces `POST /rest/stream/` relays beyond the built-in ones.
    pub stream_iq_allow: Vec<String>,
    /// `--replica-name`, `--peer`, `--replica-key-file`: this gateway among its replicas.
    pub replica: Option<crate::replica::Replicas>,
}

/// Where and how to reach the XMPP server.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `--upstream`: where a login goes, in the order to try (never empty, at most
    /// [`MAX_UPSTREAMS`]).
    pub entries: Vec<UpstreamEntry>,
    pub tls: UpstreamTls,
    pub ca: Option<PathBuf>,
    pub connect_timeout: Duration,
}

impl UpstreamConfig {
    /// One `host:port`, the rest as given (tools and tests that aim at one server).
    pub fn single(
        host: &str,
        port: u16,
        tls: UpstreamTls,
        ca: Option<PathBuf>,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            entries: vec![UpstreamEntry::Addr {
                host: host.to_string(),
                port,
            }],
            tls,
            ca,
            connect_timeout,
        }
    }
}

/// The most entries `--upstream` takes (each is a value of the metrics' `upstream` label).
pub const MAX_UPSTREAMS: usize = 16;

/// One entry of `--upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamEntry {
    /// `HOST:PORT`: a host name or IP literal and its port, connected to as given.
    Addr { host: String, port: u16 },
    /// `DOMAIN` without a port: the targets of its `_xmpp-client._tcp` SRV records, else
    /// `DOMAIN:5222` (RFC 6120 §3.2).
    Srv { domain: String },
}

impl UpstreamEntry {
    /// The entry as configured: the value of the metrics' `upstream` label and the name
    /// `/readyz` gives it (`[v6]:port` for an IPv6 literal).
    pub fn label(&self) -> String {
        match self {
            UpstreamEntry::Addr { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            UpstreamEntry::Addr { host, port } => format!("{host}:{port}"),
            UpstreamEntry::Srv { domain } => domain.clone(),
        }
    }

    /// Reads one entry: `HOST:PORT`, `[v6]:PORT`, or a `DOMAIN` without a port (SRV).
    fn parse(written: &str) -> Result<Self, String> {
        if !written.contains(':') {
            if written.parse::<IpAddr>().is_ok() {
                return Err("an IP address needs its port (HOST:PORT)".into());
            }
            let domain = jid::BareJid::new(written)
                .ok()
                .filter(|j| j.node().is_none() && j.resource().is_none())
                .map(|j| j.domain().to_string())
                .ok_or("expected HOST:PORT, or a DOMAIN (without a port) to look up by SRV")?;
            return Ok(UpstreamEntry::Srv { domain });
        }
        let (host, port) = split_host_port(written)?;
        Ok(UpstreamEntry::Addr { host, port })
    }
}

/// The longest `--drain-delay` and `--drain-timeout`, in seconds: an hour.
const MAX_DRAIN_SECS: u64 = 3600;

/// The smallest `--max-stanza-bytes`: a command IQ with a filled form must fit.
const MIN_STANZA_BYTES: usize = 4096;

/// The warm sessions: how many, how busy, how long a password proof lasts.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    pub reauth_interval: Duration,
    pub max_sessions: usize,
    pub session_in_flight: usize,
    pub max_in_flight_per_account: usize,
    pub max_logins: usize,
    /// How long requests still awaiting answers on an evicted stream may take before it
    /// closes under them (`--request-timeout`).
    pub eviction_drain: Duration,
    /// The largest stanza the gateway writes, in bytes as written (`--max-stanza-bytes`).
    pub max_stanza_bytes: usize,
}

/// The failed-login budgets.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    pub pair: u32,
    pub wide: u32,
    /// Over an hour, whoever failed.
    pub total: u32,
    pub window: Duration,
}

/// A flag combination that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Cli {
    /// Checks the flags together and builds the [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        // Each message names what the operator wrote: the flag, or its variable.
        let name = |flag: &str| self.name(flag);
        let upstreams = upstream_list(&self.upstream)
            .map_err(|e| ConfigError(format!("{} {:?}: {e}", name("--upstream"), self.upstream)))?;
        let listen = listen_addr(&self.listen)
            .map_err(|e| ConfigError(format!("{} {:?}: {e}", name("--listen"), self.listen)))?;
        if self.tls_cert.is_none() && !listen.ip().is_loopback() && !self.insecure_http {
            return bad(format!(
                "{} {listen} is not a loopback address: give --tls-cert and --tls-key, or \
                 --insecure-http if a TLS proxy is in front (Basic credentials would otherwise \
                 cross the network in clear)",
                name("--listen")
            ));
        }
        // An SRV entry's targets are known only once looked up: each is checked at connect
        // time (`upstream::list`), and one that is not loopback is refused there.
        for entry in &upstreams {
            if let UpstreamEntry::Addr { host, .. } = entry {
                if self.upstream_tls == UpstreamTls::None && !is_loopback_host(host) {
                    return bad(format!(
                        "{} none is only allowed for a loopback upstream, not {host}",
                        name("--upstream-tls")
                    ));
                }
            }
        }
        if self.upstream_ca.is_some() && self.upstream_tls == UpstreamTls::None {
            return bad(format!(
                "{} makes no sense with {} none",
                name("--upstream-ca"),
                name("--upstream-tls")
            ));
        }
        for (flag, v) in [
            ("--connect-timeout", self.connect_timeout),
            ("--request-timeout", self.request_timeout),
            ("--body-timeout", self.body_timeout),
            ("--reauth-interval", self.reauth_interval),
            ("--command-idle", self.command_idle),
            ("--throttle-window", self.throttle_window),
            ("--write-timeout", self.write_timeout),
        ] {
            if v == 0 {
                return bad(format!("{} must be at least 1 second", name(flag)));
            }
        }
        for (flag, v) in [
            ("--max-in-flight", self.max_in_flight),
            (
                "--max-in-flight-per-account",
                self.max_in_flight_per_account,
            ),
            ("--max-logins", self.max_logins),
            ("--max-jids", self.max_jids),
            ("--max-body", self.max_body),
            ("--session-in-flight", self.session_in_flight),
            ("--max-sessions", self.max_sessions),
            ("--max-connections", self.max_connections),
            ("--throttle-pair", self.throttle_pair as usize),
            // 0 would refuse every login that needs the server: not a way to turn a budget off.
            ("--throttle-wide", self.throttle_wide as usize),
            ("--throttle-total", self.throttle_total as usize),
        ] {
            if v == 0 {
                return bad(format!("{} must be positive", name(flag)));
            }
        }
        if self.max_stanza_bytes < MIN_STANZA_BYTES {
            return bad(format!(
                "{} must be at least {MIN_STANZA_BYTES} (a command with its form)",
                name("--max-stanza-bytes")
            ));
        }
        if self.max_header_bytes < 8192 {
            return bad(format!(
                "{} {} is below 8192, which ordinary clients can exceed",
                name("--max-header-bytes"),
                self.max_header_bytes
            ));
        }
        if !(1..=30).contains(&self.keepalive_timeout) {
            return bad(format!(
                "{} {} must be 1 to 30 seconds (the deadline for a request \
                 head closes idle connections at 30 s anyway)",
                name("--keepalive-timeout"),
                self.keepalive_timeout
            ));
        }
        if self.drain_delay > MAX_DRAIN_SECS {
            return bad(format!(
                "{} {} must be at most {MAX_DRAIN_SECS} seconds",
                name("--drain-delay"),
                self.drain_delay
            ));
        }
        if let Some(t) = self
            .drain_timeout
            .filter(|t| !(1..=MAX_DRAIN_SECS).contains(t))
        {
            return bad(format!(
                "{} {t} must be 1 to {MAX_DRAIN_SECS} seconds",
                name("--drain-timeout")
            ));
        }
        // Unset: the grace the gateway always had, a whole request (--request-timeout) and
        // 2 s for its answer's write.
        let drain_timeout = self
            .drain_timeout
            .unwrap_or(self.request_timeout.saturating_add(2));
        if self.require_api_key && self.access_file.is_none() {
            return bad(format!(
                "{} needs --access-file (where the api-keys are)",
                name("--require-api-key")
            ));
        }
        let stream_rate = crate::policy::rules::Rate::parse(&self.stream_rate)
            .map_err(|e| ConfigError(format!("{}: {e}", name("--stream-rate"))))?;
        let mut stream_iq_allow = Vec::new();
        for ns in self
            .stream_iq_allow
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
        {
            if ns
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>\"'&".contains(c))
            {
                return bad(format!(
                    "{} {ns:?} is not a namespace",
                    name("--stream-iq-allow")
                ));
            }
            stream_iq_allow.push(ns.to_owned());
        }
        if self.connect_timeout > self.request_timeout {
            return bad(format!(
                "{} must not exceed {}",
                name("--connect-timeout"),
                name("--request-timeout")
            ));
        }
        let domain = match &self.domain {
            Some(d) => Some(
                jid::BareJid::new(d)
                    .ok()
                    .filter(|j| j.node().is_none())
                    .map(|j| j.domain().to_string())
                    .ok_or_else(|| {
                        ConfigError(format!("{} {d:?} is not a domain", name("--domain")))
                    })?,
            ),
            None => None,
        };
        let dns_server = match self.dns_server.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(
                dns_server_addr(a)
                    .map_err(|e| ConfigError(format!("{} {a:?}: {e}", name("--dns-server"))))?,
            ),
        };
        let admin_listen = match self.admin_listen.as_deref().map(str::trim) {
            None => AdminListen::Default(DEFAULT_ADMIN_LISTEN),
            Some("off") => AdminListen::Off,
            Some(a) => AdminListen::Given(listen_addr(a).map_err(|e| {
                ConfigError(format!("{} {a:?}: {e}, or off", name("--admin-listen")))
            })?),
        };
        let origin = |flag: &str, var: &str, o: &str| {
            Origin::parse(o).map_err(|e| ConfigError(format!("{flag} (or {var}) {o:?}: {e}")))
        };
        let public_origin = match self.public_origin.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(o) => Some(origin("--public-origin", "XRG_PUBLIC_ORIGIN", o)?),
        };
        let mut cors_origins = Vec::new();
        for o in self
            .cors_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
        {
            cors_origins.push(origin("--cors-origin", "XRG_CORS_ORIGIN", o)?);
        }
        let mut aliases = Vec::new();
        for a in self
            .aliases
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
        {
            let node = jid::NodePart::new(a).map_err(|_| {
                ConfigError(format!("{} {a:?} is not a localpart", name("--alias")))
            })?;
            aliases.push(node.to_string());
        }
        let replica = self.replicas()?;
        Ok(Config {
            listen,
            admin_listen,
            tls: self.tls_cert.zip(self.tls_key),
            upstream: UpstreamConfig {
                entries: upstreams,
                tls: self.upstream_tls,
                ca: self.upstream_ca,
                connect_timeout: Duration::from_secs(self.connect_timeout),
            },
            dns_server,
            domain,
            aliases,
            request_timeout: Duration::from_secs(self.request_timeout),
            body_timeout: Duration::from_secs(self.body_timeout),
            max_body: self.max_body,
            max_in_flight: self.max_in_flight,
            max_jids: self.max_jids,
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            keepalive_timeout: Duration::from_secs(self.keepalive_timeout),
            write_timeout: Duration::from_secs(self.write_timeout),
            drain_delay: Duration::from_secs(self.drain_delay),
            drain_timeout: Duration::from_secs(drain_timeout),
            pool: PoolConfig {
                reauth_interval: Duration::from_secs(self.reauth_interval),
                max_sessions: self.max_sessions,
                session_in_flight: self.session_in_flight,
                max_in_flight_per_account: self.max_in_flight_per_account,
                max_logins: self.max_logins,
                eviction_drain: Duration::from_secs(self.request_timeout),
                max_stanza_bytes: self.max_stanza_bytes,
            },
            command_idle: Duration::from_secs(self.command_idle),
            threads: self.threads,
            log_format: self.log_format,
            throttle: ThrottleConfig {
                pair: self.throttle_pair,
                wide: self.throttle_wide.max(self.throttle_pair),
                total: self.throttle_total,
                window: Duration::from_secs(self.throttle_window),
            },
            trusted_proxies: self.trusted_proxies,
            public_origin,
            cors_origins,
            access_file: self.access_file,
            credentials_file: self.credentials_file,
            require_api_key: self.require_api_key,
            stream_rate,
            console: self.console == cli::Switch::On,
            stream_iq_allow,
            replica,
        })
    }

    /// `--replica-name`, `--peer` and `--replica-key-file` together: none, a name and a key
    /// (marks only), or a name, a key and peers; the key file read here.
    fn replicas(&self) -> Result<Option<crate::replica::Replicas>, ConfigError> {
        let name = |flag: &str| self.name(flag);
        let (Some(replica), Some(key_file)) = (&self.replica_name, &self.replica_key_file) else {
            if self.replica_name.is_some()
                || self.replica_key_file.is_some()
                || !self.peers.is_empty()
            {
                return Err(ConfigError(format!(
                    "{}, {} and {} go together: a replica needs a name and the key its \
                     replicas share",
                    name("--replica-name"),
                    name("--replica-key-file"),
                    name("--peer")
                )));
            }
            return Ok(None);
        };
        crate::replica::check_name(replica)
            .map_err(|e| ConfigError(format!("{}: {e}", name("--replica-name"))))?;
        let mut peers: Vec<crate::replica::Peer> = Vec::new();
        for p in &self.peers {
            let peer = crate::replica::parse_peer(p)
                .map_err(|e| ConfigError(format!("{}: {e}", name("--peer"))))?;
            if peer.name == *replica || peers.iter().any(|q| q.name == peer.name) {
                return Err(ConfigError(format!(
                    "{}: the name {:?} is given twice (each replica, this one included, needs a \
                     name of its own)",
                    name("--peer"),
                    peer.name
                )));
            }
            peers.push(peer);
        }
        let key = crate::replica::ReplicaKey::load(key_file).map_err(ConfigError)?;
        Ok(Some(crate::replica::Replicas {
            name: replica.clone(),
            key: std::sync::Arc::new(key),
            peers,
        }))
    }
}

/// `--upstream`'s list: entries separated by commas, in the order to try, none twice.
fn upstream_list(written: &str) -> Result<Vec<UpstreamEntry>, String> {
    let mut entries = Vec::new();
    for one in written.split(',').map(str::trim) {
        if one.is_empty() {
            return Err("an empty entry (expected HOST:PORT or DOMAIN, comma-separated)".into());
        }
        let entry = UpstreamEntry::parse(one).map_err(|e| format!("{one:?}: {e}"))?;
        if entries.contains(&entry) {
            return Err(format!("{one:?} is given twice"));
        }
        entries.push(entry);
    }
    if entries.len() > MAX_UPSTREAMS {
        return Err(format!("more than {MAX_UPSTREAMS} entries"));
    }
    Ok(entries)
}

/// Splits `host:port`, `[v6]:port`, saying what is wrong in words an operator can act on.
fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let expected = "expected HOST:PORT (an IPv6 address in brackets: [::1]:5222)";
    let (host, port) = s.rsplit_once(':').ok_or(expected)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(':') && host.parse::<IpAddr>().is_err() {
        return Err(expected.into());
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the port {port:?} is not a number"));
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 is not a port to use: give one from 1 to 65535".into()),
        Ok(p) => Ok((host.to_string(), p)),
        Err(_) => Err(format!("port {port} is out of range (1 to 65535)")),
    }
}

/// A listen address: `IP:PORT`, or `NAME:PORT` resolved now, its first address taken (the
/// resolver's order: for `localhost`, often `::1` before `127.0.0.1`; give an IP to choose).
pub fn listen_addr(written: &str) -> Result<SocketAddr, String> {
    let (host, port) = split_host_port(written.trim())?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let mut addrs = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("the name {host} does not resolve: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("the name {host} resolves to no address"))
}

/// A DNS server: `IP`, `IP:PORT` or `[IPv6]:PORT` (no name: there is nothing yet to resolve it
/// with), port 53 when not given.
fn dns_server_addr(written: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = written.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    // Decided on the shape, not on the words of `split_host_port`'s message.
    if !written.contains(':') {
        return Err("expected IP or IP:PORT ([::1]:53 for IPv6)".into());
    }
    let (host, port) = split_host_port(written)?;
    let ip = host
        .parse::<IpAddr>()
        .map_err(|_| format!("{host} is not an IP address (a DNS server is given by address)"))?;
    Ok(SocketAddr::new(ip, port))
}

pub(crate) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
