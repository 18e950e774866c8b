//! The upstream list (`--upstream a:5222,b:5222,example.org`): each entry's targets (a
//! `HOST:PORT` is its own one target; a `DOMAIN` has those of its SRV records, kept until their
//! TTL runs out or every one of them failed), the order a login tries them in, and the back-off
//! of a target that failed.
//!
//! A login tries the targets in the list's order (an SRV entry's in its records' order),
//! skipping those in back-off, and goes on to the next only when the TCP connect, TLS or the
//! stream header fails or times out ([`Connector::login`](super::Connector)); when every
//! target is in back-off it tries them all anyway, in order, rather than fail without trying.
//! A target that failed is skipped for [`BACKOFF_FIRST`], doubling with each failure in a row
//! up to [`BACKOFF_MAX`]; a login through it clears its back-off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{UpstreamEntry, UpstreamTls};

use super::srv::{self, Resolver};
use super::UpstreamError;

/// How long a target that failed once is skipped.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest back-off, however often a target failed in a row.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The most targets kept of one SRV entry's records (a DNS answer may name any number; the
/// resolver keeps no more either).
pub const MAX_TARGETS: usize = srv::MAX_TARGETS;

/// Every entry of `--upstream`, in order, with its targets and their back-offs.
pub struct Upstreams {
    entries: Vec<Entry>,
    tls: UpstreamTls,
    /// How SRV entries are looked up; without one (tools and tests that name no domain) a
    /// `DOMAIN` entry is `DOMAIN:5222`.
    resolver: Option<Resolver>,
}

/// One entry of the list.
struct Entry {
    /// The entry as configured: the metrics' `upstream` label, the name `/readyz` gives it.
    label: Arc<str>,
    kind: Kind,
}

enum Kind {
    /// `HOST:PORT`: its one target.
    Fixed(Arc<Target>),
    /// `DOMAIN`: the targets of its SRV records.
    Srv {
        domain: String,
        /// The targets last looked up, and until when they stand.
        cached: Mutex<Option<Cached>>,
        /// One lookup at a time: logins that find the targets stale wait for it and read its
        /// answer.
        turn: tokio::sync::Mutex<()>,
    },
}

/// A place a login can connect to: a host (name or IP literal) and a port.
pub struct Target {
    pub host: String,
    pub port: u16,
    /// The label of the entry this target came from.
    pub label: Arc<str>,
    /// Whether it came from a DNS answer (with `--upstream-tls none`, checked to be loopback at
    /// connect time: an operator's literal entries are checked at start).
    pub from_dns: bool,
    backoff: Mutex<Backoff>,
}

#[derive(Default)]
struct Backoff {
    /// Failures in a row since the last success.
    failures: u32,
    /// Skipped until then.
    until: Option<Instant>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr())
    }
}

impl Target {
    fn new(host: String, port: u16, label: Arc<str>, from_dns: bool) -> Self {
        Self {
            host,
            port,
            label,
            from_dns,
            backoff: Mutex::new(Backoff::default()),
        }
    }

    /// `host:port` (`[v6]:port`), for logs and messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Puts the target in back-off: 1 s after its first failure in a row, doubling up to 30 s.
    pub fn failed(&self) {
        let mut b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let doublings = b.failures.min(16);
        let wait = BACKOFF_FIRST
            .saturating_mul(1 << doublings)
            .min(BACKOFF_MAX);
        b.failures = b.failures.saturating_add(1);
        b.until = Some(Instant::now() + wait);
    }

    /// A login (or a stream) got through: no back-off.
    pub fn succeeded(&self) {
        let mut b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        *b = Backoff::default();
    }

    /// Whether a login skips this target now.
    pub fn in_backoff(&self) -> bool {
        let b = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        b.until.is_some_and(|t| Instant::now() < t)
    }
}

impl Upstreams {
    pub fn new(entries: &[UpstreamEntry], tls: UpstreamTls) -> Self {
        let entries =
            entries
                .iter()
                .map(|e| {
                    let label: Arc<str> = e.label().into();
                    let kind =
                        match e {
                            UpstreamEntry::Addr { host, port } => Kind::Fixed(Arc::new(
                                Target::new(host.clone(), *port, label.clone(), false),
                            )),
                            UpstreamEntry::Srv { domain } => Kind::Srv {
                                domain: domain.clone(),
                                cached: Mutex::new(None),
                                turn: tokio::sync::Mutex::new(()),
                            },
                        };
                    Entry { label, kind }
                })
                .collect();
        Self {
            entries,
            tls,
            resolver: None,
        }
    }

    /// The same list, its `DOMAIN` entries looked up with `resolver`.
    pub fn with_resolver(self, resolver: Resolver) -> Self {
        Self {
            resolver: Some(resolver),
            ..self
        }
    }

    /// Whether any entry is a `DOMAIN` (looked up by SRV).
    pub fn has_domains(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.kind, Kind::Srv { .. }))
    }

    /// The entries' labels, in order.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| &*e.label)
    }

    /// The entries' labels with a name that stands in for the domain before the gateway knows
    /// one (an `HOST:PORT`'s host, an SRV entry's domain).
    pub fn guesses(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|e| {
            let guess = match &e.kind {
                Kind::Fixed(t) => t.host.as_str(),
                Kind::Srv { domain, .. } => domain.as_str(),
            };
            (&*e.label, guess)
        })
    }

    /// The targets a login tries, in order, one at a time ([`Walk::next`]): every entry's, in
    /// the list's order, less those in back-off; all of them, in order, when every one is. An
    /// SRV entry is looked up (when stale) only once the walk reaches it, so a later entry's
    /// DNS never delays a login an earlier entry serves.
    pub fn walk(&self) -> Walk<'_> {
        Walk {
            upstreams: self,
            entry: 0,
            pending: std::collections::VecDeque::new(),
            waiting: Vec::new(),
            tried: false,
        }
    }

    /// Every target [`walk`](Self::walk) would hand out, none failing (tests).
    #[cfg(test)]
    pub async fn plan(&self) -> Vec<Arc<Target>> {
        let mut walk = self.walk();
        let mut all = Vec::new();
        while let Some(t) = walk.next().await {
            all.push(t);
        }
        all
    }

    /// Entry `i`'s targets in their order (an SRV entry's looked up when stale); `Err` when
    /// its SRV records say the domain offers no c2s service.
    pub async fn targets(&self, i: usize) -> Result<Vec<Arc<Target>>, UpstreamError> {
        let Some(entry) = self.entries.get(i) else {
            return Ok(Vec::new());
        };
        let (domain, cached, turn) = match &entry.kind {
            Kind::Fixed(t) => return Ok(vec![t.clone()]),
            Kind::Srv {
                domain,
                cached,
                turn,
            } => (domain, cached, turn),
        };
        if let Some(fresh) = fresh(cached) {
            return fresh;
        }
        let _turn = turn.lock().await;
        if let Some(fresh) = fresh(cached) {
            return fresh;
        }
        let looked_up = self.look_up(domain).await;
        let mut c = cached.lock().unwrap_or_else(|e| e.into_inner());
        let old = c.take().map(|c| c.targets).unwrap_or_default();
        let (found, expires, refused) = match looked_up {
            Ok((found, expires)) => (found, expires, None),
            Err((why, expires)) => (Vec::new(), expires, Some(why)),
        };
        // A target seen before keeps its back-off across lookups.
        let targets: Vec<Arc<Target>> = found
            .into_iter()
            .take(MAX_TARGETS)
            .map(|(host, port)| {
                old.iter()
                    .find(|t| t.host == host && t.port == port)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Target::new(host, port, entry.label.clone(), true)))
            })
            .collect();
        let now = Cached {
            targets,
            expires,
            refused,
            looked_up: Instant::now(),
        };
        let answer = now.answer();
        *c = Some(now);
        answer
    }

    /// How many entries the list has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty (never, from a checked configuration).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `target` failed: its back-off, and when every target of its SRV entry is in back-off,
    /// the entry's records are looked up again at the next login (once they are
    /// [`srv::MIN_TTL`] old).
    pub fn failed(&self, target: &Target) {
        target.failed();
        if !target.from_dns {
            return;
        }
        for entry in &self.entries {
            if let Kind::Srv { cached, .. } = &entry.kind {
                let mut c = cached.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = c.as_mut() {
                    let all_failed = c.targets.iter().any(|t| std::ptr::eq(&**t, target))
                        && c.targets.iter().all(|t| t.in_backoff());
                    if all_failed {
                        // Looked up again at the next login, but not more often than the
                        // shortest TTL the resolver keeps: a dead service is not a DNS query
                        // per login.
                        c.expires = c.expires.min(c.looked_up + srv::MIN_TTL);
                    }
                }
            }
        }
    }

    /// With `--upstream-tls none`, a target from a DNS answer must be a loopback address (a
    /// name resolving to loopback addresses only): the password would otherwise cross the
    /// network in clear. `Ok(Some(addresses))` for a name checked so: the connection goes to
    /// exactly those, never to a second resolution that could answer otherwise. `Ok(None)`
    /// for anything else.
    pub(super) async fn check_plaintext(
        &self,
        target: &Target,
    ) -> Result<Option<Vec<std::net::SocketAddr>>, UpstreamError> {
        if self.tls != UpstreamTls::None || !target.from_dns {
            return Ok(None);
        }
        let refused = || {
            UpstreamError::Config(format!(
                "{} is not a loopback address: refused with --upstream-tls none",
                target.addr()
            ))
        };
        if let Ok(ip) = target.host.parse::<std::net::IpAddr>() {
            return if ip.is_loopback() {
                Ok(None)
            } else {
                Err(refused())
            };
        }
        let addrs: Vec<_> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("{}: {e}", target.addr())))?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(refused());
        }
        Ok(Some(addrs))
    }

    /// The targets of `domain`'s SRV records in the order to try and until when they stand
    /// (without records, or when the lookup fails, `domain:5222`: `srv::Resolver::lookup`);
    /// `Err` with the reason when the records say the domain offers no c2s service, which
    /// stands as long as a fallback would.
    async fn look_up(
        &self,
        domain: &str,
    ) -> Result<(Vec<(String, u16)>, Instant), (String, Instant)> {
        let Some(resolver) = &self.resolver else {
            let expires = Instant::now() + srv::FALLBACK_TTL;
            return Ok((vec![(domain.to_string(), srv::XMPP_CLIENT_PORT)], expires));
        };
        match resolver.lookup(domain).await {
            Ok(resolved) => {
                let found = resolved
                    .targets
                    .into_iter()
                    .map(|t| (t.host, t.port))
                    .collect();
                Ok((found, resolved.expires))
            }
            Err(e) => {
                tracing::warn!(%domain, error = %e, "upstream entry has no target");
                Err((e.to_string(), Instant::now() + srv::FALLBACK_TTL))
            }
        }
    }
}

/// An SRV entry's targets as last looked up, and until when they stand.
struct Cached {
    targets: Vec<Arc<Target>>,
    expires: Instant,
    /// Why there are none: the records say the domain offers no c2s service.
    refused: Option<String>,
    /// When they were looked up.
    looked_up: Instant,
}

impl Cached {
    fn answer(&self) -> Result<Vec<Arc<Target>>, UpstreamError> {
        match &self.refused {
            Some(why) => Err(UpstreamError::Unreachable(why.clone())),
            None => Ok(self.targets.clone()),
        }
    }
}

fn fresh(cached: &Mutex<Option<Cached>>) -> Option<Result<Vec<Arc<Target>>, UpstreamError>> {
    let c = cached.lock().unwrap_or_else(|e| e.into_inner());
    c.as_ref()
        .filter(|c| Instant::now() < c.expires)
        .map(Cached::answer)
}

/// A login's way through the upstream list ([`Upstreams::walk`]).
pub struct Walk<'a> {
    upstreams: &'a Upstreams,
    /// The next entry to look at.
    entry: usize,
    /// The ready targets of the entry looked at last, not handed out yet.
    pending: std::collections::VecDeque<Arc<Target>>,
    /// Targets passed over for their back-off: handed out only when no other target was.
    waiting: Vec<Arc<Target>>,
    tried: bool,
}

impl Walk<'_> {
    /// The next target to try, `None` when there is none left.
    pub async fn next(&mut self) -> Option<Arc<Target>> {
        loop {
            if let Some(t) = self.pending.pop_front() {
                self.tried = true;
                return Some(t);
            }
            if self.entry < self.upstreams.entries.len() {
                let i = self.entry;
                self.entry += 1;
                // An entry whose records say it serves nothing has nothing to try.
                for t in self.upstreams.targets(i).await.unwrap_or_default() {
                    if t.in_backoff() {
                        self.waiting.push(t);
                    } else {
                        self.pending.push_back(t);
                    }
                }
                continue;
            }
            if self.tried || self.waiting.is_empty() {
                return None;
            }
            // Every target is in back-off: all of them, in order, rather than none.
            self.pending = std::mem::take(&mut self.waiting).into();
        }
    }
}

/// A stream's hold on the target it is on, from its login until its driver ends: counted in
/// the metrics' streams of its entry while held.
pub struct StreamOn {
    target: Arc<Target>,
}

impl StreamOn {
    pub fn new(target: Arc<Target>) -> Self {
        crate::metrics::upstream_streams(&target.label, 1);
        Self { target }
    }

    /// The stream died with its server (closed under it, silent, `system-shutdown`): the
    /// next login skips this target for its back-off rather than find out again.
    pub fn lost(&self) {
        self.target.failed();
    }
}

impl Drop for StreamOn {
    fn drop(&mut self) {
        crate::metrics::upstream_streams(&self.target.label, -1);
    }
}

#[cfg(test)]
mod tests;
