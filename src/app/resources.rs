//! The REST resources beside `/rest/adhoc` (`/rest/sessions`, `/rest/users`,
//! `/rest/announce`): each request becomes one XEP-0133 command, run through the same
//! dispatcher as a command document (end-user-session's own handler included), under the same
//! rules: a token must be allowed the very node run, at the account's domain. What each
//! command came to is read from its typed [`Outcome`], never from its words; both servers'
//! refusals come out as the same [`Failure`]. Bodies and shapes are in `rest::resources`.

use std::sync::Arc;

use tokio_xmpp::parsers::jid::BareJid;

use super::{caller, App, Caller, Failure};
use crate::adhoc::{self, address, Answered, CommandError, CommandStream, Outcome, Target};
use crate::adhoc::{outcome, END_USER_SESSION, GET_USER_LASTLOGIN, USER_STATS};
use crate::adhoc::{ADD_USER, ANNOUNCE, CHANGE_USER_PASSWORD, DELETE_USER};
use crate::audit;
use crate::rest::resources::{self as shapes, Announcement, Resource};
use crate::rest::{CommandRequest, FieldValue, RequestField};

/// The URL's account: a bare JID with a localpart, normalised.
pub fn account(written: &str) -> Result<String, Failure> {
    match address::parse_jid(written) {
        Some(j) if j.node().is_some() && j.resource().is_none() => Ok(j.to_string()),
        _ => Err(Failure::BadRequest(format!(
            "{written:?} is not an account's bare JID"
        ))),
    }
}

/// One session of `account` (already checked by [`account`]): its full JID.
pub fn session(account: &str, resource: &str) -> Result<String, Failure> {
    let full = format!("{account}/{resource}");
    match address::parse_jid(&full) {
        Some(j) if j.resource().is_some() => Ok(full),
        _ => Err(Failure::BadRequest(format!(
            "{resource:?} is not a resource"
        ))),
    }
}

/// The URL's domain of an announcement.
pub fn domain(written: &str) -> Result<String, Failure> {
    // Normalised as every JID (case, a final dot): `example.test.` is `example.test`.
    match address::parse_jid(written) {
        Some(j) if j.node().is_none() && j.resource().is_none() => Ok(j.to_string()),
        _ => Err(Failure::BadRequest(format!("{written:?} is not a domain"))),
    }
}

impl App {
    /// `GET /rest/sessions/{account}`: the account's online resources (user-stats), without
    /// the gateway's own streams, this process's and (marked under the replica key) every
    /// replica's: a user's `xrg-phone`, or a forged mark, is listed. An account
    /// the server does not know is item-not-found on both servers: Prosody's user-stats says
    /// so in words; ejabberd's answers empty statistics, so when nothing is online the
    /// gateway asks ([`App::known_account`]).
    pub async fn sessions(&self, caller: &Caller, account: &str) -> Result<Resource, Failure> {
        let fields = vec![single("accountjid", account)];
        let answered = self
            .resource(caller, account, USER_STATS, vec![fields])
            .await?;
        let listed = shapes::online_resources(&answered.doc);
        if listed.is_empty() {
            self.known_account(caller, account).await?;
        }
        let own = self.access.own_streams();
        let online = match account.parse::<BareJid>() {
            Ok(bare) => listed
                .into_iter()
                .filter(|r| !own.is_own(&bare, r))
                .collect(),
            Err(_) => listed,
        };
        Ok(shapes::sessions(account, online))
    }

    /// Whether the server knows `account`, asked with get-user-lastlogin (it reads no
    /// password): item-not-found when its answer says the account was never seen
    /// ([`outcome::last_login_says`]). A server that does not offer the command (Prosody,
    /// whose user-stats already said) or rules that do not let the caller run it leave the
    /// question open: the account is taken as known, as user-stats left it.
    async fn known_account(&self, caller: &Caller, account: &str) -> Result<(), Failure> {
        let fields = vec![single("accountjid", account)];
        let asked = self
            .run_resource(caller, account, GET_USER_LASTLOGIN, vec![fields])
            .await;
        match asked {
            Ok(answered) => match outcome::last_login_says(&answered.doc) {
                Some(condition) => Err(Failure::refused(
                    condition,
                    format!("the server does not know the account {account}"),
                )),
                None => Ok(()),
            },
            Err(Failure::NodeNotOffered { .. } | Failure::Forbidden(_)) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// `DELETE /rest/sessions/{account}[/{resource}]`: end-user-session through its handler,
    /// which learns what is online and reports only the sessions it really ended.
    pub async fn end_sessions(
        &self,
        caller: &Caller,
        account: &str,
        jid: &str,
    ) -> Result<Resource, Failure> {
        let fields = vec![multi("accountjids", jid)];
        let answered = self
            .resource(caller, account, END_USER_SESSION, vec![fields])
            .await?;
        let Outcome::Ended(ended) = answered.outcome else {
            return Err(Failure::Malformed(format!(
                "{END_USER_SESSION} did not say what it ended"
            )));
        };
        let ended = ended.iter().map(|j| j.to_string()).collect();
        Ok(shapes::ended(account, ended))
    }

    /// `POST /rest/users/{account}`: creates the account.
    pub async fn create_user(
        &self,
        caller: &Caller,
        account: &str,
        password: &str,
    ) -> Result<Resource, Failure> {
        let fields = vec![
            single("accountjid", account),
            single("password", password),
            single("password-verify", password),
        ];
        self.resource(caller, account, ADD_USER, vec![fields])
            .await?;
        Ok(shapes::user(account))
    }

    /// `DELETE /rest/users/{account}`.
    pub async fn delete_user(&self, caller: &Caller, account: &str) -> Result<(), Failure> {
        let fields = vec![multi("accountjids", account)];
        self.resource(caller, account, DELETE_USER, vec![fields])
            .await?;
        Ok(())
    }

    /// `PUT /rest/users/{account}/password`.
    pub async fn set_password(
        &self,
        caller: &Caller,
        account: &str,
        password: &str,
    ) -> Result<(), Failure> {
        let fields = vec![single("accountjid", account), single("password", password)];
        self.resource(caller, account, CHANGE_USER_PASSWORD, vec![fields])
            .await?;
        Ok(())
    }

    /// `POST /rest/announce/{domain}` (checked by [`domain`]): the message to every online
    /// user of the domain.
    pub async fn announce(
        &self,
        caller: &Caller,
        domain: &str,
        message: &Announcement,
    ) -> Result<(), Failure> {
        let fields = |body_var: &str| {
            let mut fields = vec![multi(body_var, &message.body)];
            fields.extend(message.subject.as_deref().map(|s| single("subject", s)));
            fields
        };
        // XEP-0133 and Prosody name the body `announcement`, ejabberd `body`.
        let attempts = vec![fields("announcement"), fields("body")];
        self.resource(caller, domain, ANNOUNCE, attempts).await?;
        Ok(())
    }

    /// Runs `node` at the domain of `addressed`. `attempts` are field sets tried in order
    /// while the command's form refuses a field (the servers name some fields differently).
    /// Only a command that did what it was asked is a success: one still executing (a form
    /// again), canceled, or completed without taking the fields did nothing, whatever a
    /// success status would say; a refusal the server said in words is its condition.
    async fn resource(
        &self,
        caller: &Caller,
        addressed: &str,
        node: &str,
        attempts: Vec<Vec<RequestField>>,
    ) -> Result<Answered, Failure> {
        audit::note_node(node);
        self.run_resource(caller, addressed, node, attempts).await
    }

    /// [`App::resource`] without naming the node in the audit line (a question asked on the
    /// way, such as [`App::known_account`]'s).
    async fn run_resource(
        &self,
        caller: &Caller,
        addressed: &str,
        node: &str,
        attempts: Vec<Vec<RequestField>>,
    ) -> Result<Answered, Failure> {
        let domain = addressed.rsplit('@').next().unwrap_or(addressed);
        let target = Target::resolve(domain, &self.cfg.aliases)?;
        let requests: Vec<CommandRequest> = attempts
            .into_iter()
            .map(|fields| CommandRequest {
                node: Some(node.into()),
                fields,
                ..CommandRequest::default()
            })
            .collect();
        let mut domains: Vec<String> = Vec::new();
        for request in &requests {
            for d in caller::target_domains(&target, request) {
                if !domains.contains(&d) {
                    domains.push(d);
                }
            }
        }
        let domains: Vec<&str> = domains.iter().map(String::as_str).collect();
        let guard = |node: &str| caller.may_run(self, node, &domains);
        guard(node)?;
        let admitted = caller.stream(self).await?;
        let stream: Arc<dyn CommandStream> = admitted.session.clone();
        let call = adhoc::Call {
            stream: &stream,
            account: &caller.account,
            target: &target,
            keep: false,
            max_jids: self.cfg.max_jids,
            guard: &guard,
            own: self.access.own_streams(),
        };
        let mut answer = Err(CommandError::BadRequest("nothing to run".into()));
        for request in &requests {
            answer = self.commands.run(&call, request).await;
            if !matches!(answer, Err(CommandError::Field(_))) {
                break;
            }
        }
        if let Err(e) = &answer {
            if requests
                .iter()
                .any(|r| super::deleted_itself(&caller.account, r, e))
            {
                // The deletion happened; its answer went down with the stream.
                return Ok(Answered {
                    doc: super::deleted_itself_doc(addressed, &caller.account),
                    outcome: Outcome::Completed { says: None },
                });
            }
        }
        let answered = match answer {
            Err(CommandError::Failed {
                text,
                says: Some(condition),
            }) => return Err(Failure::refused(condition, text)),
            other => other?,
        };
        match &answered.outcome {
            Outcome::Completed {
                says: Some(condition),
            } => {
                let text = answered.doc.note.map(|n| n.value).unwrap_or_default();
                Err(Failure::refused(condition.clone(), text))
            }
            o if o.is_done() => Ok(answered),
            _ => Err(Failure::Malformed(format!("{node} did not complete"))),
        }
    }
}

fn single(var: &str, value: &str) -> RequestField {
    RequestField {
        var: var.into(),
        value: Some(FieldValue::Single(value.into())),
    }
}

fn multi(var: &str, value: &str) -> RequestField {
    RequestField {
        var: var.into(),
        value: Some(FieldValue::List(vec![value.into()])),
    }
}
