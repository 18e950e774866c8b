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
//! prints its path at exit.

// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod doc;
mod ejabberd;
mod gateway;
mod http;
mod pki;
mod procs;
mod prosody;
pub mod victim;
pub mod xmpp;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use gateway::TestGateway;
pub use http::{basic, http, try_http, HttpResponse};

/// The one XMPP domain both servers serve (the seed document's own).
pub const DOMAIN: &str = "domain.com";

/// Accounts registered at start. `admin` and `admin2` are the servers' administrators; every other one is an
/// ordinary user. Passwords: see [`password_for`].
#[rustfmt::skip]
pub const ACCOUNTS: &[&str] = &[
    "admin",
    "admin2", "test", "user1", "user2", "user3", "user4", "user5", "user6", "user7", "user8",
    "user9", "user10", "user11", "user12", "nonadmin", "throttle1", "throttle2", "throttle3",
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
    /// Its c2s port on 127.0.0.1 (plaintext, STARTTLS offered).
    pub c2s_port: u16,
    /// The CA certificate that signed its certificate: the gateway's `--upstream-ca`.
    pub ca_pem: PathBuf,
    /// Its config, data and logs (owned by the server's system user).
    pub state_dir: PathBuf,
    pub startup: Startup,
    /// Log files, relative to `state_dir`, shown when something fails.
    logs: Vec<&'static str>,
}

impl TestServer {
    fn new(kind: ServerKind, c2s_port: u16, state_dir: PathBuf, logs: &[&'static str]) -> Self {
        TestServer {
            kind,
            domain: DOMAIN.to_owned(),
            c2s_port,
            ca_pem: pki::shared().ca_pem.clone(),
            state_dir,
            startup: Startup::default(),
            logs: logs.to_vec(),
        }
    }

    fn with_startup(mut self, startup: Startup) -> Self {
        self.startup = startup;
        eprintln!(
            "[harness] {} ready on 127.0.0.1:{} in {:?} (accounts {:?}, total {:?})",
            self.kind, self.c2s_port, startup.ready, startup.registration, startup.total
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
        SocketAddr::from(([127, 0, 0, 1], self.c2s_port))
    }

    /// The last `lines` lines of each of the server's logs, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let tails = self
            .logs
            .iter()
            .map(|l| procs::tail(&self.state_dir.join(l), lines));
        tails.collect::<Vec<_>>().join("\n")
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
    started.map_err(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(no message)".to_owned());
        format!("the test {kind} server failed to start: {msg}")
    })
}
