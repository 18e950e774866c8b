//! A throwaway CA and a `domain.com` server certificate, made with the `openssl` CLI once per
//! test binary. rustls will not take a self-signed leaf as its own trust anchor, hence the CA;
//! the gateway gets the CA certificate as `--upstream-ca`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::procs;

/// Where the CA certificate and the server's key and certificate are (PEM, root-owned; each
/// server gets its own copy of the key, owned by its user).
pub struct Pki {
    pub ca_pem: PathBuf,
    pub server_key: PathBuf,
    pub server_cert: PathBuf,
}

/// Extensions of the server certificate: both names the tests use, and what webpki checks.
const SERVER_EXT: &str = "subjectAltName=DNS:domain.com,DNS:*.domain.com\n\
basicConstraints=critical,CA:FALSE\n\
keyUsage=critical,digitalSignature,keyEncipherment\n\
extendedKeyUsage=serverAuth\n";

/// The binary's PKI, made on first use (a failure panics and is retried by the next caller).
pub fn shared() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| make(&procs::run_dir().join("pki")))
}

/// `openssl` arguments (whitespace-separated): a CA valid for a year (a short life only makes
/// ejabberd log expiry warnings; the key is deleted with the run directory anyway)...
const CA_ARGS: &str = "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 365 \
    -subj /CN=xmpp-rest-gateway-e2e-throwaway-CA \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign";
/// ...the server's key and signing request...
const CSR_ARGS: &str =
    "req -new -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=domain.com";
/// ...and its certificate, signed by the CA with [`SERVER_EXT`].
const SIGN_ARGS: &str = "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out server.pem -days 365 -extfile server.ext";

fn make(dir: &Path) -> Pki {
    let openssl = procs::find_binary("openssl", "openssl");
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("server.ext"), SERVER_EXT).unwrap();
    // The two RSA key generations are the slow part: run them side by side.
    let ca = spawn(&openssl, dir, CA_ARGS);
    let csr = spawn(&openssl, dir, CSR_ARGS);
    finish(ca, "making the CA");
    finish(csr, "making the server key");
    finish(
        spawn(&openssl, dir, SIGN_ARGS),
        "signing the server certificate",
    );
    Pki {
        ca_pem: dir.join("ca.pem"),
        server_key: dir.join("server.key"),
        server_cert: dir.join("server.pem"),
    }
}

fn spawn(openssl: &Path, dir: &Path, args: &str) -> std::process::Child {
    Command::new(openssl)
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning openssl")
}

fn finish(child: std::process::Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl failed {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
