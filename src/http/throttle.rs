//! Failed-login budgets, so that the gateway never turns a password-guessing client into
//! failed logins against the XMPP server (ejabberd's mod_fail2ban would ban the gateway's own
//! address, locking every admin out). The account-and-address pair is checked before anything
//! else; the looser per-address and per-account budgets only for logins that would need the
//! upstream, so an admin whose credentials match a warm session is still served. A last budget
//! counts every failed login of the gateway over an hour: mod_fail2ban counts per source
//! address, and every login through the gateway comes from the gateway's one address, so it
//! must stay below fail2ban's 20 per hour whoever fails.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_xmpp::parsers::jid::BareJid;

use crate::config::ThrottleConfig;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(BareJid, IpAddr),
    Addr(IpAddr),
    Account(BareJid),
    Total,
}

/// The span of the total budget: mod_fail2ban's default ban lifetime, over which it counts.
const TOTAL_WINDOW: Duration = Duration::from_secs(3600);

/// The failed logins of the last window, per key.
pub struct LoginThrottle {
    cfg: ThrottleConfig,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

/// Keys kept before old ones are swept, bounding memory under a spray of accounts.
const SWEEP_AT: usize = 10_000;

impl LoginThrottle {
    pub fn new(cfg: ThrottleConfig) -> Self {
        Self {
            cfg,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when this account has failed too often from this address.
    pub fn check_pair(&self, account: &BareJid, addr: IpAddr) -> Result<(), Duration> {
        self.check(&[(
            Key::Pair(account.clone(), addr),
            self.cfg.pair,
            self.cfg.window,
        )])
    }

    /// `Err(retry_after)` when a login for this account or from this address would exceed
    /// the looser budgets.
    pub fn check_login(&self, account: &BareJid, addr: IpAddr) -> Result<(), Duration> {
        let window = self.cfg.window;
        self.check(&[
            (Key::Pair(account.clone(), addr), self.cfg.pair, window),
            (Key::Addr(addr), self.cfg.wide, window),
            (Key::Account(account.clone()), self.cfg.wide, window),
            (Key::Total, self.cfg.total, TOTAL_WINDOW),
        ])
    }

    /// Counts a refused login against all three budgets.
    pub fn failed(&self, account: &BareJid, addr: IpAddr) {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= SWEEP_AT {
            let window = self.cfg.window;
            f.retain(|k, v| {
                *k == Key::Total || v.back().is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        for key in [
            Key::Pair(account.clone(), addr),
            Key::Addr(addr),
            Key::Account(account.clone()),
            Key::Total,
        ] {
            let q = f.entry(key).or_default();
            q.push_back(now);
            // More than the largest budget is never needed to decide.
            let largest = self.cfg.wide.max(self.cfg.pair).max(self.cfg.total);
            while q.len() > largest as usize {
                q.pop_front();
            }
        }
    }

    /// A successful login clears the pair's record.
    pub fn succeeded(&self, account: &BareJid, addr: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.remove(&Key::Pair(account.clone(), addr));
    }

    fn check(&self, budgets: &[(Key, u32, Duration)]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for (key, limit, window) in budgets {
            let window = *window;
            let Some(q) = f.get_mut(key) else { continue };
            while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                q.pop_front();
            }
            let limit = *limit as usize;
            if q.len() >= limit {
                // Free again once the failure that keeps it at the limit leaves the window.
                let decisive = q[q.len() - limit];
                wait = wait.max(window.saturating_sub(now.duration_since(decisive)));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig {
            pair: 3,
            wide: 5,
            total: 8,
            window: Duration::from_secs(60),
        })
    }

    fn jid(s: &str) -> BareJid {
        s.parse().unwrap()
    }

    #[test]
    fn the_pair_locks_after_its_budget_and_a_success_clears_it() {
        let t = throttle();
        let (a, ip) = (jid("a@x"), "10.0.0.1".parse().unwrap());
        for _ in 0..3 {
            assert!(t.check_pair(&a, ip).is_ok());
            t.failed(&a, ip);
        }
        let wait = t.check_pair(&a, ip).unwrap_err();
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60));
        t.succeeded(&a, ip);
        assert!(t.check_pair(&a, ip).is_ok());
    }

    #[test]
    fn another_address_is_not_locked_by_the_pair() {
        let t = throttle();
        let a = jid("a@x");
        for _ in 0..3 {
            t.failed(&a, "10.0.0.1".parse().unwrap());
        }
        assert!(t.check_pair(&a, "10.0.0.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_total_budget_covers_sprays_from_many_addresses() {
        let t = throttle();
        for i in 0..8u8 {
            t.failed(&jid(&format!("u{i}@x")), IpAddr::from([10, 0, 1, i]));
        }
        let (fresh, ip) = (jid("fresh@x"), IpAddr::from([10, 0, 2, 1]));
        let wait = t.check_login(&fresh, ip).unwrap_err();
        assert!(
            wait > Duration::from_secs(3500),
            "counted over an hour: {wait:?}"
        );
        assert!(
            t.check_pair(&fresh, ip).is_ok(),
            "warm sessions still served"
        );
    }

    #[test]
    fn the_wide_budgets_cover_sprays() {
        let t = throttle();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for i in 0..5 {
            t.failed(&jid(&format!("u{i}@x")), ip);
        }
        let fresh = jid("fresh@x");
        assert!(
            t.check_pair(&fresh, ip).is_ok(),
            "warm sessions still served"
        );
        assert!(t.check_login(&fresh, ip).is_err());
    }
}
