//! `xmpp-rest-gateway token add|list|revoke`: manage the access file. Scripts parse the
//! output, so it is exact: `add` prints the new secret and nothing else on stdout, `list` one
//! line per token; every other message goes to stderr. Exit 0 on success, 1 on failure.
//!
//! `add` and `revoke` hold an exclusive `flock` on a sibling lock file (`access.toml.lock`)
//! from before they read the file until after its replacement is renamed in, so commands run
//! at once take turns and none loses another's change. The lock is advisory: an editor does
//! not take it, which is what the "changed while this command ran" check in [`save`] is for.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;

use super::file::{self, AccessFile, TokenEntry};

/// Manage the tokens of an access file.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Add a token; prints its secret (`xrg_` and 43 URL-safe characters) as the only line on
    /// stdout. The file keeps only its SHA-256, so the secret cannot be shown again.
    Add {
        /// Unique name, 1 to 64 of A-Z a-z 0-9 _ -.
        name: String,
        #[arg(long, env = "XRG_ACCESS_FILE", value_name = "PATH")]
        access_file: PathBuf,
        /// The account a Bearer token acts as (its password comes from the credentials file).
        #[arg(long, value_name = "JID")]
        account: Option<String>,
        /// A node it may run; short names mean `http://jabber.org/protocol/admin#NAME`, `*` any
        /// run of characters. Without --allow the token may run nothing.
        #[arg(long, value_name = "NODE")]
        allow: Vec<String>,
        /// A node it may not run, even when allowed.
        #[arg(long, value_name = "NODE")]
        deny: Vec<String>,
        /// A target domain it may act on (default: any).
        #[arg(long, value_name = "DOMAIN")]
        domain: Vec<String>,
        /// RFC 3339 time, or a lifetime from now in days or hours (`30d`, `12h`).
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// A client network it may be used from (default: any).
        #[arg(long, value_name = "CIDR")]
        from: Vec<String>,
        /// May use POST /rest/stream/.
        #[arg(long)]
        stream: bool,
        /// Request rate: N/s, N/m or N/h (burst N).
        #[arg(long, value_name = "RATE")]
        rate: Option<String>,
    },
    /// List the tokens, one line each, never their hashes.
    ///
    /// Text: tab-separated columns `name account allow deny domains expires from stream rate`;
    /// lists are comma-separated, an absent value is `-`, stream is `true` or `false`.
    /// `--json`: one JSON object per line (JSON Lines) with those keys; absent values are
    /// `null`, lists are arrays, stream a boolean.
    List {
        #[arg(long, env = "XRG_ACCESS_FILE", value_name = "PATH")]
        access_file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Remove a token; it stops working at the gateway's next reload (within 3 s).
    Revoke {
        name: String,
        #[arg(long, env = "XRG_ACCESS_FILE", value_name = "PATH")]
        access_file: PathBuf,
    },
}

/// `xmpp-rest-gateway token ...`: returns the process exit code.
pub fn run(cmd: TokenCommand) -> ExitCode {
    let code = run_with(
        cmd,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        now_unix(),
    );
    ExitCode::from(code)
}

/// [`run`] over given outputs and clock (`now` in Unix seconds): 0 on success, 1 on failure.
pub fn run_with(cmd: TokenCommand, out: &mut impl Write, err: &mut impl Write, now: i64) -> u8 {
    let result = match cmd {
        TokenCommand::Add {
            name,
            access_file,
            account,
            allow,
            deny,
            domain,
            expires,
            from,
            stream,
            rate,
        } => expires_at(expires.as_deref(), now).and_then(|expires| {
            let (secret, digest) = new_secret();
            let entry = TokenEntry {
                name,
                secret_sha256: digest,
                account,
                allow,
                deny,
                domains: (!domain.is_empty()).then_some(domain),
                expires,
                from: (!from.is_empty()).then_some(from),
                stream,
                rate,
            };
            add(&access_file, entry).map(|msg| (Some(secret), msg))
        }),
        TokenCommand::List { access_file, json } => list(&access_file, json).map(|lines| {
            let _ = lines.iter().try_for_each(|l| writeln!(out, "{l}"));
            (None, String::new())
        }),
        TokenCommand::Revoke { name, access_file } => {
            revoke(&access_file, &name).map(|msg| (None, msg))
        }
    };
    match result {
        Ok((secret, msg)) => {
            if !msg.is_empty() {
                let _ = writeln!(err, "{msg}");
            }
            if let Some(s) = secret {
                if writeln!(out, "{s}").and_then(|()| out.flush()).is_err() {
                    let _ = writeln!(err, "error: cannot print the secret");
                    return 1;
                }
            }
            0
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            1
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `xrg_` and 43 URL-safe base64 characters of 32 random bytes, and its SHA-256 in hex.
pub fn new_secret() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let secret = format!(
        "xrg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    let hex = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    (secret, hex)
}

/// An RFC 3339 time as given (checked), or `Nd`/`Nh` from `now` written as RFC 3339 UTC.
pub fn expires_at(arg: Option<&str>, now: i64) -> Result<Option<String>, String> {
    let Some(arg) = arg else { return Ok(None) };
    let relative = arg
        .strip_suffix('d')
        .map(|n| (n, 86_400))
        .or_else(|| arg.strip_suffix('h').map(|n| (n, 3_600)));
    if let Some((n, unit)) = relative {
        if let Ok(n) = n.parse::<i64>() {
            let when = n
                .checked_mul(unit)
                .and_then(|s| now.checked_add(s))
                .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
                .filter(|_| n > 0)
                .ok_or_else(|| format!("--expires {arg}: not a usable lifetime"))?;
            return Ok(Some(
                when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ));
        }
    }
    let when =
        file::parse_expires(arg).map_err(|e| format!("--{e}; or give a lifetime like 30d"))?;
    if when <= now {
        return Err(format!(
            "--expires {arg} is not in the future; the token would never work"
        ));
    }
    Ok(Some(arg.to_owned()))
}

/// The file as it is (and its bytes, to notice a concurrent rewrite), or an empty one when it
/// does not exist yet.
fn read_or_empty(path: &Path) -> Result<(AccessFile, Option<Vec<u8>>), String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((AccessFile::default(), None))
        }
        Err(e) => {
            return Err(format!(
                "cannot read the access file {}: {e}",
                path.display()
            ))
        }
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| format!("access file {}: not UTF-8", path.display()))?;
    // An empty file is what a truncating edit leaves: adding to it would make a file the
    // gateway takes in, without the rules that were lost.
    file::refuse_empty(text).map_err(|e| format!("access file {}: {e}", path.display()))?;
    let (access, _) = file::parse_and_compile(text)
        .map_err(|e| format!("access file {}: {e}", path.display()))?;
    Ok((access, Some(bytes)))
}

/// Writes `access` over the file read as `before`, unless someone changed it meanwhile (two
/// `token add` at once must not lose one of the tokens silently).
pub(super) fn save(path: &Path, access: &AccessFile, before: Option<&[u8]>) -> Result<(), String> {
    // The same checks the gateway makes, so a rewrite never leaves a file it would refuse.
    access
        .compile()
        .map_err(|e| format!("access file {}: {e}", path.display()))?;
    let now = std::fs::read(path).ok();
    if now.as_deref() != before {
        return Err(format!(
            "the access file {} changed while this command ran; nothing was written, run it again",
            path.display()
        ));
    }
    file::write_atomically(path, &access.to_toml()?)
}

/// How long `add` and `revoke` wait for the lock before giving up (another command holding it
/// that long is stuck).
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The lock beside the access file (`NAME.lock` in the directory of the file a symbolic link
/// points to, so every path to one file shares its lock), held until the `File` is dropped.
pub(super) fn lock_beside(path: &Path) -> Result<std::fs::File, String> {
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let name = resolved
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    let mut lock_name = name.to_owned();
    lock_name.push(".lock");
    let lock_path = resolved.with_file_name(lock_name);
    let fail =
        |e: std::io::Error| format!("cannot open the lock file {}: {e}", lock_path.display());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&lock_path)
        // A lock file created by another user: a read-only descriptor takes a flock as well.
        .or_else(|_| std::fs::File::open(&lock_path))
        .map_err(fail)?;
    let started = Instant::now();
    loop {
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) | Some(libc::EINTR) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Some(libc::EWOULDBLOCK) => {
                return Err(format!(
                    "another token command has held {} for {} s; nothing was written",
                    lock_path.display(),
                    LOCK_WAIT.as_secs()
                ))
            }
            _ => return Err(format!("cannot lock {}: {e}", lock_path.display())),
        }
    }
}

fn add(path: &Path, entry: TokenEntry) -> Result<String, String> {
    let _lock = lock_beside(path)?;
    let (mut access, before) = read_or_empty(path)?;
    if access.tokens.iter().any(|t| t.name == entry.name) {
        return Err(format!(
            "a token named {} already exists in {}",
            entry.name,
            path.display()
        ));
    }
    let name = entry.name.clone();
    let nothing = entry.allow.is_empty();
    access.tokens.push(entry);
    save(path, &access, before.as_deref())?;
    let mut msg = format!("added token {name} to {}", path.display());
    if nothing {
        msg.push_str(" (it has no --allow, so it may run no command)");
    }
    Ok(msg)
}

fn revoke(path: &Path, name: &str) -> Result<String, String> {
    let _lock = lock_beside(path)?;
    let (mut access, before) = read_or_empty(path)?;
    if before.is_none() {
        return Err(format!(
            "cannot read the access file {}: it does not exist",
            path.display()
        ));
    }
    let count = access.tokens.len();
    access.tokens.retain(|t| t.name != name);
    if access.tokens.len() == count {
        return Err(format!("no token named {name} in {}", path.display()));
    }
    save(path, &access, before.as_deref())?;
    Ok(format!("revoked token {name} in {}", path.display()))
}

fn list(path: &Path, json: bool) -> Result<Vec<String>, String> {
    let access = file::read(path)?.0;
    Ok(access
        .tokens
        .iter()
        .map(|t| if json { json_line(t) } else { text_line(t) })
        .collect())
}

fn text_line(t: &TokenEntry) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(",")
        }
    };
    let opt_list = |v: &Option<Vec<String>>| v.as_deref().map_or("-".to_owned(), list);
    [
        t.name.clone(),
        opt(&t.account),
        list(&t.allow),
        list(&t.deny),
        opt_list(&t.domains),
        opt(&t.expires),
        opt_list(&t.from),
        t.stream.to_string(),
        opt(&t.rate),
    ]
    .join("\t")
}

fn json_line(t: &TokenEntry) -> String {
    serde_json::json!({
        "name": t.name,
        "account": t.account,
        "allow": t.allow,
        "deny": t.deny,
        "domains": t.domains,
        "expires": t.expires,
        "from": t.from,
        "stream": t.stream,
        "rate": t.rate,
    })
    .to_string()
}
