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

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_xmpp::parsers::jid::BareJid;

use crate::adhoc::{self, CommandStream, Commands, Target};
use crate::config::Config;
use crate::policy::{Policy, ServiceCredentials};
use crate::rest::{CommandItem, CommandRequest, CommandResponse};
use crate::upstream::probe::{Readiness, FRESH_FOR};
use crate::upstream::Access;
pub use caller::{Caller, Credentials};
pub use failure::{condition_name, DefinedCondition, ErrorType, Failure};

/// How long a readiness answer is kept (the `Retry-After` of a 503 from `/readyz`).
pub const READINESS_FRESH_FOR: Duration = FRESH_FOR;

/// The gateway's state below HTTP, shared by every request.
pub struct App {
    cfg: Config,
    access: Access,
    commands: Commands,
    /// Tokens and per-command rules (everything allowed without an access file).
    policy: Arc<Policy>,
    /// The passwords of the accounts Bearer tokens act as.
    service: ServiceCredentials,
    /// Service accounts whose password the server refused: not tried again until a restart,
    /// so a stale credentials file cannot spend the failed-login budgets request by request.
    service_refused: Mutex<HashSet<BareJid>>,
    /// The accounts' budgets for `POST /rest/stream/`.
    stream_rates: stanza::StreamRates,
    /// The IQ payloads `POST /rest/stream/` relays.
    stream_iq_allow: stanza::IqAllowList,
    /// The last readiness probe's answer (`GET /readyz`).
    readiness: Readiness,
}

impl App {
    pub fn new(cfg: Config, access: Access) -> Self {
        Self {
            commands: Commands::new(cfg.command_idle),
            stream_rates: stanza::StreamRates::new(cfg.stream_rate),
            stream_iq_allow: stanza::IqAllowList::new(&cfg.stream_iq_allow),
            access,
            cfg,
            policy: Arc::new(Policy::open()),
            service: ServiceCredentials::none(),
            service_refused: Default::default(),
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
        Ok(self.commands.run(&call, request).await?.doc)
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

    /// Whether the XMPP server answers a stream (cached for [`READINESS_FRESH_FOR`]); the
    /// reason when it does not.
    pub async fn ready(&self) -> Result<(), Failure> {
        let domain = self.cfg.domain.as_deref();
        self.readiness
            .check(|| self.access.probe(domain))
            .await
            .map_err(Failure::NotReady)
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
        }
    }

    /// The URL's JID, with the operator's aliases (`sess-man`).
    fn target(&self, jid: &str) -> Result<Target, Failure> {
        Ok(Target::resolve(jid, &self.cfg.aliases)?)
    }
}
