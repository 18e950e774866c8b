//! The application layer: the gateway's use cases as typed operations, the one thing `http`
//! calls. Who a caller is (Basic, Bearer, api-key; the policy's decision; the login within the
//! failed-login budgets: [`caller`]), run, list, continue and cancel a command ([`App::run`],
//! [`App::list`]), relay one stanza ([`stanza`], `/rest/stream/`), the REST resources
//! ([`resources`]: sessions, users, announce), readiness. Below it `adhoc` (XEP-0050) and
//! `upstream` (the XMPP side); above it `http`, which sees only these operations, their
//! arguments (`rest`'s documents, strings from the URL) and [`Failure`].

pub mod caller;
mod failure;
pub mod resources;
pub mod stanza;

use std::sync::Arc;
use std::time::Duration;

use crate::adhoc::{self, CommandStream, Commands, Target};
use crate::config::Config;
use crate::policy::{Policy, ServiceCredentials};
use crate::rest::{CommandItem, CommandRequest, CommandResponse};
use crate::upstream::probe::{Readiness, FRESH_FOR};
use crate::upstream::{Access, UpstreamError};
pub use caller::{Caller, Credentials};
pub use failure::{condition_name, DefinedCondition, ErrorType, Failure};

/// How long a readiness answer is kept (the `Retry-After` of a 503 from `/readyz`).
pub const READINESS_FRESH_FOR: Duration = FRESH_FOR;

/// The upstream list's readiness: every entry that does not serve, with the reason, in the
/// list's order (empty when all of them do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub down: Vec<(String, String)>,
}

impl Ready {
    /// `Ok` when any entry serves; else `NotReady` with the reason (a single entry's alone, as
    /// before the list; with several, each entry's after its label).
    fn from_probes(probes: Vec<(String, Result<(), UpstreamError>)>) -> Result<Ready, Failure> {
        let serving = probes.iter().any(|(_, r)| r.is_ok());
        let down: Vec<(String, String)> = probes
            .into_iter()
            .filter_map(|(label, r)| r.err().map(|e| (label, e.to_string())))
            .collect();
        if serving {
            return Ok(Ready { down });
        }
        let reason = match down.as_slice() {
            [(_, only)] => only.clone(),
            all => all
                .iter()
                .map(|(label, why)| format!("{label}: {why}"))
                .collect::<Vec<_>>()
                .join("; "),
        };
        Err(Failure::NotReady(reason))
    }
}

/// Whether a command that failed with `error` did its work: a delete-user naming only the
/// caller's own account, after which the server ended the caller's stream with the stream
/// error it ends a deleted account's streams with (Prosody `not-authorized`, "Account deleted";
/// ejabberd `conflict`, "User removed"; decided on the XML names, never the words). The
/// command's answer went down with the stream, but the deletion happened: the client is told
/// so, not 502. With other accounts named too, which of them were deleted is unknown: 502.
fn deleted_itself(
    account: &caller::Account,
    request: &CommandRequest,
    error: &adhoc::CommandError,
) -> bool {
    let adhoc::CommandError::Upstream(UpstreamError::StreamError { condition, .. }) = error else {
        return false;
    };
    let named: Vec<&str> = request
        .fields
        .iter()
        .filter(|f| f.var == "accountjids" || f.var == "accountjid")
        .flat_map(|f| f.value.as_ref().map(|v| v.as_slice()).unwrap_or_default())
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    request.node.as_deref().map(str::trim) == Some(adhoc::DELETE_USER)
        && matches!(condition.as_str(), "not-authorized" | "conflict")
        && named.len() == 1
        && adhoc::address::parse_jid(named[0]).is_some_and(|j| j.to_bare() == *account)
}

/// The answer of a delete-user that deleted the caller's own account ([`deleted_itself`]).
fn deleted_itself_doc(jid: &str, account: &caller::Account) -> CommandResponse {
    CommandResponse {
        jid: jid.to_owned(),
        node: adhoc::DELETE_USER.to_owned(),
        note: Some(crate::rest::Note {
            type_: "info".into(),
            value: format!(
                "{account} was deleted; the server ended the gateway's stream of that account \
                 with it"
            ),
        }),
        ..CommandResponse::default()
    }
}

/// The gateway's state below HTTP, shared by every request.
pub struct App {
    cfg: Config,
    access: Access,
    commands: Commands,
    /// Tokens and per-command rules (everything allowed without an access file).
    policy: Arc<Policy>,
    /// The passwords of the accounts Bearer tokens act as.
    service: ServiceCredentials,
    /// Service accounts whose password the server refused: one login tried again after a
    /// back-off, so a stale credentials file cannot spend the failed-login budgets request by
    /// request, and the account's tokens work again by themselves once it can log in.
    service_refused: caller::RefusedServices,
    /// The accounts' budgets for `POST /rest/stream/`.
    stream_rates: stanza::StreamRates,
    /// The IQ payloads `POST /rest/stream/` relays.
    stream_iq_allow: stanza::IqAllowList,
    /// The last readiness probe's answer (`GET /readyz`).
    readiness: Readiness<Result<Ready, Failure>>,
}

impl App {
    pub fn new(cfg: Config, access: Access) -> Self {
        if cfg.domain.is_none() {
            tracing::info!(
                "no --domain: readiness (/readyz) cannot check that the XMPP server serves your \
                 domain; it probes the domain of the account last logged in, before any login \
                 the --upstream host (a server answering it host-unknown counts as serving)"
            );
        }
        Self {
            commands: Commands::new(cfg.command_idle),
            stream_rates: stanza::StreamRates::new(cfg.stream_rate),
            service_refused: caller::RefusedServices::new(cfg.throttle.window),
            stream_iq_allow: stanza::IqAllowList::new(&cfg.stream_iq_allow),
            access,
            cfg,
            policy: Arc::new(Policy::open()),
            service: ServiceCredentials::none(),
            readiness: Readiness::new(FRESH_FOR),
        }
    }

    /// The same application under these rules, with these service-account passwords.
    pub fn with_policy(self, policy: Arc<Policy>, service: ServiceCredentials) -> Self {
        Self {
            policy,
            service,
            ..self
        }
    }

    /// Who a request acts as, under which rules, from its credentials alone: nothing reaches
    /// the server.
    pub fn admit(&self, creds: Credentials<'_>) -> Result<Caller, Failure> {
        Caller::admit(self, creds)
    }

    /// Runs the command a client asked for at the URL's JID `jid`: a first execute, or the
    /// next step of a kept one (`sessionid`). The caller's rules are asked before a login.
    /// `keep`: a command left executing stays open for the client (multi-stage).
    pub async fn run(
        &self,
        caller: &Caller,
        jid: &str,
        request: &CommandRequest,
        keep: bool,
    ) -> Result<CommandResponse, Failure> {
        crate::audit::note_node(request.node.as_deref().unwrap_or_default());
        crate::audit::note_action(request.action.as_deref().unwrap_or("execute"));
        let target = self.target(jid)?;
        let domains = caller::target_domains(&target, request);
        let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
        let guard = |node: &str| caller.may_run(self, node, &domains);
        if let Some(node) = request.node.as_deref().filter(|n| !n.is_empty()) {
            // Refused before a login: a token's rules cost the server nothing.
            guard(node)?;
        }
        let admitted = caller.stream(self).await?;
        let stream: Arc<dyn CommandStream> = admitted.session.clone();
        let call = adhoc::Call {
            stream: &stream,
            account: &caller.account,
            target: &target,
            keep,
            max_jids: self.cfg.max_jids,
            guard: &guard,
        };
        match self.commands.run(&call, request).await {
            Ok(answered) => Ok(answered.doc),
            Err(e) if deleted_itself(&caller.account, request, &e) => {
                Ok(deleted_itself_doc(jid, &caller.account))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The commands the URL's JID `jid` offers to the caller, only those its rules let it run.
    pub async fn list(&self, caller: &Caller, jid: &str) -> Result<Vec<CommandItem>, Failure> {
        crate::audit::note_action("list");
        let target = self.target(jid)?;
        caller.may_address(self, &[target.to.domain().as_str()])?;
        let admitted = caller.stream(self).await?;
        let stream: Arc<dyn CommandStream> = admitted.session.clone();
        let mut items = adhoc::registry::list_commands(&stream, &target).await?;
        items.retain(|i| caller.shows(self, &i.node));
        Ok(items)
    }

    /// Whether the XMPP server answers a stream on any entry of the upstream list (cached for
    /// [`READINESS_FRESH_FOR`]), and which entries do not; the reasons when none does.
    pub async fn ready(&self) -> Result<Ready, Failure> {
        let domain = self.cfg.domain.as_deref();
        self.readiness
            .check(|| async { Ready::from_probes(self.access.probe(domain).await) })
            .await
    }

    /// Accounts whose warm stream is alive.
    pub fn warm_sessions(&self) -> usize {
        self.access.warm_sessions()
    }

    /// Closes every warm stream, bounded in time whatever the server does.
    pub async fn close_all(&self) {
        self.access.close_all().await;
    }

    /// The one sweeper of every cache (learnt forms, kept command sessions, recently ended
    /// sessions, failed logins, stanza budgets): runs until the task is dropped, which `main`
    /// does at shutdown.
    pub async fn sweep_every(self: Arc<Self>, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.commands.sweep();
            self.access.sweep();
            self.stream_rates.sweep();
            self.service_refused.sweep();
        }
    }

    /// The URL's JID, with the operator's aliases (`sess-man`).
    fn target(&self, jid: &str) -> Result<Target, Failure> {
        Ok(Target::resolve(jid, &self.cfg.aliases)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::{FieldValue, RequestField};

    fn delete(node: &str, accounts: &[&str]) -> CommandRequest {
        CommandRequest {
            node: Some(node.into()),
            fields: vec![RequestField {
                var: "accountjids".into(),
                value: Some(FieldValue::List(
                    accounts.iter().map(|a| a.to_string()).collect(),
                )),
            }],
            ..CommandRequest::default()
        }
    }

    #[test]
    fn readiness_is_any_entry_serving_and_names_those_that_do_not() {
        let down = |e: &str| Err(UpstreamError::Unreachable(e.into()));
        let probes = vec![
            ("a:5222".to_string(), down("refused")),
            ("b:5222".to_string(), Ok(())),
        ];
        let ready = Ready::from_probes(probes).expect("b serves");
        assert_eq!(
            ready.down,
            [(
                "a:5222".to_string(),
                "the XMPP server is unreachable: refused".to_string()
            )]
        );
        let all_down = vec![
            ("a:5222".to_string(), down("refused")),
            ("b:5222".to_string(), down("timed out")),
        ];
        match Ready::from_probes(all_down) {
            Err(Failure::NotReady(why)) => assert_eq!(
                why,
                "a:5222: the XMPP server is unreachable: refused; \
                 b:5222: the XMPP server is unreachable: timed out"
            ),
            other => panic!("{other:?}"),
        }
        // One entry: its reason alone, as before the list.
        match Ready::from_probes(vec![("a:5222".to_string(), down("refused"))]) {
            Err(Failure::NotReady(why)) => {
                assert_eq!(why, "the XMPP server is unreachable: refused")
            }
            other => panic!("{other:?}"),
        }
    }

    fn ended(condition: &str) -> adhoc::CommandError {
        adhoc::CommandError::Upstream(UpstreamError::StreamError {
            condition: condition.into(),
            text: Some("whatever the words".into()),
        })
    }

    #[test]
    fn a_delete_user_of_the_callers_own_account_that_ended_its_stream_did_its_work() {
        let me = caller::Account::new("svc@example.org").unwrap();
        let own = delete(adhoc::DELETE_USER, &["SVC@example.org"]);
        assert!(
            deleted_itself(&me, &own, &ended("not-authorized")),
            "Prosody"
        );
        assert!(deleted_itself(&me, &own, &ended("conflict")), "ejabberd");
        assert!(!deleted_itself(&me, &own, &ended("system-shutdown")));
        let closed = adhoc::CommandError::Upstream(UpstreamError::Closed("cut".into()));
        assert!(
            !deleted_itself(&me, &own, &closed),
            "a cut stream proves nothing"
        );
        let other = delete(adhoc::DELETE_USER, &["bob@example.org"]);
        assert!(!deleted_itself(&me, &other, &ended("conflict")));
        let both = delete(adhoc::DELETE_USER, &["svc@example.org", "bob@example.org"]);
        assert!(
            !deleted_itself(&me, &both, &ended("conflict")),
            "bob: unknown"
        );
        let stats = delete(adhoc::USER_STATS, &["svc@example.org"]);
        assert!(!deleted_itself(&me, &stats, &ended("conflict")));
        let doc = deleted_itself_doc("sess-man@example.org", &me);
        assert_eq!((doc.node.as_str(), doc.status), (adhoc::DELETE_USER, None));
    }
}
