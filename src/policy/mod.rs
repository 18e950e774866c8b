//! Least privilege (issue 10): scoped tokens and per-command rules read from an access file,
//! and service-account credentials for token accounts. `http` asks [`Policy`] before anything
//! reaches the XMPP server; without an access file every answer is "allowed" (today's behaviour).
//!
//! Files: `file.rs` (the access file's TOML format, checks, atomic rewrite), `rules.rs` (globs,
//! short names, deny over allow, domains, networks, expiry, rates), `credentials.rs` (the
//! service-account passwords), `cli.rs` (`xmpp-rest-gateway token add|list|revoke`),
//! `watch.rs` (reload on SIGHUP and on change, off the runtime, keeping the rules in force when
//! the new file is bad or gone). Tests live beside each, in `*_tests.rs`.

pub mod cli;
pub mod credentials;
pub mod file;
pub mod rules;
mod watch;

#[cfg(test)]
mod cli_tests;
#[cfg(test)]
mod file_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod rules_tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;
use tokio_xmpp::parsers::jid::BareJid;

pub use credentials::ServiceCredentials;
use rules::{Bucket, Rules, TokenRules};
use watch::{stamp_of, Stamp};

/// The rules in force, swapped whole on reload.
pub struct Policy {
    /// The access file; `None` for [`Policy::open`] and rules given as text.
    path: Option<PathBuf>,
    /// Whether tokens are in use at all (false: today's behaviour).
    active: bool,
    current: RwLock<Arc<Rules>>,
    /// Per token name; they survive reloads so that a reload does not refill them.
    buckets: Mutex<HashMap<String, Bucket>>,
    require_api_key: bool,
    /// What the file looked like at the last (attempted) load, so `watch` notices changes.
    seen: Mutex<Option<Stamp>>,
    /// A changed file seen by the last poll, taken in only if the next poll finds it the same
    /// (the settle time, `watch.rs`).
    settling: Mutex<Option<Stamp>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules = self.rules();
        f.debug_struct("Policy")
            .field("path", &self.path)
            .field("active", &self.active)
            .field("tokens", &rules.tokens.len())
            .field("accounts", &rules.accounts.len())
            .field("require_api_key", &self.require_api_key)
            .finish_non_exhaustive()
    }
}

/// Who acts for a request and under which rules.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The token's name, when one was presented (for the audit line; never its secret).
    pub token: Option<String>,
    /// The account a Bearer token acts as (its password comes from the credentials file).
    pub bearer_account: Option<BareJid>,
    rules: Option<Arc<TokenRules>>,
}

impl Grant {
    fn unrestricted() -> Grant {
        Grant {
            token: None,
            bearer_account: None,
            rules: None,
        }
    }
}

/// Why a request is refused before anything reaches the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 401 with `WWW-Authenticate: Bearer error="invalid_token"` beside the Basic challenge:
    /// unknown, revoked or expired token, or a required api-key missing.
    #[error("{0}")]
    InvalidToken(String),
    /// 403 `forbidden`, naming what was refused.
    #[error("{0}")]
    Forbidden(String),
    /// 429 with Retry-After: the token's `rate` exceeded; the wait until the next request fits.
    #[error("the token's request rate is exceeded")]
    RateLimited(Duration),
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

impl Policy {
    /// No access file: everything allowed, api-keys ignored, Bearer tokens unknown.
    pub fn open() -> Policy {
        Policy {
            path: None,
            active: false,
            current: RwLock::new(Arc::new(Rules::default())),
            buckets: Mutex::new(HashMap::new()),
            require_api_key: false,
            seen: Mutex::new(None),
            settling: Mutex::new(None),
        }
    }

    /// Reads and checks the access file (error text names the file and the problem).
    pub fn load(path: &Path, require_api_key: bool) -> Result<Policy, String> {
        // At startup, before anything is served: blocking here stalls no request, and a FIFO
        // or a device is refused at once (`file_read::regular` opens without blocking).
        let contents = crate::file_read::regular(path)
            .map_err(|e| format!("cannot read the access file {}: {e}", path.display()))?;
        let stamp = stamp_of(&contents);
        let rules = compile_bytes(path, &contents.bytes)?;
        Ok(Policy {
            path: Some(path.to_owned()),
            active: true,
            current: RwLock::new(Arc::new(rules)),
            buckets: Mutex::new(HashMap::new()),
            require_api_key,
            seen: Mutex::new(Some(stamp)),
            settling: Mutex::new(None),
        })
    }

    /// Rules given as the access file's text, never reloaded (tests).
    pub fn from_text(text: &str, require_api_key: bool) -> Result<Policy, String> {
        let (_, rules) = file::parse_and_compile(text)?;
        let mut p = Policy::open();
        p.current = RwLock::new(Arc::new(rules));
        p.active = true;
        p.require_api_key = require_api_key;
        Ok(p)
    }

    fn rules(&self) -> Arc<Rules> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The token whose digest matches the secret's; every digest is compared, in constant time.
    fn find_token(&self, secret: &str) -> Result<Arc<TokenRules>, Refusal> {
        let digest = sha256(secret.as_bytes());
        let rules = self.rules();
        let mut found = None;
        for t in &rules.tokens {
            if bool::from(t.digest.ct_eq(&digest)) {
                found = Some(t.rules.clone());
            }
        }
        found.ok_or_else(|| Refusal::InvalidToken("unknown or revoked token".into()))
    }

    /// The first decision, from the headers alone, before the body is decoded:
    /// - `bearer`: the secret of `Authorization: Bearer SECRET` (acts as the token's account;
    ///   a token without `account` -> Forbidden). When both are given, `bearer` is used and
    ///   `api_key` ignored.
    /// - `api_key`: `X-API-Key` or `?api-key=` beside Basic (`basic` = the Basic account): gates
    ///   the request; if the token names an account, it must be `basic` (Forbidden otherwise,
    ///   also when `basic` is `None`);
    /// - neither: allowed (Grant with no token) unless `require_api_key` (InvalidToken);
    /// - the token's `expires` not passed (InvalidToken), its `from` networks contain `client`
    ///   (Forbidden otherwise), its `rate` not exceeded (RateLimited; checked last here, so a
    ///   request this function refuses spends nothing; one refused later by the node or domain
    ///   rules has spent its place, as a request answered 403 is still a request).
    ///
    /// Without an access file ([`Policy::open`]) an api-key is ignored and a Bearer token is
    /// unknown (InvalidToken). Secrets are compared as SHA-256 digests in constant time.
    pub fn admit(
        &self,
        bearer: Option<&str>,
        api_key: Option<&str>,
        basic: Option<&BareJid>,
        client: IpAddr,
    ) -> Result<Grant, Refusal> {
        let (secret, as_bearer) = match (bearer, api_key) {
            (Some(b), _) => (b, true),
            (None, Some(_)) if !self.active => return Ok(Grant::unrestricted()),
            (None, Some(k)) => (k, false),
            (None, None) if self.require_api_key => {
                return Err(Refusal::InvalidToken("an api-key is required".into()))
            }
            (None, None) => return Ok(Grant::unrestricted()),
        };
        let t = self.find_token(secret)?;
        let name = &t.name;
        if t.expired(now_unix()) {
            return Err(Refusal::InvalidToken(format!("token {name} has expired")));
        }
        if !t.admits_address(client) {
            return Err(Refusal::Forbidden(format!(
                "client address {client} is outside the networks of token {name}"
            )));
        }
        let bearer_account = if as_bearer {
            match &t.account {
                Some(a) => Some(a.clone()),
                None => {
                    return Err(Refusal::Forbidden(format!(
                        "token {name} names no account, so it cannot be used as a Bearer token"
                    )))
                }
            }
        } else {
            if let Some(a) = &t.account {
                if basic != Some(a) {
                    let who = basic.map_or("no Basic account".to_owned(), |b| b.to_string());
                    return Err(Refusal::Forbidden(format!(
                        "token {name} names account {a}, not {who}"
                    )));
                }
            }
            None
        };
        if let Some(rate) = &t.rate {
            let now = Instant::now();
            let mut buckets = lock(&self.buckets);
            let bucket = buckets
                .entry(name.clone())
                .or_insert_with(|| Bucket::full(rate, now));
            bucket.take(rate, now).map_err(Refusal::RateLimited)?;
        }
        Ok(Grant {
            token: Some(name.clone()),
            bearer_account,
            rules: Some(t),
        })
    }

    /// May `acting` (the account the request runs as) run `node` (the full node string as sent
    /// to the server) at these target `domains` (the URL JID's domain and the domain of every
    /// JID-valued field) under `grant`? Both the token's rules (if any) and the `[[account]]`
    /// rule of `acting` (if any) must allow it. Pattern short names mean
    /// `http://jabber.org/protocol/admin#NAME`; `*` matches any run of characters (a lone `*`
    /// matches every node); deny wins over allow.
    pub fn may_run(
        &self,
        grant: &Grant,
        acting: &BareJid,
        node: &str,
        domains: &[&str],
    ) -> Result<(), Refusal> {
        if let Some(t) = &grant.rules {
            if !t.nodes.permits(node) {
                return Err(Refusal::Forbidden(format!(
                    "node {node} is not allowed for token {}",
                    t.name
                )));
            }
            if let Some(d) = t.domain_outside(domains) {
                return Err(Refusal::Forbidden(format!(
                    "domain {d} is outside the domains of token {}",
                    t.name
                )));
            }
        }
        self.account_permits(acting, node)
    }

    fn account_permits(&self, acting: &BareJid, node: &str) -> Result<(), Refusal> {
        match self.rules().accounts.get(acting) {
            Some(r) if !r.permits(node) => Err(Refusal::Forbidden(format!(
                "node {node} is not allowed for account {acting}"
            ))),
            _ => Ok(()),
        }
    }

    /// May a request under `grant` address these `domains` at all (the command list, which names
    /// no node of its own)?
    pub fn may_address(&self, grant: &Grant, domains: &[&str]) -> Result<(), Refusal> {
        match grant
            .rules
            .as_ref()
            .and_then(|t| t.domain_outside(domains).map(|d| (t, d)))
        {
            Some((t, d)) => Err(Refusal::Forbidden(format!(
                "domain {d} is outside the domains of token {}",
                t.name
            ))),
            None => Ok(()),
        }
    }

    /// Whether a command list entry is shown (the node rules of `may_run`; the list has no
    /// target domains of its own, so only nodes are checked).
    pub fn shows(&self, grant: &Grant, acting: &BareJid, node: &str) -> bool {
        self.may_run(grant, acting, node, &[]).is_ok()
    }

    /// May this request use `POST /rest/stream/`? Only a token with `stream = true`; requests
    /// without a token keep today's behaviour.
    pub fn may_stream(&self, grant: &Grant) -> Result<(), Refusal> {
        match &grant.rules {
            Some(t) if !t.stream => Err(Refusal::Forbidden(format!(
                "token {} may not use POST /rest/stream/",
                t.name
            ))),
            _ => Ok(()),
        }
    }

    /// Whether an access file is in use.
    pub fn has_file(&self) -> bool {
        self.active
    }
}

fn compile_bytes(path: &Path, bytes: &[u8]) -> Result<Rules, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format!("access file {}: not UTF-8", path.display()))?;
    file::refuse_empty(text)
        .and_then(|()| file::parse_and_compile(text))
        .map(|(_, rules)| rules)
        .map_err(|e| format!("access file {}: {e}", path.display()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
