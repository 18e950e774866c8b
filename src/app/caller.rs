//! Who a request acts as, and under which rules: HTTP Basic (the account's own password), or a
//! token (`Authorization: Bearer`, acting as its account with the password from the
//! service-account credentials; or `X-API-Key` / `?api-key=` beside Basic, gating it, as Tigase
//! does). Token decisions come from the access file (`policy`) before anything reaches the
//! server; a failed token check counts against the client's address only (it never reaches
//! SASL, so it must not spend the gateway-wide budget).

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;
use tokio_xmpp::parsers::jid::BareJid;

/// An account: its bare JID.
pub type Account = BareJid;

use super::{App, Failure};
use crate::adhoc::{address, CommandError, Target};
use crate::audit;
use crate::expiring::ExpiringMap;
use crate::policy::{Grant, Refusal};
use crate::rest::CommandRequest;
use crate::upstream::{AccessError, Admitted};

/// What a request presents as its credentials, as the HTTP side read them from its headers.
pub struct Credentials<'a> {
    /// `Authorization: Basic`: the account (normalised, [`account`]) and its password.
    pub basic: Option<(BareJid, String)>,
    /// `Authorization: Bearer SECRET`.
    pub bearer: Option<&'a str>,
    /// `X-API-Key` or `?api-key=`.
    pub api_key: Option<&'a str>,
    /// The client's address (the peer, or what a trusted proxy forwarded).
    pub addr: IpAddr,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account", &self.basic.as_ref().map(|b| &b.0))
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The account a Basic user name names: its bare JID, normalised as XMPP does; a bare
/// localpart takes the operator's default domain (`--domain`).
pub fn account(user: &str, domain: Option<&str>) -> Result<BareJid, Failure> {
    let hint = "the user name must be the account's bare JID, e.g. admin@example.org";
    let unauthorized = |t: String| Failure::Unauthorized(t);
    let user = user.trim();
    let written = match (user.contains('@'), domain) {
        (true, _) => user.to_string(),
        (false, Some(d)) if !user.is_empty() && !user.contains('/') => format!("{user}@{d}"),
        (false, _) => return Err(unauthorized(hint.into())),
    };
    match address::parse_jid(&written) {
        Some(jid) if jid.is_full() => Err(unauthorized(format!("{hint} (without a resource)"))),
        Some(jid) if jid.node().is_some() => Ok(jid.into_bare()),
        _ => Err(unauthorized(hint.into())),
    }
}

/// A request's caller, once its credentials and token (if any) are accepted.
pub struct Caller {
    /// The account the request runs as.
    pub(super) account: BareJid,
    password: String,
    pub(super) grant: Grant,
    addr: IpAddr,
    /// Acting as a token's service account (its password from the credentials file).
    service: bool,
}

impl Caller {
    /// Asks the access rules about the credentials, before anything reaches the server.
    pub(super) fn admit(gw: &App, creds: Credentials<'_>) -> Result<Caller, Failure> {
        let Credentials {
            basic,
            bearer,
            api_key,
            addr,
        } = creds;
        if let Some((account, _)) = &basic {
            audit::note_account(account);
        }
        let api_key = api_key.filter(|k| !k.is_empty());
        if bearer.is_some() || api_key.is_some() {
            gw.access.check_address(addr).map_err(Failure::Throttled)?;
        }
        let grant = gw
            .policy
            .admit(bearer, api_key, basic.as_ref().map(|c| &c.0), addr)
            .inspect_err(|r| {
                if matches!(r, Refusal::InvalidToken(_)) {
                    gw.access.token_refused(addr);
                }
            })?;
        if let Some(name) = &grant.token {
            audit::note_token(name);
        }
        let (account, password) = match basic {
            Some(c) => c,
            None => {
                let account = grant.bearer_account.clone().ok_or_else(|| {
                    Refusal::Forbidden("this token names no account to act as".into())
                })?;
                audit::note_account(&account);
                if let Err(wait) = gw.service_refused.may_try(&account) {
                    return Err(Refusal::Forbidden(format!(
                        "the XMPP server refused the service password of {account}, the token's \
                         account; one login is tried again in {} s (if the password changed, \
                         fix the credentials file and restart the gateway)",
                        wait.as_secs().max(1)
                    ))
                    .into());
                }
                let password = gw.service.password(&account).ok_or_else(|| {
                    Refusal::Forbidden(format!(
                        "the gateway holds no password for {account}, the token's account \
                         (--credentials-file)"
                    ))
                })?;
                (account, password.to_string())
            }
        };
        Ok(Caller {
            service: bearer.is_some(),
            account,
            password,
            grant,
            addr,
        })
    }

    /// The caller's stream: the warm session of the account, or a fresh login within the
    /// failed-login budgets of the client's address.
    pub(super) async fn stream(&self, gw: &App) -> Result<Admitted, Failure> {
        let session = gw
            .access
            .session(&self.account, &self.password, self.addr)
            .await;
        if self.service {
            match &session {
                Err(AccessError::Refused) => {
                    let wait = gw.service_refused.refused(&self.account);
                    tracing::error!(
                        account = %self.account,
                        retry_in_s = wait.as_secs(),
                        "the XMPP server refused the service password of a token's account; its \
                         tokens are refused until one login is tried again"
                    );
                }
                Ok(_) => gw.service_refused.recovered(&self.account),
                Err(_) => {}
            }
        }
        Ok(session?)
    }

    /// Whether the caller's rules let it run `node` at these domains.
    pub(super) fn may_run(
        &self,
        gw: &App,
        node: &str,
        domains: &[&str],
    ) -> Result<(), CommandError> {
        gw.policy
            .may_run(&self.grant, &self.account, node, domains)
            .map_err(|r| CommandError::Refused(r.to_string()))
    }

    /// Whether the caller's rules let it address these domains at all.
    pub(super) fn may_address(&self, gw: &App, domains: &[&str]) -> Result<(), Failure> {
        Ok(gw.policy.may_address(&self.grant, domains)?)
    }

    /// Whether a listed command is shown to the caller.
    pub(super) fn shows(&self, gw: &App, node: &str) -> bool {
        gw.policy.shows(&self.grant, &self.account, node)
    }
}

/// Service accounts whose password the server refused. A token of such an account is refused
/// (403) without a login until its back-off is over; then one request tries one login: if the
/// server takes it (the account re-created, its password set back) the tokens work again, if
/// not the back-off doubles. The first back-off is `--throttle-window`, the longest an hour:
/// a stale credentials file costs the server at most one failed login per window and account,
/// far within the per-account budget, and fewer and fewer after.
pub(super) struct RefusedServices {
    accounts: ExpiringMap<BareJid, Backoff>,
    first: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    /// When the next login may be tried.
    due: Instant,
    /// The wait after the last refusal (zero: none yet).
    wait: Duration,
}

/// The longest back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

impl RefusedServices {
    pub(super) fn new(first: Duration) -> Self {
        Self {
            // Kept past the longest back-off, so a doubled wait is remembered; one forgotten
            // after that is tried again at once, which a due one would be anyway.
            accounts: ExpiringMap::new(MAX_BACKOFF * 2, 10_000),
            first: first.min(MAX_BACKOFF),
        }
    }

    /// Whether a token of `account` may log in now; else how long until it may. A due account
    /// gets one try: the next is due a whole back-off later unless this one succeeds.
    pub(super) fn may_try(&self, account: &BareJid) -> Result<(), Duration> {
        let now = Instant::now();
        self.accounts
            .update(account, |b| {
                if now >= b.due {
                    b.due = now + b.wait;
                    Ok(())
                } else {
                    Err(b.due - now)
                }
            })
            .unwrap_or(Ok(()))
    }

    /// The server refused `account`'s service password: its back-off (the first, or double
    /// the last), returned.
    pub(super) fn refused(&self, account: &BareJid) -> Duration {
        let now = Instant::now();
        let zero = || Backoff {
            due: now,
            wait: Duration::ZERO,
        };
        let (wait, _) = self.accounts.upsert(account.clone(), zero, |b| {
            b.wait = match b.wait {
                Duration::ZERO => self.first,
                w => (w * 2).min(MAX_BACKOFF),
            };
            b.due = now + b.wait;
            b.wait
        });
        wait
    }

    /// `account` logged in: its tokens work again.
    pub(super) fn recovered(&self, account: &BareJid) {
        self.accounts.remove(account);
    }

    pub(super) fn sweep(&self) {
        self.accounts.sweep();
    }
}

/// The domains a request addresses: the URL JID's, and that of every JID-valued field (any
/// value that is an account JID, or a bare domain with a dot in it: `example.org`, not
/// `maintenance`).
pub(super) fn target_domains(target: &Target, req: &CommandRequest) -> Vec<String> {
    let mut domains = vec![target.to.domain().to_string()];
    let values = req
        .fields
        .iter()
        .flat_map(|f| f.value.as_ref().map(|v| v.as_slice()).unwrap_or_default());
    for v in values {
        let v = v.trim();
        let jid = address::parse_jid(v).filter(|j| j.node().is_some() || v.contains('.'));
        if let Some(jid) = jid {
            let d = jid.domain().to_string();
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
    }
    domains
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    #[test]
    fn a_basic_user_name_with_a_final_dot_is_the_same_account() {
        for user in [
            "admin@example.org.",
            "Admin@Example.org",
            "admin@example.org",
        ] {
            assert_eq!(
                account(user, None).unwrap(),
                jid("admin@example.org"),
                "{user}"
            );
        }
        assert_eq!(
            account("admin", Some("example.org.")).unwrap(),
            jid("admin@example.org")
        );
    }

    /// One login per back-off, the back-off doubling up to an hour, and a login that succeeds
    /// ends it: on tokio's paused clock.
    #[tokio::test(start_paused = true)]
    async fn a_refused_service_account_is_tried_again_after_a_growing_back_off() {
        let window = Duration::from_secs(300);
        let r = RefusedServices::new(window);
        let (svc, other) = (jid("svc@example.org"), jid("other@example.org"));
        assert_eq!(r.may_try(&svc), Ok(()), "never refused: tried");
        assert_eq!(r.refused(&svc), window);
        assert_eq!(r.may_try(&svc), Err(window));
        assert_eq!(r.may_try(&other), Ok(()), "per account");
        tokio::time::advance(window - Duration::from_secs(1)).await;
        assert_eq!(r.may_try(&svc), Err(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(r.may_try(&svc), Ok(()), "due: one try");
        assert!(r.may_try(&svc).is_err(), "and only one");
        assert_eq!(r.refused(&svc), window * 2, "refused again: twice as long");
        assert_eq!(r.refused(&svc), window * 4);
        for _ in 0..10 {
            r.refused(&svc);
        }
        assert_eq!(r.refused(&svc), MAX_BACKOFF, "at most an hour");
        tokio::time::advance(MAX_BACKOFF).await;
        assert_eq!(r.may_try(&svc), Ok(()));
        r.recovered(&svc);
        assert_eq!(r.may_try(&svc), Ok(()), "logged in: its tokens work");
        assert_eq!(r.may_try(&svc), Ok(()));
        assert_eq!(
            r.refused(&svc),
            window,
            "a new refusal starts from the first back-off"
        );
    }
}
