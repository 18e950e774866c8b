//! HAProxy in front of two gateway replicas, beside the single gateway, in the same run
//! (issue 21; `XRG_BENCH_ONLY=replicas`). Per server, two gateways A and B (the release binary,
//! each with its own admin listener, `--trusted-proxy 127.0.0.1`, the replica flags and
//! `--drain-delay 0` when the binary has them) and two HAProxy processes running the shipped
//! `deploy/haproxy/haproxy.cfg` with only its addresses rendered for the bench ([`render`]:
//! plain HTTP on a loopback port, the gateways as servers, its own stats socket, no chroot or
//! user change): one with A alone as its backend, one with A and B. The rows, user-stats at 8
//! and 32 connections, one after the other at each concurrency:
//!
//! - `single gateway`: straight to A;
//! - `HAProxy, 1 gateway`: through HAProxy to A alone (the balancer's own hop and CPU);
//! - `HAProxy, 2 replicas`: through HAProxy to A and B.
//!
//! The workers take turns over the servers' three administrators (`admin`, `admin2`,
//! `admin3`; worker i is account i mod 3) in every row, so the shipped `balance
//! hdr(Authorization)` has three keys to spread: with one account every request would land on
//! one replica. Which replica each key lands on is HAProxy's consistent hash; the rows say how
//! the requests split (from each replica's `xrg_http_requests_total`). The ratios are each
//! HAProxy row ÷ the single gateway at the same concurrency.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;

/// The shipped configuration, relative to the crate root.
const SHIPPED_CFG: &str = "deploy/haproxy/haproxy.cfg";
/// The concurrencies of the rows (the `gateway user-stats` rows' 8 and 32).
const REPLICA_CONCURRENCIES: [usize; 2] = [8, 32];
/// Accounts the workers take turns over: the servers' administrators.
const ADMINS: [&str; 3] = ["admin", "admin2", "admin3"];
/// How long a gateway or HAProxy may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) const SINGLE: &str = "single gateway";
pub(super) const VIA_ONE: &str = "HAProxy, 1 gateway";
pub(super) const VIA_TWO: &str = "HAProxy, 2 replicas";

/// One server's rows through HAProxy, and the facts beside them.
pub(super) struct ReplicaSection {
    pub kind: ServerKind,
    /// (what, stats, requests served by A and by B in the row).
    pub rows: Vec<(&'static str, Stats, [u64; 2])>,
    /// Logins of A and B after their warm-up (expected 0).
    pub logins_after: [usize; 2],
    /// Whether the replicas ran with `--replica-name`/`--peer`/`--replica-key-file`.
    pub replica_flags: bool,
}

impl ReplicaSection {
    fn row(&self, what: &str, concurrency: usize) -> Option<&Stats> {
        self.rows
            .iter()
            .find(|(w, s, _)| *w == what && s.concurrency == concurrency)
            .map(|(_, s, _)| s)
    }
}

pub(super) async fn replica_section(cfg: &Config, server: &TestServer) -> ReplicaSection {
    let shipped = fs::read_to_string(SHIPPED_CFG)
        .unwrap_or_else(|e| panic!("{SHIPPED_CFG}: {e} (run from the crate root)"));
    let help = gateway_help();
    let replica_flags = help.contains("--replica-name");
    let dir = common::scratch_dir(&format!("bench-replicas-{}", common::random_hex(4)));
    let key_file = dir.join("replica.key");
    fs::write(&key_file, common::random_hex(32)).expect("the replica key is written");
    restrict(&key_file);
    let ports = [common::free_port(), common::free_port()];
    let addrs = ports.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
    let names = ["a", "b"];
    let replicas: Vec<Replica> = (0..2)
        .map(|i| {
            let peer = format!("{}=http://{}", names[1 - i], addrs[1 - i]);
            let mut extra = vec!["--trusted-proxy".to_string(), "127.0.0.1".into()];
            // Stopped at the end at once, as the harness stops its gateways.
            if help.contains("--drain-delay") {
                extra.extend(["--drain-delay".into(), "0".into()]);
            }
            if replica_flags {
                extra.extend(["--replica-name".into(), names[i].into()]);
                extra.extend(["--peer".into(), peer]);
                extra.extend(["--replica-key-file".into(), key_file.display().to_string()]);
            }
            Replica::start(cfg, server, addrs[i], &extra, &dir, names[i])
        })
        .collect();
    let via_one = Haproxy::start(&shipped, &[addrs[0]], &dir, "one");
    let via_two = Haproxy::start(&shipped, &addrs, &dir, "two");

    let requests = |addr: SocketAddr| -> Vec<Arc<HttpRequest>> {
        ADMINS
            .iter()
            .map(|a| {
                Arc::new(HttpRequest {
                    addr,
                    path: COMMAND_PATH,
                    auth: basic(&server.jid(a), &server.password(a)),
                    body: json_command(
                        USER_STATS,
                        serde_json::json!([
                            {"var": "accountjid", "value": server.jid(STATS_ACCOUNT)}
                        ]),
                    ),
                    expect: "\"command\"",
                })
            })
            .collect()
    };
    let targets = [
        (SINGLE, requests(addrs[0])),
        (VIA_ONE, requests(via_one.addr)),
        (VIA_TWO, requests(via_two.addr)),
    ];
    // Warm-up: every account logged in and the form learnt on whichever replica its key
    // reaches (and on A directly), before anything is measured.
    for (what, reqs) in &targets {
        for req in reqs {
            for _ in 0..2 {
                if let Err(e) = HttpOp::new(req).call().await {
                    panic!(
                        "{}: {what} fails at warm-up: {e}\nA: {}\nB: {}\nHAProxy: {}",
                        server.kind,
                        replicas[0].log_tail(),
                        replicas[1].log_tail(),
                        via_two.log_tail()
                    );
                }
            }
        }
    }
    let logins_at_warmup = [
        count_logins(replicas[0].admin),
        count_logins(replicas[1].admin),
    ];

    let mut rows = Vec::new();
    for n in REPLICA_CONCURRENCIES {
        for (what, reqs) in &targets {
            let (gateways, balancer) = match *what {
                SINGLE => ([Some(replicas[0].pid()), None], None),
                VIA_ONE => ([Some(replicas[0].pid()), None], Some(via_one.pid())),
                _ => (
                    [Some(replicas[0].pid()), Some(replicas[1].pid())],
                    Some(via_two.pid()),
                ),
            };
            let pids = Pids::with_balancer(gateways, server.pid(), balancer);
            let ops: Vec<HttpOp> = (0..n).map(|i| HttpOp::new(&reqs[i % reqs.len()])).collect();
            let before = replicas.iter().map(|r| served(r.admin)).collect::<Vec<_>>();
            let (ops, mut stats) = measure(cfg, pids, ops).await;
            stats.connections = ops.iter().map(|o| o.connections).sum();
            let after = replicas.iter().map(|r| served(r.admin)).collect::<Vec<_>>();
            let split = [after[0] - before[0], after[1] - before[1]];
            eprintln!(
                "[bench] {}: {what} at {n}: {:.0} req/s, A/B served {}/{}",
                server.kind, stats.rps, split[0], split[1]
            );
            rows.push((*what, stats, split));
        }
    }
    let logins_after = [
        count_logins(replicas[0].admin) - logins_at_warmup[0],
        count_logins(replicas[1].admin) - logins_at_warmup[1],
    ];
    drop(via_two);
    drop(via_one);
    drop(replicas);
    let _ = fs::remove_dir_all(&dir);
    ReplicaSection {
        kind: server.kind,
        rows,
        logins_after,
        replica_flags,
    }
}

/// The gateway binary's `--help`: which flags it has (`scripts/bench-ab` may run an older one).
fn gateway_help() -> String {
    Command::new(common::gateway_binary())
        .arg("--help")
        .env_remove("RUST_LOG")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Owner-only, as a secret file should be.
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
}

/// `/rest/*` requests a replica has answered, from its `xrg_http_requests_total`.
fn served(admin: SocketAddr) -> u64 {
    common::prometheus::sum(
        &common::prometheus::parse_exposition(&scrape(admin)),
        "xrg_http_requests_total",
    ) as u64
}

/// The body of `GET /metrics` on an admin listener.
fn scrape(admin: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut conn = TcpStream::connect(admin).expect("the admin listener accepts");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("the scrape is sent");
    let mut text = String::new();
    conn.read_to_string(&mut text).expect("the scrape is read");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Waits until something accepts on `addr`, or panics with `what`'s log once `child` has
/// exited or the timeout passed.
fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str, log: &Path) {
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited || start.elapsed() > LISTEN_TIMEOUT {
            panic!(
                "{what} did not listen on {addr}:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Stops a child by its PID: SIGTERM, up to 5 s, then SIGKILL.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        // SAFETY: a plain syscall on a child this process started and has not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    common::untrack_pid(child.id());
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// One gateway replica on a port chosen here (its peers are named before it starts, so
/// [`TestGateway`] and its own free port do not fit).
struct Replica {
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
}

impl Replica {
    fn start(
        cfg: &Config,
        server: &TestServer,
        addr: SocketAddr,
        extra: &[String],
        dir: &Path,
        name: &str,
    ) -> Replica {
        let admin = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        let log = dir.join(format!("gateway-{name}.log"));
        let mut cmd = Command::new(common::gateway_binary());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("XRG_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("RUST_LOG", &cfg.gateway_log);
        if let Some(threads) = &cfg.gateway_threads {
            cmd.env("XRG_THREADS", threads);
        }
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--upstream")
            .arg(server.c2s_addr().to_string())
            .arg("--upstream-ca")
            .arg(&server.ca_pem)
            .arg("--domain")
            .arg(&server.domain)
            .arg("--admin-listen")
            .arg(admin.to_string())
            .args(extra);
        let file = fs::File::create(&log).expect("the replica's log is created");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("a second handle"))
            .stderr(file);
        let mut child = cmd.spawn().expect("spawning the gateway binary");
        common::track_pid(child.id());
        wait_listening(&mut child, addr, &format!("gateway {name}"), &log);
        Replica { child, admin, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// HAProxy running the shipped configuration rendered with the bench's ports.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Haproxy {
    fn start(shipped: &str, servers: &[SocketAddr], dir: &Path, name: &str) -> Haproxy {
        let addr = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        let errors = std::env::current_dir()
            .expect("the working directory")
            .join("deploy/haproxy/errors");
        let socket = dir.join(format!("haproxy-{name}.sock"));
        let text = render(shipped, addr, servers, &errors, &socket)
            .unwrap_or_else(|e| panic!("{SHIPPED_CFG} cannot be rendered for the bench: {e}"));
        let cfg = dir.join(format!("haproxy-{name}.cfg"));
        fs::write(&cfg, text).expect("the rendered haproxy.cfg is written");
        let log = dir.join(format!("haproxy-{name}.log"));
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .expect("running haproxy -c (Debian's haproxy package)");
        assert!(
            check.status.success(),
            "haproxy -c rejects the rendered {}:\n{}{}",
            cfg.display(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let file = fs::File::create(&log).expect("HAProxy's log is created");
        // -db: in the foreground, whatever the configuration says.
        let mut child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("a second handle"))
            .stderr(file)
            .spawn()
            .expect("spawning haproxy");
        common::track_pid(child.id());
        wait_listening(&mut child, addr, "haproxy", &log);
        Haproxy { child, addr, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The shipped configuration with the bench's addresses: the `bind` line becomes `bind ADDR`
/// (plain HTTP), the backend's `server` lines take `servers` in order (names and options kept;
/// lines beyond `servers` dropped), `errorfile` paths point at this checkout's
/// `deploy/haproxy/errors/` (`errors`), the stats socket at `socket`, and `chroot`, `user` and
/// `group` go (HAProxy runs as the bench's user). Everything else is as shipped.
fn render(
    shipped: &str,
    bind: SocketAddr,
    servers: &[SocketAddr],
    errors: &Path,
    socket: &Path,
) -> Result<String, String> {
    let mut out = String::new();
    let mut binds = 0;
    let mut used = 0;
    let mut section = "";
    for line in shipped.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let words: Vec<&str> = line.split_whitespace().collect();
        if indent.is_empty() {
            if let Some(first) = words.first() {
                section = first;
            }
        }
        match words.as_slice() {
            // The bench's address, plain HTTP (the load generator speaks no TLS).
            ["bind", ..] => {
                binds += 1;
                out.push_str(&format!("{indent}bind {bind}"));
            }
            // Run as the bench's user, without chroot (as the e2e harness runs it).
            ["chroot" | "user" | "group", ..] if section == "global" => continue,
            // A socket of this run's own: other HAProxy processes may be running.
            ["stats", "socket", _path, rest @ ..] => {
                out.push_str(&format!(
                    "{indent}stats socket {} {}",
                    socket.display(),
                    rest.join(" ")
                ));
            }
            ["server", name, _addr, rest @ ..] => {
                if let Some(addr) = servers.get(used) {
                    out.push_str(&format!("{indent}server {name} {addr} {}", rest.join(" ")));
                }
                used += 1;
            }
            ["errorfile", code, path] => {
                let file = Path::new(path)
                    .file_name()
                    .ok_or_else(|| format!("errorfile {code} {path}: no file name"))?;
                let local = errors.join(file);
                if !local.exists() {
                    return Err(format!(
                        "errorfile {code} {path}: {} is missing",
                        local.display()
                    ));
                }
                out.push_str(&format!("{indent}errorfile {code} {}", local.display()));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    if binds != 1 {
        return Err(format!("{binds} bind lines (the bench renders one)"));
    }
    if used < servers.len() {
        return Err(format!("{used} server lines for {} servers", servers.len()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The report

/// The whole machine's busy CPU time per request completed, in µs: every column, the kernel's
/// work for loopback and other processes included (NaN when not sampled).
fn machine_us(st: &Stats) -> f64 {
    if st.rps <= 0.0 || st.cpu.iter().take(4).any(Option::is_none) {
        return f64::NAN;
    }
    let percent: f64 = st.cpu.iter().flatten().sum();
    percent / 100.0 / st.rps * 1e6
}

pub(super) fn render_section(o: &mut String, s: &ReplicaSection) {
    let _ = writeln!(
        o,
        "### {}: HAProxy (shipped haproxy.cfg) in front of two gateways, beside one\n",
        s.kind
    );
    let _ = writeln!(
        o,
        "| what | conc | requests | errors | p50 ms | p99 ms | req/s | conns | served by A / B (warm-up incl.) \
         | CPU % bench/gw/server/rest/HAProxy | CPU µs/req bench/gw/server/HAProxy |"
    );
    let _ = writeln!(
        o,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for (what, st, split) in &s.rows {
        let cpu: Vec<String> = st
            .cpu
            .iter()
            .map(|c| c.map_or("-".into(), |c| format!("{c:.0}")))
            .collect();
        let per_req: Vec<String> = [0, GATEWAY, SERVER, BALANCER]
            .iter()
            .map(|i| match st.cpu_us(*i) {
                us if us.is_finite() => format!("{us:.0}"),
                _ => "-".into(),
            })
            .collect();
        let _ = writeln!(
            o,
            "| user-stats, {what} | {} | {} | {} | {} | {} | {:.0} | {} | {} / {} | {} | {} |",
            st.concurrency,
            st.requests,
            st.errors,
            ms(st.p50),
            ms(st.p99),
            st.rps,
            st.connections,
            split[0],
            split[1],
            cpu.join(" / "),
            per_req.join(" / ")
        );
    }
    for (what, st, _) in s.rows.iter().filter(|(_, st, _)| st.errors > 0) {
        if let Some(e) = &st.first_error {
            let _ = writeln!(
                o,
                "\nfirst error: {what} at {}: {}",
                st.concurrency,
                trim(e)
            );
        }
    }
    let _ = writeln!(
        o,
        "\nreplicas: logins after warm-up A {}, B {}; replica flags (`--replica-name`, `--peer`, \
         `--replica-key-file`) {}\n",
        s.logins_after[0],
        s.logins_after[1],
        if s.replica_flags {
            "given"
        } else {
            "not in this binary"
        }
    );
    let _ = writeln!(
        o,
        "| {} ÷ single gateway | conns | p50 | p99 | req/s | gateway(s) + HAProxy CPU µs/req \
         | server CPU µs/req | machine CPU µs/req |",
        s.kind
    );
    let _ = writeln!(
        o,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for n in REPLICA_CONCURRENCIES {
        let Some(single) = s.row(SINGLE, n) else {
            continue;
        };
        for what in [VIA_ONE, VIA_TWO] {
            let Some(via) = s.row(what, n) else { continue };
            let ours = |st: &Stats| st.cpu_us(GATEWAY) + st.cpu_us(BALANCER);
            let _ = writeln!(
                o,
                "| {what} | {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                ratio(via.p50_ms(), single.p50_ms()),
                ratio(via.p99.as_secs_f64(), single.p99.as_secs_f64()),
                ratio(via.rps, single.rps),
                ratio(ours(via), single.cpu_us(GATEWAY)),
                ratio(via.cpu_us(SERVER), single.cpu_us(SERVER)),
                ratio(machine_us(via), machine_us(single)),
            );
        }
    }
    let _ = writeln!(o);
}
