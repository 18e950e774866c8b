//! What operators watch: `/healthz` and `/readyz` on both listeners, readiness following the
//! XMPP server down and back (a server of the test's own, stopped and started again on its
//! port), `/metrics` in Prometheus text moving by exactly the requests made, the admin
//! listener's flags, and the `healthcheck` subcommand's exit codes.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::prometheus::{parse_exposition, sum, value, Sample};
use crate::common::rest::*;
use crate::common::restart::{own_server, OwnServer};
use crate::common::{self, basic, http, try_http, HttpResponse, ServerKind, TestGateway};

/// How long readiness may take to follow the server (the bound).
const FOLLOWS_WITHIN: Duration = Duration::from_secs(10);

on_both_servers!(
    health_and_readiness_answer_on_both_listeners_without_credentials,
    readiness_follows_the_server_down_and_back,
    an_upstream_by_address_without_domain_is_ready,
    metrics_move_by_exactly_the_requests_made,
);

fn admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], common::free_port()))
}

/// A gateway of the test's own on `server`, with its admin listener at `admin`.
fn gateway_with_admin(server: &common::TestServer, admin: SocketAddr) -> TestGateway {
    TestGateway::start(server, &["--admin-listen", &admin.to_string()])
}

async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    http(addr, "GET", path, &[("accept", "application/json")], b"").await
}

async fn health_and_readiness_answer_on_both_listeners_without_credentials(kind: ServerKind) {
    let s = common::started(kind).await;
    let admin = admin_addr();
    let gw = gateway_with_admin(s, admin);
    for addr in [gw.addr, admin] {
        let r = get(addr, "/healthz").await;
        assert_eq!((r.status, r.text().as_str()), (200, "ok\n"), "{addr}");
        let r = get(addr, "/readyz").await;
        assert_eq!((r.status, r.text().as_str()), (200, "ready\n"), "{addr}");
        let r = http(addr, "POST", "/healthz", &[], b"").await;
        assert_eq!(r.status, 405, "{addr}");
        assert_eq!(r.header("allow"), Some("GET"));
    }
    // Metrics only on the admin listener.
    assert_eq!(get(gw.addr, "/metrics").await.status, 404);
    let r = get(admin, "/metrics").await;
    assert_eq!(r.status, 200);
    parse_exposition(&r.text());
    // The admin listener serves nothing else.
    assert_eq!(get(admin, PATH).await.status, 404);
    assert_eq!(get(admin, "/openapi.json").await.status, 404);
}

/// `--upstream 127.0.0.1:PORT` without `--domain` (as in a compose file): the server answers
/// the address host-unknown, which proves it serving; the log says once what readiness cannot
/// check.
async fn an_upstream_by_address_without_domain_is_ready(kind: ServerKind) {
    let s = common::started(kind).await;
    let gw = TestGateway::start_without_domain(s, &[]);
    let r = get(gw.addr, "/readyz").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    let said = gw.log().matches("readiness (/readyz) cannot check").count();
    assert_eq!(said, 1, "{}", gw.log());
    // A command runs as before: the account's own domain.
    let r = crate::common::rest::idle_seed_as_admin(gw.addr).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn readiness_follows_the_server_down_and_back(kind: ServerKind) {
    let name = match kind {
        ServerKind::Prosody => "prosody-observe",
        ServerKind::Ejabberd => "ejabberd-observe",
    };
    let own: OwnServer = tokio::task::spawn_blocking(move || own_server(kind, name))
        .await
        .expect("own server");
    let admin = admin_addr();
    let gw = gateway_with_admin(&own.server, admin);
    for addr in [gw.addr, admin] {
        assert_eq!(get(addr, "/readyz").await.status, 200, "{addr}");
    }
    assert_eq!(
        healthcheck(Some(&format!("http://{}/readyz", gw.addr)), None),
        0
    );
    assert_eq!(
        healthcheck(Some(&format!("http://{admin}/readyz")), None),
        0
    );
    // Without --url: /readyz on XRG_LISTEN's port.
    assert_eq!(healthcheck(None, Some(gw.addr)), 0);

    tokio::task::block_in_place(|| own.stop());
    let down = poll_status(gw.addr, "/readyz", 503).await;
    assert_eq!(
        error_of(&down)["condition"],
        "upstream-unavailable",
        "{}",
        down.text()
    );
    assert!(down.header("retry-after").is_some());
    assert_eq!(get(admin, "/readyz").await.status, 503);
    assert_eq!(
        healthcheck(Some(&format!("http://{}/readyz", gw.addr)), None),
        1
    );
    // Liveness does not depend on the server.
    assert_eq!(get(gw.addr, "/healthz").await.status, 200);

    tokio::task::block_in_place(|| own.start_again());
    poll_status(gw.addr, "/readyz", 200).await;
    assert_eq!(get(admin, "/readyz").await.status, 200);
    assert_eq!(healthcheck(None, Some(gw.addr)), 0);
}

/// Scrapes until the gauge `name` reads `want`, within [`FOLLOWS_WITHIN`].
async fn poll_gauge(admin: SocketAddr, name: &str, want: f64) {
    let start = Instant::now();
    loop {
        let now = value(&scrape(admin).await, name, &[]);
        if now == want {
            return;
        }
        assert!(
            start.elapsed() < FOLLOWS_WITHIN,
            "{name} still {now} after {FOLLOWS_WITHIN:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `GET path` until it answers `want`, within [`FOLLOWS_WITHIN`].
async fn poll_status(addr: SocketAddr, path: &str, want: u16) -> HttpResponse {
    let start = Instant::now();
    loop {
        let r = get(addr, path).await;
        if r.status == want {
            return r;
        }
        assert!(
            start.elapsed() < FOLLOWS_WITHIN,
            "{path} still {} ({}) after {FOLLOWS_WITHIN:?}, not {want}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metrics_move_by_exactly_the_requests_made(kind: ServerKind) {
    let s = common::started(kind).await;
    let admin = admin_addr();
    // One failed login per account and address before 429.
    let gw = TestGateway::start(
        s,
        &["--admin-listen", &admin.to_string(), "--throttle-pair", "1"],
    );
    let before = scrape(admin).await;

    assert_eq!(idle_seed_as_admin(gw.addr).await.status, 200);
    assert_eq!(idle_seed_as_admin(gw.addr).await.status, 200);
    let wrong = basic("admin@domain.com", "not-the-password");
    let r = post(gw.addr, PATH, &wrong, "application/xml", &IDLE_SEED_XML).await;
    assert_eq!(r.status, 401);
    let r = post(gw.addr, PATH, &wrong, "application/xml", &IDLE_SEED_XML).await;
    assert_eq!(r.status, 429, "the pair's budget of one is spent");
    assert_eq!(get(gw.addr, "/rest/no-such-resource").await.status, 404);
    // Neither health checks nor scrapes are requests.
    for addr in [gw.addr, admin] {
        get(addr, "/healthz").await;
        get(addr, "/readyz").await;
    }
    scrape(admin).await;

    let after = scrape(admin).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let requests = "xrg_http_requests_total";
    let eus = ("node", "end-user-session");
    assert_eq!(delta(requests, &[("status", "200"), eus]), 2.0);
    assert_eq!(delta(requests, &[("status", "401"), eus]), 1.0);
    assert_eq!(delta(requests, &[("status", "429"), eus]), 1.0);
    assert_eq!(delta(requests, &[("status", "404"), ("node", "none")]), 1.0);
    assert_eq!(sum(&after, requests) - sum(&before, requests), 5.0);
    let durations = "xrg_http_request_duration_seconds_count";
    assert_eq!(delta(durations, &[]), 5.0);
    let logins = "xrg_upstream_logins_total";
    assert_eq!(
        delta(logins, &[("outcome", "ok")]),
        1.0,
        "the second was warm"
    );
    assert_eq!(
        delta(logins, &[("outcome", "refused")]),
        1.0,
        "the throttled one never reached the server"
    );
    assert_eq!(delta(logins, &[("outcome", "error")]), 0.0);
    assert_eq!(delta("xrg_throttled_total", &[]), 1.0);
    assert!(delta("xrg_upstream_iq_duration_seconds_count", &[]) >= 2.0);
    // Gauges are always there (`value` reads a missing sample as 0).
    for gauge in [
        "xrg_warm_sessions",
        "xrg_requests_in_flight",
        "xrg_http_connections",
    ] {
        assert!(after.iter().any(|s| s.name == gauge), "no {gauge}");
    }
    assert_eq!(value(&after, "xrg_warm_sessions", &[]), 1.0);
    assert_eq!(value(&after, "xrg_requests_in_flight", &[]), 0.0);
    // Connections held open on the API listener are counted, and no longer once closed.
    let held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(gw.addr).expect("connect"))
        .collect();
    poll_gauge(admin, "xrg_http_connections", 3.0).await;
    drop(held);
    poll_gauge(admin, "xrg_http_connections", 0.0).await;
    let version = ("version", env!("CARGO_PKG_VERSION"));
    assert_eq!(value(&after, "xrg_build_info", &[version]), 1.0);
    // No label carries an account or a JID.
    for s in &after {
        for v in s.labels.values() {
            assert!(!v.contains('@'), "{} has {v:?}", s.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listen_off_opens_no_admin_port() {
    let s = common::started(ServerKind::Prosody).await;
    let admin = admin_addr();
    let env = [("XRG_ADMIN_LISTEN", admin.to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gw = TestGateway::start_with_env(s, &["--admin-listen", "off"], &env);
    assert_eq!(get(gw.addr, "/healthz").await.status, 200);
    let r = try_http(admin, "GET", "/metrics", &[], b"").await;
    assert!(r.is_err(), "the admin port answered: {r:?}");
}

#[test]
fn an_admin_address_given_that_cannot_be_bound_is_fatal() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr");
    let mut gw = spawn_gateway(&["--admin-listen", &taken.to_string()]);
    let log = gw.log.clone();
    let status = wait_exit(&mut gw.child, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the gateway kept running:\n{}", read(&log)));
    assert_eq!(status.code(), Some(1), "{}", read(&log));
    assert!(read(&log).contains("--admin-listen"), "{}", read(&log));
}

#[test]
fn a_taken_default_admin_address_is_a_warning() {
    // Held here, or by something else on the host: taken either way while the test runs.
    let _held = match TcpListener::bind("127.0.0.1:9780") {
        Ok(l) => Some(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => panic!("127.0.0.1:9780: {e}"),
    };
    let mut gw = spawn_gateway(&[]);
    let log = gw.log.clone();
    let start = Instant::now();
    while std::net::TcpStream::connect(gw.listen).is_err() {
        assert!(
            gw.child.try_wait().expect("wait").is_none(),
            "exited:\n{}",
            read(&log)
        );
        assert!(start.elapsed() < Duration::from_secs(10), "{}", read(&log));
        std::thread::sleep(Duration::from_millis(25));
    }
    // The warning may follow the main listener's bind by a moment.
    while !read(&log).contains("no admin listener") {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", read(&log));
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        gw.child.try_wait().expect("wait").is_none(),
        "{}",
        read(&log)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_fails_without_a_gateway_or_with_a_bad_url() {
    let closed = format!("http://127.0.0.1:{}/readyz", common::free_port());
    assert_eq!(healthcheck(Some(&closed), None), 1);
    assert_eq!(healthcheck(Some("https://127.0.0.1:1/readyz"), None), 1);
}

/// Runs `healthcheck [--url URL]` (with `XRG_LISTEN` set to `listen` if given); its exit code.
fn healthcheck(url: Option<&str>, listen: Option<SocketAddr>) -> i32 {
    let mut cmd = Command::new(common::gateway_binary());
    cmd.arg("healthcheck");
    if let Some(url) = url {
        cmd.args(["--url", url]);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("XRG_") {
            cmd.env_remove(key);
        }
    }
    if let Some(listen) = listen {
        cmd.env("XRG_LISTEN", listen.to_string());
    }
    let out = tokio::task::block_in_place(|| cmd.output()).expect("running healthcheck");
    out.status.code().expect("an exit code")
}

/// A gateway process started without the harness (whose gateways always get flags the test
/// must leave out); SIGTERM, then SIGKILL, when dropped.
struct Spawned {
    child: Child,
    listen: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: plain syscall on the PID of a child this test spawned.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            if wait_exit(&mut self.child, Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        common::untrack_pid(self.child.id());
    }
}

/// The gateway binary on a free port with a loopback upstream nobody needs to answer, its
/// output in a log file.
fn spawn_gateway(extra: &[&str]) -> Spawned {
    let listen = admin_addr();
    let log = common::scratch_dir("observe").join(format!("gateway-{}.log", listen.port()));
    let file = std::fs::File::create(&log).expect("log");
    let mut cmd = Command::new(common::gateway_binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("XRG_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info")
        .args(["--listen", &listen.to_string()])
        .args(["--upstream", "127.0.0.1:1", "--upstream-tls", "none"])
        .args(["--drain-delay", "0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log"))
        .stderr(file);
    let child = cmd.spawn().expect("spawning the gateway");
    // Stopped by the harness's exit hook and watchdog too, should this test process die.
    common::track_pid(child.id());
    Spawned { child, listen, log }
}

fn read(log: &std::path::Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

async fn scrape(admin: SocketAddr) -> Vec<Sample> {
    let r = get(admin, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        r.header("content-type")
    );
    parse_exposition(&r.text())
}
