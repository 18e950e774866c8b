//! Process plumbing for the harness: finding binaries, dropping to the servers' system users,
//! free loopback ports, and above all cleanup.
//!
//! Servers live in statics shared by every test of a binary, and statics are never dropped, so
//! the harness stops them from a `libc::atexit` hook (the test harness leaves through `exit()`,
//! failed tests included). A SIGKILLed or Ctrl-C'd test process runs no hook: for that a small
//! `sh` watchdog, in a process group of its own, holds the read end of a pipe whose write end
//! only this process has; when the pipe reports EOF the test process is gone, and the watchdog
//! kills the PIDs and process groups it was told about and removes the run directory.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a process gets between SIGTERM and SIGKILL, at exit and when a gateway is dropped.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// A server process started by the harness, stopped by the exit hook.
struct Tracked {
    child: Child,
    /// The child leads its own process group, swept with SIGKILL once it has exited (ejabberd's
    /// `ejabberdctl` shell leaves `beam.smp` and `erl_child_setup` in that group).
    group: bool,
    /// Where the PID that should get the polite SIGTERM is written, if not the child's own
    /// (ejabberd's `beam.smp`, whose SIGTERM handler runs `init:stop()`).
    pidfile: Option<PathBuf>,
}

static TRACKED: Mutex<Vec<Tracked>> = Mutex::new(Vec::new());
/// Children that are owned elsewhere (gateways) but still alive: killed at exit if leaked.
static LOOSE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static WATCHDOG: Mutex<Option<(Child, ChildStdin)>> = Mutex::new(None);
static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Locks a mutex even if a panicking test poisoned it: cleanup must still run.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The per-process scratch directory (CA, server state, gateway logs). Created on first use,
/// together with the exit hook and the watchdog, so nothing is started before cleanup is armed.
pub fn run_dir() -> &'static Path {
    RUN_DIR.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("xrg-e2e-{}-{nanos:x}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // The servers run as their own users and must traverse it.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        check_traversable(&dir);
        arm_cleanup(&dir);
        dir
    })
}

/// The `prosody`/`ejabberd` users need `x` on every ancestor of the run directory; the harness
/// will not chmod system directories, so it says what is wrong instead.
fn check_traversable(dir: &Path) {
    for anc in dir.ancestors().skip(1) {
        let mode = fs::metadata(anc)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o755);
        assert!(
            mode & 0o001 != 0,
            "{} is not world-traversable (mode {mode:o}): the server users cannot reach the \
             harness's state under it; point TMPDIR elsewhere",
            anc.display()
        );
    }
}

fn arm_cleanup(dir: &Path) {
    extern "C" fn at_exit() {
        // Unwinding out of an extern "C" fn would abort; a failing cleanup must not.
        let _ = std::panic::catch_unwind(cleanup);
    }
    // SAFETY: registers a plain function with no arguments; it runs once, at exit().
    unsafe { libc::atexit(at_exit) };
    *lock(&WATCHDOG) = Some(spawn_watchdog());
    if std::env::var_os("XRG_KEEP_STATE").is_none() {
        tell_watchdog(&format!("dir {}", dir.display()));
    }
}

/// The watchdog script: collects `pid N`, `group N`, `done N` and `dir PATH` lines until EOF
/// (the test process died), then kills what is still listed and removes the directory.
const WATCHDOG_SH: &str = r#"
pids=''; groups=''; dir=''
while read -r what arg; do
  case "$what" in
    pid) pids="$pids $arg" ;;
    group) groups="$groups $arg" ;;
    done) keep=''; for p in $pids; do [ "$p" = "$arg" ] || keep="$keep $p"; done; pids=$keep ;;
    dir) dir=$arg ;;
  esac
done
for g in $groups; do kill -TERM -$g 2>/dev/null; done
for p in $pids; do kill -TERM $p 2>/dev/null; done
sleep 3
for g in $groups; do kill -KILL -$g 2>/dev/null; done
for p in $pids; do kill -KILL $p 2>/dev/null; done
[ -n "$dir" ] && rm -rf -- "$dir"
"#;

fn spawn_watchdog() -> (Child, ChildStdin) {
    let mut child = Command::new("/bin/sh")
        .args(["-c", WATCHDOG_SH, "xrg-e2e-watchdog"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group: a Ctrl-C in the terminal must not take the watchdog down too.
        .process_group(0)
        .spawn()
        .expect("spawning the cleanup watchdog (/bin/sh)");
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

fn tell_watchdog(line: &str) {
    if let Some((_, stdin)) = lock(&WATCHDOG).as_mut() {
        let _ = writeln!(stdin, "{line}");
    }
}

/// Hands a started server to the exit hook and the watchdog. Call right after spawning, before
/// waiting for readiness, so a server that never gets ready is stopped too.
pub fn track_server(child: Child, group: bool, pidfile: Option<PathBuf>) {
    let kind = if group { "group" } else { "pid" };
    tell_watchdog(&format!("{kind} {}", child.id()));
    lock(&TRACKED).push(Tracked {
        child,
        group,
        pidfile,
    });
}

/// The exit status of a tracked server that has already exited (for readiness loops).
pub fn tracked_exit(pid: u32) -> Option<String> {
    let mut list = lock(&TRACKED);
    let t = list.iter_mut().find(|t| t.child.id() == pid)?;
    match t.child.try_wait() {
        Ok(Some(status)) => Some(status.to_string()),
        _ => None,
    }
}

/// Records a child owned by someone else (a gateway) until [`untrack_pid`] says it is reaped.
pub fn track_pid(pid: u32) {
    tell_watchdog(&format!("pid {pid}"));
    lock(&LOOSE).push(pid);
}

pub fn untrack_pid(pid: u32) {
    tell_watchdog(&format!("done {pid}"));
    lock(&LOOSE).retain(|p| *p != pid);
}

/// The exit hook's work: disarm the watchdog, stop everything, remove the run directory.
fn cleanup() {
    if let Some((mut child, stdin)) = lock(&WATCHDOG).take() {
        let _ = child.kill();
        let _ = child.wait();
        drop(stdin);
    }
    let loose: Vec<u32> = lock(&LOOSE).drain(..).collect();
    for pid in &loose {
        signal(*pid as i32, libc::SIGTERM);
    }
    stop_tracked(&mut lock(&TRACKED));
    for pid in loose {
        reap_pid(pid, Instant::now() + STOP_GRACE);
    }
    if let Some(dir) = RUN_DIR.get() {
        if std::env::var_os("XRG_KEEP_STATE").is_some() {
            eprintln!("XRG_KEEP_STATE: harness state kept in {}", dir.display());
        } else {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// SIGTERM to all servers at once, then wait for each (sharing one deadline), then SIGKILL what
/// is left, process groups included.
fn stop_tracked(list: &mut Vec<Tracked>) {
    for t in list.iter_mut() {
        // A server that already exited (a test stopped or killed it) is not signalled, nor the
        // PID its pidfile names: either may be someone else's by now. A group is still ended
        // below, for what its leader left.
        if matches!(t.child.try_wait(), Ok(Some(_))) {
            continue;
        }
        signal(term_target(t), libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    for mut t in list.drain(..) {
        let exited = wait_until(&mut t.child, deadline);
        if t.group {
            // SAFETY: plain syscall; the group id is the PID of a child we spawned.
            unsafe { libc::killpg(t.child.id() as i32, libc::SIGKILL) };
        }
        if !exited {
            let _ = t.child.kill();
            let _ = t.child.wait();
        }
    }
}

fn term_target(t: &Tracked) -> i32 {
    let from_file = t.pidfile.as_ref().and_then(|p| fs::read_to_string(p).ok());
    match from_file.and_then(|s| s.trim().parse::<i32>().ok()) {
        Some(pid) if pid > 1 => pid,
        _ => t.child.id() as i32,
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: plain syscall on a PID this harness started.
    unsafe { libc::kill(pid, sig) };
}

/// Polls `try_wait` until the child exits or the deadline passes; true if it exited.
pub fn wait_until(child: &mut Child, deadline: Instant) -> bool {
    loop {
        if !matches!(child.try_wait(), Ok(None)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `waitpid` for a child whose `Child` handle is not here (a leaked gateway), SIGKILL at the
/// deadline.
fn reap_pid(pid: u32, deadline: Instant) {
    let pid = pid as libc::pid_t;
    loop {
        // SAFETY: plain syscall; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if r != 0 {
            return;
        }
        if Instant::now() >= deadline {
            signal(pid, libc::SIGKILL);
            // SAFETY: as above, blocking now that the child is being killed.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Absolute path of a server binary; a missing one fails the test, naming the Debian package.
pub fn find_binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut dirs: Vec<&str> = path.split(':').collect();
    dirs.extend(["/usr/sbin", "/usr/bin", "/sbin", "/bin"]);
    let found = dirs
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("`{name}` not found: install it with `apt-get install -y {package}`")
    })
}

/// uid/gid of a system user, if the harness runs as root (then servers drop to that user);
/// `None` when not root (then they run as the current user, which needs no switch).
pub fn system_user(user: &str, package: &str) -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    static PASSWD: Mutex<()> = Mutex::new(());
    let _guard = lock(&PASSWD); // getpwnam's result is a shared static buffer.
    let name = CString::new(user).unwrap();
    // SAFETY: name is NUL-terminated; the result is read before the lock is released.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "no system user `{user}`: `apt-get install -y {package}` creates it"
    );
    // SAFETY: pw is non-null and points to libc's passwd record.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Makes `cmd` run as the given user (std drops root's supplementary groups as well).
pub fn run_as(cmd: &mut Command, ids: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Gives a server's state directory to its user, recursively.
pub fn chown_tree(path: &Path, ids: Option<(u32, u32)>) {
    let Some((uid, gid)) = ids else { return };
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), ids);
        }
    }
}

/// A port that was free on 127.0.0.1 a moment ago (bind to :0, read it, release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A port that was free on each of `ips` a moment ago: one the first address gives for :0
/// that the others can bind too (the nodes of a cluster share a distribution port number).
pub fn free_port_on(ips: &[Ipv4Addr]) -> u16 {
    let (first, others) = ips.split_first().expect("an address");
    for _ in 0..50 {
        let l = TcpListener::bind((*first, 0))
            .unwrap_or_else(|e| panic!("binding {first}:0 (is it on lo?): {e}"));
        let port = l.local_addr().unwrap().port();
        let held: Result<Vec<_>, _> = others
            .iter()
            .map(|ip| TcpListener::bind((*ip, port)))
            .collect();
        if held.is_ok() {
            return port;
        }
    }
    panic!("no port free on all of {ips:?} in 50 tries")
}

/// Random hex, for the Erlang cookie: nothing outside this process should guess it.
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last `n` lines of a log file (or a note that it is missing), for panic messages.
pub fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            format!(
                "--- {} (last {n} lines) ---\n{}",
                path.display(),
                lines[start..].join("\n")
            )
        }
        Err(e) => format!("--- {}: {e} ---", path.display()),
    }
}

/// Runs commands concurrently, at most `width` at a time, and panics with the output of any
/// that failed. Used for account registration, where each call is a separate process.
pub fn run_all(cmds: Vec<Command>, width: usize, what: &str) {
    let mut cmds = cmds.into_iter().peekable();
    while cmds.peek().is_some() {
        let batch: Vec<_> = cmds
            .by_ref()
            .take(width.max(1))
            .map(|mut c| {
                c.stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                c.spawn()
                    .unwrap_or_else(|e| panic!("{what}: spawning {c:?}: {e}"))
            })
            .collect();
        for child in batch {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{what} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
