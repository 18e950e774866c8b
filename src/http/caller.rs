//! Who a request acts as, and under which rules: HTTP Basic (the account's own password), or a
//! token (`Authorization: Bearer`, acting as its account with the password from the
//! service-account credentials; or `X-API-Key` / `?api-key=` beside Basic, gating it, as Tigase
//! does). Token decisions come from the access file (`policy`) before anything reaches the
//! server; a failed token check counts against the client's address only (it never reaches
//! SASL, so it must not spend the gateway-wide budget).

use std::net::IpAddr;

use axum::http::HeaderMap;
use tokio_xmpp::parsers::jid::BareJid;

use super::error::ApiError;
use super::{auth, Gateway, Peer};
use crate::adhoc::{address, CommandError, Target};
use crate::audit;
use crate::policy::{Grant, Refusal};
use crate::rest::CommandRequest;
use crate::upstream::{AccessError, Admitted};

/// A request's caller, once its credentials and token (if any) are accepted.
pub struct Caller {
    /// The account the request runs as.
    pub account: BareJid,
    password: String,
    pub grant: Grant,
    pub addr: IpAddr,
    /// Acting as a token's service account (its password from the credentials file).
    service: bool,
}

impl Caller {
    /// Reads the credentials and asks the access rules, from the headers alone.
    pub fn admit(
        gw: &Gateway,
        peer: Peer,
        headers: &HeaderMap,
        api_key_param: Option<&str>,
    ) -> Result<Caller, ApiError> {
        let addr = auth::client_addr(peer.0, headers, &gw.cfg.trusted_proxies);
        let bearer = auth::bearer(headers);
        let basic = match bearer {
            Some(_) => None,
            None => Some(auth::credentials(headers, gw.cfg.domain.as_deref())?),
        };
        if let Some(c) = &basic {
            audit::note_account(&c.account);
        }
        let api_key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .or(api_key_param)
            .filter(|k| !k.is_empty());
        if bearer.is_some() || api_key.is_some() {
            gw.access.check_address(addr).map_err(ApiError::throttled)?;
        }
        let grant = gw
            .policy
            .admit(bearer, api_key, basic.as_ref().map(|c| &c.account), addr)
            .inspect_err(|r| {
                if matches!(r, Refusal::InvalidToken(_)) {
                    gw.access.token_refused(addr);
                }
            })?;
        if let Some(name) = &grant.token {
            audit::note_token(name);
        }
        let (account, password) = match basic {
            Some(c) => (c.account, c.password),
            None => {
                let account = grant.bearer_account.clone().ok_or_else(|| {
                    Refusal::Forbidden("this token names no account to act as".into())
                })?;
                audit::note_account(&account);
                if refused_service(gw).contains(&account) {
                    return Err(Refusal::Forbidden(format!(
                        "the XMPP server refused the service password of {account}, the token's \
                         account: fix the credentials file and restart the gateway"
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
    pub async fn stream(&self, gw: &Gateway) -> Result<Admitted, ApiError> {
        let session = gw
            .access
            .session(&self.account, &self.password, self.addr)
            .await;
        if self.service && matches!(session, Err(AccessError::Refused)) {
            tracing::error!(
                account = %self.account,
                "the XMPP server refused the service password of a token's account; its \
                 tokens are refused until the credentials file is fixed and the gateway restarted"
            );
            refused_service(gw).insert(self.account.clone());
        }
        Ok(session?)
    }

    /// Whether the caller's rules let it run `node` at these domains.
    pub fn may_run(&self, gw: &Gateway, node: &str, domains: &[&str]) -> Result<(), CommandError> {
        gw.policy
            .may_run(&self.grant, &self.account, node, domains)
            .map_err(|r| CommandError::Refused(r.to_string()))
    }

    /// Whether the caller's rules let it address these domains at all.
    pub fn may_address(&self, gw: &Gateway, domains: &[&str]) -> Result<(), ApiError> {
        Ok(gw.policy.may_address(&self.grant, domains)?)
    }

    /// Whether a listed command is shown to the caller.
    pub fn shows(&self, gw: &Gateway, node: &str) -> bool {
        gw.policy.shows(&self.grant, &self.account, node)
    }
}

fn refused_service(gw: &Gateway) -> std::sync::MutexGuard<'_, std::collections::HashSet<BareJid>> {
    gw.service_refused.lock().unwrap_or_else(|e| e.into_inner())
}

/// The domains a request addresses: the URL JID's, and that of every JID-valued field (any
/// value that is an account JID, or a bare domain with a dot in it: `example.org`, not
/// `maintenance`).
pub fn target_domains(target: &Target, req: &CommandRequest) -> Vec<String> {
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
