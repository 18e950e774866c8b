//! Where a domain's c2s service is: its `_xmpp-client._tcp` SRV records (RFC 6120 §3.2.1,
//! RFC 2782), looked up with hickory-resolver, as the targets to try in order.
//!
//! Every answer is hostile. What one lookup can cost is bounded: hickory's query timeout and
//! attempts under one deadline for the whole lookup ([`LOOKUP_BOUND`]); one DNS message (64 KiB
//! over TCP at most, by the protocol) read; duplicates dropped in one pass; at most
//! [`MAX_TARGETS`] targets picked and kept, each pick one pass over its priority's records; a
//! target that is not a host name dropped; the records' TTL clamped to
//! [`MIN_TTL`]..=[`MAX_TTL`]. Without usable records, or when the lookup fails, the answer is the
//! fallback `DOMAIN:5222` for [`FALLBACK_TTL`].
//!
//! The caller keeps a [`Resolved`] until its `expires` (or until every target failed) and looks
//! up again then: hickory's own cache is off, so a lookup always asks the DNS.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use rand::Rng;
use tokio::time::Instant;

mod order;

/// The c2s port when a domain has no SRV records (RFC 6120 §3.2.1).
pub const XMPP_CLIENT_PORT: u16 = 5222;
/// Targets kept from one answer, whatever it holds.
pub const MAX_TARGETS: usize = 16;
/// The shortest time an answer is kept: a TTL of 0 must not make every login a DNS query.
pub const MIN_TTL: Duration = Duration::from_secs(5);
/// The longest time an answer is kept, whatever its TTL says.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// How long the fallback `DOMAIN:5222` is kept (no records, or the lookup failed): SRV records
/// published, or a DNS server back, are seen soon.
pub const FALLBACK_TTL: Duration = Duration::from_secs(30);
/// How long hickory waits for one answer before it asks again (or over TCP).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often hickory asks before it gives up.
pub const QUERY_ATTEMPTS: usize = 2;
/// The deadline of a whole lookup, whatever the DNS servers do: then the fallback.
pub const LOOKUP_BOUND: Duration = Duration::from_secs(5);

/// A DNS resolver for SRV lookups: the system's configuration, or one server given.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

/// Where to connect for a domain, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// At least one target, at most [`MAX_TARGETS`].
    pub targets: Vec<Target>,
    /// When to look up again: the records' TTL clamped to [`MIN_TTL`]..=[`MAX_TTL`], or
    /// [`FALLBACK_TTL`] for the fallback.
    pub expires: Instant,
    /// Whether the targets came from SRV records (false: the fallback `DOMAIN:5222`).
    pub from_srv: bool,
}

/// One place to connect to: a host name (lower case, no trailing dot) or, for a domain given
/// as an IP address, that address; and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a domain has no place to connect to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrvError {
    /// The domain's SRV records say it offers no c2s service: their only target is `.`
    /// (RFC 2782, "decidedly not available").
    #[error("the SRV records of {domain} say it offers no XMPP client service (target \".\")")]
    NotServed { domain: String },
    /// What was given is not a domain name (nor an IP address).
    #[error("{domain:?} is not a domain name to look up")]
    InvalidDomain { domain: String },
}

impl Resolver {
    /// The system's resolver configuration (/etc/resolv.conf), or only `dns_server` when given.
    pub fn new(dns_server: Option<SocketAddr>) -> std::io::Result<Resolver> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match dns_server {
            Some(addr) => {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    provider,
                )
            }
            None => TokioResolver::builder(provider).map_err(std::io::Error::other)?,
        };
        let options = builder.options_mut();
        options.timeout = QUERY_TIMEOUT;
        options.attempts = QUERY_ATTEMPTS;
        // The caller keeps each answer until it expires: a second cache under it would answer
        // a lookup made because every target failed with the records that led there.
        options.cache_size = 0;
        // SRV names are never in /etc/hosts; the file need not be read.
        options.use_hosts_file = ResolveHosts::Never;
        let inner = builder.build().map_err(std::io::Error::other)?;
        Ok(Resolver { inner })
    }

    /// `_xmpp-client._tcp.DOMAIN` (RFC 6120 §3.2.1): targets in the order to try (lowest
    /// priority first; within a priority the RFC 2782 weighted random order); without SRV
    /// records (NXDOMAIN, no answer) or when the lookup fails, the fallback DOMAIN:5222;
    /// Err only when the records say the service is decidedly not available (a single "." target).
    pub async fn lookup(&self, domain: &str) -> Result<Resolved, SrvError> {
        let domain = Domain::read(domain)?;
        let service = match &domain {
            // An address has no SRV records: connect to it.
            Domain::Address(_) => return Ok(fallback(&domain, Instant::now())),
            Domain::Name { ascii, .. } => service_name(ascii)?,
        };
        let answer = tokio::time::timeout(
            LOOKUP_BOUND,
            self.inner.lookup(service.clone(), RecordType::SRV),
        )
        .await;
        let now = Instant::now();
        match answer {
            Ok(Ok(lookup)) => from_records(&domain, lookup.answers(), now, &mut rand::rng()),
            Ok(Err(e)) if no_records(&e) => {
                tracing::debug!(%service, "no SRV records: {domain}:{XMPP_CLIENT_PORT}");
                Ok(fallback(&domain, now))
            }
            Ok(Err(e)) => {
                tracing::warn!(%service, "SRV lookup failed ({e}): {domain}:{XMPP_CLIENT_PORT} for now");
                Ok(fallback(&domain, now))
            }
            Err(_) => {
                tracing::warn!(
                    %service,
                    "SRV lookup unanswered within {LOOKUP_BOUND:?}: {domain}:{XMPP_CLIENT_PORT} for now"
                );
                Ok(fallback(&domain, now))
            }
        }
    }
}

/// NXDOMAIN, or the name without SRV records.
fn no_records(e: &NetError) -> bool {
    e.is_no_records_found() || e.is_nx_domain()
}

/// The domain as looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Domain {
    /// A host name: its ASCII form (IDNA), lower case, no trailing dot.
    Name {
        ascii: String,
    },
    Address(IpAddr),
}

impl Domain {
    fn read(given: &str) -> Result<Domain, SrvError> {
        let invalid = || SrvError::InvalidDomain {
            domain: given.chars().take(300).collect(),
        };
        let trimmed = given.strip_prefix('[').and_then(|s| s.strip_suffix(']'));
        if let Ok(ip) = trimmed.unwrap_or(given).parse::<IpAddr>() {
            return Ok(Domain::Address(ip));
        }
        // IDNA for a domain written in Unicode; the checks below hold for every label.
        let name = Name::from_utf8(given).map_err(|_| invalid())?;
        let ascii = host_name(&name).ok_or_else(invalid)?;
        Ok(Domain::Name { ascii })
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Domain::Name { ascii } => f.write_str(ascii),
            Domain::Address(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Domain::Address(ip) => write!(f, "{ip}"),
        }
    }
}

/// `_xmpp-client._tcp.DOMAIN.`: absolute, so no search list applies.
fn service_name(ascii: &str) -> Result<Name, SrvError> {
    Name::from_ascii(format!("_xmpp-client._tcp.{ascii}.")).map_err(|_| SrvError::InvalidDomain {
        domain: ascii.to_string(),
    })
}

/// The fallback: the domain itself on the c2s port, kept for [`FALLBACK_TTL`].
fn fallback(domain: &Domain, now: Instant) -> Resolved {
    let host = match domain {
        Domain::Name { ascii } => ascii.clone(),
        Domain::Address(ip) => ip.to_string(),
    };
    Resolved {
        targets: vec![Target {
            host,
            port: XMPP_CLIENT_PORT,
        }],
        expires: now + FALLBACK_TTL,
        from_srv: false,
    }
}

/// A record's target as a host name (RFC 1123 letters, digits and hyphens; the last label not
/// all digits, so it cannot read as an IPv4 address): lower case, no trailing dot. `None` for
/// anything else (the root, underscores, escaped dots, spaces, ...).
fn host_name(name: &Name) -> Option<String> {
    if name.is_root() || name.num_labels() == 0 {
        return None;
    }
    let mut host = String::with_capacity(name.len());
    let mut last_all_digits = false;
    for label in name.iter() {
        let ldh = !label.is_empty()
            && label.len() <= 63
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-');
        if !ldh {
            return None;
        }
        if !host.is_empty() {
            host.push('.');
        }
        last_all_digits = label.iter().all(u8::is_ascii_digit);
        // Every byte is ASCII: one char each.
        host.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    (host.len() <= 253 && !last_all_digits).then_some(host)
}

/// The answer's SRV records as the targets to try, at `now`.
fn from_records(
    domain: &Domain,
    answers: &[Record],
    now: Instant,
    rng: &mut impl Rng,
) -> Result<Resolved, SrvError> {
    let mut seen = std::collections::HashSet::new();
    let mut usable = Vec::new();
    let (mut records, mut dots, mut dropped) = (0usize, 0usize, 0usize);
    let mut ttl = u32::MAX;
    for record in answers {
        let RData::SRV(srv) = &record.data else {
            continue; // a CNAME on the way, or noise
        };
        records += 1;
        ttl = ttl.min(record.ttl);
        if srv.target.is_root() {
            dots += 1;
            continue;
        }
        let Some(host) = host_name(&srv.target).filter(|_| srv.port != 0) else {
            dropped += 1;
            continue;
        };
        // The first of a target named twice stands (a hostile answer repeats one).
        if seen.insert((host.clone(), srv.port)) {
            usable.push(order::Candidate {
                priority: srv.priority,
                weight: srv.weight,
                target: Target {
                    host,
                    port: srv.port,
                },
            });
        }
    }
    if records > 0 && dots == records {
        return Err(SrvError::NotServed {
            domain: domain.to_string(),
        });
    }
    if dropped > 0 {
        tracing::warn!(
            "{dropped} SRV record(s) of {domain} dropped: the target is not a host name, or the port is 0"
        );
    }
    if usable.is_empty() {
        if records > 0 {
            tracing::warn!("no usable SRV record for {domain}: {domain}:{XMPP_CLIENT_PORT}");
        }
        return Ok(fallback(domain, now));
    }
    let targets = order::rfc2782(usable, MAX_TARGETS, rng);
    let ttl = Duration::from_secs(u64::from(ttl)).clamp(MIN_TTL, MAX_TTL);
    Ok(Resolved {
        targets,
        expires: now + ttl,
        from_srv: true,
    })
}

#[cfg(test)]
mod tests;
