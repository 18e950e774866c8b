//! End-to-end harness shared by every e2e test binary (`mod common;`).
//!
//! It starts real Prosody and ejabberd servers from Debian's packages, each once per test
//! binary and lazily (first [`prosody()`] / [`ejabberd()`] call), on a free loopback port,
//! serving `domain.com` with STARTTLS under a throwaway CA, with a fixed set of accounts
//! ([`ACCOUNTS`]). Tests run as threads of one process, so the servers are shared statics; they
//! are stopped by PID from an exit hook, or by a watchdog if the process is killed (see
//! `procs`). [`TestGateway`] runs the gateway binary against one of them, and [`http`] talks
//! to it.
//!
//! Environment: `XRG_KEEP_STATE=1` keeps the state directory (configs, logs, gateway logs) and
//! prints its path at exit; `XRG_GATEWAY_BIN=PATH` runs that gateway binary instead of the one
//! Cargo built for the test (the benchmark's release build).
//!
//! Besides the two default servers, [`server_variant`] starts differently configured ones
//! (for the benchmark); the defaults are never changed by them.

// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

/// Runs each named `async fn name(kind: ServerKind)` of the test file as two tests, one per
/// server (`name::prosody`, `name::ejabberd`).
#[allow(unused_macros)]
macro_rules! on_both_servers {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn prosody() {
                super::$name(super::ServerKind::Prosody).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ejabberd() {
                super::$name(super::ServerKind::Ejabberd).await
            }
        }
    )*};
}

pub mod cluster;
pub mod dns;
pub mod doc;
mod ejabberd;
mod gateway;
pub mod haproxy;
mod http;
pub mod pki;
mod procs;
pub mod prometheus;
mod prosody;
pub mod proxy;
pub mod rest;
pub mod restart;
pub mod tcp_proxy;
pub mod victim;
pub mod xmpp;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use gateway::{binary as gateway_binary, token, TestGateway};
pub use http::{basic, http, http_from, try_http, HttpResponse};
pub use procs::{free_port, random_hex, track_pid, untrack_pid};

/// The one XMPP domain both servers serve (the seed document's own).
pub const DOMAIN: &str = "domain.com";

/// Accounts registered at start. `admin`, `admin2`, `admin3` and `admin4` are the servers'
/// administrators; every other one is an ordinary user. Passwords: see [`password_for`].
///
/// Every e2e test runs in one process against the same two servers, so a test that ends an
/// account's sessions, or counts them, owns that account: `admin3` ends its own sessions
/// (e2e `seed`), `load1`…`load12` carry the concurrency test's resources (e2e `faults`), and
/// `idle`, whom no test connects, is what the seed document names when a test only needs an
/// answer (`rest::IDLE_SEED_XML`), so that it ends nobody's sessions; `audit1` and `audit2`
/// are e2e `audit`'s (a session it ends, a password it gets wrong); `admin4` is the one two
/// replicas of e2e `resources` both log in as, whose sessions it lists and ends. `svcdel` is an
/// administrator too, registered by no one at start: e2e `tokens` creates it, has it delete
/// itself and creates it again.
#[rustfmt::skip]
pub const ACCOUNTS: &[&str] = &[
    "admin",
    "admin2", "admin3", "test", "user1", "user2", "user3", "user4", "user5", "user6", "user7",
    "user8", "user9", "user10", "user11", "user12", "nonadmin", "throttle1", "throttle2",
    "throttle3", "load1", "load2", "load3", "load4", "load5", "load6", "load7", "load8",
    "load9", "load10", "load11", "load12", "idle", "audit1", "audit2", "admin4",
];

/// The password of a pre-registered account: `adminpass` for `admin`, `pass-<local>` otherwise
/// (also the convention to use for accounts a test adds itself).
pub fn password_for(local: &str) -> String {
    if local == "admin" {
        "adminpass".to_owned()
    } else {
        format!("pass-{local}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    Prosody,
    Ejabberd,
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerKind::Prosody => "Prosody",
            ServerKind::Ejabberd => "ejabberd",
        })
    }
}

/// How long a server took to come up, as measured by the harness.
#[derive(Debug, Clone, Copy, Default)]
pub struct Startup {
    /// From spawning the server to its c2s port answering with STARTTLS offered.
    pub ready: Duration,
    /// Registering all of [`ACCOUNTS`].
    pub registration: Duration,
    /// Everything, CA and config writing included.
    pub total: Duration,
}

/// A running server shared by all tests of the binary.
pub struct TestServer {
    pub kind: ServerKind,
    pub domain: String,
    /// Its c2s port on `c2s_ip` (plaintext, STARTTLS offered).
    pub c2s_port: u16,
    /// 127.0.0.1, but for a cluster's nodes ([`cluster`]), each on an address of its own.
    pub c2s_ip: Ipv4Addr,
    /// The CA certificate that signed its certificate: the gateway's `--upstream-ca`.
    pub ca_pem: PathBuf,
    /// Its config, data and logs (owned by the server's system user).
    pub state_dir: PathBuf,
    pub startup: Startup,
    /// ejabberd's `mod_http_api` listener (plain HTTP on 127.0.0.1, `/api`), on the variants
    /// that have one ([`Variant::EjabberdApi`], [`Variant::EjabberdPlainApi`]).
    pub http_api: Option<SocketAddr>,
    /// Log files, relative to `state_dir`, shown when something fails.
    logs: Vec<&'static str>,
}

impl TestServer {
    fn new(kind: ServerKind, c2s_port: u16, state_dir: PathBuf, logs: &[&'static str]) -> Self {
        TestServer {
            kind,
            domain: DOMAIN.to_owned(),
            c2s_port,
            c2s_ip: Ipv4Addr::LOCALHOST,
            ca_pem: pki::shared().ca_pem.clone(),
            state_dir,
            startup: Startup::default(),
            http_api: None,
            logs: logs.to_vec(),
        }
    }

    fn with_startup(mut self, startup: Startup) -> Self {
        self.startup = startup;
        eprintln!(
            "[harness] {} ready on {} in {:?} (accounts {:?}, total {:?})",
            self.kind,
            self.c2s_addr(),
            startup.ready,
            startup.registration,
            startup.total
        );
        self
    }

    /// See [`password_for`].
    pub fn password(&self, local: &str) -> String {
        password_for(local)
    }

    /// `local@domain.com`.
    pub fn jid(&self, local: &str) -> String {
        format!("{local}@{}", self.domain)
    }

    pub fn c2s_addr(&self) -> SocketAddr {
        SocketAddr::from((self.c2s_ip, self.c2s_port))
    }

    /// The last `lines` lines of each of the server's logs, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let tails = self
            .logs
            .iter()
            .map(|l| procs::tail(&self.state_dir.join(l), lines));
        tails.collect::<Vec<_>>().join("\n")
    }

    /// The PID of the running server process (Prosody's, or ejabberd's `beam.smp`), from the
    /// pidfile it writes; `None` before it is written or after it stopped.
    pub fn pid(&self) -> Option<u32> {
        let file = match self.kind {
            ServerKind::Prosody => "prosody.pid",
            ServerKind::Ejabberd => "ejabberd.pid",
        };
        let text = std::fs::read_to_string(self.state_dir.join(file)).ok()?;
        text.trim().parse().ok().filter(|p| *p > 1)
    }

    /// Registers one more account with the server's own tool (`prosodyctl`/`ejabberdctl`),
    /// e.g. for a test that deletes it; panics if the tool fails (an existing account too).
    pub fn register(&self, local: &str, password: &str) {
        let cmd = match self.kind {
            ServerKind::Prosody => prosody::register_cmd(&self.state_dir, local, password),
            ServerKind::Ejabberd => ejabberd::register_cmd(&self.state_dir, local, password),
        };
        procs::run_all(
            vec![cmd],
            1,
            &format!("registering {local} on {}", self.kind),
        );
    }
}

/// A folder of this test binary's own, removed with the harness's state at exit.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = procs::run_dir().join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// [`server`] from async code: the first call's start runs on a blocking thread.
pub async fn started(kind: ServerKind) -> &'static TestServer {
    tokio::task::spawn_blocking(move || server(kind))
        .await
        .expect("server start")
}

/// The binary's Prosody, started on first call.
pub fn prosody() -> &'static TestServer {
    server(ServerKind::Prosody)
}

/// The binary's ejabberd, started on first call.
pub fn ejabberd() -> &'static TestServer {
    server(ServerKind::Ejabberd)
}

/// The server of that kind. A failed start is remembered and every later caller fails with the
/// same message, instead of each test waiting out its own startup timeout.
pub fn server(kind: ServerKind) -> &'static TestServer {
    static PROSODY: OnceLock<Result<TestServer, String>> = OnceLock::new();
    static EJABBERD: OnceLock<Result<TestServer, String>> = OnceLock::new();
    let cell = match kind {
        ServerKind::Prosody => &PROSODY,
        ServerKind::Ejabberd => &EJABBERD,
    };
    match cell.get_or_init(|| start_caught(kind)) {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

fn start_caught(kind: ServerKind) -> Result<TestServer, String> {
    let started = std::panic::catch_unwind(|| match kind {
        ServerKind::Prosody => prosody::start(),
        ServerKind::Ejabberd => ejabberd::start(),
    });
    started.map_err(|payload| failed_start(&kind.to_string(), payload))
}

/// The message a failed start is remembered by.
fn failed_start(what: &str, payload: Box<dyn std::any::Any + Send>) -> String {
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".to_owned());
    format!("the test {what} server failed to start: {msg}")
}

/// Servers configured otherwise than the defaults, for the benchmark (`benches/gateway.rs`).
/// Each is a server of its own (state directory, port, Erlang node), started once per process
/// on first use like the defaults, which they leave untouched; all have the same domain and
/// [`ACCOUNTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Prosody as [`prosody()`] but without `unlimited_jids`: Debian's stock `limits`
    /// (`c2s = { rate = "10kb/s" }`) throttle the admins' streams too.
    ProsodyLimited,
    /// ejabberd as [`ejabberd()`] (`auth_password_format: scram`), plus `mod_http_api` on a
    /// loopback HTTP listener ([`TestServer::http_api`]) where the admins may call `kick_user`
    /// with HTTP Basic auth.
    EjabberdApi,
    /// As [`Variant::EjabberdApi`] with `auth_password_format: plain`.
    EjabberdPlainApi,
}

impl Variant {
    pub const ALL: [Variant; 3] = [
        Variant::ProsodyLimited,
        Variant::EjabberdApi,
        Variant::EjabberdPlainApi,
    ];

    pub fn kind(self) -> ServerKind {
        match self {
            Variant::ProsodyLimited => ServerKind::Prosody,
            Variant::EjabberdApi | Variant::EjabberdPlainApi => ServerKind::Ejabberd,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::ProsodyLimited => "Prosody (admin limited)",
            Variant::EjabberdApi => "ejabberd (scram, http api)",
            Variant::EjabberdPlainApi => "ejabberd (plain, http api)",
        })
    }
}

/// The variant's server, started on first call; a failed start is remembered as in
/// [`server`].
pub fn server_variant(variant: Variant) -> &'static TestServer {
    static CELLS: [OnceLock<Result<TestServer, String>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = Variant::ALL.iter().position(|v| *v == variant).unwrap();
    let started = CELLS[i].get_or_init(|| {
        std::panic::catch_unwind(|| match variant {
            Variant::ProsodyLimited => prosody::start_with(&prosody::Options {
                name: "prosody-limited",
                unlimited_admins: false,
            }),
            Variant::EjabberdApi => ejabberd::start_with(&ejabberd::Options {
                name: "ejabberd-api",
                password_format: "scram",
                http_api: true,
            }),
            Variant::EjabberdPlainApi => ejabberd::start_with(&ejabberd::Options {
                name: "ejabberd-plain-api",
                password_format: "plain",
                http_api: true,
            }),
        })
        .map_err(|payload| failed_start(&variant.to_string(), payload))
    });
    match started {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}
