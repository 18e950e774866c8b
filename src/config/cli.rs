//! The command line: every flag with its environment variable and default, as clap parses it;
//! [`Cli::into_config`](super::Cli::into_config) checks them together.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

use super::UpstreamTls;
use crate::logging::LogFormat;

/// A REST gateway for XEP-0050 ad-hoc admin commands on Prosody or ejabberd, shaped like
/// Tigase's HTTP API.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "xmpp-rest-gateway",
    version,
    about,
    args_override_self = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Manage the access file's tokens instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address the HTTP(S) API listens on: IP:PORT, or NAME:PORT (the name resolved at start
    /// and its first address bound).
    #[arg(long, env = "XRG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Address of the admin listener (plain HTTP: GET /metrics, /healthz, /readyz): IP:PORT or
    /// NAME:PORT (its first address), or `off`. [default: 127.0.0.1:9780; when that default is
    /// taken, e.g. by a second gateway on the host, a warning and no admin listener; an
    /// address given here that cannot be bound is fatal]
    #[arg(long, env = "XRG_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,

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

    /// The XMPP server's c2s addresses, comma-separated, in the order a login tries them:
    /// HOST:PORT, or a DOMAIN without a port, whose _xmpp-client._tcp SRV records are looked up
    /// (else DOMAIN:5222). At most 16 entries.
    #[arg(long, env = "XRG_UPSTREAM", default_value = "127.0.0.1:5222")]
    pub upstream: String,

    /// How to secure the c2s stream: starttls, direct or none (none: loopback only).
    #[arg(long, env = "XRG_UPSTREAM_TLS", value_enum, default_value_t = UpstreamTls::Starttls)]
    pub upstream_tls: UpstreamTls,

    /// PEM file of the CA(s) to trust for the upstream's certificate, instead of the system's.
    #[arg(long, env = "XRG_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// DNS server for the upstream domain's SRV records (IP or IP:PORT, port 53 by default),
    /// instead of the system's resolver configuration (/etc/resolv.conf).
    #[arg(long, env = "XRG_DNS_SERVER")]
    pub dns_server: Option<String>,

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

    /// Largest stanza the gateway writes to the XMPP server, in bytes as written (after
    /// escaping); a request whose stanza is larger is refused 413 before anything is sent.
    /// Keep it under the server's c2s limit (Prosody `c2s_stanza_size_limit`, ejabberd
    /// `max_stanza_size`: 256 KiB by default), which ends the whole stream of a client that
    /// writes more.
    #[arg(long, env = "XRG_MAX_STANZA_BYTES", default_value_t = crate::upstream::session::DEFAULT_MAX_STANZA)]
    pub max_stanza_bytes: usize,

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

    /// Seconds a write of an answer may wait for the client to take a byte (a client that does
    /// not read its answers) before the connection is closed; on both listeners.
    #[arg(long, env = "XRG_WRITE_TIMEOUT", default_value_t = 10)]
    pub write_timeout: u64,

    /// Seconds between SIGTERM (or SIGINT) and the end of accepting: meanwhile /readyz
    /// answers 503 `draining` (on both listeners) so a load balancer's health check takes the
    /// gateway out, and every request that still arrives is served, its answer closing its
    /// connection. 0: stop accepting at once. A second SIGTERM or SIGINT ends the delay.
    /// At most 3600.
    #[arg(
        long,
        env = "XRG_DRAIN_DELAY",
        default_value_t = 5,
        value_name = "SECS"
    )]
    pub drain_delay: u64,

    /// Seconds the requests in flight get to finish once the gateway stops accepting, before
    /// it closes their connections and its XMPP streams. 1 to 3600. [default:
    /// --request-timeout + 2]
    #[arg(long, env = "XRG_DRAIN_TIMEOUT", value_name = "SECS")]
    pub drain_timeout: Option<u64>,

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

    /// How log lines are written: text (`key=value` fields) or json (one object per line).
    #[arg(long, env = "XRG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Threads that run the gateway (0: one per core). With 1, the default, everything runs on
    /// one thread: the least CPU and latency per request (no hand-off between threads), and a
    /// flood through the gateway cannot take more than one core from the XMPP server beside it.
    #[arg(long, env = "XRG_THREADS", default_value_t = 1)]
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

    /// The gateway's origin as browsers reach it (scheme://host[:port], e.g.
    /// https://xrg.example.org behind a TLS-terminating proxy): a request whose Origin is this
    /// one is same-origin. [default: the listener's scheme (https with --tls-cert) and the
    /// request's Host, or X-Forwarded-Proto and X-Forwarded-Host from a --trusted-proxy]
    #[arg(long, env = "XRG_PUBLIC_ORIGIN", value_name = "URL")]
    pub public_origin: Option<String>,

    /// An origin (scheme://host[:port], exactly: no wildcard, no path) whose web pages may call
    /// /rest/*: its requests pass the cross-site check and get CORS answers (never with
    /// credentials). Repeatable; comma-separated in the environment. Without it, requests from
    /// other sites' pages are refused (403 cross-site-request) and there is no CORS.
    #[arg(
        long = "cors-origin",
        env = "XRG_CORS_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_origins: Vec<String>,

    /// Access file (TOML): scoped tokens and per-command rules; re-read on SIGHUP and when it
    /// changes. Without it every account may do what the XMPP server lets it.
    #[arg(long, env = "XRG_ACCESS_FILE")]
    pub access_file: Option<PathBuf>,

    /// Passwords of the accounts Bearer tokens act as (TOML, `"a@example.org" = "pw"`); by
    /// default `$CREDENTIALS_DIRECTORY/xrg-credentials` when systemd provides it. Read at start.
    #[arg(long, env = "XRG_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,

    /// Refuse Basic requests without a valid api-key (`X-API-Key` or `?api-key=`), as Tigase
    /// does by default. Needs --access-file.
    #[arg(long, env = "XRG_REQUIRE_API_KEY", default_value_t = false)]
    pub require_api_key: bool,

    /// Stanzas one account may send through POST /rest/stream/: N/s, N/m or N/h (burst N).
    #[arg(long, env = "XRG_STREAM_RATE", default_value = "20/s")]
    pub stream_rate: String,

    /// An IQ payload namespace POST /rest/stream/ may relay, as a get or a set, beyond the
    /// built-in gets whose only answer is the result (disco#info, disco#items, version, time,
    /// ping, last activity, vcard-temp) and commands. It must not change what the server sends
    /// to the account's shared stream. Repeatable; comma-separated in the environment.
    #[arg(
        long = "stream-iq-allow",
        env = "XRG_STREAM_IQ_ALLOW",
        value_delimiter = ',',
        value_name = "NS"
    )]
    pub stream_iq_allow: Vec<String>,

    /// This gateway's name among its replicas (1 to 32 of a-z, 0-9, '-'): written into the
    /// sessionids of the multi-stage commands it keeps, so another replica knows where to
    /// forward the next stage. Needed with --peer and --replica-key-file.
    #[arg(long, env = "XRG_REPLICA_NAME", value_name = "NAME")]
    pub replica_name: Option<String>,

    /// Another replica of this gateway, NAME=URL (http://host:port or https://host:port): the
    /// next stage of a command it keeps is forwarded to it. Repeatable; comma-separated in the
    /// environment. Needs --replica-name and --replica-key-file.
    #[arg(
        long = "peer",
        env = "XRG_PEER",
        value_delimiter = ',',
        value_name = "NAME=URL"
    )]
    pub peers: Vec<String>,

    /// The secret the replicas share (one per line, at least 32 bytes; the first signs, every
    /// one verifies, for rotation; mode 600): authenticates requests between replicas and marks
    /// the gateway's own XMPP streams so every replica knows them. Read at start. Needs
    /// --replica-name.
    #[arg(long, env = "XRG_REPLICA_KEY_FILE", value_name = "FILE")]
    pub replica_key_file: Option<PathBuf>,
    /// The flags whose value came from the environment (`--listen` -> `XRG_LISTEN`), so that
    /// a message about a value names what the operator wrote.
    #[arg(skip)]
    pub from_env: BTreeMap<String, String>,
    /// The web console at /console/ on the API listener (docs/console.md): on or off. Off
    /// answers 404 under /console/ and changes nothing else.
    #[arg(long, env = "XRG_CONSOLE", value_enum, default_value_t = Switch::On)]
    pub console: Switch,
}

/// Why the command line (or the environment) could not be read.
#[derive(Debug)]
pub enum CliError {
    /// clap's own answer: help, version, a usage error (it prints and exits itself).
    Clap(clap::Error),
    /// A value from an environment variable that does not parse, said under the variable's
    /// name (clap would name the flag, which the operator never wrote).
    Env(String),
}

impl Cli {
    /// Parses `args` and the `XRG_*` variables, remembering which values came from the
    /// environment.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, CliError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let command = Cli::command();
        let matches = command
            .clone()
            .try_get_matches_from(&args)
            .map_err(|e| from_env_error(&command, &args, e))?;
        let mut cli = Cli::from_arg_matches(&matches).map_err(CliError::Clap)?;
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches.value_source(id) == Some(ValueSource::EnvVariable) {
                if let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) {
                    let env = env.to_string_lossy().into_owned();
                    cli.from_env.insert(format!("--{long}"), env);
                }
            }
        }
        Ok(cli)
    }

    /// How to name `flag` (`--listen`) in a message: the variable its value came from, or the
    /// flag.
    pub fn name(&self, flag: &str) -> String {
        self.from_env
            .get(flag)
            .cloned()
            .unwrap_or_else(|| flag.to_string())
    }
}

/// clap's error for a value it could not parse, under the environment variable's name when
/// the value came from there (the flag was not on the command line and its variable is set).
fn from_env_error(command: &clap::Command, args: &[OsString], e: clap::Error) -> CliError {
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return CliError::Clap(e);
    }
    let Some(ContextValue::String(written)) = e.get(ContextKind::InvalidArg) else {
        return CliError::Clap(e);
    };
    let long = written
        .trim_start_matches('-')
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(long)) else {
        return CliError::Clap(e);
    };
    let flag = format!("--{long}");
    let on_line = args.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    });
    let Some(env) = arg
        .get_env()
        .filter(|v| !on_line && std::env::var_os(v).is_some())
    else {
        return CliError::Clap(e);
    };
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v.clone(),
        _ => std::env::var_os(env)
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let why = match (
        std::error::Error::source(&e),
        e.get(ContextKind::ValidValue),
    ) {
        (Some(source), _) => source.to_string(),
        (None, Some(ContextValue::Strings(valid))) => {
            format!("expected one of {}", valid.join(", "))
        }
        _ => "not a value it takes".into(),
    };
    CliError::Env(format!(
        "{}={value:?} (for {flag}): {why}",
        env.to_string_lossy()
    ))
}

/// A feature's `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// What the binary does instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Add, list or revoke tokens in an access file.
    Token {
        #[command(subcommand)]
        command: crate::policy::cli::TokenCommand,
    },
    /// Ask a running gateway's /readyz and exit 0 when it answers 200, 1 otherwise (for
    /// container healthchecks in images without curl).
    Healthcheck {
        /// The readiness URL (plain http://). Default: /readyz on XRG_LISTEN's port at the
        /// loopback address, else http://127.0.0.1:8080/readyz.
        #[arg(long)]
        url: Option<String>,
    },
}
