//! ejabberd 23.01 from Debian, started with `ejabberdctl --config-dir <state> foreground` as the
//! `ejabberd` user. Its own `ejabberdctl.cfg` in the state directory makes the Erlang node
//! private: a per-process node name, a random `-setcookie`, and `ERL_DIST_PORT`, which makes
//! both the node and every `ejabberdctl` call epmd-less (`-start_epmd false`), so no epmd is
//! started and nothing in `/etc/ejabberd`, `/var/lib/ejabberd` or `~/.erlang.cookie` is read or
//! written. Each `ejabberdctl` call is a fresh Erlang VM (~0.3 s), so the fixed accounts are
//! imported in one call from a XEP-0227 (PIEFXIS) file; ejabberd stores them exactly as
//! `ejabberdctl register` does (SCRAM-SHA-1, 4096 iterations).

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{password_for, pki, procs, xmpp, ServerKind, Startup, TestServer, ACCOUNTS, DOMAIN};

/// Startup budget; ejabberd is normally listening after about a second here.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Close to Debian's stock ejabberd.yml where the gateway can tell: SCRAM storage, the `normal`
/// c2s shaper for non-admins, `max_user_sessions: 10`, stream management. It differs in: one
/// loopback c2s listener with STARTTLS offered (not required) and backlog 128 (default 5 drops
/// connections under load), no http/s2s/stun/mqtt listeners, no outgoing s2s, no ACME,
/// `admin`, `admin2`, `admin3` and `admin4` as admins, and `mod_fail2ban` banning at 200 failed logins
/// per address, not 20: the e2e modules share this server, and together pass 20 in an hour.
const CONFIG: &str = r#"# Written by the xmpp-rest-gateway e2e harness.
loglevel: info
log_rotate_count: 0
hosts:
  - domain.com
certfiles:
  - "@DIR@/server-combined.pem"
# The harness CA, so ejabberd_pkix does not warn that the certificate's issuer is unknown.
ca_file: "@DIR@/ca.pem"
acme:
  auto: false
define_macro:
  'TLS_CIPHERS': "HIGH:!aNULL:!eNULL:!3DES:@STRENGTH"
  'TLS_OPTIONS':
    - "no_sslv3"
    - "no_tlsv1"
    - "no_tlsv1_1"
    - "cipher_server_preference"
    - "no_compression"
c2s_ciphers: 'TLS_CIPHERS'
c2s_protocol_options: 'TLS_OPTIONS'
listen:
  -
    port: @PORT@
    ip: "@IP@"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: c2s_shaper
    access: c2s
    starttls: true
    backlog: 128
    protocol_options: 'TLS_OPTIONS'
s2s_access: none
disable_sasl_mechanisms:
  - "digest-md5"
  - "X-OAUTH2"
auth_password_format: scram
acl:
  admin:
    user:
      - "admin@domain.com"
      - "admin2@domain.com"
      - "admin3@domain.com"
      - "svcdel@domain.com"
      - "admin4@domain.com"
  local:
    user_regexp: ""
  loopback:
    ip:
      - 127.0.0.0/8
      - ::1/128
access_rules:
  local:
    allow: local
  c2s:
    deny: blocked
    allow: all
  announce:
    allow: admin
  configure:
    allow: admin
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
shaper:
  normal:
    rate: 3000
    burst_size: 20000
  fast: 200000
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages:
    5000: admin
    100: all
  c2s_shaper:
    none: admin
    normal: all
modules:
  mod_adhoc: {}
  mod_announce:
    access: announce
  mod_configure: {}
  mod_disco: {}
  mod_fail2ban:
    c2s_max_auth_failures: 200
  mod_last: {}
  mod_ping: {}
  mod_roster:
    versioning: true
  mod_stream_mgmt:
    resend_on_timeout: if_offline
  mod_version: {}
"#;

/// An Erlang node as the harness runs it: the loopback address its c2s listener and its
/// distribution listen on, its node name, cookie and distribution port. Without epmd a node
/// finds another at `dist_port` on the other's address, so the nodes of a cluster share the
/// cookie and the port and differ in address ([`super::cluster`]).
pub(super) struct Node {
    pub ip: Ipv4Addr,
    /// Short (`name@localhost`) or long (`name@127.0.0.2`: a host with a dot); ejabberdctl
    /// passes `-sname` or `-name` accordingly.
    pub name: String,
    pub cookie: String,
    pub dist_port: u16,
}

impl Node {
    /// A node of its own on 127.0.0.1: a per-process name (with `-suffix` for a variant), a
    /// random cookie, a free distribution port.
    fn private(suffix: &str) -> Node {
        Node {
            ip: Ipv4Addr::LOCALHOST,
            name: format!("xrgtest-{}{suffix}@localhost", std::process::id()),
            cookie: procs::random_hex(16),
            dist_port: procs::free_port(),
        }
    }
}

/// `ejabberdctl.cfg` (sourced by the ejabberdctl shell script): private node, cookie and
/// distribution port, distribution on the node's address only, and a pidfile for the
/// `beam.smp` PID. The schedulers do not busy-wait (`+sbwt none` and its dirty-scheduler
/// twins): on a shared machine their spinning takes cores from the gateway and the other
/// servers, and it makes `beam.smp`'s CPU time (the benchmark's server column) overstate what
/// the commands cost.
fn ctl_config(dir: &Path, node: &Node) -> String {
    let [a, b, c, d] = node.ip.octets();
    format!(
        "ERLANG_NODE={}\n\
         ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0 -setcookie {} \
         -kernel inet_dist_use_interface {{{a},{b},{c},{d}}} \
         +sbwt none +sbwtdcpu none +sbwtdio none\"\n\
         ERL_DIST_PORT={}\n\
         EJABBERD_PID_PATH={}\n",
        node.name,
        node.cookie,
        node.dist_port,
        pidfile(dir).display()
    )
}

fn pidfile(dir: &Path) -> PathBuf {
    dir.join("ejabberd.pid")
}

fn ids() -> Option<(u32, u32)> {
    procs::system_user("ejabberd", "ejabberd")
}

/// Erlang resolver config: names from this file only. No `inet_gethost` helper processes are
/// spawned (they outlive each `ejabberdctl` VM as orphans) and no DNS is ever asked.
const INETRC: &str = "{lookup,[\"file\"]}.\n{host,{127,0,0,1}, [\"localhost\"]}.\n";

/// How a server variant differs from the default one (see [`super::Variant`]).
pub(super) struct Options {
    /// The state directory's name under the run directory, and (after `-`) the node name's
    /// suffix; the default server's are `ejabberd` and none.
    pub name: &'static str,
    /// `auth_password_format`: `scram` (the default, Debian's) or `plain`.
    pub password_format: &'static str,
    /// Whether to add `mod_http_api` on a loopback HTTP listener (`/api`), with
    /// `api_permissions` that let the admins call `kick_user` with HTTP Basic auth.
    pub http_api: bool,
}

/// The default server: exactly what [`CONFIG`] says.
pub(super) const DEFAULT: Options = Options {
    name: "ejabberd",
    password_format: "scram",
    http_api: false,
};

/// The HTTP listener a variant with `http_api` adds (plain HTTP, loopback only; backlog 128
/// as for c2s, since the default of 5 drops connections under load).
const HTTP_LISTENER: &str = r#"  -
    port: @HTTP_PORT@
    ip: "127.0.0.1"
    module: ejabberd_http
    backlog: 128
    request_handlers:
      /api: mod_http_api
s2s_access: none
"#;

/// The permission that lets the admins (and only them, Basic-authenticated) call `kick_user`.
const HTTP_API_PERMISSION: &str = r#"
  "admin http api":
    who:
      access:
        allow:
          - acl: admin
    what:
      - "kick_user"
shaper:
"#;

/// Replaces the one occurrence of `anchor` in `config`; a missing anchor is a harness bug.
fn edit(config: String, anchor: &str, with: &str) -> String {
    assert!(
        config.matches(anchor).count() == 1,
        "ejabberd config anchor {anchor:?} not found once"
    );
    config.replacen(anchor, with, 1)
}

/// The config of a variant: [`CONFIG`] itself for [`DEFAULT`].
fn config_text(opts: &Options, http_port: Option<u16>) -> String {
    let mut config = CONFIG.to_owned();
    if opts.password_format != DEFAULT.password_format {
        config = edit(
            config,
            "auth_password_format: scram\n",
            &format!("auth_password_format: {}\n", opts.password_format),
        );
    }
    if let Some(port) = http_port {
        let listener = HTTP_LISTENER.replace("@HTTP_PORT@", &port.to_string());
        config = edit(config, "s2s_access: none\n", &listener);
        config = edit(config, "\nshaper:\n", HTTP_API_PERMISSION);
        config = edit(
            config,
            "  mod_last: {}\n",
            "  mod_http_api: {}\n  mod_last: {}\n",
        );
    }
    config
}

/// Writes ejabberd.yml, ejabberdctl.cfg, inetrc, the CA and the key+certificate file.
fn write_state(dir: &Path, port: u16, opts: &Options, http_port: Option<u16>, node: &Node) {
    for sub in ["spool", "logs"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    write_certs(dir);
    let dir_str = dir.to_str().expect("UTF-8 temp dir");
    let config = config_text(opts, http_port)
        .replace("@PORT@", &port.to_string())
        .replace("@IP@", &node.ip.to_string())
        .replace("@DIR@", dir_str);
    fs::write(dir.join("ejabberd.yml"), config).unwrap();
    fs::write(dir.join("ejabberdctl.cfg"), ctl_config(dir, node)).unwrap();
    fs::write(dir.join("inetrc"), INETRC).unwrap();
}

/// `certfiles` wants key and certificate in one file; `ca_file` gets the harness CA.
fn write_certs(dir: &Path) {
    let pki = pki::shared();
    let combined = dir.join("server-combined.pem");
    let mut pem = fs::read(&pki.server_key).unwrap();
    pem.extend(fs::read(&pki.server_cert).unwrap());
    fs::write(&combined, pem).unwrap();
    fs::set_permissions(&combined, fs::Permissions::from_mode(0o600)).unwrap();
    fs::copy(&pki.ca_pem, dir.join("ca.pem")).unwrap();
}

/// Variables that ejabberdctl or erl would take from the caller's environment over our files.
const INHERITED_KNOBS: &[&str] = &[
    "EJABBERD_CONFIG_PATH",
    "EJABBERDCTL_CONFIG_PATH",
    "CONFIG_DIR",
    "LOGS_DIR",
    "SPOOL_DIR",
    "VMARGS",
    "EJABBERD_PID_PATH",
    "EJABBERD_OPTS",
    "ERL_FLAGS",
    "ERL_AFLAGS",
    "ERL_ZFLAGS",
    "ERL_LIBS",
    "ERL_EPMD_ADDRESS",
    "ERL_EPMD_PORT",
];

/// `ejabberdctl` with every path pointing into the state directory, as the ejabberd user
/// (so the script runs erl directly instead of through `su`).
pub(super) fn ctl(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(procs::find_binary("ejabberdctl", "ejabberd"));
    cmd.arg("--config-dir").arg(dir);
    cmd.arg("--spool")
        .arg(dir.join("spool"))
        .arg("--logs")
        .arg(dir.join("logs"));
    cmd.args(args).current_dir(dir).env("HOME", dir);
    for var in INHERITED_KNOBS {
        cmd.env_remove(var);
    }
    procs::run_as(&mut cmd, ids());
    cmd
}

pub(super) fn register_cmd(dir: &Path, local: &str, password: &str) -> Command {
    ctl(dir, &["register", local, DOMAIN, password])
}

/// Starts ejabberd, waits for its c2s port to answer, then registers the fixed accounts.
pub(super) fn start() -> TestServer {
    start_with(&DEFAULT)
}

/// [`start`] for a variant; the HTTP API (if any) is answering when it returns.
pub(super) fn start_with(opts: &Options) -> TestServer {
    let begin = Instant::now();
    let suffix = match opts.name {
        n if n == DEFAULT.name => String::new(),
        n => format!("-{n}"),
    };
    let http_port = opts.http_api.then(procs::free_port);
    let booted = boot(opts, &Node::private(&suffix), http_port);
    let t = Instant::now();
    import_accounts(&booted.server.state_dir);
    let registration = t.elapsed();
    let mut server = booted.server;
    if let Some(http_port) = http_port {
        let addr = SocketAddr::from(([127, 0, 0, 1], http_port));
        wait_listening(addr, READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("ejabberd's HTTP API: {e}\n{}", server.log_tail(40)));
        server.http_api = Some(addr);
    }
    server.with_startup(Startup {
        ready: booted.ready,
        registration,
        total: begin.elapsed(),
    })
}

/// A node started by [`boot`], serving c2s, without accounts yet.
pub(super) struct Booted {
    pub server: TestServer,
    /// The PID of its `ejabberdctl foreground` (see [`spawn`]).
    pub ctl_pid: u32,
    /// From spawning to c2s answering.
    pub ready: Duration,
}

/// Writes the state directory `opts.name` of a node, starts it, and waits until its c2s
/// listener (a free port on `node.ip`) answers a stream header with STARTTLS offered.
pub(super) fn boot(opts: &Options, node: &Node, http_port: Option<u16>) -> Booted {
    let dir = procs::run_dir().join(opts.name);
    let port = procs::free_port_on(&[node.ip]);
    write_state(&dir, port, opts, http_port, node);
    procs::chown_tree(&dir, ids());
    let ctl_pid = spawn(&dir);
    let logs = ["logs/ejabberd.log", "logs/error.log", "ejabberd.out"];
    let mut server = TestServer::new(ServerKind::Ejabberd, port, dir, &logs);
    server.c2s_ip = node.ip;
    let ready = wait_ready(&server, ctl_pid)
        .unwrap_or_else(|e| panic!("ejabberd did not get ready: {e}\n{}", server.log_tail(40)));
    Booted {
        server,
        ctl_pid,
        ready,
    }
}

/// Waits until the node answers c2s with STARTTLS offered, or its `ejabberdctl foreground`
/// (`ctl_pid`) exits, or [`READY_TIMEOUT`] passes.
pub(super) fn wait_ready(server: &TestServer, ctl_pid: u32) -> Result<Duration, String> {
    xmpp::wait_ready_at(server.c2s_addr(), DOMAIN, READY_TIMEOUT, || {
        procs::tracked_exit(ctl_pid)
    })
}

/// Starts ejabberd from the state directory `dir` as written (its output appended to
/// `ejabberd.out`) and hands it to the exit hook; the PID of `ejabberdctl foreground`. Also
/// restarts a stopped one (its accounts are in the spool).
pub(super) fn spawn(dir: &Path) -> u32 {
    let out = fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("ejabberd.out"))
        .unwrap();
    let mut cmd = ctl(dir, &["foreground"]);
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    // Own process group: swept at exit, so beam's helper processes go too.
    let child = cmd
        .process_group(0)
        .spawn()
        .expect("spawning ejabberdctl foreground");
    let pid = child.id();
    procs::track_server(child, true, Some(pidfile(dir)));
    pid
}

/// Registers all of [`ACCOUNTS`] with one `ejabberdctl import_piefxis` (0.5 s, where 18
/// `register` calls take about 4 s on 2 cores), then checks they all exist.
fn import_accounts(dir: &Path) {
    import_piefxis(dir);
    check_accounts(dir);
}

/// The `import_piefxis` of [`import_accounts`], unchecked.
pub(super) fn import_piefxis(dir: &Path) {
    let users: String = ACCOUNTS
        .iter()
        .map(|a| {
            format!(
                "<user name='{}' password='{}'/>",
                xml_attr(a),
                xml_attr(&password_for(a))
            )
        })
        .collect();
    let file = dir.join("accounts.xml");
    let xml = format!(
        "<?xml version='1.0' encoding='UTF-8'?><server-data xmlns='urn:xmpp:pie:0'>\
         <host jid='{DOMAIN}'>{users}</host></server-data>"
    );
    fs::write(&file, xml).unwrap();
    procs::chown_tree(&file, ids());
    let file = file.to_str().expect("UTF-8 temp dir");
    procs::run_all(
        vec![ctl(dir, &["import_piefxis", file])],
        1,
        "ejabberdctl import_piefxis",
    );
}

/// Asks the node of `dir` for its accounts and panics unless all of [`ACCOUNTS`] are there.
pub(super) fn check_accounts(dir: &Path) {
    let listed = ctl_output(dir, &["registered_users", DOMAIN]);
    let missing: Vec<_> = ACCOUNTS
        .iter()
        .filter(|a| !listed.lines().any(|l| l == **a))
        .collect();
    assert!(
        missing.is_empty(),
        "ejabberd in {} misses the accounts {missing:?}; registered: {listed}",
        dir.display()
    );
}

/// The standard output of an `ejabberdctl` call that must succeed.
pub(super) fn ctl_output(dir: &Path, args: &[&str]) -> String {
    let out = ctl(dir, args).output().expect("ejabberdctl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ejabberdctl {args:?} failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Polls a TCP connect until it succeeds or `timeout` passes.
fn wait_listening(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > timeout => {
                return Err(format!("{addr} not listening within {timeout:?}: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}
