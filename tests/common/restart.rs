//! A server of a test's own that the test stops and starts again on the same port (for
//! readiness tests), beside the shared ones, which nothing may stop.

use std::time::{Duration, Instant};

use super::{ejabberd, procs, prosody, xmpp, ServerKind, TestServer, DOMAIN};

/// How long a stop or a restart may take.
const BOUND: Duration = Duration::from_secs(30);

/// A server started for one test, with the same accounts as the shared ones.
pub struct OwnServer {
    pub server: TestServer,
}

/// Starts a server of `kind` in a state directory `name` of its own, on a port of its own.
pub fn own_server(kind: ServerKind, name: &'static str) -> OwnServer {
    let server = match kind {
        ServerKind::Prosody => prosody::start_with(&prosody::Options {
            name,
            unlimited_admins: true,
        }),
        ServerKind::Ejabberd => ejabberd::start_with(&ejabberd::Options {
            name,
            password_format: "scram",
            http_api: false,
        }),
    };
    OwnServer { server }
}

impl OwnServer {
    /// SIGTERM to the server by its pidfile's PID (Prosody's, or ejabberd's `beam.smp`), then
    /// waits until that process is gone and the port refuses connections.
    pub fn stop(&self) {
        let kind = self.server.kind;
        let pid = self
            .server
            .pid()
            .unwrap_or_else(|| panic!("{kind} has no pidfile to stop it by"));
        procs::signal(pid as i32, libc::SIGTERM);
        let start = Instant::now();
        // Prosody is the harness's child (reaped by `tracked_exit`); beam.smp is
        // ejabberdctl's, which reaps it.
        let gone = || {
            // SAFETY: signal 0 only checks that the PID exists.
            procs::tracked_exit(pid).is_some() || unsafe { libc::kill(pid as i32, 0) } != 0
        };
        let refused = || {
            std::net::TcpStream::connect_timeout(
                &self.server.c2s_addr(),
                Duration::from_millis(200),
            )
            .is_err()
        };
        while !(gone() && refused()) {
            assert!(
                start.elapsed() < BOUND,
                "{kind} did not stop within {BOUND:?}:\n{}",
                self.server.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if kind == ServerKind::Prosody {
            // Reaped: the watchdog must not signal its PID later, whoever has it by then.
            procs::untrack_pid(pid);
        }
    }

    /// Starts the stopped server again from its state directory, on the same port, and waits
    /// until it answers a stream.
    pub fn start_again(&self) {
        let pid = match self.server.kind {
            ServerKind::Prosody => prosody::spawn(&self.server.state_dir),
            ServerKind::Ejabberd => ejabberd::spawn(&self.server.state_dir),
        };
        xmpp::wait_ready(self.server.c2s_port, DOMAIN, BOUND, || {
            procs::tracked_exit(pid)
        })
        .unwrap_or_else(|e| {
            panic!(
                "{} did not start again: {e}\n{}",
                self.server.kind,
                self.server.log_tail(40)
            )
        });
    }
}
