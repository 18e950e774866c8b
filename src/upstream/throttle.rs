//! Failed-login budgets, so that the gateway never turns a password-guessing client into
//! failed logins against the XMPP server (ejabberd's mod_fail2ban would ban the gateway's own
//! address, locking every admin out), and so that an attacker's failures lock out the attacker
//! rather than the admins.
//!
//! Budgets, from the narrowest: the account-and-address pair (checked before anything else,
//! warm sessions included); the client address (IPv6 by its /64, an IPv4-mapped address as
//! IPv4); the account; and the whole gateway over an hour, which stays below fail2ban's 20 per
//! source address per hour (every login through the gateway comes from its one address). A
//! login that cannot fail because its password matches the proof of the account's last
//! successful login is exempt from all but the pair (see `upstream::access`). Failures that
//! never reach SASL (a domain the server does not serve) count against the address only.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_xmpp::parsers::jid::BareJid;

use crate::config::ThrottleConfig;
use crate::expiring::ExpiringMap;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(BareJid, IpAddr),
    Addr(IpAddr),
    Account(BareJid),
    Total,
}

/// The span of the total budget: mod_fail2ban's default ban lifetime, over which it counts.
const TOTAL_WINDOW: Duration = Duration::from_secs(3600);

/// Keys kept at most, bounding memory under a spray of accounts (about 100 bytes each).
const BOUND: usize = 100_000;

/// Which budgets a failure is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server refused the credentials: every budget.
    Login,
    /// Refused before SASL (the server does not serve the domain): the address alone.
    AddressOnly,
}

/// The failed logins of the last window, per key, with the address that failed.
pub struct LoginThrottle {
    cfg: ThrottleConfig,
    failures: ExpiringMap<Key, Failures>,
    /// Logins under way, per budget: each counts as a failure until it ends, so that requests
    /// sent at once cannot all pass a budget that has room for one.
    pending: Mutex<HashMap<Key, usize>>,
}

/// A login under way, counted against its budgets until dropped.
pub struct Reservation<'a> {
    throttle: &'a LoginThrottle,
    keys: Vec<Key>,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut pending = self.throttle.lock_pending();
        for key in &self.keys {
            if let Some(n) = pending.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    pending.remove(key);
                }
            }
        }
    }
}

/// How long a client waits when only logins under way fill a budget.
const PENDING_WAIT: Duration = Duration::from_secs(1);

/// One budget's recent failures, newest last. Touched only by a failure (a check only looks),
/// so the record expires the longest window after its last failure, when nothing in it counts.
struct Failures {
    times: VecDeque<(Instant, IpAddr)>,
}

/// The address a budget counts: IPv4-mapped IPv6 as IPv4, other IPv6 by its /64 (one host
/// usually holds a whole /64).
pub fn bucket(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginThrottle {
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            failures: ExpiringMap::new(TOTAL_WINDOW.max(cfg.window), BOUND),
            pending: Mutex::new(HashMap::new()),
            cfg,
        }
    }

    /// Checks the login budgets (as [`check_login`](Self::check_login)) counting the logins
    /// already under way, and reserves a place in each until the returned guard is dropped.
    pub fn reserve_login(
        &self,
        account: &BareJid,
        addr: IpAddr,
        exempt: bool,
    ) -> Result<Reservation<'_>, Duration> {
        let budgets = self.login_budgets(account, addr, exempt);
        let mut pending = self.lock_pending();
        self.check_with(&budgets, &pending)?;
        let keys: Vec<Key> = budgets.into_iter().map(|(k, _, _)| k).collect();
        for key in &keys {
            *pending.entry(key.clone()).or_default() += 1;
        }
        Ok(Reservation {
            throttle: self,
            keys,
        })
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<Key, usize>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(retry_after)` when this account has failed too often from this address.
    pub fn check_pair(&self, account: &BareJid, addr: IpAddr) -> Result<(), Duration> {
        let pair = Key::Pair(account.clone(), bucket(addr));
        self.check(&[(pair, self.cfg.pair, self.cfg.window)])
    }

    /// `Err(retry_after)` when a login for this account from this address would exceed a
    /// budget. An `exempt` login (its password matches the last proof) answers to the pair
    /// alone: it cannot fail unless the password changed, and must not be locked out by
    /// failures others spent.
    pub fn check_login(
        &self,
        account: &BareJid,
        addr: IpAddr,
        exempt: bool,
    ) -> Result<(), Duration> {
        let budgets = self.login_budgets(account, addr, exempt);
        self.check_with(&budgets, &self.lock_pending())
    }

    fn login_budgets(
        &self,
        account: &BareJid,
        addr: IpAddr,
        exempt: bool,
    ) -> Vec<(Key, u32, Duration)> {
        let (addr, window) = (bucket(addr), self.cfg.window);
        let pair = (Key::Pair(account.clone(), addr), self.cfg.pair, window);
        if exempt {
            return vec![pair];
        }
        vec![
            pair,
            (Key::Addr(addr), self.cfg.wide, window),
            (Key::Account(account.clone()), self.cfg.wide, window),
            (Key::Total, self.cfg.total, TOTAL_WINDOW),
        ]
    }

    /// `Err(retry_after)` when this address has failed too often (for attempts that never
    /// reach SASL and name no account the server knows).
    pub fn check_address(&self, addr: IpAddr) -> Result<(), Duration> {
        self.check(&[(Key::Addr(bucket(addr)), self.cfg.wide, self.cfg.window)])
    }

    /// Counts a failure against the budgets `kind` names.
    pub fn failed(&self, account: &BareJid, addr: IpAddr, kind: Failure) {
        let addr = bucket(addr);
        let keys = match kind {
            Failure::Login => vec![
                Key::Pair(account.clone(), addr),
                Key::Addr(addr),
                Key::Account(account.clone()),
                Key::Total,
            ],
            Failure::AddressOnly => vec![Key::Addr(addr)],
        };
        self.record(keys, addr);
    }

    /// Counts a failure of the address alone, naming no account (a refused token).
    pub fn address_failed(&self, addr: IpAddr) {
        let addr = bucket(addr);
        self.record(vec![Key::Addr(addr)], addr);
    }

    fn record(&self, keys: Vec<Key>, addr: IpAddr) {
        let now = Instant::now();
        // More than the largest budget is never needed to decide.
        let largest = self.cfg.wide.max(self.cfg.pair).max(self.cfg.total) as usize;
        for key in keys {
            let is_total = key == Key::Total;
            let new = || Failures {
                times: VecDeque::new(),
            };
            let (recent, _) = self.failures.upsert(key, new, |f| {
                f.times.push_back((now, addr));
                while f.times.len() > largest {
                    f.times.pop_front();
                }
                is_total.then(|| {
                    f.times
                        .iter()
                        .filter(|(t, _)| now.duration_since(*t) < TOTAL_WINDOW)
                        .map(|(_, a)| *a)
                        .collect::<Vec<_>>()
                })
            });
            if let Some(recent) = recent {
                self.warn_if_total_spent(recent);
            }
        }
    }

    /// Logs once, when the gateway-wide budget becomes spent, which addresses spent it.
    fn warn_if_total_spent(&self, recent: Vec<IpAddr>) {
        if recent.len() != self.cfg.total as usize {
            return;
        }
        let mut spenders: Vec<(IpAddr, usize)> = Vec::new();
        for a in recent {
            match spenders.iter_mut().find(|(s, _)| *s == a) {
                Some((_, n)) => *n += 1,
                None => spenders.push((a, 1)),
            }
        }
        let spenders: Vec<String> = spenders.iter().map(|(a, n)| format!("{a}x{n}")).collect();
        tracing::warn!(
            spent_by = %spenders.join(","),
            "the gateway-wide failed-login budget is spent: logins that could fail are refused \
             (429) for up to an hour; logins proved by an earlier success still go through"
        );
    }

    /// Forgets records whose last failure left the longest window.
    pub fn sweep(&self) {
        self.failures.sweep();
    }

    /// A successful login clears the pair's record.
    pub fn succeeded(&self, account: &BareJid, addr: IpAddr) {
        self.failures
            .remove(&Key::Pair(account.clone(), bucket(addr)));
    }

    fn check(&self, budgets: &[(Key, u32, Duration)]) -> Result<(), Duration> {
        self.check_with(budgets, &HashMap::new())
    }

    /// The budgets' verdict, logins under way (`pending`) counted as failures.
    fn check_with(
        &self,
        budgets: &[(Key, u32, Duration)],
        pending: &HashMap<Key, usize>,
    ) -> Result<(), Duration> {
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for (key, limit, window) in budgets {
            let (window, limit) = (*window, *limit as usize);
            let extra = pending.get(key).copied().unwrap_or(0);
            let failed = self
                .failures
                .peek(key, |f| {
                    f.times
                        .iter()
                        .map(|(t, _)| *t)
                        .filter(|t| now.saturating_duration_since(*t) < window)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if failed.len() + extra < limit {
                continue;
            }
            // Free again once the failure that keeps it at the limit leaves the window; when
            // logins under way alone fill it, as soon as they end.
            wait = wait.max(match failed.get(failed.len() + extra - limit) {
                Some(decisive) => window.saturating_sub(now.duration_since(*decisive)),
                None => PENDING_WAIT,
            });
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }
}

#[cfg(test)]
mod tests;
