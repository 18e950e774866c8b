//! A two-node ejabberd cluster on loopback, for failover tests (ejabberd only: Prosody does not
//! cluster). Each node is the harness's ejabberd ([`super::ejabberd`]: its config, certificate,
//! epmd-less Erlang) with a state directory and spool of its own, on a loopback address of its
//! own (127.0.0.2 and 127.0.0.3; Linux routes all of 127/8 to `lo`): its c2s listener and its
//! Erlang distribution listen there. Without epmd a node looks for another at the distribution
//! port it was given itself, on the other's address, so the two share one port number and one
//! cookie, and must differ in address. Both serve `domain.com` with the same certificate.
//!
//! Start: both nodes boot at once; the accounts ([`super::ACCOUNTS`]) are imported once, into
//! node 1 (while node 2 boots); node 2 joins it (`ejabberdctl join_cluster`, run against node 2, which replaces its
//! Mnesia schema by the cluster's and restarts ejabberd there: the accounts come with it); then
//! the harness waits until node 2 serves c2s again, `list_cluster` names both nodes as running,
//! and node 2 lists every account. 6 to 13 s on 2 cores shared with other builds, about what
//! the default ejabberd's own start takes beside them ([`ClusterStartup`], on stderr).
//!
//! A test that needs one starts its own ([`Cluster::start`]; a failover test kills a node, so
//! none is shared), and no other test pays for it. Its processes are the harness's like any
//! server's: stopped by PID at exit or by the watchdog, whatever the test did (see `procs`);
//! dropping the cluster already asks its live nodes to stop.

use std::fs;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::ejabberd::{self, Booted, Node, Options};
use super::{procs, TestServer};

/// The nodes' addresses, in order.
const ADDRESSES: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];

/// How long a cluster took to come up, as measured by the harness.
#[derive(Debug, Clone, Copy)]
pub struct ClusterStartup {
    /// Until both nodes served c2s and node 1 had the accounts (node 2 boots meanwhile).
    pub ready: Duration,
    /// Importing the accounts into node 1 (part of `ready`).
    pub accounts: Duration,
    /// Node 2 joining, until it served c2s again, the cluster had two running nodes, and node
    /// 2 listed every account.
    pub join: Duration,
    /// Everything, config writing included.
    pub total: Duration,
}

/// A running two-node cluster of a test's own.
pub struct Cluster {
    /// Node 1 (127.0.0.2), which the accounts were imported into, and node 2 (127.0.0.3), which
    /// joined it. Each is a [`TestServer`] of its own address and c2s port.
    pub nodes: [TestServer; 2],
    pub startup: ClusterStartup,
    /// Each node's `ejabberdctl foreground`, the process the harness tracks.
    ctl_pids: [u32; 2],
    /// Nodes a test killed: not to be signalled again.
    killed: [AtomicBool; 2],
}

impl Cluster {
    /// Starts a cluster (on a blocking thread) and returns once it serves on both nodes.
    pub async fn start() -> Cluster {
        tokio::task::spawn_blocking(start)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// `127.0.0.2:P,127.0.0.3:Q`: the nodes' c2s addresses, as `--upstream` takes a list.
    pub fn upstreams(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.c2s_addr().to_string())
            .collect();
        addrs.join(",")
    }

    /// SIGKILL to node `i`'s `beam.smp` (0 is node 1), as a crash or the OOM killer would end
    /// it: no stream is closed, no session handed over. By the PID its pidfile names, once its
    /// command line shows it is this node's (its spool). Returns the instant just before the
    /// signal.
    pub fn kill(&self, i: usize) -> Instant {
        let node = &self.nodes[i];
        let pid = node
            .pid()
            .unwrap_or_else(|| panic!("cluster node {} has no pidfile", i + 1));
        assert!(
            is_beam_of(pid, node),
            "PID {pid} is not node {}'s beam.smp",
            i + 1
        );
        self.killed[i].store(true, Ordering::SeqCst);
        let at = Instant::now();
        procs::signal(pid as i32, libc::SIGKILL);
        at
    }

    /// Whether node `i`'s `ejabberdctl foreground` has exited (after [`Cluster::kill`]: its
    /// beam is gone with it).
    pub fn exited(&self, i: usize) -> bool {
        procs::tracked_exit(self.ctl_pids[i]).is_some()
    }

    /// The last lines of both nodes' logs, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let tails: Vec<String> = self.nodes.iter().map(|n| n.log_tail(lines)).collect();
        tails.join("\n")
    }
}

impl Drop for Cluster {
    /// SIGTERM to each node still running (its beam, checked as in [`Cluster::kill`]), which
    /// stops it within a second or two; the exit hook reaps them, as every server.
    fn drop(&mut self) {
        for (i, node) in self.nodes.iter().enumerate() {
            if self.killed[i].load(Ordering::SeqCst) || self.exited(i) {
                continue;
            }
            if let Some(pid) = node.pid().filter(|pid| is_beam_of(*pid, node)) {
                procs::signal(pid as i32, libc::SIGTERM);
            }
        }
    }
}

/// Whether `pid` is the `beam.smp` of `node` (its command line names the node's spool).
fn is_beam_of(pid: u32, node: &TestServer) -> bool {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let spool = node.state_dir.join("spool");
    let spool = spool.to_string_lossy();
    comm.trim() == "beam.smp" && String::from_utf8_lossy(&cmdline).contains(&*spool)
}

/// Which cluster of the process this is: the state directories' and node names' suffix.
static STARTED: AtomicUsize = AtomicUsize::new(0);

fn start() -> Cluster {
    let begin = Instant::now();
    let n = STARTED.fetch_add(1, Ordering::SeqCst) + 1;
    let cookie = procs::random_hex(16);
    let dist_port = procs::free_port_on(&ADDRESSES);
    let nodes = ADDRESSES.map(|ip| Node {
        ip,
        name: format!(
            "xrgtest-{}-cluster{n}-{}@{ip}",
            std::process::id(),
            ip.octets()[3] - 1
        ),
        cookie: cookie.clone(),
        dist_port,
    });
    // Options name the state directory by a `&'static str`: two small leaks per cluster.
    let options = [1, 2].map(|i| Options {
        name: Box::leak(format!("ejabberd-cluster{n}-node{i}").into_boxed_str()),
        password_format: "scram",
        http_api: false,
    });
    // Node 2 boots while node 1 boots and takes the accounts.
    let (one, two, accounts) = std::thread::scope(|s| {
        let two = s.spawn(|| ejabberd::boot(&options[1], &nodes[1], None));
        let one = ejabberd::boot(&options[0], &nodes[0], None);
        let t = Instant::now();
        ejabberd::import_piefxis(&one.server.state_dir);
        let accounts = t.elapsed();
        let two = two.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (one, two, accounts)
    });
    let ready = begin.elapsed();

    let t = Instant::now();
    join(&two, &nodes);
    let join = t.elapsed();

    let cluster = Cluster {
        startup: ClusterStartup {
            ready,
            accounts,
            join,
            total: begin.elapsed(),
        },
        ctl_pids: [one.ctl_pid, two.ctl_pid],
        nodes: [one.server, two.server],
        killed: [AtomicBool::new(false), AtomicBool::new(false)],
    };
    eprintln!(
        "[harness] ejabberd cluster ready on {} in {:?} (both nodes serving and the accounts \
         in node 1: {:?}, of which the import {:?}; node 2 joined and checked: {:?})",
        cluster.upstreams(),
        cluster.startup.total,
        cluster.startup.ready,
        cluster.startup.accounts,
        cluster.startup.join
    );
    cluster
}

/// Node 2 (`two`) joins node 1, then serves c2s again, the cluster runs both nodes, and node 2
/// lists every account.
fn join(two: &Booted, nodes: &[Node; 2]) {
    let dir = &two.server.state_dir;
    let failed = |what: &str| format!("cluster: {what}\n{}", two.server.log_tail(40));
    ejabberd::ctl_output(dir, &["join_cluster", &nodes[0].name]);
    ejabberd::wait_ready(&two.server, two.ctl_pid)
        .unwrap_or_else(|e| panic!("{}", failed(&format!("node 2 after joining: {e}"))));
    // Two Erlang VMs at once: each ejabberdctl call boots one.
    let listed = std::thread::scope(|s| {
        let accounts = s.spawn(|| ejabberd::check_accounts(dir));
        let listed = ejabberd::ctl_output(dir, &["list_cluster"]);
        accounts
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        listed
    });
    let mut running: Vec<&str> = listed
        .lines()
        .map(|l| l.trim().trim_matches('\''))
        .filter(|l| !l.is_empty())
        .collect();
    running.sort_unstable();
    let mut want: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    want.sort_unstable();
    assert_eq!(running, want, "{}", failed("the running nodes"));
}
