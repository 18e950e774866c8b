//! The warm c2s sessions, one per account. A request whose credentials match a live session
//! that proved its password recently is served on it without a login; anything else (first
//! use, another password, a dead stream, a proof older than the re-auth interval) logs in
//! afresh, and a successful login replaces the account's session. Passwords are never kept:
//! only an HMAC under a key drawn at start, compared in constant time.
//!
//! An account has a slot here only while it has a session or a login under way: a login that
//! fails (refused, throttled, the server down, the request gone) leaves nothing behind, so a
//! client trying account names cannot grow the pool.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::hmac;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_xmpp::parsers::jid::BareJid;

use super::connect::LoggedIn;
use super::session::own::OwnStreams;
use super::session::CloseOutcome;
use super::{AdminSession, Connector, UpstreamError};
use crate::config::PoolConfig;
use crate::metrics::LoginOutcome;

#[cfg(test)]
mod tests;

/// How long `close_all` may take in all; streams not closed by then are dropped unclosed.
pub const CLOSE_ALL_BOUND: Duration = Duration::from_secs(5);

/// How the pool opens a stream for an account: the [`Connector`] in the gateway, a scripted
/// fake in tests. A type parameter rather than a trait object, so the gateway's path stays a
/// direct call.
pub trait Login: Send + Sync + 'static {
    /// Connects, authenticates as `account` with `password` and binds `resource`.
    fn login(
        &self,
        account: &BareJid,
        password: &str,
        resource: &str,
    ) -> impl Future<Output = Result<LoggedIn, UpstreamError>> + Send;
}

impl Login for Connector {
    fn login(
        &self,
        account: &BareJid,
        password: &str,
        resource: &str,
    ) -> impl Future<Output = Result<LoggedIn, UpstreamError>> + Send {
        Connector::login(self, account, password, resource)
    }
}

/// The warm sessions of every account that used the gateway.
pub struct SessionPool<L = Connector> {
    connector: L,
    cfg: PoolConfig,
    key: hmac::Key,
    accounts: Mutex<HashMap<BareJid, Arc<AccountSlot>>>,
    logins: AtomicU64,
    /// Fresh logins under way at once, whatever the account (each is a connection to the
    /// server). Taken only once the account's own login turn has come, so that a queue of
    /// one account's logins never holds every place.
    login_places: Semaphore,
    /// The domain of the last account logged in (the readiness probe's TLS name when no
    /// `--domain` is given).
    last_domain: Mutex<Option<String>>,
    /// How the streams' resources are named and known again (marked under the replica key).
    own: OwnStreams,
}

/// One account's session and the lock that keeps its logins one at a time.
struct AccountSlot {
    login: tokio::sync::Mutex<()>,
    warm: Mutex<Option<Warm>>,
    /// When a request last used the account (for closing the least recently used).
    used: Mutex<Instant>,
    /// The account's requests in flight, once their password is proved.
    requests: Arc<Semaphore>,
    /// When a login last went past the throttle on the strength of the proof.
    exempted_at: Mutex<Option<Instant>>,
}

impl AccountSlot {
    fn new(requests: usize) -> Self {
        Self {
            login: tokio::sync::Mutex::new(()),
            warm: Mutex::new(None),
            used: Mutex::new(Instant::now()),
            requests: Arc::new(Semaphore::new(requests)),
            exempted_at: Mutex::new(None),
        }
    }

    fn touch(&self) {
        if let Ok(mut u) = self.used.lock() {
            *u = Instant::now();
        }
    }

    fn last_used(&self) -> Instant {
        self.used
            .lock()
            .map(|u| *u)
            .unwrap_or_else(|_| Instant::now())
    }
}

struct Warm {
    session: Arc<AdminSession>,
    /// HMAC of the password the session was opened with.
    proof: hmac::Tag,
    proved_at: Instant,
}

impl<L: Login> SessionPool<L> {
    pub fn new(connector: L, cfg: PoolConfig) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system randomness");
        Self {
            connector,
            cfg,
            key,
            accounts: Mutex::new(HashMap::new()),
            logins: AtomicU64::new(0),
            login_places: Semaphore::new(cfg.max_logins),
            last_domain: Mutex::new(None),
            own: OwnStreams::default(),
        }
    }

    /// The same pool naming its streams' resources by `own` (a mark under the replica key).
    pub fn with_own_streams(self, own: OwnStreams) -> Self {
        Self { own, ..self }
    }

    /// How the pool's streams (and, with a replica key, every replica's) are known.
    pub fn own_streams(&self) -> &OwnStreams {
        &self.own
    }

    /// Whether `password` is the one the account last logged in with (whatever the state of
    /// that stream or the age of the proof).
    pub fn proof_matches(&self, account: &BareJid, password: &str) -> bool {
        let Some(slot) = self.existing(account) else {
            return false;
        };
        let warm = slot.warm.lock().unwrap_or_else(|e| e.into_inner());
        warm.as_ref().is_some_and(|w| {
            hmac::verify(&self.key, &secret(account, password), w.proof.as_ref()).is_ok()
        })
    }

    /// Spends the account's exemption from the login throttle when `password` matches the
    /// proof and no exemption was spent within the re-auth interval.
    pub fn take_exemption(&self, account: &BareJid, password: &str) -> bool {
        if !self.proof_matches(account, password) {
            return false;
        }
        let Some(slot) = self.existing(account) else {
            return false;
        };
        let mut at = slot.exempted_at.lock().unwrap_or_else(|e| e.into_inner());
        if at.is_some_and(|t| t.elapsed() < self.cfg.reauth_interval) {
            return false;
        }
        *at = Some(Instant::now());
        true
    }

    /// Forgets the account's proof (its password no longer logs in), and the exemption with it.
    pub fn forget_proof(&self, account: &BareJid) {
        if let Some(slot) = self.existing(account) {
            let old = slot.warm.lock().unwrap_or_else(|e| e.into_inner()).take();
            *slot.exempted_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
            drop(old);
            self.forget_if_unused(account, &slot);
        }
    }

    /// A place among the account's requests in flight, or `None` at its limit.
    pub fn request_place(&self, account: &BareJid) -> Option<OwnedSemaphorePermit> {
        self.slot(account).requests.clone().try_acquire_owned().ok()
    }

    /// The account's live session, if `password` is the one it was opened with and that
    /// proof is recent enough.
    pub fn warm(&self, account: &BareJid, password: &str) -> Option<Arc<AdminSession>> {
        let slot = self.accounts.lock().ok()?.get(account).cloned()?;
        self.warm_in(&slot, account, password)
    }

    fn warm_in(
        &self,
        slot: &AccountSlot,
        account: &BareJid,
        password: &str,
    ) -> Option<Arc<AdminSession>> {
        let warm = slot.warm.lock().ok()?;
        let w = warm.as_ref()?;
        let fresh = w.proved_at.elapsed() < self.cfg.reauth_interval;
        let same = hmac::verify(&self.key, &secret(account, password), w.proof.as_ref()).is_ok();
        let usable = fresh && same && w.session.is_alive();
        if usable {
            slot.touch();
        }
        usable.then(|| w.session.clone())
    }

    /// Logs in as `account` (one login at a time per account; a login that another request
    /// just completed with the same password is reused) and makes it the account's session.
    pub async fn login(
        &self,
        account: &BareJid,
        password: &str,
    ) -> Result<Arc<AdminSession>, UpstreamError> {
        self.login_gated(account, password, || Ok(())).await
    }

    /// As [`login`](Self::login), asking `gate` at the account's turn, right before
    /// connecting (not when a login just completed serves): its `Err` is the answer, its `Ok`
    /// value is held until the login ends (the throttle's reservation).
    pub async fn login_gated<G>(
        &self,
        account: &BareJid,
        password: &str,
        gate: impl FnOnce() -> Result<G, UpstreamError>,
    ) -> Result<Arc<AdminSession>, UpstreamError> {
        let slot = self.slot(account);
        // Declared before the login lock, so dropped after it: whichever way this ends.
        let _tried = Tried {
            pool: self,
            account,
            slot: &slot,
        };
        let _one_at_a_time = slot.login.lock().await;
        if let Some(s) = self.warm_in(&slot, account, password) {
            return Ok(s);
        }
        let _gate = gate()?;
        let _place = self
            .login_places
            .acquire()
            .await
            .map_err(|_| UpstreamError::Closed("the gateway is shutting down".into()))?;
        let resource = self.own.resource(account);
        self.logins.fetch_add(1, Ordering::Relaxed);
        let logged_in = self.connector.login(account, password, &resource).await;
        crate::metrics::login(match &logged_in {
            Ok(_) => LoginOutcome::Ok,
            Err(UpstreamError::AuthFailed(_)) => LoginOutcome::Refused,
            Err(_) => LoginOutcome::Error,
        });
        let logged_in = logged_in?;
        if let Ok(mut d) = self.last_domain.lock() {
            if d.as_deref() != Some(account.domain().as_str()) {
                *d = Some(account.domain().to_string());
            }
        }
        tracing::info!(account = %account, "logged in");
        let session = Arc::new(
            AdminSession::start(logged_in, self.cfg.session_in_flight)
                .with_max_stanza(self.cfg.max_stanza_bytes),
        );
        let warm = Warm {
            session: session.clone(),
            proof: hmac::sign(&self.key, &secret(account, password)),
            proved_at: Instant::now(),
        };
        // The replaced session closes itself once its in-flight requests let go of it.
        if let Ok(mut w) = slot.warm.lock() {
            *w = Some(warm);
        }
        slot.touch();
        self.evict_beyond_limit(account);
        Ok(session)
    }

    /// Closes the least recently used accounts' streams while more than `max_sessions` are
    /// warm (never `keep`'s). Requests awaiting answers on them get them first, within
    /// the pool's `eviction_drain` (`--request-timeout`); each close is then bounded by
    /// [`CLOSE_BOUND`](super::session::CLOSE_BOUND).
    fn evict_beyond_limit(&self, keep: &BareJid) {
        let evicted: Vec<Arc<AccountSlot>> = {
            let Ok(mut accounts) = self.accounts.lock() else {
                return;
            };
            let mut out = Vec::new();
            while accounts.len() > self.cfg.max_sessions {
                let oldest = accounts
                    .iter()
                    .filter(|(a, _)| *a != keep)
                    .min_by_key(|(_, s)| s.last_used())
                    .map(|(a, _)| a.clone());
                match oldest.and_then(|a| accounts.remove(&a)) {
                    Some(slot) => out.push(slot),
                    None => break,
                }
            }
            out
        };
        let drain = self.cfg.eviction_drain;
        for slot in evicted {
            let session = slot.warm.lock().ok().and_then(|mut w| w.take());
            if let Some(w) = session {
                tracing::info!(
                    account = %w.session.jid().to_bare(),
                    "closing the least recently used session"
                );
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(drain, w.session.idle()).await;
                    w.session.close().await
                });
            }
        }
    }

    /// The domain of the account the pool last logged in.
    pub fn last_domain(&self) -> Option<String> {
        self.last_domain.lock().ok()?.clone()
    }

    /// The connector the pool logs in with.
    pub fn connector(&self) -> &L {
        &self.connector
    }

    /// Accounts whose warm stream is alive.
    pub fn warm_sessions(&self) -> usize {
        let Ok(accounts) = self.accounts.lock() else {
            return 0;
        };
        accounts
            .values()
            .filter(|slot| {
                slot.warm
                    .lock()
                    .is_ok_and(|w| w.as_ref().is_some_and(|w| w.session.is_alive()))
            })
            .count()
    }

    /// How many logins the pool has attempted since start.
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// Closes every warm session with `</stream:stream>`, all at once and within
    /// [`CLOSE_ALL_BOUND`] in all; the streams whose server did not close them in time are
    /// dropped unclosed, and named in the log.
    pub async fn close_all(&self) {
        let slots: Vec<_> = {
            let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
            accounts.drain().map(|(_, s)| s).collect()
        };
        let sessions: Vec<_> = slots
            .iter()
            .filter_map(|s| {
                let mut warm = s.warm.lock().unwrap_or_else(|e| e.into_inner());
                warm.take().map(|w| w.session)
            })
            .collect();
        let closes = sessions.iter().map(|s| async move {
            match tokio::time::timeout(CLOSE_ALL_BOUND, s.close()).await {
                Ok(CloseOutcome::Closed) => None,
                Ok(CloseOutcome::Abandoned) => Some(s.jid().to_bare()),
                Err(_) => {
                    s.abandon();
                    Some(s.jid().to_bare())
                }
            }
        });
        let abandoned: Vec<String> = futures_util::future::join_all(closes)
            .await
            .into_iter()
            .flatten()
            .map(|a| a.to_string())
            .collect();
        if !abandoned.is_empty() {
            tracing::warn!(
                accounts = %abandoned.join(","),
                "upstream streams dropped without a clean close: the server did not close them in time"
            );
        }
    }

    fn slot(&self, account: &BareJid) -> Arc<AccountSlot> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let per_account = self.cfg.max_in_flight_per_account;
        accounts
            .entry(account.clone())
            .or_insert_with(|| Arc::new(AccountSlot::new(per_account)))
            .clone()
    }

    fn existing(&self, account: &BareJid) -> Option<Arc<AccountSlot>> {
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts.get(account).cloned()
    }

    /// Takes out `slot` when nothing is left in it: no session, no request holding a place, and
    /// no one but the map and the caller holding it (the accounts' lock keeps anyone from
    /// taking it meanwhile; a login queued behind the caller's holds it, and cleans up after).
    fn forget_if_unused(&self, account: &BareJid, slot: &Arc<AccountSlot>) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let unused = accounts.get(account).is_some_and(|s| Arc::ptr_eq(s, slot))
            && Arc::strong_count(slot) == 2
            && slot.warm.lock().is_ok_and(|w| w.is_none())
            && slot.requests.available_permits() == self.cfg.max_in_flight_per_account;
        if unused {
            accounts.remove(account);
        }
    }
}

/// A login's hold on its account's slot: when it ends without a session in the slot (refused,
/// throttled, failed, dropped), the slot goes unless someone else still uses it.
struct Tried<'a, L: Login> {
    pool: &'a SessionPool<L>,
    account: &'a BareJid,
    slot: &'a Arc<AccountSlot>,
}

impl<L: Login> Drop for Tried<'_, L> {
    fn drop(&mut self) {
        self.pool.forget_if_unused(self.account, self.slot);
    }
}

fn secret(account: &BareJid, password: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(account.as_str().len() + 1 + password.len());
    v.extend_from_slice(account.as_str().as_bytes());
    v.push(0);
    v.extend_from_slice(password.as_bytes());
    v
}
