//! HAProxy in front of several gateways, natively on loopback: the shipped
//! `deploy/haproxy/haproxy.cfg` with only what a deployment changes replaced ([`render`]), run
//! in the foreground (`haproxy -db`) and stopped by its PID, a failed test included; and
//! [`Replicas`], gateways of one server behind it, each of which a test may kill, stop and
//! start again on its port.
//!
//! HAProxy's stats socket ([`TestHaproxy::servers`]) says what HAProxy thinks of each gateway
//! (UP, DOWN) and what it did (connections, retries, redispatches).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{procs, TestGateway, TestServer};

/// The shipped configuration and its error pages.
pub const SHIPPED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/haproxy");

/// How long HAProxy may take to listen, and a gateway to be seen UP or DOWN.
const BOUND: Duration = Duration::from_secs(15);

/// How the backend picks a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// The shipped `balance hdr(Authorization)`: one account, one gateway.
    Shipped,
    /// `balance roundrobin`, as a Kubernetes Service or a balancer without affinity would:
    /// every gateway carries every account's requests.
    RoundRobin,
}

/// The shipped configuration with what a deployment changes replaced: the `bind` line (plain
/// HTTP on `listen`), one `server` line per gateway (`gw1`, `gw2`, ... with the shipped line's
/// options), the stats socket's path, and the privilege lines (`chroot`, `user`, `group`)
/// dropped, as the harness's HAProxy runs as whoever runs the tests; with
/// [`Balance::RoundRobin`], the `balance` line. Everything else is the shipped file's. Panics
/// if the shipped file lacks one of those lines.
pub fn render(
    shipped: &str,
    listen: SocketAddr,
    servers: &[SocketAddr],
    balance: Balance,
    socket: &Path,
) -> String {
    let mut out = Vec::new();
    let (mut binds, mut server_lines, mut sockets, mut balances) = (0, 0, 0, 0);
    for line in shipped.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["chroot" | "user" | "group", ..] => {}
            ["bind", ..] => {
                binds += 1;
                out.push(format!("    bind {listen}"));
            }
            ["stats", "socket", _, rest @ ..] => {
                sockets += 1;
                out.push(format!(
                    "    stats socket {} {}",
                    socket.display(),
                    rest.join(" ")
                ));
            }
            ["balance", "hdr(Authorization)"] => {
                balances += 1;
                out.push(match balance {
                    Balance::Shipped => line.to_string(),
                    Balance::RoundRobin => "    balance roundrobin".to_string(),
                });
            }
            ["server", _, _, options @ ..] => {
                // The first shipped server line is the template for all of the harness's.
                server_lines += 1;
                if server_lines == 1 {
                    for (i, addr) in servers.iter().enumerate() {
                        let n = i + 1;
                        out.push(format!("    server gw{n} {addr} {}", options.join(" ")));
                    }
                }
            }
            _ => out.push(line.to_string()),
        }
    }
    assert_eq!(binds, 1, "the shipped config has one bind line");
    assert!(server_lines >= 1, "the shipped config has server lines");
    assert_eq!(sockets, 1, "the shipped config has one stats socket");
    assert_eq!(balances, 1, "the shipped config balances by Authorization");
    out.join("\n") + "\n"
}

/// What HAProxy says of one gateway (a line of `show stat`).
#[derive(Debug, Clone)]
pub struct ServerStat {
    /// `gw1`, `gw2`, ...
    pub name: String,
    /// `UP`, `DOWN`, or a transition (`UP 1/2`, `DOWN 1/2`).
    pub status: String,
    /// Requests on it now; requests sent to it (sessions), connection errors, retries and
    /// redispatches so far.
    pub current: u64,
    pub sessions: u64,
    pub connection_errors: u64,
    pub retries: u64,
    pub redispatches: u64,
}

/// A running HAProxy. Dropping it sends SIGTERM by PID, waits, then SIGKILLs; if the dropping
/// thread is panicking, its log's tail is printed first.
pub struct TestHaproxy {
    /// Its frontend: plain HTTP on 127.0.0.1.
    pub addr: SocketAddr,
    child: Child,
    socket: PathBuf,
    log_path: PathBuf,
}

impl TestHaproxy {
    /// HAProxy with the shipped configuration in front of `servers`, listening once this
    /// returns. It does not wait for the gateways to be seen UP ([`wait_status`]).
    ///
    /// [`wait_status`]: Self::wait_status
    pub fn start(servers: &[SocketAddr], balance: Balance) -> TestHaproxy {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = procs::run_dir().join(format!("haproxy-{n}"));
        fs::create_dir_all(&dir).unwrap();
        // The error pages beside the config, where the shipped `default-path config` finds them.
        copy_dir(&Path::new(SHIPPED_DIR).join("errors"), &dir.join("errors"));
        let addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()));
        let socket = dir.join("admin.sock");
        let shipped = fs::read_to_string(Path::new(SHIPPED_DIR).join("haproxy.cfg")).unwrap();
        let config = dir.join("haproxy.cfg");
        fs::write(&config, render(&shipped, addr, servers, balance, &socket)).unwrap();
        let log_path = dir.join("haproxy.log");
        let log = fs::File::create(&log_path).unwrap();
        let child = Command::new(binary())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning haproxy");
        procs::track_pid(child.id());
        let mut proxy = TestHaproxy {
            addr,
            child,
            socket,
            log_path,
        };
        proxy.wait_listening();
        proxy
    }

    /// Its log so far (HAProxy's warnings and one line per request, `option httplog`).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// What HAProxy says of each gateway now, in backend order.
    pub fn servers(&self) -> Vec<ServerStat> {
        let csv = self.command("show stat");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("no {name} in show stat: {csv}"))
        };
        let (px, sv, status) = (col("pxname"), col("svname"), col("status"));
        let (scur, stot) = (col("scur"), col("stot"));
        let (econ, wretr, wredis) = (col("econ"), col("wretr"), col("wredis"));
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > wredis && f[px] == "gateways" && f[sv].starts_with("gw"))
            .map(|f| {
                let num = |i: usize| f[i].parse().unwrap_or(0);
                ServerStat {
                    name: f[sv].to_string(),
                    status: f[status].to_string(),
                    current: num(scur),
                    sessions: num(stot),
                    connection_errors: num(econ),
                    retries: num(wretr),
                    redispatches: num(wredis),
                }
            })
            .collect()
    }

    /// Waits until HAProxy reports gateway `gw{index + 1}` as `status` (`UP` or `DOWN`), and
    /// returns how long that took; panics after 15 s.
    pub async fn wait_status(&self, index: usize, status: &str) -> Duration {
        let start = Instant::now();
        let name = format!("gw{}", index + 1);
        loop {
            let servers = self.servers();
            let now = servers.iter().find(|s| s.name == name);
            if now.is_some_and(|s| s.status == status) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < BOUND,
                "HAProxy did not see {name} {status} within {BOUND:?}: {servers:?}\n{}",
                procs::tail(&self.log_path, 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One command on the stats socket, its whole answer.
    fn command(&self, line: &str) -> String {
        let mut sock = UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("HAProxy's stats socket {}: {e}", self.socket.display()));
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        writeln!(sock, "{line}").unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out)
            .unwrap_or_else(|e| panic!("HAProxy's answer to {line}: {e}"));
        out
    }

    fn wait_listening(&mut self) {
        let start = Instant::now();
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).is_err()
            || !self.socket.exists()
        {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "haproxy exited at startup ({status}):\n{}",
                    procs::tail(&self.log_path, 40)
                );
            }
            assert!(
                start.elapsed() < BOUND,
                "haproxy did not listen on {} within {BOUND:?}:\n{}",
                self.addr,
                procs::tail(&self.log_path, 40)
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for TestHaproxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[harness] haproxy {} log:\n{}",
                self.addr,
                procs::tail(&self.log_path, 60)
            );
        }
        if let Ok(None) = self.child.try_wait() {
            procs::signal(self.child.id() as i32, libc::SIGTERM);
            if !procs::wait_until(&mut self.child, Instant::now() + procs::STOP_GRACE) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        procs::untrack_pid(self.child.id());
    }
}

/// `haproxy`, from Debian's package.
pub fn binary() -> PathBuf {
    procs::find_binary("haproxy", "haproxy")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Gateways of one server behind one HAProxy, on ports chosen before any starts (so that
/// each may be told the others' addresses, `--peer`). Each runs with `--trusted-proxy
/// 127.0.0.1` and the arguments it was given; a stopped or killed one starts again on its
/// port with the same arguments.
pub struct Replicas {
    pub server: &'static TestServer,
    /// `None` while stopped or killed.
    pub gateways: Vec<Option<TestGateway>>,
    /// Where each listens, whether running or not.
    pub addrs: Vec<SocketAddr>,
    args: Vec<Vec<String>>,
    pub haproxy: TestHaproxy,
}

impl Replicas {
    /// `n` gateways of `server`, gateway `i` with the arguments `args(i, addrs)`, behind
    /// HAProxy; returns once HAProxy sees every one UP.
    pub async fn start(
        server: &'static TestServer,
        n: usize,
        balance: Balance,
        args: impl Fn(usize, &[SocketAddr]) -> Vec<String>,
    ) -> Replicas {
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], procs::free_port())))
            .collect();
        let args: Vec<Vec<String>> = (0..n).map(|i| args(i, &addrs)).collect();
        let haproxy = TestHaproxy::start(&addrs, balance);
        let mut replicas = Replicas {
            server,
            gateways: (0..n).map(|_| None).collect(),
            addrs,
            args,
            haproxy,
        };
        for i in 0..n {
            replicas.start_again(i).await;
        }
        replicas
    }

    /// The running gateway `i`; panics if it is stopped.
    pub fn gateway(&self, i: usize) -> &TestGateway {
        self.gateways[i].as_ref().expect("a running gateway")
    }

    /// `kill -9` of gateway `i`, by PID.
    pub fn kill(&mut self, i: usize) {
        let mut gw = self.gateways[i].take().expect("a running gateway");
        gw.kill();
    }

    /// SIGTERM to gateway `i`, and its exit within `limit` (panics past it); returns its exit
    /// status and its log. Waits off the runtime: the test's other tasks (a load) go on.
    pub async fn stop(&mut self, i: usize, limit: Duration) -> (ExitStatus, String) {
        let mut gw = self.gateways[i].take().expect("a running gateway");
        let (status, log) = tokio::task::spawn_blocking(move || {
            let status = gw.terminate(limit);
            (status, gw.log())
        })
        .await
        .expect("stopping a gateway");
        let status = status.unwrap_or_else(|| panic!("gateway {i} still running after {limit:?}"));
        (status, log)
    }

    /// Starts gateway `i` (again) on its port with its arguments, and waits until HAProxy
    /// sees it UP; returns how long HAProxy took to see it.
    pub async fn start_again(&mut self, i: usize) -> Duration {
        assert!(self.gateways[i].is_none(), "gateway {i} is running");
        let mut args = vec!["--trusted-proxy".to_string(), "127.0.0.1".to_string()];
        args.extend(self.args[i].iter().cloned());
        let (server, addr) = (self.server, self.addrs[i]);
        let gw = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            TestGateway::start_at(server, addr, &args)
        })
        .await
        .expect("starting a gateway");
        self.gateways[i] = Some(gw);
        self.haproxy.wait_status(i, "UP").await
    }
}
