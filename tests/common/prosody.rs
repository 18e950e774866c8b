//! Prosody 0.12 from Debian, run as the `prosody` user from a config the harness writes into
//! its own state directory. Accounts are registered with `prosodyctl` before the server starts:
//! internal storage is one file per account, so the calls run side by side safely.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{password_for, pki, procs, xmpp, ServerKind, Startup, TestServer, ACCOUNTS, DOMAIN};

/// Startup budget; Prosody is normally ready in well under a second.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Close to Debian's stock prosody.cfg.lua where the gateway can tell (SCRAM storage, smacks,
/// limits at 10kb/s, admin_adhoc), but loopback-only, s2s-less and in the state directory.
/// `unlimited_jids` exempts the admin from `limits` as a deployment guide would say to.
const CONFIG: &str = r#"-- Written by the xmpp-rest-gateway e2e harness. Started with -F (foreground): 0.12
-- deprecates the `daemonize` option in favour of the command-line flag.
admins = { "admin@domain.com", "admin2@domain.com", "admin3@domain.com", "svcdel@domain.com", "admin4@domain.com" }
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "admin_adhoc"; "smacks"; "limits";
	"uptime"; "version"; "posix"; "announce";
}
-- No server-to-server: nothing leaves the machine, stanzas for other domains bounce.
modules_disabled = { "s2s"; "s2s_auth_certs"; }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { @PORT@ }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
c2s_require_encryption = false
allow_unencrypted_plain_auth = false
limits = { c2s = { rate = "10kb/s"; }; }
unlimited_jids = { "admin@domain.com", "admin2@domain.com", "admin3@domain.com" }
authentication = "internal_hashed"
storage = "internal"
data_path = "@DIR@/data"
pidfile = "@DIR@/prosody.pid"
certificates = "@DIR@/certs"
log = { info = "@DIR@/prosody.log"; }
VirtualHost "domain.com"
"#;

/// How a server variant differs from the default one (see [`super::Variant`]).
pub(super) struct Options {
    /// The state directory's name under the run directory (the default server's: `prosody`).
    pub name: &'static str,
    /// Whether the admins are listed in `unlimited_jids` (the default) or, as in Debian's
    /// stock config, `limits` throttles their streams too.
    pub unlimited_admins: bool,
}

/// The default server: exactly what [`CONFIG`] says.
pub(super) const DEFAULT: Options = Options {
    name: "prosody",
    unlimited_admins: true,
};

/// The line a variant without `unlimited_admins` leaves out.
const UNLIMITED_LINE: &str =
    "unlimited_jids = { \"admin@domain.com\", \"admin2@domain.com\", \"admin3@domain.com\" }\n";

/// The config of a variant: [`CONFIG`] itself for [`DEFAULT`].
fn config_text(opts: &Options) -> String {
    assert!(
        CONFIG.matches(UNLIMITED_LINE).count() == 1,
        "Prosody config: the unlimited_jids line is not there once"
    );
    if opts.unlimited_admins {
        CONFIG.to_owned()
    } else {
        CONFIG.replacen(UNLIMITED_LINE, "", 1)
    }
}

/// Writes config, certificate and key (named so `certificates` finds them for domain.com).
fn write_state(dir: &Path, port: u16, opts: &Options) {
    let pki = pki::shared();
    fs::create_dir_all(dir.join("data")).unwrap();
    fs::create_dir_all(dir.join("certs")).unwrap();
    let certs = dir.join("certs");
    fs::copy(&pki.server_cert, certs.join(format!("{DOMAIN}.crt"))).unwrap();
    let key = certs.join(format!("{DOMAIN}.key"));
    fs::copy(&pki.server_key, &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let dir_str = dir.to_str().expect("UTF-8 temp dir");
    let config = config_text(opts)
        .replace("@PORT@", &port.to_string())
        .replace("@DIR@", dir_str);
    fs::write(config_path(dir), config).unwrap();
}

fn config_path(dir: &Path) -> PathBuf {
    dir.join("prosody.cfg.lua")
}

fn ids() -> Option<(u32, u32)> {
    procs::system_user("prosody", "prosody")
}

/// `prosodyctl --config … register LOCAL domain.com PASSWORD`, as the prosody user.
pub(super) fn register_cmd(dir: &Path, local: &str, password: &str) -> Command {
    let mut cmd = Command::new(procs::find_binary("prosodyctl", "prosody"));
    cmd.arg("--config")
        .arg(config_path(dir))
        .args(["register", local, DOMAIN, password]);
    procs::run_as(&mut cmd, ids());
    cmd
}

/// Registers the fixed accounts, starts Prosody and waits for its c2s port to answer.
pub(super) fn start() -> TestServer {
    start_with(&DEFAULT)
}

/// [`start`] for a variant.
pub(super) fn start_with(opts: &Options) -> TestServer {
    let begin = Instant::now();
    let dir = procs::run_dir().join(opts.name);
    let port = procs::free_port();
    write_state(&dir, port, opts);
    procs::chown_tree(&dir, ids());
    let t = Instant::now();
    let cmds = ACCOUNTS
        .iter()
        .map(|a| register_cmd(&dir, a, &password_for(a)))
        .collect();
    procs::run_all(cmds, 32, "prosodyctl register");
    let registration = t.elapsed();
    let pid = spawn(&dir);
    let server = TestServer::new(
        ServerKind::Prosody,
        port,
        dir,
        &["prosody.log", "prosody.out"],
    );
    let ready = xmpp::wait_ready(port, DOMAIN, READY_TIMEOUT, || procs::tracked_exit(pid))
        .unwrap_or_else(|e| panic!("Prosody did not get ready: {e}\n{}", server.log_tail(40)));
    server.with_startup(Startup {
        ready,
        registration,
        total: begin.elapsed(),
    })
}

/// Starts Prosody from the state directory `dir` as written (its output appended to
/// `prosody.out`) and hands it to the exit hook; its PID. Also restarts a stopped one.
pub(super) fn spawn(dir: &Path) -> u32 {
    let binary = procs::find_binary("prosody", "prosody");
    let out = fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("prosody.out"))
        .unwrap();
    let mut cmd = Command::new(binary);
    cmd.arg("-F")
        .arg("--config")
        .arg(config_path(dir))
        .current_dir(dir);
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    // Own process group: a Ctrl-C meant for cargo must not reach it before the harness does.
    let child = procs::run_as(&mut cmd, ids())
        .process_group(0)
        .spawn()
        .expect("spawning prosody");
    let pid = child.id();
    procs::track_server(child, false, None);
    pid
}
