//! The access file: its TOML shape, the checks that turn it into [`Rules`], and the atomic
//! rewrite `token add` and `token revoke` use.
//!
//! Unknown keys are errors: a typo (`alow`, `domain`) must not silently widen access. Error
//! texts name the token or account and the key, never a line of the file, so a hash is never
//! copied into a log.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio_xmpp::parsers::jid::BareJid;

use super::rules::{CompiledToken, NodeRules, Rate, Rules, TokenRules};
use crate::adhoc::address::strip_final_dot;

/// The whole file as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    #[serde(default, rename = "token", skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenEntry>,
    #[serde(default, rename = "account", skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountEntry>,
}

/// One `[[token]]`. A token without `allow` may run nothing (least privilege).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub secret_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<String>>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
}

/// One `[[account]]`: rules for Basic credentials of that account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    pub jid: String,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

impl AccessFile {
    /// Parses the text. TOML errors carry the line number and the parser's message only.
    pub fn parse(text: &str) -> Result<AccessFile, String> {
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| {
                let before = text.get(..s.start).unwrap_or(text);
                before.matches('\n').count() + 1
            });
            match line {
                Some(l) => format!("line {l}: {}", e.message()),
                None => e.message().to_owned(),
            }
        })
    }

    /// Checks every entry and builds the rules in force.
    pub fn compile(&self) -> Result<Rules, String> {
        let mut rules = Rules::default();
        let mut names = HashSet::new();
        let mut digests: HashMap<[u8; 32], &str> = HashMap::new();
        for t in &self.tokens {
            let compiled = compile_token(t)?;
            if !names.insert(t.name.as_str()) {
                return Err(format!("token {}: the name is used twice", t.name));
            }
            if let Some(other) = digests.insert(compiled.digest, &t.name) {
                return Err(format!(
                    "tokens {other} and {} have the same secret_sha256",
                    t.name
                ));
            }
            rules.tokens.push(compiled);
        }
        for a in &self.accounts {
            let jid = bare_jid(&a.jid).map_err(|e| format!("account {:?}: jid {e}", a.jid))?;
            check_patterns(&a.allow, &a.deny).map_err(|e| format!("account {jid}: {e}"))?;
            if rules
                .accounts
                .insert(jid.clone(), NodeRules::new(&a.allow, &a.deny))
                .is_some()
            {
                return Err(format!("account {jid}: listed twice"));
            }
        }
        Ok(rules)
    }

    /// The file as `token add|revoke` write it: a comment line first, so that a file with no
    /// token and no account left (the last token revoked) is still not empty, which the
    /// gateway would refuse as a truncated file.
    pub fn to_toml(&self) -> Result<String, String> {
        let body =
            toml::to_string(self).map_err(|e| format!("cannot write the access file: {e}"))?;
        Ok(format!("{HEADER}\n{body}"))
    }
}

/// The first line of a file `token add|revoke` wrote.
pub const HEADER: &str =
    "# xmpp-rest-gateway access file (docs/security.md); `token add|revoke` rewrite it";

/// An access file of nothing but white space is what a truncating edit (`: > access.toml`, an
/// editor or a tool that writes in place) leaves for a moment, never a file anyone means: it is
/// refused, at start and on reload, and the rules in force stay. A file holding only comments
/// is a file someone wrote (`token revoke` of the last token leaves [`HEADER`]) and means "no
/// tokens, no account rules".
pub fn refuse_empty(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("the file is empty (a file with no rules holds at least a comment)".into());
    }
    Ok(())
}

/// `[A-Za-z0-9_-]{1,64}`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn bare_jid(s: &str) -> Result<BareJid, String> {
    BareJid::new(&strip_final_dot(s)).map_err(|e| format!("{s:?} is not a bare JID ({e})"))
}

fn check_patterns(allow: &[String], deny: &[String]) -> Result<(), String> {
    if allow.iter().chain(deny).any(|p| p.trim().is_empty()) {
        return Err("an allow or deny pattern is empty".into());
    }
    Ok(())
}

fn hex_digest(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// RFC 3339 to Unix seconds.
pub fn parse_expires(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|e| format!("expires {s:?} is not an RFC 3339 time ({e})"))
}

/// A CIDR network, or a single address (as /32 or /128).
pub fn parse_network(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("from {s:?} is not a network (192.0.2.0/24, 2001:db8::/32)"))
}

fn compile_token(t: &TokenEntry) -> Result<CompiledToken, String> {
    if !valid_name(&t.name) {
        return Err(format!(
            "token name {:?} is not 1 to 64 of A-Z a-z 0-9 _ -",
            t.name
        ));
    }
    let name = &t.name;
    let in_token = |e: String| format!("token {name}: {e}");
    let digest = hex_digest(&t.secret_sha256)
        .ok_or_else(|| in_token("secret_sha256 is not 64 hexadecimal digits".into()))?;
    let account = t.account.as_deref().map(bare_jid).transpose();
    let account = account.map_err(|e| in_token(format!("account {e}")))?;
    check_patterns(&t.allow, &t.deny).map_err(in_token)?;
    let domains = match &t.domains {
        Some(ds) if ds.iter().any(|d| d.trim().is_empty()) => {
            return Err(in_token("a domain is empty".into()))
        }
        Some(ds) => Some(
            ds.iter()
                .map(|d| strip_final_dot(d.trim()).to_ascii_lowercase())
                .collect(),
        ),
        None => None,
    };
    let expires = t.expires.as_deref().map(parse_expires).transpose();
    let from = t
        .from
        .as_ref()
        .map(|nets| nets.iter().map(|n| parse_network(n)).collect())
        .transpose();
    let rate = t.rate.as_deref().map(Rate::parse).transpose();
    Ok(CompiledToken {
        digest,
        rules: Arc::new(TokenRules {
            name: name.clone(),
            account,
            nodes: NodeRules::new(&t.allow, &t.deny),
            domains,
            expires: expires.map_err(in_token)?,
            from: from.map_err(in_token)?,
            stream: t.stream,
            rate: rate.map_err(in_token)?,
        }),
    })
}

/// Reads and checks the file; errors name the file.
pub fn read(path: &Path) -> Result<(AccessFile, Rules), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the access file {}: {e}", path.display()))?;
    refuse_empty(&text)
        .and_then(|()| parse_and_compile(&text))
        .map_err(|e| format!("access file {}: {e}", path.display()))
}

pub fn parse_and_compile(text: &str) -> Result<(AccessFile, Rules), String> {
    let file = AccessFile::parse(text)?;
    let rules = file.compile()?;
    Ok((file, rules))
}

/// Replaces `path` with `contents` so that a reader sees the old file or the new one, never
/// half of one: a temporary file in the same directory, fsync, rename, fsync the directory.
/// An existing file's mode and owner are kept; a new file gets 0644 (it holds only hashes).
/// A symbolic link is followed, so the link stays and its target is replaced.
pub fn write_atomically(path: &Path, contents: &str) -> Result<(), String> {
    let resolved = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(format!("cannot resolve {}: {e}", path.display())),
    };
    let path = resolved.as_path();
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file path", path.display()))?;
    let existing = match std::fs::metadata(path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail("inspect", e)),
    };
    let mode = existing.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail("create a temporary file beside", e))?;
        if let Some(m) = &existing {
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))
                .map_err(|e| fail("keep the owner of", e))?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| fail("keep the mode of", e))?;
        f.write_all(contents.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| fail("write", e))?;
        std::fs::rename(&tmp, path).map_err(|e| fail("replace", e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail("sync the directory of", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
