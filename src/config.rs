//! Every knob of the gateway in one place: its flag, its environment variable (`XRG_` + the
//! flag in upper snake case) and its default. `Cli` is what clap parses; `Config` is the checked
//! result the rest of the gateway reads.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

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

/// A REST gateway for XEP-0050 ad-hoc admin commands on Prosody or ejabberd, shaped like
/// Tigase's HTTP API.
#[derive(Debug, Clone, Parser)]
#[command(name = "xmpp-rest-gateway", version, about, args_override_self = true)]
pub struct Cli {
    /// Address the HTTP(S) API listens on.
    #[arg(long, env = "XRG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// PEM certificate chain: serve HTTPS instead of HTTP (with --tls-key).
    #[arg(long, env = "XRG_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "XRG_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Allow plain HTTP on a non-loopback --listen address (Basic credentials then cross the
    /// network in clear: only behind a TLS-terminating proxy).
    #[arg(long, env = "XRG_INSECURE_HTTP", default_value_t = false)]
    pub insecure_http: bool,

    /// The XMPP server's c2s address (HOST:PORT).
    #[arg(long, env = "XRG_UPSTREAM", default_value = "127.0.0.1:5222")]
    pub upstream: String,

    /// How to secure the c2s stream: starttls, direct or none (none: loopback only).
    #[arg(long, env = "XRG_UPSTREAM_TLS", value_enum, default_value_t = UpstreamTls::Starttls)]
    pub upstream_tls: UpstreamTls,

    /// PEM file of the CA(s) to trust for the upstream's certificate, instead of the system's.
    #[arg(long, env = "XRG_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// Default domain for Basic user names given as a bare localpart.
    #[arg(long, env = "XRG_DOMAIN")]
    pub domain: Option<String>,

    /// Localparts of URL JIDs that stand for the server itself, like Tigase's session manager
    /// (`sess-man@domain` -> `domain`). Repeatable; comma-separated in the environment.
    #[arg(
        long = "alias",
        env = "XRG_ALIAS",
        default_value = "sess-man",
        value_delimiter = ','
    )]
    pub aliases: Vec<String>,

    /// Seconds to wait for the upstream's TCP connect, TLS and login.
    #[arg(long, env = "XRG_CONNECT_TIMEOUT", default_value_t = 5)]
    pub connect_timeout: u64,

    /// Seconds a request may take in all before it is answered 504.
    #[arg(long, env = "XRG_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,

    /// Seconds the whole request body may take to arrive once the headers are in (slower:
    /// 408). Counted before credentials are checked or a place in flight is taken.
    #[arg(long, env = "XRG_BODY_TIMEOUT", default_value_t = 10)]
    pub body_timeout: u64,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "XRG_MAX_BODY", default_value_t = 256 * 1024)]
    pub max_body: usize,

    /// Requests handled at once; beyond it: 503.
    #[arg(long, env = "XRG_MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,

    /// Requests of one account handled at once, counted once its password is proved; beyond
    /// it: 503, so one account (or one leaked password) cannot take every place.
    #[arg(long, env = "XRG_MAX_IN_FLIGHT_PER_ACCOUNT", default_value_t = 256)]
    pub max_in_flight_per_account: usize,

    /// Fresh logins to the XMPP server under way at once, all accounts together; further
    /// logins wait their turn (within the request timeout).
    #[arg(long, env = "XRG_MAX_LOGINS", default_value_t = 32)]
    pub max_logins: usize,

    /// JIDs one request may name in a JID-list field (end-user-session's `accountjids`,
    /// delete-user's, ...); beyond it: 400 naming the field, before anything is sent.
    #[arg(long, env = "XRG_MAX_JIDS", default_value_t = 100)]
    pub max_jids: usize,

    /// HTTP connections open at once. At the cap a new connection makes room by closing the
    /// oldest one still waiting for its request to arrive, else the oldest idle keep-alive
    /// one; when every connection is working on a request, the new one is closed. Lowered at
    /// start to fit the open-files limit (less 128 for upstream streams and files).
    #[arg(long, env = "XRG_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Largest request head (request line and headers) in bytes, at least 8192; larger: 431.
    #[arg(long, env = "XRG_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Seconds a keep-alive connection may stay idle between requests before it is closed
    /// (1 to 30: the 30 s deadline for a request head also runs while idle).
    #[arg(long, env = "XRG_KEEPALIVE_TIMEOUT", default_value_t = 15)]
    pub keepalive_timeout: u64,

    /// Seconds after which a password is proved again by a fresh login, even on a busy session.
    #[arg(long, env = "XRG_REAUTH_INTERVAL", default_value_t = 300)]
    pub reauth_interval: u64,

    /// IQs awaiting an answer at once on one account's stream; further requests queue.
    #[arg(long, env = "XRG_SESSION_IN_FLIGHT", default_value_t = 64)]
    pub session_in_flight: usize,

    /// Accounts with a warm stream at once; beyond it the least recently used is closed.
    #[arg(long, env = "XRG_MAX_SESSIONS", default_value_t = 256)]
    pub max_sessions: usize,

    /// Seconds a kept multi-stage command (`?keep=1`) may sit idle before the gateway cancels
    /// it and forgets its sessionid.
    #[arg(long, env = "XRG_COMMAND_IDLE", default_value_t = 300)]
    pub command_idle: u64,

    /// Threads that run the gateway (0: one per core). With 1, everything runs on one thread,
    /// which spends the least CPU per request where the XMPP server shares a small machine.
    #[arg(long, env = "XRG_THREADS", default_value_t = 0)]
    pub threads: usize,

    /// Failed logins per account and client address within --throttle-window before 429.
    #[arg(long, env = "XRG_THROTTLE_PAIR", default_value_t = 5)]
    pub throttle_pair: u32,

    /// Failed logins per client address (any account), or per account (any address), within
    /// --throttle-window before logins that need the upstream are refused with 429.
    #[arg(long, env = "XRG_THROTTLE_WIDE", default_value_t = 15)]
    pub throttle_wide: u32,

    /// Failed logins of the whole gateway within an hour before logins that need the upstream
    /// are refused with 429: keep it below ejabberd's mod_fail2ban limit (20 per address per
    /// hour; every login through the gateway comes from its one address).
    #[arg(long, env = "XRG_THROTTLE_TOTAL", default_value_t = 15)]
    pub throttle_total: u32,

    /// Seconds a failed login counts against its budgets.
    #[arg(long, env = "XRG_THROTTLE_WINDOW", default_value_t = 300)]
    pub throttle_window: u64,

    /// Proxy address whose X-Forwarded-For header names the client. Repeatable.
    #[arg(
        long = "trusted-proxy",
        env = "XRG_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub upstream: UpstreamConfig,
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
    pub pool: PoolConfig,
    pub command_idle: Duration,
    pub threads: usize,
    pub throttle: ThrottleConfig,
    pub trusted_proxies: Vec<IpAddr>,
}

/// Where and how to reach the XMPP server.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Host (name or IP literal) and port, as given.
    pub host: String,
    pub port: u16,
    pub tls: UpstreamTls,
    pub ca: Option<PathBuf>,
    pub connect_timeout: Duration,
}

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
        let (host, port) = split_host_port(&self.upstream).ok_or_else(|| {
            ConfigError(format!(
                "--upstream {:?}: expected HOST:PORT",
                self.upstream
            ))
        })?;
        if self.tls_cert.is_none() && !self.listen.ip().is_loopback() && !self.insecure_http {
            return bad(format!(
                "--listen {} is not a loopback address: give --tls-cert and --tls-key, or \
                 --insecure-http if a TLS proxy is in front (Basic credentials would otherwise \
                 cross the network in clear)",
                self.listen
            ));
        }
        if self.upstream_tls == UpstreamTls::None && !is_loopback_host(&host) {
            return bad(format!(
                "--upstream-tls none is only allowed for a loopback upstream, not {host}"
            ));
        }
        if self.upstream_ca.is_some() && self.upstream_tls == UpstreamTls::None {
            return bad("--upstream-ca makes no sense with --upstream-tls none".into());
        }
        for (name, v) in [
            ("--connect-timeout", self.connect_timeout),
            ("--request-timeout", self.request_timeout),
            ("--body-timeout", self.body_timeout),
            ("--reauth-interval", self.reauth_interval),
            ("--command-idle", self.command_idle),
            ("--throttle-window", self.throttle_window),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1 second"));
            }
        }
        for (name, v) in [
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
            ("--throttle-pair", self.throttle_pair as usize),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if self.max_connections == 0 {
            return bad("--max-connections must be positive".into());
        }
        if self.max_header_bytes < 8192 {
            return bad(format!(
                "--max-header-bytes {} is below 8192, which ordinary clients can exceed",
                self.max_header_bytes
            ));
        }
        if !(1..=30).contains(&self.keepalive_timeout) {
            return bad(format!(
                "--keepalive-timeout {} must be 1 to 30 seconds (the deadline for a request \
                 head closes idle connections at 30 s anyway)",
                self.keepalive_timeout
            ));
        }
        if self.connect_timeout > self.request_timeout {
            return bad("--connect-timeout must not exceed --request-timeout".into());
        }
        let domain = match self.domain {
            Some(d) => Some(
                jid::BareJid::new(&d)
                    .ok()
                    .filter(|j| j.node().is_none())
                    .map(|j| j.domain().to_string())
                    .ok_or_else(|| ConfigError(format!("--domain {d:?} is not a domain")))?,
            ),
            None => None,
        };
        let mut aliases = Vec::new();
        for a in self
            .aliases
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
        {
            let node = jid::NodePart::new(a)
                .map_err(|_| ConfigError(format!("--alias {a:?} is not a localpart")))?;
            aliases.push(node.to_string());
        }
        Ok(Config {
            listen: self.listen,
            tls: self.tls_cert.zip(self.tls_key),
            upstream: UpstreamConfig {
                host,
                port,
                tls: self.upstream_tls,
                ca: self.upstream_ca,
                connect_timeout: Duration::from_secs(self.connect_timeout),
            },
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
            pool: PoolConfig {
                reauth_interval: Duration::from_secs(self.reauth_interval),
                max_sessions: self.max_sessions,
                session_in_flight: self.session_in_flight,
                max_in_flight_per_account: self.max_in_flight_per_account,
                max_logins: self.max_logins,
                eviction_drain: Duration::from_secs(self.request_timeout),
            },
            command_idle: Duration::from_secs(self.command_idle),
            threads: self.threads,
            throttle: ThrottleConfig {
                pair: self.throttle_pair,
                wide: self.throttle_wide.max(self.throttle_pair),
                total: self.throttle_total.max(1),
                window: Duration::from_secs(self.throttle_window),
            },
            trusted_proxies: self.trusted_proxies,
        })
    }
}

/// Splits `host:port`, `[v6]:port`.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(':') && host.parse::<IpAddr>().is_err() {
        return None;
    }
    Some((host.to_string(), port))
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
