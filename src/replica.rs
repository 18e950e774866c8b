//! Several gateways beside each other: this replica's name, the other replicas it knows, and the
//! key they share (`--replica-name`, `--peer NAME=URL`, `--replica-key-file`).
//!
//! The key file holds one secret per line (at least 32 bytes each; blank lines and lines
//! starting with `#` are skipped). The first signs; every one verifies. Rotation is therefore:
//! add the new secret as a second line on every replica, then move it first, then drop the old
//! one, restarting the replicas one at a time between the steps (docs/deploy.md).

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use ring::hmac;

/// The shortest secret a key file line may hold, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// The most secrets one key file may hold (a rotation needs two).
pub const MAX_SECRETS: usize = 8;
/// The largest key file read, in bytes.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The secret the replicas share: HMAC-SHA256 keys, the first of which signs.
pub struct ReplicaKey {
    keys: Vec<hmac::Key>,
}

impl fmt::Debug for ReplicaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        write!(f, "ReplicaKey({} secrets)", self.keys.len())
    }
}

impl ReplicaKey {
    /// Reads `--replica-key-file`: a regular file, not readable by group or others (unless it is
    /// under systemd's `$CREDENTIALS_DIRECTORY`), one secret per line.
    pub fn load(path: &Path) -> Result<ReplicaKey, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the replica key file {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!(
                "the replica key file {shown} is not a regular file"
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(format!(
                "the replica key file {shown} is larger than {MAX_FILE_BYTES} bytes"
            ));
        }
        let managed = std::env::var_os("CREDENTIALS_DIRECTORY")
            .is_some_and(|d| path.starts_with(Path::new(&d)));
        if !managed && meta.mode() & 0o077 != 0 {
            return Err(format!(
                "the replica key file {shown} is readable by group or others (mode {:o}); \
                 chmod 600 it (or use systemd's LoadCredential=)",
                meta.mode() & 0o777
            ));
        }
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read the replica key file {shown}: {e}"))?;
        Self::parse(&text).map_err(|e| format!("replica key file {shown}: {e}"))
    }

    /// The file's bytes: one secret per line, the first signing.
    pub fn parse(text: &[u8]) -> Result<ReplicaKey, String> {
        let mut keys = Vec::new();
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            let line = line.trim_ascii();
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            if line.len() < MIN_SECRET_BYTES {
                // The length only: never a byte of the secret.
                return Err(format!(
                    "line {} holds {} bytes; a secret needs at least {MIN_SECRET_BYTES} \
                     (e.g. `openssl rand -hex 32`)",
                    n + 1,
                    line.len()
                ));
            }
            if keys.len() == MAX_SECRETS {
                return Err(format!("more than {MAX_SECRETS} secrets"));
            }
            keys.push(hmac::Key::new(hmac::HMAC_SHA256, line));
        }
        if keys.is_empty() {
            return Err("no secret in it".into());
        }
        Ok(ReplicaKey { keys })
    }

    /// The HMAC-SHA256 of `data` under the signing secret, for `purpose` (each use of the key
    /// names its own, so a tag made for one can never pass as another).
    pub fn sign(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.keys[0], &message(purpose, data));
        let mut out = [0; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `tag` is the HMAC of `data` for `purpose` under any of the secrets (constant time
    /// for each).
    pub fn verify(&self, purpose: &str, data: &[u8], tag: &[u8]) -> bool {
        let msg = message(purpose, data);
        self.keys.iter().any(|k| hmac::verify(k, &msg, tag).is_ok())
    }

    /// Whether `tag` is the HMAC of `data` for `purpose` under any of the secrets cut to its
    /// first `tag.len()` bytes (8 to 32), compared in constant time: for a tag that must be
    /// short, such as the mark in a resource (`upstream::session::own`).
    pub fn verify_truncated(&self, purpose: &str, data: &[u8], tag: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        if !(MIN_TRUNCATED_TAG..=32).contains(&tag.len()) {
            return false;
        }
        let msg = message(purpose, data);
        self.keys.iter().fold(false, |found, k| {
            let full = hmac::sign(k, &msg);
            found | bool::from(full.as_ref()[..tag.len()].ct_eq(tag))
        })
    }
}

/// The shortest truncated tag [`ReplicaKey::verify_truncated`] takes, in bytes.
pub const MIN_TRUNCATED_TAG: usize = 8;

/// `purpose`, a NUL, then `data`: purposes are plain names without NUL.
fn message(purpose: &str, data: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(purpose.len() + 1 + data.len());
    msg.extend_from_slice(purpose.as_bytes());
    msg.push(0);
    msg.extend_from_slice(data);
    msg
}

/// Another replica: its name and the base URL it answers on (`http://host:port` or
/// `https://host:port`, no path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub https: bool,
    /// `host:port` as given (a name is resolved when a request is forwarded).
    pub authority: String,
}

/// This replica among the others.
#[derive(Debug, Clone)]
pub struct Replicas {
    /// `--replica-name`.
    pub name: String,
    /// `--replica-key-file`'s secrets.
    pub key: Arc<ReplicaKey>,
    /// `--peer`, in the order given.
    pub peers: Vec<Peer>,
}

impl Replicas {
    /// The peer called `name`, if any.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }
}

/// The purpose of the tag that makes a sessionid unforgeable.
const SESSIONID_PURPOSE: &str = "sessionid";

/// Whose a client's sessionid is ([`Replicas::owner`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner<'a> {
    /// This replica's (or an id without a replica's name: looked up here, as without replicas).
    Here,
    /// Another replica's, known by `--peer`: its request goes there.
    Peer(&'a Peer),
    /// Signed by no key of ours, or naming a replica that is not a peer: nobody's (404 at once,
    /// nothing forwarded).
    Nobody,
}

/// How a kept command's sessionid is written: 32 random hex digits alone (no replicas), or
/// `NAME.RANDOM.TAG`, the tag the HMAC of `NAME.RANDOM` under the replica key (64 hex digits,
/// purpose `sessionid`), so another replica knows where it lives and nobody can make one up.
#[derive(Debug, Clone, Default)]
pub struct SessionIds {
    named: Option<(String, Arc<ReplicaKey>)>,
}

impl SessionIds {
    /// The ids of this replica, or plain ones without replicas.
    pub fn of(replicas: Option<&Replicas>) -> SessionIds {
        SessionIds {
            named: replicas.map(|r| (r.name.clone(), r.key.clone())),
        }
    }

    /// A new sessionid.
    pub fn mint(&self) -> String {
        let random = format!("{:032x}", rand::random::<u128>());
        match &self.named {
            None => random,
            Some((name, key)) => {
                let named = format!("{name}.{random}");
                let tag = hex(&key.sign(SESSIONID_PURPOSE, named.as_bytes()));
                format!("{named}.{tag}")
            }
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lower-case (or upper-case) hex `s`, if it is that.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()))
        .collect()
}

impl Replicas {
    /// Whose `sessionid` is: a `NAME.RANDOM.TAG` whose tag verifies names its replica; any other
    /// shape is looked up here (a gateway's ids before it had replicas, or a client's guess).
    pub fn owner(&self, sessionid: &str) -> Owner<'_> {
        let mut parts = sessionid.splitn(3, '.');
        let (Some(name), Some(random), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            return Owner::Here;
        };
        let signed = &sessionid[..name.len() + 1 + random.len()];
        let genuine =
            unhex(tag).is_some_and(|t| self.key.verify(SESSIONID_PURPOSE, signed.as_bytes(), &t));
        if !genuine {
            return Owner::Nobody;
        }
        if name == self.name {
            return Owner::Here;
        }
        self.peer(name).map_or(Owner::Nobody, Owner::Peer)
    }
}

/// The longest replica name.
pub const MAX_NAME_BYTES: usize = 32;

/// A replica name: 1 to 32 of `a-z`, `0-9` and `-`, not starting with `-` (it is written into
/// sessionids and resources).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a replica name: 1 to {MAX_NAME_BYTES} of a-z, 0-9 and '-', \
             not starting with '-'"
        ))
    }
}

/// Reads `NAME=URL` of `--peer`.
pub fn parse_peer(s: &str) -> Result<Peer, String> {
    let Some((name, url)) = s.split_once('=') else {
        return Err(format!("{s:?} is not NAME=URL"));
    };
    check_name(name)?;
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!("{url:?}: the URL starts with http:// or https://"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@'])
        || authority
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!(
            "{url:?}: give scheme://host:port only (no path, query or user)"
        ));
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(format!("{url:?}: the URL names its port"));
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{url:?}: host:port with a port from 1 to 65535"));
    }
    Ok(Peer {
        name: name.to_string(),
        https,
        authority: authority.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"0123456789abcdef0123456789abcdef";
    const B: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn key(lines: &[&[u8]]) -> ReplicaKey {
        ReplicaKey::parse(&lines.join(&b'\n')).expect("key")
    }

    #[test]
    fn the_first_secret_signs_and_every_one_verifies() {
        let old = key(&[A]);
        let rotating = key(&[A, B]);
        let new = key(&[B, A]);
        let done = key(&[B]);
        let tag = old.sign("sessionid", b"r1.abc");
        assert!(rotating.verify("sessionid", b"r1.abc", &tag));
        assert!(new.verify("sessionid", b"r1.abc", &tag));
        assert!(!done.verify("sessionid", b"r1.abc", &tag));
        // Once a replica signs with B, those still at [A, B] verify it; one still at [A] alone
        // would not, which is why every replica takes [A, B] before any signs with B.
        let tag = new.sign("sessionid", b"r1.abc");
        assert!(rotating.verify("sessionid", b"r1.abc", &tag));
        assert!(done.verify("sessionid", b"r1.abc", &tag));
        assert!(!old.verify("sessionid", b"r1.abc", &tag));
    }

    #[test]
    fn a_tag_is_for_its_purpose_and_its_data_only() {
        let k = key(&[A]);
        let tag = k.sign("sessionid", b"r1.abc");
        assert!(!k.verify("resource", b"r1.abc", &tag));
        assert!(!k.verify("sessionid", b"r1.abd", &tag));
        assert!(!k.verify("sessionid", b"r1.abc", &tag[..31]));
        // The separator keeps "a" + "b\0c" apart from "a\0b" + "c".
        assert!(!k.verify("sessionid\0r1", b".abc", &tag));
    }

    #[test]
    fn a_truncated_tag_verifies_under_every_secret_and_never_shorter_than_8_bytes() {
        let tag = key(&[A]).sign("resource", b"u@x\0n");
        assert!(key(&[B, A]).verify_truncated("resource", b"u@x\0n", &tag[..8]));
        assert!(key(&[A]).verify_truncated("resource", b"u@x\0n", &tag));
        assert!(!key(&[A]).verify_truncated("resource", b"u@x\0n", &tag[..7]));
        assert!(!key(&[A]).verify_truncated("resource", b"u@x\0m", &tag[..8]));
        assert!(!key(&[A]).verify_truncated("sessionid", b"u@x\0n", &tag[..8]));
        assert!(!key(&[B]).verify_truncated("resource", b"u@x\0n", &tag[..8]));
    }

    #[test]
    fn short_empty_and_too_many_secrets_are_refused_without_their_bytes() {
        let e = ReplicaKey::parse(b"# comment\nshort-secret\n").expect_err("short");
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("short-secret"), "{e}");
        assert!(ReplicaKey::parse(b"\n# only a comment\n").is_err());
        let nine = [A; MAX_SECRETS + 1];
        assert!(ReplicaKey::parse(&nine.join(&b'\n')).is_err());
        assert!(ReplicaKey::parse(&[A; MAX_SECRETS].join(&b'\n')).is_ok());
        assert_eq!(format!("{:?}", key(&[A, B])), "ReplicaKey(2 secrets)");
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xrg-replica-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("key");
        std::fs::write(&p, A).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(ReplicaKey::load(&p)
            .expect_err("0644")
            .contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(ReplicaKey::load(&p).is_ok());
        assert!(ReplicaKey::load(&dir).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    fn replicas(name: &str, secret: &[u8]) -> Replicas {
        Replicas {
            name: name.into(),
            key: Arc::new(key(&[secret])),
            peers: vec![
                parse_peer("gw-1=http://127.0.0.1:1").expect("peer"),
                parse_peer("gw-2=http://127.0.0.1:2").expect("peer"),
            ],
        }
    }

    #[test]
    fn a_sessionid_names_its_replica_and_a_tampered_one_names_nobody() {
        let (gw1, gw2) = (replicas("gw-1", A), replicas("gw-2", A));
        let id = SessionIds::of(Some(&gw1)).mint();
        let parts: Vec<&str> = id.split('.').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0], "gw-1");
        assert_eq!((parts[1].len(), parts[2].len()), (32, 64), "{id}");
        assert!(parts[1..]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit())));
        assert_eq!(gw1.owner(&id), Owner::Here);
        assert_eq!(gw2.owner(&id), Owner::Peer(&gw2.peers[0]));
        // Another random part, another replica's name, a cut or altered tag: nobody's.
        let other_random = format!("gw-1.{:032x}.{}", 7u128, parts[2]);
        let other_name = format!("gw-2.{}.{}", parts[1], parts[2]);
        let cut = &id[..id.len() - 2];
        let mut flipped = id.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        for bad in [
            &other_random,
            &other_name,
            cut,
            &flipped,
            "gw-2.x.zz",
            "a.b.c.d",
        ] {
            assert_eq!(gw2.owner(bad), Owner::Nobody, "{bad}");
            assert_eq!(gw1.owner(bad), Owner::Nobody, "{bad}");
        }
        // Signed under another key: nobody's.
        let stranger = SessionIds::of(Some(&replicas("gw-1", B))).mint();
        assert_eq!(gw2.owner(&stranger), Owner::Nobody);
        // Signed right but naming a replica that is no peer: nobody's.
        let gw3 = SessionIds::of(Some(&replicas("gw-3", A))).mint();
        assert_eq!(gw1.owner(&gw3), Owner::Nobody);
        // A plain id (no replicas, or a client's) is looked up here.
        let plain = SessionIds::of(None).mint();
        assert_eq!(plain.len(), 32);
        assert_eq!(gw1.owner(&plain), Owner::Here);
    }

    #[test]
    fn names_and_peers_are_read_strictly() {
        assert!(check_name("gw-1").is_ok());
        for bad in ["", "-a", "Gw", "a.b", "a_b", &"a".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_peer("gw-2=http://10.0.0.2:8080/").expect("peer"),
            Peer {
                name: "gw-2".into(),
                https: false,
                authority: "10.0.0.2:8080".into()
            }
        );
        assert!(parse_peer("gw-2=https://[::1]:8443").expect("v6").https);
        for bad in [
            "gw-2",
            "gw-2=10.0.0.2:8080",
            "gw-2=http://10.0.0.2",
            "gw-2=http://10.0.0.2:0",
            "gw-2=http://10.0.0.2:8080/rest",
            "gw-2=http://u@10.0.0.2:8080",
            "GW=http://10.0.0.2:8080",
        ] {
            assert!(parse_peer(bad).is_err(), "{bad:?}");
        }
    }
}
