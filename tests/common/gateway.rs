//! The gateway binary under test, run as a child process against one test server.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{procs, TestServer};

/// How long the gateway may take to accept on its HTTP port.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running gateway. Dropping it sends SIGTERM, waits up to 5 s, then SIGKILLs, by PID; if
/// the dropping thread is panicking (a failed assertion), the log's tail is printed first.
pub struct TestGateway {
    /// Where its HTTP API listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    child: Child,
    log_path: PathBuf,
    /// Set once the log has been shown (a startup failure's message carries it already).
    log_shown: bool,
}

impl TestGateway {
    /// `--listen 127.0.0.1:<free> --upstream 127.0.0.1:<c2s> --upstream-ca <ca> --domain
    /// domain.com` followed by `extra_args` (clap takes the last of a repeated flag; an
    /// `--upstream` in them replaces the server's).
    pub fn start(server: &TestServer, extra_args: &[&str]) -> TestGateway {
        Self::start_with_env(server, extra_args, &[])
    }

    /// As [`start`](Self::start), with extra environment variables. The caller's `XRG_*`
    /// variables are removed first, so a developer's shell cannot change what a test runs.
    pub fn start_with_env(server: &TestServer, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(server, None, extra_args, env, true)
    }

    /// As [`start`](Self::start), without `--domain`.
    pub fn start_without_domain(server: &TestServer, extra_args: &[&str]) -> Self {
        Self::spawn(server, None, extra_args, &[], false)
    }

    /// As [`start`](Self::start), listening on `addr` (a replica started again on its port,
    /// or one whose port its peers had to know first).
    pub fn start_at(server: &TestServer, addr: SocketAddr, extra_args: &[&str]) -> Self {
        Self::spawn(server, Some(addr), extra_args, &[], true)
    }

    fn spawn(
        server: &TestServer,
        addr: Option<SocketAddr>,
        extra_args: &[&str],
        env: &[(&str, &str)],
        domain: bool,
    ) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let logs = procs::run_dir().join("gateways");
        fs::create_dir_all(&logs).unwrap();
        let log_path = logs.join(format!("gateway-{n}-{}.log", server.kind));
        let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], procs::free_port())));
        let mut cmd = command(server, addr, extra_args, env, domain);
        let log = fs::File::create(&log_path).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("spawning the gateway binary");
        procs::track_pid(child.id());
        let mut gw = TestGateway {
            addr,
            child,
            log_path,
            log_shown: false,
        };
        gw.wait_listening();
        gw
    }

    /// Its stdout and stderr so far (tracing at `RUST_LOG=info`).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The log's whole lines once `marker` stands in at least `count` of them, or after 10 s
    /// (the caller's assertion then says what is missing).
    pub async fn log_lines(&self, marker: &str, count: usize) -> String {
        self.log_when(|l| l.lines().filter(|l| l.contains(marker)).count() >= count)
            .await
    }

    /// The log's whole lines once `ready` holds of them, or as they are after 10 s. The
    /// gateway writes its lines from a thread of its own (`logging::writer`), so a request's
    /// lines, its audit line included, may land a moment after its answer (or half of one may
    /// be there): a test waits for what it expects.
    pub async fn log_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let whole = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
            if ready(whole) || Instant::now() >= deadline {
                return whole.to_string();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The log once it has stopped growing for 300 ms (at most 10 s): for a check that
    /// something is absent, after everything the requests before it wrote.
    pub async fn log_settled(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = self.log();
        let mut since = Instant::now();
        while Instant::now() < deadline && since.elapsed() < Duration::from_millis(300) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.log();
            if now.len() != last.len() {
                last = now;
                since = Instant::now();
            }
        }
        last
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP (reload the access file and the HTTPS certificate).
    pub fn hangup(&self) {
        procs::signal(self.child.id() as i32, libc::SIGHUP);
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; `None` if it is still running.
    /// For shutdown tests; a later drop is then a no-op.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        procs::signal(self.child.id() as i32, libc::SIGTERM);
        procs::wait_until(&mut self.child, Instant::now() + timeout);
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL (`kill -9`), by PID, and reaps it: nothing of its shutdown runs.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            procs::signal(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (or SIGINT) once, without waiting: for tests of the drain.
    pub fn signal(&self, signal: i32) {
        procs::signal(self.child.id() as i32, signal);
    }

    /// Waits up to `timeout` for the exit, sending nothing; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        procs::wait_until(&mut self.child, Instant::now() + timeout);
        self.child.try_wait().ok().flatten()
    }

    fn wait_listening(&mut self) {
        let start = Instant::now();
        self.log_shown = true; // Until it listens, any panic here prints the log itself.
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the gateway exited at startup ({status}):\n{}",
                    self.log_tail(40)
                );
            }
            if start.elapsed() > START_TIMEOUT {
                panic!(
                    "the gateway did not listen on {} within {START_TIMEOUT:?}:\n{}",
                    self.addr,
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.log_shown = false;
    }

    fn log_tail(&self, n: usize) -> String {
        procs::tail(&self.log_path, n)
    }
}

/// The gateway binary to run: `$XRG_GATEWAY_BIN` if set (the benchmark points it at the
/// release build), else the one Cargo built for this test binary.
/// Runs the gateway's `token` subcommand (`add`, `list`, `revoke`, ...) and returns its stdout,
/// trimmed (for `add`: the new secret); a failure fails the test with its stderr.
pub fn token(args: &[&str]) -> String {
    let out = Command::new(binary())
        .arg("token")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running the token subcommand");
    assert!(
        out.status.success(),
        "token {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn binary() -> PathBuf {
    match std::env::var_os("XRG_GATEWAY_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_xmpp-rest-gateway")),
    }
}

fn command(
    server: &TestServer,
    addr: SocketAddr,
    extra: &[&str],
    env: &[(&str, &str)],
    domain: bool,
) -> Command {
    let mut cmd = Command::new(binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("XRG_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info").envs(env.iter().copied());
    cmd.arg("--listen").arg(addr.to_string());
    // A test's own `--upstream` (a proxy, a list) stands alone: the flag takes a list.
    if !extra.contains(&"--upstream") {
        cmd.arg("--upstream").arg(server.c2s_addr().to_string());
    }
    // A plaintext upstream (a test's reading proxy) takes no CA.
    if !extra.windows(2).any(|w| w == ["--upstream-tls", "none"]) {
        cmd.arg("--upstream-ca").arg(&server.ca_pem);
    }
    if domain {
        cmd.arg("--domain").arg(&server.domain);
    }
    // Gateways of the tests never fight over the admin listener's default port; a test that
    // wants one gives `--admin-listen` (the last one given counts).
    cmd.arg("--admin-listen").arg("off");
    // Stopped at once on SIGTERM (every test's gateway is, when dropped), as before draining
    // existed; a test of the drain gives `--drain-delay` itself.
    cmd.arg("--drain-delay").arg("0");
    cmd.args(extra);
    cmd
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.log_shown {
            eprintln!(
                "[harness] gateway {} log:\n{}",
                self.addr,
                self.log_tail(60)
            );
        }
        if self.terminate(procs::STOP_GRACE).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        procs::untrack_pid(self.child.id());
    }
}
