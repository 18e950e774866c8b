//! The gateway against the servers themselves, side by side, in one run on one machine
//! (`scripts/bench`; docs/benchmarks.md explains the figures). It starts, through the e2e
//! harness, Prosody (admin in `unlimited_jids`), Prosody with the stock `limits` applying to
//! the admin, ejabberd (`scram` storage, `mod_http_api`) and ejabberd (`plain` storage,
//! `mod_http_api`), all on 127.0.0.1, and measures for each:
//!
//! - direct: the gateway's own upstream client (`Connector`, `AdminSession::iq`) on one warm
//!   stream as the admin: user-stats of an offline account (one round trip), sequentially and
//!   32 in flight, and the two-IQ pair end-user-session needs (user-stats, end-user-session)
//!   pipelined on the stream as the gateway sends it;
//! - the gateway (the release binary, `XRG_GATEWAY_BIN`) over HTTP/1.1 keep-alive at 1, 8 and
//!   32 connections: the same user-stats, and end-user-session of an offline account; then its
//!   logins after warm-up and its peak RSS;
//! - ejabberd's `mod_http_api` `kick_user` of an offline account at 1, 8 and 32 connections;
//! - on Prosody and ejabberd, user-stats at 8 and 32 connections through HAProxy (the shipped
//!   `deploy/haproxy/haproxy.cfg`) in front of one gateway and of two replicas, beside the
//!   single gateway, and their ratios (`replicas`, in benches/gateway/replicas.rs).
//!
//! Every row is a warm-up followed by a measured window (`XRG_BENCH_WARMUP`, default 0.5 s;
//! `XRG_BENCH_SECS`, default 3 s; the gateway's `RUST_LOG` is `XRG_BENCH_GATEWAY_LOG`, default
//! `info`; `XRG_BENCH_ACCESS_CHURN=1` gives it an access file rewritten every 10 ms); each
//! worker loops one request at a time, bounded by the
//! window and a request cap, and only ever talks to 127.0.0.1. Latency percentiles are of the
//! requests started in the window, req/s of the requests completed in it. The output is
//! Markdown with a fixed shape: tables, then the ratios against the targets.
//!
//! Nothing here kicks anyone (every account is offline, so runs repeat), no password is ever
//! wrong (ejabberd's `mod_fail2ban` has nothing to count), and ejabberd sees at most two admin
//! streams (direct client and gateway) against its `max_user_sessions: 10`.
//!
//! Run by `cargo bench --bench gateway` only: without `--bench` (as under `cargo test
//! --benches`) it does nothing.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "gateway/replicas.rs"]
mod replicas;

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use xmpp_rest_gateway::adhoc::stream::CommandStream;
use xmpp_rest_gateway::adhoc::xep0050::{Command, CommandReply, Field, Form, Status};
use xmpp_rest_gateway::upstream::AdminSession;

use common::{basic, ServerKind, TestGateway, TestServer, Variant};

/// The concurrencies every HTTP row is measured at.
const CONCURRENCIES: [usize; 3] = [1, 8, 32];
/// IQs in flight on the direct stream for its throughput rows.
const DIRECT_IN_FLIGHT: usize = 32;
/// Upper bound on the requests of one row, whatever the window.
const MAX_REQUESTS_PER_ROW: usize = 500_000;
/// The bound on the gateway's peak RSS, in MB of 10^6 bytes.
const PEAK_RSS_MB: f64 = 16.0;
/// One request slower than this is an error, not a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const USER_STATS: &str = "http://jabber.org/protocol/admin#user-stats";
const END_USER_SESSION: &str = "http://jabber.org/protocol/admin#end-user-session";
/// The accounts the rows ask about: registered, never online.
const STATS_ACCOUNT: &str = "user11";
const KICK_ACCOUNT: &str = "user12";
const ADMIN: &str = "admin";
/// The direct rows of end-user-session's two commands, pipelined on one stream.
const PAIR: &str = "user-stats + end-user-session, pipelined";
/// The gateway's URL for commands to the server itself.
const COMMAND_PATH: &str = "/rest/adhoc/sess-man@domain.com";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("benches/gateway.rs runs under `cargo bench --bench gateway` (scripts/bench)");
        return;
    }
    let cfg = Config::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut report = Report {
        loadavg_before: loadavg(),
        ..Report::default()
    };
    let servers = start_servers();
    rt.block_on(async {
        if cfg.runs("prosody") {
            report.prosody = Some(server_section(&cfg, servers.prosody, "Prosody").await);
        }
        if cfg.runs("ejabberd") {
            report.ejabberd = Some(server_section(&cfg, servers.ejabberd, "ejabberd").await);
        }
        if cfg.runs("kick") {
            report.kick_scram = kick_rows(&cfg, servers.ejabberd).await;
            report.kick_plain = kick_rows(&cfg, servers.ejabberd_plain).await;
        }
        if cfg.runs("limited") {
            report.limited = Some(server_section(&cfg, servers.limited, "Prosody limited").await);
        }
        if cfg.runs("replicas") {
            for server in [servers.prosody, servers.ejabberd] {
                eprintln!("[bench] {}: HAProxy and two replicas", server.kind);
                report
                    .replicas
                    .push(replicas::replica_section(&cfg, server).await);
            }
        }
    });
    report.total = started.elapsed();
    report.loadavg_after = loadavg();
    print!("{}", report.render(&cfg, &servers));
}

/// Row timing, from the environment.
struct Config {
    warmup: Duration,
    window: Duration,
    /// The gateway's `RUST_LOG`: `info` as the harness and a deployment run it (one audit line
    /// per request).
    gateway_log: String,
    /// `XRG_THREADS` for the gateway (`XRG_BENCH_GATEWAY_THREADS`); unset, its default.
    gateway_threads: Option<String>,
    /// `XRG_BENCH_ACCESS_CHURN=1`: the gateway runs with `--access-file`, a file this process
    /// rewrites every 10 ms for the whole of its rows (issue 17: the access file's watch must
    /// cost no request latency; compare user-stats p99 with and without).
    access_churn: bool,
    /// `XRG_BENCH_ONLY`: the sections to run (comma-separated of `prosody`, `ejabberd`,
    /// `kick`, `limited`, `replicas`), for profiling one of them; unset runs all, as the docs'
    /// run does.
    only: Option<Vec<String>>,
}

impl Config {
    fn from_env() -> Self {
        let secs = |var: &str, default: f64| {
            let v = std::env::var(var)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 60.0)
                .unwrap_or(default);
            Duration::from_secs_f64(v)
        };
        Config {
            warmup: secs("XRG_BENCH_WARMUP", 0.5),
            window: secs("XRG_BENCH_SECS", 3.0).max(Duration::from_millis(100)),
            gateway_log: std::env::var("XRG_BENCH_GATEWAY_LOG").unwrap_or_else(|_| "info".into()),
            gateway_threads: std::env::var("XRG_BENCH_GATEWAY_THREADS").ok(),
            access_churn: std::env::var("XRG_BENCH_ACCESS_CHURN").is_ok_and(|v| v == "1"),
            only: std::env::var("XRG_BENCH_ONLY")
                .ok()
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()),
        }
    }

    fn runs(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    }
}

struct Servers {
    prosody: &'static TestServer,
    limited: &'static TestServer,
    ejabberd: &'static TestServer,
    ejabberd_plain: &'static TestServer,
    startup: Duration,
}

/// Starts the four servers side by side (ejabberd takes seconds to boot).
fn start_servers() -> Servers {
    let t = Instant::now();
    let (prosody, limited, ejabberd, ejabberd_plain) = std::thread::scope(|s| {
        let p = s.spawn(common::prosody);
        let l = s.spawn(|| common::server_variant(Variant::ProsodyLimited));
        let e = s.spawn(|| common::server_variant(Variant::EjabberdApi));
        let ep = s.spawn(|| common::server_variant(Variant::EjabberdPlainApi));
        let join = |h: std::thread::ScopedJoinHandle<'_, &'static TestServer>| {
            h.join()
                .unwrap_or_else(|_| panic!("a server did not start"))
        };
        (join(p), join(l), join(e), join(ep))
    });
    Servers {
        prosody,
        limited,
        ejabberd,
        ejabberd_plain,
        startup: t.elapsed(),
    }
}

// ---------------------------------------------------------------------------------------
// Measuring

/// One request of a row; a worker owns one and calls it in a loop.
trait Op: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// What one row measured.
#[derive(Debug, Clone, Default)]
struct Stats {
    concurrency: usize,
    /// Requests started in the window.
    requests: usize,
    /// Of those, failed ones (transport, timeout, unexpected answer).
    errors: usize,
    p50: Duration,
    p99: Duration,
    /// Requests completed within the window, per second of it.
    rps: f64,
    /// The first error seen, for the notes.
    first_error: Option<String>,
    /// TCP connections the HTTP workers opened (more than `concurrency`: the server closed
    /// some).
    connections: usize,
    /// CPU time over the window, in % of one core: this process, the gateway(s), the server,
    /// everything else on the machine (the kernel's softirq work for loopback traffic is
    /// partly there; a lot more means something else was running), and HAProxy (rows through
    /// it: `replicas`).
    cpu: [Option<f64>; 5],
}

/// Indexes of the gateway, the server and HAProxy in [`Stats::cpu`].
const GATEWAY: usize = 1;
const SERVER: usize = 2;
const BALANCER: usize = 4;

/// The processes whose CPU time a row records, by group: this one (load generator or direct
/// client), the gateway(s) (HTTP rows against them; two replicas behind HAProxy are summed),
/// the server, and HAProxy.
#[derive(Clone, Copy)]
struct Pids([[Option<u32>; 2]; 4]);

impl Pids {
    fn new(gateway: Option<u32>, server: Option<u32>) -> Self {
        Self::with_balancer([gateway, None], server, None)
    }

    fn with_balancer(
        gateways: [Option<u32>; 2],
        server: Option<u32>,
        balancer: Option<u32>,
    ) -> Self {
        Pids([
            [Some(std::process::id()), None],
            gateways,
            [server, None],
            [balancer, None],
        ])
    }

    /// CPU seconds of each group so far (`None`: no process, or one of them unreadable).
    fn cpu_seconds(&self) -> [Option<f64>; 4] {
        self.0.map(|group| {
            let pids: Vec<u32> = group.into_iter().flatten().collect();
            if pids.is_empty() {
                return None;
            }
            pids.into_iter().map(cpu_seconds).sum()
        })
    }
}

/// CPU time the whole machine spent busy (all but idle and iowait), in seconds.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum();
    Some(busy as f64 / clock_ticks()?)
}

fn clock_ticks() -> Option<f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then_some(hz as f64)
}

/// utime + stime of a process (all its threads), in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks()?)
}

impl Stats {
    fn p50_ms(&self) -> f64 {
        self.p50.as_secs_f64() * 1e3
    }

    /// CPU µs per request completed of one of the [`Pids`] (NaN when not sampled).
    fn cpu_us(&self, who: usize) -> f64 {
        match self.cpu[who] {
            Some(c) if self.rps > 0.0 => c / 100.0 / self.rps * 1e6,
            _ => f64::NAN,
        }
    }
}

/// When a row's measured window starts and ends.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
    cap: usize,
}

struct Done {
    /// (start, latency, ok) of requests started in the window.
    samples: Vec<(Instant, Duration, bool)>,
    completed_in_window: usize,
    first_error: Option<String>,
}

async fn worker<O: Op>(mut op: O, w: Window) -> (O, Done) {
    let mut done = Done {
        samples: Vec::new(),
        completed_in_window: 0,
        first_error: None,
    };
    let mut count = 0;
    while count < w.cap {
        let start = Instant::now();
        if start >= w.until {
            break;
        }
        count += 1;
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, op.call()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        };
        let end = Instant::now();
        if let Err(e) = &result {
            done.first_error.get_or_insert_with(|| e.clone());
        }
        if start >= w.from {
            done.samples.push((start, end - start, result.is_ok()));
        }
        if end >= w.from && end <= w.until && result.is_ok() {
            done.completed_in_window += 1;
        }
    }
    (op, done)
}

/// Runs `ops` (one per worker) through a warm-up and the measured window.
async fn measure<O: Op>(cfg: &Config, pids: Pids, ops: Vec<O>) -> (Vec<O>, Stats) {
    let concurrency = ops.len();
    let now = Instant::now();
    let w = Window {
        from: now + cfg.warmup,
        until: now + cfg.warmup + cfg.window,
        cap: MAX_REQUESTS_PER_ROW / concurrency.max(1),
    };
    let sampler = tokio::spawn(async move {
        // This process, the gateway(s), the server, the machine, HAProxy.
        let sample = || {
            let p = pids.cpu_seconds();
            [p[0], p[1], p[2], machine_busy_seconds(), p[3]]
        };
        tokio::time::sleep_until(w.from.into()).await;
        let before = sample();
        tokio::time::sleep_until(w.until.into()).await;
        let after = sample();
        let secs = (w.until - w.from).as_secs_f64();
        let mut cpu = [None; 5];
        for i in 0..5 {
            if let (Some(a), Some(b)) = (before[i], after[i]) {
                cpu[i] = Some((b - a) / secs * 100.0);
            }
        }
        // The machine's busy time less that of the processes measured.
        let measured: f64 = [0, 1, 2, 4].iter().filter_map(|i| cpu[*i]).sum();
        cpu[3] = cpu[3].map(|all| (all - measured).max(0.0));
        cpu
    });
    let handles: Vec<_> = ops
        .into_iter()
        .map(|op| tokio::spawn(worker(op, w)))
        .collect();
    let mut ops = Vec::new();
    let mut latencies = Vec::new();
    let mut stats = Stats {
        concurrency,
        ..Stats::default()
    };
    let mut completed = 0;
    for h in handles {
        let (op, done) = h.await.expect("a worker panicked");
        ops.push(op);
        completed += done.completed_in_window;
        if stats.first_error.is_none() {
            stats.first_error = done.first_error;
        }
        for (_, took, ok) in done.samples {
            stats.requests += 1;
            if ok {
                latencies.push(took);
            } else {
                stats.errors += 1;
            }
        }
    }
    stats.cpu = sampler.await.expect("the CPU sampler panicked");
    latencies.sort_unstable();
    stats.p50 = percentile(&latencies, 0.50);
    stats.p99 = percentile(&latencies, 0.99);
    stats.rps = completed as f64 / cfg.window.as_secs_f64();
    (ops, stats)
}

/// Nearest-rank percentile of sorted values (zero for none).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------
// Direct: IQs on one warm stream

/// IQs on the shared stream, one after the other or pipelined (written back to back in one
/// flush, as the gateway sends end-user-session's pair); each answer must be a completed
/// command without an error note.
struct DirectOp {
    session: Arc<AdminSession>,
    to: Jid,
    commands: Arc<Vec<Command>>,
    pipelined: bool,
}

impl Op for DirectOp {
    async fn call(&mut self) -> Result<(), String> {
        // The gateway's own path to the server: `CommandStream::run` (commands written and
        // answers read by `adhoc::wire`), so the direct rows are the server's time, not an
        // XML library's.
        let batches: Vec<Vec<(Jid, Command)>> = if self.pipelined {
            vec![self
                .commands
                .iter()
                .map(|c| (self.to.clone(), c.clone()))
                .collect()]
        } else {
            self.commands
                .iter()
                .map(|c| vec![(self.to.clone(), c.clone())])
                .collect()
        };
        for batch in batches {
            let answers = self.session.run(batch).await.map_err(|e| e.to_string())?;
            for answer in answers {
                check_command_reply(answer.map_err(|e| e.to_string())?)?;
            }
        }
        Ok(())
    }
}

fn check_command_reply(reply: CommandReply) -> Result<(), String> {
    if reply.status != Status::Completed {
        return Err(format!("not completed: {reply:?}"));
    }
    if reply.notes.iter().any(|n| n.type_ == "error") {
        return Err(format!("error note: {reply:?}"));
    }
    Ok(())
}

/// A one-shot command with a submitted admin form.
fn command(node: &str, fields: &[(&str, &str, &str)]) -> Command {
    let field = |var: &str, type_: &str, value: &str| Field {
        var: Some(var.into()),
        type_: Some(type_.into()),
        values: vec![value.into()],
        ..Field::default()
    };
    let mut all = vec![field(
        "FORM_TYPE",
        "hidden",
        "http://jabber.org/protocol/admin",
    )];
    all.extend(fields.iter().map(|(v, t, x)| field(v, t, x)));
    Command::execute(node, Some(Form::submit(all)))
}

/// user-stats of `jid`: what the gateway submits once it knows the form.
fn user_stats_iq(jid: &str) -> Command {
    command(USER_STATS, &[("accountjid", "jid-single", jid)])
}

/// end-user-session of `jid`, with both field names as the gateway sends it.
fn end_user_session_iq(jid: &str) -> Command {
    command(
        END_USER_SESSION,
        &[
            ("accountjids", "jid-multi", jid),
            ("accountjid", "jid-single", jid),
        ],
    )
}

async fn direct_session(server: &TestServer) -> Arc<AdminSession> {
    let connector = common::victim::connector(server);
    let account: BareJid = server.jid(ADMIN).parse().unwrap();
    let logged_in = connector
        .login(&account, &server.password(ADMIN), "bench-direct")
        .await
        .unwrap_or_else(|e| panic!("{}: direct login: {e}", server.kind));
    // No cap of its own below the 32 IQs the in-flight rows keep waiting.
    Arc::new(AdminSession::start(logged_in, 1024))
}

/// The direct rows: user-stats, and the end-user-session pair pipelined on the stream (the
/// server's own time for the two commands: what the gateway's end-user-session is held to),
/// each one at a time and 32 in flight.
async fn direct_rows(cfg: &Config, server: &TestServer) -> Vec<(String, Stats)> {
    let session = direct_session(server).await;
    let to: Jid = server.domain.parse().unwrap();
    let stats_iq = Arc::new(vec![user_stats_iq(&server.jid(STATS_ACCOUNT))]);
    let pair = Arc::new(vec![
        user_stats_iq(&server.jid(KICK_ACCOUNT)),
        end_user_session_iq(&server.jid(KICK_ACCOUNT)),
    ]);
    let mut rows = Vec::new();
    for (what, iqs) in [("user-stats", &stats_iq), (PAIR, &pair)] {
        let pipelined = what == PAIR;
        let mut probe = DirectOp {
            session: session.clone(),
            to: to.clone(),
            commands: iqs.clone(),
            pipelined,
        };
        if let Err(e) = probe.call().await {
            panic!("{}: direct {what} fails: {e}", server.kind);
        }
        for n in [1, DIRECT_IN_FLIGHT] {
            let ops = (0..n)
                .map(|_| DirectOp {
                    session: session.clone(),
                    to: to.clone(),
                    commands: iqs.clone(),
                    pipelined,
                })
                .collect();
            let pids = Pids::new(None, server.pid());
            let (_, stats) = measure(cfg, pids, ops).await;
            rows.push((format!("direct {what}"), stats));
        }
    }
    session.close().await;
    rows
}

// ---------------------------------------------------------------------------------------
// HTTP: keep-alive connections, one request at a time each

#[derive(Clone)]
struct HttpRequest {
    addr: SocketAddr,
    path: &'static str,
    auth: String,
    body: Bytes,
    /// A successful answer is 200 with this in its body.
    expect: &'static str,
}

struct HttpOp {
    req: Arc<HttpRequest>,
    sender: Option<SendRequest<Full<Bytes>>>,
    connections: usize,
}

impl HttpOp {
    fn new(req: &Arc<HttpRequest>) -> Self {
        HttpOp {
            req: req.clone(),
            sender: None,
            connections: 0,
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let tcp = tokio::net::TcpStream::connect(self.req.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        self.sender = Some(sender);
        self.connections += 1;
        Ok(())
    }
}

impl Op for HttpOp {
    async fn call(&mut self) -> Result<(), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().unwrap();
        if sender.ready().await.is_err() {
            self.sender = None;
            return Err("connection closed".into());
        }
        let req = hyper::Request::post(self.req.path)
            .header("host", self.req.addr.to_string())
            .header("authorization", self.req.auth.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(self.req.body.clone()))
            .unwrap();
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(format!("request: {e}"));
            }
        };
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body);
        if status != 200 || !text.contains(self.req.expect) {
            return Err(format!("HTTP {status}: {text}"));
        }
        Ok(())
    }
}

/// Rows of `req` at every concurrency, with fresh keep-alive connections per row (opened
/// during the warm-up).
async fn http_rows(cfg: &Config, pids: Pids, what: &str, req: HttpRequest) -> Vec<(String, Stats)> {
    let req = Arc::new(req);
    let mut probe = HttpOp::new(&req);
    if let Err(e) = probe.call().await {
        panic!("{what} fails before measuring: {e}");
    }
    let mut rows = Vec::new();
    for n in CONCURRENCIES {
        let ops: Vec<HttpOp> = (0..n).map(|_| HttpOp::new(&req)).collect();
        let (ops, mut stats) = measure(cfg, pids, ops).await;
        stats.connections = ops.iter().map(|o| o.connections).sum();
        rows.push((what.to_string(), stats));
    }
    rows
}

fn json_command(node: &str, fields: serde_json::Value) -> Bytes {
    let doc = serde_json::json!({"command": {"node": node, "fields": fields}});
    Bytes::from(doc.to_string())
}

/// The gateway's rows on `server`, and what its process reports afterwards.
async fn gateway_rows(cfg: &Config, server: &TestServer) -> (Vec<(String, Stats)>, GatewayFacts) {
    let mut env = vec![("RUST_LOG", cfg.gateway_log.as_str())];
    if let Some(threads) = &cfg.gateway_threads {
        env.push(("XRG_THREADS", threads.as_str()));
    }
    // An admin listener of its own: logins are counted from its metrics.
    let admin = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let admin_arg = admin.to_string();
    let churn = cfg.access_churn.then(AccessChurn::start);
    let mut args = vec!["--admin-listen", admin_arg.as_str()];
    if let Some(c) = &churn {
        args.extend(["--access-file", c.path()]);
    }
    let gw = TestGateway::start_with_env(server, &args, &env);
    let auth = basic(&server.jid(ADMIN), &server.password(ADMIN));
    let stats_req = HttpRequest {
        addr: gw.addr,
        path: COMMAND_PATH,
        auth: auth.clone(),
        body: json_command(
            USER_STATS,
            serde_json::json!([{"var": "accountjid", "value": server.jid(STATS_ACCOUNT)}]),
        ),
        expect: "\"command\"",
    };
    let eus_req = HttpRequest {
        body: json_command(
            END_USER_SESSION,
            serde_json::json!([{"var": "accountjids", "value": [server.jid(KICK_ACCOUNT)]}]),
        ),
        ..stats_req.clone()
    };
    // Warm-up: the login, and the user-stats form learnt (the first request runs it in two
    // stages). Everything after this must be served on the warm stream.
    for req in [&stats_req, &eus_req, &stats_req] {
        let mut op = HttpOp::new(&Arc::new(req.clone()));
        if let Err(e) = op.call().await {
            panic!(
                "{}: the gateway fails at warm-up: {e}\n{}",
                server.kind,
                gw.log()
            );
        }
    }
    let logins_at_warmup = count_logins(admin);
    let pids = Pids::new(Some(gw.pid()), server.pid());
    let mut rows = http_rows(cfg, pids, "gateway user-stats", stats_req).await;
    rows.extend(http_rows(cfg, pids, "gateway end-user-session", eus_req).await);
    let facts = GatewayFacts {
        logins_at_warmup,
        logins_after: count_logins(admin) - logins_at_warmup,
        peak_rss_kib: proc_status_kib(gw.pid(), "VmHWM"),
        rss_kib: proc_status_kib(gw.pid(), "VmRSS"),
    };
    if let Some(c) = churn {
        let reloads = gw.log().matches(&format!("{} loaded", c.path())).count();
        let rewrites = c.stop();
        assert!(rewrites > 0, "the access file was never rewritten");
        eprintln!(
            "[bench] {}: access file rewritten {rewrites} times, reloaded {reloads} times",
            server.kind
        );
    }
    (rows, facts)
}

/// An access file rewritten every 10 ms while the gateway's rows run, as `token add` writes
/// it (a new file renamed over the old): every look of the gateway's 1 Hz watch finds a new
/// file, and hashes and compiles it. A hundred tokens (about 10 kB) and an account rule that
/// alternates; nothing in it touches the admin's requests.
struct AccessChurn {
    path: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    writer: std::thread::JoinHandle<usize>,
}

impl AccessChurn {
    const PERIOD: Duration = Duration::from_millis(10);

    fn start() -> AccessChurn {
        let dir = common::scratch_dir(&format!("bench-access-{}", common::random_hex(4)));
        let path = dir.join("access.toml");
        let tokens: String = (0..100)
            .map(|i| format!("[[token]]\nname = \"bench-{i}\"\nsecret_sha256 = \"{i:064x}\"\n"))
            .collect();
        let text = move |n: usize| {
            let allow = if n.is_multiple_of(2) {
                "\"*\""
            } else {
                "\"user-stats\""
            };
            format!("{tokens}[[account]]\njid = \"nobody@domain.com\"\nallow = [{allow}]\n")
        };
        let write = move |path: &std::path::Path, n: usize| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text(n)).expect("the access file is written");
            std::fs::rename(&tmp, path).expect("the access file is replaced");
        };
        write(&path, 0);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (stop, path) = (stop.clone(), path.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Self::PERIOD);
                    n += 1;
                    write(&path, n);
                }
                n
            })
        };
        AccessChurn {
            path: path.to_str().expect("a UTF-8 scratch path").to_owned(),
            stop,
            writer,
        }
    }

    fn path(&self) -> &str {
        &self.path
    }

    /// Stops the rewrites; how many there were.
    fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let n = self.writer.join().expect("the rewriting thread");
        if let Some(dir) = std::path::Path::new(&self.path).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        n
    }
}

/// Successful logins the gateway made, from `xrg_upstream_logins_total{outcome="ok"}` on its
/// admin listener.
fn count_logins(admin: SocketAddr) -> usize {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(admin).expect("the admin listener accepts");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("the scrape is sent");
    let mut text = String::new();
    conn.read_to_string(&mut text).expect("the scrape is read");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let samples = common::prometheus::parse_exposition(body);
    common::prometheus::value(&samples, "xrg_upstream_logins_total", &[("outcome", "ok")]) as usize
}

/// A `kB` field of /proc/PID/status.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn kick_rows(cfg: &Config, server: &TestServer) -> Vec<Stats> {
    let addr = server
        .http_api
        .expect("an ejabberd variant with mod_http_api");
    let req = HttpRequest {
        addr,
        path: "/api/kick_user",
        auth: basic(&server.jid(ADMIN), &server.password(ADMIN)),
        body: Bytes::from(
            serde_json::json!({"user": KICK_ACCOUNT, "host": server.domain}).to_string(),
        ),
        expect: "num_resources",
    };
    http_rows(cfg, Pids::new(None, server.pid()), "kick_user", req)
        .await
        .into_iter()
        .map(|(_, s)| s)
        .collect()
}

// ---------------------------------------------------------------------------------------
// One server's section

struct GatewayFacts {
    logins_at_warmup: usize,
    logins_after: usize,
    peak_rss_kib: Option<u64>,
    rss_kib: Option<u64>,
}

struct Section {
    title: &'static str,
    kind: ServerKind,
    rows: Vec<(String, Stats)>,
    gateway: GatewayFacts,
}

impl Section {
    fn row(&self, what: &str, concurrency: usize) -> &Stats {
        self.rows
            .iter()
            .find(|(w, s)| w == what && s.concurrency == concurrency)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("no row {what} at {concurrency}"))
    }
}

async fn server_section(cfg: &Config, server: &TestServer, title: &'static str) -> Section {
    eprintln!("[bench] {title}: direct");
    let mut rows = direct_rows(cfg, server).await;
    eprintln!("[bench] {title}: gateway");
    let (gw_rows, gateway) = gateway_rows(cfg, server).await;
    rows.extend(gw_rows);
    Section {
        title,
        kind: server.kind,
        rows,
        gateway,
    }
}

// ---------------------------------------------------------------------------------------
// The report

#[derive(Default)]
struct Report {
    prosody: Option<Section>,
    ejabberd: Option<Section>,
    limited: Option<Section>,
    kick_scram: Vec<Stats>,
    kick_plain: Vec<Stats>,
    /// HAProxy in front of two replicas, beside the single gateway, per server.
    replicas: Vec<replicas::ReplicaSection>,
    total: Duration,
    loadavg_before: String,
    loadavg_after: String,
}

/// The 1, 5 and 15 minute load averages: how busy the machine was around the run.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One line of the targets table.
struct Check {
    what: String,
    measured: String,
    target: String,
    /// `None`: reported, no target.
    pass: Option<bool>,
}

fn ratio_check(what: String, value: f64, op: &str, bound: f64) -> Check {
    let pass = match op {
        "<=" => value <= bound,
        ">=" => value >= bound,
        _ => unreachable!(),
    };
    Check {
        what,
        measured: format!("{value:.2}"),
        target: format!("{} {bound:.2}", if op == "<=" { "≤" } else { "≥" }),
        pass: Some(pass),
    }
}

fn info(what: String, measured: String) -> Check {
    Check {
        what,
        measured,
        target: "—".into(),
        pass: None,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

impl Report {
    fn render(&self, cfg: &Config, servers: &Servers) -> String {
        let mut out = String::new();
        let o = &mut out;
        let _ = writeln!(o, "### Settings\n");
        let _ = writeln!(
            o,
            "- each row: {:.1} s warm-up, then {:.1} s measured; p50/p99 of the requests \
             started in the window, req/s of those completed in it; `conns` = TCP connections \
             the client opened",
            cfg.warmup.as_secs_f64(),
            cfg.window.as_secs_f64()
        );
        let _ = writeln!(
            o,
            "- direct = the gateway's upstream client in this process on one warm stream; \
             gateway = the release binary over HTTP/1.1 keep-alive, load from this process"
        );
        let _ = writeln!(
            o,
            "- `CPU %` = CPU time used in the window, in % of one core ({} cores here), and \
             `CPU µs/req` the same per request completed: this process (load generator or \
             direct client), the gateway, the server (ejabberd's `beam.smp`, all threads), and \
             the rest of the machine (kernel softirq work for loopback, and anything else \
             running)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let _ = writeln!(o, "- the gateway runs with `RUST_LOG={}`", cfg.gateway_log);
        if cfg.access_churn {
            let _ = writeln!(
                o,
                "- `XRG_BENCH_ACCESS_CHURN=1`: the gateway runs with `--access-file`, a file of \
                 100 tokens replaced every 10 ms during its rows (its watch reloads it every \
                 second)"
            );
        }
        let _ = match &cfg.gateway_threads {
            Some(t) => writeln!(o, "- the gateway runs with `XRG_THREADS={t}`"),
            None => writeln!(
                o,
                "- the gateway runs with its default `--threads` (1: one thread)"
            ),
        };
        let _ = writeln!(
            o,
            "- ejabberd runs with `+sbwt none +sbwtdcpu none +sbwtdio none` (no scheduler \
             busy-waiting), so its CPU column is what the commands cost; \"server CPU µs per \
             command\" is the server column of the same gateway row (÷ 2 for \
             end-user-session, whose every request is two commands)"
        );
        let _ = writeln!(
            o,
            "- user-stats of `{STATS_ACCOUNT}`, end-user-session and kick_user of \
             `{KICK_ACCOUNT}`: registered accounts that are offline (nothing is kicked)"
        );
        let _ = writeln!(
            o,
            "- servers started in {:.1} s; whole run {:.0} s; load average {} before, {} after\n",
            servers.startup.as_secs_f64(),
            self.total.as_secs_f64(),
            self.loadavg_before,
            self.loadavg_after
        );
        for section in [&self.prosody, &self.ejabberd, &self.limited]
            .into_iter()
            .flatten()
        {
            section.render(o);
        }
        for (title, rows) in [
            (
                "ejabberd mod_http_api kick_user, auth_password_format: scram (default)",
                &self.kick_scram,
            ),
            (
                "ejabberd mod_http_api kick_user, auth_password_format: plain",
                &self.kick_plain,
            ),
        ] {
            // Not run (`XRG_BENCH_ONLY` without `kick`).
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(o, "### {title}\n");
            table_head(o);
            for s in rows {
                table_row(o, "kick_user", s);
            }
            for s in rows.iter().filter(|s| s.errors > 0) {
                if let Some(e) = &s.first_error {
                    let _ = writeln!(o, "\nfirst error at {}: {}", s.concurrency, trim(e));
                }
            }
            let _ = writeln!(o);
        }
        for section in &self.replicas {
            replicas::render_section(o, section);
        }
        self.render_checks(o);
        out
    }

    fn render_checks(&self, o: &mut String) {
        let mut checks = Vec::new();
        for s in [&self.prosody, &self.ejabberd].into_iter().flatten() {
            let name = s.kind.to_string();
            let direct_one = s.row("direct user-stats", 1);
            let direct_32 = s.row("direct user-stats", DIRECT_IN_FLIGHT);
            let pair_1 = s.row(&format!("direct {PAIR}"), 1);
            let pair_32 = s.row(&format!("direct {PAIR}"), DIRECT_IN_FLIGHT);
            let gw_stats_1 = s.row("gateway user-stats", 1);
            let gw_stats_32 = s.row("gateway user-stats", 32);
            let gw_eus_1 = s.row("gateway end-user-session", 1);
            let gw_eus_32 = s.row("gateway end-user-session", 32);
            checks.push(ratio_check(
                format!(
                    "{name}: gateway CPU µs per user-stats request ÷ server CPU µs per command, \
                     32 conns"
                ),
                ratio(gw_stats_32.cpu_us(GATEWAY), gw_stats_32.cpu_us(SERVER)),
                "<=",
                0.35,
            ));
            checks.push(info(
                format!(
                    "{name}: gateway CPU µs per user-stats request ÷ server CPU µs per command, \
                     1 conn"
                ),
                format!(
                    "{:.2}",
                    ratio(gw_stats_1.cpu_us(GATEWAY), gw_stats_1.cpu_us(SERVER))
                ),
            ));
            checks.push(info(
                format!(
                    "{name}: gateway CPU µs per end-user-session request ÷ server CPU µs per \
                     command (two per request), 32 conns"
                ),
                format!(
                    "{:.2}",
                    ratio(gw_eus_32.cpu_us(GATEWAY), gw_eus_32.cpu_us(SERVER) / 2.0)
                ),
            ));
            checks.push(ratio_check(
                format!("{name}: user-stats req/s, gateway (32 conns) ÷ direct (32 in flight)"),
                ratio(gw_stats_32.rps, direct_32.rps),
                ">=",
                0.95,
            ));
            checks.push(ratio_check(
                format!("{name}: user-stats p50, gateway (1 conn) ÷ direct (sequential)"),
                ratio(gw_stats_1.p50_ms(), direct_one.p50_ms()),
                "<=",
                1.2,
            ));
            checks.push(ratio_check(
                format!(
                    "{name}: end-user-session p50, gateway (1 conn) ÷ direct pipelined pair \
                     (one at a time)"
                ),
                ratio(gw_eus_1.p50_ms(), pair_1.p50_ms()),
                "<=",
                1.2,
            ));
            checks.push(ratio_check(
                format!(
                    "{name}: end-user-session req/s, gateway (32 conns) ÷ direct pipelined pair \
                     (32 in flight)"
                ),
                ratio(gw_eus_32.rps, pair_32.rps),
                ">=",
                0.9,
            ));
            checks.push(info(
                format!(
                    "{name}: end-user-session p50, gateway (1 conn) ÷ one direct round trip \
                     (user-stats)"
                ),
                format!("{:.2}", ratio(gw_eus_1.p50_ms(), direct_one.p50_ms())),
            ));
            if s.kind == ServerKind::Ejabberd {
                for (i, c) in CONCURRENCIES.iter().enumerate() {
                    let eus = s.row("gateway end-user-session", *c).rps;
                    if let Some(k) = self.kick_scram.get(i) {
                        checks.push(info(
                            format!(
                                "{name}: end-user-session req/s ÷ kick_user req/s (scram), \
                                 {c} conn(s)"
                            ),
                            format!("{:.2}", ratio(eus, k.rps)),
                        ));
                    }
                    if let Some(k) = self.kick_plain.get(i) {
                        checks.push(info(
                            format!(
                                "{name}: end-user-session req/s ÷ kick_user req/s (plain), \
                                 {c} conn(s)"
                            ),
                            format!("{:.2}", ratio(eus, k.rps)),
                        ));
                    }
                }
            }
        }
        for s in [&self.prosody, &self.ejabberd, &self.limited]
            .into_iter()
            .flatten()
        {
            // No login at all by warm-up means the count is broken (the metric changed), not
            // that the gateway never logged in: that is no pass.
            let counted = s.gateway.logins_at_warmup > 0;
            checks.push(Check {
                what: format!("{}: gateway logins after warm-up", s.title),
                measured: if counted {
                    s.gateway.logins_after.to_string()
                } else {
                    "? (xrg_upstream_logins_total{outcome=\"ok\"} is 0 after warm-up)".into()
                },
                target: "= 0".into(),
                pass: Some(counted && s.gateway.logins_after == 0),
            });
            let mb = s.gateway.peak_rss_kib.map(megabytes);
            checks.push(Check {
                what: format!("{}: gateway peak RSS (VmHWM), MB", s.title),
                measured: mb.map_or("?".into(), |m| format!("{m:.1}")),
                target: format!("≤ {PEAK_RSS_MB}"),
                pass: Some(mb.is_some_and(|m| m <= PEAK_RSS_MB)),
            });
        }
        if let (Some(p), Some(l)) = (&self.prosody, &self.limited) {
            for (what, c) in [
                ("direct user-stats", DIRECT_IN_FLIGHT),
                ("gateway user-stats", 32),
                ("gateway end-user-session", 32),
            ] {
                checks.push(info(
                    format!(
                        "Prosody: {what} req/s at {c}, stock limits on the admin ÷ admin in \
                         unlimited_jids"
                    ),
                    format!("{:.3}", ratio(l.row(what, c).rps, p.row(what, c).rps)),
                ));
            }
            checks.push(info(
                "Prosody limited: user-stats req/s, gateway (32 conns) ÷ direct (32 in flight)"
                    .into(),
                format!(
                    "{:.2}",
                    ratio(
                        l.row("gateway user-stats", 32).rps,
                        l.row("direct user-stats", DIRECT_IN_FLIGHT).rps
                    )
                ),
            ));
        }
        if checks.is_empty() {
            return;
        }
        let _ = writeln!(o, "### Ratios and targets\n");
        let _ = writeln!(o, "| ratio | measured | target | result |");
        let _ = writeln!(o, "| --- | ---: | --- | --- |");
        for c in &checks {
            let result = match c.pass {
                Some(true) => "PASS",
                Some(false) => "MISS",
                None => "info",
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {result} |",
                c.what, c.measured, c.target
            );
        }
        let judged: Vec<_> = checks.iter().filter_map(|c| c.pass).collect();
        let passed = judged.iter().filter(|p| **p).count();
        let _ = writeln!(o, "\n{passed} of {} targets met.", judged.len());
    }
}

impl Section {
    fn render(&self, o: &mut String) {
        let heading = match self.title {
            "Prosody" => "Prosody 0.12, admin in `unlimited_jids`",
            "Prosody limited" => "Prosody 0.12, stock `limits` (10 kB/s) on the admin too",
            _ => "ejabberd 23.01, auth_password_format: scram (default)",
        };
        let _ = writeln!(o, "### {heading}\n");
        table_head(o);
        for (what, s) in &self.rows {
            table_row(o, what, s);
        }
        let g = &self.gateway;
        let mb = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1}", megabytes(k)));
        let _ = writeln!(
            o,
            "\ngateway: {} login(s) at warm-up, {} after; peak RSS {} MB, RSS at the end {} MB",
            g.logins_at_warmup,
            g.logins_after,
            mb(g.peak_rss_kib),
            mb(g.rss_kib)
        );
        let errors: Vec<String> = self
            .rows
            .iter()
            .filter_map(|(w, s)| {
                let e = s.first_error.as_ref().filter(|_| s.errors > 0)?;
                Some(format!("{w} at {}: {}", s.concurrency, trim(e)))
            })
            .collect();
        for e in errors {
            let _ = writeln!(o, "\nfirst error: {e}");
        }
        let _ = writeln!(o);
    }
}

/// /proc's kB (KiB) in MB (10^6 bytes), as the target is written.
fn megabytes(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn trim(s: &str) -> String {
    let one_line = s.replace('\n', " ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

fn table_head(o: &mut String) {
    let _ = writeln!(
        o,
        "| what | conc | requests | errors | p50 ms | p99 ms | req/s | conns \
         | CPU % bench/gw/server/rest | CPU µs/req bench/gw/server |"
    );
    let _ = writeln!(
        o,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
}

fn table_row(o: &mut String, what: &str, s: &Stats) {
    let conns = if what.starts_with("direct") {
        "1".to_string()
    } else {
        s.connections.to_string()
    };
    let cpu: Vec<String> = s.cpu[..4]
        .iter()
        .map(|c| c.map_or("-".into(), |c| format!("{c:.0}")))
        .collect();
    // % of a core over the window ÷ requests per second = CPU time per request.
    let per_req: Vec<String> = (0..3)
        .map(|i| match s.cpu_us(i) {
            us if us.is_finite() => format!("{us:.0}"),
            _ => "-".into(),
        })
        .collect();
    let _ = writeln!(
        o,
        "| {what} | {} | {} | {} | {} | {} | {:.0} | {conns} | {} | {} |",
        s.concurrency,
        s.requests,
        s.errors,
        ms(s.p50),
        ms(s.p99),
        s.rps,
        cpu.join(" / "),
        per_req.join(" / ")
    );
}
