//! The one entry point `http` calls for a request's stream: the account's warm session when
//! the password matches it, else a fresh login within the failed-login budgets, then a place
//! among the account's requests in flight.
//!
//! Order matters: the account-and-address pair is checked before anything else (so a locked
//! pair learns nothing, whatever the password); a warm match needs no login and so no budget
//! but the pair; a login that the wider budgets would refuse still goes through when its
//! password matches the proof of the account's last successful login (it cannot fail unless
//! the password was changed on the server), once per re-auth interval per account; if it does
//! fail, the proof is forgotten and the exemption with it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio_xmpp::parsers::jid::BareJid;

use super::pool::Login;
use super::throttle::{Failure, LoginThrottle};
use super::{AdminSession, Connector, SessionPool, UpstreamError};
use crate::config::ThrottleConfig;

#[cfg(test)]
mod tests;

/// Why a request gets no stream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccessError {
    /// Too many failed logins for this account or address; try again after this long.
    #[error("too many failed logins")]
    Throttled(Duration),
    /// The server refused the credentials.
    #[error("the XMPP server refused these credentials")]
    Refused,
    /// The server does not serve the account's domain.
    #[error("the XMPP server does not serve the domain {0}")]
    UnknownDomain(String),
    /// The account has as many requests in flight as it may.
    #[error("this account has too many requests in flight")]
    AccountBusy,
    /// The server could not be reached or failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// Warm sessions, logins and the budgets that keep failed logins away from the server.
pub struct Access<L = Connector> {
    pool: SessionPool<L>,
    throttle: LoginThrottle,
}

/// A request's stream and its place among the account's requests in flight (given back when
/// dropped).
#[derive(Debug)]
pub struct Admitted {
    pub session: Arc<AdminSession>,
    _place: OwnedSemaphorePermit,
}

impl<L: Login> Access<L> {
    pub fn new(pool: SessionPool<L>, throttle: ThrottleConfig) -> Self {
        Self {
            pool,
            throttle: LoginThrottle::new(throttle),
        }
    }

    /// A stream for `account` proved by `password`, for a client at `addr`.
    pub async fn session(
        &self,
        account: &BareJid,
        password: &str,
        addr: IpAddr,
    ) -> Result<Admitted, AccessError> {
        let session = self.session_throttled(account, password, addr).await?;
        let place = self
            .pool
            .request_place(account)
            .ok_or(AccessError::AccountBusy)?;
        Ok(Admitted {
            session,
            _place: place,
        })
    }

    async fn session_throttled(
        &self,
        account: &BareJid,
        password: &str,
        addr: IpAddr,
    ) -> Result<Arc<AdminSession>, AccessError> {
        self.throttle
            .check_pair(account, addr)
            .map_err(AccessError::Throttled)?;
        match self.pool.warm(account, password) {
            Some(s) => Ok(s),
            // Boxed: a login (TCP, TLS, SASL, bind) is a future of kilobytes, which every
            // request's future would otherwise carry, and copy, on the warm path too.
            None => Box::pin(self.login(account, password, addr)).await,
        }
    }

    async fn login(
        &self,
        account: &BareJid,
        password: &str,
        addr: IpAddr,
    ) -> Result<Arc<AdminSession>, AccessError> {
        // A quick refusal before queueing for the account's login turn.
        if let Err(wait) = self.throttle.check_login(account, addr, false) {
            if self.throttle.check_login(account, addr, true).is_err()
                || !self.pool.proof_matches(account, password)
            {
                return Err(AccessError::Throttled(wait));
            }
        }
        let proved_before = self.pool.proof_matches(account, password);
        // At the account's turn, right before connecting: the budgets are reserved, not just
        // checked, so logins under way count as failures until they end and requests sent at
        // once cannot all pass a budget with room for one.
        let gate = || match self.throttle.reserve_login(account, addr, false) {
            Ok(r) => Ok(r),
            Err(wait) => {
                if !self.pool.take_exemption(account, password) {
                    return Err(UpstreamError::Throttled(wait));
                }
                tracing::info!(%account, "login past the spent budgets: its password proved itself before");
                self.throttle
                    .reserve_login(account, addr, true)
                    .map_err(UpstreamError::Throttled)
            }
        };
        match self.pool.login_gated(account, password, gate).await {
            Ok(s) => {
                self.throttle.succeeded(account, addr);
                Ok(s)
            }
            Err(UpstreamError::AuthFailed(_)) => {
                tracing::info!(%account, %addr, "login refused");
                self.throttle.failed(account, addr, Failure::Login);
                if proved_before {
                    // The password was changed on the server: the proof proves nothing now.
                    self.pool.forget_proof(account);
                }
                Err(AccessError::Refused)
            }
            Err(UpstreamError::HostUnknown(domain)) => {
                tracing::info!(%account, %addr, "login for a domain the server does not serve");
                self.throttle.failed(account, addr, Failure::AddressOnly);
                Err(AccessError::UnknownDomain(domain))
            }
            Err(UpstreamError::Throttled(wait)) => Err(AccessError::Throttled(wait)),
            Err(e) => {
                tracing::warn!(%account, error = %e, "login failed");
                Err(e.into())
            }
        }
    }

    /// `Err(retry_after)` when the client's address has spent its failure budget (for
    /// requests that present a token, whose failed checks count against the address alone).
    pub fn check_address(&self, addr: IpAddr) -> Result<(), Duration> {
        self.throttle.check_address(addr)
    }

    /// Counts a refused token against the client's address (never the gateway-wide budget: it
    /// did not reach SASL).
    pub fn token_refused(&self, addr: IpAddr) {
        self.throttle.address_failed(addr);
    }

    /// Forgets failed-login records with nothing left in their window.
    pub fn sweep(&self) {
        self.throttle.sweep();
    }

    /// Closes every warm session with `</stream:stream>`, within
    /// [`CLOSE_ALL_BOUND`](super::pool::CLOSE_ALL_BOUND) whatever the server does.
    pub async fn close_all(&self) {
        self.pool.close_all().await;
    }

    /// How many logins were attempted since start.
    pub fn logins(&self) -> u64 {
        self.pool.logins()
    }

    /// Accounts whose warm stream is alive.
    pub fn warm_sessions(&self) -> usize {
        self.pool.warm_sessions()
    }
}

impl Access<Connector> {
    /// Whether each entry of the upstream list answers a stream (never a login), for (and its
    /// TLS verified against) `--domain` (`domain`), else the domain of the account last
    /// logged in: the domain the gateway uses. Before any login without `--domain`, each
    /// entry's host (an SRV entry's domain) stands in for it: a guess, so a server that
    /// answers it `host-unknown` is still serving ([`probed`]). The entries are probed at
    /// once; each answer comes with the entry's label, in the list's order.
    pub async fn probe(&self, domain: Option<&str>) -> Vec<(String, Result<(), UpstreamError>)> {
        let connector = self.pool.connector();
        let known = domain
            .map(str::to_string)
            .or_else(|| self.pool.last_domain());
        let probes = connector
            .upstreams()
            .guesses()
            .enumerate()
            .map(|(i, (label, guess))| {
                let name = known.clone().unwrap_or_else(|| guess.to_string());
                let guessed = known.is_none();
                let label = label.to_string();
                async move {
                    let answer = probed(connector.probe(i, &name).await, guessed);
                    (label, answer)
                }
            });
        futures_util::future::join_all(probes).await
    }
}

/// A probe's answer. `guessed`: the domain probed was the upstream's host, not one the gateway
/// uses; the server saying it does not serve that name has answered a stream all the same.
fn probed(answer: Result<(), UpstreamError>, guessed: bool) -> Result<(), UpstreamError> {
    match answer {
        Err(UpstreamError::HostUnknown(_)) if guessed => Ok(()),
        other => other,
    }
}
