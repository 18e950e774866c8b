//! The compiled rules: node globs with deny over allow, target domains, client networks, expiry
//! and request rates. Pure except for the clock the rate buckets are given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio_xmpp::parsers::jid::BareJid;

use crate::adhoc::address::strip_final_dot;

/// The namespace a short node name (no `:` and no `/`) stands in for.
pub const ADMIN_PREFIX: &str = "http://jabber.org/protocol/admin#";

/// `*` matches any run of characters (`/` and `#` included); everything else matches itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at: on a mismatch, let it eat one
    // more character. Linear backtracking, so a hostile pattern cannot make this exponential.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A short name means the XEP-0133 node of that name (`end-user-session`; `*-user` is
/// `admin#*-user`). A pattern with `:`, `/`, `#` or a space is a full node pattern as written
/// (`*#get-*`, `running nodes/*/shutdown`, `http://...`), and a lone `*` is every node, the
/// servers' own (ejabberd's `running nodes/...`) included.
pub fn expand_pattern(pattern: &str) -> String {
    if pattern == "*" || pattern.contains([':', '/', '#', ' ']) {
        pattern.to_owned()
    } else {
        format!("{ADMIN_PREFIX}{pattern}")
    }
}

/// Which nodes a token or an account may run: some `allow` matches and no `deny` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeRules {
    allow: Vec<String>,
    deny: Vec<String>,
}

impl NodeRules {
    /// Patterns as written in the file; short names are expanded here.
    pub fn new(allow: &[String], deny: &[String]) -> NodeRules {
        NodeRules {
            allow: allow.iter().map(|p| expand_pattern(p)).collect(),
            deny: deny.iter().map(|p| expand_pattern(p)).collect(),
        }
    }

    /// `node` is the full node string as sent to the server; an empty allow list permits nothing.
    pub fn permits(&self, node: &str) -> bool {
        self.allow.iter().any(|p| glob_matches(p, node))
            && !self.deny.iter().any(|p| glob_matches(p, node))
    }
}

/// A request rate: `per` requests per `unit`, with a burst of `per`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per: u32,
    pub unit: Duration,
}

impl Rate {
    /// `"10/s"`, `"100/m"`, `"1000/h"`.
    pub fn parse(s: &str) -> Result<Rate, String> {
        let bad = || format!("rate {s:?} is not N/s, N/m or N/h with N >= 1");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let per: u32 = n.trim().parse().map_err(|_| bad())?;
        let unit = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if per == 0 {
            return Err(bad());
        }
        Ok(Rate { per, unit })
    }

    fn seconds_per_request(&self) -> f64 {
        self.unit.as_secs_f64() / f64::from(self.per)
    }
}

/// A token bucket: full at `rate.per`, refilled continuously.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(rate: &Rate, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate.per),
            last: now,
        }
    }

    /// Takes one request's worth, or says how long until one is there.
    pub fn take(&mut self, rate: &Rate, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let refill = elapsed / rate.seconds_per_request();
        self.tokens = (self.tokens + refill).min(f64::from(rate.per));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) * rate.seconds_per_request();
            Err(Duration::from_secs_f64(wait.max(0.001)))
        }
    }
}

/// One token's rules, without its digest (a [`super::Grant`] carries these).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRules {
    pub name: String,
    pub account: Option<BareJid>,
    pub nodes: NodeRules,
    /// Lowercase, without a final dot; `None`: any domain.
    pub domains: Option<Vec<String>>,
    /// Unix seconds.
    pub expires: Option<i64>,
    /// `None`: any address.
    pub from: Option<Vec<IpNet>>,
    pub stream: bool,
    pub rate: Option<Rate>,
}

impl TokenRules {
    pub fn expired(&self, now_unix: i64) -> bool {
        self.expires.is_some_and(|e| now_unix >= e)
    }

    /// An IPv4-mapped IPv6 client (`::ffff:192.0.2.1`, a dual-stack listener) counts as IPv4.
    pub fn admits_address(&self, client: IpAddr) -> bool {
        let client = match client {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match &self.from {
            None => true,
            Some(nets) => nets.iter().any(|n| n.contains(&client)),
        }
    }

    /// The first target domain outside `domains`, if any (case-insensitive, a final dot
    /// stripped on both sides: `example.test.` is `example.test`).
    pub fn domain_outside<'a>(&self, targets: &[&'a str]) -> Option<&'a str> {
        let allowed = self.domains.as_ref()?;
        targets
            .iter()
            .find(|t| {
                let t = strip_final_dot(t);
                !allowed.iter().any(|a| a.eq_ignore_ascii_case(&t))
            })
            .copied()
    }
}

/// A token as the file defines it: the SHA-256 digest of its secret and its rules.
#[derive(Debug, Clone)]
pub struct CompiledToken {
    pub digest: [u8; 32],
    pub rules: Arc<TokenRules>,
}

/// Everything one version of the access file says.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub tokens: Vec<CompiledToken>,
    pub accounts: HashMap<BareJid, NodeRules>,
}
